/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "backend.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "btrfs.h"
#include "tree.h"

const char *vm_backend_name(enum vm_backend_kind k)
{
	switch (k) {
	case VM_BACKEND_AUTO: return "auto";
	case VM_BACKEND_BTRFS: return "btrfs";
	case VM_BACKEND_REFLINK: return "reflink";
	case VM_BACKEND_COPY: return "copy";
	}
	return "?";
}

int vm_backend_parse(const char *s, enum vm_backend_kind *ret)
{
	static const enum vm_backend_kind all[] = {VM_BACKEND_AUTO, VM_BACKEND_BTRFS,
						   VM_BACKEND_REFLINK, VM_BACKEND_COPY};
	for (size_t i = 0; s && i < ELEMENTSOF(all); i++)
		if (strcmp(s, vm_backend_name(all[i])) == 0) {
			*ret = all[i];
			return 0;
		}
	return -EINVAL;
}

int vm_copy_io_parse(const char *s, enum vm_copy_io *ret)
{
	static const enum vm_copy_io all[] = {VM_COPY_IO_AUTO, VM_COPY_IO_URING,
					      VM_COPY_IO_SYSCALLS};
	for (size_t i = 0; s && i < ELEMENTSOF(all); i++)
		if (strcmp(s, vm_copy_io_name(all[i])) == 0) {
			*ret = all[i];
			return 0;
		}
	return -EINVAL;
}

/* Can a subvolume be made here?  The only test that tells: make one. */
static int probe_btrfs(int staging_fd, char *why, size_t len)
{
	char name[64], rnd[17];
	vm_random_hex(rnd, 16);
	snprintf(name, sizeof(name), ".probe-subvol-%s", rnd);
	struct vm_error e = {0};
	if (vm_btrfs_create(staging_fd, name, NULL, &e) < 0) {
		snprintf(why, len, "no btrfs subvolume can be made in the pool (%s)",
			 strerror(e.code ? e.code : EIO));
		return 0;
	}
	if (vm_btrfs_delete(staging_fd, name, &e) < 0) {
		snprintf(why, len, "a scratch subvolume could not be deleted: %.100s", e.msg);
		return -(e.code ? e.code : EIO);
	}
	snprintf(why, len, "a scratch subvolume could be made and deleted in the pool");
	return 1;
}

static int probe_reflink(int staging_fd, char *why, size_t len)
{
	int r = vm_copy_probe_reflink(staging_fd);
	if (r > 0)
		snprintf(why, len, "FICLONE works in the pool");
	else if (r == 0)
		snprintf(why, len, "FICLONE does not work in the pool");
	else
		snprintf(why, len, "the FICLONE probe failed: %s", strerror(-r));
	return r;
}

static int choose_io(enum vm_copy_io want, struct vm_backend *b, struct vm_error *err)
{
	char why[sizeof(b->io_why)] = "";
	bool uring = vm_copy_probe_uring(why, sizeof(why));
	b->io_want = want;
	switch (want) {
	case VM_COPY_IO_SYSCALLS:
		b->io = VM_COPY_IO_SYSCALLS;
		snprintf(b->io_why, sizeof(b->io_why), "forced ([copy] io = syscalls)");
		return 0;
	case VM_COPY_IO_URING:
		if (!uring)
			return vm_error_set(err, EOPNOTSUPP,
					    "[copy] io = io_uring, but io_uring cannot be used here: %s", why);
		b->io = VM_COPY_IO_URING;
		snprintf(b->io_why, sizeof(b->io_why), "forced ([copy] io = io_uring)");
		return 0;
	case VM_COPY_IO_AUTO:
		break;
	}
	b->io = uring ? VM_COPY_IO_URING : VM_COPY_IO_SYSCALLS;
	if (uring)
		snprintf(b->io_why, sizeof(b->io_why), "io_uring has what the engine needs");
	else
		snprintf(b->io_why, sizeof(b->io_why), "io_uring unusable: %.120s", why);
	return 0;
}

int vm_backend_choose(int staging_fd, enum vm_backend_kind want, enum vm_copy_io io_want,
		      struct vm_backend *ret, struct vm_error *err)
{
	struct vm_backend b = {.forced = want != VM_BACKEND_AUTO};
	char why_btrfs[160] = "", why_reflink[160] = "";
	int r = choose_io(io_want, &b, err);
	if (r < 0)
		return r;
	if (want == VM_BACKEND_COPY) {
		b.kind = VM_BACKEND_COPY;
		snprintf(b.why, sizeof(b.why), "a bulk copy works on any file system");
		*ret = b;
		return 0;
	}
	if (want == VM_BACKEND_AUTO || want == VM_BACKEND_BTRFS) {
		r = probe_btrfs(staging_fd, why_btrfs, sizeof(why_btrfs));
		if (r < 0)
			return vm_error_set(err, -r, "backend probe: %s", why_btrfs);
		if (r > 0) {
			b.kind = VM_BACKEND_BTRFS;
			snprintf(b.why, sizeof(b.why), "%s", why_btrfs);
			*ret = b;
			return 0;
		}
		if (want == VM_BACKEND_BTRFS)
			return vm_error_set(err, EOPNOTSUPP, "backend btrfs is impossible here: %s",
					    why_btrfs);
	}
	r = probe_reflink(staging_fd, why_reflink, sizeof(why_reflink));
	if (r < 0 && want == VM_BACKEND_REFLINK)
		return vm_error_set(err, -r, "backend probe: %s", why_reflink);
	if (r > 0) {
		b.kind = VM_BACKEND_REFLINK;
		if (b.forced)
			snprintf(b.why, sizeof(b.why), "%s", why_reflink);
		else
			snprintf(b.why, sizeof(b.why), "%s; %s", why_btrfs, why_reflink);
		*ret = b;
		return 0;
	}
	if (want == VM_BACKEND_REFLINK)
		return vm_error_set(err, EOPNOTSUPP, "backend reflink is impossible here: %s",
				    why_reflink);
	b.kind = VM_BACKEND_COPY;
	snprintf(b.why, sizeof(b.why), "%s; %s", why_btrfs, why_reflink);
	*ret = b;
	return 0;
}

