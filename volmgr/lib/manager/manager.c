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

int vm_manager_status(struct vm_manager *m, json_t **ret, struct vm_error *err)
{
	const struct vm_backend *b = &m->store.backend;
	size_t reading;
	unsigned running, waiting;
	{
		VM_STORE_LOCK(&m->store);
		reading = vm_readers_count(&m->store.readers);
		running = m->store.copies_running;
		waiting = m->store.copies_waiting;
	}
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s, s:b, s:I}",
			      "version", VOLMGR_VERSION, "pool", m->store.pool->path,
			      "fstype", m->store.pool->fstype, "mount", m->store.pool->mount_target,
			      "backend", vm_backend_name(b->kind),
			      "backend_chosen", b->forced ? "forced" : "probed",
			      "instant", vm_backend_is_instant(b),
			      "backend_reason", b->why,
			      "copy_io", vm_copy_io_name(b->io),
			      "copy_io_reason", b->io_why, "quotas", m->store.quotas,
			      "copies_reading", (json_int_t)reading);
	if (!j)
		return vm_error_set(err, ENOMEM, "out of memory");
	if (!m->store.quotas)
		json_object_set_new(j, "quotas_reason", json_string(m->store.quota_error.msg));
	json_object_set_new(j, "copies", json_pack("{s:I, s:I, s:I}", "running", (json_int_t)running,
						   "waiting", (json_int_t)waiting, "max",
						   (json_int_t)VM_STORE_COPIES_MAX));
	/* simple: limits cover subvolumes made inside a volume; full: not. */
	json_object_set_new(j, "quota_accounting", json_string(vm_quota_mode_name(m->store.vq.mode)));
	*ret = j;
	return 0;
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
		   struct vm_manager **ret, json_t **ret_report,
		   struct vm_error *err)
{
	struct vm_manager *m = calloc(1, sizeof(*m));
	if (!m) {
		vm_pool_free(pool);
		return vm_error_set(err, ENOMEM, "out of memory");
	}
	int r = vm_store_init(&m->store, pool, NULL, cfg ? cfg->log : NULL,
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
	json_t *report = json_array();
	if (!report) {
		vm_manager_free(m);
		return vm_error_set(err, ENOMEM, "out of memory");
	}
	if (m->config.quota_accounting && !m->store.quotas && m->store.backend.kind == VM_BACKEND_BTRFS)
		json_array_append_new(report, json_sprintf("quotas are unavailable: %s",
							   m->store.quota_error.msg));
	r = vm_mgr_repair(m, report, err);
	if (r < 0) {
		json_decref(report);
		vm_manager_free(m);
		return r;
	}
	if (ret_report)
		*ret_report = report;
	else
		json_decref(report);
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
 * volume in use. */
static json_t *volume_info(struct vm_manager *m, const struct vm_record *rec,
			   json_t *counts)
{
	json_int_t kernel = json_integer_value(json_object_get(counts, rec->name));
	json_t *mounts = json_array();
	const char *id;
	json_t *mt;
	json_object_foreach(rec->mounts, id, mt) {
		char t[40];
		vm_format_time(json_integer_value(json_object_get(mt, "since")), t);
		json_array_append_new(mounts, json_pack("{s:s, s:s, s:I}", "id", id, "since", t,
							"count", vm_record_mount_count(mt)));
	}
	char created[40], src[VM_SOURCE_STR_MAX];
	vm_format_time(rec->created_ns, created);
	vm_source_format(&rec->source, src);
	_cleanup_free_ char *path = vm_store_volume_path(&m->store, rec->name);
	json_t *info = json_pack("{s:s, s:s, s:s, s:I, s:O, s:s, s:o, s:{s:I, s:I}, s:I}",
				 "name", rec->name, "source", src, "created", created,
				 "created_ns", (json_int_t)rec->created_ns,
				 "labels", rec->labels, "mountpoint", path ? path : "",
				 "mounts", mounts,
				 "creator", "uid", (json_int_t)rec->creator_uid,
				 "pid", (json_int_t)rec->creator_pid,
				 "subvol_id", (json_int_t)rec->subvol_id);
	/* The pool's backend made it (a subvolume or a directory). */
	if (info)
		json_object_set_new(info, "backend", json_string(vm_backend_name(m->store.backend.kind)));
	if (info && rec->git_commit[0])
		json_object_set_new(info, "commit", json_string(rec->git_commit));
	if (info && rec->quota_bytes)
		json_object_set_new(info, "quota", json_integer((json_int_t)rec->quota_bytes));
	if (info && rec->expires_ns) {
		char t[40];
		vm_format_time(rec->expires_ns, t);
		json_object_set_new(info, "expires", json_string(t));
	}
	uint64_t referenced, exclusive, limit;
	if (info && m->store.quotas && rec->subvol_id &&
	    vm_volquota_usage(&m->store.vq, rec->subvol_id, &referenced, &exclusive, &limit, NULL) == 0)
		json_object_set_new(info, "usage",
				    json_pack("{s:I, s:I, s:I}", "referenced", (json_int_t)referenced,
					      "exclusive", (json_int_t)exclusive,
					      "limit", (json_int_t)limit));
	if (info && rec->creator_cgroup[0])
		json_object_set_new(json_object_get(info, "creator"), "cgroup",
				    json_string(rec->creator_cgroup));
	if (info) {
		/* "" is no volume name: it counts processes whose mounts could
		 * not be read, and then nobody can say "not in use". */
		json_int_t unread = json_integer_value(json_object_get(counts, ""));
		bool recorded = json_object_size(rec->mounts) > 0;
		json_object_set_new(info, "in_use", json_boolean(kernel > 0 || recorded || unread > 0));
		if (counts)
			json_object_set_new(info, "kernel_mounts", json_integer(kernel));
		if (unread > 0)
			json_object_set_new(info, "in_use_unknown", json_true());
	}
	return info;
}

/* What an inspect's sweep may change before it answers (the watcher
 * thread goes on with the rest). */
#define VM_SWEEP_REQUEST_BUDGET 1024

int vm_volume_get(struct vm_manager *m, const char *name, bool with_usage,
		  json_t **ret, struct vm_error *err)
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
	json_t *info = volume_info(m, &rec, counts);
	if (!info)
		return vm_error_set(err, ENOMEM, "out of memory");
	*ret = info;
	return 0;
}

static int list_kind(struct vm_manager *m, enum vm_kind k, json_t *counts,
		     json_t **ret, struct vm_error *err)
{
	DIR *d = vm_opendir_at(vm_store_meta_fd(&m->store, k));
	if (!d)
		return vm_error_errno(err, errno, "cannot read the records");
	json_t *out = json_array();
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (de->d_name[0] == '.' || l < 6 || l - 5 > VM_NAME_MAX ||
		    strcmp(de->d_name + l - 5, ".json") != 0)
			continue;
		char name[VM_NAME_MAX + 1];
		memcpy(name, de->d_name, l - 5);
		name[l - 5] = '\0';
		_cleanup_record_ struct vm_record rec = {0};
		if (vm_store_load_record(&m->store, k, name, &rec, NULL) < 0 ||
		    rec.state != VM_STATE_READY)
			continue;
		json_t *info;
		if (k == VM_KIND_VOLUME) {
			info = volume_info(m, &rec, counts);
		} else {
			char created[40];
			vm_format_time(rec.created_ns, created);
			info = json_pack("{s:s, s:s, s:I, s:O, s:I}", "name", rec.name,
					 "created", created, "created_ns",
					 (json_int_t)rec.created_ns, "labels", rec.labels,
					 "subvol_id", (json_int_t)rec.subvol_id);
			if (info) {
				json_object_set_new(info, "backend",
						    json_string(vm_backend_name(m->store.backend.kind)));
				json_object_set_new(info, "no_xattrs", json_boolean(rec.no_xattrs));
			}
			if (info && rec.git_url[0]) {
				char updated[40];
				vm_format_time(rec.updated_ns, updated);
				json_object_set_new(info, "git",
						    json_pack("{s:s, s:s, s:s}", "url", rec.git_url,
							      "branch", rec.git_branch,
							      "commit", rec.git_commit));
				json_object_set_new(info, "generation",
						    json_integer((json_int_t)rec.generation));
				json_object_set_new(info, "updated", json_string(updated));
			}
		}
		json_array_append_new(out, info);
	}
	closedir(d);
	/* readdir order is arbitrary: sort by name for stable output. */
	size_t n = json_array_size(out);
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0; j--) {
			json_t *a = json_array_get(out, j - 1), *b = json_array_get(out, j);
			if (strcmp(json_string_value(json_object_get(a, "name")),
				   json_string_value(json_object_get(b, "name"))) <= 0)
				break;
			json_incref(a);
			json_array_set(out, j - 1, b);
			json_array_set_new(out, j, a);
		}
	*ret = out;
	return 0;
}

