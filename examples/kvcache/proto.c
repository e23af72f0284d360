/* SPDX-License-Identifier: MIT */
/*
 * DOC: the memcached text protocol, from input bytes to output bytes
 *
 * kv_proto_execute() takes what a connection has read and not yet used,
 * executes every complete command at its start, appends the replies to
 * the connection's output, and says how many bytes it used. It keeps no
 * pointer into either buffer, reads no socket and knows no thread: the
 * caller (kvcache.c) owns the bytes, so that a request half read when a
 * live update comes is simply bytes, handed over as they are.
 *
 * Commands: get, gets (several keys), set, add, replace, append, prepend,
 * cas, delete, incr, decr, touch, stats (and "stats reset"), version,
 * verbosity, flush_all, quit; noreply on those that take it. Replies use
 * memcached 1.6's words: ERROR for an unknown command or a wrong number of
 * tokens; "CLIENT_ERROR bad command line format" for a bad number or key;
 * "CLIENT_ERROR bad data chunk" when a data block does not end in \r\n
 * (the block is used up); "SERVER_ERROR object too large for cache" and
 * "SERVER_ERROR out of memory storing object" with the data block
 * swallowed, even if it has not arrived yet (kv_proto.swallow).
 *
 * Hostile input: a line longer than KV_LINE_MAX (KV_GET_LINE_MAX for
 * get/gets) without its end closes the connection, as memcached does past
 * 2048 bytes; numbers are parsed strictly (no sign where none belongs,
 * ranges checked); keys are 1..KV_KEY_MAX bytes, opaque as memcached
 * has them (no space, no newline; NULs and control bytes pass); a get adds at most KV_WBUF_CMD_MAX bytes of output, else
 * "SERVER_ERROR out of memory writing get response". Errors are sent even
 * with noreply (memcached may too: a malformed line cannot be trusted to
 * say noreply).
 */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kv.h"

/* Tokens a command other than get/gets may have. */
#define TOKENS_MAX 8

struct tok {
	const char *s;
	size_t n;
};

static bool tok_is(const struct tok *t, const char *word)
{
	size_t n = strlen(word);

	return t->n == n && memcmp(t->s, word, n) == 0;
}

static int reply(struct kv_buf *out, const char *s)
{
	return kv_buf_append(out, s, strlen(s));
}

