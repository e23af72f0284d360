/* SPDX-License-Identifier: MIT */
/*
 * kvcache: a memcached-protocol cache whose items live in a luo arena, and
 * that live-updates itself keeping its items, its listening socket and its
 * clients' open connections.
 *
 *   kvcache [--port N] [--port-file FILE] [--threads N] [--memory MiB]
 *           [--idle-timeout S] [--next BINARY] [--next-file FILE]
 *
 * DOC: lifecycle
 *
 * Start: luo_open() loads the components "kvcache-store" (the store's
 * format and where its root is) and "kvcache-conns" (one record per open
 * connection: its token, and its unprocessed input and unsent output, put
 * in the arena by the old image). If they came, the session "kvcache"
 * gives back the arena (token 1: items and index at the same address, no
 * copy, no fix-up), the listening socket (token 2) and every connection
 * (its record's token). Otherwise a fresh start: a new arena, a new
 * socket. Then the outgoing session "kvcache" preserves the arena, the
 * socket and each connection (and each new one at accept(), each closed
 * one unpreserved at close()): preserving costs nothing at update time.
 * The worker threads start, luo_ready() ends the blackout.
 *
 * Threads: the main thread polls the listening socket, a signalfd and the
 * control socket (luo_control_listen()); it accepts and hands each new
 * connection to the next worker, round-robin (a queue and an eventfd per
 * worker). Each of --threads workers has its own epoll and serves its
 * connections to completion: a request is read, executed and answered
 * (proto.c) between two epoll_wait()s.
 *
 * Live update (SIGHUP: luo_update_quiescing(); or `luoctl update --pid
 * PID NEW` on the control socket, where libluo checks the requester and
 * reads its request first). libluo reads both manifests and negotiates
 * while the workers serve -- a refusal there is logged and never pauses
 * them -- then calls update_quiesce(): the main thread quiesces the
 * workers -- each finishes the
 * events in hand and exits; the main thread joins them -- so no request is
 * half executed and no stripe lock is held. It copies each connection's
 * leftover bytes into the arena (bounded: past HANDOVER_BYTES_MAX or the
 * arena's room, connections are closed by the next image instead, the
 * biggest unfinished requests first; see recs_prepare()), records them
 * for "kvcache-conns", and libluo negotiates again, freezes and execs.
 * Clients meanwhile see a pause: requests wait in their sockets, new connections
 * in the listening socket's backlog -- it never closes, so none is
 * refused. If the update is refused by the second negotiation or fails,
 * the copies are freed and the same workers resume.
 *
 * Stop: SIGTERM or SIGINT: the workers are joined, every connection
 * closed, every buffer freed, the arena unmapped, libluo closed.
 *
 * Failures: a connection that cannot be preserved or served (limits,
 * memory) is closed, never the server; a handover that cannot be taken
 * (a component missing, the arena not where it was) is a fresh start with
 * the reason logged, the other pieces still taken (the socket above all).
 */

#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>

#include "kv.h"

#define SESSION "kvcache"
#define TOKEN_ARENA 1
#define TOKEN_LISTEN 2
/* A connection's token: this plus its fd in the image that preserved it. */
#define TOKEN_CONN_BASE 0x10000
/* Listening socket backlog: connections wait here during an update. */
#define LISTEN_BACKLOG 4096
/* Bytes read from one connection per event: the others get their turn. */
#define READ_PER_EVENT (256u << 10)
/* First size of a connection's input buffer. */
#define RBUF_INITIAL (16u << 10)
/* Buffers larger than this are given back once empty. */
#define BUF_KEEP_MAX (64u << 10)
/*
 * Bytes of connections' buffers (unexecuted input, unsent output) copied
 * into the arena at an update, at most: clients cannot make the quiesce
 * long, nor the update fail (see recs_prepare()). The arena's free room
 * is the other bound.
 */
#define HANDOVER_BYTES_MAX (256u << 20)
/* Connections accepted per wake of the main thread. */
#define ACCEPT_BATCH 64
/*
 * accept() out of fds or memory: the connection stays in the backlog and
 * the listener readable, so poll() would return at once, for ever. Stop
 * listening this long, as luod does (LUOD_ACCEPT_PAUSE_MS).
 */
#define ACCEPT_PAUSE_MS 100

/* ---------------------------------------------------------------------- */
/* Versioned state: the components                                         */

/*
 * "kvcache-store": where the store is and at which format it is handed
 * over. Its version is the store's in-region format (store.c, "DOC:
 * formats"): the payload is a fixed struct per version, in host order.
 */
struct kv_store_v1 {
	uint64_t root;   /* the arena's root, cross-checked with luo_arena_root() */
	uint64_t limit;  /* limit_maxbytes */
	uint32_t format; /* = the version */
	uint32_t nbuckets;
};
/* Format 2 changes the items, not what is handed over: the same struct. */
#define kv_store_v2 kv_store_v1
/* The live state: every field any format has (hash_seed 0 before format 3). */
struct kv_store_state {
	uint64_t root;
	uint64_t limit;
	uint32_t format;
	uint32_t nbuckets;
	uint64_t hash_seed;
};
struct kv_store_v3 {
	uint64_t root;
	uint64_t limit;
	uint32_t format;
	uint32_t nbuckets;
	uint64_t hash_seed;
};

/*
 * The types each format hands over, proven by the compiler (luo-describe
 * writes their descriptions into the binary after linking): the payload,
 * and the arena's root with everything reachable from it -- the items,
 * the hash table, the counters. A change to any of them without a new
 * format is refused before the switch, naming the struct and the member.
 */
#if KV_FORMAT_KNOWS(1)
LUO_PAYLOAD_TYPE(kv_store_v1_type, "kvcache-store", 1, struct kv_store_v1);
LUO_ARENA_TYPE(kv_arena_v1_type, "kvcache-store", 1, struct kv_root);
#endif
#if KV_FORMAT_KNOWS(2)
LUO_PAYLOAD_TYPE(kv_store_v2_type, "kvcache-store", 2, struct kv_store_v2);
LUO_ARENA_TYPE(kv_arena_v2_type, "kvcache-store", 2, struct kv_root);
#endif
#if KV_FORMAT_KNOWS(3)
LUO_PAYLOAD_TYPE(kv_store_v3_type, "kvcache-store", 3, struct kv_store_v3);
LUO_ARENA_TYPE(kv_arena_v3_type, "kvcache-store", 3, struct kv_root);
#endif

/*
 * "kvcache-conns" v1: an array of records, one per open connection. The
 * bytes (input not yet executed, output not yet sent) are in the arena.
 */
struct kv_conn_v1 {
	uint64_t token;   /* its fd in the session */
	uint64_t rbuf;    /* arena address of rlen input bytes, or 0 */
	uint64_t wbuf;    /* arena address of wlen output bytes, or 0 */
	uint64_t swallow; /* data bytes still to drop */
	uint32_t rlen;
	uint32_t wlen;
	uint32_t closing; /* 1: close once the output is out */
	uint32_t spare;   /* 0 */
};
/* The payload is an array of these. */
LUO_PAYLOAD_TYPE(kv_conn_v1_type, "kvcache-conns", 1, struct kv_conn_v1);

/* ---------------------------------------------------------------------- */
/* The server                                                              */

struct worker;

struct conn {
	int fd;
	uint64_t token;
	struct worker *w;
	struct conn *prev, *next; /* the worker's list, or its queue (next only) */
	char *rbuf;
	size_t rlen, rcap;
	struct kv_buf out;
	size_t wpos; /* bytes of out already sent */
	struct kv_proto p;
	uint32_t events; /* epoll interest */
	bool more;       /* input left to execute: come back when writable */
	time_t last_active; /* CLOCK_MONOTONIC seconds */
};

struct worker {
	pthread_t tid;
	bool running;
	int epfd, evfd;
	atomic_bool stop;
	struct conn *conns; /* owned by the thread while it runs, by main otherwise */
	pthread_mutex_t qlock;
	struct conn *queue; /* handed over by main, taken by the thread */
};

