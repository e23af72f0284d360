/* SPDX-License-Identifier: MIT */
/*
 * DOC: sessions and the files they hold
 *
 * Outgoing session: created by name, files preserved under tokens and
 * unpreserved, serialized by luo_update(); closing it unpreserves its files,
 * last first. Incoming session: built by luo_open() from the handover,
 * retrieved by name once, its files handed out any number of times, then
 * finished (all-or-nothing through can_finish) and closed; closing an
 * unfinished one finishes it. The kernel's error codes are kept (see
 * luo.h); calls for the other direction get -EINVAL.
 *
 * Every file holds libluo's own close-on-exec reference, so the caller may
 * close its fd at once. An open file is preserved once among all outgoing
 * sessions (-EBUSY, as the kernel; file-index.c). Limits are checked here, at preserve time, so that
 * serialization never runs out of room.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "model.h"

/* Lowest fd libluo takes for its references: 0..2 are the caller's. */

struct luo_session *luo_session_find(struct luo *luo, const char *name)
{
	for (size_t i = 0; i < luo->n_sessions; i++)
		if (strcmp(luo->sessions[i]->name, name) == 0)
			return luo->sessions[i];
	return NULL;
}

static ssize_t find_file(const struct luo_session *s, uint64_t token)
{
	for (size_t i = 0; i < s->n_files; i++)
		if (s->files[i]->token == token)
			return (ssize_t)i;
	return -1;
}

static int grow(void *pptr, size_t *cap, size_t need, size_t elem)
{
	void **p = pptr;
	size_t ncap;
	void *n;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 8;
	while (ncap < need)
		ncap *= 2;
	n = reallocarray(*p, ncap, elem);
	if (!n)
		return -ENOMEM;
	*p = n;
	*cap = ncap;
	return 0;
}

int luo_session_new(struct luo *luo, const char *name, bool incoming, struct luo_session **ret)
{
	struct luo_session *s;

	if (!luo_name_valid(name, LUO_SESSION_NAME_MAX))
		return -EINVAL;
	/* Incoming names come from a blob whose reader refused duplicates. */
	if (!incoming && luo_session_find(luo, name))
		return -EEXIST;
	if (luo->n_sessions >= LUO_SESSIONS_MAX)
		return -ENOMEM;
	if (grow(&luo->sessions, &luo->cap_sessions, luo->n_sessions + 1, sizeof(*luo->sessions)) < 0)
		return -ENOMEM;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->luo = luo;
	s->incoming = incoming;
	strcpy(s->name, name);
	luo->sessions[luo->n_sessions++] = s;
	*ret = s;
	return 0;
}

static void file_free(struct luo_file *f)
{
	safe_close(f->fd);
	free(f);
}

static void session_unlink(struct luo_session *s)
{
	struct luo *luo = s->luo;

	for (size_t i = 0; i < luo->n_sessions; i++) {
		if (luo->sessions[i] != s)
			continue;
		memmove(&luo->sessions[i], &luo->sessions[i + 1],
			(luo->n_sessions - i - 1) * sizeof(luo->sessions[0]));
		luo->n_sessions--;
		return;
	}
}

/* Finish every file, last preserved first; must not fail. */
static void session_finish_files(struct luo_session *s)
{
	for (size_t i = s->n_files; i-- > 0;) {
		struct luo_file *f = s->files[i];

		LUO_FAULT_POINT("finish");
		if (f->validated)
			luo_op_finish(f, f->retrieved);
		file_free(f);
	}
	s->n_files = 0;
	s->finished = true;
}

static void session_unpreserve_files(struct luo_session *s)
{
	for (size_t i = s->n_files; i-- > 0;) {
		struct luo_file *f = s->files[i];

		luo_op_unpreserve(f);
		luo_file_index_remove(s->luo, f);
		file_free(f);
	}
	s->luo->n_out_files -= s->n_files;
	s->n_files = 0;
}

/* Release the session's files and memory; the caller unlinks it. */
void luo_session_free(struct luo_session *s)
{
	if (!s)
		return;
	if (s->incoming)
		session_finish_files(s);
	else
		session_unpreserve_files(s);
	free(s->files);
	free(s);
}

