/* SPDX-License-Identifier: MIT */
#ifndef LUO_LIBELF_LOAD_H
#define LUO_LIBELF_LOAD_H

/*
 * DOC: libelf, loaded on first use
 *
 * Files: libelf-load.c. libluo reads ELF files only to read manifests (an
 * update's old image, luoctl, a rollback's build-id check), never while a
 * new image starts. Linking libelf (and the libz it needs) would load both
 * at every exec, inside the blackout: 0.2 ms on a 2-CPU VM. So the calls
 * manifest-elf.c makes go through a table that the first reader fills with
 * dlopen("libelf.so.1") and dlsym(); it stays loaded for the life of the
 * process. A missing library or symbol makes the reader fail with -ELIBACC
 * and says why, and the next reader tries again; starting an image,
 * adopting a handover and luo_ready() never need it.
 *
 * May call: base. Called by format (manifest-elf.c).
 */

#include <gelf.h>
#include <libelf.h>
#include <stddef.h>

/* The soname read: the one libelf has had since elfutils 0.1xx (ABI stable). */
#define LUO_LIBELF_SONAME "libelf.so.1"

struct luo_libelf {
	__typeof__(elf_begin) *begin;
	__typeof__(elf_end) *end;
	__typeof__(elf_kind) *kind;
	__typeof__(elf_getident) *getident;
	__typeof__(elf_getshdrnum) *getshdrnum;
	__typeof__(elf_getshdrstrndx) *getshdrstrndx;
	__typeof__(elf_nextscn) *nextscn;
	__typeof__(elf_getdata) *getdata;
	__typeof__(elf_rawdata) *rawdata;
	__typeof__(elf_strptr) *strptr;
	__typeof__(elf_errmsg) *errmsg;
	__typeof__(gelf_getehdr) *getehdr;
	__typeof__(gelf_getshdr) *getshdr;
	__typeof__(gelf_getdyn) *getdyn;
};

/*
 * The table, loaded and elf_version() set by the first call that succeeds
 * (thread-safe); NULL with the reason in @reason (if not NULL) if libelf
 * cannot be loaded now. The pointer stays valid for the process's life.
 */
const struct luo_libelf *luo_libelf(char *reason, size_t reason_len);

#endif /* LUO_LIBELF_LOAD_H */
