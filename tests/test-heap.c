/* SPDX-License-Identifier: MIT */
/*
 * The in-region heap (src/lib/heap.c) as an arena would use it: formats,
 * allocation patterns checked against a shadow table (no overlap, contents
 * intact), large runs, a full heap, frees of garbage, the root, release with
 * simulated and real punch-holes, a copy of the region at another address,
 * writes after free; then hostile regions: every header field, one lie at a
 * time in the chunk map, seeded mutations of the map (accepted ones are then
 * used and must stay consistent), damaged slab free lists; checked heaps
 * whose header and map are scribbled over after the check, between calls
 * and from a concurrent thread (the geometry is private: nothing may land
 * outside the region). Ends with a throughput comparison against glibc
 * malloc, printed, not asserted.
 *
 * Regions sit between guard pages (the scribbled ones before a 1 TiB
 * fence where there is the address space). LUO_HEAP_TEST_SCALE=N (default 1)
 * multiplies iteration counts, 0 runs a tenth (a quick valgrind pass);
 * LUO_HEAP_TEST_SEED=S shifts the seeds (printed) for longer campaigns.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "heap.h"
#include "test-util.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)
#define GRANULE LUO_HEAP_ALIGN

static unsigned scale = 1;
static uint64_t seed_base;

/* Iterations: @n at scale 1, n / 10 at scale 0 (valgrind). */
static unsigned long iters(unsigned long n)
{
	return scale == 0 ? (n / 10 ? n / 10 : 1) : n * scale;
}

__attribute__((format(printf, 1, 2))) static void ok(const char *fmt, ...)
{
	va_list ap;

	printf("ok - ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* xorshift64: seeded, so every failure can be replayed. */
struct rng {
	uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
	r->s ^= r->s << 13;
	r->s ^= r->s >> 7;
	r->s ^= r->s << 17;
	return r->s;
}

static uint64_t rng_below(struct rng *r, uint64_t n)
{
	return rng_next(r) % n;
}

static struct rng rng_seed(uint64_t seed)
{
	struct rng r = { seed * UINT64_C(0x9E3779B97F4A7C15) + 1 };

	rng_next(&r);
	return r;
}

/* A region between two inaccessible guard pages: a stray access faults. */
static char *region_map(size_t size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	char *p = mmap(NULL, size + 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	CHECK(p != MAP_FAILED);
	CHECK(mprotect(p + page, size, PROT_READ | PROT_WRITE) == 0);
	return p + page;
}

static void region_unmap(void *p, size_t size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	CHECK(munmap((char *)p - page, size + 2 * page) == 0);
}

static struct luo_heap_stats stats(const struct luo_heap_geom *g)
{
	struct luo_heap_stats s;

	CHECK_OK(luo_heap_stats(g, &s));
	return s;
}

static struct luo_heap_geom format_ok(void *base, size_t size)
{
	struct luo_heap_geom g;

	CHECK_OK(luo_heap_format(base, size, &g, NULL, 0));
	CHECK(g.base == base && g.size == size);
	return g;
}

/* Check the heap at @base, exit on failure; its geometry. */
static struct luo_heap_geom check_new(void *base, size_t size)
{
	char reason[256] = "";
	struct luo_heap_geom g;
	int r = luo_heap_check(base, size, &g, reason, sizeof(reason));

	if (r != 0) {
		fprintf(stderr, "luo_heap_check: %d: %s\n", r, reason);
		exit(1);
	}
	CHECK(g.base == base && g.size == size);
	return g;
}

/* Check the heap of @g again: it must pass, with the same geometry. */
static void check_ok(const struct luo_heap_geom *g)
{
	struct luo_heap_geom again = check_new(g->base, g->size);

	CHECK(memcmp(&again, g, sizeof(again)) == 0);
}

static struct luo_heap *hdr(void *base)
{
	return base;
}

static struct luo_heap_chunk *map_of(void *base)
{
	return (struct luo_heap_chunk *)((char *)base + hdr(base)->map_offset);
}

/* What a request of @n bytes really takes: its class, or whole chunks. */
static size_t rounded(void *base, size_t n)
{
	if (n > LUO_HEAP_SMALL_MAX)
		return (n + LUO_HEAP_CHUNK - 1) / LUO_HEAP_CHUNK * LUO_HEAP_CHUNK;
	for (unsigned k = 0; k < LUO_HEAP_CLASSES; k++)
		if (hdr(base)->class_size[k] >= n)
			return hdr(base)->class_size[k];
	abort();
}

/*
 * The shadow table: every live block with its fill byte, and one byte per
 * 16-byte granule of the region saying it belongs to a live block. A block
 * handed out over an owned granule is an overlap.
 */
struct block {
	char *p;
	size_t n;
	uint8_t pat;
};

struct tracker {
	struct luo_heap_geom g;
	char *base;
	size_t size;
	uint8_t *owned;
	struct block *blocks;
	size_t n, cap;
	size_t expect_bytes; /* bytes_in_use the heap should report */
	uint8_t next_pat;
	/* release */
	bool zero_on_release;
	int punch_fd;
	size_t releases;
	size_t released_bytes;
	size_t last_release_off, last_release_len;
};

static void tracker_init(struct tracker *t, const struct luo_heap_geom *g)
{
	*t = (struct tracker){ .g = *g, .base = g->base, .size = g->size, .punch_fd = -1, .next_pat = 1 };
	t->owned = calloc(t->size / GRANULE, 1);
	CHECK(t->owned);
}

static void tracker_fini(struct tracker *t)
{
	free(t->owned);
	free(t->blocks);
	*t = (struct tracker){ .punch_fd = -1 };
}

static void on_release(void *ctx, size_t offset, size_t len)
{
	struct tracker *t = ctx;
	size_t data = t->g.data_offset;

	CHECK(offset >= data && (offset - data) % LUO_HEAP_CHUNK == 0 && len % LUO_HEAP_CHUNK == 0 && len > 0);
	CHECK(offset % LUO_HEAP_PAGE == 0); /* punch-hole works on pages */
	CHECK(offset >= data && offset + len <= t->size);
	/* No live block in there. */
	for (size_t g = offset / GRANULE; g < (offset + len) / GRANULE; g++)
		CHECK(!t->owned[g]);
	t->releases++;
	t->released_bytes += len;
	t->last_release_off = offset;
	t->last_release_len = len;
	if (t->zero_on_release)
		memset(t->base + offset, 0, len); /* what a punched hole reads back as */
	if (t->punch_fd >= 0)
		CHECK(fallocate(t->punch_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
				(off_t)len) == 0);
}

static void mark(struct tracker *t, const char *p, size_t n, uint8_t v)
{
	size_t g0 = (size_t)(p - t->base) / GRANULE, g1 = g0 + (n + GRANULE - 1) / GRANULE;

	for (size_t g = g0; g < g1; g++) {
		if (v)
			CHECK(!t->owned[g]); /* overlap */
		t->owned[g] = v;
	}
}

static void track(struct tracker *t, char *p, size_t n)
{
	uintptr_t a = (uintptr_t)p;

	CHECK(a % LUO_HEAP_ALIGN == 0);
	CHECK(a >= (uintptr_t)t->base + t->g.data_offset && a + n <= (uintptr_t)t->base + t->size);
	if (n > LUO_HEAP_SMALL_MAX) /* runs start on a chunk of the data area */
		CHECK((a - (uintptr_t)t->base - t->g.data_offset) % LUO_HEAP_CHUNK == 0);
	mark(t, p, n, 1);
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 1024;
		t->blocks = realloc(t->blocks, t->cap * sizeof(*t->blocks));
		CHECK(t->blocks);
	}
	t->next_pat = (uint8_t)(t->next_pat * 7 + 3);
	if (t->next_pat == 0)
		t->next_pat = 0x5a;
	t->blocks[t->n++] = (struct block){ p, n, t->next_pat };
	memset(p, t->next_pat, n);
	t->expect_bytes += rounded(t->base, n);
}

/* Allocate @n bytes and track them; NULL (ENOMEM) when full. */
static char *talloc(struct tracker *t, size_t n)
{
	char *p;

	errno = 0;
	p = luo_heap_alloc(&t->g, n);
	if (!p) {
		CHECK_EQ(errno, ENOMEM);
		return NULL;
	}
	track(t, p, n);
	return p;
}

static void check_pattern(const struct block *b)
{
	for (size_t i = 0; i < b->n; i++)
		if ((uint8_t)b->p[i] != b->pat) {
			fprintf(stderr, "block %p (%zu bytes): byte %zu is %#x, expected %#x\n", (void *)b->p, b->n, i,
				(uint8_t)b->p[i], b->pat);
			exit(1);
		}
}

/*
 * Free block @idx after checking its contents. Returns false if the heap
 * ignored the free (bad_frees went up): the block then stays owned, as the
 * heap will never hand its bytes out again.
 */
static bool tfree(struct tracker *t, size_t idx)
{
	struct block b = t->blocks[idx];
	size_t bad = stats(&t->g).bad_frees;
	bool freed;

	check_pattern(&b);
	t->blocks[idx] = t->blocks[--t->n];
	/* Unmark first: release() checks that no live block is in a freed chunk. */
	mark(t, b.p, b.n, 0);
	luo_heap_free(&t->g, b.p, on_release, t);
	freed = stats(&t->g).bad_frees == bad;
	/* Either way no longer in use: a quarantined slab's blocks are not counted. */
	t->expect_bytes -= rounded(t->base, b.n);
	if (!freed)
		mark(t, b.p, b.n, 1);
	return freed;
}

static bool tfree_ptr(struct tracker *t, const char *p)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->blocks[i].p == p)
			return tfree(t, i);
	abort();
}

static void tfree_all(struct tracker *t)
{
	while (t->n > 0)
		CHECK(tfree(t, t->n - 1));
}

static void check_bytes(struct tracker *t)
{
	CHECK_EQ(stats(&t->g).bytes_in_use, t->expect_bytes);
}

/* Sizes as a program asks for them: mostly small, some mid, a few runs. */
static size_t random_size(struct rng *r)
{
	uint64_t d = rng_below(r, 100);

	if (d < 70)
		return 1 + rng_below(r, 256);
	if (d < 90)
		return 257 + rng_below(r, 8192 - 256);
	if (d < 97)
		return 8193 + rng_below(r, LUO_HEAP_SMALL_MAX + 8192 - 8192);
	return 40 * KiB + rng_below(r, 1 * MiB);
}

