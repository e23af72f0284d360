/* SPDX-License-Identifier: MIT */
/*
 * DOC: luod, the agent that holds sessions for services
 *
 *   luod [--socket PATH] [--socket-mode MODE] [--max-sessions N]
 *        [--max-fds N] [--max-bytes N] [--help] [--version]
 *
 * Lifecycle: options; signals blocked (they are read from a signalfd, and
 * stay blocked across luod's own exec so none is lost or fatal in the
 * switch); luo_open() on itself; then either the previous image's state is
 * adopted (handover.c: listener, connections, sessions) or, on a fresh
 * start, the socket is set up: its directory created if missing and
 * checked (owned by luod's euid, not writable by group or others), a stale
 * socket file replaced, a live agent on it refused. Then READY=1 to
 * systemd and the epoll loop: one thread, nothing blocks on a client.
 * SIGHUP asks for a self-update; SIGTERM and SIGINT end luod, and with it
 * every held session (luod is their holder; there is nowhere to put them).
 *
 * Failure paths: a bad option, an unusable socket directory or another
 * agent on the socket exit 1 with one line on stderr before anything is
 * held. Once running, nothing a client does ends luod: per-connection
 * errors close that connection (conn.c). A refused self-update leaves the
 * old image serving (handover.c).
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "cleanup.h"
#include "conn.h"
#include "handover.h"
#include "luod.h"
#include "request.h"
#include "table.h"

#ifndef LUOD_VERSION
#define LUOD_VERSION "unknown"
#endif

#define LUOD_EPOLL_BATCH 64
/* Fds kept for luod's own use (epoll, signalfd, stdio, libluo's blob) besides connections. */
#define LUOD_FDS_RESERVED 64u

/* Strict: digits only, no sign, no overflow, within [min, max]. */
static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;

	if (!s || !*s)
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (v < min || v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

static int parse_mode(const char *s, mode_t *ret)
{
	unsigned int v = 0;

	if (!s || !*s || strlen(s) > 4)
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '7')
			return -EINVAL;
		v = v * 8 + (unsigned int)(*p - '0');
	}
	if (v & ~0777u)
		return -EINVAL;
	*ret = (mode_t)v;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: luod [OPTIONS]\n"
		"Hold luo sessions (fds and handover blobs) for services, across their exit,\n"
		"crash or restart. Runs in the foreground; logs to stderr.\n"
		"\n"
		"  --socket PATH        listen here (default: $%s, else %s for root,\n"
		"                       $XDG_RUNTIME_DIR/%s for other users)\n"
		"  --socket-mode MODE   octal mode of the socket (default 0666 for the system\n"
		"                       agent, 0600 otherwise)\n"
		"  --max-sessions N     sessions per uid (default %u)\n"
		"  --max-fds N          fds per uid, blobs included (default %u)\n"
		"  --max-bytes N        bytes per uid: blobs + regular files/memfds (default %llu)\n"
		"  --help, --version\n"
		"\n"
		"SIGHUP: live-update luod itself (same binary path), keeping every session and\n"
		"connection. SIGTERM, SIGINT: exit (held sessions are lost). See luod(8).\n",
		LUO_AGENT_SOCKET_ENV, LUO_AGENT_SOCKET_SYSTEM, LUO_AGENT_SOCKET_USER, LUOD_DEFAULT_MAX_SESSIONS,
		LUOD_DEFAULT_MAX_FDS, (unsigned long long)LUOD_DEFAULT_MAX_BYTES);
}

struct options {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	bool system;    /* root on the default system path */
	mode_t mode;
	bool mode_set;
};

static int socket_path_default(struct options *o, uid_t euid)
{
	int r = luo_agent_socket_path(euid, o->path, sizeof(o->path)); /* libluo's rule, agent.h */

	if (r == -ENOENT)
		fprintf(stderr, "luod: no socket path: set $%s, $XDG_RUNTIME_DIR or --socket\n", LUO_AGENT_SOCKET_ENV);
	else if (r < 0)
		fprintf(stderr, "luod: socket path too long (max %zu bytes)\n", sizeof(o->path) - 1);
	return r == -ENOENT ? -EINVAL : r;
}

