/* SPDX-License-Identifier: MIT */
/*
 * The in-region heap: see heap.h for the layout, the algorithm and the
 * contract. Self-contained on purpose (no libluo internals): the arena
 * links it, and tests and fuzzers build it alone.
 *
 * Trust: luo_heap_check() validates everything it can in O(nchunks); after
 * that the header and the map are maintained by this file only. The other
 * entry points trust the header's geometry (sizes and offsets; heap_get()
 * re-checks magic, version and chunk count) but still range-check every
 * chunk index, count and slot offset they read from the map or the data
 * before using it, so a stray write there makes them refuse, quarantine or
 * leak, never step outside the region or loop without bound.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "heap.h"

/* 16-byte steps; 25% steps; 64 KiB / 7, 6, 5, 4, 3, 2. */
#define HEAP_CLASS_TABLE(X)                                                                                     \
	X(16) X(32) X(48) X(64) X(80) X(96) X(112) X(128)                                                       \
	X(160) X(192) X(224) X(256) X(320) X(384) X(448) X(512) X(640) X(768) X(896) X(1024)                   \
	X(1280) X(1536) X(1792) X(2048) X(2560) X(3072) X(3584) X(4096) X(5120) X(6144) X(7168) X(8192)        \
	X(9360) X(10912) X(13104) X(16384) X(21840) X(32768)

#define HEAP_CLASS_SIZE(s) s,
#define HEAP_CLASS_SLOTS(s) LUO_HEAP_CHUNK / (s),
/*
 * ceil(2^32 / size): for an offset in a chunk (< 2^16) and a size < 2^16,
 * (off * recip) >> 32 == off / size exactly (the error, under
 * 2^16 / 2^32, stays below 1 / size), and slot arithmetic needs no divide.
 */
#define HEAP_CLASS_RECIP(s) (uint32_t)((UINT64_C(1) << 32) / (s) + 1),

static const uint32_t heap_class_size[LUO_HEAP_CLASSES] = { HEAP_CLASS_TABLE(HEAP_CLASS_SIZE) };
static const uint16_t heap_class_slots[LUO_HEAP_CLASSES] = { HEAP_CLASS_TABLE(HEAP_CLASS_SLOTS) };
static const uint32_t heap_class_recip[LUO_HEAP_CLASSES] = { HEAP_CLASS_TABLE(HEAP_CLASS_RECIP) };

_Static_assert(LUO_HEAP_CHUNK == 1u << 16, "slot offsets are 16 bits, and slot_index() is exact below 2^16");
_Static_assert(LUO_HEAP_SMALL_MAX == 32768, "the last class is the small maximum");
_Static_assert(LUO_HEAP_KIND_SLAB + LUO_HEAP_CLASSES <= 256, "kinds are 8 bits");
_Static_assert(LUO_HEAP_SLOTS_MAX < LUO_HEAP_NO_SLOT, "counts fit in 16 bits");
_Static_assert(LUO_HEAP_CHUNKS_MAX < LUO_HEAP_NO_CHUNK, "NO_CHUNK is no index");

/* The map starts here: the header rounded up to a cache line. */
#define HEAP_MAP_OFFSET ((sizeof(struct luo_heap) + 63) & ~(uint64_t)63)

struct heap_layout {
	uint64_t map_offset;
	uint64_t bitmap_offset;
	uint64_t data_offset;
	uint32_t nchunks;
};

__attribute__((format(printf, 4, 5))) static int heap_fail(int err, char *reason, size_t reason_len,
							   const char *fmt, ...)
{
	va_list ap;

	if (reason && reason_len > 0) {
		va_start(ap, fmt);
		vsnprintf(reason, reason_len, fmt, ap);
		va_end(ap);
	}
	return err;
}

static uint64_t bitmap_bytes(uint64_t nchunks)
{
	return (nchunks + 63) / 64 * 8;
}

/*
 * The layout is a function of the size alone: the fewest metadata chunks
 * that hold the header, map and bitmap of the chunks that remain.
 */
static int heap_layout(uint64_t size, struct heap_layout *ret, char *reason, size_t reason_len)
{
	uint64_t total, meta_chunks, n = 0;

	if (size % LUO_HEAP_CHUNK != 0)
		return heap_fail(-EINVAL, reason, reason_len, "region size %" PRIu64 " is not a multiple of %u",
				 size, LUO_HEAP_CHUNK);
	if (size < LUO_HEAP_SIZE_MIN || size > LUO_HEAP_SIZE_MAX)
		return heap_fail(-EINVAL, reason, reason_len, "region size %" PRIu64 " not in [%zu, %" PRIu64 "]",
				 size, LUO_HEAP_SIZE_MIN, LUO_HEAP_SIZE_MAX);
	total = size / LUO_HEAP_CHUNK;
	for (meta_chunks = 1; meta_chunks < total; meta_chunks++) {
		n = total - meta_chunks;
		if (HEAP_MAP_OFFSET + n * sizeof(struct luo_heap_chunk) + bitmap_bytes(n) <=
		    meta_chunks * LUO_HEAP_CHUNK)
			break;
	}
	if (meta_chunks >= total || n < LUO_HEAP_DATA_CHUNKS_MIN || n > LUO_HEAP_CHUNKS_MAX)
		return heap_fail(-EINVAL, reason, reason_len, "region size %" PRIu64 " leaves no room for data", size);
	ret->map_offset = HEAP_MAP_OFFSET;
	ret->bitmap_offset = HEAP_MAP_OFFSET + n * sizeof(struct luo_heap_chunk);
	ret->data_offset = meta_chunks * LUO_HEAP_CHUNK;
	ret->nchunks = (uint32_t)n;
	return 0;
}

