#!/usr/bin/env bash
# A service killed with SIGKILL gets its session back from luod: a memfd's
# bytes, a mandatory component's value, an arena's list at the same
# address, and a listening socket that refused no connection while the
# service was dead (the client connects in between and is served by the
# restarted service from the backlog).
# Usage: test-agent-crash.sh LUOD AGENT-SERVICE
set -uo pipefail
luod=$1
service=$2
. "$(dirname "$0")/service-lib.sh"

agent=
stop_agent() { [ -n "$agent" ] && kill "$agent" 2>/dev/null && wait "$agent" 2>/dev/null; agent=; }
trap 'stop_agent; cleanup' EXIT

export LUO_AGENT_SOCKET=$tmp/agent.sock
"$luod" >"$tmp/server-luod.log" 2>&1 &
agent=$!
for _ in $(seq 200); do [ -S "$LUO_AGENT_SOCKET" ] && break; sleep 0.05; done
[ -S "$LUO_AGENT_SOCKET" ] || fail "luod did not create $LUO_AGENT_SOCKET"

"$service" deposit >"$tmp/server-1.out" 2>&1 &
server=$!
wait_in "$tmp/server-1.out" deposited
port=$(sed -n 's/^port //p' "$tmp/server-1.out")
kill -9 "$server"
wait "$server" 2>/dev/null
server=

# The service is dead; luod holds its listening socket: no refusal.
exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "connection refused while the service was dead"
printf 'ping\n' >&3

"$service" restore >"$tmp/server-2.out" 2>&1 &
server=$!
wait_in "$tmp/server-2.out" OK
wait "$server" || fail "the restored service failed"
server=
read -r -t 10 reply <&3 || fail "no reply from the restored service"
exec 3>&-
[ "$reply" = "pong 4242" ] || fail "reply '$reply', expected 'pong 4242'"
[ "$(sed -n 's/^arena //p' "$tmp/server-1.out")" = "$(sed -n 's/^arena //p' "$tmp/server-2.out")" ] ||
	fail "the arena moved"
echo "ok - SIGKILL, a connection in the backlog, restart: everything back from luod"