/* @ops random allocations and frees, at most @target blocks live. */
static void workload(struct tracker *t, struct rng *r, unsigned long ops, size_t target)
{
	for (unsigned long k = 0; k < ops; k++) {
		/* Free with probability n / target: about target / 2 blocks live. */
		if (t->n > 0 && (t->n >= target || rng_below(r, target) < t->n)) {
			tfree(t, rng_below(r, t->n));
		} else if (!talloc(t, random_size(r)) && t->n > 0) {
			tfree(t, rng_below(r, t->n)); /* full: make room */
		}
	}
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void test_format(void)
{
	size_t size = 4 * MiB;
	char *base = region_map(size + LUO_HEAP_CHUNK);
	char reason[256];
	struct luo_heap_stats s;
	struct luo_heap_geom g, zero = { 0 };
	double t0, t_check;

	CHECK_ERR(luo_heap_format(NULL, size, &g, reason, sizeof(reason)), EINVAL);
	CHECK_ERR(luo_heap_format(base + 8, size, &g, reason, sizeof(reason)), EINVAL);
	CHECK_ERR(luo_heap_format(base, size - 1024, &g, reason, sizeof(reason)), EINVAL);
	CHECK(strstr(reason, "multiple"));
	CHECK(memcmp(&g, &zero, sizeof(g)) == 0); /* a refusal leaves no geometry to use */
	CHECK_ERR(luo_heap_format(base, LUO_HEAP_SIZE_MIN - LUO_HEAP_CHUNK, &g, reason, sizeof(reason)), EINVAL);
	CHECK_ERR(luo_heap_format(base, (size_t)LUO_HEAP_SIZE_MAX + LUO_HEAP_CHUNK, &g, reason, sizeof(reason)),
		  EINVAL);
	CHECK_ERR(luo_heap_format(base, 0, &g, NULL, 0), EINVAL);
	CHECK_ERR(luo_heap_format(base, size, NULL, NULL, 0), EINVAL);
	CHECK_ERR(luo_heap_geometry(base, size - 1024, &g), EINVAL);
	CHECK_ERR(luo_heap_geometry(base + 8, size, &g), EINVAL);
	CHECK_ERR(luo_heap_geometry(base, size, NULL), EINVAL);

	/* Not a heap: refused, and the calls that trust a checked heap do nothing. */
	CHECK_ERR(luo_heap_check(base, size, &g, reason, sizeof(reason)), EBADMSG);
	CHECK(strstr(reason, "magic"));
	CHECK(memcmp(&g, &zero, sizeof(g)) == 0);
	CHECK_ERR(luo_heap_check(NULL, size, &g, reason, sizeof(reason)), EINVAL);
	CHECK_ERR(luo_heap_check(base, 16, &g, reason, sizeof(reason)), EINVAL);
	CHECK_ERR(luo_heap_check(base, size, NULL, reason, sizeof(reason)), EINVAL);
	/* With no geometry (the zeroed one a refusal leaves, or none), and with the geometry of no heap. */
	for (int k = 0; k < 3; k++) {
		const struct luo_heap_geom *pg = k == 0 ? &zero : k == 1 ? NULL : &g;

		if (k == 2)
			CHECK_OK(luo_heap_geometry(base, size, &g));
		errno = 0;
		CHECK(!luo_heap_alloc(pg, 16) && errno == EINVAL);
		CHECK_ERR(luo_heap_stats(pg, &s), EINVAL);
		CHECK_ERR(luo_heap_set_root(pg, base + LUO_HEAP_CHUNK), EINVAL);
		CHECK(!luo_heap_root(pg));
		luo_heap_free(pg, base + LUO_HEAP_CHUNK, NULL, NULL);
	}
	for (size_t i = 0; i < size; i++)
		CHECK(base[i] == 0); /* nothing written */

	/* The smallest heap: one metadata page, two data chunks. */
	CHECK_OK(luo_heap_format(base, LUO_HEAP_SIZE_MIN, &g, reason, sizeof(reason)));
	check_ok(&g);
	s = stats(&g);
	CHECK_EQ(s.chunks_free, LUO_HEAP_DATA_CHUNKS_MIN);
	CHECK_EQ(s.metadata_bytes, LUO_HEAP_PAGE);

	/* The region for exactly 4 MiB of data: 64 chunks, the metadata in one page on top. */
	CHECK_EQ(luo_heap_region_size(size), size + LUO_HEAP_PAGE);
	CHECK_EQ(luo_heap_region_size(size + 1), 0);
	CHECK_EQ(luo_heap_region_size(LUO_HEAP_CHUNK), 0);
	CHECK_EQ(luo_heap_region_size(((uint64_t)LUO_HEAP_CHUNKS_MAX + 1) * LUO_HEAP_CHUNK), 0);
	CHECK(luo_heap_region_size((uint64_t)LUO_HEAP_CHUNKS_MAX * LUO_HEAP_CHUNK) <= LUO_HEAP_SIZE_MAX);
	CHECK_OK(luo_heap_format(base, size + LUO_HEAP_PAGE, &g, reason, sizeof(reason)));
	check_ok(&g);
	s = stats(&g);
	CHECK_EQ(s.chunks_free, size / LUO_HEAP_CHUNK);
	CHECK_EQ(s.metadata_bytes, LUO_HEAP_PAGE);
	/* Between two exact sizes: as many chunks as fit, the rest unused. */
	CHECK_OK(luo_heap_format(base, size + LUO_HEAP_CHUNK, &g, reason, sizeof(reason)));
	check_ok(&g);
	CHECK_EQ(stats(&g).chunks_free, size / LUO_HEAP_CHUNK);

	CHECK_OK(luo_heap_format(base, size, &g, reason, sizeof(reason)));
	check_ok(&g);
	{
		struct luo_heap_geom computed;

		/* luo_heap_geometry() computes the same, from the size alone. */
		CHECK_OK(luo_heap_geometry(base, size, &computed));
		CHECK(memcmp(&computed, &g, sizeof(g)) == 0);
	}
	s = stats(&g);
	CHECK_EQ(s.chunks_free, size / LUO_HEAP_CHUNK - 1);
	CHECK_EQ(s.chunks_in_use + s.bytes_in_use + s.bad_frees + s.quarantined, 0);
	errno = 0;
	CHECK(!luo_heap_alloc(&g, 0) && errno == EINVAL);
	/* Refused on a size other than the one formatted. */
	CHECK_ERR(luo_heap_check(base, size + LUO_HEAP_CHUNK, &g, reason, sizeof(reason)), EBADMSG);
	CHECK_ERR(luo_heap_check(base, size - 1, &g, reason, sizeof(reason)), EBADMSG);
	region_unmap(base, size + LUO_HEAP_CHUNK);
	ok("format: sizes, alignment, limits refused; minimal and 4 MiB heaps check clean");

	/* Metadata: an 8 GiB region, sparse (only the metadata is written). */
	size = 8192 * MiB;
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED) {
		ok("# skip 8 GiB metadata: cannot map 8 GiB here");
		return;
	}
	CHECK_OK(luo_heap_format(base, size, &g, reason, sizeof(reason)));
	check_ok(&g);
	t0 = now_ns();
	check_ok(&g);
	t_check = now_ns() - t0;
	s = stats(&g);
	CHECK(s.metadata_bytes * 1000 < size);
	{
		void *small = luo_heap_alloc(&g, 100), *big = luo_heap_alloc(&g, 3 * MiB);

		CHECK(small && big);
		luo_heap_free(&g, big, NULL, NULL);
		luo_heap_free(&g, small, NULL, NULL);
		check_ok(&g);
	}
	ok("format: 8 GiB region: %zu data chunks, metadata %zu bytes (%.4f%%), luo_heap_check %.0f us",
	   s.chunks_free, s.metadata_bytes, 100.0 * (double)s.metadata_bytes / (double)size, t_check / 1000);
	CHECK(munmap(base, size) == 0);
}

/* Every class boundary and a spread of sizes: right rounding, room for n bytes. */
static void test_sizes(void)
{
	size_t size = 32 * MiB;
	char *base = region_map(size);
	struct tracker t;
	size_t count = 0;
	struct luo_heap_geom g;

	g = format_ok(base, size);
	tracker_init(&t, &g);
	for (unsigned k = 0; k < LUO_HEAP_CLASSES; k++) {
		size_t c = hdr(base)->class_size[k];

		for (size_t n = c - 1; n <= c + 1; n++) {
			CHECK(talloc(&t, n));
			CHECK(talloc(&t, n));
			count += 2;
		}
	}
	for (size_t n = 1; n <= 3 * LUO_HEAP_CHUNK; n += 1 + n / 3) {
		CHECK(talloc(&t, n));
		count++;
	}
	check_bytes(&t);
	check_ok(&g);
	for (size_t i = 0; i < t.n; i++)
		check_pattern(&t.blocks[i]);
	tfree_all(&t);
	check_bytes(&t);
	CHECK_EQ(stats(&g).bytes_in_use, 0);
	CHECK_EQ(stats(&g).bad_frees, 0);
	check_ok(&g);
	tracker_fini(&t);
	region_unmap(base, size);
	ok("sizes: %zu blocks at every class boundary and 1 B..192 KiB, rounded as documented", count);
}

/* Random allocations and frees; released chunks zeroed as a punched hole reads. */
static void test_random(uint64_t seed)
{
	size_t size = 64 * MiB;
	char *base = region_map(size);
	struct rng r = rng_seed(seed);
	unsigned long ops = iters(200000), done = 0;
	struct tracker t;
	struct luo_heap_stats s;
	struct luo_heap_geom g;

	g = format_ok(base, size);
	tracker_init(&t, &g);
	t.zero_on_release = true;
	while (done < ops) {
		unsigned long step = ops - done < 20000 ? ops - done : 20000;

		workload(&t, &r, step, 2000 + rng_below(&r, 4000));
		done += step;
		check_bytes(&t);
		/* A check in the middle: every slab's list is walked again, and passes. */
		check_ok(&g);
		CHECK_EQ(stats(&g).quarantined, 0);
		CHECK_EQ(stats(&g).bad_frees, 0);
	}
	for (size_t i = 0; i < t.n; i++)
		check_pattern(&t.blocks[i]);
	tfree_all(&t);
	s = stats(&g);
	CHECK_EQ(s.bytes_in_use, 0);
	/* All chunks back but the one emptied slab each class may keep. */
	CHECK(s.chunks_in_use <= LUO_HEAP_CLASSES);
	CHECK(t.releases > 0);
	check_ok(&g);
	/* And the whole data area as one run: the kept slabs are reclaimed. */
	CHECK(talloc(&t, (size_t)hdr(base)->nchunks * LUO_HEAP_CHUNK));
	tfree_all(&t);
	check_ok(&g);
	ok("random: seed %" PRIu64 ", %lu ops, no overlap, contents intact, %zu releases (zeroed), checks clean",
	   seed, ops, t.releases);
	tracker_fini(&t);
	region_unmap(base, size);
}

