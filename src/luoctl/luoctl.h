/* SPDX-License-Identifier: MIT */
#ifndef LUOCTL_H
#define LUOCTL_H

/*
 * DOC: what luoctl's files share
 *
 * luoctl.c holds the command table, the output of hostile strings and the
 * manifest and report helpers; the verbs that live in their own file
 * (path.c, history.c) and the reader of recorded manifests
 * (manifest-json.c) use them through this header. Nothing here is part of
 * libluo.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "luo/luo.h"
#include "manifest.h"

#define EXIT_REFUSED 1
#define EXIT_TROUBLE 2

/* luoctl.c */
void usage(FILE *f);
int usage_error(const char *what, const char *arg);
size_t text_width(const char *s, size_t max);
void text_put(FILE *f, const char *s, size_t max, size_t width);
void text_puts(FILE *f, const char *s);
void json_put(FILE *f, const char *s, size_t max);
void json_puts(FILE *f, const char *s);
void json_range(FILE *f, struct luo_version_range r);
const char *kind_name(uint32_t kind);
const char *verdict_name(enum luo_verdict v);
void print_error(const char *what, int err, const char *reason);
int manifest_read(const char *path, pid_t pid, struct luo_manifest **ret);
int negotiate(const struct luo_manifest *old, const struct luo_manifest *new, struct luo_report_entry **ret_entries,
	      size_t *ret_n);
bool entry_strict_fails(const struct luo_report_entry *e);
bool report_strict_fails(const struct luo_report_entry *e, size_t n);
int report_entry_print(const struct luo_report_entry *e);
void report_entry_json(const struct luo_report_entry *e);
const char *path_basename(const char *path);

/*
 * manifest-json.c: the manifest of @path, a binary or a recorded manifest
 * (what `luoctl manifest --json` prints: a file whose first non-blank byte
 * is '{'). Errors as luo_manifest_read_file(), -EBADMSG for a malformed
 * record (@reason says where).
 */
int luoctl_manifest_read_path(const char *path, struct luo_manifest **ret, char *reason, size_t reason_len);

/* fields.c: declared fields in manifest, check and matrix (text and JSON) */
void fields_manifest_text(const struct luo_manifest *m);
void fields_manifest_json(const struct luo_manifest *m); /* ,"fields":[...] */
int fields_report_text(const struct luo_manifest *old, const struct luo_manifest *new,
		       const struct luo_report_entry *e);
int fields_report_json(const struct luo_manifest *old, const struct luo_manifest *new,
		       const struct luo_report_entry *entries, size_t n_entries); /* ,"fields":[...] */
int fields_matrix_text(const char *const *labels, size_t n, struct luo_manifest **m);

/* path.c, history.c */
int cmd_path(int argc, char **argv);
int cmd_history(int argc, char **argv);

#endif /* LUOCTL_H */
