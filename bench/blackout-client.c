/* SPDX-License-Identifier: MIT */
/*
 * bench/blackout-client: the load client of bench/blackout, for any server
 * speaking the memcached text protocol (kvcache, memcached).
 *
 *   blackout-client load   --port N --items N [--value-size B] [--conns C]
 *   blackout-client run    --port N --items N [--value-size B] [--conns C]
 *                          [--get-pct P] [--churn K] [--series FILE]
 *                          [--gaps FILE] [--ready-file FILE] [--max-seconds S]
 *   blackout-client verify --port N --items N [--value-size B] [--conns C]
 *
 * Keys are "bk:%09u" (0 <= i < --items), each value --value-size bytes, a
 * function of the key alone: any reply can be checked, and a set during
 * the run writes what the load wrote, so the read-back after the update
 * knows what each key must hold.
 *
 * load: C threads (default 2), each with one connection, sets its share
 * of the keys in pipelined batches of 1,000, every reply checked (STORED).
 *
 * run: ONE thread, epoll, C persistent connections (default 16) with one
 * request in flight each (closed loop: a reply, then the next request),
 * a random mix of P% get (default 90) and set of a uniformly random key,
 * every reply checked byte by byte; plus K (default 1) churn connections
 * that each connect, ask "version", close, again (a new connection
 * during the update must not be refused either). Until SIGINT/SIGTERM or
 * --max-seconds (default 600). It counts, as a real client would see it:
 *
 *   ok         replies that are what was asked (a get miss is not ok)
 *   misses     gets answered END (no value): the key was loaded, so lost
 *   failed     requests without a good reply: the connection broke or
 *              timed out (10 s) under them, or the reply was wrong
 *   broken     connections that broke (EOF, reset) or timed out
 *   refused    connection attempts refused (ECONNREFUSED). A broken
 *              connection is redialled at once; a refused attempt is
 *              retried 1 ms later (one process, 16 connections: 16,000
 *              attempts a second at most)
 *   gap        the longest time between two good replies, on any
 *              connections (the blackout as the client sees it); and the
 *              longest any single request waited (max_wait)
 *
 * Each good reply is counted in a 10 ms bucket of CLOCK_MONOTONIC time
 * (the series, for throughput over time); its times are absolute, so the
 * driver can place its own events (the update) on them. The summary is
 * "name value" lines on stdout; the series, with --series, one count per
 * line after a "# start_ns bucket_ns" header; with --gaps, every gap of
 * 0.25 ms or more, "start_ns end_ns" per line. --ready-file is written once
 * every connection has had a good reply.
 *
 * verify: C threads read every key back with pipelined gets of 100 keys,
 * and print "lost" (no value) and "corrupt" (a wrong value).
 *
 * Exit 0 when it could do its job (the counts say how the server did),
 * 1 on a usage or setup error.
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
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define KEY_FMT "bk:%09u"
#define KEY_LEN 12
#define VALUE_MAX 4096
#define CONNS_MAX 1024
#define THREADS_MAX 32
#define LOAD_BATCH 1000
#define VERIFY_KEYS 100  /* keys per get */
#define VERIFY_DEPTH 10  /* gets in flight per connection */
#define BUCKET_NS 10000000ull /* 10 ms */
#define TIMEOUT_NS 10000000000ull /* 10 s */
#define RETRY_NS 1000000ull       /* after a refused attempt */
#define GAPS_MAX 16
#define ALL_GAPS_MIN_NS 250000ull /* gaps written to --gaps: this long or longer */
#define ALL_GAPS_MAX (1u << 20)

static int port;
static unsigned items = 1000000, value_size = 100, nconns, get_pct = 90, nchurn = 1;
static double max_seconds = 600;
static const char *series_file, *ready_file, *gaps_file;
static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "blackout-client: %s: %s\n", what, strerror(err));
	exit(1);
}

