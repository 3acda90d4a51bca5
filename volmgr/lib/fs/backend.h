/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* How a pool makes volumes: btrfs subvolume snapshots (instant), a
 * per-file reflink clone of the tree (FICLONE: XFS with reflink, btrfs
 * outside a subvolume), or a bulk copy.  Chosen at start-up by probing
 * the pool itself, never by a kernel or file system version. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "copy.h"
#include "util.h"

enum vm_backend_kind {
	VM_BACKEND_AUTO,
	VM_BACKEND_BTRFS,
	VM_BACKEND_REFLINK,
	VM_BACKEND_COPY,
};

struct vm_backend {
	enum vm_backend_kind kind; /* never AUTO once chosen */
	bool forced;               /* asked for by --backend / [pool] backend */
	char why[256];             /* how it was chosen */
	enum vm_copy_io io_want;   /* [copy] io */
	enum vm_copy_io io;        /* what copies will use: URING or SYSCALLS */
	char io_why[160];
};

const char *vm_backend_name(enum vm_backend_kind k);
/* "auto", "btrfs", "reflink", "copy" -> kind; -EINVAL otherwise. */
int vm_backend_parse(const char *s, enum vm_backend_kind *ret);
/* "auto", "io_uring", "syscalls" -> io; -EINVAL otherwise. */
int vm_copy_io_parse(const char *s, enum vm_copy_io *ret);

/* Probe the pool's staging directory (scratch entries made there are
 * removed again) and pick a backend: want AUTO takes the best that
 * works; anything else must work or it is an error (EOPNOTSUPP) that
 * says why.  io_want is checked the same way. */
int vm_backend_choose(int staging_fd, enum vm_backend_kind want, enum vm_copy_io io_want,
		      struct vm_backend *ret, struct vm_error *err);

/* Volumes appear in O(1) (snapshots): no copy, no progress, no limit. */
bool vm_backend_is_instant(const struct vm_backend *b);

/* An empty volume or cache parent_fd/name: a subvolume on btrfs, a
 * directory (mode 0755) otherwise.  ret_id gets the subvolume id (0 off
 * btrfs); may be NULL. */
int vm_backend_make_empty(const struct vm_backend *b, int parent_fd, const char *name,
			  uint64_t *ret_id, struct vm_error *err);

/* Clone the pool tree src_fd as parent_fd/name: a snapshot on btrfs
 * (copy_opts unused), else a new directory filled by the copy engine
 * with reflinks (reflink backend) or copied data.  On failure nothing is
 * left at parent_fd/name... except what the caller must delete. */
int vm_backend_clone(const struct vm_backend *b, int src_fd, int parent_fd, const char *name,
		     const struct vm_copy_opts *copy_opts, uint64_t *ret_id,
		     struct vm_copy_report *report, struct vm_error *err);

/* The copying half of a clone, into the empty directory dst_fd (not for
 * btrfs, whose clones are snapshots). */
int vm_backend_clone_into(const struct vm_backend *b, int src_fd, int dst_fd,
			  const struct vm_copy_opts *copy_opts, struct vm_copy_report *report,
			  struct vm_error *err);

/* Copy a tree from anywhere (a caller's directory: another file system,
 * maybe) into the empty directory dst_fd: data is copied, or shared where
 * the kernel can (copy_file_range on the same file system). */
int vm_backend_copy_into(const struct vm_backend *b, int src_fd, int dst_fd,
			 const struct vm_copy_opts *copy_opts, struct vm_copy_report *report,
			 struct vm_error *err);

/* Caches are read-only btrfs subvolumes; off btrfs this does nothing
 * and only the daemon protects them (nobody else can reach the pool). */
int vm_backend_set_read_only(const struct vm_backend *b, int fd, bool ro, struct vm_error *err);

/* Delete parent_fd/name: a subvolume with the subvolumes beneath it, or
 * a plain tree.  Whatever made it (a pool may have changed backends). */
int vm_backend_delete(const struct vm_backend *b, int parent_fd, const char *name,
		      struct vm_error *err);
