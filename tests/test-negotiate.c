/* SPDX-License-Identifier: MIT */
/*
 * Negotiation as a pure function: two manifests in, a verdict per entry
 * out. v = max(write_old ∩ read_new ∩ read_old); empty: refuse a mandatory
 * entry, drop an optional one; versions whose layouts differ are skipped.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"
#include "test-util.h"

static void add(struct luo_manifest *m, uint32_t kind, const char *name, uint32_t flags, uint32_t rmin, uint32_t rmax,
		uint32_t wmin, uint32_t wmax)
{
	struct luo_manifest_entry e = { .kind = kind, .flags = flags, .read = { rmin, rmax }, .write = { wmin, wmax } };
	char reason[256];

	snprintf(e.name, sizeof(e.name), "%s", name);
	CHECK_OK(luo_manifest_add_entry(m, &e, "test", reason, sizeof(reason)));
}

/* A layout note for (@component, @version) with one field of @type. */
static void add_layout(struct luo_manifest *m, const char *component, uint32_t version, const char *type)
{
	struct {
		struct luo_abi_note_header h;
		struct luo_abi_note_layout d;
	} note = { .h = { 4, sizeof(note.d), LUO_ABI_NOTE_LAYOUT, "LUO" } };
	char reason[256];

	snprintf(note.d.component, sizeof(note.d.component), "%s", component);
	note.d.version = version;
	note.d.struct_size = 8;
	note.d.fields[0].size = 8;
	snprintf(note.d.fields[0].name, sizeof(note.d.fields[0].name), "value");
	snprintf(note.d.fields[0].type, sizeof(note.d.fields[0].type), "%s", type);
	CHECK_OK(luo_manifest_add_notes(m, &note, sizeof(note), 4, true, "test", reason, sizeof(reason)));
}

static struct luo_manifest *manifest(void)
{
	struct luo_manifest *m;

	CHECK_OK(luo_manifest_new(&m));
	return m;
}

static const struct luo_report_entry *entry(const struct luo_report_entry *rep, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(rep[i].name, name) == 0)
			return &rep[i];
	return NULL;
}

/* The verdict and version for component @name from @old to @new. */
static int verdict(const struct luo_manifest *old, const struct luo_manifest *new, const char *name,
		   uint32_t *ret_version)
{
	struct luo_report_entry *rep;
	const struct luo_report_entry *e;
	size_t n;
	int v;

	luo_negotiate(old, new, NULL, NULL, &rep, &n);
	e = entry(rep, n, name);
	CHECK(e != NULL);
	v = e->verdict;
	*ret_version = e->version;
	CHECK(e->why[0] != '\0');
	free(rep);
	return v;
}

/* The three builds: v1 writes 1; v2 reads 1-2, writes 1-2; v3 reads 2-3, writes 2-3. */
static void test_three_builds(void)
{
	struct luo_manifest *b[4];
	static const struct {
		int from, to, verdict;
		uint32_t version;
	} cases[] = {
		{ 1, 2, LUO_VERDICT_USE, 1 }, { 2, 1, LUO_VERDICT_USE, 1 },    { 1, 3, LUO_VERDICT_REFUSE, 0 },
		{ 2, 3, LUO_VERDICT_USE, 2 }, { 3, 2, LUO_VERDICT_USE, 2 },    { 3, 1, LUO_VERDICT_REFUSE, 0 },
		{ 1, 1, LUO_VERDICT_USE, 1 }, { 3, 3, LUO_VERDICT_USE, 3 },
	};

	for (int i = 1; i <= 3; i++)
		b[i] = manifest();
	add(b[1], LUO_ABI_KIND_COMPONENT, "state", 0, 1, 1, 1, 1);
	add(b[2], LUO_ABI_KIND_COMPONENT, "state", 0, 1, 2, 1, 2);
	add(b[3], LUO_ABI_KIND_COMPONENT, "state", 0, 2, 3, 2, 3);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint32_t v = 99;

		CHECK_EQ(verdict(b[cases[i].from], b[cases[i].to], "state", &v), cases[i].verdict);
		CHECK_EQ(v, cases[i].version);
	}
	for (int i = 1; i <= 3; i++)
		luo_manifest_free(b[i]);
	printf("ok - v1->v2 and v2->v1 at 1, v2->v3 and v3->v2 at 2, v1->v3 and v3->v1 refused\n");
}

