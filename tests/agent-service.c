/* SPDX-License-Identifier: MIT */
/*
 * A small service whose state survives SIGKILL through the agent (driven
 * by test-agent-crash.sh).
 *
 *   agent-service deposit   a memfd with known bytes, a listening TCP socket
 *                           on 127.0.0.1 ("port N" printed), the mandatory
 *                           component "agent-service-counter", an arena
 *                           holding a linked list; deposited with
 *                           KEEP_ON_CRASH | COMPONENTS; prints "deposited"
 *                           and waits to be killed
 *   agent-service restore   retrieves the session from the agent and checks
 *                           it all: the bytes, the component (loaded, at
 *                           version 1, its value), the list at the same
 *                           address; accepts the connection that waited in
 *                           the listening socket's backlog, reads a line,
 *                           answers "pong <counter>"; withdraws the session;
 *                           prints "OK"
 */

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "luo/luo.h"
#include "test-util.h"

#define SESSION "agent-service"
#define DATA "bytes kept by luod while the service was dead"
#define COUNTER 4242u
#define LIST_NODES 1000
#define ARENA_SIZE (1u << 20)

enum { TOK_DATA = 1, TOK_LISTEN, TOK_ARENA };

static uint64_t counter;

static int counter_save(uint32_t version, struct luo_payload *out)
{
	return version == 1 ? luo_payload_write(out, &counter, sizeof(counter)) : -EINVAL;
}

static int counter_load(uint32_t version, const void *data, size_t len)
{
	if (version != 1 || len != sizeof(counter))
		return -EINVAL;
	memcpy(&counter, data, sizeof(counter));
	return 0;
}

LUO_COMPONENT(service_counter, "agent-service-counter", 1, 1, 1, 1, 0, counter_save, counter_load);

struct node {
	struct node *next;
	uint64_t value;
};

static struct luo *open_agent(void)
{
	struct luo *luo;
	const char *why;

	CHECK_OK(luo_open(LUO_OPEN_AGENT, &luo));
	if (luo_agent_error(luo, &why) != 0) {
		fprintf(stderr, "agent: %s\n", why);
		exit(1);
	}
	return luo;
}

static void do_deposit(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t salen = sizeof(sa);
	struct luo *luo = open_agent();
	struct luo_session *s;
	struct luo_arena *a;
	struct node *head = NULL;
	int fd;

	CHECK_OK(luo_session_create(luo, SESSION, &s));
	fd = memfd_create("data", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	CHECK(fd >= 0 && write(fd, DATA, sizeof(DATA)) == sizeof(DATA));
	CHECK_OK(luo_session_preserve_fd(s, fd, TOK_DATA));
	close(fd);

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 16) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&sa, &salen) == 0);
	CHECK_OK(luo_session_preserve_fd(s, fd, TOK_LISTEN));
	close(fd);

	counter = COUNTER;
	CHECK_OK(luo_arena_create(s, TOK_ARENA, ARENA_SIZE, 0, &a));
	for (uint64_t i = 0; i < LIST_NODES; i++) {
		struct node *n = luo_arena_alloc(a, sizeof(*n));

		CHECK(n);
		n->value = i;
		n->next = head;
		head = n;
	}
	CHECK_OK(luo_arena_set_root(a, head));

	CHECK_OK(luo_session_deposit(s, LUO_DEPOSIT_KEEP_ON_CRASH | LUO_DEPOSIT_COMPONENTS));
	printf("port %u\narena %p\ndeposited\n", ntohs(sa.sin_port), luo_arena_base(a));
	fflush(stdout);
	for (;;)
		pause(); /* killed here */
}

static void do_restore(void)
{
	struct luo *luo = open_agent();
	struct luo_session *s;
	struct luo_arena *a;
	struct pollfd pfd;
	char buf[128] = { 0 };
	uint32_t version = 0;
	size_t n = 0;
	int fd, conn;
	ssize_t len;

	CHECK_OK(luo_session_retrieve(luo, SESSION, &s));
	CHECK_OK(luo_session_retrieve_fd(s, TOK_DATA, &fd));
	CHECK(pread(fd, buf, sizeof(buf), 0) == sizeof(DATA) && memcmp(buf, DATA, sizeof(DATA)) == 0);
	close(fd);

	CHECK_OK(luo_component_incoming(luo, "agent-service-counter", &version));
	CHECK_EQ(version, 1);
	CHECK_EQ(counter, COUNTER);

	CHECK_OK(luo_arena_retrieve(s, TOK_ARENA, &a));
	for (struct node *p = luo_arena_root(a); p; p = p->next, n++) {
		CHECK((char *)p >= (char *)luo_arena_base(a) &&
		      (char *)p < (char *)luo_arena_base(a) + luo_arena_size(a));
		CHECK_EQ(p->value, LIST_NODES - 1 - n);
	}
	CHECK_EQ(n, LIST_NODES);
	printf("arena %p\n", luo_arena_base(a));

	/* The connection made while we were dead waits in the backlog. */
	CHECK_OK(luo_session_retrieve_fd(s, TOK_LISTEN, &fd));
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	CHECK(poll(&pfd, 1, 10000) == 1);
	conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	CHECK(conn >= 0);
	memset(buf, 0, sizeof(buf));
	len = read(conn, buf, sizeof(buf) - 1);
	CHECK(len == 5 && memcmp(buf, "ping\n", 5) == 0);
	len = snprintf(buf, sizeof(buf), "pong %llu\n", (unsigned long long)counter);
	CHECK(write(conn, buf, (size_t)len) == len);
	close(conn);
	close(fd);

	luo_arena_close(a);
	luo_session_close(s);
	CHECK_OK(luo_session_withdraw(luo, SESSION));
	luo_close(luo);
	printf("OK\n");
}

int main(int argc, char **argv)
{
	test_begin();
	if (argc == 2 && strcmp(argv[1], "deposit") == 0)
		do_deposit();
	else if (argc == 2 && strcmp(argv[1], "restore") == 0)
		do_restore();
	else {
		fprintf(stderr, "usage: %s deposit|restore\n", argv[0]);
		return 2;
	}
	check_no_fd_leak();
	return 0;
}
