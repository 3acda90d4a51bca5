/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "treecount.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "tree.h"

struct count_ctx {
	dev_t dev;
	uint64_t max_files, max_bytes, entries;
	struct vm_treecount *t;
	struct vm_error *err;
};

static bool over(struct count_ctx *c)
{
	if ((c->max_files && c->t->files > c->max_files) ||
	    (c->max_bytes && c->t->bytes > c->max_bytes) || c->entries > VM_TREECOUNT_MAX_ENTRIES)
		c->t->over = true;
	return c->t->over;
}

/* Takes over fd. */
static int count_dir(int fd, unsigned depth, struct count_ctx *c)
{
	if (depth > VM_TREE_MAX_DEPTH) {
		close(fd);
		return vm_error_set(c->err, ELOOP, "tree deeper than %d levels", VM_TREE_MAX_DEPTH);
	}
	DIR *d = fdopendir(fd);
	if (!d) {
		int e = errno;
		close(fd);
		return vm_error_errno(c->err, e, "cannot read a directory");
	}
	int r = 0;
	/* NULL, not garbage: a limit already passed on entry skips the loop
	 * and the error check below must not read an unset pointer. */
	struct dirent *de = NULL;
	errno = 0;
	while (!over(c) && (errno = 0, de = readdir(d))) {
		if (!vm_is_plain_component(de->d_name))
			continue;
		c->entries++;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue; /* gone meanwhile */
			r = vm_error_errno(c->err, errno, "cannot stat %s", de->d_name);
			break;
		}
		if (!S_ISDIR(st.st_mode)) {
			c->t->files++;
			if (S_ISREG(st.st_mode))
				c->t->bytes += (uint64_t)st.st_size;
			continue;
		}
		c->t->dirs++;
		/* A mount point inside the tree is copied as an empty
		 * directory: do not count what is beneath it. */
		if (st.st_dev != c->dev)
			continue;
		int sub = vm_openat_beneath(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		if (sub == -ENOENT || sub == -EACCES || sub == -EXDEV)
			continue; /* the copy says so if it matters */
		if (sub < 0) {
			r = vm_error_errno(c->err, -sub, "cannot open %s", de->d_name);
			break;
		}
		r = count_dir(sub, depth + 1, c);
		if (r < 0)
			break;
	}
	if (r == 0 && !over(c) && !de && errno)
		r = vm_error_errno(c->err, errno, "cannot read a directory");
	closedir(d);
	return r;
}

int vm_treecount(int fd, uint64_t max_files, uint64_t max_bytes, struct vm_treecount *ret,
		 struct vm_error *err)
{
	struct vm_treecount t = {0};
	struct stat st;
	if (fstat(fd, &st) < 0)
		return vm_error_errno(err, errno, "cannot stat the tree to count");
	if (!S_ISDIR(st.st_mode))
		return vm_error_set(err, ENOTDIR, "the tree to count is not a directory");
	/* Our own open file description: readdir must not move the
	 * caller's offset.  "." follows no link. */
	int own = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (own < 0)
		return vm_error_errno(err, errno, "cannot open the tree to count");
	struct count_ctx c = {.dev = st.st_dev, .max_files = max_files, .max_bytes = max_bytes,
			      .t = &t, .err = err};
	int r = count_dir(own, 0, &c);
	if (r < 0)
		return r;
	*ret = t;
	return 0;
}
