/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "manager.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "btrfs.h"
#include "copy.h"
#include "engines.h"
#include "fault.h"
#include "holders.h"
#include "inuse.h"
#include "metrics.h"
#include "treecount.h"

#include "manager-private.h"

void vm_unlockp(struct vm_locked *l)
{
	if (l->m)
		pthread_mutex_unlock(l->m);
}

const struct vm_pool *vm_manager_pool(const struct vm_manager *m)
{
	return m->pool;
}

const struct vm_backend *vm_manager_backend(const struct vm_manager *m)
{
	return &m->backend;
}

int vm_manager_status(struct vm_manager *m, json_t **ret, struct vm_error *err)
{
	const struct vm_backend *b = &m->backend;
	size_t reading;
	unsigned running, waiting;
	{
		LOCK_GUARD(m);
		reading = vm_readers_count(&m->readers);
		running = m->copies_running;
		waiting = m->copies_waiting;
	}
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s, s:b, s:I}",
			      "version", VOLMGR_VERSION, "pool", m->pool->path,
			      "fstype", m->pool->fstype, "mount", m->pool->mount_target,
			      "backend", vm_backend_name(b->kind),
			      "backend_chosen", b->forced ? "forced" : "probed",
			      "instant", vm_backend_is_instant(b),
			      "backend_reason", b->why,
			      "copy_io", vm_copy_io_name(b->io),
			      "copy_io_reason", b->io_why, "quotas", m->quotas,
			      "copies_reading", (json_int_t)reading);
	if (!j)
		return vm_error_set(err, ENOMEM, "out of memory");
	if (!m->quotas)
		json_object_set_new(j, "quotas_reason", json_string(m->quota_error.msg));
	json_object_set_new(j, "copies", json_pack("{s:I, s:I, s:I}", "running", (json_int_t)running,
						   "waiting", (json_int_t)waiting, "max",
						   (json_int_t)VM_MGR_COPIES_MAX));
	/* simple: limits cover subvolumes made inside a volume; full: not. */
	json_object_set_new(j, "quota_accounting", json_string(vm_quota_mode_name(m->vq.mode)));
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

int vm_mgr_data_fd(struct vm_manager *m, enum vm_kind k)
{
	return k == VM_KIND_CACHE ? m->pool->caches_fd : m->pool->volumes_fd;
}

int vm_mgr_meta_fd(struct vm_manager *m, enum vm_kind k)
{
	return k == VM_KIND_CACHE ? m->pool->cache_meta_fd : m->pool->vol_meta_fd;
}

static void record_file(const char *name, char buf[static VM_NAME_MAX + 8])
{
	snprintf(buf, VM_NAME_MAX + 8, "%s.json", name);
}

int vm_mgr_load_record(struct vm_manager *m, enum vm_kind k, const char *name,
		       struct vm_record *ret, struct vm_error *err)
{
	char file[VM_NAME_MAX + 8];
	record_file(name, file);
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r = vm_read_file_at(vm_mgr_meta_fd(m, k), file, VM_RECORD_MAX_BYTES, &text, &len);
	if (r == -ENOENT)
		return vm_error_set(err, ENOENT, "no such %s: %s", vm_kind_str(k), name);
	if (r < 0)
		return vm_error_errno(err, -r, "cannot read the record of %s %s",
				      vm_kind_str(k), name);
	return vm_record_load(text, len, k, ret, err);
}

int vm_mgr_store_record(struct vm_manager *m, const struct vm_record *rec,
			struct vm_error *err)
{
	char file[VM_NAME_MAX + 8];
	record_file(rec->name, file);
	_cleanup_free_ char *text = vm_record_dump(rec);
	if (!text)
		return vm_error_set(err, ENOMEM, "out of memory");
	int r = vm_write_file_atomic_at(vm_mgr_meta_fd(m, rec->kind), file, text,
					strlen(text), 0600);
	if (r < 0)
		return vm_error_errno(err, -r, "cannot write the record of %s %s",
				      vm_kind_str(rec->kind), rec->name);
	return 0;
}

static int unlink_record(struct vm_manager *m, enum vm_kind k, const char *name,
			 struct vm_error *err)
{
	char file[VM_NAME_MAX + 8];
	record_file(name, file);
	int fd = vm_mgr_meta_fd(m, k);
	if (unlinkat(fd, file, 0) < 0 && errno != ENOENT)
		return vm_error_errno(err, errno, "cannot remove the record of %s", name);
	if (fsync(fd) < 0)
		return vm_error_errno(err, errno, "cannot sync the records");
	return 0;
}

void vm_mgr_staging_name(const char *what, const char *name,
			 char buf[static VM_NAME_MAX + 64])
{
	char rnd[17];
	vm_random_hex(rnd, 16);
	snprintf(buf, VM_NAME_MAX + 64, "%s-%s-%s", what, name, rnd);
}

/* Delete staging/name, a subvolume or (left by a crash) a plain tree. */
int vm_mgr_delete_staged(struct vm_manager *m, const char *name,
			 struct vm_error *err)
{
	/* A subvolume inside a volume at its limit cannot be deleted. */
	vm_volquota_release_at(&m->vq, m->pool->staging_fd, name);
	return vm_backend_delete(&m->backend, m->pool->staging_fd, name, err);
}

/* Move dir/name into staging/ under the name trash.  A read-only
 * subvolume (a cache) cannot be moved, so it is made writable first. */
