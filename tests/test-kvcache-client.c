/* SPDX-License-Identifier: MIT */
/*
 * test-kvcache-client: a verifying memcached client for the kvcache tests.
 *
 *   test-kvcache-client --port N [--items N] [--conns C] [--value-max B]
 *                       [--seconds S] [--ready-file FILE]
 *
 * DOC: what it does and what it counts
 *
 * 1. Load: sets --items keys (pipelined, one connection), each value a
 *    function of (key, generation), 10..--value-max bytes.
 * 2. Run, until SIGINT/SIGTERM or --seconds: C threads, each with ONE
 *    persistent connection for its whole life, each owning the keys
 *    i % C == thread (so it knows every value it expects); each loops on
 *    a random mix of set (the generation grows), get of 1..4 keys and
 *    gets, checking every byte. A churn thread opens a connection, asks
 *    "version", closes, again and again: a refused or reset connection
 *    counts. The ready file is written once the load is done.
 * 3. Verify, on the same persistent connections: every key reads back
 *    its last value (multi-key gets of 100).
 *
 * Any error (a wrong or missing value, a reply that is not the expected
 * one, a connection that breaks, times out (10 s) or is refused) counts;
 * connections are never reopened. The summary line gives the counts and
 * the longest gap between two answers any thread saw; exit 1 on any error.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONNS_MAX 64
#define VALUE_MAX (64u << 10)
#define LOAD_BATCH 500
#define VERIFY_BATCH 100
#define IO_TIMEOUT_S 10

static int port;
static unsigned items = 10000, nconns = 4, value_max = 100;
static double seconds = 3600;
static const char *ready_file;
static atomic_bool stop;
static atomic_uint_fast64_t ops, errors, refused, churned, lost, longest_gap_us;
static uint32_t *gen; /* per key; each key written by one thread only */

