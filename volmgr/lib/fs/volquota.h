/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A volume's quota: which btrfs accounting the pool uses, and the qgroups
 * that make one volume's limit, usage and removal (quota.c has the
 * kernel's primitives; this file has the policy).
 *
 * Simple quotas (Linux 6.7+, the default where the kernel has them): each
 * volume V gets a level-1 qgroup 1/V (V: the volume's subvolume id) that
 * holds 0/V, made, assigned and limited while the volume is still in
 * staging/.  The limit is on 1/V, so it covers every subvolume made
 * inside the volume: in simple mode, when the creator passed no
 * qgroup_inherit of its own, the kernel makes a new subvolume a member of
 * every qgroup that the subvolume holding its directory is a direct
 * member of (fs/btrfs/qgroup.c: btrfs_qgroup_inherit calls
 * qgroup_auto_inherit with inode_rootid, which is the directory's root:
 * fs/btrfs/ioctl.c create_subvol passes btrfs_root_id(root) of the
 * directory, fs/btrfs/transaction.c create_pending_snapshot passes
 * btrfs_root_id(parent_root), where the snapshot is placed -- not its
 * source).  So one made inside V joins 1/V, one made inside that joins
 * 1/V too (its directory's subvolume is a member of 1/V), at any depth,
 * and a snapshot a job takes of its own subvolume joins the qgroups of
 * where it puts it: 1/V when inside V.  A creator may pass its own
 * qgroup_inherit, though (BTRFS_IOC_SUBVOL_CREATE_V2 and SNAP_CREATE_V2
 * with BTRFS_SUBVOL_QGROUP_INHERIT need no privilege, and
 * btrfs_qgroup_check_inherit accepts an empty list or any existing
 * higher-level qgroup): then the kernel skips the automatic membership
 * and the new subvolume is in no volume's qgroup, or in another volume's.
 * The sweep (vm_volquota_sweep, run by a watcher thread and before usage
 * is read) finds such subvolumes and puts them right: a subvolume inside
 * V becomes a member of 1/V and of no other qgroup.  Simple quotas count
 * what a subvolume wrote (an extent is charged to the subvolume that
 * wrote it), so "referenced" and "exclusive" are the same number: what
 * the volume added, not what it shares with its cache.
 *
 * Full accounting (older kernels, or a pool where it was on already): the
 * limit is the exclusive limit of 0/V, as before, and subvolumes made
 * inside a volume are not counted at all.  volmgrd makes no level-1
 * qgroups there: with one on the pool, any job can name it in a snapshot's
 * qgroup_inherit, which marks full accounting inconsistent, and the
 * kernel then stops all accounting (BTRFS_QGROUP_RUNTIME_FLAG_NO_ACCOUNTING)
 * until a rescan -- no limit on the pool would hold any more (measured:
 * 60 MiB written into a volume limited to 20 MiB).  Joining a job's
 * snapshot to a group would need a rescan of the whole pool for the same
 * reason. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "util.h"

/* [quota] accounting.  NO is 0: "accounting is on" reads as a truth
 * value. */
enum vm_quota_accounting {
	VM_QUOTA_ACCOUNTING_NO = 0,
	VM_QUOTA_ACCOUNTING_AUTO,   /* yes: simple where the kernel has it, else full */
	VM_QUOTA_ACCOUNTING_SIMPLE, /* simple quotas or none */
	VM_QUOTA_ACCOUNTING_FULL,   /* full qgroup accounting or none */
};
const char *vm_quota_accounting_name(enum vm_quota_accounting a);

enum vm_quota_mode {
	VM_QUOTA_MODE_OFF = 0,
	VM_QUOTA_MODE_FULL,
	VM_QUOTA_MODE_SIMPLE,
};
const char *vm_quota_mode_name(enum vm_quota_mode m);

/* The sweep's memory of which volume a subvolume is in. */
struct vm_volquota_memo {
	uint64_t id, owner;
};

/* Sweeps whose ids are not settled yet (see vm_volquota_sweep). */
#define VM_VOLQUOTA_HISTORY 64

struct vm_volquota {
	enum vm_quota_mode mode;
	int fs_fd; /* the pool's; not owned */
	/* A volume is a subvolume linked in the pool's volumes/ directory
	 * (this subvolume, this inode) that has its 1/ qgroup. */
	uint64_t volumes_subvol, volumes_dirid;
	pthread_mutex_t lock;
	/* The sweep: subvolume ids below low are settled. */
	uint64_t low;
	struct {
		int64_t t;
		uint64_t next;
	} hist[VM_VOLQUOTA_HISTORY];
	unsigned hist_first, hist_n;
	unsigned sweeps;
	struct vm_volquota_memo *memo; /* open addressing, id 0 = empty */
	size_t memo_cap, memo_n;
	uint64_t joined, moved; /* totals, for the log and status */
	/* The watcher thread. */
	pthread_t thread;
	pthread_mutex_t wlock;
	pthread_cond_t wcond;
	bool running, stop;
	unsigned interval_ms;
	vm_log_fn log;
	void *log_userdata;
};

/* How often the watcher sweeps, and how long a subvolume id stays in
 * the incremental sweeps after it was first seen (a subvolume's id is
 * taken before its link appears: one made meanwhile by another caller
 * can show up after a higher id did).  Every VM_VOLQUOTA_FULL_EVERY-th
 * sweep goes over all subvolumes. */
#define VM_VOLQUOTA_INTERVAL_MS 250
#define VM_VOLQUOTA_SETTLE_NS (10 * 1000000000LL)
#define VM_VOLQUOTA_FULL_EVERY 40

/* Decide the pool's accounting for want ([quota] accounting) and turn it
 * on as needed, on the pool open at fs_fd, whose volumes/ directory is
 * open at volumes_fd (neither kept open nor owned: fs_fd is used later):
 *   no      off
 *   auto    quota already on: keep its mode (a pool an older volmgr set
 *           up has full accounting; converting would drop every limit
 *           and count nothing written before); off: simple quotas if
 *           the kernel has them, else full accounting
 *   simple  simple, or off (with the reason) if the pool has full
 *           accounting or the kernel has no simple quotas
 *   full    full, or off if the pool has simple quotas
 * vq->mode says the outcome; when off, why (may be NULL) says why, and
 * note (a line for the log, may be NULL) says what was decided.  Returns
 * 0, or -ENOMEM. */
int vm_volquota_init(struct vm_volquota *vq, int fs_fd, int volumes_fd,
		     enum vm_quota_accounting want, struct vm_error *why, char *note,
		     size_t notesz);
/* Stop the watcher and free what init took.  Safe on a zeroed struct. */
void vm_volquota_done(struct vm_volquota *vq);

/* Start the watcher thread: a sweep every interval_ms (simple mode only;
 * a no-op otherwise).  Each sweep that changed something logs a line. */
int vm_volquota_watch(struct vm_volquota *vq, unsigned interval_ms,
		      vm_log_fn log, void *userdata);

/* A new volume's subvolume subvol_id, still in staging/: its limit of
 * bytes (0: none).  Simple: makes 1/subvol_id (one left by a volume whose
 * id this subvolume now has is emptied and reused), makes 0/subvol_id its
 * member and sets the exclusive limit on it, even without a limit (for
 * the usage).  Full: the exclusive limit of 0/subvol_id, if bytes. */
int vm_volquota_apply(struct vm_volquota *vq, uint64_t subvol_id, uint64_t bytes,
		      struct vm_error *err);

/* The volume's usage as of the last transaction commit: 1/subvol_id (the
 * volume and every subvolume made inside it) in simple mode, 0/subvol_id
 * in full mode or for a volume that has no 1/ qgroup. */
int vm_volquota_usage(struct vm_volquota *vq, uint64_t subvol_id, uint64_t *ret_referenced,
		      uint64_t *ret_exclusive, uint64_t *ret_limit, struct vm_error *err);

/* Before the subvolume dirfd/name (a volume, or anything else in the
 * pool) is deleted: clear the limits of its qgroups and of those of every
 * subvolume inside it (and of 1/ its id).  Deleting a subvolume reserves
 * metadata in the qgroups of the subvolume that holds it, so one inside a
 * volume at its limit, or inside a subvolume whose creator gave it a
 * small limit of its own (BTRFS_QGROUP_INHERIT_SET_LIMITS needs no
 * privilege), could not be deleted: EDQUOT.  Best effort, returns
 * nothing; a no-op without quotas or if name is no subvolume. */
void vm_volquota_release_at(struct vm_volquota *vq, int dirfd, const char *name);

/* After the volume's subvolume (and those inside it) were deleted: its
 * members leave 1/subvol_id, which is removed, and 0/subvol_id goes if
 * the kernel lets it (vm_quota_destroy).  Touches no other qgroup. */
int vm_volquota_destroy(struct vm_volquota *vq, uint64_t subvol_id, struct vm_error *err);

/* Simple mode: every subvolume inside a volume V becomes a member of 1/V
 * and of no other qgroup (those a creator chose itself with a
 * qgroup_inherit).  Goes over the subvolumes made since the ids that have
 * settled (full: over all).  ret_joined, ret_moved (may be NULL): how
 * many were added to their volume's qgroup, and how many memberships in
 * other qgroups were dropped.  A no-op in other modes. */
int vm_volquota_sweep(struct vm_volquota *vq, bool full, unsigned *ret_joined,
		      unsigned *ret_moved, struct vm_error *err);
/* The same, making at most budget qgroup changes (0: no bound): what a
 * request waits for before it reads usage; the watcher does the rest. */
int vm_volquota_sweep_bounded(struct vm_volquota *vq, bool full, unsigned budget,
			      unsigned *ret_joined, unsigned *ret_moved, struct vm_error *err);

/* gc: the stale level-0 qgroups (vm_quota_clear_stale), and in simple
 * mode the level-1 qgroups 1/X of volumes gone (no live subvolume X)
 * whose members are all gone too.  Returns how many qgroups it removed;
 * *ret_skipped (may be NULL) how many it left because the kernel or a
 * live member kept them. */
int vm_volquota_clear_stale(struct vm_volquota *vq, unsigned *ret_skipped,
			    struct vm_error *err);
