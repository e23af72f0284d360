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
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
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

/* The kind of hop a report makes: the words of `luoctl matrix`. */
static const char *hop_word(const struct luo_report_entry *e, size_t n, int r)
{
	bool drop = false, down = false;

	if (r != 0)
		return "REFUSED";
	for (size_t i = 0; i < n; i++) {
		drop |= e[i].verdict == LUO_VERDICT_DROP;
		down |= e[i].verdict == LUO_VERDICT_DOWNGRADE;
	}
	return down ? "DOWNGRADE" : drop ? "ok-drop" : report_strict_fails(e, n) ? "ok?" : "ok";
}

static int path_edges(struct path_query *q)
{
	for (size_t a = 0; a < q->n; a++) {
		for (size_t b = 0; b < q->n; b++) {
			_cleanup_free_ struct luo_report_entry *e = NULL;
			size_t ne = 0;
			int r;

			if (a == b)
				continue;
			r = negotiate(q->m[a], q->m[b], &e, &ne);
			if (r < 0 && r != -EPROTO)
				return r;
			if (r == 0)
				q->hop[a * q->n + b] = report_strict_fails(e, ne) ? HOP_FLAGGED : HOP_OK;
			if (q->strict && q->hop[a * q->n + b] == HOP_FLAGGED)
				q->hop[a * q->n + b] = HOP_NONE;
		}
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

static int hop_print(const struct path_query *q, size_t a, size_t b, size_t step, bool json)
{
	_cleanup_free_ struct luo_report_entry *e = NULL;
	size_t ne = 0;
	int r = negotiate(q->m[a], q->m[b], &e, &ne);

	if (r < 0 && r != -EPROTO)
		return r;
	if (json) {
		fputs("{\"from\":", stdout);
		json_puts(stdout, q->paths[a]);
		fputs(",\"to\":", stdout);
		json_puts(stdout, q->paths[b]);
		printf(",\"verdict\":\"%s\",\"proceed\":%s,\"strict_ok\":%s,\"entries\":[", hop_word(e, ne, r),
		       r == 0 ? "true" : "false", r == 0 && !report_strict_fails(e, ne) ? "true" : "false");
		for (size_t i = 0; i < ne; i++) {
			if (i)
				fputc(',', stdout);
			report_entry_json(&e[i]);
		}
		fputs("]}", stdout);
		return 0;
	}
	if (step)
		printf("hop %zu: ", step);
	else
		fputs("direct: ", stdout);
	text_puts(stdout, q->paths[a]);
	fputs(" -> ", stdout);
	text_puts(stdout, q->paths[b]);
	printf(": %s%s\n", hop_word(e, ne, r),
	       r != 0 ? " (would be refused)"
	       : report_strict_fails(e, ne) ? " (would proceed, flagged: state dropped, downgraded or unproven)"
					    : " (would proceed)");
	for (size_t i = 0; i < ne; i++) {
		r = report_entry_print(&e[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

static int path_print(const struct path_query *q, const size_t *chain, size_t len, bool found, bool json)
{
	int r;

	if (json) {
		fputs("{\"from\":", stdout);
		json_puts(stdout, q->paths[0]);
		fputs(",\"to\":", stdout);
		json_puts(stdout, q->paths[1]);
		printf(",\"strict\":%s,\"direct\":", q->strict ? "true" : "false");
		r = hop_print(q, 0, 1, 0, true);
		if (r < 0)
			return r;
		printf(",\"found\":%s,\"hops\":[", found ? "true" : "false");
		for (size_t i = 0; found && i + 1 < len; i++) {
			if (i)
				fputc(',', stdout);
			r = hop_print(q, chain[i], chain[i + 1], i + 1, true);
			if (r < 0)
				return r;
		}
		fputs("]}\n", stdout);
		return 0;
	}
	r = hop_print(q, 0, 1, 0, false);
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
		r = hop_print(q, chain[i], chain[i + 1], i + 1, false);
		if (r < 0)
			return r;
	}
	return 0;
}

int cmd_path(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ "strict", no_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_free_ struct luo_manifest **m = NULL;
	_cleanup_free_ unsigned char *hop = NULL;
	_cleanup_free_ size_t *chain = NULL;
	_cleanup_free_ char **paths = NULL;
	struct path_query q = { 0 };
	size_t n = 0, len = 0, given;
	bool json = false, found = false;
	int c, r;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) >= 0) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case 'j':
			json = true;
			break;
		case 's':
			q.strict = true;
			break;
		default:
			return usage_error(optopt ? "option takes no argument" : "unknown option", argv[optind - 1]);
		}
	}
	given = (size_t)(argc - optind);
	if (given < 3)
		return usage_error("path: need FROM, TO and at least one BUILD", NULL);
	if (given > PATH_BUILDS_MAX) {
		fprintf(stderr, "luoctl: path: at most %d builds\n", PATH_BUILDS_MAX);
		return EXIT_TROUBLE;
	}
	paths = calloc(given, sizeof(*paths));
	m = calloc(given, sizeof(*m));
	chain = calloc(given, sizeof(*chain));
	if (!paths || !m || !chain) {
		print_error("path", -ENOMEM, NULL);
		return EXIT_TROUBLE;
	}
	/* FROM and TO, then the builds; one named twice (FROM among them) counts once. */
	for (size_t i = 0; i < given; i++) {
		char *p = argv[optind + i];
		bool dup = false;

		for (size_t j = 0; j < n; j++)
			dup |= strcmp(paths[j], p) == 0;
		if (dup && i < 2)
			return usage_error("path: FROM and TO are the same", p);
		if (!dup)
			paths[n++] = p;
	}
	hop = calloc(n * n, 1);
	if (!hop) {
		print_error("path", -ENOMEM, NULL);
		return EXIT_TROUBLE;
	}
	q = (struct path_query){ n, paths, m, hop, q.strict };
	r = 0;
	for (size_t i = 0; i < n && r == 0; i++)
		r = manifest_read(paths[i], 0, &m[i]) < 0 ? -1 : 0; /* said on stderr */
	if (r == 0)
		r = path_edges(&q);
	if (r == 0) {
		r = path_find(&q, chain, &len);
		found = r == 0;
		if (r == -ENOENT)
			r = 0;
		if (r == 0)
			r = path_print(&q, chain, len, found, json);
	}
	for (size_t i = 0; i < n; i++)
		luo_manifest_free(m[i]);
	if (r < 0) {
		if (r != -1)
			print_error("path", r, NULL);
		return EXIT_TROUBLE;
	}
	return found ? 0 : EXIT_REFUSED;
}
