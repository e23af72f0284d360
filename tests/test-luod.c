/* SPDX-License-Identifier: MIT */
/*
 * DOC: test-luod, luod spoken to in the raw protocol (include/luo/agent.h)
 *
 *   test-luod LUOD MODE
 *
 * Each MODE is one behaviour, run as its own test (tests/meson.build,
 * suite 'agent'); each starts its own luod on a socket in a fresh
 * directory, stops it at the end, and checks that no fd leaked in this
 * process:
 *
 *   basic      deposit (sealed blob, memfd with data, pipe, listening
 *              socket; and a session of 600 fds), retrieve and compare
 *              identities and data, list, status, drop, retrieve -ENOENT
 *   malformed  every kind of bad message; each refused as agent.h says, its
 *              fds closed by luod, another client's session intact
 *   limits     --max-sessions / --max-fds / --max-bytes give -EDQUOT with
 *              a reason naming the limit
 *   users      (root only, else 77: skipped) uid 65534 and 65533 against
 *              root's sessions and each other's
 *   trust      a memfd whose size is not sealed and an AF_UNIX socket are
 *              refused, a sealed memfd taken; a deposit stalled mid-way is
 *              cut after LUOD_STALL_MS; (root) uid 65534 opening 200
 *              connections keeps at most its share (64) while uid 65533
 *              and root are served
 *   crash      a client SIGKILLed: only its KEEP_ON_CRASH session stays;
 *              with DETACH before exit, both stay
 *   update-rollback  (LUOD LUOD_REFUSE) the new image refuses the handover:
 *              the rolled-back luod answers OP_UPDATE -EUCLEAN, state intact
 *   update     1,000 sessions held across SIGHUP and OP_UPDATE: same pid,
 *              liveupdate-number +1 each, every session retrievable with
 *              the same identities and data; a connection made before the
 *              update gets correct answers (or a retryable EOF)
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "luo/agent.h"
#include "wire.h"

static const char *luod_bin;
static char dir[64], sock_path[100];
static pid_t luod_pid = -1;
static int luod_bad_exit; /* a luod that did not exit 0 on SIGTERM (a sanitizer's report, say) */
static uint32_t seq_counter = 100;
static rlim_t luod_nofile;             /* RLIMIT_NOFILE (soft and hard) for luod, 0: inherited */
static const char *luod_stderr_path;   /* luod's log goes there, NULL: inherited */

