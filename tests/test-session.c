/* SPDX-License-Identifier: MIT */
/*
 * test-session: the in-process contract of libluo's public API.
 *
 * Maps the in-process items of the kernel's LUO selftests and user API
 * semantics onto luo.h, one function per behaviour:
 *
 *   - the handle: open/close, exclusive open, bad flags, what a fresh
 *     start reports (not incoming, update number 0, no timings, ready);
 *   - sessions: duplicate and bad names, the 63-byte maximum, distinct
 *     sessions, retrieve on a fresh start, incoming-only calls on an
 *     outgoing session;
 *   - preserve: memfds, duplicate tokens, bad fds, unsupported kinds, the
 *     supported kinds, memfds without sealing, closing the caller's copy,
 *     unpreserve and re-preserve;
 *   - memfds: size frozen while writes within it work, zero length, many
 *     memfds, 1 MiB of data untouched by preserving;
 *   - limits: 2,000 sessions, 500 files, LUO_SESSION_FILES_MAX,
 *     LUO_SESSIONS_MAX, LUO_FILES_MAX (when the fd limit allows);
 *   - cleanup: closing a session or the handle releases libluo's fds;
 *   - the handler registry and a custom handler tried before the built-ins;
 *   - a few threads using one handle at once.
 *
 * No execve here: the two-stage tests live in test-exec-*.c. Every
 * behaviour opens and closes its own struct luo and is followed by
 * check_no_fd_leak().
 */

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>

#include "luo/luo.h"
#include "test-util.h"

#define FROZEN_SEALS (F_SEAL_GROW | F_SEAL_SHRINK)

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static struct luo *open_fresh(void)
{
	struct luo *luo = NULL;

	CHECK_OK(luo_open(0, &luo));
	CHECK(luo != NULL);
	CHECK(!luo_is_incoming(luo));
	return luo;
}

static struct luo_session *create(struct luo *luo, const char *name)
{
	struct luo_session *s = NULL;

	CHECK_OK(luo_session_create(luo, name, &s));
	CHECK(s != NULL);
	return s;
}

static int make_memfd(const char *name, unsigned int flags, size_t size)
{
	int fd = memfd_create(name, MFD_CLOEXEC | flags);

	CHECK(fd >= 0);
	if (size)
		CHECK_EQ(ftruncate(fd, (off_t)size), 0);
	return fd;
}

static off_t fd_size(int fd)
{
	struct stat st;

	CHECK_EQ(fstat(fd, &st), 0);
	return st.st_size;
}

static void xclose(int fd)
{
	CHECK_EQ(close(fd), 0);
}

/* A name of exactly @len bytes. */
static void make_name(char *buf, size_t len, char fill)
{
	memset(buf, fill, len);
	buf[len] = '\0';
}

/* The fd (other than @except) whose /proc link is @target, or -1. */
static int find_fd_by_link(const char *target, int except)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int found = -1;

	CHECK(d != NULL);
	while ((e = readdir(d))) {
		char path[64], link[256];
		ssize_t n;
		int fd;

		if (e->d_name[0] == '.')
			continue;
		fd = atoi(e->d_name);
		if (fd == dirfd(d) || fd == except)
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = '\0';
		if (strcmp(link, target) == 0) {
			found = fd;
			break;
		}
	}
	closedir(d);
	return found;
}

static bool fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* A free fd number at or above @from. */
static int free_fd_number(int from)
{
	while (fd_is_open(from))
		from++;
	return from;
}

static uint64_t xorshift(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	return x;
}

static void fill_pattern(uint8_t *buf, size_t len, uint64_t seed)
{
	uint64_t st = seed | 1;

	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)xorshift(&st);
}

static void write_all_at(int fd, const void *buf, size_t len, off_t off)
{
	CHECK_EQ(pwrite(fd, buf, len, off), (ssize_t)len);
}

static void check_contents(int fd, const void *want, size_t len)
{
	uint8_t *got = malloc(len ? len : 1);

	CHECK(got != NULL);
	CHECK_EQ(pread(fd, got, len, 0), (ssize_t)len);
	CHECK(memcmp(got, want, len) == 0);
	free(got);
}

/* Set by a test that cannot run here: why. */
static const char *skip_reason;

/*
 * Make room for @need fds, raising the hard limit if allowed. Returns false
 * (and sets skip_reason) if the limit stays too low; @saved gets the limits
 * to restore.
 */
static bool want_nofile(rlim_t need, struct rlimit *saved)
{
	struct rlimit rl;

	CHECK_EQ(getrlimit(RLIMIT_NOFILE, saved), 0);
	if (saved->rlim_cur >= need)
		return true;
	rl.rlim_cur = need;
	rl.rlim_max = saved->rlim_max > need ? saved->rlim_max : need;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
		return true;
	skip_reason = "RLIMIT_NOFILE too low and cannot be raised";
	return false;
}

/* ------------------------------------------------------------------------ */
/* The handle                                                                */

static void test_open_close(void)
{
	struct luo *luo = open_fresh();

	luo_close(luo);
	luo_close(NULL);
	luo = open_fresh();
	luo_close(luo);
}

static void test_exclusive_open(void)
{
	struct luo *luo = open_fresh();
	struct luo *second = (struct luo *)(uintptr_t)0x1;

	CHECK_ERR(luo_open(0, &second), EBUSY);
	CHECK_ERR(luo_open(LUO_OPEN_FRESH_ON_ERROR, &second), EBUSY);
	CHECK(second == (struct luo *)(uintptr_t)0x1); /* untouched on failure */
	luo_close(luo);

	luo = open_fresh();
	luo_close(luo);
}

static void test_open_bad_flags(void)
{
	struct luo *luo = (struct luo *)(uintptr_t)0x1;

	CHECK_ERR(luo_open(1u << 5, &luo), EINVAL); /* 1u << 4 is LUO_OPEN_STRICT_TYPES */
	CHECK_ERR(luo_open(1u << 31, &luo), EINVAL);
	CHECK_ERR(luo_open(~0u, &luo), EINVAL);
	CHECK_ERR(luo_open(LUO_OPEN_FRESH_ON_ERROR | (1u << 5), &luo), EINVAL);
	CHECK(luo == (struct luo *)(uintptr_t)0x1);

	/* A refused open leaves no mark behind. */
	luo = open_fresh();
	luo_close(luo);

	/* The one known flag is accepted on a fresh start. */
	CHECK_OK(luo_open(LUO_OPEN_FRESH_ON_ERROR, &luo));
	CHECK(!luo_is_incoming(luo));
	CHECK_OK(luo_incoming_error(luo, NULL));
	luo_close(luo);
}

static void test_fresh_start(void)
{
	struct luo *luo = open_fresh();
	struct luo_timings t;
	const char *reason = NULL;

	CHECK(getenv(LUO_HANDOVER_FD_ENV) == NULL);
	CHECK(!luo_is_incoming(luo));
	CHECK_EQ(luo_liveupdate_number(luo), 0);
	CHECK_OK(luo_incoming_error(luo, NULL));
	CHECK_OK(luo_incoming_error(luo, &reason));
	CHECK_ERR(luo_timings(luo, &t), ENODATA);
	CHECK_OK(luo_ready(luo));
	CHECK_OK(luo_ready(luo)); /* idempotent */
	CHECK_ERR(luo_timings(luo, &t), ENODATA);
	CHECK(!luo_is_incoming(luo));
	CHECK_EQ(luo_liveupdate_number(luo), 0);
	luo_close(luo);
}

/* ------------------------------------------------------------------------ */
/* Sessions                                                                  */

