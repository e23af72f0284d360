#!/usr/bin/env bash
# The control socket's trust boundary (issue 13, findings 2, 6, 7, 11):
#
#   pid reuse       (root, unshare) in a fresh pid and network namespace,
#                   uid 65534 listens on @luo-control.P, hands the listener
#                   to a child and exits; P goes to a victim process; root's
#                   luoctl update --pid P must refuse (exit 2: the listening
#                   process has exited), not print the forged "done"
#   answered by another process  P listens and lives, its child answers
#                   with a forged "done": refused (exit 2), every message
#                   must come from P itself (SCM_CREDENTIALS)
#   ptrace rule     (root) luo-counter as uid 65534 with an ambient
#                   capability: the same uid without it is answered -EPERM
#                   (exit 1, "could not ptrace"), no new generation; root's
#                   luoctl updates it (done)
#   quiesce after the check  kvcache as root: another uid's connection, a
#                   raw request from it, and 8 silent same-uid peers never
#                   make it quiesce its workers (no "quiesced" log line),
#                   a client's get is answered meanwhile, within 2 s; then
#                   a real luoctl update is done
#   outcome unknown a listener that takes the request and hangs up: exit 2,
#                   "outcome unknown"
#
# usage: test-control-trust.sh LUO_COUNTER_V1 LUO_COUNTER_V2 KVCACHE LUOCTL
set -euo pipefail
counter_v1=$1 counter_v2=$2 kvcache=$3 luoctl=$4
. "$(dirname "$0")/service-lib.sh"
py=$(command -v /usr/bin/python3 || command -v python3)
chmod 0755 "$tmp"
extra=
trap 'for p in $extra; do kill -9 "$p" 2>/dev/null || true; done; cleanup' EXIT

# The forger: listens on @luo-control.<its pid>, forks a child that keeps
# the listener and answers one request with a well-formed "done" naming
# the parent's pid. MODE orphan: the parent exits at once; live: it stays.
cat > "$tmp/forger.py" <<'EOF'
import os, socket, struct, sys, time
mode, pidfile = sys.argv[1], sys.argv[2]
me = os.getpid()
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(b"\0luo-control.%d" % me)
s.listen(4)
with open(pidfile + ".tmp", "w") as f:
    f.write("%d\n" % me)
os.rename(pidfile + ".tmp", pidfile)
if os.fork() != 0:
    if mode == "orphan":
        os._exit(0)
    time.sleep(60)
    os._exit(0)
s.settimeout(30)
c, _ = s.accept()
req = c.recv(8192)
seq = struct.unpack_from("=I", req, 8)[0]
try:
    c.send(struct.pack("=IHHIiIIIIQ", 200, 1, 64, seq, 0, 0, 1, 0, 0, 5) + b"\0" * 160)
    c.send(struct.pack("=IHHIiIIQQQQQQQ", 80, 1, 66, seq, me, 0, 0, 5, 1, 1, 1, 1, 1, 6))
except OSError:
    pass
time.sleep(2)
EOF

if [ "$(id -u)" -ne 0 ] || ! command -v setpriv > /dev/null || ! command -v unshare > /dev/null; then
	echo "ok - # SKIP pid reuse, ptrace rule, other uids: need root, setpriv and unshare"
	exit 77
fi
nobody="setpriv --reuid=65534 --regid=65534 --clear-groups"
install -m 0755 "$luoctl" "$tmp/luoctl"
install -d -o 65534 -g 65534 "$tmp/u"

# --- pid reuse -----------------------------------------------------------
rc=0
unshare --pid --fork --mount-proc --net true 2> /dev/null || rc=77
[ "$rc" -eq 77 ] && echo "no pid and network namespaces here (unshare)" > "$tmp/reuse"
[ "$rc" -eq 77 ] || unshare --pid --fork --mount-proc --net bash -s "$tmp" "$nobody" "$py" <<'EOF' > "$tmp/reuse" 2>&1 || rc=$?
set -u
tmp=$1 nobody=$2 py=$3
$nobody $py "$tmp/forger.py" orphan "$tmp/u/forger-pid" &
wait $!
P=$(cat "$tmp/u/forger-pid")
echo $((P - 1)) > /proc/sys/kernel/ns_last_pid 2> /dev/null || { echo "SKIP: ns_last_pid not writable"; exit 77; }
sleep 30 &
victim=$!
[ "$victim" -eq "$P" ] || { echo "SKIP: the victim got pid $victim, not $P"; exit 77; }
rc=0
"$tmp/luoctl" update --pid "$P" /bin/true > "$tmp/reuse-out" 2> "$tmp/reuse-err" || rc=$?
cat "$tmp/reuse-out" "$tmp/reuse-err"
kill "$victim"
exit $rc
EOF
if [ "$rc" -eq 77 ]; then
	echo "ok - # SKIP pid reuse: $(cat "$tmp/reuse")"
