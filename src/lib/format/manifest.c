/* SPDX-License-Identifier: MIT */
/*
 * DOC: the manifest model
 *
 * A manifest's entries and layouts, checked as they are added: strings
 * terminated, non-empty, printable and zero-padded; ranges valid; a
 * layout's fields inside the struct, ordered slots, no overlap, no name
 * twice. Counts are checked against the LUO_MANIFEST_*_MAX limits before
 * anything grows. Who reads manifests (manifest.h): manifest-note.c (the
 * notes), manifest-elf.c (a binary on disk), manifest-search.c (its
 * libraries), manifest-proc.c (a running process, this one).
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "format.h"
#include "manifest.h"

/* ------------------------------------------------------------------------ */
/* The manifest object                                                       */

int luo_manifest_new(struct luo_manifest **ret)
{
	struct luo_manifest *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	*ret = m;
	return 0;
}

void luo_manifest_free(struct luo_manifest *m)
{
	if (!m)
		return;
	luo_manifest_fields_free(m);
	free(m->entries);
	free(m->layouts);
	for (size_t i = 0; i < m->n_types; i++)
		luo_typedesc_done(&m->types[i].desc);
	free(m->types);
	free(m);
}

const char *luo_kind_name(uint32_t kind)
{
	switch (kind) {
	case LUO_ABI_KIND_COMPONENT:
		return "component";
	case LUO_ABI_KIND_HANDLER:
		return "handler";
	case LUO_ABI_KIND_FORMAT:
		return "format";
	}
	return "unknown";
}

const struct luo_manifest_entry *luo_manifest_find(const struct luo_manifest *m, uint32_t kind, const char *name)
{
	for (size_t i = 0; i < m->n_entries; i++)
		if (m->entries[i].kind == kind && strcmp(m->entries[i].name, name) == 0)
			return &m->entries[i];
	return NULL;
}

const struct luo_manifest_layout *luo_manifest_find_layout(const struct luo_manifest *m, const char *component,
							   uint32_t version)
{
	for (size_t i = 0; i < m->n_layouts; i++)
		if (m->layouts[i].version == version && strcmp(m->layouts[i].component, component) == 0)
			return &m->layouts[i];
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Checking records                                                          */

/*
 * A string in a fixed array: 1..size-1 bytes in [lo, 0x7e], NUL-terminated,
 * zero-padded to the end of the array.
 */
static bool fixed_string_ok(const char *s, size_t size, unsigned char lo)
{
	size_t len = strnlen(s, size);

	if (len == 0 || len >= size)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < lo || (unsigned char)s[i] > 0x7e)
			return false;
	for (size_t i = len; i < size; i++)
		if (s[i] != '\0')
			return false;
	return true;
}

static bool ranges_ok(struct luo_version_range rd, struct luo_version_range wr)
{
	return rd.min >= 1 && rd.min <= rd.max && rd.min <= wr.min && wr.min <= wr.max && wr.max <= rd.max;
}

static int check_entry(const struct luo_manifest_entry *e, const char *origin, char *reason, size_t rlen)
{
	if (!fixed_string_ok(e->name, sizeof(e->name), 0x21))
		return luo_refuse(reason, rlen, "%s: a manifest entry has a name that is empty, unterminated, not printable "
			      "or not zero-padded", origin);
	switch (e->kind) {
	case LUO_ABI_KIND_COMPONENT:
		if (e->flags & ~LUO_ABI_FLAG_OPTIONAL)
			return luo_refuse(reason, rlen, "%s: component '%s' has unknown flags 0x%x", origin, e->name,
				      e->flags);
		break;
	case LUO_ABI_KIND_HANDLER:
	case LUO_ABI_KIND_FORMAT:
		if (e->flags)
			return luo_refuse(reason, rlen, "%s: %s '%s' has flags 0x%x (it is always mandatory)", origin,
				      luo_kind_name(e->kind), e->name, e->flags);
		if (e->kind == LUO_ABI_KIND_HANDLER && strlen(e->name) > LUO_HANDLER_NAME_MAX)
			return luo_refuse(reason, rlen, "%s: handler name '%s' is longer than %d bytes", origin, e->name,
				      LUO_HANDLER_NAME_MAX);
		break;
	default:
		return luo_refuse(reason, rlen, "%s: '%s' has unknown kind %u", origin, e->name, e->kind);
	}
	if (!ranges_ok(e->read, e->write))
		return luo_refuse(reason, rlen,
			      "%s: %s '%s' has invalid ranges read %u..%u write %u..%u "
			      "(need 1 <= read_min <= write_min <= write_max <= read_max)",
			      origin, luo_kind_name(e->kind), e->name, e->read.min, e->read.max, e->write.min,
			      e->write.max);
	return 0;
}

