/* SPDX-License-Identifier: MIT */
/*
 * luo-counter: the reference example of libluo, and of versioned state.
 *
 *   luo-counter serve [--port N] [--port-file FILE] [--next BINARY] [--next-file FILE]
 *   luo-counter client --port N [--seconds S]
 *
 * The server listens on 127.0.0.1; each connection sends "INC\n" and gets
 * the counter after the increment. On SIGHUP it live-updates through
 * luo_update() to the binary named in --next-file (read at each SIGHUP),
 * else --next, else its own binary: same pid, same listening socket (in the
 * session "counter"), same counter (the component "counter"). If the update
 * is refused or fails, it says why and keeps serving. SIGTERM or SIGINT stop
 * it. Each image prints one line when it starts: generation, build, counter,
 * what became of each component, and the blackout.
 *
 * It also listens on its control socket (luo_control_listen()), so that
 * `luoctl update --pid PID NEW_BINARY` asks it to update to NEW_BINARY and
 * waits for the outcome: the refusal and its report, or the new image's
 * timings, or the rollback. That update runs with this process's argv, so
 * the next image gets the same options (--port 0 included: the socket comes
 * in the handover; only a fresh start would listen on a new port).
 *
 * The client connects again and again for S seconds (or until SIGINT or
 * SIGTERM) and checks that every answer is exactly one more than the last:
 * a lost counter or a refused connection shows at once. It prints a summary
 * and exits 1 on any error.
 *
 * DOC: versions
 *
 * This one file stands for three releases of the service: it is built with
 * -DCOUNTER_VERSION=1, 2 or 3 (2 by default), as release N would have been
 * built from its own commit. They differ only in the state they hand over,
 * two components, declared as fields with the versions that carry them
 * (fields.h; once a fixed struct per version, which older readers still
 * get):
 *
 *   component              v1 build        v2 build        v3 build
 *   counter (mandatory)    read 1  write 1 read 1..2 w 1..2 read 2..3 w 2..3
 *   stats   (optional)     read 1  write 1 read 2  write 2  read 2..3 w 2..3
 *
 * Negotiation (before the switch) hands over v = max(write_old & read_new &
 * read_old) of each:
 *
 *   v1 <-> v2  counter at 1 (v2 still writes 1: downgrades work); stats has
 *              no common version and is optional: dropped, cold start
 *   v2 <-> v3  counter at 2, stats at 2
 *   v1 <-> v3  counter has no common version and is mandatory: the update
 *              is refused, nothing changes, the old image keeps serving
 *
 * A struct, once released at a version, never changes: each build names
 * the payload type of every (component, version) it can read or write with
 * LUO_PAYLOAD_TYPE(), luo-describe records the compiler's description of
 * it, and luo_update() refuses to use a version whose types differ between
 * the two images.
 *
 * -DCOUNTER_BROKEN_LOAD builds a v2 whose "counter" load always fails
 * (-EIO), as a release with a bug in its loader would: its luo_open() finds
 * the failure and libluo goes back to the previous binary, with the same
 * handover, where luo_rollback() says what happened. Nothing is lost.
 *
 * The counter once lived in a memfd (token 1 of the session); a component
 * says what the bytes mean and at which version, a memfd does not, so the
 * memfd is gone. Token 1 is not reused.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "luo/luo.h"

#ifndef COUNTER_VERSION
#define COUNTER_VERSION 2
#endif

/* The versions each build reads and writes ("counter", then "stats"). */
#if COUNTER_VERSION == 1
#define COUNTER_READ_MIN 1
#define COUNTER_READ_MAX 1
#define COUNTER_WRITE_MIN 1
#define COUNTER_WRITE_MAX 1
#define STATS_READ_MIN 1
#define STATS_READ_MAX 1
#define STATS_WRITE_MIN 1
#define STATS_WRITE_MAX 1
#elif COUNTER_VERSION == 2
#define COUNTER_READ_MIN 1
#define COUNTER_READ_MAX 2
#define COUNTER_WRITE_MIN 1
#define COUNTER_WRITE_MAX 2
#define STATS_READ_MIN 2
#define STATS_READ_MAX 2
#define STATS_WRITE_MIN 2
#define STATS_WRITE_MAX 2
#elif COUNTER_VERSION == 3
#define COUNTER_READ_MIN 2
#define COUNTER_READ_MAX 3
#define COUNTER_WRITE_MIN 2
#define COUNTER_WRITE_MAX 3
#define STATS_READ_MIN 2
#define STATS_READ_MAX 3
#define STATS_WRITE_MIN 2
#define STATS_WRITE_MAX 3
#else
#error "COUNTER_VERSION must be 1, 2 or 3"
#endif

