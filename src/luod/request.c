/* SPDX-License-Identifier: MIT */
/*
 * DOC: request.c, the requests of include/luo/agent.h on one connection
 *
 * Reads what a connection sent (request_event(), from the loop), checks
 * each message's framing, and answers it through conn.c. Requests are read
 * only while the connection has no reply queued (conn.c), so they are
 * answered in order, one at a time.
 *
 * A DEPOSIT is a small state machine: its first message announces n_fds
 * and carries the first fds; OP_FDS messages carry the rest. While it is
 * under way the connection accepts only OP_FDS; other connections are
 * served in between, so a client stalling mid-deposit blocks nobody. A
 * deposit found wrong early (bad name, flags, a limit) keeps collecting,
 * closing each fd as it comes, and is answered once the announced fds are
 * in, so that the message stream stays in step. When the last fd arrived
 * the blob is checked, bytes counted, limits checked, and the session
 * replaces the previous one of its (uid, name) at once (table.c).
 *
 * Failure paths, see agent.h: a message that breaks the framing (size
 * field wrong, truncated, oversized, fds not announced, too many fds, an
 * OP_FDS where none is expected, another protocol version) gets an error
 * reply if the socket takes it, its fds are closed, and the connection is
 * closed: the stream cannot be trusted. A well-framed request that is
 * refused (-EINVAL, -E2BIG, -EOPNOTSUPP, -EPERM, -ENOENT, -EDQUOT, ...) is
 * answered and the connection goes on.
 *
 * Layer: called by main.c; calls conn.c, table.c and base.c, never back.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "cleanup.h"
#include "conn.h"
#include "luod.h"
#include "request.h"
#include "table.h"
#include "wire.h"

/* The owner a request names: -EPERM if the caller may not. */
static int target_uid(const struct conn *c, uint32_t uid, bool allow_all, uint32_t *ret)
{
	if (uid == LUO_AGENT_UID_SELF) {
		*ret = c->uid;
		return 0;
	}
	if (uid == LUO_AGENT_UID_ALL) {
		if (!allow_all)
			return -EINVAL;
		*ret = uid;
		return 0;
	}
	if (uid != c->uid && c->uid != 0)
		return -EPERM;
	*ret = uid;
	return 0;
}

static void deposit_finish(struct luod *d, struct conn *c)
{
	const struct luo_agent_request *q = &c->dep;
	_cleanup_free_ struct held *h = NULL;
	struct uid_usage *u;
	struct held *old;
	char reason[LUO_AGENT_REASON_SIZE] = "";
	uint64_t bytes = 0, fds_after, sessions_after, bytes_after;
	int r = c->dep_err;

	if (r == 0)
		r = held_measure(c->dep_fds, q->n_fds, &bytes, reason, sizeof(reason));
	if (r == 0) {
		old = table_find(d, c->uid, q->name);
		u = table_usage(d, c->uid, true);
		if (!u) {
			r = -ENOMEM;
		} else {
			sessions_after = u->sessions + (old ? 0 : 1);
			fds_after = u->fds - (old ? old->n_fds : 0) + q->n_fds;
			bytes_after = u->bytes - (old ? old->bytes : 0) + bytes;
			if (bytes_after > d->lim.max_bytes) {
				r = -EDQUOT;
				snprintf(reason, sizeof(reason), "max-bytes: uid %u would hold %llu bytes, limit %llu",
					 c->uid, (unsigned long long)bytes_after, (unsigned long long)d->lim.max_bytes);
			} else if (sessions_after > d->lim.max_sessions || fds_after > d->lim.max_fds) {
				r = -EDQUOT; /* checked at the start too; limits do not change, but be exact */
				snprintf(reason, sizeof(reason), "max-sessions/max-fds reached for uid %u", c->uid);
			}
		}
	}
	if (r == 0) {
		h = calloc(1, sizeof(*h));
		if (!h)
			r = -ENOMEM;
	}
	if (r < 0) {
		if (!reason[0])
			snprintf(reason, sizeof(reason), "%s", c->dep_reason[0] ? c->dep_reason : strerror(-r));
		if (r == -EDQUOT || r == -ENFILE)
			luod_log("pid %d uid %u: deposit of \"%.*s\" refused: %s", c->pid, c->uid,
				 (int)sizeof(q->name), q->name, reason);
		if (!c->dep_err)
			luod_close_fds(c->dep_fds, c->dep_got);
	} else if (h) {
		memcpy(h->name, q->name, sizeof(h->name));
		h->uid = c->uid;
		h->flags = q->flags;
		h->n_fds = q->n_fds;
		h->fds = TAKE_PTR(c->dep_fds);
		h->bytes = bytes;
		h->deposited_s = h->updated_s = luod_now_s();
		h->owner = c;
		table_put(d, TAKE_PTR(h));
	}
	free(c->dep_fds);
	c->dep_fds = NULL;
	d->pending_fds -= q->n_fds;
	conn_deposit_unreserve(d, c);
	c->depositing = false;
	conn_reply(d, c, q->hdr.seq, q->reply_size, r, r < 0 ? reason : NULL);
}