else
	[ "$rc" -eq 2 ] || { cat "$tmp/reuse"; fail "pid reuse: luoctl exit $rc, expected 2"; }
	grep -q "has exited; pid [0-9]* is another process now" "$tmp/reuse" || { cat "$tmp/reuse"; fail "pid reuse: message"; }
	grep -q ": done" "$tmp/reuse" && fail "pid reuse: 'done' printed"
	echo "ok - pid reuse: exit 2, $(grep 'has exited' "$tmp/reuse")"
fi

# --- answered by another process -------------------------------------------
$py "$tmp/forger.py" live "$tmp/live-pid" &
extra="$extra $!"
for _ in $(seq 600); do [ -s "$tmp/live-pid" ] && break; sleep 0.05; done
P=$(cat "$tmp/live-pid")
rc=0
"$luoctl" update --pid "$P" /bin/true > "$tmp/out" 2> "$tmp/err" || rc=$?
[ "$rc" -eq 2 ] || { cat "$tmp/out" "$tmp/err"; fail "answer from another process: exit $rc, expected 2"; }
grep -q "not sent by that process" "$tmp/err" || { cat "$tmp/err"; fail "answer from another process: message"; }
grep -q ": done" "$tmp/out" && fail "answer from another process: 'done' printed"
echo "ok - an answer sent by another process than $P: exit 2, $(cat "$tmp/err")"
kill "$P" 2>/dev/null || true

# --- ptrace rule ---------------------------------------------------------
if ! $nobody --inh-caps=+net_bind_service --ambient-caps=+net_bind_service true 2> /dev/null; then
	echo "ok - # SKIP ptrace rule: no ambient capabilities here"
else
	# uid 65534 may not reach the build tree (a clone under a 0700
	# directory): it runs copies, with libluo beside them.
	mkdir -p "$tmp/bin"
	install -m 0755 "$counter_v1" "$tmp/bin/v1"
	install -m 0755 "$counter_v2" "$tmp/bin/v2"
	cp -L "$(ldd "$counter_v1" | awk '/libluo\.so/ { print $3 }')" "$tmp/bin/"
	chmod -R a+rX "$tmp/bin"
	counter_v1=$tmp/bin/v1 counter_v2=$tmp/bin/v2
	$nobody --inh-caps=+net_bind_service --ambient-caps=+net_bind_service env LD_LIBRARY_PATH="$tmp/bin" \
		"$counter_v1" serve --port-file "$tmp/u/port" > "$tmp/server" 2>&1 &
	server=$!
	wait_in "$tmp/server" "] generation 0: fresh start"
	grep -q "^CapAmb:.*0*400$" "/proc/$server/status" || fail "the service has no ambient capability"
	rc=0
	$nobody "$tmp/luoctl" update --pid "$server" "$counter_v2" > "$tmp/out" 2> "$tmp/err" || rc=$?
	[ "$rc" -eq 1 ] || { cat "$tmp/out" "$tmp/err"; fail "ptrace rule: uid 65534 without caps: exit $rc, expected 1"; }
	grep -q "could not ptrace this service" "$tmp/out" || { cat "$tmp/out"; fail "ptrace rule: message"; }
	sleep 0.2
	grep -q "] generation 1: " "$tmp/server" && fail "ptrace rule: updated anyway"
	echo "ok - ptrace rule: same uid, lacking the service's capability: $(cat "$tmp/out")"
	"$luoctl" update --pid "$server" "$counter_v2" > "$tmp/out" 2>&1 || { cat "$tmp/out"; fail "root's update"; }
	wait_in "$tmp/server" "] generation 1: "
	echo "ok - ptrace rule: root (CAP_SYS_PTRACE) updates it: $(head -n 1 "$tmp/out")"
	kill -TERM "$server"; wait "$server" || true; server=
fi

