/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Garbage collection of volumes: expired ones (ttl), ones whose creator's
 * container is gone, and ones carrying given labels; never one in use.
 * The decision is a pure function of a volume's info, so it is tested
 * apart from the removal. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cgroup.h"
#include "gc.h"
#include "manager-private.h"
#include "quota.h"
#include "volquota.h"

int vm_gc_reasons(const struct vm_volume_info *info, int64_t now_ns, json_t *labels,
		  bool creator_gone, json_t **ret)
{
	json_t *reasons = json_array();
	if (!reasons)
		return -ENOMEM;
	json_t *lbl = info->labels;
	bool keep = json_is_string(json_object_get(lbl, "volmgr.keep")) &&
		    strcmp(json_string_value(json_object_get(lbl, "volmgr.keep")), "true") == 0;
	if (info->expires_ns > 0 && now_ns >= info->expires_ns)
		json_array_append_new(reasons, json_string("expired"));
	if (creator_gone && !keep)
		json_array_append_new(reasons, json_string("creator gone"));
	if (labels && json_object_size(labels) > 0) {
		bool all = true;
		const char *k;
		json_t *v;
		json_object_foreach(labels, k, v) {
			json_t *have = json_object_get(lbl, k);
			if (!have || !json_equal(have, v))
				all = false;
		}
		if (all)
			json_array_append_new(reasons, json_string("labels match"));
	}
	*ret = reasons;
	return 0;
}

/* Bytes a removal frees: with simple quotas, what the volume and the
 * subvolumes made inside it wrote (its level-1 qgroup: every extent they
 * own); else the blocks of its files (an upper bound: extents shared with
 * the cache are counted too). */
static uint64_t tree_blocks(int dirfd, unsigned depth)
{
	if (depth > VM_GC_WALK_DEPTH)
		return 0;
	int d = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	DIR *dir = d >= 0 ? fdopendir(d) : NULL;
	if (!dir) {
		closep(&d);
		return 0;
	}
	uint64_t sum = 0;
	struct dirent *de;
	while ((de = readdir(dir))) {
		struct stat st;
		if (!vm_is_plain_component(de->d_name) ||
		    fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		sum += (uint64_t)st.st_blocks * 512;
		if (S_ISDIR(st.st_mode)) {
			_cleanup_close_ int sub = vm_openat_beneath(dirfd, de->d_name,
								    O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
			if (sub >= 0)
				sum += tree_blocks(sub, depth + 1);
		}
	}
	closedir(dir);
	return sum;
}

int vm_gc(struct vm_manager *m, bool dry_run, json_t *labels, json_t **ret,
	  struct vm_error *err)
{
	_cleanup_json_ json_t *counts = NULL;
	_cleanup_(vm_volume_info_list_done) struct vm_volume_info_list all = {0};
	bool simple = m->store.vq.mode == VM_QUOTA_MODE_SIMPLE;
	/* Subvolumes made inside volumes are in their volume's qgroup, and
	 * the numbers are as of now. */
	if (simple) {
		vm_volquota_sweep_bounded(&m->store.vq, false, 4096, NULL, NULL, NULL);
		vm_quota_sync(m->store.pool->fd, NULL);
	}
	/* One scan of the machine's mounts for every decision of this run:
	 * a mount that comes later comes after an engine's Mount, which the
	 * removal sees under the lock. */
	int r = vm_mgr_inuse_counts(m, &counts, err);
	if (r < 0)
		return r;
	r = vm_volume_list(m, false, &all, err);
	if (r < 0)
		return r;
	json_t *report = json_pack("{s:b, s:[], s:[], s:[], s:I}", "dry_run", dry_run, "removed",
				   "kept_in_use", "mounts_dropped", "bytes_freed", (json_int_t)0);
	if (!report)
		return vm_error_set(err, ENOMEM, "out of memory");
	int64_t now = vm_now_ns();
	uint64_t freed = 0;
	for (size_t i = 0; i < all.n; i++) {
		struct vm_volume_info *info = &all.items[i];
		const char *name = info->name;
		/* Recorded Mounts of a volume nothing mounts: gone if every
		 * engine confirms (never by age). */
		if (!dry_run && info->n_mounts > 0 && vm_mgr_prune_mounts(m, name, counts) == 1) {
			json_array_append_new(json_object_get(report, "mounts_dropped"),
					      json_string(name));
			info->in_use = false;
		}
		json_int_t kernel = json_integer_value(json_object_get(counts, name));
		if (kernel > 0 || json_integer_value(json_object_get(counts, "")) > 0)
			info->in_use = true;
		_cleanup_record_ struct vm_record rec = {0};
		if (vm_store_load_record(&m->store, VM_KIND_VOLUME, name, &rec, NULL) < 0)
			continue;
		info->expires_ns = rec.expires_ns;
		bool gone = rec.creator_cgroup[0] && vm_cgroup_exists(rec.creator_cgroup) == 0;
		_cleanup_json_ json_t *reasons = NULL;
		if (vm_gc_reasons(info, now, labels, gone, &reasons) < 0)
			break;
		if (json_array_size(reasons) == 0)
			continue;
		json_t *entry = json_pack("{s:s, s:O}", "name", name, "reasons", reasons);
		if (info->in_use) {
			json_array_append_new(json_object_get(report, "kept_in_use"), entry);
			continue;
		}
		uint64_t bytes = 0;
		if (simple && info->has_usage) {
			bytes = info->usage_exclusive;
		} else {
			_cleanup_close_ int fd = vm_openat_beneath(m->store.pool->volumes_fd, name,
								   O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
			if (fd >= 0)
				bytes = tree_blocks(fd, 0);
		}
		json_object_set_new(entry, "bytes", json_integer((json_int_t)bytes));
		if (!dry_run) {
			struct vm_error e = {0};
			/* vm_volume_remove checks "in use" again under the
			 * lock: a mount that came meanwhile wins. */
			if (vm_mgr_remove_volume(m, name, NULL, counts, true, &e) < 0) {
				json_object_set_new(entry, "error", json_string(e.msg));
				json_array_append_new(json_object_get(report, "kept_in_use"), entry);
				continue;
			}
		}
		freed += bytes;
		json_array_append_new(json_object_get(report, "removed"), entry);
	}
	json_object_set_new(report, "bytes_freed", json_integer((json_int_t)freed));
	/* qgroups of subvolumes btrfs has dropped since (the kernel removes
	 * most level-0 ones itself; what it left is stale), and level-1
	 * qgroups of volumes gone whose members are all gone. */
	if (!dry_run && m->store.quotas) {
		unsigned skipped = 0;
		int n = vm_volquota_clear_stale(&m->store.vq, &skipped, NULL);
		if (n > 0)
			json_object_set_new(report, "stale_qgroups_cleared", json_integer(n));
	}
	*ret = report;
	return 0;
}
