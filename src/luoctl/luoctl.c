/* SPDX-License-Identifier: MIT */
/*
 * DOC: luoctl, what binaries declare and what an update between them would do;
 * live updates of running services; the agent's state
 *
 *   luoctl manifest BINARY [--types] [--json]
 *   luoctl check NEW (--against OLD | --pid PID) [--strict] [--json]
 *   luoctl matrix BINARY BINARY... [--strict] [--json]
 *   luoctl update --pid PID NEW_BINARY [--timeout SECONDS] [--json]
 *   luoctl status [--socket PATH] [--json]
 *   luoctl sessions [--uid UID | --all] [--socket PATH] [--json]
 *   luoctl drop SESSION [--uid UID] [--socket PATH]
 *   luoctl agent update [--timeout SECONDS] [--socket PATH] [--json]
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
 * matrix reads each manifest once and negotiates every ordered pair, for a
 * fleet of versions: which can update to which, which drop optional state,
 * which are refused and because of what.
 *
 * update speaks the control protocol of include/luo/agent.h to the service
 * PID: it connects to the abstract address "\0luo-control.<PID>", checks
 * with SO_PEERCRED that PID listens there under our uid (or we are root),
 * with SO_PEERPIDFD that the process that listened is still alive and
 * still PID (control_connect()), and takes only messages the kernel says
 * PID itself sent (SCM_CREDENTIALS, recv_from_pid()),
 * sends UPDATE with the realpath of NEW_BINARY and waits, at most
 * --timeout seconds, for the one answer: refused (the error, a reason and
 * the negotiation report), done (the new image's timings, from its
 * luo_ready()) or rolled back (-EUCLEAN and the reason). A connection
 * closed without an answer, or no answer in time, leaves the outcome
 * unknown: exit 2, said so.
 *
 * status, sessions, drop and agent update are requests STATUS (+ LIST),
 * LIST, DROP and UPDATE to luod, at --socket, $LUO_AGENT_SOCKET or agent.h's
 * default. Every message received is checked as agent.h says (sizes,
 * version, seq, counts against a named maximum); names and reasons from
 * the peer are hostile like the binaries' and escaped the same way.
 *
 * The binaries are hostile input. The manifest reader checks every note
 * (manifest.h); here, names and paths are escaped on output: control bytes
 * as \xNN in text, so that a name cannot drive the terminal, and JSON
 * strings per RFC 8259, with control bytes and bytes that are not UTF-8 as
 * \u00XX, so that the output always parses.
 *
 * --strict (check, matrix, update): a component handed over at a lower
 * version because the types of a higher one differ (downgrade), an
 * optional one dropped, or one whose types are unproven is an answer of
 * no (exit 1): for release gates that must not lose state silently.
 *
 * Exit status: 0 success (check: the update would proceed; update: done);
 * 1 the answer is no: check: the update would be refused; update: refused,
 * failed or rolled back, the service keeps serving; drop: no such session
 * or not ours; agent update: refused; 2 bad usage, a binary or process that
 * cannot be read, no peer, no answer, a malformed one, or any other error, reported as a line on stderr, "luoctl: WHAT:
 * WHY" (bad usage: then the usage). Errors are negative errnos inside, as in
 * libluo.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "luo/abi.h"
#include "luo/agent.h"
#include "luo/luo.h"
#include "luo-internal.h" /* luo_parse_u64() */
#include "luoctl.h"
#include "manifest.h"
#include "wire.h"

#ifndef LUOCTL_VERSION
#define LUOCTL_VERSION "unknown"
#endif

#define MAX(a, b) ((a) > (b) ? (a) : (b))


/* Reasons the manifest reader gives: one line. */
#define REASON_MAX 256
/* Binaries in one matrix: each manifest may hold megabytes of layouts. */
#define MATRIX_BINARIES_MAX 256
/* Width of a matrix cell: "REFUSED" and "ok-drop". */
#define CELL_WIDTH 7
/* update / agent update: how long to wait for the answer, by default and at most. */
#define UPDATE_TIMEOUT_DEFAULT_S 30
#define TIMEOUT_MAX_S 3600
/* status / sessions / drop: the agent answers at once or not at all. */
#define AGENT_TIMEOUT_S 10
/* Report entries of a refused update taken from a service (it sends <= 256). */
#define UPDATE_REPORTS_MAX 1024
/* Sessions in one LIST reply taken from the agent. */
#define AGENT_LIST_MAX (1u << 20)
/* The seq of the one request luoctl sends on a control connection. */
#define CONTROL_SEQ 1
/* connect(): a full backlog is retried every CONNECT_RETRY_MS for CONNECT_TIMEOUT_MS. */
#define CONNECT_TIMEOUT_MS 5000
#define CONNECT_RETRY_MS 10

/*
 * On a control connection, the pid every message must come from (the
 * kernel's SCM_CREDENTIALS, SO_PASSCRED); 0 on an agent connection.
 */
static pid_t control_sender;

