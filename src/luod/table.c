/* SPDX-License-Identifier: MIT */
/*
 * DOC: table.c, the sessions luod holds
 *
 * Lifecycle: a session enters with table_put() once a DEPOSIT has all its
 * fds and passed every check (conn.c); it replaces the session of the same
 * (uid, name) in one step, so a reader never sees a half deposit. It leaves
 * with table_drop(): a DROP, its connection gone without DETACH and without
 * LUO_AGENT_DEPOSIT_KEEP_ON_CRASH, or luod's exit. The agent's fds of a
 * session are closed when it leaves; a RETRIEVE sends copies.
 *
 * Usage per uid (sessions, fds, bytes) is kept next to the table so that a
 * limit check is O(1); bytes are the blob's size plus st_size of each fd
 * that is a regular file (memfds are), i.e. memory the agent keeps alive.
 * Sockets, pipes and the like count 0 bytes: their buffers are the
 * kernel's, bounded by its own limits.
 *
 * Closing what clients gave (luod_close_fd()): close() of a FUSE file
 * sends FUSE_FLUSH and waits for its server uninterruptibly, so anything
 * that is not a pipe, socket, anonymous inode or shmem file is closed on
 * the closer thread; luod's loop never waits for a filesystem.
 *
 * Failure paths: table_usage() with @create may fail with NULL (ENOMEM);
 * callers check before they commit, so a failure never leaves the table
 * half changed.
 */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cleanup.h"
#include "luod.h"
#include "table.h"

#define TABLE_HASH_SIZE 4096u /* buckets; chains stay short up to LUOD_HELD_FDS_MAX sessions */

static uint32_t table_hash(uint32_t uid, const char *name)
{
	uint32_t h = 2166136261u ^ uid;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % TABLE_HASH_SIZE;
}

int table_init(struct luod *d)
{
	d->hash = calloc(TABLE_HASH_SIZE, sizeof(*d->hash));
	return d->hash ? 0 : -ENOMEM;
}

void held_free(struct held *h)
{
	if (!h)
		return;
	if (h->fds)
		for (uint32_t i = 0; i < h->n_fds; i++)
			luod_close_fd(h->fds[i]);
	free(h->fds);
	free(h);
}

void table_free(struct luod *d)
{
	while (d->first)
		table_drop(d, d->first);
	free(d->hash);
	d->hash = NULL;
	free(d->uids);
	d->uids = NULL;
	d->n_uids = d->cap_uids = 0;
}

struct held *table_find(struct luod *d, uint32_t uid, const char *name)
{
	for (struct held *h = d->hash[table_hash(uid, name)]; h; h = h->hnext)
		if (h->uid == uid && strcmp(h->name, name) == 0)
			return h;
	return NULL;
}

struct uid_usage *table_usage(struct luod *d, uint32_t uid, bool create)
{
	struct uid_usage *u;

	for (size_t i = 0; i < d->n_uids; i++)
		if (d->uids[i].uid == uid)
			return &d->uids[i];
	if (!create)
		return NULL;
	if (d->n_uids == d->cap_uids) {
		size_t cap = d->cap_uids ? d->cap_uids * 2 : 8;

		u = reallocarray(d->uids, cap, sizeof(*u));
		if (!u)
			return NULL;
		d->uids = u;
		d->cap_uids = cap;
	}
	u = &d->uids[d->n_uids++];
	*u = (struct uid_usage){ .uid = uid };
	return u;
}

static void table_unlink(struct luod *d, struct held *h)
{
	struct held **pp = &d->hash[table_hash(h->uid, h->name)];
	struct uid_usage *u = table_usage(d, h->uid, false);

	while (*pp && *pp != h)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = h->hnext;
	if (h->prev)
		h->prev->next = h->next;
	else
		d->first = h->next;
	if (h->next)
		h->next->prev = h->prev;
	else
		d->last = h->prev;
	h->hnext = h->prev = h->next = NULL;
	d->n_sessions--;
	d->n_fds -= h->n_fds;
	d->n_bytes -= h->bytes;
	if (u) {
		u->sessions--;
		u->fds -= h->n_fds;
		u->bytes -= h->bytes;
	}
}

