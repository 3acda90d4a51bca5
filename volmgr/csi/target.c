/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The kubelet's side of a publish: its pod directories, walked from the
 * target root one component at a time without following a symbolic link
 * (a pod's other volumes live in the same tree, and a container may write
 * there), and the bind mount of a volume onto the target, made from file
 * descriptors (open_tree + move_mount) so no path is resolved twice. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "csi.h"
#include "util.h"

int csi_target_parent(const struct csi_plugin *p, const char *below, int *ret_fd,
		      const char **ret_last)
{
	const char *slash = strrchr(below, '/');
	char dir[PATH_MAX];
	size_t len = slash ? (size_t)(slash - below) : 0;
	memcpy(dir, below, len);
	dir[len] = '\0';
	/* vm_open_path_beneath: no "..", no symlink, no magic link. */
	int fd = vm_open_path_beneath(p->target_root_fd, dir, O_PATH | O_DIRECTORY);
	if (fd < 0)
		return fd == -ENOTDIR ? -ELOOP : fd;
	*ret_fd = fd;
	*ret_last = slash ? slash + 1 : below;
	return 0;
}

static int mnt_id(int dirfd, const char *name, uint64_t *ret, struct stat *ret_st)
{
	struct statx sx;
	if (statx(dirfd, name, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT,
		  STATX_MNT_ID | STATX_INO | STATX_TYPE, &sx) < 0)
		return -errno;
	if (!(sx.stx_mask & STATX_MNT_ID))
		return -EOPNOTSUPP;
	*ret = sx.stx_mnt_id;
	if (ret_st) {
		ret_st->st_dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
		ret_st->st_ino = sx.stx_ino;
		ret_st->st_mode = sx.stx_mode;
	}
	return 0;
}

int csi_is_mount_point(int dirfd, const char *name)
{
	uint64_t parent = 0, child = 0;
	struct stat st;
	int r = mnt_id(dirfd, "", &parent, NULL);
	if (r < 0 || (r = mnt_id(dirfd, name, &child, &st)) < 0)
		return r;
	if (S_ISLNK(st.st_mode))
		return -ELOOP;
	return parent != child;
}

int csi_shows(int dirfd, const char *name, int vol_fd)
{
	struct stat a, b;
	if (fstatat(dirfd, name, &a, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (fstat(vol_fd, &b) < 0)
		return -errno;
	return S_ISDIR(a.st_mode) && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* The mount itself, onto the directory open at target. */
static int bind_tree(int vol_fd, int target, bool readonly)
{
	_cleanup_close_ int tree = open_tree(vol_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
								AT_EMPTY_PATH);
	if (tree < 0)
		return -errno;
	/* The checkout is a job's: its set-user-id files and device nodes
	 * mean nothing on the node. */
	/* Private first: a clone of a mount in a shared peer group (the
	 * pool, shared in the DaemonSet) would stay in that group, and
	 * mounts would propagate between the pool and the pod's volume.
	 * Attached under the kubelet's shared tree it then gets a peer
	 * group of its own, which carries it to the node. */
	struct mount_attr attr = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
					      (readonly ? MOUNT_ATTR_RDONLY : 0),
				  .propagation = MS_PRIVATE};
	if (mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0 ||
	    move_mount(tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		return -errno;
	return 0;
}

int csi_bind(int dirfd, const char *name, int vol_fd, bool readonly, bool *ret_made_dir)
{
	*ret_made_dir = false;
	if (mkdirat(dirfd, name, 0750) == 0)
		*ret_made_dir = true;
	else if (errno != EEXIST)
		return -errno;
	int r, target = openat(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (target < 0) {
		r = -errno;
	} else {
		r = bind_tree(vol_fd, target, readonly);
		close(target);
	}
	if (r < 0 && *ret_made_dir) {
		(void)unlinkat(dirfd, name, AT_REMOVEDIR);
		*ret_made_dir = false;
	}
	return r;
}

int csi_unmount(int dirfd, const char *name)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* The magic link names the mount on top of the target, wherever the
	 * path would lead now. */
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (umount2(proc, 0) == 0)
		return 0;
	if (errno != EBUSY)
		return -errno;
	/* A process of the pod still inside (the kubelet unpublishes once
	 * the containers are gone, but a straggler of theirs may linger):
	 * detach it, so the target can go; the volume stays until the last
	 * user leaves and volmgrd can remove it. */
	return umount2(proc, MNT_DETACH) == 0 ? 0 : -errno;
}
