/* SPDX-License-Identifier: MIT */
/*
 * Components, through libluo directly: what luo_component_incoming() says
 * after a fresh start, a negotiated update, a rollback and a refused
 * handover; luo_update_report() after failed and refused updates; the
 * payload limit; components of a dlclose()d library; duplicate names.
 *
 * One source, five builds, each declaring its own components (read range /
 * write range, m = mandatory, o = optional):
 *
 *   build                      z       a            b        c              d
 *   first (no define)          1/1 m   1..3/1..3 m  1/1 o    1/1 o          -
 *   LUO_TEST_NEXT_IMAGE        1/1 m   2..4/2..4 m  2/2 o    1/1 o, load    1/1 o
 *                                                            fails
 *   LUO_TEST_FAILING_IMAGE     1/1 m   1..2/1..2 m, -        -              -
 *                                      load fails
 *   LUO_TEST_REFUSING_IMAGE    1/1 m   5..6/5..6 m  -        -              -
 *   LUO_TEST_DUP_IMAGE         two components named "dup"
 *
 * "z" is declared first: components are registered, saved, written in the
 * blob and loaded in declaration order, so "z" loads before "a".
 *
 * The first image runs in one of three modes (argv[1]):
 *
 *   full NEXT REFUSING FAILING
 *     fresh start: statuses on a fresh start; reports after a bad path
 *     and a refusal by REFUSING; a payload over the limit; then an
 *     update to FAILING, whose mandatory "a" fails to load: libluo execs
 *     this binary again with the same argv and handover (the environment
 *     says LUO_TEST_MODE=rollback), which checks what came back and
 *     updates to NEXT, which checks what it was given.
 *
 *   plugin PLUGIN REFUSING
 *     the component of PLUGIN (test-components-plugin.c), a library
 *     dlopen()ed and dlclose()d before luo_open() and while a struct luo
 *     is open, then dlopen()ed again.
 *
 *   norollback FAILING
 *     an update to FAILING with LUO_TEST_MODE=norollback: FAILING opens
 *     with LUO_OPEN_NO_ROLLBACK | LUO_OPEN_FRESH_ON_ERROR and checks that
 *     the refusal reset every component's status, the one loaded before
 *     the failure included. The test ends there.
 *
 * LUO_TEST_FDS carries the first image's fd count at start to the later
 * images, which end with no fd but those open.
 */

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>

#include "luo/luo.h"
#include "test-util.h"

#define MODE_ENV "LUO_TEST_MODE"
#define FDS_ENV "LUO_TEST_FDS"
#define KEEP_DATA "session data that crosses every image"
#define KEEP_TOKEN 7
#define Z_DATA "zz\0z"

/* "a"'s payload at @version: 300 + version bytes, NULs among them. */
#define A_LEN(version) (300u + (version))
#define A_LEN_MAX A_LEN(8)

__attribute__((unused)) static void a_payload(uint32_t version, uint8_t *buf)
{
	for (uint32_t i = 0; i < A_LEN(version); i++)
		buf[i] = (uint8_t)(i * 7u + version * 31u);
}

/* What the load callbacks saw; checked by main(), not in the callback. */
static char load_log[64];
static char load_error[256];

__attribute__((unused)) static void log_load(const char *name)
{
	size_t n = strlen(load_log);

	snprintf(load_log + n, sizeof(load_log) - n, "%s ", name);
}

__attribute__((unused)) static void load_mismatch(const char *what, uint32_t version, size_t len)
{
	if (!load_error[0])
		snprintf(load_error, sizeof(load_error), "%s: version %u, %zu bytes", what, version, len);
}

__attribute__((unused)) static int z_save(uint32_t version, struct luo_payload *out)
{
	(void)version;
	return luo_payload_write(out, Z_DATA, sizeof(Z_DATA));
}

__attribute__((unused)) static int z_load(uint32_t version, const void *data, size_t len)
{
	log_load("z");
	if (version != 1 || len != sizeof(Z_DATA) || memcmp(data, Z_DATA, len) != 0)
		load_mismatch("z", version, len);
	return 0;
}

__attribute__((unused)) static uint32_t a_loaded_version;

/* Loads "a" and checks its exact bytes; records a mismatch. */
__attribute__((unused)) static int a_load_checked(uint32_t version, const void *data, size_t len)
{
	uint8_t want[A_LEN_MAX];

	log_load("a");
	a_loaded_version = version;
	if (version > 8 || len != A_LEN(version)) {
		load_mismatch("a (length)", version, len);
		return 0;
	}
	a_payload(version, want);
	if (memcmp(data, want, len) != 0)
		load_mismatch("a (bytes)", version, len);
	return 0;
}

