/* SPDX-License-Identifier: MIT */
/*
 * DOC: test-manifest-bad, hostile manifests
 *
 * The manifest reader (src/lib/manifest.c) takes every .note.luo as
 * hostile input. This test holds the promise of manifest.h: nothing
 * crashes, leaks, hangs or reads out of bounds, malformed notes give
 * -EBADMSG with a reason, files that are not ELF of this machine give
 * -ENOEXEC, and what is accepted satisfies every rule a note must follow.
 *
 *   1. sanity: this binary declares two components and two layouts below;
 *      luo_manifest_read_file() on it and luo_manifest_read_self() find
 *      them, libluo's "memfd" and "fd" handlers and the "luo.handover"
 *      format, exactly (ranges, flags, fields, fingerprints);
 *   2. the note parser, luo_manifest_add_notes(), on note runs built by
 *      hand, strict and not: one case per rule (sizes, owners, types,
 *      names, kinds, flags, every range combination, duplicates, limits,
 *      layouts, alignment), every truncation, and a seeded random mutation
 *      loop whose results are checked against the rules;
 *   3. whole files, luo_manifest_read_file() on copies of this binary in a
 *      temporary directory: truncations, corrupted notes, corrupted section
 *      headers and ELF header, files that are not ELF at all.
 *
 * One "ok - <group>: <counts>" line per group; "not ok - ..." for each
 * failed check (the run goes on, the exit status is 1). A crash or a hang
 * prints the case being run; for files the input is left in the temporary
 * directory named at the start. LUO_TEST_FUZZ_SCALE=N multiplies the
 * random iteration counts (default 1) for longer local runs;
 * LUO_TEST_VERBOSE=1 prints one line per case with its result and reason.
 *
 * Seeded (xorshift64*, fixed seed): the same build runs the same inputs.
 * Timings (this machine): ~0.2 s plain, ~4.5 s ASan+UBSan, ~7 s valgrind.
 */

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "luo/abi.h"
#include "luo/luo.h"
#include "luo-internal.h"
#include "manifest.h"
#include "test-util.h"

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif

/* ------------------------------------------------------------------------ */
/* What this binary declares                                                 */

struct fuzz_state_v2 {
	uint64_t counter;
	uint32_t flags;
	char tag[12];
};

struct fuzz_state_v3 {
	uint64_t counter;
	uint32_t flags;
	uint32_t generation;
	char tag[16];
	uint16_t port;
};

static int fuzz_save(uint32_t version, struct luo_payload *out)
{
	(void)version;
	(void)out;
	return 0;
}

static int fuzz_load(uint32_t version, const void *data, size_t len)
{
	(void)version;
	(void)data;
	(void)len;
	return 0;
}

#define STATE_NAME "test-manifest-bad.state"
#define CACHE_NAME "test-manifest-bad.cache"

LUO_COMPONENT(fuzz_state, STATE_NAME, 1, 3, 2, 3, 0, fuzz_save, fuzz_load);
LUO_COMPONENT(fuzz_cache, CACHE_NAME, 2, 4, 4, 4, LUO_COMPONENT_OPTIONAL, fuzz_save, fuzz_load);

LUO_LAYOUT(fuzz_state_v2_layout, STATE_NAME, 2, struct fuzz_state_v2,
	   LUO_FIELD(struct fuzz_state_v2, counter, uint64_t),
	   LUO_FIELD(struct fuzz_state_v2, flags, uint32_t),
	   LUO_FIELD(struct fuzz_state_v2, tag, char[12]));

/* Declared out of offset order on purpose: the fingerprint sorts. */
LUO_LAYOUT(fuzz_state_v3_layout, STATE_NAME, 3, struct fuzz_state_v3,
	   LUO_FIELD(struct fuzz_state_v3, tag, char[16]),
	   LUO_FIELD(struct fuzz_state_v3, counter, uint64_t),
	   LUO_FIELD(struct fuzz_state_v3, port, uint16_t),
	   LUO_FIELD(struct fuzz_state_v3, flags, uint32_t),
	   LUO_FIELD(struct fuzz_state_v3, generation, uint32_t));

/* ------------------------------------------------------------------------ */
/* Reporting                                                                 */

static int n_failed;
static int n_fail_prints;
static char cur_case[256];
static unsigned fuzz_scale = 1;
static bool verbose; /* LUO_TEST_VERBOSE=1: one line per case */

__attribute__((format(printf, 3, 4))) static void fail_at(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	n_failed++;
	if (++n_fail_prints > 60)
		return;
	fprintf(stderr, "not ok - %s:%d: [%s] ", file, line, cur_case);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

#define EXPECT(cond, ...)                                      \
	do {                                                   \
		if (!(cond))                                   \
			fail_at(__FILE__, __LINE__, __VA_ARGS__); \
	} while (0)

__attribute__((format(printf, 1, 2))) static void set_case(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cur_case, sizeof(cur_case), fmt, ap);
	va_end(ap);
}

static void write_str(const char *s)
{
	ssize_t n = write(STDERR_FILENO, s, strlen(s));

	(void)n;
}

static void on_fatal(int sig)
{
	write_str(sig == SIGALRM ? "\nnot ok - hang (60 s without progress) in case: "
				 : "\nnot ok - fatal signal in case: ");
	write_str(cur_case);
	write_str("\n");
	if (sig == SIGALRM)
		_exit(1);
	signal(sig, SIG_DFL);
	raise(sig);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Deterministic xorshift64*. */
static uint64_t rng_state = 0x6c756f2d66757a7aull; /* "luo-fuzz" */

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static size_t rnd_below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

/* A reason buffer: filled with a non-NUL byte, so that "terminated" means something. */
#define REASON_FILL 0x7f

static void reason_reset(char *reason, size_t len)
{
	memset(reason, REASON_FILL, len);
}

static bool reason_ok(const char *reason, size_t len)
{
	return len > 0 && memchr(reason, '\0', len) != NULL && reason[0] != '\0' &&
	       (unsigned char)reason[0] != REASON_FILL;
}

/* ------------------------------------------------------------------------ */
/* The rules, restated independently of manifest.c                           */

static bool fixed_str_ok(const char *s, size_t size, unsigned char lo)
{
	size_t len = 0;

	while (len < size && s[len])
		len++;
	if (len == 0 || len == size)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < lo || (unsigned char)s[i] > 0x7e)
			return false;
	for (size_t i = len; i < size; i++)
		if (s[i])
			return false;
	return true;
}

static bool ranges_valid(uint32_t rmin, uint32_t rmax, uint32_t wmin, uint32_t wmax)
{
	return rmin >= 1 && rmin <= wmin && wmin <= wmax && wmax <= rmax;
}

