/* SPDX-License-Identifier: MIT */
/*
 * luo_update_quiescing(): when the program is paused, and when resumed.
 * The binary updates itself (the path /proc/self/exe links to):
 *   - NULL callbacks: -EINVAL, nothing called;
 *   - a binary with no manifest (/bin/true): refused (-EPROTO) before any
 *     quiesce -- the program is never paused for a refused update;
 *   - a quiesce that fails (-EBUSY): that error, no resume, no freeze (the
 *     component's save never ran); luo_update() called from inside it is
 *     -EDEADLK, not a hang;
 *   - a save that fails after the quiesce (-EIO): resume called once;
 *   - then the update itself: the component's save, which runs after the
 *     quiesce, sends the count of quiesces (1) and resumes (0) since the
 *     last step to the new image, which checks them.
 */

#include <signal.h>

#include "luo/luo.h"
#include "test-util.h"

static int quiesced, resumed, save_error, quiesce_error;
static struct luo *the_luo;
static char *self_path, **self_argv;
static bool reenter;

static int save(uint32_t version, struct luo_payload *out)
{
	int32_t counts[2] = { quiesced, resumed };

	(void)version;
	CHECK(quiesced > resumed); /* the program is paused while its state is saved */
	if (save_error)
		return save_error;
	return luo_payload_write(out, counts, sizeof(counts));
}

static int load(uint32_t version, const void *data, size_t len)
{
	int32_t counts[2];

	(void)version;
	CHECK_EQ(len, sizeof(counts));
	memcpy(counts, data, sizeof(counts));
	quiesced = counts[0];
	resumed = counts[1];
	return 0;
}

LUO_COMPONENT(quiescing_component, "quiescing-test", 1, 1, 1, 1, 0, save, load);

static int quiesce(void *userdata)
{
	CHECK(userdata == &quiesced);
	quiesced++;
	if (reenter) /* an update from its own quiesce: refused, not a deadlock */
		CHECK_ERR(luo_update(the_luo, self_path, self_argv, NULL), EDEADLK);
	return quiesce_error;
}

static void resume(void *userdata)
{
	CHECK(userdata == &quiesced);
	resumed++;
}

int main(int argc, char **argv)
{
	char self[4096], fds[16];
	char *next_argv[] = { "test-update-quiescing", "next", fds, NULL };
	char *bad_argv[] = { "true", NULL };
	ssize_t n;
	struct luo *luo;

	if (argc == 3 && strcmp(argv[1], "next") == 0) {
		CHECK_OK(luo_open(0, &luo));
		CHECK_EQ(luo_liveupdate_number(luo), 1);
		CHECK_EQ(quiesced, 1); /* loaded: what the save saw */
		CHECK_EQ(resumed, 0);
		CHECK_OK(luo_ready(luo));
		luo_close(luo);
		check_no_fd_leak_from(atoi(argv[2]));
		printf("ok - the update: quiesced once before the save, not resumed; the new image serves\n");
		return 0;
	}
	test_begin();
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	CHECK(n > 0);
	self[n] = '\0';
	snprintf(fds, sizeof(fds), "%d", test_fds_at_start);
	CHECK_OK(luo_open(0, &luo));

	CHECK_ERR(luo_update_quiescing(luo, self, next_argv, NULL, NULL, resume, &quiesced), EINVAL);
	CHECK_ERR(luo_update_quiescing(luo, self, next_argv, NULL, quiesce, NULL, &quiesced), EINVAL);
	CHECK_EQ(quiesced, 0);
	printf("ok - NULL callbacks: -EINVAL\n");

	CHECK_ERR(luo_update_quiescing(luo, "/bin/true", bad_argv, NULL, quiesce, resume, &quiesced), EPROTO);
	CHECK_EQ(quiesced, 0);
	CHECK_EQ(resumed, 0);
	printf("ok - refused at negotiation: never quiesced\n");

	quiesce_error = -EBUSY;
	the_luo = luo;
	self_path = self;
	self_argv = next_argv;
	reenter = true;
	CHECK_ERR(luo_update_quiescing(luo, self, next_argv, NULL, quiesce, resume, &quiesced), EBUSY);
	CHECK_EQ(quiesced, 1);
	CHECK_EQ(resumed, 0);
	quiesce_error = 0;
	reenter = false;
	printf("ok - a quiesce that fails: its error, no resume, nothing saved; an update from inside it: -EDEADLK\n");

	save_error = -EIO;
	CHECK_ERR(luo_update_quiescing(luo, self, next_argv, NULL, quiesce, resume, &quiesced), EIO);
	CHECK_EQ(quiesced, 2);
	CHECK_EQ(resumed, 1);
	save_error = 0;
	printf("ok - a save that fails after the quiesce: resumed once\n");

	quiesced = resumed = 0;
	fflush(NULL);
	luo_update_quiescing(luo, self, next_argv, NULL, quiesce, resume, &quiesced);
	fprintf(stderr, "the update did not happen\n");
	return 1;
}
