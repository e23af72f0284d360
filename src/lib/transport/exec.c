/* SPDX-License-Identifier: MIT */
/*
 * DOC: the exec transport, incoming: the handover, or a rollback from it
 *
 * luo_open() (core.c) walks the transports' adopt hooks; this one looks for
 * the handover an exec brought (the outgoing side is luo_update(), update.c):
 *
 *   1. LUO_HANDOVER_FD (and LUO_HANDOVER_EXEC_NS) are read and removed from
 *      the environment, whatever follows, so that no child inherits them.
 *   2. The memfd they name must be a regular file no larger than
 *      LUO_ABI_BLOB_MAX, sealed against write, shrink and grow; it is
 *      mapped read-only and closed.
 *   3. blob-read.c checks the tree as hostile input.
 *   4. Every recorded file is adopted: its handler must exist (-ENOENT) at
 *      the recorded version (-EPROTO) with data of the exact size
 *      (-EBADMSG); its fd must be open (-EBADF), is made close-on-exec again,
 *      and must pass the handler's retrieve check (-EBADFD).
 *
 *   5. Every component in the blob is loaded by the registered component
 *      of that name, at the recorded version (which must be in its read
 *      range); a dropped one, or an optional one whose load fails, starts
 *      cold; a mandatory one whose load fails refuses the handover (-EIO).
 *
 * All-or-nothing: if any step fails, the handover is refused. Every file is
 * still checked, and the fds that pass are closed (they were certainly
 * ours); fds that fail a check are left alone, since they may be something
 * else of the process's. The caller gets the first error, or, with
 * LUO_OPEN_FRESH_ON_ERROR, a fresh-start handle that remembers it.
 *
 * Rollback comes before that cleanup: if the blob said who wrote it
 * (format 2), this image is not itself a rollback and the caller did not
 * pass LUO_OPEN_NO_ROLLBACK, the fds adopted so far get close-on-exec
 * cleared again and the producer binary is exec'd with its argv, the same
 * blob and LUO_HANDOVER_ROLLBACK="ERRNO:reason" -- only if the blob
 * records a build-id and the file at producer-path still has it (the file
 * was replaced: going back there would run a third binary; no build-id:
 * the path alone, chosen by whoever wrote the blob, would say what runs).
 * When the exec fails, the refusal goes on as above and the reason says why
 * no rollback happened.
 *
 * A secure-execution image (AT_SECURE: setuid, setgid, file capabilities)
 * reads none of these variables (util.c): it starts fresh, and luo_open()
 * removes them from its environment so that no child reads them either.
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
#include "transport.h"
#include "manifest.h"

extern char **environ;

static int adopt_sessions(struct luo *luo, const struct luo_blob *b, int handover_fd)
{
	int first = 0;

	for (size_t i = 0; i < b->n_sessions; i++) {
		const struct luo_blob_session *bs = &b->sessions[i];
		struct luo_session *s;
		int r;

		r = luo_session_new(luo, bs->name, true, &s);
		if (r < 0)
			return r; /* names were checked: only -ENOMEM */
		for (size_t j = 0; j < bs->n_files; j++) {
			/* Keep checking after a failure: what passes is closed. */
			char keep[LUO_REASON_MAX];

			memcpy(keep, luo->incoming_reason, sizeof(keep));
			r = luo_adopt_file(s, &bs->files[j], bs->files[j].fd, handover_fd, luo->incoming_reason,
					   sizeof(luo->incoming_reason));
			if (r < 0 && first == 0)
				first = r;
			else if (r < 0)
				memcpy(luo->incoming_reason, keep, sizeof(keep));
		}
	}
	return first;
}

