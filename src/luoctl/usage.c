/* SPDX-License-Identifier: MIT */
/*
 * DOC: usage.c, the verbs' synopses and options, the usage text (luoctl
 * --help) and bad usage
 *
 * Each verb's options (OPT_BIT()s: what cmd_opts_parse() takes for it)
 * are in one table here, with its operands; main.c runs the verb with
 * those options, and the usage lines are printed from the same table, so
 * that a line cannot leave out an option the verb takes. man/luoctl.1 says
 * the same at length (tests/test-man.sh checks that its SYNOPSIS names the
 * same options for each verb as --help).
 *
 * Layer: calls output.c.
 */

#include <stdio.h>
#include <string.h>

#include "cleanup.h"
#include "luoctl.h"

#define O(x) OPT_BIT(OPT_##x)

/*
 * The operands of each form of a verb's usage line, with the options that
 * are not optional there (check's --against or --pid); the others follow
 * as "[--OPTION]", in the order of verb_option_words[].
 */
static const struct verb_usage verb_usages[] = {
	{ "manifest", O(JSON) | O(TYPES), { "BINARY" } },
	{ "check", O(JSON) | O(AGAINST) | O(PID) | O(STRICT), { "NEW --against OLD", "NEW --pid PID" } },
	{ "matrix", O(JSON) | O(STRICT), { "BINARY BINARY..." } },
	{ "path", O(JSON) | O(STRICT), { "FROM TO BUILD..." } },
	{ "history", O(JSON) | O(STRICT), { "DIR HEAD" } },
	{ "update", O(JSON) | O(PID) | O(TIMEOUT) | O(STRICT), { "--pid PID NEW_BINARY" } },
	{ "status", O(JSON) | O(SOCKET), { "" } },
	{ "sessions", O(JSON) | O(SOCKET) | O(UID) | O(ALL), { "" } },
	{ "drop", O(SOCKET) | O(UID), { "SESSION" } },
	{ "agent", O(JSON) | O(SOCKET) | O(TIMEOUT), { "update" } },
};

/* The optional options in the order a usage line gives them. */
static const struct {
	unsigned bit;
	const char *option, *arg;
} verb_option_words[] = {
	{ O(TYPES), "--types", NULL },
	{ O(UID), "--uid", "UID" },
	{ O(ALL), "--all", NULL },
	{ O(TIMEOUT), "--timeout", "SECONDS" },
	{ O(STRICT), "--strict", NULL },
	{ O(SOCKET), "--socket", "PATH" },
	{ O(JSON), "--json", NULL },
	{ O(AGAINST), "--against", "OLD" },
	{ O(PID), "--pid", "PID" },
};

const struct verb_usage *verb_usage_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(verb_usages); i++)
		if (strcmp(verb_usages[i].name, name) == 0)
			return &verb_usages[i];
	return NULL;
}

/* "       luoctl VERB FORM [--OPTION ARG]...": --uid and --all, both taken, are one choice. */
static void usage_line(FILE *f, const char *lead, const struct verb_usage *v, const char *form)
{
	fprintf(f, "%sluoctl %s%s%s", lead, v->name, *form ? " " : "", form);
	for (size_t i = 0; i < ARRAY_SIZE(verb_option_words); i++) {
		unsigned bit = verb_option_words[i].bit;
		const char *opt = verb_option_words[i].option, *arg = verb_option_words[i].arg;
		const char *in = strstr(form, opt);

		if (!(v->options & bit))
			continue;
		/* Named by the form itself: not optional there (or the other form's). */
		if (in && (in[strlen(opt)] == ' ' || in[strlen(opt)] == '\0'))
			continue;
		if ((bit == O(AGAINST) || bit == O(PID)) && strstr(form, "--"))
			continue;
		if (bit == O(UID) && (v->options & O(ALL))) {
			fputs(" [--uid UID | --all]", f);
			continue;
		}
		if (bit == O(ALL) && (v->options & O(UID)))
			continue;
		fprintf(f, " [%s%s%s]", opt, arg ? " " : "", arg ? arg : "");
	}
	fputc('\n', f);
}

