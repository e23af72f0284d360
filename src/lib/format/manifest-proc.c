/* SPDX-License-Identifier: MIT */
/*
 * DOC: the manifest of a running process, and of this one
 *
 * luo_manifest_read_pid(): /proc/PID/exe, then every ELF file the process
 * has mapped (/proc/PID/maps; a file replaced on disk through
 * /proc/PID/map_files), each inode once. luo_manifest_read_self(): this
 * process's PT_NOTE segments in memory (dl_iterate_phdr), the type
 * descriptions read from the files the objects came from.
 */

#include <errno.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "format.h"
#include "libelf-load.h"
#include "manifest.h"

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
	fd = luo_elf_open(path, reason, rlen);
	if (fd < 0)
		return fd;
	if (fstat(fd, &exe_st) < 0)
		exe_st.st_ino = 0;
	r = luo_elf_read_object(fd, path, m, NULL, true, reason, rlen);
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
			fd = luo_elf_open(file, reason, rlen);
			if (fd < 0) {
				/* Replaced on disk ("(deleted)") or elsewhere: the mapping itself. */
				char mf[96];

				*sp = '\0';
				snprintf(mf, sizeof(mf), "/proc/%d/map_files/%.40s", (int)pid, line);
				fd = luo_elf_open(mf, reason, rlen);
			}
			luo_reason_clear(reason, rlen);
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
			r = luo_elf_read_object(fd, file, m, NULL, false, reason, rlen);
			safe_close(fd);
			if (r == -ENOEXEC) {
				r = 0; /* a mapped data file */
				luo_reason_clear(reason, rlen);
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
	bool have_libelf; /* loaded before the walk: never dlopen() inside it */
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
	if (w->m->n_types > n_types && w->have_libelf) {
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
	/*
	 * libelf loaded here, not from the callback below, where ld.so's lock
	 * is held: a dlopen() there would take it in the other order than a
	 * dlopen() in another thread. Not loaded: the descriptions are
	 * skipped, as for a file that cannot be read.
	 */
	w.have_libelf = luo_libelf(NULL, 0) != NULL;
	dl_iterate_phdr(self_object, &w);
	if (w.error < 0)
		return w.error;
	luo_self_build_id(m->build_id, sizeof(m->build_id), &m->build_id_len);
	*ret = TAKE_PTR(m);
	return 0;
}
