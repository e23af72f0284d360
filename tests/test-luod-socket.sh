#!/usr/bin/env bash
# luod's start: the socket directory created 0700 and the socket 0600 (not
# the system agent); a directory others may write refused; a file that is
# not a socket never replaced; a second agent on a live socket refused; a
# stale socket (its agent SIGKILLed) replaced; strict number parsing.
# Usage: test-luod-socket.sh LUOD
set -uo pipefail
luod=$1
tmp=$(mktemp -d /tmp/test-luod-socket.XXXXXX)
agent=
cleanup() { [ -n "$agent" ] && kill "$agent" 2>/dev/null && wait "$agent" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
wait_sock() { for _ in $(seq 200); do [ -S "$1" ] && return 0; sleep 0.02; done; fail "no socket $1"; }

"$luod" --socket "$tmp/d/agent.sock" 2>"$tmp/log" &
agent=$!
wait_sock "$tmp/d/agent.sock"
[ "$(stat -c %a "$tmp/d")" = 700 ] || fail "directory mode $(stat -c %a "$tmp/d")"
[ "$(stat -c %a "$tmp/d/agent.sock")" = 600 ] || fail "socket mode $(stat -c %a "$tmp/d/agent.sock")"

"$luod" --socket "$tmp/d/agent.sock" 2>"$tmp/err" && fail "a second agent started"
grep -q "another agent answers" "$tmp/err" || fail "second agent: $(cat "$tmp/err")"

kill -9 "$agent"; wait "$agent" 2>/dev/null; agent=
"$luod" --socket "$tmp/d/agent.sock" 2>"$tmp/log2" &
agent=$!
for _ in $(seq 200); do grep -q "replaced the stale socket" "$tmp/log2" && break; sleep 0.02; done
grep -q "replaced the stale socket" "$tmp/log2" || fail "stale socket not replaced: $(cat "$tmp/log2")"
kill "$agent"; wait "$agent"; rc=$?; agent=
[ $rc -eq 0 ] || fail "SIGTERM exit status $rc"

mkdir -m 0777 "$tmp/open"; chmod 0777 "$tmp/open"
"$luod" --socket "$tmp/open/agent.sock" 2>"$tmp/err" && fail "started in a world-writable directory"
grep -q "refusing socket directory" "$tmp/err" || fail "open dir: $(cat "$tmp/err")"

touch "$tmp/d/file"
"$luod" --socket "$tmp/d/file" 2>"$tmp/err" && fail "replaced a regular file"
[ -f "$tmp/d/file" ] || fail "the regular file is gone"

for bad in "--max-fds 12x" "--max-fds -1" "--max-fds 99999999999999999999999" "--max-sessions 0" \
	"--max-bytes ''" "--socket-mode 0999" "--bogus"; do
	eval "\"$luod\" --socket \"$tmp/d/x.sock\" $bad" 2>/dev/null && fail "accepted $bad"
done
"$luod" --help | grep -q -- "--max-sessions" || fail "--help"
"$luod" --version | grep -q "protocol" || fail "--version"
# A per-uid fd limit above half of what the uids other than root share is
# clamped to it: RLIMIT_NOFILE 4096 leaves (4096 - 1024 - 64) / 2 = 1504
# held fds, 1504 / 8 = 188 of them root's alone, (1504 - 188) / 2 = 658 per uid.
prlimit --nofile=4096:4096 "$luod" --socket "$tmp/d/clamp.sock" --max-fds 16384 2>"$tmp/log4" &
agent=$!
wait_sock "$tmp/d/clamp.sock"
for _ in $(seq 200); do grep -q "started:" "$tmp/log4" && break; sleep 0.02; done
grep -q -- "--max-fds 16384 is more than 1/2 of what luod can hold for the uids other than root (1316 of 1504): clamped to 658" "$tmp/log4" ||
	fail "--max-fds not clamped: $(cat "$tmp/log4")"
held=$(sed -n 's/.*limits per uid: [0-9]* sessions, \([0-9]*\) fds.*/\1/p' "$tmp/log4")
[ "$held" = 658 ] || fail "--max-fds not clamped in the start line: $(cat "$tmp/log4")"
grep -q "1504 fds held at most, 188 of them for root alone" "$tmp/log4" ||
	fail "root's reserve not in the start line: $(cat "$tmp/log4")"
kill -TERM "$agent"; wait "$agent" || true
echo "ok - --max-fds above a uid's share of the global budget: clamped to $held"
# Out of fds: luod stops accepting for a while instead of spinning on a
# listener that stays readable, and serves again once connections close.
prlimit --nofile=64:64 "$luod" --socket "$tmp/d/fd.sock" 2>"$tmp/log3" &
agent=$!
wait_sock "$tmp/d/fd.sock"
python3 - "$tmp/d/fd.sock" "$agent" <<'PY' || fail "out of fds: $(tail -3 "$tmp/log3")"
import os, socket, sys, time
path, pid = sys.argv[1], int(sys.argv[2])
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])  # utime + stime, in ticks
conns = []
for _ in range(100):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)  # past luod's fds, these wait in the backlog
    conns.append(s)
time.sleep(0.3)
t0 = cpu()
time.sleep(1.0)
used = cpu() - t0
hz = os.sysconf("SC_CLK_TCK")
if used > hz // 5:
    sys.exit(f"luod used {used / hz:.2f} s of CPU in 1 s while out of fds")
for s in conns:
    s.close()
time.sleep(0.5)
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.settimeout(5)
s.connect(path)
s.send(b"x")  # a malformed message: luod answers it, so it is accepting again
if not s.recv(4096):
    sys.exit("no answer after the connections closed")
PY
grep -q "not accepting for" "$tmp/log3" || fail "out of fds not logged: $(tail -3 "$tmp/log3")"
kill "$agent"; wait "$agent"; agent=
# systemd's notify protocol (Type=notify): READY=1 at start; a self-update
# (SIGHUP, as systemctl reload sends) says RELOADING=1, then the new image
# READY=1, from the same pid.
python3 - "$luod" "$tmp/d" <<'PY' || fail "sd_notify"
import os, signal, socket, subprocess, sys, time
luod, d = sys.argv[1], sys.argv[2]
ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
ns.bind(d + "/notify")
ns.settimeout(10)
env = dict(os.environ, NOTIFY_SOCKET=d + "/notify")
p = subprocess.Popen([luod, "--socket", d + "/n.sock"], env=env, stderr=subprocess.DEVNULL)
def expect(word):
    while True:
        msg = ns.recv(4096).decode()
        if word in msg.split("\n"):
            return msg
try:
    expect("READY=1")
    p.send_signal(signal.SIGHUP)
    expect("RELOADING=1")
    msg = expect("READY=1")
    if "failed" in msg:
        sys.exit("the self-update failed: " + msg)
    if p.poll() is not None:
        sys.exit("luod exited")
finally:
    p.terminate()
    p.wait()
PY
echo "ok - socket directory, modes, stale and live sockets, options, out of fds, sd_notify"
