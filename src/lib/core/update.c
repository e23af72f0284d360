/* SPDX-License-Identifier: MIT */
/*
 * DOC: exec handover, the switch
 *
 * luo_update() runs with the handle's lock held from the first freeze to
 * execve(), so nothing is preserved or unpreserved under it:
 *
 *   check  @path is an executable regular file    (nothing changed yet)
 *   read @path's manifest and this image's, negotiate: refused, nothing changed
 *   start the mm reaper (below, unless turned off): a child process that
 *     costs 0.15-0.2 ms to start
 *   the caller's quiesce, if any (luo_update_quiesced(): the control
 *     socket's; everything above runs while the service still serves)
 *   negotiate again (what is present may have changed): refused, resumed
 *   freeze every outgoing file, in order           blackout starts
 *   save every component at its negotiated version
 *   serialize the blob, into a memfd, sealed       all-or-nothing
 *   clear close-on-exec on the preserved fds and the blob, nothing else
 *   execve()
 *
 * If any step fails, the steps done are undone in reverse -- close-on-exec
 * set again, blob closed, files unfrozen last first, the reaper told to
 * go -- and the error is returned: the service keeps running with its
 * sessions as they were.
 */

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "core.h"
#include "manifest.h"

#define ENV_NUM_MAX 64

extern char **environ;

struct handover_env {
	char **envp;
	char fd_entry[sizeof(LUO_HANDOVER_FD_ENV) + ENV_NUM_MAX];
	char exec_entry[sizeof(LUO_ABI_EXEC_NS_ENV) + ENV_NUM_MAX];
	char reaper_entry[sizeof(LUO_ABI_REAPER_ENV) + ENV_NUM_MAX];
};

/* Copy @envp without our variables, then ours, with room for the transports' entries. */
static int env_build(struct handover_env *he, char *const envp[])
{
	char *const ours[] = { he->fd_entry, he->exec_entry, he->reaper_entry };

	return luo_exec_env_build(envp, ours, ARRAY_SIZE(ours), &he->envp);
}

static void freeze_undo(struct luo *luo)
{
	for (size_t i = luo->n_sessions; i-- > 0;)
		luo_session_unfreeze_locked(luo->sessions[i]);
}

static int freeze_all(struct luo *luo)
{
	for (size_t i = 0; i < luo->n_sessions; i++) {
		int r;

		if (luo->sessions[i]->incoming)
			continue;
		r = luo_session_freeze_locked(luo->sessions[i]);
		if (r < 0) {
			freeze_undo(luo);
			return r;
		}
	}
	return 0;
}

/* Set close-on-exec back on every outgoing fd (a no-op where it is set). */
static void cloexec_restore(struct luo *luo)
{
	for (size_t i = 0; i < luo->n_sessions; i++)
		for (size_t j = 0; !luo->sessions[i]->incoming && j < luo->sessions[i]->n_files; j++)
			luo_set_cloexec(luo->sessions[i]->files[j]->fd, true);
}

static int cloexec_clear(struct luo *luo)
{
	for (size_t i = 0; i < luo->n_sessions; i++) {
		struct luo_session *s = luo->sessions[i];

		for (size_t j = 0; !s->incoming && j < s->n_files; j++) {
			int r = luo_set_cloexec(s->files[j]->fd, false);

			if (r < 0) {
				cloexec_restore(luo);
				return r;
			}
		}
	}
	return 0;
}

struct present_ctx {
	const struct luo *luo;
	const struct luo_component **components;
	size_t n_components;
};

/* Is @e in the outgoing state: a component, a handler with files, the format. */
static bool is_present(const struct luo_manifest_entry *e, void *data)
{
	const struct present_ctx *ctx = data;

	switch (e->kind) {
	case LUO_ABI_KIND_COMPONENT:
		for (size_t i = 0; i < ctx->n_components; i++)
			if (strcmp(ctx->components[i]->name, e->name) == 0)
				return true;
		return false;
	case LUO_ABI_KIND_HANDLER:
		for (size_t i = 0; i < ctx->luo->n_sessions; i++) {
			const struct luo_session *s = ctx->luo->sessions[i];

			for (size_t j = 0; !s->incoming && j < s->n_files; j++)
				if (strcmp(s->files[j]->handler->name, e->name) == 0)
					return true;
		}
		return false;
	}
	return true;
}

/*
 * This image's manifest: its notes in memory, plus what was registered at
 * run time without a note (handlers, components), as the registry has it.
 */
