/* SPDX-License-Identifier: MIT */
/*
 * DOC: the fate of each declared field before the switch
 *
 * When both images declare the fields of a component, negotiation knows,
 * for the version it chose, what becomes of each field: it crosses (maybe
 * into a narrower type: the load then refuses a value that does not fit),
 * it is defaulted (the new image reads it, the old does not write it), it
 * is lost (the old writes it, the new does not read it), or the update is
 * refused: a field the new image requires and the old one does not write,
 * one the old image marks must-understand and the new one does not know,
 * or types that do not convert (an integer and bytes). Pure: two manifests
 * in, verdicts out; luo_negotiate() and luoctl share it.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "fields.h"
#include "format.h"
#include "manifest.h"

const char *luo_field_fate_name(enum luo_field_fate fate)
{
	switch (fate) {
	case LUO_FIELD_CROSSES:
		return "crosses";
	case LUO_FIELD_NARROWED:
		return "narrowed";
	case LUO_FIELD_DEFAULTED:
		return "defaulted";
	case LUO_FIELD_LOST:
		return "lost";
	case LUO_FIELD_REFUSED:
		return "REFUSED";
	}
	return "?";
}

static bool integer(uint32_t t)
{
	return t == LUO_ABI_FIELD_UINT || t == LUO_ABI_FIELD_INT || t == LUO_ABI_FIELD_BOOL;
}

/* Bits of value a type holds, and whether it holds negative ones. */
static void range_of(const struct luo_abi_note_fielddecl *d, unsigned *bits, bool *neg)
{
	*neg = d->type == LUO_ABI_FIELD_INT;
	*bits = d->type == LUO_ABI_FIELD_BOOL ? 1 : d->size * 8 - (*neg ? 1 : 0);
}

/* CROSSES, NARROWED or REFUSED (with *why) for a field both images have. */
static enum luo_field_fate convert(const struct luo_abi_note_fielddecl *o, const struct luo_abi_note_fielddecl *n,
				   const char **why)
{
	if (integer(o->type) && integer(n->type)) {
		unsigned ob, nb;
		bool on, nn;

		range_of(o, &ob, &on);
		range_of(n, &nb, &nn);
		if (nb >= ob && (nn || !on))
			return LUO_FIELD_CROSSES;
		*why = "a narrower type: a value that does not fit refuses the load";
		return LUO_FIELD_NARROWED;
	}
	if (o->type != n->type) {
		*why = "the types do not convert";
		return LUO_FIELD_REFUSED;
	}
	if (n->size >= o->size)
		return LUO_FIELD_CROSSES;
	*why = o->type == LUO_ABI_FIELD_BYTES ? "shorter: bytes past the end must be zero"
					       : "shorter: a longer string refuses the load";
	return LUO_FIELD_NARROWED;
}

static const struct luo_abi_note_fielddecl *find(const struct luo_manifest_fieldset *fs, const char *name,
						  uint32_t hint)
{
	if (hint < fs->h.n_fields && strcmp(fs->decls[hint].name, name) == 0)
		return &fs->decls[hint];
	for (uint32_t i = 0; i < fs->h.n_fields; i++)
		if (strcmp(fs->decls[i].name, name) == 0)
			return &fs->decls[i];
	return NULL;
}

int luo_fields_verdicts(const struct luo_manifest *old, const struct luo_manifest *new, const char *component,
			uint32_t version, struct luo_field_verdict **ret)
{
	const struct luo_manifest_fieldset *fo = luo_manifest_find_fields(old, component);
	const struct luo_manifest_fieldset *fn = luo_manifest_find_fields(new, component);
	_cleanup_free_ struct luo_field_verdict *v = NULL;
	size_t k = 0;

	if (!fo || !fn)
		return 0;
	v = calloc((size_t)fo->h.n_fields + fn->h.n_fields, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i < fo->h.n_fields; i++) {
		const struct luo_abi_note_fielddecl *o = &fo->decls[i];
		const struct luo_abi_note_fielddecl *n = find(fn, o->name, i);
		struct luo_field_verdict *x;

		if (!luo_field_at(o, version))
			continue;
		x = &v[k++];
		memcpy(x->name, o->name, sizeof(x->name));
		luo_field_type_name(o, x->old_type, sizeof(x->old_type));
		if (n) {
			luo_field_type_name(n, x->new_type, sizeof(x->new_type));
			x->fate = convert(o, n, &x->why);
		} else if (o->flags & LUO_ABI_FIELD_MUST_UNDERSTAND) {
			x->fate = LUO_FIELD_REFUSED;
			x->why = "must be understood; the new image does not know it";
		} else {
			x->fate = LUO_FIELD_LOST;
		}
	}
	for (uint32_t i = 0; i < fn->h.n_fields; i++) {
		const struct luo_abi_note_fielddecl *n = &fn->decls[i];
		const struct luo_abi_note_fielddecl *o = find(fo, n->name, i);
		struct luo_field_verdict *x;

		if (o && luo_field_at(o, version))
			continue; /* done above */
		x = &v[k++];
		memcpy(x->name, n->name, sizeof(x->name));
		luo_field_type_name(n, x->new_type, sizeof(x->new_type));
		if ((n->flags & LUO_ABI_FIELD_REQUIRED) && luo_field_at(n, version)) {
			x->fate = LUO_FIELD_REFUSED;
			x->why = "required by the new image; the old one does not write it";
		} else {
			x->fate = LUO_FIELD_DEFAULTED;
		}
	}
	*ret = TAKE_PTR(v);
	return (int)k;
}

int luo_fields_negotiate(const struct luo_manifest *old, const struct luo_manifest *new, uint32_t version,
			 struct luo_report_entry *r)
{
	_cleanup_free_ struct luo_field_verdict *v = NULL;
	size_t counts[LUO_FIELD_REFUSED + 1] = { 0 };
	const struct luo_field_verdict *refused = NULL;
	size_t len;
	int n;

	n = luo_fields_verdicts(old, new, r->name, version, &v);
	if (n <= 0)
		return n;
	for (int i = 0; i < n; i++) {
		counts[v[i].fate]++;
		if (v[i].fate == LUO_FIELD_REFUSED && !refused)
			refused = &v[i];
	}
	if (refused) {
		r->verdict = r->optional ? LUO_VERDICT_DROP : LUO_VERDICT_REFUSE;
		r->cause = LUO_CAUSE_FIELD_REFUSED;
		r->version = 0;
		r->types = LUO_TYPES_NONE;
		snprintf(r->why, sizeof(r->why), "at version %u, field '%s': %s%s", version, refused->name, refused->why,
			 r->optional ? ": dropped, cold start" : "");
		return 1;
	}
	len = strnlen(r->why, sizeof(r->why));
	snprintf(r->why + len, sizeof(r->why) - len, "; fields: %zu cross, %zu narrowed, %zu defaulted, %zu lost",
		 counts[LUO_FIELD_CROSSES], counts[LUO_FIELD_NARROWED], counts[LUO_FIELD_DEFAULTED],
		 counts[LUO_FIELD_LOST]);
	return 0;
}
