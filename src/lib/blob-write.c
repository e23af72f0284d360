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

#include <libfdt.h>

#include "cleanup.h"
#include "luo-internal.h"

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

static int write_tree(void *fdt, size_t size, const struct luo *luo, const struct luo_blob_header *hdr)
{
	size_t index = 0;
	int r;

	r = fdt_create(fdt, (int)size);
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
		r = fdt_property_u64(fdt, LUO_ABI_PROP_FREEZE_NS, hdr->freeze_ns);
	if (!r)
		r = fdt_property_u64(fdt, LUO_ABI_PROP_SERIALIZE_NS, hdr->serialize_ns);
	if (!r)
		r = fdt_begin_node(fdt, LUO_ABI_NODE_SESSIONS);
	for (size_t i = 0; !r && i < luo->n_sessions; i++) {
		if (luo->sessions[i]->incoming)
			continue;
		r = write_session(fdt, index++, luo->sessions[i]);
	}
	if (!r)
		r = fdt_end_node(fdt); /* sessions */
	if (!r)
		r = fdt_end_node(fdt); /* root */
	if (!r)
		r = fdt_finish(fdt);
	return r;
}

int luo_blob_build(const struct luo *luo, const struct luo_blob_header *hdr, void **ret_buf, size_t *ret_len)
{
	size_t size = 4096 + luo->n_sessions * 256 + luo->n_out_files * (LUO_FILE_DATA_MAX + 256);

	if (hdr->build_id_len > LUO_ABI_BUILD_ID_MAX)
		return -EINVAL;
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
