/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "quota.h"

#include "btrfs-le.h"
#include <endian.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <linux/magic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>

/* Linux 6.7 (simple quotas); older uapi headers lack them. */
#ifndef BTRFS_QGROUP_STATUS_FLAG_SIMPLE_MODE
#define BTRFS_QGROUP_STATUS_FLAG_SIMPLE_MODE (1ULL << 3)
#endif
#ifndef BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA
#define BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA 4
#endif

_Static_assert(VM_QUOTA_FLAG_ON == BTRFS_QGROUP_STATUS_FLAG_ON, "flag value");
_Static_assert(VM_QUOTA_FLAG_RESCAN == BTRFS_QGROUP_STATUS_FLAG_RESCAN, "flag value");
_Static_assert(VM_QUOTA_FLAG_INCONSISTENT == BTRFS_QGROUP_STATUS_FLAG_INCONSISTENT,
	       "flag value");
_Static_assert(VM_QUOTA_FLAG_SIMPLE_MODE == BTRFS_QGROUP_STATUS_FLAG_SIMPLE_MODE,
	       "flag value");
_Static_assert(VM_QGROUP_LEVEL_SHIFT == BTRFS_QGROUP_LEVEL_SHIFT, "qgroup id layout");

/* A level-0 qgroup id is a subvolume id in the low 48 bits. */
#define QGROUP_LEVEL0_MAX ((UINT64_C(1) << BTRFS_QGROUP_LEVEL_SHIFT) - 1)
/* BTRFS_IOC_QGROUP_LIMIT: this value in max_excl clears the limit. */
#define QGROUP_LIMIT_CLEAR UINT64_MAX

static int check_fs_fd(int fs_fd, struct vm_error *err)
{
	struct stat st;
	struct statfs sfs;

	if (fs_fd < 0)
		return vm_error_set(err, EBADF, "invalid pool file descriptor %d", fs_fd);
	if (fstat(fs_fd, &st) < 0)
		return vm_error_errno(err, errno, "cannot stat pool file descriptor");
	if (!S_ISDIR(st.st_mode))
		return vm_error_set(err, ENOTDIR,
				    "pool file descriptor is not a directory");
	if (fstatfs(fs_fd, &sfs) < 0)
		return vm_error_errno(err, errno, "cannot statfs pool file descriptor");
	if (sfs.f_type != (typeof(sfs.f_type))BTRFS_SUPER_MAGIC)
		return vm_error_set(err, ENOTTY,
				    "pool is not on btrfs: quotas need btrfs qgroups");
	return 0;
}

/* Subvolume ids: the top level (5) and 256 up to what fits a qgroup id.
 * 0 must never reach the kernel: it means "the subvolume of the fd". */
static bool subvol_id_valid(uint64_t id)
{
	return id == BTRFS_FS_TREE_OBJECTID ||
	       (id >= BTRFS_FIRST_FREE_OBJECTID && id <= QGROUP_LEVEL0_MAX);
}

static int check_subvol_id(uint64_t id, struct vm_error *err)
{
	if (!subvol_id_valid(id))
		return vm_error_set(err, EINVAL, "invalid subvolume id %llu",
				    (unsigned long long)id);
	return 0;
}

/* Look up the first item of tree in [(objectid, type, min_offset),
 * (objectid, type, max_offset)] and copy up to bufsize bytes of it.
 * Returns 1 (found; *ret_len is the full item length), 0 (not found), or
 * the negative errno of the search (-ENOENT: no such tree). */
static int search_one(int fs_fd, uint64_t tree, uint64_t objectid, uint32_t type,
		      uint64_t min_offset, uint64_t max_offset, void *buf,
		      size_t bufsize, size_t *ret_len)
{
	struct btrfs_ioctl_search_args args;
	struct btrfs_ioctl_search_header sh;

	memset(&args.key, 0, sizeof(args.key));
	args.key.tree_id = tree;
	args.key.min_objectid = args.key.max_objectid = objectid;
	args.key.min_type = args.key.max_type = type;
	args.key.min_offset = min_offset;
	args.key.max_offset = max_offset;
	args.key.max_transid = UINT64_MAX;
	args.key.nr_items = 1;
	if (ioctl(fs_fd, BTRFS_IOC_TREE_SEARCH, &args) < 0)
		return -errno;
	if (args.key.nr_items == 0)
		return 0;
	memcpy(&sh, args.buf, sizeof(sh));
	/* The range is one (objectid, type): anything else is a kernel bug,
	 * but do not hand out the wrong item. */
	if (sh.objectid != objectid || sh.type != type || sh.offset < min_offset ||
	    sh.offset > max_offset || sh.len > sizeof(args.buf) - sizeof(sh))
		return -EBADMSG;
	memcpy(buf, args.buf + sizeof(sh), sh.len < bufsize ? sh.len : bufsize);
	*ret_len = sh.len;
	return 1;
}

