/* SPDX-License-Identifier: MIT */
#ifndef LUO_SERVICE_H
#define LUO_SERVICE_H

/**
 * DOC: libluo's service API (include it through <luo/luo.h>)
 *
 * What a service calls: the handle (luo_open(), luo_ready(), luo_update(),
 * luo_close()), its sessions, the agent (luod), the control socket, arenas
 * and components (the runtime calls; the declarations are <luo/declare.h>).
 * The file-handler interface is <luo/handler.h>. Lifecycle, errors and
 * threads: <luo/luo.h>'s DOC.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "luo/abi.h"

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
/* A preserved fd's optional name is 1..LUO_FILE_NAME_MAX bytes of 0x21..0x7e. */
#define LUO_FILE_NAME_MAX 63

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
	/*
	 * Never roll back: a refused handover (or a mandatory component's
	 * failed load) is returned as an error, or a fresh start with the
	 * flag above, instead of going back to the previous binary.
	 */
	LUO_OPEN_NO_ROLLBACK = 1u << 1,
	/*
	 * Connect to the agent, luod (see luo_session_deposit()). Not finding
	 * it is no error: luo_agent_error() tells.
	 */
	LUO_OPEN_AGENT = 1u << 2,
	/*
	 * No mm reaper in luo_update() (see there): the old image's memory
	 * is torn down inside execve(), in the blackout. For tools that
	 * cannot follow clone(CLONE_VM), valgrind above all. The environment
	 * variable LUO_NO_REAPER_ENV does the same for a whole process tree.
	 */
	LUO_OPEN_NO_REAPER = 1u << 3,
	/*
	 * luo_update() refuses (-EPROTO, nothing frozen) when a component
	 * would be handed over at a lower version because the types of a
	 * higher one differ (LUO_VERDICT_DOWNGRADE), or with types neither
	 * image describes (LUO_TYPES_UNPROVEN): the report says which. The
	 * control request of `luoctl update --strict` asks the same of one
	 * update.
	 */
	LUO_OPEN_STRICT_TYPES = 1u << 4,
};

/*
 * Set to anything but "" or "0": as LUO_OPEN_NO_REAPER, for every
 * luo_update() of the process and of the images it execs (ignored when
 * secure_getenv() ignores the environment).
 */
#define LUO_NO_REAPER_ENV "LUO_NO_REAPER"

/**
 * luo_open() - open the orchestrator; adopt the incoming handover if any.
 * @flags:   LUO_OPEN_FRESH_ON_ERROR, LUO_OPEN_NO_ROLLBACK, LUO_OPEN_AGENT,
 *           LUO_OPEN_NO_REAPER; other bits: -EINVAL.
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
 * untouched, since they may not be libluo's -- the fd the variable names,
 * too, unless it is a memfd sealed as a handover is.
 *
 * Components: once the sessions are adopted, each component in the blob
 * is loaded through its load callback, at the version negotiated by the
 * old image (luo_component_incoming() tells the outcome).
 *
 * Rollback: if the handover is refused after its blob was read, or a
 * mandatory component's load fails, luo_open() execs the previous binary
 * (producer-path, if its build-id is still the recorded one) with its
 * argv, the same blob and the same fds, once; it does not return then.
 * The old image's luo_open() adopts the blob and luo_rollback() tells it
 * why it came back. A binary built without a build-id is identified by
 * its path alone. The old image gets what the new one was given: an
 * optional component dropped for the new image is dropped on the way back
 * too. luo_liveupdate_number() is the old image's again; luo_timings()
 * counts the blackout from the first freeze, and has no exec or serialize
 * phase for the way back. A rollback that cannot happen (binary gone or
 * replaced, execve() failing, already a rollback, LUO_OPEN_NO_ROLLBACK)
 * leaves the error to be returned as described above; but for the flag,
 * its reason says why no rollback was done.
 *
 * Call it before starting threads: it reads and changes the environment.
 *
 * More errors: -EEXIST / -EINVAL / -ENOSPC two components with one name,
 * a component declared badly, or more than LUO_COMPONENTS_MAX: returned
 * whatever the flags, after the incoming handover was refused (and rolled
 * back, if it can be); -EIO a mandatory component's load failed.
 */
LUO_EXPORT int luo_open(unsigned int flags, struct luo **ret_luo);

/**
 * luo_close() - close the handle; NULL is allowed.
 *
 * With an agent connection, DETACH first: what was deposited stays held,
 * KEEP_ON_CRASH or not. Outgoing sessions are unpreserved, incoming ones finished (what was never
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

/**
 * luo_rollback() - whether this image came back from a failed update.
 * @ret_reason: optional; what the new image said, valid until luo_close().
 *
 * Return: 0 if not; otherwise the negative errno with which the new
 * image refused the handover (-EIO: a mandatory component failed to load).
 */
