/* SPDX-License-Identifier: MIT */
#ifndef LUO_ABI_H
#define LUO_ABI_H

/**
 * DOC: the handover blob, the contract between two images
 *
 * Changing anything here needs a bump of LUO_ABI_FORMAT_VERSION (the
 * container) or of the version of the handler whose data changes: an old
 * image and a new one agree only on what this file says.
 *
 * The blob is a flattened device tree (libfdt) in a memfd whose number the
 * new image finds in the environment variable LUO_HANDOVER_FD. The memfd is
 * sealed with F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW (and F_SEAL_SEAL)
 * before execve(); the reader refuses one that is not, or that is larger
 * than LUO_ABI_BLOB_MAX.
 *
 *   / {
 *       compatible        = "luo,handover";
 *       format-version    = <u32>;     LUO_ABI_FORMAT_VERSION
 *       liveupdate-number = <u64>;     updates so far, this one included
 *       producer-path     = "string";  the old image's binary, < PATH_MAX
 *       producer-build-id = [bytes];   its ELF build-id, 0..64 bytes (0: none)
 *       freeze-start-ns   = <u64>;     CLOCK_MONOTONIC, old image
 *       serialize-start-ns = <u64>;
 *       producer-argv     = "s0", "s1", ...;  format 2: the old image's argv,
 *                                  for a rollback; 1..LUO_ABI_ARGV_MAX
 *                                  strings, LUO_ABI_ARGV_BYTES_MAX bytes
 *
 *       sessions {
 *           session-0 {              node names carry no meaning
 *               name = "string";     1..63 bytes + NUL, no inner NUL
 *               file-0 {
 *                   token   = <u64>;
 *                   fd      = <u32>; the inherited fd number, >= 3
 *                   handler = "string";  1..31 bytes + NUL
 *                   handler-version = <u32>;
 *                   data    = [bytes];   the handler's payload, exact size
 *                   name    = "string";  optional (format 2 and later): the
 *                                    name given at preserve time, 1..63
 *                                    bytes of 0x21..0x7e + NUL. A reader
 *                                    that does not know it ignores it.
 *               };
 *               file-1 { ... };
 *           };
 *           session-1 { ... };
 *       };
 *
 *       components {                 format 2
 *           component-0 {            node names carry no meaning
 *               name    = "string";  1..47 bytes + NUL
 *               version = <u32>;     the negotiated version, >= 1
 *               data    = [bytes];   the component's payload, written at
 *                                    that version, 0..LUO_COMPONENT_DATA_MAX
 *           };
 *           component-2 {            declared state (LUO_COMPONENT_STATE()),
 *               name    = "string";  to a reader whose manifest declares
 *               version = <u32>;     the component's fields: no data, a
 *               fields {             subnode instead (see "Declared fields")
 *                   count = [u32 tag, value];
 *               };
 *           };
 *           component-1 {
 *               name    = "string";
 *               dropped;             no common version: the new image
 *                                    cold-starts it (no version, no data)
 *           };
 *       };
 *   };
 *
 * Integers are FDT cells (big-endian). A handler's data is a fixed-layout
 * struct in the host's byte order (both images run on the same machine);
 * its layout is the handler's, versioned by handler-version.
 *
 * Limits checked on read: LUO_SESSIONS_MAX sessions, LUO_SESSION_FILES_MAX
 * files per session, LUO_FILES_MAX files in all, no two sessions with one
 * name, no two files with one token in a session, no fd number twice.
 *
 * Format 1 (no producer-argv, no components) is still read; format 2 is
 * written. The container is negotiated like a component, under the name
 * LUO_ABI_FORMAT_COMPONENT: read [1, 2], write [2, 2].
 *
 * The time when execve() starts cannot be in a sealed blob; the old image
 * passes it in LUO_HANDOVER_EXEC_NS (decimal nanoseconds). It only feeds the
 * timings and is ignored when malformed.
 */

#include <stdint.h>

