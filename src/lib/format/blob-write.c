/* SPDX-License-Identifier: MIT */
/*
 * DOC: writing the handover blob
 *
 * Builds the FDT drawn in abi.h from the outgoing sessions, with libfdt's
 * sequential-write API into a heap buffer. All-or-nothing: on any error the
 * buffer is freed and nothing was handed anywhere. The size is estimated from
 * the counts (which preserve-time limits bound) and doubled on
 * -FDT_ERR_NOSPACE, so only memory can run out.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfdt.h>

#include "cleanup.h"
#include "format.h"

#define NODE_NAME_MAX 32

static int write_file(void *fdt, size_t index, const struct luo_file *f)
{
	char node[NODE_NAME_MAX];
	int r;

	snprintf(node, sizeof(node), "file-%zu", index);
	r = fdt_begin_node(fdt, node);
	if (!r)
		r = fdt_property_u64(fdt, LUO_ABI_PROP_FILE_TOKEN, f->token);
	if (!r)
		r = fdt_property_u32(fdt, LUO_ABI_PROP_FILE_FD, (uint32_t)f->fd);
	if (!r)
		r = fdt_property_string(fdt, LUO_ABI_PROP_FILE_HANDLER, f->handler->name);
	if (!r)
		r = fdt_property_u32(fdt, LUO_ABI_PROP_FILE_HANDLER_VERSION, f->handler->version);
	if (!r)
		r = fdt_property(fdt, LUO_ABI_PROP_FILE_DATA, f->data, (int)f->handler->data_size);
	if (!r && f->name[0])
		r = fdt_property_string(fdt, LUO_ABI_PROP_FILE_NAME, f->name);
	if (!r)
		r = fdt_end_node(fdt);
	return r;
}

static int write_session(void *fdt, size_t index, const struct luo_session *s)
{
	char node[NODE_NAME_MAX];
	int r;

	snprintf(node, sizeof(node), "session-%zu", index);
	r = fdt_begin_node(fdt, node);
	if (!r)
		r = fdt_property_string(fdt, LUO_ABI_PROP_SESSION_NAME, s->name);
	for (size_t i = 0; !r && i < s->n_files; i++)
		r = write_file(fdt, i, s->files[i]);
	if (!r)
		r = fdt_end_node(fdt);
	return r;
}

static int write_argv(void *fdt, char *const *argv)
{
	size_t len = 0;
	char *buf, *p;
	int r;

	for (size_t i = 0; argv[i]; i++)
		len += strlen(argv[i]) + 1;
	r = fdt_property_placeholder(fdt, LUO_ABI_PROP_PRODUCER_ARGV, (int)len, (void **)&buf);
	if (r)
		return r;
	p = buf;
	for (size_t i = 0; argv[i]; i++)
		p = stpcpy(p, argv[i]) + 1;
	return 0;
}

static int write_components(void *fdt, const struct luo_blob_header *hdr)
{
	char node[NODE_NAME_MAX];
	int r;

	r = fdt_begin_node(fdt, LUO_ABI_NODE_COMPONENTS);
	for (size_t i = 0; !r && i < hdr->n_components; i++) {
		const struct luo_component_out *c = &hdr->components[i];

		snprintf(node, sizeof(node), "component-%zu", i);
		r = fdt_begin_node(fdt, node);
		if (!r)
			r = fdt_property_string(fdt, LUO_ABI_PROP_COMPONENT_NAME, c->component->name);
		if (!r && c->dropped)
			r = fdt_property(fdt, LUO_ABI_PROP_COMPONENT_DROPPED, NULL, 0);
		if (!r && !c->dropped)
			r = fdt_property_u32(fdt, LUO_ABI_PROP_COMPONENT_VERSION, c->version);
		if (!r && !c->dropped && !c->fields)
			r = fdt_property(fdt, LUO_ABI_PROP_COMPONENT_DATA, c->payload.buf, (int)c->payload.len);
		if (!r && !c->dropped && c->fields)
			r = luo_fields_write_node(fdt, c->fields, c->version, c->payload.buf);
		if (!r)
			r = fdt_end_node(fdt);
	}
	if (!r)
		r = fdt_end_node(fdt);
	return r;
}

static int write_tree(void *fdt, size_t size, const struct luo *luo, const struct luo_blob_header *hdr)
{
	size_t index = 0;
	bool fields = false;
	int r;

	/*
	 * libfdt looks each new property name up in the strings block, from
	 * its start: every distinct name costs a scan of all the names before
	 * it. Declared fields bring up to LUO_ABI_FIELDS_MAX distinct names
	 * per component (quadratic: tens of ms for 1,000); then names are
	 * appended, not shared (a few bytes more per property).
	 */
	for (size_t i = 0; i < hdr->n_components; i++)
		fields = fields || hdr->components[i].fields;
	r = fdt_create_with_flags(fdt, (int)size, fields ? FDT_CREATE_FLAG_NO_NAME_DEDUP : 0);
	if (!r)
		r = fdt_finish_reservemap(fdt);
	if (!r)
		r = fdt_begin_node(fdt, "");
	if (!r)
		r = fdt_property_string(fdt, LUO_ABI_PROP_COMPATIBLE, LUO_ABI_COMPATIBLE);
	if (!r)
		r = fdt_property_u32(fdt, LUO_ABI_PROP_FORMAT, LUO_ABI_FORMAT_VERSION);
	if (!r)
		r = fdt_property_u64(fdt, LUO_ABI_PROP_LU_NUMBER, hdr->lu_number);
	if (!r)
		r = fdt_property_string(fdt, LUO_ABI_PROP_PRODUCER_PATH, hdr->producer_path);
	if (!r)
		r = fdt_property(fdt, LUO_ABI_PROP_PRODUCER_BUILD_ID, hdr->build_id, (int)hdr->build_id_len);
	if (!r)
		r = write_argv(fdt, hdr->argv);
	if (!r)
		r = fdt_property_u64(fdt, LUO_ABI_PROP_FREEZE_NS, hdr->freeze_ns);
	if (!r)
		r = fdt_property_u64(fdt, LUO_ABI_PROP_SERIALIZE_NS, hdr->serialize_ns);
	if (!r)
		r = fdt_begin_node(fdt, LUO_ABI_NODE_SESSIONS);
	for (size_t i = 0; !r && i < luo->n_sessions; i++) {
		if (luo->sessions[i]->incoming || (hdr->only && luo->sessions[i] != hdr->only))
			continue;
		r = write_session(fdt, index++, luo->sessions[i]);
	}
	if (!r)
		r = fdt_end_node(fdt); /* sessions */
	if (!r)
		r = write_components(fdt, hdr);
	if (!r)
		r = fdt_end_node(fdt); /* root */
	if (!r)
		r = fdt_finish(fdt);
	return r;
}

