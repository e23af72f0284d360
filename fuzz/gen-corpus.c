/* SPDX-License-Identifier: MIT */
/*
 * DOC: gen-corpus, the good seeds of the fuzz targets
 *
 *   gen-corpus TARGET DIR   write seeds for TARGET (blob, manifest, agent,
 *                           heap, kvcache) into DIR, one file each
 *   gen-corpus bad-blobs DIR   tests/bad-blobs/build-id-one-byte-long.dtb
 *
 * The seeds are inputs a parser must accept (and a few near misses), in
 * each target's input encoding (see the DOC of each fuzz-*.c): valid
 * blobs of both formats at their limits, note runs of every kind, agent
 * conversations, heaps in realistic states, memcached sessions. fuzz/run.sh
 * --regen merges them with what fuzz/corpus/ holds (libFuzzer -merge=1).
 */

#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fdt-script.h"
#include "heap.h"
#include "luo/agent.h"

static const char *out_dir;
static int n_written;

static void write_seed(const char *name, const void *buf, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", out_dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	n_written++;
}

/* ------------------------------------------------------------------------ */
/* blob: scripts (mode byte 1) and the trees they build (mode byte 0)        */

struct sc {
	uint8_t buf[65536];
	size_t len;
};

static void sc_byte(struct sc *s, uint8_t b)
{
	if (s->len >= sizeof(s->buf))
		abort();
	s->buf[s->len++] = b;
}

static int node_idx(const char *name)
{
	for (size_t i = 0; i < FDT_SCRIPT_N_NODE_NAMES; i++)
		if (strcmp(fdt_script_node_names[i], name) == 0)
			return (int)i;
	abort();
}

static int prop_idx(const char *name)
{
	for (size_t i = 0; i < FDT_SCRIPT_N_PROP_NAMES; i++)
		if (strcmp(fdt_script_prop_names[i], name) == 0)
			return (int)i;
	abort();
}

static void sc_begin(struct sc *s, const char *name)
{
	sc_byte(s, FDT_OP_BEGIN);
	sc_byte(s, (uint8_t)node_idx(name));
}

static void sc_begin_n(struct sc *s, uint8_t n) /* "n<n>", n >= FDT_SCRIPT_N_NODE_NAMES */
{
	sc_byte(s, FDT_OP_BEGIN);
	sc_byte(s, n);
}

static void sc_end(struct sc *s)
{
	sc_byte(s, FDT_OP_END);
}

static void sc_prop(struct sc *s, const char *name, const void *v, size_t len)
{
	sc_byte(s, FDT_OP_PROP);
	sc_byte(s, (uint8_t)prop_idx(name));
	for (int i = 0; i < 2; i++) { /* len, then cap: the same */
		sc_byte(s, (uint8_t)len);
		sc_byte(s, (uint8_t)(len >> 8));
	}
	for (size_t i = 0; i < len; i++)
		sc_byte(s, ((const uint8_t *)v)[i]);
}

static void sc_str(struct sc *s, const char *name, const char *v)
{
	sc_prop(s, name, v, strlen(v) + 1);
}

static void sc_u32(struct sc *s, const char *name, uint32_t v)
{
	sc_byte(s, FDT_OP_U32);
	sc_byte(s, (uint8_t)prop_idx(name));
	for (int i = 3; i >= 0; i--)
		sc_byte(s, (uint8_t)(v >> (8 * i)));
}

static void sc_u64(struct sc *s, const char *name, uint64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * (7 - i)));
	sc_prop(s, name, b, 8);
}

struct blob_knobs {
	uint32_t format;
	size_t build_id_len;
	size_t n_sessions, n_files, n_components;
	size_t session_name_len, handler_len, comp_name_len, data_len;
	bool dropped;
	bool fields; /* components as declared state: a "fields" subnode, no data */
};

static void fill(char *buf, size_t n, char c)
{
	memset(buf, c, n);
	buf[n] = '\0';
}

