/* SPDX-License-Identifier: MIT */
/*
 * DOC: inspect.c, the verbs manifest and check: what a binary declares,
 * and what an update between two would do
 *
 *   luoctl manifest BINARY [--types] [--json]
 *   luoctl check NEW (--against OLD | --pid PID) [--strict] [--json]
 *
 * manifest prints the manifest of a binary on disk: the components, file
 * handlers and container format it declares in its .note.luo notes and in
 * those of the libraries it names in DT_NEEDED (not their dependencies),
 * with the versions each reads and writes, the types that cross an update
 * (described by the compiler through luo-describe, or unproven) and the
 * struct layouts recorded by hand per component version.
 *
 * check negotiates an update from OLD (a binary on disk, or a running
 * process read through /proc) to NEW with luo_update()'s rule, without
 * running either, and prints the report, one line per entry, then whether
 * the update would proceed. Every entry of OLD counts as present, where
 * luo_update() only negotiates the handlers that hold files: luoctl may
 * refuse what a service with no such files would be allowed.
 *
 * Exit: 0 (check: the update would proceed), 1 check: it would be refused,
 * or --strict and a component downgraded, dropped or unproven; 2 trouble.
 *
 * Layer: a verb; calls report.c, opts.c, usage.c and output.c.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "luo/abi.h"
#include "luoctl.h"

/* ------------------------------------------------------------------------ */
/* manifest                                                                  */

/* Handlers and the format are mandatory whatever their flags say. */
static bool entry_optional(const struct luo_manifest_entry *e)
{
	return e->kind == LUO_ABI_KIND_COMPONENT && (e->flags & LUO_ABI_FLAG_OPTIONAL);
}

/* A range as "1..3", or "-" for none; its length. */
static int range_str(struct luo_version_range r, char buf[static 24])
{
	if (r.min == 0 && r.max == 0)
		return snprintf(buf, 24, "-");
	return snprintf(buf, 24, "%" PRIu32 "..%" PRIu32, r.min, r.max);
}

static size_t layout_n_fields(const struct luo_manifest_layout *l)
{
	return l->n_fields < LUO_ABI_LAYOUT_FIELDS_MAX ? l->n_fields : LUO_ABI_LAYOUT_FIELDS_MAX;
}

static size_t build_id_len(const struct luo_manifest *m)
{
	return m->build_id_len < sizeof(m->build_id) ? m->build_id_len : sizeof(m->build_id);
}

/* Every declared type described (and at least one declared). */
static bool manifest_described(const struct luo_manifest *m)
{
	for (size_t i = 0; i < m->n_types; i++)
		if (!m->types[i].digest)
			return false;
	return m->n_types > 0;
}

static void manifest_print_text(const char *path, const struct luo_manifest *m, bool types)
{
	size_t i, j, name_w = 4;
	int range_w = 1;

	fputs("binary    ", stdout);
	text_puts(stdout, path);
	fputs("\nbuild-id  ", stdout);
	if (build_id_len(m) == 0)
		fputs("none", stdout);
	for (i = 0; i < build_id_len(m); i++)
		printf("%02x", m->build_id[i]);
	printf("\nobjects   %zu (the binary and the DT_NEEDED libraries read)\n", m->n_objects);

	printf("entries   %zu\n", m->n_entries);
	for (i = 0; i < m->n_entries; i++) {
		size_t w = text_width(m->entries[i].name, sizeof(m->entries[i].name));
		char buf[24];

		name_w = MAX(name_w, w);
		range_w = MAX(range_w, range_str(m->entries[i].read, buf));
		range_w = MAX(range_w, range_str(m->entries[i].write, buf));
	}
	for (i = 0; i < m->n_entries; i++) {
		const struct luo_manifest_entry *e = &m->entries[i];
		char rd[24], wr[24];

		range_str(e->read, rd);
		range_str(e->write, wr);
		printf("  %-9s  ", kind_name(e->kind));
		text_put(stdout, e->name, sizeof(e->name), name_w);
		printf("  read %-*s  write %-*s  %s\n", range_w, rd, range_w, wr,
		       entry_optional(e) ? "optional" : "mandatory");
	}

	printf("types     %zu%s\n", m->n_types, m->n_types == 0 ? "" : manifest_described(m) ? " (described by the compiler)"
									    : " (UNPROVEN: luo-describe never ran)");
	for (i = 0; i < m->n_types; i++) {
		const struct luo_manifest_type *t = &m->types[i];
		char root[96] = "?";

		if (t->desc.items)
			luo_typedesc_item_name(&t->desc, 0, root, sizeof(root));
		printf("  %-12s ", luo_type_role_name(t->role));
		text_put(stdout, t->component, sizeof(t->component), 0);
		printf(" v%" PRIu32 ": %s, %" PRIu32 " bytes, align %" PRIu32 ", ", t->version, root, t->size, t->align);
		if (t->digest)
			printf("%" PRIu32 " items, digest %016" PRIx64 "\n", t->desc.n_items, t->digest);
		else
			fputs("unproven\n", stdout);
		if (types && t->desc.items)
			luo_typedesc_print(stdout, &t->desc, "  ");
	}
	printf("layouts   %zu\n", m->n_layouts);
	for (i = 0; i < m->n_layouts; i++) {
		const struct luo_manifest_layout *l = &m->layouts[i];
		size_t field_w = 4, type_w = 4;

		fputs("  ", stdout);
		text_put(stdout, l->component, sizeof(l->component), 0);
		printf(" version %" PRIu32 ": struct size %" PRIu32 ", %" PRIu32 " field%s, fingerprint %016" PRIx64
		       "\n",
		       l->version, l->struct_size, l->n_fields, l->n_fields == 1 ? "" : "s", l->fingerprint);
		for (j = 0; j < layout_n_fields(l); j++) {
			size_t wn = text_width(l->fields[j].name, sizeof(l->fields[j].name));
			size_t wt = text_width(l->fields[j].type, sizeof(l->fields[j].type));

			field_w = MAX(field_w, wn);
			type_w = MAX(type_w, wt);
		}
		for (j = 0; j < layout_n_fields(l); j++) {
			const struct luo_abi_note_field *fl = &l->fields[j];

			fputs("    ", stdout);
			text_put(stdout, fl->name, sizeof(fl->name), field_w);
			fputs("  ", stdout);
			text_put(stdout, fl->type, sizeof(fl->type), type_w);
			printf("  offset %-6" PRIu32 "  size %" PRIu32 "\n", fl->offset, fl->size);
		}
	}
}

