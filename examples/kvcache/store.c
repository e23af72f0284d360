/* SPDX-License-Identifier: MIT */
/*
 * DOC: the store -- items and their index inside one luo arena
 *
 * Everything a request reads or writes lives in the arena: the root
 * (struct kv_root, the arena's luo_arena_root()), the bucket array, every
 * item, and the counters "stats" shows. Pointers inside are raw: the arena
 * comes back at the same address after a live update, so the next image
 * finds it all through luo_arena_root() with no copy and no fix-up.
 *
 * Lifecycle: kv_store_format() on a fresh start (root, buckets), or
 * kv_store_adopt() after an update (the root checked, in O(1)); then the
 * operations; kv_store_fini() destroys the locks. Locks never live in the
 * arena: a mutex held by a thread of the old image would be held forever;
 * each image has its own array of KV_STRIPES mutexes, all free when it
 * starts (the old image quiesced its workers before the switch, so no
 * operation was half done).
 *
 * Locking: a key's hash picks a bucket and the bucket a stripe (the low
 * bits of the bucket number: a bucket is always in one stripe). One mutex
 * per stripe guards its buckets, its LRU list and its items; counters are
 * relaxed atomics. Eviction takes the tail of the caller's own stripe, and
 * when that one is empty, tries the other stripes' locks (trylock: never
 * two locks waited on, so no lock order to keep). So the LRU is per
 * stripe, an approximation of a global one. The arena's allocator has its
 * own lock (libluo's): sets serialize there, gets never allocate.
 *
 * Memory: the items' bytes (header, key, value, "\r\n") are counted
 * against the cap, --memory (limit_maxbytes); past it, or when the arena
 * has no block to give, items are evicted, at most KV_EVICT_TRIES for one.
 * The arena itself is larger than the cap (allocator classes round up),
 * see kv_store_arena_size().
 *
 * Failures: an allocation that still fails after eviction is KV_NO_MEMORY
 * (the set's old value is removed, as memcached does); the output buffer
 * failing to grow is -ENOMEM for the caller. Nothing aborts.
 *
 * DOC: formats
 *
 * The in-region format, negotiated as the version of the component
 * "kvcache-store" (kvcache.c), is what the root and items mean:
 *
 *   1  root as struct kv_root, hash_seed 0; items of layout 1. Readers
 *      accept items of any layout >= 1 and read only layout 1's fields:
 *      later layouts may give the atime word a meaning, no more (a
 *      compatible feature, as ext4 has them).
 *   2  as 1; items of layout 1 or 2. Layout 2: atime is the last read,
 *      used to move an item in its LRU at most every KV_BUMP_INTERVAL
 *      seconds (fewer writes on the hot path). A layout 1 item read by
 *      a v2 image gets its atime then: lazy migration, in place, one
 *      item at a time, never in the blackout. Going back to format 1 is
 *      O(1) too: the region is a valid format 1 region as it is.
 *   3  the hash is seeded (root->hash_seed, random at a fresh start): an
 *      index of format 1 or 2 cannot be read without rehashing every
 *      item, nor can format 3 by v1 or v2. Incompatible.
 *
 *   build  reads  writes
 *   v1     1      1
 *   v2     1..2   1..2
 *   v3     3      3
 */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "kv.h"

/* ---------------------------------------------------------------------- */
/* Output buffers                                                          */

