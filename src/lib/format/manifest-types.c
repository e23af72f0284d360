/* SPDX-License-Identifier: MIT */
/*
 * DOC: the types a manifest declares, and their descriptions
 *
 * A LUO_ABI_NOTE_TYPE note (in .note.luo) declares that a type crosses an
 * update as the payload, arena root or handler data of a (component,
 * version); luo-describe fills in its digest. A LUO_ABI_NOTE_TYPEDESC note
 * (in .note.luo.types) holds the description itself. Both are hostile
 * input: names checked as a component's, sizes and alignments in range, a
 * (component, version, role) declared twice only if identically, every
 * description matched to exactly one declared type by its digest (a
 * description nobody declared, or one whose digest differs from its
 * note's, refuses the manifest: the binary was altered after
 * luo-describe).
 */

#include <errno.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "format.h"
#include "manifest.h"

const struct luo_manifest_type *luo_manifest_find_type(const struct luo_manifest *m, const char *component,
						       uint32_t version, uint32_t role)
{
	for (size_t i = 0; i < m->n_types; i++)
		if (m->types[i].version == version && m->types[i].role == role &&
		    strcmp(m->types[i].component, component) == 0)
			return &m->types[i];
	return NULL;
}

int luo_manifest_add_type(struct luo_manifest *m, const struct luo_abi_note_type *d, const char *origin, char *reason,
			  size_t rlen)
{
	const struct luo_manifest_type *old;
	struct luo_manifest_type *grown, t = { 0 };

	if (!luo_fixed_name_ok(d->component, sizeof(d->component)) || !luo_fixed_name_ok(d->anchor, sizeof(d->anchor)))
		return luo_refuse(reason, rlen, "%s: a type note names its component or anchor badly", origin);
	if (d->version == 0 || d->role < LUO_ABI_TYPE_PAYLOAD || d->role > LUO_ABI_TYPE_HANDLER || d->size == 0 ||
	    d->size > LUO_COMPONENT_DATA_MAX || d->align == 0 || (d->align & (d->align - 1)) || d->align > 4096)
		return luo_refuse(reason, rlen, "%s: type of '%s': version %u, role %u, size %u or align %u out of range",
			      origin, d->component, d->version, d->role, d->size, d->align);
	memcpy(t.component, d->component, sizeof(t.component));
	memcpy(t.anchor, d->anchor, sizeof(t.anchor));
	t.version = d->version;
	t.role = d->role;
	t.size = d->size;
	t.align = d->align;
	t.digest = d->digest;
	old = luo_manifest_find_type(m, t.component, t.version, t.role);
	if (old) {
		if (old->size == t.size && old->align == t.align && old->digest == t.digest)
			return 0;
		return luo_refuse(reason, rlen, "%s: two different %s types of '%s' version %u", origin,
			      luo_type_role_name(t.role), t.component, t.version);
	}
	if (m->n_types >= LUO_MANIFEST_TYPES_MAX)
		return luo_refuse(reason, rlen, "%s: more than %d types", origin, LUO_MANIFEST_TYPES_MAX);
	grown = realloc(m->types, (m->n_types + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	m->types = grown;
	m->types[m->n_types++] = t;
	return 0;
}

static int attach(struct luo_manifest *m, struct luo_typedesc *d, const char *origin, char *reason, size_t rlen)
{
	for (size_t i = 0; i < m->n_types; i++) {
		struct luo_manifest_type *t = &m->types[i];

		if (t->version != d->version || t->role != d->role || strcmp(t->component, d->component) != 0)
			continue;
		if (t->digest != d->digest)
			return luo_refuse(reason, rlen, "%s: the description of the %s type of '%s' v%u does not match "
				      "its note (digest): altered after luo-describe?", origin,
				      luo_type_role_name(d->role), d->component, d->version);
		if (t->desc.items)
			return 0; /* the same object read twice (a library twice): one is enough */
		t->desc = *d;
		d->items = NULL;
		d->strings = NULL;
		return 0;
	}
	return luo_refuse(reason, rlen, "%s: a description of the %s type of '%s' v%u that no note declares", origin,
		      luo_type_role_name(d->role), d->component, d->version);
}

int luo_manifest_add_descriptions(struct luo_manifest *m, const void *buf, size_t len, size_t align,
				  const char *origin, char *reason, size_t rlen)
{
	size_t off = 0;
	struct luo_note n;
	int r;

	while ((r = luo_note_next(buf, len, align, &off, &n)) > 0) {
		struct luo_typedesc d = { 0 };

		if (!luo_note_is_owner(&n, LUO_ABI_NOTE_OWNER) || n.type != LUO_ABI_NOTE_TYPEDESC)
			return luo_refuse(reason, rlen, "%s: a note other than a type description in %s", origin,
				      LUO_ABI_TYPES_SECTION);
		r = luo_typedesc_parse(n.desc, n.descsz, origin, &d, reason, rlen);
		if (r < 0)
			return r;
		r = attach(m, &d, origin, reason, rlen);
		luo_typedesc_done(&d);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return luo_refuse(reason, rlen, "%s: a note at offset %zu of %s runs past its end", origin, off,
			      LUO_ABI_TYPES_SECTION);
	return 0;
}

struct self_type_walk {
	const char *component;
	uint32_t version, role;
	uint64_t digest;
	bool found;
};

static int self_type_object(struct dl_phdr_info *info, size_t size, void *data)
{
	struct self_type_walk *w = data;

	(void)size;
	for (ElfW(Half) i = 0; i < info->dlpi_phnum && !w->found; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		size_t off = 0;
		struct luo_note n;

		if (ph->p_type != PT_NOTE)
			continue;
		while (!w->found && luo_note_next((const uint8_t *)(info->dlpi_addr + ph->p_vaddr), ph->p_memsz,
						  ph->p_align == 8 ? 8 : 4, &off, &n) > 0) {
			struct luo_abi_note_type d;

			if (!luo_note_is_owner(&n, LUO_ABI_NOTE_OWNER) || n.type != LUO_ABI_NOTE_TYPE ||
			    n.descsz != sizeof(d))
				continue;
			memcpy(&d, n.desc, sizeof(d));
			if (d.version == w->version && d.role == w->role &&
			    strncmp(d.component, w->component, sizeof(d.component)) == 0) {
				w->digest = d.digest;
				w->found = true;
			}
		}
	}
	return w->found;
}

int luo_self_type_digest(const char *component, uint32_t version, uint32_t role, uint64_t *ret_digest)
{
	struct self_type_walk w = { component, version, role, 0, false };

	dl_iterate_phdr(self_type_object, &w);
	if (!w.found)
		return -ENOENT;
	*ret_digest = w.digest;
	return 0;
}
