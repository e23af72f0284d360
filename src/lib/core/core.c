/* SPDX-License-Identifier: MIT */
/*
 * DOC: the orchestrator handle and the adoption of a handover
 *
 * luo_open() takes the process-wide "open" mark (a second open gets -EBUSY,
 * like the kernel's exclusive /dev/liveupdate), then looks for a handover:
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
#include "luo-internal.h"
#include "manifest.h"

extern char **environ;

#define HANDOVER_SEALS (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW)

static void free_sessions(struct luo *luo)
{
	while (luo->n_sessions > 0)
		luo_session_free(luo->sessions[--luo->n_sessions]);
	luo->n_out_files = 0;
}

/*
 * Adopt one recorded file, whose fd is @fd: the recorded number for an exec
 * handover, a received one for the agent (agent-client.c). Returns 0 or the
 * reason it cannot be, written to @reason. A file that fails its handler's
 * check is added with fd -1: @fd is left to the caller.
 */
int luo_adopt_file(struct luo_session *s, const struct luo_blob_file *bf, int fd, int handover_fd, char *reason,
		   size_t rlen)
{
	const struct luo_file_handler *h = luo_handler_by_name(bf->handler);
	struct luo_file *f;
	int r;

	LUO_FAULT_POINT("restore");
	if (!h) {
		luo_reasonf(reason, rlen,
			    "session '%s', token %llu: no handler '%s' in this build", s->name,
			    (unsigned long long)bf->token, bf->handler);
		return -ENOENT;
	}
	if (bf->handler_version != h->version) {
		luo_reasonf(reason, rlen,
			    "session '%s', token %llu: handler '%s' version %u; this build reads %u", s->name,
			    (unsigned long long)bf->token, h->name, bf->handler_version, h->version);
		return -EPROTO;
	}
	if (bf->data_len != h->data_size) {
		luo_reasonf(reason, rlen,
			    "session '%s', token %llu: %u bytes of '%s' data, expected %u", s->name,
			    (unsigned long long)bf->token, bf->data_len, h->name, h->data_size);
		return -EBADMSG;
	}
	if (fd == handover_fd) {
		luo_reasonf(reason, rlen,
			    "session '%s', token %llu: fd %d is the handover memfd itself", s->name,
			    (unsigned long long)bf->token, fd);
		return -EBADMSG;
	}
	if (fcntl(fd, F_GETFD) < 0) {
		luo_reasonf(reason, rlen,
			    "session '%s', token %llu: fd %d is not open", s->name, (unsigned long long)bf->token,
			    fd);
		return -EBADF;
	}
	r = luo_session_add_incoming_file(s, h, bf->token, fd, bf->data);
	if (r < 0)
		return r;
	f = s->files[s->n_files - 1];
	if (bf->name) /* checked by the reader */
		snprintf(f->name, sizeof(f->name), "%s", bf->name);
	r = luo_op_retrieve(f);
	if (r < 0) {
		f->fd = -1; /* not known to be ours: leave it alone */
		if (r == -ENOMEM || r == -EBADMSG) {
			luo_reasonf(reason, rlen,
				    "session '%s', token %llu: malformed '%s' record", s->name,
				    (unsigned long long)bf->token, h->name);
			return r;
		}
		luo_reasonf(reason, rlen,
			    "session '%s', token %llu: fd %d is not the recorded '%s' object", s->name,
			    (unsigned long long)bf->token, fd, h->name);
		return -EBADFD;
	}
	f->validated = true;
	return luo_set_cloexec(f->fd, true);
}

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

/*
 * load() gets its payload aligned for any type (max_align_t): the blob
 * aligns properties to 4 bytes only, so a payload that is not is copied.
 */
static int load_aligned(const struct luo_component *c, const struct luo_blob_component *bc)
{
	_cleanup_free_ void *copy = NULL;
	const void *data = bc->data;

	if ((uintptr_t)data % _Alignof(max_align_t) != 0 && bc->data_len > 0) {
		copy = aligned_alloc(_Alignof(max_align_t),
				     (bc->data_len + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1));
		if (!copy)
			return -ENOMEM;
		memcpy(copy, data, bc->data_len);
		data = copy;
	}
	return luo_component_load(c, bc->version, data, bc->data_len);
}

/*
 * Load every component the blob carries. Returns 0 or the refusal, written
 * to @reason. Shared with the agent's retrieve (agent-client.c).
 */
