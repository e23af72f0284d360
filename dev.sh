#!/usr/bin/env bash
# luo's one entry point for people and CI.
#
#   ./dev.sh demo    install what is missing, build, run the live-update demo:
#                    kvcache, a memcached-protocol cache, updated under load
#   ./dev.sh demo-counter  the versioning walk of luo-counter (v1 -> v2 -> v3,
#                    a refusal, a downgrade; luoctl matrix)
#   ./dev.sh test    install what is missing, build, run every test: plain,
#                    under ASan+UBSan (LeakSanitizer on), a release (-O3)
#                    build with -Werror, each fuzz target
#                    for 15 s (clang, libFuzzer), and the API tests under
#                    valgrind memcheck, and the exec tests under valgrind
#                    with the mm reaper off (LUO_NO_REAPER=1)
#   ./dev.sh build   install what is missing and build (into ./build)
#   ./dev.sh deps    only install the missing Debian packages (as root)
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages the build and the tests need. Why each: README, "Dependencies".
PACKAGES=(gcc libc6-dev binutils pkg-config meson ninja-build python3 libfdt-dev libelf-dev libdw-dev libsystemd-dev libfuse3-dev fuse3 valgrind
	libmemcached-tools clang ansible-core systemd groff-base memcached python3-pylibmc python3-pymemcache python3-pytest
	universal-ctags)

say() { printf '\n== %s\n' "$*"; }

deps() {
	local missing=() p
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing Debian packages: ${missing[*]}" >&2
		echo "run as root: apt-get install -y ${missing[*]}" >&2
		exit 1
	fi
	say "installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ninja_progress DIR [TARGET...]: build, showing where it is: one line per
# step, "[n/total] what" (ninja's own count; the object's directory cut).
ninja_progress() {
	local dir=$1
	shift
	ninja -C "$dir" "$@" | awk '
		/^\[[0-9]+\/[0-9]+\] / {
			split(substr($1, 2), c, "/"); n = c[1] + 0; t = c[2] + 0
			sub(/ [^ ]*\.p\//, " ", $0); print "  " $0; fflush()
			next
		}
		/^ninja: no work to do/ { print "  up to date"; next }
		{ print; fflush() }'
	return "${PIPESTATUS[0]}"
}

# setup_dir DIR [meson options...]: configure once, reconfigure if options changed.
setup_dir() {
	local dir=$1
	shift
	if [ -f "$dir/build.ninja" ]; then
		meson configure "$dir" "$@" >/dev/null
	else
		echo "  configuring $dir (meson setup)"
		meson setup "$dir" "$@" >/dev/null
	fi
	ninja_progress "$dir"
}

build() {
	deps
	say "building (build/)"
	setup_dir build
}

# build_only TARGET...: configure build/ if needed and build only these
# (and what they need), so a demo starts without the rest of the tree.
build_only() {
	deps
	say "building what the demo needs (build/; ./dev.sh build builds the rest)"
	[ -f build/build.ninja ] || { echo "  configuring build (meson setup)"; meson setup build >/dev/null; }
	ninja_progress build "$@"
}

# Count the results in a meson test log (JSON lines): "passed failed skipped".
count_results() {
	python3 - "$1" <<'PY'
import json, sys
ok = bad = skip = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"):
        ok += 1
    elif r == "SKIP":
        skip += 1
    else:
        bad += 1
print(ok, bad, skip)
PY
}

run_tests() {
	local passed=0 failed=0 skipped=0 p f k status=0
	build
	say "tests"
	meson test -C build --print-errorlogs || status=1
	read -r p f k < <(count_results build/meson-logs/testlog.json); passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + k))

	say "tests under AddressSanitizer + UndefinedBehaviorSanitizer + LeakSanitizer"
	setup_dir build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		meson test -C build-asan --print-errorlogs || status=1
	read -r p f k < <(count_results build-asan/meson-logs/testlog.json); passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + k))

	# -O3 inlines across functions and warns where -O2 does not (maybe-uninitialized):
	# with -Werror, a release build is a build of its own to keep working.
	say "release build (-O3, as bench/ and packagers build it): compiles with -Werror"
	if setup_dir build-release --buildtype=release > build-release.log 2>&1; then
		passed=$((passed + 1)); echo "  ok"
	else
		failed=$((failed + 1)); status=1; grep -E "error|FAILED" build-release.log | head -40
	fi
	rm -f build-release.log

	say "fuzzing: each libFuzzer target 15 s from its committed corpus (fuzz/run.sh)"
	FUZZ_SKIP_BROKEN=1 fuzz/run.sh 15 || status=1
	read -r p f k < <(count_results build-fuzz/meson-logs/fuzzlog.json); passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + k))

	say "API tests under valgrind memcheck (errors and definite leaks fail)"
	meson test -C build --suite api --print-errorlogs --timeout-multiplier 10 \
		--wrapper 'valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite' || status=1
	# meson names the log after the wrapper
	read -r p f k < <(count_results build/meson-logs/testlog-valgrind.json); passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + k))

	say "exec tests under valgrind memcheck, the mm reaper off (LUO_NO_REAPER=1), through the exec"
	LUO_NO_REAPER=1 meson test -C build --suite exec-valgrind --print-errorlogs --timeout-multiplier 10 \
		--wrapper 'valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --trace-children=yes' || status=1
	read -r p f k < <(count_results build/meson-logs/testlog-valgrind.json); passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + k))

	echo
	echo "$passed passed, $failed failed, $skipped skipped"
	return $status
}

