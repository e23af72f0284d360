/* SPDX-License-Identifier: MIT */
/*
 * DOC: test-secure-env, a forged handover must not become an exec
 *
 * The attack (issue 13, finding 1): a setuid-root program that only calls
 * luo_open() is run by an unprivileged user with LUO_HANDOVER_FD naming a
 * blob of the user's making, refused after its producer fields; the
 * rollback then exec'd the blob's producer-path, with its argv, as root.
 *
 * The "marker program" is the system shell: every blob here names it as
 * its producer with argv "sh -c 'echo ran > MARKER'". A blob refused with
 * liveupdate-number 0 (after the producer fields are read) is handed to
 * luo_open() in a child; the marker tells whether the shell ran.
 *
 *   control        the shell's real build-id, an ordinary process: the
 *                  rollback runs (the marker appears). Proves the blob and
 *                  the marker work, so that the two cases below can fail.
 *   empty-build-id the same blob with an empty build-id: no rollback (the
 *                  path alone must never choose what runs); luo_open()
 *                  returns, the reason says why.
 *   setuid         (root only) a setuid-root copy of this binary, run as
 *                  uid 65534 through setpriv, so AT_SECURE is set: the
 *                  blob with the shell's real build-id is not even read
 *                  (a fresh start, no incoming error, the variable gone
 *                  from the environment), the shell never runs.
 *   setuid-agent   (root only) the same copy with LUO_AGENT_SOCKET naming
 *                  a socket of the test's: luo_open(LUO_OPEN_AGENT) never
 *                  connects there.
 *
 * Skipped (77) as a whole if the shell has no build-id; the setuid cases
 * are skipped with a message when not root or when the copy does not get
 * AT_SECURE (a nosuid mount).
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libfdt.h>

#include "luo/abi.h"
#include "luo/agent.h"
#include "luo/luo.h"
#include "manifest.h"
#include "test-util.h"

#define SECURE_CHILD "--secure-child"
#define NOBODY "65534"
#define CHILD_RETURNED 42

static char shell[PATH_MAX];
static uint8_t shell_id[LUO_ABI_BUILD_ID_MAX];
static size_t shell_id_len;
static char dir[] = "/tmp/luo-secure-env.XXXXXX";
static char marker[PATH_MAX];

/* A blob naming the shell as producer, refused (liveupdate-number 0). */
static int blob_memfd(const uint8_t *id, size_t id_len)
{
	char argv[PATH_MAX + 64];
	size_t alen;
	char buf[8192];
	int fd;

	alen = (size_t)snprintf(argv, sizeof(argv), "sh%c-c%cecho ran > %s", 0, 0, marker) + 1;
	CHECK(alen < sizeof(argv));
	CHECK_EQ(fdt_create(buf, sizeof(buf)), 0);
	CHECK_EQ(fdt_finish_reservemap(buf), 0);
	CHECK_EQ(fdt_begin_node(buf, ""), 0);
	CHECK_EQ(fdt_property_string(buf, LUO_ABI_PROP_COMPATIBLE, LUO_ABI_COMPATIBLE), 0);
	CHECK_EQ(fdt_property_u32(buf, LUO_ABI_PROP_FORMAT, LUO_ABI_FORMAT_VERSION), 0);
	CHECK_EQ(fdt_property_u64(buf, LUO_ABI_PROP_LU_NUMBER, 0), 0);
	CHECK_EQ(fdt_property_string(buf, LUO_ABI_PROP_PRODUCER_PATH, shell), 0);
	CHECK_EQ(fdt_property(buf, LUO_ABI_PROP_PRODUCER_BUILD_ID, id, (int)id_len), 0);
	CHECK_EQ(fdt_property(buf, LUO_ABI_PROP_PRODUCER_ARGV, argv, (int)alen), 0);
	CHECK_EQ(fdt_property_u64(buf, LUO_ABI_PROP_FREEZE_NS, 1000), 0);
	CHECK_EQ(fdt_property_u64(buf, LUO_ABI_PROP_SERIALIZE_NS, 2000), 0);
	CHECK_EQ(fdt_begin_node(buf, LUO_ABI_NODE_SESSIONS), 0);
	CHECK_EQ(fdt_end_node(buf), 0);
	CHECK_EQ(fdt_end_node(buf), 0);
	CHECK_EQ(fdt_finish(buf), 0);

	/* Not close-on-exec: it must reach the setuid child through setpriv. */
	fd = memfd_create("forged-handover", MFD_ALLOW_SEALING);
	CHECK(fd >= 3);
	CHECK_EQ(write(fd, buf, fdt_totalsize(buf)), (ssize_t)fdt_totalsize(buf));
	CHECK_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), 0);
	return fd;
}

