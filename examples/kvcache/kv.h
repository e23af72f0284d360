/* SPDX-License-Identifier: MIT */
#ifndef KVCACHE_KV_H
#define KVCACHE_KV_H

/*
 * DOC: kvcache, the internal header
 *
 * kvcache is three files: store.c (items and the hash index inside a
 * luo arena, found again through luo_arena_root() after a live update),
 * proto.c (the memcached text protocol, from a connection's input bytes
 * to its output bytes, nothing else) and kvcache.c (options, threads,
 * epoll, connections, the live update). This header is their contract:
 * the limits, the persisted formats (the arena's root and items: the
 * in-region format, a negotiated version, see "DOC: formats" in store.c),
 * and the few cleanup helpers the files use (copied from libluo's
 * src/lib/cleanup.h: an example sees only the public API).
 *
 * Built three times from the same sources, -DKVCACHE_VERSION=1, 2 or 3,
 * as three releases would have been.
 */

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "luo/luo.h"

#ifndef KVCACHE_VERSION
#define KVCACHE_VERSION 2
#endif
#if KVCACHE_VERSION < 1 || KVCACHE_VERSION > 3
#error "KVCACHE_VERSION must be 1, 2 or 3"
#endif

#define KV_STRINGIFY_(x) #x
#define KV_STRINGIFY(x) KV_STRINGIFY_(x)
#define KV_BUILD_NAME "v" KV_STRINGIFY(KVCACHE_VERSION)
/* What "version" answers: memcached-like digits first, for clients that parse them. */
#define KV_VERSION_STRING "1.6.0-kvcache-" KV_BUILD_NAME

/* ---------------------------------------------------------------------- */
/* Limits: every one named, every one checked                              */

/* A key: 1..250 bytes, no control characters or spaces (memcached's KEY_MAX_LENGTH). */
#define KV_KEY_MAX 250
/* A value: 0..1 MiB (memcached's default item_size_max); larger is swallowed. */
#define KV_VALUE_MAX (1u << 20)
/* A command line without its data block; past it without "\n": the connection is closed. */
#define KV_LINE_MAX 2048
/* A get/gets line (many keys): the same, past this. */
#define KV_GET_LINE_MAX (64u << 10)
/* Keys in one get/gets (memcached parses 24 tokens at a time, unbounded; we bound). */
#define KV_GET_KEYS_MAX 4096
/* Input a connection buffers: one line and one data block, at most. */
#define KV_RBUF_MAX (KV_GET_LINE_MAX + KV_VALUE_MAX + 64)
/* Output a connection buffers before it stops reading (back-pressure). */
#define KV_WBUF_SOFT_MAX (1u << 20)
/* Output one command may add (a get of many keys): past it, SERVER_ERROR. */
#define KV_WBUF_CMD_MAX (16u << 20)
/* Client connections served at once; more get "ERROR Too many open connections". */
#define KV_CONNS_MAX 4000
_Static_assert(KV_CONNS_MAX + 2 <= LUO_SESSION_FILES_MAX, "every connection is a preserved fd");
/* Worker threads. */
#define KV_THREADS_MAX 64
/* Memory for items, MiB (--memory). */
#define KV_MEMORY_MIN_MB 1
#define KV_MEMORY_MAX_MB (256u << 10)
/* Idle timeout, seconds (--idle-timeout; 0: none). */
#define KV_IDLE_TIMEOUT_DEFAULT 300
#define KV_IDLE_TIMEOUT_MAX 86400
/* How often the main loop looks whether the arena's populate thread has ended (to log it). */
#define KV_POPULATE_POLL_MS 10
/* --hugepages: how often the arena's data written since is collapsed into huge pages. */
#define KV_COLLAPSE_PERIOD_MS 5000
/* Lock stripes of the index; each has its own LRU list. A power of two. */
#define KV_STRIPES 1024
/* Buckets: one per this many bytes of --memory, a power of two in [MIN, MAX]. */
#define KV_BYTES_PER_BUCKET 128
#define KV_BUCKETS_MIN (1u << 16)
#define KV_BUCKETS_MAX (1u << 26)
/* Items evicted, at most, to make room for one. */
#define KV_EVICT_TRIES 64
/* memcached: an exptime above this many seconds is an absolute Unix time. */
#define KV_REALTIME_MAXDELTA (60 * 60 * 24 * 30)
/* v2 on: an item read again within this many seconds is not moved in its LRU. */
#define KV_BUMP_INTERVAL 10