void usage(FILE *f)
{
	const char *lead = "usage: ";

	for (size_t i = 0; i < ARRAY_SIZE(verb_usages); i++) {
		for (size_t j = 0; j < ARRAY_SIZE(verb_usages[i].forms) && verb_usages[i].forms[j]; j++) {
			usage_line(f, lead, &verb_usages[i], verb_usages[i].forms[j]);
			lead = "       ";
		}
	}
	fputs("       luoctl --help | --version\n"
	      "\n"
	      "manifest  print the components, file handlers and format a binary declares\n"
	      "          in .note.luo (its own and its DT_NEEDED libraries'), the versions\n"
	      "          each reads and writes, the types that cross an update (described\n"
	      "          by the compiler, or unproven) and the hand-recorded layouts\n"
	      "check     negotiate an update from OLD (a binary, or the running process\n"
	      "          PID) to NEW as luo_update() would; print one line per entry and\n"
	      "          whether it would proceed (exit 0) or be refused (exit 1); a\n"
	      "          binary that declares no luo manifest (no .note.luo: it does not\n"
	      "          link libluo) is refused, here and by matrix, path and history\n"
	      "matrix    negotiate every ordered pair of binaries; print a table of\n"
	      "          ok / ok-drop / DOWNGRADE / REFUSED, rows from, columns to\n"
	      "path      the shortest chain of live updates FROM -> ... -> TO through the\n"
	      "          BUILDs, each hop negotiated as check does, with its verdict; hops\n"
	      "          that drop, downgrade or are unproven are flagged (exit 0 found,\n"
	      "          1 none)\n"
	      "history   a release history DIR (NNNN-NAME.json records, a file \"window:\n"
	      "          N\"): can HEAD accept the state of each of the last N releases\n"
	      "          (exit 1 if not), and which read versions of HEAD no update\n"
	      "          inside the window hands over (the code that can go)\n"
	      "update    ask the running libluo service PID (its control socket) to\n"
	      "          live-update to NEW_BINARY and wait: done with the timings (exit\n"
	      "          0), or refused with the report, or rolled back (exit 1)\n"
	      "status    luod's pid, liveupdate-number, uptime, totals, your usage and\n"
	      "          limits, and the sessions you may see\n"
	      "sessions  the sessions luod holds: yours, UID's, or --all you may see\n"
	      "drop      make luod forget SESSION (yours, or UID's) and close its fds\n"
	      "agent update  make luod live-update itself; held sessions survive\n"
	      "\n"
	      "  --json          machine-readable output, one JSON object\n"
	      "  --types         manifest: print each type's description, item by item\n"
	      "  --strict        check, matrix, history: a downgrade (types differ at a\n"
	      "                  higher version), a dropped component or unproven types\n"
	      "                  are an answer of no (exit 1); update: the service\n"
	      "                  refuses the same before it freezes anything (exit 1);\n"
	      "                  path: no such hop\n"
	      "  --against OLD   check: the binary updated from\n"
	      "  --pid PID       check: the running process updated from; update: the\n"
	      "                  service to update\n"
	      "  --timeout SECONDS  update, agent update: wait at most this long for the\n"
	      "                  answer (1..3600, default 30)\n"
	      "  --socket PATH   luod's socket (default: $LUO_AGENT_SOCKET, else\n"
	      "                  /run/luo/agent.sock for root, $XDG_RUNTIME_DIR/luo/agent.sock)\n"
	      "  --uid UID       sessions, drop: that owner's (root only, unless yours)\n"
	      "  --all           sessions: every session you may see\n"
	      "  -h, --help      this text\n"
	      "  --version       the version of luoctl\n"
	      "\n"
	      "A BINARY, OLD, NEW, FROM, TO, BUILD or HEAD may also be a recorded manifest:\n"
	      "a file of what manifest --json printed (its first non-blank byte is '{').\n"
	      "\n"
	      "Exit status: 0 success or update would proceed; 1 the answer is no: the\n"
	      "update would be refused or fails --strict (check), a binary without a luo\n"
	      "manifest or --strict failed (matrix), refused, failed or rolled back\n"
	      "(update), no such session (drop), agent update refused, no chain (path), a\n"
	      "release inside the window not accepted (history); 2 bad usage or error (no\n"
	      "control socket or agent, no answer, a connection closed without one).\n",
	      f);
}

/* Bad usage: say what, then the usage, on stderr. */
int usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "luoctl: %s", what);
	if (arg) {
		fputs(" '", stderr);
		text_puts(stderr, arg);
		fputc('\'', stderr);
	}
	fputc('\n', stderr);
	usage(stderr);
	return EXIT_TROUBLE;
}
