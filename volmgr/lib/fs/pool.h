/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The pool: one directory on any local file system, opened once and then
 * only used through fds.  Layout under the pool directory:
 *
 *   volumes/NAME          one volume (served to engines): a btrfs
 *                         subvolume, or a directory (backend.h)
 *   caches/NAME           one cache: a read-only btrfs subvolume, or a
 *                         directory only volmgrd writes to
 *   staging/              work in progress and trash; emptied at startup
 *   .volmgr/volumes/NAME.json, .volmgr/caches/NAME.json   the records
 *   .volmgr/lock          flock()ed by the one daemon that owns the pool
 *
 * Modes: the pool 0711, volumes/ caches/ .volmgr/ 0700 (root only: the
 * engines are root; no other local user may read a job's workspace),
 * staging/ 0711 (git's user works in there, see gitrun.h).
 */
#pragma once

#include <sys/types.h>

#include "util.h"

struct vm_pool {
	char *path;         /* canonical absolute path of the pool directory */
	int fd;             /* the pool directory */
	int lock_fd;
	int volumes_fd, caches_fd, staging_fd;
	int vol_meta_fd, cache_meta_fd;
	char fstype[64];    /* from mountinfo, e.g. "btrfs" */
	char *mount_target; /* mount point holding the pool */
	char *fs_root;      /* the pool directory's path inside its file system */
	dev_t sb_dev;       /* the file system's device number in mountinfo */
};

/* Open (creating the layout if needed) and lock the pool at path.  Fails
 * with EBUSY when another daemon holds the pool.  Which backend the file
 * system allows is vm_backend_choose's business. */
int vm_pool_open(const char *path, struct vm_pool **ret, struct vm_error *err);
void vm_pool_free(struct vm_pool *pool);
static inline void vm_pool_freep(struct vm_pool **p) { vm_pool_free(*p); }

/* Look up the file system holding an open directory: type, mount point,
 * the directory's path inside the file system and the device number that
 * mountinfo shows for it.  Pure libmount work on /proc/self/mountinfo. */
int vm_fs_probe(int dirfd, const char *path, char fstype[static 64],
		char **ret_target, char **ret_fs_root, dev_t *ret_dev,
		struct vm_error *err);
