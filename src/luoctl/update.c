/* SPDX-License-Identifier: MIT */
/*
 * DOC: update.c, the verb update: a running service live-updated
 *
 *   luoctl update --pid PID NEW_BINARY [--timeout SECONDS] [--strict] [--json]
 *
 * update speaks the control protocol of include/luo/agent.h to the service
 * PID: it connects to the abstract address "\0luo-control.<PID>", checks
 * with SO_PEERCRED that PID listens there under our uid (or we are root),
 * with SO_PEERPIDFD that the process that listened is still alive and
 * still PID (control_connect()), and takes only messages the kernel says
 * PID itself sent (SCM_CREDENTIALS, peer.c), sends UPDATE with the
 * realpath of NEW_BINARY and waits, at most --timeout seconds, for the one
 * answer: refused (the error, a reason and the negotiation report), done
 * (the new image's timings, from its luo_ready()) or rolled back
 * (-EUCLEAN and the reason). A connection closed without an answer, or no
 * answer in time, leaves the outcome unknown: exit 2, said so.
 *
 * Exit: 0 done; 1 refused, failed or rolled back, the service keeps
 * serving; 2 bad usage, no control socket, no answer, a malformed one.
 *
 * Layer: a verb; calls peer.c, opts.c, usage.c, report.c (the names of
 * kinds and verdicts) and output.c.
 */

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "luo/agent.h"
#include "luo-internal.h" /* luo_peer_pidfd(), luo_pidfd_pid() */
#include "base.h"
#include "luoctl.h"
#include "peer.h"
#include "wire.h"

/* update: how long to wait for the answer, by default and at most. */
#define UPDATE_TIMEOUT_DEFAULT_S 30
#define UPDATE_TIMEOUT_MAX_S 3600
/* Report entries of a refused update taken from a service (it sends <= 256). */
#define UPDATE_REPORTS_MAX 1024
/* The seq of the one request luoctl sends on a control connection. */
#define CONTROL_SEQ 1

struct update_request {
	pid_t pid;
	const char *binary;   /* as given */
	char *path;           /* its realpath, owned */
	bool strict;
	int timeout_s;
	char what[64];        /* "pid PID" */
};

struct update_result {
	struct luo_agent_reply reply;
	struct luo_control_done done;          /* reply.error == 0 */
	struct luo_control_report *reps;       /* refused: reply.count entries */
	const char *result;                    /* "done", "rolled-back" or "refused" */
};

/* Sockets of the target read from /proc/PID/fd; more are not looked at. */
#define CONTROL_SCAN_FDS_MAX 65536
/* Lines of /proc/net/unix read in the search; more are not looked at. */
#define CONTROL_SCAN_LINES_MAX (1 << 20)

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * The inodes of the sockets process @pid holds, sorted: 0, -EACCES (not
 * ours to read: another uid, and we are not root), or another errno.
 */
static int socket_inodes_of(pid_t pid, uint64_t **ret, size_t *ret_n)
{
	_cleanup_free_ uint64_t *inodes = NULL;
	char dir_path[64];
	size_t n = 0;
	DIR *d;
	struct dirent *de;

	snprintf(dir_path, sizeof(dir_path), "/proc/%d/fd", (int)pid);
	d = opendir(dir_path);
	if (!d)
		return -errno;
	inodes = malloc(CONTROL_SCAN_FDS_MAX * sizeof(*inodes));
	if (!inodes) {
		closedir(d);
		return -ENOMEM;
	}
	while (n < CONTROL_SCAN_FDS_MAX && (de = readdir(d))) {
		char link[64];
		unsigned long long ino;
		ssize_t k = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);

		if (k <= 0)
			continue;
		link[k] = '\0';
		if (sscanf(link, "socket:[%llu]", &ino) == 1)
			inodes[n++] = ino;
	}
	closedir(d);
	qsort(inodes, n, sizeof(*inodes), cmp_u64);
	*ret = TAKE_PTR(inodes);
	*ret_n = n;
	return 0;
}