static void test_large(void)
{
	size_t size = 4 * MiB;
	char *base = region_map(size);
	uint32_t n;
	struct tracker t;
	char **p;
	struct luo_heap_geom g;

	g = format_ok(base, size);
	n = hdr(base)->nchunks;
	tracker_init(&t, &g);

	CHECK(talloc(&t, (size_t)n * LUO_HEAP_CHUNK));
	CHECK(!talloc(&t, 1)); /* not even a slab */
	tfree_all(&t);
	CHECK(!talloc(&t, (size_t)n * LUO_HEAP_CHUNK + 1));
	CHECK(!talloc(&t, SIZE_MAX));
	CHECK(!talloc(&t, SIZE_MAX - LUO_HEAP_CHUNK + 2));

	/* One chunk each, in address order (first fit). */
	p = calloc(n, sizeof(*p));
	CHECK(p);
	for (uint32_t i = 0; i < n; i++) {
		p[i] = luo_heap_alloc(&g, LUO_HEAP_CHUNK);
		CHECK(p[i] == base + hdr(base)->data_offset + (size_t)i * LUO_HEAP_CHUNK);
	}
	errno = 0;
	CHECK(!luo_heap_alloc(&g, LUO_HEAP_CHUNK) && errno == ENOMEM);
	for (uint32_t i = 0; i < n; i += 2)
		luo_heap_free(&g, p[i], NULL, NULL);
	/* Holes of one chunk: two do not fit, one goes to the lowest hole. */
	errno = 0;
	CHECK(!luo_heap_alloc(&g, 2 * LUO_HEAP_CHUNK) && errno == ENOMEM);
	luo_heap_free(&g, p[5], NULL, NULL);
	CHECK(luo_heap_alloc(&g, 2 * LUO_HEAP_CHUNK + 1) == p[4]); /* 4, 5, 6 free: 3 chunks */
	CHECK(luo_heap_alloc(&g, LUO_HEAP_CHUNK) == p[0]);
	check_ok(&g);
	luo_heap_free(&g, p[4], NULL, NULL);
	luo_heap_free(&g, p[0], NULL, NULL);
	for (uint32_t i = 1; i < n; i += 2)
		if (i != 5)
			luo_heap_free(&g, p[i], NULL, NULL);
	CHECK_EQ(stats(&g).chunks_free, n);
	CHECK_EQ(stats(&g).bad_frees, 0);
	/* Coalesced: the whole area again. */
	CHECK(talloc(&t, (size_t)n * LUO_HEAP_CHUNK));
	tfree_all(&t);
	check_ok(&g);
	free(p);
	tracker_fini(&t);
	region_unmap(base, size);
	ok("large: runs first fit in address order, coalesce, whole-area run, too large refused (ENOMEM)");
}

static void test_full(void)
{
	size_t size = 1 * MiB;
	char *base = region_map(size);
	uint32_t n;
	size_t count = 0;
	struct tracker t;
	struct luo_heap_geom g;

	g = format_ok(base, size);
	n = hdr(base)->nchunks;
	tracker_init(&t, &g);
	while (talloc(&t, 100))
		count++;
	CHECK_EQ(count, (size_t)n * (LUO_HEAP_CHUNK / 112));
	CHECK(!talloc(&t, 16));
	CHECK(!talloc(&t, LUO_HEAP_CHUNK));
	CHECK_EQ(stats(&g).chunks_free, 0);
	check_bytes(&t);
	check_ok(&g);
	tfree_all(&t);
	CHECK_EQ(stats(&g).chunks_free, n - 1); /* one emptied slab kept */
	CHECK(talloc(&t, (size_t)n * LUO_HEAP_CHUNK));
	tfree_all(&t);
	check_ok(&g);
	tracker_fini(&t);
	region_unmap(base, size);
	ok("full: %zu blocks of 100 B fill %u chunks, then NULL/ENOMEM; all back after freeing", count, n);
}

static void test_bad_frees(void)
{
	size_t size = 2 * MiB;
	char *base = region_map(size);
	struct tracker t;
	char *a, *b, *c, *run, *lone, *heap_ptr = malloc(32);
	char stack_var[32];
	size_t expect = 0;
	uint64_t tag = LUO_HEAP_FREE_TAG << 16 | 0x40;
	struct luo_heap_geom g;

	g = format_ok(base, size);
	tracker_init(&t, &g);
	a = talloc(&t, 64);
	b = talloc(&t, 64);
	c = talloc(&t, 64);
	run = talloc(&t, 3 * LUO_HEAP_CHUNK);
	lone = talloc(&t, 48); /* a fresh slab: slot 0 used, the rest never */
	CHECK(a && b && c && run && lone && heap_ptr);

	void *garbage[] = {
		(void *)((uintptr_t)base - 16),
		base,
		base + 64,
		base + hdr(base)->map_offset,
		base + hdr(base)->data_offset - 16,
		a + 16,
		a + 8,
		a + 1,
		lone + 48,                    /* never handed out */
		lone + LUO_HEAP_CHUNK - 16,   /* the slab's tail, no slot */
		run + 16,
		run + LUO_HEAP_CHUNK,         /* a run tail */
		run + 2 * LUO_HEAP_CHUNK + 64,
		lone + LUO_HEAP_CHUNK,        /* a free chunk */
		base + size - 16,
		base + size,
		stack_var,
		heap_ptr,
	};
	for (size_t i = 0; i < ARRAY_SIZE(garbage); i++) {
		luo_heap_free(&g, garbage[i], NULL, NULL);
		CHECK_EQ(stats(&g).bad_frees, ++expect);
	}
	luo_heap_free(&g, NULL, NULL, NULL);
	CHECK_EQ(stats(&g).bad_frees, expect);
	check_ok(&g);

	/* Double frees: the head of the free list, deeper in it, a run. */
	luo_heap_free(&g, a, NULL, NULL);
	luo_heap_free(&g, a, NULL, NULL);
	CHECK_EQ(stats(&g).bad_frees, ++expect);
	luo_heap_free(&g, b, NULL, NULL);
	luo_heap_free(&g, a, NULL, NULL);
	CHECK_EQ(stats(&g).bad_frees, ++expect);
	luo_heap_free(&g, run, NULL, NULL);
	luo_heap_free(&g, run, NULL, NULL);
	CHECK_EQ(stats(&g).bad_frees, ++expect);
	check_ok(&g);

	/* User data that looks like a free slot is no double free. */
	memcpy(c, &tag, sizeof(tag));
	luo_heap_free(&g, c, NULL, NULL);
	CHECK_EQ(stats(&g).bad_frees, expect);
	luo_heap_free(&g, c, NULL, NULL);
	CHECK_EQ(stats(&g).bad_frees, ++expect);
	check_ok(&g);

	/* The slab still hands out distinct slots, and the tracker agrees. */
	t.n = 0;
	memset(t.owned, 0, size / GRANULE);
	t.owned[(size_t)(lone - base) / GRANULE] = 1;
	t.owned[(size_t)(lone - base) / GRANULE + 1] = 1;
	t.owned[(size_t)(lone - base) / GRANULE + 2] = 1;
	t.expect_bytes = 48;
	for (int i = 0; i < 2000; i++)
		CHECK(talloc(&t, 1 + (size_t)i % 64));
	check_bytes(&t);
	tfree_all(&t);
	luo_heap_free(&g, lone, NULL, NULL);
	CHECK_EQ(stats(&g).bytes_in_use, 0);
	CHECK_EQ(stats(&g).bad_frees, expect);
	check_ok(&g);
	free(heap_ptr);
	tracker_fini(&t);
	region_unmap(base, size);
	ok("bad frees: %zu garbage pointers and double frees ignored and counted, heap intact", expect);
}

/*
 * The thread cache's calls on one heap, single-threaded: what is cached,
 * what goes to the heap's exact checks, double frees while cached, a
 * cached block overwritten (dropped, never handed out), refill batches,
 * the trim of a full class, and the flush leaving the heap as before.
 */
static void test_tcache(void)
{
	size_t size = 2 * MiB;
	char *base = region_map(size);
	struct luo_heap_tcache *tc = malloc(sizeof(*tc));
	struct luo_heap_geom g;
	char *a, *b, *x, *big, *p, *q, *blocks[LUO_HEAP_TCACHE_BLOCKS + 1];
	uint64_t key = 0x0123456789abcdefull;
	size_t bad;

	CHECK(tc != NULL);
	g = format_ok(base, size);
	luo_heap_tcache_init(tc, key);
	CHECK(tc->key != 0 && tc->key >> 16 != LUO_HEAP_FREE_TAG);
	CHECK(luo_heap_tcache_alloc(tc, 64) == NULL); /* empty */
	CHECK(luo_heap_tcache_alloc(tc, LUO_HEAP_TCACHE_SIZE_MAX + 1) == NULL);
	CHECK(luo_heap_tcache_alloc(tc, 0) == NULL);

	/* A refill: one block returned, a batch less one cached, all distinct and in use. */
	a = luo_heap_tcache_refill(&g, tc, 64);
	CHECK(a != NULL);
	CHECK_EQ(tc->count[3], LUO_HEAP_TCACHE_BATCH - 1);
	CHECK_EQ(stats(&g).bytes_in_use, LUO_HEAP_TCACHE_BATCH * 64);
	b = luo_heap_tcache_alloc(tc, 50); /* the same class */
	CHECK(b != NULL && b != a && *(uint64_t *)(void *)b == 0);
	CHECK_EQ(tc->count[3], LUO_HEAP_TCACHE_BATCH - 2);
	check_ok(&g);
	/* The check bumped the epoch: a slab not validated since is the heap's to free first. */
	CHECK_EQ(luo_heap_tcache_free(&g, tc, a), LUO_HEAP_TCACHE_HEAP);
	x = luo_heap_tcache_alloc(tc, 64); /* popping needs no validation: the cache holds private pointers */
	CHECK(x != NULL && x != a && x != b);
	luo_heap_free(&g, luo_heap_alloc(&g, 64), NULL, NULL); /* validates the slab again */

	/* Frees: cached; a second free of a cached block is a double free; bogus ones go to the heap. */
	CHECK_EQ(luo_heap_tcache_free(&g, tc, a), LUO_HEAP_TCACHE_CACHED);
	CHECK_EQ(luo_heap_tcache_free(&g, tc, a), LUO_HEAP_TCACHE_DOUBLE);
	bad = stats(&g).bad_frees;
	luo_heap_tcache_free_slow(&g, tc, a, LUO_HEAP_TCACHE_DOUBLE, NULL, NULL);
	CHECK_EQ(stats(&g).bad_frees, bad + 1);
	CHECK_EQ(luo_heap_tcache_free(&g, tc, b + 16), LUO_HEAP_TCACHE_HEAP);
	CHECK_EQ(luo_heap_tcache_free(&g, tc, b + 8), LUO_HEAP_TCACHE_HEAP);
	CHECK_EQ(luo_heap_tcache_free(&g, tc, base), LUO_HEAP_TCACHE_HEAP);
	CHECK_EQ(luo_heap_tcache_free(&g, tc, base + size), LUO_HEAP_TCACHE_HEAP);
	big = luo_heap_alloc(&g, 1000); /* not a cached class */
	CHECK(big != NULL);
	CHECK_EQ(luo_heap_tcache_free(&g, tc, big), LUO_HEAP_TCACHE_HEAP);
	luo_heap_tcache_free_slow(&g, tc, big, LUO_HEAP_TCACHE_HEAP, NULL, NULL);
	CHECK_EQ(stats(&g).bad_frees, bad + 1);
	/* A block the heap holds free carries its tag: the heap's own check finds the double free. */
	p = luo_heap_alloc(&g, 200);
	CHECK(p != NULL);
	luo_heap_free(&g, p, NULL, NULL);
	CHECK_EQ(luo_heap_tcache_free(&g, tc, p), LUO_HEAP_TCACHE_HEAP);
	luo_heap_tcache_free_slow(&g, tc, p, LUO_HEAP_TCACHE_HEAP, NULL, NULL);
	CHECK_EQ(stats(&g).bad_frees, bad + 2);
	/* The slow call checks again: a wrong hint changes nothing. */
	luo_heap_tcache_free_slow(&g, tc, a, LUO_HEAP_TCACHE_FULL, NULL, NULL);
	CHECK_EQ(stats(&g).bad_frees, bad + 3);

	/* LIFO: the block freed last comes back first. */
	CHECK(luo_heap_tcache_alloc(tc, 64) == a);

	/* A cached block overwritten (a write after free) is dropped, not handed out. */
	CHECK_EQ(luo_heap_tcache_free(&g, tc, a), LUO_HEAP_TCACHE_CACHED);
	memset(a, 0x5a, 16);
	q = luo_heap_tcache_alloc(tc, 64);
	CHECK(q != NULL && q != a);
	CHECK_EQ(tc->damaged, 1);

	/* A full class: FULL, then the slow call gives the older half back and caches the block. */
	luo_heap_tcache_flush(&g, tc, NULL, NULL);
	for (size_t i = 0; i < ARRAY_SIZE(blocks); i++) {
		blocks[i] = luo_heap_alloc(&g, 32);
		CHECK(blocks[i] != NULL);
	}
	for (size_t i = 0; i < LUO_HEAP_TCACHE_BLOCKS; i++)
		CHECK_EQ(luo_heap_tcache_free(&g, tc, blocks[i]), LUO_HEAP_TCACHE_CACHED);
	CHECK_EQ(luo_heap_tcache_free(&g, tc, blocks[LUO_HEAP_TCACHE_BLOCKS]), LUO_HEAP_TCACHE_FULL);
	luo_heap_tcache_free_slow(&g, tc, blocks[LUO_HEAP_TCACHE_BLOCKS], LUO_HEAP_TCACHE_FULL, NULL, NULL);
	CHECK_EQ(tc->count[1], LUO_HEAP_TCACHE_BLOCKS - LUO_HEAP_TCACHE_BATCH + 1);
	CHECK(luo_heap_tcache_alloc(tc, 32) == blocks[LUO_HEAP_TCACHE_BLOCKS]);
	CHECK(luo_heap_tcache_alloc(tc, 32) == blocks[LUO_HEAP_TCACHE_BLOCKS - 1]);
	check_ok(&g);

	/* Everything back: the handed-out blocks freed, the cache flushed; in use only the dropped block. */
	luo_heap_free(&g, blocks[LUO_HEAP_TCACHE_BLOCKS], NULL, NULL);
	luo_heap_free(&g, blocks[LUO_HEAP_TCACHE_BLOCKS - 1], NULL, NULL);
	luo_heap_free(&g, b, NULL, NULL);
	luo_heap_free(&g, x, NULL, NULL);
	luo_heap_free(&g, q, NULL, NULL);
	luo_heap_tcache_flush(&g, tc, NULL, NULL);
	for (uint32_t k = 0; k < LUO_HEAP_TCACHE_CLASSES; k++)
		CHECK_EQ(tc->count[k], 0);
	CHECK_EQ(stats(&g).bytes_in_use, 64); /* a, overwritten while cached: leaked, by design */
	CHECK_EQ(stats(&g).bad_frees, bad + 3);
	check_ok(&g);
	free(tc);
	region_unmap(base, size);
	ok("thread cache: cached frees, double frees while cached, bogus frees to the heap, a dropped "
	   "overwritten block, refill and trim batches, flush");
}

