/* SPDX-License-Identifier: MIT */
/*
 * DOC: fuzz-fields, the declared-field reader (luo_fields_load_node)
 *
 * Byte 0: bits 0-1 pick the version the reader is told was written (1..4),
 * bit 2 whether the rest is a raw blob or a script (fdt-script.h) built
 * into a well-formed tree. The blob goes through luo_blob_check() -- what
 * luo_blob_parse() runs first -- and then every node named "fields" in it
 * is read into a struct of twelve declared fields, one of each type and
 * width, with defaults, a required field, a must-understand one, a
 * version field and fields that come and go with versions.
 *
 * Oracles beyond ASan/UBSan/LSan: only the documented errors (-EBADMSG,
 * -ERANGE, -EPROTO, -ENOMEM), a reason given with each but -ENOMEM; all
 * or nothing (a refusal leaves the live struct byte for byte as it was); an accepted
 * struct is valid (bools 0 or 1, strings terminated in their arrays, the
 * version field equal to the version, the padding between fields
 * untouched), and written again with the writer and read back it is the
 * same struct.
 */

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fdt-script.h"
#include "luo-internal.h"

#define SCRIPT_TREE_MAX (256u << 10)
#define PAD 0xa5

#define REQUIRE(cond)                                                                         \
	do {                                                                                  \
		if (!(cond)) {                                                                \
			fprintf(stderr, "fuzz-fields: the reader broke its contract: %s\n", #cond); \
			abort();                                                              \
		}                                                                             \
	} while (0)

struct state {
	uint8_t u8;
	uint8_t pad0;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	int8_t i8;
	uint8_t pad1;
	int16_t i16;
	int32_t i32;
	int64_t i64;
	bool flag;
	char name[15];
	uint8_t blob[8];
	uint32_t version;
	uint32_t newer;
};

#define DECL(n, t, m, f, to, fl, d)                                                                \
	{ n, LUO_ABI_FIELD_##t, sizeof(((struct state *)0)->m), offsetof(struct state, m), f, to, fl, d }

static const struct luo_abi_note_fielddecl decls[] = {
	DECL("u8", UINT, u8, 1, LUO_ABI_FIELD_LATEST, 0, 7),
	DECL("u16", UINT, u16, 1, LUO_ABI_FIELD_LATEST, LUO_ABI_FIELD_REQUIRED, 0),
	DECL("u32", UINT, u32, 2, LUO_ABI_FIELD_LATEST, 0, 0xfffffffe),
	DECL("u64", UINT, u64, 1, 3, 0, 1),
	DECL("i8", INT, i8, 1, LUO_ABI_FIELD_LATEST, 0, (uint64_t)-5),
	DECL("i16", INT, i16, 1, LUO_ABI_FIELD_LATEST, LUO_ABI_FIELD_MUST_UNDERSTAND, 0),
	DECL("i32", INT, i32, 1, LUO_ABI_FIELD_LATEST, 0, 0),
	DECL("i64", INT, i64, 3, LUO_ABI_FIELD_LATEST, 0, (uint64_t)INT64_MIN),
	DECL("flag", BOOL, flag, 1, LUO_ABI_FIELD_LATEST, 0, 1),
	DECL("name", STRING, name, 1, LUO_ABI_FIELD_LATEST, 0, 0),
	DECL("blob", BYTES, blob, 2, LUO_ABI_FIELD_LATEST, 0, 0),
	DECL("version", UINT, version, 1, LUO_ABI_FIELD_LATEST, LUO_ABI_FIELD_VERSION, 0),
};

/* fields.c's snapshot and struct image write payloads (model/component.c): never called here. */
int luo_payload_write(struct luo_payload *out, const void *data, size_t len)
{
	(void)out;
	(void)data;
	(void)len;
	abort();
}

static const struct luo_abi_note_fields header = { "fuzz", sizeof(struct state), sizeof(decls) / sizeof(decls[0]) };

/* The live struct before a load: every byte set, the padding PAD, the fields valid. */
static void start_state(struct state *s, uint32_t version)
{
	memset(s, PAD, sizeof(*s));
	s->u8 = 1;
	s->u16 = 2;
	s->u32 = 3;
	s->u64 = 4;
	s->i8 = -1;
	s->i16 = -2;
	s->i32 = -3;
	s->i64 = -4;
	s->flag = false;
	strcpy(s->name, "before");
	memset(s->blob, 9, sizeof(s->blob));
	s->version = version;
	s->newer = 0x5a5a5a5a; /* not declared: never touched */
}

static void check_valid(const struct state *s, uint32_t version)
{
	REQUIRE(s->pad0 == PAD && s->pad1 == PAD);
	REQUIRE(s->newer == 0x5a5a5a5a);
	REQUIRE((uint8_t)s->flag <= 1);
	REQUIRE(memchr(s->name, '\0', sizeof(s->name)) != NULL);
	REQUIRE(s->version == version);
}

/* Write @s at @version with the writer and read it back: the same struct. */
static void round_trip(struct luo_component_state *st, uint32_t version)
{
	struct state again;
	struct luo_fdtw w;
	char reason[LUO_REASON_MAX];
	void *fdt;
	size_t len;
	int node, r;

	r = luo_fdtw_start(&w, 4096, 1 << 20);
	if (!r)
		r = luo_fdtw_begin_node(&w, "");
	if (!r)
		r = luo_fields_write_node(&w, st, version, st->instance);
	if (!r)
		r = luo_fdtw_end_node(&w);
	if (!r)
		r = luo_fdtw_finish(&w, &fdt, &len);
	REQUIRE(r == 0);
	luo_fdtw_abandon(&w);
	node = fdt_subnode_offset(fdt, 0, LUO_ABI_NODE_COMPONENT_FIELDS);
	REQUIRE(node >= 0);
	memcpy(&again, st->instance, sizeof(again));
	start_state(st->instance, version);
	r = luo_fields_load_node(st, version, fdt, node, reason, sizeof(reason));
	REQUIRE(r == 0);
	/*
	 * Fields not carried at @version are not written, and read back as
	 * their defaults; the first read may have taken a value for them from
	 * the hostile blob: copy them over for the compare.
	 */
	for (size_t i = 0; i < header.n_fields; i++)
		if (!luo_field_at(&decls[i], version))
			memcpy((uint8_t *)st->instance + decls[i].offset, (uint8_t *)&again + decls[i].offset,
			       decls[i].size);
	REQUIRE(memcmp(&again, st->instance, sizeof(again)) == 0);
	free(fdt);
}

static void read_all(const uint8_t *fdt, size_t len, uint32_t version)
{
	char reason[LUO_REASON_MAX];
	struct state live, before;
	struct luo_component_state st = { "fuzz", 1, 4, 1, 4, 0, &header, decls, &live };
	int node, r, n = 0;

	if (luo_blob_check(fdt, len, reason, sizeof(reason)) != 0)
		return;
	for (node = fdt_next_node(fdt, -1, NULL); node >= 0 && n < 16; node = fdt_next_node(fdt, node, NULL)) {
		const char *name = fdt_get_name(fdt, node, NULL);

		if (!name || strcmp(name, LUO_ABI_NODE_COMPONENT_FIELDS) != 0)
			continue;
		n++;
		start_state(&live, version);
		memcpy(&before, &live, sizeof(live));
		reason[0] = '\0';
		r = luo_fields_load_node(&st, version, fdt, node, reason, sizeof(reason));
		if (r) {
			REQUIRE(r == -EBADMSG || r == -ERANGE || r == -EPROTO || r == -ENOMEM);
			REQUIRE(r == -ENOMEM || reason[0] != '\0'); /* out of memory comes without a reason */
			REQUIRE(memcmp(&live, &before, sizeof(live)) == 0);
			continue;
		}
		check_valid(&live, version);
		round_trip(&st, version);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool checked;
	char reason[LUO_REASON_MAX];
	uint32_t version;
	uint8_t *buf;

	if (!checked) {
		REQUIRE(luo_fields_check(&header, decls, reason, sizeof(reason)) == 0);
		checked = true;
	}
	if (size < 1)
		return 0;
	version = 1 + (data[0] & 3);
	if (data[0] & 4) {
		size_t len;

		buf = malloc(SCRIPT_TREE_MAX);
		if (!buf)
			return 0;
		if (fdt_script_build(data + 1, size - 1, buf, SCRIPT_TREE_MAX) == 0) {
			len = fdt_totalsize(buf);
			read_all(buf, len, version);
		}
		free(buf);
		return 0;
	}
	/* Raw: at its exact size, so a read past it is an ASan report. */
	buf = malloc(size - 1 ? size - 1 : 1);
	if (!buf)
		return 0;
	memcpy(buf, data + 1, size - 1);
	read_all(buf, size - 1, version);
	free(buf);
	return 0;
}