static int self_manifest(struct luo_manifest **ret, const struct luo_component **components, size_t n_components)
{
	_cleanup_(luo_manifest_freep) struct luo_manifest *m = NULL;
	const struct luo_file_handler *handlers[LUO_HANDLERS_MAX + LUO_HANDLERS_BUILTIN];
	size_t n_handlers = luo_handlers_list(handlers, ARRAY_SIZE(handlers));
	char reason[LUO_REASON_MAX];
	int r;

	r = luo_manifest_read_self(&m, reason, sizeof(reason));
	if (r < 0)
		return r == -ENOMEM ? r : -EINVAL;
	for (size_t i = 0; i < n_handlers; i++) {
		struct luo_manifest_entry e = { .kind = LUO_ABI_KIND_HANDLER };

		if (luo_manifest_find(m, e.kind, handlers[i]->name))
			continue;
		snprintf(e.name, sizeof(e.name), "%s", handlers[i]->name);
		e.read = e.write = (struct luo_version_range){ handlers[i]->version, handlers[i]->version };
		r = luo_manifest_add_entry(m, &e, "registry", reason, sizeof(reason));
		if (r < 0)
			return r == -ENOMEM ? r : -EINVAL;
	}
	for (size_t i = 0; i < n_components; i++) {
		const struct luo_component *c = components[i];
		struct luo_manifest_entry e = { .kind = LUO_ABI_KIND_COMPONENT, .flags = c->flags };

		if (luo_manifest_find(m, e.kind, c->name))
			continue;
		snprintf(e.name, sizeof(e.name), "%s", c->name);
		e.read = (struct luo_version_range){ c->read_min, c->read_max };
		e.write = (struct luo_version_range){ c->write_min, c->write_max };
		r = luo_manifest_add_entry(m, &e, "registry", reason, sizeof(reason));
		if (r < 0)
			return r == -ENOMEM ? r : -EINVAL;
	}
	for (size_t i = 0; i < n_components; i++) {
		const struct luo_component_state *st = luo_fields_of(components[i]);

		r = st ? luo_manifest_add_state(m, st, reason, sizeof(reason)) : 0;
		if (r < 0)
			return r == -ENOMEM ? r : -EINVAL;
	}
	*ret = TAKE_PTR(m);
	return 0;
}

/*
 * LUO_OPEN_STRICT_TYPES: a component downgraded for a type mismatch, or
 * with unproven types, refuses the update instead; with @drops (an update
 * asked with LUO_CONTROL_UPDATE_STRICT, as luoctl check --strict answers),
 * a dropped component too. True if one did.
 */
static bool strict_refuse(struct luo_report_entry *rep, size_t n, bool drops)
{
	bool refused = false;

	for (size_t i = 0; i < n; i++) {
		struct luo_report_entry *e = &rep[i];
		char why[LUO_REPORT_WHY_SIZE];

		if (e->kind != LUO_ABI_KIND_COMPONENT)
			continue;
		if (e->verdict != LUO_VERDICT_DOWNGRADE &&
		    !(e->verdict == LUO_VERDICT_USE && e->types == LUO_TYPES_UNPROVEN) &&
		    !(drops && e->verdict == LUO_VERDICT_DROP))
			continue;
		memcpy(why, e->why, sizeof(why));
		snprintf(e->why, sizeof(e->why), "strict: %.*s", (int)sizeof(e->why) - 9, why);
		e->verdict = LUO_VERDICT_REFUSE;
		e->cause = LUO_CAUSE_STRICT;
		e->version = 0;
		refused = true;
	}
	return refused;
}

/*
 * The two manifests negotiation compares, read before the quiesce (reading
 * them is most of an update's cost before the freeze: 0.5-0.8 ms for
 * kvcache): @path's, and this image's with what @components registered.
 */
static int read_manifests(const char *path, const struct luo_component **components, size_t n_components,
			  struct luo_manifest **ret_old, struct luo_manifest **ret_new)
{
	_cleanup_(luo_manifest_freep) struct luo_manifest *old = NULL, *new = NULL;
	char reason[LUO_REASON_MAX];
	int r;

	r = luo_manifest_read_file(path, &new, reason, sizeof(reason));
	if (r == -EBADMSG)
		r = -ENOEXEC;
	if (r < 0)
		return r;
	r = self_manifest(&old, components, n_components);
	if (r < 0)
		return r;
	*ret_old = TAKE_PTR(old);
	*ret_new = TAKE_PTR(new);
	return 0;
}

