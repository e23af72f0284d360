/* SPDX-License-Identifier: MIT */
#ifndef LUO_HEAP_H
#define LUO_HEAP_H

/*
 * DOC: the in-region heap, an allocator living inside an arena
 *
 * An arena is a memfd mapped at the same virtual address by the old and the
 * new program image, so raw pointers stored inside it stay valid across the
 * exec. This heap is the allocator that lives entirely INSIDE such a region:
 * every byte of its state is in the region and refers to the region only by
 * offsets from its base (never by absolute pointers), so the next image finds
 * the allocator intact by mapping the region, and a copy of the region at
 * another address is just as valid (luo_heap_check() passes there too).
 *
 * Layout (offsets from the region base; every number derived from the size):
 *
 *   0            struct luo_heap, the header (416 bytes)
 *   map_offset   struct luo_heap_chunk map[nchunks], 16 bytes per data chunk
 *   bitmap_off.  uint64_t free[ceil(nchunks / 64)]: bit i set = chunk i free
 *   data_offset  nchunks data chunks of LUO_HEAP_CHUNK (64 KiB), the first
 *                one at the first page (4 KiB) boundary after the bitmap
 *
 * Metadata is 16 bytes of map plus 1 bit of bitmap per 64 KiB data chunk,
 * 16.125 / 65536 = 0.0246% of the data, plus the header, rounded up to
 * whole pages. An arena asks luo_heap_region_size() for the region that
 * holds exactly the data it was asked for, so the metadata comes on top:
 *
 *   data      data chunks   metadata    share of the region
 *   1 MiB              16   4 KiB       0.39%
 *   16 MiB            256   8 KiB       0.049%
 *   1 GiB           16384   264 KiB     0.025%
 *   8 GiB          131072   2.02 MiB    0.025%
 *   1 TiB (max)  16777216   258 MiB     0.025%
 *
 * (Format 1 rounded the metadata up to whole chunks: 64 KiB, 0.39% of a
 * 16 MiB arena.) A region of another size holds as many chunks as fit;
 * what is left past the last one is not used.
 *
 * Algorithm. A request of at most LUO_HEAP_SMALL_MAX (32 KiB) bytes is
 * rounded up to one of LUO_HEAP_CLASSES size classes and served from a slab:
 * a chunk cut into slots of that size. The classes are 16..128 in steps of
 * 16, then four per doubling (25% steps) up to 8 KiB, then six sizes that
 * divide a chunk with almost no tail (64 KiB / 7, 6, 5, 4, 3, 2):
 *
 *   16 32 48 64 80 96 112 128 | 160 192 224 256 | 320 384 448 512 |
 *   640 768 896 1024 | 1280 1536 1792 2048 | 2560 3072 3584 4096 |
 *   5120 6144 7168 8192 | 9360 10912 13104 16384 21840 32768
 *
 * A slab's free slots are a singly linked list of slot offsets (inside the
 * chunk) stored in the free slots themselves; slots above a high-water mark
 * (bump) were never handed out and are not on the list, so making a slab
 * writes nothing in the chunk. The slabs of a class that have free slots
 * are a doubly linked list of chunk indexes through their map entries,
 * headed in the header; allocation takes from the head slab, preferring
 * its listed (recently freed, warm) slots over bump slots. Larger requests
 * get a run of whole chunks. Free chunks are found in the bitmap, first fit
 * in address order from a hint below which no chunk is free; runs coalesce
 * by construction (a freed run just sets its bits).
 *
 * Per-allocation overhead: no header per object. Internal waste is the
 * rounding to a class: at most 15 bytes up to 128 (47% for a 17-byte
 * request), under 20% from 129 bytes to 8 KiB, under 34% from 8 KiB to
 * 32 KiB; a run wastes under one chunk (50% just above 32 KiB, under 6.25%
 * from 1 MiB on). Slab tails (64 KiB mod class size) are at most 4 KiB
 * (classes 5120 and 6144: 6.25%), under 2.5% for every other class, 0 for
 * powers of two. Alignment: every block is LUO_HEAP_ALIGN (16) aligned
 * relative to the base, runs page (4 KiB) aligned; the base itself is at least
 * 16-byte aligned (page-aligned in practice).
 *
 * Fragmentation: the usual slab weakness. A slab goes back to the free
 * chunks only when its last slot is freed, so one live 16-byte object can
 * hold a whole 64 KiB chunk. An emptied slab is kept (not released) while
 * it is the only slab of its class with free slots, so that a program
 * allocating and freeing one object at a time does not make and release a
 * chunk (and punch a hole) each time; at most one chunk per class, and
 * when no free chunk run fits a request these kept slabs are taken back
 * (O(slabs with free slots), on that failure path only) before giving up.
 *
 * Complexity: small alloc and free O(1) (the class from the request size
 * by arithmetic, slot indexes by multiplying with a reciprocal), plus the
 * bitmap search when a new slab is needed; large alloc O(nchunks / 64)
 * bitmap words in the worst case (starting at the hint, so usually O(1))
 * plus O(run length) map writes; large free O(run length);
 * luo_heap_check() O(nchunks); the lazy check of one slab (below) O(its
 * free slots), at most 4096.
 *
 * Lifecycle. luo_heap_format() on a fresh region. Then luo_heap_alloc(),
 * luo_heap_free() and luo_heap_set_root() as the program runs. Across the
 * exec the region is mapped again and luo_heap_check() is called on it
 * BEFORE anything else: the previous image is hostile input (README,
 * Security), so it validates the header (magic, version, sizes, offsets
 * recomputed from the size, the class table) and the whole chunk map in
 * O(nchunks): kinds known, runs inside the map and not overlapping, tails
 * belonging to their head, bitmap equal to the map, slab class ids, free
 * counts and list heads in range, class lists in range, acyclic, doubly
 * linked consistently and holding exactly the slabs with free slots, and
 * the counters (free and quarantined chunks, bytes in use) recomputed. It
 * allocates nothing, changes nothing in the region when it refuses
 * (-EBADMSG, @reason says where), and never crashes or loops on any bytes.
 *
 * The geometry is private. luo_heap_format() and luo_heap_check() fill a
 * struct luo_heap_geom in the CALLER's memory: the base, and the size,
 * offsets and chunk count computed from the size the caller mapped (never
 * read from the region; luo_heap_geometry() computes the same from a base
 * and size alone), and every other call takes that struct, not the base.
 * The header keeps its copy of the geometry for the next image's check to
 * compare, and this image never reads it back. The reason: the region is
 * shared and writable, and stays so after the check; a child the old
 * image forked (which still maps it), a stray write, or the program's own
 * bug can change any byte of it at any time, even during a call. A size
 * or data offset re-read from there would send allocations outside the
 * region; from private geometry they cannot go there. Every other value
 * the calls read from the region (class list heads, map entries, free
 * counts, slot links, the hint, the root, the epoch, the counters) is read
 * once and range-checked against the private geometry where it is used,
 * so such a write makes the heap refuse (the magic, the version or the
 * header size gone: EINVAL; a free count gone: ENOMEM), quarantine slabs,
 * lose chunks, count bad frees or report wrong statistics, and nothing
 * worse for memory safety: no access outside [base, base + size), no
 * endless loop. It can then also hand out blocks that overlap others:
 * integrity is only for a region nobody else writes.
 *
 * Slab free lists live in the data and are NOT walked there (that would be
 * O(data)). Instead luo_heap_check() bumps an epoch in the header and each
 * slab's map entry records the epoch its list was last validated in; the
 * first time luo_heap_alloc() or luo_heap_free() touches a slab whose epoch
 * differs, its list is walked, at most one step per listed slot: every
 * offset below the high-water mark and slot-aligned, every slot carrying
 * the free tag, the end reached after exactly the listed count (so no
 * cycle, no repeat). A slab that fails is quarantined: taken off its class
 * list, never allocated from, its chunk leaked (its live objects cannot be
 * known), frees into it ignored and counted as bad frees; allocation goes
 * on with another slab. The epoch is 8 bits in the map; luo_heap_check()
 * rewrites any slab entry that already holds the new epoch, so an image
 * cannot pre-mark its slabs as checked.
 *
 * What is guaranteed against a hostile region that passes the check (and
 * that nobody else writes after it: see above for what remains then): no
 * access outside [base, base + size), no crash, no endless loop, and no two
 * blocks handed out by this image overlapping each other (as long as it
 * frees each of them once, and not through an inherited alias), a region
 * that passes the check again after any sequence of calls. What cannot be
 * guaranteed: that blocks handed out here do not overlap objects the old
 * image still considered live (it could have declared them free), nor the
 * integrity of anything the old image stored; the arena's users validate
 * their own data.
 *
 * Frees. A pointer that is not the start of a live block of this heap is
 * ignored and counted (stats.bad_frees), never acted on: outside the data
 * area, in a free chunk, a run tail, a quarantined slab, not at a slot or
 * run start, a slot above the slab's high-water mark (never handed out),
 * and double frees, all detected exactly: a freed slot carries a 48-bit tag
 * next to its link (the tag is cleared when the slot is handed out); a
 * free that finds the tag in the slot walks the slab's list (O(free
 * slots), only then) to tell a double free from user data that happens to
 * look like the tag. Not detectable, here as in any allocator: a second
 * free after the block was handed out again (it frees the new owner's).
 * Writes into a freed block (use after free) are caught when the slot is
 * popped (tag, link or count wrong: the slab is quarantined) unless they
 * forge a link that stays consistent.
 *
 * Release. A chunk that becomes free (a freed run, an emptied slab) is
 * handed to the release callback passed to luo_heap_free(), with its offset
 * from the base and its length, so that the arena can punch a hole there
 * (kept slabs taken back by an allocation are not: they are reused at
 * once, and luo_heap_alloc() has no callback).
 * The heap keeps no metadata in free chunks and never reads a chunk's data
 * again before handing it out anew (a new slab starts with no listed slot),
 * so the bytes may read back as zeros, or as anything. The callback is
 * passed per call, not stored: function pointers and contexts are
 * addresses of one image and have no place in the region.
 *
 * Thread safety: none inside. The caller serializes every call on one
 * region with its own lock, which cannot live in the region: an image
 * switch could happen while it is held. The release callback runs under
 * that lock. The exception is the thread caches below, whose fast calls
 * take no lock.
 *
 * Errors: luo_heap_format() -EINVAL (bad base or size, no @ret_geom);
 * luo_heap_check() -EINVAL (NULL or misaligned base, region smaller than
 * a header, no @ret_geom) or -EBADMSG (anything wrong in the bytes); both
 * leave *@ret_geom zeroed, which every other call refuses;
 * luo_heap_geometry() -EINVAL (bad base or size). luo_heap_alloc() NULL
 * with errno ENOMEM (too large, full) or EINVAL (n == 0, no geometry, no
 * heap there any more); luo_heap_set_root() / luo_heap_stats() -EINVAL.
 * @reason, when not NULL, says why for every error.
 */

