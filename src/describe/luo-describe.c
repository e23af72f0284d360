/* SPDX-License-Identifier: MIT */
/*
 * DOC: luo-describe, the post-link step that lets the compiler prove types
 *
 *   luo-describe [--output OUT] BINARY
 *
 * For every type a binary declares with LUO_PAYLOAD_TYPE(),
 * LUO_ARENA_TYPE() or LUO_HANDLER_DATA_TYPE() (a LUO_ABI_NOTE_TYPE note in
 * .note.luo), it finds the anchor object the macro defined in the binary's
 * DWARF, walks the type graph from it (libdw) and builds the canonical
 * description of abi.h; then it writes every description into the section
 * .note.luo.types (objcopy) and each digest into its note, in place (the
 * note lies in the mapped image: the running program and luo_arena_*()
 * see it). The result is written to OUT (default: BINARY itself, through a
 * temporary file and a rename).
 *
 * It fails, writing nothing, when the binary has no debug information,
 * an anchor cannot be found, a type is of a kind that cannot cross an
 * update (a C++ reference), or a version a component can read or write
 * has no payload type: the build stops there. It runs again on its own
 * output and gives the same bytes.
 *
 * Typedefs: one declared in the system's headers (uint32_t, size_t,
 * pthread_mutex_t) is resolved to what it names; one the program declares
 * stays in the description under its name, so that a unit or meaning said
 * by a typedef (kv_seconds_t) is part of the type.
 */

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <getopt.h>
#include <libelf.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "manifest.h"
#include "typedesc.h"

extern char **environ;

/* Types declared in one binary. */
#define DESCRIBE_TYPES_MAX LUO_MANIFEST_TYPES_MAX
/* Anchor objects (variables named *_luo_type_anchor) in one binary. */
#define DESCRIBE_ANCHORS_MAX 4096
/* Struct definitions indexed to complete a declaration. */
#define DESCRIBE_DEFS_MAX 65536

static const char *prog = "luo-describe";

__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -1;
}

/* ---------------------------------------------------------------------- */
/* The notes to fill in                                                    */

struct type_note {
	struct luo_abi_note_type d;
	uint64_t digest_file_off; /* where the note's digest lies in the file */
};

struct component_note {
	char name[LUO_ABI_NOTE_NAME_SIZE];
	uint32_t kind, read_min, read_max;
};

struct binary {
	struct type_note types[DESCRIBE_TYPES_MAX];
	size_t n_types;
	struct component_note comps[LUO_MANIFEST_ENTRIES_MAX];
	size_t n_comps;
	bool has_types_section;
};

