#!/usr/bin/env bash
# luoctl status / sessions / drop / agent update against a real luod, with
# one session deposited by agent-service: text and --json (parsed), the
# session's fields, the agent's self-update keeping it, drop, and the exit
# codes (0 done, 1 no such session or not yours, 2 no agent). As root, uid
# 65534 sees none of root's sessions and may not list or drop them.
#
# usage: test-luoctl-agent.sh LUOD AGENT_SERVICE LUOCTL
set -euo pipefail
luod=$1
agent_service=$2
luoctl=$3
. "$(dirname "$0")/service-lib.sh"
agent= depositor=
stop_all() {
	[ -n "$depositor" ] && kill -9 "$depositor" 2>/dev/null
	[ -n "$agent" ] && kill -9 "$agent" 2>/dev/null
	cleanup
}
trap stop_all EXIT
chmod 0755 "$tmp"
export LUO_AGENT_SOCKET=$tmp/agent.sock

"$luod" --socket-mode 0666 > "$tmp/server-luod" 2>&1 &
agent=$!
server=$agent # wait_in checks it stays alive
for _ in $(seq 600); do [ -S "$LUO_AGENT_SOCKET" ] && break; sleep 0.05; done
"$agent_service" deposit > "$tmp/server-depositor" 2>&1 &
depositor=$!
wait_in "$tmp/server-depositor" "^deposited"

json_check() { # FILE PYTHON-ASSERTIONS (d: the object)
	python3 -c "import json, sys; d = json.load(open(sys.argv[1])); $2" "$1" ||
		{ cat "$1"; fail "JSON check failed: $2"; }
}

"$luoctl" status > "$tmp/out" || fail "status: exit $?"
grep -q "^agent     pid $agent, liveupdate-number 0, up " "$tmp/out" || { cat "$tmp/out"; fail "status: agent line"; }
grep -qE "^0 +agent-service +4 +[0-9]+ +[0-9smhd]+ +[0-9smhd]+ +1  pid $depositor, kept on crash$" "$tmp/out" ||
	{ cat "$tmp/out"; fail "status: session line"; }
echo "ok - status: $(head -n 1 "$tmp/out")"
"$luoctl" status --json > "$tmp/out"
json_check "$tmp/out" "assert d['agent']['pid'] == $agent and d['caller']['sessions'] == 1 and \
d['caller']['max_sessions'] > 0 and d['sessions'][0]['name'] == 'agent-service' and \
d['sessions'][0]['attached_pid'] == $depositor and d['sessions'][0]['fds'] == 4"
echo "ok - status --json parses, names the session"

"$luoctl" sessions --json > "$tmp/out"
json_check "$tmp/out" "assert [s['name'] for s in d['sessions']] == ['agent-service']"
"$luoctl" sessions --all > /dev/null
"$luoctl" sessions --uid 4242 --json > "$tmp/out"
json_check "$tmp/out" "assert d['sessions'] == []"
echo "ok - sessions: own, --all, --uid"

kill -9 "$depositor"
wait "$depositor" 2> /dev/null || true
depositor=
for _ in $(seq 200); do "$luoctl" sessions | grep -q " detached$" && break; sleep 0.05; done
"$luoctl" sessions | grep -q " detached$" || fail "the crashed depositor's session is not detached"
"$luoctl" agent update > "$tmp/out" || fail "agent update: exit $?"
grep -q "^agent updated: liveupdate-number 1$" "$tmp/out" || { cat "$tmp/out"; fail "agent update: output"; }
"$luoctl" agent update --json > "$tmp/out" || fail "agent update --json: exit $?"
json_check "$tmp/out" "assert d['result'] == 'done' and d['liveupdate_number'] == 2"
"$luoctl" sessions --json > "$tmp/out"
json_check "$tmp/out" "assert [s['name'] for s in d['sessions']] == ['agent-service']"
echo "ok - agent update twice (text, json): the session is still held"

if [ "$(id -u)" -eq 0 ] && command -v setpriv > /dev/null; then
	nobody="setpriv --reuid=65534 --regid=65534 --clear-groups"
	install -m 0755 "$luoctl" "$tmp/luoctl"
	$nobody "$tmp/luoctl" sessions --json > "$tmp/out"
	json_check "$tmp/out" "assert d['sessions'] == []"
	rc=0; $nobody "$tmp/luoctl" sessions --uid 0 > /dev/null 2>&1 || rc=$?
	[ "$rc" -eq 1 ] || fail "uid 65534 listing uid 0: exit $rc, expected 1"
	rc=0; $nobody "$tmp/luoctl" drop agent-service --uid 0 2> "$tmp/err" || rc=$?
	[ "$rc" -eq 1 ] || { cat "$tmp/err"; fail "uid 65534 dropping uid 0's: exit $rc, expected 1"; }
	echo "ok - uid 65534: sees nothing of root's, may not list or drop it ($(cat "$tmp/err"))"
else
	echo "ok - # SKIP another uid: needs root and setpriv"
fi

"$luoctl" drop agent-service > "$tmp/out" || fail "drop: exit $?"
grep -q "^dropped session agent-service$" "$tmp/out" || fail "drop: output"
rc=0; "$luoctl" drop agent-service 2> "$tmp/err" || rc=$?
[ "$rc" -eq 1 ] || fail "drop again: exit $rc, expected 1"
"$luoctl" status --json > "$tmp/out"
json_check "$tmp/out" "assert d['agent']['sessions'] == 0 and d['sessions'] == []"
echo "ok - drop, then drop again: exit 1, $(cat "$tmp/err")"

rc=0; "$luoctl" status --socket "$tmp/nothing.sock" 2> "$tmp/err" || rc=$?
[ "$rc" -eq 2 ] || fail "no agent: exit $rc, expected 2"
echo "ok - no agent: exit 2, $(cat "$tmp/err")"

kill -TERM "$agent"
rc=0; wait "$agent" || rc=$?
agent= server=
[ "$rc" -eq 0 ] || fail "luod exit $rc"
echo "ok - luod stopped"
