/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Delete a subvolume and every subvolume nested in it, without ever
 * resolving a path that someone else can change.
 *
 * The trees deleted here were writable by others until a moment ago (a
 * job's volume, where the job may still hold a directory fd or its cwd;
 * git's failed trees, owned by the unprivileged git user), and those
 * others may keep exchanging directories with symlinks while the delete
 * runs.  libbtrfsutil's recursive delete resolves each nested
 * subvolume's path and opens its parent with a plain openat, following
 * such symlinks: it could be steered into deleting another volume.  So:
 *
 * - nested subvolumes are found by id, from the kernel's own records:
 *   the ROOT_REF items of the root tree (child id, directory, name);
 * - the directory holding a child is reached beneath the subvolume's fd
 *   one component at a time, never following a symlink
 *   (vm_open_path_beneath), and must then be that directory: the inode
 *   number the kernel recorded, on the subvolume's device;
 * - the child is opened beneath that directory the same way and must be
 *   a subvolume root (inode 256) with the expected id; only that fd is
 *   ever made writable (a nested podman leaves read-only subvolumes);
 * - it is destroyed by id (BTRFS_IOC_SNAP_DESTROY_V2 with
 *   BTRFS_SUBVOL_SPEC_BY_ID, Linux 5.7), or by name in the verified
 *   directory on older kernels (see destroy() for what either leaves).
 *
 * A walk that loses a race (a directory moved, swapped for a symlink)
 * looks again; it gives up with an error when it makes no progress many
 * times in a row, or after a bounded amount of work: the caller leaves
 * the tree in staging, to be retried at the next start. */
#include "btrfs.h"

#include "btrfs-le.h"
#include <endian.h>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>

/* Levels of nesting held open at once (two fds and one batch each); a
 * subvolume nested deeper is moved up to the top of the tree and deleted
 * from there, so any depth a job can make goes away. */
#define DELETE_MAX_DEPTH 32
/* Subvolumes destroyed or moved up in one delete: a job that keeps
 * making subvolumes in the tree cannot keep the delete going forever. */
#define DELETE_MAX_WORK 65536
/* Searches of the root tree in one delete. */
#define DELETE_MAX_SEARCHES 65536
/* Passes over one subvolume's children in a row in which none could be
 * reached (each lost a race) before giving up. */
#define DELETE_MAX_STALLS 64
/* Children looked up per search. */
#define DELETE_BATCH 16
/* Directories between a subvolume's root and a subvolume nested in it,
 * when their path is longer than the kernel hands out: a job cannot make
 * its space impossible to free by hiding a subvolume deep down. */
#define DELETE_MAX_DIR_DEPTH 65536

static bool force_by_name;

void vm_btrfs_delete_force_by_name(bool on) { force_by_name = on; }

struct child {
	uint64_t id;    /* its subvolume id */
	uint64_t dirid; /* the directory holding it, in the parent subvolume */
	char name[BTRFS_VOL_NAME_MAX + 1];
};

struct del_ctx {
	int top_fd;         /* the subvolume being deleted */
	uint64_t top_id;
	unsigned work;      /* subvolumes destroyed or moved up */
	unsigned searches;  /* root tree searches */
	bool no_by_id;      /* the kernel cannot destroy by id */
	struct vm_error *err;
};

/* Errors that mean "the tree changed under us": look again. */
static bool is_race(int e)
{
	return e == ENOENT || e == ELOOP || e == ENOTDIR || e == EXDEV || e == EAGAIN ||
	       e == ESTALE || e == ENOTEMPTY || e == EROFS || e == EINVAL;
}

/* The children of subvolume id with ids >= from, in id order: up to max
 * of them into out.  Returns how many, or a negative errno. */
static int list_children(int fd, uint64_t id, uint64_t from, struct child *out, int max)
{
	struct btrfs_ioctl_search_args args;
	memset(&args.key, 0, sizeof(args.key));
	args.key.tree_id = BTRFS_ROOT_TREE_OBJECTID;
	args.key.min_objectid = args.key.max_objectid = id;
	args.key.min_type = args.key.max_type = BTRFS_ROOT_REF_KEY;
	args.key.min_offset = from;
	args.key.max_offset = UINT64_MAX;
	args.key.max_transid = UINT64_MAX;
	args.key.nr_items = (uint32_t)max;
	if (ioctl(fd, BTRFS_IOC_TREE_SEARCH, &args) < 0)
		return -errno;
	size_t pos = 0;
	int n = 0;
	for (uint32_t i = 0; i < args.key.nr_items && n < max; i++) {
		struct btrfs_ioctl_search_header sh;
		if (pos + sizeof(sh) > sizeof(args.buf))
			return -EBADMSG;
		memcpy(&sh, args.buf + pos, sizeof(sh));
		pos += sizeof(sh);
		if (sh.len > sizeof(args.buf) - pos)
			return -EBADMSG;
		const unsigned char *item = (const unsigned char *)args.buf + pos;
		pos += sh.len;
		/* The range is one (objectid, type): anything else is a
		 * kernel bug, but never act on it. */
		if (sh.objectid != id || sh.type != BTRFS_ROOT_REF_KEY || sh.offset < from)
			return -EBADMSG;
		if (sh.len < sizeof(struct btrfs_root_ref))
			return -EBADMSG;
		uint16_t len = vm_get_le16(item + offsetof(struct btrfs_root_ref, name_len));
		const char *name = (const char *)item + sizeof(struct btrfs_root_ref);
		if (len == 0 || len > BTRFS_VOL_NAME_MAX ||
		    len > sh.len - sizeof(struct btrfs_root_ref) || memchr(name, '\0', len))
			return -EBADMSG;
		struct child *c = &out[n++];
		c->id = sh.offset;
		c->dirid = vm_get_le64(item + offsetof(struct btrfs_root_ref, dirid));
		memcpy(c->name, name, len);
		c->name[len] = '\0';
		if (!vm_is_plain_component(c->name) || c->id < BTRFS_FIRST_FREE_OBJECTID)
			return -EBADMSG;
	}
	return n;
}

/* The name of directory ino in its parent (the parent's inode number in
 * *ret_parent), from its INODE_REF item in subvolume tree: 0, or a
 * negative errno (-ENOENT: no such directory now). */
static int inode_ref(int fd, uint64_t tree, uint64_t ino, uint64_t *ret_parent,
		     char name[static BTRFS_VOL_NAME_MAX + 1])
{
	struct btrfs_ioctl_search_args args;
	memset(&args.key, 0, sizeof(args.key));
	args.key.tree_id = tree;
	args.key.min_objectid = args.key.max_objectid = ino;
	args.key.min_type = args.key.max_type = BTRFS_INODE_REF_KEY;
	args.key.max_offset = UINT64_MAX;
	args.key.max_transid = UINT64_MAX;
	args.key.nr_items = 1;
	if (ioctl(fd, BTRFS_IOC_TREE_SEARCH, &args) < 0)
		return -errno;
	if (args.key.nr_items == 0)
		return -ENOENT;
	struct btrfs_ioctl_search_header sh;
	memcpy(&sh, args.buf, sizeof(sh));
	const unsigned char *item = (const unsigned char *)args.buf + sizeof(sh);
	if (sh.objectid != ino || sh.type != BTRFS_INODE_REF_KEY ||
	    sh.len < sizeof(struct btrfs_inode_ref) || sh.len > sizeof(args.buf) - sizeof(sh))
		return -EBADMSG;
	uint16_t len = vm_get_le16(item + offsetof(struct btrfs_inode_ref, name_len));
	if (len == 0 || len > BTRFS_VOL_NAME_MAX || len > sh.len - sizeof(struct btrfs_inode_ref))
		return -EBADMSG;
	memcpy(name, item + sizeof(struct btrfs_inode_ref), len);
	name[len] = '\0';
	if (!vm_is_plain_component(name) || memchr(name, '\0', len))
		return -EBADMSG;
	*ret_parent = sh.offset;
	return 0;
}

/* Directory dirid of subvolume id, open at fd, deeper than a path the
 * kernel can hand out (BTRFS_IOC_INO_LOOKUP stops at 4,080 bytes): its
 * names collected up the INODE_REF items to the subvolume's root, then
 * walked down beneath fd one at a time.  Bounded by
 * DELETE_MAX_DIR_DEPTH levels. */
static int open_deep_dir(int fd, uint64_t id, uint64_t dirid)
{
	size_t n = 0, cap = 0;
	char (*names)[BTRFS_VOL_NAME_MAX + 1] = NULL;
	int r = 0;
	for (uint64_t cur = dirid; cur != BTRFS_FIRST_FREE_OBJECTID;) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			void *nn = ncap <= DELETE_MAX_DIR_DEPTH ? realloc(names, ncap * sizeof(*names)) : NULL;
			if (!nn) {
				r = ncap > DELETE_MAX_DIR_DEPTH ? -ENAMETOOLONG : -ENOMEM;
				goto out;
			}
			names = nn;
			cap = ncap;
		}
		uint64_t parent = 0;
		if ((r = inode_ref(fd, id, cur, &parent, names[n])) < 0)
			goto out;
		n++;
		cur = parent;
	}
	int dir = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (dir < 0) {
		r = -errno;
		goto out;
	}
	while (n > 0) {
		int next = vm_openat_beneath(dir, names[--n], O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		close(dir);
		if (next < 0) {
			r = next;
			goto out;
		}
		dir = next;
	}
	r = dir;
out:
	free(names);
	return r;
}

