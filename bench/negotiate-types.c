/* SPDX-License-Identifier: MIT */
/*
 * What proving types costs, on the examples.
 *
 *   negotiate-types LUO_DESCRIBE OLD NEW [--runs N]
 *
 * Prints, for the update OLD -> NEW (two described builds):
 *   - the post-link step: luo-describe on NEW's undescribed twin
 *     (NEW-undescribed, as the examples' meson files build it), median of N;
 *   - the manifest's size: .note.luo and .note.luo.types bytes of NEW, next to
 *     the file's size;
 *   - negotiation as luo_update() runs it before anything is frozen: NEW's
 *     manifest read from disk, this image's descriptions read from its file
 *     (OLD here), luo_negotiate(); median and worst of N, next to the same
 *     negotiation with the descriptions left out (digests only), and to the
 *     1 ms target.
 */
#include <errno.h>
#include <gelf.h>
#include <fcntl.h>
#include <libelf.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "manifest.h"

extern char **environ;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int section_sizes(const char *path, size_t *notes, size_t *types, size_t *file)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	Elf *e;
	Elf_Scn *scn = NULL;
	size_t shstrndx;

	if (fd < 0)
		return -errno;
	*file = (size_t)lseek(fd, 0, SEEK_END);
	elf_version(EV_CURRENT);
	e = elf_begin(fd, ELF_C_READ, NULL);
	if (!e || elf_getshdrstrndx(e, &shstrndx) != 0) {
		close(fd);
		return -EINVAL;
	}
	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		const char *name;

		if (!gelf_getshdr(scn, &sh) || !(name = elf_strptr(e, shstrndx, sh.sh_name)))
			continue;
		if (strcmp(name, LUO_ABI_NOTE_SECTION) == 0)
			*notes += sh.sh_size;
		else if (strcmp(name, LUO_ABI_TYPES_SECTION) == 0)
			*types += sh.sh_size;
	}
	elf_end(e);
	close(fd);
	return 0;
}

static double describe_once(const char *tool, const char *raw, const char *out)
{
	char *argv[] = { (char *)tool, "--output", (char *)out, (char *)raw, NULL };
	double t0 = now_ms();
	pid_t pid;
	int status;

	if (posix_spawn(&pid, tool, NULL, NULL, argv, environ) != 0 || waitpid(pid, &status, 0) < 0 ||
	    !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -1;
	return now_ms() - t0;
}

static double negotiate_once(const char *old_path, const char *new_path, bool descriptions)
{
	struct luo_manifest *old = NULL, *new = NULL;
	struct luo_report_entry *rep = NULL;
	char reason[256];
	size_t n;
	double t0 = now_ms(), t;

	/* The old image's manifest comes from memory in luo_update(): read it outside the clock. */
	if (luo_manifest_read_file(old_path, &old, reason, sizeof(reason)) < 0)
		return -1;
	for (size_t i = 0; !descriptions && i < old->n_types; i++)
		luo_typedesc_done(&old->types[i].desc);
	t0 = now_ms();
	if (descriptions) {
		for (size_t i = 0; i < old->n_types; i++)
			luo_typedesc_done(&old->types[i].desc);
		if (luo_manifest_read_descriptions(old, old_path, reason, sizeof(reason)) < 0)
			return -1;
	}
	if (luo_manifest_read_file(new_path, &new, reason, sizeof(reason)) < 0)
		return -1;
	for (size_t i = 0; !descriptions && i < new->n_types; i++)
		luo_typedesc_done(&new->types[i].desc);
	luo_negotiate(old, new, NULL, NULL, &rep, &n);
	t = now_ms() - t0;
	free(rep);
	luo_manifest_free(old);
	luo_manifest_free(new);
	return t;
}

int main(int argc, char **argv)
{
	int runs = 51;
	char raw[4096], out[4096];
	size_t notes = 0, types = 0, file = 0;
	double *d, *with, *without;

	if (argc >= 6 && strcmp(argv[4], "--runs") == 0)
		runs = atoi(argv[5]);
	if (argc < 4 || runs < 3 || runs > 100000) {
		fprintf(stderr, "usage: negotiate-types LUO_DESCRIBE OLD NEW [--runs N]\n");
		return 2;
	}
	snprintf(raw, sizeof(raw), "%s-undescribed", argv[3]);
	snprintf(out, sizeof(out), "%s.bench-described", argv[3]);
	d = calloc((size_t)runs, sizeof(double));
	with = calloc((size_t)runs, sizeof(double));
	without = calloc((size_t)runs, sizeof(double));
	if (!d || !with || !without)
		return 1;
	for (int i = 0; i < runs; i++)
		if ((d[i] = describe_once(argv[1], raw, out)) < 0) {
			fprintf(stderr, "negotiate-types: luo-describe %s failed\n", raw);
			return 1;
		}
	unlink(out);
	for (int i = 0; i < runs; i++) {
		with[i] = negotiate_once(argv[2], argv[3], true);
		without[i] = negotiate_once(argv[2], argv[3], false);
		if (with[i] < 0 || without[i] < 0) {
			fprintf(stderr, "negotiate-types: cannot read the manifests\n");
			return 1;
		}
	}
	qsort(d, (size_t)runs, sizeof(double), cmp_double);
	qsort(with, (size_t)runs, sizeof(double), cmp_double);
	qsort(without, (size_t)runs, sizeof(double), cmp_double);
	section_sizes(argv[3], &notes, &types, &file);
	printf("update %s -> %s, %d runs\n", argv[2], argv[3], runs);
	printf("  post-link (luo-describe):   median %.2f ms, worst %.2f ms\n", d[runs / 2], d[runs - 1]);
	printf("  manifest: .note.luo %zu bytes, .note.luo.types %zu bytes (%.2f%% of the %zu-byte binary)\n",
	       notes, types, 100.0 * (double)(notes + types) / (double)file, file);
	printf("  negotiation as luo_update() does it, before the freeze:\n");
	printf("    with descriptions (names the member): median %.3f ms, worst %.3f ms\n", with[runs / 2],
	       with[runs - 1]);
	printf("    digests only (no descriptions):       median %.3f ms, worst %.3f ms\n", without[runs / 2],
	       without[runs - 1]);
	printf("    target: < 1 ms; median is %.2fx the target\n", with[runs / 2] / 1.0);
	free(d);
	free(with);
	free(without);
	return 0;
}
