/* SPDX-License-Identifier: MIT */
/*
 * bench/arena-blackout: does the blackout grow with the data kept in an
 * arena? And what does the arena's allocator cost?
 *
 *   arena-blackout [--sizes 16M,1G,8G] [--fill PERCENT] [--runs N] [--collapse] [--allocator-only]
 *
 * For each size, a child process creates an arena, fills it with live
 * data (linked 4 KiB nodes, each page written, until PERCENT of it is in
 * use), live-updates to this same binary and, in the new image, retrieves
 * the arena (its allocator header is checked there) and calls luo_ready().
 * libluo's own timings give the blackout (first freeze in the old image to
 * luo_ready() in the new one). After it, and not counted, the deferred
 * check of the allocator's chunk map (luo_arena_check(), printed as
 * "check": what the first allocation after an update pays), the populate
 * thread mapping the arena's data back (luo_arena_populate_start(), waited
 * for, printed as "populate"; with --collapse the old image turned the
 * data into 2 MiB pages first, LUO_ARENA_POPULATE_COLLAPSE), and the walk
 * that verifies every node. Each size runs N times (default 5), in
 * rounds of every size once (16M, 1G, 8G, then again), so that the
 * machine's drift over a run weighs on all sizes alike; the row shown is
 * the run with the median blackout, with the range of all runs, and the
 * ratio is of medians. Then, in this process, small-object allocation
 * throughput of the arena against glibc malloc, same sizes, same order, with
 * 1, 2 and 4 threads, side by side with the ratio (--allocator-only: that
 * table alone).
 *
 * After each run, two floors: the same binary exec'd without libluo, mapping
 * a memfd of the arena's size and reading its last page; "floor" with an
 * empty memfd, "filled" after writing as much data into it as the arena
 * held, the same way (run_floor()). Medians; each round runs the floors
 * after the arena's run or before it, in turn.
 *
 * Prints one table; the targets (README, issue 16) are a blackout ratio of
 * at most 1.3 from the smallest to the largest arena, the largest arena's
 * blackout within 1.5x of its floor, and allocator metadata under 0.1% of
 * the arena. Figures from a shared machine: run it a few times.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "heap.h"
#include "luo/luo.h"

#define NODE_SIZE 4096
#define SIZES_MAX 8
#define RUNS_MAX 20
#define THROUGHPUT_OPS 4000000
#define THREADS_MAX 4
#define ALLOC_ROUNDS 5
#define NODE_MAGIC 0x6c756f2d6e6f6465ull

struct node {
	struct node *next;
	uint64_t magic;
	uint64_t index;
	uint64_t sum; /* of the bytes below */
	uint8_t bytes[NODE_SIZE - 32];
};

struct result {
	uint64_t size, used, nodes, meta;
	uint64_t blackout_ns, freeze_ns, serialize_ns, exec_ns, restore_ns, retrieve_ns, check_ns;
	uint64_t populate_ns, populated; /* luo_arena_populate_start(), after the check */
	int ok;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int parse_size(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	if (*end == 'K')
		v <<= 10, end++;
	else if (*end == 'M')
		v <<= 20, end++;
	else if (*end == 'G')
		v <<= 30, end++;
	if (*end || v < LUO_ARENA_SIZE_MIN || v > LUO_ARENA_SIZE_MAX || v % (64 << 10))
		return -EINVAL;
	*ret = v;
	return 0;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "arena-blackout: %s: %s\n", what, strerror(err));
	exit(2);
}

/* A decimal integer in [lo, hi], nothing else. */
static int parse_int(const char *s, int lo, int hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "arena-blackout: '%s': expected an integer in [%d, %d]\n", s, lo, hi);
		exit(2);
	}
	return (int)v;
}

static int cmp_blackout(const void *x, const void *y)
{
	const struct result *a = x, *b = y;

	return a->blackout_ns < b->blackout_ns ? -1 : a->blackout_ns > b->blackout_ns;
}

/* Wait for the populate thread; its final status (dies unless it is done). */
static struct luo_arena_populate_status populate_wait(struct luo_arena *a)
{
	struct luo_arena_populate_status ps;

	for (;;) {
		struct timespec ms = { .tv_nsec = 1000000 };

		luo_arena_populate_status(a, &ps);
		if (ps.state != LUO_ARENA_POPULATE_RUNNING)
			break;
		nanosleep(&ms, NULL);
	}
	if (ps.state != LUO_ARENA_POPULATE_DONE)
		die("the populate thread", ps.error ? -ps.error : EINTR);
	luo_arena_populate_stop(a);
	return ps;
}