static uint64_t fnv_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static uint64_t fnv_le32(uint64_t h, uint32_t v)
{
	unsigned char le[4] = { (unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
				(unsigned char)(v >> 24) };

	return fnv_bytes(h, le, 4);
}

/* FNV-1a 64 of the struct size, then the fields by offset (then name). */
static uint64_t my_fingerprint(uint32_t struct_size, const struct luo_abi_note_field *fields, uint32_t n)
{
	struct luo_abi_note_field s[LUO_ABI_LAYOUT_FIELDS_MAX];
	uint64_t h = 0xcbf29ce484222325ull;

	memcpy(s, fields, n * sizeof(s[0]));
	for (uint32_t i = 1; i < n; i++) /* insertion sort: n <= 32 */
		for (uint32_t j = i; j > 0; j--) {
			int c = s[j - 1].offset != s[j].offset ? (s[j - 1].offset > s[j].offset ? 1 : -1)
							       : strcmp(s[j - 1].name, s[j].name);
			struct luo_abi_note_field t;

			if (c <= 0)
				break;
			t = s[j - 1];
			s[j - 1] = s[j];
			s[j] = t;
		}
	h = fnv_le32(h, struct_size);
	for (uint32_t i = 0; i < n; i++) {
		h = fnv_bytes(h, s[i].name, strlen(s[i].name) + 1);
		h = fnv_bytes(h, s[i].type, strlen(s[i].type) + 1);
		h = fnv_le32(h, s[i].offset);
		h = fnv_le32(h, s[i].size);
	}
	return h;
}

/* Everything an accepted manifest must satisfy. Returns the failures seen. */
static int check_invariants(const struct luo_manifest *m)
{
	int before = n_failed;

	EXPECT(m->n_entries <= LUO_MANIFEST_ENTRIES_MAX, "%zu entries", m->n_entries);
	EXPECT(m->n_layouts <= LUO_MANIFEST_LAYOUTS_MAX, "%zu layouts", m->n_layouts);
	EXPECT(m->build_id_len <= LUO_ABI_BUILD_ID_MAX, "build-id of %zu bytes", m->build_id_len);
	EXPECT(m->n_entries == 0 || m->entries, "entries NULL");
	EXPECT(m->n_layouts == 0 || m->layouts, "layouts NULL");
	for (size_t i = 0; i < m->n_entries && n_failed == before; i++) {
		const struct luo_manifest_entry *e = &m->entries[i];

		EXPECT(fixed_str_ok(e->name, sizeof(e->name), 0x21), "entry %zu: bad name", i);
		EXPECT(e->kind >= LUO_ABI_KIND_COMPONENT && e->kind <= LUO_ABI_KIND_FORMAT, "entry %zu: kind %u", i,
		       e->kind);
		EXPECT(e->kind == LUO_ABI_KIND_COMPONENT ? (e->flags & ~LUO_ABI_FLAG_OPTIONAL) == 0 : e->flags == 0,
		       "entry %zu: kind %u flags 0x%x", i, e->kind, e->flags);
		EXPECT(e->kind != LUO_ABI_KIND_HANDLER || strlen(e->name) <= LUO_HANDLER_NAME_MAX,
		       "entry %zu: handler name too long", i);
		EXPECT(ranges_valid(e->read.min, e->read.max, e->write.min, e->write.max),
		       "entry %zu: ranges %u..%u %u..%u", i, e->read.min, e->read.max, e->write.min, e->write.max);
		for (size_t j = 0; j < i; j++)
			EXPECT(m->entries[j].kind != e->kind || strcmp(m->entries[j].name, e->name) != 0,
			       "entries %zu and %zu are one (kind, name)", j, i);
	}
	for (size_t i = 0; i < m->n_layouts && n_failed == before; i++) {
		const struct luo_manifest_layout *l = &m->layouts[i];

		EXPECT(fixed_str_ok(l->component, sizeof(l->component), 0x21), "layout %zu: bad component", i);
		EXPECT(l->version >= 1, "layout %zu: version 0", i);
		EXPECT(l->struct_size >= 1 && l->struct_size <= LUO_COMPONENT_DATA_MAX, "layout %zu: size %u", i,
		       l->struct_size);
		EXPECT(l->n_fields >= 1 && l->n_fields <= LUO_ABI_LAYOUT_FIELDS_MAX, "layout %zu: %u fields", i,
		       l->n_fields);
		if (n_failed != before)
			break;
		for (uint32_t f = 0; f < l->n_fields; f++) {
			const struct luo_abi_note_field *x = &l->fields[f];

			EXPECT(fixed_str_ok(x->name, sizeof(x->name), 0x21), "layout %zu field %u: bad name", i, f);
			EXPECT(fixed_str_ok(x->type, sizeof(x->type), 0x20), "layout %zu field %u: bad type", i, f);
			EXPECT(x->size >= 1 && (uint64_t)x->offset + x->size <= l->struct_size,
			       "layout %zu field %u: %u+%u outside %u", i, f, x->offset, x->size, l->struct_size);
			for (uint32_t g = 0; g < f; g++) {
				const struct luo_abi_note_field *y = &l->fields[g];

				EXPECT(strcmp(x->name, y->name) != 0, "layout %zu: field name twice", i);
				EXPECT((uint64_t)x->offset + x->size <= y->offset ||
					       (uint64_t)y->offset + y->size <= x->offset,
				       "layout %zu: fields %u and %u overlap", i, g, f);
			}
		}
		if (n_failed != before)
			break;
		EXPECT(l->fingerprint == luo_layout_fingerprint(l), "layout %zu: stored fingerprint is stale", i);
		EXPECT(l->fingerprint == my_fingerprint(l->struct_size, l->fields, l->n_fields),
		       "layout %zu: fingerprint differs from FNV-1a as documented", i);
		for (size_t j = 0; j < i; j++)
			EXPECT(m->layouts[j].version != l->version || strcmp(m->layouts[j].component, l->component) != 0,
			       "layouts %zu and %zu are one (component, version)", j, i);
	}
	return n_failed - before;
}

static bool entry_eq(const struct luo_manifest_entry *a, const struct luo_manifest_entry *b)
{
	return strcmp(a->name, b->name) == 0 && a->kind == b->kind && a->flags == b->flags &&
	       a->read.min == b->read.min && a->read.max == b->read.max && a->write.min == b->write.min &&
	       a->write.max == b->write.max;
}

static bool layout_eq(const struct luo_manifest_layout *a, const struct luo_manifest_layout *b)
{
	return strcmp(a->component, b->component) == 0 && a->version == b->version &&
	       a->struct_size == b->struct_size && a->n_fields == b->n_fields && a->fingerprint == b->fingerprint &&
	       memcmp(a->fields, b->fields, a->n_fields * sizeof(a->fields[0])) == 0;
}

/* Every entry and layout of @a is in @b, identical. */
static bool manifest_subset(const struct luo_manifest *a, const struct luo_manifest *b)
{
	for (size_t i = 0; i < a->n_entries; i++) {
		const struct luo_manifest_entry *e = luo_manifest_find(b, a->entries[i].kind, a->entries[i].name);

		if (!e || !entry_eq(e, &a->entries[i]))
			return false;
	}
	for (size_t i = 0; i < a->n_layouts; i++) {
		const struct luo_manifest_layout *l =
			luo_manifest_find_layout(b, a->layouts[i].component, a->layouts[i].version);

		if (!l || !layout_eq(l, &a->layouts[i]))
			return false;
	}
	return true;
}

static bool manifest_same(const struct luo_manifest *a, const struct luo_manifest *b)
{
	return a->n_entries == b->n_entries && a->n_layouts == b->n_layouts && manifest_subset(a, b);
}

/* ------------------------------------------------------------------------ */
/* Building note runs                                                        */

struct run {
	uint8_t *p;
	size_t len, cap;
};

static void run_bytes(struct run *r, const void *d, size_t n)
{
	if (r->len + n > r->cap) {
		size_t cap = r->cap ? r->cap : 256;

		while (cap < r->len + n)
			cap *= 2;
		r->p = realloc(r->p, cap);
		CHECK(r->p);
		r->cap = cap;
	}
	if (d)
		memcpy(r->p + r->len, d, n);
	else
		memset(r->p + r->len, 0, n);
	r->len += n;
}

static void run_free(struct run *r)
{
	free(r->p);
	*r = (struct run){ 0 };
}

static size_t pad_to(size_t v, size_t align)
{
	return (v + align - 1) / align * align;
}

/*
 * One note: header, @name_bytes of owner padded to @align, @desc_bytes of
 * description padded to @align. The owner is padded on its own, as
 * manifest.c's walk expects (see the alignment cases below).
 */
static void run_note(struct run *r, size_t align, uint32_t namesz, const void *name, size_t name_bytes, uint32_t descsz,
		     const void *desc, size_t desc_bytes, uint32_t type)
{
	uint32_t h[3] = { namesz, descsz, type };

	run_bytes(r, h, sizeof(h));
	run_bytes(r, name, name_bytes);
	/* The description starts at the next @align boundary after the owner (glibc's layout). */
	run_bytes(r, NULL, pad_to(sizeof(h) + name_bytes, align) - sizeof(h) - name_bytes);
	run_bytes(r, desc, desc_bytes);
	run_bytes(r, NULL, pad_to(desc_bytes, align) - desc_bytes);
}

static void run_luo(struct run *r, size_t align, uint32_t type, const void *desc, size_t n)
{
	run_note(r, align, sizeof(LUO_ABI_NOTE_OWNER), LUO_ABI_NOTE_OWNER, sizeof(LUO_ABI_NOTE_OWNER), (uint32_t)n,
		 desc, n, type);
}

/* strnlen() that the compiler does not second-guess about the source size. */
static size_t bounded_len(const char *s, size_t max)
{
	size_t n = 0;

	while (n < max && s[n])
		n++;
	return n;
}

static struct luo_abi_note_component comp(uint32_t kind, uint32_t flags, uint32_t rmin, uint32_t rmax, uint32_t wmin,
					  uint32_t wmax, const char *name)
{
	struct luo_abi_note_component c;

	memset(&c, 0, sizeof(c));
	c.kind = kind;
	c.flags = flags;
	c.read_min = rmin;
	c.read_max = rmax;
	c.write_min = wmin;
	c.write_max = wmax;
	memcpy(c.name, name, bounded_len(name, sizeof(c.name)));
	return c;
}

static void run_comp(struct run *r, size_t align, const struct luo_abi_note_component *c)
{
	run_luo(r, align, LUO_ABI_NOTE_COMPONENT, c, sizeof(*c));
}

static void run_layout(struct run *r, size_t align, const struct luo_abi_note_layout *l)
{
	run_luo(r, align, LUO_ABI_NOTE_LAYOUT, l, sizeof(*l));
}

static void layout_init(struct luo_abi_note_layout *l, const char *component, uint32_t version, uint32_t size)
{
	memset(l, 0, sizeof(*l));
	memcpy(l->component, component, bounded_len(component, sizeof(l->component)));
	l->version = version;
	l->struct_size = size;
}

static void layout_field(struct luo_abi_note_layout *l, unsigned slot, uint32_t off, uint32_t size, const char *name,
			 const char *type)
{
	struct luo_abi_note_field *f = &l->fields[slot];

	memset(f, 0, sizeof(*f));
	f->offset = off;
	f->size = size;
	memcpy(f->name, name, bounded_len(name, sizeof(f->name)));
	memcpy(f->type, type, bounded_len(type, sizeof(f->type)));
}

/* A good layout: struct of 24 bytes, 3 fields. */
static void layout_good(struct luo_abi_note_layout *l, const char *component, uint32_t version)
{
	layout_init(l, component, version, 24);
	layout_field(l, 0, 0, 8, "id", "uint64_t");
	layout_field(l, 1, 8, 4, "flags", "uint32_t");
	layout_field(l, 2, 12, 12, "tag", "char[12]");
}

/* ------------------------------------------------------------------------ */
/* Group 2: the note parser, case by case                                    */

static unsigned n_cases;

/*
 * Parse @len bytes of @buf into a new manifest: @want 0 with @want_entries
 * and @want_layouts (-1: any), or an error @want with a reason. Accepted
 * manifests are checked against the rules.
 */
static void expect_notes(const char *what, const void *buf, size_t len, size_t align, bool strict, int want,
			 long want_entries, long want_layouts)
{
	struct luo_manifest *m = NULL;
	char reason[LUO_REASON_MAX];
	int r;

	set_case("notes: %s (align %zu, %s)", what, align, strict ? "strict" : "loose");
	n_cases++;
	CHECK_OK(luo_manifest_new(&m));
	reason_reset(reason, sizeof(reason));
	r = luo_manifest_add_notes(m, buf, len, align, strict, "test", reason, sizeof(reason));
	if (verbose)
		printf("#     %s: %d %s%s%.*s\n", cur_case, r, r ? strerror(-r) : "ok", r ? ": " : "",
		       r ? (int)sizeof(reason) : 0, reason);
	EXPECT(r == want, "returned %d (%s), expected %d; reason: %.*s", r, r ? strerror(-r) : "ok", want,
	       r ? (int)sizeof(reason) : 0, reason);
	if (r < 0)
		EXPECT(reason_ok(reason, sizeof(reason)), "error %d without a terminated, non-empty reason", r);
	if (r == 0) {
		check_invariants(m);
		if (want == 0 && want_entries >= 0)
			EXPECT((long)m->n_entries == want_entries, "%zu entries, expected %ld", m->n_entries,
			       want_entries);
		if (want == 0 && want_layouts >= 0)
			EXPECT((long)m->n_layouts == want_layouts, "%zu layouts, expected %ld", m->n_layouts,
			       want_layouts);
	}
	luo_manifest_free(m);
}

/* Refused in both modes: malformed content of a LUO note. */
static void bad_both(const char *what, const struct run *r, size_t align)
{
	expect_notes(what, r->p, r->len, align, true, -EBADMSG, -1, -1);
	expect_notes(what, r->p, r->len, align, false, -EBADMSG, -1, -1);
}

/* Accepted in both modes. */
static void good_both(const char *what, const struct run *r, size_t align, long n_entries, long n_layouts)
{
	expect_notes(what, r->p, r->len, align, true, 0, n_entries, n_layouts);
	expect_notes(what, r->p, r->len, align, false, 0, n_entries, n_layouts);
}

/* A walk problem (bounds, another owner): strict refuses, loose stops or skips. */
static void walk_bad(const char *what, const struct run *r, size_t align, long loose_entries, long loose_layouts)
{
	expect_notes(what, r->p, r->len, align, true, -EBADMSG, -1, -1);
	expect_notes(what, r->p, r->len, align, false, 0, loose_entries, loose_layouts);
}

/* One component note whose description is @c, in both alignments. */
static void comp_case(const char *what, const struct luo_abi_note_component *c, bool valid)
{
	for (size_t align = 4; align <= 8; align += 4) {
		struct run r = { 0 };

		run_comp(&r, align, c);
		if (valid)
			good_both(what, &r, align, 1, 0);
		else
			bad_both(what, &r, align);
		run_free(&r);
	}
}

static void layout_case(const char *what, const struct luo_abi_note_layout *l, bool valid)
{
	for (size_t align = 4; align <= 8; align += 4) {
		struct run r = { 0 };

		run_layout(&r, align, l);
		if (valid)
			good_both(what, &r, align, 0, 1);
		else
			bad_both(what, &r, align);
		run_free(&r);
	}
}

static void raw_single(void)
{
	struct luo_abi_note_component c = comp(LUO_ABI_KIND_COMPONENT, 0, 1, 3, 2, 3, "alpha");

	/* One valid note: content as written. */
	for (size_t align = 4; align <= 8; align += 4) {
		struct luo_manifest *m = NULL;
		const struct luo_manifest_entry *e;
		char reason[LUO_REASON_MAX];
		struct run r = { 0 };

		run_comp(&r, align, &c);
		good_both("one component note", &r, align, 1, 0);
		CHECK_OK(luo_manifest_new(&m));
		CHECK_OK(luo_manifest_add_notes(m, r.p, r.len, align, true, "test", reason, sizeof(reason)));
		e = luo_manifest_find(m, LUO_ABI_KIND_COMPONENT, "alpha");
		EXPECT(e && e->flags == 0 && e->read.min == 1 && e->read.max == 3 && e->write.min == 2 &&
			       e->write.max == 3,
		       "the entry read differs from the note");
		luo_manifest_free(m);

		/* Every truncation: strict refuses all but the empty run, loose stops. */
		for (size_t len = 0; len < r.len; len++) {
			char what[128];

			snprintf(what, sizeof(what), "one note cut to %zu of %zu bytes", len, r.len);
			expect_notes(what, r.p, len, align, true, len == 0 ? 0 : -EBADMSG, 0, 0);
			expect_notes(what, r.p, len, align, false, 0, 0, 0);
		}
		run_free(&r);
	}

	/* An empty run and a NULL buffer of 0 bytes. */
	expect_notes("empty run", NULL, 0, 4, true, 0, 0, 0);
	/* Alignments other than 4 and 8. */
	{
		static const size_t aligns[] = { 0, 1, 2, 3, 5, 16, 4096, SIZE_MAX };
		struct run r = { 0 };

		run_comp(&r, 4, &c);
		for (size_t i = 0; i < ARRAY_SIZE(aligns); i++) {
			char what[128];

			snprintf(what, sizeof(what), "alignment %zu", aligns[i]);
			expect_notes(what, r.p, r.len, aligns[i], true, -EBADMSG, -1, -1);
			expect_notes(what, r.p, r.len, aligns[i], false, -EBADMSG, -1, -1);
		}
		run_free(&r);
	}
}

static void raw_sizes(void)
{
	struct luo_abi_note_component c = comp(LUO_ABI_KIND_COMPONENT, 0, 1, 1, 1, 1, "alpha");
	struct luo_abi_note_component c2 = comp(LUO_ABI_KIND_HANDLER, 0, 1, 1, 1, 1, "beta");
	struct run good = { 0 };

	/* The bad note comes second: loose keeps the first entry. */
	run_comp(&good, 4, &c);
	run_comp(&good, 4, &c2);

	for (int which = 0; which < 2; which++) {
		size_t total = good.len; /* the second note's header sits at 88 */
		const size_t at = 88 + (size_t)which * 4, left = total - 88 - 12;
		const uint32_t values[] = { 0xffffffffu, 0xfffffffeu, 0xfffffffdu, 0xfffffffcu, 0xfffffff8u,
					    0x80000000u, 0x7fffffffu, (uint32_t)total, (uint32_t)left + 1,
					    (uint32_t)left + 4, (uint32_t)left + 8, (uint32_t)(total - 12) };

		for (size_t i = 0; i < ARRAY_SIZE(values); i++) {
			struct run r = { 0 };
			char what[96];

			run_bytes(&r, good.p, good.len);
			memcpy(r.p + at, &values[i], 4);
			snprintf(what, sizeof(what), "%s 0x%x", which ? "descsz" : "namesz", values[i]);
			/* All of these run past the end: a walk error. */
			walk_bad(what, &r, 4, 1, 0);
			run_free(&r);
		}
	}
	/* namesz covering exactly the rest: another owner, fits; loose skips it. */
	{
		struct run r = { 0 };
		uint32_t v = (uint32_t)(good.len - 88 - 12);

		run_bytes(&r, good.p, good.len);
		memcpy(r.p + 88, &v, 4);
		v = 0;
		memcpy(r.p + 92, &v, 4);
		walk_bad("namesz = the bytes left, descsz 0", &r, 4, 1, 0);
		run_free(&r);
	}
	/* A LUO note whose descsz swallows the rest: fits, but wrong size. */
	{
		struct run r = { 0 };
		uint32_t v;

		run_bytes(&r, good.p, good.len);
		run_bytes(&r, NULL, 8);
		v = (uint32_t)(r.len - 88 - 16);
		memcpy(r.p + 92, &v, 4);
		bad_both("LUO note, descsz = the bytes left", &r, 4);
		run_free(&r);
	}
	run_free(&good);

	/* Owner "LUO" but the wrong description size, bytes present. */
	{
		static const size_t sizes[] = { 0, 4, 68, 71, 73, 76, 144, sizeof(struct luo_abi_note_layout) };
		uint8_t desc[sizeof(struct luo_abi_note_layout) + 8];

		memset(desc, 0, sizeof(desc));
		memcpy(desc, &c, sizeof(c));
		for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
			struct run r = { 0 };
			char what[128];

			run_luo(&r, 4, LUO_ABI_NOTE_COMPONENT, desc, sizes[i]);
			snprintf(what, sizeof(what), "component note of %zu bytes", sizes[i]);
			bad_both(what, &r, 4);
			run_free(&r);
		}
		for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
			struct run r = { 0 };
			char what[128];
			size_t n = sizes[i] == sizeof(struct luo_abi_note_layout) ? sizeof(c) : sizes[i];

			run_luo(&r, 4, LUO_ABI_NOTE_LAYOUT, desc, n);
			snprintf(what, sizeof(what), "layout note of %zu bytes", n);
			bad_both(what, &r, 4);
			run_free(&r);
		}
	}
	/* Unknown LUO note types. */
	{
		static const uint32_t types[] = { 0, 3, 4, 0x100, 0x80000001u, 0xffffffffu };

		for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
			struct run r = { 0 };
			char what[128];

			run_luo(&r, 4, types[i], &c, sizeof(c));
			snprintf(what, sizeof(what), "LUO note of type %u", types[i]);
			bad_both(what, &r, 4);
			run_free(&r);
		}
	}
	/* Owners that are not "LUO": skipped by loose, refused by strict. */
	{
		static const struct {
			const char bytes[8];
			uint32_t namesz;
		} owners[] = {
			{ "LUO", 3 }, { "LUO\0\0", 5 }, { "luo", 4 }, { "LUOX", 4 }, { "", 0 }, { "L", 2 },
			{ "LUO\0", 8 }, { "GNU", 4 },
		};

		for (size_t i = 0; i < ARRAY_SIZE(owners); i++) {
			struct run r = { 0 };
			char what[128];

			run_comp(&r, 4, &c);
			run_note(&r, 4, owners[i].namesz, owners[i].bytes, owners[i].namesz, sizeof(c), &c, sizeof(c),
				 LUO_ABI_NOTE_COMPONENT);
			snprintf(what, sizeof(what), "owner of %u bytes '%.*s'", owners[i].namesz,
				 (int)strnlen(owners[i].bytes, 4), owners[i].bytes);
			walk_bad(what, &r, 4, 1, 0);
			run_free(&r);
		}
	}
	/* Trailing bytes shorter than a header after a good note. */
	for (size_t extra = 1; extra < 12; extra++) {
		struct run r = { 0 };
		char what[128];

		run_comp(&r, 4, &c);
		run_bytes(&r, NULL, extra);
		snprintf(what, sizeof(what), "%zu trailing zero bytes", extra);
		walk_bad(what, &r, 4, 1, 0);
		run_free(&r);
	}
	/* Empty notes of no owner between good ones: loose skips them. */
	{
		struct run r = { 0 };

		run_comp(&r, 4, &c);
		run_bytes(&r, NULL, 12);
		run_comp(&r, 4, &c2);
		walk_bad("an empty note between two", &r, 4, 2, 0);
		run_free(&r);
	}
}

