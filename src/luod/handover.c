/* SPDX-License-Identifier: MIT */
/*
 * DOC: handover.c, luod's own live update (an exec handover of itself)
 *
 * Lifecycle: SIGHUP or an OP_UPDATE (root or luod's uid) asks for an
 * update (conn_update_request()). luod then drains: it stops reading new
 * requests -- they wait in the sockets, to be answered by the new image --
 * but lets deposits under way finish and queued replies go out, for at
 * most LUOD_UPDATE_DRAIN_MS. A connection still busy at the deadline (a
 * client stalling mid-deposit, or not reading its reply) is closed by
 * luod: the client sees its request fail (EOF / -ECONNRESET) and may
 * retry; its half deposit is discarded (the previous one of that name is
 * what is held) and its sessions are kept, detached, since it did not
 * crash.
 *
 * Then everything luod holds becomes a flat run of tokens, each an fd
 * preserved in a libluo session ("luod.0", "luod.1", ... each holding
 * LUO_SESSION_FILES_MAX tokens at most, so LUO_FILES_MAX fds fit in 16
 * of LUO_SESSIONS_MAX sessions):
 *
 *   token 0                     the listening socket
 *   tokens 1 .. n_conns         every client connection
 *   then, per held session      its n_fds fds, the blob first
 *
 * The fds go through luod's own file handler, "luod-held", which records
 * the file's identity (st_dev, st_ino, type) and checks it in the new
 * image, and changes nothing on the file: the built-in memfd handler would
 * add seals to clients' memfds, which are theirs, not luod's.
 *
 * The table -- per connection its token, per session its owner uid, name,
 * flags, first token and fd count, owner connection, bytes, times and
 * generation; luod's binary path (resolved once at the first start and
 * carried on, so a package upgrade replacing the file is what the next
 * update runs), first start time, and the OP_UPDATE requester to answer --
 * is the payload of the mandatory component "luod-table" (version 1).
 * Then luo_update() on luod's own binary path, with its own argv.
 *
 * In the new image, luo_open() has checked every fd's identity; the
 * component's load() checks the payload as hostile input (every count
 * bounded, tokens contiguous and in range, names NUL-padded, flags known)
 * and keeps it; handover_restore() takes the fds by token, rebuilds the
 * connections (owner again from SO_PEERCRED) and the table, answers the
 * OP_UPDATE requester (error 0, the new liveupdate-number), and the loop
 * serves what waited in the sockets.
 *
 * Failure paths: anything failing before execve() -- preserving an fd,
 * negotiation, the exec itself -- leaves the old image serving: the libluo
 * sessions made for the update are closed (their duplicates too), the
 * requester gets the error, reading resumes. A refused handover in the new
 * image makes libluo roll back to the previous binary, which adopts the
 * same state and answers the OP_UPDATE requester -EUCLEAN with the new
 * image's reason (never success); if even that is impossible luod starts
 * empty (LUO_OPEN_FRESH_ON_ERROR) and says so.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "conn.h"
#include "handover.h"
#include "luod.h"
#include "table.h"
#include "wire.h"

#define TABLE_COMPONENT "luod-table"
#define TABLE_VERSION 1
#define NO_CONN UINT32_MAX

/* ------------------------------------------------------------------------ */
/* The file handler: identity only, the file untouched                       */

struct luod_held_fd_v1 {
	uint64_t dev;
	uint64_t ino;
	uint32_t type; /* st_mode & S_IFMT */
	uint32_t reserved;
};

static int held_describe(int fd, struct luod_held_fd_v1 *out)
{
	struct stat st;

	int r = luod_fd_stat(fd, &st);

	if (r < 0)
		return r;
	*out = (struct luod_held_fd_v1){ .dev = st.st_dev, .ino = st.st_ino, .type = st.st_mode & S_IFMT };
	return 0;
}

static bool held_can_preserve(int fd)
{
	struct stat st;

	return luod_fd_stat(fd, &st) == 0;
}

