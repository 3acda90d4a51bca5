/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The tree copy engine: the walk, the top of the engine.  The calling
 * thread walks the source fd-relative (one component at a time, openat2
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV, or the
 * O_NOFOLLOW fallback with st_dev checks), makes directories, symlinks,
 * special files and hard links itself, and queues every regular file,
 * both ends open, for the data path running in other threads.  A reflink
 * copy as root is walked by several threads instead, each cloning the
 * files of the directories it walks (start_walkers).  Directories get
 * their owner, mode and times once their contents are made.
 * vm_copy_tree runs the phases in order: set-up, start, the walk, drain,
 * tear-down. */
#include "copy-private.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>

const char *vm_copy_io_name(enum vm_copy_io io)
{
	switch (io) {
	case VM_COPY_IO_AUTO: return "auto";
	case VM_COPY_IO_URING: return "io_uring";
	case VM_COPY_IO_SYSCALLS: return "syscalls";
	}
	return "?";
}

/* ------------------------------------------------------------ the walker */

struct walk {
	struct vm_copy_ctx *c;
	unsigned id; /* its slot in c->filling */
	struct vm_copy_stats st; /* what the walker made itself */
	struct vm_copy_scratch *scratch;
	char path[PATH_MAX]; /* current directory below the roots, "" at top */
	uint64_t interval, entries;
	/* What a file made in the current destination directory is owned
	 * by: our fsuid, and its gid if the directory is set-gid. */
	gid_t dir_gid;
	bool dir_setgid;
	struct vm_copy_dir *cur; /* the destination directory being filled */
	bool inline_data; /* no consumer threads: copy the data right here */
	bool uring;       /* the data path is io_uring */
	bool shared;      /* one of several walkers: leave new directories in
			   * c->dirs for whoever is free */
};

/* An entry's path below the top, for error messages: "%s%s%s". */
#define AT(w, name) (w)->path, (w)->path[0] ? "/" : "", (name)

/* ------------------------------------------------------------ hard links */

/* Count something made that progress counts but the data path does not. */
static void made(struct walk *w, uint64_t *counter)
{
	(*counter)++;
	atomic_fetch_add_explicit(&w->c->others_done, 1, memory_order_relaxed);
}

/* A later name of an inode already copied becomes a hard link to the
 * copy.  1 if linked, 0 if this is the first name.  Under links_lock
 * (lock_links), held until the first name's copy is made and
 * remembered. */
static int try_hardlink(struct walk *w, const struct stat *st, int dst_dir, const char *name)
{
	if (S_ISDIR(st->st_mode) || st->st_nlink < 2)
		return 0;
	const char *first = vm_copy_links_find(&w->c->links, st->st_dev, st->st_ino);
	if (!first)
		return 0;
	int r = vm_copy_link_first(w->c->dst_root, first, dst_dir, name);
	if (r < 0)
		return vm_copy_fail(w->c, -r, true, "cannot link %s%s%s", AT(w, name));
	made(w, &w->st.hardlinks);
	return 1;
}

static int remember_link(struct walk *w, const struct stat *st, const char *name)
{
	if (S_ISDIR(st->st_mode) || st->st_nlink < 2)
		return 0;
	int r = vm_copy_links_add(&w->c->links, st->st_dev, st->st_ino, w->path, name);
	if (r == -E2BIG)
		return vm_copy_fail(w->c, E2BIG, false,
				    "too many hard-linked files to copy at %s%s%s: at most %u "
				    "inodes with several names, %zu MiB of their paths",
				    w->path, w->path[0] ? "/" : "", name, VM_COPY_LINKS_MAX,
				    VM_COPY_LINKS_PATH_BYTES_MAX >> 20);
	return r < 0 ? vm_copy_fail(w->c, -r, true, "cannot track hard link %s%s%s", AT(w, name)) : 0;
}

/* Only an inode with several names needs the table. */
static bool lock_links(struct walk *w, const struct stat *st)
{
	if (S_ISDIR(st->st_mode) || st->st_nlink < 2)
		return false;
	pthread_mutex_lock(&w->c->links_lock);
	return true;
}

static void unlock_links(struct walk *w, bool locked)
{
	if (locked)
		pthread_mutex_unlock(&w->c->links_lock);
}

/* ------------------------------------------------------------- progress */

/* From any walker, at most every interval; one report at a time (a
 * walker finding another reporting skips its turn). */
static void progress(struct walk *w, bool done)
{
	struct vm_copy_ctx *c = w->c;
	if (!c->opts->progress)
		return;
	uint64_t now = (uint64_t)vm_mono_ns();
	if (!done && now - atomic_load(&c->last_progress) < w->interval)
		return;
	if (done)
		pthread_mutex_lock(&c->progress_lock);
	else if (pthread_mutex_trylock(&c->progress_lock) != 0)
		return;
	atomic_store(&c->last_progress, now);
	struct vm_copy_progress p = {
		.files = atomic_load(&c->files_done) + atomic_load(&c->others_done),
		.bytes = atomic_load(&c->bytes_done),
		.total_files = c->opts->total_files,
		.total_bytes = c->opts->total_bytes,
		.elapsed_ns = now - c->t0,
		.done = done,
	};
	c->opts->progress(&p, c->opts->progress_userdata);
	pthread_mutex_unlock(&c->progress_lock);
}