/*
 * The address process @pid listens on for control requests: a listening
 * socket of its own named "@luo-control.<pid>" or "@luo-control.<pid>.<nonce>"
 * (the name it takes when another process holds the first: agent.h). A
 * name is found through the process's own fds, so names others bound
 * are never tried. When its fds cannot be read, the first address.
 */
static int control_address_of(pid_t pid, struct sockaddr_un *sa, socklen_t *ret_len)
{
	_cleanup_free_ uint64_t *inodes = NULL;
	_cleanup_free_ char *line = NULL;
	size_t n_inodes = 0, cap = 0, lines = 0;
	char first[64];
	FILE *f;
	int r, found = -ENOENT;

	r = luo_control_socket_address(pid, sa, ret_len);
	if (r < 0)
		return r;
	if (socket_inodes_of(pid, &inodes, &n_inodes) < 0)
		return 0;
	snprintf(first, sizeof(first), "@%s%d", LUO_CONTROL_ADDRESS_PREFIX, (int)pid);
	f = fopen("/proc/net/unix", "re");
	if (!f)
		return 0;
	while (found == -ENOENT && lines++ < CONTROL_SCAN_LINES_MAX && getline(&line, &cap, f) > 0) {
		unsigned long long ino, nonce;
		unsigned int flags;
		char name[128], tail[2];
		uint64_t key;
		size_t k = strlen(first);

		if (sscanf(line, "%*s %*s %*s %x %*x %*x %llu %127s", &flags, &ino, name) != 3 ||
		    !(flags & 0x10000) /* __SO_ACCEPTCON: listening */ || strncmp(name, first, k) != 0)
			continue;
		key = ino;
		if (!bsearch(&key, inodes, n_inodes, sizeof(*inodes), cmp_u64))
			continue;
		if (name[k] == '\0')
			found = 0;
		else if (name[k] == '.' && strlen(name + k + 1) == 16 &&
			 sscanf(name + k + 1, "%16llx%1s", &nonce, tail) == 1)
			found = luo_control_socket_address_nonce(pid, nonce, sa, ret_len);
	}
	fclose(f);
	return found == -ENOENT ? 0 : found;
}

/*
 * Connect to "\0luo-control.<pid>" (or the name the process took when
 * another held that one) and check who listens there: SO_PEERCRED
 * names the pid that called listen(), but a pid is a number that may have
 * gone to another process since. SO_PEERPIDFD (Linux 6.5+) names the
 * listening process itself: it must still be alive and still be @pid.
 * Older kernels: no such early check; on every kernel, each message must
 * come from @pid itself (SCM_CREDENTIALS, recv_from_pid()), which a
 * listener held by any other process cannot fake.
 */