static void test_root(void)
{
	size_t size = 1 * MiB;
	char *base = region_map(size);
	char *p;
	struct luo_heap_geom g;

	g = format_ok(base, size);
	CHECK(!luo_heap_root(&g));
	p = luo_heap_alloc(&g, 200);
	CHECK(p);
	CHECK_OK(luo_heap_set_root(&g, p));
	CHECK(luo_heap_root(&g) == p);
	CHECK_ERR(luo_heap_set_root(&g, base), EINVAL);
	CHECK_ERR(luo_heap_set_root(&g, base + hdr(base)->data_offset - 1), EINVAL);
	CHECK_ERR(luo_heap_set_root(&g, base + size), EINVAL);
	CHECK_ERR(luo_heap_set_root(&g, (void *)((uintptr_t)base - 1)), EINVAL);
	CHECK_ERR(luo_heap_set_root(NULL, p), EINVAL);
	CHECK(luo_heap_root(&g) == p);
	check_ok(&g);
	CHECK(luo_heap_root(&g) == p);
	CHECK_OK(luo_heap_set_root(&g, NULL));
	CHECK(!luo_heap_root(&g));
	region_unmap(base, size);
	ok("root: set, get, refused outside the data area, cleared");
}

static void test_release(void)
{
	size_t size = 4 * MiB;
	char *base = region_map(size);
	struct tracker t;
	struct rng r = rng_seed(7);
	size_t chunk[3];
	char *blk[3][64], *run;
	struct luo_heap_geom g;

	g = format_ok(base, size);
	tracker_init(&t, &g);
	t.zero_on_release = true;
	/* Three full slabs of 1 KiB slots. */
	for (int s = 0; s < 3; s++) {
		for (int i = 0; i < 64; i++) {
			blk[s][i] = talloc(&t, 1024);
			CHECK(blk[s][i]);
		}
		/* Offsets from the base of the chunk holding the slab (chunks start at data_offset). */
		chunk[s] = g.data_offset + (size_t)(blk[s][0] - base - g.data_offset) / LUO_HEAP_CHUNK * LUO_HEAP_CHUNK;
		CHECK_EQ(g.data_offset + (size_t)(blk[s][63] - base - g.data_offset) / LUO_HEAP_CHUNK * LUO_HEAP_CHUNK,
			 chunk[s]);
	}
	CHECK(chunk[0] != chunk[1] && chunk[1] != chunk[2]);
	/* Slab 1 emptied alone in its class: kept. Then 0 and 2: released. */
	for (int s = 1; s >= 0; s--) {
		for (int i = 0; i < 64; i++)
			CHECK(tfree_ptr(&t, blk[s][i]));
		if (s == 1) {
			CHECK_EQ(t.releases, 0);
		} else {
			CHECK_EQ(t.releases, 1);
			CHECK_EQ(t.last_release_off, chunk[0]);
			CHECK_EQ(t.last_release_len, LUO_HEAP_CHUNK);
		}
	}
	tfree_all(&t);
	CHECK_EQ(t.releases, 2);
	CHECK_EQ(t.last_release_off, chunk[2]);
	run = talloc(&t, 200 * KiB);
	CHECK(run);
	tfree_all(&t);
	CHECK_EQ(t.releases, 3);
	CHECK_EQ(t.last_release_off, (size_t)(run - base));
	CHECK_EQ(t.last_release_len, 4 * LUO_HEAP_CHUNK);
	check_ok(&g);
	/* Life goes on in zeroed chunks. */
	workload(&t, &r, iters(30000), 800);
	check_bytes(&t);
	check_ok(&g);
	tfree_all(&t);
	check_ok(&g);
	ok("release: emptied slabs (one kept per class) and runs released at the right offsets; "
	   "heap correct over zeroed chunks (%zu releases)", t.releases);
	tracker_fini(&t);
	region_unmap(base, size);
}

/* The real thing: a memfd, MAP_SHARED, holes punched with fallocate(). */
static void test_punch_hole(void)
{
	size_t size = 16 * MiB;
	int fd = memfd_create("luo-heap-test", MFD_CLOEXEC);
	struct tracker t;
	struct rng r = rng_seed(11);
	struct stat st_full, st_after;
	char *base;
	struct luo_heap_geom g;

	CHECK(fd >= 0);
	CHECK(ftruncate(fd, (off_t)size) == 0);
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(base != MAP_FAILED);
	g = format_ok(base, size);
	tracker_init(&t, &g);
	t.punch_fd = fd;
	workload(&t, &r, iters(30000), 1500);
	for (size_t i = 0; i < t.n; i++)
		check_pattern(&t.blocks[i]);
	CHECK(fstat(fd, &st_full) == 0);
	tfree_all(&t);
	check_ok(&g);
	CHECK(fstat(fd, &st_after) == 0);
	/* Left: the metadata and at most one kept slab per class. */
	CHECK((size_t)st_after.st_blocks * 512 <= hdr(base)->data_offset + LUO_HEAP_CLASSES * LUO_HEAP_CHUNK);
	workload(&t, &r, iters(10000), 500);
	tfree_all(&t);
	check_ok(&g);
	ok("punch hole: memfd from %lld KiB to %lld KiB resident after freeing all; reused after",
	   (long long)st_full.st_blocks / 2, (long long)st_after.st_blocks / 2);
	tracker_fini(&t);
	CHECK(munmap(base, size) == 0);
	close(fd);
}

/* Offsets, not pointers: the region copied elsewhere, the original unmapped. */
static void test_relocate(void)
{
	size_t size = 16 * MiB;
	char *a = region_map(size), *b;
	struct tracker t;
	struct rng r = rng_seed(3);
	struct luo_heap_geom ga, gb;
	char *root;
	size_t nblocks;

	ga = format_ok(a, size);
	tracker_init(&t, &ga);
	workload(&t, &r, iters(20000), 3000);
	root = t.blocks[0].p;
	CHECK_OK(luo_heap_set_root(&ga, root));

	b = region_map(size);
	CHECK(b != a);
	memcpy(b, a, size);
	region_unmap(a, size); /* any absolute pointer into a would fault now */
	gb = check_new(b, size);
	CHECK(luo_heap_root(&gb) == b + (root - a));
	t.g = gb;
	t.base = b;
	for (size_t i = 0; i < t.n; i++) {
		t.blocks[i].p = b + (t.blocks[i].p - a);
		check_pattern(&t.blocks[i]);
	}
	nblocks = t.n;
	CHECK_EQ(stats(&gb).bytes_in_use, t.expect_bytes);
	workload(&t, &r, iters(20000), 3000);
	check_bytes(&t);
	check_ok(&gb);
	tfree_all(&t);
	CHECK_EQ(stats(&gb).bytes_in_use, 0);
	CHECK_EQ(stats(&gb).bad_frees, 0);
	check_ok(&gb);
	tracker_fini(&t);
	region_unmap(b, size);
	ok("relocate: %zu live blocks and the root carried to another address, used and freed there", nblocks);
}

/* A small heap with every kind of chunk, for the corruption tests. */
static char *hostile_template(size_t size, struct tracker *t)
{
	char *base = region_map(size);
	char *victim;
	struct luo_heap_geom g;
	uint64_t w;

	g = format_ok(base, size);
	tracker_init(t, &g);
	/* A quarantined slab: a free list damaged, then touched. */
	victim = talloc(t, 2048);
	CHECK(talloc(t, 2048));
	CHECK(tfree(t, 0));
	memcpy(&w, victim, sizeof(w));
	w ^= 1ull << 20;
	memcpy(victim, &w, sizeof(w));
	check_ok(&g);
	CHECK(!tfree(t, 0)); /* the slab is quarantined, the free ignored */
	t->n = 0;
	memset(t->owned, 0, size / GRANULE);
	t->expect_bytes = 0;
	CHECK_EQ(stats(&g).quarantined, 1);
	/* Partial slabs of three classes, a full one, runs, free chunks. */
	for (int i = 0; i < 40; i++)
		CHECK(talloc(t, 24));
	for (int i = 0; i < 30; i++)
		CHECK(talloc(t, 300));
	for (int i = 0; i < 8; i++)
		CHECK(talloc(t, 8000));
	for (int i = 0; i < 5; i++)
		CHECK(talloc(t, 4000));
	CHECK(talloc(t, 3 * LUO_HEAP_CHUNK - 5));
	CHECK(talloc(t, LUO_HEAP_CHUNK));
	for (size_t i = 0; i < t->n; i += 3)
		CHECK(tfree(t, i));
	CHECK(luo_heap_set_root(&g, t->blocks[1].p) == 0);
	check_ok(&g);
	return base;
}