void usage(FILE *f)
{
	fputs("usage: luoctl manifest BINARY [--types] [--json]\n"
	      "       luoctl check NEW --against OLD [--strict] [--json]\n"
	      "       luoctl check NEW --pid PID [--strict] [--json]\n"
	      "       luoctl matrix BINARY BINARY... [--strict] [--json]\n"
	      "       luoctl path FROM TO BUILD... [--strict] [--json]\n"
	      "       luoctl history DIR HEAD [--strict] [--json]\n"
	      "       luoctl update --pid PID NEW_BINARY [--timeout SECONDS] [--json]\n"
	      "       luoctl status [--socket PATH] [--json]\n"
	      "       luoctl sessions [--uid UID | --all] [--socket PATH] [--json]\n"
	      "       luoctl drop SESSION [--uid UID] [--socket PATH]\n"
	      "       luoctl agent update [--timeout SECONDS] [--socket PATH] [--json]\n"
	      "       luoctl --help | --version\n"
	      "\n"
	      "manifest  print the components, file handlers and format a binary declares\n"
	      "          in .note.luo (its own and its DT_NEEDED libraries'), the versions\n"
	      "          each reads and writes, the types that cross an update (described\n"
	      "          by the compiler, or unproven) and the hand-recorded layouts\n"
	      "check     negotiate an update from OLD (a binary, or the running process\n"
	      "          PID) to NEW as luo_update() would; print one line per entry and\n"
	      "          whether it would proceed (exit 0) or be refused (exit 1)\n"
	      "matrix    negotiate every ordered pair of binaries; print a table of\n"
	      "          ok / ok-drop / DOWNGRADE / REFUSED, rows from, columns to\n"
	      "path      the shortest chain of live updates FROM -> ... -> TO through the\n"
	      "          BUILDs, each hop negotiated as check does, with its verdict; hops\n"
	      "          that drop, downgrade or are unproven are flagged (exit 0 found,\n"
	      "          1 none)\n"
	      "history   a release history DIR (NNNN-NAME.json records, a file \"window:\n"
	      "          N\"): can HEAD accept the state of each of the last N releases\n"
	      "          (exit 1 if not), and which read versions of HEAD no update\n"
	      "          inside the window hands over (the code that can go)\n"
	      "update    ask the running libluo service PID (its control socket) to\n"
	      "          live-update to NEW_BINARY and wait: done with the timings (exit\n"
	      "          0), or refused with the report, or rolled back (exit 1)\n"
	      "status    luod's pid, liveupdate-number, uptime, totals, your usage and\n"
	      "          limits, and the sessions you may see\n"
	      "sessions  the sessions luod holds: yours, UID's, or --all you may see\n"
	      "drop      make luod forget SESSION (yours, or UID's) and close its fds\n"
	      "agent update  make luod live-update itself; held sessions survive\n"
	      "\n"
	      "  --json          machine-readable output, one JSON object\n"
	      "  --types         manifest: print each type's description, item by item\n"
	      "  --strict        check, matrix, update, history: a downgrade (types differ\n"
	      "                  at a higher version), a dropped component or unproven\n"
	      "                  types are an answer of no (exit 1); path: no such hop\n"
	      "  --against OLD   check: the binary updated from\n"
	      "  --pid PID       check: the running process updated from; update: the\n"
	      "                  service to update\n"
	      "  --timeout SECONDS  update, agent update: wait at most this long for the\n"
	      "                  answer (1..3600, default 30)\n"
	      "  --socket PATH   luod's socket (default: $LUO_AGENT_SOCKET, else\n"
	      "                  /run/luo/agent.sock for root, $XDG_RUNTIME_DIR/luo/agent.sock)\n"
	      "  --uid UID       sessions, drop: that owner's (root only, unless yours)\n"
	      "  --all           sessions: every session you may see\n"
	      "  -h, --help      this text\n"
	      "  --version       the version of luoctl\n"
	      "\n"
	      "A BINARY, OLD, NEW, FROM, TO, BUILD or HEAD may also be a recorded manifest:\n"
	      "a file of what manifest --json printed (its first non-blank byte is '{').\n"
	      "\n"
	      "Exit status: 0 success or update would proceed; 1 the answer is no: update\n"
	      "would be refused (check), was refused, failed or rolled back (update),\n"
	      "no such session (drop), agent update refused, no chain (path), a release\n"
	      "inside the window not accepted (history); 2 bad usage or error (no\n"
	      "control socket or agent, no answer, a connection closed without one).\n",
	      f);
}

/* ------------------------------------------------------------------------ */
/* Output of hostile strings                                                 */

/* Bytes of @s written by text_put(): control bytes take four. */
size_t text_width(const char *s, size_t max)
{
	size_t i, w = 0;

	for (i = 0; i < max && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		w += c < 0x20 || c == 0x7f ? 4 : 1;
	}
	return w;
}

/* @s, at most @max bytes, control bytes as \xNN; then spaces up to @width. */
void text_put(FILE *f, const char *s, size_t max, size_t width)
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

void text_puts(FILE *f, const char *s)
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
void json_put(FILE *f, const char *s, size_t max)
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

void json_puts(FILE *f, const char *s)
{
	json_put(f, s, SIZE_MAX);
}

void json_range(FILE *f, struct luo_version_range r)
{
	fprintf(f, "[%" PRIu32 ",%" PRIu32 "]", r.min, r.max);
}

/* Bad usage: say what, then the usage, on stderr. */
int usage_error(const char *what, const char *arg)
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

const char *kind_name(uint32_t kind)
{
	const char *s = luo_kind_name(kind);

	return s ? s : "unknown";
}

const char *verdict_name(enum luo_verdict v)
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
	case LUO_VERDICT_DOWNGRADE:
		return "downgrade";
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
void print_error(const char *what, int err, const char *reason)
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

/*
 * luo_negotiate() with every entry of @old present. Return: 0 the update
 * would proceed, -EPROTO refused (both with the report in @ret_entries),
 * or another negative errno, said on stderr.
 */
int negotiate(const struct luo_manifest *old, const struct luo_manifest *new,
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
	fields_manifest_text(m);
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
	fputc(']', stdout);
	fields_manifest_json(m);
	fputs("}\n", stdout);
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

/* ------------------------------------------------------------------------ */
/* Commands                                                                  */

/* Decimal digits only (luo_parse_u64(): no sign, blank or leading zero), 1..INT32_MAX (pid_t). */
static int parse_pid(const char *s, pid_t *ret)
{
	uint64_t v;
	int r = luo_parse_u64(s, INT32_MAX, &v);

	if (r == 0 && v == 0)
		r = -EINVAL;
	if (r == 0)
		*ret = (pid_t)v;
	return r;
}

/*
 * Options of one command. getopt_long() permutes, so options may follow
 * the binaries; "--" ends them. Return: -1 go on, or the exit status of
 * the command (--help, bad usage).
 */
struct cmd_opts {
	bool json;
	bool all;
	bool strict;
	bool types;
	const char *against;
	const char *pid;
	const char *timeout;
	const char *socket;
	const char *uid;
};

enum { OPT_JSON = 0x100, OPT_AGAINST, OPT_PID, OPT_TIMEOUT, OPT_SOCKET, OPT_UID, OPT_ALL, OPT_STRICT, OPT_TYPES };
enum cmd_kind { CMD_MANIFEST, CMD_CHECK, CMD_MATRIX, CMD_UPDATE, CMD_STATUS, CMD_SESSIONS, CMD_DROP, CMD_AGENT };

#define OPT_BIT(o) (1u << ((o) - OPT_JSON))

/* The options each command takes (--help: all). */
static const unsigned int cmd_options[] = {
	[CMD_MANIFEST] = OPT_BIT(OPT_JSON) | OPT_BIT(OPT_TYPES),
	[CMD_CHECK] = OPT_BIT(OPT_JSON) | OPT_BIT(OPT_AGAINST) | OPT_BIT(OPT_PID) | OPT_BIT(OPT_STRICT),
	[CMD_MATRIX] = OPT_BIT(OPT_JSON) | OPT_BIT(OPT_STRICT),
	[CMD_UPDATE] = OPT_BIT(OPT_JSON) | OPT_BIT(OPT_PID) | OPT_BIT(OPT_TIMEOUT) | OPT_BIT(OPT_STRICT),
	[CMD_STATUS] = OPT_BIT(OPT_JSON) | OPT_BIT(OPT_SOCKET),
	[CMD_SESSIONS] = OPT_BIT(OPT_JSON) | OPT_BIT(OPT_SOCKET) | OPT_BIT(OPT_UID) | OPT_BIT(OPT_ALL),
	[CMD_DROP] = OPT_BIT(OPT_SOCKET) | OPT_BIT(OPT_UID),
	[CMD_AGENT] = OPT_BIT(OPT_JSON) | OPT_BIT(OPT_SOCKET) | OPT_BIT(OPT_TIMEOUT),
};

/* Set *@slot to optarg, unless the option came before. */
static int opt_once(const char **slot, const char *name)
{
	char what[48];

	if (*slot) {
		snprintf(what, sizeof(what), "%s given twice", name);
		return usage_error(what, NULL);
	}
	*slot = optarg;
	return -1;
}

static int cmd_opts_parse(int argc, char **argv, enum cmd_kind cmd, struct cmd_opts *ret)
{
	static const struct option all[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "against", required_argument, NULL, OPT_AGAINST },
		{ "pid", required_argument, NULL, OPT_PID },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "uid", required_argument, NULL, OPT_UID },
		{ "all", no_argument, NULL, OPT_ALL },
		{ "strict", no_argument, NULL, OPT_STRICT },
		{ "types", no_argument, NULL, OPT_TYPES },
	};
	struct option mine[ARRAY_SIZE(all) + 2];
	struct cmd_opts o = { 0 };
	size_t n = 0;
	int c, r = -1;

	mine[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		if (cmd_options[cmd] & OPT_BIT(all[i].val))
			mine[n++] = all[i];
	mine[n] = (struct option){ NULL, 0, NULL, 0 };

	opterr = 0;
	while (r < 0 && (c = getopt_long(argc, argv, ":h", mine, NULL)) >= 0) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case OPT_JSON:
			o.json = true;
			break;
		case OPT_ALL:
			o.all = true;
			break;
		case OPT_STRICT:
			o.strict = true;
			break;
		case OPT_TYPES:
			o.types = true;
			break;
		case OPT_AGAINST:
			r = opt_once(&o.against, "--against");
			break;
		case OPT_PID:
			r = opt_once(&o.pid, "--pid");
			break;
		case OPT_TIMEOUT:
			r = opt_once(&o.timeout, "--timeout");
			break;
		case OPT_SOCKET:
			r = opt_once(&o.socket, "--socket");
			break;
		case OPT_UID:
			r = opt_once(&o.uid, "--uid");
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
	if (r >= 0)
		return r;
	*ret = o;
	return -1;
}