#define CHECK(cond, ...)                                                                                 \
	do {                                                                                             \
		if (!(cond)) {                                                                           \
			fprintf(stderr, "test-luod:%d: check failed: %s: ", __LINE__, #cond);                \
			fprintf(stderr, __VA_ARGS__);                                                    \
			fprintf(stderr, "\n");                                                           \
			fail();                                                                          \
		}                                                                                        \
	} while (0)

static void stop_luod(void);

static pid_t hangfs_pid = -1; /* a FUSE server that may hold luod: ended first */
static char hangfs_mnt[96];

static void fail(void)
{
	if (hangfs_pid > 0) {
		kill(hangfs_pid, SIGKILL);
		waitpid(hangfs_pid, NULL, 0);
		(void)umount2(hangfs_mnt, MNT_DETACH);
	}
	stop_luod();
	exit(1);
}

static int count_fds(void)
{
	char path[64];
	int n = 0;

	for (int fd = 0; fd < 65536; fd++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	}
	(void)path;
	return n;
}

static void msleep(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int cl_connect_once(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 10 };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

static int cl_connect(void)
{
	int fd = cl_connect_once();

	CHECK(fd >= 0, "connect %s: %s", sock_path, strerror(-fd));
	return fd;
}

static void start_luod(const char *extra1, const char *extra2, const char *extra3, const char *extra4)
{
	const char *argv[12] = { luod_bin, "--socket", sock_path };
	int k = 3;

	if (extra1)
		argv[k++] = extra1;
	if (extra2)
		argv[k++] = extra2;
	if (extra3)
		argv[k++] = extra3;
	if (extra4)
		argv[k++] = extra4;
	argv[k] = NULL;
	luod_pid = fork();
	CHECK(luod_pid >= 0, "fork");
	if (luod_pid == 0) {
		if (luod_nofile) {
			struct rlimit rl = { luod_nofile, luod_nofile };

			if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
				_exit(126);
		}
		if (luod_stderr_path) {
			int fd = open(luod_stderr_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

			if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
				_exit(126);
		}
		execv(luod_bin, (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		int fd = cl_connect_once();

		if (fd >= 0) {
			close(fd);
			return;
		}
		msleep(10);
	}
	CHECK(0, "luod did not come up on %s", sock_path);
}

static void stop_luod(void)
{
	int st;

	if (luod_pid > 0) {
		kill(luod_pid, SIGTERM);
		if (waitpid(luod_pid, &st, 0) != luod_pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			luod_bad_exit = 1;
		luod_pid = -1;
	}
	unlink(sock_path);
	{
		char copy[128];

		snprintf(copy, sizeof(copy), "%s/luod-copy", dir);
		unlink(copy);
	}
	rmdir(dir);
}

/* ------------------------------------------------------------------------ */
/* The protocol, client side                                                 */

static uint32_t req_send(int fd, uint16_t op, uint32_t flags, uint32_t n_fds, uint32_t uid, const char *name,
			 const int *fds, size_t n_first)
{
	struct luo_agent_request q = {
		.flags = flags,
		.n_fds = n_fds,
		.uid = uid,
		.reply_size = sizeof(struct luo_agent_reply),
		.info_size = op == LUO_AGENT_OP_STATUS ? sizeof(struct luo_agent_status)
						       : sizeof(struct luo_agent_session_info),
	};
	int r;

	luo_wire_header_init(&q.hdr, sizeof(q), op, ++seq_counter);
	if (name)
		memcpy(q.name, name, strnlen(name, sizeof(q.name) - 1));
	r = luo_wire_send(fd, &q, sizeof(q), fds, n_first);
	CHECK(r == 0, "send op %u: %s", op, strerror(-r));
	return seq_counter;
}

/* One message of @op (0: a reply); returns its bytes, or -errno / 0 at EOF. */
static ssize_t msg_recv(int fd, uint16_t op, size_t ver0, void *out, size_t ours, uint32_t seq, int *fds,
			size_t max_fds, size_t *n_fds)
{
	unsigned char buf[LUO_AGENT_MSG_MAX];
	struct luo_agent_header h;
	size_t nf = 0;
	ssize_t n = luo_wire_recv(fd, buf, sizeof(buf), fds, max_fds, &nf);
	int r;

	if (n <= 0)
		return n;
	r = luo_wire_header(buf, (size_t)n, ver0, op, &h);
	CHECK(r == 0, "reply header: %s", strerror(-r));
	CHECK(h.seq == seq, "seq %u, want %u", h.seq, seq);
	r = luo_wire_struct_in(out, ours, buf, (size_t)n);
	CHECK(r == 0, "reply struct");
	if (n_fds)
		*n_fds = nf;
	else
		CHECK(nf == 0, "unexpected fds");
	return n;
}

static int reply_recv(int fd, uint32_t seq, struct luo_agent_reply *rep)
{
	ssize_t n = msg_recv(fd, 0, LUO_AGENT_REPLY_SIZE_VER0, rep, sizeof(*rep), seq, NULL, 0, NULL);

	if (n <= 0)
		return n == 0 ? -ECONNRESET : (int)n;
	rep->reason[sizeof(rep->reason) - 1] = '\0';
	return rep->error;
}

static int deposit(int fd, const char *name, uint32_t flags, const int *fds, uint32_t n, char *reason)
{
	struct luo_agent_reply rep;
	uint32_t first = n < LUO_AGENT_FDS_PER_MSG ? n : LUO_AGENT_FDS_PER_MSG, sent;
	uint32_t seq = req_send(fd, LUO_AGENT_OP_DEPOSIT, flags, n, LUO_AGENT_UID_SELF, name, fds, first);
	int r;

	for (sent = first; sent < n;) {
		struct luo_agent_fds m = { 0 };
		uint32_t k = n - sent < LUO_AGENT_FDS_PER_MSG ? n - sent : LUO_AGENT_FDS_PER_MSG;

		luo_wire_header_init(&m.hdr, sizeof(m), LUO_AGENT_OP_FDS, seq);
		m.n_fds = k;
		r = luo_wire_send(fd, &m, sizeof(m), fds + sent, k);
		CHECK(r == 0, "send fds: %s", strerror(-r));
		sent += k;
	}
	r = reply_recv(fd, seq, &rep);
	if (reason)
		snprintf(reason, LUO_AGENT_REASON_SIZE, "%s", r == -ECONNRESET ? "" : rep.reason);
	return r;
}

/* RETRIEVE: 0 and *n fds in @fds (caller closes), or the error. */
static int retrieve(int fd, uint32_t uid, const char *name, int *fds, size_t max, size_t *n)
{
	struct luo_agent_reply rep;
	uint32_t seq = req_send(fd, LUO_AGENT_OP_RETRIEVE, 0, 0, uid, name, NULL, 0);
	size_t got = 0, k = 0;
	ssize_t m = msg_recv(fd, 0, LUO_AGENT_REPLY_SIZE_VER0, &rep, sizeof(rep), seq, fds, max, &k);

	if (m <= 0)
		return m == 0 ? -ECONNRESET : (int)m;
	if (rep.error < 0) {
		CHECK(k == 0, "fds with an error");
		return rep.error;
	}
	CHECK(rep.n_fds <= max, "n_fds %u > %zu", rep.n_fds, max);
	got = k;
	while (got < rep.n_fds) {
		struct luo_agent_fds f;

		m = msg_recv(fd, LUO_AGENT_OP_FDS, LUO_AGENT_FDS_SIZE_VER0, &f, sizeof(f), seq, fds + got, max - got,
			     &k);
		if (m <= 0)
			return m == 0 ? -ECONNRESET : (int)m;
		CHECK(f.n_fds == k && k > 0, "OP_FDS says %u, carries %zu", f.n_fds, k);
		got += k;
	}
	CHECK(got == rep.n_fds, "got %zu fds of %u", got, rep.n_fds);
	*n = got;
	return 0;
}

/* LIST: the count, infos in @out (up to @max). */
static int list(int fd, uint32_t uid, struct luo_agent_session_info *out, size_t max, uint32_t *count)
{
	struct luo_agent_reply rep;
	uint32_t seq = req_send(fd, LUO_AGENT_OP_LIST, 0, 0, uid, NULL, NULL, 0);
	int r = reply_recv(fd, seq, &rep);

	if (r < 0)
		return r;
	for (uint32_t i = 0; i < rep.count; i++) {
		struct luo_agent_session_info info;
		ssize_t m = msg_recv(fd, LUO_AGENT_OP_INFO, LUO_AGENT_SESSION_INFO_SIZE_VER0, &info, sizeof(info), seq,
				     NULL, 0, NULL);

		if (m <= 0)
			return m == 0 ? -ECONNRESET : (int)m;
		if (i < max)
			out[i] = info;
	}
	*count = rep.count;
	return 0;
}

static int status(int fd, struct luo_agent_status *st)
{
	struct luo_agent_reply rep;
	uint32_t seq = req_send(fd, LUO_AGENT_OP_STATUS, 0, 0, 0, NULL, NULL, 0);
	int r = reply_recv(fd, seq, &rep);
	ssize_t m;

	if (r < 0)
		return r;
	CHECK(rep.count == 1, "STATUS count %u", rep.count);
	m = msg_recv(fd, LUO_AGENT_OP_INFO, LUO_AGENT_STATUS_SIZE_VER0, st, sizeof(*st), seq, NULL, 0, NULL);
	if (m <= 0)
		return m == 0 ? -ECONNRESET : (int)m;
	CHECK(st->lu_number == rep.lu_number, "status and reply disagree on lu_number");
	return 0;
}

static int simple(int fd, uint16_t op, uint32_t uid, const char *name, char *reason)
{
	struct luo_agent_reply rep;
	uint32_t seq = req_send(fd, op, 0, 0, uid, name, NULL, 0);
	int r = reply_recv(fd, seq, &rep);

	if (reason)
		snprintf(reason, LUO_AGENT_REASON_SIZE, "%s", r == -ECONNRESET ? "" : rep.reason);
	return r;
}

/* ------------------------------------------------------------------------ */
/* Files to deposit                                                          */

static int make_blob(const char *data)
{
	int fd = memfd_create("blob", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	CHECK(fd >= 0, "memfd");
	CHECK(write(fd, data, strlen(data)) == (ssize_t)strlen(data), "write blob");
	CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW) == 0, "seal");
	return fd;
}

/* A memfd of @len bytes whose size is sealed, as luod wants a deposited one. */
static int make_sized_memfd(const void *data, size_t len, size_t size)
{
	int fd = memfd_create("data", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	CHECK(fd >= 0, "memfd");
	if (len)
		CHECK(write(fd, data, len) == (ssize_t)len, "write memfd");
	if (size > len)
		CHECK(ftruncate(fd, (off_t)size) == 0, "ftruncate");
	CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0, "seal the size");
	return fd;
}

static int make_memfd(const void *data, size_t len)
{
	return make_sized_memfd(data, len, len);
}

static int make_listener(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0, "socket");
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind");
	CHECK(listen(fd, 8) == 0, "listen");
	return fd;
}

struct ident {
	dev_t dev;
	ino_t ino;
};

static struct ident ident_of(int fd)
{
	struct stat st;

	CHECK(fstat(fd, &st) == 0, "fstat");
	return (struct ident){ st.st_dev, st.st_ino };
}

static bool same(int fd, struct ident id)
{
	struct ident x = ident_of(fd);

	return x.dev == id.dev && x.ino == id.ino;
}

static void close_all(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
}

/* Whether the agent closed its copy of a pipe's write end: our read end sees EOF. */
static bool pipe_closed_by_agent(int rd)
{
	char c;

	for (int i = 0; i < 200; i++) {
		ssize_t n = read(rd, &c, 1);

		if (n == 0)
			return true;
		msleep(10);
	}
	return false;
}

/* Whether the agent closed its copy of a pipe's read end: writing gets EPIPE. */
static bool reader_gone(int wr)
{
	for (int i = 0; i < 200; i++) {
		if (write(wr, "", 1) < 0 && errno == EPIPE)
			return true;
		msleep(10);
	}
	return false;
}

/* ------------------------------------------------------------------------ */
/* basic                                                                     */

static void test_basic(void)
{
	int fds[4], got[LUO_AGENT_SESSION_FDS_MAX], pw[2];
	struct ident ids[4];
	struct luo_agent_session_info info[4];
	struct luo_agent_status st;
	char buf[16], reason[LUO_AGENT_REASON_SIZE];
	size_t n;
	uint32_t count;
	int c, r;

	start_luod(NULL, NULL, NULL, NULL);
	c = cl_connect();
	CHECK(pipe2(pw, O_CLOEXEC) == 0, "pipe");
	fds[0] = make_blob("luo blob bytes");
	fds[1] = make_memfd("hello", 5);
	fds[2] = pw[0];
	fds[3] = make_listener();
	for (int i = 0; i < 4; i++)
		ids[i] = ident_of(fds[i]);
	r = deposit(c, "basic", 0, fds, 4, reason);
	CHECK(r == 0, "deposit: %s (%s)", strerror(-r), reason);
	close_all(fds, 4);

	r = retrieve(c, LUO_AGENT_UID_SELF, "basic", got, 4, &n);
	CHECK(r == 0 && n == 4, "retrieve: %s, %zu fds", strerror(-r), n);
	for (int i = 0; i < 4; i++)
		CHECK(same(got[i], ids[i]), "fd %d is not the deposited one", i);
	CHECK(pread(got[1], buf, 5, 0) == 5 && memcmp(buf, "hello", 5) == 0, "memfd data");
	CHECK(write(pw[1], "x", 1) == 1 && read(got[2], buf, 1) == 1 && buf[0] == 'x', "pipe data");
	CHECK((fcntl(got[0], F_GET_SEALS) & F_SEAL_WRITE) != 0, "blob seals");
	CHECK((fcntl(got[1], F_GETFD) & FD_CLOEXEC) != 0, "received fds are close-on-exec (MSG_CMSG_CLOEXEC)");
	close_all(got, n);
	/* A retrieve takes nothing away. */
	r = retrieve(c, LUO_AGENT_UID_SELF, "basic", got, 4, &n);
	CHECK(r == 0 && n == 4 && same(got[3], ids[3]), "second retrieve");
	close_all(got, n);

	r = list(c, LUO_AGENT_UID_SELF, info, 4, &count);
	CHECK(r == 0 && count == 1, "list: %s count %u", strerror(-r), count);
	CHECK(strcmp(info[0].name, "basic") == 0 && info[0].n_fds == 4 && info[0].uid == getuid(), "list info");
	CHECK(info[0].bytes == strlen("luo blob bytes") + 5, "bytes %llu", (unsigned long long)info[0].bytes);
	CHECK(info[0].generation == 1 && info[0].owner_pid == getpid() && info[0].flags == 0, "gen/owner");

	/* A second deposit replaces the first: generation 2. */
	fds[0] = make_blob("second");
	r = deposit(c, "basic", LUO_AGENT_DEPOSIT_KEEP_ON_CRASH, fds, 1, reason);
	CHECK(r == 0, "redeposit: %s", reason);
	close(fds[0]);
	r = list(c, LUO_AGENT_UID_ALL, info, 4, &count);
	CHECK(r == 0 && count == 1 && info[0].generation == 2 && info[0].n_fds == 1 &&
		      info[0].flags == LUO_AGENT_DEPOSIT_KEEP_ON_CRASH,
	      "list after redeposit");
	/* The replaced deposit's pipe read end is closed by the agent now. */
	CHECK(reader_gone(pw[1]), "the replaced session's fds are closed");

	/* A session of 600 fds: OP_FDS both ways. */
	{
		int many[600];
		struct ident mid[600];

		many[0] = make_blob("many");
		for (int i = 1; i < 600; i++)
			many[i] = make_memfd(NULL, 0);
		for (int i = 0; i < 600; i++)
			mid[i] = ident_of(many[i]);
		r = deposit(c, "many", 0, many, 600, reason);
		CHECK(r == 0, "deposit 600: %s (%s)", strerror(-r), reason);
		close_all(many, 600);
		r = retrieve(c, LUO_AGENT_UID_SELF, "many", got, sizeof(got) / sizeof(got[0]), &n);
		CHECK(r == 0 && n == 600, "retrieve 600: %s", strerror(-r));
		for (int i = 0; i < 600; i++)
			CHECK(same(got[i], mid[i]), "fd %d of 600", i);
		close_all(got, n);
	}

	r = status(c, &st);
	CHECK(r == 0, "status: %s", strerror(-r));
	CHECK(st.pid == luod_pid && st.lu_number == 0 && st.sessions == 2 && st.fds == 601 && st.own_sessions == 2 &&
		      st.connections == 1 && st.max_sessions > 0,
	      "status: pid %d sessions %llu fds %llu", st.pid, (unsigned long long)st.sessions,
	      (unsigned long long)st.fds);

	r = simple(c, LUO_AGENT_OP_DROP, LUO_AGENT_UID_SELF, "basic", NULL);
	CHECK(r == 0, "drop: %s", strerror(-r));
	r = retrieve(c, LUO_AGENT_UID_SELF, "basic", got, 4, &n);
	CHECK(r == -ENOENT, "retrieve after drop: %s", strerror(-r));
	r = simple(c, LUO_AGENT_OP_DROP, LUO_AGENT_UID_SELF, "basic", NULL);
	CHECK(r == -ENOENT, "drop twice: %s", strerror(-r));
	r = simple(c, LUO_AGENT_OP_DROP, LUO_AGENT_UID_SELF, "many", NULL);
	CHECK(r == 0, "drop many");
	close(pw[1]);
	close(c);
	stop_luod();
}

/* ------------------------------------------------------------------------ */
/* malformed                                                                 */

struct victim {
	int conn;
	struct ident ids[2];
};

static void victim_setup(struct victim *v)
{
	int fds[2] = { make_blob("victim"), make_memfd("precious", 8) };
	char reason[LUO_AGENT_REASON_SIZE];
	int r;

	v->conn = cl_connect();
	v->ids[0] = ident_of(fds[0]);
	v->ids[1] = ident_of(fds[1]);
	r = deposit(v->conn, "victim", 0, fds, 2, reason);
	CHECK(r == 0, "victim deposit: %s", reason);
	close_all(fds, 2);
}

/* The other client's session is intact, and luod serves new clients. */
static void victim_check(struct victim *v, const char *after)
{
	int got[2], c;
	char buf[8];
	size_t n;
	int r = retrieve(v->conn, LUO_AGENT_UID_SELF, "victim", got, 2, &n);
	struct luo_agent_status st;

	CHECK(r == 0 && n == 2, "after %s: victim retrieve: %s", after, strerror(-r));
	CHECK(same(got[0], v->ids[0]) && same(got[1], v->ids[1]), "after %s: victim identities", after);
	CHECK(pread(got[1], buf, 8, 0) == 8 && memcmp(buf, "precious", 8) == 0, "after %s: victim data", after);
	close_all(got, 2);
	c = cl_connect();
	r = status(c, &st);
	CHECK(r == 0 && st.pid == luod_pid && st.sessions == 1, "after %s: status from a new client", after);
	close(c);
}

/* Send raw bytes with fds (up to 253, past what luo_wire_send allows). */
static void raw_send(int fd, const void *buf, size_t len, const int *fds, size_t n_fds)
{
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(sizeof(int) * 253)];
	} control;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (n_fds) {
		struct cmsghdr *cm;

		memset(&control, 0, sizeof(control));
		mh.msg_control = control.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
	}
	CHECK(sendmsg(fd, &mh, MSG_NOSIGNAL) == (ssize_t)len, "raw send: %s", strerror(errno));
}

/* The reply to a bad message: its error; then whether the connection was closed. */
static void expect_refusal(int c, int want, bool closed, const char *what)
{
	unsigned char buf[LUO_AGENT_MSG_MAX];
	struct luo_agent_reply rep = { 0 };
	size_t nf = 0;
	ssize_t n = luo_wire_recv(c, buf, sizeof(buf), NULL, 0, &nf);

	CHECK(n >= (ssize_t)LUO_AGENT_REPLY_SIZE_VER0, "%s: no reply (%zd)", what, n);
	memcpy(&rep, buf, sizeof(rep) < (size_t)n ? sizeof(rep) : (size_t)n);
	CHECK(rep.hdr.version == LUO_AGENT_PROTO_VERSION, "%s: reply version %u", what, rep.hdr.version);
	CHECK(rep.error == want, "%s: error %d (%s), want %d", what, rep.error, strerror(-rep.error), want);
	if (closed) {
		n = luo_wire_recv(c, buf, sizeof(buf), NULL, 0, &nf);
		CHECK(n == 0 || n == -ECONNRESET, "%s: connection not closed (%zd)", what, n);
	} else {
		struct luo_agent_status st;
		int r = status(c, &st);

		CHECK(r == 0, "%s: connection unusable after a refusal: %s", what, strerror(-r));
	}
}

static struct luo_agent_request good_request(uint16_t op)
{
	struct luo_agent_request q = {
		.uid = LUO_AGENT_UID_SELF,
		.reply_size = sizeof(struct luo_agent_reply),
		.info_size = sizeof(struct luo_agent_status),
	};

	luo_wire_header_init(&q.hdr, sizeof(q), op, ++seq_counter);
	strcpy(q.name, "victim");
	return q;
}

static void test_malformed(void)
{
	struct victim v;
	struct luo_agent_request q;
	unsigned char big[LUO_AGENT_MSG_MAX + 100];
	char reason[LUO_AGENT_REASON_SIZE];
	int c, pw[2], fds[260];

	start_luod(NULL, NULL, NULL, NULL);
	victim_setup(&v);

	/* Truncated: shorter than the request's first version. */
	c = cl_connect();
	q = good_request(LUO_AGENT_OP_RETRIEVE);
	q.hdr.size = 50;
	raw_send(c, &q, 50, NULL, 0);
	expect_refusal(c, -EBADMSG, true, "truncated struct");
	close(c);
	victim_check(&v, "truncated struct");

	/* Size field not the bytes sent. */
	c = cl_connect();
	q = good_request(LUO_AGENT_OP_RETRIEVE);
	q.hdr.size = 96;
	raw_send(c, &q, sizeof(q), NULL, 0);
	expect_refusal(c, -EBADMSG, true, "size != bytes");
	close(c);
	victim_check(&v, "size != bytes");

	/* Oversized. */
	c = cl_connect();
	memset(big, 0, sizeof(big));
	q = good_request(LUO_AGENT_OP_STATUS);
	q.hdr.size = sizeof(big);
	memcpy(big, &q, sizeof(q));
	raw_send(c, big, sizeof(big), NULL, 0);
	expect_refusal(c, -EBADMSG, true, "oversized");
	close(c);
	victim_check(&v, "oversized");

	/* Another protocol version. */
	c = cl_connect();
	q = good_request(LUO_AGENT_OP_STATUS);
	q.hdr.version = 2;
	raw_send(c, &q, sizeof(q), NULL, 0);
	expect_refusal(c, -EPROTONOSUPPORT, true, "wrong version");
	close(c);
	victim_check(&v, "wrong version");

	/* Unknown op: refused, the connection goes on. */
	c = cl_connect();
	q = good_request(42);
	raw_send(c, &q, sizeof(q), NULL, 0);
	expect_refusal(c, -EOPNOTSUPP, false, "unknown op");
	close(c);
	victim_check(&v, "unknown op");

	/* Non-zero bytes past our struct: -E2BIG. Zero ones: fine. */
	c = cl_connect();
	memset(big, 0, sizeof(big));
	q = good_request(LUO_AGENT_OP_STATUS);
	q.hdr.size = sizeof(q) + 16;
	memcpy(big, &q, sizeof(q));
	raw_send(c, big, sizeof(q) + 16, NULL, 0);
	{
		struct luo_agent_reply rep;

		CHECK(reply_recv(c, q.hdr.seq, &rep) == 0 && rep.count == 1, "zero trailing bytes accepted");
		struct luo_agent_status st;
		CHECK(msg_recv(c, LUO_AGENT_OP_INFO, LUO_AGENT_STATUS_SIZE_VER0, &st, sizeof(st), q.hdr.seq, NULL, 0,
			       NULL) > 0,
		      "status info");
	}
	q.hdr.seq = ++seq_counter;
	memcpy(big, &q, sizeof(q));
	big[sizeof(q) + 7] = 1;
	raw_send(c, big, sizeof(q) + 16, NULL, 0);
	expect_refusal(c, -E2BIG, false, "non-zero trailing bytes");
	close(c);
	victim_check(&v, "non-zero trailing bytes");

	/* Fds on a request that announces none: refused, and luod closed them. */
	c = cl_connect();
	CHECK(pipe2(pw, O_CLOEXEC) == 0, "pipe");
	q = good_request(LUO_AGENT_OP_STATUS);
	raw_send(c, &q, sizeof(q), &pw[1], 1);
	close(pw[1]);
	expect_refusal(c, -EBADMSG, true, "unannounced fds");
	CHECK(pipe_closed_by_agent(pw[0]), "unannounced fd not closed by luod");
	close(pw[0]);
	close(c);
	victim_check(&v, "unannounced fds");

	/* A DEPOSIT carrying more fds than it announces. */
	c = cl_connect();
	CHECK(pipe2(pw, O_CLOEXEC) == 0, "pipe");
	fds[0] = make_blob("x");
	fds[1] = pw[1];
	fds[2] = pw[1];
	q = good_request(LUO_AGENT_OP_DEPOSIT);
	strcpy(q.name, "attacker");
	q.n_fds = 2;
	raw_send(c, &q, sizeof(q), fds, 3);
	close(fds[0]);
	close(pw[1]);
	expect_refusal(c, -EBADMSG, true, "more fds than announced");
	CHECK(pipe_closed_by_agent(pw[0]), "fds of a refused deposit not closed");
	close(pw[0]);
	close(c);
	victim_check(&v, "more fds than announced");

	/* More fds in one message than LUO_AGENT_FDS_PER_MSG. */
	c = cl_connect();
	CHECK(pipe2(pw, O_CLOEXEC) == 0, "pipe");
	fds[0] = make_blob("x");
	for (int i = 1; i < 253; i++)
		fds[i] = pw[1];
	q = good_request(LUO_AGENT_OP_DEPOSIT);
	strcpy(q.name, "attacker");
	q.n_fds = 253;
	raw_send(c, &q, sizeof(q), fds, 253);
	close(fds[0]);
	close(pw[1]);
	expect_refusal(c, -EBADMSG, true, "too many fds in a message");
	CHECK(pipe_closed_by_agent(pw[0]), "fds of an over-full message not closed");
	close(pw[0]);
	close(c);
	victim_check(&v, "too many fds");

	/* OP_FDS with no DEPOSIT under way. */
	c = cl_connect();
	{
		struct luo_agent_fds f = { 0 };
		int m = make_memfd(NULL, 0);

		luo_wire_header_init(&f.hdr, sizeof(f), LUO_AGENT_OP_FDS, ++seq_counter);
		f.n_fds = 1;
		raw_send(c, &f, sizeof(f), &m, 1);
		close(m);
	}
	expect_refusal(c, -EBADMSG, true, "OP_FDS alone");
	close(c);
	victim_check(&v, "OP_FDS alone");

	/* A blob that is a memfd but not sealed: -EBADFD, the connection goes on. */
	c = cl_connect();
	CHECK(pipe2(pw, O_CLOEXEC) == 0, "pipe");
	fds[0] = make_memfd("not sealed", 10);
	fds[1] = pw[1];
	{
		int r = deposit(c, "attacker", 0, fds, 2, reason);

		CHECK(r == -EBADFD, "unsealed blob: %s (%s)", strerror(-r), reason);
	}
	close(fds[0]);
	close(pw[1]);
	CHECK(pipe_closed_by_agent(pw[0]), "fds of a refused deposit not closed");
	close(pw[0]);
	{
		struct luo_agent_status st;

		CHECK(status(c, &st) == 0 && st.own_sessions == 1, "after an unsealed blob");
	}
	/* Not a memfd at all. */
	CHECK(pipe2(pw, O_CLOEXEC) == 0, "pipe");
	{
		int r = deposit(c, "attacker", 0, &pw[0], 1, reason);

		CHECK(r == -EBADFD, "pipe as blob: %s", strerror(-r));
	}
	close(pw[0]);
	close(pw[1]);
	close(c);
	victim_check(&v, "unsealed blob");

	/* A name without its NUL; a name with junk after the NUL. */
	c = cl_connect();
	{
		int b = make_blob("x"), r;
		struct luo_agent_reply rep;

		q = good_request(LUO_AGENT_OP_DEPOSIT);
		memset(q.name, 'a', sizeof(q.name));
		q.n_fds = 1;
		raw_send(c, &q, sizeof(q), &b, 1);
		r = reply_recv(c, q.hdr.seq, &rep);
		CHECK(r == -EINVAL, "deposit name without NUL: %s", strerror(-r));
		close(b);
		q = good_request(LUO_AGENT_OP_RETRIEVE);
		memset(q.name, 'a', sizeof(q.name));
		raw_send(c, &q, sizeof(q), NULL, 0);
		r = reply_recv(c, q.hdr.seq, &rep);
		CHECK(r == -EINVAL, "retrieve name without NUL: %s", strerror(-r));
		q = good_request(LUO_AGENT_OP_DROP);
		q.name[8] = 'z';
		raw_send(c, &q, sizeof(q), NULL, 0);
		r = reply_recv(c, q.hdr.seq, &rep);
		CHECK(r == -EINVAL, "drop name with bytes after the NUL: %s", strerror(-r));
		/* Unknown flag bits; reserved non-zero. */
		q = good_request(LUO_AGENT_OP_LIST);
		q.flags = 4;
		raw_send(c, &q, sizeof(q), NULL, 0);
		r = reply_recv(c, q.hdr.seq, &rep);
		CHECK(r == -EINVAL, "unknown flags: %s", strerror(-r));
	}
	{
		struct luo_agent_status st;

		CHECK(status(c, &st) == 0, "usable after bad names and flags");
	}
	close(c);
	victim_check(&v, "bad names");

	/* A client stalling mid-deposit does not block others; its close drops nothing of theirs. */
	c = cl_connect();
	{
		int b = make_blob("stall");

		q = good_request(LUO_AGENT_OP_DEPOSIT);
		strcpy(q.name, "stalled");
		q.n_fds = 3;
		raw_send(c, &q, sizeof(q), &b, 1);
		close(b);
	}
	victim_check(&v, "a stalled deposit");
	close(c);
	victim_check(&v, "a stalled deposit's end");

	close(v.conn);
	stop_luod();
}

/* ------------------------------------------------------------------------ */
/* limits                                                                    */

static int deposit_n(int c, const char *name, int n_fds, size_t memfd_bytes, char *reason)
{
	int fds[16];
	int r;

	fds[0] = make_blob("limits");
	for (int i = 1; i < n_fds; i++)
		fds[i] = make_sized_memfd(NULL, 0, memfd_bytes);
	r = deposit(c, name, 0, fds, (uint32_t)n_fds, reason);
	close_all(fds, (size_t)n_fds);
	return r;
}

static void test_limits(void)
{
	char reason[LUO_AGENT_REASON_SIZE];
	struct luo_agent_status st;
	int c, r;

	start_luod("--max-sessions", "3", "--max-fds", "8");
	c = cl_connect();
	CHECK(status(c, &st) == 0 && st.max_sessions == 3 && st.max_fds == 8, "limits in STATUS");
	for (int i = 0; i < 3; i++) {
		char name[8];

		snprintf(name, sizeof(name), "s%d", i);
		r = deposit_n(c, name, 2, 0, reason);
		CHECK(r == 0, "deposit %s: %s", name, reason);
	}
	r = deposit_n(c, "s3", 1, 0, reason);
	CHECK(r == -EDQUOT && strstr(reason, "max-sessions"), "4th session: %s (%s)", strerror(-r), reason);
	/* Replacing a session is no new session. */
	r = deposit_n(c, "s0", 2, 0, reason);
	CHECK(r == 0, "replace at the session limit: %s", reason);
	/* 6 fds held; s0 with 5 instead of 2 would make 9. */
	r = deposit_n(c, "s0", 5, 0, reason);
	CHECK(r == -EDQUOT && strstr(reason, "max-fds"), "fd limit: %s (%s)", strerror(-r), reason);
	/* The refused deposit left the previous one in place. */
	CHECK(status(c, &st) == 0 && st.own_sessions == 3 && st.own_fds == 6, "after refusals: %llu sessions %llu fds",
	      (unsigned long long)st.own_sessions, (unsigned long long)st.own_fds);
	/*
	 * Deposits under way count too: another connection of this uid that
	 * announces 3 fds and stalls after the first holds 6 + 3; replacing s0
	 * (2 fds) by 2 fds is then over the limit, and fits again once the
	 * staller is gone.
	 */
	{
		int staller = cl_connect(), blob = make_blob("stall");

		req_send(staller, LUO_AGENT_OP_DEPOSIT, 0, 3, LUO_AGENT_UID_SELF, "s2", &blob, 1);
		close(blob);
		msleep(100); /* luod has read the DEPOSIT */
		r = deposit_n(c, "s0", 2, 0, reason);
		CHECK(r == -EDQUOT && strstr(reason, "max-fds"), "fds of a deposit under way not counted: %s (%s)",
		      strerror(-r), reason);
		close(staller);
		msleep(100);
		r = deposit_n(c, "s1", 2, 0, reason);
		CHECK(r == 0, "after the staller left: %s", reason);
	}
	/* LUO_AGENT_SESSION_FDS_MAX + 1: -EINVAL, and the connection is closed (its fds cannot be followed). */
	close(c);
	stop_luod();

	start_luod("--max-bytes", "100000", NULL, NULL);
	c = cl_connect();
	r = deposit_n(c, "small", 2, 50000, reason);
	CHECK(r == 0, "50,000 bytes: %s", reason);
	r = deposit_n(c, "big", 2, 60000, reason);
	CHECK(r == -EDQUOT && strstr(reason, "max-bytes"), "byte limit: %s (%s)", strerror(-r), reason);
	CHECK(status(c, &st) == 0 && st.own_sessions == 1 && st.max_bytes == 100000, "after the byte limit");
	close(c);
	stop_luod();
}

/* ------------------------------------------------------------------------ */
/* users                                                                     */

static void become(uid_t uid)
{
	gid_t g = (gid_t)uid;

	if (setgroups(1, &g) < 0 || setresgid(g, g, g) < 0 || setresuid(uid, uid, uid) < 0)
		_exit(90);
}

/* Run @fn as @uid in a child; its exit status. */
static int as_user(uid_t uid, int (*fn)(void))
{
	pid_t pid = fork();
	int st;

	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		become(uid);
		luod_pid = -1; /* not ours to stop */
		_exit(fn());
	}
	CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#define UCHECK(cond, code)                                                                               \
	do {                                                                                             \
		if (!(cond)) {                                                                           \
			fprintf(stderr, "test-luod:%d: as uid %u: %s\n", __LINE__, (unsigned)getuid(), #cond); \
			return code;                                                                     \
		}                                                                                        \
	} while (0)

static int nobody_part(void)
{
	struct luo_agent_session_info info[4];
	int got[4], c = cl_connect_once(), fds[2];
	char reason[LUO_AGENT_REASON_SIZE];
	uint32_t count = 99;
	size_t n;

	UCHECK(c >= 0, 10);
	UCHECK(list(c, LUO_AGENT_UID_SELF, info, 4, &count) == 0 && count == 0, 11);
	UCHECK(list(c, LUO_AGENT_UID_ALL, info, 4, &count) == 0 && count == 0, 12);
	UCHECK(list(c, 0, info, 4, &count) == -EPERM, 13);
	UCHECK(retrieve(c, LUO_AGENT_UID_SELF, "rootsess", got, 4, &n) == -ENOENT, 14);
	UCHECK(retrieve(c, 0, "rootsess", got, 4, &n) == -EPERM, 15);
	UCHECK(simple(c, LUO_AGENT_OP_DROP, 0, "rootsess", NULL) == -EPERM, 16);
	UCHECK(simple(c, LUO_AGENT_OP_DROP, LUO_AGENT_UID_SELF, "rootsess", NULL) == -ENOENT, 17);
	UCHECK(simple(c, LUO_AGENT_OP_UPDATE, 0, NULL, NULL) == -EPERM, 18);
	fds[0] = make_blob("nobody");
	fds[1] = make_memfd("n", 1);
	UCHECK(deposit(c, "nobodysess", 0, fds, 2, reason) == 0, 19);
	close_all(fds, 2);
	UCHECK(list(c, LUO_AGENT_UID_ALL, info, 4, &count) == 0 && count == 1 &&
		       strcmp(info[0].name, "nobodysess") == 0 && info[0].uid == getuid(),
	       20);
	UCHECK(simple(c, LUO_AGENT_OP_DETACH, 0, NULL, NULL) == 0, 21);
	close(c);
	return 0;
}

static int other_part(void)
{
	struct luo_agent_session_info info[4];
	int got[4], c = cl_connect_once();
	uint32_t count = 99;
	size_t n;

	UCHECK(c >= 0, 30);
	UCHECK(list(c, LUO_AGENT_UID_ALL, info, 4, &count) == 0 && count == 0, 31);
	UCHECK(retrieve(c, LUO_AGENT_UID_SELF, "nobodysess", got, 4, &n) == -ENOENT, 32);
	UCHECK(retrieve(c, 65534, "nobodysess", got, 4, &n) == -EPERM, 33);
	UCHECK(simple(c, LUO_AGENT_OP_DROP, 65534, "nobodysess", NULL) == -EPERM, 34);
	close(c);
	return 0;
}

static void test_users(void)
{
	struct luo_agent_session_info info[4];
	char reason[LUO_AGENT_REASON_SIZE];
	int c, r, fds[2], got[4];
	uint32_t count;
	size_t n;

	if (geteuid() != 0) {
		printf("SKIP: needs root (to run clients as two other uids)\n");
		exit(77);
	}
	CHECK(chmod(dir, 0755) == 0, "chmod");
	start_luod("--socket-mode", "0666", NULL, NULL);
	c = cl_connect();
	fds[0] = make_blob("root");
	fds[1] = make_memfd("r", 1);
	r = deposit(c, "rootsess", 0, fds, 2, reason);
	CHECK(r == 0, "root deposit: %s", reason);
	close_all(fds, 2);
	r = as_user(65534, nobody_part);
	CHECK(r == 0, "uid 65534 part failed (%d)", r);
	r = as_user(65533, other_part);
	CHECK(r == 0, "uid 65533 part failed (%d)", r);
	/* Root sees both, retrieves the other uid's. */
	r = list(c, LUO_AGENT_UID_ALL, info, 4, &count);
	CHECK(r == 0 && count == 2, "root list all: %u", count);
	r = list(c, 65534, info, 4, &count);
	CHECK(r == 0 && count == 1 && info[0].uid == 65534 && info[0].owner_pid == 0, "root list of uid 65534");
	r = retrieve(c, 65534, "nobodysess", got, 4, &n);
	CHECK(r == 0 && n == 2, "root retrieves uid 65534's: %s", strerror(-r));
	close_all(got, n);
	r = retrieve(c, LUO_AGENT_UID_SELF, "rootsess", got, 4, &n);
	CHECK(r == 0 && n == 2, "root's own still there");
	close_all(got, n);
	r = simple(c, LUO_AGENT_OP_DROP, 65534, "nobodysess", NULL);
	CHECK(r == 0, "root drops uid 65534's: %s", strerror(-r));
	close(c);
	stop_luod();
}

/* ------------------------------------------------------------------------ */
/* trust: what a uid can make luod hold, and how many of its connections     */

#define FLOOD_CONNS 200
#define FLOOD_SHARE 64 /* LUOD_CONNECTIONS_PER_UID_MAX */

/* Connections luod has closed (EOF), of @n; waits until it stops changing. */
static int count_closed(const int *fds, int n)
{
	int closed = 0, last = -1;

	for (int round = 0; round < 100 && closed != last; round++) {
		last = closed;
		msleep(50);
		closed = 0;
		for (int i = 0; i < n; i++) {
			char b;

			if (recv(fds[i], &b, 1, MSG_DONTWAIT | MSG_PEEK) == 0)
				closed++;
		}
	}
	return closed;
}

/* As uid 65534: open FLOOD_CONNS connections, say how many stayed, hold them until told. */
static void flood_child(int ready_wr, int go_rd)
{
	int fds[FLOOD_CONNS], n = 0, closed;
	char b = 0;

	luod_pid = -1;
	become(65534);
	for (; n < FLOOD_CONNS; n++) {
		fds[n] = cl_connect_once();
		if (fds[n] < 0)
			break;
	}
	closed = count_closed(fds, n);
	b = (char)(n == FLOOD_CONNS && n - closed <= (int)FLOOD_SHARE && n - closed > 0);
	if (!b)
		fprintf(stderr, "flood: %d connected, %d closed by luod, %d kept (share %u)\n", n, closed, n - closed,
			FLOOD_SHARE);
	if (write(ready_wr, &b, 1) != 1 || read(go_rd, &b, 1) < 0)
		_exit(2);
	_exit(0);
}

static int status_part(void)
{
	struct luo_agent_status st;
	int c = cl_connect_once();

	UCHECK(c >= 0, 40);
	UCHECK(status(c, &st) == 0, 41);
	close(c);
	return 0;
}

static void test_trust(void)
{
	char reason[LUO_AGENT_REASON_SIZE];
	int c, r, fds[2], sp[2], ready[2], go[2];
	struct luo_agent_status st;
	pid_t flood;
	char ok = 0;

	start_luod(geteuid() == 0 ? "--socket-mode" : NULL, geteuid() == 0 ? "0666" : NULL, NULL, NULL);
	c = cl_connect();

	/* A memfd whose size is not sealed: it could grow after the count. */
	fds[0] = make_blob("trust");
	fds[1] = memfd_create("growable", MFD_CLOEXEC);
	CHECK(fds[1] >= 0, "memfd");
	r = deposit(c, "growable", 0, fds, 2, reason);
	CHECK(r == -EBADFD && strstr(reason, "not sealed"), "unsealed memfd: %s (%s)", strerror(-r), reason);
	close_all(fds, 2);
	printf("ok - a memfd whose size is not sealed: refused (%s)\n", reason);

	/* An AF_UNIX socket: fds in flight in it would go uncounted. */
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0, "socketpair");
	fds[0] = make_blob("trust");
	fds[1] = sp[0];
	r = deposit(c, "carrier", 0, fds, 2, reason);
	CHECK(r == -EBADFD && strstr(reason, "AF_UNIX"), "AF_UNIX socket: %s (%s)", strerror(-r), reason);
	close_all(fds, 2);
	close(sp[1]);
	printf("ok - an AF_UNIX socket: refused (%s)\n", reason);

	/* A sealed one is taken and counted. */
	fds[0] = make_blob("trust");
	fds[1] = make_sized_memfd(NULL, 0, 1 << 20);
	r = deposit(c, "sealed", 0, fds, 2, reason);
	CHECK(r == 0, "sealed memfd: %s (%s)", strerror(-r), reason);
	close_all(fds, 2);
	CHECK(status(c, &st) == 0 && st.own_sessions == 1, "status");
	printf("ok - a memfd sealed against grow and shrink: taken\n");

	/* A deposit announcing 3 fds that sends 1: cut after LUOD_STALL_MS (10 s), the budget freed. */
	{
		struct luo_agent_request q = good_request(LUO_AGENT_OP_DEPOSIT);
		int s = cl_connect(), blob = make_blob("stalled");
		struct timeval tv = { .tv_sec = 20 };
		struct timespec t0, t1;
		char b;
		ssize_t got;

		snprintf(q.name, sizeof(q.name), "stalled");
		q.n_fds = 3;
		raw_send(s, &q, sizeof(q), &blob, 1);
		close(blob);
		setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		clock_gettime(CLOCK_MONOTONIC, &t0);
		got = recv(s, &b, 1, 0);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		CHECK(got == 0, "a stalled deposit was not cut (recv %zd: %s)", got, strerror(errno));
		CHECK(t1.tv_sec - t0.tv_sec >= 8, "cut after %ld s only", (long)(t1.tv_sec - t0.tv_sec));
		close(s);
		CHECK(status(c, &st) == 0 && st.own_sessions == 1, "status after the cut");
		printf("ok - a deposit stalled mid-way: cut after %ld s\n", (long)(t1.tv_sec - t0.tv_sec));
	}

	if (geteuid() != 0) {
		printf("ok - # SKIP connection share: needs root (a flood as another uid)\n");
		close(c);
		stop_luod();
		return;
	}
	CHECK(chmod(dir, 0755) == 0, "chmod");
	CHECK(pipe2(ready, O_CLOEXEC) == 0 && pipe2(go, O_CLOEXEC) == 0, "pipe");
	flood = fork();
	CHECK(flood >= 0, "fork");
	if (flood == 0) {
		close(ready[0]);
		close(go[1]);
		flood_child(ready[1], go[0]);
	}
	close(ready[1]);
	close(go[0]);
	r = (int)read(ready[0], &ok, 1);
	/* The flood holds its connections: another uid and root are still served. */
	CHECK(as_user(65533, status_part) == 0, "uid 65533 not served during uid 65534's flood");
	CHECK(status(c, &st) == 0, "root not served during the flood");
	CHECK(write(go[1], "x", 1) == 1, "write");
	close(go[1]);
	close(ready[0]);
	CHECK(waitpid(flood, NULL, 0) == flood, "waitpid");
	CHECK(r == 1 && ok == 1, "uid 65534 kept more than its share of connections");
	printf("ok - uid 65534 opening %d connections keeps at most %u; uid 65533 and root are served\n",
	       FLOOD_CONNS, FLOOD_SHARE);
	close(c);
	stop_luod();
}

/* ------------------------------------------------------------------------ */
/* inflight: RETRIEVE replies a client never reads                          */

#define INFL_MAX_FDS 256       /* luod's --max-fds for the test */
#define INFL_SESSION_FDS 200   /* one session: the blob + 199 pipes' ends */
#define INFL_CONNS 16
#define INFL_REQUESTS 400      /* per connection: more replies than a socket buffer holds */

static int infl_ready_wr = -1, infl_done_rd = -1;

static int luod_fd_count(void)
{
	char path[64];
	struct dirent *e;
	DIR *dp;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)luod_pid);
	dp = opendir(path);
	if (!dp)
		return -1;
	while ((e = readdir(dp)))
		n += e->d_name[0] != '.';
	closedir(dp);
	return n;
}

