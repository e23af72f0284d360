/* SPDX-License-Identifier: MIT */
/*
 * DOC: output.c, hostile strings out: text, JSON, errors
 *
 * Names, paths and reasons come from binaries and peers, which are hostile
 * input: control bytes go out as \xNN in text, so that a name cannot drive
 * the terminal, and JSON strings per RFC 8259, with control bytes and
 * bytes that are not UTF-8 as \u00XX, so that the output always parses.
 * Every string luoctl prints in JSON goes through json_put(): there is no
 * other escaping.
 *
 * Layer: the bottom of luoctl; calls libc only.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "luoctl.h"

/* Bytes of @s written by text_put(): control bytes take four. */
size_t text_width(const char *s, size_t max)
{
	size_t i, w = 0;

	for (i = 0; i < max && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		w += c < 0x20 || c == 0x7f ? 4 : 1;
	}
	return w;
}

/* @s, at most @max bytes, control bytes as \xNN; then spaces up to @width. */
void text_put(FILE *f, const char *s, size_t max, size_t width)
{
	size_t i, w = 0;

	for (i = 0; i < max && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f) {
			fprintf(f, "\\x%02x", c);
			w += 4;
		} else {
			fputc(c, f);
			w++;
		}
	}
	for (; w < width; w++)
		fputc(' ', f);
}

void text_puts(FILE *f, const char *s)
{
	text_put(f, s, SIZE_MAX, 0);
}

void text_pair_put(FILE *f, const char *from, const char *to)
{
	fputs("  ", f);
	text_puts(f, from);
	fputs(" -> ", f);
	text_puts(f, to);
}

/* Length of the valid UTF-8 sequence of 2 to 4 bytes at @p, else 0. */
static size_t utf8_len(const unsigned char *p, size_t max)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	/* No overlong forms, no surrogates, nothing above U+10FFFF. */
	if (p[0] == 0xe0)
		lo = 0xa0;
	else if (p[0] == 0xed)
		hi = 0x9f;
	else if (p[0] == 0xf0)
		lo = 0x90;
	else if (p[0] == 0xf4)
		hi = 0x8f;
	if (n > max)
		return 0;
	for (i = 1; i < n; i++) {
		if (p[i] < (i == 1 ? lo : 0x80) || p[i] > (i == 1 ? hi : 0xbf))
			return 0;
	}
	return n;
}

/* @s, at most @max bytes, as a JSON string that always parses. */
void json_put(FILE *f, const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	fputc('"', f);
	while (i < max && p[i]) {
		size_t n = p[i] >= 0x80 ? utf8_len(p + i, max - i) : 0;

		if (n) {
			fwrite(p + i, 1, n, f);
			i += n;
			continue;
		}
		if (p[i] == '"' || p[i] == '\\')
			fprintf(f, "\\%c", p[i]);
		else if (p[i] < 0x20 || p[i] >= 0x7f)
			fprintf(f, "\\u%04x", p[i]);
		else
			fputc(p[i], f);
		i++;
	}
	fputc('"', f);
}

void json_puts(FILE *f, const char *s)
{
	json_put(f, s, SIZE_MAX);
}

void json_range(FILE *f, struct luo_version_range r)
{
	fprintf(f, "[%" PRIu32 ",%" PRIu32 "]", r.min, r.max);
}

/*
 * "luoctl: WHAT: REASON (strerror)". The reader's reasons start with the
 * file they are about, which may be WHAT or one of its libraries; WHAT is
 * not repeated, nor is strerror when the reason already ends with it.
 */
void print_error(const char *what, int err, const char *reason)
{
	size_t what_len = strlen(what), reason_len = reason ? strnlen(reason, REASON_MAX) : 0;
	const char *es = strerror(-err);
	size_t es_len = strlen(es);

	fputs("luoctl: ", stderr);
	if (reason_len == 0) {
		text_puts(stderr, what);
		fprintf(stderr, ": %s\n", es);
		return;
	}
	if (strncmp(reason, what, what_len) != 0 || strncmp(reason + what_len, ": ", 2) != 0) {
		text_puts(stderr, what);
		fputs(": ", stderr);
	}
	text_put(stderr, reason, reason_len, 0);
	if (reason_len < es_len || strcmp(reason + reason_len - es_len, es) != 0)
		fprintf(stderr, " (%s)", es);
	fputc('\n', stderr);
}

static const char *errno_name(int err)
{
	switch (-err) {
	case EPROTO: return "EPROTO";
	case EUCLEAN: return "EUCLEAN";
	case ENOENT: return "ENOENT";
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case EINVAL: return "EINVAL";
	case EBUSY: return "EBUSY";
	case ENOEXEC: return "ENOEXEC";
	case ENOSPC: return "ENOSPC";
	case EDQUOT: return "EDQUOT";
	case ENOMEM: return "ENOMEM";
	case EBADMSG: return "EBADMSG";
	case E2BIG: return "E2BIG";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
	case ECONNABORTED: return "ECONNABORTED";
	case ENODATA: return "ENODATA";
	}
	return NULL;
}

/* "-71 (EPROTO: Protocol error)" as JSON members "error" and "message". */
void json_error(int err)
{
	const char *name = errno_name(err);

	printf("\"error\":%d,\"errno\":", err);
	if (name)
		json_puts(stdout, name);
	else
		fputs("null", stdout);
	fputs(",\"message\":", stdout);
	json_puts(stdout, err ? strerror(-err) : "");
}
