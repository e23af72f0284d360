/* SPDX-License-Identifier: MIT */
/*
 * Declared component state (fields.h): a field added without a version
 * bump crosses both ways, defaulted where missing; integers widen, narrow
 * only when the value fits; a required field missing, a must-understand
 * field unknown, hostile properties and hostile field notes are refused,
 * naming the field, leaving the struct as it was; negotiation names the
 * fate of each field; the declaration macro lands in the manifest.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfdt.h>

#include "fields.h"
#include "luo-internal.h"
#include "manifest.h"
#include "test-util.h"

/* The old image's struct, and the new one's: 'added' and 'label' are new, same version 2. */
struct old_s {
	uint64_t count;
	uint32_t small;
	int32_t temp;
	uint8_t gone;
};

struct new_s {
	uint32_t small;
	uint64_t count;
	int64_t temp;
	uint16_t added;
	char label[8];
	uint8_t blob[4];
};

static const struct luo_abi_note_fielddecl old_decls[] = {
	LUO_STATE_VALUE(struct old_s, count, 1, LUO_STATE_LATEST, LUO_STATE_REQUIRED, 0),
	LUO_STATE_VALUE(struct old_s, small, 1, LUO_STATE_LATEST, 0, 0),
	LUO_STATE_VALUE(struct old_s, temp, 2, LUO_STATE_LATEST, 0, 0),
	LUO_STATE_VALUE(struct old_s, gone, 1, LUO_STATE_LATEST, 0, 3),
};
static const struct luo_abi_note_fields old_h = { "comp", sizeof(struct old_s), 4 };
static struct old_s old_live;
static const struct luo_component_state old_st = { "comp", 1, 2, 1, 2, 0, &old_h, old_decls, &old_live };

static const struct luo_abi_note_fielddecl new_decls[] = {
	LUO_STATE_VALUE(struct new_s, count, 1, LUO_STATE_LATEST, LUO_STATE_REQUIRED, 0),
	LUO_STATE_VALUE(struct new_s, small, 1, LUO_STATE_LATEST, 0, 0),
	LUO_STATE_VALUE(struct new_s, temp, 2, LUO_STATE_LATEST, 0, 0),
	LUO_STATE_VALUE(struct new_s, added, 2, LUO_STATE_LATEST, 0, 7),
	LUO_STATE_STRING(struct new_s, label, 2, LUO_STATE_LATEST, 0),
	LUO_STATE_BYTES(struct new_s, blob, 2, LUO_STATE_LATEST, 0),
};
static const struct luo_abi_note_fields new_h = { "comp", sizeof(struct new_s), 6 };
static struct new_s new_live;
static const struct luo_component_state new_st = { "comp", 1, 2, 1, 2, 0, &new_h, new_decls, &new_live };

/* A reader whose 'small' is a u8 and 'temp' an i8: narrowing. */
struct narrow_s {
	uint64_t count;
	uint8_t small;
	int8_t temp;
};
static const struct luo_abi_note_fielddecl narrow_decls[] = {
	LUO_STATE_VALUE(struct narrow_s, count, 1, LUO_STATE_LATEST, 0, 0),
	LUO_STATE_VALUE(struct narrow_s, small, 1, LUO_STATE_LATEST, 0, 0),
	LUO_STATE_VALUE(struct narrow_s, temp, 1, LUO_STATE_LATEST, 0, 0),
};
static const struct luo_abi_note_fields narrow_h = { "comp", sizeof(struct narrow_s), 3 };
static struct narrow_s narrow_live;
static const struct luo_component_state narrow_st = { "comp", 1, 2, 1, 2, 0, &narrow_h, narrow_decls, &narrow_live };

/* Write @st at @version into a blob: / { c { fields { ... } } }. */
static void *encode(const struct luo_component_state *st, uint32_t version)
{
	struct luo_fdtw w;
	void *fdt;
	size_t len;

	CHECK_OK(luo_fdtw_start(&w, 4096, 1 << 20));
	CHECK_OK(luo_fdtw_begin_node(&w, ""));
	CHECK_OK(luo_fdtw_begin_node(&w, "c"));
	CHECK_OK(luo_fields_write_node(&w, st, version, st->instance));
	CHECK_OK(luo_fdtw_end_node(&w));
	CHECK_OK(luo_fdtw_end_node(&w));
	CHECK_OK(luo_fdtw_finish(&w, &fdt, &len));
	CHECK(len == fdt_totalsize(fdt));
	CHECK_OK(fdt_check_full(fdt, len));
	return fdt;
}

static int decode(const struct luo_component_state *st, uint32_t version, const void *fdt, char *reason, size_t rlen)
{
	int node = fdt_path_offset(fdt, "/c/" LUO_ABI_NODE_COMPONENT_FIELDS);

	CHECK(node >= 0);
	reason[0] = '\0';
	return luo_fields_load_node(st, version, fdt, node, reason, rlen);
}

