/* SPDX-License-Identifier: MIT */
#ifndef LUO_LUO_H
#define LUO_LUO_H

/**
 * DOC: libluo, the public API
 *
 * This is the one header a service includes. libluo lets a process replace
 * its own binary (exec handover) while keeping open file descriptors and the
 * contents of memfds, grouped in named *sessions*, each file under a u64
 * *token* -- the userspace counterpart of the kernel's /dev/liveupdate.
 *
 * Lifecycle of a process that uses it:
 *
 *   luo_open()                   fresh start, or adopt the incoming handover
 *     luo_session_retrieve()     incoming side: take a session by name (once)
 *       luo_session_retrieve_fd()  any order, idempotent
 *       luo_session_finish()       release what was not retrieved
 *     luo_ready()                  the blackout ends; timings recorded
 *     luo_session_create()       outgoing side: new session by name
 *       luo_session_preserve_fd()  cheap, limits enforced here
 *     luo_update()               freeze, serialize, execve(); returns only
 *                                on failure, with everything as it was
 *   luo_close()
 *
 * Errors: every function that can fail returns 0 or a negative errno. Codes
 * follow the kernel's LUO where it defines one. Out-parameters (ret_*) are
 * written only on success.
 *
 * Threads: a struct luo and its sessions are protected by one lock; calls
 * may come from any thread. Session handles become invalid at luo_close().
 *
 * Process-wide: at most one struct luo is open at a time (like the kernel's
 * exclusive open of /dev/liveupdate); the file handler registry is global.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LUO_EXPORT __attribute__((visibility("default")))

/* A session name is 1..LUO_SESSION_NAME_MAX bytes, without NUL. */
#define LUO_SESSION_NAME_MAX 63
/* Sessions (incoming + outgoing) one struct luo holds; past it: -ENOMEM. */
#define LUO_SESSIONS_MAX 4096
/* Files one session holds; past it: -ENOSPC. */
#define LUO_SESSION_FILES_MAX 4096
/* Files all outgoing sessions hold together; past it: -ENOSPC. */
#define LUO_FILES_MAX 65536
/* A file handler's name is 1..LUO_HANDLER_NAME_MAX bytes. */
#define LUO_HANDLER_NAME_MAX 31
/* The bytes a file handler records per file (its payload). */
#define LUO_FILE_DATA_MAX 256
/* Handlers registered besides the built-in ones. */
#define LUO_HANDLERS_MAX 32

/* The environment variable that names the handover memfd. */
#define LUO_HANDOVER_FD_ENV "LUO_HANDOVER_FD"

struct luo;
struct luo_session;
struct luo_file;

/* ------------------------------------------------------------------------ */
/* The orchestrator handle                                                   */

/* Flags for luo_open(). */
enum {
	/*
	 * If the incoming handover is refused, return a fresh-start handle
	 * instead of the error; luo_incoming_error() tells why.
	 */
	LUO_OPEN_FRESH_ON_ERROR = 1u << 0,
};

/**
 * luo_open() - open the orchestrator; adopt the incoming handover if any.
 * @flags:   0 or LUO_OPEN_FRESH_ON_ERROR; other bits: -EINVAL.
 * @ret_luo: the handle.
 *
 * If LUO_HANDOVER_FD names a sealed memfd holding a valid handover blob, its
 * sessions become retrievable and every inherited fd is checked against the
 * type and identity recorded for it. The variable is removed from the
 * environment whenever it is looked at (every return but -EINVAL, -EBUSY
 * and -ENOMEM), so a child never sees it.
 *
 * Return: 0; -EBUSY another handle is open; -EINVAL bad flags; -ENOMEM.
 * Without LUO_OPEN_FRESH_ON_ERROR, a refused handover returns its reason:
 * -EBADMSG the blob or the variable is malformed, truncated, unsealed or
 * out of limits; -EPROTO a format or handler version this build cannot read;
 * -ENOENT a handler this build does not have; -EBADF a recorded fd is not
 * open; -EBADFD a recorded fd is not the object recorded for it. A refused
 * handover is discarded and the next luo_open() is a fresh start: the
 * handover memfd is closed, and so is every listed fd that passed its
 * handler's identity check. Other fds are left alone, close-on-exec
 * untouched, since they may not be libluo's.
 */
