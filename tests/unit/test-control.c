/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The control protocol, vm_control_handle(), checked against paired
 * fixture files in FIXTURES/control, with a fake in-memory volume manager
 * behind the ops.
 *
 *   NNN-description.request  first line: who calls and what is passed
 *                            ("uid=N", default 0; "fd": a directory is
 *                            passed along; "job": on the job socket); the
 *                            rest the body, sent byte for byte
 *   NNN-description.reply    the messages the client gets, in order: the
 *                            progress messages, then the reply; a string
 *                            ending in '*' stands for any string that
 *                            starts with what comes before the '*'
 *
 * The pairs run in sorted order against one fake, so that together they
 * tell a story (create, refuse, remove...).  The fake starts with two
 * volumes ("held": every optional field set, mounted; "hidden": in use
 * as far as anyone can tell) and two caches ("proj" imported, "src" from
 * git).  The cases that need more than a request and a reply (no op is
 * called for a refused request, the passed fd is left open, the metrics
 * count by the table's names) are written here.
 *
 * Usage: test-control FIXTURES-DIR */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "unit-util.h"

#include "control.h"
#include "exitcode.h"
#include "json-util.h"

/* ---- the fake volume manager ---- */

#define FAKE_CREATED_NS 1767225600000000000LL /* 2026-01-01T00:00:00Z */
#define FAKE_VOLUMES_MAX 32
#define FAKE_CACHES_MAX 8

struct fake {
	struct vm_volume_info vols[FAKE_VOLUMES_MAX];
	size_t nvols;
	struct vm_cache_info caches[FAKE_CACHES_MAX];
	size_t ncaches;
	unsigned calls;
	const struct vm_caller *caller; /* the caller of the request */
	int fd;                         /* the fd of the request */
	enum vm_control_socket where;   /* the socket it comes in on */
};

static struct vm_volume_info *vol_find(struct fake *f, const char *name)
{
	for (size_t i = 0; i < f->nvols; i++)
		if (strcmp(f->vols[i].name, name) == 0)
			return &f->vols[i];
	return NULL;
}

static struct vm_cache_info *cache_find(struct fake *f, const char *name)
{
	for (size_t i = 0; i < f->ncaches; i++)
		if (strcmp(f->caches[i].name, name) == 0)
			return &f->caches[i];
	return NULL;
}

static struct vm_volume_info *vol_add(struct fake *f, const char *name, uint32_t uid)
{
	assert_true(f->nvols < FAKE_VOLUMES_MAX);
	struct vm_volume_info *v = &f->vols[f->nvols++];
	*v = (struct vm_volume_info){
		.created_ns = FAKE_CREATED_NS,
		.labels = json_object(),
		.creator_uid = uid,
		.creator_pid = 4242,
		.subvol_id = 256 + f->nvols,
		.backend = VM_BACKEND_BTRFS,
		.scanned = true,
	};
	snprintf(v->name, sizeof(v->name), "%s", name);
	assert_true(asprintf(&v->mountpoint, "/pool/volumes/%s", name) > 0);
	v->mounts = calloc(1, sizeof(*v->mounts));
	assert_non_null(v->labels);
	assert_non_null(v->mounts);
	return v;
}

static struct vm_cache_info *cache_add(struct fake *f, const char *name)
{
	assert_true(f->ncaches < FAKE_CACHES_MAX);
	struct vm_cache_info *c = &f->caches[f->ncaches++];
	*c = (struct vm_cache_info){
		.created_ns = FAKE_CREATED_NS,
		.labels = json_object(),
		.subvol_id = 100 + f->ncaches,
		.backend = VM_BACKEND_BTRFS,
	};
	snprintf(c->name, sizeof(c->name), "%s", name);
	assert_non_null(c->labels);
	return c;
}

static void fake_init(struct fake *f)
{
	*f = (struct fake){.fd = -1};
	struct vm_volume_info *v = vol_add(f, "held", 0);
	assert_int_equal(vm_source_parse("cache:src@v1.0", &v->source, NULL), 0);
	json_object_set_new(v->labels, "job", json_string("17"));
	snprintf(v->creator_cgroup, sizeof(v->creator_cgroup), "%s", "0::/system.slice/docker-abc.scope");
	snprintf(v->commit, sizeof(v->commit), "%s", "0123456789abcdef0123456789abcdef01234567");
	v->quota_bytes = 1 << 30;
	v->expires_ns = FAKE_CREATED_NS + 3600000000000LL;
	v->has_usage = true;
	v->usage_referenced = 16384;
	v->usage_exclusive = 4096;
	v->usage_limit = 1 << 30;
	v->mounts[0] = (struct vm_mount_info){.id = "d0c4e5", .since_ns = FAKE_CREATED_NS, .count = 2};
	v->n_mounts = 1;
	v->kernel_mounts = 1;
	v->in_use = true;
	v = vol_add(f, "hidden", 1000);
	v->in_use = true;
	v->in_use_unknown = true;
	struct vm_cache_info *c = cache_add(f, "proj");
	c->no_xattrs = true;
	c = cache_add(f, "src");
	snprintf(c->git_url, sizeof(c->git_url), "%s", "https://example.com/src.git");
	snprintf(c->git_branch, sizeof(c->git_branch), "%s", "main");
	snprintf(c->git_commit, sizeof(c->git_commit), "%s", "89abcdef0123456789abcdef0123456789abcdef");
	c->generation = 3;
	c->updated_ns = FAKE_CREATED_NS + 60000000000LL;
}

static void fake_done(struct fake *f)
{
	for (size_t i = 0; i < f->nvols; i++)
		vm_volume_info_done(&f->vols[i]);
	for (size_t i = 0; i < f->ncaches; i++)
		vm_cache_info_done(&f->caches[i]);
	f->nvols = f->ncaches = 0;
}

/* Every op: the request's own caller and fd reach the manager. */
static struct fake *enter(void *ctx)
{
	struct fake *f = ctx;
	f->calls++;
	return f;
}

static void check_caller(struct fake *f, const struct vm_caller *caller)
{
	if (caller != f->caller)
		fail_msg("the handler passed another caller to the manager");
}

static void fake_progress(const struct vm_create_opts *o)
{
	if (!o->progress)
		return;
	struct vm_copy_progress p = {.files = 2, .bytes = 5, .total_files = 2, .total_bytes = 5,
				     .elapsed_ns = 1000, .done = true};
	o->progress(&p, o->progress_userdata);
}

static void f_pool(void *ctx, struct vm_control_pool *ret)
{
	*ret = (struct vm_control_pool){.path = "/pool", .fstype = "btrfs",
					.backend = VM_BACKEND_BTRFS,
					.volumes_fs_path = "/volumes"};
}

static void f_status(void *ctx, struct vm_manager_status *ret)
{
	enter(ctx);
	*ret = (struct vm_manager_status){
		.pool = "/pool", .fstype = "btrfs", .mount = "/pool",
		.backend = VM_BACKEND_BTRFS, .instant = true,
		.backend_reason = "subvolumes can be made in the pool",
		.copy_io = VM_COPY_IO_URING, .copy_io_reason = "io_uring probe passed",
		.quotas = false, .quotas_reason = "quota accounting is off",
		.quota_accounting = VM_QUOTA_MODE_OFF,
		.copies_reading = 1, .copies_running = 2, .copies_waiting = 3, .copies_max = 4,
	};
}

static int create(struct fake *f, const char *name, const struct vm_source *src,
		  const struct vm_create_opts *o, const struct vm_caller *caller,
		  struct vm_error *err)
{
	check_caller(f, caller);
	int r = vm_name_check("volume", name, err);
	if (r < 0)
		return r;
	if (vol_find(f, name))
		return vm_error_set(err, EEXIST, "volume %s already exists", name);
	if (src->kind == VM_SOURCE_CACHE && !cache_find(f, src->name))
		return vm_error_set(err, ENOENT, "no such cache: %s", src->name);
	if (src->kind == VM_SOURCE_VOLUME && !vol_find(f, src->name))
		return vm_error_set(err, ENOENT, "no such volume: %s", src->name);
	if ((r = vm_labels_check(o->labels, err)) < 0)
		return r;
	if (src->kind != VM_SOURCE_NONE)
		fake_progress(o);
	struct vm_volume_info *v = vol_add(f, name, caller ? caller->uid : 0);
	v->source = *src;
	if (o->labels) {
		json_decref(v->labels);
		v->labels = json_deep_copy(o->labels);
	}
	v->quota_bytes = o->quota_set ? o->quota_bytes : 0;
	v->expires_ns = o->ttl_ns ? FAKE_CREATED_NS + o->ttl_ns : 0;
	return 0;
}

static int f_volume_create(void *ctx, const char *name, const struct vm_create_opts *o,
			   const struct vm_caller *caller, struct vm_error *err)
{
	struct fake *f = enter(ctx);
	if (o->source.kind == VM_SOURCE_PATH)
		fail_msg("a path source by name reached the manager");
	return create(f, name, &o->source, o, caller, err);
}

static int f_volume_create_from_fd(void *ctx, const char *name, int fd, const char *path,
				   const struct vm_create_opts *o,
				   const struct vm_caller *caller, struct vm_create_how *ret_how,
				   struct vm_error *err)
{
	struct fake *f = enter(ctx);
	assert_int_equal(fd, f->fd);
	assert_int_equal(o->source.kind, VM_SOURCE_NONE);
	struct vm_source src = {.kind = VM_SOURCE_PATH};
	snprintf(src.name, sizeof(src.name), "%s", path);
	int r = create(f, name, &src, o, caller, err);
	if (r < 0)
		return r;
	*ret_how = (struct vm_create_how){.method = VM_CREATE_COPY,
					  .stats = {.files = 2, .dirs = 1, .bytes = 5, .xattrs = 1}};
	return 0;
}

static int f_volume_which(void *ctx, int fd, struct vm_volume_place *ret, struct vm_error *err)
{
	struct fake *f = enter(ctx);
	assert_int_equal(fd, f->fd);
	/* the fake's directory is always the top of its newest volume */
	if (f->nvols == 0)
		return vm_error_set(err, ENOENT, "not in a volume");
	*ret = (struct vm_volume_place){.root = true};
	snprintf(ret->volume, sizeof(ret->volume), "%s", f->vols[f->nvols - 1].name);
	return 0;
}

static int f_mount_of_fd(void *ctx, const struct vm_caller *caller, int fd, json_t **ret,
			 struct vm_error *err)
{
	struct fake *f = enter(ctx);
	check_caller(f, caller);
	assert_int_equal(fd, f->fd);
	char root[VM_NAME_MAX + 16];
	snprintf(root, sizeof(root), "/volumes/%s", f->vols[f->nvols - 1].name);
	*ret = json_pack("{s:s, s:s, s:s, s:I}", "target", "/builds/group/project", "root", root,
			 "fstype", "btrfs", "mntns_owner", (json_int_t)0);
	return 0;
}

/* A copy of what the fake holds, as the manager hands it out. */
static void vol_copy(const struct vm_volume_info *v, struct vm_volume_info *ret)
{
	*ret = *v;
	ret->labels = json_deep_copy(v->labels);
	ret->mountpoint = strdup(v->mountpoint);
	ret->mounts = calloc(v->n_mounts + 1, sizeof(*ret->mounts));
	assert_non_null(ret->labels);
	assert_non_null(ret->mountpoint);
	assert_non_null(ret->mounts);
	memcpy(ret->mounts, v->mounts, v->n_mounts * sizeof(*ret->mounts));
}

static int f_volume_get(void *ctx, const char *name, struct vm_volume_info *ret,
			struct vm_error *err)
{
	struct fake *f = enter(ctx);
	int r = vm_name_check("volume", name, err);
	if (r < 0)
		return r;
	struct vm_volume_info *v = vol_find(f, name);
	if (!v)
		return vm_error_set(err, ENOENT, "no such volume: %s", name);
	vol_copy(v, ret);
	return 0;
}

static int cmp_vol(const void *a, const void *b)
{
	return strcmp(((const struct vm_volume_info *)a)->name,
		      ((const struct vm_volume_info *)b)->name);
}

static int cmp_cache(const void *a, const void *b)
{
	return strcmp(((const struct vm_cache_info *)a)->name,
		      ((const struct vm_cache_info *)b)->name);
}

static int f_volume_list(void *ctx, struct vm_volume_info_list *ret, struct vm_error *err)
{
	struct fake *f = enter(ctx);
	struct vm_volume_info_list l = {.items = calloc(f->nvols + 1, sizeof(*l.items))};
	assert_non_null(l.items);
	for (; l.n < f->nvols; l.n++)
		vol_copy(&f->vols[l.n], &l.items[l.n]);
	qsort(l.items, l.n, sizeof(*l.items), cmp_vol); /* sorted, as the manager does */
	*ret = l;
	return 0;
}

static int f_volume_remove(void *ctx, const char *name, const struct vm_caller *caller,
			   struct vm_error *err)
{
	struct fake *f = enter(ctx);
	check_caller(f, caller);
	int r = vm_name_check("volume", name, err);
	if (r < 0)
		return r;
	struct vm_volume_info *v = vol_find(f, name);
	if (!v)
		return vm_error_set(err, ENOENT, "no such volume: %s", name);
	if (caller && caller->uid != 0 && caller->uid != v->creator_uid)
		return vm_error_set(err, EPERM,
				    "volume %s belongs to uid %u: only it or root may remove it",
				    name, v->creator_uid);
	if (v->in_use)
		return vm_error_set(err, EBUSY, "volume %s is in use", name);
	vm_volume_info_done(v);
	*v = f->vols[--f->nvols];
	return 0;
}

/* Root-only ops must never be reached by another caller. */
static void check_root(struct fake *f, const struct vm_caller *caller)
{
	check_caller(f, caller);
	if (caller && caller->uid != 0)
		fail_msg("a root-only operation reached the manager for uid %u", caller->uid);
}

static int f_cache_import(void *ctx, const char *name, int fd, const struct vm_create_opts *o,
			  const struct vm_caller *caller, struct vm_copy_stats *ret_stats,
			  struct vm_error *err)
{
	struct fake *f = enter(ctx);
	check_root(f, caller);
	assert_int_equal(fd, f->fd);
	int r = vm_name_check("cache", name, err);
	if (r < 0)
		return r;
	if (cache_find(f, name))
		return vm_error_set(err, EEXIST, "cache %s already exists", name);
	fake_progress(o);
	cache_add(f, name)->no_xattrs = true;
	*ret_stats = (struct vm_copy_stats){.files = 2, .dirs = 1, .symlinks = 1, .bytes = 5};
	return 0;
}

/* The fake's streams: an export of a cache it holds, an import into a
 * new one named as asked or "streamed". */
static int f_cache_export(void *ctx, const char *name, int out_fd, struct vm_stream_result *ret,
			  struct vm_error *err)
{
	struct fake *f = enter(ctx);
	assert_int_equal(out_fd, f->fd);
	if (!cache_find(f, name))
		return vm_error_set(err, ENOENT, "cache %s not found", name);
	*ret = (struct vm_stream_result){.generation = 1};
	snprintf(ret->cache, sizeof(ret->cache), "%s", name);
	return 0;
}

static int f_cache_import_stream(void *ctx, const char *name, const char *git_url, int in_fd,
				 const struct vm_caller *caller, struct vm_stream_result *ret,
				 struct vm_error *err)
{
	struct fake *f = enter(ctx);
	check_root(f, caller);
	assert_int_equal(in_fd, f->fd);
	if (!name)
		name = "streamed";
	int r = vm_name_check("cache", name, err);
	if (r < 0)
		return r;
	if (cache_find(f, name))
		return vm_error_set(err, EEXIST, "cache %s already exists", name);
	cache_add(f, name);
	*ret = (struct vm_stream_result){.generation = 1, .bytes = 4096, .commands = 9};
	snprintf(ret->cache, sizeof(ret->cache), "%s", name);
	return 0;
}

static int f_cache_create_git(void *ctx, const char *name, const char *url,
			      const char *branch, const struct vm_caller *caller,
			      struct vm_git_result *ret, struct vm_error *err)
{
	struct fake *f = enter(ctx);
	check_root(f, caller);
	int r = vm_name_check("cache", name, err);
	if (r < 0)
		return r;
	if (cache_find(f, name))
		return vm_error_set(err, EEXIST, "cache %s already exists", name);
	struct vm_cache_info *c = cache_add(f, name);
	snprintf(c->git_url, sizeof(c->git_url), "%s", url);
	snprintf(c->git_branch, sizeof(c->git_branch), "%s", branch ? branch : "main");
	snprintf(c->git_commit, sizeof(c->git_commit), "%s", "fedcba9876543210fedcba9876543210fedcba98");
	c->generation = 1;
	c->updated_ns = c->created_ns;
	*ret = (struct vm_git_result){.generation = 1};
	snprintf(ret->name, sizeof(ret->name), "%s", name);
	snprintf(ret->url, sizeof(ret->url), "%s", url);
	snprintf(ret->branch, sizeof(ret->branch), "%s", c->git_branch);
	snprintf(ret->commit, sizeof(ret->commit), "%s", c->git_commit);
	return 0;
}

static int f_cache_update(void *ctx, const char *name, struct vm_git_result *ret,
			  struct vm_error *err)
{
	enter(ctx);
	struct fake *f = ctx;
	int r = vm_name_check("cache", name, err);
	if (r < 0)
		return r;
	struct vm_cache_info *c = cache_find(f, name);
	if (!c)
		return vm_error_set(err, ENOENT, "no such cache: %s", name);
	if (!c->git_url[0])
		return vm_error_set(err, EINVAL, "cache %s is not from git", name);
	*ret = (struct vm_git_result){0};
	snprintf(ret->previous_commit, sizeof(ret->previous_commit), "%s", c->git_commit);
	c->generation++; /* the fake's remote has no new commit */
	ret->generation = c->generation;
	snprintf(ret->name, sizeof(ret->name), "%s", name);
	snprintf(ret->url, sizeof(ret->url), "%s", c->git_url);
	snprintf(ret->branch, sizeof(ret->branch), "%s", c->git_branch);
	snprintf(ret->commit, sizeof(ret->commit), "%s", c->git_commit);
	return 0;
}

/* The fake's promote: the newest volume (as f_volume_which says) into
 * the cache; the same commit keeps it, as does a git cache (refused). */
static int f_cache_promote(void *ctx, int fd, const char *name,
			   const struct vm_promote_opts *o, const struct vm_caller *caller,
			   struct vm_promote_result *ret, struct vm_error *err)
{
	struct fake *f = enter(ctx);
	/* root only on the control socket; anyone on the job socket, where
	 * the manager is told to keep to the volume's own lineage */
	if (f->where == VM_CONTROL_SOCKET_JOB)
		check_caller(f, caller);
	else
		check_root(f, caller);
	assert_true(o->lineage_only == (f->where == VM_CONTROL_SOCKET_JOB));
	assert_int_equal(fd, f->fd);
	if (f->nvols == 0)
		return vm_error_set(err, ENOENT, "not in a volume");
	if (o->lineage_only)
		return vm_error_set(err, EPERM,
				    "on the job socket a volume is promoted only into the cache its seed rule named (volume %s: made by no seed rule)",
				    f->vols[f->nvols - 1].name);
	if (!name)
		return vm_error_set(err, EINVAL, "volume %s was not made by a seed rule: name the cache",
				    f->vols[f->nvols - 1].name);
	int r = vm_name_check("cache", name, err);
	if (r < 0)
		return r;
	*ret = (struct vm_promote_result){.method = VM_CREATE_SNAPSHOT};
	snprintf(ret->cache, sizeof(ret->cache), "%s", name);
	snprintf(ret->volume, sizeof(ret->volume), "%s", f->vols[f->nvols - 1].name);
	snprintf(ret->commit, sizeof(ret->commit), "%s", o->commit ? o->commit : "");
	struct vm_cache_info *c = cache_find(f, name);
	if (c && c->git_url[0])
		return vm_error_set(err, EINVAL, "cache %s is made from git", name);
	if (c && ret->commit[0] && strcmp(c->git_commit, ret->commit) == 0) {
		ret->generation = c->generation;
		snprintf(ret->reason, sizeof(ret->reason), "the cache holds commit %.12s already",
			 ret->commit);
		return 0;
	}
	if (!c) {
		assert_true(f->ncaches < FAKE_CACHES_MAX);
		c = &f->caches[f->ncaches++];
		*c = (struct vm_cache_info){.created_ns = FAKE_CREATED_NS, .labels = json_object(),
					    .backend = VM_BACKEND_BTRFS};
		snprintf(c->name, sizeof(c->name), "%s", name);
	}
	c->generation++;
	c->updated_ns = FAKE_CREATED_NS;
	c->commit_time_ns = o->commit_time_ns;
	snprintf(c->git_commit, sizeof(c->git_commit), "%s", ret->commit);
	snprintf(c->promoted_from, sizeof(c->promoted_from), "%s", ret->volume);
	snprintf(c->checkout, sizeof(c->checkout), "%s", "group/project");
	ret->promoted = true;
	ret->generation = c->generation;
	return 0;
}

static void cache_copy(const struct vm_cache_info *c, struct vm_cache_info *ret)
{
	*ret = *c;
	ret->labels = json_deep_copy(c->labels);
	assert_non_null(ret->labels);
}

static int f_cache_get(void *ctx, const char *name, struct vm_cache_info *ret,
		       struct vm_error *err)
{
	struct fake *f = enter(ctx);
	int r = vm_name_check("cache", name, err);
	if (r < 0)
		return r;
	struct vm_cache_info *c = cache_find(f, name);
	if (!c)
		return vm_error_set(err, ENOENT, "no such cache: %s", name);
	cache_copy(c, ret);
	return 0;
}

static int f_cache_list(void *ctx, struct vm_cache_info_list *ret, struct vm_error *err)
{
	struct fake *f = enter(ctx);
	struct vm_cache_info_list l = {.items = calloc(f->ncaches + 1, sizeof(*l.items))};
	assert_non_null(l.items);
	for (; l.n < f->ncaches; l.n++)
		cache_copy(&f->caches[l.n], &l.items[l.n]);
	qsort(l.items, l.n, sizeof(*l.items), cmp_cache);
	*ret = l;
	return 0;
}

static int f_cache_remove(void *ctx, const char *name, struct vm_error *err)
{
	struct fake *f = enter(ctx);
	check_root(f, f->caller);
	int r = vm_name_check("cache", name, err);
	if (r < 0)
		return r;
	struct vm_cache_info *c = cache_find(f, name);
	if (!c)
		return vm_error_set(err, ENOENT, "no such cache: %s", name);
	vm_cache_info_done(c);
	*c = f->caches[--f->ncaches];
	return 0;
}

/* gc answers with what it was asked, so the fixtures see it. */
/* gc's report: with labels, held (every label asked for) would go and
 * hidden stays in use; without, one removed for two reasons, one whose
 * removal failed, one volume's stale Mounts dropped. */
static int f_gc(void *ctx, bool dry_run, json_t *labels, struct vm_gc_report *ret,
		struct vm_error *err)
{
	struct fake *f = enter(ctx);
	check_root(f, f->caller);
	assert_true(!labels || json_is_object(labels));
	*ret = (struct vm_gc_report){.dry_run = dry_run};
	ret->removed = calloc(1, sizeof(*ret->removed));
	ret->kept = calloc(2, sizeof(*ret->kept));
	assert_non_null(ret->removed);
	assert_non_null(ret->kept);
	if (labels) {
		ret->n_removed = ret->n_kept = 1;
		ret->removed[0] = (struct vm_gc_entry){.name = "held", .reasons = VM_GC_LABELS_MATCH,
						       .has_bytes = true, .bytes = 4096};
		ret->kept[0] = (struct vm_gc_entry){.name = "hidden", .reasons = VM_GC_LABELS_MATCH};
		ret->bytes_freed = 4096; /* what it would free */
		return 0;
	}
	ret->n_removed = 1;
	ret->n_kept = 2;
	ret->removed[0] = (struct vm_gc_entry){.name = "old",
					       .reasons = VM_GC_EXPIRED | VM_GC_CREATOR_GONE,
					       .has_bytes = true, .bytes = 1 << 20};
	ret->kept[0] = (struct vm_gc_entry){.name = "busy", .reasons = VM_GC_CREATOR_GONE};
	ret->kept[1] = (struct vm_gc_entry){.name = "raced", .reasons = VM_GC_EXPIRED,
					    .has_bytes = true, .bytes = 0,
					    .error = "volume raced is in use: mounted 1 time(s)"};
	ret->mounts_dropped = calloc(1, sizeof(*ret->mounts_dropped));
	assert_non_null(ret->mounts_dropped);
	snprintf(ret->mounts_dropped[0], VM_NAME_MAX + 1, "%s", "stale");
	ret->n_mounts_dropped = 1;
	ret->bytes_freed = 1 << 20;
	ret->stale_qgroups_cleared = 2;
	return 0;
}

static const struct vm_control_ops fake_ops = {
	.pool = f_pool,
	.status = f_status,
	.volume_create = f_volume_create,
	.volume_create_from_fd = f_volume_create_from_fd,
	.volume_which = f_volume_which,
	.mount_of_fd = f_mount_of_fd,
	.volume_get = f_volume_get,
	.volume_list = f_volume_list,
	.volume_remove = f_volume_remove,
	.cache_import = f_cache_import,
	.cache_export = f_cache_export,
	.cache_import_stream = f_cache_import_stream,
	.cache_create_git = f_cache_create_git,
	.cache_update = f_cache_update,
	.cache_get = f_cache_get,
	.cache_list = f_cache_list,
	.cache_remove = f_cache_remove,
	.cache_promote = f_cache_promote,
	.gc = f_gc,
};

/* ---- one request ---- */

/* The messages a client gets: the progress messages sent to the sink,
 * then the reply. */
static void collect(void *userdata, json_t *msg)
{
	assert_int_equal(json_array_append(userdata, msg), 0);
}

/* Run one request as caller uid, with a directory passed if with_fd;
 * returns the array of messages. */
static json_t *call(struct fake *f, uint32_t uid, bool with_fd, const char *body, size_t len)
{
	struct vm_caller caller = {.uid = uid, .gid = uid, .pid = 4242, .pidfd = -1};
	_cleanup_close_ int fd = with_fd ? open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	assert_true(!with_fd || fd >= 0);
	f->caller = &caller;
	f->fd = fd;
	json_t *msgs = json_array();
	assert_non_null(msgs);
	struct vm_control_sink sink = {collect, msgs};
	json_t *reply = vm_control_handle(&fake_ops, f, &caller, f->where, body, len, fd, &sink);
	if (!reply)
		fail_msg("no reply");
	/* the handler never closes or keeps the passed fd */
	if (with_fd)
		assert_true(fcntl(fd, F_GETFD) >= 0);
	f->caller = NULL;
	f->fd = -1;
	/* what every reply is: {"ok": true, "result": ...} or {"ok": false,
	 * "error": {"errno", "name", "message"}} */
	json_t *ok = json_object_get(reply, "ok");
	if (json_is_true(ok)) {
		if (json_object_size(reply) != 2 || !json_object_get(reply, "result"))
			fail_msg("bad reply: %s", json_dumps(reply, JSON_COMPACT));
	} else {
		json_t *e = json_object_get(reply, "error");
		int code = (int)json_integer_value(json_object_get(e, "errno"));
		const char *name = json_string_value(json_object_get(e, "name"));
		const char *msg = json_string_value(json_object_get(e, "message"));
		if (!json_is_false(ok) || json_object_size(reply) != 2 || json_object_size(e) != 3 ||
		    code <= 0 || !name || strcmp(name, vm_errno_name(code)) != 0 || !msg || !msg[0])
			fail_msg("bad error reply: %s", json_dumps(reply, JSON_COMPACT));
	}
	json_array_append_new(msgs, reply);
	return msgs;
}

/* ---- the fixture pairs ---- */

static void parse_header(const char *file, char *line, uint32_t *ret_uid, bool *ret_fd,
			 bool *ret_job)
{
	*ret_uid = 0;
	*ret_fd = *ret_job = false;
	for (char *save = NULL, *w = strtok_r(line, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		char *end;
		if (strcmp(w, "fd") == 0)
			*ret_fd = true;
		else if (strcmp(w, "job") == 0)
			*ret_job = true;
		else if (strncmp(w, "uid=", 4) == 0 && w[4] &&
			 (*ret_uid = (uint32_t)strtoul(w + 4, &end, 10), *end == '\0'))
			;
		else
			fail_msg("%s: the first line may say \"uid=N\", \"fd\" and \"job\", not \"%s\"",
				 file, w);
	}
}

/* The expected messages: JSON texts one after the other. */
static json_t *load_expected(const char *file)
{
	size_t len;
	char *text = ut_read_file(file, &len);
	if (!text)
		fail_msg("cannot read %s: %s", file, strerror(errno));
	json_t *all = json_array();
	size_t off = 0;
	for (;;) {
		while (off < len && strchr(" \t\r\n", text[off]))
			off++;
		if (off == len)
			break;
		json_error_t jerr;
		json_t *j = json_loadb(text + off, len - off,
				       JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, &jerr);
		if (!j)
			fail_msg("%s: bad JSON: %s (line %d)", file, jerr.text, jerr.line);
		json_array_append_new(all, j);
		off += jerr.position;
	}
	free(text);
	if (json_array_size(all) == 0)
		fail_msg("%s: no reply", file);
	return all;
}

static void test_pair(void **state)
{
	const struct ut_pair *p = *state;
	size_t rlen;
	char *req = ut_read_file(p->request, &rlen);
	if (!req)
		fail_msg("cannot read %s: %s", p->request, strerror(errno));
	char *nl = memchr(req, '\n', rlen);
	if (!nl)
		fail_msg("%s: no header line", p->request);
	*nl = '\0';
	uint32_t uid;
	bool with_fd, job;
	parse_header(p->request, req, &uid, &with_fd, &job);
	char *body = nl + 1;
	size_t blen = rlen - (size_t)(body - req);

	_cleanup_json_ json_t *want = load_expected(p->reply);
	struct fake *f = p->state;
	f->where = job ? VM_CONTROL_SOCKET_JOB : VM_CONTROL_SOCKET_ADMIN;
	_cleanup_json_ json_t *got = call(f, uid, with_fd, body, blen);
	f->where = VM_CONTROL_SOCKET_ADMIN;
	char where[256] = "";
	if (!ut_json_matches(want, got, where, sizeof(where)))
		fail_msg("%s: %.*s\n  got:      %s\n  expected: %s\n  %s", p->name, (int)blen, body,
			 json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS),
			 json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS), where);
	free(req);
}

