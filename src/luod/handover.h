/* SPDX-License-Identifier: MIT */
#ifndef LUOD_HANDOVER_H
#define LUOD_HANDOVER_H

/*
 * DOC: handover.h, what handover.c offers: luod's own live update
 *
 * Caller: main.c (register before luo_open(), restore after it, poll from
 * the loop). A self-update is asked for with conn_update_request().
 */

#include "luod.h"

int handover_register(void);
/* After luo_open(): adopt what the previous image held, if anything. 1 adopted, 0 fresh. */
int handover_restore(struct luod *d);
/* Called from the loop: run the update once nothing is under way or the drain timed out. */
void handover_poll(struct luod *d);

#endif /* LUOD_HANDOVER_H */