static int read_notes(int fd, const char *path, struct binary *b)
{
	Elf *e = elf_begin(fd, ELF_C_READ, NULL);
	size_t shstrndx;
	Elf_Scn *scn = NULL;
	int ret = 0;

	if (!e || elf_kind(e) != ELF_K_ELF || elf_getshdrstrndx(e, &shstrndx) != 0) {
		if (e)
			elf_end(e);
		return fail("%s: not an ELF file with section headers", path);
	}
	while (ret == 0 && (scn = elf_nextscn(e, scn)) != NULL) {
		GElf_Shdr sh;
		const char *name;
		Elf_Data *data;
		size_t off = 0;
		struct luo_note n;
		int r;

		if (!gelf_getshdr(scn, &sh))
			continue;
		name = elf_strptr(e, shstrndx, sh.sh_name);
		if (name && strcmp(name, LUO_ABI_TYPES_SECTION) == 0)
			b->has_types_section = true;
		if (!name || strcmp(name, LUO_ABI_NOTE_SECTION) != 0 || sh.sh_type != SHT_NOTE)
			continue;
		data = elf_rawdata(scn, NULL);
		if (!data || !data->d_buf)
			continue;
		while ((r = luo_note_next(data->d_buf, data->d_size, sh.sh_addralign == 8 ? 8 : 4, &off, &n)) > 0) {
			if (!luo_note_is_owner(&n, LUO_ABI_NOTE_OWNER))
				continue;
			if (n.type == LUO_ABI_NOTE_TYPE && n.descsz == sizeof(struct luo_abi_note_type)) {
				struct type_note *t;

				if (b->n_types >= DESCRIBE_TYPES_MAX) {
					ret = fail("%s: more than %d types", path, DESCRIBE_TYPES_MAX);
					break;
				}
				t = &b->types[b->n_types++];
				memcpy(&t->d, n.desc, sizeof(t->d));
				t->digest_file_off = sh.sh_offset + (uint64_t)((const uint8_t *)n.desc -
									       (const uint8_t *)data->d_buf) +
						     offsetof(struct luo_abi_note_type, digest);
				t->d.component[sizeof(t->d.component) - 1] = '\0';
				t->d.anchor[sizeof(t->d.anchor) - 1] = '\0';
			} else if (n.type == LUO_ABI_NOTE_COMPONENT &&
				   n.descsz == sizeof(struct luo_abi_note_component) &&
				   b->n_comps < LUO_MANIFEST_ENTRIES_MAX) {
				struct luo_abi_note_component c;
				struct component_note *cn = &b->comps[b->n_comps++];

				memcpy(&c, n.desc, sizeof(c));
				memcpy(cn->name, c.name, sizeof(cn->name));
				cn->name[sizeof(cn->name) - 1] = '\0';
				cn->kind = c.kind;
				cn->read_min = c.read_min;
				cn->read_max = c.read_max;
			}
		}
	}
	elf_end(e);
	return ret;
}

/* ---------------------------------------------------------------------- */
/* DWARF to items                                                          */

struct builder {
	Dwarf *dw;
	struct luo_abi_type_item *items;
	size_t n_items, cap_items;
	Dwarf_Off *die_of; /* per item: the DIE it came from, 0 for none */
	char *strings;
	size_t n_strings, cap_strings;
	const char *error; /* set on the first failure */
	char error_buf[256];
	/* complete struct/union definitions by name, to complete declarations */
	struct def {
		const char *name;
		int tag;
		Dwarf_Off off;
	} *defs;
	size_t n_defs;
};

static uint32_t new_item(struct builder *b, uint32_t kind)
{
	if (b->n_items >= LUO_TYPEDESC_ITEMS_MAX) {
		b->error = "more than LUO_TYPEDESC_ITEMS_MAX items";
		return LUO_ABI_TI_NONE;
	}
	if (b->n_items == b->cap_items) {
		size_t cap = b->cap_items ? 2 * b->cap_items : 64;
		void *it = realloc(b->items, cap * sizeof(*b->items));
		void *of;

		if (!it) {
			b->error = "out of memory";
			return LUO_ABI_TI_NONE;
		}
		b->items = it;
		of = realloc(b->die_of, cap * sizeof(*b->die_of));
		if (!of) {
			b->error = "out of memory";
			return LUO_ABI_TI_NONE;
		}
		b->die_of = of;
		b->cap_items = cap;
	}
	b->items[b->n_items] = (struct luo_abi_type_item){ .kind = kind, .ref = LUO_ABI_TI_NONE };
	b->die_of[b->n_items] = 0;
	return (uint32_t)b->n_items++;
}

static uint32_t add_string(struct builder *b, const char *s)
{
	size_t len;

	if (!s || !s[0])
		return 0;
	for (size_t off = 1; off < b->n_strings; off += strlen(b->strings + off) + 1)
		if (strcmp(b->strings + off, s) == 0)
			return (uint32_t)off;
	len = strlen(s) + 1;
	if (b->n_strings + len > LUO_TYPEDESC_STRINGS_MAX) {
		b->error = "more than LUO_TYPEDESC_STRINGS_MAX bytes of names";
		return 0;
	}
	if (b->n_strings + len > b->cap_strings) {
		size_t cap = (b->n_strings + len) * 2;
		char *p = realloc(b->strings, cap);

		if (!p) {
			b->error = "out of memory";
			return 0;
		}
		b->strings = p;
		b->cap_strings = cap;
	}
	memcpy(b->strings + b->n_strings, s, len);
	b->n_strings += len;
	return (uint32_t)(b->n_strings - len);
}