static void blob_script(struct sc *s, const struct blob_knobs *k)
{
	uint8_t build_id[LUO_ABI_BUILD_ID_MAX + 8], data[512];
	static const char argv[] = "luo-test-old-image\0--flag";
	char name[128];
	uint32_t fd = 3;

	for (size_t i = 0; i < sizeof(build_id); i++)
		build_id[i] = (uint8_t)(0x11 * (i + 1));
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)i;
	s->len = 0;
	sc_byte(s, 1); /* script mode */
	sc_str(s, LUO_ABI_PROP_COMPATIBLE, LUO_ABI_COMPATIBLE);
	sc_u32(s, LUO_ABI_PROP_FORMAT, k->format);
	sc_u64(s, LUO_ABI_PROP_LU_NUMBER, 7);
	sc_str(s, LUO_ABI_PROP_PRODUCER_PATH, "/usr/libexec/luo-test-old-image");
	sc_prop(s, LUO_ABI_PROP_PRODUCER_BUILD_ID, build_id, k->build_id_len);
	if (k->format >= 2)
		sc_prop(s, LUO_ABI_PROP_PRODUCER_ARGV, argv, sizeof(argv));
	sc_u64(s, LUO_ABI_PROP_FREEZE_NS, 123456789);
	sc_u64(s, LUO_ABI_PROP_SERIALIZE_NS, 123999999);
	sc_begin(s, LUO_ABI_NODE_SESSIONS);
	for (size_t i = 0; i < k->n_sessions; i++) {
		sc_begin(s, i == 0 ? "s0" : i == 1 ? "s1" : "s2");
		fill(name, k->session_name_len, (char)('a' + i));
		sc_str(s, LUO_ABI_PROP_SESSION_NAME, name);
		for (size_t j = 0; j < k->n_files; j++) {
			sc_begin(s, j == 0 ? "f0" : j == 1 ? "f1" : "f2");
			sc_u64(s, LUO_ABI_PROP_FILE_TOKEN, 100 + j);
			sc_u32(s, LUO_ABI_PROP_FILE_FD, fd++);
			fill(name, k->handler_len, 'h');
			if (k->handler_len == 0)
				strcpy(name, j % 2 ? "fd" : "memfd");
			sc_str(s, LUO_ABI_PROP_FILE_HANDLER, name);
			sc_u32(s, LUO_ABI_PROP_FILE_HANDLER_VERSION, 1);
			sc_prop(s, LUO_ABI_PROP_FILE_DATA, data, k->data_len);
			sc_end(s);
		}
		sc_end(s);
	}
	sc_end(s);
	if (k->format >= 2 && (k->n_components || k->dropped)) {
		sc_begin(s, LUO_ABI_NODE_COMPONENTS);
		for (size_t i = 0; i < k->n_components; i++) {
			sc_begin(s, i == 0 ? "c0" : i == 1 ? "c1" : "c2");
			fill(name, k->comp_name_len, (char)('A' + i));
			sc_str(s, LUO_ABI_PROP_SESSION_NAME, name); /* "name" */
			sc_u32(s, LUO_ABI_PROP_COMPONENT_VERSION, 1 + (uint32_t)i);
			if (k->fields) {
				/* tag, value: a u64, an i16, a bool, a string (abi.h, "Declared fields") */
				static const uint8_t count[12] = { 0, 0, 0, LUO_ABI_FIELD_UINT, 0, 0, 0, 0, 0, 0, 1, 2 };
				static const uint8_t temp[6] = { 0, 0, 0, LUO_ABI_FIELD_INT, 0xff, 0xfe };
				static const uint8_t on[5] = { 0, 0, 1, LUO_ABI_FIELD_BOOL, 1 };
				static const uint8_t label[9] = { 0, 0, 0, LUO_ABI_FIELD_STRING, 'l', 'a', 'b', 'e', 'l' };

				sc_begin(s, LUO_ABI_NODE_COMPONENT_FIELDS);
				sc_prop(s, "count", count, sizeof(count));
				sc_prop(s, "temp", temp, sizeof(temp));
				sc_prop(s, "on", on, sizeof(on));
				sc_prop(s, "label", label, sizeof(label));
				sc_end(s);
			} else {
				sc_prop(s, LUO_ABI_PROP_FILE_DATA, data, k->data_len); /* "data" */
			}
			sc_end(s);
		}
		if (k->dropped) {
			sc_begin_n(s, 200);
			sc_str(s, LUO_ABI_PROP_SESSION_NAME, "old.optional");
			sc_prop(s, LUO_ABI_PROP_COMPONENT_DROPPED, "", 0);
			sc_end(s);
		}
		sc_end(s);
	}
}

static void blob_seed(const char *name, const struct blob_knobs *k)
{
	static uint8_t tree[1 + (512u << 10)];
	struct sc *s = calloc(1, sizeof(*s));
	char fname[256];

	if (!s)
		abort();
	blob_script(s, k);
	snprintf(fname, sizeof(fname), "script-%s", name);
	write_seed(fname, s->buf, s->len);
	tree[0] = 0; /* raw mode */
	if (fdt_script_build(s->buf + 1, s->len - 1, tree + 1, sizeof(tree) - 1) != 0)
		abort();
	snprintf(fname, sizeof(fname), "raw-%s", name);
	write_seed(fname, tree, 1 + fdt_totalsize(tree + 1));
	free(s);
}

