/* SPDX-License-Identifier: MIT */
#ifndef LUOD_TABLE_H
#define LUOD_TABLE_H

/*
 * DOC: table.h, what table.c offers: the held sessions and the closer
 *
 * The sessions luod holds, keyed by (uid, name), with each uid's usage;
 * the closing of fds clients gave; the measure of a deposit. Callers:
 * every layer above (conn.c, request.c, handover.c, main.c).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "luod.h"

int table_init(struct luod *d);
void table_free(struct luod *d);
struct held *table_find(struct luod *d, uint32_t uid, const char *name);
struct uid_usage *table_usage(struct luod *d, uint32_t uid, bool create);
/* Take @h (filled, fds owned) in place of the session of its (uid, name). */
void table_put(struct luod *d, struct held *h);
void table_drop(struct luod *d, struct held *h);
void held_free(struct held *h);
/* fstat() from what the kernel has in memory (statx AT_STATX_DONT_SYNC): never blocks on a filesystem. */
struct stat;
int luod_fd_stat(int fd, struct stat *ret_st);
/*
 * Close a fd a client gave (or its duplicate). A close() that may call
 * into a filesystem (FUSE_FLUSH waits for its server uninterruptibly) is
 * done on the closer thread, so that luod's loop never waits: anything but
 * pipes, sockets, anonymous inodes and shmem files. If the closer cannot
 * take it (its queue is full: it is stuck), the fd is left open and said.
 */
int luod_closer_start(void);
void luod_close_fd(int fd);
void luod_close_fds(int *fds, size_t n);
/* The blob check and byte count of a deposit: 0 or -EBADFD/-EFBIG/-errno. */
int held_measure(const int *fds, uint32_t n_fds, uint64_t *ret_bytes, char *reason, size_t len);

#endif /* LUOD_TABLE_H */