/* KEY_FMT by hand (i < 10^9): 12 bytes and a NUL. */
static void key_of(unsigned i, char *key)
{
	memcpy(key, "bk:", 3);
	for (int j = KEY_LEN - 1; j >= 3; j--, i /= 10)
		key[j] = (char)('0' + i % 10);
	key[KEY_LEN] = '\0';
}

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* The value of key @i: its number, then letters from a hash of it. */
static void value_of(unsigned i, char *v)
{
	uint64_t h = splitmix64(i);
	int k = snprintf(v, value_size + 1, "%u:", i);

	for (unsigned j = (unsigned)k; j < value_size; j++) {
		if (j % 16 == 0)
			h = splitmix64(h);
		v[j] = (char)('a' + ((h >> (4 * (j % 16))) & 15));
	}
}

static bool value_is(unsigned i, const char *v)
{
	char want[VALUE_MAX + 1];

	value_of(i, want);
	return memcmp(want, v, value_size) == 0;
}

static int key_index(const char *k, size_t n, unsigned *ret)
{
	unsigned v = 0;

	if (n != KEY_LEN || memcmp(k, "bk:", 3) != 0)
		return -1;
	for (size_t j = 3; j < n; j++) {
		if (k[j] < '0' || k[j] > '9')
			return -1;
		v = v * 10 + (unsigned)(k[j] - '0');
	}
	*ret = v;
	return 0;
}

