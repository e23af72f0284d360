/* SPDX-License-Identifier: MIT */
/*
 * DOC: matrix.c, the verb matrix: every ordered pair of a fleet of builds
 *
 *   luoctl matrix BINARY BINARY... [--strict] [--json]
 *
 * matrix reads each manifest once and negotiates every ordered pair, for a
 * fleet of versions: which can update to which, which drop optional state,
 * which are refused and because of what.
 *
 * The result is a table of report summaries (report.c), one per pair;
 * the reports themselves are not kept (MATRIX_BINARIES_MAX builds make
 * 65,280 pairs): the printers negotiate again the pairs whose details
 * they print -- every pair in JSON, the refused ones in text.
 *
 * Exit: 0; 1 some BINARY declares no luo manifest (it does not link
 * libluo: every pair with it is refused), or --strict and some pair that
 * would proceed drops, downgrades or is unproven; 2 trouble.
 *
 * Layer: a verb; calls report.c, usage.c and output.c.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "luoctl.h"

/* Binaries in one matrix: each manifest may hold megabytes of layouts. */
#define MATRIX_BINARIES_MAX 256
/* Width of a matrix cell: "REFUSED" and "ok-drop". */
#define CELL_WIDTH 7

struct matrix {
	char **paths;
	size_t n;
	struct luo_manifest **m;
	struct report_summary *cells; /* n * n: from * n + to */
	bool any_refused;
	bool undeclared;              /* some binary declares no luo manifest */
	bool strict_failed;           /* some pair that would proceed fails --strict */
};

static void matrix_done(struct matrix *x)
{
	for (size_t i = 0; x->m && i < x->n; i++)
		luo_manifest_free(x->m[i]);
	free(x->m);
	free(x->cells);
}