static void test_session_duplicate_name(void)
{
	struct luo *luo = open_fresh();
	struct luo_session *a = create(luo, "dup");
	struct luo_session *b = (struct luo_session *)(uintptr_t)0x1;

	CHECK_ERR(luo_session_create(luo, "dup", &b), EEXIST);
	CHECK(b == (struct luo_session *)(uintptr_t)0x1);
	/* Prefixes and extensions are other names. */
	luo_session_close(create(luo, "du"));
	luo_session_close(create(luo, "dupe"));
	CHECK_ERR(luo_session_create(luo, "dup", &b), EEXIST);

	/* Once closed, the name is free again. */
	luo_session_close(a);
	a = create(luo, "dup");
	CHECK(strcmp(luo_session_name(a), "dup") == 0);
	luo_close(luo);
}

static void test_session_name_limits(void)
{
	struct luo *luo = open_fresh();
	struct luo_session *s = (struct luo_session *)(uintptr_t)0x1;
	char name[LUO_SESSION_NAME_MAX + 2];

	CHECK_ERR(luo_session_create(luo, "", &s), EINVAL);
	make_name(name, LUO_SESSION_NAME_MAX + 1, 'x');
	CHECK_EQ(strlen(name), 64);
	CHECK_ERR(luo_session_create(luo, name, &s), EINVAL);
	CHECK(s == (struct luo_session *)(uintptr_t)0x1);

	make_name(name, LUO_SESSION_NAME_MAX, 'm');
	CHECK_EQ(strlen(name), 63);
	s = create(luo, name);
	CHECK(strcmp(luo_session_name(s), name) == 0);
	CHECK_EQ(strlen(luo_session_name(s)), LUO_SESSION_NAME_MAX);
	CHECK_ERR(luo_session_create(luo, name, &s), EEXIST);

	s = create(luo, "1");
	CHECK(strcmp(luo_session_name(s), "1") == 0);

	/* Names with spaces, slashes and non-ASCII bytes are plain bytes. */
	s = create(luo, "a b/c\xc3\xa9");
	CHECK(strcmp(luo_session_name(s), "a b/c\xc3\xa9") == 0);
	luo_close(luo);
}

static void test_sessions_distinct(void)
{
	struct luo *luo = open_fresh();
	struct luo_session *a = create(luo, "session-a");
	struct luo_session *b = create(luo, "session-b");
	int ma = make_memfd("a", MFD_ALLOW_SEALING, 16);
	int mb = make_memfd("b", MFD_ALLOW_SEALING, 32);

	CHECK(a != b);
	CHECK(strcmp(luo_session_name(a), "session-a") == 0);
	CHECK(strcmp(luo_session_name(b), "session-b") == 0);

	/* One token in two sessions is two files. */
	CHECK_OK(luo_session_preserve_fd(a, ma, 42));
	CHECK_OK(luo_session_preserve_fd(b, mb, 42));
	CHECK_ERR(luo_session_preserve_fd(a, mb, 42), EEXIST);

	CHECK_OK(luo_session_unpreserve_fd(a, 42));
	CHECK_ERR(luo_session_unpreserve_fd(a, 42), ENOENT);
	CHECK_OK(luo_session_unpreserve_fd(b, 42)); /* b's stays until here */
	CHECK_OK(luo_session_preserve_fd(b, mb, 7));

	/* Closing one session leaves the other whole. */
	luo_session_close(a);
	CHECK_ERR(luo_session_preserve_fd(b, ma, 7), EEXIST);
	CHECK_OK(luo_session_unpreserve_fd(b, 7));
	luo_session_close(b);
	xclose(ma);
	xclose(mb);
	luo_close(luo);
}

static void test_retrieve_on_fresh_start(void)
{
	struct luo *luo = open_fresh();
	struct luo_session *s = (struct luo_session *)(uintptr_t)0x1;
	char name[LUO_SESSION_NAME_MAX + 2];

	CHECK_ERR(luo_session_retrieve(luo, "state", &s), ENOENT);
	CHECK(s == (struct luo_session *)(uintptr_t)0x1);

	/* An outgoing session is not an incoming one. */
	luo_session_close(create(luo, "mine"));
	create(luo, "outgoing");
	CHECK_ERR(luo_session_retrieve(luo, "outgoing", &s), ENOENT);
	CHECK(s == (struct luo_session *)(uintptr_t)0x1);

	/* Bad names. */
	CHECK_ERR(luo_session_retrieve(luo, "", &s), EINVAL);
	make_name(name, LUO_SESSION_NAME_MAX + 1, 'r');
	CHECK_ERR(luo_session_retrieve(luo, name, &s), EINVAL);
	luo_close(luo);
}

static void test_outgoing_misuse(void)
{
	struct luo *luo = open_fresh();
	struct luo_session *s = create(luo, "outgoing");
	int m = make_memfd("m", MFD_ALLOW_SEALING, 8);
	int got = -12345;

	CHECK(!luo_session_is_incoming(s));
	CHECK_OK(luo_session_preserve_fd(s, m, 1));
	CHECK_ERR(luo_session_retrieve_fd(s, 1, &got), EINVAL);
	CHECK_ERR(luo_session_retrieve_fd(s, 2, &got), EINVAL);
	CHECK_EQ(got, -12345);
	CHECK_ERR(luo_session_finish(s), EINVAL);
	CHECK_ERR(luo_session_finish(s), EINVAL);

	/* The session still works after the refused calls. */
	CHECK(!luo_session_is_incoming(s));
	CHECK_OK(luo_session_unpreserve_fd(s, 1));
	CHECK_OK(luo_session_preserve_fd(s, m, 1));
	luo_session_close(s);
	xclose(m);
	luo_close(luo);
}

/* ------------------------------------------------------------------------ */
/* Preserve                                                                  */

static void test_preserve_memfd(void)
{
	struct luo *luo = open_fresh();
	struct luo_session *s = create(luo, "memfd");
	uint8_t buf[4096];
	int m = make_memfd("data", MFD_ALLOW_SEALING, 0), m2;

	fill_pattern(buf, sizeof(buf), 1);
	write_all_at(m, buf, sizeof(buf), 0);
	CHECK_EQ(fcntl(m, F_GET_SEALS), 0);

	CHECK_OK(luo_session_preserve_fd(s, m, 0));
	CHECK_EQ(fcntl(m, F_GET_SEALS) & FROZEN_SEALS, FROZEN_SEALS);
	CHECK_EQ(fd_size(m), sizeof(buf));
	check_contents(m, buf, sizeof(buf));

	/*
	 * Token values are opaque: 0 and UINT64_MAX are tokens too. The same
	 * open file under a second token is refused, as the kernel does.
	 */
	CHECK_ERR(luo_session_preserve_fd(s, m, UINT64_MAX), EBUSY);
	m2 = make_memfd("data2", MFD_ALLOW_SEALING, 0);
	CHECK_OK(luo_session_preserve_fd(s, m2, UINT64_MAX));
	CHECK_OK(luo_session_unpreserve_fd(s, 0));
	CHECK_OK(luo_session_unpreserve_fd(s, UINT64_MAX));
	luo_session_close(s);
	xclose(m);
	xclose(m2);
	luo_close(luo);
}

static void test_preserve_duplicate_token(void)
{
	struct luo *luo = open_fresh();
	struct luo_session *s = create(luo, "tokens");
	int m1 = make_memfd("m1", MFD_ALLOW_SEALING, 8);
	int m2 = make_memfd("m2", MFD_ALLOW_SEALING, 8);
	int before;

	CHECK_OK(luo_session_preserve_fd(s, m1, 100));
	before = count_open_fds();
	CHECK_ERR(luo_session_preserve_fd(s, m1, 100), EEXIST);
	CHECK_ERR(luo_session_preserve_fd(s, m2, 100), EEXIST);
	CHECK_EQ(count_open_fds(), before); /* nothing kept for a refusal */
	CHECK_OK(luo_session_preserve_fd(s, m2, 101));
	luo_session_close(s);
	xclose(m1);
	xclose(m2);
	luo_close(luo);
}