/* As uid 65534: deposit a session of 200 fds, then RETRIEVE it 400 times on each of 16 connections, unread. */
static int inflight_part(void)
{
	struct luo_agent_request q = good_request(LUO_AGENT_OP_RETRIEVE);
	char reason[LUO_AGENT_REASON_SIZE];
	int fds[INFL_SESSION_FDS], c = cl_connect_once(), conns[INFL_CONNS], p[2];

	UCHECK(c >= 0, 50);
	fds[0] = make_blob("inflight");
	for (int i = 1; i < INFL_SESSION_FDS; i += 2) {
		UCHECK(pipe2(p, O_CLOEXEC) == 0, 51);
		fds[i] = p[0];
		if (i + 1 < INFL_SESSION_FDS)
			fds[i + 1] = p[1];
		else
			close(p[1]);
	}
	UCHECK(deposit(c, "many", LUO_AGENT_DEPOSIT_KEEP_ON_CRASH, fds, INFL_SESSION_FDS, reason) == 0, 52);
	close_all(fds, INFL_SESSION_FDS);
	memset(q.name, 0, sizeof(q.name));
	snprintf(q.name, sizeof(q.name), "many");
	for (int k = 0; k < INFL_CONNS; k++) {
		conns[k] = cl_connect_once();
		UCHECK(conns[k] >= 0, 53);
		UCHECK(fcntl(conns[k], F_SETFL, O_NONBLOCK) == 0, 54);
	}
	/* Write every request luod takes; it stops reading while a reply is queued. */
	for (int n = 0; n < INFL_REQUESTS; n++)
		for (int k = 0; k < INFL_CONNS; k++) {
			q.hdr.seq = seq_counter++;
			(void)send(conns[k], &q, sizeof(q), MSG_NOSIGNAL);
		}
	msleep(1000);
	/* Tell the parent, and wait for it to have looked (it closes the pipe). */
	UCHECK(write(infl_ready_wr, "x", 1) == 1, 55);
	{
		char b;

		(void)read(infl_done_rd, &b, 1);
	}
	for (int k = 0; k < INFL_CONNS; k++)
		close(conns[k]);
	close(c);
	return 0;
}