/* Digits only, at most @max. */
static bool parse_u64(const struct tok *t, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;

	if (t->n == 0 || t->n > 20)
		return false;
	for (size_t i = 0; i < t->n; i++) {
		unsigned d = (unsigned char)t->s[i] - '0';

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (v > max)
		return false;
	*ret = v;
	return true;
}

/* An optional '-', then digits, within int32 (memcached's safe_strtol). */
static bool parse_i32(const struct tok *t, int64_t *ret)
{
	struct tok d = *t;
	bool neg = false;
	uint64_t v;

	if (d.n > 0 && d.s[0] == '-') {
		neg = true;
		d.s++;
		d.n--;
	}
	if (!parse_u64(&d, neg ? (uint64_t)INT32_MAX + 1 : INT32_MAX, &v))
		return false;
	*ret = neg ? -(int64_t)v : (int64_t)v;
	return true;
}

/*
 * A key is 1..KV_KEY_MAX bytes without a space (the separator) or a
 * newline (the end of the line). memcached takes every other byte, control
 * characters and NULs included, and real clients send them (memaslap's
 * keys start with 0x10 bytes): so do we.
 */
static bool key_ok(const struct tok *t)
{
	return t->n > 0 && t->n <= KV_KEY_MAX;
}

/* Split @line on spaces; at most @max tokens (more: returns max + 1). */
static size_t tokenize(const char *line, size_t len, struct tok *toks, size_t max)
{
	size_t n = 0, i = 0;

	while (i < len) {
		size_t start;

		while (i < len && line[i] == ' ')
			i++;
		if (i == len)
			break;
		start = i;
		while (i < len && line[i] != ' ')
			i++;
		if (n == max)
			return max + 1;
		toks[n].s = line + start;
		toks[n].n = i - start;
		n++;
	}
	return n;
}

/* ---------------------------------------------------------------------- */

static int cmd_get(struct kv_store *st, const char *line, size_t len, bool with_cas, struct kv_buf *out)
{
	_cleanup_free_ struct tok *toks = NULL;
	size_t n, start = out->len;
	int r;

	toks = malloc(sizeof(*toks) * (KV_GET_KEYS_MAX + 1));
	if (!toks)
		return reply(out, "SERVER_ERROR out of memory reading request\r\n");
	n = tokenize(line, len, toks, KV_GET_KEYS_MAX + 1);
	if (n < 2)
		return reply(out, "ERROR\r\n");
	if (n > KV_GET_KEYS_MAX + 1)
		return reply(out, "CLIENT_ERROR bad command line format\r\n");
	for (size_t i = 1; i < n; i++)
		if (!key_ok(&toks[i]))
			return reply(out, "CLIENT_ERROR bad command line format\r\n");
	for (size_t i = 1; i < n; i++) {
		r = kv_store_get(st, toks[i].s, toks[i].n, with_cas, out);
		if (r < 0 || out->len - start > KV_WBUF_CMD_MAX) {
			out->len = start;
			return reply(out, "SERVER_ERROR out of memory writing get response\r\n");
		}
	}
	return reply(out, "END\r\n");
}

static const char *result_word(enum kv_result r)
{
	switch (r) {
	case KV_STORED:
		return "STORED\r\n";
	case KV_NOT_STORED:
		return "NOT_STORED\r\n";
	case KV_EXISTS:
		return "EXISTS\r\n";
	case KV_NOT_FOUND:
		return "NOT_FOUND\r\n";
	case KV_DELETED:
		return "DELETED\r\n";
	case KV_TOUCHED:
		return "TOUCHED\r\n";
	case KV_NON_NUMERIC:
		return "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
	case KV_TOO_LARGE:
		return "SERVER_ERROR object too large for cache\r\n";
	case KV_NO_MEMORY:
		return "SERVER_ERROR out of memory storing object\r\n";
	case KV_OK:
		return "OK\r\n";
	}
	return "SERVER_ERROR\r\n";
}

static bool result_is_error(enum kv_result r)
{
	return r == KV_NON_NUMERIC || r == KV_TOO_LARGE || r == KV_NO_MEMORY;
}

static int answer(struct kv_buf *out, enum kv_result r, bool noreply)
{
	if (noreply && !result_is_error(r))
		return 0;
	return reply(out, result_word(r));
}

/*
 * A storage command whose line is toks[0..n). Return the bytes of input
 * used after the line (the data block, or 0), or -EAGAIN when the block
 * has not all arrived (nothing is used then).
 */
static ptrdiff_t cmd_store(struct kv_store *st, struct kv_proto *p, const struct tok *toks, size_t n, const char *data,
			   size_t avail, struct kv_buf *out)
{
	static const struct {
		const char *name;
		enum kv_set_mode mode;
	} modes[] = { { "set", KV_SET },         { "add", KV_ADD },         { "replace", KV_REPLACE },
		      { "append", KV_APPEND },   { "prepend", KV_PREPEND }, { "cas", KV_CAS } };
	enum kv_set_mode mode = KV_SET;
	uint64_t flags, cas = 0;
	int64_t exptime, vlen;
	size_t base;
	bool noreply;
	enum kv_result r;

	for (size_t i = 0; i < ARRAY_SIZE(modes); i++)
		if (tok_is(&toks[0], modes[i].name))
			mode = modes[i].mode;
	base = mode == KV_CAS ? 6 : 5;
	if (n != base && n != base + 1) {
		reply(out, "ERROR\r\n");
		return 0;
	}
	noreply = n == base + 1 && tok_is(&toks[base], "noreply");
	if (!key_ok(&toks[1]) || !parse_u64(&toks[2], UINT32_MAX, &flags) || !parse_i32(&toks[3], &exptime) ||
	    !parse_i32(&toks[4], &vlen) || (mode == KV_CAS && !parse_u64(&toks[5], UINT64_MAX, &cas)) || vlen < 0) {
		/* memcached does not swallow here: the block is read as commands. */
		reply(out, "CLIENT_ERROR bad command line format\r\n");
		return 0;
	}
	if ((uint64_t)vlen > KV_VALUE_MAX) {
		reply(out, "SERVER_ERROR object too large for cache\r\n");
		if (mode == KV_SET)
			kv_store_delete(st, toks[1].s, toks[1].n);
		p->swallow = (uint64_t)vlen + 2;
		return 0;
	}
	if (avail < (size_t)vlen + 2)
		return -EAGAIN;
	if (data[vlen] != '\r' || data[vlen + 1] != '\n') {
		reply(out, "CLIENT_ERROR bad data chunk\r\n");
		return vlen + 2;
	}
	r = kv_store_set(st, mode, toks[1].s, toks[1].n, (uint32_t)flags, kv_exptime(exptime), data, (size_t)vlen, cas);
	answer(out, r, noreply);
	return vlen + 2;
}

static void cmd_delete(struct kv_store *st, const struct tok *toks, size_t n, struct kv_buf *out)
{
	bool noreply = false;

	if (n < 2 || n > 4) {
		reply(out, "ERROR\r\n");
		return;
	}
	if (n > 2) {
		/* memcached: "delete <key> [0] [noreply]", nothing else. */
		bool zero = tok_is(&toks[2], "0");

		noreply = tok_is(&toks[n - 1], "noreply");
		if (!((n == 3 && (zero || noreply)) || (n == 4 && zero && noreply))) {
			reply(out, "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n");
			return;
		}
	}
	if (!key_ok(&toks[1])) {
		reply(out, "CLIENT_ERROR bad command line format\r\n");
		return;
	}
	answer(out, kv_store_delete(st, toks[1].s, toks[1].n), noreply);
}

static void cmd_arith(struct kv_store *st, const struct tok *toks, size_t n, struct kv_buf *out)
{
	bool incr = tok_is(&toks[0], "incr"), noreply;
	uint64_t delta, v = 0;
	enum kv_result r;
	char num[32];

	if (n != 3 && n != 4) {
		reply(out, "ERROR\r\n");
		return;
	}
	noreply = n == 4 && tok_is(&toks[3], "noreply");
	if (!key_ok(&toks[1])) {
		reply(out, "CLIENT_ERROR bad command line format\r\n");
		return;
	}
	if (!parse_u64(&toks[2], UINT64_MAX, &delta)) {
		reply(out, "CLIENT_ERROR invalid numeric delta argument\r\n");
		return;
	}
	r = kv_store_arith(st, toks[1].s, toks[1].n, incr, delta, &v);
	if (r == KV_NO_MEMORY) {
		reply(out, "SERVER_ERROR out of memory\r\n");
		return;
	}
	if (r != KV_OK) {
		answer(out, r, noreply);
		return;
	}
	if (!noreply) {
		snprintf(num, sizeof(num), "%" PRIu64 "\r\n", v);
		reply(out, num);
	}
}

static void cmd_touch(struct kv_store *st, const struct tok *toks, size_t n, struct kv_buf *out)
{
	int64_t exptime;
	bool noreply;

	if (n != 3 && n != 4) {
		reply(out, "ERROR\r\n");
		return;
	}
	noreply = n == 4 && tok_is(&toks[3], "noreply");
	if (!key_ok(&toks[1])) {
		reply(out, "CLIENT_ERROR bad command line format\r\n");
		return;
	}
	if (!parse_i32(&toks[2], &exptime)) {
		reply(out, "CLIENT_ERROR invalid exptime argument\r\n");
		return;
	}
	answer(out, kv_store_touch(st, toks[1].s, toks[1].n, kv_exptime(exptime)), noreply);
}

static void cmd_flush(struct kv_store *st, const struct tok *toks, size_t n, struct kv_buf *out)
{
	bool noreply = n > 1 && tok_is(&toks[n - 1], "noreply");
	size_t nargs = n - 1 - noreply;
	int64_t delay = 0;

	if (n > 3) {
		reply(out, "ERROR\r\n");
		return;
	}
	if (nargs == 1 && !parse_i32(&toks[1], &delay)) {
		reply(out, "CLIENT_ERROR bad command line format\r\n");
		return;
	}
	kv_store_flush(st, delay > 0 ? kv_exptime(delay) : 0);
	if (!noreply)
		reply(out, "OK\r\n");
}

static void stat_u64(struct kv_buf *out, const char *name, uint64_t v)
{
	char line[128];
	int n = snprintf(line, sizeof(line), "STAT %s %" PRIu64 "\r\n", name, v);

	kv_buf_append(out, line, (size_t)n);
}

static void stat_str(struct kv_buf *out, const char *name, const char *v)
{
	char line[160];
	int n = snprintf(line, sizeof(line), "STAT %s %s\r\n", name, v);

	kv_buf_append(out, line, (size_t)n);
}

static void cmd_stats(struct kv_store *st, const struct tok *toks, size_t n, struct kv_buf *out)
{
	struct kv_server_stats s;
	uint32_t now = kv_now();
	char rusage[64];

	if (n == 2 && tok_is(&toks[1], "reset")) {
		static const size_t fields[] = {
			offsetof(struct kv_counters, total_items), offsetof(struct kv_counters, evictions),
			offsetof(struct kv_counters, cmd_get),     offsetof(struct kv_counters, get_hits),
			offsetof(struct kv_counters, get_misses),  offsetof(struct kv_counters, cmd_set),
			offsetof(struct kv_counters, cmd_touch),   offsetof(struct kv_counters, total_connections),
		};

		for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
			__atomic_store_n((uint64_t *)((char *)&st->root->c + fields[i]), 0, __ATOMIC_RELAXED);
		reply(out, "RESET\r\n");
		return;
	}
	if (n != 1) {
		reply(out, "ERROR\r\n");
		return;
	}
	kv_server_stats(&s);
	stat_u64(out, "pid", (uint64_t)getpid());
	stat_u64(out, "uptime", now - st->root->started_at);
	stat_u64(out, "time", now);
	stat_str(out, "version", KV_VERSION_STRING);
	stat_u64(out, "pointer_size", sizeof(void *) * 8);
	snprintf(rusage, sizeof(rusage), "%s", KV_BUILD_NAME);
	stat_str(out, "kvcache_build", rusage);
	stat_u64(out, "store_format", st->format);
	stat_u64(out, "curr_connections", s.curr_connections);
	stat_u64(out, "total_connections", KV_READ(st, total_connections));
	stat_u64(out, "rejected_connections", KV_READ(st, rejected_connections));
	stat_u64(out, "idle_kicks", KV_READ(st, conn_timeouts));
	stat_u64(out, "cmd_get", KV_READ(st, cmd_get));
	stat_u64(out, "cmd_set", KV_READ(st, cmd_set));
	stat_u64(out, "cmd_flush", KV_READ(st, cmd_flush));
	stat_u64(out, "cmd_touch", KV_READ(st, cmd_touch));
	stat_u64(out, "get_hits", KV_READ(st, get_hits));
	stat_u64(out, "get_misses", KV_READ(st, get_misses));
	stat_u64(out, "get_expired", KV_READ(st, get_expired));
	stat_u64(out, "delete_misses", KV_READ(st, delete_misses));
	stat_u64(out, "delete_hits", KV_READ(st, delete_hits));
	stat_u64(out, "incr_misses", KV_READ(st, incr_misses));
	stat_u64(out, "incr_hits", KV_READ(st, incr_hits));
	stat_u64(out, "decr_misses", KV_READ(st, decr_misses));
	stat_u64(out, "decr_hits", KV_READ(st, decr_hits));
	stat_u64(out, "cas_misses", KV_READ(st, cas_misses));
	stat_u64(out, "cas_hits", KV_READ(st, cas_hits));
	stat_u64(out, "cas_badval", KV_READ(st, cas_badval));
	stat_u64(out, "touch_hits", KV_READ(st, touch_hits));
	stat_u64(out, "touch_misses", KV_READ(st, touch_misses));
	stat_u64(out, "threads", s.threads);
	stat_u64(out, "limit_maxbytes", st->root->limit);
	stat_u64(out, "bytes", KV_READ(st, bytes));
	stat_u64(out, "curr_items", KV_READ(st, curr_items));
	stat_u64(out, "total_items", KV_READ(st, total_items));
	stat_u64(out, "evictions", KV_READ(st, evictions));
	stat_u64(out, "reclaimed", KV_READ(st, reclaimed));
	stat_u64(out, "hash_buckets", st->root->nbuckets);
	stat_u64(out, "items_migrated", KV_READ(st, migrated));
	stat_u64(out, "liveupdate_number", s.liveupdate_number);
	stat_u64(out, "last_blackout_us", s.last_blackout_us);
	stat_u64(out, "last_quiesce_us", s.last_quiesce_us);
	stat_u64(out, "failed_updates", s.failed_updates);
	reply(out, "END\r\n");
}

/*
 * One command line (without "\r\n") at @line; its data block, if any,
 * starts at @rest (@avail bytes there). Return the bytes used after the
 * line, or -EAGAIN (the data block is incomplete).
 */
static ptrdiff_t execute_line(struct kv_store *st, struct kv_proto *p, const char *line, size_t len, const char *rest,
			      size_t avail, struct kv_buf *out)
{
	struct tok toks[TOKENS_MAX + 1];
	size_t n;

	while (len > 0 && *line == ' ') {
		line++;
		len--;
	}
	/* get/gets first: they take many keys. */
	if ((len >= 4 && memcmp(line, "get ", 4) == 0) || (len >= 5 && memcmp(line, "gets ", 5) == 0)) {
		cmd_get(st, line, len, line[3] == 's', out);
		return 0;
	}
	n = tokenize(line, len, toks, TOKENS_MAX);
	if (n == 0 || n > TOKENS_MAX) {
		reply(out, "ERROR\r\n");
		return 0;
	}
	if (tok_is(&toks[0], "get") || tok_is(&toks[0], "gets")) {
		reply(out, "ERROR\r\n"); /* no key */
		return 0;
	}
	if (tok_is(&toks[0], "set") || tok_is(&toks[0], "add") || tok_is(&toks[0], "replace") ||
	    tok_is(&toks[0], "append") || tok_is(&toks[0], "prepend") || tok_is(&toks[0], "cas"))
		return cmd_store(st, p, toks, n, rest, avail, out);
	if (tok_is(&toks[0], "delete"))
		cmd_delete(st, toks, n, out);
	else if (tok_is(&toks[0], "incr") || tok_is(&toks[0], "decr"))
		cmd_arith(st, toks, n, out);
	else if (tok_is(&toks[0], "touch"))
		cmd_touch(st, toks, n, out);
	else if (tok_is(&toks[0], "stats"))
		cmd_stats(st, toks, n, out);
	else if (tok_is(&toks[0], "flush_all"))
		cmd_flush(st, toks, n, out);
	else if (tok_is(&toks[0], "version")) /* memcached ignores what follows */
		reply(out, "VERSION " KV_VERSION_STRING "\r\n");
	else if (tok_is(&toks[0], "verbosity") && (n == 2 || n == 3))
		reply(out, tok_is(&toks[n - 1], "noreply") ? "" : "OK\r\n"); /* the level itself is ignored */
	else if (tok_is(&toks[0], "quit"))
		p->closing = true;
	else
		reply(out, "ERROR\r\n");
	return 0;
}

/* Whether an unfinished line may grow to KV_GET_LINE_MAX: a get or gets. */
static bool is_get_line(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len && i < 100 && s[i] == ' ')
		i++;
	if (i >= 100)
		return false;
	return (len - i >= 4 && memcmp(s + i, "get ", 4) == 0) || (len - i >= 5 && memcmp(s + i, "gets ", 5) == 0);
}