static void test_header_corruption(void)
{
	size_t size = 1 * MiB;
	struct tracker t;
	char *tmpl = hostile_template(size, &t), *b = region_map(size), *before = region_map(size);
	struct luo_heap *h = (struct luo_heap *)b;
	struct luo_heap_geom gm, expect_geom = t.g, zero = { 0 };
	uint32_t n;
	int rejected = 0, accepted = 0;
	char reason[256];

	memcpy(b, tmpl, size);
	n = h->nchunks;
	expect_geom.base = b;

#define MUTATE(what, stmt, expect)                                                                          \
	do {                                                                                                \
		memcpy(b, tmpl, size);                                                                      \
		stmt;                                                                                       \
		memcpy(before, b, size);                                                                    \
		reason[0] = 0;                                                                              \
		int _r = luo_heap_check(b, size, &gm, reason, sizeof(reason));                             \
		if (_r != (expect)) {                                                                       \
			fprintf(stderr, "%s: check returned %d (%s), expected %d\n", what, _r, reason, expect); \
			exit(1);                                                                            \
		}                                                                                           \
		if (_r < 0) {                                                                               \
			CHECK(reason[0]);                                                                   \
			CHECK(memcmp(b, before, size) == 0); /* refused: untouched */                       \
			CHECK(memcmp(&gm, &zero, sizeof(gm)) == 0);                                         \
			rejected++;                                                                         \
		} else {                                                                                    \
			CHECK(memcmp(&gm, &expect_geom, sizeof(gm)) == 0);                                  \
			accepted++;                                                                         \
		}                                                                                           \
	} while (0)

	MUTATE("magic", h->magic ^= 1, -EBADMSG);
	MUTATE("version+1", h->version++, -EBADMSG);
	MUTATE("version 0", h->version = 0, -EBADMSG);
	MUTATE("header_size", h->header_size -= 8, -EBADMSG);
	MUTATE("size+", h->size += LUO_HEAP_CHUNK, -EBADMSG);
	MUTATE("size-", h->size -= LUO_HEAP_CHUNK, -EBADMSG);
	MUTATE("size 0", h->size = 0, -EBADMSG);
	MUTATE("map_offset", h->map_offset += 16, -EBADMSG);
	MUTATE("map_offset huge", h->map_offset = UINT64_MAX - 8, -EBADMSG);
	MUTATE("bitmap_offset", h->bitmap_offset += 8, -EBADMSG);
	MUTATE("data_offset+", h->data_offset += LUO_HEAP_CHUNK, -EBADMSG);
	MUTATE("data_offset-", h->data_offset -= LUO_HEAP_CHUNK, -EBADMSG);
	MUTATE("chunk_size", h->chunk_size /= 2, -EBADMSG);
	MUTATE("nchunks-", h->nchunks--, -EBADMSG);
	MUTATE("nchunks+", h->nchunks++, -EBADMSG);
	MUTATE("nchunks max", h->nchunks = UINT32_MAX, -EBADMSG);
	MUTATE("nclasses", h->nclasses--, -EBADMSG);
	MUTATE("root in header", h->root = 8, -EBADMSG);
	MUTATE("root at end", h->root = size, -EBADMSG);
	MUTATE("root in metadata", h->root = h->data_offset - 1, -EBADMSG);
	MUTATE("hint past end", h->hint = n + 1, -EBADMSG);
	MUTATE("hint past free", h->hint = n, -EBADMSG);
	MUTATE("chunks_free", h->chunks_free++, -EBADMSG);
	MUTATE("quarantined", h->quarantined--, -EBADMSG);
	MUTATE("bytes_in_use", h->bytes_in_use += 16, -EBADMSG);
	for (unsigned k = 0; k < LUO_HEAP_CLASSES; k++) {
		MUTATE("class_size", h->class_size[k] += 16, -EBADMSG);
		MUTATE("class_head out of range", h->class_head[k] = n, -EBADMSG);
		/* Chunk 0 is the quarantined slab: in no list. */
		MUTATE("class_head to a quarantined chunk", h->class_head[k] = 0, -EBADMSG);
		if (((struct luo_heap *)tmpl)->class_head[k] != LUO_HEAP_NO_CHUNK)
			MUTATE("class list dropped", h->class_head[k] = LUO_HEAP_NO_CHUNK, -EBADMSG);
	}
	/* Any value is fine for these. */
	MUTATE("epoch", h->epoch = 0xffffffff, 0);
	MUTATE("bad_frees", h->bad_frees = 12345, 0);
	MUTATE("hint lower", h->hint = 0, 0);
	MUTATE("root elsewhere", h->root = h->data_offset, 0);
	MUTATE("root none", h->root = 0, 0);
#undef MUTATE
	memcpy(b, tmpl, size);
	CHECK_ERR(luo_heap_check(b, size - LUO_HEAP_CHUNK, &gm, reason, sizeof(reason)), EBADMSG);
	tracker_fini(&t);
	region_unmap(tmpl, size);
	region_unmap(b, size);
	region_unmap(before, size);
	ok("header corruption: %d mutations refused with a reason and nothing written, %d harmless ones accepted",
	   rejected, accepted);
}

/*
 * Make the header's counters agree with a mutated map, the way a careful
 * attacker would, so that mutants get past the counters to the deeper
 * checks and into the allocator. Bounded like the check: it must not trip
 * on garbage either.
 */
static void fix_counters(char *base, const struct luo_heap *tmpl)
{
	struct luo_heap *h = (struct luo_heap *)base;
	struct luo_heap_chunk *map = (struct luo_heap_chunk *)(base + tmpl->map_offset);
	uint64_t nfree = 0, q = 0, bytes = 0;

	for (uint32_t i = 0; i < tmpl->nchunks;) {
		uint8_t kind = map[i].kind;

		if (kind == LUO_HEAP_KIND_FREE) {
			nfree++;
		} else if (kind == LUO_HEAP_KIND_QUARANTINED) {
			q++;
		} else if (kind == LUO_HEAP_KIND_RUN && map[i].next >= 1 && map[i].next <= tmpl->nchunks - i) {
			bytes += (uint64_t)map[i].next * LUO_HEAP_CHUNK;
			i += map[i].next;
			continue;
		} else if (kind >= LUO_HEAP_KIND_SLAB && kind < LUO_HEAP_KIND_SLAB + LUO_HEAP_CLASSES) {
			uint32_t c = tmpl->class_size[kind - LUO_HEAP_KIND_SLAB], slots = LUO_HEAP_CHUNK / c;

			if (map[i].nfree <= slots)
				bytes += (uint64_t)(slots - map[i].nfree) * c;
		}
		i++;
	}
	h->chunks_free = nfree;
	h->quarantined = q;
	h->bytes_in_use = bytes;
	h->hint = 0;
}

/* Mutate @b, a copy of @tmpl; offsets from the template, as @b's header may be hit. */
static void mutate_map(char *b, const struct luo_heap *tmpl, struct rng *r)
{
	struct luo_heap *h = (struct luo_heap *)b;
	struct luo_heap_chunk *map = (struct luo_heap_chunk *)(b + tmpl->map_offset);
	uint32_t n = tmpl->nchunks, i = (uint32_t)rng_below(r, n);
	uint64_t meta_end = tmpl->bitmap_offset + (n + 63) / 64 * 8;
	uint64_t bm = tmpl->bitmap_offset, map_off = tmpl->map_offset;
	int times = 1 + (int)rng_below(r, 3);

	for (int t = 0; t < times; t++) {
		switch (rng_below(r, 10)) {
		case 0: /* bit flips anywhere in the metadata */
			b[rng_below(r, meta_end)] ^= (char)(1 << rng_below(r, 8));
			break;
		case 1: /* random bytes in the map */
			b[map_off + rng_below(r, meta_end - map_off)] = (char)rng_next(r);
			break;
		case 2: /* an entry of random bytes */
			for (size_t k = 0; k < sizeof(map[i]); k++)
				((uint8_t *)&map[i])[k] = (uint8_t)rng_next(r);
			break;
		case 3: /* an entry copied over another */
			map[i] = map[rng_below(r, n)];
			break;
		case 4: /* a plausible link */
			if (rng_below(r, 2))
				map[i].next = rng_below(r, 4) ? (uint32_t)rng_below(r, n + 2) : LUO_HEAP_NO_CHUNK;
			else
				map[i].prev = rng_below(r, 4) ? (uint32_t)rng_below(r, n + 2) : LUO_HEAP_NO_CHUNK;
			break;
		case 5: { /* a plausible kind, the bitmap following or not */
			static const uint8_t kinds[] = { 0, 1, 2, 3, 16, 17, 18, 30, 47, 53, 54 };
			map[i].kind = kinds[rng_below(r, ARRAY_SIZE(kinds))];
			if (rng_below(r, 2)) {
				uint64_t *w = (uint64_t *)(b + bm) + i / 64;

				if (map[i].kind == LUO_HEAP_KIND_FREE)
					*w |= 1ull << (i % 64);
				else
					*w &= ~(1ull << (i % 64));
			}
			break;
		}
		case 6: /* a class list head */
			h->class_head[rng_below(r, LUO_HEAP_CLASSES)] =
				rng_below(r, 4) ? (uint32_t)rng_below(r, n + 1) : LUO_HEAP_NO_CHUNK;
			break;
		case 7: /* slab counters, plausible */
			switch (rng_below(r, 3)) {
			case 0:
				map[i].nfree = (uint16_t)rng_below(r, 4100);
				break;
			case 1:
				map[i].bump = (uint16_t)rng_below(r, 4100);
				break;
			default:
				map[i].head = rng_below(r, 4) ? (uint16_t)(rng_below(r, 4096) * 16) : LUO_HEAP_NO_SLOT;
				break;
			}
			break;
		case 8: /* a run length */
			map[i].next = (uint32_t)rng_below(r, n + 2);
			break;
		default: /* a bitmap bit */
			((uint64_t *)(b + bm))[i / 64] ^= 1ull << (i % 64);
			break;
		}
		i = (uint32_t)rng_below(r, n);
	}
	if (rng_below(r, 3))
		fix_counters(b, tmpl);
}

/* The first chunk of @b's map that satisfies @pred, or abort. */
static uint32_t find_chunk(char *b, bool (*pred)(const struct luo_heap_chunk *e))
{
	for (uint32_t i = 0; i < hdr(b)->nchunks; i++)
		if (pred(&map_of(b)[i]))
			return i;
	abort();
}

static bool is_listed_slab(const struct luo_heap_chunk *e)
{
	return e->kind >= LUO_HEAP_KIND_SLAB && e->nfree > 0 && e->head != LUO_HEAP_NO_SLOT;
}

static bool is_full_slab(const struct luo_heap_chunk *e)
{
	return e->kind >= LUO_HEAP_KIND_SLAB && e->nfree == 0;
}

static bool is_run(const struct luo_heap_chunk *e)
{
	return e->kind == LUO_HEAP_KIND_RUN && e->next > 1;
}

static bool is_free(const struct luo_heap_chunk *e)
{
	return e->kind == LUO_HEAP_KIND_FREE;
}

