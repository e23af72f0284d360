#!/usr/bin/env python3
"""kvcache's limits as kvcache(1) and --help state them.

usage: test-kvcache-limits.py KVCACHE LUOCTL

1. The value limit --help prints is storable (under a 1-byte key, flags 0)
   and one byte more is not (SERVER_ERROR object too large for cache).
2. Clients holding large unfinished requests cannot veto a live update:
   kvcache --memory 8 (an arena of about 21 MiB), HOLDERS connections each
   sending "set holdN 0 0 1040010" and 1,040,000 bytes of its value, then
   waiting. `luoctl update --pid` must be done, the pid the same, the other
   keys intact; the log names how many held connections were closed
   (kvcache(1), LIVE UPDATE: the biggest unfinished requests' connections
   are closed once their replies are out); each held connection, sent the
   rest of its value, sees either STORED (kept) or its end (closed,
   nothing answered), the closed ones exactly as many as logged.
Ends by checking that no fd leaked here.
"""
import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kvcache_servers import Kvcache, connect, open_fds  # noqa: E402

KVCACHE, LUOCTL = sys.argv[1], sys.argv[2]
HOLDERS = 40
HELD = 1040000
REST = 10
failures = []


def ok(what):
    print("ok - " + what, flush=True)


def fail(what):
    failures.append(what)
    print("not ok - " + what, flush=True)


def until(s, end):
    buf = b""
    while not buf.endswith(end):
        d = s.recv(1 << 20)
        if not d:
            break
        buf += d
    return buf


def help_limit():
    out = subprocess.run([KVCACHE, "--help"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"values (\d+) bytes \(under a 1-byte key, flags 0", out)
    if not m:
        fail("--help names no value limit:\n" + out)
        return
    vmax = int(m.group(1))
    srv = Kvcache(KVCACHE, "--memory", "8")
    s = connect(srv.port)
    s.sendall(b"set k 0 0 %d\r\n%s\r\nmn\r\n" % (vmax, b"v" * vmax))
    r1 = until(s, b"MN\r\n")
    s.sendall(b"get k\r\n")
    r2 = until(s, b"END\r\n")
    s.sendall(b"set j 0 0 %d\r\n%s\r\nmn\r\n" % (vmax + 1, b"v" * (vmax + 1)))
    r3 = until(s, b"MN\r\n")
    s.close()
    if r1 != b"STORED\r\nMN\r\n" or r2 != b"VALUE k 0 %d\r\n%s\r\nEND\r\n" % (vmax, b"v" * vmax):
        fail("the --help limit, %d bytes, is not storable: %r %r" % (vmax, r1[:80], r2[:80]))
    elif r3 != b"SERVER_ERROR object too large for cache\r\nMN\r\n":
        fail("one byte past the --help limit: %r" % r3[:80])
    else:
        ok("--help's value limit, %d bytes, is stored and read back; %d bytes is too large" % (vmax, vmax + 1))
    err = srv.stop()
    if err:
        fail(err)


def held_update():
    srv = Kvcache(KVCACHE, "--memory", "8")
    pid = srv.p.pid
    keep = connect(srv.port)
    for i in range(100):
        keep.sendall(b"set k%d 0 0 %d noreply\r\n%s\r\n" % (i, 100 + i, b"v" * (100 + i)))
    keep.sendall(b"mn\r\n")
    if until(keep, b"MN\r\n") != b"MN\r\n":
        fail("setting the other keys")
    holders = []
    for i in range(HOLDERS):
        h = connect(srv.port, timeout=20)
        h.sendall(b"set hold%d 0 0 %d\r\n" % (i, HELD + REST) + b"h" * HELD)
        holders.append(h)
    # Let kvcache read what was sent into its input buffers (each holds at most its one request).
    time.sleep(1.5)
    r = subprocess.run([LUOCTL, "update", "--pid", str(pid), KVCACHE], capture_output=True, text=True, timeout=60)
    end = time.time() + 30
    while True:  # the new image prints its line just after luo_ready(), which answered luoctl
        log = srv.output()
        gen = re.search(r"\[pid (\d+)\] generation 1: .*?(\d+) connections kept", log)
        if gen or time.time() > end or srv.p.poll() is not None:
            break
        time.sleep(0.05)
    if r.returncode != 0 or not gen:
        fail("update with %d held requests of %d bytes not done: luoctl %d %s%s\n%s"
             % (HOLDERS, HELD, r.returncode, r.stdout, r.stderr, log[-3000:]))
    elif int(gen.group(1)) != pid or srv.p.poll() is not None:
        fail("not the same pid after the update: %s" % gen.group(0))
    else:
        ok("luoctl update --pid done with %d connections holding %d bytes each at --memory 8; same pid %d"
           % (HOLDERS, HELD, pid))
    m = re.search(r"closed by the next image: (\d+) connection\(s\) whose unexecuted commands did not fit, "
                  r"after their replies; (\d+) whose replies did not fit", log)
    cut = int(m.group(1)) if m else 0
    if not m or cut == 0 or int(m.group(2)) != 0:
        fail("the log does not say how many held connections are closed: %s" % log[-2000:])
    else:
        ok("the log says %d of the %d held connections are closed" % (cut, HOLDERS))
    # The other keys, on a connection kept across the update.
    keep.sendall(b"".join(b"get k%d\r\n" % i for i in range(100)) + b"mn\r\n")
    got = until(keep, b"MN\r\n")
    want = b"".join(b"VALUE k%d 0 %d\r\n%s\r\nEND\r\n" % (i, 100 + i, b"v" * (100 + i)) for i in range(100)) + b"MN\r\n"
    if got != want:
        fail("the other keys after the update: %r" % got[:200])
    else:
        ok("100 other keys intact, read on a connection kept across the update")
    # What each held connection sees: STORED (kept) or its end (closed, no answer).
    stored = closed = 0
    for i, h in enumerate(holders):
        try:
            h.sendall(b"r" * REST + b"\r\n")
            d = until(h, b"\r\n")
        except (ConnectionResetError, BrokenPipeError):
            d = b""
        if d == b"STORED\r\n":
            stored += 1
        elif d == b"":
            closed += 1
        else:
            fail("held connection %d saw %r" % (i, d[:100]))
        h.close()
    if closed != cut or stored + closed != HOLDERS:
        fail("held connections: %d stored, %d closed; the log said %d closed" % (stored, closed, cut))
    else:
        ok("held connections: %d finished their set (STORED), %d closed without an answer, as logged"
           % (stored, closed))
    keep.sendall(b"version\r\n")
    if not until(keep, b"\r\n").startswith(b"VERSION "):
        fail("the kept connection no longer answers")
    keep.close()
    err = srv.stop()
    if err:
        fail(err)
    else:
        ok("kvcache exited 0 on SIGTERM, no sanitizer report")


def main():
    fds0 = open_fds()
    help_limit()
    held_update()
    if open_fds() != fds0:
        fail("fds leaked in the test: %s -> %s" % (fds0, open_fds()))
    if failures:
        print("%d failures" % len(failures))
        sys.exit(1)


main()
