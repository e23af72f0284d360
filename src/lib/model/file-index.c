/* SPDX-License-Identifier: MIT */
/*
 * DOC: the index of preserved open files (one open file, one preservation)
 *
 * The kernel's LUO refuses to preserve an open file (a struct file) that is
 * already preserved, under any token, in any session: -EBUSY. libluo keeps
 * the same rule for its outgoing sessions, whatever the handler, and
 * whichever fd names the file (a dup() is the same open file; a second
 * open() of the same path is not).
 *
 * Userspace cannot see a struct file, so the index has two levels:
 *
 *   1. Groups by inode (st_dev, st_ino), recorded at preserve, in hash
 *      buckets: a file whose inode no preserved file has costs one fstat()
 *      and a bucket walk, no further system call.
 *   2. Within a group, the files sorted by kcmp(KCMP_FILE) on libluo's own
 *      references: kcmp() says whether two fds are one struct file (0, the
 *      exact test) and otherwise orders them (1, 2), an order fixed for the
 *      boot, so a binary search finds the file or its place in O(log n)
 *      kcmp() calls. Files of one inode are common only for eventfds (one
 *      anonymous inode for all) and the ends of a pipe.
 *
 * So preserving n files costs O(n log n) at worst, O(n) when inodes differ.
 *
 * Fallback: where kcmp() fails (ENOSYS: a kernel without CONFIG_KCMP;
 * EPERM: a seccomp profile that forbids it, as container runtimes' default
 * profiles may -- both permanent for the process), the group is walked and
 * a file counts as the same open file if its file status flags (F_GETFL,
 * which belong to the open file, so a dup() always matches), its
 * /proc/self/fd link (anonymous inodes -- eventfd, timerfd, epoll ... --
 * share one inode; the link names the kind) and, for eventfds, fdinfo's
 * "eventfd-id" (Linux 6.8 on) are the same. That can refuse a second,
 * distinct open of one inode that looks the same -- two O_RDWR opens of
 * /dev/null, two timerfds made with the same flags, two eventfds on older
 * kernels -- with -EBUSY; it never accepts a dup(). It costs a few system
 * calls per file of the group.
 *
 * A handler whose ops say LUO_FILE_OPS_SHARED (one that holds fds on
 * others' behalf, as luod's does) may preserve a file that another
 * preservation by a shared handler holds; a non-shared one on either side
 * still gets -EBUSY. Equal files sit next to each other in a sorted group.
 *
 * Incoming files are not indexed: a file retrieved from the previous image
 * may be preserved again for the next before its session is finished
 * (the kernel says -EBUSY until finish). The index lives in struct luo,
 * under its lock. Groups are freed when their last file goes, or at
 * luo_close() (one left empty by a failed preserve).
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/kcmp.h>

#include "model.h"

/* The first table's buckets; it doubles past one group per bucket. */
#define INDEX_BUCKETS_MIN 64

struct luo_file_group {
	dev_t dev;
	ino_t ino;
	struct luo_file **files; /* sorted by kcmp() order while kcmp() answers */
	size_t n_files;
	size_t cap_files;
	struct luo_file_group *next; /* in its bucket */
};

static size_t bucket_of(dev_t dev, ino_t ino, size_t n_buckets)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)dev * 0xc2b2ae3d27d4eb4full;

	h ^= h >> 29;
	return (size_t)(h & (n_buckets - 1));
}

/* kcmp(KCMP_FILE) of two fds of this process: 0 same, 1 @a first, 2 @b first; -1 no answer. */
static int kcmp_file(int a, int b)
{
	pid_t pid = getpid();
	long r = syscall(SYS_kcmp, pid, pid, KCMP_FILE, a, b);

	return r >= 0 && r <= 2 ? (int)r : -1;
}

static bool shared(const struct luo_file_handler *h)
{
	return h->ops->flags & LUO_FILE_OPS_SHARED;
}

static int rehash(struct luo *luo, size_t cap)
{
	struct luo_file_group **buckets = calloc(cap, sizeof(*buckets));

	if (!buckets)
		return -ENOMEM;
	for (size_t i = 0; i < luo->out_index_cap; i++) {
		struct luo_file_group *g = luo->out_index[i], *next;

		for (; g; g = next) {
			size_t b = bucket_of(g->dev, g->ino, cap);

			next = g->next;
			g->next = buckets[b];
			buckets[b] = g;
		}
	}
	free(luo->out_index);
	luo->out_index = buckets;
	luo->out_index_cap = cap;
	return 0;
}

static struct luo_file_group **group_link(struct luo *luo, dev_t dev, ino_t ino)
{
	struct luo_file_group **p = &luo->out_index[bucket_of(dev, ino, luo->out_index_cap)];

	while (*p && ((*p)->dev != dev || (*p)->ino != ino))
		p = &(*p)->next;
	return p;
}

/* The group of @st's inode, made (empty) if there is none; NULL: -ENOMEM. */
static struct luo_file_group *group_get(struct luo *luo, const struct stat *st)
{
	struct luo_file_group **p, *g;

	if (luo->out_index_n_groups + 1 > luo->out_index_cap &&
	    rehash(luo, luo->out_index_cap ? luo->out_index_cap * 2 : INDEX_BUCKETS_MIN) < 0)
		return NULL;
	p = group_link(luo, st->st_dev, st->st_ino);
	if (*p)
		return *p;
	g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->dev = st->st_dev;
	g->ino = st->st_ino;
	*p = g;
	luo->out_index_n_groups++;
	return g;
}