/* One lie at a time in the map, each refused with the reason that names it. */
static void test_map_targeted(void)
{
	size_t size = 1 * MiB;
	struct tracker t;
	char *tmpl = hostile_template(size, &t), *b = region_map(size);
	const struct luo_heap *th = (const struct luo_heap *)tmpl;
	struct luo_heap_chunk *map = (struct luo_heap_chunk *)(b + th->map_offset);
	uint64_t *bm = (uint64_t *)(b + th->bitmap_offset);
	uint32_t n = th->nchunks, slab, full, run, fr, cls, last_run = 0;
	struct luo_heap_geom gm;
	char reason[256];
	int count = 0;

	memcpy(b, tmpl, size);
	slab = find_chunk(b, is_listed_slab);
	full = find_chunk(b, is_full_slab);
	run = find_chunk(b, is_run);
	fr = find_chunk(b, is_free);
	cls = map[slab].kind - LUO_HEAP_KIND_SLAB;
	for (uint32_t i = 0; i < n; i++)
		if (map[i].kind == LUO_HEAP_KIND_RUN)
			last_run = i;

#define LIE(what, stmt, fix, expect)                                                                        \
	do {                                                                                                \
		memcpy(b, tmpl, size);                                                                      \
		stmt;                                                                                       \
		if (fix)                                                                                    \
			fix_counters(b, th);                                                                \
		reason[0] = 0;                                                                              \
		CHECK_ERR(luo_heap_check(b, size, &gm, reason, sizeof(reason)), EBADMSG);                   \
		if (!strstr(reason, expect)) {                                                              \
			fprintf(stderr, "%s: reason \"%s\", expected \"%s\"\n", what, reason, expect);      \
			exit(1);                                                                            \
		}                                                                                           \
		count++;                                                                                    \
	} while (0)

	LIE("list back link", map[slab].prev = fr, true, "back link");
	LIE("list cycle", map[slab].next = slab, true, "longer than");
	LIE("list link out of range", map[slab].next = n, true, "out of range");
	LIE("full slab in a list", hdr(b)->class_head[map[full].kind - LUO_HEAP_KIND_SLAB] = full, true,
	    "list longer than its 0 slabs");
	LIE("another class's slab in a list", hdr(b)->class_head[cls] = full, true,
	    "not a slab of the class with free slots");
	LIE("listed slab left out", hdr(b)->class_head[cls] = LUO_HEAP_NO_CHUNK, true, "list ends");
	LIE("run past the end", (map[last_run].next = n - last_run + 1), true, "chunks left");
	LIE("run of 0", map[run].next = 0, true, "chunks left");
	CHECK(fr + 2 <= n);
	LIE("run over a free chunk",
	    (map[fr].kind = LUO_HEAP_KIND_RUN, map[fr].next = 2, bm[fr / 64] &= ~(1ull << (fr % 64))), true,
	    "not a tail");
	LIE("tail alone", (map[fr].kind = LUO_HEAP_KIND_TAIL, bm[fr / 64] &= ~(1ull << (fr % 64))), true,
	    "tail without a run");
	LIE("tail of another run", map[run + 1].prev = run + 7, true, "not a tail");
	LIE("free chunk used in the bitmap", bm[fr / 64] &= ~(1ull << (fr % 64)), true, "not in the bitmap");
	LIE("used chunk free in the bitmap", bm[slab / 64] |= 1ull << (slab % 64), true, "free in the bitmap");
	LIE("bitmap past the end", bm[n / 64] |= 1ull << (n % 64), true, "past the last chunk");
	LIE("unknown kind", map[full].kind = 4, false, "unknown kind");
	LIE("class past the table", map[full].kind = LUO_HEAP_KIND_SLAB + LUO_HEAP_CLASSES, false, "unknown kind");
	LIE("nfree > slots", map[slab].nfree = 5000, true, "more free slots");
	LIE("bump > slots", map[slab].bump = 5000, true, "high-water");
	LIE("fewer free than never used", (map[full].bump = 0, map[full].nfree = 1), true, "never-used");
	LIE("listed without a head", map[slab].head = LUO_HEAP_NO_SLOT, true, "without a free list head");
	LIE("head misaligned", map[slab].head += 8, true, "not a used slot");
	LIE("head past the high-water mark", map[slab].head = (uint16_t)(hdr(b)->class_size[cls] * map[slab].bump),
	    true, "not a used slot");
	LIE("head without listed slots", map[full].head = 0, true, "head without listed");
	LIE("free chunks count", hdr(b)->chunks_free--, false, "free chunks");
#undef LIE
	tracker_fini(&t);
	region_unmap(tmpl, size);
	region_unmap(b, size);
	ok("map targeted: %d lies, each refused with the reason naming it", count);
}

/*
 * Writes into freed blocks (the program's bug, not the old image's): caught
 * when the damaged slot is popped, the slab quarantined, nothing handed out
 * twice.
 */
static void test_use_after_free(void)
{
	size_t size = 2 * MiB;
	char *base = region_map(size);
	struct tracker t;
	char *x, *y;
	uint64_t w;
	size_t q = 0;
	struct luo_heap_geom g;

	g = format_ok(base, size);
	tracker_init(&t, &g);
	for (int round = 0; round < 3; round++) {
		size_t n = 16 << round; /* a fresh class each round */

		x = talloc(&t, n);
		y = talloc(&t, n);
		CHECK(talloc(&t, n)); /* keeps the slab from emptying */
		CHECK(tfree_ptr(&t, x));
		CHECK(tfree_ptr(&t, y)); /* list: y -> x */
		switch (round) {
		case 0: /* garbage over the head */
			memset(y, 0xab, 8);
			break;
		case 1: /* a forged end: one listed slot short */
			w = LUO_HEAP_FREE_TAG << 16 | LUO_HEAP_NO_SLOT;
			memcpy(y, &w, 8);
			break;
		default: /* a forged link to a live slot */
			w = LUO_HEAP_FREE_TAG << 16 | (uint64_t)(t.blocks[t.n - 1].p - base - g.data_offset) % LUO_HEAP_CHUNK;
			memcpy(y, &w, 8);
			break;
		}
		for (int i = 0; i < 100; i++)
			CHECK(talloc(&t, n));
		CHECK_EQ(stats(&g).quarantined, ++q);
		check_ok(&g);
	}
	/*
	 * Round 2's forgery passes one pop (a valid link); the next pop finds
	 * the live slot without the tag. Frees into the quarantined slabs are
	 * ignored: the third block of each round, and round 2's popped slot.
	 */
	while (t.n > 0)
		tfree(&t, t.n - 1);
	CHECK_EQ(stats(&g).bad_frees, 4);
	CHECK_EQ(stats(&g).bytes_in_use, 0);
	check_ok(&g);
	tracker_fini(&t);
	region_unmap(base, size);
	ok("use after free: damaged, shortened and forged links quarantine the slab, nothing handed out twice");
}

/*
 * Seeded mutations of the map: each is refused with a reason, or accepted
 * and then survives allocation and frees with no block overlapping another
 * and a clean check after.
 */
static void test_map_fuzz(uint64_t seed)
{
	size_t size = 1 * MiB;
	struct tracker tt;
	char *tmpl = hostile_template(size, &tt), *b = region_map(size);
	struct rng r = rng_seed(seed);
	unsigned long n = iters(5000), accepted = 0;
	struct luo_heap_geom g;
	char reason[256];

	for (unsigned long it = 0; it < n; it++) {
		struct tracker t;
		int ret;

		memcpy(b, tmpl, size);
		mutate_map(b, (const struct luo_heap *)tmpl, &r);
		reason[0] = 0;
		ret = luo_heap_check(b, size, &g, reason, sizeof(reason));
		if (ret != 0) {
			CHECK_EQ(ret, -EBADMSG);
			CHECK(reason[0]);
			continue;
		}
		accepted++;
		/* Only this image's blocks are tracked: the old ones are the old image's word. */
		tracker_init(&t, &g);
		for (int k = 0; k < 300; k++) {
			uint64_t d = rng_below(&r, 10);

			if (d < 5) {
				talloc(&t, rng_below(&r, 3) ? 1 + rng_below(&r, 3000) : 1 + rng_below(&r, 200 * KiB));
			} else if (d < 9 && t.n > 0) {
				CHECK(tfree(&t, rng_below(&r, t.n)));
			} else {
				/* A garbage free, anywhere but at a block of ours. */
				char *p = b + rng_below(&r, size + 64) / 16 * 16;

				if (p >= b + size || !t.owned[(size_t)(p - b) / GRANULE])
					luo_heap_free(&g, p, NULL, NULL);
			}
		}
		check_ok(&g);
		tfree_all(&t);
		check_ok(&g);
		tracker_fini(&t);
	}
	/* Metadata of random bytes, the header kept or not: refused, whatever it holds. */
	for (unsigned long it = 0; it < n / 5; it++) {
		uint64_t meta = ((struct luo_heap *)tmpl)->data_offset;
		size_t keep = rng_below(&r, 2) ? sizeof(struct luo_heap) : rng_below(&r, 2) ? 16 : 0;

		memcpy(b, tmpl, meta);
		for (uint64_t k = keep; k < meta; k += 8) {
			uint64_t w = rng_next(&r);

			memcpy(b + k, &w, 8);
		}
		CHECK_ERR(luo_heap_check(b, size, &g, reason, sizeof(reason)), EBADMSG);
	}
	tracker_fini(&tt);
	region_unmap(tmpl, size);
	region_unmap(b, size);
	ok("map fuzz: seed %" PRIu64 ", %lu mutants, %lu accepted and used without overlap, the rest refused; "
	   "%lu random metadata refused",
	   seed, n, accepted, n / 5);
}

/*
 * Damaged slab free lists (in the data, so the check passes): each damaged
 * slab is quarantined the first time it is touched, frees into it ignored,
 * and allocation goes on elsewhere with no overlap.
 */
