/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Opening the manager on a pool, its status, and reading volumes and
 * caches (get, list).  The operations are in the files named in
 * manager-private.h. */
#include "manager.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fault.h"
#include "metrics.h"

#include "manager-private.h"

const struct vm_pool *vm_manager_pool(const struct vm_manager *m)
{
	return m->store.pool;
}

const struct vm_backend *vm_manager_backend(const struct vm_manager *m)
{
	return &m->store.backend;
}

void vm_manager_status(struct vm_manager *m, struct vm_manager_status *ret)
{
	const struct vm_backend *b = &m->store.backend;
	*ret = (struct vm_manager_status){
		.pool = m->store.pool->path,
		.fstype = m->store.pool->fstype,
		.mount = m->store.pool->mount_target,
		.backend = b->kind,
		.backend_forced = b->forced,
		.instant = vm_backend_is_instant(b),
		.backend_reason = b->why,
		.copy_io = b->io,
		.copy_io_reason = b->io_why,
		.quotas = m->store.quotas,
		.quotas_reason = m->store.quotas ? NULL : m->store.quota_error.msg,
		/* simple: limits cover subvolumes made inside a volume */
		.quota_accounting = m->store.vq.mode,
		.copies_max = VM_STORE_COPIES_MAX,
	};
	VM_STORE_LOCK(&m->store);
	ret->copies_reading = vm_readers_count(&m->store.readers);
	ret->copies_running = m->store.copies_running;
	ret->copies_waiting = m->store.copies_waiting;
}

const char *vm_manager_proc(const struct vm_manager *m)
{
	return m->proc;
}

const char *vm_manager_volumes_fs_path(const struct vm_manager *m)
{
	return m->vol_prefix;
}

int vm_manager_new(struct vm_pool *pool, const struct vm_manager_config *cfg,
		   struct vm_manager **ret, struct vm_error *err)
{
	struct vm_manager *m = calloc(1, sizeof(*m));
	if (!m) {
		vm_pool_free(pool);
		return vm_error_set(err, ENOMEM, "out of memory");
	}
	int r = vm_store_init(&m->store, pool, cfg ? cfg->log : NULL,
			      cfg ? cfg->log_userdata : NULL, err);
	if (r < 0) {
		vm_manager_free(m);
		return r;
	}
	m->proc = strdup(cfg && cfg->proc ? cfg->proc : "/proc");
	if (cfg && cfg->config)
		m->config = *cfg->config;
	else
		vm_config_init(&m->config);
	m->store.quota_default = m->config.quota_default;
	snprintf(m->driver, sizeof(m->driver), "%s", cfg && cfg->driver ? cfg->driver : "volmgr");
	if (cfg && cfg->backend) {
		m->store.backend = *cfg->backend;
	} else if ((r = vm_backend_choose(pool->staging_fd, m->config.pool_backend,
					  m->config.copy_io, &m->store.backend, err)) < 0) {
		vm_manager_free(m);
		return r;
	}
	/* Quotas are btrfs qgroups on subvolumes: no other backend has
	 * them, and a default limit there would be a promise not kept. */
	if (m->store.backend.kind != VM_BACKEND_BTRFS && m->config.quota_default) {
		vm_manager_free(m);
		return vm_error_set(err, EOPNOTSUPP,
				    "[quota] default needs the btrfs backend, and this pool uses %s: quotas are btrfs qgroups",
				    vm_backend_name(m->store.backend.kind));
	}
	/* Quota accounting: turned on (and counted) once; a failure only
	 * disables quotas, and says why when one is asked for. */
	if (m->store.backend.kind != VM_BACKEND_BTRFS) {
		vm_error_set(&m->store.quota_error, EOPNOTSUPP,
			     "quotas are btrfs qgroups, and this pool's backend is %s",
			     vm_backend_name(m->store.backend.kind));
	} else {
		char note[512];
		if (vm_volquota_init(&m->store.vq, pool->fd, pool->volumes_fd, m->config.quota_accounting,
				     &m->store.quota_error, note, sizeof(note)) < 0) {
			vm_manager_free(m);
			return vm_error_set(err, ENOMEM, "out of memory");
		}
		m->store.quotas = m->store.vq.mode != VM_QUOTA_MODE_OFF;
		if (note[0])
			vm_store_log(&m->store, "%s", note);
	}
	/* A missing git user only disables caches from git; say why then. */
	vm_git_init(&m->git, m->config.git_command, m->config.git_user,
		    m->config.git_timeout, &m->git_error);
	const char *root = pool->fs_root;
	bool slash = root[0] && root[strlen(root) - 1] == '/';
	if (!m->proc ||
	    asprintf(&m->vol_prefix, "%s%svolumes", root, slash ? "" : "/") < 0 ||
	    asprintf(&m->vol_path, "%s/volumes", pool->path) < 0) {
		vm_manager_free(m);
		return vm_error_set(err, ENOMEM, "out of memory");
	}
	m->repair = cfg ? cfg->repair : NULL;
	if (m->config.quota_accounting && !m->store.quotas &&
	    m->store.backend.kind == VM_BACKEND_BTRFS)
		vm_log_to(m->repair, m->store.log_userdata, "quotas are unavailable: %s",
			  m->store.quota_error.msg);
	r = vm_mgr_repair(m, err);
	if (r < 0) {
		vm_manager_free(m);
		return r;
	}
	/* Simple quotas: subvolumes a job makes with a qgroup of its own
	 * choosing are put back into their volume's. */
	vm_volquota_watch(&m->store.vq, VM_VOLQUOTA_INTERVAL_MS, m->store.log, m->store.log_userdata);
	*ret = m;
	return 0;
}

