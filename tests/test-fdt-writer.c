/* SPDX-License-Identifier: MIT */
/*
 * The one-pass FDT writer (fdt-writer.h) against libfdt:
 *  - 300 random trees written by both (libfdt's sequential-write API and
 *    ours), then walked with libfdt's read API: the same nodes, properties
 *    and values in the same order; ours passes fdt_check_full(), its
 *    padding is zero and its length is the header's;
 *  - a name passed again at one address is stored once; a buffer reused
 *    with other contents is never mistaken for the name it held;
 *  - every misuse fails, and the failure sticks: an end without a begin, a
 *    property outside a node, a name with no NUL within LUO_FDTW_NAME_MAX,
 *    a finish with a node open, a blob over its maximum.
 */

#include <libfdt.h>

#include "luo-internal.h"
#include "test-util.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

static const char *const names[] = { "compatible", "a", "bb", "token", "data", "x-y,z", "name", "version" };

/* Write the same random tree into both, property for property. */
static void random_tree(void *lib, struct luo_fdtw *w, int depth)
{
	char buf[40]; /* reused for node and property names: the writer must not trust its address */
	uint8_t value[64];
	uint32_t n_props = rnd(6), n_children = depth < 4 ? rnd(4) : 0;

	for (uint32_t i = 0; i < n_props; i++) {
		uint32_t len = rnd(sizeof(value) + 1);
		const char *name;

		for (uint32_t k = 0; k < len; k++)
			value[k] = (uint8_t)rnd(256);
		if (rnd(2)) {
			name = names[rnd(sizeof(names) / sizeof(names[0]))];
		} else {
			snprintf(buf, sizeof(buf), "p%u-%u", depth, rnd(1000));
			name = buf;
		}
		CHECK_OK(fdt_property(lib, name, value, (int)len));
		CHECK_OK(luo_fdtw_property(w, name, value, len));
	}
	for (uint32_t i = 0; i < n_children; i++) {
		snprintf(buf, sizeof(buf), "node-%u@%u", depth, i);
		CHECK_OK(fdt_begin_node(lib, buf));
		CHECK_OK(luo_fdtw_begin_node(w, buf));
		random_tree(lib, w, depth + 1);
		CHECK_OK(fdt_end_node(lib));
		CHECK_OK(luo_fdtw_end_node(w));
	}
}

/* The same tree, read through libfdt: names, properties and values in order. */
static void same_tree(const void *a, int na, const void *b, int nb)
{
	int pa, pb, ca, cb;

	CHECK(strcmp(fdt_get_name(a, na, NULL), fdt_get_name(b, nb, NULL)) == 0);
	pa = fdt_first_property_offset(a, na);
	pb = fdt_first_property_offset(b, nb);
	while (pa >= 0 && pb >= 0) {
		const char *name_a, *name_b;
		int len_a, len_b;
		const void *va = fdt_getprop_by_offset(a, pa, &name_a, &len_a);
		const void *vb = fdt_getprop_by_offset(b, pb, &name_b, &len_b);

		CHECK(va && vb);
		CHECK(strcmp(name_a, name_b) == 0);
		CHECK_EQ(len_a, len_b);
		CHECK(memcmp(va, vb, (size_t)len_a) == 0);
		/* the padding up to the next tag is zero */
		for (int k = len_b; k % FDT_TAGSIZE; k++)
			CHECK_EQ(((const uint8_t *)vb)[k], 0);
		pa = fdt_next_property_offset(a, pa);
		pb = fdt_next_property_offset(b, pb);
	}
	CHECK_EQ(pa, -FDT_ERR_NOTFOUND);
	CHECK_EQ(pb, -FDT_ERR_NOTFOUND);
	ca = fdt_first_subnode(a, na);
	cb = fdt_first_subnode(b, nb);
	while (ca >= 0 && cb >= 0) {
		same_tree(a, ca, b, cb);
		ca = fdt_next_subnode(a, ca);
		cb = fdt_next_subnode(b, cb);
	}
	CHECK_EQ(ca, -FDT_ERR_NOTFOUND);
	CHECK_EQ(cb, -FDT_ERR_NOTFOUND);
}

