/* SPDX-License-Identifier: MIT */
/*
 * What declared state costs in the blackout (fields.h).
 *
 *   fields [--fields N] [--runs R]
 *
 * A struct of N declared fields (1,000 by default: a quarter each u64,
 * u32, i16 and u8), written and read back as luo_update() and luo_open()
 * do it, inside the blackout:
 *   - save: the snapshot of the struct, its "fields" node written into a
 *     blob with fdt-writer.h's writer, the blob finished;
 *   - load: the whole blob checked (luo_blob_check(): fdt_check_full and
 *     the walk for twin names, what luo_blob_parse() runs first),
 *     the node found, every field read by name into a copy of the struct,
 *     committed.
 * Median and worst of R, against the 0.1 ms target (the ratio printed),
 * and against the floor: a hand-written save()/load() of the same struct
 * (one memcpy into a "data" property, the same check, one memcpy out).
 * Also the struct image (what goes to an image without declared fields).
 * A benchmark, not a test: it prints, it does not judge a shared machine.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libfdt.h>

#include "fields.h"
#include "luo-internal.h"

#define TARGET_MS 0.1

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* This thread's CPU time: what a preemption on a shared machine does not count. */
static double cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* As blob-write.c writes a blob: the writer of fdt-writer.h, a first buffer of the size it estimates. */
static int blob_begin(struct luo_fdtw *w, size_t size)
{
	int r = luo_fdtw_start(w, size, LUO_ABI_BLOB_MAX);

	if (!r)
		r = luo_fdtw_begin_node(w, "");
	if (!r)
		r = luo_fdtw_begin_node(w, "component-0");
	if (!r)
		r = luo_fdtw_property_string(w, "name", "bench");
	if (!r)
		r = luo_fdtw_property_u32(w, "version", 1);
	return r;
}

static int blob_end(struct luo_fdtw *w, void **ret_fdt)
{
	size_t len;
	int r = luo_fdtw_end_node(w);

	if (!r)
		r = luo_fdtw_end_node(w);
	if (!r)
		r = luo_fdtw_finish(w, ret_fdt, &len);
	return r;
}

static void die(const char *what, int r)
{
	fprintf(stderr, "fields: %s failed: %d\n", what, r);
	exit(1);
}

struct figures {
	double median, worst;
};

static struct figures summarize(double *t, int runs)
{
	qsort(t, (size_t)runs, sizeof(*t), cmp_double);
	return (struct figures){ t[runs / 2], t[runs - 1] };
}