static int held_preserve(struct luo_file *file)
{
	return held_describe(luo_file_fd(file), luo_file_data(file));
}

static void held_unpreserve(struct luo_file *file)
{
	(void)file;
}

static int held_retrieve(struct luo_file *file)
{
	struct luod_held_fd_v1 have;
	int r = held_describe(luo_file_fd(file), &have);

	if (r < 0)
		return r == -EBADF ? r : -EBADFD;
	return memcmp(&have, luo_file_data(file), sizeof(have)) == 0 ? 0 : -EBADFD;
}

static void held_finish(struct luo_file *file, bool retrieved)
{
	(void)file;
	(void)retrieved;
}

/*
 * Shared: clients may deposit one open file more than once (two sessions
 * holding one listening socket, processes forked with it), and luod holds
 * every copy; libluo would refuse the second otherwise (-EBUSY).
 */
static const struct luo_file_ops held_ops = {
	.can_preserve = held_can_preserve,
	.preserve = held_preserve,
	.unpreserve = held_unpreserve,
	.retrieve = held_retrieve,
	.finish = held_finish,
	.flags = LUO_FILE_OPS_SHARED,
};

LUO_FILE_HANDLER_DECLARE(luod_held_handler, "luod-held", 1, sizeof(struct luod_held_fd_v1), &held_ops);

int handover_register(void)
{
	return luo_file_handler_register(&luod_held_handler);
}

/* ------------------------------------------------------------------------ */
/* The component: the table                                                  */

/* Payload v1: this header, n_conns struct luod_conn_v1, n_sessions struct luod_session_v1. */
struct luod_table_v1 {
	uint32_t n_tokens;
	uint32_t n_conns;
	uint32_t n_sessions;
	uint32_t listen_token;      /* 0 */
	uint32_t update_conn;       /* the OP_UPDATE requester's index, or NO_CONN */
	uint32_t update_seq;
	uint32_t update_reply_size;
	uint32_t reserved;
	uint64_t started_s;
	char exe[LUO_AGENT_PATH_SIZE];
};

struct luod_conn_v1 {
	uint32_t token;
	uint32_t reserved;
};

struct luod_session_v1 {
	uint32_t uid;
	uint32_t flags;
	uint32_t n_fds;
	uint32_t first_token;
	uint32_t owner_conn;        /* index, or NO_CONN */
	uint32_t reserved;
	uint64_t bytes;
	uint64_t deposited_s;
	uint64_t updated_s;
	uint64_t generation;
	char name[LUO_AGENT_NAME_SIZE];
};

/* The records are what version 1 is made of; the header is pinned by its size. */
_Static_assert(sizeof(struct luod_table_v1) == 40 + LUO_AGENT_PATH_SIZE, "luod-table v1 header changed");
_Static_assert(sizeof(struct luod_conn_v1) == 8, "luod-table v1 conn record changed");
LUO_LAYOUT(luod_session_v1_layout, TABLE_COMPONENT, 1, struct luod_session_v1,
	   LUO_FIELD(struct luod_session_v1, uid, uint32_t), LUO_FIELD(struct luod_session_v1, flags, uint32_t),
	   LUO_FIELD(struct luod_session_v1, n_fds, uint32_t),
	   LUO_FIELD(struct luod_session_v1, first_token, uint32_t),
	   LUO_FIELD(struct luod_session_v1, owner_conn, uint32_t),
	   LUO_FIELD(struct luod_session_v1, reserved, uint32_t), LUO_FIELD(struct luod_session_v1, bytes, uint64_t),
	   LUO_FIELD(struct luod_session_v1, deposited_s, uint64_t),
	   LUO_FIELD(struct luod_session_v1, updated_s, uint64_t),
	   LUO_FIELD(struct luod_session_v1, generation, uint64_t),
	   LUO_FIELD(struct luod_session_v1, name, char[LUO_AGENT_NAME_SIZE]));

/* The daemon being saved (outgoing), and the payload adopted (incoming). */
static struct luod *saving;
static unsigned char *incoming;
static size_t incoming_len;

