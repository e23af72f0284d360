/* SPDX-License-Identifier: MIT */
/*
 * DOC: reading the handover blob, hostile input
 *
 * The blob comes from another program image and is read as an attacker's:
 * the whole tree is walked with bounds checks first (luo_blob_check():
 * what fdt_check_full() checks, in one walk of our own); then
 * every property this reader uses must have its exact length (integers) or
 * be a bounded, terminated string with no inner NUL; every count is checked
 * against its named maximum before anything is allocated for it; duplicate
 * names, tokens and fd numbers are refused. Anything else is -EBADMSG, a
 * format version this build does not read is -EPROTO; @reason says what and
 * where. libfdt's codes never leave this file.
 *
 * The result holds pointers into @buf (the handlers' data), so the caller
 * keeps @buf alive while it uses the result. Nothing here touches an fd:
 * checking the inherited fds is the adopter's job (handover.c).
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libfdt.h>

#include "cleanup.h"
#include "format.h"

struct reader {
	const void *fdt;
	char *reason;
	size_t reason_len;
};

#define refuse(rd, ...)                                                        \
	({                                                                     \
		luo_reasonf((rd)->reason, (rd)->reason_len, __VA_ARGS__);      \
		-EBADMSG;                                                      \
	})

static const void *prop(const struct reader *rd, int node, const char *name, int *ret_len)
{
	int len;
	const void *p = fdt_getprop(rd->fdt, node, name, &len);

	/* libfdt 1.6.1's fdt_check_full lets a negative length through. */
	if (!p || len < 0)
		return NULL;
	*ret_len = len;
	return p;
}

/* The checks of one property's value, wherever it was found (NULL: missing). */
static int want_u32(const struct reader *rd, int node, const char *name, const void *p, int len, uint32_t *ret)
{
	if (!p || len != (int)sizeof(uint32_t))
		return refuse(rd, "property '%s' of node '%s' missing or not 4 bytes", name,
			      fdt_get_name(rd->fdt, node, NULL));
	*ret = fdt32_ld(p);
	return 0;
}

static int want_u64(const struct reader *rd, int node, const char *name, const void *p, int len, uint64_t *ret)
{
	if (!p || len != (int)sizeof(uint64_t))
		return refuse(rd, "property '%s' of node '%s' missing or not 8 bytes", name,
			      fdt_get_name(rd->fdt, node, NULL));
	*ret = fdt64_ld(p);
	return 0;
}

/* A string of 1..@max bytes, NUL-terminated, no NUL inside, copied out. */
static int want_string(const struct reader *rd, int node, const char *name, const char *p, int len, size_t max,
		       char *out)
{
	if (!p || len < 2 || (size_t)len > max + 1 || p[len - 1] != '\0' || strlen(p) != (size_t)len - 1)
		return refuse(rd, "property '%s' of node '%s' missing, empty, unterminated or longer than %zu bytes",
			      name, fdt_get_name(rd->fdt, node, NULL), max);
	memcpy(out, p, (size_t)len);
	return 0;
}

static int get_u32(const struct reader *rd, int node, const char *name, uint32_t *ret)
{
	int len = 0;
	const void *p = prop(rd, node, name, &len);

	return want_u32(rd, node, name, p, len, ret);
}

static int get_u64(const struct reader *rd, int node, const char *name, uint64_t *ret)
{
	int len = 0;
	const void *p = prop(rd, node, name, &len);

	return want_u64(rd, node, name, p, len, ret);
}

static int get_string(const struct reader *rd, int node, const char *name, size_t max, char *out)
{
	int len = 0;
	const char *p = prop(rd, node, name, &len);

	return want_string(rd, node, name, p, len, max, out);
}