static void test_preserve_bad_fd(void)
{
	struct luo *luo = open_fresh();
	struct luo_session *s = create(luo, "badfd");
	int closed = make_memfd("gone", MFD_ALLOW_SEALING, 0);

	xclose(closed);
	CHECK(!fd_is_open(closed));

	CHECK_ERR(luo_session_preserve_fd(s, -1, 1), EBADF);
	CHECK_ERR(luo_session_preserve_fd(s, -100, 1), EBADF);
	CHECK_ERR(luo_session_preserve_fd(s, closed, 1), EBADF);
	CHECK_ERR(luo_session_preserve_fd(s, free_fd_number(1000), 1), EBADF);
	CHECK_ERR(luo_session_preserve_fd(s, INT32_MAX, 1), EBADF);

	/* The token was not taken by the refusals. */
	CHECK_ERR(luo_session_unpreserve_fd(s, 1), ENOENT);
	luo_session_close(s);
	luo_close(luo);
}

static void test_preserve_unsupported(void)
{
	struct luo *luo = open_fresh();
	struct luo_session *s = create(luo, "unsupported");
	struct {
		const char *what;
		int fd;
	} fds[6];
	size_t n = 0;
	sigset_t mask;
	int before;

	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR2);
	fds[n].what = "epoll";
	fds[n++].fd = epoll_create1(EPOLL_CLOEXEC);
	fds[n].what = "timerfd";
	fds[n++].fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	fds[n].what = "signalfd";
	fds[n++].fd = signalfd(-1, &mask, SFD_CLOEXEC);
	fds[n].what = "inotify";
	fds[n++].fd = inotify_init1(IN_CLOEXEC);
#ifdef SYS_pidfd_open
	{
		int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);

		if (pidfd >= 0) { /* else an old kernel: nothing to try */
			fds[n].what = "pidfd";
			fds[n++].fd = pidfd;
		}
	}
#endif

	before = count_open_fds();
	for (size_t i = 0; i < n; i++) {
		int r;

		CHECK(fds[i].fd >= 0);
		r = luo_session_preserve_fd(s, fds[i].fd, 5);
		if (r != -ENOENT) {
			fprintf(stderr, "preserving a %s fd returned %d, expected -ENOENT\n", fds[i].what, r);
			exit(1);
		}
	}
	CHECK_EQ(count_open_fds(), before);

	/* The token is still free for a supported fd. */
	{
		int m = make_memfd("ok", MFD_ALLOW_SEALING, 0);

		CHECK_OK(luo_session_preserve_fd(s, m, 5));
		xclose(m);
	}
	luo_session_close(s);
	for (size_t i = 0; i < n; i++)
		xclose(fds[i].fd);
	luo_close(luo);
}

static int tcp_listener(void)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
		.sin_port = 0,
	};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	CHECK_EQ(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	CHECK_EQ(listen(fd, 16), 0);
	return fd;
}

static void test_preserve_supported_kinds(void)
{
	struct luo *luo = open_fresh();
	struct luo_session *s = create(luo, "kinds");
	char tmpl[] = "/tmp/luo-test-session-XXXXXX";
	char fifo[sizeof(tmpl) + 8];
	int p[2], sp[2], fds[16];
	size_t n = 0;
	int base;

	CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
	fds[n++] = p[0];
	fds[n++] = p[1];
	fds[n] = eventfd(0, EFD_CLOEXEC);
	CHECK(fds[n++] >= 0);
	fds[n++] = tcp_listener();
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	fds[n++] = sp[0];
	fds[n++] = sp[1];
	fds[n] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CHECK(fds[n++] >= 0);
	fds[n] = mkostemp(tmpl, O_CLOEXEC);
	CHECK(fds[n++] >= 0);
	CHECK_EQ(unlink(tmpl), 0);
	fds[n] = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(fds[n++] >= 0);
	fds[n] = open("/dev/null", O_RDWR | O_CLOEXEC);
	CHECK(fds[n++] >= 0);
	snprintf(fifo, sizeof(fifo), "%s.fifo", tmpl);
	CHECK_EQ(mkfifo(fifo, 0600), 0);
	fds[n] = open(fifo, O_RDWR | O_CLOEXEC);
	CHECK(fds[n++] >= 0);
	CHECK_EQ(unlink(fifo), 0);
	/* A tmpfs file that is not a memfd. */
	fds[n] = open("/dev/shm", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fds[n] >= 0)
		n++;

	base = count_open_fds();
	for (size_t i = 0; i < n; i++)
		CHECK_OK(luo_session_preserve_fd(s, fds[i], 1000 + i));
	CHECK_EQ(count_open_fds(), base + (int)n); /* one reference each */

	/* The caller's ends still work: libluo took references only. */
	CHECK_EQ(write(p[1], "x", 1), 1);
	{
		char c;

		CHECK_EQ(read(p[0], &c, 1), 1);
		CHECK(c == 'x');
	}

	for (size_t i = 0; i < n; i++)
		xclose(fds[i]);
	CHECK_EQ(count_open_fds(), base); /* libluo's references remain */
	for (size_t i = 0; i < n; i += 2)
		CHECK_OK(luo_session_unpreserve_fd(s, 1000 + i));
	CHECK_EQ(count_open_fds(), base - (int)(n + 1) / 2);
	luo_session_close(s);
	CHECK_EQ(count_open_fds(), base - (int)n);
	luo_close(luo);
}

static void test_memfd_without_sealing(void)
{
	struct luo *luo = open_fresh();
	struct luo_session *s = create(luo, "nosealing");
	int m = make_memfd("nosealing", 0, 4096);
	int seals = fcntl(m, F_GET_SEALS);

	CHECK_EQ(seals, F_SEAL_SEAL);
	CHECK_OK(luo_session_preserve_fd(s, m, 1));
	/* Left to the "fd" handler: nothing sealed, the size may change. */
	CHECK_EQ(fcntl(m, F_GET_SEALS), seals);
	CHECK_EQ(ftruncate(m, 8192), 0);
	CHECK_EQ(fd_size(m), 8192);

	/* Same for a sealable memfd already sealed with F_SEAL_SEAL. */
	{
		int m2 = make_memfd("sealed-shut", MFD_ALLOW_SEALING, 64);

		CHECK_EQ(fcntl(m2, F_ADD_SEALS, F_SEAL_SEAL), 0);
		CHECK_OK(luo_session_preserve_fd(s, m2, 2));
		CHECK_EQ(fcntl(m2, F_GET_SEALS), F_SEAL_SEAL);
		xclose(m2);
	}
	luo_session_close(s);
	xclose(m);
	luo_close(luo);
}

static void test_caller_closes_after_preserve(void)
{
	struct luo *luo = open_fresh();
	struct luo_session *s = create(luo, "caller-closes");
	int base = count_open_fds();
	int m = make_memfd("luo-test-keep", MFD_ALLOW_SEALING, 128);
	int ref, flags;

	CHECK_OK(luo_session_preserve_fd(s, m, 9));
	xclose(m);
	CHECK_EQ(count_open_fds(), base + 1);

	/* libluo's own reference: the same memfd, close-on-exec, above 2. */
	ref = find_fd_by_link("/memfd:luo-test-keep (deleted)", -1);
	CHECK(ref >= 3);
	flags = fcntl(ref, F_GETFD);
	CHECK(flags >= 0 && (flags & FD_CLOEXEC));
	CHECK_EQ(fd_size(ref), 128);

	CHECK_OK(luo_session_unpreserve_fd(s, 9));
	CHECK_EQ(count_open_fds(), base);
	CHECK_EQ(find_fd_by_link("/memfd:luo-test-keep (deleted)", -1), -1);
	luo_session_close(s);
	luo_close(luo);
}

