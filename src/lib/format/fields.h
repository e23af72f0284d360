/* SPDX-License-Identifier: MIT */
#ifndef LUO_LIB_FIELDS_H
#define LUO_LIB_FIELDS_H

/*
 * DOC: declared fields, the internal contract (fields.c, fields-report.c)
 *
 * fields-check.c: the checks of a field list (registration and the
 * manifest reader). fields.c: the property encoding of abi.h ("Declared
 * fields") and the struct image. fields-registry.c: the registry of
 * LUO_COMPONENT_STATE()s. Errors:
 * -EINVAL a bad list or a value that cannot be written, -EBADMSG /
 * -ERANGE / -EPROTO a blob the reader refuses (reason names the field),
 * -ENOMEM, -ENOSPC (the blob would pass its maximum, fdt-writer.h).
 *
 * fields-report.c: the per-field verdict of one component version between
 * two manifests, for negotiation and luoctl.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "luo/luo.h"

struct luo_payload;
struct luo_manifest;

/* The declared state of @c, if it was registered by LUO_COMPONENT_STATE(); else NULL. */
const struct luo_component_state *luo_fields_of(const struct luo_component *c);

/* fields-check.c: a list checked as a hostile note: 0, or -EBADMSG with @reason; its helpers. */
bool luo_field_name_ok(const char *s, size_t size); /* 1..size-1 bytes of [a-z0-9_], zero-padded to @size */

/* Inline: the load calls them once per field. UINT, INT, BOOL: */
static inline bool luo_field_is_integer(uint32_t type)
{
	return type == LUO_ABI_FIELD_UINT || type == LUO_ABI_FIELD_INT || type == LUO_ABI_FIELD_BOOL;
}

static inline bool luo_field_width_ok(uint32_t size)
{
	return size == 1 || size == 2 || size == 4 || size == 8;
}

/* Does @v, read as @type, fit in @size bytes of it? */
static inline bool luo_field_value_fits(uint32_t type, uint32_t size, __int128 v)
{
	if (type == LUO_ABI_FIELD_BOOL)
		return v == 0 || v == 1;
	if (type == LUO_ABI_FIELD_UINT)
		return v >= 0 && (size == 8 ? v <= (__int128)UINT64_MAX : v < ((__int128)1 << (8 * size)));
	return v >= -((__int128)1 << (8 * size - 1)) && v < ((__int128)1 << (8 * size - 1));
}

static inline __int128 luo_field_default(const struct luo_abi_note_fielddecl *d)
{
	return d->type == LUO_ABI_FIELD_INT ? (__int128)(int64_t)d->deflt : (__int128)d->deflt;
}
int luo_fields_check(const struct luo_abi_note_fields *h, const struct luo_abi_note_fielddecl *d, char *reason,
		     size_t reason_len);

/* Is @d carried at @version? */
static inline bool luo_field_at(const struct luo_abi_note_fielddecl *d, uint32_t version)
{
	return d->from <= version && version <= d->to;
}

/* Copy the live struct into @out (the snapshot luo_fields_write_node() encodes). */
int luo_fields_snapshot(const struct luo_component_state *st, struct luo_payload *out);
/* A bound on the bytes luo_fields_write_node() adds to a blob. */
size_t luo_fields_wire_size(const struct luo_component_state *st, uint32_t version);
/* Write the "fields" subnode of @st at @version from @snapshot (fdt-writer.h). */
struct luo_fdtw;
int luo_fields_write_node(struct luo_fdtw *w, const struct luo_component_state *st, uint32_t version,
			  const void *snapshot);
/*
 * Read the "fields" subnode @node of @fdt, written at @version, into the
 * live struct, all or nothing. @reason names the field refused.
 */
int luo_fields_load_node(const struct luo_component_state *st, uint32_t version, const void *fdt, int node,
			 char *reason, size_t reason_len);
/* The struct image of @version: its size, writing it, reading it (all or nothing). */
size_t luo_fields_image_size(const struct luo_component_state *st, uint32_t version);
int luo_fields_image_save(const struct luo_component_state *st, uint32_t version, struct luo_payload *out);
int luo_fields_image_load(const struct luo_component_state *st, uint32_t version, const void *data, size_t len,
			  char *reason, size_t reason_len);

/* A type's name, as luoctl prints it: "u32", "i8", "bool", "bytes[16]", "string[32]". */
void luo_field_type_name(const struct luo_abi_note_fielddecl *d, char *buf, size_t len);

/* fields-report.c: what happens to one field of a component version. */
enum luo_field_fate {
	LUO_FIELD_CROSSES = 1,  /* written by the old image, read by the new */
	LUO_FIELD_NARROWED,     /* crosses, into a narrower type: refused at load if the value does not fit */
	LUO_FIELD_DEFAULTED,    /* the new image reads it, the old does not write it: default */
	LUO_FIELD_LOST,         /* the old image writes it, the new does not read it: dropped */
	LUO_FIELD_REFUSED,      /* required and not written, must-understand and not read, or types that do not convert */
};

struct luo_field_verdict {
	char name[LUO_ABI_NOTE_FIELD_NAME_SIZE];
	enum luo_field_fate fate;
	char old_type[24], new_type[24]; /* "" when that side has none */
	const char *why;                 /* a fixed string, for REFUSED and NARROWED */
};

/*
 * The fields of @component at @version from @old to @new. Return: the
 * number of verdicts (malloc'd into *@ret, the caller frees), 0 when
 * either image declares no fields for it (the struct image goes: its type
 * is checked by LUO_PAYLOAD_TYPE()), -ENOMEM.
 */
int luo_fields_verdicts(const struct luo_manifest *old, const struct luo_manifest *new, const char *component,
			uint32_t version, struct luo_field_verdict **ret);
const char *luo_field_fate_name(enum luo_field_fate fate);
/*
 * For negotiate.c: a component entry @r given @version: refuse it (or drop
 * it, if optional) when a field refuses, naming the field (1), else append
 * the counts to its why (0); -ENOMEM.
 */
int luo_fields_negotiate(const struct luo_manifest *old, const struct luo_manifest *new, uint32_t version,
			 struct luo_report_entry *r);

#endif /* LUO_LIB_FIELDS_H */