/* -------------------------------------------------------------- the walk */

static int walk_dir(struct walk *w, int src, int dst, unsigned depth);

static gid_t new_gid(const struct walk *w)
{
	return w->dir_setgid ? w->dir_gid : w->c->gid;
}

/* Hand a regular file, both ends open (or dst -1: to be made in the
 * current directory), to the data path. */
static int submit_file(struct walk *w, int src, int dst, const struct stat *st,
		       const char *name)
{
	struct vm_copy_ctx *c = w->c;
	struct vm_copy_job *j;
	int r = vm_copy_job_new(c, src, dst, w->cur, st, name,
				st->st_uid == c->uid && st->st_gid == new_gid(w), &j);
	if (r < 0)
		return r;
	if (!w->inline_data) {
		vm_copy_queue_push(c, j);
		return 0;
	}
	return vm_copy_job_run(c, j, w->scratch);
}

/* A regular file; src is open (and fstat'ed into st). Takes src. */
static int copy_file(struct walk *w, int src, const struct stat *st, int dst_dir,
		     const char *name)
{
	struct vm_copy_ctx *c = w->c;
	if (!lock_links(w, st)) /* the data path creates it */
		return submit_file(w, src, -1, st, name);
	int r = try_hardlink(w, st, dst_dir, name);
	if (r != 0) {
		unlock_links(w, true);
		close(src);
		return r < 0 ? r : 0;
	}
	/* A later name may link to it before the data path gets to it:
	 * make it here, before another walker can look for it. */
	int dst = openat(dst_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			 st->st_mode & 0777);
	if (dst < 0) {
		r = vm_copy_fail(c, errno, true, "cannot create %s%s%s", AT(w, name));
	} else if ((r = remember_link(w, st, name)) < 0) {
		close(dst);
	}
	unlock_links(w, true);
	if (r < 0) {
		close(src);
		return r;
	}
	return submit_file(w, src, dst, st, name);
}

/* A name readdir listed is gone (a temp file of a live tree): leave it
 * out, as if the walk had come a moment later. */
static int skip_vanished(struct walk *w)
{
	w->st.skipped++;
	return 0;
}

