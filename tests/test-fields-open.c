/* SPDX-License-Identifier: MIT */
/*
 * Declared state through luo_open(), with the public API only: handover
 * blobs built here (libfdt), sealed in memfds, named in LUO_HANDOVER_FD.
 * Two declared components: "state-a" mandatory, "state-b" optional. A good
 * blob loads both by name (an unknown field dropped, a missing one
 * defaulted); a hostile property, a required field missing, a
 * must-understand field unknown refuse the mandatory one (-EIO, the reason
 * naming the field) and leave its struct as it was; a value that does not
 * fit makes the optional one start cold; the struct image in "data" (what
 * an image before declared state writes) is read too.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <libfdt.h>

#include "luo/luo.h"
#include "test-util.h"

struct a_s {
	uint64_t count;
	int32_t temp;
	char label[8];
};
static struct a_s a_live;
LUO_COMPONENT_STATE(a_component, "state-a", 1, 2, 1, 2, 0, struct a_s, &a_live,
		    LUO_STATE_VALUE(struct a_s, count, 1, LUO_STATE_LATEST, LUO_STATE_REQUIRED, 0),
		    LUO_STATE_VALUE(struct a_s, temp, 1, LUO_STATE_LATEST, 0, -40),
		    LUO_STATE_STRING(struct a_s, label, 2, LUO_STATE_LATEST, 0));

struct b_s {
	uint8_t n;
	bool on;
};
static struct b_s b_live;
LUO_COMPONENT_STATE(b_component, "state-b", 1, 1, 1, 1, LUO_COMPONENT_OPTIONAL, struct b_s, &b_live,
		    LUO_STATE_VALUE(struct b_s, n, 1, LUO_STATE_LATEST, 0, 0),
		    LUO_STATE_VALUE(struct b_s, on, 1, LUO_STATE_LATEST, 0, 1));

/* One field property: name, tag, value bytes. */
struct prop {
	const char *name;
	uint32_t tag;
	const uint8_t *v;
	int len;
};

struct comp {
	const char *name;
	uint32_t version;
	const struct prop *props; /* NULL: data instead */
	size_t n_props;
	const void *data;
	int data_len;
};

#define TRY(x)                                                                      \
	do {                                                                        \
		int r_ = (x);                                                       \
		if (r_) {                                                           \
			fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, \
				fdt_strerror(r_));                                  \
			exit(1);                                                    \
		}                                                                   \
	} while (0)

static size_t build(void *fdt, size_t size, const struct comp *c, size_t n)
{
	static const char argv[] = "/nonexistent/luo-test-old-image";

	TRY(fdt_create(fdt, (int)size));
	TRY(fdt_finish_reservemap(fdt));
	TRY(fdt_begin_node(fdt, ""));
	TRY(fdt_property_string(fdt, LUO_ABI_PROP_COMPATIBLE, LUO_ABI_COMPATIBLE));
	TRY(fdt_property_u32(fdt, LUO_ABI_PROP_FORMAT, LUO_ABI_FORMAT_VERSION));
	TRY(fdt_property_u64(fdt, LUO_ABI_PROP_LU_NUMBER, 1));
	TRY(fdt_property_string(fdt, LUO_ABI_PROP_PRODUCER_PATH, argv));
	TRY(fdt_property(fdt, LUO_ABI_PROP_PRODUCER_BUILD_ID, NULL, 0));
	TRY(fdt_property(fdt, LUO_ABI_PROP_PRODUCER_ARGV, argv, sizeof(argv)));
	TRY(fdt_property_u64(fdt, LUO_ABI_PROP_FREEZE_NS, 1));
	TRY(fdt_property_u64(fdt, LUO_ABI_PROP_SERIALIZE_NS, 2));
	TRY(fdt_begin_node(fdt, LUO_ABI_NODE_SESSIONS));
	TRY(fdt_end_node(fdt));
	TRY(fdt_begin_node(fdt, LUO_ABI_NODE_COMPONENTS));
	for (size_t i = 0; i < n; i++) {
		char node[32];

		snprintf(node, sizeof(node), "component-%zu", i);
		TRY(fdt_begin_node(fdt, node));
		TRY(fdt_property_string(fdt, LUO_ABI_PROP_COMPONENT_NAME, c[i].name));
		TRY(fdt_property_u32(fdt, LUO_ABI_PROP_COMPONENT_VERSION, c[i].version));
		if (c[i].props) {
			TRY(fdt_begin_node(fdt, LUO_ABI_NODE_COMPONENT_FIELDS));
			for (size_t j = 0; j < c[i].n_props; j++) {
				uint8_t buf[64];

				CHECK(c[i].props[j].len >= 0 && (size_t)c[i].props[j].len <= sizeof(buf) - 4);
				buf[0] = (uint8_t)(c[i].props[j].tag >> 24);
				buf[1] = (uint8_t)(c[i].props[j].tag >> 16);
				buf[2] = (uint8_t)(c[i].props[j].tag >> 8);
				buf[3] = (uint8_t)c[i].props[j].tag;
				memcpy(buf + 4, c[i].props[j].v, (size_t)c[i].props[j].len);
				TRY(fdt_property(fdt, c[i].props[j].name, buf, 4 + c[i].props[j].len));
			}
			TRY(fdt_end_node(fdt));
		} else {
			TRY(fdt_property(fdt, LUO_ABI_PROP_COMPONENT_DATA, c[i].data, c[i].data_len));
		}
		TRY(fdt_end_node(fdt));
	}
	TRY(fdt_end_node(fdt));
	TRY(fdt_end_node(fdt));
	TRY(fdt_finish(fdt));
	return fdt_totalsize(fdt);
}

