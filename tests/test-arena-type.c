/* SPDX-License-Identifier: MIT */
/*
 * luo_arena_bind_type(): the arena's header keeps the digest of its root
 * type's description, and a second binding with another type graph is
 * refused (-EPROTO), in O(1). This binary is described by luo-describe
 * (tests/meson.build), so its LUO_ARENA_TYPE()s have digests.
 *
 *   "t" v1 and v3: struct node_v1 (a list); v2: struct node_v2, the same but
 *   for one member's signedness.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "luo/luo.h"
#include "test-util.h"

struct node_v1 {
	struct node_v1 *next;
	uint32_t key;
	uint32_t len;
};

struct node_v2 {
	struct node_v2 *next;
	uint32_t key;
	int32_t len;
};

LUO_ARENA_TYPE(t_v1, "t", 1, struct node_v1);
LUO_ARENA_TYPE(t_v2, "t", 2, struct node_v2);
LUO_ARENA_TYPE(t_v3, "t", 3, struct node_v1);

int main(void)
{
	struct luo *luo = NULL;
	struct luo_session *s = NULL;
	struct luo_arena *a = NULL;

	test_begin();
	CHECK_EQ(luo_open(0, &luo), 0);
	CHECK_EQ(luo_session_create(luo, "s", &s), 0);
	CHECK_EQ(luo_arena_create(s, 1, 1u << 20, 0, &a), 0);
	CHECK_EQ(luo_arena_bind_type(a, "t", 1), 0);
	CHECK_EQ(luo_arena_bind_type(a, "t", 1), 0);
	/* The same graph declared for another version: the same digest. */
	CHECK_EQ(luo_arena_bind_type(a, "t", 3), 0);
	/* One member's signedness differs: refused, the header keeps v1's. */
	CHECK_EQ(luo_arena_bind_type(a, "t", 2), -EPROTO);
	CHECK_EQ(luo_arena_bind_type(a, "t", 1), 0);
	CHECK_EQ(luo_arena_bind_type(a, "nope", 1), -ENOENT);
	CHECK_EQ(luo_arena_bind_type(a, "t", 9), -ENOENT);
	CHECK_EQ(luo_arena_bind_type(a, "t", 0), -EINVAL);
	CHECK_EQ(luo_arena_bind_type(NULL, "t", 1), -EINVAL);
	printf("ok - the arena keeps its type digest; another graph is refused (-EPROTO)\n");
	luo_arena_close(a);
	luo_session_close(s);
	luo_close(luo);
	check_no_fd_leak();
	printf("ok - no fd leaked\n");
	return 0;
}