/* ---------------------------------------------------------------------- */
/* The persisted formats: in the arena, across live updates                */

/*
 * In-region format of the store (the component "kvcache-store"). Each
 * build reads and writes a range; see "DOC: formats" in store.c.
 */
#if KVCACHE_VERSION == 1
#define KV_FORMAT_READ_MIN 1
#define KV_FORMAT_READ_MAX 1
#define KV_FORMAT_WRITE_MIN 1
#define KV_FORMAT_WRITE_MAX 1
#elif KVCACHE_VERSION == 2
#define KV_FORMAT_READ_MIN 1
#define KV_FORMAT_READ_MAX 2
#define KV_FORMAT_WRITE_MIN 1
#define KV_FORMAT_WRITE_MAX 2
#else
#define KV_FORMAT_READ_MIN 3
#define KV_FORMAT_READ_MAX 3
#define KV_FORMAT_WRITE_MIN 3
#define KV_FORMAT_WRITE_MAX 3
#endif
#define KV_FORMAT_KNOWS(v) (KV_FORMAT_READ_MIN <= (v) && (v) <= KV_FORMAT_READ_MAX)

/* The root's magic ("kvcache\0" little-endian); changing the root's layout needs a new one. */
#define KV_ROOT_MAGIC UINT64_C(0x006568636163766b)

/*
 * An item, in the arena. Layout 1 (format 1 and 2) or 2 (format 2 only,
 * same size: the reserved word gets a meaning). Key then value then
 * "\r\n" in data[], so a hit is one copy.
 */
struct kv_item {
	struct kv_item *hnext; /* hash chain */
	struct kv_item *prev;  /* LRU of the stripe, towards the head (most recent) */
	struct kv_item *next;  /* towards the tail (next to evict) */
	uint64_t cas;
	uint32_t exptime; /* absolute Unix time; 0: never */
	uint32_t flags;   /* the client's */
	uint32_t mtime;   /* stored at (Unix time): flush_all with a delay */
	uint32_t atime;   /* layout 2: last read (Unix time); layout 1: 0, ignored by every reader */
	uint32_t nbytes;  /* value bytes, without the "\r\n" */
	uint8_t nkey;
	uint8_t layout; /* 1 or 2; readers of format 1 accept both and read only layout 1's fields */
	uint16_t spare; /* 0 */
	char data[];
};

struct kv_lru {
	struct kv_item *head, *tail;
};

/* The counters that cross an update with the items (relaxed atomics). */
struct kv_counters {
	uint64_t curr_items, total_items, bytes, evictions, reclaimed, expired_unfetched;
	uint64_t cmd_get, get_hits, get_misses, get_expired, get_flushed;
	uint64_t cmd_set, cmd_touch, touch_hits, touch_misses;
	uint64_t delete_hits, delete_misses, incr_hits, incr_misses, decr_hits, decr_misses;
	uint64_t cas_hits, cas_misses, cas_badval, cmd_flush;
	uint64_t total_connections, rejected_connections, conn_timeouts;
	uint64_t migrated; /* v2: layout-1 items given an atime on access */
	uint64_t spare[3]; /* 0; room for counters a compatible format adds */
};

/* The root of the arena (luo_arena_root()). */
struct kv_root {
	uint64_t magic;
	uint32_t format;   /* the format the image that wrote last writes */
	uint32_t nbuckets; /* a power of two */
	uint64_t limit;    /* bytes of items (limit_maxbytes) */
	uint64_t hash_seed; /* format 3; 0 before */
	struct kv_item **buckets;
	uint64_t cas_next;
	uint64_t oldest_cas;  /* flush_all: items with cas <= this are gone */
	uint64_t oldest_live; /* flush_all DELAY: items stored at or before it are gone once it passed */
	uint64_t started_at;  /* Unix time of the fresh start (uptime) */
	struct kv_counters c;
	struct kv_lru lru[KV_STRIPES];
};