/* Open directory dirid of subvolume id (open at fd, on device dev):
 * its path from the kernel, walked beneath fd without following links,
 * and checked to be that very directory. */
static int open_dir(int fd, uint64_t id, dev_t dev, uint64_t dirid)
{
	_cleanup_close_ int dir = -1;
	if (dirid == BTRFS_FIRST_FREE_OBJECTID) {
		dir = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		if (dir < 0)
			return -errno;
	} else {
		struct btrfs_ioctl_ino_lookup_args a = {.treeid = id, .objectid = dirid};
		if (ioctl(fd, BTRFS_IOC_INO_LOOKUP, &a) < 0) {
			if (errno != ENAMETOOLONG)
				return -errno;
			/* Deeper than a path can say: name by name. */
			dir = open_deep_dir(fd, id, dirid);
			if (dir < 0)
				return dir;
			goto check;
		}
		a.name[sizeof(a.name) - 1] = '\0';
		size_t len = strlen(a.name);
		/* "a/b/": every component ends in a slash. */
		if (len == 0 || a.name[len - 1] != '/')
			return -EBADMSG;
		a.name[len - 1] = '\0';
		dir = vm_open_path_beneath(fd, a.name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dir < 0)
			return dir;
	}
check:;
	struct stat st;
	if (fstat(dir, &st) < 0)
		return -errno;
	if (st.st_dev != dev || st.st_ino != dirid)
		return -EAGAIN;
	return TAKE_FD(dir);
}

