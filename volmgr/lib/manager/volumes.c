/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Volumes: create (empty, a snapshot, a copy, at a git commit), remove,
 * and the engines' Mount and Unmount. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fault.h"
#include "metrics.h"
#include "treecount.h"

#include "manager-private.h"

/* An empty volume, or a snapshot on btrfs: O(1), so done under the lock.
 * src is the open source or -1. */
static int create_locked(struct vm_manager *m, const char *name,
			 const struct vm_create_opts *opts, const struct vm_caller *caller,
			 const struct vm_source *source, int src, struct vm_error *err)
{
	_cleanup_record_ struct vm_record rec = {0};
	if (vm_record_init(&rec, VM_KIND_VOLUME, name) < 0)
		return vm_error_set(err, ENOMEM, "out of memory");
	char tmp[VM_NAME_MAX + 64];
	vm_store_staging_name("new", name, tmp);
	int r;
	if (src >= 0) {
		int64_t t0 = vm_now_ns();
		struct vm_error e = {0};
		r = vm_backend_clone(&m->store.backend, src, m->store.pool->staging_fd, tmp, NULL,
				     &rec.subvol_id, NULL, &e);
		if (r == 0) {
			vm_metrics_observe(VM_HIST_SNAPSHOT, vm_now_ns() - t0);
		} else {
			/* Name what the caller asked for, not the staging name;
			 * the backend's own words go to the log. */
			char what[VM_SOURCE_STR_MAX];
			vm_source_format(source, what);
			vm_store_log(&m->store, "volume %s from %s: %s", name, what, e.msg);
			vm_error_errno(err, -r, "cannot snapshot %s into volume %s", what, name);
		}
		rec.source = *source;
	} else {
		r = vm_backend_make_empty(&m->store.backend, m->store.pool->staging_fd, tmp, &rec.subvol_id, NULL);
		if (r < 0)
			vm_error_errno(err, -r, "cannot create volume %s", name);
	}
	if (r == 0)
		r = vm_store_apply_quota(&m->store, rec.subvol_id, opts, &rec.quota_bytes, err);
	if (r < 0) {
		vm_store_delete_staged(&m->store, tmp, NULL); /* if the subvolume got made at all */
		return r;
	}
	VM_FAULT("create.staged");
	r = vm_store_publish(&m->store, tmp, m->store.pool->volumes_fd, name, err);
	if (r < 0) {
		vm_store_delete_staged(&m->store, tmp, NULL);
		return r;
	}
	VM_FAULT("create.published");
	vm_store_record_birth(&rec, caller, opts);
	r = vm_store_store_record(&m->store, &rec, err);
	if (r < 0) {
		vm_store_discard_data(&m->store, m->store.pool->volumes_fd, name, NULL);
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
			    name, spec, vm_backend_name(m->store.backend.kind),
			    (unsigned long long)m->config.implicit_max_files,
			    (unsigned long long)m->config.implicit_max_bytes, spec, name, m->driver, spec,
			    name);
}

/* Names a seed rule or a reserved prefix claims are root's and the
 * engines' (config.h, vm_config_name_reserved): squatted by another
 * user, the name's next job would start from that user's tree. */
