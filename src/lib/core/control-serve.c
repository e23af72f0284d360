/* SPDX-License-Identifier: MIT */
/*
 * DOC: control-serve.c, the control socket's requests, each a luo_update()
 *
 * luo_control_dispatch() accepts what waits on the control socket
 * (transport/control.c, whose DOC tells a request's whole life) and serves
 * each connection: the request read and checked there, then
 * luo_update_quiesced() with the program's own argv, which calls the
 * program's quiesce callback once the slow steps are done. Still
 * here: the update was refused or failed, and the requester gets the error,
 * the reason and the negotiation's report; a switched update is answered by
 * the new image, from luo_ready().
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cleanup.h"
#include "core.h"

/* Connections one luo_control_dispatch() call serves: it never loops forever. */
#define CONTROL_ACCEPT_MAX 8
/* Report entries sent with a refusal (a negotiation has far fewer). */
#define CONTROL_REPORTS_MAX 256

/* A refused luo_update(): the error, why, and the report of its negotiation. */
static void answer_refusal(struct luo *luo, int fd, const struct luo_control_update *req, int error)
{
	size_t reply_size = luo_wire_out_size(req->reply_size, sizeof(struct luo_agent_reply),
					      LUO_AGENT_REPLY_SIZE_VER0);
	size_t info_size = luo_wire_out_size(req->info_size, sizeof(struct luo_control_report),
					     LUO_CONTROL_REPORT_SIZE_VER0);
	const struct luo_report_entry *e = NULL;
	char reason[LUO_AGENT_REASON_SIZE];
	size_t n = 0, len;

	if (luo_update_report(luo, &e, &n) < 0)
		n = 0;
	luo_reasonf(reason, sizeof(reason), "%s", strerror(-error));
	if (error == -EPROTO) {
		const char *sep = ":";
		size_t more = 0;

		/*
		 * The headline says the real cause of each refusal, whole ones
		 * only, room kept for how many did not fit; the report says the rest.
		 */
		luo_reasonf(reason, sizeof(reason), "refused at negotiation");
		for (size_t i = 0; i < n; i++) {
			static const char *const causes[] = {
				[LUO_CAUSE_NONE] = "refused",
				[LUO_CAUSE_NO_COMMON_VERSION] = "no common version",
				[LUO_CAUSE_TYPES_DIFFER] = "types differ",
				[LUO_CAUSE_NOT_DECLARED] = "not in the new image",
				[LUO_CAUSE_STRICT] = "strict: downgrade, drop or unproven types",
			};
			uint32_t c = e[i].cause <= LUO_CAUSE_STRICT ? e[i].cause : LUO_CAUSE_NONE;

			char one[LUO_AGENT_REASON_SIZE];
			int k;

			if (e[i].verdict != LUO_VERDICT_REFUSE)
				continue;
			len = strlen(reason);
			k = snprintf(one, sizeof(one), "%s %s (%s)", sep, e[i].name, causes[c]);
			if (k < 0 || len + (size_t)k + sizeof(" and 999 more") > sizeof(reason)) {
				more++;
				continue;
			}
			memcpy(reason + len, one, (size_t)k + 1);
			sep = ",";
		}
		if (more)
			luo_reasonf(reason + strlen(reason), sizeof(reason) - strlen(reason), " and %zu more", more);
	}
	if (n > CONTROL_REPORTS_MAX)
		n = CONTROL_REPORTS_MAX;
	if (luo_control_send_reply(fd, reply_size, req->hdr.seq, error, (uint32_t)n, luo_liveupdate_number(luo), reason) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		struct luo_control_report rep;

		memset(&rep, 0, sizeof(rep));
		luo_wire_header_init(&rep.hdr, info_size, LUO_CONTROL_OP_REPORT, req->hdr.seq);
		rep.kind = e[i].kind;
		rep.verdict = (uint32_t)e[i].verdict;
		rep.version = e[i].version;
		snprintf(rep.name, sizeof(rep.name), "%s", e[i].name);
		luo_report_entry_format(&e[i], rep.line, sizeof(rep.line));
		luo_report_entry_format(&e[i], rep.full_line, sizeof(rep.full_line));
		luo_reason_one_line(rep.line);
		luo_reason_one_line(rep.full_line);
		if (luo_wire_send(fd, &rep, info_size, NULL, 0) < 0)
			return;
	}
}

/* luo_control_begin() as luo_update_quiesced()'s quiesce: after the slow steps, before the freeze. */
struct begin_ctx {
	struct luo *luo;
	int fd;
	uint32_t seq;
	bool quiesced;
	int begun; /* 0 not called; 1 done; < 0 its error */
};

static int begin_cb(void *data)
{
	struct begin_ctx *b = data;
	int r = luo_control_begin(b->luo, b->fd, b->seq, &b->quiesced);

	b->begun = r < 0 ? r : 1;
	return r;
}

/* One accepted connection; closed by the caller unless it crossed an exec. */
static void serve_connection(struct luo *luo, int fd, uint64_t deadline)
{
	struct luo_control_update req;
	_cleanup_free_ char *argv_buf = NULL;
	_cleanup_free_ char **argv = NULL;
	struct begin_ctx b = { luo, fd, 0, false, 0 };
	int r;

	if (luo_control_receive(luo, fd, deadline, &req) < 0)
		return; /* answered or dropped */
	b.seq = req.hdr.seq;
	r = luo_self_argv(&argv_buf, &argv);
	if (r < 0) {
		luo_control_timeouts(fd, deadline);
		luo_control_send_reply(fd, LUO_AGENT_REPLY_SIZE_VER0, req.hdr.seq, r, 0, luo_liveupdate_number(luo),
				       strerror(-r));
		return;
	}
	fflush(NULL); /* execve() would drop what stdio buffers */
	pthread_mutex_lock(&luo->lock);
	luo->strict_once = req.flags & LUO_CONTROL_UPDATE_STRICT;
	pthread_mutex_unlock(&luo->lock);
	/* The manifests are read and the reaper started before the program quiesces (begin_cb). */
	r = luo_update_quiesced(luo, req.path, argv, NULL, begin_cb, NULL, &b);
	pthread_mutex_lock(&luo->lock);
	luo->strict_once = false;
	pthread_mutex_unlock(&luo->lock);
	if (b.begun < 0) {
		/* busy with another answer, or the program would not quiesce */
		luo_control_timeouts(fd, deadline);
		luo_control_send_reply(fd, LUO_AGENT_REPLY_SIZE_VER0, req.hdr.seq, r, 0, luo_liveupdate_number(luo),
				       strerror(-r));
		return;
	}
	/* Still here: refused or failed, everything as before. */
	if (b.begun)
		luo_control_end(luo, b.quiesced);
	luo_control_timeouts(fd, deadline);
	answer_refusal(luo, fd, &req, r);
}

int luo_control_dispatch(struct luo *luo)
{
	uint64_t deadline = luo_now_ns() + (uint64_t)LUO_CONTROL_PEER_BUDGET_MS * 1000000;
	int lfd;

	if (luo_in_callback())
		return -EDEADLK; /* a component callback: the lock is held (luo.h) */
	if (!luo)
		return -EINVAL;
	lfd = luo_control_listen_fd(luo);
	if (lfd < 0)
		return -EBADF;
	for (int i = 0; i < CONTROL_ACCEPT_MAX; i++) {
		_cleanup_close_ int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno; /* -EMFILE, -ENFILE, -ENOMEM...: still pending */
		}
		serve_connection(luo, fd, deadline);
	}
	return 0;
}