static int copy_symlink(struct walk *w, int src_dir, int dst_dir, const char *name,
			const struct stat *st)
{
	struct vm_copy_ctx *c = w->c;
	char target[PATH_MAX + 1];
	int rr = vm_copy_as_reader(c);
	ssize_t n = rr < 0 ? rr : readlinkat(src_dir, name, target, sizeof(target) - 1);
	int e = errno;
	vm_copy_as_root(c);
	if (n < 0 && rr == 0 && e == ENOENT) {
		skip_vanished(w);
		return 1; /* nothing for a later name to link to */
	}
	if (n < 0)
		return vm_copy_fail(c, rr < 0 ? -rr : e, true, "cannot read link %s%s%s", AT(w, name));
	target[n] = '\0';
	if (symlinkat(target, dst_dir, name) < 0)
		return vm_copy_fail(c, errno, true, "cannot create link %s%s%s", AT(w, name));
	if (fchownat(dst_dir, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
		return vm_copy_fail(c, errno, true, "cannot chown link %s%s%s", AT(w, name));
	struct timespec ts[2] = {st->st_atim, st->st_mtim};
	if (utimensat(dst_dir, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return vm_copy_fail(c, errno, true, "cannot set times of link %s%s%s", AT(w, name));
	made(w, &w->st.symlinks);
	return 0;
}

/* 0 made, 1 left out, or -errno. */
static int copy_node(struct walk *w, int dst_dir, const char *name, const struct stat *st)
{
	struct vm_copy_ctx *c = w->c;
	if (mknodat(dst_dir, name, st->st_mode & (S_IFMT | 0777), st->st_rdev) < 0) {
		/* Where device nodes may not be made (a sandboxed volmgrd),
		 * leave them out rather than fail the copy. */
		if (errno == EPERM && !S_ISFIFO(st->st_mode)) {
			w->st.skipped++;
			return 1;
		}
		return vm_copy_fail(c, errno, true, "cannot create node %s%s%s", AT(w, name));
	}
	_cleanup_close_ int d = vm_openat_beneath(dst_dir, name, O_PATH | O_CLOEXEC, 0);
	if (d < 0)
		return vm_copy_fail(c, -d, true, "cannot open node %s%s%s", AT(w, name));
	/* fchown/fchmod do not work on O_PATH fds: go through the fd's own
	 * /proc entry, which names exactly this inode. */
	char p[64];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", d);
	if (chown(p, st->st_uid, st->st_gid) < 0 || chmod(p, st->st_mode & 07777) < 0)
		return vm_copy_fail(c, errno, true, "cannot set owner of node %s%s%s", AT(w, name));
	struct timespec ts[2] = {st->st_atim, st->st_mtim};
	if (utimensat(dst_dir, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return vm_copy_fail(c, errno, true, "cannot set times of node %s%s%s", AT(w, name));
	made(w, &w->st.others);
	return 0;
}

/* The group of a new destination directory (vm_copy_dir.group): on XFS
 * its allocation group, where the files made in it get their inodes;
 * else the directory itself. */
static uintptr_t dir_group(const struct vm_copy_ctx *c, const struct vm_copy_dir *d)
{
	struct stat st;
	if (c->group_shift && fstat(d->dst, &st) == 0)
		return (uintptr_t)(st.st_ino >> c->group_shift) + 1;
	return (uintptr_t)d;
}

/* The source directory's (d->st is its stat): where the data of the files
 * in it usually is, on XFS. */
static uintptr_t src_dir_group(const struct vm_copy_ctx *c, const struct vm_copy_dir *d)
{
	return c->src_group_shift ? (uintptr_t)(d->st.st_ino >> c->src_group_shift) + 1 : 0;
}

/* A directory: src is open, or -1 for a mount point (an empty directory;
 * st is the mounted root's).  Takes src.  Its attributes
 * come when the last file made in it is done (vm_copy_dir_unref). */
static int copy_dir(struct walk *w, int src, const struct stat *st, int dst_dir,
		    const char *name, unsigned depth)
{
	struct vm_copy_ctx *c = w->c;
	_cleanup_close_ int s = src;
	if (depth >= VM_TREE_MAX_DEPTH)
		return vm_copy_fail(c, ELOOP, false, "tree is deeper than %d levels at %s",
				    VM_TREE_MAX_DEPTH, name);
	if (mkdirat(dst_dir, name, 0700) < 0)
		return vm_copy_fail(c, errno, true, "cannot create directory %s%s%s", AT(w, name));
	_cleanup_close_ int d = vm_openat_beneath(dst_dir, name,
						  O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (d < 0)
		return vm_copy_fail(c, -d, true, "cannot open new directory %s%s%s", AT(w, name));
	w->st.dirs++;
	struct vm_copy_dir *h = calloc(1, sizeof(*h));
	if (!h)
		return vm_copy_fail(c, ENOMEM, false, "out of memory");
	atomic_init(&h->refs, 1);
	h->st = *st;
	/* mkdir made it ours, with the parent's gid and set-gid bit if the
	 * parent has it. */
	h->owned = st->st_uid == c->uid && st->st_gid == new_gid(w);
	h->created = 0700 | (w->dir_setgid ? S_ISGID : 0);
	h->gid = new_gid(w);
	h->depth = depth + 1;
	snprintf(h->name, sizeof(h->name), "%s", name);
	/* One file system only: a mount point (or a btrfs subvolume on
	 * another device) stays an empty directory, without xattrs. */
	bool walk = s >= 0;
	h->src = walk ? TAKE_FD(s) : -1;
	h->dst = TAKE_FD(d);
	h->group = dir_group(c, h);
	h->src_group = src_dir_group(c, h);
	int r = 0;
	if (walk) {
		size_t len = strlen(w->path);
		int n = snprintf(w->path + len, sizeof(w->path) - len, "%s%s",
				 len ? "/" : "", name);
		if (n < 0 || (size_t)n >= sizeof(w->path) - len) {
			w->path[len] = '\0';
			r = vm_copy_fail(c, ENAMETOOLONG, false, "path too long below %s%s%s", AT(w, name));
		} else if (w->shared && (h->path = strdup(w->path)) && vm_copy_dirs_push(c, h)) {
			/* Another walker may take it; its reference goes with it. */
			w->path[len] = '\0';
			return vm_copy_failed(c) ? -ECANCELED : 0;
		} else {
			gid_t saved_gid = w->dir_gid;
			struct vm_copy_dir *saved_cur = w->cur;
			w->dir_gid = h->gid;
			w->cur = h;
			r = walk_dir(w, h->src, h->dst, depth + 1);
			w->cur = saved_cur;
			w->dir_gid = saved_gid;
			w->path[len] = '\0';
		}
	}
	vm_copy_dir_unref(c, h, w->scratch);
	return r < 0 ? r : (vm_copy_failed(c) ? -ECANCELED : 0);
}

/* A walker takes a directory another left in c->dirs, walks it and lets
 * go of it, until the walk is over. */
static void walk_shared(struct walk *w)
{
	struct vm_copy_ctx *c = w->c;
	struct vm_copy_dir *d;
	while ((d = vm_copy_dirs_pop(c, w->id))) {
		snprintf(w->path, sizeof(w->path), "%s", d->path);
		w->dir_gid = d->gid;
		w->cur = d;
		walk_dir(w, d->src, d->dst, d->depth); /* a failure is in c */
		w->cur = NULL;
		w->path[0] = '\0';
		vm_copy_dir_unref(c, d, w->scratch);
		vm_copy_dirs_done(c, w->id);
	}
}

static void *walker_thread(void *arg)
{
	walk_shared(arg);
	return NULL;
}

static void stat_from_statx(const struct statx *x, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_dev = makedev(x->stx_dev_major, x->stx_dev_minor);
	st->st_ino = x->stx_ino;
	st->st_mode = x->stx_mode;
	st->st_nlink = x->stx_nlink;
	st->st_uid = x->stx_uid;
	st->st_gid = x->stx_gid;
	st->st_rdev = makedev(x->stx_rdev_major, x->stx_rdev_minor);
	st->st_size = (off_t)x->stx_size;
	st->st_blksize = x->stx_blksize;
	st->st_blocks = (blkcnt_t)x->stx_blocks;
	st->st_atim = (struct timespec){x->stx_atime.tv_sec, x->stx_atime.tv_nsec};
	st->st_mtim = (struct timespec){x->stx_mtime.tv_sec, x->stx_mtime.tv_nsec};
	st->st_ctim = (struct timespec){x->stx_ctime.tv_sec, x->stx_ctime.tv_nsec};
}

/* Open name in the source, as the reader, and stat what was opened.
 * statx gives the mount ID in the same call: *ret_foreign says the
 * object is on another file system or mount than the source's top (a
 * mount point, even a bind mount of the same file system), which
 * RESOLVE_NO_XDEV refuses with EXDEV and the fallback must find out
 * itself. */
static int open_source(struct walk *w, int src_dir, const char *name, int flags,
		       struct stat *ret_st, bool *ret_foreign)
{
	struct vm_copy_ctx *c = w->c;
	/* openat2 refuses O_PATH with any flag but a few (EINVAL).  Root
	 * reads with O_NOATIME: under relatime the first read a day after
	 * the last would otherwise write every file's atime into the
	 * source, a cache that a copy should leave alone (a reader may not
	 * own the files: EPERM; root needs CAP_FOWNER, as it does to set
	 * the times of files it gave another owner). */
	if (!(flags & O_PATH))
		flags |= O_NOCTTY | (c->reader ? 0 : O_NOATIME);
	int fd = vm_copy_src_open(c, src_dir, name, flags | O_CLOEXEC);
	if (fd < 0)
		return fd;
	struct statx x;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_MNT_ID, &x) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	stat_from_statx(&x, ret_st);
	*ret_foreign = ret_st->st_dev != c->src_dev ||
		       (c->src_mnt_id && (x.stx_mask & STATX_MNT_ID) &&
			x.stx_mnt_id != c->src_mnt_id);
	return fd;
}

/* A directory or a regular file, opened.  A mount point: an empty
 * directory with the mounted root's owner, mode and times; a file
 * mounted over one is left out.  Takes fd. */
static int copy_opened(struct walk *w, int fd, const struct stat *st, bool foreign,
		       int dst_dir, const char *name, unsigned depth)
{
	if (foreign) {
		close(fd);
		if (S_ISDIR(st->st_mode))
			return copy_dir(w, -1, st, dst_dir, name, depth);
		w->st.skipped++;
		return 0;
	}
	if (S_ISDIR(st->st_mode))
		return copy_dir(w, fd, st, dst_dir, name, depth);
	/* A regular file was opened O_PATH and its type checked on that fd:
	 * only now is it opened for reading, through the fd itself, so a
	 * device node renamed into its place is never opened by root.  No
	 * O_NONBLOCK on it, for any data path: io_uring would hand -EAGAIN
	 * back for a cold page cache instead of waiting for the disk. */
	int rd = vm_copy_src_reopen(w->c, fd, O_RDONLY);
	close(fd);
	if (rd == -ENOENT)
		return skip_vanished(w);
	if (rd < 0)
		return vm_copy_fail(w->c, -rd, true, "cannot open %s%s%s", AT(w, name));
	return copy_file(w, rd, st, dst_dir, name);
}

static int copy_entry(struct walk *w, int src_dir, int dst_dir, const char *name,
		      unsigned char d_type, unsigned depth)
{
	struct vm_copy_ctx *c = w->c;
	struct stat st;
	bool foreign;
	if (d_type == DT_REG || d_type == DT_DIR) {
		/* The common cases: open first (never following a link,
		 * never leaving the tree) and stat what was opened.  A name
		 * that changed type since readdir falls through to lstat.
		 * A file is opened O_PATH (no fifo can block it, no device
		 * can see an open) and reopened for reading once fstat says
		 * it is regular (copy_opened); where no device node can
		 * appear (src_no_new_devices), it is opened for reading at
		 * once, O_NONBLOCK (a fifo renamed into place must not hang
		 * the copy). */
		bool direct = d_type == DT_REG && c->opts->src_no_new_devices;
		int flags = d_type == DT_DIR ? O_RDONLY | O_DIRECTORY
			    : direct	     ? O_RDONLY | O_NONBLOCK
					     : O_PATH;
		int fd = open_source(w, src_dir, name, flags, &st, &foreign);
		if (fd >= 0) {
			if (direct && S_ISREG(st.st_mode) && !foreign) {
				/* io_uring would answer -EAGAIN for data not
				 * in the page cache (see copy_opened).  Keep
				 * O_NOATIME (open_source), which F_SETFL sets too. */
				if (w->uring && fcntl(fd, F_SETFL, c->reader ? 0 : O_NOATIME) < 0) {
					int e = errno;
					close(fd);
					return vm_copy_fail(c, e, true, "cannot open %s%s%s",
							    AT(w, name));
				}
				return copy_file(w, fd, &st, dst_dir, name);
			}
			if ((d_type == DT_DIR && S_ISDIR(st.st_mode)) ||
			    (d_type == DT_REG && S_ISREG(st.st_mode)))
				return copy_opened(w, fd, &st, foreign, dst_dir, name, depth);
			close(fd);
		} else if (fd == -ENOENT) {
			return skip_vanished(w);
		} else if (fd != -ELOOP && fd != -EXDEV && fd != -ENOTDIR && fd != -ENXIO) {
			return vm_copy_fail(c, -fd, true, "cannot open %s%s%s", AT(w, name));
		}
	}
	int r = vm_copy_src_fstatat(c, src_dir, name, &st);
	if (r == -ENOENT)
		return skip_vanished(w);
	if (r < 0)
		return vm_copy_fail(c, -r, true, "cannot stat %s%s%s", AT(w, name));
	if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) {
		struct stat st2;
		int fd = open_source(w, src_dir, name,
				     S_ISDIR(st.st_mode) ? O_RDONLY | O_DIRECTORY : O_PATH,
				     &st2, &foreign);
		if (fd == -EXDEV) /* openat2 at a mount point */
			return copy_opened(w, -1, &st, true, dst_dir, name, depth);
		if (fd == -ENOENT)
			return skip_vanished(w);
		if (fd < 0)
			return vm_copy_fail(c, -fd, true, "cannot open %s%s%s", AT(w, name));
		if (st2.st_ino != st.st_ino || st2.st_dev != st.st_dev) {
			close(fd);
			return vm_copy_fail(c, EAGAIN, false, "%s%s%s changed while it was copied",
					    AT(w, name));
		}
		return copy_opened(w, fd, &st2, foreign, dst_dir, name, depth);
	}
	if (st.st_dev != c->src_dev) {
		w->st.skipped++;
		return 0;
	}
	if (!(S_ISLNK(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) ||
	      S_ISBLK(st.st_mode)))
		return 0; /* sockets: meaningless in a copy, skipped like cp does */
	/* A caller who is not root could not mknod a device node itself:
	 * its copy gets none either (not even root's copy of one it may
	 * read). */
	if (c->reader && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))) {
		w->st.skipped++;
		return 0;
	}
	bool locked = lock_links(w, &st);
	r = try_hardlink(w, &st, dst_dir, name);
	if (r == 0) {
		r = S_ISLNK(st.st_mode) ? copy_symlink(w, src_dir, dst_dir, name, &st)
					: copy_node(w, dst_dir, name, &st);
		/* 1: left out; no later name may link to it. */
		if (r == 0)
			r = remember_link(w, &st, name);
	}
	unlock_links(w, locked);
	return r < 0 ? r : 0;
}

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static int walk_dir(struct walk *w, int src, int dst, unsigned depth)
{
	struct vm_copy_ctx *c = w->c;
	/* getdents64 on the directory fd itself: no dup'ed fd per level. */
	enum { DENTS_BUF = 32768 };
	_cleanup_free_ char *buf = malloc(DENTS_BUF);
	if (!buf)
		return vm_copy_fail(c, ENOMEM, false, "out of memory");
	for (;;) {
		long n = syscall(SYS_getdents64, src, buf, DENTS_BUF);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return vm_copy_fail(c, errno, true, "cannot read directory %s",
					    w->path[0] ? w->path : ".");
		}
		if (n == 0)
			return 0;
		for (long off = 0; off < n;) {
			struct linux_dirent64 *de = (struct linux_dirent64 *)(buf + off);
			off += de->d_reclen;
			if (!vm_is_plain_component(de->d_name))
				continue;
			if (vm_copy_failed(c))
				return -ECANCELED;
			int r = copy_entry(w, src, dst, de->d_name, de->d_type, depth);
			if (r < 0)
				return r;
			if ((++w->entries & 63) == 0)
				progress(w, false);
		}
	}
}

/* --------------------------------------------------------------- the copy */

/* The umask lets a file created with its final mode skip the chmod.
 * Read, not set: umask() would change it for the whole process. */
static void read_umask(struct vm_copy_ctx *c)
{
	_cleanup_close_ int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	char buf[4096];
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return;
	buf[n] = '\0';
	const char *p = strstr(buf, "\nUmask:");
	unsigned m;
	if (p && sscanf(p + 7, "%o", &m) == 1) {
		c->umask = (mode_t)m;
		c->umask_known = true;
	}
}

#ifndef CONFIGFS_MAGIC
#define CONFIGFS_MAGIC 0x62656570 /* not in every linux/magic.h */
#endif

/* A reader's copy of a kernel file system (proc, sys...) would read with
 * the capabilities root keeps beyond the fs ones setfsuid drops: refuse
 * it.  The walk never crosses a mount, so the top's file system decides.
 * The name of the file system refused, or NULL. */
static const char *pseudo_fs(int fd)
{
	static const struct { unsigned long magic; const char *name; } fs[] = {
		{PROC_SUPER_MAGIC, "proc"},     {SYSFS_MAGIC, "sysfs"},
		{DEBUGFS_MAGIC, "debugfs"},     {TRACEFS_MAGIC, "tracefs"},
		{SECURITYFS_MAGIC, "securityfs"}, {CGROUP_SUPER_MAGIC, "cgroup"},
		{CGROUP2_SUPER_MAGIC, "cgroup2"}, {CONFIGFS_MAGIC, "configfs"},
		{BPF_FS_MAGIC, "bpf"},          {EFIVARFS_MAGIC, "efivarfs"},
		{PSTOREFS_MAGIC, "pstore"},
	};
	struct statfs sf;
	if (fstatfs(fd, &sf) < 0)
		return "an unknown file system (fstatfs failed)";
	for (size_t i = 0; i < ELEMENTSOF(fs); i++)
		if ((unsigned long)sf.f_type == fs[i].magic)
			return fs[i].name;
	return NULL;
}

static int reflink_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < VM_COPY_REFLINK_THREADS_MIN)
		return VM_COPY_REFLINK_THREADS_MIN;
	return n > VM_COPY_REFLINK_THREADS_MAX ? VM_COPY_REFLINK_THREADS_MAX : (int)n;
}

