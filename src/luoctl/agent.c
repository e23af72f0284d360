/* SPDX-License-Identifier: MIT */
/*
 * DOC: agent.c, the verbs that ask luod: status, sessions, drop, agent update
 *
 *   luoctl status [--socket PATH] [--json]
 *   luoctl sessions [--uid UID | --all] [--socket PATH] [--json]
 *   luoctl drop SESSION [--uid UID] [--socket PATH]
 *   luoctl agent update [--timeout SECONDS] [--socket PATH] [--json]
 *
 * Requests STATUS (+ LIST), LIST, DROP and UPDATE to luod, at --socket,
 * $LUO_AGENT_SOCKET or agent.h's default; whoever listens there must be
 * root or our uid. Every message received is checked as agent.h says
 * (peer.c: sizes, version, seq; counts against a named maximum here);
 * names and reasons from the peer are hostile like the binaries' and
 * escaped the same way (output.c). A list is read whole before it is
 * printed, in memory grown as the sessions come, not as the count says.
 *
 * Exit: 0; 1 drop: no such session or not ours; sessions: not allowed;
 * agent update: refused or rolled back; 2 bad usage, no agent, no answer,
 * a malformed one.
 *
 * Layer: a verb; calls peer.c, opts.c, usage.c and output.c.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "luo/agent.h"
#include "base.h"
#include "luoctl.h"
#include "peer.h"
#include "wire.h"

/* status / sessions / drop: the agent answers at once or not at all. */
#define AGENT_TIMEOUT_S 10
/* agent update: how long to wait for the answer, by default and at most. */
#define AGENT_UPDATE_TIMEOUT_DEFAULT_S 30
#define AGENT_UPDATE_TIMEOUT_MAX_S 3600
/* Sessions in one LIST reply taken from the agent. */
#define AGENT_LIST_MAX (1u << 20)
/* The first room for a list's sessions; doubled as they come. */
#define AGENT_LIST_CHUNK 64u

/* ------------------------------------------------------------------------ */
/* Talking to luod                                                           */

/*
 * The agent's socket: --socket, else $LUO_AGENT_SOCKET, else agent.h's
 * defaults; once connected, @timeout_s for the answers.
 */
