/* SPDX-License-Identifier: MIT */
/*
 * Two-stage test of the exec handover, through a real execve() of a second
 * binary built from this file with -DLUO_TEST_NEXT_IMAGE.
 *
 * The first image preserves: 1 MiB of random data in a memfd, a listening
 * TCP socket (a client connects while the switch is under way and is served
 * by the second image), a pipe with unread bytes, an eventfd with a count,
 * 2,000 sessions, 500 memfds in one session, a file never retrieved, and a
 * session never retrieved. What the second image must find is written in a
 * small "state" session that itself crosses the switch.
 *
 * The second image checks it all, and that no fd leaked in either image: it
 * counts its fds before luo_open() (the inherited ones) and at the end.
 */

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "luo/luo.h"
#include "test-util.h"

#define DATA_SIZE (1u << 20)
#define N_SESSIONS 2000
#define N_FDS 500
#define PIPE_BYTES "unread bytes in a pipe"
#define EVENTFD_COUNT 7

enum {
	TOK_STATE = 1,
	TOK_DATA,
	TOK_LISTEN,
	TOK_PIPE,
	TOK_EVENTFD,
	TOK_UNRETRIEVED,
};

/* What the first image tells the second, in the "state" memfd. */
struct state {
	uint64_t data_hash;
	uint16_t port;
	pid_t client;
	int fds_at_start; /* the first image's baseline */
	int files_preserved;
};

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

#ifndef LUO_TEST_NEXT_IMAGE

static int memfd_with(const void *buf, size_t len)
{
	int fd = memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	CHECK(fd >= 0);
	CHECK(ftruncate(fd, (off_t)len) == 0);
	CHECK(pwrite(fd, buf, len, 0) == (ssize_t)len);
	return fd;
}

static void preserve_and_close(struct luo_session *s, int fd, uint64_t token)
{
	CHECK_OK(luo_session_preserve_fd(s, fd, token));
	close(fd);
}


/* A client that connects while the server is switching images. */
static pid_t start_client(uint16_t port)
{
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (pid == 0) {
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
					  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		char buf[8] = { 0 };
		int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		alarm(30); /* never outlive a failed test */
		if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			_exit(10); /* refused: the listening socket was closed */
		if (write(c, "hello", 5) != 5)
			_exit(11);
		if (read(c, buf, 3) != 3 || memcmp(buf, "bye", 3) != 0)
			_exit(12);
		_exit(0);
	}
	return pid;
}

