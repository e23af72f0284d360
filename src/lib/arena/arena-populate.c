/* SPDX-License-Identifier: MIT */
/*
 * DOC: populating a retrieved arena's page tables in the background
 *
 * luo_arena_populate_start() (after luo_ready()) starts one thread at
 * nice POPULATE_NICE (or idle) that maps the arena's data extents chunk by
 * chunk -- a read per page, or MADV_POPULATE_READ, and with
 * LUO_ARENA_POPULATE_COLLAPSE MADV_COLLAPSE into huge pages -- so that the
 * service does not fault them one by one; luo_arena_populate_stop() asks
 * it to stop and joins it (luo_arena_close() does first);
 * luo_arena_populate_status() reads its progress. A failure stops the
 * thread and is kept for the status; the arena itself is never touched
 * but for reads.
 */

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arena.h"
#include "cleanup.h"

/* ------------------------------------------------------------------------ */
/* Populating the page tables in the background                              */

/*
 * One read per page maps it (writable: a shared shmem mapping needs no
 * write fault), and the kernel's fault-around maps the neighbouring pages
 * of the same 64 KiB window already in the page cache with it.
 */
static void touch_pages(const volatile char *p, size_t len, size_t page)
{
	for (size_t off = 0; off < len; off += page)
		(void)p[off];
}

/* Map [@off, @end) of the arena, chunk by chunk. 0, 1 asked to stop, or a negative errno. */
static int populate_extent(struct luo_arena *a, uint64_t off, uint64_t end, size_t page)
{
	struct arena_populate *pp = &a->pop;
	bool use_madvise = pp->flags & LUO_ARENA_POPULATE_MADVISE;

	while (off < end) {
		size_t len = (size_t)(end - off < pp->chunk ? end - off : pp->chunk);
		char *p = (char *)a->base + off;

		if (atomic_load(&pp->stop))
			return 1;
		if (!use_madvise)
			touch_pages(p, len, page);
		else if (madvise(p, len, MADV_POPULATE_READ) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue; /* retried from the same place */
			/* EINVAL: the kernel does not know the advice. */
			if (errno != EINVAL)
				return -errno;
			atomic_store(&pp->fallback, true);
			use_madvise = false;
			touch_pages(p, len, page);
		}
		off += len;
		atomic_fetch_add(&pp->populated, len);
		sched_yield(); /* the service first */
	}
	return 0;
}

/*
 * Every 2 MiB-aligned range of [@off, @end) into a huge page. Within a
 * data extent only: a range with a hole would have the hole filled. A
 * range that is huge already costs a page table walk. 0, 1 asked to stop.
 */
static int collapse_extent(struct luo_arena *a, uint64_t off, uint64_t end)
{
	struct arena_populate *pp = &a->pop;

	for (off = (off + POPULATE_HUGE - 1) & ~(uint64_t)(POPULATE_HUGE - 1); off + POPULATE_HUGE <= end;
	     off += POPULATE_HUGE) {
		if (atomic_load(&pp->stop))
			return 1;
		if (madvise((char *)a->base + off, POPULATE_HUGE, MADV_COLLAPSE) == 0)
			atomic_fetch_add(&pp->collapsed, POPULATE_HUGE);
		else if (errno == EINVAL || errno == EPERM) {
			/* No MADV_COLLAPSE here (or THP denied): the mapping stays as it is. */
			atomic_store(&pp->collapse_refused, true);
			return 0;
		}
		/* EAGAIN, ENOMEM, EBUSY: that range stays in small pages this time. */
		sched_yield();
	}
	return 0;
}

