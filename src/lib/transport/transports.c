/* SPDX-License-Identifier: MIT */
/*
 * DOC: the transports, in the order the core walks them (transport.h)
 */

#include "transport.h"

const struct luo_transport_ops *const luo_transports[LUO_TRANSPORT_COUNT] = {
	[LUO_TRANSPORT_CONTROL] = &luo_transport_control,
	[LUO_TRANSPORT_EXEC] = &luo_transport_exec,
	[LUO_TRANSPORT_AGENT] = &luo_transport_agent,
};