static void test_unpreserve(void)
{
	struct luo *luo = open_fresh();
	struct luo_session *s = create(luo, "unpreserve");
	int m[3] = { make_memfd("m1", MFD_ALLOW_SEALING, 8), make_memfd("m2", MFD_ALLOW_SEALING, 8),
		     make_memfd("m3", MFD_ALLOW_SEALING, 8) };
	int base = count_open_fds();

	CHECK_ERR(luo_session_unpreserve_fd(s, 1), ENOENT);
	CHECK_OK(luo_session_preserve_fd(s, m[0], 1));
	CHECK_OK(luo_session_preserve_fd(s, m[1], 2));
	CHECK_OK(luo_session_preserve_fd(s, m[2], 3));
	CHECK_EQ(count_open_fds(), base + 3);
	CHECK_ERR(luo_session_unpreserve_fd(s, 4), ENOENT);

	/* Out of order, each exactly once; an unpreserved file may come back. */
	CHECK_OK(luo_session_unpreserve_fd(s, 2));
	CHECK_ERR(luo_session_unpreserve_fd(s, 2), ENOENT);
	CHECK_EQ(count_open_fds(), base + 2);
	CHECK_ERR(luo_session_preserve_fd(s, m[0], 4), EBUSY); /* still preserved, under 1 */
	CHECK_OK(luo_session_preserve_fd(s, m[1], 2));
	CHECK_ERR(luo_session_preserve_fd(s, m[1], 2), EEXIST);
	CHECK_OK(luo_session_unpreserve_fd(s, 1));
	CHECK_OK(luo_session_unpreserve_fd(s, 3));
	CHECK_OK(luo_session_unpreserve_fd(s, 2));
	CHECK_EQ(count_open_fds(), base);
	CHECK_OK(luo_session_preserve_fd(s, m[0], 1));
	CHECK_OK(luo_session_unpreserve_fd(s, 1));
	CHECK_EQ(count_open_fds(), base);
	luo_session_close(s);
	for (int i = 0; i < 3; i++)
		xclose(m[i]);
	luo_close(luo);
}

/* ------------------------------------------------------------------------ */
/* memfds                                                                    */

static void test_memfd_size_frozen(void)
{
	struct luo *luo = open_fresh();
	struct luo_session *s = create(luo, "frozen");
	uint8_t buf[4096], patch[100];
	int m = make_memfd("frozen", MFD_ALLOW_SEALING, 0);

	fill_pattern(buf, sizeof(buf), 2);
	write_all_at(m, buf, sizeof(buf), 0);
	CHECK_OK(luo_session_preserve_fd(s, m, 1));

	errno = 0;
	CHECK_EQ(ftruncate(m, 8192), -1);
	CHECK_EQ(errno, EPERM);
	errno = 0;
	CHECK_EQ(ftruncate(m, 100), -1);
	CHECK_EQ(errno, EPERM);
	errno = 0;
	CHECK_EQ(ftruncate(m, 0), -1);
	CHECK_EQ(errno, EPERM);
	errno = 0;
	CHECK_EQ(pwrite(m, "z", 1, sizeof(buf)), -1); /* would grow */
	CHECK_EQ(errno, EPERM);
	CHECK_EQ(fd_size(m), sizeof(buf));

	/* Writes within the size work and read back. */
	fill_pattern(patch, sizeof(patch), 3);
	write_all_at(m, patch, sizeof(patch), 1000);
	memcpy(buf + 1000, patch, sizeof(patch));
	write_all_at(m, patch, sizeof(patch), sizeof(buf) - sizeof(patch));
	memcpy(buf + sizeof(buf) - sizeof(patch), patch, sizeof(patch));
	check_contents(m, buf, sizeof(buf));

	/* ... through a shared mapping too. */
	{
		uint8_t *map = mmap(NULL, sizeof(buf), PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);

		CHECK(map != MAP_FAILED);
		map[0] = (uint8_t)~buf[0];
		buf[0] = map[0];
		CHECK_EQ(munmap(map, sizeof(buf)), 0);
		check_contents(m, buf, sizeof(buf));
	}

	/* Seals are permanent: unpreserving does not lift them. */
	CHECK_OK(luo_session_unpreserve_fd(s, 1));
	errno = 0;
	CHECK_EQ(ftruncate(m, 8192), -1);
	CHECK_EQ(errno, EPERM);
	/* A re-preserve of the already frozen memfd works. */
	CHECK_OK(luo_session_preserve_fd(s, m, 1));
	luo_session_close(s);
	xclose(m);
	luo_close(luo);
}

static void test_memfd_zero_length(void)
{
	struct luo *luo = open_fresh();
	struct luo_session *s = create(luo, "empty");
	int m = make_memfd("empty", MFD_ALLOW_SEALING, 0);

	CHECK_OK(luo_session_preserve_fd(s, m, 1));
	CHECK_EQ(fd_size(m), 0);
	errno = 0;
	CHECK_EQ(ftruncate(m, 1), -1);
	CHECK_EQ(errno, EPERM);
	errno = 0;
	CHECK_EQ(write(m, "x", 1), -1);
	CHECK_EQ(errno, EPERM);
	CHECK_EQ(fd_size(m), 0);
	luo_session_close(s);
	CHECK_EQ(fd_size(m), 0);
	xclose(m);
	luo_close(luo);
}

static void test_several_memfds(void)
{
	enum { N = 16 };
	struct luo *luo = open_fresh();
	struct luo_session *s = create(luo, "several");
	struct luo_session *mixed[2];
	uint8_t *bufs[N];
	int m[N];

	for (int i = 0; i < N; i++) {
		size_t len = (size_t)(i + 1) * 1000;

		bufs[i] = malloc(len);
		CHECK(bufs[i] != NULL);
		fill_pattern(bufs[i], len, 100 + (uint64_t)i);
		m[i] = make_memfd("several", MFD_ALLOW_SEALING, 0);
		write_all_at(m[i], bufs[i], len, 0);
		CHECK_OK(luo_session_preserve_fd(s, m[i], (uint64_t)i * 1000003));
	}
	for (int i = 0; i < N; i++) {
		CHECK_EQ(fd_size(m[i]), (i + 1) * 1000);
		check_contents(m[i], bufs[i], (size_t)(i + 1) * 1000);
	}

	/*
	 * Two sessions mixing empty and filled memfds. The filled ones are
	 * "several"'s until it is closed: an open file is preserved once.
	 */
	mixed[0] = create(luo, "mixed-0");
	mixed[1] = create(luo, "mixed-1");
	CHECK_ERR(luo_session_preserve_fd(mixed[0], m[1], 1), EBUSY);
	luo_session_close(s);
	for (int i = 0; i < N; i++) {
		int e = make_memfd("empty", MFD_ALLOW_SEALING, 0);

		CHECK_OK(luo_session_preserve_fd(mixed[i % 2], i % 3 ? m[i] : e, (uint64_t)i));
		CHECK_EQ(fd_size(e), 0);
		xclose(e);
	}
	for (int i = 0; i < N; i++) {
		check_contents(m[i], bufs[i], (size_t)(i + 1) * 1000);
		xclose(m[i]);
		free(bufs[i]);
	}
	luo_close(luo);
}