void table_put(struct luod *d, struct held *h)
{
	struct held *old = table_find(d, h->uid, h->name);
	/* The caller made sure it exists (table_usage(create) before committing). */
	struct uid_usage *u = table_usage(d, h->uid, true);

	if (old) {
		h->deposited_s = old->deposited_s;
		h->generation = old->generation + 1;
		table_unlink(d, old);
		held_free(old);
	} else {
		h->generation = 1;
	}
	h->hnext = d->hash[table_hash(h->uid, h->name)];
	d->hash[table_hash(h->uid, h->name)] = h;
	h->prev = d->last;
	h->next = NULL;
	if (d->last)
		d->last->next = h;
	else
		d->first = h;
	d->last = h;
	d->n_sessions++;
	d->n_fds += h->n_fds;
	d->n_bytes += h->bytes;
	if (u) {
		u->sessions++;
		u->fds += h->n_fds;
		u->bytes += h->bytes;
	}
}

void table_drop(struct luod *d, struct held *h)
{
	table_unlink(d, h);
	held_free(h);
}

int luod_fd_stat(int fd, struct stat *ret_st)
{
	struct statx stx;

	/*
	 * The attributes the kernel has in memory, never asked of the
	 * filesystem: fstat() on a FUSE file whose server never answers
	 * leaves luod in D state, and no signal ends it. AT_STATX_DONT_SYNC
	 * makes FUSE (and NFS) answer from their cache.
	 */
	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE | STATX_INO | STATX_SIZE, &stx) < 0)
		return -errno;
	memset(ret_st, 0, sizeof(*ret_st));
	ret_st->st_mode = stx.stx_mode;
	ret_st->st_ino = stx.stx_ino;
	ret_st->st_dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
	ret_st->st_size = (off_t)stx.stx_size;
	return 0;
}

static int closer_wr = -1;
static uint64_t closer_kept; /* fds left open: the closer's queue was full */

static void *closer_main(void *arg)
{
	int rd = (int)(intptr_t)arg, fd;

	/* One close at a time; one that waits for a FUSE server holds only this thread. */
	while (read(rd, &fd, sizeof(fd)) == (ssize_t)sizeof(fd))
		(void)close(fd);
	return NULL;
}

int luod_closer_start(void)
{
	pthread_attr_t attr;
	pthread_t t;
	sigset_t all, old;
	int p[2], r;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	if (fcntl(p[1], F_SETFL, O_NONBLOCK) < 0) {
		r = -errno;
		goto fail;
	}
	/* No signal for the closer: luod's arrive by signalfd. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = -pthread_create(&t, &attr, closer_main, (void *)(intptr_t)p[0]);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		goto fail;
	closer_wr = p[1];
	return 0;
fail:
	close(p[0]);
	close(p[1]);
	return r;
}

/* Whether close(@fd) may call into a filesystem that may never answer. */
static bool close_may_wait(int fd)
{
	struct statx stx;
	mode_t t;

	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE, &stx) < 0)
		return true;
	t = stx.stx_mode & S_IFMT;
	if (t == S_IFIFO || t == S_IFSOCK || t == 0) /* pipes, sockets, anonymous inodes */
		return false;
	return fcntl(fd, F_GET_SEALS) < 0; /* shmem (memfd, tmpfs) has no flush */
}

void luod_close_fd(int fd)
{
	if (fd < 0)
		return;
	if (closer_wr >= 0 && close_may_wait(fd)) {
		if (write(closer_wr, &fd, sizeof(fd)) == (ssize_t)sizeof(fd))
			return;
		if (closer_kept++ % 1000 == 0)
			luod_log("the closer thread is stuck (a filesystem that does not answer?): fd %d left open "
				 "(%llu so far)", fd, (unsigned long long)closer_kept);
		return;
	}
	(void)close(fd);
}

void luod_close_fds(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		luod_close_fd(fds[i]);
}

/*
 * One deposited fd (not the blob): its bytes, or why it is refused.
 *
 * - a shmem file (memfd, tmpfs; F_GET_SEALS answers only for those) pins
 *   memory for as long as luod holds it: it must be sealed against grow
 *   and shrink, so that the size counted now is the size held for ever
 *   (libluo's memfd handler seals so at preserve); an unsealed one could
 *   be deposited empty and grown to any size afterwards;
 * - an O_PATH fd is refused unless it names a directory: F_GET_SEALS
 *   does not answer on it (EBADF), yet it keeps the file it names alive,
 *   so an unsealed memfd reached by /proc/self/fd/N with O_PATH would be
 *   counted at its size of the deposit and grown afterwards;
 * - an io_uring instance is refused: files and buffers registered with
 *   it (also after the deposit, by the depositor's copy) would be held by
 *   luod, uncounted; a memfd_secret file is refused: unsealable memory;
 * - an AF_UNIX socket is refused: fds in flight in its queue would be
 *   held by luod, uncounted (a socketpair can carry thousands);
 * - anything else is counted by the size the kernel has in memory
 *   (luod_fd_stat(): no call into its filesystem). A file on disk may
 *   still grow: that is disk quota's business, not luod's memory.
 */
