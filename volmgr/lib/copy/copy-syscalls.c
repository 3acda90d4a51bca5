/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The data path without io_uring: copy_file_range (which shares extents
 * or copies in the kernel), read/write where it cannot, and FICLONE for
 * reflink copies.  Used where io_uring is not allowed (a seccomp filter,
 * a reader's credentials) and for reflinks, which move no data.  Here
 * too: whether a directory's file system clones at all (the probe the
 * backends and the choice of data path ask). */
#include "copy-private.h"

#include <fcntl.h>
#include <linux/btrfs.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/statfs.h>

static int copy_range(struct vm_copy_ctx *c, struct vm_copy_job *j,
		      struct vm_copy_scratch *s, off_t start, off_t end,
		      bool *use_cfr, off_t *ret_end)
{
	off_t off = start;
	while (off < end) {
		ssize_t n;
		if (*use_cfr) {
			loff_t in = off, out = off;
			n = copy_file_range(j->src, &in, j->dst, &out, (size_t)(end - off), 0);
			if (n < 0 && (errno == EXDEV || errno == EINVAL ||
				      errno == EOPNOTSUPP || errno == ENOSYS)) {
				*use_cfr = false;
				continue;
			}
		} else {
			size_t want = (size_t)(end - off) < sizeof(s->buf)
					      ? (size_t)(end - off)
					      : sizeof(s->buf);
			n = pread(j->src, s->buf, want, off);
			if (n > 0) {
				size_t w = 0;
				while (w < (size_t)n) {
					ssize_t k = pwrite(j->dst, s->buf + w, (size_t)n - w,
							   off + (off_t)w);
					if (k < 0 && errno == EINTR)
						continue;
					if (k < 0)
						return vm_copy_fail(c, errno, true, "cannot write %s",
								    j->name);
					w += (size_t)k;
				}
			}
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return vm_copy_fail(c, errno, true, "cannot copy %s", j->name);
		}
		if (n == 0)
			break; /* the file shrank while we copied: keep what we read */
		off += n;
		atomic_fetch_add_explicit(&c->bytes_done, (uint64_t)n, memory_order_relaxed);
	}
	*ret_end = off;
	return 0;
}

int vm_copy_data_syscalls(struct vm_copy_ctx *c, struct vm_copy_job *j,
			  struct vm_copy_scratch *s)
{
	off_t size = j->st.st_size, off = 0, end_seen = 0;
	bool use_cfr = true;
	if (j->sparse && ftruncate(j->dst, size) < 0)
		return vm_copy_fail(c, errno, true, "cannot size %s", j->name);
	while (off < size) {
		off_t start = off, end = size;
		if (j->sparse) {
			int r = vm_copy_next_extent(j->src, off, size, &start, &end);
			if (r < 0)
				return vm_copy_fail(c, -r, true, "cannot map the data of %s", j->name);
			if (r == 0)
				break;
		}
		int r = copy_range(c, j, s, start, end, &use_cfr, &end_seen);
		if (r < 0)
			return r;
		if (end_seen < end)
			break; /* shrank */
		off = end;
	}
	return 0;
}

int vm_copy_data_reflink(struct vm_copy_ctx *c, struct vm_copy_job *j)
{
	if (j->st.st_size == 0)
		return 0;
	if (ioctl(j->dst, FICLONE, j->src) == 0) {
		atomic_fetch_add_explicit(&c->bytes_done, (uint64_t)j->st.st_size,
					  memory_order_relaxed);
		return 0;
	}
	int e = errno;
	if (e == EOPNOTSUPP || e == ENOTTY || e == EINVAL)
		return vm_copy_fail(c, EOPNOTSUPP, false,
				    "cannot reflink %s: the file system cannot share "
				    "extents (FICLONE: %s); copy the data instead",
				    j->name, strerror(e));
	if (e == EXDEV)
		return vm_copy_fail(c, EXDEV, false,
				    "cannot reflink %s: source and destination are on "
				    "different file systems", j->name);
	return vm_copy_fail(c, e, true, "cannot reflink %s", j->name);
}

int vm_copy_probe_reflink(int dirfd)
{
	char a[64], b[64];
	snprintf(a, sizeof(a), ".volmgr-reflink-probe-%d-a", (int)getpid());
	snprintf(b, sizeof(b), ".volmgr-reflink-probe-%d-b", (int)getpid());
	int fa = openat(dirfd, a, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fa < 0)
		return -errno;
	int r = -EIO;
	if (write(fa, "volmgr", 6) != 6)
		goto out_a;
	int fb = openat(dirfd, b, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fb < 0) {
		r = -errno;
		goto out_a;
	}
	if (ioctl(fb, FICLONE, fa) == 0)
		r = 1;
	else if (errno == EOPNOTSUPP || errno == ENOTTY || errno == EXDEV || errno == EINVAL)
		r = 0;
	else
		r = -errno;
	close(fb);
	unlinkat(dirfd, b, 0);
out_a:
	close(fa);
	unlinkat(dirfd, a, 0);
	return r;
}

int vm_copy_same_cloning_fs(int src_fd, int dst_fd)
{
	struct statfs a, b;
	if (fstatfs(src_fd, &a) < 0 || fstatfs(dst_fd, &b) < 0)
		return -errno;
	if (a.f_type != b.f_type)
		return 0;
	if (a.f_type == BTRFS_SUPER_MAGIC) {
		/* Subvolumes have st_dev and f_fsid of their own: compare
		 * the file system's UUID. */
		struct btrfs_ioctl_fs_info_args ia = {0}, ib = {0};
		if (ioctl(src_fd, BTRFS_IOC_FS_INFO, &ia) < 0 ||
		    ioctl(dst_fd, BTRFS_IOC_FS_INFO, &ib) < 0)
			return 0;
		if (memcmp(ia.fsid, ib.fsid, sizeof(ia.fsid)) != 0)
			return 0;
	} else if (a.f_type == XFS_SUPER_MAGIC) {
		struct stat sa, sb;
		if (fstat(src_fd, &sa) < 0 || fstat(dst_fd, &sb) < 0)
			return -errno;
		if (sa.st_dev != sb.st_dev)
			return 0;
	} else {
		return 0;
	}
	return vm_copy_probe_reflink(dst_fd); /* XFS without reflink=1: no */
}

int vm_copy_job_run(struct vm_copy_ctx *c, struct vm_copy_job *j, struct vm_copy_scratch *s)
{
	int r = vm_copy_failed(c) ? -ECANCELED : vm_copy_job_open(c, j);
	if (r == 0)
		r = c->opts->data == VM_COPY_DATA_REFLINK ? vm_copy_data_reflink(c, j)
							  : vm_copy_data_syscalls(c, j, s);
	if (r == 0)
		r = vm_copy_job_finish(c, j, s);
	vm_copy_job_free(c, j, s);
	return r;
}

void *vm_copy_syscalls_thread(void *ctx)
{
	struct vm_copy_ctx *c = ctx;
	struct vm_copy_scratch *s = malloc(sizeof(*s));
	if (!s)
		vm_copy_fail(c, ENOMEM, false, "out of memory");
	struct vm_copy_job *j;
	bool ended = false;
	unsigned id = vm_copy_consumer_id(c);
	while ((j = vm_copy_queue_pop(c, id, true, &ended)))
		vm_copy_job_run(c, j, s); /* a failure is in c */
	free(s);
	vm_copy_consumer_exit(c);
	return NULL;
}