#include <stddef.h>
#include <stdint.h>

/* Bytes per data chunk: the unit of slabs, runs and release. */
#define LUO_HEAP_CHUNK (64u * 1024u)
/* Alignment of the base and of every block. */
#define LUO_HEAP_ALIGN 16u
/* Largest request served from a slab; larger ones get runs of chunks. */
#define LUO_HEAP_SMALL_MAX (32u * 1024u)
/* Size classes. */
#define LUO_HEAP_CLASSES 38u
/* Slots in one slab (16-byte class). */
#define LUO_HEAP_SLOTS_MAX (LUO_HEAP_CHUNK / LUO_HEAP_ALIGN)
/* The metadata is rounded up to pages; region sizes are multiples of it. */
#define LUO_HEAP_PAGE 4096u
/* Data chunks, at least (at least a run and a slab). */
#define LUO_HEAP_DATA_CHUNKS_MIN 2u
/* Data chunks, at most (1 TiB of data): indexes fit in 32 bits with room to spare. */
#define LUO_HEAP_CHUNKS_MAX (uint32_t)(((uint64_t)1 << 40) / LUO_HEAP_CHUNK)
/* Region sizes: a multiple of LUO_HEAP_PAGE in [MIN, MAX]; MAX leaves room for the metadata of 1 TiB. */
#define LUO_HEAP_SIZE_MIN ((size_t)LUO_HEAP_PAGE + LUO_HEAP_DATA_CHUNKS_MIN * LUO_HEAP_CHUNK)
#define LUO_HEAP_SIZE_MAX (((uint64_t)1 << 40) + ((uint64_t)1 << 30))

