/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* btrfs quota groups, straight through the ioctls (libbtrfsutil has no
 * qgroup API).  Every function takes fs_fd, an fd of a directory on the
 * btrfs pool (any directory of any subvolume of that file system: quota
 * is per file system), and never a path.
 *
 * Errors: a negative errno, with err filled (if not NULL).  Common to all
 * functions that take fs_fd:
 *   -EBADF   fs_fd < 0 (or not usable for ioctls, e.g. O_PATH)
 *   -ENOTDIR fs_fd is not a directory
 *   -ENOTTY  fs_fd is not on btrfs
 *   -EINVAL  another argument is invalid (NULL output pointer, subvol_id
 *            that cannot name a subvolume: valid are 5 and 256 .. 2^48-1)
 *   -EPERM   no CAP_SYS_ADMIN (every quota ioctl needs it, the tree
 *            search too)
 * and for the functions that change something: -EROFS (read-only mount).
 *
 * Accounting is asynchronous: the kernel enforces limits at once (writes
 * reserve quota before they are accepted, and fail with EDQUOT), but the
 * referenced/exclusive numbers stored in the quota tree are only brought
 * up to date when a transaction commits.  Call vm_quota_sync() before
 * vm_quota_usage() to read numbers that include everything written so
 * far. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

#include "names.h" /* VM_SIZE_MAX, vm_parse_size */

/* Status flags of the quota tree (the kernel's BTRFS_QGROUP_STATUS_FLAG_*
 * values, which are on-disk format and stable). */
#define VM_QUOTA_FLAG_ON (UINT64_C(1) << 0)
#define VM_QUOTA_FLAG_RESCAN (UINT64_C(1) << 1)       /* rescan running */
#define VM_QUOTA_FLAG_INCONSISTENT (UINT64_C(1) << 2) /* numbers unreliable */
#define VM_QUOTA_FLAG_SIMPLE_MODE (UINT64_C(1) << 3)  /* "squota" (6.7+) */

/* A qgroup id: its level in the top 16 bits, an id in the low 48 (the
 * kernel's BTRFS_QGROUP_LEVEL_SHIFT; "1/300" is VM_QGROUP(1, 300)).
 * Level 0 is a subvolume's own qgroup, 0/<subvolume id>, made by the
 * kernel with the subvolume; a higher level groups qgroups of lower
 * levels, and its limits hold for all its members together. */
#define VM_QGROUP_LEVEL_SHIFT 48
#define VM_QGROUP(level, id) (((uint64_t)(level) << VM_QGROUP_LEVEL_SHIFT) | (uint64_t)(id))
#define VM_QGROUP_LEVEL(q) ((uint64_t)(q) >> VM_QGROUP_LEVEL_SHIFT)
#define VM_QGROUP_ID(q) ((uint64_t)(q) & ((UINT64_C(1) << VM_QGROUP_LEVEL_SHIFT) - 1))

/* Turn on full qgroup accounting (BTRFS_IOC_QUOTA_CTL ENABLE) unless it
 * is already on (probed with vm_quota_status_flags first, so that an
 * already enabled read-only pool is fine too), then wait for the initial
 * rescan the kernel starts (BTRFS_IOC_QUOTA_RESCAN_WAIT): on return the
 * numbers are consistent.  Quota left on in simple mode by someone else
 * counts as enabled.  Errors: the common ones; -EINTR is retried. */
int vm_quota_enable(int fs_fd, struct vm_error *err);

/* Turn on simple quotas (BTRFS_IOC_QUOTA_CTL with
 * BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA, Linux 6.7+) unless quota is on
 * already, in either mode (read the flags to know which).  Simple quotas
 * charge an extent to the subvolume that wrote it, for as long as it
 * lives, whoever shares it later; they never rescan and are never
 * inconsistent, and a snapshot costs no accounting work.  Extents written
 * before they were turned on are not counted.
 *   -EOPNOTSUPP the kernel has no simple quotas (it answers EINVAL) */
int vm_quota_enable_simple(int fs_fd, struct vm_error *err);

/* Whether quota is enabled: reads the quota tree's status item with a
 * read-only tree search (no transaction, works on read-only mounts, no
 * side effects, unlike probing with a qgroup ioctl).  The kernel answers
 * a search of the quota tree with ENOENT while quota is off. */