/* Old image: fill an arena of @size (@collapse: then into huge pages) and hand it over to ourselves. */
static int stage_fill(const char *self, uint64_t size, int percent, int collapse, const char *out)
{
	struct luo *luo;
	struct luo_session *s;
	struct luo_arena *a;
	struct node *head = NULL;
	uint64_t target = size / 100 * (uint64_t)percent, used = 0, n = 0;
	char size_arg[32];
	int r;

	r = luo_open(0, &luo);
	if (r < 0)
		die("luo_open", -r);
	r = luo_session_create(luo, "bench", &s);
	if (r == 0)
		r = luo_arena_create(s, 1, size, 0, &a);
	if (r < 0)
		die("luo_arena_create", -r);
	while (used + NODE_SIZE <= target) {
		struct node *p = luo_arena_alloc(a, sizeof(*p));
		uint64_t sum = 0;

		if (!p)
			break;
		p->next = head;
		p->magic = NODE_MAGIC;
		p->index = n++;
		for (size_t i = 0; i < sizeof(p->bytes); i += 512) {
			p->bytes[i] = (uint8_t)(n + i);
			sum += p->bytes[i];
		}
		p->sum = sum;
		head = p;
		used += NODE_SIZE;
	}
	luo_arena_set_root(a, head);
	if (collapse) {
		r = luo_arena_populate_start(a, 0, LUO_ARENA_POPULATE_NORMAL | LUO_ARENA_POPULATE_COLLAPSE);
		if (r < 0)
			die("luo_arena_populate_start (collapse)", -r);
		if (populate_wait(a).collapse_refused)
			die("MADV_COLLAPSE", EOPNOTSUPP);
	}
	snprintf(size_arg, sizeof(size_arg), "%" PRIu64, size);
	{
		char *argv[] = { (char *)self, "--stage-check", size_arg, (char *)out, NULL };

		fflush(NULL);
		r = luo_update(luo, self, argv, NULL);
	}
	die("luo_update", -r);
	return 2;
}

/* New image: retrieve, ready, then verify and report. */
static int stage_check(uint64_t size, const char *out)
{
	struct result res = { .size = size };
	struct luo_heap_stats st;
	struct luo_heap_geom geom;
	struct luo_timings t;
	struct luo *luo;
	struct luo_session *s;
	struct luo_arena *a;
	uint64_t t0, n = 0;
	FILE *f;
	int r;

	r = luo_open(0, &luo);
	if (r < 0)
		die("luo_open (new image)", -r);
	t0 = now_ns();
	r = luo_session_retrieve(luo, "bench", &s);
	if (r == 0)
		r = luo_arena_retrieve(s, 1, &a);
	if (r < 0)
		die("luo_arena_retrieve", -r);
	res.retrieve_ns = now_ns() - t0;
	luo_ready(luo);
	luo_timings(luo, &t);
	res.blackout_ns = t.blackout_ns;
	res.freeze_ns = t.freeze_ns;
	res.serialize_ns = t.serialize_ns;
	res.exec_ns = t.exec_ns;
	res.restore_ns = t.restore_ns;
	/* The allocator's deferred check, paid after the blackout: shown, not hidden. */
	t0 = now_ns();
	r = luo_arena_check(a, NULL);
	if (r < 0)
		die("luo_arena_check", -r);
	res.check_ns = now_ns() - t0;
	/* Then the page tables: the populate thread at this process's priority, waited for. */
	r = luo_arena_populate_start(a, 0, LUO_ARENA_POPULATE_NORMAL);
	if (r < 0)
		die("luo_arena_populate_start", -r);
	{
		struct luo_arena_populate_status ps = populate_wait(a);

		res.populate_ns = ps.elapsed_ns;
		res.populated = ps.populated;
	}

	res.ok = 1;
	for (struct node *p = luo_arena_root(a); p; p = p->next) {
		uint64_t sum = 0;

		for (size_t i = 0; i < sizeof(p->bytes); i += 512)
			sum += p->bytes[i];
		if (p->magic != NODE_MAGIC || sum != p->sum)
			res.ok = 0;
		n++;
	}
	res.nodes = n;
	/* The geometry from the size libluo mapped and checked, as the arena keeps its own. */
	if (luo_heap_geometry(luo_arena_base(a), luo_arena_size(a), &geom) == 0 && luo_heap_stats(&geom, &st) == 0) {
		res.used = st.bytes_in_use;
		res.meta = st.metadata_bytes;
	}
	f = fopen(out, "we");
	if (!f || fwrite(&res, sizeof(res), 1, f) != 1 || fclose(f) != 0)
		die(out, errno);
	luo_arena_close(a);
	luo_close(luo);
	return 0;
}

