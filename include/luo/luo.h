/* SPDX-License-Identifier: MIT */
#ifndef LUO_LUO_H
#define LUO_LUO_H

/**
 * DOC: libluo, the public API
 *
 * This is the one header a service includes. libluo lets a process replace
 * its own binary (exec handover) while keeping open file descriptors and the
 * contents of memfds, grouped in named *sessions*, each file under a u64
 * *token* -- the userspace counterpart of the kernel's /dev/liveupdate.
 *
 * Lifecycle of a process that uses it:
 *
 *   luo_open()                   fresh start, or adopt the incoming handover
 *     luo_session_retrieve()     incoming side: take a session by name (once)
 *       luo_session_retrieve_fd()  any order, idempotent
 *       luo_session_finish()       release what was not retrieved
 *     luo_ready()                  the blackout ends; timings recorded
 *     luo_session_create()       outgoing side: new session by name
 *       luo_session_preserve_fd()  cheap, limits enforced here
 *     luo_update()               freeze, serialize, execve(); returns only
 *                                on failure, with everything as it was
 *   luo_close()
 *
 * Errors: every function that can fail returns 0 or a negative errno. Codes
 * follow the kernel's LUO where it defines one. Out-parameters (ret_*) are
 * written only on success.
 *
 * Threads: a struct luo and its sessions are protected by one lock; calls
 * may come from any thread. Session handles become invalid at luo_close().
 *
 * Process-wide: at most one struct luo is open at a time (like the kernel's
 * exclusive open of /dev/liveupdate); the file handler registry is global.
 */

/*
 * Four contracts, one header each, all included here:
 *   <luo/service.h>  the service API (the handle, sessions, the agent, the
 *                    control socket, arenas, components)
 *   <luo/handler.h>  the file-handler interface
 *   <luo/declare.h>  the declaration macros that build .note.luo
 *   <luo/fields.h>   declared component state: fields described once,
 *                    written and read by name (LUO_COMPONENT_STATE())
 * with the on-disk records in <luo/abi.h> and luod's protocol in
 * <luo/agent.h> (not included).
 */

#include "luo/abi.h"
#include "luo/service.h"
#include "luo/handler.h"
#include "luo/declare.h"
#include "luo/fields.h"

#endif /* LUO_LUO_H */