/* luo_open() on a handover of @c: its return; *@ret_luo open on 0. */
static int open_with(const struct comp *c, size_t n, unsigned flags, struct luo **ret_luo)
{
	static uint8_t blob[8192];
	size_t len = build(blob, sizeof(blob), c, n);
	int fd = memfd_create("luo-handover", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	char v[32];

	CHECK(fd >= 0);
	CHECK(write(fd, blob, len) == (ssize_t)len);
	CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0);
	snprintf(v, sizeof(v), "%d", fd);
	CHECK(setenv(LUO_HANDOVER_FD_ENV, v, 1) == 0);
	return luo_open(flags | LUO_OPEN_NO_ROLLBACK, ret_luo);
}

static const uint8_t u64_41[8] = { 0, 0, 0, 0, 0, 0, 0, 41 };
static const uint8_t i16_m7[2] = { 0xff, 0xf9 };
static const uint8_t str_hi[2] = { 'h', 'i' };
static const uint8_t u8_7[1] = { 7 };
static const uint8_t u16_300[2] = { 1, 44 };
static const uint8_t u32_9[4] = { 0, 0, 0, 9 };
static const uint8_t short3[3] = { 0, 0, 1 };

static void test_good(void)
{
	const struct prop pa[] = {
		{ "count", LUO_ABI_FIELD_UINT, u64_41, 8 },
		{ "temp", LUO_ABI_FIELD_INT, i16_m7, 2 },    /* i16 widened into i32 */
		{ "label", LUO_ABI_FIELD_STRING, str_hi, 2 },
	};
	const struct prop pb[] = {
		{ "n", LUO_ABI_FIELD_UINT, u8_7, 1 },
		{ "newer", LUO_ABI_FIELD_UINT, u32_9, 4 }, /* unknown here: dropped */
	};
	const struct comp c[] = { { "state-a", 2, pa, 3, NULL, 0 }, { "state-b", 1, pb, 2, NULL, 0 } };
	struct luo *luo;
	uint32_t v = 0;

	memset(&a_live, 0x55, sizeof(a_live));
	memset(&b_live, 0x55, sizeof(b_live));
	CHECK_OK(open_with(c, 2, 0, &luo));
	CHECK_OK(luo_component_incoming(luo, "state-a", &v));
	CHECK_EQ(v, 2);
	CHECK_OK(luo_component_incoming(luo, "state-b", &v));
	CHECK_EQ(v, 1);
	CHECK_EQ(a_live.count, 41);
	CHECK_EQ(a_live.temp, -7);
	CHECK(strcmp(a_live.label, "hi") == 0);
	CHECK_EQ(b_live.n, 7);
	CHECK_EQ(b_live.on, 1); /* did not come: its default */
	luo_close(luo);
	printf("ok - luo_open() loads declared state by name: widened, defaulted, an unknown field dropped\n");
}