#define LUO_ABI_COMPATIBLE "luo,handover"
#define LUO_ABI_FORMAT_VERSION 2u
#define LUO_ABI_FORMAT_READ_MIN 1u
#define LUO_ABI_FORMAT_COMPONENT "luo.handover"
#define LUO_ABI_BLOB_MAX (64u << 20)
#define LUO_ABI_BUILD_ID_MAX 64
/* Inherited fd numbers are 3..LUO_ABI_FD_NUMBER_MAX (the kernel's nr_open). */
#define LUO_ABI_FD_NUMBER_MAX (1 << 20)
#define LUO_ABI_EXEC_NS_ENV "LUO_HANDOVER_EXEC_NS"
/* The pid of the old image's mm reaper (update.c), for the new image to reap. */
#define LUO_ABI_REAPER_ENV "LUO_HANDOVER_REAPER"
/* Set by a new image that hands the blob back to the old one: "ERRNO:reason". */
#define LUO_ABI_ROLLBACK_ENV "LUO_HANDOVER_ROLLBACK"
/*
 * The control connection (include/luo/agent.h) whose UPDATE led to this
 * exec: the new image (or the old one, after a rollback) answers on it from
 * luo_ready(). An fd number; only taken together with LUO_HANDOVER_FD.
 */
#define LUO_ABI_CONTROL_FD_ENV "LUO_HANDOVER_CONTROL_FD"
/* The control socket's listening fd (luo_control_listen()): it crosses the exec, never rebound. */
#define LUO_ABI_CONTROL_LISTEN_FD_ENV "LUO_HANDOVER_CONTROL_LISTEN_FD"
#define LUO_ABI_ARGV_MAX 4096
#define LUO_ABI_ARGV_BYTES_MAX (256u << 10)
/* Components in one blob (an image registers at most LUO_COMPONENTS_MAX). */
#define LUO_ABI_COMPONENTS_MAX 256

#define LUO_ABI_PROP_COMPATIBLE "compatible"
#define LUO_ABI_PROP_FORMAT "format-version"
#define LUO_ABI_PROP_LU_NUMBER "liveupdate-number"
#define LUO_ABI_PROP_PRODUCER_PATH "producer-path"
#define LUO_ABI_PROP_PRODUCER_BUILD_ID "producer-build-id"
#define LUO_ABI_PROP_FREEZE_NS "freeze-start-ns"
#define LUO_ABI_PROP_SERIALIZE_NS "serialize-start-ns"
#define LUO_ABI_NODE_SESSIONS "sessions"
#define LUO_ABI_PROP_SESSION_NAME "name"
#define LUO_ABI_PROP_FILE_TOKEN "token"
#define LUO_ABI_PROP_FILE_FD "fd"
#define LUO_ABI_PROP_FILE_HANDLER "handler"
#define LUO_ABI_PROP_FILE_HANDLER_VERSION "handler-version"
#define LUO_ABI_PROP_FILE_DATA "data"
#define LUO_ABI_PROP_FILE_NAME "name"
#define LUO_ABI_PROP_PRODUCER_ARGV "producer-argv"
#define LUO_ABI_NODE_COMPONENTS "components"
#define LUO_ABI_PROP_COMPONENT_NAME "name"
#define LUO_ABI_PROP_COMPONENT_VERSION "version"
#define LUO_ABI_PROP_COMPONENT_DATA "data"
#define LUO_ABI_PROP_COMPONENT_DROPPED "dropped"
#define LUO_ABI_NODE_COMPONENT_FIELDS "fields"

/* Data of the built-in "memfd" handler, version 1. */
#define LUO_ABI_MEMFD_VERSION 1u
struct luo_abi_memfd_v1 {
	uint64_t dev;   /* st_dev */
	uint64_t ino;   /* st_ino */
	uint64_t size;  /* st_size, frozen by F_SEAL_GROW | F_SEAL_SHRINK */
	uint32_t seals; /* F_GET_SEALS at freeze time */
	uint32_t reserved; /* zero */
};

/* Data of the built-in "fd" handler, version 1. */
#define LUO_ABI_FD_VERSION 1u
enum luo_abi_fd_kind {
	LUO_ABI_FD_REGULAR = 1,
	LUO_ABI_FD_DIRECTORY = 2,
	LUO_ABI_FD_SOCKET = 3,
	LUO_ABI_FD_FIFO = 4,
	LUO_ABI_FD_CHARDEV = 5,
	LUO_ABI_FD_BLOCKDEV = 6,
	LUO_ABI_FD_EVENTFD = 7,
};
struct luo_abi_fd_v1 {
	uint64_t dev;      /* st_dev */
	uint64_t ino;      /* st_ino */
	uint32_t kind;     /* enum luo_abi_fd_kind */
	int32_t domain;    /* sockets: SO_DOMAIN, else 0 */
	int32_t type;      /* sockets: SO_TYPE, else 0 */
	int32_t protocol;  /* sockets: SO_PROTOCOL, else 0 */
};

/*
 * Data of the built-in "arena" handler, version 1: a memfd mapped at the
 * same address in both images (luo_arena_create()). The new image reserves
 * [addr, addr + size) before main() and maps the memfd there; a clash is an
 * error, never a relocation. The region's own format (the allocator's
 * header) is versioned inside it (heap.h).
 */