/* Take @n fds of a deposit (or close them if it is refused already). */
static void deposit_take(struct luod *d, struct conn *c, int *fds, size_t n)
{
	/* dep_err is only ever set before the first fd is taken: all or nothing is kept. */
	for (size_t i = 0; i < n; i++) {
		if (c->dep_err)
			luod_close_fd(fds[i]);
		else
			c->dep_fds[c->dep_got + i] = fds[i];
	}
	c->dep_got += (uint32_t)n;
	if (c->dep_got == c->dep.n_fds)
		deposit_finish(d, c);
}

static void deposit_fail(struct conn *c, int error, const char *reason)
{
	if (c->dep_err)
		return;
	c->dep_err = error;
	snprintf(c->dep_reason, sizeof(c->dep_reason), "%s", reason);
}

static void op_deposit(struct luod *d, struct conn *c, const struct luo_agent_request *q, int *fds, size_t n)
{
	struct held *old;
	struct uid_usage *u = NULL;

	if (q->n_fds == 0 || q->n_fds > LUO_AGENT_SESSION_FDS_MAX) {
		luod_close_fds(fds, n);
		conn_refuse(d, c, q->hdr.seq, -EINVAL, "DEPOSIT: n_fds must be 1..LUO_AGENT_SESSION_FDS_MAX");
		return;
	}
	if (n > q->n_fds || n == 0) {
		luod_close_fds(fds, n);
		conn_refuse(d, c, q->hdr.seq, -EBADMSG,
			    n ? "DEPOSIT: more fds than announced" : "DEPOSIT: the blob must come with the request");
		return;
	}
	if (!conn_busy(c))
		c->busy_since_ms = luod_now_ms();
	c->depositing = true;
	c->dep = *q;
	c->dep_got = 0;
	c->dep_err = 0;
	c->dep_reason[0] = '\0';
	d->pending_fds += q->n_fds;
	c->dep_fds = calloc(q->n_fds, sizeof(int));
	if (!c->dep_fds)
		deposit_fail(c, -ENOMEM, "out of memory");
	if (luo_wire_name(q->name, sizeof(q->name)) < 0)
		deposit_fail(c, -EINVAL, "DEPOSIT: name must be 1..63 bytes, NUL, then zeros");
	if (q->flags & ~LUO_AGENT_DEPOSIT_FLAGS_ALL)
		deposit_fail(c, -EINVAL, "DEPOSIT: unknown flags");
	if (q->uid != 0 && q->uid != LUO_AGENT_UID_SELF && q->uid != c->uid)
		deposit_fail(c, -EPERM, "DEPOSIT: sessions are deposited under the caller's own uid");
	/*
	 * The fds of deposits under way are held by luod too: they count
	 * against the owner's max-fds, else one uid stalling deposits on many
	 * connections would take the agent's whole fd budget from the others.
	 */
	if (!c->dep_err && !(u = table_usage(d, c->uid, true)))
		deposit_fail(c, -ENOMEM, "out of memory");
	if (!c->dep_err) {
		old = table_find(d, c->uid, q->name);
		if (!old && u->sessions + 1 > d->lim.max_sessions) {
			char buf[LUO_AGENT_REASON_SIZE];

			snprintf(buf, sizeof(buf), "max-sessions: uid %u holds %llu sessions, the limit", c->uid,
				 (unsigned long long)u->sessions);
			deposit_fail(c, -EDQUOT, buf);
		} else if (u->fds - (old ? old->n_fds : 0) + u->pending_fds + q->n_fds > d->lim.max_fds) {
			char buf[LUO_AGENT_REASON_SIZE];

			snprintf(buf, sizeof(buf), "max-fds: uid %u would hold %llu fds (deposits under way included), limit %llu",
				 c->uid,
				 (unsigned long long)(u->fds - (old ? old->n_fds : 0) + u->pending_fds + q->n_fds),
				 (unsigned long long)d->lim.max_fds);
			deposit_fail(c, -EDQUOT, buf);
		} else if (d->n_fds + d->pending_fds > luod_held_fds_limit(d, c->uid)) {
			deposit_fail(c, -ENFILE, c->uid == 0 ? "the agent holds as many fds as it can (held-fds limit)"
							     : "the agent holds as many fds as it can for uids other "
							       "than root (held-fds limit less root's reserve)");
		}
	}
	if (!c->dep_err) {
		u->pending_fds += q->n_fds;
		c->dep_reserved = true;
	}
	deposit_take(d, c, fds, n);
}

