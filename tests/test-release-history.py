#!/usr/bin/env python3
"""The release history and the two verbs that read it: luoctl path and history.

usage: test-release-history.py SOURCE_ROOT LUOCTL COUNTER_V1 COUNTER_V2 COUNTER_V3
                               COUNTER_BROKEN COUNTER_HEAD KVCACHE_HEAD KVCACHE_V1 KVCACHE_V2

path: over luo-counter's builds, v1 -> v3 is refused directly and found
through v2 (each hop cross-checked with `luoctl check`); --strict refuses
the hop that drops "stats" and finds none; a recorded manifest is a node
like a binary.

history: HEAD (the default builds) accepts the state of every release
inside the window of dist/releases/{counter,kvcache}. On a copy: a HEAD
that drops read version 1 of "counter" fails, naming the component, the
version and the release, and passes again once restored; a release whose
type digest no longer matches HEAD fails (downgrade); with the window
narrowed to 1, the "can be deleted" report names counter's read version
1, and a HEAD without it then passes. The recorder is append-only and
records what `luoctl manifest` reads. Damaged records are refused, never
crash luoctl.

Live round trip, per example: the build of the oldest release inside the
window serves, HEAD takes over with `luoctl update --pid`, then the old
release again; the counter goes on from where it was, kvcache's items read
back (on a connection kept open throughout, and on new ones).
"""

import json
import os
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

SRC, LUOCTL, V1, V2, V3, BROKEN, HEAD, KV_HEAD, KV1, KV2 = sys.argv[1:11]
# The build of each release of the history, by its record's name.
RELEASE_BUILDS = {"counter": {"v1": V1, "v2": V2}, "kvcache": {"v1": KV1, "v2": KV2}}
# Bounds of the live round trip.
START_TIMEOUT_S = 20
ITEMS = 200
RELEASES = os.path.join(SRC, "dist/releases")
RECORD = os.path.join(RELEASES, "record")



def luoctl(*args):
    p = subprocess.run([LUOCTL, *args], capture_output=True, text=True, timeout=60)
    if p.returncode not in (0, 1, 2) or "Sanitizer" in p.stderr or "runtime error" in p.stderr:
        print(p.stdout, p.stderr)
        ok(False, f"luoctl {' '.join(args)}: exit {p.returncode}, sanitizer or crash")
    return p


def luoctl_json(*args):
    p = luoctl(*args, "--json")
    try:
        return p.returncode, json.loads(p.stdout)
    except json.JSONDecodeError:
        print(p.stdout, p.stderr)
        ok(False, f"luoctl {' '.join(args)} --json: output parses")
        return p.returncode, {}


def base(path):
    return os.path.basename(path)


def test_path():
    d = luoctl("check", V3, "--against", V1)
    ok(d.returncode == 1 and "would be refused" in d.stdout, "v1 -> v3 refused directly by check")

    p = luoctl("path", V1, V3, V2, BROKEN, HEAD)
    ok(p.returncode == 0, f"path v1 -> v3: found (exit {p.returncode})")
    want = f"path: 2 hops: {base(V1)} -> {base(V2)} -> {base(V3)}"
    ok(want in p.stdout, f"path v1 -> v3 goes through v2 ({want!r})")
    ok("direct: " in p.stdout and "REFUSED" in p.stdout.split("\n")[0], "the direct update is shown refused")
    ok("hop 1:" in p.stdout and "ok-drop" in p.stdout and "hop 2:" in p.stdout, "each hop with its verdict")

    r, j = luoctl_json("path", V1, V3, V2, BROKEN, HEAD)
    hops = j.get("hops", [])
    ok(r == 0 and j.get("found") is True and j.get("direct", {}).get("verdict") == "REFUSED",
       "JSON: found, direct REFUSED")
    ok([(h["from"], h["to"]) for h in hops] == [(V1, V2), (V2, V3)], "JSON: hops v1 -> v2 -> v3")
    ok([h["verdict"] for h in hops] == ["ok-drop", "ok"], "JSON: hop verdicts ok-drop, ok")
    for h in hops:
        c = luoctl("check", h["to"], "--against", h["from"])
        ok(c.returncode == 0, f"check agrees: {base(h['from'])} -> {base(h['to'])} would proceed")
        dropped = [e["name"] for e in h["entries"] if e["verdict"] == "drop"]
        ok(("stats" in dropped) == (h["verdict"] == "ok-drop"), f"hop {base(h['from'])}: drops named: {dropped}")

    s = luoctl("path", V1, V3, V2, BROKEN, HEAD, "--strict")
    ok(s.returncode == 1 and "no chain" in s.stdout, "--strict: the hop that drops stats is excluded, no chain")
    r, j = luoctl_json("path", V1, V3, V2, "--strict")
    ok(r == 1 and j.get("found") is False and j.get("hops") == [], "--strict JSON: found false")

    r, j = luoctl_json("path", V3, V1, V2)
    ok(r == 0 and [(h["from"], h["to"]) for h in j.get("hops", [])] == [(V3, V2), (V2, V1)],
       "path v3 -> v1 through v2")
    r, j = luoctl_json("path", V2, V3, V1)
    ok(r == 0 and len(j.get("hops", [])) == 1 and j["direct"]["proceed"] is True,
       "a direct update that would proceed is a chain of one hop")

    rec = os.path.join(RELEASES, "counter/0001-v1.json")
    r, j = luoctl_json("path", rec, V3, V2)
    ok(r == 0 and [h["to"] for h in j.get("hops", [])] == [V2, V3], "from a recorded release: found through v2")
    u = luoctl("path", V1, V3)
    ok(u.returncode == 2 and "need FROM, TO and at least one BUILD" in u.stderr, "path without a BUILD: usage")
    u = luoctl("path", V1, "/nonexistent/build", V2)
    ok(u.returncode == 2 and "/nonexistent/build" in u.stderr and not u.stdout, "path with a missing build: error")


