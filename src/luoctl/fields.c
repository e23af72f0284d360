/* SPDX-License-Identifier: MIT */
/*
 * DOC: luoctl's view of declared fields (include/luo/fields.h)
 *
 * manifest: each component's field list (name, type, offset, size, the
 * versions that carry it, default, flags). check and matrix: for each
 * component both images declare fields for, what becomes of each field at
 * the version negotiated -- crosses, narrowed, defaulted, lost, REFUSED --
 * as text lines under the component's entry or a "fields" array in JSON.
 * Field names come from hostile notes, checked to be [a-z0-9_] by the
 * manifest reader; they are printed through text_put / json_put anyway.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "fields.h"
#include "luoctl.h"

static void flags_str(uint32_t flags, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s%s%s", flags & LUO_ABI_FIELD_REQUIRED ? "required" : "",
		 (flags & LUO_ABI_FIELD_REQUIRED) && (flags & LUO_ABI_FIELD_MUST_UNDERSTAND) ? "," : "",
		 flags & LUO_ABI_FIELD_MUST_UNDERSTAND ? "must-understand" : "",
		 (flags & LUO_ABI_FIELD_VERSION) && (flags & ~LUO_ABI_FIELD_VERSION) ? "," : "",
		 flags & LUO_ABI_FIELD_VERSION ? "version" : "");
}

static void default_str(const struct luo_abi_note_fielddecl *d, char *buf, size_t len)
{
	if (d->type == LUO_ABI_FIELD_INT)
		snprintf(buf, len, "%" PRId64, (int64_t)d->deflt);
	else if (d->type == LUO_ABI_FIELD_BYTES || d->type == LUO_ABI_FIELD_STRING)
		snprintf(buf, len, "%s", d->type == LUO_ABI_FIELD_STRING ? "\"\"" : "zeros");
	else
		snprintf(buf, len, "%" PRIu64, d->deflt);
}

void fields_manifest_text(const struct luo_manifest *m)
{
	printf("fields    %zu component%s with declared state\n", m->n_fieldsets, m->n_fieldsets == 1 ? "" : "s");
	for (size_t i = 0; i < m->n_fieldsets; i++) {
		const struct luo_manifest_fieldset *fs = &m->fieldsets[i];

		fputs("  ", stdout);
		text_put(stdout, fs->h.component, sizeof(fs->h.component), 0);
		printf(": struct size %" PRIu32 ", %" PRIu32 " field%s\n", fs->h.struct_size, fs->h.n_fields,
		       fs->h.n_fields == 1 ? "" : "s");
		for (uint32_t j = 0; j < fs->h.n_fields; j++) {
			const struct luo_abi_note_fielddecl *d = &fs->decls[j];
			char type[24], to[16], def[32], flags[40];

			luo_field_type_name(d, type, sizeof(type));
			if (d->to == LUO_ABI_FIELD_LATEST)
				to[0] = '\0';
			else
				snprintf(to, sizeof(to), "%" PRIu32, d->to);
			default_str(d, def, sizeof(def));
			flags_str(d->flags, flags, sizeof(flags));
			fputs("    ", stdout);
			text_put(stdout, d->name, sizeof(d->name), 20);
			printf("  %-11s offset %-6" PRIu32 " versions %" PRIu32 "..%-6s default %s%s%s\n", type, d->offset,
			       d->from, to, def, flags[0] ? "  " : "", flags);
		}
	}
}

void fields_manifest_json(const struct luo_manifest *m)
{
	fputs(",\"fields\":[", stdout);
	for (size_t i = 0; i < m->n_fieldsets; i++) {
		const struct luo_manifest_fieldset *fs = &m->fieldsets[i];

		fputs(i ? ",{\"component\":" : "{\"component\":", stdout);
		json_put(stdout, fs->h.component, sizeof(fs->h.component));
		printf(",\"struct_size\":%" PRIu32 ",\"fields\":[", fs->h.struct_size);
		for (uint32_t j = 0; j < fs->h.n_fields; j++) {
			const struct luo_abi_note_fielddecl *d = &fs->decls[j];
			char type[24];

			luo_field_type_name(d, type, sizeof(type));
			fputs(j ? ",{\"name\":" : "{\"name\":", stdout);
			json_put(stdout, d->name, sizeof(d->name));
			fputs(",\"type\":", stdout);
			json_puts(stdout, type);
			printf(",\"offset\":%" PRIu32 ",\"size\":%" PRIu32 ",\"from\":%" PRIu32 ",\"to\":", d->offset,
			       d->size, d->from);
			if (d->to == LUO_ABI_FIELD_LATEST)
				fputs("null", stdout);
			else
				printf("%" PRIu32, d->to);
			if (d->type == LUO_ABI_FIELD_INT)
				printf(",\"default\":%" PRId64, (int64_t)d->deflt);
			else
				printf(",\"default\":%" PRIu64, d->deflt);
			printf(",\"required\":%s,\"must_understand\":%s,\"version_field\":%s}",
			       d->flags & LUO_ABI_FIELD_REQUIRED ? "true" : "false",
			       d->flags & LUO_ABI_FIELD_MUST_UNDERSTAND ? "true" : "false",
			       d->flags & LUO_ABI_FIELD_VERSION ? "true" : "false");
		}
		fputs("]}", stdout);
	}
	fputc(']', stdout);
}

/*
 * The version whose fields an entry speaks of: the one written, or, for
 * an entry refused or dropped because of a field, the one negotiation had
 * chosen (the highest common one). 0: none.
 */
