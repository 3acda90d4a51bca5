/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* `cache promote`: the volume holding a caller's directory becomes the
 * new generation of a cache, so that the next job seeded from that cache
 * starts where this one's fetch ended.
 *
 * The volume's top is snapshotted into staging/ (O(1) on btrfs, under
 * the lock; a clone without the lock elsewhere), the checkout's .git
 * there is defused (gitrepo.h: the job wrote it, the next jobs' git will
 * read it), and the result is published like a git cache's update: moved
 * into place if the cache is new, else swapped with the current
 * generation by renameat2(RENAME_EXCHANGE), the record last.
 *
 * Who may feed which cache (SECURITY.md): only root calls this (the
 * control table), and a cache that a seed rule fills only from a volume
 * that this same rule made for exactly this cache -- so a job of an
 * unprotected ref, whose volume the unprotected rule made, can never
 * feed the cache protected jobs start from.  A promote of an older
 * commit than the cache holds keeps the cache. */
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fault.h"
#include "manager-private.h"
#include "treecount.h"

/* Under the lock: why the cache (its record, or NULL if none) should not
 * take this promote; "" if it should. */
static void keep_reason(const struct vm_record *cache, const char *commit, int64_t commit_time_ns,
			char reason[static 160])
{
	reason[0] = '\0';
	if (!cache || !cache->git_commit[0])
		return;
	if (commit[0] && strcmp(commit, cache->git_commit) == 0)
		snprintf(reason, 160, "the cache holds commit %.12s already", commit);
	else if (commit_time_ns && cache->commit_time_ns > commit_time_ns)
		snprintf(reason, 160, "the cache holds a newer commit (%.12s)", cache->git_commit);
}

/* The checkout the caller named, inside the volume's top: the same
 * directory as the caller's (b: its fstat, taken before the lock),
 * reached without a symbolic link. */
static int checkout_matches(int top, const char *checkout, const struct stat *b,
			    struct vm_error *err)
{
	struct stat a;
	_cleanup_close_ int dir = vm_open_path_beneath(top, checkout, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0 || fstat(dir, &a) < 0)
		return vm_error_set(err, EINVAL,
				    "the checkout \"%s\" is not a directory inside the volume (without symbolic links)",
				    checkout);
	if (a.st_dev != b->st_dev || a.st_ino != b->st_ino)
		return vm_error_set(err, EINVAL,
				    "the checkout \"%s\" inside the volume is not the directory passed",
				    checkout);
	return 0;
}

#define WALK_DEPTH_MAX 64
#define WALK_ENTRIES_MAX (1u << 20)

/* The name in directory up of the directory whose stat is child (the
 * first entry with its inode that fstatat confirms), in name. */