/* A file of @s with room reserved for it in s->files; not yet linked. */
static struct luo_file *file_alloc(struct luo_session *s, const struct luo_file_handler *h, uint64_t token)
{
	struct luo_file *f;

	if (grow(&s->files, &s->cap_files, s->n_files + 1, sizeof(*s->files)) < 0)
		return NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->session = s;
	f->handler = h;
	f->token = token;
	f->fd = -1;
	return f;
}

int luo_session_add_incoming_file(struct luo_session *s, const struct luo_file_handler *h,
				  uint64_t token, int fd, const void *data)
{
	struct luo_file *f = file_alloc(s, h, token);

	if (!f)
		return -ENOMEM;
	f->fd = fd;
	memcpy(f->data, data, h->data_size);
	s->files[s->n_files++] = f;
	return 0;
}

int luo_session_create(struct luo *luo, const char *name, struct luo_session **ret_session)
{
	struct luo_session *s;
	int r;

	if (luo_in_callback())
		return -EDEADLK; /* a component callback: the lock is held (luo.h) */
	if (!luo || !ret_session)
		return -EINVAL;
	pthread_mutex_lock(&luo->lock);
	r = luo_session_new(luo, name, false, &s);
	pthread_mutex_unlock(&luo->lock);
	if (r == 0)
		*ret_session = s;
	return r;
}

/* Unlink and free @s (a retrieve that failed: linked last, under the lock). */
void luo_session_drop_last_locked(struct luo *luo, struct luo_session *s)
{
	for (size_t i = luo->n_sessions; i-- > 0;) {
		if (luo->sessions[i] != s)
			continue;
		memmove(&luo->sessions[i], &luo->sessions[i + 1], (luo->n_sessions - i - 1) * sizeof(luo->sessions[0]));
		luo->n_sessions--;
		break;
	}
	luo_session_free(s);
}

void luo_sessions_free(struct luo *luo)
{
	while (luo->n_sessions > 0)
		luo_session_free(luo->sessions[--luo->n_sessions]);
	luo->n_out_files = 0;
}

const char *luo_session_name(const struct luo_session *session)
{
	return session ? session->name : NULL;
}

bool luo_session_is_incoming(const struct luo_session *session)
{
	return session && session->incoming;
}

int luo_session_preserve_fd(struct luo_session *s, int fd, uint64_t token)
{
	return luo_session_preserve_as(s, fd, token, NULL, NULL);
}

int luo_session_preserve_as(struct luo_session *s, int fd, uint64_t token, const struct luo_file_handler *h,
			    const void *init_data)
{
	struct luo *luo;
	struct luo_file *f = NULL;
	struct luo_file_slot slot;
	struct stat st;
	int r;

	if (luo_in_callback())
		return -EDEADLK; /* a component callback: the lock is held (luo.h) */
	if (!s)
		return -EINVAL;
	luo = s->luo;
	if (fd < 0)
		return -EBADF;
	pthread_mutex_lock(&luo->lock);
	if (s->incoming) {
		r = -EINVAL;
		goto out;
	}
	if (fcntl(fd, F_GETFD) < 0) {
		r = -EBADF;
		goto out;
	}
	if (find_file(s, token) >= 0) {
		r = -EEXIST;
		goto out;
	}
	if (s->n_files >= LUO_SESSION_FILES_MAX || luo->n_out_files >= LUO_FILES_MAX) {
		r = -ENOSPC;
		goto out;
	}
	if (!h)
		h = luo_handler_for_fd(fd);
	if (!h) {
		r = -ENOENT;
		goto out;
	}
	/* The same open file twice, under any token, in any session: as the kernel (file-index.c). */
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	r = luo_file_index_prepare(luo, fd, &st, h, &slot);
	if (r < 0)
		goto out;
	f = file_alloc(s, h, token);
	if (!f) {
		r = -ENOMEM;
		goto out;
	}
	if (init_data)
		memcpy(f->data, init_data, h->data_size);
	f->fd = fcntl(fd, F_DUPFD_CLOEXEC, LUO_FD_MIN);
	if (f->fd < 0) {
		r = -errno;
		goto out_free;
	}
	LUO_FAULT_POINT("preserve");
	r = luo_op_preserve(f);
	if (r < 0)
		goto out_close;
	s->files[s->n_files++] = f;
	luo->n_out_files++;
	luo_file_index_insert(&slot, f);
	pthread_mutex_unlock(&luo->lock);
	return 0;

out_close:
	safe_close(f->fd);
out_free:
	free(f);
out:
	pthread_mutex_unlock(&luo->lock);
	return r;
}

