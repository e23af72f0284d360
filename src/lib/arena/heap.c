/* SPDX-License-Identifier: MIT */
/*
 * The in-region heap: see heap.h for the layout, the algorithm and the
 * contract. Self-contained on purpose (no libluo internals): the arena
 * links it, and tests and fuzzers build it alone.
 *
 * Trust. The geometry (size, map, bitmap and data offsets, chunk count) is
 * computed from the size the caller mapped, by luo_heap_format() or
 * luo_heap_check(), and kept in the caller's struct luo_heap_geom; no
 * offset, bound or count of the geometry is ever read back from the
 * region, which stays writable by others after the check (a child the old
 * image forked, a stray write). luo_heap_check() validates everything else
 * it can in O(nchunks); after that the header and the map are maintained
 * by this file, but every value the entry points read from the region
 * (class list heads, map entries, free counts, slot links, the hint, the
 * root, counters) is read once (LOAD: the value checked is the value used,
 * whatever is written meanwhile), range-checked against the geometry at
 * the point of use, and only then acted on, so a write there, even during
 * a call, makes them refuse, quarantine or leak, never step outside the
 * region or loop without bound.
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
_Static_assert(HEAP_MAP_OFFSET % sizeof(struct luo_heap_chunk) == 0, "map entries are aligned: entry_load()");

/*
 * One read of a field of the region: never torn, never repeated by the
 * compiler, so a value checked in a local is the value used.
 */
#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

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

/* Header, map and bitmap of @n data chunks, rounded up to whole pages: data_offset. */
static uint64_t meta_bytes(uint64_t n)
{
	uint64_t b = HEAP_MAP_OFFSET + n * sizeof(struct luo_heap_chunk) + bitmap_bytes(n);

	return (b + LUO_HEAP_PAGE - 1) / LUO_HEAP_PAGE * LUO_HEAP_PAGE;
}

uint64_t luo_heap_region_size(uint64_t data_bytes)
{
	uint64_t n = data_bytes / LUO_HEAP_CHUNK;

	if (data_bytes % LUO_HEAP_CHUNK || n < LUO_HEAP_DATA_CHUNKS_MIN || n > LUO_HEAP_CHUNKS_MAX)
		return 0;
	return meta_bytes(n) + n * LUO_HEAP_CHUNK;
}

/*
 * The geometry is a function of the size alone: as many data chunks as
 * fit after the pages holding their header, map and bitmap. Fills
 * everything but the base.
 */
static int heap_layout(uint64_t size, struct luo_heap_geom *ret, char *reason, size_t reason_len)
{
	uint64_t n;

	if (size % LUO_HEAP_PAGE != 0)
		return heap_fail(-EINVAL, reason, reason_len, "region size %" PRIu64 " is not a multiple of %u",
				 size, LUO_HEAP_PAGE);
	if (size < LUO_HEAP_SIZE_MIN || size > LUO_HEAP_SIZE_MAX)
		return heap_fail(-EINVAL, reason, reason_len, "region size %" PRIu64 " not in [%zu, %" PRIu64 "]",
				 size, LUO_HEAP_SIZE_MIN, LUO_HEAP_SIZE_MAX);
	/* From below (each chunk costs more than LUO_HEAP_CHUNK), then up while one more fits. */
	n = (size - HEAP_MAP_OFFSET - LUO_HEAP_PAGE) / (LUO_HEAP_CHUNK + sizeof(struct luo_heap_chunk) + 1);
	while (meta_bytes(n + 1) + (n + 1) * LUO_HEAP_CHUNK <= size)
		n++;
	if (n < LUO_HEAP_DATA_CHUNKS_MIN || n > LUO_HEAP_CHUNKS_MAX)
		return heap_fail(-EINVAL, reason, reason_len, "region size %" PRIu64 " leaves no room for data", size);
	ret->size = size;
	ret->map_offset = HEAP_MAP_OFFSET;
	ret->bitmap_offset = HEAP_MAP_OFFSET + n * sizeof(struct luo_heap_chunk);
	ret->data_offset = meta_bytes(n);
	ret->nchunks = (uint32_t)n;
	return 0;
}

/*
 * The guard of every call against a geometry that did not come from
 * luo_heap_format(), luo_heap_check() or luo_heap_geometry(): none, or the
 * zeroed one they leave when they refuse. The geometry is the caller's own
 * memory, trusted like any pointer it passes; only those three fill it.
 */
static inline bool geom_ok(const struct luo_heap_geom *g)
{
	return g && g->base && g->nchunks != 0;
}

/* Accessors: offsets and bounds from the geometry only. */

static struct luo_heap *heap_hdr(const struct luo_heap_geom *g)
{
	return g->base;
}

static struct luo_heap_chunk *heap_map(const struct luo_heap_geom *g)
{
	return (struct luo_heap_chunk *)((char *)g->base + g->map_offset);
}

static uint64_t *heap_bitmap(const struct luo_heap_geom *g)
{
	return (uint64_t *)((char *)g->base + g->bitmap_offset);
}

/* @i < g->nchunks. */
static char *chunk_data(const struct luo_heap_geom *g, uint32_t i)
{
	return (char *)g->base + g->data_offset + (uint64_t)i * LUO_HEAP_CHUNK;
}

/*
 * A copy of map entry @e, read once, in two 8-byte loads (entries are 16
 * bytes at a 16-byte aligned offset from a 16-byte aligned base).
 */
static inline struct luo_heap_chunk entry_load(const struct luo_heap_chunk *e)
{
	const uint64_t *w = (const uint64_t *)(const void *)e;
	uint64_t v[2] = { __atomic_load_n(&w[0], __ATOMIC_RELAXED), __atomic_load_n(&w[1], __ATOMIC_RELAXED) };
	struct luo_heap_chunk c;

	memcpy(&c, v, sizeof(c));
	return c;
}

/* The class of a slab kind, or LUO_HEAP_CLASSES if @kind is no slab's. */
static uint32_t kind_class(uint8_t kind)
{
	if (kind < LUO_HEAP_KIND_SLAB || kind >= LUO_HEAP_KIND_SLAB + LUO_HEAP_CLASSES)
		return LUO_HEAP_CLASSES;
	return (uint32_t)kind - LUO_HEAP_KIND_SLAB;
}

