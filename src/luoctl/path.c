/* SPDX-License-Identifier: MIT */
/*
 * DOC: luoctl path, a chain of live updates where a direct one is refused
 *
 *   luoctl path FROM TO BUILD... [--strict] [--json]
 *
 * When the update FROM -> TO is refused (say the old release writes a
 * format the new one no longer reads), the state may still get there
 * through intermediate builds, each hop a live update of its own. path
 * reads each manifest once (binaries, or recorded manifests of the release
 * history), negotiates every ordered pair with luo_negotiate() exactly as
 * `luoctl check` does, and finds the shortest chain of hops that would
 * each proceed.
 *
 * A hop that would proceed with an optional component dropped, or
 * downgraded to a lower version because the types of a higher one differ,
 * or with unproven types, is usable but flagged: the state it loses or
 * cannot prove is named on the hop. Among chains of the same length the
 * one with fewer flagged hops wins, then the order the builds were given
 * in. --strict excludes flagged hops altogether, as `check --strict` would
 * refuse them.
 *
 * What no manifest can say is not seen: a build whose load() fails (the
 * example's "broken" one) is a usable hop here, and rolls back when tried.
 *
 * Exit: 0 a chain found (the direct update, if it would proceed, is a
 * chain of one), 1 none, 2 trouble.
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

/* Builds in one path query (FROM and TO included); every pair is negotiated. */
#define PATH_BUILDS_MAX 256

enum hop_state { HOP_NONE, HOP_OK, HOP_FLAGGED };

struct path_query {
	size_t n;            /* builds: 0 FROM, 1 TO, then BUILD... */
	char **paths;
	struct luo_manifest **m;
	unsigned char *hop;  /* n * n: enum hop_state of from -> to */
	bool strict;
};

/* Which hops are usable: from every pair's summary (report_pairs()). */
static int path_edges(struct path_query *q)
{
	_cleanup_free_ struct report_summary *cells = calloc(q->n * q->n, sizeof(*cells));
	int r;

	if (!cells)
		return -ENOMEM;
	r = report_pairs(q->m, q->n, cells);
	if (r < 0)
		return r;
	for (size_t i = 0; i < q->n * q->n; i++) {
		if (!cells[i].proceed)
			q->hop[i] = HOP_NONE;
		else if (cells[i].strict_fails)
			q->hop[i] = q->strict ? HOP_NONE : HOP_FLAGGED;
		else
			q->hop[i] = HOP_OK;
	}
	return 0;
}

/*
 * The shortest chain from 0 to 1, fewer flagged hops first among equals:
 * Dijkstra on (hops, flagged), n is small. Fills @chain (node indexes,
 * FROM first) and *@ret_len; 0, or -ENOENT none.
 */
static int path_find(const struct path_query *q, size_t *chain, size_t *ret_len)
{
	_cleanup_free_ uint64_t *cost = calloc(q->n, sizeof(uint64_t));
	_cleanup_free_ size_t *prev = calloc(q->n, sizeof(size_t));
	_cleanup_free_ bool *done = calloc(q->n, sizeof(bool));
	const uint64_t inf = UINT64_MAX, hop_cost = (uint64_t)PATH_BUILDS_MAX + 1;
	size_t len = 0;

	if (!cost || !prev || !done)
		return -ENOMEM;
	for (size_t i = 0; i < q->n; i++)
		cost[i] = inf;
	cost[0] = 0;
	for (;;) {
		size_t u = q->n;

		for (size_t i = 0; i < q->n; i++)
			if (!done[i] && cost[i] != inf && (u == q->n || cost[i] < cost[u]))
				u = i;
		if (u == q->n || u == 1)
			break;
		done[u] = true;
		for (size_t v = 0; v < q->n; v++) {
			unsigned char h = q->hop[u * q->n + v];
			uint64_t c;

			if (h == HOP_NONE || done[v])
				continue;
			c = cost[u] + hop_cost + (h == HOP_FLAGGED);
			if (c < cost[v]) {
				cost[v] = c;
				prev[v] = u;
			}
		}
	}
	if (cost[1] == inf)
		return -ENOENT;
	for (size_t v = 1;; v = prev[v]) {
		chain[len++] = v;
		if (v == 0)
			break;
	}
	for (size_t i = 0; i < len / 2; i++) {
		size_t t = chain[i];

		chain[i] = chain[len - 1 - i];
		chain[len - 1 - i] = t;
	}
	*ret_len = len;
	return 0;
}

/* The hop @a -> @b negotiated again, for its report (into @ret_e, @ret_n) and its summary. */
static int hop_report(const struct path_query *q, size_t a, size_t b, struct luo_report_entry **ret_e, size_t *ret_n,
		      struct report_summary *ret_s)
{
	int r = negotiate(q->m[a], q->m[b], ret_e, ret_n);

	if (r < 0 && r != -EPROTO)
		return r;
	*ret_s = report_summarize(*ret_e, *ret_n, r);
	return 0;
}

/* One hop: a JSON object. */
static int hop_print_json(const struct path_query *q, size_t a, size_t b)
{
	_cleanup_free_ struct luo_report_entry *e = NULL;
	struct report_summary s;
	size_t ne = 0;
	int r = hop_report(q, a, b, &e, &ne, &s);

	if (r < 0)
		return r;
	fputs("{\"from\":", stdout);
	json_puts(stdout, q->paths[a]);
	fputs(",\"to\":", stdout);
	json_puts(stdout, q->paths[b]);
	printf(",\"verdict\":\"%s\",\"proceed\":%s,\"strict_ok\":%s,\"entries\":", report_summary_word(&s),
	       s.proceed ? "true" : "false", s.proceed && !s.strict_fails ? "true" : "false");
	report_json(e, ne);
	fputc('}', stdout);
	return 0;
}

