#!/usr/bin/env bash
# A rolling live update across a fleet with Ansible (dist/ansible: the module
# luo_update, the role luo_release, rolling-release.yml), run by
# ansible-playbook over a local connection against four kvcache instances on
# this machine, each on its own loopback port, each under the load of its
# own verifying client (test-kvcache-client) from start to end:
#
#   --check, v1 -> v2     every host "would-update" with its verdicts; nothing
#                         changes: same pids, same builds, no file left
#   roll v1 -> v2         serial 2: two batches, every host done, changed,
#                         liveupdate-number 1, timings; the old binary kept
#   the same again        every host ok ("current"), changed=0 everywhere
#   roll to r3: v1, but   serial 1: kv1 and kv2 rolled (v2 -> v1), kv3
#   kv3 gets v3           refused at the gate (kvcache-store, no common
#                         version), the run stops: kv3 and kv4 untouched
#   ad hoc, no gate       luo_update kv4 -> v3: refused by the service itself,
#                         the failure carries its report
#   a rollback            two luo-counter hosts, the first given a build whose
#                         load fails: rolled back, the run stops there
#
# Each run's JSON report (luo_report_file) holds one report per host. At the
# end: every client saw no error, no refused or broken connection, no lost
# item; every pid the same throughout; each server holds the fds it held
# before its client, and exits 0 on SIGTERM (no sanitizer report).
#
# FLEET_KEEP=DIR in the environment: the playbook runs' output, their reports
# and the inventories are copied there at the end.
#
# usage: test-fleet.sh KVCACHE_V1 KVCACHE_V2 KVCACHE_V3 LUOCTL CLIENT LIBLUO_DIR ANSIBLE_DIR
#                      LUO_COUNTER_V2 LUO_COUNTER_BROKEN
set -euo pipefail
# Absolute: Ansible looks for a relative src beside the playbook.
abs() { realpath -e -- "$1"; }
v1=$(abs "$1") v2=$(abs "$2") v3=$(abs "$3") luoctl=$(abs "$4") kvclient=$(abs "$5") libdir=$(abs "$6")
ansible_dir=$(abs "$7") counter_v2=$(abs "$8") counter_broken=$(abs "$9")
hosts=(kv1 kv2 kv3 kv4)
# Each client's load: small, the point is that it never stops.
items=2000

tmp=$(mktemp -d)
declare -A server=() client=() port=() fds=()
counters=()
cleanup() {
	local p
	for p in "${client[@]}" "${server[@]}" "${counters[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
	local f
	echo "FAIL: $*"
	for f in "$tmp"/server-* "$tmp"/client-* "$tmp"/run-*; do [ -e "$f" ] && { echo "--- $f"; tail -n 60 "$f"; }; done
	exit 1
}

command -v ansible-playbook > /dev/null || fail "ansible-playbook not found: apt-get install ansible-core (./dev.sh deps)"

# Ansible refuses to run without a UTF-8 locale; C.UTF-8 is always there.
export LC_ALL=C.UTF-8
# Ansible in a corner of its own: no config, home or temp directory of the user's.
: > "$tmp/ansible.cfg"
export ANSIBLE_CONFIG=$tmp/ansible.cfg ANSIBLE_HOME=$tmp/ansible-home ANSIBLE_LOCAL_TEMP=$tmp/ansible-local \
	ANSIBLE_REMOTE_TEMP=$tmp/ansible-remote ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 \
	ANSIBLE_PYTHON_INTERPRETER=$(command -v python3) ANSIBLE_DEPRECATION_WARNINGS=0 \
	ANSIBLE_PIPELINING=1
# The copied binaries find libluo here (their RUNPATH is relative to the build tree).
export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# exe_of HOST: what its server runs now.
exe_of() { readlink "/proc/${server[$1]}/exe"; }
# generations HOST: how many "generation N" lines its server printed.
generations() { grep -c "] generation [0-9]*: " "$tmp/server-$1" || true; }

# The module's documentation parses (DOCUMENTATION, EXAMPLES, RETURN).
ansible-doc -M "$ansible_dir/library" luo_update > "$tmp/doc" 2>&1 || { cat "$tmp/doc"; fail "ansible-doc luo_update"; }
grep -q "^RETURN VALUES:" "$tmp/doc" && grep -q "^= binary" "$tmp/doc" || { cat "$tmp/doc"; fail "ansible-doc: incomplete"; }
echo "ok - ansible-doc luo_update: options, examples, return values"

