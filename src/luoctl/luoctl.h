/* SPDX-License-Identifier: MIT */
#ifndef LUOCTL_H
#define LUOCTL_H

/*
 * DOC: what luoctl's files share, grouped by the file that owns it
 *
 * luoctl is split in layers; a file calls only the ones below it:
 *
 *   main.c        the table of verbs: name, options, run
 *   verbs         inspect.c (manifest, check), matrix.c, path.c,
 *                 history.c (release histories), update.c (a service's
 *                 control socket), agent.c (status, sessions, drop,
 *                 agent update)
 *   peer.c        connecting with a bound, receiving checked messages
 *   report.c      reading manifests, negotiating, wording a report
 *   manifest-json.c  recorded manifests (what manifest --json printed)
 *   opts.c        the options of every verb, numbers from the command line
 *   usage.c       the usage text, bad-usage errors
 *   output.c      hostile strings out as text and JSON, errors on stderr
 *
 * Every verb is three steps: its arguments parsed into a request, the
 * request run into a result struct, the result handed to a text or a JSON
 * printer. Errors are negative errnos inside, as in libluo; a verb returns
 * the exit status. Nothing here is part of libluo.
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

/* Reasons the manifest reader gives: one line. */
#define REASON_MAX 256

#define MAX(a, b) ((a) > (b) ? (a) : (b))
/* A fixed array from the wire, as a string: cut at its size. */
#define WIRE_STR(arr) (arr), sizeof(arr)

/* ------------------------------------------------------------------------ */
/* output.c: hostile strings out; errors on stderr                            */

/* Bytes of @s written by text_put(): control bytes take four. */
size_t text_width(const char *s, size_t max);
/* @s, at most @max bytes, control bytes as \xNN; then spaces up to @width. */
void text_put(FILE *f, const char *s, size_t max, size_t width);
void text_puts(FILE *f, const char *s);
/* "  FROM -> TO", both escaped: the head of a pair's line in matrix's sections. */
void text_pair_put(FILE *f, const char *from, const char *to);
/* @s, at most @max bytes, as a JSON string that always parses. */
void json_put(FILE *f, const char *s, size_t max);
void json_puts(FILE *f, const char *s);
void json_range(FILE *f, struct luo_version_range r);
/* JSON members "error", "errno" and "message" of the negative errno @err. */
void json_error(int err);
/* "luoctl: WHAT: REASON (strerror)", REASON optional. */
void print_error(const char *what, int err, const char *reason);

/* ------------------------------------------------------------------------ */
/* usage.c: the verbs' options and synopses; the usage text                  */

struct verb_usage {
	const char *name;
	unsigned options;     /* OPT_BIT()s: what cmd_opts_parse() takes for it */
	const char *forms[2]; /* the operands of each usage line (NULL: none more) */
};

/* The verb @name's options and usage, or NULL if there is no such verb. */
const struct verb_usage *verb_usage_find(const char *name);
/* The usage, generated from the verbs' table: every option each takes. */
void usage(FILE *f);
/* Bad usage: say what (and @arg), then the usage, on stderr; EXIT_TROUBLE. */
int usage_error(const char *what, const char *arg);

/* ------------------------------------------------------------------------ */
/* opts.c: the options of a verb                                              */

enum {
	OPT_JSON = 0x100,
	OPT_AGAINST,
	OPT_PID,
	OPT_TIMEOUT,
	OPT_SOCKET,
	OPT_UID,
	OPT_ALL,
	OPT_STRICT,
	OPT_TYPES,
};
#define OPT_BIT(o) (1u << ((o) - OPT_JSON))

struct cmd_opts {
	bool json;
	bool all;
	bool strict;
	bool types;
	const char *against;
	const char *pid;
	const char *timeout;
	const char *socket;
	const char *uid;
};

/*
 * The options of one verb, those of @allowed (OPT_BIT()s) and --help.
 * getopt_long() permutes, so options may follow the operands; "--" ends
 * them; the operands are then argv[optind..]. Return: -1 go on, or the
 * exit status of the verb (--help, bad usage).
 */
int cmd_opts_parse(int argc, char **argv, unsigned allowed, struct cmd_opts *ret);
/* Decimal digits only, 1..INT32_MAX. */
int parse_pid(const char *s, pid_t *ret);
/* Decimal digits only, 1..@max seconds. */
int parse_seconds(const char *s, int max, int *ret);
/* A uid: decimal digits only, below the agent protocol's special values. */
int parse_uid(const char *s, uint32_t *ret);

/* ------------------------------------------------------------------------ */
/* report.c: manifests, negotiation, reports                                  */