int kv_buf_reserve(struct kv_buf *b, size_t more)
{
	size_t want, cap;
	char *p;

	if (more > SIZE_MAX / 2 - b->len)
		return -ENOMEM;
	want = b->len + more;
	if (want <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 4096;
	while (cap < want)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int kv_buf_append(struct kv_buf *b, const void *data, size_t len)
{
	int r;

	/* Nothing to add (a noreply's empty reply): an empty buffer has no data to copy into (fuzz-kvcache). */
	if (len == 0)
		return 0;
	r = kv_buf_reserve(b, len);
	if (r < 0)
		return r;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

void kv_buf_free(struct kv_buf *b)
{
	free(b->data);
	*b = (struct kv_buf){ 0 };
}

/* ---------------------------------------------------------------------- */
/* Geometry                                                                */

static uint32_t buckets_for(uint64_t limit)
{
	uint64_t want = limit / KV_BYTES_PER_BUCKET;
	uint32_t n = KV_BUCKETS_MIN;

	while (n < want && n < KV_BUCKETS_MAX)
		n *= 2;
	return n;
}

size_t kv_store_arena_size(uint64_t limit)
{
	/*
	 * Twice the cap: the allocator rounds small items up to its classes
	 * (up to 25%) and large ones to 64 KiB chunks; pages never touched
	 * cost nothing (the arena is a memfd filled on demand).
	 */
	uint64_t bytes = 2 * limit + (uint64_t)buckets_for(limit) * sizeof(struct kv_item *) +
			 sizeof(struct kv_root) + (4u << 20);

	bytes = (bytes + 0xffff) & ~(uint64_t)0xffff;
	if (bytes < LUO_ARENA_SIZE_MIN)
		bytes = LUO_ARENA_SIZE_MIN;
	return (size_t)bytes;
}

uint32_t kv_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint32_t)ts.tv_sec;
}

uint32_t kv_exptime(int64_t exptime)
{
	int64_t t;

	if (exptime == 0)
		return 0;
	if (exptime < 0)
		return 1; /* in the past: gone at once */
	t = exptime > KV_REALTIME_MAXDELTA ? exptime : (int64_t)kv_now() + exptime;
	return t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

static int locks_init(struct kv_store *st)
{
	for (size_t i = 0; i < KV_STRIPES; i++) {
		int r = pthread_mutex_init(&st->locks[i], NULL);

		if (r) {
			while (i-- > 0)
				pthread_mutex_destroy(&st->locks[i]);
			return -r;
		}
	}
	return 0;
}

int kv_store_format(struct kv_store *st, struct luo_arena *arena, uint64_t limit)
{
	struct kv_root *root;
	uint32_t n = buckets_for(limit);
	int r;

	root = luo_arena_alloc(arena, sizeof(*root));
	if (!root)
		return -ENOMEM;
	memset(root, 0, sizeof(*root));
	root->buckets = luo_arena_alloc(arena, (size_t)n * sizeof(struct kv_item *));
	if (!root->buckets) {
		luo_arena_free(arena, root);
		return -ENOMEM;
	}
	memset(root->buckets, 0, (size_t)n * sizeof(struct kv_item *));
	root->magic = KV_ROOT_MAGIC;
	root->format = KV_FORMAT_WRITE_MAX;
	root->nbuckets = n;
	root->limit = limit;
	root->started_at = kv_now();
	if (KV_FORMAT_WRITE_MAX >= 3 && getrandom(&root->hash_seed, sizeof(root->hash_seed), 0) != sizeof(root->hash_seed))
		root->hash_seed = (uint64_t)time(NULL) * UINT64_C(0x9e3779b97f4a7c15);
	r = locks_init(st);
	if (r < 0) {
		luo_arena_free(arena, root->buckets);
		luo_arena_free(arena, root);
		return r;
	}
	r = luo_arena_set_root(arena, root);
	if (r < 0) {
		kv_store_fini(st);
		luo_arena_free(arena, root->buckets);
		luo_arena_free(arena, root);
		return r;
	}
	st->arena = arena;
	st->root = root;
	st->format = KV_FORMAT_WRITE_MAX;
	return 0;
}

static bool in_arena(struct luo_arena *arena, const void *p, size_t len)
{
	uintptr_t b = (uintptr_t)luo_arena_base(arena), s = luo_arena_size(arena), a = (uintptr_t)p;

	return a >= b && a - b <= s && len <= s - (a - b);
}

int kv_store_adopt(struct kv_store *st, struct luo_arena *arena, uint32_t format)
{
	struct kv_root *root = luo_arena_root(arena);
	int r;

	if (!KV_FORMAT_KNOWS(format))
		return -EPROTO;
	/*
	 * The root is checked, not the items: walking them would make the
	 * blackout grow with their number. The previous image is this same
	 * service (same uid, a build we negotiated with); the check catches
	 * a wrong arena, not an adversary.
	 */
	if (!root || !in_arena(arena, root, sizeof(*root)) || root->magic != KV_ROOT_MAGIC)
		return -EBADMSG;
	if (root->nbuckets < KV_BUCKETS_MIN || root->nbuckets > KV_BUCKETS_MAX ||
	    (root->nbuckets & (root->nbuckets - 1)) ||
	    !in_arena(arena, root->buckets, (size_t)root->nbuckets * sizeof(struct kv_item *)))
		return -EBADMSG;
	if ((format < 3) != (root->hash_seed == 0))
		return -EBADMSG;
	r = locks_init(st);
	if (r < 0)
		return r;
	st->arena = arena;
	st->root = root;
	st->format = KV_FORMAT_WRITE_MAX;
	root->format = st->format;
	return 0;
}

void kv_store_fini(struct kv_store *st)
{
	for (size_t i = 0; i < KV_STRIPES; i++)
		pthread_mutex_destroy(&st->locks[i]);
}

/* ---------------------------------------------------------------------- */
/* Items                                                                   */

static uint64_t kv_hash(const struct kv_store *st, const char *key, size_t n)
{
	/* FNV-1a, then a final mix (splitmix64) so the low bits are good. */
	uint64_t h = UINT64_C(0xcbf29ce484222325) ^ st->root->hash_seed;

	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)key[i];
		h *= UINT64_C(0x100000001b3);
	}
	h ^= h >> 30;
	h *= UINT64_C(0xbf58476d1ce4e5b9);
	h ^= h >> 27;
	h *= UINT64_C(0x94d049bb133111eb);
	h ^= h >> 31;
	return h;
}

