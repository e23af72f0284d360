/* SPDX-License-Identifier: MIT */
/*
 * The kernel's LUO selftests (tools/testing/selftests/liveupdate/:
 * liveupdate.c and the two-stage luo_kexec_simple.c, luo_multi_session.c,
 * luo_stress_sessions.c, luo_stress_files.c), as a conformance suite for
 * libluo. Written from the behaviour those tests check, not from their code.
 *
 * One test per kernel case, under the kernel's name, each in its own
 * process; each prints "PASS name" or "FAIL name". Where libluo answers
 * differently on purpose, the test asserts libluo's documented answer and
 * says so ("differs:"); the table of differences is in the README, "Where
 * libluo differs from the kernel's LUO", and in libluo(3). Tests whose name
 * has a suffix (prevent_double_preservation_dup, ...) are not the kernel's:
 * they widen its case to every handler and to kcmp() being unavailable.
 *
 * The two-stage tests go through a real execve(): the first image (a child
 * of this runner) preserves, writes what the second must find in a small
 * "state" session that itself crosses the switch, and calls luo_update()
 * on a second binary built from this file with -DLUO_TEST_NEXT_IMAGE, which
 * checks it all and that exactly the preserved fds crossed and none leaked.
 * As in the kernel's luo_test(), the stage is told by the state session:
 * absent (-ENOENT) in the first image, present in the second.
 */

#include <fcntl.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>

#include <linux/filter.h>
#include <linux/kcmp.h>
#include <linux/seccomp.h>

#include "luo/luo.h"
#include "test-util.h"

#define STATE_TOKEN 999
#define STATE_SESSION "kernel-selftests-state"
#define CASE_NAME_MAX 48
#define ARRAY_SIZE_(a) (sizeof(a) / sizeof((a)[0]))

/* What the first image tells the second, in the state memfd. */
struct state {
	int stage;        /* 2: the kernel's state file holds the next stage */
	char name[CASE_NAME_MAX];
	int fds_at_start; /* the first image's baseline */
	int files_preserved;
};

static long page_size(void)
{
	return sysconf(_SC_PAGESIZE);
}

#ifndef LUO_TEST_NEXT_IMAGE

/* ------------------------------------------------------------------------ */
/* The first image: the in-process cases                                     */

static struct luo *open_luo(void)
{
	struct luo *luo;

	CHECK_OK(luo_open(0, &luo));
	CHECK(!luo_is_incoming(luo));
	return luo;
}

/* A memfd with @data written at its start, created as the kernel's tests do (no sealing). */
static int memfd_with(const char *name, unsigned int flags, const char *data)
{
	int fd = memfd_create(name, MFD_CLOEXEC | flags);

	CHECK(fd >= 0);
	CHECK_EQ(write(fd, data, strlen(data)), strlen(data));
	return fd;
}

/* Read @fd from its start: exactly @want. */
static void check_reads(int fd, const char *want)
{
	char buf[64] = { 0 };

	CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
	CHECK_EQ(read(fd, buf, sizeof(buf)), strlen(want));
	CHECK(strcmp(buf, want) == 0);
}

static void basic_open_close(void)
{
	struct luo *luo = open_luo();

	luo_close(luo);
	/* Closed means free: it opens again. */
	luo = open_luo();
	luo_close(luo);
}

static void exclusive_open(void)
{
	struct luo *luo = open_luo(), *second = NULL;
	int go[2], done[2], status;
	pid_t pid;
	char c = 0;

	CHECK_ERR(luo_open(0, &second), EBUSY);
	CHECK(second == NULL);
	luo_close(luo);

	/*
	 * differs: the kernel's device has one opener system-wide; libluo's
	 * handle is one per process, and another process opens its own while
	 * this one holds one (forked before, since a fork copies the mark).
	 */
	CHECK(pipe2(go, O_CLOEXEC) == 0 && pipe2(done, O_CLOEXEC) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct luo *child;
		int r;

		CHECK_EQ(read(go[0], &c, 1), 1);
		r = luo_open(0, &child);
		if (r == 0)
			luo_close(child);
		c = r == 0 ? 'y' : 'n';
		CHECK_EQ(write(done[1], &c, 1), 1);
		_exit(0);
	}
	luo = open_luo();
	CHECK_EQ(write(go[1], "g", 1), 1);
	CHECK_EQ(read(done[0], &c, 1), 1);
	CHECK_EQ(c, 'y');
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	luo_close(luo);
	close(go[0]);
	close(go[1]);
	close(done[0]);
	close(done[1]);
}

static void create_duplicate_session(void)
{
	struct luo *luo = open_luo();
	struct luo_session *s1, *s2 = NULL;

	CHECK_OK(luo_session_create(luo, "duplicate-session-test", &s1));
	CHECK_ERR(luo_session_create(luo, "duplicate-session-test", &s2), EEXIST);
	CHECK(s2 == NULL);
	luo_session_close(s1);
	/* The name is free once the session is closed. */
	CHECK_OK(luo_session_create(luo, "duplicate-session-test", &s1));
	luo_close(luo);
}