bool vm_backend_is_instant(const struct vm_backend *b)
{
	return b->kind == VM_BACKEND_BTRFS;
}

int vm_backend_make_empty(const struct vm_backend *b, int parent_fd, const char *name,
			  uint64_t *ret_id, struct vm_error *err)
{
	if (b->kind == VM_BACKEND_BTRFS)
		return vm_btrfs_create(parent_fd, name, ret_id, err);
	if (mkdirat(parent_fd, name, 0755) < 0)
		return vm_error_errno(err, errno, "cannot create directory %s", name);
	if (ret_id)
		*ret_id = 0;
	return 0;
}

static void copy_opts_with(const struct vm_backend *b, const struct vm_copy_opts *in,
			   enum vm_copy_data data, struct vm_copy_opts *out)
{
	*out = in ? *in : (struct vm_copy_opts){0};
	out->data = data;
	/* The engine gets what was asked for, not what the probe found:
	 * under AUTO it picks per copy (copy_file_range where one file
	 * system clones, syscalls for a caller's credentials, else
	 * io_uring).  A reflink clone is FICLONE per file, and a copy read
	 * with a caller's credentials cannot use io_uring: a forced
	 * io_uring applies to neither. */
	out->io = b->io_want;
	if (out->io == VM_COPY_IO_URING && (data == VM_COPY_DATA_REFLINK || out->reader))
		out->io = data == VM_COPY_DATA_REFLINK ? VM_COPY_IO_AUTO : VM_COPY_IO_SYSCALLS;
}

int vm_backend_copy_into(const struct vm_backend *b, int src_fd, int dst_fd,
			 const struct vm_copy_opts *copy_opts, struct vm_copy_report *report,
			 struct vm_error *err)
{
	struct vm_copy_opts o;
	copy_opts_with(b, copy_opts, VM_COPY_DATA_COPY, &o);
	return vm_copy_tree(src_fd, dst_fd, &o, report, err);
}

int vm_backend_clone(const struct vm_backend *b, int src_fd, int parent_fd, const char *name,
		     const struct vm_copy_opts *copy_opts, uint64_t *ret_id,
		     struct vm_copy_report *report, struct vm_error *err)
{
	if (report)
		memset(report, 0, sizeof(*report));
	if (b->kind == VM_BACKEND_BTRFS)
		return vm_btrfs_snapshot(src_fd, parent_fd, name, ret_id, err);
	int r = vm_backend_make_empty(b, parent_fd, name, ret_id, err);
	if (r < 0)
		return r;
	_cleanup_close_ int dst = vm_openat_beneath(parent_fd, name,
						    O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (dst < 0)
		return vm_error_errno(err, -dst, "cannot open the new directory %s", name);
	return vm_backend_clone_into(b, src_fd, dst, copy_opts, report, err);
}

int vm_backend_clone_into(const struct vm_backend *b, int src_fd, int dst_fd,
			  const struct vm_copy_opts *copy_opts, struct vm_copy_report *report,
			  struct vm_error *err)
{
	struct vm_copy_opts o;
	copy_opts_with(b, copy_opts,
		       b->kind == VM_BACKEND_REFLINK ? VM_COPY_DATA_REFLINK : VM_COPY_DATA_COPY, &o);
	return vm_copy_tree(src_fd, dst_fd, &o, report, err);
}

int vm_backend_set_read_only(const struct vm_backend *b, int fd, bool ro, struct vm_error *err)
{
	/* A subvolume may be left from a btrfs backend run even when this
	 * run forces another backend: keep its flag right too. */
	if (b->kind == VM_BACKEND_BTRFS || vm_btrfs_is_subvolume(fd) == 1)
		return vm_btrfs_set_read_only(fd, ro, err);
	return 0;
}

int vm_backend_delete(const struct vm_backend *b, int parent_fd, const char *name,
		      struct vm_error *err)
{
	(void)b;
	_cleanup_close_ int fd = vm_openat_beneath(parent_fd, name,
						   O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd >= 0 && vm_btrfs_is_subvolume(fd) == 1) {
		closep(&fd);
		/* A read-only nested subvolume would stop the recursive
		 * delete; vm_btrfs_delete makes them writable first. */
		return vm_btrfs_delete(parent_fd, name, err);
	}
	return vm_tree_remove(parent_fd, name, err);
}
