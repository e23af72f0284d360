# Sourced by the tests that drive luo-counter as a service (test-counter.sh,
# test-versions.sh, test-rollback.sh): a scratch directory, the server's and
# the client's pids (killed on exit), fail() with their output, and a
# polling wait that does not depend on the machine's speed.
tmp=$(mktemp -d)
server= client=
cleanup() {
	[ -n "$client" ] && kill -9 "$client" 2>/dev/null
	[ -n "$server" ] && kill -9 "$server" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*"
	for f in "$tmp"/server* "$tmp"/client*; do [ -e "$f" ] && { echo "--- $f"; cat "$f"; }; done
	exit 1
}

# wait_in FILE PATTERN [COUNT]: wait (up to 30 s, polling) until PATTERN is
# in FILE COUNT times (default 1); fail if the server dies meanwhile.
wait_in() {
	local file=$1 pattern=$2 count=${3:-1}
	for _ in $(seq 600); do
		[ "$(grep -c -- "$pattern" "$file" 2>/dev/null || true)" -ge "$count" ] && return 0
		if ! kill -0 "$server" 2>/dev/null; then
			# It may have printed the line and exited between the two looks.
			[ "$(grep -c -- "$pattern" "$file" 2>/dev/null || true)" -ge "$count" ] && return 0
			fail "the server died waiting for '$pattern'"
		fi
		sleep 0.05
	done
	fail "timed out waiting for '$pattern' (x$count) in $file"
}
