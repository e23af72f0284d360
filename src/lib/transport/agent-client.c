/* SPDX-License-Identifier: MIT */
/*
 * DOC: agent-client.c, libluo's side of luod (include/luo/agent.h)
 *
 * Lifecycle of the connection (struct agent_state's fd, one per struct luo):
 *
 *   luo_open(LUO_OPEN_AGENT)  agent_open(): socket path from
 *                             $LUO_AGENT_SOCKET or agent.h's defaults;
 *                             SOCK_SEQPACKET | SOCK_CLOEXEC, send and
 *                             receive timeouts (AGENT_IO_TIMEOUT_MS) so that
 *                             a stuck agent cannot hang the service; the
 *                             listener must be root or this uid
 *                             (SO_PEERCRED: our fds go nowhere else); a
 *                             STATUS exchange checks that it answers and
 *                             speaks our protocol version. Not finding it is
 *                             no error: the state's error says why.
 *   luo_session_deposit()     freeze the session's files (all-or-nothing,
 *                             reverse unfreeze), save the components if
 *                             asked, build a blob of this session alone,
 *                             seal it in a memfd, send DEPOSIT with the
 *                             blob and the files' fds (in blob order, in
 *                             batches of LUO_AGENT_FDS_PER_MSG), unfreeze,
 *                             read the reply.
 *   luo_session_retrieve()    (core.c, when the exec handover has no
 *                             session of that name) RETRIEVE: every fd
 *                             received and counted, the blob parsed as
 *                             hostile input, each file adopted with the
 *                             exec handover's checks (handover.c), components
 *                             loaded once per process (handover.c's loader).
 *   luo_update()              DETACH just before execve(): what was
 *                             deposited is held until dropped.
 *   luo_close()               DETACH, close.
 *
 * Failure paths. Every call that finds no connection but was asked for one
 * (LUO_OPEN_AGENT) tries to connect again first, so a service started
 * before luod, or one whose agent restarted, gets there eventually. A
 * failure of the connection itself (timeout, reset, a message that breaks
 * the protocol) leaves the stream out of step: the connection is closed,
 * the state's error and reason say why, and the call returns
 * -ETIMEDOUT, -ECONNRESET or -EBADMSG. An error the agent answers leaves
 * the connection as it is; its reason goes to the state's reason. A refused
 * retrieve closes every fd it received, leaves no session behind and no
 * component marked loaded, and takes nothing from the agent.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "transport.h"

/* The longest a send or a receive waits for the agent. */
#define AGENT_IO_TIMEOUT_MS 5000
/*
 * ... inside the blackout: the DETACH just before execve(), and the new
 * image's connect and STATUS in luo_open() of an incoming handover. A
 * stopped or stuck luod costs the blackout this much per step, not
 * AGENT_IO_TIMEOUT_MS. Past it: the DETACH is left queued on the socket
 * (luod reads it when it runs again, before the end of the connection);
 * luo_open() goes on without the agent (luo_agent_error() -ETIMEDOUT) and
 * the next agent call connects again, with the usual timeout.
 */
#define AGENT_BLACKOUT_TIMEOUT_MS 100
#define DEPOSIT_FLAGS_ALL (LUO_DEPOSIT_KEEP_ON_CRASH | LUO_DEPOSIT_COMPONENTS)

_Static_assert(LUO_AGENT_NAME_SIZE == LUO_SESSION_NAME_MAX + 1, "agent.h: session names");
_Static_assert(LUO_AGENT_SESSION_FDS_MAX == LUO_SESSION_FILES_MAX + 1, "agent.h: a session's fds");
_Static_assert(LUO_AGENT_REASON_SIZE <= LUO_REASON_MAX, "agent.h: reasons");
_Static_assert((unsigned int)LUO_DEPOSIT_KEEP_ON_CRASH == LUO_AGENT_DEPOSIT_KEEP_ON_CRASH, "deposit flags");