static void test_freelist_corruption(uint64_t seed)
{
	size_t size = 16 * MiB;
	char *a = region_map(size), *b = region_map(size);
	struct rng r = rng_seed(seed);
	struct tracker t;
	struct block *freed;
	size_t nfreed = 0, damaged = 0, expect_bad = 0;
	uint32_t bad_chunks[64];
	struct luo_heap_chunk *map;
	struct luo_heap_geom ga, gb;

	ga = format_ok(a, size);
	tracker_init(&t, &ga);
	for (int i = 0; i < 12000; i++)
		CHECK(talloc(&t, 1 + rng_below(&r, 2048)));
	freed = calloc(t.n, sizeof(*freed));
	CHECK(freed);
	for (size_t i = 0; i < t.n; i++)
		if (rng_below(&r, 2)) {
			freed[nfreed++] = t.blocks[i];
			CHECK(tfree(&t, i));
		}

	memcpy(b, a, size);
	region_unmap(a, size);
	t.base = b;
	for (size_t i = 0; i < t.n; i++)
		t.blocks[i].p = b + (t.blocks[i].p - a);
	map = map_of(b);

	/* Damage one listed slot in each of up to 64 slabs that still hold live blocks. */
	for (size_t f = 0; f < nfreed && damaged < ARRAY_SIZE(bad_chunks); f++) {
		size_t off = (size_t)(freed[f].p - a), rel = off - hdr(b)->data_offset;
		uint32_t ci = (uint32_t)(rel / LUO_HEAP_CHUNK), in = (uint32_t)(rel % LUO_HEAP_CHUNK);
		struct luo_heap_chunk *e = &map[ci];
		uint32_t cls, csize, slots;
		uint64_t w, next;
		bool seen = false;
		char *slot = b + off;

		if (e->kind < LUO_HEAP_KIND_SLAB)
			continue; /* released */
		cls = e->kind - LUO_HEAP_KIND_SLAB;
		csize = hdr(b)->class_size[cls];
		slots = LUO_HEAP_CHUNK / csize;
		if (e->nfree == slots)
			continue; /* no live block: only allocation would touch it */
		for (size_t k = 0; k < damaged; k++)
			seen |= bad_chunks[k] == ci;
		if (seen)
			continue;
		memcpy(&w, slot, sizeof(w));
		CHECK_EQ(w >> 16, LUO_HEAP_FREE_TAG);
		next = w & 0xffff;
		switch (damaged % 7) {
		case 0:
			w ^= rng_next(&r) | 1;
			break;
		case 1: /* a loop to itself */
			w = LUO_HEAP_FREE_TAG << 16 | in;
			break;
		case 2: /* back to the head: a cycle */
			w = LUO_HEAP_FREE_TAG << 16 | e->head;
			break;
		case 3: /* cut short, or a cycle if it was the end */
			w = LUO_HEAP_FREE_TAG << 16 | (next != LUO_HEAP_NO_SLOT ? LUO_HEAP_NO_SLOT : e->head);
			break;
		case 4: { /* to a live block of the slab */
			uint32_t live = LUO_HEAP_NO_SLOT;

			for (size_t k = 0; k < t.n && live == LUO_HEAP_NO_SLOT; k++) {
				size_t lrel = (size_t)(t.blocks[k].p - b) - hdr(b)->data_offset;

				if (lrel / LUO_HEAP_CHUNK == ci)
					live = (uint32_t)(lrel % LUO_HEAP_CHUNK);
			}
			CHECK(live != LUO_HEAP_NO_SLOT);
			w = LUO_HEAP_FREE_TAG << 16 | live;
			break;
		}
		case 5: /* the tag gone */
			w = next;
			break;
		default: /* misaligned */
			w = LUO_HEAP_FREE_TAG << 16 | ((in + 8) & 0xffff);
			break;
		}
		memcpy(slot, &w, sizeof(w));
		/* Half of them claim to be checked already in the epoch the check will start. */
		if (damaged % 2)
			e->epoch = (uint8_t)(hdr(b)->epoch + 1);
		bad_chunks[damaged++] = ci;
	}
	CHECK(damaged >= 20);
	for (size_t i = 0; i < t.n; i++) {
		size_t rel = (size_t)(t.blocks[i].p - b) - hdr(b)->data_offset;

		for (size_t k = 0; k < damaged; k++)
			if (bad_chunks[k] == rel / LUO_HEAP_CHUNK)
				expect_bad++;
	}

	gb = check_new(b, size); /* the map is intact: the lists are checked lazily */
	t.g = gb;
	CHECK_EQ(stats(&gb).quarantined, 0);
	/* Free every old block: the damaged slabs are touched, quarantined, their frees ignored. */
	while (t.n > 0)
		tfree(&t, t.n - 1);
	CHECK_EQ(stats(&gb).quarantined, damaged);
	CHECK_EQ(stats(&gb).bad_frees, expect_bad);
	check_bytes(&t);
	check_ok(&gb);
	/* Allocate and free at length: never a block over another, or over the quarantined ones. */
	workload(&t, &r, iters(30000), 3000);
	check_bytes(&t);
	check_ok(&gb);
	tfree_all(&t);
	CHECK_EQ(stats(&gb).bytes_in_use, 0);
	check_ok(&gb);
	CHECK_EQ(stats(&gb).quarantined, damaged);
	free(freed);
	tracker_fini(&t);
	region_unmap(b, size);
	ok("free-list corruption: seed %" PRIu64 ", %zu slabs damaged 7 ways (half pre-marked as checked), all "
	   "quarantined, %zu frees into them ignored, no overlap after",
	   seed, damaged, expect_bad);
}

/*
 * A region fenced far beyond its guard pages: the region, then LUO_HEAP_SIZE_MAX
 * bytes of inaccessible reservation (NORESERVE: address space only), so that
 * an offset the heap took from a scribbled header (anything up to a 1 TiB
 * region's) faults instead of landing in some other mapping. Falls back to
 * the plain guard pages where that much address space is not to be had.
 */
static char *region_map_fenced(size_t size, size_t *ret_fence)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), fence = (size_t)LUO_HEAP_SIZE_MAX;
	char *p = mmap(NULL, page + size + fence, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED) {
		*ret_fence = page;
		return region_map(size);
	}
	CHECK(mprotect(p + page, size, PROT_READ | PROT_WRITE) == 0);
	*ret_fence = fence;
	return p + page;
}

static void region_unmap_fenced(void *p, size_t size, size_t fence)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	CHECK(munmap((char *)p - page, page + size + fence) == 0);
}

/* [@p, @p + @n) inside the data area of @g (and a block's alignment if @block), or exit. */
static void check_in_data(const struct luo_heap_geom *g, const void *p, size_t n, bool block, const char *what)
{
	uintptr_t a = (uintptr_t)p, lo = (uintptr_t)g->base + g->data_offset, hi = (uintptr_t)g->base + g->size;

	if (a < lo || a > hi || n > hi - a || (block && a % LUO_HEAP_ALIGN != 0)) {
		fprintf(stderr, "%s: %p (%zu bytes) is not in the data area [%p, %p)\n", what, p, n, (void *)lo,
			(void *)hi);
		exit(1);
	}
}

static void on_release_scribbled(void *ctx, size_t offset, size_t len)
{
	const struct luo_heap_geom *g = ctx;

	CHECK(offset >= g->data_offset && (offset - g->data_offset) % LUO_HEAP_CHUNK == 0);
	CHECK(len % LUO_HEAP_CHUNK == 0 && len > 0);
	CHECK(offset <= g->size && len <= g->size - offset);
}

/* A value for a scribbled field: a plausible one near @near, an edge, or anything. */
static uint64_t scribble_value(struct rng *r, uint64_t near)
{
	switch (rng_below(r, 7)) {
	case 0:
		return rng_next(r);
	case 1:
		return (uint32_t)rng_next(r);
	case 2:
		return rng_below(r, near + 3);
	case 3:
		return near + rng_below(r, 5) - 2;
	case 4:
		return rng_below(r, 2) ? UINT64_MAX : UINT32_MAX;
	case 5:
		return (uint64_t)1 << rng_below(r, 64);
	default:
		return 0;
	}
}

/*
 * What a child of the old image (which still maps the region) or a stray
 * write could do to a checked heap's header: its geometry fields, its
 * other fields, raw random bytes; now and then the magic, version or
 * header size too (every call must then refuse), and now and then a few
 * words of the map and bitmap.
 */
static void scribble(char *b, const struct luo_heap_geom *g, struct rng *r)
{
	struct luo_heap *h = (struct luo_heap *)b;
	int times = 1 + (int)rng_below(r, 6);

	for (int k = 0; k < times; k++) {
		switch (rng_below(r, 24)) {
		case 0:
			h->size = scribble_value(r, g->size);
			break;
		case 1:
			h->map_offset = scribble_value(r, g->map_offset);
			break;
		case 2:
			h->bitmap_offset = scribble_value(r, g->bitmap_offset);
			break;
		case 3:
			h->data_offset = scribble_value(r, g->data_offset);
			break;
		case 4:
			h->nchunks = (uint32_t)scribble_value(r, g->nchunks);
			break;
		case 5:
			/* The reported case: a larger region whose data is 64 GiB away. */
			h->size = (uint64_t)64 << 30 | g->size;
			h->data_offset = (uint64_t)64 << 30;
			h->nchunks = (uint32_t)(h->size / LUO_HEAP_CHUNK);
			break;
		case 6:
			h->chunk_size = (uint32_t)scribble_value(r, LUO_HEAP_CHUNK);
			break;
		case 7:
			h->nclasses = (uint32_t)scribble_value(r, LUO_HEAP_CLASSES);
			break;
		case 8:
			h->epoch = (uint32_t)scribble_value(r, h->epoch);
			break;
		case 9:
			h->root = scribble_value(r, g->size);
			break;
		case 10:
			h->hint = (uint32_t)scribble_value(r, g->nchunks);
			break;
		case 11:
			h->type_digest = (uint32_t)rng_next(r);
			break;
		case 12:
			h->chunks_free = scribble_value(r, g->nchunks);
			break;
		case 13:
			h->quarantined = scribble_value(r, g->nchunks);
			break;
		case 14:
			h->bytes_in_use = scribble_value(r, g->size);
			break;
		case 15:
			h->bad_frees = rng_next(r);
			break;
		case 16:
			h->class_size[rng_below(r, LUO_HEAP_CLASSES)] = (uint32_t)scribble_value(r, LUO_HEAP_CHUNK);
			break;
		case 17:
		case 18:
			h->class_head[rng_below(r, LUO_HEAP_CLASSES)] = (uint32_t)scribble_value(r, g->nchunks);
			break;
		case 19:
		case 20: /* random bytes over the header, magic, version and header size kept */
			for (size_t off = 16; off < sizeof(*h); off++)
				if (rng_below(r, 4) == 0)
					b[off] = (char)rng_next(r);
			break;
		case 21: /* a map entry, or a bitmap word */
			if (rng_below(r, 2)) {
				struct luo_heap_chunk *e = (struct luo_heap_chunk *)(b + g->map_offset) +
							   rng_below(r, g->nchunks);

				for (size_t off = 0; off < sizeof(*e); off++)
					((uint8_t *)e)[off] = (uint8_t)rng_next(r);
				if (rng_below(r, 2))
					e->kind = (uint8_t)(LUO_HEAP_KIND_SLAB + rng_below(r, LUO_HEAP_CLASSES));
				if (rng_below(r, 2))
					e->epoch = (uint8_t)h->epoch;
			} else {
				((uint64_t *)(b + g->bitmap_offset))[rng_below(r, (g->nchunks + 63) / 64)] = rng_next(r);
			}
			break;
		case 22: /* the whole header, now and then: the calls must refuse */
			if (rng_below(r, 8) == 0)
				for (size_t off = 0; off < sizeof(*h); off++)
					b[off] = (char)rng_next(r);
			break;
		default:
			if (rng_below(r, 8) == 0) {
				if (rng_below(r, 3) == 0)
					h->magic ^= UINT64_C(1) << rng_below(r, 64);
				else if (rng_below(r, 2))
					h->version = (uint32_t)rng_next(r);
				else
					h->header_size = (uint32_t)scribble_value(r, sizeof(*h));
			}
			break;
		}
	}
}

/*
 * One call of the heap on @g, at random, with every result checked against
 * the geometry: blocks, the root and released ranges inside the data area,
 * statistics within the chunk count. Live blocks in @live.
 */
