/* SPDX-License-Identifier: MIT */
/*
 * DOC: writing the handover blob
 *
 * Builds the FDT drawn in abi.h from the outgoing sessions, with the
 * one-pass writer of fdt-writer.h into a heap buffer (libfdt reads it).
 * All-or-nothing: on any error the buffer is freed and nothing was handed
 * anywhere. The first allocation is estimated from the counts (which
 * preserve-time limits bound); the writer grows it up to LUO_ABI_BLOB_MAX,
 * past which the build fails with -ENOSPC.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfdt.h>

#include "cleanup.h"
#include "fdt-writer.h"
#include "format.h"

#define NODE_NAME_MAX 32

static int write_file(struct luo_fdtw *w, size_t index, const struct luo_file *f)
{
	char node[NODE_NAME_MAX];
	int r;

	snprintf(node, sizeof(node), "file-%zu", index);
	r = luo_fdtw_begin_node(w, node);
	if (!r)
		r = luo_fdtw_property_u64(w, LUO_ABI_PROP_FILE_TOKEN, f->token);
	if (!r)
		r = luo_fdtw_property_u32(w, LUO_ABI_PROP_FILE_FD, (uint32_t)f->fd);
	if (!r)
		r = luo_fdtw_property_string(w, LUO_ABI_PROP_FILE_HANDLER, f->handler->name);
	if (!r)
		r = luo_fdtw_property_u32(w, LUO_ABI_PROP_FILE_HANDLER_VERSION, f->handler->version);
	if (!r)
		r = luo_fdtw_property(w, LUO_ABI_PROP_FILE_DATA, f->data, f->handler->data_size);
	if (!r && f->name[0])
		r = luo_fdtw_property_string(w, LUO_ABI_PROP_FILE_NAME, f->name);
	if (!r)
		r = luo_fdtw_end_node(w);
	return r;
}

static int write_session(struct luo_fdtw *w, size_t index, const struct luo_session *s)
{
	char node[NODE_NAME_MAX];
	int r;

	snprintf(node, sizeof(node), "session-%zu", index);
	r = luo_fdtw_begin_node(w, node);
	if (!r)
		r = luo_fdtw_property_string(w, LUO_ABI_PROP_SESSION_NAME, s->name);
	for (size_t i = 0; !r && i < s->n_files; i++)
		r = write_file(w, i, s->files[i]);
	if (!r)
		r = luo_fdtw_end_node(w);
	return r;
}

static int write_argv(struct luo_fdtw *w, char *const *argv)
{
	size_t len = 0;
	char *buf, *p;
	int r;

	for (size_t i = 0; argv[i]; i++)
		len += strlen(argv[i]) + 1;
	r = luo_fdtw_property_placeholder(w, LUO_ABI_PROP_PRODUCER_ARGV, len, (void **)&buf);
	if (r)
		return r;
	p = buf;
	for (size_t i = 0; argv[i]; i++)
		p = stpcpy(p, argv[i]) + 1;
	return 0;
}

static int write_components(struct luo_fdtw *w, const struct luo_blob_header *hdr)
{
	char node[NODE_NAME_MAX];
	int r;

	r = luo_fdtw_begin_node(w, LUO_ABI_NODE_COMPONENTS);
	for (size_t i = 0; !r && i < hdr->n_components; i++) {
		const struct luo_component_out *c = &hdr->components[i];

		snprintf(node, sizeof(node), "component-%zu", i);
		r = luo_fdtw_begin_node(w, node);
		if (!r)
			r = luo_fdtw_property_string(w, LUO_ABI_PROP_COMPONENT_NAME, c->component->name);
		if (!r && c->dropped)
			r = luo_fdtw_property(w, LUO_ABI_PROP_COMPONENT_DROPPED, NULL, 0);
		if (!r && !c->dropped)
			r = luo_fdtw_property_u32(w, LUO_ABI_PROP_COMPONENT_VERSION, c->version);
		if (!r && !c->dropped && !c->fields)
			r = luo_fdtw_property(w, LUO_ABI_PROP_COMPONENT_DATA, c->payload.buf, c->payload.len);
		if (!r && !c->dropped && c->fields)
			r = luo_fields_write_node(w, c->fields, c->version, c->payload.buf);
		if (!r)
			r = luo_fdtw_end_node(w);
	}
	if (!r)
		r = luo_fdtw_end_node(w);
	return r;
}

static int write_tree(struct luo_fdtw *w, const struct luo *luo, const struct luo_blob_header *hdr)
{
	size_t index = 0;
	int r;

	r = luo_fdtw_begin_node(w, "");
	if (!r)
		r = luo_fdtw_property_string(w, LUO_ABI_PROP_COMPATIBLE, LUO_ABI_COMPATIBLE);
	if (!r)
		r = luo_fdtw_property_u32(w, LUO_ABI_PROP_FORMAT, LUO_ABI_FORMAT_VERSION);
	if (!r)
		r = luo_fdtw_property_u64(w, LUO_ABI_PROP_LU_NUMBER, hdr->lu_number);
	if (!r)
		r = luo_fdtw_property_string(w, LUO_ABI_PROP_PRODUCER_PATH, hdr->producer_path);
	if (!r)
		r = luo_fdtw_property(w, LUO_ABI_PROP_PRODUCER_BUILD_ID, hdr->build_id, hdr->build_id_len);
	if (!r)
		r = write_argv(w, hdr->argv);
	if (!r)
		r = luo_fdtw_property_u64(w, LUO_ABI_PROP_FREEZE_NS, hdr->freeze_ns);
	if (!r)
		r = luo_fdtw_property_u64(w, LUO_ABI_PROP_SERIALIZE_NS, hdr->serialize_ns);
	if (!r)
		r = luo_fdtw_begin_node(w, LUO_ABI_NODE_SESSIONS);
	for (size_t i = 0; !r && i < luo->n_sessions; i++) {
		if (luo->sessions[i]->incoming || (hdr->only && luo->sessions[i] != hdr->only))
			continue;
		r = write_session(w, index++, luo->sessions[i]);
	}
	if (!r)
		r = luo_fdtw_end_node(w); /* sessions */
	if (!r)
		r = write_components(w, hdr);
	if (!r)
		r = luo_fdtw_end_node(w); /* root */
	return r;
}

int luo_blob_build(const struct luo *luo, const struct luo_blob_header *hdr, void **ret_buf, size_t *ret_len)
{
	size_t n_files = hdr->only ? hdr->only->n_files : luo->n_out_files;
	size_t size = 4096 + luo->n_sessions * 256 + n_files * (LUO_FILE_DATA_MAX + 256);
	size_t argv_bytes = 0, argc = 0;
	_cleanup_fdtw_ struct luo_fdtw w = { 0 };
	int r;

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
	r = luo_fdtw_start(&w, size, LUO_ABI_BLOB_MAX);
	if (!r)
		r = write_tree(&w, luo, hdr);
	if (!r)
		r = luo_fdtw_finish(&w, ret_buf, ret_len);
	return r;
}
