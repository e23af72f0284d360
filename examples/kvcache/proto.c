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
 * The reference is memcached 1.6 (Debian's 1.6.18): the same bytes in,
 * the same bytes out, checked by tests/test-kvcache-differential.py
 * against the real binary; what still differs is listed in kvcache(1).
 *
 * Commands: get, gets, gat, gats (several keys), set, add, replace,
 * append, prepend, cas, delete, incr, decr, touch, the meta commands mg,
 * ms, md, ma, mn, me (the flags kvcache(1) lists), stats (general,
 * "reset", "conns", "settings", "items", "slabs", "detail", "cachedump"), version, verbosity,
 * flush_all, cache_memlimit, shutdown (refused, as memcached without -A),
 * quit.
 *
 * noreply, as memcached: a classic command whose arity is right and whose
 * last token is "noreply" sends nothing at all, failed or not
 * (execute_line() drops what it wrote). An unknown command or a wrong
 * number of tokens is answered "ERROR" even with noreply (the line could
 * not be read as that command). Meta commands have "q" instead: it drops
 * the nominal answer only (EN for mg, HD for ms/md/ma); errors and the
 * other codes are sent.
 *
 * Hostile input: an unfinished line longer than KV_LINE_MAX (2048, as
 * memcached; KV_GET_LINE_MAX for the get family) closes the connection;
 * a complete line is read up to LINE_COMPLETE_MAX (memcached reads what
 * its 16 KiB buffer holds). Numbers are parsed strictly (ranges checked),
 * keys are 1..KV_KEY_MAX bytes, opaque as memcached has them (no space,
 * no newline; control bytes pass); a NUL ends the line, as memcached reads
 * it as a C string. A get adds at most
 * KV_WBUF_CMD_MAX bytes of output, else "SERVER_ERROR out of memory
 * writing get response". A binary-protocol request (first byte 0x80) is
 * answered with one binary "not supported" response, then the connection
 * is closed: a binary client fails at once instead of waiting.
 */

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "kv.h"

/* Tokens a command other than the get family may have (memcached's MAX_TOKENS, less its terminal one). */
#define TOKENS_MAX 23
/* A complete line (its "\n" read) longer than this is too long even so (memcached's read buffer). */
#define LINE_COMPLETE_MAX 16384
/* Meta commands: tokens at most (memcached's MFLAG_MAX_OPT_LENGTH, less its terminal one). */
#define META_TOKENS_MAX 19
/* Meta commands: an opaque (O) token, its 'O' included. */
#define META_OPAQUE_MAX 32
/* A binary-protocol request header. */
#define BIN_HEADER 24
/* stats detail: prefixes counted at most (memcached: no bound), and the buckets of their table. */
#define DETAIL_PREFIXES_MAX 4096
#define DETAIL_BUCKETS 256
/* stats detail: a key's prefix ends at this byte (memcached's default -D). */
#define DETAIL_DELIMITER ':'
/* stats cachedump: memcached's bounds (its slab classes, its 2 MB reply). */
#define CACHEDUMP_CLASSES 64
#define CACHEDUMP_BYTES_MAX ((2u << 20) - 6)
/* cache_memlimit: memcached's bounds, in MiB. */
#define MEMLIMIT_MIN_MB 8
#define MEMLIMIT_MAX_MB 1000000000u

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

static bool is_c_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/*
 * A number as memcached reads one (strtoull/strtol, then its safe_*
 * checks): leading white space, an optional sign, digits (an overflow is
 * no number), then the end of the token or white space. Magnitude in
 * *@ret_mag, sign in *@ret_neg.
 */
static bool parse_c_number(const struct tok *t, uint64_t *ret_mag, bool *ret_neg)
{
	size_t i = 0, start;
	uint64_t v = 0;
	bool neg = false;

	while (i < t->n && is_c_space(t->s[i]))
		i++;
	if (i < t->n && (t->s[i] == '+' || t->s[i] == '-'))
		neg = t->s[i++] == '-';
	start = i;
	for (; i < t->n && t->s[i] >= '0' && t->s[i] <= '9'; i++) {
		unsigned d = (unsigned)(t->s[i] - '0');

		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (i == start || (i < t->n && !is_c_space(t->s[i])))
		return false;
	*ret_mag = v;
	*ret_neg = neg;
	return true;
}

/*
 * Unsigned, at most @max (memcached's safe_strtoull/safe_strtoul): a '-'
 * is refused when the two's complement has its top bit set, as there
 * ("-1" no, "-0" is 0).
 */
static bool parse_u64(const struct tok *t, uint64_t max, uint64_t *ret)
{
	uint64_t v;
	bool neg;

	if (!parse_c_number(t, &v, &neg))
		return false;
	if (neg) {
		v = -v;
		if (v >> 63)
			return false;
	}
	if (v > max)
		return false;
	*ret = v;
	return true;
}

/* Signed, within int32 (memcached's safe_strtol, whose result is an int32). */
static bool parse_i32(const struct tok *t, int64_t *ret)
{
	uint64_t v;
	bool neg;

	if (!parse_c_number(t, &v, &neg) || v > (neg ? (uint64_t)INT32_MAX + 1 : INT32_MAX))
		return false;
	*ret = neg ? -(int64_t)v : (int64_t)v;
	return true;
}

/*
 * A time (exptime, delay, meta T/N/R) as memcached 1.6 reads it on 64
 * bits: safe_strtol() takes any long, then keeps its low 32 bits in an
 * int32 ("99999999999" is 1215752191 there, an absolute time long past;
 * "4294967297" is 1). Lengths keep parse_i32()'s bounds.
 */
static bool parse_time32(const struct tok *t, int64_t *ret)
{
	uint64_t v;
	bool neg;

	if (!parse_c_number(t, &v, &neg) || v > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX))
		return false;
	*ret = (int32_t)(uint32_t)(neg ? -v : v);
	return true;
}

/*
 * A key is 1..KV_KEY_MAX bytes without a space (the separator) or a
 * newline (the end of the line). memcached takes every other byte but NUL
 * (which ends its line, see execute_line()), control characters included,
 * and real clients send them (memaslap's keys start with 0x10 bytes): so
 * do we.
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

/* memcached's set_noreply_maybe(): the last token is "noreply". */
static bool last_is_noreply(const struct tok *toks, size_t n)
{
	return n > 1 && tok_is(&toks[n - 1], "noreply");
}

/* ---------------------------------------------------------------------- */
/* stats detail: per-prefix counts, as memcached's stats_prefix.c           */

/*
 * Process-wide (every connection's), in this image only: a live update
 * starts the next image with detail off and no counts, as a memcached
 * restart does. Guarded by one mutex, taken only while detail is on.
 */
struct prefix_stats {
	struct prefix_stats *next;
	uint64_t gets, hits, sets, dels;
	size_t len;
	char name[];
};

static pthread_mutex_t detail_lock = PTHREAD_MUTEX_INITIALIZER;
static bool detail_on;
static struct prefix_stats *detail_table[DETAIL_BUCKETS];
static size_t detail_count;

enum detail_op { DETAIL_GET, DETAIL_HIT, DETAIL_SET, DETAIL_DEL };

/* MurmurHash3_x86_32, seed 0: memcached's default hash, so "stats detail dump" lists prefixes in its order. */
static uint32_t murmur3_32(const char *key, size_t len)
{
	const uint8_t *d = (const uint8_t *)key;
	uint32_t h = 0, k;
	size_t i;

	for (i = 0; i + 4 <= len; i += 4) {
		k = (uint32_t)d[i] | (uint32_t)d[i + 1] << 8 | (uint32_t)d[i + 2] << 16 | (uint32_t)d[i + 3] << 24;
		k *= 0xcc9e2d51u;
		k = k << 15 | k >> 17;
		k *= 0x1b873593u;
		h ^= k;
		h = h << 13 | h >> 19;
		h = h * 5 + 0xe6546b64u;
	}
	k = 0;
	switch (len & 3) {
	case 3:
		k ^= (uint32_t)d[i + 2] << 16;
		/* fall through */
	case 2:
		k ^= (uint32_t)d[i + 1] << 8;
		/* fall through */
	case 1:
		k ^= d[i];
		k *= 0xcc9e2d51u;
		k = k << 15 | k >> 17;
		k *= 0x1b873593u;
		h ^= k;
	}
	h ^= (uint32_t)len;
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

static void detail_record(const char *key, size_t nkey, enum detail_op op)
{
	struct prefix_stats *ps;
	size_t len = 0;
	uint32_t h;

	if (!__atomic_load_n(&detail_on, __ATOMIC_RELAXED))
		return;
	/* memcached: up to the delimiter; a NUL before it, or no delimiter: not counted. */
	while (len < nkey && key[len] != DETAIL_DELIMITER) {
		if (key[len] == '\0')
			return;
		len++;
	}
	if (len == nkey)
		return;
	h = murmur3_32(key, len);
	pthread_mutex_lock(&detail_lock);
	for (ps = detail_table[h % DETAIL_BUCKETS]; ps; ps = ps->next)
		if (ps->len == len && memcmp(ps->name, key, len) == 0)
			break;
	if (!ps && detail_count < DETAIL_PREFIXES_MAX) {
		ps = calloc(1, sizeof(*ps) + len + 1);
		if (ps) {
			memcpy(ps->name, key, len);
			ps->len = len;
			ps->next = detail_table[h % DETAIL_BUCKETS];
			detail_table[h % DETAIL_BUCKETS] = ps;
			detail_count++;
		}
	}
	if (ps) {
		if (op == DETAIL_GET || op == DETAIL_HIT)
			ps->gets++;
		if (op == DETAIL_HIT)
			ps->hits++;
		if (op == DETAIL_SET)
			ps->sets++;
		if (op == DETAIL_DEL)
			ps->dels++;
	}
	pthread_mutex_unlock(&detail_lock);
}

static void detail_dump(struct kv_buf *out)
{
	char line[96];

	pthread_mutex_lock(&detail_lock);
	for (size_t b = 0; b < DETAIL_BUCKETS; b++)
		for (struct prefix_stats *ps = detail_table[b]; ps; ps = ps->next) {
			int n = snprintf(line, sizeof(line), " get %" PRIu64 " hit %" PRIu64 " set %" PRIu64 " del %" PRIu64 "\r\n",
					 ps->gets, ps->hits, ps->sets, ps->dels);

			kv_buf_append(out, "PREFIX ", 7);
			kv_buf_append(out, ps->name, ps->len);
			kv_buf_append(out, line, (size_t)n);
		}
	pthread_mutex_unlock(&detail_lock);
	reply(out, "END\r\n");
}

/* ---------------------------------------------------------------------- */
/* Retrieval: get, gets, gat, gats                                          */

static int cmd_get(struct kv_store *st, const char *line, size_t len, struct kv_buf *out)
{
	_cleanup_free_ struct tok *toks = NULL;
	size_t n, first = 1, start = out->len;
	bool with_cas, touch;
	struct kv_fetch req = { 0 };
	int64_t exptime;
	int r;

	toks = malloc(sizeof(*toks) * (KV_GET_KEYS_MAX + 2));
	if (!toks)
		return reply(out, "SERVER_ERROR out of memory reading request\r\n");
	n = tokenize(line, len, toks, KV_GET_KEYS_MAX + 2);
	with_cas = tok_is(&toks[0], "gets") || tok_is(&toks[0], "gats");
	touch = toks[0].s[1] == 'a';
	if (n < 2)
		return reply(out, "ERROR\r\n");
	if (n > KV_GET_KEYS_MAX + 1 + (size_t)touch)
		return reply(out, "CLIENT_ERROR bad command line format\r\n");
	if (touch) {
		if (!parse_time32(&toks[1], &exptime))
			return reply(out, "CLIENT_ERROR invalid exptime argument\r\n");
		req.touch = true;
		req.exptime = kv_exptime(exptime);
		first = 2;
	}
	for (size_t i = first; i < n; i++)
		if (!key_ok(&toks[i]))
			return reply(out, "CLIENT_ERROR bad command line format\r\n");
	for (size_t i = first; i < n; i++) {
		if (touch) {
			struct kv_item_info info;
			char head[KV_KEY_MAX + 96];
			size_t at = out->len;
			int hn;

			/* The value first, then its header moved in before it: one fetch, one lock. */
			r = kv_store_fetch(st, toks[i].s, toks[i].n, &req, &info, out);
			if (r > 0) {
				memcpy(head, "VALUE ", 6);
				memcpy(head + 6, toks[i].s, toks[i].n);
				hn = 6 + (int)toks[i].n;
				if (with_cas)
					hn += snprintf(head + hn, sizeof(head) - (size_t)hn,
						       " %" PRIu32 " %" PRIu32 " %" PRIu64 "\r\n", info.flags, info.nbytes,
						       info.cas);
				else
					hn += snprintf(head + hn, sizeof(head) - (size_t)hn, " %" PRIu32 " %" PRIu32 "\r\n",
						       info.flags, info.nbytes);
				if (kv_buf_reserve(out, (size_t)hn) < 0) {
					r = -ENOMEM;
				} else {
					memmove(out->data + at + hn, out->data + at, out->len - at);
					memcpy(out->data + at, head, (size_t)hn);
					out->len += (size_t)hn;
				}
			}
		} else {
			r = kv_store_get(st, toks[i].s, toks[i].n, with_cas, out);
		}
		if (r < 0 || out->len - start > KV_WBUF_CMD_MAX) {
			out->len = start;
			return reply(out, "SERVER_ERROR out of memory writing get response\r\n");
		}
		detail_record(toks[i].s, toks[i].n, r > 0 ? DETAIL_HIT : DETAIL_GET);
	}
	return reply(out, "END\r\n");
}

/* ---------------------------------------------------------------------- */
/* Classic updates                                                          */

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

/*
 * A storage command whose line is toks[0..n). Return the bytes of input
 * used after the line (the data block, or 0), or -EAGAIN when the block
 * has not all arrived (nothing is used then, nothing written).
 */
static ptrdiff_t cmd_store(struct kv_store *st, struct kv_proto *p, const struct tok *toks, size_t n, const char *data,
			   size_t avail, struct kv_buf *out, bool *noreply)
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

	for (size_t i = 0; i < ARRAY_SIZE(modes); i++)
		if (tok_is(&toks[0], modes[i].name))
			mode = modes[i].mode;
	base = mode == KV_CAS ? 6 : 5;
	if (n != base && n != base + 1) {
		reply(out, "ERROR\r\n");
		return 0;
	}
	*noreply = last_is_noreply(toks, n);
	/* Flags: memcached's safe_strtoul() on 64 bits, then kept in 32 (4294967296 is 0 there). */
	if (!key_ok(&toks[1]) || !parse_u64(&toks[2], UINT64_MAX, &flags) || !parse_time32(&toks[3], &exptime) ||
	    !parse_i32(&toks[4], &vlen) || (mode == KV_CAS && !parse_u64(&toks[5], UINT64_MAX, &cas)) || vlen < 0) {
		/* memcached does not swallow here: the block is read as commands. */
		reply(out, "CLIENT_ERROR bad command line format\r\n");
		return 0;
	}
	detail_record(toks[1].s, toks[1].n, DETAIL_SET);
	if (!kv_item_fits(toks[1].n, (uint32_t)flags, (uint64_t)vlen)) {
		reply(out, "SERVER_ERROR object too large for cache\r\n");
		/* memcached: no stale value survives a set that failed. */
		if (mode == KV_SET)
			kv_store_delete(st, toks[1].s, toks[1].n, 0);
		p->swallow = (uint64_t)vlen + 2;
		return 0;
	}
	if (avail < (size_t)vlen + 2)
		return -EAGAIN;
	if (data[vlen] != '\r' || data[vlen + 1] != '\n') {
		reply(out, "CLIENT_ERROR bad data chunk\r\n");
		return vlen + 2;
	}
	reply(out, result_word(kv_store_set(st, mode, toks[1].s, toks[1].n, (uint32_t)flags, kv_exptime(exptime), data,
					    (size_t)vlen, cas, NULL)));
	return vlen + 2;
}

static void cmd_delete(struct kv_store *st, const struct tok *toks, size_t n, struct kv_buf *out, bool *noreply)
{
	if (n < 2 || n > 4) {
		reply(out, "ERROR\r\n");
		return;
	}
	*noreply = last_is_noreply(toks, n);
	if (n > 2) {
		/* memcached: "delete <key> [0] [noreply]", nothing else. */
		bool zero = tok_is(&toks[2], "0");

		if (!((n == 3 && (zero || *noreply)) || (n == 4 && zero && *noreply))) {
			reply(out, "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n");
			return;
		}
	}
	if (!key_ok(&toks[1])) {
		reply(out, "CLIENT_ERROR bad command line format\r\n");
		return;
	}
	detail_record(toks[1].s, toks[1].n, DETAIL_DEL);
	reply(out, result_word(kv_store_delete(st, toks[1].s, toks[1].n, 0)));
}

static void cmd_arith(struct kv_store *st, const struct tok *toks, size_t n, struct kv_buf *out, bool *noreply)
{
	struct kv_arith req = { .incr = tok_is(&toks[0], "incr") };
	uint64_t v = 0;
	enum kv_result r;
	char num[32];

	if (n != 3 && n != 4) {
		reply(out, "ERROR\r\n");
		return;
	}
	*noreply = last_is_noreply(toks, n);
	if (!key_ok(&toks[1])) {
		reply(out, "CLIENT_ERROR bad command line format\r\n");
		return;
	}
	if (!parse_u64(&toks[2], UINT64_MAX, &req.delta)) {
		reply(out, "CLIENT_ERROR invalid numeric delta argument\r\n");
		return;
	}
	r = kv_store_arith(st, toks[1].s, toks[1].n, &req, &v, NULL);
	if (r == KV_NO_MEMORY) {
		reply(out, "SERVER_ERROR out of memory\r\n");
		return;
	}
	if (r != KV_OK) {
		reply(out, result_word(r));
		return;
	}
	snprintf(num, sizeof(num), "%" PRIu64 "\r\n", v);
	reply(out, num);
}

static void cmd_touch(struct kv_store *st, const struct tok *toks, size_t n, struct kv_buf *out, bool *noreply)
{
	int64_t exptime;

	if (n != 3 && n != 4) {
		reply(out, "ERROR\r\n");
		return;
	}
	*noreply = last_is_noreply(toks, n);
	if (!key_ok(&toks[1])) {
		reply(out, "CLIENT_ERROR bad command line format\r\n");
		return;
	}
	if (!parse_time32(&toks[2], &exptime)) {
		reply(out, "CLIENT_ERROR invalid exptime argument\r\n");
		return;
	}
	reply(out, result_word(kv_store_touch(st, toks[1].s, toks[1].n, kv_exptime(exptime))));
}

static void cmd_flush(struct kv_store *st, const struct tok *toks, size_t n, struct kv_buf *out, bool *noreply)
{
	int64_t delay = 0;

	if (n > 3) {
		reply(out, "ERROR\r\n");
		return;
	}
	*noreply = last_is_noreply(toks, n);
	/* memcached reads the delay whenever there is a token besides noreply ("flush_all 1 2": 1). */
	if (n != (*noreply ? 2u : 1u) && !parse_time32(&toks[1], &delay)) {
		reply(out, "CLIENT_ERROR invalid exptime argument\r\n");
		return;
	}
	kv_store_flush(st, delay > 0 ? kv_exptime(delay) : 0);
	reply(out, "OK\r\n");
}

static void cmd_verbosity(const struct tok *toks, size_t n, struct kv_buf *out, bool *noreply)
{
	uint64_t level;

	if (n != 2 && n != 3) {
		reply(out, "ERROR\r\n");
		return;
	}
	*noreply = last_is_noreply(toks, n);
	/* The level is checked, then ignored: kvcache logs what it logs. */
	if (!parse_u64(&toks[1], UINT32_MAX, &level))
		reply(out, "CLIENT_ERROR bad command line format\r\n");
	else
		reply(out, "OK\r\n");
}

static void cmd_memlimit(struct kv_store *st, const struct tok *toks, size_t n, struct kv_buf *out, bool *noreply)
{
	uint64_t mb;

	if (n != 2 && n != 3) {
		reply(out, "ERROR\r\n");
		return;
	}
	*noreply = last_is_noreply(toks, n);
	if (!parse_u64(&toks[1], UINT32_MAX, &mb))
		reply(out, "ERROR\r\n");
	else if (mb < MEMLIMIT_MIN_MB)
		reply(out, "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n");
	else if (mb > MEMLIMIT_MAX_MB)
		reply(out, "MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n");
	else if (kv_store_set_limit(st, mb << 20) < 0)
		/* memcached's words; the bound is the arena's reserve (kvcache(1)). */
		reply(out, "MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust\r\n");
	else
		reply(out, "OK\r\n");
}

/* ---------------------------------------------------------------------- */
/* Meta commands                                                            */

/* The flags of one meta command, parsed as memcached's _meta_flag_preparse() does. */
struct meta {
	bool q, v, u, has_cas, has_ttl, vivify, seen_l;
	char mode;
	uint32_t exptime, viv_exptime, client_flags;
	uint64_t cas, delta, initial;
	const char *unsupported; /* a flag memcached knows and kvcache does not do */
};

static bool meta_num_u64(const struct tok *t, uint64_t max, uint64_t *ret)
{
	struct tok d = { t->s + 1, t->n - 1 };

	return parse_u64(&d, max, ret);
}

/* A meta time (T, N, R): memcached's safe_strtol(), see parse_time32(). */
static bool meta_num_time32(const struct tok *t, int64_t *ret)
{
	struct tok d = { t->s + 1, t->n - 1 };

	return parse_time32(&d, ret);
}

/* Parse toks[from..n): 0, or an error line in *ret_err. */
static int meta_parse(const struct tok *toks, size_t from, size_t n, struct meta *m, const char **ret_err)
{
	bool seen[128] = { false };
	int64_t i32;

	*m = (struct meta){ .delta = 1 };
	for (size_t i = from; i < n; i++) {
		unsigned char o = (unsigned char)toks[i].s[0];

		if (o >= 127 || seen[o]) {
			*ret_err = "CLIENT_ERROR duplicate flag\r\n";
			return -EINVAL;
		}
		seen[o] = true;
		switch (o) {
		case 'T':
		case 'N':
			if (!meta_num_time32(&toks[i], &i32)) {
				*ret_err = "CLIENT_ERROR bad token in command line format\r\n";
				return -EINVAL;
			}
			if (o == 'T') {
				m->has_ttl = true;
				m->exptime = kv_exptime(i32);
			} else {
				m->vivify = true;
				m->viv_exptime = kv_exptime(i32);
			}
			break;
		case 'R':
			if (!meta_num_time32(&toks[i], &i32)) {
				*ret_err = "CLIENT_ERROR bad token in command line format\r\n";
				return -EINVAL;
			}
			m->unsupported = "R";
			break;
		case 'C':
			if (!meta_num_u64(&toks[i], UINT64_MAX, &m->cas)) {
				*ret_err = "CLIENT_ERROR bad token in command line format\r\n";
				return -EINVAL;
			}
			m->has_cas = true;
			break;
		case 'F': {
			uint64_t f;

			/* memcached's safe_strtoflags() on 64 bits: kept in 32 (F4294967297 is 1). */
			if (!meta_num_u64(&toks[i], UINT64_MAX, &f)) {
				*ret_err = "CLIENT_ERROR bad command line format\r\n";
				return -EINVAL;
			}
			m->client_flags = (uint32_t)f;
			break;
		}
		case 'M':
			if (toks[i].n != 2) {
				*ret_err = "CLIENT_ERROR incorrect length for M token\r\n";
				return -EINVAL;
			}
			m->mode = toks[i].s[1];
			break;
		case 'J':
			if (!meta_num_u64(&toks[i], UINT64_MAX, &m->initial)) {
				*ret_err = "CLIENT_ERROR invalid numeric initial value\r\n";
				return -EINVAL;
			}
			break;
		case 'D':
			if (!meta_num_u64(&toks[i], UINT64_MAX, &m->delta)) {
				*ret_err = "CLIENT_ERROR invalid numeric delta value\r\n";
				return -EINVAL;
			}
			break;
		case 'O':
			if (toks[i].n > META_OPAQUE_MAX) {
				*ret_err = "CLIENT_ERROR opaque token too long\r\n";
				return -EINVAL;
			}
			break;
		case 'P':
		case 'L':
		case 'k':
		case 's':
		case 't':
		case 'c':
		case 'f':
			break;
		case 'l':
			m->seen_l = true;
			break;
		case 'v':
			m->v = true;
			break;
		case 'u':
			m->u = true;
			break;
		case 'q':
			m->q = true;
			break;
		case 'b': /* base64 keys */
		case 'h': /* "hit before": kvcache keeps no fetched bit */
		case 'I': /* invalidate / stale items */
		case 'E': /* a cas given by the client */
			if (!m->unsupported)
				m->unsupported = toks[i].s[0] == 'b' ? "b" : toks[i].s[0] == 'h' ? "h" : toks[i].s[0] == 'I' ? "I" : "E";
			break;
		default:
			*ret_err = "CLIENT_ERROR invalid flag\r\n";
			return -EINVAL;
		}
	}
	return 0;
}

/* A flag memcached knows and kvcache does not do: a clear error, always sent. */
static void meta_unsupported(struct kv_buf *out, const char *flag)
{
	char line[96];
	int n = snprintf(line, sizeof(line), "CLIENT_ERROR flag %s not supported by kvcache\r\n", flag);

	kv_buf_append(out, line, (size_t)n);
}

static void put_flag_u64(struct kv_buf *out, char f, uint64_t v)
{
	char s[32];
	int n = snprintf(s, sizeof(s), " %c%" PRIu64, f, v);

	kv_buf_append(out, s, (size_t)n);
}

static void put_ttl(struct kv_buf *out, uint32_t exptime, uint32_t now)
{
	char s[32];
	int n = exptime == 0 ? snprintf(s, sizeof(s), " t-1")
			     : snprintf(s, sizeof(s), " t%" PRIu32, exptime > now ? exptime - now : 0);

	kv_buf_append(out, s, (size_t)n);
}

static void put_key(struct kv_buf *out, const struct tok *key)
{
	kv_buf_append(out, " k", 2);
	kv_buf_append(out, key->s, key->n);
}

/* The O and k flags, which every meta answer echoes, in the order given. */
static void put_opaque_key(struct kv_buf *out, const struct tok *toks, size_t n)
{
	for (size_t i = 2; i < n; i++) {
		if (toks[i].s[0] == 'O') {
			kv_buf_append(out, " ", 1);
			kv_buf_append(out, toks[i].s, toks[i].n);
		} else if (toks[i].s[0] == 'k') {
			put_key(out, &toks[1]);
		}
	}
}

/* Common checks of mg, md, ma: 0, or the line already answered. */
static int meta_start(const struct tok *toks, size_t n, size_t from, struct meta *m, bool mg, struct kv_buf *out)
{
	const char *err = "CLIENT_ERROR bad command line format\r\n";

	if (n < 2) {
		reply(out, "ERROR\r\n");
		return -EINVAL;
	}
	if (!key_ok(&toks[1])) {
		reply(out, "CLIENT_ERROR bad command line format\r\n");
		return -EINVAL;
	}
	if (n > META_TOKENS_MAX) {
		reply(out, mg ? "CLIENT_ERROR options flags are too long\r\n" : "CLIENT_ERROR options flags too long\r\n");
		return -EINVAL;
	}
	if (meta_parse(toks, from, n, m, &err) < 0) {
		reply(out, mg ? err : "CLIENT_ERROR invalid or duplicate flag\r\n");
		return -EINVAL;
	}
	if (m->unsupported) {
		meta_unsupported(out, m->unsupported);
		return -EINVAL;
	}
	return 0;
}

static void cmd_mg(struct kv_store *st, const struct tok *toks, size_t n, struct kv_buf *out)
{
	struct kv_fetch req = { 0 };
	struct kv_item_info info;
	struct meta m;
	size_t at = out->len, vlen;
	uint32_t now = kv_now();
	char head[32];
	int r;

	if (meta_start(toks, n, 2, &m, true, out) < 0)
		return;
	if (m.vivify) {
		meta_unsupported(out, "N");
		return;
	}
	req.touch = m.has_ttl;
	req.exptime = m.exptime;
	req.no_bump = m.u;
	/* The value (if asked for) lands first; the header line is moved in before it. */
	r = kv_store_fetch(st, toks[1].s, toks[1].n, &req, &info, m.v ? out : NULL);
	if (r < 0) {
		out->len = at;
		reply(out, "SERVER_ERROR out of memory writing get response\r\n");
		return;
	}
	if (r == 0) {
		if (m.q)
			return;
		reply(out, "EN");
		put_opaque_key(out, toks, n);
		reply(out, "\r\n");
		return;
	}
	vlen = out->len - at;
	{
		struct kv_buf line = { 0 };
		int hn = m.v ? snprintf(head, sizeof(head), "VA %" PRIu32, info.nbytes) : snprintf(head, sizeof(head), "HD");

		kv_buf_append(&line, head, (size_t)hn);
		for (size_t i = 2; i < n; i++) {
			switch (toks[i].s[0]) {
			case 's':
				put_flag_u64(&line, 's', info.nbytes);
				break;
			case 't':
				put_ttl(&line, info.exptime, now);
				break;
			case 'c':
				put_flag_u64(&line, 'c', info.cas);
				break;
			case 'f':
				put_flag_u64(&line, 'f', info.flags);
				break;
			case 'l':
				put_flag_u64(&line, 'l', now > info.atime ? now - info.atime : 0);
				break;
			case 'O':
				kv_buf_append(&line, " ", 1);
				kv_buf_append(&line, toks[i].s, toks[i].n);
				break;
			case 'k':
				put_key(&line, &toks[1]);
				break;
			}
		}
		kv_buf_append(&line, "\r\n", 2);
		if (!line.data || kv_buf_reserve(out, line.len) < 0) {
			kv_buf_free(&line);
			out->len = at;
			reply(out, "SERVER_ERROR out of memory writing get response\r\n");
			return;
		}
		memmove(out->data + at + line.len, out->data + at, vlen);
		memcpy(out->data + at, line.data, line.len);
		out->len += line.len;
		kv_buf_free(&line);
	}
}

/* ms <key> <datalen> <flags>*: like cmd_store, the data block's bytes used or -EAGAIN. */
static ptrdiff_t cmd_ms(struct kv_store *st, struct kv_proto *p, const struct tok *toks, size_t n, const char *data,
			size_t avail, struct kv_buf *out)
{
	const char *err = "CLIENT_ERROR bad command line format\r\n";
	enum kv_set_mode mode = KV_SET;
	uint64_t cas = 0;
	int64_t vlen;
	struct meta m;
	enum kv_result r;

	if (n < 2) {
		reply(out, "ERROR\r\n");
		return 0;
	}
	if (!key_ok(&toks[1]) || n == 2) {
		reply(out, "CLIENT_ERROR bad command line format\r\n");
		return 0;
	}
	if (n > META_TOKENS_MAX) {
		reply(out, "CLIENT_ERROR options flags too long\r\n");
		return 0;
	}
	if (!parse_i32(&toks[2], &vlen) || vlen < 0 || vlen > INT32_MAX - 2) {
		reply(out, "CLIENT_ERROR bad command line format\r\n");
		return 0;
	}
	/* From here on an error swallows the data block, as memcached does. */
	if (meta_parse(toks, 3, n, &m, &err) < 0) {
		reply(out, err);
		p->swallow = (uint64_t)vlen + 2;
		return 0;
	}
	switch (m.mode) {
	case 0:
	case 'S':
		mode = KV_SET;
		break;
	case 'E':
		mode = KV_ADD;
		break;
	case 'A':
		mode = KV_APPEND;
		break;
	case 'P':
		mode = KV_PREPEND;
		break;
	case 'R':
		mode = KV_REPLACE;
		break;
	default:
		reply(out, "CLIENT_ERROR invalid mode for ms M token\r\n");
		p->swallow = (uint64_t)vlen + 2;
		return 0;
	}
	if (m.unsupported || m.vivify) {
		meta_unsupported(out, m.unsupported ? m.unsupported : "N");
		p->swallow = (uint64_t)vlen + 2;
		return 0;
	}
	if (m.has_cas && (mode == KV_SET || mode == KV_REPLACE))
		mode = KV_CAS;
	if (!kv_item_fits(toks[1].n, m.client_flags, (uint64_t)vlen)) {
		reply(out, "SERVER_ERROR object too large for cache\r\n");
		kv_store_delete(st, toks[1].s, toks[1].n, 0);
		p->swallow = (uint64_t)vlen + 2;
		return 0;
	}
	if (avail < (size_t)vlen + 2)
		return -EAGAIN;
	if (data[vlen] != '\r' || data[vlen + 1] != '\n') {
		reply(out, "CLIENT_ERROR bad data chunk\r\n"); /* sent even with q, as memcached */
		return vlen + 2;
	}
	r = kv_store_set(st, mode, toks[1].s, toks[1].n, m.client_flags, m.has_ttl ? m.exptime : 0, data, (size_t)vlen,
			 m.cas, &cas);
	switch (r) {
	case KV_STORED:
		if (m.q)
			return vlen + 2;
		reply(out, "HD");
		break;
	case KV_EXISTS:
		reply(out, "EX");
		break;
	case KV_NOT_FOUND:
		reply(out, "NF");
		break;
	case KV_NOT_STORED:
		reply(out, "NS");
		break;
	default:
		reply(out, result_word(r));
		return vlen + 2;
	}
	for (size_t i = 3; i < n; i++) {
		if (toks[i].s[0] == 'O') {
			kv_buf_append(out, " ", 1);
			kv_buf_append(out, toks[i].s, toks[i].n);
		} else if (toks[i].s[0] == 'k') {
			put_key(out, &toks[1]);
		} else if (toks[i].s[0] == 'c') {
			put_flag_u64(out, 'c', r == KV_STORED ? cas : 0);
		}
	}
	reply(out, "\r\n");
	return vlen + 2;
}

static void cmd_md(struct kv_store *st, const struct tok *toks, size_t n, struct kv_buf *out)
{
	struct meta m;
	enum kv_result r;

	if (meta_start(toks, n, 2, &m, false, out) < 0)
		return;
	r = kv_store_delete(st, toks[1].s, toks[1].n, m.has_cas ? m.cas : 0);
	if (r == KV_DELETED && m.q)
		return;
	reply(out, r == KV_DELETED ? "HD" : r == KV_EXISTS ? "EX" : "NF");
	put_opaque_key(out, toks, n);
	reply(out, "\r\n");
}

static void cmd_ma(struct kv_store *st, const struct tok *toks, size_t n, struct kv_buf *out)
{
	struct kv_arith req = { .incr = true };
	struct kv_item_info info = { 0 };
	uint32_t now = kv_now();
	bool created = false;
	uint64_t v = 0;
	enum kv_result r;
	struct meta m;
	char num[24];
	int nl;

	if (meta_start(toks, n, 2, &m, false, out) < 0)
		return;
	switch (m.mode) {
	case 0:
	case 'I':
	case '+':
		break;
	case 'D':
	case '-':
		req.incr = false;
		break;
	default:
		reply(out, "CLIENT_ERROR invalid mode for ma M token\r\n");
		return;
	}
	req.delta = m.delta;
	req.cas = m.has_cas ? m.cas : 0;
	req.set_ttl = m.has_ttl;
	req.exptime = m.exptime;
	r = kv_store_arith(st, toks[1].s, toks[1].n, &req, &v, &info);
	if (r == KV_NON_NUMERIC) {
		reply(out, "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
		return;
	}
	if (r == KV_NO_MEMORY) {
		reply(out, "SERVER_ERROR out of memory\r\n");
		return;
	}
	if (r == KV_NOT_FOUND && m.vivify) {
		/* Created with the initial value (J), the N TTL; not incremented, as memcached. */
		uint64_t cas = 0;

		nl = snprintf(num, sizeof(num), "%" PRIu64, m.initial);
		r = kv_store_set(st, KV_ADD, toks[1].s, toks[1].n, 0, m.viv_exptime, num, (size_t)nl, 0, &cas);
		if (r == KV_NO_MEMORY) {
			reply(out, "SERVER_ERROR Out of memory allocating new item\r\n");
			return;
		}
		if (r == KV_STORED) {
			created = true;
			v = m.initial;
			info = (struct kv_item_info){ .cas = cas, .exptime = m.viv_exptime, .nbytes = (uint32_t)nl };
			r = KV_OK;
		}
	}
	if (r != KV_OK) {
		reply(out, r == KV_EXISTS ? "EX" : r == KV_NOT_STORED ? "NS" : "NF");
		put_opaque_key(out, toks, n);
		reply(out, "\r\n");
		return;
	}
	if (m.q && !created)
		return;
	nl = snprintf(num, sizeof(num), "%" PRIu64, v);
	if (m.v) {
		char head[32];
		int hn = snprintf(head, sizeof(head), "VA %d", nl);

		kv_buf_append(out, head, (size_t)hn);
	} else {
		reply(out, "HD");
	}
	for (size_t i = 2; i < n; i++) {
		switch (toks[i].s[0]) {
		case 'c':
			put_flag_u64(out, 'c', info.cas);
			break;
		case 't':
			put_ttl(out, info.exptime, now);
			break;
		case 'O':
			kv_buf_append(out, " ", 1);
			kv_buf_append(out, toks[i].s, toks[i].n);
			break;
		case 'k':
			put_key(out, &toks[1]);
			break;
		}
	}
	reply(out, "\r\n");
	if (m.v) {
		kv_buf_append(out, num, (size_t)nl);
		reply(out, "\r\n");
	}
}

static void cmd_me(struct kv_store *st, const struct tok *toks, size_t n, struct kv_buf *out)
{
	const struct kv_fetch req = { .no_bump = true };
	struct kv_item_info info;
	uint32_t now = kv_now();
	char line[KV_KEY_MAX + 160];
	int len;

	if (n < 2 || !key_ok(&toks[1])) {
		reply(out, "CLIENT_ERROR bad command line format\r\n");
		return;
	}
	if (n >= 3 && tok_is(&toks[2], "b")) {
		meta_unsupported(out, "b");
		return;
	}
	if (kv_store_fetch(st, toks[1].s, toks[1].n, &req, &info, NULL) <= 0) {
		reply(out, "EN\r\n");
		return;
	}
	/* memcached's fields; exp as it prints it (now - exptime); no fetched bit, no slab class here. */
	memcpy(line, "ME ", 3);
	memcpy(line + 3, toks[1].s, toks[1].n);
	len = 3 + (int)toks[1].n;
	len += snprintf(line + len, sizeof(line) - (size_t)len,
			" exp=%" PRId64 " la=%" PRIu32 " cas=%" PRIu64 " fetch=no cls=1 size=%zu\r\n",
			info.exptime == 0 ? (int64_t)-1 : (int64_t)now - (int64_t)info.exptime,
			now > info.atime ? now - info.atime : 0, info.cas, info.total);
	kv_buf_append(out, line, (size_t)len);
}

/* ---------------------------------------------------------------------- */
/* stats                                                                    */

void (*kv_stats_conns_hook)(struct kv_buf *out);

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

static void stat_time(struct kv_buf *out, const char *name, const struct timeval *tv)
{
	char v[48];

	snprintf(v, sizeof(v), "%ld.%06ld", (long)tv->tv_sec, (long)tv->tv_usec);
	stat_str(out, name, v);
}

static void stats_general(struct kv_store *st, struct kv_buf *out)
{
	struct kv_server_stats s;
	uint32_t now = kv_now();
	struct rusage ru;

	kv_server_stats(&s);
	stat_u64(out, "pid", (uint64_t)getpid());
	stat_u64(out, "uptime", now - st->root->started_at);
	stat_u64(out, "time", now);
	stat_str(out, "version", KV_VERSION_STRING);
	stat_u64(out, "pointer_size", sizeof(void *) * 8);
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		stat_time(out, "rusage_user", &ru.ru_utime);
		stat_time(out, "rusage_system", &ru.ru_stime);
	}
	stat_str(out, "kvcache_build", KV_BUILD_NAME);
	stat_u64(out, "store_format", st->format);
	stat_u64(out, "max_connections", KV_CONNS_MAX);
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
	stat_u64(out, "auth_cmds", 0);   /* no SASL in kvcache: true figures */
	stat_u64(out, "auth_errors", 0);
	stat_u64(out, "threads", s.threads);
	stat_u64(out, "limit_maxbytes", __atomic_load_n(&st->root->limit, __ATOMIC_RELAXED));
	stat_u64(out, "accepting_conns", 1);
	stat_u64(out, "bytes", KV_READ(st, bytes));
	stat_u64(out, "curr_items", KV_READ(st, curr_items));
	stat_u64(out, "total_items", KV_READ(st, total_items));
	stat_u64(out, "evictions", KV_READ(st, evictions));
	stat_u64(out, "reclaimed", KV_READ(st, reclaimed));
	stat_u64(out, "hash_power_level", (uint64_t)__builtin_ctz(st->root->nbuckets));
	stat_u64(out, "hash_bytes", (uint64_t)st->root->nbuckets * sizeof(struct kv_item *));
	stat_u64(out, "hash_is_expanding", 0); /* sized at the start for --memory, never grown */
	stat_u64(out, "hash_buckets", st->root->nbuckets);
	stat_u64(out, "items_migrated", KV_READ(st, migrated));
	stat_u64(out, "liveupdate_number", s.liveupdate_number);
	stat_u64(out, "last_blackout_us", s.last_blackout_us);
	stat_u64(out, "last_quiesce_us", s.last_quiesce_us);
	stat_u64(out, "failed_updates", s.failed_updates);
}

static void stats_settings(struct kv_store *st, struct kv_buf *out)
{
	struct kv_server_stats s;

	kv_server_stats(&s);
	stat_u64(out, "maxbytes", __atomic_load_n(&st->root->limit, __ATOMIC_RELAXED));
	stat_u64(out, "maxconns", KV_CONNS_MAX);
	stat_u64(out, "num_threads", s.threads);
	stat_str(out, "evictions", "on");
	stat_str(out, "cas_enabled", "yes");
	stat_u64(out, "item_size_max", KV_VALUE_MAX);
	stat_str(out, "binding_protocol", "ascii");
	stat_u64(out, "hashpower_init", (uint64_t)__builtin_ctz(st->root->nbuckets));
	stat_str(out, "flush_enabled", "yes");
	stat_u64(out, "reqs_per_event", 0);
	stat_u64(out, "kvcache_arena_bytes", luo_arena_size(st->arena));
}

/* kvcache has no slab classes: every item is in one class, 1, the whole arena's. */
static void stats_items(struct kv_store *st, struct kv_buf *out)
{
	uint64_t n = KV_READ(st, curr_items);

	if (n == 0)
		return; /* memcached lists the classes that hold items */
	stat_u64(out, "items:1:number", n);
	stat_u64(out, "items:1:evicted", KV_READ(st, evictions));
	stat_u64(out, "items:1:reclaimed", KV_READ(st, reclaimed));
}

static void stats_slabs(struct kv_store *st, struct kv_buf *out)
{
	uint64_t n = KV_READ(st, curr_items);

	if (n) {
		stat_u64(out, "1:used_chunks", n);
		stat_u64(out, "1:mem_requested", KV_READ(st, bytes));
		stat_u64(out, "1:get_hits", KV_READ(st, get_hits));
		stat_u64(out, "1:cmd_set", KV_READ(st, cmd_set));
		stat_u64(out, "1:delete_hits", KV_READ(st, delete_hits));
		stat_u64(out, "1:touch_hits", KV_READ(st, touch_hits));
	}
	stat_u64(out, "active_slabs", n ? 1 : 0);
	stat_u64(out, "total_malloced", luo_arena_size(st->arena));
}

/* memcached reads the word after "stats" and ignores what follows it ("stats reset extra": RESET). */
static void cmd_stats(struct kv_store *st, const struct tok *toks, size_t n, struct kv_buf *out)
{
	if (n == 1) {
		stats_general(st, out);
	} else if (n >= 2 && tok_is(&toks[1], "reset")) {
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
	} else if (n >= 2 && tok_is(&toks[1], "conns")) {
		if (kv_stats_conns_hook)
			kv_stats_conns_hook(out);
	} else if (n >= 2 && tok_is(&toks[1], "settings")) {
		stats_settings(st, out);
	} else if (n >= 2 && tok_is(&toks[1], "items")) {
		stats_items(st, out);
	} else if (n >= 2 && tok_is(&toks[1], "slabs")) {
		stats_slabs(st, out);
	} else if (n >= 2 && tok_is(&toks[1], "cachedump")) {
		uint64_t id, limit;

		if (n < 4)
			reply(out, "CLIENT_ERROR bad command line\r\n");
		else if (!parse_u64(&toks[2], UINT32_MAX, &id) || !parse_u64(&toks[3], UINT32_MAX, &limit))
			reply(out, "CLIENT_ERROR bad command line format\r\n");
		else if (id >= CACHEDUMP_CLASSES)
			reply(out, "CLIENT_ERROR Illegal slab id\r\n");
		else {
			/* Class 1 holds every item (stats items); the others are empty. */
			if (id == 1)
				kv_store_dump(st, limit, CACHEDUMP_BYTES_MAX, out);
			reply(out, "END\r\n");
		}
		return;
	} else if (n >= 2 && tok_is(&toks[1], "detail")) {
		if (n == 3 && (tok_is(&toks[2], "on") || tok_is(&toks[2], "off"))) {
			__atomic_store_n(&detail_on, tok_is(&toks[2], "on"), __ATOMIC_RELAXED);
			reply(out, "OK\r\n");
		} else if (n == 3 && tok_is(&toks[2], "dump")) {
			detail_dump(out);
		} else {
			reply(out, "CLIENT_ERROR usage: stats detail on|off|dump\r\n");
		}
		return;
	} else {
		reply(out, "ERROR\r\n");
		return;
	}
	reply(out, "END\r\n");
}

/* ---------------------------------------------------------------------- */
/* Dispatch                                                                 */

static bool is_get_word(const char *s, size_t len)
{
	return (len == 3 && (memcmp(s, "get", 3) == 0 || memcmp(s, "gat", 3) == 0)) ||
	       (len == 4 && (memcmp(s, "gets", 4) == 0 || memcmp(s, "gats", 4) == 0));
}

/*
 * One command line (without "\r\n") at @line; its data block, if any,
 * starts at @rest (@avail bytes there). Return the bytes used after the
 * line, or -EAGAIN (the data block is incomplete, nothing written).
 */
static ptrdiff_t dispatch(struct kv_store *st, struct kv_proto *p, const char *line, size_t len, const char *rest,
			  size_t avail, struct kv_buf *out, bool *noreply)
{
	struct tok toks[TOKENS_MAX + 1];
	size_t n, w = 0;

	while (len > 0 && *line == ' ') {
		line++;
		len--;
	}
	while (w < len && line[w] != ' ')
		w++;
	/* The get family first: many keys. */
	if (is_get_word(line, w)) {
		cmd_get(st, line, len, out);
		return 0;
	}
	n = tokenize(line, len, toks, TOKENS_MAX);
	if (n == 0 || toks[0].n < 2) {
		reply(out, "ERROR\r\n");
		return 0;
	}
	if (toks[0].n == 2 && toks[0].s[0] == 'm') {
		switch (toks[0].s[1]) {
		case 'g':
			cmd_mg(st, toks, n, out);
			return 0;
		case 's':
			return cmd_ms(st, p, toks, n, rest, avail, out);
		case 'd':
			cmd_md(st, toks, n, out);
			return 0;
		case 'a':
			cmd_ma(st, toks, n, out);
			return 0;
		case 'e':
			cmd_me(st, toks, n, out);
			return 0;
		case 'n':
			reply(out, "MN\r\n");
			return 0;
		}
		reply(out, "ERROR\r\n");
		return 0;
	}
	if (n > TOKENS_MAX) {
		reply(out, "ERROR\r\n");
		return 0;
	}
	if (tok_is(&toks[0], "set") || tok_is(&toks[0], "add") || tok_is(&toks[0], "replace") ||
	    tok_is(&toks[0], "append") || tok_is(&toks[0], "prepend") || tok_is(&toks[0], "cas"))
		return cmd_store(st, p, toks, n, rest, avail, out, noreply);
	if (tok_is(&toks[0], "delete"))
		cmd_delete(st, toks, n, out, noreply);
	else if (tok_is(&toks[0], "incr") || tok_is(&toks[0], "decr"))
		cmd_arith(st, toks, n, out, noreply);
	else if (tok_is(&toks[0], "touch"))
		cmd_touch(st, toks, n, out, noreply);
	else if (tok_is(&toks[0], "stats"))
		cmd_stats(st, toks, n, out);
	else if (tok_is(&toks[0], "flush_all"))
		cmd_flush(st, toks, n, out, noreply);
	else if (tok_is(&toks[0], "version")) /* memcached ignores what follows */
		reply(out, "VERSION " KV_VERSION_STRING "\r\n");
	else if (tok_is(&toks[0], "verbosity"))
		cmd_verbosity(toks, n, out, noreply);
	else if (tok_is(&toks[0], "cache_memlimit"))
		cmd_memlimit(st, toks, n, out, noreply);
	else if (tok_is(&toks[0], "shutdown"))
		reply(out, "ERROR: shutdown not enabled\r\n"); /* memcached's words without -A; kvcache has no -A */
	else if (tok_is(&toks[0], "quit"))
		p->closing = true;
	else
		reply(out, "ERROR\r\n");
	return 0;
}

/* noreply: whatever the command wrote is dropped, failed or not (see the DOC block). */
static ptrdiff_t execute_line(struct kv_store *st, struct kv_proto *p, const char *line, size_t len, const char *rest,
			      size_t avail, struct kv_buf *out)
{
	size_t start = out->len;
	bool noreply = false;
	const char *nul = memchr(line, '\0', len);
	ptrdiff_t used;

	/* memcached reads the line as a C string: a NUL ends it ("get a\0b" is "get a"). */
	if (nul)
		len = (size_t)(nul - line);
	used = dispatch(st, p, line, len, rest, avail, out, &noreply);

	if (noreply || used == -EAGAIN)
		out->len = start;
	return used;
}

/* Whether an unfinished line may grow to KV_GET_LINE_MAX: one of the get family. */
static bool is_get_line(const char *s, size_t len)
{
	size_t i = 0, w;

	while (i < len && i < 100 && s[i] == ' ')
		i++;
	if (i >= 100)
		return false;
	for (w = i; w < len && s[w] != ' '; w++)
		;
	return w < len && is_get_word(s + i, w - i);
}

/*
 * A binary-protocol request: one response, status 0x0083 ("not
 * supported"), the request's opcode and opaque echoed, then the connection
 * closes. Return false while the header has not all arrived.
 */
static bool binary_refuse(struct kv_proto *p, const char *in, size_t avail, struct kv_buf *out)
{
	static const char msg[] = "kvcache speaks the text protocol only";
	unsigned char h[BIN_HEADER] = { 0 };
	size_t body = sizeof(msg) - 1;

	if (avail < BIN_HEADER)
		return false;
	h[0] = 0x81;
	h[1] = (unsigned char)in[1];
	h[6] = 0x00;
	h[7] = 0x83;
	h[8] = (unsigned char)(body >> 24);
	h[9] = (unsigned char)(body >> 16);
	h[10] = (unsigned char)(body >> 8);
	h[11] = (unsigned char)body;
	memcpy(h + 12, in + 12, 4);
	kv_buf_append(out, h, sizeof(h));
	kv_buf_append(out, msg, body);
	p->closing = true;
	return true;
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
		if ((unsigned char)line[0] == 0x80) {
			if (!binary_refuse(p, line, avail, out))
				break; /* wait for the whole header */
			return (ptrdiff_t)len;
		}
		nl = memchr(line, '\n', avail < KV_GET_LINE_MAX + 1 ? avail : KV_GET_LINE_MAX + 1);
		llen = nl ? (size_t)(nl - line) : avail;
		if (nl ? (llen > LINE_COMPLETE_MAX && !is_get_line(line, llen))
		       : (llen > KV_LINE_MAX && !(llen <= KV_GET_LINE_MAX && is_get_line(line, llen)))) {
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