static void test_against_libfdt(void)
{
	size_t lib_size = 1 << 20;
	void *lib = malloc(lib_size);

	CHECK(lib);
	for (int round = 0; round < 300; round++) {
		struct luo_fdtw w;
		void *ours;
		size_t len;

		CHECK_OK(fdt_create(lib, (int)lib_size));
		CHECK_OK(fdt_finish_reservemap(lib));
		CHECK_OK(fdt_begin_node(lib, ""));
		/* a tiny first buffer: the writer grows it many times */
		CHECK_OK(luo_fdtw_start(&w, (size_t)rnd(200), 1 << 20));
		CHECK_OK(luo_fdtw_begin_node(&w, ""));
		random_tree(lib, &w, 0);
		CHECK_OK(fdt_end_node(lib));
		CHECK_OK(luo_fdtw_end_node(&w));
		CHECK_OK(fdt_finish(lib));
		CHECK_OK(luo_fdtw_finish(&w, &ours, &len));
		luo_fdtw_abandon(&w); /* after finish: nothing left to free */
		CHECK_EQ(len, fdt_totalsize(ours));
		CHECK_OK(fdt_check_full(ours, len));
		CHECK_EQ(fdt_version(ours), 17);
		CHECK_EQ(fdt_num_mem_rsv(ours), 0);
		same_tree(lib, 0, ours, 0);
		free(ours);
	}
	free(lib);
	printf("ok - 300 random trees read back through libfdt as libfdt's own writer wrote them\n");
}

static void test_names(void)
{
	static const char shared[] = "shared-name";
	char buf[16];
	struct luo_fdtw w;
	const char *name;
	void *fdt;
	size_t len;
	int node, k = 0, prop;

	CHECK_OK(luo_fdtw_start(&w, 0, 1 << 16));
	CHECK_OK(luo_fdtw_begin_node(&w, ""));
	for (int i = 0; i < 100; i++) {
		CHECK_OK(luo_fdtw_begin_node(&w, (snprintf(buf, sizeof(buf), "n%d", i), buf)));
		CHECK_OK(luo_fdtw_property_u32(&w, shared, (uint32_t)i));
		CHECK_OK(luo_fdtw_end_node(&w));
	}
	/* one buffer, two names: both kept */
	strcpy(buf, "first");
	CHECK_OK(luo_fdtw_property_u32(&w, buf, 1));
	strcpy(buf, "second");
	CHECK_OK(luo_fdtw_property_u32(&w, buf, 2));
	strcpy(buf, "sec");
	CHECK_OK(luo_fdtw_property_u32(&w, buf, 3));
	CHECK_OK(luo_fdtw_end_node(&w));
	CHECK_OK(luo_fdtw_finish(&w, &fdt, &len));
	CHECK_OK(fdt_check_full(fdt, len));
	CHECK_EQ(fdt_size_dt_strings(fdt), sizeof(shared) + strlen("first") + 1 + strlen("second") + 1 + 4);
	fdt_for_each_subnode(node, fdt, 0) {
		const fdt32_t *v = fdt_getprop(fdt, node, shared, NULL);

		CHECK(v);
		CHECK_EQ(fdt32_ld(v), k++);
	}
	CHECK_EQ(k, 100);
	k = 1;
	fdt_for_each_property_offset(prop, fdt, 0) {
		const fdt32_t *v = fdt_getprop_by_offset(fdt, prop, &name, NULL);

		CHECK(strcmp(name, k == 1 ? "first" : k == 2 ? "second" : "sec") == 0);
		CHECK_EQ(fdt32_ld(v), k++);
	}
	free(fdt);
	printf("ok - a name at one address stored once; a reused buffer's names each kept\n");
}

