/* SPDX-License-Identifier: MIT */
/*
 * DOC: opts.c, the options of every verb and the numbers they carry
 *
 * One getopt_long() table for all verbs; a verb takes the options its
 * entry in usage.c's table allows (OPT_BIT()s), any other is bad usage. An
 * option that takes a value may be given once. Numbers are decimal digits
 * only (luo_parse_u64(): no sign, blank or leading zero), within bounds.
 *
 * Layer: calls usage.c and output.c.
 */

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "cleanup.h"
#include "luo/agent.h"
#include "luo-internal.h" /* luo_parse_u64() */
#include "luoctl.h"

int parse_pid(const char *s, pid_t *ret)
{
	uint64_t v;
	int r = luo_parse_u64(s, INT32_MAX, &v);

	if (r == 0 && v == 0)
		r = -EINVAL;
	if (r == 0)
		*ret = (pid_t)v;
	return r;
}

int parse_seconds(const char *s, int max, int *ret)
{
	uint64_t v;
	int r = luo_parse_u64(s, (uint64_t)max, &v);

	if (r == 0 && v == 0)
		r = -EINVAL;
	if (r == 0)
		*ret = (int)v;
	return r;
}

int parse_uid(const char *s, uint32_t *ret)
{
	uint64_t v;
	int r = luo_parse_u64(s, LUO_AGENT_UID_ALL - 1, &v);

	if (r == 0)
		*ret = (uint32_t)v;
	return r;
}

/* Set *@slot to optarg, unless the option came before. */
static int opt_once(const char **slot, const char *name)
{
	char what[48];

	if (*slot) {
		snprintf(what, sizeof(what), "%s given twice", name);
		return usage_error(what, NULL);
	}
	*slot = optarg;
	return -1;
}

int cmd_opts_parse(int argc, char **argv, unsigned allowed, struct cmd_opts *ret)
{
	static const struct option all[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "against", required_argument, NULL, OPT_AGAINST },
		{ "pid", required_argument, NULL, OPT_PID },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "uid", required_argument, NULL, OPT_UID },
		{ "all", no_argument, NULL, OPT_ALL },
		{ "strict", no_argument, NULL, OPT_STRICT },
		{ "types", no_argument, NULL, OPT_TYPES },
	};
	struct option mine[ARRAY_SIZE(all) + 2];
	struct cmd_opts o = { 0 };
	size_t n = 0;
	int c, r = -1;

	mine[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		if (allowed & OPT_BIT(all[i].val))
			mine[n++] = all[i];
	mine[n] = (struct option){ NULL, 0, NULL, 0 };

	opterr = 0;
	while (r < 0 && (c = getopt_long(argc, argv, ":h", mine, NULL)) >= 0) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case OPT_JSON:
			o.json = true;
			break;
		case OPT_ALL:
			o.all = true;
			break;
		case OPT_STRICT:
			o.strict = true;
			break;
		case OPT_TYPES:
			o.types = true;
			break;
		case OPT_AGAINST:
			r = opt_once(&o.against, "--against");
			break;
		case OPT_PID:
			r = opt_once(&o.pid, "--pid");
			break;
		case OPT_TIMEOUT:
			r = opt_once(&o.timeout, "--timeout");
			break;
		case OPT_SOCKET:
			r = opt_once(&o.socket, "--socket");
			break;
		case OPT_UID:
			r = opt_once(&o.uid, "--uid");
			break;
		case ':':
			return usage_error("missing argument to", argv[optind - 1]);
		default:
			/* optopt: the letter of a bad short option; 0 or a long option's value otherwise. */
			if (optopt > 0 && optopt < 0x100) {
				char letter[3] = { '-', (char)optopt, '\0' };

				return usage_error("unknown option", letter);
			}
			return usage_error(optopt ? "option takes no argument" : "unknown option", argv[optind - 1]);
		}
	}
	if (r >= 0)
		return r;
	*ret = o;
	return -1;
}