/*
 * Negotiate @old against @new; keep the report in @luo; fill @outs, one
 * per registered component, with its verdict. Lock held: what is present
 * (handlers with files) is read now, after the quiesce.
 */
static int negotiate(struct luo *luo, const struct luo_manifest *old, const struct luo_manifest *new,
		     const struct luo_component **components, size_t n_components, struct luo_component_out *outs)
{
	struct present_ctx ctx = { luo, components, n_components };
	struct luo_report_entry *rep = NULL;
	size_t n_rep = 0;
	int verdict;

	verdict = luo_negotiate(old, new, is_present, &ctx, &rep, &n_rep);
	if (verdict == -ENOMEM)
		return verdict;
	if (luo->strict_types || luo->strict_once)
		verdict = strict_refuse(rep, n_rep, luo->strict_once) ? -EPROTO : verdict;
	free(luo->report);
	luo->report = rep;
	luo->n_report = n_rep;
	for (size_t i = 0; i < n_components; i++) {
		outs[i].component = components[i];
		for (size_t j = 0; j < n_rep; j++) {
			if (rep[j].kind != LUO_ABI_KIND_COMPONENT || strcmp(rep[j].name, components[i]->name) != 0)
				continue;
			const struct luo_manifest_type *t;

			outs[i].dropped = rep[j].verdict != LUO_VERDICT_USE && rep[j].verdict != LUO_VERDICT_DOWNGRADE;
			outs[i].version = rep[j].version;
			t = luo_manifest_find_type(old, components[i]->name, rep[j].version, LUO_ABI_TYPE_PAYLOAD);
			outs[i].type_size = t ? t->size : 0;
			/* Properties to a reader that declares the fields; else the struct image (fields.c). */
			if (luo_manifest_find_fields(new, components[i]->name))
				outs[i].fields = luo_fields_of(components[i]);
		}
	}
	return verdict;
}

static void outs_free(struct luo_component_out *outs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(outs[i].payload.buf);
}

static int check_executable(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EACCES;
	if (access(path, X_OK) < 0)
		return -errno;
	return 0;
}

/*
 * The mm reaper. execve() tears down the old address space before the new
 * image runs, and that costs time in proportion to what is mapped (about
 * 16 ms per GiB of resident arena here): the blackout would grow with the
 * data. So the old address space gets a second user just before execve(),
 * and execve() then only drops a reference; the teardown runs in that
 * user, after the new image started. Two clone(CLONE_VM) steps, so that
 * the reaper holds nothing but memory and is nobody's business after the
 * exec:
 *
 *   this thread                 first child             the reaper
 *   clone(CLONE_VM) ----------> close every fd but the
 *                               pipe's read end
 *                               clone(CLONE_VM) ------> (born with one fd)
 *                               exit
 *   waitpid(first child)                               SCHED_IDLE
 *   execve()  (the pipe's write end closes) ---------> read: EOF, wait 100 ms,
 *                                                      exit: the old memory goes
 *
 * The wait for the first child comes before execve(): when the new image's
 * main() runs, no copy of the old fd table is left anywhere, so a
 * close-on-exec fd is closed as if there were no reaper (a pipe's reader
 * sees EOF at once). The reaper's parent exited before the exec: it is an
 * orphan, adopted and reaped by init (or the nearest subreaper: a process
 * that set PR_SET_CHILD_SUBREAPER gets it as a child, with SIGCHLD), never
 * a zombie of this process whatever the new image does. All signals are
 * blocked in both children (they share this image's memory, not its
 * handlers' assumptions). If any step fails, there is no reaper and the
 * teardown happens in execve(), as with LUO_OPEN_NO_REAPER or
 * LUO_NO_REAPER_ENV (valgrind cannot follow clone(CLONE_VM)).
 */
#define REAPER_STACK (64u << 10) /* per child; one mapping holds both stacks and the exit word */
/* How long the reaper waits after the exec before it lets the old memory go. */
#define REAPER_DELAY_NS (100 * 1000 * 1000)

/* At the base of the mapping: shared by the three, since CLONE_VM. */
struct reaper_shared {
	int rfd, wfd;
	volatile int born;  /* set by the first child once the reaper exists */
	volatile pid_t tid; /* the reaper's; the kernel clears it and wakes at its exit */
};

struct reaper {
	struct reaper_shared *sh; /* the mapping; NULL: no reaper */
};

static const struct timespec reaper_delay = { .tv_nsec = REAPER_DELAY_NS };

