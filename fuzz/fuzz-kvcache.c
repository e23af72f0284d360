/* SPDX-License-Identifier: MIT */
/*
 * DOC: fuzz-kvcache, kvcache's memcached protocol parser (kv_proto_execute)
 *
 * The store (store.c) runs on a stand-in for the luo arena: luo_arena_*()
 * here are malloc() and free() with a byte cap (so that ASan sees every
 * item's bounds, and a full store and its eviction are reached with a
 * small cap), and a fresh store per input. The input is what one
 * connection sends: its first byte is how many bytes arrive per read
 * (1..256), the rest the bytes. They are fed as kvcache.c's conn_execute()
 * feeds them: appended to the unused input, executed, the used bytes
 * dropped, the output "sent" once over KV_WBUF_SOFT_MAX; each call gets an
 * exact-size copy, so a read past what arrived is an ASan report.
 *
 * Oracles: the bytes used are within what was given, all of it once the
 * connection is closing; every reply ends in "\r\n" (but the one binary
 * response to a binary request, 0x81 first, after which the connection
 * is closing); at the end every
 * item the store's hash chains hold is freed, and no block is left: an
 * item the store lost track of is a leak.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>

#include "kv.h"

#define ARENA_CAP (4u << 20)
#define STORE_LIMIT (1u << 20)
/* proto.c's answer to a binary request: a 24-byte header and its message. */
#define BIN_REFUSAL_LEN (24 + sizeof("kvcache speaks the text protocol only") - 1)

#define REQUIRE(cond)                                                           \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "fuzz-kvcache: broken promise: %s\n", #cond); \
			abort();                                                \
		}                                                               \
	} while (0)

/* ---- the arena, stood in for ---- */

struct luo_arena {
	void *root;
	size_t bytes, blocks;
};

void *luo_arena_alloc(struct luo_arena *a, size_t size)
{
	void *p;

	if (size == 0 || size > ARENA_CAP - a->bytes)
		return NULL;
	p = malloc(size);
	if (!p)
		return NULL;
	a->bytes += malloc_usable_size(p);
	a->blocks++;
	return p;
}

void luo_arena_free(struct luo_arena *a, void *p)
{
	if (!p)
		return;
	a->bytes -= malloc_usable_size(p);
	a->blocks--;
	free(p);
}

int luo_arena_set_root(struct luo_arena *a, void *p)
{
	a->root = p;
	return 0;
}

void *luo_arena_root(struct luo_arena *a)
{
	return a->root;
}

void *luo_arena_base(const struct luo_arena *a)
{
	(void)a;
	return NULL;
}

size_t luo_arena_size(const struct luo_arena *a)
{
	(void)a;
	return 0;
}

/* ---- kvcache.c's part ---- */

void kv_server_stats(struct kv_server_stats *ret)
{
	*ret = (struct kv_server_stats){ .threads = 4, .curr_connections = 1, .liveupdate_number = 2 };
}

static void store_free_all(struct kv_store *st, struct luo_arena *a)
{
	struct kv_root *root = st->root;

	for (uint32_t b = 0; b < root->nbuckets; b++)
		for (struct kv_item *it = root->buckets[b], *next; it; it = next) {
			next = it->hnext;
			luo_arena_free(a, it);
		}
	luo_arena_free(a, root->buckets);
	luo_arena_free(a, root);
	kv_store_fini(st);
	REQUIRE(a->blocks == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int verbose = -1;
	struct luo_arena arena = { 0 };
	struct kv_store st = { 0 };
	struct kv_proto p = { 0 };
	struct kv_buf out = { 0 };
	char *rbuf = NULL;
	size_t rlen = 0, pos = 1, step;

	if (size < 1)
		return 0;
	step = 1 + (size_t)data[0];
	REQUIRE(kv_store_format(&st, &arena, STORE_LIMIT) == 0);
	while ((pos < size || rlen > 0) && !p.closing) {
		size_t n = size - pos < step ? size - pos : step, before;
		char *in;
		ptrdiff_t used;
		bool more;

		rbuf = realloc(rbuf, rlen + n + 1);
		REQUIRE(rbuf);
		memcpy(rbuf + rlen, data + pos, n);
		rlen += n;
		pos += n;
		more = pos < size;
		do {
			before = out.len;
			in = malloc(rlen ? rlen : 1);
			REQUIRE(in);
			memcpy(in, rbuf, rlen);
			used = kv_proto_execute(&st, &p, in, rlen, &out);
			free(in);
			REQUIRE(used >= 0 && (size_t)used <= rlen);
			REQUIRE(!p.closing || (size_t)used == rlen);
			REQUIRE(out.len == before || (out.len >= 2 && memcmp(out.data + out.len - 2, "\r\n", 2) == 0) ||
				(p.closing && out.len - before >= BIN_REFUSAL_LEN &&
				 (unsigned char)out.data[out.len - BIN_REFUSAL_LEN] == 0x81));
			if (verbose < 0)
				verbose = getenv("FUZZ_VERBOSE") != NULL;
			if (verbose && out.len > before)
				fprintf(stderr, "%.*s", (int)(out.len - before), out.data + before);
			memmove(rbuf, rbuf + used, rlen - (size_t)used);
			rlen -= (size_t)used;
			if (out.len > KV_WBUF_SOFT_MAX) {
				out.len = 0; /* sent */
				continue;
			}
			break;
		} while (!p.closing);
		if (!more || rlen >= KV_RBUF_MAX)
			break; /* what is left waits for bytes that will not come (kvcache.c: -ENOBUFS) */
	}
	free(rbuf);
	kv_buf_free(&out);
	store_free_all(&st, &arena);
	return 0;
}