static void test_added_field_both_ways(void)
{
	char reason[LUO_REASON_MAX];
	void *blob;

	/* old -> new at version 2: 'added' takes its default, label and blob zero, the rest crosses. */
	old_live = (struct old_s){ .count = 41, .small = 9, .temp = -12, .gone = 5 };
	memset(&new_live, 0xaa, sizeof(new_live));
	blob = encode(&old_st, 2);
	CHECK_OK(decode(&new_st, 2, blob, reason, sizeof(reason)));
	CHECK_EQ(new_live.count, 41);
	CHECK_EQ(new_live.small, 9);
	CHECK_EQ(new_live.temp, -12); /* i32 widened to i64, sign kept */
	CHECK_EQ(new_live.added, 7);
	CHECK(strcmp(new_live.label, "") == 0);
	CHECK(memcmp(new_live.blob, "\0\0\0\0", 4) == 0);
	free(blob);

	/* new -> old at version 2: 'added', 'label', 'blob' dropped; 'gone' (old only) defaulted. */
	new_live = (struct new_s){ .count = 1000, .small = 3, .temp = -7, .added = 99, .label = "hello", .blob = { 1, 2, 3, 4 } };
	memset(&old_live, 0x55, sizeof(old_live));
	blob = encode(&new_st, 2);
	CHECK_OK(decode(&old_st, 2, blob, reason, sizeof(reason)));
	CHECK_EQ(old_live.count, 1000);
	CHECK_EQ(old_live.small, 3);
	CHECK_EQ(old_live.temp, -7);
	CHECK_EQ(old_live.gone, 3);
	/* and back to new: everything it wrote comes back (the round trip of a rollback). */
	memset(&new_live, 0, sizeof(new_live));
	CHECK_OK(decode(&new_st, 2, blob, reason, sizeof(reason)));
	CHECK_EQ(new_live.added, 99);
	CHECK(strcmp(new_live.label, "hello") == 0);
	CHECK(memcmp(new_live.blob, "\1\2\3\4", 4) == 0);
	free(blob);

	/* At version 1, 'temp' is not written: the reader defaults it. */
	old_live = (struct old_s){ .count = 5, .small = 6, .temp = -3 };
	new_live.temp = 77;
	blob = encode(&old_st, 1);
	CHECK(fdt_path_offset(blob, "/c/fields") >= 0);
	CHECK(fdt_getprop(blob, fdt_path_offset(blob, "/c/fields"), "temp", NULL) == NULL);
	CHECK_OK(decode(&new_st, 1, blob, reason, sizeof(reason)));
	CHECK_EQ(new_live.temp, 0);
	CHECK_EQ(new_live.count, 5);
	free(blob);
	printf("ok - a field added without a version bump crosses both ways, defaulted where missing\n");
}

static void test_narrowing(void)
{
	char reason[LUO_REASON_MAX];
	void *blob;

	old_live = (struct old_s){ .count = 1, .small = 200, .temp = -100 };
	blob = encode(&old_st, 2);
	CHECK_OK(decode(&narrow_st, 2, blob, reason, sizeof(reason)));
	CHECK_EQ(narrow_live.small, 200);
	CHECK_EQ(narrow_live.temp, -100);
	free(blob);

	old_live = (struct old_s){ .count = 2, .small = 300, .temp = -100 };
	narrow_live = (struct narrow_s){ .count = 77, .small = 1, .temp = 1 };
	blob = encode(&old_st, 2);
	CHECK_ERR(decode(&narrow_st, 2, blob, reason, sizeof(reason)), ERANGE);
	CHECK(strstr(reason, "'small'") && strstr(reason, "300") && strstr(reason, "u8"));
	CHECK_EQ(narrow_live.count, 77); /* all or nothing: count was read before small, not kept */
	free(blob);

	old_live = (struct old_s){ .count = 2, .small = 1, .temp = -129 };
	blob = encode(&old_st, 2);
	CHECK_ERR(decode(&narrow_st, 2, blob, reason, sizeof(reason)), ERANGE);
	CHECK(strstr(reason, "'temp'") && strstr(reason, "-129") && strstr(reason, "i8"));
	free(blob);

	/* A negative value into an unsigned field does not fit. */
	new_live = (struct new_s){ .count = 1, .small = 1, .temp = -1 };
	blob = encode(&new_st, 2);
	{
		struct u_s {
			uint64_t temp;
		};
		static struct u_s u_live;
		static const struct luo_abi_note_fielddecl u_decls[] = {
			LUO_STATE_VALUE(struct u_s, temp, 1, LUO_STATE_LATEST, 0, 0),
		};
		static const struct luo_abi_note_fields u_h = { "comp", sizeof(struct u_s), 1 };
		static const struct luo_component_state u_st = { "comp", 1, 2, 1, 2, 0, &u_h, u_decls, &u_live };

		CHECK_ERR(decode(&u_st, 2, blob, reason, sizeof(reason)), ERANGE);
		CHECK(strstr(reason, "'temp'"));
		new_live.temp = 1;
		free(blob);
		blob = encode(&new_st, 2);
		CHECK_OK(decode(&u_st, 2, blob, reason, sizeof(reason)));
		CHECK_EQ(u_live.temp, 1);
	}
	free(blob);
	printf("ok - integers narrow only when the value fits, the refusal names the field\n");
}

