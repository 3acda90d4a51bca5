/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fd-relative tree walks: copy a tree (cache import) and remove one.
 * Every step opens a single name beneath an fd that is already open and
 * never follows a symlink, so a caller who swaps a directory for a
 * symlink mid-walk cannot steer the daemon outside the tree. */
#pragma once

#include <stdint.h>

#include "util.h"

#define VM_TREE_MAX_DEPTH 256

struct vm_copy_stats {
	uint64_t files, dirs, symlinks, others, hardlinks, bytes;
	uint64_t xattrs; /* extended attributes set */
	uint64_t skipped; /* left out: device nodes that could not be made,
			   * entries that vanished during the walk */
};

/* Whose permissions reading the source obeys: a caller that is not root
 * must not make the daemon read what the caller could not. */
#define VM_READER_GROUPS_MAX 64
struct vm_reader {
	uint32_t uid, gid;
	uint32_t groups[VM_READER_GROUPS_MAX];
	int ngroups;
};

/* Copy the tree open at src_fd into the empty directory dst_fd with the
 * copy engine (copy.h: data copied, io auto): regular files, dirs,
 * symlinks (as links), fifos and device nodes, hard links, owner, mode,
 * nanosecond times and extended attributes.  Stays on one file system:
 * a mount point inside the source is copied as an empty directory. */
int vm_tree_copy(int src_fd, int dst_fd, const struct vm_reader *reader,
		 struct vm_copy_stats *stats, struct vm_error *err);

/* Remove everything beneath dirfd/name, then name itself. */
int vm_tree_remove(int dirfd, const char *name, struct vm_error *err);