static int count_subnodes(const struct reader *rd, int parent, size_t max, size_t *ret)
{
	size_t n = 0;
	int node;

	fdt_for_each_subnode(node, rd->fdt, parent) {
		if (++n > max)
			return refuse(rd, "node '%s' has more than %zu children",
				      fdt_get_name(rd->fdt, parent, NULL), max);
	}
	if (node != -FDT_ERR_NOTFOUND)
		return refuse(rd, "cannot walk the children of node '%s'", fdt_get_name(rd->fdt, parent, NULL));
	*ret = n;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(((const struct luo_blob_session *)a)->name, ((const struct luo_blob_session *)b)->name);
}

/*
 * A file node, in one pass over its properties: a session may hold
 * thousands, and a lookup by name would walk them again for each of the
 * five. Names are unique in a node (check_structure()), so each is seen
 * once; others are ignored, as a lookup would ignore them. The optional
 * name must be 1..LUO_FILE_NAME_MAX bytes of 0x21..0x7e, NUL-terminated.
 */
static int read_file(const struct reader *rd, int node, struct luo_blob_file *f)
{
	enum { TOKEN, FD, HANDLER, HVERSION, DATA, NAME, N_PROPS };
	static const char *const names[N_PROPS] = {
		[TOKEN] = LUO_ABI_PROP_FILE_TOKEN,	       [FD] = LUO_ABI_PROP_FILE_FD,
		[HANDLER] = LUO_ABI_PROP_FILE_HANDLER,	       [HVERSION] = LUO_ABI_PROP_FILE_HANDLER_VERSION,
		[DATA] = LUO_ABI_PROP_FILE_DATA,	       [NAME] = LUO_ABI_PROP_FILE_NAME,
	};
	const void *val[N_PROPS] = { NULL };
	int len[N_PROPS] = { 0 }, off, r;
	uint32_t fd;

	fdt_for_each_property_offset(off, rd->fdt, node) {
		const char *name = NULL;
		int plen = -1;
		const void *p = fdt_getprop_by_offset(rd->fdt, off, &name, &plen);

		/* libfdt 1.6.1's fdt_check_full lets a negative length through. */
		if (!p || !name || plen < 0)
			continue; /* as prop() would: missing, if it is one of ours */
		for (int k = 0; k < N_PROPS; k++)
			if (strcmp(name, names[k]) == 0) {
				val[k] = p;
				len[k] = plen;
				break;
			}
	}
	r = want_u64(rd, node, names[TOKEN], val[TOKEN], len[TOKEN], &f->token);
	if (!r)
		r = want_u32(rd, node, names[FD], val[FD], len[FD], &fd);
	if (!r)
		r = want_string(rd, node, names[HANDLER], val[HANDLER], len[HANDLER], LUO_HANDLER_NAME_MAX,
				f->handler);
	if (!r)
		r = want_u32(rd, node, names[HVERSION], val[HVERSION], len[HVERSION], &f->handler_version);
	if (r)
		return r;
	if (fd < 3 || fd > LUO_ABI_FD_NUMBER_MAX)
		return refuse(rd, "file '%s': fd %u out of range 3..%d", fdt_get_name(rd->fdt, node, NULL), fd,
			      LUO_ABI_FD_NUMBER_MAX);
	f->fd = (int)fd;
	if (!val[DATA] || len[DATA] > LUO_FILE_DATA_MAX)
		return refuse(rd, "file '%s': data missing or longer than %d bytes", fdt_get_name(rd->fdt, node, NULL),
			      LUO_FILE_DATA_MAX);
	f->data = val[DATA];
	f->data_len = (uint32_t)len[DATA];
	f->name = NULL;
	if (val[NAME]) {
		const char *name = val[NAME];

		/* Bounded before any string function looks at it. */
		if (len[NAME] < 2 || len[NAME] > LUO_FILE_NAME_MAX + 1 || name[len[NAME] - 1] != '\0' ||
		    strlen(name) != (size_t)len[NAME] - 1 || !luo_file_name_valid(name))
			return refuse(rd, "file '%s': name empty, unterminated, longer than %d bytes or not 0x21..0x7e",
				      fdt_get_name(rd->fdt, node, NULL), LUO_FILE_NAME_MAX);
		f->name = name;
	}
	return 0;
}