static int table_save(uint32_t version, struct luo_payload *out)
{
	struct luod *d = saving;
	struct luod_table_v1 t = { 0 };
	uint32_t idx = 0;
	int r;

	if (version != TABLE_VERSION || !d)
		return -EPROTO;
	t.n_conns = d->n_conns;
	t.n_sessions = (uint32_t)d->n_sessions;
	t.n_tokens = 1 + d->n_conns + (uint32_t)d->n_fds;
	t.listen_token = 0;
	t.update_conn = NO_CONN;
	t.update_seq = d->update_seq;
	t.update_reply_size = d->update_reply_size;
	t.started_s = d->started_s;
	memcpy(t.exe, d->exe, sizeof(t.exe));
	for (struct conn *c = d->conns; c; c = c->next, idx++)
		if (c == d->update_conn)
			t.update_conn = idx;
	r = luo_payload_write(out, &t, sizeof(t));
	for (struct conn *c = d->conns; c && r == 0; c = c->next) {
		struct luod_conn_v1 rec = { .token = c->token };

		r = luo_payload_write(out, &rec, sizeof(rec));
	}
	for (struct held *h = d->first; h && r == 0; h = h->next) {
		struct luod_session_v1 rec = {
			.uid = h->uid,
			.flags = h->flags,
			.n_fds = h->n_fds,
			.first_token = h->first_token,
			.owner_conn = NO_CONN,
			.bytes = h->bytes,
			.deposited_s = h->deposited_s,
			.updated_s = h->updated_s,
			.generation = h->generation,
		};

		idx = 0;
		for (struct conn *c = d->conns; c && h->owner; c = c->next, idx++)
			if (c == h->owner) {
				rec.owner_conn = idx;
				break;
			}
		memcpy(rec.name, h->name, sizeof(rec.name));
		r = luo_payload_write(out, &rec, sizeof(rec));
	}
	return r;
}

/* Check the payload as hostile input; keep a copy for handover_restore(). */
static int table_load(uint32_t version, const void *data, size_t len)
{
	const unsigned char *p = data;
	struct luod_table_v1 t;
	uint64_t want, token;

	if (version != TABLE_VERSION || len < sizeof(t))
		return -EBADMSG;
#ifdef LUOD_TEST_REFUSE_HANDOVER
	/* tests only (luod-refuse): a new image that refuses, to exercise the rollback */
	return -EIO;
#endif
	memcpy(&t, p, sizeof(t));
	if (t.n_conns > LUOD_CONNECTIONS_MAX || t.n_sessions > LUOD_HELD_FDS_MAX || t.n_tokens > LUO_FILES_MAX ||
	    t.listen_token != 0 || t.reserved != 0 || (t.update_conn != NO_CONN && t.update_conn >= t.n_conns) ||
	    !memchr(t.exe, '\0', sizeof(t.exe)) || t.exe[0] != '/')
		return -EBADMSG;
	want = sizeof(t) + (uint64_t)t.n_conns * sizeof(struct luod_conn_v1) +
	       (uint64_t)t.n_sessions * sizeof(struct luod_session_v1);
	if (len != want)
		return -EBADMSG;
	p += sizeof(t);
	token = 1;
	for (uint32_t i = 0; i < t.n_conns; i++, p += sizeof(struct luod_conn_v1)) {
		struct luod_conn_v1 c;

		memcpy(&c, p, sizeof(c));
		if (c.token != token++ || c.reserved != 0)
			return -EBADMSG;
	}
	for (uint32_t i = 0; i < t.n_sessions; i++, p += sizeof(struct luod_session_v1)) {
		struct luod_session_v1 s;

		memcpy(&s, p, sizeof(s));
		if (s.first_token != token || s.n_fds == 0 || s.n_fds > LUO_AGENT_SESSION_FDS_MAX ||
		    (s.flags & ~LUO_AGENT_DEPOSIT_FLAGS_ALL) || s.reserved != 0 ||
		    (s.owner_conn != NO_CONN && s.owner_conn >= t.n_conns) || s.generation == 0 ||
		    luo_wire_name(s.name, sizeof(s.name)) < 0)
			return -EBADMSG;
		token += s.n_fds;
	}
	if (token != t.n_tokens)
		return -EBADMSG;
	free(incoming);
	incoming = malloc(len);
	if (!incoming)
		return -ENOMEM;
	memcpy(incoming, data, len);
	incoming_len = len;
	return 0;
}