int vm_quota_status_flags(int fs_fd, uint64_t *ret_flags, struct vm_error *err)
{
	unsigned char item[sizeof(struct btrfs_qgroup_status_item)];
	size_t len;

	if (!ret_flags)
		return vm_error_set(err, EINVAL, "no place for the quota status");
	int r = check_fs_fd(fs_fd, err);
	if (r < 0)
		return r;
	r = search_one(fs_fd, BTRFS_QUOTA_TREE_OBJECTID, 0, BTRFS_QGROUP_STATUS_KEY,
		       0, 0, item, sizeof(item), &len);
	if (r == -ENOENT || r == 0) {
		/* No quota tree: quota is off. */
		*ret_flags = 0;
		return 0;
	}
	if (r < 0)
		return vm_error_errno(err, r, "cannot read the quota status");
	if (len < offsetof(struct btrfs_qgroup_status_item, flags) + sizeof(uint64_t))
		return vm_error_set(err, EBADMSG, "quota status item too short (%zu bytes)",
				    len);
	*ret_flags = vm_get_le64(item + offsetof(struct btrfs_qgroup_status_item, flags));
	return 0;
}

int vm_quota_status(int fs_fd, bool *ret_enabled, struct vm_error *err)
{
	uint64_t flags;

	if (!ret_enabled)
		return vm_error_set(err, EINVAL, "no place for the quota status");
	int r = vm_quota_status_flags(fs_fd, &flags, err);
	if (r < 0)
		return r;
	*ret_enabled = flags & VM_QUOTA_FLAG_ON;
	return 0;
}

/* -ENOTCONN (with a message) unless quota is on. */
static int require_enabled(int fs_fd, struct vm_error *err)
{
	bool on;
	int r = vm_quota_status(fs_fd, &on, err);
	if (r < 0)
		return r;
	if (!on)
		return vm_error_set(err, ENOTCONN, "quota is not enabled on the pool");
	return 0;
}

static int wait_rescan(int fs_fd, struct vm_error *err)
{
	for (;;) {
		if (ioctl(fs_fd, BTRFS_IOC_QUOTA_RESCAN_WAIT) == 0)
			return 0;
		if (errno != EINTR)
			return vm_error_errno(err, errno,
					      "cannot wait for the quota rescan");
	}
}

int vm_quota_enable(int fs_fd, struct vm_error *err)
{
	uint64_t flags;
	int r = vm_quota_status_flags(fs_fd, &flags, err);
	if (r < 0)
		return r;
	if (!(flags & VM_QUOTA_FLAG_ON)) {
		struct btrfs_ioctl_quota_ctl_args args = {
			.cmd = BTRFS_QUOTA_CTL_ENABLE,
		};
		/* Enabling an enabled quota is a no-op in the kernel, so a
		 * concurrent enable between the probe and here is fine. */
		if (ioctl(fs_fd, BTRFS_IOC_QUOTA_CTL, &args) < 0)
			return vm_error_errno(err, errno, "cannot enable quota");
	}
	/* Simple quotas never rescan; on full accounting, wait for the rescan
	 * that enabling started (or one still running). */
	if (flags & VM_QUOTA_FLAG_SIMPLE_MODE)
		return 0;
	return wait_rescan(fs_fd, err);
}

int vm_quota_enable_simple(int fs_fd, struct vm_error *err)
{
	uint64_t flags;
	int r = vm_quota_status_flags(fs_fd, &flags, err);
	if (r < 0)
		return r;
	if (flags & VM_QUOTA_FLAG_ON)
		return 0; /* in whatever mode: the caller reads the flags */
	struct btrfs_ioctl_quota_ctl_args args = {
		.cmd = BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA,
	};
	if (ioctl(fs_fd, BTRFS_IOC_QUOTA_CTL, &args) < 0) {
		int e = errno;
		/* Before 6.7 the command is unknown: btrfs_ioctl_quota_ctl
		 * answers any other cmd with EINVAL. */
		if (e == EINVAL)
			return vm_error_set(err, EOPNOTSUPP,
					    "this kernel has no btrfs simple quotas (Linux 6.7 or later)");
		return vm_error_errno(err, e, "cannot enable simple quotas");
	}
	return 0;
}

/* Any level > 0 with any id, or a level-0 qgroup of a valid subvolume. */
static bool qgroup_valid(uint64_t q)
{
	return VM_QGROUP_LEVEL(q) > 0 || subvol_id_valid(VM_QGROUP_ID(q));
}

static int check_qgroup(uint64_t q, struct vm_error *err)
{
	if (!qgroup_valid(q))
		return vm_error_set(err, EINVAL, "invalid qgroup %llu/%llu",
				    (unsigned long long)VM_QGROUP_LEVEL(q),
				    (unsigned long long)VM_QGROUP_ID(q));
	return 0;
}

#define QG_FMT "%llu/%llu"
#define QG_ARGS(q) (unsigned long long)VM_QGROUP_LEVEL(q), (unsigned long long)VM_QGROUP_ID(q)

