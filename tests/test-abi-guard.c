/* SPDX-License-Identifier: MIT */
/*
 * The ABI guard: every struct a component writes is described next to it
 * with LUO_LAYOUT(), and its fingerprint per (component, version) is pinned
 * in a checked-in file. A layout that changes without a version bump fails
 * here, naming the component and the version.
 *
 *   test-abi-guard [--all-pinned] --pinned FILE BINARY...
 *	every layout in the binaries' manifests must match its pinned line
 *	("component version fingerprint"); a (component, version) with no
 *	line fails too, and so do two binaries that disagree; with
 *	--all-pinned, so does a pinned line no binary declares (a layout
 *	dropped from the source). Exit 0 / 1.
 *
 *   test-abi-guard --expect-caught COMPONENT --pinned FILE BINARY...
 *	the same check must fail with COMPONENT's layout changed: proves the guard
 *	catches a deliberately changed layout (tests/abi-guard-fixture.c).
 *
 * Why a pinned file and not a comparison between builds: a layout changed
 * in place changes every build at once, so only a record kept outside the
 * build can notice it.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"

#define PINNED_MAX 1024
#define MESSAGE_MAX 4096

struct pin {
	char component[LUO_ABI_NOTE_NAME_SIZE];
	uint32_t version;
	uint64_t fingerprint;
	bool seen;
};

static struct pin pins[PINNED_MAX];
static size_t n_pins;
static char messages[MESSAGE_MAX];

static void complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void complain(const char *fmt, ...)
{
	size_t len = strlen(messages);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(messages + len, sizeof(messages) - len, fmt, ap);
	va_end(ap);
}

static int read_pins(const char *path)
{
	char line[256];
	unsigned lineno = 0;
	FILE *f = fopen(path, "re");

	if (!f) {
		fprintf(stderr, "test-abi-guard: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		struct pin *p = &pins[n_pins];
		char hex[32];

		lineno++;
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (n_pins >= PINNED_MAX ||
		    sscanf(line, "%47s %" SCNu32 " %31s", p->component, &p->version, hex) != 3 ||
		    strlen(hex) != 16 || sscanf(hex, "%" SCNx64, &p->fingerprint) != 1) {
			fprintf(stderr, "test-abi-guard: %s:%u: expected \"component version fingerprint\"\n", path,
				lineno);
			fclose(f);
			return -EINVAL;
		}
		n_pins++;
	}
	fclose(f);
	return 0;
}

static struct pin *find_pin(const char *component, uint32_t version)
{
	for (size_t i = 0; i < n_pins; i++)
		if (pins[i].version == version && strcmp(pins[i].component, component) == 0)
			return &pins[i];
	return NULL;
}

/* Check one binary's layouts: the number of problems found. */
static int check_binary(const char *path)
{
	struct luo_manifest *m;
	char reason[512];
	int problems = 0, r;

	r = luo_manifest_read_file(path, &m, reason, sizeof(reason));
	if (r < 0) {
		complain("%s: cannot read the manifest: %s\n", path, reason);
		return 1;
	}
	for (size_t i = 0; i < m->n_layouts; i++) {
		const struct luo_manifest_layout *l = &m->layouts[i];
		struct pin *p = find_pin(l->component, l->version);

		if (!p) {
			complain("%s: component '%s' version %u: layout %016" PRIx64 " is not pinned; "
				 "if this version is new, add the line \"%s %u %016" PRIx64 "\" to the pinned file\n",
				 path, l->component, l->version, l->fingerprint, l->component, l->version, l->fingerprint);
			problems++;
		} else if (p->fingerprint != l->fingerprint) {
			complain("%s: component '%s' version %u: layout changed (fingerprint %016" PRIx64
				 ", pinned %016" PRIx64 "); a changed layout needs a new version\n",
				 path, l->component, l->version, l->fingerprint, p->fingerprint);
			problems++;
		} else {
			p->seen = true;
		}
	}
	luo_manifest_free(m);
	return problems;
}

int main(int argc, char **argv)
{
	const char *expect = NULL, *pinned = NULL;
	bool all_pinned = false;
	int i = 1, problems = 0;
	size_t n_seen = 0;

	for (; i < argc && argv[i][0] == '-'; i += 2) {
		if (strcmp(argv[i], "--all-pinned") == 0) {
			all_pinned = true;
			i--;
			continue;
		}
		if (i + 1 >= argc)
			break;
		if (strcmp(argv[i], "--expect-caught") == 0)
			expect = argv[i + 1];
		else if (strcmp(argv[i], "--pinned") == 0)
			pinned = argv[i + 1];
		else
			break;
	}
	if (!pinned || i >= argc) {
		fprintf(stderr, "usage: test-abi-guard [--expect-caught COMPONENT] --pinned FILE BINARY...\n");
		return 2;
	}
	if (read_pins(pinned) < 0)
		return 2;
	for (; i < argc; i++)
		problems += check_binary(argv[i]);
	for (size_t k = 0; k < n_pins; k++)
		n_seen += pins[k].seen;

	if (expect) {
		char needle[LUO_ABI_NOTE_NAME_SIZE + 16];

		/* Caught as a changed layout, not merely unpinned or unreadable. */
		snprintf(needle, sizeof(needle), "component '%s' version", expect);
		printf("%s", messages);
		if (problems > 0 && strstr(messages, needle) && strstr(messages, "layout changed")) {
			printf("ok - the guard caught the changed layout of '%s'\n", expect);
			return 0;
		}
		printf("not ok - the guard did not catch a changed layout of '%s'\n", expect);
		return 1;
	}
	if (problems) {
		printf("%snot ok - %d layout problem(s)\n", messages, problems);
		return 1;
	}
	if (n_seen == 0 || (all_pinned && n_seen != n_pins)) {
		for (size_t k = 0; k < n_pins; k++)
			if (!pins[k].seen)
				printf("component '%s' version %u: pinned, but no binary declares its layout\n",
				       pins[k].component, pins[k].version);
		printf("not ok - %zu of %zu pinned layouts seen\n", n_seen, n_pins);
		return 1;
	}
	printf("ok - %zu pinned layouts match, no unpinned layout\n", n_seen);
	return 0;
}