# --- quiesce after the check (kvcache) -----------------------------------
"$kvcache" --port-file "$tmp/kport" --threads 2 --memory 64 > "$tmp/server" 2>&1 &
server=$!
wait_in "$tmp/server" "generation 0"
for _ in $(seq 600); do [ -s "$tmp/kport" ] && break; sleep 0.05; done
kport=$(cat "$tmp/kport")
cat > "$tmp/peers.py" <<'EOF'
import socket, struct, sys, time
pid, path, mode = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3]
addr = b"\0luo-control.%d" % pid
socks = []
for _ in range(8 if mode == "silent" else 1):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(addr)
    socks.append(s)
if mode == "raw":
    hdr = struct.pack("=IHHI", 4124, 1, 64, 7)
    body = struct.pack("=IIII", 0, 200, 236, 0) + path.ljust(4096, b"\0")
    try:
        socks[0].send(hdr + body)
    except OSError:
        pass
time.sleep(1.5)
EOF
get_ms() {
	$py - "$kport" <<'EOF'
import socket, sys, time
t = time.monotonic()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"set k 0 0 1\r\nx\r\nget k\r\n")
buf = b""
while not buf.endswith(b"END\r\n"):
    d = s.recv(4096)
    if not d:
        break
    buf += d
assert b"VALUE k 0 1" in buf, buf
print(int((time.monotonic() - t) * 1000))
EOF
}
for mode in other-uid raw silent; do
	if [ "$mode" = silent ]; then
		$py "$tmp/peers.py" "$server" "$kvcache" silent &
	else
		$nobody $py "$tmp/peers.py" "$server" "$kvcache" "$mode" &
	fi
	peers=$!
	sleep 0.3
	ms=$(get_ms) || fail "$mode: the client got no answer"
	wait "$peers" || true
	[ "$ms" -lt 2000 ] || fail "$mode: a get took $ms ms"
	grep -q "quiesced" "$tmp/server" && { cat "$tmp/server"; fail "$mode: kvcache quiesced its workers"; }
	echo "ok - kvcache, $mode control peers: no quiesce, a get answered in $ms ms"
done
# Refused updates -- not a luo binary; a build whose store format this one
# cannot write -- are refused before the service pauses: no quiesce.
for bad in /bin/true "$(dirname "$kvcache")/kvcache-v3"; do
	if "$luoctl" update --pid "$server" "$bad" > "$tmp/out" 2>&1; then
		cat "$tmp/out"
		fail "kvcache: the update to $bad was not refused"
	fi
	grep -q "quiesced" "$tmp/server" && { cat "$tmp/server"; fail "kvcache: quiesced for a refused update to $bad"; }
	# The headline names whole refusals only: five do not fit in its 160 bytes.
	if [ "$bad" = /bin/true ]; then
		head -n 1 "$tmp/out" | grep -Eq '\(not in the new image\) and [0-9]+ more' ||
			{ cat "$tmp/out"; fail "kvcache: the refusal's headline cut a name"; }
	fi
	echo "ok - kvcache: the update to $bad refused before any pause: $(head -n 1 "$tmp/out")"
done
"$luoctl" update --pid "$server" "$kvcache" > "$tmp/out" 2>&1 || { cat "$tmp/out"; fail "kvcache: luoctl update"; }
wait_in "$tmp/server" "generation 1"
grep -q "quiesced" "$tmp/server" || fail "kvcache: the real update was not quiesced"
echo "ok - kvcache: luoctl update after them: $(head -n 1 "$tmp/out")"
kill -TERM "$server"; wait "$server" || true; server=

# --- outcome unknown -------------------------------------------------------
$py - "$luoctl" <<'EOF' > "$tmp/out" 2> "$tmp/err" || { cat "$tmp/out" "$tmp/err"; fail "hang-up: not exit 2"; }
import os, socket, subprocess, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(b"\0luo-control.%d" % os.getpid())
s.listen(1)
p = subprocess.Popen([sys.argv[1], "update", "--pid", str(os.getpid()), "/bin/true"])
c, _ = s.accept()
c.recv(8192)
c.close()
assert p.wait() == 2
EOF
grep -q "outcome unknown" "$tmp/err" || { cat "$tmp/err"; fail "hang-up: no 'outcome unknown'"; }
echo "ok - a service hanging up mid-update: exit 2, $(cat "$tmp/err")"
