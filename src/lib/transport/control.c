/* SPDX-License-Identifier: MIT */
/*
 * DOC: the control socket, live updates asked from outside (luoctl update --pid)
 *
 * The listening socket is bound once per process: at every exec handover
 * (asked from here or not) and rollback it crosses the exec like a
 * preserved fd (LUO_HANDOVER_CONTROL_LISTEN_FD), so the address is never
 * free, connections waiting in its backlog are served by the next image,
 * and the next luo_control_listen() only takes it back -- no bind in the
 * blackout. The new image checks it before taking it: a listening AF_UNIX
 * SOCK_SEQPACKET socket bound to this pid's address, else it is ignored.
 *
 * Lifecycle of one request, across images of the same process:
 *
 *   old image   luo_control_listen()     bind "\0luo-control.<pid>", listen
 *               luo_control_dispatch()   accept; the peer is checked first
 *                                        (below), then one UPDATE is read;
 *                                        luo_update_quiesced() with the
 *                                        program's own argv, which runs the
 *                                        program's quiesce callback
 *                                        (luo_control_set_quiesce()) once
 *                                        a first negotiation passed
 *     refused:  answered at once (error, reason, then the negotiation
 *               report, one message per entry); the connection is closed,
 *               the service keeps serving
 *     switched: update.c clears close-on-exec on the connection just before
 *               execve() and names it, with the request's seq, in
 *               LUO_HANDOVER_CONTROL_FD="<fd>:<seq>" (control_exec_env());
 *               close-on-exec is restored if execve() fails
 *   new image   luo_open()               control_adopt(): the variables
 *                                        are read and removed; the listener
 *                                        and the connection are taken only if
 *                                        they are what they should be (both
 *                                        bound to this pid's address) and a
 *                                        handover came with them;
 *                                        close-on-exec again
 *               luo_control_listen()     takes the listener back
 *               luo_ready()              control_ready(): error 0 and
 *                                        the timings; or, in an image that
 *                                        came back by rollback, -EUCLEAN and
 *                                        the reason; or the refused
 *                                        handover's error (fresh start)
 *   rollback    core.c rollback() passes the connection on to the old image
 *               the same way (control_exec_env()), which answers it
 *               from its luo_ready()
 *   luo_close() closes the listening socket; a connection still waiting
 *               for its answer gets -ECONNABORTED and the reason, if any
 *
 * The peer, before anything else: SO_PEERCRED's uid must be ours or root
 * (else closed unanswered), and the peer must be a process that could
 * ptrace(2) this one (peer.c: CAP_SYS_PTRACE, or the same real ids, this
 * process dumpable and no capability of ours it lacks) -- a live update
 * runs a binary of the requester's choice with all this process holds, so
 * it is allowed to whoever could already take it over, no one else; else
 * it is answered -EPERM. The peer is named by a pidfd (SO_PEERPIDFD, or
 * pidfd_open() of its pid on kernels before 6.5), so that its credentials
 * are read from that process and not from a successor holding its pid.
 * Nothing is quiesced and the request is not read before that.
 *
 * Failure paths: a request that breaks agent.h's rules is answered with
 * the error (-EBADMSG, -EPROTONOSUPPORT, -EOPNOTSUPP, -E2BIG, -EINVAL) and
 * the connection closed; nothing else happens. A peer that sends nothing,
 * or does not read its answer, is dropped: all peers together cost one
 * luo_control_dispatch() call at most LUO_CONTROL_PEER_BUDGET_MS of waiting
 * (core/control-serve.c serves the requests this file reads). The answer
 * from the new image is written at the *_SIZE_VER0 sizes, which every
 * requester reads: the sizes the requester asked for stayed in the old
 * image. Only the abstract address is used: no file, nothing to clean up
 * after a crash; it is per network namespace.
 */

#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "transport.h"

/* Connections waiting to be accepted. */
#define CONTROL_BACKLOG 8
/*
 * A new image binds the address only if the old one's socket did not come
 * with the exec (the old image never listened, or the variable was lost).
 * Should the old socket still exist -- the mm reaper (update.c) holds a
 * copy of every fd until its close_range(), microseconds after the exec --
 * retry, only in an image that came by exec, with waits from 10 us
 * doubling up to 1 ms, 100 ms in all.
 */
