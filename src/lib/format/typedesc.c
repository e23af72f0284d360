/* SPDX-License-Identifier: MIT */
/*
 * DOC: type descriptions: check, digest, compare (typedesc.h)
 *
 * Lifecycle: luo-describe builds the items from DWARF and calls
 * luo_typedesc_digest(); the manifest reader calls luo_typedesc_parse() on
 * every LUO_ABI_NOTE_TYPEDESC note and keeps the result in the manifest
 * until it is freed; negotiation calls luo_typedesc_compare() on the two
 * images' descriptions of a (component, version, role).
 *
 * Failure paths: a malformed description refuses the whole manifest
 * (-EBADMSG with a reason), as any malformed note does; a comparison that
 * cannot allocate its work list returns -ENOMEM and negotiation fails.
 */

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "format.h"
#include "typedesc.h"

#define refuse(reason, rlen, ...)                                              \
	({                                                                     \
		luo_reasonf((reason), (rlen), __VA_ARGS__);                    \
		-EBADMSG;                                                      \
	})

static bool is_type_kind(uint32_t k)
{
	return k >= LUO_ABI_TI_BASE && k <= LUO_ABI_TI_OPAQUE;
}

static bool has_children(uint32_t k)
{
	return k == LUO_ABI_TI_STRUCT || k == LUO_ABI_TI_UNION || k == LUO_ABI_TI_ENUM;
}

const char *luo_type_role_name(uint32_t role)
{
	switch (role) {
	case LUO_ABI_TYPE_PAYLOAD:
		return "payload";
	case LUO_ABI_TYPE_ARENA:
		return "arena";
	case LUO_ABI_TYPE_HANDLER:
		return "handler data";
	}
	return "?";
}

bool luo_fixed_name_ok(const char *s, size_t size)
{
	size_t n = strnlen(s, size);

	if (n == 0 || n == size)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	for (size_t i = n; i < size; i++)
		if (s[i])
			return false;
	return true;
}

/* Items one after the other: children right after their parent, refs to types. */
static int check_items(const struct luo_abi_type_item *it, uint32_t n, uint32_t strings_size, const char *origin,
		       char *reason, size_t rlen)
{
	uint32_t children_left = 0, child_kind = 0;

	if (!is_type_kind(it[0].kind))
		return refuse(reason, rlen, "%s: a type description whose root is no type", origin);
	for (uint32_t i = 0; i < n; i++) {
		const struct luo_abi_type_item *t = &it[i];
		bool child = t->kind == LUO_ABI_TI_MEMBER || t->kind == LUO_ABI_TI_ENUMERATOR;

		if (!child && !is_type_kind(t->kind))
			return refuse(reason, rlen, "%s: type item %u of unknown kind %u", origin, i, t->kind);
		if (t->name >= strings_size)
			return refuse(reason, rlen, "%s: type item %u names a string past the end", origin, i);
		if (children_left) {
			if (t->kind != child_kind)
				return refuse(reason, rlen, "%s: type item %u: %u more members or enumerators expected",
					      origin, i, children_left);
			children_left--;
		} else if (child) {
			return refuse(reason, rlen, "%s: type item %u: a member outside a struct, union or enum", origin,
				      i);
		}
		if (has_children(t->kind)) {
			if (t->enc > n - 1 - i)
				return refuse(reason, rlen, "%s: type item %u: %u members run past the end", origin, i,
					      t->enc);
			children_left = t->enc;
			child_kind = t->kind == LUO_ABI_TI_ENUM ? LUO_ABI_TI_ENUMERATOR : LUO_ABI_TI_MEMBER;
		}
		if (t->ref != LUO_ABI_TI_NONE && (t->ref >= n || !is_type_kind(it[t->ref].kind)))
			return refuse(reason, rlen, "%s: type item %u refers to item %u, not a type", origin, i,
				      t->ref);
		if (t->ref == LUO_ABI_TI_NONE &&
		    (t->kind == LUO_ABI_TI_MEMBER || t->kind == LUO_ABI_TI_ARRAY || t->kind == LUO_ABI_TI_NAMED))
			return refuse(reason, rlen, "%s: type item %u refers to nothing", origin, i);
		if ((t->kind == LUO_ABI_TI_NAMED || t->kind == LUO_ABI_TI_OPAQUE) && t->name == 0)
			return refuse(reason, rlen, "%s: type item %u: a typedef without a name", origin, i);
	}
	if (children_left)
		return refuse(reason, rlen, "%s: the last type item's members are missing", origin);
	return 0;
}

