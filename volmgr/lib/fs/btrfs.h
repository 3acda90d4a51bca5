/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The btrfs backend: thin wrappers over libbtrfsutil's fd forms that turn
 * its error enum into a negative errno and a message, and a recursive
 * delete of its own (libbtrfsutil's follows symlinks). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

/* Snapshot the subvolume open at src_fd as parent_fd/name (writable). */
int vm_btrfs_snapshot(int src_fd, int parent_fd, const char *name,
		      uint64_t *ret_id, struct vm_error *err);
/* Create an empty subvolume parent_fd/name. */
int vm_btrfs_create(int parent_fd, const char *name, uint64_t *ret_id,
		    struct vm_error *err);
/* Delete parent_fd/name and every subvolume beneath it (a nested podman on
 * btrfs creates those inside a workspace, some read-only), following no
 * symlink and touching nothing outside it while others still write in it
 * (btrfs-delete.c).  Gives up with EBUSY if it keeps losing races or the
 * tree keeps growing; the tree is then left as it is. */
int vm_btrfs_delete(int parent_fd, const char *name, struct vm_error *err);
/* Test hook: destroy by name in the verified directory, as on kernels
 * before 5.7, instead of by id. */
void vm_btrfs_delete_force_by_name(bool on);
/* The device numbers of the subvolumes nested in the one open at fd, at
 * any depth (up to the delete's depth), reached as the delete reaches
 * them: at most max into devs, *ret_n of them.  -E2BIG past max or the
 * bounds (what was found is still in devs); a subvolume that moves
 * meanwhile is skipped. */
int vm_btrfs_nested_devs(int fd, dev_t *devs, size_t max, size_t *ret_n);
int vm_btrfs_set_read_only(int fd, bool ro, struct vm_error *err);
int vm_btrfs_subvolume_id(int fd, uint64_t *ret_id);
/* 1 if fd is the root of a subvolume, 0 if not, negative errno on error. */
int vm_btrfs_is_subvolume(int fd);
