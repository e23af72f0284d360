/* SPDX-License-Identifier: MIT */
#ifndef LUO_ARENA_H
#define LUO_ARENA_H

/*
 * DOC: the arena layer's files, what crosses them
 *
 * arena.c: the API (create, retrieve, close), the mapping, the reservation
 * before main(), the allocator's calls and the thread caches; heap.c: the
 * allocator inside the region (heap.h); arena-populate.c: the page tables
 * of a retrieved arena populated in the background after luo_ready().
 * struct luo_arena is shared by arena.c and arena-populate.c only.
 *
 * May call: the base, model, format and handover layers (it is a service
 * API beside the transports). Called by core (luo_close()) and services.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#include "heap.h"
#include "handover.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14; older headers */
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1 */
#endif
/* A PMD-mapped transparent huge page (x86-64, arm64 with 4 KiB pages). */
#define POPULATE_HUGE (2u << 20)
/* The populate thread's nice value (its own, not the process's). */
#define POPULATE_NICE 19
#define LUO_ARENA_POPULATE_FLAGS                                                                   \
	(LUO_ARENA_POPULATE_IDLE | LUO_ARENA_POPULATE_NORMAL | LUO_ARENA_POPULATE_MADVISE | \
	 LUO_ARENA_POPULATE_COLLAPSE)

/* The populate thread; its fields under @lock, progress atomic. */
struct arena_populate {
	pthread_mutex_t lock;
	pthread_t thread;
	bool joinable;           /* a thread was started and not joined yet */
	atomic_bool stop;
	atomic_int state;        /* enum luo_arena_populate_state */
	atomic_int error;
	atomic_bool fallback;
	atomic_uint_fast64_t populated;
	atomic_uint_fast64_t collapsed;
	atomic_bool collapse_refused;
	uint64_t start_ns;
	atomic_uint_fast64_t end_ns;
	size_t chunk;
	unsigned int flags;
};

struct luo_arena {
	pthread_mutex_t lock;
	void *base;
	size_t size;
	int fd;          /* our own reference to the memfd */
	uint32_t flags;
	/* The heap's geometry, from format or check: here, never read back from the shared region. */
	struct luo_heap_geom heap;
	/*
	 * Retrieved: the heap's header was checked at retrieval, its map not
	 * yet (arena_heap_ready()). check_error: the map check refused it.
	 */
	bool map_unchecked;
	int check_error;
	char check_reason[LUO_REASON_MAX];
	/*
	 * Thread caches may serve this arena: set once its heap is usable
	 * (formatted, or its map checked), never cleared. cache_key: the key
	 * every thread's cache of this arena marks its blocks with (heap.h).
	 */
	atomic_bool cache_on;
	uint64_t cache_key;
	struct arena_populate pop;
	/* luo_arena_fork_gen when this process made or retrieved it (arena_forked()). */
	unsigned int fork_gen;
};

/*
 * Bumped in the child of every fork() (arena.c, pthread_atfork). The
 * arena's memfd is shared with the child, its lock and caches are not: a
 * child that allocated from it would hand out the parent's blocks. So an
 * arena is its own process's: in a child, forked.
 */
extern atomic_uint luo_arena_fork_gen;

static inline bool arena_forked(const struct luo_arena *a)
{
	return a->fork_gen != atomic_load_explicit(&luo_arena_fork_gen, memory_order_relaxed);
}

#endif /* LUO_ARENA_H */
