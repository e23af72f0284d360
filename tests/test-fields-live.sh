#!/usr/bin/env bash
# Declared state across live updates: a field added without a version bump
# crosses both ways. luo-counter-v2plus is luo-counter-v2 with one more
# field in "counter" at the same version 2 (plus_takeovers, default 100,
# counted up by each plus image that takes the counter over). One process
# goes v2 -> v2plus -> v2plus -> v2 -> v2plus: the field is defaulted where
# it did not come (101), crosses between plus images (102), is dropped by
# v2 and defaulted again after it (101); the counter goes on throughout,
# one client sees no error. luoctl check names the field: defaulted one
# way, lost the other, and --json says the same.
#
# usage: test-fields-live.sh LUO_COUNTER_V2 LUO_COUNTER_V2PLUS LUOCTL
set -euo pipefail
declare -A bin=([v2]=$1 [v2plus]=$2)
luoctl=$3
. "$(dirname "$0")/service-lib.sh"
wait_for() { wait_in "$tmp/server" "$@"; }
gen_line() { grep -- "] generation $1: " "$tmp/server" | tail -n 1; }
gen=0
last_count=0

# update TO [PLUS_TAKEOVERS]: the new image's line, its counter going on.
update() {
	local to=$1 plus=${2:-} line count
	echo "${bin[$to]}" > "$tmp/next"
	kill -HUP "$server"
	gen=$((gen + 1))
	wait_for "] generation $gen: "
	line=$(gen_line "$gen")
	case $line in *"; $to build; "*) ;; *) fail "-> $to: not the $to build: $line" ;; esac
	case $line in *"counter: loaded at v2,"*) ;; *) fail "-> $to: counter not loaded at v2: $line" ;; esac
	if [ -n "$plus" ]; then
		case $line in *", plus takeovers $plus)"*) ;; *) fail "-> $to: plus takeovers not $plus: $line" ;; esac
	else
		case $line in *"plus takeovers"*) fail "-> $to: a v2 build shows the field: $line" ;; esac
	fi
	count=$(sed -n 's/.*: counter \([0-9]*\).*/\1/p' <<< "$line")
	[ "$count" -ge "$last_count" ] || fail "generation $gen: counter went back from $last_count: $line"
	last_count=$count
	echo "ok - -> $to: $line"
	sleep 0.2
}

"${bin[v2]}" serve --port-file "$tmp/port" --next-file "$tmp/next" > "$tmp/server" 2>&1 &
server=$!
wait_for "] generation 0: fresh start"
for _ in $(seq 600); do [ -s "$tmp/port" ] && break; sleep 0.05; done
port=$(cat "$tmp/port")
fds_before=$(ls "/proc/$server/fd" | wc -l)
"${bin[v2]}" client --port "$port" --seconds 600 > "$tmp/client" &
client=$!
sleep 0.3

update v2plus 101  # it did not come: default 100, this take-over counted
update v2plus 102  # it crosses
update v2          # v2 does not know it: dropped
update v2plus 101  # defaulted again

kill -INT "$client"
rc=0; wait "$client" || rc=$?
client=
[ "$rc" -eq 0 ] || fail "client exit $rc"
grep -q " 0 refused connections, 0 errors, 0 counter jumps" "$tmp/client" || fail "client saw errors"
echo "ok - one client across 4 updates: $(cat "$tmp/client")"
fds_after=$(ls "/proc/$server/fd" | wc -l)
[ "$fds_after" -eq "$fds_before" ] || { ls -l "/proc/$server/fd"; fail "fds: $fds_before at start, $fds_after now"; }
echo "ok - no fd leaked in the server across the updates ($fds_after open)"
kill -TERM "$server"
rc=0; wait "$server" || rc=$?
server=
[ "$rc" -eq 0 ] || fail "server exit $rc"

# Before the switch, the verdict names the field each way.
"$luoctl" check "${bin[v2plus]}" --against "${bin[v2]}" > "$tmp/check-up" || fail "check v2 -> v2plus refused"
grep -qE "^ +field plus_takeovers +- -> u32 +defaulted$" "$tmp/check-up" || { cat "$tmp/check-up"; fail "v2 -> v2plus: not defaulted"; }
grep -qE "^ +field count +u64 -> u64 +crosses$" "$tmp/check-up" || { cat "$tmp/check-up"; fail "v2 -> v2plus: count does not cross"; }
"$luoctl" check "${bin[v2]}" --against "${bin[v2plus]}" > "$tmp/check-down" || fail "check v2plus -> v2 refused"
grep -qE "^ +field plus_takeovers +u32 -> - +lost$" "$tmp/check-down" || { cat "$tmp/check-down"; fail "v2plus -> v2: not lost"; }
echo "ok - luoctl check: plus_takeovers defaulted v2 -> v2plus, lost v2plus -> v2"
"$luoctl" check "${bin[v2]}" --against "${bin[v2plus]}" --json > "$tmp/check.json" || fail "check --json"
python3 - "$tmp/check.json" <<'PY' || fail "check --json: the field's fate"
import json, sys
d = json.load(open(sys.argv[1]))
c = [f for f in d["fields"] if f["component"] == "counter"][0]
fates = {f["name"]: f["fate"] for f in c["fields"]}
assert c["version"] == 2 and fates["plus_takeovers"] == "lost" and fates["count"] == "crosses", c
PY
echo "ok - luoctl check --json: the same"
