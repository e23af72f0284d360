/* SPDX-License-Identifier: MIT */
/*
 * DOC: manifests from ELF files on disk, hostile input
 *
 * libelf is only asked for the ELF header, section headers, a section's raw
 * bytes and strings; it checks that these lie inside the file. ELF files of
 * another class or byte order than this machine's are refused (-ENOEXEC):
 * records are in the host's byte order, and the images meant to exchange
 * state run on the same machine. A path is opened O_PATH first, and only a
 * regular file is read (luo_elf_open()).
 */

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
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
#include "libelf-load.h"
#include "manifest.h"

static void elf_endp(Elf **e)
{
	if (*e) /* made by the table, so it is loaded */
		luo_libelf(NULL, 0)->end(*e);
}

/* The machine whose ELF files are read; others are -ENOEXEC. */
#if defined(__x86_64__)
#define ELF_MACHINE_HOST EM_X86_64
#elif defined(__aarch64__)
#define ELF_MACHINE_HOST EM_AARCH64
#elif defined(__i386__)
#define ELF_MACHINE_HOST EM_386
#else
#define ELF_MACHINE_HOST EM_NONE /* not checked */
#endif

static int read_dynamic(const struct luo_libelf *L, Elf *e, Elf_Scn *scn, const GElf_Shdr *sh,
			struct luo_elf_object *obj)
{
	Elf_Data *data = L->getdata(scn, NULL);
	size_t n;

