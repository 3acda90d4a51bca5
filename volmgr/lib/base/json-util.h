/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* jansson with the cleanup convention of util.h. */
#pragma once

#include <jansson.h>

#include "util.h"

static inline void vm_json_decrefp(json_t **j) { json_decref(*j); }
/* Drop the reference at the end of the enclosing block. */
#define _cleanup_json_ _cleanup_(vm_json_decrefp)