/* One hop: "hop N: A -> B: WORD (...)", then the report. */
static int hop_print_text(const struct path_query *q, size_t a, size_t b, size_t step)
{
	_cleanup_free_ struct luo_report_entry *e = NULL;
	struct report_summary s;
	size_t ne = 0;
	int r = hop_report(q, a, b, &e, &ne, &s);

	if (r < 0)
		return r;
	if (step)
		printf("hop %zu: ", step);
	else
		fputs("direct: ", stdout);
	text_puts(stdout, q->paths[a]);
	fputs(" -> ", stdout);
	text_puts(stdout, q->paths[b]);
	printf(": %s%s\n", report_summary_word(&s),
	       !s.proceed       ? " (would be refused)"
	       : s.strict_fails ? " (would proceed, flagged: state dropped, downgraded or unproven)"
				: " (would proceed)");
	for (size_t i = 0; i < ne; i++) {
		r = report_entry_print(&e[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

static int path_print_json(const struct path_query *q, const size_t *chain, size_t len, bool found)
{
	int r;

	fputs("{\"from\":", stdout);
	json_puts(stdout, q->paths[0]);
	fputs(",\"to\":", stdout);
	json_puts(stdout, q->paths[1]);
	printf(",\"strict\":%s,\"direct\":", q->strict ? "true" : "false");
	r = hop_print_json(q, 0, 1);
	if (r < 0)
		return r;
	printf(",\"found\":%s,\"hops\":[", found ? "true" : "false");
	for (size_t i = 0; found && i + 1 < len; i++) {
		if (i)
			fputc(',', stdout);
		r = hop_print_json(q, chain[i], chain[i + 1]);
		if (r < 0)
			return r;
	}
	fputs("]}\n", stdout);
	return 0;
}

static int path_print_text(const struct path_query *q, const size_t *chain, size_t len, bool found)
{
	int r;

	r = hop_print_text(q, 0, 1, 0);
	if (r < 0)
		return r;
	if (!found) {
		printf("no chain of live updates from ");
		text_puts(stdout, q->paths[0]);
		fputs(" to ", stdout);
		text_puts(stdout, q->paths[1]);
		printf(" through the %zu build%s given%s\n", q->n, q->n == 1 ? "" : "s",
		       q->strict ? " (--strict: no hop that drops, downgrades or is unproven)" : "");
		return 0;
	}
	printf("path: %zu hop%s:", len - 1, len == 2 ? "" : "s");
	for (size_t i = 0; i < len; i++) {
		fputs(i ? " -> " : " ", stdout);
		text_puts(stdout, path_basename(q->paths[chain[i]]));
	}
	fputc('\n', stdout);
	for (size_t i = 0; len > 2 && i + 1 < len; i++) {
		r = hop_print_text(q, chain[i], chain[i + 1], i + 1);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * FROM and TO, then the builds; one named twice (FROM among them) counts
 * once. Return: -1 go on, or the exit status (bad usage, trouble).
 */
static int path_parse(int argc, char **argv, struct path_query *q)
{
	size_t given = (size_t)argc;

	if (given < 3)
		return usage_error("path: need FROM, TO and at least one BUILD", NULL);
	if (given > PATH_BUILDS_MAX) {
		fprintf(stderr, "luoctl: path: at most %d builds\n", PATH_BUILDS_MAX);
		return EXIT_TROUBLE;
	}
	q->paths = calloc(given, sizeof(*q->paths));
	if (!q->paths) {
		print_error("path", -ENOMEM, NULL);
		return EXIT_TROUBLE;
	}
	for (size_t i = 0; i < given; i++) {
		char *p = argv[i];
		bool dup = false;

		for (size_t j = 0; j < q->n; j++)
			dup |= strcmp(q->paths[j], p) == 0;
		if (dup && i < 2)
			return usage_error("path: FROM and TO are the same", p);
		if (!dup)
			q->paths[q->n++] = p;
	}
	return -1;
}

/*
 * Read the manifests, negotiate the hops, find the chain (into @chain,
 * q->n slots). 0 (*@ret_found says whether a chain was found), -1 said on
 * stderr, or a negative errno.
 */
static int path_run(struct path_query *q, size_t *chain, size_t *ret_len, bool *ret_found)
{
	int r;

	q->m = calloc(q->n, sizeof(*q->m));
	q->hop = calloc(q->n * q->n, 1);
	if (!q->m || !q->hop)
		return -ENOMEM;
	for (size_t i = 0; i < q->n; i++)
		if (manifest_read(q->paths[i], 0, &q->m[i]) < 0)
			return -1; /* said on stderr */
	r = path_edges(q);
	if (r < 0)
		return r;
	r = path_find(q, chain, ret_len);
	*ret_found = r == 0;
	return r == -ENOENT ? 0 : r;
}

int cmd_path(const struct cmd_opts *o, int argc, char **argv)
{
	_cleanup_free_ size_t *chain = NULL;
	struct path_query q = { .strict = o->strict };
	size_t len = 0;
	bool found = false;
	int r;

	r = path_parse(argc, argv, &q);
	if (r < 0) {
		chain = calloc(q.n, sizeof(*chain));
		r = chain ? path_run(&q, chain, &len, &found) : -ENOMEM;
		if (r == 0)
			r = o->json ? path_print_json(&q, chain, len, found) : path_print_text(&q, chain, len, found);
		if (r < 0 && r != -1)
			print_error("path", r, NULL);
		r = r < 0 ? EXIT_TROUBLE : found ? 0 : EXIT_REFUSED;
	}
	for (size_t i = 0; q.m && i < q.n; i++)
		luo_manifest_free(q.m[i]);
	free(q.m);
	free(q.hop);
	free(q.paths);
	return r;
}