#define LUO_ABI_ARENA_VERSION 1u
/*
 * Arena addresses are aligned to 2 MiB (huge pages); region sizes to pages:
 * the data asked for (a multiple of 64 KiB) plus the allocator's metadata
 * pages (heap.h, format 2).
 */
#define LUO_ABI_ARENA_ADDR_ALIGN (2u << 20)
#define LUO_ABI_ARENA_SIZE_ALIGN 4096u
/* Arenas lie below this address (47-bit user space). */
#define LUO_ABI_ARENA_ADDR_END (1ull << 47)
struct luo_abi_arena_v1 {
	uint64_t dev;   /* st_dev of the memfd */
	uint64_t ino;   /* st_ino */
	uint64_t size;  /* st_size, frozen; a multiple of LUO_ABI_ARENA_SIZE_ALIGN */
	uint64_t addr;  /* the mapping's address in both images */
	uint32_t seals; /* F_GET_SEALS at freeze time */
	uint32_t flags; /* LUO_ARENA_* given at creation */
};

/*
 * The manifest: ELF notes in a section named ".note.luo" (type SHT_NOTE,
 * allocated, so it also lies in a PT_NOTE segment of the running image).
 * Each note has the owner "LUO" and one fixed-size description, in the
 * host's byte order:
 *
 *   LUO_ABI_NOTE_COMPONENT   struct luo_abi_note_component   a component, a
 *                            file handler or the container format
 *   LUO_ABI_NOTE_LAYOUT      struct luo_abi_note_layout      the fields of a
 *                            struct a component writes at one version
 *   LUO_ABI_NOTE_TYPE        struct luo_abi_note_type        a type that
 *                            crosses an update (below)
 *
 * Written by the LUO_COMPONENT(), LUO_FILE_HANDLER_DECLARE() and
 * LUO_LAYOUT() macros of luo.h; read by luoctl and luo_update() with the
 * checks listed in manifest.c. Strings are NUL-padded to the full array.
 * A reader refuses a note of owner "LUO" whose type it does not know, so a
 * new record type needs a new type number and is refused by old readers.
 */
#define LUO_ABI_NOTE_SECTION ".note.luo"
#define LUO_ABI_NOTE_OWNER "LUO"
#define LUO_ABI_NOTE_COMPONENT 1u
#define LUO_ABI_NOTE_LAYOUT 2u
#define LUO_ABI_NOTE_NAME_SIZE 48       /* a component name: 1..47 bytes + NUL */
#define LUO_ABI_NOTE_FIELD_NAME_SIZE 32 /* a member or type name: 1..31 + NUL */
#define LUO_ABI_LAYOUT_FIELDS_MAX 32

/* struct luo_abi_note_component.kind */
#define LUO_ABI_KIND_COMPONENT 1u
#define LUO_ABI_KIND_HANDLER 2u
#define LUO_ABI_KIND_FORMAT 3u
/* struct luo_abi_note_component.flags */
#define LUO_ABI_FLAG_OPTIONAL 1u

struct luo_abi_note_header {
	uint32_t namesz; /* sizeof(LUO_ABI_NOTE_OWNER) = 4 */
	uint32_t descsz; /* sizeof the description */
	uint32_t type;   /* LUO_ABI_NOTE_* */
	char owner[4];   /* "LUO" */
};

struct luo_abi_note_component {
	uint32_t kind;      /* LUO_ABI_KIND_* */
	uint32_t flags;     /* LUO_ABI_FLAG_* */
	uint32_t read_min;  /* 1 <= read_min <= read_max */
	uint32_t read_max;
	uint32_t write_min; /* read_min <= write_min <= write_max <= read_max */
	uint32_t write_max;
	char name[LUO_ABI_NOTE_NAME_SIZE];
};

struct luo_abi_note_field {
	uint32_t offset; /* offset + size <= the struct's size */
	uint32_t size;   /* >= 1 */
	char name[LUO_ABI_NOTE_FIELD_NAME_SIZE]; /* the member, "" = unused slot */
	char type[LUO_ABI_NOTE_FIELD_NAME_SIZE]; /* its declared type, as written */
};

struct luo_abi_note_layout {
	char component[LUO_ABI_NOTE_NAME_SIZE];
	uint32_t version;     /* the component version the struct is written at */
	uint32_t struct_size; /* sizeof the whole struct, >= 1 */
	/* Used slots first, then unused ones (all zero); fields do not overlap. */
	struct luo_abi_note_field fields[LUO_ABI_LAYOUT_FIELDS_MAX];
};