static struct sockaddr_in server_addr(void)
{
	return (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				     .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
}

/* ---------------------------------------------------------------------- */
/* Blocking connections: load and verify                                   */

struct bconn {
	int fd;
	char *buf;
	size_t off, len, cap;
};

static int bdial(struct bconn *c)
{
	struct sockaddr_in sa = server_addr();
	struct timeval tv = { .tv_sec = 30 };
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	c->cap = 1 << 20;
	c->buf = malloc(c->cap);
	c->off = c->len = 0;
	return c->buf ? 0 : -ENOMEM;
}

static void bclose(struct bconn *c)
{
	close(c->fd);
	free(c->buf);
}

static int bsend(struct bconn *c, const char *p, size_t n)
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

/* At least @want bytes unread in the buffer. */
static int bneed(struct bconn *c, size_t want)
{
	while (c->len - c->off < want) {
		ssize_t k;

		if (c->off) {
			memmove(c->buf, c->buf + c->off, c->len - c->off);
			c->len -= c->off;
			c->off = 0;
		}
		do
			k = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		while (k < 0 && errno == EINTR);
		if (k <= 0)
			return -1;
		c->len += (size_t)k;
	}
	return 0;
}

/* The next line, "\r\n" cut, NUL-terminated in place; NULL on a broken connection. */
static char *bline(struct bconn *c)
{
	for (size_t scanned = 0;;) {
		char *nl = memchr(c->buf + c->off + scanned, '\n', c->len - c->off - scanned);

		if (nl) {
			char *line = c->buf + c->off;

			if (nl == line || nl[-1] != '\r')
				return NULL;
			nl[-1] = '\0';
			c->off = (size_t)(nl - c->buf) + 1;
			return line;
		}
		scanned = c->len - c->off;
		if (bneed(c, scanned + 1) < 0)
			return NULL;
	}
}

static atomic_uint_fast64_t t_stored, t_errors, t_lost, t_corrupt, t_checked;
static unsigned nthreads;

static void *load_thread(void *arg)
{
	unsigned t = (unsigned)(uintptr_t)arg;
	size_t per = KEY_LEN + 32 + value_size + 2;
	char *out = malloc((size_t)LOAD_BATCH * per);
	struct bconn c;
	unsigned i = t;
	int r;

	if (!out)
		die("malloc", ENOMEM);
	r = bdial(&c);
	if (r < 0)
		die("connect", -r);
	while (i < items) {
		size_t len = 0;
		unsigned n = 0;

		for (; n < LOAD_BATCH && i < items; n++, i += nthreads) {
			char key[KEY_LEN + 1];

			key_of(i, key);
			len += (size_t)sprintf(out + len, "set %s 0 0 %u\r\n", key, value_size);
			value_of(i, out + len);
			len += value_size;
			memcpy(out + len, "\r\n", 2);
			len += 2;
		}
		if (bsend(&c, out, len) < 0)
			die("load: send", errno);
		for (unsigned k = 0; k < n; k++) {
			char *line = bline(&c);

			if (!line)
				die("load: connection broken", EPIPE);
			if (strcmp(line, "STORED") == 0)
				atomic_fetch_add(&t_stored, 1);
			else if (atomic_fetch_add(&t_errors, 1) < 5)
				fprintf(stderr, "blackout-client: load: '%s'\n", line);
		}
	}
	bclose(&c);
	free(out);
	return NULL;
}

static void *verify_thread(void *arg)
{
	unsigned t = (unsigned)(uintptr_t)arg;
	/* Keys of this thread: t, t + nthreads, ... Requests of VERIFY_KEYS of them. */
	unsigned mine = items > t ? (items - t + nthreads - 1) / nthreads : 0;
	size_t linemax = 8 + (size_t)VERIFY_KEYS * (KEY_LEN + 1) + 2;
	char *out = malloc((size_t)VERIFY_DEPTH * linemax);
	struct bconn c;
	unsigned next = 0; /* index among mine */
	int r;

	if (!out)
		die("malloc", ENOMEM);
	r = bdial(&c);
	if (r < 0)
		die("connect", -r);
	while (next < mine) {
		unsigned first = next, nreq = 0;
		size_t len = 0;

		for (; nreq < VERIFY_DEPTH && next < mine; nreq++) {
			len += (size_t)sprintf(out + len, "get");
			for (unsigned k = 0; k < VERIFY_KEYS && next < mine; k++, next++) {
				out[len++] = ' ';
				key_of(t + next * nthreads, out + len);
				len += KEY_LEN;
			}
			memcpy(out + len, "\r\n", 2);
			len += 2;
		}
		if (bsend(&c, out, len) < 0)
			die("verify: send", errno);
		/* The replies: hits in the order asked, END after each request. */
		unsigned expect = first;
		for (unsigned q = 0; q < nreq; q++) {
			unsigned end = first + (q + 1) * VERIFY_KEYS;

			if (end > next)
				end = next;
			for (;;) {
				char *line = bline(&c), key[KEY_LEN + 8];
				unsigned flags, bytes, idx;

				if (!line)
					die("verify: connection broken", EPIPE);
				if (strcmp(line, "END") == 0)
					break;
				if (sscanf(line, "VALUE %20s %u %u", key, &flags, &bytes) != 3 ||
				    key_index(key, strlen(key), &idx) < 0)
					die("verify: unexpected reply", EPROTO);
				/* Keys skipped up to this one: missing. */
				while (expect < end && t + expect * nthreads != idx) {
					atomic_fetch_add(&t_lost, 1);
					expect++;
				}
				if (expect == end)
					die("verify: a value for a key not asked", EPROTO);
				expect++;
				atomic_fetch_add(&t_checked, 1);
				if (bneed(&c, (size_t)bytes + 2) < 0)
					die("verify: connection broken", EPIPE);
				if (bytes != value_size || !value_is(idx, c.buf + c.off))
					atomic_fetch_add(&t_corrupt, 1);
				c.off += (size_t)bytes + 2;
			}
			while (expect < end) {
				atomic_fetch_add(&t_lost, 1);
				expect++;
			}
		}
	}
	bclose(&c);
	free(out);
	return NULL;
}

static void run_threads(void *(*fn)(void *))
{
	pthread_t tid[THREADS_MAX];

	nthreads = nconns ? nconns : 2;
	if (nthreads > THREADS_MAX)
		nthreads = THREADS_MAX;
	for (unsigned t = 0; t < nthreads; t++) {
		int r = pthread_create(&tid[t], NULL, fn, (void *)(uintptr_t)t);

		if (r)
			die("pthread_create", r);
	}
	for (unsigned t = 0; t < nthreads; t++)
		pthread_join(tid[t], NULL);
}

/* ---------------------------------------------------------------------- */
/* run: one thread, epoll, closed-loop connections                         */

enum { C_DOWN, C_CONNECTING, C_BUSY };
enum { OP_GET, OP_SET, OP_VERSION };

struct conn {
	int fd, state;
	bool churn, ever_up, up_once;
	int op;
	unsigned key;
	uint64_t sent_at, retry_at;
	char out[KEY_LEN + 40 + VALUE_MAX];
	size_t olen, opos;
	char in[KEY_LEN + 64 + VALUE_MAX];
	size_t ilen;
};

static struct {
	int epfd;
	uint64_t rng;
	uint64_t ok, gets, sets, versions, misses, failed, wrong, broken, refused, dial_errors, reconnects,
		timeouts, churned;
	uint64_t last_ok, max_gap, max_gap_end, max_wait;
	struct {
		uint64_t start, end;
	} gaps[GAPS_MAX]; /* the longest gaps over 1 ms, longest first */
	size_t ngaps;
	uint64_t (*all_gaps)[2]; /* every gap of ALL_GAPS_MIN_NS or more, in time order */
	size_t nall_gaps;
	uint64_t t0;
	uint32_t *buckets;
	size_t nbuckets, used_buckets;
	unsigned ready_left;
} R;

static uint64_t rnd(void)
{
	R.rng ^= R.rng << 13;
	R.rng ^= R.rng >> 7;
	R.rng ^= R.rng << 17;
	return R.rng;
}

static void note_gap(uint64_t start, uint64_t end)
{
	uint64_t len = end - start;
	size_t i;

	if (len >= ALL_GAPS_MIN_NS && R.nall_gaps < ALL_GAPS_MAX) {
		R.all_gaps[R.nall_gaps][0] = start;
		R.all_gaps[R.nall_gaps][1] = end;
		R.nall_gaps++;
	}
	if (len < 1000000)
		return;
	if (R.ngaps == GAPS_MAX && len <= R.gaps[GAPS_MAX - 1].end - R.gaps[GAPS_MAX - 1].start)
		return;
	i = R.ngaps < GAPS_MAX ? R.ngaps++ : GAPS_MAX - 1;
	while (i > 0 && R.gaps[i - 1].end - R.gaps[i - 1].start < len) {
		R.gaps[i] = R.gaps[i - 1];
		i--;
	}
	R.gaps[i].start = start;
	R.gaps[i].end = end;
}

static void good_reply(struct conn *c, uint64_t now)
{
	size_t b = (size_t)((now - R.t0) / BUCKET_NS);

	R.ok++;
	if (R.last_ok) {
		uint64_t gap = now - R.last_ok;

		if (gap > R.max_gap) {
			R.max_gap = gap;
			R.max_gap_end = now;
		}
		note_gap(R.last_ok, now);
	}
	R.last_ok = now;
	if (now - c->sent_at > R.max_wait)
		R.max_wait = now - c->sent_at;
	if (b < R.nbuckets) {
		R.buckets[b]++;
		if (b + 1 > R.used_buckets)
			R.used_buckets = b + 1;
	}
	if (!c->up_once) {
		c->up_once = true;
		if (--R.ready_left == 0 && ready_file) {
			FILE *f = fopen(ready_file, "we");

			if (f)
				fclose(f);
		}
	}
}

static int conn_watch(struct conn *c, uint32_t events, int op)
{
	struct epoll_event e = { .events = events, .data.ptr = c };

	return epoll_ctl(R.epfd, op, c->fd, &e);
}

static void conn_dial(struct conn *c, uint64_t now);

/* The connection is gone (@failed: with a request on it); dial again at once. */
static void conn_broken(struct conn *c, uint64_t now, bool failed)
{
	if (failed)
		R.failed++;
	R.broken++;
	close(c->fd);
	c->fd = -1;
	c->state = C_DOWN;
	conn_dial(c, now);
}

static void conn_request(struct conn *c, uint64_t now)
{
	char key[KEY_LEN + 1];

	if (c->churn) {
		c->op = OP_VERSION;
		c->olen = (size_t)sprintf(c->out, "version\r\n");
	} else {
		c->key = (unsigned)(rnd() % items);
		key_of(c->key, key);
		c->op = rnd() % 100 < get_pct ? OP_GET : OP_SET;
		if (c->op == OP_GET) {
			c->olen = (size_t)sprintf(c->out, "get %s\r\n", key);
		} else {
			c->olen = (size_t)sprintf(c->out, "set %s 0 0 %u\r\n", key, value_size);
			value_of(c->key, c->out + c->olen);
			c->olen += value_size;
			memcpy(c->out + c->olen, "\r\n", 2);
			c->olen += 2;
		}
	}
	c->opos = 0;
	c->ilen = 0;
	c->sent_at = now;
	c->state = C_BUSY;
	while (c->opos < c->olen) {
		ssize_t n = send(c->fd, c->out + c->opos, c->olen - c->opos, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN) {
				conn_watch(c, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
				return;
			}
			if (errno == EINTR)
				continue;
			conn_broken(c, now, true);
			return;
		}
		c->opos += (size_t)n;
	}
	conn_watch(c, EPOLLIN, EPOLL_CTL_MOD);
}

static void conn_connected(struct conn *c, uint64_t now)
{
	if (c->ever_up && !c->churn)
		R.reconnects++;
	c->ever_up = true;
	conn_request(c, now);
}

static void conn_dial(struct conn *c, uint64_t now)
{
	struct sockaddr_in sa = server_addr();
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0)
		die("socket", errno);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (c->churn) {
		/* Closed with a reset: no TIME_WAIT piling up, no port running out. */
		struct linger l = { .l_onoff = 1, .l_linger = 0 };

		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	}
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		conn_watch(c, EPOLLIN, EPOLL_CTL_ADD);
		conn_connected(c, now);
		return;
	}
	if (errno == EINPROGRESS) {
		c->state = C_CONNECTING;
		c->sent_at = now;
		conn_watch(c, EPOLLOUT, EPOLL_CTL_ADD);
		return;
	}
	if (errno == ECONNREFUSED)
		R.refused++;
	else
		R.dial_errors++;
	close(c->fd);
	c->fd = -1;
	c->state = C_DOWN;
	c->retry_at = now + RETRY_NS;
}

