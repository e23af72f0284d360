/* SPDX-License-Identifier: MIT */
#ifndef LUO_INTERNAL_H
#define LUO_INTERNAL_H

/*
 * DOC: libluo's internal contract
 *
 * The objects behind the public handles and the calls the modules make on
 * each other: core.c (the handle, adoption of the handover), session.c
 * (sessions and their files), file-index.c (one open file, one
 * preservation), handler.c (the registry), handler-memfd.c and
 * handler-fd.c (built-in handlers), blob-read.c / blob-write.c (the FDT),
 * update.c (exec handover), self.c (this binary's path and build-id).
 */

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/types.h>

#include "luo/abi.h"
#include "luo/luo.h"

#define LUO_REASON_MAX 256

/*
 * Fault points, for the crash matrix only (tests/crash-matrix.md): in
 * libluo-faults, built with -DLUO_FAULT_INJECTION, LUO_FAULT_POINT("name")
 * kills the process with SIGKILL when LUO_TEST_CRASH_AT names that point
 * (fault.c); in every other build it is nothing and @name is not evaluated.
 */
#ifdef LUO_FAULT_INJECTION
void luo_fault_point(const char *name);
#define LUO_FAULT_POINT(name) luo_fault_point(name)
#else
#define LUO_FAULT_POINT(name) do { } while (0)
#endif
/* libluo's own fd references are never 0..2 (stdio). */
#define LUO_FD_MIN 3

struct luo_file {
	struct luo_session *session;
	const struct luo_file_handler *handler;
	uint64_t token;
	int fd;              /* libluo's own reference, close-on-exec */
	bool frozen;
	bool retrieved;      /* incoming: handed out at least once */
	bool validated;      /* incoming: the handler's retrieve() passed */
	struct luo_file_group *group; /* outgoing: its inode's group in the index (file-index.c) */
	char name[LUO_FILE_NAME_MAX + 1]; /* "" none; luo_session_preserve_fd_named() */
	uint8_t data[LUO_FILE_DATA_MAX] __attribute__((aligned(8)));
};

struct luo_session {
	struct luo *luo;
	char name[LUO_SESSION_NAME_MAX + 1];
	bool incoming;
	bool retrieved;      /* incoming: luo_session_retrieve() done */
	bool finished;       /* incoming: files released */
	struct luo_file **files;
	size_t n_files;
	size_t cap_files;
	char arena_reason[LUO_REASON_MAX]; /* the last failed luo_arena_retrieve() */
};

struct luo {
	pthread_mutex_t lock;
	bool incoming;
	bool ready;
	uint64_t lu_number;
	int incoming_error;
	char incoming_reason[LUO_REASON_MAX];

	struct luo_session **sessions;
	size_t n_sessions;
	size_t cap_sessions;
	size_t n_out_files; /* files in outgoing sessions */
	/* Those files by inode, for the double-preservation check (file-index.c). */
	struct luo_file_group **out_index;
	size_t out_index_cap; /* buckets: 0 or a power of two */
	size_t out_index_n_groups;
	bool out_index_no_kcmp; /* kcmp() failed once: the fallback from then on */

	/* Components, by registry index: luo_component_incoming() */
	int component_status[LUO_COMPONENTS_MAX];
	uint32_t component_version[LUO_COMPONENTS_MAX];
	/* Rollback: the error the new image refused with, and why. */
	int rollback_error;
	char rollback_reason[LUO_REASON_MAX];
	/* The previous image's mm reaper, to wait for (0: none). */
	pid_t reaper_pid;
	bool no_reaper; /* LUO_OPEN_NO_REAPER */
	bool strict_types; /* LUO_OPEN_STRICT_TYPES */
	bool strict_once;  /* the control request in progress asked for it (control.c) */
	/* The last luo_update()'s negotiation. */
	struct luo_report_entry *report;
	size_t n_report;

	/* The agent connection (agent-client.c); -1 none. */
	int agent_fd;
	int agent_error;
	char agent_reason[LUO_REASON_MAX];
	uint32_t agent_seq;
	uint16_t agent_op;      /* of the request under way: its reply echoes it */
	bool components_from_agent; /* a retrieved deposit's components were loaded */

	/* The control socket (control.c); -1 none. */
	int control_fd;        /* listening */
	int control_reply_fd;  /* incoming: the requester to answer from luo_ready() */
	int (*control_quiesce)(void *userdata); /* luo_control_set_quiesce() */
	void (*control_resume)(void *userdata);
	void *control_userdata;

	/* CLOCK_MONOTONIC ns; 0 = unknown */
	uint64_t t_freeze;
	uint64_t t_serialize;
	uint64_t t_exec;
	uint64_t t_open_start;
	uint64_t t_open_end;
	uint64_t t_ready;
};

/* util */
uint64_t luo_now_ns(void);
int luo_parse_u64(const char *s, uint64_t max, uint64_t *ret);
int luo_set_cloexec(int fd, bool on);
/* A component's or handler's callback runs on this thread (util.c): entry points answer -EDEADLK. */
void luo_callback_enter(void);
void luo_callback_leave(void);
bool luo_in_callback(void);