/* The connection to luod, one per struct luo (its transport slot). */
struct agent_state {
	int fd;                 /* -1 none */
	int error;              /* why there is none; -ENOTCONN: not asked for */
	char reason[LUO_REASON_MAX];
	uint32_t seq;
	uint16_t op;            /* of the request under way: its reply echoes it */
	bool components_loaded; /* a retrieved deposit's components were loaded */
};

static struct agent_state *agent_of(const struct luo *luo)
{
	return luo->transport[LUO_TRANSPORT_AGENT];
}

static void agent_reasonf(struct luo *luo, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void agent_reasonf(struct luo *luo, const char *fmt, ...)
{
	struct agent_state *a = agent_of(luo);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->reason, sizeof(a->reason), fmt, ap);
	va_end(ap);
}

/* The connection cannot be trusted any more: close it, remember why. */
static int agent_broken(struct luo *luo, int error, const char *what)
{
	struct agent_state *a = agent_of(luo);

	a->fd = safe_close(a->fd);
	a->error = error;
	agent_reasonf(luo, "agent connection closed: %s: %s", what, strerror(-error));
	return error;
}

/* A socket error as the caller sees it: the agent went away, or took too long. */
static int io_error(int r)
{
	if (r == -EAGAIN || r == -EWOULDBLOCK)
		return -ETIMEDOUT;
	if (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN || r == 0)
		return -ECONNRESET;
	return r;
}

static int agent_path(struct luo *luo, struct sockaddr_un *sa, socklen_t *ret_len)
{
	int r = luo_agent_socket_address(geteuid(), sa, ret_len);

	if (r == -ENOENT)
		agent_reasonf(luo, "no agent socket: neither %s nor XDG_RUNTIME_DIR is set", LUO_AGENT_SOCKET_ENV);
	else if (r < 0)
		agent_reasonf(luo, "agent socket path longer than %zu bytes", sizeof(sa->sun_path) - 1);
	return r;
}

static int agent_send(struct luo *luo, uint16_t op, uint32_t flags, uint32_t n_fds, const char *name,
		      const int *fds, size_t n_first)
{
	struct agent_state *a = agent_of(luo);
	struct luo_agent_request req = {
		.flags = flags,
		.n_fds = n_fds,
		.uid = LUO_AGENT_UID_SELF,
		.reply_size = sizeof(struct luo_agent_reply),
		.info_size = sizeof(struct luo_agent_status),
	};

	luo_wire_header_init(&req.hdr, sizeof(req), op, ++a->seq);
	a->op = op;
	if (name)
		memcpy(req.name, name, strlen(name)); /* checked: <= LUO_SESSION_NAME_MAX */
	return luo_wire_send(a->fd, &req, sizeof(req), fds, n_first);
}

/*
 * Receive one message of the current request: @op (0: its reply, which
 * echoes the request's op), at least @ver0 bytes, into @out (@ours bytes,
 * zero-extended), with up to @max_fds fds. On error the connection is closed.
 */
static int agent_recv(struct luo *luo, uint16_t op, size_t ver0, void *out, size_t ours, int *fds, size_t max_fds,
		      size_t *ret_n_fds)
{
	struct agent_state *a = agent_of(luo);
	union {
		struct luo_agent_header h;
		unsigned char b[LUO_AGENT_MSG_MAX];
	} buf;
	struct luo_agent_header h;
	size_t n_fds = 0;
	ssize_t n;
	int r;

	n = luo_wire_recv(a->fd, buf.b, sizeof(buf.b), fds, max_fds, &n_fds);
	if (n <= 0)
		return agent_broken(luo, io_error((int)n), "receive");
	r = luo_wire_header(buf.b, (size_t)n, ver0, op ? op : a->op, &h);
	if (r == 0 && h.seq != a->seq)
		r = -EBADMSG;
	if (r == 0)
		r = luo_wire_struct_in(out, ours, buf.b, (size_t)n);
	if (r < 0) {
		luo_wire_close_fds(fds, n_fds);
		return agent_broken(luo, r == -EPROTONOSUPPORT ? r : -EBADMSG, "malformed message from the agent");
	}
	if (ret_n_fds)
		*ret_n_fds = n_fds;
	else if (n_fds > 0) {
		luo_wire_close_fds(fds, n_fds);
		return agent_broken(luo, -EBADMSG, "unexpected fds from the agent");
	}
	return 0;
}

