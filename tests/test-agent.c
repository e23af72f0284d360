/* SPDX-License-Identifier: MIT */
/*
 * The agent through libluo's API, against a real luod started on a socket
 * of its own (test-agent-util.h). One source, two builds: this one has the
 * mandatory component "agent-test-state" at version 1 only; the build with
 * -DTEST_STATE_V2 reads 1..2 and writes 2.
 *
 *   test-agent noagent              no agent: luo_open() still succeeds,
 *                                   luo_agent_error() -ENOENT / -ECONNREFUSED,
 *                                   deposit and withdraw -ENOTCONN, retrieve
 *                                   -ENOENT; without LUO_OPEN_AGENT -ENOTCONN
 *   test-agent basic LUOD           deposit, deposit again, retrieve, data
 *                                   intact, misuse, withdraw then -ENOENT;
 *                                   a crash loses a deposit made without
 *                                   KEEP_ON_CRASH and keeps one made with it;
 *                                   a clean luo_close() keeps both
 *   test-agent exec LUOD            a deposit without KEEP_ON_CRASH survives
 *                                   luo_update() (DETACH before execve)
 *   test-agent stopped LUOD         luod is stopped (SIGSTOP) across a
 *                                   luo_update(): the DETACH before execve()
 *                                   and the new image's connect wait 100 ms
 *                                   each, so the blackout stays under 2 s
 *                                   (was 10 s); after SIGCONT the deposit is
 *                                   retrieved (the DETACH was read)
 *   test-agent version LUOD V2BIN   V2 deposits its component at version 2:
 *                                   this build's retrieve is -EPROTO, takes
 *                                   nothing, leaks nothing; V2 retrieves it,
 *                                   and loads components once for two
 *                                   sessions that carry them
 *
 * Every mode ends with check_no_fd_leak().
 */

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "luo/luo.h"
#include "test-agent-util.h"
#include "test-util.h"

#ifdef TEST_STATE_V2
#define STATE_READ_MAX 2
#define STATE_WRITE 2
#else
#define STATE_READ_MAX 1
#define STATE_WRITE 1
#endif

static uint64_t state_value;
static int state_loads;

static int state_save(uint32_t version, struct luo_payload *out)
{
	CHECK(version == STATE_WRITE);
	return luo_payload_write(out, &state_value, sizeof(state_value));
}

static int state_load(uint32_t version, const void *data, size_t len)
{
	if (version < 1 || version > STATE_READ_MAX || len != sizeof(state_value))
		return -EINVAL;
	memcpy(&state_value, data, sizeof(state_value));
	state_loads++;
	return 0;
}

LUO_COMPONENT(agent_state, "agent-test-state", 1, STATE_READ_MAX, STATE_WRITE, STATE_WRITE, 0, state_save,
	      state_load);

#define DATA "deposited bytes"

static int memfd_with(const char *text)
{
	int fd = memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	CHECK(fd >= 0);
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	return fd;
}

/* A session of a memfd (token 1) holding @text and an eventfd (token 2), deposited. */
static struct luo_session *deposit(struct luo *luo, const char *name, const char *text, unsigned int flags)
{
	struct luo_session *s;
	int fd;

	CHECK_OK(luo_session_create(luo, name, &s));
	fd = memfd_with(text);
	CHECK_OK(luo_session_preserve_fd(s, fd, 1));
	close(fd);
	fd = eventfd(3, EFD_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_OK(luo_session_preserve_fd(s, fd, 2));
	close(fd);
	CHECK_OK(luo_session_deposit(s, flags));
	return s;
}

/* Retrieve @name and check what deposit() put there. */
static void check_retrieved(struct luo *luo, const char *name, const char *text)
{
	struct luo_session *s;
	char buf[64] = { 0 };
	uint64_t count;
	int fd;

	CHECK_OK(luo_session_retrieve(luo, name, &s));
	CHECK(luo_session_is_incoming(s));
	CHECK_OK(luo_session_retrieve_fd(s, 1, &fd));
	CHECK(pread(fd, buf, sizeof(buf) - 1, 0) == (ssize_t)strlen(text));
	CHECK(strcmp(buf, text) == 0);
	close(fd);
	CHECK_OK(luo_session_retrieve_fd(s, 2, &fd));
	CHECK(read(fd, &count, sizeof(count)) == sizeof(count));
	CHECK_EQ(count, 3);
	CHECK(write(fd, &count, sizeof(count)) == sizeof(count)); /* put it back: the agent's is the same file */
	close(fd);
	luo_session_close(s);
}

static struct luo *open_agent(void)
{
	struct luo *luo;
	const char *why;

