/* SPDX-License-Identifier: MIT */
/*
 * DOC: the registry lock and the open mark
 *
 * One process-wide lock serves both registries, the file handlers'
 * (handler.c) and the components' (component.c), and the mark that a struct
 * luo is open: registration is refused while it is set, so the open handle
 * reads both lists without the lock. luo_open() takes the mark
 * (luo_registry_hold()); luo_close() compacts the component list and drops
 * it, under the lock (luo_registry_release_locked()).
 */

#include <errno.h>
#include <pthread.h>

#include "model.h"

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static bool luo_is_open;

void luo_registry_lock(void)
{
	pthread_mutex_lock(&registry_lock);
}

void luo_registry_unlock(void)
{
	pthread_mutex_unlock(&registry_lock);
}

bool luo_registry_open_locked(void)
{
	return luo_is_open;
}

int luo_registry_hold(void)
{
	int r = 0;

	luo_registry_lock();
	if (luo_is_open)
		r = -EBUSY;
	else
		luo_is_open = true;
	luo_registry_unlock();
	return r;
}

void luo_registry_release_locked(void)
{
	luo_is_open = false;
}