/* ---- generated cases ---- */

static int errno_of(json_t *msgs)
{
	json_t *reply = json_array_get(msgs, json_array_size(msgs) - 1);
	return (int)json_integer_value(json_object_get(json_object_get(reply, "error"), "errno"));
}

/* A request refused by the table (authorization, arguments, fd) never
 * reaches the manager. */
static void test_refused_reach_nothing(void **state)
{
	static const struct {
		uint32_t uid;
		const char *body;
		int code;
	} cases[] = {
		{1000, "{\"op\": \"cache.import\", \"args\": {\"name\": \"x\"}}", EPERM},
		{1000, "{\"op\": \"cache.create\", \"args\": {\"name\": \"x\", \"git\": \"https://h/r\"}}", EPERM},
		{1000, "{\"op\": \"cache.update\", \"args\": {\"name\": \"src\"}}", EPERM},
		{1000, "{\"op\": \"cache.remove\", \"args\": {\"name\": \"proj\"}}", EPERM},
		{1000, "{\"op\": \"gc\"}", EPERM},
		{1000, "{\"op\": \"gc\", \"args\": {\"bogus\": 1}}", EPERM},
		{0, "{\"op\": \"cache.import\", \"args\": {\"name\": \"x\"}}", EINVAL},
		{0, "{\"op\": \"volume.which\"}", EINVAL},
		{0, "{\"op\": \"volume.inspect\", \"args\": {\"name\": \"held\", \"x\": 1}}", EINVAL},
		{0, "{\"op\": \"volume.create\", \"args\": {\"name\": \"x\", \"ttl\": 5}}", EINVAL},
		{0, "{\"op\": \"volume.create\", \"args\": {\"name\": \"x\", \"labels\": {\"a\": 1}}}", EINVAL},
		{0, "{\"op\": \"gc\", \"args\": {\"dry_run\": \"yes\"}}", EINVAL},
		{0, "{\"op\": \"ping\", \"args\": {\"a\": null}}", EINVAL},
		{0, "{\"op\": \"nope\"}", EINVAL},
		{0, "{\"op\": \"ping\", \"extra\": 1}", EINVAL},
		{0, "{\"op\": \"ping\"", EINVAL},
	};
	struct fake f;
	fake_init(&f);
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		unsigned calls = f.calls;
		_cleanup_json_ json_t *msgs = call(&f, cases[i].uid, false, cases[i].body,
						   strlen(cases[i].body));
		if (errno_of(msgs) != cases[i].code || f.calls != calls)
			fail_msg("%s as uid %u: errno %d (want %d), %u manager calls", cases[i].body,
				 cases[i].uid, errno_of(msgs), cases[i].code, f.calls - calls);
	}
	fake_done(&f);
}