/* Accessors. @h is trusted to be a checked heap (heap_get()). */

static struct luo_heap_chunk *heap_map(struct luo_heap *h)
{
	return (struct luo_heap_chunk *)((char *)h + h->map_offset);
}

static uint64_t *heap_bitmap(struct luo_heap *h)
{
	return (uint64_t *)((char *)h + h->bitmap_offset);
}

static char *chunk_data(struct luo_heap *h, uint32_t i)
{
	return (char *)h + h->data_offset + (uint64_t)i * LUO_HEAP_CHUNK;
}

static uint32_t slab_slots(uint32_t cls)
{
	return heap_class_slots[cls];
}

/* @off / the class size, @off < LUO_HEAP_CHUNK. */
static uint32_t slot_index(uint32_t off, uint32_t cls)
{
	return (uint32_t)(((uint64_t)off * heap_class_recip[cls]) >> 32);
}

/* Is @off (< LUO_HEAP_CHUNK) the start of one of the first @bump slots? */
static bool slot_used(uint32_t off, uint32_t cls, uint32_t bump)
{
	uint32_t idx = slot_index(off, cls);

	return idx < bump && idx * heap_class_size[cls] == off;
}

static bool bit_test(const uint64_t *bm, uint32_t i)
{
	return (bm[i / 64] >> (i % 64)) & 1;
}

static void bits_set(uint64_t *bm, uint32_t i, uint32_t n)
{
	for (uint32_t j = i; j < i + n; j++)
		bm[j / 64] |= UINT64_C(1) << (j % 64);
}

static void bits_clear(uint64_t *bm, uint32_t i, uint32_t n)
{
	for (uint32_t j = i; j < i + n; j++)
		bm[j / 64] &= ~(UINT64_C(1) << (j % 64));
}

/* First index in [from, to) whose bit is @want, or @to. Word at a time. */
static uint32_t bits_find(const uint64_t *bm, uint32_t from, uint32_t to, bool want)
{
	uint64_t w;
	uint32_t i;

	if (from >= to)
		return to;
	i = from / 64;
	w = (want ? bm[i] : ~bm[i]) & (~UINT64_C(0) << (from % 64));
	for (;;) {
		if (w) {
			uint64_t r = (uint64_t)i * 64 + (uint64_t)__builtin_ctzll(w);
			return r < to ? (uint32_t)r : to;
		}
		i++;
		if ((uint64_t)i * 64 >= to)
			return to;
		w = want ? bm[i] : ~bm[i];
	}
}

/* The header at @base if it looks like a heap: the cheap guard of every call. */
static struct luo_heap *heap_get(void *base)
{
	struct luo_heap *h = base;

	if (!h || (uintptr_t)h % LUO_HEAP_ALIGN != 0)
		return NULL;
	if (h->magic != LUO_HEAP_MAGIC || h->version != LUO_HEAP_VERSION || h->header_size != sizeof(*h))
		return NULL;
	if (h->nchunks < LUO_HEAP_DATA_CHUNKS_MIN || h->nchunks > LUO_HEAP_CHUNKS_MAX)
		return NULL;
	return h;
}

int luo_heap_format(void *base, size_t size, char *reason, size_t reason_len)
{
	struct luo_heap *h = base;
	struct heap_layout l;
	int r;

	if (!base || (uintptr_t)base % LUO_HEAP_ALIGN != 0)
		return heap_fail(-EINVAL, reason, reason_len, "region base %p is not %u-byte aligned", base,
				 LUO_HEAP_ALIGN);
	r = heap_layout(size, &l, reason, reason_len);
	if (r < 0)
		return r;

	/* Metadata only: data chunks are never read before being handed out. */
	memset(base, 0, l.data_offset);
	h->magic = LUO_HEAP_MAGIC;
	h->version = LUO_HEAP_VERSION;
	h->header_size = sizeof(*h);
	h->size = size;
	h->map_offset = l.map_offset;
	h->bitmap_offset = l.bitmap_offset;
	h->data_offset = l.data_offset;
	h->chunk_size = LUO_HEAP_CHUNK;
	h->nchunks = l.nchunks;
	h->nclasses = LUO_HEAP_CLASSES;
	h->epoch = 1;
	h->chunks_free = l.nchunks;
	for (uint32_t k = 0; k < LUO_HEAP_CLASSES; k++) {
		h->class_size[k] = heap_class_size[k];
		h->class_head[k] = LUO_HEAP_NO_CHUNK;
	}
	/* The map is all LUO_HEAP_KIND_FREE (0); mark every chunk free. */
	bits_set(heap_bitmap(h), 0, l.nchunks);
	return 0;
}