int vm_quota_group_limit(int fs_fd, uint64_t qgroupid, uint64_t bytes, struct vm_error *err)
{
	int r = check_fs_fd(fs_fd, err);
	if (r < 0)
		return r;
	r = check_qgroup(qgroupid, err);
	if (r < 0)
		return r;
	if (bytes > VM_SIZE_MAX)
		return vm_error_set(err, ERANGE,
				    "exclusive limit %llu is larger than %llu bytes",
				    (unsigned long long)bytes,
				    (unsigned long long)VM_SIZE_MAX);

	struct btrfs_ioctl_qgroup_limit_args args = {
		.qgroupid = qgroupid,
		.lim = {
			/* Only the exclusive limit; the others stay as they are. */
			.flags = BTRFS_QGROUP_LIMIT_MAX_EXCL,
			.max_excl = bytes > 0 ? bytes : QGROUP_LIMIT_CLEAR,
		},
	};
	if (ioctl(fs_fd, BTRFS_IOC_QGROUP_LIMIT, &args) < 0) {
		int e = errno;
		if (e == ENOTCONN)
			return vm_error_set(err, e, "quota is not enabled on the pool");
		return vm_error_errno(err, e, "cannot %s the exclusive limit of qgroup " QG_FMT,
				      bytes > 0 ? "set" : "clear", QG_ARGS(qgroupid));
	}
	return 0;
}

int vm_quota_limit_exclusive(int fs_fd, uint64_t subvol_id, uint64_t bytes,
			     struct vm_error *err)
{
	int r = check_fs_fd(fs_fd, err);
	if (r < 0)
		return r;
	r = check_subvol_id(subvol_id, err);
	if (r < 0)
		return r;
	return vm_quota_group_limit(fs_fd, VM_QGROUP(0, subvol_id), bytes, err);
}

int vm_quota_group_usage(int fs_fd, uint64_t qgroupid, uint64_t *ret_referenced,
			 uint64_t *ret_exclusive, uint64_t *ret_limit_excl,
			 struct vm_error *err)
{
	unsigned char info[sizeof(struct btrfs_qgroup_info_item)];
	unsigned char lim[sizeof(struct btrfs_qgroup_limit_item)];
	size_t len;

	int r = check_fs_fd(fs_fd, err);
	if (r < 0)
		return r;
	r = check_qgroup(qgroupid, err);
	if (r < 0)
		return r;

	r = search_one(fs_fd, BTRFS_QUOTA_TREE_OBJECTID, 0, BTRFS_QGROUP_INFO_KEY,
		       qgroupid, qgroupid, info, sizeof(info), &len);
	if (r == -ENOENT)
		return vm_error_set(err, ENOTCONN, "quota is not enabled on the pool");
	if (r < 0)
		return vm_error_errno(err, r, "cannot read qgroup " QG_FMT, QG_ARGS(qgroupid));
	if (r == 0)
		return vm_error_set(err, ENOENT, "no qgroup " QG_FMT, QG_ARGS(qgroupid));
	if (len < sizeof(info))
		return vm_error_set(err, EBADMSG, "qgroup " QG_FMT ": info item too short",
				    QG_ARGS(qgroupid));
	uint64_t rfer = vm_get_le64(info + offsetof(struct btrfs_qgroup_info_item, rfer));
	uint64_t excl = vm_get_le64(info + offsetof(struct btrfs_qgroup_info_item, excl));

	/* The kernel writes the limit item together with the info item; a
	 * missing one means no limit. */
	uint64_t limit = 0;
	r = search_one(fs_fd, BTRFS_QUOTA_TREE_OBJECTID, 0, BTRFS_QGROUP_LIMIT_KEY,
		       qgroupid, qgroupid, lim, sizeof(lim), &len);
	if (r == -ENOENT) /* quota turned off in between */
		return vm_error_set(err, ENOTCONN, "quota is not enabled on the pool");
	if (r < 0)
		return vm_error_errno(err, r, "cannot read the limits of qgroup " QG_FMT,
				      QG_ARGS(qgroupid));
	if (r > 0) {
		if (len < sizeof(lim))
			return vm_error_set(err, EBADMSG,
					    "qgroup " QG_FMT ": limit item too short",
					    QG_ARGS(qgroupid));
		uint64_t flags = vm_get_le64(lim + offsetof(struct btrfs_qgroup_limit_item, flags));
		if (flags & BTRFS_QGROUP_LIMIT_MAX_EXCL)
			limit = vm_get_le64(lim + offsetof(struct btrfs_qgroup_limit_item,
							max_excl));
	}

	if (ret_referenced)
		*ret_referenced = rfer;
	if (ret_exclusive)
		*ret_exclusive = excl;
	if (ret_limit_excl)
		*ret_limit_excl = limit;
	return 0;
}

int vm_quota_usage(int fs_fd, uint64_t subvol_id, uint64_t *ret_referenced,
		   uint64_t *ret_exclusive, uint64_t *ret_limit_excl,
		   struct vm_error *err)
{
	int r = check_fs_fd(fs_fd, err);
	if (r < 0)
		return r;
	r = check_subvol_id(subvol_id, err);
	if (r < 0)
		return r;
	return vm_quota_group_usage(fs_fd, VM_QGROUP(0, subvol_id), ret_referenced,
				    ret_exclusive, ret_limit_excl, err);
}

int vm_quota_sync(int fs_fd, struct vm_error *err)
{
	int r = check_fs_fd(fs_fd, err);
	if (r < 0)
		return r;
	if (ioctl(fs_fd, BTRFS_IOC_SYNC) < 0)
		return vm_error_errno(err, errno, "cannot commit the pool's transaction");
	return 0;
}

