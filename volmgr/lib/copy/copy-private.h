/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Inside the tree copy engine: the walker (copy.c) makes directories,
 * links and special files itself and hands every regular file, both ends
 * open, to a data path (copy-uring.c or copy-syscalls.c) through a
 * bounded queue (copy-queue.c).  The data path moves the bytes, then
 * finishes the file (owner, xattrs, mode, times) and closes both fds.  A
 * reflink copy as root has no queue: several walkers share the tree
 * (copy-dirs.c) and run each file's job themselves.  Every file records
 * its errors in copy-fail.c, the bottom. */
#pragma once

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "copy.h"

/* Bounds on what a copy holds at once, whatever the tree: the queue and
 * the files in flight each keep two fds open, the walk two per level.
 * The queue gets a quarter of RLIMIT_NOFILE, within these bounds. */
#define VM_COPY_QUEUE_MIN 16
#define VM_COPY_QUEUE_MAX 512
#define VM_COPY_URING_SLOTS 32
#define VM_COPY_CHUNK (128 * 1024)
#define VM_COPY_SYSCALL_THREADS 2
#define VM_COPY_URING_THREADS 2
/* Reflink walkers: one per CPU within these.  FICLONE moves no data; it
 * is CPU and metadata locks, and more threads than CPUs only queue on
 * those (measured on XFS: 2 beat 3 and 4 on 2 CPUs). */
#define VM_COPY_REFLINK_THREADS_MIN 2
#define VM_COPY_REFLINK_THREADS_MAX 8
#define VM_COPY_CONSUMERS_MAX VM_COPY_REFLINK_THREADS_MAX /* the most of the three */
/* Every consumer (or reflink walker) has a slot in filling[]: at most
 * this many start. */
_Static_assert(VM_COPY_SYSCALL_THREADS <= VM_COPY_CONSUMERS_MAX &&
		       VM_COPY_URING_THREADS <= VM_COPY_CONSUMERS_MAX &&
		       VM_COPY_REFLINK_THREADS_MAX <= VM_COPY_CONSUMERS_MAX,
	       "a consumer without a filling[] slot");
/* How far down the queue a consumer looks for a file of a directory no
 * other consumer is filling. */
#define VM_COPY_PICK_SCAN 64
#define VM_COPY_XATTR_LIST_MAX 65536
#define VM_COPY_XATTR_VALUE_MAX 65536

/* A destination directory that files are still being made in.  The
 * walker holds a reference while it walks it, every queued file one: the
 * last to let go gives it the source's owner, xattrs, mode and times,
 * after everything made inside it (which would move its mtime). */
struct vm_copy_dir {
	atomic_int refs;
	int src, dst; /* src -1: a mount point, no xattrs to copy */
	struct stat st;
	mode_t created;
	bool owned;
	bool is_root; /* the caller's: vm_copy_tree finishes it */
	/* What vm_copy_ctx's filling[] keeps apart: where the file system
	 * takes the inodes of the files made in it from (an XFS allocation
	 * group), or the directory itself, never 0; and on XFS the
	 * allocation group of the source directory, where its files' data
	 * usually is (a clone updates that group's reference counts), else
	 * 0. */
	uintptr_t group, src_group;
	/* For the walker that takes it from vm_copy_ctx.dirs: its path below
	 * the roots (malloc'ed), depth, and the gid files made in it get. */
	char *path;
	unsigned depth;
	gid_t gid;
	char name[NAME_MAX + 1];
};

/* One regular file to copy: the source open, the destination open (dst)
 * or still to be made in dir (dst -1) by the data path, which spreads
 * the cost of creating inodes over its threads. */
struct vm_copy_job {
	int src, dst;
	struct vm_copy_dir *dir; /* a reference, or NULL */
	struct stat st;
	bool sparse; /* fewer blocks than its size: map data with SEEK_DATA */
	bool owned;  /* created with the source's owner already: no chown */
	char name[NAME_MAX + 1];
};

/* Per-thread buffers for xattrs and read/write copies. */
struct vm_copy_scratch {
	char list[VM_COPY_XATTR_LIST_MAX + 1];
	char value[VM_COPY_XATTR_VALUE_MAX];
	char buf[VM_COPY_CHUNK];
};