__attribute__((unused)) static int take_keep(struct luo *luo)
{
	struct luo_session *s;
	char buf[sizeof(KEEP_DATA)] = { 0 };
	int fd = -1;

	CHECK_OK(luo_session_retrieve(luo, "keep", &s));
	CHECK(luo_session_is_incoming(s));
	CHECK_OK(luo_session_retrieve_fd(s, KEEP_TOKEN, &fd));
	CHECK_EQ(pread(fd, buf, sizeof(buf), 0), sizeof(buf));
	CHECK(memcmp(buf, KEEP_DATA, sizeof(buf)) == 0);
	CHECK_OK(luo_session_finish(s));
	luo_session_close(s);
	return fd;
}

__attribute__((unused)) static int fds_from_env(void)
{
	const char *v = getenv(FDS_ENV);

	CHECK(v != NULL);
	return atoi(v);
}

__attribute__((unused)) static void check_status(const struct luo *luo, const char *name, int want,
						  uint32_t want_version)
{
	uint32_t v = 0xdeadbeef;
	int r = luo_component_incoming(luo, name, &v);

	if (r != want) {
		fprintf(stderr, "component '%s': luo_component_incoming() = %d (%s), expected %d (%s)\n", name, r,
			strerror(-r), want, strerror(-want));
		exit(1);
	}
	if (want == 0)
		CHECK_EQ(v, want_version);
	else
		CHECK_EQ(v, 0xdeadbeef); /* written only on success */
}

#if !defined(LUO_TEST_NEXT_IMAGE) && !defined(LUO_TEST_FAILING_IMAGE) && !defined(LUO_TEST_REFUSING_IMAGE) && \
	!defined(LUO_TEST_DUP_IMAGE)

/* ------------------------------------------------------------------------ */
/* The first image                                                           */

static bool save_too_big;   /* the next save of "a" writes past the limit */
static int too_big_result;  /* what the write past the limit returned */
static char save_log[64];

static void log_save(const char *name)
{
	size_t n = strlen(save_log);

	snprintf(save_log + n, sizeof(save_log) - n, "%s ", name);
}

static int z_save_logged(uint32_t version, struct luo_payload *out)
{
	log_save("z");
	return z_save(version, out);
}

static int a_save(uint32_t version, struct luo_payload *out)
{
	uint8_t buf[A_LEN_MAX];

	log_save("a");
	if (save_too_big) {
		static const uint8_t mib[1u << 20];
		int r;

		save_too_big = false; /* once */
		/* Exactly LUO_COMPONENT_DATA_MAX fits... */
		for (size_t done = 0; done < LUO_COMPONENT_DATA_MAX; done += sizeof(mib)) {
			r = luo_payload_write(out, mib, sizeof(mib));
			if (r < 0) {
				too_big_result = 1; /* not the error expected, and not where */
				return r;
			}
		}
		/* ...one byte more does not. */
		too_big_result = luo_payload_write(out, mib, 1);
		return too_big_result;
	}
	if (version > 8)
		return -EINVAL;
	a_payload(version, buf);
	return luo_payload_write(out, buf, A_LEN(version));
}

static int b_save(uint32_t version, struct luo_payload *out)
{
	(void)version;
	log_save("b");
	return luo_payload_write(out, "b", 1);
}

static int b_load(uint32_t version, const void *data, size_t len)
{
	log_load("b");
	load_mismatch("b (never handed back)", version, len);
	(void)data;
	return 0;
}

static int c_save(uint32_t version, struct luo_payload *out)
{
	(void)version;
	log_save("c");
	return luo_payload_write(out, "c", 1);
}

static int c_load(uint32_t version, const void *data, size_t len)
{
	log_load("c");
	load_mismatch("c (never handed back)", version, len);
	(void)data;
	return 0;
}

LUO_COMPONENT(comp_z, "z", 1, 1, 1, 1, 0, z_save_logged, z_load);
LUO_COMPONENT(comp_a, "a", 1, 3, 1, 3, 0, a_save, a_load_checked);
LUO_COMPONENT(comp_b, "b", 1, 1, 1, 1, LUO_COMPONENT_OPTIONAL, b_save, b_load);
LUO_COMPONENT(comp_c, "c", 1, 1, 1, 1, LUO_COMPONENT_OPTIONAL, c_save, c_load);