static void on_stop(int sig)
{
	(void)sig;
	atomic_store(&stop, true);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define ERR(...)                                                                                             \
	do {                                                                                                 \
		if (atomic_fetch_add(&errors, 1) < 20)                                                       \
			fprintf(stderr, "client: " __VA_ARGS__);                                             \
	} while (0)

/* ---------------------------------------------------------------------- */

struct conn {
	int fd;
	char buf[1 << 16];
	size_t off, len;
};

static int dial(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

static int send_all(struct conn *c, const char *p, size_t n)
{
	while (n) {
		ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int fill(struct conn *c)
{
	ssize_t k;

	if (c->off == c->len)
		c->off = c->len = 0;
	if (c->len == sizeof(c->buf)) {
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	do
		k = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	while (k < 0 && errno == EINTR);
	if (k <= 0)
		return -1;
	c->len += (size_t)k;
	return 0;
}

/* One line without "\r\n" into @line (NUL-terminated). */
static int read_line(struct conn *c, char *line, size_t max)
{
	for (;;) {
		char *nl = memchr(c->buf + c->off, '\n', c->len - c->off);

		if (nl) {
			size_t n = (size_t)(nl - (c->buf + c->off));

			if (n == 0 || c->buf[c->off + n - 1] != '\r' || n - 1 >= max)
				return -1;
			memcpy(line, c->buf + c->off, n - 1);
			line[n - 1] = '\0';
			c->off += n + 1;
			return 0;
		}
		if (c->off > 0 && c->off == c->len)
			c->off = c->len = 0;
		else if (c->off > 0) {
			memmove(c->buf, c->buf + c->off, c->len - c->off);
			c->len -= c->off;
			c->off = 0;
		}
		if (fill(c) < 0)
			return -1;
	}
}

static int read_exact(struct conn *c, char *p, size_t n)
{
	while (n) {
		size_t k;

		if (c->off == c->len && fill(c) < 0)
			return -1;
		k = c->len - c->off < n ? c->len - c->off : n;
		memcpy(p, c->buf + c->off, k);
		c->off += k;
		p += k;
		n -= k;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */

static void key_of(unsigned i, char *key, size_t len)
{
	snprintf(key, len, "key:%08u", i);
}

static size_t value_of(unsigned i, uint32_t g, char *v)
{
	size_t n = 10 + ((size_t)i * 7919u + g * 104729u) % (value_max - 9);
	int k = snprintf(v, n + 1, "%u:%u:", i, g);

	for (size_t j = (size_t)k; j < n; j++)
		v[j] = (char)('a' + (i + g + j) % 26);
	return n;
}

static int do_set(struct conn *c, unsigned i, uint32_t g)
{
	char key[32], head[96], line[256];
	static __thread char v[VALUE_MAX + 2];
	size_t n = value_of(i, g, v);
	int h;

	key_of(i, key, sizeof(key));
	h = snprintf(head, sizeof(head), "set %s %u 0 %zu\r\n", key, i, n);
	memcpy(v + n, "\r\n", 2);
	if (send_all(c, head, (size_t)h) < 0 || send_all(c, v, n + 2) < 0 || read_line(c, line, sizeof(line)) < 0) {
		ERR("set %s: connection broken\n", key);
		return -1;
	}
	if (strcmp(line, "STORED") != 0) {
		ERR("set %s: '%s'\n", key, line);
		return -1;
	}
	return 0;
}

/* get (or gets) of keys[0..n): each must come back with its expected value. */
static int do_get(struct conn *c, const unsigned *keys, size_t n, bool cas)
{
	char req[VERIFY_BATCH * 16 + 16], line[512];
	static __thread char got[VALUE_MAX + 2], want[VALUE_MAX + 2];
	size_t len = (size_t)snprintf(req, sizeof(req), cas ? "gets" : "get");
	size_t seen = 0;

	for (size_t k = 0; k < n; k++)
		len += (size_t)snprintf(req + len, sizeof(req) - len, " key:%08u", keys[k]);
	len += (size_t)snprintf(req + len, sizeof(req) - len, "\r\n");
	if (send_all(c, req, len) < 0) {
		ERR("get: connection broken (send)\n");
		return -1;
	}
	for (;;) {
		char key[64];
		unsigned flags;
		size_t bytes, wn;
		unsigned long long casv;
		int f;

		if (read_line(c, line, sizeof(line)) < 0) {
			ERR("get: connection broken (reply)\n");
			return -1;
		}
		if (strcmp(line, "END") == 0)
			break;
		f = cas ? sscanf(line, "VALUE %63s %u %zu %llu", key, &flags, &bytes, &casv)
			: sscanf(line, "VALUE %63s %u %zu", key, &flags, &bytes);
		if (f != (cas ? 4 : 3) || bytes > VALUE_MAX || seen >= n) {
			ERR("get: unexpected line '%s'\n", line);
			return -1;
		}
		/* Replies come in the order asked, misses skipped. */
		while (seen < n) {
			char k2[32];

			key_of(keys[seen], k2, sizeof(k2));
			if (strcmp(k2, key) == 0)
				break;
			atomic_fetch_add(&lost, 1);
			ERR("get: %s missing\n", k2);
			seen++;
		}
		if (seen == n || read_exact(c, got, bytes + 2) < 0) {
			ERR("get: '%s' not asked for, or broken\n", key);
			return -1;
		}
		wn = value_of(keys[seen], gen[keys[seen]], want);
		if (flags != keys[seen] || bytes != wn || memcmp(got, want, wn) != 0 || memcmp(got + wn, "\r\n", 2)) {
			ERR("get %s: wrong value (generation %u expected)\n", key, gen[keys[seen]]);
			return -1;
		}
		seen++;
	}
	for (; seen < n; seen++) {
		atomic_fetch_add(&lost, 1);
		ERR("get: key:%08u missing\n", keys[seen]);
	}
	return 0;
}

/* ---------------------------------------------------------------------- */

static void load(void)
{
	struct conn *c = calloc(1, sizeof(*c));
	char line[256];

	c->fd = dial();
	if (c->fd < 0) {
		ERR("load: connect: %s\n", strerror(-c->fd));
		exit(1);
	}
	for (unsigned i = 0; i < items; i += LOAD_BATCH) {
		unsigned end = i + LOAD_BATCH < items ? i + LOAD_BATCH : items;
		static char v[VALUE_MAX + 2];

		for (unsigned k = i; k < end; k++) {
			char head[96];
			size_t n = value_of(k, 0, v);
			int h = snprintf(head, sizeof(head), "set key:%08u %u 0 %zu\r\n", k, k, n);

			memcpy(v + n, "\r\n", 2);
			if (send_all(c, head, (size_t)h) < 0 || send_all(c, v, n + 2) < 0) {
				ERR("load: send failed\n");
				exit(1);
			}
		}
		for (unsigned k = i; k < end; k++) {
			if (read_line(c, line, sizeof(line)) < 0 || strcmp(line, "STORED") != 0) {
				ERR("load: key %u: not stored\n", k);
				exit(1);
			}
		}
	}
	close(c->fd);
	free(c);
}

struct worker {
	pthread_t tid;
	unsigned id;
	struct conn c;
	uint64_t rng;
	bool broken;
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static unsigned my_key(struct worker *w)
{
	unsigned per = (items + nconns - 1 - w->id) / nconns; /* keys i % nconns == id */

	return w->id + (unsigned)(rnd(&w->rng) % per) * nconns;
}

static void note_gap(double *last)
{
	double t = now_s();
	uint64_t gap = (uint64_t)((t - *last) * 1e6), cur = atomic_load(&longest_gap_us);

	while (gap > cur && !atomic_compare_exchange_weak(&longest_gap_us, &cur, gap)) {
	}
	*last = t;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	double last = now_s();

	while (!atomic_load(&stop) && !w->broken) {
		unsigned keys[4];
		uint64_t what = rnd(&w->rng) % 10;
		int r;

		if (what < 4) {
			unsigned k = my_key(w);

			r = do_set(&w->c, k, gen[k] + 1);
			if (r == 0)
				gen[k]++;
		} else {
			size_t n = 1 + rnd(&w->rng) % 4;

			for (size_t i = 0; i < n; i++)
				keys[i] = my_key(w);
			/* A key twice in one get: fine, it is asked (and answered) twice. */
			r = do_get(&w->c, keys, n, what == 9);
		}
		if (r < 0) {
			w->broken = true; /* never reconnect: a persistent connection must survive */
			break;
		}
		atomic_fetch_add(&ops, 1);
		note_gap(&last);
	}
	return NULL;
}

static void *churn(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		struct conn *c = calloc(1, sizeof(*c));
		char line[128];

		c->fd = dial();
		if (c->fd < 0) {
			atomic_fetch_add(c->fd == -ECONNREFUSED ? &refused : &errors, 1);
			fprintf(stderr, "client: churn connect: %s\n", strerror(-c->fd));
		} else {
			if (send_all(c, "version\r\n", 9) < 0 || read_line(c, line, sizeof(line)) < 0 ||
			    strncmp(line, "VERSION ", 8) != 0)
				ERR("churn: no VERSION\n");
			else
				atomic_fetch_add(&churned, 1);
			close(c->fd);
		}
		free(c);
		usleep(5000);
	}
	return NULL;
}

static void verify(struct worker *w)
{
	unsigned batch[VERIFY_BATCH];
	size_t n = 0;

	for (unsigned i = w->id; i < items && !w->broken; i += nconns) {
		batch[n++] = i;
		if (n == VERIFY_BATCH || i + nconns >= items) {
			if (do_get(&w->c, batch, n, false) < 0)
				w->broken = true;
			n = 0;
		}
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },      { "items", required_argument, NULL, 'n' },
		{ "conns", required_argument, NULL, 'c' },     { "value-max", required_argument, NULL, 'v' },
		{ "seconds", required_argument, NULL, 's' },   { "ready-file", required_argument, NULL, 'r' },
		{ 0 },
	};
	struct sigaction sa = { .sa_handler = on_stop };
	struct worker *ws;
	pthread_t churner;
	unsigned broken = 0;
	double start;
	int o;

	while ((o = getopt_long(argc, argv, "p:n:c:v:s:r:", opts, NULL)) != -1) {
		switch (o) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'n':
			items = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'c':
			nconns = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'v':
			value_max = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 's':
			seconds = strtod(optarg, NULL);
			break;
		case 'r':
			ready_file = optarg;
			break;
		default:
			fprintf(stderr, "usage: test-kvcache-client --port N [--items N] [--conns C] [--value-max B] "
					"[--seconds S] [--ready-file FILE]\n");
			return 2;
		}
	}
	if (port <= 0 || port > 65535 || items < nconns || nconns < 1 || nconns > CONNS_MAX || value_max < 20 ||
	    value_max > VALUE_MAX || !(seconds > 0)) {
		fprintf(stderr, "test-kvcache-client: bad arguments\n");
		return 2;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	gen = calloc(items, sizeof(*gen));
	ws = calloc(nconns, sizeof(*ws));
	if (!gen || !ws)
		return 2;

	start = now_s();
	load();
	printf("client: loaded %u items in %.2f s\n", items, now_s() - start);
	fflush(stdout);
	for (unsigned t = 0; t < nconns; t++) {
		ws[t].id = t;
		ws[t].rng = 0x9e3779b97f4a7c15ull * (t + 1);
		ws[t].c.fd = dial();
		if (ws[t].c.fd < 0) {
			fprintf(stderr, "client: connect: %s\n", strerror(-ws[t].c.fd));
			return 1;
		}
	}
	for (unsigned t = 0; t < nconns; t++)
		pthread_create(&ws[t].tid, NULL, run, &ws[t]);
	pthread_create(&churner, NULL, churn, NULL);
	if (ready_file) {
		FILE *f = fopen(ready_file, "we");

		if (f)
			fclose(f);
	}
	start = now_s();
	while (!atomic_load(&stop) && now_s() - start < seconds)
		usleep(20000);
	atomic_store(&stop, true);
	for (unsigned t = 0; t < nconns; t++)
		pthread_join(ws[t].tid, NULL);
	pthread_join(churner, NULL);
	for (unsigned t = 0; t < nconns; t++) {
		verify(&ws[t]);
		broken += ws[t].broken;
		close(ws[t].c.fd);
	}
	printf("client: %" PRIu64 " requests checked, %" PRIu64 " churn connections, %u items verified on the %u "
	       "persistent connections; %" PRIu64 " errors, %" PRIu64 " refused connections, %u broken connections, "
	       "%" PRIu64 " items lost; longest gap between answers %.2f ms\n",
	       (uint64_t)atomic_load(&ops), (uint64_t)atomic_load(&churned), items, nconns,
	       (uint64_t)atomic_load(&errors), (uint64_t)atomic_load(&refused), broken, (uint64_t)atomic_load(&lost),
	       atomic_load(&longest_gap_us) / 1e3);
	free(gen);
	free(ws);
	return atomic_load(&errors) || atomic_load(&refused) || atomic_load(&lost) || broken ? 1 : 0;
}