/* 0, or a negative errno (said on stderr). */
static int matrix_run(struct matrix *x)
{
	int r;

	x->m = calloc(x->n, sizeof(*x->m));
	x->cells = calloc(x->n * x->n, sizeof(*x->cells));
	if (!x->m || !x->cells) {
		print_error("matrix", -ENOMEM, NULL);
		return -ENOMEM;
	}
	for (size_t i = 0; i < x->n; i++) {
		r = manifest_read(x->paths[i], 0, &x->m[i]);
		if (r < 0)
			return r;
		x->undeclared |= !manifest_declares_luo(x->m[i]);
	}
	r = report_pairs(x->m, x->n, x->cells);
	if (r < 0)
		return r;
	for (size_t from = 0; from < x->n; from++) {
		for (size_t to = 0; to < x->n; to++) {
			if (from == to)
				continue;
			x->any_refused |= !x->cells[from * x->n + to].proceed;
			x->strict_failed |= x->cells[from * x->n + to].strict_fails;
		}
	}
	return 0;
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

/* The names and versions of one pair, negotiated again: the members after "to". */
static int matrix_pair_json(const struct matrix *x, size_t from, size_t to)
{
	_cleanup_free_ struct luo_report_entry *entries = NULL;
	const struct report_summary *c = &x->cells[from * x->n + to];
	size_t n_entries = 0;
	bool first_version = true;
	int r;

	r = negotiate(x->m[from], x->m[to], &entries, &n_entries);
	if (r < 0 && r != -EPROTO)
		return r;
	printf(",\"proceed\":%s,\"strict_ok\":%s,\"dropped\":", c->proceed ? "true" : "false",
	       c->proceed && !c->strict_fails ? "true" : "false");
	json_names(entries, n_entries, LUO_VERDICT_DROP);
	fputs(",\"downgraded\":", stdout);
	json_names(entries, n_entries, LUO_VERDICT_DOWNGRADE);
	fputs(",\"refused\":", stdout);
	json_names(entries, n_entries, LUO_VERDICT_REFUSE);
	fputs(",\"versions\":{", stdout);
	for (size_t i = 0; i < n_entries; i++) {
		if (entries[i].verdict != LUO_VERDICT_USE && entries[i].verdict != LUO_VERDICT_DOWNGRADE)
			continue;
		if (!first_version)
			fputc(',', stdout);
		json_put(stdout, entries[i].name, sizeof(entries[i].name));
		printf(":%" PRIu32, entries[i].version);
		first_version = false;
	}
	fputc('}', stdout);
	r = fields_report_json(x->m[from], x->m[to], entries, n_entries);
	if (r < 0)
		return r;
	fputc('}', stdout);
	return 0;
}

static int matrix_print_json(const struct matrix *x)
{
	bool first = true;

	fputs("{\"binaries\":[", stdout);
	for (size_t i = 0; i < x->n; i++) {
		if (i)
			fputc(',', stdout);
		json_puts(stdout, x->paths[i]);
	}
	fputs("],\"cells\":[", stdout);
	for (size_t from = 0; from < x->n; from++) {
		for (size_t to = 0; to < x->n; to++) {
			int r;

			if (from == to)
				continue;
			fputs(first ? "{\"from\":" : ",{\"from\":", stdout);
			first = false;
			json_puts(stdout, x->paths[from]);
			fputs(",\"to\":", stdout);
			json_puts(stdout, x->paths[to]);
			r = matrix_pair_json(x, from, to);
			if (r < 0)
				return r;
		}
	}
	fputs("]}\n", stdout);
	return 0;
}

/* The word of a cell of the table. */
static void matrix_cell_word(const struct report_summary *c, bool self, char cell[static 24])
{
	const char *s = self           ? "-"
			: !c->proceed    ? "REFUSED"
			: c->downgraded  ? "DOWNGRADE"
			: c->dropped     ? "ok-drop"
					 : "ok";

	snprintf(cell, 24, "%s%s", s, !self && c->proceed && c->unproven ? "?" : "");
}

static void matrix_table_text(const struct matrix *x, const char **labels)
{
	static const char corner[] = "from \\ to";
	size_t row_w = sizeof(corner) - 1;

	for (size_t i = 0; i < x->n; i++)
		row_w = MAX(row_w, text_width(labels[i], SIZE_MAX));
	text_put(stdout, corner, SIZE_MAX, row_w);
	for (size_t to = 0; to < x->n; to++) {
		size_t w = text_width(labels[to], SIZE_MAX);

		fputs("  ", stdout);
		text_put(stdout, labels[to], SIZE_MAX, to + 1 < x->n ? MAX(w, CELL_WIDTH) : 0);
	}
	fputc('\n', stdout);
	for (size_t from = 0; from < x->n; from++) {
		text_put(stdout, labels[from], SIZE_MAX, row_w);
		for (size_t to = 0; to < x->n; to++) {
			size_t w = text_width(labels[to], SIZE_MAX);
			char cell[24];

			matrix_cell_word(&x->cells[from * x->n + to], from == to, cell);
			printf("  %-*s", to + 1 < x->n ? (int)MAX(w, CELL_WIDTH) : 0, cell);
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
}

/* Why each refused pair is: only those are negotiated again. */
static int matrix_refused_text(const struct matrix *x, const char **labels)
{
	fputs("\nrefused:\n", stdout);
	for (size_t from = 0; from < x->n; from++) {
		for (size_t to = 0; to < x->n; to++) {
			_cleanup_free_ struct luo_report_entry *entries = NULL;
			size_t n_entries = 0;
			bool first = true;
			int r;

			if (from == to || x->cells[from * x->n + to].proceed)
				continue;
			r = negotiate(x->m[from], x->m[to], &entries, &n_entries);
			if (r < 0 && r != -EPROTO)
				return r;
			text_pair_put(stdout, labels[from], labels[to]);
			fputc(':', stdout);
			for (size_t i = 0; i < n_entries; i++) {
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

static int matrix_print_text(const struct matrix *x)
{
	_cleanup_free_ const char **labels = calloc(x->n, sizeof(*labels));
	bool full = false;

	if (!labels) {
		print_error("matrix", -ENOMEM, NULL);
		return -ENOMEM;
	}
	/* Basenames, unless two are the same. */
	for (size_t i = 0; i < x->n; i++)
		for (size_t j = i + 1; j < x->n; j++)
			full = full || strcmp(path_basename(x->paths[i]), path_basename(x->paths[j])) == 0;
	for (size_t i = 0; i < x->n; i++)
		labels[i] = full ? x->paths[i] : path_basename(x->paths[i]);
	matrix_table_text(x, labels);
	if (fields_matrix_text(labels, x->n, x->m) < 0) {
		print_error("matrix", -ENOMEM, NULL);
		return -ENOMEM;
	}
	return x->any_refused ? matrix_refused_text(x, labels) : 0;
}

int cmd_matrix(const struct cmd_opts *o, int argc, char **argv)
{
	struct matrix x = { .paths = argv, .n = (size_t)argc };
	int r;

	if (argc < 2)
		return usage_error("matrix: need at least two BINARYs", NULL);
	if (x.n > MATRIX_BINARIES_MAX) {
		fprintf(stderr, "luoctl: matrix: at most %d binaries\n", MATRIX_BINARIES_MAX);
		return EXIT_TROUBLE;
	}
	r = matrix_run(&x);
	if (r == 0)
		r = o->json ? matrix_print_json(&x) : matrix_print_text(&x);
	matrix_done(&x);
	if (r < 0)
		return EXIT_TROUBLE;
	return x.undeclared || (o->strict && x.strict_failed) ? EXIT_REFUSED : 0;
}