#if defined(COUNTER_PLUS_FIELD) && (COUNTER_VERSION != 2 || defined(COUNTER_BROKEN_LOAD))
#error "COUNTER_PLUS_FIELD is a version 2 build"
#endif
#if defined(COUNTER_BROKEN_LOAD) && COUNTER_VERSION != 2
#error "COUNTER_BROKEN_LOAD is a version 2 build"
#endif

#ifdef COUNTER_BROKEN_LOAD
#define BUILD_NAME "broken"
#elif defined(COUNTER_PLUS_FIELD)
#define BUILD_NAME "v2plus"
#else
#define BUILD_NAME "v" STRINGIFY(COUNTER_VERSION)
#endif
#define STRINGIFY(x) STRINGIFY_(x)
#define STRINGIFY_(x) #x

/* Whether this build reads (and so may be handed) version v. */
#define COUNTER_KNOWS(v) (COUNTER_READ_MIN <= (v) && (v) <= COUNTER_READ_MAX)
#define STATS_KNOWS(v) (STATS_READ_MIN <= (v) && (v) <= STATS_READ_MAX)

#define SESSION "counter"
#define TOKEN_LISTEN 2 /* 1 was the counter's memfd: not reused */

/* ---------------------------------------------------------------------- */
/* Versioned state: the payloads                                           */

/*
 * The payloads as released, one struct per (component, version), in the
 * host's byte order (both images run on the same machine): what an image
 * built before declared state (below) writes and reads. Released structs
 * never change.
 */

/* "counter" v1: the value. */
struct counter_v1 {
	uint64_t count;
};

/* "counter" v2: and the live updates the counter has crossed. */
struct counter_v2 {
	uint64_t count;
	uint64_t updates;
};

/*
 * A time's unit is said by a typedef of the program's own: it is part of
 * the type luo-describe records, so a change of unit (seconds become
 * milliseconds) is a change of type that negotiation sees.
 */
typedef uint64_t counter_unix_seconds_t;

/* "counter" v3: and when the service started fresh (0 unknown). */
struct counter_v3 {
	uint64_t count;
	uint64_t updates;
	counter_unix_seconds_t started_at;
};

/* "stats" v1: connections accepted. */
struct stats_v1 {
	uint64_t connections;
};

/* "stats" v2: and the updates that did not happen (refused, failed, rolled back). */
struct stats_v2 {
	uint64_t connections;
	uint64_t failed_updates;
};

/* "stats" v3: and, of those, the ones that came back by rollback. */
struct stats_v3 {
	uint64_t connections;
	uint64_t failed_updates;
	uint64_t rollbacks;
};

/*
 * Each (component, version) names its payload type once; luo-describe (the
 * post-link step) writes the compiler's description of it into the binary,
 * and negotiation uses a version only if both images describe it alike.
 */
#if COUNTER_KNOWS(1)
LUO_PAYLOAD_TYPE(counter_v1_type, "counter", 1, struct counter_v1);
#endif
#if COUNTER_KNOWS(2)
LUO_PAYLOAD_TYPE(counter_v2_type, "counter", 2, struct counter_v2);
#endif
#if COUNTER_KNOWS(3)
LUO_PAYLOAD_TYPE(counter_v3_type, "counter", 3, struct counter_v3);
#endif
#if STATS_KNOWS(1)
LUO_PAYLOAD_TYPE(stats_v1_type, "stats", 1, struct stats_v1);
#endif
#if STATS_KNOWS(2)
LUO_PAYLOAD_TYPE(stats_v2_type, "stats", 2, struct stats_v2);
#endif
#if STATS_KNOWS(3)
LUO_PAYLOAD_TYPE(stats_v3_type, "stats", 3, struct stats_v3);
#endif

/*
 * The live state, with every field any version has; a field that none of
 * this build's versions carries is neither handed over nor shown.
 */
struct counter_state {
	uint64_t count;
	uint64_t updates;    /* v2.. */
	uint64_t started_at; /* v3.. */
#ifdef COUNTER_PLUS_FIELD
	uint32_t plus_takeovers; /* the "plus" build: a field added without a version bump */
#endif
};

