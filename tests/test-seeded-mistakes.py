#!/usr/bin/env python3
"""Mistakes seeded into copies of the examples, each caught before the switch.

usage: test-seeded-mistakes.py SOURCE_ROOT BUILD_ROOT

Each case copies examples/kvcache or examples/counter into a scratch
directory, applies one edit (a text replacement that must apply: a case
whose edit no longer matches the source fails, it cannot pass by doing
nothing), builds the copy with debug information as the project's meson
does, runs luo-describe on it (the post-link step), and asks:

  luoctl check MUTANT --against BASELINE   (the baseline: the same copy, unedited)
  luoctl update --pid PID MUTANT           (a running baseline; kvcache cases,
                                            and counter cases with --strict)

A refused case must be refused by both (exit 1), with the report naming the
struct and the member, and the running service must answer afterwards with
the value it held, same pid. A case that must not be refused (a member
renamed in place, a type spelled differently) must say "would proceed" with
its types proven. Two cases fail at build time: luo-describe refuses a
component version without a payload type.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tap  # noqa: E402
from tap import ok  # noqa: E402

SRC, BUILD = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
LUOCTL = os.path.join(BUILD, "src/luoctl/luoctl")
DESCRIBE = os.path.join(BUILD, "src/describe/luo-describe")
LIBDIR = os.path.join(BUILD, "src/lib")
CC = os.environ.get("CC", "cc")
# The copies link the build's libluo: sanitized like it when it is.
SANITIZE = os.environ.get("SEED_SANITIZE", "none")
SAN_FLAGS = [f"-fsanitize={SANITIZE}"] if SANITIZE not in ("", "none") else []



EXAMPLES = {
    "kvcache": {"dir": "examples/kvcache", "sources": ["kvcache.c", "proto.c", "store.c"],
                "cflags": ["-DKVCACHE_VERSION=2", "-pthread"]},
    "counter": {"dir": "examples/counter", "sources": ["counter.c"], "cflags": ["-DCOUNTER_VERSION=3"]},
}

# (name, example, edits [(file, old, new, count)], extra cflags, describe, expect, words in the report)
#   expect: "refuse" (check exit 1, update refused), "downgrade" (proceeds at a lower
#   version, named; --strict refuses), "proceed" (proven, same version), "build" (luo-describe fails)
CASES = [
    ("item struct: two fields swapped", "kvcache",
     [("kv.h", "\tuint32_t exptime; /* absolute Unix time; 0: never */\n\tuint32_t flags;   /* the client's */\n",
       "\tuint32_t flags;   /* the client's */\n\tuint32_t exptime; /* absolute Unix time; 0: never */\n", 1)],
     [], True, "refuse", ["struct kv_item", "exptime", "moved"]),
    ("arena root: two fields swapped", "kvcache",
     [("kv.h", "\tuint64_t oldest_cas;  /* flush_all: items with cas <= this are gone */\n",
       "", 1),
      ("kv.h", "\tuint64_t started_at;  /* Unix time of the fresh start (uptime) */\n",
       "\tuint64_t started_at;  /* Unix time of the fresh start (uptime) */\n\tuint64_t oldest_cas;\n", 1)],
     [], True, "refuse", ["struct kv_root", "oldest_cas"]),
    ("item member: unsigned to signed", "kvcache",
     [("kv.h", "\tuint32_t nbytes;  /* value bytes", "\tint32_t nbytes;  /* value bytes", 1)],
     ["-Wno-sign-compare"], True, "refuse", ["struct kv_item", "nbytes", "signed"]),
    ("a struct of another header, embedded: two counters swapped", "kvcache",
     [("kv.h", "uint64_t cmd_get, get_hits,", "uint64_t get_hits, cmd_get,", 1)],
     [], True, "refuse", ["struct kv_counters", "moved"]),
    ("payload struct: two fields swapped", "kvcache",
     [("kvcache.c", "struct kv_store_v1 {\n\tuint64_t root;   /* the arena's root, cross-checked with luo_arena_root() */\n\tuint64_t limit;  /* limit_maxbytes */\n",
       "struct kv_store_v1 {\n\tuint64_t limit;  /* limit_maxbytes */\n\tuint64_t root;   /* the arena's root, cross-checked with luo_arena_root() */\n", 1)],
     [], True, "refuse", ["struct kv_store_v1", "root", "moved"]),
    ("payload member widened", "kvcache",
     [("kvcache.c", "\tuint32_t closing; /* 1: close once the output is out */\n\tuint32_t spare;   /* 0 */\n",
       "\tuint64_t closing; /* 1: close once the output is out */\n", 1)],
     [], True, "refuse", ["struct kv_conn_v1", "closing"]),
    ("payload member split in place (a field added where another was)", "kvcache",
     [("kvcache.c", "\tuint32_t format; /* = the version */\n\tuint32_t nbuckets;\n};",
       "\tuint32_t format; /* = the version */\n\tuint16_t nbuckets;\n\tuint16_t shards;\n};", 1)],
     ["-Wno-error"], True, "refuse", ["struct kv_store_v1", "nbuckets"]),
    ("a build never described (the post-link step forgotten)", "kvcache", [], [], False, "refuse",
     ["luo-describe never ran"]),
    ("payload struct: two fields swapped (counter)", "counter",
     [("counter.c", "struct counter_v3 {\n\tuint64_t count;\n\tuint64_t updates;\n",
       "struct counter_v3 {\n\tuint64_t updates;\n\tuint64_t count;\n", 1)],
     [], True, "downgrade", ["struct counter_v3", "count", "moved"]),
    ("a typedef that changes signedness", "counter",
     [("counter.c", "typedef uint64_t counter_unix_seconds_t;", "typedef int64_t counter_unix_seconds_t;", 1)],
     ["-Wno-error"], True, "downgrade", ["struct counter_v3", "started_at", "signed"]),
    ("a change of unit: seconds become milliseconds, said by the typedef", "counter",
     [("counter.c", "counter_unix_seconds_t", "counter_unix_millis_t", 2)],
     [], True, "downgrade", ["counter_unix_seconds_t", "counter_unix_millis_t", "unit"]),
    ("a compiler flag: -fpack-struct", "counter", [], ["-fpack-struct"], True, "refuse",
     ["aligned to 8 in the old image", "aligned to 1 in the new"]),
    ("a version with no payload type", "counter",
     [("counter.c", 'LUO_PAYLOAD_TYPE(counter_v3_type, "counter", 3, struct counter_v3);', "", 1)],
     [], True, "build", ["'counter' reads version 3, which has no LUO_PAYLOAD_TYPE()"]),
    ("a payload type declared for one version only, then the other removed", "kvcache",
     [("kvcache.c", 'LUO_PAYLOAD_TYPE(kv_store_v1_type, "kvcache-store", 1, struct kv_store_v1);', "", 1)],
     [], True, "build", ["'kvcache-store' reads version 1, which has no LUO_PAYLOAD_TYPE()"]),
    # Not mistakes: these must go through, proven.
    ("a member renamed in place (not a refusal)", "kvcache",
     [("kv.h", "\tuint16_t spare; /* 0 */\n\tchar data[];", "\tuint16_t reserved; /* 0 */\n\tchar data[];", 1)],
     [], True, "proceed", []),
    ("a type respelled: uint64_t as unsigned long (not a refusal)", "counter",
     [("counter.c", "struct counter_v3 {\n\tuint64_t count;\n", "struct counter_v3 {\n\tunsigned long count;\n", 1)],
     [], True, "proceed", []),
]


def build(example, edits, extra, describe, out):
    """Build a copy of @example with @edits; return (path or None, log)."""
    ex = EXAMPLES[example]
    d = tempfile.mkdtemp(prefix="seed-", dir=WORK)
    for f in os.listdir(os.path.join(SRC, ex["dir"])):
        p = os.path.join(SRC, ex["dir"], f)
        if os.path.isfile(p):
            shutil.copy(p, d)
    for f, old, new, count in edits:
        p = os.path.join(d, f)
        text = open(p).read()
        if text.count(old) != count:
            return None, f"edit does not apply: {f} holds {text.count(old)} copies of {old[:60]!r}, not {count}"
        open(p, "w").write(text.replace(old, new))
    raw = out + "-undescribed"
    cmd = [CC, "-std=gnu17", "-D_GNU_SOURCE", "-O2", "-g", "-Wall", "-Wextra", "-Werror", f"-I{SRC}/include",
           *SAN_FLAGS, *ex["cflags"], *extra, *[os.path.join(d, s) for s in ex["sources"]], "-o", raw, f"-L{LIBDIR}",
           f"-Wl,-rpath,{LIBDIR}", "-lluo"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return None, "compile failed: " + r.stderr[-2000:]
    if not describe:
        os.rename(raw, out)
        return out, ""
    r = subprocess.run([DESCRIBE, "--output", out, raw], capture_output=True, text=True)
    if r.returncode != 0:
        return None, "luo-describe: " + r.stderr
    return out, ""


def luoctl(*args):
    r = subprocess.run([LUOCTL, *args], capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def start(binary, example):
    portfile = os.path.join(WORK, f"port-{time.monotonic_ns()}")
    log = open(portfile + ".log", "w")
    if example == "kvcache":
        args = [binary, "--port-file", portfile, "--threads", "1", "--memory", "16"]
    else:
        args = [binary, "serve", "--port-file", portfile]
    p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(400):
        if os.path.exists(portfile) and open(portfile).read().strip():
            return p, int(open(portfile).read())
        if p.poll() is not None:
            break
        time.sleep(0.025)
    p.kill()
    raise RuntimeError(f"{binary} did not start: " + open(portfile + ".log").read())


def talk(port, data, until):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        buf = b""
        while not buf.endswith(until):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        return buf


def kv_roundtrip(port, key, value):
    talk(port, b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value), b"\r\n")


def kv_get(port, key):
    return talk(port, b"get %s\r\n" % key, b"END\r\n")


def live_update(baseline, mutant, example, strict, words, name):
    p, port = start(baseline, example)
    try:
        if example == "kvcache":
            kv_roundtrip(port, b"seeded", b"before-the-update")
        else:
            talk(port, b"INC\n", b"\n")
        args = ["update", "--pid", str(p.pid), mutant, "--timeout", "20"] + (["--strict"] if strict else [])
        rc, out = luoctl(*args)
        ok(rc == 1 and "refused" in out and all(w in out for w in words),
           f"{name}: luoctl update{' --strict' if strict else ''} refused before the switch (exit {rc})")
        if not (rc == 1 and all(w in out for w in words)):
            print("  " + out.replace("\n", "\n  "))
        alive = p.poll() is None
        if example == "kvcache":
            got = kv_get(port, b"seeded") if alive else b""
            ok(alive and b"before-the-update" in got, f"{name}: the same process still serves its items")
        else:
            got = talk(port, b"INC\n", b"\n") if alive else b""
            ok(alive and got.strip() == b"2", f"{name}: the same process still counts on (got {got!r})")
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main():
    global WORK
    WORK = tempfile.mkdtemp(prefix="luo-seeded-")
    try:
        baselines = {}
        for ex in EXAMPLES:
            path, log = build(ex, [], [], True, os.path.join(WORK, f"{ex}-baseline"))
            if not ok(path is not None, f"{ex}: the unedited copy builds and is described"):
                print("  " + log)
                return 1
            baselines[ex] = path
            rc, out = luoctl("check", path, "--against", path, "--strict")
            ok(rc == 0 and "unproven" not in out, f"{ex}: the baseline against itself: proven, strict ok")
        refused = 0
        for i, (name, ex, edits, extra, describe, expect, words) in enumerate(CASES):
            mutant, log = build(ex, edits, extra, describe, os.path.join(WORK, f"mutant-{i}"))
            if expect == "build":
                ok(mutant is None and all(w in log for w in words), f"{name}: the build fails in luo-describe")
                if not (mutant is None and all(w in log for w in words)):
                    print("  " + log)
                refused += 1
                continue
            if not ok(mutant is not None, f"{name}: builds"):
                print("  " + log)
                continue
            rc, out = luoctl("check", mutant, "--against", baselines[ex])
            src, sout = luoctl("check", mutant, "--against", baselines[ex], "--strict")
            if expect == "refuse":
                good = rc == 1 and "would be refused" in out and all(w in out for w in words)
                ok(good, f"{name}: luoctl check refuses, naming {words}")
                refused += good
                live_update(baselines[ex], mutant, ex, False, words, name)
            elif expect == "downgrade":
                good = (rc == 0 and re.search(r"component +counter .*DOWNGRADE", out) is not None
                        and all(w in out for w in words) and src == 1)
                ok(good, f"{name}: luoctl check says DOWNGRADE naming {words}; --strict refuses")
                refused += good
                live_update(baselines[ex], mutant, ex, True, words, name)
            else:
                good = rc == 0 and src == 0 and "DOWNGRADE" not in out and "unproven" not in out
                ok(good, f"{name}: would proceed, proven, no downgrade")
            if not good:
                print("  " + out.replace("\n", "\n  "))
        ok(refused >= 12, f"{refused} distinct mistakes caught before the switch (at least 12)")
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    return tap.summary()


if __name__ == "__main__":
    sys.exit(main())