static int inflight_other_part(void)
{
	struct luo_agent_status st;
	struct luo_agent_session_info info[2];
	struct timespec t0, t1;
	uint32_t count;
	int c;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	c = cl_connect_once();
	UCHECK(c >= 0, 60);
	UCHECK(status(c, &st) == 0, 61);
	UCHECK(list(c, LUO_AGENT_UID_SELF, info, 2, &count) == 0 && count == 0, 62);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	close(c);
	UCHECK((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 1000, 63);
	return 0;
}

static void test_inflight(void)
{
	char max[16], b;
	int ready[2], done[2], base, during, st;
	pid_t pid;

	if (geteuid() != 0) {
		printf("ok - # SKIP inflight: needs root (uids 65534 and 65533)\n");
		return;
	}
	snprintf(max, sizeof(max), "%u", INFL_MAX_FDS);
	start_luod("--socket-mode", "0666", "--max-fds", max);
	CHECK(chmod(dir, 0755) == 0, "chmod");
	msleep(100);
	base = luod_fd_count();
	CHECK(base > 0, "count luod's fds");
	CHECK(pipe2(ready, O_CLOEXEC) == 0 && pipe2(done, O_CLOEXEC) == 0, "pipe");
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		close(ready[0]);
		close(done[1]);
		infl_ready_wr = ready[1];
		infl_done_rd = done[0];
		become(65534);
		luod_pid = -1;
		_exit(inflight_part());
	}
	close(ready[1]);
	close(done[0]);
	CHECK(read(ready[0], &b, 1) == 1, "uid 65534's part did not get to its unread replies");
	during = luod_fd_count();
	/* Another uid is served meanwhile, within a second. */
	CHECK(as_user(65533, inflight_other_part) == 0, "uid 65533 not served while uid 65534 leaves replies unread");
	close(done[1]);
	close(ready[0]);
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "uid 65534's part: %d", st);
	/*
	 * Unread replies may hold luod's duplicates of at most the uid's
	 * max-fds (plus the session it holds, its connections and slack).
	 */
	CHECK(during - base <= INFL_MAX_FDS + INFL_SESSION_FDS + INFL_CONNS + 2 + 8,
	      "luod went from %d to %d fds with uid 65534's replies unread (its max-fds: %u)", base, during,
	      INFL_MAX_FDS);
	printf("ok - 16 connections x 400 RETRIEVEs of 200 fds left unread: luod holds %d fds more (max-fds %u); "
	       "uid 65533 served\n", during - base, INFL_MAX_FDS);
	stop_luod();
}

