/* SPDX-License-Identifier: MIT */
#ifndef LUO_MODEL_H
#define LUO_MODEL_H

/*
 * DOC: the model layer, what a struct luo holds
 *
 * Files: registry.c (the registry lock and the "a struct luo is open"
 * mark), handler.c (the file handler registry and the calls into a
 * handler's ops), handler-memfd.c, handler-fd.c, handler-arena.c (the
 * built-in handlers), component.c (the component registry, payloads),
 * session.c (sessions and their files), file-index.c (outgoing files by
 * open file).
 *
 * May call: the base layer (base.h). Called by every layer above: format,
 * handover, transport, arena, core.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base.h"

/* The transports' states (transport.h), one slot each, allocated with struct luo. */
#define LUO_TRANSPORTS_MAX 4

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
	/*
	 * One luo_update() at a time (update.c): it reads manifests, starts
	 * the reaper and quiesces without @lock. Error-checking: a quiesce
	 * callback that updates again gets -EDEADLK.
	 */
	pthread_mutex_t update_lock;
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
	/* The process that opened the handle: its incoming arenas are its own (a fork()'s child is another). */
	pid_t open_pid;
	bool no_reaper; /* LUO_OPEN_NO_REAPER */
	bool strict_types; /* LUO_OPEN_STRICT_TYPES */
	bool strict_once;  /* the control request in progress asked for it (control-serve.c) */
	/* The last luo_update()'s negotiation. */
	struct luo_report_entry *report;
	size_t n_report;

	/* Each transport's own state, by its slot (transport.h); opaque here. */
	void *transport[LUO_TRANSPORTS_MAX];

	/* CLOCK_MONOTONIC ns; 0 = unknown */
	uint64_t t_freeze;
	uint64_t t_serialize;
	uint64_t t_exec;
	uint64_t t_open_start;
	uint64_t t_open_end;
	uint64_t t_ready;
};

/* registry.c: one lock for both registries, and the open mark */
void luo_registry_lock(void);
void luo_registry_unlock(void);
bool luo_registry_open_locked(void);
/* luo_open(): mark a struct luo open; -EBUSY one is. */
int luo_registry_hold(void);
/* luo_close(), lock held, after luo_components_compact_locked(). */
void luo_registry_release_locked(void);

/* handler.c */
const struct luo_file_handler *luo_handler_for_fd(int fd);
const struct luo_file_handler *luo_handler_by_name(const char *name);
/* A handler's ops, run as callbacks (luo_callback_enter()). */
bool luo_op_can_preserve(const struct luo_file_handler *h, int fd);
int luo_op_preserve(struct luo_file *f);
void luo_op_unpreserve(struct luo_file *f);
int luo_op_freeze(struct luo_file *f);
void luo_op_unfreeze(struct luo_file *f);
int luo_op_retrieve(struct luo_file *f);
bool luo_op_can_finish(struct luo_file *f);
void luo_op_finish(struct luo_file *f, bool retrieved);
/* Registered then built-in handlers; while a struct luo is open. */
size_t luo_handlers_list(const struct luo_file_handler **out, size_t max);

/* handler-memfd.c, handler-fd.c, handler-arena.c: the built-in handlers */
extern const struct luo_file_handler luo_handler_memfd;
extern const struct luo_file_handler luo_handler_fd;
extern const struct luo_file_handler luo_handler_arena;
#define LUO_HANDLERS_BUILTIN 3

/* handler-memfd.c: what a memfd's record holds (memfd and arena handlers). */
struct luo_memfd_id {
	uint64_t dev;
	uint64_t ino;
	uint64_t size;
	int seals;     /* F_GET_SEALS; -errno if it failed */
	bool regular;  /* S_ISREG */
};
/* fstat() and F_GET_SEALS of @fd: 0, or fstat()'s -errno. */
int luo_memfd_identify(int fd, struct luo_memfd_id *ret);
/* @id is a regular file with the recorded identity, size and seals. */
bool luo_memfd_id_matches(const struct luo_memfd_id *id, uint64_t dev, uint64_t ino, uint64_t size, uint32_t seals);

