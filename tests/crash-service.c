/* SPDX-License-Identifier: MIT */
/*
 * The service of the crash matrix (test-crash-matrix.py, crash-matrix.md).
 * It links libluo-faults, libluo with its fault points compiled in, so
 * that LUO_TEST_CRASH_AT kills it with SIGKILL at a named step of the
 * lifecycle. Built twice: crash-service ("old") and crash-service-new
 * ("new", -DCRASH_BUILD_NEW), the binary its exec handover switches to.
 *
 * Its state: the session "crash", tokens 1..N, each a memfd of 4 KiB whose
 * bytes say the run's tag, the generation and the token; and the mandatory
 * component "crash-state" (generation, N). What it restores is checked
 * whole: every token present, none more, every file of the component's
 * generation. A mix is a half-restored state: "RESULT half ...", exit 1.
 *
 *   exec-start  fresh start (checked), generation 1 preserved, luo_update()
 *               to --next running "exec-next"; with --agent, generation 1
 *               is deposited (KEEP_ON_CRASH | COMPONENTS) before the update
 *   exec-next   the new image: the exec handover checked, luo_ready(),
 *               finished; with --agent, the agent's copy withdrawn
 *   agent-run   generation 1 deposited, then every file replaced and
 *               generation 2 deposited; a clean exit (deposits kept)
 *   start       what a supervisor starts after a crash: luo_open() (with
 *               --agent, LUO_OPEN_AGENT), "crash" taken from wherever it is,
 *               checked, luo_ready(), finished; --withdraw: the agent
 *               forgets it
 *
 * Options: --next PATH, --files N, --tag T (memfd names, contents),
 * --agent, --withdraw, --no-keep (deposit without KEEP_ON_CRASH), --fds N
 * (exec-next: the fds the first image had at its start).
 *
 * Lines for the driver: "OPEN ..." after luo_open(), "DEPOSITED gen=G",
 * and one "RESULT ..." at the end: "restored gen=G build=B from=exec|agent",
 * "fresh build=B ...", or an error. Exit 0 only for a whole state.
 */

#include <fcntl.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "luo/luo.h"
#include "test-util.h"

#ifdef CRASH_BUILD_NEW
#define BUILD "new"
#else
#define BUILD "old"
#endif

#define SESSION "crash"
#define FILE_SIZE 4096
#define FILES_MAX 2000

struct crash_state {
	uint32_t gen;
	uint32_t n_files;
};

static struct crash_state state;
static bool state_loaded;

static int state_save(uint32_t version, struct luo_payload *out)
{
	return version == 1 ? luo_payload_write(out, &state, sizeof(state)) : -EINVAL;
}

static int state_load(uint32_t version, const void *data, size_t len)
{
	if (version != 1 || len != sizeof(state))
		return -EINVAL;
	memcpy(&state, data, sizeof(state));
	state_loaded = true;
	return 0;
}

LUO_COMPONENT(crash_state_component, "crash-state", 1, 1, 1, 1, 0, state_save, state_load);

static struct {
	const char *next;
	const char *tag;
	unsigned int files;
	bool agent, withdraw, keep;
	int fds;
} opt = { .tag = "t", .files = 8, .keep = true, .fds = -1 };

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout); /* the driver reads it even after a SIGKILL; execve() drops buffers */
}

static void fill(uint8_t *buf, uint32_t gen, uint32_t token)
{
	int n = snprintf((char *)buf, FILE_SIZE, "crash tag=%s gen=%u token=%u\n", opt.tag, gen, token);

	for (size_t i = (size_t)n; i < FILE_SIZE; i++)
		buf[i] = (uint8_t)(i * 31 + gen * 7 + token);
}

static int make_file(uint32_t gen, uint32_t token)
{
	uint8_t buf[FILE_SIZE];
	char name[80];
	int fd;

	snprintf(name, sizeof(name), "crash-%s-g%u-%u", opt.tag, gen, token);
	fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	CHECK(fd >= 0);
	fill(buf, gen, token);
	CHECK(pwrite(fd, buf, FILE_SIZE, 0) == FILE_SIZE);
	return fd;
}

/* Generation @gen: every token gets a new memfd (the agent holds the old ones, not copies). */
static void preserve_gen(struct luo_session *s, uint32_t gen)
{
	for (uint32_t k = 1; k <= opt.files; k++) {
		int fd = make_file(gen, k), r;

		r = luo_session_unpreserve_fd(s, k);
		CHECK(r == 0 || r == -ENOENT);
		CHECK_OK(luo_session_preserve_fd(s, fd, k));
		close(fd);
	}
	state = (struct crash_state){ gen, opt.files };
}

