#!/usr/bin/env python3
"""Live updates in the middle of meta-protocol and noreply traffic.

usage: test-kvcache-update-meta.py KVCACHE_V1 KVCACHE_V2

Starts kvcache v1 and four client threads, each with one persistent
connection and its own keys. Each sends pipelined batches mixing the meta
commands (ms with O/k/c/F/T, mg with v/k/f/s/O and q, md, ma with N/J/D/v,
mn), classic commands with noreply that fail (add over a key, replace of a
missing key, incr of text, cas with a stale unique, delete of a missing
key) and ones that work, gets and gets of several keys; some batches are
sent in two pieces with a pause between, so that an update can fall inside
a command. Each batch's whole reply is computed from the thread's own model
and compared byte for byte (cas values excepted): every reply in order
(opaque tokens carry the batch and command number), every value under its
own key, nothing from a noreply command. Meanwhile kvcache updates itself
three times (v1 -> v2 -> v1 -> v2, SIGHUP), same pid. Then: no mismatch,
the client connections never broke, stats liveupdate_number 3, kvcache
exits 0 on SIGTERM with no sanitizer report, and no fd leaked here.
"""
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kvcache_servers import open_fds  # noqa: E402

V1, V2 = sys.argv[1], sys.argv[2]
failures = []
lock = threading.Lock()


def fail(what):
    with lock:
        failures.append(what)
    print("FAIL: " + what, flush=True)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def until_mn(self, count=1):
        """Up to the count-th "MN" line (no value holds one)."""
        while not (self.buf.endswith(b"MN\r\n") and self.buf.count(b"MN\r\n") >= count):
            d = self.s.recv(1 << 20)
            if not d:
                raise ConnectionError("closed by the server")
            self.buf += d
        out, self.buf = self.buf, b""
        return out


def expected_regex(parts):
    """parts: bytes (exact) or None (a cas: digits)."""
    rx = b"".join(re.escape(p) if p is not None else rb"[0-9]+" for p in parts)
    return re.compile(b"^" + rx + b"$", re.S)


class Worker(threading.Thread):
    def __init__(self, wid, port, stop):
        super().__init__()
        self.wid, self.port, self.stop = wid, port, stop
        self.batches = 0
        self.commands = 0
        self.rng = random.Random(wid)
        self.model = {}      # key -> (flags, value)
        self.counters = {}   # key -> int

    def key(self, i):
        return b"w%d-key%d" % (self.wid, i)

    def batch(self, b):
        req, want = [], []
        rng = self.rng
        n = 0

        def op():
            nonlocal n
            n += 1
            self.commands += 1
            return b"O%d.%d" % (b, n)

        for _ in range(rng.randrange(8, 24)):
            kind = rng.randrange(10)
            k = self.key(rng.randrange(40))
            if kind == 0:    # ms with the flags clients use
                v = b"%s=%d.%d" % (k, b, n) + b"x" * rng.randrange(0, 300)
                f = rng.randrange(1 << 32)
                o = op()
                req.append(b"ms %s %d T0 F%d %s k c\r\n%s\r\n" % (k, len(v), f, o, v))
                want += [b"HD %s k%s c" % (o, k), None, b"\r\n"]
                self.model[k] = (f, v)
            elif kind == 1:  # mg, hit or miss
                o = op()
                req.append(b"mg %s v k f s %s\r\n" % (k, o))
                if k in self.model:
                    f, v = self.model[k]
                    want.append(b"VA %d k%s f%d s%d %s\r\n%s\r\n" % (len(v), k, f, len(v), o, v))
                else:
                    want.append(b"EN k%s %s\r\n" % (k, o))
            elif kind == 2:  # mg q of a missing key: nothing; md q of a present one: nothing
                req.append(b"mg %s-none v q %s\r\n" % (k, op()))
                if k in self.model:
                    req.append(b"md %s q %s\r\n" % (k, op()))
                    del self.model[k]
            elif kind == 3:  # noreply commands that fail
                req.append(b"replace %s-none 0 0 1 noreply\r\nz\r\n" % k)
                req.append(b"incr %s-text 1 noreply\r\n" % self.key(0))
                req.append(b"delete %s-none noreply\r\n" % k)
                req.append(b"cas %s 0 0 1 1 noreply\r\nz\r\n" % k)
                if k in self.model:
                    req.append(b"add %s 0 0 1 noreply\r\nz\r\n" % k)
                self.commands += 5
            elif kind == 4:  # set noreply that works
                v = b"%s=set%d.%d" % (k, b, n)
                req.append(b"set %s 7 0 %d noreply\r\n%s\r\n" % (k, len(v), v))
                self.model[k] = (7, v)
                self.commands += 1
            elif kind == 5:  # get of several keys
                ks = [self.key(rng.randrange(40)) for _ in range(3)]
                req.append(b"get " + b" ".join(ks) + b"\r\n")
                for kk in ks:
                    if kk in self.model:
                        f, v = self.model[kk]
                        want.append(b"VALUE %s %d %d\r\n%s\r\n" % (kk, f, len(v), v))
                want.append(b"END\r\n")
                self.commands += 1
            elif kind == 6:  # ma: created on a miss (N, J), then counted
                c = b"w%d-ctr%d" % (self.wid, rng.randrange(5))
                o = op()
                req.append(b"ma %s N0 J10 D3 v %s\r\n" % (c, o))
                if c in self.counters:
                    self.counters[c] += 3
                else:
                    self.counters[c] = 10
                s = b"%d" % self.counters[c]
                want.append(b"VA %d %s\r\n%s\r\n" % (len(s), o, s))
            elif kind == 7:  # md of a missing key: NF with the opaque
                o = op()
                req.append(b"md %s-none %s k\r\n" % (k, o))
                want.append(b"NF %s k%s-none\r\n" % (o, k))
            elif kind == 8:  # gets, then a cas with the right unique would need a round trip: a plain get
                req.append(b"get %s\r\n" % k)
                if k in self.model:
                    f, v = self.model[k]
                    want.append(b"VALUE %s %d %d\r\n%s\r\n" % (k, f, len(v), v))
                want.append(b"END\r\n")
                self.commands += 1
            else:            # mn in the middle
                req.append(b"mn\r\n")
                want.append(b"MN\r\n")
                self.commands += 1
        req.append(b"mn\r\n")
        want.append(b"MN\r\n")
        return b"".join(req), want

    def run(self):
        try:
            c = Conn(self.port)
            c.s.sendall(b"set %s-text 0 0 4\r\ntext\r\nmn\r\n" % self.key(0))
            if c.until_mn() != b"STORED\r\nMN\r\n":
                fail("worker %d: setup" % self.wid)
                return
            b = 0
            while not self.stop.is_set() and not failures:
                b += 1
                data, want = self.batch(b)
                if self.rng.random() < 0.3:
                    cut = self.rng.randrange(1, len(data))
                    c.s.sendall(data[:cut])
                    time.sleep(0.005)
                    c.s.sendall(data[cut:])
                else:
                    c.s.sendall(data)
                got = c.until_mn(want.count(b"MN\r\n"))
                if not expected_regex(want).match(got):
                    fail("worker %d batch %d: sent %r\n  got  %r\n  want %r" %
                         (self.wid, b, data[:1500], got[:1500], b"".join(p or b"{CAS}" for p in want)[:1500]))
                    return
                self.batches = b
            c.s.close()
        except (OSError, ConnectionError) as e:
            fail("worker %d: %s" % (self.wid, e))