static size_t item_size(size_t nkey, size_t nbytes)
{
	return sizeof(struct kv_item) + nkey + nbytes + 2;
}

/*
 * memcached's rule for "too large": its own item header (48 bytes), the
 * cas (8), the key and its NUL, the flags when not 0 (4), the value and
 * "\r\n" within item_size_max (KV_VALUE_MAX). So a value of exactly 1 MiB
 * is too large there, and here: clients see one limit.
 */
bool kv_item_fits(size_t nkey, uint32_t flags, uint64_t nbytes)
{
	return 48 + 8 + nkey + 1 + (flags ? 4 : 0) + nbytes + 2 <= KV_VALUE_MAX;
}

static size_t item_total(const struct kv_item *it)
{
	return item_size(it->nkey, it->nbytes);
}

static char *item_value(struct kv_item *it)
{
	return it->data + it->nkey;
}

static uint32_t bucket_of(const struct kv_store *st, uint64_t h)
{
	return (uint32_t)h & (st->root->nbuckets - 1);
}

static uint32_t stripe_of_bucket(uint32_t b)
{
	return b & (KV_STRIPES - 1);
}

static bool item_dead(const struct kv_store *st, const struct kv_item *it, uint32_t now)
{
	uint64_t oldest_live = __atomic_load_n(&st->root->oldest_live, __ATOMIC_RELAXED);

	if (it->exptime && it->exptime <= now)
		return true;
	if (it->cas <= __atomic_load_n(&st->root->oldest_cas, __ATOMIC_RELAXED))
		return true;
	return oldest_live && oldest_live <= now && it->mtime <= oldest_live;
}

static void lru_unlink(struct kv_lru *l, struct kv_item *it)
{
	if (it->prev)
		it->prev->next = it->next;
	else
		l->head = it->next;
	if (it->next)
		it->next->prev = it->prev;
	else
		l->tail = it->prev;
	it->prev = it->next = NULL;
}

static void lru_push(struct kv_lru *l, struct kv_item *it)
{
	it->prev = NULL;
	it->next = l->head;
	if (l->head)
		l->head->prev = it;
	l->head = it;
	if (!l->tail)
		l->tail = it;
}

