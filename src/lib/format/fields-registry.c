/* SPDX-License-Identifier: MIT */
/*
 * DOC: the registry of declared states
 *
 * Each LUO_COMPONENT_STATE() is registered as a component with user data
 * (component.c) whose save and load are the struct image (fields.c): that
 * is what goes to an image without declared fields. A slot per state, as
 * many as components; luo_fields_of() maps a registered component back to
 * its state, for the property encoding update.c, core.c and
 * agent-client.c choose. A slot stays taken after unregistration: the
 * registry may hold the pointer until luo_close().
 */

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "fields.h"
#include "format.h"

/* ------------------------------------------------------------------------ */
/* The registry: each declared state is a component with user data          */

static struct slot {
	struct luo_component_with_data w;
	const struct luo_component_state *st;
} slots[LUO_COMPONENTS_MAX];
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;

static int image_save(uint32_t version, struct luo_payload *out, void *userdata)
{
	return luo_fields_image_save(userdata, version, out);
}

static int image_load(uint32_t version, const void *data, size_t len, void *userdata)
{
	char reason[LUO_REASON_MAX];

	return luo_fields_image_load(userdata, version, data, len, reason, sizeof(reason));
}

const struct luo_component_state *luo_fields_of(const struct luo_component *c)
{
	for (size_t i = 0; c && i < LUO_COMPONENTS_MAX; i++)
		if (c == &slots[i].w.base)
			return slots[i].st;
	return NULL;
}

int luo_component_register_state(const struct luo_component_state *st)
{
	char reason[LUO_REASON_MAX];
	struct slot *s = NULL;
	int r;

	/* A bad list is refused like a bad LUO_COMPONENT(): remembered for luo_open(). */
	if (!st || !st->fields || !st->decls || !st->instance ||
	    memchr(st->fields->component, '\0', sizeof(st->fields->component)) == NULL ||
	    strcmp(st->fields->component, st->name ? st->name : "") != 0) {
		luo_components_note_error(-EINVAL, "a declared state without its field list or instance");
		return -EINVAL;
	}
	r = luo_fields_check(st->fields, st->decls, reason, sizeof(reason));
	if (r) {
		luo_components_note_error(r == -ENOMEM ? r : -EINVAL, reason);
		return r == -ENOMEM ? r : -EINVAL;
	}
	pthread_mutex_lock(&slots_lock);
	for (size_t i = 0; i < LUO_COMPONENTS_MAX && !s; i++)
		if (!slots[i].st)
			s = &slots[i];
	if (s) {
		s->st = st;
		s->w = (struct luo_component_with_data){
			{ st->name, st->read_min, st->read_max, st->write_min, st->write_max, st->flags, NULL, NULL },
			image_save, image_load, (void *)st,
		};
	}
	pthread_mutex_unlock(&slots_lock);
	if (!s) {
		luo_components_note_error(-ENOSPC, "more declared states than LUO_COMPONENTS_MAX");
		return -ENOSPC;
	}
	r = luo_component_register_with_data(&s->w);
	if (r) {
		pthread_mutex_lock(&slots_lock);
		s->st = NULL;
		pthread_mutex_unlock(&slots_lock);
	}
	return r;
}

void luo_component_unregister_state(const struct luo_component_state *st)
{
	pthread_mutex_lock(&slots_lock);
	for (size_t i = 0; st && i < LUO_COMPONENTS_MAX; i++) {
		if (slots[i].st != st)
			continue;
		pthread_mutex_unlock(&slots_lock);
		luo_component_unregister(&slots[i].w.base);
		/* The registry may keep the pointer until luo_close() (marked gone): the slot stays. */
		return;
	}
	pthread_mutex_unlock(&slots_lock);
}