enum subvol_state {
	SUBVOL_GONE,    /* no root item: dropped (or never was) */
	SUBVOL_DELETED, /* deleted, waiting for the cleaner to drop it */
	SUBVOL_LIVE,
};

/* Read from the root tree as it is now (a tree search sees the running
 * transaction's changes): deleting a subvolume at once removes its
 * ROOT_REF/BACKREF and adds an orphan item (ORPHAN, ORPHAN_ITEM, id) --
 * the mark `btrfs subvolume list -d` and libbtrfsutil use -- while the
 * root item's refs only reads 0 once the transaction has committed.  The
 * root item goes when the cleaner has dropped the subvolume. */
static int subvol_state(int fs_fd, uint64_t id, enum subvol_state *ret,
			struct vm_error *err)
{
	/* Only the root item's head, up to and including refs. */
	const size_t refs_at = offsetof(struct btrfs_root_item, refs);
	unsigned char item[offsetof(struct btrfs_root_item, refs) + sizeof(uint32_t)];
	size_t len;

	/* A subvolume's root item is (id, ROOT_ITEM, 0), a snapshot's
	 * (id, ROOT_ITEM, transid of its creation). */
	int r = search_one(fs_fd, BTRFS_ROOT_TREE_OBJECTID, id, BTRFS_ROOT_ITEM_KEY, 0,
			   UINT64_MAX, item, sizeof(item), &len);
	if (r < 0)
		return vm_error_errno(err, r, "cannot look up subvolume %llu",
				      (unsigned long long)id);
	if (r == 0) {
		*ret = SUBVOL_GONE;
		return 0;
	}
	if (len < sizeof(item))
		return vm_error_set(err, EBADMSG, "root item of %llu too short",
				    (unsigned long long)id);
	if (vm_get_le32(item + refs_at) == 0) {
		*ret = SUBVOL_DELETED;
		return 0;
	}
	r = search_one(fs_fd, BTRFS_ROOT_TREE_OBJECTID, BTRFS_ORPHAN_OBJECTID,
		       BTRFS_ORPHAN_ITEM_KEY, id, id, item, 0, &len);
	if (r < 0)
		return vm_error_errno(err, r, "cannot look up subvolume %llu",
				      (unsigned long long)id);
	*ret = r > 0 ? SUBVOL_DELETED : SUBVOL_LIVE;
	return 0;
}

/* Ask the kernel to remove qgroup 0/id: 1 removed, 0 no such qgroup,
 * -EBUSY refused (err not touched), other negative errno (err set). */
static int remove_qgroup(int fs_fd, uint64_t id, struct vm_error *err)
{
	struct btrfs_ioctl_qgroup_create_args args = {
		.create = 0,
		.qgroupid = id,
	};
	if (ioctl(fs_fd, BTRFS_IOC_QGROUP_CREATE, &args) == 0)
		return 1;
	int e = errno;
	if (e == ENOENT)
		return 0;
	if (e == EBUSY)
		return -EBUSY;
	if (e == ENOTCONN)
		return vm_error_set(err, e, "quota is not enabled on the pool");
	return vm_error_errno(err, e, "cannot remove qgroup 0/%llu",
			      (unsigned long long)id);
}

int vm_quota_destroy(int fs_fd, uint64_t subvol_id, struct vm_error *err)
{
	enum subvol_state state;

	int r = check_fs_fd(fs_fd, err);
	if (r < 0)
		return r;
	r = check_subvol_id(subvol_id, err);
	if (r < 0)
		return r;
	r = require_enabled(fs_fd, err);
	if (r < 0)
		return r;
	/* Kernels before 6.8 let a live subvolume's qgroup go when its
	 * numbers were zero; never ask. */
	r = subvol_state(fs_fd, subvol_id, &state, err);
	if (r < 0)
		return r;
	if (state == SUBVOL_LIVE)
		return vm_error_set(err, EBUSY,
				    "subvolume %llu still exists: its qgroup stays",
				    (unsigned long long)subvol_id);
	r = remove_qgroup(fs_fd, subvol_id, err);
	if (r == -EBUSY)
		return vm_error_set(err, EBUSY,
				    "qgroup 0/%llu: subvolume deleted but not yet "
				    "cleaned up, retry after the cleaner dropped it",
				    (unsigned long long)subvol_id);
	return r;
}