static int move_to_staging(int dirfd, int staging_fd, const char *name,
			   const char *trash)
{
	if (renameat(dirfd, name, staging_fd, trash) == 0)
		return 0;
	if (errno != EROFS)
		return -errno;
	_cleanup_close_ int fd = vm_openat_beneath(
		dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	int r = vm_btrfs_set_read_only(fd, false, NULL);
	if (r < 0)
		return r;
	return renameat(dirfd, name, staging_fd, trash) < 0 ? -errno : 0;
}

/* Move dir/name out of sight into staging/, then delete it. */
int vm_mgr_discard_data(struct vm_manager *m, int dirfd, const char *name,
			struct vm_error *err)
{
	char trash[VM_NAME_MAX + 64];
	vm_mgr_staging_name("trash", name, trash);
	int r = move_to_staging(dirfd, m->pool->staging_fd, name, trash);
	if (r < 0) {
		errno = -r;
		if (errno == ENOENT)
			return 0;
		return vm_error_errno(err, errno, "cannot move %s to staging", name);
	}
	return vm_mgr_delete_staged(m, trash, err);
}

static bool data_exists(struct vm_manager *m, enum vm_kind k, const char *name)
{
	struct stat st;
	return fstatat(vm_mgr_data_fd(m, k), name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* ---- repair at startup ---- */

static void report_add(json_t *report, const char *fmt, ...) _printf_(2, 3);
static void report_add(json_t *report, const char *fmt, ...)
{
	char buf[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_array_append_new(report, json_string(buf));
}

static DIR *opendir_at(int fd)
{
	int d = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (d < 0)
		return NULL;
	DIR *dir = fdopendir(d);
	if (!dir)
		close(d);
	else
		rewinddir(dir);
	return dir;
}

static int repair_staging(struct vm_manager *m, json_t *report,
			  struct vm_error *err)
{
	DIR *d = opendir_at(m->pool->staging_fd);
	if (!d)
		return vm_error_errno(err, errno, "cannot read staging");
	struct dirent *de;
	int r = 0;
	while ((de = readdir(d))) {
		if (!vm_is_plain_component(de->d_name))
			continue;
		struct vm_error e = {0};
		if (vm_mgr_delete_staged(m, de->d_name, &e) < 0) {
			report_add(report, "could not delete staging/%s: %s",
				   de->d_name, e.msg);
			continue;
		}
		report_add(report, "deleted unfinished work staging/%s", de->d_name);
	}
	closedir(d);
	return r;
}

static bool is_temp_record(const char *n)
{
	return n[0] == '.' && strstr(n, ".tmp-");
}

static int repair_kind(struct vm_manager *m, enum vm_kind k, json_t *report,
		       struct vm_error *err)
{
	const char *what = vm_kind_str(k);
	_cleanup_json_ json_t *known = json_object();
	DIR *d = opendir_at(vm_mgr_meta_fd(m, k));
	if (!d || !known) {
		if (d)
			closedir(d);
		return vm_error_errno(err, errno ? errno : ENOMEM,
				      "cannot read the %s records", what);
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		if (!vm_is_plain_component(n))
			continue;
		if (is_temp_record(n)) {
			unlinkat(vm_mgr_meta_fd(m, k), n, 0);
			report_add(report, "removed half-written record %s", n);
			continue;
		}
		size_t l = strlen(n);
		if (l < 6 || strcmp(n + l - 5, ".json") != 0)
			continue;
		char name[VM_NAME_MAX + 1];
		if (l - 5 > VM_NAME_MAX)
			continue;
		memcpy(name, n, l - 5);
		name[l - 5] = '\0';
		json_object_set_new(known, name, json_true());

		struct vm_error e = {0};
		_cleanup_(recordp) struct vm_record rec = {0};
		if (vm_mgr_load_record(m, k, name, &rec, &e) < 0) {
			/* Never delete data we cannot account for. */
			report_add(report, "%s %s: unreadable record left alone: %s",
				   what, name, e.msg);
			continue;
		}
		if (rec.state == VM_STATE_REMOVING) {
			if (vm_mgr_discard_data(m, vm_mgr_data_fd(m, k), name, &e) < 0 ||
			    unlink_record(m, k, name, &e) < 0) {
				report_add(report, "%s %s: could not finish removal: %s",
					   what, name, e.msg);
				continue;
			}
			report_add(report, "%s %s: finished an interrupted removal",
				   what, name);
			continue;
		}
		if (!data_exists(m, k, name)) {
			if (unlink_record(m, k, name, &e) == 0)
				report_add(report, "%s %s: dropped a record without data",
					   what, name);
		} else if (k == VM_KIND_CACHE) {
			/* An update swaps generations with both writable: a
			 * crash in between leaves the cache writable. */
			_cleanup_close_ int fd = vm_openat_beneath(
				vm_mgr_data_fd(m, k), name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
			if (fd >= 0)
				vm_backend_set_read_only(&m->backend, fd, true, NULL);
			int c = fd >= 0 && rec.git_url[0] ? vm_mgr_git_catch_up(m, fd, &rec, &e) : 0;
			if (c > 0)
				report_add(report, "cache %s: record caught up with its checkout (commit %s)",
					   name, rec.git_commit);
			else if (c < 0)
				report_add(report, "cache %s: cannot check the record against the checkout: %s",
					   name, e.msg);
		}
	}
	closedir(d);

	d = opendir_at(vm_mgr_data_fd(m, k));
	if (!d)
		return vm_error_errno(err, errno, "cannot read the %s directory", what);
	while ((de = readdir(d))) {
		if (!vm_is_plain_component(de->d_name) ||
		    json_object_get(known, de->d_name))
			continue;
		struct vm_error e = {0};
		if (vm_mgr_discard_data(m, vm_mgr_data_fd(m, k), de->d_name, &e) < 0)
			report_add(report, "%s %s: could not delete data without a record: %s",
				   what, de->d_name, e.msg);
		else
			report_add(report, "%s %s: deleted data without a record",
				   what, de->d_name);
	}
	closedir(d);
	return 0;
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
	m->pool = pool;
	pthread_mutex_init(&m->lock, NULL);
	sem_init(&m->copy_slots, 0, VM_MGR_COPIES_MAX);
	m->proc = strdup(cfg && cfg->proc ? cfg->proc : "/proc");
	if (cfg && cfg->config)
		m->config = *cfg->config;
	else
		vm_config_init(&m->config);
	if (cfg) {
		m->log = cfg->log;
		m->log_userdata = cfg->log_userdata;
	}
	snprintf(m->driver, sizeof(m->driver), "%s", cfg && cfg->driver ? cfg->driver : "volmgr");
	int r;
	if (cfg && cfg->backend) {
		m->backend = *cfg->backend;
	} else if ((r = vm_backend_choose(pool->staging_fd, m->config.pool_backend,
					  m->config.copy_io, &m->backend, err)) < 0) {
		vm_manager_free(m);
		return r;
	}
	/* Quotas are btrfs qgroups on subvolumes: no other backend has
	 * them, and a default limit there would be a promise not kept. */
	if (m->backend.kind != VM_BACKEND_BTRFS && m->config.quota_default) {
		vm_manager_free(m);
		return vm_error_set(err, EOPNOTSUPP,
				    "[quota] default needs the btrfs backend, and this pool uses %s: quotas are btrfs qgroups",
				    vm_backend_name(m->backend.kind));
	}
	/* Quota accounting: turned on (and counted) once; a failure only
	 * disables quotas, and says why when one is asked for. */
	if (m->backend.kind != VM_BACKEND_BTRFS) {
		vm_error_set(&m->quota_error, EOPNOTSUPP,
			     "quotas are btrfs qgroups, and this pool's backend is %s",
			     vm_backend_name(m->backend.kind));
	} else {
		char note[512];
		if (vm_volquota_init(&m->vq, pool->fd, pool->volumes_fd, m->config.quota_accounting,
				     &m->quota_error, note, sizeof(note)) < 0) {
			vm_manager_free(m);
			return vm_error_set(err, ENOMEM, "out of memory");
		}
		m->quotas = m->vq.mode != VM_QUOTA_MODE_OFF;
		if (note[0])
			vm_mgr_log(m, "%s", note);
	}
	/* A missing git user only disables caches from git; say why then. */
	vm_git_init(&m->git, m->config.git_command, m->config.git_user,
		    m->config.git_timeout, &m->git_error);
	const char *root = pool->fs_root;
	bool slash = root[0] && root[strlen(root) - 1] == '/';
	m->importing = json_object();
	if (!m->proc || !m->importing ||
	    asprintf(&m->vol_prefix, "%s%svolumes", root, slash ? "" : "/") < 0 ||
	    asprintf(&m->vol_path, "%s/volumes", pool->path) < 0) {
		vm_manager_free(m);
		return vm_error_set(err, ENOMEM, "out of memory");
	}
	json_t *report = json_array();
	if (m->config.quota_accounting && !m->quotas && m->backend.kind == VM_BACKEND_BTRFS)
		report_add(report, "quotas are unavailable: %s", m->quota_error.msg);
	r = repair_staging(m, report, err);
	if (r == 0)
		r = repair_kind(m, VM_KIND_VOLUME, report, err);
	if (r == 0)
		r = repair_kind(m, VM_KIND_CACHE, report, err);
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
	vm_volquota_watch(&m->vq, VM_VOLQUOTA_INTERVAL_MS, m->log, m->log_userdata);
	*ret = m;
	return 0;
}

void vm_manager_free(struct vm_manager *m)
{
	if (!m)
		return;
	vm_volquota_done(&m->vq); /* its thread uses the pool */
	vm_pool_free(m->pool);
	pthread_mutex_destroy(&m->lock);
	sem_destroy(&m->copy_slots);
	free(m->proc);
	free(m->vol_prefix);
	free(m->vol_path);
	json_decref(m->importing);
	vm_readers_done(&m->readers);
	vm_git_done(&m->git);
	free(m);
}

/* ---- volumes ---- */

int vm_mgr_apply_quota(struct vm_manager *m, uint64_t subvol_id,
		       const struct vm_create_opts *opts, uint64_t *ret_bytes,
		       struct vm_error *err)
{
	uint64_t bytes = opts && opts->quota_set ? opts->quota_bytes : m->config.quota_default;
	*ret_bytes = 0;
	if (bytes && !m->quotas)
		return vm_error_set(err, EOPNOTSUPP, "cannot set a quota: %s", m->quota_error.msg);
	if (!m->quotas || !subvol_id)
		return 0;
	int r = vm_volquota_apply(&m->vq, subvol_id, bytes, err);
	if (r == 0)
		*ret_bytes = bytes;
	return r;
}

void vm_mgr_record_birth(struct vm_record *rec, const struct vm_caller *caller,
			 json_t *labels, int64_t ttl_ns)
{
	rec->created_ns = vm_now_ns();
	if (ttl_ns > 0)
		rec->expires_ns = rec->created_ns + ttl_ns;
	if (caller) {
		rec->creator_uid = caller->uid;
		rec->creator_pid = caller->pid;
		snprintf(rec->creator_cgroup, sizeof(rec->creator_cgroup), "%s", caller->cgroup);
	}
	if (labels) {
		json_decref(rec->labels);
		rec->labels = json_deep_copy(labels);
	}
}


static char *volume_path(struct vm_manager *m, const char *name)
{
	char *p;
	if (asprintf(&p, "%s/volumes/%s", m->pool->path, name) < 0)
		return NULL;
	return p;
}

int vm_mgr_open_source(struct vm_manager *m, const struct vm_source *src,
		       int *ret_fd, bool *ret_no_xattrs, struct vm_error *err)
{
	enum vm_kind k = src->kind == VM_SOURCE_CACHE ? VM_KIND_CACHE : VM_KIND_VOLUME;
	_cleanup_(recordp) struct vm_record rec = {0};
	int r = vm_mgr_load_record(m, k, src->name, &rec, err);
	if (r < 0)
		return r;
	if (rec.state != VM_STATE_READY)
		return vm_error_set(err, ENOENT, "no such %s: %s", vm_kind_str(k), src->name);
	int fd = vm_openat_beneath(vm_mgr_data_fd(m, k), src->name,
				   O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0)
		return vm_error_errno(err, -fd, "cannot open %s %s", vm_kind_str(k),
				      src->name);
	*ret_fd = fd;
	if (ret_no_xattrs)
		*ret_no_xattrs = rec.no_xattrs;
	return 0;
}

/* Move staging/tmp to dir/name unless name exists. */
int vm_mgr_publish(struct vm_manager *m, const char *tmp, int dirfd,
		   const char *name, struct vm_error *err)
{
	if (renameat2(m->pool->staging_fd, tmp, dirfd, name, RENAME_NOREPLACE) < 0)
		return vm_error_errno(err, errno, "cannot move %s into place", name);
	return 0;
}

static int copy_in(struct vm_manager *m, enum vm_kind k, const char *name, int src_fd,
		   const struct vm_source *source, bool clone, bool src_no_xattrs,
		   const struct vm_create_opts *opts, const struct vm_caller *caller,
		   json_t **ret_stats, struct vm_error *err);

/* An empty volume, or a snapshot on btrfs: O(1), so done under the lock.
 * src is the open source or -1. */
static int create_locked(struct vm_manager *m, const char *name,
			 const struct vm_create_opts *opts, const struct vm_caller *caller,
			 const struct vm_source *source, int src, struct vm_error *err)
{
	_cleanup_(recordp) struct vm_record rec = {0};
	if (vm_record_init(&rec, VM_KIND_VOLUME, name) < 0)
		return vm_error_set(err, ENOMEM, "out of memory");
	char tmp[VM_NAME_MAX + 64];
	vm_mgr_staging_name("new", name, tmp);
	int r;
	if (src >= 0) {
		int64_t t0 = vm_now_ns();
		struct vm_error e = {0};
		r = vm_backend_clone(&m->backend, src, m->pool->staging_fd, tmp, NULL,
				     &rec.subvol_id, NULL, &e);
		if (r == 0) {
			vm_metrics_observe(VM_HIST_SNAPSHOT, vm_now_ns() - t0);
		} else {
			/* Name what the caller asked for, not the staging name;
			 * the backend's own words go to the log. */
			char what[VM_SOURCE_STR_MAX];
			vm_source_format(source, what);
			vm_mgr_log(m, "volume %s from %s: %s", name, what, e.msg);
			vm_error_errno(err, -r, "cannot snapshot %s into volume %s", what, name);
		}
		rec.source = *source;
	} else {
		r = vm_backend_make_empty(&m->backend, m->pool->staging_fd, tmp, &rec.subvol_id, NULL);
		if (r < 0)
			vm_error_errno(err, -r, "cannot create volume %s", name);
	}
	if (r == 0)
		r = vm_mgr_apply_quota(m, rec.subvol_id, opts, &rec.quota_bytes, err);
	if (r < 0) {
		vm_mgr_delete_staged(m, tmp, NULL); /* if the subvolume got made at all */
		return r;
	}
	VM_FAULT("create.staged");
	r = vm_mgr_publish(m, tmp, m->pool->volumes_fd, name, err);
	if (r < 0) {
		vm_mgr_delete_staged(m, tmp, NULL);
		return r;
	}
	VM_FAULT("create.published");
	vm_mgr_record_birth(&rec, caller, opts ? opts->labels : NULL, opts ? opts->ttl_ns : 0);
	r = vm_mgr_store_record(m, &rec, err);
	if (r < 0) {
		vm_mgr_discard_data(m, m->pool->volumes_fd, name, NULL);
		return r;
	}
	return 0;
}

/* An engine's Create without a source runs inside the engine's call, and
 * podman gives a plugin 5 s: when a seed rule's source would need a copy
 * past the limits, answer at once and say how to create the volume
 * ahead.  The count stops as soon as a limit is passed. */
static int implicit_check(struct vm_manager *m, const char *name, const struct vm_source *src,
			  int src_fd, struct vm_error *err)
{
	struct vm_treecount t;
	int r = vm_treecount(src_fd, m->config.implicit_max_files, m->config.implicit_max_bytes,
			     &t, err);
	if (r < 0)
		return r;
	if (!t.over)
		return 0;
	char spec[VM_SOURCE_STR_MAX];
	vm_source_format(src, spec);
	return vm_error_set(err, EFBIG,
			    "volume %s would need a copy of %s (the %s backend copies) over the limit of an implicit create (%llu files or %llu bytes): create the volume first: volmgr snapshot %s %s, or docker volume create -d %s -o source=%s %s",
			    name, spec, vm_backend_name(m->backend.kind),
			    (unsigned long long)m->config.implicit_max_files,
			    (unsigned long long)m->config.implicit_max_bytes, spec, name, m->driver, spec,
			    name);
}

/* Names a seed rule or a reserved prefix claims are root's and the
 * engines' (config.h, vm_config_name_reserved): squatted by another
 * user, the name's next job would start from that user's tree. */
static int reserved_check(struct vm_manager *m, const char *name, const struct vm_caller *caller,
			  struct vm_error *err)
{
	if (!caller || caller->uid == 0 || !vm_config_name_reserved(&m->config, name))
		return 0;
	return vm_error_set(err, EPERM,
			    "volume name %s is reserved for the engines (a [seed] rule or [names] reserved_prefix of volmgr.conf matches it): only root may create it",
			    name);
}

int vm_volume_create(struct vm_manager *m, const char *name,
		     const struct vm_create_opts *opts,
		     const struct vm_caller *caller, struct vm_error *err)
{
	int rc = vm_name_check("volume", name, err);
	if (rc == 0)
		rc = reserved_check(m, name, caller, err);
	if (rc < 0)
		return rc;
	if (opts && opts->source.rev[0])
		return vm_volume_create_at_rev(m, name, opts, caller, err);
	int r = vm_name_check("volume", name, err);
	if (r < 0)
		return r;
	if (opts && (r = vm_labels_check(opts->labels, err)) < 0)
		return r;
	struct vm_source source = opts ? opts->source : (struct vm_source){0};
	bool seeded = false, src_no_xattrs = false;
	_cleanup_close_ int src = -1;
	struct vm_mgr_hold hold = {0};
	{
		LOCK_GUARD(m);
		if (vm_mgr_name_taken(m, VM_KIND_VOLUME, name))
			return vm_error_set(err, EEXIST, "volume %s already exists", name);
		if (opts && opts->seed_by_rules && source.kind == VM_SOURCE_NONE) {
			/* A seed rule names the source by the volume's name; a
			 * source that does not exist (yet) gives an empty volume,
			 * as without a rule: the job then clones in full. */
			struct vm_source s;
			r = vm_config_seed_for(&m->config, name, &s, err);
			if (r < 0)
				return r;
			if (r == 1) {
				_cleanup_close_ int probe = -1;
				if (vm_mgr_open_source(m, &s, &probe, NULL, NULL) == 0) {
					source = s;
					seeded = true;
				}
			}
		}
		if (source.kind != VM_SOURCE_NONE &&
		    (r = vm_mgr_open_source(m, &source, &src, &src_no_xattrs, err)) < 0)
			return r;
		if (src < 0 || vm_backend_is_instant(&m->backend))
			return create_locked(m, name, opts, caller, &source, src, err);
		/* A copy: it runs without the lock, and a delete of the
		 * source waits for it. */
		if ((r = vm_mgr_hold(m, src, &hold, err)) < 0)
			return r;
	}
	r = seeded ? implicit_check(m, name, &source, src, err) : 0;
	if (r == 0)
		r = copy_in(m, VM_KIND_VOLUME, name, src, &source, true, src_no_xattrs, opts, caller,
			    NULL, err);
	vm_mgr_release(m, &hold);
	return r;
}

/* The machine's mounts of volumes, read without the manager's lock (a
 * namespace with 100,000 mounts must cost only the request that asks).
 * When some processes' mounts cannot be read, the scan is incomplete:
 * every volume then counts as in use (fail closed), marked by the key ""
 * holding the number unread. */
/* The names of the volumes with a record, read without the lock through
 * a directory fd of its own (a dup would share the listing's offset). */
static json_t *volume_names(struct vm_manager *m)
{
	int fd = openat(m->pool->vol_meta_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	json_t *names = json_object();
	if (!d || !names) {
		if (d)
			closedir(d);
		else
			closep(&fd);
		json_decref(names);
		return NULL;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (de->d_name[0] == '.' || l < 6 || l - 5 > VM_NAME_MAX ||
		    strcmp(de->d_name + l - 5, ".json") != 0)
			continue;
		char name[VM_NAME_MAX + 1];
		memcpy(name, de->d_name, l - 5);
		name[l - 5] = '\0';
		json_object_set_new(names, name, json_true());
	}
	closedir(d);
	return names;
}

int vm_mgr_inuse_counts(struct vm_manager *m, json_t **ret, struct vm_error *err)
{
	unsigned unreadable = 0;
	/* Only volumes are counted: no mount table can make the scan hold
	 * more names than there are volumes. */
	_cleanup_json_ json_t *names = volume_names(m);
	if (!names)
		return vm_error_set(err, ENOMEM, "cannot list the volumes");
	const struct vm_inuse_where where = {m->pool->sb_dev, m->vol_prefix, m->vol_path, names};
	int r = vm_inuse_scan(m->proc, &where, ret, &unreadable, err);
	if (r == 0 && unreadable)
		json_object_set_new(*ret, "", json_integer(unreadable));
	return r;
}

static json_int_t mount_count(json_t *entry)
{
	json_t *c = json_object_get(entry, "count");
	return c ? json_integer_value(c) : 1;
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
		.backend = m->backend.kind,
		.quota_bytes = rec->quota_bytes,
		.expires_ns = rec->expires_ns,
	};
	snprintf(v.name, sizeof(v.name), "%s", rec->name);
	snprintf(v.creator_cgroup, sizeof(v.creator_cgroup), "%s", rec->creator_cgroup);
	snprintf(v.commit, sizeof(v.commit), "%s", rec->git_commit);
	v.mountpoint = volume_path(m, rec->name);
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
		e->count = mount_count(mt);
	}
	uint64_t referenced, exclusive, limit;
	if (m->quotas && rec->subvol_id &&
	    vm_volquota_usage(&m->vq, rec->subvol_id, &referenced, &exclusive, &limit, NULL) == 0) {
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

static int volume_load_ready(struct vm_manager *m, const char *name,
			     struct vm_record *rec, struct vm_error *err)
{
	int r = vm_name_check("volume", name, err);
	if (r < 0)
		return r;
	r = vm_mgr_load_record(m, VM_KIND_VOLUME, name, rec, err);
	if (r < 0)
		return r;
	if (rec->state != VM_STATE_READY)
		return vm_error_set(err, ENOENT, "no such volume: %s", name);
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
		vm_volquota_sweep_bounded(&m->vq, false, VM_SWEEP_REQUEST_BUDGET, NULL, NULL, NULL);
	_cleanup_json_ json_t *counts = NULL;
	/* Tests hold an inspect here, in its scan, to show that nothing else
	 * waits for it. */
	VM_FAULT_PAUSE("inspect.scan");
	if (with_usage && (r = vm_mgr_inuse_counts(m, &counts, err)) < 0)
		return r;
	LOCK_GUARD(m);
	_cleanup_(recordp) struct vm_record rec = {0};
	r = volume_load_ready(m, name, &rec, err);
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
		.backend = m->backend.kind,
		.no_xattrs = rec->no_xattrs,
	};
	snprintf(ret->name, sizeof(ret->name), "%s", rec->name);
	if (rec->git_url[0]) {
		snprintf(ret->git_url, sizeof(ret->git_url), "%s", rec->git_url);
		snprintf(ret->git_branch, sizeof(ret->git_branch), "%s", rec->git_branch);
		snprintf(ret->git_commit, sizeof(ret->git_commit), "%s", rec->git_commit);
		ret->generation = rec->generation;
		ret->updated_ns = rec->updated_ns;
	}
}

/* Room for one more element in *items (of size each), grown by half. */
static void *grow(void **items, size_t n, size_t *cap, size_t size)
{
	if (n == *cap) {
		size_t c = *cap ? *cap + *cap / 2 : 16;
		void *p = reallocarray(*items, c, size);
		if (!p)
			return NULL;
		*items = p;
		*cap = c;
	}
	return (char *)*items + n * size;
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
	DIR *d = opendir_at(vm_mgr_meta_fd(m, k));
	if (!d)
		return vm_error_errno(err, errno, "cannot read the records");
	_cleanup_(vm_volume_info_list_done) struct vm_volume_info_list vols = {0};
	_cleanup_(vm_cache_info_list_done) struct vm_cache_info_list caches = {0};
	size_t cap = 0;
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (de->d_name[0] == '.' || l < 6 || l - 5 > VM_NAME_MAX ||
		    strcmp(de->d_name + l - 5, ".json") != 0)
			continue;
		char name[VM_NAME_MAX + 1];
		memcpy(name, de->d_name, l - 5);
		name[l - 5] = '\0';
		_cleanup_(recordp) struct vm_record rec = {0};
		if (vm_mgr_load_record(m, k, name, &rec, NULL) < 0 ||
		    rec.state != VM_STATE_READY)
			continue;
		if (k == VM_KIND_VOLUME) {
			struct vm_volume_info *v = grow((void **)&vols.items, vols.n, &cap,
							sizeof(*vols.items));
			if (!v || (r = volume_info(m, &rec, counts, v)) < 0) {
				r = -ENOMEM;
				break;
			}
			vols.n++;
		} else {
			struct vm_cache_info *c = grow((void **)&caches.items, caches.n, &cap,
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
	/* readdir order is arbitrary: sort by name for stable output. */
	if (ret_volumes) {
		qsort(vols.items, vols.n, sizeof(*vols.items), cmp_volume_info);
		*ret_volumes = vols;
		vols = (struct vm_volume_info_list){0};
	}
	if (ret_caches) {
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
	LOCK_GUARD(m);
	return list_kind(m, VM_KIND_VOLUME, counts, ret, NULL, err);
}

/* Removal on a full pool: the "removing" mark cannot be written (a new
 * file needs space), yet removing is how space is freed.  Unlinking the
 * record needs none (btrfs takes it from its global reserve), and the
 * record is the commit point: once it is gone the volume is gone, and
 * data without a record is deleted at the next start if this is cut
 * short.  The data goes to staging as trash if it can be moved (then
 * remove_finish deletes it), else it is deleted in place. */
static int remove_without_mark(struct vm_manager *m, enum vm_kind k,
			       const struct vm_record *rec,
			       char trash[static VM_NAME_MAX + 64], struct vm_error *err)
{
	int r = unlink_record(m, k, rec->name, err);
	if (r < 0)
		return r;
	vm_mgr_staging_name("trash", rec->name, trash);
	r = move_to_staging(vm_mgr_data_fd(m, k), m->pool->staging_fd, rec->name, trash);
	if (r == 0 || r == -ENOENT)
		return 0;
	trash[0] = '\0';
	vm_volquota_release_at(&m->vq, vm_mgr_data_fd(m, k), rec->name);
	return vm_backend_delete(&m->backend, vm_mgr_data_fd(m, k), rec->name, err);
}

/* Under the lock: mark, move into staging/ as trash, drop the record.
 * The name is free from here on; remove_finish deletes the trash. */
static int remove_locked(struct vm_manager *m, enum vm_kind k, struct vm_record *rec,
			 char trash[static VM_NAME_MAX + 64], struct vm_error *err)
{
	rec->state = VM_STATE_REMOVING;
	int r = vm_mgr_store_record(m, rec, err);
	if (r == -ENOSPC || r == -EDQUOT) {
		if (err)
			*err = (struct vm_error){0};
		return remove_without_mark(m, k, rec, trash, err);
	}
	if (r < 0)
		return r;
	VM_FAULT("remove.marked");
	vm_mgr_staging_name("trash", rec->name, trash);
	r = move_to_staging(vm_mgr_data_fd(m, k), m->pool->staging_fd, rec->name, trash);
	if (r < 0 && r != -ENOENT)
		return vm_error_errno(err, -r, "cannot move %s %s to staging",
				      vm_kind_str(k), rec->name);
	VM_FAULT("remove.moved");
	r = unlink_record(m, k, rec->name, err);
	if (r < 0)
		return r;
	VM_FAULT("remove.unlinked");
	return 0;
}

/* Without the lock (a tree remove takes long off btrfs): delete the
 * trash, or leave it to the last copy still reading it.  A failed delete
 * is retried at the next start (staging is emptied then). */
static int remove_finish(struct vm_manager *m, const char *trash, uint64_t subvol_id,
			 struct vm_error *err)
{
	int r = vm_mgr_delete_trash(m, trash, err);
	/* Its qgroups: 1/ at once, 0/ once btrfs's cleaner has dropped the
	 * subvolume; gc clears what is left (vm_volquota_clear_stale). */
	if (r == 0 && m->quotas && subvol_id)
		vm_volquota_destroy(&m->vq, subvol_id, NULL);
	return r;
}

int vm_volume_remove(struct vm_manager *m, const char *name, struct vm_error *err)
{
	/* An engine's Remove (the plugin socket) never waits on the
	 * engines' answers: Podman holds the volume's lock while it calls
	 * Remove, and its inspect of the volume would wait for that lock
	 * until Podman's 5 s are up.  Stale Mounts go by rm and gc. */
	return vm_mgr_remove_volume(m, name, NULL, NULL, false, err);
}

/* Under the lock: the record of a volume name that caller may remove. */
static int load_removable(struct vm_manager *m, const char *name, const struct vm_caller *caller,
			  struct vm_record *rec, struct vm_error *err)
{
	int r = volume_load_ready(m, name, rec, err);
	if (r < 0)
		return r;
	if (caller && caller->uid != 0 && caller->uid != rec->creator_uid)
		return vm_error_set(err, EPERM, "volume %s belongs to uid %u: only it or root may remove it",
				    name, rec->creator_uid);
	return 0;
}

int vm_mgr_remove_volume(struct vm_manager *m, const char *name, const struct vm_caller *caller,
			 json_t *counts, bool ask_engines, struct vm_error *err)
{
	int r = vm_name_check("volume", name, err);
	if (r < 0)
		return r;
	_cleanup_json_ json_t *mounts = NULL;
	{
		LOCK_GUARD(m);
		_cleanup_(recordp) struct vm_record rec = {0};
		if ((r = load_removable(m, name, caller, &rec, err)) < 0)
			return r;
		mounts = json_incref(rec.mounts);
	}
	/* What uses it, looked at without the lock; then decided under it
	 * against the record as it is then: a Mount recorded meanwhile wins,
	 * and any new kernel mount comes after one (engines call Mount
	 * first). */
	struct vm_mgr_usage u;
	r = vm_mgr_usage_check(m, name, counts, ask_engines ? mounts : NULL, &u, err);
	if (r < 0)
		return r;
	char trash[VM_NAME_MAX + 64];
	uint64_t id;
	{
		LOCK_GUARD(m);
		_cleanup_(recordp) struct vm_record rec = {0};
		r = load_removable(m, name, caller, &rec, err);
		if (r == 0)
			r = vm_mgr_usage_verdict(m, &rec, &u, err);
		vm_mgr_usage_done(&u);
		if (r < 0)
			return r;
		if ((r = remove_locked(m, VM_KIND_VOLUME, &rec, trash, err)) < 0)
			return r;
		id = rec.subvol_id;
	}
	return remove_finish(m, trash, id, err);
}

int vm_volume_remove_as(struct vm_manager *m, const char *name, const struct vm_caller *caller,
			struct vm_error *err)
{
	return vm_mgr_remove_volume(m, name, caller, NULL, true, err);
}

int vm_volume_mount(struct vm_manager *m, const char *name, const char *id,
		    char **ret_path, struct vm_error *err)
{
	int r = vm_mount_id_check(id, err);
	if (r < 0)
		return r;
	LOCK_GUARD(m);
	_cleanup_(recordp) struct vm_record rec = {0};
	r = volume_load_ready(m, name, &rec, err);
	if (r < 0)
		return r;
	json_t *entry = json_object_get(rec.mounts, id);
	if (!entry && json_object_size(rec.mounts) >= VM_MOUNTS_MAX)
		return vm_error_set(err, EMFILE,
				    "volume %s has %d engine mounts without Unmount, the most it records: an engine has lost track of its mounts (volmgr gc drops them once the engines in [engines] confirm)",
				    name, VM_MOUNTS_MAX);
	json_int_t count = entry ? mount_count(entry) : 0;
	if (count >= VM_MOUNT_COUNT_MAX)
		return vm_error_set(err, EMFILE, "volume %s: mount ID %s is mounted %d times already",
				    name, id, VM_MOUNT_COUNT_MAX);
	_cleanup_free_ char *path = volume_path(m, name);
	if (!path)
		return vm_error_set(err, ENOMEM, "out of memory");
	/* One entry per ID with a count: a second Mount of an ID (`docker
	 * cp` into a running container) needs a second Unmount. */
	json_t *e = entry ? json_incref(entry) : json_pack("{s:I}", "since", (json_int_t)vm_now_ns());
	if (!e || json_object_set_new(e, "count", json_integer(count + 1)) < 0 ||
	    json_object_set_new(rec.mounts, id, e) < 0)
		return vm_error_set(err, ENOMEM, "out of memory");
	r = vm_mgr_store_record(m, &rec, err);
	if (r < 0)
		return r;
	*ret_path = TAKE_PTR(path);
	return 0;
}

int vm_volume_unmount(struct vm_manager *m, const char *name, const char *id,
		      struct vm_error *err)
{
	int r = vm_mount_id_check(id, err);
	if (r < 0)
		return r;
	LOCK_GUARD(m);
	_cleanup_(recordp) struct vm_record rec = {0};
	r = volume_load_ready(m, name, &rec, err);
	if (r < 0)
		return r;
	/* An unknown ID is not an error: the engine may retry an Unmount
	 * whose reply it lost. */
	json_t *entry = json_object_get(rec.mounts, id);
	if (!entry)
		return 0;
	json_int_t count = mount_count(entry);
	if (count > 1)
		json_object_set_new(entry, "count", json_integer(count - 1));
	else
		json_object_del(rec.mounts, id);
	return vm_mgr_store_record(m, &rec, err);
}

/* ---- caches ---- */

/* The name is taken: by a record, by data, or by a copy in flight. */
bool vm_mgr_name_taken(struct vm_manager *m, enum vm_kind k, const char *name)
{
	char file[VM_NAME_MAX + 8], key[VM_NAME_MAX + 16];
	record_file(name, file);
	snprintf(key, sizeof(key), "%s:%s", vm_kind_str(k), name);
	struct stat st;
	return json_object_get(m->importing, key) ||
	       fstatat(vm_mgr_meta_fd(m, k), file, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
	       data_exists(m, k, name);
}

void vm_mgr_reserve(struct vm_manager *m, enum vm_kind k, const char *name, bool on)
{
	char key[VM_NAME_MAX + 16];
	snprintf(key, sizeof(key), "%s:%s", vm_kind_str(k), name);
	if (on)
		json_object_set_new(m->importing, key, json_true());
	else
		json_object_del(m->importing, key);
}

static json_t *stats_json(const struct vm_copy_stats *s)
{
	json_t *j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}",
			      "files", (json_int_t)s->files, "dirs", (json_int_t)s->dirs,
			      "symlinks", (json_int_t)s->symlinks,
			      "hardlinks", (json_int_t)s->hardlinks,
			      "others", (json_int_t)s->others, "bytes", (json_int_t)s->bytes);
	if (j) {
		json_object_set_new(j, "skipped", json_integer((json_int_t)s->skipped));
		json_object_set_new(j, "xattrs", json_integer((json_int_t)s->xattrs));
	}
	return j;
}

/* Copy the tree open at src_fd into a new volume or cache k/name: reserve
 * the name, copy into staging/ without holding the lock (other requests go
 * on meanwhile), then publish and commit the record under the lock.
 * clone: src_fd is a tree of the pool, cloned the backend's way (reflinks
 * on the reflink backend); else a caller's tree, copied as the caller
 * (copy_file_range shares data on the same file system where it can). */
static int copy_in(struct vm_manager *m, enum vm_kind k, const char *name, int src_fd,
		   const struct vm_source *source, bool clone, bool src_no_xattrs,
		   const struct vm_create_opts *opts, const struct vm_caller *caller,
		   json_t **ret_stats, struct vm_error *err)
{
	json_t *labels = opts ? opts->labels : NULL;
	int64_t ttl_ns = opts ? opts->ttl_ns : 0;
	uint64_t quota = 0;
	int r = vm_name_check(vm_kind_str(k), name, err);
	if (r < 0)
		return r;
	char tmp[VM_NAME_MAX + 64];
	vm_mgr_staging_name(clone ? "clone" : "import", name, tmp);
	uint64_t id = 0;
	{
		LOCK_GUARD(m);
		if (vm_mgr_name_taken(m, k, name))
			return vm_error_set(err, EEXIST, "%s %s already exists",
					    vm_kind_str(k), name);
		r = vm_backend_make_empty(&m->backend, m->pool->staging_fd, tmp, &id, NULL);
		if (r < 0)
			vm_error_errno(err, -r, "cannot create %s %s", vm_kind_str(k), name);
		if (r == 0 && k == VM_KIND_VOLUME)
			r = vm_mgr_apply_quota(m, id, opts, &quota, err);
		if (r < 0) {
			vm_mgr_delete_staged(m, tmp, NULL);
			return r;
		}
		vm_mgr_reserve(m, k, name, true);
	}
	struct vm_copy_report rep = {0};
	bool top_bare = false;
	int64_t t0 = vm_now_ns();
	{
		_cleanup_close_ int dst = vm_openat_beneath(
			m->pool->staging_fd, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		if (dst < 0) {
			r = vm_error_errno(err, -dst, "cannot open the new %s", vm_kind_str(k));
		} else {
			struct vm_reader reader;
			struct vm_copy_opts co;
			/* Tests hold a copy here to remove its source meanwhile. */
			VM_FAULT_PAUSE("copy.start");
			/* A clone reads the pool as the daemon, like a snapshot. */
			vm_mgr_copy_opts(m, src_fd, opts, clone ? NULL : caller, &reader, &co);
			/* Into a cache only volmgrd and git's uid write; into a
			 * volume a container's root may put device nodes. */
			co.src_no_new_devices = clone && source && source->kind == VM_SOURCE_CACHE;
			co.src_no_xattrs = src_no_xattrs; /* only a clone's source has the flag */
			/* An import into a top without attributes to pass on
			 * (a default ACL, a security label) that sets none
			 * makes a cache without any. */
			top_bare = k == VM_KIND_CACHE && !clone && flistxattr(dst, NULL, 0) == 0;
			r = vm_mgr_copy_enter(m, caller, err);
			if (r == 0) {
				vm_mgr_copy_start(m);
				/* Tests hold copies in their slots here. */
				VM_FAULT_PAUSE("copy.slot");
				r = clone ? vm_backend_clone_into(&m->backend, src_fd, dst, &co, &rep, err)
					  : vm_backend_copy_into(&m->backend, src_fd, dst, &co, &rep, err);
				vm_mgr_copy_leave(m, caller);
			}
			if (r == 0)
				r = vm_mgr_make_durable(dst, &rep.durable_ns, err);
		}
	}
	if (r == 0) {
		vm_metrics_observe(VM_HIST_COPY, vm_now_ns() - t0);
		vm_mgr_log_copy(m, clone ? "clone into volume" : k == VM_KIND_CACHE ? "import into cache" : "copy into volume",
				name, &rep);
	}
	/* The same crash points as the O(1) create for a clone, so one
	 * crash test covers every backend. */
	VM_FAULT(clone ? "create.staged" : "copy.copied");
	if (r < 0) {
		/* The partial tree can be big off btrfs: removed without the
		 * lock, while the name is still reserved (so nobody else makes
		 * this staging name meanwhile). */
		vm_mgr_delete_staged(m, tmp, NULL);
		LOCK_GUARD(m);
		vm_mgr_reserve(m, k, name, false);
		return r;
	}
	LOCK_GUARD(m);
	vm_mgr_reserve(m, k, name, false);
	if (r == 0)
		r = vm_mgr_publish(m, tmp, vm_mgr_data_fd(m, k), name, err);
	if (r < 0) {
		vm_mgr_delete_staged(m, tmp, NULL);
		return r;
	}
	VM_FAULT(clone ? "create.published" : "copy.published");
	/* Caches are read-only, but only once in place: btrfs refuses to
	 * move a read-only subvolume (its ".." would change). */
	if (k == VM_KIND_CACHE) {
		_cleanup_close_ int fd = vm_openat_beneath(
			vm_mgr_data_fd(m, k), name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		r = fd < 0 ? vm_error_errno(err, -fd, "cannot open cache %s", name)
			   : vm_backend_set_read_only(&m->backend, fd, true, err);
		if (r < 0) {
			vm_mgr_discard_data(m, vm_mgr_data_fd(m, k), name, NULL);
			return r;
		}
		VM_FAULT("copy.readonly");
	}
	_cleanup_(recordp) struct vm_record rec = {0};
	if (vm_record_init(&rec, k, name) < 0) {
		vm_mgr_discard_data(m, vm_mgr_data_fd(m, k), name, NULL);
		return vm_error_set(err, ENOMEM, "out of memory");
	}
	rec.subvol_id = id;
	if (source)
		rec.source = *source;
	rec.quota_bytes = quota;
	rec.no_xattrs = top_bare && rep.stats.xattrs == 0;
	vm_mgr_record_birth(&rec, caller, labels, ttl_ns);
	r = vm_mgr_store_record(m, &rec, err);
	if (r < 0) {
		vm_mgr_discard_data(m, vm_mgr_data_fd(m, k), name, NULL);
		return r;
	}
	if (ret_stats)
		*ret_stats = stats_json(&rep.stats);
	return 0;
}

int vm_cache_import(struct vm_manager *m, const char *name, int src_fd,
		    const struct vm_create_opts *opts, const struct vm_caller *caller,
		    json_t **ret_stats, struct vm_error *err)
{
	struct vm_create_opts o = {0};
	if (opts) {
		o.progress = opts->progress;
		o.progress_userdata = opts->progress_userdata;
	}
	return copy_in(m, VM_KIND_CACHE, name, src_fd, NULL, false, false, &o, caller, ret_stats,
		       err);
}

struct vol_top {
	dev_t dev;
	ino_t ino;
	char name[VM_NAME_MAX + 1];
};

/* The top directory of every volume with a record. */
static int volume_tops(struct vm_manager *m, struct vol_top **ret, size_t *ret_n,
		       struct vm_error *err)
{
	DIR *d = opendir_at(m->pool->volumes_fd);
	if (!d)
		return vm_error_errno(err, errno, "cannot read the volumes");
	struct vol_top *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat vs, rs;
		char file[VM_NAME_MAX + 8];
		if (!vm_is_plain_component(de->d_name) || strlen(de->d_name) > VM_NAME_MAX ||
		    fstatat(m->pool->volumes_fd, de->d_name, &vs, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(vs.st_mode))
			continue;
		record_file(de->d_name, file);
		if (fstatat(m->pool->vol_meta_fd, file, &rs, AT_SYMLINK_NOFOLLOW) < 0)
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
static int reopen_in_pool(struct vm_manager *m, int fd)
{
	union {
		struct file_handle h;
		char buf[sizeof(struct file_handle) + MAX_HANDLE_SZ];
	} u = {.h.handle_bytes = MAX_HANDLE_SZ};
	int mount_id;
	if (name_to_handle_at(fd, "", &u.h, &mount_id, AT_EMPTY_PATH) < 0)
		return -errno;
	int r = open_by_handle_at(m->pool->volumes_fd, &u.h, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return r < 0 ? -errno : r;
}

#define VOLUME_WALK_MAX 4096

/* Where a caller's directory is: its (device, inode) and, on the pool's
 * own device (volumes that are plain directories), those of its
 * ancestors up to the volumes directory.  Found without the manager's
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
	if (fstat(m->pool->volumes_fd, &vst) < 0)
		return vm_error_errno(err, errno, "cannot stat the volumes directory");
	if (p->st.st_dev != vst.st_dev)
		return 0; /* a subvolume (btrfs) or another file system: no walk */
	int cur = reopen_in_pool(m, fd);
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
	if (fstat(m->pool->volumes_fd, &vst) < 0)
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

int vm_volume_which(struct vm_manager *m, int fd, json_t **ret, struct vm_error *err)
{
	struct fd_place place;
	int r = place_of_fd(m, fd, &place, err);
	if (r < 0)
		return r;
	char name[VM_NAME_MAX + 1];
	bool root = false;
	{
		LOCK_GUARD(m);
		r = volume_of_place(m, &place, name, &root, err);
	}
	free(place.up);
	if (r == -ENOENT)
		return vm_error_set(err, ENOENT, "the directory is not on a volmgr volume");
	if (r < 0)
		return r;
	*ret = json_pack("{s:s, s:b}", "volume", name, "root", root);
	return *ret ? 0 : vm_error_set(err, ENOMEM, "out of memory");
}

int vm_volume_create_from_fd(struct vm_manager *m, const char *name, int src_fd,
			     const char *path, const struct vm_create_opts *opts,
			     const struct vm_caller *caller, json_t **ret_how,
			     struct vm_error *err)
{
	json_t *labels = opts ? opts->labels : NULL;
	int r = vm_name_check("volume", name, err);
	if (r < 0)
		return r;
	if ((r = vm_source_path_check(path, err)) < 0 ||
	    (r = vm_labels_check(labels, err)) < 0 || (r = reserved_check(m, name, caller, err)) < 0)
		return r;
	char held[VM_NAME_MAX + 1];
	bool root = false;
	struct vm_mgr_hold hold = {0};
	struct fd_place place;
	if ((r = place_of_fd(m, src_fd, &place, err)) < 0)
		return r;
	{
		LOCK_GUARD(m);
		r = volume_of_place(m, &place, held, &root, err);
		free(place.up);
		if (r < 0 && r != -ENOENT)
			return r;
		if (r == 0 && !root) {
			/* Inside a volume: its removal waits for the copy. */
			_cleanup_close_ int top = vm_openat_beneath(m->pool->volumes_fd, held,
								    O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
			int h = top >= 0 ? vm_mgr_hold(m, top, &hold, err) : 0;
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
		if (r == 0 && ret_how)
			*ret_how = json_pack("{s:s, s:s}", "method",
					     vm_backend_is_instant(&m->backend) ? "snapshot" : "clone",
					     "of", held);
		return r;
	}
	struct vm_source src = {.kind = VM_SOURCE_PATH};
	snprintf(src.name, sizeof(src.name), "%s", path);
	json_t *stats = NULL;
	r = copy_in(m, VM_KIND_VOLUME, name, src_fd, &src, false, false, opts, caller, &stats, err);
	vm_mgr_release(m, &hold);
	if (r == 0 && ret_how)
		*ret_how = json_pack("{s:s, s:o}", "method", "copy", "stats", stats);
	else
		json_decref(stats);
	return r;
}

int vm_cache_list(struct vm_manager *m, struct vm_cache_info_list *ret,
		  struct vm_error *err)
{
	LOCK_GUARD(m);
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

int vm_cache_remove(struct vm_manager *m, const char *name, struct vm_error *err)
{
	int r = vm_name_check("cache", name, err);
	if (r < 0)
		return r;
	char trash[VM_NAME_MAX + 64];
	{
		LOCK_GUARD(m);
		_cleanup_(recordp) struct vm_record rec = {0};
		r = vm_mgr_load_record(m, VM_KIND_CACHE, name, &rec, err);
		if (r < 0)
			return r;
		/* Volumes made from the cache are independent snapshots or
		 * copies: removing the cache does not touch them.  A copy
		 * still reading it keeps it until the copy ends. */
		if ((r = remove_locked(m, VM_KIND_CACHE, &rec, trash, err)) < 0)
			return r;
	}
	return remove_finish(m, trash, 0, err);
}