void vm_manager_free(struct vm_manager *m)
{
	if (!m)
		return;
	vm_store_done(&m->store);
	free(m->proc);
	free(m->vol_prefix);
	free(m->vol_path);
	vm_git_done(&m->git);
	free(m);
}

/* The kernel's mounts and the engines' recorded Mounts: either makes the
 * volume in use.  counts: the scan of the machine's mounts, or NULL. */
static int volume_info(struct vm_manager *m, const struct vm_record *rec,
		       json_t *counts, struct vm_volume_info *ret)
{
	_cleanup_(vm_volume_info_done) struct vm_volume_info v = {
		.source = rec->source,
		.created_ns = rec->created_ns,
		.labels = json_incref(rec->labels),
		.creator_uid = rec->creator_uid,
		.creator_pid = rec->creator_pid,
		.subvol_id = rec->subvol_id,
		.backend = m->store.backend.kind,
		.quota_bytes = rec->quota_bytes,
		.expires_ns = rec->expires_ns,
		.remove_refused_ns = rec->remove_refused_ns,
	};
	snprintf(v.name, sizeof(v.name), "%s", rec->name);
	snprintf(v.creator_cgroup, sizeof(v.creator_cgroup), "%s", rec->creator_cgroup);
	snprintf(v.creator_engine, sizeof(v.creator_engine), "%s", rec->creator_engine);
	snprintf(v.commit, sizeof(v.commit), "%s", rec->git_commit);
	snprintf(v.seed_rule, sizeof(v.seed_rule), "%s", rec->seed_rule);
	snprintf(v.seed_cache, sizeof(v.seed_cache), "%s", rec->seed_cache);
	v.mountpoint = vm_store_volume_path(&m->store, rec->name);
	size_t n = json_object_size(rec->mounts);
	v.mounts = calloc(n ? n : 1, sizeof(*v.mounts));
	if (!v.labels || !v.mountpoint || !v.mounts)
		return -ENOMEM;
	const char *id;
	json_t *mt;
	json_object_foreach(rec->mounts, id, mt) {
		struct vm_mount_info *e = &v.mounts[v.n_mounts++];
		snprintf(e->id, sizeof(e->id), "%s", id);
		e->since_ns = json_integer_value(json_object_get(mt, "since"));
		e->count = vm_record_mount_count(mt);
	}
	uint64_t referenced, exclusive, limit;
	if (m->store.quotas && rec->subvol_id &&
	    vm_volquota_usage(&m->store.vq, rec->subvol_id, &referenced, &exclusive, &limit, NULL) == 0) {
		v.has_usage = true;
		v.usage_referenced = referenced;
		v.usage_exclusive = exclusive;
		v.usage_limit = limit;
	}
	/* "" is no volume name: it counts processes whose mounts could not
	 * be read, and then nobody can say "not in use". */
	json_int_t unread = json_integer_value(json_object_get(counts, ""));
	v.scanned = counts != NULL;
	v.kernel_mounts = json_integer_value(json_object_get(counts, rec->name));
	v.in_use_unknown = unread > 0;
	v.in_use = v.kernel_mounts > 0 || n > 0 || v.in_use_unknown;
	*ret = v;
	v = (struct vm_volume_info){0};
	return 0;
}

