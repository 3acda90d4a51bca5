/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A bind source as the caller sees it, and what the engine gets for it.
 *
 * The path is resolved in the calling container's own root (openat2
 * RESOLVE_IN_ROOT: its symlinks, ".." and absolute links stay inside
 * that root) into an O_PATH fd; volmgrd says, from that fd, which volume
 * holds it.  The volume's top is handed on as the volume itself; a
 * directory or file inside it is cloned from the fd (open_tree) onto a
 * mount point of ours under state_dir/pins/, and the engine gets that
 * path, which nobody but root can change.  A path string the job could
 * swap afterwards never reaches the engine.  The caller's fd lives in
 * its mount namespace, which open_tree does not clone from, so the same
 * inode is opened on the host's mount of the pool by its file handle,
 * and checked to be the same. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <dirent.h>

#include "client.h"
#include "engined.h"
#include "json-util.h"

static bool alive(int pidfd)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	return pidfd >= 0 && poll(&p, 1, 0) == 0;
}

static int control(struct engined *e, const char *op, json_t *args, int fd, json_t **ret,
		   struct vm_error *err)
{
	return vm_client_request(e->control, op, args, fd, ret, err);
}

/* The same inode as fd (on the caller's mount), opened on our own mount
 * of the volume, whose top is at mountpoint. */
