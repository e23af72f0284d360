/* SPDX-License-Identifier: MIT */
/*
 * DOC: luoctl, what binaries declare and what an update between them would do
 *
 *   luoctl manifest BINARY [--json]
 *   luoctl check NEW (--against OLD | --pid PID) [--json]
 *   luoctl matrix BINARY BINARY... [--json]
 *
 * manifest prints the manifest of a binary on disk: the components, file
 * handlers and container format it declares in its .note.luo notes and in
 * those of the libraries it names in DT_NEEDED (not their dependencies),
 * with the versions each reads and writes, and the struct layouts recorded
 * per component version with their fingerprints.
 *
 * check negotiates an update from OLD (a binary on disk, or a running
 * process read through /proc) to NEW with luo_update()'s rule, without
 * running either, and prints the report, one line per entry, then whether
 * the update would proceed. Every entry of OLD counts as present, where
 * luo_update() only negotiates the handlers that hold files: luoctl may
 * refuse what a service with no such files would be allowed.
 *
 * matrix reads each manifest once and negotiates every ordered pair, for a
 * fleet of versions: which can update to which, which drop optional state,
 * which are refused and because of what.
 *
 * The binaries are hostile input. The manifest reader checks every note
 * (manifest.h); here, names and paths are escaped on output: control bytes
 * as \xNN in text, so that a name cannot drive the terminal, and JSON
 * strings per RFC 8259, with control bytes and bytes that are not UTF-8 as
 * \u00XX, so that the output always parses.
 *
 * Exit status: 0 success (check: the update would proceed); 1 check only:
 * the update would be refused; 2 bad usage, a binary or process that cannot
 * be read, or any other error, reported as a line on stderr, "luoctl: WHAT:
 * WHY" (bad usage: then the usage). Errors are negative errnos inside, as in
 * libluo.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "cleanup.h"
#include "luo/abi.h"
#include "luo/luo.h"
#include "manifest.h"

#ifndef LUOCTL_VERSION
#define LUOCTL_VERSION "unknown"
#endif

#define MAX(a, b) ((a) > (b) ? (a) : (b))

#define EXIT_REFUSED 1
#define EXIT_TROUBLE 2

/* Reasons the manifest reader gives: one line. */
#define REASON_MAX 256
/* Binaries in one matrix: each manifest may hold megabytes of layouts. */
#define MATRIX_BINARIES_MAX 256
/* Width of a matrix cell: "REFUSED" and "ok-drop". */
#define CELL_WIDTH 7

static void usage(FILE *f)
{
	fputs("usage: luoctl manifest BINARY [--json]\n"
	      "       luoctl check NEW --against OLD [--json]\n"
	      "       luoctl check NEW --pid PID [--json]\n"
	      "       luoctl matrix BINARY BINARY... [--json]\n"
	      "       luoctl --help | --version\n"
	      "\n"
	      "manifest  print the components, file handlers and format a binary declares\n"
	      "          in .note.luo (its own and its DT_NEEDED libraries'), the versions\n"
	      "          each reads and writes, and the recorded struct layouts\n"
	      "check     negotiate an update from OLD (a binary, or the running process\n"
	      "          PID) to NEW as luo_update() would; print one line per entry and\n"
	      "          whether it would proceed (exit 0) or be refused (exit 1)\n"
	      "matrix    negotiate every ordered pair of binaries; print a table of\n"
	      "          ok / ok-drop / REFUSED, rows updating from, columns to\n"
	      "\n"
	      "  --json          machine-readable output, one JSON object\n"
	      "  --against OLD   check: the binary updated from\n"
	      "  --pid PID       check: the running process updated from\n"
	      "  -h, --help      this text\n"
	      "  --version       the version of luoctl\n"
	      "\n"
	      "Exit status: 0 success or update would proceed, 1 update would be refused\n"
	      "(check), 2 bad usage or error.\n",
	      f);
}

/* ------------------------------------------------------------------------ */
/* Output of hostile strings                                                 */