static void op_fds(struct luod *d, struct conn *c, const void *buf, size_t len, int *fds, size_t n)
{
	struct luo_agent_header hdr;
	struct luo_agent_fds f;
	int r;

	r = luo_wire_header(buf, len, LUO_AGENT_FDS_SIZE_VER0, LUO_AGENT_OP_FDS, &hdr);
	if (r == 0)
		r = luo_wire_struct_in(&f, sizeof(f), buf, len);
	if (r == 0 && (f.n_fds != n || n == 0 || f.reserved != 0 || c->dep_got + n > c->dep.n_fds))
		r = -EBADMSG;
	if (r < 0) {
		luod_close_fds(fds, n);
		conn_refuse(d, c, hdr.seq, r, "OP_FDS: fds not as announced");
		return;
	}
	deposit_take(d, c, fds, n);
}

static void op_retrieve(struct luod *d, struct conn *c, const struct luo_agent_request *q)
{
	struct luo_agent_reply rep;
	struct held *h;
	uint32_t uid, sent;
	size_t size = conn_reply_size(q->reply_size);
	int r;

	r = target_uid(c, q->uid, false, &uid);
	if (r == 0 && luo_wire_name(q->name, sizeof(q->name)) < 0)
		r = -EINVAL;
	if (r < 0) {
		conn_reply(d, c, q->hdr.seq, q->reply_size, r, r == -EPERM ? "not your uid" : "bad uid or name");
		return;
	}
	h = table_find(d, uid, q->name);
	if (!h) {
		conn_reply(d, c, q->hdr.seq, q->reply_size, -ENOENT, "no such session");
		return;
	}
	r = conn_retrieve_admit(d, c, h->n_fds);
	if (r < 0) {
		conn_reply(d, c, q->hdr.seq, q->reply_size, r,
			   r == -EDQUOT ? "max-fds: the fds of earlier replies are not read yet"
					: "the agent has as many reply fds in flight as it can hold");
		return;
	}
	rep = conn_reply_make(d, c, q->hdr.seq, size, 0, NULL);
	rep.n_fds = h->n_fds;
	sent = h->n_fds < LUO_AGENT_FDS_PER_MSG ? h->n_fds : LUO_AGENT_FDS_PER_MSG;
	conn_send(d, c, &rep, size, h->fds, sent);
	while (sent < h->n_fds && !c->dead) {
		struct luo_agent_fds f = { 0 };
		uint32_t k = h->n_fds - sent < LUO_AGENT_FDS_PER_MSG ? h->n_fds - sent : LUO_AGENT_FDS_PER_MSG;

		luo_wire_header_init(&f.hdr, sizeof(f), LUO_AGENT_OP_FDS, q->hdr.seq);
		f.n_fds = k;
		conn_send(d, c, &f, sizeof(f), h->fds + sent, k);
		sent += k;
	}
}

