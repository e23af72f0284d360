/* SPDX-License-Identifier: MIT */
/*
 * luo_update() that cannot switch leaves the old image serving, its state
 * intact: a path that does not exist, is not executable, is a directory,
 * or is executable but not a program (execve() itself fails after freeze
 * and serialization); and a handler whose freeze fails, which must unfreeze
 * the files already frozen, in reverse order. After all that, a real update
 * to the second binary (this file built with -DLUO_TEST_NEXT_IMAGE) still
 * carries the state over.
 */

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "luo/luo.h"
#include "test-util.h"

#define PAYLOAD "state that must survive failed updates"

/*
 * A handler for pipes' write ends only (O_WRONLY pipes), that can be told to
 * fail its freeze, and logs the order of freeze / unfreeze calls.
 */
static bool fail_freeze_of_token[8];
static char call_log[256];

static void log_call(const char *what, uint64_t token)
{
	size_t n = strlen(call_log);

	snprintf(call_log + n, sizeof(call_log) - n, "%s%llu ", what, (unsigned long long)token);
}

static bool wpipe_can_preserve(int fd)
{
	struct stat st;
	int fl = fcntl(fd, F_GETFL);

	return fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) && fl >= 0 && (fl & O_ACCMODE) == O_WRONLY;
}

static int wpipe_preserve(struct luo_file *f)
{
	memset(luo_file_data(f), 0x5a, 8);
	return 0;
}

static void wpipe_unpreserve(struct luo_file *f)
{
	(void)f;
}

static int wpipe_freeze(struct luo_file *f)
{
	uint64_t t = luo_file_token(f);

	log_call("F", t);
	return t < 8 && fail_freeze_of_token[t] ? -EIO : 0;
}

static void wpipe_unfreeze(struct luo_file *f)
{
	log_call("U", luo_file_token(f));
}

static int wpipe_retrieve(struct luo_file *f)
{
	static const uint8_t want[8] = { 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a };

	return memcmp(luo_file_data(f), want, 8) == 0 && wpipe_can_preserve(luo_file_fd(f)) ? 0 : -EBADFD;
}

static void wpipe_finish(struct luo_file *f, bool retrieved)
{
	(void)f;
	(void)retrieved;
}

static const struct luo_file_ops wpipe_ops = {
	.can_preserve = wpipe_can_preserve,
	.preserve = wpipe_preserve,
	.unpreserve = wpipe_unpreserve,
	.freeze = wpipe_freeze,
	.unfreeze = wpipe_unfreeze,
	.retrieve = wpipe_retrieve,
	.finish = wpipe_finish,
};

/* Declared in the manifest, so the old image's negotiation finds it here. */
LUO_FILE_HANDLER_DECLARE(wpipe_handler, "test-wpipe", 1, 8, &wpipe_ops);

#ifndef LUO_TEST_NEXT_IMAGE

/*
 * A copy of @from whose manifest is intact but whose ELF interpreter does
 * not exist: negotiation passes, execve() fails with ENOENT.
 */
static void copy_with_bad_interpreter(const char *from, const char *to)
{
	static char buf[16 << 20];
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)buf;
	ssize_t n;
	int in, out;
	bool patched = false;

	in = open(from, O_RDONLY | O_CLOEXEC);
	CHECK(in >= 0);
	n = read(in, buf, sizeof(buf));
	close(in);
	CHECK(n > (ssize_t)sizeof(*eh) && n < (ssize_t)sizeof(buf));
	for (int i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = (const Elf64_Phdr *)(buf + eh->e_phoff + (size_t)i * eh->e_phentsize);

		if (ph->p_type == PT_INTERP && ph->p_filesz >= 2 && ph->p_offset + ph->p_filesz <= (size_t)n) {
			buf[ph->p_offset + ph->p_filesz - 2] = 'X'; /* ...so.2 -> ...so.X */
			patched = true;
		}
	}
	CHECK(patched);
	out = open(to, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0755);
	CHECK(out >= 0);
	CHECK_EQ(write(out, buf, (size_t)n), n);
	close(out);
}

static void check_still_serving(struct luo *luo, int memfd_copy, int fds_before)
{
	char buf[sizeof(PAYLOAD)] = { 0 };
	struct luo_session *s;

	/* Same fds as before the attempt: the blob memfd was closed. */
	CHECK_EQ(count_open_fds(), fds_before);
	CHECK_EQ(pread(memfd_copy, buf, sizeof(buf), 0), sizeof(buf));
	CHECK(strcmp(buf, PAYLOAD) == 0);
	/* The handle still works: sessions can be created and dropped. */
	CHECK_OK(luo_session_create(luo, "probe", &s));
	luo_session_close(s);
	CHECK_EQ(luo_liveupdate_number(luo), 0);
}

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

static char inheritable_before[1024];

