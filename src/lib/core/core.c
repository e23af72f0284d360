/* SPDX-License-Identifier: MIT */
/*
 * DOC: the orchestrator handle
 *
 * luo_open() allocates the handle with every transport's state after it
 * (one allocation), takes the process-wide "open" mark (a second open gets
 * -EBUSY, like the kernel's exclusive /dev/liveupdate; registry.c), and
 * walks the transports (transport.h): init, then adopt -- the control
 * socket's variables first, then the exec handover (transport/exec.c, its
 * DOC: the checks, all-or-nothing, the rollback) -- then open (the agent).
 * A broken component registry fails luo_open() whatever the flags, but
 * only after the handover was looked at. luo_ready() ends the blackout and
 * lets the transports answer (the control socket's requester);
 * luo_close() closes them, frees the sessions and drops the mark.
 * luo_session_retrieve() asks the transports for a session the exec did
 * not bring (the agent).
 *
 * A secure-execution image (AT_SECURE: setuid, setgid, file capabilities)
 * reads none of libluo's variables (util.c): it starts fresh, and
 * luo_open() removes them from its environment so that no child reads
 * them either (luo_env_scrub()).
 */

#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "core.h"
#include "manifest.h"


/* Reap the previous image's mm reaper (update.c); @wait: block until it exits. */
void luo_reaper_reap(struct luo *luo, bool wait)
{
	if (luo->reaper_pid <= 0)
		return;
	for (;;) {
		/* __WCLONE: only children with no exit signal, as the reaper is. */
		pid_t r = waitpid(luo->reaper_pid, NULL, __WCLONE | (wait ? 0 : WNOHANG));

		if (r < 0 && errno == EINTR)
			continue;
		if (r != 0)
			luo->reaper_pid = 0; /* reaped, or not our child: forget it */
		return;
	}
}

/* ------------------------------------------------------------------------ */
/* The transports (transport.h): walked in table order                      */

#define TRANSPORT_STATE_ALIGN _Alignof(max_align_t)

static size_t state_align(size_t size)
{
	return (size + TRANSPORT_STATE_ALIGN - 1) & ~(TRANSPORT_STATE_ALIGN - 1);
}

/* struct luo with every transport's state after it, zeroed, one allocation. */
static struct luo *luo_alloc(void)
{
	size_t size = state_align(sizeof(struct luo));
	struct luo *luo;
	char *p;

	for (size_t i = 0; i < LUO_TRANSPORT_COUNT; i++)
		size += state_align(luo_transports[i]->state_size);
	luo = calloc(1, size);
	if (!luo)
		return NULL;
	p = (char *)luo + state_align(sizeof(struct luo));
	for (size_t i = 0; i < LUO_TRANSPORT_COUNT; i++) {
		luo->transport[i] = p;
		p += state_align(luo_transports[i]->state_size);
	}
	return luo;
}

#define TRANSPORTS_CALL(hook, ...)                                        \
	do {                                                              \
		for (size_t i_ = 0; i_ < LUO_TRANSPORT_COUNT; i_++)       \
			if (luo_transports[i_]->hook)                     \
				luo_transports[i_]->hook(__VA_ARGS__);    \
	} while (0)

void luo_transports_exec_env(struct luo *luo, char **envp)
{
	TRANSPORTS_CALL(exec_env, luo, envp);
}

void luo_transports_exec_undo(struct luo *luo)
{
	TRANSPORTS_CALL(exec_undo, luo);
}

void luo_transports_detach(struct luo *luo)
{
	TRANSPORTS_CALL(detach, luo);
}

/*
 * luo_open(): each transport adopts what an exec brought it, in table order
 * (the control socket, then the handover: a rollback passes the control
 * socket on). The first error is the handover's refusal.
 */