/* Bytes of @s written by text_put(): control bytes take four. */
static size_t text_width(const char *s, size_t max)
{
	size_t i, w = 0;

	for (i = 0; i < max && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		w += c < 0x20 || c == 0x7f ? 4 : 1;
	}
	return w;
}

/* @s, at most @max bytes, control bytes as \xNN; then spaces up to @width. */
static void text_put(FILE *f, const char *s, size_t max, size_t width)
{
	size_t i, w = 0;

	for (i = 0; i < max && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f) {
			fprintf(f, "\\x%02x", c);
			w += 4;
		} else {
			fputc(c, f);
			w++;
		}
	}
	for (; w < width; w++)
		fputc(' ', f);
}

static void text_puts(FILE *f, const char *s)
{
	text_put(f, s, SIZE_MAX, 0);
}

/* Length of the valid UTF-8 sequence of 2 to 4 bytes at @p, else 0. */
static size_t utf8_len(const unsigned char *p, size_t max)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	/* No overlong forms, no surrogates, nothing above U+10FFFF. */
	if (p[0] == 0xe0)
		lo = 0xa0;
	else if (p[0] == 0xed)
		hi = 0x9f;
	else if (p[0] == 0xf0)
		lo = 0x90;
	else if (p[0] == 0xf4)
		hi = 0x8f;
	if (n > max)
		return 0;
	for (i = 1; i < n; i++) {
		if (p[i] < (i == 1 ? lo : 0x80) || p[i] > (i == 1 ? hi : 0xbf))
			return 0;
	}
	return n;
}

/* @s, at most @max bytes, as a JSON string that always parses. */
static void json_put(FILE *f, const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	fputc('"', f);
	while (i < max && p[i]) {
		size_t n = p[i] >= 0x80 ? utf8_len(p + i, max - i) : 0;

		if (n) {
			fwrite(p + i, 1, n, f);
			i += n;
			continue;
		}
		if (p[i] == '"' || p[i] == '\\')
			fprintf(f, "\\%c", p[i]);
		else if (p[i] < 0x20 || p[i] >= 0x7f)
			fprintf(f, "\\u%04x", p[i]);
		else
			fputc(p[i], f);
		i++;
	}
	fputc('"', f);
}

static void json_puts(FILE *f, const char *s)
{
	json_put(f, s, SIZE_MAX);
}

static void json_range(FILE *f, struct luo_version_range r)
{
	fprintf(f, "[%" PRIu32 ",%" PRIu32 "]", r.min, r.max);
}

/* Bad usage: say what, then the usage, on stderr. */
static int usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "luoctl: %s", what);
	if (arg) {
		fputs(" '", stderr);
		text_puts(stderr, arg);
		fputc('\'', stderr);
	}
	fputc('\n', stderr);
	usage(stderr);
	return EXIT_TROUBLE;
}

/* ------------------------------------------------------------------------ */
/* Manifests and reports                                                     */

static const char *kind_name(uint32_t kind)
{
	const char *s = luo_kind_name(kind);

	return s ? s : "unknown";
}

static const char *verdict_name(enum luo_verdict v)
{
	switch (v) {
	case LUO_VERDICT_USE:
		return "use";
	case LUO_VERDICT_DROP:
		return "drop";
	case LUO_VERDICT_REFUSE:
		return "refuse";
	case LUO_VERDICT_NEW:
		return "new";
	}
	return "unknown";
}

/* Handlers and the format are mandatory whatever their flags say. */
static bool entry_optional(const struct luo_manifest_entry *e)
{
	return e->kind == LUO_ABI_KIND_COMPONENT && (e->flags & LUO_ABI_FLAG_OPTIONAL);
}

/*
 * "luoctl: WHAT: REASON (strerror)". The reader's reasons start with the
 * file they are about, which may be WHAT or one of its libraries; WHAT is
 * not repeated, nor is strerror when the reason already ends with it.
 */