#define CONTROL_BIND_WAIT_MIN_NS 10000
#define CONTROL_BIND_WAIT_STEP_MAX_NS (1000 * 1000)
#define CONTROL_BIND_WAIT_MAX_NS (100 * 1000 * 1000)
/* Random names tried when the first address is taken (a clash is 2^-64). */
#define CONTROL_NONCE_TRIES_MAX 4

/*
 * "LUO_HANDOVER_CONTROL_FD=<fd>:<seq>", and the seq the answer echoes: the
 * request's, which the new image knows only from there. Process-wide, as
 * one struct luo is open at a time; guarded by its lock.
 */
/* The control socket of one struct luo (its transport slot); under its lock. */
struct control_state {
	int fd;       /* listening; -1 none */
	int reply_fd; /* the requester to answer from luo_ready(); -1 none */
	int (*quiesce)(void *userdata); /* luo_control_set_quiesce() */
	void (*resume)(void *userdata);
	void *userdata;
};

static struct control_state *control_of(const struct luo *luo)
{
	return luo->transport[LUO_TRANSPORT_CONTROL];
}

static char control_entry[sizeof(LUO_ABI_CONTROL_FD_ENV) + 32];
static char listen_entry[sizeof(LUO_ABI_CONTROL_LISTEN_FD_ENV) + 16];
static uint32_t control_seq;