static int transports_adopt(struct luo *luo, unsigned int flags, int registry_error)
{
	const struct luo_adopt_args args = {
		.flags = flags,
		.registry_error = registry_error,
		.exec_env = luo_transports_exec_env,
		.exec_undo = luo_transports_exec_undo,
	};
	int r = 0;

	for (size_t i = 0; i < LUO_TRANSPORT_COUNT; i++) {
		int k = luo_transports[i]->adopt ? luo_transports[i]->adopt(luo, &args) : 0;

		if (r == 0)
			r = k;
	}
	return r;
}

/* luo_close(): the transports closed, last first. */
static void transports_close(struct luo *luo)
{
	for (size_t i = LUO_TRANSPORT_COUNT; i-- > 0;)
		if (luo_transports[i]->close)
			luo_transports[i]->close(luo);
}

/* A session the exec handover did not bring: the first transport that has it. */
static int transports_retrieve(struct luo *luo, const char *name, struct luo_session **ret)
{
	int r = -ENOENT;

	for (size_t i = 0; i < LUO_TRANSPORT_COUNT && r == -ENOENT; i++)
		if (luo_transports[i]->retrieve)
			r = luo_transports[i]->retrieve(luo, name, ret);
	return r;
}

/* luo_close(): the component registry compacted, the open mark dropped. */
static void registry_release(void)
{
	luo_registry_lock();
	luo_components_compact_locked();
	luo_registry_release_locked();
	luo_registry_unlock();
}

/* ------------------------------------------------------------------------ */
/* The handle                                                                */

int luo_open(unsigned int flags, struct luo **ret_luo)
{
	struct luo *luo;
	int r, registry_error;

	LUO_FAULT_POINT("open-start");
	if (!ret_luo || (flags & ~(unsigned int)(LUO_OPEN_FRESH_ON_ERROR | LUO_OPEN_NO_ROLLBACK | LUO_OPEN_AGENT |
					      LUO_OPEN_NO_REAPER | LUO_OPEN_STRICT_TYPES)))
		return -EINVAL;
	luo = luo_alloc();
	if (!luo)
		return -ENOMEM;
	r = luo_registry_hold();
	if (r < 0) {
		free(luo);
		return r;
	}
	pthread_mutex_init(&luo->lock, NULL);
	{
		pthread_mutexattr_t a;

		pthread_mutexattr_init(&a);
		pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
		pthread_mutex_init(&luo->update_lock, &a);
		pthread_mutexattr_destroy(&a);
	}
	TRANSPORTS_CALL(init, luo);
	luo->no_reaper = flags & LUO_OPEN_NO_REAPER;
	luo->strict_types = flags & LUO_OPEN_STRICT_TYPES;
	luo_components_status_reset(luo);
	/*
	 * A broken component registry fails luo_open() whatever the flags,
	 * but only after the handover was looked at: it is consumed (or
	 * rolled back to the image that wrote it), not left to children.
	 */
	registry_error = luo_components_error(NULL, 0);
	luo->t_open_start = luo_now_ns();
	luo->open_pid = getpid();
	if (luo_secure_exec())
		luo_env_scrub();
	r = transports_adopt(luo, flags, registry_error);
	if (registry_error < 0) {
		luo_close(luo);
		return registry_error;
	}
	if (r < 0) {
		if (!(flags & LUO_OPEN_FRESH_ON_ERROR)) {
			luo_close(luo);
			return r;
		}
		luo->incoming_error = r;
	}
	luo->t_open_end = luo_now_ns();
	TRANSPORTS_CALL(open, luo, flags);
	LUO_FAULT_POINT("after-open");
	*ret_luo = luo;
	return 0;
}

void luo_close(struct luo *luo)
{
	if (luo_in_callback())
		return; /* a component callback: the lock is held (luo.h) */
	if (!luo)
		return;
	pthread_mutex_lock(&luo->lock);
	transports_close(luo);
	luo_sessions_free(luo);
	luo_file_index_free(luo);
	free(luo->sessions);
	free(luo->report);
	luo_reaper_reap(luo, false); /* no waiting out its delay: at worst a zombie until exit */
	pthread_mutex_unlock(&luo->lock);
	pthread_mutex_destroy(&luo->lock);
	pthread_mutex_destroy(&luo->update_lock);
	free(luo);
	registry_release();
}

