/* SPDX-License-Identifier: MIT */
/*
 * DOC: conn.c, one client connection and the requests of include/luo/agent.h
 *
 * Lifecycle: accepted (nonblocking, close-on-exec, owner from SO_PEERCRED
 * once), then a loop of request -> reply. Requests are read only while the
 * connection has no reply queued, so they are answered in order, one at a
 * time, and a slow reader holds at most one reply's worth of memory.
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
 * Replies go out with the socket nonblocking. When the socket is full,
 * the rest of the reply is queued (the fds of a queued message are
 * duplicates the queue owns) and sent on EPOLLOUT; a reply larger than
 * LUOD_OUTQ_BYTES_MAX, or fds that cannot be duplicated, disconnect the
 * client instead.
 *
 * Reply fds a client has not taken yet (queued, or in its socket unread)
 * are charged to its uid (inflight_fds) until SIOCOUTQ shows the socket
 * empty; a RETRIEVE past the uid's max-fds of them is refused -EDQUOT.
 *
 * Failure paths, see agent.h: a message that breaks the framing (size
 * field wrong, truncated, oversized, fds not announced, too many fds, an
 * OP_FDS where none is expected, another protocol version) gets an error
 * reply if the socket takes it, its fds are closed, and the connection is
 * closed: the stream cannot be trusted. A well-framed request that is
 * refused (-EINVAL, -E2BIG, -EOPNOTSUPP, -EPERM, -ENOENT, -EDQUOT, ...) is
 * answered and the connection goes on. Closing a connection applies the
 * crash semantics: its sessions deposited without KEEP_ON_CRASH are
 * dropped -- unless luod itself closed it (CONN_CLOSE_AGENT: a self-update
 * could not wait for it), in which case they are kept, detached.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "luod.h"
#include "wire.h"

bool conn_busy(const struct conn *c)
{
	return c->depositing || c->outq;
}

/* Which events we want: no reading while a reply is queued. */
static void conn_arm(struct luod *d, struct conn *c)
{
	uint32_t ev = c->outq ? EPOLLOUT : EPOLLIN;

	/* During an update's drain only deposits under way are read. */
	if (!c->outq && d->update_wanted && !c->depositing)
		ev = 0;
	if (ev != c->events && luod_epoll_set(d, c->fd, c, ev, false) == 0)
		c->events = ev;
}

void conn_resume_all(struct luod *d)
{
	for (struct conn *c = d->conns; c; c = c->next)
		conn_arm(d, c);
}

static void outq_free(struct conn *c)
{
	while (c->outq) {
		struct outmsg *m = c->outq;

		c->outq = m->next;
		luod_close_fds(m->fds, m->n_fds);
		free(m);
	}
	c->outq_tail = &c->outq;
	c->outq_bytes = 0;
}

static void conn_kill(struct conn *c, enum conn_close_why why)
{
	if (!c->dead) {
		c->dead = true;
		c->dead_why = why;
	}
}

/* The deposit under way no longer reserves its fds against its owner's limit. */
static void deposit_unreserve(struct luod *d, struct conn *c)
{
	struct uid_usage *u = c->dep_reserved ? table_usage(d, c->uid, false) : NULL;

	if (u)
		u->pending_fds -= c->dep.n_fds;
	c->dep_reserved = false;
}

/* Charge @n reply fds to @c's uid until the client has taken them. */
static void inflight_charge(struct luod *d, struct conn *c, uint64_t n)
{
	struct uid_usage *u = table_usage(d, c->uid, false);

	c->inflight_fds += n;
	d->inflight_fds += n;
	if (u)
		u->inflight_fds += n;
}

static void inflight_release(struct luod *d, struct conn *c)
{
	struct uid_usage *u = table_usage(d, c->uid, false);

	if (u)
		u->inflight_fds -= c->inflight_fds;
	d->inflight_fds -= c->inflight_fds;
	c->inflight_fds = 0;
}

/*
 * Release @c's in-flight fds if the client took them all: nothing queued
 * in luod and nothing unread in the socket (SIOCOUTQ counts the bytes sent
 * that the peer has not read; a message's fds go with its first byte).
 */
static void inflight_refresh(struct luod *d, struct conn *c)
{
	int unread = 0;

	if (c->inflight_fds && !c->outq && ioctl(c->fd, SIOCOUTQ, &unread) == 0 && unread == 0)
		inflight_release(d, c);
}