struct options {
	int port;
	const char *port_file;
	unsigned threads;
	unsigned memory_mb;
	unsigned idle_timeout;
	const char *next;
	const char *next_file;
	const char *populate;   /* --populate: off, low, idle or normal */
	bool hugepages;         /* not --no-hugepages: the arena collapsed into huge pages */
	char self[PATH_MAX];
	char bound[16];
	char threads_s[16], memory_s[16], idle_s[16];
};

static struct {
	struct options o;
	struct luo *luo;
	struct luo_session *out; /* outgoing "kvcache" */
	struct luo_arena *arena;
	struct kv_store st;
	bool store_ready;
	int listen_fd, sig_fd, ctl_fd;
	struct worker workers[KV_THREADS_MAX];
	unsigned next_worker;
	atomic_uint_fast64_t curr_conns;
	uint64_t failed_updates, last_quiesce_us;
	bool quiesce_failed; /* update_quiesce() refused: it logged and counted it */
	uint64_t accept_paused_until; /* mono ns; 0 or past: accepting */
	bool populating; /* the arena's populate thread runs; logged when it ends */
	bool populate_quiet;      /* a periodic --hugepages pass: logged only if it fails */
	uint64_t populate_end_ms; /* when the last pass ended (CLOCK_MONOTONIC) */

	/* Outgoing "kvcache-conns", prepared before luo_update(). */
	struct kv_conn_v1 *recs;
	size_t nrecs;
	/* "kvcache-store", declared state: outgoing, then what luo_open() loaded. */
	struct kv_store_state store;
	/* Incoming: what the loads found. */
	bool store_in;
	uint32_t store_in_version;
	struct kv_conn_v1 *conns_in;
	size_t nconns_in;
	bool conns_in_loaded;
} srv = { .listen_fd = -1, .sig_fd = -1, .ctl_fd = -1 };

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "kvcache[%d]: ", getpid());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void kv_server_stats(struct kv_server_stats *ret)
{
	struct luo_timings t;

	*ret = (struct kv_server_stats){
		.threads = srv.o.threads,
		.curr_connections = atomic_load(&srv.curr_conns),
		.liveupdate_number = srv.luo ? luo_liveupdate_number(srv.luo) : 0,
		.last_quiesce_us = srv.last_quiesce_us,
		.failed_updates = srv.failed_updates,
	};
	if (srv.luo && luo_timings(srv.luo, &t) == 0)
		ret->last_blackout_us = t.blackout_ns / 1000;
}

/* ---------------------------------------------------------------------- */
/* Components                                                              */

/*
 * "kvcache-store" is declared, not coded: each field once, with the
 * versions that carry it (fields.h). To an image that predates declared
 * state it goes as kv_store_v1 (formats 1, 2) or kv_store_v3, the fields
 * in this order. 'format' is the version itself: libluo writes it and a
 * load refuses another value. recs_prepare() fills the struct before
 * luo_update(); take_over() reads what luo_open() loaded into it.
 */
LUO_COMPONENT_STATE(store_component, "kvcache-store", KV_FORMAT_READ_MIN, KV_FORMAT_READ_MAX, KV_FORMAT_WRITE_MIN,
		    KV_FORMAT_WRITE_MAX, 0, struct kv_store_state, &srv.store,
		    LUO_STATE_VALUE(struct kv_store_state, root, 1, LUO_STATE_LATEST, LUO_STATE_REQUIRED, 0),
		    LUO_STATE_VALUE(struct kv_store_state, limit, 1, LUO_STATE_LATEST, LUO_STATE_REQUIRED, 0),
		    LUO_STATE_VALUE(struct kv_store_state, format, 1, LUO_STATE_LATEST,
				    LUO_STATE_REQUIRED | LUO_STATE_VERSION, 0),
		    LUO_STATE_VALUE(struct kv_store_state, nbuckets, 1, LUO_STATE_LATEST, LUO_STATE_REQUIRED, 0),
		    LUO_STATE_VALUE(struct kv_store_state, hash_seed, 3, LUO_STATE_LATEST, 0, 0));

static int conns_save(uint32_t version, struct luo_payload *out)
{
	if (version != 1)
		return -EPROTO;
	if (srv.nrecs == 0)
		return 0;
	return luo_payload_write(out, srv.recs, srv.nrecs * sizeof(*srv.recs));
}

static int conns_load(uint32_t version, const void *data, size_t len)
{
	size_t n = len / sizeof(struct kv_conn_v1);

	if (version != 1)
		return -EPROTO;
	if (len % sizeof(struct kv_conn_v1) || n > KV_CONNS_MAX)
		return -EBADMSG;
	free(srv.conns_in);
	srv.conns_in = NULL;
	if (n) {
		srv.conns_in = malloc(len);
		if (!srv.conns_in)
			return -ENOMEM;
		memcpy(srv.conns_in, data, len);
	}
	srv.nconns_in = n;
	srv.conns_in_loaded = true;
	return 0;
}

LUO_COMPONENT(conns_component, "kvcache-conns", 1, 1, 1, 1, 0, conns_save, conns_load);

/* ---------------------------------------------------------------------- */
/* Connections                                                             */

static time_t mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void conn_free(struct conn *c)
{
	free(c->rbuf);
	kv_buf_free(&c->out);
	free(c);
}

/* Remove from its worker, unpreserve, close, free. */
/*
 * The workers' lists change under this lock, so that "stats conns", served
 * on one worker's thread, can walk the others' (adopt and close are rare
 * next to commands).
 */
static pthread_mutex_t conns_lock = PTHREAD_MUTEX_INITIALIZER;

static void addr_str(int fd, bool peer, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN];
	int r = peer ? getpeername(fd, (struct sockaddr *)&ss, &sl) : getsockname(fd, (struct sockaddr *)&ss, &sl);

	if (r == 0 && ss.ss_family == AF_INET &&
	    inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host)))
		snprintf(buf, len, "tcp:%s:%u", host, ntohs(((struct sockaddr_in *)&ss)->sin_port));
	else if (r == 0 && ss.ss_family == AF_INET6 &&
		 inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof(host)))
		snprintf(buf, len, "tcp6:[%s]:%u", host, ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
	else
		snprintf(buf, len, "unknown");
}

static void stat_conn_line(struct kv_buf *out, int fd, const char *name, const char *value)
{
	char line[192];
	int n = snprintf(line, sizeof(line), "STAT %d:%s %s\r\n", fd, name, value);

	if (n > 0 && (size_t)n < sizeof(line))
		kv_buf_append(out, line, (size_t)n);
}

/* memcached's "stats conns": the listening socket, then every connection. */
static void stats_conns(struct kv_buf *out)
{
	time_t now = mono_s();
	char a[96], l[96], secs[32];

	if (srv.listen_fd >= 0) {
		addr_str(srv.listen_fd, false, a, sizeof(a));
		stat_conn_line(out, srv.listen_fd, "addr", a);
		stat_conn_line(out, srv.listen_fd, "state", "conn_listening");
		stat_conn_line(out, srv.listen_fd, "secs_since_last_cmd", "0");
	}
	pthread_mutex_lock(&conns_lock);
	for (unsigned i = 0; i < srv.o.threads; i++) {
		for (const struct conn *c = srv.workers[i].conns; c; c = c->next) {
			time_t last = __atomic_load_n(&c->last_active, __ATOMIC_RELAXED);

			addr_str(c->fd, true, a, sizeof(a));
			addr_str(c->fd, false, l, sizeof(l));
			snprintf(secs, sizeof(secs), "%lld", (long long)(now > last ? now - last : 0));
			stat_conn_line(out, c->fd, "addr", a);
			stat_conn_line(out, c->fd, "listen_addr", l);
			/* Another worker's connection: only what reads safely from here. */
			stat_conn_line(out, c->fd, "state", "conn_parse_cmd");
			stat_conn_line(out, c->fd, "secs_since_last_cmd", secs);
		}
	}
	pthread_mutex_unlock(&conns_lock);
}