static void raw_names(void)
{
	struct luo_abi_note_component c;
	char name47[48], name31[32], name32[33];

	memset(name47, 'n', 47);
	name47[47] = '\0';
	memset(name31, 'h', 31);
	name31[31] = '\0';
	memset(name32, 'h', 32);
	name32[32] = '\0';

	c = comp(LUO_ABI_KIND_COMPONENT, 0, 1, 1, 1, 1, name47);
	comp_case("name of 47 bytes", &c, true);
	c = comp(LUO_ABI_KIND_COMPONENT, 0, 1, 1, 1, 1, "a");
	comp_case("name of 1 byte", &c, true);
	c = comp(LUO_ABI_KIND_COMPONENT, 0, 1, 1, 1, 1, "");
	comp_case("empty name", &c, false);
	c = comp(LUO_ABI_KIND_COMPONENT, 0, 1, 1, 1, 1, "");
	memset(c.name, 'x', sizeof(c.name));
	comp_case("name not terminated", &c, false);
	c = comp(LUO_ABI_KIND_COMPONENT, 0, 1, 1, 1, 1, "abc");
	c.name[10] = 'z';
	comp_case("name not zero-padded", &c, false);
	c = comp(LUO_ABI_KIND_COMPONENT, 0, 1, 1, 1, 1, "abc");
	c.name[47] = 1;
	comp_case("last name byte not zero", &c, false);
	{
		static const unsigned char bad[] = { 0x01, 0x09, 0x0a, 0x20, 0x7f, 0x80, 0xc3, 0xff };

		for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
			char what[128];

			c = comp(LUO_ABI_KIND_COMPONENT, 0, 1, 1, 1, 1, "ab_d");
			c.name[2] = (char)bad[i];
			snprintf(what, sizeof(what), "name with byte 0x%02x", bad[i]);
			comp_case(what, &c, false);
		}
	}
	c = comp(LUO_ABI_KIND_HANDLER, 0, 1, 1, 1, 1, name31);
	comp_case("handler name of 31 bytes", &c, true);
	c = comp(LUO_ABI_KIND_HANDLER, 0, 1, 1, 1, 1, name32);
	comp_case("handler name of 32 bytes", &c, false);
	c = comp(LUO_ABI_KIND_FORMAT, 0, 1, 1, 1, 1, name47);
	comp_case("format name of 47 bytes", &c, true);
}

static void raw_kinds_flags(void)
{
	struct luo_abi_note_component c;
	static const uint32_t kinds[] = { 0, 4, 5, 0x100, 0xffffffffu };

	for (uint32_t k = LUO_ABI_KIND_COMPONENT; k <= LUO_ABI_KIND_FORMAT; k++) {
		char what[128];

		c = comp(k, 0, 1, 2, 1, 2, "kind");
		snprintf(what, sizeof(what), "kind %u", k);
		comp_case(what, &c, true);
	}
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		char what[128];

		c = comp(kinds[i], 0, 1, 2, 1, 2, "kind");
		snprintf(what, sizeof(what), "kind %u", kinds[i]);
		comp_case(what, &c, false);
	}
	c = comp(LUO_ABI_KIND_COMPONENT, LUO_ABI_FLAG_OPTIONAL, 1, 1, 1, 1, "opt");
	comp_case("optional component", &c, true);
	for (uint32_t bit = 1; bit < 32; bit++) {
		char what[128];

		c = comp(LUO_ABI_KIND_COMPONENT, 1u << bit, 1, 1, 1, 1, "flags");
		snprintf(what, sizeof(what), "component flags 0x%x", 1u << bit);
		comp_case(what, &c, false);
		c.flags |= LUO_ABI_FLAG_OPTIONAL;
		snprintf(what, sizeof(what), "component flags 0x%x", c.flags);
		comp_case(what, &c, false);
	}
	c = comp(LUO_ABI_KIND_HANDLER, LUO_ABI_FLAG_OPTIONAL, 1, 1, 1, 1, "h");
	comp_case("optional handler", &c, false);
	c = comp(LUO_ABI_KIND_HANDLER, 0x80000000u, 1, 1, 1, 1, "h");
	comp_case("handler flags 0x80000000", &c, false);
	c = comp(LUO_ABI_KIND_FORMAT, LUO_ABI_FLAG_OPTIONAL, 1, 1, 1, 1, "f");
	comp_case("optional format", &c, false);
}

static void raw_ranges(void)
{
	static const uint32_t v[] = { 0, 1, 2, 3, 0xfffffffeu, 0xffffffffu };
	unsigned n_valid = 0, n_invalid = 0;

	for (size_t a = 0; a < ARRAY_SIZE(v); a++)
		for (size_t b = 0; b < ARRAY_SIZE(v); b++)
			for (size_t c = 0; c < ARRAY_SIZE(v); c++)
				for (size_t d = 0; d < ARRAY_SIZE(v); d++) {
					struct luo_abi_note_component n =
						comp(LUO_ABI_KIND_COMPONENT, 0, v[a], v[b], v[c], v[d], "ranges");
					bool valid = ranges_valid(v[a], v[b], v[c], v[d]);
					struct run r = { 0 };
					char what[96];

					run_comp(&r, 4, &n);
					snprintf(what, sizeof(what), "read %u..%u write %u..%u", v[a], v[b], v[c], v[d]);
					expect_notes(what, r.p, r.len, 4, true, valid ? 0 : -EBADMSG, 1, 0);
					run_free(&r);
					if (valid)
						n_valid++;
					else
						n_invalid++;
				}
	/* The same for a handler, one of each failure. */
	{
		static const uint32_t bad[][4] = {
			{ 0, 1, 1, 1 }, /* read_min 0 */
			{ 2, 1, 1, 1 }, /* read_min > read_max */
			{ 2, 3, 1, 3 }, /* write_min < read_min */
			{ 1, 2, 1, 3 }, /* write_max > read_max */
			{ 1, 3, 3, 2 }, /* write_min > write_max */
			{ 0, 0, 0, 0 }, /* all zero */
		};

		for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
			struct luo_abi_note_component n =
				comp(LUO_ABI_KIND_HANDLER, 0, bad[i][0], bad[i][1], bad[i][2], bad[i][3], "h");
			char what[96];

			snprintf(what, sizeof(what), "handler read %u..%u write %u..%u", bad[i][0], bad[i][1],
				 bad[i][2], bad[i][3]);
			comp_case(what, &n, false);
			n.kind = LUO_ABI_KIND_FORMAT;
			comp_case(what, &n, false);
		}
	}
	printf("#   ranges: %u combinations valid, %u invalid\n", n_valid, n_invalid);
}

static void raw_duplicates(void)
{
	struct luo_abi_note_component a = comp(LUO_ABI_KIND_COMPONENT, 0, 1, 3, 2, 3, "dup");
	struct luo_abi_note_component b;
	struct run r = { 0 };

	run_comp(&r, 4, &a);
	run_comp(&r, 4, &a);
	good_both("one entry twice, identical", &r, 4, 1, 0);
	run_free(&r);

	for (int which = 0; which < 6; which++) {
		char what[128];

		b = a;
		switch (which) {
		case 0: b.flags = LUO_ABI_FLAG_OPTIONAL; break;
		case 1: b.read_min = 2; break;
		case 2: b.read_max = 4; break;
		case 3: b.write_min = 3; break;
		case 4: b.write_max = 2; break;
		case 5: b.read_max = 3; b.write_max = 3; b.write_min = 3; break;
		}
		run_comp(&r, 4, &a);
		run_comp(&r, 4, &b);
		snprintf(what, sizeof(what), "one entry twice, differing (%d)", which);
		bad_both(what, &r, 4);
		run_free(&r);
	}
	/* One name, different kinds: different entries. */
	b = a;
	b.kind = LUO_ABI_KIND_FORMAT;
	b.flags = 0;
	run_comp(&r, 4, &a);
	run_comp(&r, 4, &b);
	good_both("one name as component and format", &r, 4, 2, 0);
	run_free(&r);

	/* Across two runs added to one manifest (two objects of one image). */
	{
		struct luo_manifest *m = NULL;
		char reason[LUO_REASON_MAX];
		struct run r2 = { 0 };

		set_case("the same entry in two objects");
		run_comp(&r, 4, &a);
		b = a;
		b.read_max = 5;
		run_comp(&r2, 4, &b);
		CHECK_OK(luo_manifest_new(&m));
		CHECK_OK(luo_manifest_add_notes(m, r.p, r.len, 4, true, "one", reason, sizeof(reason)));
		CHECK_OK(luo_manifest_add_notes(m, r.p, r.len, 4, true, "two", reason, sizeof(reason)));
		EXPECT(m->n_entries == 1, "%zu entries", m->n_entries);
		reason_reset(reason, sizeof(reason));
		EXPECT(luo_manifest_add_notes(m, r2.p, r2.len, 4, true, "three", reason, sizeof(reason)) == -EBADMSG,
		       "a different declaration in another object accepted");
		EXPECT(reason_ok(reason, sizeof(reason)) && strstr(reason, "three"), "reason '%s' names no origin",
		       reason);
		n_cases += 3;
		luo_manifest_free(m);
		run_free(&r);
		run_free(&r2);
	}
}

static void raw_limits(void)
{
	struct luo_manifest *m = NULL;
	char reason[LUO_REASON_MAX];
	struct run r = { 0 };
	size_t one_note;

	/* LUO_MANIFEST_ENTRIES_MAX distinct entries, then one more. */
	for (unsigned i = 0; i <= LUO_MANIFEST_ENTRIES_MAX; i++) {
		char name[16];
		struct luo_abi_note_component c;

		snprintf(name, sizeof(name), "c%04u", i);
		c = comp(i % 2 ? LUO_ABI_KIND_HANDLER : LUO_ABI_KIND_COMPONENT, 0, 1, 1, 1, 1, name);
		run_comp(&r, 4, &c);
	}
	one_note = r.len / (LUO_MANIFEST_ENTRIES_MAX + 1);
	expect_notes("LUO_MANIFEST_ENTRIES_MAX entries", r.p, r.len - one_note, 4, true, 0, LUO_MANIFEST_ENTRIES_MAX,
		     0);
	expect_notes("LUO_MANIFEST_ENTRIES_MAX + 1 entries", r.p, r.len, 4, true, -EBADMSG, -1, -1);
	expect_notes("LUO_MANIFEST_ENTRIES_MAX + 1 entries", r.p, r.len, 4, false, -EBADMSG, -1, -1);

	/* A full manifest: one more is refused, a repeat is not. */
	set_case("a full manifest");
	CHECK_OK(luo_manifest_new(&m));
	CHECK_OK(luo_manifest_add_notes(m, r.p, r.len - one_note, 4, true, "full", reason, sizeof(reason)));
	CHECK_OK(luo_manifest_add_notes(m, r.p, one_note, 4, true, "repeat", reason, sizeof(reason)));
	reason_reset(reason, sizeof(reason));
	EXPECT(luo_manifest_add_notes(m, r.p + r.len - one_note, one_note, 4, true, "more", reason, sizeof(reason)) ==
		       -EBADMSG,
	       "entry %d accepted", LUO_MANIFEST_ENTRIES_MAX + 1);
	EXPECT(reason_ok(reason, sizeof(reason)), "no reason");
	EXPECT(m->n_entries == LUO_MANIFEST_ENTRIES_MAX, "%zu entries", m->n_entries);
	n_cases += 3;
	luo_manifest_free(m);
	run_free(&r);

	/* LUO_MANIFEST_LAYOUTS_MAX layouts, then one more. */
	for (unsigned i = 0; i <= LUO_MANIFEST_LAYOUTS_MAX; i++) {
		struct luo_abi_note_layout l;

		layout_good(&l, "many", i + 1);
		run_layout(&r, 4, &l);
	}
	one_note = r.len / (LUO_MANIFEST_LAYOUTS_MAX + 1);
	expect_notes("LUO_MANIFEST_LAYOUTS_MAX layouts", r.p, r.len - one_note, 4, true, 0, 0,
		     LUO_MANIFEST_LAYOUTS_MAX);
	expect_notes("LUO_MANIFEST_LAYOUTS_MAX + 1 layouts", r.p, r.len, 4, true, -EBADMSG, -1, -1);
	run_free(&r);

	/* More than LUO_MANIFEST_NOTES_BYTES_MAX bytes, whatever they hold. */
	{
		uint8_t *big = calloc(1, LUO_MANIFEST_NOTES_BYTES_MAX + 8);

		CHECK(big);
		expect_notes("LUO_MANIFEST_NOTES_BYTES_MAX + 1 bytes", big, LUO_MANIFEST_NOTES_BYTES_MAX + 1, 4, true,
			     -EBADMSG, -1, -1);
		expect_notes("LUO_MANIFEST_NOTES_BYTES_MAX + 4 bytes", big, LUO_MANIFEST_NOTES_BYTES_MAX + 4, 4, false,
			     -EBADMSG, -1, -1);
		expect_notes("SIZE_MAX bytes", big, SIZE_MAX, 4, false, -EBADMSG, -1, -1);
		/* Exactly the maximum: 349,525 empty notes of no owner, then 4 bytes. */
		expect_notes("LUO_MANIFEST_NOTES_BYTES_MAX zero bytes", big, LUO_MANIFEST_NOTES_BYTES_MAX, 4, false, 0,
			     0, 0);
		free(big);
	}

	/* Reasons cut to tiny buffers stay inside them (ASan sees the rest). */
	{
		struct luo_abi_note_component c = comp(0, 0, 1, 1, 1, 1, "tiny");
		static const size_t lens[] = { 1, 2, 7 };

		run_comp(&r, 4, &c);
		for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
			char *small = malloc(lens[i]);

			set_case("a reason buffer of %zu bytes", lens[i]);
			CHECK(small);
			CHECK_OK(luo_manifest_new(&m));
			memset(small, REASON_FILL, lens[i]);
			EXPECT(luo_manifest_add_notes(m, r.p, r.len, 4, true, "t", small, lens[i]) == -EBADMSG,
			       "accepted");
			EXPECT(small[lens[i] - 1] == '\0', "reason not terminated");
			luo_manifest_free(m);
			free(small);
			n_cases++;
		}
		set_case("no reason buffer");
		CHECK_OK(luo_manifest_new(&m));
		EXPECT(luo_manifest_add_notes(m, r.p, r.len, 4, true, "t", NULL, 0) == -EBADMSG, "accepted");
		luo_manifest_free(m);
		n_cases++;
		run_free(&r);
	}
}