static uint32_t entry_version(const struct luo_report_entry *e)
{
	uint32_t lo, hi;

	if (e->kind != LUO_ABI_KIND_COMPONENT)
		return 0;
	if (e->verdict == LUO_VERDICT_USE || e->verdict == LUO_VERDICT_DOWNGRADE)
		return e->version;
	if (e->cause != LUO_CAUSE_FIELD_REFUSED)
		return 0;
	lo = e->old_write.min > e->new_read.min ? e->old_write.min : e->new_read.min;
	lo = lo > e->old_read.min ? lo : e->old_read.min;
	hi = e->old_write.max < e->new_read.max ? e->old_write.max : e->new_read.max;
	hi = hi < e->old_read.max ? hi : e->old_read.max;
	return lo <= hi ? hi : 0;
}

int fields_report_text(const struct luo_manifest *old, const struct luo_manifest *new,
		       const struct luo_report_entry *e)
{
	_cleanup_free_ struct luo_field_verdict *v = NULL;
	uint32_t version = entry_version(e);
	int n;

	if (!version)
		return 0;
	n = luo_fields_verdicts(old, new, e->name, version, &v);
	for (int i = 0; i < n; i++) {
		char types[64];

		snprintf(types, sizeof(types), "%s -> %s", v[i].old_type[0] ? v[i].old_type : "-",
			 v[i].new_type[0] ? v[i].new_type : "-");
		fputs("      field ", stdout);
		text_put(stdout, v[i].name, sizeof(v[i].name), 20);
		printf("  %-24s %s%s%s\n", types, luo_field_fate_name(v[i].fate), v[i].why ? ": " : "",
		       v[i].why ? v[i].why : "");
	}
	return n < 0 ? n : 0;
}

int fields_report_json(const struct luo_manifest *old, const struct luo_manifest *new,
		       const struct luo_report_entry *entries, size_t n_entries)
{
	bool first = true;

	fputs(",\"fields\":[", stdout);
	for (size_t k = 0; k < n_entries; k++) {
		_cleanup_free_ struct luo_field_verdict *v = NULL;
		uint32_t version = entry_version(&entries[k]);
		int n;

		if (!version)
			continue;
		n = luo_fields_verdicts(old, new, entries[k].name, version, &v);
		if (n < 0)
			return n;
		if (n == 0)
			continue;
		fputs(first ? "{\"component\":" : ",{\"component\":", stdout);
		first = false;
		json_put(stdout, entries[k].name, sizeof(entries[k].name));
		printf(",\"version\":%" PRIu32 ",\"fields\":[", version);
		for (int i = 0; i < n; i++) {
			fputs(i ? ",{\"name\":" : "{\"name\":", stdout);
			json_put(stdout, v[i].name, sizeof(v[i].name));
			fputs(",\"fate\":", stdout);
			json_puts(stdout, luo_field_fate_name(v[i].fate));
			fputs(",\"old_type\":", stdout);
			if (v[i].old_type[0])
				json_puts(stdout, v[i].old_type);
			else
				fputs("null", stdout);
			fputs(",\"new_type\":", stdout);
			if (v[i].new_type[0])
				json_puts(stdout, v[i].new_type);
			else
				fputs("null", stdout);
			fputs(",\"why\":", stdout);
			if (v[i].why)
				json_puts(stdout, v[i].why);
			else
				fputs("null", stdout);
			fputc('}', stdout);
		}
		fputs("]}", stdout);
	}
	fputc(']', stdout);
	return 0;
}

int fields_matrix_text(const char *const *labels, size_t n, struct luo_manifest **m)
{
	bool any = false;

	for (size_t i = 0; i < n; i++)
		any = any || m[i]->n_fieldsets > 0;
	if (!any)
		return 0;
	fputs("\nfields (components with declared state, per pair):\n", stdout);
	for (size_t from = 0; from < n; from++) {
		for (size_t to = 0; to < n; to++) {
			_cleanup_free_ struct luo_report_entry *entries = NULL;
			size_t n_entries = 0;
			int r;

			if (from == to)
				continue;
			r = negotiate(m[from], m[to], &entries, &n_entries);
			if (r < 0 && r != -EPROTO)
				return r;
			text_pair_put(stdout, labels[from], labels[to]);
			fputs(":\n", stdout);
			for (size_t i = 0; i < n_entries; i++) {
				if (!entry_version(&entries[i]) ||
				    !luo_manifest_find_fields(m[from], entries[i].name) ||
				    !luo_manifest_find_fields(m[to], entries[i].name))
					continue;
				printf("    %s ", kind_name(entries[i].kind));
				text_put(stdout, entries[i].name, sizeof(entries[i].name), 0);
				printf(" at version %" PRIu32 ":\n", entry_version(&entries[i]));
				r = fields_report_text(m[from], m[to], &entries[i]);
				if (r < 0)
					return r;
			}
		}
	}
	return 0;
}
