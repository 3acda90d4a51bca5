/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A copy into a new volume or cache: clones on the copy and reflink
 * backends, cache imports, copies of a caller's directory. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>

#include "fault.h"
#include "metrics.h"

#include "manager-private.h"

/* Copy the tree open at src_fd into a new volume or cache k/name: reserve
 * the name, copy into staging/ without holding the lock (other requests go
 * on meanwhile), then publish and commit the record under the lock.
 * clone: src_fd is a tree of the pool, cloned the backend's way (reflinks
 * on the reflink backend); else a caller's tree, copied as the caller
 * (copy_file_range shares data on the same file system where it can). */
int vm_mgr_copy_in(struct vm_manager *m, enum vm_kind k, const char *name, int src_fd,
		   const struct vm_source *source, bool clone,
		   const struct vm_source_traits *traits,
		   const struct vm_create_opts *opts, const struct vm_caller *caller,
		   struct vm_copy_stats *ret_stats, struct vm_error *err)
{
	uint64_t quota = 0;
	int r = vm_name_check(vm_kind_str(k), name, err);
	if (r < 0)
		return r;
	char tmp[VM_NAME_MAX + 64];
	vm_store_staging_name(clone ? "clone" : "import", name, tmp);
	uint64_t id = 0;
	{
		VM_STORE_LOCK(&m->store);
		if (vm_store_name_taken(&m->store, k, name))
			return vm_error_set(err, EEXIST, "%s %s already exists",
					    vm_kind_str(k), name);
		r = vm_backend_make_empty(&m->store.backend, m->store.pool->staging_fd, tmp, &id, NULL);
		if (r < 0)
			vm_error_errno(err, -r, "cannot create %s %s", vm_kind_str(k), name);
		if (r == 0 && k == VM_KIND_VOLUME)
			r = vm_store_apply_quota(&m->store, id, opts, &quota, err);
		if (r < 0) {
			vm_store_delete_staged(&m->store, tmp, NULL);
			return r;
		}
		vm_store_reserve(&m->store, k, name, true);
	}
	struct vm_copy_report rep = {0};
	bool top_bare = false;
	int64_t t0 = vm_now_ns();
	{
		_cleanup_close_ int dst = vm_openat_beneath(
			m->store.pool->staging_fd, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		if (dst < 0) {
			r = vm_error_errno(err, -dst, "cannot open the new %s", vm_kind_str(k));
		} else {
			struct vm_reader reader;
			struct vm_copy_opts co;
			/* Tests hold a copy here to remove its source meanwhile. */
			VM_FAULT_PAUSE("copy.start");
			/* A clone reads the pool as the daemon, like a snapshot. */
			vm_store_copy_opts(&m->store, src_fd, opts, clone ? NULL : caller, &reader, &co);
			/* Into a cache only volmgrd and git's uid write; into a
			 * volume a container's root may put device nodes. */
			co.src_no_new_devices = clone && traits && traits->no_devices;
			co.src_no_xattrs = clone && traits && traits->no_xattrs;
			/* An import into a top without attributes to pass on
			 * (a default ACL, a security label) that sets none
			 * makes a cache without any. */
			top_bare = k == VM_KIND_CACHE && !clone && flistxattr(dst, NULL, 0) == 0;
			r = vm_store_copy_enter(&m->store, caller, err);
			if (r == 0) {
				vm_store_copy_start(&m->store);
				/* Tests hold copies in their slots here. */
				VM_FAULT_PAUSE("copy.slot");
				r = clone ? vm_backend_clone_into(&m->store.backend, src_fd, dst, &co, &rep, err)
					  : vm_backend_copy_into(&m->store.backend, src_fd, dst, &co, &rep, err);
				vm_store_copy_leave(&m->store, caller);
			}
			if (r == 0)
				r = vm_store_make_durable(dst, &rep.durable_ns, err);
		}
	}
	if (r == 0) {
		vm_metrics_observe(VM_HIST_COPY, vm_now_ns() - t0);
		vm_store_log_copy(&m->store, clone ? "clone into volume" : k == VM_KIND_CACHE ? "import into cache" : "copy into volume",
				name, &rep);
	}
	/* The same crash points as the O(1) create for a clone, so one
	 * crash test covers every backend. */
	VM_FAULT(clone ? "create.staged" : "copy.copied");
	if (r < 0) {
		/* The partial tree can be big off btrfs: removed without the
		 * lock, while the name is still reserved (so nobody else makes
		 * this staging name meanwhile). */
		vm_store_delete_staged(&m->store, tmp, NULL);
		VM_STORE_LOCK(&m->store);
		vm_store_reserve(&m->store, k, name, false);
		return r;
	}
	VM_STORE_LOCK(&m->store);
	vm_store_reserve(&m->store, k, name, false);
	if (r == 0)
		r = vm_store_publish(&m->store, tmp, vm_store_data_fd(&m->store, k), name, err);
	if (r < 0) {
		vm_store_delete_staged(&m->store, tmp, NULL);
		return r;
	}
	VM_FAULT(clone ? "create.published" : "copy.published");
	/* Caches are read-only, but only once in place: btrfs refuses to
	 * move a read-only subvolume (its ".." would change). */
	if (k == VM_KIND_CACHE) {
		_cleanup_close_ int fd = vm_openat_beneath(
			vm_store_data_fd(&m->store, k), name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		r = fd < 0 ? vm_error_errno(err, -fd, "cannot open cache %s", name)
			   : vm_backend_set_read_only(&m->store.backend, fd, true, err);
		if (r < 0) {
			vm_store_discard_data(&m->store, vm_store_data_fd(&m->store, k), name, NULL);
			return r;
		}
		VM_FAULT("copy.readonly");
	}
	_cleanup_record_ struct vm_record rec = {0};
	if (vm_record_init(&rec, k, name) < 0) {
		vm_store_discard_data(&m->store, vm_store_data_fd(&m->store, k), name, NULL);
		return vm_error_set(err, ENOMEM, "out of memory");
	}
	rec.subvol_id = id;
	if (source)
		rec.source = *source;
	rec.quota_bytes = quota;
	rec.no_xattrs = top_bare && rep.stats.xattrs == 0;
	vm_store_record_birth(&rec, caller, opts);
	r = vm_store_store_record(&m->store, &rec, err);
	if (r < 0) {
		vm_store_discard_data(&m->store, vm_store_data_fd(&m->store, k), name, NULL);
		return r;
	}
	if (ret_stats)
		*ret_stats = rep.stats;
	return 0;
}

int vm_cache_import(struct vm_manager *m, const char *name, int src_fd,
		    const struct vm_create_opts *opts, const struct vm_caller *caller,
		    struct vm_copy_stats *ret_stats, struct vm_error *err)
{
	struct vm_create_opts o = {0};
	if (opts) {
		o.progress = opts->progress;
		o.progress_userdata = opts->progress_userdata;
	}
	return vm_mgr_copy_in(m, VM_KIND_CACHE, name, src_fd, NULL, false, NULL, &o, caller, ret_stats,
		       err);
}
