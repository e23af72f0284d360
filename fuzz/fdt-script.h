/* SPDX-License-Identifier: MIT */
#ifndef LUO_FUZZ_FDT_SCRIPT_H
#define LUO_FUZZ_FDT_SCRIPT_H

/*
 * DOC: a tiny language that builds a flattened device tree, for fuzz-blob and fuzz-fields
 *
 * Random byte mutations of a raw FDT almost never get past
 * fdt_check_full(): a property one byte longer means a new length field, a
 * new structure-block size, new offsets and a new total size. So fuzz-blob
 * also takes a script, turned into a tree with libfdt's sequential writer:
 * every mutation of the script is a well-formed tree, and the reader's own
 * checks (lengths, terminators, counts, duplicates, nesting) are what the
 * fuzzer exercises. The script starts inside the root node:
 *
 *   op % 4 == 0  begin a node; 1 byte: a name from node_names[], else "n<byte>"
 *   op % 4 == 1  end the node (ignored at the root)
 *   op % 4 == 2  a property; 1 byte: a name from prop_names[], else "p<byte>";
 *                u16 len, u16 cap (little-endian, at most FDT_SCRIPT_PROP_MAX);
 *                then cap bytes: the value is the first len of them, padded
 *                with zeros (so is a script that ends early). len and cap are
 *                apart so that one mutation of len makes a property one byte
 *                longer or shorter without shifting the rest of the script
 *   op % 4 == 3  a 4-byte property; 1 byte: a name as above; 4 bytes
 *
 * Nodes left open are closed at the end. gen-corpus.c writes scripts with
 * the same encoding (fdt_script_* below).
 */

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <libfdt.h>

#include "luo/abi.h"

#define FDT_SCRIPT_PROP_MAX 16384
#define FDT_SCRIPT_DEPTH_MAX 16

static const char *const fdt_script_node_names[] = {
	LUO_ABI_NODE_SESSIONS, LUO_ABI_NODE_COMPONENTS, "s0", "s1", "s2", "f0", "f1", "f2", "c0", "c1", "c2",
	LUO_ABI_NODE_COMPONENT_FIELDS,
};
static const char *const fdt_script_prop_names[] = {
	LUO_ABI_PROP_COMPATIBLE,	 LUO_ABI_PROP_FORMAT,		LUO_ABI_PROP_LU_NUMBER,
	LUO_ABI_PROP_PRODUCER_PATH,	 LUO_ABI_PROP_PRODUCER_BUILD_ID, LUO_ABI_PROP_FREEZE_NS,
	LUO_ABI_PROP_SERIALIZE_NS,	 LUO_ABI_PROP_SESSION_NAME,	LUO_ABI_PROP_FILE_TOKEN,
	LUO_ABI_PROP_FILE_FD,		 LUO_ABI_PROP_FILE_HANDLER,	LUO_ABI_PROP_FILE_HANDLER_VERSION,
	LUO_ABI_PROP_FILE_DATA,		 LUO_ABI_PROP_PRODUCER_ARGV,	LUO_ABI_PROP_COMPONENT_VERSION,
	LUO_ABI_PROP_COMPONENT_DROPPED,
	/* declared fields (gen-corpus.c's "format2-fields", and fuzz-fields.c's struct) */
	"count", "temp", "on", "label", "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "flag", "blob",
};
#define FDT_SCRIPT_N_NODE_NAMES (sizeof(fdt_script_node_names) / sizeof(fdt_script_node_names[0]))
#define FDT_SCRIPT_N_PROP_NAMES (sizeof(fdt_script_prop_names) / sizeof(fdt_script_prop_names[0]))

enum { FDT_OP_BEGIN, FDT_OP_END, FDT_OP_PROP, FDT_OP_U32 };

static const char *fdt_script_name(const char *const *table, size_t n, char prefix, uint8_t b, char *buf)
{
	if (b < n)
		return table[b];
	snprintf(buf, 8, "%c%u", prefix, b);
	return buf;
}

static inline size_t fdt_script_u16(const uint8_t *in, size_t len, size_t pos)
{
	return (size_t)(pos < len ? in[pos] : 0) | (size_t)(pos + 1 < len ? in[pos + 1] : 0) << 8;
}

/* Build the tree of @in into @out (@cap bytes): 0, or a libfdt error. */
static inline int fdt_script_build(const uint8_t *in, size_t len, void *out, int cap)
{
	static uint8_t value[FDT_SCRIPT_PROP_MAX];
	size_t pos = 0;
	int depth = 0, r;
	char nb[8];

	r = fdt_create(out, cap);
	if (r == 0)
		r = fdt_finish_reservemap(out);
	if (r == 0)
		r = fdt_begin_node(out, "");
	while (r == 0 && pos < len) {
		uint8_t op = in[pos++] % 4, nm = pos < len ? in[pos] : 0;
		size_t vlen, vcap;

		switch (op) {
		case FDT_OP_BEGIN:
			pos++;
			if (depth + 1 >= FDT_SCRIPT_DEPTH_MAX)
				break;
			r = fdt_begin_node(out, fdt_script_name(fdt_script_node_names, FDT_SCRIPT_N_NODE_NAMES, 'n', nm, nb));
			depth++;
			break;
		case FDT_OP_END:
			if (depth > 0) {
				r = fdt_end_node(out);
				depth--;
			}
			break;
		case FDT_OP_PROP:
		case FDT_OP_U32:
			pos++;
			if (op == FDT_OP_U32) {
				vlen = vcap = 4;
			} else {
				vlen = fdt_script_u16(in, len, pos);
				vcap = fdt_script_u16(in, len, pos + 2);
				pos += 4;
				if (vlen > FDT_SCRIPT_PROP_MAX)
					vlen = FDT_SCRIPT_PROP_MAX;
				if (vcap > FDT_SCRIPT_PROP_MAX)
					vcap = FDT_SCRIPT_PROP_MAX;
			}
			memset(value, 0, vlen);
			if (pos < len) {
				size_t have = len - pos < vcap ? len - pos : vcap;

				memcpy(value, in + pos, have < vlen ? have : vlen);
			}
			pos += vcap;
			r = fdt_property(out, fdt_script_name(fdt_script_prop_names, FDT_SCRIPT_N_PROP_NAMES, 'p', nm, nb),
					 value, (int)vlen);
			break;
		}
	}
	while (r == 0 && depth-- > 0)
		r = fdt_end_node(out);
	if (r == 0)
		r = fdt_end_node(out); /* the root */
	if (r == 0)
		r = fdt_finish(out);
	return r;
}

#endif /* LUO_FUZZ_FDT_SCRIPT_H */
