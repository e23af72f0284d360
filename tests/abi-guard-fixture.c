/* SPDX-License-Identifier: MIT */
/*
 * A struct a component "fixture" writes at version 1, built four ways to
 * show that the ABI guard (test-abi-guard.c) catches a layout changed
 * without a version bump. FIXTURE_VARIANT:
 *
 *   0  the pinned layout (tests/abi-fingerprints-fixture.txt)
 *   1  two fields swapped: same size, other offsets
 *   2  a field's type changed to one of the same size (uint32_t -> int32_t)
 *   3  a field widened (uint32_t -> uint64_t): the struct grows
 */

#include <stdint.h>

#include "luo/luo.h"

#ifndef FIXTURE_VARIANT
#define FIXTURE_VARIANT 0
#endif

#if FIXTURE_VARIANT == 0
struct fixture_v1 {
	uint64_t id;
	uint32_t flags;
	uint32_t count;
};
LUO_LAYOUT(fixture_v1_layout, "fixture", 1, struct fixture_v1,
	   LUO_FIELD(struct fixture_v1, id, uint64_t),
	   LUO_FIELD(struct fixture_v1, flags, uint32_t),
	   LUO_FIELD(struct fixture_v1, count, uint32_t));
#elif FIXTURE_VARIANT == 1
struct fixture_v1 {
	uint64_t id;
	uint32_t count;
	uint32_t flags;
};
LUO_LAYOUT(fixture_v1_layout, "fixture", 1, struct fixture_v1,
	   LUO_FIELD(struct fixture_v1, id, uint64_t),
	   LUO_FIELD(struct fixture_v1, count, uint32_t),
	   LUO_FIELD(struct fixture_v1, flags, uint32_t));
#elif FIXTURE_VARIANT == 2
struct fixture_v1 {
	uint64_t id;
	uint32_t flags;
	int32_t count;
};
LUO_LAYOUT(fixture_v1_layout, "fixture", 1, struct fixture_v1,
	   LUO_FIELD(struct fixture_v1, id, uint64_t),
	   LUO_FIELD(struct fixture_v1, flags, uint32_t),
	   LUO_FIELD(struct fixture_v1, count, int32_t));
#else
struct fixture_v1 {
	uint64_t id;
	uint32_t flags;
	uint64_t count;
};
LUO_LAYOUT(fixture_v1_layout, "fixture", 1, struct fixture_v1,
	   LUO_FIELD(struct fixture_v1, id, uint64_t),
	   LUO_FIELD(struct fixture_v1, flags, uint32_t),
	   LUO_FIELD(struct fixture_v1, count, uint64_t));
#endif

int main(void)
{
	return 0;
}