/* A complete reply in c->in? 1 good, 0 incomplete, -1 wrong (@miss: a get miss). */
static int parse_reply(struct conn *c, bool *miss)
{
	char *nl = memchr(c->in, '\n', c->ilen);
	size_t hl;

	*miss = false;
	if (!nl)
		return c->ilen >= sizeof(c->in) ? -1 : 0;
	hl = (size_t)(nl - c->in) + 1;
	switch (c->op) {
	case OP_VERSION:
		return hl == c->ilen && strncmp(c->in, "VERSION ", 8) == 0 ? 1 : -1;
	case OP_SET:
		return hl == c->ilen && hl == 8 && memcmp(c->in, "STORED\r\n", 8) == 0 ? 1 : -1;
	default:
		break;
	}
	if (hl == 5 && memcmp(c->in, "END\r\n", 5) == 0) {
		*miss = true;
		return hl == c->ilen ? 1 : -1;
	}
	/* "VALUE <key> 0 <n>\r\n" <n bytes> "\r\nEND\r\n" */
	char head[64];
	int hn = snprintf(head, sizeof(head), "VALUE " KEY_FMT " 0 %u\r\n", c->key, value_size);

	if ((size_t)hn != hl || memcmp(c->in, head, hl) != 0)
		return -1;
	if (c->ilen < hl + value_size + 7)
		return 0;
	if (c->ilen > hl + value_size + 7 || !value_is(c->key, c->in + hl) ||
	    memcmp(c->in + hl + value_size, "\r\nEND\r\n", 7) != 0)
		return -1;
	return 1;
}

