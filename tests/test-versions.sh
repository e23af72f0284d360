#!/usr/bin/env bash
# Versioned state across live updates, under load: one luo-counter process
# goes v1 -> v2 -> v3 -> (v1 refused) -> v2 -> v1 -> (v3 refused), each
# update chosen through --next-file and SIGHUP. After each one the new
# image's line must say what became of each component; a refused one must
# print the negotiation report naming "counter" and REFUSE and keep serving.
# One client runs across all of it: no refused connection, no error, no
# counter jump. Then luoctl matrix / check must agree with what happened.
#
# usage: test-versions.sh LUO_COUNTER_V1 LUO_COUNTER_V2 LUO_COUNTER_V3 LUOCTL
set -euo pipefail
declare -A bin=([v1]=$1 [v2]=$2 [v3]=$3)
luoctl=$4
. "$(dirname "$0")/service-lib.sh"
# Wait until PATTERN is in the server's output [COUNT times].
wait_for() { wait_in "$tmp/server" "$@"; }

# The line of generation G.
gen_line() { grep -- "] generation $1: " "$tmp/server" | tail -n 1; }

# The counter a generation line reports.
gen_counter() { gen_line "$1" | sed -n 's/.*: counter \([0-9]*\).*/\1/p'; }

declare -A live # live["from to"]: ok, ok-drop or REFUSED, as it happened
declare -A live_counter live_stats # the versions loaded (when not refused)
gen=0
current=v1
refusals=0
last_count=0

