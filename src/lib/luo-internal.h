/* SPDX-License-Identifier: MIT */
#ifndef LUO_INTERNAL_H
#define LUO_INTERNAL_H

/*
 * DOC: every layer's internal header, for programs built on libluo's
 * internals (luoctl, luo-describe, tests, fuzz targets)
 *
 * libluo's own files include only the header of their layer and those of
 * the layers below (README, "Source layout"): base.h, model.h, format.h,
 * handover.h, transport.h, core.h.
 */

#include "core.h"

#endif /* LUO_INTERNAL_H */
