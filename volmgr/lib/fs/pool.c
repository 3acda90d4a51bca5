/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "pool.h"

#include <fcntl.h>
#include <libmount/libmount.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

static int open_subdir(int dirfd, const char *name, mode_t mode, int *ret,
		       struct vm_error *err)
{
	if (mkdirat(dirfd, name, mode) < 0 && errno != EEXIST)
		return vm_error_errno(err, errno, "cannot create pool directory %s", name);
	int fd = vm_openat_beneath(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0)
		return vm_error_errno(err, -fd, "cannot open pool directory %s", name);
	/* Repair a mode that an earlier version or an admin loosened. */
	if (fchmod(fd, mode) < 0) {
		int e = errno;
		close(fd);
		return vm_error_errno(err, e, "cannot chmod pool directory %s", name);
	}
	*ret = fd;
	return 0;
}

static int mkdir_parents(const char *path, struct vm_error *err)
{
	/* The pool path comes from the administrator, not from a caller, so
	 * creating it by path is fine. */
	_cleanup_free_ char *p = strdup(path);
	if (!p)
		return vm_error_set(err, ENOMEM, "out of memory");
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return vm_error_errno(err, errno, "cannot create %s", p);
		*s = '/';
	}
	if (mkdir(p, 0711) < 0 && errno != EEXIST)
		return vm_error_errno(err, errno, "cannot create %s", p);
	return 0;
}

static char *path_join_rel(const char *root, const char *rel)
{
	char *out;
	while (*rel == '/')
		rel++;
	size_t rl = strlen(root);
	bool slash = rl > 0 && root[rl - 1] == '/';
	if (asprintf(&out, "%s%s%s", root, (slash || !*rel) ? "" : "/", rel) < 0)
		return NULL;
	return out;
}

int vm_fs_probe(int dirfd, const char *path, char fstype[static 64],
		char **ret_target, char **ret_fs_root, dev_t *ret_dev,
		struct vm_error *err)
{
	(void)dirfd;
	_cleanup_free_ char *target = mnt_get_mountpoint(path);
	if (!target)
		return vm_error_set(err, ENOENT, "cannot find the mount point of %s", path);
	struct libmnt_table *tb = mnt_new_table_from_file("/proc/self/mountinfo");
	if (!tb)
		return vm_error_set(err, EIO, "cannot parse /proc/self/mountinfo");
	struct libmnt_fs *fs = mnt_table_find_target(tb, target, MNT_ITER_BACKWARD);
	if (!fs) {
		mnt_unref_table(tb);
		return vm_error_set(err, ENOENT, "no mountinfo entry for %s", target);
	}
	snprintf(fstype, 64, "%s", mnt_fs_get_fstype(fs) ?: "unknown");
	const char *root = mnt_fs_get_root(fs) ?: "/";
	size_t tl = strlen(target);
	const char *rel = strcmp(target, "/") == 0 ? path : path + tl;
	char *fs_root = path_join_rel(root, rel);
	dev_t dev = mnt_fs_get_devno(fs);
	mnt_unref_table(tb);
	if (!fs_root)
		return vm_error_set(err, ENOMEM, "out of memory");
	*ret_fs_root = fs_root;
	*ret_target = TAKE_PTR(target);
	*ret_dev = dev;
	return 0;
}

int vm_pool_open(const char *path, struct vm_pool **ret, struct vm_error *err)
{
	if (!path || path[0] != '/')
		return vm_error_set(err, EINVAL, "pool path must be absolute");
	int r = mkdir_parents(path, err);
	if (r < 0)
		return r;
	struct vm_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return vm_error_set(err, ENOMEM, "out of memory");
	_cleanup_(vm_pool_freep) struct vm_pool *pool = p;
	pool->fd = pool->lock_fd = pool->volumes_fd = pool->caches_fd =
		pool->staging_fd = pool->vol_meta_fd = pool->cache_meta_fd = -1;

	pool->path = realpath(path, NULL);
	if (!pool->path)
		return vm_error_errno(err, errno, "cannot resolve pool %s", path);
	pool->fd = open(pool->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pool->fd < 0)
		return vm_error_errno(err, errno, "cannot open pool %s", pool->path);

	r = vm_fs_probe(pool->fd, pool->path, pool->fstype, &pool->mount_target,
			&pool->fs_root, &pool->sb_dev, err);
	if (r < 0)
		return r;
	int meta_fd = -1;
	r = open_subdir(pool->fd, ".volmgr", 0700, &meta_fd, err);
	if (r < 0)
		return r;
	_cleanup_close_ int meta = meta_fd;
	pool->lock_fd = openat(meta, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (pool->lock_fd < 0)
		return vm_error_errno(err, errno, "cannot open the pool lock");
	if (flock(pool->lock_fd, LOCK_EX | LOCK_NB) < 0)
		return vm_error_errno(err, errno == EWOULDBLOCK ? EBUSY : errno,
				      "pool %s is in use by another volmgrd", pool->path);

	if ((r = open_subdir(meta, "volumes", 0700, &pool->vol_meta_fd, err)) < 0 ||
	    (r = open_subdir(meta, "caches", 0700, &pool->cache_meta_fd, err)) < 0 ||
	    (r = open_subdir(pool->fd, "volumes", 0700, &pool->volumes_fd, err)) < 0 ||
	    (r = open_subdir(pool->fd, "caches", 0700, &pool->caches_fd, err)) < 0 ||
	    /* Search-only for others: git runs as an unprivileged user in a
	     * staging/ entry with an unguessable name, and git resolves its
	     * working directory by path.  Nobody else may list it. */
	    (r = open_subdir(pool->fd, "staging", 0711, &pool->staging_fd, err)) < 0)
		return r;
	*ret = TAKE_PTR(pool);
	return 0;
}

void vm_pool_free(struct vm_pool *pool)
{
	if (!pool)
		return;
	int *fds[] = {&pool->fd, &pool->lock_fd, &pool->volumes_fd,
		      &pool->caches_fd, &pool->staging_fd, &pool->vol_meta_fd,
		      &pool->cache_meta_fd};
	for (size_t i = 0; i < ELEMENTSOF(fds); i++)
		closep(fds[i]);
	free(pool->path);
	free(pool->mount_target);
	free(pool->fs_root);
	free(pool);
}
