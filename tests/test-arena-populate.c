/* SPDX-License-Identifier: MIT */
/*
 * luo_arena_populate_start()/_stop()/_status(): the background thread maps
 * the arena's data (the mapping's resident set grows back after
 * MADV_DONTNEED dropped it), and only the data (the holes stay unmapped),
 * stops when asked (no progress after _stop() returns), ends with
 * luo_arena_close(), and leaves no thread and no fd behind. Not timed:
 * every wait is a bounded poll on the status.
 */

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "luo/luo.h"
#include "test-util.h"

#define MIB (1024ull * 1024)
#define ARENA_DATA (64 * MIB)
#define BLOCK (512 * 1024)
#define NBLOCKS 32 /* 16 MiB written, a quarter of the arena */
#define WAIT_MAX_MS 60000

static int count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	CHECK(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* A field of smaps ("Rss", "ShmemPmdMapped"), in bytes, for the mapping that starts at @base. */
static uint64_t smaps_field(const void *base, const char *field)
{
	char want[32], line[256], fmt[64]; /* fmt: the field's name and colon */
	FILE *f = fopen("/proc/self/smaps", "re");
	bool in = false;
	uint64_t kb = UINT64_MAX;

	CHECK(f);
	snprintf(want, sizeof(want), "%" PRIxPTR "-", (uintptr_t)base);
	snprintf(fmt, sizeof(fmt), "%s:", field);
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, want, strlen(want)) == 0)
			in = true;
		else if (in && strncmp(line, fmt, strlen(fmt)) == 0) {
			CHECK(sscanf(line + strlen(fmt), " %" SCNu64 " kB", &kb) == 1);
			break;
		}
	}
	fclose(f);
	CHECK(kb != UINT64_MAX);
	return kb * 1024;
}

