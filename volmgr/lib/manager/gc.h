/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "manager.h"

#define VM_GC_WALK_DEPTH 256

/* Why gc would remove a volume (its labels and expires_ns): expired,
 * creator gone (unless the label volmgr.keep=true), labels match (every
 * label in labels, if any): enum vm_gc_reason bits (results.h); 0: keep
 * it.  Pure. */
unsigned vm_gc_reasons(const struct vm_volume_info *info, int64_t now_ns, json_t *labels,
		       bool creator_gone);

/* Remove (or with dry_run, list) the volumes vm_gc_reasons picks, except
 * those in use (results.h: what went, what stayed and why, the bytes
 * freed); release ret with vm_gc_report_done. */
int vm_gc(struct vm_manager *m, bool dry_run, json_t *labels, struct vm_gc_report *ret,
	  struct vm_error *err);
