/* SPDX-License-Identifier: MIT */
/*
 * DOC: reading manifests, hostile input
 *
 * The notes parser (luo_manifest_add_notes) is shared by the three readers
 * of manifest.h: a binary on disk (libelf), a running process (its
 * /proc/PID/exe and mapped ELF files) and this process (its PT_NOTE
 * segments in memory). The note walk checks every header against the bytes
 * left before it reads a name or a description; a LUO note must have the
 * exact size of its record; its strings must be terminated, non-empty,
 * printable and zero-padded; its ranges valid; a layout's fields inside
 * the struct, ordered slots, no overlap, no name twice. Counts are checked
 * against the LUO_MANIFEST_*_MAX limits before anything grows.
 *
 * libelf is only asked for the ELF header, section headers, a section's raw
 * bytes and strings; it checks that these lie inside the file. ELF files of
 * another class or byte order than this machine's are refused (-ENOEXEC):
 * records are in the host's byte order, and the images meant to exchange
 * state run on the same machine.
 */

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <glob.h>
#include <libelf.h>
#include <link.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "format.h"
#include "manifest.h"

#define refuse(reason, rlen, ...)                                              \
	({                                                                     \
		luo_reasonf((reason), (rlen), __VA_ARGS__);                    \
		-EBADMSG;                                                      \
	})

/* ------------------------------------------------------------------------ */
/* The manifest object                                                       */

int luo_manifest_new(struct luo_manifest **ret)
{
	struct luo_manifest *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	*ret = m;
	return 0;
}

void luo_manifest_free(struct luo_manifest *m)
{
	if (!m)
		return;
	free(m->entries);
	free(m->layouts);
	for (size_t i = 0; i < m->n_types; i++)
		luo_typedesc_done(&m->types[i].desc);
	free(m->types);
	free(m);
}

const char *luo_kind_name(uint32_t kind)
{
	switch (kind) {
	case LUO_ABI_KIND_COMPONENT:
		return "component";
	case LUO_ABI_KIND_HANDLER:
		return "handler";
	case LUO_ABI_KIND_FORMAT:
		return "format";
	}
	return "unknown";
}

const struct luo_manifest_entry *luo_manifest_find(const struct luo_manifest *m, uint32_t kind, const char *name)
{
	for (size_t i = 0; i < m->n_entries; i++)
		if (m->entries[i].kind == kind && strcmp(m->entries[i].name, name) == 0)
			return &m->entries[i];
	return NULL;
}

const struct luo_manifest_layout *luo_manifest_find_layout(const struct luo_manifest *m, const char *component,
							   uint32_t version)
{
	for (size_t i = 0; i < m->n_layouts; i++)
		if (m->layouts[i].version == version && strcmp(m->layouts[i].component, component) == 0)
			return &m->layouts[i];
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Checking records                                                          */

/*
 * A string in a fixed array: 1..size-1 bytes in [lo, 0x7e], NUL-terminated,
 * zero-padded to the end of the array.
 */
static bool fixed_string_ok(const char *s, size_t size, unsigned char lo)
{
	size_t len = strnlen(s, size);

	if (len == 0 || len >= size)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < lo || (unsigned char)s[i] > 0x7e)
			return false;
	for (size_t i = len; i < size; i++)
		if (s[i] != '\0')
			return false;
	return true;
}

static bool ranges_ok(struct luo_version_range rd, struct luo_version_range wr)
{
	return rd.min >= 1 && rd.min <= rd.max && rd.min <= wr.min && wr.min <= wr.max && wr.max <= rd.max;
}

static int check_entry(const struct luo_manifest_entry *e, const char *origin, char *reason, size_t rlen)
{
	if (!fixed_string_ok(e->name, sizeof(e->name), 0x21))
		return refuse(reason, rlen, "%s: a manifest entry has a name that is empty, unterminated, not printable "
			      "or not zero-padded", origin);
	switch (e->kind) {
	case LUO_ABI_KIND_COMPONENT:
		if (e->flags & ~LUO_ABI_FLAG_OPTIONAL)
			return refuse(reason, rlen, "%s: component '%s' has unknown flags 0x%x", origin, e->name,
				      e->flags);
		break;
	case LUO_ABI_KIND_HANDLER:
	case LUO_ABI_KIND_FORMAT:
		if (e->flags)
			return refuse(reason, rlen, "%s: %s '%s' has flags 0x%x (it is always mandatory)", origin,
				      luo_kind_name(e->kind), e->name, e->flags);
		if (e->kind == LUO_ABI_KIND_HANDLER && strlen(e->name) > LUO_HANDLER_NAME_MAX)
			return refuse(reason, rlen, "%s: handler name '%s' is longer than %d bytes", origin, e->name,
				      LUO_HANDLER_NAME_MAX);
		break;
	default:
		return refuse(reason, rlen, "%s: '%s' has unknown kind %u", origin, e->name, e->kind);
	}
	if (!ranges_ok(e->read, e->write))
		return refuse(reason, rlen,
			      "%s: %s '%s' has invalid ranges read %u..%u write %u..%u "
			      "(need 1 <= read_min <= write_min <= write_max <= read_max)",
			      origin, luo_kind_name(e->kind), e->name, e->read.min, e->read.max, e->write.min,
			      e->write.max);
	return 0;
}