/* Create the socket's directory if missing; refuse one others could write. */
static int socket_dir(const struct options *o, uid_t euid)
{
	char dir[sizeof(o->path)];
	char *slash;
	struct stat st;

	snprintf(dir, sizeof(dir), "%s", o->path);
	slash = strrchr(dir, '/');
	if (!slash) {
		snprintf(dir, sizeof(dir), ".");
	} else if (slash == dir) {
		slash[1] = '\0';
	} else {
		*slash = '\0';
	}
	if (mkdir(dir, o->system ? 0755 : 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "luod: cannot create %s: %s\n", dir, strerror(errno));
		return -errno;
	}
	if (stat(dir, &st) < 0) {
		fprintf(stderr, "luod: %s: %s\n", dir, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != euid || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		fprintf(stderr,
			"luod: refusing socket directory %s: it must be a directory owned by uid %u and not "
			"writable by group or others (it is %s, uid %u, mode %04o)\n",
			dir, (unsigned)euid, S_ISDIR(st.st_mode) ? "a directory" : "not a directory",
			(unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

static int socket_listen(const struct options *o, int *ret_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;
	mode_t mode = o->mode_set ? o->mode : o->system ? 0666 : 0600;
	struct stat st;
	mode_t old;
	int r;

	memcpy(sa.sun_path, o->path, strlen(o->path) + 1);
	if (lstat(o->path, &st) == 0) {
		_cleanup_close_ int probe = -1;

		if (!S_ISSOCK(st.st_mode)) {
			fprintf(stderr, "luod: %s exists and is not a socket: refusing to replace it\n", o->path);
			return -EEXIST;
		}
		probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		if (probe < 0)
			return -errno;
		if (connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			fprintf(stderr, "luod: another agent answers on %s: refusing to start\n", o->path);
			return -EADDRINUSE;
		}
		if (errno != ECONNREFUSED) {
			fprintf(stderr, "luod: %s: %s: refusing to replace it\n", o->path, strerror(errno));
			return -errno;
		}
		if (unlink(o->path) < 0 && errno != ENOENT) {
			fprintf(stderr, "luod: cannot remove the stale socket %s: %s\n", o->path, strerror(errno));
			return -errno;
		}
		luod_log("replaced the stale socket %s", o->path);
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	old = umask(0777 & ~mode);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0) {
		r = -errno;
		fprintf(stderr, "luod: bind %s: %s\n", o->path, strerror(-r));
		return r;
	}
	if (chmod(o->path, mode) < 0 || listen(fd, LUOD_BACKLOG) < 0) {
		r = -errno;
		fprintf(stderr, "luod: %s: %s\n", o->path, strerror(-r));
		(void)unlink(o->path);
		return r;
	}
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/*
 * Raise RLIMIT_NOFILE to its hard limit; size the held-fds budget by it,
 * keep root's reserve of it, and clamp --max-fds to a uid's share of the rest.
 */
static void fd_budget(struct luod *d)
{
	struct rlimit rl;
	uint64_t budget = LUOD_HELD_FDS_MAX, share;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (rl.rlim_cur < rl.rlim_max) {
			rlim_t want = rl.rlim_max;

			rl.rlim_cur = want;
			(void)setrlimit(RLIMIT_NOFILE, &rl);
			(void)getrlimit(RLIMIT_NOFILE, &rl);
		}
		/* An update holds each fd twice (libluo's duplicates): half of what is left. */
		if (rl.rlim_cur != RLIM_INFINITY) {
			uint64_t left = rl.rlim_cur > LUOD_CONNECTIONS_MAX + LUOD_FDS_RESERVED
						? (rl.rlim_cur - LUOD_CONNECTIONS_MAX - LUOD_FDS_RESERVED) / 2
						: 0;

			if (left < budget)
				budget = left;
		}
	}
	d->held_fds_max = budget;
	d->held_fds_root_reserve = budget / LUOD_HELD_FDS_ROOT_RESERVE_DIV;
	/* One uid may not be promised what all the others share. */
	share = (budget - d->held_fds_root_reserve) / LUOD_HELD_FDS_UID_SHARE_DIV;
	if (share == 0)
		share = 1; /* --max-fds is 1 at least; deposits then meet -ENFILE */
	if (d->lim.max_fds > share) {
		luod_log("--max-fds %" PRIu64 " is more than 1/%u of what luod can hold for the uids other than root "
			 "(%" PRIu64 " of %" PRIu64 "): clamped to %" PRIu64,
			 d->lim.max_fds, LUOD_HELD_FDS_UID_SHARE_DIV, budget - d->held_fds_root_reserve, budget, share);
		d->lim.max_fds = share;
	}
}

static void notify(const char *state)
{
	/* Keep NOTIFY_SOCKET: the next image of a self-update notifies too. */
	(void)sd_notify(0, state);
}

static void handle_signals(struct luod *d)
{
	struct signalfd_siginfo si;

	while (read(d->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGHUP:
			luod_log("SIGHUP from pid %u: self-update asked", si.ssi_pid);
			if (conn_update_request(d, NULL, 0, 0) < 0)
				luod_log("an update is already under way");
			break;
		case SIGTERM:
		case SIGINT:
			luod_log("%s: exiting", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
			d->quit = true;
			break;
		}
	}
}

static int parse_options(int argc, char **argv, struct options *o, struct luod_limits *lim)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "socket-mode", required_argument, NULL, 'm' },
		{ "max-sessions", required_argument, NULL, 'S' },
		{ "max-fds", required_argument, NULL, 'F' },
		{ "max-bytes", required_argument, NULL, 'B' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	bool have_path = false;
	int c, r;

	*lim = (struct luod_limits){ LUOD_DEFAULT_MAX_SESSIONS, LUOD_DEFAULT_MAX_FDS, LUOD_DEFAULT_MAX_BYTES };
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (!*optarg || strlen(optarg) >= sizeof(o->path)) {
				fprintf(stderr, "luod: --socket: empty or longer than %zu bytes\n", sizeof(o->path) - 1);
				return -EINVAL;
			}
			snprintf(o->path, sizeof(o->path), "%s", optarg);
			have_path = true;
			break;
		case 'm':
			if (parse_mode(optarg, &o->mode) < 0) {
				fprintf(stderr, "luod: --socket-mode: an octal mode such as 0660, not '%s'\n", optarg);
				return -EINVAL;
			}
			o->mode_set = true;
			break;
		case 'S':
			r = parse_u64(optarg, 1, LUOD_LIMIT_SESSIONS_MAX, &lim->max_sessions);
			if (r < 0) {
				fprintf(stderr, "luod: --max-sessions: a number 1..%u, not '%s'\n", LUOD_LIMIT_SESSIONS_MAX,
					optarg);
				return r;
			}
			break;
		case 'F':
			r = parse_u64(optarg, 1, LUOD_LIMIT_FDS_MAX, &lim->max_fds);
			if (r < 0) {
				fprintf(stderr, "luod: --max-fds: a number 1..%u, not '%s'\n", LUOD_LIMIT_FDS_MAX, optarg);
				return r;
			}
			break;
		case 'B':
			r = parse_u64(optarg, 1, LUOD_LIMIT_BYTES_MAX, &lim->max_bytes);
			if (r < 0) {
				fprintf(stderr, "luod: --max-bytes: a number 1..%llu, not '%s'\n",
					(unsigned long long)LUOD_LIMIT_BYTES_MAX, optarg);
				return r;
			}
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("luod %s (protocol %u)\n", LUOD_VERSION, LUO_AGENT_PROTO_VERSION);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "luod: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return -EINVAL;
	}
	if (!have_path && socket_path_default(o, geteuid()) < 0)
		return -EINVAL;
	o->system = geteuid() == 0 && strcmp(o->path, LUO_AGENT_SOCKET_SYSTEM) == 0;
	return 0;
}

static void loop(struct luod *d)
{
	struct epoll_event evs[LUOD_EPOLL_BATCH];
	bool listening = true;

	while (!d->quit) {
		int timeout = -1, n;

		if (d->update_wanted) {
			uint64_t now = luod_now_ms();

			timeout = now >= d->update_deadline_ms ? 0 : (int)(d->update_deadline_ms - now);
		}
		if (d->accept_paused_until_ms) {
			uint64_t now = luod_now_ms();
			int wait = now >= d->accept_paused_until_ms ? 0 : (int)(d->accept_paused_until_ms - now);

			if (timeout < 0 || wait < timeout)
				timeout = wait;
		}
		if (d->n_conns > 0 && (timeout < 0 || timeout > LUOD_STALL_CHECK_MS))
			timeout = LUOD_STALL_CHECK_MS; /* conn_expire() below */
		n = epoll_wait(d->epfd, evs, LUOD_EPOLL_BATCH, timeout);
		if (n < 0 && errno != EINTR) {
			luod_log("epoll_wait: %s", strerror(errno));
			return;
		}
		for (int i = 0; i < n; i++) {
			enum luod_source_kind *k = evs[i].data.ptr;

			switch (*k) {
			case LUOD_SRC_LISTEN:
				(void)conn_accept(d);
				if (d->n_conns >= LUOD_CONNECTIONS_MAX || d->accept_paused_until_ms)
					listening = false;
				break;
			case LUOD_SRC_SIGNAL:
				handle_signals(d);
				break;
			case LUOD_SRC_CONN:
				request_event(d, (struct conn *)k, evs[i].events);
				break;
			}
		}
		if (d->accept_paused_until_ms && luod_now_ms() >= d->accept_paused_until_ms)
			d->accept_paused_until_ms = 0;
		if (!listening && d->n_conns < LUOD_CONNECTIONS_MAX && !d->accept_paused_until_ms &&
		    luod_epoll_set(d, d->listen_fd, &d->listen_src, EPOLLIN, false) == 0)
			listening = true;
		(void)conn_expire(d);
		handover_poll(d);
	}
}

/* What libluo says of the previous image, if anything went wrong. */
static void log_incoming(struct luod *d)
{
	const char *reason;
	int r;

	r = luo_incoming_error(d->luo, &reason);
	if (r < 0)
		luod_log("the previous image's handover was refused (%s: %s): starting empty", strerror(-r),
			 reason ? reason : "");
	if (luo_rollback(d->luo, &reason) < 0)
		luod_log("back from a failed self-update: %s", reason ? reason : "");
}

/* Nothing adopted: our binary's path, the start time, the socket. 0, or -1 said on stderr. */
static int start_fresh(struct luod *d, const struct options *o)
{
	char exe[PATH_MAX];
	int r;

	if (!realpath("/proc/self/exe", exe) || strlen(exe) >= sizeof(d->exe)) {
		fprintf(stderr, "luod: cannot resolve its own binary: %s\n", strerror(errno));
		return -1;
	}
	snprintf(d->exe, sizeof(d->exe), "%s", exe);
	d->started_s = luod_now_s();
	if (socket_dir(o, d->euid) < 0 || socket_listen(o, &d->listen_fd) < 0)
		return -1;
	r = luod_epoll_set(d, d->listen_fd, &d->listen_src, EPOLLIN, true);
	if (r < 0) {
		fprintf(stderr, "luod: epoll: %s\n", strerror(-r));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct luod daemon = { .epfd = -1, .listen_fd = -1, .sig_fd = -1 };
	struct luod *d = &daemon;
	struct options o = { 0 };
	sigset_t mask;
	int r, adopted;

	if (parse_options(argc, argv, &o, &d->lim) < 0)
		return 1;
	d->argv = argv;
	d->euid = geteuid();
	d->listen_src = LUOD_SRC_LISTEN;
	d->sig_src = LUOD_SRC_SIGNAL;

	/* Blocked before anything else: they also arrive blocked across luod's own exec. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	r = luod_closer_start();
	if (r < 0)
		luod_log("no closer thread (%s): deposited fds are closed inline", strerror(-r));

	r = handover_register();
	if (r < 0) {
		fprintf(stderr, "luod: cannot register its file handler: %s\n", strerror(-r));
		return 1;
	}
	r = luo_open(LUO_OPEN_FRESH_ON_ERROR, &d->luo);
	if (r < 0) {
		fprintf(stderr, "luod: luo_open: %s\n", strerror(-r));
		return 1;
	}
	log_incoming(d);
	fd_budget(d);
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d->epfd < 0 || table_init(d) < 0) {
		fprintf(stderr, "luod: %s\n", strerror(errno));
		return 1;
	}
	adopted = handover_restore(d);
	if (adopted < 0) {
		fprintf(stderr, "luod: cannot adopt the previous image's state: %s\n", strerror(-adopted));
		return 1;
	}
	if (!adopted && start_fresh(d, &o) < 0)
		return 1;
	d->sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (d->sig_fd < 0 || luod_epoll_set(d, d->sig_fd, &d->sig_src, EPOLLIN, true) < 0) {
		fprintf(stderr, "luod: signalfd: %s\n", strerror(errno));
		return 1;
	}
	d->lu_number = luo_liveupdate_number(d->luo);
	(void)luo_ready(d->luo);
	if (adopted)
		luod_log("live update %" PRIu64 " done: %" PRIu64 " session(s), %" PRIu64 " fd(s), %u connection(s) kept",
			 d->lu_number, d->n_sessions, d->n_fds, d->n_conns);
	else
		luod_log("started: %s on %s, limits per uid: %" PRIu64 " sessions, %" PRIu64 " fds, %" PRIu64
			 " bytes; %" PRIu64 " fds held at most, %" PRIu64 " of them for root alone",
			 LUOD_VERSION, o.path, d->lim.max_sessions, d->lim.max_fds, d->lim.max_bytes, d->held_fds_max,
			 d->held_fds_root_reserve);
	notify("READY=1\nSTATUS=serving");

	loop(d);

	notify("STOPPING=1");
	if (d->n_sessions)
		luod_log("exiting with %" PRIu64 " session(s) held: they are lost", d->n_sessions);
	while (d->conns)
		conn_close(d, d->conns, CONN_CLOSE_AGENT);
	table_free(d);
	luo_close(d->luo);
	safe_close(d->sig_fd);
	safe_close(d->listen_fd);
	safe_close(d->epfd);
	return 0;
}