int luo_typedesc_parse(const void *desc, size_t len, const char *origin, struct luo_typedesc *ret, char *reason,
		       size_t rlen)
{
	_cleanup_free_ struct luo_abi_type_item *items = NULL;
	_cleanup_free_ char *strings = NULL;
	struct luo_abi_typedesc h;
	size_t want;
	int r;

	if (len < sizeof(h))
		return refuse(reason, rlen, "%s: a type description of %zu bytes", origin, len);
	memcpy(&h, desc, sizeof(h));
	if (!luo_fixed_name_ok(h.component, sizeof(h.component)))
		return refuse(reason, rlen, "%s: a type description names its component badly", origin);
	if (h.version == 0 || h.role < LUO_ABI_TYPE_PAYLOAD || h.role > LUO_ABI_TYPE_HANDLER)
		return refuse(reason, rlen, "%s: type of '%s': version %u or role %u out of range", origin,
			      h.component, h.version, h.role);
	if (h.n_items == 0 || h.n_items > LUO_TYPEDESC_ITEMS_MAX || h.strings_size == 0 ||
	    h.strings_size > LUO_TYPEDESC_STRINGS_MAX)
		return refuse(reason, rlen, "%s: type of '%s' v%u: %u items, %u bytes of names (1..%u, 1..%u)", origin,
			      h.component, h.version, h.n_items, h.strings_size, LUO_TYPEDESC_ITEMS_MAX,
			      LUO_TYPEDESC_STRINGS_MAX);
	want = sizeof(h) + (size_t)h.n_items * sizeof(*items) + h.strings_size;
	if (len != want)
		return refuse(reason, rlen, "%s: type of '%s' v%u: %zu bytes, expected %zu", origin, h.component,
			      h.version, len, want);
	items = malloc((size_t)h.n_items * sizeof(*items));
	strings = malloc(h.strings_size);
	if (!items || !strings)
		return -ENOMEM;
	memcpy(items, (const uint8_t *)desc + sizeof(h), (size_t)h.n_items * sizeof(*items));
	memcpy(strings, (const uint8_t *)desc + sizeof(h) + (size_t)h.n_items * sizeof(*items), h.strings_size);
	if (strings[0] != '\0' || strings[h.strings_size - 1] != '\0')
		return refuse(reason, rlen, "%s: type of '%s' v%u: names not NUL-terminated", origin, h.component,
			      h.version);
	r = check_items(items, h.n_items, h.strings_size, origin, reason, rlen);
	if (r < 0)
		return r;
	if (luo_typedesc_digest(items, h.n_items, strings, h.strings_size) != h.digest)
		return refuse(reason, rlen, "%s: type of '%s' v%u: the digest does not match the description",
			      origin, h.component, h.version);
	memcpy(ret->component, h.component, sizeof(ret->component));
	ret->version = h.version;
	ret->role = h.role;
	ret->digest = h.digest;
	ret->n_items = h.n_items;
	ret->strings_size = h.strings_size;
	ret->items = TAKE_PTR(items);
	ret->strings = TAKE_PTR(strings);
	return 0;
}

