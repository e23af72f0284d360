/* SPDX-License-Identifier: MIT */
/*
 * DOC: a binary on disk and the libraries it names
 *
 * luo_manifest_read_file(): the executable's notes and those of the
 * libraries in its DT_NEEDED, found as ld.so would: RPATH (without
 * RUNPATH), the caller's LD_LIBRARY_PATH, RUNPATH, the directories of
 * /etc/ld.so.conf and its includes (bounded: LDSO_CONF_*_MAX), then the
 * trusted ones. Not their dependencies, not what the program dlopen()s:
 * what is not followed is counted as unresolved, for luoctl to warn.
 */

#include <glob.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "format.h"
#include "manifest.h"

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
				int fd = luo_elf_open(path, reason, rlen), r;

				if (fd >= 0) {
					r = luo_elf_read_object(fd, path, m, NULL, false, reason, rlen);
					safe_close(fd);
					if (r != -ENOEXEC)
						return r < 0 ? r : 1;
				}
				luo_reason_clear(reason, rlen); /* a candidate skipped, as ld.so skips it */
			}
		}
		p = *end ? end + 1 : end;
	}
	return 0;
}

int luo_manifest_read_file(const char *path, struct luo_manifest **ret, char *reason, size_t rlen)
{
	_cleanup_(luo_manifest_freep) struct luo_manifest *m = NULL;
	_cleanup_free_ struct luo_elf_object *obj = NULL;
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
	fd = luo_elf_open(path, reason, rlen);
	if (fd < 0)
		return fd;
	r = luo_elf_read_object(fd, path, m, obj, true, reason, rlen);
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