# Four servers, each started from its own copy of v1 (release r1), as a
# deployment would have it.
for h in "${hosts[@]}"; do
	mkdir -p "$tmp/$h"
	cp "$v1" "$tmp/$h/kvcache-r1"
	# nice (as the clients): Ansible first, on a machine of 2 cores.
	nice -n 19 "$tmp/$h/kvcache-r1" --port-file "$tmp/$h/port" --threads 1 --memory 16 > "$tmp/server-$h" 2>&1 &
	server[$h]=$!
	echo "${server[$h]}" > "$tmp/$h/pid"
done
for h in "${hosts[@]}"; do
	for _ in $(seq 600); do
		grep -q "] generation 0: v1 build, fresh start" "$tmp/server-$h" && [ -s "$tmp/$h/port" ] && break
		kill -0 "${server[$h]}" 2>/dev/null || fail "$h: the server died at start"
		sleep 0.05
	done
	[ -s "$tmp/$h/port" ] || fail "$h: the server did not start"
	port[$h]=$(cat "$tmp/$h/port")
	fds[$h]=$(ls "/proc/${server[$h]}/fd" | wc -l)
	# nice: the clients take what the servers and Ansible leave.
	nice -n 19 "$kvclient" --port "${port[$h]}" --items "$items" --conns 2 --ready-file "$tmp/$h/ready" \
		> "$tmp/client-$h" 2>&1 &
	client[$h]=$!
done
for h in "${hosts[@]}"; do
	for _ in $(seq 1200); do
		[ -e "$tmp/$h/ready" ] && break
		kill -0 "${client[$h]}" 2>/dev/null || fail "$h: the client died while loading"
		sleep 0.05
	done
	[ -e "$tmp/$h/ready" ] || fail "$h: the client did not finish loading"
done
echo "ok - four kvcache v1 on ports ${port[*]}, each under a verifying client's load"