int luo_session_unpreserve_fd(struct luo_session *s, uint64_t token)
{
	struct luo *luo;
	struct luo_file *f;
	ssize_t i;
	int r = 0;

	if (luo_in_callback())
		return -EDEADLK; /* a component callback: the lock is held (luo.h) */
	if (!s)
		return -EINVAL;
	luo = s->luo;
	pthread_mutex_lock(&luo->lock);
	if (s->incoming) {
		r = -EINVAL;
		goto out;
	}
	i = find_file(s, token);
	if (i < 0) {
		r = -ENOENT;
		goto out;
	}
	f = s->files[i];
	luo_op_unpreserve(f);
	luo_file_index_remove(luo, f);
	file_free(f);
	memmove(&s->files[i], &s->files[i + 1], (s->n_files - (size_t)i - 1) * sizeof(s->files[0]));
	s->n_files--;
	luo->n_out_files--;
out:
	pthread_mutex_unlock(&luo->lock);
	return r;
}

int luo_session_retrieve_fd(struct luo_session *s, uint64_t token, int *ret_fd)
{
	struct luo *luo;
	ssize_t i;
	int r, fd;

	if (luo_in_callback())
		return -EDEADLK; /* a component callback: the lock is held (luo.h) */
	if (!s || !ret_fd)
		return -EINVAL;
	luo = s->luo;
	pthread_mutex_lock(&luo->lock);
	if (!s->incoming || s->finished) {
		r = -EINVAL;
		goto out;
	}
	i = find_file(s, token);
	if (i < 0) {
		r = -ENOENT;
		goto out;
	}
	fd = fcntl(s->files[i]->fd, F_DUPFD_CLOEXEC, LUO_FD_MIN);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	s->files[i]->retrieved = true;
	*ret_fd = fd;
	r = 0;
out:
	pthread_mutex_unlock(&luo->lock);
	return r;
}

/*
 * The incoming file under @token, of handler @h, for a handler's own
 * retrieval (arenas): marked retrieved. Lock held by the caller. NULL:
 * none of that handler, or finished.
 */
struct luo_file *luo_session_take_file_locked(struct luo_session *s, uint64_t token,
					      const struct luo_file_handler *h)
{
	ssize_t i;

	if (!s->incoming || s->finished)
		return NULL;
	i = find_file(s, token);
	if (i < 0 || s->files[i]->handler != h)
		return NULL;
	s->files[i]->retrieved = true;
	return s->files[i];
}

int luo_session_finish(struct luo_session *s)
{
	struct luo *luo;
	int r = 0;

	if (luo_in_callback())
		return -EDEADLK; /* a component callback: the lock is held (luo.h) */
	if (!s)
		return -EINVAL;
	luo = s->luo;
	pthread_mutex_lock(&luo->lock);
	if (!s->incoming || s->finished) {
		r = -EINVAL;
		goto out;
	}
	for (size_t i = 0; i < s->n_files; i++) {
		struct luo_file *f = s->files[i];

		if (!luo_op_can_finish(f)) {
			r = -EBUSY;
			goto out;
		}
	}
	session_finish_files(s);
out:
	pthread_mutex_unlock(&luo->lock);
	return r;
}

void luo_session_close(struct luo_session *s)
{
	struct luo *luo;

	if (luo_in_callback())
		return; /* a component callback: the lock is held (luo.h) */
	if (!s)
		return;
	luo = s->luo;
	pthread_mutex_lock(&luo->lock);
	session_unlink(s);
	luo_session_free(s);
	pthread_mutex_unlock(&luo->lock);
}

