/* SPDX-License-Identifier: MIT */
/*
 * DOC: who this image is
 *
 * The outgoing image records its binary's path and ELF build-id in the blob,
 * so that the next image knows what it replaced (the rollback target). The
 * build-id is read from the main program's loaded PT_NOTE segments: our own
 * memory, not input. A binary linked without --build-id has none (length 0).
 */

#include <elf.h>
#include <errno.h>
#include <link.h>
#include <string.h>
#include <unistd.h>

#include "luo-internal.h"

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

static size_t align4(size_t v)
{
	return (v + 3) & ~(size_t)3;
}

static int find_build_id(struct dl_phdr_info *info, size_t size, void *data)
{
	struct build_id_search *s = data;

	(void)size;
	/* The first object is the main program. */
	for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
		size_t off = 0;

		if (ph->p_type != PT_NOTE)
			continue;
		while (off + sizeof(ElfW(Nhdr)) <= ph->p_memsz) {
			const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)(p + off);
			size_t name_off = off + sizeof(*nh);
			size_t desc_off = name_off + align4(nh->n_namesz);
			size_t next = desc_off + align4(nh->n_descsz);

			if (next > ph->p_memsz)
				break;
			if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
			    memcmp(p + name_off, "GNU", 4) == 0 && nh->n_descsz <= s->len) {
				memcpy(s->buf, p + desc_off, nh->n_descsz);
				s->found = nh->n_descsz;
				return 1;
			}
			off = next;
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