/* AT_SECURE: the environment is not ours to trust (util.c's DOC). */
bool luo_secure_exec(void);
/* getenv(), or NULL for every name in a secure-execution image. */
const char *luo_getenv(const char *name);

/* peer.c: who is at the other end of a unix socket (its DOC) */
/* The pid @pidfd's process has now; -ESRCH it has exited. */
int luo_pidfd_pid(int pidfd);
/* A pidfd for @sock's peer, whose SO_PEERCRED pid is @pid; *@ret_exact: by SO_PEERPIDFD. */
int luo_peer_pidfd(int sock, pid_t pid, bool *ret_exact);
/* 0 if the process @pidfd (pid @pid) could ptrace this one; -EPERM, -ESRCH, -errno. */
int luo_peer_may_ptrace(int pidfd, pid_t pid);

/* handler.c */
const struct luo_file_handler *luo_handler_for_fd(int fd);
const struct luo_file_handler *luo_handler_by_name(const char *name);
/* A handler's ops, run as callbacks (luo_callback_enter()): handler.c. */
bool luo_op_can_preserve(const struct luo_file_handler *h, int fd);
int luo_op_preserve(struct luo_file *f);
void luo_op_unpreserve(struct luo_file *f);
int luo_op_freeze(struct luo_file *f);
void luo_op_unfreeze(struct luo_file *f);
int luo_op_retrieve(struct luo_file *f);
bool luo_op_can_finish(struct luo_file *f);
void luo_op_finish(struct luo_file *f, bool retrieved);
int luo_handlers_hold(void);     /* the global "a struct luo is open" mark */
void luo_handlers_release(void);
/* The registry lock, shared by the component registry (component.c). */
void luo_registry_lock(void);
void luo_registry_unlock(void);
bool luo_registry_open_locked(void);
/* Registered then built-in handlers; while a struct luo is open. */
size_t luo_handlers_list(const struct luo_file_handler **out, size_t max);

/* component.c: the registry of LUO_COMPONENT()s and the payloads */
struct luo_payload {
	uint8_t *buf;
	size_t len;
	size_t cap;
	int error; /* the first failed luo_payload_write(): the save fails with it */
};

/* Call a component's save / load, with its user pointer if it has one, marked as a callback. */
int luo_component_save(const struct luo_component *c, uint32_t version, struct luo_payload *out);
int luo_component_load(const struct luo_component *c, uint32_t version, const void *data, size_t len);

/* A component's part in an outgoing blob (update.c -> blob-write.c). */
struct luo_component_out {
	const struct luo_component *component;
	bool dropped;
	uint32_t version;
	uint32_t type_size; /* sizeof its payload type at @version (LUO_PAYLOAD_TYPE); 0 none declared */
	/* Declared state written as properties (fields.c): payload is then a snapshot of the struct. */
	const struct luo_component_state *fields;
	struct luo_payload payload;
};

/* Registered components by index, NULL if gone; stable while a struct luo is open. */
size_t luo_components_list(const struct luo_component **out, size_t max);
void luo_components_compact_locked(void);
/* 0, or the first registration error, with its reason. */
int luo_components_error(char *reason, size_t reason_len);
void luo_components_note_error(int error, const char *reason);
extern const struct luo_file_handler luo_handler_memfd;
extern const struct luo_file_handler luo_handler_fd;
extern const struct luo_file_handler luo_handler_arena;
#define LUO_HANDLERS_BUILTIN 3

/*
 * file-index.c: outgoing files by open file (lock held). prepare, before
 * the handler's preserve: -EBUSY @fd (of inode @st) is an open file that a
 * preservation holds and @h may not share; -ENOMEM; else 0 and the place
 * the file goes, which insert takes once preserved (it cannot fail).
 */
struct stat;
struct luo_file_group;
struct luo_file_slot {
	struct luo_file_group *group;
	size_t pos;
};
int luo_file_index_prepare(struct luo *luo, int fd, const struct stat *st, const struct luo_file_handler *h,
			   struct luo_file_slot *ret_slot);
void luo_file_index_insert(const struct luo_file_slot *slot, struct luo_file *f);
void luo_file_index_remove(struct luo *luo, struct luo_file *f);
void luo_file_index_free(struct luo *luo);

/* session.c (lock held by callers in core.c / update.c) */
int luo_session_new(struct luo *luo, const char *name, bool incoming, struct luo_session **ret);
void luo_session_free(struct luo_session *s);
int luo_session_add_incoming_file(struct luo_session *s, const struct luo_file_handler *h,
				  uint64_t token, int fd, const void *data);
bool luo_name_valid(const char *name, size_t max);
bool luo_file_name_valid(const char *name);
/* Preserve with handler @h (NULL: the first that can), data set from @init_data first. */
int luo_session_preserve_as(struct luo_session *s, int fd, uint64_t token, const struct luo_file_handler *h,
			    const void *init_data);
/* Freeze a session's files all-or-nothing / unfreeze the frozen ones, last first. */
int luo_session_freeze_locked(struct luo_session *s);
void luo_session_unfreeze_locked(struct luo_session *s);
struct luo_file *luo_session_take_file_locked(struct luo_session *s, uint64_t token,
					      const struct luo_file_handler *h);