static bool system_header(Dwarf_Die *die)
{
	static const char *const prefixes[] = { "/usr/include/", "/usr/lib/gcc/", "/usr/local/include/",
						"/usr/lib/llvm", "<built-in>" };
	const char *file = dwarf_decl_file(die);

	if (!file)
		return true; /* the compiler's own */
	for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++)
		if (strncmp(file, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

static bool die_type(Dwarf_Die *die, Dwarf_Die *ret)
{
	Dwarf_Attribute a;

	return dwarf_attr_integrate(die, DW_AT_type, &a) && dwarf_formref_die(&a, ret);
}

static bool udata(Dwarf_Die *die, unsigned int name, Dwarf_Word *ret)
{
	Dwarf_Attribute a;

	return dwarf_attr_integrate(die, name, &a) && dwarf_formudata(&a, ret) == 0;
}

static uint32_t add_type(struct builder *b, Dwarf_Die *die);

static uint32_t pow2_align(uint64_t size)
{
	uint32_t a = 1;

	while (a < size && a < 16)
		a <<= 1;
	return a;
}

/* A declared-only struct: its definition elsewhere, by name and tag. */
static bool find_definition(struct builder *b, Dwarf_Die *die, Dwarf_Die *ret)
{
	const char *name = dwarf_diename(die);

	if (!name)
		return false;
	for (size_t i = 0; i < b->n_defs; i++)
		if (b->defs[i].tag == dwarf_tag(die) && strcmp(b->defs[i].name, name) == 0)
			return dwarf_offdie(b->dw, b->defs[i].off, ret) != NULL;
	return false;
}

static uint32_t add_aggregate(struct builder *b, Dwarf_Die *die, uint32_t idx)
{
	bool is_enum = dwarf_tag(die) == DW_TAG_enumeration_type;
	Dwarf_Die child;
	uint32_t n = 0, first, align = 1;
	Dwarf_Word size = 0;
	bool is_signed = false, packed = false;

	udata(die, DW_AT_byte_size, &size);
	b->items[idx].kind = is_enum ? LUO_ABI_TI_ENUM
				     : dwarf_tag(die) == DW_TAG_union_type ? LUO_ABI_TI_UNION : LUO_ABI_TI_STRUCT;
	b->items[idx].size = (uint32_t)size;
	b->items[idx].name = add_string(b, dwarf_diename(die));
	if (dwarf_child(die, &child) == 0) {
		do {
			int tag = dwarf_tag(&child);

			if (tag == (is_enum ? DW_TAG_enumerator : DW_TAG_member))
				n++;
		} while (dwarf_siblingof(&child, &child) == 0);
	}
	b->items[idx].enc = n;
	first = (uint32_t)b->n_items;
	for (uint32_t i = 0; i < n; i++)
		if (new_item(b, is_enum ? LUO_ABI_TI_ENUMERATOR : LUO_ABI_TI_MEMBER) == LUO_ABI_TI_NONE)
			return LUO_ABI_TI_NONE;
	if (n == 0 || dwarf_child(die, &child) != 0) {
		b->items[idx].align = is_enum ? pow2_align(size) : 1;
		return idx;
	}
	n = 0;
	do {
		Dwarf_Attribute a;
		Dwarf_Die mtype;
		uint32_t m = first + n;

		if (dwarf_tag(&child) != (is_enum ? DW_TAG_enumerator : DW_TAG_member))
			continue;
		n++;
		b->items[m].name = add_string(b, dwarf_diename(&child));
		if (is_enum) {
			Dwarf_Sword sv;
			Dwarf_Word uv;

			if (dwarf_attr(&child, DW_AT_const_value, &a) && dwarf_formsdata(&a, &sv) == 0) {
				b->items[m].value = (uint64_t)sv;
				is_signed = is_signed || sv < 0;
			} else if (dwarf_attr(&child, DW_AT_const_value, &a) && dwarf_formudata(&a, &uv) == 0) {
				b->items[m].value = uv;
			}
			continue;
		}
		{
			Dwarf_Word loc = 0, bits = 0, bitoff;
			uint32_t mt;

			udata(&child, DW_AT_bit_size, &bits);
			if (udata(&child, DW_AT_data_bit_offset, &bitoff)) {
				b->items[m].size = (uint32_t)bitoff;
			} else {
				Dwarf_Word old_bitoff, bytes = 0;

				udata(&child, DW_AT_data_member_location, &loc);
				b->items[m].size = (uint32_t)(loc * 8);
				if (bits && udata(&child, DW_AT_bit_offset, &old_bitoff) &&
				    udata(&child, DW_AT_byte_size, &bytes))
					b->items[m].size += (uint32_t)(bytes * 8 - old_bitoff - bits);
			}
			b->items[m].align = (uint32_t)bits;
			if (!die_type(&child, &mtype)) {
				b->error = "a member without a type";
				return LUO_ABI_TI_NONE;
			}
			mt = add_type(b, &mtype);
			if (mt == LUO_ABI_TI_NONE)
				return LUO_ABI_TI_NONE;
			b->items[m].ref = mt;
			if (!bits) {
				uint32_t ma = b->items[mt].align ? b->items[mt].align : 1;

				align = ma > align ? ma : align;
				if ((b->items[m].size / 8) % ma)
					packed = true;
			}
		}
	} while (dwarf_siblingof(&child, &child) == 0);
	if (is_enum) {
		Dwarf_Die under;

		if (die_type(die, &under)) {
			Dwarf_Word enc = 0;

			while (dwarf_tag(&under) == DW_TAG_typedef && die_type(&under, &under))
				;
			if (udata(&under, DW_AT_encoding, &enc))
				is_signed = enc == DW_ATE_signed || enc == DW_ATE_signed_char;
		}
		b->items[idx].value = is_signed;
		b->items[idx].align = pow2_align(size);
		return idx;
	}
	if (packed || (align && size % align))
		align = 1;
	b->items[idx].align = align;
	return idx;
}

static uint32_t add_array(struct builder *b, Dwarf_Die *die, uint32_t idx)
{
	Dwarf_Word counts[16];
	size_t n_dims = 0;
	Dwarf_Die child, elem;
	uint32_t cur = idx, et;

	if (dwarf_child(die, &child) == 0) {
		do {
			Dwarf_Word c = 0, ub;

			if (dwarf_tag(&child) != DW_TAG_subrange_type)
				continue;
			if (n_dims == ARRAY_SIZE(counts)) {
				b->error = "an array of more than 16 dimensions";
				return LUO_ABI_TI_NONE;
			}
			if (!udata(&child, DW_AT_count, &c) && udata(&child, DW_AT_upper_bound, &ub))
				c = ub + 1;
			counts[n_dims++] = c;
		} while (dwarf_siblingof(&child, &child) == 0);
	}
	if (n_dims == 0)
		counts[n_dims++] = 0;
	/* a[2][3]: an array of 2 arrays of 3; the inner ones have no DIE. */
	for (size_t d = 0; d < n_dims; d++) {
		b->items[cur].kind = LUO_ABI_TI_ARRAY;
		b->items[cur].enc = (uint32_t)counts[d];
		if (d + 1 < n_dims) {
			uint32_t next = new_item(b, LUO_ABI_TI_ARRAY);

			if (next == LUO_ABI_TI_NONE)
				return LUO_ABI_TI_NONE;
			b->items[cur].ref = next;
			cur = next;
		}
	}
	if (!die_type(die, &elem)) {
		b->error = "an array without an element type";
		return LUO_ABI_TI_NONE;
	}
	et = add_type(b, &elem);
	if (et == LUO_ABI_TI_NONE)
		return LUO_ABI_TI_NONE;
	b->items[cur].ref = et;
	/* Sizes from the inside out. */
	for (size_t d = n_dims; d-- > 0;) {
		uint32_t at = idx;

		for (size_t k = 0; k < d; k++)
			at = b->items[at].ref;
		b->items[at].size = (uint32_t)(counts[d] * b->items[b->items[at].ref].size);
		b->items[at].align = b->items[b->items[at].ref].align;
	}
	return idx;
}

/* The item for @die (a type), added with everything it reaches; NONE: void or failure. */
static uint32_t add_type(struct builder *b, Dwarf_Die *die_in)
{
	Dwarf_Die die = *die_in, def;
	Dwarf_Off off;
	Dwarf_Word size = 0, enc = 0;
	uint32_t idx, t;
	int tag;

	for (;;) {
		tag = dwarf_tag(&die);
		if (tag == DW_TAG_const_type || tag == DW_TAG_volatile_type || tag == DW_TAG_restrict_type ||
		    tag == DW_TAG_atomic_type || (tag == DW_TAG_typedef && system_header(&die))) {
			if (!die_type(&die, &die))
				return LUO_ABI_TI_NONE; /* const void */
			continue;
		}
		break;
	}
	if ((tag == DW_TAG_structure_type || tag == DW_TAG_union_type) && dwarf_hasattr(&die, DW_AT_declaration) &&
	    find_definition(b, &die, &def))
		die = def;
	off = dwarf_dieoffset(&die);
	for (size_t i = 0; i < b->n_items; i++)
		if (b->die_of[i] == off)
			return (uint32_t)i;
	idx = new_item(b, LUO_ABI_TI_BASE);
	if (idx == LUO_ABI_TI_NONE)
		return idx;
	b->die_of[idx] = off;
	switch (tag) {
	case DW_TAG_base_type:
		udata(&die, DW_AT_byte_size, &size);
		udata(&die, DW_AT_encoding, &enc);
		b->items[idx].size = (uint32_t)size;
		b->items[idx].align = pow2_align(size);
		b->items[idx].enc = (uint32_t)enc;
		b->items[idx].name = add_string(b, dwarf_diename(&die));
		return idx;
	case DW_TAG_structure_type:
	case DW_TAG_union_type:
		if (dwarf_hasattr(&die, DW_AT_declaration)) {
			b->items[idx].kind = LUO_ABI_TI_OPAQUE;
			b->items[idx].align = 1;
			b->items[idx].name = add_string(b, dwarf_diename(&die) ? dwarf_diename(&die) : "(anonymous)");
			return idx;
		}
		/* fall through */
	case DW_TAG_enumeration_type:
		return add_aggregate(b, &die, idx);
	case DW_TAG_array_type:
		return add_array(b, &die, idx);
	case DW_TAG_pointer_type: {
		Dwarf_Die target;

		b->items[idx].kind = LUO_ABI_TI_POINTER;
		b->items[idx].size = sizeof(void *);
		b->items[idx].align = _Alignof(void *);
		if (die_type(&die, &target)) {
			t = add_type(b, &target);
			if (t == LUO_ABI_TI_NONE && b->error)
				return t;
			b->items[idx].ref = t;
		}
		return idx;
	}
	case DW_TAG_subroutine_type:
		b->items[idx].kind = LUO_ABI_TI_FUNCTION;
		b->items[idx].align = 1;
		return idx;
	case DW_TAG_typedef: {
		Dwarf_Die target;

		b->items[idx].kind = LUO_ABI_TI_NAMED;
		b->items[idx].name = add_string(b, dwarf_diename(&die) ? dwarf_diename(&die) : "?");
		if (!die_type(&die, &target)) {
			b->error = "a typedef of void";
			return LUO_ABI_TI_NONE;
		}
		t = add_type(b, &target);
		if (t == LUO_ABI_TI_NONE)
			return t;
		b->items[idx].ref = t;
		b->items[idx].size = b->items[t].size;
		b->items[idx].align = b->items[t].align;
		return idx;
	}
	}
	snprintf(b->error_buf, sizeof(b->error_buf), "a type of DWARF tag 0x%x (%s) cannot cross an update", tag,
		 dwarf_diename(&die) ? dwarf_diename(&die) : "unnamed");
	b->error = b->error_buf;
	return LUO_ABI_TI_NONE;
}

/* Anchors and struct definitions, by one walk of the top level of every CU. */
struct anchor {
	const char *name;
	Dwarf_Off off;
};

static int index_dwarf(struct builder *b, struct anchor *anchors, size_t *n_anchors)
{
	Dwarf_Off off = 0, next;
	size_t hsize;

	*n_anchors = 0;
	while (dwarf_nextcu(b->dw, off, &next, &hsize, NULL, NULL, NULL) == 0) {
		Dwarf_Die cu, child;

		if (dwarf_offdie(b->dw, off + hsize, &cu) && dwarf_child(&cu, &child) == 0) {
			do {
				int tag = dwarf_tag(&child);
				const char *name = dwarf_diename(&child);

				if (!name)
					continue;
				if (tag == DW_TAG_variable && strstr(name, "_luo_type_anchor") &&
				    *n_anchors < DESCRIBE_ANCHORS_MAX)
					anchors[(*n_anchors)++] = (struct anchor){ name, dwarf_dieoffset(&child) };
				if ((tag == DW_TAG_structure_type || tag == DW_TAG_union_type) &&
				    !dwarf_hasattr(&child, DW_AT_declaration) && b->n_defs < DESCRIBE_DEFS_MAX)
					b->defs[b->n_defs++] = (struct def){ name, tag, dwarf_dieoffset(&child) };
			} while (dwarf_siblingof(&child, &child) == 0);
		}
		off = next;
	}
	return 0;
}

/* One type's description as the bytes of a LUO_ABI_NOTE_TYPEDESC note (header included). */
static int describe_one(struct builder *b, Dwarf_Die *root, const struct luo_abi_note_type *d, uint8_t **ret,
			size_t *ret_len, uint64_t *ret_digest)
{
	struct luo_abi_typedesc h = { 0 };
	struct luo_abi_note_header nh = { sizeof(LUO_ABI_NOTE_OWNER), 0, LUO_ABI_NOTE_TYPEDESC, LUO_ABI_NOTE_OWNER };
	size_t desc_len, len;
	uint8_t *buf;
	uint32_t r;

	b->n_items = 0;
	b->n_strings = 1;
	if (!b->strings) {
		b->strings = calloc(1, 64);
		if (!b->strings)
			return fail("out of memory");
		b->cap_strings = 64;
	}
	b->strings[0] = '\0';
	b->error = NULL;
	r = add_type(b, root);
	if (r == LUO_ABI_TI_NONE || r != 0)
		return fail("the %s type of '%s' v%u (%s): %s", luo_type_role_name(d->role), d->component, d->version,
			    d->anchor, b->error ? b->error : "void");
	if (b->items[0].size != d->size)
		return fail("the %s type of '%s' v%u: DWARF says %u bytes, the compiler said %u", luo_type_role_name(d->role),
			    d->component, d->version, b->items[0].size, d->size);
	memcpy(h.component, d->component, sizeof(h.component));
	h.version = d->version;
	h.role = d->role;
	h.n_items = (uint32_t)b->n_items;
	h.strings_size = (uint32_t)b->n_strings;
	h.digest = luo_typedesc_digest(b->items, h.n_items, b->strings, h.strings_size);
	desc_len = sizeof(h) + b->n_items * sizeof(*b->items) + b->n_strings;
	nh.descsz = (uint32_t)desc_len;
	len = sizeof(nh) + ((desc_len + 3) & ~(size_t)3);
	buf = calloc(1, len);
	if (!buf)
		return fail("out of memory");
	memcpy(buf, &nh, sizeof(nh));
	memcpy(buf + sizeof(nh), &h, sizeof(h));
	memcpy(buf + sizeof(nh) + sizeof(h), b->items, b->n_items * sizeof(*b->items));
	memcpy(buf + sizeof(nh) + sizeof(h) + b->n_items * sizeof(*b->items), b->strings, b->n_strings);
	{
		/* What readers will check, checked here first. */
		struct luo_typedesc check = { 0 };
		char reason[256];

		if (luo_typedesc_parse(buf + sizeof(nh), desc_len, "luo-describe", &check, reason, sizeof(reason)) <
		    0) {
			free(buf);
			return fail("internal error: the description of '%s' v%u does not read back: %s",
				    d->component, d->version, reason);
		}
		luo_typedesc_done(&check);
	}
	*ret = buf;
	*ret_len = len;
	*ret_digest = h.digest;
	return 0;
}

/* Every version a component can read must have a payload type. */
static int check_coverage(const struct binary *bin, const char *path)
{
	int ret = 0;

	for (size_t i = 0; i < bin->n_comps; i++) {
		const struct component_note *c = &bin->comps[i];

		if (c->kind != LUO_ABI_KIND_COMPONENT)
			continue;
		for (uint32_t v = c->read_min; v && v <= c->read_max && v - c->read_min < 4096; v++) {
			bool found = false;

			for (size_t j = 0; j < bin->n_types && !found; j++)
				found = bin->types[j].d.role == LUO_ABI_TYPE_PAYLOAD && bin->types[j].d.version == v &&
					strcmp(bin->types[j].d.component, c->name) == 0;
			if (!found)
				ret = fail("%s: component '%s' reads version %u, which has no LUO_PAYLOAD_TYPE()", path,
					   c->name, v);
		}
	}
	return ret;
}

static int run(char *const argv[])
{
	pid_t pid;
	int status, r;

	r = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);
	if (r != 0)
		return fail("cannot run %s: %s", argv[0], strerror(r));
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return fail("waitpid: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return fail("%s failed", argv[0]);
	return 0;
}

static int copy_file(const char *from, const char *to)
{
	_cleanup_close_ int in = -1, out = -1;
	struct stat st;
	char buf[65536];
	ssize_t n;

	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0 || fstat(in, &st) < 0)
		return fail("%s: %s", from, strerror(errno));
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 07777);
	if (out < 0)
		return fail("%s: %s", to, strerror(errno));
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			return fail("%s: %s", to, strerror(errno));
	if (n < 0)
		return fail("%s: %s", from, strerror(errno));
	return 0;
}

