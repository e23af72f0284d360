/* SPDX-License-Identifier: MIT */
/*
 * DOC: fuzz-blob, the handover blob reader (luo_blob_parse)
 *
 * The first byte picks the mode: even, the rest is a raw blob; odd, the
 * rest is a script (fdt-script.h) built into a well-formed tree first, so
 * that mutations reach the reader's own checks past fdt_check_full(). The
 * blob is copied into a buffer of its exact size (a read past it is an
 * ASan report) and parsed twice, with and without @ret_origin.
 *
 * Besides crashes, leaks and hangs, a blob the reader accepts must keep
 * the reader's documented contract (luo-internal.h, abi.h): every string
 * terminated inside its array and within its maximum, every count within
 * its maximum, every data pointer inside the blob, no session or
 * component name twice. A violation aborts: that is how a wrong
 * acceptance (the LUO_TEST_BROKEN_BOUNDS variant) is caught, which ASan
 * alone cannot see when the overflow stays inside the struct.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fdt-script.h"
#include "luo-internal.h"

#define SCRIPT_TREE_MAX (512u << 10)

#define REQUIRE(cond)                                                                          \
	do {                                                                                   \
		if (!(cond)) {                                                                 \
			fprintf(stderr, "fuzz-blob: accepted blob breaks the contract: %s\n", #cond); \
			abort();                                                               \
		}                                                                              \
	} while (0)

static bool inside(const void *p, size_t n, const uint8_t *buf, size_t len)
{
	const uint8_t *q = p;

	return q >= buf && q <= buf + len && n <= (size_t)(buf + len - q);
}

static void check_origin(const struct luo_blob *b, const uint8_t *buf, size_t len)
{
	REQUIRE(b->build_id_len <= LUO_ABI_BUILD_ID_MAX);
	REQUIRE(strnlen(b->producer_path, sizeof(b->producer_path)) < sizeof(b->producer_path));
	REQUIRE(b->argc <= LUO_ABI_ARGV_MAX);
	for (size_t i = 0; i < b->argc; i++) {
		REQUIRE(b->argv[i] && inside(b->argv[i], 1, buf, len));
		REQUIRE(strnlen(b->argv[i], (size_t)(buf + len - (const uint8_t *)b->argv[i])) <
			(size_t)(buf + len - (const uint8_t *)b->argv[i]));
	}
	REQUIRE(!b->argv || b->argv[b->argc] == NULL);
}

static void check_blob(const struct luo_blob *b, const uint8_t *buf, size_t len)
{
	size_t n_files = 0;

	check_origin(b, buf, len);
	REQUIRE(b->format >= LUO_ABI_FORMAT_READ_MIN && b->format <= LUO_ABI_FORMAT_VERSION);
	REQUIRE(b->lu_number != 0);
	REQUIRE(b->n_sessions <= LUO_SESSIONS_MAX);
	REQUIRE(b->format < 2 || b->argc >= 1);
	for (size_t i = 0; i < b->n_sessions; i++) {
		const struct luo_blob_session *s = &b->sessions[i];
		size_t n = strnlen(s->name, sizeof(s->name));

		REQUIRE(n >= 1 && n <= LUO_SESSION_NAME_MAX);
		REQUIRE(s->n_files <= LUO_SESSION_FILES_MAX);
		for (size_t j = 0; j < i; j++)
			REQUIRE(strcmp(b->sessions[j].name, s->name) != 0);
		for (size_t j = 0; j < s->n_files; j++) {
			const struct luo_blob_file *f = &s->files[j];

			n = strnlen(f->handler, sizeof(f->handler));
			REQUIRE(n >= 1 && n <= LUO_HANDLER_NAME_MAX);
			REQUIRE(f->fd >= 3 && f->fd <= LUO_ABI_FD_NUMBER_MAX);
			REQUIRE(f->data_len <= LUO_FILE_DATA_MAX && inside(f->data, f->data_len, buf, len));
			/* The optional name: inside the blob, bounded, 0x21..0x7e, NUL-terminated. */
			if (f->name) {
				n = strnlen(f->name, LUO_FILE_NAME_MAX + 1);
				REQUIRE(n >= 1 && n <= LUO_FILE_NAME_MAX && inside(f->name, n + 1, buf, len));
				for (size_t k = 0; k < n; k++)
					REQUIRE((unsigned char)f->name[k] >= 0x21 && (unsigned char)f->name[k] <= 0x7e);
			}
		}
		n_files += s->n_files;
	}
	REQUIRE(n_files == b->n_files && n_files <= LUO_FILES_MAX);
	REQUIRE(b->n_components <= LUO_ABI_COMPONENTS_MAX);
	for (size_t i = 0; i < b->n_components; i++) {
		const struct luo_blob_component *c = &b->components[i];
		size_t n = strnlen(c->name, sizeof(c->name));

		REQUIRE(n >= 1 && n <= LUO_COMPONENT_NAME_MAX);
		for (size_t j = 0; j < i; j++)
			REQUIRE(strcmp(b->components[j].name, c->name) != 0);
		if (c->dropped)
			continue;
		REQUIRE(c->version != 0);
		if (c->has_fields) { /* declared state: the node, read later by fields.c, inside the blob */
			REQUIRE(c->fdt == buf && !c->data && c->data_len == 0);
			REQUIRE(c->fields_node > 0 && (size_t)c->fields_node < len);
			continue;
		}
		REQUIRE(c->data_len <= LUO_COMPONENT_DATA_MAX && inside(c->data, c->data_len, buf, len));
	}
}

static void parse(const uint8_t *buf, size_t len)
{
	static int verbose = -1;
	struct luo_blob *b = NULL, *origin = NULL;
	char reason[LUO_REASON_MAX];
	int r;

	r = luo_blob_parse(buf, len, &b, NULL, reason, sizeof(reason));
	if (verbose < 0)
		verbose = getenv("FUZZ_VERBOSE") != NULL;
	if (verbose)
		fprintf(stderr, "fuzz-blob: %zu bytes: %s\n", len, r == 0 ? "accepted" : reason);
	REQUIRE(r == 0 || r == -EBADMSG || r == -EPROTO || r == -ENOMEM);
	REQUIRE((r == 0) == (b != NULL));
	if (b)
		check_blob(b, buf, len);
	luo_blob_free(b);
	b = NULL;
	r = luo_blob_parse(buf, len, &b, &origin, reason, sizeof(reason));
	REQUIRE(!(b && origin));
	if (b)
		check_blob(b, buf, len);
	if (origin) {
		REQUIRE(r < 0 && origin->n_sessions == 0 && origin->n_components == 0);
		check_origin(origin, buf, len);
	}
	luo_blob_free(b);
	luo_blob_free(origin);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t tree[SCRIPT_TREE_MAX];
	uint8_t *buf;
	size_t len;

	if (size < 1)
		return 0;
	if (data[0] & 1) {
		if (fdt_script_build(data + 1, size - 1, tree, sizeof(tree)) != 0)
			return 0;
		len = fdt_totalsize(tree);
		buf = malloc(len);
		if (!buf)
			return 0;
		memcpy(buf, tree, len);
	} else {
		len = size - 1;
		buf = malloc(len ? len : 1);
		if (!buf)
			return 0;
		memcpy(buf, data + 1, len);
	}
	parse(buf, len);
	free(buf);
	return 0;
}
