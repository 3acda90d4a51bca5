/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tree.h"

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

static int remove_children(int dirfd, unsigned depth, struct vm_error *err)
{
	if (depth >= VM_TREE_MAX_DEPTH * 4)
		return vm_error_set(err, ELOOP, "tree too deep to remove");
	int dfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	if (dfd < 0)
		return vm_error_errno(err, errno, "cannot dup directory fd");
	DIR *d = fdopendir(dfd);
	if (!d) {
		int e = errno;
		close(dfd);
		return vm_error_errno(err, e, "cannot read directory");
	}
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!vm_is_plain_component(de->d_name))
			continue;
		if (unlinkat(dirfd, de->d_name, 0) == 0)
			continue;
		if (errno != EISDIR && errno != EPERM) {
			r = vm_error_errno(err, errno, "cannot remove %s", de->d_name);
			break;
		}
		_cleanup_close_ int sub = vm_openat_beneath(
			dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		if (sub < 0) {
			r = vm_error_errno(err, -sub, "cannot open %s", de->d_name);
			break;
		}
		r = remove_children(sub, depth + 1, err);
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
	if (fd < 0)
		return vm_error_errno(err, -fd, "cannot open %s", name);
	int r = remove_children(fd, 0, err);
	if (r < 0)
		return r;
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0)
		return vm_error_errno(err, errno, "cannot remove %s", name);
	return 0;
}