/*
 * What is wrong with a slab entry of class @cls, or NULL. Listed slots are
 * below the high-water mark: nfree - (slots - bump) of them, which is at
 * most bump since nfree <= slots.
 */
static const char *slab_entry_problem(const struct luo_heap_chunk *e, uint32_t cls)
{
	uint32_t slots = slab_slots(cls), listed;

	if (e->bump > slots)
		return "high-water mark past the last slot";
	if (e->nfree > slots)
		return "more free slots than slots";
	if (e->nfree < slots - e->bump)
		return "fewer free slots than never-used ones";
	listed = e->nfree - (slots - e->bump);
	if (listed == 0)
		return e->head == LUO_HEAP_NO_SLOT ? NULL : "free list head without listed slots";
	if (e->head == LUO_HEAP_NO_SLOT)
		return "listed slots without a free list head";
	if (!slot_used(e->head, cls, e->bump))
		return "free list head not a used slot";
	return NULL;
}

static uint32_t slab_listed(const struct luo_heap_chunk *e, uint32_t cls)
{
	return e->nfree - (slab_slots(cls) - e->bump);
}

static uint64_t slot_word(struct luo_heap *h, uint32_t i, uint32_t off)
{
	uint64_t w;

	memcpy(&w, chunk_data(h, i) + off, sizeof(w));
	return w;
}

static void slot_set_word(struct luo_heap *h, uint32_t i, uint32_t off, uint64_t w)
{
	memcpy(chunk_data(h, i) + off, &w, sizeof(w));
}

/* The next offset a free slot's word links to, or -1 if the word is no free slot's. */
static int32_t free_link(uint64_t w, const struct luo_heap_chunk *e, uint32_t cls)
{
	uint32_t next = (uint32_t)(w & 0xffff);

	if (w >> 16 != LUO_HEAP_FREE_TAG)
		return -1;
	if (next != LUO_HEAP_NO_SLOT && !slot_used(next, cls, e->bump))
		return -1;
	return (int32_t)next;
}

static void class_unlink(struct luo_heap *h, uint32_t cls, uint32_t i)
{
	struct luo_heap_chunk *map = heap_map(h), *e = &map[i];

	if (e->prev == LUO_HEAP_NO_CHUNK) {
		if (h->class_head[cls] == i)
			h->class_head[cls] = e->next;
	} else if (e->prev < h->nchunks) {
		map[e->prev].next = e->next;
	}
	if (e->next < h->nchunks)
		map[e->next].prev = e->prev;
	e->next = e->prev = LUO_HEAP_NO_CHUNK;
}

static void class_push(struct luo_heap *h, uint32_t cls, uint32_t i)
{
	struct luo_heap_chunk *map = heap_map(h), *e = &map[i];
	uint32_t head = h->class_head[cls];

	e->prev = LUO_HEAP_NO_CHUNK;
	e->next = head < h->nchunks ? head : LUO_HEAP_NO_CHUNK;
	if (head < h->nchunks)
		map[head].prev = i;
	h->class_head[cls] = i;
}

/* Never used again: its live objects cannot be known, so its chunk leaks. */
static void slab_quarantine(struct luo_heap *h, uint32_t i)
{
	struct luo_heap_chunk *e = &heap_map(h)[i];
	uint32_t cls = e->kind - LUO_HEAP_KIND_SLAB;
	uint64_t used = 0;

	if (e->nfree > 0)
		class_unlink(h, cls, i);
	if (e->nfree <= slab_slots(cls))
		used = (uint64_t)(slab_slots(cls) - e->nfree) * heap_class_size[cls];
	h->bytes_in_use -= used <= h->bytes_in_use ? used : h->bytes_in_use;
	memset(e, 0, sizeof(*e));
	e->kind = LUO_HEAP_KIND_QUARANTINED;
	e->next = e->prev = LUO_HEAP_NO_CHUNK;
	h->quarantined++;
}

/*
 * The lazy half of luo_heap_check(): walk slab @i's free list once per
 * epoch, one step per listed slot, and quarantine it if the list is not
 * exactly what its map entry says. True if the slab may be used.
 */
static bool slab_validate_list(struct luo_heap *h, uint32_t i)
{
	struct luo_heap_chunk *e = &heap_map(h)[i];
	uint32_t cls = e->kind - LUO_HEAP_KIND_SLAB, listed, off;

	if (slab_entry_problem(e, cls))
		goto bad;
	listed = slab_listed(e, cls);
	off = e->head;
	for (uint32_t k = 0; k < listed; k++) {
		int32_t next;

		/* In range and aligned: the head by slab_entry_problem(), the rest by free_link(). */
		if (off == LUO_HEAP_NO_SLOT)
			goto bad; /* ends early */
		next = free_link(slot_word(h, i, off), e, cls);
		if (next < 0)
			goto bad;
		off = (uint32_t)next;
	}
	if (off != LUO_HEAP_NO_SLOT)
		goto bad; /* longer than its count, or a cycle */
	e->epoch = (uint8_t)h->epoch;
	return true;
bad:
	slab_quarantine(h, i);
	return false;
}