static int read_session(const struct reader *rd, int node, size_t files_left, struct luo_blob_session *s)
{
	_cleanup_free_ uint64_t *tokens = NULL;
	size_t i = 0;
	int child, r;

	r = get_string(rd, node, LUO_ABI_PROP_SESSION_NAME, LUO_SESSION_NAME_MAX, s->name);
	if (!r)
		r = count_subnodes(rd, node, LUO_SESSION_FILES_MAX, &s->n_files);
	if (r)
		return r;
	if (s->n_files > files_left)
		return refuse(rd, "more than %d files in all", LUO_FILES_MAX);
	if (s->n_files == 0)
		return 0;
	s->files = calloc(s->n_files, sizeof(*s->files));
	tokens = calloc(s->n_files, sizeof(*tokens));
	if (!s->files || !tokens)
		return -ENOMEM;
	fdt_for_each_subnode(child, rd->fdt, node) {
		r = read_file(rd, child, &s->files[i]);
		if (r)
			return r;
		tokens[i] = s->files[i].token;
		i++;
	}
	qsort(tokens, s->n_files, sizeof(*tokens), cmp_u64);
	for (i = 1; i < s->n_files; i++)
		if (tokens[i] == tokens[i - 1])
			return refuse(rd, "session '%s': token %llu twice", s->name, (unsigned long long)tokens[i]);
	return 0;
}

static int read_sessions(const struct reader *rd, struct luo_blob *b)
{
	_cleanup_free_ uint64_t *fds = NULL;
	_cleanup_free_ struct luo_blob_session *sorted = NULL;
	size_t i = 0, k = 0;
	int parent, node, r;

	parent = fdt_subnode_offset(rd->fdt, 0, LUO_ABI_NODE_SESSIONS);
	if (parent < 0)
		return refuse(rd, "no '%s' node", LUO_ABI_NODE_SESSIONS);
	r = count_subnodes(rd, parent, LUO_SESSIONS_MAX, &b->n_sessions);
	if (r)
		return r;
	if (b->n_sessions == 0)
		return 0;
	b->sessions = calloc(b->n_sessions, sizeof(*b->sessions));
	if (!b->sessions)
		return -ENOMEM;
	fdt_for_each_subnode(node, rd->fdt, parent) {
		r = read_session(rd, node, LUO_FILES_MAX - b->n_files, &b->sessions[i]);
		if (r)
			return r;
		b->n_files += b->sessions[i].n_files;
		i++;
	}

	/* No two sessions with one name, no fd number twice. */
	sorted = malloc(b->n_sessions * sizeof(*sorted));
	fds = malloc((b->n_files ? b->n_files : 1) * sizeof(*fds));
	if (!sorted || !fds)
		return -ENOMEM;
	memcpy(sorted, b->sessions, b->n_sessions * sizeof(*sorted));
	qsort(sorted, b->n_sessions, sizeof(*sorted), cmp_name);
	for (i = 1; i < b->n_sessions; i++)
		if (strcmp(sorted[i].name, sorted[i - 1].name) == 0)
			return refuse(rd, "session name '%s' twice", sorted[i].name);
	for (i = 0; i < b->n_sessions; i++)
		for (size_t j = 0; j < b->sessions[i].n_files; j++)
			fds[k++] = (uint64_t)b->sessions[i].files[j].fd;
	qsort(fds, k, sizeof(*fds), cmp_u64);
	for (i = 1; i < k; i++)
		if (fds[i] == fds[i - 1])
			return refuse(rd, "fd %llu recorded twice", (unsigned long long)fds[i]);
	return 0;
}

static int cmp_component(const void *a, const void *b)
{
	return strcmp(((const struct luo_blob_component *)a)->name, ((const struct luo_blob_component *)b)->name);
}