int main(int argc, char **argv)
{
	uint32_t n = 1000, struct_size = 0;
	int runs = 200;
	struct luo_abi_note_fielddecl *decls;
	struct luo_abi_note_fields h = { "bench", 0, 0 };
	struct luo_component_state st = { "bench", 1, 1, 1, 1, 0, &h, NULL, NULL };
	double *t_fields, *t_floor, *t_image, *t_save, *t_check, *t_cpu;
	char reason[LUO_REASON_MAX];
	uint8_t *live, *check;
	uint32_t blob_bytes = 0;
	struct luo_fdtw w;
	void *fdt = NULL;
	int r;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--fields") == 0 && i + 1 < argc)
			n = (uint32_t)strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
			runs = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: fields [--fields N] [--runs R]\n");
			return 2;
		}
	}
	if (n == 0 || n > LUO_ABI_FIELDS_MAX || runs < 1 || runs > 100000) {
		fprintf(stderr, "fields: 1..%u fields, 1..100000 runs\n", LUO_ABI_FIELDS_MAX);
		return 2;
	}

	/* The struct: naturally aligned fields, each type in turn. */
	decls = calloc(n, sizeof(*decls));
	if (!decls)
		die("calloc", -ENOMEM);
	for (uint32_t i = 0; i < n; i++) {
		static const uint32_t types[] = { LUO_ABI_FIELD_UINT, LUO_ABI_FIELD_UINT, LUO_ABI_FIELD_INT,
						  LUO_ABI_FIELD_UINT };
		static const uint32_t sizes[] = { 8, 4, 2, 1 };
		uint32_t k = i % 4;

		snprintf(decls[i].name, sizeof(decls[i].name), "field_%u", i);
		decls[i].type = types[k];
		decls[i].size = sizes[k];
		struct_size = (struct_size + sizes[k] - 1) / sizes[k] * sizes[k];
		decls[i].offset = struct_size;
		struct_size += sizes[k];
		decls[i].from = 1;
		decls[i].to = LUO_ABI_FIELD_LATEST;
	}
	struct_size = (struct_size + 7) / 8 * 8;
	h.struct_size = struct_size;
	h.n_fields = n;
	st.decls = decls;
	live = calloc(1, struct_size);
	check = malloc(struct_size);
	t_fields = calloc((size_t)runs, sizeof(double));
	t_floor = calloc((size_t)runs, sizeof(double));
	t_image = calloc((size_t)runs, sizeof(double));
	t_save = calloc((size_t)runs, sizeof(double));
	t_check = calloc((size_t)runs, sizeof(double));
	t_cpu = calloc((size_t)runs, sizeof(double));
	if (!live || !check || !t_fields || !t_floor || !t_image || !t_save || !t_check || !t_cpu)
		die("malloc", -ENOMEM);
	st.instance = live;
	r = luo_fields_check(&h, decls, reason, sizeof(reason));
	if (r)
		die(reason, r);
	for (uint32_t i = 0; i < struct_size; i++)
		live[i] = (uint8_t)(i * 7 + 1);
	for (uint32_t i = 0; i < n; i++) /* i16 fields: values that fit, some negative */
		if (decls[i].type == LUO_ABI_FIELD_INT)
			live[decls[i].offset + 1] &= 0x7f;
	memcpy(check, live, struct_size);

	for (int run = 0; run < runs; run++) {
		struct luo_payload snap = { 0 };
		double c0 = cpu_ms(), t0 = now_ms();
		int node;

		/* Declared: snapshot, write, finish; check, find, read by name. */
		r = luo_fields_snapshot(&st, &snap);
		if (!r)
			r = blob_begin(&w, 4096 + 256 + struct_size + luo_fields_wire_size(&st, 1));
		if (!r)
			r = luo_fields_write_node(&w, &st, 1, snap.buf);
		if (!r)
			r = blob_end(&w, &fdt);
		if (r)
			die("write", r);
		t_save[run] = now_ms() - t0;
		r = luo_blob_check(fdt, fdt_totalsize(fdt), reason, sizeof(reason));
		t_check[run] = now_ms() - t0 - t_save[run];
		node = fdt_path_offset(fdt, "/component-0/fields");
		if (r || node < 0)
			die("check", r ? r : node);
		r = luo_fields_load_node(&st, 1, fdt, node, reason, sizeof(reason));
		if (r)
			die(reason, r);
		t_fields[run] = now_ms() - t0;
		t_cpu[run] = cpu_ms() - c0;
		free(snap.buf);
		blob_bytes = fdt_totalsize(fdt);
		free(fdt);
		if (memcmp(live, check, struct_size) != 0)
			die("round trip", -EIO);

		/* The floor: a hand-written save()/load() of the same struct. */
		t0 = now_ms();
		{
			struct luo_payload p = { 0 };
			const void *data;
			int len;

			r = luo_payload_write(&p, live, struct_size);
			if (!r)
				r = blob_begin(&w, 4096 + 256 + struct_size);
			if (!r)
				r = luo_fdtw_property(&w, "data", p.buf, p.len);
			if (!r)
				r = blob_end(&w, &fdt);
			if (!r)
				r = luo_blob_check(fdt, fdt_totalsize(fdt), reason, sizeof(reason));
			data = fdt_getprop(fdt, fdt_path_offset(fdt, "/component-0"), "data", &len);
			if (r || !data || (uint32_t)len != struct_size)
				die("floor", r ? r : -EBADMSG);
			memcpy(live, data, struct_size);
			free(p.buf);
			free(fdt);
		}
		t_floor[run] = now_ms() - t0;

		/* The struct image: to and from an image without declared fields. */
		t0 = now_ms();
		{
			struct luo_payload p = { 0 };

			r = luo_fields_image_save(&st, 1, &p);
			if (!r)
				r = luo_fields_image_load(&st, 1, p.buf, p.len, reason, sizeof(reason));
			if (r)
				die("image", r);
			free(p.buf);
		}
		t_image[run] = now_ms() - t0;
	}

	{
		struct figures f = summarize(t_fields, runs), fl = summarize(t_floor, runs),
			       im = summarize(t_image, runs), sv = summarize(t_save, runs), ck = summarize(t_check, runs),
			       cpu = summarize(t_cpu, runs);

		printf("declared state: %u fields, struct of %u bytes, %u bytes of blob, %d runs\n", n, struct_size,
		       blob_bytes, runs);
		printf("  fields (save + load, per update)  median %.4f ms  worst %.4f ms  = %.2f x the %.1f ms target\n",
		       f.median, f.worst, f.median / TARGET_MS, TARGET_MS);
		printf("    of which save (snapshot, write, finish) %.4f ms, whole-blob check %.4f ms (medians);"
		       " CPU time %.4f ms\n",
		       sv.median, ck.median, cpu.median);
		printf("  hand-written save/load (floor)     median %.4f ms  worst %.4f ms  fields cost %.1f x the floor\n",
		       fl.median, fl.worst, f.median / (fl.median > 0 ? fl.median : 1e-9));
		printf("  struct image (to older readers)    median %.4f ms  worst %.4f ms\n", im.median, im.worst);
		printf("target %s\n", f.median <= TARGET_MS ? "met" : "MISSED");
	}
	free(decls);
	free(live);
	free(check);
	free(t_fields);
	free(t_floor);
	free(t_image);
	free(t_save);
	free(t_check);
	free(t_cpu);
	return 0;
}