static void test_memfd_1mib_intact(void)
{
	const size_t len = 1u << 20;
	struct luo *luo = open_fresh();
	struct luo_session *s = create(luo, "big");
	uint8_t *buf = malloc(len);
	int m = make_memfd("big", MFD_ALLOW_SEALING, 0);

	CHECK(buf != NULL);
	fill_pattern(buf, len, 0x1234567);
	write_all_at(m, buf, len, 0);
	CHECK_OK(luo_session_preserve_fd(s, m, 1));
	CHECK_EQ(fd_size(m), len);
	check_contents(m, buf, len);
	luo_session_close(s);
	check_contents(m, buf, len);
	xclose(m);
	free(buf);
	luo_close(luo);
}

/* ------------------------------------------------------------------------ */
/* Limits                                                                    */

static void test_2000_sessions(void)
{
	enum { N = 2000 };
	struct luo *luo = open_fresh();
	struct luo_session **s = calloc(N, sizeof(*s));
	int base = count_open_fds();

	CHECK(s != NULL);
	/* A memfd each: one open file is preserved once. */
	for (int i = 0; i < N; i++) {
		char name[32];
		int e = memfd_create("session", MFD_CLOEXEC);

		CHECK(e >= 0);
		snprintf(name, sizeof(name), "session-%d", i);
		s[i] = create(luo, name);
		CHECK_OK(luo_session_preserve_fd(s[i], e, 1));
		xclose(e);
	}
	CHECK_EQ(count_open_fds(), base + N);
	for (int i = 0; i < N; i++) {
		char name[32];

		snprintf(name, sizeof(name), "session-%d", i);
		CHECK(strcmp(luo_session_name(s[i]), name) == 0);
	}
	for (int i = 0; i < N; i++)
		luo_session_close(s[i * 7 % N]); /* 7 is prime to N: each once */
	CHECK_EQ(count_open_fds(), base);
	/* Every name is free again. */
	for (int i = 0; i < N; i++) {
		char name[32];

		snprintf(name, sizeof(name), "session-%d", i);
		luo_session_close(create(luo, name));
	}
	free(s);
	luo_close(luo);
}

static void test_500_files(void)
{
	enum { N = 500 };
	struct luo *luo = open_fresh();
	struct luo_session *s = create(luo, "many-files");
	int base = count_open_fds();
	int p[2];

	for (int i = 0; i < N; i++) {
		int m = make_memfd("many", MFD_ALLOW_SEALING, (size_t)i);

		CHECK_OK(luo_session_preserve_fd(s, m, (uint64_t)i));
		xclose(m);
	}
	CHECK_EQ(count_open_fds(), base + N);
	CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
	for (int i = 0; i < N; i++)
		CHECK_ERR(luo_session_preserve_fd(s, p[0], (uint64_t)i), EEXIST);
	xclose(p[0]);
	xclose(p[1]);
	for (int i = 0; i < N; i += 5)
		CHECK_OK(luo_session_unpreserve_fd(s, (uint64_t)i));
	CHECK_EQ(count_open_fds(), base + N - N / 5);
	luo_session_close(s);
	CHECK_EQ(count_open_fds(), base);
	luo_close(luo);
}

static void test_session_files_max(void)
{
	struct luo *luo;
	struct luo_session *s, *other;
	int base = count_open_fds();
	struct rlimit saved;
	int p[2], e;

	/* libluo dups the fd for each preserve: room for all of them. */
	if (!want_nofile((rlim_t)base + LUO_SESSION_FILES_MAX + 64, &saved))
		return;
	luo = open_fresh();
	s = create(luo, "full");
	other = create(luo, "other");
	/* A new open file each time (an open file is preserved once): memfds. */
	for (uint64_t t = 0; t < LUO_SESSION_FILES_MAX; t++) {
		e = memfd_create("full", MFD_CLOEXEC);
		CHECK(e >= 0);
		CHECK_OK(luo_session_preserve_fd(s, e, t));
		xclose(e);
	}
	CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
	CHECK_ERR(luo_session_preserve_fd(s, p[0], LUO_SESSION_FILES_MAX), ENOSPC);
	CHECK_ERR(luo_session_preserve_fd(s, p[1], UINT64_MAX), ENOSPC);
	CHECK_EQ(count_open_fds(), base + 2 + LUO_SESSION_FILES_MAX);

	/* The limit is per session. */
	CHECK_OK(luo_session_preserve_fd(other, p[0], 0));

	/* One out, one in. */
	CHECK_OK(luo_session_unpreserve_fd(s, 17));
	CHECK_OK(luo_session_preserve_fd(s, p[1], LUO_SESSION_FILES_MAX));
	e = memfd_create("full", MFD_CLOEXEC);
	CHECK(e >= 0);
	CHECK_ERR(luo_session_preserve_fd(s, e, 17), ENOSPC);
	xclose(e);

	xclose(p[0]);
	xclose(p[1]);
	luo_session_close(s);
	CHECK_EQ(count_open_fds(), base + 1);
	luo_close(luo);
	CHECK_EQ(count_open_fds(), base);
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
}

static void test_sessions_max(void)
{
	struct luo *luo = open_fresh();
	struct luo_session *s = (struct luo_session *)(uintptr_t)0x1, *first = NULL;
	char name[32];

	for (int i = 0; i < LUO_SESSIONS_MAX; i++) {
		struct luo_session *t;

		snprintf(name, sizeof(name), "s%d", i);
		t = create(luo, name);
		if (i == 0)
			first = t;
	}
	CHECK_ERR(luo_session_create(luo, "one-too-many", &s), ENOMEM);
	CHECK(s == (struct luo_session *)(uintptr_t)0x1);
	/* A duplicate name is still a duplicate. */
	CHECK_ERR(luo_session_create(luo, "s1", &s), EEXIST);

	luo_session_close(first);
	s = create(luo, "one-too-many");
	CHECK_ERR(luo_session_create(luo, "s0", &s), ENOMEM);
	luo_close(luo);

	/* A new handle starts empty. */
	luo = open_fresh();
	luo_session_close(create(luo, "s0"));
	luo_close(luo);
}

static void test_files_max(void)
{
	struct luo *luo;
	struct luo_session *s[LUO_FILES_MAX / LUO_SESSION_FILES_MAX + 1];
	size_t nsess = LUO_FILES_MAX / LUO_SESSION_FILES_MAX;
	int base = count_open_fds();
	struct rlimit saved;
	int p[2];

	if (!want_nofile((rlim_t)base + LUO_FILES_MAX + 64, &saved))
		return;
	luo = open_fresh();
	CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
	for (size_t i = 0; i <= nsess; i++) {
		char name[32];

		snprintf(name, sizeof(name), "files-%zu", i);
		s[i] = create(luo, name);
	}
	/* A new open file each time (an open file is preserved once): memfds. */
	for (size_t i = 0; i < nsess; i++) {
		for (uint64_t t = 0; t < LUO_SESSION_FILES_MAX; t++) {
			int m = memfd_create("files-max", MFD_CLOEXEC);

			CHECK(m >= 0);
			CHECK_OK(luo_session_preserve_fd(s[i], m, t));
			xclose(m);
		}
	}
	CHECK_ERR(luo_session_preserve_fd(s[nsess], p[0], 0), ENOSPC);
	luo_session_close(s[0]);
	CHECK_OK(luo_session_preserve_fd(s[nsess], p[0], 0));
	CHECK_ERR(luo_session_preserve_fd(s[nsess], p[1], 1), ENOSPC);
	xclose(p[0]);
	xclose(p[1]);
	luo_close(luo);
	CHECK_EQ(count_open_fds(), base);
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
}

/* ------------------------------------------------------------------------ */
/* Cleanup                                                                   */