/* The slot that points at @it in its bucket, or NULL. Stripe lock held. */
static struct kv_item **chain_slot(struct kv_store *st, struct kv_item *it)
{
	struct kv_item **pp = &st->root->buckets[bucket_of(st, kv_hash(st, it->data, it->nkey))];

	for (; *pp; pp = &(*pp)->hnext)
		if (*pp == it)
			return pp;
	return NULL;
}

/* Unlink @it (at *@pp in its chain) and free it. Stripe lock held. */
static void item_remove(struct kv_store *st, uint32_t stripe, struct kv_item **pp, struct kv_item *it)
{
	*pp = it->hnext;
	lru_unlink(&st->root->lru[stripe], it);
	KV_COUNT(st, curr_items, -1);
	KV_COUNT(st, bytes, -(uint64_t)item_total(it));
	luo_arena_free(st->arena, it);
}

/*
 * Find @key in its bucket; a dead item found there is removed on the way.
 * Stripe lock held. *@ret_pp: the slot pointing at the item found.
 */
static struct kv_item *item_find(struct kv_store *st, uint32_t b, const char *key, size_t nkey, uint32_t now,
				 struct kv_item ***ret_pp, bool *ret_dead)
{
	struct kv_item **pp = &st->root->buckets[b];

	if (ret_dead)
		*ret_dead = false;
	while (*pp) {
		struct kv_item *it = *pp;

		if (it->nkey == nkey && memcmp(it->data, key, nkey) == 0) {
			if (item_dead(st, it, now)) {
				item_remove(st, stripe_of_bucket(b), pp, it);
				KV_COUNT(st, reclaimed, 1);
				if (ret_dead)
					*ret_dead = true;
				return NULL;
			}
			if (ret_pp)
				*ret_pp = pp;
			return it;
		}
		pp = &it->hnext;
	}
	return NULL;
}

/* Evict the tail of @stripe (its lock held), but never @keep. */
static bool evict_in(struct kv_store *st, uint32_t stripe, const struct kv_item *keep)
{
	struct kv_item *it = st->root->lru[stripe].tail, **pp;

	if (it == keep && it)
		it = it->prev;
	if (!it)
		return false;
	pp = chain_slot(st, it);
	if (!pp)
		return false; /* not in its chain: the index is damaged; leave it */
	if (!item_dead(st, it, kv_now()))
		KV_COUNT(st, evictions, 1);
	else
		KV_COUNT(st, reclaimed, 1);
	item_remove(st, stripe, pp, it);
	return true;
}

static bool evict_one(struct kv_store *st, uint32_t stripe, const struct kv_item *keep)
{
	static _Atomic uint32_t next_victim;
	uint32_t start;

	if (evict_in(st, stripe, keep))
		return true;
	start = atomic_fetch_add_explicit(&next_victim, 1, memory_order_relaxed);
	for (uint32_t i = 0; i < KV_STRIPES; i++) {
		uint32_t s = (start + i) & (KV_STRIPES - 1);
		bool done;

		if (s == stripe || pthread_mutex_trylock(&st->locks[s]) != 0)
			continue;
		done = evict_in(st, s, NULL);
		pthread_mutex_unlock(&st->locks[s]);
		if (done)
			return true;
	}
	return false;
}

/* A new item, not linked; NULL when no room even after eviction. Stripe lock held. */
static struct kv_item *item_alloc(struct kv_store *st, uint32_t stripe, const char *key, size_t nkey, uint32_t flags,
				  uint32_t exptime, size_t nbytes, const struct kv_item *keep)
{
	size_t size = item_size(nkey, nbytes);
	struct kv_item *it = NULL;
	uint32_t now = kv_now();

	for (int tries = 0; tries <= KV_EVICT_TRIES; tries++) {
		if (KV_READ(st, bytes) + size <= st->root->limit) {
			it = luo_arena_alloc(st->arena, size);
			if (it)
				break;
		}
		if (!evict_one(st, stripe, keep))
			return NULL;
	}
	if (!it)
		return NULL;
	memset(it, 0, sizeof(*it));
	it->exptime = exptime;
	it->flags = flags;
	it->mtime = now;
	it->nkey = (uint8_t)nkey;
	it->nbytes = (uint32_t)nbytes;
	it->layout = st->format >= 2 ? 2 : 1;
	it->atime = st->format >= 2 ? now : 0;
	memcpy(it->data, key, nkey);
	memcpy(it->data + nkey + nbytes, "\r\n", 2);
	KV_COUNT(st, bytes, size);
	return it;
}