/* ------------------------------------------------------------------------ */
/* fuse: a deposited file whose filesystem stops answering (tests/hangfs.c)   */

/* Whether @c answers a STATUS and a LIST within @ms. */
static bool answers_within(int c, long ms)
{
	struct luo_agent_session_info info[4];
	struct luo_agent_status st;
	struct timespec t0, t1;
	uint32_t count;
	bool ok;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ok = status(c, &st) == 0 && list(c, LUO_AGENT_UID_SELF, info, 4, &count) == 0;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return ok && (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < ms;
}

/* 77 (skipped) or 0. */
static int test_fuse(const char *hangfs)
{
	char mnt[96], file[128], reason[LUO_AGENT_REASON_SIZE];
	struct timeval tv = { .tv_sec = 5 };
	struct stat root, st;
	int c, other, fds[2], r, wst;
	pid_t fs;

	if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) != 0) {
		printf("ok - # SKIP fuse: needs root and /dev/fuse (%s)\n", strerror(errno));
		return 77;
	}
	snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
	snprintf(hangfs_mnt, sizeof(hangfs_mnt), "%s", mnt);
	snprintf(file, sizeof(file), "%s/f", mnt);
	CHECK(mkdir(mnt, 0755) == 0 && stat(mnt, &root) == 0, "mkdir %s", mnt);
	fs = fork();
	CHECK(fs >= 0, "fork");
	hangfs_pid = fs;
	if (fs == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		dup2(null, STDOUT_FILENO); /* the TAP output is the parent's */
		execl(hangfs, hangfs, mnt, "-f", "-s", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 300 && !(stat(mnt, &st) == 0 && st.st_dev != root.st_dev); i++) {
		if (waitpid(fs, &wst, WNOHANG) == fs) {
			hangfs_pid = -1;
			rmdir(mnt);
			printf("ok - # SKIP fuse: cannot mount a FUSE filesystem here (hangfs exited %d)\n", wst);
			return 77;
		}
		msleep(10);
	}
	if (stat(mnt, &st) != 0 || st.st_dev == root.st_dev) {
		kill(fs, SIGKILL);
		waitpid(fs, NULL, 0);
		hangfs_pid = -1;
		umount2(mnt, MNT_DETACH);
		rmdir(mnt);
		printf("ok - # SKIP fuse: the FUSE filesystem did not mount within 3 s\n");
		return 77;
	}
	fds[1] = open(file, O_RDONLY | O_CLOEXEC);
	CHECK(fds[1] >= 0, "open %s: %s", file, strerror(errno));

	start_luod(NULL, NULL, NULL, NULL);
	c = cl_connect();
	other = cl_connect();
	CHECK(setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0, "SO_RCVTIMEO");
	/* From now on the filesystem answers nothing; its attributes age out of the cache (1 s). */
	CHECK(kill(fs, SIGUSR1) == 0, "SIGUSR1");
	msleep(1500);
	fds[0] = make_blob("fuse");
	r = deposit(c, "on-fuse", LUO_AGENT_DEPOSIT_KEEP_ON_CRASH, fds, 2, reason);
	CHECK(r == 0, "the deposit of a file whose filesystem does not answer: %s (%s) -- luod asked the "
		      "filesystem (blocked, or timed out after 5 s)", strerror(-r), reason);
	close(fds[0]);
	printf("ok - a file whose FUSE server does not answer: deposited, answered within 5 s\n");
	CHECK(answers_within(other, 1000), "another client not served within 1 s while luod holds the file");
	printf("ok - another client's STATUS and LIST answered within 1 s\n");
	/* Dropped: luod closes its fd (FUSE_FLUSH, never answered) on its closer thread, not in its loop. */
	reason[0] = '\0';
	r = simple(c, LUO_AGENT_OP_DROP, LUO_AGENT_UID_SELF, "on-fuse", reason);
	CHECK(r == 0, "DROP of the session on the silent filesystem: %s (%s)", strerror(-r), reason);
	CHECK(answers_within(other, 1000), "another client not served within 1 s after the DROP");
	/* A deposit refused (AF_UNIX socket next to it) closes the file too. */
	{
		int sp[2], three[3];

		CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0, "socketpair");
		three[0] = make_blob("fuse");
		three[1] = fds[1];
		three[2] = sp[0];
		r = deposit(c, "refused", 0, three, 3, reason);
		CHECK(r == -EBADFD, "a deposit with an AF_UNIX socket: %s (%s)", strerror(-r), reason);
		close(three[0]);
		close(sp[0]);
		close(sp[1]);
	}
	CHECK(answers_within(other, 1000), "another client not served within 1 s after a refused deposit");
	printf("ok - the session dropped, a deposit with the file refused: answered, others served within 1 s\n");

	/*
	 * Any close() of that file, by luod or by us, sends FUSE_FLUSH and waits
	 * for it uninterruptibly: end the server first (the kernel aborts the
	 * connection and fails its requests), then stop luod.
	 */
	CHECK(kill(fs, SIGKILL) == 0 && waitpid(fs, NULL, 0) == fs, "kill hangfs");
	hangfs_pid = -1;
	(void)umount2(mnt, MNT_DETACH);
	close(fds[1]);
	close(other);
	close(c);
	stop_luod();
	CHECK(rmdir(mnt) == 0, "rmdir %s: %s", mnt, strerror(errno));
	printf("ok - the server gone, luod stopped\n");
	return 0;
}

