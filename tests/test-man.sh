#!/usr/bin/env bash
# The man pages: every page renders with groff -ww (all warnings) and
# without one; libluo(3)'s SYNOPSIS names every function luo.h exports;
# its SEE ALSO names the daemon's and the agent protocol's pages; and no
# Greek letter stands in for a symbol (the negotiation rule's intersection
# once rendered as a Gamma).
#
# usage: test-man.sh MAN_DIR LUO_H
set -euo pipefail
man=$1
header=$2
fail() { echo "not ok - $*"; exit 1; }

command -v groff > /dev/null || { echo "ok - # SKIP groff is not installed"; exit 77; }
n=0
for page in "$man"/*.[1-8]; do
	out=$(groff -ww -man -Tutf8 -z "$page" 2>&1) || fail "$page: groff exit $?"
	[ -z "$out" ] || { echo "$out"; fail "$page: groff warnings"; }
	n=$((n + 1))
done
[ "$n" -ge 6 ] || fail "only $n pages in $man"
echo "ok - $n pages render with groff -ww -man -Tutf8, no warning"

want=$(grep -v '#define' "$header" | grep -o 'LUO_EXPORT [^(]*(' | sed 's/($//; s/.*[ *]//' | sort -u)
synopsis=$(sed -n '/^\.SH SYNOPSIS/,/^\.SH /p' "$man/libluo.3")
missing=
for f in $want; do
	grep -qE "[ *]$f\(" <<< "$synopsis" || missing="$missing $f"
done
[ -z "$missing" ] || fail "libluo(3) SYNOPSIS lacks:$missing"
echo "ok - libluo(3) SYNOPSIS: all $(wc -w <<< "$want") functions of luo.h"

see_also=$(sed -n '/^\.SH SEE ALSO/,/^\.SH /p' "$man/libluo.3")
for ref in "luod (8)" "luo-agent (7)" "luoctl (1)"; do
	grep -qF ".BR ${ref% *} ${ref#* }" <<< "$see_also" || fail "libluo(3) SEE ALSO lacks ${ref/ /}"
done
echo "ok - libluo(3) SEE ALSO: luod(8), luo-agent(7), luoctl(1)"

if grep -n '\\(\*[A-Za-z]' "$man"/*.[1-8]; then
	fail "a Greek letter escape (\\(*X) in a page: write the symbol's own escape or words"
fi
echo "ok - no Greek letter escapes"
