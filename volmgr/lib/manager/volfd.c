/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A directory a caller opened and passed: which volume holds it, and a
 * new volume made from it (a snapshot of a volume's top, else a copy). */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "manager-private.h"

struct vol_top {
	dev_t dev;
	ino_t ino;
	char name[VM_NAME_MAX + 1];
};

/* The top directory of every volume with a record. */
static int volume_tops(struct vm_manager *m, struct vol_top **ret, size_t *ret_n,
		       struct vm_error *err)
{
	DIR *d = vm_opendir_at(m->store.pool->volumes_fd);
	if (!d)
		return vm_error_errno(err, errno, "cannot read the volumes");
	struct vol_top *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat vs;
		if (!vm_is_plain_component(de->d_name) || strlen(de->d_name) > VM_NAME_MAX ||
		    fstatat(m->store.pool->volumes_fd, de->d_name, &vs, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(vs.st_mode))
			continue;
		if (!vm_store_has_record(&m->store, VM_KIND_VOLUME, de->d_name))
			continue; /* data without a record is nobody's volume */
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			struct vol_top *nv = realloc(v, cap * sizeof(*nv));
			if (!nv) {
				free(v);
				closedir(d);
				return vm_error_set(err, ENOMEM, "out of memory");
			}
			v = nv;
		}
		v[n].dev = vs.st_dev;
		v[n].ino = vs.st_ino;
		snprintf(v[n].name, sizeof(v[n].name), "%s", de->d_name);
		n++;
	}
	closedir(d);
	*ret = v;
	*ret_n = n;
	return 0;
}

static const struct vol_top *top_find(const struct vol_top *v, size_t n, dev_t dev, ino_t ino)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].dev == dev && v[i].ino == ino)
			return &v[i];
	return NULL;
}

/* The caller's directory, reopened through the pool's own mount: in the
 * caller's bind mount of a volume's subdirectory, ".." at the mount's
 * root would leave the volume.  Needs CAP_DAC_READ_SEARCH; -errno when
 * that or the file system's support is missing. */