int vm_volume_list(struct vm_manager *m, bool with_usage, json_t **ret,
		   struct vm_error *err)
{
	_cleanup_json_ json_t *counts = NULL;
	int r = with_usage ? vm_mgr_inuse_counts(m, &counts, err) : 0;
	if (r < 0)
		return r;
	VM_STORE_LOCK(&m->store);
	return list_kind(m, VM_KIND_VOLUME, counts, ret, err);
}

int vm_cache_list(struct vm_manager *m, json_t **ret, struct vm_error *err)
{
	VM_STORE_LOCK(&m->store);
	return list_kind(m, VM_KIND_CACHE, NULL, ret, err);
}

int vm_cache_get(struct vm_manager *m, const char *name, json_t **ret,
		 struct vm_error *err)
{
	int r = vm_name_check("cache", name, err);
	if (r < 0)
		return r;
	_cleanup_json_ json_t *all = NULL;
	r = vm_cache_list(m, &all, err);
	if (r < 0)
		return r;
	size_t i;
	json_t *c;
	json_array_foreach(all, i, c) {
		if (strcmp(json_string_value(json_object_get(c, "name")), name) == 0) {
			*ret = json_incref(c);
			return 0;
		}
	}
	return vm_error_set(err, ENOENT, "no such cache: %s", name);
}
