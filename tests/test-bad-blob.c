/* SPDX-License-Identifier: MIT */
/*
 * DOC: test-bad-blob, a corpus of hostile handovers
 *
 * Builds handover blobs in-process with libfdt's sequential-write API, each
 * from a set of knobs that differs from a good blob in one thing, puts them
 * in memfds, names them in LUO_HANDOVER_FD and calls luo_open(). Covered:
 *
 *   - good blobs (pipe, memfd, socket, limits reached exactly) are adopted;
 *   - the handover fd itself: empty, too large, unsealed or partly sealed,
 *     not a memfd, closed, and malformed LUO_HANDOVER_FD values;
 *   - the container: truncated, bad magic/version/sizes, garbage;
 *   - the format version: 2 is written and read, 1 (no producer-argv, no
 *     components) is still read, 0, 3 and UINT32_MAX are -EPROTO;
 *   - every root, session and file property: missing, wrong length,
 *     unterminated, inner NUL, out of range, duplicates, count limits;
 *   - producer-argv (format 2): missing, empty, unterminated, string and
 *     byte limits, reached exactly and passed;
 *   - the components node (format 2): every property of a component
 *     missing, malformed or out of range, 'dropped' with a value or with
 *     version/data, duplicate names, LUO_ABI_COMPONENTS_MAX reached and
 *     passed; components this program has not registered are ignored;
 *   - adoption: unknown handler, handler version, data size, fd not open,
 *     fd that is another object; fds that passed are closed, fds that
 *     failed are left alone;
 *   - rollback: a refused format-2 blob names its producer, whose path here
 *     never exists, so nothing is ever exec'd: the reason says why no
 *     rollback was done (nothing with LUO_OPEN_NO_ROLLBACK, or when this
 *     image already is a rollback); LUO_HANDOVER_ROLLBACK, good and
 *     malformed, is reported by luo_rollback() and removed;
 *   - every truncation, every single-bit flip and random byte mutations of
 *     a good blob (with a component and a dropped one).
 *
 * Each refusal must carry the exact errno of the luo_open() DOC, give the
 * same error and a reason with LUO_OPEN_FRESH_ON_ERROR, close the handover
 * fd, remove LUO_HANDOVER_FD (and LUO_HANDOVER_ROLLBACK), leave the next
 * luo_open() a fresh start and leak no fd. One "ok - <case>: <reason>" line
 * per case documents the corpus; a mismatch prints "not ok" and the run goes
 * on.
 *
 * The producer-path of every blob, PRODUCER_PATH, must not exist: main()
 * stops if it does, since a refused blob would then be a rollback to it.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libfdt.h>

#include "luo/abi.h"
#include "luo/luo.h"
#include "test-util.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

#define HANDOVER_SEALS (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW)
/* A recorded fd number that is in range but never open. */
#define NOT_OPEN_FD 1000003u
/* Bulk files get fd numbers from here on (not open either). */
#define BULK_FD 100000u
#define MAX_SESSIONS 3
#define MAX_FILES 3
#define MAX_OVR 3
#define MAX_COMPS 3
#define MAX_OBJS (MAX_SESSIONS * MAX_FILES)
#define SLACK 4096
#define PAYLOAD "payload"
/* The producer of every blob: never exists, so no rollback execs anything. */
#define PRODUCER_PATH "/usr/libexec/luo-test-old-image"
/* The good blob's producer-argv (sizeof includes the last NUL). */
static const char good_argv[] = "luo-test-old-image\0--flag";

/* Where an override applies: the root, a session, a file or a component node. */
#define AT_ROOT -1, -1
#define AT_SESSION(i) (i), -1
#define AT_FILE(i, j) (i), (j)
#define AT_COMPONENT(i) -2, (i)

/* ------------------------------------------------------------------------ */
/* Reporting                                                                 */

static const char *cur_case;
static bool cur_failed;
static int cur_prints;
static int n_cases, n_failed;
static int fd_baseline;
static bool std_open[3];

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	va_list ap;

	if (!cur_failed)
		n_failed++;
	cur_failed = true;
	if (++cur_prints > 20)
		return;
	printf("not ok - %s: ", cur_case);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void begin_case(const char *name)
{
	cur_case = name;
	cur_failed = false;
	cur_prints = 0;
	n_cases++;
}

__attribute__((format(printf, 1, 2))) static void end_case(const char *fmt, ...)
{
	va_list ap;

	if (!cur_failed) {
		printf("ok - %s: ", cur_case);
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		putchar('\n');
		fflush(stdout);
	}
	cur_case = NULL;
}

static void on_exit_report(void)
{
	if (cur_case)
		fprintf(stderr, "test-bad-blob: stopped in case '%s'\n", cur_case);
}

static const char *errname(int r)
{
	switch (r) {
	case 0:
		return "0";
	case -EBADMSG:
		return "-EBADMSG";
	case -EPROTO:
		return "-EPROTO";
	case -ENOENT:
		return "-ENOENT";
	case -EBADF:
		return "-EBADF";
	case -EBADFD:
		return "-EBADFD";
	case -ENOMEM:
		return "-ENOMEM";
	case -EINVAL:
		return "-EINVAL";
	case -EBUSY:
		return "-EBUSY";
	default:
		return "another code";
	}
}

static bool fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/*
 * What holds after every case: the variables are gone, 0..2 are as they
 * were, the next luo_open() is a fresh start, no fd leaked.
 */
static void after_case(void)
{
	struct luo *luo = NULL;
	const char *why = NULL;
	int r, now;

	if (getenv(LUO_HANDOVER_FD_ENV)) {
		fail("%s still set after luo_open", LUO_HANDOVER_FD_ENV);
		unsetenv(LUO_HANDOVER_FD_ENV);
	}
	if (getenv(LUO_ABI_EXEC_NS_ENV)) {
		fail("%s still set after luo_open", LUO_ABI_EXEC_NS_ENV);
		unsetenv(LUO_ABI_EXEC_NS_ENV);
	}
	if (getenv(LUO_ABI_ROLLBACK_ENV)) {
		fail("%s still set after luo_open", LUO_ABI_ROLLBACK_ENV);
		unsetenv(LUO_ABI_ROLLBACK_ENV);
	}
	for (int i = 0; i < 3; i++)
		if (fd_is_open(i) != std_open[i])
			fail("fd %d changed state", i);
	r = luo_open(0, &luo);
	if (r < 0) {
		fail("the next luo_open() returned %d (%s)", r, errname(r));
	} else {
		if (luo_is_incoming(luo) || luo_liveupdate_number(luo) != 0)
			fail("the next luo_open() is not a fresh start");
		if (luo_incoming_error(luo, &why) != 0 || !why || why[0])
			fail("the next luo_open() remembers an error");
		why = NULL;
		if (luo_rollback(luo, &why) != 0 || !why || why[0])
			fail("the next luo_open() says it is a rollback");
		luo_close(luo);
	}
	now = count_open_fds();
	if (now != fd_baseline) {
		fail("%d fds open, expected %d", now, fd_baseline);
		fd_baseline = now; /* judge the next cases on their own */
	}
}

/* ------------------------------------------------------------------------ */
/* Knobs: a good blob, and the one thing a case changes                      */

enum src {
	SRC_PIPE = 0,      /* a dup of a fresh pipe's read end, "fd" handler */
	SRC_MEMFD,         /* a dup of a sealable memfd, "memfd" handler */
	SRC_SOCKET,        /* a dup of one end of a socketpair, "fd" handler */
	SRC_NUMBER,        /* the number in .number; nothing is opened */
	SRC_OTHER_PIPE,    /* pipe A recorded, a dup of pipe B's read end named */
	SRC_HANDOVER,      /* the handover memfd's own number, "fd" handler */
	SRC_SAME_AS_FIRST, /* the fd number and record of the blob's first file */
};

enum fate {
	KEPT = 0, /* after a refusal, still open: libluo left it alone */
	CLOSED,   /* after a refusal, closed: it passed its check */
};

union fdata {
	struct luo_abi_fd_v1 fd;
	struct luo_abi_memfd_v1 memfd;
	uint8_t bytes[64];
};

struct kfile {
	enum src src;
	enum fate fate;
	uint32_t number; /* SRC_NUMBER */
	uint64_t token;
	void (*patch)(union fdata *data); /* alter the record */
};

struct ksession {
	const char *name; /* NULL: "s", "s1", "s2" */
	size_t n_files;
	struct kfile files[MAX_FILES];
	size_t n_bulk; /* then files with fd numbers BULK_FD + k, not open */
};

/* A component node: "name", then "version" and "data", or "dropped". */
struct kcomp {
	const char *name; /* NULL: "test.c<i>" */
	bool dropped;
	uint32_t version; /* 0: 1 */
	const void *data; /* NULL: PAYLOAD (with its NUL) */
	int data_len;
};

struct ovr {
	int sess; /* -1: the root; -2: a component node */
	int file; /* -1: the session node; the component's index */
	const char *prop;
	bool omit;
	const void *val; /* NULL: .small */
	int len;
	uint8_t small[8];
};

enum hkind {
	H_MEMFD = 0,    /* a memfd that allows sealing */
	H_MEMFD_NOSEAL, /* a memfd without MFD_ALLOW_SEALING */
	H_TMPFILE,      /* a regular file on disk */
	H_PIPE,
	H_DIR,
	H_DEVNULL,
};

struct knobs {
	bool no_sessions_node;
	size_t n_sessions;
	struct ksession sessions[MAX_SESSIONS];
	size_t n_bulk_sessions;    /* then sessions "bulk-<k>" */
	size_t bulk_session_files; /* files in each */
	bool components_node;      /* written even without children */
	size_t n_comps;
	struct kcomp comps[MAX_COMPS];
	size_t n_bulk_comps;       /* then components "bulk.<k>", version 1 */
	size_t n_ovr;
	struct ovr ovr[MAX_OVR];
	void (*mangle)(uint8_t *buf, size_t *len); /* raw bytes, after fdt_finish */
	bool keep_set;
	long keep; /* keep the first bytes; negative: drop from the end */

	enum hkind hkind;
	bool custom_seals;
	unsigned int seals;
	bool no_content;      /* write nothing */
	uint64_t zeros;       /* instead of the blob, a hole of this size */
	const char *env;      /* LUO_HANDOVER_FD as given */
	const char *env_prefix; /* written before the handover's number */
	bool close_handover;  /* closed before luo_open(): names nothing */
	const char *exec_ns;  /* LUO_HANDOVER_EXEC_NS */

	const char *rollback_env; /* LUO_HANDOVER_ROLLBACK before luo_open() */
	int rollback_err;         /* what luo_rollback() must return */
	const char *rollback_why; /* ... with a reason that contains this */
	bool rollback_why_exact;  /* ... or is exactly this */
	bool exec_attempt;        /* refused: the reason may say execve() failed */
	unsigned int open_flags;  /* refused: also given to luo_open() */
	const char *reason_says;  /* refused: the reason contains this */
	const char *reason_not;   /* refused: ... and not this */

	/* Names libfdt lets through twice; its lookups see only the first. */
	const char *dup_root_prop;     /* this root property again, value "bad" */
	const char *late_root_prop;    /* a root property after the child nodes */
	const char *dup_root_node;     /* this node again at the root, with a child */
};

static struct knobs good(void)
{
	return (struct knobs){
		.n_sessions = 1,
		.sessions = { { .n_files = 1, .files = { { .src = SRC_PIPE, .token = 1 } } } },
	};
}

/* The good blob, but its file is a number that is not open. */
static struct knobs numbered(void)
{
	struct knobs k = good();

	k.sessions[0].files[0] = (struct kfile){ .src = SRC_NUMBER, .number = NOT_OPEN_FD, .token = 1 };
	return k;
}

static struct ovr *ovr_add(struct knobs *k, int sess, int file, const char *prop)
{
	struct ovr *o;

	CHECK(k->n_ovr < MAX_OVR);
	o = &k->ovr[k->n_ovr++];
	*o = (struct ovr){ .sess = sess, .file = sess == -1 ? -1 : file, .prop = prop };
	return o;
}

static void ovr_bytes(struct knobs *k, int sess, int file, const char *prop, const void *val, int len)
{
	struct ovr *o = ovr_add(k, sess, file, prop);

	o->val = val;
	o->len = len;
}

static void ovr_str(struct knobs *k, int sess, int file, const char *prop, const char *s)
{
	ovr_bytes(k, sess, file, prop, s, (int)strlen(s) + 1);
}

static void ovr_u32(struct knobs *k, int sess, int file, const char *prop, uint32_t v)
{
	struct ovr *o = ovr_add(k, sess, file, prop);
	fdt32_t be = cpu_to_fdt32(v);

	memcpy(o->small, &be, sizeof(be));
	o->len = sizeof(be);
}