static void conn_close(struct conn *c)
{
	struct worker *w = c->w;

	pthread_mutex_lock(&conns_lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&conns_lock);
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	if (srv.out)
		luo_session_unpreserve_fd(srv.out, c->token);
	close(c->fd);
	conn_free(c);
	atomic_fetch_sub(&srv.curr_conns, 1);
}

static int conn_interest(struct conn *c)
{
	size_t pending = c->out.len - c->wpos;
	uint32_t ev = 0;

	if (!c->p.closing && pending < KV_WBUF_SOFT_MAX && c->rlen < KV_RBUF_MAX)
		ev |= EPOLLIN;
	if (pending || c->more)
		ev |= EPOLLOUT;
	if (ev == c->events)
		return 0;
	struct epoll_event e = { .events = ev, .data.ptr = c };

	if (epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &e) < 0)
		return -errno;
	c->events = ev;
	return 0;
}

/* Send what is pending. 0, or -errno: the connection is to be closed. */
static int conn_flush(struct conn *c)
{
	while (c->wpos < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + c->wpos, c->out.len - c->wpos, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return errno == EINTR ? conn_flush(c) : 0;
			return -errno;
		}
		c->wpos += (size_t)n;
		__atomic_store_n(&c->last_active, mono_s(), __ATOMIC_RELAXED); /* a client reading a long reply is not idle */
	}
	c->out.len = c->wpos = 0;
	if (c->out.cap > BUF_KEEP_MAX)
		kv_buf_free(&c->out);
	return 0;
}

/*
 * Execute what the input holds, as far as the output allows. Return 1 if
 * some input was used, 0 if none could be, or -errno (close).
 */
static int conn_execute(struct conn *c)
{
	ptrdiff_t used;

	if (c->wpos) {
		/* What was sent goes: the output's length is what is pending. */
		memmove(c->out.data, c->out.data + c->wpos, c->out.len - c->wpos);
		c->out.len -= c->wpos;
		c->wpos = 0;
	}
	if (c->rlen == 0 || c->out.len > KV_WBUF_SOFT_MAX)
		return 0;
	used = kv_proto_execute(&srv.st, &c->p, c->rbuf, c->rlen, &c->out);
	if (used < 0)
		return (int)used;
	if (used > 0) {
		memmove(c->rbuf, c->rbuf + used, c->rlen - (size_t)used);
		c->rlen -= (size_t)used;
	}
	if (c->rlen == 0 && c->rcap > BUF_KEEP_MAX) {
		free(c->rbuf);
		c->rbuf = NULL;
		c->rcap = 0;
	}
	/* Full of one command that can never complete: cannot happen with the limits; never loop. */
	if (c->rlen >= KV_RBUF_MAX)
		return -ENOBUFS;
	return used > 0;
}

/* Read what is there (bounded); 0, 1 at end of input, or -errno. */
static int conn_read(struct conn *c)
{
	size_t got = 0;

	while (got < READ_PER_EVENT && c->rlen < KV_RBUF_MAX) {
		ssize_t n;

		if (c->rlen == c->rcap) {
			size_t cap = c->rcap ? c->rcap * 2 : RBUF_INITIAL;
			char *p;

			if (cap > KV_RBUF_MAX)
				cap = KV_RBUF_MAX;
			p = realloc(c->rbuf, cap);
			if (!p)
				return -ENOMEM;
			c->rbuf = p;
			c->rcap = cap;
		}
		n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, MSG_DONTWAIT);
		if (n == 0)
			return 1;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -errno;
		}
		c->rlen += (size_t)n;
		got += (size_t)n;
		__atomic_store_n(&c->last_active, mono_s(), __ATOMIC_RELAXED);
		/* Execute as we go: a pipelining client's input need not all fit. */
		if (c->rlen == c->rcap) {
			int r = conn_execute(c);

			if (r < 0)
				return r;
			r = conn_flush(c);
			if (r < 0)
				return r;
			if (c->p.closing || c->out.len - c->wpos > KV_WBUF_SOFT_MAX)
				return 0;
		}
	}
	return 0;
}

/* Rounds of execute-and-send per event: then the other connections get their turn. */
#define ROUNDS_PER_EVENT 16

/* An event, or a kick (@readable: try reading). Closes the connection when it is done. */
static void conn_run(struct conn *c, bool readable)
{
	int r = 0, eof = 0, rounds;
	bool full;

	if (readable && !c->p.closing && c->out.len - c->wpos <= KV_WBUF_SOFT_MAX) {
		eof = conn_read(c);
		if (eof < 0)
			goto close;
	}
	/* Send, execute, and again while that used input (and the socket took the output). */
	for (rounds = 0;; rounds++) {
		int progress;

		r = conn_flush(c);
		if (r < 0)
			goto close;
		if (rounds == ROUNDS_PER_EVENT)
			break;
		full = c->out.len - c->wpos > KV_WBUF_SOFT_MAX;
		progress = conn_execute(c);
		if (progress < 0)
			goto close;
		if (!progress || c->p.closing) {
			if (conn_flush(c) < 0)
				goto close;
			/*
			 * Held back by output that the socket has now taken: go on.
			 * Stopping here would wait for input that may never come
			 * (a client that sent its last request and reads).
			 */
			if (full && !c->p.closing && c->rlen && c->wpos == c->out.len)
				continue;
			break;
		}
	}
	/* Out of rounds with input left: EPOLLOUT (writable at once) brings it back. */
	c->more = rounds == ROUNDS_PER_EVENT && c->rlen;
	if (eof)
		c->p.closing = true; /* the replies still go out, if the peer reads them */
	if (c->p.closing && c->out.len == c->wpos)
		goto close;
	if (conn_interest(c) < 0)
		goto close;
	return;
close:
	conn_close(c);
}

static struct conn *conn_new(int fd, uint64_t token)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fd = fd;
	c->token = token;
	__atomic_store_n(&c->last_active, mono_s(), __ATOMIC_RELAXED);
	return c;
}

/* Put @c in @w's list and epoll. Main thread, workers stopped, or the worker itself. */
static int worker_adopt(struct worker *w, struct conn *c)
{
	struct epoll_event e = { .events = EPOLLIN, .data.ptr = c };

	c->w = w;
	c->events = EPOLLIN;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &e) < 0)
		return -errno;
	pthread_mutex_lock(&conns_lock);
	c->prev = NULL;
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	pthread_mutex_unlock(&conns_lock);
	return 0;
}

/* Take the connections main handed over; with @run, serve what they have. */
static void worker_take_queue(struct worker *w, bool run)
{
	struct conn *q, *next;

	pthread_mutex_lock(&w->qlock);
	q = w->queue;
	w->queue = NULL;
	pthread_mutex_unlock(&w->qlock);
	for (; q; q = next) {
		next = q->next;
		q->w = w;
		q->prev = q->next = NULL;
		if (worker_adopt(w, q) < 0) {
			/* Not in the list: close by hand. */
			if (srv.out)
				luo_session_unpreserve_fd(srv.out, q->token);
			close(q->fd);
			conn_free(q);
			atomic_fetch_sub(&srv.curr_conns, 1);
			continue;
		}
		if (run)
			conn_run(q, true);
	}
}

static void worker_sweep(struct worker *w)
{
	time_t now = mono_s();
	struct conn *c, *next;

	if (!srv.o.idle_timeout)
		return;
	for (c = w->conns; c; c = next) {
		next = c->next;
		if (now - c->last_active > (time_t)srv.o.idle_timeout) {
			KV_COUNT(&srv.st, conn_timeouts, 1);
			conn_close(c);
		}
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event ev[64];
	time_t last_sweep = mono_s();
	struct conn *c, *next;

	/* What came in the handover, or waited through a refused update. */
	for (c = w->conns; c; c = next) {
		next = c->next;
		conn_run(c, true);
	}
	worker_take_queue(w, true);
	while (!atomic_load(&w->stop)) {
		int n = epoll_wait(w->epfd, ev, (int)ARRAY_SIZE(ev), 1000);

		for (int i = 0; i < n; i++) {
			if (!ev[i].data.ptr) {
				uint64_t v;

				if (read(w->evfd, &v, sizeof(v)) < 0) {
					/* EAGAIN: another wake took it */
				}
				worker_take_queue(w, true);
				continue;
			}
			c = ev[i].data.ptr;
			conn_run(c, ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP));
		}
		if (mono_s() != last_sweep) {
			last_sweep = mono_s();
			worker_sweep(w);
		}
	}
	return NULL;
}