/* A reflink copy as root: FICLONE moves no data, so the cost is per file
 * (the inode made, the extents shared, the times set), much of it spent
 * waiting for the locks of one directory or allocation group.  Rather
 * than one walker feeding a queue, every thread walks directories whole
 * and clones their files itself, each where the others are not (measured
 * on XFS, 2 CPUs: ~15% less time than walker + consumers).  The calling
 * thread's walk w is the first; the others get walks of their own. */
static int start_walkers(struct walk *w, pthread_t *threads, struct walk **walkers,
			 int *n_threads, struct vm_copy_report *rep)
{
	struct vm_copy_ctx *c = w->c;
	if (vm_copy_dirs_init(c, c->q_cap) < 0)
		return vm_copy_fail(c, ENOMEM, false, "out of memory");
	w->shared = true;
	for (int i = 1; i < reflink_threads(); i++) {
		struct walk *o = malloc(sizeof(*o));
		if (!o)
			break;
		*o = (struct walk){.c = c, .id = (unsigned)i, .interval = w->interval,
				   .dir_setgid = w->dir_setgid, .inline_data = true,
				   .shared = true};
		o->scratch = malloc(sizeof(*o->scratch));
		if (!o->scratch || pthread_create(&threads[*n_threads], NULL, walker_thread, o) != 0) {
			free(o->scratch);
			free(o);
			break; /* fewer walkers; the first walks everything if need be */
		}
		walkers[(*n_threads)++] = o;
	}
	snprintf(rep->io_reason, sizeof(rep->io_reason),
		 "reflink: FICLONE in %d threads, each walking whole directories%s",
		 *n_threads + 1, c->group_shift ? ", kept to different XFS allocation groups" : "");
	return 0;
}

