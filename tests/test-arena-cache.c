/* SPDX-License-Identifier: MIT */
/*
 * The arena allocator's per-thread caches (heap.h, "thread caches"):
 *
 *   stress     4 threads allocating, writing, checking and freeing small
 *              and larger blocks, a quarter of them freed by another thread
 *              (a mailbox); every byte of every block checked at its free,
 *              so a block handed out twice shows; after the joins, the
 *              heap's bytes in use are back where they were (the exiting
 *              threads' caches flushed) and a copy of the region passes
 *              luo_heap_check()
 *   exit       a thread's frees are cached (bytes in use stay up while it
 *              lives) and flushed when it exits (back down, exactly)
 *   double     a double free in the same thread and from another thread
 *              while the block is cached: both ignored and counted, and the
 *              block handed out once only
 *   handover   3 threads and the main thread with non-empty caches and
 *              live blocks at the luo_update(): the next image finds
 *              exactly the live blocks in use (the caches were flushed at
 *              the freeze: nothing leaked), their bytes intact, and 20,000
 *              new blocks overlap none of them
 *
 * One binary, two images: "test-arena-cache" runs the first four parts and
 * updates to itself with "next".
 */

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "heap.h"
#include "luo/luo.h"
#include "test-util.h"

#define ARENA_SIZE (32u << 20)
#define TOKEN 1
#define STRESS_THREADS 4
#define STRESS_OPS 150000
#define STRESS_SLOTS 512
#define MAILBOX 256
#define HANDOVER_THREADS 3
#define HANDOVER_LIVE 300
#define ROOT_BYTES (64u * 1024u) /* one run of a chunk: exactly 65,536 bytes in use */
#define ROOT_MAGIC 0x6361636865726f6full
#define NEXT_BLOCKS 20000

/* Exact class sizes, so the bytes in use are the sum of the sizes asked for. */
static const uint32_t class_sizes[] = { 16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512, 1024 };
#define N_SIZES (sizeof(class_sizes) / sizeof(class_sizes[0]))

struct live {
	uint8_t *p;
	uint32_t size;
	uint32_t seed;
};

struct root {
	uint64_t magic;
	uint64_t expected_in_use;
	uint64_t bad_frees;
	uint32_t n;
	struct live blk[HANDOVER_LIVE * (HANDOVER_THREADS + 1)];
};
_Static_assert(sizeof(struct root) <= ROOT_BYTES, "the root fits its run");

static uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
	return *x;
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 131);
}

static bool intact(const uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (uint8_t)(seed + i * 131))
			return false;
	return true;
}

static struct luo_heap_stats stats(struct luo_arena *a)
{
	struct luo_heap_geom g;
	struct luo_heap_stats st;

	CHECK_OK(luo_heap_geometry(luo_arena_base(a), luo_arena_size(a), &g));
	CHECK_OK(luo_heap_stats(&g, &st));
	return st;
}

/* luo_heap_check() on a copy: the live region is left as it is. */
static void check_copy(struct luo_arena *a)
{
	size_t size = luo_arena_size(a);
	void *copy = aligned_alloc(4096, size);
	struct luo_heap_geom g;
	char reason[256] = "";
	int r;

	CHECK(copy != NULL);
	memcpy(copy, luo_arena_base(a), size);
	r = luo_heap_check(copy, size, &g, reason, sizeof(reason));
	if (r < 0)
		fprintf(stderr, "luo_heap_check: %s\n", reason);
	CHECK_OK(r);
	free(copy);
}

/* ---- stress ------------------------------------------------------------- */

struct mailbox {
	pthread_mutex_t lock;
	struct live item[MAILBOX];
	size_t n;
};

struct stress {
	struct luo_arena *a;
	struct mailbox box;
	pthread_barrier_t done;
	int index;
	uint64_t frees_received;
};

static struct stress stress_shared;

static void free_checked(struct luo_arena *a, const struct live *l)
{
	CHECK(intact(l->p, l->size, l->seed));
	luo_arena_free(a, l->p);
}

