/* SPDX-License-Identifier: MIT */
/*
 * A library that test-components dlopen()s and dlclose()s: it declares one
 * mandatory component, "plugin", registered by LUO_COMPONENT()'s
 * constructor and unregistered by its destructor. Its callbacks abort:
 * once the library is closed, libluo must never call them (the code is
 * unmapped by then), and while it is open the test never saves or loads it.
 */

#include <stdlib.h>

#include "luo/luo.h"

static int plugin_save(uint32_t version, struct luo_payload *out)
{
	(void)version;
	(void)out;
	abort();
}

static int plugin_load(uint32_t version, const void *data, size_t len)
{
	(void)version;
	(void)data;
	(void)len;
	abort();
}

LUO_COMPONENT(plugin_component, "plugin", 1, 1, 1, 1, 0, plugin_save, plugin_load);