/* tests/bad-blobs/build-id-one-byte-long.dtb: nothing wrong but a 65-byte build-id. */
static void gen_bad_blobs(void)
{
	static uint8_t tree[1 + (512u << 10)];
	const struct blob_knobs k = { .format = 2, .build_id_len = LUO_ABI_BUILD_ID_MAX + 1 };
	struct sc *s = calloc(1, sizeof(*s));

	if (!s)
		abort();
	blob_script(s, &k);
	if (fdt_script_build(s->buf + 1, s->len - 1, tree, sizeof(tree)) != 0)
		abort();
	write_seed("build-id-one-byte-long.dtb", tree, fdt_totalsize(tree));
	free(s);
}

static void gen_blob(void)
{
	const struct blob_knobs base = { .format = 2, .build_id_len = 20, .n_sessions = 1, .n_files = 1,
					 .n_components = 1, .session_name_len = 8, .comp_name_len = 12, .data_len = 16 };
	struct blob_knobs k;

	k = base;
	k.format = 1;
	k.n_components = 0;
	blob_seed("format1", &k);
	k.n_sessions = 0;
	blob_seed("format1-empty", &k);
	blob_seed("format2", &base);
	k = base;
	k.n_sessions = 3;
	k.n_files = 3;
	k.n_components = 3;
	k.dropped = true;
	blob_seed("format2-3x3", &k);
	/* Every string and length at its maximum: one byte more is refused. */
	k = base;
	k.build_id_len = LUO_ABI_BUILD_ID_MAX;
	k.session_name_len = 63;
	k.handler_len = 31;
	k.comp_name_len = LUO_ABI_NOTE_NAME_SIZE - 1;
	k.data_len = 256;
	blob_seed("format2-limits", &k);
	/*
	 * Near misses, refused: one byte over. (No build-id one byte over:
	 * fuzz-blob-broken must find that one by itself; it is in
	 * tests/bad-blobs.)
	 */
	k = base;
	k.session_name_len = 64;
	blob_seed("session-name-64", &k);
	k = base;
	k.build_id_len = 0;
	k.n_sessions = 0;
	k.n_components = 0;
	blob_seed("no-build-id", &k);
	k = base;
	k.format = 3;
	blob_seed("format3", &k);
	k = base;
	k.n_components = 2;
	k.fields = true;
	blob_seed("format2-fields", &k);
}


/* ------------------------------------------------------------------------ */
/* fields: a "fields" node of fuzz-fields.c's struct at each version          */

/* A field property: the wire tag, then @size bytes of @v, big-endian. */
static void sc_field(struct sc *s, const char *name, uint32_t tag, uint64_t v, size_t size)
{
	uint8_t b[12];

	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(tag >> (8 * (3 - i)));
	for (size_t i = 0; i < size; i++)
		b[4 + i] = (uint8_t)(v >> (8 * (size - 1 - i)));
	sc_prop(s, name, b, 4 + size);
}

static void gen_fields(void)
{
	static uint8_t tree[1 + (64u << 10)];

	for (uint32_t version = 1; version <= 4; version++) {
		struct sc *s = calloc(1, sizeof(*s));
		uint8_t str[4 + 5] = { 0, 0, 0, LUO_ABI_FIELD_STRING, 'h', 'e', 'l', 'l', 'o' };
		uint8_t bytes[4 + 8] = { 0, 0, 0, LUO_ABI_FIELD_BYTES, 1, 2, 3, 4, 5, 6, 7, 8 };
		char fname[64];

		if (!s)
			abort();
		sc_byte(s, (uint8_t)(4 | (version - 1))); /* a script, read at @version */
		sc_begin(s, LUO_ABI_NODE_COMPONENTS);
		sc_begin(s, "c0");
		sc_begin(s, LUO_ABI_NODE_COMPONENT_FIELDS);
		sc_field(s, "u8", LUO_ABI_FIELD_UINT, 200, 1);
		sc_field(s, "u16", LUO_ABI_FIELD_UINT, 65535, 2);
		if (version >= 2)
			sc_field(s, "u32", LUO_ABI_FIELD_UINT, 70000, 4);
		if (version <= 3)
			sc_field(s, "u64", LUO_ABI_FIELD_UINT, 1ull << 40, 8);
		sc_field(s, "i8", LUO_ABI_FIELD_INT, (uint8_t)-100, 1);
		sc_field(s, "i16", LUO_ABI_FIELD_INT | LUO_ABI_FIELD_WIRE_MUST_UNDERSTAND, (uint16_t)-300, 2);
		sc_field(s, "i32", LUO_ABI_FIELD_INT, (uint32_t)-70000, 4);
		if (version >= 3)
			sc_field(s, "i64", LUO_ABI_FIELD_INT, (uint64_t)-(1ll << 40), 8);
		sc_field(s, "flag", LUO_ABI_FIELD_BOOL, 1, 1);
		sc_prop(s, LUO_ABI_PROP_SESSION_NAME, str, sizeof(str));
		if (version >= 2)
			sc_prop(s, "blob", bytes, sizeof(bytes));
		sc_field(s, LUO_ABI_PROP_COMPONENT_VERSION, LUO_ABI_FIELD_UINT, version, 4);
		/* a field of a newer writer, dropped */
		sc_field(s, "count", LUO_ABI_FIELD_UINT, 5, 4);
		snprintf(fname, sizeof(fname), "script-v%u", version);
		write_seed(fname, s->buf, s->len);
		tree[0] = (uint8_t)(version - 1); /* raw */
		if (fdt_script_build(s->buf + 1, s->len - 1, tree + 1, sizeof(tree) - 1) != 0)
			abort();
		snprintf(fname, sizeof(fname), "raw-v%u", version);
		write_seed(fname, tree, 1 + fdt_totalsize(tree + 1));
		free(s);
	}
}