static void conn_event(struct conn *c, uint32_t events, uint64_t now)
{
	if (c->state == C_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err == 0 && (events & EPOLLOUT)) {
			conn_connected(c, now);
			return;
		}
		if (err == 0)
			return;
		if (err == ECONNREFUSED)
			R.refused++;
		else
			R.dial_errors++;
		epoll_ctl(R.epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
		c->state = C_DOWN;
		c->retry_at = now + RETRY_NS;
		return;
	}
	if (c->state != C_BUSY)
		return;
	if (c->opos < c->olen && (events & EPOLLOUT)) {
		ssize_t n = send(c->fd, c->out + c->opos, c->olen - c->opos, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			conn_broken(c, now, true);
			return;
		}
		if (n > 0)
			c->opos += (size_t)n;
		if (c->opos == c->olen)
			conn_watch(c, EPOLLIN, EPOLL_CTL_MOD);
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	for (;;) {
		ssize_t n = recv(c->fd, c->in + c->ilen, sizeof(c->in) - c->ilen, MSG_DONTWAIT);
		bool miss;
		int r;

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			conn_broken(c, now, true);
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return; /* EAGAIN: the rest later */
		}
		c->ilen += (size_t)n;
		r = parse_reply(c, &miss);
		if (r == 0)
			continue;
		if (r < 0) {
			/* A wrong reply: the stream cannot be trusted any more. */
			R.wrong++;
			if (R.wrong <= 5)
				fprintf(stderr, "blackout-client: wrong reply to %s: '%.*s'\n",
					c->op == OP_GET ? "get" : c->op == OP_SET ? "set" : "version",
					(int)(c->ilen < 80 ? c->ilen : 80), c->in);
			conn_broken(c, now, true);
			return;
		}
		if (miss) {
			R.misses++;
		} else {
			good_reply(c, now);
			*(c->op == OP_GET ? &R.gets : c->op == OP_SET ? &R.sets : &R.versions) += 1;
		}
		if (c->churn) {
			R.churned++;
			epoll_ctl(R.epfd, EPOLL_CTL_DEL, c->fd, NULL);
			close(c->fd);
			c->fd = -1;
			c->state = C_DOWN;
			conn_dial(c, now);
		} else {
			conn_request(c, now);
		}
		return;
	}
}

