/* SPDX-License-Identifier: MIT */
/*
 * DOC: usage.c, the usage text (luoctl --help) and bad usage
 *
 * The text says every verb and option; man/luoctl.1 says the same at
 * length (tests/test-man.sh checks that they agree).
 *
 * Layer: calls output.c.
 */

#include <stdio.h>

#include "luoctl.h"

void usage(FILE *f)
{
	fputs("usage: luoctl manifest BINARY [--types] [--json]\n"
	      "       luoctl check NEW --against OLD [--strict] [--json]\n"
	      "       luoctl check NEW --pid PID [--strict] [--json]\n"
	      "       luoctl matrix BINARY BINARY... [--strict] [--json]\n"
	      "       luoctl path FROM TO BUILD... [--strict] [--json]\n"
	      "       luoctl history DIR HEAD [--strict] [--json]\n"
	      "       luoctl update --pid PID NEW_BINARY [--timeout SECONDS] [--json]\n"
	      "       luoctl status [--socket PATH] [--json]\n"
	      "       luoctl sessions [--uid UID | --all] [--socket PATH] [--json]\n"
	      "       luoctl drop SESSION [--uid UID] [--socket PATH]\n"
	      "       luoctl agent update [--timeout SECONDS] [--socket PATH] [--json]\n"
	      "       luoctl --help | --version\n"
	      "\n"
	      "manifest  print the components, file handlers and format a binary declares\n"
	      "          in .note.luo (its own and its DT_NEEDED libraries'), the versions\n"
	      "          each reads and writes, the types that cross an update (described\n"
	      "          by the compiler, or unproven) and the hand-recorded layouts\n"
	      "check     negotiate an update from OLD (a binary, or the running process\n"
	      "          PID) to NEW as luo_update() would; print one line per entry and\n"
	      "          whether it would proceed (exit 0) or be refused (exit 1)\n"
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
	      "  --strict        check, matrix, update, history: a downgrade (types differ\n"
	      "                  at a higher version), a dropped component or unproven\n"
	      "                  types are an answer of no (exit 1); path: no such hop\n"
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
	      "Exit status: 0 success or update would proceed; 1 the answer is no: update\n"
	      "would be refused (check), was refused, failed or rolled back (update),\n"
	      "no such session (drop), agent update refused, no chain (path), a release\n"
	      "inside the window not accepted (history); 2 bad usage or error (no\n"
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