static void test_required_and_must_understand(void)
{
	struct req_s {
		uint64_t count;
		uint32_t must;
	};
	static struct req_s req_live;
	static const struct luo_abi_note_fielddecl req_decls[] = {
		LUO_STATE_VALUE(struct req_s, count, 1, LUO_STATE_LATEST, 0, 0),
		LUO_STATE_VALUE(struct req_s, must, 2, LUO_STATE_LATEST, LUO_STATE_REQUIRED, 0),
	};
	static const struct luo_abi_note_fields req_h = { "comp", sizeof(struct req_s), 2 };
	static const struct luo_component_state req_st = { "comp", 1, 2, 1, 2, 0, &req_h, req_decls, &req_live };
	struct mu_s {
		uint64_t count;
		uint32_t critical;
	};
	static struct mu_s mu_live = { 1, 2 };
	static const struct luo_abi_note_fielddecl mu_decls[] = {
		LUO_STATE_VALUE(struct mu_s, count, 1, LUO_STATE_LATEST, 0, 0),
		LUO_STATE_VALUE(struct mu_s, critical, 1, LUO_STATE_LATEST, LUO_STATE_MUST_UNDERSTAND, 0),
	};
	static const struct luo_abi_note_fields mu_h = { "comp", sizeof(struct mu_s), 2 };
	static const struct luo_component_state mu_st = { "comp", 1, 2, 1, 2, 0, &mu_h, mu_decls, &mu_live };
	char reason[LUO_REASON_MAX];
	void *blob;

	old_live = (struct old_s){ .count = 3 };
	blob = encode(&old_st, 2);
	req_live.count = 9;
	CHECK_ERR(decode(&req_st, 2, blob, reason, sizeof(reason)), EPROTO);
	CHECK(strstr(reason, "'must'") && strstr(reason, "required"));
	CHECK_EQ(req_live.count, 9);
	/* At version 1 the field is not carried: defaulted, not refused. */
	free(blob);
	blob = encode(&old_st, 1);
	CHECK_OK(decode(&req_st, 1, blob, reason, sizeof(reason)));
	CHECK_EQ(req_live.count, 3);
	free(blob);

	blob = encode(&mu_st, 1);
	CHECK_ERR(decode(&old_st, 1, blob, reason, sizeof(reason)), EPROTO);
	CHECK(strstr(reason, "'critical'") && strstr(reason, "must be understood"));
	free(blob);
	/* a field the reader does not know, not marked ('gone' to narrow_st), is dropped */
	old_live = (struct old_s){ .count = 4, .small = 5, .gone = 6 };
	blob = encode(&old_st, 1);
	CHECK_OK(decode(&narrow_st, 1, blob, reason, sizeof(reason)));
	CHECK_EQ(narrow_live.count, 4);
	free(blob);
	printf("ok - a required field missing and a must-understand field unknown refuse, naming it\n");
}

/* A blob whose fields node holds the given raw properties. */
struct raw_prop {
	const char *name;
	const void *value;
	int len;
};

static void *raw_blob(const struct raw_prop *props, size_t n, bool subnode)
{
	size_t size = 1 << 14;
	void *fdt = malloc(size);

	CHECK(fdt);
	CHECK_OK(fdt_create(fdt, (int)size));
	CHECK_OK(fdt_finish_reservemap(fdt));
	CHECK_OK(fdt_begin_node(fdt, ""));
	CHECK_OK(fdt_begin_node(fdt, "c"));
	CHECK_OK(fdt_begin_node(fdt, "fields"));
	for (size_t i = 0; i < n; i++)
		CHECK_OK(fdt_property(fdt, props[i].name, props[i].value, props[i].len));
	if (subnode) {
		CHECK_OK(fdt_begin_node(fdt, "x"));
		CHECK_OK(fdt_end_node(fdt));
	}
	CHECK_OK(fdt_end_node(fdt));
	CHECK_OK(fdt_end_node(fdt));
	CHECK_OK(fdt_end_node(fdt));
	CHECK_OK(fdt_finish(fdt));
	return fdt;
}