/* The reply to a request that brings no fds; its error, or the connection's. */
static int agent_reply(struct luo *luo, struct luo_agent_reply *rep)
{
	int r = agent_recv(luo, 0, LUO_AGENT_REPLY_SIZE_VER0, rep, sizeof(*rep), NULL, 0, NULL);

	if (r < 0)
		return r;
	if (rep->error > 0 || rep->error < -4095)
		return agent_broken(luo, -EBADMSG, "reply error is not an errno");
	if (rep->error < 0) {
		rep->reason[sizeof(rep->reason) - 1] = '\0';
		agent_reasonf(luo, "agent: %s (%s)", rep->reason[0] ? rep->reason : "refused", strerror(-rep->error));
	}
	return rep->error;
}

static void agent_timeouts(int fd, int ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int agent_connect(struct luo *luo, int timeout_ms)
{
	struct agent_state *a = agent_of(luo);
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	struct luo_agent_reply rep;
	struct luo_agent_status st;
	struct sockaddr_un sa;
	struct ucred cred;
	socklen_t len, clen = sizeof(cred);
	_cleanup_close_ int fd = -1;
	int r;

	r = agent_path(luo, &sa, &len);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd >= 0 && fd < LUO_FD_MIN) { /* libluo's own fds are never stdio's numbers */
		int moved = fcntl(fd, F_DUPFD_CLOEXEC, LUO_FD_MIN);

		safe_close(fd);
		fd = moved;
	}
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		r = -errno;
		agent_reasonf(luo, "agent socket: %s", strerror(-r));
		return r;
	}
	if (connect(fd, (struct sockaddr *)&sa, len) < 0) {
		r = errno == EAGAIN ? -ETIMEDOUT : -errno;
		agent_reasonf(luo, "connect to %s: %s", sa.sun_path, strerror(-r));
		return r;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
		r = -errno;
		agent_reasonf(luo, "%s: SO_PEERCRED: %s", sa.sun_path, strerror(-r));
		return r;
	}
	if (cred.uid != 0 && cred.uid != geteuid()) {
		agent_reasonf(luo, "%s is served by uid %u, neither root nor ours", sa.sun_path, (unsigned int)cred.uid);
		return -EACCES;
	}
	a->fd = TAKE_FD(fd);
	/* It answers, and in our version: STATUS, whose info is not needed. */
	r = agent_send(luo, LUO_AGENT_OP_STATUS, 0, 0, NULL, NULL, 0);
	if (r < 0)
		return agent_broken(luo, io_error(r), "STATUS");
	r = agent_reply(luo, &rep);
	if (r == 0 && rep.count != 1)
		r = agent_broken(luo, -EBADMSG, "STATUS reply without its info");
	if (r == 0)
		r = agent_recv(luo, LUO_AGENT_OP_INFO, LUO_AGENT_STATUS_SIZE_VER0, &st, sizeof(st), NULL, 0, NULL);
	if (r < 0) {
		a->fd = safe_close(a->fd);
		return r;
	}
	agent_timeouts(a->fd, AGENT_IO_TIMEOUT_MS);
	a->error = 0;
	a->reason[0] = '\0';
	return 0;
}

static void agent_open(struct luo *luo, bool wanted)
{
	struct agent_state *a = agent_of(luo);

	a->fd = -1;
	if (!wanted) {
		a->error = -ENOTCONN;
		snprintf(a->reason, sizeof(a->reason), "luo_open() without LUO_OPEN_AGENT");
		return;
	}
	/* An incoming handover: luo_open() runs inside the blackout. */
	a->error = agent_connect(luo, luo->incoming ? AGENT_BLACKOUT_TIMEOUT_MS : AGENT_IO_TIMEOUT_MS);
	if (a->error == -ENOTCONN)
		a->error = -ECONNRESET; /* -ENOTCONN means "not asked for" */
}