static int workers_init(void)
{
	for (unsigned i = 0; i < srv.o.threads; i++) {
		struct worker *w = &srv.workers[i];
		struct epoll_event e = { .events = EPOLLIN, .data.ptr = NULL };

		pthread_mutex_init(&w->qlock, NULL);
		w->epfd = epoll_create1(EPOLL_CLOEXEC);
		w->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (w->epfd < 0 || w->evfd < 0 || epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &e) < 0)
			return -errno;
	}
	return 0;
}

static int workers_start(void)
{
	for (unsigned i = 0; i < srv.o.threads; i++) {
		struct worker *w = &srv.workers[i];
		int r;

		atomic_store(&w->stop, false);
		r = pthread_create(&w->tid, NULL, worker_main, w);
		if (r)
			return -r;
		w->running = true;
	}
	return 0;
}

/*
 * Quiesce: every worker finishes the events in hand and exits. Afterwards
 * the main thread owns every connection, queued ones included.
 */
static void workers_stop(void)
{
	uint64_t one = 1;

	for (unsigned i = 0; i < srv.o.threads; i++) {
		atomic_store(&srv.workers[i].stop, true);
		if (write(srv.workers[i].evfd, &one, sizeof(one)) < 0) {
			/* the counter is full: the worker is awake anyway */
		}
	}
	for (unsigned i = 0; i < srv.o.threads; i++) {
		if (srv.workers[i].running)
			pthread_join(srv.workers[i].tid, NULL);
		srv.workers[i].running = false;
		worker_take_queue(&srv.workers[i], false);
	}
}

static void workers_fini(void)
{
	for (unsigned i = 0; i < srv.o.threads; i++) {
		struct worker *w = &srv.workers[i];

		while (w->conns)
			conn_close(w->conns);
		kv_safe_close(w->epfd);
		kv_safe_close(w->evfd);
		pthread_mutex_destroy(&w->qlock);
	}
}

/* Hand a connection to the next worker, round-robin. */
static void dispatch(struct conn *c)
{
	struct worker *w = &srv.workers[srv.next_worker++ % srv.o.threads];
	uint64_t one = 1;

	pthread_mutex_lock(&w->qlock);
	c->next = w->queue;
	w->queue = c;
	pthread_mutex_unlock(&w->qlock);
	if (write(w->evfd, &one, sizeof(one)) < 0) {
		/* counter full: the worker has a wake pending */
	}
}

static void accept_some(void)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int one = 1, r, fd = accept4(srv.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		struct conn *c;

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				if (!srv.accept_paused_until)
					logf_("accept: %s; not accepting for %d ms", strerror(errno), ACCEPT_PAUSE_MS);
				srv.accept_paused_until = mono_ns() + (uint64_t)ACCEPT_PAUSE_MS * 1000000;
			} else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
				logf_("accept: %s", strerror(errno));
			}
			return;
		}
		srv.accept_paused_until = 0;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		KV_COUNT(&srv.st, total_connections, 1);
		if (atomic_load(&srv.curr_conns) >= KV_CONNS_MAX) {
			static const char msg[] = "ERROR Too many open connections\r\n";

			KV_COUNT(&srv.st, rejected_connections, 1);
			if (send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
				/* the client is gone already */
			}
			close(fd);
			continue;
		}
		c = conn_new(fd, TOKEN_CONN_BASE + (uint64_t)fd);
		r = c ? luo_session_preserve_fd(srv.out, fd, c->token) : -ENOMEM;
		if (r < 0) {
			static const char msg[] = "SERVER_ERROR cannot keep the connection\r\n";

			logf_("connection not preserved (closed): %s", strerror(-r));
			KV_COUNT(&srv.st, rejected_connections, 1);
			if (send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
				/* the client is gone already */
			}
			close(fd);
			free(c);
			continue;
		}
		atomic_fetch_add(&srv.curr_conns, 1);
		dispatch(c);
	}
}

/* ---------------------------------------------------------------------- */
/* Live update                                                             */

static void recs_free(void)
{
	for (size_t i = 0; i < srv.nrecs; i++) {
		if (srv.recs[i].rbuf)
			luo_arena_free(srv.arena, (void *)(uintptr_t)srv.recs[i].rbuf);
		if (srv.recs[i].wbuf)
			luo_arena_free(srv.arena, (void *)(uintptr_t)srv.recs[i].wbuf);
	}
	free(srv.recs);
	srv.recs = NULL;
	srv.nrecs = 0;
}

static int copy_to_arena(const char *data, size_t len, uint64_t *ret)
{
	void *p;

	if (len == 0) {
		*ret = 0;
		return 0;
	}
	p = luo_arena_alloc(srv.arena, len);
	if (!p)
		return -ENOMEM;
	memcpy(p, data, len);
	*ret = (uint64_t)(uintptr_t)p;
	return 0;
}

/* A connection's pending bytes, to be copied into the arena (recs_prepare()). */
struct pending {
	size_t len;
	size_t rec; /* index in srv.recs */
	const char *data;
};

static int pending_cmp(const void *a, const void *b)
{
	const struct pending *x = a, *y = b;

	return x->len < y->len ? -1 : x->len > y->len;
}

/*
 * Copy each pending buffer of @v (@n of them), smallest first, while the
 * total stays within HANDOVER_BYTES_MAX and the arena has room; the
 * address goes to the record's rbuf (@input) or wbuf. Output that does
 * not fit marks its record in @dropped (the caller settles it; its input
 * is skipped); input that does not fit is not handed over, and its
 * connection closes once its replies are out. Return how many buffers
 * did not fit.
 */
static size_t pending_copy(struct pending *v, size_t n, bool input, bool *dropped, size_t *total)
{
	size_t missed = 0;

	qsort(v, n, sizeof(*v), pending_cmp);
	for (size_t i = 0; i < n; i++) {
		struct kv_conn_v1 *rec = &srv.recs[v[i].rec];

		if (dropped[v[i].rec])
			continue;
		if (v[i].len > HANDOVER_BYTES_MAX - *total ||
		    copy_to_arena(v[i].data, v[i].len, input ? &rec->rbuf : &rec->wbuf) < 0) {
			missed++;
			if (input) {
				/* Not executed, not answered: its replies so far go out, then it closes. */
				rec->rlen = 0;
				rec->swallow = 0;
				rec->closing = 1;
			} else {
				dropped[v[i].rec] = true;
			}
			continue;
		}
		*total += v[i].len;
	}
	return missed;
}

/*
 * Workers stopped: one record per connection, its leftover bytes in the
 * arena. What clients hold never refuses the update: the bytes handed
 * over are bounded (HANDOVER_BYTES_MAX, and the arena's room). Output
 * (replies to executed commands) is copied first, smallest first; a
 * connection whose output does not fit is closed by the next image at
 * once. Then input (commands not executed yet, never answered), smallest
 * first: a connection whose input does not fit -- the biggest unfinished
 * requests -- gets its replies so far, then is closed. Its unexecuted
 * commands are not executed; nothing stored is lost. Both counts are
 * logged. If the update does not happen, recs_free() drops the copies
 * and every connection goes on as it was.
 */