static void create_distinct_sessions(void)
{
	struct luo *luo = open_luo();
	struct luo_session *s1, *s2;

	CHECK_OK(luo_session_create(luo, "distinct-session-1", &s1));
	CHECK_OK(luo_session_create(luo, "distinct-session-2", &s2));
	CHECK(s1 != s2);
	luo_session_close(s1);
	luo_session_close(s2);
	luo_close(luo);
}

static void preserve_memfd(void)
{
	struct luo *luo = open_luo();
	struct luo_session *s;
	int fd;

	/* The kernel's memfd: not sealable (libluo's "fd" handler takes it). */
	CHECK_OK(luo_session_create(luo, "preserve-memfd-test", &s));
	fd = memfd_with("test-memfd", 0, "hello liveupdate");
	CHECK_OK(luo_session_preserve_fd(s, fd, 0x1234));
	luo_session_close(s);
	check_reads(fd, "hello liveupdate");
	close(fd);

	/* A sealable one ("memfd" handler): the same, and its size frozen. */
	CHECK_OK(luo_session_create(luo, "preserve-memfd-test", &s));
	fd = memfd_with("test-memfd", MFD_ALLOW_SEALING, "hello liveupdate");
	CHECK_OK(luo_session_preserve_fd(s, fd, 0x1234));
	CHECK(ftruncate(fd, 4096) < 0 && errno == EPERM);
	CHECK_EQ(pwrite(fd, "H", 1, 0), 1); /* writes within the size still work */
	luo_session_close(s);
	check_reads(fd, "Hello liveupdate");
	close(fd);
	luo_close(luo);
}

static void preserve_multiple_memfds(void)
{
	struct luo *luo = open_luo();
	struct luo_session *s;
	int fd1, fd2;

	CHECK_OK(luo_session_create(luo, "preserve-multi-memfd-test", &s));
	fd1 = memfd_with("test-memfd-1", 0, "data for memfd one");
	fd2 = memfd_with("test-memfd-2", 0, "data for memfd two");
	CHECK_OK(luo_session_preserve_fd(s, fd1, 0xAAAA));
	CHECK_OK(luo_session_preserve_fd(s, fd2, 0xBBBB));
	check_reads(fd1, "data for memfd one");
	check_reads(fd2, "data for memfd two");
	close(fd1);
	close(fd2);
	luo_session_close(s);
	luo_close(luo);
}

static void preserve_complex_scenario(void)
{
	struct luo *luo = open_luo();
	struct luo_session *s1, *s2;
	int data1, empty1, data2, empty2;

	CHECK_OK(luo_session_create(luo, "complex-session-1", &s1));
	CHECK_OK(luo_session_create(luo, "complex-session-2", &s2));
	data1 = memfd_with("data1", 0, "data for session 1");
	empty1 = memfd_with("empty1", 0, "");
	data2 = memfd_with("data2", 0, "data for session 2");
	empty2 = memfd_with("empty2", 0, "");
	CHECK_OK(luo_session_preserve_fd(s1, data1, 0x1111));
	CHECK_OK(luo_session_preserve_fd(s1, empty1, 0x2222));
	CHECK_OK(luo_session_preserve_fd(s2, data2, 0x3333));
	CHECK_OK(luo_session_preserve_fd(s2, empty2, 0x4444));
	check_reads(data1, "data for session 1");
	check_reads(data2, "data for session 2");
	check_reads(empty1, "");
	check_reads(empty2, "");
	close(data1);
	close(empty1);
	close(data2);
	close(empty2);
	luo_session_close(s1);
	luo_session_close(s2);
	luo_close(luo);
}