/* Send one message, or queue it behind the ones waiting. */
static void conn_send(struct luod *d, struct conn *c, const void *msg, size_t len, const int *fds, size_t n_fds)
{
	struct outmsg *m;
	int r;

	if (c->dead)
		return;
	if (!c->outq) {
		r = luo_wire_send(c->fd, msg, len, fds, n_fds);
		if (r == 0) {
			inflight_charge(d, c, n_fds);
			return;
		}
		if (r != -EAGAIN) {
			conn_kill(c, CONN_CLOSE_PEER);
			return;
		}
	}
	if (c->outq_bytes + len > LUOD_OUTQ_BYTES_MAX) {
		luod_log("pid %d uid %u: reply of more than %u bytes not read, disconnected", c->pid, c->uid,
			 LUOD_OUTQ_BYTES_MAX);
		conn_kill(c, CONN_CLOSE_PROTOCOL);
		return;
	}
	m = malloc(sizeof(*m) + len);
	if (!m) {
		conn_kill(c, CONN_CLOSE_AGENT);
		return;
	}
	m->next = NULL;
	m->len = len;
	m->n_fds = 0;
	memcpy(m->buf, msg, len);
	for (size_t i = 0; i < n_fds; i++) {
		int fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);

		if (fd < 0) {
			luod_log("pid %d uid %u: cannot queue a reply's fds (%s), disconnected", c->pid, c->uid,
				 strerror(errno));
			luod_close_fds(m->fds, m->n_fds);
			free(m);
			conn_kill(c, CONN_CLOSE_AGENT);
			return;
		}
		m->fds[m->n_fds++] = fd;
	}
	inflight_charge(d, c, n_fds); /* the duplicates now, the client's copies once sent */
	if (!conn_busy(c))
		c->busy_since_ms = luod_now_ms();
	*c->outq_tail = m;
	c->outq_tail = &m->next;
	c->outq_bytes += len;
}

static void outq_flush(struct conn *c)
{
	while (c->outq && !c->dead) {
		struct outmsg *m = c->outq;
		int r = luo_wire_send(c->fd, m->buf, m->len, m->fds, m->n_fds);

		if (r == -EAGAIN)
			return;
		if (r < 0) {
			conn_kill(c, CONN_CLOSE_PEER);
			return;
		}
		c->outq = m->next;
		if (!c->outq)
			c->outq_tail = &c->outq;
		c->outq_bytes -= m->len;
		luod_close_fds(m->fds, m->n_fds);
		free(m);
	}
}

/* A reply echoes the request's op and seq. */
static struct luo_agent_reply reply_make(struct luod *d, const struct conn *c, uint32_t seq, size_t size, int error,
					 const char *reason)
{
	struct luo_agent_reply rep = { 0 };

	luo_wire_header_init(&rep.hdr, size, c->cur_op, seq);
	rep.error = error;
	rep.lu_number = d->lu_number;
	if (reason)
		snprintf(rep.reason, sizeof(rep.reason), "%s", reason);
	return rep;
}

/* The reply's size: min(theirs, ours), VER0 when they gave less (then the error says why). */
static size_t reply_size_of(uint32_t theirs)
{
	size_t n = luo_wire_out_size(theirs, sizeof(struct luo_agent_reply), LUO_AGENT_REPLY_SIZE_VER0);

	return n ? n : LUO_AGENT_REPLY_SIZE_VER0;
}

void conn_reply(struct luod *d, struct conn *c, uint32_t seq, uint32_t reply_size, int error, const char *reason)
{
	size_t size = reply_size_of(reply_size);
	struct luo_agent_reply rep = reply_make(d, c, seq, size, error, reason);

	conn_send(d, c, &rep, size, NULL, 0);
}

/* Refuse a message that breaks the framing: reply if possible, then close. */
static void conn_refuse(struct luod *d, struct conn *c, uint32_t seq, int error, const char *why)
{
	luod_log("pid %d uid %u: refused: %s (%s), connection closed", c->pid, c->uid, why, strerror(-error));
	conn_reply(d, c, seq, LUO_AGENT_REPLY_SIZE_VER0, error, why);
	conn_kill(c, CONN_CLOSE_PROTOCOL);
}