static void manifest_print_json(const char *path, const struct luo_manifest *m)
{
	size_t i, j;

	fputs("{\"binary\":", stdout);
	json_puts(stdout, path);
	fputs(",\"build_id\":", stdout);
	if (build_id_len(m) == 0) {
		fputs("null", stdout);
	} else {
		fputc('"', stdout);
		for (i = 0; i < build_id_len(m); i++)
			printf("%02x", m->build_id[i]);
		fputc('"', stdout);
	}
	fputs(",\"entries\":[", stdout);
	for (i = 0; i < m->n_entries; i++) {
		const struct luo_manifest_entry *e = &m->entries[i];

		printf("%s{\"kind\":\"%s\",\"name\":", i ? "," : "", kind_name(e->kind));
		json_put(stdout, e->name, sizeof(e->name));
		fputs(",\"read\":", stdout);
		json_range(stdout, e->read);
		fputs(",\"write\":", stdout);
		json_range(stdout, e->write);
		printf(",\"optional\":%s}", entry_optional(e) ? "true" : "false");
	}
	fputs("],\"types\":[", stdout);
	for (i = 0; i < m->n_types; i++) {
		const struct luo_manifest_type *t = &m->types[i];
		char root[96] = "";

		if (t->desc.items)
			luo_typedesc_item_name(&t->desc, 0, root, sizeof(root));
		printf("%s{\"component\":", i ? "," : "");
		json_put(stdout, t->component, sizeof(t->component));
		printf(",\"version\":%" PRIu32 ",\"role\":\"%s\",\"size\":%" PRIu32 ",\"align\":%" PRIu32
		       ",\"described\":%s,\"digest\":\"%016" PRIx64 "\",\"items\":%" PRIu32 ",\"root\":",
		       t->version, luo_type_role_name(t->role), t->size, t->align, t->digest ? "true" : "false",
		       t->digest, t->desc.n_items);
		json_puts(stdout, root);
		fputc('}', stdout);
	}
	fputs("],\"layouts\":[", stdout);
	for (i = 0; i < m->n_layouts; i++) {
		const struct luo_manifest_layout *l = &m->layouts[i];

		printf("%s{\"component\":", i ? "," : "");
		json_put(stdout, l->component, sizeof(l->component));
		printf(",\"version\":%" PRIu32 ",\"struct_size\":%" PRIu32 ",\"fingerprint\":\"%016" PRIx64
		       "\",\"fields\":[",
		       l->version, l->struct_size, l->fingerprint);
		for (j = 0; j < layout_n_fields(l); j++) {
			const struct luo_abi_note_field *fl = &l->fields[j];

			fputs(j ? ",{\"name\":" : "{\"name\":", stdout);
			json_put(stdout, fl->name, sizeof(fl->name));
			fputs(",\"type\":", stdout);
			json_put(stdout, fl->type, sizeof(fl->type));
			printf(",\"offset\":%" PRIu32 ",\"size\":%" PRIu32 "}", fl->offset, fl->size);
		}
		fputs("]}", stdout);
	}
	fputs("]}\n", stdout);
}