/* Connected, or connect again if LUO_OPEN_AGENT asked for it: 0 or -ENOTCONN. */
static int agent_ensure(struct luo *luo)
{
	struct agent_state *a = agent_of(luo);

	if (a->fd >= 0)
		return 0;
	if (a->error == -ENOTCONN)
		return -ENOTCONN;
	agent_open(luo, true);
	return a->error < 0 ? -ENOTCONN : 0;
}

/* Waits for the reply: luod reads what a connection sent before its end, but need not. */
static void agent_detach(struct luo *luo, int timeout_ms)
{
	struct agent_state *a = agent_of(luo);
	struct luo_agent_reply rep;
	int r;

	if (a->fd < 0)
		return;
	agent_timeouts(a->fd, timeout_ms);
	r = agent_send(luo, LUO_AGENT_OP_DETACH, 0, 0, NULL, NULL, 0);
	if (r < 0)
		agent_broken(luo, io_error(r), "DETACH");
	else
		agent_reply(luo, &rep);
}

static void agent_detach_locked(struct luo *luo)
{
	struct agent_state *a = agent_of(luo);

	agent_detach(luo, AGENT_BLACKOUT_TIMEOUT_MS); /* just before execve(): the blackout runs */
	if (a->fd >= 0)
		agent_timeouts(a->fd, AGENT_IO_TIMEOUT_MS); /* should the exec fail */
}

static void agent_close(struct luo *luo)
{
	struct agent_state *a = agent_of(luo);

	agent_detach(luo, AGENT_IO_TIMEOUT_MS);
	a->fd = safe_close(a->fd);
}

int luo_agent_error(const struct luo *cluo, const char **ret_reason)
{
	struct luo *luo = (struct luo *)cluo; /* the lock only guards reading */
	int r;

	if (luo_in_callback())
		return -EDEADLK; /* a component callback: the lock is held (luo.h) */
	if (!luo)
		return -EINVAL;
	pthread_mutex_lock(&luo->lock);
	r = agent_of(luo)->fd >= 0 ? 0 : agent_of(luo)->error;
	if (ret_reason)
		*ret_reason = agent_of(luo)->reason;
	pthread_mutex_unlock(&luo->lock);
	return r;
}

/* ------------------------------------------------------------------------ */
/* Deposit                                                                   */

struct deposit_components {
	struct luo_component_out outs[LUO_COMPONENTS_MAX];
	size_t n;
};

static void deposit_components_free(struct deposit_components *dc)
{
	for (size_t i = 0; i < dc->n; i++)
		free(dc->outs[i].payload.buf);
}

/* Every registered component saves its payload at its write_max. Lock held. */
static int deposit_components_save(struct deposit_components *dc)
{
	const struct luo_component *comps[LUO_COMPONENTS_MAX];
	size_t n = luo_components_list(comps, ARRAY_SIZE(comps));

	for (size_t i = 0; i < n; i++) {
		if (!comps[i])
			continue; /* unloaded since luo_open() */
		dc->outs[dc->n].component = comps[i];
		/* Declared state goes as properties: the retriever is this program, it reads its own fields. */
		dc->outs[dc->n].fields = luo_fields_of(comps[i]);
		dc->outs[dc->n++].version = comps[i]->write_max;
	}
	return luo_components_save(dc->outs, dc->n);
}