static bool visible(const struct held *h, uint32_t uid)
{
	return uid == LUO_AGENT_UID_ALL || h->uid == uid;
}

static void op_list(struct luod *d, struct conn *c, const struct luo_agent_request *q)
{
	size_t size = conn_reply_size(q->reply_size);
	size_t isize = luo_wire_out_size(q->info_size, sizeof(struct luo_agent_session_info),
					 LUO_AGENT_SESSION_INFO_SIZE_VER0);
	struct luo_agent_reply rep;
	uint32_t uid, count = 0;
	int r;

	r = target_uid(c, q->uid, true, &uid);
	if (r == 0 && isize == 0)
		r = -EINVAL;
	if (r < 0) {
		conn_reply(d, c, q->hdr.seq, q->reply_size, r, r == -EPERM ? "not your uid" : "bad uid or info_size");
		return;
	}
	/* Non-root callers see their own sessions only, whatever they asked. */
	if (c->uid != 0)
		uid = c->uid;
	for (struct held *h = d->first; h; h = h->next)
		count += visible(h, uid);
	rep = conn_reply_make(d, c, q->hdr.seq, size, 0, NULL);
	rep.count = count;
	conn_send(d, c, &rep, size, NULL, 0);
	for (struct held *h = d->first; h && !c->dead; h = h->next) {
		struct luo_agent_session_info info = { 0 };

		if (!visible(h, uid))
			continue;
		luo_wire_header_init(&info.hdr, isize, LUO_AGENT_OP_INFO, q->hdr.seq);
		info.uid = h->uid;
		info.flags = h->flags;
		info.n_fds = h->n_fds;
		info.owner_pid = h->owner ? h->owner->pid : 0;
		info.bytes = h->bytes;
		info.deposited_s = h->deposited_s;
		info.updated_s = h->updated_s;
		info.generation = h->generation;
		memcpy(info.name, h->name, sizeof(info.name));
		conn_send(d, c, &info, isize, NULL, 0);
	}
}

static void op_drop(struct luod *d, struct conn *c, const struct luo_agent_request *q)
{
	struct held *h;
	uint32_t uid;
	int r;

	r = target_uid(c, q->uid, false, &uid);
	if (r == 0 && luo_wire_name(q->name, sizeof(q->name)) < 0)
		r = -EINVAL;
	if (r == 0) {
		h = table_find(d, uid, q->name);
		if (h)
			table_drop(d, h);
		else
			r = -ENOENT;
	}
	conn_reply(d, c, q->hdr.seq, q->reply_size, r,
		   r == 0 ? NULL : r == -EPERM ? "not your uid" : r == -ENOENT ? "no such session" : "bad uid or name");
}

static void op_detach(struct luod *d, struct conn *c, const struct luo_agent_request *q)
{
	for (struct held *h = d->first; h; h = h->next)
		if (h->owner == c)
			h->owner = NULL;
	conn_reply(d, c, q->hdr.seq, q->reply_size, 0, NULL);
}

