/* SPDX-License-Identifier: MIT */
/*
 * DOC: who this image is
 *
 * The outgoing image records its binary's path and ELF build-id in the blob,
 * so that the next image knows what it replaced (the rollback target). The
 * build-id is read from the main program's loaded PT_NOTE segments: our own
 * memory, not input, walked as every note run is (elf-note.c). A binary
 * linked without --build-id has none (length 0).
 */

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <link.h>
#include <string.h>
#include <unistd.h>

#include "base.h"

int luo_self_path(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);

	if (n < 0)
		return -errno;
	if ((size_t)n >= len - 1)
		return -ENAMETOOLONG;
	buf[n] = '\0';
	return 0;
}

struct build_id_search {
	uint8_t *buf;
	size_t len;
	size_t found;
};

static int find_build_id(struct dl_phdr_info *info, size_t size, void *data)
{
	struct build_id_search *s = data;

	(void)size;
	/* The first object is the main program. */
	for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		size_t off = 0;
		struct luo_note n;

		if (ph->p_type != PT_NOTE)
			continue;
		while (luo_note_next((const uint8_t *)(info->dlpi_addr + ph->p_vaddr), ph->p_memsz, 4, &off, &n) > 0) {
			if (n.type == NT_GNU_BUILD_ID && luo_note_is_owner(&n, "GNU") && n.descsz <= s->len) {
				memcpy(s->buf, n.desc, n.descsz);
				s->found = n.descsz;
				return 1;
			}
		}
	}
	return 1;
}

int luo_self_build_id(uint8_t *buf, size_t len, size_t *ret_len)
{
	struct build_id_search s = { .buf = buf, .len = len };

	dl_iterate_phdr(find_build_id, &s);
	*ret_len = s.found;
	return 0;
}

/*
 * The argv this process was started with, from /proc/self/cmdline, for a
 * rollback to this image. @ret_buf holds the strings, @ret_argv points
 * into it (NULL-terminated); the caller frees both.
 */
int luo_self_argv(char **ret_buf, char ***ret_argv)
{
	size_t len = 0, cap = 4096, argc = 0;
	char *buf = NULL, **argv;
	int fd, r = 0;

	fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n;

		if (!buf || len == cap) {
			char *grown;

			if (buf && cap == LUO_ABI_ARGV_BYTES_MAX + 1) {
				r = -E2BIG; /* one byte past the limit was read */
				break;
			}
			if (buf)
				cap = cap * 2 < LUO_ABI_ARGV_BYTES_MAX + 1 ? cap * 2 : LUO_ABI_ARGV_BYTES_MAX + 1;
			grown = realloc(buf, cap);
			if (!grown) {
				r = -ENOMEM;
				break;
			}
			buf = grown;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (r == 0 && (len == 0 || buf[len - 1] != '\0'))
		r = -ENODATA;
	if (r < 0) {
		free(buf);
		return r;
	}
	for (size_t off = 0; off < len; off += strlen(buf + off) + 1)
		argc++;
	argv = calloc(argc + 1, sizeof(*argv));
	if (!argv) {
		free(buf);
		return -ENOMEM;
	}
	argc = 0;
	for (size_t off = 0; off < len; off += strlen(buf + off) + 1)
		argv[argc++] = buf + off;
	*ret_buf = buf;
	*ret_argv = argv;
	return 0;
}