/* ------------------------------------------------------------------------ */
/* heap: operations (fuzz-heap.c's encoding), and overlays of real heaps     */

struct ops {
	uint8_t buf[4096];
	size_t len;
};

static void op_alloc(struct ops *o, uint16_t v)
{
	o->buf[o->len++] = 'a';
	o->buf[o->len++] = (uint8_t)v;
	o->buf[o->len++] = (uint8_t)(v >> 8);
}

static void op1(struct ops *o, char op, uint8_t arg)
{
	o->buf[o->len++] = (uint8_t)op;
	o->buf[o->len++] = arg;
}

/* Replay the 'a' and 'f' ops of @o on a fresh heap, as fuzz-heap does, to get the overlay. */
static void heap_seed(const char *name, const struct ops *o, bool with_overlay)
{
	size_t size = (size_t)luo_heap_region_size(8u * LUO_HEAP_CHUNK), n = 0;
	uint8_t *region = aligned_alloc(LUO_HEAP_PAGE, size), *seed, *live[32] = { 0 };
	struct luo_heap_geom g;
	char reason[256];

	if (!region)
		abort();
	memset(region, 0, size);
	if (luo_heap_format(region, size, &g, reason, sizeof(reason)) != 0)
		abort();
	for (size_t i = 0; i < o->len;) {
		uint8_t op = o->buf[i++];

		if (op == 'a') {
			uint16_t v = (uint16_t)(o->buf[i] | o->buf[i + 1] << 8);
			size_t bytes = v & 0x8000 ? 1 + (size_t)(v & 0x7fff) * 8 : 1 + (size_t)(v & 0x7fff);

			i += 2;
			if (live[n % 32])
				luo_heap_free(&g, live[n % 32], NULL, NULL);
			live[n % 32] = luo_heap_alloc(&g, bytes);
			n++;
		} else if (op == 'f') {
			uint8_t k = o->buf[i++] % 32;

			if (live[k])
				luo_heap_free(&g, live[k], NULL, NULL);
			live[k] = NULL;
		} else if (op == 'r' || op == 'b') {
			i += op == 'b' ? 2 : 1;
		}
	}
	/* After the overlay: use the handed-over heap (its slabs' lists are checked lazily), check it again. */
	static const uint8_t after[] = { 'c', 'a', 15, 0, 'a', 0xff, 0x1f, 'f', 1, 'a', 0x10, 0x80, 'f', 0, 'k' };
	seed = malloc(2 + o->len + sizeof(after) + g.data_offset);
	if (!seed)
		abort();
	n = o->len + (with_overlay ? sizeof(after) : 0);
	seed[0] = (uint8_t)n;
	seed[1] = (uint8_t)(n >> 8);
	memcpy(seed + 2, o->buf, o->len);
	if (with_overlay) {
		memcpy(seed + 2 + o->len, after, sizeof(after));
		memcpy(seed + 2 + n, region, g.data_offset);
	}
	write_seed(name, seed, 2 + n + (with_overlay ? g.data_offset : 0));
	free(seed);
	free(region);
}