static void preserve_unsupported_fd(void)
{
	struct luo *luo = open_luo();
	struct luo_session *s;
	int fd;

	CHECK_OK(luo_session_create(luo, "unsupported-fd-test", &s));
	/*
	 * differs: the kernel has no handler for /dev/null (-ENOENT); libluo's
	 * "fd" handler keeps character devices (the same open file crosses
	 * execve(), its identity checked on the other side).
	 */
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_OK(luo_session_preserve_fd(s, fd, 0xDEAD));
	close(fd);
	/* differs: the kernel refuses hugetlb memfds; libluo's "memfd" handler keeps them, size frozen. */
	fd = memfd_create("huge", MFD_CLOEXEC | MFD_HUGETLB | MFD_ALLOW_SEALING);
	if (fd >= 0) { /* kernels without hugetlbfs: nothing to try */
		CHECK_OK(luo_session_preserve_fd(s, fd, 0xF00D));
		CHECK((fcntl(fd, F_GET_SEALS) & (F_SEAL_GROW | F_SEAL_SHRINK)) == (F_SEAL_GROW | F_SEAL_SHRINK));
		close(fd);
	}
	/* A kind libluo has no handler for is refused as the kernel does. */
	fd = epoll_create1(EPOLL_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_ERR(luo_session_preserve_fd(s, fd, 0xBEEF), ENOENT);
	close(fd);
	luo_session_close(s);
	luo_close(luo);
}

static void prevent_double_preservation(void)
{
	struct luo *luo = open_luo();
	struct luo_session *s1, *s2;
	int fd;

	CHECK_OK(luo_session_create(luo, "double-preserve-session-1", &s1));
	CHECK_OK(luo_session_create(luo, "double-preserve-session-2", &s2));
	fd = memfd_create("test-memfd", MFD_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_OK(luo_session_preserve_fd(s1, fd, 0x1111));
	/* Another session, then the same session under another token. */
	CHECK_ERR(luo_session_preserve_fd(s2, fd, 0x2222), EBUSY);
	CHECK_ERR(luo_session_preserve_fd(s1, fd, 0x3333), EBUSY);
	/* The token is checked first, as the kernel does. */
	CHECK_ERR(luo_session_preserve_fd(s1, fd, 0x1111), EEXIST);
	close(fd);
	luo_session_close(s1);
	luo_session_close(s2);
	luo_close(luo);
}

static void create_session_no_null_termination(void)
{
	struct luo *luo = open_luo();
	struct luo_session *s = NULL;
	char name[LUO_SESSION_NAME_MAX + 2];

	/* The kernel's 64-byte field all 'X': a 64-byte name, one too long. */
	memset(name, 'X', LUO_SESSION_NAME_MAX + 1);
	name[LUO_SESSION_NAME_MAX + 1] = '\0';
	CHECK_ERR(luo_session_create(luo, name, &s), EINVAL);
	CHECK(s == NULL);
	luo_close(luo);
}

static void create_session_empty_name(void)
{
	struct luo *luo = open_luo();
	struct luo_session *s = NULL;

	CHECK_ERR(luo_session_create(luo, "", &s), EINVAL);
	CHECK_ERR(luo_session_create(luo, NULL, &s), EINVAL);
	CHECK(s == NULL);
	luo_close(luo);
}

static void get_session_name(void)
{
	struct luo *luo = open_luo();
	struct luo_session *s;

	CHECK_OK(luo_session_create(luo, "get-name-test-session", &s));
	CHECK(strcmp(luo_session_name(s), "get-name-test-session") == 0);
	luo_session_close(s);
	luo_close(luo);
}

static void get_session_name_max_length(void)
{
	struct luo *luo = open_luo();
	struct luo_session *s;
	char name[LUO_SESSION_NAME_MAX + 1];

	memset(name, 'A', LUO_SESSION_NAME_MAX);
	name[LUO_SESSION_NAME_MAX] = '\0';
	CHECK_OK(luo_session_create(luo, name, &s));
	CHECK_EQ(strlen(luo_session_name(s)), LUO_SESSION_NAME_MAX);
	CHECK(strcmp(luo_session_name(s), name) == 0);
	luo_session_close(s);
	luo_close(luo);
}

static void preserve_many_sessions(void)
{
	enum { MANY = 2000 };
	struct luo *luo = open_luo();
	struct luo_session **s = calloc(MANY, sizeof(*s));
	char name[LUO_SESSION_NAME_MAX + 1];

	CHECK(s);
	for (int i = 0; i < MANY; i++) {
		snprintf(name, sizeof(name), "many-session-%d", i);
		CHECK_OK(luo_session_create(luo, name, &s[i]));
	}
	for (int i = 0; i < MANY; i++)
		luo_session_close(s[i]);
	free(s);
	luo_close(luo);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts); /* CPU time: this machine is shared */
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Preserve @n fresh memfds (or eventfds) in one session; the CPU time it took, in ms. */
static double preserve_n(struct luo *luo, int n, bool eventfds)
{
	struct luo_session *s;
	int *fds = calloc((size_t)n, sizeof(*fds));
	double t0, t;

	CHECK(fds);
	for (int i = 0; i < n; i++) {
		fds[i] = eventfds ? eventfd(0, EFD_CLOEXEC) : memfd_create("test-memfd", MFD_CLOEXEC);
		CHECK(fds[i] >= 0);
	}
	CHECK_OK(luo_session_create(luo, "many-files-test", &s));
	t0 = now_ms();
	for (int i = 0; i < n; i++)
		CHECK_OK(luo_session_preserve_fd(s, fds[i], (uint64_t)i));
	t = now_ms() - t0;
	for (int i = 0; i < n; i++)
		close(fds[i]);
	luo_session_close(s);
	free(fds);
	return t;
}

static void preserve_many_files(void)
{
	struct luo *luo = open_luo();
	double t = preserve_n(luo, 500, false);

	printf("  500 files preserved in %.2f ms of CPU\n", t);
	luo_close(luo);
}

/* ------------------------------------------------------------------------ */
/* Not the kernel's: its double-preservation case, widened                   */

/* Whether kcmp(KCMP_FILE) works here (a seccomp profile may forbid it). */
static bool kcmp_works(void)
{
	pid_t pid = getpid();

	return syscall(SYS_kcmp, pid, pid, KCMP_FILE, 0, 0) >= 0 || (errno != ENOSYS && errno != EPERM);
}

static void prevent_double_preservation_dup(void)
{
	struct luo *luo = open_luo();
	struct luo_session *s1, *s2;
	int fd, copy, fd2;

	CHECK_OK(luo_session_create(luo, "dup-1", &s1));
	CHECK_OK(luo_session_create(luo, "dup-2", &s2));
	fd = memfd_create("test-memfd", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	CHECK(fd >= 0);
	CHECK_OK(luo_session_preserve_fd(s1, fd, 1));
	/* A dup(), a dup with another fd number, after the original is closed. */
	copy = fcntl(fd, F_DUPFD_CLOEXEC, 100);
	CHECK(copy >= 0);
	CHECK_ERR(luo_session_preserve_fd(s1, copy, 2), EBUSY);
	CHECK_ERR(luo_session_preserve_fd(s2, copy, 1), EBUSY);
	close(fd);
	CHECK_ERR(luo_session_preserve_fd(s2, copy, 3), EBUSY);

	/* Unpreserved: free to be preserved again, anywhere. */
	CHECK_OK(luo_session_unpreserve_fd(s1, 1));
	CHECK_OK(luo_session_preserve_fd(s2, copy, 4));
	CHECK_ERR(luo_session_preserve_fd(s1, copy, 5), EBUSY);
	/* A closed session unpreserves its files. */
	luo_session_close(s2);
	CHECK_OK(luo_session_preserve_fd(s1, copy, 6));

	/*
	 * Another open file of the same memfd (reopened through /proc) is not
	 * the same open file: the kernel takes it too. Only kcmp() can tell.
	 */
	if (kcmp_works()) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/self/fd/%d", copy);
		fd2 = open(path, O_RDWR | O_CLOEXEC);
		CHECK(fd2 >= 0);
		CHECK_OK(luo_session_preserve_fd(s1, fd2, 7));
		close(fd2);
	} else {
		printf("  kcmp() unavailable here: the reopened file is not tried\n");
	}
	close(copy);
	luo_session_close(s1);
	luo_close(luo);
}

static bool is_timerfd(int fd)
{
	char path[64], target[64] = "";

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return readlink(path, target, sizeof(target) - 1) > 0 && strcmp(target, "anon_inode:[timerfd]") == 0;
}

static bool is_epoll(int fd)
{
	char path[64], target[64] = "";

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return readlink(path, target, sizeof(target) - 1) > 0 && strcmp(target, "anon_inode:[eventpoll]") == 0;
}

static int noop_preserve(struct luo_file *file)
{
	(void)file;
	return 0;
}

static void noop_unpreserve(struct luo_file *file)
{
	(void)file;
}

static void noop_finish(struct luo_file *file, bool retrieved)
{
	(void)file;
	(void)retrieved;
}

static const struct luo_file_ops timerfd_ops = {
	.can_preserve = is_timerfd,
	.preserve = noop_preserve,
	.unpreserve = noop_unpreserve,
	.retrieve = noop_preserve,
	.finish = noop_finish,
};
LUO_FILE_HANDLER_DECLARE(test_timerfd_handler, "test-timerfd", 1, 0, &timerfd_ops);

/* A handler that holds files for others, as luod does: sharing allowed. */
static const struct luo_file_ops shared_ops = {
	.can_preserve = is_epoll,
	.preserve = noop_preserve,
	.unpreserve = noop_unpreserve,
	.retrieve = noop_preserve,
	.finish = noop_finish,
	.flags = LUO_FILE_OPS_SHARED,
};
LUO_FILE_HANDLER_DECLARE(test_shared_handler, "test-shared", 1, 0, &shared_ops);

static void prevent_double_preservation_every_handler(void)
{
	struct luo *luo;
	struct luo_session *s1, *s2;
	struct luo_arena *a;
	int p[2], sock, tfd, ep, copy;

	CHECK_OK(luo_file_handler_register(&test_timerfd_handler));
	CHECK_OK(luo_file_handler_register(&test_shared_handler));
	luo = open_luo();
	CHECK_OK(luo_session_create(luo, "every-1", &s1));
	CHECK_OK(luo_session_create(luo, "every-2", &s2));

	/* "fd": a pipe end, a socket; the other end of the pipe is another file. */
	CHECK(pipe2(p, O_CLOEXEC) == 0);
	CHECK_OK(luo_session_preserve_fd(s1, p[0], 1));
	CHECK_ERR(luo_session_preserve_fd(s2, p[0], 1), EBUSY);
	CHECK_OK(luo_session_preserve_fd(s2, p[1], 2));
	CHECK_ERR(luo_session_preserve_fd(s1, p[1], 3), EBUSY);
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(sock >= 0);
	CHECK_OK(luo_session_preserve_fd(s1, sock, 4));
	copy = fcntl(sock, F_DUPFD_CLOEXEC, 3);
	CHECK_ERR(luo_session_preserve_fd(s2, copy, 4), EBUSY);
	close(copy);

	/* "arena": the same arena handed to a second session, or twice to one. */
	CHECK_OK(luo_arena_create(s1, 10, LUO_ARENA_SIZE_MIN, 0, &a));
	CHECK_ERR(luo_arena_preserve(s2, 10, a), EBUSY);
	CHECK_ERR(luo_arena_preserve(s1, 11, a), EBUSY);
	CHECK_OK(luo_session_unpreserve_fd(s1, 10));
	CHECK_OK(luo_arena_preserve(s2, 10, a));
	luo_arena_close(a);

	/* A registered handler: the same rule. */
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	CHECK(tfd >= 0);
	CHECK_OK(luo_session_preserve_fd(s1, tfd, 20));
	CHECK_ERR(luo_session_preserve_fd(s2, tfd, 20), EBUSY);

	/* Unless it says LUO_FILE_OPS_SHARED. */
	ep = epoll_create1(EPOLL_CLOEXEC);
	CHECK(ep >= 0);
	CHECK_OK(luo_session_preserve_fd(s1, ep, 30));
	CHECK_OK(luo_session_preserve_fd(s2, ep, 30));
	CHECK_OK(luo_session_preserve_fd(s1, ep, 31));

	close(p[0]);
	close(p[1]);
	close(sock);
	close(tfd);
	close(ep);
	luo_session_close(s1);
	luo_session_close(s2);
	luo_close(luo);
	CHECK_OK(luo_file_handler_unregister(&test_timerfd_handler));
	CHECK_OK(luo_file_handler_unregister(&test_shared_handler));
}

/* Make kcmp() fail with @err from now on, as a container's seccomp profile may. */
static void forbid_kcmp(int err)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_kcmp, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned int)err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = ARRAY_SIZE_(filter), .filter = filter };

	CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
	CHECK(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) == 0);
	CHECK(!kcmp_works());
}