static void op_status(struct luod *d, struct conn *c, const struct luo_agent_request *q)
{
	size_t size = conn_reply_size(q->reply_size);
	size_t isize = luo_wire_out_size(q->info_size, sizeof(struct luo_agent_status), LUO_AGENT_STATUS_SIZE_VER0);
	struct uid_usage *u = table_usage(d, c->uid, false);
	struct luo_agent_status st = { 0 };
	struct luo_agent_reply rep;

	if (isize == 0) {
		conn_reply(d, c, q->hdr.seq, q->reply_size, -EINVAL, "info_size below the status struct's first version");
		return;
	}
	rep = conn_reply_make(d, c, q->hdr.seq, size, 0, NULL);
	rep.count = 1;
	conn_send(d, c, &rep, size, NULL, 0);
	luo_wire_header_init(&st.hdr, isize, LUO_AGENT_OP_INFO, q->hdr.seq);
	st.pid = getpid();
	st.connections = d->n_conns;
	st.lu_number = d->lu_number;
	st.started_s = d->started_s;
	st.sessions = d->n_sessions;
	st.fds = d->n_fds;
	st.bytes = d->n_bytes;
	st.own_sessions = u ? u->sessions : 0;
	st.own_fds = u ? u->fds : 0;
	st.own_bytes = u ? u->bytes : 0;
	st.max_sessions = d->lim.max_sessions;
	st.max_fds = d->lim.max_fds;
	st.max_bytes = d->lim.max_bytes;
	conn_send(d, c, &st, isize, NULL, 0);
}

static void op_update(struct luod *d, struct conn *c, const struct luo_agent_request *q)
{
	int r;

	if (c->uid != 0 && c->uid != d->euid) {
		luod_log("pid %d uid %u: UPDATE refused: not root nor luod's uid", c->pid, c->uid);
		conn_reply(d, c, q->hdr.seq, q->reply_size, -EPERM, "only root or luod's uid may update luod");
		return;
	}
	r = conn_update_request(d, c, q->hdr.seq, q->reply_size);
	if (r < 0)
		conn_reply(d, c, q->hdr.seq, q->reply_size, r, "an update is already under way");
}

static void request_message(struct luod *d, struct conn *c, const void *buf, size_t len, int *fds, size_t n_fds)
{
	struct luo_agent_request q;
	struct luo_agent_header hdr = { 0 };
	int r;

	if (len < sizeof(hdr)) {
		luod_close_fds(fds, n_fds);
		c->cur_op = 0; /* nothing to echo */
		conn_refuse(d, c, 0, -EBADMSG, "message shorter than its header");
		return;
	}
	memcpy(&hdr, buf, sizeof(hdr));
	c->cur_op = c->depositing ? LUO_AGENT_OP_DEPOSIT : hdr.op;
	if (hdr.version != LUO_AGENT_PROTO_VERSION) {
		luod_close_fds(fds, n_fds);
		conn_refuse(d, c, hdr.seq, -EPROTONOSUPPORT, "protocol version not supported");
		return;
	}
	if (c->depositing) {
		if (hdr.op != LUO_AGENT_OP_FDS) {
			luod_close_fds(fds, n_fds);
			conn_refuse(d, c, hdr.seq, -EBADMSG, "a DEPOSIT's fds expected");
			return;
		}
		op_fds(d, c, buf, len, fds, n_fds);
		return;
	}
	if (hdr.op < LUO_AGENT_OP_DEPOSIT || hdr.op > LUO_AGENT_OP_UPDATE) {
		luod_close_fds(fds, n_fds);
		if (n_fds || hdr.op == LUO_AGENT_OP_FDS || hdr.size != len || len > LUO_AGENT_MSG_MAX)
			conn_refuse(d, c, hdr.seq, -EBADMSG,
				    hdr.op == LUO_AGENT_OP_FDS ? "OP_FDS with no DEPOSIT under way" : "malformed message");
		else
			conn_reply(d, c, hdr.seq, LUO_AGENT_REPLY_SIZE_VER0, -EOPNOTSUPP, "unknown op");
		return;
	}
	r = luo_wire_header(buf, len, LUO_AGENT_REQUEST_SIZE_VER0, hdr.op, &hdr);
	if (r < 0) {
		luod_close_fds(fds, n_fds);
		conn_refuse(d, c, hdr.seq, r, "size field is not the bytes received, or out of bounds");
		return;
	}
	r = luo_wire_struct_in(&q, sizeof(q), buf, len);
	if (r < 0) {
		luod_close_fds(fds, n_fds);
		if (hdr.op == LUO_AGENT_OP_DEPOSIT && n_fds)
			conn_refuse(d, c, hdr.seq, r, "unknown non-zero trailing bytes (a DEPOSIT: closed)");
		else
			conn_reply(d, c, hdr.seq, LUO_AGENT_REPLY_SIZE_VER0, r, "unknown non-zero trailing bytes");
		return;
	}
	if (hdr.op != LUO_AGENT_OP_DEPOSIT && n_fds) {
		luod_close_fds(fds, n_fds);
		conn_refuse(d, c, hdr.seq, -EBADMSG, "fds not announced");
		return;
	}
	if (q.reserved != 0 || (hdr.op != LUO_AGENT_OP_DEPOSIT && (q.flags != 0 || q.n_fds != 0)) ||
	    q.reply_size < LUO_AGENT_REPLY_SIZE_VER0) {
		if (hdr.op == LUO_AGENT_OP_DEPOSIT) {
			luod_close_fds(fds, n_fds);
			conn_refuse(d, c, hdr.seq, -EINVAL, "reserved, flags, n_fds or reply_size invalid");
		} else {
			conn_reply(d, c, hdr.seq, q.reply_size, -EINVAL, "reserved, flags, n_fds or reply_size invalid");
		}
		return;
	}
	switch (hdr.op) {
	case LUO_AGENT_OP_DEPOSIT:
		op_deposit(d, c, &q, fds, n_fds);
		break;
	case LUO_AGENT_OP_RETRIEVE:
		op_retrieve(d, c, &q);
		break;
	case LUO_AGENT_OP_LIST:
		op_list(d, c, &q);
		break;
	case LUO_AGENT_OP_DROP:
		op_drop(d, c, &q);
		break;
	case LUO_AGENT_OP_DETACH:
		op_detach(d, c, &q);
		break;
	case LUO_AGENT_OP_STATUS:
		op_status(d, c, &q);
		break;
	case LUO_AGENT_OP_UPDATE:
		op_update(d, c, &q);
		break;
	}
}

