/* SPDX-License-Identifier: MIT */
/*
 * DOC: fuzz-manifest, the .note.luo reader (and negotiation on what it accepts)
 *
 * The first byte picks what the rest is:
 *   bit 2 clear  a run of notes: luo_manifest_add_notes() with the
 *                alignment of bit 0 (4 or 8) and the strictness of bit 1,
 *                twice on one manifest (an object and a library declaring
 *                the same notes: identical ones are one entry), then
 *                luo_negotiate() of that manifest with itself and with an
 *                empty one, both ways
 *   bit 2 set    an ELF file: written to a memfd and read by
 *                luo_manifest_read_file() and luo_elf_build_id() through
 *                /proc/self/fd/N, as luoctl reads a binary on disk
 *   bit 3 set    (bit 2 clear) two type descriptions (typedesc.h): a u32
 *                length, the first, the rest the second; each one's digest
 *                is set by the harness before luo_typedesc_parse() (else
 *                no mutation gets past it), then luo_typedesc_compare() of
 *                every pair: a description equals itself, and no input
 *                makes the walk read out of bounds or loop
 *
 * Oracles: the documented error codes only; an accepted manifest within
 * its limits, its names terminated; a report of the documented length.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "manifest.h"

#define REQUIRE(cond)                                                                             \
	do {                                                                                      \
		if (!(cond)) {                                                                    \
			fprintf(stderr, "fuzz-manifest: broken promise: %s (%s)\n", #cond, reason); \
			abort();                                                                  \
		}                                                                                 \
	} while (0)

static char reason[512];

static void check_manifest(const struct luo_manifest *m)
{
	REQUIRE(m->n_entries <= LUO_MANIFEST_ENTRIES_MAX && m->n_layouts <= LUO_MANIFEST_LAYOUTS_MAX);
	REQUIRE(m->build_id_len <= LUO_ABI_BUILD_ID_MAX);
	for (size_t i = 0; i < m->n_entries; i++) {
		const struct luo_manifest_entry *e = &m->entries[i];
		size_t n = strnlen(e->name, sizeof(e->name));

		REQUIRE(n >= 1 && n < sizeof(e->name));
		REQUIRE(e->kind >= LUO_ABI_KIND_COMPONENT && e->kind <= LUO_ABI_KIND_FORMAT);
		REQUIRE(e->read.min >= 1 && e->read.min <= e->write.min && e->write.min <= e->write.max &&
			e->write.max <= e->read.max);
		REQUIRE(luo_manifest_find(m, e->kind, e->name) != NULL);
	}
	for (size_t i = 0; i < m->n_layouts; i++) {
		const struct luo_manifest_layout *l = &m->layouts[i];

		REQUIRE(strnlen(l->component, sizeof(l->component)) < sizeof(l->component));
		REQUIRE(l->n_fields <= LUO_ABI_LAYOUT_FIELDS_MAX && l->struct_size >= 1);
		for (uint32_t k = 0; k < l->n_fields; k++)
			REQUIRE(l->fields[k].size >= 1 && l->fields[k].offset <= l->struct_size &&
				l->fields[k].size <= l->struct_size - l->fields[k].offset);
		(void)luo_layout_fingerprint(l);
	}
}

static void negotiate(const struct luo_manifest *old, const struct luo_manifest *new)
{
	struct luo_report_entry *entries = NULL;
	size_t n = 0;
	int r = luo_negotiate(old, new, NULL, NULL, &entries, &n);

	REQUIRE(r == 0 || r == -EPROTO || r == -ENOMEM);
	if (r != -ENOMEM)
		REQUIRE(n >= old->n_entries && n <= old->n_entries + new->n_entries);
	free(entries);
}

static void notes(const uint8_t *buf, size_t len, size_t align, bool strict)
{
	struct luo_manifest *m = NULL, *empty = NULL;
	int r;

	if (luo_manifest_new(&m) < 0 || luo_manifest_new(&empty) < 0)
		abort();
	r = luo_manifest_add_notes(m, buf, len, align, strict, "fuzz", reason, sizeof(reason));
	REQUIRE(r == 0 || r == -EBADMSG || r == -ENOMEM);
	if (r == 0) {
		r = luo_manifest_add_notes(m, buf, len, align, strict, "fuzz-again", reason, sizeof(reason));
		REQUIRE(r == 0 || r == -ENOMEM);
	}
	if (r == 0) {
		check_manifest(m);
		negotiate(m, m);
		negotiate(m, empty);
		negotiate(empty, m);
	}
	luo_manifest_free(m);
	luo_manifest_free(empty);
}

/* Parse @buf as a description whose digest the harness fills in: 0 parsed. */
static int typedesc(uint8_t *buf, size_t len, struct luo_typedesc *ret)
{
	struct luo_abi_typedesc h;
	int r;

	if (len >= sizeof(h)) {
		memcpy(&h, buf, sizeof(h));
		if (h.n_items <= LUO_TYPEDESC_ITEMS_MAX && h.strings_size <= LUO_TYPEDESC_STRINGS_MAX &&
		    sizeof(h) + (size_t)h.n_items * sizeof(struct luo_abi_type_item) + h.strings_size == len) {
			const uint8_t *items = buf + sizeof(h);
			struct luo_abi_type_item *tmp = malloc(h.n_items ? h.n_items * sizeof(*tmp) : 1);

			if (!tmp)
				abort();
			memcpy(tmp, items, h.n_items * sizeof(*tmp));
			h.digest = luo_typedesc_digest(tmp, h.n_items, (const char *)items + h.n_items * sizeof(*tmp),
						       h.strings_size);
			memcpy(buf, &h, sizeof(h));
			free(tmp);
		}
	}
	r = luo_typedesc_parse(buf, len, "fuzz", ret, reason, sizeof(reason));
	REQUIRE(r == 0 || r == -EBADMSG || r == -ENOMEM);
	return r;
}