LUO_EXPORT int luo_rollback(const struct luo *luo, const char **ret_reason);

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
 * With an agent connection, luo_update() sends DETACH (and waits for its
 * answer, at most the agent's I/O timeout) just before execve(): every
 * session this process deposited is then held by the agent until dropped,
 * whether execve() succeeds or not. So if the update then fails, sessions
 * deposited without LUO_DEPOSIT_KEEP_ON_CRASH are no longer tied to this
 * process: a crash afterwards leaves them in the agent, as a clean exit
 * would (deposit such a session again to tie it to the process again).
 * stdio buffers are not flushed (execve() drops them): fflush(NULL) first.
 *
 * Negotiation comes first, before anything is frozen: the manifest of
 * @path (its .note.luo and that of the libraries it needs) is read, and
 * every component, every handler with files and the container format get
 * v = max(write_old & read_new & read_old), skipping versions whose struct
 * layouts differ between the images. No version for a mandatory one
 * refuses the update; for an optional one, its data is dropped and the new
 * image cold-starts it. luo_update_report() gives the outcome per entry,
 * refused or not. Then each component's save callback writes its payload
 * at its negotiated version.
 *
 * Once negotiation has agreed, before the first freeze (it costs 0.15-0.2
 * ms, kept out of the blackout), unless LUO_OPEN_NO_REAPER or
 * LUO_NO_REAPER_ENV turned it off, an "mm reaper" takes a reference on
 * the old address space: the old image's memory is torn down in it, after the new image
 * started, so the blackout does not grow with what was mapped (arenas
 * above all). It is made in two clone(CLONE_VM) steps: the first child
 * closes every fd it inherited before anything else, starts the reaper
 * and exits, and luo_update() waits for it before execve(). So no copy of
 * the old fd table outlives execve(): an unpreserved close-on-exec fd is
 * closed by the time the new image's main() runs. The reaper is then an
 * orphan: init (or the nearest PR_SET_CHILD_SUBREAPER ancestor, this
 * process included if it is one) adopts and reaps it; it is never a
 * zombie of this process, whatever the new image does. It runs
 * SCHED_IDLE, holds no fd, blocks all signals and waits 100 ms after the
 * exec so that the teardown does not compete with the new image's start
 * (the old image's private memory is freed that much later). It learns
 * of the exec when the write end of a close-on-exec pipe closes; a child
 * that fork() makes before the exec (in a callback, or in another thread)
 * closes its copy at once (pthread_atfork), but a child made with a raw
 * clone() syscall keeps it, and the old memory then lives until that
 * child exits or execs. A failed update stops the reaper. Without a
 * reaper (or if it cannot be made) execve() does the teardown itself.
 *
 * The blob records this process's argv (from /proc/self/cmdline, as the
 * process may have rewritten it) and binary for a rollback; the old image
 * would come back with the environment given to the new one.
 *
 * Return: does not return on success. Otherwise everything is as before the
 * call and the service keeps running: -EPROTO negotiation refused (see
 * luo_update_report()); -ENOEXEC @path is not an ELF binary or its
 * manifest is malformed; -ELIBACC libelf.so.1 (libelf1), which libluo
 * loads on the first manifest it reads, cannot be loaded; -ENOENT /
 * -EACCES and the other errors of execve() for @path; -EINVAL bad
 * arguments; -ENOMEM; the error of a handler's freeze or of a component's
 * save (-E2BIG: a payload larger than LUO_COMPONENT_DATA_MAX); -E2BIG this
 * process's argv passes LUO_ABI_ARGV_MAX strings or LUO_ABI_ARGV_BYTES_MAX
 * bytes; -ENODATA it has none; -ENOSPC the handover would pass
 * LUO_ABI_BLOB_MAX; -EDEADLK called from a quiesce callback of
 * luo_update_quiescing(); -EPERM called in a child of fork() with the
 * handle its parent opened (what it holds is the parent's to hand over).
 * Another luo_update() waits until it returns; other calls on the handle
 * from other threads wait from the second negotiation on (the manifests
 * are read and the reaper started without holding the handle). Between
 * clearing close-on-exec and execve(), a fork() in another thread would
 * inherit the preserved fds.
 */
LUO_EXPORT int luo_update(struct luo *luo, const char *path, char *const argv[], char *const envp[]);

/**
 * luo_update_quiescing() - luo_update(), pausing the program only once the update will go ahead.
 * @quiesce:  called after the slow steps, which run while the program still
 *            serves: @path's manifest and this image's read, a first
 *            negotiation passed, the mm reaper started (about 1 ms for
 *            kvcache); right before the negotiation that decides (what is
 *            present may have changed meanwhile: it can still refuse) and
 *            the freeze. Stop what must not run while the state is saved
 *            (worker threads). A negative errno ends the update with that
 *            error, nothing changed: undo what was done first, @resume is
 *            not called then.
 * @resume:   called if the update is refused or fails after @quiesce
 *            returned 0 or more (never on success: execve() does not
 *            return), before this returns: undo @quiesce.
 * @userdata: passed to both.
 *
 * A program that pauses itself and then calls luo_update() makes its
 * clients wait through the slow steps too, and an update the first
 * negotiation refuses pauses it for nothing. This is what luo_control_dispatch() does with the callbacks of
 * luo_control_set_quiesce().
 *
 * Return: as luo_update(), whose errors it returns; -EINVAL also when
 * @quiesce or @resume is NULL; the error @quiesce returned.
 */
LUO_EXPORT int luo_update_quiescing(struct luo *luo, const char *path, char *const argv[], char *const envp[],
				    int (*quiesce)(void *userdata), void (*resume)(void *userdata), void *userdata);

/* The verdict of negotiation for one entry. */
enum luo_verdict {
	LUO_VERDICT_USE = 1,  /* handed over at .version */
	LUO_VERDICT_DROP,     /* optional, no common version: new image cold-starts */
	LUO_VERDICT_REFUSE,   /* mandatory, no common version: update refused */
	LUO_VERDICT_NEW,      /* only the new image has it: it starts cold */
	LUO_VERDICT_DOWNGRADE, /* handed over at .version, lower than the highest
				* common one, whose types differ between the
				* images (.mismatch_version; .why names them) */
};

/* How the types of an entry's version were checked (struct luo_report_entry.types). */
enum luo_types_proof {
	LUO_TYPES_NONE = 0,  /* no version used, or nothing declares types (handlers built into libluo) */
	LUO_TYPES_PROVEN,    /* every type described by the compiler in both images, and alike */
	LUO_TYPES_UNPROVEN,  /* neither image describes them (luo-describe never ran): trusted */
};

/* Why an entry was refused or dropped (struct luo_report_entry.cause). */
enum luo_report_cause {
	LUO_CAUSE_NONE = 0,
	LUO_CAUSE_NO_COMMON_VERSION, /* the ranges do not meet */
	LUO_CAUSE_TYPES_DIFFER,      /* common versions exist; their types differ */
	LUO_CAUSE_NOT_DECLARED,      /* the new image does not declare it */
	LUO_CAUSE_STRICT,            /* LUO_OPEN_STRICT_TYPES: a downgrade or unproven types;
				      * a strict control request (agent.h): a drop too */
	LUO_CAUSE_FIELD_REFUSED,     /* a declared field refuses (fields.h): the why names it */
};

/* Bytes of struct luo_report_entry.why, with its NUL. */
#define LUO_REPORT_WHY_SIZE 400

/* An inclusive range of versions; {0, 0} = none (not declared). */
struct luo_version_range {
	uint32_t min;
	uint32_t max;
};

struct luo_report_entry {
	char name[LUO_ABI_NOTE_NAME_SIZE];
	uint32_t kind;      /* LUO_ABI_KIND_COMPONENT, _HANDLER or _FORMAT */
	bool optional;
	struct luo_version_range old_read, old_write; /* this image */
	struct luo_version_range new_read, new_write; /* the new image */
	enum luo_verdict verdict;
	uint32_t version;   /* USE, DOWNGRADE: the version written; else 0 */
	uint32_t types;     /* enum luo_types_proof, of .version */
	uint32_t cause;     /* enum luo_report_cause: REFUSE, DROP, DOWNGRADE */
	uint32_t mismatch_version; /* the highest version skipped because types differ; 0 none */
	char why[LUO_REPORT_WHY_SIZE]; /* one line, for people; names the struct and member that differ */
};

/**
 * luo_update_report() - the negotiation of the last luo_update() call.
 *
 * The entries stay valid until the next luo_update() or luo_close().
 *
 * Return: 0; -ENODATA the last luo_update() failed before negotiating
 * (bad path, unreadable manifest), or none was called.
 */
LUO_EXPORT int luo_update_report(const struct luo *luo, const struct luo_report_entry **ret_entries,
				 size_t *ret_n);

/**
 * luo_report_entry_format() - one entry as a line of text (no newline).
 *
 * Return: the length snprintf() would give.
 */
LUO_EXPORT int luo_report_entry_format(const struct luo_report_entry *entry, char *buf, size_t len);

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
 * With LUO_OPEN_AGENT, a name that no session of the exec handover (nor an
 * outgoing one) has is asked of the agent: its deposit becomes an incoming
 * session like the exec handover's (see "The agent" below). The agent
 * keeps its copy: a retrieve takes nothing away, a refused one neither.
 *
 * Return: 0; -EINVAL bad name, or already retrieved; -ENOENT no incoming
 * session has this name (always so on a fresh start), and the agent holds
 * none either, or there is no agent. From the agent, a deposit refused as
 * the exec handover would be, with every fd it brought closed, nothing
 * adopted and luo_agent_error()'s reason saying why: -EBADMSG its blob is
 * malformed, does not hold exactly this one session, or the fds do not
 * match its files; -EPROTO a handler version, or a mandatory component's
 * version, this build cannot read, or a handler it does not have; -EBADFD
 * a received fd is not the object recorded for it; -EIO a mandatory
 * component's load failed. And: -ECONNRESET, -ETIMEDOUT the connection
 * failed (retry: the next call connects again); -ENOMEM.
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
 * An open file is preserved once, as the kernel's LUO does: the same open
 * file again -- @fd itself or any fd that refers to it, a dup() included --
 * under any token, in any outgoing session, is -EBUSY until it is
 * unpreserved (or its session closed). A second open() of the same file is
 * another open file. "The same" is decided by kcmp(KCMP_FILE); where
 * kcmp() is unavailable (ENOSYS, or EPERM under a seccomp profile), by the
 * same st_dev, st_ino, file status flags and kind (the /proc/self/fd link;
 * for eventfds, fdinfo's eventfd-id where the kernel has it), which may
 * refuse a distinct open that looks the same (two timerfds, say). Files
 * retrieved from the previous image are not counted (the kernel counts
 * them until their session is finished). Handlers marked
 * LUO_FILE_OPS_SHARED may share a file with each other.
 *
 * Return: 0; -EINVAL incoming session; -EBADF @fd
 * is not open; -EEXIST @token is in use in this session; -ENOSPC
 * LUO_SESSION_FILES_MAX or LUO_FILES_MAX reached; -ENOENT no handler can
 * preserve this kind of file; -EBUSY this open file is already preserved;
 * -EMFILE / -ENOMEM; or a handler's error. The checks run in this order,
 * the kernel's, but for -EINVAL and -EBADF first.
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
 * luo_session_preserve_fd_named() - luo_session_preserve_fd() with a name.
 * @name: NULL (no name, as luo_session_preserve_fd()) or 1..LUO_FILE_NAME_MAX
 *        bytes of 0x21..0x7e; names need not be unique.
 *
 * The name crosses the handover with the fd (and a deposit in the agent):
 * the next image reads it with luo_session_fd_name() or looks the token up
 * with luo_session_find_name(), as sd_listen_fds_with_names() would.
 *
 * Return: as luo_session_preserve_fd(); -EINVAL also for a bad name
 * (nothing preserved then).
 */
LUO_EXPORT int luo_session_preserve_fd_named(struct luo_session *session, int fd, uint64_t token,
					     const char *name);

/**
 * luo_incoming_sessions() - the names of the incoming sessions.
 * @ret_names: room for @max names (NULL if @max is 0); each valid until
 *             its session is closed (luo_session_close(), luo_close()).
 * @ret_n:     how many there are, which may be more than @max: call again
 *             with more room.
 *
 * Lists every incoming session the handle holds, retrieved or not, in the
 * order of the handover: those of the exec handover (or the rollback), and
 * those already retrieved from the agent (the agent's others are listed by
 * luoctl sessions, not here). A fresh start has none. Sessions not
 * retrieved are closed, with their fds, at luo_close(): list them to take
 * them.
 *
 * Return: 0; -EINVAL bad arguments.
 */
LUO_EXPORT int luo_incoming_sessions(struct luo *luo, const char **ret_names, size_t max, size_t *ret_n);

/**
 * luo_session_tokens() - the tokens of the files the session holds.
 * @ret_tokens: room for @max tokens (NULL if @max is 0), in preserve order.
 * @ret_n:      how many there are (may be more than @max).
 *
 * Incoming: the files of the handover, retrieved or not, until
 * luo_session_finish() (none after it). Outgoing: those preserved now.
 *
 * Return: 0; -EINVAL bad arguments.
 */
LUO_EXPORT int luo_session_tokens(struct luo_session *session, uint64_t *ret_tokens, size_t max, size_t *ret_n);

/**
 * luo_session_fd_name() - the name given to the file under @token at preserve time.
 * @buf: receives the name and its NUL; @len: its size (LUO_FILE_NAME_MAX + 1 is enough).
 *
 * Return: the name's length; -ENOENT unknown token; -ENODATA preserved
 * without a name; -ERANGE @buf too small (nothing written); -EINVAL.
 */
LUO_EXPORT int luo_session_fd_name(struct luo_session *session, uint64_t token, char *buf, size_t len);

/**
 * luo_session_find_name() - the token of the first file (in preserve order) named @name.
 *
 * Return: 0; -ENOENT none has it; -EINVAL bad arguments or name.
 */
LUO_EXPORT int luo_session_find_name(struct luo_session *session, const char *name, uint64_t *ret_token);

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
/* The agent: sessions that survive the process (luod)                        */

/*
 * With LUO_OPEN_AGENT, luo_open() connects to luod (the socket named by
 * LUO_AGENT_SOCKET, else /run/luo/agent.sock for root and
 * $XDG_RUNTIME_DIR/luo/agent.sock for other users; include/luo/agent.h).
 * An outgoing session can then be deposited there, as often as the
 * program likes; after the process exits, crashes or is restarted by its
 * supervisor, the next one retrieves it by name with the usual calls:
 * luo_session_retrieve() looks in the agent when the exec handover has no
 * session of that name, then luo_session_retrieve_fd(),
 * luo_arena_retrieve() and luo_component_incoming() work as after an exec.
 * A session is keyed by the owner's uid and its name: pick names that
 * other services of the same uid do not use.
 *
 * The connection: SOCK_SEQPACKET, close-on-exec; the agent must run as
 * root or as this uid (else -EACCES: the fds would go to someone else);
 * each send or receive waits at most 5 s, so a stuck agent costs a call
 * -ETIMEDOUT, never the service. A connection that fails (timeout, the
 * agent gone, a message that breaks the protocol) is closed, and the next
 * call on the agent connects again; so does a call after luo_open() did
 * not find the agent. The connection takes nothing over from the one
 * before: deposits stay tied to the connection that made them.
 *
 * A retrieved deposit is checked as the exec handover is (its blob as
 * hostile input, every fd against its handler's record). Arenas come back
 * at their address (reserved when the session is retrieved, since no
 * constructor saw them coming: a range already taken is -EADDRINUSE from
 * luo_arena_retrieve()). Components come with the first retrieved
 * deposit that carries them (LUO_DEPOSIT_COMPONENTS), once per process,
 * and only if the exec handover brought none; luo_component_incoming()
 * then tells the outcome as after an exec.
 */

/* Flags for luo_session_deposit(). */
enum {
	/*
	 * Keep the deposited state if this process dies without luo_close()
	 * or luo_update() (a crash). Without it, the agent forgets the
	 * session when the process dies; a clean luo_close() keeps it.
	 */
	LUO_DEPOSIT_KEEP_ON_CRASH = 1u << 0,
	/*
	 * Carry the state of every registered component too, each saved at
	 * its write_max. The retriever loads them (once per process, with
	 * the first retrieved session that carries them) if its build reads
	 * that version; a mandatory one it cannot read makes
	 * luo_session_retrieve() fail with -EPROTO, leaving the deposit
	 * where it is.
	 */
	LUO_DEPOSIT_COMPONENTS = 1u << 1,
};

/**
 * luo_session_deposit() - send the outgoing session's current state to the agent.
 * @flags: LUO_DEPOSIT_*; other bits: -EINVAL.
 *
 * The files are frozen and unfrozen around the copy like an update's, the
 * blob is written as for an exec handover, and the agent replaces what it
 * held under this name atomically. The session stays outgoing and usable.
 *
 * The session's files stay frozen until their fds were sent, not while
 * the agent answers. Components (LUO_DEPOSIT_COMPONENTS) are saved at
 * their write_max, with the lock held, as in luo_update().
 *
 * Return: 0; -EINVAL incoming session or bad flags; -ENOTCONN no agent
 * (luo_open() without LUO_OPEN_AGENT, or none answered, now either);
 * -EDQUOT the agent's limit for this uid (sessions, fds or bytes);
 * -ENFILE the agent is out of fds; -ECONNRESET the agent went away
 * (retry: the next call connects again); -ETIMEDOUT it did not answer in
 * time (the connection is closed: retry); -EBADMSG it broke the protocol;
 * -ENOSPC the blob would pass LUO_ABI_BLOB_MAX; other refusals of the
 * agent (include/luo/agent.h); or a handler's freeze error, a component's
 * save error, -ENOMEM. luo_agent_error() gives the agent's reason.
 */
LUO_EXPORT int luo_session_deposit(struct luo_session *session, unsigned int flags);

/**
 * luo_session_withdraw() - ask the agent to forget the session @name.
 *
 * Return: 0; -EINVAL bad name; -ENOENT it holds none; -ENOTCONN,
 * -ECONNRESET, -ETIMEDOUT, -EBADMSG as above.
 */
LUO_EXPORT int luo_session_withdraw(struct luo *luo, const char *name);

/**
 * luo_agent_error() - whether the agent is connected, and why the last call failed.
 * @ret_reason: optional; valid until luo_close(), for people: why there
 *              is no connection, or else why the last call on the agent
 *              failed -- its refusal of a deposit, a withdraw or a
 *              retrieve, or libluo's refusal of a retrieved deposit (the
 *              exec handover's refusals are luo_incoming_error()'s). ""
 *              if none failed since the connection was made; a later
 *              success does not clear it.
 *
 * Return: 0 connected; -ENOTCONN LUO_OPEN_AGENT not given; else the
 * error of the connection, at luo_open() or since (-ENOENT no socket,
 * -ECONNREFUSED no agent listening, -EACCES not allowed or the agent runs
 * as another uid, -EPROTONOSUPPORT another protocol version, -ETIMEDOUT,
 * -ECONNRESET, -EBADMSG the connection failed later).
 */
LUO_EXPORT int luo_agent_error(const struct luo *luo, const char **ret_reason);

/* ------------------------------------------------------------------------ */
/* The control socket: live updates asked from outside (luoctl update)       */

/**
 * luo_control_listen() - listen for luoctl update --pid on this process's control socket.
 * @ret_fd: the listening fd, owned by libluo; poll it for POLLIN and call
 *          luo_control_dispatch() then.
 *
 * The address is abstract (include/luo/agent.h): "\0luo-control.<pid>".
 * Idempotent: a second call returns the same fd. Call it before
 * luo_ready(), which answers the luoctl that asked for the update that
 * led here: luoctl may ask again at once. The socket crosses every exec
 * handover and rollback (like a preserved fd): in an image that came by
 * exec, this takes back the one the old image listened on, without a bind;
 * connections waiting in its backlog are served by the new image.
 *
 * Return: 0; -EADDRINUSE another socket holds the address; the errors of
 * socket(), bind(), listen().
 */
LUO_EXPORT int luo_control_listen(struct luo *luo, int *ret_fd);

/**
 * luo_control_dispatch() - serve what is pending on the control socket.
 *
 * Does not block for long. Accepts a connection from the same uid (or
 * root) whose process could ptrace(2) this one (else it is answered
 * -EPERM), reads its request, and for UPDATE runs what luo_update() does
 * with the program's own argv, calling the quiesce callback
 * (luo_control_set_quiesce()) once the slow steps are done and the update
 * is known to be accepted: the manifests read, a first negotiation
 * passed, the mm reaper started -- the service still serves through them,
 * and an update that negotiation refuses never pauses it. On success it does not return (the new image's
 * luo_ready() answers the caller with the timings); a refusal is answered
 * with the error and the negotiation report, and the service keeps
 * running. Call it where the program may call luo_update() itself: the
 * components' save callbacks run inside.
 *
 * Return: 0 nothing pending or a request served (refusals included: the
 * refused luo_update()'s error is for the caller, luo_update_report()
 * has the report); -EBADF luo_control_listen() not called; -EMFILE,
 * -ENFILE, -ENOBUFS, -ENOMEM accept() failed (the connection stays
 * pending). Each call serves a bounded number of connections, and waits
 * for peers (their requests, their reading of the answers) 100 ms at most
 * in all; stdio is flushed (fflush(NULL)) before luo_update().
 */
LUO_EXPORT int luo_control_dispatch(struct luo *luo);

/**
 * luo_control_set_quiesce() - what runs around an update asked on the control socket.
 * @quiesce: called by luo_control_dispatch() once the requester is known to
 *           be allowed (same uid or root, and able to ptrace(2) this
 *           process), its request is read and a first negotiation accepted
 *           it, right before the freeze: stop what must not run while the
 *           state is saved (worker threads). A negative errno refuses the
 *           request with it (undo what was done first: @resume is not
 *           called then).
 * @resume:  called when the update was refused or failed after @quiesce
 *           succeeded, before the requester is answered: undo @quiesce.
 * @userdata: passed to both.
 *
 * Without it, luo_control_dispatch() quiesces nothing, and a program that
 * stops its workers before calling it lets any uid that can connect stop
 * them. Both NULL: no callbacks again.
 *
 * Return: 0; -EINVAL no @luo, or one of @quiesce and @resume without the other.
 */
LUO_EXPORT int luo_control_set_quiesce(struct luo *luo, int (*quiesce)(void *userdata),
				       void (*resume)(void *userdata), void *userdata);


/* ------------------------------------------------------------------------ */
/* Arenas: memory that keeps its address across the switch                   */

/*
 * An arena is a memfd mapped at an address the next image maps again at
 * the same place, so pointers stored inside stay valid with no fix-up. An
 * allocator whose metadata lives inside the arena (luo_arena_alloc()) and
 * a root pointer let the program find its structures again.
 *
 * The next image reserves every incoming arena's address range from a
 * libluo constructor, before main() and before the program's own
 * constructors; if something already holds part of it (a library mapped
 * there), luo_arena_retrieve() fails with -EADDRINUSE: an arena is never
 * moved. luo_arena_retrieve_error() says where.
 *
 * An arena's calls may come from any thread: they take its own lock, but
 * for allocations and frees of up to 256 bytes, which a cache per thread
 * serves (64 free blocks per size class at most; given back when the
 * thread exits, when the arena is frozen for an update and when it is
 * closed; see luo_arena(3)).
 */

/*
 * Arena sizes, the data asked for: LUO_ARENA_SIZE_MIN..LUO_ARENA_SIZE_MAX,
 * multiples of 64 KiB. The allocator's metadata comes on top, in whole
 * pages (16 bytes per 64 KiB, plus a header: 0.025% of the data, 8 KiB for
 * 16 MiB), so the mapping (luo_arena_size()) is a little larger.
 */
#define LUO_ARENA_SIZE_MIN (1u << 20)
#define LUO_ARENA_SIZE_MAX (1ull << 40)
/* Incoming arenas one image reserves. */
#define LUO_ARENAS_MAX 64

enum {
	/* Ask for transparent huge pages (MADV_HUGEPAGE) where shmem allows them. */
	LUO_ARENA_HUGEPAGES = 1u << 0,
	/* Fault every page in at retrieval instead of lazily on first touch. */
	LUO_ARENA_PREFAULT = 1u << 1,
};

struct luo_arena;

/**
 * luo_arena_create() - a new arena, preserved in @session under @token.
 * @size: bytes, LUO_ARENA_SIZE_MIN..LUO_ARENA_SIZE_MAX, a multiple of 64 KiB.
 * @flags: LUO_ARENA_HUGEPAGES, LUO_ARENA_PREFAULT (recorded for the next image).
 *
 * Return: 0; -EINVAL bad arguments or incoming session; -EEXIST token in
 * use; -ENOMEM no address range free; -ENOSPC session limits; or the error
 * of memfd_create(), ftruncate() or mmap().
 */
LUO_EXPORT int luo_arena_create(struct luo_session *session, uint64_t token, size_t size, unsigned int flags,
				struct luo_arena **ret_arena);

/**
 * luo_arena_retrieve() - map the incoming arena under @token at its address.
 *
 * Once per token. The region's allocator state is hostile input, checked
 * in three steps so that the blackout does not grow with the arena: here
 * its header, in O(1); on the first luo_arena_alloc(), luo_arena_free()
 * or luo_arena_set_root() (or luo_arena_check(), to choose the moment) its
 * chunk map, in O(size); each slab's free list when that slab is first
 * used (a bad one is quarantined). Reading the program's own structures
 * through luo_arena_root() needs none of it: the allocator's check never
 * vouched for them anyway.
 *
 * Return: 0; -EINVAL outgoing or finished session, or retrieved already;
 * -ENOENT no arena under @token; -EADDRINUSE its address range is taken in
 * this image; -EBADMSG its allocator header is corrupt; -ENOMEM.
 */
LUO_EXPORT int luo_arena_retrieve(struct luo_session *session, uint64_t token, struct luo_arena **ret_arena);

/**
 * luo_arena_check() - run the deferred check of a retrieved arena's allocator now.
 * @ret_reason: optional; why it was refused, valid while the arena is.
 *
 * Idempotent; 0 at once for a created arena or one checked already. After
 * a refusal the allocator is disabled for good: luo_arena_alloc() returns
 * NULL with errno EBADMSG, luo_arena_free() does nothing,
 * luo_arena_set_root() returns -EBADMSG; the mapping and luo_arena_root()
 * stay, the program's data is untouched.
 *
 * Return: 0; -EBADMSG the chunk map, bitmap, class lists or counters are
 * corrupt; -EPERM a child of fork() (luo_arena_close()); -EINVAL no arena.
 */
LUO_EXPORT int luo_arena_check(struct luo_arena *arena, const char **ret_reason);

/*
 * luo_arena_retrieve_error() - why the last luo_arena_retrieve() on
 * @session that found its arena failed ("" if none did; a later success
 * does not clear it); valid while the session is.
 */
LUO_EXPORT const char *luo_arena_retrieve_error(const struct luo_session *session);

/**
 * luo_arena_preserve() - hand an arena (created or retrieved) to the next image too.
 *
 * An arena is preserved once among the outgoing sessions, as any open file
 * (luo_session_preserve_fd()): a second luo_arena_preserve() of it, or of
 * its memfd, before it is unpreserved is -EBUSY. A retrieved arena may be
 * preserved before its incoming session is finished.
 *
 * Return: as luo_session_preserve_fd(); -EBUSY already preserved.
 */
LUO_EXPORT int luo_arena_preserve(struct luo_session *session, uint64_t token, struct luo_arena *arena);

/*
 * Unmap and free the handle; a preserved arena stays preserved. Its address
 * range stays reserved (inaccessible) for the life of the process, so that
 * no later arena takes it. NULL is allowed.
 *
 * An arena belongs to the process that created or retrieved it. A child of
 * fork() shares its memory with the parent but not its lock or thread
 * caches, so in the child every arena it inherited is read-only:
 * luo_arena_alloc() returns NULL with errno EPERM, luo_arena_free() does
 * nothing, luo_arena_set_root(), luo_arena_check(), luo_arena_bind_type()
 * and the luo_arena_populate_*() calls return -EPERM; luo_arena_root(),
 * _base() and _size() still work, and luo_arena_close() unmaps the child's
 * view only; luo_arena_preserve() and luo_arena_retrieve() of an arena
 * the parent may still take return -EPERM. Arenas the child makes itself
 * are its own. (pthread_atfork(): a child made by a raw clone() or vfork()
 * must not touch them at all.)
 */
LUO_EXPORT void luo_arena_close(struct luo_arena *arena);

/*
 * Allocate @size bytes (16-byte aligned) in the arena; NULL and errno
 * ENOMEM when full, EBADMSG when luo_arena_check() refused the allocator,
 * EPERM in a child of fork() (luo_arena_close()).
 */
LUO_EXPORT void *luo_arena_alloc(struct luo_arena *arena, size_t size);
/* Free; a pointer that is not a live allocation is ignored (and counted). */
LUO_EXPORT void luo_arena_free(struct luo_arena *arena, void *ptr);
/* The root pointer: NULL or inside the arena (-EINVAL otherwise; -EPERM in a child of fork()). */
LUO_EXPORT int luo_arena_set_root(struct luo_arena *arena, void *ptr);

/**
 * luo_arena_bind_type() - say which declared type graph the arena holds.
 * @component, @version: a LUO_ARENA_TYPE() declaration of this program.
 *
 * The arena's header keeps the digest of that type's description (written
 * by luo-describe). Called on a retrieved arena, it first compares the
 * digest the previous image recorded with this image's, in O(1): the second
 * check of what negotiation checked before the switch, for an arena that
 * came some other way (the agent, a rollback, a build never negotiated
 * with). Call it after luo_arena_retrieve() or luo_arena_create(), with the
 * version the component was loaded at (luo_component_incoming()).
 *
 * Return: 0 (also when either image is unproven: nothing to compare);
 * -EPROTO the arena was written with another type graph: do not use it;
 * -ENOENT no LUO_ARENA_TYPE() of this program declares it; -EBADMSG the
 * allocator's check refused the arena; -EPERM a child of fork(); -EINVAL bad
 * arguments.
 */
LUO_EXPORT int luo_arena_bind_type(struct luo_arena *arena, const char *component, uint32_t version);
LUO_EXPORT void *luo_arena_root(struct luo_arena *arena);
LUO_EXPORT void *luo_arena_base(const struct luo_arena *arena);
/* The mapping: the size asked for at creation plus the metadata pages. */
LUO_EXPORT size_t luo_arena_size(const struct luo_arena *arena);

/*
 * Populating an arena's page tables in the background.
 *
 * After an update the arena's data is all in memory (the memfd's pages),
 * but the new image has no page table entries for it: every first touch
 * of a page is a fault, and a service reading random keys runs at a
 * fraction of its speed until most of the arena is mapped again. A
 * populate thread maps it ahead of the service, over the memfd's data
 * extents only (SEEK_DATA/SEEK_HOLE: holes, never written or punched out
 * by luo_arena_free(), stay holes and cost no memory), one chunk at a time,
 * yielding the CPU between chunks, at nice 19 by default. It maps by
 * reading one byte per page (the kernel's fault-around maps the
 * neighbouring resident pages with each fault): on a 2-CPU Linux 6.18
 * guest that cost 0.35 us of CPU per 4 KiB page, against 0.60 us for
 * MADV_POPULATE_READ (Linux 5.14), which LUO_ARENA_POPULATE_MADVISE asks
 * for instead; where that madvise is refused (EINVAL: an older kernel) it
 * falls back to the reads, and the status says so.
 *
 * Call it after luo_ready(), so the thread never delays the switch. The
 * thread blocks every signal, opens nothing, and reads the arena but never
 * writes it; an execve() (the next update) ends it with the rest
 * of the process, but a service should stop it before it quiesces, so
 * that a low-priority thread is not what the exec waits for. A child of
 * fork() has no such thread; there the populate calls return -EPERM.
 *
 * A page luo_arena_free() punches out of the memfd while the thread maps
 * that very range may be mapped again as a zero page (memory, never
 * data: the allocator holds it free); it is released when that chunk is
 * next freed.
 */

/* Bytes per step (between two yields) when the caller passes 0. */
#define LUO_ARENA_POPULATE_CHUNK (2u << 20)
/* The largest chunk accepted. */
#define LUO_ARENA_POPULATE_CHUNK_MAX (1u << 30)

enum {
	/* SCHED_IDLE instead of nice 19: runs only on an otherwise idle CPU. */
	LUO_ARENA_POPULATE_IDLE = 1u << 0,
	/* The caller's own priority instead of nice 19 (still yields between chunks). */
	LUO_ARENA_POPULATE_NORMAL = 1u << 1,
	/* MADV_POPULATE_READ instead of a read per page (reads where refused). */
	LUO_ARENA_POPULATE_MADVISE = 1u << 2,
	/*
	 * Then turn every 2 MiB-aligned range that is all data into a
	 * transparent huge page (MADV_COLLAPSE, Linux 6.1; taken whatever
	 * shmem_enabled says but "deny"), so that the next image maps it with
	 * one entry instead of 512. It copies: 1.5 s of CPU per GiB on a 2-CPU
	 * Linux 6.18 guest, once; a range huge already costs nothing. A free
	 * chunk punched out of a huge page splits it again.
	 */
	LUO_ARENA_POPULATE_COLLAPSE = 1u << 3,
};

enum luo_arena_populate_state {
	LUO_ARENA_POPULATE_NONE = 0, /* never started */
	LUO_ARENA_POPULATE_RUNNING,
	LUO_ARENA_POPULATE_DONE,     /* every data extent mapped */
	LUO_ARENA_POPULATE_STOPPED,  /* luo_arena_populate_stop() before the end */
	LUO_ARENA_POPULATE_FAILED,   /* see error */
};

struct luo_arena_populate_status {
	enum luo_arena_populate_state state;
	int error;               /* FAILED: the negative errno that stopped it */
	bool fallback;           /* _MADVISE asked for, refused: pages read one by one */
	uint64_t populated;      /* bytes of data extents mapped so far */
	uint64_t collapsed;      /* _COLLAPSE: bytes turned into (or found as) huge pages */
	bool collapse_refused;   /* _COLLAPSE: the kernel refused MADV_COLLAPSE (EINVAL, EPERM) */
	uint64_t elapsed_ns;     /* from the start to the end, or to now while running */
};

/**
 * luo_arena_populate_start() - map @arena's resident pages from a background thread.
 * @chunk: bytes per step, a multiple of the page size up to
 *         LUO_ARENA_POPULATE_CHUNK_MAX; 0 for LUO_ARENA_POPULATE_CHUNK.
 * @flags: LUO_ARENA_POPULATE_IDLE or _NORMAL (not both), LUO_ARENA_POPULATE_MADVISE,
 *         LUO_ARENA_POPULATE_COLLAPSE; other bits are -EINVAL.
 *
 * A created arena may be populated too (after madvise(MADV_DONTNEED), say),
 * but a retrieved one is the point. A thread that ended (done, stopped or
 * failed) is joined and a new one started.
 *
 * Return: 0 the thread runs; -EINVAL bad arguments; -EBUSY one is running;
 * -EPERM a child of fork() (luo_arena_close()); or the error of pthread_create().
 */
LUO_EXPORT int luo_arena_populate_start(struct luo_arena *arena, size_t chunk, unsigned int flags);

/**
 * luo_arena_populate_stop() - stop @arena's populate thread and wait for it.
 *
 * Returns once the thread has exited (at most one chunk after the call).
 * Idempotent; 0 at once if none was started or it ended already.
 * luo_arena_close() does it too. Not from the populate thread (it runs no
 * caller code).
 *
 * Return: 0; -EINVAL no arena; -EPERM a child of fork() (luo_arena_close()).
 */
LUO_EXPORT int luo_arena_populate_stop(struct luo_arena *arena);

/**
 * luo_arena_populate_status() - where @arena's populate thread is.
 *
 * Return: 0 and *@ret_status filled; -EINVAL a NULL argument; -EPERM a
 * child of fork().
 */
LUO_EXPORT int luo_arena_populate_status(struct luo_arena *arena, struct luo_arena_populate_status *ret_status);


/* ------------------------------------------------------------------------ */
/* Components: the program's own versioned state                             */

/*
 * A component is a piece of the program's own state that crosses an
 * update as a payload of bytes, written at one integer version and read
 * by a load callback that accepts a range of versions. Declare each one
 * once, at file scope, with LUO_COMPONENT(): the declaration registers it
 * when the program starts (a constructor) and records it in the binary's
 * .note.luo section, where luoctl and the old image's luo_update() read it
 * without running the program.
 *
 *   static int save(uint32_t version, struct luo_payload *out);
 *   static int load(uint32_t version, const void *data, size_t len);
 *   LUO_COMPONENT(sessions_table, "sessions-table", 1, 3, 2, 3, 0, save, load);
 *
 * reads versions 1..3, writes 2..3, mandatory (flag LUO_COMPONENT_OPTIONAL:
 * optional). save() runs in the old image inside luo_update() (and
 * luo_session_deposit(), luo_control_dispatch()), with the version
 * negotiated; load() runs in the new image inside luo_open() (or
 * luo_session_retrieve(), for a deposit with components), with the version
 * found and the data aligned for any type (max_align_t). A non-zero save refuses the update; a non-zero load of a
 * mandatory component rolls back (see luo_open()), of an optional one makes
 * it cold-start. LUO_COMPONENT_WITH_DATA() gives both a user pointer.
 *
 * What a callback may call (a component's save() and load(), and a file
 * handler's ops alike). They run with libluo's lock held, so:
 *   allowed        luo_payload_write() (in save()), the arena calls on a
 *                  handle the program holds (luo_arena_alloc(), _free(),
 *                  _root(), _set_root(), _base(), _size(), _check(): each
 *                  takes the arena's own lock), luo_liveupdate_number(),
 *                  luo_is_incoming(), luo_session_name(),
 *                  luo_session_is_incoming(), luo_report_entry_format();
 *   -EDEADLK       every call that takes the handle's lock: luo_update(),
 *                  luo_update_report(), luo_ready(), luo_timings(),
 *                  luo_session_create(), _retrieve(), _preserve_fd(),
 *                  _preserve_fd_named(), _unpreserve_fd(), _retrieve_fd(),
 *                  _finish(), _deposit(), _withdraw(), _tokens(),
 *                  _fd_name(), _find_name(), luo_incoming_sessions(),
 *                  luo_arena_create(), _retrieve(), _preserve(),
 *                  luo_agent_error(), luo_control_listen(), _dispatch(),
 *                  _set_quiesce();
 *                  luo_close() and luo_session_close() do nothing;
 *   -EBUSY         luo_open() (a handle is open, or being opened),
 *                  luo_component_register*() and
 *                  luo_file_handler_register*() / _unregister().
 * That is checked per thread: another thread's calls wait for the lock.
 */

/* A component's name is 1..LUO_COMPONENT_NAME_MAX bytes. */
#define LUO_COMPONENT_NAME_MAX (LUO_ABI_NOTE_NAME_SIZE - 1)
/* Components one process registers. */
#define LUO_COMPONENTS_MAX 64
/* Bytes of one component's payload. */
#define LUO_COMPONENT_DATA_MAX (16u << 20)

#define LUO_COMPONENT_OPTIONAL LUO_ABI_FLAG_OPTIONAL

struct luo_payload;

struct luo_component {
	const char *name;
	uint32_t read_min, read_max;   /* 1 <= read_min <= read_max */
	uint32_t write_min, write_max; /* inside the read range */
	uint32_t flags;                /* 0 or LUO_COMPONENT_OPTIONAL */
	int (*save)(uint32_t version, struct luo_payload *out);
	int (*load)(uint32_t version, const void *data, size_t len);
};

/*
 * A component whose callbacks get a user pointer. base.save and base.load
 * must be NULL; the others are called, with @userdata.
 */
struct luo_component_with_data {
	struct luo_component base;
	int (*save)(uint32_t version, struct luo_payload *out, void *userdata);
	int (*load)(uint32_t version, const void *data, size_t len, void *userdata);
	void *userdata;
};

/**
 * luo_payload_write() - append bytes to a component's payload (in save()).
 *
 * Return: 0; -E2BIG the payload would pass LUO_COMPONENT_DATA_MAX;
 * -ENOMEM; -EINVAL bad arguments. A failure sticks: later writes return
 * it, and the update fails with it even if save() returns 0.
 */
LUO_EXPORT int luo_payload_write(struct luo_payload *out, const void *data, size_t len);

/**
 * luo_component_register() - what LUO_COMPONENT() calls at start-up.
 *
 * A component registered only this way is not in the manifest, so no new
 * image will be found to read it: declare components with LUO_COMPONENT().
 * An error is also remembered and returned by the next luo_open().
 *
 * Return: 0; -EINVAL bad name, ranges, flags or callbacks; -EEXIST a
 * component has this name; -ENOSPC LUO_COMPONENTS_MAX reached; -EBUSY a
 * struct luo is open.
 */
LUO_EXPORT int luo_component_register(const struct luo_component *component);

/**
 * luo_component_register_with_data() - what LUO_COMPONENT_WITH_DATA() calls at start-up.
 *
 * As luo_component_register(); luo_component_unregister(&component->base)
 * undoes it. Return: as luo_component_register(); -EINVAL also when
 * base.save or base.load is set, or save or load is missing.
 */
LUO_EXPORT int luo_component_register_with_data(const struct luo_component_with_data *component);

/**
 * luo_component_unregister() - what LUO_COMPONENT() calls at unload.
 *
 * While a struct luo is open the component is only marked gone (libluo
 * never calls it again); it leaves the registry at the next luo_close().
 * Unknown components are ignored.
 */
LUO_EXPORT void luo_component_unregister(const struct luo_component *component);

/**
 * luo_component_incoming() - what happened to a component at luo_open().
 * @ret_version: optional; the version it was loaded at.
 *
 * Return: 0 loaded; -ENODATA nothing came for it (fresh start, or the old
 * image did not have it); -ESTALE dropped at negotiation (no common
 * version), the component starts cold; -EIO an optional component whose
 * load failed, it starts cold; -ENOENT no such registered component.
 */
LUO_EXPORT int luo_component_incoming(const struct luo *luo, const char *name, uint32_t *ret_version);

#ifdef __cplusplus
}
#endif

#endif /* LUO_SERVICE_H */