#define FD_SCAN_MAX 4096

/* The fds without close-on-exec, as a string of their numbers. */
static void inheritable_fds(char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int fd = 0; fd < FD_SCAN_MAX && n < len; fd++) {
		int fl = fcntl(fd, F_GETFD);

		if (fl >= 0 && !(fl & FD_CLOEXEC))
			n += (size_t)snprintf(buf + n, len - n, "%d ", fd);
	}
}

/* What a failed luo_update() must leave as it found. */
struct snapshot {
	int fds;
	char inheritable[1024];
};

static void snapshot_take(struct snapshot *s)
{
	s->fds = count_open_fds();
	inheritable_fds(s->inheritable, sizeof(s->inheritable));
}

static void check_unchanged(struct luo *luo, const struct snapshot *before, int keep_fd)
{
	struct snapshot now;
	struct luo_session *s;
	char buf[sizeof(KEEP_DATA)] = { 0 };

	snapshot_take(&now);
	CHECK_EQ(now.fds, before->fds);
	if (strcmp(now.inheritable, before->inheritable) != 0) {
		fprintf(stderr, "fds without close-on-exec: before '%s', now '%s'\n", before->inheritable,
			now.inheritable);
		exit(1);
	}
	CHECK_EQ(pread(keep_fd, buf, sizeof(buf), 0), sizeof(buf));
	CHECK(memcmp(buf, KEEP_DATA, sizeof(buf)) == 0);
	/* The handle works: "keep" is still there, a session can come and go. */
	CHECK_ERR(luo_session_create(luo, "keep", &s), EEXIST);
	CHECK_OK(luo_session_create(luo, "probe", &s));
	luo_session_close(s);
	CHECK_EQ(luo_liveupdate_number(luo), 0);
}

static const struct luo_report_entry *report_find(const struct luo_report_entry *e, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (e[i].kind == LUO_ABI_KIND_COMPONENT && strcmp(e[i].name, name) == 0)
			return &e[i];
	return NULL;
}

static void check_fresh_statuses(const struct luo *luo)
{
	check_status(luo, "z", -ENODATA, 0);
	check_status(luo, "a", -ENODATA, 0);
	check_status(luo, "b", -ENODATA, 0);
	check_status(luo, "c", -ENODATA, 0);
	check_status(luo, "d", -ENOENT, 0); /* only the next image has it */
	check_status(luo, "nope", -ENOENT, 0);
	check_status(luo, "", -ENOENT, 0);
	CHECK_ERR(luo_component_incoming(luo, NULL, NULL), EINVAL);
	CHECK_ERR(luo_component_incoming(NULL, "a", NULL), EINVAL);
}