static int control_connect(pid_t pid, struct peer *p)
{
	_cleanup_close_ int fd = -1, pidfd = -1;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ucred cred;
	socklen_t cred_len = sizeof(cred);
	char what[64];
	bool exact;
	socklen_t sa_len;
	int one = 1, r;

	snprintf(what, sizeof(what), "pid %d", (int)pid);
	r = control_address_of(pid, &sa, &sa_len); /* libluo's rule, agent.h */
	if (r < 0) {
		print_error(what, r, "control socket address");
		return r;
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		print_error("socket", -errno, NULL);
		return -errno;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0) {
		print_error("socket", -errno, "SO_PASSCRED");
		return -errno;
	}
	r = connect_bounded(fd, &sa, sa_len);
	if (r < 0) {
		if (r == -ETIMEDOUT)
			fprintf(stderr, "luoctl: pid %d: the control socket @%s%d accepts no connection (backlog full "
				"for %d ms)\n", (int)pid, LUO_CONTROL_ADDRESS_PREFIX, (int)pid, CONNECT_TIMEOUT_MS);
		else
			fprintf(stderr,
				"luoctl: pid %d: no control socket @%s%d (%s): is it a libluo service that called "
				"luo_control_listen(), in this network namespace?\n",
				(int)pid, LUO_CONTROL_ADDRESS_PREFIX, (int)pid, strerror(-r));
		return r;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) < 0 || cred_len != sizeof(cred)) {
		print_error(what, -errno, "cannot read the control socket's credentials");
		return -EIO;
	}
	if (cred.pid != pid) {
		fprintf(stderr, "luoctl: pid %d: the control socket @%s%d is held by pid %d, not %d: refusing to use it\n",
			(int)pid, LUO_CONTROL_ADDRESS_PREFIX, (int)pid, (int)cred.pid, (int)pid);
		return -EPERM;
	}
	pidfd = luo_peer_pidfd(fd, cred.pid, &exact);
	if (exact && luo_pidfd_pid(pidfd) != pid)
		pidfd = safe_close(pidfd), r = -ESRCH;
	else
		r = pidfd < 0 ? pidfd : 0;
	if (r == -ESRCH) {
		fprintf(stderr, "luoctl: pid %d: the process that listens on @%s%d has exited; pid %d is another "
			"process now: refusing to use it\n", (int)pid, LUO_CONTROL_ADDRESS_PREFIX, (int)pid, (int)pid);
		return -EPERM;
	}
	if (r < 0) {
		print_error(what, r, "cannot name the control socket's process");
		return r;
	}
	if (cred.uid != geteuid() && geteuid() != 0) {
		fprintf(stderr, "luoctl: pid %d: runs as uid %u, not as ours (%u): only that uid or root may update it\n",
			(int)pid, (unsigned)cred.uid, (unsigned)geteuid());
		return -EPERM;
	}
	p->sender = pid;
	p->fd = TAKE_FD(fd);
	return 0;
}

/* Return: -1 go on, or the exit status (bad usage). */
static int update_parse(const struct cmd_opts *o, int argc, char **argv, struct update_request *q)
{
	if (argc != 1)
		return usage_error("update: need exactly one NEW_BINARY", NULL);
	if (!o->pid)
		return usage_error("update: need --pid PID", NULL);
	if (parse_pid(o->pid, &q->pid) < 0)
		return usage_error("bad PID", o->pid);
	q->timeout_s = UPDATE_TIMEOUT_DEFAULT_S;
	if (o->timeout && parse_seconds(o->timeout, UPDATE_TIMEOUT_MAX_S, &q->timeout_s) < 0)
		return usage_error("bad --timeout (seconds, 1..3600)", o->timeout);
	q->binary = argv[0];
	q->strict = o->strict;
	snprintf(q->what, sizeof(q->what), "pid %d", (int)q->pid);
	return -1;
}

static int update_send(const struct update_request *q, const struct peer *p)
{
	struct luo_control_update req;
	int r;

	memset(&req, 0, sizeof(req));
	luo_wire_header_init(&req.hdr, sizeof(req), LUO_CONTROL_OP_UPDATE, CONTROL_SEQ);
	req.flags = q->strict ? LUO_CONTROL_UPDATE_STRICT : 0;
	req.reply_size = sizeof(struct luo_agent_reply);
	/* One size for the report entries and the done message: the larger. */
	req.info_size = (uint32_t)MAX(sizeof(struct luo_control_report), sizeof(struct luo_control_done));
	memcpy(req.path, q->path, strlen(q->path)); /* checked: under sizeof(req.path) */
	r = luo_wire_send(p->fd, &req, sizeof(req), NULL, 0);
	if (r < 0)
		print_error(q->what, r, "cannot send the request");
	return r;
}

