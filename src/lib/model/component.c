/* SPDX-License-Identifier: MIT */
/*
 * DOC: the component registry and payloads
 *
 * LUO_COMPONENT() registers each component from a constructor, before
 * main(), where nothing can report an error: the first failed registration
 * is remembered and the next luo_open() returns it with its reason, so a
 * program with two components of one name never hands anything over.
 * Registration takes the registry lock (registry.c) and is refused while a
 * struct luo is open; the list is then stable and read without the lock.
 * A component whose library is dlclose()d unregisters from a destructor;
 * while a struct luo is open it is only marked gone (NULL in the list),
 * and the registry is compacted at luo_close().
 *
 * This file also declares the container format in the manifest (kind
 * "format", LUO_ABI_FORMAT_COMPONENT), so that negotiation checks that the
 * new image reads the format this one writes.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "model.h"

static const struct {
	struct luo_abi_note_header h;
	struct luo_abi_note_component d;
} format_note LUO_NOTE_ATTR_ = {
	LUO_NOTE_HEADER_(struct luo_abi_note_component, LUO_ABI_NOTE_COMPONENT),
	{ LUO_ABI_KIND_FORMAT, 0, LUO_ABI_FORMAT_READ_MIN, LUO_ABI_FORMAT_VERSION, LUO_ABI_FORMAT_VERSION,
	  LUO_ABI_FORMAT_VERSION, LUO_ABI_FORMAT_COMPONENT },
};

static const struct luo_component *components[LUO_COMPONENTS_MAX];
static bool gone[LUO_COMPONENTS_MAX];
static size_t n_components;
static int first_error;
static char first_error_reason[LUO_REASON_MAX];

/* A session's name rules, and printable bytes only (it goes into notes and reports). */
static bool name_ok(const char *name)
{
	if (!luo_name_valid(name, LUO_COMPONENT_NAME_MAX))
		return false;
	for (const char *p = name; *p; p++)
		if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
			return false;
	return true;
}

/*
 * A component registered with luo_component_register_with_data() has NULL
 * base callbacks (plain registration refuses them): that is how the calls
 * below know the struct around it.
 */
static const struct luo_component_with_data *with_data(const struct luo_component *c)
{
	return c->save ? NULL : (const struct luo_component_with_data *)c;
}

/* @with: registered with luo_component_register_with_data(), whose callbacks were checked. */
static int check(const struct luo_component *c, bool with, char *reason, size_t rlen)
{
	if (!c || !name_ok(c->name)) {
		luo_reasonf(reason, rlen, "a component name is missing, longer than %d bytes or not printable",
			    LUO_COMPONENT_NAME_MAX);
		return -EINVAL;
	}
	if (!LUO_RANGES_VALID_(c->read_min, c->read_max, c->write_min, c->write_max)) {
		luo_reasonf(reason, rlen, "component '%s': invalid ranges read %u..%u write %u..%u", c->name,
			    c->read_min, c->read_max, c->write_min, c->write_max);
		return -EINVAL;
	}
	if ((c->flags & ~LUO_COMPONENT_OPTIONAL) || (!with && (!c->save || !c->load))) {
		luo_reasonf(reason, rlen, "component '%s': unknown flags or a missing callback", c->name);
		return -EINVAL;
	}
	return 0;
}

static int do_register(const struct luo_component *component, bool with)
{
	char reason[LUO_REASON_MAX];
	int r;

	r = check(component, with, reason, sizeof(reason));
	luo_registry_lock();
	if (r == 0 && luo_registry_open_locked()) {
		luo_reasonf(reason, sizeof(reason), "component '%s' registered while a struct luo is open",
			    component->name);
		r = -EBUSY;
	}
	for (size_t i = 0; r == 0 && i < n_components; i++) {
		if (!gone[i] && strcmp(components[i]->name, component->name) == 0) {
			luo_reasonf(reason, sizeof(reason), "component '%s' declared twice", component->name);
			r = -EEXIST;
		}
	}
	if (r == 0 && n_components >= LUO_COMPONENTS_MAX) {
		luo_reasonf(reason, sizeof(reason), "more than %d components", LUO_COMPONENTS_MAX);
		r = -ENOSPC;
	}
	if (r == 0) {
		gone[n_components] = false; /* a slot left by compaction may say gone */
		components[n_components++] = component;
	}
	else if (r != -EBUSY && first_error == 0) {
		first_error = r;
		memcpy(first_error_reason, reason, sizeof(reason));
	}
	luo_registry_unlock();
	return r;
}

int luo_component_register(const struct luo_component *component)
{
	return do_register(component, false);
}