/*
 * The pipe's write end while a reaper waits for the exec, else -1. The
 * reaper starts before the freeze, so a callback -- or another thread of
 * the service -- may fork() before the exec: the child closes its copy at
 * once (pthread_atfork), or the reaper would wait for that child to exit
 * or exec, holding the old memory. A child made with a raw clone() keeps
 * it (luo_update() in luo.h says so).
 */
static int reaper_armed_wfd = -1;
static pthread_once_t reaper_atfork_once = PTHREAD_ONCE_INIT;

static void reaper_atfork_child(void)
{
	int fd = __atomic_exchange_n(&reaper_armed_wfd, -1, __ATOMIC_ACQ_REL);

	/* Forgotten too: the number may be reused here, and this child fork again. */
	if (fd >= 0)
		close(fd);
}

static void reaper_atfork_register(void)
{
	if (pthread_atfork(NULL, NULL, reaper_atfork_child) != 0) {
		/* Without it a forked child may only delay the teardown. */
	}
}

static int reaper_main(void *arg)
{
	struct reaper_shared *sh = arg;
	char c;
	long n;

	/*
	 * Raw syscalls only: this runs on the old image's memory and TLS, while
	 * the thread that called luo_update() goes on (a failing syscall() would
	 * write its errno). None of these fails: the fd is valid, all signals
	 * are blocked.
	 */
	do /* EOF: the old image's execve() closed the write end; a byte: it failed */
		n = syscall(SYS_read, sh->rfd, &c, 1);
	while (n < 0);
	/* Let the new image start before the teardown competes with it for memory bandwidth. */
	if (n == 0)
		syscall(SYS_nanosleep, &reaper_delay, NULL);
	syscall(SYS_exit, 0);
	return 0;
}

static int reaper_first_main(void *arg)
{
	struct reaper_shared *sh = arg;
	struct sched_param idle = { 0 };
	int rfd = sh->rfd;
	long pid;

	/*
	 * First, before anything else: drop every fd but the read end (the
	 * write end among them, or the read would never see EOF). Without
	 * close_range() (old kernel, seccomp) the copies cannot be dropped:
	 * no reaper then.
	 */
	if ((rfd > 0 && syscall(SYS_close_range, 0, (unsigned int)rfd - 1, 0) != 0) ||
	    syscall(SYS_close_range, (unsigned int)rfd + 1, ~0u, 0) != 0)
		syscall(SYS_exit, 1);
	/*
	 * The reaper inherits it: the teardown must not take CPU from the new
	 * image. Here, where the parent waits and does not read errno.
	 */
	syscall(SYS_sched_setscheduler, 0, SCHED_IDLE, &idle);
	pid = clone(reaper_main, (char *)sh + 2 * REAPER_STACK, CLONE_VM | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID,
		    sh, NULL, NULL, &sh->tid);
	sh->born = pid > 0; /* not errno: that is the parent's thread's too */
	syscall(SYS_exit, pid > 0 ? 0 : 1);
	return 0;
}

static bool reaper_wanted(const struct luo *luo)
{
	const char *v = luo_getenv(LUO_NO_REAPER_ENV);

	return !luo->no_reaper && !(v && *v && strcmp(v, "0") != 0);
}

