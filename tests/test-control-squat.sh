#!/usr/bin/env bash
# The control socket's address taken first by another uid: any process may
# bind any abstract name, and @luo-control.<pid> is predictable. uid 65534
# binds @luo-control.P before the service P starts; the service must listen
# on @luo-control.P.<nonce> instead, and luoctl update --pid P must find it
# among P's own sockets (not the squatter's) and be done. The squatter also
# binds a dozen decoys @luo-control.P.<hex> that luoctl must never use.
#
# usage: test-control-squat.sh LUO_COUNTER_V1 LUO_COUNTER_V2 LUOCTL
set -euo pipefail
counter_v1=$1 counter_v2=$2 luoctl=$3
. "$(dirname "$0")/service-lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "1..0 # SKIP needs root (another uid squats)"; exit 77; }
command -v setpriv > /dev/null || { echo "1..0 # SKIP no setpriv"; exit 77; }
py=$(command -v /usr/bin/python3 || command -v python3) # not a shim under /root
squatter=
trap '[ -n "$squatter" ] && kill -9 "$squatter" 2>/dev/null; cleanup' EXIT
fds_luoctl_before=$(ls /proc/self/fd | wc -l)

# The service is started stopped, so its pid is known before it binds.
sh -c 'kill -STOP $$; exec "$@"' sh "$counter_v1" serve --port-file "$tmp/port" > "$tmp/server" 2>&1 &
server=$!
for _ in $(seq 100); do grep -q '^State:.*T' "/proc/$server/status" 2>/dev/null && break; sleep 0.05; done

setpriv --reuid 65534 --regid 65534 --clear-groups "$py" -c '
import socket, sys, time
pid = int(sys.argv[1]); held = []
names = [b"\0luo-control.%d" % pid] + [b"\0luo-control.%d.%016x" % (pid, i) for i in range(12)]
for n in names:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.bind(n); s.listen(8); held.append(s)
print("squatting", len(held), flush=True)
time.sleep(60)
' "$server" > "$tmp/squat" 2>&1 &
squatter=$!
wait_in "$tmp/squat" "squatting"
echo "ok - uid 65534 holds @luo-control.$server and 12 decoys"

kill -CONT "$server"
wait_for() { wait_in "$tmp/server" "$@"; }
wait_for "generation 0"
grep -q "no control socket" "$tmp/server" && { cat "$tmp/server"; fail "the service has no control socket"; }
name=$(awk -v p="@luo-control.$server." 'index($8, p) == 1 && length($8) == length(p) + 16 && $8 !~ /\.00000000000000[0-9a-f][0-9a-f]$/ { print $8 }' /proc/net/unix | sort -u)
[ -n "$name" ] || fail "no @luo-control.$server.<nonce> in /proc/net/unix"
echo "ok - the service listens on a name of its own, not a decoy: $name"

set +e
"$luoctl" update --pid "$server" "$counter_v2" --timeout 20 > "$tmp/update" 2>&1
rc=$?
set -e
[ "$rc" -eq 0 ] && grep -q "done" "$tmp/update" || { cat "$tmp/update" "$tmp/server"; grep luo-control /proc/net/unix; fail "luoctl update --pid $server: exit $rc"; }
wait_for "generation 1"
echo "ok - luoctl update --pid $server found the service past the squatter: $(head -c 90 "$tmp/update")"

# After the exec the new image keeps the same listener (the nonce name).
set +e
"$luoctl" update --pid "$server" "$counter_v1" --timeout 20 > "$tmp/update2" 2>&1
rc=$?
set -e
[ "$rc" -eq 0 ] || { cat "$tmp/update2"; fail "second luoctl update --pid $server: exit $rc"; }
wait_for "generation 2"
echo "ok - and again after the exec (the listener crossed it)"

kill -TERM "$server"
wait "$server" || true
server=
[ "$(ls /proc/self/fd | wc -l)" -eq "$fds_luoctl_before" ] || fail "fds leaked in the test shell"
echo "ok - no fd leaked"
echo "1..5"