int vm_mgr_reserved_check(struct vm_manager *m, const char *name, const struct vm_caller *caller,
			  struct vm_error *err)
{
	if (!caller || caller->uid == 0)
		return 0;
	/* volmgr-csi's volumes (its names are the kubelet's volume ids): a
	 * squatted one would be mounted into the pod whose id it guessed. */
	if (strncmp(name, "csi-", 4) == 0)
		return vm_error_set(err, EPERM,
				    "volume names starting with csi- are volmgr-csi's: only root may create them");
	if (!vm_config_name_reserved(&m->config, name))
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
		rc = vm_mgr_reserved_check(m, name, caller, err);
	if (rc < 0)
		return rc;
	/* Tests hold a Create here past the engine's own timeout. */
	VM_FAULT_PAUSE("volume.create");
	if (opts && opts->source.rev[0])
		return vm_volume_create_at_rev(m, name, opts, caller, err);
	int r = vm_name_check("volume", name, err);
	if (r < 0)
		return r;
	if (opts && (r = vm_labels_check(opts->labels, err)) < 0)
		return r;
	struct vm_source source = opts ? opts->source : (struct vm_source){0};
	bool seeded = false;
	struct vm_source_traits traits = {0};
	/* opts as given, plus the seed rule that matched, if any. */
	struct vm_create_opts o = opts ? *opts : (struct vm_create_opts){0};
	o.seed_rule = o.seed_cache = NULL;
	opts = &o;
	struct vm_source s; /* a seed rule's source; o.seed_cache points into it */
	_cleanup_close_ int src = -1;
	struct vm_store_hold hold = {0};
	{
		VM_STORE_LOCK(&m->store);
		if (vm_store_name_taken(&m->store, VM_KIND_VOLUME, name))
			return vm_error_set(err, EEXIST, "volume %s already exists", name);
		if (o.seed_by_rules && source.kind == VM_SOURCE_NONE) {
			/* A seed rule names the source by the volume's name; a
			 * source that does not exist (yet) gives an empty volume,
			 * as without a rule: the job then clones in full. */
			const struct vm_seed_rule *rule = NULL;
			r = vm_config_seed_rule_for(&m->config, o.seed_name ? o.seed_name : name, &s,
						    &rule, err);
			if (r < 0)
				return r;
			/* The lineage (what a job-socket promote may feed) only
			 * for a volume named by the rule itself: a seed_name is
			 * the pod's name, which any pod's author chooses. */
			if (r == 1 && s.kind == VM_SOURCE_CACHE && !o.seed_name) {
				o.seed_rule = rule->pattern;
				o.seed_cache = s.name;
			}
			/* A pod's name picks caches only: a volume:{x} rule would
			 * let any pod's author copy the volume its name expands
			 * to. */
			if (r == 1 && o.seed_name && s.kind != VM_SOURCE_CACHE)
				r = 0;
			if (r == 1) {
				_cleanup_close_ int probe = -1;
				if (vm_store_open_source(&m->store, &s, &probe, NULL, NULL) == 0) {
					source = s;
					seeded = true;
				}
			}
		}
		if (source.kind != VM_SOURCE_NONE &&
		    (r = vm_store_open_source(&m->store, &source, &src, &traits, err)) < 0)
			return r;
		if (src < 0 || vm_backend_is_instant(&m->store.backend))
			return create_locked(m, name, opts, caller, &source, src, err);
		/* A copy: it runs without the lock, and a delete of the
		 * source waits for it. */
		if ((r = vm_store_hold(&m->store, src, &hold, err)) < 0)
			return r;
	}
	/* Podman's 5 s bound an engine's create; volmgr-csi's caller, the
	 * kubelet, gives a publish 2 minutes and retries. */
	r = seeded && !o.seed_name ? implicit_check(m, name, &source, src, err) : 0;
	if (r == 0)
		r = vm_mgr_copy_in(m, VM_KIND_VOLUME, name, src, &source, true, &traits, opts, caller,
			    NULL, err);
	vm_store_release(&m->store, &hold);
	return r;
}

/* Under the lock: record (when, for a Remove of the engine that made
 * it) or clear (when 0) the Remove of volume name that volmgrd refused. */
static void set_remove_refused(struct vm_manager *m, const char *name, const char *engine,
			       int64_t when)
{
	_cleanup_record_ struct vm_record rec = {0};
	if (vm_store_load_ready(&m->store, VM_KIND_VOLUME, name, &rec, NULL) < 0 ||
	    rec.remove_refused_ns == when || (engine && strcmp(rec.creator_engine, engine) != 0))
		return;
	rec.remove_refused_ns = when;
	vm_store_store_record(&m->store, &rec, NULL);
}

void vm_volume_engine_asked(struct vm_manager *m, const char *name)
{
	VM_STORE_LOCK(&m->store);
	json_object_del(m->store.engine_forgot, name);
	set_remove_refused(m, name, NULL, 0);
}

int vm_volume_remove(struct vm_manager *m, const char *name, const char *engine,
		     struct vm_error *err)
{
	/* An engine's Remove (the plugin socket) never waits on the
	 * engines' answers: Podman holds the volume's lock while it calls
	 * Remove, and its inspect of the volume would wait for that lock
	 * until Podman's 5 s are up.  Stale Mounts go by rm and gc. */
	int r = vm_mgr_remove_volume(m, name, NULL, NULL, false, NULL, err);
	/* Refused because something uses it: Docker, when the runner's
	 * remove was forced, forgets the volume all the same (PurgeOnError).
	 * Only the engine that made the volume counts (a second dockerd,
	 * not listed in [engines], is asked nothing). */
	if (r == -EBUSY && engine && engine[0]) {
		VM_STORE_LOCK(&m->store);
		set_remove_refused(m, name, engine, vm_now_ns());
	}
	return r;
}

/* Under the lock: the record of a volume name that caller may remove. */
static int load_removable(struct vm_manager *m, const char *name, const struct vm_caller *caller,
			  struct vm_record *rec, struct vm_error *err)
{
	int r = vm_store_load_ready(&m->store, VM_KIND_VOLUME, name, rec, err);
	if (r < 0)
		return r;
	if (caller && caller->uid != 0 && caller->uid != rec->creator_uid)
		return vm_error_set(err, EPERM, "volume %s belongs to uid %u: only it or root may remove it",
				    name, rec->creator_uid);
	return 0;
}