static void raw_layouts(void)
{
	struct luo_abi_note_layout l, l2;
	struct run r = { 0 };

	layout_good(&l, "lay", 1);
	layout_case("a good layout", &l, true);

	/* Content as written, fingerprint as documented. */
	{
		struct luo_manifest *m = NULL;
		const struct luo_manifest_layout *ml;
		char reason[LUO_REASON_MAX];

		set_case("a good layout's content");
		run_layout(&r, 4, &l);
		CHECK_OK(luo_manifest_new(&m));
		CHECK_OK(luo_manifest_add_notes(m, r.p, r.len, 4, true, "t", reason, sizeof(reason)));
		ml = luo_manifest_find_layout(m, "lay", 1);
		EXPECT(ml && ml->struct_size == 24 && ml->n_fields == 3 &&
			       memcmp(ml->fields, l.fields, 3 * sizeof(l.fields[0])) == 0 &&
			       ml->fingerprint == my_fingerprint(24, l.fields, 3),
		       "layout read differs from the note");
		luo_manifest_free(m);
		run_free(&r);
	}

	layout_init(&l, "lay", 1, 24);
	layout_case("no fields", &l, false);

	layout_good(&l, "lay", 1);
	l.struct_size = 23;
	layout_case("last field past the struct", &l, false);
	layout_good(&l, "lay", 1);
	l.fields[1].offset = 0xffffffffu;
	layout_case("field offset 0xffffffff", &l, false);
	layout_good(&l, "lay", 1);
	l.fields[1].offset = 0xfffffffcu;
	l.fields[1].size = 8;
	layout_case("field offset + size wraps 32 bits", &l, false);
	layout_good(&l, "lay", 1);
	l.fields[1].size = 0;
	layout_case("field of size 0", &l, false);
	layout_good(&l, "lay", 1);
	l.fields[1].offset = 4;
	layout_case("overlapping fields", &l, false);
	layout_good(&l, "lay", 1);
	l.fields[2].offset = 0; /* same offset as the first, different name */
	l.fields[2].size = 8;
	layout_case("two fields at one offset", &l, false);
	layout_good(&l, "lay", 1);
	memcpy(l.fields[2].name, "id", 3);
	l.fields[2].name[2] = '\0';
	memset(l.fields[2].name + 2, 0, sizeof(l.fields[2].name) - 2);
	layout_case("same field name twice", &l, false);

	/* Unused slots: every byte position of a slot after the last used one. */
	for (size_t off = 0; off < sizeof(struct luo_abi_note_field); off += 4) {
		char what[128];

		layout_good(&l, "lay", 1);
		((uint8_t *)&l.fields[3])[off] = 1;
		snprintf(what, sizeof(what), "byte %zu of the first unused slot set", off);
		layout_case(what, &l, false);
	}
	layout_good(&l, "lay", 1);
	((uint8_t *)&l.fields[LUO_ABI_LAYOUT_FIELDS_MAX - 1])[sizeof(l.fields[0]) - 1] = 0x80;
	layout_case("last byte of the last slot set", &l, false);
	layout_good(&l, "lay", 1);
	layout_field(&l, 4, 16, 4, "late", "uint32_t");
	memset(&l.fields[2], 0, sizeof(l.fields[2]));
	layout_case("a used slot after an unused one", &l, false);
	layout_good(&l, "lay", 1);
	memset(l.fields[1].name, 0, sizeof(l.fields[1].name)); /* name empty, offset/size/type left */
	layout_case("a slot with a type but no name", &l, false);

	/* Field names and types. */
	layout_good(&l, "lay", 1);
	memset(l.fields[0].name, 'x', sizeof(l.fields[0].name));
	layout_case("field name not terminated", &l, false);
	layout_good(&l, "lay", 1);
	memset(l.fields[0].type, 0, sizeof(l.fields[0].type));
	layout_case("field type empty", &l, false);
	layout_good(&l, "lay", 1);
	memset(l.fields[0].type, 'x', sizeof(l.fields[0].type));
	layout_case("field type not terminated", &l, false);
	layout_good(&l, "lay", 1);
	l.fields[0].type[20] = 'z';
	layout_case("field type not zero-padded", &l, false);
	layout_good(&l, "lay", 1);
	l.fields[0].name[1] = ' ';
	layout_case("field name with a space", &l, false);
	layout_good(&l, "lay", 1);
	l.fields[0].type[1] = '\t';
	layout_case("field type with a tab", &l, false);
	layout_good(&l, "lay", 1);
	layout_field(&l, 0, 0, 8, "id", "unsigned long long");
	layout_case("field type with spaces", &l, true);

	/* The layout's own header. */
	layout_good(&l, "lay", 1);
	l.struct_size = 0;
	layout_case("struct_size 0", &l, false);
	layout_good(&l, "lay", 1);
	l.struct_size = LUO_COMPONENT_DATA_MAX + 1;
	layout_case("struct_size past LUO_COMPONENT_DATA_MAX", &l, false);
	layout_good(&l, "lay", 1);
	l.struct_size = LUO_COMPONENT_DATA_MAX;
	layout_case("struct_size LUO_COMPONENT_DATA_MAX", &l, true);
	layout_good(&l, "lay", 0);
	layout_case("version 0", &l, false);
	layout_good(&l, "lay", 0xffffffffu);
	layout_case("version 0xffffffff", &l, true);
	layout_good(&l, "", 1);
	layout_case("empty component name", &l, false);
	layout_good(&l, "lay", 1);
	memset(l.component, 'c', sizeof(l.component));
	layout_case("component name not terminated", &l, false);
	layout_good(&l, "la y", 1);
	layout_case("component name with a space", &l, false);

	/* All 32 slots used. */
	layout_init(&l, "lay", 1, 32 * 4);
	for (unsigned i = 0; i < LUO_ABI_LAYOUT_FIELDS_MAX; i++) {
		char name[16];

		snprintf(name, sizeof(name), "f%u", i);
		layout_field(&l, i, (LUO_ABI_LAYOUT_FIELDS_MAX - 1 - i) * 4, 4, name, "uint32_t");
	}
	layout_case("32 fields, in reverse offset order", &l, true);

	/* Two layouts of one (component, version). */
	layout_good(&l, "lay", 1);
	layout_good(&l2, "lay", 1);
	run_layout(&r, 4, &l);
	run_layout(&r, 4, &l2);
	good_both("one layout twice", &r, 4, 0, 1);
	run_free(&r);
	/* The same fields in other slots: the same layout. */
	layout_init(&l2, "lay", 1, 24);
	layout_field(&l2, 0, 12, 12, "tag", "char[12]");
	layout_field(&l2, 1, 0, 8, "id", "uint64_t");
	layout_field(&l2, 2, 8, 4, "flags", "uint32_t");
	run_layout(&r, 4, &l);
	run_layout(&r, 4, &l2);
	good_both("one layout twice, fields in another order", &r, 4, 0, 1);
	run_free(&r);
	{
		static const char *const what[] = { "struct size", "a field's type", "a field's name",
						    "a field's offset", "a field's size", "one field less" };

		for (size_t i = 0; i < ARRAY_SIZE(what); i++) {
			char buf[96];

			layout_good(&l2, "lay", 1);
			switch (i) {
			case 0: l2.struct_size = 32; break;
			case 1: l2.fields[1].type[0] = 'i'; break;
			case 2: l2.fields[1].name[0] = 'F'; break;
			case 3: l2.fields[2].offset = 16; l2.fields[2].size = 8; break;
			case 4: l2.fields[1].size = 2; break;
			case 5: memset(&l2.fields[2], 0, sizeof(l2.fields[2])); break;
			}
			run_layout(&r, 4, &l);
			run_layout(&r, 4, &l2);
			snprintf(buf, sizeof(buf), "two layouts of one version, differing in %s", what[i]);
			bad_both(buf, &r, 4);
			run_free(&r);
		}
	}
	/* Other versions and components are other layouts. */
	layout_good(&l2, "lay", 2);
	run_layout(&r, 4, &l);
	run_layout(&r, 4, &l2);
	layout_good(&l2, "lay2", 1);
	run_layout(&r, 4, &l2);
	good_both("three layouts", &r, 4, 0, 3);
	run_free(&r);
}

/*
 * Alignment. manifest.c pads the owner to @align on its own (hdr 12 +
 * pad(namesz) + pad(descsz)); with align 8 that puts the description at
 * offset 20 of the note. The cases below follow that; see the report for
 * how glibc / libelf lay out 8-aligned notes (description at 16).
 */
static void raw_alignment(void)
{
	struct luo_abi_note_component a = comp(LUO_ABI_KIND_COMPONENT, 0, 1, 1, 1, 1, "a");
	struct luo_abi_note_component b = comp(LUO_ABI_KIND_HANDLER, 0, 1, 1, 1, 1, "b");
	struct luo_abi_note_layout l;
	uint8_t odd_desc[20];
	struct run r = { 0 };

	layout_good(&l, "lay", 1);
	memset(odd_desc, 0xab, sizeof(odd_desc));
	for (size_t align = 4; align <= 8; align += 4) {
		char what[128];

		/* A foreign note with sizes that need padding, between LUO notes. */
		run_comp(&r, align, &a);
		run_note(&r, align, 5, "GNUX", 5, 13, odd_desc, 13, 7);
		run_comp(&r, align, &b);
		run_layout(&r, align, &l);
		snprintf(what, sizeof(what), "padded foreign note between LUO notes");
		walk_bad(what, &r, align, 2, 1);
		run_free(&r);

		/* Nonzero padding bytes are not looked at. */
		run_note(&r, align, 5, "GNUX", 5, 13, odd_desc, 13, 7);
		memset(r.p + 12 + 5, 0xee, pad_to(12 + 5, align) - 12 - 5);
		memset(r.p + r.len - (pad_to(13, align) - 13), 0xee, pad_to(13, align) - 13);
		run_comp(&r, align, &a);
		walk_bad("foreign note with nonzero padding", &r, align, 1, 0);
		run_free(&r);
	}
	/*
	 * A LUO note (12 + 4 + 72 bytes) is laid out the same with either
	 * alignment, so reading a run with the other one changes nothing.
	 */
	run_comp(&r, 8, &a);
	expect_notes("an 8-aligned LUO run read as 4-aligned", r.p, r.len, 4, true, 0, 1, 0);
	expect_notes("an 8-aligned LUO run read as 4-aligned", r.p, r.len, 4, false, 0, 1, 0);
	run_free(&r);
	/* 4-aligned, length not a multiple of 8: fine with 4. */
	run_comp(&r, 4, &a);
	run_comp(&r, 4, &b);
	run_bytes(&r, NULL, 12); /* an empty foreign note: 12 bytes */
	walk_bad("a run of 188 bytes", &r, 4, 2, 0);
	run_free(&r);
}

/* ------------------------------------------------------------------------ */
/* Group 2: random mutations of a good multi-note run                        */

struct fuzz_stats {
	unsigned iters, strict_ok, strict_bad, loose_ok, loose_bad, nomem;
};

/* Note start offsets of the base run, to aim mutations at headers. */
static size_t base_notes[16];
static size_t n_base_notes;