/* (open_by_handle_at takes no O_PATH fd for the mount.) */
static int host_twin(const char *mountpoint, int fd, const struct stat *st, struct vm_error *err)
{
	_cleanup_close_ int top = vm_openat2(AT_FDCWD, mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC,
					     RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
	if (top < 0)
		return vm_error_errno(err, -top, "cannot open the volume at %s", mountpoint);
	union {
		struct file_handle fh;
		char buf[sizeof(struct file_handle) + MAX_HANDLE_SZ];
	} h;
	h.fh.handle_bytes = MAX_HANDLE_SZ;
	int mnt_id;
	if (name_to_handle_at(fd, "", &h.fh, &mnt_id, AT_EMPTY_PATH) < 0)
		return vm_error_errno(err, errno, "the volume's file system gives no file handles");
	int twin = open_by_handle_at(top, &h.fh, O_PATH | O_CLOEXEC);
	if (twin < 0)
		return vm_error_errno(err, errno, "cannot open the bind source by its handle");
	struct stat tst;
	if (fstat(twin, &tst) < 0 || tst.st_dev != st->st_dev || tst.st_ino != st->st_ino) {
		close(twin);
		return vm_error_set(err, EXDEV, "the bind source changed while it was looked up");
	}
	return twin;
}

static int mount_pin(struct engined *e, int src, const char *name, bool dir, bool ro,
		     struct vm_error *err)
{
	int r = dir ? mkdirat(e->pins_fd, name, 0700) : 0;
	if (!dir) {
		int f = openat(e->pins_fd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
		r = f < 0 ? -1 : close(f);
	}
	if (r < 0)
		return vm_error_errno(err, errno, "cannot make the pin %s", name);
	_cleanup_close_ int tree = open_tree(src, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
	if (tree < 0)
		return vm_error_errno(err, errno, "cannot clone the bind source");
	/* No devices or set-uid files from a workspace; read-only as the
	 * caller had it. */
	struct mount_attr attr = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
					      (ro ? MOUNT_ATTR_RDONLY : 0)};
	if (mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
		return vm_error_errno(err, errno, "cannot set the pin's mount flags");
	if (move_mount(tree, "", e->pins_fd, name, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return vm_error_errno(err, errno, "cannot mount the pin %s", name);
	return 0;
}

/* Make the missing directories of path (resolved in root), as the
 * engines do for a -v source that does not exist -- only below an
 * existing directory on a volmgr volume, one component at a time, never
 * through a symlink, mode 0755. */
static int make_missing(struct engined *e, int root, const char *path, struct vm_error *err)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return vm_error_set(err, ENAMETOOLONG, "bind source %s: too long", path);
	/* The longest existing ancestor. */
	size_t len = strlen(buf);
	int dir = -1;
	while (len > 1) {
		char *slash = memrchr(buf, '/', len);
		if (!slash)
			break;
		len = (size_t)(slash - buf);
		char save = buf[len > 0 ? len : 1];
		buf[len > 0 ? len : 1] = '\0';
		dir = vm_openat2(root, buf, O_PATH | O_DIRECTORY | O_CLOEXEC,
				 RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
		buf[len > 0 ? len : 1] = save;
		if (dir >= 0 || dir != -ENOENT)
			break;
	}
	if (dir < 0)
		return vm_error_set(err, ENOENT, "bind source %s: no such file or directory in the calling container", path);
	_cleanup_close_ int cur = dir;
	_cleanup_json_ json_t *which = NULL;
	struct vm_error werr = {0};
	if (control(e, "volume.which", NULL, fcntl(cur, F_DUPFD_CLOEXEC, 3), &which, &werr) < 0)
		return vm_error_set(err, EPERM,
				    "bind source %s does not exist, and is not on a volmgr volume either", path);
	/* The components after it. */
	char *save = NULL;
	for (char *comp = strtok_r(buf + len, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
		if (!vm_is_plain_component(comp))
			return vm_error_set(err, EINVAL, "bind source %s: a component %s", path, comp);
		if (mkdirat(cur, comp, 0755) < 0 && errno != EEXIST)
			return vm_error_errno(err, errno, "cannot make %s of bind source %s", comp, path);
		int next = vm_openat2(cur, comp, O_PATH | O_DIRECTORY | O_CLOEXEC,
				      RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV);
		if (next < 0)
			return vm_error_errno(err, -next, "bind source %s: %s", path, comp);
		close(cur);
		cur = next;
	}
	return 0;
}

int pin_bind_source(struct engined *e, const struct job *j, const char *path, bool create,
		    const char *tag, struct bind_target *ret, struct vm_error *err)
{
	char p[64];
	snprintf(p, sizeof(p), "%s/%d/root", e->proc, (int)j->pid);
	_cleanup_close_ int root = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0 || !alive(j->pidfd))
		return vm_error_set(err, EPERM, "the caller is gone");
	int r;
	_cleanup_close_ int fd = vm_openat2(root, path, O_PATH | O_CLOEXEC,
					    RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
	if (fd == -ENOENT && create) {
		if ((r = make_missing(e, root, path, err)) < 0)
			return r;
		fd = vm_openat2(root, path, O_PATH | O_CLOEXEC, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
	}
	if (fd == -ENOENT)
		return vm_error_set(err, ENOENT, "bind source %s: no such file or directory in the calling container", path);
	if (fd < 0)
		return vm_error_errno(err, -fd, "bind source %s", path);
	if (!alive(j->pidfd))
		return vm_error_set(err, EPERM, "the caller is gone");
	struct stat st;
	struct statvfs sv;
	if (fstat(fd, &st) < 0 || fstatvfs(fd, &sv) < 0)
		return vm_error_errno(err, errno, "bind source %s", path);
	/* The engine socket itself, passed on to a nested container:
	 * docker in the job in the job, confined as the job is. */
	if (S_ISSOCK(st.st_mode) && e->sock_ino && st.st_dev == e->sock_dev &&
	    st.st_ino == e->sock_ino) {
		*ret = (struct bind_target){0};
		snprintf(ret->source, sizeof(ret->source), "%s", e->sock_path);
		return 0;
	}
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
		return vm_error_set(err, EPERM, "bind source %s: only directories and regular files can be shared", path);
	_cleanup_json_ json_t *which = NULL;
	struct vm_error werr = {0};
	r = control(e, "volume.which", NULL, fcntl(fd, F_DUPFD_CLOEXEC, 3), &which, &werr);
	if (r == -ENOENT)
		return vm_error_set(err, EPERM,
				    "bind source %s is not on a volmgr volume: a job shares only its workspace "
				    "(the volmgr volume it runs on, e.g. $CI_PROJECT_DIR and below) with the "
				    "containers it starts; the job container's own files (its image, /etc, /) are "
				    "not on the host at that path", path);
	if (r < 0)
		return vm_error_copy(err, &werr);
	const char *vol = json_string_value(json_object_get(which, "volume"));
	if (!vol || !job_valid_ref(vol))
		return vm_error_set(err, EPROTO, "volmgrd named no volume for %s", path);
	*ret = (struct bind_target){.read_only = (sv.f_flag & ST_RDONLY) != 0};
	if (json_is_true(json_object_get(which, "root"))) {
		/* The volume's top: the volume itself, so that the engine's
		 * Mount and Unmount keep volmgrd's in-use count right. */
		ret->volume = true;
		snprintf(ret->source, sizeof(ret->source), "%s", vol);
		return 0;
	}
	_cleanup_json_ json_t *info = NULL;
	if ((r = control(e, "volume.inspect", json_pack("{s:s}", "name", vol), -1, &info, err)) < 0)
		return r;
	const char *mp = json_string_value(json_object_get(info, "mountpoint"));
	if (!mp || mp[0] != '/')
		return vm_error_set(err, EPROTO, "volmgrd gave no mountpoint for volume %s", vol);
	_cleanup_close_ int twin = host_twin(mp, fd, &st, err);
	if (twin < 0)
		return twin;
	char name[33];
	vm_random_hex(name, 32);
	name[32] = '\0';
	/* Recorded before it is mounted: a crash in between leaves a
	 * record the sweep releases, never a mount nothing knows of. */
	if ((r = state_add(e, REC_PIN, name, j->id, tag)) < 0)
		return vm_error_errno(err, -r, "cannot record the pin");
	if ((r = mount_pin(e, twin, name, S_ISDIR(st.st_mode), ret->read_only, err)) < 0) {
		pin_release(e, name);
		return r;
	}
	snprintf(ret->source, sizeof(ret->source), "%s/pins/%s", e->state_dir, name);
	return 0;
}

void pin_release(struct engined *e, const char *name)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/pins/%s", e->state_dir, name);
	/* Detached: an engine that still has it (a container being torn
	 * down) keeps its own copy of the mount. */
	while (umount2(p, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
		;
	if (unlinkat(e->pins_fd, name, AT_REMOVEDIR) < 0 && errno == ENOTDIR)
		unlinkat(e->pins_fd, name, 0);
	state_remove(e, REC_PIN, name);
}

void pin_sweep_unrecorded(struct engined *e)
{
	int dfd = openat(e->pins_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
	struct dirent *de;
	char job[ENGINED_ID_MAX + 1];
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && !state_job_of(e, REC_PIN, de->d_name, job))
			pin_release(e, de->d_name);
	closedir(d);
}
