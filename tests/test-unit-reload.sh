#!/usr/bin/env bash
# dist/luo-service@.service, whose `systemctl reload` is a live update.
# There is no systemd as PID 1 where the tests run, so:
#
#   1. systemd-analyze verify accepts the unit (an instance of it, @BINDIR@
#      filled in with the luoctl under test), and refuses it with a missing
#      luoctl (so the verification looks at ExecReload=);
#   2. its ExecStart= and ExecReload= run as systemd would run them: the
#      instance's EnvironmentFile read before each, ${VAR} one argument,
#      $VAR split at whitespace, $MAINPID the service's pid. A kvcache under
#      a verifying client's load: start at r1 (v1); LUO_BINARY to r2 (v2),
#      reload: exit 0, same pid, generation 1; LUO_BINARY to r3 (v3), reload:
#      exit 1 (refused, the report names kvcache-store), still serving v2.
#
# At the end: the client saw no error, the server holds the fds it held
# before the client and exits 0 on SIGTERM (what systemctl stop sends).
#
# usage: test-unit-reload.sh UNIT_TEMPLATE LUOCTL KVCACHE_V1 KVCACHE_V2 KVCACHE_V3 CLIENT LIBLUO_DIR
set -euo pipefail
abs() { realpath -e -- "$1"; }
unit_in=$(abs "$1") luoctl=$(abs "$2") kv1=$(abs "$3") kv2=$(abs "$4") kv3=$(abs "$5") kvclient=$(abs "$6")
export LD_LIBRARY_PATH=$(abs "$7")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
. "$(dirname "$0")/service-lib.sh"

command -v systemd-analyze > /dev/null || fail "systemd-analyze not found: apt-get install systemd (./dev.sh deps)"

# The instance "kvtest", its configuration in $tmp/etc/luo/kvtest.conf.
mkdir -p "$tmp/units" "$tmp/etc/luo"
unit=$tmp/units/luo-service@kvtest.service
sed -e "s|@BINDIR@|$(dirname "$luoctl")|" -e "s|/etc/luo/|$tmp/etc/luo/|" "$unit_in" > "$unit"
grep -q "^ExecReload=$(dirname "$luoctl")/luoctl update --pid \$MAINPID \${LUO_BINARY} " "$unit" ||
	fail "the unit's ExecReload= is not luoctl update --pid \$MAINPID \${LUO_BINARY}"
systemd-analyze verify --man=no "$unit" > "$tmp/verify" 2>&1 || { cat "$tmp/verify"; fail "systemd-analyze verify"; }
sed "s|^ExecReload=[^ ]*|ExecReload=$tmp/no-luoctl|" "$unit" > "$tmp/units/luo-service@bad.service"
systemd-analyze verify --man=no "$tmp/units/luo-service@bad.service" > "$tmp/verify-bad" 2>&1 &&
	fail "systemd-analyze verify accepted a unit whose luoctl is missing"
grep -q "no-luoctl is not executable" "$tmp/verify-bad" || { cat "$tmp/verify-bad"; fail "verify: not for the missing luoctl"; }
echo "ok - systemd-analyze verify: the unit passes; with its luoctl missing, it does not"

cp "$kv1" "$tmp/kvcache-r1"
cp "$kv2" "$tmp/kvcache-r2"
cp "$kv3" "$tmp/kvcache-r3"
# conf BINARY: the instance's configuration, as an operator writes it.
conf() {
	cat > "$tmp/etc/luo/kvtest.conf" <<EOF
# kvcache, release $(basename "$1")
LUO_BINARY=$1
LUO_ARGS="--port-file $tmp/port --threads 1 --memory 16"
EOF
}

# sd.py UNIT KEY [exec]: the unit's KEY= command line, with systemd's
# substitutions, run (exec: in place of this Python, as systemd's fork does).
cat > "$tmp/sd.py" <<'EOF'
import os, re, shlex, sys
unit, key = sys.argv[1:3]
do_exec = sys.argv[3:] == ["exec"]
env = dict(os.environ)
lines = [l.strip() for l in open(unit) if l.strip() and not l.lstrip().startswith("#")]
cmd = None
for l in lines:
    k, _, v = l.partition("=")
    if k == "Environment":
        for a in shlex.split(v):
            n, _, val = a.partition("=")
            env[n] = val
    elif k == "EnvironmentFile":
        # read now, before this command, as systemd does
        for a in open(v.replace("%i", "kvtest")):
            a = a.strip()
            if a and not a.startswith("#"):
                n, _, val = a.partition("=")
                env[n] = shlex.split(val)[0] if val else ""
    elif k == key:
        cmd = v