static void print_error(const char *what, int err, const char *reason)
{
	size_t what_len = strlen(what), reason_len = reason ? strnlen(reason, REASON_MAX) : 0;
	const char *es = strerror(-err);
	size_t es_len = strlen(es);

	fputs("luoctl: ", stderr);
	if (reason_len == 0) {
		text_puts(stderr, what);
		fprintf(stderr, ": %s\n", es);
		return;
	}
	if (strncmp(reason, what, what_len) != 0 || strncmp(reason + what_len, ": ", 2) != 0) {
		text_puts(stderr, what);
		fputs(": ", stderr);
	}
	text_put(stderr, reason, reason_len, 0);
	if (reason_len < es_len || strcmp(reason + reason_len - es_len, es) != 0)
		fprintf(stderr, " (%s)", es);
	fputc('\n', stderr);
}

/* The manifest of @path, or of process @pid if > 0 (@path then names it). */
static int manifest_read(const char *path, pid_t pid, struct luo_manifest **ret)
{
	char reason[REASON_MAX] = "";
	struct luo_manifest *m = NULL;
	int r;

	if (pid > 0)
		r = luo_manifest_read_pid(pid, &m, reason, sizeof(reason));
	else
		r = luo_manifest_read_file(path, &m, reason, sizeof(reason));
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

/*
 * luo_negotiate() with every entry of @old present. Return: 0 the update
 * would proceed, -EPROTO refused (both with the report in @ret_entries),
 * or another negative errno, said on stderr.
 */
static int negotiate(const struct luo_manifest *old, const struct luo_manifest *new,
		     struct luo_report_entry **ret_entries, size_t *ret_n)
{
	struct luo_report_entry *entries = NULL;
	size_t n = 0;
	int r;

	r = luo_negotiate(old, new, NULL, NULL, &entries, &n);
	if (r < 0 && r != -EPROTO) {
		print_error("negotiate", r, NULL);
		return r;
	}
	*ret_entries = entries;
	*ret_n = n;
	return r;
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

static void manifest_print_text(const char *path, const struct luo_manifest *m)
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

/* One report entry as luo_report_entry_format() words it, escaped. */
static int report_entry_print(const struct luo_report_entry *e)
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

static void report_entry_json(const struct luo_report_entry *e)
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
	printf(",\"verdict\":\"%s\",\"version\":%" PRIu32 ",\"why\":", verdict_name(e->verdict), e->version);
	json_put(stdout, e->why, sizeof(e->why));
	fputc('}', stdout);
}

/* ------------------------------------------------------------------------ */
/* Commands                                                                  */

/* Digits only, no sign or blank, 1..INT_MAX (pid_t). */
static int parse_pid(const char *s, pid_t *ret)
{
	int64_t v = 0;
	size_t i;

	if (!s[0])
		return -EINVAL;
	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
		if (v > INT32_MAX)
			return -ERANGE;
	}
	if (v == 0)
		return -EINVAL;
	*ret = (pid_t)v;
	return 0;
}

/*
 * Options of one command. getopt_long() permutes, so options may follow
 * the binaries; "--" ends them. Return: -1 go on, or the exit status of
 * the command (--help, bad usage).
 */
struct cmd_opts {
	bool json;
	const char *against;
	const char *pid;
};

enum { OPT_JSON = 0x100, OPT_AGAINST, OPT_PID };

static int cmd_opts_parse(int argc, char **argv, bool with_check, struct cmd_opts *ret)
{
	static const struct option all[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "against", required_argument, NULL, OPT_AGAINST },
		{ "pid", required_argument, NULL, OPT_PID },
		{ NULL, 0, NULL, 0 },
	};
	static const struct option common[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	struct cmd_opts o = { 0 };
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", with_check ? all : common, NULL)) >= 0) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case OPT_JSON:
			o.json = true;
			break;
		case OPT_AGAINST:
			if (o.against)
				return usage_error("--against given twice", NULL);
			o.against = optarg;
			break;
		case OPT_PID:
			if (o.pid)
				return usage_error("--pid given twice", NULL);
			o.pid = optarg;
			break;
		case ':':
			return usage_error("missing argument to", argv[optind - 1]);
		default:
			/* optopt: the letter of a bad short option; 0 or a long option's value otherwise. */
			if (optopt > 0 && optopt < 0x100) {
				char letter[3] = { '-', (char)optopt, '\0' };

				return usage_error("unknown option", letter);
			}
			return usage_error(optopt ? "option takes no argument" : "unknown option", argv[optind - 1]);
		}
	}
	*ret = o;
	return -1;
}