static bool has_eventfd_id(int fd)
{
	char path[64], buf[512] = "";
	int info;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	info = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(info >= 0);
	n = read(info, buf, sizeof(buf) - 1);
	close(info);
	return n > 0 && strstr(buf, "eventfd-id:") != NULL;
}

/* Without kcmp: same (st_dev, st_ino), status flags and kind is "the same open file". */
static void fallback_case(int err)
{
	struct luo *luo;
	struct luo_session *s1, *s2;
	int fd, copy, ro, wo, rw1, rw2, ev1, ev2, tfd;

	forbid_kcmp(err);
	CHECK_OK(luo_file_handler_register(&test_timerfd_handler));
	luo = open_luo();
	CHECK_OK(luo_session_create(luo, "fallback-1", &s1));
	CHECK_OK(luo_session_create(luo, "fallback-2", &s2));
	fd = memfd_create("test-memfd", MFD_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_OK(luo_session_preserve_fd(s1, fd, 1));
	CHECK_ERR(luo_session_preserve_fd(s2, fd, 1), EBUSY);
	copy = dup(fd);
	CHECK(copy >= 0);
	CHECK_ERR(luo_session_preserve_fd(s1, copy, 2), EBUSY);
	/* Status flags are the open file's: set on one, seen on the dup. */
	CHECK(fcntl(fd, F_SETFL, O_NONBLOCK) == 0);
	CHECK_ERR(luo_session_preserve_fd(s2, copy, 2), EBUSY);
	close(copy);
	close(fd);

	/* Two opens of one file with other flags: two files. */
	ro = open("/dev/null", O_RDONLY | O_CLOEXEC);
	wo = open("/dev/null", O_WRONLY | O_CLOEXEC);
	CHECK(ro >= 0 && wo >= 0);
	CHECK_OK(luo_session_preserve_fd(s1, ro, 10));
	CHECK_OK(luo_session_preserve_fd(s2, wo, 10));
	/* The fallback's documented false positive: same file, same flags. */
	rw1 = open("/dev/null", O_RDWR | O_CLOEXEC);
	rw2 = open("/dev/null", O_RDWR | O_CLOEXEC);
	CHECK(rw1 >= 0 && rw2 >= 0);
	CHECK_OK(luo_session_preserve_fd(s1, rw1, 11));
	CHECK_ERR(luo_session_preserve_fd(s2, rw2, 11), EBUSY);
	/* Anonymous inodes are one inode: the kind tells an eventfd from a timerfd. */
	ev1 = eventfd(0, EFD_CLOEXEC);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	ev2 = eventfd(0, EFD_CLOEXEC);
	CHECK(ev1 >= 0 && tfd >= 0 && ev2 >= 0);
	CHECK_EQ(fcntl(ev1, F_GETFL), fcntl(tfd, F_GETFL));
	CHECK_OK(luo_session_preserve_fd(s1, ev1, 20));
	CHECK_OK(luo_session_preserve_fd(s2, tfd, 20)); /* the test-timerfd handler */
	/* Two eventfds: told apart by fdinfo's eventfd-id where the kernel has it (6.8 on). */
	if (has_eventfd_id(ev2))
		CHECK_OK(luo_session_preserve_fd(s2, ev2, 21));
	else
		CHECK_ERR(luo_session_preserve_fd(s2, ev2, 21), EBUSY);
	close(ro);
	close(wo);
	close(rw1);
	close(rw2);
	close(ev1);
	close(ev2);
	close(tfd);
	luo_session_close(s1);
	luo_session_close(s2);
	luo_close(luo);
	CHECK_OK(luo_file_handler_unregister(&test_timerfd_handler));
}

static void prevent_double_preservation_no_kcmp_eperm(void)
{
	fallback_case(EPERM);
}

static void prevent_double_preservation_no_kcmp_enosys(void)
{
	fallback_case(ENOSYS);
}

/*
 * The check's cost, printed (this shared machine is no place for timing
 * assertions): a file of a fresh inode costs no kcmp() at all; eventfds,
 * which share one inode, cost one kcmp() per eventfd already preserved.
 */
static void preserve_many_files_scaling(void)
{
	struct luo *luo = open_luo();
	double t500 = preserve_n(luo, 500, false), t4000 = preserve_n(luo, 4000, false);
	double e1000;

	if (!kcmp_works()) { /* the fallback would take the eventfds for one file */
		printf("  preserve, CPU time: 500 memfds %.2f ms, 4000 memfds %.2f ms; no kcmp(): no eventfds\n",
		       t500, t4000);
		luo_close(luo);
		return;
	}
	e1000 = preserve_n(luo, 1000, true);
	printf("  preserve, CPU time: 500 memfds %.2f ms (%.1f us each), 4000 memfds %.2f ms (%.1f us each); "
	       "1000 eventfds %.2f ms (%.1f us each)\n",
	       t500, t500 * 1e3 / 500, t4000, t4000 * 1e3 / 4000, e1000, e1000 * 1e3 / 1000);
	luo_close(luo);
}

/* ------------------------------------------------------------------------ */
/* The first image: the two-stage cases, stage 1                             */

/* A page-sized memfd holding @data (NUL-terminated), as the kernel's tests make them. */
static int memfd_page(unsigned int flags, const char *data)
{
	int fd = memfd_create("kselftest", MFD_CLOEXEC | flags);
	char *map;

	CHECK(fd >= 0);
	CHECK(ftruncate(fd, page_size()) == 0);
	map = mmap(NULL, (size_t)page_size(), PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(map != MAP_FAILED);
	snprintf(map, (size_t)page_size(), "%s", data);
	munmap(map, (size_t)page_size());
	return fd;
}

/* The kernel's create_and_preserve_memfd(): a page holding @data; closed after. */
static void preserve_page(struct luo_session *s, uint64_t token, unsigned int flags, const char *data,
			  struct state *st)
{
	int fd = memfd_page(flags, data);

	CHECK_OK(luo_session_preserve_fd(s, fd, token));
	close(fd);
	st->files_preserved++;
}

static void luo_kexec_simple_stage1(struct luo *luo, struct state *st)
{
	struct luo_session *s;

	CHECK_OK(luo_session_create(luo, "test-session", &s));
	preserve_page(s, 0x1A, 0, "hello kexec world", st);
}

static void luo_multi_session_stage1(struct luo *luo, struct state *st)
{
	struct luo_session *e1, *e2, *f1, *f2;

	CHECK_OK(luo_session_create(luo, "multi-test-empty-1", &e1));
	CHECK_OK(luo_session_create(luo, "multi-test-empty-2", &e2));
	CHECK_OK(luo_session_create(luo, "multi-test-files-1", &f1));
	preserve_page(f1, 0x1001, 0, "Data for session files 1", st);
	CHECK_OK(luo_session_create(luo, "multi-test-files-2", &f2));
	preserve_page(f2, 0x2002, 0, "First file for session files 2", st);
	preserve_page(f2, 0x3003, 0, "Second file for session files 2", st);
}

static void luo_stress_sessions_stage1(struct luo *luo, struct state *st)
{
	char name[LUO_SESSION_NAME_MAX + 1];
	struct luo_session *s;

	(void)st;
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "many-test-%d", i);
		CHECK_OK(luo_session_create(luo, name, &s));
	}
}

