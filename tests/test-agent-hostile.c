/* SPDX-License-Identifier: MIT */
/*
 * A retrieved deposit is hostile input. A session deposited through libluo
 * is taken apart with the raw protocol (wire.h) and deposited again,
 * wrong, under names libluo then retrieves:
 *
 *   its blob under another name                -EBADMSG
 *   one fd missing                             -EBADMSG
 *   the memfd and the eventfd swapped          -EBADFD
 *   a sealed memfd of garbage as the blob      -EBADMSG
 *   an unsealed blob                           refused by luod (-EBADFD)
 *
 * Each refusal closes every fd it received (counted), says why in
 * luo_agent_error()'s reason, and leaves the deposit in the agent; the
 * right deposit is then retrieved intact.
 *
 *   test-agent-hostile LUOD
 */

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "luo/luo.h"
#include "test-agent-util.h"
#include "test-util.h"
#include "wire.h"

static uint32_t seq;

static int raw_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", getenv("LUO_AGENT_SOCKET"));
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	return fd;
}

static void raw_request(int sock, uint16_t op, const char *name, const int *fds, size_t n_fds)
{
	struct luo_agent_request req = { .n_fds = (uint32_t)n_fds, .uid = LUO_AGENT_UID_SELF,
					 .reply_size = sizeof(struct luo_agent_reply),
					 .flags = op == LUO_AGENT_OP_DEPOSIT ? LUO_AGENT_DEPOSIT_KEEP_ON_CRASH : 0 };

	luo_wire_header_init(&req.hdr, sizeof(req), op, ++seq);
	snprintf(req.name, sizeof(req.name), "%s", name);
	CHECK_OK(luo_wire_send(sock, &req, sizeof(req), fds, n_fds));
}

/* The reply; its fds (and those of OP_FDS messages) into @fds. */
static int raw_reply(int sock, int *fds, size_t max, size_t *ret_n)
{
	struct luo_agent_reply rep;
	unsigned char buf[LUO_AGENT_MSG_MAX];
	size_t got = 0;
	ssize_t n = luo_wire_recv(sock, buf, sizeof(buf), fds, max, &got);

	CHECK(n >= (ssize_t)LUO_AGENT_REPLY_SIZE_VER0);
	CHECK_OK(luo_wire_struct_in(&rep, sizeof(rep), buf, (size_t)n));
	CHECK(rep.error < 0 || got == rep.n_fds); /* small sessions: one message */
	if (ret_n)
		*ret_n = got;
	return rep.error;
}

static void raw_deposit(const char *name, const int *fds, size_t n, int want)
{
	int sock = raw_connect();

	raw_request(sock, LUO_AGENT_OP_DEPOSIT, name, fds, n);
	CHECK_ERR(raw_reply(sock, NULL, 0, NULL), want);
	raw_request(sock, LUO_AGENT_OP_DETACH, "", NULL, 0);
	CHECK_OK(raw_reply(sock, NULL, 0, NULL));
	close(sock);
}

/* libluo's retrieve of @name is refused with @err; nothing leaks; the deposit stays. */
static void refused(const char *name, int err, const char *what)
{
	int before = count_open_fds();
	struct luo_session *s;
	struct luo *luo;
	const char *why;
	char reason[256];

	CHECK_OK(luo_open(LUO_OPEN_AGENT, &luo));
	CHECK_OK(luo_agent_error(luo, NULL));
	CHECK_ERR(luo_session_retrieve(luo, name, &s), err);
	CHECK_OK(luo_agent_error(luo, &why));
	CHECK(why[0]);
	snprintf(reason, sizeof(reason), "%s", why); /* valid until luo_close() */
	luo_close(luo);
	CHECK_EQ(count_open_fds(), before);
	CHECK_OK(luo_open(LUO_OPEN_AGENT, &luo));
	CHECK_ERR(luo_session_retrieve(luo, name, &s), err); /* still there, refused again */
	luo_close(luo);
	printf("ok - %s: -%s (%s), every fd closed, the deposit kept\n", what, strerrorname_np(err), reason);
}

int main(int argc, char **argv)
{
	struct test_agent agent = { 0 };
	struct luo_session *s;
	struct luo *luo;
	int fds[3], bad[3], garbage, sock, fd;
	uint64_t count;
	size_t n;

	CHECK(argc == 2);
	test_begin();
	agent_start(&agent, argv[1]);

	CHECK_OK(luo_open(LUO_OPEN_AGENT, &luo));
	CHECK_OK(luo_session_create(luo, "orig", &s));
	fd = memfd_create("data", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	CHECK(fd >= 0 && write(fd, "data", 4) == 4);
	CHECK_OK(luo_session_preserve_fd(s, fd, 1));
	close(fd);
	fd = eventfd(9, EFD_CLOEXEC);
	CHECK_OK(luo_session_preserve_fd(s, fd, 2));
	close(fd);
	CHECK_OK(luo_session_deposit(s, LUO_DEPOSIT_KEEP_ON_CRASH));
	luo_close(luo);

	sock = raw_connect();
	raw_request(sock, LUO_AGENT_OP_RETRIEVE, "orig", NULL, 0);
	CHECK_OK(raw_reply(sock, fds, 3, &n));
	CHECK_EQ(n, 3);
	close(sock);

	raw_deposit("renamed", fds, 3, 0);
	refused("renamed", EBADMSG, "the blob of another session");
	raw_deposit("orig", fds, 2, 0);
	refused("orig", EBADMSG, "one fd missing");
	bad[0] = fds[0], bad[1] = fds[2], bad[2] = fds[1];
	raw_deposit("orig", bad, 3, 0);
	refused("orig", EBADFD, "two fds swapped");
	garbage = memfd_create("garbage", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	CHECK(garbage >= 0 && write(garbage, "not an FDT at all", 17) == 17);
	bad[0] = garbage, bad[1] = fds[1], bad[2] = fds[2];
	raw_deposit("orig", bad, 3, EBADFD); /* not sealed: luod refuses it */
	CHECK(fcntl(garbage, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0);
	raw_deposit("orig", bad, 3, 0);
	refused("orig", EBADMSG, "garbage as the blob");
	close(garbage);

	raw_deposit("orig", fds, 3, 0);
	luo_wire_close_fds(fds, 3);
	CHECK_OK(luo_open(LUO_OPEN_AGENT, &luo));
	CHECK_OK(luo_session_retrieve(luo, "orig", &s));
	CHECK_OK(luo_session_retrieve_fd(s, 2, &fd));
	CHECK(read(fd, &count, sizeof(count)) == sizeof(count));
	CHECK_EQ(count, 9);
	close(fd);
	CHECK_OK(luo_session_withdraw(luo, "orig"));
	CHECK_OK(luo_session_withdraw(luo, "renamed"));
	luo_close(luo);
	printf("ok - the right deposit again: retrieved intact\n");
	check_no_fd_leak();
	agent_stop(&agent);
	return 0;
}
