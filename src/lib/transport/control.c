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
 *                                        the program's quiesce callback
 *                                        runs (luo_control_set_quiesce()),
 *                                        then luo_update() with the
 *                                        program's own argv
 *     refused:  answered at once (error, reason, then the negotiation
 *               report, one message per entry); the connection is closed,
 *               the service keeps serving
 *     switched: update.c clears close-on-exec on the connection just before
 *               execve() and names it, with the request's seq, in
 *               LUO_HANDOVER_CONTROL_FD="<fd>:<seq>" (luo_control_exec_env());
 *               close-on-exec is restored if execve() fails
 *   new image   luo_open()               luo_control_adopt(): the variables
 *                                        are read and removed; the listener
 *                                        and the connection are taken only if
 *                                        they are what they should be (both
 *                                        bound to this pid's address) and a
 *                                        handover came with them;
 *                                        close-on-exec again
 *               luo_control_listen()     takes the listener back
 *               luo_ready()              luo_control_answer(): error 0 and
 *                                        the timings; or, in an image that
 *                                        came back by rollback, -EUCLEAN and
 *                                        the reason; or the refused
 *                                        handover's error (fresh start)
 *   rollback    core.c rollback() passes the connection on to the old image
 *               the same way (luo_control_exec_env()), which answers it
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
 * luo_control_dispatch() call at most CONTROL_PEER_BUDGET_MS of waiting. The answer
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
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "luo-internal.h"
#include "wire.h"

/* Connections waiting to be accepted. */
#define CONTROL_BACKLOG 8
/* Connections one luo_control_dispatch() call serves: it never loops forever. */
#define CONTROL_ACCEPT_MAX 8
/*
 * What peers may cost one luo_control_dispatch() call, in all: the time
 * spent waiting for their requests and for them to take their answers.
 * The service's loop is not held longer, however many connect.
 */
#define CONTROL_PEER_BUDGET_MS 100
/* Report entries sent with a refusal (a negotiation has far fewer). */
#define CONTROL_REPORTS_MAX 256
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

/*
 * "LUO_HANDOVER_CONTROL_FD=<fd>:<seq>", and the seq the answer echoes: the
 * request's, which the new image knows only from there. Process-wide, as
 * one struct luo is open at a time; guarded by its lock.
 */
static char control_entry[sizeof(LUO_ABI_CONTROL_FD_ENV) + 32];
static char listen_entry[sizeof(LUO_ABI_CONTROL_LISTEN_FD_ENV) + 16];
static uint32_t control_seq;

static int control_address(struct sockaddr_un *sa, socklen_t *ret_len)
{
	int n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "%s%d", LUO_CONTROL_ADDRESS_PREFIX, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(sa->sun_path) - 1)
		return -ENAMETOOLONG;
	*ret_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
	return 0;
}