static int cmd_manifest(int argc, char **argv)
{
	_cleanup_(luo_manifest_freep) struct luo_manifest *m = NULL;
	struct cmd_opts o;
	int r;

	r = cmd_opts_parse(argc, argv, false, &o);
	if (r >= 0)
		return r;
	if (argc - optind != 1)
		return usage_error("manifest: need exactly one BINARY", NULL);
	if (manifest_read(argv[optind], 0, &m) < 0)
		return EXIT_TROUBLE;
	if (o.json)
		manifest_print_json(argv[optind], m);
	else
		manifest_print_text(argv[optind], m);
	return 0;
}

static int cmd_check(int argc, char **argv)
{
	_cleanup_(luo_manifest_freep) struct luo_manifest *old = NULL;
	_cleanup_(luo_manifest_freep) struct luo_manifest *new = NULL;
	_cleanup_free_ struct luo_report_entry *entries = NULL;
	char pid_label[32];
	const char *old_label, *new_path;
	struct cmd_opts o;
	pid_t pid = 0;
	size_t i, n = 0;
	int r;

	r = cmd_opts_parse(argc, argv, true, &o);
	if (r >= 0)
		return r;
	if (argc - optind != 1)
		return usage_error("check: need exactly one NEW binary", NULL);
	if (!o.against == !o.pid)
		return usage_error("check: need exactly one of --against OLD and --pid PID", NULL);
	new_path = argv[optind];
	if (o.pid) {
		if (parse_pid(o.pid, &pid) < 0)
			return usage_error("bad PID", o.pid);
		snprintf(pid_label, sizeof(pid_label), "pid %d", (int)pid);
		old_label = pid_label;
	} else {
		old_label = o.against;
	}

	if (manifest_read(old_label, pid, &old) < 0 || manifest_read(new_path, 0, &new) < 0)
		return EXIT_TROUBLE;
	r = negotiate(old, new, &entries, &n);
	if (r < 0 && r != -EPROTO)
		return EXIT_TROUBLE;

	if (o.json) {
		fputs("{\"old\":", stdout);
		json_puts(stdout, old_label);
		fputs(",\"new\":", stdout);
		json_puts(stdout, new_path);
		printf(",\"proceed\":%s,\"entries\":[", r == 0 ? "true" : "false");
		for (i = 0; i < n; i++) {
			if (i)
				fputc(',', stdout);
			report_entry_json(&entries[i]);
		}
		fputs("]}\n", stdout);
	} else {
		for (i = 0; i < n; i++) {
			int k = report_entry_print(&entries[i]);

			if (k < 0) {
				print_error("report", k, NULL);
				return EXIT_TROUBLE;
			}
		}
		fputs("update ", stdout);
		text_puts(stdout, old_label);
		fputs(" -> ", stdout);
		text_puts(stdout, new_path);
		printf(": %s\n", r == 0 ? "would proceed" : "would be refused");
	}
	return r == 0 ? 0 : EXIT_REFUSED;
}

/* What the table needs of one ordered pair. */
struct matrix_cell {
	bool proceed;
	bool dropped;
};

/* The label of @path: its basename, or the path itself if there is none. */
static const char *path_basename(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash && slash[1] ? slash + 1 : path;
}

/* The names of the entries of @entries with verdict @v, as a JSON array. */
static void json_names(const struct luo_report_entry *entries, size_t n, enum luo_verdict v)
{
	bool first = true;
	size_t i;

	fputc('[', stdout);
	for (i = 0; i < n; i++) {
		if (entries[i].verdict != v)
			continue;
		if (!first)
			fputc(',', stdout);
		json_put(stdout, entries[i].name, sizeof(entries[i].name));
		first = false;
	}
	fputc(']', stdout);
}

