/* SPDX-License-Identifier: MIT */
/*
 * DOC: messages of the agent and control protocols (see wire.h, agent.h)
 *
 * Lifecycle: none; each call stands alone. Failure paths: a message that
 * cannot be trusted whole (truncated data or control data, fds not of
 * SCM_RIGHTS, too many fds) is refused with -EBADMSG after every fd it
 * brought is closed, so a hostile peer cannot make the receiver leak fds.
 */

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "wire.h"

_Static_assert(sizeof(struct luo_agent_request) == LUO_AGENT_REQUEST_SIZE_VER0, "agent.h: request");
_Static_assert(sizeof(struct luo_agent_reply) == LUO_AGENT_REPLY_SIZE_VER0, "agent.h: reply");
_Static_assert(sizeof(struct luo_agent_fds) == LUO_AGENT_FDS_SIZE_VER0, "agent.h: fds");
_Static_assert(sizeof(struct luo_agent_session_info) == LUO_AGENT_SESSION_INFO_SIZE_VER0, "agent.h: info");
_Static_assert(sizeof(struct luo_agent_status) == LUO_AGENT_STATUS_SIZE_VER0, "agent.h: status");
_Static_assert(sizeof(struct luo_control_update) == LUO_CONTROL_UPDATE_SIZE_VER0, "agent.h: update");
_Static_assert(sizeof(struct luo_control_report) == LUO_CONTROL_REPORT_SIZE_VER1, "agent.h: report");
_Static_assert(sizeof(struct luo_control_done) == LUO_CONTROL_DONE_SIZE_VER0, "agent.h: done");
_Static_assert(LUO_CONTROL_UPDATE_SIZE_VER0 <= LUO_AGENT_MSG_MAX, "agent.h: message bound");
_Static_assert(LUO_AGENT_FDS_PER_MSG <= 253, "SCM_MAX_FD");

void luo_wire_close_fds(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fds[i] = safe_close(fds[i]);
}

void luo_wire_header_init(struct luo_agent_header *hdr, size_t size, uint16_t op, uint32_t seq)
{
	hdr->size = (uint32_t)size;
	hdr->version = LUO_AGENT_PROTO_VERSION;
	hdr->op = op;
	hdr->seq = seq;
}

int luo_wire_send(int sock, const void *msg, size_t len, const int *fds, size_t n_fds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * LUO_AGENT_FDS_PER_MSG)];
	} control;
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (len == 0 || len > LUO_AGENT_MSG_MAX || n_fds > LUO_AGENT_FDS_PER_MSG || (n_fds && !fds))
		return -EINVAL;
	if (n_fds > 0) {
		struct cmsghdr *c;

		memset(&control, 0, sizeof(control));
		mh.msg_control = control.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n != len)
		return -EMSGSIZE; /* SOCK_SEQPACKET sends whole or not at all */
	return 0;
}

ssize_t luo_wire_recv(int sock, void *buf, size_t cap, int *fds, size_t max_fds, size_t *ret_n_fds)
{
	union {
		struct cmsghdr align;
		/* Room for more than we take: excess is seen, closed, refused. */
		char buf[CMSG_SPACE(sizeof(int) * 256)];
	} control;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
			     .msg_controllen = sizeof(control.buf) };
	size_t n_fds = 0;
	bool bad = false;
	ssize_t n;

	*ret_n_fds = 0;
	if (max_fds > LUO_AGENT_FDS_PER_MSG)
		max_fds = LUO_AGENT_FDS_PER_MSG;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
			bad = true; /* SCM_CREDENTIALS etc. carry no fds to close */
			continue;
		}
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (n_fds < max_fds)
				fds[n_fds++] = fd;
			else {
				safe_close(fd);
				bad = true;
			}
		}
	}
	if (bad || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		luo_wire_close_fds(fds, n_fds);
		return -EBADMSG;
	}
	if (n == 0 && n_fds > 0) {
		luo_wire_close_fds(fds, n_fds);
		return -EBADMSG;
	}
	*ret_n_fds = n_fds;
	return n;
}

int luo_wire_header(const void *buf, size_t len, size_t size_ver0, uint16_t op, struct luo_agent_header *ret_hdr)
{
	struct luo_agent_header h;

	if (len < sizeof(h))
		return -EBADMSG;
	memcpy(&h, buf, sizeof(h));
	*ret_hdr = h;
	if (h.version != LUO_AGENT_PROTO_VERSION)
		return -EPROTONOSUPPORT;
	if (h.size != len || h.size < size_ver0 || h.size > LUO_AGENT_MSG_MAX)
		return -EBADMSG;
	if (op != 0 && h.op != op)
		return -EBADMSG;
	return 0;
}

int luo_wire_struct_in(void *dst, size_t ours, const void *src, size_t theirs)
{
	if (theirs > ours) {
		const unsigned char *extra = (const unsigned char *)src + ours;

		for (size_t i = 0; i < theirs - ours; i++)
			if (extra[i])
				return -E2BIG;
		theirs = ours;
	}
	memcpy(dst, src, theirs);
	memset((unsigned char *)dst + theirs, 0, ours - theirs);
	return 0;
}

size_t luo_wire_out_size(uint32_t theirs, size_t ours, size_t ver0)
{
	if (theirs < ver0)
		return 0;
	return theirs < ours ? theirs : ours;
}

int luo_wire_name(const char *name, size_t size)
{
	const char *nul = memchr(name, '\0', size);

	if (!nul || nul == name)
		return -EINVAL;
	for (const char *p = nul; p < name + size; p++)
		if (*p)
			return -EINVAL;
	return 0;
}
