/* SPDX-License-Identifier: MIT */
/*
 * DOC: luoctl history, the life of a format across releases
 *
 *   luoctl history DIR HEAD [--strict] [--json]
 *
 * DIR is a release history (dist/releases/EXAMPLE): one recorded manifest
 * per released build, NNNN-NAME.json, what `luoctl manifest --json`
 * printed for it, appended and never edited (their names sort in release
 * order), and a file "window" whose line "window: N" declares the support
 * window: the last N releases must be able to live-update to HEAD.
 *
 * For each release inside the window, history negotiates release -> HEAD
 * with luo_negotiate() as `luoctl check` does; the release is accepted if
 * the update would proceed with no component downgraded (a downgrade
 * against a release means a type it writes changed under the same
 * version). An optional component dropped is allowed and shown; --strict
 * refuses drops and unproven types too. A refusal names the component and
 * the versions.
 *
 * Then what can be deleted: for each component HEAD reads, the read
 * versions that no update from a release inside the window, nor HEAD to
 * itself, would hand over (negotiation picks one version per update, the
 * highest all three ranges share). The code that loads them can go, and
 * the read range shrink, without failing the window: a version still
 * written by an old release but never picked is listed too.
 *
 * Exit: 0 every release inside the window accepted, 1 some refused, 2
 * trouble (no window file, a record or HEAD that cannot be read).
 *
 * Layer: a verb; calls report.c, usage.c and output.c.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "luo-internal.h" /* luo_parse_u64() */
#include "luoctl.h"

/* Releases in one history. */
#define HISTORY_RELEASES_MAX 1024
/* A record's file name (NNNN-NAME.json). */
#define HISTORY_NAME_MAX 128
/* The window file. */
#define HISTORY_WINDOW_BYTES_MAX 4096

struct release {
	char name[HISTORY_NAME_MAX]; /* without .json */
	char path[PATH_MAX];
	bool in_window;
	struct luo_manifest *m;
	struct luo_report_entry *entries;
	size_t n_entries;
	int r;          /* of luo_negotiate() */
	bool accepted;
};

struct history {
	const char *dir, *head_path;
	struct luo_manifest *head;
	struct release *rel;
	size_t n;
	uint64_t window;
	bool strict;
	/* HEAD -> HEAD */
	struct luo_report_entry *self;
	size_t n_self;
};

static void history_done(struct history *h)
{
	for (size_t i = 0; i < h->n; i++) {
		luo_manifest_free(h->rel[i].m);
		free(h->rel[i].entries);
	}
	free(h->rel);
	free(h->self);
	luo_manifest_free(h->head);
}

/* "window: N" from DIR/window; '#' starts a comment. */
static int window_read(struct history *h)
{
	char path[PATH_MAX], buf[HISTORY_WINDOW_BYTES_MAX + 1], *line, *save = NULL;
	_cleanup_close_ int fd = -1;
	size_t len = 0;
	bool seen = false;
	ssize_t n;

	if ((size_t)snprintf(path, sizeof(path), "%s/window", h->dir) >= sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		print_error(path, -errno, NULL);
		return -errno;
	}
	while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			print_error(path, -errno, NULL);
			return -errno;
		}
		len += (size_t)n;
	}
	if (len == sizeof(buf) - 1) {
		print_error(path, -EFBIG, "larger than the window file may be");
		return -EFBIG;
	}
	buf[len] = '\0';
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *hash = strchr(line, '#'), *end;
		uint64_t v;

		if (hash)
			*hash = '\0';
		line += strspn(line, " \t");
		if (!*line)
			continue;
		if (strncmp(line, "window:", 7) != 0 || seen) {
			print_error(path, -EBADMSG, "only one line \"window: N\" expected");
			return -EBADMSG;
		}
		line += 7;
		line += strspn(line, " \t");
		end = line + strcspn(line, " \t\r");
		if (end[strspn(end, " \t\r")] != '\0') {
			print_error(path, -EBADMSG, "bytes after the number in \"window: N\"");
			return -EBADMSG;
		}
		*end = '\0';
		if (luo_parse_u64(line, HISTORY_RELEASES_MAX, &v) < 0 || v == 0) {
			print_error(path, -EBADMSG, "the window is not a number of releases (1..1024)");
			return -EBADMSG;
		}
		h->window = v;
		seen = true;
	}
	if (!seen) {
		print_error(path, -EBADMSG, "no line \"window: N\"");
		return -EBADMSG;
	}
	return 0;
}