/* Link @it at the head of bucket @b, replacing *@old_pp's item if any. Stripe lock held. */
static void item_link(struct kv_store *st, uint32_t b, struct kv_item *it, struct kv_item **old_pp)
{
	uint32_t stripe = stripe_of_bucket(b);

	if (old_pp) {
		struct kv_item *old = *old_pp;

		*old_pp = old->hnext; /* unlink first: the bucket head may be the old item */
		lru_unlink(&st->root->lru[stripe], old);
		KV_COUNT(st, curr_items, -1);
		KV_COUNT(st, bytes, -(uint64_t)item_total(old));
		luo_arena_free(st->arena, old);
	}
	it->cas = __atomic_add_fetch(&st->root->cas_next, 1, __ATOMIC_RELAXED);
	it->hnext = st->root->buckets[b];
	st->root->buckets[b] = it;
	lru_push(&st->root->lru[stripe], it);
	KV_COUNT(st, curr_items, 1);
	KV_COUNT(st, total_items, 1);
}

/* A read: move the item to the head of its LRU (v2: at most every KV_BUMP_INTERVAL s). */
static void item_bump(struct kv_store *st, uint32_t stripe, struct kv_item *it, uint32_t now)
{
	if (st->format >= 2) {
		if (it->layout < 2) {
			/* Lazy migration: layout 1 -> 2, in place. */
			it->layout = 2;
			it->atime = 0;
			KV_COUNT(st, migrated, 1);
		}
		if (it->atime && now - it->atime < KV_BUMP_INTERVAL)
			return;
		it->atime = now;
	}
	lru_unlink(&st->root->lru[stripe], it);
	lru_push(&st->root->lru[stripe], it);
}

/* ---------------------------------------------------------------------- */
/* Operations                                                              */

struct locked {
	struct kv_store *st;
	uint32_t bucket, stripe;
};

static struct locked lock_key(struct kv_store *st, const char *key, size_t nkey)
{
	struct locked l = { .st = st };

	l.bucket = bucket_of(st, kv_hash(st, key, nkey));
	l.stripe = stripe_of_bucket(l.bucket);
	pthread_mutex_lock(&st->locks[l.stripe]);
	return l;
}

static void unlock_key(struct locked *l)
{
	pthread_mutex_unlock(&l->st->locks[l->stripe]);
}
#define _cleanup_unlock_ _cleanup_(unlock_key)

int kv_store_get(struct kv_store *st, const char *key, size_t nkey, bool with_cas, struct kv_buf *out)
{
	_cleanup_unlock_ struct locked l = lock_key(st, key, nkey);
	uint32_t now = kv_now();
	struct kv_item *it;
	bool dead;
	char head[KV_KEY_MAX + 96];
	int n;

	KV_COUNT(st, cmd_get, 1);
	it = item_find(st, l.bucket, key, nkey, now, NULL, &dead);
	if (!it) {
		KV_COUNT(st, get_misses, 1);
		if (dead)
			KV_COUNT(st, get_expired, 1);
		return 0;
	}
	/* The key by memcpy: it may hold NULs, which printf would stop at. */
	memcpy(head, "VALUE ", 6);
	memcpy(head + 6, key, nkey);
	n = 6 + (int)nkey;
	if (with_cas)
		n += snprintf(head + n, sizeof(head) - (size_t)n, " %" PRIu32 " %" PRIu32 " %" PRIu64 "\r\n", it->flags,
			      it->nbytes, it->cas);
	else
		n += snprintf(head + n, sizeof(head) - (size_t)n, " %" PRIu32 " %" PRIu32 "\r\n", it->flags, it->nbytes);
	if (kv_buf_reserve(out, (size_t)n + it->nbytes + 2) < 0)
		return -ENOMEM;
	kv_buf_append(out, head, (size_t)n);
	kv_buf_append(out, item_value(it), it->nbytes + 2);
	KV_COUNT(st, get_hits, 1);
	item_bump(st, l.stripe, it, now);
	return 1;
}