/* copy-links.c: the hard-link table. */
struct vm_copy_link {
	dev_t dev;
	ino_t ino;
	char *relpath; /* NULL: empty slot */
};
struct vm_copy_links {
	struct vm_copy_link *slots;
	size_t n, cap;
	size_t path_bytes; /* what the relpaths hold, NULs included */
};
/* A caller builds the source tree: bound what its hard links cost the
 * daemon (slots ~24 bytes an entry at most half full, plus the paths). */
#define VM_COPY_LINKS_MAX (1u << 20)
#define VM_COPY_LINKS_PATH_BYTES_MAX ((size_t)256 << 20)

/* How the copy failed (copy-fail.c): the first error wins, everyone
 * stops at the next check. */
struct vm_copy_failure {
	atomic_bool failed;
	pthread_mutex_t lock;
	int code;             /* the first error's errno */
	struct vm_error *err; /* the caller's */
};

struct vm_copy_ctx {
	const struct vm_copy_opts *opts;
	const struct vm_reader *reader; /* NULL: read as root */
	dev_t src_dev;
	uint64_t src_mnt_id; /* 0: unknown (statx without STATX_MNT_ID) */
	int dst_root;
	mode_t umask; /* to skip a chmod that creation already did */
	bool umask_known;
	uid_t uid; /* who owns what the engine creates */
	gid_t gid;
	uint64_t t0;

	struct vm_copy_failure fail; /* copy-fail.c's */

	/* Counters the data path updates. */
	atomic_uint_fast64_t files_done, bytes_done, xattrs_done;

	/* The queue from the walker to the data path (copy-queue.c; the
	 * shared walk of copy-dirs.c takes the same lock). */
	pthread_mutex_t lock;
	pthread_cond_t not_empty, not_full, drained;
	struct vm_copy_job **queue;
	size_t q_cap, q_head, q_len;
	/* Who sleeps on the queue: wake them only when it is worth it, not
	 * for every job (each wake-up is a futex call and a switch). */
	int consumers_waiting;
	bool producer_waiting;
	bool producing_done;
	int live_consumers;
	/* The groups (vm_copy_dir.group, src_group) each consumer last took
	 * a file of, or each walker walks: they keep to different ones where
	 * the queue allows, so they do not wait for one directory's lock to
	 * create their files, nor, on XFS, for one allocation group's.
	 * 0: none. */
	uintptr_t filling[VM_COPY_CONSUMERS_MAX], filling_src[VM_COPY_CONSUMERS_MAX];
	unsigned n_consumer_ids;
	/* XFS: an inode number shifted right by this is its allocation
	 * group; 0 where the group is the directory. */
	unsigned group_shift, src_group_shift;

	/* A walk shared by several walkers (copy-dirs.c), under lock:
	 * directories made and not walked yet, the walkers walking one and
	 * those waiting for one. */
	pthread_cond_t dirs_ready;
	struct vm_copy_dir **dirs;
	size_t dirs_cap, dirs_len;
	unsigned walkers_busy, walkers_waiting;

	/* Names of inodes with several, and where their first copy is:
	 * looked up and filled under links_lock, so two walkers meeting
	 * two names of one inode make one copy and one link. */
	pthread_mutex_t links_lock;
	struct vm_copy_links links;

	/* Progress: everything made that is not a regular file or a
	 * directory (those count in files_done and the walkers' stats), and
	 * one report at a time. */
	atomic_uint_fast64_t others_done;
	atomic_uint_fast64_t last_progress;
	pthread_mutex_t progress_lock;
};

/* Is a group of d another consumer's or walker's (under lock)? */
static inline bool vm_copy_groups_taken(const struct vm_copy_ctx *c, unsigned id,
					const struct vm_copy_dir *d)
{
	for (unsigned k = 0; k < VM_COPY_CONSUMERS_MAX; k++)
		if (k != id && (c->filling[k] == d->group ||
				(d->src_group && c->filling_src[k] == d->src_group)))
			return true;
	return false;
}

/* Consumer or walker id now fills d (NULL: nothing). */
static inline void vm_copy_groups_take(struct vm_copy_ctx *c, unsigned id,
				       const struct vm_copy_dir *d)
{
	c->filling[id] = d ? d->group : 0;
	c->filling_src[id] = d ? d->src_group : 0;
}

