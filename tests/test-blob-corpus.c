/* SPDX-License-Identifier: MIT */
/*
 * Every blob in tests/bad-blobs/ (given as arguments), put in a sealed memfd
 * and named by LUO_HANDOVER_FD, is refused by luo_open() with -EBADMSG: no
 * crash, a reason, a fresh start after, no fd leak.
 */

#include <fcntl.h>
#include <sys/mman.h>

#include "luo/luo.h"
#include "test-util.h"

#define BLOB_READ_MAX (1 << 20)

static int sealed_memfd_from(const char *path)
{
	static char buf[BLOB_READ_MAX];
	int in = open(path, O_RDONLY | O_CLOEXEC), fd;
	ssize_t n;

	CHECK(in >= 0);
	n = read(in, buf, sizeof(buf));
	close(in);
	CHECK(n > 0 && n < (ssize_t)sizeof(buf));
	fd = memfd_create("bad-blob", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	CHECK(fd >= 0);
	CHECK_EQ(write(fd, buf, (size_t)n), n);
	CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW) == 0);
	return fd;
}

int main(int argc, char **argv)
{
	CHECK(argc > 1);
	test_begin();
	for (int i = 1; i < argc; i++) {
		struct luo *luo;
		const char *reason;
		char num[16];
		int fd = sealed_memfd_from(argv[i]);

		snprintf(num, sizeof(num), "%d", fd);
		setenv(LUO_HANDOVER_FD_ENV, num, 1);
		CHECK_OK(luo_open(LUO_OPEN_FRESH_ON_ERROR, &luo));
		CHECK_EQ(luo_incoming_error(luo, &reason), -EBADMSG);
		CHECK(reason[0] != '\0');
		CHECK(!luo_is_incoming(luo));
		CHECK(getenv(LUO_HANDOVER_FD_ENV) == NULL);
		CHECK(fcntl(fd, F_GETFD) < 0); /* the handover memfd was closed */
		printf("ok - %s: %s\n", argv[i], reason); /* reason lives until luo_close */
		luo_close(luo);
	}
	check_no_fd_leak();
	return 0;
}