static void luo_stress_files_stage1(struct luo *luo, struct state *st)
{
	struct luo_session *s;
	char data[64];

	CHECK_OK(luo_session_create(luo, "many_files_session", &s));
	/* Even tokens sealable (libluo's "memfd" handler), odd ones as the kernel's ("fd"). */
	for (int i = 0; i < 500; i++) {
		snprintf(data, sizeof(data), "file-data-%d", i);
		preserve_page(s, (uint64_t)i, i % 2 ? 0 : MFD_ALLOW_SEALING, data, st);
	}
}

/* Stage 1 in this child: preserve, then exec @next with the case's name. */
static void run_stage1(const char *name, void (*stage1)(struct luo *, struct state *), const char *next)
{
	struct state st = { .stage = 2, .fds_at_start = count_open_fds() };
	char *next_argv[] = { (char *)next, (char *)name, NULL };
	struct luo_session *state;
	struct luo *luo = open_luo();
	int r;

	snprintf(st.name, sizeof(st.name), "%s", name);
	/* The kernel's luo_test(): no state session, so this is stage 1. */
	CHECK_ERR(luo_session_retrieve(luo, STATE_SESSION, &state), ENOENT);
	stage1(luo, &st);
	st.files_preserved++; /* the state memfd itself */
	CHECK_OK(luo_session_create(luo, STATE_SESSION, &state));
	{
		int fd = memfd_create("state", MFD_CLOEXEC | MFD_ALLOW_SEALING);

		CHECK(fd >= 0);
		CHECK_EQ(pwrite(fd, &st, sizeof(st), 0), sizeof(st));
		CHECK_OK(luo_session_preserve_fd(state, fd, STATE_TOKEN));
		close(fd);
	}
	fflush(NULL);
	r = luo_update(luo, next, next_argv, NULL);
	fprintf(stderr, "luo_update returned %d (%s)\n", r, strerror(-r));
	exit(1);
}