LUO_COMPONENT(luod_table_component, TABLE_COMPONENT, 1, 1, 1, 1, 0, table_save, table_load);

/* ------------------------------------------------------------------------ */
/* The outgoing side                                                         */

struct preserving {
	struct luo *luo;
	struct luo_session *s[LUO_FILES_MAX / LUO_SESSION_FILES_MAX];
};

static void preserving_close(struct preserving *p)
{
	for (size_t i = 0; i < ARRAY_SIZE(p->s); i++) {
		luo_session_close(p->s[i]);
		p->s[i] = NULL;
	}
}

static int preserve_token(struct preserving *p, int fd, uint32_t token)
{
	uint32_t k = token / LUO_SESSION_FILES_MAX;
	int r;

	if (k >= ARRAY_SIZE(p->s))
		return -ENOSPC;
	if (!p->s[k]) {
		char name[LUO_SESSION_NAME_MAX + 1];

		snprintf(name, sizeof(name), LUOD_HANDOVER_SESSION_PREFIX "%u", k);
		r = luo_session_create(p->luo, name, &p->s[k]);
		if (r < 0)
			return r;
	}
	return luo_session_preserve_fd(p->s[k], fd, token);
}

static int preserve_all(struct luod *d, struct preserving *p)
{
	uint32_t token = 0;
	int r;

	if (1 + (uint64_t)d->n_conns + d->n_fds > LUO_FILES_MAX)
		return -ENOSPC;
	r = preserve_token(p, d->listen_fd, token++);
	for (struct conn *c = d->conns; c && r == 0; c = c->next) {
		c->token = token;
		r = preserve_token(p, c->fd, token++);
	}
	for (struct held *h = d->first; h && r == 0; h = h->next) {
		h->first_token = token;
		for (uint32_t i = 0; i < h->n_fds && r == 0; i++)
			r = preserve_token(p, h->fds[i], token++);
	}
	return r;
}

