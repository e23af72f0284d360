#!/usr/bin/env bash
# kvcache live updates under load, with a verifying client (test-kvcache-client)
# that keeps 4 persistent connections open throughout and opens and closes
# more all along:
#
#   v1 -> v2      SIGHUP (--next-file)     done: generation 1, store at v1
#   v2 -> v1      luoctl update --pid      done: generation 2 (downgrade)
#   v1 -> v3      SIGHUP                   refused: report names kvcache-store
#   v1 -> v2      luoctl update --pid      done: generation 3
#   v2 -> v3      luoctl update --pid      refused (exit 1), still serving
#
# Then: same pid all along; the client saw no error, no refused or broken
# connection, no lost item (every key reads back its last value on the same
# connections); stats say liveupdate_number 3; luoctl matrix agrees with what
# happened; then memaslap (if installed) with verification across one more
# update; the new image's arena populate thread ran and logged its end;
# the server exits 0 on SIGTERM with no fd left over from clients.
# KVCACHE_ITEMS (default 100000) sets the load.
#
# usage: test-kvcache-update.sh KVCACHE_V1 KVCACHE_V2 KVCACHE_V3 LUOCTL CLIENT
set -euo pipefail
declare -A bin=([v1]=$1 [v2]=$2 [v3]=$3)
luoctl=$4
kvclient=$5
items=${KVCACHE_ITEMS:-100000}
. "$(dirname "$0")/service-lib.sh"
wait_for() { wait_in "$tmp/server" "$@"; }
gen_line() { grep -- "] generation $1: " "$tmp/server" | tail -n 1; }

# stats NAME: one stat, asked on a new connection.
stat() {
	python3 - "$port" "$1" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"stats\r\n")
buf = b""
while not buf.endswith(b"END\r\n"):
    d = s.recv(65536)
    if not d:
        sys.exit("stats: connection closed")
    buf += d
for line in buf.decode().split("\r\n"):
    f = line.split(" ")
    if len(f) == 3 and f[1] == sys.argv[2]:
        print(f[2])
        sys.exit(0)
sys.exit("stats: no " + sys.argv[2])
EOF
}

"${bin[v1]}" --port-file "$tmp/port" --next-file "$tmp/next" --threads 2 --memory 256 > "$tmp/server" 2>&1 &
server=$!
wait_for "] generation 0: v1 build, fresh start"
for _ in $(seq 600); do [ -s "$tmp/port" ] && break; sleep 0.05; done
port=$(cat "$tmp/port")
fds_before=$(ls "/proc/$server/fd" | wc -l)

"$kvclient" --port "$port" --items "$items" --conns 4 --ready-file "$tmp/ready" > "$tmp/client" 2>&1 &
client=$!
for _ in $(seq 1200); do
	[ -e "$tmp/ready" ] && break
	kill -0 "$client" 2>/dev/null || fail "the client died while loading"
	sleep 0.05
done
[ -e "$tmp/ready" ] || fail "the client did not finish loading"
[ "$(stat curr_items)" -eq "$items" ] || fail "curr_items $(stat curr_items), expected $items"
echo "ok - v1 loaded with $items items: $(head -n 1 "$tmp/client")"
sleep 0.3

gen=0
# check_gen BUILD STORE_VERSION: the line of the next generation.
check_gen() {
	local line kept
	gen=$((gen + 1))
	wait_for "] generation $gen: "
	line=$(gen_line "$gen")
	case $line in "[pid $server] generation $gen: $1 build, "*) ;; *) fail "generation $gen: $line" ;; esac
	case $line in *"kvcache-store at $2, kvcache-conns at v1;"*) ;; *) fail "generation $gen: components: $line" ;; esac
	kept=$(sed -n 's/.* items, \([0-9]*\) connections kept,.*/\1/p' <<< "$line")
	[ "${kept:-0}" -ge 4 ] || fail "generation $gen: the client's 4 connections were not kept: $line"
	echo "ok - $line"
	sleep 0.3 # the client works this image a little
}

# v1 -> v2 by SIGHUP.
echo "${bin[v2]}" > "$tmp/next"
kill -HUP "$server"
check_gen v2 v1
# The new image maps the arena back in the background (--populate low, the default) and says so.
wait_for "arena populated (--populate low): [1-9][0-9]* MiB in "
echo "ok - $(grep -m1 "arena populated" "$tmp/server")"

# v2 -> v1 by luoctl (a downgrade: format 1, nothing converted).
"$luoctl" update --pid "$server" "${bin[v1]}" > "$tmp/luoctl1" 2>&1 || { cat "$tmp/luoctl1"; fail "luoctl update to v1"; }
check_gen v1 v1

# v1 -> v3 by SIGHUP: refused before the switch, still serving.
echo "${bin[v3]}" > "$tmp/next"
kill -HUP "$server"
wait_for "kvcache.*: still serving"
grep -q "refused at negotiation" "$tmp/server" || fail "v1 -> v3: no refusal logged"
grep -qE "component +kvcache-store +mandatory .*REFUSE" "$tmp/server" || fail "v1 -> v3: the report does not name kvcache-store"
grep -q "] generation $((gen + 1)): " "$tmp/server" && fail "v1 -> v3: a new generation started"
echo "ok - v1 -> v3 refused: $(grep -E "component +kvcache-store" "$tmp/server" | tail -n 1 | sed 's/  */ /g')"
sleep 0.3