# update_ok TO COUNTER_VERSION STATS(vN|dropped)
update_ok() {
	local to=$1 cv=$2 stats=$3 line count
	echo "${bin[$to]}" > "$tmp/next"
	kill -HUP "$server"
	gen=$((gen + 1))
	wait_for "] generation $gen: "
	line=$(gen_line "$gen")
	case $line in "[pid $server] "*) ;; *) fail "generation $gen: not pid $server: $line" ;; esac
	case $line in *"; $to build; "*) ;; *) fail "$current -> $to: not the $to build: $line" ;; esac
	case $line in *"counter: loaded at $cv,"*) ;; *) fail "$current -> $to: counter not loaded at $cv: $line" ;; esac
	if [ "$stats" = dropped ]; then
		case $line in *"stats: dropped at negotiation (cold start)"*) ;;
		*) fail "$current -> $to: stats not dropped: $line" ;; esac
		live["$current $to"]=ok-drop
	else
		case $line in *"stats: loaded at $stats;"*) ;; *) fail "$current -> $to: stats not at $stats: $line" ;; esac
		live["$current $to"]=ok
	fi
	live_counter["$current $to"]=${cv#v}
	live_stats["$current $to"]=${stats#v}
	count=$(gen_counter "$gen")
	[ "$count" -ge "$last_count" ] || fail "generation $gen: counter went back from $last_count: $line"
	last_count=$count
	echo "ok - $current -> $to: $line"
	current=$to
	sleep 0.2 # let the client load this image a little
}

# update_refused TO
update_refused() {
	local to=$1
	echo "${bin[$to]}" > "$tmp/next"
	kill -HUP "$server"
	refusals=$((refusals + 1))
	wait_for "luo-counter: still serving" "$refusals"
	[ "$(grep -c "refused at negotiation" "$tmp/server")" -eq "$refusals" ] ||
		fail "$current -> $to: no 'refused at negotiation' line"
	[ "$(grep -cE "^luo-counter: +component +counter +mandatory .*: REFUSE " "$tmp/server")" -eq "$refusals" ] ||
		fail "$current -> $to: the report does not name counter with REFUSE"
	grep -q "] generation $((gen + 1)): " "$tmp/server" && fail "$current -> $to: a new generation started"
	kill -0 "$server" 2>/dev/null || fail "$current -> $to: the server is gone"
	live["$current $to"]=REFUSED
	echo "ok - $current -> $to refused before the switch, pid $server still serving:" \
		"$(grep -E "^luo-counter: +component +counter " "$tmp/server" | tail -n 1 | sed 's/  */ /g')"
	sleep 0.2
}

"${bin[v1]}" serve --port-file "$tmp/port" --next-file "$tmp/next" > "$tmp/server" 2>&1 &
server=$!
wait_for "] generation 0: fresh start"
for _ in $(seq 600); do [ -s "$tmp/port" ] && break; sleep 0.05; done
port=$(cat "$tmp/port")
grep -q "generation 0: fresh start, listening on 127.0.0.1:$port; v1 build; counter: nothing came, stats: nothing came" \
	"$tmp/server" || fail "generation 0 line"
fds_before=$(ls "/proc/$server/fd" | wc -l)

"${bin[v1]}" client --port "$port" --seconds 600 > "$tmp/client" &
client=$!
sleep 0.3 # the client starts; its check does not depend on it

update_ok v2 v1 dropped
update_ok v3 v2 v2
update_refused v1
update_ok v2 v2 v2
update_ok v1 v1 dropped
# luoctl against the running process (now v1) says what the update will meet.
set +e
"$luoctl" check "${bin[v3]}" --pid "$server" > "$tmp/check-pid"
rc=$?
set -e
[ "$rc" -eq 1 ] || { cat "$tmp/check-pid"; fail "luoctl check v3 --pid (a v1 server): exit $rc, expected 1"; }
echo "ok - luoctl check v3 --pid $server (running v1): refused, exit 1"
update_refused v3

kill -INT "$client"
rc=0; wait "$client" || rc=$?
client=
[ "$rc" -eq 0 ] || fail "client exit $rc"
grep -q " 0 refused connections, 0 errors, 0 counter jumps" "$tmp/client" || fail "client saw errors"
client_last=$(sed -n 's/.*(counter [0-9-]* -> \([0-9]*\)).*/\1/p' "$tmp/client")
[ "$client_last" -ge "$last_count" ] || fail "client's last answer $client_last < the last generation's $last_count"
echo "ok - one client across 6 updates: $(cat "$tmp/client")"

fds_after=$(ls "/proc/$server/fd" | wc -l)
[ "$fds_after" -eq "$fds_before" ] || { ls -l "/proc/$server/fd"; fail "fds: $fds_before at start, $fds_after now"; }
echo "ok - no fd leaked in the server across the updates ($fds_after open)"

kill -TERM "$server"
rc=0; wait "$server" || rc=$?
server=
[ "$rc" -eq 0 ] || fail "server exit $rc"
final=$(sed -n 's/.*stopping with counter \([0-9]*\).*/\1/p' "$tmp/server")
# A request the client abandoned when told to stop may have been counted.
[ "$final" -ge "$client_last" ] && [ "$final" -le $((client_last + 1)) ] ||
	fail "server stopped at $final, the client's last answer was $client_last"
echo "ok - the server stopped cleanly at counter $final"

# What luoctl says, without running anything, must be what happened.
"$luoctl" matrix "${bin[v1]}" "${bin[v2]}" "${bin[v3]}" > "$tmp/matrix" || fail "luoctl matrix failed"
cat "$tmp/matrix"
names=(v1 v2 v3)
for row in 0 1 2; do
	read -r -a cells <<< "$(sed -n "$((row + 2))p" "$tmp/matrix")"
	[ "${cells[0]}" = "$(basename "${bin[${names[$row]}]}")" ] || fail "matrix row $row: '${cells[0]}'"
	for col in 0 1 2; do
		from=${names[$row]} to=${names[$col]} cell=${cells[$((col + 1))]}
		if [ "$row" -eq "$col" ]; then
			[ "$cell" = "-" ] || fail "matrix $from -> $to: '$cell', expected '-'"
			continue
		fi
		[ "$cell" = "${live["$from $to"]}" ] ||
			fail "matrix $from -> $to: '$cell', but live it was '${live["$from $to"]}'"
	done
done
echo "ok - luoctl matrix agrees with the six live updates"

"$luoctl" matrix "${bin[v1]}" "${bin[v2]}" "${bin[v3]}" --json > "$tmp/matrix.json" || fail "luoctl matrix --json"
expect=()
for pair in "${!live[@]}"; do
	read -r from to <<< "$pair"
	expect+=("${bin[$from]}" "${bin[$to]}" "${live[$pair]}" "${live_counter[$pair]:-}" "${live_stats[$pair]:-}")
done
python3 - "$tmp/matrix.json" "${expect[@]}" <<'EOF' || fail "luoctl matrix --json disagrees"
import json, sys

def check(ok, *what):
    if not ok:
        sys.exit("matrix --json: %r" % (what,))
doc = json.load(open(sys.argv[1]))
cells = {(c["from"], c["to"]): c for c in doc["cells"]}
args = sys.argv[2:]
check(len(cells) == 6 and len(args) == 6 * 5, len(cells), len(args))
for i in range(0, len(args), 5):
    frm, to, verdict, counter, stats = args[i:i + 5]
    c = cells[(frm, to)]
    want_proceed = verdict != "REFUSED"
    check(c["proceed"] == want_proceed, frm, to, c)
    check(c["refused"] == ([] if want_proceed else ["counter"]), frm, to, c)
    # A refused pair still reports each entry's verdict: stats has no
    # common version between v1 and v3 either.
    check(c["dropped"] == (["stats"] if stats == "dropped" or not want_proceed else []), frm, to, c)
    if want_proceed:
        check(c["versions"].get("counter") == int(counter), frm, to, c)
        if stats == "dropped":
            check("stats" not in c["versions"], frm, to, c)
        else:
            check(c["versions"].get("stats") == int(stats), frm, to, c)
    else:
        check("counter" not in c["versions"], frm, to, c)
print("ok - luoctl matrix --json agrees: proceed, refused, dropped and versions of every pair")
EOF

set +e
"$luoctl" check "${bin[v3]}" --against "${bin[v1]}" > "$tmp/check31"; rc31=$?
"$luoctl" check "${bin[v2]}" --against "${bin[v1]}" > "$tmp/check21"; rc21=$?
set -e
[ "$rc31" -eq 1 ] || { cat "$tmp/check31"; fail "luoctl check v3 --against v1: exit $rc31, expected 1"; }
[ "$rc21" -eq 0 ] || { cat "$tmp/check21"; fail "luoctl check v2 --against v1: exit $rc21, expected 0"; }
echo "ok - luoctl check: v1 -> v3 exit 1 (refused), v1 -> v2 exit 0 (would proceed)"

# luoctl update --strict refuses what check --strict answers no to: v2 -> v1
# drops stats. The service refuses before anything is frozen and serves on;
# the same update without --strict is done.
: > "$tmp/server"
"${bin[v2]}" serve --port-file "$tmp/port2" > "$tmp/server" 2>&1 &
server=$!
wait_for "generation 0"
set +e
"$luoctl" update --strict --pid "$server" "${bin[v1]}" --timeout 20 > "$tmp/strict" 2>&1; rc=$?
set -e
[ "$rc" -eq 1 ] && grep -q "strict" "$tmp/strict" && grep -q "stats" "$tmp/strict" ||
	{ cat "$tmp/strict"; fail "luoctl update --strict v2 -> v1 (drops stats): exit $rc, expected 1 naming stats"; }
grep -q "generation 1" "$tmp/server" && fail "a strict refusal started a new generation"
kill -0 "$server" || fail "the server is gone after a strict refusal"
echo "ok - luoctl update --strict v2 -> v1: refused (stats would be dropped), pid $server serving on"
"$luoctl" update --pid "$server" "${bin[v1]}" --timeout 20 > "$tmp/loose" 2>&1 ||
	{ cat "$tmp/loose"; fail "luoctl update v2 -> v1 without --strict: not done"; }
wait_for "generation 1"
echo "ok - luoctl update v2 -> v1 without --strict: done ($(head -c 100 "$tmp/loose"))"
kill -TERM "$server"
wait "$server" || true
server=