static int name_in(int up, const struct stat *child, char name[static 256])
{
	_cleanup_close_ int dfd = fcntl(up, F_DUPFD_CLOEXEC, 3);
	DIR *d = dfd >= 0 ? vm_opendir_at(dfd) : NULL;
	if (!d)
		return -errno;
	struct dirent *de;
	unsigned seen = 0;
	int r = -ENOENT;
	while ((de = readdir(d)) && seen++ < WALK_ENTRIES_MAX) {
		struct stat st;
		if (de->d_ino != child->st_ino || !vm_is_plain_component(de->d_name) ||
		    fstatat(up, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    st.st_dev != child->st_dev || st.st_ino != child->st_ino)
			continue;
		snprintf(name, 256, "%s", de->d_name);
		r = 0;
		break;
	}
	closedir(d);
	return r;
}

/* Where the caller's directory (fd) is inside its volume, whose top is
 * top: walked up by "..", through the pool's own mount, naming each step
 * (without the lock; bounded in depth and in entries read).  The job may
 * rename meanwhile: checkout_matches checks the answer. */
static int checkout_of_fd(struct vm_manager *m, int fd, const struct stat *top,
			  char ret[static VM_CHECKOUT_MAX + 1], struct vm_error *err)
{
	_cleanup_close_ int cur = vm_mgr_reopen_in_pool(m, fd);
	if (cur < 0)
		cur = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (cur < 0)
		return vm_error_errno(err, errno, "cannot reopen the caller's directory");
	char names[WALK_DEPTH_MAX][256];
	size_t n = 0;
	for (;;) {
		struct stat st, ust;
		if (fstat(cur, &st) < 0)
			return vm_error_errno(err, errno, "cannot stat the caller's directory");
		if (st.st_dev == top->st_dev && st.st_ino == top->st_ino)
			break;
		if (n == WALK_DEPTH_MAX)
			return vm_error_set(err, EINVAL, "the directory is more than %d levels below its volume's top",
					    WALK_DEPTH_MAX);
		int up = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (up < 0 || fstat(up, &ust) < 0 || (ust.st_dev == st.st_dev && ust.st_ino == st.st_ino)) {
			closep(&up);
			return vm_error_set(err, EINVAL, "cannot find the directory inside its volume");
		}
		int r = name_in(up, &st, names[n]);
		closep(&cur);
		cur = up;
		if (r < 0)
			return vm_error_errno(err, -r, "cannot find the directory inside its volume");
		n++;
	}
	size_t len = 0;
	ret[0] = '\0';
	for (size_t i = n; i-- > 0;) {
		int w = snprintf(ret + len, VM_CHECKOUT_MAX + 1 - len, "%s%s", len ? "/" : "", names[i]);
		if (w < 0 || (size_t)w >= VM_CHECKOUT_MAX + 1 - len)
			return vm_error_set(err, ENAMETOOLONG, "the checkout's path inside its volume is too long");
		len += (size_t)w;
	}
	return 0;
}

/* Who may promote vol (its record) into cache name: a cache the seed
 * rules fill takes only a volume its rule made for it. */
static int lineage_check(struct vm_manager *m, const struct vm_record *vol, const char *name,
			 struct vm_error *err)
{
	const struct vm_seed_rule *rule = vm_config_cache_seeded(&m->config, name);
	if (!rule || strcmp(vol->seed_cache, name) == 0)
		return 0;
	if (!vol->seed_cache[0])
		return vm_error_set(err, EPERM,
				    "cache %s is one the seed rules fill (\"%s = %s\"), and volume %s was not made by a seed rule: only a volume a seed rule made from it may be promoted into it",
				    name, rule->pattern, rule->source, vol->name);
	return vm_error_set(err, EPERM,
			    "volume %s was seeded for cache %s (rule \"%s\"), not for %s: a volume feeds only the cache its seed rule named (so an unprotected job's volume never feeds a protected cache)",
			    vol->name, vol->seed_cache, vol->seed_rule, name);
}

/* Under the lock: publish staging/tmp as cache name, new or the next
 * generation (the current one goes to staging/tmp, returned in *swapped). */
static int publish(struct vm_manager *m, const char *name, const char *tmp, const struct vm_record *vol,
		   const char *checkout, const char *commit, int64_t commit_time_ns, uint64_t id,
		   const struct vm_caller *caller, struct vm_promote_result *ret, bool *swapped,
		   struct vm_error *err)
{
	_cleanup_record_ struct vm_record rec = {0};
	int r = vm_store_load_record(&m->store, VM_KIND_CACHE, name, &rec, err);
	if (r < 0 && r != -ENOENT)
		return r;
	bool exists = r == 0;
	if (exists && rec.git_url[0])
		return vm_error_set(err, EINVAL,
				    "cache %s is made from git (%s): update it with volmgr cache update, not promote",
				    name, rec.git_url);
	keep_reason(exists ? &rec : NULL, commit, commit_time_ns, ret->reason);
	if (ret->reason[0]) {
		ret->generation = rec.generation;
		return 0;
	}
	if (!exists && vm_store_name_taken(&m->store, VM_KIND_CACHE, name))
		return vm_error_set(err, EBUSY, "cache %s is being made right now", name);
	int caches = m->store.pool->caches_fd;
	if (exists) {
		_cleanup_close_ int cur = vm_openat_beneath(caches, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		if (cur < 0)
			return vm_error_errno(err, -cur, "cannot open cache %s", name);
		/* Both must be writable to move (their ".." changes); nobody
		 * snapshots in between, we hold the lock. */
		if ((r = vm_backend_set_read_only(&m->store.backend, cur, false, err)) < 0)
			return r;
		if (renameat2(m->store.pool->staging_fd, tmp, caches, name, RENAME_EXCHANGE) < 0)
			r = vm_error_errno(err, errno, "cannot publish the new generation of %s", name);
		else
			*swapped = true;
		VM_FAULT("promote.swapped");
	} else {
		r = vm_store_publish(&m->store, tmp, caches, name, err);
		if (r == 0)
			vm_record_init(&rec, VM_KIND_CACHE, name);
	}
	_cleanup_close_ int now = vm_openat_beneath(caches, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (now >= 0)
		vm_backend_set_read_only(&m->store.backend, now, true, r == 0 ? err : NULL);
	if (r < 0)
		return r;
	if (!exists)
		vm_store_record_birth(&rec, caller, NULL);
	rec.subvol_id = id;
	rec.generation++;
	rec.updated_ns = vm_now_ns();
	rec.no_xattrs = false;
	snprintf(rec.git_commit, sizeof(rec.git_commit), "%s", commit);
	snprintf(rec.promoted_from, sizeof(rec.promoted_from), "%s", vol->name);
	snprintf(rec.checkout, sizeof(rec.checkout), "%s", checkout);
	rec.commit_time_ns = commit_time_ns;
	if ((r = vm_store_store_record(&m->store, &rec, err)) < 0) {
		if (!exists) {
			vm_store_discard_data(&m->store, caches, name, NULL);
		} else {
			/* The record still names the old generation: put it
			 * back (staging/tmp then holds this promote's tree). */
			_cleanup_close_ int cur = vm_openat_beneath(caches, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
			if (cur >= 0 && vm_backend_set_read_only(&m->store.backend, cur, false, NULL) == 0 &&
			    renameat2(m->store.pool->staging_fd, tmp, caches, name, RENAME_EXCHANGE) == 0)
				*swapped = false;
			closep(&cur);
			cur = vm_openat_beneath(caches, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
			if (cur >= 0)
				vm_backend_set_read_only(&m->store.backend, cur, true, NULL);
		}
		return r;
	}
	ret->promoted = true;
	ret->generation = rec.generation;
	return 0;
}

int vm_cache_promote(struct vm_manager *m, int fd, const char *name,
		     const struct vm_promote_opts *o, const struct vm_caller *caller,
		     struct vm_promote_result *ret, struct vm_error *err)
{
	*ret = (struct vm_promote_result){0};
	/* A time in the future would keep the cache from every later
	 * promote (the caller chose it): a day of clock skew, no more. */
	if (o->commit_time_ns < 0 || o->commit_time_ns > vm_now_ns() + 86400LL * 1000000000LL)
		return vm_error_set(err, EINVAL, "the commit's time is in the future");
	/* The commit, read from the caller's checkout as it is now. */
	int r = vm_git_head_commit(fd, ret->commit);
	if (r == -ENOENT && !o->commit)
		ret->commit[0] = '\0'; /* not a git checkout: promoted as a plain tree */
	else if (r == -ENOTDIR || r == -ELOOP || r == -EXDEV)
		return vm_error_set(err, EINVAL,
				    "the checkout's .git, or its HEAD or a ref it names, is a symbolic link, a gitdir file or a mount point: refused");
	else if (r < 0)
		return vm_error_errno(err, -r, "cannot read the checkout's HEAD (a SHA-1 repository's .git/HEAD)");
	if (o->commit && strcmp(o->commit, ret->commit) != 0)
		return vm_error_set(err, EINVAL, "the checkout's HEAD is %s, not the commit given (%.64s)",
				    ret->commit, o->commit);
	struct vm_volume_place place;
	struct stat fd_st;
	if (fstat(fd, &fd_st) < 0)
		return vm_error_errno(err, errno, "cannot stat the caller's directory");
	if ((r = vm_volume_which(m, fd, &place, err)) < 0)
		return r;
	snprintf(ret->volume, sizeof(ret->volume), "%s", place.volume);
	/* Where fd is inside the volume: found without the lock, checked
	 * under it. */
	char checkout[VM_CHECKOUT_MAX + 1] = "";
	if (!place.root) {
		struct stat top_st;
		_cleanup_close_ int t = vm_openat_beneath(m->store.pool->volumes_fd, place.volume,
							  O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		if (t < 0 || fstat(t, &top_st) < 0)
			return vm_error_errno(err, t < 0 ? -t : errno, "cannot open volume %s", place.volume);
		if ((r = checkout_of_fd(m, fd, &top_st, checkout, err)) < 0)
			return r;
		if (!vm_checkout_path_ok(checkout))
			return vm_error_set(err, EINVAL, "the checkout's path inside volume %s is not one volmgr records",
					    place.volume);
	}

	char tmp[VM_NAME_MAX + 64];
	uint64_t id = 0;
	struct vm_store_hold hold = {0};
	_cleanup_close_ int top = -1;
	{
		VM_STORE_LOCK(&m->store);
		_cleanup_record_ struct vm_record vol = {0};
		if ((r = vm_store_load_ready(&m->store, VM_KIND_VOLUME, place.volume, &vol, err)) < 0)
			return r;
		if (o->lineage_only && (!vol.seed_cache[0] || (name && name[0] && strcmp(name, vol.seed_cache) != 0)))
			return vm_error_set(err, EPERM,
					    "on the job socket a volume is promoted only into the cache its seed rule named (volume %s: %s)",
					    vol.name, vol.seed_cache[0] ? vol.seed_cache : "made by no seed rule");
		if (!name || !name[0]) {
			if (!vol.seed_cache[0])
				return vm_error_set(err, EINVAL,
						    "volume %s was not made by a seed rule: name the cache to promote it into",
						    vol.name);
			name = vol.seed_cache;
		}
		snprintf(ret->cache, sizeof(ret->cache), "%s", name);
		if ((r = vm_name_check("cache", ret->cache, err)) < 0 ||
		    (r = lineage_check(m, &vol, ret->cache, err)) < 0)
			return r;
		top = vm_openat_beneath(m->store.pool->volumes_fd, vol.name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		if (top < 0)
			return vm_error_errno(err, -top, "cannot open volume %s", vol.name);
		if ((r = checkout_matches(top, checkout, &fd_st, err)) < 0)
			return r;
		/* Nothing to do for an older commit: said before any copy. */
		_cleanup_record_ struct vm_record cur = {0};
		if (vm_store_load_record(&m->store, VM_KIND_CACHE, ret->cache, &cur, NULL) == 0) {
			keep_reason(&cur, ret->commit, o->commit_time_ns, ret->reason);
			if (ret->reason[0]) {
				ret->generation = cur.generation;
				return 0;
			}
		}
		vm_store_staging_name("promote", ret->cache, tmp);
		ret->method = vm_backend_is_instant(&m->store.backend) ? VM_CREATE_SNAPSHOT : VM_CREATE_CLONE;
		if (ret->method == VM_CREATE_SNAPSHOT) {
			if ((r = vm_backend_clone(&m->store.backend, top, m->store.pool->staging_fd, tmp, NULL,
						  &id, NULL, err)) < 0)
				return r;
		} else if ((r = vm_store_hold(&m->store, top, &hold, err)) < 0) {
			return r;
		}
	}
	if (ret->method == VM_CREATE_CLONE) {
		/* A copy of a tree the job filled: no bigger than what a
		 * seeded create would copy from the cache (else every later
		 * job of this lineage would be refused), in one of the
		 * caller's copy slots. */
		struct vm_treecount t;
		r = vm_treecount(top, m->config.implicit_max_files, m->config.implicit_max_bytes, &t, err);
		if (r == 0 && t.over)
			r = vm_error_set(err, EFBIG,
					 "volume %s holds more than [copy] implicit_max_files (%llu) or implicit_max_bytes (%llu): not copied into cache %s",
					 ret->volume, (unsigned long long)m->config.implicit_max_files,
					 (unsigned long long)m->config.implicit_max_bytes, ret->cache);
		if (r == 0)
			r = vm_store_copy_enter(&m->store, caller, err);
		if (r == 0) {
			vm_store_copy_start(&m->store);
			r = vm_store_clone_staged(&m->store, top, false, tmp, "promote into cache", ret->cache,
						  err);
			vm_store_copy_leave(&m->store, caller);
		}
		vm_store_release(&m->store, &hold);
	}
	closep(&top);
	/* The job wrote this tree: defuse its .git before any job's git
	 * reads it, and make it durable before the record says it is there. */
	if (r >= 0) {
		_cleanup_close_ int staged = vm_openat_beneath(m->store.pool->staging_fd, tmp,
							       O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		_cleanup_close_ int co = -1;
		if (staged < 0)
			r = vm_error_errno(err, -staged, "cannot open staging/%s", tmp);
		else if ((co = vm_open_path_beneath(staged, checkout, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			r = vm_error_errno(err, -co, "cannot open the checkout in the new generation");
		if (r >= 0)
			r = vm_git_tree_defuse(staged, err);
		/* The record names the commit the new generation holds: the
		 * job's checkout may have moved since it was read. */
		char staged_commit[64] = "";
		if (r >= 0 && ret->commit[0] && (vm_git_head_commit(co, staged_commit) < 0 ||
						 strcmp(staged_commit, ret->commit) != 0))
			r = vm_error_set(err, EAGAIN, "the checkout's HEAD changed while it was promoted: not promoted");
		if (r >= 0)
			r = vm_store_make_durable(staged, NULL, err);
	}
	VM_FAULT("promote.staged");
	if (r < 0) {
		vm_store_delete_staged(&m->store, tmp, NULL);
		return r;
	}
	bool swapped = false;
	{
		VM_STORE_LOCK(&m->store);
		_cleanup_record_ struct vm_record vol = {0};
		r = vm_store_load_ready(&m->store, VM_KIND_VOLUME, ret->volume, &vol, err);
		if (r == 0)
			r = publish(m, ret->cache, tmp, &vol, checkout, ret->commit, o->commit_time_ns, id,
				    caller, ret, &swapped, err);
	}
	/* staging/tmp: the old generation (no volume refers to it, but a
	 * copy may still read it), or this promote's tree if it was not
	 * published. */
	if (swapped)
		vm_store_delete_trash(&m->store, tmp, NULL);
	else if (!ret->promoted)
		vm_store_delete_staged(&m->store, tmp, NULL);
	return r;
}