static int read_component(const struct reader *rd, int node, struct luo_blob_component *c)
{
	int len, r;
	const void *data;
	bool dropped;

	r = get_string(rd, node, LUO_ABI_PROP_COMPONENT_NAME, LUO_COMPONENT_NAME_MAX, c->name);
	if (r)
		return r;
	for (const char *p = c->name; *p; p++)
		if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
			return refuse(rd, "component name with a byte outside 0x21..0x7e");
	dropped = prop(rd, node, LUO_ABI_PROP_COMPONENT_DROPPED, &len) != NULL;
	if (dropped) {
		if (len != 0 || prop(rd, node, LUO_ABI_PROP_COMPONENT_VERSION, &len) ||
		    prop(rd, node, LUO_ABI_PROP_COMPONENT_DATA, &len))
			return refuse(rd, "component '%s': 'dropped' must be empty and alone", c->name);
		c->dropped = true;
		return 0;
	}
	r = get_u32(rd, node, LUO_ABI_PROP_COMPONENT_VERSION, &c->version);
	if (r)
		return r;
	if (c->version == 0)
		return refuse(rd, "component '%s': version 0", c->name);
	data = prop(rd, node, LUO_ABI_PROP_COMPONENT_DATA, &len);
	/* Declared state (abi.h): a "fields" subnode instead of data, read by fields.c at load. */
	if (!data && (r = fdt_subnode_offset(rd->fdt, node, LUO_ABI_NODE_COMPONENT_FIELDS)) >= 0) {
		c->fdt = rd->fdt;
		c->has_fields = true;
		c->fields_node = r;
		return 0;
	}
	if (!data || (uint64_t)len > LUO_COMPONENT_DATA_MAX)
		return refuse(rd, "component '%s': data missing or longer than %u bytes", c->name,
			      LUO_COMPONENT_DATA_MAX);
	c->data = data;
	c->data_len = (size_t)len;
	return 0;
}

/* Format 2 only: the node may be absent (no components). */
static int read_components(const struct reader *rd, struct luo_blob *b)
{
	_cleanup_free_ struct luo_blob_component *sorted = NULL;
	size_t i = 0;
	int parent, node, r;

	parent = fdt_subnode_offset(rd->fdt, 0, LUO_ABI_NODE_COMPONENTS);
	if (parent == -FDT_ERR_NOTFOUND)
		return 0;
	if (parent < 0)
		return refuse(rd, "unreadable '%s' node", LUO_ABI_NODE_COMPONENTS);
	r = count_subnodes(rd, parent, LUO_ABI_COMPONENTS_MAX, &b->n_components);
	if (r || b->n_components == 0)
		return r;
	b->components = calloc(b->n_components, sizeof(*b->components));
	sorted = malloc(b->n_components * sizeof(*sorted));
	if (!b->components || !sorted)
		return -ENOMEM;
	fdt_for_each_subnode(node, rd->fdt, parent) {
		r = read_component(rd, node, &b->components[i++]);
		if (r)
			return r;
	}
	memcpy(sorted, b->components, b->n_components * sizeof(*sorted));
	qsort(sorted, b->n_components, sizeof(*sorted), cmp_component);
	for (i = 1; i < b->n_components; i++)
		if (strcmp(sorted[i].name, sorted[i - 1].name) == 0)
			return refuse(rd, "component '%s' twice", sorted[i].name);
	return 0;
}

/* producer-argv: 1..LUO_ABI_ARGV_MAX NUL-terminated strings, bounded bytes. */
static int read_argv(const struct reader *rd, struct luo_blob *b)
{
	int len;
	const char *p = prop(rd, 0, LUO_ABI_PROP_PRODUCER_ARGV, &len);
	size_t n = 0, off = 0;

	if (!p || len < 1 || (size_t)len > LUO_ABI_ARGV_BYTES_MAX || p[len - 1] != '\0')
		return refuse(rd, "producer-argv missing, unterminated or longer than %u bytes", LUO_ABI_ARGV_BYTES_MAX);
	for (off = 0; off < (size_t)len; off += strlen(p + off) + 1)
		n++;
	if (n > LUO_ABI_ARGV_MAX)
		return refuse(rd, "producer-argv has more than %d strings", LUO_ABI_ARGV_MAX);
	b->argv = calloc(n + 1, sizeof(*b->argv));
	if (!b->argv)
		return -ENOMEM;
	n = 0;
	for (off = 0; off < (size_t)len; off += strlen(p + off) + 1)
		b->argv[n++] = p + off;
	b->argc = n; /* empty strings, argv[0] too, are what execve() allows */
	return 0;
}

