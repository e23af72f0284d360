/* SPDX-License-Identifier: MIT */
/*
 * An arena in a child of fork(): the memfd is shared with the parent, its
 * lock and thread caches are not, so the child must not allocate from it.
 *
 * The parent fills an arena from two threads, starts its populate thread
 * and forks while a third thread, alive across the fork, holds free blocks
 * in its cache (as does the forking thread). In the child every call that
 * would write the parent's heap is refused (alloc NULL with EPERM,
 * set_root/check/bind_type/populate/preserve -EPERM, free a no-op, and
 * luo_update() with the parent's handle -EPERM) and leaves the heap's bytes
 * in use as they were; the root still reads; close returns; an arena the
 * child makes itself works, caches and all, from two threads. Back in the
 * parent: the heap is whole, its bytes in use unchanged, and 2,000 new
 * blocks overlap none of the live ones.
 */

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "heap.h"
#include "luo/luo.h"
#include "test-util.h"

#define ARENA_SIZE (16u << 20)
#define LIVE 500
#define BLOCK 64
#define NEW_BLOCKS 2000

static struct luo *luo;
static struct luo_session *parent_session;
static struct luo_arena *arena;
static uint8_t *live[LIVE];
static int ready_pipe[2], go_pipe[2]; /* the lingering thread: ready, then waits until after the fork */

static uint64_t in_use(struct luo_arena *a)
{
	struct luo_heap_geom g;
	struct luo_heap_stats st;

	CHECK_OK(luo_heap_geometry(luo_arena_base(a), luo_arena_size(a), &g));
	CHECK_OK(luo_heap_stats(&g, &st));
	return st.bytes_in_use;
}

/* Leaves free blocks in the calling thread's cache. */
static void churn(struct luo_arena *a)
{
	void *tmp[32];

	for (size_t i = 0; i < 32; i++)
		CHECK((tmp[i] = luo_arena_alloc(a, BLOCK)) != NULL);
	for (size_t i = 0; i < 32; i++)
		luo_arena_free(a, tmp[i]);
}

static void *other_thread(void *arg)
{
	(void)arg;
	for (size_t i = LIVE / 2; i < LIVE; i++) {
		CHECK((live[i] = luo_arena_alloc(arena, BLOCK)) != NULL);
		memset(live[i], (int)(i & 0xff), BLOCK);
	}
	churn(arena);
	return NULL; /* its cache is flushed at its exit, before the fork */
}

/* Alive across the fork, its cache full of free blocks of the parent's. */
static void *lingering_thread(void *arg)
{
	char c;

	(void)arg;
	churn(arena);
	CHECK_EQ(write(ready_pipe[1], "r", 1), 1);
	CHECK_EQ(read(go_pipe[0], &c, 1), 1); /* the fork is done */
	CHECK_EQ(c, 'f');
	return NULL;
}

static void *child_thread(void *arg)
{
	churn(arg);
	return NULL;
}

static int child(uint64_t before)
{
	struct luo_session *s;
	struct luo_arena *own;
	struct luo_arena_populate_status ps;
	const char *why = NULL;
	void *p;

	errno = 0;
	CHECK(luo_arena_alloc(arena, BLOCK) == NULL);
	CHECK_EQ(errno, EPERM);
	luo_arena_free(arena, live[0]);
	CHECK_ERR(luo_arena_set_root(arena, live[1]), EPERM);
	CHECK_ERR(luo_arena_check(arena, &why), EPERM);
	CHECK(why != NULL && *why != '\0');
	CHECK_ERR(luo_arena_populate_start(arena, 0, 0), EPERM);
	CHECK_ERR(luo_arena_populate_stop(arena), EPERM);
	CHECK_ERR(luo_arena_populate_status(arena, &ps), EPERM);
	CHECK_ERR(luo_arena_bind_type(arena, "test", 1), EPERM);
	CHECK_ERR(luo_arena_preserve(parent_session, 2, arena), EPERM);
	{
		/* Not this binary: were the call let through, it would fail at negotiation, never exec. */
		char path[] = "/bin/true";
		char *argv[] = { path, NULL };

		CHECK_ERR(luo_update(luo, path, argv, NULL), EPERM);
	}
	CHECK(luo_arena_root(arena) == live[0]);
	CHECK_EQ(in_use(arena), before);
	for (size_t i = 0; i < LIVE; i++)
		for (size_t k = 0; k < BLOCK; k++)
			CHECK_EQ(live[i][k], (uint8_t)(i & 0xff));
	luo_arena_close(arena);

	/* The child's own arena (in its copy of the handle): allocates, caches and frees as anywhere. */
	CHECK_OK(luo_session_create(luo, "child", &s));
	CHECK_OK(luo_arena_create(s, 1, ARENA_SIZE, 0, &own));
	churn(own);
	{
		pthread_t t;

		CHECK_EQ(pthread_create(&t, NULL, child_thread, own), 0);
		CHECK_EQ(pthread_join(t, NULL), 0);
	}
	CHECK((p = luo_arena_alloc(own, BLOCK)) != NULL);
	luo_arena_free(own, p);
	CHECK_OK(luo_arena_check(own, NULL));
	luo_arena_close(own);
	return 0;
}

int main(void)
{
	struct luo_session *s;
	pthread_t t, lingering;
	char c;
	uint64_t before;
	int status;
	pid_t pid;

	CHECK_OK(luo_open(0, &luo));
	CHECK_OK(luo_session_create(luo, "parent", &s));
	parent_session = s;
	CHECK_OK(luo_arena_create(s, 1, ARENA_SIZE, 0, &arena));
	for (size_t i = 0; i < LIVE / 2; i++) {
		CHECK((live[i] = luo_arena_alloc(arena, BLOCK)) != NULL);
		memset(live[i], (int)(i & 0xff), BLOCK);
	}
	CHECK_EQ(pthread_create(&t, NULL, other_thread, NULL), 0);
	CHECK_EQ(pthread_join(t, NULL), 0);
	churn(arena); /* this thread's cache: free blocks the child must not hand out */
	CHECK_OK(luo_arena_set_root(arena, live[0]));
	CHECK_OK(luo_arena_populate_start(arena, 0, 0));
	CHECK(pipe(ready_pipe) == 0 && pipe(go_pipe) == 0);
	CHECK_EQ(pthread_create(&lingering, NULL, lingering_thread, NULL), 0);
	CHECK_EQ(read(ready_pipe[0], &c, 1), 1);
	CHECK_EQ(c, 'r');
	before = in_use(arena);

	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		_exit(child(before));
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_EQ(in_use(arena), before);
	CHECK_EQ(write(go_pipe[1], "f", 1), 1);
	CHECK_EQ(pthread_join(lingering, NULL), 0); /* its cache flushed at its exit */

	CHECK_OK(luo_arena_check(arena, NULL));
	CHECK(luo_arena_root(arena) == live[0]);
	{
		static uint8_t *fresh[NEW_BLOCKS];

		for (size_t i = 0; i < NEW_BLOCKS; i++) {
			CHECK((fresh[i] = luo_arena_alloc(arena, BLOCK)) != NULL);
			memset(fresh[i], 0xee, BLOCK);
		}
		for (size_t i = 0; i < LIVE; i++)
			for (size_t k = 0; k < BLOCK; k++)
				CHECK_EQ(live[i][k], (uint8_t)(i & 0xff));
		for (size_t i = 0; i < NEW_BLOCKS; i++)
			luo_arena_free(arena, fresh[i]);
	}
	luo_arena_populate_stop(arena);
	luo_arena_close(arena);
	luo_close(luo);
	return 0;
}