/* The blob of @s alone, sealed in a memfd. Files frozen by the caller. */
static int deposit_blob(struct luo *luo, const struct luo_session *s, const struct deposit_components *dc)
{
	static char *const unknown_argv[] = { "?", NULL };
	char self_path[PATH_MAX] = "";
	uint8_t build_id[LUO_ABI_BUILD_ID_MAX];
	_cleanup_free_ char *argv_buf = NULL;
	_cleanup_free_ char **argv = NULL;
	_cleanup_free_ void *blob = NULL;
	struct luo_blob_header hdr = {
		/* As for the next image (the reader wants >= 1); a retrieve does not use it. */
		.lu_number = luo->lu_number + 1,
		.components = dc->outs,
		.n_components = dc->n,
		.producer_path = self_path,
		.build_id = build_id,
		.only = s,
	};
	size_t len;
	int r;

	/* Who deposited: for people (luoctl); a retrieve never rolls back. */
	if (luo_self_path(self_path, sizeof(self_path)) < 0)
		self_path[0] = '\0';
	luo_self_build_id(build_id, sizeof(build_id), &hdr.build_id_len);
	hdr.argv = luo_self_argv(&argv_buf, &argv) == 0 ? argv : unknown_argv;
	hdr.freeze_ns = hdr.serialize_ns = luo_now_ns();
	r = luo_blob_build(luo, &hdr, &blob, &len);
	if (r < 0)
		return r;
	return luo_blob_to_memfd("luo-deposit", blob, len);
}

/* DEPOSIT, the blob and @s's fds in blob order; files frozen by the caller. */
static int deposit_send(struct luo *luo, const struct luo_session *s, int blob_fd, unsigned int flags)
{
	struct agent_state *a = agent_of(luo);
	uint32_t n_fds = (uint32_t)(1 + s->n_files);
	int batch[LUO_AGENT_FDS_PER_MSG];
	size_t sent = 0;
	int r = 0;

	while (sent < n_fds && r == 0) {
		size_t k = 0;

		for (; k < LUO_AGENT_FDS_PER_MSG && sent + k < n_fds; k++)
			batch[k] = sent + k == 0 ? blob_fd : s->files[sent + k - 1]->fd;
		if (sent == 0) {
			uint32_t wire_flags = flags & LUO_DEPOSIT_KEEP_ON_CRASH ? LUO_AGENT_DEPOSIT_KEEP_ON_CRASH : 0;

			r = agent_send(luo, LUO_AGENT_OP_DEPOSIT, wire_flags, n_fds, s->name, batch, k);
		} else {
			struct luo_agent_fds m = { .n_fds = (uint32_t)k };

			luo_wire_header_init(&m.hdr, sizeof(m), LUO_AGENT_OP_FDS, a->seq);
			r = luo_wire_send(a->fd, &m, sizeof(m), batch, k);
		}
		LUO_FAULT_POINT("deposit-send");
		sent += k;
	}
	if (r < 0)
		return agent_broken(luo, io_error(r), "DEPOSIT");
	return 0;
}

static int deposit_locked(struct luo *luo, struct luo_session *s, unsigned int flags)
{
	_cleanup_(deposit_components_free) struct deposit_components dc = { .n = 0 };
	struct luo_agent_reply rep;
	_cleanup_close_ int blob_fd = -1;
	int r;

	r = agent_ensure(luo);
	if (r < 0)
		return r;
	r = luo_session_freeze_locked(s);
	if (r < 0)
		return r;
	if (flags & LUO_DEPOSIT_COMPONENTS)
		r = deposit_components_save(&dc);
	if (r == 0) {
		blob_fd = deposit_blob(luo, s, &dc);
		r = blob_fd < 0 ? blob_fd : 0;
	}
	if (r == 0)
		r = deposit_send(luo, s, blob_fd, flags);
	/* The agent holds its own references now: the files serve again. */
	luo_session_unfreeze_locked(s);
	if (r < 0)
		return r;
	LUO_FAULT_POINT("deposit-unreplied");
	return agent_reply(luo, &rep);
}

int luo_session_deposit(struct luo_session *session, unsigned int flags)
{
	struct luo *luo;
	int r;

	if (luo_in_callback())
		return -EDEADLK; /* a component callback: the lock is held (luo.h) */
	if (!session || (flags & ~(unsigned int)DEPOSIT_FLAGS_ALL))
		return -EINVAL;
	luo = session->luo;
	pthread_mutex_lock(&luo->lock);
	r = session->incoming ? -EINVAL : deposit_locked(luo, session, flags);
	pthread_mutex_unlock(&luo->lock);
	if (r == 0)
		LUO_FAULT_POINT("after-deposit");
	return r;
}