int vm_quota_status(int fs_fd, bool *ret_enabled, struct vm_error *err);
/* The same, returning the status flags (VM_QUOTA_FLAG_*; 0 when quota
 * is off). */
int vm_quota_status_flags(int fs_fd, uint64_t *ret_flags, struct vm_error *err);

/* Set (bytes > 0) or clear (bytes == 0) the exclusive limit of qgroup
 * 0/subvol_id (BTRFS_IOC_QGROUP_LIMIT, BTRFS_QGROUP_LIMIT_MAX_EXCL; the
 * referenced limit is left alone).  A snapshot shares its extents with
 * its origin, so its limit must be the exclusive one.  The limit only
 * stops new writes: when the origin is deleted (or rewrites its data),
 * the shared extents become the snapshot's exclusive ones and can push it
 * over its limit, after which even creating a small file fails with
 * EDQUOT until something is removed (seen on 6.18: a 40 MiB snapshot under
 * a 32 MiB limit, origin deleted).
 *   -ENOTCONN quota is not enabled
 *   -ENOENT   no qgroup 0/subvol_id (no such subvolume, or created while
 *             quota was off and no rescan since)
 *   -ERANGE   bytes > VM_SIZE_MAX */
int vm_quota_limit_exclusive(int fs_fd, uint64_t subvol_id, uint64_t bytes,
			     struct vm_error *err);
/* The same for any qgroup (VM_QGROUP(level, id)). */
int vm_quota_group_limit(int fs_fd, uint64_t qgroupid, uint64_t bytes, struct vm_error *err);

/* Usage of qgroup 0/subvol_id as of the last transaction commit (see
 * vm_quota_sync), read from the quota tree (BTRFS_QGROUP_INFO_KEY and
 * BTRFS_QGROUP_LIMIT_KEY items).  *ret_limit_excl is 0 when there is no
 * exclusive limit (a zero-byte limit set by another tool also reads as
 * 0).  Any output pointer may be NULL; they are only written on success.
 *   -ENOTCONN quota is not enabled
 *   -ENOENT   no qgroup 0/subvol_id
 *   -EBADMSG  the item is shorter than its format
 * While a rescan runs (VM_QUOTA_FLAG_RESCAN) or the numbers are marked
 * inconsistent, they are not meaningful: check vm_quota_status_flags. */
int vm_quota_usage(int fs_fd, uint64_t subvol_id, uint64_t *ret_referenced,
		   uint64_t *ret_exclusive, uint64_t *ret_limit_excl,
		   struct vm_error *err);
/* The same for any qgroup.  A higher-level qgroup's numbers are those of
 * its members together (an extent shared by two members counts once). */
int vm_quota_group_usage(int fs_fd, uint64_t qgroupid, uint64_t *ret_referenced,
			 uint64_t *ret_exclusive, uint64_t *ret_limit_excl,
			 struct vm_error *err);

/* Flush delayed allocation, wait for it and commit the transaction
 * (BTRFS_IOC_SYNC), which is when btrfs accounts qgroups: afterwards
 * vm_quota_usage includes everything written before the call.  Also
 * wakes the cleaner, which drops deleted subvolumes. */
int vm_quota_sync(int fs_fd, struct vm_error *err);

/* Remove qgroup 0/subvol_id of a deleted subvolume (BTRFS_IOC_QGROUP_CREATE
 * with create = 0).  Returns 1 if it removed it, 0 if there was no such
 * qgroup (nothing to do: since Linux 6.10 the kernel removes the qgroup
 * itself when the cleaner has dropped the subvolume, so after a
 * `btrfs subvolume sync` this is the usual answer).
 *   -EBUSY    the subvolume still exists (refused here, before asking the
 *             kernel), or it is deleted but the cleaner has not dropped
 *             it yet (the kernel refuses while the root item is there;
 *             the cleaner only starts after the deletion has committed:
 *             vm_quota_sync, then wait for it, e.g. `btrfs subvolume sync`)
 *   -ENOTCONN quota is not enabled */
int vm_quota_destroy(int fs_fd, uint64_t subvol_id, struct vm_error *err);