static void test_session_close_unpreserves(void)
{
	struct luo *luo = open_fresh();
	struct luo_session *s = create(luo, "closing");
	int base = count_open_fds();
	int p[2], m, ev, ev2;

	CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
	m = make_memfd("closing", MFD_ALLOW_SEALING, 64);
	ev = eventfd(0, EFD_CLOEXEC);
	ev2 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); /* other flags: two files even without kcmp() */
	CHECK(ev >= 0 && ev2 >= 0);
	CHECK_OK(luo_session_preserve_fd(s, p[0], 1));
	CHECK_OK(luo_session_preserve_fd(s, p[1], 2));
	CHECK_OK(luo_session_preserve_fd(s, m, 3));
	CHECK_OK(luo_session_preserve_fd(s, ev, 4));
	CHECK_OK(luo_session_preserve_fd(s, ev2, 5));
	xclose(p[0]);
	xclose(p[1]);
	xclose(m);
	xclose(ev);
	xclose(ev2);
	CHECK_EQ(count_open_fds(), base + 5);
	luo_session_close(s);
	CHECK_EQ(count_open_fds(), base);

	/* An empty session closes too; NULL is allowed. */
	luo_session_close(create(luo, "empty"));
	luo_session_close(NULL);
	/* The name is free again. */
	luo_session_close(create(luo, "closing"));
	luo_close(luo);
}

static void test_luo_close_closes_all(void)
{
	int base = count_open_fds();
	struct luo *luo = open_fresh();

	for (int i = 0; i < 8; i++) {
		char name[32];
		struct luo_session *s;

		snprintf(name, sizeof(name), "left-open-%d", i);
		s = create(luo, name);
		for (int j = 0; j < i; j++) {
			int m = make_memfd("left", MFD_ALLOW_SEALING, 16);

			CHECK_OK(luo_session_preserve_fd(s, m, (uint64_t)j));
			xclose(m);
		}
	}
	CHECK_EQ(count_open_fds(), base + 28);
	luo_close(luo);
	CHECK_EQ(count_open_fds(), base);

	/* The next handle starts empty: the names are free. */
	luo = open_fresh();
	luo_session_close(create(luo, "left-open-3"));
	luo_close(luo);
}

/* ------------------------------------------------------------------------ */
/* File handlers                                                             */

#define MOCK_MARKER 0x4c554f2d4d4f434bull /* "LUO-MOCK" */

static struct {
	int fd_a, fd_b;     /* the fd numbers the mock takes */
	dev_t dev;          /* what fd_a refers to */
	ino_t ino;
	int fail;           /* preserve returns this when non-zero */
	int can_preserve_calls;
	int preserve_calls;
	int unpreserve_calls;
	int other_calls;    /* retrieve, can_finish, finish, freeze, unfreeze */
	int bad;            /* a callback saw something it should not */
	uint64_t order[8];  /* tokens, in unpreserve order */
	int n_order;
} mock;

static bool mock_can_preserve(int fd)
{
	mock.can_preserve_calls++;
	return fd == mock.fd_a || fd == mock.fd_b;
}

static int mock_preserve(struct luo_file *file)
{
	int fd = luo_file_fd(file);
	uint64_t marker = MOCK_MARKER ^ luo_file_token(file);
	uint8_t zero[LUO_FILE_DATA_MAX] = { 0 };
	struct stat st;
	int flags;

	mock.preserve_calls++;
	/* libluo's own close-on-exec reference to the same file. */
	flags = fcntl(fd, F_GETFD);
	if (fd < 3 || fd == mock.fd_a || fd == mock.fd_b || flags < 0 || !(flags & FD_CLOEXEC))
		mock.bad++;
	if (fstat(fd, &st) < 0 || st.st_dev != mock.dev || st.st_ino != mock.ino)
		mock.bad++;
	/* The data starts zeroed. */
	if (memcmp(luo_file_data(file), zero, 8) != 0)
		mock.bad++;
	if (mock.fail)
		return mock.fail;
	memcpy(luo_file_data(file), &marker, sizeof(marker));
	return 0;
}

static void mock_unpreserve(struct luo_file *file)
{
	uint64_t marker;

	mock.unpreserve_calls++;
	memcpy(&marker, luo_file_data(file), sizeof(marker));
	if (marker != (MOCK_MARKER ^ luo_file_token(file)))
		mock.bad++;
	if (mock.n_order < (int)(sizeof(mock.order) / sizeof(mock.order[0])))
		mock.order[mock.n_order++] = luo_file_token(file);
}

static int mock_freeze(struct luo_file *file)
{
	(void)file;
	mock.other_calls++;
	return 0;
}

static void mock_unfreeze(struct luo_file *file)
{
	(void)file;
	mock.other_calls++;
}

static int mock_retrieve(struct luo_file *file)
{
	(void)file;
	mock.other_calls++;
	return 0;
}

static bool mock_can_finish(struct luo_file *file)
{
	(void)file;
	mock.other_calls++;
	return true;
}

static void mock_finish(struct luo_file *file, bool retrieved)
{
	(void)file;
	(void)retrieved;
	mock.other_calls++;
}

static const struct luo_file_ops mock_ops = {
	.can_preserve = mock_can_preserve,
	.preserve = mock_preserve,
	.unpreserve = mock_unpreserve,
	.freeze = mock_freeze,
	.unfreeze = mock_unfreeze,
	.retrieve = mock_retrieve,
	.can_finish = mock_can_finish,
	.finish = mock_finish,
};

static const struct luo_file_handler mock_handler = {
	.name = "test-mock",
	.version = 1,
	.data_size = 8,
	.ops = &mock_ops,
};

static void test_handler_register_invalid(void)
{
	struct luo_file_ops ops = mock_ops;
	struct luo_file_handler h = mock_handler;
	char name[LUO_HANDLER_NAME_MAX + 2];

	h.ops = &ops;
	h.name = "test-invalid";

	/* Each required op missing. */
	ops.can_preserve = NULL;
	CHECK_ERR(luo_file_handler_register(&h), EINVAL);
	ops = mock_ops;
	ops.preserve = NULL;
	CHECK_ERR(luo_file_handler_register(&h), EINVAL);
	ops = mock_ops;
	ops.unpreserve = NULL;
	CHECK_ERR(luo_file_handler_register(&h), EINVAL);
	ops = mock_ops;
	ops.retrieve = NULL;
	CHECK_ERR(luo_file_handler_register(&h), EINVAL);
	ops = mock_ops;
	ops.finish = NULL;
	CHECK_ERR(luo_file_handler_register(&h), EINVAL);
	ops = mock_ops;
	h.ops = NULL;
	CHECK_ERR(luo_file_handler_register(&h), EINVAL);
	h.ops = &ops;
	CHECK_ERR(luo_file_handler_register(NULL), EINVAL);

	/* Version 0. */
	h.version = 0;
	CHECK_ERR(luo_file_handler_register(&h), EINVAL);
	h.version = 1;

	/* Bad names. */
	h.name = "";
	CHECK_ERR(luo_file_handler_register(&h), EINVAL);
	make_name(name, LUO_HANDLER_NAME_MAX + 1, 'h');
	CHECK_EQ(strlen(name), 32);
	h.name = name;
	CHECK_ERR(luo_file_handler_register(&h), EINVAL);
	h.name = NULL;
	CHECK_ERR(luo_file_handler_register(&h), EINVAL);
	h.name = "test-invalid";

	/* Data too large. */
	h.data_size = LUO_FILE_DATA_MAX + 1;
	CHECK_ERR(luo_file_handler_register(&h), EINVAL);
	h.data_size = UINT32_MAX;
	CHECK_ERR(luo_file_handler_register(&h), EINVAL);

	/* Unknown ops flags. */
	h.data_size = 0;
	ops.flags = 1u << 1;
	CHECK_ERR(luo_file_handler_register(&h), EINVAL);
	ops.flags = ~0u;
	CHECK_ERR(luo_file_handler_register(&h), EINVAL);
	ops.flags = 0;

	/* None of these was registered. */
	CHECK_ERR(luo_file_handler_unregister(&h), ENOENT);

	/* The limits themselves are fine; optional ops may be missing. */
	make_name(name, LUO_HANDLER_NAME_MAX, 'h');
	h.name = name;
	h.data_size = LUO_FILE_DATA_MAX;
	ops.freeze = NULL;
	ops.unfreeze = NULL;
	ops.can_finish = NULL;
	CHECK_OK(luo_file_handler_register(&h));
	CHECK_OK(luo_file_handler_unregister(&h));
	h.data_size = 0;
	CHECK_OK(luo_file_handler_register(&h));
	CHECK_OK(luo_file_handler_unregister(&h));
	CHECK_ERR(luo_file_handler_unregister(&h), ENOENT);

	/* Nothing stuck: a handle opens. */
	luo_close(open_fresh());
}