static int agent_connect(const char *opt, int timeout_s, struct peer *p)
{
	_cleanup_close_ int fd = -1;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *env = getenv(LUO_AGENT_SOCKET_ENV);
	struct ucred cred = { .uid = (uid_t)-1 };
	socklen_t cred_len = sizeof(cred), sa_len = 0;
	int r;

	if (opt) {
		r = strlen(opt) < sizeof(sa.sun_path) ? 0 : -ENAMETOOLONG;
		if (r == 0) {
			strcpy(sa.sun_path, opt);
			sa_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(opt) + 1);
		}
	} else {
		r = luo_agent_socket_address(geteuid(), &sa, &sa_len); /* libluo's rule, agent.h */
	}
	if (r == -ENOENT) {
		fprintf(stderr, "luoctl: agent: no socket: give --socket PATH, or set %s or XDG_RUNTIME_DIR\n",
			LUO_AGENT_SOCKET_ENV);
		return r;
	}
	if (r < 0) {
		fputs("luoctl: agent: ", stderr);
		text_puts(stderr, opt ? opt : env ? env : "");
		fprintf(stderr, ": socket path longer than %zu bytes\n", sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		print_error("socket", -errno, NULL);
		return -errno;
	}
	r = connect_bounded(fd, &sa, sa_len);
	if (r < 0) {
		fputs("luoctl: agent ", stderr);
		text_puts(stderr, sa.sun_path);
		fprintf(stderr, ": %s (is luod running?)\n", r == -ETIMEDOUT ? "accepts no connection" : strerror(-r));
		return r;
	}
	/* Whoever listens there sees our requests and chooses our answers: root or us only. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) < 0 || cred_len != sizeof(cred) ||
	    (cred.uid != 0 && cred.uid != geteuid())) {
		fputs("luoctl: agent ", stderr);
		text_puts(stderr, sa.sun_path);
		fprintf(stderr, ": listened on by uid %d, neither root nor us: refusing to use it\n",
			cred_len == sizeof(cred) ? (int)cred.uid : -1);
		return -EPERM;
	}
	p->fd = TAKE_FD(fd);
	p->sender = 0;
	p->what = "agent";
	p->deadline = now_ms() + (int64_t)timeout_s * 1000;
	return 0;
}

/* Send one request and read its reply (checked, reason terminated). */
static int agent_call(const struct peer *p, uint16_t op, uint32_t seq, uint32_t uid, const char *name, size_t info_size,
		      struct luo_agent_reply *ret_reply)
{
	struct luo_agent_request req;
	bool closed;
	int r;

	memset(&req, 0, sizeof(req));
	luo_wire_header_init(&req.hdr, sizeof(req), op, seq);
	req.uid = uid;
	req.reply_size = sizeof(struct luo_agent_reply);
	req.info_size = (uint32_t)info_size;
	if (name)
		memcpy(req.name, name, strlen(name)); /* checked: under LUO_AGENT_NAME_SIZE */
	r = luo_wire_send(p->fd, &req, sizeof(req), NULL, 0);
	if (r < 0) {
		print_error("agent", r, "cannot send the request");
		return r;
	}
	r = recv_struct(p, LUO_AGENT_REPLY_SIZE_VER0, op, seq, ret_reply, sizeof(*ret_reply), &closed);
	if (r < 0)
		return r;
	if (closed) {
		fputs("luoctl: agent: closed the connection without an answer\n", stderr);
		return -ECONNRESET;
	}
	ret_reply->reason[sizeof(ret_reply->reason) - 1] = '\0';
	return 0;
}

/* "luoctl: agent: REASON (strerror)" for an error reply. */
static void agent_refused(const char *what, const struct luo_agent_reply *reply)
{
	fprintf(stderr, "luoctl: %s: ", what);
	if (reply->reason[0]) {
		text_put(stderr, WIRE_STR(reply->reason), 0);
		fprintf(stderr, " (%s)\n", strerror(-reply->error));
	} else {
		fprintf(stderr, "%s\n", strerror(-reply->error));
	}
}

/* ------------------------------------------------------------------------ */
/* Sessions                                                                  */

struct session_list {
	struct luo_agent_session_info *info;
	uint32_t n, cap;
};

static void session_list_done(struct session_list *l)
{
	free(l->info);
	*l = (struct session_list){ 0 };
}

/* @count session infos into @l; 0 or a negative errno (said). */
static int sessions_read(const struct peer *p, uint32_t seq, uint32_t count, struct session_list *l)
{
	bool closed;
	int r;

	for (uint32_t i = 0; i < count; i++) {
		if (l->n == l->cap) {
			/* Grown as the sessions come: the count is the peer's word. */
			uint32_t cap = l->cap ? l->cap * 2 : AGENT_LIST_CHUNK;
			struct luo_agent_session_info *grown;

			if (cap > count)
				cap = count;
			grown = realloc(l->info, sizeof(*grown) * cap);

			if (!grown) {
				print_error("agent", -ENOMEM, NULL);
				return -ENOMEM;
			}
			l->info = grown;
			l->cap = cap;
		}
		r = recv_struct(p, LUO_AGENT_SESSION_INFO_SIZE_VER0, LUO_AGENT_OP_INFO, seq, &l->info[l->n],
				sizeof(l->info[l->n]), &closed);
		if (r < 0)
			return r;
		if (closed) {
			fputs("luoctl: agent: closed in the middle of the list\n", stderr);
			return -ECONNRESET;
		}
		l->n++;
	}
	return 0;
}

/*
 * LIST the sessions of @uid into @l. Return: 0, or the exit status (said
 * on stderr): EXIT_REFUSED if the agent says we may not see them.
 */
static int agent_list(const struct peer *p, uint32_t seq, uint32_t uid, struct session_list *l)
{
	struct luo_agent_reply reply;
	int r;

	r = agent_call(p, LUO_AGENT_OP_LIST, seq, uid, NULL, sizeof(struct luo_agent_session_info), &reply);
	if (r < 0)
		return EXIT_TROUBLE;
	if (reply.error < 0) {
		agent_refused("agent: list", &reply);
		return reply.error == -EPERM ? EXIT_REFUSED : EXIT_TROUBLE;
	}
	if (reply.count > AGENT_LIST_MAX) {
		print_error("agent", -EBADMSG, "too many sessions in the list");
		return EXIT_TROUBLE;
	}
	if (sessions_read(p, seq, reply.count, l) < 0)
		return EXIT_TROUBLE;
	return 0;
}

/* Seconds between @then and now (CLOCK_REALTIME), 0 if in the future. */
static uint64_t age_s(uint64_t then)
{
	time_t now = time(NULL);

	return now > 0 && (uint64_t)now > then ? (uint64_t)now - then : 0;
}

/* "1d02h", "3h04m", "5m06s", "7s". */
static void duration_str(uint64_t s, char buf[static 32])
{
	if (s >= 86400)
		snprintf(buf, 32, "%" PRIu64 "d%02" PRIu64 "h", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(buf, 32, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(buf, 32, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
	else
		snprintf(buf, 32, "%" PRIu64 "s", s);
}

/* "sessions  N" and the table. */
static void sessions_print_text(const struct session_list *l)
{
	printf("sessions  %" PRIu32 "\n", l->n);
	printf("%-10s  %-32s  %6s  %12s  %8s  %8s  %10s  %s\n", "OWNER", "NAME", "FDS", "BYTES", "AGE", "UPDATED",
	       "GENERATION", "ATTACHED");
	for (uint32_t i = 0; i < l->n; i++) {
		const struct luo_agent_session_info *info = &l->info[i];
		char age[32], upd[32];

		duration_str(age_s(info->deposited_s), age);
		duration_str(age_s(info->updated_s), upd);
		printf("%-10" PRIu32 "  ", info->uid);
		text_put(stdout, WIRE_STR(info->name), 32);
		printf("  %6" PRIu32 "  %12" PRIu64 "  %8s  %8s  %10" PRIu64 "  ", info->n_fds, info->bytes, age, upd,
		       info->generation);
		if (info->owner_pid > 0)
			printf("pid %" PRId32 "%s\n", info->owner_pid,
			       (info->flags & LUO_AGENT_DEPOSIT_KEEP_ON_CRASH) ? ", kept on crash" : "");
		else
			puts("detached");
	}
}

/* The member "sessions":[...]. */
static void sessions_print_json(const struct session_list *l)
{
	fputs("\"sessions\":[", stdout);
	for (uint32_t i = 0; i < l->n; i++) {
		const struct luo_agent_session_info *info = &l->info[i];

		printf("%s{\"uid\":%" PRIu32 ",\"name\":", i ? "," : "", info->uid);
		json_put(stdout, WIRE_STR(info->name));
		printf(",\"fds\":%" PRIu32 ",\"bytes\":%" PRIu64 ",\"deposited_s\":%" PRIu64 ",\"updated_s\":%" PRIu64
		       ",\"age_s\":%" PRIu64 ",\"generation\":%" PRIu64 ",\"attached_pid\":%" PRId32
		       ",\"keep_on_crash\":%s}",
		       info->n_fds, info->bytes, info->deposited_s, info->updated_s, age_s(info->deposited_s),
		       info->generation, info->owner_pid,
		       (info->flags & LUO_AGENT_DEPOSIT_KEEP_ON_CRASH) ? "true" : "false");
	}
	fputc(']', stdout);
}

/* ------------------------------------------------------------------------ */
/* status                                                                    */

struct status_result {
	struct luo_agent_status st;
	struct session_list list;
};

/* 0, or the exit status (said on stderr). */
static int status_run(const char *socket, struct status_result *res)
{
	_cleanup_close_ int fd = -1;
	struct luo_agent_reply reply;
	struct peer p;
	bool closed;
	int r;

	if (agent_connect(socket, AGENT_TIMEOUT_S, &p) < 0)
		return EXIT_TROUBLE;
	fd = p.fd;
	if (agent_call(&p, LUO_AGENT_OP_STATUS, 1, LUO_AGENT_UID_SELF, NULL, sizeof(res->st), &reply) < 0)
		return EXIT_TROUBLE;
	if (reply.error < 0) {
		agent_refused("agent: status", &reply);
		return EXIT_TROUBLE;
	}
	if (reply.count != 1) {
		print_error("agent", -EBADMSG, "status without its record");
		return EXIT_TROUBLE;
	}
	r = recv_struct(&p, LUO_AGENT_STATUS_SIZE_VER0, LUO_AGENT_OP_INFO, 1, &res->st, sizeof(res->st), &closed);
	if (r < 0 || closed) {
		if (closed)
			fputs("luoctl: agent: closed before the status record\n", stderr);
		return EXIT_TROUBLE;
	}
	return agent_list(&p, 2, LUO_AGENT_UID_ALL, &res->list);
}

static void status_print_text(const struct status_result *res)
{
	const struct luo_agent_status *st = &res->st;
	char up[32];

	duration_str(age_s(st->started_s), up);
	printf("agent     pid %" PRId32 ", liveupdate-number %" PRIu64 ", up %s, %" PRIu32 " connection%s\n", st->pid,
	       st->lu_number, up, st->connections, st->connections == 1 ? "" : "s");
	printf("held      %" PRIu64 " sessions, %" PRIu64 " fds, %" PRIu64 " bytes (all owners)\n", st->sessions,
	       st->fds, st->bytes);
	printf("you       uid %u: %" PRIu64 "/%" PRIu64 " sessions, %" PRIu64 "/%" PRIu64 " fds, %" PRIu64 "/%" PRIu64
	       " bytes (used/limit)\n",
	       (unsigned)geteuid(), st->own_sessions, st->max_sessions, st->own_fds, st->max_fds, st->own_bytes,
	       st->max_bytes);
	sessions_print_text(&res->list);
}

static void status_print_json(const struct status_result *res)
{
	const struct luo_agent_status *st = &res->st;

	printf("{\"agent\":{\"pid\":%" PRId32 ",\"liveupdate_number\":%" PRIu64 ",\"started_s\":%" PRIu64
	       ",\"uptime_s\":%" PRIu64 ",\"connections\":%" PRIu32 ",\"sessions\":%" PRIu64 ",\"fds\":%" PRIu64
	       ",\"bytes\":%" PRIu64 "},\"caller\":{\"uid\":%u,\"sessions\":%" PRIu64 ",\"fds\":%" PRIu64
	       ",\"bytes\":%" PRIu64 ",\"max_sessions\":%" PRIu64 ",\"max_fds\":%" PRIu64 ",\"max_bytes\":%" PRIu64
	       "},",
	       st->pid, st->lu_number, st->started_s, age_s(st->started_s), st->connections, st->sessions, st->fds,
	       st->bytes, (unsigned)geteuid(), st->own_sessions, st->own_fds, st->own_bytes, st->max_sessions,
	       st->max_fds, st->max_bytes);
	sessions_print_json(&res->list);
	fputs("}\n", stdout);
}

int cmd_status(const struct cmd_opts *o, int argc, char **argv)
{
	struct status_result res = { 0 };
	int r;

	if (argc != 0)
		return usage_error("status: unexpected argument", argv[0]);
	r = status_run(o->socket, &res);
	if (r == 0 && o->json)
		status_print_json(&res);
	else if (r == 0)
		status_print_text(&res);
	session_list_done(&res.list);
	return r;
}

/* ------------------------------------------------------------------------ */
/* sessions                                                                  */

/* Return: -1 go on, or the exit status (bad usage). */
static int sessions_parse(const struct cmd_opts *o, int argc, char **argv, uint32_t *ret_uid)
{
	if (argc != 0)
		return usage_error("sessions: unexpected argument", argv[0]);
	if (o->uid && o->all)
		return usage_error("sessions: --uid and --all exclude each other", NULL);
	*ret_uid = LUO_AGENT_UID_SELF;
	if (o->uid && parse_uid(o->uid, ret_uid) < 0)
		return usage_error("bad UID", o->uid);
	if (o->all)
		*ret_uid = LUO_AGENT_UID_ALL;
	return -1;
}

/* 0, or the exit status (said on stderr). */
static int sessions_run(const char *socket, uint32_t uid, struct session_list *l)
{
	_cleanup_close_ int fd = -1;
	struct peer p;

	if (agent_connect(socket, AGENT_TIMEOUT_S, &p) < 0)
		return EXIT_TROUBLE;
	fd = p.fd;
	return agent_list(&p, 1, uid, l);
}

int cmd_sessions(const struct cmd_opts *o, int argc, char **argv)
{
	struct session_list l = { 0 };
	uint32_t uid;
	int r;

	r = sessions_parse(o, argc, argv, &uid);
	if (r >= 0)
		return r;
	r = sessions_run(o->socket, uid, &l);
	if (r == 0 && o->json) {
		fputc('{', stdout);
		sessions_print_json(&l);
		fputs("}\n", stdout);
	} else if (r == 0) {
		sessions_print_text(&l);
	}
	session_list_done(&l);
	return r;
}

/* ------------------------------------------------------------------------ */
/* drop                                                                      */

struct drop_request {
	const char *name;
	uint32_t uid;
};

/* Return: -1 go on, or the exit status (bad usage). */
static int drop_parse(const struct cmd_opts *o, int argc, char **argv, struct drop_request *q)
{
	if (argc != 1)
		return usage_error("drop: need exactly one SESSION", NULL);
	q->name = argv[0];
	if (!q->name[0] || strlen(q->name) >= LUO_AGENT_NAME_SIZE)
		return usage_error("drop: a session name is 1..63 bytes:", q->name);
	q->uid = LUO_AGENT_UID_SELF;
	if (o->uid && parse_uid(o->uid, &q->uid) < 0)
		return usage_error("bad UID", o->uid);
	return -1;
}

/* 0, or the exit status (said on stderr): EXIT_REFUSED no such session, or not ours. */
static int drop_run(const char *socket, const struct drop_request *q)
{
	_cleanup_close_ int fd = -1;
	struct luo_agent_reply reply;
	struct peer p;

	if (agent_connect(socket, AGENT_TIMEOUT_S, &p) < 0)
		return EXIT_TROUBLE;
	fd = p.fd;
	if (agent_call(&p, LUO_AGENT_OP_DROP, 1, q->uid, q->name, 0, &reply) < 0)
		return EXIT_TROUBLE;
	if (reply.error < 0) {
		char what[LUO_AGENT_NAME_SIZE + 16];

		snprintf(what, sizeof(what), "drop %s", q->name);
		agent_refused(what, &reply);
		return reply.error == -ENOENT || reply.error == -EPERM ? EXIT_REFUSED : EXIT_TROUBLE;
	}
	return 0;
}

int cmd_drop(const struct cmd_opts *o, int argc, char **argv)
{
	struct drop_request q;
	int r;

	r = drop_parse(o, argc, argv, &q);
	if (r >= 0)
		return r;
	r = drop_run(o->socket, &q);
	if (r != 0)
		return r;
	fputs("dropped session ", stdout);
	text_puts(stdout, q.name);
	fputc('\n', stdout);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* agent update                                                              */

/* 0 and the agent's answer in @reply, or a negative errno (said). */
static int agent_update_run(const char *socket, int timeout_s, struct luo_agent_reply *reply)
{
	_cleanup_close_ int fd = -1;
	struct peer p;
	int r;

	r = agent_connect(socket, timeout_s, &p);
	if (r < 0)
		return r;
	fd = p.fd;
	return agent_call(&p, LUO_AGENT_OP_UPDATE, 1, 0, NULL, 0, reply);
}

static void agent_update_print_json(const struct luo_agent_reply *reply)
{
	printf("{\"result\":\"%s\",", reply->error == 0 ? "done" : reply->error == -EUCLEAN ? "rolled-back" : "refused");
	json_error(reply->error);
	fputs(",\"reason\":", stdout);
	json_put(stdout, WIRE_STR(reply->reason));
	printf(",\"liveupdate_number\":%" PRIu64 "}\n", reply->lu_number);
}

static void agent_update_print_text(const struct luo_agent_reply *reply)
{
	if (reply->error == 0) {
		printf("agent updated: liveupdate-number %" PRIu64 "\n", reply->lu_number);
	} else if (reply->error == -EUCLEAN) {
		fputs("agent update rolled back, the old image serves again: ", stdout);
		text_put(stdout, WIRE_STR(reply->reason), 0);
		printf(" (liveupdate-number %" PRIu64 ")\n", reply->lu_number);
	} else {
		fputs("agent update refused: ", stdout);
		text_put(stdout, WIRE_STR(reply->reason), 0);
		printf(" (%s); the agent keeps running\n", strerror(-reply->error));
	}
}

int cmd_agent(const struct cmd_opts *o, int argc, char **argv)
{
	struct luo_agent_reply reply;
	int timeout_s = AGENT_UPDATE_TIMEOUT_DEFAULT_S;

	if (argc != 1 || strcmp(argv[0], "update") != 0)
		return usage_error("agent: the only subcommand is 'update'", NULL);
	if (o->timeout && parse_seconds(o->timeout, AGENT_UPDATE_TIMEOUT_MAX_S, &timeout_s) < 0)
		return usage_error("bad --timeout (seconds, 1..3600)", o->timeout);
	if (agent_update_run(o->socket, timeout_s, &reply) < 0)
		return EXIT_TROUBLE;
	if (o->json)
		agent_update_print_json(&reply);
	else
		agent_update_print_text(&reply);
	return reply.error == 0 ? 0 : EXIT_REFUSED;
}