static void test_hostile_properties(void)
{
	static const uint8_t short_tag[3] = { 0, 0, 1 };
	static const uint8_t u_len3[7] = { 0, 0, 0, LUO_ABI_FIELD_UINT, 1, 2, 3 };
	static const uint8_t bool2[5] = { 0, 0, 0, LUO_ABI_FIELD_BOOL, 2 };
	static const uint8_t bad_bits[5] = { 0, 0, 0x80, LUO_ABI_FIELD_UINT, 1 };
	static const uint8_t bad_type[5] = { 0, 0, 0, 9, 1 };
	static const uint8_t str_nul[7] = { 0, 0, 0, LUO_ABI_FIELD_STRING, 'a', 0, 'b' };
	static const uint8_t str_long[12] = { 0, 0, 0, LUO_ABI_FIELD_STRING, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h' };
	static const uint8_t str_ok[11] = { 0, 0, 0, LUO_ABI_FIELD_STRING, 'a', 'b', 'c', 'd', 'e', 'f', 'g' };
	static const uint8_t bytes_tail[10] = { 0, 0, 0, LUO_ABI_FIELD_BYTES, 1, 2, 3, 4, 0, 5 };
	static const uint8_t bytes_zero[10] = { 0, 0, 0, LUO_ABI_FIELD_BYTES, 1, 2, 3, 4, 0, 0 };
	static const uint8_t u8_one[5] = { 0, 0, 0, LUO_ABI_FIELD_UINT, 1 };
	static const struct {
		struct raw_prop p[2];
		size_t n;
		bool subnode;
		int err;
		const char *says;
	} cases[] = {
		{ { { "count", short_tag, 3 } }, 1, false, EBADMSG, "shorter than its tag" },
		{ { { "count", u_len3, 7 } }, 1, false, EBADMSG, "'count': 3 bytes" },
		{ { { "added", bool2, 5 } }, 1, false, EBADMSG, "'added': bool 2" },
		{ { { "count", bad_bits, 5 } }, 1, false, EBADMSG, "unknown tag bits" },
		{ { { "count", bad_type, 5 } }, 1, false, EBADMSG, "unknown type 9" },
		{ { { "label", str_nul, 7 } }, 1, false, EBADMSG, "NUL inside" },
		{ { { "label", str_long, 12 } }, 1, false, ERANGE, "'label': 8 bytes do not fit in 8" },
		{ { { "blob", bytes_tail, 10 } }, 1, false, ERANGE, "'blob'" },
		{ { { "count", u8_one, 5 }, { "count", u8_one, 5 } }, 2, false, EBADMSG, "'count' twice" },
		{ { { "Count", u8_one, 5 } }, 1, false, EBADMSG, "[a-z0-9_]" },
		{ { { "a_name_of_forty_bytes_longer_than_a_fie", u8_one, 5 } }, 1, false, EBADMSG, "longer than 31" },
		{ { { "label", u8_one, 5 } }, 1, false, EPROTO, "'label': an integer came" },
		{ { { "count", str_ok, 11 } }, 1, false, EPROTO, "'count': a string came" },
		{ { { "count", u8_one, 5 } }, 1, true, EBADMSG, "subnode" },
		{ { { "label", str_ok, 11 }, { "blob", bytes_zero, 10 } }, 2, false, EPROTO, "'count' is required" },
	};
	char reason[LUO_REASON_MAX];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		void *blob = raw_blob(cases[i].p, cases[i].n, cases[i].subnode);

		new_live = (struct new_s){ .count = 123 };
		CHECK_ERR(decode(&new_st, 2, blob, reason, sizeof(reason)), cases[i].err);
		if (!strstr(reason, cases[i].says)) {
			fprintf(stderr, "case %zu: reason '%s' does not say '%s'\n", i, reason, cases[i].says);
			exit(1);
		}
		CHECK_EQ(new_live.count, 123);
		free(blob);
	}
	{
		/* Zeros past the end of bytes are not lost: accepted; a 7-byte string fits char[8]. */
		const struct raw_prop ok[3] = { { "count", u8_one, 5 }, { "label", str_ok, 11 }, { "blob", bytes_zero, 10 } };
		void *blob = raw_blob(ok, 3, false);

		CHECK_OK(decode(&new_st, 2, blob, reason, sizeof(reason)));
		CHECK_EQ(new_live.count, 1);
		CHECK(strcmp(new_live.label, "abcdefg") == 0);
		CHECK(memcmp(new_live.blob, "\1\2\3\4", 4) == 0);
		free(blob);
	}
	printf("ok - hostile properties refused cleanly (%zu cases), the struct untouched\n",
	       sizeof(cases) / sizeof(cases[0]));
}