/* The files below call each other only downwards, in this order from
 * the top (tests/unit/layering.py checks that no circle comes back):
 *
 *   copy.c           the walker, and vm_copy_tree
 *   copy-uring.c     the data paths, the consumers of the queue
 *   copy-syscalls.c
 *   copy-queue.c     the queue and the jobs on it
 *   copy-dirs.c      directories waiting for a walker
 *   copy-attrs.c     owner, xattrs, mode, times; directories finished
 *   copy-links.c, copy-reader.c, copy-groups.c   (call nothing here)
 *   copy-fail.c      the first error, which every other file records
 */

/* copy-fail.c, the bottom of the engine (it calls nothing else of it):
 * the first error wins.  init before any thread starts, with the
 * caller's err (may be NULL); fini after they have all ended. */
void vm_copy_fail_init(struct vm_copy_ctx *c, struct vm_error *err);
void vm_copy_fail_fini(struct vm_copy_ctx *c);
/* Record an error (the first one only) and make everybody stop.
 * Returns -code (-EIO for 0), as vm_error_set does. */
int vm_copy_fail(struct vm_copy_ctx *c, int code, bool with_errno,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static inline bool vm_copy_failed(struct vm_copy_ctx *c)
{
	return atomic_load_explicit(&c->fail.failed, memory_order_relaxed);
}
/* 0 if nothing failed, else the first error as -errno (-EIO if it had
 * no errno). */
int vm_copy_fail_code(struct vm_copy_ctx *c);

/* copy-groups.c: on XFS, the shift that turns an inode number into its
 * allocation group; 0 elsewhere (or if the geometry cannot be read). */
unsigned vm_copy_group_shift(int fd);

/* copy-reader.c: the source as the reader (c->reader; root if NULL).
 * vm_copy_as_reader switches this thread's fs credentials, as_root
 * switches them back. */
int vm_copy_as_reader(const struct vm_copy_ctx *c);
void vm_copy_as_root(const struct vm_copy_ctx *c);
int vm_copy_src_fstatat(struct vm_copy_ctx *c, int dir, const char *name, struct stat *st);
int vm_copy_src_open(struct vm_copy_ctx *c, int dir, const char *name, int flags);
/* Open for reading, as the reader, the inode an O_PATH fd holds. */
int vm_copy_src_reopen(struct vm_copy_ctx *c, int path_fd, int flags);

/* copy-links.c, the hard-link table: the path (below the destination
 * root) of the first copy, or NULL. */
const char *vm_copy_links_find(const struct vm_copy_links *l, dev_t dev, ino_t ino);
/* Remember dir/name (dir "" at the top) as the first copy.  -E2BIG past
 * VM_COPY_LINKS_MAX entries or VM_COPY_LINKS_PATH_BYTES_MAX of paths. */
int vm_copy_links_add(struct vm_copy_links *l, dev_t dev, ino_t ino, const char *dir,
		      const char *name);
void vm_copy_links_free(struct vm_copy_links *l);
/* Link the first copy at relpath below dst_root as dst_dir/name. */
int vm_copy_link_first(int dst_root, const char *relpath, int dst_dir, const char *name);

/* copy-attrs.c.  Owner (unless owned: creation gave the right one),
 * xattrs, mode (unless created with it already), times; src -1: no
 * xattrs to copy. */
int vm_copy_attrs(struct vm_copy_ctx *c, int src, int dst, const struct stat *st,
		  const char *name, struct vm_copy_scratch *s, mode_t created, bool owned);
/* Let go of a directory; the last reference gives it its attributes
 * (unless the copy failed) and frees it.  s: scratch for its xattrs, may
 * be NULL. */
void vm_copy_dir_unref(struct vm_copy_ctx *c, struct vm_copy_dir *d,
		       struct vm_copy_scratch *s);

/* copy-dirs.c: directories waiting for a walker.  init: room for cap,
 * the first walker busy (with the top).  push: false if full (walk it
 * yourself).  pop: the next directory to walk, waiting while others may
 * still make one; NULL when the walk is over or failed.  done: after
 * walking what pop gave.  free: unrefs what is left (after a failure). */
int vm_copy_dirs_init(struct vm_copy_ctx *c, size_t cap);
bool vm_copy_dirs_push(struct vm_copy_ctx *c, struct vm_copy_dir *d);
struct vm_copy_dir *vm_copy_dirs_pop(struct vm_copy_ctx *c, unsigned id);
void vm_copy_dirs_done(struct vm_copy_ctx *c, unsigned id);
void vm_copy_dirs_free(struct vm_copy_ctx *c, struct vm_copy_scratch *s);

/* copy-queue.c, the queue from the walker to the data path.  init: the
 * queue sized from RLIMIT_NOFILE, its lock (which copy-dirs.c shares) and
 * conditions; -ENOMEM.  free: after init, and after every thread ended
 * (accepts a queue never set up). */
int vm_copy_queue_init(struct vm_copy_ctx *c);
void vm_copy_queue_free(struct vm_copy_ctx *c);
/* The walker hands a job over, waiting while the queue is full. */
void vm_copy_queue_push(struct vm_copy_ctx *c, struct vm_copy_job *j);
/* Start up to want consumer threads running fn(c) into threads[];
 * returns how many started.  Each must end with vm_copy_consumer_exit. */
int vm_copy_queue_start_consumers(struct vm_copy_ctx *c, void *(*fn)(void *), int want,
				  pthread_t *threads);
/* A consumer thread's number, for vm_copy_queue_pop; called once as it
 * starts. */
unsigned vm_copy_consumer_id(struct vm_copy_ctx *c);
/* The data path takes jobs: blocking when wait is set, else NULL if none
 * is ready.  NULL with *ret_ended set: the walker is done, the queue empty.
 * Not strictly in order: a file of a directory that another consumer is
 * not filling comes first. */
struct vm_copy_job *vm_copy_queue_pop(struct vm_copy_ctx *c, unsigned id, bool wait,
				      bool *ret_ended);
/* A consumer thread ends: the walker waits for the last one. */
void vm_copy_consumer_exit(struct vm_copy_ctx *c);
/* The walker is done: no more jobs come. */
void vm_copy_queue_end(struct vm_copy_ctx *c);
/* After vm_copy_queue_end: false at once if no consumer is left, else
 * true after waiting for one to exit, at most timeout_ns (0: no limit). */
bool vm_copy_queue_wait(struct vm_copy_ctx *c, uint64_t timeout_ns);

/* copy-queue.c, a job's life.  new: a job for the regular file src,
 * with dst open, or -1 for the data path to create it in dir (the job
 * then holds a reference to dir); takes both fds, and closes them if it
 * fails.  0 or -errno (recorded in c). */
int vm_copy_job_new(struct vm_copy_ctx *c, int src, int dst, struct vm_copy_dir *dir,
		    const struct stat *st, const char *name, bool owned,
		    struct vm_copy_job **ret_job);
/* Create the destination file if the walker left that to the data path. */
int vm_copy_job_open(struct vm_copy_ctx *c, struct vm_copy_job *j);
/* The data extents of a sparse file, one at a time: the next [start, end)
 * at or after off, or 0 at the end. */
int vm_copy_next_extent(int fd, off_t off, off_t size, off_t *ret_start,
			off_t *ret_end);
/* After the data: owner, xattrs (capabilities after the chown that
 * would clear them), mode, times; then the file counts as done.  Does
 * not close. */
int vm_copy_job_finish(struct vm_copy_ctx *c, struct vm_copy_job *j,
		       struct vm_copy_scratch *s);
/* Close both fds, drop the directory reference (s: scratch for the
 * directory's xattrs, may be NULL) and free the job. */
void vm_copy_job_free(struct vm_copy_ctx *c, struct vm_copy_job *j,
		      struct vm_copy_scratch *s);

/* copy-syscalls.c: copy one job's data with copy_file_range (then
 * read/write), or clone it with FICLONE. */
int vm_copy_data_syscalls(struct vm_copy_ctx *c, struct vm_copy_job *j,
			  struct vm_copy_scratch *s);
int vm_copy_data_reflink(struct vm_copy_ctx *c, struct vm_copy_job *j);
/* One job whole, in this thread: create, copy or clone the data (as
 * opts->data says), finish, count, free.  0 or -errno (recorded in c). */
int vm_copy_job_run(struct vm_copy_ctx *c, struct vm_copy_job *j, struct vm_copy_scratch *s);
/* The syscalls consumer thread: runs jobs until the queue ends. */
void *vm_copy_syscalls_thread(void *ctx);
/* 1 if src_fd and dst_fd are on one btrfs or XFS file system that can
 * clone: copy_file_range then shares extents instead of copying (what
 * an import into the pool from the pool wants); 0 if not, or -errno. */
int vm_copy_same_cloning_fs(int src_fd, int dst_fd);

/* copy-uring.c: the io_uring consumer thread (its probe,
 * vm_copy_probe_uring, is public: copy.h). */
void *vm_copy_uring_thread(void *ctx);