# v1 -> v2 by luoctl, then v2 -> v3 by luoctl: refused, luoctl says so.
"$luoctl" update --pid "$server" "${bin[v2]}" > "$tmp/luoctl2" 2>&1 || { cat "$tmp/luoctl2"; fail "luoctl update to v2"; }
check_gen v2 v1
rc=0
"$luoctl" update --pid "$server" "${bin[v3]}" > "$tmp/luoctl3" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || { cat "$tmp/luoctl3"; fail "luoctl update v2 -> v3: exit $rc, expected 1 (refused)"; }
grep -q "kvcache-store" "$tmp/luoctl3" || { cat "$tmp/luoctl3"; fail "v2 -> v3: luoctl's report does not name kvcache-store"; }
kill -0 "$server" || fail "v2 -> v3: the server is gone"
echo "ok - v2 -> v3 refused through luoctl (exit 1), still serving"
sleep 0.3

[ "$(stat pid)" -eq "$server" ] || fail "stats pid $(stat pid), expected $server"
[ "$(stat liveupdate_number)" -eq 3 ] || fail "stats liveupdate_number $(stat liveupdate_number), expected 3"
echo "ok - stats: pid $server, liveupdate_number 3, last_blackout_us $(stat last_blackout_us)," \
	"items_migrated $(stat items_migrated)"

kill -INT "$client"
rc=0; wait "$client" || rc=$?
client=
cat "$tmp/client"
[ "$rc" -eq 0 ] || fail "client exit $rc"
grep -q "; 0 errors, 0 refused connections, 0 broken connections, 0 items lost;" "$tmp/client" || fail "client summary"
echo "ok - the client: no error, no refused or broken connection, no item lost"

# luoctl matrix, without running anything, must say what happened.
"$luoctl" matrix "${bin[v1]}" "${bin[v2]}" "${bin[v3]}" --json > "$tmp/matrix" || fail "luoctl matrix"
python3 - "$tmp/matrix" "${bin[v1]}" "${bin[v2]}" "${bin[v3]}" <<'EOF' || fail "luoctl matrix disagrees"
import json, sys
m = json.load(open(sys.argv[1]))
v1, v2, v3 = sys.argv[2:5]
cell = {(c["from"], c["to"]): c for c in m["cells"]}
want = {(v1, v2): 1, (v2, v1): 1, (v1, v3): None, (v2, v3): None, (v3, v1): None, (v3, v2): None}
for k, v in want.items():
    c = cell[k]
    if v is None:
        assert not c["proceed"] and c["refused"] == ["kvcache-store"], (k, c)
    else:
        assert c["proceed"] and c["versions"]["kvcache-store"] == v, (k, c)
print("ok - luoctl matrix: v1 <-> v2 at store format 1; v3 refused both ways with v1 and v2")
EOF

# A real memcached load generator, with its verification on, across one more
# update (v2 -> v1, SIGHUP). Debian names it memcaslap (libmemcached-tools).
# dev.sh installs it (PACKAGES); its absence is a failure, not a skip.
memaslap=$(command -v memcaslap || command -v memaslap || true)
[ -n "$memaslap" ] || fail "memcaslap not found: apt-get install libmemcached-tools (./dev.sh deps)"
{
	"$memaslap" -s "127.0.0.1:$port" -T 2 -c 16 -t 3s -v 0.1 -d 2 > "$tmp/client-memaslap" 2>&1 &
	client=$!
	sleep 1
	echo "${bin[v1]}" > "$tmp/next"
	kill -HUP "$server"
	check_gen v1 v1
	rc=0; wait "$client" || rc=$?
	client=
	[ "$rc" -eq 0 ] || fail "memaslap exit $rc"
	grep -qE "CLIENT_ERROR|SERVER_ERROR|^ERROR" "$tmp/client-memaslap" && fail "memaslap saw errors"
	grep -q "^verify_failed: 0$" "$tmp/client-memaslap" && grep -q "^verify_misses: 0$" "$tmp/client-memaslap" &&
		grep -q "^get_misses: 0$" "$tmp/client-memaslap" || fail "memaslap: verification failed or misses"
	echo "ok - $(basename "$memaslap") with verification across a live update (v2 -> v1):" \
		"$(grep "^Run time" "$tmp/client-memaslap"), verify_failed 0, verify_misses 0, get_misses 0"
}

# The client's connections are closed: the server holds what it held before.
for _ in $(seq 100); do
	[ "$(ls "/proc/$server/fd" | wc -l)" -eq "$fds_before" ] && break
	sleep 0.05
done
fds_after=$(ls "/proc/$server/fd" | wc -l)
[ "$fds_after" -eq "$fds_before" ] || { ls -l "/proc/$server/fd"; fail "fds: $fds_before before the client, $fds_after after"; }
echo "ok - no fd left over ($fds_after open)"

kill -TERM "$server"
rc=0; wait "$server" || rc=$?
server=
[ "$rc" -eq 0 ] || fail "server exit $rc"
grep -qE "AddressSanitizer|LeakSanitizer|runtime error" "$tmp/server" && fail "sanitizer report"
echo "ok - the server stopped cleanly"