/* ---------------------------------------------------------------------- */
/* store.c                                                                  */

/* The store: the arena and what this image keeps beside it (locks). */
struct kv_store {
	struct luo_arena *arena;
	struct kv_root *root;
	pthread_mutex_t locks[KV_STRIPES];
	uint32_t format; /* the format this image writes (its layouts) */
};

/* Results of store operations (memcached's words are proto.c's). */
enum kv_result {
	KV_STORED,
	KV_NOT_STORED,
	KV_EXISTS,
	KV_NOT_FOUND,
	KV_DELETED,
	KV_TOUCHED,
	KV_NON_NUMERIC,
	KV_TOO_LARGE,
	KV_NO_MEMORY,
	KV_OK,
};

enum kv_set_mode { KV_SET, KV_ADD, KV_REPLACE, KV_APPEND, KV_PREPEND, KV_CAS };

/* An output buffer (a connection's): malloc'd, grown in steps, bounded by its caller. */
struct kv_buf {
	char *data;
	size_t len, cap;
};

int kv_buf_reserve(struct kv_buf *b, size_t more);
int kv_buf_append(struct kv_buf *b, const void *data, size_t len);

/*
 * "stats conns": the server fills in its connections (kvcache.c sets it;
 * NULL, as in the fuzz target, answers END alone). Runs on the thread of
 * the connection that asked.
 */
extern void (*kv_stats_conns_hook)(struct kv_buf *out);
void kv_buf_free(struct kv_buf *b);

/* Arena bytes for a cap of @limit bytes of items (index, root and slack included). */
size_t kv_store_arena_size(uint64_t limit);
/* A fresh store in @arena; 0 or -ENOMEM. */
int kv_store_format(struct kv_store *st, struct luo_arena *arena, uint64_t limit);
/*
 * Adopt a retrieved arena handed over at @format: check the root (O(1)),
 * set up the locks. 0; -EBADMSG the root is not one; -EPROTO @format not readable.
 */
int kv_store_adopt(struct kv_store *st, struct luo_arena *arena, uint32_t format);
/* Destroy the locks (the arena is the caller's). */
void kv_store_fini(struct kv_store *st);

uint32_t kv_now(void);

/*
 * get: append "VALUE key flags bytes [cas]\r\n<data>\r\n" to @out on a hit.
 * Return: 1 hit, 0 miss, -ENOMEM @out could not grow.
 */
int kv_store_get(struct kv_store *st, const char *key, size_t nkey, bool with_cas, struct kv_buf *out);
/* Whether an item of this key, flags and value is within memcached's item size limit. */
bool kv_item_fits(size_t nkey, uint32_t flags, uint64_t nbytes);

/* What a fetch (get, gat, mg) does besides reading. */
struct kv_fetch {
	bool touch;       /* set the exptime (gat, mg T) */
	uint32_t exptime; /* absolute, kv_exptime()'s */
	bool no_bump;     /* leave the LRU alone (mg u, me) */
};

/* An item's facts, as a fetch or an update found them. */
struct kv_item_info {
	uint32_t flags, nbytes, exptime, mtime, atime;
	uint64_t cas;
	size_t total; /* bytes counted against the cap */
};

/*
 * Fetch @key: its facts in *@ret_info (may be NULL), its value and "\r\n"
 * appended to @value_out (may be NULL). 1 hit, 0 miss, -ENOMEM @value_out
 * could not grow (nothing else changed then).
 */
int kv_store_fetch(struct kv_store *st, const char *key, size_t nkey, const struct kv_fetch *req,
		   struct kv_item_info *ret_info, struct kv_buf *value_out);
/* set/add/replace/append/prepend/cas of a value with "\r\n" after it; the new cas in *@ret_cas (may be NULL). */
enum kv_result kv_store_set(struct kv_store *st, enum kv_set_mode mode, const char *key, size_t nkey, uint32_t flags,
			    uint32_t exptime, const char *value, size_t nbytes, uint64_t cas, uint64_t *ret_cas);
