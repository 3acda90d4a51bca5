/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The cleanup attribute for jansson values, for the whole library and
 * its front ends: one definition, so every file drops its reference the
 * same way. */
#pragma once

#include <jansson.h>

#include "util.h"

static inline void vm_json_decrefp(json_t **j) { json_decref(*j); }
#define _cleanup_json_ _cleanup_(vm_json_decrefp)