/*
 * DOC: the persisted format
 *
 * Everything below is read by the next image: changing it (or the class
 * table, which the header carries and luo_heap_check() compares) needs a
 * LUO_HEAP_VERSION bump. Native byte order; the region never leaves the
 * machine.
 */
#define LUO_HEAP_MAGIC UINT64_C(0x314145484f554c00) /* "\0LUOHEA1" */
#define LUO_HEAP_VERSION 2u /* 2: metadata rounded to pages, not chunks */

/* No chunk: ends of class lists, empty class heads. */
#define LUO_HEAP_NO_CHUNK UINT32_MAX
/* No slot: end of a slab's free list (never slot-aligned). */
#define LUO_HEAP_NO_SLOT UINT16_MAX
/*
 * A free slot's first 8 bytes: (LUO_HEAP_FREE_TAG << 16) | offset of the
 * next free slot in the chunk (LUO_HEAP_NO_SLOT at the end).
 */
#define LUO_HEAP_FREE_TAG UINT64_C(0x9e3779b97f4a)

/* struct luo_heap_chunk.kind */
enum {
	LUO_HEAP_KIND_FREE = 0,        /* in the bitmap; other fields meaningless */
	LUO_HEAP_KIND_RUN = 1,         /* first chunk of a run; next = length */
	LUO_HEAP_KIND_TAIL = 2,        /* other chunks of a run; prev = head */
	LUO_HEAP_KIND_QUARANTINED = 3, /* a slab found corrupt: never used again */
	LUO_HEAP_KIND_SLAB = 16,       /* + class index: a slab of that class */
};