int luo_manifest_add_entry(struct luo_manifest *m, const struct luo_manifest_entry *e, const char *origin,
			   char *reason, size_t rlen)
{
	const struct luo_manifest_entry *old;
	struct luo_manifest_entry *grown;
	int r;

	r = check_entry(e, origin, reason, rlen);
	if (r < 0)
		return r;
	old = luo_manifest_find(m, e->kind, e->name);
	if (old) {
		if (memcmp(old, e, sizeof(*e)) == 0)
			return 0; /* the same declaration seen twice */
		return luo_refuse(reason, rlen, "%s: %s '%s' is declared twice with different ranges or flags", origin,
			      luo_kind_name(e->kind), e->name);
	}
	if (m->n_entries >= LUO_MANIFEST_ENTRIES_MAX)
		return luo_refuse(reason, rlen, "%s: more than %d manifest entries", origin, LUO_MANIFEST_ENTRIES_MAX);
	grown = realloc(m->entries, (m->n_entries + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	m->entries = grown;
	m->entries[m->n_entries++] = *e;
	return 0;
}

static int cmp_field(const void *a, const void *b)
{
	const struct luo_abi_note_field *x = a, *y = b;

	if (x->offset != y->offset)
		return (x->offset > y->offset) - (x->offset < y->offset);
	return strcmp(x->name, y->name);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static uint64_t fnv_u32(uint64_t h, uint32_t v)
{
	unsigned char le[4] = { v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24 };

	return fnv(h, le, sizeof(le));
}

uint64_t luo_layout_fingerprint(const struct luo_manifest_layout *l)
{
	struct luo_abi_note_field sorted[LUO_ABI_LAYOUT_FIELDS_MAX];
	uint32_t n = l->n_fields <= LUO_ABI_LAYOUT_FIELDS_MAX ? l->n_fields : LUO_ABI_LAYOUT_FIELDS_MAX;
	uint64_t h = 0xcbf29ce484222325ull;

	memcpy(sorted, l->fields, n * sizeof(sorted[0]));
	qsort(sorted, n, sizeof(sorted[0]), cmp_field);
	h = fnv_u32(h, l->struct_size);
	for (uint32_t i = 0; i < n; i++) {
		h = fnv(h, sorted[i].name, strnlen(sorted[i].name, sizeof(sorted[i].name)) + 1);
		h = fnv(h, sorted[i].type, strnlen(sorted[i].type, sizeof(sorted[i].type)) + 1);
		h = fnv_u32(h, sorted[i].offset);
		h = fnv_u32(h, sorted[i].size);
	}
	return h;
}

static bool all_zero(const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

int luo_manifest_add_layout(struct luo_manifest *m, const struct luo_abi_note_layout *d, const char *origin, char *reason,
		      size_t rlen)
{
	struct luo_manifest_layout l = { 0 };
	struct luo_abi_note_field sorted[LUO_ABI_LAYOUT_FIELDS_MAX];
	const struct luo_manifest_layout *old;
	struct luo_manifest_layout *grown;
	uint32_t n = 0;

	if (!fixed_string_ok(d->component, sizeof(d->component), 0x21))
		return luo_refuse(reason, rlen, "%s: a layout names its component badly (empty, unterminated, not printable "
			      "or not zero-padded)", origin);
	if (d->version == 0 || d->struct_size == 0 || d->struct_size > LUO_COMPONENT_DATA_MAX)
		return luo_refuse(reason, rlen, "%s: layout of '%s': version %u or struct size %u out of range", origin,
			      d->component, d->version, d->struct_size);
	for (; n < LUO_ABI_LAYOUT_FIELDS_MAX && d->fields[n].name[0]; n++) {
		const struct luo_abi_note_field *f = &d->fields[n];

		if (!fixed_string_ok(f->name, sizeof(f->name), 0x21) || !fixed_string_ok(f->type, sizeof(f->type), 0x20))
			return luo_refuse(reason, rlen, "%s: layout of '%s' v%u: field %u has a bad name or type", origin,
				      d->component, d->version, n);
		if (f->size == 0 || (uint64_t)f->offset + f->size > d->struct_size)
			return luo_refuse(reason, rlen, "%s: layout of '%s' v%u: field '%s' (offset %u, size %u) is "
				      "outside the %u-byte struct", origin, d->component, d->version, f->name, f->offset,
				      f->size, d->struct_size);
	}
	if (n == 0)
		return luo_refuse(reason, rlen, "%s: layout of '%s' v%u has no fields", origin, d->component, d->version);
	if (!all_zero(&d->fields[n], (LUO_ABI_LAYOUT_FIELDS_MAX - n) * sizeof(d->fields[0])))
		return luo_refuse(reason, rlen, "%s: layout of '%s' v%u: unused field slots after slot %u are not zero",
			      origin, d->component, d->version, n);
	memcpy(sorted, d->fields, n * sizeof(sorted[0]));
	qsort(sorted, n, sizeof(sorted[0]), cmp_field);
	for (uint32_t i = 1; i < n; i++) {
		if (sorted[i - 1].offset + sorted[i - 1].size > sorted[i].offset)
			return luo_refuse(reason, rlen, "%s: layout of '%s' v%u: fields '%s' and '%s' overlap", origin,
				      d->component, d->version, sorted[i - 1].name, sorted[i].name);
	}
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t j = i + 1; j < n; j++)
			if (strcmp(d->fields[i].name, d->fields[j].name) == 0)
				return luo_refuse(reason, rlen, "%s: layout of '%s' v%u names field '%s' twice", origin,
					      d->component, d->version, d->fields[i].name);

	memcpy(l.component, d->component, sizeof(l.component));
	l.version = d->version;
	l.struct_size = d->struct_size;
	l.n_fields = n;
	memcpy(l.fields, d->fields, n * sizeof(l.fields[0]));
	l.fingerprint = luo_layout_fingerprint(&l);

	old = luo_manifest_find_layout(m, l.component, l.version);
	if (old) {
		if (old->fingerprint == l.fingerprint && old->struct_size == l.struct_size)
			return 0;
		return luo_refuse(reason, rlen, "%s: two different layouts of '%s' version %u", origin, l.component,
			      l.version);
	}
	if (m->n_layouts >= LUO_MANIFEST_LAYOUTS_MAX)
		return luo_refuse(reason, rlen, "%s: more than %d layouts", origin, LUO_MANIFEST_LAYOUTS_MAX);
	grown = realloc(m->layouts, (m->n_layouts + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	m->layouts = grown;
	m->layouts[m->n_layouts++] = l;
	return 0;
}