	CHECK_OK(luo_open(LUO_OPEN_AGENT, &luo));
	if (luo_agent_error(luo, &why) != 0) {
		fprintf(stderr, "agent: %s\n", why);
		exit(1);
	}
	return luo;
}

/* Retrieve until the agent has seen a dead depositor: -ENOENT within 5 s. */
static int retrieve_settled(const char *name, int want)
{
	for (int i = 0; i < 500; i++) {
		struct luo *luo = open_agent();
		struct luo_session *s;
		int r = luo_session_retrieve(luo, name, &s);

		luo_close(luo);
		if (r == want)
			return r;
		agent_sleep_ms(10);
	}
	return want == 0 ? -ENOENT : 0;
}

static pid_t run_child(void (*fn)(void))
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		fn();
		_exit(0);
	}
	return pid;
}

static void wait_ok(pid_t pid)
{
	int status;

	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void crashing_depositor(void)
{
	struct luo *luo = open_agent();

	deposit(luo, "crash-nokeep", DATA, 0);
	deposit(luo, "crash-keep", DATA, LUO_DEPOSIT_KEEP_ON_CRASH);
	_exit(0); /* no luo_close(): to the agent, a crash */
}

static void clean_depositor(void)
{
	struct luo *luo = open_agent();

	deposit(luo, "clean-nokeep", DATA, 0);
	luo_close(luo);
}

static void mode_noagent(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct luo_session *s;
	struct luo *luo;
	const char *why;
	char dir[] = "/tmp/luo-noagent.XXXXXX";
	int fd;

	CHECK(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/agent.sock", dir);
	setenv("LUO_AGENT_SOCKET", sa.sun_path, 1);

	CHECK_OK(luo_open(0, &luo));
	CHECK_ERR(luo_agent_error(luo, NULL), ENOTCONN);
	CHECK_OK(luo_session_create(luo, "s", &s));
	CHECK_ERR(luo_session_deposit(s, 0), ENOTCONN);
	CHECK_ERR(luo_session_withdraw(luo, "s"), ENOTCONN);
	luo_close(luo);

	/* No socket. */
	CHECK_OK(luo_open(LUO_OPEN_AGENT, &luo));
	CHECK_ERR(luo_agent_error(luo, &why), ENOENT);
	CHECK(strstr(why, sa.sun_path));
	CHECK_OK(luo_session_create(luo, "s", &s));
	CHECK_ERR(luo_session_deposit(s, 0), ENOTCONN);
	CHECK_ERR(luo_session_deposit(s, 1u << 7), EINVAL);
	CHECK_ERR(luo_session_withdraw(luo, "s"), ENOTCONN);
	CHECK_ERR(luo_session_retrieve(luo, "other", &s), ENOENT);
	luo_close(luo);

	/* A socket nobody listens on. */
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK_OK(luo_open(LUO_OPEN_AGENT, &luo));
	CHECK_ERR(luo_agent_error(luo, NULL), ECONNREFUSED);
	CHECK_ERR(luo_session_retrieve(luo, "other", &s), ENOENT);
	luo_close(luo);
	close(fd);
	unlink(sa.sun_path);
	rmdir(dir);
	printf("ok - no agent: luo_open() succeeds, -ENOENT / -ECONNREFUSED, deposit -ENOTCONN\n");
}

static void mode_basic(void)
{
	struct luo_session *s, *out;
	struct luo *luo;
	const char *why;
	int fd;

	luo = open_agent();
	CHECK_OK(luo_session_create(luo, "basic", &out));
	fd = memfd_with("first");
	CHECK_OK(luo_session_preserve_fd(out, fd, 1));
	close(fd);
	CHECK_ERR(luo_session_deposit(NULL, 0), EINVAL);
	CHECK_ERR(luo_session_deposit(out, 1u << 5), EINVAL);
	CHECK_OK(luo_session_deposit(out, 0));
	/* Deposited again, it replaces: the session stays outgoing and usable. */
	fd = eventfd(3, EFD_CLOEXEC);
	CHECK_OK(luo_session_preserve_fd(out, fd, 2));
	close(fd);
	CHECK_OK(luo_session_deposit(out, LUO_DEPOSIT_KEEP_ON_CRASH));
	CHECK(!luo_session_is_incoming(out));
	CHECK_ERR(luo_session_withdraw(luo, ""), EINVAL);
	CHECK_ERR(luo_session_withdraw(luo, "never-deposited"), ENOENT);
	CHECK_OK(luo_agent_error(luo, &why));
	CHECK(strstr(why, "agent:")); /* the last refusal, with the agent's reason */
	luo_close(luo);

	luo = open_agent();
	CHECK_OK(luo_session_retrieve(luo, "basic", &s));
	CHECK_ERR(luo_session_retrieve(luo, "basic", &s), EINVAL); /* once */
	CHECK_ERR(luo_session_deposit(s, 0), EINVAL);               /* incoming */
	CHECK_OK(luo_session_retrieve_fd(s, 1, &fd));
	{
		char buf[8] = { 0 };

		CHECK(pread(fd, buf, sizeof(buf), 0) == 5 && memcmp(buf, "first", 5) == 0);
	}
	close(fd);
	luo_session_close(s);
	CHECK_ERR(luo_session_retrieve(luo, "nothing-here", &s), ENOENT);
	CHECK_OK(luo_session_withdraw(luo, "basic"));
	CHECK_ERR(luo_session_withdraw(luo, "basic"), ENOENT);
	CHECK_ERR(luo_session_retrieve(luo, "basic", &s), ENOENT);
	luo_close(luo);
	printf("ok - deposit, deposit again, retrieve once, withdraw: then -ENOENT\n");

	/* A session retrieved, closed, then recreated and deposited under its name. */
	luo = open_agent();
	deposit(luo, "cycle", "generation 1", LUO_DEPOSIT_KEEP_ON_CRASH);
	luo_close(luo);
	luo = open_agent();
	check_retrieved(luo, "cycle", "generation 1");
	deposit(luo, "cycle", "generation 2", LUO_DEPOSIT_KEEP_ON_CRASH);
	luo_close(luo);
	luo = open_agent();
	check_retrieved(luo, "cycle", "generation 2");
	CHECK_OK(luo_session_withdraw(luo, "cycle"));
	luo_close(luo);
	printf("ok - retrieve, close, create again and deposit under the same name\n");

	wait_ok(run_child(crashing_depositor));
	CHECK_ERR(retrieve_settled("crash-nokeep", -ENOENT), ENOENT);
	luo = open_agent();
	check_retrieved(luo, "crash-keep", DATA);
	CHECK_OK(luo_session_withdraw(luo, "crash-keep"));
	luo_close(luo);
	printf("ok - a crash: gone without KEEP_ON_CRASH, kept with it\n");

	wait_ok(run_child(clean_depositor));
	luo = open_agent();
	check_retrieved(luo, "clean-nokeep", DATA);
	CHECK_OK(luo_session_withdraw(luo, "clean-nokeep"));
	luo_close(luo);
	printf("ok - a clean luo_close() keeps a deposit made without KEEP_ON_CRASH\n");
}

static void mode_exec(const char *self, const char *luod, bool after)
{
	struct luo *luo = open_agent();

	if (after) {
		/* luo_open() closed the handover memfd: count from here, the agent's socket aside. */
		test_fds_at_start = count_open_fds() - 1;
		/* The connection of the image before is gone: DETACH kept the deposit. */
		check_retrieved(luo, "across-exec", DATA);
		CHECK_OK(luo_session_withdraw(luo, "across-exec"));
		luo_close(luo);
		printf("ok - a deposit without KEEP_ON_CRASH survives luo_update()\n");
		return;
	}
	/* Closed: only the agent carries it (the exec handover would, too). */
	luo_session_close(deposit(luo, "across-exec", DATA, 0));
	{
		char *const argv[] = { (char *)self, "exec-after", (char *)luod, NULL };
		int r;

		fflush(NULL);
		r = luo_update(luo, self, argv, NULL);
		fprintf(stderr, "luo_update: %s\n", strerror(-r));
		exit(1);
	}
}

static void mode_stopped(const char *self, const char *luod, bool after)
{
	struct luo_timings t;
	struct luo *luo;

	if (!after) {
		luo = open_agent();
		luo_session_close(deposit(luo, "across-stop", DATA, 0));
		CHECK_EQ(kill((pid_t)strtol(getenv("TEST_AGENT_PID"), NULL, 10), SIGSTOP), 0);
		{
			char *const argv[] = { (char *)self, "stopped-after", (char *)luod, NULL };
			int r;

			fflush(NULL);
			r = luo_update(luo, self, argv, NULL);
			fprintf(stderr, "luo_update: %s\n", strerror(-r));
			exit(1);
		}
	}
	CHECK_OK(luo_open(LUO_OPEN_AGENT, &luo));
	test_fds_at_start = count_open_fds() - (luo_agent_error(luo, NULL) == 0); /* the handover memfd is closed */
	CHECK_OK(luo_ready(luo));
	CHECK_OK(luo_timings(luo, &t));
	CHECK_EQ(kill((pid_t)strtol(getenv("TEST_AGENT_PID"), NULL, 10), SIGCONT), 0);
	if (t.blackout_ns >= 2000000000ull) {
		fprintf(stderr, "a stopped luod stretched the blackout to %.3f ms\n", t.blackout_ns / 1e6);
		exit(1);
	}
	printf("ok - luod stopped across luo_update(): blackout %.3f ms, luo_agent_error %d\n", t.blackout_ns / 1e6,
	       luo_agent_error(luo, NULL));
	/* luod runs again: the next call connects; the DETACH it read kept the deposit. */
	check_retrieved(luo, "across-stop", DATA);
	CHECK_OK(luo_session_withdraw(luo, "across-stop"));
	luo_close(luo);
	printf("ok - after SIGCONT the deposit is there\n");
}

static void v2_depositor(void)
{
	struct luo *luo = open_agent();

	state_value = 0x5eed;
	deposit(luo, "versioned", DATA, LUO_DEPOSIT_KEEP_ON_CRASH | LUO_DEPOSIT_COMPONENTS);
	state_value = 0xbad;
	deposit(luo, "versioned-too", DATA, LUO_DEPOSIT_KEEP_ON_CRASH | LUO_DEPOSIT_COMPONENTS);
	luo_close(luo);
}

static void run_bin(const char *bin, const char *mode)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		execl(bin, bin, mode, (char *)NULL);
		_exit(127);
	}
	wait_ok(pid);
}