/* After the join: what the others made counts in w's stats. */
static void end_walkers(struct walk *w, struct walk **walkers, int n)
{
	for (int i = 0; i < n; i++) {
		const struct vm_copy_stats *o = &walkers[i]->st;
		w->st.dirs += o->dirs;
		w->st.symlinks += o->symlinks;
		w->st.others += o->others;
		w->st.hardlinks += o->hardlinks;
		w->st.skipped += o->skipped;
		free(walkers[i]->scratch);
		free(walkers[i]);
	}
	vm_copy_dirs_free(w->c, w->scratch);
}

/* Which data path, and why. */
static int choose_io(struct vm_copy_ctx *c, const struct vm_copy_opts *o,
		     int src_fd, int dst_fd, struct vm_copy_report *rep)
{
	char why[sizeof(rep->io_reason) - 16];
	if (o->data == VM_COPY_DATA_REFLINK) {
		if (o->io == VM_COPY_IO_URING)
			return vm_copy_fail(c, EINVAL, false,
					    "reflink copies clone with FICLONE; io_uring has "
					    "no part in them");
		rep->io_used = VM_COPY_IO_SYSCALLS;
		snprintf(rep->io_reason, sizeof(rep->io_reason), "reflink: FICLONE%s",
			 c->reader ? " with the caller's credentials" : "");
		return 0;
	}
	if (c->reader) {
		if (o->io == VM_COPY_IO_URING)
			return vm_copy_fail(c, EOPNOTSUPP, false,
					    "a copy read with a caller's credentials cannot "
					    "use io_uring");
		rep->io_used = VM_COPY_IO_SYSCALLS;
		snprintf(rep->io_reason, sizeof(rep->io_reason),
			 "read as uid %u: syscalls in a thread with its credentials",
			 (unsigned)c->reader->uid);
		return 0;
	}
	if (o->io == VM_COPY_IO_SYSCALLS) {
		rep->io_used = VM_COPY_IO_SYSCALLS;
		snprintf(rep->io_reason, sizeof(rep->io_reason), "syscalls requested");
		return 0;
	}
	if (o->io == VM_COPY_IO_AUTO && vm_copy_same_cloning_fs(src_fd, dst_fd) == 1) {
		/* Reading and writing would store a second copy of data the
		 * file system can share. */
		rep->io_used = VM_COPY_IO_SYSCALLS;
		snprintf(rep->io_reason, sizeof(rep->io_reason),
			 "one file system that clones: copy_file_range shares extents");
		return 0;
	}
	if (vm_copy_probe_uring(why, sizeof(why))) {
		rep->io_used = VM_COPY_IO_URING;
		snprintf(rep->io_reason, sizeof(rep->io_reason), "%s", why);
		return 0;
	}
	if (o->io == VM_COPY_IO_URING)
		return vm_copy_fail(c, EOPNOTSUPP, false, "io_uring requested, but %s", why);
	rep->io_used = VM_COPY_IO_SYSCALLS;
	snprintf(rep->io_reason, sizeof(rep->io_reason), "fallback: %s", why);
	return 0;
}

