"""Shared by the kvcache tests written in Python: start kvcache and Debian's
memcached on loopback ports, talk to them, stop them, check for leaks."""
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


class Kvcache:
    def __init__(self, binary, *args):
        self.dir = tempfile.mkdtemp(prefix="kvcache-test-")
        self.log = open(os.path.join(self.dir, "log"), "w+b")
        pf = os.path.join(self.dir, "port")
        self.p = subprocess.Popen([binary, "--port-file", pf, "--threads", "2", *args],
                                  stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(400):
            if os.path.exists(pf) and open(pf).read().strip():
                break
            if self.p.poll() is not None:
                sys.exit("kvcache exited at start:\n" + self.output())
            time.sleep(0.05)
        else:
            self.p.kill()
            sys.exit("kvcache did not start")
        self.port = int(open(pf).read())

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self):
        """SIGTERM; returns an error string or None (exit 0, no sanitizer report)."""
        self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            rc = "timeout"
        out = self.output()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        if rc != 0:
            return "kvcache exited %s on SIGTERM:\n%s" % (rc, out[-3000:])
        if re.search(r"AddressSanitizer|LeakSanitizer|runtime error", out):
            return "kvcache: sanitizer report:\n%s" % out[-6000:]
        return None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Memcached:
    """Debian's memcached (dev.sh installs it), on a loopback port."""

    def __init__(self, *args):
        binary = shutil.which("memcached") or "/usr/bin/memcached"
        if not os.path.exists(binary):
            sys.exit("memcached not found: apt-get install memcached (dev.sh's PACKAGES)")
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        for _ in range(20):
            self.port = free_port()
            self.p = subprocess.Popen([binary, *user, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0",
                                       "-t", "2", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(100):
                if self.p.poll() is not None:
                    break
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return
                except OSError:
                    time.sleep(0.05)
            if self.p.poll() is None:
                self.p.kill()
            self.p.wait()
        sys.exit("memcached did not start")

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def connect(port, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_some(s, n=1 << 62, quiet=None, limit=5.0, first=2.0):
    """Up to n bytes; stops early at EOF, after `limit` s, or (with `quiet`) once the peer is
    quiet for `quiet` s after its first byte (`first` s before it). Returns (bytes, eof)."""
    buf = bytearray()
    end = time.time() + limit
    while len(buf) < n:
        left = end - time.time()
        if quiet is not None:
            left = min(quiet if buf else first, left)
        if left <= 0:
            return bytes(buf), False
        r, _, _ = select.select([s], [], [], left)
        if not r:
            return bytes(buf), False
        try:
            d = s.recv(1 << 20)
        except (ConnectionResetError, BrokenPipeError):
            return bytes(buf), True
        if not d:
            return bytes(buf), True
        buf += d
    return bytes(buf), False


def read_quiet(s, quiet=0.15, limit=5.0, first=2.0):
    """Everything until the peer is quiet for `quiet` s after its first byte (`first` s before it),
    or closes. Returns (bytes, eof)."""
    return read_some(s, quiet=quiet, limit=limit, first=first)


def recv_until(s, n, timeout=5.0):
    """Up to n bytes; stops early at EOF or after timeout. Returns (bytes, eof)."""
    return read_some(s, n, limit=timeout)


def open_fds():
    return sorted(os.listdir("/proc/self/fd"))