static void build_base_run(struct run *r)
{
	struct luo_abi_note_component c;
	struct luo_abi_note_layout l;

	n_base_notes = 0;
#define NOTE_START() (base_notes[n_base_notes++] = r->len)
	NOTE_START();
	c = comp(LUO_ABI_KIND_COMPONENT, 0, 1, 3, 2, 3, "alpha");
	run_comp(r, 4, &c);
	NOTE_START();
	run_comp(r, 4, &c); /* an identical repeat */
	NOTE_START();
	c = comp(LUO_ABI_KIND_COMPONENT, LUO_ABI_FLAG_OPTIONAL, 1, 1, 1, 1, "beta");
	run_comp(r, 4, &c);
	NOTE_START();
	c = comp(LUO_ABI_KIND_HANDLER, 0, 1, 1, 1, 1, "memfd");
	run_comp(r, 4, &c);
	NOTE_START();
	c = comp(LUO_ABI_KIND_FORMAT, 0, 1, 2, 2, 2, LUO_ABI_FORMAT_COMPONENT);
	run_comp(r, 4, &c);
	NOTE_START();
	layout_good(&l, "alpha", 2);
	run_layout(r, 4, &l);
	NOTE_START();
	layout_init(&l, "alpha", 3, 16);
	layout_field(&l, 0, 8, 8, "b", "uint64_t");
	layout_field(&l, 1, 0, 4, "a", "int");
	run_layout(r, 4, &l);
#undef NOTE_START
}

static int parse_check(const uint8_t *buf, size_t len, bool strict, struct luo_manifest **ret)
{
	struct luo_manifest *m = NULL;
	char reason[LUO_REASON_MAX];
	int r;

	CHECK_OK(luo_manifest_new(&m));
	reason_reset(reason, sizeof(reason));
	r = luo_manifest_add_notes(m, buf, len, 4, strict, "fuzz", reason, sizeof(reason));
	EXPECT(r == 0 || r == -EBADMSG || r == -ENOMEM, "returned %d", r);
	if (r < 0 && r != -ENOMEM)
		EXPECT(reason_ok(reason, sizeof(reason)), "error %d without a reason", r);
	if (r == 0)
		check_invariants(m);
	*ret = m;
	return r;
}

static void mutate(uint8_t *p, size_t len)
{
	static const uint32_t interesting[] = { 0, 1, 2, 3, 4, 5, 8, 12, 71, 72, 73, 2360, 2376, 0x7fffffffu,
						0x80000000u, 0xfffffff4u, 0xfffffffcu, 0xffffffffu };
	unsigned n = 1 + (unsigned)rnd_below(4);

	for (unsigned i = 0; i < n; i++) {
		size_t off;

		if (rnd() & 1) {
			/* Near a note start: header, kind, flags, ranges, first name bytes. */
			off = base_notes[rnd_below(n_base_notes)] + rnd_below(48);
		} else {
			off = rnd_below(len);
		}
		if (off >= len)
			off = len - 1;
		switch (rnd_below(4)) {
		case 0:
			p[off] ^= (uint8_t)(1u << rnd_below(8));
			break;
		case 1:
			p[off] = (uint8_t)rnd();
			break;
		case 2:
			p[off] = 0;
			break;
		default: {
			uint32_t v = interesting[rnd_below(ARRAY_SIZE(interesting))];

			off &= ~(size_t)3;
			if (off + 4 <= len)
				memcpy(p + off, &v, 4);
			break;
		}
		}
	}
}

static void raw_random(void)
{
	struct fuzz_stats st = { 0 };
	struct run base = { 0 };
	unsigned iters = 20000 * fuzz_scale;
	uint8_t *buf;
	double t0 = now_s();

	build_base_run(&base);
	buf = malloc(base.len);
	CHECK(buf);
	/* The base itself: 4 entries with the repeat folded, 2 layouts. */
	expect_notes("the base run of the mutation loop", base.p, base.len, 4, true, 0, 4, 2);

	for (unsigned it = 0; it < iters; it++) {
		struct luo_manifest *ms = NULL, *ml = NULL;
		size_t len = base.len;
		int rs, rl;

		set_case("random mutation %u (seeded)", it);
		memcpy(buf, base.p, base.len);
		mutate(buf, base.len);
		if (rnd_below(16) == 0)
			len = rnd_below(base.len + 1);
		/* A fresh copy of exactly len bytes, so that ASan sees any overread. */
		{
			uint8_t *exact = malloc(len ? len : 1);

			CHECK(exact);
			memcpy(exact, buf, len);
			rs = parse_check(exact, len, true, &ms);
			rl = parse_check(exact, len, false, &ml);
			free(exact);
		}
		st.iters++;
		if (rs == 0)
			st.strict_ok++;
		else if (rs == -ENOMEM)
			st.nomem++;
		else
			st.strict_bad++;
		if (rl == 0)
			st.loose_ok++;
		else if (rl == -ENOMEM)
			st.nomem++;
		else
			st.loose_bad++;
		/* What strict accepts, loose accepts identically. */
		if (rs == 0)
			EXPECT(rl == 0 && manifest_same(ms, ml), "strict accepted, loose gave %d or another manifest",
			       rl);
		luo_manifest_free(ms);
		luo_manifest_free(ml);
	}
	printf("ok - %u random mutations of a 7-note run (seeded): 0 crashes; strict %u refused, %u accepted; "
	       "loose %u refused, %u accepted; %u -ENOMEM (%.1f s)\n",
	       st.iters, st.strict_bad, st.strict_ok, st.loose_bad, st.loose_ok, st.nomem, now_s() - t0);

	/* Truncations of the base run at every length. */
	{
		unsigned n_ok = 0, n_bad = 0;

		for (size_t len = 0; len <= base.len; len++) {
			bool at_boundary = len == base.len;
			size_t complete = 0;
			uint8_t *exact = malloc(len ? len : 1);
			char what[128];

			CHECK(exact);
			memcpy(exact, base.p, len);
			for (size_t i = 0; i < n_base_notes; i++) {
				size_t end = i + 1 < n_base_notes ? base_notes[i + 1] : base.len;

				at_boundary = at_boundary || len == base_notes[i];
				if (end <= len)
					complete = i + 1;
			}
			snprintf(what, sizeof(what), "base run cut to %zu bytes", len);
			/* Entries: notes 0-4 (1 is a repeat of 0); layouts: notes 5-6. */
			expect_notes(what, exact, len, 4, true, at_boundary ? 0 : -EBADMSG,
				     at_boundary ? (long)(complete > 1 ? (complete > 5 ? 4 : complete - 1) : complete) : -1,
				     at_boundary ? (long)(complete > 5 ? complete - 5 : 0) : -1);
			expect_notes(what, exact, len, 4, false, 0,
				     (long)(complete > 1 ? (complete > 5 ? 4 : complete - 1) : complete),
				     (long)(complete > 5 ? complete - 5 : 0));
			if (at_boundary)
				n_ok++;
			else
				n_bad++;
			free(exact);
		}
		printf("ok - %zu truncations of the 7-note run: strict refused %u, accepted %u (at note boundaries); "
		       "loose kept every complete note\n",
		       base.len + 1, n_bad, n_ok);
	}
	free(buf);
	run_free(&base);
}

/* ------------------------------------------------------------------------ */
/* Group 1: this binary                                                      */

static char self_path[PATH_MAX];
static struct luo_manifest *self_manifest; /* read_file of self_path */

static void expect_entry(const struct luo_manifest *m, const char *src, uint32_t kind, const char *name,
			 uint32_t flags, uint32_t rmin, uint32_t rmax, uint32_t wmin, uint32_t wmax)
{
	const struct luo_manifest_entry *e = luo_manifest_find(m, kind, name);

	EXPECT(e, "%s: no %s '%s'", src, luo_kind_name(kind), name);
	if (!e)
		return;
	EXPECT(e->flags == flags && e->read.min == rmin && e->read.max == rmax && e->write.min == wmin &&
		       e->write.max == wmax,
	       "%s: %s '%s' is flags 0x%x read %u..%u write %u..%u, expected 0x%x %u..%u %u..%u", src,
	       luo_kind_name(kind), name, e->flags, e->read.min, e->read.max, e->write.min, e->write.max, flags,
	       rmin, rmax, wmin, wmax);
}

static void expect_layout(const struct luo_manifest *m, const char *src, uint32_t version, uint32_t size,
			  const struct luo_abi_note_field *fields, uint32_t n)
{
	const struct luo_manifest_layout *l = luo_manifest_find_layout(m, STATE_NAME, version);
	struct luo_manifest_layout want = { 0 };

	EXPECT(l, "%s: no layout of %s v%u", src, STATE_NAME, version);
	if (!l)
		return;
	want.struct_size = size;
	want.n_fields = n;
	memcpy(want.fields, fields, n * sizeof(fields[0]));
	EXPECT(l->struct_size == size && l->n_fields == n, "%s: layout v%u is %u bytes, %u fields", src, version,
	       l->struct_size, l->n_fields);
	EXPECT(l->n_fields == n && memcmp(l->fields, fields, n * sizeof(fields[0])) == 0,
	       "%s: layout v%u fields differ from the declaration", src, version);
	EXPECT(l->fingerprint == luo_layout_fingerprint(&want), "%s: layout v%u fingerprint %016" PRIx64
	       " != luo_layout_fingerprint() %016" PRIx64, src, version, l->fingerprint,
	       luo_layout_fingerprint(&want));
	EXPECT(l->fingerprint == my_fingerprint(size, fields, n), "%s: layout v%u fingerprint is not FNV-1a as "
	       "documented", src, version);
}

#define FIELD(stype, member, mtype)                                                                  \
	{ (uint32_t)offsetof(stype, member), (uint32_t)sizeof(((stype *)0)->member), #member, #mtype }

static void expect_self_content(const struct luo_manifest *m, const char *src)
{
	static const struct luo_abi_note_field v2[] = {
		FIELD(struct fuzz_state_v2, counter, uint64_t),
		FIELD(struct fuzz_state_v2, flags, uint32_t),
		FIELD(struct fuzz_state_v2, tag, char[12]),
	};
	/* In declaration order, as the note holds them. */
	static const struct luo_abi_note_field v3[] = {
		FIELD(struct fuzz_state_v3, tag, char[16]),
		FIELD(struct fuzz_state_v3, counter, uint64_t),
		FIELD(struct fuzz_state_v3, port, uint16_t),
		FIELD(struct fuzz_state_v3, flags, uint32_t),
		FIELD(struct fuzz_state_v3, generation, uint32_t),
	};

	check_invariants(m);
	expect_entry(m, src, LUO_ABI_KIND_HANDLER, "memfd", 0, LUO_ABI_MEMFD_VERSION, LUO_ABI_MEMFD_VERSION,
		     LUO_ABI_MEMFD_VERSION, LUO_ABI_MEMFD_VERSION);
	expect_entry(m, src, LUO_ABI_KIND_HANDLER, "fd", 0, LUO_ABI_FD_VERSION, LUO_ABI_FD_VERSION, LUO_ABI_FD_VERSION,
		     LUO_ABI_FD_VERSION);
	expect_entry(m, src, LUO_ABI_KIND_HANDLER, "arena", 0, LUO_ABI_ARENA_VERSION, LUO_ABI_ARENA_VERSION,
		     LUO_ABI_ARENA_VERSION, LUO_ABI_ARENA_VERSION);
	expect_entry(m, src, LUO_ABI_KIND_FORMAT, LUO_ABI_FORMAT_COMPONENT, 0, LUO_ABI_FORMAT_READ_MIN,
		     LUO_ABI_FORMAT_VERSION, LUO_ABI_FORMAT_VERSION, LUO_ABI_FORMAT_VERSION);
	expect_entry(m, src, LUO_ABI_KIND_COMPONENT, STATE_NAME, 0, 1, 3, 2, 3);
	expect_entry(m, src, LUO_ABI_KIND_COMPONENT, CACHE_NAME, LUO_ABI_FLAG_OPTIONAL, 2, 4, 4, 4);
	EXPECT(m->n_entries == 6, "%s: %zu entries, expected 6", src, m->n_entries);
	expect_layout(m, src, 2, sizeof(struct fuzz_state_v2), v2, ARRAY_SIZE(v2));
	expect_layout(m, src, 3, sizeof(struct fuzz_state_v3), v3, ARRAY_SIZE(v3));
	EXPECT(m->n_layouts == 2, "%s: %zu layouts, expected 2", src, m->n_layouts);
}

static void group_self(void)
{
	struct luo_manifest *m = NULL;
	char reason[LUO_REASON_MAX];
	uint8_t id[LUO_ABI_BUILD_ID_MAX];
	size_t id_len = 0;
	ssize_t n;
	int r;

	/* The handlers' notes are in objects of the static library this test pulls in by name. */
	CHECK(luo_handler_memfd.name && luo_handler_fd.name && luo_handler_arena.name);

	n = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);
	CHECK(n > 0);
	self_path[n] = '\0';

	set_case("read_file(self)");
	reason_reset(reason, sizeof(reason));
	r = luo_manifest_read_file(self_path, &self_manifest, reason, sizeof(reason));
	if (r < 0)
		fprintf(stderr, "read_file(%s): %d: %s\n", self_path, r, reason);
	CHECK_OK(r);
	expect_self_content(self_manifest, "read_file");
	EXPECT(self_manifest->build_id_len > 0, "no build-id read");
	EXPECT(self_manifest->n_objects >= 2, "%zu objects read (executable + libraries)",
	       self_manifest->n_objects);

	set_case("read_file(/proc/self/exe)");
	CHECK_OK(luo_manifest_read_file("/proc/self/exe", &m, reason, sizeof(reason)));
	EXPECT(manifest_same(m, self_manifest), "/proc/self/exe reads differently");
	luo_manifest_free(m);

	set_case("read_self()");
	reason_reset(reason, sizeof(reason));
	r = luo_manifest_read_self(&m, reason, sizeof(reason));
	if (r < 0)
		fprintf(stderr, "read_self: %d: %s\n", r, reason);
	CHECK_OK(r);
	expect_self_content(m, "read_self");
	EXPECT(manifest_same(m, self_manifest), "read_self and read_file differ");
	EXPECT(m->build_id_len == self_manifest->build_id_len &&
		       memcmp(m->build_id, self_manifest->build_id, m->build_id_len) == 0,
	       "read_self and read_file see other build-ids");
	luo_manifest_free(m);

	set_case("read_pid(getpid())");
	reason_reset(reason, sizeof(reason));
	r = luo_manifest_read_pid(getpid(), &m, reason, sizeof(reason));
	if (r < 0)
		fprintf(stderr, "read_pid: %d: %s\n", r, reason);
	CHECK_OK(r);
	expect_self_content(m, "read_pid");
	EXPECT(manifest_same(m, self_manifest), "read_pid and read_file differ");
	luo_manifest_free(m);
	CHECK_ERR(luo_manifest_read_pid(0, &m, reason, sizeof(reason)), EINVAL);
	CHECK_ERR(luo_manifest_read_pid(getpid(), NULL, reason, sizeof(reason)), EINVAL);

	set_case("luo_elf_build_id(self)");
	CHECK_OK(luo_elf_build_id(self_path, id, sizeof(id), &id_len));
	EXPECT(id_len == self_manifest->build_id_len && memcmp(id, self_manifest->build_id, id_len) == 0,
	       "luo_elf_build_id differs from read_file's");
	CHECK_ERR(luo_elf_build_id(self_path, id, id_len - 1, &id_len), ENOBUFS);

	printf("ok - this binary: %zu entries, %zu layouts, build-id of %zu bytes, %zu objects; read_self and "
	       "read_pid agree\n",
	       self_manifest->n_entries, self_manifest->n_layouts, self_manifest->build_id_len,
	       self_manifest->n_objects);
}

