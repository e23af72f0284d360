/* SPDX-License-Identifier: MIT */
#ifndef LUO_WIRE_H
#define LUO_WIRE_H

/*
 * DOC: wire.c, messages of include/luo/agent.h on a SOCK_SEQPACKET socket
 *
 * Shared by libluo (agent client, control socket), luod and luoctl, so
 * that the checks of agent.h's DOC are written once:
 *
 *   luo_wire_send()       one message, with 0..LUO_AGENT_FDS_PER_MSG fds
 *   luo_wire_recv()       one message; the fds arrive close-on-exec; a
 *                         truncated message, or one with more fds than the
 *                         caller takes, is refused (-EBADMSG) and every fd
 *                         it brought is closed
 *   luo_wire_header()     the header of a received message: size field equal
 *                         to the bytes received, at least @size_ver0 and at
 *                         most LUO_AGENT_MSG_MAX; the version; the op
 *   luo_wire_struct_in()  copy_struct_from_user(): zero-extend a shorter
 *                         struct, refuse non-zero bytes past ours (-E2BIG)
 *   luo_wire_out_size()   min(theirs, ours), at least ver0 (0: refuse)
 *   luo_wire_name()       a NUL-padded name array: 1..size-1 bytes, NUL,
 *                         then zeros
 *
 * Nothing here keeps state; a socket may be blocking or not (-EAGAIN is
 * passed up). Errors are negative errnos; 0 from luo_wire_recv() is the
 * peer's end of the connection.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "luo/agent.h"

int luo_wire_send(int sock, const void *msg, size_t len, const int *fds, size_t n_fds);
ssize_t luo_wire_recv(int sock, void *buf, size_t cap, int *fds, size_t max_fds, size_t *ret_n_fds);
int luo_wire_header(const void *buf, size_t len, size_t size_ver0, uint16_t op, struct luo_agent_header *ret_hdr);
int luo_wire_struct_in(void *dst, size_t ours, const void *src, size_t theirs);
size_t luo_wire_out_size(uint32_t theirs, size_t ours, size_t ver0);
int luo_wire_name(const char *name, size_t size);
/* Fill a header. */
void luo_wire_header_init(struct luo_agent_header *hdr, size_t size, uint16_t op, uint32_t seq);
/* Close @n fds of @fds (received ones the caller refuses). */
void luo_wire_close_fds(int *fds, size_t n);

#endif /* LUO_WIRE_H */
