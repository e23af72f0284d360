/* SPDX-License-Identifier: MIT */
/*
 * DOC: report.c, manifests read, updates negotiated, reports worded
 *
 * What the verbs that reason about builds share: a manifest read from a
 * binary, a recorded manifest or a running process (warnings and errors
 * said on stderr once, here); luo_negotiate() with every entry of the old
 * side present; a report summed up in the words of matrix, path and
 * history; every ordered pair of a set of builds negotiated; a report
 * entry as a line of text or a JSON object.
 *
 * Layer: calls manifest-json.c and output.c, and libluo's manifest and
 * negotiation (src/lib/manifest.h).
 */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "luo/abi.h"
#include "luoctl.h"

const char *kind_name(uint32_t kind)
{
	const char *s = luo_kind_name(kind);

	return s ? s : "unknown";
}

const char *verdict_name(enum luo_verdict v)
{
	const char *s = luo_verdict_name(v, false); /* libluo's names (negotiate.c) */

	return s ? s : "unknown";
}

const char *path_basename(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash && slash[1] ? slash + 1 : path;
}

/* The manifest of @path, or of process @pid if > 0 (@path then names it). */
int manifest_read(const char *path, pid_t pid, struct luo_manifest **ret)
{
	char reason[REASON_MAX] = "";
	struct luo_manifest *m = NULL;
	int r;

	if (pid > 0)
		r = luo_manifest_read_pid(pid, &m, reason, sizeof(reason));
	else
		r = luoctl_manifest_read_path(path, &m, reason, sizeof(reason));
	reason[sizeof(reason) - 1] = '\0';
	if (r >= 0 && !m)
		r = -EIO;
	if (r < 0) {
		print_error(path, r, reason);
		return r;
	}
	if (m->n_unresolved > 0) {
		fputs("luoctl: warning: ", stderr);
		text_puts(stderr, path);
		fprintf(stderr, ": %zu needed librar%s not found (first: ", m->n_unresolved,
			m->n_unresolved == 1 ? "y" : "ies");
		text_puts(stderr, m->unresolved_first);
		fputs("); what they declare is not in the manifest\n", stderr);
	}
	*ret = m;
	return 0;
}

static const struct luo_manifest_entry *manifest_format(const struct luo_manifest *m)
{
	for (size_t i = 0; i < m->n_entries; i++)
		if (m->entries[i].kind == LUO_ABI_KIND_FORMAT)
			return &m->entries[i];
	return NULL;
}

bool manifest_declares_luo(const struct luo_manifest *m)
{
	return manifest_format(m) != NULL;
}

/*
 * The report of an update one side of which declares no handover format:
 * one entry, the format, refused, with why. luo_negotiate() would call
 * every entry of a NEW new, and so proceed from a binary that cannot hand
 * anything over (it has no libluo to serialize with).
 */
static int negotiate_undeclared(const struct luo_manifest *old, const struct luo_manifest *new,
				struct luo_report_entry **ret_entries, size_t *ret_n)
{
	const struct luo_manifest_entry *fo = manifest_format(old), *fn = manifest_format(new);
	struct luo_report_entry *e = calloc(1, sizeof(*e));

	if (!e) {
		print_error("negotiate", -ENOMEM, NULL);
		return -ENOMEM;
	}
	snprintf(e->name, sizeof(e->name), "%s", LUO_ABI_FORMAT_COMPONENT);
	e->kind = LUO_ABI_KIND_FORMAT;
	if (fo) {
		e->old_read = fo->read;
		e->old_write = fo->write;
	}
	if (fn) {
		e->new_read = fn->read;
		e->new_write = fn->write;
	}
	e->verdict = LUO_VERDICT_REFUSE;
	e->cause = LUO_CAUSE_NOT_DECLARED;
	snprintf(e->why, sizeof(e->why), "%s declares no luo manifest (no .note.luo: it does not link libluo)%s",
		 !fo && !fn ? "neither image" : !fo ? "the old image" : "the new image",
		 !fo ? ", so it cannot hand state over" : ", so it cannot take state over");
	*ret_entries = e;
	*ret_n = 1;
	return -EPROTO;
}

/*
 * luo_negotiate() with every entry of @old present. Return: 0 the update
 * would proceed, -EPROTO refused (both with the report in @ret_entries),
 * or another negative errno, said on stderr. A side that declares no luo
 * manifest refuses the update (negotiate_undeclared()).
 */
int negotiate(const struct luo_manifest *old, const struct luo_manifest *new, struct luo_report_entry **ret_entries,
	      size_t *ret_n)
{
	struct luo_report_entry *entries = NULL;
	size_t n = 0;
	int r;

	if (!manifest_declares_luo(old) || !manifest_declares_luo(new))
		return negotiate_undeclared(old, new, ret_entries, ret_n);
	r = luo_negotiate(old, new, NULL, NULL, &entries, &n);
	if (r < 0 && r != -EPROTO) {
		print_error("negotiate", r, NULL);
		return r;
	}
	*ret_entries = entries;
	*ret_n = n;
	return r;
}