static int clear_read_only(int fd)
{
	uint64_t flags;
	if (ioctl(fd, BTRFS_IOC_SUBVOL_GETFLAGS, &flags) < 0)
		return -errno;
	if (!(flags & BTRFS_SUBVOL_RDONLY))
		return 0;
	flags &= ~(uint64_t)BTRFS_SUBVOL_RDONLY;
	return ioctl(fd, BTRFS_IOC_SUBVOL_SETFLAGS, &flags) < 0 ? -errno : 0;
}

/* Destroy subvolume id, verified a moment ago as dir/name on device dev
 * and emptied of subvolumes.  Returns 0 or a negative errno.
 *
 * By id, the kernel (fs/btrfs/ioctl.c, btrfs_ioctl_snap_destroy) ignores
 * dir but for write access to its mount: it takes the subvolume's parent
 * directory from the subvolume's own back reference and its name from
 * the root tree, looks that name up in that directory under the
 * directory's lock, and checks that what it finds is a subvolume root;
 * it does not check that it is subvolume id.  By name on an old kernel,
 * it looks name up in dir itself: the directory verified above, not a
 * path.  Either way the one thing left to a racer is to rename another
 * subvolume into that directory under that name in between; rename
 * stays within one mount and needs write access to both directories,
 * so that can only be a subvolume of the racer's own tree, which is
 * being deleted anyway.  Nothing outside the tree can be reached. */
static int destroy(struct del_ctx *c, int dir, uint64_t id, const char *name, dev_t dev)
{
	if (!c->no_by_id && !force_by_name) {
		struct btrfs_ioctl_vol_args_v2 a = {.flags = BTRFS_SUBVOL_SPEC_BY_ID, .subvolid = id};
		if (ioctl(dir, BTRFS_IOC_SNAP_DESTROY_V2, &a) == 0)
			return 0;
		/* ENOTTY: no SNAP_DESTROY_V2 (before 5.7); EOPNOTSUPP: no
		 * SPEC_BY_ID flag; ENAMETOOLONG: by id, the kernel builds the
		 * subvolume's whole path, which a job can make longer than it
		 * takes -- by name in the verified directory then, this one
		 * only.  Anything else is the real answer. */
		if (errno == ENOTTY || errno == EOPNOTSUPP)
			c->no_by_id = true;
		else if (errno != ENAMETOOLONG)
			return -errno;
	}
	/* One more look right before (it narrows the window, no more). */
	struct stat st;
	if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_ino != BTRFS_FIRST_FREE_OBJECTID || st.st_dev != dev)
		return -EAGAIN;
	struct btrfs_ioctl_vol_args a;
	memset(&a, 0, sizeof(a));
	size_t len = strlen(name);
	if (len >= sizeof(a.name))
		return -ENAMETOOLONG;
	memcpy(a.name, name, len);
	return ioctl(dir, BTRFS_IOC_SNAP_DESTROY, &a) < 0 ? -errno : 0;
}