def history(d, head, *extra):
    return luoctl("history", d, head, *extra)


def write_window(d, n):
    with open(os.path.join(d, "window"), "w") as f:
        f.write(f"window: {n}\n")


def narrowed_head(tmp, name="narrow.json"):
    """HEAD's manifest with read (and write) version 1 of "counter" dropped."""
    m = json.loads(luoctl("manifest", "--json", HEAD).stdout)
    for e in m["entries"]:
        if e["name"] == "counter":
            ok(e["read"][0] == 1, "HEAD reads counter version 1 (the premise of the drop)")
            e["read"][0] = e["write"][0] = 2
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        json.dump(m, f)
    return path


def test_history(tmp):
    for ex, head in (("counter", HEAD), ("kvcache", KV_HEAD)):
        d = os.path.join(RELEASES, ex)
        h = history(d, head)
        ok(h.returncode == 0 and "HEAD accepts the state of every release inside the window" in h.stdout,
           f"{ex}: HEAD accepts every release inside the window (exit {h.returncode})")
        r, j = luoctl_json("history", d, head)
        inside = [x for x in j.get("releases", []) if x["in_window"]]
        ok(r == 0 and j.get("accepted") is True and inside and all(x["accepted"] for x in inside),
           f"{ex}: JSON: {len(inside)} releases inside the window, all accepted")
        for x in inside:
            c = luoctl("check", head, "--against", os.path.join(d, x["name"] + ".json"))
            ok(c.returncode == 0, f"{ex}: check agrees: {x['name']} -> HEAD would proceed")

    # Dropping a read version still needed, on a copy; then restoring it.
    d = os.path.join(tmp, "counter")
    shutil.copytree(os.path.join(RELEASES, "counter"), d)
    narrow = narrowed_head(tmp)
    h = history(d, narrow)
    ok(h.returncode == 1, f"HEAD without counter read version 1: history fails (exit {h.returncode})")
    line = [x for x in h.stdout.splitlines() if x.startswith("HEAD can no longer accept")]
    ok(line and "0001-v1" in line[0] and "component counter" in line[0] and "old writes 1..1, new reads 2..2"
       in line[0],
       f"the failure names the release, the component and the version: {line[:1]}")
    r, j = luoctl_json("history", d, narrow)
    v1 = [x for x in j.get("releases", []) if x["name"] == "0001-v1"]
    ok(r == 1 and v1 and v1[0]["accepted"] is False and any(
        e["name"] == "counter" and e["verdict"] == "refuse" for e in v1[0]["entries"]), "JSON: v1 refused, counter")
    c = luoctl("check", narrow, "--against", os.path.join(d, "0001-v1.json"))
    ok(c.returncode == 1, "check NEW.json --against RELEASE.json: refused too")
    restored = os.path.join(tmp, "restored.json")
    with open(restored, "w") as f:
        f.write(luoctl("manifest", "--json", HEAD).stdout)
    ok(history(d, restored).returncode == 0, "read version 1 restored: history passes again")

    # A release's type no longer what HEAD describes at the same version: a downgrade, refused.
    with open(os.path.join(d, "0002-v2.json")) as f:
        rec = json.load(f)
    t = [t for t in rec["types"] if t["component"] == "counter" and t["version"] == 2][0]
    t["digest"] = "%016x" % (int(t["digest"], 16) ^ 1)
    with open(os.path.join(d, "0002-v2.json"), "w") as f:
        json.dump(rec, f)
    h = history(d, HEAD)
    ok(h.returncode == 1 and "0002-v2: NOT ACCEPTED: DOWNGRADE" in h.stdout and "descriptions differ" in h.stdout,
       "a type changed under a released version: refused as a downgrade")
    shutil.rmtree(d)
    shutil.copytree(os.path.join(RELEASES, "counter"), d)

    # What can be deleted: with only v2 in the window, nothing hands counter v1 over.
    r, j = luoctl_json("history", d, HEAD)
    comp = {c["name"]: c for c in j.get("components", [])}
    ok(comp.get("counter", {}).get("deletable") == [], "window 2: counter read version 1 is needed (v1 writes it)")
    write_window(d, 1)
    r, j = luoctl_json("history", d, HEAD)
    comp = {c["name"]: c for c in j.get("components", [])}
    ok(r == 0 and comp.get("counter", {}).get("deletable") == [[1, 1]],
       f"window 1: counter read version 1 can be deleted ({comp.get('counter')})")
    ok("counter: reads 1..2, needed 2; can be deleted: 1" in history(d, HEAD).stdout, "text: the same")
    ok(history(d, narrow).returncode == 0, "window 1: the HEAD that deleted it passes")
    write_window(d, 2)
    ok(history(d, narrow).returncode == 1, "window 2: the same HEAD fails")

    # The window file and the records are checked.
    for bad in ("", "window: 0\n", "window: two\n", "window: 2\nwindow: 3\n", "size: 2\n", "window: 2 extra\n",
                "window: 2x\n"):
        with open(os.path.join(d, "window"), "w") as f:
            f.write(bad)
        ok(history(d, HEAD).returncode == 2, f"window file {bad!r}: refused")
    write_window(d, 2)


