/* SPDX-License-Identifier: MIT */
#ifndef LUO_TRANSPORT_H
#define LUO_TRANSPORT_H

/*
 * DOC: the transport layer, what carries sessions besides the exec
 *
 * Files: transports.c (the table), exec.c (the exec handover, incoming;
 * luo_update() in core/update.c is the outgoing side), agent-client.c (luod, the agent:
 * deposits and retrieves), control.c (the control socket: requests in, the
 * answer out, both across the exec).
 *
 * The core knows no transport by name: it walks luo_transports[] and calls
 * each hook a transport has, at the moment the hook names. Each keeps its
 * own state, state_size bytes allocated with struct luo at its slot
 * (luo->transport[slot], zeroed; init() sets the rest).
 *
 * May call: base, model, format, handover. Called by core (the table, and
 * control-serve.c the control socket's request helpers below).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "handover.h"
#include "wire.h"

/* What luo_open() tells the adopt hooks. */
struct luo_adopt_args {
	unsigned int flags;  /* luo_open()'s */
	int registry_error;  /* the component registry's error: a handover is refused with it */
	/* The transports' exec_env / exec_undo, walked by the core: for a rollback's exec. */
	void (*exec_env)(struct luo *luo, char **envp);
	void (*exec_undo)(struct luo *luo);
};

struct luo_transport_ops {
	const char *name;
	size_t state_size;
	/* luo_open(), right after allocation: the state's defaults (fds -1). */
	void (*init)(struct luo *luo);
	/*
	 * luo_open(): take what an exec brought (variables, fds), in table
	 * order; 0, or the refusal of the handover (the first one counts).
	 */
	int (*adopt)(struct luo *luo, const struct luo_adopt_args *args);
	/* luo_open(), after it; @flags are luo_open()'s. Not finding its peer is no error. */
	void (*open)(struct luo *luo, unsigned int flags);
	/* luo_ready(), lock not held: @timings_error is luo_timings()'s, @timings its result if 0. */
	void (*ready)(struct luo *luo, int timings_error, const struct luo_timings *timings);
	/*
	 * Just before an execve() (update or rollback), lock held: clear
	 * close-on-exec on what crosses and name it in @envp's first NULL
	 * slots (LUO_EXEC_ENV_TRANSPORT_SLOTS in all); exec_undo if it failed.
	 */
	void (*exec_env)(struct luo *luo, char **envp);
	void (*exec_undo)(struct luo *luo);
	/* luo_update(), lock held, the last step before execve(). */
	void (*detach)(struct luo *luo);
	/*
	 * luo_session_retrieve() of a session the exec handover did not bring,
	 * lock held: the session @name, adopted as incoming and retrieved, or
	 * -ENOENT (not here: the next transport is asked) or another error.
	 */
	int (*retrieve)(struct luo *luo, const char *name, struct luo_session **ret);
	/* luo_close(), lock held; last transport first. */
	void (*close)(struct luo *luo);
};

/* The slots, in the order the core walks them (close: the reverse). */
enum {
	LUO_TRANSPORT_CONTROL, /* adopted first: a rollback of the handover passes it on */
	LUO_TRANSPORT_EXEC,
	LUO_TRANSPORT_AGENT,
	LUO_TRANSPORT_COUNT,
};
_Static_assert(LUO_TRANSPORT_COUNT <= LUO_TRANSPORTS_MAX, "model.h: LUO_TRANSPORTS_MAX");

/* transports.c */
extern const struct luo_transport_ops *const luo_transports[LUO_TRANSPORT_COUNT];

/* exec.c: the handover an exec brought (LUO_HANDOVER_FD), and the rollback. */
extern const struct luo_transport_ops luo_transport_exec;

/* agent-client.c */
extern const struct luo_transport_ops luo_transport_agent;

/*
 * control.c. Its request path (luo_control_dispatch(), in core/control-serve.c)
 * calls these: the listening fd or -1; read and check one request on the
 * accepted @fd within @deadline (ns): 0 to serve it, else it was answered or
 * dropped; claim the answer for @fd (-EBUSY one is pending) and run the
 * program's quiesce callback (*@ret_quiesced: resume is due); release
 * both; and the reply message.
 */
extern const struct luo_transport_ops luo_transport_control;
/*
 * What peers may cost one luo_control_dispatch() call, in all: the time
 * spent waiting for their requests and for them to take their answers.
 * The service's loop is not held longer, however many connect.
 */
#define LUO_CONTROL_PEER_BUDGET_MS 100
int luo_control_listen_fd(struct luo *luo);
int luo_control_receive(struct luo *luo, int fd, uint64_t deadline, struct luo_control_update *ret_req);
int luo_control_begin(struct luo *luo, int fd, uint32_t seq, bool *ret_quiesced);
void luo_control_end(struct luo *luo, bool quiesced);
void luo_control_timeouts(int fd, uint64_t deadline);
int luo_control_send_reply(int fd, size_t size, uint32_t seq, int error, uint32_t count, uint64_t lu_number,
			   const char *reason);

#endif /* LUO_TRANSPORT_H */
