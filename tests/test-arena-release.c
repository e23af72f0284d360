/* SPDX-License-Identifier: MIT */
/*
 * Freed arena memory goes back to the kernel: the arena's memfd holds
 * fewer allocated blocks after frees (fallocate punch-hole), so the next
 * image, which maps the same file, does not find it resident either.
 * Measured on the memfd itself (st_blocks through /proc/self/map_files).
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "luo/luo.h"
#include "test-util.h"

#define MIB (1024ull * 1024)

/* Bytes the arena's memfd has allocated. */
static uint64_t allocated(const struct luo_arena *a)
{
	char path[128];
	uintptr_t start = (uintptr_t)luo_arena_base(a);
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/map_files/%" PRIxPTR "-%" PRIxPTR, start,
		 start + luo_arena_size(a));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && (errno == EPERM || errno == EACCES)) {
		/* Opening map_files needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE. */
		printf("SKIP: %s: %s (needs CAP_SYS_ADMIN)\n", path, strerror(errno));
		exit(77);
	}
	CHECK(fd >= 0);
	CHECK(fstat(fd, &st) == 0);
	close(fd);
	return (uint64_t)st.st_blocks * 512;
}

int main(void)
{
	enum { RUNS = 40, SMALL = 100000 };
	static void *runs[RUNS], *small[SMALL];
	struct luo *luo;
	struct luo_session *s;
	struct luo_arena *a;
	uint64_t empty, full, after;

	test_begin();
	if (access("/proc/self/map_files", R_OK) != 0) {
		printf("SKIP: /proc/self/map_files is not readable here\n");
		return 77;
	}
	CHECK_OK(luo_open(0, &luo));
	CHECK_OK(luo_session_create(luo, "release", &s));
	CHECK_OK(luo_arena_create(s, 1, 64 * MIB, 0, &a));
	empty = allocated(a);

	for (int i = 0; i < RUNS; i++) {
		runs[i] = luo_arena_alloc(a, 1 * MIB);
		CHECK(runs[i] != NULL);
		memset(runs[i], 0xa5, 1 * MIB);
	}
	full = allocated(a);
	CHECK(full >= empty + RUNS * MIB);
	for (int i = 0; i < RUNS; i++)
		luo_arena_free(a, runs[i]);
	after = allocated(a);
	CHECK(after <= empty + 1 * MIB);
	printf("ok - 40 runs of 1 MiB: memfd %" PRIu64 " KiB empty, %" PRIu64 " KiB full, %" PRIu64
	       " KiB after the frees\n", empty >> 10, full >> 10, after >> 10);

	for (int i = 0; i < SMALL; i++) {
		small[i] = luo_arena_alloc(a, 256);
		CHECK(small[i] != NULL);
		memset(small[i], 0x5a, 256);
	}
	full = allocated(a);
	CHECK(full >= empty + SMALL * 256ull);
	for (int i = 0; i < SMALL; i++)
		luo_arena_free(a, small[i]);
	after = allocated(a);
	/* One emptied slab per class may be kept for reuse: a chunk, 64 KiB. */
	CHECK(after <= empty + 64 * 1024);
	printf("ok - 100,000 objects of 256 B: memfd %" PRIu64 " KiB full, %" PRIu64 " KiB after the frees\n",
	       full >> 10, after >> 10);

	luo_arena_close(a);
	luo_close(luo);
	check_no_fd_leak();
	return 0;
}
