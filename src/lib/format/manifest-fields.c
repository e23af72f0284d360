/* SPDX-License-Identifier: MIT */
/*
 * DOC: field lists in a manifest, hostile input
 *
 * A LUO_ABI_NOTE_FIELDS note (abi.h, "Declared fields") comes from a
 * binary this process did not build: its size must be exactly the header
 * plus n_fields declarations, n_fields at most LUO_ABI_FIELDS_MAX, the
 * component name a terminated, printable, zero-padded string, and the list
 * must pass the checks registration applies (luo_fields_check()). At most
 * LUO_MANIFEST_FIELDSETS_MAX lists; one component's list twice is one list
 * if identical, else the manifest is refused.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "fields.h"
#include "format.h"
#include "manifest.h"

#define refuse(reason, rlen, ...)                                              \
	({                                                                     \
		luo_reasonf((reason), (rlen), __VA_ARGS__);                    \
		-EBADMSG;                                                      \
	})

static bool component_name_ok(const char *s, size_t size)
{
	size_t len = strnlen(s, size);

	if (len == 0 || len >= size)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	for (size_t i = len; i < size; i++)
		if (s[i])
			return false;
	return true;
}

static int add_fieldset(struct luo_manifest *m, const struct luo_abi_note_fields *h,
			struct luo_abi_note_fielddecl *decls_owned, const char *origin, char *reason,
			size_t rlen)
{
	_cleanup_free_ struct luo_abi_note_fielddecl *decls = decls_owned;
	struct luo_manifest_fieldset *grown;
	int r;

	if (!component_name_ok(h->component, sizeof(h->component)))
		return refuse(reason, rlen, "%s: a field list whose component name is empty, unterminated, not "
			      "printable or not zero-padded", origin);
	r = luo_fields_check(h, decls, reason, rlen);
	if (r == -EBADMSG) {
		char inner[LUO_REASON_MAX];

		luo_reasonf(inner, sizeof(inner), "%s", reason);
		return refuse(reason, rlen, "%s: %s", origin, inner);
	}
	if (r < 0)
		return r;
	for (size_t i = 0; i < m->n_fieldsets; i++) {
		const struct luo_manifest_fieldset *f = &m->fieldsets[i];

		if (strcmp(f->h.component, h->component) != 0)
			continue;
		if (f->h.struct_size == h->struct_size && f->h.n_fields == h->n_fields &&
		    memcmp(f->decls, decls, h->n_fields * sizeof(*decls)) == 0)
			return 0;
		return refuse(reason, rlen, "%s: component '%s' declares two different field lists", origin,
			      h->component);
	}
	if (m->n_fieldsets >= LUO_MANIFEST_FIELDSETS_MAX)
		return refuse(reason, rlen, "%s: more than %d field lists", origin, LUO_MANIFEST_FIELDSETS_MAX);
	grown = realloc(m->fieldsets, (m->n_fieldsets + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	m->fieldsets = grown;
	grown[m->n_fieldsets].h = *h;
	grown[m->n_fieldsets++].decls = TAKE_PTR(decls);
	return 0;
}

int luo_manifest_add_fields(struct luo_manifest *m, const void *desc, uint32_t descsz, const char *origin,
			    char *reason, size_t rlen)
{
	struct luo_abi_note_fields h;
	struct luo_abi_note_fielddecl *decls;

	if (descsz < sizeof(h))
		return refuse(reason, rlen, "%s: a field note of %u bytes, shorter than its header", origin, descsz);
	memcpy(&h, desc, sizeof(h));
	if (h.n_fields == 0 || h.n_fields > LUO_ABI_FIELDS_MAX ||
	    descsz != sizeof(h) + (size_t)h.n_fields * sizeof(*decls))
		return refuse(reason, rlen, "%s: a field note of %u bytes for %u fields (1..%u)", origin, descsz,
			      h.n_fields, LUO_ABI_FIELDS_MAX);
	decls = malloc(h.n_fields * sizeof(*decls));
	if (!decls)
		return -ENOMEM;
	memcpy(decls, (const uint8_t *)desc + sizeof(h), h.n_fields * sizeof(*decls));
	return add_fieldset(m, &h, decls, origin, reason, rlen);
}

int luo_manifest_add_state(struct luo_manifest *m, const struct luo_component_state *st, char *reason, size_t rlen)
{
	struct luo_abi_note_fielddecl *decls;

	if (luo_manifest_find_fields(m, st->name))
		return 0;
	decls = malloc(st->fields->n_fields * sizeof(*decls));
	if (!decls)
		return -ENOMEM;
	memcpy(decls, st->decls, st->fields->n_fields * sizeof(*decls));
	return add_fieldset(m, st->fields, decls, "registry", reason, rlen);
}

const struct luo_manifest_fieldset *luo_manifest_find_fields(const struct luo_manifest *m, const char *component)
{
	for (size_t i = 0; i < m->n_fieldsets; i++)
		if (strcmp(m->fieldsets[i].h.component, component) == 0)
			return &m->fieldsets[i];
	return NULL;
}

void luo_manifest_fields_free(struct luo_manifest *m)
{
	for (size_t i = 0; i < m->n_fieldsets; i++)
		free(m->fieldsets[i].decls);
	free(m->fieldsets);
	m->fieldsets = NULL;
	m->n_fieldsets = 0;
}
