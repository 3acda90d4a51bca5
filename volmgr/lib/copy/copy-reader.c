/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reading the source as the caller who asked for the copy. */
#include "copy-private.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>

/* Source-side lookups and opens run with the reader's file-system
 * credentials: setfsuid/setfsgid and setgroups as raw system calls act on
 * this thread only (glibc's wrappers would change every thread), and a
 * non-zero fsuid drops the file capabilities of this thread until it is 0
 * again.  Everything on the destination side runs as root. */
int vm_copy_as_reader(const struct vm_copy_ctx *c)
{
	if (!c->reader)
		return 0;
	gid_t groups[VM_READER_GROUPS_MAX];
	for (int i = 0; i < c->reader->ngroups; i++)
		groups[i] = c->reader->groups[i];
	if (syscall(SYS_setgroups, (size_t)c->reader->ngroups, groups) < 0)
		return -errno;
	syscall(SYS_setfsgid, c->reader->gid);
	syscall(SYS_setfsuid, c->reader->uid);
	if ((uint32_t)syscall(SYS_setfsuid, -1) != c->reader->uid)
		return -EPERM;
	return 0;
}

void vm_copy_as_root(const struct vm_copy_ctx *c)
{
	if (!c->reader)
		return;
	syscall(SYS_setfsuid, 0);
	syscall(SYS_setfsgid, 0);
	syscall(SYS_setgroups, (size_t)0, NULL);
}

int vm_copy_src_fstatat(struct vm_copy_ctx *c, int dir, const char *name, struct stat *st)
{
	int r = vm_copy_as_reader(c);
	if (r == 0)
		r = fstatat(dir, name, st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	vm_copy_as_root(c);
	return r;
}

int vm_copy_src_open(struct vm_copy_ctx *c, int dir, const char *name, int flags)
{
	int r = vm_copy_as_reader(c);
	if (r == 0)
		r = vm_openat_beneath(dir, name, flags, 0);
	vm_copy_as_root(c);
	return r;
}

int vm_copy_src_reopen(struct vm_copy_ctx *c, int path_fd, int flags)
{
	/* /proc/self/fd/N names exactly the inode behind path_fd: no name
	 * is looked up again, so nothing renamed into place meanwhile can be
	 * opened instead.  The open still checks the reader's permission. */
	char p[64];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", path_fd);
	int r = vm_copy_as_reader(c);
	if (r == 0) {
		/* The magic link is the point: no O_NOFOLLOW here. */
		/* O_NOATIME: see open_source (copy.c). */
		r = open(p, flags | O_CLOEXEC | O_NOCTTY | (c->reader ? 0 : O_NOATIME));
		if (r < 0)
			r = -errno;
	}
	vm_copy_as_root(c);
	return r;
}