ptrdiff_t kv_proto_execute(struct kv_store *st, struct kv_proto *p, const char *in, size_t len, struct kv_buf *out)
{
	size_t pos = 0;

	while (pos < len && !p->closing) {
		const char *line = in + pos, *nl;
		size_t avail = len - pos, llen, used_line;
		ptrdiff_t used;

		if (out->len > KV_WBUF_SOFT_MAX)
			break; /* the caller drains the output first */
		if (p->swallow) {
			size_t k = avail < p->swallow ? avail : (size_t)p->swallow;

			p->swallow -= k;
			pos += k;
			continue;
		}
		nl = memchr(line, '\n', avail < KV_GET_LINE_MAX + 1 ? avail : KV_GET_LINE_MAX + 1);
		llen = nl ? (size_t)(nl - line) : avail;
		if (llen > KV_LINE_MAX && !(llen <= KV_GET_LINE_MAX && is_get_line(line, llen))) {
			/* memcached closes such a connection: no reply could be trusted. */
			p->closing = true;
			return (ptrdiff_t)len;
		}
		if (!nl)
			break; /* wait for the rest of the line */
		used_line = llen + 1;
		if (llen > 0 && line[llen - 1] == '\r')
			llen--;
		used = execute_line(st, p, line, llen, line + used_line, avail - used_line, out);
		if (used == -EAGAIN)
			break; /* the data block is not all here */
		pos += used_line + (size_t)used;
	}
	if (p->closing)
		return (ptrdiff_t)len;
	return (ptrdiff_t)pos;
}