static void ovr_u64(struct knobs *k, int sess, int file, const char *prop, uint64_t v)
{
	struct ovr *o = ovr_add(k, sess, file, prop);
	fdt64_t be = cpu_to_fdt64(v);

	memcpy(o->small, &be, sizeof(be));
	o->len = sizeof(be);
}

static void ovr_omit(struct knobs *k, int sess, int file, const char *prop)
{
	ovr_add(k, sess, file, prop)->omit = true;
}

/* The good blob, in format 1: no producer-argv. */
static void format1(struct knobs *k)
{
	ovr_u32(k, AT_ROOT, LUO_ABI_PROP_FORMAT, 1);
	ovr_omit(k, AT_ROOT, LUO_ABI_PROP_PRODUCER_ARGV);
}

static const char *session_name(const struct knobs *k, size_t i, char *buf, size_t len)
{
	if (k->sessions[i].name)
		return k->sessions[i].name;
	if (i == 0)
		snprintf(buf, len, "s");
	else
		snprintf(buf, len, "s%zu", i);
	return buf;
}

/* ------------------------------------------------------------------------ */
/* The objects a blob names                                                  */

struct obj {
	enum src src;
	enum fate fate;
	int named;        /* the fd number written in the blob */
	bool owned;       /* named is a dup this test made */
	int mine[4];      /* the test's own fds behind it */
	struct stat st;   /* of the named object */
	size_t sess;
	uint64_t token;
	const char *handler;
	uint32_t version;
	union fdata data;
	int data_len;
	int rfd;          /* accepted: what luo_session_retrieve_fd gave */
};

struct ctx {
	int hfd;
	int hmine; /* the write end when the handover fd is a pipe */
	size_t n_objs;
	struct obj objs[MAX_OBJS];
};

static int dup_high(int fd)
{
	int r = fcntl(fd, F_DUPFD, 3); /* no close-on-exec: libluo sets it */

	CHECK(r >= 3);
	return r;
}

static void record_fd(struct obj *o, int fd, uint32_t kind)
{
	struct stat st;

	CHECK(fstat(fd, &st) == 0);
	o->handler = "fd";
	o->version = LUO_ABI_FD_VERSION;
	o->data_len = sizeof(o->data.fd);
	o->data.fd = (struct luo_abi_fd_v1){ .dev = st.st_dev, .ino = st.st_ino, .kind = kind };
	if (kind == LUO_ABI_FD_SOCKET) {
		int v;
		socklen_t len = sizeof(v);

		CHECK(getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) == 0);
		o->data.fd.domain = v;
		CHECK(getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) == 0);
		o->data.fd.type = v;
		CHECK(getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &len) == 0);
		o->data.fd.protocol = v;
	}
}

static void record_memfd(struct obj *o, int fd)
{
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);

	CHECK(fstat(fd, &st) == 0);
	CHECK(seals >= 0);
	o->handler = "memfd";
	o->version = LUO_ABI_MEMFD_VERSION;
	o->data_len = sizeof(o->data.memfd);
	o->data.memfd = (struct luo_abi_memfd_v1){
		.dev = st.st_dev,
		.ino = st.st_ino,
		.size = (uint64_t)st.st_size,
		.seals = (uint32_t)seals,
	};
}

static void materialize(struct obj *o, const struct kfile *f, size_t sess, const struct ctx *c)
{
	int p[2], q[2];

	*o = (struct obj){
		.src = f->src,
		.fate = f->fate,
		.named = -1,
		.mine = { -1, -1, -1, -1 },
		.sess = sess,
		.token = f->token,
		.rfd = -1,
	};
	switch (f->src) {
	case SRC_PIPE:
		CHECK(pipe2(p, O_CLOEXEC) == 0);
		o->mine[0] = p[0];
		o->mine[1] = p[1];
		o->named = dup_high(p[0]);
		o->owned = true;
		record_fd(o, o->named, LUO_ABI_FD_FIFO);
		break;
	case SRC_OTHER_PIPE:
		CHECK(pipe2(p, O_CLOEXEC) == 0);
		CHECK(pipe2(q, O_CLOEXEC) == 0);
		o->mine[0] = p[0];
		o->mine[1] = p[1];
		o->mine[2] = q[0];
		o->mine[3] = q[1];
		o->named = dup_high(q[0]);
		o->owned = true;
		record_fd(o, p[0], LUO_ABI_FD_FIFO);
		break;
	case SRC_MEMFD:
		o->mine[0] = memfd_create("luo-test-payload", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		CHECK(o->mine[0] >= 0);
		CHECK(ftruncate(o->mine[0], 4096) == 0);
		CHECK(pwrite(o->mine[0], PAYLOAD, sizeof(PAYLOAD), 0) == (ssize_t)sizeof(PAYLOAD));
		CHECK(fcntl(o->mine[0], F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK) == 0);
		o->named = dup_high(o->mine[0]);
		o->owned = true;
		record_memfd(o, o->named);
		break;
	case SRC_SOCKET:
		CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) == 0);
		o->mine[0] = p[0];
		o->mine[1] = p[1];
		o->named = dup_high(p[0]);
		o->owned = true;
		record_fd(o, o->named, LUO_ABI_FD_SOCKET);
		break;
	case SRC_NUMBER:
		o->named = (int)f->number;
		o->handler = "fd";
		o->version = LUO_ABI_FD_VERSION;
		o->data_len = sizeof(o->data.fd);
		o->data.fd = (struct luo_abi_fd_v1){ .kind = LUO_ABI_FD_FIFO };
		break;
	case SRC_HANDOVER:
		o->named = c->hfd;
		record_fd(o, c->hfd, LUO_ABI_FD_REGULAR);
		break;
	case SRC_SAME_AS_FIRST:
		CHECK(c->n_objs > 0);
		o->named = c->objs[0].named;
		o->handler = c->objs[0].handler;
		o->version = c->objs[0].version;
		o->data = c->objs[0].data;
		o->data_len = c->objs[0].data_len;
		break;
	}
	if (o->owned)
		CHECK(fstat(o->named, &o->st) == 0);
	if (f->patch)
		f->patch(&o->data);
}

/* ------------------------------------------------------------------------ */
/* The builder                                                               */

#define TRY(x)                                                                 \
	do {                                                                   \
		int _e = (x);                                                  \
		if (_e)                                                        \
			return _e;                                             \
	} while (0)

static const struct ovr *find_ovr(const struct knobs *k, int sess, int file, const char *prop)
{
	for (size_t i = 0; i < k->n_ovr; i++) {
		const struct ovr *o = &k->ovr[i];

		if (o->sess == sess && o->file == file && strcmp(o->prop, prop) == 0)
			return o;
	}
	return NULL;
}

/* A property, written only if @present, unless an override says otherwise. */
static int put_maybe(void *fdt, const struct knobs *k, int sess, int file, const char *prop, bool present,
		     const void *val, int len)
{
	const struct ovr *o = find_ovr(k, sess, file, prop);

	if (!o)
		return present ? fdt_property(fdt, prop, val, len) : 0;
	if (o->omit)
		return 0;
	return fdt_property(fdt, prop, o->val ? o->val : o->small, o->len);
}

static int put(void *fdt, const struct knobs *k, int sess, int file, const char *prop, const void *val, int len)
{
	return put_maybe(fdt, k, sess, file, prop, true, val, len);
}

static int put_u32(void *fdt, const struct knobs *k, int sess, int file, const char *prop, uint32_t v)
{
	fdt32_t be = cpu_to_fdt32(v);

	return put(fdt, k, sess, file, prop, &be, sizeof(be));
}

static int put_u64(void *fdt, const struct knobs *k, int sess, int file, const char *prop, uint64_t v)
{
	fdt64_t be = cpu_to_fdt64(v);

	return put(fdt, k, sess, file, prop, &be, sizeof(be));
}

static int put_str(void *fdt, const struct knobs *k, int sess, int file, const char *prop, const char *s)
{
	return put(fdt, k, sess, file, prop, s, (int)strlen(s) + 1);
}

struct rec {
	uint64_t token;
	uint32_t fd;
	const char *handler;
	uint32_t version;
	const void *data;
	int data_len;
};

static int write_file(void *fdt, const struct knobs *k, int sess, int file, const struct rec *r)
{
	char node[32];

	snprintf(node, sizeof(node), "file-%d", file);
	TRY(fdt_begin_node(fdt, node));
	TRY(put_u64(fdt, k, sess, file, LUO_ABI_PROP_FILE_TOKEN, r->token));
	TRY(put_u32(fdt, k, sess, file, LUO_ABI_PROP_FILE_FD, r->fd));
	TRY(put_str(fdt, k, sess, file, LUO_ABI_PROP_FILE_HANDLER, r->handler));
	TRY(put_u32(fdt, k, sess, file, LUO_ABI_PROP_FILE_HANDLER_VERSION, r->version));
	TRY(put(fdt, k, sess, file, LUO_ABI_PROP_FILE_DATA, r->data, r->data_len));
	/* The optional name: only where a case sets it. */
	TRY(put_maybe(fdt, k, sess, file, LUO_ABI_PROP_FILE_NAME, false, NULL, 0));
	return fdt_end_node(fdt);
}

static const union fdata bulk_data = { .fd = { .kind = LUO_ABI_FD_FIFO } };

static int write_bulk(void *fdt, const struct knobs *k, int sess, int first, size_t n, uint32_t *next_fd)
{
	for (size_t j = 0; j < n; j++) {
		struct rec r = {
			.token = 1000 + j,
			.fd = (*next_fd)++,
			.handler = "fd",
			.version = LUO_ABI_FD_VERSION,
			.data = &bulk_data,
			.data_len = sizeof(bulk_data.fd),
		};

		TRY(write_file(fdt, k, sess, first + (int)j, &r));
	}
	return 0;
}

static int write_component(void *fdt, const struct knobs *k, int i, const struct kcomp *kc, const char *name)
{
	char node[32];
	fdt32_t version = cpu_to_fdt32(kc->version ? kc->version : 1);
	const void *data = kc->data ? kc->data : PAYLOAD;
	int data_len = kc->data ? kc->data_len : (int)sizeof(PAYLOAD);

	snprintf(node, sizeof(node), "component-%d", i);
	TRY(fdt_begin_node(fdt, node));
	TRY(put_str(fdt, k, AT_COMPONENT(i), LUO_ABI_PROP_COMPONENT_NAME, name));
	TRY(put_maybe(fdt, k, AT_COMPONENT(i), LUO_ABI_PROP_COMPONENT_DROPPED, kc->dropped, "", 0));
	TRY(put_maybe(fdt, k, AT_COMPONENT(i), LUO_ABI_PROP_COMPONENT_VERSION, !kc->dropped, &version,
		      sizeof(version)));
	TRY(put_maybe(fdt, k, AT_COMPONENT(i), LUO_ABI_PROP_COMPONENT_DATA, !kc->dropped, data, data_len));
	return fdt_end_node(fdt);
}

static int write_components(void *fdt, const struct knobs *k)
{
	static const struct kcomp bulk = { .data = "b", .data_len = 1 };

	if (!k->components_node && k->n_comps == 0 && k->n_bulk_comps == 0)
		return 0;
	TRY(fdt_begin_node(fdt, LUO_ABI_NODE_COMPONENTS));
	for (size_t i = 0; i < k->n_comps; i++) {
		char name[32];

		snprintf(name, sizeof(name), "test.c%zu", i);
		TRY(write_component(fdt, k, (int)i, &k->comps[i], k->comps[i].name ? k->comps[i].name : name));
	}
	for (size_t i = 0; i < k->n_bulk_comps; i++) {
		char name[32];

		snprintf(name, sizeof(name), "bulk.%zu", i);
		TRY(write_component(fdt, k, (int)(k->n_comps + i), &bulk, name));
	}
	return fdt_end_node(fdt);
}

static const uint8_t build_id[20] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
				       0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14 };