static int cmd_manifest(int argc, char **argv)
{
	_cleanup_(luo_manifest_freep) struct luo_manifest *m = NULL;
	struct cmd_opts o;
	int r;

	r = cmd_opts_parse(argc, argv, CMD_MANIFEST, &o);
	if (r >= 0)
		return r;
	if (argc - optind != 1)
		return usage_error("manifest: need exactly one BINARY", NULL);
	if (manifest_read(argv[optind], 0, &m) < 0)
		return EXIT_TROUBLE;
	if (o.json)
		manifest_print_json(argv[optind], m);
	else
		manifest_print_text(argv[optind], m, o.types);
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

	r = cmd_opts_parse(argc, argv, CMD_CHECK, &o);
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
		printf(",\"proceed\":%s,\"strict_ok\":%s,\"entries\":[", r == 0 ? "true" : "false",
		       r == 0 && !report_strict_fails(entries, n) ? "true" : "false");
		for (i = 0; i < n; i++) {
			if (i)
				fputc(',', stdout);
			report_entry_json(&entries[i]);
		}
		fputc(']', stdout);
		if (fields_report_json(old, new, entries, n) < 0)
			return EXIT_TROUBLE;
		fputs("}\n", stdout);
	} else {
		for (i = 0; i < n; i++) {
			int k = report_entry_print(&entries[i]);

			if (k >= 0)
				k = fields_report_text(old, new, &entries[i]);
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
		if (r == 0 && report_strict_fails(entries, n))
			printf("strict: %s: a component would be downgraded, dropped or is unproven\n",
			       o.strict ? "refused" : "would refuse");
	}
	if (r == 0 && o.strict && report_strict_fails(entries, n))
		return EXIT_REFUSED;
	return r == 0 ? 0 : EXIT_REFUSED;
}

/* What the table needs of one ordered pair. */
struct matrix_cell {
	bool proceed;
	bool dropped;
	bool downgraded;
	bool unproven;
};

/* The label of @path: its basename, or the path itself if there is none. */
const char *path_basename(const char *path)
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

static int matrix_json(char **paths, size_t n, struct luo_manifest **m, bool *strict_failed)
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
			*strict_failed |= r == 0 && report_strict_fails(entries, n_entries);
			printf(",\"proceed\":%s,\"strict_ok\":%s,\"dropped\":", r == 0 ? "true" : "false",
			       r == 0 && !report_strict_fails(entries, n_entries) ? "true" : "false");
			json_names(entries, n_entries, LUO_VERDICT_DROP);
			fputs(",\"downgraded\":", stdout);
			json_names(entries, n_entries, LUO_VERDICT_DOWNGRADE);
			fputs(",\"refused\":", stdout);
			json_names(entries, n_entries, LUO_VERDICT_REFUSE);
			fputs(",\"versions\":{", stdout);
			for (i = 0; i < n_entries; i++) {
				if (entries[i].verdict != LUO_VERDICT_USE && entries[i].verdict != LUO_VERDICT_DOWNGRADE)
					continue;
				if (!first_version)
					fputc(',', stdout);
				json_put(stdout, entries[i].name, sizeof(entries[i].name));
				printf(":%" PRIu32, entries[i].version);
				first_version = false;
			}
			fputc('}', stdout);
			r = fields_report_json(m[from], m[to], entries, n_entries);
			if (r < 0)
				return r;
			fputc('}', stdout);
		}
	}
	fputs("]}\n", stdout);
	return 0;
}

static int matrix_text(char **paths, size_t n, struct luo_manifest **m, bool *strict_failed)
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
			for (i = 0; i < n_entries; i++) {
				const struct luo_report_entry *e = &entries[i];

				cells[from * n + to].dropped |= e->verdict == LUO_VERDICT_DROP;
				cells[from * n + to].downgraded |= e->verdict == LUO_VERDICT_DOWNGRADE;
				cells[from * n + to].unproven |= e->kind == LUO_ABI_KIND_COMPONENT &&
								 e->types == LUO_TYPES_UNPROVEN;
			}
			any_refused |= r != 0;
			*strict_failed |= r == 0 && report_strict_fails(entries, n_entries);
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
			const char *s = from == to       ? "-"
					: !c->proceed    ? "REFUSED"
					: c->downgraded  ? "DOWNGRADE"
					: c->dropped     ? "ok-drop"
							 : "ok";
			char cell[24];

			snprintf(cell, sizeof(cell), "%s%s", s, from != to && c->proceed && c->unproven ? "?" : "");
			printf("  %-*s", to + 1 < n ? (int)MAX(w, CELL_WIDTH) : 0, cell);
		}
		fputc('\n', stdout);
	}
	fputs("\nrows: updating from; columns: updating to\n"
	      "  ok       would proceed, every entry handed over or new\n"
	      "  ok-drop  would proceed, some optional entry dropped (the new image cold-starts it)\n"
	      "  DOWNGRADE would proceed at a lower version: the types of a higher one differ\n"
	      "  REFUSED  would be refused: a mandatory entry has no common version, or its\n"
	      "           types differ at every common version\n"
	      "  ?        some component's types are unproven (a binary never described)\n"
	      "  -        the same binary\n",
	      stdout);
	if (fields_matrix_text(labels, n, m) < 0)
		return -ENOMEM;

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
				printf("%s %s ", first ? "" : ";", kind_name(entries[i].kind));
				text_put(stdout, entries[i].name, sizeof(entries[i].name), 0);
				fputs(": ", stdout);
				text_put(stdout, entries[i].why, sizeof(entries[i].why), 0);
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
	bool strict_failed = false;
	struct cmd_opts o;
	size_t i, n;
	int r;

	r = cmd_opts_parse(argc, argv, CMD_MATRIX, &o);
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
		r = o.json ? matrix_json(argv + optind, n, m, &strict_failed)
			   : matrix_text(argv + optind, n, m, &strict_failed);
	for (i = 0; i < n; i++)
		luo_manifest_free(m[i]);
	if (r < 0)
		return EXIT_TROUBLE;
	return o.strict && strict_failed ? EXIT_REFUSED : 0;
}