/*
 * Types that cross an update, described by the compiler (format of
 * luo-describe, the post-link step; see luo.h, LUO_PAYLOAD_TYPE()).
 *
 * In .note.luo (allocated), one LUO_ABI_NOTE_TYPE note per declared type:
 * which component version it belongs to, its role, sizeof and _Alignof as
 * the compiler saw them, the C identifier of an anchor object whose debug
 * information leads to the type, and the digest of its description, zero
 * until luo-describe has filled it in (then the binary is "described").
 *
 * In .note.luo.types (not allocated: strip keeps it, the running image does
 * not map it), written by luo-describe, one LUO_ABI_NOTE_TYPEDESC note per
 * type: struct luo_abi_typedesc, then n_items struct luo_abi_type_item,
 * then strings_size bytes of NUL-terminated names (offset 0 is "").
 *
 * The items are the type graph in depth-first order from the root (item
 * 0): every struct, union, array, pointer target and enum reachable from
 * it, typedefs of the system's headers resolved, typedefs the program
 * declares kept as LUO_ABI_TI_NAMED (their name is part of the type: it
 * says the unit or meaning), qualifiers dropped. A struct, union or enum
 * item is followed by its members or enumerators. References are item
 * indexes, always to a type item; a pointer to void refers to
 * LUO_ABI_TI_NONE. Two images agree on a type when their graphs have the
 * same shape (kinds, sizes, alignments, offsets, bit-fields, encodings,
 * counts, enumerator values, named typedefs) and no member moved to
 * another's place; a member renamed in place is the same member.
 */
#define LUO_ABI_NOTE_TYPE 3u
#define LUO_ABI_TYPES_SECTION ".note.luo.types"
#define LUO_ABI_NOTE_TYPEDESC 4u
#define LUO_ABI_NOTE_ANCHOR_SIZE 64 /* a C identifier: 1..63 bytes + NUL */

/* struct luo_abi_note_type.role */
#define LUO_ABI_TYPE_PAYLOAD 1u /* the payload of a component at a version */
#define LUO_ABI_TYPE_ARENA 2u   /* the root of the arena a component version owns */
#define LUO_ABI_TYPE_HANDLER 3u /* a file handler's data at its version */

struct luo_abi_note_type {
	char component[LUO_ABI_NOTE_NAME_SIZE]; /* the component or handler */
	uint32_t version;
	uint32_t role;   /* LUO_ABI_TYPE_* */
	uint32_t size;   /* sizeof */
	uint32_t align;  /* _Alignof */
	uint64_t digest; /* of the description; 0: not described */
	char anchor[LUO_ABI_NOTE_ANCHOR_SIZE];
};

struct luo_abi_typedesc {
	char component[LUO_ABI_NOTE_NAME_SIZE];
	uint32_t version;
	uint32_t role;
	uint64_t digest; /* equal to the LUO_ABI_NOTE_TYPE note's */
	uint32_t n_items;
	uint32_t strings_size;
};

/* struct luo_abi_type_item.kind */
#define LUO_ABI_TI_BASE 1u       /* size, align, enc = DW_ATE_* encoding */
#define LUO_ABI_TI_STRUCT 2u     /* size, align, enc = members that follow */
#define LUO_ABI_TI_UNION 3u      /* as a struct */
#define LUO_ABI_TI_ENUM 4u       /* size, align, enc = enumerators that follow, value = 1 if signed */
#define LUO_ABI_TI_ARRAY 5u      /* size, align, enc = elements (0: flexible), ref = element */
#define LUO_ABI_TI_POINTER 6u    /* size, align, ref = target or LUO_ABI_TI_NONE (void) */
#define LUO_ABI_TI_FUNCTION 7u   /* a function type (behind a pointer): opaque */
#define LUO_ABI_TI_NAMED 8u      /* a typedef of the program: name, ref = what it names */
#define LUO_ABI_TI_OPAQUE 9u     /* a struct or union never defined: name */
#define LUO_ABI_TI_MEMBER 10u    /* size = bit offset, align = bit size (0: not a bit-field), ref = type */
#define LUO_ABI_TI_ENUMERATOR 11u /* value */
#define LUO_ABI_TI_NONE 0xffffffffu

struct luo_abi_type_item {
	uint32_t kind;
	uint32_t size;
	uint32_t align;
	uint32_t enc;
	uint32_t ref;
	uint32_t name; /* offset in the strings */
	uint64_t value;
};

