/* SPDX-License-Identifier: MIT */
/*
 * DOC: fault points, for the crash matrix only
 *
 * Compiled into libluo-faults alone (-DLUO_FAULT_INJECTION; never into
 * libluo, never installed): LUO_FAULT_POINT() in core.c, session.c,
 * update.c and agent-client.c calls luo_fault_point(), which kills the
 * process with SIGKILL -- no cleanup, no atexit, as a crash -- when
 * LUO_TEST_CRASH_AT names that point:
 *
 *   POINT       at the first pass through POINT in this image
 *   POINT#N     at the Nth pass (N >= 1)
 *   next:SPEC   not in this image: SPEC (without "next:") is put back in
 *               the environment for the image the next exec starts, as
 *               luo_update() passes environ on
 *
 * The variable is read once, by a constructor, and taken out of the
 * environment (or rewritten, for next:), so neither a child nor the next
 * image sees it unless asked. A luo_update() given its own envp carries
 * nothing. Before the kill, one line to stderr names the point, so that
 * the driver knows the crash happened where it was asked for.
 */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"

#define FAULT_ENV "LUO_TEST_CRASH_AT"
#define FAULT_NEXT "next:"

static char fault_point[64];   /* "" disarmed */
static unsigned long fault_nth; /* which pass, from 1 */
static unsigned long fault_hits;

__attribute__((constructor)) static void fault_init(void)
{
	const char *v = luo_getenv(FAULT_ENV);
	const char *hash;
	char *end;
	size_t len;

	if (!v)
		return;
	if (strncmp(v, FAULT_NEXT, strlen(FAULT_NEXT)) == 0) {
		char spec[sizeof(fault_point) + 32];

		snprintf(spec, sizeof(spec), "%s", v + strlen(FAULT_NEXT));
		setenv(FAULT_ENV, spec, 1);
		return;
	}
	hash = strchr(v, '#');
	len = hash ? (size_t)(hash - v) : strlen(v);
	fault_nth = 1;
	if (hash) {
		fault_nth = strtoul(hash + 1, &end, 10);
		if (*end || fault_nth == 0)
			len = 0; /* malformed: armed nowhere */
	}
	if (len > 0 && len < sizeof(fault_point)) {
		memcpy(fault_point, v, len);
		fault_point[len] = '\0';
	}
	unsetenv(FAULT_ENV);
}

void luo_fault_point(const char *name)
{
	char line[128];
	int n;

	if (!fault_point[0] || strcmp(name, fault_point) != 0)
		return;
	if (__atomic_add_fetch(&fault_hits, 1, __ATOMIC_SEQ_CST) != fault_nth)
		return;
	n = snprintf(line, sizeof(line), "luo-fault: SIGKILL at %s#%lu (pid %d)\n", name, fault_nth, (int)getpid());
	if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nothing to do: the kill is what matters */
	}
	kill(getpid(), SIGKILL);
	_exit(137); /* not reached */
}