/* Whether @got is this process's control address: the first one, or one with a nonce. */
static bool is_control_name(const struct sockaddr_un *got, socklen_t got_len)
{
	struct sockaddr_un want;
	socklen_t want_len;

	if (luo_control_socket_address(getpid(), &want, &want_len) < 0)
		return false;
	if (got_len == want_len && memcmp(got, &want, want_len) == 0)
		return true;
	/* "<pid>." and 16 lowercase hex digits, the name control_bind_nonce() takes */
	if (got_len != want_len + 17 || memcmp(got, &want, want_len) != 0 || got->sun_path[want_len - 2] != '.')
		return false;
	for (socklen_t i = want_len - 1; i < got_len - 2; i++) {
		char c = got->sun_path[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return true;
}

/*
 * Someone else holds "\0luo-control.<pid>" (any process may bind any
 * abstract name): listen on "<pid>.<random nonce>" instead, a name no one
 * can take first; luoctl finds it among this process's own sockets
 * (agent.h). Returns the listening @fd, or a negative errno (@fd closed).
 */
static int control_bind_nonce(int fd)
{
	_cleanup_close_ int owned = fd;
	struct sockaddr_un sa;
	socklen_t len;
	uint64_t nonce;
	int r;

	for (int tries = 0; tries < CONTROL_NONCE_TRIES_MAX; tries++) {
		if (getrandom(&nonce, sizeof(nonce), 0) != sizeof(nonce))
			return -EADDRINUSE;
		r = luo_control_socket_address_nonce(getpid(), nonce, &sa, &len);
		if (r < 0)
			return r;
		if (bind(owned, (struct sockaddr *)&sa, len) == 0) {
			if (listen(owned, CONTROL_BACKLOG) < 0)
				return -errno;
			return TAKE_FD(owned);
		}
		if (errno != EADDRINUSE)
			return -errno;
	}
	return -EADDRINUSE;
}

static int control_socket(bool after_exec)
{
	long wait_ns = CONTROL_BIND_WAIT_MIN_NS, waited_ns = 0;
	_cleanup_close_ int fd = -1;
	struct sockaddr_un sa;
	socklen_t len;
	int r;

	r = luo_control_socket_address(getpid(), &sa, &len);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	for (;;) {
		struct timespec wait = { .tv_nsec = wait_ns };

		if (bind(fd, (struct sockaddr *)&sa, len) == 0)
			break;
		if (errno != EADDRINUSE)
			return -errno;
		if (!after_exec || waited_ns >= CONTROL_BIND_WAIT_MAX_NS)
			return control_bind_nonce(TAKE_FD(fd));
		nanosleep(&wait, NULL);
		waited_ns += wait_ns;
		wait_ns = wait_ns * 2 > CONTROL_BIND_WAIT_STEP_MAX_NS ? CONTROL_BIND_WAIT_STEP_MAX_NS : wait_ns * 2;
	}
	if (listen(fd, CONTROL_BACKLOG) < 0)
		return -errno;
	return TAKE_FD(fd);
}

int luo_control_listen(struct luo *luo, int *ret_fd)
{
	int fd;

	if (luo_in_callback())
		return -EDEADLK; /* a component callback: the lock is held (luo.h) */
	if (!luo || !ret_fd)
		return -EINVAL;
	pthread_mutex_lock(&luo->lock);
	if (control_of(luo)->fd < 0) {
		fd = control_socket(luo->incoming || luo->rollback_error != 0);
		if (fd < 0) {
			pthread_mutex_unlock(&luo->lock);
			return fd;
		}
		control_of(luo)->fd = fd;
	}
	*ret_fd = control_of(luo)->fd;
	pthread_mutex_unlock(&luo->lock);
	return 0;
}

static void set_timeouts_ms(int fd, long ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	/* Best effort: without them a peer can only stall its own answer longer. */
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void set_timeouts(int fd)
{
	set_timeouts_ms(fd, LUO_CONTROL_PEER_BUDGET_MS);
}

/* What is left of the peers' budget ending at @deadline (ns), at least 1 ms. */
static long budget_left_ms(uint64_t deadline)
{
	uint64_t now = luo_now_ns();

	return now >= deadline ? 1 : (long)((deadline - now) / 1000000) + 1;
}

/*
 * Whether @fd's peer may ask for an update (the DOC): 0, or -EPERM
 * (answer it), or another error (close it unanswered).
 */
static int peer_check(int fd)
{
	_cleanup_close_ int pidfd = -1;
	struct ucred cred;
	socklen_t cred_len = sizeof(cred);
	bool exact;
	int r;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) < 0 || cred_len != sizeof(cred))
		return -errno ? -errno : -EIO;
	if (cred.uid != geteuid() && cred.uid != 0)
		return -EACCES; /* not ours to command: closed, unanswered */
	pidfd = luo_peer_pidfd(fd, cred.pid, &exact);
	if (pidfd < 0)
		return pidfd;
	r = luo_peer_may_ptrace(pidfd, cred.pid);
	return r == -EPERM ? -EPERM : r < 0 ? -ESRCH : 0;
}

/* The reply; @reason is made one line. */
int luo_control_send_reply(int fd, size_t size, uint32_t seq, int error, uint32_t count, uint64_t lu_number,
		      const char *reason)
{
	struct luo_agent_reply reply;

	memset(&reply, 0, sizeof(reply));
	luo_wire_header_init(&reply.hdr, size, LUO_CONTROL_OP_UPDATE, seq);
	reply.error = error;
	reply.count = count;
	reply.lu_number = lu_number;
	snprintf(reply.reason, sizeof(reply.reason), "%s", reason ? reason : "");
	luo_reason_one_line(reply.reason);
	return luo_wire_send(fd, &reply, size, NULL, 0);
}

/* Check one UPDATE request (agent.h's rules). Return: 0, or the error to answer. */
static int request_check(const void *buf, size_t len, struct luo_control_update *req)
{
	struct luo_agent_header hdr;
	int r;

	memset(req, 0, sizeof(*req));
	r = luo_wire_header(buf, len, sizeof(hdr), 0, &hdr);
	if (len >= sizeof(hdr))
		req->hdr = hdr; /* the seq to echo, even in a refusal */
	if (r < 0)
		return r;
	if (hdr.op != LUO_CONTROL_OP_UPDATE)
		return -EOPNOTSUPP;
	if (len < LUO_CONTROL_UPDATE_SIZE_VER0)
		return -EBADMSG;
	r = luo_wire_struct_in(req, sizeof(*req), buf, len);
	if (r < 0)
		return r;
	if ((req->flags & ~LUO_CONTROL_UPDATE_STRICT) != 0 || req->reserved != 0)
		return -EINVAL;
	if (req->reply_size < LUO_AGENT_REPLY_SIZE_VER0 || req->info_size < LUO_CONTROL_REPORT_SIZE_VER0)
		return -EINVAL;
	if (luo_wire_name(req->path, sizeof(req->path)) < 0 || req->path[0] != '/')
		return -EINVAL;
	return 0;
}

int luo_control_listen_fd(struct luo *luo)
{
	int fd;

	pthread_mutex_lock(&luo->lock);
	fd = control_of(luo)->fd;
	pthread_mutex_unlock(&luo->lock);
	return fd;
}

void luo_control_timeouts(int fd, uint64_t deadline)
{
	set_timeouts_ms(fd, budget_left_ms(deadline));
}

/* The peer checked, then one request read and checked; what cannot be served is answered here. */
int luo_control_receive(struct luo *luo, int fd, uint64_t deadline, struct luo_control_update *ret_req)
{
	union {
		struct luo_control_update req;
		char buf[LUO_AGENT_MSG_MAX];
	} in;
	struct luo_control_update req;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int fds[1];
	size_t n_fds;
	ssize_t n;
	int allowed, r;

	allowed = peer_check(fd);
	if (allowed < 0 && allowed != -EPERM)
		return allowed;
	/* The accepted socket is blocking: wait for the request within the budget only. */
	do
		r = poll(&p, 1, (int)budget_left_ms(deadline) - 1);
	while (r < 0 && errno == EINTR && luo_now_ns() < deadline);
	if (r <= 0)
		return -ETIMEDOUT; /* nothing said in time */
	set_timeouts_ms(fd, budget_left_ms(deadline));
	n = luo_wire_recv(fd, in.buf, sizeof(in.buf), fds, 0, &n_fds);
	if (n == 0 || n == -EAGAIN || n == -EINTR)
		return -ECONNRESET; /* gone, or nothing said in time */
	r = n < 0 ? (int)n : request_check(in.buf, (size_t)n, &req);
	if (r == 0 && allowed == -EPERM) {
		/* Read first: a close with the request unread would reset the peer before it reads this. */
		luo_control_send_reply(fd, LUO_AGENT_REPLY_SIZE_VER0, req.hdr.seq, -EPERM, 0, luo->lu_number,
				       "the requester could not ptrace this service: it may not update it");
		return -EPERM;
	}
	if (r < 0) {
		/* A request we cannot read gets the smallest reply every requester reads. */
		luo_control_send_reply(fd, LUO_AGENT_REPLY_SIZE_VER0, n < 0 ? 0 : req.hdr.seq, r, 0, luo->lu_number,
				       strerror(-r));
		return r;
	}
	*ret_req = req;
	return 0;
}

int luo_control_begin(struct luo *luo, int fd, uint32_t seq, bool *ret_quiesced)
{
	struct control_state *c = control_of(luo);
	int r = 0;

	*ret_quiesced = false;
	pthread_mutex_lock(&luo->lock);
	if (c->reply_fd >= 0) {
		r = -EBUSY; /* the answer of the last update is not given yet */
	} else {
		c->reply_fd = fd;
		control_seq = seq;
	}
	pthread_mutex_unlock(&luo->lock);
	if (r == 0 && c->quiesce) {
		r = c->quiesce(c->userdata);
		*ret_quiesced = r >= 0;
		if (r > 0)
			r = 0;
		if (r < 0) {
			pthread_mutex_lock(&luo->lock);
			c->reply_fd = -1;
			pthread_mutex_unlock(&luo->lock);
		}
	}
	return r;
}

void luo_control_end(struct luo *luo, bool quiesced)
{
	struct control_state *c = control_of(luo);

	pthread_mutex_lock(&luo->lock);
	c->reply_fd = -1;
	pthread_mutex_unlock(&luo->lock);
	if (quiesced && c->resume)
		c->resume(c->userdata);
}

int luo_control_set_quiesce(struct luo *luo, int (*quiesce)(void *userdata), void (*resume)(void *userdata),
			    void *userdata)
{
	if (luo_in_callback())
		return -EDEADLK; /* a component's or handler's callback: the lock is held (luo.h) */
	if (!luo || !quiesce != !resume)
		return -EINVAL;
	pthread_mutex_lock(&luo->lock);
	control_of(luo)->quiesce = quiesce;
	control_of(luo)->resume = resume;
	control_of(luo)->userdata = userdata;
	pthread_mutex_unlock(&luo->lock);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Across the exec: the hooks the core walks (transport.h)                   */

static void control_exec_env(struct luo *luo, char **envp)
{
	struct control_state *c = control_of(luo);
	size_t k = 0;

	while (envp[k])
		k++;
	/* The caller left two free slots, then NULL. */
	if (c->fd >= 0 && luo_set_cloexec(c->fd, false) == 0) {
		snprintf(listen_entry, sizeof(listen_entry), "%s=%d", LUO_ABI_CONTROL_LISTEN_FD_ENV, c->fd);
		envp[k++] = listen_entry;
	}
	/* Else closed by the exec: the next image binds again, or the requester sees the end, not a lie. */
	if (c->reply_fd >= 0 && luo_set_cloexec(c->reply_fd, false) == 0) {
		snprintf(control_entry, sizeof(control_entry), "%s=%d:%u", LUO_ABI_CONTROL_FD_ENV,
			 c->reply_fd, control_seq);
		envp[k++] = control_entry;
	}
}

static void control_exec_undo(struct luo *luo)
{
	struct control_state *c = control_of(luo);

	if (c->fd >= 0)
		luo_set_cloexec(c->fd, true);
	if (c->reply_fd >= 0)
		luo_set_cloexec(c->reply_fd, true);
}

/* Whether @fd is our control socket: listening, AF_UNIX SOCK_SEQPACKET, this pid's address. */
static bool is_our_listener(int fd)
{
	struct sockaddr_un got;
	socklen_t got_len = sizeof(got);
	int v = 0;
	socklen_t len = sizeof(v);
	struct stat st;

	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return false;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) < 0 || v != AF_UNIX)
		return false;
	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) < 0 || v != SOCK_SEQPACKET)
		return false;
	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0 || v != 1)
		return false;
	if (getsockname(fd, (struct sockaddr *)&got, &got_len) < 0)
		return false;
	return is_control_name(&got, got_len);
}

