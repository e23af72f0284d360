/* SPDX-License-Identifier: MIT */
#ifndef LUOD_REQUEST_H
#define LUOD_REQUEST_H

/*
 * DOC: request.h, what request.c offers: the events of a connection
 *
 * Caller: main.c's loop, for every epoll event on a connection.
 */

#include <stdint.h>

#include "luod.h"

/* Flush queued replies, read and answer requests, close @c if it died (then @c is freed). */
void request_event(struct luod *d, struct conn *c, uint32_t events);

#endif /* LUOD_REQUEST_H */
