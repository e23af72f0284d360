#!/usr/bin/env bash
# What `meson install --destdir` puts down is usable from there: a program
# compiles and runs against the shared library and links against the
# static one, with only PKG_CONFIG_PATH and PKG_CONFIG_SYSROOT_DIR pointing
# into the destdir (the .pc file sits in the multiarch libdir); every
# function of luo.h has a man page alias, and `man luo_update` finds
# luo_update(3) there, `man luo_session_tokens` luo_session(3).
#
# usage: test-install.sh BUILD_DIR [B_SANITIZE]
set -euo pipefail
build=$1
if [ "${2:-none}" != none ]; then
	echo "ok - # SKIP a sanitizer build (b_sanitize=$2): a plain program cannot load its library"
	exit 77
fi
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
fail() { echo "not ok - $*"; exit 1; }

meson install -C "$build" --destdir "$dest" --no-rebuild --quiet > "$dest/install.log" 2>&1 ||
	{ cat "$dest/install.log"; fail "meson install --destdir"; }
pc=$(find "$dest" -name libluo.pc)
[ -n "$pc" ] || fail "no libluo.pc installed"
export PKG_CONFIG_PATH=${pc%/*} PKG_CONFIG_SYSROOT_DIR=$dest
libdir=$(pkg-config --variable=libdir libluo) # with the sysroot before it
case $libdir in "$dest"/*) libdir=${libdir#"$dest"} ;; *) fail "libdir $libdir: the sysroot is not applied" ;; esac
[ -e "$dest$libdir/libluo.a" ] || fail "no libluo.a in $dest$libdir"
[ -e "$dest$libdir/libluo.so.0" ] || fail "no libluo.so.0 in $dest$libdir"
echo "ok - installed: ${pc#$dest}, $libdir/libluo.a, $libdir/libluo.so.0"

cat > "$dest/prog.c" <<'C'
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
#include <luo/luo.h>

int main(void)
{
	struct luo *luo;
	struct luo_session *s;
	char name[LUO_FILE_NAME_MAX + 1];
	size_t n = 0;
	int fd = memfd_create("prog", MFD_CLOEXEC);

	if (fd < 0 || luo_open(0, &luo) < 0 || luo_session_create(luo, "prog", &s) < 0 ||
	    luo_session_preserve_fd_named(s, fd, 1, "state") < 0 || luo_session_tokens(s, NULL, 0, &n) < 0 || n != 1 ||
	    luo_session_fd_name(s, 1, name, sizeof(name)) != 5)
		return 1;
	close(fd);
	luo_close(luo);
	printf("linked and ran: %s\n", name);
	return 0;
}
C
# shellcheck disable=SC2046
cc -o "$dest/prog-shared" "$dest/prog.c" $(pkg-config --cflags --libs libluo) || fail "compile against the shared library"
out=$(LD_LIBRARY_PATH=$dest$libdir "$dest/prog-shared") || fail "the shared build does not run"
readelf -d "$dest/prog-shared" | grep -q 'NEEDED.*libluo\.so\.0' || fail "prog-shared does not need libluo.so.0"
echo "ok - shared: cc \$(pkg-config --cflags --libs libluo): $out"

# shellcheck disable=SC2046
cc -o "$dest/prog-static" "$dest/prog.c" $(pkg-config --cflags libluo) \
	-Wl,-Bstatic -lluo -Wl,-Bdynamic $(pkg-config --static --libs libluo | sed 's/-lluo\b//') ||
	fail "link against the static library"
readelf -d "$dest/prog-static" | grep -q 'libluo' && fail "prog-static still needs libluo.so"
out=$(env -u LD_LIBRARY_PATH "$dest/prog-static") || fail "the static build does not run"
echo "ok - static: -Wl,-Bstatic -lluo + pkg-config --static --libs: $out"

mandir=$(find "$dest" -type d -name man3 -path '*/share/man/*')
[ -n "$mandir" ] || fail "no man3 directory installed"
missing=
for f in $(nm -D --defined-only "$dest$libdir/libluo.so.0" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }'); do
	[ -e "$mandir/$f.3" ] || missing="$missing $f"
done
[ -z "$missing" ] || fail "no man page for:$missing"
if command -v man > /dev/null; then
	MANPAGER=cat MANWIDTH=80 man -M "${mandir%/man3}" luo_update 2> "$dest/man.err" | grep -q "luo_update" ||
		{ cat "$dest/man.err"; fail "man luo_update finds nothing"; }
	# An alias page leads to its group's page (test-man checks every one).
	MANPAGER=cat MANWIDTH=80 man -M "${mandir%/man3}" luo_session_tokens 2> "$dest/man.err" | head -1 |
		grep -q "^LUO_SESSION(3)" || { cat "$dest/man.err"; fail "man luo_session_tokens does not show luo_session(3)"; }
	echo "ok - every exported function has a page; man luo_update shows luo_update(3), man luo_session_tokens luo_session(3)"
else
	echo "ok - every exported function has a page (# SKIP man(1) is not installed)"
fi