/* ------------------------------------------------------------------------ */
/* Talking to a service (control socket) and to luod                         */

/* Decimal digits only, 1..@max seconds. */
static int parse_seconds(const char *s, int max, int *ret)
{
	uint64_t v;
	int r = luo_parse_u64(s, (uint64_t)max, &v);

	if (r == 0 && v == 0)
		r = -EINVAL;
	if (r == 0)
		*ret = (int)v;
	return r;
}

/* A uid: decimal digits only, below the protocol's special values. */
static int parse_uid(const char *s, uint32_t *ret)
{
	uint64_t v;
	int r = luo_parse_u64(s, LUO_AGENT_UID_ALL - 1, &v);

	if (r == 0)
		*ret = (uint32_t)v;
	return r;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * One message before @deadline (CLOCK_MONOTONIC ms). Return: its length,
 * 0 the peer closed, -ETIMEDOUT, or the error of luo_wire_recv() (a
 * message carrying fds is refused: none is expected here).
 */
/*
 * One message that must come from process @pid itself: the kernel names
 * its sender at send (SO_PASSCRED set before connect). Fds are refused.
 * Return: its length, 0 the peer closed, -EPERM another sender, -EBADMSG.
 */
static ssize_t recv_from_pid(int fd, void *buf, size_t cap, pid_t pid)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * LUO_AGENT_FDS_PER_MSG)];
	} c;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf, .msg_controllen = sizeof(c.buf) };
	bool from_pid = false, bad = false;
	ssize_t n;

	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_CREDENTIALS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(struct ucred))) {
			struct ucred uc;

			memcpy(&uc, CMSG_DATA(cm), sizeof(uc));
			from_pid = uc.pid == pid;
		} else if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t i = 0; i < k; i++) {
				int rfd;

				memcpy(&rfd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
				close(rfd);
			}
			bad = true;
		} else {
			bad = true;
		}
	}
	if (bad || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
		return -EBADMSG;
	if (n == 0)
		return 0;
	return from_pid ? n : -EPERM;
}

static ssize_t recv_until(int fd, void *buf, size_t cap, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	size_t n_fds;
	int no_fds[1];

	for (;;) {
		int64_t left = deadline - now_ms();
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r > 0)
			break;
	}
	if (control_sender > 0)
		return recv_from_pid(fd, buf, cap, control_sender);
	return luo_wire_recv(fd, buf, cap, no_fds, 0, &n_fds);
}

/*
 * The next message, checked as agent.h says: size, version, @op (0: any),
 * the echoed @seq; copied into @out (ours bytes, zero-extended).
 * Return: 0; 0 with *@closed set when the peer closed; or a negative
 * errno, said on stderr with @what.
 */
static int recv_struct(int fd, int64_t deadline, size_t ver0, uint16_t op, uint32_t seq, void *out, size_t ours,
		       const char *what, bool *closed)
{
	union {
		struct luo_agent_header hdr;
		char buf[LUO_AGENT_MSG_MAX];
	} in;
	struct luo_agent_header hdr;
	ssize_t n;
	int r;

	*closed = false;
	n = recv_until(fd, in.buf, sizeof(in.buf), deadline);
	if (n == 0) {
		*closed = true;
		return 0;
	}
	if (n < 0) {
		print_error(what, (int)n, n == -ETIMEDOUT ? "no answer in time"
				  : n == -EPERM ? "a message not sent by that process (its control socket is "
						  "held by another)"
						: "cannot receive");
		return (int)n;
	}
	r = luo_wire_header(in.buf, (size_t)n, ver0, op, &hdr);
	if (r == 0 && hdr.seq != seq)
		r = -EBADMSG;
	if (r == 0)
		r = luo_wire_struct_in(out, ours, in.buf, (size_t)n);
	if (r < 0) {
		print_error(what, r, "malformed message");
		return r;
	}
	return 0;
}

static const char *errno_name(int err)
{
	switch (-err) {
	case EPROTO: return "EPROTO";
	case EUCLEAN: return "EUCLEAN";
	case ENOENT: return "ENOENT";
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case EINVAL: return "EINVAL";
	case EBUSY: return "EBUSY";
	case ENOEXEC: return "ENOEXEC";
	case ENOSPC: return "ENOSPC";
	case EDQUOT: return "EDQUOT";
	case ENOMEM: return "ENOMEM";
	case EBADMSG: return "EBADMSG";
	case E2BIG: return "E2BIG";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
	case ECONNABORTED: return "ECONNABORTED";
	case ENODATA: return "ENODATA";
	}
	return NULL;
}

/* "-71 (EPROTO: Protocol error)" as JSON members "error" and "message". */
static void json_error(int err)
{
	const char *name = errno_name(err);

	printf("\"error\":%d,\"errno\":", err);
	if (name)
		json_puts(stdout, name);
	else
		fputs("null", stdout);
	fputs(",\"message\":", stdout);
	json_puts(stdout, err ? strerror(-err) : "");
}

/* A fixed array from the wire, as a string: cut at its size. */
#define WIRE_STR(arr) (arr), sizeof(arr)

/*
 * connect() that gives up: an AF_UNIX listener whose backlog is full makes
 * a blocking connect() wait for ever; here it is retried every
 * CONNECT_RETRY_MS for CONNECT_TIMEOUT_MS. The fd is blocking again after.
 */
static int connect_bounded(int fd, const struct sockaddr_un *sa, socklen_t len)
{
	int64_t deadline = now_ms() + CONNECT_TIMEOUT_MS;
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	for (;;) {
		struct timespec wait = { .tv_nsec = CONNECT_RETRY_MS * 1000000L };

		if (connect(fd, (const struct sockaddr *)sa, len) == 0)
			break;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		nanosleep(&wait, NULL);
	}
	if (fcntl(fd, F_SETFL, flags) < 0)
		return -errno;
	return 0;
}