/*
 * Whether @fd is a connection accepted on our control socket: an AF_UNIX
 * socket's accepted end carries its listener's address, so a stray fd
 * named in the environment (a pipe, a socketpair, a connection to
 * something else) is never written to nor closed.
 */
static bool is_our_connection(int fd)
{
	struct sockaddr_un got;
	socklen_t got_len = sizeof(got);
	int v = 0;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0 || v != 0)
		return false;
	if (getsockname(fd, (struct sockaddr *)&got, &got_len) < 0)
		return false;
	return is_control_name(&got, got_len);
}

/* LUO_HANDOVER_CONTROL_LISTEN_FD: read, removed; taken if it is our listener. */
static void adopt_listener(struct luo *luo, bool with_handover)
{
	const char *v = luo_getenv(LUO_ABI_CONTROL_LISTEN_FD_ENV);
	uint64_t n;
	int r;

	if (!v)
		return;
	r = luo_parse_u64(v, LUO_ABI_FD_NUMBER_MAX, &n);
	unsetenv(LUO_ABI_CONTROL_LISTEN_FD_ENV);
	if (r < 0 || n < LUO_FD_MIN || !with_handover || !is_our_listener((int)n))
		return;
	if (luo_set_cloexec((int)n, true) < 0 || fcntl((int)n, F_SETFL, fcntl((int)n, F_GETFL) | O_NONBLOCK) < 0)
		return;
	control_of(luo)->fd = (int)n;
}

