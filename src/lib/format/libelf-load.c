/* SPDX-License-Identifier: MIT */
/*
 * libelf through dlopen(), on first use (libelf-load.h tells why).
 */

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "base.h"
#include "libelf-load.h"

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static struct luo_libelf api;
static const struct luo_libelf *_Atomic loaded;
static char load_error[LUO_REASON_MAX]; /* under load_lock */

#define LOAD(field, symbol)                                                                              \
	do {                                                                                             \
		if (!(api.field = (__typeof__(api.field))dlsym(handle, #symbol))) {                    \
			snprintf(load_error, sizeof(load_error), "%s has no %s", LUO_LIBELF_SONAME, #symbol); \
			return;                                                                          \
		}                                                                                        \
	} while (0)

static void load(void)
{
	__typeof__(elf_version) *version;
	const char *err;
	void *handle;

	/* NODELETE: the table outlives any dlclose() of libluo's users. */
	dlerror();
	handle = dlopen(LUO_LIBELF_SONAME, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	if (!handle) {
		err = dlerror();
		snprintf(load_error, sizeof(load_error), "cannot load %s: %s", LUO_LIBELF_SONAME,
			 err ? err : "unknown error");
		return;
	}
	version = (__typeof__(elf_version) *)dlsym(handle, "elf_version");
	if (!version) {
		snprintf(load_error, sizeof(load_error), "%s has no elf_version", LUO_LIBELF_SONAME);
		return;
	}
	LOAD(begin, elf_begin);
	LOAD(end, elf_end);
	LOAD(kind, elf_kind);
	LOAD(getident, elf_getident);
	LOAD(getshdrnum, elf_getshdrnum);
	LOAD(getshdrstrndx, elf_getshdrstrndx);
	LOAD(nextscn, elf_nextscn);
	LOAD(getdata, elf_getdata);
	LOAD(rawdata, elf_rawdata);
	LOAD(strptr, elf_strptr);
	LOAD(errmsg, elf_errmsg);
	LOAD(getehdr, gelf_getehdr);
	LOAD(getshdr, gelf_getshdr);
	LOAD(getdyn, gelf_getdyn);
	if (version(EV_CURRENT) == EV_NONE) {
		snprintf(load_error, sizeof(load_error), "%s does not support this ELF version", LUO_LIBELF_SONAME);
		return;
	}
	loaded = &api;
}

const struct luo_libelf *luo_libelf(char *reason, size_t rlen)
{
	const struct luo_libelf *l = loaded;

	if (l)
		return l;
	/* Only a success is kept: a failure (no fd, no memory, not installed yet) is tried again next time. */
	pthread_mutex_lock(&load_lock);
	if (!loaded)
		load();
	l = loaded;
	if (!l && reason)
		luo_reasonf(reason, rlen, "%s", load_error);
	pthread_mutex_unlock(&load_lock);
	return l;
}