/*
 * Connect to "\0luo-control.<pid>" and check who listens there: SO_PEERCRED
 * names the pid that called listen(), but a pid is a number that may have
 * gone to another process since. SO_PEERPIDFD (Linux 6.5+) names the
 * listening process itself: it must still be alive and still be @pid.
 * Older kernels: no such early check; on every kernel, each message must
 * come from @pid itself (SCM_CREDENTIALS, recv_from_pid()), which a
 * listener held by any other process cannot fake.
 */
static int control_connect(pid_t pid, int *ret_fd)
{
	_cleanup_close_ int fd = -1, pidfd = -1;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ucred cred;
	socklen_t cred_len = sizeof(cred);
	char what[64];
	bool exact;
	int n, one = 1, r;

	snprintf(what, sizeof(what), "pid %d", (int)pid);
	n = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "%s%d", LUO_CONTROL_ADDRESS_PREFIX, (int)pid);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		print_error("socket", -errno, NULL);
		return -errno;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0) {
		print_error("socket", -errno, "SO_PASSCRED");
		return -errno;
	}
	r = connect_bounded(fd, &sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n));
	if (r < 0) {
		if (r == -ETIMEDOUT)
			fprintf(stderr, "luoctl: pid %d: the control socket @%s%d accepts no connection (backlog full "
				"for %d ms)\n", (int)pid, LUO_CONTROL_ADDRESS_PREFIX, (int)pid, CONNECT_TIMEOUT_MS);
		else
			fprintf(stderr,
				"luoctl: pid %d: no control socket @%s%d (%s): is it a libluo service that called "
				"luo_control_listen(), in this network namespace?\n",
				(int)pid, LUO_CONTROL_ADDRESS_PREFIX, (int)pid, strerror(-r));
		return r;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) < 0 || cred_len != sizeof(cred)) {
		print_error(what, -errno, "cannot read the control socket's credentials");
		return -EIO;
	}
	if (cred.pid != pid) {
		fprintf(stderr, "luoctl: pid %d: the control socket @%s%d is held by pid %d, not %d: refusing to use it\n",
			(int)pid, LUO_CONTROL_ADDRESS_PREFIX, (int)pid, (int)cred.pid, (int)pid);
		return -EPERM;
	}
	pidfd = luo_peer_pidfd(fd, cred.pid, &exact);
	if (exact && luo_pidfd_pid(pidfd) != pid)
		pidfd = safe_close(pidfd), r = -ESRCH;
	else
		r = pidfd < 0 ? pidfd : 0;
	if (r == -ESRCH) {
		fprintf(stderr, "luoctl: pid %d: the process that listens on @%s%d has exited; pid %d is another "
			"process now: refusing to use it\n", (int)pid, LUO_CONTROL_ADDRESS_PREFIX, (int)pid, (int)pid);
		return -EPERM;
	}
	if (r < 0) {
		print_error(what, r, "cannot name the control socket's process");
		return r;
	}
	if (cred.uid != geteuid() && geteuid() != 0) {
		fprintf(stderr, "luoctl: pid %d: runs as uid %u, not as ours (%u): only that uid or root may update it\n",
			(int)pid, (unsigned)cred.uid, (unsigned)geteuid());
		return -EPERM;
	}
	control_sender = pid;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static void report_line_print(const struct luo_control_report *rep)
{
	fputs("  ", stdout);
	if (rep->full_line[0])
		text_put(stdout, WIRE_STR(rep->full_line), 0);
	else
		text_put(stdout, WIRE_STR(rep->line), 0); /* a service of protocol size 0 */
	fputc('\n', stdout);
}

