/* SPDX-License-Identifier: MIT */
/*
 * DOC: exec handover, the switch
 *
 * luo_update() runs with the handle's lock held from the first freeze to
 * execve(), so nothing is preserved or unpreserved under it:
 *
 *   check  @path is an executable regular file    (nothing changed yet)
 *   freeze every outgoing file, in order           blackout starts
 *   serialize the blob, into a memfd, sealed       all-or-nothing
 *   clear close-on-exec on the preserved fds and the blob, nothing else
 *   execve()
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
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "luo-internal.h"

#define BLOB_SEALS (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
#define ENV_NUM_MAX 64

extern char **environ;

struct handover_env {
	char **envp;
	char fd_entry[sizeof(LUO_HANDOVER_FD_ENV) + ENV_NUM_MAX];
	char exec_entry[sizeof(LUO_ABI_EXEC_NS_ENV) + ENV_NUM_MAX];
};

static bool is_ours(const char *entry)
{
	static const char *const names[] = { LUO_HANDOVER_FD_ENV "=", LUO_ABI_EXEC_NS_ENV "=" };

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
	he->envp = calloc(n + 3, sizeof(*he->envp));
	if (!he->envp)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (!is_ours(envp[i]))
			he->envp[k++] = envp[i];
	he->envp[k++] = he->fd_entry;
	he->envp[k++] = he->exec_entry;
	he->envp[k] = NULL;
	return 0;
}

static void freeze_undo(struct luo *luo)
{
	for (size_t i = luo->n_sessions; i-- > 0;) {
		struct luo_session *s = luo->sessions[i];

		for (size_t j = s->n_files; j-- > 0;) {
			struct luo_file *f = s->files[j];

			if (!f->frozen)
				continue;
			if (f->handler->ops->unfreeze)
				f->handler->ops->unfreeze(f);
			f->frozen = false;
		}
	}
}

static int freeze_all(struct luo *luo)
{
	for (size_t i = 0; i < luo->n_sessions; i++) {
		struct luo_session *s = luo->sessions[i];

		if (s->incoming)
			continue;
		for (size_t j = 0; j < s->n_files; j++) {
			struct luo_file *f = s->files[j];
			int r = f->handler->ops->freeze ? f->handler->ops->freeze(f) : 0;

			if (r < 0) {
				freeze_undo(luo);
				return r;
			}
			f->frozen = true;
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

static int blob_to_memfd(const void *buf, size_t len)
{
	_cleanup_close_ int fd = -1;
	size_t off = 0;

	fd = memfd_create("luo-handover", MFD_CLOEXEC | MFD_ALLOW_SEALING);
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
	blob_fd = blob_to_memfd(blob, blob_len);
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
	t_exec = luo_now_ns();
	snprintf(he->exec_entry, sizeof(he->exec_entry), "%s=%llu", LUO_ABI_EXEC_NS_ENV, (unsigned long long)t_exec);
	execve(path, argv, he->envp);
	r = -errno;
	cloexec_restore(luo);
	return r;
}

int luo_update(struct luo *luo, const char *path, char *const argv[], char *const envp[])
{
	struct handover_env he = { 0 };
	char self_path[PATH_MAX];
	uint8_t build_id[LUO_ABI_BUILD_ID_MAX];
	struct luo_blob_header hdr = { .producer_path = self_path, .build_id = build_id };
	int r;

	if (!luo || !path || !argv || !argv[0])
		return -EINVAL;
	r = check_executable(path);
	if (r < 0)
		return r;
	r = luo_self_path(self_path, sizeof(self_path));
	if (r < 0)
		return r;
	luo_self_build_id(build_id, sizeof(build_id), &hdr.build_id_len);
	{
		char *const empty[] = { NULL }; /* clearenv() leaves environ NULL */

		r = env_build(&he, envp ? envp : environ ? environ : empty);
	}
	if (r < 0)
		return r;

	pthread_mutex_lock(&luo->lock);
	hdr.lu_number = luo->lu_number + 1;
	hdr.freeze_ns = luo_now_ns();
	r = freeze_all(luo);
	if (r == 0) {
		r = switch_image(luo, path, argv, &he, &hdr);
		freeze_undo(luo);
	}
	pthread_mutex_unlock(&luo->lock);
	free(he.envp);
	return r;
}