struct stats_state {
	uint64_t connections;
	uint64_t failed_updates; /* v2.. */
	uint64_t rollbacks;      /* v3.. */
};

static struct counter_state counter;
static struct stats_state stats;

/*
 * The state is declared, not coded: each field once, with the versions
 * that carry it and its default (fields.h). libluo writes the fields a
 * version carries and reads them back by name; what a version does not
 * carry takes its default (0: "v1 did not count updates", "v2 did not
 * record when the service started"). To an image that predates declared
 * state the fields go as the struct of their version, counter_v1..v3 and
 * stats_v1..v3 above, field by field in this order.
 */
/*
 * -DCOUNTER_PLUS_FIELD (a v2 build) adds a field to "counter" at version 2
 * without a version bump: the times a plus build took the counter over,
 * 100 when it did not come (from a build without it). A build without it
 * drops it; tests/test-fields-live.sh goes back and forth.
 */
#ifdef COUNTER_PLUS_FIELD
#define COUNTER_PLUS_DECL , LUO_STATE_VALUE(struct counter_state, plus_takeovers, 2, LUO_STATE_LATEST, 0, 100)
#else
#define COUNTER_PLUS_DECL
#endif

#ifndef COUNTER_BROKEN_LOAD
LUO_COMPONENT_STATE(counter_component, "counter", COUNTER_READ_MIN, COUNTER_READ_MAX, COUNTER_WRITE_MIN,
		    COUNTER_WRITE_MAX, 0, struct counter_state, &counter,
		    LUO_STATE_VALUE(struct counter_state, count, 1, LUO_STATE_LATEST, LUO_STATE_REQUIRED, 0),
		    LUO_STATE_VALUE(struct counter_state, updates, 2, LUO_STATE_LATEST, 0, 0),
		    LUO_STATE_VALUE(struct counter_state, started_at, 3, LUO_STATE_LATEST, 0, 0) COUNTER_PLUS_DECL);
#else
/* The bug this build stands for: its loader fails, the update must roll back. */
static int broken_save(uint32_t version, struct luo_payload *out)
{
	(void)version;
	(void)out;
	return -EIO;
}

static int broken_load(uint32_t version, const void *data, size_t len)
{
	(void)version;
	(void)data;
	(void)len;
	return -EIO;
}

LUO_COMPONENT(counter_component, "counter", COUNTER_READ_MIN, COUNTER_READ_MAX, COUNTER_WRITE_MIN,
	      COUNTER_WRITE_MAX, 0, broken_save, broken_load);
#endif

LUO_COMPONENT_STATE(stats_component, "stats", STATS_READ_MIN, STATS_READ_MAX, STATS_WRITE_MIN, STATS_WRITE_MAX,
		    LUO_COMPONENT_OPTIONAL, struct stats_state, &stats,
		    LUO_STATE_VALUE(struct stats_state, connections, 1, LUO_STATE_LATEST, 0, 0),
		    LUO_STATE_VALUE(struct stats_state, failed_updates, 2, LUO_STATE_LATEST, 0, 0),
		    LUO_STATE_VALUE(struct stats_state, rollbacks, 3, LUO_STATE_LATEST, 0, 0));

static void counter_cold_start(void)
{
	memset(&counter, 0, sizeof(counter));
	if (COUNTER_WRITE_MAX >= 3)
		counter.started_at = (uint64_t)time(NULL);
}

static void stats_cold_start(void)
{
	memset(&stats, 0, sizeof(stats));
}

/* ---------------------------------------------------------------------- */
/* Common                                                                  */

static void die(const char *what, int err)
{
	fprintf(stderr, "luo-counter: %s: %s\n", what, strerror(err));
	exit(2);
}