def test_record(tmp):
    d = os.path.join(tmp, "rec")
    shutil.copytree(os.path.join(RELEASES, "counter"), d)
    p = subprocess.run([RECORD, LUOCTL, V2, d, "v2"], capture_output=True, text=True)
    ok(p.returncode != 0 and "append-only" in p.stderr, "record: a release recorded twice is refused")
    p = subprocess.run([RECORD, LUOCTL, V3, d, "v3"], capture_output=True, text=True)
    path = p.stdout.strip()
    ok(p.returncode == 0 and base(path) == "0003-v3.json", f"record: v3 appended as {base(path)}")
    a = json.loads(luoctl("manifest", "--json", path).stdout)
    b = json.loads(luoctl("manifest", "--json", V3).stdout)
    ok(a["entries"] == b["entries"], "the record reads back with the binary's entries")
    ok([(t["component"], t["version"], t["role"], t["size"], t["align"], t["digest"]) for t in a["types"]] ==
       [(t["component"], t["version"], t["role"], t["size"], t["align"], t["digest"]) for t in b["types"]],
       "the record reads back with the binary's type digests")
    r, j = luoctl_json("history", d, V3)
    ok(r == 0 and [x["name"] for x in j["releases"] if x["in_window"]] == ["0002-v2", "0003-v3"] and
       [x["name"] for x in j["releases"] if not x["in_window"]] == ["0001-v1"],
       "window 2 over three releases: the last two inside, checked against v3")


