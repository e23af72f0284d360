#!/usr/bin/env bash
# Rollback under load: a v2 luo-counter live-updates to luo-counter-broken,
# whose "counter" load always fails. Negotiation cannot see that (luoctl
# check says the update would proceed): the broken image's luo_open() finds
# it, and libluo execs the v2 binary again with the same handover. The v2
# image says "rolled back: ..." with the counter and stats intact, same pid,
# and the client sees no refused connection, no error, no counter jump. A
# later update to a good binary still works.
#
# usage: test-rollback.sh LUO_COUNTER_V2 LUO_COUNTER_BROKEN LUOCTL
set -euo pipefail
v2=$1
broken=$2
luoctl=$3
. "$(dirname "$0")/service-lib.sh"
# Wait until PATTERN is in the server's output [COUNT times].
wait_for() { wait_in "$tmp/server" "$@"; }

gen_line() { grep -- "] generation $1: " "$tmp/server" | tail -n 1; }
gen_counter() { gen_line "$1" | sed -n 's/.*: counter \([0-9]*\).*/\1/p'; }

# A load failure is not a negotiation refusal: luoctl cannot see it coming.
set +e
"$luoctl" check "$broken" --against "$v2" > "$tmp/check"
rc=$?
set -e
[ "$rc" -eq 0 ] || { cat "$tmp/check"; fail "luoctl check broken --against v2: exit $rc, expected 0"; }
echo "ok - luoctl check: v2 -> broken would proceed (the failure is in its load, not its versions)"

"$v2" serve --port-file "$tmp/port" --next-file "$tmp/next" > "$tmp/server" 2>&1 &
server=$!
wait_for "] generation 0: fresh start"
for _ in $(seq 600); do [ -s "$tmp/port" ] && break; sleep 0.05; done
port=$(cat "$tmp/port")
fds_before=$(ls "/proc/$server/fd" | wc -l)

"$v2" client --port "$port" --seconds 600 > "$tmp/client" &
client=$!
sleep 0.3 # the client starts; its check does not depend on it

echo "$broken" > "$tmp/next"
kill -HUP "$server"
wait_for "] generation 0: counter "
rb=$(grep "rolled back: " "$tmp/server" || true)
[ -n "$rb" ] || fail "no 'rolled back:' line"
case $rb in "[pid $server] rolled back: component 'counter': load of version 2 failed"*) ;;
*) fail "the rollback line does not name the counter's failed load: $rb" ;; esac
line=$(gen_line 0)
case $line in "[pid $server] generation 0: counter "*"; v2 build; counter: loaded at v2, stats: loaded at v2;"*) ;;
*) fail "after the rollback, not v2 with both components loaded at 2: $line" ;; esac
case $line in *"(live updates crossed: 0)"*) ;; *) fail "the rollback counted as an update crossed: $line" ;; esac
grep -q "broken build" "$tmp/server" && fail "the broken image printed a generation line"
echo "ok - v2 -> broken rolled back to v2, pid $server: $rb"
echo "ok - $line"
sleep 0.2

# The rollback marker does not stick: the next good update goes ahead. The
# rollback kept the old image's liveupdate number (0), so this is generation 1.
echo "$v2" > "$tmp/next"
kill -HUP "$server"
wait_for "] generation 1: "
line=$(gen_line 1)
case $line in "[pid $server] generation 1: counter "*"; v2 build; counter: loaded at v2, stats: loaded at v2;"*) ;;
*) fail "the update after the rollback: $line" ;; esac
case $line in *"(live updates crossed: 1)"*) ;; *) fail "the update after the rollback not counted: $line" ;; esac
grep -q "rolled back: " <(sed -n '/] generation 0: counter /,$p' "$tmp/server" | tail -n +2) &&
	fail "a second rollback"
[ "$(gen_counter 1)" -ge "$(gen_counter 0)" ] || fail "the counter went back"
echo "ok - then v2 -> v2 updates normally: $line"
sleep 0.2

kill -INT "$client"
rc=0; wait "$client" || rc=$?
client=
[ "$rc" -eq 0 ] || fail "client exit $rc"
grep -q " 0 refused connections, 0 errors, 0 counter jumps" "$tmp/client" || fail "client saw errors"
client_last=$(sed -n 's/.*(counter [0-9-]* -> \([0-9]*\)).*/\1/p' "$tmp/client")
echo "ok - the client across the rollback: $(cat "$tmp/client")"

fds_after=$(ls "/proc/$server/fd" | wc -l)
[ "$fds_after" -eq "$fds_before" ] || { ls -l "/proc/$server/fd"; fail "fds: $fds_before at start, $fds_after now"; }
echo "ok - no fd leaked in the server ($fds_after open)"

kill -TERM "$server"
rc=0; wait "$server" || rc=$?
server=
[ "$rc" -eq 0 ] || fail "server exit $rc"
stop=$(grep "stopping with counter" "$tmp/server")
final=$(sed -n 's/.*stopping with counter \([0-9]*\).*/\1/p' <<< "$stop")
[ "$final" -ge "$client_last" ] && [ "$final" -le $((client_last + 1)) ] ||
	fail "server stopped at $final, the client's last answer was $client_last"
# stats crossed the rollback and the next update: it counted the failure.
case $stop in *", 1 failed updates"*) ;; *) fail "stats did not count the rolled-back update: $stop" ;; esac
echo "ok - $stop"