static int recs_prepare(void)
{
	size_t n = atomic_load(&srv.curr_conns), k = 0, nout = 0, nin = 0, total = 0, cut_in, cut_out;
	_cleanup_free_ struct pending *outs = NULL;
	_cleanup_free_ struct pending *ins = NULL;
	_cleanup_free_ bool *dropped = NULL;

	/* "kvcache-store": where the store is; format is written by libluo (the version). */
	if (!srv.store_ready)
		return -EPROTO;
	srv.store = (struct kv_store_state){
		.root = (uint64_t)(uintptr_t)srv.st.root,
		.limit = srv.st.root->limit,
		.nbuckets = srv.st.root->nbuckets,
		.hash_seed = srv.st.root->hash_seed,
	};

	srv.recs = calloc(n ? n : 1, sizeof(*srv.recs));
	outs = calloc(n ? n : 1, sizeof(*outs));
	ins = calloc(n ? n : 1, sizeof(*ins));
	dropped = calloc(n ? n : 1, sizeof(*dropped));
	if (!srv.recs || !outs || !ins || !dropped)
		return -ENOMEM;
	for (unsigned i = 0; i < srv.o.threads; i++) {
		for (struct conn *c = srv.workers[i].conns; c; c = c->next) {
			struct kv_conn_v1 *rec;

			if (k == n)
				return -EOVERFLOW; /* the count is wrong: do not hand over half */
			rec = &srv.recs[k];
			rec->token = c->token;
			rec->swallow = c->p.swallow;
			rec->closing = c->p.closing;
			rec->rlen = (uint32_t)c->rlen;
			rec->wlen = (uint32_t)(c->out.len - c->wpos);
			if (rec->wlen)
				outs[nout++] = (struct pending){ rec->wlen, k, c->out.data + c->wpos };
			if (rec->rlen)
				ins[nin++] = (struct pending){ rec->rlen, k, c->rbuf };
			srv.nrecs = ++k;
		}
	}
	cut_out = pending_copy(outs, nout, false, dropped, &total);
	cut_in = pending_copy(ins, nin, true, dropped, &total);
	/* Output that did not fit: nothing of the connection is handed over, the next image closes it. */
	for (size_t i = 0; i < k; i++)
		if (dropped[i])
			srv.recs[i] = (struct kv_conn_v1){ .token = srv.recs[i].token, .closing = 1 };
	if (cut_in || cut_out)
		logf_("update: %zu bytes of connection buffers handed over (at most %u MiB, and the arena's room); "
		      "closed by the next image: %zu connection(s) whose unexecuted commands did not fit, after "
		      "their replies; %zu whose replies did not fit, at once",
		      total, HANDOVER_BYTES_MAX >> 20, cut_in, cut_out);
	return 0;
}

/* The binary to update to (see --next-file); 0 or -errno. */
static int next_binary(char *buf, size_t len)
{
	if (srv.o.next_file) {
		int fd = open(srv.o.next_file, O_RDONLY | O_CLOEXEC);
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
				return -EINVAL;
			buf[n] = '\0';
		}
		if (n > 0)
			return 0;
	}
	snprintf(buf, len, "%s", srv.o.next ? srv.o.next : srv.o.self);
	return 0;
}

static void log_report(void)
{
	const struct luo_report_entry *e;
	size_t n;

	if (luo_update_report(srv.luo, &e, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		char line[512];

		luo_report_entry_format(&e[i], line, sizeof(line));
		logf_("  %s", line);
	}
}

static void resume_serving(void)
{
	int r;

	recs_free();
	r = workers_start();
	if (r < 0) {
		logf_("cannot restart the workers: %s", strerror(-r));
		exit(2);
	}
}

static void populate_poll(void);

/*
 * The quiesce of an update, by SIGHUP (@userdata: the next binary's path)
 * or asked on the control socket (NULL; luo_control_set_quiesce()). libluo
 * calls it once the update is known to go ahead -- the manifests read, a
 * first negotiation passed -- and, for the control socket, only once the
 * requester is checked and its request read, so that no other uid, and no
 * peer that says nothing, stops the workers.
 */
static int update_quiesce(void *userdata)
{
	const char *path = userdata;
	uint64_t t0;
	int r;

	/* The populate thread stops before the quiesce is timed (and was asked to before, when SIGHUP came). */
	luo_arena_populate_stop(srv.arena);
	if (srv.populating)
		populate_poll();
	t0 = mono_ns();
	workers_stop();
	r = recs_prepare();
	srv.last_quiesce_us = (mono_ns() - t0) / 1000;
	if (r < 0) {
		logf_("cannot hand over the connections' buffers: %s; no update, still serving", strerror(-r));
		srv.failed_updates++;
		srv.quiesce_failed = true;
		resume_serving();
		return r;
	}
	/*
	 * A refusal through the control socket is luoctl's to show. The
	 * quiesce is logged: it is part of what clients wait, before libluo's
	 * own blackout starts (bench/blackout reads it here).
	 */
	if (path)
		logf_("live update to %s: %zu connections quiesced in %" PRIu64 " us", path, srv.nrecs,
		      srv.last_quiesce_us);
	else
		logf_("live update asked through the control socket: %zu connections quiesced in %" PRIu64 " us",
		      srv.nrecs, srv.last_quiesce_us);
	fflush(NULL);
	return 0;
}

static void update_resume(void *userdata)
{
	(void)userdata;
	resume_serving();
}

/*
 * SIGHUP: luo_update_quiescing() to the next binary, which quiesces the
 * workers (update_quiesce()) only once the update will go ahead. Returns
 * only if no update happened; the workers serve then.
 */
static void update(void)
{
	char path[PATH_MAX];
	char *argv[20];
	size_t k = 0;
	int r;

	/*
	 * Before the quiesce, while the workers still serve: the exec must not
	 * wait for a low-priority thread to notice it is killed.
	 */
	luo_arena_populate_stop(srv.arena);
	if (srv.populating)
		populate_poll(); /* logs how far it went */

	r = next_binary(path, sizeof(path));
	if (r < 0) {
		logf_("--next-file %s: %s; no update, still serving", srv.o.next_file, strerror(-r));
		srv.failed_updates++;
		return;
	}
	/* The next image: the same options, and the port in use if it must start fresh. */
	argv[k++] = path;
	argv[k++] = (char *)"--port";
	argv[k++] = srv.o.bound;
	argv[k++] = (char *)"--threads";
	argv[k++] = srv.o.threads_s;
	argv[k++] = (char *)"--memory";
	argv[k++] = srv.o.memory_s;
	argv[k++] = (char *)"--idle-timeout";
	argv[k++] = srv.o.idle_s;
	/* Only when not the defaults: a binary without these options still starts. */
	if (strcmp(srv.o.populate, "low") != 0) {
		argv[k++] = (char *)"--populate";
		argv[k++] = (char *)srv.o.populate;
	}
	if (!srv.o.hugepages)
		argv[k++] = (char *)"--no-hugepages";
	if (srv.o.next) {
		argv[k++] = (char *)"--next";
		argv[k++] = (char *)srv.o.next;
	}
	if (srv.o.next_file) {
		argv[k++] = (char *)"--next-file";
		argv[k++] = (char *)srv.o.next_file;
	}
	argv[k] = NULL;
	fflush(NULL);
	srv.quiesce_failed = false;
	r = luo_update_quiescing(srv.luo, path, argv, NULL, update_quiesce, update_resume, path);
	if (srv.quiesce_failed)
		return; /* update_quiesce() logged it, counted it and serves again */
	srv.failed_updates++;
	if (r == -EPROTO) {
		logf_("live update to %s refused at negotiation: %s", path, strerror(-r));
		log_report();
	} else {
		logf_("live update to %s failed: %s", path, strerror(-r));
	}
	logf_("still serving");
}

/* ---------------------------------------------------------------------- */
/* Start: the handover, or a fresh start                                   */

static void die(const char *what, int err)
{
	logf_("%s: %s", what, strerror(err));
	exit(2);
}

static int listen_on(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	_cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int one = 1;

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, LISTEN_BACKLOG) < 0)
		return -errno;
	return TAKE_FD(fd);
}

static int bound_port(int fd)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		return -errno;
	return ntohs(sa.sin_port);
}

static void take_pieces(struct luo_session *in);