static int parse_port(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < 0 || v > 65535) {
		fprintf(stderr, "luo-counter: bad port '%s'\n", s);
		exit(2);
	}
	return (int)v;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: luo-counter serve [--port N] [--port-file FILE] [--next BINARY]\n"
		"                         [--next-file FILE]\n"
		"       luo-counter client --port N [--seconds S]\n"
		"       luo-counter --help\n"
		"\n"
		"serve   answer \"INC\" on 127.0.0.1:N with the counter after the increment\n"
		"        (N 0, the default: any port; --port-file gets the number).\n"
		"        SIGHUP: live-update, keeping the pid, the socket and the counter,\n"
		"        to the binary whose path is in --next-file (read at each SIGHUP;\n"
		"        missing or empty: the next choice), else --next, else this binary.\n"
		"        The next image runs \"serve --port <the port in use>\" with the\n"
		"        same --next and --next-file. A refused or failed update is\n"
		"        reported; the service keeps serving. SIGTERM/SIGINT: stop.\n"
		"        `luoctl update --pid PID NEW_BINARY` (the control socket) updates\n"
		"        it too, with this image's own arguments, and waits for the outcome.\n"
		"client  send INC for S seconds (default 2; SIGINT/SIGTERM stop it\n"
		"        sooner) and check every answer is one more than the last; print\n"
		"        a summary; exit 1 on any error or refused connection, or none\n"
		"        answered.\n"
		"\n"
		"This is the %s build. State handed over, as libluo components:\n"
		"  counter (mandatory)  reads versions %d..%d, writes %d..%d\n"
		"  stats (optional)     reads versions %d..%d, writes %d..%d\n"
		"A mandatory component with no common version refuses the update; an\n"
		"optional one is dropped and starts cold. `luoctl matrix` shows which\n"
		"builds can update to which.\n",
		BUILD_NAME, COUNTER_READ_MIN, COUNTER_READ_MAX, COUNTER_WRITE_MIN, COUNTER_WRITE_MAX,
		STATS_READ_MIN, STATS_READ_MAX, STATS_WRITE_MIN, STATS_WRITE_MAX);
}

/* ---------------------------------------------------------------------- */
/* server                                                                  */

struct serve_opts {
	int port;
	const char *port_file;
	const char *next;      /* --next, or NULL */
	const char *next_file; /* --next-file, or NULL */
	char self[PATH_MAX];   /* this binary, resolved at start */
	char bound[8];         /* the port listened on, for the next image */
};

static int listen_on(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket", errno);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("bind", errno);
	if (listen(fd, 128) < 0)
		die("listen", errno);
	return fd;
}

static int bound_port(int fd)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		die("getsockname", errno);
	return ntohs(sa.sin_port);
}

/* Take the listening socket from the previous image: 0, or -ENOENT. */
static int take_over(struct luo *luo, int *ret_listen)
{
	struct luo_session *s;
	int r, listen_fd;

	r = luo_session_retrieve(luo, SESSION, &s);
	if (r < 0)
		return r;
	r = luo_session_retrieve_fd(s, TOKEN_LISTEN, &listen_fd);
	if (r < 0)
		die("retrieve listening socket", -r);
	r = luo_session_finish(s);
	if (r < 0)
		die("finish", -r);
	luo_session_close(s);
	*ret_listen = listen_fd;
	return 0;
}

static void serve_one(int listen_fd)
{
	char buf[64];
	int c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	ssize_t n;

	if (c < 0)
		return;
	stats.connections++;
	n = read(c, buf, sizeof(buf) - 1);
	if (n >= 3 && memcmp(buf, "INC", 3) == 0) {
		int len = snprintf(buf, sizeof(buf), "%llu\n", (unsigned long long)++counter.count);

		if (write(c, buf, (size_t)len) < 0) {
			/* the client went away: nothing to do */
		}
	}
	close(c);
}

/* What luo_component_incoming() said about @name, for people. */
static void component_outcome(const struct luo *luo, const char *name, char *buf, size_t len)
{
	uint32_t v = 0;
	int r = luo_component_incoming(luo, name, &v);

	switch (r) {
	case 0:
		snprintf(buf, len, "%s: loaded at v%u", name, v);
		break;
	case -ENODATA:
		snprintf(buf, len, "%s: nothing came", name);
		break;
	case -ESTALE:
		snprintf(buf, len, "%s: dropped at negotiation (cold start)", name);
		break;
	case -EIO:
		snprintf(buf, len, "%s: load failed (cold start)", name);
		break;
	default:
		snprintf(buf, len, "%s: %s", name, strerror(-r));
		break;
	}
}