/* The answer: refused, done or rolled back; 0 or a negative errno (said). */
static int update_recv_reply(const struct update_request *q, const struct peer *p, struct update_result *res)
{
	bool closed;
	int r;

	r = recv_struct(p, LUO_AGENT_REPLY_SIZE_VER0, LUO_CONTROL_OP_UPDATE, CONTROL_SEQ, &res->reply,
			sizeof(res->reply), &closed);
	if (r == -ETIMEDOUT)
		fprintf(stderr, "luoctl: pid %d: outcome unknown: the update may still be under way\n", (int)q->pid);
	if (r < 0)
		return r;
	if (closed) {
		fprintf(stderr,
			"luoctl: pid %d: outcome unknown: the service closed the connection without an answer (it "
			"exited or crashed, or its new image never called luo_ready()); check its state and logs\n",
			(int)q->pid);
		return -ECONNRESET;
	}
	res->reply.reason[sizeof(res->reply.reason) - 1] = '\0';
	return 0;
}

/* Done: the new image's timings. */
static int update_recv_done(const struct update_request *q, const struct peer *p, struct update_result *res)
{
	bool closed;
	int r;

	if (res->reply.count != 1) {
		print_error(q->what, -EBADMSG, "success without its timings");
		return -EBADMSG;
	}
	r = recv_struct(p, LUO_CONTROL_DONE_SIZE_VER0, LUO_CONTROL_OP_DONE, CONTROL_SEQ, &res->done,
			sizeof(res->done), &closed);
	if (r == 0 && closed) {
		print_error(q->what, -ECONNRESET, "closed before the timings: outcome unknown");
		r = -ECONNRESET;
	}
	return r;
}