static int release_cmp(const void *a, const void *b)
{
	return strcmp(((const struct release *)a)->name, ((const struct release *)b)->name);
}

/* DIR's NNNN-NAME.json, in name order; the last h->window inside the window. */
static int releases_list(struct history *h)
{
	DIR *d = opendir(h->dir);
	struct dirent *de;
	int r = 0;

	if (!d) {
		print_error(h->dir, -errno, NULL);
		return -errno;
	}
	while (r == 0 && (errno = 0, de = readdir(d))) {
		size_t len = strlen(de->d_name);
		struct release *grown, *rel;

		if (de->d_name[0] == '.' || len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0)
			continue;
		if (len - 5 >= HISTORY_NAME_MAX) {
			r = -ENAMETOOLONG;
			print_error(de->d_name, r, NULL);
			break;
		}
		if (h->n >= HISTORY_RELEASES_MAX) {
			r = -E2BIG;
			print_error(h->dir, r, "more releases than a history may hold (1024)");
			break;
		}
		grown = realloc(h->rel, (h->n + 1) * sizeof(*grown));
		if (!grown) {
			r = -ENOMEM;
			break;
		}
		h->rel = grown;
		rel = &h->rel[h->n];
		*rel = (struct release){ 0 };
		memcpy(rel->name, de->d_name, len - 5);
		if ((size_t)snprintf(rel->path, sizeof(rel->path), "%s/%s", h->dir, de->d_name) >= sizeof(rel->path)) {
			r = -ENAMETOOLONG;
			print_error(de->d_name, r, NULL);
			break;
		}
		h->n++;
	}
	if (r == 0 && errno)
		r = -errno;
	closedir(d);
	if (r < 0)
		return r;
	if (h->n == 0) {
		print_error(h->dir, -ENOENT, "no release records (NNNN-NAME.json)");
		return -ENOENT;
	}
	qsort(h->rel, h->n, sizeof(*h->rel), release_cmp);
	for (size_t i = 0; i < h->n; i++)
		h->rel[i].in_window = h->n - i <= h->window;
	return 0;
}

static int history_negotiate(struct history *h)
{
	int r;

	for (size_t i = 0; i < h->n; i++) {
		struct release *rel = &h->rel[i];

		if (!rel->in_window)
			continue;
		if (manifest_read(rel->path, 0, &rel->m) < 0)
			return -EBADMSG;
		r = negotiate(rel->m, h->head, &rel->entries, &rel->n_entries);
		if (r < 0 && r != -EPROTO)
			return r;
		rel->r = r;
		rel->accepted = r == 0 && !report_has(rel->entries, rel->n_entries, LUO_VERDICT_DOWNGRADE) &&
				!(h->strict && report_strict_fails(rel->entries, rel->n_entries));
	}
	r = negotiate(h->head, h->head, &h->self, &h->n_self);
	return r == -EPROTO ? 0 : r;
}

/* The version an update hands @name over at, per @e: 0 none. */
static uint32_t picked(const struct luo_report_entry *e, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (e[i].kind == LUO_ABI_KIND_COMPONENT && strcmp(e[i].name, name) == 0 &&
		    (e[i].verdict == LUO_VERDICT_USE || e[i].verdict == LUO_VERDICT_DOWNGRADE))
			return e[i].version;
	return 0;
}

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/*
 * The versions of @e's read range that some update inside the window (or
 * HEAD -> HEAD) picks, sorted, unique, in @out (h->n + 1 slots): how many.
 */
static size_t needed_versions(const struct history *h, const struct luo_manifest_entry *e, uint32_t *out)
{
	size_t k = 0, u = 0;
	uint32_t v;

	for (size_t i = 0; i < h->n; i++)
		if (h->rel[i].in_window && (v = picked(h->rel[i].entries, h->rel[i].n_entries, e->name)))
			out[k++] = v;
	if ((v = picked(h->self, h->n_self, e->name)))
		out[k++] = v;
	qsort(out, k, sizeof(*out), u32_cmp);
	for (size_t i = 0; i < k; i++)
		if (out[i] >= e->read.min && out[i] <= e->read.max && (u == 0 || out[u - 1] != out[i]))
			out[u++] = out[i];
	return u;
}