/* Every op in the table can be reached, by root, and by another caller
 * exactly when it is not root only. */
static void test_every_op(void **state)
{
	static const struct {
		const char *op;
		bool root_only;
	} ops[] = {
		{"ping", false},          {"status", false},       {"volume.create", false},
		{"volume.which", false},  {"volume.list", false},  {"volume.inspect", false},
		{"volume.remove", false}, {"cache.import", true},  {"cache.create", true},
		{"cache.update", true},   {"cache.list", false},   {"cache.inspect", false},
		{"cache.remove", true},   {"gc", true},            {"metrics", false},
	};
	struct fake f;
	fake_init(&f);
	for (size_t i = 0; i < ELEMENTSOF(ops); i++) {
		char body[128];
		snprintf(body, sizeof(body), "{\"op\": \"%s\", \"args\": {\"unknown-arg\": 1}}", ops[i].op);
		_cleanup_json_ json_t *root = call(&f, 0, true, body, strlen(body));
		_cleanup_json_ json_t *user = call(&f, 1000, true, body, strlen(body));
		/* known to the table: refused for its argument, not as unknown */
		const char *msg = json_string_value(json_object_get(
			json_object_get(json_array_get(root, 0), "error"), "message"));
		if (errno_of(root) != EINVAL || !msg || !strstr(msg, "unknown argument"))
			fail_msg("%s: %s", ops[i].op, msg ? msg : "(no message)");
		if (errno_of(user) != (ops[i].root_only ? EPERM : EINVAL))
			fail_msg("%s as uid 1000: errno %d", ops[i].op, errno_of(user));
	}
	fake_done(&f);
}