static void deposit(struct luo *luo, struct luo_session *s, uint32_t gen)
{
	unsigned int flags = LUO_DEPOSIT_COMPONENTS | (opt.keep ? LUO_DEPOSIT_KEEP_ON_CRASH : 0);
	const char *why = "";
	int r = luo_session_deposit(s, flags);

	if (r < 0) {
		luo_agent_error(luo, &why);
		say("RESULT deposit-error=%d (%s) reason='%s'\n", r, strerror(-r), why);
		exit(1);
	}
	say("DEPOSITED gen=%u\n", gen);
}

static struct luo *open_luo(unsigned int flags)
{
	const char *why;
	struct luo *luo;
	int r;

	if (opt.agent)
		flags |= LUO_OPEN_AGENT;
	r = luo_open(flags, &luo);
	if (r < 0) {
		say("RESULT open-error=%d (%s)\n", r, strerror(-r));
		exit(1);
	}
	r = luo_incoming_error(luo, &why);
	say("OPEN build=%s incoming=%d lu=%llu incoming_error=%d reason='%s'\n", BUILD, luo_is_incoming(luo),
	    (unsigned long long)luo_liveupdate_number(luo), r, why);
	if (opt.agent && luo_agent_error(luo, &why) != 0) {
		say("RESULT no-agent (%s)\n", why);
		exit(1);
	}
	return luo;
}

/* The generation a file's bytes say it is of, 0 if none. */
static uint32_t gen_of(const uint8_t *buf)
{
	unsigned int gen = 0;
	char tag[64];

	if (sscanf((const char *)buf, "crash tag=%63s gen=%u", tag, &gen) != 2)
		return 0;
	return gen;
}

/*
 * Take "crash" and check it whole. Returns its generation, or 0 if there
 * is none anywhere (-ENOENT: a fresh start); *ret_s gets the session.
 */
static uint32_t restore(struct luo *luo, struct luo_session **ret_s)
{
	uint8_t want[FILE_SIZE], got[FILE_SIZE];
	struct luo_session *s;
	const char *why = "";
	uint32_t version = 0;
	int r, fd;

	r = luo_session_retrieve(luo, SESSION, &s);
	if (r == -ENOENT)
		return 0;
	if (r < 0) {
		luo_agent_error(luo, &why);
		say("RESULT retrieve-error=%d (%s) reason='%s'\n", r, strerror(-r), why);
		exit(1);
	}
	r = luo_component_incoming(luo, "crash-state", &version);
	if (r != 0 || !state_loaded || version != 1) {
		say("RESULT half: session without its component (%d)\n", r);
		exit(1);
	}
	if (state.gen == 0 || state.n_files == 0 || state.n_files > FILES_MAX) {
		say("RESULT half: component gen=%u files=%u\n", state.gen, state.n_files);
		exit(1);
	}
	for (uint32_t k = 1; k <= state.n_files + 1; k++) {
		struct stat st;

		r = luo_session_retrieve_fd(s, k, &fd);
		if (k == state.n_files + 1) {
			if (r != -ENOENT) {
				say("RESULT half: token %u beyond the component's %u files (%d)\n", k, state.n_files, r);
				exit(1);
			}
			break;
		}
		if (r < 0) {
			say("RESULT half: token %u of %u missing (%d)\n", k, state.n_files, r);
			exit(1);
		}
		fill(want, state.gen, k);
		CHECK(fstat(fd, &st) == 0);
		if (st.st_size != FILE_SIZE || pread(fd, got, FILE_SIZE, 0) != FILE_SIZE ||
		    memcmp(want, got, FILE_SIZE) != 0) {
			say("RESULT half: token %u holds gen %u (%lld bytes), the component says gen %u\n", k,
			    gen_of(got), (long long)st.st_size, state.gen);
			exit(1);
		}
		close(fd);
	}
	*ret_s = s;
	return state.gen;
}

static void finish(struct luo_session *s)
{
	CHECK_OK(luo_session_finish(s));
	luo_session_close(s);
}

static void do_exec_start(int fds_at_start)
{
	struct luo *luo = open_luo(0);
	struct luo_session *s;
	char files[16], fds[16];
	char *argv[16];
	int n = 0, r;

	if (luo_is_incoming(luo)) {
		say("RESULT not-fresh\n");
		exit(1);
	}
	CHECK_OK(luo_session_create(luo, SESSION, &s));
	preserve_gen(s, 1);
	if (opt.agent)
		deposit(luo, s, 1);
	luo_ready(luo);
	snprintf(files, sizeof(files), "%u", opt.files);
	snprintf(fds, sizeof(fds), "%d", fds_at_start);
	argv[n++] = (char *)opt.next;
	argv[n++] = "exec-next";
	argv[n++] = "--files";
	argv[n++] = files;
	argv[n++] = "--tag";
	argv[n++] = (char *)opt.tag;
	argv[n++] = "--fds";
	argv[n++] = fds;
	if (opt.agent) {
		argv[n++] = "--agent";
		argv[n++] = "--withdraw";
	}
	argv[n] = NULL;
	say("UPDATE to %s\n", opt.next);
	r = luo_update(luo, opt.next, argv, NULL);
	say("RESULT update-error=%d (%s)\n", r, strerror(-r));
	exit(1);
}

