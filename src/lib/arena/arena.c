/* SPDX-License-Identifier: MIT */
/*
 * DOC: arenas, memory that keeps its address
 *
 * Lifecycle, old image:
 *
 *   luo_arena_create()   memfd (sealable, size frozen), mapped at a free
 *                        2 MiB-aligned address found from ARENA_HINT up with
 *                        MAP_FIXED_NOREPLACE, allocator formatted (heap.c),
 *                        preserved under the "arena" handler
 *                        (model/handler-arena.c), whose data records the
 *                        address
 *   luo_arena_alloc() / luo_arena_free() / luo_arena_set_root()
 *   luo_update()         the memfd crosses execve() like any preserved fd
 *
 * New image:
 *
 *   reserve_incoming()   a constructor of libluo, before main(): reads the
 *                        handover (LUO_HANDOVER_FD, left in place for
 *                        luo_open()), and reserves each arena's range with
 *                        an inaccessible anonymous mapping, MAP_FIXED_NOREPLACE;
 *                        a range already taken is remembered as a clash
 *   luo_open()           the handler's retrieve() checks the memfd's identity,
 *                        size and seals, and the recorded address and size
 *   luo_arena_retrieve() maps the memfd over its reservation (MAP_FIXED on
 *                        our own reservation only), then checks the
 *                        allocator's header, O(1); a clash is -EADDRINUSE
 *   first alloc/free/set_root, or luo_arena_check(): the rest of the
 *                        allocator's state, O(size) (the chunk map): after
 *                        the blackout, not in it. A refusal disables the
 *                        allocator for good; the mapping stays, since the
 *                        program may already hold pointers into it
 *
 * After luo_ready(), luo_arena_populate_start() maps the arena's data
 * extents into the page tables from a low-priority thread, chunk by chunk
 * (a read per page, or MADV_POPULATE_READ on request), so that the
 * service does not take a fault on its first touch of every page; _stop()
 * (and luo_arena_close()) ask it to end and join it.
 *
 * In a child of fork() the memfd stays shared with the parent but the
 * arena's lock and thread caches do not: every arena the child inherited
 * is the parent's (arena_forked(), arena.h). The calls that would write its
 * heap, preserve it or retrieve an incoming one refuse (EPERM),
 * luo_arena_root() still reads it, and luo_arena_close() only unmaps the
 * child's view; the child's own arenas work as anywhere.
 *
 * Failure paths: create undoes everything it did (unmap, close) on any
 * error; retrieve leaves the reservation in place on error (the address
 * range stays unusable for anything else, the data untouched). Freed chunks
 * are punched out of the memfd (fallocate) so the new image does not find
 * them resident.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "heap.h"
#include "manifest.h"
#include "handover.h"
#include "arena.h"

/*
 * Where arena addresses are looked for: far below ld.so's and mmap()'s
 * top-down area (near 0x7f0000000000), and above the range ASan's
 * allocator takes on x86-64 (0x600000000000..0x640000000000), so that
 * sanitized and plain builds can hand arenas to one another.
 */
#define ARENA_HINT 0x700000000000ull
/* Candidate addresses tried before giving up. */
#define ARENA_PLACE_TRIES 4096

#define ARENA_SEALS (F_SEAL_GROW | F_SEAL_SHRINK)
_Static_assert(LUO_ARENA_REGION_MAX == LUO_HEAP_SIZE_MAX, "model.h: the arena handler's range check");


/*
 * One thread's cache of one arena's small free blocks (heap.h, "thread
 * caches"). Owned by its thread, which alone creates, rebinds and frees
 * it; @busy is a lock taken by the owner around each use, and by another
 * thread that flushes it (luo_arena_close(), the arena's freeze before
 * an exec), so a flush never races the owner. Uncontended but for those
 * flushes. Lock order: the registry, then @busy, then the arena's lock.
 */
