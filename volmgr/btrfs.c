/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "btrfs.h"

#include <btrfsutil.h>
#include <fcntl.h>
#include <string.h>

/* libbtrfsutil reports which step failed in its enum and the cause in
 * errno; the cause is what callers can act on. */
static int btrfs_fail(struct vm_error *err, enum btrfs_util_error e,
		      const char *what, const char *name)
{
	int code = errno ? errno : EIO;
	return vm_error_set(err, code, "%s %s: %s: %s", what, name,
			    btrfs_util_strerror(e), strerror(code));
}

static int subvol_id_at(int parent_fd, const char *name, uint64_t *ret_id,
			struct vm_error *err)
{
	_cleanup_close_ int fd = vm_openat_beneath(
		parent_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0)
		return vm_error_errno(err, -fd, "cannot open new subvolume %s", name);
	errno = 0;
	enum btrfs_util_error e = btrfs_util_subvolume_id_fd(fd, ret_id);
	if (e != BTRFS_UTIL_OK)
		return btrfs_fail(err, e, "cannot read the id of subvolume", name);
	return 0;
}

int vm_btrfs_snapshot(int src_fd, int parent_fd, const char *name,
		      uint64_t *ret_id, struct vm_error *err)
{
	errno = 0;
	enum btrfs_util_error e =
		btrfs_util_create_snapshot_fd2(src_fd, parent_fd, name, 0, NULL, NULL);
	if (e != BTRFS_UTIL_OK)
		return btrfs_fail(err, e, "cannot snapshot into", name);
	return ret_id ? subvol_id_at(parent_fd, name, ret_id, err) : 0;
}

int vm_btrfs_create(int parent_fd, const char *name, uint64_t *ret_id,
		    struct vm_error *err)
{
	errno = 0;
	enum btrfs_util_error e =
		btrfs_util_create_subvolume_fd(parent_fd, name, 0, NULL, NULL);
	if (e != BTRFS_UTIL_OK)
		return btrfs_fail(err, e, "cannot create subvolume", name);
	return ret_id ? subvol_id_at(parent_fd, name, ret_id, err) : 0;
}

/* A job may leave read-only subvolumes with subvolumes inside them (a
 * nested container engine's snapshots); those cannot be unlinked from a
 * read-only parent, so make every subvolume beneath fd writable first. */
static int clear_read_only_beneath(int fd, struct vm_error *err)
{
	struct btrfs_util_subvolume_iterator *it = NULL;
	errno = 0;
	enum btrfs_util_error e = btrfs_util_create_subvolume_iterator_fd(fd, 0, 0, &it);
	if (e != BTRFS_UTIL_OK)
		return btrfs_fail(err, e, "cannot list subvolumes beneath", "volume");
	int r = 0;
	for (;;) {
		char *path = NULL;
		errno = 0;
		e = btrfs_util_subvolume_iterator_next(it, &path, NULL);
		if (e == BTRFS_UTIL_ERROR_STOP_ITERATION)
			break;
		if (e != BTRFS_UTIL_OK) {
			r = btrfs_fail(err, e, "cannot list subvolumes beneath", "volume");
			break;
		}
		/* path is relative to fd and names a subvolume that only the
		 * daemon can reach now (the volume is in staging): walk it
		 * without following symlinks all the same. */
		_cleanup_close_ int sub = vm_open_path_beneath(
			fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		free(path);
		if (sub >= 0)
			btrfs_util_set_subvolume_read_only_fd(sub, false);
	}
	btrfs_util_destroy_subvolume_iterator(it);
	return r;
}

int vm_btrfs_delete(int parent_fd, const char *name, struct vm_error *err)
{
	errno = 0;
	enum btrfs_util_error e = btrfs_util_delete_subvolume_fd(
		parent_fd, name, BTRFS_UTIL_DELETE_SUBVOLUME_RECURSIVE);
	if (e == BTRFS_UTIL_OK)
		return 0;
	if (errno != EROFS && errno != EPERM)
		return btrfs_fail(err, e, "cannot delete subvolume", name);
	_cleanup_close_ int fd = vm_openat_beneath(
		parent_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0)
		return vm_error_errno(err, -fd, "cannot open subvolume %s", name);
	btrfs_util_set_subvolume_read_only_fd(fd, false);
	int r = clear_read_only_beneath(fd, err);
	if (r < 0)
		return r;
	errno = 0;
	e = btrfs_util_delete_subvolume_fd(parent_fd, name,
					   BTRFS_UTIL_DELETE_SUBVOLUME_RECURSIVE);
	if (e != BTRFS_UTIL_OK)
		return btrfs_fail(err, e, "cannot delete subvolume", name);
	return 0;
}

int vm_btrfs_set_read_only(int fd, bool ro, struct vm_error *err)
{
	errno = 0;
	enum btrfs_util_error e = btrfs_util_set_subvolume_read_only_fd(fd, ro);
	if (e != BTRFS_UTIL_OK)
		return btrfs_fail(err, e, "cannot change read-only flag of", "subvolume");
	return 0;
}

int vm_btrfs_is_subvolume(int fd)
{
	errno = 0;
	enum btrfs_util_error e = btrfs_util_is_subvolume_fd(fd);
	if (e == BTRFS_UTIL_OK)
		return 1;
	if (e == BTRFS_UTIL_ERROR_NOT_SUBVOLUME || e == BTRFS_UTIL_ERROR_NOT_BTRFS)
		return 0;
	return -(errno ? errno : EIO);
}

int vm_btrfs_subvolume_id(int fd, uint64_t *ret_id)
{
	errno = 0;
	enum btrfs_util_error e = btrfs_util_subvolume_id_fd(fd, ret_id);
	return e == BTRFS_UTIL_OK ? 0 : -(errno ? errno : EIO);
}