static bool marker_exists(void)
{
	return access(marker, F_OK) == 0;
}

static int wait_child(pid_t pid)
{
	int st;

	CHECK_EQ(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* luo_open() in a child with the blob in @fd: its exit code (42 if it returned). */
static int open_in_child(int fd, char *reason, size_t rlen)
{
	int pipefd[2];
	pid_t pid;
	ssize_t n;

	CHECK_EQ(pipe2(pipefd, O_CLOEXEC), 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		char num[16];
		const char *why = "";
		struct luo *luo = NULL;

		snprintf(num, sizeof(num), "%d", fd);
		setenv(LUO_HANDOVER_FD_ENV, num, 1);
		if (luo_open(LUO_OPEN_FRESH_ON_ERROR, &luo) < 0)
			_exit(1);
		luo_incoming_error(luo, &why);
		if (write(pipefd[1], why, strlen(why)) < 0)
			_exit(1);
		luo_close(luo);
		_exit(CHILD_RETURNED);
	}
	close(pipefd[1]);
	n = read(pipefd[0], reason, rlen - 1);
	reason[n > 0 ? n : 0] = '\0';
	close(pipefd[0]);
	return wait_child(pid);
}

static void case_control(void)
{
	char reason[1024];
	int fd = blob_memfd(shell_id, shell_id_len);
	int code = open_in_child(fd, reason, sizeof(reason));

	close(fd);
	if (!marker_exists() || code == CHILD_RETURNED) {
		fprintf(stderr, "control: the rollback to %s did not run (exit %d, '%s'): the test proves nothing\n",
			shell, code, reason);
		exit(1);
	}
	CHECK_EQ(unlink(marker), 0);
	printf("ok - control: a refused blob with %s's build-id rolls back to it (the marker appeared)\n", shell);
}

static void case_empty_build_id(void)
{
	char reason[1024];
	int fd = blob_memfd(NULL, 0);
	int code = open_in_child(fd, reason, sizeof(reason));

	close(fd);
	if (marker_exists()) {
		fprintf(stderr, "empty-build-id: %s was exec'd by the rollback\n", shell);
		exit(1);
	}
	CHECK_EQ(code, CHILD_RETURNED);
	if (!strstr(reason, "no rollback: the handover records no build-id")) {
		fprintf(stderr, "empty-build-id: the reason does not say why: '%s'\n", reason);
		exit(1);
	}
	printf("ok - empty-build-id: no rollback, luo_open() returned: %s\n", reason);
}

/* Run the setuid copy as uid 65534 with @env set (NAME=VALUE): its exit code. */
static int run_setuid(const char *copy, const char *env)
{
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (pid == 0) {
		putenv((char *)env);
		execl("/usr/bin/setpriv", "setpriv", "--reuid=" NOBODY, "--regid=" NOBODY, "--clear-groups", copy,
		      SECURE_CHILD, (char *)NULL);
		_exit(127);
	}
	return wait_child(pid);
}

/* A setuid-root copy of this binary, in a directory uid 65534 can enter. */
static bool make_setuid_copy(const char *self, char *copy, size_t len)
{
	char buf[65536];
	ssize_t n;
	int in, out;

	snprintf(copy, len, "%s/setuid-copy", dir);
	/* argv[0], not /proc/self/exe: under valgrind that is valgrind's tool. */
	in = open(self, O_RDONLY | O_CLOEXEC);
	CHECK(in >= 0);
	out = open(copy, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
	CHECK(out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		CHECK_EQ(write(out, buf, (size_t)n), n);
	CHECK_EQ(n, 0);
	close(in);
	CHECK_EQ(fchown(out, 0, 0), 0);
	CHECK_EQ(fchmod(out, 04755), 0);
	close(out);
	return access("/usr/bin/setpriv", X_OK) == 0;
}

static void cases_setuid(const char *self)
{
	char copy[PATH_MAX], env[64], agent_env[PATH_MAX + 32];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, lfd, code;

	if (geteuid() != 0) {
		printf("ok - setuid: SKIP (not root: no setuid copy can be made)\n");
		return;
	}
	if (!make_setuid_copy(self, copy, sizeof(copy))) {
		printf("ok - setuid: SKIP (no /usr/bin/setpriv)\n");
		unlink(copy);
		return;
	}

	fd = blob_memfd(shell_id, shell_id_len);
	snprintf(env, sizeof(env), "%s=%d", LUO_HANDOVER_FD_ENV, fd);
	code = run_setuid(copy, env);
	close(fd);
	if (marker_exists()) {
		fprintf(stderr, "setuid: the forged handover's rollback ran %s as root\n", shell);
		exit(1);
	}
	if (code == 77) {
		printf("ok - setuid: SKIP (the copy did not get AT_SECURE: a nosuid mount?)\n");
		unlink(copy);
		return;
	}
	CHECK_EQ(code, 0);
	printf("ok - setuid: AT_SECURE, %s ignored: fresh start, nothing exec'd\n", LUO_HANDOVER_FD_ENV);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/agent.sock", dir);
	lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	CHECK(lfd >= 0);
	CHECK_EQ(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	CHECK_EQ(chmod(sa.sun_path, 0777), 0);
	CHECK_EQ(listen(lfd, 8), 0);
	snprintf(agent_env, sizeof(agent_env), "%s=%s", LUO_AGENT_SOCKET_ENV, sa.sun_path);
	code = run_setuid(copy, agent_env);
	CHECK_EQ(code, 0);
	if (accept4(lfd, NULL, NULL, SOCK_CLOEXEC) >= 0 || errno != EAGAIN) {
		fprintf(stderr, "setuid-agent: the secure image connected to %s named by the user\n", sa.sun_path);
		exit(1);
	}
	close(lfd);
	unlink(sa.sun_path);
	unlink(copy);
	printf("ok - setuid-agent: AT_SECURE, %s ignored: no connection to the user's socket\n",
	       LUO_AGENT_SOCKET_ENV);
}

/* In the setuid copy, as uid 65534 with euid 0: 0 if every variable was ignored. */
static int secure_child(void)
{
	const char *why = NULL;
	struct luo *luo = NULL;
	int r;

	if (getauxval(AT_SECURE) == 0 || geteuid() != 0)
		return 77;
	r = luo_open(LUO_OPEN_AGENT, &luo);
	if (r < 0) {
		fprintf(stderr, "secure child: luo_open: %s\n", strerror(-r));
		return 1;
	}
	if (luo_is_incoming(luo) || luo_incoming_error(luo, &why) != 0) {
		fprintf(stderr, "secure child: the handover was looked at: '%s'\n", why);
		return 1;
	}
	if (getenv(LUO_HANDOVER_FD_ENV)) {
		fprintf(stderr, "secure child: %s left for children\n", LUO_HANDOVER_FD_ENV);
		return 1;
	}
	luo_close(luo);
	return 0;
}

int main(int argc, char **argv)
{
	int sh;

	if (argc == 2 && strcmp(argv[1], SECURE_CHILD) == 0)
		return secure_child();
	test_begin();
	if (!realpath("/bin/sh", shell)) {
		printf("SKIP: no /bin/sh\n");
		return 77;
	}
	sh = open(shell, O_RDONLY | O_CLOEXEC);
	CHECK(sh >= 0);
	if (luo_elf_build_id_fd(sh, shell_id, sizeof(shell_id), &shell_id_len) < 0 || shell_id_len == 0) {
		close(sh);
		printf("SKIP: %s has no build-id\n", shell);
		return 77;
	}
	close(sh);
	CHECK(mkdtemp(dir));
	CHECK_EQ(chmod(dir, 0755), 0);
	snprintf(marker, sizeof(marker), "%s/marker", dir);

	case_control();
	case_empty_build_id();
	cases_setuid(argv[0]);

	unlink(marker);
	CHECK_EQ(rmdir(dir), 0);
	check_no_fd_leak();
	printf("all ok\n");
	return 0;
}