static int matrix_json(char **paths, size_t n, struct luo_manifest **m)
{
	size_t from, to, i;
	bool first = true;

	fputs("{\"binaries\":[", stdout);
	for (i = 0; i < n; i++) {
		if (i)
			fputc(',', stdout);
		json_puts(stdout, paths[i]);
	}
	fputs("],\"cells\":[", stdout);
	for (from = 0; from < n; from++) {
		for (to = 0; to < n; to++) {
			_cleanup_free_ struct luo_report_entry *entries = NULL;
			size_t n_entries = 0;
			bool first_version = true;
			int r;

			if (from == to)
				continue;
			r = negotiate(m[from], m[to], &entries, &n_entries);
			if (r < 0 && r != -EPROTO)
				return r;
			fputs(first ? "{\"from\":" : ",{\"from\":", stdout);
			first = false;
			json_puts(stdout, paths[from]);
			fputs(",\"to\":", stdout);
			json_puts(stdout, paths[to]);
			printf(",\"proceed\":%s,\"dropped\":", r == 0 ? "true" : "false");
			json_names(entries, n_entries, LUO_VERDICT_DROP);
			fputs(",\"refused\":", stdout);
			json_names(entries, n_entries, LUO_VERDICT_REFUSE);
			fputs(",\"versions\":{", stdout);
			for (i = 0; i < n_entries; i++) {
				if (entries[i].verdict != LUO_VERDICT_USE)
					continue;
				if (!first_version)
					fputc(',', stdout);
				json_put(stdout, entries[i].name, sizeof(entries[i].name));
				printf(":%" PRIu32, entries[i].version);
				first_version = false;
			}
			fputs("}}", stdout);
		}
	}
	fputs("]}\n", stdout);
	return 0;
}