void conn_close(struct luod *d, struct conn *c, enum conn_close_why why)
{
	uint32_t dropped = 0, kept = 0;

	for (struct held *h = d->first, *next; h; h = next) {
		next = h->next;
		if (h->owner != c)
			continue;
		h->owner = NULL;
		if (why != CONN_CLOSE_AGENT && !(h->flags & LUO_AGENT_DEPOSIT_KEEP_ON_CRASH)) {
			table_drop(d, h);
			dropped++;
		} else {
			kept++;
		}
	}
	if (dropped || kept)
		luod_log("pid %d uid %u: connection closed without DETACH: %u session(s) dropped, %u kept", c->pid,
			 c->uid, dropped, kept);
	if (c->depositing) {
		if (c->dep_fds && !c->dep_err)
			luod_close_fds(c->dep_fds, c->dep_got);
		d->pending_fds -= c->dep.n_fds;
		deposit_unreserve(d, c);
	}
	free(c->dep_fds);
	outq_free(c);
	inflight_release(d, c);
	if (d->update_conn == c)
		d->update_conn = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else
		d->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	d->n_conns--;
	{
		struct uid_usage *u = table_usage(d, c->uid, false);

		if (u && u->conns > 0)
			u->conns--;
	}
	(void)epoll_ctl(d->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	safe_close(c->fd);
	free(c);
}

unsigned conn_expire(struct luod *d)
{
	uint64_t now = luod_now_ms();
	unsigned n = 0;

	for (struct conn *c = d->conns, *next; c; c = next) {
		next = c->next;
		if (!conn_busy(c) || now - c->busy_since_ms < LUOD_STALL_MS || c == d->update_conn)
			continue;
		luod_log("pid %d uid %u: %s for %u ms: disconnected (its sessions kept)", c->pid, c->uid,
			 c->depositing ? "a deposit stalled" : "replies unread", LUOD_STALL_MS);
		conn_close(d, c, CONN_CLOSE_AGENT);
		n++;
	}
	return n;
}

int conn_adopt(struct luod *d, int fd, struct conn **ret_conn)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct uid_usage *u;
	struct conn *c;
	int r, fl;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -errno;
	u = table_usage(d, cred.uid, true);
	if (!u)
		return -ENOMEM;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->kind = LUOD_SRC_CONN;
	c->fd = fd;
	c->uid = cred.uid;
	c->gid = cred.gid;
	c->pid = cred.pid;
	c->outq_tail = &c->outq;
	r = luod_epoll_set(d, fd, c, EPOLLIN, true);
	if (r < 0) {
		free(c);
		return r;
	}
	c->events = EPOLLIN;
	c->next = d->conns;
	if (d->conns)
		d->conns->prev = c;
	d->conns = c;
	d->n_conns++;
	u->conns++;
	*ret_conn = c;
	return 0;
}

/*
 * Whether a new connection of @uid is over its share (luod.h): root never
 * is; any other uid past LUOD_CONNECTIONS_PER_UID_MAX, or once only the
 * root reserve is left.
 */
static bool conn_over_share(struct luod *d, uint32_t uid)
{
	struct uid_usage *u;

	if (uid == 0)
		return false;
	if (d->n_conns + LUOD_CONNECTIONS_ROOT_RESERVE >= LUOD_CONNECTIONS_MAX)
		return true;
	u = table_usage(d, uid, false);
	return u && u->conns >= LUOD_CONNECTIONS_PER_UID_MAX;
}

