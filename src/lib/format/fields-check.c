/* SPDX-License-Identifier: MIT */
/*
 * DOC: a field list checked, as registration and the manifest reader need it
 *
 * Pure functions over a field list (abi.h, "Declared fields"): no state,
 * nothing allocated but a scratch index, so the manifest reader (and its
 * fuzzer) link it alone. A list is refused, with a reason naming the
 * field, for a name not of [a-z0-9_] or not zero-padded, an unknown type,
 * a size its type does not have, a field outside the struct, overlapping
 * fields, a name twice, versions 0 or from > to, unknown flags, the
 * version flag on a non-integer, a default its type cannot hold.
 */

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "fields.h"
#include "format.h"

/* ------------------------------------------------------------------------ */
/* Checking a list                                                           */

bool luo_field_name_ok(const char *s, size_t size)
{
	size_t len = strnlen(s, size);

	if (len == 0 || len >= size)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	for (size_t i = len; i < size; i++)
		if (s[i])
			return false;
	return true;
}

static const struct luo_abi_note_fielddecl *sort_base;

static int cmp_offset(const void *a, const void *b)
{
	uint32_t x = sort_base[*(const uint32_t *)a].offset, y = sort_base[*(const uint32_t *)b].offset;

	return x < y ? -1 : x > y;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(sort_base[*(const uint32_t *)a].name, sort_base[*(const uint32_t *)b].name);
}

static pthread_mutex_t sort_lock = PTHREAD_MUTEX_INITIALIZER;

#define refuse(reason, rlen, ...)                                              \
	({                                                                     \
		luo_reasonf((reason), (rlen), __VA_ARGS__);                    \
		-EBADMSG;                                                      \
	})

int luo_fields_check(const struct luo_abi_note_fields *h, const struct luo_abi_note_fielddecl *d, char *reason,
		     size_t rlen)
{
	_cleanup_free_ uint32_t *idx = NULL;
	int r = 0;

	if (h->n_fields == 0 || h->n_fields > LUO_ABI_FIELDS_MAX || h->struct_size == 0)
		return refuse(reason, rlen, "fields of '%.47s': %u fields (1..%u) over a struct of %u bytes",
			      h->component, h->n_fields, LUO_ABI_FIELDS_MAX, h->struct_size);
	for (uint32_t i = 0; i < h->n_fields; i++) {
		const struct luo_abi_note_fielddecl *f = &d[i];
		bool size_ok;

		if (!luo_field_name_ok(f->name, sizeof(f->name)))
			return refuse(reason, rlen, "fields of '%.47s': field %u has a name that is not 1..31 bytes of "
				      "[a-z0-9_], zero-padded", h->component, i);
		switch (f->type) {
		case LUO_ABI_FIELD_UINT:
		case LUO_ABI_FIELD_INT:
			size_ok = luo_field_width_ok(f->size);
			break;
		case LUO_ABI_FIELD_BOOL:
			size_ok = f->size == 1;
			break;
		case LUO_ABI_FIELD_BYTES:
			size_ok = f->size >= 1 && f->size <= LUO_ABI_FIELD_SIZE_MAX;
			break;
		case LUO_ABI_FIELD_STRING:
			size_ok = f->size >= 2 && f->size <= LUO_ABI_FIELD_SIZE_MAX;
			break;
		default:
			return refuse(reason, rlen, "fields of '%.47s': field '%s' has unknown type %u", h->component,
				      f->name, f->type);
		}
		if (!size_ok)
			return refuse(reason, rlen, "fields of '%.47s': field '%s': size %u is not one of its type",
				      h->component, f->name, f->size);
		if (f->offset > h->struct_size || f->size > h->struct_size - f->offset)
			return refuse(reason, rlen, "fields of '%.47s': field '%s' lies outside the struct (%u bytes)",
				      h->component, f->name, h->struct_size);
		if (f->from == 0 || f->from > f->to)
			return refuse(reason, rlen, "fields of '%.47s': field '%s': versions %u..%u", h->component,
				      f->name, f->from, f->to);
		if ((f->flags & ~(LUO_ABI_FIELD_REQUIRED | LUO_ABI_FIELD_MUST_UNDERSTAND | LUO_ABI_FIELD_VERSION)) ||
		    ((f->flags & LUO_ABI_FIELD_VERSION) && f->type != LUO_ABI_FIELD_UINT && f->type != LUO_ABI_FIELD_INT))
			return refuse(reason, rlen, "fields of '%.47s': field '%s' has unknown flags 0x%x",
				      h->component, f->name, f->flags);
		if (luo_field_is_integer(f->type) ? !luo_field_value_fits(f->type, f->size, luo_field_default(f)) : f->deflt != 0)
			return refuse(reason, rlen, "fields of '%.47s': field '%s': the default does not fit its type",
				      h->component, f->name);
	}
	idx = malloc(h->n_fields * sizeof(*idx));
	if (!idx)
		return -ENOMEM;
	for (uint32_t i = 0; i < h->n_fields; i++)
		idx[i] = i;
	/* qsort has no context argument in C17: the base is shared under a lock. */
	pthread_mutex_lock(&sort_lock);
	sort_base = d;
	qsort(idx, h->n_fields, sizeof(*idx), cmp_offset);
	for (uint32_t i = 1; !r && i < h->n_fields; i++)
		if (d[idx[i - 1]].offset + d[idx[i - 1]].size > d[idx[i]].offset)
			r = refuse(reason, rlen, "fields of '%.47s': fields '%s' and '%s' overlap", h->component,
				   d[idx[i - 1]].name, d[idx[i]].name);
	qsort(idx, h->n_fields, sizeof(*idx), cmp_name);
	for (uint32_t i = 1; !r && i < h->n_fields; i++)
		if (strcmp(d[idx[i - 1]].name, d[idx[i]].name) == 0)
			r = refuse(reason, rlen, "fields of '%.47s': field '%s' twice", h->component, d[idx[i]].name);
	pthread_mutex_unlock(&sort_lock);
	return r;
}

void luo_field_type_name(const struct luo_abi_note_fielddecl *d, char *buf, size_t len)
{
	switch (d->type) {
	case LUO_ABI_FIELD_UINT:
		snprintf(buf, len, "u%u", d->size * 8);
		return;
	case LUO_ABI_FIELD_INT:
		snprintf(buf, len, "i%u", d->size * 8);
		return;
	case LUO_ABI_FIELD_BOOL:
		snprintf(buf, len, "bool");
		return;
	case LUO_ABI_FIELD_BYTES:
		snprintf(buf, len, "bytes[%u]", d->size);
		return;
	case LUO_ABI_FIELD_STRING:
		snprintf(buf, len, "string[%u]", d->size);
		return;
	}
	snprintf(buf, len, "type-%u", d->type);
}
