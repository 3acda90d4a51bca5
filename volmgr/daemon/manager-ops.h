/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The protocols' ops backed by the real volume manager: the one place
 * where volmgrd joins the plugin and control handlers (lib/proto/, pure
 * functions) to the manager (lib/manager/).  For both, ctx is the
 * struct vm_manager. */
#pragma once

#include "control.h"
#include "plugin.h"

extern const struct vm_plugin_ops vm_plugin_manager_ops;
extern const struct vm_control_ops vm_control_manager_ops;
