#!/usr/bin/env bash
# libluo exports exactly the functions luo.h declares with LUO_EXPORT:
# nothing internal leaks out, nothing declared is missing.
set -euo pipefail
lib=$1
header=$2
# A directory: every public header in it (luo.h's contracts: service.h, handler.h, declare.h).
if [ -d "$header" ]; then headers=("$header"/*.h); else headers=("$header"); fi
want=$(cat "${headers[@]}" | grep -v '#define' | grep -o 'LUO_EXPORT [^(]*(' | sed 's/($//; s/.*[ *]//' | sort)
have=$(nm -D --defined-only "$lib" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' | sort)
if [ "$want" != "$have" ]; then
	diff <(echo "$want") <(echo "$have") | sed 's/^</declared, not exported:/; s/^>/exported, not declared:/'
	exit 1
fi
echo "ok - $(echo "$have" | wc -l) exported symbols, exactly those of luo.h"