/* Nodes nest at most this deep (root 0, sessions 1, session 2, file 3). */
#define TREE_DEPTH_MAX 8
/*
 * Names (properties and children) in one node: no node of ours has more
 * children than LUO_SESSIONS_MAX or LUO_SESSION_FILES_MAX, nor more than a
 * few properties. A node with more is refused, so what the walk keeps
 * stays small whatever the blob's size.
 */
#define NODE_NAMES_MAX ((LUO_SESSIONS_MAX > LUO_SESSION_FILES_MAX ? LUO_SESSIONS_MAX : LUO_SESSION_FILES_MAX) + 64)

struct name_entry {
	const char *name;
	uint32_t hash; /* of the name (FNV-1a), taken as the walk measured it */
	bool is_node;
};

static int cmp_entry(const void *a, const void *b)
{
	const struct name_entry *x = a, *y = b;

	if (x->is_node != y->is_node)
		return x->is_node ? 1 : -1;
	return strcmp(x->name, y->name);
}

#define FNV_BASIS 0x811c9dc5u
#define FNV_PRIME 0x01000193u

/* Scratch of check_names(): a table of entry indices + 1, 0 for empty. */
struct name_table {
	uint32_t *slots;
	size_t cap;
};

/*
 * The names of one node, entries[from..n): no two alike of a kind. A hash
 * table finds twins in one pass (a node of 1,000 declared fields: sorting
 * them was most of the blob's check); names crafted to collide cannot make
 * it quadratic -- past a bounded number of probes the names are sorted
 * instead, as before.
 */
static int check_names(const struct reader *rd, struct name_table *t, struct name_entry *entries, size_t from,
		       size_t n, int node)
{
	size_t count = n - from, size = 16, probes = 0;
	const struct name_entry *twin = NULL;

	/* A node with no names may come before any was kept: entries is NULL then (fuzz-blob). */
	if (count < 2)
		return 0;
	while (size < 2 * count)
		size *= 2;
	if (size > t->cap) {
		uint32_t *s = reallocarray(t->slots, size, sizeof(*s));

		if (!s)
			return -ENOMEM;
		t->slots = s;
		t->cap = size;
	}
	memset(t->slots, 0, size * sizeof(*t->slots));
	for (size_t i = from; i < n && !twin; i++) {
		for (size_t h = entries[i].hash & (size - 1);; h = (h + 1) & (size - 1)) {
			const struct name_entry *e;

			if (!t->slots[h]) {
				t->slots[h] = (uint32_t)(i - from + 1);
				break;
			}
			if (++probes > 8 * count)
				goto sort;
			e = &entries[from + t->slots[h] - 1];
			if (e->is_node == entries[i].is_node && strcmp(e->name, entries[i].name) == 0) {
				twin = e;
				break;
			}
		}
	}
	if (twin)
		return refuse(rd, "%s '%s' twice in node '%s'", twin->is_node ? "node" : "property", twin->name,
			      fdt_get_name(rd->fdt, node, NULL));
	return 0;
sort:
	qsort(entries + from, count, sizeof(*entries), cmp_entry);
	for (size_t i = from + 1; i < n; i++)
		if (entries[i].is_node == entries[i - 1].is_node && strcmp(entries[i].name, entries[i - 1].name) == 0)
			return refuse(rd, "%s '%s' twice in node '%s'", entries[i].is_node ? "node" : "property",
				      entries[i].name, fdt_get_name(rd->fdt, node, NULL));
	return 0;
}

