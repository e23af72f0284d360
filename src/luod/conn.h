/* SPDX-License-Identifier: MIT */
#ifndef LUOD_CONN_H
#define LUOD_CONN_H

/*
 * DOC: conn.h, what conn.c offers: a client connection and its replies
 *
 * Callers: main.c (accept, expire, close at exit, SIGHUP's update
 * request), request.c (replies, the deposit's reservation, the in-flight
 * check of a RETRIEVE, the event's flush, kill and close) and handover.c
 * (adopt, reply, close, resume).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "luod.h"

int conn_accept(struct luod *d);
int conn_adopt(struct luod *d, int fd, struct conn **ret_conn);
void conn_close(struct luod *d, struct conn *c, enum conn_close_why why);
/* Mark @c to be closed at the end of its event (the first reason wins). */
void conn_kill(struct conn *c, enum conn_close_why why);
/* Close the connections busy for more than LUOD_STALL_MS; how many. */
unsigned conn_expire(struct luod *d);
/* A deposit under way or a reply queued. */
bool conn_busy(const struct conn *c);
/* Register the events @c wants now: none while a reply is queued or an update drains. */
void conn_arm(struct luod *d, struct conn *c);
/* Start reading again (after an update was refused or done). */
void conn_resume_all(struct luod *d);

/* Send one message, or queue it behind the ones waiting (fds duplicated). */
void conn_send(struct luod *d, struct conn *c, const void *msg, size_t len, const int *fds, size_t n_fds);
/* Send what is queued, as far as the socket takes it (EPOLLOUT). */
void conn_flush(struct conn *c);
/* A reply of @size bytes echoing the request's op (c->cur_op) and @seq. */
struct luo_agent_reply conn_reply_make(struct luod *d, const struct conn *c, uint32_t seq, size_t size, int error,
				       const char *reason);
/* The reply's size: min(theirs, ours), VER0 when they gave less. */
size_t conn_reply_size(uint32_t theirs);
void conn_reply(struct luod *d, struct conn *c, uint32_t seq, uint32_t reply_size, int error,
		const char *reason);
/* Refuse a message that breaks the framing: reply if possible, then close. */
void conn_refuse(struct luod *d, struct conn *c, uint32_t seq, int error, const char *why);

/* The deposit under way no longer reserves its fds against its owner's limit. */
void conn_deposit_unreserve(struct luod *d, struct conn *c);
/* Whether a RETRIEVE of @n fds may go out on @c: 0, -EDQUOT or -ENFILE. */
int conn_retrieve_admit(struct luod *d, struct conn *c, uint64_t n);

/* Ask for a self-update (SIGHUP, or OP_UPDATE from @requester); -EBUSY if one is wanted already. */
int conn_update_request(struct luod *d, struct conn *requester, uint32_t seq, uint32_t reply_size);

#endif /* LUOD_CONN_H */