int kv_store_fetch(struct kv_store *st, const char *key, size_t nkey, const struct kv_fetch *req,
		   struct kv_item_info *ret_info, struct kv_buf *value_out)
{
	_cleanup_unlock_ struct locked l = lock_key(st, key, nkey);
	uint32_t now = kv_now();
	struct kv_item *it;
	bool dead;

	if (req->touch)
		KV_COUNT(st, cmd_touch, 1);
	else
		KV_COUNT(st, cmd_get, 1);
	it = item_find(st, l.bucket, key, nkey, now, NULL, &dead);
	if (!it) {
		if (req->touch) {
			KV_COUNT(st, touch_misses, 1);
		} else {
			KV_COUNT(st, get_misses, 1);
			if (dead)
				KV_COUNT(st, get_expired, 1);
		}
		return 0;
	}
	if (value_out && kv_buf_append(value_out, item_value(it), it->nbytes + 2) < 0)
		return -ENOMEM;
	if (req->touch) {
		it->exptime = req->exptime;
		KV_COUNT(st, touch_hits, 1);
	} else {
		KV_COUNT(st, get_hits, 1);
	}
	if (ret_info)
		*ret_info = (struct kv_item_info){ .flags = it->flags, .nbytes = it->nbytes, .cas = it->cas,
						   .exptime = it->exptime, .mtime = it->mtime,
						   .atime = it->layout >= 2 && it->atime ? it->atime : it->mtime,
						   .total = item_total(it) };
	if (!req->no_bump)
		item_bump(st, l.stripe, it, now);
	return 1;
}

enum kv_result kv_store_set(struct kv_store *st, enum kv_set_mode mode, const char *key, size_t nkey, uint32_t flags,
			    uint32_t exptime, const char *value, size_t nbytes, uint64_t cas, uint64_t *ret_cas)
{
	_cleanup_unlock_ struct locked l = lock_key(st, key, nkey);
	struct kv_item *old, *it, **old_pp = NULL;
	size_t total = nbytes;

	KV_COUNT(st, cmd_set, 1);
	old = item_find(st, l.bucket, key, nkey, kv_now(), &old_pp, NULL);
	switch (mode) {
	case KV_SET:
		break;
	case KV_ADD:
		if (old) {
			item_bump(st, l.stripe, old, kv_now());
			return KV_NOT_STORED;
		}
		break;
	case KV_REPLACE:
		if (!old)
			return KV_NOT_STORED;
		break;
	case KV_APPEND:
	case KV_PREPEND:
		if (!old)
			return KV_NOT_STORED;
		total = (size_t)old->nbytes + nbytes;
		if (!kv_item_fits(nkey, old->flags, total))
			return KV_NOT_STORED; /* memcached's answer: the item could not grow */
		flags = old->flags;
		exptime = old->exptime;
		break;
	case KV_CAS:
		if (!old) {
			KV_COUNT(st, cas_misses, 1);
			return KV_NOT_FOUND;
		}
		if (old->cas != cas) {
			KV_COUNT(st, cas_badval, 1);
			return KV_EXISTS;
		}
		KV_COUNT(st, cas_hits, 1);
		break;
	}
	it = item_alloc(st, l.stripe, key, nkey, flags, exptime, total, old);
	if (!it) {
		/* memcached: a set that cannot be stored leaves no stale value behind. */
		if (old && mode == KV_SET) {
			old_pp = NULL;
			old = item_find(st, l.bucket, key, nkey, kv_now(), &old_pp, NULL);
			if (old)
				item_remove(st, l.stripe, old_pp, old);
		}
		return KV_NO_MEMORY;
	}
	if (mode == KV_APPEND) {
		memcpy(item_value(it), item_value(old), old->nbytes);
		memcpy(item_value(it) + old->nbytes, value, nbytes);
	} else if (mode == KV_PREPEND) {
		memcpy(item_value(it), value, nbytes);
		memcpy(item_value(it) + nbytes, item_value(old), old->nbytes);
	} else {
		memcpy(item_value(it), value, nbytes);
	}
	/* Eviction may have moved old's chain slot (an item before it evicted): find it again. */
	if (old) {
		old_pp = chain_slot(st, old);
		if (!old_pp)
			return KV_NO_MEMORY; /* cannot happen: evict_in() spares it */
	}
	item_link(st, l.bucket, it, old ? old_pp : NULL);
	if (ret_cas)
		*ret_cas = it->cas;
	return KV_STORED;
}

