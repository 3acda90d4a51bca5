/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Interim engine: the API of copy.h over the existing tree walk in
 * tree.c (copy_file_range, no io_uring).  Replaced by the io_uring
 * engine. */
#include "copy.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const char *vm_copy_io_name(enum vm_copy_io io)
{
	switch (io) {
	case VM_COPY_IO_AUTO: return "auto";
	case VM_COPY_IO_URING: return "io_uring";
	case VM_COPY_IO_SYSCALLS: return "syscalls";
	}
	return "?";
}

bool vm_copy_probe_uring(char *why, size_t why_len)
{
	if (why && why_len)
		snprintf(why, why_len, "the io_uring engine is not built yet");
	return false;
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

int vm_copy_tree(int src_fd, int dst_fd, const struct vm_copy_opts *opts,
		 struct vm_copy_report *report, struct vm_error *err)
{
	struct vm_copy_opts none = {0};
	if (!opts)
		opts = &none;
	if (opts->io == VM_COPY_IO_URING)
		return vm_error_set(err, EOPNOTSUPP, "io_uring copies are not built yet");
	if (opts->data == VM_COPY_DATA_REFLINK)
		return vm_error_set(err, EOPNOTSUPP, "reflink copies are not built yet");
	uint64_t t0 = now_ns();
	struct vm_copy_stats st = {0};
	int r = vm_tree_copy(src_fd, dst_fd, opts->reader, &st, err);
	uint64_t dt = now_ns() - t0;
	if (r == 0 && opts->progress) {
		struct vm_copy_progress p = {
			.files = st.files + st.symlinks + st.others,
			.bytes = st.bytes,
			.total_files = opts->total_files,
			.total_bytes = opts->total_bytes,
			.elapsed_ns = dt,
			.done = true,
		};
		opts->progress(&p, opts->progress_userdata);
	}
	if (report) {
		memset(report, 0, sizeof(*report));
		report->stats = st;
		report->io_used = VM_COPY_IO_SYSCALLS;
		snprintf(report->io_reason, sizeof(report->io_reason), "interim engine");
		report->elapsed_ns = dt;
	}
	return r;
}
