/* SPDX-License-Identifier: MIT */
/*
 * DOC: recorded manifests, the release history's input
 *
 * A release record is what `luoctl manifest --json` printed for a released
 * build (dist/releases/EXAMPLE/NNNN-NAME.json). luoctl reads it back wherever it
 * takes a binary (check, matrix, path, history), so negotiation runs on the
 * manifest of a build that no longer exists, with luo_negotiate() itself:
 * nothing of the rule is reimplemented.
 *
 * What is read: "entries" (kind, name, read, write, optional) and "types"
 * (component, version, role, size, align, digest). Other keys (the binary,
 * the build-id, the layouts, a type's item count and root) are skipped. A
 * recorded type has its digest, not its description: negotiation compares
 * digests, and a mismatch is reported as "descriptions differ" without the
 * member (the binary's side would name it). Layouts recorded by hand
 * (LUO_LAYOUT) are not read back: a record of a build never described is
 * unproven, and its versions compare by size and alignment only.
 *
 * The file is hostile input like a binary: at most RECORD_BYTES_MAX bytes,
 * strict JSON (RFC 8259: UTF-8 in shortest form, a surrogate pair one code
 * point, no lone surrogate) nested at most RECORD_DEPTH_MAX deep, at most
 * RECORD_KEYS_MAX keys in one object and no key twice (in every object, the
 * skipped ones too), every string bounded, numbers non-negative integers that
 * fit where they go, and every entry and type then checked by the same
 * luo_manifest_add_entry() / luo_manifest_add_type() as a note. Errors:
 * -EBADMSG with "PATH: byte N: what".
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "luo-internal.h"
#include "luoctl.h"

/* A recorded manifest: a few kilobytes for the examples. */
#define RECORD_BYTES_MAX (4u << 20)
/* Objects and arrays inside one another. */
#define RECORD_DEPTH_MAX 16
/* A string of a record (names are 47 bytes; longer ones are refused when checked). */
#define RECORD_STRING_MAX 256
/* Keys of one object (a record's objects have at most 9). */
#define RECORD_KEYS_MAX 64
/* The anchor a recorded type is given: the record has none. */
#define RECORD_ANCHOR "release_record"

struct jp {
	const char *buf;
	size_t len, pos;
	const char *origin;
	char *reason;
	size_t reason_len;
};

__attribute__((format(printf, 2, 3))) static int jp_fail(struct jp *p, const char *fmt, ...)
{
	char what[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(p->reason, p->reason_len, "%s: byte %zu: %s", p->origin, p->pos, what);
	return -EBADMSG;
}

static void jp_ws(struct jp *p)
{
	while (p->pos < p->len && strchr(" \t\r\n", p->buf[p->pos]) && p->buf[p->pos])
		p->pos++;
}

/* The next non-blank byte, consumed if it is @c: true. */
static bool jp_eat(struct jp *p, char c)
{
	jp_ws(p);
	if (p->pos < p->len && p->buf[p->pos] == c) {
		p->pos++;
		return true;
	}
	return false;
}

static int jp_hex4(struct jp *p, uint32_t *ret)
{
	uint32_t v = 0;

	if (p->len - p->pos < 4)
		return jp_fail(p, "a \\u escape cut short");
	for (int i = 0; i < 4; i++) {
		char c = p->buf[p->pos++];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t)(c - 'A' + 10);
		else
			return jp_fail(p, "a \\u escape with a non-hex digit");
	}
	*ret = v;
	return 0;
}

/*
 * The length of the UTF-8 sequence of @n bytes at @s (RFC 3629: shortest
 * form, no surrogate, at most U+10FFFF), or 0 if it is not one.
 */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t k;
	uint32_t u;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		k = 2, u = s[0] & 0x1fu;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		k = 3, u = s[0] & 0x0fu;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		k = 4, u = s[0] & 0x07u;
	else
		return 0;
	if (n < k)
		return 0;
	for (size_t i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		u = u << 6 | (s[i] & 0x3fu);
	}
	if ((k == 3 && u < 0x800) || (k == 4 && (u < 0x10000 || u > 0x10ffff)) || (u >= 0xd800 && u <= 0xdfff))
		return 0;
	return k;
}