static void *stress_thread(void *arg)
{
	struct stress *S = &stress_shared;
	int t = (int)(intptr_t)arg;
	struct live mine[STRESS_SLOTS] = { 0 };
	uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(t + 1);
	uint32_t seed = (uint32_t)t << 24;

	for (int i = 0; i < STRESS_OPS; i++) {
		uint64_t r = xorshift(&x);
		struct live *l = &mine[r % STRESS_SLOTS];

		if (l->p) {
			if ((r >> 20) % 4 == 0) {
				/* Handed to another thread to free; take one of theirs when it is full. */
				struct live other = { 0 };

				pthread_mutex_lock(&S->box.lock);
				if (S->box.n == MAILBOX)
					other = S->box.item[--S->box.n];
				S->box.item[S->box.n++] = *l;
				pthread_mutex_unlock(&S->box.lock);
				if (other.p) {
					free_checked(S->a, &other);
					__atomic_add_fetch(&S->frees_received, 1, __ATOMIC_RELAXED);
				}
			} else {
				free_checked(S->a, l);
			}
		}
		/* Mostly cached sizes (1..256), some not (257..1100). */
		l->size = (r >> 32) % 8 ? 1 + (uint32_t)((r >> 36) % 256) : 257 + (uint32_t)((r >> 36) % 844);
		l->seed = seed++;
		l->p = luo_arena_alloc(S->a, l->size);
		CHECK(l->p != NULL);
		fill(l->p, l->size, l->seed);
	}
	for (int i = 0; i < STRESS_SLOTS; i++)
		if (mine[i].p)
			free_checked(S->a, &mine[i]);
	pthread_barrier_wait(&S->done);
	if (t == 0) {
		/* The last mailbox items, freed by a thread that is about to exit too. */
		pthread_mutex_lock(&S->box.lock);
		while (S->box.n > 0)
			free_checked(S->a, &S->box.item[--S->box.n]);
		pthread_mutex_unlock(&S->box.lock);
	}
	return NULL;
}

static void test_stress(struct luo_arena *a)
{
	pthread_t tid[STRESS_THREADS];
	struct luo_heap_stats before = stats(a), after;

	stress_shared.a = a;
	pthread_mutex_init(&stress_shared.box.lock, NULL);
	CHECK(pthread_barrier_init(&stress_shared.done, NULL, STRESS_THREADS) == 0);
	for (int t = 0; t < STRESS_THREADS; t++)
		CHECK(pthread_create(&tid[t], NULL, stress_thread, (void *)(intptr_t)t) == 0);
	for (int t = 0; t < STRESS_THREADS; t++)
		CHECK(pthread_join(tid[t], NULL) == 0);
	pthread_barrier_destroy(&stress_shared.done);
	pthread_mutex_destroy(&stress_shared.box.lock);
	after = stats(a);
	CHECK(stress_shared.frees_received > 0);
	CHECK_EQ(after.bytes_in_use, before.bytes_in_use);
	CHECK_EQ(after.bad_frees, before.bad_frees);
	check_copy(a);
	printf("ok - %d threads x %d allocations (every byte checked at the free, %" PRIu64
	       " freed by another thread): bytes in use back to %zu after the joins, no bad free, the region checks\n",
	       STRESS_THREADS, STRESS_OPS, stress_shared.frees_received, after.bytes_in_use);
}

/* ---- exit --------------------------------------------------------------- */

struct exit_arg {
	struct luo_arena *a;
	pthread_barrier_t freed, go;
};

static void *exit_thread(void *arg)
{
	struct exit_arg *e = arg;
	void *p[100];

	for (int i = 0; i < 100; i++) {
		p[i] = luo_arena_alloc(e->a, 48);
		CHECK(p[i] != NULL);
		memset(p[i], 0x3c, 48);
	}
	for (int i = 0; i < 100; i++)
		luo_arena_free(e->a, p[i]);
	pthread_barrier_wait(&e->freed);
	pthread_barrier_wait(&e->go);
	return NULL;
}

static void test_exit(struct luo_arena *a)
{
	struct exit_arg e = { .a = a };
	struct luo_heap_stats before = stats(a), during, after;
	pthread_t tid;

	CHECK(pthread_barrier_init(&e.freed, NULL, 2) == 0);
	CHECK(pthread_barrier_init(&e.go, NULL, 2) == 0);
	CHECK(pthread_create(&tid, NULL, exit_thread, &e) == 0);
	pthread_barrier_wait(&e.freed);
	during = stats(a);
	pthread_barrier_wait(&e.go);
	CHECK(pthread_join(tid, NULL) == 0);
	after = stats(a);
	/* Freed, yet cached by the live thread: at most a class's bound of them. */
	CHECK(during.bytes_in_use > before.bytes_in_use);
	CHECK(during.bytes_in_use - before.bytes_in_use <= LUO_HEAP_TCACHE_BLOCKS * 48);
	CHECK_EQ(after.bytes_in_use, before.bytes_in_use);
	printf("ok - a thread's 100 frees of 48 B: %zu bytes held in its cache while it lives, 0 after it exits\n",
	       during.bytes_in_use - before.bytes_in_use);
	pthread_barrier_destroy(&e.freed);
	pthread_barrier_destroy(&e.go);
}