static bool arena_holds(const void *p, size_t len)
{
	uintptr_t b = (uintptr_t)luo_arena_base(srv.arena), s = luo_arena_size(srv.arena), a = (uintptr_t)p;

	return a >= b && a - b <= s && len <= s - (a - b);
}

/*
 * Bytes the old image left in the arena: copied out. They are freed in the
 * arena after luo_ready() (free_incoming_bytes()): the arena's first free
 * runs its allocator's deferred check, which need not be in the blackout.
 */
static int take_bytes(uint64_t addr, uint32_t len, size_t max, char **ret, size_t *ret_len)
{
	void *p = (void *)(uintptr_t)addr;
	char *copy;

	*ret = NULL;
	*ret_len = 0;
	if (!addr || !len)
		return 0;
	if (!srv.arena || len > max || !arena_holds(p, len))
		return -EBADMSG;
	copy = malloc(len);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, p, len);
	*ret = copy;
	*ret_len = len;
	return 0;
}

static void free_incoming_bytes(void)
{
	for (size_t i = 0; srv.arena && i < srv.nconns_in; i++) {
		const struct kv_conn_v1 *rec = &srv.conns_in[i];

		/* luo_arena_free() ignores what is not a live block. */
		if (rec->rbuf && arena_holds((void *)(uintptr_t)rec->rbuf, rec->rlen))
			luo_arena_free(srv.arena, (void *)(uintptr_t)rec->rbuf);
		if (rec->wbuf && arena_holds((void *)(uintptr_t)rec->wbuf, rec->wlen))
			luo_arena_free(srv.arena, (void *)(uintptr_t)rec->wbuf);
	}
	free(srv.conns_in);
	srv.conns_in = NULL;
	srv.nconns_in = 0;
}

/*
 * The connections of the handover, from the incoming session: each one's
 * fd and bytes, on a list (next) until adopt_conns(). A bad record is
 * logged and its connection closed.
 */
static struct conn *take_conns(struct luo_session *in)
{
	struct conn *list = NULL;

	for (size_t i = 0; i < srv.nconns_in; i++) {
		const struct kv_conn_v1 *rec = &srv.conns_in[i];
		struct conn *c;
		char *rbuf = NULL, *wbuf = NULL;
		size_t rlen, wlen;
		int fd, r;

		r = luo_session_retrieve_fd(in, rec->token, &fd);
		if (r < 0) {
			logf_("connection %" PRIu64 " not in the handover: %s", rec->token, strerror(-r));
			continue;
		}
		r = take_bytes(rec->rbuf, rec->rlen, KV_RBUF_MAX, &rbuf, &rlen);
		if (r == 0)
			r = take_bytes(rec->wbuf, rec->wlen, KV_WBUF_CMD_MAX + KV_WBUF_SOFT_MAX, &wbuf, &wlen);
		if (r == 0 && fcntl(fd, F_SETFL, O_NONBLOCK | O_RDWR) < 0)
			r = -errno;
		c = r == 0 ? conn_new(fd, 0) : NULL;
		if (!c) {
			logf_("connection %" PRIu64 " dropped: %s", rec->token, strerror(r < 0 ? -r : ENOMEM));
			free(rbuf);
			free(wbuf);
			close(fd);
			continue;
		}
		c->rbuf = rbuf;
		c->rlen = c->rcap = rlen;
		c->out.data = wbuf;
		c->out.len = c->out.cap = wlen;
		c->p.swallow = rec->swallow;
		c->p.closing = rec->closing != 0;
		c->next = list;
		list = c;
	}
	return list;
}

/* Preserve each taken connection in the outgoing session, give it to a worker. */
static void adopt_conns(struct conn *list)
{
	size_t adopted = 0, n = srv.nconns_in;
	struct conn *c, *next;

	for (c = list; c; c = next) {
		next = c->next;
		c->token = TOKEN_CONN_BASE + (uint64_t)c->fd;
		if (luo_session_preserve_fd(srv.out, c->fd, c->token) < 0) {
			close(c->fd);
			conn_free(c);
			continue;
		}
		if (worker_adopt(&srv.workers[srv.next_worker++ % srv.o.threads], c) < 0) {
			luo_session_unpreserve_fd(srv.out, c->token);
			close(c->fd);
			conn_free(c);
			continue;
		}
		atomic_fetch_add(&srv.curr_conns, 1);
		adopted++;
	}
	if (adopted != n)
		logf_("%zu of %zu connections taken over", adopted, n);
}

/*
 * The incoming session: the listening socket, the arena (if the store
 * component came), the connections (if theirs did); then the session is
 * finished, its name free for the outgoing one. Each piece that cannot be
 * taken starts fresh, with the reason logged. Return: the connections
 * taken, for adopt_conns().
 */
static struct conn *take_over(void)
{
	struct luo_session *in;
	struct conn *conns = NULL;
	int r;

	if (!luo_is_incoming(srv.luo))
		return NULL;
	r = luo_session_retrieve(srv.luo, SESSION, &in);
	if (r < 0) {
		logf_("no session '%s' in the handover: %s; fresh start", SESSION, strerror(-r));
		return NULL;
	}
	take_pieces(in);
	if (srv.conns_in_loaded)
		conns = take_conns(in);
	r = luo_session_finish(in);
	if (r < 0)
		logf_("luo_session_finish: %s", strerror(-r));
	luo_session_close(in);
	return conns;
}

static void take_pieces(struct luo_session *in)
{
	int r;

	r = luo_session_retrieve_fd(in, TOKEN_LISTEN, &srv.listen_fd);
	if (r < 0) {
		logf_("listening socket not in the handover: %s", strerror(-r));
		srv.listen_fd = -1;
	} else if (fcntl(srv.listen_fd, F_SETFL, O_NONBLOCK | O_RDWR) < 0) {
		die("fcntl", errno);
	}
	/* "kvcache-store" was loaded by luo_open() into srv.store (declared state), or did not come. */
	srv.store_in = luo_component_incoming(srv.luo, "kvcache-store", &srv.store_in_version) == 0 &&
		       KV_FORMAT_KNOWS(srv.store_in_version);
	if (!srv.store_in)
		return;
	r = luo_arena_retrieve(in, TOKEN_ARENA, &srv.arena);
	if (r < 0) {
		logf_("arena not taken (%s: %s); the items are lost, fresh start", strerror(-r),
		      luo_arena_retrieve_error(in));
		srv.arena = NULL;
		return;
	}
	/* The arena's type graph, checked again in O(1) against this build's. */
	r = luo_arena_bind_type(srv.arena, "kvcache-store", srv.store_in_version);
	if (r < 0) {
		logf_("the arena's types are not this build's at format %u (%s); the items are lost, fresh start",
		      srv.store_in_version, strerror(-r));
		luo_arena_close(srv.arena);
		srv.arena = NULL;
		return;
	}
	if ((uint64_t)(uintptr_t)luo_arena_root(srv.arena) != srv.store.root) {
		r = -EBADMSG;
	} else {
		r = kv_store_adopt(&srv.st, srv.arena, srv.store_in_version);
		if (r == 0 && (srv.st.root->nbuckets != srv.store.nbuckets ||
			       srv.st.root->hash_seed != srv.store.hash_seed)) {
			kv_store_fini(&srv.st);
			r = -EBADMSG;
		}
	}
	if (r < 0) {
		logf_("the arena is not a kvcache store at format %u (%s); fresh start", srv.store_in_version,
		      strerror(-r));
		luo_arena_close(srv.arena);
		srv.arena = NULL;
		return;
	}
	srv.store_ready = true;
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	rlim_t want = 2 * KV_CONNS_MAX + 256; /* each connection: ours and libluo's */

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* ---------------------------------------------------------------------- */
/* Options                                                                 */

/* The largest value an item of this key length and flags may have: what the store's check says. */
static uint64_t value_max(size_t nkey, uint32_t flags)
{
	uint64_t v = KV_VALUE_MAX;

	/* The header is tens of bytes: a bounded walk down. */
	while (v > 0 && !kv_item_fits(nkey, flags, v))
		v--;
	return v;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kvcache [--port N] [--port-file FILE] [--threads N] [--memory MiB]\n"
		"               [--idle-timeout S] [--populate MODE] [--no-hugepages]\n"
		"               [--next BINARY] [--next-file FILE]\n"
		"       kvcache --help | --version\n"
		"\n"
		"A memcached text-protocol cache on 127.0.0.1:N (0, the default: any free\n"
		"port, written to --port-file). Items live in a luo arena of --memory MiB\n"
		"(default 64; LRU eviction past it), served by --threads epoll workers\n"
		"(default 4). Connections idle for S seconds are closed (default %d; 0 never).\n"
		"After a live update, --populate maps the arena's pages back into the page\n"
		"tables from a background thread, so that the first touch of each is not a\n"
		"fault: low (the default: nice 19), idle (SCHED_IDLE), normal (the workers'\n"
		"priority), off (pages fault in as the workers touch them). The arena's data\n"
		"is also turned into 2 MiB pages in the background (MADV_COLLAPSE, at most\n"
		"every %d s, at the --populate priority), so that a next image maps it 512\n"
		"pages at a time; --no-hugepages keeps 4 KiB pages.\n"
		"\n"
		"Live update, keeping the pid, the items, the listening socket and every open\n"
		"client connection (clients see a pause, never an error):\n"
		"  SIGHUP                          to the binary named in --next-file (read\n"
		"                                  at each SIGHUP; missing or empty: next\n"
		"                                  choice), else --next, else this binary\n"
		"  luoctl update --pid PID NEW     to NEW, with this process's arguments\n"
		"A refused or failed update is logged (with the negotiation report) and the\n"
		"server keeps serving. SIGTERM / SIGINT: stop, freeing everything.\n"
		"\n"
		"This is the %s build. Store format: reads %d..%d, writes %d..%d\n"
		"(component kvcache-store, mandatory); connections: kvcache-conns v1.\n"
		"Limits: keys %d bytes, values %" PRIu64 " bytes (under a 1-byte key, flags 0:\n"
		"key, value and item header within %u bytes), %d connections, %d threads.\n",
		KV_IDLE_TIMEOUT_DEFAULT, KV_COLLAPSE_PERIOD_MS / 1000, KV_BUILD_NAME, KV_FORMAT_READ_MIN, KV_FORMAT_READ_MAX, KV_FORMAT_WRITE_MIN,
		KV_FORMAT_WRITE_MAX, KV_KEY_MAX, value_max(1, 0), KV_VALUE_MAX, KV_CONNS_MAX, KV_THREADS_MAX);
}