/* One map entry per data chunk. */
struct luo_heap_chunk {
	uint8_t kind;   /* LUO_HEAP_KIND_* */
	uint8_t epoch;  /* slab: low 8 bits of the header epoch its list was validated in */
	uint16_t nfree; /* slab: free slots, listed + never handed out */
	uint16_t head;  /* slab: offset in the chunk of the first listed slot, or NO_SLOT */
	uint16_t bump;  /* slab: slots [bump, slots) were never handed out */
	uint32_t next;  /* slab with free slots: next in its class list; run: length */
	uint32_t prev;  /* slab with free slots: previous in its class list; tail: head */
};

/*
 * The header, at the region base. The geometry (size, the three offsets,
 * chunk_size, nchunks) is written for luo_heap_check() to compare with the
 * one it computes from the mapped size; no call reads it back after that
 * (struct luo_heap_geom).
 */
struct luo_heap {
	uint64_t magic;         /* LUO_HEAP_MAGIC */
	uint32_t version;       /* LUO_HEAP_VERSION */
	uint32_t header_size;   /* sizeof(struct luo_heap) */
	uint64_t size;          /* the region, bytes */
	uint64_t map_offset;    /* these three are recomputed from size and compared */
	uint64_t bitmap_offset;
	uint64_t data_offset;
	uint32_t chunk_size;    /* LUO_HEAP_CHUNK */
	uint32_t nchunks;       /* data chunks */
	uint32_t nclasses;      /* LUO_HEAP_CLASSES */
	uint32_t epoch;         /* bumped by each luo_heap_check() */
	uint64_t root;          /* offset of the root object, 0 = none */
	uint32_t hint;          /* no chunk below this one is free */
	uint32_t type_digest;   /* the root type's description digest, folded; 0 none (luo_arena_bind_type) */
	uint64_t chunks_free;
	uint64_t quarantined;   /* chunks */
	uint64_t bytes_in_use;  /* slots and runs handed out, quarantined slabs excluded */
	uint64_t bad_frees;
	uint32_t class_size[LUO_HEAP_CLASSES];
	uint32_t class_head[LUO_HEAP_CLASSES]; /* first slab with free slots, or NO_CHUNK */
};