LUO_EXPORT int luo_open(unsigned int flags, struct luo **ret_luo);

/**
 * luo_close() - close the handle; NULL is allowed.
 *
 * Outgoing sessions are unpreserved, incoming ones finished (what was never
 * retrieved is closed). Session handles are invalid afterwards.
 */
LUO_EXPORT void luo_close(struct luo *luo);

/**
 * luo_liveupdate_number() - how many live updates led to this image.
 *
 * 0 on a fresh start; one more than the previous image's on an update.
 */
LUO_EXPORT uint64_t luo_liveupdate_number(const struct luo *luo);

/**
 * luo_is_incoming() - whether this image started from a handover.
 */
LUO_EXPORT bool luo_is_incoming(const struct luo *luo);

/**
 * luo_incoming_error() - why an incoming handover was refused.
 * @ret_reason: optional; a human-readable reason, valid until luo_close().
 *
 * Return: 0 if nothing was refused (fresh start or accepted handover), or
 * the negative errno luo_open() would have returned without
 * LUO_OPEN_FRESH_ON_ERROR.
 */
LUO_EXPORT int luo_incoming_error(const struct luo *luo, const char **ret_reason);

/* Per-phase timings of the update that led to this image, in nanoseconds. */
struct luo_timings {
	uint64_t freeze_ns;    /* handlers' freeze callbacks (old image) */
	uint64_t serialize_ns; /* blob written, sealed, fds readied (old image) */
	uint64_t exec_ns;      /* execve() until luo_open() starts (new image) */
	uint64_t restore_ns;   /* luo_open(): blob checked, fds adopted */
	uint64_t ready_ns;     /* end of luo_open() until luo_ready() */
	uint64_t blackout_ns;  /* freeze start until luo_ready() */
};

/**
 * luo_ready() - the service serves again: the blackout ends.
 *
 * Records the timings of the update that led here. Idempotent; on a fresh
 * start it only marks the handle ready.
 *
 * Return: 0.
 */
LUO_EXPORT int luo_ready(struct luo *luo);

/**
 * luo_timings() - read back the timings of the update that led here.
 *
 * Return: 0; -ENODATA on a fresh start; -EBUSY before luo_ready().
 */
LUO_EXPORT int luo_timings(const struct luo *luo, struct luo_timings *ret_timings);

/**
 * luo_update() - exec handover: replace this process's image by @path.
 * @path: the new binary; @argv: its argv (NULL-terminated);
 * @envp: its environment, or NULL for this process's environ. Any
 *        LUO_HANDOVER_* entries in it are replaced.
 *
 * Freezes every preserved file (all-or-nothing, reverse unfreeze on
 * failure), serializes the outgoing sessions into a memfd sealed against
 * write, shrink and grow, clears close-on-exec on the preserved fds and the
 * blob only, and execve()s. Incoming sessions are not carried forward.
 * stdio buffers are not flushed (execve() drops them): fflush(NULL) first.
 *
 * Return: does not return on success. Otherwise everything is as before the
 * call and the service keeps running: -ENOENT / -EACCES / -ENOEXEC and the
 * other errors of execve() for @path; -EINVAL bad arguments; -ENOMEM; or
 * the error of a handler's freeze. Calls on the handle from other threads
 * wait until it returns. Between clearing close-on-exec and execve(), a
 * fork() in another thread would inherit the preserved fds.
 */
LUO_EXPORT int luo_update(struct luo *luo, const char *path, char *const argv[], char *const envp[]);

/* ------------------------------------------------------------------------ */
/* Sessions                                                                  */

/**
 * luo_session_create() - a new outgoing session.
 * @name: 1..LUO_SESSION_NAME_MAX bytes.
 *
 * Return: 0; -EINVAL empty or too long name; -EEXIST a session (incoming or
 * outgoing) has this name; -ENOMEM out of memory or LUO_SESSIONS_MAX reached.
 */
LUO_EXPORT int luo_session_create(struct luo *luo, const char *name, struct luo_session **ret_session);