demo_tmp=
demo_server=
demo_cleanup() {
	[ -n "$demo_server" ] && kill "$demo_server" 2>/dev/null || true
	[ -n "$demo_tmp" ] && rm -rf "$demo_tmp"
}

# demo_wait PATTERN: wait (up to 30 s) for a line of the server's output.
demo_wait() {
	for _ in $(seq 600); do
		grep -q -- "$1" "$demo_tmp/server" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "demo: the server never printed '$1'" >&2
	cat "$demo_tmp/server" >&2
	return 1
}

# demo_update BINARY PATTERN: live-update the server to BINARY, wait for PATTERN.
demo_update() {
	echo "$1" > "$demo_tmp/next"
	kill -HUP "$demo_server"
	demo_wait "$2"
	sleep 0.5
}

demo_counter() {
	local d=build/examples/counter client_rc=0 port client
	build_only examples/counter/luo-counter-v1 examples/counter/luo-counter-v2 examples/counter/luo-counter-v3 \
		src/luoctl/luoctl
	demo_tmp=$(mktemp -d)
	trap demo_cleanup EXIT
	say "demo: a service live-updates across three releases while a client hammers it"
	cat <<'TXT'
luo-counter answers "INC" on a TCP socket. Its state is two versioned
components: "counter" (mandatory) and "stats" (optional). On SIGHUP it calls
luo_update() to the binary named in a file: same pid, same listening socket,
state handed over at the version both releases agree on -- or refused before
anything is frozen when there is none. The client checks that no connection
is refused and that every answer is the last one plus one.

  release  counter reads/writes  stats reads/writes
  v1       1 / 1                 1 / 1
  v2       1-2 / 1-2             2 / 2
  v3       2-3 / 2-3             2-3 / 2-3
TXT
	echo
	"$d/luo-counter-v1" serve --port-file "$demo_tmp/port" --next-file "$demo_tmp/next" \
		> "$demo_tmp/server" 2>&1 &
	demo_server=$!
	demo_wait "generation 0: fresh start"
	port=$(cat "$demo_tmp/port")
	"$d/luo-counter-v1" client --port "$port" --seconds 600 > "$demo_tmp/client" &
	client=$!
	sleep 0.5
	demo_update "$d/luo-counter-v2" "generation 1: "
	demo_update "$d/luo-counter-v3" "generation 2: "
	demo_update "$d/luo-counter-v1" "still serving"
	demo_update "$d/luo-counter-v2" "generation 3: "
	kill -INT "$client"
	wait "$client" || client_rc=$?
	kill -TERM "$demo_server"
	wait "$demo_server" || true
	demo_server=
	sed 's/^/  /' "$demo_tmp/server"
	echo
	cat "$demo_tmp/client"
	echo
	say "luoctl matrix: the same verdicts, read from the binaries without running them"
	build/src/luoctl/luoctl matrix "$d/luo-counter-v1" "$d/luo-counter-v2" "$d/luo-counter-v3"
	echo
	if [ "$client_rc" -eq 0 ]; then
		echo "demo: OK -- one pid, one socket, no refused connection, no lost count: v1 -> v2 -> v3,"
		echo "      v3 -> v1 refused before the switch (the service kept serving), v3 -> v2"
	else
		echo "demo: FAILED -- see the client's line above"
		return 1
	fi
}

# stat_of PORT NAME: one field of kvcache's "stats".
stat_of() {
	python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"stats\r\n")