static uint64_t mapped(const void *base)
{
	return smaps_field(base, "Rss");
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* Poll until the thread is no longer running; its final status. */
static struct luo_arena_populate_status wait_end(struct luo_arena *a)
{
	struct luo_arena_populate_status st;

	for (int i = 0; i < WAIT_MAX_MS; i++) {
		CHECK_OK(luo_arena_populate_status(a, &st));
		if (st.state != LUO_ARENA_POPULATE_RUNNING)
			return st;
		sleep_ms(1);
	}
	fprintf(stderr, "the populate thread still runs after %d ms\n", WAIT_MAX_MS);
	exit(1);
}

static void drop_mappings(struct luo_arena *a)
{
	CHECK(madvise(luo_arena_base(a), luo_arena_size(a), MADV_DONTNEED) == 0);
	CHECK(mapped(luo_arena_base(a)) < MIB);
}

int main(void)
{
	struct luo_arena_populate_status st, st2;
	unsigned char *blocks[NBLOCKS];
	struct luo_session *s;
	struct luo_arena *a;
	struct luo *luo;
	int threads;
	long page = sysconf(_SC_PAGESIZE);

	test_begin();
	threads = count_threads();
	CHECK_OK(luo_open(0, &luo));
	CHECK_OK(luo_session_create(luo, "populate", &s));
	CHECK_OK(luo_arena_create(s, 1, ARENA_DATA, 0, &a));

	/* Arguments. */
	CHECK_ERR(luo_arena_populate_start(NULL, 0, 0), EINVAL);
	CHECK_ERR(luo_arena_populate_start(a, (size_t)page + 1, 0), EINVAL);
	CHECK_ERR(luo_arena_populate_start(a, (size_t)LUO_ARENA_POPULATE_CHUNK_MAX + (size_t)page, 0), EINVAL);
	CHECK_ERR(luo_arena_populate_start(a, 0, 1u << 7), EINVAL);
	CHECK_ERR(luo_arena_populate_start(a, 0, LUO_ARENA_POPULATE_IDLE | LUO_ARENA_POPULATE_NORMAL), EINVAL);
	CHECK_ERR(luo_arena_populate_stop(NULL), EINVAL);
	CHECK_ERR(luo_arena_populate_status(NULL, &st), EINVAL);
	CHECK_ERR(luo_arena_populate_status(a, NULL), EINVAL);
	CHECK_OK(luo_arena_populate_status(a, &st));
	CHECK_EQ(st.state, LUO_ARENA_POPULATE_NONE);
	CHECK_EQ(st.populated, 0);
	CHECK_OK(luo_arena_populate_stop(a)); /* nothing to stop */

	for (int i = 0; i < NBLOCKS; i++) {
		blocks[i] = luo_arena_alloc(a, BLOCK);
		CHECK(blocks[i]);
		memset(blocks[i], 0xa0 + i, BLOCK);
	}

	/* 1. It maps the data back, and nothing else. */
	drop_mappings(a);
	CHECK_OK(luo_arena_populate_start(a, 0, 0));
	st = wait_end(a);
	CHECK_EQ(st.state, LUO_ARENA_POPULATE_DONE);
	CHECK_EQ(st.error, 0);
	CHECK(st.elapsed_ns > 0);
	CHECK(st.populated >= NBLOCKS * BLOCK);
	/* The other 48 MiB are holes: populating them would have allocated them. */
	CHECK(st.populated <= NBLOCKS * BLOCK + MIB);
	CHECK(mapped(luo_arena_base(a)) >= NBLOCKS * BLOCK);
	CHECK(mapped(luo_arena_base(a)) <= st.populated);
	printf("populated %" PRIu64 " KiB in %.3f ms%s\n", st.populated / 1024, st.elapsed_ns / 1e6,
	       st.fallback ? " (fallback: madvise refused)" : "");
	CHECK_OK(luo_arena_populate_stop(a)); /* joins the ended thread */
	CHECK_EQ(count_threads(), threads);
	for (int i = 0; i < NBLOCKS; i++)
		for (size_t k = 0; k < BLOCK; k += 4096)
			CHECK_EQ(blocks[i][k], 0xa0 + i);

	/* 2. SCHED_IDLE: still runs to the end (slowly, on a busy machine); MADV_POPULATE_READ. */
	drop_mappings(a);
	CHECK_OK(luo_arena_populate_start(a, 0, LUO_ARENA_POPULATE_IDLE));
	st = wait_end(a);
	CHECK_EQ(st.state, LUO_ARENA_POPULATE_DONE);
	CHECK(mapped(luo_arena_base(a)) >= NBLOCKS * BLOCK);

	/* MADV_POPULATE_READ (or the reads, where refused), at the caller's priority. */
	drop_mappings(a);
	CHECK_OK(luo_arena_populate_start(a, 0, LUO_ARENA_POPULATE_MADVISE | LUO_ARENA_POPULATE_NORMAL));
	st = wait_end(a);
	CHECK_EQ(st.state, LUO_ARENA_POPULATE_DONE);
	CHECK(st.populated >= NBLOCKS * BLOCK && st.populated <= NBLOCKS * BLOCK + MIB);
	CHECK(mapped(luo_arena_base(a)) >= NBLOCKS * BLOCK);
	printf("MADV_POPULATE_READ: %.3f ms%s\n", st.elapsed_ns / 1e6, st.fallback ? " (refused: reads)" : "");

	/* 3. Stopped on request: no progress after _stop() returns, no thread left. */
	drop_mappings(a);
	CHECK_OK(luo_arena_populate_start(a, (size_t)page, 0)); /* a page per step: thousands of steps */
	CHECK_OK(luo_arena_populate_status(a, &st));
	if (st.state == LUO_ARENA_POPULATE_RUNNING) {
		/* Still running: a second start is refused. */
		CHECK_ERR(luo_arena_populate_start(a, 0, 0), EBUSY);
	}
	CHECK_OK(luo_arena_populate_stop(a));
	CHECK_EQ(count_threads(), threads);
	CHECK_OK(luo_arena_populate_status(a, &st));
	CHECK(st.state == LUO_ARENA_POPULATE_STOPPED || st.state == LUO_ARENA_POPULATE_DONE);
	if (st.state == LUO_ARENA_POPULATE_STOPPED)
		CHECK(st.populated < NBLOCKS * BLOCK);
	printf("stopped after %" PRIu64 " KiB (%s)\n", st.populated / 1024,
	       st.state == LUO_ARENA_POPULATE_STOPPED ? "stopped" : "it had finished");
	sleep_ms(50);
	CHECK_OK(luo_arena_populate_status(a, &st2));
	CHECK_EQ(st2.state, st.state);
	CHECK_EQ(st2.populated, st.populated);
	CHECK_EQ(st2.elapsed_ns, st.elapsed_ns);
	CHECK(mapped(luo_arena_base(a)) <= st.populated + MIB);
	CHECK_OK(luo_arena_populate_stop(a)); /* idempotent */

	/* 4. Started again after a stop: from the beginning, to the end. */
	CHECK_OK(luo_arena_populate_start(a, 0, 0));
	st = wait_end(a);
	CHECK_EQ(st.state, LUO_ARENA_POPULATE_DONE);
	CHECK(st.populated >= NBLOCKS * BLOCK);

	/*
	 * 5. _COLLAPSE: the ranges of 2 MiB all data become huge pages, which a
	 * new mapping's faults map whole; nothing else is allocated.
	 */
	drop_mappings(a);
	CHECK_OK(luo_arena_populate_start(a, 0, LUO_ARENA_POPULATE_COLLAPSE | LUO_ARENA_POPULATE_NORMAL));
	st = wait_end(a);
	CHECK_EQ(st.state, LUO_ARENA_POPULATE_DONE);
	CHECK(st.collapsed % (2u << 20) == 0 && st.collapsed <= st.populated);
	if (st.collapse_refused) {
		printf("MADV_COLLAPSE refused here: nothing collapsed (%" PRIu64 " KiB)\n", st.collapsed / 1024);
	} else {
		/* 16 MiB of data in 512 KiB blocks: at least 6 whole aligned 2 MiB ranges. */
		CHECK(st.collapsed >= 6 * (2u << 20));
		drop_mappings(a);
		CHECK_OK(luo_arena_populate_start(a, 0, LUO_ARENA_POPULATE_NORMAL));
		st2 = wait_end(a);
		CHECK_EQ(st2.state, LUO_ARENA_POPULATE_DONE);
		CHECK(st2.populated == st.populated); /* no hole filled */
		CHECK(mapped(luo_arena_base(a)) <= st2.populated);
		CHECK(smaps_field(luo_arena_base(a), "ShmemPmdMapped") >= st.collapsed);
		printf("collapsed %" PRIu64 " KiB into huge pages; mapped again %" PRIu64 " KiB in %.3f ms\n",
		       st.collapsed / 1024, st2.populated / 1024, st2.elapsed_ns / 1e6);
	}
	for (int i = 0; i < NBLOCKS; i++)
		for (size_t k = 0; k < BLOCK; k += 4096)
			CHECK_EQ(blocks[i][k], 0xa0 + i);

	/* 6. luo_arena_close() while it runs: the thread is stopped and joined first. */
	drop_mappings(a);
	CHECK_OK(luo_arena_populate_start(a, (size_t)page, 0));
	luo_arena_close(a);
	CHECK_EQ(count_threads(), threads);

	luo_close(luo);
	CHECK_EQ(count_threads(), threads);
	check_no_fd_leak();
	printf("ok\n");
	return 0;
}