static inline bool slab_validate(struct luo_heap *h, uint32_t i)
{
	return heap_map(h)[i].epoch == (uint8_t)h->epoch || slab_validate_list(h, i);
}

/*
 * Is the slot at @slot on slab @i's (validated) list? 1 yes, 0 no, -1 the
 * list was damaged since its validation (a write after free).
 */
static int slab_is_listed(struct luo_heap *h, uint32_t i, uint32_t slot)
{
	struct luo_heap_chunk *e = &heap_map(h)[i];
	uint32_t cls = e->kind - LUO_HEAP_KIND_SLAB, listed, off = e->head;

	if (slab_entry_problem(e, cls))
		return -1;
	listed = slab_listed(e, cls);
	for (uint32_t k = 0; k < listed && off != LUO_HEAP_NO_SLOT; k++) {
		int32_t next;

		if (off == slot)
			return 1;
		next = free_link(slot_word(h, i, off), e, cls);
		if (next < 0)
			return -1;
		off = (uint32_t)next;
	}
	return 0;
}

static void chunks_put(struct luo_heap *h, uint32_t i, uint32_t n, luo_heap_release_fn release, void *ctx);

/*
 * Give the emptied slabs kept for their class (see heap.h, Fragmentation)
 * back to the free chunks: the way out when no chunk run fits. Walks the
 * class lists, O(slabs with free slots), bounded in case one was damaged
 * after the check. Not released: the chunks are about to be reused.
 */
static uint32_t heap_reclaim_empty(struct luo_heap *h)
{
	struct luo_heap_chunk *map = heap_map(h);
	uint32_t reclaimed = 0;

	for (uint32_t k = 0; k < LUO_HEAP_CLASSES; k++) {
		uint32_t i = h->class_head[k];

		for (uint32_t steps = 0; i < h->nchunks && steps < h->nchunks; steps++) {
			uint32_t next = map[i].next;

			if (map[i].kind != LUO_HEAP_KIND_SLAB + k)
				break;
			if (map[i].nfree == slab_slots(k)) {
				class_unlink(h, k, i);
				chunks_put(h, i, 1, NULL, NULL);
				reclaimed++;
			}
			i = next;
		}
	}
	return reclaimed;
}

/* @n contiguous free chunks at or after the hint, first fit; LUO_HEAP_NO_CHUNK if none. */
static uint32_t chunks_find(struct luo_heap *h, uint32_t n)
{
	uint64_t *bm = heap_bitmap(h);
	uint32_t nchunks = h->nchunks, i, end;

	if (h->chunks_free < n)
		return LUO_HEAP_NO_CHUNK;
	i = bits_find(bm, h->hint < nchunks ? h->hint : nchunks, nchunks, true);
	h->hint = i; /* nothing free in between */
	while (i < nchunks) {
		end = bits_find(bm, i, nchunks, false);
		if (end - i >= n) {
			struct luo_heap_chunk *map = heap_map(h);

			bits_clear(bm, i, n);
			memset(&map[i], 0, (size_t)n * sizeof(*map));
			h->chunks_free -= n;
			if (h->hint == i)
				h->hint = i + n;
			return i;
		}
		i = bits_find(bm, end, nchunks, true);
	}
	return LUO_HEAP_NO_CHUNK;
}

/* Take @n contiguous free chunks; LUO_HEAP_NO_CHUNK if none, even after reclaiming. */
static uint32_t chunks_take(struct luo_heap *h, uint32_t n)
{
	uint32_t i;

	if (n == 0 || n > h->nchunks)
		return LUO_HEAP_NO_CHUNK;
	i = chunks_find(h, n);
	if (i == LUO_HEAP_NO_CHUNK && heap_reclaim_empty(h) > 0)
		i = chunks_find(h, n);
	return i;
}

static void chunks_put(struct luo_heap *h, uint32_t i, uint32_t n, luo_heap_release_fn release, void *ctx)
{
	memset(&heap_map(h)[i], 0, (size_t)n * sizeof(struct luo_heap_chunk));
	bits_set(heap_bitmap(h), i, n);
	h->chunks_free += n;
	if (i < h->hint)
		h->hint = i;
	if (release)
		release(ctx, h->data_offset + (uint64_t)i * LUO_HEAP_CHUNK, (size_t)n * LUO_HEAP_CHUNK);
}

/*
 * The smallest class that holds @n (1 <= n <= LUO_HEAP_SMALL_MAX), by the
 * table's shape: 16-byte steps to 128; then four classes per doubling, so
 * for 2^k < n <= 2^(k+1) the class is 2^k + j * 2^(k-2), j = 1..4; then the
 * six chunk divisors.
 */