static void print_summary(void)
{
	printf("ok %" PRIu64 "\ngets %" PRIu64 "\nsets %" PRIu64 "\nversions %" PRIu64 "\nmisses %" PRIu64
	       "\nfailed %" PRIu64 "\nwrong %" PRIu64 "\nbroken %" PRIu64 "\nrefused %" PRIu64
	       "\ndial_errors %" PRIu64 "\nreconnects %" PRIu64 "\ntimeouts %" PRIu64 "\nchurned %" PRIu64
	       "\nmax_gap_ns %" PRIu64 "\nmax_gap_end_ns %" PRIu64 "\nmax_wait_ns %" PRIu64 "\nstart_ns %" PRIu64
	       "\n",
	       R.ok, R.gets, R.sets, R.versions, R.misses, R.failed, R.wrong, R.broken, R.refused, R.dial_errors,
	       R.reconnects, R.timeouts, R.churned, R.max_gap, R.max_gap_end, R.max_wait, R.t0);
	for (size_t i = 0; i < R.ngaps; i++)
		printf("gap %" PRIu64 " %" PRIu64 "\n", R.gaps[i].start, R.gaps[i].end);
}

static int run(void)
{
	unsigned total = nconns + nchurn;
	struct conn *conns = calloc(total, sizeof(*conns));
	struct epoll_event ev[256];
	uint64_t end;

	if (!conns)
		die("calloc", ENOMEM);
	R.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (R.epfd < 0)
		die("epoll_create1", errno);
	R.rng = (uint64_t)now_ns() | 1;
	R.nbuckets = (size_t)(max_seconds * 1e9 / BUCKET_NS) + 1;
	R.buckets = calloc(R.nbuckets, sizeof(*R.buckets));
	if (!R.buckets)
		die("calloc", ENOMEM);
	R.all_gaps = calloc(ALL_GAPS_MAX, sizeof(*R.all_gaps));
	if (!R.all_gaps)
		die("calloc", ENOMEM);
	R.t0 = now_ns();
	end = R.t0 + (uint64_t)(max_seconds * 1e9);
	R.ready_left = total;
	for (unsigned i = 0; i < total; i++) {
		conns[i].churn = i >= nconns;
		conns[i].fd = -1;
		conn_dial(&conns[i], R.t0);
	}
	while (!stopping) {
		uint64_t now = now_ns();
		int timeout = 100, n;

		if (now >= end)
			break;
		for (unsigned i = 0; i < total; i++) {
			struct conn *c = &conns[i];

			if (c->state == C_DOWN) {
				if (now >= c->retry_at)
					conn_dial(c, now);
				if (c->state == C_DOWN)
					timeout = 1;
			} else if (now - c->sent_at > TIMEOUT_NS) {
				R.timeouts++;
				epoll_ctl(R.epfd, EPOLL_CTL_DEL, c->fd, NULL);
				conn_broken(c, now, c->state == C_BUSY);
			}
		}
		n = epoll_wait(R.epfd, ev, (int)(sizeof(ev) / sizeof(ev[0])), timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait", errno);
		}
		now = now_ns();
		for (int i = 0; i < n; i++)
			conn_event(ev[i].data.ptr, ev[i].events, now);
	}
	print_summary();
	if (series_file) {
		FILE *f = fopen(series_file, "we");

		if (!f)
			die(series_file, errno);
		fprintf(f, "# %" PRIu64 " %llu\n", R.t0, BUCKET_NS);
		for (size_t b = 0; b < R.used_buckets; b++)
			fprintf(f, "%u\n", R.buckets[b]);
		if (fclose(f) != 0)
			die(series_file, errno);
	}
	if (gaps_file) {
		FILE *f = fopen(gaps_file, "we");

		if (!f)
			die(gaps_file, errno);
		for (size_t i = 0; i < R.nall_gaps; i++)
			fprintf(f, "%" PRIu64 " %" PRIu64 "\n", R.all_gaps[i][0], R.all_gaps[i][1]);
		if (fclose(f) != 0)
			die(gaps_file, errno);
	}
	free(R.all_gaps);
	for (unsigned i = 0; i < total; i++)
		if (conns[i].fd >= 0)
			close(conns[i].fd);
	free(conns);
	free(R.buckets);
	return 0;
}

