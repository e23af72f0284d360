/* SPDX-License-Identifier: MIT */
#ifndef LUO_FORMAT_H
#define LUO_FORMAT_H

/*
 * DOC: the format layer, bytes libluo writes and reads
 *
 * Files: blob-read.c and blob-write.c (the handover blob, an FDT: this
 * header); fdt-writer.c (an FDT in one pass: fdt-writer.h); manifest.c (the manifest model), manifest-note.c (the .note.luo
 * parser), manifest-elf.c (binaries on disk, libelf), manifest-search.c
 * (DT_NEEDED libraries: RPATH, ld.so.conf), manifest-proc.c (a running
 * process, this process), manifest-types.c (type descriptions) and
 * negotiate.c (two manifests, one report): manifest.h; typedesc.c:
 * typedesc.h; declared component state -- fields.c, fields-check.c,
 * fields-registry.c, fields-report.c, manifest-fields.c: fields.h.
 *
 * May call: the base and model layers (blob-write.c reads the sessions of
 * a struct luo). Called by handover, transport, arena and core, and by
 * luoctl and luo-describe (manifest.h, typedesc.h).
 */

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fdt-writer.h"
#include "fields.h"
#include "manifest.h"
#include "model.h"

/* the incoming blob, parsed and checked; data pointers point into the blob */
struct luo_blob_file {
	uint64_t token;
	int fd;
	char handler[LUO_HANDLER_NAME_MAX + 1];
	uint32_t handler_version;
	const void *data;
	uint32_t data_len;
	const char *name;    /* NULL: none; else checked by luo_file_name_valid(), in the blob */
};

struct luo_blob_session {
	char name[LUO_SESSION_NAME_MAX + 1];
	struct luo_blob_file *files;
	size_t n_files;
};

struct luo_blob_component {
	char name[LUO_COMPONENT_NAME_MAX + 1];
	bool dropped;        /* no version, no data */
	uint32_t version;
	const void *data;
	size_t data_len;
	const void *fdt;     /* has_fields: the blob, and the "fields" node in it (fields.c reads it) */
	bool has_fields;
	int fields_node;
};

struct luo_blob {
	uint32_t format;
	uint64_t lu_number;
	char producer_path[PATH_MAX];
	uint8_t build_id[LUO_ABI_BUILD_ID_MAX];
	size_t build_id_len;
	uint64_t freeze_ns;
	uint64_t serialize_ns;
	struct luo_blob_session *sessions;
	size_t n_sessions;
	size_t n_files;
	struct luo_blob_component *components;
	size_t n_components;
	const char **argv;   /* format 2: producer-argv, NULL-terminated */
	size_t argc;
};

/*
 * blob-read.c: the whole-blob check luo_blob_parse() runs first (libfdt's
 * fdt_check_full(), then no property after a child, no name twice in a
 * node, bounded depth and names per node). 0, or -EBADMSG / -ENOMEM.
 */
int luo_blob_check(const void *buf, size_t len, char *reason, size_t reason_len);
/*
 * blob-read.c: parse hostile bytes. -EBADMSG / -EPROTO / -ENOMEM. When the
 * blob fails after its producer (path, build-id, argv) was read, and
 * @ret_origin is not NULL, it gets a blob with only those (for a rollback).
 */
int luo_blob_parse(const void *buf, size_t len, struct luo_blob **ret_blob, struct luo_blob **ret_origin,
		   char *reason, size_t reason_len);
void luo_blob_free(struct luo_blob *blob);
static inline void luo_blob_freep(struct luo_blob **blob)
{
	luo_blob_free(*blob);
}

/* blob-write.c: serialize the outgoing sessions of @luo. */
struct luo_blob_header {
	uint64_t lu_number;
	char *const *argv;   /* producer-argv */
	const struct luo_component_out *components;
	size_t n_components;
	const char *producer_path;
	const uint8_t *build_id;
	size_t build_id_len;
	uint64_t freeze_ns;
	uint64_t serialize_ns;
	const struct luo_session *only; /* NULL: every outgoing session; else this one (a deposit) */
};
int luo_blob_build(const struct luo *luo, const struct luo_blob_header *hdr, void **ret_buf, size_t *ret_len);

/* The manifest readers (manifest-*.c): a malformed record, its reason, -EBADMSG. */
#define luo_refuse(reason, rlen, ...)                                          \
	({                                                                     \
		luo_reasonf((reason), (rlen), __VA_ARGS__);                    \
		-EBADMSG;                                                      \
	})

/* Forget the reason of a failure that was skipped. */
static inline void luo_reason_clear(char *reason, size_t rlen)
{
	if (reason && rlen > 0)
		reason[0] = '\0';
}

/* manifest-elf.c: what one ELF object says beyond its notes (manifest-search.c follows it). */
struct luo_manifest;
struct luo_elf_object {
	char needed[LUO_MANIFEST_OBJECTS_MAX][NAME_MAX + 1];
	size_t n_needed;
	size_t n_dropped;                   /* DT_NEEDED not followed: a path, too long, too many */
	char dropped_first[NAME_MAX + 1];
	char runpath[PATH_MAX];
	char rpath[PATH_MAX];
};
/* A regular file at @path, opened for reading (never a device): an fd or -errno, with the reason. */
int luo_elf_open(const char *path, char *reason, size_t reason_len);
/*
 * Read one ELF object's .note.luo sections into @m; with @obj, also its
 * DT_NEEDED / RUNPATH / RPATH; with @want_build_id, its GNU build-id.
 */
int luo_elf_read_object(int fd, const char *origin, struct luo_manifest *m, struct luo_elf_object *obj,
			bool want_build_id, char *reason, size_t reason_len);

#endif /* LUO_FORMAT_H */