/*
 * Wait for every descendant left behind: libluo's mm reaper and the
 * floor's holder outlive the process that made them and tear down an
 * address space of the arena's size after it; the next measurement must
 * not run beside that. This process is their subreaper (main()), so they
 * come back to it; __WALL: they are clone() children with no exit signal.
 */
static void reap_descendants(void)
{
	while (waitpid(-1, NULL, __WALL) > 0 || errno == EINTR)
		;
}

static int run_size(const char *self, uint64_t size, int percent, int collapse, struct result *res)
{
	char out[] = "/tmp/luo-arena-bench-XXXXXX";
	char size_arg[32], pct[16], huge[2] = { collapse ? '1' : '0', 0 };
	int fd = mkstemp(out), status;
	pid_t pid;
	FILE *f;

	if (fd < 0)
		die("mkstemp", errno);
	close(fd);
	snprintf(size_arg, sizeof(size_arg), "%" PRIu64, size);
	snprintf(pct, sizeof(pct), "%d", percent);
	pid = fork();
	if (pid < 0)
		die("fork", errno);
	if (pid == 0) {
		execl(self, self, "--stage-fill", size_arg, pct, huge, out, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		reap_descendants();
		unlink(out);
		return -1;
	}
	reap_descendants();
	f = fopen(out, "re");
	if (!f || fread(res, sizeof(*res), 1, f) != 1) {
		if (f)
			fclose(f);
		unlink(out);
		return -1;
	}
	fclose(f);
	unlink(out);
	return 0;
}

/*
 * The floors: what any exec that keeps an arena pays, without libluo. The
 * old image makes a memfd of @size (not close-on-exec) and execs this
 * binary; the new one maps it and reads its last page. Nanoseconds from
 * just before execve() to after that read (CLOCK_MONOTONIC is one clock for
 * both images), or 0 on failure.
 *
 * Empty: the memfd holds nothing. Filled: the old image first writes
 * @percent of it page by page through a shared mapping, as the arena is
 * filled, and a CLONE_VM child keeps that address space alive past the
 * exec for FLOOR_HOLD_NS, as libluo's reaper does (else the exec would tear
 * down the page tables of 8 GiB itself). The same data, written the same
 * way, as the run it is compared with: an exec after 8 GiB were written by
 * faults is slower than one after an empty memfd, with or without libluo
 * (README, "Arena blackout").
 */
#define FLOOR_HOLD_NS 100000000
#define FLOOR_HOLD_STACK (64 * 1024)

static int stage_floor_new(uint64_t size, const char *fd_arg, const char *t0_arg, const char *out)
{
	int fd = atoi(fd_arg);
	uint64_t t0 = strtoull(t0_arg, NULL, 10), dt;
	volatile char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	FILE *f;

	if (p == MAP_FAILED)
		die("mmap (floor)", errno);
	(void)p[size - 1];
	dt = now_ns() - t0;
	f = fopen(out, "we");
	if (!f || fwrite(&dt, sizeof(dt), 1, f) != 1 || fclose(f) != 0)
		die(out, errno);
	return 0;
}

/* Runs on the old image's memory: raw syscalls only, then gone. */
static int floor_hold(void *arg)
{
	static const struct timespec hold = { .tv_nsec = FLOOR_HOLD_NS };

	(void)arg;
	syscall(SYS_nanosleep, &hold, NULL);
	syscall(SYS_exit, 0);
	return 0;
}

static uint64_t run_floor(const char *self, uint64_t size, int filled_percent)
{
	char out[] = "/tmp/luo-arena-floor-XXXXXX";
	int tmp = mkstemp(out), status;
	uint64_t dt = 0;
	pid_t pid;
	FILE *f;

	if (tmp < 0)
		die("mkstemp", errno);
	close(tmp);
	pid = fork();
	if (pid < 0)
		die("fork", errno);
	if (pid == 0) {
		char size_arg[32], fd_arg[16], t0_arg[32];
		int fd = memfd_create("luo-arena-floor", 0);

		if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
			_exit(127);
		if (filled_percent) {
			uint64_t end = size / 100 * (uint64_t)filled_percent;
			char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			char *stack = mmap(NULL, FLOOR_HOLD_STACK, PROT_READ | PROT_WRITE,
					   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);

			if (p == MAP_FAILED || stack == MAP_FAILED)
				_exit(127);
			for (uint64_t off = 0; off < end; off += NODE_SIZE)
				p[off] = 1;
			if (clone(floor_hold, stack + FLOOR_HOLD_STACK, CLONE_VM, NULL) < 0)
				_exit(127);
		}
		snprintf(size_arg, sizeof(size_arg), "%" PRIu64, size);
		snprintf(fd_arg, sizeof(fd_arg), "%d", fd);
		snprintf(t0_arg, sizeof(t0_arg), "%" PRIu64, now_ns());
		execl(self, self, "--stage-floor", size_arg, fd_arg, t0_arg, out, (char *)NULL);
		_exit(127);
	}
	int waited = waitpid(pid, &status, 0) == pid;

	reap_descendants();
	if (waited && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		f = fopen(out, "re");
		if (f) {
			if (fread(&dt, sizeof(dt), 1, f) != 1)
				dt = 0;
			fclose(f);
		}
	}
	unlink(out);
	return dt;
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

	return (a > b) - (a < b);
}

/*
 * Small-object churn, one thread's share: @ops allocations of 16..256
 * bytes into random slots of its own table of LIVE, each replacing (and
 * freeing) the slot's previous block. Each block's first byte is written
 * with its slot and checked when it is freed (both allocators touch that
 * line on a free anyway), so a block handed out twice shows.
 */
struct churn_arg {
	void *(*alloc)(void *, size_t);
	void (*release)(void *, void *);
	void *ctx;
	size_t ops;
	uint64_t seed;
	pthread_barrier_t *start;
	size_t live_n;   /* blocks alive at once: cache-resident, or not */
	int bad;
	uint64_t cpu_ns; /* the thread's CPU time in the loop */
};

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *churn_thread(void *arg)
{
	struct churn_arg *c = arg;
	const size_t LIVE = c->live_n;
	void **live = calloc(LIVE, sizeof(*live));
	uint64_t x = c->seed, t0;

	if (!live)
		die("churn table", ENOMEM);
	pthread_barrier_wait(c->start);
	t0 = thread_cpu_ns();
	for (size_t i = 0; i < c->ops; i++) {
		size_t slot, size;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		slot = x % LIVE;
		size = 16 + (x >> 32) % 241;
		if (live[slot]) {
			c->bad |= *(volatile unsigned char *)live[slot] != (unsigned char)slot;
			c->release(c->ctx, live[slot]);
		}
		live[slot] = c->alloc(c->ctx, size);
		if (!live[slot])
			die("allocation in the throughput run", ENOMEM);
		*(volatile unsigned char *)live[slot] = (unsigned char)slot;
	}
	for (size_t i = 0; i < LIVE; i++)
		if (live[i])
			c->release(c->ctx, live[i]);
	c->cpu_ns = thread_cpu_ns() - t0;
	free(live);
	return NULL;
}

/*
 * @threads threads churning THROUGHPUT_OPS allocations in all: allocations
 * per second of wall clock, and per second of the threads' CPU time in
 * *@ret_cpu (what a machine shared with other work still measures fairly).
 */
static double churn(int threads, size_t live_n, void *(*alloc)(void *, size_t), void (*release)(void *, void *),
		    void *ctx, double *ret_cpu)
{
	struct churn_arg args[THREADS_MAX];
	pthread_t tid[THREADS_MAX];
	pthread_barrier_t start;
	uint64_t t0, cpu = 0;
	int bad = 0;

	pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
	for (int t = 0; t < threads; t++) {
		args[t] = (struct churn_arg){ alloc, release, ctx, THROUGHPUT_OPS / (size_t)threads,
					      88172645463325252ull + 0x9e3779b97f4a7c15ull * (uint64_t)t, &start, live_n,
					      0, 0 };
		if (pthread_create(&tid[t], NULL, churn_thread, &args[t]) != 0)
			die("pthread_create", EAGAIN);
	}
	pthread_barrier_wait(&start);
	t0 = now_ns();
	for (int t = 0; t < threads; t++) {
		pthread_join(tid[t], NULL);
		bad |= args[t].bad;
		cpu += args[t].cpu_ns;
	}
	pthread_barrier_destroy(&start);
	if (bad)
		die("a block changed under its owner in the throughput run", EIO);
	*ret_cpu = THROUGHPUT_OPS / (cpu / 1e9);
	return THROUGHPUT_OPS / ((now_ns() - t0) / 1e9);
}

static void *arena_alloc_cb(void *ctx, size_t n)
{
	return luo_arena_alloc(ctx, n);
}
static void arena_free_cb(void *ctx, void *p)
{
	luo_arena_free(ctx, p);
}
static void *malloc_cb(void *ctx, size_t n)
{
	(void)ctx;
	return malloc(n);
}
static void free_cb(void *ctx, void *p)
{
	(void)ctx;
	free(p);
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return (a > b) - (a < b);
}

/*
 * The arena's allocator against glibc's, 1, 2 and 4 threads, each figure
 * the median of ALLOC_ROUNDS alternating rounds (glibc, arena, glibc, ...),
 * so that both see the same machine.
 */
static void allocator_table(void)
{
	static const int counts[] = { 1, 2, 4 };
	/* 1,024 blocks stay in the CPU's caches (the allocator's own cost); 65,536 (8.6 MiB) do not. */
	static const size_t lives[] = { 1024, 65536 };
	struct luo *luo;
	struct luo_session *s;
	struct luo_arena *a;
	int r = luo_open(0, &luo);

	if (r == 0)
		r = luo_session_create(luo, "throughput", &s);
	if (r == 0)
		r = luo_arena_create(s, 1, 1ull << 30, 0, &a);
	if (r < 0)
		die("arena for the throughput run", -r);
	printf("\nsmall objects (16..256 B), %d allocations with frees in all, each thread replacing random blocks\n"
	       "of its own set of LIVE; per second of wall clock and of the threads' CPU time (median of %d\n"
	       "rounds, glibc and the arena alternating):\n", THROUGHPUT_OPS, ALLOC_ROUNDS);
	printf("  %-8s %7s %16s %16s %7s %12s %12s %7s\n", "threads", "LIVE", "luo_arena wall", "glibc wall", "ratio",
	       "luo_arena/cpu", "glibc/cpu", "ratio");
	for (size_t l = 0; l < sizeof(lives) / sizeof(lives[0]); l++) {
		for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
			double ar[ALLOC_ROUNDS], mr[ALLOC_ROUNDS], ac[ALLOC_ROUNDS], mc[ALLOC_ROUNDS];
			const int m = ALLOC_ROUNDS / 2;

			for (int i = 0; i < ALLOC_ROUNDS; i++) {
				mr[i] = churn(counts[k], lives[l], malloc_cb, free_cb, NULL, &mc[i]);
				ar[i] = churn(counts[k], lives[l], arena_alloc_cb, arena_free_cb, a, &ac[i]);
			}
			qsort(ar, ALLOC_ROUNDS, sizeof(ar[0]), cmp_double);
			qsort(mr, ALLOC_ROUNDS, sizeof(mr[0]), cmp_double);
			qsort(ac, ALLOC_ROUNDS, sizeof(ac[0]), cmp_double);
			qsort(mc, ALLOC_ROUNDS, sizeof(mc[0]), cmp_double);
			printf("  %-8d %7zu %12.1f M/s %12.1f M/s %7.2f %10.1f M %10.1f M %7.2f\n", counts[k], lives[l],
			       ar[m] / 1e6, mr[m] / 1e6, ar[m] / mr[m], ac[m] / 1e6, mc[m] / 1e6, ac[m] / mc[m]);
		}
	}
	printf("  (target: one thread at least 0.8 of glibc; the arena's free blocks in per-thread caches, "
	       "%u per class)\n", LUO_HEAP_TCACHE_BLOCKS);
	luo_arena_close(a);
	luo_close(luo);
}