enum kv_result kv_store_delete(struct kv_store *st, const char *key, size_t nkey, uint64_t cas)
{
	_cleanup_unlock_ struct locked l = lock_key(st, key, nkey);
	struct kv_item *it, **pp = NULL;

	it = item_find(st, l.bucket, key, nkey, kv_now(), &pp, NULL);
	if (!it) {
		KV_COUNT(st, delete_misses, 1);
		return KV_NOT_FOUND;
	}
	if (cas && it->cas != cas) {
		KV_COUNT(st, delete_misses, 1); /* as memcached counts a meta delete's cas mismatch */
		return KV_EXISTS;
	}
	item_remove(st, l.stripe, pp, it);
	KV_COUNT(st, delete_hits, 1);
	return KV_DELETED;
}

enum kv_result kv_store_touch(struct kv_store *st, const char *key, size_t nkey, uint32_t exptime)
{
	_cleanup_unlock_ struct locked l = lock_key(st, key, nkey);
	uint32_t now = kv_now();
	struct kv_item *it;

	KV_COUNT(st, cmd_touch, 1);
	it = item_find(st, l.bucket, key, nkey, now, NULL, NULL);
	if (!it) {
		KV_COUNT(st, touch_misses, 1);
		return KV_NOT_FOUND;
	}
	it->exptime = exptime;
	item_bump(st, l.stripe, it, now);
	KV_COUNT(st, touch_hits, 1);
	return KV_TOUCHED;
}

static bool is_c_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/*
 * A value as memcached's safe_strtoull() reads it (strtoull, base 10):
 * leading white space, a sign, digits (an overflow is not a number), then
 * white space or the end of the value; what follows that is ignored ("12
 * x" is 12). A '-' makes a number whose top bit is set not a number
 * ("-5"), and one whose top bit is clear its two's complement ("-0" is 0),
 * exactly as there. An empty value is not a number.
 */
static bool value_number(const char *s, size_t n, uint64_t *ret)
{
	uint64_t v = 0;
	size_t i = 0, start;
	bool neg = false;

	while (i < n && is_c_space(s[i]))
		i++;
	if (i < n && (s[i] == '+' || s[i] == '-'))
		neg = s[i++] == '-';
	start = i;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
		if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (i == start || (i < n && !is_c_space(s[i])))
		return false;
	if (neg) {
		v = -v;
		if (v >> 63)
			return false;
	}
	*ret = v;
	return true;
}