/* Remove every level-0 qgroup whose subvolume no longer exists: no root
 * item (dropped, or never a subvolume, like a hand-made 0/100), or
 * deleted and waiting for the cleaner (orphan item, or no references
 * left).  Those the kernel still refuses (-EBUSY: not yet dropped) are
 * skipped and counted in *ret_skipped (may be NULL); the top level (0/5)
 * and live subvolumes are never touched.  Returns how many it removed
 * (>= 0), or a negative errno (-ENOTCONN if quota is off; any other
 * failure stops the sweep and is returned).  On Linux >= 6.10 the kernel
 * removes a dropped subvolume's qgroup itself, so this mostly finds
 * qgroups left by older kernels or made by hand. */
int vm_quota_clear_stale(int fs_fd, unsigned *ret_skipped, struct vm_error *err);

/* ---- higher-level qgroups and their members ---- */

/* Make the empty qgroup qgroupid (level >= 1: level-0 qgroups come with
 * their subvolumes).  -EEXIST if it exists, -ENOTCONN if quota is off. */
int vm_quota_group_create(int fs_fd, uint64_t qgroupid, struct vm_error *err);
/* Remove the qgroup qgroupid (level >= 1).  1 removed, 0 no such qgroup,
 * -EBUSY it still has members. */
int vm_quota_group_remove(int fs_fd, uint64_t qgroupid, struct vm_error *err);
/* Make member (of a lower level) a member of parent, or (assign false)
 * no longer one.  0 done; 1 done, but full accounting could not move the
 * member's numbers (some of its extents are shared outside it) and
 * marked all numbers inconsistent, which stops its accounting until a
 * rescan (simple quotas never answer 1).  -EEXIST already a member,
 * -ENOENT (unassign) not a member or no such qgroup. */
int vm_quota_group_assign(int fs_fd, uint64_t member, uint64_t parent, bool assign,
			  struct vm_error *err);
/* The direct parents (parents true) or direct members of qgroupid, in
 * increasing order, from the id from on: at most max of them to ret_ids,
 * their number to *ret_n.  Returns 1 if there may be more (call again
 * with from one past the last), 0 if that was all. */
int vm_quota_group_relations(int fs_fd, uint64_t qgroupid, bool parents, uint64_t from,
			     uint64_t *ret_ids, size_t max, size_t *ret_n, struct vm_error *err);
/* The qgroups of one level, from the qgroup id from on, like
 * vm_quota_group_relations. */
int vm_quota_groups(int fs_fd, unsigned level, uint64_t from, uint64_t *ret_ids, size_t max,
		    size_t *ret_n, struct vm_error *err);
/* 1 if the qgroup exists, 0 if not. */
int vm_quota_group_exists(int fs_fd, uint64_t qgroupid, struct vm_error *err);

/* Clear both the referenced and the exclusive limit of a qgroup. */
int vm_quota_group_unlimit(int fs_fd, uint64_t qgroupid, struct vm_error *err);

/* ---- subvolumes (read from the root tree, no side effects) ---- */

/* A subvolume linked into the directory dirid (an inode number) of the
 * subvolume parent. */
struct vm_subvol_link {
	uint64_t id;
	uint64_t parent;
	uint64_t dirid;
};
/* The links of the subvolumes with ids from from on, in increasing id
 * order (a deleted subvolume has none), like vm_quota_group_relations:
 * 1 if there may be more (call again from the last id + 1), else 0. */
int vm_quota_subvol_links(int fs_fd, uint64_t from, struct vm_subvol_link *ret, size_t max,
			  size_t *ret_n, struct vm_error *err);
/* The subvolume (and the inode number of the directory in it) that holds
 * subvolume subvol_id: 1 (and *ret_parent, *ret_dirid; either may be
 * NULL) if it is linked somewhere, 0 if not (the top level 5, or
 * deleted). */
int vm_quota_subvol_parent(int fs_fd, uint64_t subvol_id, uint64_t *ret_parent,
			   uint64_t *ret_dirid, struct vm_error *err);
/* The subvolumes linked in directories of subvolume subvol_id (directly),
 * from the id from on, like vm_quota_group_relations. */
int vm_quota_subvol_children(int fs_fd, uint64_t subvol_id, uint64_t from, uint64_t *ret_ids,
			     size_t max, size_t *ret_n, struct vm_error *err);
/* Whether subvolume subvol_id exists and is not deleted. */
int vm_quota_subvol_live(int fs_fd, uint64_t subvol_id, bool *ret_live, struct vm_error *err);