static int describe(const char *path, const char *output)
{
	_cleanup_free_ struct binary *bin = calloc(1, sizeof(*bin));
	_cleanup_free_ struct anchor *anchors = calloc(DESCRIBE_ANCHORS_MAX, sizeof(*anchors));
	_cleanup_free_ uint64_t *digests = NULL;
	_cleanup_close_ int fd = -1;
	struct builder b = { 0 };
	char tmp_out[4096], tmp_sec[4096];
	size_t n_anchors = 0;
	FILE *sec = NULL;
	int ret = -1;

	if (!bin || !anchors)
		return fail("out of memory");
	elf_version(EV_CURRENT);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail("%s: %s", path, strerror(errno));
	if (read_notes(fd, path, bin) < 0)
		return -1;
	if (check_coverage(bin, path) < 0)
		return -1;
	if (snprintf(tmp_out, sizeof(tmp_out), "%s.describe-tmp", output) >= (int)sizeof(tmp_out) ||
	    snprintf(tmp_sec, sizeof(tmp_sec), "%s.types-tmp", output) >= (int)sizeof(tmp_sec))
		return fail("%s: path too long", output);
	digests = calloc(bin->n_types + 1, sizeof(*digests));
	b.defs = calloc(DESCRIBE_DEFS_MAX, sizeof(*b.defs));
	if (!digests || !b.defs)
		return fail("out of memory");
	sec = fopen(tmp_sec, "we");
	if (!sec)
		return fail("%s: %s", tmp_sec, strerror(errno));
	if (bin->n_types) {
		b.dw = dwarf_begin(fd, DWARF_C_READ);
		if (!b.dw) {
			fail("%s: no debug information (%s): build it with -g, describe it, strip it after", path,
			     dwarf_errmsg(-1));
			goto out;
		}
		index_dwarf(&b, anchors, &n_anchors);
	}
	for (size_t i = 0; i < bin->n_types; i++) {
		const struct luo_abi_note_type *d = &bin->types[i].d;
		Dwarf_Die var, type, target;
		uint8_t *note = NULL;
		size_t len = 0;
		bool found = false;

		for (size_t a = 0; a < n_anchors && !found; a++)
			found = strcmp(anchors[a].name, d->anchor) == 0 && dwarf_offdie(b.dw, anchors[a].off, &var);
		if (!found) {
			fail("%s: no debug information for %s (the %s type of '%s' v%u): built without -g?", path,
			     d->anchor, luo_type_role_name(d->role), d->component, d->version);
			goto out;
		}
		/* static const T *const anchor: const, pointer, then T. */
		if (!die_type(&var, &type)) {
			fail("%s: %s has no type", path, d->anchor);
			goto out;
		}
		while (dwarf_tag(&type) == DW_TAG_const_type && die_type(&type, &type))
			;
		if (dwarf_tag(&type) != DW_TAG_pointer_type || !die_type(&type, &target)) {
			fail("%s: %s is not a pointer to the type", path, d->anchor);
			goto out;
		}
		while (dwarf_tag(&target) == DW_TAG_const_type && die_type(&target, &target))
			;
		if (describe_one(&b, &target, d, &note, &len, &digests[i]) < 0)
			goto out;
		if (fwrite(note, 1, len, sec) != len) {
			free(note);
			fail("%s: %s", tmp_sec, strerror(errno));
			goto out;
		}
		free(note);
	}
	if (fclose(sec) != 0) {
		sec = NULL;
		fail("%s: %s", tmp_sec, strerror(errno));
		goto out;
	}
	sec = NULL;
	if (copy_file(path, tmp_out) < 0)
		goto out;
	{
		_cleanup_close_ int wfd = open(tmp_out, O_WRONLY | O_CLOEXEC);

		if (wfd < 0) {
			fail("%s: %s", tmp_out, strerror(errno));
			goto out;
		}
		for (size_t i = 0; i < bin->n_types; i++)
			if (pwrite(wfd, &digests[i], sizeof(digests[i]), (off_t)bin->types[i].digest_file_off) !=
			    sizeof(digests[i])) {
				fail("%s: %s", tmp_out, strerror(errno));
				goto out;
			}
	}
	{
		char add[4200];
		char *argv_update[] = { "objcopy", "--update-section", add, tmp_out, NULL };
		char *argv_add[] = { "objcopy", "--add-section", add, "--set-section-flags",
				     LUO_ABI_TYPES_SECTION "=readonly,contents", "--set-section-alignment",
				     LUO_ABI_TYPES_SECTION "=4", tmp_out, NULL };

		snprintf(add, sizeof(add), "%s=%s", LUO_ABI_TYPES_SECTION, tmp_sec);
		if (bin->n_types && run(bin->has_types_section ? argv_update : argv_add) < 0)
			goto out;
	}
	if (rename(tmp_out, output) < 0) {
		fail("%s: %s", output, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (sec)
		fclose(sec);
	unlink(tmp_sec);
	if (ret < 0)
		unlink(tmp_out);
	if (b.dw)
		dwarf_end(b.dw);
	free(b.items);
	free(b.die_of);
	free(b.strings);
	free(b.defs);
	return ret;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: %s [--output OUT] BINARY\n"
		   "Describe, from BINARY's debug information, every type it declares with\n"
		   "LUO_PAYLOAD_TYPE(), LUO_ARENA_TYPE() or LUO_HANDLER_DATA_TYPE(), into its\n"
		   "section %s and its .note.luo; write the result to OUT (default: BINARY).\n"
		   "Run it after linking, before stripping. See luo-describe(1).\n",
		prog, LUO_ABI_TYPES_SECTION);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *output = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			output = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	return describe(argv[optind], output ? output : argv[optind]) < 0 ? 1 : 0;
}