/* ------------------------------------------------------------------------ */
/* The runner                                                                */

struct kcase {
	const char *name;
	void (*fn)(void);
	void (*stage1)(struct luo *, struct state *); /* two-stage: through an exec */
	const char *differs; /* where libluo's answer is not the kernel's, why */
};

static const struct kcase cases[] = {
	{ "basic_open_close", basic_open_close, NULL, NULL },
	{ "exclusive_open", exclusive_open, NULL,
	  "one handle per process, not one opener per system: another process opens its own" },
	{ "create_duplicate_session", create_duplicate_session, NULL, NULL },
	{ "create_distinct_sessions", create_distinct_sessions, NULL, NULL },
	{ "preserve_memfd", preserve_memfd, NULL,
	  "a memfd without MFD_ALLOW_SEALING is kept by the fd handler, its size not frozen" },
	{ "preserve_multiple_memfds", preserve_multiple_memfds, NULL, NULL },
	{ "preserve_complex_scenario", preserve_complex_scenario, NULL, NULL },
	{ "preserve_unsupported_fd", preserve_unsupported_fd, NULL,
	  "/dev/null kept by the fd handler, a hugetlb memfd by the memfd one (kernel: -ENOENT); epoll -ENOENT in both" },
	{ "prevent_double_preservation", prevent_double_preservation, NULL, NULL },
	{ "create_session_no_null_termination", create_session_no_null_termination, NULL,
	  "a C string: the kernel's unterminated 64-byte field is a 64-byte name, -EINVAL in both" },
	{ "create_session_empty_name", create_session_empty_name, NULL, NULL },
	{ "get_session_name", get_session_name, NULL, NULL },
	{ "get_session_name_max_length", get_session_name_max_length, NULL, NULL },
	{ "preserve_many_sessions", preserve_many_sessions, NULL, NULL },
	{ "preserve_many_files", preserve_many_files, NULL, NULL },
	{ "prevent_double_preservation_dup", prevent_double_preservation_dup, NULL, NULL },
	{ "prevent_double_preservation_every_handler", prevent_double_preservation_every_handler, NULL,
	  "a handler may allow sharing with LUO_FILE_OPS_SHARED (luod's does)" },
	{ "prevent_double_preservation_no_kcmp_eperm", prevent_double_preservation_no_kcmp_eperm, NULL,
	  "without kcmp(), same inode and status flags count as the same open file" },
	{ "prevent_double_preservation_no_kcmp_enosys", prevent_double_preservation_no_kcmp_enosys, NULL,
	  "without kcmp(), same inode and status flags count as the same open file" },
	{ "preserve_many_files_scaling", preserve_many_files_scaling, NULL, NULL },
	{ "luo_kexec_simple", NULL, luo_kexec_simple_stage1,
	  "a retrieved file may be preserved again before finish (kernel: -EBUSY until finish)" },
	{ "luo_multi_session", NULL, luo_multi_session_stage1, NULL },
	{ "luo_stress_sessions", NULL, luo_stress_sessions_stage1, NULL },
	{ "luo_stress_files", NULL, luo_stress_files_stage1, NULL },
};