/* Read requests while the connection can take them. */
static void request_read(struct luod *d, struct conn *c, bool force)
{
	/* A received message, and room to see that one is larger than allowed. */
	static unsigned char buf[LUO_AGENT_MSG_MAX + 1];
	int fds[LUO_AGENT_FDS_PER_MSG];

	while (!c->dead && !c->outq && (force || !d->update_wanted || c->depositing)) {
		size_t n_fds = 0;
		ssize_t n = luo_wire_recv(c->fd, buf, sizeof(buf), fds, LUO_AGENT_FDS_PER_MSG, &n_fds);

		if (n == -EAGAIN)
			return;
		if (n == 0) {
			conn_kill(c, CONN_CLOSE_PEER);
			return;
		}
		if (n == -EBADMSG) {
			c->cur_op = 0; /* not read: nothing to echo */
			conn_refuse(d, c, 0, -EBADMSG, "truncated message, or more fds than a message may carry");
			return;
		}
		if (n < 0) {
			conn_kill(c, CONN_CLOSE_PEER);
			return;
		}
		if ((size_t)n > LUO_AGENT_MSG_MAX) {
			luod_close_fds(fds, n_fds);
			c->cur_op = 0;
			conn_refuse(d, c, 0, -EBADMSG, "message larger than LUO_AGENT_MSG_MAX");
			return;
		}
		request_message(d, c, buf, (size_t)n, fds, n_fds);
	}
}

void request_event(struct luod *d, struct conn *c, uint32_t events)
{
	if (events & EPOLLOUT)
		conn_flush(c);
	/*
	 * A peer that hung up during an update's drain is read to its end
	 * now (a DETACH may be waiting there), else epoll would report the
	 * hang-up again and again.
	 */
	if (!c->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		request_read(d, c, (events & (EPOLLHUP | EPOLLERR)) != 0);
	/* EPOLLHUP with a reply queued: the peer cannot read it any more. */
	if (!c->dead && c->outq && (events & (EPOLLHUP | EPOLLERR)))
		conn_kill(c, CONN_CLOSE_PEER);
	if (c->dead) {
		conn_close(d, c, c->dead_why);
		return;
	}
	conn_arm(d, c);
}