int main(int argc, char **argv)
{
	struct luo *luo;
	struct luo_session *s;
	struct state st = { 0 };
	uint8_t *data = malloc(DATA_SIZE);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t salen = sizeof(sa);
	int lfd, p[2], efd, r;
	char name[32];

	CHECK(argc == 2);
	test_begin();
	unsetenv(LUO_HANDOVER_FD_ENV);
	CHECK_OK(luo_open(0, &luo));
	CHECK(!luo_is_incoming(luo));

	/* 1 MiB of random data. */
	CHECK(data);
	for (size_t off = 0; off < DATA_SIZE;)
		off += (size_t)getrandom(data + off, DATA_SIZE - off, 0);
	st.data_hash = fnv1a(data, DATA_SIZE);
	CHECK_OK(luo_session_create(luo, "data", &s));
	preserve_and_close(s, memfd_with(data, DATA_SIZE), TOK_DATA);
	free(data);
	preserve_and_close(s, memfd_with("never retrieved", 15), TOK_UNRETRIEVED);

	/* A listening socket, a pipe with bytes in it, an eventfd. */
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(lfd >= 0);
	CHECK(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(listen(lfd, 16) == 0);
	CHECK(getsockname(lfd, (struct sockaddr *)&sa, &salen) == 0);
	st.port = ntohs(sa.sin_port);
	preserve_and_close(s, lfd, TOK_LISTEN);
	CHECK(pipe2(p, O_CLOEXEC) == 0);
	CHECK(write(p[1], PIPE_BYTES, sizeof(PIPE_BYTES)) == sizeof(PIPE_BYTES));
	preserve_and_close(s, p[0], TOK_PIPE);
	close(p[1]);
	efd = eventfd(EVENTFD_COUNT, EFD_CLOEXEC);
	CHECK(efd >= 0);
	preserve_and_close(s, efd, TOK_EVENTFD);
	st.files_preserved = 5;

	/* 2,000 sessions; one of them is never retrieved. */
	for (int i = 0; i < N_SESSIONS; i++) {
		snprintf(name, sizeof(name), "many-%d", i);
		CHECK_OK(luo_session_create(luo, name, &s));
	}
	CHECK_OK(luo_session_create(luo, "unretrieved", &s));
	preserve_and_close(s, memfd_with("x", 1), 1);
	st.files_preserved++;

	/* 500 fds in one session, each memfd holding its index. */
	CHECK_OK(luo_session_create(luo, "fds", &s));
	for (int i = 0; i < N_FDS; i++)
		preserve_and_close(s, memfd_with(&i, sizeof(i)), 1000 + (uint64_t)i);
	st.files_preserved += N_FDS;

	/* What the second image must find, in a session of its own. */
	st.fds_at_start = test_fds_at_start;
	st.client = start_client(st.port);
	st.files_preserved++; /* the state memfd itself */
	CHECK_OK(luo_session_create(luo, "state", &s));
	preserve_and_close(s, memfd_with(&st, sizeof(st)), TOK_STATE);

	{
		char *next_argv[] = { argv[1], NULL };

		fflush(NULL); /* execve() drops what stdio still buffers */
		r = luo_update(luo, argv[1], next_argv, NULL);
	}
	fprintf(stderr, "luo_update returned %d (%s)\n", r, strerror(-r));
	return 1;
}

#else /* LUO_TEST_NEXT_IMAGE */

static int take(struct luo_session *s, uint64_t token)
{
	int fd = -1;

	CHECK_OK(luo_session_retrieve_fd(s, token, &fd));
	CHECK(fd >= 0);
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	return fd;
}

static void check_listen_socket(struct luo_session *s, const struct state *st)
{
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);
	struct pollfd pfd;
	char buf[8] = { 0 };
	int lfd = take(s, TOK_LISTEN), c, status;

	CHECK(getsockname(lfd, (struct sockaddr *)&sa, &salen) == 0);
	CHECK_EQ(ntohs(sa.sin_port), st->port);
	pfd = (struct pollfd){ .fd = lfd, .events = POLLIN };
	CHECK_EQ(poll(&pfd, 1, 10000), 1);
	c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	CHECK(c >= 0);
	CHECK_EQ(read(c, buf, 5), 5);
	CHECK(memcmp(buf, "hello", 5) == 0);
	CHECK_EQ(write(c, "bye", 3), 3);
	close(c);
	close(lfd);
	CHECK_EQ(waitpid(st->client, &status, 0), st->client);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	printf("ok - the connection made during the switch was served\n");
}