static void test_handler_register_duplicate(void)
{
	struct luo_file_handler same_name = mock_handler;
	struct luo_file_handler builtin = mock_handler;

	builtin.name = "memfd";
	CHECK_ERR(luo_file_handler_register(&builtin), EEXIST);
	builtin.name = "fd";
	CHECK_ERR(luo_file_handler_register(&builtin), EEXIST);
	/* Built-ins are never registered, so cannot be unregistered. */
	CHECK_ERR(luo_file_handler_unregister(&builtin), ENOENT);

	CHECK_OK(luo_file_handler_register(&mock_handler));
	CHECK_ERR(luo_file_handler_register(&mock_handler), EEXIST);
	CHECK_ERR(luo_file_handler_register(&same_name), EEXIST);
	/* Unregistering goes by handler, not by name. */
	CHECK_ERR(luo_file_handler_unregister(&same_name), ENOENT);
	CHECK_OK(luo_file_handler_unregister(&mock_handler));
	CHECK_ERR(luo_file_handler_unregister(&mock_handler), ENOENT);

	CHECK_OK(luo_file_handler_register(&same_name));
	CHECK_OK(luo_file_handler_unregister(&same_name));
	luo_close(open_fresh());
}

static void test_handler_register_busy(void)
{
	struct luo *luo;

	CHECK_OK(luo_file_handler_register(&mock_handler));
	luo = open_fresh();
	{
		struct luo_file_handler other = mock_handler;

		other.name = "test-other";
		CHECK_ERR(luo_file_handler_register(&other), EBUSY);
	}
	CHECK_ERR(luo_file_handler_unregister(&mock_handler), EBUSY);
	luo_close(luo);

	CHECK_OK(luo_file_handler_unregister(&mock_handler));
	CHECK_ERR(luo_file_handler_unregister(&mock_handler), ENOENT);
}

static void test_handlers_max(void)
{
	static struct luo_file_handler hs[LUO_HANDLERS_MAX + 1];
	static char names[LUO_HANDLERS_MAX + 1][LUO_HANDLER_NAME_MAX + 1];

	for (int i = 0; i <= LUO_HANDLERS_MAX; i++) {
		snprintf(names[i], sizeof(names[i]), "test-h%d", i);
		hs[i] = mock_handler;
		hs[i].name = names[i];
	}
	for (int i = 0; i < LUO_HANDLERS_MAX; i++)
		CHECK_OK(luo_file_handler_register(&hs[i]));
	CHECK_ERR(luo_file_handler_register(&hs[LUO_HANDLERS_MAX]), ENOSPC);
	CHECK_OK(luo_file_handler_unregister(&hs[5]));
	CHECK_OK(luo_file_handler_register(&hs[LUO_HANDLERS_MAX]));
	CHECK_ERR(luo_file_handler_register(&hs[5]), ENOSPC);
	for (int i = 0; i <= LUO_HANDLERS_MAX; i++)
		if (i != 5)
			CHECK_OK(luo_file_handler_unregister(&hs[i]));
	luo_close(open_fresh());
}

static void test_custom_handler(void)
{
	struct luo *luo;
	struct luo_session *s;
	int m, a, b, other;
	struct stat st;
	int base, calls;

	memset(&mock, 0, sizeof(mock));
	m = make_memfd("mock", MFD_ALLOW_SEALING, 4096);
	CHECK_EQ(fstat(m, &st), 0);
	mock.dev = st.st_dev;
	mock.ino = st.st_ino;
	mock.fd_a = a = free_fd_number(700);
	CHECK_EQ(dup3(m, a, O_CLOEXEC), a);
	/* b: another open file of the same memfd (a and b are preserved together). */
	mock.fd_b = b = free_fd_number(a + 1);
	{
		char path[64];
		int reopened;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", m);
		reopened = open(path, O_RDWR | O_APPEND | O_CLOEXEC); /* other flags: no kcmp() needed */
		CHECK(reopened >= 0);
		CHECK_EQ(dup3(reopened, b, O_CLOEXEC), b);
		xclose(reopened);
	}
	other = make_memfd("not-mock", MFD_ALLOW_SEALING, 4096);

	CHECK_OK(luo_file_handler_register(&mock_handler));
	luo = open_fresh();
	s = create(luo, "custom");
	base = count_open_fds();

	/* Tried before the built-ins: "memfd" would have sealed it. */
	CHECK_OK(luo_session_preserve_fd(s, a, 11));
	CHECK_EQ(mock.can_preserve_calls, 1);
	CHECK_EQ(mock.preserve_calls, 1);
	CHECK_EQ(fcntl(a, F_GET_SEALS), 0);
	CHECK_EQ(ftruncate(a, 8192), 0);
	CHECK_EQ(count_open_fds(), base + 1);

	/* Other fds fall through to the built-ins. */
	CHECK_OK(luo_session_preserve_fd(s, other, 12));
	CHECK_EQ(mock.can_preserve_calls, 2);
	CHECK_EQ(mock.preserve_calls, 1);
	CHECK_EQ(fcntl(other, F_GET_SEALS) & FROZEN_SEALS, FROZEN_SEALS);

	/* A refused token, or an open file already preserved, never reaches the handler's preserve. */
	CHECK_ERR(luo_session_preserve_fd(s, a, 11), EEXIST);
	CHECK_ERR(luo_session_preserve_fd(s, a, 16), EBUSY);
	CHECK_EQ(mock.preserve_calls, 1);

	/* A handler's error is returned as is, and nothing is kept. */
	mock.fail = -EIO;
	CHECK_ERR(luo_session_preserve_fd(s, b, 13), EIO);
	CHECK_EQ(mock.preserve_calls, 2);
	CHECK_EQ(mock.unpreserve_calls, 0);
	CHECK_EQ(count_open_fds(), base + 2);
	mock.fail = 0;
	CHECK_OK(luo_session_preserve_fd(s, b, 13));
	CHECK_EQ(mock.preserve_calls, 3);
	CHECK_EQ(count_open_fds(), base + 3);

	/* unpreserve: once per file, with the data preserve wrote. */
	CHECK_OK(luo_session_unpreserve_fd(s, 11));
	CHECK_EQ(mock.unpreserve_calls, 1);
	CHECK_EQ(mock.order[0], 11);
	CHECK_ERR(luo_session_unpreserve_fd(s, 11), ENOENT);
	CHECK_EQ(mock.unpreserve_calls, 1);
	CHECK_EQ(count_open_fds(), base + 2);

	/* Unpreserved, a may be preserved again; b still may not. */
	CHECK_OK(luo_session_preserve_fd(s, a, 14));
	CHECK_ERR(luo_session_preserve_fd(s, b, 15), EBUSY);
	CHECK_EQ(mock.preserve_calls, 4);
	CHECK_EQ(count_open_fds(), base + 3);

	/* Closing the session unpreserves the rest, last preserved first. */
	luo_session_close(s);
	CHECK_EQ(mock.unpreserve_calls, 3);
	CHECK_EQ(mock.order[1], 14);
	CHECK_EQ(mock.order[2], 13);
	CHECK_EQ(count_open_fds(), base);

	/* luo_close() unpreserves what is left too. */
	s = create(luo, "custom-2");
	CHECK_OK(luo_session_preserve_fd(s, a, 21));
	CHECK_OK(luo_session_preserve_fd(s, b, 22));
	luo_close(luo);
	CHECK_EQ(mock.unpreserve_calls, 5);
	CHECK_EQ(mock.order[3], 22);
	CHECK_EQ(mock.order[4], 21);
	CHECK_EQ(mock.preserve_calls, 6);

	CHECK_EQ(mock.bad, 0);
	CHECK_EQ(mock.other_calls, 0); /* no update, no incoming side */

	/* Once unregistered, the built-ins take the fd again. */
	CHECK_OK(luo_file_handler_unregister(&mock_handler));
	CHECK_ERR(luo_file_handler_unregister(&mock_handler), ENOENT);
	luo = open_fresh();
	s = create(luo, "builtin-again");
	calls = mock.can_preserve_calls;
	CHECK_OK(luo_session_preserve_fd(s, a, 1));
	CHECK_EQ(mock.can_preserve_calls, calls);
	CHECK_EQ(fcntl(a, F_GET_SEALS) & FROZEN_SEALS, FROZEN_SEALS);
	luo_close(luo);

	xclose(a);
	xclose(b);
	xclose(m);
	xclose(other);
}