static unsigned parse_uint(const char *opt, const char *s, unsigned min, unsigned max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
		fprintf(stderr, "kvcache: %s must be a number in [%u, %u], not '%s'\n", opt, min, max, s);
		exit(2);
	}
	return (unsigned)v;
}

/* libluo's populate flags for --populate @mode; -1 off; -2 not a mode. */
static int populate_flags(const char *mode)
{
	if (strcmp(mode, "low") == 0)
		return 0;
	if (strcmp(mode, "idle") == 0)
		return LUO_ARENA_POPULATE_IDLE;
	if (strcmp(mode, "normal") == 0)
		return LUO_ARENA_POPULATE_NORMAL;
	if (strcmp(mode, "off") == 0)
		return -1;
	return -2;
}

static void parse_options(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },    { "port-file", required_argument, NULL, 'f' },
		{ "threads", required_argument, NULL, 't' }, { "memory", required_argument, NULL, 'm' },
		{ "idle-timeout", required_argument, NULL, 'i' }, { "populate", required_argument, NULL, 'P' },
		{ "hugepages", no_argument, NULL, 'H' },     { "no-hugepages", no_argument, NULL, 'X' },
		{ "next", required_argument, NULL, 'n' },    { "next-file", required_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },          { "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	struct options *o = &srv.o;
	ssize_t n;
	int c;

	o->threads = 4;
	o->memory_mb = 64;
	o->idle_timeout = KV_IDLE_TIMEOUT_DEFAULT;
	o->populate = "low";
	o->hugepages = true;
	while ((c = getopt_long(argc, argv, "p:f:t:m:i:P:HXn:N:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			o->port = (int)parse_uint("--port", optarg, 0, 65535);
			break;
		case 'f':
			o->port_file = optarg;
			break;
		case 't':
			o->threads = parse_uint("--threads", optarg, 1, KV_THREADS_MAX);
			break;
		case 'm':
			o->memory_mb = parse_uint("--memory", optarg, KV_MEMORY_MIN_MB, KV_MEMORY_MAX_MB);
			break;
		case 'i':
			o->idle_timeout = parse_uint("--idle-timeout", optarg, 0, KV_IDLE_TIMEOUT_MAX);
			break;
		case 'P':
			if (populate_flags(optarg) < -1) {
				fprintf(stderr, "kvcache: --populate must be off, low, idle or normal, not '%s'\n", optarg);
				exit(2);
			}
			o->populate = optarg;
			break;
		case 'H':
			o->hugepages = true;
			break;
		case 'X':
			o->hugepages = false;
			break;
		case 'n':
			o->next = optarg;
			break;
		case 'N':
			o->next_file = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("kvcache %s (memcached protocol, version %s); store format reads %d..%d, writes %d..%d\n",
			       KV_BUILD_NAME, KV_VERSION_STRING, KV_FORMAT_READ_MIN, KV_FORMAT_READ_MAX,
			       KV_FORMAT_WRITE_MIN, KV_FORMAT_WRITE_MAX);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kvcache: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		exit(2);
	}
	snprintf(o->threads_s, sizeof(o->threads_s), "%u", o->threads);
	snprintf(o->memory_s, sizeof(o->memory_s), "%u", o->memory_mb);
	snprintf(o->idle_s, sizeof(o->idle_s), "%u", o->idle_timeout);
	n = readlink("/proc/self/exe", o->self, sizeof(o->self) - 1);
	if (n > 0 && (size_t)n < sizeof(o->self) - 1)
		o->self[n] = '\0';
	else
		snprintf(o->self, sizeof(o->self), "/proc/self/exe");
}

/* ---------------------------------------------------------------------- */

static const char *component_outcome(const char *name, char *buf, size_t len)
{
	uint32_t v = 0;
	int r = luo_component_incoming(srv.luo, name, &v);

	if (r == 0)
		snprintf(buf, len, "%s at v%u", name, v);
	else
		snprintf(buf, len, "%s: %s", name, r == -ENODATA ? "nothing came" : strerror(-r));
	return buf;
}

static uint64_t mono_ms(void)
{
	return mono_ns() / 1000000;
}

/*
 * Start the arena's populate thread: after an update (--populate), and
 * with --hugepages every KV_COLLAPSE_PERIOD_MS too (@periodic, not
 * logged), so that the items written since become huge pages for the
 * next image (a range huge already costs nothing).
 */
static void populate_pass(bool periodic)
{
	int flags = populate_flags(srv.o.populate);
	int r;

	if (flags < 0) /* --populate off: the periodic collapse at nice 19 */
		flags = 0;
	if (srv.o.hugepages)
		flags |= LUO_ARENA_POPULATE_COLLAPSE;
	r = luo_arena_populate_start(srv.arena, 0, (unsigned)flags);
	if (r < 0) {
		logf_("arena not populated (%s): its pages fault in on first touch", strerror(-r));
		srv.populate_end_ms = mono_ms();
	}
	srv.populating = r == 0;
	srv.populate_quiet = periodic;
}

/* Log once when the arena's populate thread has ended. */
static void populate_poll(void)
{
	struct luo_arena_populate_status st;

	if (luo_arena_populate_status(srv.arena, &st) < 0 || st.state == LUO_ARENA_POPULATE_RUNNING)
		return;
	srv.populating = false;
	srv.populate_end_ms = mono_ms();
	if (st.state == LUO_ARENA_POPULATE_FAILED)
		logf_("arena populate failed after %" PRIu64 " MiB: %s", st.populated >> 20, strerror(-st.error));
	else if (!srv.populate_quiet)
		logf_("arena populated (--populate %s): %" PRIu64 " MiB in %.1f ms%s%s", srv.o.populate,
		      st.populated >> 20, st.elapsed_ns / 1e6,
		      st.state == LUO_ARENA_POPULATE_STOPPED ? ", stopped before the end" : "",
		      !srv.o.hugepages ? ""
		      : st.collapse_refused ? "; MADV_COLLAPSE refused"
					    : "; huge pages for the next image");
	if (srv.o.hugepages && !srv.populate_quiet)
		logf_("arena: %" PRIu64 " MiB in huge pages", st.collapsed >> 20);
}

static void stop_everything(void)
{
	workers_stop();
	workers_fini();
	recs_free();
	free_incoming_bytes();
	if (srv.store_ready)
		kv_store_fini(&srv.st);
	luo_arena_close(srv.arena);
	srv.arena = NULL;
	kv_safe_close(srv.listen_fd);
	kv_safe_close(srv.sig_fd);
	luo_close(srv.luo); /* the control socket too */
	srv.luo = NULL;
}

int main(int argc, char **argv)
{
	struct conn *conns;
	const char *reason;
	char c1[96], c2[96];
	sigset_t mask;
	bool adopted;
	int r, port;

	parse_options(argc, argv);
	raise_fd_limit();
	signal(SIGPIPE, SIG_IGN);
	kv_stats_conns_hook = stats_conns;

	/* The components are loaded in here, from the previous image's payloads. */
	r = luo_open(LUO_OPEN_FRESH_ON_ERROR, &srv.luo);
	if (r < 0)
		die("luo_open", -r);
	if (luo_incoming_error(srv.luo, &reason) < 0)
		logf_("incoming handover refused, fresh start: %s", reason);
	r = luo_rollback(srv.luo, &reason);
	if (r < 0)
		logf_("rolled back from a failed update: %s (%s)", reason, strerror(-r));

	conns = take_over();
	adopted = srv.store_ready;

	r = luo_session_create(srv.luo, SESSION, &srv.out);
	if (r < 0)
		die("luo_session_create", -r);
	if (srv.store_ready) {
		r = luo_arena_preserve(srv.out, TOKEN_ARENA, srv.arena);
		if (r < 0)
			die("luo_arena_preserve", -r);
	} else {
		uint64_t limit = (uint64_t)srv.o.memory_mb << 20;

		/* The flag is recorded with the arena: each next image asks for huge pages too. */
		r = luo_arena_create(srv.out, TOKEN_ARENA, kv_store_arena_size(limit),
				     srv.o.hugepages ? LUO_ARENA_HUGEPAGES : 0, &srv.arena);
		if (r < 0)
			die("luo_arena_create", -r);
		r = kv_store_format(&srv.st, srv.arena, limit);
		if (r < 0)
			die("formatting the store", -r);
		r = luo_arena_bind_type(srv.arena, "kvcache-store", srv.st.format);
		if (r < 0)
			die("luo_arena_bind_type", -r);
		srv.store_ready = true;
	}

	if (srv.listen_fd < 0) {
		srv.listen_fd = listen_on(srv.o.port);
		if (srv.listen_fd < 0)
			die("listen", -srv.listen_fd);
	}
	r = luo_session_preserve_fd(srv.out, srv.listen_fd, TOKEN_LISTEN);
	if (r < 0)
		die("preserving the listening socket", -r);
	port = bound_port(srv.listen_fd);
	if (port < 0)
		die("getsockname", -port);
	snprintf(srv.o.bound, sizeof(srv.o.bound), "%d", port);

	r = workers_init();
	if (r < 0)
		die("epoll", -r);
	adopt_conns(conns);

	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	/* Before any thread: they inherit the mask; signals come to the signalfd. */
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	srv.sig_fd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (srv.sig_fd < 0)
		die("signalfd", errno);
	/* Before luo_ready(): that answers the luoctl which asked for this image. */
	luo_control_set_quiesce(srv.luo, update_quiesce, update_resume, NULL);
	r = luo_control_listen(srv.luo, &srv.ctl_fd);
	if (r < 0) {
		logf_("no control socket (luoctl update --pid): %s; SIGHUP still works", strerror(-r));
		srv.ctl_fd = -1;
	}
	r = workers_start();
	if (r < 0)
		die("starting the workers", -r);
	luo_ready(srv.luo);
	free_incoming_bytes();
	/* After luo_ready(): the thread never delays the switch. */
	if (adopted && populate_flags(srv.o.populate) >= 0)
		populate_pass(false);
	if (luo_is_incoming(srv.luo)) {
		struct luo_timings t = { 0 };

		luo_timings(srv.luo, &t);
		printf("[pid %d] generation %" PRIu64 ": %s build, %" PRIu64 " items, %" PRIu64 " connections kept, "
		       "same socket on port %d; %s, %s; blackout %.3f ms (freeze %.3f, serialize %.3f, exec %.3f, "
		       "restore %.3f, ready %.3f)\n",
		       getpid(), luo_liveupdate_number(srv.luo), KV_BUILD_NAME, KV_READ(&srv.st, curr_items),
		       (uint64_t)atomic_load(&srv.curr_conns), port, component_outcome("kvcache-store", c1, sizeof(c1)),
		       component_outcome("kvcache-conns", c2, sizeof(c2)), t.blackout_ns / 1e6, t.freeze_ns / 1e6,
		       t.serialize_ns / 1e6, t.exec_ns / 1e6, t.restore_ns / 1e6, t.ready_ns / 1e6);
	} else {
		printf("[pid %d] generation 0: %s build, fresh start on 127.0.0.1:%d, %u threads, %u MiB\n", getpid(),
		       KV_BUILD_NAME, port, srv.o.threads, srv.o.memory_mb);
	}
	fflush(stdout);
	if (srv.o.port_file) {
		FILE *f = fopen(srv.o.port_file, "we");

		if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0)
			die(srv.o.port_file, errno);
	}

	for (;;) {
		struct pollfd pfd[3] = { { .fd = srv.listen_fd, .events = POLLIN },
					 { .fd = srv.sig_fd, .events = POLLIN },
					 { .fd = srv.ctl_fd, .events = POLLIN } }; /* -1: ignored */
		struct signalfd_siginfo si;
		int timeout = srv.populating ? KV_POPULATE_POLL_MS : srv.o.hugepages ? KV_COLLAPSE_PERIOD_MS : -1;

		if (srv.accept_paused_until) {
			uint64_t now = mono_ns();

			if (now < srv.accept_paused_until) {
				int pause_ms = (int)((srv.accept_paused_until - now) / 1000000) + 1;

				pfd[0].fd = -1; /* not listened to until then */
				timeout = timeout < 0 || pause_ms < timeout ? pause_ms : timeout;
			}
		}
		if (poll(pfd, 3, timeout) < 0 && errno != EINTR)
			die("poll", errno);
		if (pfd[0].fd < 0 && mono_ns() >= srv.accept_paused_until)
			accept_some(); /* the pause is over: try again */
		if (srv.populating)
			populate_poll();
		else if (srv.o.hugepages && mono_ms() - srv.populate_end_ms >= KV_COLLAPSE_PERIOD_MS)
			populate_pass(true);
		if (pfd[0].revents & POLLIN)
			accept_some();
		if (pfd[2].revents & POLLIN) {
			r = luo_control_dispatch(srv.luo);
			if (r < 0)
				logf_("control socket: %s", strerror(-r));
		}
		if (!(pfd[1].revents & POLLIN) || read(srv.sig_fd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo == SIGHUP) {
			update();
			continue;
		}
		break; /* SIGTERM / SIGINT */
	}
	printf("[pid %d] stopping: %" PRIu64 " items, %" PRIu64 " connections\n", getpid(),
	       KV_READ(&srv.st, curr_items), (uint64_t)atomic_load(&srv.curr_conns));
	fflush(stdout);
	stop_everything();
	return 0;
}
