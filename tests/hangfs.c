/* SPDX-License-Identifier: MIT */
/*
 * DOC: hangfs, a FUSE filesystem that stops answering (tests only)
 *
 * One file, /f (4 KiB of 'x'). It answers every request until it gets
 * SIGUSR1; from then on every request (getattr, open, read, flush,
 * release, ...) waits for ever: a filesystem whose server never answers.
 * SIGUSR2 makes it answer again. Single-threaded (-s) so that one waiting
 * request holds all others. The test kills it (SIGKILL) to end the wait:
 * the kernel then aborts the connection and fails every pending request.
 *
 * Usage: hangfs MOUNTPOINT [fuse options...]  (run with -f -s)
 */
#define FUSE_USE_VERSION 31

#include <errno.h>
#include <fuse.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HANGFS_SIZE 4096

static volatile sig_atomic_t hanging;

static void on_signal(int sig)
{
	hanging = sig == SIGUSR1;
}

static void maybe_hang(void)
{
	while (hanging)
		pause();
}

static int hg_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	(void)fi;
	maybe_hang();
	memset(st, 0, sizeof(*st));
	if (strcmp(path, "/") == 0) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else if (strcmp(path, "/f") == 0) {
		st->st_mode = S_IFREG | 0666;
		st->st_nlink = 1;
		st->st_size = HANGFS_SIZE;
	} else {
		return -ENOENT;
	}
	return 0;
}

static int hg_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	(void)off;
	(void)fi;
	(void)flags;
	maybe_hang();
	if (strcmp(path, "/") != 0)
		return -ENOENT;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	fill(buf, "f", NULL, 0, 0);
	return 0;
}

static int hg_open(const char *path, struct fuse_file_info *fi)
{
	(void)fi;
	maybe_hang();
	return strcmp(path, "/f") == 0 ? 0 : -ENOENT;
}

static int hg_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)path;
	(void)fi;
	maybe_hang();
	if (off >= HANGFS_SIZE)
		return 0;
	if (size > (size_t)(HANGFS_SIZE - off))
		size = (size_t)(HANGFS_SIZE - off);
	memset(buf, 'x', size);
	return (int)size;
}

static int hg_flush(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	(void)fi;
	maybe_hang();
	return 0;
}

static int hg_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	(void)fi;
	maybe_hang();
	return 0;
}

static int hg_statfs(const char *path, struct statvfs *st)
{
	(void)path;
	maybe_hang();
	memset(st, 0, sizeof(*st));
	return 0;
}

static const struct fuse_operations hg_ops = {
	.getattr = hg_getattr,
	.readdir = hg_readdir,
	.open = hg_open,
	.read = hg_read,
	.flush = hg_flush,
	.release = hg_release,
	.statfs = hg_statfs,
};

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	return fuse_main(argc, argv, &hg_ops, NULL);
}
