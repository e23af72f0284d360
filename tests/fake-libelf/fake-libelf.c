/* SPDX-License-Identifier: MIT */
/*
 * A library named libelf.so.1 with none of libelf's symbols, for
 * test-libelf-load: found first through LD_LIBRARY_PATH, it stands for a
 * libelf that cannot serve.
 */

int luo_fake_libelf(void);

int luo_fake_libelf(void)
{
	return 0;
}