/* The state, as far as this build knows it. */
static void state_describe(char *buf, size_t len)
{
	int n = snprintf(buf, len, "counter %llu", (unsigned long long)counter.count);

	if (COUNTER_WRITE_MAX >= 2 && n >= 0 && (size_t)n < len)
		n += snprintf(buf + n, len - (size_t)n, " (live updates crossed: %llu", (unsigned long long)counter.updates);
	if (COUNTER_WRITE_MAX >= 3 && n >= 0 && (size_t)n < len) {
		if (counter.started_at)
			n += snprintf(buf + n, len - (size_t)n, ", up since %llu",
				      (unsigned long long)counter.started_at);
		else
			n += snprintf(buf + n, len - (size_t)n, ", start time unknown");
	}
#ifdef COUNTER_PLUS_FIELD
	if (n >= 0 && (size_t)n < len)
		n += snprintf(buf + n, len - (size_t)n, ", plus takeovers %u", counter.plus_takeovers);
#endif
	if (COUNTER_WRITE_MAX >= 2 && n >= 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, ")");
}

static void stats_describe(char *buf, size_t len)
{
	int n = snprintf(buf, len, "%llu connections", (unsigned long long)stats.connections);

	if (STATS_WRITE_MAX >= 2 && n >= 0 && (size_t)n < len)
		n += snprintf(buf + n, len - (size_t)n, ", %llu failed updates",
			      (unsigned long long)stats.failed_updates);
	if (STATS_WRITE_MAX >= 3 && n >= 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, ", %llu rollbacks", (unsigned long long)stats.rollbacks);
}

/*
 * The binary to update to: the path in --next-file (missing or empty: go
 * on), else --next, else this binary. Return: 0, or a negative errno when
 * --next-file exists but cannot be used (then no update: if in doubt, do
 * not exec something else than what was asked).
 */
static int next_binary(const struct serve_opts *o, char *buf, size_t len)
{
	if (o->next_file) {
		int fd = open(o->next_file, O_RDONLY | O_CLOEXEC);
		ssize_t n = 0;

		if (fd < 0 && errno != ENOENT)
			return -errno;
		if (fd >= 0) {
			n = read(fd, buf, len);
			if (n < 0) {
				int r = -errno;

				close(fd);
				return r;
			}
			close(fd);
			if ((size_t)n >= len)
				return -ENAMETOOLONG;
			while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
				n--;
			if (memchr(buf, '\0', (size_t)n) || memchr(buf, '\n', (size_t)n))
				return -EINVAL; /* several lines, or a NUL: not one path */
			buf[n] = '\0';
		}
		if (n > 0)
			return 0;
	}
	snprintf(buf, len, "%s", o->next ? o->next : o->self);
	return 0;
}

/* Live-update; returns only if the update did not happen. */
static void update(struct luo *luo, const struct serve_opts *o)
{
	char path[PATH_MAX];
	char *nargv[10];
	size_t k = 0;
	int r;

	r = next_binary(o, path, sizeof(path));
	if (r < 0) {
		fprintf(stderr, "luo-counter: --next-file %s: %s; no update, still serving\n", o->next_file,
			strerror(-r));
		stats.failed_updates++;
		return;
	}
	/*
	 * What the next image needs again. The socket comes in the handover;
	 * --port is for the day that handover is refused: the fresh start
	 * then listens on the same port again.
	 */
	nargv[k++] = path;
	nargv[k++] = (char *)"serve";
	nargv[k++] = (char *)"--port";
	nargv[k++] = (char *)o->bound;
	if (o->next) {
		nargv[k++] = (char *)"--next";
		nargv[k++] = (char *)o->next;
	}
	if (o->next_file) {
		nargv[k++] = (char *)"--next-file";
		nargv[k++] = (char *)o->next_file;
	}
	nargv[k] = NULL;

	fflush(NULL); /* execve() drops what stdio buffers */
	r = luo_update(luo, path, nargv, NULL);
	/* Still here: the update did not happen and nothing changed. */
	stats.failed_updates++;
	if (r != -EPROTO) {
		fprintf(stderr, "luo-counter: live update to %s failed: %s; still serving\n", path, strerror(-r));
		return;
	}
	fprintf(stderr, "luo-counter: live update to %s refused at negotiation: %s\n", path, strerror(-r));
	/*
	 * Only after -EPROTO: an update that failed before negotiating (a
	 * missing binary) leaves the report of an earlier call in place.
	 */
	{
		const struct luo_report_entry *e;
		size_t n;

		if (luo_update_report(luo, &e, &n) == 0) {
			for (size_t i = 0; i < n; i++) {
				char line[512];

				luo_report_entry_format(&e[i], line, sizeof(line));
				fprintf(stderr, "luo-counter:   %s\n", line);
			}
		}
	}
	fprintf(stderr, "luo-counter: still serving\n");
}