/* What an inspect's sweep may change before it answers (the watcher
 * thread goes on with the rest). */
#define VM_SWEEP_REQUEST_BUDGET 1024

int vm_volume_get(struct vm_manager *m, const char *name, bool with_usage,
		  struct vm_volume_info *ret, struct vm_error *err)
{
	int r = vm_name_check("volume", name, err);
	if (r < 0)
		return r;
	/* Usage counts the subvolumes made inside up to now (inspect only:
	 * the engines' Get must not wait on a sweep). */
	if (with_usage)
		vm_volquota_sweep_bounded(&m->store.vq, false, VM_SWEEP_REQUEST_BUDGET, NULL, NULL, NULL);
	_cleanup_json_ json_t *counts = NULL;
	/* Tests hold an inspect here, in its scan, to show that nothing else
	 * waits for it. */
	VM_FAULT_PAUSE("inspect.scan");
	if (with_usage && (r = vm_mgr_inuse_counts(m, &counts, err)) < 0)
		return r;
	VM_STORE_LOCK(&m->store);
	_cleanup_record_ struct vm_record rec = {0};
	r = vm_store_load_ready(&m->store, VM_KIND_VOLUME, name, &rec, err);
	if (r < 0)
		return r;
	if (volume_info(m, &rec, counts, ret) < 0)
		return vm_error_set(err, ENOMEM, "out of memory");
	return 0;
}

static void cache_info(struct vm_manager *m, const struct vm_record *rec,
		       struct vm_cache_info *ret)
{
	*ret = (struct vm_cache_info){
		.created_ns = rec->created_ns,
		.labels = json_incref(rec->labels),
		.subvol_id = rec->subvol_id,
		.backend = m->store.backend.kind,
		.no_xattrs = rec->no_xattrs,
	};
	snprintf(ret->name, sizeof(ret->name), "%s", rec->name);
	if (rec->git_url[0] || rec->promoted_from[0]) {
		snprintf(ret->git_url, sizeof(ret->git_url), "%s", rec->git_url);
		snprintf(ret->git_branch, sizeof(ret->git_branch), "%s", rec->git_branch);
		snprintf(ret->git_commit, sizeof(ret->git_commit), "%s", rec->git_commit);
		ret->generation = rec->generation;
		ret->updated_ns = rec->updated_ns;
	}
	snprintf(ret->promoted_from, sizeof(ret->promoted_from), "%s", rec->promoted_from);
	snprintf(ret->checkout, sizeof(ret->checkout), "%s", rec->checkout);
	ret->commit_time_ns = rec->commit_time_ns;
	ret->last_used_ns = vm_store_cache_last_used(&m->store, rec);
	ret->has_size = rec->size_generation && rec->size_generation == rec->generation;
	ret->size_bytes = rec->size_bytes;
}

static int cmp_volume_info(const void *a, const void *b)
{
	return strcmp(((const struct vm_volume_info *)a)->name,
		      ((const struct vm_volume_info *)b)->name);
}