static void human(uint64_t v, char *buf, size_t len)
{
	if (v >= (1ull << 30) && v % (1ull << 30) == 0)
		snprintf(buf, len, "%" PRIu64 " GiB", v >> 30);
	else
		snprintf(buf, len, "%" PRIu64 " MiB", v >> 20);
}

int main(int argc, char **argv)
{
	uint64_t sizes[SIZES_MAX];
	struct result res[SIZES_MAX];
	uint64_t floor_ns[SIZES_MAX] = { 0 }, filled_ns[SIZES_MAX] = { 0 };
	const char *list = "16M,1G,8G";
	char self[4096];
	size_t n = 0;
	int percent = 90, runs = 5, failed = 0, collapse = 0, allocator_only = 0;
	ssize_t len;

	if (argc == 6 && strcmp(argv[1], "--stage-fill") == 0) {
		uint64_t size;

		if (parse_size(argv[2], &size) < 0)
			die("size", EINVAL);
		return stage_fill(argv[0], size, parse_int(argv[3], 1, 95), parse_int(argv[4], 0, 1), argv[5]);
	}
	if (argc == 6 && strcmp(argv[1], "--stage-floor") == 0) {
		uint64_t size;

		if (parse_size(argv[2], &size) < 0)
			die("size", EINVAL);
		return stage_floor_new(size, argv[3], argv[4], argv[5]);
	}
	if (argc == 4 && strcmp(argv[1], "--stage-check") == 0) {
		uint64_t size;

		if (parse_size(argv[2], &size) < 0)
			die("size", EINVAL);
		return stage_check(size, argv[3]);
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--sizes") == 0 && i + 1 < argc) {
			list = argv[++i];
		} else if (strcmp(argv[i], "--fill") == 0 && i + 1 < argc) {
			percent = parse_int(argv[++i], 1, 95);
		} else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
			runs = parse_int(argv[++i], 1, RUNS_MAX);
		} else if (strcmp(argv[i], "--collapse") == 0) {
			collapse = 1;
		} else if (strcmp(argv[i], "--allocator-only") == 0) {
			allocator_only = 1;
		} else {
			fprintf(stderr, "usage: arena-blackout [--sizes 16M,1G,8G] [--fill PERCENT] [--runs N] [--collapse] "
					"[--allocator-only]\n");
			return strcmp(argv[i], "--help") == 0 ? 0 : 2;
		}
	}
	{
		char *copy = strdup(list), *save = NULL;

		if (!copy)
			die("--sizes", ENOMEM);
		for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			if (n >= SIZES_MAX || parse_size(tok, &sizes[n]) < 0)
				die("--sizes: sizes like 16M or 8G, multiples of 64 KiB, at most 8", EINVAL);
			n++;
		}
		free(copy);
	}
	if (allocator_only) {
		allocator_table();
		return 0;
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) /* reap_descendants() */
		die("PR_SET_CHILD_SUBREAPER", errno);
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len <= 0)
		die("/proc/self/exe", errno);
	self[len] = '\0';

	printf("arena-blackout: live data filling %d%% of each arena, in 4 KiB nodes; %d run%s per size%s\n\n",
	       percent, runs, runs > 1 ? "s" : "",
	       collapse ? "; --collapse: the old image collapsed the data into 2 MiB pages first" : "");
	printf("%-8s %9s %10s %17s %9s %8s %9s %8s %10s %10s %8s %9s %11s %9s  %s\n", "arena", "nodes", "blackout",
	       "(all runs)", "retrieve", "freeze", "serialize", "exec", "floor***", "filled***", "restore", "check*",
	       "populate**", "metadata", "verified");
	/*
	 * Rounds: each round runs every size once, smallest first, so that
	 * whatever the shared machine does over the minutes of a run weighs
	 * on every size alike, not on the sizes run last. Within a round the
	 * floors go after the run in even rounds and before it in odd ones:
	 * what one leaves behind (memory just freed) is not always the other's.
	 */
	static struct result all[SIZES_MAX][RUNS_MAX];
	static uint64_t floors[SIZES_MAX][RUNS_MAX], filled[SIZES_MAX][RUNS_MAX];
	int done[SIZES_MAX] = { 0 };

	for (int k = 0; k < runs; k++)
		for (size_t i = 0; i < n; i++) {
			int d = done[i], ok = 1;

			if (k % 2)
				ok = (floors[i][d] = run_floor(self, sizes[i], 0)) != 0 &&
				     (filled[i][d] = run_floor(self, sizes[i], percent)) != 0;
			ok = ok && run_size(self, sizes[i], percent, collapse, &all[i][d]) == 0;
			if (!(k % 2))
				ok = ok && (floors[i][d] = run_floor(self, sizes[i], 0)) != 0 &&
				     (filled[i][d] = run_floor(self, sizes[i], percent)) != 0;
			done[i] += ok;
		}
	for (size_t i = 0; i < n; i++) {
		int d = done[i];
		char h[32], range[40];

		human(sizes[i], h, sizeof(h));
		if (d < runs) {
			printf("%-8s  (%d of %d runs failed: not enough memory?)\n", h, runs - d, runs);
			failed = 1;
			res[i].blackout_ns = 0;
			continue;
		}
		qsort(all[i], (size_t)d, sizeof(all[i][0]), cmp_blackout);
		res[i] = all[i][d / 2];
		qsort(floors[i], (size_t)d, sizeof(floors[i][0]), cmp_u64);
		floor_ns[i] = floors[i][d / 2];
		qsort(filled[i], (size_t)d, sizeof(filled[i][0]), cmp_u64);
		filled_ns[i] = filled[i][d / 2];
		for (int k = 0; k < d; k++)
			failed |= !all[i][k].ok;
		snprintf(range, sizeof(range), "%.2f..%.2f ms", all[i][0].blackout_ns / 1e6, all[i][d - 1].blackout_ns / 1e6);
		printf("%-8s %9" PRIu64 " %7.2f ms %17s %6.3f ms %5.3f ms %6.3f ms %5.3f ms %7.3f ms %7.3f ms %5.3f ms "
		       "%6.3f ms %8.1f ms %8.4f%%  %s\n",
		       h, res[i].nodes, res[i].blackout_ns / 1e6, range, res[i].retrieve_ns / 1e6,
		       res[i].freeze_ns / 1e6, res[i].serialize_ns / 1e6, res[i].exec_ns / 1e6, floor_ns[i] / 1e6,
		       filled_ns[i] / 1e6, res[i].restore_ns / 1e6, res[i].check_ns / 1e6, res[i].populate_ns / 1e6,
		       100.0 * (double)res[i].meta / (double)res[i].size, res[i].ok ? "yes" : "NO");
	}
	printf("\n* check: the allocator's deferred map check (luo_arena_check()), after the blackout\n");

	printf("** populate: luo_arena_populate_start(LUO_ARENA_POPULATE_NORMAL) mapping the arena's data back\n"
	       "   into the new image's page tables, after the check (median run's):");
	for (size_t i = 0; i < n; i++)
		if (res[i].populate_ns)
			printf("%s%.0f MiB at %.2f GB/s", i ? "; " : " ", res[i].populated / 1048576.0,
			       (double)res[i].populated / (double)res[i].populate_ns);
	printf("\n");
	printf("*** floors, without libluo: execve() of this binary, then mmap() of a memfd of the arena's size\n"
	       "    and a read of its last page in the new image (median of as many runs, one beside each run above).\n"
	       "    floor: the memfd is empty. filled: the old image first wrote %d%% of it page by page through a\n"
	       "    shared mapping, as the arena was filled, and a CLONE_VM child kept that address space past\n"
	       "    the exec, as libluo's reaper does\n", percent);
	if (n >= 2 && res[0].blackout_ns && res[n - 1].blackout_ns) {
		printf("blackout ratio, largest / smallest arena (medians): %.2f (target <= 1.3)\n",
		       (double)res[n - 1].blackout_ns / (double)res[0].blackout_ns);
		if (filled_ns[0] && filled_ns[n - 1])
			printf("  the same ratio for the filled floor, without libluo: %.2f\n",
			       (double)filled_ns[n - 1] / (double)filled_ns[0]);
	}
	if (n >= 1 && res[n - 1].blackout_ns && floor_ns[n - 1] && filled_ns[n - 1])
		printf("largest arena against the floors (medians; target: blackout <= 1.5):\n"
		       "  empty memfd: blackout %.2f, exec phase %.2f\n"
		       "  filled:      blackout %.2f, exec phase %.2f\n",
		       (double)res[n - 1].blackout_ns / (double)floor_ns[n - 1],
		       (double)res[n - 1].exec_ns / (double)floor_ns[n - 1],
		       (double)res[n - 1].blackout_ns / (double)filled_ns[n - 1],
		       (double)res[n - 1].exec_ns / (double)filled_ns[n - 1]);

	allocator_table();
	return failed;
}