static void gen_heap(void)
{
	static const uint16_t sizes[] = { 16, 17, 100, 128, 129, 1000, 4096, 8192, 9000, 16384, 32767, 32768 };
	struct ops o = { .len = 0 };

	/* Every class once, then runs, then frees, then a check and reuse. */
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		op_alloc(&o, (uint16_t)(sizes[i] - 1));
	heap_seed("classes", &o, false);
	heap_seed("classes-overlay", &o, true);
	op_alloc(&o, 0x8000 | 8192);  /* a run of one chunk */
	op_alloc(&o, 0x8000 | 20000); /* three chunks */
	for (uint8_t k = 0; k < 14; k += 2)
		op1(&o, 'f', k);
	o.buf[o.len++] = 'k';
	o.buf[o.len++] = 's';
	op1(&o, 'r', 1);
	heap_seed("runs-frees", &o, false);
	heap_seed("runs-frees-overlay", &o, true);
	/* Many small blocks of one class with frees in between: slab free lists. */
	o.len = 0;
	for (int i = 0; i < 40; i++) {
		op_alloc(&o, 31);
		if (i % 3 == 2)
			op1(&o, 'f', (uint8_t)(i - 1));
	}
	heap_seed("slab-lists", &o, false);
	heap_seed("slab-lists-overlay", &o, true);
	/* A full heap: runs until ENOMEM, then frees. */
	o.len = 0;
	for (int i = 0; i < 10; i++)
		op_alloc(&o, 0x8000 | 8191);
	for (uint8_t k = 0; k < 10; k += 3)
		op1(&o, 'f', k);
	heap_seed("full", &o, false);
	heap_seed("full-overlay", &o, true);
	/* Hostile: a double free, a bad free, a poke, then a check. */
	o.len = 0;
	op_alloc(&o, 15);
	op_alloc(&o, 15);
	op1(&o, 'f', 0);
	o.buf[o.len++] = 'b';
	o.buf[o.len++] = 0x10;
	o.buf[o.len++] = 0x01;
	o.buf[o.len++] = 'k';
	heap_seed("bad-free", &o, false);
}


/* ------------------------------------------------------------------------ */
/* manifest: note runs (fuzz-manifest.c: flag byte, then the notes) and ELF   */

struct run {
	uint8_t buf[16384];
	size_t len;
};

static void run_note(struct run *r, const char *owner, uint32_t type, const void *desc, uint32_t descsz, size_t align)
{
	uint32_t hdr[3] = { (uint32_t)strlen(owner) + 1, descsz, type };

	memcpy(r->buf + r->len, hdr, sizeof(hdr));
	r->len += sizeof(hdr);
	memcpy(r->buf + r->len, owner, hdr[0]);
	r->len += hdr[0];
	r->len = (r->len + align - 1) & ~(align - 1);
	memcpy(r->buf + r->len, desc, descsz);
	r->len += descsz;
	r->len = (r->len + align - 1) & ~(align - 1);
}

static void run_component(struct run *r, uint32_t kind, uint32_t flags, const char *name, uint32_t rmin, uint32_t rmax,
			  uint32_t wmin, uint32_t wmax, size_t align)
{
	struct luo_abi_note_component c = { .kind = kind, .flags = flags, .read_min = rmin, .read_max = rmax,
					     .write_min = wmin, .write_max = wmax };

	strncpy(c.name, name, sizeof(c.name) - 1);
	run_note(r, LUO_ABI_NOTE_OWNER, LUO_ABI_NOTE_COMPONENT, &c, sizeof(c), align);
}

static void run_layout(struct run *r, const char *comp, uint32_t version, size_t align)
{
	struct luo_abi_note_layout l = { .version = version, .struct_size = 24 };
	static const char *const names[] = { "count", "flags", "stamp" };
	static const char *const types[] = { "uint64_t", "uint32_t", "uint64_t" };
	static const uint32_t offs[] = { 0, 8, 16 }, sizes[] = { 8, 4, 8 };

	strncpy(l.component, comp, sizeof(l.component) - 1);
	for (int i = 0; i < 3; i++) {
		l.fields[i].offset = offs[i];
		l.fields[i].size = sizes[i];
		strcpy(l.fields[i].name, names[i]);
		strcpy(l.fields[i].type, types[i]);
	}
	run_note(r, LUO_ABI_NOTE_OWNER, LUO_ABI_NOTE_LAYOUT, &l, sizeof(l), align);
}