int cmd_manifest(const struct cmd_opts *o, int argc, char **argv)
{
	_cleanup_(luo_manifest_freep) struct luo_manifest *m = NULL;

	if (argc != 1)
		return usage_error("manifest: need exactly one BINARY", NULL);
	if (manifest_read(argv[0], 0, &m) < 0)
		return EXIT_TROUBLE;
	if (o->json)
		manifest_print_json(argv[0], m);
	else
		manifest_print_text(argv[0], m, o->types);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* check                                                                     */

struct check_request {
	const char *old_label; /* OLD's path, or "pid PID" */
	pid_t pid;             /* > 0: OLD is that running process */
	const char *new_path;
	bool strict;
	char pid_label[32];
};

struct check_result {
	struct luo_report_entry *entries;
	size_t n;
	int r;                 /* of negotiate(): 0 would proceed, -EPROTO refused */
	bool strict_fails;
};

/* Return: -1 go on, or the exit status (bad usage). */
static int check_parse(const struct cmd_opts *o, int argc, char **argv, struct check_request *q)
{
	if (argc != 1)
		return usage_error("check: need exactly one NEW binary", NULL);
	if (!o->against == !o->pid)
		return usage_error("check: need exactly one of --against OLD and --pid PID", NULL);
	q->new_path = argv[0];
	q->strict = o->strict;
	if (o->pid) {
		if (parse_pid(o->pid, &q->pid) < 0)
			return usage_error("bad PID", o->pid);
		snprintf(q->pid_label, sizeof(q->pid_label), "pid %d", (int)q->pid);
		q->old_label = q->pid_label;
	} else {
		q->old_label = o->against;
	}
	return -1;
}

/* 0, or a negative errno (said on stderr). */
static int check_run(const struct check_request *q, struct check_result *res)
{
	_cleanup_(luo_manifest_freep) struct luo_manifest *old = NULL;
	_cleanup_(luo_manifest_freep) struct luo_manifest *new = NULL;
	int r;

	r = manifest_read(q->old_label, q->pid, &old);
	if (r == 0)
		r = manifest_read(q->new_path, 0, &new);
	if (r < 0)
		return r;
	r = negotiate(old, new, &res->entries, &res->n);
	if (r < 0 && r != -EPROTO)
		return r;
	res->r = r;
	res->strict_fails = r == 0 && report_strict_fails(res->entries, res->n);
	return 0;
}

static void check_print_json(const struct check_request *q, const struct check_result *res)
{
	fputs("{\"old\":", stdout);
	json_puts(stdout, q->old_label);
	fputs(",\"new\":", stdout);
	json_puts(stdout, q->new_path);
	printf(",\"proceed\":%s,\"strict_ok\":%s,\"entries\":", res->r == 0 ? "true" : "false",
	       res->r == 0 && !res->strict_fails ? "true" : "false");
	report_json(res->entries, res->n);
	fputs("}\n", stdout);
}

static int check_print_text(const struct check_request *q, const struct check_result *res)
{
	for (size_t i = 0; i < res->n; i++) {
		int k = report_entry_print(&res->entries[i]);

		if (k < 0) {
			print_error("report", k, NULL);
			return k;
		}
	}
	fputs("update ", stdout);
	text_puts(stdout, q->old_label);
	fputs(" -> ", stdout);
	text_puts(stdout, q->new_path);
	printf(": %s\n", res->r == 0 ? "would proceed" : "would be refused");
	if (res->strict_fails)
		printf("strict: %s: a component would be downgraded, dropped or is unproven\n",
		       q->strict ? "refused" : "would refuse");
	return 0;
}

int cmd_check(const struct cmd_opts *o, int argc, char **argv)
{
	struct check_request q = { 0 };
	struct check_result res = { 0 };
	int r;

	r = check_parse(o, argc, argv, &q);
	if (r >= 0)
		return r;
	r = check_run(&q, &res);
	if (r == 0 && o->json)
		check_print_json(&q, &res);
	else if (r == 0)
		r = check_print_text(&q, &res);
	free(res.entries);
	if (r < 0)
		return EXIT_TROUBLE;
	if (res.r == 0 && q.strict && res.strict_fails)
		return EXIT_REFUSED;
	return res.r == 0 ? 0 : EXIT_REFUSED;
}