const char *kind_name(uint32_t kind);
const char *verdict_name(enum luo_verdict v);
/* The label of @path: its basename, or the path itself if there is none. */
const char *path_basename(const char *path);
/* The manifest of @path, or of process @pid if > 0 (@path then names it); errors said on stderr. */
int manifest_read(const char *path, pid_t pid, struct luo_manifest **ret);
/* Whether @m declares the handover format: false for a binary that does not link libluo (no .note.luo). */
bool manifest_declares_luo(const struct luo_manifest *m);
/*
 * luo_negotiate() with every entry of @old present: 0 proceed, -EPROTO
 * refused, else said on stderr. A side that declares no luo manifest is
 * refused: one entry, the format, REFUSE, cause not-declared.
 */
int negotiate(const struct luo_manifest *old, const struct luo_manifest *new, struct luo_report_entry **ret_entries,
	      size_t *ret_n);
/* --strict: a component downgraded, dropped, or handed over with unproven types. */
bool entry_strict_fails(const struct luo_report_entry *e);
bool report_strict_fails(const struct luo_report_entry *e, size_t n);
bool report_has(const struct luo_report_entry *e, size_t n, enum luo_verdict v);

/* What an update's report comes to, in the words of matrix, path and history. */
struct report_summary {
	bool proceed;     /* negotiation said yes */
	bool dropped;     /* some entry dropped */
	bool downgraded;  /* some entry handed over lower than it could be */
	bool unproven;    /* some component's types unproven (whatever its verdict) */
	bool strict_fails;
};
struct report_summary report_summarize(const struct luo_report_entry *e, size_t n, int r);
/* "REFUSED", "DOWNGRADE", "ok-drop", "ok?" (strict fails) or "ok". */
const char *report_summary_word(const struct report_summary *s);
/*
 * Negotiate every ordered pair of @m[0..n) (not a binary with itself),
 * into @cells[from * n + to]; 0, or the error of negotiate() (said).
 */
int report_pairs(struct luo_manifest *const *m, size_t n, struct report_summary *cells);

/* One entry as luo_report_entry_format() words it, escaped, indented: 0 or -ENOMEM/-EINVAL. */
int report_entry_print(const struct luo_report_entry *e);
void report_entry_json(const struct luo_report_entry *e);
/* @e[0..n) as a JSON array of report_entry_json(). */
void report_json(const struct luo_report_entry *e, size_t n);

/* ------------------------------------------------------------------------ */
/* manifest-json.c                                                            */

/*
 * The manifest of @path, a binary or a recorded manifest (what `luoctl
 * manifest --json` prints: a file whose first non-blank byte is '{').
 * Errors as luo_manifest_read_file(), -EBADMSG for a malformed record
 * (@reason says where).
 */
int luoctl_manifest_read_path(const char *path, struct luo_manifest **ret, char *reason, size_t reason_len);

/* ------------------------------------------------------------------------ */
/* The verbs: @o parsed by main.c, @argv[0..argc) the operands; the exit status. */

int cmd_manifest(const struct cmd_opts *o, int argc, char **argv); /* inspect.c */
int cmd_check(const struct cmd_opts *o, int argc, char **argv);    /* inspect.c */
int cmd_matrix(const struct cmd_opts *o, int argc, char **argv);   /* matrix.c */
int cmd_path(const struct cmd_opts *o, int argc, char **argv);     /* path.c */
int cmd_history(const struct cmd_opts *o, int argc, char **argv);  /* history.c */
int cmd_update(const struct cmd_opts *o, int argc, char **argv);   /* update.c */
int cmd_status(const struct cmd_opts *o, int argc, char **argv);   /* agent.c */
int cmd_sessions(const struct cmd_opts *o, int argc, char **argv); /* agent.c */
int cmd_drop(const struct cmd_opts *o, int argc, char **argv);     /* agent.c */
int cmd_agent(const struct cmd_opts *o, int argc, char **argv);    /* agent.c */

/* fields.c: declared fields in manifest, check and matrix (text and JSON) */
void fields_manifest_text(const struct luo_manifest *m);
void fields_manifest_json(const struct luo_manifest *m); /* ,"fields":[...] */
int fields_report_text(const struct luo_manifest *old, const struct luo_manifest *new,
		       const struct luo_report_entry *e);
int fields_report_json(const struct luo_manifest *old, const struct luo_manifest *new,
		       const struct luo_report_entry *entries, size_t n_entries); /* ,"fields":[...] */
int fields_matrix_text(const char *const *labels, size_t n, struct luo_manifest **m);

#endif /* LUOCTL_H */