/*
 * The tag at @off of the structure block (@st, @size bytes), read directly
 * rather than through fdt_next_tag() (which takes three bounds-checked
 * looks at every property: with 1,000 declared fields, most of the check).
 * Every offset and length is checked here against the blocks' sizes:
 * this walk is the tree's check, as fdt_check_full()'s was. *@ret_next: the next tag's offset;
 * *@ret_name: a node's or property's name, terminated inside its block.
 * Returns the tag, or 0 when the block is damaged.
 */
/*
 * The name at @s, terminated before @end: its hash (FNV-1a), taken in the
 * one pass that finds its end (names are short). NULL when unterminated.
 */
static const char *name_end(const char *s, const char *end, uint32_t *ret_hash)
{
	uint32_t h = FNV_BASIS;

	for (; s < end && *s; s++)
		h = (h ^ (unsigned char)*s) * FNV_PRIME;
	*ret_hash = h;
	return s < end ? s : NULL;
}

static uint32_t next_tag(const char *st, uint32_t size, const char *strings, uint32_t strings_size, uint32_t off,
			 uint32_t *ret_next, const char **ret_name, uint32_t *ret_hash)
{
	const char *end;
	uint32_t tag, len, nameoff;

	if (off > size || size - off < FDT_TAGSIZE)
		return 0;
	tag = fdt32_ld((const fdt32_t *)(st + off));
	off += FDT_TAGSIZE;
	*ret_name = NULL;
	switch (tag) {
	case FDT_BEGIN_NODE:
		end = name_end(st + off, st + size, ret_hash);
		if (!end)
			return 0;
		*ret_name = st + off;
		off = (uint32_t)(end - st) + 1;
		break;
	case FDT_PROP:
		if (size - off < 2 * sizeof(fdt32_t))
			return 0;
		len = fdt32_ld((const fdt32_t *)(st + off));
		nameoff = fdt32_ld((const fdt32_t *)(st + off + sizeof(fdt32_t)));
		off += 2 * sizeof(fdt32_t);
		if (len > size - off || nameoff >= strings_size ||
		    !name_end(strings + nameoff, strings + strings_size, ret_hash))
			return 0;
		*ret_name = strings + nameoff;
		off += len;
		break;
	case FDT_END_NODE:
	case FDT_NOP:
	case FDT_END:
		break;
	default:
		return 0;
	}
	*ret_next = (off + FDT_TAGSIZE - 1) & ~(uint32_t)(FDT_TAGSIZE - 1);
	return tag;
}

/*
 * One walk of the structure block: every tag, offset, length and name
 * inside its block (next_tag()), nodes balanced, one root named "" --
 * what fdt_check_full() walks for -- and what it lets through and
 * libfdt's lookups would not see:
 *  - a property after a child node (lookups stop at the first child);
 *  - two properties, or two children, of one name in a node (lookups
 *    return the first): what a reader does not see must not exist;
 *  - nodes deeper than ours, nodes with more names than NODE_NAMES_MAX.
 * The names of the open nodes are kept on one stack (a node's children
 * are pushed after its properties, grandchildren popped when their parent
 * closes), so the walk is linear in the blob.
 */
