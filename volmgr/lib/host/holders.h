/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Uses of a volume that no mount table shows: a process whose working
 * directory, root or an open file lies in it after the mount that led
 * there was lazily unmounted (`umount -l`), or that holds a detached
 * mount of it (open_tree(OPEN_TREE_CLONE) without move_mount).  Every
 * process's cwd, root and open fds are looked at through /proc, with
 * statx(AT_STATX_DONT_SYNC): cached attributes only, so a stalled FUSE
 * daemon or network file system cannot hang the scan.
 *
 * What is not seen (SECURITY.md): memory mappings of files whose fd was
 * closed, and on pools that are not btrfs (all volumes share one device
 * number) open regular files: there a holder is found only by a
 * directory (cwd, root, an open directory), walked up to the volume's
 * top. */
#pragma once

#include <sys/types.h>

#include "util.h"

/* What marks a volume: on btrfs the device numbers of its subvolume and
 * of every subvolume beneath it (by_dev); elsewhere the (device, inode)
 * of its top directory, found by walking ".." up from a held directory
 * (by_dev false, devs[0]/top_ino). */
struct vm_holders_target {
	const dev_t *devs;
	size_t n_devs;
	bool by_dev;
	ino_t top_ino;
	/* A directory of the pool's own mount: a held directory is reopened
	 * through it by file handle (CAP_DAC_READ_SEARCH), so the walk up is
	 * not stopped by the root of the bind mount that led to it. */
	int pool_fd;
};

struct vm_holder {
	pid_t pid;
	char comm[17];
	char what[24]; /* "cwd", "root", "fd 7" */
};

/* 1 and *ret filled when a process other than self holds the target,
 * 0 when none does.  Processes that exit during the scan are skipped,
 * and so are those volmgrd may not look into (ptrace access is refused
 * for a process with capabilities volmgrd lacks, such as a sandbox's
 * PID 1): *ret_hidden counts them.  This scan is a second line behind
 * the mount tables, which every namespace lets volmgrd read. */
int vm_holders_find(const char *proc, const struct vm_holders_target *t, pid_t self,
		    struct vm_holder *ret, unsigned *ret_hidden, struct vm_error *err);
