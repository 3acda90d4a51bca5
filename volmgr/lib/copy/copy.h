/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The tree copy engine behind the reflink and copy backends (and cache
 * import): copies the tree open at one fd into an empty directory open
 * at another, fd-relative and without following symlinks. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Deepest tree a walk descends into. */
#define VM_TREE_MAX_DEPTH 256

struct vm_copy_stats {
	uint64_t files, dirs, symlinks, others, hardlinks, bytes;
	uint64_t xattrs; /* extended attributes set */
	uint64_t skipped; /* left out: device nodes that could not be made,
			   * entries that vanished during the walk */
};

/* Whose permissions reading the source obeys: a caller that is not root
 * must not make the daemon read what the caller could not. */
#define VM_READER_GROUPS_MAX 64
struct vm_reader {
	uint32_t uid, gid;
	uint32_t groups[VM_READER_GROUPS_MAX];
	int ngroups;
};

enum vm_copy_data {
	VM_COPY_DATA_COPY,    /* copy the bytes */
	VM_COPY_DATA_REFLINK, /* share extents with FICLONE; fail if it cannot */
};

/* How a data copy moves the bytes (a reflink copy clones with FICLONE,
 * whatever this says, and refuses VM_COPY_IO_URING with EINVAL). */
enum vm_copy_io {
	VM_COPY_IO_AUTO,     /* io_uring if the probe passes, else syscalls; but
			      * copy_file_range (which shares extents) when source
			      * and destination are on one btrfs/XFS that clones */
	VM_COPY_IO_URING,    /* io_uring or fail */
	VM_COPY_IO_SYSCALLS, /* copy_file_range, then read/write */
};

struct vm_copy_progress {
	uint64_t files, bytes;             /* done so far (files: non-dirs) */
	uint64_t total_files, total_bytes; /* 0 when not known */
	uint64_t elapsed_ns;
	bool done;
};
/* Called from one of the copying threads (one call at a time) at most
 * every interval_ns, and once with done set, from the calling thread, at
 * the end of a copy that succeeded. */
typedef void (*vm_copy_progress_fn)(const struct vm_copy_progress *p, void *userdata);

struct vm_copy_opts {
	enum vm_copy_data data;
	enum vm_copy_io io;
	const struct vm_reader *reader; /* NULL: read as root; else reads with
					 * its fs credentials, syscalls only */
	/* No device node can appear in the source while it is read: only
	 * volmgrd and unprivileged uids (git's) write it, as in a cache of
	 * the pool, and only root of the host can make a device node.  A
	 * file the directory lists as regular is then opened for reading at
	 * once (O_NONBLOCK: a fifo put in its place cannot hang the copy),
	 * not first as O_PATH to check its type and then reopened: two
	 * system calls fewer per file.  Never for a volume, which a
	 * container's root may fill with device nodes, or a caller's tree. */
	bool src_no_new_devices;
	/* No file or directory in the source has an extended attribute (a
	 * cache whose import set none, into a top directory that had none
	 * to pass on): they are not listed, one system call less per file.
	 * Where it is wrong, a copy only lacks attributes. */
	bool src_no_xattrs;
	uint64_t total_files, total_bytes; /* for progress, if counted before */
	vm_copy_progress_fn progress;      /* NULL: none */
	void *progress_userdata;
	uint64_t progress_interval_ns;     /* 0: 200 ms */
};

struct vm_copy_report {
	struct vm_copy_stats stats;
	enum vm_copy_io io_used; /* URING or SYSCALLS */
	char io_reason[128];     /* why that io path */
	bool xattrs_unlisted;    /* src_no_xattrs: none were looked for */
	uint64_t elapsed_ns;
	/* Filled by the caller that makes the copy durable (the store's
	 * syncfs before the record commits); 0: not done. */
	uint64_t durable_ns;
};

/* Copy src_fd's tree into the empty directory dst_fd.  0 or -errno with
 * err set; after a failure dst_fd holds a partial tree for the caller to
 * remove.  report may be NULL.  Uses a few threads of its own (at most 8)
 * and in fds about a quarter of RLIMIT_NOFILE for files and directories
 * waiting, plus two a level of the directories each thread is in (at most
 * VM_TREE_MAX_DEPTH levels). */
int vm_copy_tree(int src_fd, int dst_fd, const struct vm_copy_opts *opts,
		 struct vm_copy_report *report, struct vm_error *err);

/* Does io_uring work here with the operations the engine needs?  On
 * false, why says why (ENOSYS under a seccomp filter, an old kernel...). */
bool vm_copy_probe_uring(char *why, size_t why_len);

/* Can a file be cloned with FICLONE inside the directory dirfd?  Makes
 * and removes two scratch files.  1 yes, 0 no, -errno on other errors. */
int vm_copy_probe_reflink(int dirfd);

const char *vm_copy_io_name(enum vm_copy_io io);