static void mode_version(const char *v2)
{
	struct luo_session *s;
	struct luo *luo;
	const char *why;
	uint32_t v;

	run_bin(v2, "v2-deposit");
	luo = open_agent();
	for (int i = 0; i < 2; i++) { /* refused twice: nothing half-adopted in between */
		CHECK_ERR(luo_session_retrieve(luo, "versioned", &s), EPROTO);
		CHECK_OK(luo_agent_error(luo, &why));
		CHECK(strstr(why, "agent-test-state"));
	}
	CHECK_ERR(luo_component_incoming(luo, "agent-test-state", &v), ENODATA);
	CHECK_EQ(state_loads, 0);
	luo_close(luo);
	printf("ok - a mandatory component at a version this build cannot read: -EPROTO\n");
	run_bin(v2, "v2-retrieve");
	printf("ok - the deposit is still there for a build that reads it\n");
}

static void mode_v2_retrieve(void)
{
	struct luo *luo = open_agent();
	uint32_t v = 0;

	CHECK_ERR(luo_component_incoming(luo, "agent-test-state", &v), ENODATA);
	check_retrieved(luo, "versioned", DATA);
	CHECK_OK(luo_component_incoming(luo, "agent-test-state", &v));
	CHECK_EQ(v, 2);
	CHECK_EQ(state_value, 0x5eed);
	/* The second session carries components too: loaded once per process. */
	check_retrieved(luo, "versioned-too", DATA);
	CHECK_EQ(state_loads, 1);
	CHECK_EQ(state_value, 0x5eed);
	CHECK_OK(luo_session_withdraw(luo, "versioned"));
	CHECK_OK(luo_session_withdraw(luo, "versioned-too"));
	luo_close(luo);
}