static uint32_t size_class(size_t n)
{
	uint32_t k, cls;

	if (n <= 128)
		return (uint32_t)((n + 15) / 16) - 1;
	if (n <= 8192) {
		k = 63 - (uint32_t)__builtin_clzll((unsigned long long)n - 1);
		return 8 + (k - 7) * 4 + (uint32_t)((n - 1) >> (k - 2)) - 4;
	}
	for (cls = 32; heap_class_size[cls] < n; cls++)
		;
	return cls;
}

/*
 * A slot of slab @i (validated this epoch), or -1 if the slab turns out
 * damaged since (the caller quarantines it).
 */
static int32_t slab_take(struct luo_heap *h, uint32_t i)
{
	struct luo_heap_chunk *e = &heap_map(h)[i];
	uint32_t cls = e->kind - LUO_HEAP_KIND_SLAB, size = heap_class_size[cls], off;

	if (e->nfree == 0 || e->nfree > slab_slots(cls) || e->bump > slab_slots(cls) ||
	    e->nfree < slab_slots(cls) - e->bump)
		return -1;
	if (e->head != LUO_HEAP_NO_SLOT) {
		int32_t next;
		bool last = slab_listed(e, cls) == 1;

		if (!slot_used(e->head, cls, e->bump))
			return -1;
		next = free_link(slot_word(h, i, e->head), e, cls);
		/* A write after free that broke the link, or the count. */
		if (next < 0 || last != (next == LUO_HEAP_NO_SLOT))
			return -1;
		off = e->head;
		e->head = (uint16_t)next;
		slot_set_word(h, i, off, 0); /* so that freeing it finds no tag */
	} else {
		if (e->nfree != slab_slots(cls) - e->bump)
			return -1; /* listed slots, yet no list */
		off = (uint32_t)e->bump * size;
		e->bump++;
	}
	e->nfree--;
	return (int32_t)off;
}

static void *heap_alloc_small(struct luo_heap *h, uint32_t cls)
{
	struct luo_heap_chunk *map = heap_map(h);

	/* Each round hands out a slot or quarantines a slab: bounded by the map. */
	for (uint64_t round = 0; round < (uint64_t)h->nchunks + 2; round++) {
		uint32_t i = h->class_head[cls];
		int32_t off;

		if (i == LUO_HEAP_NO_CHUNK) {
			i = chunks_take(h, 1);
			if (i == LUO_HEAP_NO_CHUNK)
				break;
			map[i].kind = (uint8_t)(LUO_HEAP_KIND_SLAB + cls);
			map[i].epoch = (uint8_t)h->epoch;
			map[i].nfree = (uint16_t)slab_slots(cls);
			map[i].head = LUO_HEAP_NO_SLOT;
			map[i].bump = 0;
			class_push(h, cls, i);
		} else if (i >= h->nchunks || map[i].kind != LUO_HEAP_KIND_SLAB + cls || map[i].nfree == 0) {
			/* The list was damaged after the check: drop it, its slabs leak. */
			h->class_head[cls] = LUO_HEAP_NO_CHUNK;
			continue;
		}
		if (!slab_validate(h, i))
			continue;
		off = slab_take(h, i);
		if (off < 0) {
			slab_quarantine(h, i);
			continue;
		}
		if (map[i].nfree == 0)
			class_unlink(h, cls, i);
		h->bytes_in_use += heap_class_size[cls];
		return chunk_data(h, i) + off;
	}
	errno = ENOMEM;
	return NULL;
}

void *luo_heap_alloc(void *base, size_t n)
{
	struct luo_heap *h = heap_get(base);
	struct luo_heap_chunk *map;
	uint64_t len;
	uint32_t i;

	if (!h || n == 0) {
		errno = EINVAL;
		return NULL;
	}
	if (n <= LUO_HEAP_SMALL_MAX)
		return heap_alloc_small(h, size_class(n));

	len = n / LUO_HEAP_CHUNK + (n % LUO_HEAP_CHUNK != 0);
	i = len <= h->nchunks ? chunks_take(h, (uint32_t)len) : LUO_HEAP_NO_CHUNK;
	if (i == LUO_HEAP_NO_CHUNK) {
		errno = ENOMEM;
		return NULL;
	}
	map = heap_map(h);
	map[i].kind = LUO_HEAP_KIND_RUN;
	map[i].next = (uint32_t)len;
	for (uint32_t j = 1; j < len; j++) {
		map[i + j].kind = LUO_HEAP_KIND_TAIL;
		map[i + j].prev = i;
	}
	h->bytes_in_use += len * LUO_HEAP_CHUNK;
	return chunk_data(h, i);
}

static bool heap_free_run(struct luo_heap *h, uint32_t i, luo_heap_release_fn release, void *ctx)
{
	struct luo_heap_chunk *map = heap_map(h);
	uint32_t len = map[i].next;

	if (len == 0 || len > h->nchunks - i)
		return false;
	for (uint32_t j = 1; j < len; j++)
		if (map[i + j].kind != LUO_HEAP_KIND_TAIL || map[i + j].prev != i)
			return false;
	h->bytes_in_use -= (uint64_t)len * LUO_HEAP_CHUNK <= h->bytes_in_use ? (uint64_t)len * LUO_HEAP_CHUNK
									     : h->bytes_in_use;
	chunks_put(h, i, len, release, ctx);
	return true;
}

