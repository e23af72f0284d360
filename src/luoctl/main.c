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
 * This file is the table of verbs: each with the options it takes and the
 * function that runs it; main() parses the options (opts.c) and hands the
 * operands to the verb. Each verb's file says what it does.
 *
 * The binaries are hostile input. The manifest reader checks every note
 * (manifest.h); names and paths are escaped on output (output.c).
 *
 * --strict (check, matrix, update, path, history): a component handed
 * over at a lower version because the types of a higher one differ
 * (downgrade), an optional one dropped, or one whose types are unproven is
 * an answer of no (exit 1): for release gates that must not lose state
 * silently.
 *
 * Exit status: 0 success (check: the update would proceed; update: done);
 * 1 the answer is no: check: the update would be refused; update: refused,
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

#define O(x) OPT_BIT(OPT_##x)

static const struct verb {
	const char *name;
	unsigned options; /* O()s: what cmd_opts_parse() takes for it */
	int (*run)(const struct cmd_opts *o, int argc, char **argv);
} verbs[] = {
	{ "manifest", O(JSON) | O(TYPES), cmd_manifest },
	{ "check", O(JSON) | O(AGAINST) | O(PID) | O(STRICT), cmd_check },
	{ "matrix", O(JSON) | O(STRICT), cmd_matrix },
	{ "path", O(JSON) | O(STRICT), cmd_path },
	{ "history", O(JSON) | O(STRICT), cmd_history },
	{ "update", O(JSON) | O(PID) | O(TIMEOUT) | O(STRICT), cmd_update },
	{ "status", O(JSON) | O(SOCKET), cmd_status },
	{ "sessions", O(JSON) | O(SOCKET) | O(UID) | O(ALL), cmd_sessions },
	{ "drop", O(SOCKET) | O(UID), cmd_drop },
	{ "agent", O(JSON) | O(SOCKET) | O(TIMEOUT), cmd_agent },
};

/* The verb argv[0] names, its options parsed; the exit status. */
static int verb_run(const struct verb *v, int argc, char **argv)
{
	struct cmd_opts o;
	int r;

	/* The verb's name stands as argv[0] for getopt_long(). */
	r = cmd_opts_parse(argc, argv, v->options, &o);
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