static void log_report(struct luod *d)
{
	const struct luo_report_entry *e;
	size_t n;

	if (luo_update_report(d->luo, &e, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		char line[512];

		luo_report_entry_format(&e[i], line, sizeof(line));
		luod_log("  %s", line);
	}
}

static void update_now(struct luod *d)
{
	struct preserving p = { .luo = d->luo };
	char state[128];
	struct timespec ts;
	int r;

	luod_log("self-update: %" PRIu64 " session(s), %" PRIu64 " fd(s), %u connection(s) to %s", d->n_sessions,
		 d->n_fds, d->n_conns, d->exe);
	r = preserve_all(d, &p);
	if (r == 0) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		snprintf(state, sizeof(state), "RELOADING=1\nMONOTONIC_USEC=%llu",
			 (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000u);
		(void)sd_notify(0, state);
		saving = d;
		fflush(NULL);
		r = luo_update(d->luo, d->exe, d->argv, NULL);
		/* Still here: refused or failed, and nothing changed. */
		saving = NULL;
		(void)sd_notify(0, "READY=1\nSTATUS=serving (the last self-update failed)");
	}
	preserving_close(&p);
	luod_log("self-update refused: %s; still serving", strerror(-r));
	if (r == -EPROTO)
		log_report(d);
	if (d->update_conn) {
		char why[LUO_AGENT_REASON_SIZE];

		snprintf(why, sizeof(why), "self-update refused: %s", strerror(-r));
		d->update_conn->cur_op = LUO_AGENT_OP_UPDATE;
		conn_reply(d, d->update_conn, d->update_seq, d->update_reply_size, r, why);
	}
}

void handover_poll(struct luod *d)
{
	bool busy = false;

	if (!d->update_wanted)
		return;
	for (struct conn *c = d->conns; c && !busy; c = c->next)
		busy = conn_busy(c);
	if (busy && luod_now_ms() < d->update_deadline_ms)
		return;
	for (struct conn *c = d->conns, *next; c; c = next) {
		next = c->next;
		if (conn_busy(c)) {
			luod_log("pid %d uid %u: %s at the self-update: connection closed (the client may retry)",
				 c->pid, c->uid, c->depositing ? "deposit still under way" : "reply not read");
			conn_close(d, c, CONN_CLOSE_AGENT);
		}
	}
	update_now(d);
	d->update_wanted = false;
	d->update_conn = NULL;
	conn_resume_all(d);
}

/* ------------------------------------------------------------------------ */
/* The incoming side                                                         */

/* Release libluo sessions of ours that nobody will adopt. */
static void release_sessions(struct luod *d, uint32_t from)
{
	for (uint32_t k = from; k < ARRAY_SIZE(((struct preserving *)0)->s); k++) {
		char name[LUO_SESSION_NAME_MAX + 1];
		struct luo_session *s;

		snprintf(name, sizeof(name), LUOD_HANDOVER_SESSION_PREFIX "%u", k);
		if (luo_session_retrieve(d->luo, name, &s) == 0)
			luo_session_close(s);
	}
}

static int restore_fds(struct luod *d, uint32_t n_tokens, int *tokfd)
{
	uint32_t n_sessions = (n_tokens + LUO_SESSION_FILES_MAX - 1) / LUO_SESSION_FILES_MAX;

	for (uint32_t k = 0; k < n_sessions; k++) {
		char name[LUO_SESSION_NAME_MAX + 1];
		struct luo_session *s;
		uint32_t end = (k + 1) * LUO_SESSION_FILES_MAX < n_tokens ? (k + 1) * LUO_SESSION_FILES_MAX : n_tokens;
		int r;

		snprintf(name, sizeof(name), LUOD_HANDOVER_SESSION_PREFIX "%u", k);
		r = luo_session_retrieve(d->luo, name, &s);
		if (r < 0) {
			luod_log("handover: session %s: %s", name, strerror(-r));
			continue;
		}
		for (uint32_t t = k * LUO_SESSION_FILES_MAX; t < end; t++) {
			r = luo_session_retrieve_fd(s, t, &tokfd[t]);
			if (r < 0) {
				tokfd[t] = -1;
				luod_log("handover: token %u: %s", t, strerror(-r));
			}
		}
		luo_session_close(s);
	}
	release_sessions(d, n_sessions);
	return 0;
}

/*
 * One held session of the table, its fds taken from @tokfd (those slots
 * then -1). 0, or -ENOMEM / -EBADF (an fd did not come): the session is
 * lost, its fds closed.
 */
static int restore_session(struct luod *d, const struct luod_session_v1 *rec, int *tokfd, struct conn **conns)
{
	struct held *h;
	bool whole = true;

	for (uint32_t j = 0; j < rec->n_fds; j++)
		whole &= tokfd[rec->first_token + j] >= 0;
	h = whole ? calloc(1, sizeof(*h)) : NULL;
	if (h)
		h->fds = malloc(sizeof(int) * rec->n_fds);
	if (!h || !h->fds || !table_usage(d, rec->uid, true)) {
		if (h)
			free(h->fds);
		free(h);
		for (uint32_t j = 0; j < rec->n_fds; j++)
			tokfd[rec->first_token + j] = safe_close(tokfd[rec->first_token + j]);
		return whole ? -ENOMEM : -EBADF;
	}
	for (uint32_t j = 0; j < rec->n_fds; j++)
		h->fds[j] = TAKE_FD(tokfd[rec->first_token + j]);
	memcpy(h->name, rec->name, sizeof(h->name));
	h->uid = rec->uid;
	h->flags = rec->flags;
	h->n_fds = rec->n_fds;
	h->bytes = rec->bytes;
	h->owner = rec->owner_conn != NO_CONN ? conns[rec->owner_conn] : NULL;
	table_put(d, h);
	h->deposited_s = rec->deposited_s;
	h->updated_s = rec->updated_s;
	h->generation = rec->generation;
	return 0;
}

/*
 * Answer the OP_UPDATE requester @c. Back by rollback: this is the old
 * image again, the update did not happen, and the requester must not hear
 * that it did.
 */
static void answer_requester(struct luod *d, const struct luod_table_v1 *t, struct conn *c)
{
	const char *why = NULL;
	char reason[LUO_AGENT_REASON_SIZE];
	int rb = luo_rollback(d->luo, &why);

	if (rb < 0)
		snprintf(reason, sizeof(reason), "self-update rolled back: %s (%s)", why ? why : "", strerror(-rb));
	c->cur_op = LUO_AGENT_OP_UPDATE;
	conn_reply(d, c, t->update_seq, t->update_reply_size, rb < 0 ? -EUCLEAN : 0, rb < 0 ? reason : NULL);
	if (c->dead)
		conn_close(d, c, c->dead_why);
}

int handover_restore(struct luod *d)
{
	_cleanup_free_ unsigned char *data = TAKE_PTR(incoming);
	_cleanup_free_ int *tokfd = NULL;
	_cleanup_free_ struct conn **conns = NULL;
	const unsigned char *p;
	struct luod_table_v1 t;
	uint32_t lost = 0;
	int r;

	d->lu_number = luo_liveupdate_number(d->luo);
	if (!data || luo_component_incoming(d->luo, TABLE_COMPONENT, NULL) < 0) {
		release_sessions(d, 0);
		return 0;
	}
	memcpy(&t, data, sizeof(t));
	p = data + sizeof(t);
	tokfd = malloc(sizeof(int) * t.n_tokens);
	conns = calloc(t.n_conns ? t.n_conns : 1, sizeof(*conns));
	if (!tokfd || !conns)
		return -ENOMEM;
	for (uint32_t i = 0; i < t.n_tokens; i++)
		tokfd[i] = -1;
	restore_fds(d, t.n_tokens, tokfd);
	if (tokfd[0] < 0) {
		for (uint32_t i = 0; i < t.n_tokens; i++)
			safe_close(tokfd[i]);
		return -EBADF;
	}
	d->listen_fd = TAKE_FD(tokfd[0]);
	r = luod_epoll_set(d, d->listen_fd, &d->listen_src, EPOLLIN, true);
	if (r < 0) {
		for (uint32_t i = 0; i < t.n_tokens; i++)
			safe_close(tokfd[i]);
		return r;
	}
	memcpy(d->exe, t.exe, sizeof(d->exe));
	d->started_s = t.started_s;
	for (uint32_t i = 0; i < t.n_conns; i++, p += sizeof(struct luod_conn_v1)) {
		struct luod_conn_v1 rec;

		memcpy(&rec, p, sizeof(rec));
		if (tokfd[rec.token] < 0)
			continue;
		r = conn_adopt(d, tokfd[rec.token], &conns[i]);
		if (r < 0) {
			luod_log("handover: connection %u: %s; closed", i, strerror(-r));
			safe_close(tokfd[rec.token]);
		}
		tokfd[rec.token] = -1;
	}
	for (uint32_t i = 0; i < t.n_sessions; i++, p += sizeof(struct luod_session_v1)) {
		struct luod_session_v1 rec;

		memcpy(&rec, p, sizeof(rec));
		lost += restore_session(d, &rec, tokfd, conns) < 0;
	}
	if (lost)
		luod_log("handover: %u session(s) lost (an fd did not come, or out of memory)", lost);
	if (t.update_conn != NO_CONN && conns[t.update_conn])
		answer_requester(d, &t, conns[t.update_conn]);
	return 1;
}