/* Start the reaper; on any failure there is none (rp->sh NULL) and nothing is left. */
static void reaper_start(const struct luo *luo, struct reaper *rp)
{
	struct reaper_shared *sh;
	sigset_t all, old;
	int p[2], st = 0;
	pid_t first;

	rp->sh = NULL;
	if (!reaper_wanted(luo))
		return;
	pthread_once(&reaper_atfork_once, reaper_atfork_register);
	if (pipe2(p, O_CLOEXEC) < 0)
		return;
	/* Armed at once: a fork() in another thread from here on must not keep the write end. */
	__atomic_store_n(&reaper_armed_wfd, p[1], __ATOMIC_RELEASE);
	sh = mmap(NULL, 2 * REAPER_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (sh == MAP_FAILED) {
		__atomic_store_n(&reaper_armed_wfd, -1, __ATOMIC_RELEASE);
		close(p[0]);
		close(p[1]);
		return;
	}
	*sh = (struct reaper_shared){ .rfd = p[0], .wfd = p[1], .tid = -1 };
	/* Blocked until the first child is reaped, too: no EINTR, no errno it might share. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	first = clone(reaper_first_main, (char *)sh + REAPER_STACK, CLONE_VM, sh);
	if (first > 0 && waitpid(first, &st, __WCLONE) != first)
		first = 0; /* cannot happen; if it did, the child may still use the mapping: keep it */
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(p[0]);
	if (first <= 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || !sh->born) {
		/* No reaper was born (or the first child could not close its fds). */
		__atomic_store_n(&reaper_armed_wfd, -1, __ATOMIC_RELEASE);
		close(p[1]);
		if (first != 0)
			munmap(sh, 2 * REAPER_STACK);
		return;
	}
	rp->sh = sh;
}

/*
 * The update failed (or execve() did): a byte tells the reaper to go now;
 * its stack is in the mapping, so wait for its exit (the kernel clears
 * sh->tid) before unmapping.
 */
static void reaper_stop(struct reaper *rp)
{
	struct reaper_shared *sh = rp->sh;
	pid_t tid;

	if (!sh)
		return;
	__atomic_store_n(&reaper_armed_wfd, -1, __ATOMIC_RELEASE);
	if (write(sh->wfd, "x", 1) < 0) {
		/* it then sees EOF below and leaves after its delay */
	}
	close(sh->wfd);
	while ((tid = sh->tid) != 0)
		syscall(SYS_futex, &sh->tid, FUTEX_WAIT, tid, NULL, NULL, 0);
	munmap(sh, 2 * REAPER_STACK);
	rp->sh = NULL;
}

/* Serialize, hand over and exec; returns only on failure, all undone. */
static int switch_image(struct luo *luo, const char *path, char *const argv[], struct handover_env *he,
			const struct luo_blob_header *hdr_in)
{
	struct luo_blob_header hdr = *hdr_in;
	_cleanup_free_ void *blob = NULL;
	_cleanup_close_ int blob_fd = -1;
	size_t blob_len;
	int r;

	uint64_t t_exec;

	hdr.serialize_ns = luo_now_ns();
	r = luo_blob_build(luo, &hdr, &blob, &blob_len);
	if (r < 0)
		return r;
	LUO_FAULT_POINT("serialize-built");
	blob_fd = luo_blob_to_memfd("luo-handover", blob, blob_len);
	if (blob_fd < 0)
		return blob_fd;
	snprintf(he->fd_entry, sizeof(he->fd_entry), "%s=%d", LUO_HANDOVER_FD_ENV, blob_fd);
	r = cloexec_clear(luo);
	if (r < 0)
		return r;
	r = luo_set_cloexec(blob_fd, false);
	if (r < 0) {
		cloexec_restore(luo);
		return r;
	}
	luo_transports_exec_env(luo, he->envp); /* the control socket, and the connection that asked */
	/* Not this process's child any more: nothing for the new image to reap. */
	snprintf(he->reaper_entry, sizeof(he->reaper_entry), "%s=0", LUO_ABI_REAPER_ENV);
	t_exec = luo_now_ns();
	snprintf(he->exec_entry, sizeof(he->exec_entry), "%s=%llu", LUO_ABI_EXEC_NS_ENV, (unsigned long long)t_exec);
	luo_transports_detach(luo); /* the agent keeps the deposits across the exec */
	LUO_FAULT_POINT("before-exec");
	execve(path, argv, he->envp);
	r = -errno; /* at once: the reaper runs on this thread's memory */
	luo_transports_exec_undo(luo);
	cloexec_restore(luo);
	return r;
}

static int update_locked(struct luo *luo, const char *path, char *const argv[], char *const envp[],
			 int (*quiesce)(void *data), void (*resume)(void *data), void *data)
{
	struct handover_env he = { 0 };
	char self_path[PATH_MAX];
	uint8_t build_id[LUO_ABI_BUILD_ID_MAX];
	struct luo_blob_header hdr = { .producer_path = self_path, .build_id = build_id };
	const struct luo_component *components[LUO_COMPONENTS_MAX];
	size_t n_components = 0, n_listed = luo_components_list(components, ARRAY_SIZE(components));
	struct luo_component_out outs[LUO_COMPONENTS_MAX] = { 0 };
	_cleanup_(luo_manifest_freep) struct luo_manifest *old = NULL, *new = NULL;
	_cleanup_free_ char *self_argv_buf = NULL;
	_cleanup_free_ char **self_argv = NULL;
	struct reaper rp;
	int r;

	for (size_t i = 0; i < n_listed; i++) /* skip components unloaded since luo_open() */
		if (components[i])
			components[n_components++] = components[i];
	/* The report is this call's: none until negotiation runs. */
	pthread_mutex_lock(&luo->lock);
	free(luo->report);
	luo->report = NULL;
	luo->n_report = 0;
	pthread_mutex_unlock(&luo->lock);
	r = check_executable(path);
	if (r < 0)
		return r;
	r = luo_self_path(self_path, sizeof(self_path));
	if (r < 0)
		return r;
	r = luo_self_argv(&self_argv_buf, &self_argv);
	if (r < 0)
		return r;
	hdr.argv = self_argv;
	luo_self_build_id(build_id, sizeof(build_id), &hdr.build_id_len);
	{
		char *const empty[] = { NULL }; /* clearenv() leaves environ NULL */

		r = env_build(&he, envp ? envp : environ ? environ : empty);
	}
	if (r == 0)
		r = read_manifests(path, components, n_components, &old, &new);
	if (r == 0) {
		/*
		 * A first negotiation, before the quiesce: a refused update
		 * never pauses the service. What is present may change until
		 * the freeze, so the one after the quiesce decides.
		 */
		pthread_mutex_lock(&luo->lock);
		luo_reaper_reap(luo, true); /* a reaper handed on by a rollback: it may take a while */
		r = negotiate(luo, old, new, components, n_components, outs);
		pthread_mutex_unlock(&luo->lock);
	}
	if (r < 0) {
		free(he.envp);
		return r;
	}
	reaper_start(luo, &rp); /* before the quiesce and the blackout */
	r = quiesce ? quiesce(data) : 0;
	if (r < 0) {
		reaper_stop(&rp);
		free(he.envp);
		return r;
	}

	pthread_mutex_lock(&luo->lock);
	memset(outs, 0, sizeof(outs));
	r = negotiate(luo, old, new, components, n_components, outs);
	if (r == 0) {
		hdr.components = outs;
		hdr.n_components = n_components;
		hdr.lu_number = luo->lu_number + 1;
		hdr.freeze_ns = luo_now_ns();
		r = freeze_all(luo);
		if (r == 0) {
			LUO_FAULT_POINT("after-freeze");
			r = luo_components_save(outs, n_components);
			if (r == 0)
				r = switch_image(luo, path, argv, &he, &hdr);
			freeze_undo(luo);
		}
	}
	pthread_mutex_unlock(&luo->lock);
	reaper_stop(&rp);
	outs_free(outs, n_components);
	free(he.envp);
	if (quiesce && resume)
		resume(data);
	return r;
}

int luo_update_quiesced(struct luo *luo, const char *path, char *const argv[], char *const envp[],
			int (*quiesce)(void *data), void (*resume)(void *data), void *data)
{
	int r;

	if (luo_in_callback())
		return -EDEADLK; /* a component callback: the lock is held (luo.h) */
	if (!luo || !path || !argv || !argv[0])
		return -EINVAL;
	/* A child of fork() with its parent's handle: the sessions, arenas and components are the parent's. */
	if (luo->open_pid != getpid())
		return -EPERM;
	r = -pthread_mutex_lock(&luo->update_lock); /* another update waits; from our own quiesce: -EDEADLK */
	if (r < 0)
		return r;
	r = update_locked(luo, path, argv, envp, quiesce, resume, data);
	pthread_mutex_unlock(&luo->update_lock);
	return r;
}

int luo_update(struct luo *luo, const char *path, char *const argv[], char *const envp[])
{
	return luo_update_quiesced(luo, path, argv, envp, NULL, NULL, NULL);
}

int luo_update_quiescing(struct luo *luo, const char *path, char *const argv[], char *const envp[],
			 int (*quiesce)(void *userdata), void (*resume)(void *userdata), void *userdata)
{
	if (!quiesce || !resume)
		return -EINVAL;
	return luo_update_quiesced(luo, path, argv, envp, quiesce, resume, userdata);
}

int luo_update_report(const struct luo *cluo, const struct luo_report_entry **ret_entries, size_t *ret_n)
{
	struct luo *luo = (struct luo *)cluo; /* the lock only guards reading */
	int r = -ENODATA;

	if (luo_in_callback())
		return -EDEADLK; /* a component callback: the lock is held (luo.h) */
	if (!luo || !ret_entries || !ret_n)
		return -EINVAL;
	pthread_mutex_lock(&luo->lock);
	if (luo->report) { /* never empty: negotiation always reports the format */
		*ret_entries = luo->report;
		*ret_n = luo->n_report;
		r = 0;
	}
	pthread_mutex_unlock(&luo->lock);
	return r;
}
