/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tree.h"

#include "btrfs.h"
#include "copy.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/xattr.h>

/* The copy engine does the work now (copy.c); this keeps the older
 * callers' interface: data copied, io_uring when the probe passes. */
int vm_tree_copy(int src_fd, int dst_fd, const struct vm_reader *reader,
		 struct vm_copy_stats *stats, struct vm_error *err)
{
	struct vm_copy_opts opts = {
		.data = VM_COPY_DATA_COPY,
		.io = VM_COPY_IO_AUTO,
		.reader = reader,
	};
	struct vm_copy_report rep;
	int r = vm_copy_tree(src_fd, dst_fd, &opts, &rep, err);
	if (stats)
		*stats = rep.stats;
	return r;
}

/* Removal recurses at most this deep, holding one directory fd and
 * stream per level; a deeper subtree is moved up to the top of the tree
 * being removed and removed from there in a later pass, so any depth a
 * job can make goes away with bounded fds and memory. */
#define REMOVE_MAX_DEPTH 64
/* The root directory of every btrfs subvolume has this inode number. */
#define BTRFS_SUBVOL_ROOT_INO 256

struct remove_ctx {
	int top_fd;        /* the directory being emptied */
	unsigned long seq; /* names for hoisted subtrees */
	unsigned hoisted;  /* moved up in this pass */
	struct vm_error *err;
};

/* Move dirfd/name to the top of the tree under a fresh name. */
static int hoist(struct remove_ctx *c, int dirfd, const char *name)
{
	for (;;) {
		char to[64];
		snprintf(to, sizeof(to), "volmgr-deep-%lu", c->seq++);
		if (renameat2(dirfd, name, c->top_fd, to, RENAME_NOREPLACE) == 0) {
			c->hoisted++;
			return 0;
		}
		if (errno != EEXIST)
			return vm_error_errno(c->err, errno, "cannot move %s up to remove it", name);
	}
}

static int remove_children(int dirfd, unsigned depth, struct remove_ctx *c)
{
	struct vm_error *err = c->err;
	int dfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	if (dfd < 0)
		return vm_error_errno(err, errno, "cannot dup directory fd");
	DIR *d = fdopendir(dfd);
	if (!d) {
		int e = errno;
		close(dfd);
		return vm_error_errno(err, e, "cannot read directory");
	}
	/* The dup shares dirfd's offset: a later pass over the same
	 * directory must start at its beginning again. */
	rewinddir(d);
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!vm_is_plain_component(de->d_name))
			continue;
		if (unlinkat(dirfd, de->d_name, 0) == 0)
			continue;
		if (errno == EPERM) {
			/* EPERM: a directory on some file systems, or a file that
			 * may not be removed (immutable, append-only). */
			struct stat st;
			if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    !S_ISDIR(st.st_mode)) {
				r = vm_error_errno(err, EPERM, "cannot remove %s", de->d_name);
				break;
			}
		} else if (errno != EISDIR) {
			r = vm_error_errno(err, errno, "cannot remove %s", de->d_name);
			break;
		}
		if (depth + 1 >= REMOVE_MAX_DEPTH) {
			if ((r = hoist(c, dirfd, de->d_name)) < 0)
				break;
			continue;
		}
		_cleanup_close_ int sub = vm_openat_beneath(
			dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		if (sub < 0) {
			r = vm_error_errno(err, -sub, "cannot open %s", de->d_name);
			break;
		}
		/* A btrfs subvolume (a nested podman's, in a plain-directory
		 * volume): deleted with what is nested in it, read-only ones
		 * too, by the subvolume walk (btrfs-delete.c). */
		struct stat st;
		if (fstat(sub, &st) == 0 && st.st_ino == BTRFS_SUBVOL_ROOT_INO &&
		    vm_btrfs_is_subvolume(sub) == 1) {
			closep(&sub);
			if ((r = vm_btrfs_delete(dirfd, de->d_name, err)) < 0)
				break;
			continue;
		}
		r = remove_children(sub, depth + 1, c);
		if (r < 0)
			break;
		if (unlinkat(dirfd, de->d_name, AT_REMOVEDIR) < 0) {
			r = vm_error_errno(err, errno, "cannot remove %s", de->d_name);
			break;
		}
	}
	closedir(d);
	return r;
}

int vm_tree_remove(int dirfd, const char *name, struct vm_error *err)
{
	if (unlinkat(dirfd, name, 0) == 0)
		return 0;
	if (errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return vm_error_errno(err, errno, "cannot remove %s", name);
	_cleanup_close_ int fd = vm_openat_beneath(
		dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd == -ENOTDIR) /* EPERM on a file: immutable or append-only */
		return vm_error_errno(err, EPERM, "cannot remove %s", name);
	if (fd < 0)
		return vm_error_errno(err, -fd, "cannot open %s", name);
	struct remove_ctx c = {.top_fd = fd, .err = err};
	/* Passes until nothing was moved up: each pass removes what it
	 * reached and hoists what lies deeper. */
	do {
		c.hoisted = 0;
		int r = remove_children(fd, 0, &c);
		if (r < 0)
			return r;
	} while (c.hoisted);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0)
		return vm_error_errno(err, errno, "cannot remove %s", name);
	return 0;
}