static int control_adopt(struct luo *luo, const struct luo_adopt_args *args)
{
	const char *v = luo_getenv(LUO_ABI_CONTROL_FD_ENV);
	bool with_handover = luo_getenv(LUO_HANDOVER_FD_ENV) != NULL;
	int type = 0, domain = 0;
	socklen_t len = sizeof(int);
	const char *rest;
	struct stat st;
	uint64_t n, seq;
	int r;

	(void)args;
	adopt_listener(luo, with_handover);
	if (!v)
		return 0;
	/* "<fd>:<seq>", both decimal, nothing else. */
	r = luo_parse_u64_colon(v, LUO_ABI_FD_NUMBER_MAX, &n, &rest);
	if (r == 0)
		r = luo_parse_u64(rest, UINT32_MAX, &seq);
	unsetenv(LUO_ABI_CONTROL_FD_ENV);
	/* A stray number must not make us write to, or close, another fd. */
	if (r < 0 || n < LUO_FD_MIN || !with_handover)
		return 0;
	if (fstat((int)n, &st) < 0 || !S_ISSOCK(st.st_mode))
		return 0;
	if (getsockopt((int)n, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_SEQPACKET)
		return 0;
	len = sizeof(int);
	if (getsockopt((int)n, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 || domain != AF_UNIX)
		return 0;
	if (!is_our_connection((int)n))
		return 0;
	if (luo_set_cloexec((int)n, true) < 0)
		return 0;
	control_of(luo)->reply_fd = (int)n;
	control_seq = (uint32_t)seq;
	return 0;
}

/* luo_ready(): the requester of the update that brought this image gets its answer. */
static void control_ready(struct luo *luo, int timings_error, const struct luo_timings *t)
{
	_cleanup_close_ int fd = -1;
	struct luo_control_done done;
	char reason[LUO_AGENT_REASON_SIZE];
	uint32_t seq;
	int r;

	pthread_mutex_lock(&luo->lock);
	fd = TAKE_FD(control_of(luo)->reply_fd);
	seq = control_seq;
	pthread_mutex_unlock(&luo->lock);
	if (fd < 0)
		return;
	set_timeouts(fd);
	r = luo->rollback_error;
	if (r < 0) {
		luo_reasonf(reason, sizeof(reason), "the new image failed: %s (%s)", luo->rollback_reason, strerror(-r));
		luo_control_send_reply(fd, LUO_AGENT_REPLY_SIZE_VER0, seq, -EUCLEAN, 0, luo->lu_number, reason);
		return;
	}
	r = luo->incoming_error;
	if (r < 0) {
		luo_reasonf(reason, sizeof(reason), "the new image refused the handover and started fresh: %s",
			    luo->incoming_reason);
		luo_control_send_reply(fd, LUO_AGENT_REPLY_SIZE_VER0, seq, r, 0, luo->lu_number, reason);
		return;
	}
	r = timings_error;
	if (r < 0) {
		luo_control_send_reply(fd, LUO_AGENT_REPLY_SIZE_VER0, seq, r, 0, luo->lu_number, "no timings in the new image");
		return;
	}
	if (luo_control_send_reply(fd, LUO_AGENT_REPLY_SIZE_VER0, seq, 0, 1, luo->lu_number, "") < 0)
		return;
	memset(&done, 0, sizeof(done));
	luo_wire_header_init(&done.hdr, LUO_CONTROL_DONE_SIZE_VER0, LUO_CONTROL_OP_DONE, seq);
	done.pid = (int32_t)getpid();
	done.lu_number = luo->lu_number;
	done.freeze_ns = t->freeze_ns;
	done.serialize_ns = t->serialize_ns;
	done.exec_ns = t->exec_ns;
	done.restore_ns = t->restore_ns;
	done.ready_ns = t->ready_ns;
	done.blackout_ns = t->blackout_ns;
	luo_wire_send(fd, &done, LUO_CONTROL_DONE_SIZE_VER0, NULL, 0);
}

static void control_close(struct luo *luo)
{
	struct control_state *c = control_of(luo);

	c->fd = safe_close(c->fd);
	if (c->reply_fd >= 0) {
		char reason[LUO_AGENT_REASON_SIZE];

		luo_reasonf(reason, sizeof(reason), "libluo was closed before luo_ready()%s%s",
			 luo->incoming_reason[0] ? ": " : "", luo->incoming_reason);
		set_timeouts(c->reply_fd);
		luo_control_send_reply(c->reply_fd, LUO_AGENT_REPLY_SIZE_VER0, control_seq, -ECONNABORTED, 0, luo->lu_number,
			   reason);
		c->reply_fd = safe_close(c->reply_fd);
	}
}

static void control_init(struct luo *luo)
{
	struct control_state *c = control_of(luo);

	c->fd = -1;
	c->reply_fd = -1;
}

const struct luo_transport_ops luo_transport_control = {
	.name = "control",
	.state_size = sizeof(struct control_state),
	.init = control_init,
	.adopt = control_adopt, /* before the handover: a rollback passes it on */
	.ready = control_ready,
	.exec_env = control_exec_env,
	.exec_undo = control_exec_undo,
	.close = control_close,
};