/*
 * handler-arena.c: the address ranges reserved for incoming arenas, by
 * session and token, under their own lock. reserve: a new entry with the
 * range reserved (error 0) or not (-EEXIST a clash, else why); NULL the
 * table is full (LUO_ARENAS_MAX).
 */
/* The allocator's largest region (arena/heap.h's LUO_HEAP_SIZE_MAX, asserted in arena.c). */
#define LUO_ARENA_REGION_MAX (((uint64_t)1 << 40) + ((uint64_t)1 << 30))
struct luo_arena_reservation {
	char session[LUO_SESSION_NAME_MAX + 1];
	uint64_t token;
	uint64_t addr;
	uint64_t size;
	int error;       /* 0 reserved; -EEXIST clash; else why not */
	bool taken;      /* luo_arena_retrieve() mapped it */
};
bool luo_arena_range_ok(uint64_t addr, uint64_t size);
void luo_arena_reservations_lock(void);
void luo_arena_reservations_unlock(void);
struct luo_arena_reservation *luo_arena_reserve_locked(const char *session, uint64_t token, uint64_t addr,
						       uint64_t size);
struct luo_arena_reservation *luo_arena_reservation_find_locked(const char *session, uint64_t token);
/* The arena layer's flush of its thread caches for the arena at @addr, called by the handler's freeze. */
void luo_handler_arena_set_freeze_hook(void (*flush)(uint64_t addr));

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

/* A component's part in an outgoing blob (update.c, agent-client.c -> blob-write.c). */
struct luo_component_out {
	const struct luo_component *component;
	bool dropped;
	uint32_t version;
	uint32_t type_size; /* sizeof its payload type at @version (LUO_PAYLOAD_TYPE); 0 none declared */
	/* Declared state written as properties (format/fields.c): payload is then a snapshot of the struct. */
	const struct luo_component_state *fields;
	struct luo_payload payload;
};

/* Registered components by index, NULL if gone; stable while a struct luo is open. */
size_t luo_components_list(const struct luo_component **out, size_t max);
void luo_components_compact_locked(void);
/* 0, or the first registration error, with its reason. */
int luo_components_error(char *reason, size_t reason_len);
/* A registration refused before it reached the registry (format/fields-registry.c), remembered alike. */
void luo_components_note_error(int error, const char *reason);
/* Nothing loaded: every component's status -ENODATA, version 0. */
void luo_components_status_reset(struct luo *luo);

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

/* session.c (lock held by the callers) */
int luo_session_new(struct luo *luo, const char *name, bool incoming, struct luo_session **ret);
void luo_session_free(struct luo_session *s);
/* Unlink and free @s, the last session linked (a retrieve that failed). */
void luo_session_drop_last_locked(struct luo *luo, struct luo_session *s);
/* Free every session of @luo. */
void luo_sessions_free(struct luo *luo);
int luo_session_add_incoming_file(struct luo_session *s, const struct luo_file_handler *h,
				  uint64_t token, int fd, const void *data);
/* Preserve with handler @h (NULL: the first that can), data set from @init_data first. */
int luo_session_preserve_as(struct luo_session *s, int fd, uint64_t token, const struct luo_file_handler *h,
			    const void *init_data);
/* Freeze a session's files all-or-nothing / unfreeze the frozen ones, last first. */
int luo_session_freeze_locked(struct luo_session *s);
void luo_session_unfreeze_locked(struct luo_session *s);
struct luo_file *luo_session_take_file_locked(struct luo_session *s, uint64_t token,
					      const struct luo_file_handler *h);
/* The session @name of @luo, or NULL. */
struct luo_session *luo_session_find(struct luo *luo, const char *name);

#endif /* LUO_MODEL_H */