static int write_tree(void *fdt, int size, const struct knobs *k, const struct ctx *c)
{
	uint32_t next_fd = BULK_FD;
	size_t o = 0;

	TRY(fdt_create(fdt, size));
	TRY(fdt_finish_reservemap(fdt));
	TRY(fdt_begin_node(fdt, ""));
	TRY(put_str(fdt, k, AT_ROOT, LUO_ABI_PROP_COMPATIBLE, LUO_ABI_COMPATIBLE));
	TRY(put_u32(fdt, k, AT_ROOT, LUO_ABI_PROP_FORMAT, LUO_ABI_FORMAT_VERSION));
	TRY(put_u64(fdt, k, AT_ROOT, LUO_ABI_PROP_LU_NUMBER, 7));
	TRY(put_str(fdt, k, AT_ROOT, LUO_ABI_PROP_PRODUCER_PATH, PRODUCER_PATH));
	TRY(put(fdt, k, AT_ROOT, LUO_ABI_PROP_PRODUCER_BUILD_ID, build_id, sizeof(build_id)));
	TRY(put(fdt, k, AT_ROOT, LUO_ABI_PROP_PRODUCER_ARGV, good_argv, sizeof(good_argv)));
	TRY(put_u64(fdt, k, AT_ROOT, LUO_ABI_PROP_FREEZE_NS, 1000));
	TRY(put_u64(fdt, k, AT_ROOT, LUO_ABI_PROP_SERIALIZE_NS, 2000));
	if (k->dup_root_prop)
		TRY(fdt_property(fdt, k->dup_root_prop, "bad", 3));
	if (!k->no_sessions_node) {
		TRY(fdt_begin_node(fdt, LUO_ABI_NODE_SESSIONS));
		for (size_t i = 0; i < k->n_sessions; i++) {
			const struct ksession *ks = &k->sessions[i];
			char node[32], nbuf[32];

			snprintf(node, sizeof(node), "session-%zu", i);
			TRY(fdt_begin_node(fdt, node));
			TRY(put_str(fdt, k, AT_SESSION((int)i), LUO_ABI_PROP_SESSION_NAME,
				    session_name(k, i, nbuf, sizeof(nbuf))));
			for (size_t j = 0; j < ks->n_files; j++, o++) {
				const struct obj *ob = &c->objs[o];
				struct rec r = {
					.token = ob->token,
					.fd = (uint32_t)ob->named,
					.handler = ob->handler,
					.version = ob->version,
					.data = &ob->data,
					.data_len = ob->data_len,
				};

				TRY(write_file(fdt, k, AT_FILE((int)i, (int)j), &r));
			}
			TRY(write_bulk(fdt, k, (int)i, (int)ks->n_files, ks->n_bulk, &next_fd));
			TRY(fdt_end_node(fdt));
		}
		for (size_t i = 0; i < k->n_bulk_sessions; i++) {
			char node[32], name[32];
			int si = (int)(k->n_sessions + i);

			snprintf(node, sizeof(node), "session-%d", si);
			snprintf(name, sizeof(name), "bulk-%zu", i);
			TRY(fdt_begin_node(fdt, node));
			TRY(put_str(fdt, k, AT_SESSION(si), LUO_ABI_PROP_SESSION_NAME, name));
			TRY(write_bulk(fdt, k, si, 0, k->bulk_session_files, &next_fd));
			TRY(fdt_end_node(fdt));
		}
		TRY(fdt_end_node(fdt)); /* sessions */
	}
	TRY(write_components(fdt, k));
	if (k->late_root_prop)
		TRY(fdt_property(fdt, k->late_root_prop, "bad", 3));
	if (k->dup_root_node) {
		TRY(fdt_begin_node(fdt, k->dup_root_node));
		TRY(fdt_begin_node(fdt, "hidden-0"));
		TRY(fdt_property_string(fdt, LUO_ABI_PROP_COMPONENT_NAME, "evil"));
		TRY(fdt_property_u32(fdt, LUO_ABI_PROP_COMPONENT_VERSION, 0));
		TRY(fdt_end_node(fdt));
		TRY(fdt_end_node(fdt));
	}
	TRY(fdt_end_node(fdt)); /* root */
	return fdt_finish(fdt);
}

/* The blob's bytes, with SLACK bytes of room after them for mangle(). */
static uint8_t *build(const struct knobs *k, const struct ctx *c, size_t *ret_len)
{
	size_t files = k->n_bulk_sessions * k->bulk_session_files;
	size_t size = 16384, len;
	uint8_t *out;

	for (size_t i = 0; i < k->n_sessions; i++)
		files += k->sessions[i].n_files + k->sessions[i].n_bulk;
	size += files * 256 + (k->n_sessions + k->n_bulk_sessions) * 128;
	size += (k->n_comps + k->n_bulk_comps) * 128;
	for (size_t i = 0; i < k->n_comps; i++)
		size += (size_t)k->comps[i].data_len;
	for (size_t i = 0; i < k->n_ovr; i++)
		size += (size_t)k->ovr[i].len + 64;
	for (;;) {
		void *fdt = malloc(size);
		int r;

		CHECK(fdt);
		r = write_tree(fdt, (int)size, k, c);
		if (r == -FDT_ERR_NOSPACE) {
			free(fdt);
			size *= 2;
			CHECK(size < (1u << 30));
			continue;
		}
		if (r != 0) {
			fprintf(stderr, "%s: building the blob: %s\n", cur_case, fdt_strerror(r));
			exit(1);
		}
		len = fdt_totalsize(fdt);
		out = malloc(len + SLACK);
		CHECK(out);
		memcpy(out, fdt, len);
		memset(out + len, 0, SLACK);
		free(fdt);
		break;
	}
	if (k->mangle)
		k->mangle(out, &len);
	if (k->keep_set) {
		size_t keep = k->keep >= 0 ? (size_t)k->keep : len - (size_t)(-k->keep);

		CHECK(keep < len);
		len = keep;
	}
	*ret_len = len;
	return out;
}

/* ------------------------------------------------------------------------ */
/* Handover fds                                                              */