static int give_up(struct del_ctx *c, const char *why)
{
	return vm_error_set(c->err, EBUSY,
			    "gave up deleting the subvolumes nested in subvolume %llu: %s",
			    (unsigned long long)c->top_id, why);
}

/* Move the verified child dir/name up to the top of the tree, from where
 * a later pass deletes it with fewer levels above it. */
static int hoist(struct del_ctx *c, int dir, const char *name)
{
	for (int i = 0; i < 16; i++) {
		char to[64], rnd[17];
		vm_random_hex(rnd, 16);
		snprintf(to, sizeof(to), "volmgr-deep-%s", rnd);
		if (renameat2(dir, name, c->top_fd, to, RENAME_NOREPLACE) == 0)
			return 0;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

static int empty_subvolume(struct del_ctx *c, int fd, uint64_t id, dev_t dev, unsigned depth);

/* Delete one child of subvolume id (open at fd, device dev): 0 when it
 * was destroyed or moved up, -EAGAIN when the tree changed so that it
 * could not be reached as recorded, another negative errno on error. */
static int delete_child(struct del_ctx *c, int fd, uint64_t id, dev_t dev,
			const struct child *ch, unsigned depth)
{
	_cleanup_close_ int dir = open_dir(fd, id, dev, ch->dirid);
	if (dir < 0)
		return is_race(-dir) ? -EAGAIN : dir;
	_cleanup_close_ int sub = vm_openat_beneath(dir, ch->name,
						    O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (sub < 0)
		return is_race(-sub) ? -EAGAIN : sub;
	struct stat st;
	if (fstat(sub, &st) < 0)
		return -errno;
	uint64_t sub_id;
	if (!S_ISDIR(st.st_mode) || st.st_ino != BTRFS_FIRST_FREE_OBJECTID || st.st_dev == dev ||
	    vm_btrfs_subvolume_id(sub, &sub_id) < 0 || sub_id != ch->id)
		return -EAGAIN;
	int r;
	if (depth + 1 >= DELETE_MAX_DEPTH) {
		r = hoist(c, dir, ch->name);
	} else {
		r = empty_subvolume(c, sub, ch->id, st.st_dev, depth + 1);
		if (r < 0)
			return r;
		closep(&sub);
		r = destroy(c, dir, ch->id, ch->name, st.st_dev);
	}
	if (r < 0)
		return is_race(-r) ? -EAGAIN : r;
	c->work++;
	return 0;
}

/* Delete every subvolume nested in subvolume id, open (and verified) at
 * fd on device dev, depth levels below the top. */
static int empty_subvolume(struct del_ctx *c, int fd, uint64_t id, dev_t dev, unsigned depth)
{
	_cleanup_free_ struct child *batch = calloc(DELETE_BATCH, sizeof(*batch));
	if (!batch)
		return vm_error_set(c->err, ENOMEM, "out of memory");
	for (unsigned stalls = 0;;) {
		bool any = false, progress = false;
		uint64_t from = BTRFS_FIRST_FREE_OBJECTID;
		for (;;) {
			if (++c->searches > DELETE_MAX_SEARCHES)
				return give_up(c, "too many searches");
			int n = list_children(fd, id, from, batch, DELETE_BATCH);
			if (n < 0)
				return vm_error_errno(c->err, -n, "cannot list the subvolumes in subvolume %llu",
						      (unsigned long long)id);
			if (n == 0)
				break;
			if (!any) {
				/* Children cannot be unlinked from a read-only
				 * subvolume.  Each pass: its owner may have set
				 * the flag again. */
				int r = clear_read_only(fd);
				if (r < 0)
					return vm_error_errno(c->err, -r,
							      "cannot make subvolume %llu writable",
							      (unsigned long long)id);
				any = true;
			}
			for (int i = 0; i < n; i++) {
				if (c->work >= DELETE_MAX_WORK)
					return give_up(c, "too many subvolumes");
				int r = delete_child(c, fd, id, dev, &batch[i], depth);
				if (r == 0)
					progress = true;
				else if (r != -EAGAIN)
					return vm_error_errno(c->err, -r,
							      "cannot delete subvolume %llu (%s)",
							      (unsigned long long)batch[i].id,
							      batch[i].name);
			}
			if (batch[n - 1].id == UINT64_MAX)
				break;
			from = batch[n - 1].id + 1;
		}
		if (!any)
			return 0;
		if (progress) {
			stalls = 0;
			continue;
		}
		if (++stalls >= DELETE_MAX_STALLS)
			return give_up(c, "they keep moving");
		/* Lost every race this pass: let the racer run first. */
		nanosleep(&(struct timespec){0, (long)stalls * 100000L}, NULL);
	}
}

int vm_btrfs_delete(int parent_fd, const char *name, struct vm_error *err)
{
	_cleanup_close_ int fd = vm_openat_beneath(parent_fd, name,
						   O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0)
		return vm_error_errno(err, -fd, "cannot open subvolume %s", name);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return vm_error_errno(err, errno, "cannot stat subvolume %s", name);
	int r = vm_btrfs_is_subvolume(fd);
	if (r < 0)
		return vm_error_errno(err, -r, "cannot tell whether %s is a subvolume", name);
	if (r == 0)
		return vm_error_set(err, EINVAL, "cannot delete %s: not a btrfs subvolume", name);
	struct del_ctx c = {.top_fd = fd, .err = err};
	r = vm_btrfs_subvolume_id(fd, &c.top_id);
	if (r < 0)
		return vm_error_errno(err, -r, "cannot read the id of subvolume %s", name);
	for (unsigned tries = 0;; tries++) {
		r = empty_subvolume(&c, fd, c.top_id, st.st_dev, 0);
		if (r < 0)
			return r;
		r = destroy(&c, parent_fd, c.top_id, name, st.st_dev);
		if (r == 0)
			return 0;
		/* A subvolume made in it since the last look (ENOTEMPTY), or
		 * its flag set again (EROFS): once more, boundedly. */
		if ((r != -ENOTEMPTY && r != -EROFS && r != -EAGAIN) || tries + 1 >= DELETE_MAX_STALLS)
			return vm_error_errno(err, -r, "cannot delete subvolume %s", name);
	}
}

/* ---- the device numbers of the subvolumes nested in one ---- */

struct devs_ctx {
	dev_t *devs;
	size_t n, max;
	unsigned searches;
};

static int collect(struct devs_ctx *c, int fd, uint64_t id, dev_t dev, unsigned depth)
{
	if (depth >= DELETE_MAX_DEPTH)
		return -E2BIG;
	_cleanup_free_ struct child *batch = calloc(DELETE_BATCH, sizeof(*batch));
	if (!batch)
		return -ENOMEM;
	for (uint64_t from = BTRFS_FIRST_FREE_OBJECTID;;) {
		if (++c->searches > DELETE_MAX_SEARCHES)
			return -E2BIG;
		int n = list_children(fd, id, from, batch, DELETE_BATCH);
		if (n <= 0)
			return n;
		for (int i = 0; i < n; i++) {
			/* Reached as a delete reaches it; one that moved
			 * meanwhile is skipped (the caller only looks). */
			_cleanup_close_ int dir = open_dir(fd, id, dev, batch[i].dirid);
			_cleanup_close_ int sub = dir < 0 ? -1 : vm_openat_beneath(dir, batch[i].name,
					O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
			struct stat st;
			uint64_t sub_id;
			if (sub < 0 || fstat(sub, &st) < 0 || st.st_ino != BTRFS_FIRST_FREE_OBJECTID ||
			    st.st_dev == dev || vm_btrfs_subvolume_id(sub, &sub_id) < 0 ||
			    sub_id != batch[i].id)
				continue;
			if (c->n >= c->max)
				return -E2BIG;
			c->devs[c->n++] = st.st_dev;
			int r = collect(c, sub, sub_id, st.st_dev, depth + 1);
			if (r < 0)
				return r;
		}
		if (batch[n - 1].id == UINT64_MAX)
			return 0;
		from = batch[n - 1].id + 1;
	}
}

int vm_btrfs_nested_devs(int fd, dev_t *devs, size_t max, size_t *ret_n)
{
	struct stat st;
	uint64_t id;
	*ret_n = 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	int r = vm_btrfs_subvolume_id(fd, &id);
	if (r < 0)
		return r;
	struct devs_ctx c = {devs, 0, max, 0};
	r = collect(&c, fd, id, st.st_dev, 0);
	*ret_n = c.n;
	return r;
}
