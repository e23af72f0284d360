#!/usr/bin/env bash
# The example service under load: two live updates to itself, then one to a
# binary that does not exist (refused, it keeps serving). The client must see
# no refused connection, no error and no counter jump.
set -euo pipefail
bin=$1
tmp=$(mktemp -d)
server=
cleanup() { [ -n "$server" ] && kill -9 "$server" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

"$bin" serve --port-file "$tmp/port" > "$tmp/server" 2>&1 &
server=$!
for _ in $(seq 200); do [ -s "$tmp/port" ] && break; sleep 0.05; done
port=$(cat "$tmp/port")
"$bin" client --port "$port" --seconds 2 > "$tmp/client" &
client=$!
sleep 0.4; kill -HUP "$server"
sleep 0.4; kill -HUP "$server"
sleep 0.4
wait "$client" || { cat "$tmp/client" "$tmp/server"; echo "FAIL: client saw errors"; exit 1; }
grep -q "generation 2: counter" "$tmp/server" || { cat "$tmp/server"; echo "FAIL: no second generation"; exit 1; }
echo "ok - two live updates under load: $(cat "$tmp/client")"

# An update to a missing binary is refused; the same server answers on.
kill -TERM "$server"; wait "$server" || true
"$bin" serve --port-file "$tmp/port2" --next /nonexistent/luo-counter > "$tmp/server2" 2>&1 &
server=$!
for _ in $(seq 200); do [ -s "$tmp/port2" ] && break; sleep 0.05; done
port=$(cat "$tmp/port2")
kill -HUP "$server"
sleep 0.3
"$bin" client --port "$port" --seconds 0.3 > "$tmp/client2" || { cat "$tmp/client2" "$tmp/server2"; exit 1; }
grep -q "failed: No such file or directory; still serving" "$tmp/server2" || { cat "$tmp/server2"; exit 1; }
echo "ok - update to a missing binary refused, still serving: $(cat "$tmp/client2")"
