/* SPDX-License-Identifier: MIT */
#ifndef LUO_TYPEDESC_H
#define LUO_TYPEDESC_H

/*
 * DOC: type descriptions, the internal contract
 *
 * A type description is the compiler's account of one type that crosses an
 * update (abi.h, LUO_ABI_NOTE_TYPEDESC): written by luo-describe from DWARF,
 * read back from .note.luo.types by the manifest reader, compared by
 * negotiation. Everything here is pure: bytes in, a checked description,
 * a digest or a verdict out.
 *
 *   luo_typedesc_parse()    a note's bytes, hostile: exact length, every
 *                           count under a named maximum, every reference to
 *                           a type item, member runs where they belong
 *   luo_typedesc_digest()   the shape: what two images must agree on,
 *                           member names left out (a rename is no change)
 *   luo_typedesc_compare()  two descriptions of one type: same, or the
 *                           first difference named by struct and member
 *                           ("struct kv_item, member exptime: ...")
 *   luo_typedesc_print()    one line per item, for luoctl manifest --types
 *
 * The comparison walks both graphs together from the root with an explicit
 * work list (no recursion: a hostile graph is as deep as it likes), pairing
 * each old item with one new item.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "luo/abi.h"

/* Items of one description. */
#define LUO_TYPEDESC_ITEMS_MAX 65536u
/* Bytes of one description's strings. */
#define LUO_TYPEDESC_STRINGS_MAX (1u << 20)
/* A reason naming a difference. */
#define LUO_TYPEDESC_WHY_MAX 256

struct luo_typedesc {
	char component[LUO_ABI_NOTE_NAME_SIZE];
	uint32_t version;
	uint32_t role;
	uint64_t digest;
	uint32_t n_items;
	uint32_t strings_size;
	struct luo_abi_type_item *items; /* malloc'd */
	char *strings;                   /* malloc'd, strings_size bytes, ends in NUL */
};

/*
 * Check and copy the description of a LUO_ABI_NOTE_TYPEDESC note.
 * Return: 0; -EBADMSG malformed (reason says how, starting with @origin);
 * -ENOMEM. @ret is untouched on failure.
 */
int luo_typedesc_parse(const void *desc, size_t len, const char *origin, struct luo_typedesc *ret, char *reason,
		       size_t rlen);
void luo_typedesc_done(struct luo_typedesc *d);

uint64_t luo_typedesc_digest(const struct luo_abi_type_item *items, uint32_t n_items, const char *strings,
			     uint32_t strings_size);

/*
 * Return: 0 the same type; 1 different, @why names the first difference;
 * -ENOMEM.
 */
int luo_typedesc_compare(const struct luo_typedesc *old, const struct luo_typedesc *new, char *why, size_t why_len);

/* The name of item @i ("struct kv_item", "uint32_t", "(anonymous union)"). */
void luo_typedesc_item_name(const struct luo_typedesc *d, uint32_t i, char *buf, size_t len);

void luo_typedesc_print(FILE *f, const struct luo_typedesc *d, const char *indent);

/* A fixed-size name: non-empty, bytes 0x21..0x7e, NUL-terminated and NUL-padded. */
bool luo_fixed_name_ok(const char *s, size_t size);

/* "payload", "arena", "handler data". */
const char *luo_type_role_name(uint32_t role);

#endif /* LUO_TYPEDESC_H */