def test_hostile(tmp):
    with open(os.path.join(RELEASES, "counter/0002-v2.json"), "rb") as f:
        good = f.read()
    bad = os.path.join(tmp, "bad.json")
    refused = 0
    cases = [good[:n] for n in range(1, len(good), 7)]
    cases += [good.replace(b'"kind"', b'"kind": "component", "kind"', 1),
              good.replace(b'"read": [1, 2]', b'"read": [1, 99999999999]', 1),
              good.replace(b'"read": [1, 2]', b'"read": [-1, 2]', 1),
              good.replace(b'"read": [1, 2]', b'"read": [1.5, 2]', 1),
              good.replace(b'"name": "counter"', b'"name": "co\\u0000unter"', 1),
              good.replace(b'"name": "counter"', b'"name": "' + b"x" * 300 + b'"', 1),
              good.replace(b'"role": "payload"', b'"role": "ghost"', 1),
              good.replace(b'"digest": "', b'"digest": "zz', 1),
              b'{"a":' + b"[" * 40 + b"]" * 40 + b', "entries": []}',
              b"{\"entries\": []} trailing",
              # A key twice: one luoctl reads, one it skips, one inside a skipped object,
              # the same key written with an escape.
              b'{"entries": [], "entries": []}',
              b'{"release": "v1", "release": "v2", "x": 1, "x": 2, "entries": []}',
              b'{"x": {"a": [{"b": 1, "b": 2}]}, "entries": []}',
              b'{"\\u0061": 1, "a": 2, "entries": []}',
              good.replace(b'"kind"', b'"extra": 1, "extra": 2, "kind"', 1),
              # Not UTF-8: a stray byte, a cut sequence, an overlong form, an encoded surrogate,
              # above U+10FFFF; a lone surrogate escaped, or one not followed by a low one.
              b'{"x": "\xff", "entries": []}',
              b'{"x": "\xc3", "entries": []}',
              b'{"x": "\xc0\xaf", "entries": []}',
              b'{"x": "\xed\xa0\x80", "entries": []}',
              b'{"x": "\xf4\x90\x80\x80", "entries": []}',
              b'{"\xff": 1, "entries": []}',
              b'{"x": "\\ud83d", "entries": []}',
              b'{"x": "\\ude00\\ud83d", "entries": []}',
              b'{"x": "\\ud83d\\u0041", "entries": []}',
              good.replace(b"\n", b"\x00", 1),
              b"{\"entries\": [{\"kind\": \"component\", \"name\": \"c\", \"read\": [2, 1], \"write\": [1, 1],"
              b" \"optional\": false}]}"]
    for case in cases:
        with open(bad, "wb") as f:
            f.write(case)
        p = luoctl("check", HEAD, "--against", bad)
        refused += p.returncode == 2 and p.stderr.startswith("luoctl: ")
    ok(refused == len(cases), f"damaged records: {refused} of {len(cases)} refused with a reason, none crashed")
    with open(bad, "wb") as f:
        f.write(b' \n{"entries": [], "unknown": {"nested": [1, 2.5e3, null, true]}}')
    p = luoctl("manifest", bad)
    ok(p.returncode == 0 and "entries   0" in p.stdout, "a record with unknown keys: they are skipped")
    # Strict JSON that is valid: UTF-8 of every length, a surrogate pair, the same key in two objects.
    with open(bad, "wb") as f:
        f.write(b'{"x": "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \\ud83d\\ude00 \\u00e9",'
                b' "y": {"x": 1}, "z": [{"x": 1}, {"x": 2}], "entries": []}')
    p = luoctl("manifest", bad)
    ok(p.returncode == 0 and "entries   0" in p.stdout,
       f"a record with UTF-8, a surrogate pair, a key in two objects: read ({p.stderr.strip()})")
    with open(bad, "wb") as f:
        f.write(b'{"x": {' + b", ".join(b'"k%d": 1' % i for i in range(65)) + b'}, "entries": []}')
    p = luoctl("manifest", bad)
    ok(p.returncode == 2 and "keys in one object" in p.stderr, "an object of more than 64 keys is refused")


def test_undeclared():
    """A binary without .note.luo (it does not link libluo) can neither hand state over nor take it."""
    plain = shutil.which("true") or "/bin/true"
    for old, new, side in ((plain, HEAD, "old"), (HEAD, plain, "new")):
        p = luoctl("check", new, "--against", old)
        ok(p.returncode == 1 and f"the {side} image declares no luo manifest" in p.stdout
           and "would be refused" in p.stdout,
           f"check {base(old)} -> {base(new)}: refused, the {side} side has no .note.luo (exit {p.returncode})")
        r, j = luoctl_json("check", new, "--against", old)
        e = j.get("entries", [])
        ok(r == 1 and j.get("proceed") is False and len(e) == 1 and e[0]["kind"] == "format"
           and e[0]["verdict"] == "refuse" and e[0]["cause"] == "not-declared",
           f"check {base(old)} -> {base(new)} --json: one entry, the format, refused, not declared ({e})")
    p = luoctl("matrix", HEAD, V2, plain)
    ok(p.returncode == 1 and p.stdout.count("declares no luo manifest") == 4,
       f"matrix with a binary without .note.luo: exit {p.returncode}, its four pairs refused with the reason")
    p = luoctl("matrix", HEAD, V2)
    ok(p.returncode == 0, "matrix of libluo builds only: exit 0")
    p = luoctl("path", V1, plain, V2, V3)
    ok(p.returncode == 1 and "declares no luo manifest" in p.stdout, "path to a binary without .note.luo: none")
    r, j = luoctl_json("path", V1, V3, plain, V2)
    ok(r == 0 and [base(h["to"]) for h in j.get("hops", [])] == [base(V2), base(V3)],
       "path: a build without .note.luo is no hop; the chain goes through v2")