int luo_session_withdraw(struct luo *luo, const char *name)
{
	struct luo_agent_reply rep;
	int r;

	if (luo_in_callback())
		return -EDEADLK; /* a component callback: the lock is held (luo.h) */
	if (!luo || !luo_name_valid(name, LUO_SESSION_NAME_MAX))
		return -EINVAL;
	pthread_mutex_lock(&luo->lock);
	r = agent_ensure(luo);
	if (r == 0) {
		r = agent_send(luo, LUO_AGENT_OP_DROP, 0, 0, name, NULL, 0);
		if (r < 0)
			r = agent_broken(luo, io_error(r), "DROP");
		else
			r = agent_reply(luo, &rep);
	}
	pthread_mutex_unlock(&luo->lock);
	return r;
}

/* ------------------------------------------------------------------------ */
/* Retrieve                                                                  */

struct received {
	int *fds;
	size_t n; /* received so far; all owned until adopted (then -1) */
};

static void received_free(struct received *rc)
{
	if (rc->fds)
		luo_wire_close_fds(rc->fds, rc->n);
	free(rc->fds);
}

/* RETRIEVE @name: the reply, then every fd it announces. */
static int retrieve_fds(struct luo *luo, const char *name, struct received *rc)
{
	int batch[LUO_AGENT_FDS_PER_MSG];
	struct luo_agent_reply rep;
	size_t got = 0;
	int r;

	r = agent_send(luo, LUO_AGENT_OP_RETRIEVE, 0, 0, name, NULL, 0);
	if (r < 0)
		return agent_broken(luo, io_error(r), "RETRIEVE");
	r = agent_recv(luo, 0, LUO_AGENT_REPLY_SIZE_VER0, &rep, sizeof(rep), batch, ARRAY_SIZE(batch), &got);
	if (r < 0)
		return r;
	if (rep.error > 0 || rep.error < -4095 || (rep.error < 0 && got > 0) ||
	    (rep.error == 0 && (rep.n_fds == 0 || rep.n_fds > LUO_AGENT_SESSION_FDS_MAX || got > rep.n_fds))) {
		luo_wire_close_fds(batch, got);
		return agent_broken(luo, -EBADMSG, "RETRIEVE reply out of bounds");
	}
	if (rep.error < 0) {
		rep.reason[sizeof(rep.reason) - 1] = '\0';
		agent_reasonf(luo, "agent: %s (%s)", rep.reason[0] ? rep.reason : "refused", strerror(-rep.error));
		return rep.error;
	}
	rc->fds = calloc(rep.n_fds, sizeof(*rc->fds));
	if (!rc->fds) {
		luo_wire_close_fds(batch, got);
		return agent_broken(luo, -ENOMEM, "RETRIEVE"); /* the fds still to come */
	}
	memcpy(rc->fds, batch, got * sizeof(int));
	rc->n = got;
	LUO_FAULT_POINT("retrieve");
	while (rc->n < rep.n_fds) {
		struct luo_agent_fds m;
		size_t left = rep.n_fds - rc->n;

		r = agent_recv(luo, LUO_AGENT_OP_FDS, LUO_AGENT_FDS_SIZE_VER0, &m, sizeof(m), rc->fds + rc->n,
			       left < LUO_AGENT_FDS_PER_MSG ? left : LUO_AGENT_FDS_PER_MSG, &got);
		if (r < 0)
			return r;
		rc->n += got; /* owned, whatever follows */
		if (got == 0 || m.n_fds != got)
			return agent_broken(luo, -EBADMSG, "RETRIEVE: an fds message that does not count its fds");
	}
	return 0;
}

/* Did the exec handover load (or drop, or fail) a component? Then it owns them. */
static bool components_touched(const struct luo *luo)
{
	for (size_t i = 0; i < LUO_COMPONENTS_MAX; i++)
		if (luo->component_status[i] != -ENODATA)
			return true;
	return false;
}

