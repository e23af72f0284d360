/* SPDX-License-Identifier: MIT */
/*
 * DOC: the built-in "fd" handler
 *
 * Takes what execve() can carry as it is: sockets, pipes and FIFOs,
 * eventfds, regular files, directories and devices. It records the kind of
 * file and its identity (st_dev, st_ino; for sockets SO_DOMAIN, SO_TYPE and
 * SO_PROTOCOL) and, on the new side, refuses an fd that is not that object
 * (-EBADFD). Other anonymous inodes (epoll, signalfd, timerfd, inotify,
 * pidfd, io_uring ...) hold state tied to the old image or cannot be
 * checked, so can_preserve says no and preserving them gets -ENOENT.
 *
 * Eventfds share one anonymous inode, so for them the identity check is the
 * kind alone.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model.h"

/* What /proc says the fd is: "anon_inode:[eventfd]", "pipe:[...]", ... */
static bool fd_link_is(int fd, const char *prefix)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	return strncmp(target, prefix, strlen(prefix)) == 0;
}

static uint32_t fd_kind(int fd, const struct stat *st)
{
	switch (st->st_mode & S_IFMT) {
	case S_IFREG:
		/* Some kernels give anonymous inodes a regular type. */
		return fd_link_is(fd, "anon_inode:") ? 0 : LUO_ABI_FD_REGULAR;
	case S_IFDIR:
		return LUO_ABI_FD_DIRECTORY;
	case S_IFSOCK:
		return LUO_ABI_FD_SOCKET;
	case S_IFIFO:
		return LUO_ABI_FD_FIFO;
	case S_IFCHR:
		return LUO_ABI_FD_CHARDEV;
	case S_IFBLK:
		return LUO_ABI_FD_BLOCKDEV;
	case 0:
		return fd_link_is(fd, "anon_inode:[eventfd]") ? LUO_ABI_FD_EVENTFD : 0;
	default:
		return 0;
	}
}

static bool fd_can_preserve(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return false;
	return fd_kind(fd, &st) != 0;
}

static int sockopt_int(int fd, int opt, int32_t *ret)
{
	int v;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, SOL_SOCKET, opt, &v, &len) < 0)
		return -errno;
	*ret = v;
	return 0;
}

static int fd_describe(int fd, struct luo_abi_fd_v1 *d)
{
	struct stat st;
	int r;

	if (fstat(fd, &st) < 0)
		return -errno;
	*d = (struct luo_abi_fd_v1){
		.dev = st.st_dev,
		.ino = st.st_ino,
		.kind = fd_kind(fd, &st),
	};
	if (d->kind == 0)
		return -ENOENT;
	if (d->kind == LUO_ABI_FD_SOCKET) {
		r = sockopt_int(fd, SO_DOMAIN, &d->domain);
		if (r == 0)
			r = sockopt_int(fd, SO_TYPE, &d->type);
		if (r == 0)
			r = sockopt_int(fd, SO_PROTOCOL, &d->protocol);
		if (r < 0)
			return r;
	}
	return 0;
}

static int fd_preserve(struct luo_file *file)
{
	return fd_describe(file->fd, (struct luo_abi_fd_v1 *)file->data);
}

static void fd_unpreserve(struct luo_file *file)
{
	(void)file;
}

static int fd_retrieve(struct luo_file *file)
{
	const struct luo_abi_fd_v1 *want = (const struct luo_abi_fd_v1 *)file->data;
	struct luo_abi_fd_v1 have;
	int r;

	r = fd_describe(file->fd, &have);
	if (r < 0)
		return r == -EBADF ? r : -EBADFD;
	if (memcmp(&have, want, sizeof(have)) != 0)
		return -EBADFD;
	return 0;
}

static void fd_finish(struct luo_file *file, bool retrieved)
{
	(void)file;
	(void)retrieved;
}

static const struct luo_file_ops fd_ops = {
	.can_preserve = fd_can_preserve,
	.preserve = fd_preserve,
	.unpreserve = fd_unpreserve,
	.retrieve = fd_retrieve,
	.finish = fd_finish,
};

/* Declared in the manifest too: an old image checks that the new one has it. */
LUO_FILE_HANDLER_DECLARE(luo_handler_fd, "fd", LUO_ABI_FD_VERSION, sizeof(struct luo_abi_fd_v1), &fd_ops);
