/* SPDX-License-Identifier: MIT */
/*
 * User pointers and what a callback may call, across a real exec of this
 * binary (the path /proc/self/exe links to).
 *
 *   - A component declared with LUO_COMPONENT_WITH_DATA() gets its pointer
 *     in save() (old image, inside luo_update()) and in load() (new image,
 *     inside luo_open()); a plain LUO_COMPONENT() next to it still works.
 *   - Inside save(), with the handle in hand: every call that takes the
 *     handle's lock answers -EDEADLK (before, it hung), luo_open() and the
 *     registrations -EBUSY, luo_payload_write() and the arena calls work.
 *     Inside load(): luo_open() and the registrations -EBUSY. The same
 *     calls work again once the callback returned.
 *   - A handler registered with luo_file_handler_register_with_data()
 *     reads its pointer in its callbacks (luo_file_handler_data()).
 *   - Inside each of its callbacks (preserve, unpreserve, freeze in the
 *     old image; retrieve inside luo_open(), can_finish and finish in the
 *     new one) the same calls are refused (-EDEADLK, -EBUSY) and
 *     luo_close() / luo_session_close() do nothing; freeze() passes the
 *     count of such callbacks to retrieve() in the file's data.
 *   - luo_component_register_with_data() refuses base callbacks or missing
 *     ones (-EINVAL).
 */

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "luo/luo.h"
#include "test-util.h"

struct state {
	uint32_t magic;
	uint32_t counter;
	int saves, loads;
	int checks; /* refusals seen inside callbacks */
};

static struct state state = { .magic = 0x5eed };
static struct luo *the_luo;          /* the handle, as a program keeps it */
static struct luo_session *the_session;
static struct luo_arena *the_arena;

static int plain_save(uint32_t version, struct luo_payload *out)
{
	(void)version;
	return luo_payload_write(out, "plain", 5);
}

static int plain_load(uint32_t version, const void *data, size_t len)
{
	(void)version;
	return len == 5 && memcmp(data, "plain", 5) == 0 ? 0 : -EINVAL;
}

LUO_COMPONENT(plain_component, "test-plain", 1, 1, 1, 1, 0, plain_save, plain_load);

/* Everything a callback must be refused, or allowed, with the handle in hand. */
static void calls_in_save(void)
{
	const struct luo_report_entry *rep;
	struct luo_session *s;
	struct luo_timings t;
	const char *names[2];
	uint64_t tokens[2];
	char buf[8];
	size_t n;
	int fd;
	void *p;

	CHECK_ERR(luo_session_create(the_luo, "in-save", &s), EDEADLK);
	CHECK_ERR(luo_session_retrieve(the_luo, "in-save", &s), EDEADLK);
	CHECK_ERR(luo_session_preserve_fd(the_session, 0, 99), EDEADLK);
	CHECK_ERR(luo_session_preserve_fd_named(the_session, 0, 99, "x"), EDEADLK);
	CHECK_ERR(luo_session_unpreserve_fd(the_session, 1), EDEADLK);
	CHECK_ERR(luo_session_retrieve_fd(the_session, 1, &fd), EDEADLK);
	CHECK_ERR(luo_session_finish(the_session), EDEADLK);
	CHECK_ERR(luo_session_tokens(the_session, tokens, 2, &n), EDEADLK);
	CHECK_ERR(luo_session_fd_name(the_session, 1, buf, sizeof(buf)), EDEADLK);
	CHECK_ERR(luo_session_find_name(the_session, "x", &tokens[0]), EDEADLK);
	CHECK_ERR(luo_incoming_sessions(the_luo, names, 2, &n), EDEADLK);
	CHECK_ERR(luo_session_deposit(the_session, 0), EDEADLK);
	CHECK_ERR(luo_session_withdraw(the_luo, "x"), EDEADLK);
	CHECK_ERR(luo_update(the_luo, "/nonexistent", (char *[]){ "x", NULL }, NULL), EDEADLK);
	CHECK_ERR(luo_update_report(the_luo, &rep, &n), EDEADLK);
	CHECK_ERR(luo_ready(the_luo), EDEADLK);
	CHECK_ERR(luo_timings(the_luo, &t), EDEADLK);
	CHECK_ERR(luo_agent_error(the_luo, NULL), EDEADLK);
	CHECK_ERR(luo_control_listen(the_luo, &fd), EDEADLK);
	CHECK_ERR(luo_control_dispatch(the_luo), EDEADLK);
	CHECK_ERR(luo_control_set_quiesce(the_luo, NULL, NULL, NULL), EDEADLK);
	CHECK_ERR(luo_arena_retrieve(the_session, 1, &the_arena), EDEADLK);
	luo_session_close(the_session); /* does nothing here */
	luo_close(the_luo);             /* nor this */
	CHECK_ERR(luo_open(0, &the_luo), EBUSY);
	CHECK_ERR(luo_component_register(&plain_component), EBUSY);
	/* Allowed: the handle's read-only facts, the arena (its own lock). */
	CHECK_EQ(luo_liveupdate_number(the_luo), 0);
	CHECK(!luo_is_incoming(the_luo));
	CHECK(strcmp(luo_session_name(the_session), "cb") == 0);
	p = luo_arena_alloc(the_arena, 64);
	CHECK(p);
	CHECK_OK(luo_arena_set_root(the_arena, p));
	state.checks++;
}

