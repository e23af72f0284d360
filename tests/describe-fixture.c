/* SPDX-License-Identifier: MIT */
/*
 * A program that declares a file handler's data type and a component's
 * payload, built several ways by tests/test-describe.sh (-DVARIANT=N):
 *   0  the reference
 *   1  the handler's data struct gains a member: negotiation must refuse the
 *      handler (mandatory) before the switch
 * It is never run: only its manifest is read.
 */
#include <stdint.h>

#include "luo/luo.h"

#ifndef VARIANT
#define VARIANT 0
#endif

struct pipe_data {
	uint64_t ino;
	uint32_t flags;
#if VARIANT == 1
	uint32_t mode;
#endif
};

static bool can_preserve(int fd)
{
	return fd >= 0;
}
static int preserve(struct luo_file *f)
{
	(void)f;
	return 0;
}
static void unpreserve(struct luo_file *f)
{
	(void)f;
}
static int retrieve(struct luo_file *f)
{
	(void)f;
	return 0;
}
static void finish(struct luo_file *f, bool retrieved)
{
	(void)f;
	(void)retrieved;
}
static const struct luo_file_ops ops = {
	.can_preserve = can_preserve, .preserve = preserve, .unpreserve = unpreserve,
	.retrieve = retrieve, .finish = finish,
};
LUO_FILE_HANDLER_DECLARE(fixture_handler, "fixture-pipe", 1, sizeof(struct pipe_data), &ops);
LUO_HANDLER_DATA_TYPE(fixture_pipe_data, "fixture-pipe", 1, struct pipe_data);

struct state_v1 {
	uint64_t value;
};
static int save(uint32_t v, struct luo_payload *out)
{
	struct state_v1 s = { 1 };

	(void)v;
	return luo_payload_write(out, &s, sizeof(s));
}
static int load(uint32_t v, const void *data, size_t len)
{
	(void)v;
	(void)data;
	(void)len;
	return 0;
}
LUO_COMPONENT(fixture_state, "fixture-state", 1, 1, 1, 1, 0, save, load);
LUO_PAYLOAD_TYPE(fixture_state_v1, "fixture-state", 1, struct state_v1);

int main(void)
{
	return luo_file_handler_register(&fixture_handler) == 0 ? 0 : 1;
}
