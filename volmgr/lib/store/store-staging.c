/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* staging/: names there, deleting what is there, publishing out of it,
 * and retiring a volume or cache into it (store.h). */
#include "store.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <sys/stat.h>

#include "btrfs.h"
#include "fault.h"

void vm_store_staging_name(const char *what, const char *name,
			   char buf[static VM_NAME_MAX + 64])
{
	char rnd[17];
	vm_random_hex(rnd, 16);
	snprintf(buf, VM_NAME_MAX + 64, "%s-%s-%s", what, name, rnd);
}

int vm_store_delete_staged(struct vm_store *s, const char *name, struct vm_error *err)
{
	/* A subvolume inside a volume at its limit cannot be deleted. */
	vm_volquota_release_at(&s->vq, s->pool->staging_fd, name);
	return vm_backend_delete(&s->backend, s->pool->staging_fd, name, err);
}

/* Move dir/name into staging/ under the name trash.  A read-only
 * subvolume (a cache) cannot be moved, so it is made writable first. */
static int move_to_staging(int dirfd, int staging_fd, const char *name, const char *trash)
{
	if (renameat(dirfd, name, staging_fd, trash) == 0)
		return 0;
	if (errno != EROFS)
		return -errno;
	_cleanup_close_ int fd = vm_openat_beneath(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	int r = vm_btrfs_set_read_only(fd, false, NULL);
	if (r < 0)
		return r;
	return renameat(dirfd, name, staging_fd, trash) < 0 ? -errno : 0;
}

int vm_store_discard_data(struct vm_store *s, int dirfd, const char *name,
			  struct vm_error *err)
{
	char trash[VM_NAME_MAX + 64];
	vm_store_staging_name("trash", name, trash);
	int r = move_to_staging(dirfd, s->pool->staging_fd, name, trash);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return vm_error_errno(err, -r, "cannot move %s to staging", name);
	return vm_store_delete_staged(s, trash, err);
}

int vm_store_publish(struct vm_store *s, const char *tmp, int dirfd, const char *name,
		     struct vm_error *err)
{
	if (renameat2(s->pool->staging_fd, tmp, dirfd, name, RENAME_NOREPLACE) < 0)
		return vm_error_errno(err, errno, "cannot move %s into place", name);
	return 0;
}

int vm_store_delete_trash(struct vm_store *s, const char *name, struct vm_error *err)
{
	{
		VM_STORE_LOCK(s);
		struct stat st;
		if (fstatat(s->pool->staging_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return errno == ENOENT ? 0 : vm_error_errno(err, errno, "cannot stat staging/%s", name);
		/* Out of sight already: only copies that opened it before can
		 * still read it, and they registered under this lock. */
		if (vm_readers_busy(&s->readers, st.st_dev, st.st_ino)) {
			if (vm_readers_defer(&s->readers, st.st_dev, st.st_ino, name) < 0)
				return vm_error_set(err, ENOMEM, "out of memory");
			vm_store_log(s, "staging/%s is being read by a copy: deleted when it ends", name);
			return 0;
		}
	}
	return vm_store_delete_staged(s, name, err);
}

/* Removal on a full pool: the "removing" mark cannot be written (a new
 * file needs space), yet removing is how space is freed.  Unlinking the
 * record needs none (btrfs takes it from its global reserve), and the
 * record is the commit point: once it is gone the volume is gone, and
 * data without a record is deleted at the next start if this is cut
 * short.  The data goes to staging as trash if it can be moved (then
 * vm_store_retire_finish deletes it), else it is deleted in place. */
static int retire_without_mark(struct vm_store *s, const struct vm_record *rec,
			       char trash[static VM_NAME_MAX + 64], struct vm_error *err)
{
	enum vm_kind k = rec->kind;
	int r = vm_store_unlink_record(s, k, rec->name, err);
	if (r < 0)
		return r;
	vm_store_staging_name("trash", rec->name, trash);
	r = move_to_staging(vm_store_data_fd(s, k), s->pool->staging_fd, rec->name, trash);
	if (r == 0 || r == -ENOENT)
		return 0;
	trash[0] = '\0';
	vm_volquota_release_at(&s->vq, vm_store_data_fd(s, k), rec->name);
	return vm_backend_delete(&s->backend, vm_store_data_fd(s, k), rec->name, err);
}

int vm_store_retire(struct vm_store *s, struct vm_record *rec,
		    char trash[static VM_NAME_MAX + 64], struct vm_error *err)
{
	enum vm_kind k = rec->kind;
	rec->state = VM_STATE_REMOVING;
	int r = vm_store_store_record(s, rec, err);
	if (r == -ENOSPC || r == -EDQUOT) {
		if (err)
			*err = (struct vm_error){0};
		return retire_without_mark(s, rec, trash, err);
	}
	if (r < 0)
		return r;
	VM_FAULT("remove.marked");
	vm_store_staging_name("trash", rec->name, trash);
	r = move_to_staging(vm_store_data_fd(s, k), s->pool->staging_fd, rec->name, trash);
	if (r < 0 && r != -ENOENT)
		return vm_error_errno(err, -r, "cannot move %s %s to staging", vm_kind_str(k),
				      rec->name);
	VM_FAULT("remove.moved");
	r = vm_store_unlink_record(s, k, rec->name, err);
	if (r < 0)
		return r;
	VM_FAULT("remove.unlinked");
	return 0;
}

int vm_store_retire_finish(struct vm_store *s, const char *trash, uint64_t subvol_id,
			   struct vm_error *err)
{
	/* A failed delete is retried at the next start (staging is emptied
	 * then). */
	int r = trash[0] ? vm_store_delete_trash(s, trash, err) : 0;
	/* Its qgroups: 1/ at once, 0/ once btrfs's cleaner has dropped the
	 * subvolume; gc clears what is left (vm_volquota_clear_stale). */
	if (r == 0 && s->quotas && subvol_id)
		vm_volquota_destroy(&s->vq, subvol_id, NULL);
	return r;
}