int main(int argc, char **argv)
{
	struct test_agent agent = { 0 };
	const char *mode = argc > 1 ? argv[1] : "";

	test_begin();
	if (strcmp(mode, "noagent") == 0) {
		mode_noagent();
	} else if (strcmp(mode, "v2-deposit") == 0) {
		v2_depositor();
	} else if (strcmp(mode, "v2-retrieve") == 0) {
		mode_v2_retrieve();
	} else if ((strcmp(mode, "exec-after") == 0 || strcmp(mode, "stopped-after") == 0) && argc == 3) {
		if (strcmp(mode, "exec-after") == 0)
			mode_exec(argv[0], argv[2], true);
		else
			mode_stopped(argv[0], argv[2], true);
		agent.pid = (pid_t)strtol(getenv("TEST_AGENT_PID"), NULL, 10); /* the image before started it */
		snprintf(agent.sock, sizeof(agent.sock), "%s", getenv("LUO_AGENT_SOCKET"));
		snprintf(agent.dir, sizeof(agent.dir), "%.*s", (int)(strrchr(agent.sock, '/') - agent.sock),
			 agent.sock);
	} else if (argc >= 3) {
		agent_start(&agent, argv[2]);
		if (strcmp(mode, "basic") == 0) {
			mode_basic();
		} else if (strcmp(mode, "exec") == 0) {
			char pid[16];

			snprintf(pid, sizeof(pid), "%d", (int)agent.pid);
			setenv("TEST_AGENT_PID", pid, 1);
			mode_exec(argv[0], argv[2], false);
		} else if (strcmp(mode, "stopped") == 0) {
			char pid[16];

			snprintf(pid, sizeof(pid), "%d", (int)agent.pid);
			setenv("TEST_AGENT_PID", pid, 1);
			mode_stopped(argv[0], argv[2], false);
		} else if (strcmp(mode, "version") == 0 && argc == 4) {
			mode_version(argv[3]);
		} else {
			fprintf(stderr, "unknown mode %s\n", mode);
			return 2;
		}
	} else {
		fprintf(stderr, "usage: %s noagent | basic LUOD | exec LUOD | version LUOD V2BIN\n", argv[0]);
		return 2;
	}
	check_no_fd_leak();
	agent_stop(&agent);
	return 0;
}
