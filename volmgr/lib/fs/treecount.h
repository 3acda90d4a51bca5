/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Count a tree before copying it: totals for progress, and the check
 * that refuses an implicit create needing a long copy.  fd-relative,
 * never follows a symlink, stays on one file system, bounded in depth and
 * in entries, and stops as soon as a limit is passed. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

/* Entries looked at before giving up on any tree (a caller controls the
 * source): past this the count is reported as over, not finished. */
#define VM_TREECOUNT_MAX_ENTRIES (50ULL * 1000 * 1000)

struct vm_treecount {
	uint64_t files; /* everything but directories (as copy progress counts) */
	uint64_t dirs;
	uint64_t bytes; /* sizes of regular files */
	bool over;      /* stopped early: a limit (or the entry bound) was passed */
};

/* Count the tree open at fd.  max_files / max_bytes: stop once either is
 * passed (0: no limit).  0 or -errno with err set. */
int vm_treecount(int fd, uint64_t max_files, uint64_t max_bytes, struct vm_treecount *ret,
		 struct vm_error *err);
