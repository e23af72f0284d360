/* SPDX-License-Identifier: MIT */
/*
 * DOC: declared fields, written and read by name
 *
 * A component declared with LUO_COMPONENT_STATE() (include/luo/fields.h)
 * is registered (fields-registry.c) with the struct image below as its
 * save and load (the bytes an image built before fields reads and
 * writes); update.c chooses
 * the property encoding instead when the new image's manifest declares
 * the component's fields, blob-write.c writes it (luo_fields_write_node()
 * from a snapshot taken in the save step, so the blob holds one consistent
 * state), core.c reads it (luo_fields_load_node()).
 *
 * The blob is hostile: every property is checked before use (a name of a
 * field list, a tag, a length for its type, no property twice, at most
 * LUO_ABI_FIELDS_MAX of them), and the load goes into a copy of the struct
 * that replaces the live one only when every field was taken. The writer's
 * and reader's lists are usually in one order: the next declared field is
 * tried first, so a load is linear in the fields.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfdt.h>

#include "cleanup.h"
#include "fdt-writer.h"
#include "fields.h"
#include "format.h"

#define refuse(reason, rlen, ...)                                              \
	({                                                                     \
		luo_reasonf((reason), (rlen), __VA_ARGS__);                    \
		-EBADMSG;                                                      \
	})

/* ------------------------------------------------------------------------ */
/* Integers in memory and on the wire                                        */

static __int128 mem_get(uint32_t type, uint32_t size, const uint8_t *p)
{
	switch (size) {
	case 1: {
		uint8_t v = *p;
		return type == LUO_ABI_FIELD_INT ? (__int128)(int8_t)v : (__int128)v;
	}
	case 2: {
		uint16_t v;
		memcpy(&v, p, 2);
		return type == LUO_ABI_FIELD_INT ? (__int128)(int16_t)v : (__int128)v;
	}
	case 4: {
		uint32_t v;
		memcpy(&v, p, 4);
		return type == LUO_ABI_FIELD_INT ? (__int128)(int32_t)v : (__int128)v;
	}
	default: {
		uint64_t v;
		memcpy(&v, p, 8);
		return type == LUO_ABI_FIELD_INT ? (__int128)(int64_t)v : (__int128)v;
	}
	}
}

/* @v fits (checked by the caller): its low @size bytes, in the host's order. */
static void mem_put(uint32_t size, uint8_t *p, __int128 v)
{
	uint64_t u = (uint64_t)v;

	switch (size) {
	case 1:
		*p = (uint8_t)u;
		return;
	case 2: {
		uint16_t x = (uint16_t)u;
		memcpy(p, &x, 2);
		return;
	}
	case 4: {
		uint32_t x = (uint32_t)u;
		memcpy(p, &x, 4);
		return;
	}
	default:
		memcpy(p, &u, 8);
	}
}

static __int128 wire_get(uint32_t type, uint32_t size, const uint8_t *p)
{
	uint64_t u = 0;

	for (uint32_t i = 0; i < size; i++)
		u = (u << 8) | p[i];
	if (type == LUO_ABI_FIELD_INT && size < 8 && (u >> (8 * size - 1)) & 1)
		return (__int128)u - ((__int128)1 << (8 * size));
	return type == LUO_ABI_FIELD_INT ? (__int128)(int64_t)u : (__int128)u;
}

static void wire_put(uint32_t size, uint8_t *p, __int128 v)
{
	uint64_t u = (uint64_t)v;

	for (uint32_t i = size; i-- > 0; u >>= 8)
		p[i] = (uint8_t)u;
}

/*
 * The common case, both ways: an integer (not a bool) of one width in
 * memory and on the wire, whose bytes are the same two's complement in
 * another order -- it always fits. @size is 1, 2, 4 or 8.
 */
static void swap_copy(uint32_t size, uint8_t *to, const uint8_t *from)
{
	switch (size) {
	case 1:
		*to = *from;
		return;
	case 2: {
		uint16_t x;
		memcpy(&x, from, 2);
		x = __builtin_bswap16(x);
		memcpy(to, &x, 2);
		return;
	}
	case 4: {
		uint32_t x;
		memcpy(&x, from, 4);
		x = __builtin_bswap32(x);
		memcpy(to, &x, 4);
		return;
	}
	default: {
		uint64_t x;
		memcpy(&x, from, 8);
		x = __builtin_bswap64(x);
		memcpy(to, &x, 8);
	}
	}
}

