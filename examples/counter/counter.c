/* SPDX-License-Identifier: MIT */
/*
 * luo-counter: the smallest service that live-updates itself with libluo.
 *
 *   luo-counter serve [--port N] [--port-file FILE] [--next BINARY]
 *   luo-counter client --port N [--seconds S]
 *
 * The server keeps a counter in a memfd and listens on 127.0.0.1. Each
 * connection sends "INC\n" and gets the counter after the increment. On
 * SIGHUP it live-updates to --next (default: its own binary) through
 * luo_update(): same pid, same listening socket, same counter. SIGTERM or
 * SIGINT stop it. It prints one line per generation, with the blackout.
 *
 * The client connects again and again for S seconds and checks that every
 * answer is exactly one more than the last: a lost counter or a refused
 * connection shows at once. It prints a summary and exits 1 on any error.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "luo/luo.h"

#define SESSION "counter"
#define TOKEN_STATE 1
#define TOKEN_LISTEN 2
#define STATE_MAGIC 0x6c756f2d636e7472ull /* "luo-cntr" */

static const char *program; /* argv[0], for the next image */

struct state {
	uint64_t magic;
	uint64_t counter;
};

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
		"       luo-counter client --port N [--seconds S]\n"
		"\n"
		"serve   keep a counter in a memfd, answer \"INC\" on 127.0.0.1:N (0: any\n"
		"        port; --port-file gets the number). SIGHUP: live-update to\n"
		"        --next (default: this binary), keeping the socket and the\n"
		"        counter. SIGTERM/SIGINT: stop.\n"
		"client  send INC for S seconds (default 2) and check every answer is\n"
		"        one more than the last; exit 1 on any error or refusal.\n");
}

/* ---------------------------------------------------------------------- */
/* server                                                                  */

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

/* Take the state and socket from the previous image: 0, or -ENOENT. */
static int take_over(struct luo *luo, int *ret_state, int *ret_listen)
{
	struct luo_session *s;
	int r, state_fd, listen_fd;

	r = luo_session_retrieve(luo, SESSION, &s);
	if (r < 0)
		return r;
	r = luo_session_retrieve_fd(s, TOKEN_STATE, &state_fd);
	if (r < 0)
		die("retrieve state", -r);
	r = luo_session_retrieve_fd(s, TOKEN_LISTEN, &listen_fd);
	if (r < 0)
		die("retrieve listening socket", -r);
	r = luo_session_finish(s);
	if (r < 0)
		die("finish", -r);
	luo_session_close(s);
	*ret_state = state_fd;
	*ret_listen = listen_fd;
	return 0;
}

static void serve_one(int listen_fd, struct state *st)
{
	char buf[64];
	int c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	ssize_t n;

	if (c < 0)
		return;
	n = read(c, buf, sizeof(buf) - 1);
	if (n >= 3 && memcmp(buf, "INC", 3) == 0) {
		int len = snprintf(buf, sizeof(buf), "%llu\n", (unsigned long long)++st->counter);

		if (write(c, buf, (size_t)len) < 0) {
			/* the client went away: nothing to do */
		}
	}
	close(c);
}

static int serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "port-file", required_argument, NULL, 'f' },
		{ "next", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *port_file = NULL, *next = "/proc/self/exe";
	int port = 0, c, r, state_fd, listen_fd, sig_fd;
	struct luo *luo;
	struct luo_session *s;
	struct state *st;
	sigset_t mask;
	const char *reason;

	while ((c = getopt_long(argc, argv, "p:f:n:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			port = parse_port(optarg);
			break;
		case 'f':
			port_file = optarg;
			break;
		case 'n':
			next = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}

	r = luo_open(LUO_OPEN_FRESH_ON_ERROR, &luo);
	if (r < 0)
		die("luo_open", -r);
	if (luo_incoming_error(luo, &reason) < 0)
		fprintf(stderr, "luo-counter: incoming state refused, fresh start: %s\n", reason);

	if (take_over(luo, &state_fd, &listen_fd) < 0) {
		state_fd = memfd_create("luo-counter", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		if (state_fd < 0 || ftruncate(state_fd, sizeof(*st)) < 0)
			die("memfd", errno);
		listen_fd = listen_on(port);
	}
	st = mmap(NULL, sizeof(*st), PROT_READ | PROT_WRITE, MAP_SHARED, state_fd, 0);
	if (st == MAP_FAILED)
		die("mmap", errno);
	if (st->magic == 0)
		st->magic = STATE_MAGIC;
	else if (st->magic != STATE_MAGIC)
		die("state", EBADMSG);

	/* Hand the same objects to the next image. */
	r = luo_session_create(luo, SESSION, &s);
	if (r == 0)
		r = luo_session_preserve_fd(s, state_fd, TOKEN_STATE);
	if (r == 0)
		r = luo_session_preserve_fd(s, listen_fd, TOKEN_LISTEN);
	if (r < 0)
		die("preserve", -r);
	close(state_fd);

	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sig_fd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sig_fd < 0)
		die("signalfd", errno);

	luo_ready(luo);
	if (luo_is_incoming(luo)) {
		struct luo_timings t;

		luo_timings(luo, &t);
		printf("[pid %d] generation %llu: counter %llu, same socket on port %d; blackout %.2f ms "
		       "(freeze %.2f, serialize %.2f, exec %.2f, restore %.2f, ready %.2f)\n",
		       getpid(), (unsigned long long)luo_liveupdate_number(luo), (unsigned long long)st->counter,
		       bound_port(listen_fd), t.blackout_ns / 1e6, t.freeze_ns / 1e6, t.serialize_ns / 1e6,
		       t.exec_ns / 1e6, t.restore_ns / 1e6, t.ready_ns / 1e6);
	} else {
		printf("[pid %d] generation 0: fresh start, listening on 127.0.0.1:%d\n", getpid(),
		       bound_port(listen_fd));
	}
	fflush(stdout);
	if (port_file) {
		FILE *f = fopen(port_file, "we");

		if (!f || fprintf(f, "%d\n", bound_port(listen_fd)) < 0 || fclose(f) != 0)
			die(port_file, errno);
	}

	for (;;) {
		struct pollfd pfd[2] = { { .fd = listen_fd, .events = POLLIN }, { .fd = sig_fd, .events = POLLIN } };
		struct signalfd_siginfo si;

		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			die("poll", errno);
		if (pfd[0].revents & POLLIN)
			serve_one(listen_fd, st);
		if (!(pfd[1].revents & POLLIN) || read(sig_fd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo == SIGHUP) {
			char *nargv[] = { (char *)program, "serve", NULL };

			fflush(NULL); /* execve() drops what stdio buffers */
			r = luo_update(luo, next, nargv, NULL);
			/* Still here: the update failed and nothing changed. */
			fprintf(stderr, "luo-counter: live update to %s failed: %s; still serving\n", next,
				strerror(-r));
			continue;
		}
		break; /* SIGTERM / SIGINT */
	}
	printf("[pid %d] stopping with counter %llu\n", getpid(), (unsigned long long)st->counter);
	munmap(st, sizeof(*st));
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
	if (port <= 0) {
		usage(stderr);
		return 2;
	}
	start = prev = now_s();
	while (now_s() - start < seconds) {
		long long v = one_request(port);
		double t = now_s();

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
	program = argv[0];
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