static bool run_case(const struct kcase *c, const char *next)
{
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		alarm(60); /* never outlive a stuck case */
		if (c->stage1) {
			run_stage1(c->name, c->stage1, next); /* does not return */
		} else {
			test_begin();
			c->fn();
			check_no_fd_leak();
		}
		fflush(NULL);
		_exit(0);
	}
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		printf("PASS %s%s%s\n", c->name, c->differs ? " -- differs: " : "", c->differs ? c->differs : "");
		return true;
	}
	if (WIFSIGNALED(status))
		printf("FAIL %s (signal %d)\n", c->name, WTERMSIG(status));
	else
		printf("FAIL %s (exit %d)\n", c->name, WEXITSTATUS(status));
	return false;
}

int main(int argc, char **argv)
{
	int failed = 0, n = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s NEXT-IMAGE [CASE...]\n", argv[0]);
		return 2;
	}
	unsetenv(LUO_HANDOVER_FD_ENV);
	test_begin();
	for (size_t i = 0; i < ARRAY_SIZE_(cases); i++) {
		bool wanted = argc == 2;

		for (int j = 2; j < argc; j++)
			wanted |= strcmp(argv[j], cases[i].name) == 0;
		if (!wanted)
			continue;
		n++;
		failed += !run_case(&cases[i], argv[1]);
	}
	printf("%d passed, %d failed\n", n - failed, failed);
	check_no_fd_leak();
	return failed ? 1 : 0;
}

#else /* LUO_TEST_NEXT_IMAGE */

/* ------------------------------------------------------------------------ */
/* The second image: the two-stage cases, stage 2                            */

/* The page of @fd starts with the string @want. */
static void check_page(int fd, const char *want)
{
	char *map = mmap(NULL, (size_t)page_size(), PROT_READ, MAP_SHARED, fd, 0);

	CHECK(map != MAP_FAILED);
	if (strcmp(map, want) != 0) {
		fprintf(stderr, "data mismatch: expected '%s', got '%.64s'\n", want, map);
		exit(1);
	}
	munmap(map, (size_t)page_size());
}