int conn_accept(struct luod *d)
{
	for (;;) {
		struct conn *c;
		int fd, r;

		if (d->n_conns >= LUOD_CONNECTIONS_MAX) {
			/* Stop accepting: the rest waits in the backlog. main.c re-arms. */
			(void)luod_epoll_set(d, d->listen_fd, &d->listen_src, 0, false);
			luod_log("connection limit (%u) reached; new connections wait in the backlog",
				 LUOD_CONNECTIONS_MAX);
			return 0;
		}
		fd = accept4(d->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			int e = errno;

			if (e == EAGAIN || e == EINTR || e == ECONNABORTED)
				return 0;
			/*
			 * Out of fds or memory: the pending connection stays in the
			 * backlog and the listener stays readable, so epoll would wake
			 * us at once, forever. Stop listening for a while (main.c).
			 */
			(void)luod_epoll_set(d, d->listen_fd, &d->listen_src, 0, false);
			d->accept_paused_until_ms = luod_now_ms() + LUOD_ACCEPT_PAUSE_MS;
			luod_log("accept: %s; not accepting for %u ms", strerror(e), LUOD_ACCEPT_PAUSE_MS);
			return -e;
		}
		{
			struct ucred cred;
			socklen_t len = sizeof(cred);

			if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && conn_over_share(d, cred.uid)) {
				/* Closed unanswered: a log line per 1,000 (the uid floods). */
				if (d->conns_refused++ % 1000 == 0)
					luod_log("uid %u is over its share of connections (%u); closing its new ones "
						 "(%llu so far)", (unsigned)cred.uid, LUOD_CONNECTIONS_PER_UID_MAX,
						 (unsigned long long)d->conns_refused);
				safe_close(fd);
				continue;
			}
		}
		r = conn_adopt(d, fd, &c);
		if (r < 0) {
			luod_log("cannot take a connection: %s", strerror(-r));
			safe_close(fd);
		}
	}
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                  */

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
	deposit_unreserve(d, c);
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
		} else if (d->n_fds + d->pending_fds > d->held_fds_max) {
			deposit_fail(c, -ENFILE, "the agent holds as many fds as it can (held-fds limit)");
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

/*
 * Whether a RETRIEVE of @n fds may go out on @c. Reply fds a client has
 * not taken are held for it -- duplicates in luod's fd table while
 * queued, references charged to luod's user once in its socket -- so they
 * count against its uid's max-fds (what it has in flight, apart from what
 * it holds: it may retrieve every session it holds once before reading)
 * and, for all uids together, against the held-fds budget. -EDQUOT or
 * -ENFILE: the client reads what it was sent, then asks again.
 */
static int retrieve_admit(struct luod *d, struct conn *c, uint64_t n)
{
	struct uid_usage *u = table_usage(d, c->uid, false);

	for (struct conn *o = d->conns; o; o = o->next)
		if (o->uid == c->uid)
			inflight_refresh(d, o);
	if (u && u->inflight_fds + n > d->lim.max_fds) {
		/* A log line per 1,000 (a client that never reads asks again and again). */
		if (d->retrieves_refused++ % 1000 == 0)
			luod_log("pid %d uid %u: RETRIEVE of %llu fds refused: %llu fds of replies not read yet "
				 "(%llu refused so far)", c->pid, c->uid, (unsigned long long)n,
				 (unsigned long long)u->inflight_fds, (unsigned long long)d->retrieves_refused);
		return -EDQUOT;
	}
	if (d->inflight_fds + n > d->held_fds_max) {
		for (struct conn *o = d->conns; o; o = o->next)
			inflight_refresh(d, o);
		if (d->inflight_fds + n > d->held_fds_max)
			return -ENFILE;
	}
	return 0;
}

static void op_retrieve(struct luod *d, struct conn *c, const struct luo_agent_request *q)
{
	struct luo_agent_reply rep;
	struct held *h;
	uint32_t uid, sent;
	size_t size = reply_size_of(q->reply_size);
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
	r = retrieve_admit(d, c, h->n_fds);
	if (r < 0) {
		conn_reply(d, c, q->hdr.seq, q->reply_size, r,
			   r == -EDQUOT ? "max-fds: the fds of earlier replies are not read yet"
					: "the agent has as many reply fds in flight as it can hold");
		return;
	}
	rep = reply_make(d, c, q->hdr.seq, size, 0, NULL);
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
	size_t size = reply_size_of(q->reply_size);
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
	rep = reply_make(d, c, q->hdr.seq, size, 0, NULL);
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
	size_t size = reply_size_of(q->reply_size);
	size_t isize = luo_wire_out_size(q->info_size, sizeof(struct luo_agent_status), LUO_AGENT_STATUS_SIZE_VER0);
	struct uid_usage *u = table_usage(d, c->uid, false);
	struct luo_agent_status st = { 0 };
	struct luo_agent_reply rep;

	if (isize == 0) {
		conn_reply(d, c, q->hdr.seq, q->reply_size, -EINVAL, "info_size below the status struct's first version");
		return;
	}
	rep = reply_make(d, c, q->hdr.seq, size, 0, NULL);
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
	r = handover_request(d, c, q->hdr.seq, q->reply_size);
	if (r < 0)
		conn_reply(d, c, q->hdr.seq, q->reply_size, r, "an update is already under way");
}

static void conn_message(struct luod *d, struct conn *c, const void *buf, size_t len, int *fds, size_t n_fds)
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
static void conn_read(struct luod *d, struct conn *c, bool force)
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
		conn_message(d, c, buf, (size_t)n, fds, n_fds);
	}
}

void conn_event(struct luod *d, struct conn *c, uint32_t events)
{
	if (events & EPOLLOUT)
		outq_flush(c);
	/*
	 * A peer that hung up during an update's drain is read to its end
	 * now (a DETACH may be waiting there), else epoll would report the
	 * hang-up again and again.
	 */
	if (!c->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		conn_read(d, c, (events & (EPOLLHUP | EPOLLERR)) != 0);
	/* EPOLLHUP with a reply queued: the peer cannot read it any more. */
	if (!c->dead && c->outq && (events & (EPOLLHUP | EPOLLERR)))
		conn_kill(c, CONN_CLOSE_PEER);
	if (c->dead) {
		conn_close(d, c, c->dead_why);
		return;
	}
	conn_arm(d, c);
}
