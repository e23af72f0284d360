#!/usr/bin/env bash
# The post-link step and what it leaves in a binary:
#   - strip keeps the descriptions: luoctl manifest --json before and after
#     gives the same types, digests and item counts; readelf -n lists them;
#   - luo-describe run again on its own output gives the same bytes;
#   - a build without debug information is refused, naming the fix;
#   - a file handler's data type is described and checked before the switch:
#     a member added to it refuses the handler (mandatory);
#   - a binary altered after luo-describe (its description no longer matches
#     the digest in its note) is refused by the manifest reader.
# usage: test-describe.sh LUO_DESCRIBE LUOCTL KVCACHE SOURCE_ROOT BUILD_ROOT
set -euo pipefail
describe=$1 luoctl=$2 kvcache=$3 src=$4 build=$5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "not ok - $*"; exit 1; }
san=()
case ${SEED_SANITIZE:-none} in none | '') ;; *) san=(-fsanitize="$SEED_SANITIZE") ;; esac

types() { "$luoctl" manifest --json "$1" | python3 -c '
import json, sys
m = json.load(sys.stdin)
for t in m["types"]:
    print(t["component"], t["version"], t["role"], t["described"], t["digest"], t["items"])'; }

cp "$kvcache" "$tmp/kv"
types "$tmp/kv" > "$tmp/before"
grep -q " True " "$tmp/before" || fail "kvcache declares no described type"
strip "$tmp/kv"
readelf -S "$tmp/kv" > "$tmp/sections"
grep -q '\.debug_info' "$tmp/sections" && fail "strip left debug information"
types "$tmp/kv" > "$tmp/after"
cmp -s "$tmp/before" "$tmp/after" || { diff "$tmp/before" "$tmp/after"; fail "strip changed the manifest's types"; }
echo "ok - strip keeps the descriptions: $(wc -l < "$tmp/after") types, same digests and items"
readelf -n "$tmp/kv" > "$tmp/notes"
grep -q 'Displaying notes found in: .note.luo.types' "$tmp/notes" || fail "readelf -n does not list .note.luo.types"
[ "$(awk '/note.luo.types/{p=1} p && $1 == "LUO"' "$tmp/notes" | wc -l)" -eq "$(wc -l < "$tmp/after")" ] ||
	fail "readelf -n shows another number of LUO descriptions"
echo "ok - readelf -n lists one LUO note per type in .note.luo.types"

cp "$kvcache" "$tmp/again"
"$describe" "$tmp/again"
cmp -s "$kvcache" "$tmp/again" || fail "luo-describe on its own output changed the bytes"
echo "ok - luo-describe is idempotent"

cc=(cc -std=gnu17 -D_GNU_SOURCE -Wall -Wextra -Werror "-I$src/include" "${san[@]}" "-L$build/src/lib"
	"-Wl,-rpath,$build/src/lib")
"${cc[@]}" -g0 -O2 "$src/tests/describe-fixture.c" -o "$tmp/nodebug" -lluo
if "$describe" --output "$tmp/nodebug.out" "$tmp/nodebug" 2> "$tmp/err"; then fail "a build without -g was described"; fi
grep -q "no debug information" "$tmp/err" || { cat "$tmp/err"; fail "the refusal does not say why"; }
[ ! -e "$tmp/nodebug.out" ] || fail "a refused luo-describe left an output"
echo "ok - a build without debug information is refused: $(head -n 1 "$tmp/err")"

for v in 0 1; do
	"${cc[@]}" -g -O2 -DVARIANT=$v "$src/tests/describe-fixture.c" -o "$tmp/fx$v.raw" -lluo
	"$describe" --output "$tmp/fx$v" "$tmp/fx$v.raw"
done
rc=0
"$luoctl" check "$tmp/fx1" --against "$tmp/fx0" > "$tmp/check" || rc=$?
[ "$rc" -eq 1 ] || { cat "$tmp/check"; fail "a changed handler data type: check exit $rc, expected 1"; }
grep -qE "handler +fixture-pipe .*REFUSE .*handler data type: struct pipe_data: 2 members in the old image, 3 in the new \(mode added\)" "$tmp/check" ||
	{ cat "$tmp/check"; fail "the report does not name the handler's struct and member"; }
echo "ok - a handler's data type changed: refused before the switch, naming struct pipe_data and mode"
"$luoctl" check "$tmp/fx0" --against "$tmp/fx0" --strict > /dev/null || fail "the fixture against itself is not strict-clean"

# Alter a description after luo-describe: flip one byte inside the item
# array of the first LUO description (the digest in .note.luo stays).
python3 - "$tmp/fx0" "$tmp/altered" <<'PY'
import subprocess, sys
src, dst = sys.argv[1:]
data = bytearray(open(src, "rb").read())
out = subprocess.run(["readelf", "-S", "-W", src], capture_output=True, text=True).stdout
for line in out.splitlines():
    if ".note.luo.types" in line:
        f = line.split("]", 1)[1].split()
        off = int(f[3], 16)
        break
# note header 16 bytes, typedesc header 72 bytes: the first item's size field
data[off + 16 + 72 + 4] ^= 0x40
open(dst, "wb").write(data)
PY
rc=0
"$luoctl" manifest "$tmp/altered" > "$tmp/m" 2>&1 || rc=$?
[ "$rc" -eq 2 ] && grep -q "does not match the description\|does not match" "$tmp/m" ||
	{ cat "$tmp/m"; fail "an altered description was read (exit $rc)"; }
echo "ok - a description altered after luo-describe refuses the manifest: $(tail -n 1 "$tmp/m")"