static bool heap_free_slot(struct luo_heap *h, uint32_t i, uint32_t off, luo_heap_release_fn release, void *ctx)
{
	struct luo_heap_chunk *e = &heap_map(h)[i];
	uint32_t cls = e->kind - LUO_HEAP_KIND_SLAB, size = heap_class_size[cls];

	if (!slab_validate(h, i))
		return false;
	if (!slot_used(off, cls, e->bump))
		return false; /* not a slot start, or never handed out */
	if (slot_word(h, i, off) >> 16 == LUO_HEAP_FREE_TAG) {
		/* Tagged: a double free, or user data that looks like the tag. */
		int listed = slab_is_listed(h, i, off);

		if (listed < 0)
			slab_quarantine(h, i);
		if (listed != 0)
			return false;
	}
	if (e->nfree >= slab_slots(cls))
		return false; /* cannot be: all free, yet this slot was not listed */
	slot_set_word(h, i, off, LUO_HEAP_FREE_TAG << 16 | e->head);
	e->head = (uint16_t)off;
	e->nfree++;
	h->bytes_in_use -= size <= h->bytes_in_use ? size : h->bytes_in_use;
	if (e->nfree == 1)
		class_push(h, cls, i);
	if (e->nfree == slab_slots(cls) && !(h->class_head[cls] == i && e->next == LUO_HEAP_NO_CHUNK)) {
		class_unlink(h, cls, i);
		chunks_put(h, i, 1, release, ctx);
	}
	return true;
}

void luo_heap_free(void *base, void *p, luo_heap_release_fn release, void *ctx)
{
	struct luo_heap *h = heap_get(base);
	uint64_t off, rel;
	uint32_t i, in;
	bool ok = false;

	if (!p || !h)
		return;
	if ((uintptr_t)p < (uintptr_t)base)
		goto bad;
	off = (uintptr_t)p - (uintptr_t)base;
	if (off < h->data_offset || off >= h->size)
		goto bad;
	rel = off - h->data_offset;
	i = (uint32_t)(rel / LUO_HEAP_CHUNK);
	in = (uint32_t)(rel % LUO_HEAP_CHUNK);
	if (i >= h->nchunks)
		goto bad;

	switch (heap_map(h)[i].kind) {
	case LUO_HEAP_KIND_RUN:
		ok = in == 0 && heap_free_run(h, i, release, ctx);
		break;
	case LUO_HEAP_KIND_FREE:
	case LUO_HEAP_KIND_TAIL:
	case LUO_HEAP_KIND_QUARANTINED:
		break;
	default:
		if (heap_map(h)[i].kind >= LUO_HEAP_KIND_SLAB &&
		    heap_map(h)[i].kind < LUO_HEAP_KIND_SLAB + LUO_HEAP_CLASSES)
			ok = heap_free_slot(h, i, in, release, ctx);
		break;
	}
	if (ok)
		return;
bad:
	h->bad_frees++;
}

int luo_heap_set_root(void *base, void *p)
{
	struct luo_heap *h = heap_get(base);
	uint64_t off;

	if (!h)
		return -EINVAL;
	if (!p) {
		h->root = 0;
		return 0;
	}
	if ((uintptr_t)p < (uintptr_t)base)
		return -EINVAL;
	off = (uintptr_t)p - (uintptr_t)base;
	if (off < h->data_offset || off >= h->size)
		return -EINVAL;
	h->root = off;
	return 0;
}

void *luo_heap_root(void *base)
{
	struct luo_heap *h = heap_get(base);

	if (!h || h->root < h->data_offset || h->root >= h->size)
		return NULL;
	return (char *)base + h->root;
}

int luo_heap_stats(void *base, struct luo_heap_stats *ret_stats)
{
	struct luo_heap *h = heap_get(base);

	if (!h || !ret_stats)
		return -EINVAL;
	*ret_stats = (struct luo_heap_stats){
		.bytes_in_use = h->bytes_in_use,
		.chunks_in_use = h->nchunks - (h->chunks_free <= h->nchunks ? h->chunks_free : h->nchunks),
		.chunks_free = h->chunks_free,
		.metadata_bytes = h->data_offset,
		.bad_frees = h->bad_frees,
		.quarantined = h->quarantined,
	};
	return 0;
}

