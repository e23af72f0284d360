/* SPDX-License-Identifier: MIT */
/*
 * DOC: the .note.luo parser, hostile input
 *
 * The notes of owner "LUO" in a run of ELF notes (elf-note.c walks them),
 * whatever read the bytes: a binary on disk, a running process, this
 * process. A LUO note must have the exact size of its record; what it
 * declares goes through the manifest model's checks (manifest.c) or the
 * type notes' (manifest-types.c).
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "format.h"
#include "manifest.h"

static int add_luo_note(struct luo_manifest *m, const struct luo_note *n, const char *origin, char *reason, size_t rlen)
{
	switch (n->type) {
	case LUO_ABI_NOTE_COMPONENT: {
		struct luo_abi_note_component d;
		struct luo_manifest_entry e = { 0 };

		if (n->descsz != sizeof(d))
			return luo_refuse(reason, rlen, "%s: a component note of %u bytes, expected %zu", origin, n->descsz,
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
			return luo_refuse(reason, rlen, "%s: a layout note of %u bytes, expected %zu", origin, n->descsz,
				      sizeof(*d));
		d = malloc(sizeof(*d));
		if (!d)
			return -ENOMEM;
		memcpy(d, n->desc, sizeof(*d));
		return luo_manifest_add_layout(m, d, origin, reason, rlen);
	}
	case LUO_ABI_NOTE_TYPE: {
		struct luo_abi_note_type d;

		if (n->descsz != sizeof(d))
			return luo_refuse(reason, rlen, "%s: a type note of %u bytes, expected %zu", origin, n->descsz,
				      sizeof(d));
		memcpy(&d, n->desc, sizeof(d));
		return luo_manifest_add_type(m, &d, origin, reason, rlen);
	}
	case LUO_ABI_NOTE_FIELDS:
		return luo_manifest_add_fields(m, n->desc, n->descsz, origin, reason, rlen);
	}
	return luo_refuse(reason, rlen, "%s: a LUO note of unknown type %u", origin, n->type);
}

int luo_manifest_add_notes(struct luo_manifest *m, const void *buf, size_t len, size_t align, bool strict,
			   const char *origin, char *reason, size_t rlen)
{
	size_t off = 0;
	struct luo_note n;
	int r;

	if (align != 4 && align != 8)
		return luo_refuse(reason, rlen, "%s: notes aligned to %zu bytes (4 or 8 expected)", origin, align);
	if (len > LUO_MANIFEST_NOTES_BYTES_MAX)
		return luo_refuse(reason, rlen, "%s: %zu bytes of notes, more than %u", origin, len,
			      LUO_MANIFEST_NOTES_BYTES_MAX);
	while ((r = luo_note_next(buf, len, align, &off, &n)) > 0) {
		if (!luo_note_is_owner(&n, LUO_ABI_NOTE_OWNER)) {
			if (strict)
				return luo_refuse(reason, rlen, "%s: a note of another owner in %s", origin,
					      LUO_ABI_NOTE_SECTION);
			continue;
		}
		r = add_luo_note(m, &n, origin, reason, rlen);
		if (r < 0)
			return r;
	}
	if (r < 0 && strict)
		return luo_refuse(reason, rlen, "%s: a note at offset %zu runs past the end of its %zu bytes", origin, off,
			      len);
	return 0;
}