/* LUO_STATE_VERSION: the field is written as the version, and a load refuses another value. */
static void test_version_field(void)
{
	struct ver_s {
		uint64_t root;
		uint32_t format;
	};
	static struct ver_s ver_live;
	static const struct luo_abi_note_fielddecl ver_decls[] = {
		LUO_STATE_VALUE(struct ver_s, root, 1, LUO_STATE_LATEST, 0, 0),
		LUO_STATE_VALUE(struct ver_s, format, 1, LUO_STATE_LATEST, LUO_STATE_REQUIRED | LUO_STATE_VERSION, 0),
	};
	static const struct luo_abi_note_fields ver_h = { "comp", sizeof(struct ver_s), 2 };
	static const struct luo_component_state ver_st = { "comp", 1, 3, 1, 3, 0, &ver_h, ver_decls, &ver_live };
	static const uint8_t fmt2[8] = { 0, 0, 0, LUO_ABI_FIELD_UINT, 0, 0, 0, 2 };
	const struct raw_prop props[1] = { { "format", fmt2, 8 } };
	struct luo_payload p = { 0 };
	char reason[LUO_REASON_MAX];
	void *blob;

	ver_live = (struct ver_s){ .root = 0x1000, .format = 99 };
	blob = encode(&ver_st, 3);
	ver_live.format = 0;
	CHECK_OK(decode(&ver_st, 3, blob, reason, sizeof(reason)));
	CHECK_EQ(ver_live.format, 3);
	CHECK_EQ(ver_live.root, 0x1000);
	free(blob);
	blob = raw_blob(props, 1, false);
	CHECK_ERR(decode(&ver_st, 3, blob, reason, sizeof(reason)), EPROTO);
	CHECK(strstr(reason, "'format' says version 2"));
	CHECK_OK(decode(&ver_st, 2, blob, reason, sizeof(reason)));
	free(blob);
	/* the struct image too */
	ver_live = (struct ver_s){ .root = 7, .format = 99 };
	CHECK_OK(luo_fields_image_save(&ver_st, 1, &p));
	CHECK_EQ(p.len, 16);
	CHECK_OK(luo_fields_image_load(&ver_st, 1, p.buf, p.len, reason, sizeof(reason)));
	CHECK_EQ(ver_live.format, 1);
	CHECK_ERR(luo_fields_image_load(&ver_st, 2, p.buf, p.len, reason, sizeof(reason)), EPROTO);
	free(p.buf);
	printf("ok - a version field is written as the version and checked on load\n");
}

static void test_struct_image(void)
{
	struct luo_payload p = { 0 };
	char reason[LUO_REASON_MAX];

	/* The image of old_s at version 1: count (8), small (4), gone (1), padded to 8: 16 bytes. */
	CHECK_EQ(luo_fields_image_size(&old_st, 1), 16);
	CHECK_EQ(luo_fields_image_size(&old_st, 2), 24);
	old_live = (struct old_s){ .count = 8, .small = 4, .temp = -2, .gone = 1 };
	CHECK_OK(luo_fields_image_save(&old_st, 2, &p));
	CHECK_EQ(p.len, 24);
	memset(&old_live, 0, sizeof(old_live));
	CHECK_ERR(luo_fields_image_load(&old_st, 2, p.buf, p.len - 1, reason, sizeof(reason)), EBADMSG);
	CHECK_OK(luo_fields_image_load(&old_st, 2, p.buf, p.len, reason, sizeof(reason)));
	CHECK_EQ(old_live.count, 8);
	CHECK_EQ(old_live.temp, -2);
	CHECK_EQ(old_live.gone, 1);
	free(p.buf);
	printf("ok - the struct image: the fields of a version, in order, naturally aligned\n");
}