/* One vm_copy_tree call, from its set-up to its tear-down. */
struct tree_copy {
	struct vm_copy_ctx *c;
	struct walk w; /* the calling thread's walk */
	const struct vm_copy_opts *opts;
	struct vm_copy_report *rep;
	struct vm_error *err;
	int src_fd, dst_fd; /* the caller's */
	struct stat src_st; /* the top's, for its attributes at the end */
	/* The top directory: the caller's fds, finished by the tear-down
	 * once all is done. */
	struct vm_copy_dir root;
	/* The threads started: the consumers, or the other reflink walkers
	 * (and their walks). */
	pthread_t threads[VM_COPY_CONSUMERS_MAX];
	struct walk *walkers[VM_COPY_CONSUMERS_MAX];
	int n_threads;
};

/* The context with its locks, or NULL: out of memory. */
static struct vm_copy_ctx *ctx_new(struct vm_error *err)
{
	struct vm_copy_ctx *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	vm_copy_fail_init(c, err);
	pthread_mutex_init(&c->links_lock, NULL);
	pthread_mutex_init(&c->progress_lock, NULL);
	return c;
}

/* After every thread has ended.  NULL: nothing. */
static void ctx_free(struct vm_copy_ctx *c)
{
	if (!c)
		return;
	vm_copy_links_free(&c->links);
	pthread_mutex_destroy(&c->links_lock);
	pthread_mutex_destroy(&c->progress_lock);
	vm_copy_fail_fini(c);
	vm_copy_queue_free(c);
	free(c);
}

