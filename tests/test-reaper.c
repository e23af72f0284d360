/* SPDX-License-Identifier: MIT */
/*
 * The mm reaper of luo_update() (update.c), from the new image's side. The
 * binary execs itself (the path /proc/self/exe links to); argv says what to check:
 *
 *   pipe FDS_AT_START [INODE]
 *       The first image makes a pipe, both ends close-on-exec, preserves
 *       the read end only, maps and touches 64 MiB (a teardown worth
 *       deferring), pins itself to one CPU (so a child is not run before
 *       the parent blocks) and updates. The new image's main(), first
 *       thing, finds the inherited read end in /proc/self/fd: it must
 *       see EOF at once (POLLHUP with a zero timeout, read() == 0),
 *       since no copy of the old fd table may hold the write end then.
 *   zombies FDS_AT_START
 *       20 updates in a row, each image updating as soon as luo_open()
 *       returns, the last one closing the handle at once. Then, once the
 *       reapers had time to finish (1 s), no process anywhere in /proc
 *       is a child of this one: no zombie, nothing left running.
 *
 *   fork FDS_AT_START
 *       The first image makes itself a child subreaper and updates; its
 *       component's save() -- inside the update, after the reaper started
 *       -- forks a child that sleeps 20 s with every fd it inherited. The
 *       new image must see the reaper (reparented to it) exit within 3 s:
 *       the child must not hold the pipe that tells the reaper the exec
 *       happened, or the old address space would live as long as it.
 *
 * Run with LUO_NO_REAPER=1 too: the same must hold without a reaper.
 * Each ends checking that no fd leaked across the images.
 */

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "luo/luo.h"
#include "test-util.h"

#define UPDATES 20
#define BALLAST (64u << 20)
#define TOKEN_PIPE 1

/* fork mode: save() forks a sleeper; its pid crosses as the component's payload. */
static bool fork_in_save;
static pid_t sleeper = -1;

static int save_pid(uint32_t version, struct luo_payload *out)
{
	int32_t pid = -1;

	(void)version;
	if (fork_in_save) {
		pid = fork();
		if (pid == 0) {
			struct timespec t = { .tv_sec = 20 };

			nanosleep(&t, NULL);
			_exit(0);
		}
	}
	return luo_payload_write(out, &pid, sizeof(pid));
}

static int load_pid(uint32_t version, const void *data, size_t len)
{
	int32_t pid;

	(void)version;
	if (len != sizeof(pid))
		return -EPROTO;
	memcpy(&pid, data, sizeof(pid));
	sleeper = pid;
	return 0;
}

LUO_COMPONENT(reaper_test_component, "reaper-test", 1, 1, 1, 1, LUO_COMPONENT_OPTIONAL, save_pid, load_pid);

static void update_self(struct luo *luo, const char *mode, int fds_at_start, const char *extra)
{
	char fds[16], self[4096];
	char *argv[] = { "test-reaper", (char *)mode, fds, (char *)extra, NULL };
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1); /* not the link: valgrind runs us */
	int r;

	CHECK(n > 0);
	self[n] = '\0';
	snprintf(fds, sizeof(fds), "%d", fds_at_start);
	fflush(NULL);
	r = luo_update(luo, self, argv, NULL);
	fprintf(stderr, "luo_update: %s\n", strerror(-r));
	exit(1);
}

/* The fd whose /proc/self/fd link is "pipe:[@ino]", or -1. */
static int find_pipe(unsigned long ino)
{
	char want[64], path[300], link[64];
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int found = -1;

	CHECK(d);
	snprintf(want, sizeof(want), "pipe:[%lu]", ino);
	while ((e = readdir(d))) {
		ssize_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = '\0';
		if (strcmp(link, want) == 0)
			found = atoi(e->d_name);
	}
	closedir(d);
	return found;
}

/* How many processes in /proc have us as parent; @zombies: of them, in state Z. */
static int count_children(int *zombies)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	CHECK(d);
	*zombies = 0;
	while ((e = readdir(d))) {
		char path[300], buf[512], *p, state;
		int ppid;
		FILE *f;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
		fclose(f);
		if (!p || sscanf(p + 1, " %c %d", &state, &ppid) != 2 || ppid != getpid())
			continue;
		fprintf(stderr, "child: %s", buf);
		n++;
		if (state == 'Z')
			(*zombies)++;
	}
	closedir(d);
	return n;
}