/* The map, in one pass: kinds, runs, slabs, bitmap, counters. */
static int check_map(struct luo_heap *h, uint32_t in_lists[LUO_HEAP_CLASSES], bool *ret_collision, char *reason,
		     size_t reason_len)
{
	const struct luo_heap_chunk *map = heap_map(h);
	const uint64_t *bm = heap_bitmap(h);
	uint32_t n = h->nchunks, first_free = n;
	uint64_t nfree = 0, quarantined = 0, bytes = 0;
	uint8_t new_epoch = (uint8_t)(h->epoch + 1);
	bool collision = false;

	for (uint32_t i = 0; i < n;) {
		const struct luo_heap_chunk *e = &map[i];
		bool is_free = bit_test(bm, i);

		if (e->kind == LUO_HEAP_KIND_FREE) {
			if (!is_free)
				return heap_fail(-EBADMSG, reason, reason_len,
						 "chunk %u: free in the map, not in the bitmap", i);
			if (first_free == n)
				first_free = i;
			nfree++;
			i++;
			continue;
		}
		if (is_free)
			return heap_fail(-EBADMSG, reason, reason_len, "chunk %u: kind %u, yet free in the bitmap", i,
					 e->kind);
		if (e->kind == LUO_HEAP_KIND_RUN) {
			uint32_t len = e->next;

			if (len == 0 || len > n - i)
				return heap_fail(-EBADMSG, reason, reason_len,
						 "chunk %u: run of %u chunks, %u chunks left", i, len, n - i);
			for (uint32_t j = 1; j < len; j++) {
				if (map[i + j].kind != LUO_HEAP_KIND_TAIL || map[i + j].prev != i)
					return heap_fail(-EBADMSG, reason, reason_len,
							 "chunk %u: not a tail of the run at chunk %u", i + j, i);
				if (bit_test(bm, i + j))
					return heap_fail(-EBADMSG, reason, reason_len,
							 "chunk %u: run tail, yet free in the bitmap", i + j);
			}
			bytes += (uint64_t)len * LUO_HEAP_CHUNK;
			i += len;
			continue;
		}
		if (e->kind == LUO_HEAP_KIND_TAIL)
			return heap_fail(-EBADMSG, reason, reason_len, "chunk %u: run tail without a run", i);
		if (e->kind == LUO_HEAP_KIND_QUARANTINED) {
			quarantined++;
			i++;
			continue;
		}
		if (e->kind >= LUO_HEAP_KIND_SLAB && e->kind < LUO_HEAP_KIND_SLAB + LUO_HEAP_CLASSES) {
			uint32_t cls = e->kind - LUO_HEAP_KIND_SLAB;
			const char *problem = slab_entry_problem(e, cls);

			if (problem)
				return heap_fail(-EBADMSG, reason, reason_len, "chunk %u: slab of %u bytes: %s", i,
						 heap_class_size[cls], problem);
			if (e->nfree > 0) {
				if ((e->next != LUO_HEAP_NO_CHUNK && e->next >= n) ||
				    (e->prev != LUO_HEAP_NO_CHUNK && e->prev >= n))
					return heap_fail(-EBADMSG, reason, reason_len,
							 "chunk %u: slab list link out of range", i);
				in_lists[cls]++;
			}
			bytes += (uint64_t)(slab_slots(cls) - e->nfree) * heap_class_size[cls];
			if (e->epoch == new_epoch)
				collision = true;
			i++;
			continue;
		}
		return heap_fail(-EBADMSG, reason, reason_len, "chunk %u: unknown kind %u", i, e->kind);
	}
	if (n % 64 != 0 && bm[n / 64] >> (n % 64) != 0)
		return heap_fail(-EBADMSG, reason, reason_len, "bitmap: bits set past the last chunk");
	if (first_free < h->hint)
		return heap_fail(-EBADMSG, reason, reason_len, "hint %u is past free chunk %u", h->hint, first_free);
	if (nfree != h->chunks_free)
		return heap_fail(-EBADMSG, reason, reason_len, "%" PRIu64 " free chunks, header says %" PRIu64, nfree,
				 h->chunks_free);
	if (quarantined != h->quarantined)
		return heap_fail(-EBADMSG, reason, reason_len, "%" PRIu64 " quarantined chunks, header says %" PRIu64,
				 quarantined, h->quarantined);
	if (bytes != h->bytes_in_use)
		return heap_fail(-EBADMSG, reason, reason_len, "%" PRIu64 " bytes in use, header says %" PRIu64, bytes,
				 h->bytes_in_use);
	*ret_collision = collision;
	return 0;
}

/*
 * Class @cls's list: @count steps from the head, each to a slab of the
 * class with free slots whose prev is the step before, then the end. With
 * the count equal to the number of such slabs, that is each of them exactly
 * once: a repeat would need one node with two different prevs, or the head
 * (prev none) reached again.
 */
static int check_class_list(struct luo_heap *h, uint32_t cls, uint32_t count, char *reason, size_t reason_len)
{
	const struct luo_heap_chunk *map = heap_map(h);
	uint32_t prev = LUO_HEAP_NO_CHUNK, i = h->class_head[cls];

	for (uint32_t k = 0; k < count; k++) {
		if (i == LUO_HEAP_NO_CHUNK)
			return heap_fail(-EBADMSG, reason, reason_len,
					 "class %u: list ends after %u of %u slabs with free slots", cls, k, count);
		if (i >= h->nchunks || map[i].kind != LUO_HEAP_KIND_SLAB + cls || map[i].nfree == 0)
			return heap_fail(-EBADMSG, reason, reason_len,
					 "class %u: list reaches chunk %u, not a slab of the class with free slots",
					 cls, i);
		if (map[i].prev != prev)
			return heap_fail(-EBADMSG, reason, reason_len, "class %u: chunk %u: back link %u, expected %u",
					 cls, i, map[i].prev, prev);
		prev = i;
		i = map[i].next;
	}
	if (i != LUO_HEAP_NO_CHUNK)
		return heap_fail(-EBADMSG, reason, reason_len,
				 "class %u: list longer than its %u slabs with free slots", cls, count);
	return 0;
}