static void scribbled_call(const struct luo_heap_geom *g, struct rng *r, char **live, size_t *nlive, size_t cap,
			   unsigned long *handed_out)
{
	char *b = g->base;
	uint64_t d = rng_below(r, 16);

	if (d < 6) {
		size_t n = rng_below(r, 4) ? 1 + rng_below(r, 3000)
			   : rng_below(r, 2) ? 1 + rng_below(r, 200 * KiB) : 100000;
		char *p;

		errno = 0;
		p = luo_heap_alloc(g, n);
		if (!p) {
			CHECK(errno == ENOMEM || errno == EINVAL);
			return;
		}
		check_in_data(g, p, n, true, "luo_heap_alloc");
		p[0] = 1; /* faults if outside the region after all */
		p[n - 1] = 1;
		(*handed_out)++;
		if (*nlive < cap)
			live[(*nlive)++] = p;
	} else if (d < 10 && *nlive > 0) {
		size_t i = rng_below(r, *nlive);

		luo_heap_free(g, live[i], on_release_scribbled, (void *)g);
		live[i] = live[--(*nlive)];
	} else if (d < 11) {
		/* Garbage: in the region, around it, anywhere. */
		uintptr_t p = rng_below(r, 2) ? (uintptr_t)b - 4096 + rng_below(r, g->size + 8192)
					       : (uintptr_t)rng_next(r);

		luo_heap_free(g, (void *)p, on_release_scribbled, (void *)g);
	} else if (d < 12) {
		char *p = rng_below(r, 2) && *nlive > 0 ? live[rng_below(r, *nlive)]
			  : (char *)((uintptr_t)b + rng_below(r, g->size + 4096));
		int ret = luo_heap_set_root(g, p);

		CHECK(ret == 0 || ret == -EINVAL);
	} else if (d < 14) {
		void *p = luo_heap_root(g);

		if (p)
			check_in_data(g, p, 1, false, "luo_heap_root");
	} else {
		struct luo_heap_stats st;

		if (luo_heap_stats(g, &st) == 0) {
			CHECK(st.chunks_free <= g->nchunks);
			CHECK_EQ(st.chunks_in_use + st.chunks_free, g->nchunks);
			CHECK_EQ(st.metadata_bytes, g->data_offset);
		}
	}
}

/*
 * The geometry is private: after a check, the header (its geometry fields,
 * the others, raw bytes) and a little of the map are scribbled over, again
 * and again between calls, and alloc, free, root and stats must stay in
 * the region: every pointer handed out inside the data area, no access
 * outside (guard pages, and a 1 TiB fence after the region), no hang.
 */
static void test_header_scribble(uint64_t seed)
{
	size_t size = 1 * MiB, fence, nlive;
	struct tracker tt;
	char *tmpl = hostile_template(size, &tt), *b = region_map_fenced(size, &fence);
	struct rng r = rng_seed(seed);
	unsigned long n = iters(4000), handed_out = 0, refused = 0;
	char *live[64];
	struct luo_heap_geom g;
	char *p;

	/* The reported case, first: size and data offset moved after the check. */
	memcpy(b, tmpl, size);
	g = check_new(b, size);
	((struct luo_heap *)b)->size = (uint64_t)64 << 30 | size;
	((struct luo_heap *)b)->data_offset = (uint64_t)64 << 30;
	p = luo_heap_alloc(&g, 100000);
	CHECK(p);
	check_in_data(&g, p, 100000, true, "luo_heap_alloc after the size moved");
	p = luo_heap_alloc(&g, 100);
	CHECK(p);
	check_in_data(&g, p, 100, true, "luo_heap_alloc after the size moved");

	for (unsigned long it = 0; it < n; it++) {
		memcpy(b, tmpl, size);
		g = check_new(b, size);
		nlive = 0;
		scribble(b, &g, &r);
		for (int k = 0; k < 100; k++) {
			if (rng_below(&r, 10) == 0)
				scribble(b, &g, &r);
			scribbled_call(&g, &r, live, &nlive, ARRAY_SIZE(live), &handed_out);
		}
		errno = 0;
		if (!luo_heap_alloc(&g, 16) && errno == EINVAL)
			refused++;
	}
	tracker_fini(&tt);
	region_unmap(tmpl, size);
	region_unmap_fenced(b, size, fence);
	ok("header scribble: seed %" PRIu64 ", %lu checked heaps scribbled over (geometry, other fields, raw bytes, "
	   "map) between calls; %lu blocks handed out, all in the data area; %lu heaps refusing at the end; "
	   "%zu bytes fenced after the region",
	   seed, n, handed_out, refused, fence);
}

struct scribbler {
	char *b;
	size_t size;
	uint64_t seed;
	int stop;
	unsigned long writes;
};

/* Random words anywhere in the region past the magic, version and header size, as fast as it can. */
static void *scribbler_main(void *arg)
{
	struct scribbler *s = arg;
	struct rng r = rng_seed(s->seed);

	while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
		/* Mostly the header and the map, which the calls read all the time. */
		uint64_t span = rng_below(&r, 4) ? 2 * LUO_HEAP_CHUNK : s->size, off = 16 + rng_below(&r, span - 16);
		uint64_t w = rng_below(&r, 2) ? rng_next(&r) : rng_below(&r, 300);

		__atomic_store_n((uint64_t *)(void *)(s->b + off / 8 * 8), w, __ATOMIC_RELAXED);
		s->writes++;
	}
	return NULL;
}

/*
 * The same with the writes concurrent: a thread scribbles the region while
 * this one calls the heap, so values change between a check and its use
 * inside a call. Still every pointer in the data area, no stray access.
 * Every 500 calls the region is copied from the template again (the heap
 * would leak away otherwise) and checked, under the same writes: the check
 * too must stay in the region and end, and accept or refuse cleanly.
 */
static void test_concurrent_scribble(uint64_t seed)
{
	size_t size = 1 * MiB, fence, nlive = 0;
	struct tracker tt;
	char *tmpl = hostile_template(size, &tt), *b = region_map_fenced(size, &fence);
	struct scribbler s = { .b = b, .size = size, .seed = seed };
	struct rng r = rng_seed(seed + 1000);
	unsigned long n = iters(100000), handed_out = 0, accepted = 0;
	struct luo_heap_geom g, again;
	char *live[64];
	pthread_t th;

	memcpy(b, tmpl, size);
	g = check_new(b, size);
	CHECK(pthread_create(&th, NULL, scribbler_main, &s) == 0);
	for (unsigned long k = 0; k < n; k++) {
		if (k % 500 == 499) {
			int ret;

			memcpy(b, tmpl, size);
			nlive = 0;
			ret = luo_heap_check(b, size, &again, NULL, 0);
			CHECK(ret == 0 || ret == -EBADMSG);
			if (ret == 0) {
				CHECK(memcmp(&again, &g, sizeof(g)) == 0);
				accepted++;
			}
		}
		scribbled_call(&g, &r, live, &nlive, ARRAY_SIZE(live), &handed_out);
	}
	__atomic_store_n(&s.stop, 1, __ATOMIC_RELAXED);
	CHECK(pthread_join(th, NULL) == 0);
	tracker_fini(&tt);
	region_unmap(tmpl, size);
	region_unmap_fenced(b, size, fence);
	ok("concurrent scribble: seed %" PRIu64 ", %lu calls while a thread wrote %lu random words into the region; "
	   "%lu blocks handed out, all in the data area; %lu of %lu checks under the writes accepted",
	   seed, n, s.writes, handed_out, accepted, n / 500);
}

/* Printed, not asserted: N small blocks allocated, then freed in random order. */
static void test_throughput(void)
{
	size_t size = 256 * MiB, n = scale == 0 ? 50000 : 500000; /* ~75 MiB at most */
	char *base = region_map(size);
	void **p = calloc(n, sizeof(*p));
	size_t *sz = calloc(n, sizeof(*sz)), *order = calloc(n, sizeof(*order));
	struct rng r = rng_seed(5);
	double t0, t_heap_a, t_heap_f, t_malloc_a, t_malloc_f, t_pp_heap, t_pp_malloc;
	struct luo_heap_geom g;

	CHECK(p && sz && order);
	g = format_ok(base, size);
	for (size_t i = 0; i < n; i++) {
		sz[i] = 16 + rng_below(&r, 241);
		order[i] = i;
	}
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = rng_below(&r, i + 1), x = order[i];

		order[i] = order[j];
		order[j] = x;
	}

	t0 = now_ns();
	for (size_t i = 0; i < n; i++) {
		p[i] = luo_heap_alloc(&g, sz[i]);
		*(char *)p[i] = 1; /* a NULL faults: the region is sized for n */
	}
	t_heap_a = now_ns() - t0;
	t0 = now_ns();
	for (size_t i = 0; i < n; i++)
		luo_heap_free(&g, p[order[i]], NULL, NULL);
	t_heap_f = now_ns() - t0;
	CHECK_EQ(stats(&g).bytes_in_use, 0);
	CHECK_EQ(stats(&g).bad_frees, 0);

	t0 = now_ns();
	for (size_t i = 0; i < n; i++) {
		p[i] = malloc(sz[i]);
		*(char *)p[i] = 1;
	}
	t_malloc_a = now_ns() - t0;
	t0 = now_ns();
	for (size_t i = 0; i < n; i++)
		free(p[order[i]]);
	t_malloc_f = now_ns() - t0;

	/* One block at a time: the kept slab spares a chunk per round trip. */
	t0 = now_ns();
	for (size_t i = 0; i < n; i++) {
		void *q = luo_heap_alloc(&g, sz[i]);

		*(volatile char *)q = 1;
		luo_heap_free(&g, q, NULL, NULL);
	}
	t_pp_heap = now_ns() - t0;
	t0 = now_ns();
	for (size_t i = 0; i < n; i++) {
		void *q = malloc(sz[i]);

		*(volatile char *)q = 1;
		free(q);
	}
	t_pp_malloc = now_ns() - t0;

	check_ok(&g);
	printf("# throughput, %zu blocks of 16..256 B (ns per call)\n", n);
	printf("#   luo_heap: alloc %6.1f  free %6.1f  alloc+free %6.1f\n", t_heap_a / (double)n,
	       t_heap_f / (double)n, t_pp_heap / (double)n);
	printf("#   malloc:   alloc %6.1f  free %6.1f  alloc+free %6.1f\n", t_malloc_a / (double)n,
	       t_malloc_f / (double)n, t_pp_malloc / (double)n);
	free(p);
	free(sz);
	free(order);
	region_unmap(base, size);
	ok("throughput measured (not asserted)");
}

int main(void)
{
	const char *s = getenv("LUO_HEAP_TEST_SCALE");

	if (s)
		scale = (unsigned)strtoul(s, NULL, 10);
	s = getenv("LUO_HEAP_TEST_SEED");
	if (s)
		seed_base = strtoull(s, NULL, 10);
	test_begin();
	test_format();
	test_sizes();
	test_random(seed_base + 1);
	test_random(seed_base + 2);
	test_large();
	test_full();
	test_bad_frees();
	test_tcache();
	test_root();
	test_release();
	test_punch_hole();
	test_relocate();
	test_header_corruption();
	test_map_targeted();
	test_use_after_free();
	test_map_fuzz(seed_base + 1);
	test_map_fuzz(seed_base + 2);
	test_freelist_corruption(seed_base + 1);
	test_freelist_corruption(seed_base + 2);
	test_header_scribble(seed_base + 1);
	test_header_scribble(seed_base + 2);
	test_concurrent_scribble(seed_base + 1);
	test_throughput();
	check_no_fd_leak();
	return 0;
}