/* A LUO_ABI_NOTE_FIELDS note: the list of "counter" (abi.h, "Declared fields"). */
static void run_fields(struct run *r, const char *comp, uint32_t n_bad, size_t align)
{
	struct {
		struct luo_abi_note_fields h;
		struct luo_abi_note_fielddecl d[4];
	} f;
	static const char *const names[] = { "count", "temp", "on", "label" };
	static const uint32_t types[] = { LUO_ABI_FIELD_UINT, LUO_ABI_FIELD_INT, LUO_ABI_FIELD_BOOL,
					  LUO_ABI_FIELD_STRING };
	static const uint32_t offs[] = { 0, 8, 10, 11 }, sizes[] = { 8, 2, 1, 13 };

	memset(&f, 0, sizeof(f));
	strncpy(f.h.component, comp, sizeof(f.h.component) - 1);
	f.h.struct_size = 24;
	f.h.n_fields = 4 + n_bad; /* n_bad > 0: a count the size does not match */
	for (int i = 0; i < 4; i++) {
		strcpy(f.d[i].name, names[i]);
		f.d[i].type = types[i];
		f.d[i].offset = offs[i];
		f.d[i].size = sizes[i];
		f.d[i].from = 1 + (uint32_t)(i % 2);
		f.d[i].to = i == 3 ? 2 : LUO_ABI_FIELD_LATEST;
		f.d[i].flags = i == 0 ? LUO_ABI_FIELD_REQUIRED : i == 2 ? LUO_ABI_FIELD_MUST_UNDERSTAND : 0;
		f.d[i].deflt = i == 1 ? (uint64_t)-3 : 0;
	}
	run_note(r, LUO_ABI_NOTE_OWNER, LUO_ABI_NOTE_FIELDS, &f, sizeof(f), align);
}

static void notes_seed(const char *name, uint8_t flags, const struct run *r)
{
	uint8_t *b = malloc(1 + r->len);

	if (!b)
		abort();
	b[0] = flags;
	memcpy(b + 1, r->buf, r->len);
	write_seed(name, b, 1 + r->len);
	free(b);
}

static void full_run(struct run *r, size_t align, bool foreign)
{
	static const uint8_t gnu_build_id[20] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20 };

	r->len = 0;
	run_component(r, LUO_ABI_KIND_COMPONENT, 0, "counter", 1, 2, 1, 2, align);
	run_component(r, LUO_ABI_KIND_COMPONENT, LUO_ABI_FLAG_OPTIONAL, "stats", 2, 3, 2, 3, align);
	run_component(r, LUO_ABI_KIND_HANDLER, 0, "memfd", 1, 1, 1, 1, align);
	run_component(r, LUO_ABI_KIND_FORMAT, 0, "luo.handover", 1, 2, 1, 2, align);
	run_layout(r, "counter", 2, align);
	if (foreign)
		run_note(r, "GNU", NT_GNU_BUILD_ID, gnu_build_id, sizeof(gnu_build_id), align);
}

/* A minimal ELF64 file: header, .note.luo, .shstrtab, section headers. */
static void elf_seed(const char *name, const struct run *notes)
{
	static const char shstr[] = "\0.note.luo\0.shstrtab";
	uint8_t buf[32768];
	Elf64_Ehdr *eh = (Elf64_Ehdr *)(buf + 1);
	Elf64_Shdr sh[3];
	size_t off = sizeof(*eh), notes_off, str_off, sh_off;

	memset(buf, 0, sizeof(buf));
	memset(sh, 0, sizeof(sh));
	buf[0] = 4; /* ELF mode */
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_X86_64;
	eh->e_version = EV_CURRENT;
	eh->e_ehsize = sizeof(*eh);
	eh->e_shentsize = sizeof(Elf64_Shdr);
	eh->e_shnum = 3;
	eh->e_shstrndx = 2;
	notes_off = off;
	memcpy(buf + 1 + off, notes->buf, notes->len);
	off += notes->len;
	str_off = off;
	memcpy(buf + 1 + off, shstr, sizeof(shstr));
	off += sizeof(shstr);
	off = (off + 7) & ~(size_t)7;
	sh_off = off;
	sh[1].sh_name = 1;
	sh[1].sh_type = SHT_NOTE;
	sh[1].sh_flags = SHF_ALLOC;
	sh[1].sh_offset = notes_off;
	sh[1].sh_size = notes->len;
	sh[1].sh_addralign = 4;
	sh[2].sh_name = 11;
	sh[2].sh_type = SHT_STRTAB;
	sh[2].sh_offset = str_off;
	sh[2].sh_size = sizeof(shstr);
	sh[2].sh_addralign = 1;
	eh->e_shoff = sh_off;
	memcpy(buf + 1 + sh_off, sh, sizeof(sh));
	write_seed(name, buf, 1 + sh_off + sizeof(sh));
}

static void gen_manifest(void)
{
	struct run *r = calloc(1, sizeof(*r));

	if (!r)
		abort();
	full_run(r, 4, true);
	notes_seed("notes-4", 0, r);
	notes_seed("notes-4-strict", 2, r);
	full_run(r, 4, false);
	elf_seed("elf-notes", r);
	full_run(r, 8, false);
	notes_seed("notes-8", 1, r);
	/* Conflicting declarations of one name, an empty run, one note cut short. */
	r->len = 0;
	run_component(r, LUO_ABI_KIND_COMPONENT, 0, "counter", 1, 2, 1, 2, 4);
	run_component(r, LUO_ABI_KIND_COMPONENT, 0, "counter", 1, 3, 1, 3, 4);
	notes_seed("conflict", 2, r);
	r->len = 0;
	notes_seed("empty", 2, r);
	full_run(r, 4, true);
	r->len -= 10;
	notes_seed("cut", 2, r);
	/* Declared fields: a good list (4- and 8-aligned), and one whose count its size does not match. */
	full_run(r, 8, false);
	run_fields(r, "counter", 0, 8);
	notes_seed("fields-8", 1, r);
	full_run(r, 4, false);
	run_fields(r, "counter", 0, 4);
	notes_seed("fields-4", 2, r);
	r->len = 0;
	run_fields(r, "counter", 1, 4);
	notes_seed("fields-bad-count", 2, r);
	free(r);
}