static int held_measure_fd(int fd, uint32_t i, uint64_t *bytes, char *reason, size_t len)
{
	const int frozen = F_SEAL_GROW | F_SEAL_SHRINK;
	int seals = fcntl(fd, F_GET_SEALS), fl = fcntl(fd, F_GETFL), domain = 0, r;
	socklen_t dlen = sizeof(domain);
	char path[64], target[64];
	struct stat st;
	ssize_t n;

	if (fl < 0) {
		snprintf(reason, len, "fcntl(F_GETFL) of fd %u: %s", i, strerror(errno));
		return -EBADFD;
	}
	if (seals >= 0 && (seals & frozen) != frozen) {
		snprintf(reason, len, "fd %u is a memfd whose size is not sealed (F_SEAL_GROW | F_SEAL_SHRINK)", i);
		return -EBADFD;
	}
	r = luod_fd_stat(fd, &st);
	if (r < 0) {
		snprintf(reason, len, "statx of fd %u: %s", i, strerror(-r));
		return r;
	}
	if ((fl & O_PATH) && !S_ISDIR(st.st_mode)) {
		snprintf(reason, len, "fd %u is an O_PATH fd to a file (its size cannot be sealed or counted)", i);
		return -EBADFD;
	}
	/* What anonymous files are (no call into a filesystem: /proc answers). */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n > 0) {
		target[n] = '\0';
		if (strcmp(target, "anon_inode:[io_uring]") == 0) {
			snprintf(reason, len, "fd %u is an io_uring (files and buffers registered with it would go "
					      "uncounted)", i);
			return -EBADFD;
		}
		if (strncmp(target, "/secretmem", 10) == 0) {
			snprintf(reason, len, "fd %u is a memfd_secret file (its size cannot be sealed)", i);
			return -EBADFD;
		}
	}
	if (S_ISSOCK(st.st_mode) && getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dlen) == 0 &&
	    domain == AF_UNIX) {
		snprintf(reason, len, "fd %u is an AF_UNIX socket (fds in flight in it would go uncounted)", i);
		return -EBADFD;
	}
	if (S_ISREG(st.st_mode) && st.st_size > 0)
		*bytes += (uint64_t)st.st_size;
	return 0;
}

int held_measure(const int *fds, uint32_t n_fds, uint64_t *ret_bytes, char *reason, size_t len)
{
	const unsigned int want = F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW;
	char path[64], target[64];
	uint64_t bytes = 0;
	struct stat st;
	ssize_t n;
	int seals;

	/* The blob: a memfd (F_GET_SEALS works on nothing else), sealed. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fds[0]);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0 || (target[n] = '\0', strncmp(target, "/memfd:", 7) != 0)) {
		snprintf(reason, len, "the first fd (the blob) is not a memfd");
		return -EBADFD;
	}
	seals = fcntl(fds[0], F_GET_SEALS);
	if (seals < 0 || ((unsigned int)seals & want) != want) {
		snprintf(reason, len, "the blob memfd is not sealed against write, shrink and grow");
		return -EBADFD;
	}
	if (fstat(fds[0], &st) < 0) { /* a memfd: shmem answers from memory */
		snprintf(reason, len, "fstat of the blob: %s", strerror(errno));
		return -errno;
	}
	if (st.st_size <= 0 || (uint64_t)st.st_size > LUO_ABI_BLOB_MAX) {
		snprintf(reason, len, "the blob is %lld bytes, not 1..%u", (long long)st.st_size, LUO_ABI_BLOB_MAX);
		return st.st_size <= 0 ? -EBADFD : -EFBIG;
	}
	bytes = (uint64_t)st.st_size;
	for (uint32_t i = 1; i < n_fds; i++) {
		int r = held_measure_fd(fds[i], i, &bytes, reason, len);

		if (r < 0)
			return r;
	}
	*ret_bytes = bytes;
	return 0;
}
