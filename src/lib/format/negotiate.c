/* SPDX-License-Identifier: MIT */
/*
 * DOC: negotiation, the check before the switch
 *
 * For every entry of the old image's manifest that its outgoing state holds
 * (a registered component, a handler with preserved files, the container
 * format), the version handed over is
 *
 *	v = max(write_old ∩ read_new ∩ read_old)
 *
 * the last term keeping a rollback possible: the old image can read what
 * the new one was given. A version whose struct layout is recorded by both
 * images with different fingerprints is skipped (someone changed a layout
 * without a version bump); the next lower common version is tried. No
 * version: an optional component is dropped (the new image cold-starts it),
 * anything else refuses the update. A component is optional only if both
 * images say so (or the new one lacks it and the old one says so): the old
 * image may not drop what the new one needs.
 *
 * Pure: two manifests in, a report out. luo_update() and luoctl share it.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "format.h"
#include "manifest.h"

static uint32_t max3(uint32_t a, uint32_t b, uint32_t c)
{
	uint32_t m = a > b ? a : b;

	return m > c ? m : c;
}

static uint32_t min3(uint32_t a, uint32_t b, uint32_t c)
{
	uint32_t m = a < b ? a : b;

	return m < c ? m : c;
}

/*
 * Do the two images agree on the types of @name at @v? 0 yes (*@proof says
 * how), 1 no (@why says where), -ENOMEM. Every role either image declares
 * counts: a type declared or described on one side only is a mismatch.
 */
static int types_agree(const struct luo_manifest *old, const struct luo_manifest *new, const char *name, uint32_t v,
		       uint32_t *proof, char *why, size_t why_len)
{
	static const uint32_t roles[] = { LUO_ABI_TYPE_PAYLOAD, LUO_ABI_TYPE_ARENA, LUO_ABI_TYPE_HANDLER };
	bool any = false, unproven = false;

	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
		const struct luo_manifest_type *to = luo_manifest_find_type(old, name, v, roles[i]);
		const struct luo_manifest_type *tn = luo_manifest_find_type(new, name, v, roles[i]);
		const char *role = luo_type_role_name(roles[i]);
		char diff[LUO_TYPEDESC_WHY_MAX];
		int r;

		if (!to && !tn)
			continue;
		any = true;
		if (!to || !tn) {
			snprintf(why, why_len, "only the %s image declares a %s type for it", to ? "old" : "new", role);
			return 1;
		}
		if (to->size != tn->size || to->align != tn->align) {
			snprintf(why, why_len, "the %s type is %u bytes aligned to %u in the old image, %u aligned to "
				 "%u in the new", role, to->size, to->align, tn->size, tn->align);
			return 1;
		}
		if (!to->digest && !tn->digest) {
			unproven = true;
			continue;
		}
		if (!to->digest || !tn->digest) {
			snprintf(why, why_len, "the %s type is described in the %s image only (luo-describe never ran "
				 "on the other)", role, to->digest ? "old" : "new");
			return 1;
		}
		if (to->desc.items && tn->desc.items) {
			r = luo_typedesc_compare(&to->desc, &tn->desc, diff, sizeof(diff));
			if (r < 0)
				return r;
		} else {
			r = to->digest != tn->digest;
			snprintf(diff, sizeof(diff), "descriptions differ (%016" PRIx64 " / %016" PRIx64 ")",
				 to->digest, tn->digest);
		}
		if (r) {
			snprintf(why, why_len, "%s type: %s", role, diff);
			return 1;
		}
	}
	*proof = any && !unproven ? LUO_TYPES_PROVEN : LUO_TYPES_UNPROVEN;
	return 0;
}

/* The hand-declared layouts (LUO_LAYOUT) of @v, where no image describes types. */
static bool layouts_agree(const struct luo_manifest *old, const struct luo_manifest *new, const char *name, uint32_t v)
{
	const struct luo_manifest_layout *lo_old = luo_manifest_find_layout(old, name, v);
	const struct luo_manifest_layout *lo_new = luo_manifest_find_layout(new, name, v);

	if (!lo_old && !lo_new)
		return true;
	return lo_old && lo_new && lo_old->fingerprint == lo_new->fingerprint; /* one side only: a mismatch */
}