/* The code point @u (not a surrogate, at most U+10FFFF) as UTF-8 into @enc: its length. */
static size_t utf8_put(uint32_t u, char enc[static 4])
{
	if (u < 0x80) {
		enc[0] = (char)u;
		return 1;
	}
	if (u < 0x800) {
		enc[0] = (char)(0xc0 | (u >> 6));
		enc[1] = (char)(0x80 | (u & 0x3f));
		return 2;
	}
	if (u < 0x10000) {
		enc[0] = (char)(0xe0 | (u >> 12));
		enc[1] = (char)(0x80 | ((u >> 6) & 0x3f));
		enc[2] = (char)(0x80 | (u & 0x3f));
		return 3;
	}
	enc[0] = (char)(0xf0 | (u >> 18));
	enc[1] = (char)(0x80 | ((u >> 12) & 0x3f));
	enc[2] = (char)(0x80 | ((u >> 6) & 0x3f));
	enc[3] = (char)(0x80 | (u & 0x3f));
	return 4;
}

/* After "\u": the code point of the escape, and of the low surrogate's after a high one. */
static int jp_escape_u(struct jp *p, uint32_t *ret)
{
	uint32_t u, lo;
	int r;

	r = jp_hex4(p, &u);
	if (r < 0)
		return r;
	if (u >= 0xd800 && u <= 0xdbff) {
		/* A high surrogate: a low one must follow, as a \u escape. */
		if (p->len - p->pos < 2 || p->buf[p->pos] != '\\' || p->buf[p->pos + 1] != 'u')
			return jp_fail(p, "\\u%04" PRIx32 " not followed by a low surrogate", u);
		p->pos += 2;
		r = jp_hex4(p, &lo);
		if (r < 0)
			return r;
		if (lo < 0xdc00 || lo > 0xdfff)
			return jp_fail(p, "\\u%04" PRIx32 " not followed by a low surrogate", u);
		u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
	} else if (u == 0 || (u >= 0xdc00 && u <= 0xdfff)) {
		return jp_fail(p, "\\u%04" PRIx32 " in a string", u);
	}
	*ret = u;
	return 0;
}

/*
 * A string into @out (@cap bytes with its NUL; NULL: skipped). Escapes are
 * decoded, a surrogate pair into its code point; \u0000, a lone surrogate,
 * raw control bytes and bytes that are not UTF-8 are refused.
 */