_Static_assert(sizeof(struct luo_heap_chunk) == 16, "map entries are 16 bytes");
_Static_assert(sizeof(struct luo_heap) == 416, "the header is 416 bytes");

/*
 * Called with a chunk range that became free: @offset from the base (a
 * multiple of LUO_HEAP_PAGE) and @len (of LUO_HEAP_CHUNK). The heap will not read those
 * bytes again before handing them out anew.
 */
typedef void (*luo_heap_release_fn)(void *ctx, size_t offset, size_t len);

struct luo_heap_stats {
	size_t bytes_in_use;   /* handed out, rounded to class or chunks */
	size_t chunks_in_use;  /* slabs, runs and quarantined chunks */
	size_t chunks_free;
	size_t metadata_bytes; /* header, map, bitmap and rounding: data_offset */
	size_t bad_frees;      /* frees ignored since format */
	size_t quarantined;    /* chunks, since format */
};

/*
 * The geometry of a heap, private to the caller (see "The geometry is
 * private" above): filled by luo_heap_format() or luo_heap_check() from
 * the size the caller mapped, then passed to every other call, which takes
 * every offset, bound and count from it and none from the region. Keep it
 * in the caller's own memory, never in the region; do not change it.
 */
struct luo_heap_geom {
	void *base;             /* the region */
	uint64_t size;          /* the region, bytes */
	uint64_t map_offset;
	uint64_t bitmap_offset;
	uint64_t data_offset;   /* data chunk 0 */
	uint32_t nchunks;       /* data chunks */
};

/*
 * The region size whose heap holds exactly @data_bytes of data chunks (a
 * multiple of LUO_HEAP_CHUNK, LUO_HEAP_DATA_CHUNKS_MIN..LUO_HEAP_CHUNKS_MAX
 * chunks): the data plus the metadata pages. 0 for any other @data_bytes.
 */
uint64_t luo_heap_region_size(uint64_t data_bytes);

/*
 * Make a fresh heap in [@base, @base + @size): @size a multiple of
 * LUO_HEAP_PAGE in [LUO_HEAP_SIZE_MIN, LUO_HEAP_SIZE_MAX], @base
 * LUO_HEAP_ALIGN aligned. Writes the metadata chunks only, and the
 * geometry to *@ret_geom. 0 or -EINVAL.
 */
int luo_heap_format(void *base, size_t size, struct luo_heap_geom *ret_geom, char *reason, size_t reason_len);

/*
 * Validate an incoming heap of @size bytes at @base, see the DOC above;
 * on success bump its epoch and write the geometry (computed from @size)
 * to *@ret_geom. 0, -EINVAL or -EBADMSG.
 */
int luo_heap_check(void *base, size_t size, struct luo_heap_geom *ret_geom, char *reason, size_t reason_len);

