/* SPDX-License-Identifier: MIT */
/*
 * DOC: peer.c, connecting with a bound and receiving checked messages
 *
 * Every message received is checked as include/luo/agent.h says (sizes,
 * version, op, the echoed seq) before a byte of it is used; a message
 * carrying fds is refused (none is expected by luoctl), its fds closed. On
 * a control connection each message must come from the service's pid
 * itself (SCM_CREDENTIALS, recv_from_pid()): a listener held by another
 * process cannot fake that.
 *
 * Layer: calls output.c and wire.c (the message checks libluo and luod
 * share).
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "luo/agent.h"
#include "luoctl.h"
#include "peer.h"
#include "wire.h"

int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * One message that must come from process @pid itself: the kernel names
 * its sender at send (SO_PASSCRED set before connect). Fds are refused.
 * Return: its length, 0 the peer closed, -EPERM another sender, -EBADMSG.
 */
static ssize_t recv_from_pid(int fd, void *buf, size_t cap, pid_t pid)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * LUO_AGENT_FDS_PER_MSG)];
	} c;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf, .msg_controllen = sizeof(c.buf) };
	bool from_pid = false, bad = false;
	ssize_t n;

	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_CREDENTIALS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(struct ucred))) {
			struct ucred uc;

			memcpy(&uc, CMSG_DATA(cm), sizeof(uc));
			from_pid = uc.pid == pid;
		} else if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t i = 0; i < k; i++) {
				int rfd;

				memcpy(&rfd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
				close(rfd);
			}
			bad = true;
		} else {
			bad = true;
		}
	}
	if (bad || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
		return -EBADMSG;
	if (n == 0)
		return 0;
	return from_pid ? n : -EPERM;
}

/*
 * One message before @p's deadline. Return: its length, 0 the peer
 * closed, -ETIMEDOUT, or the error of luo_wire_recv() / recv_from_pid().
 */
static ssize_t recv_until(const struct peer *p, void *buf, size_t cap)
{
	struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
	size_t n_fds;
	int no_fds[1];

	for (;;) {
		int64_t left = p->deadline - now_ms();
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r > 0)
			break;
	}
	if (p->sender > 0)
		return recv_from_pid(p->fd, buf, cap, p->sender);
	return luo_wire_recv(p->fd, buf, cap, no_fds, 0, &n_fds);
}

int recv_struct(const struct peer *p, size_t ver0, uint16_t op, uint32_t seq, void *out, size_t ours, bool *closed)
{
	union {
		struct luo_agent_header hdr;
		char buf[LUO_AGENT_MSG_MAX];
	} in;
	struct luo_agent_header hdr;
	ssize_t n;
	int r;

	*closed = false;
	n = recv_until(p, in.buf, sizeof(in.buf));
	if (n == 0) {
		*closed = true;
		return 0;
	}
	if (n < 0) {
		print_error(p->what, (int)n, n == -ETIMEDOUT ? "no answer in time"
				  : n == -EPERM ? "a message not sent by that process (its control socket is "
						  "held by another)"
						: "cannot receive");
		return (int)n;
	}
	r = luo_wire_header(in.buf, (size_t)n, ver0, op, &hdr);
	if (r == 0 && hdr.seq != seq)
		r = -EBADMSG;
	if (r == 0)
		r = luo_wire_struct_in(out, ours, in.buf, (size_t)n);
	if (r < 0) {
		print_error(p->what, r, "malformed message");
		return r;
	}
	return 0;
}

int connect_bounded(int fd, const struct sockaddr_un *sa, socklen_t len)
{
	int64_t deadline = now_ms() + CONNECT_TIMEOUT_MS;
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	for (;;) {
		struct timespec wait = { .tv_nsec = CONNECT_RETRY_MS * 1000000L };

		if (connect(fd, (const struct sockaddr *)sa, len) == 0)
			break;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		nanosleep(&wait, NULL);
	}
	if (fcntl(fd, F_SETFL, flags) < 0)
		return -errno;
	return 0;
}
