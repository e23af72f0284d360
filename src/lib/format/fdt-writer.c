/* SPDX-License-Identifier: MIT */
/*
 * DOC: an FDT written in one pass
 *
 * See fdt-writer.h for the lifecycle and failure paths. The structure
 * block is written in place after the header and the (empty) reserve map;
 * names go to a separate strings buffer (name_offset() says which are
 * shared). Finish appends FDT_END, copies the
 * strings after the structure block and fills in the header, so no offset
 * is ever rewritten.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <libfdt.h>

#include "fdt-writer.h"

#define STRUCT_OFF (sizeof(struct fdt_header) + sizeof(struct fdt_reserve_entry))
#define TAG_ALIGN(n) (((n) + FDT_TAGSIZE - 1) & ~(size_t)(FDT_TAGSIZE - 1))

static int fail(struct luo_fdtw *w, int err)
{
	if (!w->err)
		w->err = err;
	return w->err;
}

/* Make room for @more bytes in *@buf (capacity *@cap, @len used), doubling, up to @max. */
static int grow(uint8_t **buf, size_t *cap, size_t len, size_t more, size_t max)
{
	size_t want = *cap ? *cap : 4096;
	uint8_t *p;

	if (more > max || len > max - more)
		return -ENOSPC;
	if (len + more <= *cap)
		return 0;
	while (want < len + more)
		want *= 2;
	if (want > max)
		want = max;
	p = realloc(*buf, want);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*cap = want;
	return 0;
}

int luo_fdtw_start(struct luo_fdtw *w, size_t hint, size_t max)
{
	*w = (struct luo_fdtw){ .max = max };
	if (max < STRUCT_OFF + FDT_TAGSIZE)
		return fail(w, -ENOSPC);
	if (hint > max)
		hint = max;
	if (hint < STRUCT_OFF)
		hint = STRUCT_OFF;
	w->buf = malloc(hint);
	if (!w->buf)
		return fail(w, -ENOMEM);
	w->cap = hint;
	memset(w->buf, 0, STRUCT_OFF); /* the header, filled at finish, and the reserve map's end */
	w->len = STRUCT_OFF;
	return 0;
}

/* @n bytes more in the structure block; NULL (and the error kept) when they do not fit. */
static uint8_t *take(struct luo_fdtw *w, size_t n)
{
	uint8_t *p;
	int r;

	if (w->err)
		return NULL;
	r = grow(&w->buf, &w->cap, w->len, n, w->max - w->strings_len); /* both blocks within max */
	if (r) {
		fail(w, r);
		return NULL;
	}
	p = w->buf + w->len;
	w->len += n;
	return p;
}

/* The length of @name with its NUL, or 0 when it has none within LUO_FDTW_NAME_MAX. */
static size_t name_size(const char *name)
{
	size_t len = strnlen(name, LUO_FDTW_NAME_MAX);

	return len < LUO_FDTW_NAME_MAX ? len + 1 : 0;
}

/*
 * The offset of @name in the strings block. Names are shared through a
 * small cache keyed by the name's address (libluo passes its property
 * names as constants); a hit is trusted only when the stored name is
 * equal, so a reused buffer costs a second copy, never a wrong name.
 */
static int name_offset(struct luo_fdtw *w, const char *name, uint32_t *ret_off)
{
	size_t size = name_size(name), k = ((uintptr_t)name >> 3) * 0x9e3779b97f4a7c15ull >> (64 - LUO_FDTW_CACHE_BITS);
	int r;

	if (!size)
		return fail(w, -EINVAL);
	if (w->cache[k].name == name && strcmp((const char *)w->strings + w->cache[k].off, name) == 0) {
		*ret_off = w->cache[k].off;
		return 0;
	}
	r = grow(&w->strings, &w->strings_cap, w->strings_len, size, w->max - w->len);
	if (r)
		return fail(w, r);
	memmove(w->strings + w->strings_len, name, size); /* libc's: GCC inlines memcpy here as a slow rep movsq */
	*ret_off = (uint32_t)w->strings_len;
	w->cache[k].name = name;
	w->cache[k].off = (uint32_t)w->strings_len;
	w->strings_len += size;
	return 0;
}

int luo_fdtw_begin_node(struct luo_fdtw *w, const char *name)
{
	size_t size = name_size(name), padded = TAG_ALIGN(size);
	uint8_t *p;

	if (!size)
		return fail(w, -EINVAL);
	p = take(w, FDT_TAGSIZE + padded);
	if (!p)
		return w->err;
	fdt32_st((fdt32_t *)p, FDT_BEGIN_NODE);
	memcpy(p + FDT_TAGSIZE, name, size);
	memset(p + FDT_TAGSIZE + size, 0, padded - size);
	w->depth++;
	return 0;
}

