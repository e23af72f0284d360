/* SPDX-License-Identifier: MIT */
/*
 * DOC: the ELF note walk
 *
 * One walk over a run of ELF notes (a PT_NOTE segment, a note section),
 * for this image's build-id (self.c) and the manifest readers
 * (format/manifest-*.c) alike. Every header is checked against the bytes
 * left before its owner or description is pointed at.
 */

#include <errno.h>
#include <string.h>

#include "base.h"

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