/* ---- double ------------------------------------------------------------- */

static void *double_thread(void *arg)
{
	void **pp = arg;

	luo_arena_free(pp[0], pp[1]);
	return NULL;
}

static void test_double(struct luo_arena *a)
{
	struct luo_heap_stats before = stats(a), after;
	void *p = luo_arena_alloc(a, 64), *args[2] = { a, p }, *got[200];
	pthread_t tid;
	int seen = 0;

	CHECK(p != NULL);
	memset(p, 0x77, 64);
	luo_arena_free(a, p);
	luo_arena_free(a, p); /* the same thread: it is in this thread's cache */
	CHECK_EQ(stats(a).bad_frees, before.bad_frees + 1);
	CHECK(pthread_create(&tid, NULL, double_thread, args) == 0);
	CHECK(pthread_join(tid, NULL) == 0); /* another thread, while it is in this one's cache */
	after = stats(a);
	CHECK_EQ(after.bad_frees, before.bad_frees + 2);
	for (int i = 0; i < 200; i++) {
		got[i] = luo_arena_alloc(a, 64);
		CHECK(got[i] != NULL);
		seen += got[i] == p;
		for (int j = 0; j < i; j++)
			CHECK(got[j] != got[i]);
	}
	CHECK_EQ(seen, 1);
	for (int i = 0; i < 200; i++)
		luo_arena_free(a, got[i]);
	CHECK_EQ(stats(a).bad_frees, before.bad_frees + 2);
	printf("ok - a double free in the same thread and one from another thread: both ignored and counted, "
	       "the block handed out once in the next 200\n");
}

/* ---- handover ----------------------------------------------------------- */

struct handover {
	struct luo_arena *a;
	struct root *root;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int ready;
};

static struct handover H = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

/* @n live blocks recorded in the root, and churn that leaves this thread's cache non-empty. */
static void make_live(struct luo_arena *a, struct root *root, uint32_t first, uint32_t n, uint64_t x)
{
	void *tmp[400];

	for (uint32_t i = 0; i < n; i++) {
		struct live *l = &root->blk[first + i];

		l->size = class_sizes[xorshift(&x) % N_SIZES];
		l->seed = first + i;
		l->p = luo_arena_alloc(a, l->size);
		CHECK(l->p != NULL);
		fill(l->p, l->size, l->seed);
	}
	for (int i = 0; i < 400; i++) {
		tmp[i] = luo_arena_alloc(a, class_sizes[xorshift(&x) % 12]);
		CHECK(tmp[i] != NULL);
	}
	for (int i = 0; i < 400; i++)
		luo_arena_free(a, tmp[i]);
}

static void *handover_thread(void *arg)
{
	uint32_t t = (uint32_t)(uintptr_t)arg;

	make_live(H.a, H.root, (t + 1) * HANDOVER_LIVE, HANDOVER_LIVE, 0x51ed270b27a6d2c5ull * (t + 1));
	pthread_mutex_lock(&H.lock);
	H.ready++;
	pthread_cond_broadcast(&H.cond);
	/* Alive, its cache full of free blocks, until the exec ends it. */
	for (;;)
		pthread_cond_wait(&H.cond, &H.lock);
	return NULL;
}

