#!/usr/bin/env python3
"""The types each example build declares match their pinned digests.

usage: test-type-pins.py LUOCTL PINS BINARY...

PINS holds one line per (component, version, role): "COMPONENT VERSION ROLE
DIGEST", as `luoctl manifest --json` reports them after luo-describe. A type
that changes without a new version fails here, naming the component, before
any old binary is at hand to negotiate with; a type declared but not
described (luo-describe skipped) fails too. After a deliberate new version,
regenerate with: test-type-pins.py LUOCTL PINS BINARY... --write
"""
import json
import subprocess
import sys

luoctl, pins_path, *binaries = sys.argv[1:]
write = "--write" in binaries
binaries = [b for b in binaries if b != "--write"]

seen = {}
failed = 0
for b in binaries:
    m = json.loads(subprocess.run([luoctl, "manifest", "--json", b], check=True, capture_output=True,
                                  text=True).stdout)
    if not m["types"]:
        print(f"not ok - {b}: declares no types")
        failed += 1
    for t in m["types"]:
        key = f"{t['component']} {t['version']} {t['role'].replace(' ', '-')}"
        if not t["described"]:
            print(f"not ok - {b}: the {t['role']} type of {t['component']} v{t['version']} is not described")
            failed += 1
            continue
        if key in seen and seen[key] != t["digest"]:
            print(f"not ok - {b}: {key}: digest {t['digest']}, another build has {seen[key]}: "
                  "a type changed without a new version")
            failed += 1
        seen.setdefault(key, t["digest"])

if write:
    with open(pins_path, "w") as f:
        f.write("# component version role digest (tests/test-type-pins.py)\n")
        for k in sorted(seen):
            f.write(f"{k} {seen[k]}\n")
    sys.exit(0)

pins = {}
for line in open(pins_path):
    if line.strip() and not line.startswith("#"):
        c, v, r, d = line.split()
        pins[f"{c} {v} {r}"] = d
for key, digest in sorted(seen.items()):
    if key not in pins:
        print(f"not ok - {key}: declared but not pinned (a new version? add it to {pins_path})")
        failed += 1
    elif pins[key] != digest:
        print(f"not ok - {key}: digest {digest}, pinned {pins[key]}: the type changed without a new version")
        failed += 1
    else:
        print(f"ok - {key} {digest}")
for key in sorted(set(pins) - set(seen)):
    print(f"not ok - {key}: pinned but no build declares it (a released version dropped?)")
    failed += 1
sys.exit(1 if failed else 0)