enum kv_result kv_store_arith(struct kv_store *st, const char *key, size_t nkey, const struct kv_arith *req,
			      uint64_t *ret_value, struct kv_item_info *ret_info)
{
	bool incr = req->incr;
	uint64_t delta = req->delta;
	_cleanup_unlock_ struct locked l = lock_key(st, key, nkey);
	uint32_t now = kv_now();
	struct kv_item *it, *nit, **pp = NULL;
	uint64_t v;
	char num[24];
	int n;

	it = item_find(st, l.bucket, key, nkey, now, &pp, NULL);
	if (!it) {
		if (incr)
			KV_COUNT(st, incr_misses, 1);
		else
			KV_COUNT(st, decr_misses, 1);
		return KV_NOT_FOUND;
	}
	if (!value_number(item_value(it), it->nbytes, &v))
		return KV_NON_NUMERIC;
	if (req->cas && it->cas != req->cas)
		return KV_EXISTS;
	if (incr) {
		v += delta; /* wraps at 2^64, as memcached */
		KV_COUNT(st, incr_hits, 1);
	} else {
		v = delta > v ? 0 : v - delta;
		KV_COUNT(st, decr_hits, 1);
	}
	n = snprintf(num, sizeof(num), "%" PRIu64, v);
	if ((uint32_t)n <= it->nbytes) {
		/* In place, padded with spaces, as memcached does. */
		memcpy(item_value(it), num, (size_t)n);
		memset(item_value(it) + n, ' ', it->nbytes - (uint32_t)n);
		it->cas = __atomic_add_fetch(&st->root->cas_next, 1, __ATOMIC_RELAXED);
		item_bump(st, l.stripe, it, now);
	} else {
		nit = item_alloc(st, l.stripe, key, nkey, it->flags, it->exptime, (size_t)n, it);
		if (!nit)
			return KV_NO_MEMORY;
		memcpy(item_value(nit), num, (size_t)n);
		pp = chain_slot(st, it);
		if (!pp)
			return KV_NO_MEMORY;
		item_link(st, l.bucket, nit, pp);
		it = nit;
	}
	if (req->set_ttl)
		it->exptime = req->exptime;
	*ret_value = v;
	if (ret_info)
		*ret_info = (struct kv_item_info){ .flags = it->flags, .nbytes = it->nbytes, .cas = it->cas,
						   .exptime = it->exptime, .mtime = it->mtime, .atime = now,
						   .total = item_total(it) };
	return KV_OK;
}

int kv_store_dump(struct kv_store *st, uint64_t limit, size_t max_bytes, struct kv_buf *out)
{
	uint32_t now = kv_now();
	size_t start = out->len;
	uint64_t shown = 0;

	for (uint32_t s = 0; s < KV_STRIPES && (limit == 0 || shown < limit); s++) {
		pthread_mutex_lock(&st->locks[s]);
		for (struct kv_item *it = st->root->lru[s].head; it && (limit == 0 || shown < limit); it = it->next) {
			char line[KV_KEY_MAX + 64];
			int n;

			if (item_dead(st, it, now))
				continue;
			memcpy(line, "ITEM ", 5);
			memcpy(line + 5, it->data, it->nkey);
			n = 5 + it->nkey;
			n += snprintf(line + n, sizeof(line) - (size_t)n, " [%" PRIu32 " b; %" PRIu32 " s]\r\n", it->nbytes,
				      it->exptime);
			if (out->len - start + (size_t)n > max_bytes || kv_buf_append(out, line, (size_t)n) < 0) {
				pthread_mutex_unlock(&st->locks[s]);
				return 0;
			}
			shown++;
		}
		pthread_mutex_unlock(&st->locks[s]);
	}
	return 0;
}

int kv_store_set_limit(struct kv_store *st, uint64_t limit)
{
	if (limit == 0 || kv_store_arena_size(limit) > luo_arena_size(st->arena))
		return -ERANGE;
	__atomic_store_n(&st->root->limit, limit, __ATOMIC_RELAXED);
	return 0;
}

void kv_store_flush(struct kv_store *st, uint32_t when)
{
	KV_COUNT(st, cmd_flush, 1);
	if (when == 0) {
		__atomic_store_n(&st->root->oldest_live, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&st->root->oldest_cas, __atomic_load_n(&st->root->cas_next, __ATOMIC_RELAXED),
				 __ATOMIC_RELAXED);
	} else {
		__atomic_store_n(&st->root->oldest_live, (uint64_t)when - 1, __ATOMIC_RELAXED);
	}
}