static int first_image(const char *self)
{
	struct luo *luo;
	struct luo_session *s;
	struct luo_arena *a;
	struct root *root;
	pthread_t tid[HANDOVER_THREADS];
	uint64_t expected = ROOT_BYTES;
	char fds_arg[16];
	int r;

	CHECK_OK(luo_open(0, &luo));
	CHECK_OK(luo_session_create(luo, "cache", &s));
	CHECK_OK(luo_arena_create(s, TOKEN, ARENA_SIZE, 0, &a));

	test_stress(a);
	test_exit(a);
	test_double(a);

	/* Everything above was freed: what is in use now sits in this thread's cache (the double test's frees). */
	CHECK(stats(a).bytes_in_use <= LUO_HEAP_TCACHE_BLOCKS * 64);
	root = luo_arena_alloc(a, ROOT_BYTES);
	CHECK(root != NULL);
	memset(root, 0, sizeof(*root));
	root->magic = ROOT_MAGIC;
	root->n = HANDOVER_LIVE * (HANDOVER_THREADS + 1);
	H.a = a;
	H.root = root;
	for (uint32_t t = 0; t < HANDOVER_THREADS; t++)
		CHECK(pthread_create(&tid[t], NULL, handover_thread, (void *)(uintptr_t)t) == 0);
	make_live(a, root, 0, HANDOVER_LIVE, 0x2545f4914f6cdd1dull);
	pthread_mutex_lock(&H.lock);
	while (H.ready < HANDOVER_THREADS)
		pthread_cond_wait(&H.cond, &H.lock);
	pthread_mutex_unlock(&H.lock);
	for (uint32_t i = 0; i < root->n; i++)
		expected += root->blk[i].size;
	root->expected_in_use = expected;
	root->bad_frees = stats(a).bad_frees;
	CHECK_OK(luo_arena_set_root(a, root));
	/* The caches hold free blocks now: more in use than is live. */
	CHECK(stats(a).bytes_in_use > expected);
	printf("ok - handover: %u live blocks (%" PRIu64 " bytes with the root), %zu more bytes in 4 threads' "
	       "caches at the update\n", root->n, expected, stats(a).bytes_in_use - expected);

	snprintf(fds_arg, sizeof(fds_arg), "%d", test_fds_at_start);
	{
		char *next_argv[] = { (char *)self, "next", fds_arg, NULL };

		fflush(NULL);
		r = luo_update(luo, self, next_argv, NULL);
	}
	fprintf(stderr, "luo_update returned %d (%s)\n", r, strerror(-r));
	return 1;
}

static int next_image(int fds_at_start)
{
	struct luo *luo;
	struct luo_session *s;
	struct luo_arena *a;
	struct root *root;
	struct luo_heap_stats st;
	static struct live fresh[NEXT_BLOCKS];
	uint64_t x = 0x853c49e6748fea9bull, bad_frees;

	CHECK_OK(luo_open(0, &luo));
	CHECK(luo_is_incoming(luo));
	CHECK_OK(luo_session_retrieve(luo, "cache", &s));
	CHECK_OK(luo_arena_retrieve(s, TOKEN, &a));
	CHECK_OK(luo_arena_check(a, NULL));
	root = luo_arena_root(a);
	CHECK(root != NULL && root->magic == ROOT_MAGIC);
	st = stats(a);
	/* The caches went back to the heap at the freeze: exactly the live blocks are in use. */
	CHECK_EQ(st.bytes_in_use, root->expected_in_use);
	CHECK_EQ(st.bad_frees, root->bad_frees);
	bad_frees = root->bad_frees;
	for (uint32_t i = 0; i < root->n; i++)
		CHECK(intact(root->blk[i].p, root->blk[i].size, root->blk[i].seed));
	printf("ok - next image: exactly the %" PRIu64 " live bytes in use, every live block intact\n",
	       root->expected_in_use);

	for (uint32_t i = 0; i < NEXT_BLOCKS; i++) {
		fresh[i].size = 1 + (uint32_t)(xorshift(&x) % 300);
		fresh[i].seed = 0x40000000u + i;
		fresh[i].p = luo_arena_alloc(a, fresh[i].size);
		CHECK(fresh[i].p != NULL);
		fill(fresh[i].p, fresh[i].size, fresh[i].seed);
	}
	for (uint32_t i = 0; i < root->n; i++)
		CHECK(intact(root->blk[i].p, root->blk[i].size, root->blk[i].seed));
	for (uint32_t i = 0; i < NEXT_BLOCKS; i++) {
		CHECK(intact(fresh[i].p, fresh[i].size, fresh[i].seed));
		luo_arena_free(a, fresh[i].p);
	}
	for (uint32_t i = 0; i < root->n; i++)
		luo_arena_free(a, root->blk[i].p);
	luo_arena_free(a, root);
	CHECK_OK(luo_arena_set_root(a, NULL));
	check_copy(a);
	CHECK_EQ(stats(a).bad_frees, bad_frees);
	printf("ok - %d new blocks overlap none of the live ones, all freed, the region checks\n", NEXT_BLOCKS);

	CHECK_OK(luo_session_finish(s));
	luo_session_close(s);
	luo_arena_close(a);
	luo_close(luo);
	check_no_fd_leak_from(fds_at_start);
	printf("ok - no fd leaked in either image\n");
	return 0;
}

int main(int argc, char **argv)
{
	char self[4096];
	ssize_t len;

	test_begin();
	if (argc == 3 && strcmp(argv[1], "next") == 0)
		return next_image(atoi(argv[2]));
	unsetenv(LUO_HANDOVER_FD_ENV);
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	CHECK(len > 0);
	self[len] = '\0';
	return first_image(self);
}