static void pipe_first(struct luo *luo)
{
	struct luo_session *s;
	struct stat st;
	cpu_set_t one;
	char ino[32];
	int p[2];
	char *ballast;

	CHECK(pipe2(p, O_CLOEXEC) == 0);
	CHECK_OK(luo_session_create(luo, "reaper", &s));
	CHECK_OK(luo_session_preserve_fd(s, p[0], TOKEN_PIPE));
	CHECK(fstat(p[0], &st) == 0);
	close(p[0]);
	/* p[1] stays open, close-on-exec, unpreserved: execve() must close it. */
	ballast = mmap(NULL, BALLAST, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(ballast != MAP_FAILED);
	memset(ballast, 0x5a, BALLAST);
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &one);
	sched_setaffinity(0, sizeof(one), &one); /* best effort */
	snprintf(ino, sizeof(ino), "%lu", (unsigned long)st.st_ino);
	update_self(luo, "pipe", test_fds_at_start, ino);
}

static void pipe_next(int fds_at_start, unsigned long ino)
{
	struct pollfd pfd = { .fd = find_pipe(ino), .events = POLLIN };
	struct luo_session *s;
	struct luo *luo;
	char c;
	int fd;

	/* Before anything else in this image: the write end is gone everywhere. */
	CHECK(pfd.fd >= 0);
	CHECK_EQ(poll(&pfd, 1, 0), 1);
	CHECK(pfd.revents & POLLHUP);
	CHECK(fcntl(pfd.fd, F_SETFL, O_NONBLOCK) == 0);
	CHECK_EQ(read(pfd.fd, &c, 1), 0);
	CHECK_OK(luo_open(0, &luo));
	CHECK_OK(luo_session_retrieve(luo, "reaper", &s));
	CHECK_OK(luo_session_retrieve_fd(s, TOKEN_PIPE, &fd));
	CHECK_OK(luo_session_finish(s));
	luo_session_close(s);
	close(fd);
	CHECK_OK(luo_ready(luo));
	luo_close(luo);
	check_no_fd_leak_from(fds_at_start);
	printf("ok - pipe: EOF at once in the new image's main()\n");
}

static void zombies(struct luo *luo, int fds_at_start)
{
	struct timespec t = { .tv_sec = 1 };
	int n, z;

	if (luo_liveupdate_number(luo) < UPDATES)
		update_self(luo, "zombies", fds_at_start, NULL);
	luo_close(luo);
	nanosleep(&t, NULL);
	n = count_children(&z);
	CHECK_EQ(z, 0);
	CHECK_EQ(n, 0);
	check_no_fd_leak_from(fds_at_start);
	printf("ok - zombies: %d updates, then no child of ours in /proc\n", UPDATES);
}

static void fork_first(struct luo *luo)
{
	CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
	fork_in_save = true;
	update_self(luo, "fork", test_fds_at_start, NULL);
}

static void fork_next(struct luo *luo, int fds_at_start)
{
	bool no_reaper = getenv("LUO_NO_REAPER") && strcmp(getenv("LUO_NO_REAPER"), "0") != 0;
	struct timespec t = { .tv_nsec = 10 * 1000 * 1000 };
	pid_t reaped = 0;
	int st;

	CHECK(sleeper > 0);
	for (int i = 0; i < 300 && !no_reaper && reaped <= 0; i++) {
		pid_t pid = waitpid(-1, &st, WNOHANG | __WALL);

		CHECK(pid != sleeper); /* it sleeps 20 s */
		if (pid > 0)
			reaped = pid;
		else
			nanosleep(&t, NULL);
	}
	CHECK(no_reaper || reaped > 0);
	CHECK(kill(sleeper, SIGKILL) == 0);
	CHECK_EQ(waitpid(sleeper, &st, 0), sleeper);
	luo_close(luo);
	check_no_fd_leak_from(fds_at_start);
	if (no_reaper)
		printf("ok - fork: no reaper; the sleeper forked inside the update was there\n");
	else
		printf("ok - fork: the reaper (pid %d) exited while a child forked inside the update slept\n",
		       (int)reaped);
}

int main(int argc, char **argv)
{
	struct luo *luo;

	if (argc >= 4 && strcmp(argv[1], "pipe") == 0) {
		pipe_next(atoi(argv[2]), strtoul(argv[3], NULL, 10));
		return 0;
	}
	if (argc < 3) {
		test_begin();
		CHECK(argc == 2 && (strcmp(argv[1], "pipe") == 0 || strcmp(argv[1], "zombies") == 0 ||
				    strcmp(argv[1], "fork") == 0));
	}
	CHECK_OK(luo_open(0, &luo));
	if (strcmp(argv[1], "fork") == 0) {
		if (argc >= 3)
			fork_next(luo, atoi(argv[2]));
		else
			fork_first(luo);
		return 0;
	}
	if (strcmp(argv[1], "pipe") == 0)
		pipe_first(luo);
	zombies(luo, argc >= 3 ? atoi(argv[2]) : test_fds_at_start);
	return 0;
}