/* The kernel's restore_and_verify_memfd(), closing the fd after. */
static void verify_page(struct luo_session *s, uint64_t token, const char *data)
{
	int fd = -1;

	CHECK_OK(luo_session_retrieve_fd(s, token, &fd));
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	check_page(fd, data);
	close(fd);
}

static struct luo_session *retrieve(struct luo *luo, const char *name)
{
	struct luo_session *s;

	CHECK_OK(luo_session_retrieve(luo, name, &s));
	CHECK(luo_session_is_incoming(s));
	return s;
}

static void finish_close(struct luo_session *s)
{
	CHECK_OK(luo_session_finish(s));
	luo_session_close(s);
}

static void luo_kexec_simple_stage2(struct luo *luo)
{
	struct luo_session *s = retrieve(luo, "test-session"), *again;
	int fd;

	verify_page(s, 0x1A, "hello kexec world");
	/*
	 * differs: the kernel refuses a retrieved file in an outgoing session
	 * until its incoming session is finished (-EBUSY); libluo takes it, so
	 * a service can carry a file on before finishing.
	 */
	CHECK_OK(luo_session_retrieve_fd(s, 0x1A, &fd));
	CHECK_OK(luo_session_create(luo, "carried-on", &again));
	CHECK_OK(luo_session_preserve_fd(again, fd, 0x1A));
	/* Outgoing sessions still refuse it twice. */
	CHECK_ERR(luo_session_preserve_fd(again, fd, 0x1B), EBUSY);
	close(fd);
	luo_session_close(again);
	finish_close(s);
}

static void luo_multi_session_stage2(struct luo *luo)
{
	struct luo_session *e1 = retrieve(luo, "multi-test-empty-1"), *e2 = retrieve(luo, "multi-test-empty-2");
	struct luo_session *f1 = retrieve(luo, "multi-test-files-1"), *f2 = retrieve(luo, "multi-test-files-2");
	int fd;

	verify_page(f1, 0x1001, "Data for session files 1");
	verify_page(f2, 0x2002, "First file for session files 2");
	verify_page(f2, 0x3003, "Second file for session files 2");
	CHECK_ERR(luo_session_retrieve_fd(e1, 0x1001, &fd), ENOENT);
	finish_close(e1);
	finish_close(e2);
	finish_close(f1);
	finish_close(f2);
}

static void luo_stress_sessions_stage2(struct luo *luo)
{
	char name[LUO_SESSION_NAME_MAX + 1];

	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "many-test-%d", i);
		finish_close(retrieve(luo, name));
	}
}

static void luo_stress_files_stage2(struct luo *luo)
{
	struct luo_session *s = retrieve(luo, "many_files_session");
	char data[64];

	for (int i = 0; i < 500; i++) {
		int fd;

		snprintf(data, sizeof(data), "file-data-%d", i);
		verify_page(s, (uint64_t)i, data);
		if (i % 2 == 0) { /* the sealable ones: size still frozen */
			CHECK_OK(luo_session_retrieve_fd(s, (uint64_t)i, &fd));
			CHECK(ftruncate(fd, 2 * page_size()) < 0 && errno == EPERM);
			close(fd);
		}
	}
	finish_close(s);
}

static const struct {
	const char *name;
	void (*stage2)(struct luo *);
} stages[] = {
	{ "luo_kexec_simple", luo_kexec_simple_stage2 },
	{ "luo_multi_session", luo_multi_session_stage2 },
	{ "luo_stress_sessions", luo_stress_sessions_stage2 },
	{ "luo_stress_files", luo_stress_files_stage2 },
};

int main(int argc, char **argv)
{
	int inherited = count_open_fds();
	struct luo_session *state;
	struct luo *luo;
	struct state st;
	int fd = -1;

	CHECK(argc == 2);
	test_begin();
	CHECK_OK(luo_open(0, &luo));
	CHECK(luo_is_incoming(luo));
	CHECK_EQ(luo_liveupdate_number(luo), 1);

	/* The kernel's luo_test(): the state session is there, so this is stage 2. */
	state = retrieve(luo, STATE_SESSION);
	CHECK_OK(luo_session_retrieve_fd(state, STATE_TOKEN, &fd));
	CHECK_EQ(pread(fd, &st, sizeof(st), 0), sizeof(st));
	close(fd);
	CHECK_EQ(st.stage, 2);
	CHECK(strncmp(st.name, argv[1], sizeof(st.name)) == 0);
	/* Exactly the preserved files and the handover blob crossed. */
	CHECK_EQ(inherited, st.fds_at_start + st.files_preserved + 1);

	for (size_t i = 0; i < ARRAY_SIZE_(stages); i++) {
		if (strcmp(stages[i].name, argv[1]) == 0) {
			stages[i].stage2(luo);
			break;
		}
		CHECK(i + 1 < ARRAY_SIZE_(stages)); /* a name this image knows */
	}
	finish_close(state);
	CHECK_OK(luo_ready(luo));
	luo_close(luo);
	check_no_fd_leak_from(st.fds_at_start);
	return 0;
}

#endif