int luo_manifest_add_entry(struct luo_manifest *m, const struct luo_manifest_entry *e, const char *origin,
			   char *reason, size_t rlen)
{
	const struct luo_manifest_entry *old;
	struct luo_manifest_entry *grown;
	int r;

	r = check_entry(e, origin, reason, rlen);
	if (r < 0)
		return r;
	old = luo_manifest_find(m, e->kind, e->name);
	if (old) {
		if (memcmp(old, e, sizeof(*e)) == 0)
			return 0; /* the same declaration seen twice */
		return refuse(reason, rlen, "%s: %s '%s' is declared twice with different ranges or flags", origin,
			      luo_kind_name(e->kind), e->name);
	}
	if (m->n_entries >= LUO_MANIFEST_ENTRIES_MAX)
		return refuse(reason, rlen, "%s: more than %d manifest entries", origin, LUO_MANIFEST_ENTRIES_MAX);
	grown = realloc(m->entries, (m->n_entries + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	m->entries = grown;
	m->entries[m->n_entries++] = *e;
	return 0;
}

static int cmp_field(const void *a, const void *b)
{
	const struct luo_abi_note_field *x = a, *y = b;

	if (x->offset != y->offset)
		return (x->offset > y->offset) - (x->offset < y->offset);
	return strcmp(x->name, y->name);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static uint64_t fnv_u32(uint64_t h, uint32_t v)
{
	unsigned char le[4] = { v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24 };

	return fnv(h, le, sizeof(le));
}

uint64_t luo_layout_fingerprint(const struct luo_manifest_layout *l)
{
	struct luo_abi_note_field sorted[LUO_ABI_LAYOUT_FIELDS_MAX];
	uint32_t n = l->n_fields <= LUO_ABI_LAYOUT_FIELDS_MAX ? l->n_fields : LUO_ABI_LAYOUT_FIELDS_MAX;
	uint64_t h = 0xcbf29ce484222325ull;

	memcpy(sorted, l->fields, n * sizeof(sorted[0]));
	qsort(sorted, n, sizeof(sorted[0]), cmp_field);
	h = fnv_u32(h, l->struct_size);
	for (uint32_t i = 0; i < n; i++) {
		h = fnv(h, sorted[i].name, strnlen(sorted[i].name, sizeof(sorted[i].name)) + 1);
		h = fnv(h, sorted[i].type, strnlen(sorted[i].type, sizeof(sorted[i].type)) + 1);
		h = fnv_u32(h, sorted[i].offset);
		h = fnv_u32(h, sorted[i].size);
	}
	return h;
}

static bool all_zero(const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

static int add_layout(struct luo_manifest *m, const struct luo_abi_note_layout *d, const char *origin, char *reason,
		      size_t rlen)
{
	struct luo_manifest_layout l = { 0 };
	struct luo_abi_note_field sorted[LUO_ABI_LAYOUT_FIELDS_MAX];
	const struct luo_manifest_layout *old;
	struct luo_manifest_layout *grown;
	uint32_t n = 0;

	if (!fixed_string_ok(d->component, sizeof(d->component), 0x21))
		return refuse(reason, rlen, "%s: a layout names its component badly (empty, unterminated, not printable "
			      "or not zero-padded)", origin);
	if (d->version == 0 || d->struct_size == 0 || d->struct_size > LUO_COMPONENT_DATA_MAX)
		return refuse(reason, rlen, "%s: layout of '%s': version %u or struct size %u out of range", origin,
			      d->component, d->version, d->struct_size);
	for (; n < LUO_ABI_LAYOUT_FIELDS_MAX && d->fields[n].name[0]; n++) {
		const struct luo_abi_note_field *f = &d->fields[n];

		if (!fixed_string_ok(f->name, sizeof(f->name), 0x21) || !fixed_string_ok(f->type, sizeof(f->type), 0x20))
			return refuse(reason, rlen, "%s: layout of '%s' v%u: field %u has a bad name or type", origin,
				      d->component, d->version, n);
		if (f->size == 0 || (uint64_t)f->offset + f->size > d->struct_size)
			return refuse(reason, rlen, "%s: layout of '%s' v%u: field '%s' (offset %u, size %u) is "
				      "outside the %u-byte struct", origin, d->component, d->version, f->name, f->offset,
				      f->size, d->struct_size);
	}
	if (n == 0)
		return refuse(reason, rlen, "%s: layout of '%s' v%u has no fields", origin, d->component, d->version);
	if (!all_zero(&d->fields[n], (LUO_ABI_LAYOUT_FIELDS_MAX - n) * sizeof(d->fields[0])))
		return refuse(reason, rlen, "%s: layout of '%s' v%u: unused field slots after slot %u are not zero",
			      origin, d->component, d->version, n);
	memcpy(sorted, d->fields, n * sizeof(sorted[0]));
	qsort(sorted, n, sizeof(sorted[0]), cmp_field);
	for (uint32_t i = 1; i < n; i++) {
		if (sorted[i - 1].offset + sorted[i - 1].size > sorted[i].offset)
			return refuse(reason, rlen, "%s: layout of '%s' v%u: fields '%s' and '%s' overlap", origin,
				      d->component, d->version, sorted[i - 1].name, sorted[i].name);
	}
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t j = i + 1; j < n; j++)
			if (strcmp(d->fields[i].name, d->fields[j].name) == 0)
				return refuse(reason, rlen, "%s: layout of '%s' v%u names field '%s' twice", origin,
					      d->component, d->version, d->fields[i].name);

	memcpy(l.component, d->component, sizeof(l.component));
	l.version = d->version;
	l.struct_size = d->struct_size;
	l.n_fields = n;
	memcpy(l.fields, d->fields, n * sizeof(l.fields[0]));
	l.fingerprint = luo_layout_fingerprint(&l);

	old = luo_manifest_find_layout(m, l.component, l.version);
	if (old) {
		if (old->fingerprint == l.fingerprint && old->struct_size == l.struct_size)
			return 0;
		return refuse(reason, rlen, "%s: two different layouts of '%s' version %u", origin, l.component,
			      l.version);
	}
	if (m->n_layouts >= LUO_MANIFEST_LAYOUTS_MAX)
		return refuse(reason, rlen, "%s: more than %d layouts", origin, LUO_MANIFEST_LAYOUTS_MAX);
	grown = realloc(m->layouts, (m->n_layouts + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	m->layouts = grown;
	m->layouts[m->n_layouts++] = l;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* The notes walk                                                            */


static size_t pad(size_t v, size_t align)
{
	return (v + align - 1) & ~(align - 1);
}

/*
 * The next note at *@off of @buf: 1 found, 0 end, -EBADMSG malformed. All
 * arithmetic is on sizes already checked against the bytes left.
 */
int luo_note_next(const uint8_t *buf, size_t len, size_t align, size_t *off, struct luo_note *ret)
{
	uint32_t hdr[3];
	size_t left, desc_off, next;

	if (*off >= len)
		return 0;
	left = len - *off;
	if (left < sizeof(hdr))
		return -EBADMSG;
	memcpy(hdr, buf + *off, sizeof(hdr));
	/*
	 * As glibc and binutils lay notes out: the owner right after the
	 * header, the description at the next @align boundary after it, the
	 * next note at the next boundary after that. Offsets from the note.
	 */
	if (hdr[0] > left - sizeof(hdr))
		return -EBADMSG;
	desc_off = pad(sizeof(hdr) + hdr[0], align);
	if (desc_off > left || hdr[1] > left - desc_off)
		return -EBADMSG;
	next = pad(desc_off + hdr[1], align);
	if (next > left)
		next = left; /* the last note's padding may be cut: its bytes are all there */
	ret->namesz = hdr[0];
	ret->descsz = hdr[1];
	ret->type = hdr[2];
	ret->owner = (const char *)buf + *off + sizeof(hdr);
	ret->desc = buf + *off + desc_off;
	*off += next;
	return 1;
}

bool luo_note_is_owner(const struct luo_note *n, const char *owner)
{
	size_t len = strlen(owner) + 1;

	return n->namesz == len && memcmp(n->owner, owner, len) == 0;
}

static int add_luo_note(struct luo_manifest *m, const struct luo_note *n, const char *origin, char *reason, size_t rlen)
{
	switch (n->type) {
	case LUO_ABI_NOTE_COMPONENT: {
		struct luo_abi_note_component d;
		struct luo_manifest_entry e = { 0 };

		if (n->descsz != sizeof(d))
			return refuse(reason, rlen, "%s: a component note of %u bytes, expected %zu", origin, n->descsz,
				      sizeof(d));
		memcpy(&d, n->desc, sizeof(d));
		memcpy(e.name, d.name, sizeof(e.name));
		e.kind = d.kind;
		e.flags = d.flags;
		e.read = (struct luo_version_range){ d.read_min, d.read_max };
		e.write = (struct luo_version_range){ d.write_min, d.write_max };
		return luo_manifest_add_entry(m, &e, origin, reason, rlen);
	}
	case LUO_ABI_NOTE_LAYOUT: {
		_cleanup_free_ struct luo_abi_note_layout *d = NULL;

		if (n->descsz != sizeof(*d))
			return refuse(reason, rlen, "%s: a layout note of %u bytes, expected %zu", origin, n->descsz,
				      sizeof(*d));
		d = malloc(sizeof(*d));
		if (!d)
			return -ENOMEM;
		memcpy(d, n->desc, sizeof(*d));
		return add_layout(m, d, origin, reason, rlen);
	}
	case LUO_ABI_NOTE_TYPE: {
		struct luo_abi_note_type d;

		if (n->descsz != sizeof(d))
			return refuse(reason, rlen, "%s: a type note of %u bytes, expected %zu", origin, n->descsz,
				      sizeof(d));
		memcpy(&d, n->desc, sizeof(d));
		return luo_manifest_add_type(m, &d, origin, reason, rlen);
	}
	}
	return refuse(reason, rlen, "%s: a LUO note of unknown type %u", origin, n->type);
}

int luo_manifest_add_notes(struct luo_manifest *m, const void *buf, size_t len, size_t align, bool strict,
			   const char *origin, char *reason, size_t rlen)
{
	size_t off = 0;
	struct luo_note n;
	int r;

	if (align != 4 && align != 8)
		return refuse(reason, rlen, "%s: notes aligned to %zu bytes (4 or 8 expected)", origin, align);
	if (len > LUO_MANIFEST_NOTES_BYTES_MAX)
		return refuse(reason, rlen, "%s: %zu bytes of notes, more than %u", origin, len,
			      LUO_MANIFEST_NOTES_BYTES_MAX);
	while ((r = luo_note_next(buf, len, align, &off, &n)) > 0) {
		if (!luo_note_is_owner(&n, LUO_ABI_NOTE_OWNER)) {
			if (strict)
				return refuse(reason, rlen, "%s: a note of another owner in %s", origin,
					      LUO_ABI_NOTE_SECTION);
			continue;
		}
		r = add_luo_note(m, &n, origin, reason, rlen);
		if (r < 0)
			return r;
	}
	if (r < 0 && strict)
		return refuse(reason, rlen, "%s: a note at offset %zu runs past the end of its %zu bytes", origin, off,
			      len);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* ELF files                                                                 */

static pthread_once_t elf_once = PTHREAD_ONCE_INIT;
static bool elf_usable;

static void elf_init(void)
{
	elf_usable = elf_version(EV_CURRENT) != EV_NONE;
}

static void elf_endp(Elf **e)
{
	if (*e)
		elf_end(*e);
}

/* What one ELF object says beyond its notes. */
#if defined(__x86_64__)
#define ELF_MACHINE_HOST EM_X86_64
#elif defined(__aarch64__)
#define ELF_MACHINE_HOST EM_AARCH64
#elif defined(__i386__)
#define ELF_MACHINE_HOST EM_386
#else
#define ELF_MACHINE_HOST EM_NONE /* not checked */
#endif

struct elf_object {
	char needed[LUO_MANIFEST_OBJECTS_MAX][NAME_MAX + 1];
	size_t n_needed;
	size_t n_dropped;                   /* DT_NEEDED not followed: a path, too long, too many */
	char dropped_first[NAME_MAX + 1];
	char runpath[PATH_MAX];
	char rpath[PATH_MAX];
};

static int read_dynamic(Elf *e, Elf_Scn *scn, const GElf_Shdr *sh, struct elf_object *obj)
{
	Elf_Data *data = elf_getdata(scn, NULL);
	size_t n;

	if (!data || sh->sh_entsize == 0)
		return 0; /* nothing usable: no libraries to follow */
	n = sh->sh_size / sh->sh_entsize;
	for (size_t i = 0; i < n && i < 65536; i++) {
		GElf_Dyn dyn;
		const char *s;

		if (!gelf_getdyn(data, (int)i, &dyn) || dyn.d_tag == DT_NULL)
			break;
		if (dyn.d_tag != DT_NEEDED && dyn.d_tag != DT_RUNPATH && dyn.d_tag != DT_RPATH)
			continue;
		s = elf_strptr(e, sh->sh_link, dyn.d_un.d_val);
		if (!s)
			continue;
		if (dyn.d_tag == DT_NEEDED) {
			if (obj->n_needed < LUO_MANIFEST_OBJECTS_MAX && strlen(s) <= NAME_MAX && strchr(s, '/') == NULL)
				strcpy(obj->needed[obj->n_needed++], s);
			else if (obj->n_dropped++ == 0)
				snprintf(obj->dropped_first, sizeof(obj->dropped_first), "%.*s", NAME_MAX, s);
		} else if (strlen(s) < PATH_MAX) {
			strcpy(dyn.d_tag == DT_RUNPATH ? obj->runpath : obj->rpath, s);
		}
	}
	return 0;
}

static void find_build_id(const void *buf, size_t len, size_t align, struct luo_manifest *m)
{
	size_t off = 0;
	struct luo_note n;

	while (luo_note_next(buf, len, align, &off, &n) > 0) {
		if (n.type == NT_GNU_BUILD_ID && luo_note_is_owner(&n, "GNU") && n.descsz <= sizeof(m->build_id)) {
			memcpy(m->build_id, n.desc, n.descsz);
			m->build_id_len = n.descsz;
			return;
		}
	}
}

/*
 * Read one ELF object's .note.luo sections into @m; with @obj, also its
 * DT_NEEDED / RUNPATH / RPATH; with @want_build_id, its GNU build-id.
 */
static int read_object(int fd, const char *origin, struct luo_manifest *m, struct elf_object *obj,
		       bool want_build_id, char *reason, size_t rlen)
{
	_cleanup_(elf_endp) Elf *e = NULL;
	const unsigned char *ident;
	size_t shstrndx, shnum, n_ident, notes_bytes = 0, n_scn = 0;
	uint64_t file_size;
	struct stat st;
	GElf_Ehdr eh;
	GElf_Shdr types_sh = { 0 };
	Elf_Scn *scn = NULL, *types_scn = NULL;
	int r;

	if (fstat(fd, &st) < 0)
		return -errno;
	file_size = (uint64_t)st.st_size;
	pthread_once(&elf_once, elf_init);
	if (!elf_usable)
		return refuse(reason, rlen, "libelf does not support this ELF version");
	e = elf_begin(fd, ELF_C_READ, NULL);
	if (!e || elf_kind(e) != ELF_K_ELF) {
		luo_reasonf(reason, rlen, "%s: not an ELF file", origin);
		return -ENOEXEC;
	}
	ident = (const unsigned char *)elf_getident(e, &n_ident);
	if (!ident || n_ident < EI_NIDENT || ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) ||
	    ident[EI_DATA] != (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB : ELFDATA2MSB)) {
		luo_reasonf(reason, rlen, "%s: an ELF file of another class or byte order than this machine's", origin);
		return -ENOEXEC;
	}
	/*
	 * libelf drops a section header table that lies outside the file and
	 * does not check the string table's index: check both, or a cut or
	 * damaged file would read as a binary that declares nothing.
	 */
	if (!gelf_getehdr(e, &eh) || elf_getshdrnum(e, &shnum) != 0 || elf_getshdrstrndx(e, &shstrndx) != 0)
		return refuse(reason, rlen, "%s: unreadable ELF or section header table: %s", origin, elf_errmsg(-1));
	if (ELF_MACHINE_HOST != EM_NONE && eh.e_machine != ELF_MACHINE_HOST) {
		luo_reasonf(reason, rlen, "%s: an ELF file for another machine (e_machine %u)", origin, eh.e_machine);
		return -ENOEXEC;
	}
	if (eh.e_shoff == 0 || shnum == 0)
		return refuse(reason, rlen, "%s: no section header table: the manifest cannot be read", origin);
	if (eh.e_shentsize != sizeof(ElfW(Shdr)) || eh.e_shoff > file_size ||
	    (uint64_t)shnum * eh.e_shentsize > file_size - eh.e_shoff || (eh.e_shnum != 0 && eh.e_shnum != shnum))
		return refuse(reason, rlen, "%s: the section header table lies outside the file", origin);
	if (shstrndx == SHN_UNDEF || shstrndx >= shnum)
		return refuse(reason, rlen, "%s: section name table index %zu out of range", origin, shstrndx);
	while ((scn = elf_nextscn(e, scn)) != NULL) {
		GElf_Shdr sh;
		const char *name;
		Elf_Data *data;

		if (++n_scn > LUO_MANIFEST_SECTIONS_MAX)
			return refuse(reason, rlen, "%s: more than %d sections", origin, LUO_MANIFEST_SECTIONS_MAX);
		if (!gelf_getshdr(scn, &sh))
			return refuse(reason, rlen, "%s: unreadable section header: %s", origin, elf_errmsg(-1));
		name = elf_strptr(e, shstrndx, sh.sh_name);
		if (sh.sh_type == SHT_DYNAMIC && obj && !(name && strcmp(name, LUO_ABI_NOTE_SECTION) == 0)) {
			read_dynamic(e, scn, &sh, obj);
			continue;
		}
		if (sh.sh_type == SHT_NOTE && want_build_id && m->build_id_len == 0 && name &&
		    strcmp(name, ".note.gnu.build-id") == 0) {
			data = elf_rawdata(scn, NULL);
			if (data && data->d_buf)
				find_build_id(data->d_buf, data->d_size, sh.sh_addralign == 8 ? 8 : 4, m);
			continue;
		}
		if (name && strcmp(name, LUO_ABI_TYPES_SECTION) == 0) {
			types_scn = scn;
			types_sh = sh;
			continue;
		}
		if (!name || strcmp(name, LUO_ABI_NOTE_SECTION) != 0)
			continue;
		if (sh.sh_type != SHT_NOTE)
			return refuse(reason, rlen, "%s: section %s is not of type SHT_NOTE", origin,
				      LUO_ABI_NOTE_SECTION);
		if (sh.sh_size > LUO_MANIFEST_NOTES_BYTES_MAX - notes_bytes)
			return refuse(reason, rlen, "%s: more than %u bytes of %s", origin,
				      LUO_MANIFEST_NOTES_BYTES_MAX, LUO_ABI_NOTE_SECTION);
		notes_bytes += sh.sh_size;
		data = elf_rawdata(scn, NULL);
		if (!data || (sh.sh_size > 0 && (!data->d_buf || data->d_size != sh.sh_size)))
			return refuse(reason, rlen, "%s: section %s lies outside the file", origin,
				      LUO_ABI_NOTE_SECTION);
		r = luo_manifest_add_notes(m, data->d_buf, data->d_size, sh.sh_addralign == 8 ? 8 : 4, true, origin,
					   reason, rlen);
		if (r < 0)
			return r;
	}
	/* After the notes: each description is matched to its type note. */
	if (types_scn) {
		Elf_Data *data;

		if (types_sh.sh_type != SHT_NOTE)
			return refuse(reason, rlen, "%s: section %s is not of type SHT_NOTE", origin,
				      LUO_ABI_TYPES_SECTION);
		if (types_sh.sh_size > LUO_MANIFEST_NOTES_BYTES_MAX)
			return refuse(reason, rlen, "%s: more than %u bytes of %s", origin,
				      LUO_MANIFEST_NOTES_BYTES_MAX, LUO_ABI_TYPES_SECTION);
		data = elf_rawdata(types_scn, NULL);
		if (!data || (types_sh.sh_size > 0 && (!data->d_buf || data->d_size != types_sh.sh_size)))
			return refuse(reason, rlen, "%s: section %s lies outside the file", origin,
				      LUO_ABI_TYPES_SECTION);
		r = luo_manifest_add_descriptions(m, data->d_buf, data->d_size, 4, origin, reason, rlen);
		if (r < 0)
			return r;
	}
	m->n_objects++;
	return 0;
}

/* Forget the reason of a failure that was skipped. */
static void reason_clear(char *reason, size_t rlen)
{
	if (reason && rlen > 0)
		reason[0] = '\0';
}

static int open_elf(const char *path, char *reason, size_t rlen)
{
	char proc[64];
	struct stat st;
	/*
	 * O_PATH first: a path from a hostile binary (RUNPATH /dev) must not
	 * open a device, whose open alone can act (a watchdog). Only a regular
	 * file is then opened for reading, through the same inode.
	 */
	int pfd = open(path, O_PATH | O_CLOEXEC), fd;

	if (pfd < 0) {
		int err = errno;

		luo_reasonf(reason, rlen, "%s: %s", path, strerror(err));
		return -err;
	}
	if (fstat(pfd, &st) < 0)
		st.st_mode = 0;
	if (!S_ISREG(st.st_mode)) {
		int err = S_ISDIR(st.st_mode) ? EISDIR : ENOEXEC;

		safe_close(pfd);
		luo_reasonf(reason, rlen, "%s: not a regular file", path);
		return -err;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	fd = open(proc, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	safe_close(pfd);

	if (fd < 0) {
		int err = errno;

		luo_reasonf(reason, rlen, "%s: %s", path, strerror(err));
		return -err;
	}
	if (fstat(fd, &st) < 0) {
		int err = errno;

		safe_close(fd);
		luo_reasonf(reason, rlen, "%s: %s", path, strerror(err));
		return -err;
	}
	if (!S_ISREG(st.st_mode)) {
		safe_close(fd);
		luo_reasonf(reason, rlen, "%s: not a regular file", path);
		return S_ISDIR(st.st_mode) ? -EISDIR : -ENOEXEC;
	}
	return fd;
}

#if defined(__x86_64__)
#define MULTIARCH "x86_64-linux-gnu"
#elif defined(__aarch64__)
#define MULTIARCH "aarch64-linux-gnu"
#elif defined(__i386__)
#define MULTIARCH "i386-linux-gnu"
#else
#define MULTIARCH ""
#endif

/* ld.so's trusted directories, on multiarch (Debian) and lib64 systems. */
static const char *const default_dirs[] = {
	"/lib/" MULTIARCH, "/usr/lib/" MULTIARCH, "/lib64", "/usr/lib64", "/lib", "/usr/lib",
};

/* Bytes of directory list read from ld.so.conf and its includes. */
#define LDSO_CONF_BYTES_MAX 65536
/* Files of ld.so.conf and its includes read, in all. */
#define LDSO_CONF_FILES_MAX 64

/* Append the directories one ld.so.conf file lists to @list (colon-separated). */
static void ldso_conf_read(const char *path, char *list, size_t cap, int depth, int *files_left)
{
	char line[PATH_MAX + 16];
	FILE *f;

	if (depth > 2 || *files_left <= 0)
		return;
	--*files_left; /* a budget for the whole tree: include cycles end too */
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *p = line + strspn(line, " \t"), *end;

		if (!strchr(line, '\n') && !feof(f)) {
			/* Longer than any path: skip the rest of it. */
			int c;

			while ((c = fgetc(f)) != EOF && c != '\n')
				;
			continue;
		}
		end = p + strcspn(p, "#\n");
		while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		*end = '\0';
		if (strncmp(p, "include", 7) == 0 && (p[7] == ' ' || p[7] == '\t')) {
			glob_t g;

			p += 8 + strspn(p + 8, " \t");
			if (glob(p, 0, NULL, &g) == 0) {
				for (size_t i = 0; i < g.gl_pathc && *files_left > 0; i++)
					ldso_conf_read(g.gl_pathv[i], list, cap, depth + 1, files_left);
				globfree(&g);
			}
		} else if (p[0] == '/' && strlen(list) + strlen(p) + 2 < cap) {
			if (list[0])
				strcat(list, ":");
			strcat(list, p);
		}
	}
	fclose(f);
}

/* Try @name in each directory of the colon-separated @list; 1 found. */
static int try_dirs(const char *list, const char *origin_dir, const char *name, struct luo_manifest *m, char *reason,
		    size_t rlen)
{
	const char *p = list;

	while (p && *p) {
		const char *end = strchrnul(p, ':');
		char dir[PATH_MAX], path[PATH_MAX];
		size_t dlen = (size_t)(end - p);
		const char *rest = NULL;

		if (dlen > 0 && dlen < sizeof(dir)) {
			memcpy(dir, p, dlen);
			dir[dlen] = '\0';
			if (strncmp(dir, "$ORIGIN", 7) == 0)
				rest = dir + 7;
			else if (strncmp(dir, "${ORIGIN}", 9) == 0)
				rest = dir + 9;
			if (rest && snprintf(path, sizeof(path), "%s%s/%s", origin_dir, rest, name) >= (int)sizeof(path))
				path[0] = '\0';
			else if (!rest && (strchr(dir, '$') ||
					   snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)))
				path[0] = '\0';
			if (path[0]) {
				int fd = open_elf(path, reason, rlen), r;

				if (fd >= 0) {
					r = read_object(fd, path, m, NULL, false, reason, rlen);
					safe_close(fd);
					if (r != -ENOEXEC)
						return r < 0 ? r : 1;
				}
				reason_clear(reason, rlen); /* a candidate skipped, as ld.so skips it */
			}
		}
		p = *end ? end + 1 : end;
	}
	return 0;
}

int luo_manifest_read_file(const char *path, struct luo_manifest **ret, char *reason, size_t rlen)
{
	_cleanup_(luo_manifest_freep) struct luo_manifest *m = NULL;
	_cleanup_free_ struct elf_object *obj = NULL;
	_cleanup_free_ char *ldso_dirs = NULL;
	_cleanup_close_ int fd = -1;
	char origin_dir[PATH_MAX];
	int r;

	if (!path || !ret)
		return -EINVAL;
	r = luo_manifest_new(&m);
	if (r < 0)
		return r;
	obj = calloc(1, sizeof(*obj));
	if (!obj)
		return -ENOMEM;
	fd = open_elf(path, reason, rlen);
	if (fd < 0)
		return fd;
	r = read_object(fd, path, m, obj, true, reason, rlen);
	if (r < 0)
		return r;
	/* $ORIGIN: the directory of the binary, symlinks resolved as ld.so does. */
	if (!realpath(path, origin_dir))
		snprintf(origin_dir, sizeof(origin_dir), "%s", path);
	{
		char *slash = strrchr(origin_dir, '/');

		if (slash == origin_dir)
			slash[1] = '\0';
		else if (slash)
			*slash = '\0';
		else
			strcpy(origin_dir, ".");
	}

	/* Not followed: said as unresolved, so that luoctl warns. */
	m->n_unresolved += obj->n_dropped;
	if (obj->n_dropped)
		snprintf(m->unresolved_first, sizeof(m->unresolved_first), "%s", obj->dropped_first);
	for (size_t i = 0; i < obj->n_needed; i++) {
		const char *name = obj->needed[i];

		r = 0;
		if (obj->rpath[0] && !obj->runpath[0])
			r = try_dirs(obj->rpath, origin_dir, name, m, reason, rlen);
		if (r == 0)
			r = try_dirs(luo_getenv("LD_LIBRARY_PATH"), origin_dir, name, m, reason, rlen);
		if (r == 0 && obj->runpath[0])
			r = try_dirs(obj->runpath, origin_dir, name, m, reason, rlen);
		if (r == 0) {
			/* What ld.so.cache is built from, then the trusted directories. */
			if (!ldso_dirs) {
				ldso_dirs = calloc(1, LDSO_CONF_BYTES_MAX);
				if (!ldso_dirs)
					return -ENOMEM;
				int files_left = LDSO_CONF_FILES_MAX;

				ldso_conf_read("/etc/ld.so.conf", ldso_dirs, LDSO_CONF_BYTES_MAX, 0, &files_left);
			}
			r = try_dirs(ldso_dirs, origin_dir, name, m, reason, rlen);
		}
		for (size_t d = 0; r == 0 && d < ARRAY_SIZE(default_dirs); d++)
			r = try_dirs(default_dirs[d], origin_dir, name, m, reason, rlen);
		if (r < 0)
			return r;
		if (r == 0 && m->n_unresolved++ == 0)
			snprintf(m->unresolved_first, sizeof(m->unresolved_first), "%s", name);
	}
	*ret = TAKE_PTR(m);
	return 0;
}

int luo_elf_build_id(const char *path, uint8_t *buf, size_t len, size_t *ret_len)
{
	_cleanup_close_ int fd = -1;
	char reason[LUO_REASON_MAX];

	fd = open_elf(path, reason, sizeof(reason));
	if (fd < 0)
		return fd;
	return luo_elf_build_id_fd(fd, buf, len, ret_len);
}

int luo_elf_build_id_fd(int fd, uint8_t *buf, size_t len, size_t *ret_len)
{
	_cleanup_(luo_manifest_freep) struct luo_manifest *m = NULL;
	char reason[LUO_REASON_MAX];
	struct stat st;
	int r;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -ENOEXEC;
	r = luo_manifest_new(&m);
	if (r < 0)
		return r;
	r = read_object(fd, "binary", m, NULL, true, reason, sizeof(reason));
	if (r < 0)
		return r;
	if (m->build_id_len == 0)
		return -ENODATA;
	if (m->build_id_len > len)
		return -ENOBUFS;
	memcpy(buf, m->build_id, m->build_id_len);
	*ret_len = m->build_id_len;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* A running process                                                         */

int luo_manifest_read_pid(pid_t pid, struct luo_manifest **ret, char *reason, size_t rlen)
{
	_cleanup_(luo_manifest_freep) struct luo_manifest *m = NULL;
	_cleanup_free_ char *line = NULL;
	size_t cap = 0, n_seen = 0;
	char path[64];
	struct stat exe_st;
	FILE *maps;
	int r, fd;

	if (pid <= 0 || !ret)
		return -EINVAL;
	r = luo_manifest_new(&m);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	fd = open_elf(path, reason, rlen);
	if (fd < 0)
		return fd;
	if (fstat(fd, &exe_st) < 0)
		exe_st.st_ino = 0;
	r = read_object(fd, path, m, NULL, true, reason, rlen);
	safe_close(fd);
	if (r < 0)
		return r;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	maps = fopen(path, "re");
	if (!maps) {
		r = -errno;
		luo_reasonf(reason, rlen, "%s: %s", path, strerror(-r));
		return r;
	}
	{
		dev_t seen_dev[LUO_MANIFEST_OBJECTS_MAX];
		ino_t seen_ino[LUO_MANIFEST_OBJECTS_MAX];

		while (r >= 0 && getline(&line, &cap, maps) > 0) {
			char *file = strchr(line, '/'), *nl, *sp = strchr(line, ' ');
			struct stat st;
			bool seen = false, code = sp && sp[1] && sp[2] && sp[3] == 'x';

			if (!file || !sp)
				continue;
			nl = strchr(file, '\n');
			if (nl)
				*nl = '\0';
			fd = open_elf(file, reason, rlen);
			if (fd < 0) {
				/* Replaced on disk ("(deleted)") or elsewhere: the mapping itself. */
				char mf[96];

				*sp = '\0';
				snprintf(mf, sizeof(mf), "/proc/%d/map_files/%.40s", (int)pid, line);
				fd = open_elf(mf, reason, rlen);
			}
			reason_clear(reason, rlen);
			if (fd < 0) {
				/* Code that cannot be read: say so, its notes are missing. */
				if (code && m->n_unresolved++ == 0)
					snprintf(m->unresolved_first, sizeof(m->unresolved_first), "%.200s", file);
				continue;
			}
			if (fstat(fd, &st) < 0 || (st.st_dev == exe_st.st_dev && st.st_ino == exe_st.st_ino)) {
				safe_close(fd);
				continue;
			}
			for (size_t i = 0; i < n_seen; i++)
				seen = seen || (seen_dev[i] == st.st_dev && seen_ino[i] == st.st_ino);
			if (seen || n_seen >= LUO_MANIFEST_OBJECTS_MAX) {
				safe_close(fd);
				continue;
			}
			seen_dev[n_seen] = st.st_dev;
			seen_ino[n_seen++] = st.st_ino;
			r = read_object(fd, file, m, NULL, false, reason, rlen);
			safe_close(fd);
			if (r == -ENOEXEC) {
				r = 0; /* a mapped data file */
				reason_clear(reason, rlen);
			}
		}
	}
	fclose(maps);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(m);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* This process                                                              */

struct self_walk {
	struct luo_manifest *m;
	char *reason;
	size_t rlen;
	int error;
};

static int self_object(struct dl_phdr_info *info, size_t size, void *data)
{
	struct self_walk *w = data;
	const char *origin = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : "this program";

	size_t n_types = w->m->n_types;

	(void)size;
	for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		int r;

		if (ph->p_type != PT_NOTE)
			continue;
		r = luo_manifest_add_notes(w->m, (const void *)(info->dlpi_addr + ph->p_vaddr), ph->p_memsz,
					   ph->p_align == 8 ? 8 : 4, false, origin, w->reason, w->rlen);
		if (r < 0) {
			w->error = r;
			return 1;
		}
	}
	/*
	 * The descriptions are not mapped: read them from the file the object
	 * came from (its inode, even if the path was replaced since). Without
	 * them negotiation still compares digests; it cannot name the member.
	 */
	if (w->m->n_types > n_types) {
		char ignored[LUO_REASON_MAX];

		if (luo_manifest_read_descriptions(w->m, info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name :
							 "/proc/self/exe", ignored, sizeof(ignored)) == -ENOMEM) {
			w->error = -ENOMEM;
			return 1;
		}
	}
	w->m->n_objects++;
	return 0;
}

int luo_manifest_read_self(struct luo_manifest **ret, char *reason, size_t rlen)
{
	_cleanup_(luo_manifest_freep) struct luo_manifest *m = NULL;
	struct self_walk w = { .reason = reason, .rlen = rlen };
	int r;

	r = luo_manifest_new(&m);
	if (r < 0)
		return r;
	w.m = m;
	dl_iterate_phdr(self_object, &w);
	if (w.error < 0)
		return w.error;
	luo_self_build_id(m->build_id, sizeof(m->build_id), &m->build_id_len);
	*ret = TAKE_PTR(m);
	return 0;
}

int luo_manifest_read_descriptions(struct luo_manifest *m, const char *path, char *reason, size_t rlen)
{
	_cleanup_(luo_manifest_freep) struct luo_manifest *file = NULL;
	_cleanup_close_ int fd = -1;
	int r;

	r = luo_manifest_new(&file);
	if (r < 0)
		return r;
	fd = open_elf(path, reason, rlen);
	if (fd < 0)
		return fd;
	r = read_object(fd, path, file, NULL, false, reason, rlen);
	if (r < 0)
		return r;
	for (size_t i = 0; i < m->n_types; i++) {
		struct luo_manifest_type *t = &m->types[i];

		for (size_t j = 0; !t->desc.items && t->digest && j < file->n_types; j++) {
			struct luo_manifest_type *f = &file->types[j];

			if (f->desc.items && f->digest == t->digest && f->version == t->version &&
			    f->role == t->role && strcmp(f->component, t->component) == 0) {
				t->desc = f->desc;
				f->desc.items = NULL;
				f->desc.strings = NULL;
			}
		}
	}
	return 0;
}