/* A refused mandatory load: -EIO, the reason names @says, the struct as it was. */
static void refused(const char *what, const struct prop *pa, size_t n, const char *says)
{
	const struct comp c[] = { { "state-a", 2, pa, n, NULL, 0 } };
	struct luo *luo;
	const char *why = NULL;
	char reason[512];

	a_live = (struct a_s){ .count = 1234, .temp = 5, .label = "old" };
	CHECK_ERR(open_with(c, 1, 0, &luo), EIO);
	CHECK_EQ(a_live.count, 1234);
	CHECK(strcmp(a_live.label, "old") == 0);
	CHECK(getenv(LUO_HANDOVER_FD_ENV) == NULL);
	CHECK_OK(open_with(c, 1, LUO_OPEN_FRESH_ON_ERROR, &luo));
	CHECK_ERR(luo_incoming_error(luo, &why), EIO);
	if (!why || !strstr(why, says)) {
		fprintf(stderr, "%s: the reason '%s' does not say '%s'\n", what, why ? why : "(none)", says);
		exit(1);
	}
	CHECK_EQ(a_live.count, 1234);
	snprintf(reason, sizeof(reason), "%s", why); /* the handle owns it */
	luo_close(luo);
	printf("ok - %s: refused, -EIO: %s\n", what, reason);
}

static void test_refused(void)
{
	const struct prop bad_len[] = { { "count", LUO_ABI_FIELD_UINT, short3, 3 } };
	const struct prop missing[] = { { "temp", LUO_ABI_FIELD_INT, i16_m7, 2 } };
	const struct prop must[] = {
		{ "count", LUO_ABI_FIELD_UINT, u64_41, 8 },
		{ "critical", LUO_ABI_FIELD_UINT | LUO_ABI_FIELD_WIRE_MUST_UNDERSTAND, u32_9, 4 },
	};
	const struct prop label_int[] = {
		{ "count", LUO_ABI_FIELD_UINT, u64_41, 8 },
		{ "label", LUO_ABI_FIELD_UINT, u32_9, 4 },
	};

	refused("a 3-byte integer", bad_len, 1, "field 'count': 3 bytes");
	refused("a required field missing", missing, 1, "field 'count' is required at version 2");
	refused("a must-understand field unknown", must, 2, "field 'critical' must be understood");
	refused("an integer for a string", label_int, 2, "field 'label': an integer came");
}

static void test_optional_cold(void)
{
	const struct prop pa[] = { { "count", LUO_ABI_FIELD_UINT, u64_41, 8 } };
	const struct prop pb[] = { { "n", LUO_ABI_FIELD_UINT, u16_300, 2 } }; /* 300 into a u8 */
	const struct comp c[] = { { "state-a", 1, pa, 1, NULL, 0 }, { "state-b", 1, pb, 1, NULL, 0 } };
	struct luo *luo;

	b_live = (struct b_s){ .n = 3, .on = false };
	CHECK_OK(open_with(c, 2, 0, &luo));
	CHECK_OK(luo_component_incoming(luo, "state-a", NULL));
	CHECK_ERR(luo_component_incoming(luo, "state-b", NULL), EIO);
	CHECK_EQ(b_live.n, 3);
	CHECK_EQ(b_live.on, 0);
	CHECK_EQ(a_live.count, 41);
	CHECK_EQ(a_live.temp, -40); /* version 1 of a blob without it: the default */
	luo_close(luo);
	printf("ok - a value that does not fit an optional component: it starts cold, untouched\n");
}

static void test_struct_image(void)
{
	/* What an image before declared state writes for state-a at version 1: count, temp, padded. */
	struct {
		uint64_t count;
		int32_t temp;
		uint32_t pad;
	} img = { 77, -2, 0 };
	const struct comp c[] = { { "state-a", 1, NULL, 0, &img, sizeof(img) } };
	const struct comp bad[] = { { "state-a", 1, NULL, 0, &img, 12 } };
	struct luo *luo;

	CHECK_OK(open_with(c, 1, 0, &luo));
	CHECK_EQ(a_live.count, 77);
	CHECK_EQ(a_live.temp, -2);
	CHECK(strcmp(a_live.label, "") == 0);
	luo_close(luo);
	CHECK_ERR(open_with(bad, 1, 0, &luo), EIO);
	printf("ok - the struct image of a version, as an older image writes it, is read; a wrong size refused\n");
}

int main(void)
{
	test_begin();
	test_good();
	test_refused();
	test_optional_cold();
	test_struct_image();
	check_no_fd_leak();
	return 0;
}