static int jp_string(struct jp *p, char *out, size_t cap)
{
	size_t n = 0;
	int r;

	if (!jp_eat(p, '"'))
		return jp_fail(p, "a string expected");
	for (;;) {
		char enc[4];
		size_t k = 1;
		unsigned char c;

		if (p->pos >= p->len)
			return jp_fail(p, "a string not closed");
		c = (unsigned char)p->buf[p->pos];
		if (c == '"') {
			p->pos++;
			break;
		}
		if (c < 0x20)
			return jp_fail(p, "a control byte in a string");
		if (c >= 0x80) {
			k = utf8_len((const unsigned char *)p->buf + p->pos, p->len - p->pos);
			if (k == 0)
				return jp_fail(p, "a byte that is not UTF-8 in a string");
			memcpy(enc, p->buf + p->pos, k);
			p->pos += k;
		} else if (c == '\\') {
			static const char esc[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
			const char *e;
			uint32_t u = 0;

			p->pos++;
			if (p->pos >= p->len)
				return jp_fail(p, "an escape cut short");
			c = (unsigned char)p->buf[p->pos++];
			e = c == 'u' ? NULL : memchr(esc, c, sizeof(esc) - 1);
			if (e && (e - esc) % 2 == 0) {
				enc[0] = e[1];
			} else if (c == 'u') {
				r = jp_escape_u(p, &u);
				if (r < 0)
					return r;
				k = utf8_put(u, enc);
			} else {
				return jp_fail(p, "an unknown escape");
			}
		} else {
			enc[0] = (char)c;
			p->pos++;
		}
		if (n + k >= RECORD_STRING_MAX || (out && n + k >= cap))
			return jp_fail(p, "a string longer than %zu bytes", out ? cap - 1 : (size_t)RECORD_STRING_MAX - 1);
		if (out)
			memcpy(out + n, enc, k);
		n += k;
	}
	if (out)
		out[n] = '\0';
	return 0;
}

/* A non-negative integer no larger than @max. */
static int jp_uint(struct jp *p, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;
	size_t start;

	jp_ws(p);
	start = p->pos;
	while (p->pos < p->len && p->buf[p->pos] >= '0' && p->buf[p->pos] <= '9') {
		uint64_t d = (uint64_t)(p->buf[p->pos] - '0');

		if (v > (max - d) / 10)
			return jp_fail(p, "a number larger than %" PRIu64, max);
		v = v * 10 + d;
		p->pos++;
	}
	if (p->pos == start || (p->pos - start > 1 && p->buf[start] == '0'))
		return jp_fail(p, "a non-negative integer expected");
	if (p->pos < p->len && strchr(".eE", p->buf[p->pos]) && p->buf[p->pos])
		return jp_fail(p, "an integer expected");
	*ret = v;
	return 0;
}

static int jp_bool(struct jp *p, bool *ret)
{
	jp_ws(p);
	if (p->len - p->pos >= 4 && memcmp(p->buf + p->pos, "true", 4) == 0) {
		p->pos += 4;
		*ret = true;
		return 0;
	}
	if (p->len - p->pos >= 5 && memcmp(p->buf + p->pos, "false", 5) == 0) {
		p->pos += 5;
		*ret = false;
		return 0;
	}
	return jp_fail(p, "true or false expected");
}

/* The keys of one object so far: where each starts, and a hash of it. */
struct jp_keys {
	size_t n;
	struct {
		size_t at;
		uint64_t hash;
	} k[RECORD_KEYS_MAX];
};

static uint64_t key_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64 */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

/* @key, read at byte @at, once in @keys: else -EBADMSG. */
static int jp_key_add(struct jp *p, struct jp_keys *keys, const char *key, size_t at)
{
	uint64_t h = key_hash(key);

	for (size_t i = 0; i < keys->n; i++) {
		char other[RECORD_STRING_MAX];
		size_t pos = p->pos;
		int r;

		if (keys->k[i].hash != h)
			continue;
		/* The same hash: the earlier key decoded again (it parsed once). */
		p->pos = keys->k[i].at;
		r = jp_string(p, other, sizeof(other));
		p->pos = pos;
		if (r < 0)
			return r;
		if (strcmp(other, key) == 0)
			return jp_fail(p, "key \"%s\" twice in one object", key);
	}
	if (keys->n >= RECORD_KEYS_MAX)
		return jp_fail(p, "more than %d keys in one object", RECORD_KEYS_MAX);
	keys->k[keys->n].at = at;
	keys->k[keys->n].hash = h;
	keys->n++;
	return 0;
}

/*
 * The keys of an object, one at a time: 1 and the key in @key (the value
 * follows), 0 at its end, or an error. @first: before the first key, the
 * '{' is consumed. Every key is remembered in @keys to refuse one twice;
 * those of @names (the caller's) also in @seen, and *@ret_index is the
 * index of @key in @names, or -1.
 */
static int jp_key(struct jp *p, bool *first, char key[static RECORD_STRING_MAX], const char *const *names, size_t n_names,
		  struct jp_keys *keys, uint32_t *seen, int *ret_index)
{
	size_t at;
	int r;

	if (*first) {
		if (!jp_eat(p, '{'))
			return jp_fail(p, "an object expected");
		*first = false;
		if (jp_eat(p, '}'))
			return 0;
	} else if (!jp_eat(p, ',')) {
		return jp_eat(p, '}') ? 0 : jp_fail(p, "'}' or ',' expected");
	}
	jp_ws(p);
	at = p->pos;
	r = jp_string(p, key, RECORD_STRING_MAX);
	if (r < 0)
		return r;
	if (!jp_eat(p, ':'))
		return jp_fail(p, "':' expected");
	r = jp_key_add(p, keys, key, at);
	if (r < 0)
		return r;
	*ret_index = -1;
	for (size_t i = 0; i < n_names; i++) {
		if (strcmp(key, names[i]) != 0)
			continue;
		*seen |= 1u << i;
		*ret_index = (int)i;
	}
	return 1;
}

/* Any value, checked and skipped. */
static int jp_skip(struct jp *p, unsigned depth)
{
	char c;
	int r;

	if (depth > RECORD_DEPTH_MAX)
		return jp_fail(p, "nested deeper than %d", RECORD_DEPTH_MAX);
	jp_ws(p);
	if (p->pos >= p->len)
		return jp_fail(p, "a value expected");
	c = p->buf[p->pos];
	if (c == '"')
		return jp_string(p, NULL, 0);
	if (c == '{') {
		char key[RECORD_STRING_MAX];
		struct jp_keys keys = { 0 };
		uint32_t seen = 0;
		bool first = true;
		int idx = -1;

		while ((r = jp_key(p, &first, key, NULL, 0, &keys, &seen, &idx)) > 0) {
			r = jp_skip(p, depth + 1);
			if (r < 0)
				return r;
		}
		return r;
	}
	if (c == '[') {
		p->pos++;
		if (jp_eat(p, ']'))
			return 0;
		do {
			r = jp_skip(p, depth + 1);
			if (r < 0)
				return r;
		} while (jp_eat(p, ','));
		return jp_eat(p, ']') ? 0 : jp_fail(p, "']' or ',' expected");
	}
	if (c == 't' || c == 'f') {
		bool b;

		return jp_bool(p, &b);
	}
	if (c == 'n') {
		if (p->len - p->pos >= 4 && memcmp(p->buf + p->pos, "null", 4) == 0) {
			p->pos += 4;
			return 0;
		}
		return jp_fail(p, "a value expected");
	}
	/* A number: -?int(.digits)?([eE][+-]?digits)? */
	if (c == '-')
		p->pos++;
	{
		size_t s = p->pos;

		while (p->pos < p->len && p->buf[p->pos] >= '0' && p->buf[p->pos] <= '9')
			p->pos++;
		if (p->pos == s)
			return jp_fail(p, "a value expected");
		if (p->pos < p->len && p->buf[p->pos] == '.') {
			s = ++p->pos;
			while (p->pos < p->len && p->buf[p->pos] >= '0' && p->buf[p->pos] <= '9')
				p->pos++;
			if (p->pos == s)
				return jp_fail(p, "digits expected after '.'");
		}
		if (p->pos < p->len && (p->buf[p->pos] == 'e' || p->buf[p->pos] == 'E')) {
			p->pos++;
			if (p->pos < p->len && (p->buf[p->pos] == '+' || p->buf[p->pos] == '-'))
				p->pos++;
			s = p->pos;
			while (p->pos < p->len && p->buf[p->pos] >= '0' && p->buf[p->pos] <= '9')
				p->pos++;
			if (p->pos == s)
				return jp_fail(p, "digits expected in an exponent");
		}
	}
	return 0;
}

static int jp_range(struct jp *p, struct luo_version_range *ret)
{
	uint64_t lo, hi;
	int r;

	if (!jp_eat(p, '['))
		return jp_fail(p, "a range [min,max] expected");
	r = jp_uint(p, UINT32_MAX, &lo);
	if (r < 0)
		return r;
	if (!jp_eat(p, ','))
		return jp_fail(p, "a range [min,max] expected");
	r = jp_uint(p, UINT32_MAX, &hi);
	if (r < 0)
		return r;
	if (!jp_eat(p, ']'))
		return jp_fail(p, "a range of two numbers expected");
	ret->min = (uint32_t)lo;
	ret->max = (uint32_t)hi;
	return 0;
}

/*
 * The object at @p whose keys @names (at most 32) must each come once,
 * other keys skipped: each value read by @field(@p, its index, @ctx). Then
 * p->pos is put back at the object's start, so that the reasons of the
 * checks that follow point at it, and *@ret_end is where it ends.
 * -EBADMSG "@missing" if a key of @names is absent.
 */
static int jp_fields(struct jp *p, const char *const *names, size_t n_names,
		     int (*field)(struct jp *p, int index, void *ctx), void *ctx, const char *missing, size_t *ret_end)
{
	char key[RECORD_STRING_MAX];
	struct jp_keys keys = { 0 };
	uint32_t seen = 0;
	bool first = true;
	size_t at = p->pos;
	int idx = -1, r;

	while ((r = jp_key(p, &first, key, names, n_names, &keys, &seen, &idx)) > 0) {
		r = idx < 0 ? jp_skip(p, 2) : field(p, idx, ctx);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	*ret_end = p->pos;
	p->pos = at;
	if (seen != (1u << n_names) - 1)
		return jp_fail(p, "%s", missing);
	return 0;
}

/* An entry as it is read: the kind and the flag as they are written. */
struct jp_entry_fields {
	struct luo_manifest_entry e;
	char kind[16];
	bool optional;
};

static int jp_entry_field(struct jp *p, int index, void *ctx)
{
	struct jp_entry_fields *f = ctx;

	switch (index) {
	case 0:
		return jp_string(p, f->kind, sizeof(f->kind));
	case 1:
		return jp_string(p, f->e.name, sizeof(f->e.name));
	case 2:
		return jp_range(p, &f->e.read);
	case 3:
		return jp_range(p, &f->e.write);
	default:
		return jp_bool(p, &f->optional);
	}
}

static int jp_entry(struct jp *p, struct luo_manifest *m)
{
	static const char *const names[] = { "kind", "name", "read", "write", "optional" };
	struct jp_entry_fields f = { 0 };
	size_t end;
	int r;

	r = jp_fields(p, names, ARRAY_SIZE(names), jp_entry_field, &f,
		      "an entry without kind, name, read, write or optional", &end);
	if (r < 0)
		return r;
	for (uint32_t k = LUO_ABI_KIND_COMPONENT; k <= LUO_ABI_KIND_FORMAT; k++)
		if (strcmp(f.kind, luo_kind_name(k)) == 0)
			f.e.kind = k;
	if (!f.e.kind)
		return jp_fail(p, "an entry of unknown kind");
	f.e.flags = f.optional ? LUO_ABI_FLAG_OPTIONAL : 0;
	p->pos = end;
	return luo_manifest_add_entry(m, &f.e, p->origin, p->reason, p->reason_len);
}

/* A type as it is read: numbers checked against UINT32_MAX, the role and the digest as written. */
struct jp_type_fields {
	struct luo_abi_note_type t;
	uint64_t version, size, align;
	char role[32], digest[24];
};

static int jp_type_field(struct jp *p, int index, void *ctx)
{
	struct jp_type_fields *f = ctx;

	switch (index) {
	case 0:
		return jp_string(p, f->t.component, sizeof(f->t.component));
	case 1:
		return jp_uint(p, UINT32_MAX, &f->version);
	case 2:
		return jp_string(p, f->role, sizeof(f->role));
	case 3:
		return jp_uint(p, UINT32_MAX, &f->size);
	case 4:
		return jp_uint(p, UINT32_MAX, &f->align);
	default:
		return jp_string(p, f->digest, sizeof(f->digest));
	}
}

static int jp_type(struct jp *p, struct luo_manifest *m)
{
	static const char *const names[] = { "component", "version", "role", "size", "align", "digest" };
	struct jp_type_fields f = { 0 };
	char *digest_end = NULL;
	size_t end;
	int r;

	r = jp_fields(p, names, ARRAY_SIZE(names), jp_type_field, &f,
		      "a type without component, version, role, size, align or digest", &end);
	if (r < 0)
		return r;
	for (uint32_t k = LUO_ABI_TYPE_PAYLOAD; k <= LUO_ABI_TYPE_HANDLER; k++)
		if (strcmp(f.role, luo_type_role_name(k)) == 0)
			f.t.role = k;
	if (!f.t.role)
		return jp_fail(p, "a type of unknown role");
	if (strlen(f.digest) != 16 || strspn(f.digest, "0123456789abcdef") != 16)
		return jp_fail(p, "a digest that is not 16 lower-case hex digits");
	errno = 0;
	f.t.digest = strtoull(f.digest, &digest_end, 16);
	if (errno || !digest_end || *digest_end)
		return jp_fail(p, "a bad digest");
	f.t.version = (uint32_t)f.version;
	f.t.size = (uint32_t)f.size;
	f.t.align = (uint32_t)f.align;
	memcpy(f.t.anchor, RECORD_ANCHOR, sizeof(RECORD_ANCHOR));
	p->pos = end;
	return luo_manifest_add_type(m, &f.t, p->origin, p->reason, p->reason_len);
}

static int jp_array(struct jp *p, struct luo_manifest *m, int (*item)(struct jp *p, struct luo_manifest *m))
{
	int r;

	if (!jp_eat(p, '['))
		return jp_fail(p, "an array expected");
	if (jp_eat(p, ']'))
		return 0;
	do {
		r = item(p, m);
		if (r < 0)
			return r;
	} while (jp_eat(p, ','));
	return jp_eat(p, ']') ? 0 : jp_fail(p, "']' or ',' expected");
}

static int manifest_parse_json(const char *buf, size_t len, const char *origin, struct luo_manifest **ret,
			       char *reason, size_t reason_len)
{
	static const char *const names[] = { "entries", "types" };
	_cleanup_(luo_manifest_freep) struct luo_manifest *m = NULL;
	struct jp p = { buf, len, 0, origin, reason, reason_len };
	char key[RECORD_STRING_MAX];
	struct jp_keys keys = { 0 };
	uint32_t seen = 0;
	bool first = true;
	int idx = -1, r;

	r = luo_manifest_new(&m);
	if (r < 0)
		return r;
	while ((r = jp_key(&p, &first, key, names, ARRAY_SIZE(names), &keys, &seen, &idx)) > 0) {
		if (idx == 0)
			r = jp_array(&p, m, jp_entry);
		else if (idx == 1)
			r = jp_array(&p, m, jp_type);
		else
			r = jp_skip(&p, 1);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	jp_ws(&p);
	if (p.pos != p.len)
		return jp_fail(&p, "bytes after the manifest");
	if (!(seen & 1))
		return jp_fail(&p, "no \"entries\": not a manifest");
	m->n_objects = 1;
	*ret = TAKE_PTR(m);
	return 0;
}

int luoctl_manifest_read_path(const char *path, struct luo_manifest **ret, char *reason, size_t reason_len)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t len = 0;
	char head[64 + 1];
	ssize_t n;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return luo_manifest_read_file(path, ret, reason, reason_len); /* its reason for it */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return luo_manifest_read_file(path, ret, reason, reason_len);
	n = pread(fd, head, sizeof(head) - 1, 0);
	if (n <= 0)
		return luo_manifest_read_file(path, ret, reason, reason_len);
	head[n] = '\0';
	{
		size_t i = strspn(head, " \t\r\n");

		if (i >= (size_t)n || head[i] != '{')
			return luo_manifest_read_file(path, ret, reason, reason_len);
	}
	if ((uint64_t)st.st_size > RECORD_BYTES_MAX) {
		snprintf(reason, reason_len, "%s: a recorded manifest larger than %u bytes", path, RECORD_BYTES_MAX);
		return -EFBIG;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	while (len < (size_t)st.st_size) {
		n = pread(fd, buf + len, (size_t)st.st_size - len, (off_t)len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(reason, reason_len, "%s: %s", path, strerror(errno));
			return -errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	if (memchr(buf, '\0', len)) {
		snprintf(reason, reason_len, "%s: a NUL byte in a recorded manifest", path);
		return -EBADMSG;
	}
	return manifest_parse_json(buf, len, path, ret, reason, reason_len);
}