static void do_exec_next(void)
{
	struct luo *luo = open_luo(0);
	struct luo_session *s = NULL;
	uint32_t gen;

	if (!luo_is_incoming(luo)) {
		say("RESULT not-incoming\n");
		exit(1);
	}
	gen = restore(luo, &s);
	if (gen == 0) {
		say("RESULT half: incoming handover without the session\n");
		exit(1);
	}
	luo_ready(luo);
	finish(s);
	if (opt.withdraw)
		CHECK_OK(luo_session_withdraw(luo, SESSION));
	luo_close(luo);
	if (opt.fds >= 0)
		check_no_fd_leak_from(opt.fds);
	say("RESULT restored gen=%u build=%s from=exec\n", gen, BUILD);
}

static void do_agent_run(void)
{
	struct luo *luo = open_luo(0);
	struct luo_session *s;

	CHECK_OK(luo_session_create(luo, SESSION, &s));
	preserve_gen(s, 1);
	deposit(luo, s, 1);
	preserve_gen(s, 2);
	deposit(luo, s, 2);
	luo_ready(luo);
	luo_close(luo); /* DETACH: the deposits stay */
	check_no_fd_leak();
	say("RESULT ran build=%s\n", BUILD);
}

static void do_start(void)
{
	struct luo *luo = open_luo(LUO_OPEN_FRESH_ON_ERROR);
	struct luo_session *s = NULL;
	const char *why = "";
	bool incoming = luo_is_incoming(luo);
	int err = luo_incoming_error(luo, &why);
	uint32_t gen = restore(luo, &s);

	luo_ready(luo);
	if (gen) {
		finish(s);
		if (opt.withdraw && !incoming)
			CHECK_OK(luo_session_withdraw(luo, SESSION));
	}
	luo_close(luo);
	check_no_fd_leak();
	if (gen)
		say("RESULT restored gen=%u build=%s from=%s\n", gen, BUILD, incoming ? "exec" : "agent");
	else
		say("RESULT fresh build=%s incoming_error=%d reason='%s' session: %s\n", BUILD, err,
		    err ? why : "no handover", opt.agent ? "the agent holds none (-ENOENT)" : "none (-ENOENT)");
}

int main(int argc, char **argv)
{
	const char *mode;
	int fds_at_start;

	test_begin();
	fds_at_start = test_fds_at_start;
	if (argc < 2) {
		fprintf(stderr, "usage: %s exec-start|exec-next|agent-run|start [options]\n", argv[0]);
		return 2;
	}
	mode = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--next") == 0 && i + 1 < argc)
			opt.next = argv[++i];
		else if (strcmp(a, "--tag") == 0 && i + 1 < argc)
			opt.tag = argv[++i];
		else if (strcmp(a, "--files") == 0 && i + 1 < argc)
			opt.files = (unsigned int)strtoul(argv[++i], NULL, 10);
		else if (strcmp(a, "--fds") == 0 && i + 1 < argc)
			opt.fds = (int)strtol(argv[++i], NULL, 10);
		else if (strcmp(a, "--agent") == 0)
			opt.agent = true;
		else if (strcmp(a, "--withdraw") == 0)
			opt.withdraw = true;
		else if (strcmp(a, "--no-keep") == 0)
			opt.keep = false;
		else {
			fprintf(stderr, "%s: unknown option %s\n", argv[0], a);
			return 2;
		}
	}
	if (opt.files == 0 || opt.files > FILES_MAX || strlen(opt.tag) > 40) {
		fprintf(stderr, "%s: --files 1..%d, --tag at most 40 bytes\n", argv[0], FILES_MAX);
		return 2;
	}
	if (strcmp(mode, "exec-start") == 0 && opt.next)
		do_exec_start(fds_at_start);
	else if (strcmp(mode, "exec-next") == 0)
		do_exec_next();
	else if (strcmp(mode, "agent-run") == 0 && opt.agent)
		do_agent_run();
	else if (strcmp(mode, "start") == 0)
		do_start();
	else {
		fprintf(stderr, "%s: bad mode '%s' (exec-start needs --next, agent-run --agent)\n", argv[0], mode);
		return 2;
	}
	return 0;
}
