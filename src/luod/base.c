/* SPDX-License-Identifier: MIT */
/*
 * DOC: base.c, what every file of luod uses: the log, the clocks, epoll
 *
 * The bottom layer of luod: it calls nothing of luod's own. The log is one
 * write(2) per line on stderr (journald takes it from there), so lines of
 * the closer thread and of the loop do not mix.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "luod.h"

/*
 * Names, paths and reasons in a line may come from clients: every control
 * byte (< 0x20, 0x7f) is written as \xNN, as luoctl prints them, so a
 * session name can neither end the line and forge the next one nor send
 * escape sequences to a terminal. A line is one line, whatever it says.
 */
void luod_log(const char *fmt, ...)
{
	char line[LUOD_LOG_LINE_MAX], out[LUOD_LOG_LINE_MAX * 4 + 1];
	size_t k = 0;
	va_list ap;
	int n;

	n = snprintf(line, sizeof(line), "luod[%d]: ", (int)getpid());
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = (int)sizeof(line) - 1; /* truncated */
	for (int i = 0; i < n; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c < 0x20 || c == 0x7f) {
			static const char hex[] = "0123456789abcdef";

			out[k++] = '\\';
			out[k++] = 'x';
			out[k++] = hex[c >> 4];
			out[k++] = hex[c & 15];
		} else {
			out[k++] = (char)c;
		}
	}
	out[k++] = '\n';
	/* One write per line: lines of concurrent writers do not mix. */
	(void)!write(STDERR_FILENO, out, k);
}

uint64_t luod_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec;
}

uint64_t luod_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int luod_epoll_set(struct luod *d, int fd, void *src, uint32_t events, bool add)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };

	if (epoll_ctl(d->epfd, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	return 0;
}
