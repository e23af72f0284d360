/* SPDX-License-Identifier: MIT */
#ifndef LUO_FUZZ_CURSOR_H
#define LUO_FUZZ_CURSOR_H

/*
 * The fuzz input read as a stream of little-endian integers: past its end,
 * every byte reads as zero, so a harness never reads outside the input and
 * a short input is just a shorter run.
 */

#include <stddef.h>
#include <stdint.h>

struct cursor {
	const uint8_t *in;
	size_t len, pos;
};

/* The next @bytes (at most 8) as a little-endian integer. */
static inline uint64_t take(struct cursor *c, size_t bytes)
{
	uint64_t v = 0;

	for (size_t i = 0; i < bytes; i++, c->pos++)
		v |= (uint64_t)(c->pos < c->len ? c->in[c->pos] : 0) << (8 * i);
	return v;
}

#endif /* LUO_FUZZ_CURSOR_H */