int vm_quota_clear_stale(int fs_fd, unsigned *ret_skipped, struct vm_error *err)
{
	struct btrfs_ioctl_search_args args;
	unsigned removed = 0, skipped = 0;
	uint64_t next = 0;

	int r = check_fs_fd(fs_fd, err);
	if (r < 0)
		return r;
	r = require_enabled(fs_fd, err);
	if (r < 0)
		return r;

	/* Walk the level-0 info items (0, INFO, 0/id) in batches; removing
	 * items behind the cursor does not disturb the walk, which resumes
	 * after the last id seen. */
	for (;;) {
		memset(&args.key, 0, sizeof(args.key));
		args.key.tree_id = BTRFS_QUOTA_TREE_OBJECTID;
		args.key.min_type = args.key.max_type = BTRFS_QGROUP_INFO_KEY;
		args.key.min_offset = next;
		args.key.max_offset = QGROUP_LEVEL0_MAX;
		args.key.max_transid = UINT64_MAX;
		args.key.nr_items = UINT32_MAX;
		if (ioctl(fs_fd, BTRFS_IOC_TREE_SEARCH, &args) < 0) {
			if (errno == ENOENT)
				return vm_error_set(err, ENOTCONN,
						    "quota is not enabled on the pool");
			return vm_error_errno(err, errno, "cannot list qgroups");
		}
		if (args.key.nr_items == 0)
			break;

		uint64_t ids[BTRFS_SEARCH_ARGS_BUFSIZE /
			     sizeof(struct btrfs_ioctl_search_header)];
		size_t n = 0, off = 0;
		for (uint32_t i = 0; i < args.key.nr_items; i++) {
			struct btrfs_ioctl_search_header sh;
			if (off + sizeof(sh) > sizeof(args.buf))
				return vm_error_set(err, EBADMSG, "qgroup listing truncated");
			memcpy(&sh, args.buf + off, sizeof(sh));
			off += sizeof(sh);
			if (sh.len > sizeof(args.buf) - off)
				return vm_error_set(err, EBADMSG, "qgroup listing truncated");
			off += sh.len;
			if (sh.objectid == 0 && sh.type == BTRFS_QGROUP_INFO_KEY &&
			    sh.offset >= next && sh.offset <= QGROUP_LEVEL0_MAX &&
			    n < ELEMENTSOF(ids))
				ids[n++] = sh.offset;
		}
		if (n == 0) /* cannot happen with a sane kernel: do not spin */
			return vm_error_set(err, EBADMSG, "qgroup listing made no progress");
		next = ids[n - 1] + 1;

		for (size_t i = 0; i < n; i++) {
			enum subvol_state state;
			if (ids[i] == BTRFS_FS_TREE_OBJECTID)
				continue;
			r = subvol_state(fs_fd, ids[i], &state, err);
			if (r < 0)
				return r;
			if (state == SUBVOL_LIVE)
				continue;
			r = remove_qgroup(fs_fd, ids[i], err);
			if (r == -EBUSY)
				skipped++;
			else if (r < 0)
				return r;
			else
				removed += (unsigned)r;
		}
		if (next > QGROUP_LEVEL0_MAX)
			break;
	}
	if (ret_skipped)
		*ret_skipped = skipped;
	return removed > INT32_MAX ? INT32_MAX : (int)removed;
}

/* ---- level-1 qgroups, relations, subvolume links ---- */

struct key3 {
	uint64_t objectid;
	uint32_t type;
	uint64_t offset;
};

static bool key_inc(struct key3 *k)
{
	if (k->offset < UINT64_MAX) {
		k->offset++;
	} else if (k->type < 0xff) {
		k->type++;
		k->offset = 0;
	} else if (k->objectid < UINT64_MAX) {
		k->objectid++;
		k->type = 0;
		k->offset = 0;
	} else {
		return false;
	}
	return true;
}

static int key_cmp(const struct key3 *a, const struct key3 *b)
{
	if (a->objectid != b->objectid)
		return a->objectid < b->objectid ? -1 : 1;
	if (a->type != b->type)
		return a->type < b->type ? -1 : 1;
	if (a->offset != b->offset)
		return a->offset < b->offset ? -1 : 1;
	return 0;
}

/* Every item of tree with a key in [lo, hi] (btrfs key order), in order:
 * each goes to cb, which returns 0 to go on, 1 to stop, or a negative
 * errno to stop with.  The search resumes after the last key it got, so
 * a batch that ends inside one objectid's items loses nothing.  Returns
 * 0, 1 (cb stopped), or a negative errno (-ENOENT: no such tree). */
#define SEARCH_BUF (64 * 1024)
static int search_range(int fs_fd, uint64_t tree, struct key3 lo, struct key3 hi,
			int (*cb)(void *ctx, const struct key3 *k, const unsigned char *item,
				  size_t len),
			void *ctx)
{
	_cleanup_free_ struct btrfs_ioctl_search_args_v2 *args =
		malloc(sizeof(*args) + SEARCH_BUF);
	if (!args)
		return -ENOMEM;
	while (key_cmp(&lo, &hi) <= 0) {
		memset(&args->key, 0, sizeof(args->key));
		args->key.tree_id = tree;
		args->key.min_objectid = lo.objectid;
		args->key.min_type = lo.type;
		args->key.min_offset = lo.offset;
		args->key.max_objectid = hi.objectid;
		args->key.max_type = hi.type;
		args->key.max_offset = hi.offset;
		args->key.max_transid = UINT64_MAX;
		args->key.nr_items = UINT32_MAX;
		args->buf_size = SEARCH_BUF;
		if (ioctl(fs_fd, BTRFS_IOC_TREE_SEARCH_V2, args) < 0)
			return -errno;
		if (args->key.nr_items == 0)
			return 0;
		size_t off = 0;
		struct key3 last = lo;
		for (uint32_t i = 0; i < args->key.nr_items; i++) {
			struct btrfs_ioctl_search_header sh;
			if (off + sizeof(sh) > SEARCH_BUF)
				return -EBADMSG;
			memcpy(&sh, args->buf + off, sizeof(sh));
			off += sizeof(sh);
			if (sh.len > SEARCH_BUF - off)
				return -EBADMSG;
			struct key3 k = { sh.objectid, sh.type, sh.offset };
			/* Going backwards or out of range is a kernel bug: do
			 * not spin on it. */
			if (key_cmp(&k, &lo) < 0 || key_cmp(&k, &hi) > 0 ||
			    (i > 0 && key_cmp(&k, &last) <= 0))
				return -EBADMSG;
			int r = cb(ctx, &k, args->buf + off, sh.len);
			if (r != 0)
				return r;
			off += sh.len;
			last = k;
		}
		lo = last;
		if (!key_inc(&lo))
			return 0;
	}
	return 0;
}