/* Undo luo_session_freeze_locked(): the frozen files, last first. */
void luo_session_unfreeze_locked(struct luo_session *s)
{
	for (size_t j = s->n_files; j-- > 0;) {
		struct luo_file *f = s->files[j];

		if (!f->frozen)
			continue;
		luo_op_unfreeze(f);
		f->frozen = false;
	}
}

/* Freeze every file, all or nothing (reverse unfreeze on failure). */
int luo_session_freeze_locked(struct luo_session *s)
{
	for (size_t j = 0; j < s->n_files; j++) {
		struct luo_file *f = s->files[j];
		int r = luo_op_freeze(f);

		if (r < 0) {
			luo_session_unfreeze_locked(s);
			return r;
		}
		f->frozen = true;
	}
	return 0;
}

int luo_session_preserve_fd_named(struct luo_session *s, int fd, uint64_t token, const char *name)
{
	ssize_t i;
	int r;

	if (luo_in_callback())
		return -EDEADLK; /* a component callback: the lock is held (luo.h) */
	if (name && !luo_file_name_valid(name))
		return -EINVAL;
	r = luo_session_preserve_fd(s, fd, token);
	if (r < 0 || !name)
		return r;
	pthread_mutex_lock(&s->luo->lock);
	i = find_file(s, token);
	if (i >= 0) /* else another thread unpreserved it already */
		memcpy(s->files[i]->name, name, strlen(name) + 1); /* checked: fits */
	pthread_mutex_unlock(&s->luo->lock);
	return 0;
}

int luo_incoming_sessions(struct luo *luo, const char **ret_names, size_t max, size_t *ret_n)
{
	size_t n = 0;

	if (luo_in_callback())
		return -EDEADLK; /* a component callback: the lock is held (luo.h) */
	if (!luo || !ret_n || (max > 0 && !ret_names))
		return -EINVAL;
	pthread_mutex_lock(&luo->lock);
	for (size_t i = 0; i < luo->n_sessions; i++) {
		if (!luo->sessions[i]->incoming)
			continue;
		if (n < max)
			ret_names[n] = luo->sessions[i]->name;
		n++;
	}
	pthread_mutex_unlock(&luo->lock);
	*ret_n = n;
	return 0;
}

int luo_session_tokens(struct luo_session *s, uint64_t *ret_tokens, size_t max, size_t *ret_n)
{
	size_t n;

	if (luo_in_callback())
		return -EDEADLK; /* a component callback: the lock is held (luo.h) */
	if (!s || !ret_n || (max > 0 && !ret_tokens))
		return -EINVAL;
	pthread_mutex_lock(&s->luo->lock);
	n = s->n_files;
	for (size_t i = 0; i < n && i < max; i++)
		ret_tokens[i] = s->files[i]->token;
	pthread_mutex_unlock(&s->luo->lock);
	*ret_n = n;
	return 0;
}

int luo_session_fd_name(struct luo_session *s, uint64_t token, char *buf, size_t len)
{
	ssize_t i;
	int r;

	if (luo_in_callback())
		return -EDEADLK; /* a component callback: the lock is held (luo.h) */
	if (!s || (len > 0 && !buf))
		return -EINVAL;
	pthread_mutex_lock(&s->luo->lock);
	i = find_file(s, token);
	if (i < 0)
		r = -ENOENT;
	else if (!s->files[i]->name[0])
		r = -ENODATA;
	else if (strlen(s->files[i]->name) >= len)
		r = -ERANGE;
	else
		r = (int)strlen(strcpy(buf, s->files[i]->name));
	pthread_mutex_unlock(&s->luo->lock);
	return r;
}

int luo_session_find_name(struct luo_session *s, const char *name, uint64_t *ret_token)
{
	int r = -ENOENT;

	if (luo_in_callback())
		return -EDEADLK; /* a component callback: the lock is held (luo.h) */
	if (!s || !ret_token || !luo_file_name_valid(name))
		return -EINVAL;
	pthread_mutex_lock(&s->luo->lock);
	for (size_t i = 0; i < s->n_files; i++)
		if (strcmp(s->files[i]->name, name) == 0) {
			*ret_token = s->files[i]->token;
			r = 0;
			break;
		}
	pthread_mutex_unlock(&s->luo->lock);
	return r;
}