static void set_default(const struct luo_abi_note_fielddecl *d, uint8_t *base)
{
	if (luo_field_is_integer(d->type))
		mem_put(d->size, base + d->offset, luo_field_default(d));
	else
		memset(base + d->offset, 0, d->size);
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */

int luo_fields_snapshot(const struct luo_component_state *st, struct luo_payload *out)
{
	return luo_payload_write(out, st->instance, st->fields->struct_size);
}

size_t luo_fields_wire_size(const struct luo_component_state *st, uint32_t version)
{
	size_t size = 64;

	for (uint32_t i = 0; i < st->fields->n_fields; i++)
		if (luo_field_at(&st->decls[i], version))
			/* property header, name in the strings block, tag, value, padding */
			size += 12 + LUO_ABI_NOTE_FIELD_NAME_SIZE + 4 + st->decls[i].size + 4;
	return size;
}

int luo_fields_write_node(struct luo_fdtw *w, const struct luo_component_state *st, uint32_t version,
			  const void *snapshot)
{
	const uint8_t *base = snapshot;
	int r;

	r = luo_fdtw_begin_node(w, LUO_ABI_NODE_COMPONENT_FIELDS);
	for (uint32_t i = 0; !r && i < st->fields->n_fields; i++) {
		const struct luo_abi_note_fielddecl *d = &st->decls[i];
		uint32_t len = d->size;
		uint8_t *p;

		if (!luo_field_at(d, version))
			continue;
		if (d->type == LUO_ABI_FIELD_STRING) {
			len = (uint32_t)strnlen((const char *)base + d->offset, d->size);
			if (len == d->size)
				return -EINVAL; /* not terminated: the program broke its own string */
		}
		if (d->type == LUO_ABI_FIELD_BOOL && base[d->offset] > 1)
			return -EINVAL;
		r = luo_fdtw_property_placeholder(w, d->name, 4 + len, (void **)&p);
		if (r)
			break;
		fdt32_st((fdt32_t *)p, d->type | ((d->flags & LUO_ABI_FIELD_MUST_UNDERSTAND) ? LUO_ABI_FIELD_WIRE_MUST_UNDERSTAND : 0));
		if (d->flags & LUO_ABI_FIELD_VERSION)
			wire_put(d->size, p + 4, version);
		else if (d->type == LUO_ABI_FIELD_UINT || d->type == LUO_ABI_FIELD_INT)
			swap_copy(d->size, p + 4, base + d->offset);
		else if (luo_field_is_integer(d->type))
			wire_put(d->size, p + 4, mem_get(d->type, d->size, base + d->offset));
		else
			memcpy(p + 4, base + d->offset, len);
	}
	if (!r)
		r = luo_fdtw_end_node(w);
	return r;
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */

/* Take one property's value (@tag, @v, @len checked here) into field @d of @base. */
static int take(const struct luo_abi_note_fielddecl *d, uint32_t tag, const uint8_t *v, uint32_t len, uint8_t *base,
		char *reason, size_t rlen)
{
	uint32_t wtype = tag & 0xff;

	/* An integer of the declared type and width (checked when declared): it fits. */
	if (wtype == d->type && len == d->size && (wtype == LUO_ABI_FIELD_UINT || wtype == LUO_ABI_FIELD_INT) &&
	    luo_field_width_ok(len)) {
		swap_copy(len, base + d->offset, v);
		return 0;
	}
	if (luo_field_is_integer(wtype)) {
		__int128 x;

		if (wtype == LUO_ABI_FIELD_BOOL ? len != 1 : !luo_field_width_ok(len))
			return refuse(reason, rlen, "field '%s': %u bytes for an integer", d->name, len);
		x = wire_get(wtype, len, v);
		if (wtype == LUO_ABI_FIELD_BOOL && x > 1)
			return refuse(reason, rlen, "field '%s': bool %u", d->name, (unsigned)x);
		if (!luo_field_is_integer(d->type))
			return luo_reasonf(reason, rlen, "field '%s': an integer came, this build reads %s", d->name,
					   d->type == LUO_ABI_FIELD_STRING ? "a string" : "bytes"),
			       -EPROTO;
		if (!luo_field_value_fits(d->type, d->size, x)) {
			char type[24];

			luo_field_type_name(d, type, sizeof(type));
			luo_reasonf(reason, rlen, "field '%s': value %s%llu does not fit in %s", d->name,
				    x < 0 ? "-" : "", (unsigned long long)(x < 0 ? -x : x), type);
			return -ERANGE;
		}
		mem_put(d->size, base + d->offset, x);
		return 0;
	}
	if (wtype != LUO_ABI_FIELD_BYTES && wtype != LUO_ABI_FIELD_STRING)
		return refuse(reason, rlen, "field '%s': unknown type %u", d->name, wtype);
	if (len > LUO_ABI_FIELD_SIZE_MAX)
		return refuse(reason, rlen, "field '%s': %u bytes, more than %u", d->name, len, LUO_ABI_FIELD_SIZE_MAX);
	if (wtype == LUO_ABI_FIELD_STRING && memchr(v, '\0', len))
		return refuse(reason, rlen, "field '%s': a string with a NUL inside", d->name);
	if (wtype != d->type)
		return luo_reasonf(reason, rlen, "field '%s': %s came, this build reads %s", d->name,
				   wtype == LUO_ABI_FIELD_STRING ? "a string" : "bytes",
				   luo_field_is_integer(d->type) ? "an integer" : d->type == LUO_ABI_FIELD_STRING ? "a string" : "bytes"),
		       -EPROTO;
	if (d->type == LUO_ABI_FIELD_STRING ? len > d->size - 1 : len > d->size) {
		/* Bytes narrow like integers: only what is not lost (zeros) may go. */
		for (uint32_t i = d->size; d->type == LUO_ABI_FIELD_BYTES && i < len; i++)
			if (v[i])
				goto too_long;
		if (d->type == LUO_ABI_FIELD_BYTES) {
			len = d->size;
		} else {
too_long:
			luo_reasonf(reason, rlen, "field '%s': %u bytes do not fit in %u", d->name, len, d->size);
			return -ERANGE;
		}
	}
	memcpy(base + d->offset, v, len);
	memset(base + d->offset + len, 0, d->size - len);
	return 0;
}

/* Fields marked LUO_ABI_FIELD_VERSION in @copy must say @version. */
static int check_version_fields(const struct luo_component_state *st, uint32_t version, const uint8_t *copy,
				char *reason, size_t rlen)
{
	for (uint32_t i = 0; i < st->fields->n_fields; i++) {
		const struct luo_abi_note_fielddecl *d = &st->decls[i];
		__int128 v;

		if (!(d->flags & LUO_ABI_FIELD_VERSION) || !luo_field_at(d, version))
			continue;
		v = mem_get(d->type, d->size, copy + d->offset);
		if (v != version) {
			luo_reasonf(reason, rlen, "field '%s' says version %lld; the state came at version %u", d->name,
				    (long long)v, version);
			return -EPROTO;
		}
	}
	return 0;
}

/*
 * The tag at @off of the structure block, read directly: fdt_next_tag()
 * takes three bounds-checked looks at each property (with 1,000 fields, a
 * third of a load). Every offset, length and name is checked here against
 * the blocks' sizes: a property's header and value lie inside the
 * structure block, its name inside the strings block, terminated within a
 * field name's size -- longer names are no field's, refused all the same.
 * Version 17 only (blob-read.c refuses others), whose values are not
 * realigned. *@ret_next: the next tag's offset. Returns the tag, 0 when
 * the block is damaged; a property's *@ret_value is NULL when its name is
 * outside the strings block or longer than a field's.
 */
struct blocks {
	const char *st, *strings; /* the structure and strings blocks */
	uint32_t size, strings_size;
};

/* Inlined in its loop: a call per tag was a sixth of a load. */
static inline __attribute__((always_inline)) uint32_t next_tag(const struct blocks *b, uint32_t off, uint32_t *ret_next,
								const char **ret_name, const uint8_t **ret_value,
								uint32_t *ret_len)
{
	const char *st = b->st, *strings = b->strings, *end;
	uint32_t size = b->size, strings_size = b->strings_size, tag, len, nameoff, room;

	if (off > size || size - off < FDT_TAGSIZE)
		return 0;
	tag = fdt32_ld((const fdt32_t *)(st + off));
	off += FDT_TAGSIZE;
	switch (tag) {
	case FDT_BEGIN_NODE:
		end = memchr(st + off, '\0', size - off);
		if (!end)
			return 0;
		off = (uint32_t)(end - st) + 1;
		break;
	case FDT_PROP:
		if (size - off < 2 * sizeof(fdt32_t))
			return 0;
		len = fdt32_ld((const fdt32_t *)(st + off));
		nameoff = fdt32_ld((const fdt32_t *)(st + off + sizeof(fdt32_t)));
		off += 2 * sizeof(fdt32_t);
		if (len > size - off)
			return 0;
		room = nameoff < strings_size ? strings_size - nameoff : 0;
		*ret_name = strings + nameoff;
		*ret_value = (const uint8_t *)st + off;
		*ret_len = len;
		if (!room || !memchr(strings + nameoff, '\0', room < LUO_ABI_NOTE_FIELD_NAME_SIZE
								       ? room : LUO_ABI_NOTE_FIELD_NAME_SIZE))
			*ret_value = NULL, *ret_name = NULL; /* no field's name: the caller refuses it */
		off += len;
		break;
	case FDT_END_NODE:
	case FDT_NOP:
	case FDT_END:
		break;
	default:
		return 0;
	}
	*ret_next = (off + FDT_TAGSIZE - 1) & ~(uint32_t)(FDT_TAGSIZE - 1);
	return tag;
}

static int find_decl(const struct luo_component_state *st, const char *name, uint32_t hint)
{
	uint32_t n = st->fields->n_fields;

	if (hint < n && strcmp(st->decls[hint].name, name) == 0)
		return (int)hint;
	for (uint32_t i = 0; i < n; i++)
		if (strcmp(st->decls[i].name, name) == 0)
			return (int)i;
	return -1;
}

int luo_fields_load_node(const struct luo_component_state *st, uint32_t version, const void *fdt, int node,
			 char *reason, size_t rlen)
{
	uint32_t n = st->fields->n_fields, hint = 0, n_props = 0;
	_cleanup_free_ uint8_t *copy = NULL;
	_cleanup_free_ bool *seen = NULL;
	uint32_t tag, wtag, off, next, len = 0;
	const uint8_t *v = NULL;
	const char *name = NULL;
	struct blocks b;
	int r;

	copy = malloc(st->fields->struct_size);
	seen = calloc(n, sizeof(*seen));
	if (!copy || !seen)
		return -ENOMEM;
	memcpy(copy, st->instance, st->fields->struct_size);
	/*
	 * The node's tags, one next_tag() each: properties, NOPs, then its
	 * end -- a subnode is refused.
	 */
	/* The header's offsets and sizes, read once (the caller checked the blob: blob-read.c). */
	if (fdt_version(fdt) < 0x11)
		return refuse(reason, rlen, "the 'fields' node is damaged");
	b = (struct blocks){ (const char *)fdt + fdt_off_dt_struct(fdt), (const char *)fdt + fdt_off_dt_strings(fdt),
			     fdt_size_dt_struct(fdt), fdt_size_dt_strings(fdt) };
	if (node < 0 || next_tag(&b, (uint32_t)node, &next, &name, &v, &len) != FDT_BEGIN_NODE)
		return refuse(reason, rlen, "the 'fields' node is damaged");
	for (uint32_t steps = 0;; steps++) {
		int i;

		off = next;
		tag = next_tag(&b, off, &next, &name, &v, &len);
		if (steps > 2 * LUO_ABI_FIELDS_MAX || tag == 0)
			return refuse(reason, rlen, "the 'fields' node is damaged or holds too many tags");
		if (tag == FDT_NOP)
			continue;
		if (tag != FDT_PROP)
			break;
		if (++n_props > LUO_ABI_FIELDS_MAX)
			return refuse(reason, rlen, "more than %u fields", LUO_ABI_FIELDS_MAX);
		if (!v || len < 4)
			return refuse(reason, rlen, "a field property damaged, with a name longer than %d bytes or "
				      "shorter than its tag", LUO_ABI_NOTE_FIELD_NAME_SIZE - 1);
		/* A name equal to a declared one is valid; any other is checked before it is printed. */
		i = find_decl(st, name, hint);
		if (i < 0 && (strnlen(name, LUO_ABI_NOTE_FIELD_NAME_SIZE) >= LUO_ABI_NOTE_FIELD_NAME_SIZE ||
			      !luo_field_name_ok(name, strlen(name) + 1)))
			return refuse(reason, rlen, "a field whose name is not 1..31 bytes of [a-z0-9_]");
		wtag = fdt32_ld((const fdt32_t *)v);
		if (wtag & ~(0xffu | LUO_ABI_FIELD_WIRE_MUST_UNDERSTAND))
			return refuse(reason, rlen, "field '%s': unknown tag bits 0x%x", name, wtag);
		if (i < 0) {
			if (wtag & LUO_ABI_FIELD_WIRE_MUST_UNDERSTAND) {
				luo_reasonf(reason, rlen, "field '%s' must be understood; this build does not know it",
					    name);
				return -EPROTO;
			}
			continue; /* a newer writer's field: dropped */
		}
		if (seen[i])
			return refuse(reason, rlen, "field '%s' twice", name);
		seen[i] = true;
		hint = (uint32_t)i + 1;
		r = take(&st->decls[i], wtag, v + 4, len - 4, copy, reason, rlen);
		if (r)
			return r;
	}
	if (tag == FDT_BEGIN_NODE)
		return refuse(reason, rlen, "'fields' has a subnode");
	if (tag != FDT_END_NODE)
		return refuse(reason, rlen, "the 'fields' node is damaged");
	for (uint32_t i = 0; i < n; i++) {
		const struct luo_abi_note_fielddecl *d = &st->decls[i];

		if (seen[i])
			continue;
		if ((d->flags & LUO_ABI_FIELD_REQUIRED) && luo_field_at(d, version)) {
			luo_reasonf(reason, rlen, "field '%s' is required at version %u and did not come", d->name,
				    version);
			return -EPROTO;
		}
		set_default(d, copy);
	}
	r = check_version_fields(st, version, copy, reason, rlen);
	if (r)
		return r;
	memcpy(st->instance, copy, st->fields->struct_size);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* The struct image                                                          */

static uint32_t align_of(const struct luo_abi_note_fielddecl *d)
{
	return luo_field_is_integer(d->type) ? d->size : 1;
}

/*
 * The layout of the image of @version: *@ret_offs[i] the offset of field i
 * in it, or UINT32_MAX when the version does not carry it. Returns the size.
 */
static int image_layout(const struct luo_component_state *st, uint32_t version, uint32_t **ret_offs,
			size_t *ret_size)
{
	uint32_t *offs = malloc((st->fields->n_fields ? st->fields->n_fields : 1) * sizeof(*offs));
	size_t at = 0, max = 1;

	if (!offs)
		return -ENOMEM;
	for (uint32_t i = 0; i < st->fields->n_fields; i++) {
		const struct luo_abi_note_fielddecl *d = &st->decls[i];
		size_t a = align_of(d);

		offs[i] = UINT32_MAX;
		if (!luo_field_at(d, version))
			continue;
		at = (at + a - 1) / a * a;
		offs[i] = (uint32_t)at;
		at += d->size;
		max = a > max ? a : max;
	}
	*ret_size = (at + max - 1) / max * max;
	*ret_offs = offs;
	return 0;
}

size_t luo_fields_image_size(const struct luo_component_state *st, uint32_t version)
{
	_cleanup_free_ uint32_t *offs = NULL;
	size_t total = 0;

	if (image_layout(st, version, &offs, &total) < 0)
		return SIZE_MAX;
	return total;
}

int luo_fields_image_save(const struct luo_component_state *st, uint32_t version, struct luo_payload *out)
{
	const uint8_t *base = st->instance;
	_cleanup_free_ uint32_t *offs = NULL;
	_cleanup_free_ uint8_t *img = NULL;
	size_t total;
	int r;

	r = image_layout(st, version, &offs, &total);
	if (r < 0)
		return r;
	img = calloc(1, total ? total : 1);
	if (!img)
		return -ENOMEM;
	for (uint32_t i = 0; i < st->fields->n_fields; i++) {
		if (offs[i] == UINT32_MAX)
			continue;
		if (st->decls[i].flags & LUO_ABI_FIELD_VERSION)
			mem_put(st->decls[i].size, img + offs[i], version);
		else
			memcpy(img + offs[i], base + st->decls[i].offset, st->decls[i].size);
	}
	return luo_payload_write(out, img, total);
}

int luo_fields_image_load(const struct luo_component_state *st, uint32_t version, const void *data, size_t len,
			  char *reason, size_t rlen)
{
	_cleanup_free_ uint32_t *offs = NULL;
	_cleanup_free_ uint8_t *copy = NULL;
	size_t total;
	int r;

	r = image_layout(st, version, &offs, &total);
	if (r < 0)
		return r;
	if (len != total)
		return refuse(reason, rlen, "%zu bytes; the struct image of version %u has %zu", len, version, total);
	copy = malloc(st->fields->struct_size);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, st->instance, st->fields->struct_size);
	for (uint32_t i = 0; i < st->fields->n_fields; i++) {
		const struct luo_abi_note_fielddecl *d = &st->decls[i];
		const uint8_t *p = (const uint8_t *)data + offs[i];

		if (offs[i] == UINT32_MAX) {
			set_default(d, copy);
			continue;
		}
		if (d->type == LUO_ABI_FIELD_BOOL && *p > 1)
			return refuse(reason, rlen, "field '%s': bool %u", d->name, *p);
		if (d->type == LUO_ABI_FIELD_STRING && !memchr(p, '\0', d->size))
			return refuse(reason, rlen, "field '%s': a string without its NUL", d->name);
		memcpy(copy + d->offset, p, d->size);
	}
	r = check_version_fields(st, version, copy, reason, rlen);
	if (r)
		return r;
	memcpy(st->instance, copy, st->fields->struct_size);
	return 0;
}