static void test_highest_common(void)
{
	struct luo_manifest *old = manifest(), *new = manifest();
	uint32_t v;

	add(old, LUO_ABI_KIND_COMPONENT, "c", 0, 1, 9, 3, 7);
	add(new, LUO_ABI_KIND_COMPONENT, "c", 0, 2, 5, 2, 5);
	CHECK_EQ(verdict(old, new, "c", &v), LUO_VERDICT_USE);
	CHECK_EQ(v, 5);
	printf("ok - the highest version both can use: old writes 3-7, new reads 2-5 -> 5\n");
	luo_manifest_free(old);
	luo_manifest_free(new);
}

static void test_optional(void)
{
	struct luo_manifest *old = manifest(), *new = manifest();
	struct luo_report_entry *rep;
	size_t n;
	uint32_t v;

	add(old, LUO_ABI_KIND_COMPONENT, "opt", LUO_COMPONENT_OPTIONAL, 1, 1, 1, 1);
	add(new, LUO_ABI_KIND_COMPONENT, "opt", LUO_COMPONENT_OPTIONAL, 2, 2, 2, 2);
	add(old, LUO_ABI_KIND_COMPONENT, "half", LUO_COMPONENT_OPTIONAL, 1, 1, 1, 1);
	add(new, LUO_ABI_KIND_COMPONENT, "half", 0, 2, 2, 2, 2);
	add(old, LUO_ABI_KIND_COMPONENT, "gone-opt", LUO_COMPONENT_OPTIONAL, 1, 1, 1, 1);
	add(old, LUO_ABI_KIND_COMPONENT, "gone", 0, 1, 1, 1, 1);
	add(new, LUO_ABI_KIND_COMPONENT, "fresh", 0, 1, 1, 1, 1);

	CHECK_EQ(verdict(old, new, "opt", &v), LUO_VERDICT_DROP);
	CHECK_EQ(v, 0);
	/* The new image needs it: the old one may not drop it. */
	CHECK_EQ(verdict(old, new, "half", &v), LUO_VERDICT_REFUSE);
	CHECK_EQ(verdict(old, new, "gone-opt", &v), LUO_VERDICT_DROP);
	CHECK_EQ(verdict(old, new, "gone", &v), LUO_VERDICT_REFUSE);
	CHECK_EQ(verdict(old, new, "fresh", &v), LUO_VERDICT_NEW);
	CHECK_ERR(luo_negotiate(old, new, NULL, NULL, &rep, &n), EPROTO);
	CHECK_EQ(n, 5);
	free(rep);
	printf("ok - optional: dropped; mandatory on either side: refused; missing: by the old flag; new-only: new\n");
	luo_manifest_free(old);
	luo_manifest_free(new);
}

static bool only_present(const struct luo_manifest_entry *e, void *ctx)
{
	(void)ctx;
	return strcmp(e->name, "unused-handler") != 0;
}