/**
 * luo_session_retrieve() - take an incoming session by name.
 *
 * Return: 0; -EINVAL bad name, or already retrieved; -ENOENT no incoming
 * session has this name (always so on a fresh start).
 */
LUO_EXPORT int luo_session_retrieve(struct luo *luo, const char *name, struct luo_session **ret_session);

/**
 * luo_session_name() - the session's name (valid while the session is).
 */
LUO_EXPORT const char *luo_session_name(const struct luo_session *session);

/**
 * luo_session_is_incoming() - whether the session came with the handover.
 */
LUO_EXPORT bool luo_session_is_incoming(const struct luo_session *session);

/**
 * luo_session_preserve_fd() - preserve @fd under @token (outgoing only).
 *
 * libluo keeps its own reference (a close-on-exec duplicate), so the caller
 * may close @fd. A memfd created with MFD_ALLOW_SEALING gets its size
 * frozen with F_SEAL_GROW | F_SEAL_SHRINK; writes within the size still work.
 * Seals are permanent: unpreserving does not lift them.
 *
 * Return: 0; -EINVAL incoming session; -EBADF @fd
 * is not open; -EEXIST @token is in use in this session; -ENOSPC
 * LUO_SESSION_FILES_MAX or LUO_FILES_MAX reached; -ENOENT no handler can
 * preserve this kind of file; -EMFILE / -ENOMEM; or a handler's error.
 */
LUO_EXPORT int luo_session_preserve_fd(struct luo_session *session, int fd, uint64_t token);

/**
 * luo_session_unpreserve_fd() - undo luo_session_preserve_fd() (outgoing).
 *
 * Return: 0; -EINVAL incoming session; -ENOENT unknown token.
 */
LUO_EXPORT int luo_session_unpreserve_fd(struct luo_session *session, uint64_t token);

/**
 * luo_session_retrieve_fd() - a new fd for the file under @token (incoming).
 *
 * Idempotent, any order: each call returns a new close-on-exec reference
 * that the caller owns.
 *
 * Return: 0; -EINVAL outgoing or finished session; -ENOENT unknown token;
 * -EMFILE.
 */
LUO_EXPORT int luo_session_retrieve_fd(struct luo_session *session, uint64_t token, int *ret_fd);

/**
 * luo_session_finish() - release the incoming session's files (incoming).
 *
 * Asks every file's handler can_finish first; any "no" returns -EBUSY and
 * finishes nothing. Otherwise finishes every file, last preserved first, and
 * closes libluo's references; fds the caller retrieved stay the caller's.
 *
 * Return: 0; -EINVAL outgoing or already finished session; -EBUSY.
 */
LUO_EXPORT int luo_session_finish(struct luo_session *session);

/**
 * luo_session_close() - close a session handle; NULL is allowed.
 *
 * An outgoing session unpreserves its files (last first) and is gone; an
 * incoming one is finished (can_finish is not asked) and is gone.
 */
LUO_EXPORT void luo_session_close(struct luo_session *session);

/* ------------------------------------------------------------------------ */
/* File handlers                                                             */

/*
 * A file handler preserves one kind of file. libluo has two built in, tried
 * in this order after the registered ones: "memfd" (memfds that allow
 * sealing: size frozen, seals recorded and checked) and "fd" (sockets, pipes,
 * FIFOs, eventfds, regular files, directories, devices: type and identity
 * recorded and checked). Callbacks run with the luo lock held and must not
 * call back into libluo.
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
 *
 * Return: 0; -EINVAL missing required op, bad name, version 0 or data_size
 * too large; -EEXIST a handler has this name; -EBUSY a struct luo is open;
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

/* For handlers: libluo's own fd for the file (do not close it). */
LUO_EXPORT int luo_file_fd(const struct luo_file *file);
/* For handlers: the token the file is preserved under. */
LUO_EXPORT uint64_t luo_file_token(const struct luo_file *file);
/* For handlers: the handler's data for this file (data_size bytes). */
LUO_EXPORT void *luo_file_data(struct luo_file *file);

#ifdef __cplusplus
}
#endif

#endif /* LUO_LUO_H */