/* D: the component of a library dlopen()ed, then dlclose()d. */
static void step_plugin(const char *plugin, const char *refusing)
{
	char *rargv[] = { (char *)refusing, NULL };
	const struct luo_report_entry *e;
	struct luo *luo;
	size_t n;
	void *h;

	h = dlopen(plugin, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "dlopen %s: %s\n", plugin, dlerror());
		exit(1);
	}
	CHECK_OK(luo_open(0, &luo));
	check_status(luo, "plugin", -ENODATA, 0);
	/* A mandatory component the new image lacks: refused, not saved. */
	CHECK_ERR(luo_update(luo, refusing, rargv, NULL), EPROTO);
	CHECK_OK(luo_update_report(luo, &e, &n));
	CHECK(report_find(e, n, "plugin") && report_find(e, n, "plugin")->verdict == LUO_VERDICT_REFUSE);
	luo_close(luo);
	CHECK_EQ(dlclose(h), 0);
	CHECK(dlopen(plugin, RTLD_NOW | RTLD_NOLOAD) == NULL); /* really unloaded */
	CHECK_OK(luo_open(0, &luo));
	check_status(luo, "plugin", -ENOENT, 0);
	check_fresh_statuses(luo);
	luo_close(luo);
	printf("ok - a dlclose()d library's component leaves the registry\n");

	/* Closed while a struct luo is open: ignored at once, gone at close. */
	h = dlopen(plugin, RTLD_NOW | RTLD_LOCAL);
	CHECK(h != NULL);
	CHECK_OK(luo_open(0, &luo));
	check_status(luo, "plugin", -ENODATA, 0);
	CHECK_EQ(dlclose(h), 0);
	CHECK(dlopen(plugin, RTLD_NOW | RTLD_NOLOAD) == NULL);
	check_status(luo, "plugin", -ENOENT, 0);
	check_fresh_statuses(luo);
	CHECK_ERR(luo_update_report(luo, &e, &n), ENODATA);
	/* Negotiation and saving skip it (its code is unmapped). */
	save_log[0] = '\0';
	CHECK_ERR(luo_update(luo, refusing, rargv, NULL), EPROTO);
	CHECK_OK(luo_update_report(luo, &e, &n));
	CHECK(report_find(e, n, "plugin") == NULL);
	CHECK(report_find(e, n, "a") && report_find(e, n, "a")->verdict == LUO_VERDICT_REFUSE);
	CHECK(strcmp(save_log, "") == 0);
	luo_close(luo);
	CHECK_OK(luo_open(0, &luo));
	check_status(luo, "plugin", -ENOENT, 0);
	check_fresh_statuses(luo);
	luo_close(luo);

	printf("ok - a library dlclose()d while a struct luo is open: no status, no report entry, no save\n");

	/* Loaded again: registered again, a component like any other. */
	h = dlopen(plugin, RTLD_NOW | RTLD_LOCAL);
	CHECK(h != NULL);
	CHECK_OK(luo_open(0, &luo));
	if (luo_component_incoming(luo, "plugin", NULL) != -ENODATA) {
		fprintf(stderr, "the plugin dlopen()ed again after a dlclose() while a struct luo was open: "
				"luo_component_incoming(\"plugin\") = %d, expected -ENODATA\n",
			luo_component_incoming(luo, "plugin", NULL));
		exit(1);
	}
	check_fresh_statuses(luo);
	CHECK_ERR(luo_update(luo, refusing, rargv, NULL), EPROTO);
	CHECK_OK(luo_update_report(luo, &e, &n));
	CHECK(report_find(e, n, "plugin") && report_find(e, n, "plugin")->verdict == LUO_VERDICT_REFUSE);
	luo_close(luo);
	CHECK_EQ(dlclose(h), 0);
	printf("ok - the library dlopen()ed again: its component registered, negotiated, refused again\n");
}

/* plugin PLUGIN REFUSING */
static int first_plugin(char **argv)
{
	test_begin();
	unsetenv(LUO_HANDOVER_FD_ENV);
	step_plugin(argv[2], argv[3]);
	check_no_fd_leak();
	printf("ok - no fd leaked\n");
	return 0;
}

/* A: fresh start, stray rollback variable, reports. */
static struct luo *step_fresh_open(void)
{
	const struct luo_report_entry *e;
	const char *reason = NULL;
	struct luo *luo;
	size_t n;

	unsetenv(LUO_HANDOVER_FD_ENV);
	setenv(LUO_ABI_ROLLBACK_ENV, "71:x", 1);
	CHECK_OK(luo_open(0, &luo));
	CHECK_EQ(luo_rollback(luo, &reason), 0);
	CHECK(reason && strcmp(reason, "") == 0);
	CHECK(getenv(LUO_ABI_ROLLBACK_ENV) == NULL);
	CHECK(!luo_is_incoming(luo));
	CHECK_OK(luo_incoming_error(luo, NULL));
	printf("ok - a stray %s without %s: no rollback, variable removed\n", LUO_ABI_ROLLBACK_ENV,
	       LUO_HANDOVER_FD_ENV);
	check_fresh_statuses(luo);
	CHECK_ERR(luo_update_report(luo, &e, &n), ENODATA);
	printf("ok - fresh start: every component -ENODATA, unknown names -ENOENT, no report\n");
	return luo;
}

