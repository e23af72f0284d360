/* SPDX-License-Identifier: MIT */
/*
 * libelf is loaded on first use (format/libelf-load.h), not at start:
 *
 *   present    the manifest reader works (this binary's build-id), and
 *              libelf was not mapped before that first read
 *   unusable   with a libelf.so.1 that has none of its symbols found first
 *              (LD_LIBRARY_PATH, set by meson): every read fails with
 *              -ELIBACC and the reason names the library and the symbol,
 *              the same on a second try; nothing crashes
 */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "libelf-load.h"
#include "manifest.h"
#include "test-util.h"

static bool libelf_mapped(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	bool found = false;

	CHECK(f != NULL);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "/libelf"))
			found = true;
	fclose(f);
	return found;
}

int main(int argc, char **argv)
{
	uint8_t id[64];
	size_t len = 0;
	char reason[256] = "";

	CHECK(argc == 2);
	if (strcmp(argv[1], "present") == 0) {
		CHECK(!libelf_mapped());
		CHECK_OK(luo_elf_build_id("/proc/self/exe", id, sizeof(id), &len));
		CHECK(len > 0);
		CHECK(libelf_mapped());
		CHECK(luo_libelf(reason, sizeof(reason)) != NULL);
		return 0;
	}
	CHECK(strcmp(argv[1], "unusable") == 0);
	for (int i = 0; i < 2; i++) {
		CHECK_ERR(luo_elf_build_id("/proc/self/exe", id, sizeof(id), &len), ELIBACC);
		CHECK(luo_libelf(reason, sizeof(reason)) == NULL);
		fprintf(stderr, "reason: %s\n", reason);
		CHECK(strstr(reason, "libelf.so.1") != NULL);
		CHECK(strstr(reason, "elf_") != NULL);
	}
	return 0;
}
