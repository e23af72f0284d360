/* SPDX-License-Identifier: MIT */
#ifndef LUO_TEST_UTIL_H
#define LUO_TEST_UTIL_H

/*
 * DOC: what every test uses
 *
 * CHECK / CHECK_EQ / CHECK_ERR fail the test at once with file:line and the
 * values seen. Each test is its own process (meson runs one per file) and
 * ends with check_no_fd_leak(), which compares /proc/self/fd to the count
 * taken by test_begin().
 */

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
			exit(1);                                                           \
		}                                                                          \
	} while (0)

#define CHECK_EQ(a, b)                                                                       \
	do {                                                                                 \
		long long _a = (long long)(a), _b = (long long)(b);                          \
		if (_a != _b) {                                                              \
			fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, \
				__LINE__, #a, #b, _a, _b);                                   \
			exit(1);                                                             \
		}                                                                            \
	} while (0)

/* A call that returns a negative errno must return exactly -err. */
#define CHECK_ERR(call, err)                                                                 \
	do {                                                                                 \
		int _r = (call);                                                             \
		if (_r != -(err)) {                                                          \
			fprintf(stderr, "%s:%d: %s returned %d (%s), expected -%s\n", __FILE__, \
				__LINE__, #call, _r, _r < 0 ? strerror(-_r) : "success", #err); \
			exit(1);                                                             \
		}                                                                            \
	} while (0)

#define CHECK_OK(call) CHECK_ERR(call, 0)

static inline int count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d) {
		perror("opendir /proc/self/fd");
		exit(1);
	}
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

static int test_fds_at_start;

/* Raise the fd limit to the hard limit and remember the open fds. */
static inline void test_begin(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	test_fds_at_start = count_open_fds();
}

static inline void check_no_fd_leak_from(int expected)
{
	int now = count_open_fds();

	if (now != expected) {
		fprintf(stderr, "fd leak: %d open, expected %d\n", now, expected);
		system("ls -l /proc/$PPID/fd >&2"); /* the test is our parent's child: show ours */
		exit(1);
	}
}

static inline void check_no_fd_leak(void)
{
	check_no_fd_leak_from(test_fds_at_start);
}

#endif
