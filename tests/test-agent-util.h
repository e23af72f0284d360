/* SPDX-License-Identifier: MIT */
#ifndef LUO_TEST_AGENT_UTIL_H
#define LUO_TEST_AGENT_UTIL_H

/*
 * DOC: a private luod for a test or a benchmark
 *
 * agent_start() makes a scratch directory, points LUO_AGENT_SOCKET at a
 * socket inside it (children inherit the variable) and runs the given
 * luod binary there, waiting (polling, at most AGENT_START_TIMEOUT_MS)
 * until the socket accepts a connection. agent_stop() ends it with
 * SIGTERM (SIGKILL after AGENT_STOP_TIMEOUT_MS), reaps it and removes the
 * directory. An agent left running by a failed test dies with its parent
 * (PR_SET_PDEATHSIG), and its directory is removed at exit (atexit(), in
 * the process that started it only).
 */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define AGENT_START_TIMEOUT_MS 10000
#define AGENT_STOP_TIMEOUT_MS 5000

struct test_agent {
	pid_t pid;
	char dir[64];
	char sock[100]; /* fits sun_path */
};

static inline void agent_sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static inline int agent_probe(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), r;

	if (fd < 0)
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	return r;
}

static struct test_agent *agent_started;
static pid_t agent_starter;

static inline void agent_cleanup_at_exit(void)
{
	if (agent_started && getpid() == agent_starter) {
		unlink(agent_started->sock);
		rmdir(agent_started->dir);
	}
}

/* Run @luod on a socket in a new scratch directory; exits the test on failure. */
static inline void agent_start(struct test_agent *a, const char *luod)
{
	pid_t parent = getpid();

	snprintf(a->dir, sizeof(a->dir), "/tmp/luo-agent-test.XXXXXX");
	if (!mkdtemp(a->dir)) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(a->sock, sizeof(a->sock), "%s/agent.sock", a->dir);
	agent_started = a;
	agent_starter = parent;
	atexit(agent_cleanup_at_exit);
	setenv("LUO_AGENT_SOCKET", a->sock, 1);
	a->pid = fork();
	if (a->pid < 0) {
		perror("fork");
		exit(1);
	}
	if (a->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		execl(luod, luod, (char *)NULL);
		perror(luod);
		_exit(127);
	}
	for (int waited = 0; agent_probe(a->sock) < 0; waited += 10) {
		int status;

		if (waited >= AGENT_START_TIMEOUT_MS || waitpid(a->pid, &status, WNOHANG) == a->pid) {
			fprintf(stderr, "%s did not start listening on %s\n", luod, a->sock);
			exit(1);
		}
		agent_sleep_ms(10);
	}
}

static inline void agent_stop(struct test_agent *a)
{
	int status;

	if (a->pid <= 0)
		return;
	kill(a->pid, SIGTERM);
	for (int waited = 0; waitpid(a->pid, &status, WNOHANG) == 0; waited += 10) {
		if (waited >= AGENT_STOP_TIMEOUT_MS) {
			kill(a->pid, SIGKILL);
			waitpid(a->pid, &status, 0);
			break;
		}
		agent_sleep_ms(10);
	}
	a->pid = 0;
	unlink(a->sock);
	rmdir(a->dir);
}

#endif /* LUO_TEST_AGENT_UTIL_H */