/* ---------------------------------------------------------------------- */

static unsigned parse_count(const char *opt, const char *s, unsigned min, unsigned max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end != s && (*end == 'K' || *end == 'k'))
		v *= 1e3, end++;
	else if (end != s && *end == 'M')
		v *= 1e6, end++;
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "blackout-client: %s must be in [%u, %u], not '%s'\n", opt, min, max, s);
		exit(1);
	}
	return (unsigned)v;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: blackout-client load|run|verify --port N --items N [--value-size B] [--conns C]\n"
		   "                       [--get-pct P] [--churn K] [--series FILE] [--ready-file FILE]\n"
		   "                       [--gaps FILE] [--max-seconds S]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },	 { "items", required_argument, NULL, 'n' },
		{ "value-size", required_argument, NULL, 'v' }, { "conns", required_argument, NULL, 'c' },
		{ "get-pct", required_argument, NULL, 'g' },	 { "churn", required_argument, NULL, 'C' },
		{ "series", required_argument, NULL, 's' },	 { "ready-file", required_argument, NULL, 'r' },
		{ "max-seconds", required_argument, NULL, 'S' }, { "gaps", required_argument, NULL, 'G' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct sigaction sa = { .sa_handler = on_stop };
	const char *mode;
	int o;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'p':
			port = (int)parse_count("--port", optarg, 1, 65535);
			break;
		case 'n':
			items = parse_count("--items", optarg, 1, 999999999);
			break;
		case 'v':
			value_size = parse_count("--value-size", optarg, 16, VALUE_MAX);
			break;
		case 'c':
			nconns = parse_count("--conns", optarg, 1, CONNS_MAX);
			break;
		case 'g':
			get_pct = parse_count("--get-pct", optarg, 0, 100);
			break;
		case 'C':
			nchurn = parse_count("--churn", optarg, 0, 64);
			break;
		case 's':
			series_file = optarg;
			break;
		case 'r':
			ready_file = optarg;
			break;
		case 'G':
			gaps_file = optarg;
			break;
		case 'S':
			max_seconds = parse_count("--max-seconds", optarg, 1, 3600);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind + 1 != argc || !port) {
		usage(stderr);
		return 1;
	}
	mode = argv[optind];
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(mode, "load") == 0) {
		uint64_t t = now_ns();

		run_threads(load_thread);
		printf("stored %" PRIu64 "\nerrors %" PRIu64 "\nseconds %.3f\n", (uint64_t)t_stored,
		       (uint64_t)t_errors, (now_ns() - t) / 1e9);
		return 0;
	}
	if (strcmp(mode, "verify") == 0) {
		uint64_t t = now_ns();

		run_threads(verify_thread);
		printf("checked %" PRIu64 "\nlost %" PRIu64 "\ncorrupt %" PRIu64 "\nseconds %.3f\n",
		       (uint64_t)t_checked, (uint64_t)t_lost, (uint64_t)t_corrupt, (now_ns() - t) / 1e9);
		return 0;
	}
	if (strcmp(mode, "run") == 0) {
		if (!nconns)
			nconns = 16;
		return run();
	}
	usage(stderr);
	return 1;
}
