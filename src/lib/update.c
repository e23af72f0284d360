/* SPDX-License-Identifier: MIT */
/*
 * DOC: exec handover, the switch
 *
 * luo_update() runs with the handle's lock held from the first freeze to
 * execve(), so nothing is preserved or unpreserved under it:
 *
 *   check  @path is an executable regular file    (nothing changed yet)
 *   negotiate with @path's manifest (negotiate.c)  refused: nothing changed
 *   freeze every outgoing file, in order           blackout starts
 *   save every component at its negotiated version
 *   serialize the blob, into a memfd, sealed       all-or-nothing
 *   clear close-on-exec on the preserved fds and the blob, nothing else
 *   start the mm reaper (below), execve()
 *
 * If any step fails, the steps done are undone in reverse -- close-on-exec
 * set again, blob closed, files unfrozen last first -- and the error is
 * returned: the service keeps running with its sessions as they were.
 */

#include <errno.h>
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
#include "luo-internal.h"
#include "manifest.h"

#define BLOB_SEALS (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
#define ENV_NUM_MAX 64

extern char **environ;

struct handover_env {
	char **envp;
	char fd_entry[sizeof(LUO_HANDOVER_FD_ENV) + ENV_NUM_MAX];
	char exec_entry[sizeof(LUO_ABI_EXEC_NS_ENV) + ENV_NUM_MAX];
	char reaper_entry[sizeof(LUO_ABI_REAPER_ENV) + ENV_NUM_MAX];
};

bool luo_env_is_ours(const char *entry)
{
	static const char *const names[] = { LUO_HANDOVER_FD_ENV "=", LUO_ABI_EXEC_NS_ENV "=",
					     LUO_ABI_ROLLBACK_ENV "=", LUO_ABI_REAPER_ENV "=",
					     LUO_ABI_CONTROL_FD_ENV "=", LUO_ABI_CONTROL_LISTEN_FD_ENV "=" };

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strncmp(entry, names[i], strlen(names[i])) == 0)
			return true;
	return false;
}

/* Copy @envp without our variables, with room for them at the end. */
static int env_build(struct handover_env *he, char *const envp[])
{
	size_t n = 0, k = 0;

	while (envp[n])
		n++;
	he->envp = calloc(n + 6, sizeof(*he->envp)); /* + ours, two for control.c, NULL */
	if (!he->envp)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (!luo_env_is_ours(envp[i]))
			he->envp[k++] = envp[i];
	he->envp[k++] = he->fd_entry;
	he->envp[k++] = he->exec_entry;
	he->envp[k++] = he->reaper_entry;
	he->envp[k] = NULL;
	return 0;
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
	*ret = TAKE_PTR(m);
	return 0;
}

/*
 * Negotiate with @path's manifest; keep the report in @luo; fill @outs,
 * one per registered component, with its verdict. Lock held.
 */
static int negotiate(struct luo *luo, const char *path, const struct luo_component **components, size_t n_components,
		     struct luo_component_out *outs)
{
	_cleanup_(luo_manifest_freep) struct luo_manifest *old = NULL, *new = NULL;
	struct present_ctx ctx = { luo, components, n_components };
	struct luo_report_entry *rep = NULL;
	char reason[LUO_REASON_MAX];
	size_t n_rep = 0;
	int r, verdict;

	r = luo_manifest_read_file(path, &new, reason, sizeof(reason));
	if (r == -EBADMSG)
		r = -ENOEXEC;
	if (r < 0)
		return r;
	r = self_manifest(&old, components, n_components);
	if (r < 0)
		return r;
	verdict = luo_negotiate(old, new, is_present, &ctx, &rep, &n_rep);
	if (verdict == -ENOMEM)
		return verdict;
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
		}
	}
	return verdict;
}