uint64_t luo_liveupdate_number(const struct luo *luo)
{
	return luo ? luo->lu_number : 0;
}

bool luo_is_incoming(const struct luo *luo)
{
	return luo && luo->incoming;
}

int luo_incoming_error(const struct luo *luo, const char **ret_reason)
{
	if (!luo)
		return -EINVAL;
	if (ret_reason)
		*ret_reason = luo->incoming_error ? luo->incoming_reason : "";
	return luo->incoming_error;
}

int luo_rollback(const struct luo *luo, const char **ret_reason)
{
	if (!luo)
		return -EINVAL;
	if (ret_reason)
		*ret_reason = luo->rollback_error ? luo->rollback_reason : "";
	return luo->rollback_error;
}

int luo_ready(struct luo *luo)
{
	if (luo_in_callback())
		return -EDEADLK; /* a component callback: the lock is held (luo.h) */
	if (!luo)
		return -EINVAL;
	pthread_mutex_lock(&luo->lock);
	if (!luo->ready) {
		luo->t_ready = luo_now_ns();
		luo->ready = true;
	}
	luo_reaper_reap(luo, false);
	pthread_mutex_unlock(&luo->lock);
	{
		struct luo_timings t;
		int r = luo_timings(luo, &t);

		TRANSPORTS_CALL(ready, luo, r, &t); /* an update asked by luoctl: its answer */
	}
	LUO_FAULT_POINT("after-ready");
	return 0;
}

static uint64_t span(uint64_t from, uint64_t to)
{
	return from && to >= from ? to - from : 0;
}

int luo_timings(const struct luo *cluo, struct luo_timings *ret_timings)
{
	/* The lock guards the handle's state; reading it does not change it. */
	struct luo *luo = (struct luo *)cluo;
	int r = 0;

	if (luo_in_callback())
		return -EDEADLK; /* a component callback: the lock is held (luo.h) */
	if (!luo || !ret_timings)
		return -EINVAL;
	pthread_mutex_lock(&luo->lock);
	if (!luo->incoming)
		r = -ENODATA;
	else if (!luo->ready)
		r = -EBUSY;
	if (r < 0) {
		pthread_mutex_unlock(&luo->lock);
		return r;
	}
	*ret_timings = (struct luo_timings){
		.freeze_ns = span(luo->t_freeze, luo->t_serialize),
		.serialize_ns = span(luo->t_serialize, luo->t_exec),
		.exec_ns = span(luo->t_exec, luo->t_open_start),
		.restore_ns = span(luo->t_open_start, luo->t_open_end),
		.ready_ns = span(luo->t_open_end, luo->t_ready),
		.blackout_ns = span(luo->t_freeze, luo->t_ready),
	};
	pthread_mutex_unlock(&luo->lock);
	return 0;
}

int luo_session_retrieve(struct luo *luo, const char *name, struct luo_session **ret_session)
{
	struct luo_session *s;
	int r = 0;

	if (luo_in_callback())
		return -EDEADLK; /* a component callback: the lock is held (luo.h) */
	if (!luo || !ret_session || !luo_name_valid(name, LUO_SESSION_NAME_MAX))
		return -EINVAL;
	pthread_mutex_lock(&luo->lock);
	s = luo_session_find(luo, name);
	if (!s) /* not in the exec handover: LUO_OPEN_AGENT asks the agent */
		r = transports_retrieve(luo, name, &s);
	else if (!s->incoming)
		r = -ENOENT;
	else if (s->retrieved)
		r = -EINVAL;
	else
		s->retrieved = true;
	pthread_mutex_unlock(&luo->lock);
	if (r == 0)
		*ret_session = s;
	return r;
}
