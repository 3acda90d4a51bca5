/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/xattr.h>

/* Hard links: remember the first copy of every multiply-linked inode by
 * its path below the destination root.  The destination is the daemon's
 * own fresh tree, and the path is walked again one component at a time
 * without following symlinks. */
struct link_entry {
	dev_t dev;
	ino_t ino;
	char *relpath;
};

struct copy_ctx {
	const struct vm_reader *reader; /* NULL: read as root */
	dev_t src_dev;
	int dst_root;
	char path[PATH_MAX]; /* current directory below the roots, "" at top */
	struct vm_copy_stats *st;
	struct vm_error *err;
	struct link_entry *links;
	size_t n_links, cap_links;
	char buf[128 * 1024];
};

static void links_free(struct copy_ctx *c)
{
	for (size_t i = 0; i < c->n_links; i++)
		free(c->links[i].relpath);
	free(c->links);
}

static struct link_entry *link_find(struct copy_ctx *c, dev_t dev, ino_t ino)
{
	for (size_t i = 0; i < c->n_links; i++)
		if (c->links[i].dev == dev && c->links[i].ino == ino)
			return &c->links[i];
	return NULL;
}

static int link_add(struct copy_ctx *c, dev_t dev, ino_t ino, const char *name)
{
	if (c->n_links == c->cap_links) {
		size_t cap = c->cap_links ? c->cap_links * 2 : 64;
		struct link_entry *n = realloc(c->links, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		c->links = n;
		c->cap_links = cap;
	}
	char *p;
	if (asprintf(&p, "%s%s%s", c->path, c->path[0] ? "/" : "", name) < 0)
		return -ENOMEM;
	c->links[c->n_links++] = (struct link_entry){dev, ino, p};
	return 0;
}

/* Link the first copy at relpath (below the destination root) as
 * dst_dir/name. */
static int link_first_copy(struct copy_ctx *c, const char *relpath,
			   int dst_dir, const char *name)
{
	const char *slash = strrchr(relpath, '/');
	_cleanup_free_ char *parent = slash ? strndup(relpath, (size_t)(slash - relpath)) : NULL;
	if (slash && !parent)
		return -ENOMEM;
	int dir = c->dst_root;
	_cleanup_close_ int parent_fd = -1;
	if (parent) {
		parent_fd = vm_open_path_beneath(c->dst_root, parent,
						 O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (parent_fd < 0)
			return parent_fd;
		dir = parent_fd;
	}
	return linkat(dir, slash ? slash + 1 : relpath, dst_dir, name, 0) < 0 ? -errno : 0;
}

static int copy_xattrs(int src, int dst, struct copy_ctx *c, const char *name)
{
	char list[16384];
	ssize_t n = flistxattr(src, list, sizeof(list));
	if (n < 0) {
		if (errno == ENOTSUP || errno == ENODATA)
			return 0;
		return vm_error_errno(c->err, errno, "cannot list xattrs of %s", name);
	}
	for (ssize_t off = 0; off < n; off += (ssize_t)strlen(list + off) + 1) {
		const char *key = list + off;
		/* trusted.* is root's to read: not for a copy a user asked for. */
		if (c->reader && strncmp(key, "trusted.", 8) == 0)
			continue;
		char val[65536];
		ssize_t vl = fgetxattr(src, key, val, sizeof(val));
		if (vl < 0)
			return vm_error_errno(c->err, errno, "cannot read xattr %s of %s",
					      key, name);
		if (fsetxattr(dst, key, val, (size_t)vl, 0) < 0 && errno != ENOTSUP)
			return vm_error_errno(c->err, errno, "cannot set xattr %s on %s",
					      key, name);
	}
	return 0;
}

/* Owner first (chown clears set-id bits and security.capability), then
 * the extended attributes, then mode, then times (which every other
 * change would touch). */
static int copy_xattrs(int src, int dst, struct copy_ctx *c, const char *name);

static int copy_attrs_fd(int src, int dst, const struct stat *st, struct copy_ctx *c,
			 const char *name)
{
	if (fchown(dst, st->st_uid, st->st_gid) < 0)
		return vm_error_errno(c->err, errno, "cannot chown %s", name);
	int r = copy_xattrs(src, dst, c, name);
	if (r < 0)
		return r;
	if (fchmod(dst, st->st_mode & 07777) < 0)
		return vm_error_errno(c->err, errno, "cannot chmod %s", name);
	struct timespec ts[2] = {st->st_atim, st->st_mtim};
	if (futimens(dst, ts) < 0)
		return vm_error_errno(c->err, errno, "cannot set times of %s", name);
	return 0;
}

static int copy_data(int in, int out, off_t size, struct copy_ctx *c,
		     const char *name)
{
	off_t done = 0;
	bool use_cfr = true;
	while (done < size) {
		ssize_t n;
		if (use_cfr) {
			n = copy_file_range(in, NULL, out, NULL,
					    (size_t)(size - done), 0);
			if (n < 0 && (errno == EXDEV || errno == EINVAL ||
				      errno == EOPNOTSUPP || errno == ENOSYS)) {
				use_cfr = false;
				continue;
			}
		} else {
			n = read(in, c->buf, sizeof(c->buf));
			if (n > 0) {
				int r = vm_write_all(out, c->buf, (size_t)n);
				if (r < 0)
					return vm_error_errno(c->err, -r, "cannot write %s", name);
			}
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return vm_error_errno(c->err, errno, "cannot copy %s", name);
		}
		if (n == 0)
			break; /* the file shrank while we copied: keep what we read */
		done += n;
	}
	c->st->bytes += (uint64_t)done;
	return 0;
}

static int copy_dir(int src, int dst, unsigned depth, struct copy_ctx *c);

/* Source-side lookups and opens run with the reader's file-system
 * credentials: setfsuid/setfsgid and setgroups as raw system calls act on
 * this thread only (glibc's wrappers would change every thread), and a
 * non-zero fsuid drops the file capabilities of this thread until it is 0
 * again.  Everything on the destination side runs as root. */
static int as_reader(struct copy_ctx *c)
{
	if (!c->reader)
		return 0;
	gid_t groups[VM_READER_GROUPS_MAX];
	for (int i = 0; i < c->reader->ngroups; i++)
		groups[i] = c->reader->groups[i];
	if (syscall(SYS_setgroups, (size_t)c->reader->ngroups, groups) < 0)
		return -errno;
	syscall(SYS_setfsgid, c->reader->gid);
	syscall(SYS_setfsuid, c->reader->uid);
	if ((uint32_t)syscall(SYS_setfsuid, -1) != c->reader->uid)
		return -EPERM;
	return 0;
}

static void as_root(struct copy_ctx *c)
{
	if (!c->reader)
		return;
	syscall(SYS_setfsuid, 0);
	syscall(SYS_setfsgid, 0);
	syscall(SYS_setgroups, (size_t)0, NULL);
}

static int src_fstatat(struct copy_ctx *c, int dir, const char *name, struct stat *st)
{
	int r = as_reader(c);
	if (r == 0)
		r = fstatat(dir, name, st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	as_root(c);
	return r;
}

static int src_open(struct copy_ctx *c, int dir, const char *name, int flags)
{
	int r = as_reader(c);
	if (r == 0)
		r = vm_openat_beneath(dir, name, flags, 0);
	as_root(c);
	return r;
}

static int copy_entry(int src_dir, int dst_dir, const char *name,
		      unsigned depth, struct copy_ctx *c)
{
	struct stat st;
	int sr = src_fstatat(c, src_dir, name, &st);
	if (sr < 0)
		return vm_error_errno(c->err, -sr, "cannot stat %s", name);

	if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
		struct link_entry *l = link_find(c, st.st_dev, st.st_ino);
		if (l) {
			int r = link_first_copy(c, l->relpath, dst_dir, name);
			if (r < 0)
				return vm_error_errno(c->err, -r, "cannot link %s", name);
			c->st->hardlinks++;
			return 0;
		}
	}

	if (S_ISDIR(st.st_mode)) {
		if (depth >= VM_TREE_MAX_DEPTH)
			return vm_error_set(c->err, ELOOP,
					    "tree is deeper than %d levels at %s",
					    VM_TREE_MAX_DEPTH, name);
		_cleanup_close_ int s = src_open(c, src_dir, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (s < 0)
			return vm_error_errno(c->err, -s, "cannot open directory %s", name);
		if (mkdirat(dst_dir, name, 0700) < 0)
			return vm_error_errno(c->err, errno, "cannot create directory %s", name);
		_cleanup_close_ int d = vm_openat_beneath(
			dst_dir, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		if (d < 0)
			return vm_error_errno(c->err, -d, "cannot open new directory %s", name);
		c->st->dirs++;
		/* One file system only: a mount point (or a btrfs subvolume
		 * on another device) stays an empty directory. */
		if (st.st_dev == c->src_dev) {
			size_t len = strlen(c->path);
			int n = snprintf(c->path + len, sizeof(c->path) - len, "%s%s",
					 len ? "/" : "", name);
			if (n < 0 || (size_t)n >= sizeof(c->path) - len)
				return vm_error_set(c->err, ENAMETOOLONG,
						    "path too long below %s", name);
			int r = copy_dir(s, d, depth + 1, c);
			c->path[len] = '\0';
			if (r < 0)
				return r;
		}
		return copy_attrs_fd(s, d, &st, c, name); /* after the contents */
	}

	if (S_ISREG(st.st_mode)) {
		_cleanup_close_ int s = src_open(c, src_dir, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (s < 0)
			return vm_error_errno(c->err, -s, "cannot open %s", name);
		struct stat st2;
		if (fstat(s, &st2) < 0)
			return vm_error_errno(c->err, errno, "cannot stat %s", name);
		if (st2.st_ino != st.st_ino || st2.st_dev != st.st_dev)
			return vm_error_set(c->err, EAGAIN,
					    "%s changed while it was copied", name);
		_cleanup_close_ int d = openat(
			dst_dir, name,
			O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (d < 0)
			return vm_error_errno(c->err, errno, "cannot create %s", name);
		int r = copy_data(s, d, st2.st_size, c, name);
		if (r < 0)
			return r;
		if ((r = copy_attrs_fd(s, d, &st2, c, name)) < 0)
			return r;
		c->st->files++;
	} else if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX + 1];
		int rr = as_reader(c);
		ssize_t n = rr < 0 ? rr : readlinkat(src_dir, name, target, sizeof(target) - 1);
		int e = errno;
		as_root(c);
		if (n < 0)
			return vm_error_errno(c->err, rr < 0 ? -rr : e, "cannot read link %s", name);
		target[n] = '\0';
		if (symlinkat(target, dst_dir, name) < 0)
			return vm_error_errno(c->err, errno, "cannot create link %s", name);
		if (fchownat(dst_dir, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0)
			return vm_error_errno(c->err, errno, "cannot chown link %s", name);
		struct timespec ts[2] = {st.st_atim, st.st_mtim};
		if (utimensat(dst_dir, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
			return vm_error_errno(c->err, errno, "cannot set times of link %s", name);
		c->st->symlinks++;
	} else if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) ||
		   S_ISBLK(st.st_mode)) {
		if (mknodat(dst_dir, name, st.st_mode & (S_IFMT | 07777), st.st_rdev) < 0) {
			/* Where device nodes may not be made (a sandboxed
			 * volmgrd), leave them out rather than fail the copy. */
			if (errno == EPERM && !S_ISFIFO(st.st_mode)) {
				c->st->skipped++;
				return 0;
			}
			return vm_error_errno(c->err, errno, "cannot create node %s", name);
		}
		_cleanup_close_ int d =
			vm_openat_beneath(dst_dir, name, O_PATH | O_CLOEXEC, 0);
		if (d < 0)
			return vm_error_errno(c->err, -d, "cannot open node %s", name);
		/* fchown/fchmod do not work on O_PATH fds: go through the
		 * fd's own /proc entry, which names exactly this inode. */
		char p[64];
		snprintf(p, sizeof(p), "/proc/self/fd/%d", d);
		if (chown(p, st.st_uid, st.st_gid) < 0 || chmod(p, st.st_mode & 07777) < 0)
			return vm_error_errno(c->err, errno, "cannot set owner of node %s", name);
		struct timespec ts[2] = {st.st_atim, st.st_mtim};
		if (utimensat(dst_dir, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
			return vm_error_errno(c->err, errno, "cannot set times of node %s", name);
		c->st->others++;
	} else {
		return 0; /* sockets: meaningless in a copy, skipped like cp does */
	}

	if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
		int r = link_add(c, st.st_dev, st.st_ino, name);
		if (r < 0)
			return vm_error_errno(c->err, -r, "cannot track hard link %s", name);
	}
	return 0;
}

static int copy_dir(int src, int dst, unsigned depth, struct copy_ctx *c)
{
	int dfd = fcntl(src, F_DUPFD_CLOEXEC, 3);
	if (dfd < 0)
		return vm_error_errno(c->err, errno, "cannot dup directory fd");
	DIR *d = fdopendir(dfd);
	if (!d) {
		int e = errno;
		close(dfd);
		return vm_error_errno(c->err, e, "cannot read directory");
	}
	int r = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		if (!vm_is_plain_component(de->d_name))
			continue;
		r = copy_entry(src, dst, de->d_name, depth, c);
		if (r < 0)
			break;
		errno = 0;
	}
	if (r == 0 && errno)
		r = vm_error_errno(c->err, errno, "cannot read directory");
	closedir(d);
	return r;
}

int vm_tree_copy(int src_fd, int dst_fd, const struct vm_reader *reader,
		 struct vm_copy_stats *stats, struct vm_error *err)
{
	struct stat st;
	if (fstat(src_fd, &st) < 0)
		return vm_error_errno(err, errno, "cannot stat the source");
	if (!S_ISDIR(st.st_mode))
		return vm_error_set(err, ENOTDIR, "the source is not a directory");
	struct vm_copy_stats local = {0};
	struct copy_ctx *c = calloc(1, sizeof(*c));
	if (!c)
		return vm_error_set(err, ENOMEM, "out of memory");
	c->src_dev = st.st_dev;
	c->dst_root = dst_fd;
	c->reader = reader && reader->uid != 0 ? reader : NULL;
	c->st = stats ? stats : &local;
	c->err = err;
	int r = copy_dir(src_fd, dst_fd, 0, c);
	if (r == 0)
		r = copy_attrs_fd(src_fd, dst_fd, &st, c, "the top directory");
	links_free(c);
	free(c);
	return r;
}

static int remove_children(int dirfd, unsigned depth, struct vm_error *err)
{
	if (depth >= VM_TREE_MAX_DEPTH * 4)
		return vm_error_set(err, ELOOP, "tree too deep to remove");
	int dfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	if (dfd < 0)
		return vm_error_errno(err, errno, "cannot dup directory fd");
	DIR *d = fdopendir(dfd);
	if (!d) {
		int e = errno;
		close(dfd);
		return vm_error_errno(err, e, "cannot read directory");
	}
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!vm_is_plain_component(de->d_name))
			continue;
		if (unlinkat(dirfd, de->d_name, 0) == 0)
			continue;
		if (errno != EISDIR && errno != EPERM) {
			r = vm_error_errno(err, errno, "cannot remove %s", de->d_name);
			break;
		}
		_cleanup_close_ int sub = vm_openat_beneath(
			dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		if (sub < 0) {
			r = vm_error_errno(err, -sub, "cannot open %s", de->d_name);
			break;
		}
		r = remove_children(sub, depth + 1, err);
		if (r < 0)
			break;
		if (unlinkat(dirfd, de->d_name, AT_REMOVEDIR) < 0) {
			r = vm_error_errno(err, errno, "cannot remove %s", de->d_name);
			break;
		}
	}
	closedir(d);
	return r;
}

int vm_tree_remove(int dirfd, const char *name, struct vm_error *err)
{
	if (unlinkat(dirfd, name, 0) == 0)
		return 0;
	if (errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return vm_error_errno(err, errno, "cannot remove %s", name);
	_cleanup_close_ int fd = vm_openat_beneath(
		dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0)
		return vm_error_errno(err, -fd, "cannot open %s", name);
	int r = remove_children(fd, 0, err);
	if (r < 0)
		return r;
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0)
		return vm_error_errno(err, errno, "cannot remove %s", name);
	return 0;
}
