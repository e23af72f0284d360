/* SPDX-License-Identifier: MIT */
/*
 * luo_blob_check() (blob-read.c), the whole-blob check luo_blob_parse()
 * runs first, on wide nodes: 1,000 names in one node as declared fields
 * make them. Twins are found wherever they are (the hash table), also
 * among names crafted to land in one slot (the sort it falls back to); a
 * property and a child may share a name; a property after a child, a
 * truncated structure block and a name outside the strings block are
 * refused.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfdt.h>

#include "format.h"
#include "test-util.h"

#define BUF_SIZE (256 * 1024)
#define WIDE 1000

static char names[WIDE][32];

/* A blob of one node 'wide' holding @n properties names[0..n) (and @extra after them). */
static void *build(uint32_t n, const char *extra, const char *child, const char *late)
{
	void *fdt = malloc(BUF_SIZE);

	CHECK(fdt);
	CHECK_OK(fdt_create_with_flags(fdt, BUF_SIZE, FDT_CREATE_FLAG_NO_NAME_DEDUP));
	CHECK_OK(fdt_finish_reservemap(fdt));
	CHECK_OK(fdt_begin_node(fdt, ""));
	CHECK_OK(fdt_property_u32(fdt, "format-version", 2));
	CHECK_OK(fdt_begin_node(fdt, "wide"));
	for (uint32_t i = 0; i < n; i++)
		CHECK_OK(fdt_property_u32(fdt, names[i], i));
	if (extra)
		CHECK_OK(fdt_property_u32(fdt, extra, 7));
	if (child) {
		CHECK_OK(fdt_begin_node(fdt, child));
		CHECK_OK(fdt_property_u32(fdt, "x", 1));
		CHECK_OK(fdt_end_node(fdt));
	}
	if (late)
		CHECK_OK(fdt_property_u32(fdt, late, 1));
	CHECK_OK(fdt_end_node(fdt));
	CHECK_OK(fdt_end_node(fdt));
	CHECK_OK(fdt_finish(fdt));
	return fdt;
}

static int check(const void *fdt, char *reason, size_t rlen)
{
	reason[0] = '\0';
	return luo_blob_check(fdt, fdt_totalsize(fdt), reason, rlen);
}

static void expect(uint32_t n, const char *extra, const char *child, const char *late, int err, const char *says)
{
	char reason[256];
	void *fdt = build(n, extra, child, late);

	CHECK_ERR(check(fdt, reason, sizeof(reason)), err);
	if (says && !strstr(reason, says)) {
		fprintf(stderr, "reason '%s' does not say '%s'\n", reason, says);
		exit(1);
	}
	free(fdt);
}

/* blob-read.c's hash of a property name (FNV-1a): how names are crafted to collide. */
static uint32_t fnv(const char *s)
{
	uint32_t h = 0x811c9dc5u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x01000193u;
	return h;
}

static void test_wide(void)
{
	for (uint32_t i = 0; i < WIDE; i++)
		snprintf(names[i], sizeof(names[i]), "field_%u", i);
	expect(WIDE, NULL, NULL, NULL, 0, NULL);
	expect(WIDE, "field_500", NULL, NULL, EBADMSG, "property 'field_500' twice in node 'wide'");
	expect(WIDE, "field_0", NULL, NULL, EBADMSG, "'field_0' twice");
	expect(WIDE, "field_999", NULL, NULL, EBADMSG, "'field_999' twice");
	/* A property and a child of one name: different kinds, both visible. */
	expect(WIDE, NULL, "field_3", NULL, 0, NULL);
	expect(WIDE, NULL, "sub", "field_1000", EBADMSG, "after a child node");
	expect(2, NULL, NULL, NULL, 0, NULL);
	expect(2, "field_1", NULL, NULL, EBADMSG, "'field_1' twice");
}

/*
 * 200 names whose hashes agree in their low 12 bits: one slot of the table
 * (512 slots for 201 names), probes past its bound, the sort takes over.
 */
static void test_colliding(void)
{
	uint32_t n = 0, target;

	target = fnv("c0") & 0xfff;
	for (uint32_t i = 0; n < 200 && i < 50000000; i++) {
		char s[32];

		snprintf(s, sizeof(s), "c%u", i);
		if ((fnv(s) & 0xfff) == target)
			memcpy(names[n++], s, sizeof(s));
	}
	CHECK_EQ(n, 200);
	expect(n, NULL, NULL, NULL, 0, NULL);
	expect(n, names[137], NULL, NULL, EBADMSG, "twice");
	expect(n, "other", NULL, NULL, 0, NULL);
}

/* The walk's own bounds: damaged blocks refused, never read past. */
static void test_damaged(void)
{
	char reason[256];
	void *fdt;
	struct fdt_property *p;
	fdt32_t nameoff;
	int node, off;

	for (uint32_t i = 0; i < 4; i++)
		snprintf(names[i], sizeof(names[i]), "field_%u", i);
	fdt = build(4, NULL, NULL, NULL);
	node = fdt_path_offset(fdt, "/wide");
	CHECK(node > 0);
	off = fdt_first_property_offset(fdt, node);
	CHECK(off > 0);
	p = (struct fdt_property *)((char *)fdt + fdt_off_dt_struct(fdt) + off);
	nameoff = p->nameoff;
	CHECK_OK(check(fdt, reason, sizeof(reason)));
	p->nameoff = cpu_to_fdt32(fdt_size_dt_strings(fdt));
	CHECK_ERR(check(fdt, reason, sizeof(reason)), EBADMSG);
	p->nameoff = nameoff;
	CHECK_OK(check(fdt, reason, sizeof(reason)));
	p->len = cpu_to_fdt32(0x7ffffff0u);
	CHECK_ERR(check(fdt, reason, sizeof(reason)), EBADMSG);
	p->len = cpu_to_fdt32(0xfffffffcu);
	CHECK_ERR(check(fdt, reason, sizeof(reason)), EBADMSG);
	p->len = cpu_to_fdt32(4);
	CHECK_OK(check(fdt, reason, sizeof(reason)));
	/* An unknown tag; a structure block cut before its end. */
	*(fdt32_t *)((char *)fdt + fdt_off_dt_struct(fdt) + off) = cpu_to_fdt32(7);
	CHECK_ERR(check(fdt, reason, sizeof(reason)), EBADMSG);
	*(fdt32_t *)((char *)fdt + fdt_off_dt_struct(fdt) + off) = cpu_to_fdt32(FDT_PROP);
	CHECK_OK(check(fdt, reason, sizeof(reason)));
	fdt_set_size_dt_struct(fdt, fdt_size_dt_struct(fdt) - 4);
	CHECK_ERR(check(fdt, reason, sizeof(reason)), EBADMSG);
	free(fdt);

	/* The root must be one node named "". */
	fdt = malloc(BUF_SIZE);
	CHECK(fdt);
	CHECK_OK(fdt_create(fdt, BUF_SIZE));
	CHECK_OK(fdt_finish_reservemap(fdt));
	CHECK_OK(fdt_begin_node(fdt, "named"));
	CHECK_OK(fdt_end_node(fdt));
	CHECK_OK(fdt_finish(fdt));
	CHECK_ERR(check(fdt, reason, sizeof(reason)), EBADMSG);
	CHECK(strstr(reason, "root"));
	free(fdt);
}

int main(void)
{
	test_begin();
	test_wide();
	test_colliding();
	test_damaged();
	check_no_fd_leak();
	printf("test-blob-check: ok\n");
	return 0;
}
