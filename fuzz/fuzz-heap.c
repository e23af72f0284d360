/* SPDX-License-Identifier: MIT */
/*
 * DOC: fuzz-heap, the arena allocator's validator and its lazy slab checks
 *
 * A region of HEAP_CHUNKS data chunks, malloc'd at its exact size (an
 * access past it is an ASan report), is formatted fresh for every input.
 * The input is
 *
 *   u16 (little-endian) n, then n bytes of operations, then an overlay
 *
 * and the operations run in order (each takes the bytes it needs, zeros
 * once the operations run out):
 *
 *   'a' + u16   luo_heap_alloc() of a size spread over every class and
 *               runs of up to 4 chunks; the block must lie in the data
 *               area, be aligned, and (see below) overlap no live block;
 *               its first and last bytes are written
 *   'f' + u8    luo_heap_free() of a block allocated before
 *   'b' + u16   luo_heap_free() of an arbitrary pointer into the region
 *   'p' + u16 + u64  a write of 8 bytes anywhere in the region (what a
 *               forked child or a stray write may do: heap.h, DOC)
 *   'k'         luo_heap_check() of the region as it is
 *   'c'         the overlay copied over the region's metadata (the image
 *               handed over), then luo_heap_check(); a refusal ends the
 *               input, else the calls go on on that heap
 *   's', 'r'    luo_heap_stats(), luo_heap_set_root()
 *
 * Oracles, from heap.h's DOC: nothing outside the region is touched, the
 * release callback gets whole chunks inside the data area, and -- as long
 * as nobody wrote the region behind the heap's back ('p') and no foreign
 * pointer was freed ('b') since the last check -- no two live blocks
 * overlap; with no such write, the region passes luo_heap_check() again.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heap.h"
#include "fuzz-cursor.h"

#define HEAP_CHUNKS 8u
#define LIVE_MAX 32u

#define REQUIRE(cond)                                                                         \
	do {                                                                                  \
		if (!(cond)) {                                                                \
			fprintf(stderr, "fuzz-heap: broken promise: %s (%s)\n", #cond, reason); \
			abort();                                                              \
		}                                                                             \
	} while (0)

struct live {
	uint8_t *p;
	size_t n;
};

static uint8_t *region;
static size_t region_size;
static char reason[256];

static void release(void *ctx, size_t offset, size_t len)
{
	const struct luo_heap_geom *g = ctx;

	REQUIRE(len > 0 && len % LUO_HEAP_CHUNK == 0 && offset >= g->data_offset && offset <= region_size &&
		len <= region_size - offset && (offset - g->data_offset) % LUO_HEAP_CHUNK == 0);
	memset(region + offset, 0, len); /* what punching a hole does */
}

/* A size from 16 bits: mostly small (every class), sometimes a run. */
static size_t size_of(uint16_t v)
{
	if (v & 0x8000)
		return 1 + (size_t)(v & 0x7fff) * 8; /* up to 256 KiB: runs of up to 4 chunks */
	return 1 + (v & 0x7fff);                    /* up to 32 KiB: every class */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct live live[LIVE_MAX] = { { 0 } };
	struct luo_heap_geom g;
	struct cursor ops = { 0 };
	const uint8_t *overlay;
	size_t n_ops, overlay_len, next_live = 0;
	bool poked = false;   /* a write behind the heap's back since the last check */
	bool aliased = false; /* that, or a free of a pointer not ours */
	int r;

	if (!region) {
		region_size = (size_t)luo_heap_region_size((uint64_t)HEAP_CHUNKS * LUO_HEAP_CHUNK);
		region = aligned_alloc(LUO_HEAP_PAGE, region_size);
		if (!region)
			abort();
	}
	memset(region, 0, region_size);
	r = luo_heap_format(region, region_size, &g, reason, sizeof(reason));
	REQUIRE(r == 0);
	if (size < 2)
		return 0;
	n_ops = data[0] | (size_t)data[1] << 8;
	if (n_ops > size - 2)
		n_ops = size - 2;
	ops = (struct cursor){ .in = data + 2, .len = n_ops };
	overlay = data + 2 + n_ops;
	overlay_len = size - 2 - n_ops;

	while (ops.pos < ops.len) {
		uint8_t op = (uint8_t)take(&ops, 1);

		switch (op) {
		case 'a': {
			size_t n = size_of((uint16_t)take(&ops, 2));
			uint8_t *p = luo_heap_alloc(&g, n);

			if (!p)
				break;
			REQUIRE(p >= region + g.data_offset && (size_t)(p - region) <= region_size &&
				n <= region_size - (size_t)(p - region));
			REQUIRE((uintptr_t)p % LUO_HEAP_ALIGN == 0);
			if (!aliased)
				for (size_t i = 0; i < LIVE_MAX; i++)
					REQUIRE(!live[i].p || p + n <= live[i].p || live[i].p + live[i].n <= p);
			p[0] = 0xa5;
			p[n - 1] = 0x5a;
			if (live[next_live].p)
				luo_heap_free(&g, live[next_live].p, release, &g);
			live[next_live] = (struct live){ p, n };
			next_live = (next_live + 1) % LIVE_MAX;
			break;
		}
		case 'f': {
			struct live *l = &live[take(&ops, 1) % LIVE_MAX];

			if (l->p)
				luo_heap_free(&g, l->p, release, &g);
			*l = (struct live){ 0 };
			break;
		}
		case 'b':
			luo_heap_free(&g, region + (take(&ops, 2) * 16) % region_size, release, &g);
			aliased = true;
			break;
		case 'p': {
			size_t off = (take(&ops, 2) * 8) % (region_size - 7);
			uint64_t v = take(&ops, 8);

			memcpy(region + off, &v, sizeof(v));
			poked = aliased = true;
			break;
		}
		case 'k':
			r = luo_heap_check(region, region_size, &g, reason, sizeof(reason));
			REQUIRE(r == 0 || poked);
			if (r < 0)
				return 0;
			poked = false;
			break;
		case 'c':
			memcpy(region, overlay, overlay_len < g.data_offset ? overlay_len : g.data_offset);
			r = luo_heap_check(region, region_size, &g, reason, sizeof(reason));
			REQUIRE(r == 0 || r == -EBADMSG);
			if (r < 0)
				return 0;
			/* Blocks of the image before are the old image's now: forget them. */
			memset(live, 0, sizeof(live));
			poked = aliased = false;
			break;
		case 's': {
			struct luo_heap_stats st;

			(void)luo_heap_stats(&g, &st);
			break;
		}
		case 'r':
			(void)luo_heap_set_root(&g, live[take(&ops, 1) % LIVE_MAX].p);
			(void)luo_heap_root(&g);
			break;
		default:
			break;
		}
	}
	return 0;
}