struct arena_cache {
	atomic_int busy;
	_Atomic(struct luo_arena *) arena;   /* NULL: detached (flushed, its arena closed) */
	struct arena_cache *thread_next;     /* this thread's caches */
	struct arena_cache *all_next, *all_prev; /* every cache, under cache_registry_lock */
	struct luo_heap_tcache tc;
};

/* Every thread's caches, for the flushes; a thread's own list for its fast path and its exit. */
static pthread_mutex_t cache_registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct arena_cache *cache_registry;
/*
 * initial-exec: one load from the thread pointer on the fast path, not a
 * __tls_get_addr() call; 8 bytes of static TLS, which glibc keeps spare
 * even for a libluo loaded by dlopen().
 */
static __thread struct arena_cache *thread_caches __attribute__((tls_model("initial-exec")));
static pthread_key_t cache_exit_key;
static pthread_once_t cache_exit_once = PTHREAD_ONCE_INIT;
static bool cache_exit_ok;

atomic_uint luo_arena_fork_gen;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

/* ------------------------------------------------------------------------ */
/* Reservations made before main() (the table: model/handler-arena.c)         */

/*
 * Runs before main(): nothing can be reported, so every problem is left for
 * luo_open() (which reads the same handover again and refuses it cleanly)
 * or luo_arena_retrieve() (a clash). Reads only; the fd and the environment
 * stay as they are.
 */
__attribute__((constructor)) static void reserve_incoming(void)
{
	_cleanup_(luo_blob_freep) struct luo_blob *b = NULL;
	const char *env = luo_getenv(LUO_HANDOVER_FD_ENV);
	char reason[LUO_REASON_MAX];
	uint64_t fd;
	size_t len;
	void *map;

	if (!env || luo_parse_u64(env, LUO_ABI_FD_NUMBER_MAX, &fd) < 0 || fd < 3)
		return;
	if (luo_handover_map((int)fd, &map, &len, reason, sizeof(reason)) < 0)
		return;
	if (luo_blob_parse(map, len, &b, NULL, reason, sizeof(reason)) == 0) {
		for (size_t i = 0; i < b->n_sessions; i++) {
			const struct luo_blob_session *bs = &b->sessions[i];

			for (size_t j = 0; j < bs->n_files; j++) {
				const struct luo_blob_file *bf = &bs->files[j];
				struct luo_abi_arena_v1 d;

				if (strcmp(bf->handler, luo_handler_arena.name) != 0 ||
				    bf->handler_version != LUO_ABI_ARENA_VERSION || bf->data_len != sizeof(d))
					continue;
				memcpy(&d, bf->data, sizeof(d));
				if (!luo_arena_range_ok(d.addr, d.size))
					continue; /* luo_open() refuses it */
				luo_arena_reservations_lock();
				luo_arena_reserve_locked(bs->name, bf->token, d.addr, d.size); /* full: skipped */
				luo_arena_reservations_unlock();
			}
		}
	}
	munmap(map, len);
}

/* ------------------------------------------------------------------------ */
/* Arenas                                                                    */

static void release_chunk(void *ctx, size_t offset, size_t len)
{
	struct luo_arena *a = ctx;

	/* Best effort: a kernel without punch-hole just keeps the pages. */
	(void)fallocate(a->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)len);
}

static void apply_flags(struct luo_arena *a)
{
	if (a->flags & LUO_ARENA_HUGEPAGES)
		(void)madvise(a->base, a->size, MADV_HUGEPAGE);
	if (a->flags & LUO_ARENA_PREFAULT)
		(void)madvise(a->base, a->size, MADV_POPULATE_WRITE);
}

static void caches_flush(const struct luo_arena *a, uint64_t base, bool detach);
static void caches_flush_at(uint64_t base);

/* Take @c out of the registry (its lock held) and free it. */
static void registry_drop_locked(struct arena_cache *c)
{
	if (c->all_prev)
		c->all_prev->all_next = c->all_next;
	else
		cache_registry = c->all_next;
	if (c->all_next)
		c->all_next->all_prev = c->all_prev;
	free(c);
}