/* Offsets of the items (objectid, type, [from, to]), at most max. */
struct offsets_ctx {
	uint64_t objectid;
	uint32_t type;
	uint64_t *ids;
	size_t max, n;
	bool more;
};

static int offsets_cb(void *ctx, const struct key3 *k, const unsigned char *item, size_t len)
{
	struct offsets_ctx *c = ctx;
	(void)item;
	(void)len;
	/* The range is one (objectid, type): anything else is skipped. */
	if (k->objectid != c->objectid || k->type != c->type)
		return 0;
	if (c->n == c->max) {
		c->more = true;
		return 1;
	}
	c->ids[c->n++] = k->offset;
	return 0;
}

static int search_offsets(int fs_fd, uint64_t tree, uint64_t objectid, uint32_t type,
			  uint64_t from, uint64_t to, uint64_t *ret, size_t max, size_t *ret_n)
{
	struct offsets_ctx c = { objectid, type, ret, max, 0, false };
	int r = search_range(fs_fd, tree, (struct key3){ objectid, type, from },
			     (struct key3){ objectid, type, to }, offsets_cb, &c);
	if (r < 0)
		return r;
	*ret_n = c.n;
	return c.more ? 1 : 0;
}

int vm_quota_group_create(int fs_fd, uint64_t qgroupid, struct vm_error *err)
{
	int r = check_fs_fd(fs_fd, err);
	if (r < 0)
		return r;
	if (VM_QGROUP_LEVEL(qgroupid) == 0)
		return vm_error_set(err, EINVAL,
				    "qgroup " QG_FMT ": level-0 qgroups belong to subvolumes",
				    QG_ARGS(qgroupid));
	struct btrfs_ioctl_qgroup_create_args args = {
		.create = 1,
		.qgroupid = qgroupid,
	};
	if (ioctl(fs_fd, BTRFS_IOC_QGROUP_CREATE, &args) < 0) {
		int e = errno;
		if (e == ENOTCONN)
			return vm_error_set(err, e, "quota is not enabled on the pool");
		if (e == EEXIST)
			return vm_error_set(err, e, "qgroup " QG_FMT " exists", QG_ARGS(qgroupid));
		return vm_error_errno(err, e, "cannot create qgroup " QG_FMT, QG_ARGS(qgroupid));
	}
	return 0;
}

int vm_quota_group_remove(int fs_fd, uint64_t qgroupid, struct vm_error *err)
{
	int r = check_fs_fd(fs_fd, err);
	if (r < 0)
		return r;
	if (VM_QGROUP_LEVEL(qgroupid) == 0)
		return vm_error_set(err, EINVAL,
				    "qgroup " QG_FMT ": level-0 qgroups go with vm_quota_destroy",
				    QG_ARGS(qgroupid));
	struct btrfs_ioctl_qgroup_create_args args = {
		.create = 0,
		.qgroupid = qgroupid,
	};
	if (ioctl(fs_fd, BTRFS_IOC_QGROUP_CREATE, &args) == 0)
		return 1;
	int e = errno;
	if (e == ENOENT)
		return 0;
	if (e == ENOTCONN)
		return vm_error_set(err, e, "quota is not enabled on the pool");
	if (e == EBUSY)
		return vm_error_set(err, e, "qgroup " QG_FMT " still has members",
				    QG_ARGS(qgroupid));
	return vm_error_errno(err, e, "cannot remove qgroup " QG_FMT, QG_ARGS(qgroupid));
}

int vm_quota_group_assign(int fs_fd, uint64_t member, uint64_t parent, bool assign,
			  struct vm_error *err)
{
	int r = check_fs_fd(fs_fd, err);
	if (r < 0)
		return r;
	if ((r = check_qgroup(member, err)) < 0 || (r = check_qgroup(parent, err)) < 0)
		return r;
	if (VM_QGROUP_LEVEL(member) >= VM_QGROUP_LEVEL(parent))
		return vm_error_set(err, EINVAL,
				    "qgroup " QG_FMT " cannot be a member of " QG_FMT,
				    QG_ARGS(member), QG_ARGS(parent));
	struct btrfs_ioctl_qgroup_assign_args args = {
		.assign = assign,
		.src = member,
		.dst = parent,
	};
	/* A positive answer: the relation changed, but full accounting
	 * could not carry the member's numbers over (they were not all
	 * exclusive) and marked every number inconsistent. */
	int k = ioctl(fs_fd, BTRFS_IOC_QGROUP_ASSIGN, &args);
	if (k >= 0)
		return k > 0 ? 1 : 0;
	int e = errno;
	if (e == ENOTCONN)
		return vm_error_set(err, e, "quota is not enabled on the pool");
	if (e == EEXIST)
		return vm_error_set(err, e, "qgroup " QG_FMT " is a member of " QG_FMT " already",
				    QG_ARGS(member), QG_ARGS(parent));
	return vm_error_errno(err, e, "cannot %s qgroup " QG_FMT " %s " QG_FMT,
			      assign ? "assign" : "unassign", QG_ARGS(member),
			      assign ? "to" : "from", QG_ARGS(parent));
}