/* Call @fn on each maximal range of @e's read versions not in @need. */
static void deletable_ranges(const struct luo_manifest_entry *e, const uint32_t *need, size_t n_need,
			     void (*fn)(struct luo_version_range r, bool first))
{
	uint64_t start = e->read.min;
	bool first = true;

	if (e->read.min == 0)
		return;
	for (size_t i = 0; i <= n_need; i++) {
		uint64_t stop = i < n_need ? need[i] : (uint64_t)e->read.max + 1;

		if (stop > start) {
			fn((struct luo_version_range){ (uint32_t)start, (uint32_t)(stop - 1) }, first);
			first = false;
		}
		start = stop + 1;
	}
}

static void range_text(struct luo_version_range r, bool first)
{
	if (r.min == r.max)
		printf("%s%" PRIu32, first ? "" : ", ", r.min);
	else
		printf("%s%" PRIu32 "..%" PRIu32, first ? "" : ", ", r.min, r.max);
}

static void range_json(struct luo_version_range r, bool first)
{
	if (!first)
		fputc(',', stdout);
	json_range(stdout, r);
}

static const char *release_word(const struct release *rel)
{
	struct report_summary s = report_summarize(rel->entries, rel->n_entries, rel->r);

	return report_summary_word(&s);
}

static int history_print_text(const struct history *h, uint32_t *need)
{
	size_t refused = 0;
	int r;

	fputs("release history ", stdout);
	text_puts(stdout, h->dir);
	printf(": %zu release%s, window %" PRIu64 " (the last %" PRIu64 " must live-update to HEAD ", h->n,
	       h->n == 1 ? "" : "s", h->window, h->window);
	text_puts(stdout, h->head_path);
	fputs(")\n", stdout);
	for (size_t i = 0; i < h->n; i++) {
		const struct release *rel = &h->rel[i];

		fputs("  ", stdout);
		text_puts(stdout, rel->name);
		if (!rel->in_window) {
			fputs(": outside the window, not checked\n", stdout);
			continue;
		}
		printf(": %s: %s\n", rel->accepted ? "accepted" : "NOT ACCEPTED", release_word(rel));
		refused += !rel->accepted;
		for (size_t j = 0; j < rel->n_entries; j++) {
			if (rel->entries[j].verdict == LUO_VERDICT_USE && (rel->accepted || !h->strict))
				continue;
			fputs("  ", stdout);
			r = report_entry_print(&rel->entries[j]);
			if (r < 0)
				return r;
		}
	}
	for (size_t i = 0; i < h->n; i++) {
		const struct release *rel = &h->rel[i];

		if (!rel->in_window || rel->accepted)
			continue;
		fputs("HEAD can no longer accept the state of release ", stdout);
		text_puts(stdout, rel->name);
		fputc(':', stdout);
		for (size_t j = 0; j < rel->n_entries; j++) {
			const struct luo_report_entry *e = &rel->entries[j];

			if (e->verdict != LUO_VERDICT_REFUSE && e->verdict != LUO_VERDICT_DOWNGRADE &&
			    !(h->strict && entry_strict_fails(e)))
				continue;
			printf(" %s ", kind_name(e->kind));
			text_put(stdout, e->name, sizeof(e->name), 0);
			fputs(" (", stdout);
			text_put(stdout, e->why, sizeof(e->why), 0);
			fputc(')', stdout);
		}
		fputc('\n', stdout);
	}
	if (!refused)
		printf("HEAD accepts the state of every release inside the window\n");
	fputs("can be deleted: read versions of HEAD that no update from a release inside the window, nor HEAD to "
	      "itself, hands over\n",
	      stdout);
	for (size_t i = 0; i < h->head->n_entries; i++) {
		const struct luo_manifest_entry *e = &h->head->entries[i];
		size_t k;

		if (e->kind != LUO_ABI_KIND_COMPONENT)
			continue;
		k = needed_versions(h, e, need);
		fputs("  ", stdout);
		text_put(stdout, e->name, sizeof(e->name), 0);
		printf(": reads %" PRIu32 "..%" PRIu32 ", needed ", e->read.min, e->read.max);
		for (size_t j = 0; j < k; j++)
			printf("%s%" PRIu32, j ? ", " : "", need[j]);
		if (!k)
			fputs("none", stdout);
		fputs("; can be deleted: ", stdout);
		if (k == (uint64_t)e->read.max - e->read.min + 1)
			fputs("none", stdout);
		else
			deletable_ranges(e, need, k, range_text);
		fputc('\n', stdout);
	}
	return 0;
}