/*
 * fork(): the registry is held across it, so the child gets it whole. In
 * the child every arena of the parent is forked (arena_forked()): the
 * caches are unbound (their blocks are the parent's to use), and those of
 * the threads that did not follow into the child are freed. A child made
 * by a raw clone() or vfork() runs none of this: it must not use them.
 */
static void arena_fork_prepare(void)
{
	pthread_mutex_lock(&cache_registry_lock);
}

static void arena_fork_parent(void)
{
	pthread_mutex_unlock(&cache_registry_lock);
}

static void arena_fork_child(void)
{
	struct arena_cache *c, *next;

	atomic_fetch_add_explicit(&luo_arena_fork_gen, 1, memory_order_relaxed);
	for (c = cache_registry; c; c = next) {
		bool ours = false;

		next = c->all_next;
		for (struct arena_cache *t = thread_caches; t && !ours; t = t->thread_next)
			ours = t == c;
		atomic_store_explicit(&c->busy, 0, memory_order_relaxed);
		atomic_store_explicit(&c->arena, NULL, memory_order_relaxed);
		if (ours)
			continue;
		registry_drop_locked(c);
	}
	pthread_mutex_unlock(&cache_registry_lock);
}

static void arena_fork_register(void)
{
	(void)pthread_atfork(arena_fork_prepare, arena_fork_parent, arena_fork_child);
}

static struct luo_arena *arena_new(int fd, void *base, size_t size, uint32_t flags)
{
	struct luo_arena *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	/* Before any cache can hold a block of it: the handler's freeze flushes them (the model calls no arena code). */
	luo_handler_arena_set_freeze_hook(caches_flush_at);
	pthread_once(&fork_once, arena_fork_register);
	a->fork_gen = atomic_load_explicit(&luo_arena_fork_gen, memory_order_relaxed);
	pthread_mutex_init(&a->lock, NULL);
	pthread_mutex_init(&a->pop.lock, NULL);
	a->fd = fd;
	a->base = base;
	a->size = size;
	a->flags = flags;
	/* A guess at the key is a 2^-64 leak of one block, nothing worse: a clock will do without getrandom(). */
	if (getrandom(&a->cache_key, sizeof(a->cache_key), GRND_NONBLOCK) != (ssize_t)sizeof(a->cache_key))
		a->cache_key = luo_now_ns() * UINT64_C(0x9e3779b97f4a7c15) ^ (uint64_t)(uintptr_t)a;
	return a;
}

/* Map @fd at the first free aligned address from ARENA_HINT up. */
static void *place(int fd, size_t size)
{
	uint64_t addr = ARENA_HINT;

	for (int i = 0; i < ARENA_PLACE_TRIES && luo_arena_range_ok(addr, size); i++) {
		void *p = mmap((void *)(uintptr_t)addr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE,
			       fd, 0);

		if (p == (void *)(uintptr_t)addr)
			return p;
		if (p != MAP_FAILED)
			munmap(p, size);
		else if (errno != EEXIST)
			return NULL;
		addr += (size + LUO_ABI_ARENA_ADDR_ALIGN - 1) / LUO_ABI_ARENA_ADDR_ALIGN * LUO_ABI_ARENA_ADDR_ALIGN;
	}
	errno = ENOMEM;
	return NULL;
}

/*
 * Turn [@base, @base + @size) back into an inaccessible reservation; if
 * that fails, unmap it. Either way the memfd is no longer mapped there.
 */
