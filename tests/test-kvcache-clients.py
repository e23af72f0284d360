#!/usr/bin/python3
"""kvcache under real memcached clients (Debian's Python modules, hence
Debian's interpreter: /usr/bin/python3).

usage: test-kvcache-clients.py KVCACHE

  - pylibmc (libmemcached) with noreply on: 2,000 keys set, then rounds of
    commands that fail under noreply (add on an existing key, replace and
    append on a missing one, incr on a value that is no number, delete of
    a missing key, a cas with a stale unique) mixed with sets and gets; every
    get must return its own key's value. A server that answers a failed
    noreply command makes libmemcached read every later reply one behind.
    The same run against Debian's memcached checks the test itself.
  - Debian's python3-pymemcache integration tests
    (pymemcache/test/test_integration.py, run with pytest; the TLS test
    is left out: kvcache has no TLS).
  - memccapable -b (binary protocol): it must fail, and fast (kvcache
    refuses binary requests at once), and kvcache must still answer.
Ends with kvcache stopped by SIGTERM (exit 0, no sanitizer report) and no
fd leaked here.
"""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kvcache_servers import Kvcache, Memcached, connect, read_quiet, open_fds  # noqa: E402

KVCACHE = sys.argv[1]
failures = []


def fail(what):
    failures.append(what)
    print("FAIL: " + what, flush=True)


def ok(what):
    print("ok - " + what, flush=True)


def pylibmc_noreply(port, who):
    import pylibmc
    mc = pylibmc.Client(["127.0.0.1:%d" % port], binary=False, behaviors={"_noreply": True, "tcp_nodelay": True})
    plain = pylibmc.Client(["127.0.0.1:%d" % port], binary=False)
    keys = ["k%d" % i for i in range(2000)]
    want = {}
    for k in keys:
        mc.set(k, "value-of-" + k)
        want[k] = "value-of-" + k
    mc.set("text", "not a number")
    bad = 0
    for rnd in range(20):
        # Commands that fail, with noreply: none may answer.
        for i in range(50):
            k = keys[(rnd * 50 + i) % len(keys)]
            mc.add(k, "added-over-" + k)                 # NOT_STORED
            mc.replace("missing-%d-%d" % (rnd, i), "x")  # NOT_STORED
            mc.append("missing-%d-%d" % (rnd, i), "x")   # NOT_STORED
            mc.delete("missing-%d-%d" % (rnd, i))        # NOT_FOUND
            try:
                mc.incr("text")                          # CLIENT_ERROR non-numeric
            except pylibmc.Error:
                pass
            try:
                mc.incr("missing-%d-%d" % (rnd, i))      # NOT_FOUND
            except pylibmc.Error:
                pass
            # And some that work.
            n = "n%d" % ((rnd * 50 + i) % 300)
            mc.set(n, "new-%d-%s" % (rnd, n))
            want[n] = "new-%d-%s" % (rnd, n)
        # Every get, on the noreply connection and on a plain one, returns its own key's value.
        for client in (mc, plain):
            for j in range(0, len(keys), 97):
                k = keys[(j + rnd) % len(keys)]
                got = client.get(k)
                if got != want[k]:
                    bad += 1
                    if bad < 5:
                        fail("%s: pylibmc noreply round %d: get(%s) = %r, want %r" % (who, rnd, k, got, want[k]))
            for n in ("n%d" % ((rnd * 50) % 300), "n%d" % ((rnd * 50 + 49) % 300)):
                got = client.get(n)
                if got != want[n]:
                    bad += 1
                    if bad < 5:
                        fail("%s: pylibmc noreply round %d: get(%s) = %r, want %r" % (who, rnd, n, got, want[n]))
        got = mc.get_multi(keys[:200])
        if got != {k: want[k] for k in keys[:200]}:
            bad += 1
            fail("%s: pylibmc noreply round %d: get_multi of 200 keys differs" % (who, rnd))
    if mc.get("text") != "not a number":
        bad += 1
        fail("%s: the non-numeric value changed" % who)
    mc.disconnect_all()
    plain.disconnect_all()
    if not bad:
        ok("%s: pylibmc with noreply: 20 rounds of 300 failing noreply commands, 2,000 keys, "
           "every get its own key's value" % who)


def pymemcache_suite(port):
    import importlib.util
    spec = importlib.util.find_spec("pymemcache")
    if spec is None:
        fail("pymemcache not found (apt-get install python3-pymemcache)")
        return
    suite = os.path.join(os.path.dirname(spec.origin), "test", "test_integration.py")
    if not os.path.exists(suite):
        fail("%s not found: Debian's python3-pymemcache ships its integration tests there" % suite)
        return
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", suite,
                        "--server", "127.0.0.1", "--port", str(port), "-k", "not tls"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300, cwd="/")
    out = r.stdout.decode(errors="replace")
    last = out.strip().splitlines()[-1] if out.strip() else ""
    if r.returncode != 0 or "passed" not in last or "failed" in last or "error" in last:
        fail("pymemcache's integration tests: exit %d\n%s" % (r.returncode, out[-4000:]))
    else:
        ok("pymemcache's integration tests (Debian's %s): %s" % (suite, last.strip("= ")))


def memccapable_binary(port):
    tool = shutil.which("memccapable") or shutil.which("memcapable")
    if not tool:
        fail("memccapable not found: apt-get install libmemcached-tools")
        return
    t = time.time()
    try:
        r = subprocess.run([tool, "-b", "-h", "127.0.0.1", "-p", str(port), "-t", "10"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        rc, out = r.returncode, r.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired:
        rc, out = "timeout", ""
    took = time.time() - t
    if rc == 0 or rc == "timeout" or took > 8:
        fail("memccapable -b: exit %s after %.1f s (want a fast failure)\n%s" % (rc, took, out[-2000:]))
    elif "timeout" in out.lower():
        fail("memccapable -b: a test timed out\n%s" % out[-2000:])
    else:
        ok("memccapable -b fails fast: exit %s in %.2f s, no test waited for a timeout" % (rc, took))
    s = connect(port)
    s.sendall(b"version\r\n")
    got, _ = read_quiet(s, 0.05)
    s.close()
    if not got.startswith(b"VERSION "):
        fail("after memccapable -b the server does not answer: %r" % got)


def main():
    fds0 = open_fds()
    mc = Memcached("-m", "64")
    try:
        pylibmc_noreply(mc.port, "memcached")
    finally:
        mc.stop()
    kv = Kvcache(KVCACHE, "--memory", "64", "--idle-timeout", "0")
    try:
        pylibmc_noreply(kv.port, "kvcache")
        pymemcache_suite(kv.port)
        memccapable_binary(kv.port)
    finally:
        err = kv.stop()
    if err:
        fail(err)
    else:
        ok("kvcache stopped on SIGTERM: exit 0, no sanitizer report")
    if open_fds() != fds0:
        fail("fds leaked in the test: %s -> %s" % (fds0, open_fds()))
    if failures:
        print("%d failures" % len(failures))
        sys.exit(1)
    ok("no fd leaked")


main()