static int check_structure(const struct reader *rd)
{
	_cleanup_free_ struct name_entry *entries = NULL;
	_cleanup_free_ uint32_t *slots = NULL;
	struct name_table table = { NULL, 0 };
	size_t n = 0, cap = 0, from[TREE_DEPTH_MAX + 1];
	bool had_child[TREE_DEPTH_MAX + 1];
	int node_at[TREE_DEPTH_MAX + 1];
	const char *st = (const char *)rd->fdt + fdt_off_dt_struct(rd->fdt);
	const char *strings = (const char *)rd->fdt + fdt_off_dt_strings(rd->fdt);
	uint32_t size = fdt_size_dt_struct(rd->fdt), strings_size = fdt_size_dt_strings(rd->fdt);
	uint32_t off = 0, next = 0, tag;
	bool had_root = false;
	int depth = -1, r;

	/* fdt_check_header() has checked that both blocks lie inside the blob. */
	do {
		const char *name;
		uint32_t hash = 0;

		tag = next_tag(st, size, strings, strings_size, off, &next, &name, &hash);
		switch (tag) {
		case FDT_BEGIN_NODE:
			if (depth >= 0) {
				had_child[depth] = true;
			} else {
				if (had_root || *name)
					return refuse(rd, "a second root, or a root with a name");
				had_root = true;
				name = NULL; /* the root's name is kept nowhere */
			}
			if (depth + 1 > TREE_DEPTH_MAX)
				return refuse(rd, "nodes nested deeper than %d", TREE_DEPTH_MAX);
			break;
		case FDT_END_NODE:
			if (depth < 0)
				return refuse(rd, "unbalanced nodes");
			r = check_names(rd, &table, entries, from[depth], n, node_at[depth]);
			slots = table.slots;
			if (r)
				return r;
			n = from[depth];
			depth--;
			break;
		case FDT_PROP:
			if (depth < 0 || had_child[depth])
				return refuse(rd, "a property after a child node");
			break;
		case FDT_NOP:
		case FDT_END:
			break;
		default:
			return refuse(rd, "cannot walk the structure block");
		}
		if (name) {
			/* A name of the node at @depth (a property, or a child about to open). */
			if (n - from[depth] >= NODE_NAMES_MAX)
				return refuse(rd, "too many properties or children in node '%s'",
					      fdt_get_name(rd->fdt, node_at[depth], NULL));
			if (n == cap) {
				size_t ncap = cap ? 2 * cap : 64;
				struct name_entry *e = reallocarray(entries, ncap, sizeof(*e));

				if (!e)
					return -ENOMEM;
				entries = e;
				cap = ncap;
			}
			entries[n++] = (struct name_entry){ .name = name, .hash = hash, .is_node = tag == FDT_BEGIN_NODE };
		}
		if (tag == FDT_BEGIN_NODE) {
			depth++;
			had_child[depth] = false;
			from[depth] = n;
			node_at[depth] = (int)off;
		}
		off = next;
	} while (tag != FDT_END);
	if (depth != -1 || !had_root)
		return refuse(rd, "cannot walk the structure block");
	return 0;
}

void luo_blob_free(struct luo_blob *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n_sessions; i++)
		free(b->sessions[i].files);
	free(b->sessions);
	free(b->components);
	free(b->argv);
	free(b);
}

int luo_blob_check(const void *buf, size_t len, char *reason, size_t reason_len)
{
	struct reader rd = { .fdt = buf, .reason = reason, .reason_len = reason_len };
	int r;

	if (!buf || len > LUO_ABI_BLOB_MAX)
		return refuse(&rd, "blob larger than %u bytes", LUO_ABI_BLOB_MAX);
	/*
	 * Probe the header ourselves first: libfdt 1.6.1 dereferences NULL on
	 * trees of old versions. The writer makes
	 * version 17; nothing else is ours.
	 */
	if (len < sizeof(struct fdt_header) || fdt_magic(buf) != FDT_MAGIC || fdt_version(buf) != 17)
		return refuse(&rd, "not a version 17 flattened device tree");
	/*
	 * What fdt_check_full() checks, with the walk below instead of its
	 * own (three bounds-checked looks at every tag: with 1,000 declared
	 * fields, half the check): the header, its blocks inside the blob,
	 * the reserve map terminated inside it; then every tag, offset,
	 * length and name of the structure block, one root named "".
	 */
	r = fdt_check_header(buf);
	if (r < 0)
		return refuse(&rd, "not a valid flattened device tree (%s)", fdt_strerror(r));
	if (fdt_totalsize(buf) != len)
		return refuse(&rd, "tree size %u differs from blob size %zu", fdt_totalsize(buf), len);
	r = fdt_num_mem_rsv(buf);
	if (r < 0)
		return refuse(&rd, "not a valid flattened device tree (%s)", fdt_strerror(r));
	return check_structure(&rd);
}