static const char *proof_name(uint32_t p)
{
	switch (p) {
	case LUO_TYPES_PROVEN:
		return "proven";
	case LUO_TYPES_UNPROVEN:
		return "unproven";
	}
	return "none";
}

static const char *cause_name(uint32_t c)
{
	switch (c) {
	case LUO_CAUSE_NO_COMMON_VERSION:
		return "no-common-version";
	case LUO_CAUSE_TYPES_DIFFER:
		return "types-differ";
	case LUO_CAUSE_NOT_DECLARED:
		return "not-declared";
	case LUO_CAUSE_STRICT:
		return "strict";
	}
	return "none";
}

/*
 * --strict: what a release gate must not let through silently. A component
 * handed over lower than it could be, dropped, or with unproven types.
 */
bool entry_strict_fails(const struct luo_report_entry *e)
{
	if (e->kind != LUO_ABI_KIND_COMPONENT)
		return false;
	return e->verdict == LUO_VERDICT_DOWNGRADE || e->verdict == LUO_VERDICT_DROP ||
	       ((e->verdict == LUO_VERDICT_USE) && e->types == LUO_TYPES_UNPROVEN);
}

bool report_strict_fails(const struct luo_report_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (entry_strict_fails(&e[i]))
			return true;
	return false;
}

bool report_has(const struct luo_report_entry *e, size_t n, enum luo_verdict v)
{
	for (size_t i = 0; i < n; i++)
		if (e[i].verdict == v)
			return true;
	return false;
}

struct report_summary report_summarize(const struct luo_report_entry *e, size_t n, int r)
{
	struct report_summary s = { .proceed = r == 0 };

	for (size_t i = 0; i < n; i++) {
		s.dropped |= e[i].verdict == LUO_VERDICT_DROP;
		s.downgraded |= e[i].verdict == LUO_VERDICT_DOWNGRADE;
		s.unproven |= e[i].kind == LUO_ABI_KIND_COMPONENT && e[i].types == LUO_TYPES_UNPROVEN;
	}
	s.strict_fails = s.proceed && report_strict_fails(e, n);
	return s;
}

const char *report_summary_word(const struct report_summary *s)
{
	if (!s->proceed)
		return "REFUSED";
	return s->downgraded ? "DOWNGRADE" : s->dropped ? "ok-drop" : s->strict_fails ? "ok?" : "ok";
}

int report_pairs(struct luo_manifest *const *m, size_t n, struct report_summary *cells)
{
	for (size_t from = 0; from < n; from++) {
		for (size_t to = 0; to < n; to++) {
			_cleanup_free_ struct luo_report_entry *e = NULL;
			size_t ne = 0;
			int r;

			if (from == to)
				continue;
			r = negotiate(m[from], m[to], &e, &ne);
			if (r < 0 && r != -EPROTO)
				return r;
			cells[from * n + to] = report_summarize(e, ne, r);
		}
	}
	return 0;
}

/* One report entry as luo_report_entry_format() words it, escaped. */
int report_entry_print(const struct luo_report_entry *e)
{
	_cleanup_free_ char *big = NULL;
	char buf[512];
	const char *line = buf;
	int r;

	r = luo_report_entry_format(e, buf, sizeof(buf));
	if (r < 0)
		return -EINVAL;
	if ((size_t)r >= sizeof(buf)) {
		big = malloc((size_t)r + 1);
		if (!big)
			return -ENOMEM;
		luo_report_entry_format(e, big, (size_t)r + 1);
		line = big;
	}
	fputs("  ", stdout);
	text_puts(stdout, line);
	fputc('\n', stdout);
	return 0;
}

void report_entry_json(const struct luo_report_entry *e)
{
	printf("{\"kind\":\"%s\",\"name\":", kind_name(e->kind));
	json_put(stdout, e->name, sizeof(e->name));
	printf(",\"optional\":%s,\"old_read\":", e->optional ? "true" : "false");
	json_range(stdout, e->old_read);
	fputs(",\"old_write\":", stdout);
	json_range(stdout, e->old_write);
	fputs(",\"new_read\":", stdout);
	json_range(stdout, e->new_read);
	fputs(",\"new_write\":", stdout);
	json_range(stdout, e->new_write);
	printf(",\"verdict\":\"%s\",\"version\":%" PRIu32 ",\"types\":\"%s\",\"cause\":\"%s\""
	       ",\"mismatch_version\":%" PRIu32 ",\"why\":",
	       verdict_name(e->verdict), e->version, proof_name(e->types), cause_name(e->cause), e->mismatch_version);
	json_put(stdout, e->why, sizeof(e->why));
	fputc('}', stdout);
}

void report_json(const struct luo_report_entry *e, size_t n)
{
	fputc('[', stdout);
	for (size_t i = 0; i < n; i++) {
		if (i)
			fputc(',', stdout);
		report_entry_json(&e[i]);
	}
	fputc(']', stdout);
}