static void step_reports(struct luo *luo, const char *refusing, int keep_fd)
{
	char *rargv[] = { (char *)refusing, NULL };
	char *margv[] = { "/nonexistent/luo-next", NULL };
	const struct luo_report_entry *e, *a, *z, *b;
	struct snapshot before;
	char line[512];
	size_t n;

	snapshot_take(&before);
	CHECK_ERR(luo_update(luo, margv[0], margv, NULL), ENOENT);
	CHECK_ERR(luo_update_report(luo, &e, &n), ENODATA);
	check_unchanged(luo, &before, keep_fd);

	save_log[0] = '\0';
	CHECK_ERR(luo_update(luo, refusing, rargv, NULL), EPROTO);
	CHECK(strcmp(save_log, "") == 0); /* negotiation comes before any save */
	CHECK_OK(luo_update_report(luo, &e, &n));
	a = report_find(e, n, "a");
	z = report_find(e, n, "z");
	b = report_find(e, n, "b");
	CHECK(a && z && b);
	CHECK_EQ(a->verdict, LUO_VERDICT_REFUSE);
	CHECK(!a->optional);
	CHECK_EQ(a->version, 0);
	CHECK(a->old_read.min == 1 && a->old_read.max == 3 && a->old_write.min == 1 && a->old_write.max == 3);
	CHECK(a->new_read.min == 5 && a->new_read.max == 6);
	CHECK_EQ(z->verdict, LUO_VERDICT_USE);
	CHECK_EQ(z->version, 1);
	CHECK_EQ(b->verdict, LUO_VERDICT_DROP); /* optional, the new image lacks it */
	check_unchanged(luo, &before, keep_fd);
	luo_report_entry_format(a, line, sizeof(line));
	printf("ok - refused at negotiation: -EPROTO, report says: %s\n", line);

	/* A later failure before negotiation leaves no stale report. */
	CHECK_ERR(luo_update(luo, margv[0], margv, NULL), ENOENT);
	CHECK_ERR(luo_update_report(luo, &e, &n), ENODATA);
	check_unchanged(luo, &before, keep_fd);
	printf("ok - a missing path: -ENOENT, and no report (none before, no stale one after a refusal)\n");
}

/* B: a payload past LUO_COMPONENT_DATA_MAX. */
static void step_too_big(struct luo *luo, const char *next, int keep_fd)
{
	char *nargv[] = { (char *)next, NULL };
	const struct luo_report_entry *e, *a;
	struct snapshot before;
	size_t n;

	snapshot_take(&before);
	save_log[0] = '\0';
	save_too_big = true;
	CHECK_ERR(luo_update(luo, next, nargv, NULL), E2BIG);
	CHECK(!save_too_big);
	CHECK_EQ(too_big_result, -E2BIG);
	/* Saved in declaration order; "b" is dropped for NEXT, "c" not reached. */
	CHECK(strcmp(save_log, "z a ") == 0);
	CHECK_OK(luo_update_report(luo, &e, &n));
	a = report_find(e, n, "a");
	CHECK(a && a->verdict == LUO_VERDICT_USE && a->version == 3);
	check_unchanged(luo, &before, keep_fd);
	printf("ok - a save writing LUO_COMPONENT_DATA_MAX + 1 bytes: -E2BIG from luo_payload_write() and "
	       "luo_update(), nothing changed\n");
}