static void history_print_json(const struct history *h, uint32_t *need)
{
	bool all = true;

	fputs("{\"dir\":", stdout);
	json_puts(stdout, h->dir);
	fputs(",\"head\":", stdout);
	json_puts(stdout, h->head_path);
	printf(",\"window\":%" PRIu64 ",\"strict\":%s,\"releases\":[", h->window, h->strict ? "true" : "false");
	for (size_t i = 0; i < h->n; i++) {
		const struct release *rel = &h->rel[i];

		fputs(i ? ",{\"name\":" : "{\"name\":", stdout);
		json_puts(stdout, rel->name);
		printf(",\"in_window\":%s", rel->in_window ? "true" : "false");
		if (rel->in_window) {
			all &= rel->accepted;
			printf(",\"accepted\":%s,\"verdict\":\"%s\",\"entries\":", rel->accepted ? "true" : "false",
			       release_word(rel));
			report_json(rel->entries, rel->n_entries);
		}
		fputc('}', stdout);
	}
	printf("],\"accepted\":%s,\"components\":[", all ? "true" : "false");
	for (size_t i = 0, first = 1; i < h->head->n_entries; i++) {
		const struct luo_manifest_entry *e = &h->head->entries[i];
		size_t k;

		if (e->kind != LUO_ABI_KIND_COMPONENT)
			continue;
		k = needed_versions(h, e, need);
		fputs(first ? "{\"name\":" : ",{\"name\":", stdout);
		first = 0;
		json_put(stdout, e->name, sizeof(e->name));
		fputs(",\"read\":", stdout);
		json_range(stdout, e->read);
		fputs(",\"needed\":[", stdout);
		for (size_t j = 0; j < k; j++)
			printf("%s%" PRIu32, j ? "," : "", need[j]);
		fputs("],\"deletable\":[", stdout);
		deletable_ranges(e, need, k, range_json);
		fputs("]}", stdout);
	}
	fputs("]}\n", stdout);
}

/* The window, the releases, HEAD, every negotiation: 0, or a negative errno (said on stderr but -ENOMEM). */
static int history_run(struct history *h)
{
	int r;

	r = window_read(h);
	if (r == 0)
		r = releases_list(h);
	if (r == 0)
		r = manifest_read(h->head_path, 0, &h->head) < 0 ? -EBADMSG : 0;
	if (r == 0)
		r = history_negotiate(h);
	return r;
}

int cmd_history(const struct cmd_opts *o, int argc, char **argv)
{
	_cleanup_free_ uint32_t *need = NULL;
	struct history h = { .strict = o->strict };
	bool all = true;
	int r;

	if (argc != 2)
		return usage_error("history: need a release history DIR and the HEAD build", NULL);
	h.dir = argv[0];
	h.head_path = argv[1];
	r = history_run(&h);
	if (r == 0) {
		/* The printers' scratch: the versions needed, per component. */
		need = calloc(h.n + 1, sizeof(*need));
		r = need ? 0 : -ENOMEM;
	}
	if (r == 0) {
		if (o->json)
			history_print_json(&h, need);
		else
			r = history_print_text(&h, need);
		for (size_t i = 0; i < h.n; i++)
			all &= !h.rel[i].in_window || h.rel[i].accepted;
	}
	history_done(&h);
	if (r == -ENOMEM)
		print_error("history", r, NULL);
	if (r < 0)
		return EXIT_TROUBLE;
	return all ? 0 : EXIT_REFUSED;
}
