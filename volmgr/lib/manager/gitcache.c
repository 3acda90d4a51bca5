/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Caches from git, and volumes at a commit.
 *
 * Git's work (clone, fetch, checkout) runs as the configured unprivileged
 * user, in staging/, without the store's lock: other requests go on.
 * Only the publication takes the lock, so a snapshot of a cache gets its
 * old generation or its new one, whole: an update makes the new
 * generation as a writable snapshot of the current one, fetches and
 * checks out there, then swaps the two with renameat2(RENAME_EXCHANGE).
 * Volumes are independent snapshots or copies, so the old generation is
 * deleted right away: nothing refers to it, unless a copy still reads it
 * (then when that copy ends).  Off btrfs a generation is a copy of the
 * current one, made without the lock. */
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fault.h"
#include "manager-private.h"

static int git_ready(struct vm_manager *m, struct vm_error *err)
{
	if (m->git.uid == 0)
		return vm_error_set(err, m->git_error.code ? m->git_error.code : EINVAL,
				    "git is not usable: %s", m->git_error.msg);
	return 0;
}

static int open_staged(struct vm_manager *m, const char *tmp, struct vm_error *err)
{
	int fd = vm_openat_beneath(m->store.pool->staging_fd, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0)
		return vm_error_errno(err, -fd, "cannot open staging/%s", tmp);
	return fd;
}

/* "HEAD" -> full commit id, via git rev-parse in t's checkout. */
static int rev_parse(struct vm_manager *m, const struct vm_git_target *t, const char *rev,
		     char ret[static 64], struct vm_error *err)
{
	char spec[VM_REV_MAX + 16];
	snprintf(spec, sizeof(spec), "%s^{commit}", rev);
	_cleanup_free_ char *out = NULL;
	const char *args[] = {"rev-parse", "--verify", "--quiet", "--end-of-options", spec, NULL};
	int r = vm_git_run(&m->git, t, args, &out, err);
	if (r < 0)
		return r;
	if (strlen(out) < 7 || strlen(out) > 63 || strspn(out, "0123456789abcdef") != strlen(out))
		return vm_error_set(err, EIO, "git rev-parse gave \"%.80s\"", out);
	snprintf(ret, 64, "%s", out);
	return 0;
}

static int current_branch(struct vm_manager *m, const struct vm_git_target *t,
			  char ret[static VM_REV_MAX + 1], struct vm_error *err)
{
	_cleanup_free_ char *out = NULL;
	const char *args[] = {"symbolic-ref", "--short", "HEAD", NULL};
	int r = vm_git_run(&m->git, t, args, &out, err);
	if (r < 0)
		return r;
	if (vm_rev_check(out, NULL) < 0)
		return vm_error_set(err, EIO, "unexpected branch name from git");
	snprintf(ret, VM_REV_MAX + 1, "%s", out);
	return 0;
}

/* Make the index of a fresh checkout trustworthy for every snapshot:
 * files written in the same second as the index are "racily clean" (git
 * compares whole seconds), and git would re-read all of them on each
 * checkout in each snapshot of the cache.  Wait for the next second,
 * then let git refresh the index once, here. */
static int refresh_index(struct vm_manager *m, const struct vm_git_target *t,
			 struct vm_error *err)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct timespec wait = {0, 1000000000L - now.tv_nsec + 10000000L};
	if (wait.tv_nsec >= 1000000000L)
		wait.tv_nsec = 999999999L;
	nanosleep(&wait, NULL);
	const char *args[] = {"update-index", "-q", "--refresh", NULL};
	return vm_git_run(&m->git, t, args, NULL, err);
}

static void cache_result(const struct vm_record *rec, struct vm_git_result *ret)
{
	*ret = (struct vm_git_result){.generation = rec->generation};
	snprintf(ret->name, sizeof(ret->name), "%s", rec->name);
	snprintf(ret->url, sizeof(ret->url), "%s", rec->git_url);
	snprintf(ret->branch, sizeof(ret->branch), "%s", rec->git_branch);
	snprintf(ret->commit, sizeof(ret->commit), "%s", rec->git_commit);
}