# inventory FILE RELEASE SRC [HOST=SRC...]: release RELEASE (kvcache-RELEASE
# beside the old binaries) built from SRC, or per host from another.
inventory() {
	local file=$1 rel=$2 src=$3 h s
	shift 3
	{
		echo "[luo]"
		for h in "${hosts[@]}"; do
			s=$src
			for o in "$@"; do [ "${o%%=*}" = "$h" ] && s=${o#*=}; done
			echo "$h luo_pid_file=$tmp/$h/pid luo_binary_dest=$tmp/$h/kvcache-$rel luo_binary_src=$s"
		done
		echo "[luo:vars]"
		echo "ansible_connection=local"
		echo "luo_luoctl=$luoctl"
	} > "$file"
}

# play NAME [ansible-playbook options...]: run the playbook; its exit status
# in $rc, its output in $tmp/run-NAME, its report in $tmp/report-NAME.json.
play() {
	local name=$1 t0=$SECONDS
	shift
	rc=0
	timeout 240 ansible-playbook "$ansible_dir/rolling-release.yml" -e "luo_report_file=$tmp/report-$name.json" \
		"$@" > "$tmp/run-$name" 2>&1 || rc=$?
	echo "# ansible-playbook $name: exit $rc, $((SECONDS - t0)) s"
}

# report NAME PYTHON: assertions on the report (as r) and on what ran (pids,
# exes, generations: a JSON of the shell's view, as s).
report() {
	local name=$1 code=$2 h
	{
		echo "{"
		for h in "${hosts[@]}"; do
			printf '"%s": {"pid": %d, "exe": "%s", "generations": %d, "files": [%s]},\n' "$h" "${server[$h]}" \
				"$(exe_of "$h")" "$(generations "$h")" \
				"$(cd "$tmp/$h" && ls -A | sed 's/.*/"&"/' | paste -sd,)"
		done
		echo '"tmp": "'"$tmp"'"}'
	} > "$tmp/state-$name.json"
	python3 - "$tmp/report-$name.json" "$tmp/state-$name.json" <<EOF || fail "$name: the report or the fleet is not as expected"
import json, sys
r = json.load(open(sys.argv[1]))
s = json.load(open(sys.argv[2]))
tmp = s["tmp"]
by = {x["host"]: x for x in r["hosts"]}
assert [x["host"] for x in r["hosts"]] == ["kv1", "kv2", "kv3", "kv4"], r["hosts"]
$code
EOF
}

# 1. --check: the verdicts, and nothing changes.
inventory "$tmp/inv-r2" r2 "$v2"
play check -i "$tmp/inv-r2" -e luo_serial=2 --check
[ "$rc" -eq 0 ] || fail "--check: exit $rc"
for h in "${hosts[@]}"; do
	# changed: the gate alone, for the update it stands for.
	grep -qE "^$h +: ok=[0-9]+ +changed=1 +unreachable=0 +failed=0" "$tmp/run-check" || fail "--check: $h's recap"
done
report check '
assert r["check_mode"] is True
for h, x in by.items():
    assert x["result"] == "would-update" and x["changed"] and not x.get("failed"), x
    assert x["proceed"] is True and x["refused"] == [], x
    v = {e["name"]: e for e in x["verdicts"]}
    assert v["kvcache-store"]["verdict"] == "use" and v["kvcache-store"]["version"] == 1, v
    assert v["kvcache-store"]["new_read"] == [1, 2], v
    assert v["kvcache-conns"]["verdict"] == "use" and v["luo.handover"]["verdict"] == "use", v
    assert x["previous_build_id"] != x["target_build_id"], x
    # the components in manifest order, which the build decides
    m = x["msg"]
    assert m.startswith("pid %d -> %s/%s/kvcache-r2: would proceed (" % (x["pid"], tmp, h)), m
    assert sorted(m[m.index("(") + 1:-1].split(", ")) == ["kvcache-conns v1", "kvcache-store v1"], m
    st = s[h]
    assert x["pid"] == st["pid"], (x, st)
    assert st["exe"] == f"{tmp}/{h}/kvcache-r1" and st["generations"] == 1, st
    assert sorted(st["files"]) == ["kvcache-r1", "pid", "port", "ready"], st
print("ok - --check: every host would-update (kvcache-store: use version 1, new reads 1..2);",
      "same pids, still r1 (v1), no file left behind")
'

# 2. The roll, v1 -> v2, two hosts at a time.
play roll -i "$tmp/inv-r2" -e luo_serial=2
[ "$rc" -eq 0 ] || fail "roll: exit $rc"
batches=$(grep -c "^TASK \[luo_release : Live-update the service\]" "$tmp/run-roll" || true)
[ "$batches" -eq 2 ] || fail "roll: $batches batches, expected 2"
for h in "${hosts[@]}"; do
	# changed: the copy and the update; the gate is not a change.
	grep -qE "^$h +: ok=[0-9]+ +changed=2 +unreachable=0 +failed=0" "$tmp/run-roll" || fail "roll: $h's recap"
done
report roll '
assert r["check_mode"] is False
for h, x in by.items():
    assert x["result"] == "done" and x["changed"] and not x.get("failed"), x
    assert x["liveupdate_number"] == 1 and x["pid"] == s[h]["pid"], x
    assert x["build_id"] == x["target_build_id"] != x["previous_build_id"], x
    assert x["previous_binary"] == f"{tmp}/{h}/kvcache-r1", x
    t = x["timings_ms"]
    assert x["blackout_ms"] == t["blackout"] > 0, x
    assert set(t) == {"blackout", "freeze", "serialize", "exec", "restore", "ready"}, t
    st = s[h]
    assert st["exe"] == f"{tmp}/{h}/kvcache-r2" and st["generations"] == 2, st
    assert "kvcache-r1" in st["files"], st
print("ok - roll v1 -> v2 in 2 batches: every host done, liveupdate-number 1, same pid, old binary kept;",
      "blackouts (ms):", ", ".join("%s %.3f" % (h, by[h]["blackout_ms"]) for h in sorted(by)))
'
for h in "${hosts[@]}"; do
	grep -q "] generation 1: v2 build, .*kvcache-store at v1" "$tmp/server-$h" || fail "$h: no v2 generation"
done

# 3. The same again: nothing to do.
play again -i "$tmp/inv-r2" -e luo_serial=2
[ "$rc" -eq 0 ] || fail "again: exit $rc"
for h in "${hosts[@]}"; do
	grep -qE "^$h +: ok=[0-9]+ +changed=0 +unreachable=0 +failed=0" "$tmp/run-again" || fail "again: $h changed or failed"
done
report again '
for h, x in by.items():
    assert x["result"] == "current" and not x["changed"] and not x.get("failed"), x
    assert s[h]["exe"] == f"{tmp}/{h}/kvcache-r2" and s[h]["generations"] == 2, s[h]
print("ok - the same release again: every host current, changed=0, no update asked")
'

# 4. Release r3: v1 everywhere (a downgrade both formats allow), but v3 for
# kv3, which cannot read what v2 writes. One host at a time.
inventory "$tmp/inv-r3" r3 "$v1" "kv3=$v3"
play stop -i "$tmp/inv-r3" -e luo_serial=1
[ "$rc" -ne 0 ] || fail "stop: the playbook succeeded"
grep -q "^kv4 " "$tmp/run-stop" && fail "stop: the play went on to kv4"
report stop '
for h in ("kv1", "kv2"):
    x = by[h]
    assert x["result"] == "done" and x["liveupdate_number"] == 2, x
    assert s[h]["exe"] == f"{tmp}/{h}/kvcache-r3" and s[h]["generations"] == 3, s[h]
x = by["kv3"]
assert x["result"] == "would-refuse" and x["failed"] and x["refused"] == ["kvcache-store"], x
v = {e["name"]: e for e in x["verdicts"]}
assert v["kvcache-store"]["verdict"] == "refuse" and "no common version" in v["kvcache-store"]["why"], v
assert "would be refused" in x["msg"], x
assert s["kv3"]["exe"] == f"{tmp}/kv3/kvcache-r2" and s["kv3"]["generations"] == 2, s["kv3"]
assert by["kv4"]["result"] == "not-reached", by["kv4"]
assert s["kv4"]["exe"] == f"{tmp}/kv4/kvcache-r2" and s["kv4"]["generations"] == 2, s["kv4"]
assert "kvcache-r3" not in s["kv4"]["files"], s["kv4"]
assert all(x["pid"] == s[x["host"]]["pid"] for x in r["hosts"] if "pid" in x)
print("ok - r3 with v3 on kv3 (serial 1): kv1, kv2 rolled; kv3 refused at the gate (kvcache-store:",
      v["kvcache-store"]["why"] + "); the run stopped, kv4 not reached, kv3 and kv4 still v2")
'

# 5. The module alone, no gate: the service itself refuses, the task fails with its report.
rc=0
timeout 120 ansible kv4 -i "$tmp/inv-r3" \
	-M "$ansible_dir/library" -m luo_update -a "pid_file=$tmp/kv4/pid binary=$v3 luoctl=$luoctl" \
	> "$tmp/run-adhoc" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "ad hoc v2 -> v3: succeeded"
python3 - "$tmp/run-adhoc" "${server[kv4]}" <<'EOF' || fail "ad hoc v2 -> v3: not refused with the report"
import json, sys
out = open(sys.argv[1]).read()
# "kv4 | FAILED! => {...}": Debian's ansible-core has no json callback.
x = json.loads(out[out.index("kv4 | FAILED! => {") + len("kv4 | FAILED! => "):])
assert not x["changed"] and x["result"] == "refused" and x["errno"] == "EPROTO", x
assert x["pid"] == int(sys.argv[2]) and x["liveupdate_number"] == 1, x
rep = {e["name"]: e for e in x["report"]}
assert rep["kvcache-store"]["verdict"] == "refuse", rep
print("ok - luo_update kv4 -> v3 without the gate: refused by the service (EPROTO), the report:",
      rep["kvcache-store"]["line"].split(": ", 1)[1])
EOF
[ "$(generations kv4)" -eq 2 ] || fail "kv4: a new generation after the refusal"
# The service answered the refusal above (its pid, its report), but a
# refused update never pauses it: it quiesced once, for the roll.
asked=$(grep -c "live update asked through the control socket" "$tmp/server-kv4" || true)
[ "$asked" -eq 1 ] || fail "kv4: quiesced $asked times for its control socket, expected 1 (the roll)"
kill -0 "${server[kv4]}" || fail "kv4: gone after the refusal"

# 6. A rollback stops a rollout too: two luo-counter v2 hosts, the first
# given a build whose load fails after the switch.
mkdir -p "$tmp/c1" "$tmp/c2"
for c in c1 c2; do
	cp "$counter_v2" "$tmp/$c/counter-r1"
	"$tmp/$c/counter-r1" serve --port-file "$tmp/$c/port" > "$tmp/server-$c" 2>&1 &
	counters+=($!)
	echo "$!" > "$tmp/$c/pid"
done
for c in c1 c2; do
	for _ in $(seq 600); do grep -q "] generation 0: fresh start" "$tmp/server-$c" && break; sleep 0.05; done
	grep -q "] generation 0: fresh start" "$tmp/server-$c" || fail "$c: luo-counter did not start"
done
{
	echo "[luo]"
	echo "c1 luo_pid_file=$tmp/c1/pid luo_binary_dest=$tmp/c1/counter-r2 luo_binary_src=$counter_broken"
	echo "c2 luo_pid_file=$tmp/c2/pid luo_binary_dest=$tmp/c2/counter-r2 luo_binary_src=$counter_broken"
	echo "[luo:vars]"
	echo "ansible_connection=local"
	echo "luo_luoctl=$luoctl"
} > "$tmp/inv-counter"
play rollback -i "$tmp/inv-counter"
[ "$rc" -ne 0 ] || fail "rollback: the playbook succeeded"
python3 - "$tmp/report-rollback.json" "${counters[0]}" <<'EOF' || fail "rollback: the report is not as expected"
import json, sys
r = json.load(open(sys.argv[1]))
by = {x["host"]: x for x in r["hosts"]}
assert sorted(by) == ["c1", "c2"], r
x = by["c1"]
assert x["result"] == "rolled-back" and x["failed"] and x["errno"] == "EUCLEAN", x
assert x["pid"] == int(sys.argv[2]) and x["proceed"] is True, x
assert by["c2"]["result"] == "not-reached", by["c2"]
print("ok - a rollback stops the rollout: c1 rolled back (EUCLEAN: %s), c2 not reached" % x["reason"])
EOF
[ "$(readlink "/proc/${counters[0]}/exe")" = "$tmp/c1/counter-r1" ] || fail "c1: not back on its old binary"
[ ! -e "$tmp/c2/counter-r2" ] || fail "c2: the build was copied, the host was touched"
for p in "${counters[@]}"; do
	kill -TERM "$p"
	wait "$p" || true
done
counters=()

# The clients, then the servers: no error, every fd back, a clean exit.
for h in "${hosts[@]}"; do
	kill -INT "${client[$h]}"
	rc=0; wait "${client[$h]}" || rc=$?
	unset "client[$h]"
	[ "$rc" -eq 0 ] || fail "$h: client exit $rc"
	grep -q "; 0 errors, 0 refused connections, 0 broken connections, 0 items lost;" "$tmp/client-$h" ||
		fail "$h: client summary"
done
echo "ok - the four clients: no error, no refused or broken connection, no item lost ($(tail -n 1 "$tmp/client-kv1" | cut -d';' -f1) on kv1)"
for h in "${hosts[@]}"; do
	for _ in $(seq 100); do
		[ "$(ls "/proc/${server[$h]}/fd" | wc -l)" -eq "${fds[$h]}" ] && break
		sleep 0.05
	done
	n=$(ls "/proc/${server[$h]}/fd" | wc -l)
	[ "$n" -eq "${fds[$h]}" ] || { ls -l "/proc/${server[$h]}/fd"; fail "$h: ${fds[$h]} fds before the client, $n after"; }
	kill -TERM "${server[$h]}"
	rc=0; wait "${server[$h]}" || rc=$?
	unset "server[$h]"
	[ "$rc" -eq 0 ] || fail "$h: server exit $rc"
	grep -qE "AddressSanitizer|LeakSanitizer|runtime error" "$tmp/server-$h" && fail "$h: sanitizer report"
done
echo "ok - the servers: same pids throughout, no fd left over, a clean exit"
# FLEET_KEEP=DIR: keep the playbook runs' output and reports there.
if [ -n "${FLEET_KEEP:-}" ]; then
	mkdir -p "$FLEET_KEEP"
	cp "$tmp"/run-* "$tmp"/report-*.json "$tmp"/inv-* "$FLEET_KEEP"/
fi