static void tree_copy_free(struct tree_copy *t)
{
	if (!t)
		return;
	ctx_free(t->c);
	free(t->w.scratch);
	free(t);
}

static void tree_copy_freep(struct tree_copy **t)
{
	tree_copy_free(*t);
}

/* Set-up: check the source, make the context, the queue and the calling
 * thread's walk, and learn what the copy needs before it starts (the
 * reader, the source's device and mount, the umask, our ids, the
 * destination's group, the XFS allocation groups).  Starts no thread.
 * 0 with *ret_t for the other phases, or -errno with err set and
 * nothing to tear down. */
static int copy_setup(int src_fd, int dst_fd, const struct vm_copy_opts *opts,
		      struct vm_copy_report *rep, struct vm_error *err,
		      struct tree_copy **ret_t)
{
	memset(rep, 0, sizeof(*rep));
	struct stat st;
	if (fstat(src_fd, &st) < 0)
		return vm_error_errno(err, errno, "cannot stat the source");
	if (!S_ISDIR(st.st_mode))
		return vm_error_set(err, ENOTDIR, "the source is not a directory");

	_cleanup_(tree_copy_freep) struct tree_copy *t = calloc(1, sizeof(*t));
	if (t) {
		t->c = ctx_new(err);
		t->w.scratch = malloc(sizeof(*t->w.scratch));
	}
	if (!t || !t->c || !t->w.scratch || vm_copy_queue_init(t->c) < 0)
		return vm_error_set(err, ENOMEM, "out of memory");
	t->opts = opts;
	t->rep = rep;
	t->err = err;
	t->src_fd = src_fd;
	t->dst_fd = dst_fd;
	t->src_st = st;

	struct vm_copy_ctx *c = t->c;
	c->opts = opts;
	c->reader = opts->reader && opts->reader->uid != 0 ? opts->reader : NULL;
	c->src_dev = st.st_dev;
	struct statx sx;
	if (statx(src_fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &sx) == 0 &&
	    (sx.stx_mask & STATX_MNT_ID))
		c->src_mnt_id = sx.stx_mnt_id;
	c->dst_root = dst_fd;
	c->t0 = (uint64_t)vm_mono_ns();
	read_umask(c);
	c->uid = geteuid();
	c->gid = getegid();

	struct walk *w = &t->w;
	w->c = c;
	struct stat dst_st = {0};
	if (fstat(dst_fd, &dst_st) == 0) {
		w->dir_gid = dst_st.st_gid;
		w->dir_setgid = dst_st.st_mode & S_ISGID;
	} else {
		w->dir_gid = (gid_t)-1; /* unknown: always chown */
	}
	c->group_shift = vm_copy_group_shift(dst_fd);
	/* The source's groups matter where its data is cloned: on the
	 * same file system. */
	if (c->group_shift && opts->data == VM_COPY_DATA_REFLINK && dst_st.st_dev == st.st_dev)
		c->src_group_shift = c->group_shift;
	w->interval = opts->progress_interval_ns ? opts->progress_interval_ns
						  : 200 * 1000000ull;
	atomic_store(&c->last_progress, c->t0);

	t->root = (struct vm_copy_dir){.src = src_fd, .dst = dst_fd, .is_root = true};
	atomic_init(&t->root.refs, 1);
	w->cur = &t->root;
	*ret_t = TAKE_PTR(t);
	return 0;
}

/* Start: refuse what must not be copied, choose the data path, and
 * start its threads: the consumers of the queue, or the other walkers
 * of a reflink copy as root.  0 or -errno (recorded in c); the drain
 * and the tear-down follow either way. */