static int keep_create(struct luo *luo)
{
	struct luo_session *s;
	int fd = memfd_create("keep", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	CHECK(fd >= 0);
	CHECK_EQ(write(fd, KEEP_DATA, sizeof(KEEP_DATA)), sizeof(KEEP_DATA));
	CHECK_OK(luo_session_create(luo, "keep", &s));
	CHECK_OK(luo_session_preserve_fd(s, fd, KEEP_TOKEN));
	return fd;
}

static void set_env_for_next(const char *mode, int fds)
{
	char num[16];

	snprintf(num, sizeof(num), "%d", fds);
	CHECK_OK(setenv(MODE_ENV, mode, 1));
	CHECK_OK(setenv(FDS_ENV, num, 1));
}

static int first_fresh(char **argv)
{
	const char *next = argv[2], *refusing = argv[3], *failing = argv[4];
	char *fargv[] = { (char *)failing, NULL };
	struct luo *luo;
	int keep_fd, r;

	test_begin();
	luo = step_fresh_open();
	keep_fd = keep_create(luo);
	step_reports(luo, refusing, keep_fd);
	step_too_big(luo, next, keep_fd);
	close(keep_fd);

	/* C: to FAILING, which rolls back here (see first_after_rollback()). */
	set_env_for_next("rollback", test_fds_at_start);
	save_log[0] = '\0';
	fflush(NULL); /* execve() drops what stdio still buffers */
	r = luo_update(luo, failing, fargv, NULL);
	fprintf(stderr, "luo_update(%s) returned %d (%s)\n", failing, r, strerror(-r));
	return 1;
}

/* Back from FAILING: what came back, then on to NEXT. */
static int first_after_rollback(char **argv)
{
	const char *next = argv[2];
	char *nargv[] = { (char *)next, NULL };
	int fds = fds_from_env();
	const char *reason = NULL;
	struct luo_session *s;
	struct luo *luo;
	int fd, r;

	CHECK(getenv(LUO_HANDOVER_FD_ENV) != NULL);
	CHECK(getenv(LUO_ABI_ROLLBACK_ENV) != NULL);
	CHECK_OK(luo_open(0, &luo));
	CHECK(getenv(LUO_HANDOVER_FD_ENV) == NULL && getenv(LUO_ABI_ROLLBACK_ENV) == NULL);
	r = luo_rollback(luo, &reason);
	if (r != -EIO || !strstr(reason, "component 'a'")) {
		fprintf(stderr, "luo_rollback() = %d, reason '%s'\n", r, reason);
		exit(1);
	}
	CHECK(luo_is_incoming(luo));
	CHECK_OK(luo_incoming_error(luo, NULL));
	CHECK_EQ(luo_liveupdate_number(luo), 0);
	printf("ok - rolled back from the failing image: %d, '%s'\n", r, reason);

	if (load_error[0]) {
		fprintf(stderr, "on the way back: %s\n", load_error);
		exit(1);
	}
	CHECK(strcmp(load_log, "z a ") == 0);
	check_status(luo, "z", 0, 1);
	check_status(luo, "a", 0, 2); /* negotiated with FAILING: its reads stop at 2 */
	CHECK_EQ(a_loaded_version, 2);
	check_status(luo, "b", -ESTALE, 0); /* dropped for FAILING: dropped on the way back */
	check_status(luo, "c", -ESTALE, 0);
	printf("ok - after the rollback: 'a' loaded back at version 2 with its bytes, 'b' and 'c' dropped\n");

	/* The session crossed twice; hand it on as an outgoing one. */
	fd = take_keep(luo);
	CHECK_OK(luo_session_create(luo, "keep", &s));
	CHECK_OK(luo_session_preserve_fd(s, fd, KEEP_TOKEN));
	close(fd);
	check_no_fd_leak_from(fds + 1); /* libluo's reference to "keep" */
	printf("ok - the session's memfd came back intact, no fd leaked\n");

	set_env_for_next("next", fds);
	fflush(NULL);
	r = luo_update(luo, next, nargv, NULL);
	fprintf(stderr, "luo_update(%s) returned %d (%s)\n", next, r, strerror(-r));
	return 1;
}

/* norollback FAILING: the test ends in FAILING. */
static int first_norollback(char **argv)
{
	const char *failing = argv[2];
	char *fargv[] = { (char *)failing, NULL };
	struct luo *luo;
	int keep_fd, r;

	test_begin();
	unsetenv(LUO_HANDOVER_FD_ENV);
	CHECK_OK(luo_open(0, &luo));
	keep_fd = keep_create(luo);
	close(keep_fd);
	set_env_for_next("norollback", test_fds_at_start);
	fflush(NULL);
	r = luo_update(luo, failing, fargv, NULL);
	fprintf(stderr, "luo_update(%s) returned %d (%s)\n", failing, r, strerror(-r));
	return 1;
}

int main(int argc, char **argv)
{
	const char *mode = getenv(MODE_ENV);

	if (argc == 3 && strcmp(argv[1], "norollback") == 0)
		return first_norollback(argv);
	if (argc == 4 && strcmp(argv[1], "plugin") == 0)
		return first_plugin(argv);
	if (argc != 5 || strcmp(argv[1], "full") != 0) {
		fprintf(stderr, "usage: %s full NEXT REFUSING FAILING | plugin PLUGIN REFUSING | norollback FAILING\n",
			argv[0]);
		return 2;
	}
	if (mode && strcmp(mode, "rollback") == 0)
		return first_after_rollback(argv);
	CHECK(mode == NULL);
	return first_fresh(argv);
}

#elif defined(LUO_TEST_NEXT_IMAGE)

/* ------------------------------------------------------------------------ */
/* NEXT: the successful update                                               */

static int a_save(uint32_t version, struct luo_payload *out)
{
	(void)version;
	(void)out;
	return -EINVAL; /* never saved here */
}

static int b_load(uint32_t version, const void *data, size_t len)
{
	(void)data;
	log_load("b");
	load_mismatch("b (dropped, yet loaded)", version, len);
	return 0;
}

static int c_load(uint32_t version, const void *data, size_t len)
{
	log_load("c");
	if (version != 1 || len != 1 || memcmp(data, "c", 1) != 0)
		load_mismatch("c", version, len);
	return -EIO; /* optional: a failed load is a cold start */
}

static int d_load(uint32_t version, const void *data, size_t len)
{
	(void)data;
	log_load("d");
	load_mismatch("d (new here, yet loaded)", version, len);
	return 0;
}

LUO_COMPONENT(comp_z, "z", 1, 1, 1, 1, 0, z_save, z_load);
LUO_COMPONENT(comp_a, "a", 2, 4, 2, 4, 0, a_save, a_load_checked);
LUO_COMPONENT(comp_b, "b", 2, 2, 2, 2, LUO_COMPONENT_OPTIONAL, a_save, b_load);
LUO_COMPONENT(comp_c, "c", 1, 1, 1, 1, LUO_COMPONENT_OPTIONAL, a_save, c_load);
LUO_COMPONENT(comp_d, "d", 1, 1, 1, 1, LUO_COMPONENT_OPTIONAL, a_save, d_load);

int main(void)
{
	int inherited = count_open_fds();
	const char *mode = getenv(MODE_ENV);
	int fds = fds_from_env();
	struct luo *luo;
	int fd;

	CHECK(mode && strcmp(mode, "next") == 0);
	CHECK_OK(luo_open(0, &luo));
	CHECK(luo_is_incoming(luo));
	CHECK_OK(luo_rollback(luo, NULL));
	CHECK_OK(luo_incoming_error(luo, NULL));
	CHECK_EQ(luo_liveupdate_number(luo), 1);
	CHECK_EQ(inherited, fds + 2); /* the "keep" memfd and the blob */
	if (load_error[0]) {
		fprintf(stderr, "%s\n", load_error);
		return 1;
	}
	/* Blob order is the old image's declaration order; "b" was dropped. */
	CHECK(strcmp(load_log, "z a c ") == 0);
	check_status(luo, "z", 0, 1);
	check_status(luo, "a", 0, 3);
	CHECK_EQ(a_loaded_version, 3);
	printf("ok - mandatory 'a' loaded at version 3 (max of old write 1..3, new read 2..4) with its exact "
	       "%u bytes\n", A_LEN(3));
	check_status(luo, "b", -ESTALE, 0);
	printf("ok - optional 'b' with no common version: -ESTALE, load not called\n");
	check_status(luo, "c", -EIO, 0);
	printf("ok - optional 'c' whose load failed: -EIO, the handover accepted\n");
	check_status(luo, "d", -ENODATA, 0);
	check_status(luo, "nope", -ENOENT, 0);
	printf("ok - 'd', only in the new image: -ENODATA; unknown: -ENOENT\n");

	fd = take_keep(luo);
	close(fd);
	luo_close(luo);
	check_no_fd_leak_from(fds);
	printf("ok - the session arrived after a rollback and an update; no fd leaked in any image\n");
	return 0;
}

#elif defined(LUO_TEST_FAILING_IMAGE)

/* ------------------------------------------------------------------------ */
/* FAILING: "z" loads, then mandatory "a" fails                              */

static int a_load_failing(uint32_t version, const void *data, size_t len)
{
	log_load("a");
	a_loaded_version = version;
	if (version != 2 || len != A_LEN(2))
		load_mismatch("a", version, len);
	(void)data;
	return -EIO;
}

LUO_COMPONENT(comp_z, "z", 1, 1, 1, 1, 0, z_save, z_load);
LUO_COMPONENT(comp_a, "a", 1, 2, 1, 2, 0, z_save, a_load_failing);

int main(void)
{
	const char *mode = getenv(MODE_ENV);
	const char *reason = NULL;
	struct luo_session *s;
	struct luo *luo;
	int fds, r;

	CHECK(mode != NULL);
	CHECK(getenv(LUO_HANDOVER_FD_ENV) != NULL);
	if (strcmp(mode, "rollback") == 0) {
		/* Does not return: libluo goes back to the first image. */
		r = luo_open(0, &luo);
		fprintf(stderr, "the failing image's luo_open() returned %d (%s): no rollback\n", r, strerror(-r));
		if (r == 0 && luo_incoming_error(luo, &reason) < 0)
			fprintf(stderr, "reason: %s\n", reason);
		return 1;
	}
	CHECK(strcmp(mode, "norollback") == 0);
	fds = fds_from_env();
	CHECK_OK(luo_open(LUO_OPEN_NO_ROLLBACK | LUO_OPEN_FRESH_ON_ERROR, &luo));
	CHECK(getenv(LUO_HANDOVER_FD_ENV) == NULL);
	r = luo_incoming_error(luo, &reason);
	if (r != -EIO || !strstr(reason, "component 'a'")) {
		fprintf(stderr, "luo_incoming_error() = %d, reason '%s'\n", r, reason);
		return 1;
	}
	CHECK(!strstr(reason, "rollback"));
	CHECK_OK(luo_rollback(luo, NULL));
	CHECK(!luo_is_incoming(luo));
	CHECK_EQ(luo_liveupdate_number(luo), 0);
	printf("ok - LUO_OPEN_NO_ROLLBACK | LUO_OPEN_FRESH_ON_ERROR: a fresh start, -EIO: %s\n", reason);
	if (load_error[0]) {
		fprintf(stderr, "%s\n", load_error);
		return 1;
	}
	CHECK(strcmp(load_log, "z a ") == 0); /* "z" loaded fine, first */
	check_status(luo, "z", -ENODATA, 0);
	check_status(luo, "a", -ENODATA, 0);
	check_status(luo, "nope", -ENOENT, 0);
	printf("ok - after the refusal every status is -ENODATA, 'z' (loaded before 'a' failed) included\n");
	CHECK_ERR(luo_session_retrieve(luo, "keep", &s), ENOENT);
	luo_close(luo);
	check_no_fd_leak_from(fds); /* the refused handover's fds closed */
	printf("ok - the refused handover's fds were closed, no fd leaked\n");
	return 0;
}

#elif defined(LUO_TEST_REFUSING_IMAGE)

/* ------------------------------------------------------------------------ */
/* REFUSING: "a" reads only 5..6; never run                                  */

LUO_COMPONENT(comp_z, "z", 1, 1, 1, 1, 0, z_save, z_load);
LUO_COMPONENT(comp_a, "a", 5, 6, 5, 6, 0, z_save, a_load_checked);

int main(void)
{
	fprintf(stderr, "the refusing image must never run\n");
	return 1;
}

#else /* LUO_TEST_DUP_IMAGE */

/* ------------------------------------------------------------------------ */
/* DUP: two components of one name                                          */

LUO_COMPONENT(comp_dup1, "dup", 1, 1, 1, 1, 0, z_save, z_load);
LUO_COMPONENT(comp_dup2, "dup", 1, 1, 1, 1, LUO_COMPONENT_OPTIONAL, z_save, z_load);

int main(void)
{
	static const unsigned int flags[] = {
		0,
		LUO_OPEN_FRESH_ON_ERROR,
		LUO_OPEN_FRESH_ON_ERROR | LUO_OPEN_NO_ROLLBACK,
	};
	struct luo *const sentinel = (struct luo *)&flags;
	struct luo *luo = sentinel;

	test_begin();
	CHECK(fcntl(999, F_GETFD) < 0);
	unsetenv(LUO_HANDOVER_FD_ENV);
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		CHECK_ERR(luo_open(flags[i], &luo), EEXIST);
		CHECK(luo == sentinel);
		CHECK_OK(setenv(LUO_HANDOVER_FD_ENV, "999", 1));
		CHECK_ERR(luo_open(flags[i], &luo), EEXIST);
		CHECK(getenv(LUO_HANDOVER_FD_ENV) == NULL);
		CHECK_OK(setenv(LUO_HANDOVER_FD_ENV, "garbage", 1));
		CHECK_OK(setenv(LUO_ABI_ROLLBACK_ENV, "5:x", 1));
		CHECK_ERR(luo_open(flags[i], &luo), EEXIST);
		CHECK(getenv(LUO_HANDOVER_FD_ENV) == NULL && getenv(LUO_ABI_ROLLBACK_ENV) == NULL);
		CHECK(luo == sentinel);
	}
	printf("ok - two components named 'dup': luo_open() is -EEXIST with any flags, ret_luo untouched\n");
	printf("ok - a bogus %s is removed from the environment all the same\n", LUO_HANDOVER_FD_ENV);
	/* Still a duplicate when registered by hand; still failing after that. */
	CHECK_ERR(luo_component_register(&comp_dup2), EEXIST);
	CHECK_ERR(luo_open(LUO_OPEN_FRESH_ON_ERROR, &luo), EEXIST);
	check_no_fd_leak();
	printf("ok - no fd leaked\n");
	return 0;
}

#endif
