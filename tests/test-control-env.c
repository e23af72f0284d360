/* SPDX-License-Identifier: MIT */
/*
 * An fd named in LUO_HANDOVER_CONTROL_FD is taken as the connection of an
 * update asked by luoctl only if it is one: a connection accepted on this
 * pid's control socket. A stray socket of the right family and type (a
 * socketpair here) with a handover variable present is neither written to
 * by luo_ready() nor closed, even when the handover itself is refused.
 */

#include <fcntl.h>
#include <sys/socket.h>

#include "luo/luo.h"
#include "test-util.h"

int main(void)
{
	struct luo *luo;
	char env[64], buf[512];
	int sp[2], fd;

	test_begin();
	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == 0);
	fd = fcntl(sp[0], F_DUPFD_CLOEXEC, 100);
	CHECK(fd >= 100);
	close(sp[0]);
	snprintf(env, sizeof(env), "%d:7", fd);
	setenv("LUO_HANDOVER_CONTROL_FD", env, 1);
	setenv("LUO_HANDOVER_FD", "999", 1); /* not open: the handover is refused */
	CHECK_OK(luo_open(LUO_OPEN_FRESH_ON_ERROR | LUO_OPEN_NO_ROLLBACK, &luo));
	CHECK(luo_incoming_error(luo, NULL) < 0);
	CHECK(getenv("LUO_HANDOVER_CONTROL_FD") == NULL); /* consumed all the same */
	CHECK_OK(luo_ready(luo));
	luo_close(luo);
	/* Not ours: still open, and nothing was sent on it. */
	CHECK(fcntl(fd, F_GETFD) >= 0);
	CHECK(recv(sp[1], buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno == EAGAIN);
	close(fd);
	close(sp[1]);
	check_no_fd_leak();
	printf("ok\n");
	return 0;
}