/* Call @fn on each data extent of the arena's memfd, in order. */
static int for_each_extent(struct luo_arena *a, size_t page, int (*fn)(struct luo_arena *, uint64_t, uint64_t, size_t))
{
	uint64_t off = 0;
	int r = 0;

	while (off < a->size) {
		off_t data = lseek(a->fd, (off_t)off, SEEK_DATA), hole;

		if (data < 0)
			return errno == ENXIO ? 0 : -errno; /* ENXIO: no data past @off */
		hole = lseek(a->fd, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		if ((uint64_t)hole > a->size)
			hole = (off_t)a->size;
		/* Whole pages: extents are page-granular on shmem anyway. */
		r = fn(a, (uint64_t)data & ~(uint64_t)(page - 1), (uint64_t)hole, page);
		if (r != 0)
			return r;
		off = (uint64_t)hole;
	}
	return 0;
}

static int collapse_extent_cb(struct luo_arena *a, uint64_t off, uint64_t end, size_t page)
{
	(void)page;
	if (atomic_load(&a->pop.collapse_refused))
		return 0;
	return collapse_extent(a, off, end);
}

static void *populate_main(void *arg)
{
	struct luo_arena *a = arg;
	struct arena_populate *pp = &a->pop;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	int r;

	if (pp->flags & LUO_ARENA_POPULATE_IDLE) {
		struct sched_param sp = { 0 };

		(void)pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
	} else if (!(pp->flags & LUO_ARENA_POPULATE_NORMAL)) {
		/* On Linux the nice value is the thread's (its tid). */
		(void)setpriority(PRIO_PROCESS, (id_t)gettid(), POPULATE_NICE);
	}
	/* The data extents only: holes stay holes (populating them would allocate). */
	r = for_each_extent(a, page, populate_extent);
	/* Then, for the next image, huge pages where the data fills 2 MiB. */
	if (r == 0 && (pp->flags & LUO_ARENA_POPULATE_COLLAPSE))
		r = for_each_extent(a, page, collapse_extent_cb);
	atomic_store(&pp->end_ns, luo_now_ns());
	if (r < 0)
		atomic_store(&pp->error, r);
	atomic_store(&pp->state, r < 0 ? LUO_ARENA_POPULATE_FAILED
				: r > 0 ? LUO_ARENA_POPULATE_STOPPED : LUO_ARENA_POPULATE_DONE);
	return NULL;
}

/* @pop.lock held. */
static void populate_join_locked(struct luo_arena *a)
{
	if (a->pop.joinable) {
		pthread_join(a->pop.thread, NULL);
		a->pop.joinable = false;
	}
}

int luo_arena_populate_start(struct luo_arena *a, size_t chunk, unsigned int flags)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	struct arena_populate *pp;
	sigset_t all, old;
	int r;

	if (!a || (flags & ~(unsigned int)LUO_ARENA_POPULATE_FLAGS) ||
	    (flags & LUO_ARENA_POPULATE_IDLE && flags & LUO_ARENA_POPULATE_NORMAL) || chunk % page ||
	    chunk > LUO_ARENA_POPULATE_CHUNK_MAX)
		return -EINVAL;
	if (arena_forked(a))
		return -EPERM; /* the parent's (arena.h) */
	pp = &a->pop;
	pthread_mutex_lock(&pp->lock);
	if (atomic_load(&pp->state) == LUO_ARENA_POPULATE_RUNNING) {
		pthread_mutex_unlock(&pp->lock);
		return -EBUSY;
	}
	populate_join_locked(a);
	pp->chunk = chunk ? chunk : LUO_ARENA_POPULATE_CHUNK;
	pp->flags = flags;
	atomic_store(&pp->stop, false);
	atomic_store(&pp->error, 0);
	atomic_store(&pp->fallback, false);
	atomic_store(&pp->populated, 0);
	atomic_store(&pp->collapsed, 0);
	atomic_store(&pp->collapse_refused, false);
	pp->start_ns = luo_now_ns();
	atomic_store(&pp->end_ns, 0);
	atomic_store(&pp->state, LUO_ARENA_POPULATE_RUNNING);
	/* The thread takes no signal: they stay the program's threads' business. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&pp->thread, NULL, populate_main, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		atomic_store(&pp->state, LUO_ARENA_POPULATE_NONE);
	else
		pp->joinable = true;
	pthread_mutex_unlock(&pp->lock);
	return r;
}

int luo_arena_populate_stop(struct luo_arena *a)
{
	if (!a)
		return -EINVAL;
	if (arena_forked(a))
		return -EPERM; /* the parent's: no thread here, its lock may have been held at the fork */
	pthread_mutex_lock(&a->pop.lock);
	atomic_store(&a->pop.stop, true);
	populate_join_locked(a);
	pthread_mutex_unlock(&a->pop.lock);
	return 0;
}

int luo_arena_populate_status(struct luo_arena *a, struct luo_arena_populate_status *ret_status)
{
	struct arena_populate *pp;
	uint64_t end;

	if (!a || !ret_status)
		return -EINVAL;
	if (arena_forked(a))
		return -EPERM;
	pp = &a->pop;
	pthread_mutex_lock(&pp->lock);
	ret_status->state = atomic_load(&pp->state);
	ret_status->error = atomic_load(&pp->error);
	ret_status->fallback = atomic_load(&pp->fallback);
	ret_status->populated = atomic_load(&pp->populated);
	ret_status->collapsed = atomic_load(&pp->collapsed);
	ret_status->collapse_refused = atomic_load(&pp->collapse_refused);
	end = atomic_load(&pp->end_ns);
	ret_status->elapsed_ns = ret_status->state == LUO_ARENA_POPULATE_NONE ? 0
				 : (end ? end : luo_now_ns()) - pp->start_ns;
	pthread_mutex_unlock(&pp->lock);
	return 0;
}