static void write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		CHECK(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

static int sealed_memfd(const void *buf, size_t len, unsigned int seals)
{
	int fd = memfd_create("luo-handover", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	CHECK(fd >= 0);
	write_all(fd, buf, len);
	if (seals)
		CHECK(fcntl(fd, F_ADD_SEALS, seals) == 0);
	return fd;
}

static void set_handover_env(int fd)
{
	char v[32];

	snprintf(v, sizeof(v), "%d", fd);
	CHECK(setenv(LUO_HANDOVER_FD_ENV, v, 1) == 0);
}

static bool handover_named(const struct knobs *k)
{
	return !k->env && !k->env_prefix && !k->close_handover;
}

/*
 * Named, and a memfd sealed against write, shrink and grow, of 1..
 * LUO_ABI_BLOB_MAX bytes: only then is the fd libluo's to close. Anything
 * else the variable names is left alone, close-on-exec untouched.
 */
static bool handover_ours(const struct knobs *k)
{
	unsigned int seals = k->custom_seals ? k->seals : HANDOVER_SEALS;

	return handover_named(k) && k->hkind == H_MEMFD && (seals & HANDOVER_SEALS) == HANDOVER_SEALS &&
	       !k->no_content && k->zeros <= LUO_ABI_BLOB_MAX;
}

static void make_handover(struct ctx *c, const struct knobs *k)
{
	char tmpl[] = "/tmp/luo-bad-blob-XXXXXX";
	int p[2];

	c->hmine = -1;
	switch (k->hkind) {
	case H_MEMFD:
		c->hfd = memfd_create("luo-handover", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		break;
	case H_MEMFD_NOSEAL:
		c->hfd = memfd_create("luo-handover", MFD_CLOEXEC);
		break;
	case H_TMPFILE:
		c->hfd = mkostemp(tmpl, O_CLOEXEC);
		CHECK(c->hfd >= 0);
		CHECK(unlink(tmpl) == 0);
		break;
	case H_PIPE:
		CHECK(pipe2(p, O_CLOEXEC) == 0);
		c->hfd = p[0];
		c->hmine = p[1];
		break;
	case H_DIR:
		c->hfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		break;
	case H_DEVNULL:
		c->hfd = open("/dev/null", O_RDWR | O_CLOEXEC);
		break;
	}
	CHECK(c->hfd >= 0);
}

/* Make the handover fd and the objects, write the blob, name it. */
static void prepare(struct ctx *c, const struct knobs *k)
{
	uint8_t *buf;
	size_t len;

	memset(c, 0, sizeof(*c));
	make_handover(c, k);
	for (size_t i = 0; i < k->n_sessions; i++)
		for (size_t j = 0; j < k->sessions[i].n_files; j++) {
			CHECK(c->n_objs < MAX_OBJS);
			materialize(&c->objs[c->n_objs], &k->sessions[i].files[j], i, c);
			c->n_objs++;
		}
	buf = build(k, c, &len);
	if (k->hkind == H_MEMFD || k->hkind == H_MEMFD_NOSEAL || k->hkind == H_TMPFILE) {
		if (k->zeros)
			CHECK(ftruncate(c->hfd, (off_t)k->zeros) == 0);
		else if (!k->no_content)
			write_all(c->hfd, buf, len);
	}
	free(buf);
	if (k->hkind == H_MEMFD) {
		unsigned int seals = k->custom_seals ? k->seals : HANDOVER_SEALS;

		if (seals)
			CHECK(fcntl(c->hfd, F_ADD_SEALS, seals) == 0);
	}
	if (k->close_handover)
		CHECK(close(c->hfd) == 0);
	if (k->env) {
		CHECK(setenv(LUO_HANDOVER_FD_ENV, k->env, 1) == 0);
	} else if (k->env_prefix) {
		char v[64];

		snprintf(v, sizeof(v), "%s%d", k->env_prefix, c->hfd);
		CHECK(setenv(LUO_HANDOVER_FD_ENV, v, 1) == 0);
	} else {
		set_handover_env(c->hfd);
	}
	if (k->exec_ns)
		CHECK(setenv(LUO_ABI_EXEC_NS_ENV, k->exec_ns, 1) == 0);
	if (k->rollback_env)
		CHECK(setenv(LUO_ABI_ROLLBACK_ENV, k->rollback_env, 1) == 0);
}

/* On an open handle: luo_rollback() says what the knobs expect. */
static void check_rollback(struct luo *luo, const struct knobs *k)
{
	const char *why = NULL;
	int r = luo_rollback(luo, &why);

	if (r != k->rollback_err)
		fail("luo_rollback returned %d, expected %d", r, k->rollback_err);
	if (!why)
		fail("luo_rollback gave no reason string");
	else if (!k->rollback_err && why[0])
		fail("luo_rollback gave a reason, '%s', though this is no rollback", why);
	else if (k->rollback_why && k->rollback_why_exact && strcmp(why, k->rollback_why) != 0)
		fail("luo_rollback reason '%s', expected '%s'", why, k->rollback_why);
	else if (k->rollback_why && !strstr(why, k->rollback_why))
		fail("luo_rollback reason '%s' does not say '%s'", why, k->rollback_why);
}

/*
 * The reason of a refusal: an execve() is only ever attempted where the
 * case expects it (PRODUCER_PATH does not exist, so it fails).
 */
static void check_no_exec(const struct knobs *k, const char *why)
{
	if (!k->exec_attempt && strstr(why, "rollback to "))
		fail("an execve() of the producer was attempted: %s", why);
}

/* Right after luo_open(): the handover fd is closed iff it was named. */
static void check_handover(struct ctx *c, const struct knobs *k)
{
	bool open = fd_is_open(c->hfd);

	if (k->close_handover) {
		if (open) {
			fail("fd %d, closed before luo_open, is open", c->hfd);
			close(c->hfd);
		}
	} else if (handover_ours(k)) {
		if (open) {
			fail("luo_open left the handover fd %d open", c->hfd);
			close(c->hfd);
		}
	} else if (!open) {
		fail("luo_open closed fd %d, which is not a valid handover memfd or was not named", c->hfd);
	} else {
		close(c->hfd);
	}
	c->hfd = -1;
	if (c->hmine >= 0)
		close(c->hmine);
	c->hmine = -1;
}

static void close_mine(struct obj *o)
{
	for (int i = 0; i < 4; i++)
		if (o->mine[i] >= 0)
			close(o->mine[i]);
}

/* After a refusal: each named fd is open or closed as its fate says. */
static void settle_refused(struct ctx *c)
{
	for (size_t i = 0; i < c->n_objs; i++) {
		struct obj *o = &c->objs[i];

		if (o->owned) {
			bool open = fd_is_open(o->named);

			if (open && o->fate == CLOSED)
				fail("fd %d (token %llu) passed its check but was left open", o->named,
				     (unsigned long long)o->token);
			if (!open && o->fate == KEPT)
				fail("fd %d (token %llu) was closed by luo_open; it must be left alone", o->named,
				     (unsigned long long)o->token);
			if (open)
				close(o->named);
		}
		close_mine(o);
	}
}

/* ------------------------------------------------------------------------ */
/* Running a case                                                            */

static void refused(const char *name, const struct knobs *k, int err)
{
	char reason[512] = "";

	begin_case(name);
	for (int pass = 0; pass < 2; pass++) {
		struct luo *luo = NULL;
		struct luo_session *s;
		const char *why = NULL;
		struct ctx c;
		int r;

		prepare(&c, k);
		r = luo_open(k->open_flags | (pass ? LUO_OPEN_FRESH_ON_ERROR : 0), &luo);
		check_handover(&c, k);
		if (pass == 0) {
			if (r != -err)
				fail("luo_open returned %d (%s), expected %d (%s)", r, errname(r), -err,
				     errname(-err));
			if (r == 0)
				luo_close(luo);
		} else if (r != 0) {
			fail("luo_open(LUO_OPEN_FRESH_ON_ERROR) returned %d (%s)", r, errname(r));
		} else {
			r = luo_incoming_error(luo, &why);
			if (r != -err)
				fail("luo_incoming_error returned %d (%s), expected %d (%s)", r, errname(r), -err,
				     errname(-err));
			if (!why || !why[0]) {
				fail("no reason given");
			} else {
				snprintf(reason, sizeof(reason), "%s", why);
				check_no_exec(k, why);
				if (k->reason_says && !strstr(why, k->reason_says))
					fail("the reason does not say \"%s\"", k->reason_says);
				if (k->reason_not && strstr(why, k->reason_not))
					fail("the reason says \"%s\"", k->reason_not);
			}
			if (luo_is_incoming(luo) || luo_liveupdate_number(luo) != 0)
				fail("LUO_OPEN_FRESH_ON_ERROR handle is not a fresh start");
			if (luo_session_retrieve(luo, "s", &s) != -ENOENT)
				fail("a session of the refused handover is retrievable");
			check_rollback(luo, k);
			luo_close(luo);
		}
		settle_refused(&c);
		after_case();
	}
	end_case("%s, %s", errname(-err), reason);
}

static void check_retrieved(struct obj *o)
{
	struct stat st;
	char b[sizeof(PAYLOAD)] = "";

	if (fstat(o->rfd, &st) < 0 || st.st_dev != o->st.st_dev || st.st_ino != o->st.st_ino) {
		fail("token %llu: the retrieved fd is not the recorded object", (unsigned long long)o->token);
		return;
	}
	switch (o->src) {
	case SRC_PIPE:
	case SRC_SOCKET:
		CHECK(write(o->mine[1], "x", 1) == 1);
		if (read(o->rfd, b, 1) != 1 || b[0] != 'x')
			fail("token %llu: no data through the retrieved fd", (unsigned long long)o->token);
		break;
	case SRC_MEMFD:
		if (pread(o->rfd, b, sizeof(b), 0) != (ssize_t)sizeof(b) || memcmp(b, PAYLOAD, sizeof(b)) != 0)
			fail("token %llu: memfd contents lost", (unsigned long long)o->token);
		break;
	default:
		break;
	}
}

static void verify_adopted(struct ctx *c, const struct knobs *k, struct luo *luo)
{
	struct luo_session *sess[MAX_SESSIONS] = { NULL };

	for (size_t i = 0; i < k->n_sessions; i++) {
		char nbuf[32];
		const char *n = session_name(k, i, nbuf, sizeof(nbuf));
		struct luo_session *again;
		int r = luo_session_retrieve(luo, n, &sess[i]);

		if (r != 0) {
			fail("luo_session_retrieve('%s') returned %d (%s)", n, r, errname(r));
			continue;
		}
		if (!luo_session_is_incoming(sess[i]) || strcmp(luo_session_name(sess[i]), n) != 0)
			fail("session '%s' is not the incoming one", n);
		r = luo_session_retrieve(luo, n, &again);
		if (r != -EINVAL)
			fail("a second luo_session_retrieve('%s') returned %d, expected -EINVAL", n, r);
	}
	for (size_t i = 0; i < c->n_objs; i++) {
		struct obj *o = &c->objs[i];
		int flags, r;

		if (!o->owned || !sess[o->sess])
			continue;
		flags = fcntl(o->named, F_GETFD);
		if (flags < 0 || !(flags & FD_CLOEXEC))
			fail("adopted fd %d is not close-on-exec", o->named);
		r = luo_session_retrieve_fd(sess[o->sess], o->token, &o->rfd);
		if (r != 0) {
			fail("luo_session_retrieve_fd(%llu) returned %d (%s)", (unsigned long long)o->token, r,
			     errname(r));
			o->rfd = -1;
			continue;
		}
		check_retrieved(o);
	}
}

static void accepted(const char *name, const struct knobs *k, uint64_t lu)
{
	size_t files = 0;

	begin_case(name);
	for (int pass = 0; pass < 2; pass++) {
		struct luo *luo = NULL;
		const char *why = NULL;
		struct ctx c;
		int r;

		prepare(&c, k);
		r = luo_open(pass ? LUO_OPEN_FRESH_ON_ERROR : 0, &luo);
		check_handover(&c, k);
		if (r == 0) {
			r = luo_incoming_error(luo, &why);
			if (r != 0)
				fail("refused: %d (%s): %s", r, errname(r), why ? why : "(no reason)");
			else if (!why || why[0])
				fail("an accepted handover gives a reason");
			if (!luo_is_incoming(luo))
				fail("luo_is_incoming is false");
			if (luo_liveupdate_number(luo) != lu)
				fail("liveupdate number %llu, expected %llu",
				     (unsigned long long)luo_liveupdate_number(luo), (unsigned long long)lu);
			verify_adopted(&c, k, luo);
			check_rollback(luo, k);
			luo_close(luo);
		} else {
			fail("luo_open returned %d (%s)", r, errname(r));
		}
		/* The named fds were libluo's; what was retrieved is ours. */
		files = 0;
		for (size_t i = 0; i < c.n_objs; i++) {
			struct obj *o = &c.objs[i];

			if (o->owned && fd_is_open(o->named)) {
				if (r == 0)
					fail("luo_close left adopted fd %d open", o->named);
				close(o->named);
			}
			if (o->rfd >= 0) {
				if (!fd_is_open(o->rfd))
					fail("luo_close closed the retrieved fd %d", o->rfd);
				else
					close(o->rfd);
			}
			close_mine(o);
			files++;
		}
		after_case();
	}
	end_case("accepted, liveupdate-number %llu, %zu file(s) retrieved and checked", (unsigned long long)lu,
		 files);
}

/* ------------------------------------------------------------------------ */
/* Raw bytes (fuzzing)                                                       */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

/*
 * Open @len bytes as a sealed handover; the handle is closed. Returns what
 * luo_open() without LUO_OPEN_FRESH_ON_ERROR would.
 */
static int open_raw(const void *buf, size_t len)
{
	static const struct knobs no_exec = { 0 };
	struct luo *luo = NULL;
	const char *why = NULL;
	int hfd = sealed_memfd(buf, len, HANDOVER_SEALS);
	int r;

	set_handover_env(hfd);
	r = luo_open(LUO_OPEN_FRESH_ON_ERROR, &luo);
	if (len == 0 || len > LUO_ABI_BLOB_MAX) {
		/* Not a handover memfd: left alone. */
		if (!fd_is_open(hfd))
			fail("luo_open closed fd %d, which is not a valid handover memfd", hfd);
		else
			close(hfd);
	} else if (fd_is_open(hfd)) {
		fail("luo_open left the handover fd %d open", hfd);
		close(hfd);
	}
	if (r == 0) {
		r = luo_incoming_error(luo, &why);
		if (r && why)
			check_no_exec(&no_exec, why);
		luo_close(luo);
	}
	return r;
}

struct tally {
	size_t n, ok, badmsg, proto, noent, badf, badfd;
};

static void tally_add(struct tally *t, int r, bool strict_badmsg, size_t at)
{
	t->n++;
	switch (r) {
	case 0:
		t->ok++;
		break;
	case -EBADMSG:
		t->badmsg++;
		break;
	case -EPROTO:
		t->proto++;
		break;
	case -ENOENT:
		t->noent++;
		break;
	case -EBADF:
		t->badf++;
		break;
	case -EBADFD:
		t->badfd++;
		break;
	default:
		fail("mutation %zu: luo_open returned %d (%s)", at, r, errname(r));
		return;
	}
	if (strict_badmsg && r != -EBADMSG)
		fail("mutation %zu: luo_open returned %d (%s), expected -EBADMSG", at, r, errname(r));
}

static void tally_end(const struct tally *t)
{
	end_case("%zu blobs: %zu accepted, %zu -EBADMSG, %zu -EPROTO, %zu -ENOENT, %zu -EBADF, %zu -EBADFD", t->n,
		 t->ok, t->badmsg, t->proto, t->noent, t->badf, t->badfd);
}

static uint8_t *numbered_blob(size_t *len)
{
	struct knobs k = numbered();
	struct ctx c;

	/* So that the sweeps also go through the components reader. */
	k.n_comps = 2;
	k.comps[1].dropped = true;

	memset(&c, 0, sizeof(c));
	c.hfd = -1;
	materialize(&c.objs[0], &k.sessions[0].files[0], 0, &c);
	c.n_objs = 1;
	return build(&k, &c, len);
}

static void fuzz_truncations(void)
{
	struct tally t = { 0 };
	size_t len;
	uint8_t *blob = numbered_blob(&len);
	char name[96];

	snprintf(name, sizeof(name), "every truncation of a %zu-byte blob", len);
	begin_case(name);
	if (open_raw(blob, len) != -EBADF) /* the base blob parses */
		fail("the untruncated blob is not refused with -EBADF only");
	after_case();
	for (size_t n = 0; n < len; n++) {
		tally_add(&t, open_raw(blob, n), true, n);
		after_case();
	}
	tally_end(&t);
	free(blob);
}

static void fuzz_bit_flips(void)
{
	struct tally t = { 0 };
	size_t len;
	uint8_t *blob = numbered_blob(&len);

	begin_case("every single-bit flip of a good blob");
	for (size_t i = 0; i < len * 8; i++) {
		blob[i / 8] ^= (uint8_t)(1u << (i % 8));
		tally_add(&t, open_raw(blob, len), false, i);
		blob[i / 8] ^= (uint8_t)(1u << (i % 8));
		after_case();
	}
	tally_end(&t);
	free(blob);
}

static void fuzz_bytes(void)
{
	static const uint8_t special[] = { 0x00, 0xff, 0x7f, 0x80, 0x01, 0x02, 0x03, 0x09 };
	struct tally t = { 0 };
	size_t len;
	uint8_t *blob = numbered_blob(&len);
	uint8_t *work = malloc(len);

	CHECK(work);
	begin_case("3000 random 1..4-byte mutations of a good blob");
	for (size_t i = 0; i < 3000; i++) {
		size_t n = 1 + rnd() % 4;

		memcpy(work, blob, len);
		for (size_t j = 0; j < n; j++) {
			uint64_t x = rnd();

			work[x % len] = (x >> 32) & 1 ? special[(x >> 40) % sizeof(special)] : (uint8_t)(x >> 48);
		}
		tally_add(&t, open_raw(work, len), false, i);
		after_case();
	}
	tally_end(&t);
	free(work);
	free(blob);
}

static void garbage(void)
{
	static const size_t sizes[] = { 1, 3, 39, 40, 41, 512, 4096, 65536 };
	struct tally t = { 0 };
	size_t len;
	uint8_t *blob = numbered_blob(&len);

	begin_case("random garbage of 1..65536 bytes, 8 sizes x 16 seeds");
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t *g = malloc(sizes[i]);

		CHECK(g);
		for (int seed = 0; seed < 16; seed++) {
			for (size_t j = 0; j < sizes[i]; j++)
				g[j] = (uint8_t)rnd();
			tally_add(&t, open_raw(g, sizes[i]), true, i * 16 + (size_t)seed);
			after_case();
		}
		free(g);
	}
	tally_end(&t);

	/* A valid header (magic, sizes) in front of garbage. */
	memset(&t, 0, sizeof(t));
	begin_case("a good FDT header followed by garbage, 64 seeds");
	for (int seed = 0; seed < 64; seed++) {
		for (size_t j = sizeof(struct fdt_header); j < len; j++)
			blob[j] = (uint8_t)rnd();
		tally_add(&t, open_raw(blob, len), true, (size_t)seed);
		after_case();
	}
	tally_end(&t);
	free(blob);
}

/* ------------------------------------------------------------------------ */
/* Mangling the container                                                    */

static void mangle_magic(uint8_t *b, size_t *len)
{
	(void)len;
	memcpy(b, "LUO!", 4);
}

static void mangle_version1(uint8_t *b, size_t *len)
{
	(void)len;
	fdt_set_version(b, 1);
}

static void mangle_last_comp(uint8_t *b, size_t *len)
{
	(void)len;
	fdt_set_last_comp_version(b, FDT_LAST_SUPPORTED_VERSION + 1);
}

static void mangle_totalsize_big(uint8_t *b, size_t *len)
{
	fdt_set_totalsize(b, (uint32_t)*len + 16);
}

static void mangle_trailing(uint8_t *b, size_t *len)
{
	(void)b;
	*len += 16; /* zeros from the slack; totalsize unchanged */
}

static void mangle_both_bigger(uint8_t *b, size_t *len)
{
	*len += 16; /* totalsize follows: free space after the strings */
	fdt_set_totalsize(b, (uint32_t)*len);
}

static void mangle_off_struct(uint8_t *b, size_t *len)
{
	fdt_set_off_dt_struct(b, (uint32_t)*len + 8);
}

static void mangle_size_strings(uint8_t *b, size_t *len)
{
	(void)len;
	fdt_set_size_dt_strings(b, fdt_size_dt_strings(b) + 4096);
}

static void mangle_size_struct(uint8_t *b, size_t *len)
{
	(void)len;
	fdt_set_size_dt_struct(b, fdt_size_dt_struct(b) + 4096);
}

static void mangle_end_token(uint8_t *b, size_t *len)
{
	fdt32_t tag = cpu_to_fdt32(FDT_END_NODE);

	(void)len;
	memcpy(b + fdt_off_dt_struct(b) + fdt_size_dt_struct(b) - 4, &tag, 4);
}

static void mangle_root_nop(uint8_t *b, size_t *len)
{
	fdt32_t tag = cpu_to_fdt32(FDT_NOP);

	(void)len;
	memcpy(b + fdt_off_dt_struct(b), &tag, 4);
}

static void mangle_strings_unterminated(uint8_t *b, size_t *len)
{
	(void)len;
	b[fdt_off_dt_strings(b) + fdt_size_dt_strings(b) - 1] = 'x';
}

static void mangle_strings_zeroed(uint8_t *b, size_t *len)
{
	(void)len;
	memset(b + fdt_off_dt_strings(b), 0, fdt_size_dt_strings(b));
}

/* Record patches */
static void patch_ino(union fdata *d)
{
	d->fd.ino ^= 1;
}

static void patch_kind_socket(union fdata *d)
{
	d->fd.kind = LUO_ABI_FD_SOCKET;
}

static void patch_kind_bad(union fdata *d)
{
	d->fd.kind = 99;
}

static void patch_sock_type(union fdata *d)
{
	d->fd.type = SOCK_DGRAM;
}

static void patch_fd_reserved(union fdata *d)
{
	d->fd.domain = 1; /* a pipe has no domain */
}

static void patch_memfd_size(union fdata *d)
{
	d->memfd.size += 4096;
}

static void patch_memfd_seals(union fdata *d)
{
	d->memfd.seals |= F_SEAL_WRITE;
}

static void patch_memfd_reserved(union fdata *d)
{
	d->memfd.reserved = 1;
}

static void patch_memfd_ino(union fdata *d)
{
	d->memfd.ino ^= 1;
}

/* ------------------------------------------------------------------------ */
/* The corpus                                                                */

static char long_str[PATH_MAX + 16];

/* A string of @n 'x' in a static buffer (one at a time). */
static const char *xs(size_t n)
{
	CHECK(n < sizeof(long_str));
	memset(long_str, 'x', n);
	long_str[n] = '\0';
	return long_str;
}

static void cases_accepted(void)
{
	static char name63[LUO_SESSION_NAME_MAX + 1];
	static const uint8_t id64[LUO_ABI_BUILD_ID_MAX] = { 0xab };
	struct knobs k;

	k = good();
	accepted("good: one pipe in session 's'", &k, 7);

	k = good();
	k.sessions[0].n_files = 3;
	k.sessions[0].files[1] = (struct kfile){ .src = SRC_MEMFD, .token = 2 };
	k.sessions[0].files[2] = (struct kfile){ .src = SRC_SOCKET, .token = UINT64_MAX };
	k.n_sessions = 2;
	k.sessions[1] = (struct ksession){ .name = "empty" };
	accepted("good: pipe, memfd, socket and an empty session", &k, 7);

	k = good();
	k.n_sessions = 0;
	accepted("good: no sessions", &k, 7);

	k = good();
	k.n_sessions = 2;
	k.sessions[1] = k.sessions[0];
	accepted("good: one token in two sessions", &k, 7);

	k = good();
	ovr_u64(&k, AT_ROOT, LUO_ABI_PROP_LU_NUMBER, UINT64_MAX);
	accepted("good: liveupdate-number UINT64_MAX", &k, UINT64_MAX);

	memset(name63, 'n', LUO_SESSION_NAME_MAX);
	k = good();
	k.sessions[0].name = name63;
	accepted("good: session name of LUO_SESSION_NAME_MAX bytes", &k, 7);

	k = good();
	ovr_bytes(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_BUILD_ID, id64, sizeof(id64));
	accepted("good: build-id of LUO_ABI_BUILD_ID_MAX bytes", &k, 7);

	k = good();
	ovr_bytes(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_BUILD_ID, id64, 0);
	accepted("good: empty build-id", &k, 7);

	k = good();
	ovr_str(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_PATH, xs(PATH_MAX - 1));
	accepted("good: producer-path of PATH_MAX - 1 bytes", &k, 7);

	k = good();
	ovr_u64(&k, AT_ROOT, LUO_ABI_PROP_FREEZE_NS, 5000);
	accepted("good: freeze after serialize (timestamps ignored)", &k, 7);

	k = good();
	k.exec_ns = "soon";
	accepted("good: malformed LUO_HANDOVER_EXEC_NS (ignored, removed)", &k, 7);

	k = good();
	k.custom_seals = true;
	k.seals = HANDOVER_SEALS | F_SEAL_SEAL;
	accepted("good: handover also sealed with F_SEAL_SEAL", &k, 7);

	k = good();
	k.n_bulk_sessions = LUO_SESSIONS_MAX - 1;
	accepted("good: LUO_SESSIONS_MAX sessions", &k, 7);

	k = good();
	format1(&k);
	accepted("good: format 1 blob (no producer-argv, no components)", &k, 7);

	k = good();
	format1(&k);
	k.n_sessions = 0;
	accepted("good: format 1 blob with no sessions", &k, 7);

	/* Format 1 defines neither: a format-1 reader does not look at them. */
	k = good();
	ovr_u32(&k, AT_ROOT, LUO_ABI_PROP_FORMAT, 1);
	ovr_bytes(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_ARGV, "old", 3);
	k.n_comps = 1;
	ovr_u32(&k, AT_COMPONENT(0), LUO_ABI_PROP_COMPONENT_VERSION, 0);
	k.n_bulk_comps = LUO_ABI_COMPONENTS_MAX;
	accepted("good: format 1 with a malformed producer-argv and components node (ignored)", &k, 7);
}

static void cases_handover_fd(void)
{
	struct knobs k;

	k = good();
	k.no_content = true;
	refused("handover: empty memfd", &k, EBADMSG);

	k = good();
	k.zeros = (uint64_t)LUO_ABI_BLOB_MAX + 1;
	refused("handover: memfd of LUO_ABI_BLOB_MAX + 1 bytes", &k, EBADMSG);

	k = good();
	k.zeros = LUO_ABI_BLOB_MAX;
	refused("handover: LUO_ABI_BLOB_MAX bytes of zeros", &k, EBADMSG);

	k = good();
	k.custom_seals = true;
	k.seals = 0;
	refused("handover: unsealed memfd", &k, EBADMSG);

	k = good();
	k.custom_seals = true;
	k.seals = F_SEAL_WRITE | F_SEAL_SHRINK;
	refused("handover: not sealed against grow", &k, EBADMSG);

	k = good();
	k.custom_seals = true;
	k.seals = F_SEAL_WRITE | F_SEAL_GROW;
	refused("handover: not sealed against shrink", &k, EBADMSG);

	k = good();
	k.custom_seals = true;
	k.seals = F_SEAL_SHRINK | F_SEAL_GROW;
	refused("handover: not sealed against write", &k, EBADMSG);

	k = good();
	k.custom_seals = true;
	k.seals = F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK | F_SEAL_GROW;
	refused("handover: F_SEAL_FUTURE_WRITE instead of F_SEAL_WRITE", &k, EBADMSG);

	k = good();
	k.hkind = H_MEMFD_NOSEAL;
	refused("handover: memfd without MFD_ALLOW_SEALING", &k, EBADMSG);

	k = good();
	k.hkind = H_TMPFILE;
	refused("handover: a regular file in /tmp", &k, EBADMSG);

	k = good();
	k.hkind = H_PIPE;
	refused("handover: a pipe", &k, EBADMSG);

	k = good();
	k.hkind = H_DIR;
	refused("handover: a directory", &k, EBADMSG);

	k = good();
	k.hkind = H_DEVNULL;
	refused("handover: /dev/null", &k, EBADMSG);

	k = good();
	k.close_handover = true;
	refused("handover: memfd closed before luo_open", &k, EBADF);
}

static void cases_env(void)
{
	static const char *const bad[] = {
		"abc", "-1", "3x", "", "99999999999", "1", "0", "2", "007", "+5", " 5", "5 ", "0x5",
		"18446744073709551616", "1048577",
	};
	static char names[sizeof(bad) / sizeof(bad[0])][64];
	struct knobs k;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		k = good();
		k.env = bad[i];
		snprintf(names[i], sizeof(names[i]), "%s=\"%s\"", LUO_HANDOVER_FD_ENV, bad[i]);
		refused(names[i], &k, EBADMSG);
	}

	k = good();
	k.env = "1048576";
	refused(LUO_HANDOVER_FD_ENV "=LUO_ABI_FD_NUMBER_MAX, not open", &k, EBADF);

	k = good();
	k.env = "1000000";
	refused(LUO_HANDOVER_FD_ENV "=1000000, not open", &k, EBADF);

	k = good();
	k.env_prefix = "0";
	refused(LUO_HANDOVER_FD_ENV " with a leading zero before a good handover", &k, EBADMSG);

	k = good();
	k.env_prefix = "-";
	refused(LUO_HANDOVER_FD_ENV " negative number of a good handover", &k, EBADMSG);
}

static void cases_container(void)
{
	static const long keeps[] = { 1, 4, 39, 40, 41, 56, 100, 200, -1, -4, -8, -50 };
	static char names[sizeof(keeps) / sizeof(keeps[0])][64];
	static const struct {
		const char *name;
		void (*fn)(uint8_t *b, size_t *len);
	} mangles[] = {
		{ "container: wrong magic", mangle_magic },
		{ "container: FDT version 1", mangle_version1 },
		{ "container: last_comp_version too new", mangle_last_comp },
		{ "container: totalsize larger than the memfd", mangle_totalsize_big },
		{ "container: memfd larger than totalsize", mangle_trailing },
		{ "container: off_dt_struct past the end", mangle_off_struct },
		{ "container: size_dt_strings past the end", mangle_size_strings },
		{ "container: size_dt_struct past the end", mangle_size_struct },
		{ "container: FDT_END replaced by FDT_END_NODE", mangle_end_token },
		{ "container: root FDT_BEGIN_NODE replaced by FDT_NOP", mangle_root_nop },
		{ "container: strings block unterminated", mangle_strings_unterminated },
		{ "container: strings block zeroed", mangle_strings_zeroed },
	};
	struct knobs k;

	for (size_t i = 0; i < sizeof(keeps) / sizeof(keeps[0]); i++) {
		k = good();
		k.keep_set = true;
		k.keep = keeps[i];
		if (keeps[i] > 0)
			snprintf(names[i], sizeof(names[i]), "container: truncated to %ld bytes", keeps[i]);
		else
			snprintf(names[i], sizeof(names[i]), "container: last %ld bytes cut", -keeps[i]);
		refused(names[i], &k, EBADMSG);
	}

	for (size_t i = 0; i < sizeof(mangles) / sizeof(mangles[0]); i++) {
		k = good();
		k.mangle = mangles[i].fn;
		refused(mangles[i].name, &k, EBADMSG);
	}

	/* Free space inside totalsize is allowed by FDT: a control. */
	k = good();
	k.mangle = mangle_both_bigger;
	accepted("container: free space at the end of the tree", &k, 7);
}

static void cases_root(void)
{
	static const uint8_t zeros[LUO_ABI_BUILD_ID_MAX + 1];
	struct knobs k;

	k = good();
	ovr_str(&k, AT_ROOT, LUO_ABI_PROP_COMPATIBLE, "luo,handover2");
	refused("root: compatible \"luo,handover2\"", &k, EBADMSG);

	k = good();
	ovr_str(&k, AT_ROOT, LUO_ABI_PROP_COMPATIBLE, "luo,handovex");
	refused("root: compatible \"luo,handovex\"", &k, EBADMSG);

	k = good();
	ovr_str(&k, AT_ROOT, LUO_ABI_PROP_COMPATIBLE, "");
	refused("root: compatible empty", &k, EBADMSG);

	k = good();
	ovr_omit(&k, AT_ROOT, LUO_ABI_PROP_COMPATIBLE);
	refused("root: compatible missing", &k, EBADMSG);

	k = good();
	ovr_bytes(&k, AT_ROOT, LUO_ABI_PROP_COMPATIBLE, LUO_ABI_COMPATIBLE, sizeof(LUO_ABI_COMPATIBLE) - 1);
	refused("root: compatible unterminated", &k, EBADMSG);

	k = good();
	ovr_bytes(&k, AT_ROOT, LUO_ABI_PROP_COMPATIBLE, "luo,handover\0x", sizeof("luo,handover\0x"));
	refused("root: compatible with an inner NUL", &k, EBADMSG);

	k = good();
	ovr_bytes(&k, AT_ROOT, LUO_ABI_PROP_COMPATIBLE, "luo,handover\0other", sizeof("luo,handover\0other"));
	refused("root: compatible as a string list", &k, EBADMSG);

	k = good();
	ovr_u32(&k, AT_ROOT, LUO_ABI_PROP_FORMAT, LUO_ABI_FORMAT_VERSION + 1);
	refused("root: format-version 3", &k, EPROTO);

	k = good();
	ovr_u32(&k, AT_ROOT, LUO_ABI_PROP_FORMAT, 0);
	refused("root: format-version 0", &k, EPROTO);

	k = good();
	ovr_u32(&k, AT_ROOT, LUO_ABI_PROP_FORMAT, UINT32_MAX);
	refused("root: format-version 0xffffffff", &k, EPROTO);

	k = good();
	ovr_u32(&k, AT_ROOT, LUO_ABI_PROP_FORMAT, LUO_ABI_FORMAT_VERSION + 1);
	ovr_omit(&k, AT_ROOT, LUO_ABI_PROP_LU_NUMBER);
	ovr_omit(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_ARGV);
	k.no_sessions_node = true;
	refused("root: format-version 3, rest unlike version 2", &k, EPROTO);

	k = good();
	ovr_u32(&k, AT_ROOT, LUO_ABI_PROP_FORMAT, LUO_ABI_FORMAT_VERSION + 1);
	k.n_comps = 1;
	ovr_u32(&k, AT_COMPONENT(0), LUO_ABI_PROP_COMPONENT_VERSION, 0);
	refused("root: format-version 3 with a malformed component", &k, EPROTO);

	k = good();
	format1(&k);
	ovr_u64(&k, AT_ROOT, LUO_ABI_PROP_LU_NUMBER, 0);
	refused("root: format 1 with liveupdate-number 0", &k, EBADMSG);

	k = good();
	format1(&k);
	k.no_sessions_node = true;
	refused("root: format 1 with no sessions node", &k, EBADMSG);

	k = good();
	ovr_u64(&k, AT_ROOT, LUO_ABI_PROP_FORMAT, 1);
	refused("root: format-version of 8 bytes", &k, EBADMSG);

	k = good();
	ovr_omit(&k, AT_ROOT, LUO_ABI_PROP_FORMAT);
	refused("root: format-version missing", &k, EBADMSG);

	k = good();
	ovr_omit(&k, AT_ROOT, LUO_ABI_PROP_LU_NUMBER);
	refused("root: liveupdate-number missing", &k, EBADMSG);

	k = good();
	ovr_u32(&k, AT_ROOT, LUO_ABI_PROP_LU_NUMBER, 7);
	refused("root: liveupdate-number of 4 bytes", &k, EBADMSG);

	k = good();
	ovr_bytes(&k, AT_ROOT, LUO_ABI_PROP_LU_NUMBER, zeros, 9);
	refused("root: liveupdate-number of 9 bytes", &k, EBADMSG);

	k = good();
	ovr_u64(&k, AT_ROOT, LUO_ABI_PROP_LU_NUMBER, 0);
	refused("root: liveupdate-number 0", &k, EBADMSG);

	k = good();
	ovr_omit(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_PATH);
	refused("root: producer-path missing", &k, EBADMSG);

	k = good();
	ovr_str(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_PATH, "");
	refused("root: producer-path empty", &k, EBADMSG);

	k = good();
	ovr_bytes(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_PATH, "/bin/old", 8);
	refused("root: producer-path unterminated", &k, EBADMSG);

	k = good();
	ovr_bytes(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_PATH, "/bin/old\0/bin/new", sizeof("/bin/old\0/bin/new"));
	refused("root: producer-path with an inner NUL", &k, EBADMSG);

	k = good();
	ovr_str(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_PATH, xs(PATH_MAX));
	refused("root: producer-path of PATH_MAX bytes", &k, EBADMSG);

	k = good();
	ovr_omit(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_BUILD_ID);
	refused("root: producer-build-id missing", &k, EBADMSG);

	k = good();
	ovr_bytes(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_BUILD_ID, zeros, LUO_ABI_BUILD_ID_MAX + 1);
	refused("root: producer-build-id of 65 bytes", &k, EBADMSG);

	k = good();
	ovr_omit(&k, AT_ROOT, LUO_ABI_PROP_FREEZE_NS);
	refused("root: freeze-start-ns missing", &k, EBADMSG);

	k = good();
	ovr_u32(&k, AT_ROOT, LUO_ABI_PROP_FREEZE_NS, 1000);
	refused("root: freeze-start-ns of 4 bytes", &k, EBADMSG);

	k = good();
	ovr_omit(&k, AT_ROOT, LUO_ABI_PROP_SERIALIZE_NS);
	refused("root: serialize-start-ns missing", &k, EBADMSG);

	k = good();
	k.no_sessions_node = true;
	refused("root: no sessions node", &k, EBADMSG);

	k = good();
	ovr_u32(&k, AT_ROOT, LUO_ABI_PROP_COMPATIBLE, 1);
	refused("root: compatible as a u32", &k, EBADMSG);
}

static void cases_sessions(void)
{
	static char name64[LUO_SESSION_NAME_MAX + 2];
	struct knobs k;

	k = good();
	ovr_omit(&k, AT_SESSION(0), LUO_ABI_PROP_SESSION_NAME);
	refused("session: name missing", &k, EBADMSG);

	k = good();
	ovr_str(&k, AT_SESSION(0), LUO_ABI_PROP_SESSION_NAME, "");
	refused("session: name empty", &k, EBADMSG);

	memset(name64, 'n', LUO_SESSION_NAME_MAX + 1);
	k = good();
	ovr_str(&k, AT_SESSION(0), LUO_ABI_PROP_SESSION_NAME, name64);
	refused("session: name of 64 bytes", &k, EBADMSG);

	k = good();
	ovr_str(&k, AT_SESSION(0), LUO_ABI_PROP_SESSION_NAME, xs(4096));
	refused("session: name of 4096 bytes", &k, EBADMSG);

	k = good();
	ovr_bytes(&k, AT_SESSION(0), LUO_ABI_PROP_SESSION_NAME, "s", 1);
	refused("session: name unterminated", &k, EBADMSG);

	k = good();
	ovr_bytes(&k, AT_SESSION(0), LUO_ABI_PROP_SESSION_NAME, "s\0t", sizeof("s\0t"));
	refused("session: name with an inner NUL", &k, EBADMSG);

	k = good();
	ovr_u64(&k, AT_SESSION(0), LUO_ABI_PROP_SESSION_NAME, 0x7300000000000000ull);
	refused("session: name as a u64", &k, EBADMSG);

	k = good();
	k.n_sessions = 2;
	k.sessions[1] = (struct ksession){ .name = "s" };
	refused("session: two sessions named 's'", &k, EBADMSG);

	k = good();
	k.n_sessions = 3;
	k.sessions[1] = (struct ksession){ .name = "dup" };
	k.sessions[2] = (struct ksession){ .name = "dup" };
	refused("session: two empty sessions named 'dup'", &k, EBADMSG);

	k = good();
	k.n_bulk_sessions = LUO_SESSIONS_MAX;
	refused("session: LUO_SESSIONS_MAX + 1 sessions", &k, EBADMSG);

	k = good();
	k.sessions[0].n_bulk = LUO_SESSION_FILES_MAX;
	refused("session: LUO_SESSION_FILES_MAX + 1 files", &k, EBADMSG);

	k = good();
	k.sessions[0].files[0].fate = CLOSED;
	k.sessions[0].n_bulk = LUO_SESSION_FILES_MAX - 1;
	refused("session: LUO_SESSION_FILES_MAX files, parsed; fds not open", &k, EBADF);

	k = good();
	k.n_bulk_sessions = LUO_FILES_MAX / LUO_SESSION_FILES_MAX;
	k.bulk_session_files = LUO_SESSION_FILES_MAX;
	refused("session: LUO_FILES_MAX + 1 files in all", &k, EBADMSG);

	k = good();
	k.sessions[0].files[0].fate = CLOSED;
	k.sessions[0].n_bulk = LUO_SESSION_FILES_MAX - 1;
	k.n_bulk_sessions = LUO_FILES_MAX / LUO_SESSION_FILES_MAX - 1;
	k.bulk_session_files = LUO_SESSION_FILES_MAX;
	refused("session: LUO_FILES_MAX files in all, parsed; fds not open", &k, EBADF);
}

static void cases_files(void)
{
	static const uint32_t bad_fds[] = { 0, 1, 2, LUO_ABI_FD_NUMBER_MAX + 1, INT32_MAX, UINT32_MAX };
	static char names[sizeof(bad_fds) / sizeof(bad_fds[0])][64];
	static const uint8_t zeros[LUO_FILE_DATA_MAX + 1];
	struct knobs k;

	k = good();
	ovr_omit(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_TOKEN);
	refused("file: token missing", &k, EBADMSG);

	k = good();
	ovr_u32(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_TOKEN, 1);
	refused("file: token of 4 bytes", &k, EBADMSG);

	k = good();
	k.sessions[0].n_files = 2;
	k.sessions[0].files[1] = (struct kfile){ .src = SRC_PIPE, .token = 1 };
	refused("file: two files with token 1", &k, EBADMSG);

	k = good();
	k.sessions[0].n_files = 2;
	k.sessions[0].files[1] = (struct kfile){ .src = SRC_SAME_AS_FIRST, .token = 2 };
	refused("file: one fd number in two files of a session", &k, EBADMSG);

	k = good();
	k.n_sessions = 2;
	k.sessions[1] = (struct ksession){ .n_files = 1, .files = { { .src = SRC_SAME_AS_FIRST, .token = 1 } } };
	refused("file: one fd number in two sessions", &k, EBADMSG);

	k = numbered();
	k.sessions[0].n_files = 2;
	k.sessions[0].files[1] = (struct kfile){ .src = SRC_NUMBER, .number = NOT_OPEN_FD, .token = 2 };
	refused("file: one closed fd number in two files", &k, EBADMSG);

	k = good();
	ovr_omit(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_FD);
	refused("file: fd missing", &k, EBADMSG);

	k = good();
	ovr_u64(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_FD, 5);
	refused("file: fd of 8 bytes", &k, EBADMSG);

	for (size_t i = 0; i < sizeof(bad_fds) / sizeof(bad_fds[0]); i++) {
		k = good();
		ovr_u32(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_FD, bad_fds[i]);
		snprintf(names[i], sizeof(names[i]), "file: fd %u", bad_fds[i]);
		refused(names[i], &k, EBADMSG);
	}

	k = numbered();
	k.sessions[0].files[0].number = LUO_ABI_FD_NUMBER_MAX;
	refused("file: fd LUO_ABI_FD_NUMBER_MAX, not open", &k, EBADF);

	k = numbered();
	refused("file: fd not open", &k, EBADF);

	k = good();
	ovr_omit(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_HANDLER);
	refused("file: handler missing", &k, EBADMSG);

	k = good();
	ovr_str(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_HANDLER, "");
	refused("file: handler empty", &k, EBADMSG);

	k = good();
	ovr_str(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_HANDLER, xs(LUO_HANDLER_NAME_MAX + 1));
	refused("file: handler of 32 bytes", &k, EBADMSG);

	k = good();
	ovr_bytes(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_HANDLER, "fd", 2);
	refused("file: handler unterminated", &k, EBADMSG);

	k = good();
	ovr_bytes(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_HANDLER, "fd\0x", sizeof("fd\0x"));
	refused("file: handler with an inner NUL", &k, EBADMSG);

	k = good();
	ovr_str(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_HANDLER, xs(LUO_HANDLER_NAME_MAX));
	refused("file: unknown handler of 31 bytes", &k, ENOENT);

	k = good();
	ovr_str(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_HANDLER, "nope");
	refused("file: unknown handler 'nope'", &k, ENOENT);

	k = good();
	ovr_str(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_HANDLER, "FD");
	refused("file: handler 'FD' (names are case-sensitive)", &k, ENOENT);

	/* The optional name given at preserve time. */
	k = good();
	ovr_str(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_NAME, "");
	refused("file: name empty", &k, EBADMSG);

	k = good();
	ovr_str(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_NAME, xs(LUO_FILE_NAME_MAX + 1));
	refused("file: name of 64 bytes", &k, EBADMSG);

	k = good();
	ovr_bytes(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_NAME, "http", 4);
	refused("file: name unterminated", &k, EBADMSG);

	k = good();
	ovr_bytes(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_NAME, "ht\0tp", sizeof("ht\0tp"));
	refused("file: name with an inner NUL", &k, EBADMSG);

	k = good();
	ovr_str(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_NAME, "two words");
	refused("file: name with a space", &k, EBADMSG);

	k = good();
	ovr_str(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_NAME, "esc\x1b[2J");
	refused("file: name with a control byte", &k, EBADMSG);

	k = good();
	ovr_str(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_NAME, "caf\xc3\xa9");
	refused("file: name with bytes above 0x7e", &k, EBADMSG);

	k = good();
	ovr_str(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_NAME, xs(LUO_FILE_NAME_MAX));
	accepted("file: name of 63 bytes", &k, 7);

	k = good();
	ovr_str(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_NAME, "!");
	accepted("file: name of 1 byte", &k, 7);

	k = good();
	ovr_omit(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_HANDLER_VERSION);
	refused("file: handler-version missing", &k, EBADMSG);

	k = good();
	ovr_u64(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_HANDLER_VERSION, 1);
	refused("file: handler-version of 8 bytes", &k, EBADMSG);

	k = good();
	ovr_u32(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_HANDLER_VERSION, 2);
	refused("file: 'fd' handler-version 2", &k, EPROTO);

	k = good();
	ovr_u32(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_HANDLER_VERSION, 0);
	refused("file: 'fd' handler-version 0", &k, EPROTO);

	k = good();
	k.sessions[0].files[0].src = SRC_MEMFD;
	ovr_u32(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_HANDLER_VERSION, 2);
	refused("file: 'memfd' handler-version 2", &k, EPROTO);

	k = good();
	ovr_omit(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_DATA);
	refused("file: data missing", &k, EBADMSG);

	k = good();
	ovr_bytes(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_DATA, zeros, 0);
	refused("file: data empty", &k, EBADMSG);

	k = good();
	ovr_bytes(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_DATA, zeros, sizeof(struct luo_abi_fd_v1) - 1);
	refused("file: 'fd' data one byte short", &k, EBADMSG);

	k = good();
	ovr_bytes(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_DATA, zeros, sizeof(struct luo_abi_fd_v1) + 1);
	refused("file: 'fd' data one byte long", &k, EBADMSG);

	k = good();
	ovr_bytes(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_DATA, zeros, LUO_FILE_DATA_MAX);
	refused("file: 'fd' data of LUO_FILE_DATA_MAX bytes", &k, EBADMSG);

	k = good();
	ovr_bytes(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_DATA, zeros, LUO_FILE_DATA_MAX + 1);
	refused("file: data of LUO_FILE_DATA_MAX + 1 bytes", &k, EBADMSG);

	k = good();
	k.sessions[0].files[0].src = SRC_OTHER_PIPE;
	refused("file: fd is another pipe than recorded (left open)", &k, EBADFD);

	k = good();
	k.sessions[0].files[0].patch = patch_ino;
	refused("file: pipe with another inode number", &k, EBADFD);

	k = good();
	k.sessions[0].files[0].patch = patch_kind_socket;
	refused("file: pipe recorded as a socket", &k, EBADFD);

	k = good();
	k.sessions[0].files[0].patch = patch_kind_bad;
	refused("file: pipe recorded with kind 99", &k, EBADFD);

	k = good();
	k.sessions[0].files[0].patch = patch_fd_reserved;
	refused("file: pipe recorded with a socket domain", &k, EBADFD);

	k = good();
	k.sessions[0].files[0].src = SRC_SOCKET;
	k.sessions[0].files[0].patch = patch_sock_type;
	refused("file: stream socket recorded as datagram", &k, EBADFD);

	k = good();
	k.sessions[0].files[0].src = SRC_MEMFD;
	k.sessions[0].files[0].patch = patch_memfd_size;
	refused("file: memfd whose size differs from the record", &k, EBADFD);

	k = good();
	k.sessions[0].files[0].src = SRC_MEMFD;
	k.sessions[0].files[0].patch = patch_memfd_seals;
	refused("file: memfd whose seals differ from the record", &k, EBADFD);

	k = good();
	k.sessions[0].files[0].src = SRC_MEMFD;
	k.sessions[0].files[0].patch = patch_memfd_ino;
	refused("file: memfd with another inode number", &k, EBADFD);

	k = good();
	ovr_str(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_HANDLER, "memfd");
	ovr_bytes(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_DATA, zeros, sizeof(struct luo_abi_memfd_v1));
	refused("file: 'memfd' record naming a pipe", &k, EBADFD);

	k = good();
	k.sessions[0].files[0].src = SRC_MEMFD;
	k.sessions[0].files[0].patch = patch_memfd_reserved;
	refused("file: memfd record with reserved != 0", &k, EBADMSG);

	k = good();
	k.sessions[0].files[0].src = SRC_HANDOVER;
	refused("file: the handover memfd itself, recorded as a file", &k, EBADMSG);
}

static void cases_mixed(void)
{
	struct knobs k;

	k = good();
	k.sessions[0].files[0].fate = CLOSED;
	k.sessions[0].n_files = 2;
	k.sessions[0].files[1] = (struct kfile){ .src = SRC_NUMBER, .number = NOT_OPEN_FD, .token = 2 };
	refused("mixed: good pipe, then an fd not open (the pipe is closed)", &k, EBADF);

	k = numbered();
	k.sessions[0].n_files = 2;
	k.sessions[0].files[1] = (struct kfile){ .src = SRC_PIPE, .fate = CLOSED, .token = 2 };
	refused("mixed: an fd not open, then a good pipe (the pipe is closed)", &k, EBADF);

	k = good();
	ovr_u32(&k, AT_FILE(0, 0), LUO_ABI_PROP_FILE_HANDLER_VERSION, 2);
	k.sessions[0].n_files = 2;
	k.sessions[0].files[1] = (struct kfile){ .src = SRC_NUMBER, .number = NOT_OPEN_FD, .token = 2 };
	refused("mixed: handler-version 2, then an fd not open (first error wins)", &k, EPROTO);

	k = good();
	k.sessions[0] = (struct ksession){ .name = "a", .n_files = 1,
					   .files = { { .src = SRC_PIPE, .fate = CLOSED, .token = 1 } } };
	k.n_sessions = 2;
	k.sessions[1] = (struct ksession){ .name = "b", .n_files = 1,
					   .files = { { .src = SRC_OTHER_PIPE, .token = 1 } } };
	refused("mixed: good session 'a', session 'b' with another pipe", &k, EBADFD);

	k = good();
	k.sessions[0].n_files = 3;
	k.sessions[0].files[0] = (struct kfile){ .src = SRC_MEMFD, .fate = CLOSED, .token = 1 };
	k.sessions[0].files[1] = (struct kfile){ .src = SRC_PIPE, .token = 2 };
	k.sessions[0].files[2] = (struct kfile){ .src = SRC_SOCKET, .fate = CLOSED, .token = 3 };
	ovr_str(&k, AT_FILE(0, 1), LUO_ABI_PROP_FILE_HANDLER, "nope");
	refused("mixed: good memfd, unknown handler, good socket", &k, ENOENT);

	k = good();
	k.sessions[0].n_files = 2;
	k.sessions[0].files[0].src = SRC_OTHER_PIPE;
	k.sessions[0].files[1] = (struct kfile){ .src = SRC_MEMFD, .token = 2 };
	ovr_u32(&k, AT_FILE(0, 1), LUO_ABI_PROP_FILE_HANDLER_VERSION, 9);
	refused("mixed: another pipe, then a memfd of version 9 (both left open)", &k, EBADFD);

	k = good();
	k.sessions[0].n_files = 2;
	k.sessions[0].files[0].src = SRC_OTHER_PIPE;
	k.sessions[0].files[1] = (struct kfile){ .src = SRC_MEMFD, .fate = CLOSED, .token = 2 };
	refused("mixed: another pipe, then a good memfd (the memfd is closed)", &k, EBADFD);
}

/* A static buffer of @n strings of @each bytes (NUL included); its length. */
static char argv_buf[LUO_ABI_ARGV_BYTES_MAX + 64];

static int argv_of(size_t n, size_t each)
{
	CHECK(each >= 1 && n * each <= sizeof(argv_buf));
	memset(argv_buf, 'a', n * each);
	for (size_t i = 1; i <= n; i++)
		argv_buf[i * each - 1] = '\0';
	return (int)(n * each);
}

static void cases_argv(void)
{
	static const uint8_t zeros[1];
	struct knobs k;
	int len;

	k = good();
	ovr_omit(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_ARGV);
	refused("argv: producer-argv missing in format 2", &k, EBADMSG);

	k = good();
	ovr_bytes(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_ARGV, zeros, 0);
	refused("argv: producer-argv empty (0 bytes)", &k, EBADMSG);

	k = good();
	ovr_bytes(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_ARGV, good_argv, sizeof(good_argv) - 1);
	refused("argv: producer-argv not NUL-terminated", &k, EBADMSG);

	k = good();
	ovr_bytes(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_ARGV, "luo-test-old-image", (int)strlen("luo-test-old-image"));
	refused("argv: producer-argv of one unterminated string", &k, EBADMSG);

	k = good();
	len = argv_of(LUO_ABI_ARGV_MAX + 1, 2);
	ovr_bytes(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_ARGV, argv_buf, len);
	refused("argv: LUO_ABI_ARGV_MAX + 1 strings", &k, EBADMSG);

	k = good();
	len = argv_of(1, LUO_ABI_ARGV_BYTES_MAX + 1);
	ovr_bytes(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_ARGV, argv_buf, len);
	refused("argv: one string of LUO_ABI_ARGV_BYTES_MAX + 1 bytes", &k, EBADMSG);

	k = good();
	len = argv_of(2, LUO_ABI_ARGV_BYTES_MAX / 2);
	argv_buf[len++] = '\0'; /* a third, empty string */
	ovr_bytes(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_ARGV, argv_buf, len);
	refused("argv: LUO_ABI_ARGV_BYTES_MAX + 1 bytes in 3 strings", &k, EBADMSG);

	k = good();
	ovr_u32(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_ARGV, 1);
	refused("argv: producer-argv as a u32", &k, EBADMSG);

	k = good();
	len = argv_of(LUO_ABI_ARGV_MAX, LUO_ABI_ARGV_BYTES_MAX / LUO_ABI_ARGV_MAX);
	CHECK(len == (int)LUO_ABI_ARGV_BYTES_MAX);
	ovr_bytes(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_ARGV, argv_buf, len);
	accepted("argv: LUO_ABI_ARGV_MAX strings of LUO_ABI_ARGV_BYTES_MAX bytes in all", &k, 7);

	k = good();
	len = argv_of(LUO_ABI_ARGV_MAX, 2);
	ovr_bytes(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_ARGV, argv_buf, len);
	accepted("argv: LUO_ABI_ARGV_MAX strings of 1 byte", &k, 7);

	k = good();
	len = argv_of(1, LUO_ABI_ARGV_BYTES_MAX);
	ovr_bytes(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_ARGV, argv_buf, len);
	accepted("argv: one string of LUO_ABI_ARGV_BYTES_MAX bytes", &k, 7);

	k = good();
	ovr_str(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_ARGV, "luo-test-old-image");
	accepted("argv: a single string", &k, 7);
}

/* The good blob with one component, "test.c0", version 1, data PAYLOAD. */
static struct knobs with_comp(void)
{
	struct knobs k = good();

	k.n_comps = 1;
	return k;
}

static void cases_components(void)
{
	static const uint8_t zeros[8];
	static char name47[LUO_COMPONENT_NAME_MAX + 1];
	uint8_t *big = calloc(1, (size_t)LUO_COMPONENT_DATA_MAX + 1);
	struct knobs k;

	CHECK(big);
	CHECK(LUO_COMPONENT_NAME_MAX == 47);

	k = with_comp();
	ovr_omit(&k, AT_COMPONENT(0), LUO_ABI_PROP_COMPONENT_NAME);
	refused("component: name missing", &k, EBADMSG);

	k = with_comp();
	ovr_str(&k, AT_COMPONENT(0), LUO_ABI_PROP_COMPONENT_NAME, "");
	refused("component: name empty", &k, EBADMSG);

	k = with_comp();
	ovr_str(&k, AT_COMPONENT(0), LUO_ABI_PROP_COMPONENT_NAME, xs(LUO_COMPONENT_NAME_MAX + 1));
	refused("component: name of 48 bytes", &k, EBADMSG);

	k = with_comp();
	ovr_bytes(&k, AT_COMPONENT(0), LUO_ABI_PROP_COMPONENT_NAME, "test.c0", 7);
	refused("component: name unterminated", &k, EBADMSG);

	k = with_comp();
	ovr_bytes(&k, AT_COMPONENT(0), LUO_ABI_PROP_COMPONENT_NAME, "test\0c0", sizeof("test\0c0"));
	refused("component: name with an inner NUL", &k, EBADMSG);

	k = with_comp();
	ovr_omit(&k, AT_COMPONENT(0), LUO_ABI_PROP_COMPONENT_VERSION);
	refused("component: version missing", &k, EBADMSG);

	k = with_comp();
	ovr_u32(&k, AT_COMPONENT(0), LUO_ABI_PROP_COMPONENT_VERSION, 0);
	refused("component: version 0", &k, EBADMSG);

	k = with_comp();
	ovr_u64(&k, AT_COMPONENT(0), LUO_ABI_PROP_COMPONENT_VERSION, 1);
	refused("component: version of 8 bytes", &k, EBADMSG);

	k = with_comp();
	ovr_bytes(&k, AT_COMPONENT(0), LUO_ABI_PROP_COMPONENT_VERSION, zeros, 0);
	refused("component: version empty", &k, EBADMSG);

	k = with_comp();
	ovr_omit(&k, AT_COMPONENT(0), LUO_ABI_PROP_COMPONENT_DATA);
	refused("component: data missing (not dropped)", &k, EBADMSG);

	k = with_comp();
	ovr_bytes(&k, AT_COMPONENT(0), LUO_ABI_PROP_COMPONENT_DATA, big, (int)LUO_COMPONENT_DATA_MAX + 1);
	refused("component: data of LUO_COMPONENT_DATA_MAX + 1 bytes", &k, EBADMSG);

	k = with_comp();
	k.comps[0].dropped = true;
	ovr_u32(&k, AT_COMPONENT(0), LUO_ABI_PROP_COMPONENT_DROPPED, 1);
	refused("component: dropped with a value", &k, EBADMSG);

	k = with_comp();
	k.comps[0].dropped = true;
	ovr_u32(&k, AT_COMPONENT(0), LUO_ABI_PROP_COMPONENT_VERSION, 1);
	refused("component: dropped with a version", &k, EBADMSG);

	k = with_comp();
	k.comps[0].dropped = true;
	ovr_str(&k, AT_COMPONENT(0), LUO_ABI_PROP_COMPONENT_DATA, PAYLOAD);
	refused("component: dropped with data", &k, EBADMSG);

	k = with_comp();
	k.comps[0].dropped = true;
	ovr_bytes(&k, AT_COMPONENT(0), LUO_ABI_PROP_COMPONENT_DATA, zeros, 0);
	refused("component: dropped with empty data", &k, EBADMSG);

	k = with_comp();
	ovr_bytes(&k, AT_COMPONENT(0), LUO_ABI_PROP_COMPONENT_DROPPED, zeros, 0);
	refused("component: version, data and dropped", &k, EBADMSG);

	k = with_comp();
	k.n_comps = 2;
	k.comps[0].name = "dup";
	k.comps[1].name = "dup";
	refused("component: two components named 'dup'", &k, EBADMSG);

	k = with_comp();
	k.n_comps = 3;
	k.comps[0].name = "dup";
	k.comps[1].name = "other";
	k.comps[2] = (struct kcomp){ .name = "dup", .dropped = true };
	refused("component: a loaded and a dropped component named 'dup'", &k, EBADMSG);

	k = with_comp();
	k.n_comps = 2;
	ovr_u32(&k, AT_COMPONENT(1), LUO_ABI_PROP_COMPONENT_VERSION, 0);
	refused("component: a good one, then one of version 0", &k, EBADMSG);

	k = good();
	k.n_bulk_comps = LUO_ABI_COMPONENTS_MAX + 1;
	refused("component: LUO_ABI_COMPONENTS_MAX + 1 components", &k, EBADMSG);

	k = good();
	k.n_comps = 1;
	k.comps[0].dropped = true;
	k.n_bulk_comps = LUO_ABI_COMPONENTS_MAX;
	refused("component: LUO_ABI_COMPONENTS_MAX + 1 components, one dropped", &k, EBADMSG);

	/* This program registers no component: whatever the blob carries is ignored. */
	k = good();
	k.n_bulk_comps = LUO_ABI_COMPONENTS_MAX;
	accepted("component: LUO_ABI_COMPONENTS_MAX components (not registered: ignored)", &k, 7);

	k = good();
	k.components_node = true;
	accepted("component: empty components node", &k, 7);

	k = with_comp();
	k.comps[0].dropped = true;
	accepted("component: a dropped component", &k, 7);

	k = with_comp();
	k.comps[0].data = "";
	k.comps[0].data_len = 0;
	accepted("component: 0 bytes of data", &k, 7);

	k = with_comp();
	k.comps[0].data = big;
	k.comps[0].data_len = (int)LUO_COMPONENT_DATA_MAX;
	accepted("component: data of LUO_COMPONENT_DATA_MAX bytes", &k, 7);

	memset(name47, 'c', LUO_COMPONENT_NAME_MAX);
	k = with_comp();
	k.comps[0].name = name47;
	accepted("component: name of 47 bytes", &k, 7);

	k = with_comp();
	k.comps[0].version = UINT32_MAX;
	accepted("component: version UINT32_MAX", &k, 7);

	k = good();
	k.n_comps = 3;
	k.comps[0] = (struct kcomp){ .name = "not.registered", .version = 3 };
	k.comps[1] = (struct kcomp){ .name = LUO_ABI_FORMAT_COMPONENT, .version = 9 };
	k.comps[2] = (struct kcomp){ .name = "fd", .dropped = true };
	accepted("component: components this program has not registered are ignored", &k, 7);

	k = with_comp();
	format1(&k);
	ovr_omit(&k, AT_COMPONENT(0), LUO_ABI_PROP_COMPONENT_NAME);
	accepted("component: a malformed one in a format-1 blob (format 1 has none)", &k, 7);

	free(big);
}

static void cases_rollback(void)
{
	static const char *const malformed[] = { "x", "0:r", "99999:r", "", "4096:r", "-5:r", "71", ":r" };
	static char names[sizeof(malformed) / sizeof(malformed[0])][96];
	static const uint8_t zeros[1];
	struct knobs k;

	k = numbered();
	k.reason_says = "no rollback: " PRODUCER_PATH;
	refused("rollback: refused at adoption, the producer is gone: 'no rollback'", &k, EBADF);

	k = numbered();
	k.open_flags = LUO_OPEN_NO_ROLLBACK;
	k.reason_not = "rollback";
	refused("rollback: refused at adoption, LUO_OPEN_NO_ROLLBACK: no word of it", &k, EBADF);

	k = good();
	ovr_u64(&k, AT_ROOT, LUO_ABI_PROP_LU_NUMBER, 0);
	k.reason_says = "no rollback: " PRODUCER_PATH;
	refused("rollback: refused after producer-argv was read: 'no rollback'", &k, EBADMSG);

	k = with_comp();
	ovr_u32(&k, AT_COMPONENT(0), LUO_ABI_PROP_COMPONENT_VERSION, 0);
	k.reason_says = "no rollback: " PRODUCER_PATH;
	refused("rollback: refused for a malformed component: 'no rollback'", &k, EBADMSG);

	k = with_comp();
	ovr_u32(&k, AT_COMPONENT(0), LUO_ABI_PROP_COMPONENT_VERSION, 0);
	k.open_flags = LUO_OPEN_NO_ROLLBACK;
	k.reason_not = "rollback";
	refused("rollback: malformed component, LUO_OPEN_NO_ROLLBACK: no word of it", &k, EBADMSG);

	k = good();
	ovr_omit(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_ARGV);
	k.reason_not = "rollback";
	refused("rollback: producer-argv missing: the producer is not known, no word of it", &k, EBADMSG);

	k = good();
	ovr_bytes(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_ARGV, zeros, 0);
	k.reason_not = "rollback";
	refused("rollback: producer-argv empty: the producer is not known, no word of it", &k, EBADMSG);

	k = numbered();
	format1(&k);
	k.reason_not = "rollback";
	refused("rollback: format 1 (no producer-argv): no word of it", &k, EBADF);

	/* libfdt keeps duplicates and its lookups return the first: refused. */
	k = good();
	k.dup_root_prop = LUO_ABI_PROP_FORMAT;
	k.reason_says = "twice";
	refused("names: format-version twice at the root", &k, EBADMSG);

	k = good();
	k.dup_root_prop = LUO_ABI_PROP_PRODUCER_ARGV;
	k.reason_says = "twice";
	refused("names: producer-argv twice (the second unterminated)", &k, EBADMSG);

	k = good();
	k.late_root_prop = "late";
	k.reason_says = "after a child node";
	refused("names: a root property after the child nodes (invisible to lookups)", &k, EBADMSG);

	k = good();
	k.late_root_prop = LUO_ABI_PROP_FORMAT;
	k.reason_says = "after a child node";
	refused("names: format-version again after the child nodes", &k, EBADMSG);

	k = good();
	k.components_node = true;
	k.dup_root_node = LUO_ABI_NODE_COMPONENTS;
	k.reason_says = "twice";
	refused("names: a second components node", &k, EBADMSG);

	k = good();
	k.dup_root_node = LUO_ABI_NODE_SESSIONS;
	k.reason_says = "twice";
	refused("names: a second sessions node", &k, EBADMSG);

	k = good();
	ovr_bytes(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_ARGV, "\0x", 3);
	accepted("argv: producer-argv[0] empty (execve() allows it)", &k, 7);

	k = good();
	k.n_comps = 1;
	k.comps[0] = (struct kcomp){ .name = "bad name" };
	refused("component: name with a space", &k, EBADMSG);

	k = good();
	k.n_comps = 1;
	k.comps[0] = (struct kcomp){ .name = "ctl\x01" };
	refused("component: name with a control byte", &k, EBADMSG);

	k = numbered();
	ovr_u32(&k, AT_ROOT, LUO_ABI_PROP_FORMAT, LUO_ABI_FORMAT_VERSION + 1);
	k.reason_not = "rollback";
	refused("rollback: format 3 is not read: no word of it", &k, EPROTO);

	/* Without a build-id the blob's path alone would say what runs: no rollback. */
	k = numbered();
	ovr_bytes(&k, AT_ROOT, LUO_ABI_PROP_PRODUCER_BUILD_ID, zeros, 0);
	k.reason_says = "no rollback: the handover records no build-id for its producer";
	refused("rollback: empty build-id: no rollback, the producer is not looked at", &k, EBADF);

	k = numbered();
	k.rollback_env = "71:some reason";
	k.rollback_err = -71;
	k.rollback_why = "some reason";
	k.rollback_why_exact = true;
	k.reason_not = "no rollback: " PRODUCER_PATH;
	refused("rollback: this image is a rollback: no second one (the producer is not looked at)", &k, EBADF);

	k = good();
	k.rollback_env = "71:some reason";
	k.rollback_err = -71;
	k.rollback_why = "some reason";
	k.rollback_why_exact = true;
	accepted(LUO_ABI_ROLLBACK_ENV "=\"71:some reason\": luo_rollback() -71, 'some reason', removed", &k, 6); /* the old image's number again */

	k = good();
	k.rollback_env = "4095:";
	k.rollback_err = -4095;
	k.rollback_why = "";
	k.rollback_why_exact = true;
	accepted(LUO_ABI_ROLLBACK_ENV "=\"4095:\": luo_rollback() -4095, empty reason, removed", &k, 6); /* the old image's number again */

	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
		k = good();
		k.rollback_env = malformed[i];
		k.rollback_err = -EIO;
		k.rollback_why = "malformed";
		snprintf(names[i], sizeof(names[i]), "%s=\"%s\": luo_rollback() -EIO, malformed, removed",
			 LUO_ABI_ROLLBACK_ENV, malformed[i]);
		accepted(names[i], &k, 6); /* the old image's number again */
	}
}

int main(void)
{
	test_begin();
	fd_baseline = test_fds_at_start;
	for (int i = 0; i < 3; i++)
		std_open[i] = fd_is_open(i);
	atexit(on_exit_report);
	unsetenv(LUO_HANDOVER_FD_ENV);
	unsetenv(LUO_ABI_EXEC_NS_ENV);
	unsetenv(LUO_ABI_ROLLBACK_ENV);
	/* A refused blob would be a rollback to it: it must not exist. */
	if (access(PRODUCER_PATH, F_OK) == 0 || errno != ENOENT) {
		fprintf(stderr, "test-bad-blob: %s exists (or cannot be checked); refusing to run\n", PRODUCER_PATH);
		return 1;
	}

	cases_accepted();
	cases_handover_fd();
	cases_env();
	cases_container();
	cases_root();
	cases_sessions();
	cases_files();
	cases_mixed();
	cases_argv();
	cases_components();
	cases_rollback();
	fuzz_truncations();
	fuzz_bit_flips();
	fuzz_bytes();
	garbage();

	printf("# %d cases, %d failed\n", n_cases, n_failed);
	check_no_fd_leak();
	return n_failed ? 1 : 0;
}
