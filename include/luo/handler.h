/* SPDX-License-Identifier: MIT */
#ifndef LUO_HANDLER_H
#define LUO_HANDLER_H

/**
 * DOC: libluo's file-handler interface (include it through <luo/luo.h>)
 *
 * What a program that teaches libluo a new kind of file implements and
 * registers: struct luo_file_ops, struct luo_file_handler, the
 * registration calls and the accessors its callbacks may use. Declaring a
 * handler in the manifest: LUO_FILE_HANDLER_DECLARE() in <luo/declare.h>.
 */

#include <stdbool.h>
#include <stdint.h>

#include "luo/service.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* File handlers                                                             */

/*
 * A file handler preserves one kind of file. libluo has two built in, tried
 * in this order after the registered ones: "memfd" (memfds that allow
 * sealing: size frozen, seals recorded and checked) and "fd" (sockets, pipes,
 * FIFOs, eventfds, regular files, directories, devices: type and identity
 * recorded and checked). Callbacks run with the luo lock held (retrieve()
 * inside luo_open()), and may call luo_file_fd(), luo_file_token(),
 * luo_file_data() and luo_file_handler_data(); for the rest the rules of a
 * component's callbacks apply, checked alike (see "What a callback may
 * call" below): a call that takes the handle's lock answers -EDEADLK,
 * luo_close() and luo_session_close() do nothing, luo_open() and the
 * registrations answer -EBUSY.
 */
struct luo_file_ops {
	/* Required, cheap: can this handler preserve @fd? */
	bool (*can_preserve)(int fd);
	/* Required: take the file; fill luo_file_data() (data_size bytes). */
	int (*preserve)(struct luo_file *file);
	/* Required: undo preserve. */
	void (*unpreserve)(struct luo_file *file);
	/* Optional: just before the switch; may update the data. */
	int (*freeze)(struct luo_file *file);
	/* Optional: the switch failed; undo freeze. */
	void (*unfreeze)(struct luo_file *file);
	/*
	 * Required, incoming side: check the inherited fd against the data
	 * recorded for it, when luo_open() adopts the handover. A non-zero
	 * return refuses the whole handover (-EBADFD is the usual answer).
	 */
	int (*retrieve)(struct luo_file *file);
	/* Optional: may the file be finished now? */
	bool (*can_finish)(struct luo_file *file);
	/* Required, must not fail: release; @retrieved if the fd was taken. */
	void (*finish)(struct luo_file *file, bool retrieved);
	/* LUO_FILE_OPS_* flags; other bits: registration refused (-EINVAL). */
	unsigned int flags;
};

enum {
	/*
	 * The same open file may be preserved again, under another token or
	 * in another session, while this handler holds it -- if the other
	 * preservation's handler says so too; else -EBUSY, the kernel's rule.
	 * For a handler that holds fds on behalf of others (luod's), whose
	 * clients may share an open file.
	 */
	LUO_FILE_OPS_SHARED = 1u << 0,
};

struct luo_file_handler {
	const char *name;          /* 1..LUO_HANDLER_NAME_MAX bytes */
	uint32_t version;          /* format of the data; 1.. */
	uint32_t data_size;        /* exact bytes of data, 0..LUO_FILE_DATA_MAX */
	const struct luo_file_ops *ops;
};

/**
 * luo_file_handler_register() - add a handler, tried before the built-ins.
 *
 * The handler (and what it points to) must outlive its registration.
 * Define it with LUO_FILE_HANDLER_DECLARE(): a handler that holds files
 * must be in the new image's manifest, or luo_update() refuses (-EPROTO).
 *
 * Return: 0; -EINVAL missing required op, bad name, version 0, data_size
 * too large or unknown ops flags; -EEXIST a handler has this name; -EBUSY a struct luo is open;
 * -ENOSPC LUO_HANDLERS_MAX reached.
 */
LUO_EXPORT int luo_file_handler_register(const struct luo_file_handler *handler);

/**
 * luo_file_handler_unregister() - remove a registered handler.
 *
 * Return: 0; -ENOENT not registered (built-ins never are); -EBUSY a struct
 * luo is open.
 */
LUO_EXPORT int luo_file_handler_unregister(const struct luo_file_handler *handler);

/**
 * luo_file_handler_register_with_data() - luo_file_handler_register() with a user pointer.
 *
 * Its callbacks read @userdata back with luo_file_handler_data(). Return:
 * as luo_file_handler_register().
 */
LUO_EXPORT int luo_file_handler_register_with_data(const struct luo_file_handler *handler, void *userdata);

/*
 * For handlers: the pointer the file's handler was registered with (NULL for
 * luo_file_handler_register() and the built-ins).
 */
LUO_EXPORT void *luo_file_handler_data(const struct luo_file *file);

/* For handlers: libluo's own fd for the file (do not close it). */
LUO_EXPORT int luo_file_fd(const struct luo_file *file);
/* For handlers: the token the file is preserved under. */
LUO_EXPORT uint64_t luo_file_token(const struct luo_file *file);
/* For handlers: the handler's data for this file (data_size bytes). */
LUO_EXPORT void *luo_file_data(struct luo_file *file);


#ifdef __cplusplus
}
#endif

#endif /* LUO_HANDLER_H */