def main():
    fds0 = open_fds()
    tmp = tempfile.mkdtemp(prefix="kvcache-meta-")
    log = open(os.path.join(tmp, "log"), "w+b")
    pf, nf = os.path.join(tmp, "port"), os.path.join(tmp, "next")
    srv = subprocess.Popen([V1, "--port-file", pf, "--next-file", nf, "--threads", "2", "--memory", "64"],
                           stdout=log, stderr=subprocess.STDOUT)

    def output():
        log.flush()
        log.seek(0)
        return log.read().decode(errors="replace")

    def wait_line(pattern, t=60):
        end = time.time() + t
        while time.time() < end:
            if re.search(pattern, output()):
                return True
            if srv.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    if not wait_line(r"\] generation 0: "):
        sys.exit("kvcache did not start:\n" + output())
    for _ in range(200):
        if os.path.exists(pf) and open(pf).read().strip():
            break
        time.sleep(0.05)
    port = int(open(pf).read())
    stop = threading.Event()
    workers = [Worker(i, port, stop) for i in range(4)]
    for w in workers:
        w.start()
    try:
        time.sleep(1)
        for gen, binary in ((1, V2), (2, V1), (3, V2)):
            if failures:
                break
            with open(nf, "w") as f:
                f.write(binary + "\n")
            srv.send_signal(signal.SIGHUP)
            if not wait_line(r"\] generation %d: " % gen):
                fail("update %d did not happen:\n%s" % (gen, output()[-3000:]))
                break
            line = [ln for ln in output().splitlines() if "] generation %d: " % gen in ln][-1]
            print("ok - %s" % line, flush=True)
            time.sleep(1)
    finally:
        stop.set()
        for w in workers:
            w.join(60)
    total_b = sum(w.batches for w in workers)
    total_c = sum(w.commands for w in workers)
    if not failures:
        if min(w.batches for w in workers) < 10:
            fail("too little traffic: %s batches" % [w.batches for w in workers])
        else:
            print("ok - 4 persistent connections, %d batches, %d commands (meta, noreply, get) across 3 live "
                  "updates: every reply in order and byte-exact, every value under its own key" % (total_b, total_c))
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"stats\r\nmn\r\n")
    st = b""
    while not st.endswith(b"MN\r\n"):
        d = s.recv(65536)
        if not d:
            break
        st += d
    s.close()
    m = re.search(rb"STAT liveupdate_number (\d+)", st)
    pid = re.search(rb"STAT pid (\d+)", st)
    if not m or m.group(1) != b"3" or not pid or int(pid.group(1)) != srv.pid:
        fail("stats after the updates: %r" % st[:300])
    srv.send_signal(signal.SIGTERM)
    try:
        rc = srv.wait(timeout=30)
    except subprocess.TimeoutExpired:
        srv.kill()
        rc = srv.wait()
    out = output()
    log.close()
    if rc != 0:
        fail("kvcache exited %s on SIGTERM:\n%s" % (rc, out[-3000:]))
    elif re.search(r"AddressSanitizer|LeakSanitizer|runtime error", out):
        fail("sanitizer report:\n%s" % out[-6000:])
    else:
        print("ok - same pid through 3 updates; kvcache exited 0 on SIGTERM, no sanitizer report")
    for f in os.listdir(tmp):
        os.unlink(os.path.join(tmp, f))
    os.rmdir(tmp)
    if open_fds() != fds0:
        fail("fds leaked in the test: %s -> %s" % (fds0, open_fds()))
    if failures:
        print("%d failures" % len(failures))
        sys.exit(1)
    print("ok - no fd leaked")


main()