static void typedescs(uint8_t *buf, size_t len)
{
	struct luo_typedesc a = { 0 }, b = { 0 };
	char why[LUO_TYPEDESC_WHY_MAX];
	uint32_t la;
	bool ha, hb;

	if (len < 4)
		return;
	memcpy(&la, buf, 4);
	if (la > len - 4)
		return;
	ha = typedesc(buf + 4, la, &a) == 0;
	hb = typedesc(buf + 4 + la, len - 4 - la, &b) == 0;
	if (ha) {
		REQUIRE(luo_typedesc_compare(&a, &a, why, sizeof(why)) == 0);
		REQUIRE(a.n_items >= 1 && a.strings[a.strings_size - 1] == '\0');
	}
	if (ha && hb) {
		int r1 = luo_typedesc_compare(&a, &b, why, sizeof(why));
		int r2 = luo_typedesc_compare(&b, &a, why, sizeof(why));

		REQUIRE(r1 == 0 || r1 == 1 || r1 == -ENOMEM);
		REQUIRE(r2 == 0 || r2 == 1 || r2 == -ENOMEM);
		REQUIRE(strnlen(why, sizeof(why)) < sizeof(why));
		if (a.digest != b.digest)
			REQUIRE(r1 != 0 && r2 != 0);
	}
	luo_typedesc_done(&a);
	luo_typedesc_done(&b);
}

static void elf(const uint8_t *buf, size_t len)
{
	struct luo_manifest *m = NULL;
	uint8_t build_id[LUO_ABI_BUILD_ID_MAX];
	size_t build_id_len = 0;
	char path[64];
	int fd = memfd_create("fuzz-elf", MFD_CLOEXEC), r;

	if (fd < 0)
		abort();
	if (len && write(fd, buf, len) != (ssize_t)len)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = luo_manifest_read_file(path, &m, reason, sizeof(reason));
	REQUIRE(r == 0 || r == -EBADMSG || r == -ENOEXEC || r == -ENOMEM);
	REQUIRE((r == 0) == (m != NULL));
	if (m) {
		check_manifest(m);
		negotiate(m, m);
	}
	luo_manifest_free(m);
	r = luo_elf_build_id(path, build_id, sizeof(build_id), &build_id_len);
	REQUIRE(r < 0 || build_id_len <= sizeof(build_id));
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf;

	if (size < 1)
		return 0;
	/* An exact copy: a read past it is an ASan report. Notes are 4-byte aligned in memory. */
	buf = aligned_alloc(8, size - 1 ? (size - 1 + 7) & ~(size_t)7 : 8);
	if (!buf)
		abort();
	memcpy(buf, data + 1, size - 1);
	if (data[0] & 4)
		elf(buf, size - 1);
	else if (data[0] & 8)
		typedescs(buf, size - 1);
	else
		notes(buf, size - 1, data[0] & 1 ? 8 : 4, data[0] & 2);
	free(buf);
	return 0;
}