/* ------------------------------------------------------------------------ */
/* Group 3: whole files                                                      */

static char tmpdir[PATH_MAX];
static char scratch[PATH_MAX + 16];
static uint8_t *orig;
static size_t orig_size;
static int scratch_fd = -1;

/* Where things are in this binary, from its own headers. */
static struct {
	size_t shoff, shnum, shentsize, shstrndx;
	size_t luo_idx, luo_off, luo_size, luo_align;
	size_t luo_notes[32];
	size_t n_luo_notes;
	size_t bid_idx, bid_off, bid_size;
} elfi;

static ElfW(Shdr) shdr_at(size_t i)
{
	ElfW(Shdr) sh;

	CHECK(elfi.shoff + (i + 1) * sizeof(sh) <= orig_size);
	memcpy(&sh, orig + elfi.shoff + i * sizeof(sh), sizeof(sh));
	return sh;
}

static void parse_self_elf(void)
{
	ElfW(Ehdr) eh;
	ElfW(Shdr) strtab;
	bool found_in_pt_note = false;

	CHECK(orig_size >= sizeof(eh));
	memcpy(&eh, orig, sizeof(eh));
	CHECK(memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0);
	CHECK(eh.e_shentsize == sizeof(ElfW(Shdr)));
	CHECK(eh.e_shnum > 0 && eh.e_shstrndx < eh.e_shnum);
	elfi.shoff = eh.e_shoff;
	elfi.shnum = eh.e_shnum;
	elfi.shentsize = eh.e_shentsize;
	elfi.shstrndx = eh.e_shstrndx;
	CHECK(elfi.shoff + elfi.shnum * elfi.shentsize <= orig_size);
	strtab = shdr_at(elfi.shstrndx);
	for (size_t i = 1; i < elfi.shnum; i++) {
		ElfW(Shdr) sh = shdr_at(i);
		const char *name;

		CHECK(sh.sh_name < strtab.sh_size);
		name = (const char *)orig + strtab.sh_offset + sh.sh_name;
		if (strcmp(name, LUO_ABI_NOTE_SECTION) == 0) {
			CHECK(elfi.luo_idx == 0); /* one section */
			CHECK(sh.sh_type == SHT_NOTE);
			elfi.luo_idx = i;
			elfi.luo_off = sh.sh_offset;
			elfi.luo_size = sh.sh_size;
			elfi.luo_align = sh.sh_addralign;
		} else if (strcmp(name, ".note.gnu.build-id") == 0) {
			elfi.bid_idx = i;
			elfi.bid_off = sh.sh_offset;
			elfi.bid_size = sh.sh_size;
		}
	}
	CHECK(elfi.luo_idx > 0 && elfi.bid_idx > 0);
	CHECK(elfi.luo_off + elfi.luo_size <= orig_size);
	/* Its notes, 4-aligned. */
	for (size_t off = 0; off < elfi.luo_size;) {
		uint32_t h[3];

		CHECK(elfi.n_luo_notes < ARRAY_SIZE(elfi.luo_notes));
		elfi.luo_notes[elfi.n_luo_notes++] = off;
		memcpy(h, orig + elfi.luo_off + off, sizeof(h));
		off += 12 + pad_to(h[0], 4) + pad_to(h[1], 4);
	}
	/* Allocated and in a PT_NOTE segment: read_self() finds it. */
	for (size_t i = 0; i < eh.e_phnum; i++) {
		ElfW(Phdr) ph;

		memcpy(&ph, orig + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type == PT_NOTE && ph.p_offset <= elfi.luo_off &&
		    elfi.luo_off + elfi.luo_size <= ph.p_offset + ph.p_filesz)
			found_in_pt_note = true;
	}
	EXPECT(found_in_pt_note, ".note.luo is in no PT_NOTE segment");
	printf("#   %s: %zu bytes; .note.luo at 0x%zx, %zu bytes, %zu notes, align %zu; "
	       "%zu section headers at 0x%zx\n",
	       self_path, orig_size, elfi.luo_off, elfi.luo_size, elfi.n_luo_notes, elfi.luo_align, elfi.shnum,
	       elfi.shoff);
}

static void write_all(int fd, const void *p, size_t n, off_t off)
{
	const uint8_t *b = p;

	while (n > 0) {
		ssize_t w = pwrite(fd, b, n, off);

		CHECK(w > 0);
		b += w;
		n -= (size_t)w;
		off += w;
	}
}

static void read_whole(const char *path, uint8_t **ret, size_t *ret_len)
{
	struct stat st;
	uint8_t *p;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	CHECK(fd >= 0);
	CHECK(fstat(fd, &st) == 0 && st.st_size > 0);
	p = malloc((size_t)st.st_size);
	CHECK(p);
	while (got < (size_t)st.st_size) {
		ssize_t n = pread(fd, p + got, (size_t)st.st_size - got, (off_t)got);

		CHECK(n > 0);
		got += (size_t)n;
	}
	close(fd);
	*ret = p;
	*ret_len = got;
}

static void patch(size_t off, const void *p, size_t n)
{
	write_all(scratch_fd, p, n, (off_t)off);
}

static void unpatch(size_t off, size_t n)
{
	write_all(scratch_fd, orig + off, n, (off_t)off);
}

static void patch_u32(size_t off, uint32_t v)
{
	patch(off, &v, sizeof(v));
}

static void patch_u64(size_t off, uint64_t v)
{
	patch(off, &v, sizeof(v));
}

static void patch_u16(size_t off, uint16_t v)
{
	patch(off, &v, sizeof(v));
}

struct file_tally {
	unsigned n, ok, ok_empty, ebadmsg, enoexec, other;
};

enum file_want {
	WANT_ANY,    /* 0 (checked against the rules) or a negative errno */
	WANT_SUBSET, /* an error, or a manifest that is part of the original */
	WANT_SAME,   /* an error, or the original manifest */
};

/* Read @path; @want_r: the exact result, or 1 for any result of kind @want. */
static int file_case(struct file_tally *t, const char *path, int want_r, enum file_want want, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int file_case(struct file_tally *t, const char *path, int want_r, enum file_want want, const char *fmt, ...)
{
	struct luo_manifest *m = NULL;
	char reason[LUO_REASON_MAX];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(cur_case, sizeof(cur_case), fmt, ap);
	va_end(ap);
	alarm(60);
	reason_reset(reason, sizeof(reason));
	r = luo_manifest_read_file(path, &m, reason, sizeof(reason));
	alarm(0);
	t->n++;
	if (verbose)
		printf("#     %s: %d %s%s%s (%zu entries, %zu layouts)\n", cur_case, r, r ? strerror(-r) : "ok",
		       r ? ": " : "", r ? reason : "", m ? m->n_entries : 0, m ? m->n_layouts : 0);
	if (want_r != 1)
		EXPECT(r == want_r, "read_file returned %d (%s), expected %d; reason: %.*s", r,
		       r ? strerror(-r) : "ok", want_r, r ? (int)sizeof(reason) : 0, reason);
	EXPECT(r <= 0 && r > -4096, "read_file returned %d", r);
	if (r < 0) {
		EXPECT(r == -ENOMEM || reason_ok(reason, sizeof(reason)), "error %d without a reason", r);
		EXPECT(m == NULL, "a manifest returned with an error");
		if (r == -EBADMSG)
			t->ebadmsg++;
		else if (r == -ENOEXEC)
			t->enoexec++;
		else
			t->other++;
	} else {
		t->ok++;
		CHECK(m);
		if (m->n_entries == 0 && m->n_layouts == 0)
			t->ok_empty++;
		check_invariants(m);
		if (want == WANT_SUBSET)
			EXPECT(manifest_subset(m, self_manifest), "accepted with entries the binary does not have");
		if (want == WANT_SAME)
			EXPECT(manifest_same(m, self_manifest), "accepted with another manifest");
		luo_manifest_free(m);
	}
	return r;
}

static void tally_print(const char *what, const struct file_tally *t, double t0)
{
	printf("ok - %s: %u files, 0 crashes; %u accepted (%u of them empty), %u -EBADMSG, %u -ENOEXEC, "
	       "%u other errors (%.1f s)\n",
	       what, t->n, t->ok, t->ok_empty, t->ebadmsg, t->enoexec, t->other, now_s() - t0);
}

static int cmp_size_desc(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return (x < y) - (x > y);
}

static void files_truncate(void)
{
	struct file_tally t = { 0 };
	char path[PATH_MAX + 16];
	size_t *lens, n = 0, cap, sht_end = elfi.shoff + elfi.shnum * elfi.shentsize;
	double t0 = now_s();
	int fd;

	cap = 64 + 64 + elfi.luo_size + 1 + (sht_end - elfi.shoff) + 1 + 64;
	lens = malloc(cap * sizeof(*lens));
	CHECK(lens);
	for (size_t k = 0; k < 64; k++)
		lens[n++] = orig_size * k / 64;
	for (size_t o = 1; o <= 64; o++) /* inside the ELF header */
		lens[n++] = o;
	for (size_t o = elfi.luo_off; o <= elfi.luo_off + elfi.luo_size; o++)
		lens[n++] = o;
	for (size_t o = elfi.shoff; o <= sht_end && o < orig_size; o++)
		lens[n++] = o;
	for (size_t o = 1; o <= 64 && o <= orig_size; o++)
		lens[n++] = orig_size - o;
	CHECK(n <= cap);
	qsort(lens, n, sizeof(*lens), cmp_size_desc);

	snprintf(path, sizeof(path), "%s/truncated", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	write_all(fd, orig, orig_size, 0);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && lens[i] == lens[i - 1])
			continue;
		CHECK(ftruncate(fd, (off_t)lens[i]) == 0);
		file_case(&t, path, lens[i] == 0 ? -ENOEXEC : 1, WANT_SUBSET, "%s cut to %zu of %zu bytes", path,
			  lens[i], orig_size);
	}
	close(fd);
	unlink(path);
	free(lens);
	tally_print("truncations of the binary (every 1/64, the ELF header, every byte of .note.luo and the section "
		    "headers)",
		    &t,
		    t0);
}

static void files_notes(void)
{
	struct file_tally t = { 0 }, tr = { 0 };
	static const uint32_t sizes[] = { 0, 1, 3, 5, 8, 0x47, 0x49, 0x4c, 0x938, 0x1000, 0x7fffffffu, 0xfffffffcu,
					  0xffffffffu };
	unsigned iters = 2000 * fuzz_scale;
	double t0 = now_s();

	/* Targeted: namesz, descsz and type of every note. */
	for (size_t i = 0; i < elfi.n_luo_notes; i++) {
		size_t at = elfi.luo_off + elfi.luo_notes[i];
		uint32_t h[3];

		memcpy(h, orig + at, sizeof(h));
		for (size_t k = 0; k < ARRAY_SIZE(sizes); k++) {
			if (sizes[k] != h[0]) {
				patch_u32(at, sizes[k]);
				file_case(&t, scratch, -EBADMSG, WANT_ANY, "note %zu namesz 0x%x", i, sizes[k]);
			}
			if (sizes[k] != h[1]) {
				patch_u32(at + 4, sizes[k]);
				file_case(&t, scratch, -EBADMSG, WANT_ANY, "note %zu descsz 0x%x", i, sizes[k]);
			}
			unpatch(at, 8);
		}
		for (uint32_t type = 0; type < 5; type++) {
			if (type == h[2])
				continue;
			patch_u32(at + 8, type == 1 || type == 2 ? (h[2] == 1 ? 2 : 1) : type);
			file_case(&t, scratch, -EBADMSG, WANT_ANY, "note %zu type %u", i, type);
			unpatch(at + 8, 4);
		}
		patch(at + 12, "LUX", 4);
		file_case(&t, scratch, -EBADMSG, WANT_ANY, "note %zu owner LUX", i);
		unpatch(at + 12, 4);
		/* The description: kind 0, read_min 0, name's first byte. */
		patch_u32(at + 16, 0);
		file_case(&t, scratch, -EBADMSG, WANT_ANY, "note %zu first description word 0", i);
		unpatch(at + 16, 4);
	}
	tally_print("targeted corruptions of .note.luo (namesz, descsz, type, owner, kind)", &t, t0);

	/* Random: 1..4 bytes anywhere in .note.luo. */
	t0 = now_s();
	for (unsigned it = 0; it < iters; it++) {
		size_t offs[4];
		unsigned k = 1 + (unsigned)rnd_below(4);

		for (unsigned j = 0; j < k; j++) {
			uint8_t b;

			offs[j] = elfi.luo_off + (rnd() & 1 ? elfi.luo_notes[rnd_below(elfi.n_luo_notes)] + rnd_below(64)
							    : rnd_below(elfi.luo_size));
			if (offs[j] >= elfi.luo_off + elfi.luo_size)
				offs[j] = elfi.luo_off + elfi.luo_size - 1;
			b = rnd_below(3) == 0 ? 0 : (uint8_t)rnd();
			patch(offs[j], &b, 1);
		}
		file_case(&tr, scratch, 1, WANT_ANY, "random .note.luo corruption %u (seeded)", it);
		for (unsigned j = 0; j < k; j++)
			unpatch(offs[j], 1);
	}
	EXPECT(tr.other == 0, "%u random note corruptions gave an errno other than EBADMSG", tr.other);
	tally_print("random corruptions of .note.luo (1-4 bytes)", &tr, t0);
}