/* Progress goes to the sink only when asked for, and a NULL sink is
 * fine. */
static void test_progress(void **state)
{
	struct fake f;
	fake_init(&f);
	static const char quiet[] = "{\"op\": \"volume.create\", \"args\": {\"name\": \"aa\", \"source\": \"cache:proj\"}}";
	_cleanup_json_ json_t *m1 = call(&f, 0, false, quiet, sizeof(quiet) - 1);
	assert_int_equal(json_array_size(m1), 1);
	assert_true(json_is_true(json_object_get(json_array_get(m1, 0), "ok")));

	static const char loud[] = "{\"op\": \"volume.create\", \"args\": {\"name\": \"bb\", \"source\": \"cache:proj\"}, \"progress\": true}";
	_cleanup_json_ json_t *m2 = call(&f, 0, false, loud, sizeof(loud) - 1);
	assert_int_equal(json_array_size(m2), 2);
	assert_non_null(json_object_get(json_array_get(m2, 0), "progress"));

	struct vm_caller root = {.pidfd = -1};
	f.caller = &root;
	static const char loud2[] = "{\"op\": \"volume.create\", \"args\": {\"name\": \"cc\", \"source\": \"cache:proj\"}, \"progress\": true}";
	_cleanup_json_ json_t *r = vm_control_handle(&fake_ops, &f, &root, VM_CONTROL_SOCKET_ADMIN,
						     loud2, sizeof(loud2) - 1, -1, NULL);
	assert_true(json_is_true(json_object_get(r, "ok")));
	fake_done(&f);
}