class Service:
    """One example build serving on 127.0.0.1, its output in a file."""

    def __init__(self, tmp, argv):
        self.port_file = os.path.join(tmp, "port")
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self.out = open(os.path.join(tmp, "server.out"), "w")
        self.proc = subprocess.Popen(argv + ["--port-file", self.port_file], stdout=self.out,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        self.port = 0
        while time.monotonic() < deadline and self.proc.poll() is None:
            if os.path.exists(self.port_file) and os.path.getsize(self.port_file) > 0:
                with open(self.port_file) as f:
                    self.port = int(f.read().strip())
                break
            time.sleep(0.05)

    def update(self, binary):
        p = luoctl("update", "--pid", str(self.proc.pid), binary, "--timeout", "30")
        done = p.returncode == 0 and f"done, same pid {self.proc.pid}" in p.stdout
        if not done:
            print(p.stdout, p.stderr)
        return done

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        return self.proc.returncode


def counter_inc(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(b"INC\n")
        return int(c.recv(64).split()[0])


class KvConn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def set(self, k, v):
        self.s.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (k, len(v), v))
        return self.line() == b"STORED"

    def get(self, k):
        self.s.sendall(b"get %s\r\n" % k)
        head = self.line()
        if head == b"END":
            return None
        value = self.line()
        return value if self.line() == b"END" else None

    def close(self):
        self.s.close()


def oldest_in_window(example, head):
    r, j = luoctl_json("history", os.path.join(RELEASES, example), head)
    inside = [x["name"] for x in j.get("releases", []) if x["in_window"]]
    return inside[0].split("-", 1)[1] if inside else None


def test_roundtrip_counter(tmp):
    name = oldest_in_window("counter", HEAD)
    old = RELEASE_BUILDS["counter"].get(name)
    if not ok(old is not None, f"counter: the oldest release inside the window ({name}) has a build"):
        return
    s = Service(tmp, [old, "serve"])
    try:
        if not ok(s.port > 0, f"counter {name} serves"):
            return
        values = [counter_inc(s.port) for _ in range(5)]
        ok(values == list(range(values[0], values[0] + 5)), f"counter {name}: counts {values}")
        ok(s.update(HEAD), f"counter: {name} -> HEAD live (luoctl update --pid)")
        v = counter_inc(s.port)
        ok(v == values[-1] + 1, f"counter: HEAD goes on from {values[-1]}: {v}")
        ok(s.update(old), f"counter: HEAD -> {name} back, live")
        w = counter_inc(s.port)
        ok(w == v + 1, f"counter: {name} again goes on from {v}: {w}")
    finally:
        ok(s.stop() == 0, "counter: the service exits 0 on SIGTERM")


def test_roundtrip_kvcache(tmp):
    name = oldest_in_window("kvcache", KV_HEAD)
    old = RELEASE_BUILDS["kvcache"].get(name)
    if not ok(old is not None, f"kvcache: the oldest release inside the window ({name}) has a build"):
        return
    s = Service(tmp, [old, "--memory", "16", "--threads", "2"])
    kept = None
    try:
        if not ok(s.port > 0, f"kvcache {name} serves"):
            return
        kept = KvConn(s.port)
        items = {b"key-%d" % i: b"value-%d-%s" % (i, name.encode()) for i in range(ITEMS)}
        ok(all(kept.set(k, v) for k, v in items.items()), f"kvcache {name}: {ITEMS} items set")
        for target, label in ((KV_HEAD, f"{name} -> HEAD"), (old, f"HEAD -> {name} back")):
            ok(s.update(target), f"kvcache: {label} live (luoctl update --pid)")
            fresh = KvConn(s.port)
            ok(all(kept.get(k) == v for k, v in items.items()), f"kvcache {label}: items read back on the kept connection")
            ok(all(fresh.get(k) == v for k, v in items.items()), f"kvcache {label}: items read back on a new connection")
            fresh.close()
    finally:
        if kept:
            kept.close()
        ok(s.stop() == 0, "kvcache: the service exits 0 on SIGTERM")


def main():
    fds = set(os.listdir("/proc/self/fd"))
    with tempfile.TemporaryDirectory(prefix="luo-history-") as tmp:
        test_path()
        test_undeclared()
        test_history(tmp)
        test_record(tmp)
        test_hostile(tmp)
        test_roundtrip_counter(tmp)
        test_roundtrip_kvcache(tmp)
    ok(set(os.listdir("/proc/self/fd")) <= fds | {str(n) for n in range(3)}, "no fd leaked")
    sys.exit(tap.summary())


main()