assert cmd, key
argv = []
for w in shlex.split(cmd):
    m = re.fullmatch(r"\$\{(\w+)\}", w)
    if m:
        argv.append(env.get(m.group(1), ""))
    elif re.fullmatch(r"\$(\w+)", w):
        argv.extend(env.get(w[1:], "").split())
    else:
        argv.append(re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), w))
sys.stdout.flush()
if do_exec:
    os.execve(argv[0], argv, env)
print(" ".join(argv))
sys.exit(os.spawnve(os.P_WAIT, argv[0], argv, env))
EOF
run() { python3 "$tmp/sd.py" "$unit" "$@"; }

conf "$tmp/kvcache-r1"
python3 "$tmp/sd.py" "$unit" ExecStart exec > "$tmp/server" 2>&1 &
server=$!
wait_in "$tmp/server" "] generation 0: v1 build, fresh start"
for _ in $(seq 600); do [ -s "$tmp/port" ] && break; sleep 0.05; done
[ "$(readlink "/proc/$server/exe")" = "$tmp/kvcache-r1" ] || fail "ExecStart= does not run LUO_BINARY"
fds_before=$(ls "/proc/$server/fd" | wc -l)
"$kvclient" --port "$(cat "$tmp/port")" --items 2000 --conns 2 --ready-file "$tmp/ready" > "$tmp/client" 2>&1 &
client=$!
for _ in $(seq 1200); do [ -e "$tmp/ready" ] && break; sleep 0.05; done
[ -e "$tmp/ready" ] || fail "the client did not finish loading"
echo "ok - ExecStart=: pid $server runs LUO_BINARY ($tmp/kvcache-r1) with LUO_ARGS, under a client's load"

# A release: LUO_BINARY to r2, reload.
conf "$tmp/kvcache-r2"
rc=0
MAINPID=$server run ExecReload > "$tmp/reload-r2" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || { cat "$tmp/reload-r2"; fail "reload to r2: exit $rc"; }
wait_in "$tmp/server" "] generation 1: v2 build, "
grep -q "^update pid $server -> $tmp/kvcache-r2: done, same pid $server, liveupdate-number 1$" "$tmp/reload-r2" ||
	{ cat "$tmp/reload-r2"; fail "reload to r2: no 'done'"; }
[ "$(readlink "/proc/$server/exe")" = "$tmp/kvcache-r2" ] || fail "reload to r2: not running r2"
echo "ok - reload, LUO_BINARY=r2: $(sed -n 1p "$tmp/reload-r2")"
echo "     $(grep "done, same pid" "$tmp/reload-r2" | sed "s|$tmp/||")"

# An incompatible one: the reload fails, the service runs on.
conf "$tmp/kvcache-r3"
rc=0
MAINPID=$server run ExecReload > "$tmp/reload-r3" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || { cat "$tmp/reload-r3"; fail "reload to r3: exit $rc, expected 1"; }
grep -qE "kvcache-store .*REFUSE" "$tmp/reload-r3" || { cat "$tmp/reload-r3"; fail "reload to r3: no report"; }
kill -0 "$server" || fail "reload to r3: the service is gone"
[ "$(readlink "/proc/$server/exe")" = "$tmp/kvcache-r2" ] || fail "reload to r3: not running r2 any more"
grep -q "] generation 2: " "$tmp/server" && fail "reload to r3: a new generation"
echo "ok - reload, LUO_BINARY=r3: exit 1 (the reload fails), refused: kvcache-store; r2 serves on"

kill -INT "$client"
rc=0; wait "$client" || rc=$?
client=
[ "$rc" -eq 0 ] || fail "client exit $rc"
grep -q "; 0 errors, 0 refused connections, 0 broken connections, 0 items lost;" "$tmp/client" || fail "client summary"
echo "ok - the client: no error, no refused or broken connection, no item lost"
for _ in $(seq 100); do
	[ "$(ls "/proc/$server/fd" | wc -l)" -eq "$fds_before" ] && break
	sleep 0.05
done
fds_after=$(ls "/proc/$server/fd" | wc -l)
[ "$fds_after" -eq "$fds_before" ] || { ls -l "/proc/$server/fd"; fail "fds: $fds_before before the client, $fds_after after"; }
kill -TERM "$server"
rc=0; wait "$server" || rc=$?
server=
[ "$rc" -eq 0 ] || fail "server exit $rc"
grep -qE "AddressSanitizer|LeakSanitizer|runtime error" "$tmp/server" && fail "sanitizer report"
echo "ok - no fd left over ($fds_after open), a clean stop"