/* the incoming blob, parsed and checked; data pointers point into the blob */
struct luo_blob_file {
	uint64_t token;
	int fd;
	char handler[LUO_HANDLER_NAME_MAX + 1];
	uint32_t handler_version;
	const void *data;
	uint32_t data_len;
	const char *name;    /* NULL: none; else checked by luo_file_name_valid(), in the blob */
};

struct luo_blob_session {
	char name[LUO_SESSION_NAME_MAX + 1];
	struct luo_blob_file *files;
	size_t n_files;
};

struct luo_blob_component {
	char name[LUO_COMPONENT_NAME_MAX + 1];
	bool dropped;        /* no version, no data */
	uint32_t version;
	const void *data;
	size_t data_len;
	const void *fdt;     /* has_fields: the blob, and the "fields" node in it (fields.c reads it) */
	bool has_fields;
	int fields_node;
};

struct luo_blob {
	uint32_t format;
	uint64_t lu_number;
	char producer_path[PATH_MAX];
	uint8_t build_id[LUO_ABI_BUILD_ID_MAX];
	size_t build_id_len;
	uint64_t freeze_ns;
	uint64_t serialize_ns;
	struct luo_blob_session *sessions;
	size_t n_sessions;
	size_t n_files;
	struct luo_blob_component *components;
	size_t n_components;
	const char **argv;   /* format 2: producer-argv, NULL-terminated */
	size_t argc;
};

/*
 * blob-read.c: parse hostile bytes. -EBADMSG / -EPROTO / -ENOMEM. When the
 * blob fails after its producer (path, build-id, argv) was read, and
 * @ret_origin is not NULL, it gets a blob with only those (for a rollback).
 */
int luo_blob_parse(const void *buf, size_t len, struct luo_blob **ret_blob, struct luo_blob **ret_origin,
		   char *reason, size_t reason_len);
void luo_blob_free(struct luo_blob *blob);
static inline void luo_blob_freep(struct luo_blob **blob)
{
	luo_blob_free(*blob);
}

/* blob-write.c: serialize the outgoing sessions of @luo. */
struct luo_blob_header {
	uint64_t lu_number;
	char *const *argv;   /* producer-argv */
	const struct luo_component_out *components;
	size_t n_components;
	const char *producer_path;
	const uint8_t *build_id;
	size_t build_id_len;
	uint64_t freeze_ns;
	uint64_t serialize_ns;
	const struct luo_session *only; /* NULL: every outgoing session; else this one (a deposit) */
};
int luo_blob_build(const struct luo *luo, const struct luo_blob_header *hdr, void **ret_buf, size_t *ret_len);

/* self.c */
int luo_self_path(char *buf, size_t len);
int luo_self_build_id(uint8_t *buf, size_t len, size_t *ret_len);
int luo_self_argv(char **ret_buf, char ***ret_argv);

/* update.c: an environment entry libluo sets for the next image */
bool luo_env_is_ours(const char *entry);

/*
 * control.c: the control socket's listening fd and connection across an
 * exec. exec_env clears their close-on-exec and names them in @envp's
 * first NULL slots (the caller leaves two free, then NULL); exec_undo sets
 * it again. adopt: in
 * luo_open(), before the handover; answer: in luo_ready(), lock not held;
 * close: in luo_close(), lock held.
 */
void luo_control_exec_env(struct luo *luo, char **envp);
void luo_control_exec_undo(struct luo *luo);
void luo_control_adopt(struct luo *luo);
void luo_control_answer(struct luo *luo);
void luo_control_close(struct luo *luo);

/* core.c */
void luo_reaper_reap(struct luo *luo, bool wait);
int luo_handover_map(int fd, void **ret_addr, size_t *ret_len, char *reason, size_t reason_len);
/* update.c: a memfd named @name holding @buf, sealed write/shrink/grow/seal; an fd or -errno. */
int luo_blob_to_memfd(const char *name, const void *buf, size_t len);

/* A mapping unmapped at scope exit: _cleanup_(luo_unmapp) struct luo_mapping m = { 0 }. */
struct luo_mapping {
	void *addr;
	size_t len;
};

static inline void luo_unmapp(struct luo_mapping *m)
{
	if (m->addr)
		munmap(m->addr, m->len);
}
void luo_reasonf(char *reason, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int luo_adopt_file(struct luo_session *s, const struct luo_blob_file *bf, int fd, int handover_fd, char *reason,
		   size_t rlen);
int luo_load_components(struct luo *luo, const struct luo_blob *b, char *reason, size_t rlen);

/* agent-client.c: the connection to luod (lock held, or in luo_open()/luo_close()) */
void luo_agent_open(struct luo *luo, bool wanted);
void luo_agent_close(struct luo *luo);
void luo_agent_detach_locked(struct luo *luo); /* luo_update(), just before execve() */
/* luo_session_retrieve()'s fallback: the session @name from the agent, as an incoming one. */
int luo_agent_retrieve_locked(struct luo *luo, const char *name, struct luo_session **ret);

#endif /* LUO_INTERNAL_H */
