/* SPDX-License-Identifier: MIT */
/*
 * DOC: the file handler registry
 *
 * Process-wide, like the kernel's: handlers registered by the program are
 * tried first, in registration order, then the built-in "memfd" and "fd".
 * Registration is refused while a struct luo is open (-EBUSY), because the
 * open handle may hold files of the handler and the incoming side looks
 * handlers up by name while adopting the handover. The lock and the "a
 * struct luo is open" mark are the registry's (registry.c), shared with the
 * component registry.
 */

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "cleanup.h"
#include "model.h"

static const struct luo_file_handler *registered[LUO_HANDLERS_MAX];
static void *registered_data[LUO_HANDLERS_MAX]; /* luo_file_handler_register_with_data() */
static size_t n_registered;

static const struct luo_file_handler *const builtins[] = {
	&luo_handler_memfd,
	&luo_handler_fd,
	&luo_handler_arena, /* never chosen by can_preserve: arenas are preserved by arena.c */
};
_Static_assert(ARRAY_SIZE(builtins) == LUO_HANDLERS_BUILTIN, "LUO_HANDLERS_BUILTIN is the size of builtins[]");

static bool handler_valid(const struct luo_file_handler *h)
{
	const struct luo_file_ops *ops;

	if (!h || !h->ops || !h->name || h->version == 0 || h->data_size > LUO_FILE_DATA_MAX ||
	    (h->ops->flags & ~(unsigned int)LUO_FILE_OPS_SHARED))
		return false;
	if (!luo_name_valid(h->name, LUO_HANDLER_NAME_MAX))
		return false;
	ops = h->ops;
	return ops->can_preserve && ops->preserve && ops->unpreserve && ops->retrieve && ops->finish;
}

static const struct luo_file_handler *find_by_name_locked(const char *name)
{
	for (size_t i = 0; i < n_registered; i++)
		if (strcmp(registered[i]->name, name) == 0)
			return registered[i];
	for (size_t i = 0; i < ARRAY_SIZE(builtins); i++)
		if (strcmp(builtins[i]->name, name) == 0)
			return builtins[i];
	return NULL;
}

int luo_file_handler_register(const struct luo_file_handler *handler)
{
	return luo_file_handler_register_with_data(handler, NULL);
}

int luo_file_handler_register_with_data(const struct luo_file_handler *handler, void *userdata)
{
	int r = 0;

	if (!handler_valid(handler))
		return -EINVAL;
	luo_registry_lock();
	if (luo_registry_open_locked())
		r = -EBUSY;
	else if (find_by_name_locked(handler->name))
		r = -EEXIST;
	else if (n_registered >= LUO_HANDLERS_MAX)
		r = -ENOSPC;
	else {
		registered_data[n_registered] = userdata;
		registered[n_registered++] = handler;
	}
	luo_registry_unlock();
	return r;
}

int luo_file_handler_unregister(const struct luo_file_handler *handler)
{
	int r = -ENOENT;

	luo_registry_lock();
	if (luo_registry_open_locked()) {
		r = -EBUSY;
	} else {
		for (size_t i = 0; i < n_registered; i++) {
			if (registered[i] != handler)
				continue;
			memmove(&registered[i], &registered[i + 1], (n_registered - i - 1) * sizeof(registered[0]));
			memmove(&registered_data[i], &registered_data[i + 1],
				(n_registered - i - 1) * sizeof(registered_data[0]));
			n_registered--;
			r = 0;
			break;
		}
	}
	luo_registry_unlock();
	return r;
}

/*
 * Lookups run while a struct luo is open, when the registry cannot change,
 * so they need not take the lock.
 */
const struct luo_file_handler *luo_handler_for_fd(int fd)
{
	for (size_t i = 0; i < n_registered; i++)
		if (luo_op_can_preserve(registered[i], fd))
			return registered[i];
	for (size_t i = 0; i < ARRAY_SIZE(builtins); i++)
		if (luo_op_can_preserve(builtins[i], fd))
			return builtins[i];
	return NULL;
}

/*
 * Every call of a handler's op goes through these: the op runs with the
 * handle's lock held (or inside luo_open()), so it is marked as a callback
 * and the entry points that take the lock answer -EDEADLK instead of
 * deadlocking (luo_close() and luo_session_close() do nothing), as for a
 * component's save() and load().
 */
bool luo_op_can_preserve(const struct luo_file_handler *h, int fd)
{
	bool r;

	luo_callback_enter();
	r = h->ops->can_preserve(fd);
	luo_callback_leave();
	return r;
}

int luo_op_preserve(struct luo_file *f)
{
	int r;

	luo_callback_enter();
	r = f->handler->ops->preserve(f);
	luo_callback_leave();
	return r;
}

void luo_op_unpreserve(struct luo_file *f)
{
	luo_callback_enter();
	f->handler->ops->unpreserve(f);
	luo_callback_leave();
}

int luo_op_freeze(struct luo_file *f)
{
	int r = 0;

	luo_callback_enter();
	if (f->handler->ops->freeze)
		r = f->handler->ops->freeze(f);
	luo_callback_leave();
	return r;
}

void luo_op_unfreeze(struct luo_file *f)
{
	luo_callback_enter();
	if (f->handler->ops->unfreeze)
		f->handler->ops->unfreeze(f);
	luo_callback_leave();
}

int luo_op_retrieve(struct luo_file *f)
{
	int r;

	luo_callback_enter();
	r = f->handler->ops->retrieve(f);
	luo_callback_leave();
	return r;
}

bool luo_op_can_finish(struct luo_file *f)
{
	bool r = true;

	luo_callback_enter();
	if (f->handler->ops->can_finish)
		r = f->handler->ops->can_finish(f);
	luo_callback_leave();
	return r;
}

void luo_op_finish(struct luo_file *f, bool retrieved)
{
	luo_callback_enter();
	f->handler->ops->finish(f, retrieved);
	luo_callback_leave();
}

const struct luo_file_handler *luo_handler_by_name(const char *name)
{
	return find_by_name_locked(name);
}

size_t luo_handlers_list(const struct luo_file_handler **out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < n_registered && n < max; i++)
		out[n++] = registered[i];
	for (size_t i = 0; i < ARRAY_SIZE(builtins) && n < max; i++)
		out[n++] = builtins[i];
	return n;
}

int luo_file_fd(const struct luo_file *file)
{
	return file->fd;
}

uint64_t luo_file_token(const struct luo_file *file)
{
	return file->token;
}

void *luo_file_data(struct luo_file *file)
{
	return file->data;
}

/* Read without the lock: the registry does not change while a struct luo is open. */
void *luo_file_handler_data(const struct luo_file *file)
{
	if (!file)
		return NULL;
	for (size_t i = 0; i < n_registered; i++)
		if (registered[i] == file->handler)
			return registered_data[i];
	return NULL;
}