void luo_typedesc_done(struct luo_typedesc *d)
{
	if (!d)
		return;
	free(d->items);
	free(d->strings);
	d->items = NULL;
	d->strings = NULL;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

uint64_t luo_typedesc_digest(const struct luo_abi_type_item *items, uint32_t n_items, const char *strings,
			     uint32_t strings_size)
{
	uint64_t h = 0xcbf29ce484222325ull;

	h = fnv(h, &n_items, sizeof(n_items));
	for (uint32_t i = 0; i < n_items; i++) {
		struct luo_abi_type_item t = items[i];
		const char *name = "";
		size_t name_max = 1;

		/* Only the names that are part of the type count; never read past the strings. */
		if ((t.kind == LUO_ABI_TI_NAMED || t.kind == LUO_ABI_TI_OPAQUE) && t.name < strings_size) {
			name = strings + t.name;
			name_max = strings_size - t.name;
		}
		t.name = 0;
		h = fnv(h, &t, sizeof(t));
		h = fnv(h, name, strnlen(name, name_max));
		h = fnv(h, "", 1);
	}
	return h ? h : 1; /* 0 means "not described" */
}

static const char *str(const struct luo_typedesc *d, uint32_t off)
{
	return off < d->strings_size ? d->strings + off : "";
}

static const char *kind_word(uint32_t k)
{
	switch (k) {
	case LUO_ABI_TI_BASE:
		return "base type";
	case LUO_ABI_TI_STRUCT:
		return "struct";
	case LUO_ABI_TI_UNION:
		return "union";
	case LUO_ABI_TI_ENUM:
		return "enum";
	case LUO_ABI_TI_ARRAY:
		return "array";
	case LUO_ABI_TI_POINTER:
		return "pointer";
	case LUO_ABI_TI_FUNCTION:
		return "function";
	case LUO_ABI_TI_NAMED:
		return "typedef";
	case LUO_ABI_TI_OPAQUE:
		return "undefined struct";
	case LUO_ABI_TI_MEMBER:
		return "member";
	case LUO_ABI_TI_ENUMERATOR:
		return "enumerator";
	}
	return "?";
}

void luo_typedesc_item_name(const struct luo_typedesc *d, uint32_t i, char *buf, size_t len)
{
	const struct luo_abi_type_item *t;
	const char *name;

	if (i >= d->n_items) {
		snprintf(buf, len, "void");
		return;
	}
	t = &d->items[i];
	name = str(d, t->name);
	switch (t->kind) {
	case LUO_ABI_TI_STRUCT:
	case LUO_ABI_TI_UNION:
	case LUO_ABI_TI_ENUM:
		if (name[0])
			snprintf(buf, len, "%s %s", kind_word(t->kind), name);
		else
			snprintf(buf, len, "(anonymous %s)", kind_word(t->kind));
		return;
	case LUO_ABI_TI_ARRAY:
		snprintf(buf, len, "array[%u]", t->enc);
		return;
	case LUO_ABI_TI_POINTER:
		snprintf(buf, len, "pointer");
		return;
	case LUO_ABI_TI_FUNCTION:
		snprintf(buf, len, "function");
		return;
	}
	snprintf(buf, len, "%s", name[0] ? name : kind_word(t->kind));
}

static const char *enc_word(uint32_t enc)
{
	switch (enc) {
	case 0x02:
		return "bool";
	case 0x04:
		return "float";
	case 0x05:
		return "signed";
	case 0x06:
		return "signed char";
	case 0x07:
		return "unsigned";
	case 0x08:
		return "unsigned char";
	}
	return "other";
}

/* ---------------------------------------------------------------------- */
/* Comparison                                                              */

struct pair {
	uint32_t o, n;
	uint32_t o_parent, o_member; /* the struct and member that led here, or NONE */
	uint32_t n_member;
};

struct walk {
	const struct luo_typedesc *old, *new;
	uint32_t *paired; /* old item -> new item + 1, 0: not yet */
	struct pair *stack;
	size_t n_stack;
	size_t extra; /* comparisons left for types met again with another partner */
	char *why;
	size_t why_len;
};

/* "struct kv_item, member exptime: " for the pair's context. */
static void context(const struct walk *w, const struct pair *p, char *buf, size_t len)
{
	char sname[96];
	const char *om, *nm;

	if (p->o_parent == LUO_ABI_TI_NONE) {
		buf[0] = '\0';
		return;
	}
	luo_typedesc_item_name(w->old, p->o_parent, sname, sizeof(sname));
	om = str(w->old, w->old->items[p->o_member].name);
	nm = str(w->new, w->new->items[p->n_member].name);
	if (strcmp(om, nm) == 0)
		snprintf(buf, len, "%s, member %s: ", sname, om[0] ? om : "(anonymous)");
	else
		snprintf(buf, len, "%s, member %s (new: %s): ", sname, om[0] ? om : "(anonymous)",
			 nm[0] ? nm : "(anonymous)");
}

__attribute__((format(printf, 3, 4))) static int differ(struct walk *w, const struct pair *p, const char *fmt, ...)
{
	char ctx[200], msg[200];
	va_list ap;

	context(w, p, ctx, sizeof(ctx));
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(w->why, w->why_len, "%s%s", ctx, msg);
	return 1;
}

static int push(struct walk *w, uint32_t o, uint32_t n, uint32_t parent, uint32_t om, uint32_t nm)
{
	if (o == LUO_ABI_TI_NONE || n == LUO_ABI_TI_NONE)
		return 0;
	if (w->paired[o] == n + 1)
		return 0; /* this pair is checked already, or queued */
	/*
	 * A type met again with another partner (uint32_t met first as a
	 * member's type, then behind a typedef that became int32_t) is
	 * compared with that partner too, so that the difference is named;
	 * the extra comparisons are bounded, and past the bound the digests
	 * still tell the shapes apart.
	 */
	if (w->paired[o] && w->extra-- == 0)
		return 0;
	if (!w->paired[o])
		w->paired[o] = n + 1;
	w->stack[w->n_stack++] = (struct pair){ o, n, parent, om, nm };
	return 0;
}

/* Does @name stand among the members of struct item @s of @d? */
static bool has_member(const struct luo_typedesc *d, uint32_t s, const char *name)
{
	if (!name[0])
		return false;
	for (uint32_t i = 1; i <= d->items[s].enc; i++)
		if (strcmp(str(d, d->items[s + i].name), name) == 0)
			return true;
	return false;
}

static int compare_members(struct walk *w, const struct pair *p)
{
	const struct luo_abi_type_item *o = &w->old->items[p->o], *n = &w->new->items[p->n];
	char sname[96];

	luo_typedesc_item_name(w->old, p->o, sname, sizeof(sname));
	for (uint32_t i = 1; i <= o->enc && i <= n->enc; i++) {
		const struct luo_abi_type_item *om = &w->old->items[p->o + i], *nm = &w->new->items[p->n + i];
		const char *on = str(w->old, om->name), *nn = str(w->new, nm->name);

		if (o->kind == LUO_ABI_TI_ENUM) {
			if (om->value != nm->value)
				return differ(w, p, "%s: enumerator %s is %" PRId64 " in the old image, %" PRId64
					      " in the new", sname, on, (int64_t)om->value, (int64_t)nm->value);
			continue;
		}
		if (strcmp(on, nn) != 0 && (has_member(w->new, p->n, on) || has_member(w->old, p->o, nn)))
			return differ(w, p, "%s: member %s moved (in its place the new image has %s)", sname,
				      on[0] ? on : "(anonymous)", nn[0] ? nn : "(anonymous)");
		if (om->size != nm->size || om->align != nm->align || w->old->items[om->ref].size != w->new->items[nm->ref].size ||
		    w->old->items[om->ref].kind != w->new->items[nm->ref].kind) {
			struct pair q = { p->o, p->n, p->o, p->o + i, p->n + i };
			char otn[96], ntn[96];

			if (om->size == nm->size && om->align == nm->align) {
				luo_typedesc_item_name(w->old, om->ref, otn, sizeof(otn));
				luo_typedesc_item_name(w->new, nm->ref, ntn, sizeof(ntn));
				return differ(w, &q, "%s (%u bytes) in the old image, %s (%u bytes) in the new", otn,
					      w->old->items[om->ref].size, ntn, w->new->items[nm->ref].size);
			}

			if (om->align || nm->align)
				return differ(w, &q, "at bit %u, %u bits wide in the old image; at bit %u, %u bits in "
					      "the new", om->size, om->align, nm->size, nm->align);
			return differ(w, &q, "at offset %u in the old image, %u in the new", om->size / 8,
				      nm->size / 8);
		}
		push(w, om->ref, nm->ref, p->o, p->o + i, p->n + i);
	}
	if (o->enc != n->enc) {
		uint32_t i = o->enc < n->enc ? o->enc + 1 : n->enc + 1;
		bool added = n->enc > o->enc;
		const struct luo_typedesc *d = added ? w->new : w->old;
		uint32_t s = added ? p->n : p->o;

		return differ(w, p, "%s: %u %s in the old image, %u in the new (%s %s)", sname, o->enc,
			      o->kind == LUO_ABI_TI_ENUM ? "enumerators" : "members", n->enc,
			      str(d, d->items[s + i].name), added ? "added" : "removed");
	}
	return 0;
}

static int compare_pair(struct walk *w, const struct pair *p)
{
	const struct luo_abi_type_item *o = &w->old->items[p->o], *n = &w->new->items[p->n];
	char on[96], nn[96];

	luo_typedesc_item_name(w->old, p->o, on, sizeof(on));
	luo_typedesc_item_name(w->new, p->n, nn, sizeof(nn));
	if (o->kind != n->kind)
		return differ(w, p, "%s in the old image, %s in the new", on, nn);
	if (o->size != n->size)
		return differ(w, p, "%s is %u bytes in the old image, %u in the new", on, o->size, n->size);
	if (o->align != n->align)
		return differ(w, p, "%s is aligned to %u bytes in the old image, %u in the new", on, o->align,
			      n->align);
	switch (o->kind) {
	case LUO_ABI_TI_BASE:
		if (o->enc != n->enc)
			return differ(w, p, "%s (%s) in the old image, %s (%s) in the new", on, enc_word(o->enc), nn,
				      enc_word(n->enc));
		return 0;
	case LUO_ABI_TI_NAMED:
	case LUO_ABI_TI_OPAQUE:
		if (strcmp(str(w->old, o->name), str(w->new, n->name)) != 0)
			return differ(w, p, "typedef %s in the old image, %s in the new (a typedef of the program "
				      "names a unit or meaning)", on, nn);
		return push(w, o->ref, n->ref, p->o_parent, p->o_member, p->n_member);
	case LUO_ABI_TI_ARRAY:
		if (o->enc != n->enc)
			return differ(w, p, "%u elements in the old image, %u in the new", o->enc, n->enc);
		return push(w, o->ref, n->ref, p->o_parent, p->o_member, p->n_member);
	case LUO_ABI_TI_POINTER:
		if ((o->ref == LUO_ABI_TI_NONE) != (n->ref == LUO_ABI_TI_NONE))
			return differ(w, p, "a pointer to %s in the old image, to %s in the new",
				      o->ref == LUO_ABI_TI_NONE ? "void" : "a type",
				      n->ref == LUO_ABI_TI_NONE ? "void" : "a type");
		return push(w, o->ref, n->ref, p->o_parent, p->o_member, p->n_member);
	case LUO_ABI_TI_ENUM:
		if (o->value != n->value)
			return differ(w, p, "%s is %s in the old image, %s in the new", on,
				      o->value ? "signed" : "unsigned", n->value ? "signed" : "unsigned");
		return compare_members(w, p);
	case LUO_ABI_TI_STRUCT:
	case LUO_ABI_TI_UNION:
		return compare_members(w, p);
	}
	return 0;
}

int luo_typedesc_compare(const struct luo_typedesc *old, const struct luo_typedesc *new, char *why, size_t why_len)
{
	_cleanup_free_ uint32_t *paired = NULL;
	_cleanup_free_ struct pair *stack = NULL;
	struct walk w = { old, new, NULL, NULL, 0, old->n_items, why, why_len };

	if (why_len)
		why[0] = '\0';
	paired = calloc(old->n_items, sizeof(*paired));
	stack = calloc(2 * (size_t)old->n_items + 1, sizeof(*stack)); /* each pushed once, plus the extra */
	if (!paired || !stack)
		return -ENOMEM;
	w.paired = paired;
	w.stack = stack;
	push(&w, 0, 0, LUO_ABI_TI_NONE, 0, 0);
	while (w.n_stack) {
		struct pair p = w.stack[--w.n_stack];
		int r = compare_pair(&w, &p);

		if (r)
			return r;
	}
	/*
	 * The walk compared everything but which items the references pair
	 * up: a type met through two paths in one image and two types in the
	 * other leaves the digests apart.
	 */
	if (old->digest != new->digest) {
		snprintf(why, why_len, "the descriptions differ in shape (digest %016" PRIx64 " / %016" PRIx64 ")",
			 old->digest, new->digest);
		return 1;
	}
	return 0;
}

void luo_typedesc_print(FILE *f, const struct luo_typedesc *d, const char *indent)
{
	for (uint32_t i = 0; i < d->n_items; i++) {
		const struct luo_abi_type_item *t = &d->items[i];
		char name[96];

		switch (t->kind) {
		case LUO_ABI_TI_MEMBER:
			luo_typedesc_item_name(d, t->ref, name, sizeof(name));
			if (t->align)
				fprintf(f, "%s  #%u   bit %u:%u %s -> #%u %s\n", indent, i, t->size, t->align,
					str(d, t->name), t->ref, name);
			else
				fprintf(f, "%s  #%u   @%u %s -> #%u %s\n", indent, i, t->size / 8, str(d, t->name),
					t->ref, name);
			break;
		case LUO_ABI_TI_ENUMERATOR:
			fprintf(f, "%s  #%u   %s = %" PRId64 "\n", indent, i, str(d, t->name), (int64_t)t->value);
			break;
		default:
			luo_typedesc_item_name(d, i, name, sizeof(name));
			fprintf(f, "%s  #%u %s, size %u, align %u", indent, i, name, t->size, t->align);
			if (t->kind == LUO_ABI_TI_BASE)
				fprintf(f, ", %s", enc_word(t->enc));
			if (t->ref != LUO_ABI_TI_NONE && t->kind != LUO_ABI_TI_MEMBER)
				fprintf(f, " -> #%u", t->ref);
			fputc('\n', f);
		}
	}
}