static int control_socket(bool after_exec)
{
	long wait_ns = CONTROL_BIND_WAIT_MIN_NS, waited_ns = 0;
	_cleanup_close_ int fd = -1;
	struct sockaddr_un sa;
	socklen_t len;
	int r;

	r = control_address(&sa, &len);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	for (;;) {
		struct timespec wait = { .tv_nsec = wait_ns };

		if (bind(fd, (struct sockaddr *)&sa, len) == 0)
			break;
		if (errno != EADDRINUSE || !after_exec || waited_ns >= CONTROL_BIND_WAIT_MAX_NS)
			return -errno;
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
	if (luo->control_fd < 0) {
		fd = control_socket(luo->incoming || luo->rollback_error != 0);
		if (fd < 0) {
			pthread_mutex_unlock(&luo->lock);
			return fd;
		}
		luo->control_fd = fd;
	}
	*ret_fd = luo->control_fd;
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
	set_timeouts_ms(fd, CONTROL_PEER_BUDGET_MS);
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
static int send_reply(int fd, size_t size, uint32_t seq, int error, uint32_t count, uint64_t lu_number,
		      const char *reason)
{
	struct luo_agent_reply reply;

	memset(&reply, 0, sizeof(reply));
	luo_wire_header_init(&reply.hdr, size, LUO_CONTROL_OP_UPDATE, seq);
	reply.error = error;
	reply.count = count;
	reply.lu_number = lu_number;
	snprintf(reply.reason, sizeof(reply.reason), "%s", reason ? reason : "");
	for (char *p = reply.reason; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	return luo_wire_send(fd, &reply, size, NULL, 0);
}

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

		/* The headline says the real cause of each refusal; the report says the rest. */
		luo_reasonf(reason, sizeof(reason), "refused at negotiation");
		for (size_t i = 0; i < n; i++) {
			static const char *const causes[] = {
				[LUO_CAUSE_NONE] = "refused",
				[LUO_CAUSE_NO_COMMON_VERSION] = "no common version",
				[LUO_CAUSE_TYPES_DIFFER] = "types differ",
				[LUO_CAUSE_NOT_DECLARED] = "not in the new image",
				[LUO_CAUSE_STRICT] = "strict: downgrade or unproven types",
			};
			uint32_t c = e[i].cause <= LUO_CAUSE_STRICT ? e[i].cause : LUO_CAUSE_NONE;

			len = strlen(reason);
			if (e[i].verdict != LUO_VERDICT_REFUSE || len + 1 >= sizeof(reason))
				continue;
			luo_reasonf(reason + len, sizeof(reason) - len, "%s %s (%s)", sep, e[i].name, causes[c]);
			sep = ",";
		}
	}
	if (n > CONTROL_REPORTS_MAX)
		n = CONTROL_REPORTS_MAX;
	if (send_reply(fd, reply_size, req->hdr.seq, error, (uint32_t)n, luo_liveupdate_number(luo), reason) < 0)
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
		for (char *p = rep.line; *p; p++)
			if ((unsigned char)*p < 0x20)
				*p = ' ';
		for (char *p = rep.full_line; *p; p++)
			if ((unsigned char)*p < 0x20)
				*p = ' ';
		if (luo_wire_send(fd, &rep, info_size, NULL, 0) < 0)
			return;
	}
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

/* One accepted connection; closed by the caller unless it crossed an exec. */
static void serve_connection(struct luo *luo, int fd, uint64_t deadline)
{
	union {
		struct luo_control_update req;
		char buf[LUO_AGENT_MSG_MAX];
	} in;
	struct luo_control_update req;
	_cleanup_free_ char *argv_buf = NULL;
	_cleanup_free_ char **argv = NULL;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	bool quiesced = false;
	int fds[1];
	size_t n_fds;
	ssize_t n;
	int allowed, r;

	allowed = peer_check(fd);
	if (allowed < 0 && allowed != -EPERM)
		return;
	/* The accepted socket is blocking: wait for the request within the budget only. */
	do
		r = poll(&p, 1, (int)budget_left_ms(deadline) - 1);
	while (r < 0 && errno == EINTR && luo_now_ns() < deadline);
	if (r <= 0)
		return; /* nothing said in time */
	set_timeouts_ms(fd, budget_left_ms(deadline));
	n = luo_wire_recv(fd, in.buf, sizeof(in.buf), fds, 0, &n_fds);
	if (n == 0 || n == -EAGAIN || n == -EINTR)
		return; /* gone, or nothing said in time */
	r = n < 0 ? (int)n : request_check(in.buf, (size_t)n, &req);
	if (r == 0 && allowed == -EPERM) {
		/* Read first: a close with the request unread would reset the peer before it reads this. */
		send_reply(fd, LUO_AGENT_REPLY_SIZE_VER0, req.hdr.seq, -EPERM, 0, luo_liveupdate_number(luo),
			   "the requester could not ptrace this service: it may not update it");
		return;
	}
	if (r < 0) {
		/* A request we cannot read gets the smallest reply every requester reads. */
		send_reply(fd, LUO_AGENT_REPLY_SIZE_VER0, n < 0 ? 0 : req.hdr.seq, r, 0, luo_liveupdate_number(luo),
			   strerror(-r));
		return;
	}
	r = luo_self_argv(&argv_buf, &argv);
	if (r == 0) {
		pthread_mutex_lock(&luo->lock);
		if (luo->control_reply_fd >= 0) {
			r = -EBUSY; /* the answer of the last update is not given yet */
		} else {
			luo->control_reply_fd = fd;
			control_seq = req.hdr.seq;
		}
		pthread_mutex_unlock(&luo->lock);
	}
	if (r == 0 && luo->control_quiesce) {
		r = luo->control_quiesce(luo->control_userdata);
		quiesced = r >= 0;
		if (r > 0)
			r = 0;
		if (r < 0) {
			pthread_mutex_lock(&luo->lock);
			luo->control_reply_fd = -1;
			pthread_mutex_unlock(&luo->lock);
		}
	}
	if (r < 0) {
		set_timeouts_ms(fd, budget_left_ms(deadline));
		send_reply(fd, LUO_AGENT_REPLY_SIZE_VER0, req.hdr.seq, r, 0, luo_liveupdate_number(luo), strerror(-r));
		return;
	}
	fflush(NULL); /* execve() would drop what stdio buffers */
	pthread_mutex_lock(&luo->lock);
	luo->strict_once = req.flags & LUO_CONTROL_UPDATE_STRICT;
	pthread_mutex_unlock(&luo->lock);
	r = luo_update(luo, req.path, argv, NULL);
	pthread_mutex_lock(&luo->lock);
	luo->strict_once = false;
	pthread_mutex_unlock(&luo->lock);
	/* Still here: refused or failed, everything as before. */
	pthread_mutex_lock(&luo->lock);
	luo->control_reply_fd = -1;
	pthread_mutex_unlock(&luo->lock);
	if (quiesced && luo->control_resume)
		luo->control_resume(luo->control_userdata);
	set_timeouts_ms(fd, budget_left_ms(deadline));
	answer_refusal(luo, fd, &req, r);
}

int luo_control_set_quiesce(struct luo *luo, int (*quiesce)(void *userdata), void (*resume)(void *userdata),
			    void *userdata)
{
	if (luo_in_callback())
		return -EDEADLK; /* a component's or handler's callback: the lock is held (luo.h) */
	if (!luo || !quiesce != !resume)
		return -EINVAL;
	pthread_mutex_lock(&luo->lock);
	luo->control_quiesce = quiesce;
	luo->control_resume = resume;
	luo->control_userdata = userdata;
	pthread_mutex_unlock(&luo->lock);
	return 0;
}

int luo_control_dispatch(struct luo *luo)
{
	uint64_t deadline = luo_now_ns() + (uint64_t)CONTROL_PEER_BUDGET_MS * 1000000;
	int lfd;

	if (luo_in_callback())
		return -EDEADLK; /* a component callback: the lock is held (luo.h) */
	if (!luo)
		return -EINVAL;
	pthread_mutex_lock(&luo->lock);
	lfd = luo->control_fd;
	pthread_mutex_unlock(&luo->lock);
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

/* ------------------------------------------------------------------------ */
/* Across the exec: update.c, core.c                                        */

void luo_control_exec_env(struct luo *luo, char **envp)
{
	size_t k = 0;

	while (envp[k])
		k++;
	/* The caller left two free slots, then NULL. */
	if (luo->control_fd >= 0 && luo_set_cloexec(luo->control_fd, false) == 0) {
		snprintf(listen_entry, sizeof(listen_entry), "%s=%d", LUO_ABI_CONTROL_LISTEN_FD_ENV, luo->control_fd);
		envp[k++] = listen_entry;
	}
	/* Else closed by the exec: the next image binds again, or the requester sees the end, not a lie. */
	if (luo->control_reply_fd >= 0 && luo_set_cloexec(luo->control_reply_fd, false) == 0) {
		snprintf(control_entry, sizeof(control_entry), "%s=%d:%u", LUO_ABI_CONTROL_FD_ENV,
			 luo->control_reply_fd, control_seq);
		envp[k++] = control_entry;
	}
}

void luo_control_exec_undo(struct luo *luo)
{
	if (luo->control_fd >= 0)
		luo_set_cloexec(luo->control_fd, true);
	if (luo->control_reply_fd >= 0)
		luo_set_cloexec(luo->control_reply_fd, true);
}

/* Whether @fd is our control socket: listening, AF_UNIX SOCK_SEQPACKET, this pid's address. */
static bool is_our_listener(int fd)
{
	struct sockaddr_un want, got;
	socklen_t want_len, got_len = sizeof(got);
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
	if (control_address(&want, &want_len) < 0 || getsockname(fd, (struct sockaddr *)&got, &got_len) < 0)
		return false;
	return got_len == want_len && memcmp(&got, &want, want_len) == 0;
}

/*
 * Whether @fd is a connection accepted on our control socket: an AF_UNIX
 * socket's accepted end carries its listener's address, so a stray fd
 * named in the environment (a pipe, a socketpair, a connection to
 * something else) is never written to nor closed.
 */
static bool is_our_connection(int fd)
{
	struct sockaddr_un want, got;
	socklen_t want_len, got_len = sizeof(got);
	int v = 0;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0 || v != 0)
		return false;
	if (control_address(&want, &want_len) < 0 || getsockname(fd, (struct sockaddr *)&got, &got_len) < 0)
		return false;
	return got_len == want_len && memcmp(&got, &want, want_len) == 0;
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
	luo->control_fd = (int)n;
}

void luo_control_adopt(struct luo *luo)
{
	const char *v = luo_getenv(LUO_ABI_CONTROL_FD_ENV);
	bool with_handover = luo_getenv(LUO_HANDOVER_FD_ENV) != NULL;
	int type = 0, domain = 0;
	socklen_t len = sizeof(int);
	char num[16];
	const char *colon;
	struct stat st;
	uint64_t n, seq;
	int r = -EINVAL;

	adopt_listener(luo, with_handover);
	if (!v)
		return;
	/* "<fd>:<seq>", both decimal, nothing else. */
	colon = strchr(v, ':');
	if (colon && (size_t)(colon - v) < sizeof(num)) {
		memcpy(num, v, (size_t)(colon - v));
		num[colon - v] = '\0';
		r = luo_parse_u64(num, LUO_ABI_FD_NUMBER_MAX, &n);
		if (r == 0)
			r = luo_parse_u64(colon + 1, UINT32_MAX, &seq);
	}
	unsetenv(LUO_ABI_CONTROL_FD_ENV);
	/* A stray number must not make us write to, or close, another fd. */
	if (r < 0 || n < LUO_FD_MIN || !with_handover)
		return;
	if (fstat((int)n, &st) < 0 || !S_ISSOCK(st.st_mode))
		return;
	if (getsockopt((int)n, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_SEQPACKET)
		return;
	len = sizeof(int);
	if (getsockopt((int)n, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 || domain != AF_UNIX)
		return;
	if (!is_our_connection((int)n))
		return;
	if (luo_set_cloexec((int)n, true) < 0)
		return;
	luo->control_reply_fd = (int)n;
	control_seq = (uint32_t)seq;
}

void luo_control_answer(struct luo *luo)
{
	_cleanup_close_ int fd = -1;
	struct luo_control_done done;
	struct luo_timings t;
	char reason[LUO_AGENT_REASON_SIZE];
	const char *why;
	uint32_t seq;
	int r;

	pthread_mutex_lock(&luo->lock);
	fd = TAKE_FD(luo->control_reply_fd);
	seq = control_seq;
	pthread_mutex_unlock(&luo->lock);
	if (fd < 0)
		return;
	set_timeouts(fd);
	r = luo_rollback(luo, &why);
	if (r < 0) {
		luo_reasonf(reason, sizeof(reason), "the new image failed: %s (%s)", why, strerror(-r));
		send_reply(fd, LUO_AGENT_REPLY_SIZE_VER0, seq, -EUCLEAN, 0, luo->lu_number, reason);
		return;
	}
	r = luo_incoming_error(luo, &why);
	if (r < 0) {
		luo_reasonf(reason, sizeof(reason), "the new image refused the handover and started fresh: %s", why);
		send_reply(fd, LUO_AGENT_REPLY_SIZE_VER0, seq, r, 0, luo->lu_number, reason);
		return;
	}
	r = luo_timings(luo, &t);
	if (r < 0) {
		send_reply(fd, LUO_AGENT_REPLY_SIZE_VER0, seq, r, 0, luo->lu_number, "no timings in the new image");
		return;
	}
	if (send_reply(fd, LUO_AGENT_REPLY_SIZE_VER0, seq, 0, 1, luo->lu_number, "") < 0)
		return;
	memset(&done, 0, sizeof(done));
	luo_wire_header_init(&done.hdr, LUO_CONTROL_DONE_SIZE_VER0, LUO_CONTROL_OP_DONE, seq);
	done.pid = (int32_t)getpid();
	done.lu_number = luo->lu_number;
	done.freeze_ns = t.freeze_ns;
	done.serialize_ns = t.serialize_ns;
	done.exec_ns = t.exec_ns;
	done.restore_ns = t.restore_ns;
	done.ready_ns = t.ready_ns;
	done.blackout_ns = t.blackout_ns;
	luo_wire_send(fd, &done, LUO_CONTROL_DONE_SIZE_VER0, NULL, 0);
}

void luo_control_close(struct luo *luo)
{
	luo->control_fd = safe_close(luo->control_fd);
	if (luo->control_reply_fd >= 0) {
		char reason[LUO_AGENT_REASON_SIZE];

		luo_reasonf(reason, sizeof(reason), "libluo was closed before luo_ready()%s%s",
			 luo->incoming_reason[0] ? ": " : "", luo->incoming_reason);
		set_timeouts(luo->control_reply_fd);
		send_reply(luo->control_reply_fd, LUO_AGENT_REPLY_SIZE_VER0, control_seq, -ECONNABORTED, 0, luo->lu_number,
			   reason);
		luo->control_reply_fd = safe_close(luo->control_reply_fd);
	}
}