buf = b""
while not buf.endswith(b"END\r\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
for line in buf.decode().splitlines():
    f = line.split()
    if len(f) == 3 and f[0] == "STAT" and f[1] == sys.argv[2]:
        print(f[2])
PY
}

demo() {
	local d=build/examples/kvcache pid port client client_rc=0 slap slap_rc=0 before after
	local items=200000
	build_only examples/kvcache/kvcache-v1 examples/kvcache/kvcache-v2 examples/kvcache/kvcache-v3 \
		tests/test-kvcache-client src/luoctl/luoctl
	demo_tmp=$(mktemp -d)
	trap demo_cleanup EXIT
	say "demo: a memcached-protocol cache live-updates under load, keeping its items and its clients"
	cat <<'TXT'
kvcache keeps its items and hash index in a luo arena: memory that the next
binary maps at the same address, so nothing is copied or rebuilt. Its
listening socket and every open client connection cross the update too.
Two clients run throughout: memcaslap (libmemcached's load generator, with
verification on) and a verifying client that owns 200,000 keys, keeps four
persistent connections and opens new ones non-stop. Meanwhile:
  1. luoctl update --pid: v1 -> v2 (item format 1 -> 2, migrated lazily)
  2. luoctl update --pid: v2 -> v3 (format 3: no common version, refused
     before anything is frozen; v2 keeps serving)
TXT
	"$d/kvcache-v1" --port-file "$demo_tmp/port" --memory 256 > "$demo_tmp/server" 2>&1 &
	demo_server=$!
	pid=$demo_server
	for _ in $(seq 200); do [ -s "$demo_tmp/port" ] && break; sleep 0.05; done
	port=$(cat "$demo_tmp/port")
	build/tests/test-kvcache-client --port "$port" --items "$items" --conns 4 --seconds 5 \
		--ready-file "$demo_tmp/ready" > "$demo_tmp/client" 2>&1 &
	client=$!
	for _ in $(seq 400); do [ -e "$demo_tmp/ready" ] && break; sleep 0.05; done
	slap=$(command -v memcaslap || command -v memaslap)
	"$slap" -s "127.0.0.1:$port" -T 2 -c 16 -t 4s -v 0.1 > "$demo_tmp/memcaslap" 2>&1 &
	local slap_pid=$!
	before=$(stat_of "$port" curr_items)
	sleep 1
	echo
	echo "\$ luoctl update --pid $pid kvcache-v2"
	build/src/luoctl/luoctl update --pid "$pid" "$d/kvcache-v2" | sed 's/^/  /' || true
	sleep 1
	echo
	echo "\$ luoctl update --pid $pid kvcache-v3"
	build/src/luoctl/luoctl update --pid "$pid" "$d/kvcache-v3" | sed 's/^/  /' || true
	wait "$slap_pid" || slap_rc=$?
	wait "$client" || client_rc=$?
	after=$(stat_of "$port" curr_items)
	echo
	echo "what the clients saw:"
	echo "  verifying client: $(tail -1 "$demo_tmp/client" | sed 's/^client: //')"
	echo "  memcaslap:        $(grep -E '^(verify_failed|verify_misses|get_misses):' "$demo_tmp/memcaslap" | tr '\n' ' ')"
	grep -E "^Run time|^Ops:|^TPS" "$demo_tmp/memcaslap" | head -3 | sed 's/^/                    /'
	echo "  items in the cache: $before before the update (the verifying client's, all read back"
	echo "  intact at the end), $after after both (memcaslap added its own)"
	echo "  the server, same pid $pid throughout:"
	grep -E "generation|refused|EPROTO" "$demo_tmp/server" | head -8 | sed 's/^/    /'
	kill -TERM "$demo_server"
	wait "$demo_server" || true
	demo_server=
	echo
	if [ "$client_rc" -eq 0 ] && [ "$slap_rc" -eq 0 ] &&
		grep -q "^verify_failed: 0$" "$demo_tmp/memcaslap" && grep -q "^verify_misses: 0$" "$demo_tmp/memcaslap"; then
		echo "demo: OK -- v1 -> v2 under load: no client error, no refused connection, no item lost;"
		echo "      v2 -> v3 refused before the switch, v2 kept serving. (./dev.sh demo-counter: the versioning walk)"
	else
		echo "demo: FAILED -- see the clients' lines above"
		sed 's/^/  /' "$demo_tmp/server" | tail -20
		return 1
	fi
}

case "${1:-}" in
demo) demo ;;
demo-counter) demo_counter ;;
test) run_tests ;;
build) build ;;
deps) deps ;;
*)
	sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
	[ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]
	;;
esac
