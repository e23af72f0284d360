#!/usr/bin/env bash
# luo's one entry point for people and CI.
#
#   ./dev.sh demo    install what is missing, build, run the live-update demo
#   ./dev.sh test    install what is missing, build, run every test: plain,
#                    under ASan+UBSan (LeakSanitizer on), and the API tests
#                    under valgrind memcheck
#   ./dev.sh build   install what is missing and build (into ./build)
#   ./dev.sh deps    only install the missing Debian packages (as root)
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages the build and the tests need. Why each: README, "Dependencies".
PACKAGES=(gcc libc6-dev binutils pkg-config meson ninja-build python3 libfdt-dev libelf-dev libsystemd-dev valgrind)

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

# setup_dir DIR [meson options...]: configure once, reconfigure if options changed.
setup_dir() {
	local dir=$1
	shift
	if [ -f "$dir/build.ninja" ]; then
		meson configure "$dir" "$@" >/dev/null
	else
		meson setup "$dir" "$@" >/dev/null
	fi
	ninja -C "$dir" >/dev/null
}

build() {
	deps
	say "building (build/)"
	setup_dir build
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

	say "API tests under valgrind memcheck (errors and definite leaks fail)"
	meson test -C build --suite api --print-errorlogs --timeout-multiplier 10 \
		--wrapper 'valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite' || status=1
	# meson names the log after the wrapper
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

demo() {
	local d=build/examples/counter client_rc=0 port client
	build
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

case "${1:-}" in
demo) demo ;;
test) run_tests ;;
build) build ;;
deps) deps ;;
*)
	sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
	[ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]
	;;
esac
