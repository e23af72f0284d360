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
	else
		notes(buf, size - 1, data[0] & 1 ? 8 : 4, data[0] & 2);
	free(buf);
	return 0;
}
