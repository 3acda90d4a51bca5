/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "inuse.h"

#include <dirent.h>
#include <fcntl.h>
#include <libmount/libmount.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "names.h"

int vm_inuse_scan_mountinfo(const char *path, dev_t sb_dev, const char *prefix,
			    json_t *counts)
{
	struct libmnt_table *tb = mnt_new_table_from_file(path);
	if (!tb)
		return -ENOENT; /* the process is gone, or not readable */
	struct libmnt_iter *it = mnt_new_iter(MNT_ITER_FORWARD);
	if (!it) {
		mnt_unref_table(tb);
		return -ENOMEM;
	}
	size_t pl = strlen(prefix);
	struct libmnt_fs *fs;
	while (mnt_table_next_fs(tb, it, &fs) == 0) {
		if (mnt_fs_get_devno(fs) != sb_dev)
			continue;
		const char *root = mnt_fs_get_root(fs);
		if (!root || strncmp(root, prefix, pl) != 0 || root[pl] != '/')
			continue;
		const char *name = root + pl + 1;
		size_t nl = strcspn(name, "/");
		if (nl == 0 || nl > VM_NAME_MAX)
			continue;
		char key[VM_NAME_MAX + 1];
		memcpy(key, name, nl);
		key[nl] = '\0';
		if (vm_name_check("volume", key, NULL) < 0)
			continue; /* no volume can have that name */
		json_t *c = json_object_get(counts, key);
		json_object_set_new(counts, key,
				    json_integer(c ? json_integer_value(c) + 1 : 1));
	}
	mnt_free_iter(it);
	mnt_unref_table(tb);
	return 0;
}

/* Mount namespaces already read in this scan, by inode of ns/mnt. */
struct vm_inuse_seen {
	ino_t *v;
	size_t n, cap;
};

static bool ns_seen_has(const struct vm_inuse_seen *s, ino_t ino)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == ino)
			return true;
	return false;
}

static void ns_seen_add(struct vm_inuse_seen *s, ino_t ino)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		ino_t *n = realloc(s->v, cap * sizeof(*n));
		if (!n)
			return; /* read it again rather than miss it */
		s->v = n;
		s->cap = cap;
	}
	s->v[s->n++] = ino;
}

/* Errors that mean the process has no mounts left to read: it exited
 * (ENOENT, ESRCH) or is exiting or a zombie, whose mount namespace is
 * already gone (EINVAL from /proc/PID/mountinfo).  Processes come and go
 * during every scan; treating these as "unreadable" made the scan fail
 * closed and refused about one rm in 1,700 under load. */
static bool process_gone(int e)
{
	return e == ENOENT || e == ESRCH || e == EINVAL;
}

/* A thread group whose leader has exited while other threads run (a
 * zombie leader): the leader's ns link and mountinfo look gone, but the
 * mounts live on in its threads' view.  Read the first live thread's.
 * 1 if one was read, 0 if none is left, -errno if one cannot be read. */
static int scan_threads(const char *proc, const char *pid, dev_t sb_dev,
			const char *prefix, json_t *counts)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s/task", proc, pid);
	DIR *d = opendir(p);
	if (!d)
		return 0;
	int r = 0;
	struct dirent *de;
	while (r == 0 && (de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9' || strcmp(de->d_name, pid) == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s/task/%s/mountinfo", proc, pid, de->d_name);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			r = process_gone(errno) ? 0 : -errno;
			continue;
		}
		close(fd);
		if (vm_inuse_scan_mountinfo(p, sb_dev, prefix, counts) == 0)
			r = 1;
		else if (access(p, R_OK) == 0)
			r = -EIO; /* still there, and not parsed: do not guess */
	}
	closedir(d);
	return r;
}

int vm_inuse_scan_pid(const char *proc, const char *pid, dev_t sb_dev,
		      const char *prefix, json_t *counts, struct vm_inuse_seen *seen)
{
	char p[PATH_MAX];
	struct stat st;
	bool have_ns = false;
	snprintf(p, sizeof(p), "%s/%s/ns/mnt", proc, pid);
	if (stat(p, &st) == 0) {
		if (seen && ns_seen_has(seen, st.st_ino))
			return 0; /* this namespace was read already */
		have_ns = true;
	} else if (process_gone(errno)) {
		/* exited, a kernel thread, or a leader whose threads live on */
		return scan_threads(proc, pid, sb_dev, prefix, counts);
	}
	/* Not allowed to follow the namespace link (PID 1 on some hosts):
	 * read its mountinfo all the same, without dedup. */
	snprintf(p, sizeof(p), "%s/%s/mountinfo", proc, pid);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return process_gone(errno) ? scan_threads(proc, pid, sb_dev, prefix, counts) : -errno;
	close(fd);
	if (vm_inuse_scan_mountinfo(p, sb_dev, prefix, counts) < 0) {
		/* Gone between the open and the read: nothing left to count.
		 * Still there (out of memory, out of fds, a parse error):
		 * unreadable, so the scan fails closed rather than call a
		 * volume in use free. */
		fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return process_gone(errno) ? scan_threads(proc, pid, sb_dev, prefix, counts) : -errno;
		close(fd);
		return -EIO;
	}
	/* Only a namespace actually read counts as seen: if the process we
	 * looked at first exits before its mountinfo is read, another
	 * process of the same namespace must still be read, or the
	 * namespace's mounts would be missed (a volume in use would look
	 * free). */
	if (seen && have_ns)
		ns_seen_add(seen, st.st_ino);
	return 1;
}

int vm_inuse_scan(const char *proc, dev_t sb_dev, const char *prefix,
		  json_t **ret, unsigned *ret_unreadable, struct vm_error *err)
{
	unsigned unreadable = 0;
	json_t *counts = json_object();
	if (!counts)
		return vm_error_set(err, ENOMEM, "out of memory");
	DIR *d = opendir(proc);
	if (!d) {
		json_decref(counts);
		return vm_error_errno(err, errno, "cannot read %s", proc);
	}
	struct vm_inuse_seen seen = {0};
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		if (vm_inuse_scan_pid(proc, de->d_name, sb_dev, prefix, counts, &seen) < 0)
			unreadable++;
	}
	closedir(d);
	free(seen.v);
	*ret = counts;
	if (ret_unreadable)
		*ret_unreadable = unreadable;
	return 0;
}