static int copy_start(struct tree_copy *t)
{
	struct vm_copy_ctx *c = t->c;
	const struct vm_copy_opts *opts = t->opts;
	struct vm_copy_report *rep = t->rep;
	struct walk *w = &t->w;
	int r = 0;
	const char *pseudo = c->reader ? pseudo_fs(t->src_fd) : NULL;
	if (pseudo)
		r = vm_copy_fail(c, EXDEV, false,
				 "cannot copy from %s for uid %u: a kernel file system is "
				 "never copied for a caller who is not root",
				 pseudo, (unsigned)c->reader->uid);
	if (r == 0)
		r = choose_io(c, opts, t->src_fd, t->dst_fd, rep);
	/* A reader's copy stays in this thread, the one whose credentials
	 * are switched. */
	if (r == 0 && !c->reader && opts->data == VM_COPY_DATA_REFLINK) {
		r = start_walkers(w, t->threads, t->walkers, &t->n_threads, rep);
	} else if (r == 0 && !c->reader) {
		void *(*fn)(void *) = vm_copy_syscalls_thread;
		int want = VM_COPY_SYSCALL_THREADS;
		if (rep->io_used == VM_COPY_IO_URING)
			fn = vm_copy_uring_thread, want = VM_COPY_URING_THREADS;
		t->n_threads = vm_copy_queue_start_consumers(c, fn, want, t->threads);
		if (t->n_threads == 0) {
			if (rep->io_used == VM_COPY_IO_URING && opts->io == VM_COPY_IO_URING)
				r = vm_copy_fail(c, EAGAIN, false, "cannot start the io_uring thread");
			rep->io_used = VM_COPY_IO_SYSCALLS;
			snprintf(rep->io_reason, sizeof(rep->io_reason),
				 "no thread could be started: syscalls inline");
		}
	}
	w->inline_data = w->shared || t->n_threads == 0;
	w->uring = !w->inline_data && rep->io_used == VM_COPY_IO_URING &&
		   opts->data == VM_COPY_DATA_COPY;
	return r;
}

/* The walk, in the calling thread, after a start that succeeded: the
 * top, then (a shared walk) whatever directories the others left.
 * 0 or -errno (recorded in c). */
static int copy_walk(struct tree_copy *t)
{
	struct vm_copy_ctx *c = t->c;
	struct walk *w = &t->w;
	/* The walk reads its own open file description of the top: the
	 * caller's fd may have been read from already (its offset would hide
	 * entries) and must not be moved.  "." follows no link; opened with
	 * the reader's credentials, so a reader gets no more than it has. */
	_cleanup_close_ int top = -1;
	int r = vm_copy_as_reader(c);
	if (r == 0 && (top = openat(t->src_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		r = -errno;
	vm_copy_as_root(c);
	if (r < 0)
		r = vm_copy_fail(c, -r, true, "cannot open the source");
	if (r == 0)
		r = walk_dir(w, top, t->dst_fd, 0);
	if (w->shared) {
		/* The top is walked: on to what the others left. */
		vm_copy_dirs_done(c, w->id);
		walk_shared(w);
	}
	return r;
}

/* Drain: the walk is over.  Let the data path finish what is queued,
 * reporting progress meanwhile; join every thread; count what the other
 * walkers made; let go of the top directory. */
static void copy_drain(struct tree_copy *t)
{
	struct vm_copy_ctx *c = t->c;
	struct walk *w = &t->w;
	vm_copy_queue_end(c);
	while (vm_copy_queue_wait(c, t->opts->progress ? w->interval : 0))
		progress(w, false); /* without opts->progress: nothing */
	for (int i = 0; i < t->n_threads; i++)
		pthread_join(t->threads[i], NULL);
	if (w->shared)
		end_walkers(w, t->walkers, t->n_threads);
	vm_copy_dir_unref(c, &t->root, NULL); /* is_root: nothing to free */
}

/* Tear-down, after the drain: the result (the first error, else the top
 * directory's own attributes, last of all), the report, the final
 * progress call of a copy that succeeded; then everything is freed,
 * t too.  Returns the copy's result: 0 or -errno with err set. */
static int copy_teardown(struct tree_copy *t, int r)
{
	struct vm_copy_ctx *c = t->c;
	struct vm_copy_report *rep = t->rep;
	struct walk *w = &t->w;
	if (vm_copy_failed(c))
		r = vm_copy_fail_code(c);
	if (r == 0)
		r = vm_copy_attrs(c, t->src_fd, t->dst_fd, &t->src_st, "the top directory",
				  w->scratch, 07777 + 1, false);
	if (r < 0 && t->err && !t->err->code)
		vm_error_set(t->err, -r, "copy failed");

	rep->stats = w->st;
	rep->stats.files = atomic_load(&c->files_done);
	rep->stats.bytes = atomic_load(&c->bytes_done);
	rep->stats.xattrs = atomic_load(&c->xattrs_done);
	rep->xattrs_unlisted = t->opts->src_no_xattrs;
	rep->elapsed_ns = (uint64_t)vm_mono_ns() - c->t0;
	if (r == 0)
		progress(w, true);

	tree_copy_free(t);
	return r;
}

int vm_copy_tree(int src_fd, int dst_fd, const struct vm_copy_opts *opts,
		 struct vm_copy_report *report, struct vm_error *err)
{
	static const struct vm_copy_opts none = {0};
	struct vm_copy_report rep_local;
	struct tree_copy *t;
	int r = copy_setup(src_fd, dst_fd, opts ? opts : &none, report ? report : &rep_local,
			   err, &t);
	if (r < 0)
		return r;
	r = copy_start(t);
	if (r == 0)
		r = copy_walk(t);
	copy_drain(t);
	return copy_teardown(t, r);
}
