/* SPDX-License-Identifier: MIT */
/*
 * DOC: the built-in "arena" handler and the arenas' reservations
 *
 * An arena (arena/arena.c) is a sealed memfd mapped at an address its
 * data records. The handler's preserve and freeze record the memfd's
 * identity, size and seals (handler-memfd.c's luo_memfd_identify()); its
 * retrieve checks them and the recorded address range; its finish, for
 * an arena nobody retrieved, gives back the address range reserved for it.
 *
 * The reservations: each incoming arena's range, reserved before main()
 * (arena.c's constructor) or at its retrieve, by session and token, under
 * their own lock. A range already taken is remembered as a clash.
 */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "model.h"

#define ARENA_SEALS (F_SEAL_GROW | F_SEAL_SHRINK)

static struct luo_arena_reservation reservations[LUO_ARENAS_MAX];
static size_t n_reservations;
static pthread_mutex_t reservations_lock = PTHREAD_MUTEX_INITIALIZER;

/* @size is the region's: the data asked for plus the allocator's metadata pages. */
bool luo_arena_range_ok(uint64_t addr, uint64_t size)
{
	return size >= LUO_ARENA_SIZE_MIN && size <= LUO_ARENA_REGION_MAX && size % LUO_ABI_ARENA_SIZE_ALIGN == 0 &&
	       addr % LUO_ABI_ARENA_ADDR_ALIGN == 0 && addr >= LUO_ABI_ARENA_ADDR_ALIGN &&
	       addr < LUO_ABI_ARENA_ADDR_END && size <= LUO_ABI_ARENA_ADDR_END - addr;
}

static int reserve(uint64_t addr, uint64_t size)
{
	void *p = mmap((void *)(uintptr_t)addr, size, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	if (p != (void *)(uintptr_t)addr) { /* a kernel without MAP_FIXED_NOREPLACE */
		munmap(p, size);
		return -EEXIST;
	}
	return 0;
}

void luo_arena_reservations_lock(void)
{
	pthread_mutex_lock(&reservations_lock);
}

void luo_arena_reservations_unlock(void)
{
	pthread_mutex_unlock(&reservations_lock);
}

struct luo_arena_reservation *luo_arena_reserve_locked(const char *session, uint64_t token, uint64_t addr,
						       uint64_t size)
{
	struct luo_arena_reservation *rv;

	if (n_reservations >= LUO_ARENAS_MAX)
		return NULL;
	rv = &reservations[n_reservations++];
	snprintf(rv->session, sizeof(rv->session), "%s", session);
	rv->token = token;
	rv->addr = addr;
	rv->size = size;
	rv->error = reserve(addr, size);
	return rv;
}

struct luo_arena_reservation *luo_arena_reservation_find_locked(const char *session, uint64_t token)
{
	for (size_t i = 0; i < n_reservations; i++)
		if (reservations[i].token == token && strcmp(reservations[i].session, session) == 0)
			return &reservations[i];
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* The "arena" file handler                                                  */

static bool arena_can_preserve(int fd)
{
	(void)fd;
	return false; /* only through luo_arena_create() / luo_arena_preserve() */
}

static int arena_record(struct luo_file *file)
{
	struct luo_abi_arena_v1 *d = (struct luo_abi_arena_v1 *)file->data;
	struct luo_memfd_id id = { 0 };
	int r;

	r = luo_memfd_identify(file->fd, &id);
	if (r < 0)
		return r;
	if (id.seals < 0)
		return id.seals;
	if (id.size != d->size || (id.seals & ARENA_SEALS) != ARENA_SEALS)
		return -EINVAL;
	d->dev = id.dev;
	d->ino = id.ino;
	d->seals = (uint32_t)id.seals;
	return 0;
}

static void arena_unpreserve(struct luo_file *file)
{
	(void)file;
}

static int arena_retrieve_check(struct luo_file *file)
{
	const struct luo_abi_arena_v1 *d = (const struct luo_abi_arena_v1 *)file->data;
	struct luo_memfd_id id = { 0 };
	int r;

	if (!luo_arena_range_ok(d->addr, d->size) || (d->flags & ~(uint32_t)(LUO_ARENA_HUGEPAGES | LUO_ARENA_PREFAULT)))
		return -EBADMSG;
	r = luo_memfd_identify(file->fd, &id);
	if (r < 0)
		return r;
	if (!luo_memfd_id_matches(&id, d->dev, d->ino, d->size, d->seals) || (id.seals & ARENA_SEALS) != ARENA_SEALS)
		return -EBADFD;
	return 0;
}

/* Not retrieved: give the reserved range back. */
static void arena_finish(struct luo_file *file, bool retrieved)
{
	struct luo_arena_reservation *rv;

	(void)retrieved;
	luo_arena_reservations_lock();
	rv = luo_arena_reservation_find_locked(file->session->name, file->token);
	/* Not mapped by luo_arena_retrieve() (maybe taken as a plain fd): release. */
	if (rv && !rv->taken && rv->error == 0) {
		munmap((void *)(uintptr_t)rv->addr, rv->size);
		rv->error = -ENOENT;
	}
	pthread_mutex_unlock(&reservations_lock);
}

/* Set once by arena/arena.c: the layer above is called back, never by name. */
static void (*_Atomic freeze_hook)(uint64_t addr);

void luo_handler_arena_set_freeze_hook(void (*flush)(uint64_t addr))
{
	atomic_store(&freeze_hook, flush);
}

/*
 * The handover: blocks in the allocator's thread caches go back to the
 * heap first (the hook), so the next image finds them free -- not leaked,
 * and not handed out twice; the caches stay bound, so this image may go on
 * if the update fails.
 */
static int arena_freeze(struct luo_file *file)
{
	const struct luo_abi_arena_v1 *d = (const struct luo_abi_arena_v1 *)file->data;
	void (*flush)(uint64_t addr) = atomic_load(&freeze_hook);

	if (flush)
		flush(d->addr);
	return arena_record(file);
}

static const struct luo_file_ops arena_ops = {
	.can_preserve = arena_can_preserve,
	.preserve = arena_record,
	.unpreserve = arena_unpreserve,
	.freeze = arena_freeze,
	.retrieve = arena_retrieve_check,
	.finish = arena_finish,
};

LUO_FILE_HANDLER_DECLARE(luo_handler_arena, "arena", LUO_ABI_ARENA_VERSION, sizeof(struct luo_abi_arena_v1),
			 &arena_ops);