int luo_fdtw_end_node(struct luo_fdtw *w)
{
	uint8_t *p;

	if (!w->depth)
		return fail(w, -EINVAL);
	p = take(w, FDT_TAGSIZE);
	if (!p)
		return w->err;
	fdt32_st((fdt32_t *)p, FDT_END_NODE);
	w->depth--;
	return 0;
}

int luo_fdtw_property_placeholder(struct luo_fdtw *w, const char *name, size_t len, void **ret_value)
{
	size_t padded = TAG_ALIGN(len);
	uint32_t nameoff;
	uint8_t *p;
	int r;

	if (w->err)
		return w->err;
	if (!w->depth || len > INT32_MAX)
		return fail(w, -EINVAL);
	r = name_offset(w, name, &nameoff);
	if (r)
		return r;
	p = take(w, sizeof(struct fdt_property) + padded);
	if (!p)
		return w->err;
	fdt32_st((fdt32_t *)p, FDT_PROP);
	fdt32_st((fdt32_t *)(p + 4), (uint32_t)len);
	fdt32_st((fdt32_t *)(p + 8), nameoff);
	p += sizeof(struct fdt_property);
	if (padded > len)
		memset(p + padded - FDT_TAGSIZE, 0, FDT_TAGSIZE); /* the padding; the value goes over the rest */
	*ret_value = p;
	return 0;
}

int luo_fdtw_property(struct luo_fdtw *w, const char *name, const void *value, size_t len)
{
	void *p = NULL;
	int r = luo_fdtw_property_placeholder(w, name, len, &p);

	if (!r && len)
		memcpy(p, value, len);
	return r;
}

int luo_fdtw_property_u32(struct luo_fdtw *w, const char *name, uint32_t v)
{
	fdt32_t be = cpu_to_fdt32(v);

	return luo_fdtw_property(w, name, &be, sizeof(be));
}

int luo_fdtw_property_u64(struct luo_fdtw *w, const char *name, uint64_t v)
{
	fdt64_t be = cpu_to_fdt64(v);

	return luo_fdtw_property(w, name, &be, sizeof(be));
}

int luo_fdtw_property_string(struct luo_fdtw *w, const char *name, const char *s)
{
	return luo_fdtw_property(w, name, s, strlen(s) + 1);
}

int luo_fdtw_finish(struct luo_fdtw *w, void **ret_buf, size_t *ret_len)
{
	size_t st_size;
	uint8_t *p;
	void *fdt;
	int r;

	if (!w->err && w->depth)
		fail(w, -EINVAL);
	p = take(w, FDT_TAGSIZE);
	if (!p)
		return w->err;
	fdt32_st((fdt32_t *)p, FDT_END);
	st_size = w->len - STRUCT_OFF;
	if (w->len + w->strings_len > INT32_MAX)
		return fail(w, -ENOSPC);
	r = grow(&w->buf, &w->cap, w->len, w->strings_len, w->max);
	if (r)
		return fail(w, r); /* -ENOMEM; never -ENOSPC: take() and name_offset() kept both within max */
	if (w->strings_len)
		memcpy(w->buf + w->len, w->strings, w->strings_len);
	fdt = w->buf;
	fdt_set_magic(fdt, FDT_MAGIC);
	fdt_set_totalsize(fdt, (uint32_t)(w->len + w->strings_len));
	fdt_set_off_dt_struct(fdt, (uint32_t)STRUCT_OFF);
	fdt_set_off_dt_strings(fdt, (uint32_t)w->len);
	fdt_set_off_mem_rsvmap(fdt, (uint32_t)sizeof(struct fdt_header));
	fdt_set_version(fdt, 17);
	fdt_set_last_comp_version(fdt, 16);
	fdt_set_boot_cpuid_phys(fdt, 0);
	fdt_set_size_dt_strings(fdt, (uint32_t)w->strings_len);
	fdt_set_size_dt_struct(fdt, (uint32_t)st_size);
	*ret_len = w->len + w->strings_len;
	*ret_buf = w->buf;
	w->buf = NULL;
	luo_fdtw_abandon(w);
	return 0;
}

void luo_fdtw_abandon(struct luo_fdtw *w)
{
	free(w->buf);
	free(w->strings);
	*w = (struct luo_fdtw){ .err = -EINVAL }; /* any later use fails */
}