/* Refused: the negotiation report, reply.count entries. */
static int update_recv_report(const struct update_request *q, const struct peer *p, struct update_result *res)
{
	bool closed;
	int r;

	if (res->reply.count > UPDATE_REPORTS_MAX) {
		print_error(q->what, -EBADMSG, "too many report entries");
		return -EBADMSG;
	}
	res->reps = calloc(res->reply.count ? res->reply.count : 1, sizeof(*res->reps));
	if (!res->reps) {
		print_error(q->what, -ENOMEM, NULL);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < res->reply.count; i++) {
		r = recv_struct(p, LUO_CONTROL_REPORT_SIZE_VER0, LUO_CONTROL_OP_REPORT, CONTROL_SEQ, &res->reps[i],
				sizeof(res->reps[i]), &closed);
		if (r == 0 && closed) {
			print_error(q->what, -ECONNRESET, "closed in the middle of the report");
			r = -ECONNRESET;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* 0, or a negative errno (said on stderr). */
static int update_run(struct update_request *q, struct update_result *res)
{
	_cleanup_close_ int fd = -1;
	struct peer p = { .fd = -1, .what = q->what };
	int r;

	/* The service resolves nothing: it gets the file we mean, absolute. */
	q->path = realpath(q->binary, NULL);
	if (!q->path) {
		print_error(q->binary, -errno, NULL);
		return -errno;
	}
	if (strlen(q->path) >= sizeof(((struct luo_control_update *)0)->path)) {
		print_error(q->binary, -ENAMETOOLONG, NULL);
		return -ENAMETOOLONG;
	}
	r = control_connect(q->pid, &p);
	if (r < 0)
		return r;
	fd = p.fd;
	r = update_send(q, &p);
	if (r < 0)
		return r;
	p.deadline = now_ms() + (int64_t)q->timeout_s * 1000;
	r = update_recv_reply(q, &p, res);
	if (r < 0)
		return r;
	if (res->reply.error == 0) {
		res->result = "done";
		return update_recv_done(q, &p, res);
	}
	if (res->reply.error == -EUCLEAN) {
		res->result = "rolled-back";
		return 0;
	}
	res->result = "refused";
	return update_recv_report(q, &p, res);
}

static void control_report_json(const struct luo_control_report *rep)
{
	printf("{\"kind\":\"%s\",\"name\":", kind_name(rep->kind));
	json_put(stdout, WIRE_STR(rep->name));
	printf(",\"verdict\":\"%s\",\"version\":%" PRIu32 ",\"line\":", verdict_name((enum luo_verdict)rep->verdict),
	       rep->version);
	json_put(stdout, rep->full_line[0] ? rep->full_line : rep->line,
		 rep->full_line[0] ? sizeof(rep->full_line) : sizeof(rep->line));
	fputc('}', stdout);
}

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static void update_print_json(const struct update_request *q, const struct update_result *res)
{
	const struct luo_control_done *done = &res->done;

	printf("{\"pid\":%d,\"binary\":", (int)q->pid);
	json_puts(stdout, q->path);
	printf(",\"result\":\"%s\",", res->result);
	json_error(res->reply.error);
	fputs(",\"reason\":", stdout);
	json_put(stdout, WIRE_STR(res->reply.reason));
	printf(",\"liveupdate_number\":%" PRIu64, res->reply.lu_number);
	if (res->reply.error == 0)
		printf(",\"new_pid\":%d,\"timings_ms\":{\"blackout\":%.3f,\"freeze\":%.3f,\"serialize\":%.3f,"
		       "\"exec\":%.3f,\"restore\":%.3f,\"ready\":%.3f}",
		       (int)done->pid, ms(done->blackout_ns), ms(done->freeze_ns), ms(done->serialize_ns),
		       ms(done->exec_ns), ms(done->restore_ns), ms(done->ready_ns));
	fputs(",\"report\":[", stdout);
	for (uint32_t i = 0; res->reps && i < res->reply.count; i++) {
		if (i)
			fputc(',', stdout);
		control_report_json(&res->reps[i]);
	}
	fputs("]}\n", stdout);
}

static void control_report_print(const struct luo_control_report *rep)
{
	fputs("  ", stdout);
	if (rep->full_line[0])
		text_put(stdout, WIRE_STR(rep->full_line), 0);
	else
		text_put(stdout, WIRE_STR(rep->line), 0); /* a service of protocol size 0 */
	fputc('\n', stdout);
}

static void update_print_text(const struct update_request *q, const struct update_result *res)
{
	const struct luo_control_done *done = &res->done;

	printf("update pid %d -> ", (int)q->pid);
	text_puts(stdout, q->path);
	if (res->reply.error == 0) {
		printf(": done, same pid %d, liveupdate-number %" PRIu64 "\n", (int)done->pid, done->lu_number);
		printf("  blackout %.3f ms (freeze %.3f, serialize %.3f, exec %.3f, restore %.3f, ready %.3f)\n",
		       ms(done->blackout_ns), ms(done->freeze_ns), ms(done->serialize_ns), ms(done->exec_ns),
		       ms(done->restore_ns), ms(done->ready_ns));
	} else if (res->reply.error == -EUCLEAN) {
		fputs(": rolled back, the old binary serves again: ", stdout);
		text_put(stdout, WIRE_STR(res->reply.reason), 0);
		printf(" (liveupdate-number %" PRIu64 ")\n", res->reply.lu_number);
	} else {
		fputs(": refused: ", stdout);
		text_put(stdout, WIRE_STR(res->reply.reason), 0);
		printf(" (%s); the service keeps running\n", strerror(-res->reply.error));
		for (uint32_t i = 0; i < res->reply.count; i++)
			control_report_print(&res->reps[i]);
	}
}

int cmd_update(const struct cmd_opts *o, int argc, char **argv)
{
	struct update_request q = { 0 };
	struct update_result res = { 0 };
	int r;

	r = update_parse(o, argc, argv, &q);
	if (r >= 0)
		return r;
	r = update_run(&q, &res);
	if (r == 0 && o->json)
		update_print_json(&q, &res);
	else if (r == 0)
		update_print_text(&q, &res);
	if (r == 0 && res.reply.error == 0 && res.done.pid != q.pid) {
		fprintf(stderr, "luoctl: pid %d: the answer came from pid %d\n", (int)q.pid, (int)res.done.pid);
		r = -EPROTO;
	}
	free(q.path);
	free(res.reps);
	if (r < 0)
		return EXIT_TROUBLE;
	return res.reply.error == 0 ? 0 : EXIT_REFUSED;
}