/* What the fallback compares besides the inode: the same for one open file. */
struct fallback_id {
	int flags;             /* F_GETFL */
	char link[64];         /* /proc/self/fd: "anon_inode:[eventfd]", "pipe:[...]", ... */
	long long eventfd_id;  /* fdinfo's "eventfd-id:" (Linux 6.8 on), or -1 */
};

static void fallback_id(int fd, struct fallback_id *id)
{
	char path[64], buf[512];
	const char *p;
	ssize_t n;
	int info;

	*id = (struct fallback_id){ .flags = fcntl(fd, F_GETFL), .eventfd_id = -1 };
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, id->link, sizeof(id->link) - 1);
	id->link[n > 0 ? n : 0] = '\0';
	if (strcmp(id->link, "anon_inode:[eventfd]") != 0)
		return;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	info = open(path, O_RDONLY | O_CLOEXEC);
	if (info < 0)
		return;
	n = read(info, buf, sizeof(buf) - 1);
	close(info);
	if (n <= 0)
		return;
	buf[n] = '\0';
	p = strstr(buf, "eventfd-id:");
	if (p)
		id->eventfd_id = strtoll(p + strlen("eventfd-id:"), NULL, 10);
}

/*
 * Without kcmp(): any file of the group that looks like @fd (status
 * flags, kind, eventfd id) and that @h may not share with. The new file
 * goes last.
 */
static int find_by_flags(const struct luo_file_group *g, int fd, const struct luo_file_handler *h, size_t *ret_pos)
{
	struct fallback_id want, have;

	fallback_id(fd, &want);
	for (size_t i = 0; i < g->n_files; i++) {
		if (shared(h) && shared(g->files[i]->handler))
			continue;
		fallback_id(g->files[i]->fd, &have);
		if (want.flags < 0 || (have.flags == want.flags && strcmp(have.link, want.link) == 0 &&
				       have.eventfd_id == want.eventfd_id))
			return -EBUSY;
	}
	*ret_pos = g->n_files;
	return 0;
}

/*
 * Binary search of @fd in @g by kcmp() order: -EBUSY it is there (under a
 * handler @h may not share with); 0 and its place; -ENOSYS kcmp() did not
 * answer.
 */
static int find_by_kcmp(const struct luo_file_group *g, int fd, const struct luo_file_handler *h, size_t *ret_pos)
{
	size_t lo = 0, hi = g->n_files;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = kcmp_file(fd, g->files[mid]->fd);

		if (c < 0)
			return -ENOSYS;
		if (c == 1) {
			hi = mid;
		} else if (c == 2) {
			lo = mid + 1;
		} else {
			/* Equal ones are adjacent: all must be shareable. */
			size_t a = mid, b = mid;

			if (!shared(h))
				return -EBUSY;
			while (a > 0 && kcmp_file(fd, g->files[a - 1]->fd) == 0)
				a--;
			while (b + 1 < g->n_files && kcmp_file(fd, g->files[b + 1]->fd) == 0)
				b++;
			for (size_t i = a; i <= b; i++)
				if (!shared(g->files[i]->handler))
					return -EBUSY;
			lo = mid;
			break;
		}
	}
	*ret_pos = lo;
	return 0;
}

int luo_file_index_prepare(struct luo *luo, int fd, const struct stat *st, const struct luo_file_handler *h,
			   struct luo_file_slot *ret_slot)
{
	struct luo_file_group *g = group_get(luo, st);
	size_t pos;
	int r;

	if (!g)
		return -ENOMEM;
	r = luo->out_index_no_kcmp ? -ENOSYS : find_by_kcmp(g, fd, h, &pos);
	if (r == -ENOSYS) {
		luo->out_index_no_kcmp = true; /* a seccomp denial or a missing syscall stays so */
		r = find_by_flags(g, fd, h, &pos);
	}
	if (r < 0)
		return r;
	if (g->n_files == g->cap_files) {
		size_t cap = g->cap_files ? g->cap_files * 2 : 1;
		struct luo_file **files = reallocarray(g->files, cap, sizeof(*files));

		if (!files)
			return -ENOMEM;
		g->files = files;
		g->cap_files = cap;
	}
	*ret_slot = (struct luo_file_slot){ .group = g, .pos = pos };
	return 0;
}

void luo_file_index_insert(const struct luo_file_slot *slot, struct luo_file *f)
{
	struct luo_file_group *g = slot->group;

	memmove(&g->files[slot->pos + 1], &g->files[slot->pos], (g->n_files - slot->pos) * sizeof(g->files[0]));
	g->files[slot->pos] = f;
	g->n_files++;
	f->group = g;
}

static void group_free(struct luo_file_group *g)
{
	free(g->files);
	free(g);
}

void luo_file_index_remove(struct luo *luo, struct luo_file *f)
{
	struct luo_file_group *g = f->group, **p;

	if (!g)
		return;
	f->group = NULL;
	for (size_t i = 0; i < g->n_files; i++) {
		if (g->files[i] != f)
			continue;
		memmove(&g->files[i], &g->files[i + 1], (g->n_files - i - 1) * sizeof(g->files[0]));
		g->n_files--;
		break;
	}
	if (g->n_files > 0)
		return;
	p = group_link(luo, g->dev, g->ino);
	*p = g->next;
	luo->out_index_n_groups--;
	group_free(g);
}

void luo_file_index_free(struct luo *luo)
{
	for (size_t i = 0; i < luo->out_index_cap; i++) {
		struct luo_file_group *g = luo->out_index[i], *next;

		for (; g; g = next) {
			next = g->next;
			for (size_t j = 0; j < g->n_files; j++)
				g->files[j]->group = NULL;
			group_free(g);
		}
	}
	free(luo->out_index);
	luo->out_index = NULL;
	luo->out_index_cap = 0;
	luo->out_index_n_groups = 0;
}
