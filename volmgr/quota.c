/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "quota.h"

#include <endian.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <linux/magic.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>

/* Linux 6.7 (simple quotas); older uapi headers lack it. */
#ifndef BTRFS_QGROUP_STATUS_FLAG_SIMPLE_MODE
#define BTRFS_QGROUP_STATUS_FLAG_SIMPLE_MODE (1ULL << 3)
#endif

_Static_assert(VM_QUOTA_FLAG_ON == BTRFS_QGROUP_STATUS_FLAG_ON, "flag value");
_Static_assert(VM_QUOTA_FLAG_RESCAN == BTRFS_QGROUP_STATUS_FLAG_RESCAN, "flag value");
_Static_assert(VM_QUOTA_FLAG_INCONSISTENT == BTRFS_QGROUP_STATUS_FLAG_INCONSISTENT,
	       "flag value");
_Static_assert(VM_QUOTA_FLAG_SIMPLE_MODE == BTRFS_QGROUP_STATUS_FLAG_SIMPLE_MODE,
	       "flag value");

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

static uint64_t get_le64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static uint32_t get_le32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return le32toh(v);
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
	*ret_flags = get_le64(item + offsetof(struct btrfs_qgroup_status_item, flags));
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

int vm_quota_limit_exclusive(int fs_fd, uint64_t subvol_id, uint64_t bytes,
			     struct vm_error *err)
{
	int r = check_fs_fd(fs_fd, err);
	if (r < 0)
		return r;
	r = check_subvol_id(subvol_id, err);
	if (r < 0)
		return r;
	if (bytes > VM_SIZE_MAX)
		return vm_error_set(err, ERANGE,
				    "exclusive limit %llu is larger than %llu bytes",
				    (unsigned long long)bytes,
				    (unsigned long long)VM_SIZE_MAX);

	struct btrfs_ioctl_qgroup_limit_args args = {
		.qgroupid = subvol_id,
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
		return vm_error_errno(err, e, "cannot %s the exclusive limit of qgroup 0/%llu",
				      bytes > 0 ? "set" : "clear",
				      (unsigned long long)subvol_id);
	}
	return 0;
}

int vm_quota_usage(int fs_fd, uint64_t subvol_id, uint64_t *ret_referenced,
		   uint64_t *ret_exclusive, uint64_t *ret_limit_excl,
		   struct vm_error *err)
{
	unsigned char info[sizeof(struct btrfs_qgroup_info_item)];
	unsigned char lim[sizeof(struct btrfs_qgroup_limit_item)];
	size_t len;

	int r = check_fs_fd(fs_fd, err);
	if (r < 0)
		return r;
	r = check_subvol_id(subvol_id, err);
	if (r < 0)
		return r;

	r = search_one(fs_fd, BTRFS_QUOTA_TREE_OBJECTID, 0, BTRFS_QGROUP_INFO_KEY,
		       subvol_id, subvol_id, info, sizeof(info), &len);
	if (r == -ENOENT)
		return vm_error_set(err, ENOTCONN, "quota is not enabled on the pool");
	if (r < 0)
		return vm_error_errno(err, r, "cannot read qgroup 0/%llu",
				      (unsigned long long)subvol_id);
	if (r == 0)
		return vm_error_set(err, ENOENT, "no qgroup 0/%llu",
				    (unsigned long long)subvol_id);
	if (len < sizeof(info))
		return vm_error_set(err, EBADMSG, "qgroup 0/%llu: info item too short",
				    (unsigned long long)subvol_id);
	uint64_t rfer = get_le64(info + offsetof(struct btrfs_qgroup_info_item, rfer));
	uint64_t excl = get_le64(info + offsetof(struct btrfs_qgroup_info_item, excl));

	/* The kernel writes the limit item together with the info item; a
	 * missing one means no limit. */
	uint64_t limit = 0;
	r = search_one(fs_fd, BTRFS_QUOTA_TREE_OBJECTID, 0, BTRFS_QGROUP_LIMIT_KEY,
		       subvol_id, subvol_id, lim, sizeof(lim), &len);
	if (r == -ENOENT) /* quota turned off in between */
		return vm_error_set(err, ENOTCONN, "quota is not enabled on the pool");
	if (r < 0)
		return vm_error_errno(err, r, "cannot read the limits of qgroup 0/%llu",
				      (unsigned long long)subvol_id);
	if (r > 0) {
		if (len < sizeof(lim))
			return vm_error_set(err, EBADMSG,
					    "qgroup 0/%llu: limit item too short",
					    (unsigned long long)subvol_id);
		uint64_t flags = get_le64(lim + offsetof(struct btrfs_qgroup_limit_item, flags));
		if (flags & BTRFS_QGROUP_LIMIT_MAX_EXCL)
			limit = get_le64(lim + offsetof(struct btrfs_qgroup_limit_item,
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
	if (get_le32(item + refs_at) == 0) {
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

/* ---- sizes ---- */