static void reason_append(struct luo *luo, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reason_append(struct luo *luo, const char *fmt, ...)
{
	size_t len = strlen(luo->incoming_reason);
	va_list ap;

	if (len + 1 >= sizeof(luo->incoming_reason))
		return;
	va_start(ap, fmt);
	vsnprintf(luo->incoming_reason + len, sizeof(luo->incoming_reason) - len, fmt, ap);
	va_end(ap);
}

/* Set close-on-exec on (on) or off the fds adopted so far. */
static void adopted_cloexec(struct luo *luo, bool on)
{
	for (size_t i = 0; i < luo->n_sessions; i++)
		for (size_t j = 0; j < luo->sessions[i]->n_files; j++)
			if (luo->sessions[i]->files[j]->validated)
				luo_set_cloexec(luo->sessions[i]->files[j]->fd, on);
}

/*
 * Go back to the image that wrote @origin, handing it the same blob. Returns
 * only if that cannot be done, with the reason appended.
 */
static void rollback(struct luo *luo, const struct luo_adopt_args *args, const struct luo_blob *origin, int handover_fd,
		     int error)
{
	_cleanup_free_ char **envp = NULL;
	char fd_entry[sizeof(LUO_HANDOVER_FD_ENV) + 32];
	char reaper_entry[sizeof(LUO_ABI_REAPER_ENV) + 32];
	char rb_entry[sizeof(LUO_ABI_ROLLBACK_ENV) + 32 + LUO_REASON_MAX];
	uint8_t id[LUO_ABI_BUILD_ID_MAX];
	size_t id_len = 0;
	_cleanup_close_ int exe = -1;
	int r;

	/*
	 * No build-id, no rollback: without one the blob's path alone would
	 * choose what is exec'd, and whoever wrote the blob chooses the path.
	 */
	if (origin->build_id_len == 0) {
		reason_append(luo, "; no rollback: the handover records no build-id for its producer");
		return;
	}
	/* The file checked is the file exec'd: by fd, not by path twice. */
	exe = open(origin->producer_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (exe < 0) {
		reason_append(luo, "; no rollback: %s: %s", origin->producer_path, strerror(errno));
		return;
	}
	r = luo_elf_build_id_fd(exe, id, sizeof(id), &id_len);
	if (r == -ELIBACC || r == -ENOMEM) {
		/* Not a verdict on the file: its build-id could not be read (libelf missing, no memory). */
		reason_append(luo, "; no rollback: cannot read the build-id of %s: %s", origin->producer_path,
			      strerror(-r));
		return;
	}
	if (r < 0 || id_len != origin->build_id_len || memcmp(id, origin->build_id, id_len) != 0) {
		reason_append(luo, "; no rollback: %s is not the binary that wrote the handover",
			      origin->producer_path);
		return;
	}
	snprintf(fd_entry, sizeof(fd_entry), "%s=%d", LUO_HANDOVER_FD_ENV, handover_fd);
	r = snprintf(rb_entry, sizeof(rb_entry), "%s=%d:%s", LUO_ABI_ROLLBACK_ENV, -error, luo->incoming_reason);
	luo_reason_one_line(rb_entry);
	{
		char *const empty[] = { NULL }; /* clearenv() leaves environ NULL */
		char *const ours[] = { fd_entry, rb_entry, reaper_entry };

		if (luo->reaper_pid > 0) /* Same process: the old image reaps the reaper this image was left. */
			snprintf(reaper_entry, sizeof(reaper_entry), "%s=%d", LUO_ABI_REAPER_ENV, (int)luo->reaper_pid);
		if (luo_exec_env_build(environ ? environ : empty, ours, luo->reaper_pid > 0 ? 3 : 2, &envp) < 0) {
			reason_append(luo, "; no rollback: out of memory");
			return;
		}
	}
	args->exec_env(luo, envp); /* the other transports' (the control socket) */
	adopted_cloexec(luo, false);
	if (luo_set_cloexec(handover_fd, false) == 0)
		execveat(exe, "", (char *const *)origin->argv, envp, AT_EMPTY_PATH);
	r = errno;
	args->exec_undo(luo);
	luo_set_cloexec(handover_fd, true);
	adopted_cloexec(luo, true);
	reason_append(luo, "; rollback to %s failed: %s", origin->producer_path, strerror(r));
}

static void maybe_rollback(struct luo *luo, const struct luo_adopt_args *args, const struct luo_blob *origin,
			   int handover_fd, int error, bool allowed, bool came_back)
{
	if (!allowed)
		return;
	if (came_back)
		reason_append(luo, "; no rollback: this image is itself the rollback");
	else
		rollback(luo, args, origin, handover_fd, error);
}

static int read_env(const char *name, uint64_t max, uint64_t *ret, bool *present)
{
	const char *v = luo_getenv(name);
	int r;

	*present = v != NULL;
	if (!v)
		return 0;
	r = luo_parse_u64(v, max, ret);
	unsetenv(name);
	return r;
}

/* LUO_HANDOVER_ROLLBACK="ERRNO:reason": this image came back; read, removed. */
static bool read_rollback_env(struct luo *luo)
{
	const char *v = luo_getenv(LUO_ABI_ROLLBACK_ENV);
	const char *rest;
	uint64_t err;

	if (!v)
		return false;
	if (luo_parse_u64_colon(v, 4095, &err, &rest) == 0 && err > 0) {
		luo->rollback_error = -(int)err;
		snprintf(luo->rollback_reason, sizeof(luo->rollback_reason), "%s", rest);
	}
	if (!luo->rollback_error) {
		luo->rollback_error = -EIO;
		snprintf(luo->rollback_reason, sizeof(luo->rollback_reason), "(malformed %s)", LUO_ABI_ROLLBACK_ENV);
	}
	unsetenv(LUO_ABI_ROLLBACK_ENV);
	return true;
}

/* The transport's adopt hook (transport.h): the exec handover, or a rollback from it. */
static int exec_adopt(struct luo *luo, const struct luo_adopt_args *args)
{
	unsigned int flags = args->flags;
	int registry_error = args->registry_error;
	_cleanup_(luo_unmapp) struct luo_mapping map = { 0 };
	_cleanup_(luo_blob_freep) struct luo_blob *b = NULL;
	_cleanup_(luo_blob_freep) struct luo_blob *origin = NULL;
	bool may_roll_back = !(flags & LUO_OPEN_NO_ROLLBACK);
	_cleanup_close_ int fd = -1;
	char *reason = luo->incoming_reason;
	size_t rlen = sizeof(luo->incoming_reason);
	uint64_t v, exec_ns = 0, reaper = 0;
	bool present, exec_present, reaper_present;
	int r;

	if (read_env(LUO_ABI_EXEC_NS_ENV, UINT64_MAX, &exec_ns, &exec_present) < 0)
		exec_ns = 0; /* informative only */
	if (read_env(LUO_ABI_REAPER_ENV, INT32_MAX, &reaper, &reaper_present) < 0)
		reaper_present = false;
	bool came_back = read_rollback_env(luo);
	r = read_env(LUO_HANDOVER_FD_ENV, LUO_ABI_FD_NUMBER_MAX, &v, &present);
	if (present && reaper_present && reaper > 0)
		luo->reaper_pid = (pid_t)reaper; /* only with a handover: never a stray pid */
	if (!present) {
		/* Nothing came back: a stray variable says nothing. */
		luo->rollback_error = 0;
		luo->rollback_reason[0] = '\0';
		return 0;
	}
	if (r < 0 || v < 3) {
		luo_reasonf(reason, rlen, "%s is not an fd number of 3..%d", LUO_HANDOVER_FD_ENV,
			    LUO_ABI_FD_NUMBER_MAX);
		return -EBADMSG;
	}
	/* Checked before it is ours: a stray number must not touch another fd. */
	r = luo_handover_map((int)v, &map.addr, &map.len, reason, rlen);
	if (r < 0)
		return r;
	fd = (int)v;
	r = luo_set_cloexec(fd, true);
	if (r < 0)
		return r;
	r = luo_blob_parse(map.addr, map.len, &b, &origin, reason, rlen);
	if (r < 0) {
		if (origin)
			maybe_rollback(luo, args, origin, fd, r, may_roll_back, came_back);
		return r;
	}
	r = adopt_sessions(luo, b, fd);
	if (r == 0 && registry_error < 0) {
		/* This build declares its components wrongly: not the old one's fault. */
		r = registry_error;
		luo_components_error(reason, rlen);
	}
	if (r == 0)
		r = luo_load_components(luo, b, reason, rlen);
	if (r < 0) {
		if (b->argc > 0)
			maybe_rollback(luo, args, b, fd, r, may_roll_back, came_back);
		luo_components_status_reset(luo);
		luo_sessions_free(luo); /* closes the fds that passed their check */
		return r;
	}
	luo->incoming = true;
	/* Came back: the update that wrote the blob did not happen. */
	luo->lu_number = came_back ? b->lu_number - 1 : b->lu_number;
	/* Timestamps only feed luo_timings(); ignore impossible ones. */
	if (b->freeze_ns <= b->serialize_ns && b->serialize_ns <= luo->t_open_start) {
		luo->t_freeze = b->freeze_ns;
		luo->t_serialize = b->serialize_ns;
		if (exec_present && exec_ns >= b->serialize_ns && exec_ns <= luo->t_open_start)
			luo->t_exec = exec_ns;
	}
	return 0;
}

const struct luo_transport_ops luo_transport_exec = {
	.name = "exec",
	.adopt = exec_adopt,
};