int luo_blob_build(const struct luo *luo, const struct luo_blob_header *hdr, void **ret_buf, size_t *ret_len)
{
	size_t n_files = hdr->only ? hdr->only->n_files : luo->n_out_files;
	size_t size = 4096 + luo->n_sessions * 256 + n_files * (LUO_FILE_DATA_MAX + 256);
	size_t argv_bytes = 0, argc = 0;

	if (hdr->build_id_len > LUO_ABI_BUILD_ID_MAX || !hdr->argv || !hdr->argv[0])
		return -EINVAL;
	for (; hdr->argv[argc]; argc++)
		argv_bytes += strlen(hdr->argv[argc]) + 1;
	/* What the reader would refuse is refused here, before the switch. */
	if (argc > LUO_ABI_ARGV_MAX || argv_bytes > LUO_ABI_ARGV_BYTES_MAX)
		return -E2BIG;
	size += argv_bytes;
	for (size_t i = 0; i < hdr->n_components; i++)
		size += 256 + hdr->components[i].payload.len +
			(hdr->components[i].fields ? luo_fields_wire_size(hdr->components[i].fields,
									  hdr->components[i].version) : 0);
	for (;;) {
		_cleanup_free_ void *buf = NULL;
		int r;

		if (size > LUO_ABI_BLOB_MAX)
			return -ENOSPC;
		buf = malloc(size);
		if (!buf)
			return -ENOMEM;
		r = write_tree(buf, size, luo, hdr);
		if (r == -FDT_ERR_NOSPACE) {
			size *= 2;
			continue;
		}
		if (r < 0)
			return -EINVAL; /* a libfdt code: never leaked */
		*ret_len = fdt_totalsize(buf);
		*ret_buf = TAKE_PTR(buf);
		return 0;
	}
}
