/* SPDX-License-Identifier: MIT */
#ifndef LUO_MANIFEST_H
#define LUO_MANIFEST_H

/*
 * DOC: manifests and negotiation, the internal contract
 *
 * A manifest is what a program image declares in its .note.luo notes
 * (abi.h): components, file handlers, the container format, and the
 * layouts of the structs components write. It is read three ways:
 *
 *   luo_manifest_read_file()  a binary on disk, with libelf, without running
 *                             it: the executable's notes and those of the
 *                             libraries it names in DT_NEEDED (found in its
 *                             RPATH/RUNPATH, the caller's LD_LIBRARY_PATH,
 *                             the directories of /etc/ld.so.conf and the
 *                             trusted ones; not their dependencies, not
 *                             what the program dlopen()s)
 *   luo_manifest_read_pid()   a running process: /proc/PID/exe and every
 *                             ELF file it has mapped
 *   luo_manifest_read_self()  this process, from its PT_NOTE segments in
 *                             memory (dl_iterate_phdr)
 *
 * Every note of owner "LUO" is hostile input: exact sizes, NUL-terminated
 * non-empty names, valid ranges, known kinds and flags, fields inside the
 * struct and not overlapping, counts under the named maximums below. The
 * same (kind, name) declared twice identically is one entry; differently,
 * the manifest is refused. Errors: -EBADMSG malformed (reason says where),
 * -ENOEXEC not an ELF file of this machine's class and byte order, -ENOENT /
 * -EACCES / ... the file cannot be opened, -ENOMEM. Nothing here crashes,
 * leaks or reads out of bounds on any input; tests/test-manifest-bad.c
 * holds that.
 *
 * Reasons start with the object they are about ("PATH: ..."); they are set
 * for every error but -ENOMEM and -EINVAL (bad arguments).
 *
 * Link libluo_internal whole (libluo_internal_dep does): the built-in
 * handlers' and the format's notes live in objects nothing else pulls in.
 *
 * luo_negotiate() turns two manifests into a report (luo.h's struct
 * luo_report_entry), one entry per versioned thing, and says whether the
 * update may go on. A component is optional there only if both images say
 * so (or the new one lacks it), so a report's "optional" can differ from
 * one manifest's flag.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base.h"
#include "luo/abi.h"
#include "luo/luo.h"
#include "typedesc.h"

/* Entries (components + handlers + formats) of one manifest. */
#define LUO_MANIFEST_ENTRIES_MAX 1024
/* Layouts of one manifest. */
#define LUO_MANIFEST_LAYOUTS_MAX 1024
/* Types declared in one manifest (LUO_ABI_NOTE_TYPE). */
#define LUO_MANIFEST_TYPES_MAX 1024
/* Bytes of .note.luo sections in one ELF object (and of .note.luo.types). */
#define LUO_MANIFEST_NOTES_BYTES_MAX (4u << 20)
/* ELF objects read for one manifest (executable + libraries). */
#define LUO_MANIFEST_OBJECTS_MAX 256
/* Sections of one ELF file looked at. */
#define LUO_MANIFEST_SECTIONS_MAX 65536

struct luo_manifest_entry {
	char name[LUO_ABI_NOTE_NAME_SIZE];
	uint32_t kind;  /* LUO_ABI_KIND_* */
	uint32_t flags; /* LUO_ABI_FLAG_* */
	struct luo_version_range read;
	struct luo_version_range write;
};

struct luo_manifest_layout {
	char component[LUO_ABI_NOTE_NAME_SIZE];
	uint32_t version;
	uint32_t struct_size;
	uint32_t n_fields;
	uint64_t fingerprint; /* FNV-1a 64, see luo_layout_fingerprint() */
	struct luo_abi_note_field fields[LUO_ABI_LAYOUT_FIELDS_MAX];
};

/*
 * A type declared with LUO_PAYLOAD_TYPE() and friends. @digest 0: the
 * binary was never described (unproven). @desc.items NULL: described, but
 * the description was not read (this process's own, until it is).
 */
struct luo_manifest_type {
	char component[LUO_ABI_NOTE_NAME_SIZE];
	uint32_t version;
	uint32_t role;
	uint32_t size, align;
	uint64_t digest;
	char anchor[LUO_ABI_NOTE_ANCHOR_SIZE];
	struct luo_typedesc desc;
};

/* A component's declared fields (LUO_ABI_NOTE_FIELDS), checked. */
struct luo_manifest_fieldset {
	struct luo_abi_note_fields h;
	struct luo_abi_note_fielddecl *decls; /* h.n_fields */
};
/* Field lists of one manifest. */
#define LUO_MANIFEST_FIELDSETS_MAX 1024

struct luo_manifest {
	struct luo_manifest_fieldset *fieldsets; /* manifest-fields.c */
	size_t n_fieldsets;
	struct luo_manifest_entry *entries;
	size_t n_entries;
	struct luo_manifest_layout *layouts;
	size_t n_layouts;
	struct luo_manifest_type *types;
	size_t n_types;
	uint8_t build_id[LUO_ABI_BUILD_ID_MAX]; /* of the executable */
	size_t build_id_len;
	size_t n_objects;                       /* ELF objects read */
	size_t n_unresolved;                    /* DT_NEEDED libraries not found */
	char unresolved_first[256];             /* the first of them */
};