int vm_mgr_reopen_in_pool(struct vm_manager *m, int fd)
{
	union {
		struct file_handle h;
		char buf[sizeof(struct file_handle) + MAX_HANDLE_SZ];
	} u = {.h.handle_bytes = MAX_HANDLE_SZ};
	int mount_id;
	if (name_to_handle_at(fd, "", &u.h, &mount_id, AT_EMPTY_PATH) < 0)
		return -errno;
	int r = open_by_handle_at(m->store.pool->volumes_fd, &u.h, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return r < 0 ? -errno : r;
}

#define VOLUME_WALK_MAX 4096

/* Where a caller's directory is: its (device, inode) and, on the pool's
 * own device (volumes that are plain directories), those of its
 * ancestors up to the volumes directory.  Found without the store's
 * lock: these are system calls on the caller's fd, which a stalled FUSE
 * or network file system can hold up for as long as it likes -- that
 * may stall this request, never the others. */
struct fd_place {
	struct stat st;
	struct { dev_t dev; ino_t ino; } *up;
	size_t n_up;
};

static int place_of_fd(struct vm_manager *m, int fd, struct fd_place *p, struct vm_error *err)
{
	struct stat vst;
	*p = (struct fd_place){0};
	if (fstat(fd, &p->st) < 0)
		return vm_error_errno(err, errno, "cannot stat the caller's directory");
	if (fstat(m->store.pool->volumes_fd, &vst) < 0)
		return vm_error_errno(err, errno, "cannot stat the volumes directory");
	if (p->st.st_dev != vst.st_dev)
		return 0; /* a subvolume (btrfs) or another file system: no walk */
	int cur = vm_mgr_reopen_in_pool(m, fd);
	if (cur < 0)
		cur = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (cur < 0)
		return vm_error_errno(err, errno, "cannot dup the caller's directory");
	struct stat st = p->st;
	for (unsigned depth = 0; depth < VOLUME_WALK_MAX; depth++) {
		int up = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		struct stat us;
		if (up < 0 || fstat(up, &us) < 0) {
			closep(&up);
			break;
		}
		close(cur);
		cur = up;
		if (us.st_dev != vst.st_dev || us.st_ino == vst.st_ino || us.st_ino == st.st_ino)
			break; /* left the file system, reached volumes/ itself, or "/" */
		if (p->n_up % 64 == 0) {
			void *n = realloc(p->up, (p->n_up + 64) * sizeof(*p->up));
			if (!n)
				break; /* what was gathered still counts */
			p->up = n;
		}
		p->up[p->n_up].dev = us.st_dev;
		p->up[p->n_up].ino = us.st_ino;
		p->n_up++;
		st = us;
	}
	close(cur);
	return 0;
}

/* Which volume holds the directory described by p?  Its top has the inode
 * of volumes/NAME.  On btrfs every subvolume has its own device number,
 * so a file's st_dev names the subvolume it is in.  Plain-directory
 * volumes (other backends) share the pool's st_dev: one of the ancestors
 * gathered is a volume's top.  Under the lock; no system call on the
 * caller's fd. */
static int volume_of_place(struct vm_manager *m, const struct fd_place *p,
			   char ret_name[static VM_NAME_MAX + 1], bool *ret_root,
			   struct vm_error *err)
{
	struct stat vst;
	if (fstat(m->store.pool->volumes_fd, &vst) < 0)
		return vm_error_errno(err, errno, "cannot stat the volumes directory");
	_cleanup_free_ struct vol_top *tops = NULL;
	size_t n = 0;
	int r = volume_tops(m, &tops, &n, err);
	if (r < 0)
		return r;
	const struct vol_top *t = top_find(tops, n, p->st.st_dev, p->st.st_ino);
	*ret_root = t != NULL;
	for (size_t i = 0; !t && i < n; i++)
		if (tops[i].dev != vst.st_dev && tops[i].dev == p->st.st_dev)
			t = &tops[i]; /* inside a subvolume volume */
	for (size_t i = 0; !t && i < p->n_up; i++)
		t = top_find(tops, n, p->up[i].dev, p->up[i].ino);
	if (!t)
		return -ENOENT;
	snprintf(ret_name, VM_NAME_MAX + 1, "%s", t->name);
	return 0;
}

int vm_volume_which(struct vm_manager *m, int fd, struct vm_volume_place *ret,
		    struct vm_error *err)
{
	struct fd_place place;
	int r = place_of_fd(m, fd, &place, err);
	if (r < 0)
		return r;
	char name[VM_NAME_MAX + 1];
	bool root = false;
	{
		VM_STORE_LOCK(&m->store);
		r = volume_of_place(m, &place, name, &root, err);
	}
	free(place.up);
	if (r == -ENOENT)
		return vm_error_set(err, ENOENT, "the directory is not on a volmgr volume");
	if (r < 0)
		return r;
	*ret = (struct vm_volume_place){.root = root};
	snprintf(ret->volume, sizeof(ret->volume), "%s", name);
	return 0;
}

int vm_volume_create_from_fd(struct vm_manager *m, const char *name, int src_fd,
			     const char *path, const struct vm_create_opts *opts,
			     const struct vm_caller *caller, struct vm_create_how *ret_how,
			     struct vm_error *err)
{
	json_t *labels = opts ? opts->labels : NULL;
	int r = vm_name_check("volume", name, err);
	if (r < 0)
		return r;
	if ((r = vm_source_path_check(path, err)) < 0 ||
	    (r = vm_labels_check(labels, err)) < 0 || (r = vm_mgr_reserved_check(m, name, caller, err)) < 0)
		return r;
	char held[VM_NAME_MAX + 1];
	bool root = false;
	struct vm_store_hold hold = {0};
	struct fd_place place;
	if ((r = place_of_fd(m, src_fd, &place, err)) < 0)
		return r;
	{
		VM_STORE_LOCK(&m->store);
		r = volume_of_place(m, &place, held, &root, err);
		free(place.up);
		if (r < 0 && r != -ENOENT)
			return r;
		if (r == 0 && !root) {
			/* Inside a volume: its removal waits for the copy. */
			_cleanup_close_ int top = vm_openat_beneath(m->store.pool->volumes_fd, held,
								    O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
			int h = top >= 0 ? vm_store_hold(&m->store, top, &hold, err) : 0;
			if (h < 0)
				return h;
		}
	}
	if (r == 0 && root) {
		/* The root of a volume: a snapshot, in O(1) (a clone off
		 * btrfs). */
		struct vm_create_opts o = opts ? *opts : (struct vm_create_opts){0};
		o.source = (struct vm_source){.kind = VM_SOURCE_VOLUME};
		o.labels = labels;
		snprintf(o.source.name, sizeof(o.source.name), "%s", held);
		r = vm_volume_create(m, name, &o, caller, err);
		if (r == 0 && ret_how) {
			*ret_how = (struct vm_create_how){
				.method = vm_backend_is_instant(&m->store.backend) ? VM_CREATE_SNAPSHOT
										   : VM_CREATE_CLONE};
			snprintf(ret_how->of, sizeof(ret_how->of), "%s", held);
		}
		return r;
	}
	struct vm_source src = {.kind = VM_SOURCE_PATH};
	snprintf(src.name, sizeof(src.name), "%s", path);
	struct vm_copy_stats stats = {0};
	r = vm_mgr_copy_in(m, VM_KIND_VOLUME, name, src_fd, &src, false, NULL, opts, caller, &stats,
			   err);
	vm_store_release(&m->store, &hold);
	if (r == 0 && ret_how)
		*ret_how = (struct vm_create_how){.method = VM_CREATE_COPY, .stats = stats};
	return r;
}