static void unmap_to_reservation(void *base, size_t size)
{
	if (mmap(base, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED)
		munmap(base, size);
}

int luo_arena_preserve(struct luo_session *session, uint64_t token, struct luo_arena *arena)
{
	struct luo_abi_arena_v1 d = { 0 };

	if (!session || !arena)
		return -EINVAL;
	if (arena_forked(arena))
		return -EPERM; /* the parent's: its next image must not get it writable (arena.h) */
	d.size = arena->size;
	d.addr = (uint64_t)(uintptr_t)arena->base;
	d.flags = arena->flags;
	return luo_session_preserve_as(session, arena->fd, token, &luo_handler_arena, &d);
}

int luo_arena_create(struct luo_session *session, uint64_t token, size_t size, unsigned int flags,
		     struct luo_arena **ret_arena)
{
	_cleanup_close_ int fd = -1;
	struct luo_arena *a;
	char reason[LUO_REASON_MAX];
	void *base;
	int r;

	if (!session || !ret_arena || session->incoming || size < LUO_ARENA_SIZE_MIN || size > LUO_ARENA_SIZE_MAX ||
	    size % LUO_HEAP_CHUNK || (flags & ~(unsigned int)(LUO_ARENA_HUGEPAGES | LUO_ARENA_PREFAULT)))
		return -EINVAL;
	/* @size of data; the allocator's metadata pages come on top. */
	size = (size_t)luo_heap_region_size(size);
	fd = memfd_create("luo-arena", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0 || fcntl(fd, F_ADD_SEALS, ARENA_SEALS) < 0)
		return -errno;
	base = place(fd, size);
	if (!base)
		return -errno;
	a = arena_new(fd, base, size, flags);
	if (!a) {
		munmap(base, size);
		return -ENOMEM;
	}
	TAKE_FD(fd);
	apply_flags(a);
	r = luo_heap_format(base, size, &a->heap, reason, sizeof(reason));
	if (r == 0)
		atomic_store(&a->cache_on, true);
	if (r == 0)
		r = luo_arena_preserve(session, token, a);
	if (r < 0) {
		luo_arena_close(a);
		return r;
	}
	*ret_arena = a;
	return 0;
}

int luo_arena_retrieve(struct luo_session *session, uint64_t token, struct luo_arena **ret_arena)
{
	struct luo_abi_arena_v1 d;
	struct luo_heap_geom geom;
	struct luo_arena_reservation *rv;
	struct luo_file *f;
	struct luo_arena *a;
	char reason[LUO_REASON_MAX] = "";
	void *base;
	int fd, r;

	if (luo_in_callback())
		return -EDEADLK; /* a component callback: the lock is held (luo.h) */
	if (!session || !ret_arena)
		return -EINVAL;
	/* A child of fork(): the incoming arenas are the parent's to retrieve, once (arena.h). */
	if (session->luo->open_pid != getpid())
		return -EPERM;
	pthread_mutex_lock(&session->luo->lock);
	if (!session->incoming || session->finished) {
		pthread_mutex_unlock(&session->luo->lock);
		return -EINVAL;
	}
	f = luo_session_take_file_locked(session, token, &luo_handler_arena);
	if (!f) {
		pthread_mutex_unlock(&session->luo->lock);
		return -ENOENT;
	}
	memcpy(&d, f->data, sizeof(d));
	fd = fcntl(f->fd, F_DUPFD_CLOEXEC, LUO_FD_MIN);
	pthread_mutex_unlock(&session->luo->lock);
	if (fd < 0)
		return -errno;

	luo_arena_reservations_lock();
	rv = luo_arena_reservation_find_locked(session->name, token);
	if (!rv) {
		/* Loaded too late for the constructor (dlopen): reserve now. */
		rv = luo_arena_reserve_locked(session->name, token, d.addr, d.size);
		if (!rv) {
			r = -ENOMEM;
			goto fail;
		}
	}
	if (rv->taken) {
		r = -EINVAL;
		goto fail;
	}
	if (rv->error == -EEXIST) {
		luo_reasonf(reason, sizeof(reason), "arena %s/%" PRIu64 ": [0x%" PRIx64 ", 0x%" PRIx64
			    ") is already mapped in this image", session->name, token, d.addr, d.addr + d.size);
		r = -EADDRINUSE;
		goto fail;
	}
	if (rv->error < 0) {
		r = rv->error;
		goto fail;
	}
	base = mmap((void *)(uintptr_t)d.addr, d.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	if (base == MAP_FAILED) {
		r = -errno;
		goto fail;
	}
	/* O(1) here; the map, O(size), on the first allocator call (arena_heap_ready()). */
	r = luo_heap_check_header(base, d.size, &geom, reason, sizeof(reason));
	if (r < 0) {
		char why[LUO_REASON_MAX];

		memcpy(why, reason, sizeof(why));
		luo_reasonf(reason, sizeof(reason), "arena %s/%" PRIu64 ": %s", session->name, token, why);
		/* Back to an inaccessible reservation: the bytes stay in the memfd. */
		unmap_to_reservation(base, d.size);
		goto fail;
	}
	a = arena_new(fd, base, d.size, d.flags);
	if (!a) {
		unmap_to_reservation(base, d.size);
		r = -ENOMEM;
		goto fail;
	}
	a->heap = geom;
	a->map_unchecked = true;
	rv->taken = true;
	luo_arena_reservations_unlock();
	apply_flags(a);
	*ret_arena = a;
	return 0;

fail:
	luo_arena_reservations_unlock();
	safe_close(fd);
	if (!reason[0])
		luo_reasonf(reason, sizeof(reason), "arena %s/%" PRIu64 ": %s", session->name, token, strerror(-r));
	pthread_mutex_lock(&session->luo->lock);
	memcpy(session->arena_reason, reason, sizeof(reason));
	pthread_mutex_unlock(&session->luo->lock);
	return r;
}

const char *luo_arena_retrieve_error(const struct luo_session *session)
{
	return session ? session->arena_reason : "";
}

void luo_arena_close(struct luo_arena *a)
{
	if (!a)
		return;
	if (arena_forked(a)) {
		/*
		 * The parent's: no populate thread here, no cache bound to it
		 * (arena_fork_child()), and its locks may have been held at the
		 * fork. Only this process's mapping and fd go.
		 */
		unmap_to_reservation(a->base, a->size);
		safe_close(a->fd);
		free(a);
		return;
	}
	/*
	 * Keep the range reserved: the arena may still be preserved, and a
	 * later luo_arena_create() must not be placed at its address.
	 */
	luo_arena_populate_stop(a); /* before the unmap: it reads the mapping */
	caches_flush(a, 0, true);   /* no thread's cache may name it after this */
	unmap_to_reservation(a->base, a->size);
	safe_close(a->fd);
	pthread_mutex_destroy(&a->pop.lock);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

/*
 * The deferred part of the incoming heap's check (lock held): run once, on
 * the first call that uses the allocator's state. 0, or -EBADMSG for good:
 * the allocator refuses every call after, the mapping stays (the program
 * may hold pointers into it).
 */
static int arena_heap_ready(struct luo_arena *a)
{
	if (a->map_unchecked) {
		char why[LUO_REASON_MAX] = "";
		int r = luo_heap_check_map(&a->heap, why, sizeof(why));

		a->map_unchecked = false;
		if (r < 0) {
			a->check_error = r;
			luo_reasonf(a->check_reason, sizeof(a->check_reason), "arena at %p: %s", a->base, why);
		} else {
			atomic_store(&a->cache_on, true);
		}
	}
	return a->check_error;
}

/* ------------------------------------------------------------------------ */
/* Thread caches                                                             */

static void cache_lock(struct arena_cache *c)
{
	/* The owner holds it for one cache operation; a flusher for one flush. */
	while (atomic_exchange_explicit(&c->busy, 1, memory_order_acquire))
		sched_yield();
}

static void cache_unlock(struct arena_cache *c)
{
	atomic_store_explicit(&c->busy, 0, memory_order_release);
}

/* Flush @c into its arena (@c locked): every block back to the heap. */
static void cache_flush_locked(struct arena_cache *c, struct luo_arena *a)
{
	pthread_mutex_lock(&a->lock);
	luo_heap_tcache_flush(&a->heap, &c->tc, release_chunk, a);
	pthread_mutex_unlock(&a->lock);
}

/*
 * Flush every thread's cache of arena @a (or, @a NULL, of the arena mapped
 * at @base); @detach: and unbind them, @a is going away.
 */
static void caches_flush(const struct luo_arena *a, uint64_t base, bool detach)
{
	pthread_mutex_lock(&cache_registry_lock);
	for (struct arena_cache *c = cache_registry; c; c = c->all_next) {
		struct luo_arena *ca;

		cache_lock(c);
		ca = atomic_load(&c->arena);
		if (ca && (ca == a || (!a && (uint64_t)(uintptr_t)ca->base == base))) {
			cache_flush_locked(c, ca);
			if (detach)
				atomic_store(&c->arena, NULL);
		}
		cache_unlock(c);
	}
	pthread_mutex_unlock(&cache_registry_lock);
}

/* The "arena" handler's freeze (model/handler-arena.c): the arena at @base flushed first. */
static void caches_flush_at(uint64_t base)
{
	caches_flush(NULL, base, false);
}

/* A thread ends: its caches go back to their arenas, and away. */
static void caches_thread_exit(void *arg)
{
	struct arena_cache *c = arg, *next;

	pthread_mutex_lock(&cache_registry_lock);
	for (; c; c = next) {
		struct luo_arena *ca;

		next = c->thread_next;
		cache_lock(c);
		ca = atomic_load(&c->arena);
		if (ca)
			cache_flush_locked(c, ca);
		registry_drop_locked(c);
	}
	pthread_mutex_unlock(&cache_registry_lock);
	thread_caches = NULL;
}

static void cache_exit_init(void)
{
	cache_exit_ok = pthread_key_create(&cache_exit_key, caches_thread_exit) == 0;
}

/*
 * This thread's cache of @a, made (or a detached one rebound) on first
 * use; NULL if none can be (no memory, no thread-exit hook: then the
 * locked path serves, as without caches).
 */
static struct arena_cache *cache_get(struct luo_arena *a)
{
	struct arena_cache *c, *spare = NULL;

	for (c = thread_caches; c; c = c->thread_next) {
		struct luo_arena *ca = atomic_load_explicit(&c->arena, memory_order_relaxed);

		if (ca == a)
			return c;
		if (!ca && !spare)
			spare = c;
	}
	pthread_once(&cache_exit_once, cache_exit_init);
	if (!cache_exit_ok)
		return NULL;
	if (spare) {
		cache_lock(spare);
		luo_heap_tcache_init(&spare->tc, a->cache_key);
		atomic_store(&spare->arena, a);
		cache_unlock(spare);
		return spare;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	luo_heap_tcache_init(&c->tc, a->cache_key);
	atomic_store(&c->arena, a);
	if (pthread_setspecific(cache_exit_key, c) != 0) {
		free(c);
		return NULL;
	}
	c->thread_next = thread_caches;
	thread_caches = c;
	pthread_mutex_lock(&cache_registry_lock);
	c->all_next = cache_registry;
	if (cache_registry)
		cache_registry->all_prev = c;
	cache_registry = c;
	pthread_mutex_unlock(&cache_registry_lock);
	return c;
}

int luo_arena_check(struct luo_arena *a, const char **ret_reason)
{
	int r;

	if (!a)
		return -EINVAL;
	if (arena_forked(a)) {
		if (ret_reason)
			*ret_reason = "the arena is the parent's: this is a child of fork()";
		return -EPERM;
	}
	pthread_mutex_lock(&a->lock);
	r = arena_heap_ready(a);
	pthread_mutex_unlock(&a->lock);
	if (ret_reason)
		*ret_reason = r < 0 ? a->check_reason : "";
	return r;
}

void *luo_arena_alloc(struct luo_arena *a, size_t size)
{
	void *p = NULL;

	if (!a) {
		errno = EINVAL;
		return NULL;
	}
	if (arena_forked(a)) {
		errno = EPERM;
		return NULL;
	}
	if (size <= LUO_HEAP_TCACHE_SIZE_MAX && atomic_load_explicit(&a->cache_on, memory_order_acquire)) {
		struct arena_cache *c = cache_get(a);

		if (c) {
			cache_lock(c);
			/* Still bound: a luo_arena_close() elsewhere would be the program's bug, yet stays safe. */
			if (atomic_load_explicit(&c->arena, memory_order_relaxed) == a) {
				p = luo_heap_tcache_alloc(&c->tc, size);
				if (!p) {
					pthread_mutex_lock(&a->lock);
					p = luo_heap_tcache_refill(&a->heap, &c->tc, size);
					pthread_mutex_unlock(&a->lock);
				}
				cache_unlock(c);
				return p;
			}
			cache_unlock(c);
		}
	}
	pthread_mutex_lock(&a->lock);
	if (arena_heap_ready(a) < 0)
		errno = EBADMSG;
	else
		p = luo_heap_alloc(&a->heap, size);
	pthread_mutex_unlock(&a->lock);
	return p;
}

void luo_arena_free(struct luo_arena *a, void *p)
{
	if (!a || !p || arena_forked(a))
		return;
	if (atomic_load_explicit(&a->cache_on, memory_order_acquire)) {
		struct arena_cache *c = cache_get(a);

		if (c) {
			cache_lock(c);
			if (atomic_load_explicit(&c->arena, memory_order_relaxed) == a) {
				int how = luo_heap_tcache_free(&a->heap, &c->tc, p);

				if (how != LUO_HEAP_TCACHE_CACHED) {
					pthread_mutex_lock(&a->lock);
					luo_heap_tcache_free_slow(&a->heap, &c->tc, p, how, release_chunk, a);
					pthread_mutex_unlock(&a->lock);
				}
				cache_unlock(c);
				return;
			}
			cache_unlock(c);
		}
	}
	pthread_mutex_lock(&a->lock);
	if (arena_heap_ready(a) == 0)
		luo_heap_free(&a->heap, p, release_chunk, a);
	pthread_mutex_unlock(&a->lock);
}

int luo_arena_set_root(struct luo_arena *a, void *p)
{
	int r;

	if (!a)
		return -EINVAL;
	if (arena_forked(a))
		return -EPERM;
	pthread_mutex_lock(&a->lock);
	r = arena_heap_ready(a);
	if (r == 0)
		r = luo_heap_set_root(&a->heap, p);
	pthread_mutex_unlock(&a->lock);
	return r;
}

void *luo_arena_root(struct luo_arena *a)
{
	void *p;

	if (!a)
		return NULL;
	if (arena_forked(a))
		return luo_heap_root(&a->heap); /* its lock may have been held at the fork */
	pthread_mutex_lock(&a->lock);
	p = luo_heap_root(&a->heap);
	pthread_mutex_unlock(&a->lock);
	return p;
}

void *luo_arena_base(const struct luo_arena *a)
{
	return a ? a->base : NULL;
}

size_t luo_arena_size(const struct luo_arena *a)
{
	return a ? a->size : 0;
}

/* The 64-bit digest folded to the header's 32 bits; never 0 for a described type. */
static uint32_t fold_digest(uint64_t d)
{
	uint32_t f = (uint32_t)(d ^ (d >> 32));

	return d && !f ? 1 : f;
}

int luo_arena_bind_type(struct luo_arena *a, const char *component, uint32_t version)
{
	uint64_t digest = 0;
	uint32_t want, have;
	int r;

	if (!a || !component || version == 0)
		return -EINVAL;
	if (arena_forked(a))
		return -EPERM;
	r = luo_self_type_digest(component, version, LUO_ABI_TYPE_ARENA, &digest);
	if (r < 0)
		return r;
	want = fold_digest(digest);
	/*
	 * O(1): the header was checked at retrieval; the map check (which
	 * arena_heap_ready() would run here) is not needed to read one field.
	 */
	pthread_mutex_lock(&a->lock);
	r = a->check_error;
	if (r == 0) {
		have = luo_heap_type_digest(&a->heap);
		if (have && want && have != want)
			r = -EPROTO;
		else
			luo_heap_set_type_digest(&a->heap, want);
	}
	pthread_mutex_unlock(&a->lock);
	return r;
}