static void test_bad_lists(void)
{
	struct luo_abi_note_fielddecl d[2];
	struct luo_abi_note_fields h = { "comp", 16, 2 };
	char reason[LUO_REASON_MAX];
	static const struct {
		const char *name2;
		uint32_t type, size, offset, from, to, flags;
		uint64_t deflt;
		const char *says;
	} cases[] = {
		{ "b", LUO_ABI_FIELD_UINT, 8, 4, 1, 1, 0, 0, "overlap" },
		{ "a", LUO_ABI_FIELD_UINT, 8, 8, 1, 1, 0, 0, "twice" },
		{ "B", LUO_ABI_FIELD_UINT, 8, 8, 1, 1, 0, 0, "[a-z0-9_]" },
		{ "b", LUO_ABI_FIELD_UINT, 3, 8, 1, 1, 0, 0, "size 3" },
		{ "b", 77, 8, 8, 1, 1, 0, 0, "unknown type" },
		{ "b", LUO_ABI_FIELD_UINT, 8, 9, 1, 1, 0, 0, "outside" },
		{ "b", LUO_ABI_FIELD_UINT, 8, 8, 2, 1, 0, 0, "versions 2..1" },
		{ "b", LUO_ABI_FIELD_UINT, 8, 8, 0, 1, 0, 0, "versions 0..1" },
		{ "b", LUO_ABI_FIELD_UINT, 8, 8, 1, 1, 8, 0, "unknown flags" },
		{ "b", LUO_ABI_FIELD_BYTES, 4, 8, 1, 1, LUO_ABI_FIELD_VERSION, 0, "unknown flags" },
		{ "b", LUO_ABI_FIELD_UINT, 1, 8, 1, 1, 0, 256, "default" },
		{ "b", LUO_ABI_FIELD_BOOL, 1, 8, 1, 1, 0, 2, "default" },
		{ "b", LUO_ABI_FIELD_INT, 1, 8, 1, 1, 0, (uint64_t)-129, "default" },
		{ "b", LUO_ABI_FIELD_BYTES, 4, 8, 1, 1, 0, 1, "default" },
		{ "b", LUO_ABI_FIELD_STRING, 1, 8, 1, 1, 0, 0, "size 1" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(d, 0, sizeof(d));
		d[0] = (struct luo_abi_note_fielddecl){ "a", LUO_ABI_FIELD_UINT, 8, 0, 1, LUO_ABI_FIELD_LATEST, 0, 0 };
		snprintf(d[1].name, sizeof(d[1].name), "%s", cases[i].name2);
		d[1].type = cases[i].type;
		d[1].size = cases[i].size;
		d[1].offset = cases[i].offset;
		d[1].from = cases[i].from;
		d[1].to = cases[i].to;
		d[1].flags = cases[i].flags;
		d[1].deflt = cases[i].deflt;
		CHECK_ERR(luo_fields_check(&h, d, reason, sizeof(reason)), EBADMSG);
		if (!strstr(reason, cases[i].says)) {
			fprintf(stderr, "list case %zu: '%s' does not say '%s'\n", i, reason, cases[i].says);
			exit(1);
		}
	}
	d[1] = (struct luo_abi_note_fielddecl){ "b", LUO_ABI_FIELD_INT, 1, 8, 1, 1, 0, (uint64_t)-128 };
	CHECK_OK(luo_fields_check(&h, d, reason, sizeof(reason)));
	printf("ok - malformed field lists refused (%zu cases)\n", sizeof(cases) / sizeof(cases[0]));
}

/* A run of one LUO_ABI_NOTE_FIELDS note for @h + @d, with @descsz (0: the right one). */
static size_t note_of(uint8_t *buf, const struct luo_abi_note_fields *h, const struct luo_abi_note_fielddecl *d,
		      uint32_t n, uint32_t descsz)
{
	struct luo_abi_note_header nh = { 4, descsz ? descsz : (uint32_t)(sizeof(*h) + n * sizeof(*d)),
					  LUO_ABI_NOTE_FIELDS, "LUO" };
	size_t len = sizeof(nh) + sizeof(*h) + n * sizeof(*d);

	memcpy(buf, &nh, sizeof(nh));
	memcpy(buf + sizeof(nh), h, sizeof(*h));
	memcpy(buf + sizeof(nh) + sizeof(*h), d, n * sizeof(*d));
	return len;
}

static struct luo_manifest *manifest_with(const struct luo_component_state *st, uint32_t flags)
{
	struct luo_manifest *m;
	struct luo_manifest_entry e = { .kind = LUO_ABI_KIND_COMPONENT, .flags = flags,
					.read = { st->read_min, st->read_max }, .write = { st->write_min, st->write_max } };
	static uint8_t buf[1 << 14];
	char reason[LUO_REASON_MAX];
	size_t len = note_of(buf, st->fields, st->decls, st->fields->n_fields, 0);

	CHECK_OK(luo_manifest_new(&m));
	snprintf(e.name, sizeof(e.name), "%s", st->name);
	CHECK_OK(luo_manifest_add_entry(m, &e, "test", reason, sizeof(reason)));
	CHECK_OK(luo_manifest_add_notes(m, buf, len, 8, true, "test", reason, sizeof(reason)));
	CHECK(luo_manifest_find_fields(m, st->name));
	return m;
}

static void test_hostile_notes(void)
{
	static uint8_t buf[1 << 14];
	struct luo_abi_note_fields h = new_h;
	struct luo_abi_note_fielddecl d[6];
	char reason[LUO_REASON_MAX];
	struct luo_manifest *m;
	size_t len;

	memcpy(d, new_decls, sizeof(d));
	CHECK_OK(luo_manifest_new(&m));
	/* Wrong descsz: one byte short, one declaration short. */
	len = note_of(buf, &h, d, 6, (uint32_t)(sizeof(h) + 6 * sizeof(d[0]) - 4));
	CHECK_ERR(luo_manifest_add_notes(m, buf, len - 4, 8, true, "t", reason, sizeof(reason)), EBADMSG);
	len = note_of(buf, &h, d, 5, 0);
	h.n_fields = 6;
	memcpy(buf + sizeof(struct luo_abi_note_header), &h, sizeof(h));
	CHECK_ERR(luo_manifest_add_notes(m, buf, len, 8, true, "t", reason, sizeof(reason)), EBADMSG);
	CHECK(strstr(reason, "field note"));
	/* n_fields 0, and far too many */
	h.n_fields = 0;
	len = note_of(buf, &h, d, 0, 0);
	CHECK_ERR(luo_manifest_add_notes(m, buf, len, 8, true, "t", reason, sizeof(reason)), EBADMSG);
	h.n_fields = 0x40000000;
	len = note_of(buf, &h, d, 1, 0);
	CHECK_ERR(luo_manifest_add_notes(m, buf, len, 8, true, "t", reason, sizeof(reason)), EBADMSG);
	/* an unterminated component name, a bad list inside */
	h = new_h;
	memset(h.component, 'x', sizeof(h.component));
	len = note_of(buf, &h, d, 6, 0);
	CHECK_ERR(luo_manifest_add_notes(m, buf, len, 8, true, "t", reason, sizeof(reason)), EBADMSG);
	h = new_h;
	d[1].offset = 6; /* small: 6..10, count at 8 */
	len = note_of(buf, &h, d, 6, 0);
	CHECK_ERR(luo_manifest_add_notes(m, buf, len, 8, true, "t", reason, sizeof(reason)), EBADMSG);
	CHECK(strstr(reason, "overlap"));
	/* one list, twice identically: one; then a different one for the same component: refused */
	memcpy(d, new_decls, sizeof(d));
	len = note_of(buf, &h, d, 6, 0);
	CHECK_OK(luo_manifest_add_notes(m, buf, len, 8, true, "t", reason, sizeof(reason)));
	CHECK_OK(luo_manifest_add_notes(m, buf, len, 8, true, "t", reason, sizeof(reason)));
	CHECK_EQ(m->n_fieldsets, 1);
	d[3].deflt = 8;
	len = note_of(buf, &h, d, 6, 0);
	CHECK_ERR(luo_manifest_add_notes(m, buf, len, 8, true, "t", reason, sizeof(reason)), EBADMSG);
	CHECK(strstr(reason, "two different field lists"));
	luo_manifest_free(m);
	printf("ok - hostile field notes refused\n");
}

static const struct luo_field_verdict *verdict_of(const struct luo_field_verdict *v, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return &v[i];
	return NULL;
}

static void test_verdicts(void)
{
	struct luo_manifest *mo = manifest_with(&old_st, 0), *mn = manifest_with(&new_st, 0);
	struct luo_manifest *mnar = manifest_with(&narrow_st, 0);
	struct luo_field_verdict *v = NULL;
	struct luo_report_entry *rep = NULL;
	size_t n_rep = 0;
	int n;

	n = luo_fields_verdicts(mo, mn, "comp", 2, &v);
	CHECK_EQ(n, 7);
	CHECK_EQ(verdict_of(v, n, "count")->fate, LUO_FIELD_CROSSES);
	CHECK_EQ(verdict_of(v, n, "temp")->fate, LUO_FIELD_CROSSES); /* i32 -> i64 */
	CHECK_EQ(verdict_of(v, n, "gone")->fate, LUO_FIELD_LOST);
	CHECK_EQ(verdict_of(v, n, "added")->fate, LUO_FIELD_DEFAULTED);
	CHECK_EQ(verdict_of(v, n, "label")->fate, LUO_FIELD_DEFAULTED);
	free(v);
	n = luo_fields_verdicts(mo, mnar, "comp", 2, &v);
	CHECK_EQ(verdict_of(v, n, "small")->fate, LUO_FIELD_NARROWED);
	CHECK_EQ(verdict_of(v, n, "temp")->fate, LUO_FIELD_NARROWED);
	free(v);

	/* Negotiation: the why counts the fields; with a required field the old image lacks, refused naming it. */
	CHECK_OK(luo_negotiate(mo, mn, NULL, NULL, &rep, &n_rep));
	CHECK_EQ(n_rep, 1);
	CHECK_EQ(rep[0].verdict, LUO_VERDICT_USE);
	CHECK(strstr(rep[0].why, "fields: 3 cross, 0 narrowed, 3 defaulted, 1 lost"));
	free(rep);
	{
		struct luo_abi_note_fielddecl d[6];
		struct luo_component_state st = new_st;
		struct luo_manifest *mreq;

		memcpy(d, new_decls, sizeof(d));
		d[3].flags = LUO_ABI_FIELD_REQUIRED;
		st.decls = d;
		mreq = manifest_with(&st, 0);
		CHECK_ERR(luo_negotiate(mo, mreq, NULL, NULL, &rep, &n_rep), EPROTO);
		CHECK_EQ(rep[0].verdict, LUO_VERDICT_REFUSE);
		CHECK_EQ(rep[0].cause, LUO_CAUSE_FIELD_REFUSED);
		CHECK(strstr(rep[0].why, "field 'added'") && strstr(rep[0].why, "required"));
		free(rep);
		/* optional: dropped instead */
		luo_manifest_free(mreq);
		mreq = manifest_with(&st, LUO_ABI_FLAG_OPTIONAL);
		luo_manifest_free(mo);
		mo = manifest_with(&old_st, LUO_ABI_FLAG_OPTIONAL);
		CHECK_OK(luo_negotiate(mo, mreq, NULL, NULL, &rep, &n_rep));
		CHECK_EQ(rep[0].verdict, LUO_VERDICT_DROP);
		free(rep);
		luo_manifest_free(mreq);
	}
	{
		/* the old image marks 'gone' must-understand; the new one does not know it */
		struct luo_abi_note_fielddecl d[4];
		struct luo_component_state st = old_st;
		struct luo_manifest *mmu;

		memcpy(d, old_decls, sizeof(d));
		d[3].flags = LUO_ABI_FIELD_MUST_UNDERSTAND;
		st.decls = d;
		mmu = manifest_with(&st, 0);
		CHECK_ERR(luo_negotiate(mmu, mn, NULL, NULL, &rep, &n_rep), EPROTO);
		CHECK(strstr(rep[0].why, "field 'gone'") && strstr(rep[0].why, "must be understood"));
		free(rep);
		luo_manifest_free(mmu);
	}
	luo_manifest_free(mo);
	luo_manifest_free(mn);
	luo_manifest_free(mnar);
	printf("ok - negotiation names each field's fate and refuses naming the field\n");
}

/* The declaration macro: registered, in this binary's manifest (file and memory) with its field list. */
struct macro_s {
	uint64_t hits;
	bool on;
	int16_t delta;
	char who[12];
	uint8_t key[3];
};
static struct macro_s macro_live;
LUO_COMPONENT_STATE(macro_component, "macro-state", 1, 3, 2, 3, LUO_COMPONENT_OPTIONAL, struct macro_s, &macro_live,
		    LUO_STATE_VALUE(struct macro_s, hits, 1, LUO_STATE_LATEST, LUO_STATE_REQUIRED, 0),
		    LUO_STATE_VALUE(struct macro_s, on, 2, LUO_STATE_LATEST, 0, 1),
		    LUO_STATE_VALUE(struct macro_s, delta, 2, 3, LUO_STATE_MUST_UNDERSTAND, -5),
		    LUO_STATE_STRING(struct macro_s, who, 3, LUO_STATE_LATEST, 0),
		    LUO_STATE_BYTES(struct macro_s, key, 3, LUO_STATE_LATEST, 0));

static void test_macro(void)
{
	const struct luo_component *comps[LUO_COMPONENTS_MAX];
	size_t n = luo_components_list(comps, LUO_COMPONENTS_MAX);
	const struct luo_manifest_fieldset *fs;
	char reason[LUO_REASON_MAX];
	struct luo_manifest *m;
	bool found = false;

	for (size_t i = 0; i < n; i++)
		if (comps[i] && strcmp(comps[i]->name, "macro-state") == 0)
			found = luo_fields_of(comps[i]) == &macro_component;
	CHECK(found);
	for (int from_file = 0; from_file < 2; from_file++) {
		if (from_file)
			CHECK_OK(luo_manifest_read_file("/proc/self/exe", &m, reason, sizeof(reason)));
		else
			CHECK_OK(luo_manifest_read_self(&m, reason, sizeof(reason)));
		fs = luo_manifest_find_fields(m, "macro-state");
		CHECK(fs);
		CHECK_EQ(fs->h.n_fields, 5);
		CHECK_EQ(fs->h.struct_size, sizeof(struct macro_s));
		CHECK(strcmp(fs->decls[2].name, "delta") == 0);
		CHECK_EQ(fs->decls[2].type, LUO_ABI_FIELD_INT);
		CHECK_EQ(fs->decls[2].size, 2);
		CHECK_EQ((int64_t)fs->decls[2].deflt, -5);
		CHECK_EQ(fs->decls[2].to, 3);
		CHECK_EQ(fs->decls[1].type, LUO_ABI_FIELD_BOOL);
		CHECK_EQ(fs->decls[3].type, LUO_ABI_FIELD_STRING);
		CHECK_EQ(fs->decls[4].type, LUO_ABI_FIELD_BYTES);
		CHECK_EQ(fs->decls[4].offset, offsetof(struct macro_s, key));
		CHECK(luo_manifest_find(m, LUO_ABI_KIND_COMPONENT, "macro-state"));
		luo_manifest_free(m);
	}
	printf("ok - LUO_COMPONENT_STATE() registers and records its field list\n");
}

int main(void)
{
	test_begin();
	test_added_field_both_ways();
	test_narrowing();
	test_required_and_must_understand();
	test_hostile_properties();
	test_struct_image();
	test_version_field();
	test_bad_lists();
	test_hostile_notes();
	test_verdicts();
	test_macro();
	check_no_fd_leak();
	return 0;
}
