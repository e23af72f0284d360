/* SPDX-License-Identifier: MIT */
#ifndef LUO_FDT_WRITER_H
#define LUO_FDT_WRITER_H

/*
 * DOC: an FDT written in one pass (fdt-writer.c)
 *
 * The handover blob is written by this writer and read by libfdt. It
 * exists for speed: libfdt's sequential-write API costs three looks at
 * every property when the blob is finished (to turn its string offsets
 * around), and looks each name up from the start of the strings block
 * (quadratic in distinct names). Declared component state brings up to
 * LUO_ABI_FIELDS_MAX properties per component, inside the blackout.
 *
 * Lifecycle: luo_fdtw_start() -- luo_fdtw_begin_node() / luo_fdtw_property()
 * / luo_fdtw_property_placeholder() / luo_fdtw_end_node() -- then
 * luo_fdtw_finish(), which hands the finished blob to the caller, or
 * luo_fdtw_abandon() (what _cleanup_fdtw_ calls; after finish it does
 * nothing). The buffers grow by doubling up to the maximum given to
 * start; past it, -ENOSPC.
 *
 * Failure paths: the first error sticks (-ENOSPC, -ENOMEM, -EINVAL for a
 * name with no NUL within LUO_FDTW_NAME_MAX, an end without a begin, a
 * property outside a node, a finish with nodes open) and every later call
 * returns it, so a caller may check only finish's result. A name passed
 * again at the same address is shared in the strings block (libluo's
 * property names are constants); others are appended. The blob is
 * version 17 (last compatible 16), with an empty reserve map: what
 * libfdt's fdt_create() + fdt_finish() would write, names in a different
 * order. test-fdt-writer reads it back through libfdt.
 */

#include <stddef.h>
#include <stdint.h>

#define LUO_FDTW_NAME_MAX 256 /* a node's or property's name, NUL included */
#define LUO_FDTW_CACHE_BITS 6 /* the names remembered for sharing: 64 */

struct luo_fdtw {
	uint8_t *buf;       /* header, reserve map, then the structure block */
	size_t len, cap, max;
	uint8_t *strings;   /* the strings block */
	size_t strings_len, strings_cap;
	struct {
		const char *name; /* the address a name was passed at */
		uint32_t off;     /* where it went in the strings */
	} cache[1u << LUO_FDTW_CACHE_BITS];
	unsigned depth;
	int err;
};

/* @hint: the expected blob size (a first allocation); @max: the largest allowed. */
int luo_fdtw_start(struct luo_fdtw *w, size_t hint, size_t max);
int luo_fdtw_begin_node(struct luo_fdtw *w, const char *name);
int luo_fdtw_end_node(struct luo_fdtw *w);
int luo_fdtw_property(struct luo_fdtw *w, const char *name, const void *value, size_t len);
/* A property of @len bytes whose value the caller writes at *@ret_value before the next call. */
int luo_fdtw_property_placeholder(struct luo_fdtw *w, const char *name, size_t len, void **ret_value);
int luo_fdtw_property_u32(struct luo_fdtw *w, const char *name, uint32_t v);
int luo_fdtw_property_u64(struct luo_fdtw *w, const char *name, uint64_t v);
int luo_fdtw_property_string(struct luo_fdtw *w, const char *name, const char *s);
/* The blob (malloc'd, the caller frees it) and its length; the writer is left empty. */
int luo_fdtw_finish(struct luo_fdtw *w, void **ret_buf, size_t *ret_len);
void luo_fdtw_abandon(struct luo_fdtw *w);

static inline void luo_fdtw_abandonp(struct luo_fdtw *w)
{
	luo_fdtw_abandon(w);
}
#define _cleanup_fdtw_ __attribute__((cleanup(luo_fdtw_abandonp)))

#endif