/*
 * Declared fields (include/luo/fields.h, LUO_COMPONENT_STATE()).
 *
 * A component may describe its state as fields of one struct: name, type,
 * size, offset, the versions that carry it, a default, flags. The list is
 * recorded once per component, as a LUO_ABI_NOTE_FIELDS note in its own
 * section LUO_ABI_FIELDS_SECTION (allocated, SHT_NOTE): a reader of
 * .note.luo refuses a note type it does not know, so a note there would
 * make every older image refuse the whole manifest of a newer one; older
 * readers never look at this section. Its description is struct
 * luo_abi_note_fields followed by n_fields struct luo_abi_note_fielddecl.
 *
 * On the wire, a component whose reader declares its fields is a node
 * with name, version and a subnode "fields" holding one property per field
 * written at that version, named as the field (1..31 bytes of [a-z0-9_]),
 * its value a big-endian u32 tag (LUO_ABI_FIELD_* | LUO_ABI_FIELD_WIRE_*)
 * then the value: an integer in its declared width, big-endian (1, 2, 4
 * or 8 bytes; signed two's complement), a bool one byte 0 or 1, a byte
 * array its declared bytes, a string its bytes without the NUL (none
 * inside). A reader takes each field it declares by name, converts widths
 * (narrowing only a value that fits), takes the default of a field that is
 * missing (refuses if the field is required), drops a property it does not
 * know (refuses if it is tagged LUO_ABI_FIELD_WIRE_MUST_UNDERSTAND).
 *
 * To a reader that declares no fields for the component (an image built
 * before fields, or one with hand-written load()), the state goes as the
 * "struct image" in data: the fields carried at the version, in
 * declaration order, each at its natural alignment, the size rounded up to
 * the largest -- the struct an image before fields declared for that
 * version (LUO_PAYLOAD_TYPE()), in the host's byte order. Such data is
 * read back the same way.
 */
#define LUO_ABI_FIELDS_SECTION ".note.luo.fields"
#define LUO_ABI_NOTE_FIELDS 5u
#define LUO_ABI_FIELDS_MAX 1024        /* fields of one component */
#define LUO_ABI_FIELD_SIZE_MAX 4096    /* bytes of one byte array or string */
#define LUO_ABI_FIELD_LATEST 0xffffffffu /* .to: every version from .from on */

/* struct luo_abi_note_fielddecl.type, and the low byte of the wire tag */
#define LUO_ABI_FIELD_UINT 1u   /* unsigned integer, size 1, 2, 4 or 8 */
#define LUO_ABI_FIELD_INT 2u    /* signed integer, size 1, 2, 4 or 8 */
#define LUO_ABI_FIELD_BOOL 3u   /* bool, size 1, 0 or 1 */
#define LUO_ABI_FIELD_BYTES 4u  /* uint8_t[size] */
#define LUO_ABI_FIELD_STRING 5u /* char[size], NUL-terminated in it */

/* struct luo_abi_note_fielddecl.flags */
#define LUO_ABI_FIELD_REQUIRED 1u        /* a reader refuses state without it */
#define LUO_ABI_FIELD_MUST_UNDERSTAND 2u /* a reader that does not know it refuses */
#define LUO_ABI_FIELD_VERSION 4u         /* an integer that holds the version written: libluo
					  * writes it, a reader refuses another value */

/* The wire tag: the type, and these bits */
#define LUO_ABI_FIELD_WIRE_MUST_UNDERSTAND 0x100u

struct luo_abi_note_fielddecl {
	char name[LUO_ABI_NOTE_FIELD_NAME_SIZE]; /* 1..31 bytes of [a-z0-9_] + NUL padding */
	uint32_t type;   /* LUO_ABI_FIELD_* */
	uint32_t size;   /* sizeof the member */
	uint32_t offset; /* offset + size <= struct_size; fields do not overlap */
	uint32_t from;   /* the first version that carries it, >= 1 */
	uint32_t to;     /* the last, >= from, or LUO_ABI_FIELD_LATEST */
	uint32_t flags;  /* LUO_ABI_FIELD_REQUIRED | _MUST_UNDERSTAND | _VERSION */
	uint64_t deflt;  /* integers (two's complement) and bool; 0 for arrays (zero-filled) */
};

struct luo_abi_note_fields {
	char component[LUO_ABI_NOTE_NAME_SIZE];
	uint32_t struct_size; /* sizeof the struct, >= 1 */
	uint32_t n_fields;    /* 1..LUO_ABI_FIELDS_MAX, no name twice */
};

#endif /* LUO_ABI_H */
