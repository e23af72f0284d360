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
 *               };
 *               file-1 { ... };
 *           };
 *           session-1 { ... };
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
 * The time when execve() starts cannot be in a sealed blob; the old image
 * passes it in LUO_HANDOVER_EXEC_NS (decimal nanoseconds). It only feeds the
 * timings and is ignored when malformed.
 */

#include <stdint.h>

#define LUO_ABI_COMPATIBLE "luo,handover"
#define LUO_ABI_FORMAT_VERSION 1u
#define LUO_ABI_BLOB_MAX (64u << 20)
#define LUO_ABI_BUILD_ID_MAX 64
/* Inherited fd numbers are 3..LUO_ABI_FD_NUMBER_MAX (the kernel's nr_open). */
#define LUO_ABI_FD_NUMBER_MAX (1 << 20)
#define LUO_ABI_EXEC_NS_ENV "LUO_HANDOVER_EXEC_NS"

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

#endif /* LUO_ABI_H */