/* The request counters use the table's names: an unknown op is counted
 * as "unknown", never under the name it gave. */
static void test_metrics_names(void **state)
{
	struct fake f;
	fake_init(&f);
	static const char unknown[] = "{\"op\": \"no-such-op-xyz\"}";
	json_decref(call(&f, 0, false, unknown, sizeof(unknown) - 1));
	static const char refused[] = "{\"op\": \"gc\"}";
	json_decref(call(&f, 1000, false, refused, sizeof(refused) - 1));
	static const char metrics[] = "{\"op\": \"metrics\"}";
	_cleanup_json_ json_t *m = call(&f, 0, false, metrics, sizeof(metrics) - 1);
	const char *text = json_string_value(json_object_get(json_array_get(m, 0), "result"));
	assert_non_null(text);
	assert_null(strstr(text, "no-such-op-xyz"));
	assert_non_null(strstr(text, "{socket=\"control\",request=\"unknown\",result=\"EINVAL\"}"));
	assert_non_null(strstr(text, "{socket=\"control\",request=\"gc\",result=\"EPERM\"}"));
	/* the fake's volumes: two in use, 4096/16384 bytes of quota usage */
	assert_non_null(strstr(text, "\nvolmgr_volumes 2\n"));
	assert_non_null(strstr(text, "\nvolmgr_volumes_in_use 2\n"));
	assert_non_null(strstr(text, "\nvolmgr_caches 2\n"));
	assert_non_null(strstr(text, "volmgr_volume_bytes{kind=\"exclusive\"} 4096\n"));
	assert_non_null(strstr(text, "volmgr_volume_bytes{kind=\"referenced\"} 16384\n"));
	fake_done(&f);
}