static void report_json(const struct luo_control_report *rep)
{
	printf("{\"kind\":\"%s\",\"name\":", kind_name(rep->kind));
	json_put(stdout, WIRE_STR(rep->name));
	printf(",\"verdict\":\"%s\",\"version\":%" PRIu32 ",\"line\":", verdict_name((enum luo_verdict)rep->verdict),
	       rep->version);
	json_put(stdout, rep->full_line[0] ? rep->full_line : rep->line,
		 rep->full_line[0] ? sizeof(rep->full_line) : sizeof(rep->line));
	fputc('}', stdout);
}

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static int cmd_update(int argc, char **argv)
{
	_cleanup_free_ struct luo_control_report *reps = NULL;
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int fd = -1;
	struct luo_control_update req;
	struct luo_agent_reply reply;
	struct luo_control_done done;
	struct cmd_opts o;
	const char *result;
	int64_t deadline;
	bool closed;
	pid_t pid = 0;
	int r, timeout = UPDATE_TIMEOUT_DEFAULT_S;
	char what[64];

	r = cmd_opts_parse(argc, argv, CMD_UPDATE, &o);
	if (r >= 0)
		return r;
	if (argc - optind != 1)
		return usage_error("update: need exactly one NEW_BINARY", NULL);
	if (!o.pid)
		return usage_error("update: need --pid PID", NULL);
	if (parse_pid(o.pid, &pid) < 0)
		return usage_error("bad PID", o.pid);
	if (o.timeout && parse_seconds(o.timeout, TIMEOUT_MAX_S, &timeout) < 0)
		return usage_error("bad --timeout (seconds, 1..3600)", o.timeout);
	snprintf(what, sizeof(what), "pid %d", (int)pid);

	/* The service resolves nothing: it gets the file we mean, absolute. */
	path = realpath(argv[optind], NULL);
	if (!path) {
		print_error(argv[optind], -errno, NULL);
		return EXIT_TROUBLE;
	}
	if (strlen(path) >= sizeof(req.path)) {
		print_error(argv[optind], -ENAMETOOLONG, NULL);
		return EXIT_TROUBLE;
	}
	if (control_connect(pid, &fd) < 0)
		return EXIT_TROUBLE;

	memset(&req, 0, sizeof(req));
	luo_wire_header_init(&req.hdr, sizeof(req), LUO_CONTROL_OP_UPDATE, CONTROL_SEQ);
	req.flags = o.strict ? LUO_CONTROL_UPDATE_STRICT : 0;
	req.reply_size = sizeof(struct luo_agent_reply);
	/* One size for the report entries and the done message: the larger. */
	req.info_size = (uint32_t)MAX(sizeof(struct luo_control_report), sizeof(struct luo_control_done));
	memcpy(req.path, path, strlen(path));
	r = luo_wire_send(fd, &req, sizeof(req), NULL, 0);
	if (r < 0) {
		print_error(what, r, "cannot send the request");
		return EXIT_TROUBLE;
	}

	deadline = now_ms() + (int64_t)timeout * 1000;
	r = recv_struct(fd, deadline, LUO_AGENT_REPLY_SIZE_VER0, LUO_CONTROL_OP_UPDATE, CONTROL_SEQ, &reply,
			sizeof(reply), what, &closed);
	if (r == -ETIMEDOUT)
		fprintf(stderr, "luoctl: pid %d: outcome unknown: the update may still be under way\n", (int)pid);
	if (r < 0)
		return EXIT_TROUBLE;
	if (closed) {
		fprintf(stderr,
			"luoctl: pid %d: outcome unknown: the service closed the connection without an answer (it "
			"exited or crashed, or its new image never called luo_ready()); check its state and logs\n",
			(int)pid);
		return EXIT_TROUBLE;
	}
	reply.reason[sizeof(reply.reason) - 1] = '\0';
	memset(&done, 0, sizeof(done));
	if (reply.error == 0) {
		if (reply.count != 1) {
			print_error(what, -EBADMSG, "success without its timings");
			return EXIT_TROUBLE;
		}
		r = recv_struct(fd, deadline, LUO_CONTROL_DONE_SIZE_VER0, LUO_CONTROL_OP_DONE, CONTROL_SEQ, &done,
				sizeof(done), what, &closed);
		if (r < 0 || closed) {
			if (closed)
				print_error(what, -ECONNRESET, "closed before the timings: outcome unknown");
			return EXIT_TROUBLE;
		}
		result = "done";
	} else if (reply.error == -EUCLEAN) {
		result = "rolled-back";
	} else {
		if (reply.count > UPDATE_REPORTS_MAX) {
			print_error(what, -EBADMSG, "too many report entries");
			return EXIT_TROUBLE;
		}
		reps = calloc(reply.count ? reply.count : 1, sizeof(*reps));
		if (!reps) {
			print_error(what, -ENOMEM, NULL);
			return EXIT_TROUBLE;
		}
		for (uint32_t i = 0; i < reply.count; i++) {
			r = recv_struct(fd, deadline, LUO_CONTROL_REPORT_SIZE_VER0, LUO_CONTROL_OP_REPORT, CONTROL_SEQ,
					&reps[i], sizeof(reps[i]), what, &closed);
			if (r < 0 || closed) {
				if (closed)
					print_error(what, -ECONNRESET, "closed in the middle of the report");
				return EXIT_TROUBLE;
			}
		}
		result = "refused";
	}

	if (o.json) {
		printf("{\"pid\":%d,\"binary\":", (int)pid);
		json_puts(stdout, path);
		printf(",\"result\":\"%s\",", result);
		json_error(reply.error);
		fputs(",\"reason\":", stdout);
		json_put(stdout, WIRE_STR(reply.reason));
		printf(",\"liveupdate_number\":%" PRIu64, reply.lu_number);
		if (reply.error == 0)
			printf(",\"new_pid\":%d,\"timings_ms\":{\"blackout\":%.3f,\"freeze\":%.3f,\"serialize\":%.3f,"
			       "\"exec\":%.3f,\"restore\":%.3f,\"ready\":%.3f}",
			       (int)done.pid, ms(done.blackout_ns), ms(done.freeze_ns), ms(done.serialize_ns),
			       ms(done.exec_ns), ms(done.restore_ns), ms(done.ready_ns));
		fputs(",\"report\":[", stdout);
		for (uint32_t i = 0; reps && i < reply.count; i++) {
			if (i)
				fputc(',', stdout);
			report_json(&reps[i]);
		}
		fputs("]}\n", stdout);
	} else {
		printf("update pid %d -> ", (int)pid);
		text_puts(stdout, path);
		if (reply.error == 0) {
			printf(": done, same pid %d, liveupdate-number %" PRIu64 "\n", (int)done.pid, done.lu_number);
			printf("  blackout %.3f ms (freeze %.3f, serialize %.3f, exec %.3f, restore %.3f, ready %.3f)\n",
			       ms(done.blackout_ns), ms(done.freeze_ns), ms(done.serialize_ns), ms(done.exec_ns),
			       ms(done.restore_ns), ms(done.ready_ns));
		} else if (reply.error == -EUCLEAN) {
			fputs(": rolled back, the old binary serves again: ", stdout);
			text_put(stdout, WIRE_STR(reply.reason), 0);
			printf(" (liveupdate-number %" PRIu64 ")\n", reply.lu_number);
		} else {
			fputs(": refused: ", stdout);
			text_put(stdout, WIRE_STR(reply.reason), 0);
			printf(" (%s); the service keeps running\n", strerror(-reply.error));
			for (uint32_t i = 0; i < reply.count; i++)
				report_line_print(&reps[i]);
		}
	}
	if (reply.error == 0 && done.pid != pid) {
		fprintf(stderr, "luoctl: pid %d: the answer came from pid %d\n", (int)pid, (int)done.pid);
		return EXIT_TROUBLE;
	}
	return reply.error == 0 ? 0 : EXIT_REFUSED;
}

/* The agent's socket: --socket, else $LUO_AGENT_SOCKET, else agent.h's defaults. */
static int agent_connect(const char *opt, int *ret_fd)
{
	_cleanup_close_ int fd = -1;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *env = getenv(LUO_AGENT_SOCKET_ENV), *xdg;
	struct ucred cred = { .uid = (uid_t)-1 };
	socklen_t cred_len = sizeof(cred);
	int n, r;

	if (opt)
		n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", opt);
	else if (env && *env)
		n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", env);
	else if (geteuid() == 0)
		n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", LUO_AGENT_SOCKET_SYSTEM);
	else if ((xdg = getenv("XDG_RUNTIME_DIR")) && *xdg == '/')
		n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", xdg, LUO_AGENT_SOCKET_USER);
	else {
		fprintf(stderr, "luoctl: agent: no socket: give --socket PATH, or set %s or XDG_RUNTIME_DIR\n",
			LUO_AGENT_SOCKET_ENV);
		return -ENOENT;
	}
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path)) {
		fputs("luoctl: agent: ", stderr);
		text_puts(stderr, opt ? opt : env ? env : "");
		fprintf(stderr, ": socket path longer than %zu bytes\n", sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		print_error("socket", -errno, NULL);
		return -errno;
	}
	r = connect_bounded(fd, &sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1));
	if (r < 0) {
		fputs("luoctl: agent ", stderr);
		text_puts(stderr, sa.sun_path);
		fprintf(stderr, ": %s (is luod running?)\n", r == -ETIMEDOUT ? "accepts no connection" : strerror(-r));
		return r;
	}
	/* Whoever listens there sees our requests and chooses our answers: root or us only. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) < 0 || cred_len != sizeof(cred) ||
	    (cred.uid != 0 && cred.uid != geteuid())) {
		fputs("luoctl: agent ", stderr);
		text_puts(stderr, sa.sun_path);
		fprintf(stderr, ": listened on by uid %d, neither root nor us: refusing to use it\n",
			cred_len == sizeof(cred) ? (int)cred.uid : -1);
		return -EPERM;
	}
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* Send one request and read its reply (checked, reason terminated). */
static int agent_call(int fd, uint16_t op, uint32_t seq, uint32_t uid, const char *name, size_t info_size,
		      int64_t deadline, struct luo_agent_reply *ret_reply)
{
	struct luo_agent_request req;
	bool closed;
	int r;

	memset(&req, 0, sizeof(req));
	luo_wire_header_init(&req.hdr, sizeof(req), op, seq);
	req.uid = uid;
	req.reply_size = sizeof(struct luo_agent_reply);
	req.info_size = (uint32_t)info_size;
	if (name)
		memcpy(req.name, name, strlen(name)); /* checked: under LUO_AGENT_NAME_SIZE */
	r = luo_wire_send(fd, &req, sizeof(req), NULL, 0);
	if (r < 0) {
		print_error("agent", r, "cannot send the request");
		return r;
	}
	r = recv_struct(fd, deadline, LUO_AGENT_REPLY_SIZE_VER0, op, seq, ret_reply, sizeof(*ret_reply), "agent",
			&closed);
	if (r < 0)
		return r;
	if (closed) {
		fputs("luoctl: agent: closed the connection without an answer\n", stderr);
		return -ECONNRESET;
	}
	ret_reply->reason[sizeof(ret_reply->reason) - 1] = '\0';
	return 0;
}