int luo_heap_check(void *base, size_t size, char *reason, size_t reason_len)
{
	struct luo_heap *h = base;
	uint32_t in_lists[LUO_HEAP_CLASSES] = { 0 };
	struct heap_layout l;
	bool collision = false;
	uint8_t new_epoch;
	int r;

	if (!base || (uintptr_t)base % LUO_HEAP_ALIGN != 0)
		return heap_fail(-EINVAL, reason, reason_len, "region base %p is not %u-byte aligned", base,
				 LUO_HEAP_ALIGN);
	if (size < sizeof(*h))
		return heap_fail(-EINVAL, reason, reason_len, "region of %zu bytes holds no header", size);

	if (h->magic != LUO_HEAP_MAGIC)
		return heap_fail(-EBADMSG, reason, reason_len, "heap header: bad magic %#" PRIx64, h->magic);
	if (h->version != LUO_HEAP_VERSION)
		return heap_fail(-EBADMSG, reason, reason_len, "heap header: version %u, this build reads %u",
				 h->version, LUO_HEAP_VERSION);
	if (h->header_size != sizeof(*h))
		return heap_fail(-EBADMSG, reason, reason_len, "heap header: %u bytes, expected %zu", h->header_size,
				 sizeof(*h));
	if (h->size != size)
		return heap_fail(-EBADMSG, reason, reason_len, "heap header: region of %" PRIu64 " bytes, mapped %zu",
				 h->size, size);
	if (heap_layout(size, &l, reason, reason_len) < 0)
		return -EBADMSG;
	if (h->chunk_size != LUO_HEAP_CHUNK)
		return heap_fail(-EBADMSG, reason, reason_len, "heap header: chunks of %u bytes, expected %u",
				 h->chunk_size, LUO_HEAP_CHUNK);
	if (h->nchunks != l.nchunks || h->map_offset != l.map_offset || h->bitmap_offset != l.bitmap_offset ||
	    h->data_offset != l.data_offset)
		return heap_fail(-EBADMSG, reason, reason_len,
				 "heap header: layout (%u chunks, map %" PRIu64 ", bitmap %" PRIu64 ", data %" PRIu64
				 ") is not the one of %zu bytes",
				 h->nchunks, h->map_offset, h->bitmap_offset, h->data_offset, size);
	if (h->nclasses != LUO_HEAP_CLASSES)
		return heap_fail(-EBADMSG, reason, reason_len, "heap header: %u size classes, this build has %u",
				 h->nclasses, LUO_HEAP_CLASSES);
	for (uint32_t k = 0; k < LUO_HEAP_CLASSES; k++) {
		if (h->class_size[k] != heap_class_size[k])
			return heap_fail(-EBADMSG, reason, reason_len,
					 "heap header: class %u is %u bytes, this build's is %u", k, h->class_size[k],
					 heap_class_size[k]);
		if (h->class_head[k] != LUO_HEAP_NO_CHUNK && h->class_head[k] >= h->nchunks)
			return heap_fail(-EBADMSG, reason, reason_len,
					 "heap header: class %u list head %u out of range", k, h->class_head[k]);
	}
	if (h->root != 0 && (h->root < h->data_offset || h->root >= h->size))
		return heap_fail(-EBADMSG, reason, reason_len, "heap header: root %#" PRIx64 " outside the data",
				 h->root);
	if (h->hint > h->nchunks)
		return heap_fail(-EBADMSG, reason, reason_len, "heap header: hint %u past %u chunks", h->hint,
				 h->nchunks);
	if (h->reserved != 0)
		return heap_fail(-EBADMSG, reason, reason_len, "heap header: reserved field is %#x", h->reserved);

	r = check_map(h, in_lists, &collision, reason, reason_len);
	if (r < 0)
		return r;
	for (uint32_t k = 0; k < LUO_HEAP_CLASSES; k++) {
		r = check_class_list(h, k, in_lists[k], reason, reason_len);
		if (r < 0)
			return r;
	}

	/* Accepted: a new epoch, which no slab may claim to be checked in yet. */
	h->epoch++;
	new_epoch = (uint8_t)h->epoch;
	if (collision) {
		struct luo_heap_chunk *map = heap_map(h);

		for (uint32_t i = 0; i < h->nchunks; i++)
			if (map[i].kind >= LUO_HEAP_KIND_SLAB && map[i].epoch == new_epoch)
				map[i].epoch = (uint8_t)(new_epoch - 1);
	}
	return 0;
}
