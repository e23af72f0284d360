/* SPDX-License-Identifier: MIT */
#ifndef LUO_CORE_H
#define LUO_CORE_H

/*
 * DOC: the core layer, the service API's entry points
 *
 * Files: core.c (the handle: luo_open(), luo_ready(), luo_close(), the
 * getters, luo_session_retrieve(); the walks of the transports' table),
 * update.c (luo_update(): negotiation, freeze, save, serialize, exec; the
 * mm reaper), control-serve.c (luo_control_dispatch(): a control request
 * becomes a luo_update()).
 *
 * May call: every layer below (base, model, format, handover, transport).
 * Called by nothing in libluo: by the service, through luo.h. Within the
 * layer: control-serve.c calls update.c and core.c, update.c calls core.c.
 */

#include <stdbool.h>

#include "transport.h"

/*
 * update.c: luo_update_quiescing() (luo.h), where @quiesce and @resume may
 * be NULL: no quiesce; with @quiesce only, the caller resumes (the control
 * socket, which answers its requester first).
 */
int luo_update_quiesced(struct luo *luo, const char *path, char *const argv[], char *const envp[],
			int (*quiesce)(void *data), void (*resume)(void *data), void *data);
/* core.c: reap the previous image's mm reaper (update.c); @wait: block until it exits. */
void luo_reaper_reap(struct luo *luo, bool wait);
/* core.c: every transport's exec_env / exec_undo / detach hook, in table order (transport.h). */
void luo_transports_exec_env(struct luo *luo, char **envp);
void luo_transports_exec_undo(struct luo *luo);
void luo_transports_detach(struct luo *luo);

#endif /* LUO_CORE_H */