int vm_quota_group_relations(int fs_fd, uint64_t qgroupid, bool parents, uint64_t from,
			     uint64_t *ret_ids, size_t max, size_t *ret_n, struct vm_error *err)
{
	int r = check_fs_fd(fs_fd, err);
	if (r < 0)
		return r;
	if ((r = check_qgroup(qgroupid, err)) < 0)
		return r;
	if (!ret_ids || !ret_n || max == 0)
		return vm_error_set(err, EINVAL, "no place for the qgroup relations");
	/* (a, RELATION, b) is stored both ways: a member's items point up
	 * (b > a: a parent is of a higher level), a group's point down. */
	uint64_t lo = parents ? qgroupid + 1 : 0, hi = parents ? UINT64_MAX : qgroupid - 1;
	if (from > lo)
		lo = from;
	if ((parents && qgroupid == UINT64_MAX) || (!parents && qgroupid == 0) || lo > hi) {
		*ret_n = 0;
		return 0;
	}
	r = search_offsets(fs_fd, BTRFS_QUOTA_TREE_OBJECTID, qgroupid, BTRFS_QGROUP_RELATION_KEY,
			   lo, hi, ret_ids, max, ret_n);
	if (r == -ENOENT)
		return vm_error_set(err, ENOTCONN, "quota is not enabled on the pool");
	if (r < 0)
		return vm_error_errno(err, -r, "cannot read the relations of qgroup " QG_FMT,
				      QG_ARGS(qgroupid));
	return r;
}

int vm_quota_groups(int fs_fd, unsigned level, uint64_t from, uint64_t *ret_ids, size_t max,
		    size_t *ret_n, struct vm_error *err)
{
	int r = check_fs_fd(fs_fd, err);
	if (r < 0)
		return r;
	if (!ret_ids || !ret_n || max == 0 || level > 0xffff)
		return vm_error_set(err, EINVAL, "invalid qgroup listing");
	uint64_t lo = VM_QGROUP(level, 0), hi = VM_QGROUP(level, QGROUP_LEVEL0_MAX);
	if (from > lo)
		lo = from;
	if (lo > hi) {
		*ret_n = 0;
		return 0;
	}
	r = search_offsets(fs_fd, BTRFS_QUOTA_TREE_OBJECTID, 0, BTRFS_QGROUP_INFO_KEY, lo, hi,
			   ret_ids, max, ret_n);
	if (r == -ENOENT)
		return vm_error_set(err, ENOTCONN, "quota is not enabled on the pool");
	if (r < 0)
		return vm_error_errno(err, -r, "cannot list qgroups");
	return r;
}

int vm_quota_group_exists(int fs_fd, uint64_t qgroupid, struct vm_error *err)
{
	unsigned char buf[1];
	size_t len;
	int r = check_fs_fd(fs_fd, err);
	if (r < 0)
		return r;
	if ((r = check_qgroup(qgroupid, err)) < 0)
		return r;
	r = search_one(fs_fd, BTRFS_QUOTA_TREE_OBJECTID, 0, BTRFS_QGROUP_INFO_KEY, qgroupid,
		       qgroupid, buf, 0, &len);
	if (r == -ENOENT)
		return vm_error_set(err, ENOTCONN, "quota is not enabled on the pool");
	if (r < 0)
		return vm_error_errno(err, -r, "cannot read qgroup " QG_FMT, QG_ARGS(qgroupid));
	return r;
}

struct links_ctx {
	struct vm_subvol_link *links;
	size_t max, n;
	bool more;
};

static int links_cb(void *ctx, const struct key3 *k, const unsigned char *item, size_t len)
{
	struct links_ctx *c = ctx;
	/* The key range spans objectids, so the other items of the ones in
	 * between (ROOT_ITEM, ROOT_REF) come too. */
	if (k->type != BTRFS_ROOT_BACKREF_KEY)
		return 0;
	/* A subvolume has one link (subvolumes have no hard links). */
	if (c->n > 0 && c->links[c->n - 1].id == k->objectid)
		return 0;
	if (c->n == c->max) {
		c->more = true;
		return 1;
	}
	c->links[c->n++] = (struct vm_subvol_link){
		.id = k->objectid,
		.parent = k->offset,
		/* struct btrfs_root_ref starts with the directory's inode */
		.dirid = len >= sizeof(uint64_t) ? vm_get_le64(item) : 0,
	};
	return 0;
}