/*
 * luoctl update --pid: luo_control_dispatch() runs the update with this
 * process's own argv (so the next image gets the same options), and
 * returns only if it did not happen, after luoctl got the refusal and its
 * report. Such a refusal is luoctl's to show: it is not printed here, nor
 * counted in stats.
 */
static void control(struct luo *luo)
{
	int r = luo_control_dispatch(luo);

	if (r < 0)
		fprintf(stderr, "luo-counter: control socket: %s\n", strerror(-r));
}

static int serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "port-file", required_argument, NULL, 'f' },
		{ "next", required_argument, NULL, 'n' },
		{ "next-file", required_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct serve_opts o = { 0 };
	int c, r, listen_fd, sig_fd, ctl_fd;
	char comp_counter[96], comp_stats[96], state[160], sstate[160];
	struct luo *luo;
	struct luo_session *s;
	sigset_t mask;
	const char *reason;
	ssize_t n;

	while ((c = getopt_long(argc, argv, "p:f:n:N:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			o.port = parse_port(optarg);
			break;
		case 'f':
			o.port_file = optarg;
			break;
		case 'n':
			o.next = optarg;
			break;
		case 'N':
			o.next_file = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "luo-counter: serve: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	/* Now, before anyone replaces the file: "this binary" for the next update. */
	n = readlink("/proc/self/exe", o.self, sizeof(o.self) - 1);
	if (n > 0 && (size_t)n < sizeof(o.self) - 1)
		o.self[n] = '\0';
	else
		snprintf(o.self, sizeof(o.self), "/proc/self/exe");

	/* Components are loaded in here, from the previous image's payloads. */
	r = luo_open(LUO_OPEN_FRESH_ON_ERROR, &luo);
	if (r < 0)
		die("luo_open", -r);
	if (luo_incoming_error(luo, &reason) < 0)
		fprintf(stderr, "luo-counter: incoming state refused, fresh start: %s\n", reason);
	/*
	 * A refused handover may have run some loads before the refusal: the
	 * state is what luo_component_incoming() says, nothing else.
	 */
	if (!luo_is_incoming(luo) || luo_component_incoming(luo, "counter", NULL) != 0)
		counter_cold_start();
	if (!luo_is_incoming(luo) || luo_component_incoming(luo, "stats", NULL) != 0)
		stats_cold_start();
	/*
	 * A load restores what was saved, no more; what the handover means is
	 * counted here: an update crossed, or one that came back.
	 */
	r = luo_rollback(luo, &reason);
	if (r < 0) {
		stats.failed_updates++;
		stats.rollbacks++;
		printf("[pid %d] rolled back: %s (%s)\n", getpid(), reason, strerror(-r));
	} else if (luo_component_incoming(luo, "counter", NULL) == 0) {
		counter.updates++;
#ifdef COUNTER_PLUS_FIELD
		counter.plus_takeovers++;
#endif
	}

	if (take_over(luo, &listen_fd) < 0)
		listen_fd = listen_on(o.port);

	/* Hand the same socket to the next image. */
	r = luo_session_create(luo, SESSION, &s);
	if (r == 0)
		r = luo_session_preserve_fd(s, listen_fd, TOKEN_LISTEN);
	if (r < 0)
		die("preserve", -r);

	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sig_fd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sig_fd < 0)
		die("signalfd", errno);

	/*
	 * Before luo_ready(): that answers the luoctl update which led here,
	 * and luoctl may ask again at once.
	 */
	r = luo_control_listen(luo, &ctl_fd);
	if (r < 0) {
		fprintf(stderr, "luo-counter: no control socket (luoctl update --pid): %s; SIGHUP still works\n",
			strerror(-r));
		ctl_fd = -1;
	}
	luo_ready(luo);
	snprintf(o.bound, sizeof(o.bound), "%d", bound_port(listen_fd));
	component_outcome(luo, "counter", comp_counter, sizeof(comp_counter));
	component_outcome(luo, "stats", comp_stats, sizeof(comp_stats));
	state_describe(state, sizeof(state));
	if (luo_is_incoming(luo)) {
		struct luo_timings t;

		luo_timings(luo, &t);
		printf("[pid %d] generation %llu: %s, same socket on port %d; %s build; %s, %s; "
		       "blackout %.2f ms (freeze %.2f, serialize %.2f, exec %.2f, restore %.2f, ready %.2f)\n",
		       getpid(), (unsigned long long)luo_liveupdate_number(luo), state, bound_port(listen_fd),
		       BUILD_NAME, comp_counter, comp_stats, t.blackout_ns / 1e6, t.freeze_ns / 1e6,
		       t.serialize_ns / 1e6, t.exec_ns / 1e6, t.restore_ns / 1e6, t.ready_ns / 1e6);
	} else {
		printf("[pid %d] generation 0: fresh start, listening on 127.0.0.1:%d; %s build; %s, %s\n", getpid(),
		       bound_port(listen_fd), BUILD_NAME, comp_counter, comp_stats);
	}
	fflush(stdout);
	if (o.port_file) {
		FILE *f = fopen(o.port_file, "we");

		if (!f || fprintf(f, "%d\n", bound_port(listen_fd)) < 0 || fclose(f) != 0)
			die(o.port_file, errno);
	}

	for (;;) {
		struct pollfd pfd[3] = { { .fd = listen_fd, .events = POLLIN },
					 { .fd = sig_fd, .events = POLLIN },
					 { .fd = ctl_fd, .events = POLLIN } }; /* -1: ignored */
		struct signalfd_siginfo si;

		if (poll(pfd, 3, -1) < 0 && errno != EINTR)
			die("poll", errno);
		if (pfd[0].revents & POLLIN)
			serve_one(listen_fd);
		if (pfd[2].revents & POLLIN)
			control(luo);
		if (!(pfd[1].revents & POLLIN) || read(sig_fd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo == SIGHUP) {
			update(luo, &o);
			continue;
		}
		break; /* SIGTERM / SIGINT */
	}
	state_describe(state, sizeof(state));
	stats_describe(sstate, sizeof(sstate));
	printf("[pid %d] stopping with %s; %s\n", getpid(), state, sstate);
	close(sig_fd);
	close(listen_fd);
	luo_close(luo);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* client                                                                  */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile sig_atomic_t client_stop;

static void client_on_stop(int sig)
{
	(void)sig;
	client_stop = 1;
}

/* One INC: the counter it returned, or a negative errno. */
static long long one_request(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	char buf[32] = { 0 };
	struct timeval tv = { .tv_sec = 5 };
	long long v = -EPROTO;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ssize_t n;

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		v = -errno;
	} else if (write(fd, "INC\n", 4) != 4) {
		v = -EPIPE;
	} else {
		n = read(fd, buf, sizeof(buf) - 1);
		if (n > 1 && buf[n - 1] == '\n')
			v = strtoll(buf, NULL, 10);
	}
	close(fd);
	return v;
}

static int client(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "seconds", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct sigaction sa = { .sa_handler = client_on_stop };
	long long last = -1, first = -1;
	unsigned long ok = 0, refused = 0, errors = 0, jumps = 0;
	double seconds = 2, start, prev, longest = 0;
	int port = -1, c;

	while ((c = getopt_long(argc, argv, "p:s:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			port = parse_port(optarg);
			break;
		case 's': {
			char *end;

			errno = 0;
			seconds = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(seconds > 0 && seconds <= 3600)) {
				fprintf(stderr, "luo-counter: --seconds must be a number in (0, 3600]\n");
				return 2;
			}
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (port <= 0 || optind < argc) {
		usage(stderr);
		return 2;
	}
	/* No SA_RESTART: a request waiting on the server returns at once. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	start = prev = now_s();
	while (!client_stop && now_s() - start < seconds) {
		long long v = one_request(port);
		double t = now_s();

		if (client_stop)
			break; /* interrupted: neither an answer nor an error */
		if (v == -ECONNREFUSED) {
			refused++;
		} else if (v < 0) {
			errors++;
		} else {
			if (first < 0)
				first = v;
			else if (v != last + 1)
				jumps++;
			last = v;
			ok++;
			if (t - prev > longest)
				longest = t - prev;
			prev = t;
		}
	}
	printf("client: %lu requests answered (counter %lld -> %lld), %lu refused connections, "
	       "%lu errors, %lu counter jumps; longest wait between answers %.2f ms\n",
	       ok, first, last, refused, errors, jumps, longest * 1e3);
	return refused || errors || jumps || ok == 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "serve") == 0)
		return serve(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "client") == 0)
		return client(argc - 1, argv + 1);
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return 2;
}