static int matrix_text(char **paths, size_t n, struct luo_manifest **m)
{
	_cleanup_free_ struct matrix_cell *cells = NULL;
	_cleanup_free_ const char **labels = NULL;
	static const char corner[] = "from \\ to";
	size_t from, to, i, j, row_w = sizeof(corner) - 1;
	bool full = false, any_refused = false;

	cells = calloc(n * n, sizeof(*cells));
	labels = calloc(n, sizeof(*labels));
	if (!cells || !labels) {
		print_error("matrix", -ENOMEM, NULL);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			full = full || strcmp(path_basename(paths[i]), path_basename(paths[j])) == 0;
	for (i = 0; i < n; i++) {
		labels[i] = full ? paths[i] : path_basename(paths[i]);
		row_w = MAX(row_w, text_width(labels[i], SIZE_MAX));
	}

	for (from = 0; from < n; from++) {
		for (to = 0; to < n; to++) {
			_cleanup_free_ struct luo_report_entry *entries = NULL;
			size_t n_entries = 0;
			int r;

			if (from == to)
				continue;
			r = negotiate(m[from], m[to], &entries, &n_entries);
			if (r < 0 && r != -EPROTO)
				return r;
			cells[from * n + to].proceed = r == 0;
			for (i = 0; i < n_entries; i++)
				cells[from * n + to].dropped |= entries[i].verdict == LUO_VERDICT_DROP;
			any_refused |= r != 0;
		}
	}

	text_put(stdout, corner, SIZE_MAX, row_w);
	for (to = 0; to < n; to++) {
		size_t w = text_width(labels[to], SIZE_MAX);

		fputs("  ", stdout);
		text_put(stdout, labels[to], SIZE_MAX, to + 1 < n ? MAX(w, CELL_WIDTH) : 0);
	}
	fputc('\n', stdout);
	for (from = 0; from < n; from++) {
		text_put(stdout, labels[from], SIZE_MAX, row_w);
		for (to = 0; to < n; to++) {
			const struct matrix_cell *c = &cells[from * n + to];
			size_t w = text_width(labels[to], SIZE_MAX);
			const char *s = from == to ? "-" : !c->proceed ? "REFUSED" : c->dropped ? "ok-drop" : "ok";

			printf("  %-*s", to + 1 < n ? (int)MAX(w, CELL_WIDTH) : 0, s);
		}
		fputc('\n', stdout);
	}
	fputs("\nrows: updating from; columns: updating to\n"
	      "  ok       would proceed, every entry handed over or new\n"
	      "  ok-drop  would proceed, some optional entry dropped (the new image cold-starts it)\n"
	      "  REFUSED  would be refused: a mandatory entry has no common version\n"
	      "  -        the same binary\n",
	      stdout);

	if (!any_refused)
		return 0;
	fputs("\nrefused:\n", stdout);
	/* Only refused pairs are negotiated again: a report can be large. */
	for (from = 0; from < n; from++) {
		for (to = 0; to < n; to++) {
			_cleanup_free_ struct luo_report_entry *entries = NULL;
			size_t n_entries = 0;
			bool first = true;
			int r;

			if (from == to || cells[from * n + to].proceed)
				continue;
			r = negotiate(m[from], m[to], &entries, &n_entries);
			if (r < 0 && r != -EPROTO)
				return r;
			fputs("  ", stdout);
			text_puts(stdout, labels[from]);
			fputs(" -> ", stdout);
			text_puts(stdout, labels[to]);
			fputc(':', stdout);
			for (i = 0; i < n_entries; i++) {
				if (entries[i].verdict != LUO_VERDICT_REFUSE)
					continue;
				printf("%s %s ", first ? "" : ",", kind_name(entries[i].kind));
				text_put(stdout, entries[i].name, sizeof(entries[i].name), 0);
				first = false;
			}
			fputc('\n', stdout);
		}
	}
	return 0;
}

static int cmd_matrix(int argc, char **argv)
{
	_cleanup_free_ struct luo_manifest **m = NULL;
	struct cmd_opts o;
	size_t i, n;
	int r;

	r = cmd_opts_parse(argc, argv, false, &o);
	if (r >= 0)
		return r;
	if (argc - optind < 2)
		return usage_error("matrix: need at least two BINARYs", NULL);
	n = (size_t)(argc - optind);
	if (n > MATRIX_BINARIES_MAX) {
		fprintf(stderr, "luoctl: matrix: at most %d binaries\n", MATRIX_BINARIES_MAX);
		return EXIT_TROUBLE;
	}
	m = calloc(n, sizeof(*m));
	if (!m) {
		print_error("matrix", -ENOMEM, NULL);
		return EXIT_TROUBLE;
	}
	for (i = 0, r = 0; i < n && r >= 0; i++)
		r = manifest_read(argv[optind + i], 0, &m[i]);
	if (r >= 0)
		r = o.json ? matrix_json(argv + optind, n, m) : matrix_text(argv + optind, n, m);
	for (i = 0; i < n; i++)
		luo_manifest_free(m[i]);
	return r < 0 ? EXIT_TROUBLE : 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(int argc, char **argv);
	} commands[] = {
		{ "manifest", cmd_manifest },
		{ "check", cmd_check },
		{ "matrix", cmd_matrix },
	};
	int (*run)(int argc, char **argv) = NULL;
	size_t i;
	int r;

	if (argc < 2)
		return usage_error("no command", NULL);
	if (argv[1][0] == '-' && argc > 2)
		return usage_error("unexpected argument", argv[2]);
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		r = 0;
	} else if (strcmp(argv[1], "--version") == 0) {
		printf("luoctl %s\n", LUOCTL_VERSION);
		r = 0;
	} else {
		for (i = 0; i < ARRAY_SIZE(commands); i++)
			if (strcmp(argv[1], commands[i].name) == 0)
				run = commands[i].run;
		if (!run)
			return usage_error(argv[1][0] == '-' ? "unknown option" : "unknown command", argv[1]);
		/* The command's name stands as argv[0] for getopt_long(). */
		r = run(argc - 1, argv + 1);
	}
	/* A full disk or a closed pipe must not look like a verdict. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "luoctl: write error: %s\n", strerror(errno));
		return EXIT_TROUBLE;
	}
	return r;
}