/* ------------------------------------------------------------------------ */
/* crash                                                                     */

static void crash_child(int ready_fd, bool detach)
{
	char reason[LUO_AGENT_REASON_SIZE];
	int c = cl_connect_once(), fds[2];

	if (c < 0)
		_exit(10);
	fds[0] = make_blob(detach ? "k2" : "keep");
	fds[1] = make_memfd("d", 1);
	if (deposit(c, detach ? "k2" : "keep", LUO_AGENT_DEPOSIT_KEEP_ON_CRASH, fds, 2, reason) != 0)
		_exit(11);
	if (deposit(c, detach ? "n2" : "nokeep", 0, fds, 2, reason) != 0)
		_exit(12);
	if (detach && simple(c, LUO_AGENT_OP_DETACH, 0, NULL, NULL) != 0)
		_exit(13);
	if (write(ready_fd, "r", 1) != 1)
		_exit(14);
	if (detach)
		_exit(0);
	for (;;)
		pause();
}

static bool has(const struct luo_agent_session_info *info, uint32_t count, const char *name)
{
	for (uint32_t i = 0; i < count; i++)
		if (strcmp(info[i].name, name) == 0)
			return true;
	return false;
}

static void test_crash(void)
{
	struct luo_agent_session_info info[8];
	uint32_t count = 0;
	int p[2], c, st, r;
	char ch;
	pid_t pid;

	start_luod(NULL, NULL, NULL, NULL);
	CHECK(pipe2(p, O_CLOEXEC) == 0, "pipe");
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		luod_pid = -1;
		crash_child(p[1], false);
	}
	CHECK(read(p[0], &ch, 1) == 1, "child not ready");
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	c = cl_connect();
	for (int i = 0; i < 200; i++) {
		r = list(c, LUO_AGENT_UID_SELF, info, 8, &count);
		CHECK(r == 0, "list: %s", strerror(-r));
		if (count == 1)
			break;
		msleep(10);
	}
	CHECK(count == 1 && has(info, count, "keep"), "after SIGKILL: %u sessions", count);
	CHECK(info[0].owner_pid == 0, "kept session detached");

	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		luod_pid = -1;
		crash_child(p[1], true);
	}
	CHECK(read(p[0], &ch, 1) == 1, "child not ready");
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "detach child: %d", st);
	msleep(50);
	r = list(c, LUO_AGENT_UID_SELF, info, 8, &count);
	CHECK(r == 0 && count == 3 && has(info, count, "k2") && has(info, count, "n2"), "after DETACH: %u", count);
	close(p[0]);
	close(p[1]);
	close(c);
	stop_luod();
}

/* ------------------------------------------------------------------------ */
/* update                                                                    */

#define UPDATE_SESSIONS 1000
#define UPDATE_FDS 3

static struct ident upd_ids[UPDATE_SESSIONS][UPDATE_FDS];

static void check_all_sessions(int c, const char *when)
{
	int got[UPDATE_FDS];
	size_t n;

	for (int i = 0; i < UPDATE_SESSIONS; i++) {
		char name[16];
		uint32_t v = 0;
		int r;

		snprintf(name, sizeof(name), "s%04d", i);
		r = retrieve(c, LUO_AGENT_UID_SELF, name, got, UPDATE_FDS, &n);
		CHECK(r == 0 && n == UPDATE_FDS, "%s: retrieve %s: %s", when, name, strerror(-r));
		for (int j = 0; j < UPDATE_FDS; j++)
			CHECK(same(got[j], upd_ids[i][j]), "%s: %s fd %d not the same file", when, name, j);
		CHECK(pread(got[1], &v, sizeof(v), 0) == sizeof(v) && v == (uint32_t)i, "%s: %s data", when, name);
		close_all(got, n);
	}
}

/* STATUS until the liveupdate-number is @want; a reply must never be wrong. */
static void wait_lu(int *c, uint64_t want)
{
	struct luo_agent_status st;

	for (int i = 0; i < 1000; i++) {
		int r = status(*c, &st);

		if (r == -ECONNRESET) {
			close(*c);
			*c = cl_connect();
			continue;
		}
		CHECK(r == 0, "status: %s", strerror(-r));
		CHECK(st.pid == luod_pid, "pid changed: %d", st.pid);
		CHECK(st.lu_number <= want, "lu_number %llu > %llu", (unsigned long long)st.lu_number,
		      (unsigned long long)want);
		if (st.lu_number == want) {
			CHECK(st.sessions >= UPDATE_SESSIONS && st.fds >= UPDATE_SESSIONS * UPDATE_FDS,
			      "after update: %llu sessions, %llu fds", (unsigned long long)st.sessions,
			      (unsigned long long)st.fds);
			return;
		}
		msleep(10);
	}
	CHECK(0, "liveupdate-number never reached %llu", (unsigned long long)want);
}

