/* SPDX-License-Identifier: MIT */
/*
 * DOC: conn.c, one client connection: accepted, replied to, closed
 *
 * Lifecycle: accepted (nonblocking, close-on-exec, owner from SO_PEERCRED
 * once), then a loop of request (request.c) -> reply (here). Requests are
 * read only while the connection has no reply queued (conn_arm()), so a
 * slow reader holds at most one reply's worth of memory.
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
 * Failure paths: a connection whose socket fails, or that broke the
 * protocol (request.c), is marked dead (conn_kill()) and closed at the end
 * of its event. Closing a connection applies the
 * crash semantics: its sessions deposited without KEEP_ON_CRASH are
 * dropped -- unless luod itself closed it (CONN_CLOSE_AGENT: a self-update
 * could not wait for it), in which case they are kept, detached.
 *
 * Layer: called by main.c, request.c and handover.c; calls table.c and
 * base.c, never back (a self-update asked for is state in struct luod that
 * the loop hands to handover.c).
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
#include "conn.h"
#include "luod.h"
#include "table.h"
#include "wire.h"

bool conn_busy(const struct conn *c)
{
	return c->depositing || c->outq;
}

/* Which events we want: no reading while a reply is queued. */
void conn_arm(struct luod *d, struct conn *c)
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

void conn_kill(struct conn *c, enum conn_close_why why)
{
	if (!c->dead) {
		c->dead = true;
		c->dead_why = why;
	}
}

/* The deposit under way no longer reserves its fds against its owner's limit. */
void conn_deposit_unreserve(struct luod *d, struct conn *c)
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
void conn_send(struct luod *d, struct conn *c, const void *msg, size_t len, const int *fds, size_t n_fds)
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

void conn_flush(struct conn *c)
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
struct luo_agent_reply conn_reply_make(struct luod *d, const struct conn *c, uint32_t seq, size_t size, int error,
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
size_t conn_reply_size(uint32_t theirs)
{
	size_t n = luo_wire_out_size(theirs, sizeof(struct luo_agent_reply), LUO_AGENT_REPLY_SIZE_VER0);

	return n ? n : LUO_AGENT_REPLY_SIZE_VER0;
}

void conn_reply(struct luod *d, struct conn *c, uint32_t seq, uint32_t reply_size, int error, const char *reason)
{
	size_t size = conn_reply_size(reply_size);
	struct luo_agent_reply rep = conn_reply_make(d, c, seq, size, error, reason);

	conn_send(d, c, &rep, size, NULL, 0);
}

/* Refuse a message that breaks the framing: reply if possible, then close. */
void conn_refuse(struct luod *d, struct conn *c, uint32_t seq, int error, const char *why)
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
		conn_deposit_unreserve(d, c);
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

/*
 * Whether a RETRIEVE of @n fds may go out on @c. Reply fds a client has
 * not taken are held for it -- duplicates in luod's fd table while
 * queued, references charged to luod's user once in its socket -- so they
 * count against its uid's max-fds (what it has in flight, apart from what
 * it holds: it may retrieve every session it holds once before reading)
 * and, for all uids together, against the held-fds budget. -EDQUOT or
 * -ENFILE: the client reads what it was sent, then asks again.
 */
int conn_retrieve_admit(struct luod *d, struct conn *c, uint64_t n)
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
	if (d->inflight_fds + n > luod_held_fds_limit(d, c->uid)) {
		for (struct conn *o = d->conns; o; o = o->next)
			inflight_refresh(d, o);
		if (d->inflight_fds + n > luod_held_fds_limit(d, c->uid))
			return -ENFILE;
	}
	return 0;
}

/*
 * Ask for a self-update: from now on only deposits under way are read
 * (conn_arm()); the loop's handover_poll() runs it once the connections are
 * idle or the drain timed out. -EBUSY if one is wanted already.
 */
int conn_update_request(struct luod *d, struct conn *requester, uint32_t seq, uint32_t reply_size)
{
	if (d->update_wanted)
		return -EBUSY;
	d->update_wanted = true;
	d->update_conn = requester;
	d->update_seq = seq;
	d->update_reply_size = reply_size;
	d->update_deadline_ms = luod_now_ms() + LUOD_UPDATE_DRAIN_MS;
	if (requester)
		luod_log("pid %d uid %u: self-update asked", requester->pid, requester->uid);
	conn_resume_all(d); /* idle connections stop being read */
	return 0;
}