/* Hostile bodies: always a reply of the right shape (call() checks it). */
static void test_hostile_bodies(void **state)
{
	static const char *const bodies[] = {
		"", " ", "null", "{}", "[]", "1", "\"x\"", "true", "{", "}", "{\"op\"",
		"{\"op\": null}", "{\"op\": 1}", "{\"op\": \"\"}", "{\"op\": \"ping\", \"args\": 1}",
		"{\"op\": \"ping\", \"progress\": \"yes\"}", "{\"op\": \"ping\", \"op\": \"ping\"}",
		"{\"op\": \"volume.inspect\", \"args\": {\"name\": \"\\u0000\"}}",
		"{\"op\": \"volume.inspect\", \"args\": {\"name\": \"a\xff\"}}",
		"{\"op\": \"volume.inspect\", \"args\": {\"name\": \"../x\"}}",
		"{\"op\": \"volume.create\", \"args\": {\"name\": \"x\", \"labels\": []}}",
		"{\"op\": \"volume.create\", \"args\": {\"name\": \"x\", \"source\": \"path:/etc\"}}",
		"{\"op\": \"volume.create\", \"args\": {\"name\": \"x\", \"quota\": \"-1\"}}",
		"{\"op\": \"gc\", \"args\": {\"labels\": {\"k\": {}}}}",
		"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
		"\xef\xbb\xbf{\"op\": \"ping\"}",
	};
	struct fake f;
	fake_init(&f);
	for (size_t i = 0; i < ELEMENTSOF(bodies); i++)
		for (uint32_t uid = 0; uid <= 1000; uid += 1000) {
			json_decref(call(&f, uid, false, bodies[i], strlen(bodies[i])));
			json_decref(call(&f, uid, true, bodies[i], strlen(bodies[i])));
		}
	/* the length counts, not a NUL: bytes past it are not read */
	static const char past[] = "{\"op\": \"ping\"}garbage";
	_cleanup_json_ json_t *m = call(&f, 0, false, past, sizeof(past) - 1 - 7);
	assert_true(json_is_true(json_object_get(json_array_get(m, 0), "ok")));
	fake_done(&f);
}

int main(int argc, char **argv)
{
	const char *dir = ut_fixtures_dir(argc, argv, "control");
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_refused_reach_nothing),
		cmocka_unit_test(test_every_op),
		cmocka_unit_test(test_progress),
		cmocka_unit_test(test_metrics_names),
		cmocka_unit_test(test_hostile_bodies),
	};
	struct fake story;
	fake_init(&story);
	int failed = ut_run_pairs("control", dir, 40, test_pair, &story, fixed, ELEMENTSOF(fixed));
	fake_done(&story);
	free((char *)dir);
	return failed;
}