static void test_update(void)
{
	static struct luo_agent_session_info info[UPDATE_SESSIONS + 1];
	char reason[LUO_AGENT_REASON_SIZE];
	struct luo_agent_status st;
	struct luo_agent_reply rep;
	uint32_t count, seq;
	int c, early, poller, staller, r;

	start_luod(NULL, NULL, NULL, NULL);
	c = cl_connect();
	for (int i = 0; i < UPDATE_SESSIONS; i++) {
		int fds[UPDATE_FDS], sp[2]; /* a pipe: luod refuses AF_UNIX sockets */
		char name[16];
		uint32_t v = (uint32_t)i;

		snprintf(name, sizeof(name), "s%04d", i);
		CHECK(pipe2(sp, O_CLOEXEC) == 0, "pipe");
		fds[0] = make_blob(name);
		fds[1] = make_memfd(&v, sizeof(v));
		fds[2] = sp[0];
		for (int j = 0; j < UPDATE_FDS; j++)
			upd_ids[i][j] = ident_of(fds[j]);
		r = deposit(c, name, i % 2 ? LUO_AGENT_DEPOSIT_KEEP_ON_CRASH : 0, fds, UPDATE_FDS, reason);
		CHECK(r == 0, "deposit %s: %s (%s)", name, strerror(-r), reason);
		close_all(fds, UPDATE_FDS);
		close(sp[1]);
	}
	early = cl_connect();
	poller = cl_connect();
	CHECK(status(poller, &st) == 0 && st.lu_number == 0 && st.sessions == UPDATE_SESSIONS, "before");

	/* SIGHUP; a request sent right away is answered correctly, by one image or the other. */
	CHECK(kill(luod_pid, SIGHUP) == 0, "SIGHUP");
	r = status(early, &st);
	CHECK(r == 0 || r == -ECONNRESET, "status during the switch: %s", strerror(-r));
	if (r == 0)
		CHECK(st.pid == luod_pid && st.sessions == UPDATE_SESSIONS && st.lu_number <= 1, "during the switch");
	else {
		close(early);
		early = cl_connect();
	}
	wait_lu(&poller, 1);

	/*
	 * A client with a session of its own stalls mid-deposit: the update
	 * waits for it LUOD_UPDATE_DRAIN_MS, then closes it; its half deposit
	 * is gone, its session kept (detached: it did not crash).
	 */
	staller = cl_connect();
	{
		int b = make_blob("staller"), fds2[2] = { make_blob("own"), make_memfd("o", 1) };
		struct luo_agent_request q = {
			.n_fds = 3,
			.uid = LUO_AGENT_UID_SELF,
			.reply_size = sizeof(struct luo_agent_reply),
		};

		r = deposit(staller, "staller-own", 0, fds2, 2, reason);
		CHECK(r == 0, "staller's own deposit: %s", reason);
		close_all(fds2, 2);
		luo_wire_header_init(&q.hdr, sizeof(q), LUO_AGENT_OP_DEPOSIT, ++seq_counter);
		strcpy(q.name, "stalled");
		CHECK(luo_wire_send(staller, &q, sizeof(q), &b, 1) == 0, "stalled deposit");
		close(b);
	}

	/* OP_UPDATE: the reply comes from the new image. */
	seq = req_send(c, LUO_AGENT_OP_UPDATE, 0, 0, 0, NULL, NULL, 0);
	r = reply_recv(c, seq, &rep);
	CHECK(r == 0 && rep.lu_number == 2, "OP_UPDATE: %s, lu %llu (%s)", strerror(-r),
	      (unsigned long long)rep.lu_number, rep.reason);
	wait_lu(&poller, 2);
	{
		unsigned char buf[LUO_AGENT_MSG_MAX];
		size_t nf;
		ssize_t n = luo_wire_recv(staller, buf, sizeof(buf), NULL, 0, &nf);
		int got[4];
		size_t k;

		CHECK(n == 0 || n == -ECONNRESET, "the stalled client was not closed (%zd)", n);
		close(staller);
		CHECK(retrieve(poller, LUO_AGENT_UID_SELF, "stalled", got, 4, &k) == -ENOENT, "half deposit held");
		r = list(poller, LUO_AGENT_UID_SELF, info, UPDATE_SESSIONS + 1, &count);
		CHECK(r == 0 && count == UPDATE_SESSIONS + 1 && strcmp(info[UPDATE_SESSIONS].name, "staller-own") == 0 &&
			      info[UPDATE_SESSIONS].owner_pid == 0,
		      "the closed staller's session is kept, detached");
	}

	/* The connection made before both updates: a correct answer. */
	r = list(early, LUO_AGENT_UID_SELF, info, UPDATE_SESSIONS + 1, &count);
	CHECK(r == 0 && count == UPDATE_SESSIONS + 1, "early connection's LIST: %s, %u", strerror(-r), count);
	for (uint32_t i = 0; i < UPDATE_SESSIONS; i++)
		CHECK(info[i].generation == 1 && info[i].n_fds == UPDATE_FDS && info[i].owner_pid == getpid() &&
			      info[i].flags == (i % 2 ? LUO_AGENT_DEPOSIT_KEEP_ON_CRASH : 0u),
		      "session %u info after update", i);
	check_all_sessions(early, "after two updates");
	/* Sessions are still attached to the depositing connection: closing it drops the 500 without KEEP. */
	close(c);
	for (int i = 0; i < 200; i++) {
		CHECK(status(poller, &st) == 0, "status");
		if (st.sessions == UPDATE_SESSIONS / 2 + 1)
			break;
		msleep(10);
	}
	CHECK(st.sessions == UPDATE_SESSIONS / 2 + 1, "crash semantics after the update: %llu",
	      (unsigned long long)st.sessions);
	close(early);
	close(poller);
	stop_luod();
}

/*
 * A self-update that cannot happen (luod's binary is gone): the old image
 * answers the refusal and keeps serving, sessions and connections intact.
 */