/* Each component writes its payload at its version. Lock held. */
static int save_components(struct luo_component_out *outs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int r;

		if (outs[i].dropped)
			continue;
		r = outs[i].component->save(outs[i].version, &outs[i].payload);
		if (r > 0 || r < -4095)
			r = -EINVAL; /* not an errno: do not pass it on as one */
		if (r == 0)
			r = outs[i].payload.error; /* a failed write the save ignored */
		/*
		 * A payload is one value of its declared type or an array of
		 * them: another length is another struct than the one the
		 * compiler described, and the new image would misread it.
		 */
		if (r == 0 && outs[i].type_size && outs[i].payload.len % outs[i].type_size != 0)
			r = -EPROTO;
		if (r < 0)
			return r;
	}
	return 0;
}

static void outs_free(struct luo_component_out *outs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(outs[i].payload.buf);
}

/* A memfd holding @buf, sealed as a handover blob is (also a deposit's, agent-client.c). */
int luo_blob_to_memfd(const char *name, const void *buf, size_t len)
{
	_cleanup_close_ int fd = -1;
	size_t off = 0;

	fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	while (off < len) {
		ssize_t n = write(fd, (const char *)buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		off += (size_t)n;
	}
	LUO_FAULT_POINT(strcmp(name, "luo-deposit") == 0 ? "deposit-unsealed" : "serialize-unsealed");
	if (fcntl(fd, F_ADD_SEALS, BLOB_SEALS) < 0)
		return -errno;
	return TAKE_FD(fd);
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
 * data. So the old address space gets a second user just before execve():
 * a clone(CLONE_VM) child that only waits for the handover pipe's write
 * end to close (it is close-on-exec in the old image). execve() then only
 * drops a reference, and the teardown runs in the child, after the new
 * image started. The child closes every fd it inherited but that pipe, so
 * it holds nothing but memory; its exit signal is 0 and the new image
 * reaps it (LUO_ABI_REAPER_ENV, luo_ready()/luo_close()).
 */
#define REAPER_STACK (64u << 10)
/* How long the reaper waits after the exec before it lets the old memory go. */
#define REAPER_DELAY_NS (100 * 1000 * 1000)

struct reaper {
	pid_t pid;
	int wfd;
	void *stack;
};

static const struct timespec reaper_delay = { .tv_nsec = REAPER_DELAY_NS };

/* The child's pipe ends, packed in clone()'s argument. */
#define REAPER_ARG(rfd, wfd) ((void *)(((uintptr_t)(unsigned int)(wfd) << 32) | (unsigned int)(rfd)))

static int reaper_main(void *arg)
{
	int rfd = (int)((uintptr_t)arg & 0xffffffffu), wfd = (int)((uintptr_t)arg >> 32);
	struct sched_param idle = { 0 };
	char c;
	long n;

	/*
	 * Raw syscalls only: this runs on the old image's memory and TLS.
	 * Drop every fd but the read end: the write end first, or the read
	 * would never see EOF. Without close_range() (old kernel, seccomp) the
	 * copies of the other fds cannot be dropped: leave at once, and the
	 * teardown happens in execve() as it would without a reaper.
	 */
	syscall(SYS_close, wfd);
	if ((rfd > 0 && syscall(SYS_close_range, 0, (unsigned int)rfd - 1, 0) != 0) ||
	    syscall(SYS_close_range, (unsigned int)rfd + 1, ~0u, 0) != 0)
		syscall(SYS_exit, 0);
	/* The teardown must not take CPU time from the new image. */
	syscall(SYS_sched_setscheduler, 0, SCHED_IDLE, &idle);
	do /* EOF: the old image's execve() closed the write end; a byte: it failed */
		n = syscall(SYS_read, rfd, &c, 1);
	while (n < 0);
	/* Let the new image start before the teardown competes with it for memory bandwidth. */
	if (n == 0)
		syscall(SYS_nanosleep, &reaper_delay, NULL);
	syscall(SYS_exit, 0);
	return 0;
}

static void reaper_start(struct reaper *rp)
{
	int p[2];

	rp->pid = -1;
	rp->wfd = -1;
	rp->stack = NULL;
	if (pipe2(p, O_CLOEXEC) < 0)
		return;
	rp->stack = mmap(NULL, REAPER_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (rp->stack == MAP_FAILED) {
		rp->stack = NULL;
	} else {
		rp->pid = clone(reaper_main, (char *)rp->stack + REAPER_STACK, CLONE_VM, REAPER_ARG(p[0], p[1]));
		if (rp->pid < 0) {
			munmap(rp->stack, REAPER_STACK);
			rp->stack = NULL;
		}
	}
	close(p[0]);
	if (rp->pid < 0)
		close(p[1]);
	else
		rp->wfd = p[1];
}

/* execve() failed: a byte tells the child to go now; we reap it and take the stack back. */
static void reaper_stop(struct reaper *rp)
{
	if (rp->pid < 0)
		return;
	if (write(rp->wfd, "x", 1) < 0) {
		/* it then sees EOF below and leaves after its delay */
	}
	close(rp->wfd);
	while (waitpid(rp->pid, NULL, __WCLONE) < 0 && errno == EINTR)
		;
	munmap(rp->stack, REAPER_STACK);
	rp->pid = -1;
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
	struct reaper rp;

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
	luo_control_exec_env(luo, he->envp); /* the control socket, and the connection that asked */
	reaper_start(&rp);
	snprintf(he->reaper_entry, sizeof(he->reaper_entry), "%s=%d", LUO_ABI_REAPER_ENV, (int)rp.pid);
	t_exec = luo_now_ns();
	snprintf(he->exec_entry, sizeof(he->exec_entry), "%s=%llu", LUO_ABI_EXEC_NS_ENV, (unsigned long long)t_exec);
	luo_agent_detach_locked(luo); /* the agent keeps the deposits across the exec */
	LUO_FAULT_POINT("before-exec");
	execve(path, argv, he->envp);
	r = -errno; /* at once: the reaper runs on this thread's memory */
	reaper_stop(&rp);
	luo_control_exec_undo(luo);
	cloexec_restore(luo);
	return r;
}

int luo_update(struct luo *luo, const char *path, char *const argv[], char *const envp[])
{
	struct handover_env he = { 0 };
	char self_path[PATH_MAX];
	uint8_t build_id[LUO_ABI_BUILD_ID_MAX];
	struct luo_blob_header hdr = { .producer_path = self_path, .build_id = build_id };
	const struct luo_component *components[LUO_COMPONENTS_MAX];
	size_t n_components = 0, n_listed = luo_components_list(components, ARRAY_SIZE(components));
	struct luo_component_out outs[LUO_COMPONENTS_MAX] = { 0 };
	_cleanup_free_ char *self_argv_buf = NULL;
	_cleanup_free_ char **self_argv = NULL;
	int r;

	if (!luo || !path || !argv || !argv[0])
		return -EINVAL;
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
	if (r < 0)
		return r;

	pthread_mutex_lock(&luo->lock);
	luo_reaper_reap(luo, true);
	r = negotiate(luo, path, components, n_components, outs);
	if (r == 0) {
		hdr.components = outs;
		hdr.n_components = n_components;
		hdr.lu_number = luo->lu_number + 1;
		hdr.freeze_ns = luo_now_ns();
		r = freeze_all(luo);
		if (r == 0) {
			LUO_FAULT_POINT("after-freeze");
			r = save_components(outs, n_components);
			if (r == 0)
				r = switch_image(luo, path, argv, &he, &hdr);
			freeze_undo(luo);
		}
	}
	pthread_mutex_unlock(&luo->lock);
	outs_free(outs, n_components);
	free(he.envp);
	return r;
}

int luo_update_report(const struct luo *cluo, const struct luo_report_entry **ret_entries, size_t *ret_n)
{
	struct luo *luo = (struct luo *)cluo; /* the lock only guards reading */
	int r = -ENODATA;

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