/* Remove @key if present and, @cas not 0, its cas is @cas (else KV_EXISTS). */
enum kv_result kv_store_delete(struct kv_store *st, const char *key, size_t nkey, uint64_t cas);
enum kv_result kv_store_touch(struct kv_store *st, const char *key, size_t nkey, uint32_t exptime);
/* An incr/decr: with a cas to match (0: any) and a new exptime (set_ttl). */
struct kv_arith {
	bool incr;
	uint64_t delta;
	uint64_t cas;
	bool set_ttl;
	uint32_t exptime;
};
/* incr/decr; the new value in *ret_value and the item's facts in *ret_info (may be NULL) on KV_OK. */
enum kv_result kv_store_arith(struct kv_store *st, const char *key, size_t nkey, const struct kv_arith *req,
			      uint64_t *ret_value, struct kv_item_info *ret_info);
/*
 * stats cachedump: "ITEM key [bytes b; exptime s]\r\n" for live items, stripe
 * by stripe, most recent first in each, at most @limit (0: no limit) and
 * @max_bytes of lines. 0 (a line that does not fit ends the dump).
 */
int kv_store_dump(struct kv_store *st, uint64_t limit, size_t max_bytes, struct kv_buf *out);
/*
 * cache_memlimit: a new cap of @limit bytes; 0, or -ERANGE when the arena
 * (sized at the start for --memory) could not hold it. Items above a lower
 * cap go as new ones come (eviction), as memcached does.
 */
int kv_store_set_limit(struct kv_store *st, uint64_t limit);
/* flush_all: @when 0 now, else the absolute time from which every current item is gone. */
void kv_store_flush(struct kv_store *st, uint32_t when);
/* memcached's exptime rules: relative up to 30 days, else absolute; negative: already expired. */
uint32_t kv_exptime(int64_t exptime);

#define KV_COUNT(st, field, n) __atomic_fetch_add(&(st)->root->c.field, (n), __ATOMIC_RELAXED)
#define KV_READ(st, field) __atomic_load_n(&(st)->root->c.field, __ATOMIC_RELAXED)

/* ---------------------------------------------------------------------- */
/* proto.c                                                                  */

/* What the protocol keeps per connection between two reads. */
struct kv_proto {
	uint64_t swallow; /* data bytes still to drop (too large / no memory) */
	bool closing;     /* quit, or a line too long: close once the output is out */
};

/* Server-wide facts "stats" reports that are not the store's. */
struct kv_server_stats {
	uint32_t threads;
	uint64_t curr_connections;
	uint64_t liveupdate_number;
	uint64_t last_blackout_us;
	uint64_t last_quiesce_us;
	uint64_t failed_updates;
};

/* Fill what "stats" needs from the server (kvcache.c). */
void kv_server_stats(struct kv_server_stats *ret);

/*
 * Execute every complete command at the start of @in (@len bytes), append
 * the replies to @out. Return the bytes used; the rest is an incomplete
 * command, kept for the next read, or commands left because @out passed
 * KV_WBUF_SOFT_MAX (the caller sends it, then calls again). Sets
 * p->closing when the connection is to be closed (everything is used then).
 */
ptrdiff_t kv_proto_execute(struct kv_store *st, struct kv_proto *p, const char *in, size_t len, struct kv_buf *out);

/* ---------------------------------------------------------------------- */
/* Cleanup helpers (from src/lib/cleanup.h)                                 */

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void kv_freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(kv_freep)

static inline int kv_safe_close(int fd)
{
	if (fd >= 0) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	return -1;
}

static inline void kv_closep(int *fd)
{
	kv_safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(kv_closep)

#define TAKE_PTR(p)                                                                                          \
	({                                                                                                   \
		__typeof__(p) _tp = (p);                                                                     \
		(p) = NULL;                                                                                  \
		_tp;                                                                                         \
	})

#define TAKE_FD(fd)                                                                                          \
	({                                                                                                   \
		int _tf = (fd);                                                                              \
		(fd) = -1;                                                                                   \
		_tf;                                                                                         \
	})

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif /* KVCACHE_KV_H */