int luo_load_components(struct luo *luo, const struct luo_blob *b, char *reason, size_t rlen)
{
	const struct luo_component *comps[LUO_COMPONENTS_MAX];
	size_t n = luo_components_list(comps, ARRAY_SIZE(comps));

	for (size_t k = 0; k < b->n_components; k++) {
		const struct luo_blob_component *bc = &b->components[k];
		const struct luo_component *c = NULL;
		size_t i;
		int r;

		for (i = 0; i < n && !c; i++)
			if (comps[i] && strcmp(comps[i]->name, bc->name) == 0)
				c = comps[i];
		if (!c)
			continue; /* negotiation saw it in our manifest: a stale one */
		i--;
		if (bc->dropped) {
			luo->component_status[i] = -ESTALE;
			continue;
		}
		if (bc->version < c->read_min || bc->version > c->read_max) {
			if (c->flags & LUO_COMPONENT_OPTIONAL) {
				luo->component_status[i] = -EIO;
				continue;
			}
			luo_reasonf(reason, rlen,
				    "component '%s': version %u; this build reads %u..%u", c->name, bc->version,
				    c->read_min, c->read_max);
			return -EPROTO;
		}
		r = load_aligned(c, bc);
		if (r != 0) {
			if (c->flags & LUO_COMPONENT_OPTIONAL) {
				luo->component_status[i] = -EIO;
				continue;
			}
			luo_reasonf(reason, rlen,
				    "component '%s': load of version %u failed (%d)", c->name, bc->version, r);
			return -EIO;
		}
		luo->component_status[i] = 0;
		luo->component_version[i] = bc->version;
	}
	return 0;
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
static void rollback(struct luo *luo, const struct luo_blob *origin, int handover_fd, int error)
{
	_cleanup_free_ char **envp = NULL;
	char fd_entry[sizeof(LUO_HANDOVER_FD_ENV) + 32];
	char reaper_entry[sizeof(LUO_ABI_REAPER_ENV) + 32];
	char rb_entry[sizeof(LUO_ABI_ROLLBACK_ENV) + 32 + LUO_REASON_MAX];
	uint8_t id[LUO_ABI_BUILD_ID_MAX];
	size_t id_len = 0, n = 0, k = 0;
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
	if (r < 0 || id_len != origin->build_id_len || memcmp(id, origin->build_id, id_len) != 0) {
		reason_append(luo, "; no rollback: %s is not the binary that wrote the handover",
			      origin->producer_path);
		return;
	}
	snprintf(fd_entry, sizeof(fd_entry), "%s=%d", LUO_HANDOVER_FD_ENV, handover_fd);
	r = snprintf(rb_entry, sizeof(rb_entry), "%s=%d:%s", LUO_ABI_ROLLBACK_ENV, -error, luo->incoming_reason);
	for (char *p = rb_entry; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	while (environ && environ[n])
		n++;
	envp = calloc(n + 6, sizeof(*envp)); /* + ours, two for control.c, NULL */
	if (!envp) {
		reason_append(luo, "; no rollback: out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (!luo_env_is_ours(environ[i]))
			envp[k++] = environ[i];
	envp[k++] = fd_entry;
	envp[k++] = rb_entry;
	if (luo->reaper_pid > 0) {
		/* Same process: the old image reaps the reaper this image was left. */
		snprintf(reaper_entry, sizeof(reaper_entry), "%s=%d", LUO_ABI_REAPER_ENV, (int)luo->reaper_pid);
		envp[k++] = reaper_entry;
	}
	luo_control_exec_env(luo, envp);
	adopted_cloexec(luo, false);
	if (luo_set_cloexec(handover_fd, false) == 0)
		execveat(exe, "", (char *const *)origin->argv, envp, AT_EMPTY_PATH);
	r = errno;
	luo_control_exec_undo(luo);
	luo_set_cloexec(handover_fd, true);
	adopted_cloexec(luo, true);
	reason_append(luo, "; rollback to %s failed: %s", origin->producer_path, strerror(r));
}

static void maybe_rollback(struct luo *luo, const struct luo_blob *origin, int handover_fd, int error, bool allowed,
			   bool came_back)
{
	if (!allowed)
		return;
	if (came_back)
		reason_append(luo, "; no rollback: this image is itself the rollback");
	else
		rollback(luo, origin, handover_fd, error);
}

/* A refused handover loaded nothing, whatever load() ran before. */
static void forget_components(struct luo *luo)
{
	for (size_t i = 0; i < LUO_COMPONENTS_MAX; i++) {
		luo->component_status[i] = -ENODATA;
		luo->component_version[i] = 0;
	}
}

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

/*
 * Check that @fd is a memfd sealed against write, shrink and grow, of
 * 1..LUO_ABI_BLOB_MAX bytes, and map it read-only. Nothing else is done to
 * @fd. Shared with arena.c's reservation before main().
 */
int luo_handover_map(int fd, void **ret_addr, size_t *ret_len, char *reason, size_t rlen)
{
	struct stat st;
	void *addr;
	int seals;

	if (fcntl(fd, F_GETFD) < 0) {
		luo_reasonf(reason, rlen, "%s names fd %d, which is not open", LUO_HANDOVER_FD_ENV, fd);
		return -EBADF;
	}
	/* Seals first: once sealed, the size read next cannot change. */
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & HANDOVER_SEALS) != HANDOVER_SEALS) {
		luo_reasonf(reason, rlen, "handover fd %d is not a memfd sealed against write, shrink and grow", fd);
		return -EBADMSG;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > LUO_ABI_BLOB_MAX) {
		luo_reasonf(reason, rlen, "handover memfd %d is not of 1..%u bytes", fd, LUO_ABI_BLOB_MAX);
		return -EBADMSG;
	}
	addr = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (addr == MAP_FAILED) {
		luo_reasonf(reason, rlen, "cannot map the handover memfd: %s", strerror(errno));
		return -EBADMSG;
	}
	*ret_addr = addr;
	*ret_len = (size_t)st.st_size;
	return 0;
}

/* LUO_HANDOVER_ROLLBACK="ERRNO:reason": this image came back; read, removed. */
static bool read_rollback_env(struct luo *luo)
{
	const char *v = luo_getenv(LUO_ABI_ROLLBACK_ENV);
	const char *colon;
	uint64_t err;
	char num[16];

	if (!v)
		return false;
	colon = strchr(v, ':');
	if (colon && (size_t)(colon - v) < sizeof(num)) {
		memcpy(num, v, (size_t)(colon - v));
		num[colon - v] = '\0';
		if (luo_parse_u64(num, 4095, &err) == 0 && err > 0) {
			luo->rollback_error = -(int)err;
			snprintf(luo->rollback_reason, sizeof(luo->rollback_reason), "%s", colon + 1);
		}
	}
	if (!luo->rollback_error) {
		luo->rollback_error = -EIO;
		snprintf(luo->rollback_reason, sizeof(luo->rollback_reason), "(malformed %s)", LUO_ABI_ROLLBACK_ENV);
	}
	unsetenv(LUO_ABI_ROLLBACK_ENV);
	return true;
}

static int adopt_handover(struct luo *luo, unsigned int flags, int registry_error)
{
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
			maybe_rollback(luo, origin, fd, r, may_roll_back, came_back);
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
			maybe_rollback(luo, b, fd, r, may_roll_back, came_back);
		forget_components(luo);
		free_sessions(luo); /* closes the fds that passed their check */
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

/* A less privileged user wrote them: no child of this image reads them. */
static void scrub_env(void)
{
	static const char *const names[] = { LUO_HANDOVER_FD_ENV, LUO_ABI_EXEC_NS_ENV, LUO_ABI_ROLLBACK_ENV,
					     LUO_ABI_REAPER_ENV, LUO_ABI_CONTROL_FD_ENV,
					     LUO_ABI_CONTROL_LISTEN_FD_ENV };

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		unsetenv(names[i]);
}

int luo_open(unsigned int flags, struct luo **ret_luo)
{
	struct luo *luo;
	int r, registry_error;

	LUO_FAULT_POINT("open-start");
	if (!ret_luo || (flags & ~(unsigned int)(LUO_OPEN_FRESH_ON_ERROR | LUO_OPEN_NO_ROLLBACK | LUO_OPEN_AGENT |
					      LUO_OPEN_NO_REAPER | LUO_OPEN_STRICT_TYPES)))
		return -EINVAL;
	luo = calloc(1, sizeof(*luo));
	if (!luo)
		return -ENOMEM;
	r = luo_handlers_hold();
	if (r < 0) {
		free(luo);
		return r;
	}
	pthread_mutex_init(&luo->lock, NULL);
	luo->agent_fd = -1;
	luo->control_fd = -1;
	luo->control_reply_fd = -1;
	luo->no_reaper = flags & LUO_OPEN_NO_REAPER;
	luo->strict_types = flags & LUO_OPEN_STRICT_TYPES;
	forget_components(luo);
	/*
	 * A broken component registry fails luo_open() whatever the flags,
	 * but only after the handover was looked at: it is consumed (or
	 * rolled back to the image that wrote it), not left to children.
	 */
	registry_error = luo_components_error(NULL, 0);
	luo->t_open_start = luo_now_ns();
	if (luo_secure_exec())
		scrub_env();
	luo_control_adopt(luo); /* before the handover: a rollback passes it on */
	r = adopt_handover(luo, flags, registry_error);
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
	luo_agent_open(luo, flags & LUO_OPEN_AGENT); /* not finding it is no error: luo_agent_error() */
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
	luo_agent_close(luo); /* DETACH: a clean close keeps the deposits */
	free_sessions(luo);
	luo_file_index_free(luo);
	free(luo->sessions);
	free(luo->report);
	luo_control_close(luo);
	luo_reaper_reap(luo, false); /* no waiting out its delay: at worst a zombie until exit */
	pthread_mutex_unlock(&luo->lock);
	pthread_mutex_destroy(&luo->lock);
	free(luo);
	luo_handlers_release();
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
	luo_control_answer(luo); /* an update asked by luoctl: its answer */
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