static int data_save(uint32_t version, struct luo_payload *out, void *userdata)
{
	struct state *st = userdata;

	CHECK(st == &state && version == 2);
	st->saves++;
	calls_in_save();
	return luo_payload_write(out, &st->counter, sizeof(st->counter));
}

static int data_load(uint32_t version, const void *data, size_t len, void *userdata)
{
	struct state *st = userdata;
	struct luo *l;

	CHECK(st == &state && st->magic == 0x5eed && version == 2 && len == sizeof(st->counter));
	st->loads++;
	CHECK_ERR(luo_open(0, &l), EBUSY);
	CHECK_ERR(luo_component_register(&plain_component), EBUSY);
	st->checks++;
	memcpy(&st->counter, data, len);
	return 0;
}

LUO_COMPONENT_WITH_DATA(data_component, "test-with-data", 1, 2, 2, 2, 0, data_save, data_load, &state);

/* A handler for FIFOs that counts its calls in its user pointer. */
struct handler_counts {
	int preserves, retrieves;
	uint32_t refusals; /* callbacks whose calls were refused as documented */
};
static struct handler_counts counts;

static bool fifo_can_preserve(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

/*
 * Inside a handler's callback: every call that takes the handle's lock
 * answers -EDEADLK (before, it hung), luo_close() and luo_session_close()
 * do nothing, luo_open() and the registrations -EBUSY. Inside retrieve(),
 * luo_open() has not returned: there is no handle yet.
 */
static void calls_in_handler(void)
{
	struct luo_session *s;
	uint64_t token;
	size_t n;
	int fd;

	if (the_luo) {
		CHECK_ERR(luo_session_create(the_luo, "in-handler", &s), EDEADLK);
		CHECK_ERR(luo_session_retrieve(the_luo, "cb", &s), EDEADLK);
		CHECK_ERR(luo_ready(the_luo), EDEADLK);
		CHECK_ERR(luo_incoming_sessions(the_luo, NULL, 0, &n), EDEADLK);
		CHECK_ERR(luo_session_preserve_fd(the_session, 0, 99), EDEADLK);
		CHECK_ERR(luo_session_unpreserve_fd(the_session, 1), EDEADLK);
		CHECK_ERR(luo_session_retrieve_fd(the_session, 1, &fd), EDEADLK);
		CHECK_ERR(luo_session_finish(the_session), EDEADLK);
		CHECK_ERR(luo_session_tokens(the_session, NULL, 0, &n), EDEADLK);
		CHECK_ERR(luo_session_find_name(the_session, "x", &token), EDEADLK);
		CHECK_ERR(luo_update(the_luo, "/nonexistent", (char *[]){ "x", NULL }, NULL), EDEADLK);
		CHECK_ERR(luo_control_set_quiesce(the_luo, NULL, NULL, NULL), EDEADLK);
		luo_session_close(the_session); /* does nothing here */
		luo_close(the_luo);             /* nor this */
		CHECK(strcmp(luo_session_name(the_session), "cb") == 0); /* still there */
	}
	CHECK_ERR(luo_open(0, &the_luo), EBUSY);
	CHECK_ERR(luo_component_register(&plain_component), EBUSY);
	counts.refusals++;
}

static int fifo_preserve(struct luo_file *f)
{
	struct handler_counts *c = luo_file_handler_data(f);
	uint32_t zero = 0;

	CHECK(c == &counts);
	c->preserves++;
	calls_in_handler();
	memcpy(luo_file_data(f), &zero, sizeof(zero));
	return 0;
}

static void fifo_unpreserve(struct luo_file *f)
{
	(void)f;
	calls_in_handler();
}

/* In luo_update(): records the refusals seen so far for retrieve() to check. */
static int fifo_freeze(struct luo_file *f)
{
	calls_in_handler();
	memcpy(luo_file_data(f), &counts.refusals, sizeof(counts.refusals));
	return 0;
}

static int fifo_retrieve(struct luo_file *f)
{
	struct handler_counts *c = luo_file_handler_data(f);
	uint32_t seen;

	CHECK(c == &counts);
	c->retrieves++;
	CHECK(!the_luo); /* inside luo_open() */
	calls_in_handler();
	/* The old image's preserve(), preserve() + unpreserve() of token 3, freeze(). */
	memcpy(&seen, luo_file_data(f), sizeof(seen));
	CHECK_EQ(seen, 4);
	return fifo_can_preserve(luo_file_fd(f)) ? 0 : -EBADFD;
}

static bool fifo_can_finish(struct luo_file *f)
{
	(void)f;
	calls_in_handler();
	return true;
}

static void fifo_finish(struct luo_file *f, bool retrieved)
{
	(void)f;
	CHECK(retrieved);
	calls_in_handler();
}

static const struct luo_file_ops fifo_ops = {
	.can_preserve = fifo_can_preserve,
	.preserve = fifo_preserve,
	.unpreserve = fifo_unpreserve,
	.freeze = fifo_freeze,
	.retrieve = fifo_retrieve,
	.can_finish = fifo_can_finish,
	.finish = fifo_finish,
};
LUO_FILE_HANDLER_DECLARE(fifo_handler, "test-fifo", 1, sizeof(uint32_t), &fifo_ops);

/* In a child: a refused registration is remembered by the process and fails its luo_open(). */
static void registration_refusals(void)
{
	pid_t pid = fork();
	int st;

	CHECK(pid >= 0);
	if (pid == 0) {
		struct luo_component_with_data bad = {
			{ "test-bad", 1, 1, 1, 1, 0, plain_save, NULL }, data_save, data_load, NULL,
		};
		struct luo *l;

		CHECK_ERR(luo_component_register_with_data(&bad), EINVAL); /* a base callback */
		bad.base.save = NULL;
		bad.load = NULL;
		CHECK_ERR(luo_component_register_with_data(&bad), EINVAL); /* no load */
		CHECK_ERR(luo_component_register_with_data(NULL), EINVAL);
		CHECK_ERR(luo_open(0, &l), EINVAL);
		_exit(0);
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void first_image(void)
{
	char self[4096], fds[16];
	char *next_argv[] = { "test-callbacks", fds, NULL };
	const struct luo_report_entry *rep;
	size_t n;
	ssize_t len;
	int p[2];

	CHECK_OK(luo_open(0, &the_luo));
	CHECK_OK(luo_session_create(the_luo, "cb", &the_session));
	CHECK(pipe2(p, O_CLOEXEC) == 0);
	CHECK_OK(luo_session_preserve_fd(the_session, p[0], 1));
	CHECK_EQ(counts.preserves, 1);
	CHECK_EQ(counts.refusals, 1);
	CHECK_OK(luo_session_preserve_fd(the_session, p[1], 3));
	CHECK_OK(luo_session_unpreserve_fd(the_session, 3));
	CHECK_EQ(counts.refusals, 3);
	close(p[0]);
	close(p[1]);
	CHECK_OK(luo_arena_create(the_session, 2, LUO_ARENA_SIZE_MIN, 0, &the_arena));
	state.counter = 41;
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	CHECK(len > 0);
	self[len] = '\0';
	snprintf(fds, sizeof(fds), "%d", test_fds_at_start);
	fflush(NULL);
	/* A failed update first: save() ran, its refusals checked, and all works again after it. */
	CHECK_ERR(luo_update(the_luo, "/nonexistent/test-callbacks", next_argv, NULL), ENOENT);
	CHECK_ERR(luo_update_report(the_luo, &rep, &n), ENODATA);
	CHECK_OK(luo_session_tokens(the_session, NULL, 0, &n));
	CHECK_EQ(n, 2);
	CHECK_EQ(state.saves, 0); /* the path is checked before negotiation and save() */
	fprintf(stderr, "luo_update: %s\n", strerror(-luo_update(the_luo, self, next_argv, NULL)));
	exit(1);
}

static void next_image(int fds_at_start)
{
	struct luo_session *s;
	uint32_t v = 0;
	int fd;

	CHECK_OK(luo_open(0, &the_luo));
	/* load() ran inside luo_open(), with its pointer; save() had run in the old image. */
	CHECK(state.loads == 1 && state.checks == 1 && state.counter == 41);
	CHECK_OK(luo_component_incoming(the_luo, "test-with-data", &v));
	CHECK_EQ(v, 2);
	CHECK_OK(luo_component_incoming(the_luo, "test-plain", &v));
	CHECK_EQ(counts.retrieves, 1);
	CHECK_EQ(counts.refusals, 1);
	CHECK_OK(luo_session_retrieve(the_luo, "cb", &s));
	CHECK_OK(luo_session_retrieve_fd(s, 1, &fd));
	close(fd);
	the_session = s;
	/* can_finish() and finish() refused their calls; luo_close() in finish() did nothing. */
	CHECK_OK(luo_session_finish(s));
	CHECK_EQ(counts.refusals, 3);
	CHECK_ERR(luo_session_finish(s), EINVAL); /* the handle and the session still work */
	luo_session_close(s);
	CHECK_OK(luo_ready(the_luo));
	luo_close(the_luo);
	CHECK_OK(luo_file_handler_unregister(&fifo_handler));
	check_no_fd_leak_from(fds_at_start);
	printf("ok - user pointers in save(), load() and a handler's callbacks; -EDEADLK / -EBUSY inside all of them\n");
}

int main(int argc, char **argv)
{
	CHECK_OK(luo_file_handler_register_with_data(&fifo_handler, &counts));
	if (argc >= 2) {
		next_image(atoi(argv[1]));
		return 0;
	}
	test_begin();
	registration_refusals();
	first_image();
	return 1;
}