/* Check the received blob and adopt its one session; @s is linked last in @luo. */
static int retrieve_adopt(struct luo *luo, const char *name, struct received *rc, struct luo_session *s,
			  char *reason, size_t rlen)
{
	_cleanup_(luo_unmapp) struct luo_mapping map = { 0 };
	_cleanup_(luo_blob_freep) struct luo_blob *b = NULL;
	const struct luo_blob_session *bs;
	int r;

	r = luo_handover_map(rc->fds[0], &map.addr, &map.len, reason, rlen);
	if (r < 0) {
		luo_reasonf(reason, rlen, "session '%s': the agent's blob is not a sealed memfd of 1..%u bytes", name,
			    LUO_ABI_BLOB_MAX);
		return -EBADMSG;
	}
	r = luo_blob_parse(map.addr, map.len, &b, NULL, reason, rlen);
	if (r < 0)
		return r;
	if (b->n_sessions != 1 || strcmp(b->sessions[0].name, name) != 0) {
		if (b->n_sessions == 1)
			luo_reasonf(reason, rlen, "session '%s': the agent's blob holds session '%s'", name,
				    b->sessions[0].name);
		else
			luo_reasonf(reason, rlen, "session '%s': the agent's blob holds %zu sessions, not one", name,
				    b->n_sessions);
		return -EBADMSG;
	}
	bs = &b->sessions[0];
	if (rc->n != 1 + bs->n_files) {
		luo_reasonf(reason, rlen, "session '%s': %zu fds for %zu files", name, rc->n - 1, bs->n_files);
		return -EBADMSG;
	}
	for (size_t j = 0; j < bs->n_files; j++) {
		size_t before = s->n_files;

		r = luo_adopt_file(s, &bs->files[j], rc->fds[j + 1], rc->fds[0], reason, rlen);
		if (s->n_files > before && s->files[before]->fd == rc->fds[j + 1])
			rc->fds[j + 1] = -1; /* the file owns it now */
		if (r == -ENOENT)
			r = -EPROTO; /* a handler this build lacks; -ENOENT is "nothing deposited" */
		if (r < 0)
			return r;
	}
	if (b->n_components > 0 && !agent_of(luo)->components_loaded && !components_touched(luo)) {
		r = luo_load_components(luo, b, reason, rlen);
		if (r < 0) {
			luo_components_status_reset(luo); /* nothing counts as loaded */
			return r;
		}
		agent_of(luo)->components_loaded = true;
	}
	return 0;
}

static int agent_retrieve_locked(struct luo *luo, const char *name, struct luo_session **ret)
{
	_cleanup_(received_free) struct received rc = { 0 };
	char reason[LUO_REASON_MAX] = "";
	struct luo_session *s;
	int r;

	if (agent_of(luo)->error == -ENOTCONN)
		return -ENOENT; /* not asked for (LUO_OPEN_AGENT): not ours to look */
	if (agent_ensure(luo) < 0)
		return -ENOENT; /* no agent: nothing deposited that we can see */
	r = retrieve_fds(luo, name, &rc);
	if (r < 0)
		return r;
	r = luo_session_new(luo, name, true, &s);
	if (r < 0)
		return r;
	r = retrieve_adopt(luo, name, &rc, s, reason, sizeof(reason));
	if (r < 0) {
		luo_session_drop_last_locked(luo, s); /* closes the fds of the files that passed */
		agent_reasonf(luo, "%s", reason);
		return r;
	}
	s->retrieved = true;
	*ret = s;
	return 0;
}

static void agent_init(struct luo *luo)
{
	agent_of(luo)->fd = -1;
}

static void agent_open_hook(struct luo *luo, unsigned int flags)
{
	agent_open(luo, flags & LUO_OPEN_AGENT); /* not finding it is no error: luo_agent_error() */
}

const struct luo_transport_ops luo_transport_agent = {
	.name = "agent",
	.state_size = sizeof(struct agent_state),
	.init = agent_init,
	.open = agent_open_hook,
	.detach = agent_detach_locked,
	.retrieve = agent_retrieve_locked,
	.close = agent_close, /* DETACH: a clean close keeps the deposits */
};