static void check_cloexec_as_before(void)
{
	char now[sizeof(inheritable_before)];

	inheritable_fds(now, sizeof(now));
	if (strcmp(now, inheritable_before) != 0) {
		fprintf(stderr, "fds without close-on-exec: before '%s', now '%s'\n", inheritable_before, now);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	char dir_template[] = "/tmp/luo-test-XXXXXX";
	char notexec[300], garbage[300], badinterp[4096];
	char *nargv[] = { argv[1], NULL };
	struct luo *luo;
	struct luo_session *s;
	int memfd, p[2], q[2], fds, fd;

	CHECK(argc == 2);
	test_begin();
	unsetenv(LUO_HANDOVER_FD_ENV);
	CHECK_OK(luo_file_handler_register(&wpipe_handler));
	CHECK_OK(luo_open(0, &luo));

	memfd = memfd_create("state", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	CHECK(memfd >= 0);
	CHECK_EQ(write(memfd, PAYLOAD, sizeof(PAYLOAD)), sizeof(PAYLOAD));
	CHECK_OK(luo_session_create(luo, "keep", &s));
	CHECK_OK(luo_session_preserve_fd(s, memfd, 1));
	CHECK(pipe2(p, O_CLOEXEC) == 0 && pipe2(q, O_CLOEXEC) == 0);
	CHECK_OK(luo_session_preserve_fd(s, p[1], 2));
	CHECK_OK(luo_session_preserve_fd(s, q[1], 3));
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
	fds = count_open_fds();
	inheritable_fds(inheritable_before, sizeof(inheritable_before));

	/* Paths that are refused before anything is frozen. */
	CHECK_ERR(luo_update(luo, "/nonexistent/luo-next", nargv, NULL), ENOENT);
	CHECK(mkdtemp(dir_template));
	CHECK_ERR(luo_update(luo, dir_template, nargv, NULL), EACCES);
	snprintf(notexec, sizeof(notexec), "%s/notexec", dir_template);
	fd = open(notexec, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	close(fd);
	CHECK_ERR(luo_update(luo, notexec, nargv, NULL), EACCES); /* no x bit: even root */
	CHECK_ERR(luo_update(luo, NULL, nargv, NULL), EINVAL);
	CHECK_ERR(luo_update(luo, argv[1], NULL, NULL), EINVAL);
	check_still_serving(luo, memfd, fds);
	printf("ok - missing, directory and non-executable paths refused before the switch\n");

	/* Not an ELF binary: no manifest to negotiate with, nothing frozen. */
	snprintf(garbage, sizeof(garbage), "%s/garbage", dir_template);
	fd = open(garbage, O_CREAT | O_WRONLY | O_CLOEXEC, 0755);
	CHECK(fd >= 0);
	CHECK_EQ(write(fd, "\x01\x02\x03\x04not a program", 17), 17);
	close(fd);
	call_log[0] = '\0';
	CHECK_ERR(luo_update(luo, garbage, nargv, NULL), ENOEXEC);
	CHECK(strcmp(call_log, "") == 0);
	check_still_serving(luo, memfd, fds);
	printf("ok - a file with no manifest refused before anything is frozen\n");

	/* execve() itself fails: after freeze and serialization. */
	/* Beside the next image: its RUNPATH ($ORIGIN/...) must still find libluo. */
	snprintf(badinterp, sizeof(badinterp), "%s-bad-interp", argv[1]);
	copy_with_bad_interpreter(argv[1], badinterp);
	call_log[0] = '\0';
	CHECK_ERR(luo_update(luo, badinterp, nargv, NULL), ENOENT);
	CHECK(strcmp(call_log, "F2 F3 U3 U2 ") == 0);
	check_still_serving(luo, memfd, fds);
	check_cloexec_as_before();
	printf("ok - execve failure: unfrozen (%s), close-on-exec restored, blob closed\n", call_log);

	/* A freeze that fails: the ones frozen before are unfrozen, last first. */
	call_log[0] = '\0';
	fail_freeze_of_token[3] = true;
	CHECK_ERR(luo_update(luo, argv[1], nargv, NULL), EIO);
	CHECK(strcmp(call_log, "F2 F3 U2 ") == 0);
	fail_freeze_of_token[3] = false;
	check_still_serving(luo, memfd, fds);
	check_cloexec_as_before();
	printf("ok - failed freeze unwound (%s)\n", call_log);

	/* After clearenv() environ is NULL: an empty environment, not a crash. */
	{
		extern char **environ;
		char **saved = environ;

		environ = NULL;
		CHECK_ERR(luo_update(luo, garbage, nargv, NULL), ENOEXEC);
		environ = saved;
		check_still_serving(luo, memfd, fds);
		printf("ok - a NULL environ is an empty environment\n");
	}

	unlink(notexec);
	unlink(garbage);
	unlink(badinterp);
	rmdir(dir_template);
	close(memfd);

	/* And the update still works. */
	fflush(NULL); /* execve() drops what stdio still buffers */
	CHECK_OK(luo_update(luo, argv[1], nargv, NULL));
	return 1;
}

#else

int main(void)
{
	struct luo *luo;
	struct luo_session *s;
	char buf[sizeof(PAYLOAD)] = { 0 };
	int fd;

	test_begin();
	CHECK_OK(luo_file_handler_register(&wpipe_handler));
	CHECK_OK(luo_open(0, &luo));
	CHECK(luo_is_incoming(luo));
	CHECK_EQ(luo_liveupdate_number(luo), 1);
	CHECK_OK(luo_session_retrieve(luo, "keep", &s));
	CHECK_OK(luo_session_retrieve_fd(s, 1, &fd));
	CHECK_EQ(pread(fd, buf, sizeof(buf), 0), sizeof(buf));
	CHECK(strcmp(buf, PAYLOAD) == 0);
	close(fd);
	CHECK_OK(luo_session_retrieve_fd(s, 2, &fd));
	CHECK_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_WRONLY);
	close(fd);
	luo_session_close(s);
	luo_close(luo);
	CHECK_OK(luo_file_handler_unregister(&wpipe_handler));
	/* Only the fds the first image started with remain. */
	check_no_fd_leak_from(test_fds_at_start - 4);
	printf("ok - after the failed attempts, the update carried the state over\n");
	return 0;
}

#endif