int luo_manifest_new(struct luo_manifest **ret);
void luo_manifest_free(struct luo_manifest *m);
static inline void luo_manifest_freep(struct luo_manifest **m)
{
	luo_manifest_free(*m);
}

/*
 * Parse a run of ELF notes (headers, owners, descriptions, each padded to
 * @align, 4 or 8) and add those of owner "LUO". @origin names the object
 * in reasons. With @strict, a malformed note of another owner is an error;
 * without, the walk just stops there (PT_NOTE segments of the running
 * image hold other owners' notes).
 */
int luo_manifest_add_notes(struct luo_manifest *m, const void *buf, size_t len, size_t align, bool strict,
			   const char *origin, char *reason, size_t reason_len);
/* Add one entry, checked like a note (for handlers registered at run time). */
int luo_manifest_add_entry(struct luo_manifest *m, const struct luo_manifest_entry *e, const char *origin,
			   char *reason, size_t reason_len);
/* A layout note's record (checked: manifest.c), added to @m. */
int luo_manifest_add_layout(struct luo_manifest *m, const struct luo_abi_note_layout *d, const char *origin,
			    char *reason, size_t reason_len);

int luo_manifest_read_file(const char *path, struct luo_manifest **ret, char *reason, size_t reason_len);
int luo_manifest_read_pid(pid_t pid, struct luo_manifest **ret, char *reason, size_t reason_len);
int luo_manifest_read_self(struct luo_manifest **ret, char *reason, size_t reason_len);

/* The GNU build-id of an ELF file: 0, -ENODATA none, or as read_file. */
int luo_elf_build_id(const char *path, uint8_t *buf, size_t len, size_t *ret_len);
int luo_elf_build_id_fd(int fd, uint8_t *buf, size_t len, size_t *ret_len);

const struct luo_manifest_entry *luo_manifest_find(const struct luo_manifest *m, uint32_t kind, const char *name);
const struct luo_manifest_layout *luo_manifest_find_layout(const struct luo_manifest *m, const char *component,
							   uint32_t version);

/* The ELF note walk (struct luo_note, luo_note_next()): base.h, elf-note.c. */

/* manifest-types.c: a LUO_ABI_NOTE_TYPE note (checked), and the descriptions
 * of a .note.luo.types section, each matched to its note by digest. */
int luo_manifest_add_type(struct luo_manifest *m, const struct luo_abi_note_type *d, const char *origin, char *reason,
			  size_t reason_len);
int luo_manifest_add_descriptions(struct luo_manifest *m, const void *buf, size_t len, size_t align,
				  const char *origin, char *reason, size_t reason_len);
const struct luo_manifest_type *luo_manifest_find_type(const struct luo_manifest *m, const char *component,
						       uint32_t version, uint32_t role);
/*
 * The digest this process's own notes (in memory, no file read) give the
 * type of (@component, @version, @role): 0 and *@ret_digest (0: declared,
 * not described), or -ENOENT not declared.
 */
int luo_self_type_digest(const char *component, uint32_t version, uint32_t role, uint64_t *ret_digest);
/* Read the .note.luo.types of the ELF file at @path into @m's types. */
int luo_manifest_read_descriptions(struct luo_manifest *m, const char *path, char *reason, size_t reason_len);

/* manifest-fields.c: a LUO_ABI_NOTE_FIELDS note, checked; a registered state (no note); lookup; free. */
struct luo_component_state;
int luo_manifest_add_fields(struct luo_manifest *m, const void *desc, uint32_t descsz, const char *origin,
			    char *reason, size_t reason_len);
int luo_manifest_add_state(struct luo_manifest *m, const struct luo_component_state *st, char *reason,
			   size_t reason_len);
const struct luo_manifest_fieldset *luo_manifest_find_fields(const struct luo_manifest *m, const char *component);
void luo_manifest_fields_free(struct luo_manifest *m);

/* Fingerprint of a layout: struct size, then fields by offset (name, type, offset, size). */
uint64_t luo_layout_fingerprint(const struct luo_manifest_layout *l);

/* Human names: "component", "handler", "format". */
const char *luo_kind_name(uint32_t kind);
/*
 * negotiate.c: a verdict's name, "use", "drop", "refuse", "new",
 * "downgrade"; @loud: those that lose state or refuse in capitals (the
 * report's lines). NULL for a value that is no verdict.
 */
const char *luo_verdict_name(enum luo_verdict v, bool loud);

/*
 * Negotiate an update from @old to @new. @present says which of @old's
 * entries the outgoing state holds (NULL: all). Fills a report (malloc'd,
 * the caller frees it): @old's entries in order, then the components only
 * @new has. Return: 0 the update may go on; -EPROTO refused (some entry is
 * LUO_VERDICT_REFUSE), the report filled all the same; -ENOMEM, nothing
 * written to @ret_entries / @ret_n.
 */
int luo_negotiate(const struct luo_manifest *old, const struct luo_manifest *new,
		  bool (*present)(const struct luo_manifest_entry *e, void *ctx), void *ctx,
		  struct luo_report_entry **ret_entries, size_t *ret_n);

#endif /* LUO_MANIFEST_H */