/*
 * luo_heap_check() in two steps, for a caller that defers the O(nchunks)
 * part (arena.c: to the first allocator call, out of the blackout).
 * luo_heap_check_header() checks the header alone in O(1) -- magic,
 * version, geometry, class table, class heads, root and hint in range --
 * and fills *@ret_geom (zeroed on failure: 0, -EINVAL, -EBADMSG). Until
 * luo_heap_check_map() has returned 0 on that geometry, the caller must
 * make no other call with it but luo_heap_root(), which range-checks what
 * it reads. luo_heap_check_map() is the rest of the check: the map, the
 * bitmap, the class lists, the counters, then the epoch bump. 0, -EINVAL
 * (no geometry) or -EBADMSG; it changes nothing in the region when it
 * refuses, and the caller must then make no call but luo_heap_root().
 */
int luo_heap_check_header(void *base, size_t size, struct luo_heap_geom *ret_geom, char *reason, size_t reason_len);
int luo_heap_check_map(const struct luo_heap_geom *geom, char *reason, size_t reason_len);

/*
 * The geometry of a region of @size bytes at @base, from @size alone: the
 * region is neither read nor validated. For a caller that keeps only the
 * base and size of a heap formatted or checked earlier in this image (the
 * calls still check the magic). 0 or -EINVAL.
 */
int luo_heap_geometry(void *base, size_t size, struct luo_heap_geom *ret_geom);

/* @n bytes, 16-byte aligned, or NULL with errno ENOMEM or EINVAL. */
void *luo_heap_alloc(const struct luo_heap_geom *geom, size_t n);

/*
 * Free @p (NULL is fine; anything that is not a live block is ignored and
 * counted). Chunks that become free are passed to @release (may be NULL).
 */
void luo_heap_free(const struct luo_heap_geom *geom, void *p, luo_heap_release_fn release, void *ctx);

/* The root object: NULL, or a pointer into the data area. 0 or -EINVAL. */
int luo_heap_set_root(const struct luo_heap_geom *geom, void *p);
void *luo_heap_root(const struct luo_heap_geom *geom);
/* The type digest in the header: any value is valid (0: none recorded). */
uint32_t luo_heap_type_digest(const struct luo_heap_geom *geom);
void luo_heap_set_type_digest(const struct luo_heap_geom *geom, uint32_t digest);

/* 0, or -EINVAL if @geom is no geometry or its region holds no heap. */
int luo_heap_stats(const struct luo_heap_geom *geom, struct luo_heap_stats *ret_stats);

/*
 * DOC: thread caches
 *
 * A thread cache (struct luo_heap_tcache, in the caller's private memory,
 * one per thread and heap) holds up to LUO_HEAP_TCACHE_BLOCKS free blocks
 * of each of the LUO_HEAP_TCACHE_CLASSES smallest classes (16..256 bytes),
 * so that most small allocations and frees take no lock:
 * luo_heap_tcache_alloc() pops a block and luo_heap_tcache_free() pushes
 * one, touching nothing shared but the block and (for the free) a read of
 * its map entry. When a cache is empty the caller takes its lock and calls
 * luo_heap_tcache_refill(), which allocates LUO_HEAP_TCACHE_BATCH blocks
 * at once; when it is full, luo_heap_tcache_free_slow() gives the older
 * half back to the heap. luo_heap_tcache_flush() gives everything back:
 * the caller does it when the thread exits, when the heap is handed over
 * (the arena's freeze, before the exec) and when it is closed.
 *
 * The heap itself does not know about caches: a cached block is a block
 * in use (stats.bytes_in_use counts it), so the region stays exactly as
 * valid as without caches, and luo_heap_check() accepts it. What a cache
 * holds when the process ends without a flush (a crash, or a thread still
 * caching at an exec the caller did not flush for) is leaked in the next
 * image: never handed out twice.
 *
 * Frees. luo_heap_tcache_free() caches a block only if its map entry (read
 * once, checked against the private geometry) says it is a slot, below
 * the high-water mark, of a cached class, of a slab validated in this
 * epoch; anything else goes to luo_heap_free() under the lock
 * (LUO_HEAP_TCACHE_HEAP), with its exact checks. A cached block carries
 * the cache's key in its first 8 bytes: a random 64-bit value the caller
 * picks per heap (every thread's cache of one heap shares it), never
 * stored in the region but in cached blocks, and never the heap's free
 * tag; a block is cleared when handed out. So a second free of a block
 * while it sits in any thread's cache finds the key and is ignored and
 * counted as a bad free (LUO_HEAP_TCACHE_DOUBLE); user data equal to the
 * key is a 2^-64 chance, and then the block leaks (counted the same).
 * A second free after the cache gave the block back to the heap finds the
 * heap's free tag and goes to the heap's own exact check. A block whose
 * key was overwritten while cached (a write after free) is dropped when
 * popped, not handed out (leaked, counted in @damaged).
 */

