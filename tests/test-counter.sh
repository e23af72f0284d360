#!/usr/bin/env bash
# The example service under load: two live updates to itself, then one to a
# binary that does not exist (refused, it keeps serving). The client must see
# no refused connection, no error and no counter jump. Versions between
# builds: test-versions.sh; rollback: test-rollback.sh.
set -euo pipefail
bin=$1
. "$(dirname "$0")/service-lib.sh"
wait_for() { wait_in "$@"; }

stop_server() {
	local rc=0
	kill -TERM "$server"
	wait "$server" || rc=$?
	server=
	[ "$rc" -eq 0 ] || fail "server exit $rc"
}

"$bin" serve --port-file "$tmp/port" > "$tmp/server" 2>&1 &
server=$!
wait_for "$tmp/server" "generation 0: fresh start"
for _ in $(seq 600); do [ -s "$tmp/port" ] && break; sleep 0.05; done
port=$(cat "$tmp/port")
"$bin" client --port "$port" --seconds 600 > "$tmp/client" &
client=$!
sleep 0.3; kill -HUP "$server"
wait_for "$tmp/server" "generation 1: counter"
sleep 0.3; kill -HUP "$server"
wait_for "$tmp/server" "generation 2: counter"
sleep 0.3
kill -INT "$client"
rc=0; wait "$client" || rc=$?
client=
[ "$rc" -eq 0 ] || fail "client saw errors"
grep -q "\[pid $server\] generation 2: counter .*; v2 build; counter: loaded at v2, stats: loaded at v2;" \
	"$tmp/server" || fail "generation 2 is not pid $server with both components"
echo "ok - two live updates under load: $(cat "$tmp/client")"
stop_server

# An update to a missing binary is refused; the same server answers on.
"$bin" serve --port-file "$tmp/port2" --next /nonexistent/luo-counter > "$tmp/server2" 2>&1 &
server=$!
wait_for "$tmp/server2" "generation 0: fresh start"
for _ in $(seq 600); do [ -s "$tmp/port2" ] && break; sleep 0.05; done
port=$(cat "$tmp/port2")
kill -HUP "$server"
wait_for "$tmp/server2" "still serving"
grep -q "failed: No such file or directory; still serving" "$tmp/server2" || fail "no refusal line"
"$bin" client --port "$port" --seconds 0.3 > "$tmp/client2" || fail "client after the refused update"
echo "ok - update to a missing binary refused, still serving: $(cat "$tmp/client2")"
stop_server
