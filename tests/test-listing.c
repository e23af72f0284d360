/* SPDX-License-Identifier: MIT */
/*
 * Listing what came: luo_incoming_sessions(), luo_session_tokens() and the
 * names given with luo_session_preserve_fd_named(), across a real exec of
 * this binary (the path /proc/self/exe links to).
 *
 * The first image checks the refusals (bad names preserve nothing), lists
 * its outgoing tokens and names, and updates. The second knows no token in
 * advance: it lists the sessions, retrieves each by the listed name, lists
 * its tokens, finds the fds by name (a duplicate name gives the first),
 * reads the data through them, and checks that nothing is left unlisted.
 */

#include <fcntl.h>
#include <sys/mman.h>

#include "luo/luo.h"
#include "test-util.h"

#define LONG_NAME "a-name-of-sixty-three-bytes-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static int memfd_with(const char *text)
{
	int fd = memfd_create("listing", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	CHECK(fd >= 0);
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	return fd;
}

static void preserve(struct luo_session *s, uint64_t token, const char *name, const char *text)
{
	int fd = memfd_with(text);

	CHECK_OK(luo_session_preserve_fd_named(s, fd, token, name));
	close(fd);
}

static void check_text(int fd, const char *text)
{
	char buf[64] = "";

	CHECK(pread(fd, buf, sizeof(buf) - 1, 0) == (ssize_t)strlen(text));
	CHECK(strcmp(buf, text) == 0);
}

static void first(struct luo *luo, int fds_at_start)
{
	static const char *const bad[] = { "", "two words", "tab\there", "caf\xc3\xa9", "del\x7f", LONG_NAME "x" };
	struct luo_session *web, *admin;
	char self[4096], fds[16], name[LUO_FILE_NAME_MAX + 1], small[4];
	char *argv[] = { "test-listing", fds, NULL };
	uint64_t tokens[8], tok;
	size_t n = 99;
	ssize_t len;
	int fd;

	CHECK_EQ(strlen(LONG_NAME), LUO_FILE_NAME_MAX);
	CHECK_OK(luo_incoming_sessions(luo, NULL, 0, &n));
	CHECK_EQ(n, 0);
	CHECK_ERR(luo_incoming_sessions(luo, NULL, 1, &n), EINVAL);
	CHECK_ERR(luo_incoming_sessions(NULL, NULL, 0, &n), EINVAL);

	CHECK_OK(luo_session_create(luo, "web", &web));
	CHECK_OK(luo_session_create(luo, "admin", &admin));
	fd = memfd_with("refused");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_ERR(luo_session_preserve_fd_named(web, fd, 1, bad[i]), EINVAL);
	close(fd);
	CHECK_OK(luo_session_tokens(web, NULL, 0, &n));
	CHECK_EQ(n, 0); /* the refusals preserved nothing */

	preserve(web, 1, "http", "one");
	preserve(web, 2, "https", "two");
	preserve(web, 3, NULL, "three");
	preserve(web, 7, "http", "seven");
	preserve(admin, 9, LONG_NAME, "nine");

	/* The outgoing side lists too, in preserve order; too little room says how much. */
	CHECK_OK(luo_session_tokens(web, tokens, 2, &n));
	CHECK_EQ(n, 4);
	CHECK(tokens[0] == 1 && tokens[1] == 2);
	CHECK_OK(luo_session_tokens(web, tokens, 8, &n));
	CHECK(n == 4 && tokens[2] == 3 && tokens[3] == 7);
	CHECK_EQ(luo_session_fd_name(web, 2, name, sizeof(name)), 5);
	CHECK(strcmp(name, "https") == 0);
	CHECK_ERR(luo_session_fd_name(web, 2, small, sizeof(small)), ERANGE);
	CHECK_ERR(luo_session_fd_name(web, 3, name, sizeof(name)), ENODATA);
	CHECK_ERR(luo_session_fd_name(web, 4, name, sizeof(name)), ENOENT);
	CHECK_OK(luo_session_find_name(web, "http", &tok));
	CHECK_EQ(tok, 1);
	CHECK_ERR(luo_session_find_name(web, "nope", &tok), ENOENT);
	CHECK_ERR(luo_session_find_name(web, "", &tok), EINVAL);
	/* Unpreserving drops the name with the file. */
	CHECK_OK(luo_session_unpreserve_fd(web, 1));
	CHECK_OK(luo_session_find_name(web, "http", &tok));
	CHECK_EQ(tok, 7);
	preserve(web, 1, "http", "one");

	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	CHECK(len > 0);
	self[len] = '\0';
	snprintf(fds, sizeof(fds), "%d", fds_at_start);
	fflush(NULL);
	fprintf(stderr, "luo_update: %s\n", strerror(-luo_update(luo, self, argv, NULL)));
	exit(1);
}

static void second(struct luo *luo, int fds_at_start)
{
	const char *names[4];
	char name[LUO_FILE_NAME_MAX + 1];
	uint64_t tokens[8], tok;
	struct luo_session *s;
	size_t n = 0, nt = 0;
	int fd;

	CHECK(luo_is_incoming(luo));
	CHECK_OK(luo_incoming_sessions(luo, names, 1, &n));
	CHECK_EQ(n, 2); /* more than the room given */
	CHECK_OK(luo_incoming_sessions(luo, names, 4, &n));
	CHECK_EQ(n, 2);
	CHECK(strcmp(names[0], "web") == 0 && strcmp(names[1], "admin") == 0);

	/* web: tokens in the order the old image preserved them (1 went last). */
	CHECK_OK(luo_session_retrieve(luo, names[0], &s));
	CHECK_OK(luo_session_tokens(s, tokens, 8, &nt));
	CHECK(nt == 4 && tokens[0] == 2 && tokens[1] == 3 && tokens[2] == 7 && tokens[3] == 1);
	CHECK_ERR(luo_session_fd_name(s, 3, name, sizeof(name)), ENODATA);
	CHECK_EQ(luo_session_fd_name(s, 7, name, sizeof(name)), 4);
	CHECK(strcmp(name, "http") == 0);
	CHECK_OK(luo_session_find_name(s, "https", &tok));
	CHECK_OK(luo_session_retrieve_fd(s, tok, &fd));
	check_text(fd, "two");
	close(fd);
	CHECK_OK(luo_session_find_name(s, "http", &tok)); /* the first of two */
	CHECK_EQ(tok, 7);
	CHECK_OK(luo_session_retrieve_fd(s, tok, &fd));
	check_text(fd, "seven");
	close(fd);
	CHECK_OK(luo_session_finish(s));
	CHECK_OK(luo_session_tokens(s, tokens, 8, &nt));
	CHECK_EQ(nt, 0); /* finished: nothing held */
	luo_session_close(s);

	/* The list follows the handle: one session left. */
	CHECK_OK(luo_incoming_sessions(luo, names, 4, &n));
	CHECK(n == 1 && strcmp(names[0], "admin") == 0);
	CHECK_OK(luo_session_retrieve(luo, names[0], &s));
	CHECK_OK(luo_session_tokens(s, tokens, 8, &nt));
	CHECK(nt == 1 && tokens[0] == 9);
	CHECK_EQ(luo_session_fd_name(s, 9, name, sizeof(name)), LUO_FILE_NAME_MAX);
	CHECK(strcmp(name, LONG_NAME) == 0);
	CHECK_OK(luo_session_retrieve_fd(s, 9, &fd));
	check_text(fd, "nine");
	close(fd);
	luo_session_close(s);

	CHECK_OK(luo_ready(luo));
	luo_close(luo);
	check_no_fd_leak_from(fds_at_start);
	printf("ok - 2 sessions and 5 named or unnamed fds listed, found by name, read across the exec\n");
}

int main(int argc, char **argv)
{
	struct luo *luo;

	if (argc < 2)
		test_begin();
	CHECK_OK(luo_open(0, &luo));
	if (argc < 2)
		first(luo, test_fds_at_start);
	second(luo, atoi(argv[1]));
	return 0;
}