static void refuse_or_drop(struct luo_report_entry *r, uint32_t cause)
{
	r->verdict = r->optional ? LUO_VERDICT_DROP : LUO_VERDICT_REFUSE;
	r->cause = cause;
}

static int negotiate_one(const struct luo_manifest *old, const struct luo_manifest *new,
			 const struct luo_manifest_entry *o, struct luo_report_entry *r)
{
	const struct luo_manifest_entry *n = luo_manifest_find(new, o->kind, o->name);
	const char *cold;
	char first_why[LUO_REPORT_WHY_SIZE - 80] = ""; /* room for what is said around it */
	uint32_t lo, hi, skipped = 0;

	memcpy(r->name, o->name, sizeof(r->name));
	r->kind = o->kind;
	r->old_read = o->read;
	r->old_write = o->write;
	r->optional = (o->flags & LUO_ABI_FLAG_OPTIONAL) && (!n || (n->flags & LUO_ABI_FLAG_OPTIONAL));
	cold = r->optional ? ": dropped, cold start" : "";
	if (!n) {
		refuse_or_drop(r, LUO_CAUSE_NOT_DECLARED);
		snprintf(r->why, sizeof(r->why), "the new image does not declare this %s%s", luo_kind_name(o->kind),
			 cold);
		return 0;
	}
	r->new_read = n->read;
	r->new_write = n->write;
	lo = max3(o->write.min, n->read.min, o->read.min);
	hi = min3(o->write.max, n->read.max, o->read.max);
	for (uint64_t v = hi; lo >= 1 && lo <= hi && v >= lo; v--) {
		char tw[LUO_REPORT_WHY_SIZE - 80];
		uint32_t proof = LUO_TYPES_NONE;
		int t = types_agree(old, new, o->name, (uint32_t)v, &proof, tw, sizeof(tw));

		if (t < 0)
			return t;
		if (t == 0 && proof == LUO_TYPES_UNPROVEN && o->kind == LUO_ABI_KIND_COMPONENT &&
		    !layouts_agree(old, new, o->name, (uint32_t)v)) {
			t = 1;
			snprintf(tw, sizeof(tw), "the layouts recorded with LUO_LAYOUT() differ, or one image only records one");
		}
		if (t) {
			if (!skipped) {
				skipped = (uint32_t)v;
				snprintf(first_why, sizeof(first_why), "%s", tw);
			}
			continue;
		}
		r->version = (uint32_t)v;
		/* Handlers and the format that declare no types: libluo's own formats. */
		r->types = proof;
		if (o->kind != LUO_ABI_KIND_COMPONENT && proof == LUO_TYPES_UNPROVEN &&
		    !luo_manifest_find_type(old, o->name, (uint32_t)v, LUO_ABI_TYPE_HANDLER) &&
		    !luo_manifest_find_type(new, o->name, (uint32_t)v, LUO_ABI_TYPE_HANDLER))
			r->types = LUO_TYPES_NONE;
		if (skipped) {
			r->verdict = LUO_VERDICT_DOWNGRADE;
			r->cause = LUO_CAUSE_TYPES_DIFFER;
			r->mismatch_version = skipped;
			snprintf(r->why, sizeof(r->why), "version %u, not %u: at %u, %s", (uint32_t)v, skipped, skipped,
				 first_why);
		} else {
			r->verdict = LUO_VERDICT_USE;
			snprintf(r->why, sizeof(r->why), "version %u%s", (uint32_t)v,
				 r->types == LUO_TYPES_UNPROVEN ? " (unproven: no type descriptions)" : "");
		}
		/* Declared fields (fields-report.c) may still refuse, naming the field. */
		if (o->kind == LUO_ABI_KIND_COMPONENT)
			return luo_fields_negotiate(old, new, (uint32_t)v, r) < 0 ? -ENOMEM : 0;
		return 0;
	}
	if (skipped) {
		refuse_or_drop(r, LUO_CAUSE_TYPES_DIFFER);
		r->mismatch_version = skipped;
		snprintf(r->why, sizeof(r->why), "types differ at version %u: %s%s", skipped, first_why, cold);
	} else {
		refuse_or_drop(r, LUO_CAUSE_NO_COMMON_VERSION);
		snprintf(r->why, sizeof(r->why), "no common version: old writes %u..%u, new reads %u..%u%s",
			 o->write.min, o->write.max, n->read.min, n->read.max, cold);
	}
	return 0;
}