int luo_component_register_with_data(const struct luo_component_with_data *component)
{
	/* Refused by check() and remembered for luo_open(), as a bad LUO_COMPONENT() is. */
	static const struct luo_component missing_callback = { .name = "with-data", .read_min = 1, .read_max = 1,
							       .write_min = 1, .write_max = 1 };

	/* The base's callbacks must be NULL: that marks it (with_data()); the outer ones are called. */
	if (!component)
		return do_register(NULL, false);
	if (component->base.save || component->base.load || !component->save || !component->load)
		return do_register(&missing_callback, false);
	return do_register(&component->base, true);
}

int luo_component_save(const struct luo_component *c, uint32_t version, struct luo_payload *out)
{
	const struct luo_component_with_data *w = with_data(c);
	int r;

	luo_callback_enter();
	r = w ? w->save(version, out, w->userdata) : c->save(version, out);
	luo_callback_leave();
	return r;
}

int luo_component_load(const struct luo_component *c, uint32_t version, const void *data, size_t len)
{
	const struct luo_component_with_data *w = with_data(c);
	int r;

	luo_callback_enter();
	r = w ? w->load(version, data, len, w->userdata) : c->load(version, data, len);
	luo_callback_leave();
	return r;
}

void luo_component_unregister(const struct luo_component *component)
{
	luo_registry_lock();
	for (size_t i = 0; i < n_components; i++) {
		if (components[i] != component)
			continue;
		if (luo_registry_open_locked()) {
			gone[i] = true; /* indexes hold statuses: compact at close */
		} else {
			memmove(&components[i], &components[i + 1], (n_components - i - 1) * sizeof(components[0]));
			memmove(&gone[i], &gone[i + 1], (n_components - i - 1) * sizeof(gone[0]));
			n_components--;
		}
		break;
	}
	luo_registry_unlock();
}

/* At luo_close(), with the registry lock held: drop what went away. */
void luo_components_compact_locked(void)
{
	size_t k = 0;

	for (size_t i = 0; i < n_components; i++) {
		if (gone[i])
			continue;
		components[k] = components[i];
		gone[k++] = false;
	}
	for (size_t i = k; i < n_components; i++)
		gone[i] = false;
	n_components = k;
}

/*
 * Registered components, by registry index; a component unloaded while
 * a struct luo is open is NULL at its index.
 */
size_t luo_components_list(const struct luo_component **out, size_t max)
{
	size_t n = n_components < max ? n_components : max;

	for (size_t i = 0; i < n; i++)
		out[i] = gone[i] ? NULL : components[i];
	return n;
}

/* A registration refused before it reached the registry (fields.c): remembered as do_register() does. */
void luo_components_note_error(int error, const char *reason)
{
	luo_registry_lock();
	if (first_error == 0) {
		first_error = error;
		luo_reasonf(first_error_reason, sizeof(first_error_reason), "%s", reason);
	}
	luo_registry_unlock();
}

int luo_components_error(char *reason, size_t rlen)
{
	int r;

	luo_registry_lock();
	r = first_error;
	if (r)
		luo_reasonf(reason, rlen, "%s", first_error_reason);
	luo_registry_unlock();
	return r;
}

int luo_payload_write(struct luo_payload *out, const void *data, size_t len)
{
	if (!out)
		return -EINVAL;
	if (out->error)
		return out->error;
	if (!data && len)
		return (out->error = -EINVAL);
	if (len > LUO_COMPONENT_DATA_MAX - out->len)
		return (out->error = -E2BIG);
	if (out->len + len > out->cap) {
		size_t cap = out->cap ? out->cap : 256;
		uint8_t *grown;

		while (cap < out->len + len)
			cap *= 2;
		grown = realloc(out->buf, cap);
		if (!grown)
			return (out->error = -ENOMEM);
		out->buf = grown;
		out->cap = cap;
	}
	if (len)
		memcpy(out->buf + out->len, data, len);
	out->len += len;
	return 0;
}

/* Nothing loaded (before a handover, or it was refused, whatever load() ran). */
void luo_components_status_reset(struct luo *luo)
{
	for (size_t i = 0; i < LUO_COMPONENTS_MAX; i++) {
		luo->component_status[i] = -ENODATA;
		luo->component_version[i] = 0;
	}
}

int luo_component_incoming(const struct luo *luo, const char *name, uint32_t *ret_version)
{
	if (!luo || !name)
		return -EINVAL;
	for (size_t i = 0; i < n_components; i++) {
		if (gone[i] || strcmp(components[i]->name, name) != 0)
			continue;
		if (luo->component_status[i] == 0 && ret_version)
			*ret_version = luo->component_version[i];
		return luo->component_status[i];
	}
	return -ENOENT;
}
