/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "manager.h"

#define VM_GC_WALK_DEPTH 256

/* Why gc would remove a volume (its labels and expires_ns): "expired",
 * "creator gone" (unless the label volmgr.keep=true), "labels match"
 * (every label in labels, if any).  An empty array: keep it.  Pure. */
int vm_gc_reasons(const struct vm_volume_info *info, int64_t now_ns, json_t *labels,
		  bool creator_gone, json_t **ret);

/* Remove (or with dry_run, list) the volumes vm_gc_reasons picks, except
 * those in use.  ret: {"dry_run", "removed": [{name, reasons, bytes}],
 * "kept_in_use": [...], "bytes_freed"}. */
int vm_gc(struct vm_manager *m, bool dry_run, json_t *labels, json_t **ret,
	  struct vm_error *err);