static void test_update_refused(void)
{
	static char copy[128], libdir[4096];
	char reason[LUO_AGENT_REASON_SIZE], buf[65536];
	struct luo_agent_reply rep;
	struct luo_agent_status st;
	int in, out, c, r, fds[2], got[2];
	const char *slash;
	uint32_t seq;
	ssize_t n;
	size_t k;

	/* A copy of luod that can be deleted; its libluo found by LD_LIBRARY_PATH. */
	snprintf(copy, sizeof(copy), "%s/luod-copy", dir);
	in = open(luod_bin, O_RDONLY | O_CLOEXEC);
	out = open(copy, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	CHECK(in >= 0 && out >= 0, "copy luod");
	while ((n = read(in, buf, sizeof(buf))) > 0)
		CHECK(write(out, buf, (size_t)n) == n, "copy");
	close(in);
	close(out);
	slash = strrchr(luod_bin, '/');
	snprintf(libdir, sizeof(libdir), "%.*s/../lib", slash ? (int)(slash - luod_bin) : 1, slash ? luod_bin : ".");
	setenv("LD_LIBRARY_PATH", libdir, 1);
	luod_bin = copy;
	start_luod(NULL, NULL, NULL, NULL);
	c = cl_connect();
	fds[0] = make_blob("r");
	fds[1] = make_memfd("data", 4);
	struct ident id1 = ident_of(fds[1]);
	r = deposit(c, "kept", 0, fds, 2, reason);
	CHECK(r == 0, "deposit: %s", reason);
	close_all(fds, 2);
	CHECK(unlink(copy) == 0, "unlink the binary");

	seq = req_send(c, LUO_AGENT_OP_UPDATE, 0, 0, 0, NULL, NULL, 0);
	r = reply_recv(c, seq, &rep);
	CHECK(r < 0 && rep.lu_number == 0, "refused update: %s lu %llu", strerror(-r), (unsigned long long)rep.lu_number);
	printf("refused as expected: %s (%s)\n", strerror(-r), rep.reason);
	/* SIGHUP too: refused, logged, still serving. */
	CHECK(kill(luod_pid, SIGHUP) == 0, "SIGHUP");
	msleep(200);
	CHECK(status(c, &st) == 0 && st.lu_number == 0 && st.pid == luod_pid && st.sessions == 1, "still serving");
	r = retrieve(c, LUO_AGENT_UID_SELF, "kept", got, 2, &k);
	CHECK(r == 0 && k == 2 && same(got[1], id1), "session after a refused update");
	close_all(got, k);
	close(c);
	stop_luod();
}

static void copy_binary(const char *from, const char *to)
{
	char buf[65536];
	int in, out;
	ssize_t n;

	in = open(from, O_RDONLY | O_CLOEXEC);
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	CHECK(in >= 0 && out >= 0, "copy %s to %s", from, to);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		CHECK(write(out, buf, (size_t)n) == n, "copy");
	close(in);
	close(out);
}

/*
 * A self-update whose new image refuses the handover (luod-refuse: its
 * table load fails): libluo rolls back to the running binary, which must
 * answer the OP_UPDATE requester -EUCLEAN, not success, and keep serving
 * with the same state and liveupdate-number.
 */
static void test_update_rollback(const char *refuse_bin)
{
	static char copy[128], orig[128], libdir[4096];
	char reason[LUO_AGENT_REASON_SIZE];
	struct luo_agent_reply rep;
	struct luo_agent_status st;
	int c, r, fds[2], got[2];
	const char *slash;
	uint32_t seq;
	size_t k;

	/* luod runs from "orig" (renamed after its start); its recorded path, "copy", becomes luod-refuse. */
	snprintf(copy, sizeof(copy), "%s/luod-copy", dir);
	snprintf(orig, sizeof(orig), "%s/luod-orig", dir);
	copy_binary(luod_bin, copy);
	slash = strrchr(luod_bin, '/');
	snprintf(libdir, sizeof(libdir), "%.*s/../lib", slash ? (int)(slash - luod_bin) : 1, slash ? luod_bin : ".");
	setenv("LD_LIBRARY_PATH", libdir, 1);
	luod_bin = copy;
	start_luod(NULL, NULL, NULL, NULL);
	c = cl_connect();
	fds[0] = make_blob("r");
	fds[1] = make_memfd("data", 4);
	struct ident id1 = ident_of(fds[1]);
	r = deposit(c, "kept", 0, fds, 2, reason);
	CHECK(r == 0, "deposit: %s", reason);
	close_all(fds, 2);
	CHECK(rename(copy, orig) == 0, "rename the running binary");
	copy_binary(refuse_bin, copy);

	seq = req_send(c, LUO_AGENT_OP_UPDATE, 0, 0, 0, NULL, NULL, 0);
	r = reply_recv(c, seq, &rep);
	CHECK(r == -EUCLEAN && rep.lu_number == 0 && rep.hdr.op == LUO_AGENT_OP_UPDATE,
	      "rolled-back update answered %d (%s), lu %llu, op %u", r, strerror(-r),
	      (unsigned long long)rep.lu_number, rep.hdr.op);
	printf("rolled back as expected: %s (%s)\n", strerror(-r), rep.reason);
	CHECK(status(c, &st) == 0 && st.lu_number == 0 && st.pid == luod_pid && st.sessions == 1,
	      "still serving after the rollback");
	r = retrieve(c, LUO_AGENT_UID_SELF, "kept", got, 2, &k);
	CHECK(r == 0 && k == 2 && same(got[1], id1), "session after a rolled-back update");
	close_all(got, k);
	close(c);
	stop_luod();
	unlink(orig);
}

/* ------------------------------------------------------------------------ */
/* quota: what another uid may not make luod hold uncounted                  */

/*
 * As uid 65534, against --max-bytes 1 MiB: a sealed 16 MiB memfd is
 * refused -EDQUOT; an O_PATH fd to an unsealed memfd (F_GET_SEALS does
 * not answer on it; the memfd could be grown once deposited) is refused
 * -EBADFD, so is one to a sealed memfd, and a memfd_secret file (if the
 * kernel has them); an O_PATH fd to a directory and a small sealed memfd
 * are accepted.
 */
static int opath_part(void)
{
	char reason[LUO_AGENT_REASON_SIZE], path[64];
	int c = cl_connect_once(), fds[2], m, r;
	const uint32_t keep = LUO_AGENT_DEPOSIT_KEEP_ON_CRASH;

	UCHECK(c >= 0, 40);
	fds[0] = make_blob("opath");
	fds[1] = make_sized_memfd(NULL, 0, 16u << 20);
	r = deposit(c, "big", keep, fds, 2, reason);
	close(fds[1]);
	if (r != -EDQUOT)
		fprintf(stderr, "16 MiB sealed: %s (%s)\n", strerror(-r), reason);
	UCHECK(r == -EDQUOT && strstr(reason, "max-bytes"), 41);

	m = memfd_create("grow", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	UCHECK(m >= 0 && write(m, "x", 1) == 1, 42);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", m);
	fds[1] = open(path, O_PATH | O_CLOEXEC);
	UCHECK(fds[1] >= 0, 43);
	r = deposit(c, "opath", keep, fds, 2, reason);
	close(fds[1]);
	if (r != -EBADFD)
		fprintf(stderr, "O_PATH to an unsealed memfd: %s (%s)\n", strerror(-r), reason);
	UCHECK(r == -EBADFD && strstr(reason, "O_PATH"), 44);
	/* Sealed, it is still an O_PATH fd: nothing luod could check. */
	UCHECK(fcntl(m, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0, 45);
	fds[1] = open(path, O_PATH | O_CLOEXEC);
	UCHECK(fds[1] >= 0, 46);
	r = deposit(c, "opath", keep, fds, 2, reason);
	close(fds[1]);
	UCHECK(r == -EBADFD, 47);
	close(m);

#ifdef SYS_memfd_secret
	/* Unsealable memory (absent when the kernel has secretmem off: ENOSYS). */
	fds[1] = (int)syscall(SYS_memfd_secret, O_CLOEXEC);
	UCHECK(fds[1] >= 0 || errno == ENOSYS, 53);
	if (fds[1] >= 0) {
		r = deposit(c, "secret", keep, fds, 2, reason);
		close(fds[1]);
		if (r != -EBADFD)
			fprintf(stderr, "memfd_secret: %s (%s)\n", strerror(-r), reason);
		UCHECK(r == -EBADFD && strstr(reason, "memfd_secret"), 52);
	}
#endif
	fds[1] = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	UCHECK(fds[1] >= 0, 48);
	r = deposit(c, "dir", keep, fds, 2, reason);
	close(fds[1]);
	if (r != 0)
		fprintf(stderr, "O_PATH to /: %s (%s)\n", strerror(-r), reason);
	UCHECK(r == 0, 49);
	fds[1] = make_sized_memfd("sealed", 6, 4096);
	r = deposit(c, "sealed", keep, fds, 2, reason);
	close_all(fds, 2);
	if (r != 0)
		fprintf(stderr, "4 KiB sealed: %s (%s)\n", strerror(-r), reason);
	UCHECK(r == 0, 50);
	UCHECK(simple(c, LUO_AGENT_OP_DETACH, 0, NULL, NULL) == 0, 51);
	close(c);
	return 0;
}

/*
 * The fd budget, made small: RLIMIT_NOFILE 1088 + 2 * 80 gives luod 80
 * held fds (LUOD_FDS_RESERVED 64, LUOD_CONNECTIONS_MAX 1024), 10 of them
 * root's alone (1/8); the default --max-fds 16384 is clamped to half of
 * the other 70: 35. Sessions of 5 fds.
 */
#define BUDGET_NOFILE (1088 + 2 * 80)
#define BUDGET_SHARE 35
#define BUDGET_ROOT_RESERVE 10
#define BUDGET_SESSION_FDS 5

static int budget_fill(char tag, int want_last)
{
	char reason[LUO_AGENT_REASON_SIZE], name[16];
	int c = cl_connect_once(), fds[BUDGET_SESSION_FDS], r = 0;
	int i;

	UCHECK(c >= 0, 60);
	for (i = 0; i < BUDGET_SHARE / BUDGET_SESSION_FDS + 1; i++) {
		snprintf(name, sizeof(name), "%c%d", tag, i);
		fds[0] = make_blob("budget");
		for (int k = 1; k < BUDGET_SESSION_FDS; k++)
			fds[k] = make_memfd("f", 1);
		r = deposit(c, name, LUO_AGENT_DEPOSIT_KEEP_ON_CRASH, fds, BUDGET_SESSION_FDS, reason);
		close_all(fds, BUDGET_SESSION_FDS);
		if (r < 0)
			break;
	}
	if (want_last == -EDQUOT && !(r == -EDQUOT && i == BUDGET_SHARE / BUDGET_SESSION_FDS))
		fprintf(stderr, "uid %u: %d sessions, then %s (%s)\n", (unsigned)getuid(), i, strerror(-r), reason);
	UCHECK(want_last != -EDQUOT || (r == -EDQUOT && i == BUDGET_SHARE / BUDGET_SESSION_FDS &&
					 strstr(reason, "max-fds")), 61);
	if (want_last == -ENFILE && !(r == -ENFILE && i == 0))
		fprintf(stderr, "uid %u: %d sessions, then %s (%s)\n", (unsigned)getuid(), i, strerror(-r), reason);
	UCHECK(want_last != -ENFILE || (r == -ENFILE && i == 0), 62);
	UCHECK(simple(c, LUO_AGENT_OP_DETACH, 0, NULL, NULL) == 0, 63);
	close(c);
	return 0;
}

static int budget_nobody(void)
{
	return budget_fill('n', -EDQUOT);
}

static int budget_other(void)
{
	return budget_fill('o', -EDQUOT);
}

static int budget_third(void)
{
	return budget_fill('t', -ENFILE);
}

static void test_quota(void)
{
	char reason[LUO_AGENT_REASON_SIZE], name[16];
	struct luo_agent_status st;
	int c, r, fds[BUDGET_SESSION_FDS], i;

	if (geteuid() != 0) {
		printf("SKIP: needs root (to run clients as other uids)\n");
		exit(77);
	}
	CHECK(chmod(dir, 0755) == 0, "chmod");
	start_luod("--socket-mode", "0666", "--max-bytes", "1048576");
	r = as_user(65534, opath_part);
	CHECK(r == 0, "uid 65534 O_PATH part failed (%d)", r);
	c = cl_connect();
	CHECK(status(c, &st) == 0 && st.fds == 4 && st.bytes <= 4096 + 64, "held: %llu fds, %llu bytes",
	      (unsigned long long)st.fds, (unsigned long long)st.bytes);
	close(c);
	stop_luod();
	CHECK(mkdir(dir, 0755) == 0, "mkdir %s", dir);

	luod_nofile = BUDGET_NOFILE;
	start_luod("--socket-mode", "0666", NULL, NULL);
	luod_nofile = 0;
	c = cl_connect();
	CHECK(status(c, &st) == 0 && st.max_fds == BUDGET_SHARE, "--max-fds clamped to %llu, want %d",
	      (unsigned long long)st.max_fds, BUDGET_SHARE);
	/* One uid fills its share (-EDQUOT past it), another uid still deposits its own. */
	r = as_user(65534, budget_nobody);
	CHECK(r == 0, "uid 65534 fills its share (%d)", r);
	r = as_user(65533, budget_other);
	CHECK(r == 0, "uid 65533 fills its share (%d)", r);
	/* The uids other than root hold all but root's reserve: a third is refused -ENFILE. */
	r = as_user(65532, budget_third);
	CHECK(r == 0, "uid 65532 refused -ENFILE (%d)", r);
	/* Root deposits into its reserve, and no further. */
	for (i = 0; i < BUDGET_ROOT_RESERVE / BUDGET_SESSION_FDS + 1; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		fds[0] = make_blob("root");
		for (int k = 1; k < BUDGET_SESSION_FDS; k++)
			fds[k] = make_memfd("f", 1);
		r = deposit(c, name, 0, fds, BUDGET_SESSION_FDS, reason);
		close_all(fds, BUDGET_SESSION_FDS);
		if (r < 0)
			break;
	}
	CHECK(i == BUDGET_ROOT_RESERVE / BUDGET_SESSION_FDS && r == -ENFILE, "root: %d sessions, then %s (%s)", i,
	      strerror(-r), reason);
	CHECK(status(c, &st) == 0 && st.fds == 2 * BUDGET_SHARE + BUDGET_ROOT_RESERVE, "held %llu fds",
	      (unsigned long long)st.fds);
	close(c);
	stop_luod();
}

/* ------------------------------------------------------------------------ */
/* log: a hostile name is one escaped log line                               */

static void test_log(void)
{
	static const char evil[] = "ev\nluod[1]: started: FAKE LINE \x1b[31mred";
	static const char escaped[] = "ev\\x0aluod[1]: started: FAKE LINE \\x1b[31mred";
	char reason[LUO_AGENT_REASON_SIZE], logp[96], buf[8192];
	int c, r, fd, lines = 0, hits = 0;
	ssize_t n;

	snprintf(logp, sizeof(logp), "%s/luod.log", dir);
	luod_stderr_path = logp;
	start_luod("--max-sessions", "1", NULL, NULL);
	luod_stderr_path = NULL;
	c = cl_connect();
	r = deposit_n(c, "first", 2, 0, reason);
	CHECK(r == 0, "first: %s", reason);
	r = deposit_n(c, evil, 2, 0, reason);
	CHECK(r == -EDQUOT, "the evil name past max-sessions: %s (%s)", strerror(-r), reason);
	close(c);
	stop_luod();
	fd = open(logp, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0, "open %s", logp);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	unlink(logp);
	rmdir(dir);
	CHECK(n > 0, "read the log");
	buf[n] = '\0';
	for (char *line = buf, *end; *line; line = end + 1) {
		end = strchr(line, '\n');
		CHECK(end, "the log ends with a newline");
		*end = '\0';
		lines++;
		CHECK(strncmp(line, "luod[", 5) == 0, "a line not luod's: %s", line);
		CHECK(strncmp(line, "luod[1]", 7) != 0, "a forged line: %s", line);
		for (const char *p = line; *p; p++)
			CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p != 0x7f, "a control byte in: %s", line);
		if (strstr(line, escaped))
			hits++;
	}
	CHECK(hits == 1, "%d log lines with the escaped name, want 1 (of %d)", hits, lines);
}

int main(int argc, char **argv)
{
	int before, after;

	if (argc != 3 && !(argc == 4 && (strcmp(argv[2], "update-rollback") == 0 || strcmp(argv[2], "fuse") == 0))) {
		fprintf(stderr, "usage: test-luod LUOD basic|malformed|limits|users|trust|inflight|quota|log|crash|update|update-refused\n"
				"       test-luod LUOD update-rollback LUOD_REFUSE\n"
				"       test-luod LUOD fuse HANGFS\n");
		return 2;
	}
	luod_bin = argv[1];
	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "/tmp/test-luod.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(sock_path, sizeof(sock_path), "%s/agent.sock", dir);
	before = count_fds();
	if (strcmp(argv[2], "basic") == 0)
		test_basic();
	else if (strcmp(argv[2], "malformed") == 0)
		test_malformed();
	else if (strcmp(argv[2], "limits") == 0)
		test_limits();
	else if (strcmp(argv[2], "users") == 0)
		test_users();
	else if (strcmp(argv[2], "crash") == 0)
		test_crash();
	else if (strcmp(argv[2], "inflight") == 0)
		test_inflight();
	else if (strcmp(argv[2], "quota") == 0)
		test_quota();
	else if (strcmp(argv[2], "log") == 0)
		test_log();
	else if (strcmp(argv[2], "trust") == 0)
		test_trust();
	else if (strcmp(argv[2], "update") == 0)
		test_update();
	else if (strcmp(argv[2], "update-refused") == 0)
		test_update_refused();
	else if (strcmp(argv[2], "update-rollback") == 0)
		test_update_rollback(argv[3]);
	else if (strcmp(argv[2], "fuse") == 0) {
		if (test_fuse(argv[3]) == 77) {
			rmdir(dir);
			return 77;
		}
	}
	else {
		fprintf(stderr, "test-luod: unknown mode %s\n", argv[2]);
		rmdir(dir);
		return 2;
	}
	CHECK(!luod_bad_exit, "luod did not exit 0 on SIGTERM");
	after = count_fds();
	CHECK(after == before, "fds leaked: %d before, %d after", before, after);
	printf("ok: %s\n", argv[2]);
	return 0;
}
