/* SPDX-License-Identifier: MIT */
#ifndef LUO_CLEANUP_H
#define LUO_CLEANUP_H

/*
 * DOC: scope-bound cleanup
 *
 * _cleanup_free_ / _cleanup_close_ release at scope exit; TAKE_PTR / TAKE_FD
 * hand ownership on, leaving NULL / -1 behind so the cleanup does nothing.
 * A function uses these or reverse-order goto labels, never both.
 */

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

/* close() that keeps errno, for cleanup paths. NULL-safe in spirit: -1 ok. */
static inline int safe_close(int fd)
{
	if (fd >= 0) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	return -1;
}

static inline void closep(int *fd)
{
	safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

#define TAKE_PTR(p)                                                            \
	({                                                                     \
		__typeof__(p) _tp = (p);                                       \
		(p) = NULL;                                                    \
		_tp;                                                           \
	})

#define TAKE_FD(fd)                                                            \
	({                                                                     \
		int _tf = (fd);                                                \
		(fd) = -1;                                                     \
		_tf;                                                           \
	})

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif /* LUO_CLEANUP_H */