int luo_negotiate(const struct luo_manifest *old, const struct luo_manifest *new,
		  bool (*present)(const struct luo_manifest_entry *e, void *ctx), void *ctx,
		  struct luo_report_entry **ret_entries, size_t *ret_n)
{
	_cleanup_free_ struct luo_report_entry *rep = NULL;
	size_t n = 0;
	bool refused = false;
	int err;

	rep = calloc(old->n_entries + new->n_entries + 1, sizeof(*rep));
	if (!rep)
		return -ENOMEM;
	for (size_t i = 0; i < old->n_entries; i++) {
		const struct luo_manifest_entry *o = &old->entries[i];

		if (present && !present(o, ctx))
			continue;
		err = negotiate_one(old, new, o, &rep[n]);
		if (err < 0)
			return err;
		refused = refused || rep[n].verdict == LUO_VERDICT_REFUSE;
		n++;
	}
	for (size_t i = 0; i < new->n_entries; i++) {
		const struct luo_manifest_entry *e = &new->entries[i];
		const struct luo_manifest_entry *o;
		struct luo_report_entry *r;

		if (e->kind != LUO_ABI_KIND_COMPONENT)
			continue;
		o = luo_manifest_find(old, e->kind, e->name);
		if (o && (!present || present(o, ctx)))
			continue;
		r = &rep[n++];
		memcpy(r->name, e->name, sizeof(r->name));
		r->kind = e->kind;
		r->optional = e->flags & LUO_ABI_FLAG_OPTIONAL;
		r->new_read = e->read;
		r->new_write = e->write;
		r->verdict = LUO_VERDICT_NEW;
		snprintf(r->why, sizeof(r->why), "only the new image has it: cold start");
	}
	*ret_entries = TAKE_PTR(rep);
	*ret_n = n;
	return refused ? -EPROTO : 0;
}

static int range_str(char *buf, size_t len, struct luo_version_range v)
{
	if (v.min == 0)
		return snprintf(buf, len, "-");
	if (v.min == v.max)
		return snprintf(buf, len, "%u", v.min);
	return snprintf(buf, len, "%u..%u", v.min, v.max);
}

const char *luo_verdict_name(enum luo_verdict v, bool loud)
{
	static const char *const names[][2] = {
		[LUO_VERDICT_USE] = { "use", "use" },
		[LUO_VERDICT_DROP] = { "drop", "DROP" },
		[LUO_VERDICT_REFUSE] = { "refuse", "REFUSE" },
		[LUO_VERDICT_NEW] = { "new", "new" },
		[LUO_VERDICT_DOWNGRADE] = { "downgrade", "DOWNGRADE" },
	};

	if (v < LUO_VERDICT_USE || v > LUO_VERDICT_DOWNGRADE)
		return NULL;
	return names[v][loud];
}

int luo_report_entry_format(const struct luo_report_entry *e, char *buf, size_t len)
{
	char orr[24], ow[24], nr[24], nw[24];
	const char *verdict;

	if (!e)
		return snprintf(buf, len, "(none)");
	verdict = luo_verdict_name(e->verdict, true);
	if (!verdict)
		verdict = "?";
	range_str(orr, sizeof(orr), e->old_read);
	range_str(ow, sizeof(ow), e->old_write);
	range_str(nr, sizeof(nr), e->new_read);
	range_str(nw, sizeof(nw), e->new_write);
	return snprintf(buf, len, "%-9s %-24.47s %-9s old r %s w %s, new r %s w %s: %-9s %s", luo_kind_name(e->kind),
			e->name, e->optional ? "optional" : "mandatory", orr, ow, nr, nw, verdict, e->why);
}