	if (!data || sh->sh_entsize == 0)
		return 0; /* nothing usable: no libraries to follow */
	n = sh->sh_size / sh->sh_entsize;
	for (size_t i = 0; i < n && i < 65536; i++) {
		GElf_Dyn dyn;
		const char *s;

		if (!L->getdyn(data, (int)i, &dyn) || dyn.d_tag == DT_NULL)
			break;
		if (dyn.d_tag != DT_NEEDED && dyn.d_tag != DT_RUNPATH && dyn.d_tag != DT_RPATH)
			continue;
		s = L->strptr(e, sh->sh_link, dyn.d_un.d_val);
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
int luo_elf_read_object(int fd, const char *origin, struct luo_manifest *m, struct luo_elf_object *obj,
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
	const struct luo_libelf *L;
	int r;

	if (fstat(fd, &st) < 0)
		return -errno;
	file_size = (uint64_t)st.st_size;
	L = luo_libelf(reason, rlen);
	if (!L)
		return -ELIBACC;
	e = L->begin(fd, ELF_C_READ, NULL);
	if (!e || L->kind(e) != ELF_K_ELF) {
		luo_reasonf(reason, rlen, "%s: not an ELF file", origin);
		return -ENOEXEC;
	}
	ident = (const unsigned char *)L->getident(e, &n_ident);
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
	if (!L->getehdr(e, &eh) || L->getshdrnum(e, &shnum) != 0 || L->getshdrstrndx(e, &shstrndx) != 0)
		return luo_refuse(reason, rlen, "%s: unreadable ELF or section header table: %s", origin, L->errmsg(-1));
	if (ELF_MACHINE_HOST != EM_NONE && eh.e_machine != ELF_MACHINE_HOST) {
		luo_reasonf(reason, rlen, "%s: an ELF file for another machine (e_machine %u)", origin, eh.e_machine);
		return -ENOEXEC;
	}
	if (eh.e_shoff == 0 || shnum == 0)
		return luo_refuse(reason, rlen, "%s: no section header table: the manifest cannot be read", origin);
	if (eh.e_shentsize != sizeof(ElfW(Shdr)) || eh.e_shoff > file_size ||
	    (uint64_t)shnum * eh.e_shentsize > file_size - eh.e_shoff || (eh.e_shnum != 0 && eh.e_shnum != shnum))
		return luo_refuse(reason, rlen, "%s: the section header table lies outside the file", origin);
	if (shstrndx == SHN_UNDEF || shstrndx >= shnum)
		return luo_refuse(reason, rlen, "%s: section name table index %zu out of range", origin, shstrndx);
	while ((scn = L->nextscn(e, scn)) != NULL) {
		GElf_Shdr sh;
		const char *name;
		Elf_Data *data;

		if (++n_scn > LUO_MANIFEST_SECTIONS_MAX)
			return luo_refuse(reason, rlen, "%s: more than %d sections", origin, LUO_MANIFEST_SECTIONS_MAX);
		if (!L->getshdr(scn, &sh))
			return luo_refuse(reason, rlen, "%s: unreadable section header: %s", origin, L->errmsg(-1));
		name = L->strptr(e, shstrndx, sh.sh_name);
		if (sh.sh_type == SHT_DYNAMIC && obj && !(name && strcmp(name, LUO_ABI_NOTE_SECTION) == 0)) {
			read_dynamic(L, e, scn, &sh, obj);
			continue;
		}
		if (sh.sh_type == SHT_NOTE && want_build_id && m->build_id_len == 0 && name &&
		    strcmp(name, ".note.gnu.build-id") == 0) {
			data = L->rawdata(scn, NULL);
			if (data && data->d_buf)
				find_build_id(data->d_buf, data->d_size, sh.sh_addralign == 8 ? 8 : 4, m);
			continue;
		}
		if (name && strcmp(name, LUO_ABI_TYPES_SECTION) == 0) {
			types_scn = scn;
			types_sh = sh;
			continue;
		}
		/* The field lists have their own section, which older readers never look at (abi.h). */
		if (!name || (strcmp(name, LUO_ABI_NOTE_SECTION) != 0 && strcmp(name, LUO_ABI_FIELDS_SECTION) != 0))
			continue;
		if (sh.sh_type != SHT_NOTE)
			return luo_refuse(reason, rlen, "%s: section %s is not of type SHT_NOTE", origin,
				      LUO_ABI_NOTE_SECTION);
		if (sh.sh_size > LUO_MANIFEST_NOTES_BYTES_MAX - notes_bytes)
			return luo_refuse(reason, rlen, "%s: more than %u bytes of %s", origin,
				      LUO_MANIFEST_NOTES_BYTES_MAX, LUO_ABI_NOTE_SECTION);
		notes_bytes += sh.sh_size;
		data = L->rawdata(scn, NULL);
		if (!data || (sh.sh_size > 0 && (!data->d_buf || data->d_size != sh.sh_size)))
			return luo_refuse(reason, rlen, "%s: section %s lies outside the file", origin,
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
			return luo_refuse(reason, rlen, "%s: section %s is not of type SHT_NOTE", origin,
				      LUO_ABI_TYPES_SECTION);
		if (types_sh.sh_size > LUO_MANIFEST_NOTES_BYTES_MAX)
			return luo_refuse(reason, rlen, "%s: more than %u bytes of %s", origin,
				      LUO_MANIFEST_NOTES_BYTES_MAX, LUO_ABI_TYPES_SECTION);
		data = L->rawdata(types_scn, NULL);
		if (!data || (types_sh.sh_size > 0 && (!data->d_buf || data->d_size != types_sh.sh_size)))
			return luo_refuse(reason, rlen, "%s: section %s lies outside the file", origin,
				      LUO_ABI_TYPES_SECTION);
		r = luo_manifest_add_descriptions(m, data->d_buf, data->d_size, 4, origin, reason, rlen);
		if (r < 0)
			return r;
	}
	m->n_objects++;
	return 0;
}

int luo_elf_open(const char *path, char *reason, size_t rlen)
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

int luo_elf_build_id(const char *path, uint8_t *buf, size_t len, size_t *ret_len)
{
	_cleanup_close_ int fd = -1;
	char reason[LUO_REASON_MAX];

	fd = luo_elf_open(path, reason, sizeof(reason));
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
	r = luo_elf_read_object(fd, "binary", m, NULL, true, reason, sizeof(reason));
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

int luo_manifest_read_descriptions(struct luo_manifest *m, const char *path, char *reason, size_t rlen)
{
	_cleanup_(luo_manifest_freep) struct luo_manifest *file = NULL;
	_cleanup_close_ int fd = -1;
	int r;

	r = luo_manifest_new(&file);
	if (r < 0)
		return r;
	fd = luo_elf_open(path, reason, rlen);
	if (fd < 0)
		return fd;
	r = luo_elf_read_object(fd, path, file, NULL, false, reason, rlen);
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