int main(void)
{
	int inherited = count_open_fds();

	struct luo *luo;
	struct luo_session *s;
	struct luo_timings t;
	struct state st;
	uint8_t *data;
	uint64_t v;
	char buf[64], name[32];
	int fd, fd2;

	test_begin();
	CHECK_OK(luo_open(0, &luo));
	CHECK(luo_is_incoming(luo));
	CHECK_EQ(luo_liveupdate_number(luo), 1);
	CHECK(getenv(LUO_HANDOVER_FD_ENV) == NULL);

	CHECK_OK(luo_session_retrieve(luo, "state", &s));
	CHECK_ERR(luo_session_retrieve(luo, "state", &s), EINVAL);
	fd = take(s, TOK_STATE);
	CHECK_EQ(pread(fd, &st, sizeof(st), 0), sizeof(st));
	close(fd);
	CHECK_OK(luo_session_finish(s));
	luo_session_close(s);
	/* Exactly the preserved fds and the blob crossed: nothing leaked. */
	CHECK_EQ(inherited, st.fds_at_start + st.files_preserved + 1);
	printf("ok - %d fds crossed the switch, exactly the preserved ones and the blob\n", inherited - st.fds_at_start);

	/* The memfd: same bytes, size still frozen. */
	CHECK_OK(luo_session_retrieve(luo, "data", &s));
	CHECK_ERR(luo_session_preserve_fd(s, 0, 1), EINVAL);
	fd = take(s, TOK_DATA);
	data = mmap(NULL, DATA_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	CHECK(data != MAP_FAILED);
	CHECK(fnv1a(data, DATA_SIZE) == st.data_hash);
	munmap(data, DATA_SIZE);
	CHECK(ftruncate(fd, DATA_SIZE * 2) < 0);
	close(fd);
	printf("ok - 1 MiB of random data intact, size still frozen\n");

	check_listen_socket(s, &st);

	fd = take(s, TOK_PIPE);
	CHECK_EQ(read(fd, buf, sizeof(buf)), sizeof(PIPE_BYTES));
	CHECK(strcmp(buf, PIPE_BYTES) == 0);
	close(fd);
	fd = take(s, TOK_EVENTFD);
	CHECK_EQ(read(fd, &v, sizeof(v)), sizeof(v));
	CHECK_EQ(v, EVENTFD_COUNT);
	close(fd);
	printf("ok - pipe bytes and eventfd count intact\n");
	/* TOK_UNRETRIEVED is never taken: finish releases it. */
	CHECK_ERR(luo_session_retrieve_fd(s, 424242, &fd), ENOENT);
	CHECK_OK(luo_session_finish(s));
	CHECK_ERR(luo_session_finish(s), EINVAL);
	CHECK_ERR(luo_session_retrieve_fd(s, TOK_DATA, &fd), EINVAL);
	luo_session_close(s);

	for (int i = 0; i < N_SESSIONS; i++) {
		snprintf(name, sizeof(name), "many-%d", i);
		CHECK_OK(luo_session_retrieve(luo, name, &s));
		CHECK(strcmp(luo_session_name(s), name) == 0);
		CHECK(luo_session_is_incoming(s));
		CHECK_OK(luo_session_finish(s));
		luo_session_close(s);
	}
	printf("ok - %d sessions retrieved\n", N_SESSIONS);

	/* 500 fds, taken in reverse order, one of them twice. */
	CHECK_OK(luo_session_retrieve(luo, "fds", &s));
	for (int i = N_FDS - 1; i >= 0; i--) {
		int got = -1;

		fd = take(s, 1000 + (uint64_t)i);
		CHECK_EQ(pread(fd, &got, sizeof(got), 0), sizeof(got));
		CHECK_EQ(got, i);
		close(fd);
	}
	fd = take(s, 1000);
	fd2 = take(s, 1000);
	CHECK(fd != fd2);
	close(fd);
	close(fd2);
	CHECK_OK(luo_session_finish(s));
	luo_session_close(s);
	printf("ok - %d fds in one session, any order, idempotent\n", N_FDS);

	/* A name that was not handed over; "unretrieved" stays until luo_close. */
	CHECK_ERR(luo_session_retrieve(luo, "nope", &s), ENOENT);
	CHECK_ERR(luo_session_create(luo, "unretrieved", &s), EEXIST);

	CHECK_ERR(luo_timings(luo, &t), EBUSY);
	CHECK_OK(luo_ready(luo));
	CHECK_OK(luo_timings(luo, &t));
	CHECK(t.blackout_ns > 0 && t.exec_ns > 0 && t.restore_ns > 0);
	CHECK(t.blackout_ns >= t.freeze_ns + t.serialize_ns + t.exec_ns + t.restore_ns);
	printf("ok - timings: freeze %.3f ms, serialize %.3f ms, exec %.3f ms, restore %.3f ms, blackout %.3f ms\n",
	       t.freeze_ns / 1e6, t.serialize_ns / 1e6, t.exec_ns / 1e6, t.restore_ns / 1e6, t.blackout_ns / 1e6);

	luo_close(luo);
	check_no_fd_leak_from(st.fds_at_start);
	printf("ok - no fd leaked in either image\n");
	return 0;
}

#endif