/* Cached classes: 16..256 bytes. */
#define LUO_HEAP_TCACHE_CLASSES 12u
#define LUO_HEAP_TCACHE_SIZE_MAX 256u
/* Free blocks a cache holds per class, at most: 64 x 256 B = 16 KiB, 98 KiB for all classes. */
#define LUO_HEAP_TCACHE_BLOCKS 64u
/* Blocks one refill allocates, and one trim gives back. */
#define LUO_HEAP_TCACHE_BATCH (LUO_HEAP_TCACHE_BLOCKS / 2)

struct luo_heap_tcache {
	uint64_t key;      /* the heap's cache key, see above */
	uint64_t damaged;  /* blocks dropped: overwritten while cached */
	uint32_t count[LUO_HEAP_TCACHE_CLASSES];
	void *block[LUO_HEAP_TCACHE_CLASSES][LUO_HEAP_TCACHE_BLOCKS];
};

/* luo_heap_tcache_free() results other than 0 (cached): what the slow call does. */
enum {
	LUO_HEAP_TCACHE_CACHED = 0,
	LUO_HEAP_TCACHE_HEAP = 1,   /* not cacheable: luo_heap_free() */
	LUO_HEAP_TCACHE_FULL = 2,   /* its class is full: trim, then cache */
	LUO_HEAP_TCACHE_DOUBLE = 3, /* carries the key: a double free, ignored and counted */
};

/* An empty cache for the heap whose cache key is @key (any value; adjusted to never look free). */
void luo_heap_tcache_init(struct luo_heap_tcache *tc, uint64_t key);

/*
 * No lock. A cached block of @n bytes' class, cleared, or NULL: @n not a
 * cached size, or none cached (then luo_heap_tcache_refill()).
 */
void *luo_heap_tcache_alloc(struct luo_heap_tcache *tc, size_t n);

/*
 * Under the heap's lock: luo_heap_alloc(@n), and for a cached size up to
 * LUO_HEAP_TCACHE_BATCH - 1 more blocks of its class into @tc. When the
 * heap is full, @tc's blocks are given back first and the allocation tried
 * again. NULL with errno as luo_heap_alloc().
 */
void *luo_heap_tcache_refill(const struct luo_heap_geom *geom, struct luo_heap_tcache *tc, size_t n);

/* No lock: cache @p, or say which slow call must take it (LUO_HEAP_TCACHE_*). */
int luo_heap_tcache_free(const struct luo_heap_geom *geom, struct luo_heap_tcache *tc, void *p);

/* Under the heap's lock: finish luo_heap_tcache_free()'s result @how for @p. */
void luo_heap_tcache_free_slow(const struct luo_heap_geom *geom, struct luo_heap_tcache *tc, void *p, int how,
			       luo_heap_release_fn release, void *ctx);

/* Under the heap's lock: every cached block back to the heap; @tc is left empty. */
void luo_heap_tcache_flush(const struct luo_heap_geom *geom, struct luo_heap_tcache *tc,
			   luo_heap_release_fn release, void *ctx);

#endif /* LUO_HEAP_H */