/* ------------------------------------------------------------------------ */
/* agent: conversations (fuzz-agent.c's encoding)                            */

struct conv {
	uint8_t buf[16384];
	size_t len;
};

static void conv_bytes(struct conv *c, const void *p, size_t n)
{
	if (c->len + n > sizeof(c->buf))
		abort();
	memcpy(c->buf + c->len, p, n);
	c->len += n;
}

/* One message on connection @conn with fds of @kinds (fix-size bit set). */
static void conv_msg(struct conv *c, int conn, const uint8_t *kinds, size_t n_fds, const void *msg, size_t len)
{
	uint8_t ctl = (uint8_t)(conn | (int)(n_fds << 1) | 0x20), l[2] = { (uint8_t)len, (uint8_t)(len >> 8) };

	conv_bytes(c, &ctl, 1);
	conv_bytes(c, l, 2);
	conv_bytes(c, kinds, n_fds);
	conv_bytes(c, msg, len);
}

static void conv_hangup(struct conv *c, int conn)
{
	uint8_t ctl = (uint8_t)(conn | 0x40);

	conv_bytes(c, &ctl, 1);
}

static void conv_req(struct conv *c, int conn, uint16_t op, uint32_t flags, uint32_t n_fds, uint32_t uid,
		     const char *name, const uint8_t *kinds, size_t sent)
{
	static uint32_t seq;
	struct luo_agent_request q = { 0 };

	q.hdr.size = sizeof(q);
	q.hdr.version = LUO_AGENT_PROTO_VERSION;
	q.hdr.op = op;
	q.hdr.seq = ++seq;
	q.flags = flags;
	q.n_fds = n_fds;
	q.uid = uid;
	q.reply_size = sizeof(struct luo_agent_reply);
	q.info_size = op == LUO_AGENT_OP_STATUS ? sizeof(struct luo_agent_status)
					       : op == LUO_AGENT_OP_LIST ? sizeof(struct luo_agent_session_info) : 0;
	if (name)
		strncpy(q.name, name, sizeof(q.name) - 1);
	conv_msg(c, conn, kinds, sent, &q, sizeof(q));
}

static void conv_fds(struct conv *c, int conn, const uint8_t *kinds, size_t n)
{
	struct luo_agent_fds f = { 0 };

	f.hdr.size = sizeof(f);
	f.hdr.version = LUO_AGENT_PROTO_VERSION;
	f.hdr.op = LUO_AGENT_OP_FDS;
	f.n_fds = (uint32_t)n;
	conv_msg(c, conn, kinds, n, &f, sizeof(f));
}

static void conv_seed(const char *name, const struct conv *c)
{
	write_seed(name, c->buf, c->len);
}