int vm_mgr_remove_volume(struct vm_manager *m, const char *name, const struct vm_caller *caller,
			 json_t *counts, bool ask_engines, const int64_t *forgot,
			 struct vm_error *err)
{
	int r = vm_name_check("volume", name, err);
	if (r < 0)
		return r;
	_cleanup_json_ json_t *mounts = NULL;
	{
		VM_STORE_LOCK(&m->store);
		_cleanup_record_ struct vm_record rec = {0};
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
		VM_STORE_LOCK(&m->store);
		_cleanup_record_ struct vm_record rec = {0};
		r = load_removable(m, name, caller, &rec, err);
		/* An engine asked about it since gc decided (its Get clears
		 * both): it knows the volume again. */
		if (r == 0 && forgot &&
		    (rec.remove_refused_ns != *forgot || !json_object_get(m->store.engine_forgot, name)))
			r = vm_error_set(err, EBUSY, "volume %s: its engine asked about it meanwhile", name);
		if (r == 0)
			r = vm_mgr_usage_verdict(m, &rec, &u, err);
		vm_mgr_usage_done(&u);
		if (r < 0)
			return r;
		if ((r = vm_store_retire(&m->store, &rec, trash, err)) < 0)
			return r;
		id = rec.subvol_id;
	}
	return vm_store_retire_finish(&m->store, trash, id, err);
}

int vm_volume_remove_as(struct vm_manager *m, const char *name, const struct vm_caller *caller,
			struct vm_error *err)
{
	return vm_mgr_remove_volume(m, name, caller, NULL, true, NULL, err);
}

int vm_volume_mount(struct vm_manager *m, const char *name, const char *id,
		    char **ret_path, struct vm_error *err)
{
	int r = vm_mount_id_check(id, err);
	if (r < 0)
		return r;
	VM_STORE_LOCK(&m->store);
	_cleanup_record_ struct vm_record rec = {0};
	r = vm_store_load_ready(&m->store, VM_KIND_VOLUME, name, &rec, err);
	if (r < 0)
		return r;
	json_t *entry = json_object_get(rec.mounts, id);
	if (!entry && json_object_size(rec.mounts) >= VM_MOUNTS_MAX)
		return vm_error_set(err, EMFILE,
				    "volume %s has %d engine mounts without Unmount, the most it records: an engine has lost track of its mounts (volmgr gc drops them once the engines in [engines] confirm)",
				    name, VM_MOUNTS_MAX);
	json_int_t count = entry ? vm_record_mount_count(entry) : 0;
	if (count >= VM_MOUNT_COUNT_MAX)
		return vm_error_set(err, EMFILE, "volume %s: mount ID %s is mounted %d times already",
				    name, id, VM_MOUNT_COUNT_MAX);
	_cleanup_free_ char *path = vm_store_volume_path(&m->store, name);
	if (!path)
		return vm_error_set(err, ENOMEM, "out of memory");
	/* One entry per ID with a count: a second Mount of an ID (`docker
	 * cp` into a running container) needs a second Unmount. */
	/* An engine that mounts the volume knows it again: no longer a
	 * Remove it forgot. */
	rec.remove_refused_ns = 0;
	json_t *e = entry ? json_incref(entry) : json_pack("{s:I}", "since", (json_int_t)vm_now_ns());
	if (!e || json_object_set_new(e, "count", json_integer(count + 1)) < 0 ||
	    json_object_set_new(rec.mounts, id, e) < 0)
		return vm_error_set(err, ENOMEM, "out of memory");
	r = vm_store_store_record(&m->store, &rec, err);
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
	VM_STORE_LOCK(&m->store);
	_cleanup_record_ struct vm_record rec = {0};
	r = vm_store_load_ready(&m->store, VM_KIND_VOLUME, name, &rec, err);
	if (r < 0)
		return r;
	/* An unknown ID is not an error: the engine may retry an Unmount
	 * whose reply it lost. */
	json_t *entry = json_object_get(rec.mounts, id);
	if (!entry)
		return 0;
	json_int_t count = vm_record_mount_count(entry);
	if (count > 1)
		json_object_set_new(entry, "count", json_integer(count - 1));
	else
		json_object_del(rec.mounts, id);
	return vm_store_store_record(&m->store, &rec, err);
}

/* ---- caches ---- */
int vm_cache_remove(struct vm_manager *m, const char *name, struct vm_error *err)
{
	int r = vm_name_check("cache", name, err);
	if (r < 0)
		return r;
	char trash[VM_NAME_MAX + 64];
	{
		VM_STORE_LOCK(&m->store);
		_cleanup_record_ struct vm_record rec = {0};
		r = vm_store_load_record(&m->store, VM_KIND_CACHE, name, &rec, err);
		if (r < 0)
			return r;
		/* Volumes made from the cache are independent snapshots or
		 * copies: removing the cache does not touch them.  A copy
		 * still reading it keeps it until the copy ends. */
		if ((r = vm_store_retire(&m->store, &rec, trash, err)) < 0)
			return r;
	}
	return vm_store_retire_finish(&m->store, trash, 0, err);
}