/* Counters are only reported, yet never wrap below 0. */
static void counter_sub(uint64_t *c, uint64_t v)
{
	uint64_t cur = LOAD(*c);

	*c = cur - (v <= cur ? v : cur);
}

static void counter_add(uint64_t *c, uint64_t v)
{
	*c = LOAD(*c) + v;
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

/*
 * Is @off (< LUO_HEAP_CHUNK) the start of one of the first @bump slots?
 * With @bump <= the class's slots, such a slot lies wholly in the chunk.
 */
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

/*
 * First index in [from, to) whose bit is @want, or @to. Word at a time;
 * reads the words of indexes below @to only, and returns at most @to
 * whatever they hold.
 */
static uint32_t bits_find(const uint64_t *bm, uint32_t from, uint32_t to, bool want)
{
	uint64_t w;
	uint32_t i;

	if (from >= to)
		return to;
	i = from / 64;
	w = (want ? LOAD(bm[i]) : ~LOAD(bm[i])) & (~UINT64_C(0) << (from % 64));
	for (;;) {
		if (w) {
			uint64_t r = (uint64_t)i * 64 + (uint64_t)__builtin_ctzll(w);
			return r < to ? (uint32_t)r : to;
		}
		i++;
		if ((uint64_t)i * 64 >= to)
			return to;
		w = want ? LOAD(bm[i]) : ~LOAD(bm[i]);
	}
}

/*
 * The header of the heap @g describes, or NULL: @g must look like a
 * geometry and the region must still say it holds a heap (magic, version,
 * header size; nothing else of the header is trusted, or needed).
 */
static struct luo_heap *heap_get(const struct luo_heap_geom *g)
{
	struct luo_heap *h;

	if (!geom_ok(g))
		return NULL;
	h = heap_hdr(g);
	if (LOAD(h->magic) != LUO_HEAP_MAGIC || LOAD(h->version) != LUO_HEAP_VERSION ||
	    LOAD(h->header_size) != sizeof(*h))
		return NULL;
	return h;
}

int luo_heap_geometry(void *base, size_t size, struct luo_heap_geom *ret_geom)
{
	struct luo_heap_geom g = { .base = base };

	if (!ret_geom)
		return -EINVAL;
	*ret_geom = (struct luo_heap_geom){ 0 };
	if (!base || (uintptr_t)base % LUO_HEAP_ALIGN != 0 || heap_layout(size, &g, NULL, 0) < 0)
		return -EINVAL;
	*ret_geom = g;
	return 0;
}

int luo_heap_format(void *base, size_t size, struct luo_heap_geom *ret_geom, char *reason, size_t reason_len)
{
	struct luo_heap *h = base;
	struct luo_heap_geom g = { .base = base };
	int r;

	if (!ret_geom)
		return heap_fail(-EINVAL, reason, reason_len, "no geometry to fill");
	*ret_geom = (struct luo_heap_geom){ 0 };
	if (!base || (uintptr_t)base % LUO_HEAP_ALIGN != 0)
		return heap_fail(-EINVAL, reason, reason_len, "region base %p is not %u-byte aligned", base,
				 LUO_HEAP_ALIGN);
	r = heap_layout(size, &g, reason, reason_len);
	if (r < 0)
		return r;

	/* Metadata only: data chunks are never read before being handed out. */
	memset(base, 0, g.data_offset);
	h->magic = LUO_HEAP_MAGIC;
	h->version = LUO_HEAP_VERSION;
	h->header_size = sizeof(*h);
	/* The geometry, for the next image's luo_heap_check() to compare; this one never reads it back. */
	h->size = g.size;
	h->map_offset = g.map_offset;
	h->bitmap_offset = g.bitmap_offset;
	h->data_offset = g.data_offset;
	h->chunk_size = LUO_HEAP_CHUNK;
	h->nchunks = g.nchunks;
	h->nclasses = LUO_HEAP_CLASSES;
	h->epoch = 1;
	h->chunks_free = g.nchunks;
	for (uint32_t k = 0; k < LUO_HEAP_CLASSES; k++) {
		h->class_size[k] = heap_class_size[k];
		h->class_head[k] = LUO_HEAP_NO_CHUNK;
	}
	/* The map is all LUO_HEAP_KIND_FREE (0); mark every chunk free. */
	bits_set(heap_bitmap(&g), 0, g.nchunks);
	*ret_geom = g;
	return 0;
}

/*
 * What is wrong with (a copy of) a slab entry of class @cls, or NULL.
 * Listed slots are below the high-water mark: nfree - (slots - bump) of
 * them, which is at most bump since nfree <= slots.
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

/* Of a copy that passed slab_entry_problem(). */
static uint32_t slab_listed(const struct luo_heap_chunk *e, uint32_t cls)
{
	return e->nfree - (slab_slots(cls) - e->bump);
}

/* The first word of a slot: @i < nchunks and @off a slot start, so 8 bytes inside the chunk. */
static uint64_t slot_word(const struct luo_heap_geom *g, uint32_t i, uint32_t off)
{
	return __atomic_load_n((const uint64_t *)(const void *)(chunk_data(g, i) + off), __ATOMIC_RELAXED);
}

static void slot_set_word(const struct luo_heap_geom *g, uint32_t i, uint32_t off, uint64_t w)
{
	memcpy(chunk_data(g, i) + off, &w, sizeof(w));
}

/*
 * The next offset a free slot's word links to, or -1 if the word is no free
 * slot's. @bump (<= the class's slots) is the one the caller checked.
 */
static int32_t free_link(uint64_t w, uint32_t cls, uint32_t bump)
{
	uint32_t next = (uint32_t)(w & 0xffff);

	if (w >> 16 != LUO_HEAP_FREE_TAG)
		return -1;
	if (next != LUO_HEAP_NO_SLOT && !slot_used(next, cls, bump))
		return -1;
	return (int32_t)next;
}

/* Take slab @i (< nchunks) off class @cls's list; links out of range are not followed. */
static void class_unlink(const struct luo_heap_geom *g, uint32_t cls, uint32_t i)
{
	struct luo_heap *h = heap_hdr(g);
	struct luo_heap_chunk *map = heap_map(g), *e = &map[i];
	uint32_t n = g->nchunks, next = LOAD(e->next), prev = LOAD(e->prev);

	if (prev == LUO_HEAP_NO_CHUNK) {
		if (LOAD(h->class_head[cls]) == i)
			h->class_head[cls] = next < n ? next : LUO_HEAP_NO_CHUNK;
	} else if (prev < n) {
		map[prev].next = next;
	}
	if (next < n)
		map[next].prev = prev;
	e->next = e->prev = LUO_HEAP_NO_CHUNK;
}

static void class_push(const struct luo_heap_geom *g, uint32_t cls, uint32_t i)
{
	struct luo_heap *h = heap_hdr(g);
	struct luo_heap_chunk *map = heap_map(g), *e = &map[i];
	uint32_t head = LOAD(h->class_head[cls]);

	e->prev = LUO_HEAP_NO_CHUNK;
	e->next = head < g->nchunks ? head : LUO_HEAP_NO_CHUNK;
	if (head < g->nchunks)
		map[head].prev = i;
	h->class_head[cls] = i;
}

/*
 * Never used again: its live objects cannot be known, so its chunk leaks.
 * @cls is the class the caller found the slab to be (the map may say
 * otherwise by now: it is not read again).
 */
static void slab_quarantine(const struct luo_heap_geom *g, uint32_t i, uint32_t cls)
{
	struct luo_heap *h = heap_hdr(g);
	struct luo_heap_chunk *e = &heap_map(g)[i];
	uint32_t nfree = LOAD(e->nfree);

	if (nfree > 0)
		class_unlink(g, cls, i);
	if (nfree <= slab_slots(cls))
		counter_sub(&h->bytes_in_use, (uint64_t)(slab_slots(cls) - nfree) * heap_class_size[cls]);
	*e = (struct luo_heap_chunk){
		.kind = LUO_HEAP_KIND_QUARANTINED,
		.next = LUO_HEAP_NO_CHUNK,
		.prev = LUO_HEAP_NO_CHUNK,
	};
	counter_add(&h->quarantined, 1);
}

/*
 * The lazy half of luo_heap_check(): walk slab @i's free list once per
 * epoch, one step per listed slot, and quarantine it if the list is not
 * exactly what its map entry says. True if the slab may be used.
 */
static bool slab_validate_list(const struct luo_heap_geom *g, uint32_t i, uint32_t cls)
{
	struct luo_heap_chunk *e = &heap_map(g)[i], s = entry_load(e);
	uint32_t epoch = LOAD(heap_hdr(g)->epoch), listed, off;

	if (slab_entry_problem(&s, cls))
		goto bad;
	listed = slab_listed(&s, cls);
	off = s.head;
	for (uint32_t k = 0; k < listed; k++) {
		int32_t next;

		/* In range and aligned: the head by slab_entry_problem(), the rest by free_link(). */
		if (off == LUO_HEAP_NO_SLOT)
			goto bad; /* ends early */
		next = free_link(slot_word(g, i, off), cls, s.bump);
		if (next < 0)
			goto bad;
		off = (uint32_t)next;
	}
	if (off != LUO_HEAP_NO_SLOT)
		goto bad; /* longer than its count, or a cycle */
	e->epoch = (uint8_t)epoch;
	return true;
bad:
	slab_quarantine(g, i, cls);
	return false;
}

/* @s: a copy of slab @i's entry, of class @cls. */
static inline bool slab_validate(const struct luo_heap_geom *g, uint32_t i, uint32_t cls,
				 const struct luo_heap_chunk *s)
{
	return s->epoch == (uint8_t)LOAD(heap_hdr(g)->epoch) || slab_validate_list(g, i, cls);
}

/*
 * Is the slot at @slot on slab @i's (validated) list? 1 yes, 0 no, -1 the
 * list was damaged since its validation (a write after free).
 */
static int slab_is_listed(const struct luo_heap_geom *g, uint32_t i, uint32_t cls, uint32_t slot)
{
	struct luo_heap_chunk s = entry_load(&heap_map(g)[i]);
	uint32_t listed, off = s.head;

	if (slab_entry_problem(&s, cls))
		return -1;
	listed = slab_listed(&s, cls);
	for (uint32_t k = 0; k < listed && off != LUO_HEAP_NO_SLOT; k++) {
		int32_t next;

		if (off == slot)
			return 1;
		next = free_link(slot_word(g, i, off), cls, s.bump);
		if (next < 0)
			return -1;
		off = (uint32_t)next;
	}
	return 0;
}

static void chunks_put(const struct luo_heap_geom *g, uint32_t i, uint32_t n, luo_heap_release_fn release,
		       void *ctx);

/*
 * Give the emptied slabs kept for their class (see heap.h, Fragmentation)
 * back to the free chunks: the way out when no chunk run fits. Walks the
 * class lists, O(slabs with free slots), at most nchunks steps per class
 * in case one was damaged after the check. Not released: the chunks are
 * about to be reused.
 */
static uint32_t heap_reclaim_empty(const struct luo_heap_geom *g)
{
	struct luo_heap *h = heap_hdr(g);
	struct luo_heap_chunk *map = heap_map(g);
	uint32_t n = g->nchunks, reclaimed = 0;

	for (uint32_t k = 0; k < LUO_HEAP_CLASSES; k++) {
		uint32_t i = LOAD(h->class_head[k]);

		for (uint32_t steps = 0; i < n && steps < n; steps++) {
			struct luo_heap_chunk s = entry_load(&map[i]);

			if (s.kind != LUO_HEAP_KIND_SLAB + k)
				break;
			if (s.nfree == slab_slots(k)) {
				class_unlink(g, k, i);
				chunks_put(g, i, 1, NULL, NULL);
				reclaimed++;
			}
			i = s.next;
		}
	}
	return reclaimed;
}

/* @n (1..nchunks) contiguous free chunks at or after the hint, first fit; LUO_HEAP_NO_CHUNK if none. */
static uint32_t chunks_find(const struct luo_heap_geom *g, uint32_t n)
{
	struct luo_heap *h = heap_hdr(g);
	uint64_t *bm = heap_bitmap(g);
	uint32_t total = g->nchunks, hint = LOAD(h->hint), first, i, end;

	if (LOAD(h->chunks_free) < n)
		return LUO_HEAP_NO_CHUNK;
	first = bits_find(bm, hint < total ? hint : total, total, true);
	h->hint = first; /* nothing free in between */
	/* Each round moves i forward: at most nchunks rounds, whatever the bitmap says meanwhile. */
	for (i = first; i < total;) {
		end = bits_find(bm, i, total, false);
		if (end - i >= n) {
			/* i + n <= end <= total. */
			bits_clear(bm, i, n);
			memset(&heap_map(g)[i], 0, (size_t)n * sizeof(struct luo_heap_chunk));
			counter_sub(&h->chunks_free, n);
			if (i == first)
				h->hint = i + n;
			return i;
		}
		if (end <= i)
			end = i + 1; /* the bit changed under us */
		i = bits_find(bm, end, total, true);
	}
	return LUO_HEAP_NO_CHUNK;
}

/* Take @n contiguous free chunks; LUO_HEAP_NO_CHUNK if none, even after reclaiming. */
static uint32_t chunks_take(const struct luo_heap_geom *g, uint32_t n)
{
	uint32_t i;

	if (n == 0 || n > g->nchunks)
		return LUO_HEAP_NO_CHUNK;
	i = chunks_find(g, n);
	if (i == LUO_HEAP_NO_CHUNK && heap_reclaim_empty(g) > 0)
		i = chunks_find(g, n);
	return i;
}

/* Chunks [@i, @i + @n) back to the free ones: @i + @n <= nchunks. */
static void chunks_put(const struct luo_heap_geom *g, uint32_t i, uint32_t n, luo_heap_release_fn release,
		       void *ctx)
{
	struct luo_heap *h = heap_hdr(g);

	memset(&heap_map(g)[i], 0, (size_t)n * sizeof(struct luo_heap_chunk));
	bits_set(heap_bitmap(g), i, n);
	counter_add(&h->chunks_free, n);
	if (i < LOAD(h->hint))
		h->hint = i;
	if (release)
		release(ctx, g->data_offset + (uint64_t)i * LUO_HEAP_CHUNK, (size_t)n * LUO_HEAP_CHUNK);
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
 * A slot of slab @i of class @cls (validated this epoch; @s a copy of its
 * entry), or -1 if the slab turns out damaged since (the caller
 * quarantines it). Every count in the copy is checked here before use.
 * Takes the slab off its class list when that was its last free slot.
 */
static int32_t slab_take(const struct luo_heap_geom *g, uint32_t i, uint32_t cls, const struct luo_heap_chunk *s)
{
	struct luo_heap_chunk *e = &heap_map(g)[i];
	uint32_t slots = slab_slots(cls), off;

	if (s->kind != LUO_HEAP_KIND_SLAB + cls || s->nfree == 0 || s->nfree > slots || s->bump > slots ||
	    s->nfree < slots - s->bump)
		return -1;
	if (s->head != LUO_HEAP_NO_SLOT) {
		int32_t next;
		bool last = slab_listed(s, cls) == 1;

		if (!slot_used(s->head, cls, s->bump))
			return -1;
		next = free_link(slot_word(g, i, s->head), cls, s->bump);
		/* A write after free that broke the link, or the count. */
		if (next < 0 || last != (next == LUO_HEAP_NO_SLOT))
			return -1;
		off = s->head;
		e->head = (uint16_t)next;
		slot_set_word(g, i, off, 0); /* so that freeing it finds no tag */
	} else {
		if (s->nfree != slots - s->bump)
			return -1; /* listed slots, yet no list */
		off = (uint32_t)s->bump * heap_class_size[cls]; /* bump < slots: nfree > 0 never-used slots */
		e->bump = (uint16_t)(s->bump + 1);
	}
	e->nfree = (uint16_t)(s->nfree - 1);
	if (s->nfree == 1)
		class_unlink(g, cls, i);
	return (int32_t)off;
}

static void *heap_alloc_small(const struct luo_heap_geom *g, uint32_t cls)
{
	struct luo_heap *h = heap_hdr(g);
	struct luo_heap_chunk *map = heap_map(g);
	uint32_t n = g->nchunks;

	/* Each round hands out a slot, quarantines a slab or drops a list: bounded by the map. */
	for (uint64_t round = 0; round < (uint64_t)n + 2; round++) {
		uint32_t i = LOAD(h->class_head[cls]);
		struct luo_heap_chunk s;
		int32_t off;

		if (i == LUO_HEAP_NO_CHUNK) {
			i = chunks_take(g, 1);
			if (i == LUO_HEAP_NO_CHUNK)
				break;
			s = (struct luo_heap_chunk){
				.kind = (uint8_t)(LUO_HEAP_KIND_SLAB + cls),
				.epoch = (uint8_t)LOAD(h->epoch),
				.nfree = (uint16_t)slab_slots(cls),
				.head = LUO_HEAP_NO_SLOT,
				.bump = 0,
			};
			map[i] = s;
			class_push(g, cls, i);
		} else if (i >= n) {
			/* The list was damaged after the check: drop it, its slabs leak. */
			h->class_head[cls] = LUO_HEAP_NO_CHUNK;
			continue;
		} else {
			s = entry_load(&map[i]);
			if (s.kind != LUO_HEAP_KIND_SLAB + cls || s.nfree == 0) {
				h->class_head[cls] = LUO_HEAP_NO_CHUNK; /* the same */
				continue;
			}
			/* A validation writes the epoch only: the copy holds for slab_take(). */
			if (!slab_validate(g, i, cls, &s))
				continue;
		}
		off = slab_take(g, i, cls, &s);
		if (off < 0) {
			slab_quarantine(g, i, cls);
			continue;
		}
		counter_add(&h->bytes_in_use, heap_class_size[cls]);
		return chunk_data(g, i) + off;
	}
	errno = ENOMEM;
	return NULL;
}

void *luo_heap_alloc(const struct luo_heap_geom *g, size_t n)
{
	struct luo_heap *h = heap_get(g);
	struct luo_heap_chunk *map;
	uint64_t len;
	uint32_t i;

	if (!h || n == 0) {
		errno = EINVAL;
		return NULL;
	}
	if (n <= LUO_HEAP_SMALL_MAX)
		return heap_alloc_small(g, size_class(n));

	len = n / LUO_HEAP_CHUNK + (n % LUO_HEAP_CHUNK != 0);
	i = len <= g->nchunks ? chunks_take(g, (uint32_t)len) : LUO_HEAP_NO_CHUNK;
	if (i == LUO_HEAP_NO_CHUNK) {
		errno = ENOMEM;
		return NULL;
	}
	/* i + len <= nchunks, the entries zeroed by chunks_find(). */
	map = heap_map(g);
	map[i].kind = LUO_HEAP_KIND_RUN;
	map[i].next = (uint32_t)len;
	for (uint32_t j = 1; j < len; j++) {
		map[i + j].kind = LUO_HEAP_KIND_TAIL;
		map[i + j].prev = i;
	}
	counter_add(&h->bytes_in_use, len * LUO_HEAP_CHUNK);
	return chunk_data(g, i);
}

static bool heap_free_run(const struct luo_heap_geom *g, uint32_t i, luo_heap_release_fn release, void *ctx)
{
	struct luo_heap_chunk *map = heap_map(g);
	uint32_t len = LOAD(map[i].next);

	if (len == 0 || len > g->nchunks - i)
		return false;
	for (uint32_t j = 1; j < len; j++)
		if (LOAD(map[i + j].kind) != LUO_HEAP_KIND_TAIL || LOAD(map[i + j].prev) != i)
			return false;
	counter_sub(&heap_hdr(g)->bytes_in_use, (uint64_t)len * LUO_HEAP_CHUNK);
	chunks_put(g, i, len, release, ctx);
	return true;
}

static bool heap_free_slot(const struct luo_heap_geom *g, uint32_t i, uint32_t cls, uint32_t off,
			   luo_heap_release_fn release, void *ctx)
{
	struct luo_heap *h = heap_hdr(g);
	struct luo_heap_chunk *e = &heap_map(g)[i], s = entry_load(e);
	uint32_t slots = slab_slots(cls), nfree;

	if (s.kind != LUO_HEAP_KIND_SLAB + cls)
		return false; /* changed since the caller looked */
	if (!slab_validate(g, i, cls, &s))
		return false;
	if (s.bump > slots)
		return false; /* changed since the validation */
	if (!slot_used(off, cls, s.bump))
		return false; /* not a slot start, or never handed out */
	if (slot_word(g, i, off) >> 16 == LUO_HEAP_FREE_TAG) {
		/* Tagged: a double free, or user data that looks like the tag. */
		int listed = slab_is_listed(g, i, cls, off);

		if (listed < 0)
			slab_quarantine(g, i, cls);
		if (listed != 0)
			return false;
	}
	if (s.nfree >= slots)
		return false; /* cannot be: all free, yet this slot was not listed */
	slot_set_word(g, i, off, LUO_HEAP_FREE_TAG << 16 | s.head);
	nfree = s.nfree + 1u;
	e->head = (uint16_t)off;
	e->nfree = (uint16_t)nfree;
	counter_sub(&h->bytes_in_use, heap_class_size[cls]);
	if (nfree == 1)
		class_push(g, cls, i);
	if (nfree == slots && !(LOAD(h->class_head[cls]) == i && LOAD(e->next) == LUO_HEAP_NO_CHUNK)) {
		class_unlink(g, cls, i);
		chunks_put(g, i, 1, release, ctx);
	}
	return true;
}

void luo_heap_free(const struct luo_heap_geom *g, void *p, luo_heap_release_fn release, void *ctx)
{
	struct luo_heap *h = heap_get(g);
	uint64_t off, rel;
	uint32_t i, in, cls;
	uint8_t kind;
	bool ok = false;

	if (!p || !h)
		return;
	if ((uintptr_t)p < (uintptr_t)g->base)
		goto bad;
	off = (uintptr_t)p - (uintptr_t)g->base;
	if (off < g->data_offset || off >= g->size)
		goto bad;
	rel = off - g->data_offset;
	i = (uint32_t)(rel / LUO_HEAP_CHUNK);
	in = (uint32_t)(rel % LUO_HEAP_CHUNK);
	if (i >= g->nchunks)
		goto bad;

	kind = LOAD(heap_map(g)[i].kind);
	if (kind == LUO_HEAP_KIND_RUN) {
		ok = in == 0 && heap_free_run(g, i, release, ctx);
	} else {
		/* Free chunks, tails, quarantined slabs and unknown kinds: nothing to free. */
		cls = kind_class(kind);
		if (cls < LUO_HEAP_CLASSES)
			ok = heap_free_slot(g, i, cls, in, release, ctx);
	}
	if (ok)
		return;
bad:
	counter_add(&h->bad_frees, 1);
}

int luo_heap_set_root(const struct luo_heap_geom *g, void *p)
{
	struct luo_heap *h = heap_get(g);
	uint64_t off;

	if (!h)
		return -EINVAL;
	if (!p) {
		h->root = 0;
		return 0;
	}
	if ((uintptr_t)p < (uintptr_t)g->base)
		return -EINVAL;
	off = (uintptr_t)p - (uintptr_t)g->base;
	if (off < g->data_offset || off >= g->size)
		return -EINVAL;
	h->root = off;
	return 0;
}

void *luo_heap_root(const struct luo_heap_geom *g)
{
	struct luo_heap *h = heap_get(g);
	uint64_t root;

	if (!h)
		return NULL;
	root = LOAD(h->root);
	if (root < g->data_offset || root >= g->size)
		return NULL;
	return (char *)g->base + root;
}

uint32_t luo_heap_type_digest(const struct luo_heap_geom *g)
{
	struct luo_heap *h = heap_get(g);

	return h ? LOAD(h->type_digest) : 0;
}

void luo_heap_set_type_digest(const struct luo_heap_geom *g, uint32_t digest)
{
	struct luo_heap *h = heap_get(g);

	if (h)
		__atomic_store_n(&h->type_digest, digest, __ATOMIC_RELAXED);
}

int luo_heap_stats(const struct luo_heap_geom *g, struct luo_heap_stats *ret_stats)
{
	struct luo_heap *h = heap_get(g);
	uint64_t nfree;

	if (!h || !ret_stats)
		return -EINVAL;
	nfree = LOAD(h->chunks_free);
	if (nfree > g->nchunks)
		nfree = g->nchunks;
	*ret_stats = (struct luo_heap_stats){
		.bytes_in_use = LOAD(h->bytes_in_use),
		.chunks_in_use = g->nchunks - nfree,
		.chunks_free = nfree,
		.metadata_bytes = g->data_offset,
		.bad_frees = LOAD(h->bad_frees),
		.quarantined = LOAD(h->quarantined),
	};
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Thread caches (heap.h, "thread caches")                                   */

_Static_assert(LUO_HEAP_TCACHE_CLASSES <= 8 + 4 && LUO_HEAP_TCACHE_SIZE_MAX == 256,
	       "the cached classes are the first twelve, 16..256 bytes");
_Static_assert(LUO_HEAP_TCACHE_BATCH >= 1 && LUO_HEAP_TCACHE_BATCH <= LUO_HEAP_TCACHE_BLOCKS, "a batch fits");

void luo_heap_tcache_init(struct luo_heap_tcache *tc, uint64_t key)
{
	memset(tc, 0, sizeof(*tc));
	/* Never 0 (a cleared block), never the heap's free tag (a listed slot). */
	key |= 1;
	if (key >> 16 == LUO_HEAP_FREE_TAG)
		key ^= UINT64_C(1) << 40;
	tc->key = key;
}

static inline void *tcache_pop(struct luo_heap_tcache *tc, uint32_t cls)
{
	while (tc->count[cls] > 0) {
		void *p = tc->block[cls][--tc->count[cls]];
		uint64_t *w = p;

		if (__atomic_load_n(w, __ATOMIC_RELAXED) == tc->key) {
			__atomic_store_n(w, 0, __ATOMIC_RELAXED);
			return p;
		}
		tc->damaged++; /* written while cached: drop it, it leaks */
	}
	return NULL;
}

static inline void tcache_push(struct luo_heap_tcache *tc, uint32_t cls, void *p)
{
	__atomic_store_n((uint64_t *)p, tc->key, __ATOMIC_RELAXED);
	tc->block[cls][tc->count[cls]++] = p;
}

void *luo_heap_tcache_alloc(struct luo_heap_tcache *tc, size_t n)
{
	if (n == 0 || n > LUO_HEAP_TCACHE_SIZE_MAX)
		return NULL;
	return tcache_pop(tc, size_class(n));
}

void *luo_heap_tcache_refill(const struct luo_heap_geom *g, struct luo_heap_tcache *tc, size_t n)
{
	uint32_t cls;
	void *p;
	int saved;

	p = luo_heap_alloc(g, n);
	if (!p && errno == ENOMEM) {
		/* Full: what this thread holds is better used than refused. */
		luo_heap_tcache_flush(g, tc, NULL, NULL);
		p = luo_heap_alloc(g, n);
	}
	if (!p || n > LUO_HEAP_TCACHE_SIZE_MAX)
		return p;
	cls = size_class(n);
	saved = errno;
	for (uint32_t k = 1; k < LUO_HEAP_TCACHE_BATCH && tc->count[cls] < LUO_HEAP_TCACHE_BLOCKS; k++) {
		void *q = heap_alloc_small(g, cls);

		if (!q)
			break;
		tcache_push(tc, cls, q);
	}
	errno = saved;
	return p;
}

/*
 * May @p go into @tc? LUO_HEAP_TCACHE_CACHED and its class in *@ret_cls,
 * or the slow call to make. The map entry is read once and checked against
 * the private geometry; everything else of a doubtful block is left to
 * luo_heap_free()'s exact checks.
 */
static int tcache_check(const struct luo_heap_geom *g, const struct luo_heap_tcache *tc, void *p,
			uint32_t *ret_cls)
{
	struct luo_heap *h = heap_get(g);
	struct luo_heap_chunk s;
	uint64_t off, rel, w;
	uint32_t i, in, cls;

	if (!h || (uintptr_t)p < (uintptr_t)g->base)
		return LUO_HEAP_TCACHE_HEAP;
	off = (uintptr_t)p - (uintptr_t)g->base;
	if (off < g->data_offset || off >= g->size)
		return LUO_HEAP_TCACHE_HEAP;
	rel = off - g->data_offset;
	i = (uint32_t)(rel / LUO_HEAP_CHUNK);
	in = (uint32_t)(rel % LUO_HEAP_CHUNK);
	if (i >= g->nchunks)
		return LUO_HEAP_TCACHE_HEAP;
	s = entry_load(&heap_map(g)[i]);
	cls = kind_class(s.kind);
	if (cls >= LUO_HEAP_TCACHE_CLASSES || s.epoch != (uint8_t)LOAD(h->epoch) || s.bump > slab_slots(cls) ||
	    !slot_used(in, cls, s.bump))
		return LUO_HEAP_TCACHE_HEAP;
	w = slot_word(g, i, in);
	if (w >> 16 == LUO_HEAP_FREE_TAG)
		return LUO_HEAP_TCACHE_HEAP; /* listed in its slab, or user data: the heap tells */
	if (w == tc->key)
		return LUO_HEAP_TCACHE_DOUBLE; /* in this or another thread's cache */
	*ret_cls = cls;
	return LUO_HEAP_TCACHE_CACHED;
}

int luo_heap_tcache_free(const struct luo_heap_geom *g, struct luo_heap_tcache *tc, void *p)
{
	uint32_t cls = 0;
	int r = tcache_check(g, tc, p, &cls);

	if (r != LUO_HEAP_TCACHE_CACHED)
		return r;
	if (tc->count[cls] >= LUO_HEAP_TCACHE_BLOCKS)
		return LUO_HEAP_TCACHE_FULL;
	tcache_push(tc, cls, p);
	return LUO_HEAP_TCACHE_CACHED;
}

void luo_heap_tcache_free_slow(const struct luo_heap_geom *g, struct luo_heap_tcache *tc, void *p, int how,
			       luo_heap_release_fn release, void *ctx)
{
	struct luo_heap *h = heap_get(g);
	uint32_t cls = 0, half = LUO_HEAP_TCACHE_BATCH;

	if (!h)
		return;
	/* Checked again under the lock: @how is a hint, the block is what it is now. */
	if (how != LUO_HEAP_TCACHE_HEAP)
		how = tcache_check(g, tc, p, &cls);
	if (how == LUO_HEAP_TCACHE_DOUBLE) {
		counter_add(&h->bad_frees, 1);
		return;
	}
	if (how != LUO_HEAP_TCACHE_CACHED) {
		luo_heap_free(g, p, release, ctx);
		return;
	}
	if (tc->count[cls] >= LUO_HEAP_TCACHE_BLOCKS) {
		/* The older half back (the bottom of the stack), the warm half kept. */
		for (uint32_t k = 0; k < half; k++)
			luo_heap_free(g, tc->block[cls][k], release, ctx);
		memmove(&tc->block[cls][0], &tc->block[cls][half], (tc->count[cls] - half) * sizeof(tc->block[cls][0]));
		tc->count[cls] -= half;
	}
	tcache_push(tc, cls, p);
}

void luo_heap_tcache_flush(const struct luo_heap_geom *g, struct luo_heap_tcache *tc, luo_heap_release_fn release,
			   void *ctx)
{
	for (uint32_t cls = 0; cls < LUO_HEAP_TCACHE_CLASSES; cls++) {
		while (tc->count[cls] > 0) {
			/* The key is never the heap's free tag: the heap frees it as any live block. */
			luo_heap_free(g, tc->block[cls][--tc->count[cls]], release, ctx);
		}
	}
}

/*
 * The map, in one pass: kinds, runs, slabs, bitmap, counters; a slab entry
 * that already holds @new_epoch is a collision. Each entry is
 * read once (a copy), so that the pass stays inside the map and ends even
 * if the region is written meanwhile; what it then says is only as good as
 * the region, which is the most a check can say.
 */
static int check_map(const struct luo_heap_geom *g, uint8_t new_epoch, uint32_t in_lists[LUO_HEAP_CLASSES],
		     bool *ret_collision, char *reason, size_t reason_len)
{
	const struct luo_heap *h = heap_hdr(g);
	const struct luo_heap_chunk *map = heap_map(g);
	const uint64_t *bm = heap_bitmap(g);
	uint32_t n = g->nchunks, first_free = n, hint;
	uint64_t nfree = 0, quarantined = 0, bytes = 0, v;
	bool collision = false;

	for (uint32_t i = 0; i < n;) {
		const struct luo_heap_chunk e = entry_load(&map[i]);
		bool is_free = bit_test(bm, i);
		uint32_t cls;

		if (e.kind == LUO_HEAP_KIND_FREE) {
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
					 e.kind);
		if (e.kind == LUO_HEAP_KIND_RUN) {
			uint32_t len = e.next;

			if (len == 0 || len > n - i)
				return heap_fail(-EBADMSG, reason, reason_len,
						 "chunk %u: run of %u chunks, %u chunks left", i, len, n - i);
			for (uint32_t j = 1; j < len; j++) {
				if (LOAD(map[i + j].kind) != LUO_HEAP_KIND_TAIL || LOAD(map[i + j].prev) != i)
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
		if (e.kind == LUO_HEAP_KIND_TAIL)
			return heap_fail(-EBADMSG, reason, reason_len, "chunk %u: run tail without a run", i);
		if (e.kind == LUO_HEAP_KIND_QUARANTINED) {
			quarantined++;
			i++;
			continue;
		}
		cls = kind_class(e.kind);
		if (cls < LUO_HEAP_CLASSES) {
			const char *problem = slab_entry_problem(&e, cls);

			if (problem)
				return heap_fail(-EBADMSG, reason, reason_len, "chunk %u: slab of %u bytes: %s", i,
						 heap_class_size[cls], problem);
			if (e.nfree > 0) {
				if ((e.next != LUO_HEAP_NO_CHUNK && e.next >= n) ||
				    (e.prev != LUO_HEAP_NO_CHUNK && e.prev >= n))
					return heap_fail(-EBADMSG, reason, reason_len,
							 "chunk %u: slab list link out of range", i);
				in_lists[cls]++;
			}
			bytes += (uint64_t)(slab_slots(cls) - e.nfree) * heap_class_size[cls];
			if (e.epoch == new_epoch)
				collision = true;
			i++;
			continue;
		}
		return heap_fail(-EBADMSG, reason, reason_len, "chunk %u: unknown kind %u", i, e.kind);
	}
	if (n % 64 != 0 && LOAD(bm[n / 64]) >> (n % 64) != 0)
		return heap_fail(-EBADMSG, reason, reason_len, "bitmap: bits set past the last chunk");
	hint = LOAD(h->hint);
	if (first_free < hint)
		return heap_fail(-EBADMSG, reason, reason_len, "hint %u is past free chunk %u", hint, first_free);
	v = LOAD(h->chunks_free);
	if (nfree != v)
		return heap_fail(-EBADMSG, reason, reason_len, "%" PRIu64 " free chunks, header says %" PRIu64, nfree,
				 v);
	v = LOAD(h->quarantined);
	if (quarantined != v)
		return heap_fail(-EBADMSG, reason, reason_len, "%" PRIu64 " quarantined chunks, header says %" PRIu64,
				 quarantined, v);
	v = LOAD(h->bytes_in_use);
	if (bytes != v)
		return heap_fail(-EBADMSG, reason, reason_len, "%" PRIu64 " bytes in use, header says %" PRIu64, bytes,
				 v);
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
static int check_class_list(const struct luo_heap_geom *g, uint32_t cls, uint32_t count, char *reason,
			    size_t reason_len)
{
	const struct luo_heap_chunk *map = heap_map(g);
	uint32_t prev = LUO_HEAP_NO_CHUNK, i = LOAD(heap_hdr(g)->class_head[cls]);

	for (uint32_t k = 0; k < count; k++) {
		struct luo_heap_chunk e;

		if (i == LUO_HEAP_NO_CHUNK)
			return heap_fail(-EBADMSG, reason, reason_len,
					 "class %u: list ends after %u of %u slabs with free slots", cls, k, count);
		if (i >= g->nchunks)
			return heap_fail(-EBADMSG, reason, reason_len, "class %u: list reaches chunk %u, out of range",
					 cls, i);
		e = entry_load(&map[i]);
		if (e.kind != LUO_HEAP_KIND_SLAB + cls || e.nfree == 0)
			return heap_fail(-EBADMSG, reason, reason_len,
					 "class %u: list reaches chunk %u, not a slab of the class with free slots",
					 cls, i);
		if (e.prev != prev)
			return heap_fail(-EBADMSG, reason, reason_len, "class %u: chunk %u: back link %u, expected %u",
					 cls, i, e.prev, prev);
		prev = i;
		i = e.next;
	}
	if (i != LUO_HEAP_NO_CHUNK)
		return heap_fail(-EBADMSG, reason, reason_len,
				 "class %u: list longer than its %u slabs with free slots", cls, count);
	return 0;
}

int luo_heap_check_header(void *base, size_t size, struct luo_heap_geom *ret_geom, char *reason, size_t reason_len)
{
	struct luo_heap *h = base;
	struct luo_heap_geom g = { .base = base };
	uint32_t nchunks, hint, v32;
	uint64_t hsize, map_offset, bitmap_offset, data_offset, root, v64;

	if (!ret_geom)
		return heap_fail(-EINVAL, reason, reason_len, "no geometry to fill");
	*ret_geom = (struct luo_heap_geom){ 0 };
	if (!base || (uintptr_t)base % LUO_HEAP_ALIGN != 0)
		return heap_fail(-EINVAL, reason, reason_len, "region base %p is not %u-byte aligned", base,
				 LUO_HEAP_ALIGN);
	if (size < sizeof(*h))
		return heap_fail(-EINVAL, reason, reason_len, "region of %zu bytes holds no header", size);

	/* Each field read once: what is reported is what was compared. */
	v64 = LOAD(h->magic);
	if (v64 != LUO_HEAP_MAGIC)
		return heap_fail(-EBADMSG, reason, reason_len, "heap header: bad magic %#" PRIx64, v64);
	v32 = LOAD(h->version);
	if (v32 != LUO_HEAP_VERSION)
		return heap_fail(-EBADMSG, reason, reason_len, "heap header: version %u, this build reads %u", v32,
				 LUO_HEAP_VERSION);
	v32 = LOAD(h->header_size);
	if (v32 != sizeof(*h))
		return heap_fail(-EBADMSG, reason, reason_len, "heap header: %u bytes, expected %zu", v32, sizeof(*h));
	hsize = LOAD(h->size);
	if (hsize != size)
		return heap_fail(-EBADMSG, reason, reason_len, "heap header: region of %" PRIu64 " bytes, mapped %zu",
				 hsize, size);
	/* The geometry, from the size the caller mapped; the header's copy must agree. */
	if (heap_layout(size, &g, reason, reason_len) < 0)
		return -EBADMSG;
	v32 = LOAD(h->chunk_size);
	if (v32 != LUO_HEAP_CHUNK)
		return heap_fail(-EBADMSG, reason, reason_len, "heap header: chunks of %u bytes, expected %u", v32,
				 LUO_HEAP_CHUNK);
	nchunks = LOAD(h->nchunks);
	map_offset = LOAD(h->map_offset);
	bitmap_offset = LOAD(h->bitmap_offset);
	data_offset = LOAD(h->data_offset);
	if (nchunks != g.nchunks || map_offset != g.map_offset || bitmap_offset != g.bitmap_offset ||
	    data_offset != g.data_offset)
		return heap_fail(-EBADMSG, reason, reason_len,
				 "heap header: layout (%u chunks, map %" PRIu64 ", bitmap %" PRIu64 ", data %" PRIu64
				 ") is not the one of %zu bytes",
				 nchunks, map_offset, bitmap_offset, data_offset, size);
	v32 = LOAD(h->nclasses);
	if (v32 != LUO_HEAP_CLASSES)
		return heap_fail(-EBADMSG, reason, reason_len, "heap header: %u size classes, this build has %u", v32,
				 LUO_HEAP_CLASSES);
	for (uint32_t k = 0; k < LUO_HEAP_CLASSES; k++) {
		uint32_t cs = LOAD(h->class_size[k]), head = LOAD(h->class_head[k]);

		if (cs != heap_class_size[k])
			return heap_fail(-EBADMSG, reason, reason_len,
					 "heap header: class %u is %u bytes, this build's is %u", k, cs,
					 heap_class_size[k]);
		if (head != LUO_HEAP_NO_CHUNK && head >= g.nchunks)
			return heap_fail(-EBADMSG, reason, reason_len,
					 "heap header: class %u list head %u out of range", k, head);
	}
	root = LOAD(h->root);
	if (root != 0 && (root < g.data_offset || root >= g.size))
		return heap_fail(-EBADMSG, reason, reason_len, "heap header: root %#" PRIx64 " outside the data",
				 root);
	hint = LOAD(h->hint);
	if (hint > g.nchunks)
		return heap_fail(-EBADMSG, reason, reason_len, "heap header: hint %u past %u chunks", hint,
				 g.nchunks);
	*ret_geom = g;
	return 0;
}

int luo_heap_check_map(const struct luo_heap_geom *g, char *reason, size_t reason_len)
{
	uint32_t in_lists[LUO_HEAP_CLASSES] = { 0 }, epoch;
	bool collision = false;
	struct luo_heap *h;
	uint8_t new_epoch;
	int r;

	if (!geom_ok(g))
		return heap_fail(-EINVAL, reason, reason_len, "no geometry");
	h = heap_hdr(g);
	/* The epoch read once: the one the collision is looked for against is the one bumped. */
	epoch = LOAD(h->epoch);
	new_epoch = (uint8_t)(epoch + 1);
	r = check_map(g, new_epoch, in_lists, &collision, reason, reason_len);
	if (r < 0)
		return r;
	for (uint32_t k = 0; k < LUO_HEAP_CLASSES; k++) {
		r = check_class_list(g, k, in_lists[k], reason, reason_len);
		if (r < 0)
			return r;
	}

	/* Accepted: a new epoch, which no slab may claim to be checked in yet. */
	h->epoch = epoch + 1;
	if (collision) {
		struct luo_heap_chunk *map = heap_map(g);

		for (uint32_t i = 0; i < g->nchunks; i++)
			if (LOAD(map[i].kind) >= LUO_HEAP_KIND_SLAB && LOAD(map[i].epoch) == new_epoch)
				map[i].epoch = (uint8_t)(new_epoch - 1);
	}
	return 0;
}

int luo_heap_check(void *base, size_t size, struct luo_heap_geom *ret_geom, char *reason, size_t reason_len)
{
	struct luo_heap_geom g;
	int r;

	if (!ret_geom)
		return heap_fail(-EINVAL, reason, reason_len, "no geometry to fill");
	r = luo_heap_check_header(base, size, &g, reason, reason_len);
	if (r < 0) {
		*ret_geom = g;
		return r;
	}
	r = luo_heap_check_map(&g, reason, reason_len);
	if (r < 0) {
		*ret_geom = (struct luo_heap_geom){ 0 };
		return r;
	}
	*ret_geom = g;
	return 0;
}