static void files_shdr(void)
{
	struct file_tally t = { 0 };
	size_t sh = elfi.shoff + elfi.luo_idx * elfi.shentsize;
	ElfW(Shdr) luo = shdr_at(elfi.luo_idx);
	double t0 = now_s();

#define SH_OFF(field) (sh + offsetof(ElfW(Shdr), field))
	{
		static const uint64_t sizes[] = { 1, 3, 11, 12, 0xffffffffull, 0x400001ull, 0x8000000000000000ull,
						  0xffffffffffffffffull };

		for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
			patch_u64(SH_OFF(sh_size), sizes[i]);
			file_case(&t, scratch, -EBADMSG, WANT_ANY, "sh_size 0x%" PRIx64, sizes[i]);
		}
		/* One byte more, one note less, one note more. */
		patch_u64(SH_OFF(sh_size), luo.sh_size + 1);
		file_case(&t, scratch, -EBADMSG, WANT_ANY, "sh_size + 1");
		patch_u64(SH_OFF(sh_size), elfi.luo_notes[elfi.n_luo_notes - 1]);
		file_case(&t, scratch, 0, WANT_SUBSET, "sh_size without the last note");
		patch_u64(SH_OFF(sh_size), 0);
		file_case(&t, scratch, 0, WANT_SUBSET, "sh_size 0");
		unpatch(SH_OFF(sh_size), 8);
	}
	{
		static const uint64_t offs[] = { 0x7fffffffffffffffull, 0xffffffffffffffffull };

		for (size_t i = 0; i < ARRAY_SIZE(offs); i++) {
			patch_u64(SH_OFF(sh_offset), offs[i]);
			file_case(&t, scratch, -EBADMSG, WANT_ANY, "sh_offset 0x%" PRIx64, offs[i]);
		}
		patch_u64(SH_OFF(sh_offset), orig_size);
		file_case(&t, scratch, -EBADMSG, WANT_ANY, "sh_offset = the file size");
		patch_u64(SH_OFF(sh_offset), orig_size - luo.sh_size / 2);
		file_case(&t, scratch, -EBADMSG, WANT_ANY, "sh_offset: half past the end");
		patch_u64(SH_OFF(sh_offset), orig_size - luo.sh_size);
		file_case(&t, scratch, 1, WANT_ANY, "sh_offset: the last bytes of the file");
		patch_u64(SH_OFF(sh_offset), 0);
		file_case(&t, scratch, -EBADMSG, WANT_ANY, "sh_offset 0 (the ELF header)");
		patch_u64(SH_OFF(sh_offset), luo.sh_offset + 4);
		file_case(&t, scratch, -EBADMSG, WANT_ANY, "sh_offset + 4");
		patch_u64(SH_OFF(sh_offset), elfi.bid_off);
		file_case(&t, scratch, -EBADMSG, WANT_ANY, "sh_offset at the build-id note");
		unpatch(SH_OFF(sh_offset), 8);
	}
	{
		static const uint32_t types[] = { SHT_NULL, SHT_PROGBITS, SHT_NOBITS, SHT_STRTAB, 0x6fffffffu,
						  0xffffffffu };

		for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
			patch_u32(SH_OFF(sh_type), types[i]);
			file_case(&t, scratch, -EBADMSG, WANT_ANY, "sh_type 0x%x", types[i]);
		}
		/* SHT_DYNAMIC: read as the dynamic section it claims to be, its notes unread. */
		patch_u32(SH_OFF(sh_type), SHT_DYNAMIC);
		file_case(&t, scratch, 1, WANT_SUBSET, "sh_type SHT_DYNAMIC");
		unpatch(SH_OFF(sh_type), 4);
	}
	{
		static const uint64_t aligns[] = { 0, 1, 2, 3, 7, 16, 4096, 0x8000000000000000ull,
						   0xffffffffffffffffull };

		for (size_t i = 0; i < ARRAY_SIZE(aligns); i++) {
			patch_u64(SH_OFF(sh_addralign), aligns[i]);
			file_case(&t, scratch, 0, WANT_SAME, "sh_addralign 0x%" PRIx64 " (read as 4)", aligns[i]);
		}
		/*
		 * 8: these notes (88 and 2376 bytes, owner "LUO") are also a
		 * valid 8-aligned run as glibc and libelf lay one out; manifest.c
		 * reads the owner padded to 8 and refuses. Either is allowed here.
		 */
		patch_u64(SH_OFF(sh_addralign), 8);
		file_case(&t, scratch, 1, WANT_SAME, "sh_addralign 8");
		unpatch(SH_OFF(sh_addralign), 8);
	}
	{
		/* Another name: not .note.luo any more, its notes are not read. */
		patch_u32(SH_OFF(sh_name), 0);
		file_case(&t, scratch, 0, WANT_SUBSET, "sh_name 0");
		patch_u32(SH_OFF(sh_name), 0xffffffffu);
		file_case(&t, scratch, 0, WANT_SUBSET, "sh_name 0xffffffff");
		unpatch(SH_OFF(sh_name), 4);
		/* Other fields are not looked at. */
		patch_u64(SH_OFF(sh_flags), 0xffffffffffffffffull);
		patch_u64(SH_OFF(sh_entsize), 0xffffffffffffffffull);
		patch_u32(SH_OFF(sh_link), 0xffffffffu);
		patch_u32(SH_OFF(sh_info), 0xffffffffu);
		file_case(&t, scratch, 1, WANT_SAME, "sh_flags, sh_entsize, sh_link, sh_info all ones");
		unpatch(sh, sizeof(ElfW(Shdr)));
	}
	/* Random bytes in .note.luo's header and in the others. */
	for (unsigned it = 0; it < 300 * fuzz_scale; it++) {
		size_t at = (rnd() & 1) ? sh + rnd_below(sizeof(ElfW(Shdr)))
					: elfi.shoff + rnd_below(elfi.shnum * elfi.shentsize);
		uint8_t b = (uint8_t)rnd();

		patch(at, &b, 1);
		file_case(&t, scratch, 1, WANT_ANY, "section headers: byte 0x%zx = 0x%02x (random %u)", at, b, it);
		unpatch(at, 1);
	}
#undef SH_OFF
	tally_print("corrupted section headers (.note.luo: size, offset, type, alignment, name; random bytes)",
		    &t, t0);
}

static void files_ehdr(void)
{
	struct file_tally t = { 0 };
	double t0 = now_s();
	ElfW(Ehdr) eh;

	memcpy(&eh, orig, sizeof(eh));
#define EH_OFF(field) offsetof(ElfW(Ehdr), field)
	{
		const uint16_t shnums[] = { 0, 1, (uint16_t)(eh.e_shnum - 1), (uint16_t)(eh.e_shnum + 1),
					    (uint16_t)elfi.luo_idx, 0xff00, 0xffff };

		for (size_t i = 0; i < ARRAY_SIZE(shnums); i++) {
			patch_u16(EH_OFF(e_shnum), shnums[i]);
			file_case(&t, scratch, 1, WANT_SUBSET, "e_shnum %u", shnums[i]);
		}
		unpatch(EH_OFF(e_shnum), 2);
	}
	{
		const uint64_t shoffs[] = { 0, 1, 8, eh.e_shoff + 1, eh.e_shoff - 64, eh.e_shoff + 64, orig_size - 1,
					    orig_size, orig_size + 4096, 0x7fffffffffffffffull,
					    0xffffffffffffffffull, 0xffffffffffffffc0ull };

		for (size_t i = 0; i < ARRAY_SIZE(shoffs); i++) {
			patch_u64(EH_OFF(e_shoff), shoffs[i]);
			file_case(&t, scratch, 1, WANT_SUBSET, "e_shoff 0x%" PRIx64, shoffs[i]);
		}
		unpatch(EH_OFF(e_shoff), 8);
	}
	{
		const uint16_t strndx[] = { 0, 1, (uint16_t)elfi.luo_idx, (uint16_t)(eh.e_shnum - 1), eh.e_shnum,
					    SHN_LORESERVE, SHN_XINDEX };

		for (size_t i = 0; i < ARRAY_SIZE(strndx); i++) {
			patch_u16(EH_OFF(e_shstrndx), strndx[i]);
			file_case(&t, scratch, 1, WANT_SUBSET, "e_shstrndx %u", strndx[i]);
		}
		unpatch(EH_OFF(e_shstrndx), 2);
	}
	{
		const uint16_t entsizes[] = { 0, 1, 32, 63, 65, 128, 0xffff };

		for (size_t i = 0; i < ARRAY_SIZE(entsizes); i++) {
			patch_u16(EH_OFF(e_shentsize), entsizes[i]);
			file_case(&t, scratch, 1, WANT_SUBSET, "e_shentsize %u", entsizes[i]);
		}
		unpatch(EH_OFF(e_shentsize), 2);
	}
	/* Section 0's fields (extended numbering: sh_size = shnum, sh_link = shstrndx). */
	{
		size_t s0 = elfi.shoff;

		patch_u16(EH_OFF(e_shnum), 0);
		patch_u64(s0 + offsetof(ElfW(Shdr), sh_size), 0xffffffffull);
		file_case(&t, scratch, 1, WANT_SUBSET, "e_shnum 0, section 0 sh_size 0xffffffff");
		patch_u64(s0 + offsetof(ElfW(Shdr), sh_size), 70000);
		file_case(&t, scratch, 1, WANT_SUBSET, "e_shnum 0, section 0 sh_size 70000");
		patch_u64(s0 + offsetof(ElfW(Shdr), sh_size), elfi.shnum);
		file_case(&t, scratch, 1, WANT_SUBSET, "e_shnum 0, section 0 sh_size = the real count");
		unpatch(s0, sizeof(ElfW(Shdr)));
		unpatch(EH_OFF(e_shnum), 2);
		patch_u16(EH_OFF(e_shstrndx), SHN_XINDEX);
		patch_u32(s0 + offsetof(ElfW(Shdr), sh_link), 0xffffffffu);
		file_case(&t, scratch, 1, WANT_SUBSET, "e_shstrndx SHN_XINDEX, sh_link 0xffffffff");
		patch_u32(s0 + offsetof(ElfW(Shdr), sh_link), (uint32_t)elfi.shstrndx);
		file_case(&t, scratch, 1, WANT_SUBSET, "e_shstrndx SHN_XINDEX, sh_link = the real index");
		unpatch(s0, sizeof(ElfW(Shdr)));
		unpatch(EH_OFF(e_shstrndx), 2);
	}
	/* Identification: another class or byte order, bad magic, versions. */
	{
		uint8_t b;

		b = sizeof(void *) == 8 ? ELFCLASS32 : ELFCLASS64;
		patch(EI_CLASS, &b, 1);
		file_case(&t, scratch, -ENOEXEC, WANT_ANY, "EI_CLASS of the other class");
		b = ELFCLASSNONE;
		patch(EI_CLASS, &b, 1);
		file_case(&t, scratch, -ENOEXEC, WANT_ANY, "EI_CLASS none");
		b = 7;
		patch(EI_CLASS, &b, 1);
		file_case(&t, scratch, -ENOEXEC, WANT_ANY, "EI_CLASS 7");
		unpatch(EI_CLASS, 1);
		b = orig[EI_DATA] == ELFDATA2LSB ? ELFDATA2MSB : ELFDATA2LSB;
		patch(EI_DATA, &b, 1);
		file_case(&t, scratch, -ENOEXEC, WANT_ANY, "EI_DATA of the other byte order");
		b = ELFDATANONE;
		patch(EI_DATA, &b, 1);
		file_case(&t, scratch, -ENOEXEC, WANT_ANY, "EI_DATA none");
		unpatch(EI_DATA, 1);
		for (size_t i = 0; i < SELFMAG; i++) {
			b = orig[i] ^ 0x20;
			patch(i, &b, 1);
			file_case(&t, scratch, -ENOEXEC, WANT_ANY, "magic byte %zu", i);
			unpatch(i, 1);
		}
		b = 0xee;
		patch(EI_VERSION, &b, 1);
		file_case(&t, scratch, 1, WANT_SUBSET, "EI_VERSION 0xee");
		unpatch(EI_VERSION, 1);
		patch_u32(EH_OFF(e_version), 0xeeeeeeeeu);
		file_case(&t, scratch, 1, WANT_SUBSET, "e_version 0xeeeeeeee");
		unpatch(EH_OFF(e_version), 4);
		patch_u16(EH_OFF(e_machine), EM_NONE);
		file_case(&t, scratch, 1, WANT_SUBSET, "e_machine EM_NONE");
		unpatch(EH_OFF(e_machine), 2);
	}
	/* Random bytes in the ELF header. */
	for (unsigned it = 0; it < 200 * fuzz_scale; it++) {
		size_t at = rnd_below(sizeof(ElfW(Ehdr)));
		uint8_t b = (uint8_t)rnd();

		patch(at, &b, 1);
		file_case(&t, scratch, 1, WANT_ANY, "ELF header: byte %zu = 0x%02x (random %u)", at, b, it);
		unpatch(at, 1);
	}
#undef EH_OFF
	tally_print("corrupted ELF header (e_shnum, e_shoff, e_shstrndx, e_shentsize, class, byte order, magic; "
		    "random bytes)",
		    &t, t0);
}