static void gen_agent(void)
{
	static const uint8_t blob[] = { 0 }, blob_files[] = { 0, 2, 3 }, files2[] = { 3, 4 }, unsealed[] = { 1 };
	struct conv *c = calloc(1, sizeof(*c));
	const uint8_t uids_root[2] = { 0, 0 }, uids_users[2] = { 1, 2 };

	if (!c)
		abort();
	/* Every op of a well-behaved root client. */
	c->len = 0;
	conv_bytes(c, uids_root, 2);
	conv_req(c, 0, LUO_AGENT_OP_DEPOSIT, 0, 1, LUO_AGENT_UID_SELF, "svc", blob, 1);
	conv_req(c, 0, LUO_AGENT_OP_LIST, 0, 0, LUO_AGENT_UID_ALL, NULL, NULL, 0);
	conv_req(c, 0, LUO_AGENT_OP_STATUS, 0, 0, 0, NULL, NULL, 0);
	conv_req(c, 1, LUO_AGENT_OP_RETRIEVE, 0, 0, LUO_AGENT_UID_SELF, "svc", NULL, 0);
	conv_req(c, 0, LUO_AGENT_OP_DETACH, 0, 0, 0, NULL, NULL, 0);
	conv_req(c, 1, LUO_AGENT_OP_DROP, 0, 0, LUO_AGENT_UID_SELF, "svc", NULL, 0);
	conv_req(c, 1, LUO_AGENT_OP_UPDATE, 0, 0, 0, NULL, NULL, 0);
	conv_seed("all-ops", c);
	/* A deposit in three messages, replaced by a second one, then a crash with KEEP_ON_CRASH. */
	c->len = 0;
	conv_bytes(c, uids_root, 2);
	conv_req(c, 0, LUO_AGENT_OP_DEPOSIT, LUO_AGENT_DEPOSIT_KEEP_ON_CRASH, 6, LUO_AGENT_UID_SELF, "multi",
		 blob_files, 3);
	conv_fds(c, 0, files2, 2);
	conv_fds(c, 0, blob, 1);
	conv_req(c, 0, LUO_AGENT_OP_DEPOSIT, LUO_AGENT_DEPOSIT_KEEP_ON_CRASH, 1, LUO_AGENT_UID_SELF, "multi", blob, 1);
	conv_hangup(c, 0);
	conv_req(c, 1, LUO_AGENT_OP_RETRIEVE, 0, 0, LUO_AGENT_UID_SELF, "multi", NULL, 0);
	conv_seed("deposit-fds-crash", c);
	/* A deposit left half way by a crash; a deposit without KEEP_ON_CRASH dropped by one. */
	c->len = 0;
	conv_bytes(c, uids_root, 2);
	conv_req(c, 0, LUO_AGENT_OP_DEPOSIT, 0, 5, LUO_AGENT_UID_SELF, "half", blob_files, 3);
	conv_req(c, 1, LUO_AGENT_OP_DEPOSIT, 0, 1, LUO_AGENT_UID_SELF, "gone", blob, 1);
	conv_hangup(c, 0);
	conv_hangup(c, 1);
	conv_req(c, 0, LUO_AGENT_OP_LIST, 0, 0, LUO_AGENT_UID_ALL, NULL, NULL, 0);
	conv_seed("crash-mid-deposit", c);
	/* Two users: another uid refused, limits reached (4 sessions per uid here). */
	c->len = 0;
	conv_bytes(c, uids_users, 2);
	for (int i = 0; i < 5; i++) {
		char name[8];

		snprintf(name, sizeof(name), "u%d", i);
		conv_req(c, 0, LUO_AGENT_OP_DEPOSIT, 0, 1, LUO_AGENT_UID_SELF, name, blob, 1);
	}
	conv_req(c, 1, LUO_AGENT_OP_RETRIEVE, 0, 0, 1000, "u0", NULL, 0);
	conv_req(c, 1, LUO_AGENT_OP_DROP, 0, 0, 1000, "u0", NULL, 0);
	conv_req(c, 1, LUO_AGENT_OP_LIST, 0, 0, LUO_AGENT_UID_ALL, NULL, NULL, 0);
	conv_req(c, 0, LUO_AGENT_OP_STATUS, 0, 0, 0, NULL, NULL, 0);
	conv_req(c, 1, LUO_AGENT_OP_UPDATE, 0, 0, 0, NULL, NULL, 0);
	conv_seed("users-limits", c);
	/* Refusals: an unsealed blob, OP_FDS with no deposit, an unknown op, another version. */
	c->len = 0;
	conv_bytes(c, uids_root, 2);
	conv_req(c, 0, LUO_AGENT_OP_DEPOSIT, 0, 1, LUO_AGENT_UID_SELF, "unsealed", unsealed, 1);
	conv_fds(c, 0, blob, 1);
	conv_req(c, 1, 42, 0, 0, 0, NULL, NULL, 0);
	conv_req(c, 1, LUO_AGENT_OP_DEPOSIT, 0, 2, LUO_AGENT_UID_SELF, "nofds", NULL, 0);
	conv_seed("refusals", c);
	free(c);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: gen-corpus blob|manifest|agent|heap|fields DIR\n");
		return 2;
	}
	out_dir = argv[2];
	if (strcmp(argv[1], "blob") == 0) {
		gen_blob();
	} else if (strcmp(argv[1], "bad-blobs") == 0) {
		gen_bad_blobs();
	} else if (strcmp(argv[1], "manifest") == 0) {
		gen_manifest();
	} else if (strcmp(argv[1], "agent") == 0) {
		gen_agent();
	} else if (strcmp(argv[1], "heap") == 0) {
		gen_heap();
	} else if (strcmp(argv[1], "fields") == 0) {
		gen_fields();
	} else {
		fprintf(stderr, "gen-corpus: unknown target %s\n", argv[1]);
		return 2;
	}
	printf("gen-corpus: %d seeds for %s in %s\n", n_written, argv[1], out_dir);
	return 0;
}