static void test_present_and_handlers(void)
{
	struct luo_manifest *old = manifest(), *new = manifest();
	struct luo_report_entry *rep;
	size_t n;
	uint32_t v;

	add(old, LUO_ABI_KIND_HANDLER, "unused-handler", 0, 1, 1, 1, 1);
	add(old, LUO_ABI_KIND_HANDLER, "memfd", 0, 1, 1, 1, 1);
	add(new, LUO_ABI_KIND_HANDLER, "memfd", 0, 1, 1, 1, 1);
	add(old, LUO_ABI_KIND_FORMAT, "luo.handover", 0, 1, 2, 2, 2);
	add(new, LUO_ABI_KIND_FORMAT, "luo.handover", 0, 1, 1, 1, 1);

	/* A handler the new image lacks refuses only if files use it. */
	CHECK_EQ(verdict(old, new, "unused-handler", &v), LUO_VERDICT_REFUSE);
	CHECK_ERR(luo_negotiate(old, new, only_present, NULL, &rep, &n), EPROTO); /* the format still */
	CHECK(entry(rep, n, "unused-handler") == NULL);
	CHECK_EQ(entry(rep, n, "memfd")->verdict, LUO_VERDICT_USE);
	CHECK_EQ(entry(rep, n, "luo.handover")->verdict, LUO_VERDICT_REFUSE);
	free(rep);

	luo_manifest_free(new);
	new = manifest();
	add(new, LUO_ABI_KIND_HANDLER, "memfd", 0, 1, 1, 1, 1);
	add(new, LUO_ABI_KIND_FORMAT, "luo.handover", 0, 1, 2, 2, 2);
	CHECK_OK(luo_negotiate(old, new, only_present, NULL, &rep, &n));
	CHECK_EQ(n, 2);
	free(rep);
	/* A component and a handler may share a name: kinds are separate. */
	add(new, LUO_ABI_KIND_COMPONENT, "memfd", 0, 1, 1, 1, 1);
	CHECK_EQ(new->n_entries, 3);
	printf("ok - absent entries are not negotiated; handlers and the format are mandatory\n");
	luo_manifest_free(old);
	luo_manifest_free(new);
}

static void test_layouts(void)
{
	struct luo_manifest *old = manifest(), *new = manifest();
	uint32_t v;

	add(old, LUO_ABI_KIND_COMPONENT, "c", 0, 1, 3, 1, 3);
	add(new, LUO_ABI_KIND_COMPONENT, "c", 0, 1, 3, 1, 3);
	add_layout(old, "c", 3, "uint64_t");
	add_layout(new, "c", 3, "int64_t"); /* changed without a bump */
	add_layout(old, "c", 2, "uint64_t");
	add_layout(new, "c", 2, "uint64_t");
	CHECK_EQ(verdict(old, new, "c", &v), LUO_VERDICT_DOWNGRADE); /* said as such, not "use" */
	CHECK_EQ(v, 2);

	add(old, LUO_ABI_KIND_COMPONENT, "d", 0, 1, 1, 1, 1);
	add(new, LUO_ABI_KIND_COMPONENT, "d", 0, 1, 1, 1, 1);
	add_layout(old, "d", 1, "uint32_t[2]");
	add_layout(new, "d", 1, "uint64_t");
	CHECK_EQ(verdict(old, new, "d", &v), LUO_VERDICT_REFUSE);

	/* A layout only one side records is a mismatch: it was deleted, or never written. */
	add(old, LUO_ABI_KIND_COMPONENT, "e", 0, 1, 1, 1, 1);
	add(new, LUO_ABI_KIND_COMPONENT, "e", 0, 1, 1, 1, 1);
	add_layout(old, "e", 1, "uint64_t");
	CHECK_EQ(verdict(old, new, "e", &v), LUO_VERDICT_REFUSE);
	printf("ok - a version whose layouts differ, or that one side only records, is skipped (a downgrade);"
	       " none left: refused\n");
	luo_manifest_free(old);
	luo_manifest_free(new);
}

static void test_format_line(void)
{
	struct luo_report_entry e = {
		.name = "counter", .kind = LUO_ABI_KIND_COMPONENT, .old_read = { 1, 1 }, .old_write = { 1, 1 },
		.new_read = { 2, 3 }, .new_write = { 2, 3 }, .verdict = LUO_VERDICT_REFUSE, .why = "no common version",
	};
	char line[256];
	int len = luo_report_entry_format(&e, line, sizeof(line));

	CHECK(len > 0 && (size_t)len < sizeof(line));
	CHECK(strstr(line, "counter") && strstr(line, "REFUSE") && strstr(line, "2..3") && strstr(line, "mandatory"));
	printf("ok - a report line names the entry, both ranges and the verdict: %s\n", line);
	e.verdict = 77; /* out of range: no crash */
	CHECK(luo_report_entry_format(&e, line, sizeof(line)) > 0);
	CHECK(luo_report_entry_format(NULL, line, sizeof(line)) > 0);
}

int main(void)
{
	test_begin();
	test_three_builds();
	test_highest_common();
	test_optional();
	test_present_and_handlers();
	test_layouts();
	test_format_line();
	check_no_fd_leak();
	return 0;
}