static void test_misuse(void)
{
	char long_name[LUO_FDTW_NAME_MAX + 8];
	struct luo_fdtw w;
	void *fdt = NULL;
	size_t len = 0;

	/* an end without a begin, and the error sticks */
	CHECK_OK(luo_fdtw_start(&w, 64, 4096));
	CHECK_ERR(luo_fdtw_end_node(&w), EINVAL);
	CHECK_ERR(luo_fdtw_begin_node(&w, ""), EINVAL);
	CHECK_ERR(luo_fdtw_finish(&w, &fdt, &len), EINVAL);
	CHECK(!fdt);
	luo_fdtw_abandon(&w);

	/* a property outside any node */
	CHECK_OK(luo_fdtw_start(&w, 64, 4096));
	CHECK_ERR(luo_fdtw_property_u32(&w, "x", 1), EINVAL);
	luo_fdtw_abandon(&w);

	/* names with no NUL within the maximum; one byte shorter is fine */
	memset(long_name, 'n', sizeof(long_name));
	long_name[sizeof(long_name) - 1] = '\0';
	CHECK_OK(luo_fdtw_start(&w, 64, 1 << 16));
	CHECK_ERR(luo_fdtw_begin_node(&w, long_name), EINVAL);
	luo_fdtw_abandon(&w);
	CHECK_OK(luo_fdtw_start(&w, 64, 1 << 16));
	CHECK_OK(luo_fdtw_begin_node(&w, ""));
	CHECK_ERR(luo_fdtw_property_u32(&w, long_name, 1), EINVAL);
	luo_fdtw_abandon(&w);
	long_name[LUO_FDTW_NAME_MAX - 1] = '\0';
	CHECK_OK(luo_fdtw_start(&w, 64, 1 << 16));
	CHECK_OK(luo_fdtw_begin_node(&w, ""));
	CHECK_OK(luo_fdtw_property_u32(&w, long_name, 1));
	CHECK_OK(luo_fdtw_end_node(&w));
	CHECK_OK(luo_fdtw_finish(&w, &fdt, &len));
	CHECK_OK(fdt_check_full(fdt, len));
	free(fdt);
	fdt = NULL;

	/* a finish with a node open */
	CHECK_OK(luo_fdtw_start(&w, 64, 4096));
	CHECK_OK(luo_fdtw_begin_node(&w, ""));
	CHECK_ERR(luo_fdtw_finish(&w, &fdt, &len), EINVAL);
	CHECK(!fdt);
	luo_fdtw_abandon(&w);

	/* over the maximum: -ENOSPC, sticky, whether in the structure or the strings */
	{
		static uint8_t big[4096];
		char name[16];

		CHECK_OK(luo_fdtw_start(&w, 64, 4096));
		CHECK_OK(luo_fdtw_begin_node(&w, ""));
		CHECK_OK(luo_fdtw_property(&w, "a", big, 3000));
		CHECK_ERR(luo_fdtw_property(&w, "b", big, 3000), ENOSPC);
		CHECK_ERR(luo_fdtw_end_node(&w), ENOSPC);
		CHECK_ERR(luo_fdtw_finish(&w, &fdt, &len), ENOSPC);
		luo_fdtw_abandon(&w);
		CHECK_OK(luo_fdtw_start(&w, 64, 4096));
		CHECK_OK(luo_fdtw_begin_node(&w, ""));
		CHECK_OK(luo_fdtw_property(&w, "a", big, 4096 - 56 - 4 - 12 - 8 - 4));
		CHECK_OK(luo_fdtw_end_node(&w));
		/* the structure fits exactly; the name does not */
		CHECK_ERR(luo_fdtw_finish(&w, &fdt, &len), ENOSPC);
		luo_fdtw_abandon(&w);
		CHECK_OK(luo_fdtw_start(&w, 64, 1 << 16));
		CHECK_OK(luo_fdtw_begin_node(&w, ""));
		for (int i = 0; i < 20000; i++) { /* names and structure together over 64 KiB */
			int r;

			snprintf(name, sizeof(name), "n%d", i);
			r = luo_fdtw_property(&w, name, NULL, 0);
			if (r) {
				CHECK_EQ(r, -ENOSPC);
				break;
			}
			CHECK(i < 19999);
		}
		luo_fdtw_abandon(&w);
	}
	CHECK_ERR(luo_fdtw_start(&w, 64, 16), ENOSPC);
	luo_fdtw_abandon(&w);
	printf("ok - misuse refused and the error kept: end without begin, property outside a node, "
	       "unterminated name, open node at finish, over the maximum\n");
}

int main(void)
{
	test_begin();
	test_against_libfdt();
	test_names();
	test_misuse();
	check_no_fd_leak();
	return 0;
}