static void files_not_elf(void)
{
	struct file_tally t = { 0 };
	char path[PATH_MAX + 32], fifo[PATH_MAX + 32], link[PATH_MAX + 32];
	struct luo_manifest *m = NULL;
	char reason[LUO_REASON_MAX];
	uint8_t id[LUO_ABI_BUILD_ID_MAX];
	size_t id_len;
	double t0 = now_s();
	int fd, wfd;

	snprintf(path, sizeof(path), "%s/empty", tmpdir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	close(fd);
	file_case(&t, path, -ENOEXEC, WANT_ANY, "an empty file");
	CHECK_ERR(luo_elf_build_id(path, id, sizeof(id), &id_len), ENOEXEC);

	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	CHECK(fd >= 0);
	write_all(fd, "#!/bin/sh\necho hello\n", 21, 0);
	close(fd);
	file_case(&t, path, -ENOEXEC, WANT_ANY, "a shell script");

	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	CHECK(fd >= 0);
	write_all(fd, orig, 16, 0); /* e_ident only */
	close(fd);
	file_case(&t, path, -ENOEXEC, WANT_ANY, "e_ident alone");

	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	CHECK(fd >= 0);
	write_all(fd, "!<arch>\n", 8, 0);
	close(fd);
	file_case(&t, path, -ENOEXEC, WANT_ANY, "an empty ar archive");
	unlink(path);

	file_case(&t, tmpdir, -EISDIR, WANT_ANY, "a directory");
	CHECK_ERR(luo_elf_build_id(tmpdir, id, sizeof(id), &id_len), EISDIR);
	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	file_case(&t, path, -ENOENT, WANT_ANY, "a missing file");
	CHECK_ERR(luo_elf_build_id(path, id, sizeof(id), &id_len), ENOENT);
	snprintf(path, sizeof(path), "%s/", scratch);
	file_case(&t, path, -ENOTDIR, WANT_ANY, "a file named as a directory");
	file_case(&t, "/dev/null", -ENOEXEC, WANT_ANY, "/dev/null");
	file_case(&t, "", -ENOENT, WANT_ANY, "an empty path");
	{
		char *longp = malloc(PATH_MAX + 16);

		CHECK(longp);
		memset(longp, 'a', PATH_MAX + 8);
		longp[0] = '/';
		longp[PATH_MAX + 8] = '\0';
		file_case(&t, longp, -ENAMETOOLONG, WANT_ANY, "a path longer than PATH_MAX");
		free(longp);
	}

	/* A FIFO with a writer (open() would wait for one otherwise). */
	snprintf(fifo, sizeof(fifo), "%s/fifo", tmpdir);
	CHECK(mkfifo(fifo, 0600) == 0);
	wfd = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	CHECK(wfd >= 0);
	file_case(&t, fifo, -ENOEXEC, WANT_ANY, "a FIFO");
	close(wfd);
	unlink(fifo);

	/* A symlink to the binary: the binary. */
	snprintf(link, sizeof(link), "%s/link", tmpdir);
	CHECK(symlink(scratch, link) == 0);
	file_case(&t, link, 0, WANT_SAME, "a symlink to the binary");
	unlink(link);

	if (geteuid() != 0) {
		CHECK(chmod(scratch, 0) == 0);
		file_case(&t, scratch, -EACCES, WANT_ANY, "an unreadable file");
		CHECK(chmod(scratch, 0600) == 0);
	}

	/* Bad arguments. */
	set_case("read_file(NULL)");
	CHECK_ERR(luo_manifest_read_file(NULL, &m, reason, sizeof(reason)), EINVAL);
	CHECK_ERR(luo_manifest_read_file(scratch, NULL, reason, sizeof(reason)), EINVAL);
	luo_manifest_free(NULL);

	/* Build-ids of damaged files. */
	{
		uint32_t h[3];

		memcpy(h, orig + elfi.bid_off, sizeof(h));
		set_case("build-id note damaged");
		patch_u32(elfi.bid_off + 4, LUO_ABI_BUILD_ID_MAX + 1);
		CHECK_ERR(luo_elf_build_id(scratch, id, sizeof(id), &id_len), ENODATA);
		patch_u32(elfi.bid_off + 4, 0xffffffffu);
		CHECK_ERR(luo_elf_build_id(scratch, id, sizeof(id), &id_len), ENODATA);
		unpatch(elfi.bid_off + 4, 4);
		patch_u32(elfi.bid_off, 0xfffffffcu);
		CHECK_ERR(luo_elf_build_id(scratch, id, sizeof(id), &id_len), ENODATA);
		unpatch(elfi.bid_off, 4);
		patch_u32(elfi.bid_off + 8, 0);
		CHECK_ERR(luo_elf_build_id(scratch, id, sizeof(id), &id_len), ENODATA);
		unpatch(elfi.bid_off + 8, 4);
		CHECK_OK(luo_elf_build_id(scratch, id, sizeof(id), &id_len));
		CHECK(id_len == h[1]);
		n_cases += 5;
	}
	tally_print("files that are not ELF of this machine, or not files (empty, script, directory, missing, FIFO, "
		    "/dev/null, class, byte order)",
		    &t, t0);
}

/* Write @n bytes of @p to @path, replacing it. */
static void put_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0700);

	CHECK(fd >= 0);
	write_all(fd, p, n, 0);
	close(fd);
}

/*
 * Libraries found through LD_LIBRARY_PATH: a candidate that is not ELF of
 * this machine (or not a file) is skipped as ld.so skips it; one with bad
 * notes refuses the manifest; a good one adds nothing new (its entries are
 * the binary's own, declared identically twice).
 */
static void files_libpath(void)
{
	const char *old = getenv("LD_LIBRARY_PATH");
	char *saved = old ? strdup(old) : NULL, *list, *longdir;
	char dir[PATH_MAX + 32], lib[PATH_MAX + 64], fifo_lib[PATH_MAX + 64];
	struct file_tally t = { 0 };
	uint8_t *copy = malloc(orig_size);
	size_t at = elfi.luo_off + elfi.luo_notes[0] + 4;
	double t0 = now_s();
	uint32_t bad = 1;
	int wfd;

	CHECK(copy && (!old || saved));
	snprintf(dir, sizeof(dir), "%s/lib", tmpdir);
	CHECK(mkdir(dir, 0700) == 0);
	longdir = malloc(PATH_MAX + 100);
	CHECK(longdir);
	memset(longdir, 'd', PATH_MAX + 99);
	longdir[0] = '/';
	longdir[PATH_MAX + 99] = '\0';
	list = malloc(2 * PATH_MAX + 300);
	CHECK(list);
	/* Empty entries, one too long, one missing, one with '$', then ours. */
	snprintf(list, 2 * PATH_MAX + 300, "::%s:/nonexistent-luo-test:$PLATFORM:%s%s%s", longdir, dir, old ? ":" : "",
		 old ? old : "");
	CHECK(setenv("LD_LIBRARY_PATH", list, 1) == 0);
	/* Every library this binary needs, as one name in turn: libc.so.6 is always there. */
	snprintf(lib, sizeof(lib), "%s/libc.so.6", dir);

	file_case(&t, scratch, 0, WANT_SAME, "LD_LIBRARY_PATH: odd entries, no candidate");
	put_file(lib, "not an ELF file\n", 16);
	file_case(&t, scratch, 0, WANT_SAME, "LD_LIBRARY_PATH: libc.so.6 not ELF (skipped)");
	memcpy(copy, orig, orig_size);
	copy[EI_CLASS] = sizeof(void *) == 8 ? ELFCLASS32 : ELFCLASS64;
	put_file(lib, copy, orig_size);
	file_case(&t, scratch, 0, WANT_SAME, "LD_LIBRARY_PATH: libc.so.6 of the other class (skipped)");
	put_file(lib, orig, orig_size);
	file_case(&t, scratch, 0, WANT_SAME, "LD_LIBRARY_PATH: libc.so.6 = this binary (same notes twice)");
	memcpy(copy, orig, orig_size);
	memcpy(copy + at, &bad, 4);
	put_file(lib, copy, orig_size);
	file_case(&t, scratch, -EBADMSG, WANT_ANY, "LD_LIBRARY_PATH: libc.so.6 with a bad note");
	put_file(lib, orig, 64);
	file_case(&t, scratch, 1, WANT_SUBSET, "LD_LIBRARY_PATH: libc.so.6 = an ELF header alone");
	unlink(lib);
	CHECK(mkdir(lib, 0700) == 0);
	file_case(&t, scratch, 0, WANT_SAME, "LD_LIBRARY_PATH: libc.so.6 a directory (skipped)");
	rmdir(lib);
	snprintf(fifo_lib, sizeof(fifo_lib), "%s", lib);
	CHECK(mkfifo(fifo_lib, 0600) == 0);
	wfd = open(fifo_lib, O_RDWR | O_NONBLOCK | O_CLOEXEC); /* without a writer, open() would block */
	CHECK(wfd >= 0);
	file_case(&t, scratch, 0, WANT_SAME, "LD_LIBRARY_PATH: libc.so.6 a FIFO with a writer (skipped)");
	close(wfd);
	unlink(fifo_lib);
	CHECK(rmdir(dir) == 0);

	if (saved)
		CHECK(setenv("LD_LIBRARY_PATH", saved, 1) == 0);
	else
		CHECK(unsetenv("LD_LIBRARY_PATH") == 0);
	free(saved);
	free(list);
	free(longdir);
	free(copy);
	tally_print("libraries through LD_LIBRARY_PATH (not ELF, other class, directory, FIFO, bad notes, duplicate)",
		    &t, t0);
}

static void group_files(void)
{
	char tmpl[] = "/tmp/test-manifest-bad.XXXXXX";
	uint8_t id[LUO_ABI_BUILD_ID_MAX];
	size_t id_len = 0;
	char *d;

	read_whole(self_path, &orig, &orig_size);
	parse_self_elf();
	d = mkdtemp(tmpl);
	CHECK(d);
	snprintf(tmpdir, sizeof(tmpdir), "%s", d);
	snprintf(scratch, sizeof(scratch), "%s/bin", tmpdir);
	printf("#   scratch files in %s (left there if the test dies)\n", tmpdir);
	scratch_fd = open(scratch, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0700);
	CHECK(scratch_fd >= 0);
	write_all(scratch_fd, orig, orig_size, 0);

	{
		struct file_tally t = { 0 };

		file_case(&t, scratch, 0, WANT_SAME, "an unchanged copy");
		CHECK_OK(luo_elf_build_id(scratch, id, sizeof(id), &id_len));
		CHECK(id_len == self_manifest->build_id_len && memcmp(id, self_manifest->build_id, id_len) == 0);
	}
	files_truncate();
	files_notes();
	files_shdr();
	files_ehdr();
	files_not_elf();
	files_libpath();

	/* The copy is intact after all the patching. */
	{
		struct file_tally t = { 0 };

		file_case(&t, scratch, 0, WANT_SAME, "the copy, restored");
	}
	close(scratch_fd);
	unlink(scratch);
	CHECK(rmdir(tmpdir) == 0);
	free(orig);
}

/*
 * Every reader without a reason buffer (NULL, 0): luo_reasonf() allows it.
 * Last, so that a crash here leaves the other groups' results printed.
 */
static void null_reasons(void)
{
	struct luo_manifest *m = NULL;
	char path[PATH_MAX + 32];
	unsigned n = 0;

	set_case("read_file(self, reason NULL)");
	CHECK_OK(luo_manifest_read_file(self_path, &m, NULL, 0));
	EXPECT(manifest_same(m, self_manifest), "another manifest");
	luo_manifest_free(m);
	n++;
	{
		/* A library candidate skipped on the way (valgrind sets LD_LIBRARY_PATH=/usr/lib/debug). */
		const char *old = getenv("LD_LIBRARY_PATH");
		char *saved = old ? strdup(old) : NULL;

		CHECK(!old || saved);
		CHECK(setenv("LD_LIBRARY_PATH", "/nonexistent-luo-test", 1) == 0);
		set_case("read_file(self, reason NULL, a library candidate missing)");
		CHECK_OK(luo_manifest_read_file(self_path, &m, NULL, 0));
		EXPECT(manifest_same(m, self_manifest), "another manifest");
		luo_manifest_free(m);
		n++;
		if (saved)
			CHECK(setenv("LD_LIBRARY_PATH", saved, 1) == 0);
		else
			CHECK(unsetenv("LD_LIBRARY_PATH") == 0);
		free(saved);
	}
	snprintf(path, sizeof(path), "/nonexistent/%s", "x");
	set_case("read_file(missing, reason NULL)");
	CHECK_ERR(luo_manifest_read_file(path, &m, NULL, 0), ENOENT);
	n++;
	set_case("read_self(reason NULL)");
	CHECK_OK(luo_manifest_read_self(&m, NULL, 0));
	luo_manifest_free(m);
	n++;
	set_case("read_pid(getpid(), reason NULL)");
	CHECK_OK(luo_manifest_read_pid(getpid(), &m, NULL, 0));
	luo_manifest_free(m);
	n++;
	printf("ok - readers without a reason buffer: %u calls\n", n);
}

/* ------------------------------------------------------------------------ */

int main(void)
{
	const char *scale = getenv("LUO_TEST_FUZZ_SCALE");
	struct sigaction sa = { .sa_handler = on_fatal };
	double t0 = now_s(), t;

	test_begin();
	setvbuf(stdout, NULL, _IOLBF, 0);
	verbose = getenv("LUO_TEST_VERBOSE") != NULL;
	if (scale && atoi(scale) > 0)
		fuzz_scale = (unsigned)atoi(scale);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGFPE, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);

	group_self();

	t = now_s();
	n_cases = 0;
	raw_single();
	raw_sizes();
	raw_names();
	raw_kinds_flags();
	raw_ranges();
	raw_duplicates();
	raw_alignment();
	raw_layouts();
	printf("ok - note parser, one case per rule: %u cases, strict and loose (%.1f s)\n", n_cases, now_s() - t);
	t = now_s();
	n_cases = 0;
	raw_limits();
	printf("ok - note parser, limits (entries, layouts, bytes, reason buffers): %u cases (%.1f s)\n", n_cases,
	       now_s() - t);
	raw_random();

	group_files();
	null_reasons();

	luo_manifest_free(self_manifest);
	check_no_fd_leak();
	if (n_failed) {
		printf("not ok - %d failed checks\n", n_failed);
		return 1;
	}
	printf("ok - all groups passed (%.1f s)\n", now_s() - t0);
	return 0;
}
