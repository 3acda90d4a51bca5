/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fd-relative tree walks: copy a tree (cache import) and remove one.
 * Every step opens a single name beneath an fd that is already open and
 * never follows a symlink, so a caller who swaps a directory for a
 * symlink mid-walk cannot steer the daemon outside the tree. */
#pragma once

#include <stdint.h>

#include "copy.h"
#include "util.h"

/* Copy the tree open at src_fd into the empty directory dst_fd with the
 * copy engine (copy.h: data copied, io auto): regular files, dirs,
 * symlinks (as links), fifos and device nodes, hard links, owner, mode,
 * nanosecond times and extended attributes.  Stays on one file system:
 * a mount point inside the source is copied as an empty directory. */
int vm_tree_copy(int src_fd, int dst_fd, const struct vm_reader *reader,
		 struct vm_copy_stats *stats, struct vm_error *err);

/* Remove everything beneath dirfd/name, then name itself. */
int vm_tree_remove(int dirfd, const char *name, struct vm_error *err);