/* ------------------------------------------------------------------------ */
/* Threads                                                                   */

enum { THREADS = 8, THREAD_FILES = 200 };

struct thread_arg {
	struct luo *luo;
	int index;
};

static void *thread_main(void *p)
{
	struct thread_arg *arg = p;
	struct luo_session *s;
	char name[32];
	int fds[THREAD_FILES];

	snprintf(name, sizeof(name), "thread-%d", arg->index);
	CHECK_OK(luo_session_create(arg->luo, name, &s));
	/* One open file per token (an open file is preserved once). */
	for (int i = 0; i < THREAD_FILES; i++) {
		fds[i] = memfd_create("thread", MFD_CLOEXEC);
		CHECK(fds[i] >= 0);
	}
	for (int round = 0; round < 3; round++) {
		for (uint64_t t = 0; t < THREAD_FILES; t++)
			CHECK_OK(luo_session_preserve_fd(s, fds[t], t));
		for (uint64_t t = 0; t < THREAD_FILES; t += 2)
			CHECK_OK(luo_session_unpreserve_fd(s, t));
		CHECK_ERR(luo_session_preserve_fd(s, fds[1], THREAD_FILES), EBUSY);
		for (uint64_t t = 1; t < THREAD_FILES; t += 2)
			CHECK_OK(luo_session_unpreserve_fd(s, t));
	}
	for (uint64_t t = 0; t < THREAD_FILES; t++)
		CHECK_OK(luo_session_preserve_fd(s, fds[t], t));
	for (int i = 0; i < THREAD_FILES; i++)
		xclose(fds[i]);
	if (arg->index % 2)
		luo_session_close(s);
	return NULL;
}

static void test_threads(void)
{
	struct luo *luo = open_fresh();
	pthread_t th[THREADS];
	struct thread_arg args[THREADS];
	int base = count_open_fds();

	for (int i = 0; i < THREADS; i++) {
		args[i] = (struct thread_arg){ .luo = luo, .index = i };
		CHECK_EQ(pthread_create(&th[i], NULL, thread_main, &args[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		CHECK_EQ(pthread_join(th[i], NULL), 0);
	/* Even-numbered threads left their sessions open. */
	CHECK_EQ(count_open_fds(), base + THREADS / 2 * THREAD_FILES);
	luo_close(luo);
	CHECK_EQ(count_open_fds(), base);
}

/* ------------------------------------------------------------------------ */

static const struct {
	void (*fn)(void);
	const char *name;
} tests[] = {
	{ test_open_close, "open and close" },
	{ test_exclusive_open, "exclusive open: a second luo_open gets -EBUSY" },
	{ test_open_bad_flags, "luo_open with unknown flag bits gets -EINVAL" },
	{ test_fresh_start, "fresh start: not incoming, number 0, no timings, ready" },
	{ test_session_duplicate_name, "duplicate session name gets -EEXIST" },
	{ test_session_name_limits, "session names: empty and 64 bytes refused, 63 kept exactly" },
	{ test_sessions_distinct, "distinct sessions are independent" },
	{ test_retrieve_on_fresh_start, "luo_session_retrieve on a fresh start gets -ENOENT" },
	{ test_outgoing_misuse, "incoming-only calls on an outgoing session get -EINVAL" },
	{ test_preserve_memfd, "preserve a memfd" },
	{ test_preserve_duplicate_token, "duplicate token gets -EEXIST" },
	{ test_preserve_bad_fd, "bad fd gets -EBADF" },
	{ test_preserve_unsupported, "unsupported fd kinds get -ENOENT" },
	{ test_preserve_supported_kinds, "pipes, eventfd, sockets, files, directory, devices, FIFO" },
	{ test_memfd_without_sealing, "memfd without MFD_ALLOW_SEALING goes to the fd handler" },
	{ test_caller_closes_after_preserve, "caller may close its fd after preserve" },
	{ test_unpreserve, "unpreserve: unknown token -ENOENT, re-preserve works" },
	{ test_memfd_size_frozen, "preserved memfd: size frozen, writes within it work" },
	{ test_memfd_zero_length, "zero-length memfd" },
	{ test_several_memfds, "several memfds, two sessions mixing empty and filled" },
	{ test_memfd_1mib_intact, "1 MiB of data intact after preserve" },
	{ test_2000_sessions, "2,000 sessions" },
	{ test_500_files, "500 files in a session" },
	{ test_session_files_max, "LUO_SESSION_FILES_MAX reached gets -ENOSPC" },
	{ test_sessions_max, "LUO_SESSIONS_MAX reached gets -ENOMEM" },
	{ test_files_max, "LUO_FILES_MAX reached gets -ENOSPC" },
	{ test_session_close_unpreserves, "closing an outgoing session closes libluo's fds" },
	{ test_luo_close_closes_all, "luo_close with sessions open closes everything" },
	{ test_handler_register_invalid, "handler registration: invalid handlers get -EINVAL" },
	{ test_handler_register_duplicate, "handler registration: duplicate name gets -EEXIST" },
	{ test_handler_register_busy, "handler (un)registration while open gets -EBUSY" },
	{ test_handlers_max, "LUO_HANDLERS_MAX reached gets -ENOSPC" },
	{ test_custom_handler, "custom handler tried first, its callbacks called" },
	{ test_threads, "threads sharing one handle" },
};

int main(void)
{
	unsetenv(LUO_HANDOVER_FD_ENV);
	unsetenv("LUO_HANDOVER_EXEC_NS");
	test_begin();

	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		skip_reason = NULL;
		tests[i].fn();
		check_no_fd_leak();
		if (skip_reason)
			printf("ok - %s # SKIP %s\n", tests[i].name, skip_reason);
		else
			printf("ok - %s\n", tests[i].name);
		fflush(stdout);
	}
	return 0;
}