/* "luoctl: agent: REASON (strerror)" for an error reply. */
static void agent_refused(const char *what, const struct luo_agent_reply *reply)
{
	fprintf(stderr, "luoctl: %s: ", what);
	if (reply->reason[0]) {
		text_put(stderr, WIRE_STR(reply->reason), 0);
		fprintf(stderr, " (%s)\n", strerror(-reply->error));
	} else {
		fprintf(stderr, "%s\n", strerror(-reply->error));
	}
}

/* Seconds between @then and now (CLOCK_REALTIME), 0 if in the future. */
static uint64_t age_s(uint64_t then)
{
	time_t now = time(NULL);

	return now > 0 && (uint64_t)now > then ? (uint64_t)now - then : 0;
}

/* "1d02h", "3h04m", "5m06s", "7s". */
static void duration_str(uint64_t s, char buf[static 32])
{
	if (s >= 86400)
		snprintf(buf, 32, "%" PRIu64 "d%02" PRIu64 "h", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(buf, 32, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(buf, 32, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
	else
		snprintf(buf, 32, "%" PRIu64 "s", s);
}

/* Read @count session infos and print them; text table or JSON array members. */
static int sessions_read_print(int fd, uint32_t seq, uint32_t count, int64_t deadline, bool json)
{
	bool closed;

	if (!json)
		printf("%-10s  %-32s  %6s  %12s  %8s  %8s  %10s  %s\n", "OWNER", "NAME", "FDS", "BYTES", "AGE", "UPDATED",
		       "GENERATION", "ATTACHED");
	for (uint32_t i = 0; i < count; i++) {
		struct luo_agent_session_info info;
		char age[32], upd[32];
		int r;

		r = recv_struct(fd, deadline, LUO_AGENT_SESSION_INFO_SIZE_VER0, LUO_AGENT_OP_INFO, seq, &info,
				sizeof(info), "agent", &closed);
		if (r < 0)
			return r;
		if (closed) {
			fputs("luoctl: agent: closed in the middle of the list\n", stderr);
			return -ECONNRESET;
		}
		if (json) {
			printf("%s{\"uid\":%" PRIu32 ",\"name\":", i ? "," : "", info.uid);
			json_put(stdout, WIRE_STR(info.name));
			printf(",\"fds\":%" PRIu32 ",\"bytes\":%" PRIu64 ",\"deposited_s\":%" PRIu64
			       ",\"updated_s\":%" PRIu64 ",\"age_s\":%" PRIu64 ",\"generation\":%" PRIu64
			       ",\"attached_pid\":%" PRId32 ",\"keep_on_crash\":%s}",
			       info.n_fds, info.bytes, info.deposited_s, info.updated_s, age_s(info.deposited_s),
			       info.generation, info.owner_pid,
			       (info.flags & LUO_AGENT_DEPOSIT_KEEP_ON_CRASH) ? "true" : "false");
			continue;
		}
		duration_str(age_s(info.deposited_s), age);
		duration_str(age_s(info.updated_s), upd);
		printf("%-10" PRIu32 "  ", info.uid);
		text_put(stdout, WIRE_STR(info.name), 32);
		printf("  %6" PRIu32 "  %12" PRIu64 "  %8s  %8s  %10" PRIu64 "  ", info.n_fds, info.bytes, age, upd,
		       info.generation);
		if (info.owner_pid > 0)
			printf("pid %" PRId32 "%s\n", info.owner_pid,
			       (info.flags & LUO_AGENT_DEPOSIT_KEEP_ON_CRASH) ? ", kept on crash" : "");
		else
			puts("detached");
	}
	return 0;
}

static int agent_list(int fd, uint32_t seq, uint32_t uid, int64_t deadline, bool json)
{
	struct luo_agent_reply reply;
	int r;

	r = agent_call(fd, LUO_AGENT_OP_LIST, seq, uid, NULL, sizeof(struct luo_agent_session_info), deadline, &reply);
	if (r < 0)
		return EXIT_TROUBLE;
	if (reply.error < 0) {
		agent_refused("agent: list", &reply);
		return reply.error == -EPERM ? EXIT_REFUSED : EXIT_TROUBLE;
	}
	if (reply.count > AGENT_LIST_MAX) {
		print_error("agent", -EBADMSG, "too many sessions in the list");
		return EXIT_TROUBLE;
	}
	if (json)
		fputs("\"sessions\":[", stdout);
	else
		printf("sessions  %" PRIu32 "\n", reply.count);
	if (sessions_read_print(fd, seq, reply.count, deadline, json) < 0)
		return EXIT_TROUBLE;
	if (json)
		fputc(']', stdout);
	return 0;
}

static int cmd_status(int argc, char **argv)
{
	_cleanup_close_ int fd = -1;
	struct luo_agent_reply reply;
	struct luo_agent_status st;
	struct cmd_opts o;
	int64_t deadline;
	char up[32];
	bool closed;
	int r;

	r = cmd_opts_parse(argc, argv, CMD_STATUS, &o);
	if (r >= 0)
		return r;
	if (argc - optind != 0)
		return usage_error("status: unexpected argument", argv[optind]);
	if (agent_connect(o.socket, &fd) < 0)
		return EXIT_TROUBLE;
	deadline = now_ms() + AGENT_TIMEOUT_S * 1000;
	if (agent_call(fd, LUO_AGENT_OP_STATUS, 1, LUO_AGENT_UID_SELF, NULL, sizeof(st), deadline, &reply) < 0)
		return EXIT_TROUBLE;
	if (reply.error < 0) {
		agent_refused("agent: status", &reply);
		return EXIT_TROUBLE;
	}
	if (reply.count != 1) {
		print_error("agent", -EBADMSG, "status without its record");
		return EXIT_TROUBLE;
	}
	r = recv_struct(fd, deadline, LUO_AGENT_STATUS_SIZE_VER0, LUO_AGENT_OP_INFO, 1, &st, sizeof(st), "agent",
			&closed);
	if (r < 0 || closed) {
		if (closed)
			fputs("luoctl: agent: closed before the status record\n", stderr);
		return EXIT_TROUBLE;
	}
	if (o.json) {
		printf("{\"agent\":{\"pid\":%" PRId32 ",\"liveupdate_number\":%" PRIu64 ",\"started_s\":%" PRIu64
		       ",\"uptime_s\":%" PRIu64 ",\"connections\":%" PRIu32 ",\"sessions\":%" PRIu64 ",\"fds\":%" PRIu64
		       ",\"bytes\":%" PRIu64 "},\"caller\":{\"uid\":%u,\"sessions\":%" PRIu64 ",\"fds\":%" PRIu64
		       ",\"bytes\":%" PRIu64 ",\"max_sessions\":%" PRIu64 ",\"max_fds\":%" PRIu64 ",\"max_bytes\":%" PRIu64
		       "},",
		       st.pid, st.lu_number, st.started_s, age_s(st.started_s), st.connections, st.sessions, st.fds,
		       st.bytes, (unsigned)geteuid(), st.own_sessions, st.own_fds, st.own_bytes, st.max_sessions,
		       st.max_fds, st.max_bytes);
	} else {
		duration_str(age_s(st.started_s), up);
		printf("agent     pid %" PRId32 ", liveupdate-number %" PRIu64 ", up %s, %" PRIu32 " connection%s\n",
		       st.pid, st.lu_number, up, st.connections, st.connections == 1 ? "" : "s");
		printf("held      %" PRIu64 " sessions, %" PRIu64 " fds, %" PRIu64 " bytes (all owners)\n", st.sessions,
		       st.fds, st.bytes);
		printf("you       uid %u: %" PRIu64 "/%" PRIu64 " sessions, %" PRIu64 "/%" PRIu64 " fds, %" PRIu64
		       "/%" PRIu64 " bytes (used/limit)\n",
		       (unsigned)geteuid(), st.own_sessions, st.max_sessions, st.own_fds, st.max_fds, st.own_bytes,
		       st.max_bytes);
	}
	r = agent_list(fd, 2, LUO_AGENT_UID_ALL, deadline, o.json);
	if (r != 0)
		return r;
	if (o.json)
		fputs("}\n", stdout);
	return 0;
}

static int cmd_sessions(int argc, char **argv)
{
	_cleanup_close_ int fd = -1;
	struct cmd_opts o;
	uint32_t uid = LUO_AGENT_UID_SELF;
	int r;

	r = cmd_opts_parse(argc, argv, CMD_SESSIONS, &o);
	if (r >= 0)
		return r;
	if (argc - optind != 0)
		return usage_error("sessions: unexpected argument", argv[optind]);
	if (o.uid && o.all)
		return usage_error("sessions: --uid and --all exclude each other", NULL);
	if (o.uid && parse_uid(o.uid, &uid) < 0)
		return usage_error("bad UID", o.uid);
	if (o.all)
		uid = LUO_AGENT_UID_ALL;
	if (agent_connect(o.socket, &fd) < 0)
		return EXIT_TROUBLE;
	if (o.json)
		fputc('{', stdout);
	r = agent_list(fd, 1, uid, now_ms() + AGENT_TIMEOUT_S * 1000, o.json);
	if (r != 0)
		return r;
	if (o.json)
		fputs("}\n", stdout);
	return 0;
}

static int cmd_drop(int argc, char **argv)
{
	_cleanup_close_ int fd = -1;
	struct luo_agent_reply reply;
	struct cmd_opts o;
	uint32_t uid = LUO_AGENT_UID_SELF;
	const char *name;
	int r;

	r = cmd_opts_parse(argc, argv, CMD_DROP, &o);
	if (r >= 0)
		return r;
	if (argc - optind != 1)
		return usage_error("drop: need exactly one SESSION", NULL);
	name = argv[optind];
	if (!name[0] || strlen(name) >= LUO_AGENT_NAME_SIZE)
		return usage_error("drop: a session name is 1..63 bytes:", name);
	if (o.uid && parse_uid(o.uid, &uid) < 0)
		return usage_error("bad UID", o.uid);
	if (agent_connect(o.socket, &fd) < 0)
		return EXIT_TROUBLE;
	if (agent_call(fd, LUO_AGENT_OP_DROP, 1, uid, name, 0, now_ms() + AGENT_TIMEOUT_S * 1000, &reply) < 0)
		return EXIT_TROUBLE;
	if (reply.error < 0) {
		char what[LUO_AGENT_NAME_SIZE + 16];

		snprintf(what, sizeof(what), "drop %s", name);
		agent_refused(what, &reply);
		return reply.error == -ENOENT || reply.error == -EPERM ? EXIT_REFUSED : EXIT_TROUBLE;
	}
	fputs("dropped session ", stdout);
	text_puts(stdout, name);
	fputc('\n', stdout);
	return 0;
}

static int cmd_agent(int argc, char **argv)
{
	_cleanup_close_ int fd = -1;
	struct luo_agent_reply reply;
	struct cmd_opts o;
	int r, timeout = UPDATE_TIMEOUT_DEFAULT_S;

	r = cmd_opts_parse(argc, argv, CMD_AGENT, &o);
	if (r >= 0)
		return r;
	if (argc - optind != 1 || strcmp(argv[optind], "update") != 0)
		return usage_error("agent: the only subcommand is 'update'", NULL);
	if (o.timeout && parse_seconds(o.timeout, TIMEOUT_MAX_S, &timeout) < 0)
		return usage_error("bad --timeout (seconds, 1..3600)", o.timeout);
	if (agent_connect(o.socket, &fd) < 0)
		return EXIT_TROUBLE;
	if (agent_call(fd, LUO_AGENT_OP_UPDATE, 1, 0, NULL, 0, now_ms() + (int64_t)timeout * 1000, &reply) < 0)
		return EXIT_TROUBLE;
	if (o.json) {
		printf("{\"result\":\"%s\",",
		       reply.error == 0 ? "done" : reply.error == -EUCLEAN ? "rolled-back" : "refused");
		json_error(reply.error);
		fputs(",\"reason\":", stdout);
		json_put(stdout, WIRE_STR(reply.reason));
		printf(",\"liveupdate_number\":%" PRIu64 "}\n", reply.lu_number);
	} else if (reply.error == 0) {
		printf("agent updated: liveupdate-number %" PRIu64 "\n", reply.lu_number);
	} else if (reply.error == -EUCLEAN) {
		fputs("agent update rolled back, the old image serves again: ", stdout);
		text_put(stdout, WIRE_STR(reply.reason), 0);
		printf(" (liveupdate-number %" PRIu64 ")\n", reply.lu_number);
	} else {
		fputs("agent update refused: ", stdout);
		text_put(stdout, WIRE_STR(reply.reason), 0);
		printf(" (%s); the agent keeps running\n", strerror(-reply.error));
	}
	return reply.error == 0 ? 0 : EXIT_REFUSED;
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
		{ "update", cmd_update },
		{ "status", cmd_status },
		{ "sessions", cmd_sessions },
		{ "drop", cmd_drop },
		{ "agent", cmd_agent },
		{ "path", cmd_path },
		{ "history", cmd_history },
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
