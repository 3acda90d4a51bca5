/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "holders.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#define WALK_UP_MAX 4096

static bool dev_in(const struct vm_holders_target *t, dev_t dev)
{
	for (size_t i = 0; i < t->n_devs; i++)
		if (t->devs[i] == dev)
			return true;
	return false;
}

/* A directory on the pool's device: is the volume's top at or above it?
 * Walks ".." from an O_PATH open of the magic link (no open of the
 * directory itself, so nothing runs on the file system's behalf). */
static bool dir_under_top(const char *link, const struct vm_holders_target *t)
{
	int cur = -1;
	union {
		struct file_handle h;
		char buf[sizeof(struct file_handle) + MAX_HANDLE_SZ];
	} u = {.h.handle_bytes = MAX_HANDLE_SZ};
	int mount_id;
	if (t->pool_fd >= 0 &&
	    name_to_handle_at(AT_FDCWD, link, &u.h, &mount_id, AT_SYMLINK_FOLLOW) == 0)
		cur = open_by_handle_at(t->pool_fd, &u.h, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cur < 0)
		cur = open(link, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cur < 0)
		return false;
	bool found = false;
	for (unsigned i = 0; i < WALK_UP_MAX; i++) {
		struct statx sx;
		if (statx(cur, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_INO, &sx) < 0)
			break;
		dev_t dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
		if (dev != t->devs[0])
			break;
		if (sx.stx_ino == t->top_ino) {
			found = true;
			break;
		}
		int up = openat(cur, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
		struct statx ux;
		if (up < 0 || statx(up, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_INO, &ux) < 0 ||
		    ux.stx_ino == sx.stx_ino) {
			closep(&up);
			break; /* the root of its mount (or "/"): nothing above */
		}
		close(cur);
		cur = up;
	}
	close(cur);
	return found;
}

/* 1 if the file behind the magic link is the target's, 0 if not (or it
 * went away), -errno if it may not be looked at. */
static int held(const char *link, const struct vm_holders_target *t)
{
	struct statx sx;
	if (statx(AT_FDCWD, link, AT_STATX_DONT_SYNC, STATX_TYPE | STATX_INO, &sx) < 0)
		return errno == EACCES || errno == EPERM ? -errno : 0;
	dev_t dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
	if (t->by_dev)
		return dev_in(t, dev);
	if (dev != t->devs[0])
		return 0;
	if (sx.stx_ino == t->top_ino)
		return 1;
	return S_ISDIR(sx.stx_mode) && dir_under_top(link, t);
}

static void fill(struct vm_holder *h, const char *proc, const char *pid, const char *what)
{
	char p[PATH_MAX];
	h->pid = (pid_t)strtol(pid, NULL, 10);
	snprintf(h->what, sizeof(h->what), "%s", what);
	h->comm[0] = '\0';
	snprintf(p, sizeof(p), "%s/%s/comm", proc, pid);
	_cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, h->comm, sizeof(h->comm) - 1) : -1;
	h->comm[n > 0 ? n : 0] = '\0';
	h->comm[strcspn(h->comm, "\n")] = '\0';
	vm_utf8_sanitize(h->comm);
}

/* One process: 1 held (h filled), 0 not, -errno unreadable. */
static int scan_pid(const char *proc, const char *pid, const struct vm_holders_target *t,
		    struct vm_holder *h)
{
	char p[PATH_MAX];
	static const char *const links[] = {"cwd", "root"};
	int denied = 0;
	for (size_t i = 0; i < ELEMENTSOF(links); i++) {
		snprintf(p, sizeof(p), "%s/%s/%s", proc, pid, links[i]);
		int r = held(p, t);
		if (r > 0) {
			fill(h, proc, pid, links[i]);
			return 1;
		}
		if (r < 0)
			denied = r;
	}
	snprintf(p, sizeof(p), "%s/%s/fd", proc, pid);
	DIR *d = opendir(p);
	if (!d)
		return errno == EACCES || errno == EPERM ? -errno : denied;
	struct dirent *de;
	int r = 0;
	while (r <= 0 && (de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(p, sizeof(p), "%s/%s/fd/%s", proc, pid, de->d_name);
		int e = held(p, t);
		if (e > 0) {
			char what[24];
			snprintf(what, sizeof(what), "fd %.16s", de->d_name);
			fill(h, proc, pid, what);
			r = 1;
		} else if (e < 0) {
			denied = e;
		}
	}
	closedir(d);
	return r > 0 ? 1 : denied;
}

int vm_holders_find(const char *proc, const struct vm_holders_target *t, pid_t self,
		    struct vm_holder *ret, unsigned *ret_hidden, struct vm_error *err)
{
	*ret_hidden = 0;
	if (t->n_devs == 0)
		return 0;
	DIR *d = opendir(proc);
	if (!d)
		return vm_error_errno(err, errno, "cannot read %s", proc);
	struct dirent *de;
	int r = 0;
	char selfs[16];
	snprintf(selfs, sizeof(selfs), "%d", (int)self);
	while (r == 0 && (de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9' || strcmp(de->d_name, selfs) == 0)
			continue;
		int e = scan_pid(proc, de->d_name, t, ret);
		if (e > 0)
			r = 1;
		else if (e < 0)
			(*ret_hidden)++;
	}
	closedir(d);
	return r;
}
