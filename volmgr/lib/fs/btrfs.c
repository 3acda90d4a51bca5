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
