/* SPDX-License-Identifier: MIT */
/*
 * DOC: luoctl, what binaries declare and what an update between them would
 * do; live updates of running services; the agent's state
 *
 *   luoctl manifest BINARY [--types] [--json]               inspect.c
 *   luoctl check NEW (--against OLD | --pid PID) [--strict] [--json]
 *   luoctl matrix BINARY BINARY... [--strict] [--json]      matrix.c
 *   luoctl path FROM TO BUILD... [--strict] [--json]        path.c
 *   luoctl history DIR HEAD [--strict] [--json]             history.c
 *   luoctl update --pid PID NEW_BINARY [--timeout SECONDS] [--strict] [--json]
 *                                                           update.c
 *   luoctl status [--socket PATH] [--json]                  agent.c
 *   luoctl sessions [--uid UID | --all] [--socket PATH] [--json]
 *   luoctl drop SESSION [--uid UID] [--socket PATH]
 *   luoctl agent update [--timeout SECONDS] [--socket PATH] [--json]
 *
 * This file is the table of verbs: each with the function that runs it;
 * the options each takes are in usage.c's table, which the usage lines are
 * printed from. main() parses the options (opts.c) and hands the operands
 * to the verb. Each verb's file says what it does.
 *
 * The binaries are hostile input. The manifest reader checks every note
 * (manifest.h); names and paths are escaped on output (output.c).
 *
 * --strict (check, matrix, path, history): a component handed over at a
 * lower version because the types of a higher one differ (downgrade), an
 * optional one dropped, or one whose types are unproven is an answer of no
 * (exit 1): for release gates that must not lose state silently. update
 * --strict asks the service to refuse the same (its luo_update() does,
 * before anything is frozen).
 *
 * check, matrix, path and history refuse an update from or to a binary
 * that declares no luo manifest (no .note.luo: it does not link libluo).
 *
 * Exit status: 0 success (check: the update would proceed; update: done);
 * 1 the answer is no: check: the update would be refused; matrix: a binary
 * without a luo manifest (or --strict fails); update: refused,
 * failed or rolled back, the service keeps serving; drop: no such session
 * or not ours; agent update: refused; path: no chain; history: a release
 * inside the window not accepted; 2 bad usage, a binary or process that
 * cannot be read, no peer, no answer, a malformed one, or any other error,
 * reported as a line on stderr, "luoctl: WHAT: WHY" (bad usage: then the
 * usage); also 2 if stdout could not be written (a full disk or a closed
 * pipe must not look like a verdict).
 *
 * Layer: the top; calls the verbs, opts.c, usage.c.
 */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cleanup.h"
#include "luoctl.h"

#ifndef LUOCTL_VERSION
#define LUOCTL_VERSION "unknown"
#endif

static const struct verb {
	const char *name;
	int (*run)(const struct cmd_opts *o, int argc, char **argv);
} verbs[] = {
	{ "manifest", cmd_manifest },
	{ "check", cmd_check },
	{ "matrix", cmd_matrix },
	{ "path", cmd_path },
	{ "history", cmd_history },
	{ "update", cmd_update },
	{ "status", cmd_status },
	{ "sessions", cmd_sessions },
	{ "drop", cmd_drop },
	{ "agent", cmd_agent },
};

/* The verb argv[0] names, its options (usage.c's table) parsed; the exit status. */
static int verb_run(const struct verb *v, int argc, char **argv)
{
	const struct verb_usage *u = verb_usage_find(v->name);
	struct cmd_opts o;
	int r;

	if (!u) {
		fprintf(stderr, "luoctl: %s: no options in the usage table\n", v->name);
		return EXIT_TROUBLE;
	}
	/* The verb's name stands as argv[0] for getopt_long(). */
	r = cmd_opts_parse(argc, argv, u->options, &o);
	if (r >= 0)
		return r;
	return v->run(&o, argc - optind, argv + optind);
}

int main(int argc, char **argv)
{
	const struct verb *v = NULL;
	int r;

	if (argc < 2)
		return usage_error("no command", NULL);
	if (argv[1][0] == '-' && argc > 2)
		return usage_error("unexpected argument", argv[2]);
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		r = 0;
	} else if (strcmp(argv[1], "--version") == 0) {
		printf("luoctl %s\n", LUOCTL_VERSION);
		r = 0;
	} else {
		for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
			if (strcmp(argv[1], verbs[i].name) == 0)
				v = &verbs[i];
		if (!v)
			return usage_error(argv[1][0] == '-' ? "unknown option" : "unknown command", argv[1]);
		r = verb_run(v, argc - 1, argv + 1);
	}
	/* A full disk or a closed pipe must not look like a verdict. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "luoctl: write error: %s\n", strerror(errno));
		return EXIT_TROUBLE;
	}
	return r;
}