int luo_blob_parse(const void *buf, size_t len, struct luo_blob **ret_blob, struct luo_blob **ret_origin, char *reason,
		   size_t reason_len)
{
	_cleanup_(luo_blob_freep) struct luo_blob *b = NULL;
	struct reader rd = { .fdt = buf, .reason = reason, .reason_len = reason_len };
	char compatible[sizeof(LUO_ABI_COMPATIBLE) + 1];
	const void *p;
	int plen, r;

	r = luo_blob_check(buf, len, reason, reason_len);
	if (r)
		return r;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	r = get_string(&rd, 0, LUO_ABI_PROP_COMPATIBLE, sizeof(compatible) - 1, compatible);
	if (r || strcmp(compatible, LUO_ABI_COMPATIBLE) != 0)
		return refuse(&rd, "root is not compatible with \"%s\"", LUO_ABI_COMPATIBLE);
	r = get_u32(&rd, 0, LUO_ABI_PROP_FORMAT, &b->format);
	if (r)
		return r;
	if (b->format < LUO_ABI_FORMAT_READ_MIN || b->format > LUO_ABI_FORMAT_VERSION) {
		luo_reasonf(reason, reason_len, "container format version %u; this build reads %u..%u", b->format,
			    LUO_ABI_FORMAT_READ_MIN, LUO_ABI_FORMAT_VERSION);
		return -EPROTO;
	}
	r = get_u64(&rd, 0, LUO_ABI_PROP_LU_NUMBER, &b->lu_number);
	if (!r)
		r = get_string(&rd, 0, LUO_ABI_PROP_PRODUCER_PATH, PATH_MAX - 1, b->producer_path);
	if (r)
		return r;
	p = prop(&rd, 0, LUO_ABI_PROP_PRODUCER_BUILD_ID, &plen);
#ifdef LUO_TEST_BROKEN_BOUNDS
	/*
	 * Tests only, never in libluo: an off-by-one in this bound, which the
	 * bad-blob corpus and fuzz-blob must catch (tests/meson.build,
	 * fuzz/meson.build). One byte more than build_id[] is accepted.
	 */
	if (!p || plen > LUO_ABI_BUILD_ID_MAX + 1)
#else
	if (!p || plen > LUO_ABI_BUILD_ID_MAX)
#endif
		return refuse(&rd, "producer build-id missing or longer than %d bytes", LUO_ABI_BUILD_ID_MAX);
	memcpy(b->build_id, p, (size_t)plen);
	b->build_id_len = (size_t)plen;
	if (b->format >= 2) {
		r = read_argv(&rd, b);
		if (r)
			return r;
	}
	/* Who wrote it is known: enough to go back there if the rest fails. */
	r = get_u64(&rd, 0, LUO_ABI_PROP_FREEZE_NS, &b->freeze_ns);
	if (!r)
		r = get_u64(&rd, 0, LUO_ABI_PROP_SERIALIZE_NS, &b->serialize_ns);
	if (!r && b->lu_number == 0)
		r = refuse(&rd, "liveupdate-number is 0");
	if (!r)
		r = read_sessions(&rd, b);
	if (!r && b->format >= 2)
		r = read_components(&rd, b);
	if (r) {
		if (ret_origin && b->argc > 0) {
			/* Sessions and components are not trusted: drop them. */
			for (size_t i = 0; i < b->n_sessions; i++)
				free(b->sessions[i].files);
			free(b->sessions);
			free(b->components);
			b->sessions = NULL;
			b->components = NULL;
			b->n_sessions = b->n_files = b->n_components = 0;
			*ret_origin = TAKE_PTR(b);
		}
		return r;
	}
	*ret_blob = TAKE_PTR(b);
	return 0;
}