int vm_quota_subvol_links(int fs_fd, uint64_t from, struct vm_subvol_link *ret, size_t max,
			  size_t *ret_n, struct vm_error *err)
{
	int r = check_fs_fd(fs_fd, err);
	if (r < 0)
		return r;
	if (!ret || !ret_n || max == 0)
		return vm_error_set(err, EINVAL, "no place for the subvolume links");
	if (from < BTRFS_FIRST_FREE_OBJECTID)
		from = BTRFS_FIRST_FREE_OBJECTID;
	struct links_ctx c = { ret, max, 0, false };
	/* (child, ROOT_BACKREF, parent) in the root tree: every subvolume
	 * linked into a directory has one; deleting it unlinks it at once. */
	r = search_range(fs_fd, BTRFS_ROOT_TREE_OBJECTID,
			 (struct key3){ from, BTRFS_ROOT_BACKREF_KEY, 0 },
			 (struct key3){ QGROUP_LEVEL0_MAX, BTRFS_ROOT_BACKREF_KEY, UINT64_MAX },
			 links_cb, &c);
	if (r < 0)
		return vm_error_errno(err, -r, "cannot list subvolumes");
	*ret_n = c.n;
	return c.more ? 1 : 0;
}

int vm_quota_subvol_live(int fs_fd, uint64_t subvol_id, bool *ret_live, struct vm_error *err)
{
	enum subvol_state state;
	int r = check_fs_fd(fs_fd, err);
	if (r < 0)
		return r;
	if ((r = check_subvol_id(subvol_id, err)) < 0)
		return r;
	if (!ret_live)
		return vm_error_set(err, EINVAL, "no place for the subvolume state");
	r = subvol_state(fs_fd, subvol_id, &state, err);
	if (r < 0)
		return r;
	*ret_live = state == SUBVOL_LIVE;
	return 0;
}

struct parent_ctx {
	uint64_t id, parent, dirid;
	bool found;
};

static int parent_cb(void *ctx, const struct key3 *k, const unsigned char *item, size_t len)
{
	struct parent_ctx *c = ctx;
	if (k->objectid != c->id || k->type != BTRFS_ROOT_BACKREF_KEY)
		return 0;
	c->parent = k->offset;
	c->dirid = len >= sizeof(uint64_t) ? vm_get_le64(item) : 0;
	c->found = true;
	return 1;
}

int vm_quota_subvol_parent(int fs_fd, uint64_t subvol_id, uint64_t *ret_parent,
			   uint64_t *ret_dirid, struct vm_error *err)
{
	int r = check_fs_fd(fs_fd, err);
	if (r < 0)
		return r;
	if ((r = check_subvol_id(subvol_id, err)) < 0)
		return r;
	struct parent_ctx c = { .id = subvol_id };
	r = search_range(fs_fd, BTRFS_ROOT_TREE_OBJECTID,
			 (struct key3){ subvol_id, BTRFS_ROOT_BACKREF_KEY, 0 },
			 (struct key3){ subvol_id, BTRFS_ROOT_BACKREF_KEY, UINT64_MAX }, parent_cb,
			 &c);
	if (r < 0)
		return vm_error_errno(err, -r, "cannot look up subvolume %llu",
				      (unsigned long long)subvol_id);
	if (!c.found)
		return 0;
	if (ret_parent)
		*ret_parent = c.parent;
	if (ret_dirid)
		*ret_dirid = c.dirid;
	return 1;
}

int vm_quota_group_unlimit(int fs_fd, uint64_t qgroupid, struct vm_error *err)
{
	int r = check_fs_fd(fs_fd, err);
	if (r < 0)
		return r;
	if ((r = check_qgroup(qgroupid, err)) < 0)
		return r;
	struct btrfs_ioctl_qgroup_limit_args args = {
		.qgroupid = qgroupid,
		.lim = {
			.flags = BTRFS_QGROUP_LIMIT_MAX_RFER | BTRFS_QGROUP_LIMIT_MAX_EXCL,
			.max_rfer = QGROUP_LIMIT_CLEAR,
			.max_excl = QGROUP_LIMIT_CLEAR,
		},
	};
	if (ioctl(fs_fd, BTRFS_IOC_QGROUP_LIMIT, &args) < 0) {
		int e = errno;
		if (e == ENOTCONN)
			return vm_error_set(err, e, "quota is not enabled on the pool");
		if (e == ENOENT)
			return vm_error_set(err, e, "no qgroup " QG_FMT, QG_ARGS(qgroupid));
		return vm_error_errno(err, e, "cannot clear the limits of qgroup " QG_FMT,
				      QG_ARGS(qgroupid));
	}
	return 0;
}

int vm_quota_subvol_children(int fs_fd, uint64_t subvol_id, uint64_t from, uint64_t *ret_ids,
			     size_t max, size_t *ret_n, struct vm_error *err)
{
	int r = check_fs_fd(fs_fd, err);
	if (r < 0)
		return r;
	if ((r = check_subvol_id(subvol_id, err)) < 0)
		return r;
	if (!ret_ids || !ret_n || max == 0)
		return vm_error_set(err, EINVAL, "no place for the subvolumes");
	/* (parent, ROOT_REF, child) in the root tree. */
	r = search_offsets(fs_fd, BTRFS_ROOT_TREE_OBJECTID, subvol_id, BTRFS_ROOT_REF_KEY, from,
			   QGROUP_LEVEL0_MAX, ret_ids, max, ret_n);
	if (r < 0)
		return vm_error_errno(err, -r, "cannot list the subvolumes in %llu",
				      (unsigned long long)subvol_id);
	return r;
}
