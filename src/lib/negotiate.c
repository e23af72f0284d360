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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "luo-internal.h"
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

static void negotiate_one(const struct luo_manifest *old, const struct luo_manifest *new,
			  const struct luo_manifest_entry *o, struct luo_report_entry *r)
{
	const struct luo_manifest_entry *n = luo_manifest_find(new, o->kind, o->name);
	uint32_t lo, hi, skipped = 0;
	bool optional;

	memcpy(r->name, o->name, sizeof(r->name));
	r->kind = o->kind;
	r->old_read = o->read;
	r->old_write = o->write;
	optional = (o->flags & LUO_ABI_FLAG_OPTIONAL) && (!n || (n->flags & LUO_ABI_FLAG_OPTIONAL));
	r->optional = optional;
	if (!n) {
		r->verdict = optional ? LUO_VERDICT_DROP : LUO_VERDICT_REFUSE;
		snprintf(r->why, sizeof(r->why), "the new image does not declare this %s%s", luo_kind_name(o->kind),
			 optional ? ": dropped, cold start" : "");
		return;
	}
	r->new_read = n->read;
	r->new_write = n->write;
	lo = max3(o->write.min, n->read.min, o->read.min);
	hi = min3(o->write.max, n->read.max, o->read.max);
	for (uint32_t v = hi; lo <= hi && v >= lo; v--) {
		const struct luo_manifest_layout *lo_old = luo_manifest_find_layout(old, o->name, v);
		const struct luo_manifest_layout *lo_new = luo_manifest_find_layout(new, o->name, v);

		if (o->kind == LUO_ABI_KIND_COMPONENT && lo_old && lo_new && lo_old->fingerprint != lo_new->fingerprint) {
			if (!skipped)
				skipped = v;
			if (v == 1)
				break;
			continue;
		}
		r->verdict = LUO_VERDICT_USE;
		r->version = v;
		if (skipped)
			snprintf(r->why, sizeof(r->why),
				 "version %u: layouts differ between the images (changed without a version bump); "
				 "using %u", skipped, v);
		else
			snprintf(r->why, sizeof(r->why), "version %u", v);
		return;
	}
	r->verdict = optional ? LUO_VERDICT_DROP : LUO_VERDICT_REFUSE;
	if (skipped)
		snprintf(r->why, sizeof(r->why),
			 "version %u: layouts differ between the images (changed without a version bump)%s", skipped,
			 optional ? ": dropped, cold start" : "");
	else
		snprintf(r->why, sizeof(r->why), "no common version: old writes %u..%u, new reads %u..%u%s",
			 o->write.min, o->write.max, n->read.min, n->read.max, optional ? ": dropped, cold start" : "");
}

int luo_negotiate(const struct luo_manifest *old, const struct luo_manifest *new,
		  bool (*present)(const struct luo_manifest_entry *e, void *ctx), void *ctx,
		  struct luo_report_entry **ret_entries, size_t *ret_n)
{
	_cleanup_free_ struct luo_report_entry *rep = NULL;
	size_t n = 0;
	bool refused = false;

	rep = calloc(old->n_entries + new->n_entries + 1, sizeof(*rep));
	if (!rep)
		return -ENOMEM;
	for (size_t i = 0; i < old->n_entries; i++) {
		const struct luo_manifest_entry *o = &old->entries[i];

		if (present && !present(o, ctx))
			continue;
		negotiate_one(old, new, o, &rep[n]);
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

int luo_report_entry_format(const struct luo_report_entry *e, char *buf, size_t len)
{
	static const char *const verdicts[] = {
		[LUO_VERDICT_USE] = "use",
		[LUO_VERDICT_DROP] = "DROP",
		[LUO_VERDICT_REFUSE] = "REFUSE",
		[LUO_VERDICT_NEW] = "new",
	};
	char orr[24], ow[24], nr[24], nw[24];
	const char *verdict = "?";

	if (!e)
		return snprintf(buf, len, "(none)");
	if (e->verdict >= LUO_VERDICT_USE && e->verdict <= LUO_VERDICT_NEW)
		verdict = verdicts[e->verdict];
	range_str(orr, sizeof(orr), e->old_read);
	range_str(ow, sizeof(ow), e->old_write);
	range_str(nr, sizeof(nr), e->new_read);
	range_str(nw, sizeof(nw), e->new_write);
	return snprintf(buf, len, "%-9s %-24.47s %-9s old r %s w %s, new r %s w %s: %-6s %s", luo_kind_name(e->kind),
			e->name, e->optional ? "optional" : "mandatory", orr, ow, nr, nw, verdict, e->why);
}