int vm_cache_create_git(struct vm_manager *m, const char *name, const char *url,
			const char *branch, const struct vm_caller *caller,
			struct vm_git_result *ret, struct vm_error *err)
{
	int r;
	if ((r = vm_name_check("cache", name, err)) < 0 || (r = vm_git_url_check(url, err)) < 0 ||
	    (branch && (r = vm_rev_check(branch, err)) < 0) || (r = git_ready(m, err)) < 0)
		return r;
	char tmp[VM_NAME_MAX + 64];
	vm_store_staging_name("clone", name, tmp);
	{
		VM_STORE_LOCK(&m->store);
		if (vm_store_name_taken(&m->store, VM_KIND_CACHE, name))
			return vm_error_set(err, EEXIST, "cache %s already exists", name);
		if ((r = vm_backend_make_empty(&m->store.backend, m->store.pool->staging_fd, tmp, NULL, err)) < 0)
			return r;
		vm_store_reserve(&m->store, VM_KIND_CACHE, name, true);
	}
	_cleanup_record_ struct vm_record rec = {0};
	vm_record_init(&rec, VM_KIND_CACHE, name);
	snprintf(rec.git_url, sizeof(rec.git_url), "%s", url);
	{
		_cleanup_close_ int fd = open_staged(m, tmp, err);
		r = fd;
		/* The clone belongs to the git user, who never is root. */
		if (fd >= 0 && (fchown(fd, m->git.uid, m->git.gid) < 0 || fchmod(fd, 0755) < 0))
			r = vm_error_errno(err, errno, "cannot hand the new cache to the git user");
		if (r >= 0) {
			const char *args[] = {"clone", "--quiet", "--no-hardlinks",
					      branch ? "--branch" : "--", branch ? branch : url,
					      branch ? "--" : ".", branch ? url : NULL, branch ? "." : NULL,
					      NULL};
			struct vm_git_target empty = {fd, url, NULL, true};
			r = vm_git_run(&m->git, &empty, args, NULL, err);
		}
		/* From here on git works in the clone, whose config volmgr
		 * rewrites before each run (the branch once it is known). */
		struct vm_git_target t = {fd, rec.git_url, rec.git_branch, false};
		if (r >= 0)
			r = rev_parse(m, &t, "HEAD", rec.git_commit, err);
		if (r >= 0)
			r = current_branch(m, &t, rec.git_branch, err);
		if (r >= 0)
			r = refresh_index(m, &t, err);
		if (r >= 0) /* on disk before the record names it */
			r = vm_store_make_durable(fd, NULL, err);
	}
	VM_STORE_LOCK(&m->store);
	vm_store_reserve(&m->store, VM_KIND_CACHE, name, false);
	if (r >= 0)
		r = vm_store_publish(&m->store, tmp, m->store.pool->caches_fd, name, err);
	if (r < 0) {
		vm_store_delete_staged(&m->store, tmp, NULL);
		return r;
	}
	_cleanup_close_ int fd = vm_openat_beneath(m->store.pool->caches_fd, name,
						   O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	r = fd < 0 ? vm_error_errno(err, -fd, "cannot open cache %s", name)
		   : vm_backend_set_read_only(&m->store.backend, fd, true, err);
	if (r == 0) {
		rec.generation = 1;
		vm_store_record_birth(&rec, caller, NULL);
		rec.updated_ns = rec.created_ns;
		r = vm_store_store_record(&m->store, &rec, err);
	}
	if (r < 0) {
		vm_store_discard_data(&m->store, m->store.pool->caches_fd, name, NULL);
		return r;
	}
	cache_result(&rec, ret);
	return 0;
}

static bool updating(struct vm_manager *m, const char *name, int on)
{
	char key[VM_NAME_MAX + 16];
	snprintf(key, sizeof(key), "update:%s", name);
	return vm_store_busy(&m->store, key, on);
}

int vm_cache_update(struct vm_manager *m, const char *name, struct vm_git_result *ret,
		    struct vm_error *err)
{
	int r;
	if ((r = vm_name_check("cache", name, err)) < 0 || (r = git_ready(m, err)) < 0)
		return r;
	char tmp[VM_NAME_MAX + 64];
	vm_store_staging_name("update", name, tmp);
	_cleanup_record_ struct vm_record rec = {0};
	struct vm_store_hold hold = {0};
	_cleanup_close_ int to_copy = -1;
	{
		VM_STORE_LOCK(&m->store);
		if ((r = vm_store_load_record(&m->store, VM_KIND_CACHE, name, &rec, err)) < 0)
			return r;
		if (!rec.git_url[0])
			return vm_error_set(err, EINVAL,
					    "cache %s was imported, not made from git: nothing to update",
					    name);
		if (updating(m, name, -1))
			return vm_error_set(err, EBUSY, "cache %s is being updated already", name);
		_cleanup_close_ int cur = vm_openat_beneath(m->store.pool->caches_fd, name,
							    O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		if (cur < 0)
			return vm_error_errno(err, -cur, "cannot open cache %s", name);
		if (vm_backend_is_instant(&m->store.backend)) {
			if ((r = vm_backend_clone(&m->store.backend, cur, m->store.pool->staging_fd, tmp, NULL, NULL,
						  NULL, err)) < 0)
				return r;
		} else {
			if ((r = vm_store_hold(&m->store, cur, &hold, err)) < 0)
				return r;
			to_copy = TAKE_FD(cur);
		}
		updating(m, name, 1);
	}
	if (to_copy >= 0) {
		r = vm_store_clone_staged(&m->store, to_copy, true, tmp, "new generation of cache", name, err);
		closep(&to_copy);
		to_copy = -1;
		vm_store_release(&m->store, &hold);
	}
	char commit[64] = "";
	if (r >= 0) {
		_cleanup_close_ int fd = open_staged(m, tmp, err);
		r = fd;
		char remote_ref[VM_REV_MAX + 32];
		snprintf(remote_ref, sizeof(remote_ref), "origin/%s", rec.git_branch);
		const char *fetch[] = {"fetch", "--quiet", "--prune", "origin", NULL};
		const char *checkout[] = {"checkout", "--quiet", "-f", "-B", rec.git_branch,
					  remote_ref, "--", NULL};
		/* The config in the new generation is the record's, not
		 * whatever the current generation's .git holds. */
		struct vm_git_target t = {fd, rec.git_url, rec.git_branch, false};
		if (r >= 0)
			r = vm_git_run(&m->git, &t, fetch, NULL, err);
		if (r >= 0)
			r = vm_git_run(&m->git, &t, checkout, NULL, err);
		if (r >= 0)
			r = rev_parse(m, &t, "HEAD", commit, err);
		if (r >= 0)
			r = refresh_index(m, &t, err);
		if (r >= 0) /* on disk before the swap and the record */
			r = vm_store_make_durable(fd, NULL, err);
	}
	VM_FAULT("update.fetched");
	if (r < 0) {
		/* A failed fetch or checkout: the new generation (a whole copy
		 * off btrfs) goes without the lock, before the update is
		 * marked done (so no other update reuses its staging name). */
		vm_store_delete_staged(&m->store, tmp, NULL);
		VM_STORE_LOCK(&m->store);
		updating(m, name, 0);
		return r;
	}
	{
	VM_STORE_LOCK(&m->store);
	updating(m, name, 0);
	_cleanup_record_ struct vm_record now = {0};
	if (r >= 0)
		r = vm_store_load_record(&m->store, VM_KIND_CACHE, name, &now, err); /* removed meanwhile? */
	_cleanup_close_ int cur = -1;
	if (r >= 0) {
		cur = vm_openat_beneath(m->store.pool->caches_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		if (cur < 0)
			r = vm_error_errno(err, -cur, "cannot open cache %s", name);
	}
	/* Swap the generations: both must be writable to move (their ".."
	 * changes); nobody can snapshot in between, we hold the lock. */
	if (r >= 0 && (r = vm_backend_set_read_only(&m->store.backend, cur, false, err)) == 0) {
		VM_FAULT("update.writable");
		if (renameat2(m->store.pool->staging_fd, tmp, m->store.pool->caches_fd, name, RENAME_EXCHANGE) < 0)
			r = vm_error_errno(err, errno, "cannot publish the new generation of %s", name);
		VM_FAULT("update.swapped");
		/* cur follows its inode: the new generation is at cur's old
		 * place now, so reopen by name. */
		closep(&cur);
		cur = vm_openat_beneath(m->store.pool->caches_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		if (cur >= 0)
			vm_backend_set_read_only(&m->store.backend, cur, true, r == 0 ? err : NULL);
	}
	if (r < 0) {
		vm_store_delete_staged(&m->store, tmp, NULL);
		return r;
	}
	VM_FAULT("update.readonly");
	snprintf(now.git_commit, sizeof(now.git_commit), "%s", commit);
	now.generation++;
	now.updated_ns = vm_now_ns();
	r = vm_store_store_record(&m->store, &now, err);
	if (r == 0) {
		cache_result(&now, ret);
		snprintf(ret->previous_commit, sizeof(ret->previous_commit), "%s", rec.git_commit);
	}
	}
	/* staging/tmp now holds the old generation: no volume refers to it,
	 * but a copy may still read it (then it goes when that ends). */
	vm_store_delete_trash(&m->store, tmp, NULL);
	return r;
}

/* Find REV in t's checkout: as given, as a branch of origin, or fetched
 * from origin. */
static int resolve_rev(struct vm_manager *m, const struct vm_git_target *t, const char *rev,
		       char commit[static 64], struct vm_error *err)
{
	struct vm_error perr = {0};
	if (rev_parse(m, t, rev, commit, &perr) == 0)
		return 0;
	/* A checkout volmgr refuses to run git in: say why, not "unknown
	 * revision". */
	if (perr.code != EIO)
		return vm_error_copy(err, &perr);
	/* A full commit id is no branch name: skip the origin/ guess. */
	bool full_sha = strlen(rev) == 40 && strspn(rev, "0123456789abcdef") == 40;
	char remote[VM_REV_MAX + 16];
	snprintf(remote, sizeof(remote), "origin/%s", rev);
	if (!full_sha && rev_parse(m, t, remote, commit, NULL) == 0)
		return 0;
	struct vm_error ferr = {0};
	const char *fetch[] = {"fetch", "--quiet", "origin", "--end-of-options", rev, NULL};
	if (vm_git_run(&m->git, t, fetch, NULL, &ferr) == 0 &&
	    rev_parse(m, t, "FETCH_HEAD", commit, NULL) == 0)
		return 0;
	return vm_error_set(err, ENOENT, "unknown revision \"%s\"%s%s", rev,
			    ferr.msg[0] ? ": " : "", ferr.msg);
}

int vm_volume_create_at_rev(struct vm_manager *m, const char *name,
			    const struct vm_create_opts *opts, const struct vm_caller *caller,
			    struct vm_error *err)
{
	const struct vm_source *src = &opts->source;
	int r;
	if ((r = vm_name_check("volume", name, err)) < 0 ||
	    (r = vm_labels_check(opts->labels, err)) < 0 || (r = vm_rev_check(src->rev, err)) < 0 ||
	    (r = git_ready(m, err)) < 0)
		return r;
	if (src->kind != VM_SOURCE_CACHE)
		return vm_error_set(err, EINVAL, "only a cache has revisions");
	char tmp[VM_NAME_MAX + 64];
	vm_store_staging_name("rev", name, tmp);
	uint64_t id = 0, quota = 0;
	_cleanup_record_ struct vm_record cache = {0};
	struct vm_store_hold hold = {0};
	_cleanup_close_ int to_copy = -1;
	{
		VM_STORE_LOCK(&m->store);
		if (vm_store_name_taken(&m->store, VM_KIND_VOLUME, name))
			return vm_error_set(err, EEXIST, "volume %s already exists", name);
		if ((r = vm_store_load_record(&m->store, VM_KIND_CACHE, src->name, &cache, err)) < 0)
			return r;
		/* Only a cache volmgr cloned has a repository whose remote it
		 * knows: an imported tree's .git is whatever its author put
		 * there. */
		if (!cache.git_url[0])
			return vm_error_set(err, EINVAL,
					    "cache %s was imported, not made from git: it has no revisions",
					    src->name);
		struct vm_source plain = *src;
		plain.rev[0] = '\0';
		_cleanup_close_ int cur = -1;
		if ((r = vm_store_open_source(&m->store, &plain, &cur, NULL, err)) < 0)
			return r;
		if (vm_backend_is_instant(&m->store.backend)) {
			if ((r = vm_backend_clone(&m->store.backend, cur, m->store.pool->staging_fd, tmp, NULL, &id,
						  NULL, err)) < 0)
				return r;
			if ((r = vm_store_apply_quota(&m->store, id, opts, &quota, err)) < 0) {
				vm_store_delete_staged(&m->store, tmp, NULL);
				return r;
			}
		} else {
			/* No subvolume, no quota: refuse one before copying. */
			if ((r = vm_store_apply_quota(&m->store, 0, opts, &quota, err)) < 0 ||
			    (r = vm_store_hold(&m->store, cur, &hold, err)) < 0)
				return r;
			to_copy = TAKE_FD(cur);
		}
		vm_store_reserve(&m->store, VM_KIND_VOLUME, name, true);
	}
	if (to_copy >= 0) {
		r = vm_store_clone_staged(&m->store, to_copy, true, tmp, "clone into volume", name, err);
		closep(&to_copy);
		to_copy = -1;
		vm_store_release(&m->store, &hold);
	}
	_cleanup_record_ struct vm_record rec = {0};
	vm_record_init(&rec, VM_KIND_VOLUME, name);
	rec.quota_bytes = quota;
	if (r >= 0) {
		_cleanup_close_ int fd = open_staged(m, tmp, err);
		r = fd;
		struct vm_git_target t = {fd, cache.git_url, cache.git_branch, false};
		if (r >= 0)
			r = resolve_rev(m, &t, src->rev, rec.git_commit, err);
		const char *checkout[] = {"checkout", "--quiet", "-f", "--detach", rec.git_commit, "--", NULL};
		if (r >= 0)
			r = vm_git_run(&m->git, &t, checkout, NULL, err);
		if (r >= 0)
			r = vm_store_make_durable(fd, NULL, err);
	}
	if (r < 0) {
		/* Without the lock (a copy off btrfs can be big), while the
		 * name is still reserved. */
		vm_store_delete_staged(&m->store, tmp, NULL);
		VM_STORE_LOCK(&m->store);
		vm_store_reserve(&m->store, VM_KIND_VOLUME, name, false);
		return r;
	}
	VM_STORE_LOCK(&m->store);
	vm_store_reserve(&m->store, VM_KIND_VOLUME, name, false);
	if (r >= 0)
		r = vm_store_publish(&m->store, tmp, m->store.pool->volumes_fd, name, err);
	if (r < 0) {
		vm_store_delete_staged(&m->store, tmp, NULL);
		return r;
	}
	rec.subvol_id = id;
	rec.source = *src;
	snprintf(rec.git_url, sizeof(rec.git_url), "%s", cache.git_url);
	vm_store_record_birth(&rec, caller, opts);
	r = vm_store_store_record(&m->store, &rec, err);
	if (r < 0) {
		vm_store_discard_data(&m->store, m->store.pool->volumes_fd, name, NULL);
		return r;
	}
	return 0;
}

/* ---- start-up: a record that lags its checkout ---- */

int vm_mgr_git_catch_up(struct vm_manager *m, int cache_fd, struct vm_record *rec,
			struct vm_error *err)
{
	char commit[64];
	/* A promoted cache's checkout may be below its top. */
	_cleanup_close_ int co = vm_open_path_beneath(cache_fd, rec->checkout, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = co < 0 ? co : vm_git_head_commit(co, commit);
	if (r < 0)
		return vm_error_errno(err, -r, "cannot read the checkout's HEAD");
	if (strcmp(commit, rec->git_commit) == 0)
		return 0;
	/* The update (or promote) swapped the generations and crashed
	 * before its record: the data is the new generation, so the record
	 * follows it (a promote's commit time is not known then). */
	snprintf(rec->git_commit, sizeof(rec->git_commit), "%s", commit);
	rec->commit_time_ns = 0;
	rec->generation++;
	rec->updated_ns = vm_now_ns();
	r = vm_store_store_record(&m->store, rec, err);
	return r < 0 ? r : 1;
}
