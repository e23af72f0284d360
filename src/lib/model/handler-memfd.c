/* SPDX-License-Identifier: MIT */
/*
 * DOC: the built-in "memfd" handler
 *
 * Takes memfds (any shmem file) that allow sealing. preserve adds
 * F_SEAL_GROW | F_SEAL_SHRINK so the size is frozen from then on while
 * writes within it still work, like the kernel's memfd_luo; the contents are
 * never copied: the same open file crosses execve(). freeze records identity,
 * size and seals; retrieve, on the new side, refuses an fd whose identity,
 * size or seals differ from the record (-EBADFD). Seals cannot be lifted, so
 * unpreserve leaves the size frozen.
 *
 * A shmem file that cannot be sealed (memfd_create without
 * MFD_ALLOW_SEALING, or sealed with F_SEAL_SEAL already) is left to the
 * "fd" handler, which keeps it open and checks its identity only.
 */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "model.h"

#define FROZEN_SIZE_SEALS (F_SEAL_GROW | F_SEAL_SHRINK)

static bool memfd_can_preserve(int fd)
{
	int seals = fcntl(fd, F_GET_SEALS);

	if (seals < 0)
		return false; /* not a shmem file */
	return !(seals & F_SEAL_SEAL) || (seals & FROZEN_SIZE_SEALS) == FROZEN_SIZE_SEALS;
}

int luo_memfd_identify(int fd, struct luo_memfd_id *ret)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	*ret = (struct luo_memfd_id){
		.dev = st.st_dev,
		.ino = st.st_ino,
		.size = (uint64_t)st.st_size,
		.regular = S_ISREG(st.st_mode),
	};
	ret->seals = fcntl(fd, F_GET_SEALS);
	if (ret->seals < 0)
		ret->seals = -errno;
	return 0;
}

bool luo_memfd_id_matches(const struct luo_memfd_id *id, uint64_t dev, uint64_t ino, uint64_t size, uint32_t seals)
{
	return id->regular && id->seals >= 0 && id->dev == dev && id->ino == ino && id->size == size &&
	       (uint32_t)id->seals == seals;
}

static int memfd_record(struct luo_file *file)
{
	struct luo_abi_memfd_v1 *d = (struct luo_abi_memfd_v1 *)file->data;
	struct luo_memfd_id id = { 0 };
	int r;

	r = luo_memfd_identify(file->fd, &id);
	if (r < 0)
		return r;
	if (id.seals < 0)
		return id.seals;
	*d = (struct luo_abi_memfd_v1){
		.dev = id.dev,
		.ino = id.ino,
		.size = id.size,
		.seals = (uint32_t)id.seals,
	};
	return 0;
}

static int memfd_preserve(struct luo_file *file)
{
	struct luo_abi_memfd_v1 *d = (struct luo_abi_memfd_v1 *)file->data;
	int r;

	/* Record first: once sealed, a failure could not be undone. */
	r = memfd_record(file);
	if (r < 0)
		return r;
	if ((d->seals & FROZEN_SIZE_SEALS) != FROZEN_SIZE_SEALS) {
		if (fcntl(file->fd, F_ADD_SEALS, FROZEN_SIZE_SEALS) < 0)
			return -errno;
		d->seals |= FROZEN_SIZE_SEALS;
	}
	return 0;
}

static void memfd_unpreserve(struct luo_file *file)
{
	(void)file;
}

static int memfd_freeze(struct luo_file *file)
{
	/* Seals may have grown since preserve (F_SEAL_WRITE, say). */
	return memfd_record(file);
}

static int memfd_retrieve(struct luo_file *file)
{
	const struct luo_abi_memfd_v1 *d = (const struct luo_abi_memfd_v1 *)file->data;
	struct luo_memfd_id id = { 0 };
	int r;

	if (d->reserved != 0)
		return -EBADMSG;
	r = luo_memfd_identify(file->fd, &id);
	if (r < 0)
		return r;
	if (!luo_memfd_id_matches(&id, d->dev, d->ino, d->size, d->seals) ||
	    (id.seals & FROZEN_SIZE_SEALS) != FROZEN_SIZE_SEALS)
		return -EBADFD;
	return 0;
}

static void memfd_finish(struct luo_file *file, bool retrieved)
{
	(void)file;
	(void)retrieved;
}

static const struct luo_file_ops memfd_ops = {
	.can_preserve = memfd_can_preserve,
	.preserve = memfd_preserve,
	.unpreserve = memfd_unpreserve,
	.freeze = memfd_freeze,
	.retrieve = memfd_retrieve,
	.finish = memfd_finish,
};

/* Declared in the manifest too: an old image checks that the new one has it. */
LUO_FILE_HANDLER_DECLARE(luo_handler_memfd, "memfd", LUO_ABI_MEMFD_VERSION, sizeof(struct luo_abi_memfd_v1), &memfd_ops);