static int cmp_cache_info(const void *a, const void *b)
{
	return strcmp(((const struct vm_cache_info *)a)->name,
		      ((const struct vm_cache_info *)b)->name);
}

/* Under the lock: the ready records of kind k, as infos (volumes with
 * counts, the scan of the machine's mounts or NULL), sorted by name. */
static int list_kind(struct vm_manager *m, enum vm_kind k, json_t *counts,
		     struct vm_volume_info_list *ret_volumes,
		     struct vm_cache_info_list *ret_caches, struct vm_error *err)
{
	DIR *d = vm_opendir_at(vm_store_meta_fd(&m->store, k));
	if (!d)
		return vm_error_errno(err, errno, "cannot read the records");
	_cleanup_(vm_volume_info_list_done) struct vm_volume_info_list vols = {0};
	_cleanup_(vm_cache_info_list_done) struct vm_cache_info_list caches = {0};
	size_t cap = 0;
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		char name[VM_NAME_MAX + 1];
		if (!vm_store_record_name(de->d_name, name))
			continue;
		_cleanup_record_ struct vm_record rec = {0};
		if (vm_store_load_record(&m->store, k, name, &rec, NULL) < 0 ||
		    rec.state != VM_STATE_READY)
			continue;
		if (k == VM_KIND_VOLUME) {
			struct vm_volume_info *v = vm_grow((void **)&vols.items, vols.n, &cap,
							sizeof(*vols.items));
			if (!v || (r = volume_info(m, &rec, counts, v)) < 0) {
				r = -ENOMEM;
				break;
			}
			vols.n++;
		} else {
			struct vm_cache_info *c = vm_grow((void **)&caches.items, caches.n, &cap,
						       sizeof(*caches.items));
			if (!c) {
				r = -ENOMEM;
				break;
			}
			cache_info(m, &rec, c);
			caches.n++;
		}
	}
	closedir(d);
	if (r < 0)
		return vm_error_set(err, ENOMEM, "out of memory");
	/* readdir order is arbitrary: sort by name for stable output (an
	 * empty list has no array, and qsort must not get NULL). */
	if (ret_volumes) {
		if (vols.n > 1)
			qsort(vols.items, vols.n, sizeof(*vols.items), cmp_volume_info);
		*ret_volumes = vols;
		vols = (struct vm_volume_info_list){0};
	}
	if (ret_caches) {
		if (caches.n > 1)
			qsort(caches.items, caches.n, sizeof(*caches.items), cmp_cache_info);
		*ret_caches = caches;
		caches = (struct vm_cache_info_list){0};
	}
	return 0;
}

int vm_volume_list(struct vm_manager *m, bool with_usage,
		   struct vm_volume_info_list *ret, struct vm_error *err)
{
	_cleanup_json_ json_t *counts = NULL;
	int r = with_usage ? vm_mgr_inuse_counts(m, &counts, err) : 0;
	if (r < 0)
		return r;
	VM_STORE_LOCK(&m->store);
	return list_kind(m, VM_KIND_VOLUME, counts, ret, NULL, err);
}

int vm_cache_list(struct vm_manager *m, struct vm_cache_info_list *ret,
		  struct vm_error *err)
{
	VM_STORE_LOCK(&m->store);
	return list_kind(m, VM_KIND_CACHE, NULL, NULL, ret, err);
}

int vm_cache_get(struct vm_manager *m, const char *name, struct vm_cache_info *ret,
		 struct vm_error *err)
{
	int r = vm_name_check("cache", name, err);
	if (r < 0)
		return r;
	_cleanup_(vm_cache_info_list_done) struct vm_cache_info_list all = {0};
	r = vm_cache_list(m, &all, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < all.n; i++)
		if (strcmp(all.items[i].name, name) == 0) {
			*ret = all.items[i];
			/* the list lets go of it */
			all.items[i].labels = NULL;
			return 0;
		}
	return vm_error_set(err, ENOENT, "no such cache: %s", name);
}
