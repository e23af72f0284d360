/* SPDX-License-Identifier: MIT */
/*
 * DOC: small helpers shared by the modules
 *
 * Clock, strict number parsing (never atoi: the environment is input from
 * the previous image), close-on-exec toggling, the reason formatter, and the
 * one door to the environment.
 *
 * The environment: every variable libluo reads (the handover, rollback,
 * reaper and control variables, the agent socket, XDG_RUNTIME_DIR,
 * LD_LIBRARY_PATH for manifests, the test fault points) is read through
 * luo_getenv(), which reads nothing in a secure-execution image
 * (getauxval(AT_SECURE) != 0: setuid, setgid or file capabilities). Such an
 * image runs with more privilege than the user who wrote its environment;
 * a handover named there would be a forged one, and its rollback an exec
 * of the user's choice with the image's privilege. So it starts fresh, as
 * if no variable were set, and luo_open() removes the handover variables
 * so that no child inherits them.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <time.h>

#include "base.h"

uint64_t luo_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Decimal digits only, no sign, no blanks, no leading zero, at most @max. */
int luo_parse_u64(const char *s, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;
	size_t i;

	if (!s || !s[0] || (s[0] == '0' && s[1]))
		return -EINVAL;
	for (i = 0; s[i]; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9' || i >= 20)
			return -EINVAL;
		d = (unsigned)(s[i] - '0');
		if (d > max || v > (max - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*ret = v;
	return 0;
}

int luo_set_cloexec(int fd, bool on)
{
	int flags = fcntl(fd, F_GETFD);

	if (flags < 0)
		return -errno;
	if (!!(flags & FD_CLOEXEC) == on)
		return 0;
	flags = on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC;
	if (fcntl(fd, F_SETFD, flags) < 0)
		return -errno;
	return 0;
}

void luo_reasonf(char *reason, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!reason || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(reason, len, fmt, ap);
	va_end(ap);
}

/*
 * Whether this thread runs a component's or a file handler's callback
 * (handler.c's luo_op_*()): libluo's lock is held
 * then, so entry points that take it refuse (-EDEADLK) instead of
 * deadlocking. Per thread: other threads just wait for the lock.
 */
static __thread unsigned int callback_depth;

void luo_callback_enter(void)
{
	callback_depth++;
}

void luo_callback_leave(void)
{
	callback_depth--;
}

bool luo_in_callback(void)
{
	return callback_depth > 0;
}

/* A session's, handler's or component's name: 1..@max bytes. */
bool luo_name_valid(const char *name, size_t max)
{
	size_t len;

	if (!name)
		return false;
	len = strnlen(name, max + 1);
	return len > 0 && len <= max;
}

/* A preserved fd's name (luo_session_preserve_fd_named(), the blob reader). */
bool luo_file_name_valid(const char *name)
{
	size_t len;

	if (!name)
		return false;
	len = strnlen(name, LUO_FILE_NAME_MAX + 1);
	if (len == 0 || len > LUO_FILE_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)name[i] < 0x21 || (unsigned char)name[i] > 0x7e)
			return false;
	return true;
}

bool luo_secure_exec(void)
{
	return getauxval(AT_SECURE) != 0;
}

const char *luo_getenv(const char *name)
{
	return luo_secure_exec() ? NULL : getenv(name);
}

void luo_reason_one_line(char *s)
{
	for (char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
}

int luo_parse_u64_colon(const char *s, uint64_t max, uint64_t *ret, const char **ret_rest)
{
	const char *colon = strchr(s, ':');
	char num[16];
	uint64_t v;
	int r;

	if (!colon || (size_t)(colon - s) >= sizeof(num))
		return -EINVAL;
	memcpy(num, s, (size_t)(colon - s));
	num[colon - s] = '\0';
	r = luo_parse_u64(num, max, &v);
	if (r < 0)
		return r;
	*ret = v;
	*ret_rest = colon + 1;
	return 0;
}
