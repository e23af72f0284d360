/* SPDX-License-Identifier: MIT */
/*
 * The time to retrieve a session of 1,000 fds from the agent (target:
 * 5 ms), and the same transfer done by hand as the baseline.
 *
 *   agent-retrieve [LUOD] [--iterations N]
 *
 * With LUOD, runs that luod on a socket of its own; without, uses the
 * agent $LUO_AGENT_SOCKET names. One session of 1,000 fds (999 eventfds
 * and a memfd) is deposited through libluo once. Each iteration opens a
 * fresh struct luo (luo_close() + luo_open(LUO_OPEN_AGENT), not timed),
 * then times luo_session_retrieve() + 1,000 luo_session_retrieve_fd() +
 * close() of each. The baseline sends the same 1,000 fds over a
 * SOCK_SEQPACKET socketpair by SCM_RIGHTS in batches of
 * LUO_AGENT_FDS_PER_MSG, receives them and closes them. Prints the median
 * and p99 in ms; asserts nothing (figures, not a test).
 */

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include "luo/agent.h"
#include "luo/luo.h"
#include "test-agent-util.h"

#define N_FDS 1000
#define ITERATIONS_DEFAULT 200
#define ITERATIONS_MAX 100000
#define TARGET_MS 5.0
#define SESSION "bench-1000-fds"

static void die(const char *what, int r)
{
	fprintf(stderr, "%s: %s\n", what, strerror(r < 0 ? -r : r));
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *ns, size_t n)
{
	qsort(ns, n, sizeof(*ns), cmp_u64);
	printf("%-44s median %7.3f ms  p99 %7.3f ms  (%zu runs)\n", what, (double)ns[n / 2] / 1e6,
	       (double)ns[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1e6, n);
}

static void deposit_session(void)
{
	struct luo_session *s;
	struct luo *luo;
	int r, fd;

	r = luo_open(LUO_OPEN_AGENT, &luo);
	if (r < 0)
		die("luo_open", r);
	if ((r = luo_agent_error(luo, NULL)) < 0)
		die("agent", r);
	luo_session_withdraw(luo, SESSION); /* a leftover from an interrupted run */
	if ((r = luo_session_create(luo, SESSION, &s)) < 0)
		die("luo_session_create", r);
	fd = memfd_create("bench", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, 4096) < 0 || (r = luo_session_preserve_fd(s, fd, 0)) < 0)
		die("memfd", fd < 0 ? errno : r);
	close(fd);
	for (uint64_t t = 1; t < N_FDS; t++) {
		fd = eventfd(0, EFD_CLOEXEC);
		if (fd < 0)
			die("eventfd", errno);
		if ((r = luo_session_preserve_fd(s, fd, t)) < 0)
			die("luo_session_preserve_fd", r);
		close(fd);
	}
	if ((r = luo_session_deposit(s, LUO_DEPOSIT_KEEP_ON_CRASH)) < 0)
		die("luo_session_deposit", r);
	luo_close(luo); /* clean: the deposit stays */
}

static void bench_agent(uint64_t *ns, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct luo_session *s;
		struct luo *luo;
		uint64_t t0;
		int r;

		if ((r = luo_open(LUO_OPEN_AGENT, &luo)) < 0)
			die("luo_open", r);
		t0 = now_ns();
		if ((r = luo_session_retrieve(luo, SESSION, &s)) < 0)
			die("luo_session_retrieve", r);
		for (uint64_t t = 0; t < N_FDS; t++) {
			int fd;

			if ((r = luo_session_retrieve_fd(s, t, &fd)) < 0)
				die("luo_session_retrieve_fd", r);
			close(fd);
		}
		ns[i] = now_ns() - t0;
		luo_close(luo);
	}
}

static void bench_raw(uint64_t *ns, size_t n)
{
	static int fds[N_FDS], got[LUO_AGENT_FDS_PER_MSG];
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair", errno);
	for (size_t i = 0; i < N_FDS; i++)
		if ((fds[i] = eventfd(0, EFD_CLOEXEC)) < 0)
			die("eventfd", errno);
	for (size_t i = 0; i < n; i++) {
		uint64_t t0 = now_ns();

		for (size_t off = 0; off < N_FDS; off += LUO_AGENT_FDS_PER_MSG) {
			size_t k = N_FDS - off < LUO_AGENT_FDS_PER_MSG ? N_FDS - off : LUO_AGENT_FDS_PER_MSG;
			union {
				struct cmsghdr align;
				char buf[CMSG_SPACE(sizeof(int) * LUO_AGENT_FDS_PER_MSG)];
			} ctl;
			char byte = 0;
			struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
			struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
					     .msg_controllen = CMSG_SPACE(sizeof(int) * k) };
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * k);
			memcpy(CMSG_DATA(c), fds + off, sizeof(int) * k);
			if (sendmsg(sv[0], &mh, 0) != 1)
				die("sendmsg", errno);
			mh.msg_controllen = sizeof(ctl.buf);
			if (recvmsg(sv[1], &mh, MSG_CMSG_CLOEXEC) != 1 || !(c = CMSG_FIRSTHDR(&mh)))
				die("recvmsg", errno);
			memcpy(got, CMSG_DATA(c), (c->cmsg_len - CMSG_LEN(0)));
			for (size_t j = 0; j < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); j++)
				close(got[j]);
		}
		ns[i] = now_ns() - t0;
	}
	for (size_t i = 0; i < N_FDS; i++)
		close(fds[i]);
	close(sv[0]);
	close(sv[1]);
}

int main(int argc, char **argv)
{
	struct test_agent agent = { 0 };
	const char *luod = NULL;
	size_t n = ITERATIONS_DEFAULT;
	struct rlimit rl;
	uint64_t *ns;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--iterations") == 0 && i + 1 < argc) {
			char *end;
			unsigned long v = strtoul(argv[++i], &end, 10);

			if (*end || v == 0 || v > ITERATIONS_MAX)
				die("--iterations: 1..100000", EINVAL);
			n = v;
		} else {
			luod = argv[i];
		}
	}
	/* 1,000 fds here, and as many in flight to the agent and back. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (luod)
		agent_start(&agent, luod);
	else if (!getenv("LUO_AGENT_SOCKET"))
		die("give a luod binary or set LUO_AGENT_SOCKET", EINVAL);
	ns = calloc(n, sizeof(*ns));
	if (!ns)
		die("calloc", ENOMEM);

	deposit_session();
	bench_agent(ns, n);
	report("agent: retrieve a session of 1,000 fds", ns, n);
	printf("%-44s %.1f ms\n", "  target", TARGET_MS);
	bench_raw(ns, n);
	report("baseline: 1,000 fds by SCM_RIGHTS, by hand", ns, n);

	{
		struct luo *luo;

		if (luo_open(LUO_OPEN_AGENT, &luo) == 0) {
			luo_session_withdraw(luo, SESSION);
			luo_close(luo);
		}
	}
	free(ns);
	agent_stop(&agent);
	return 0;
}
