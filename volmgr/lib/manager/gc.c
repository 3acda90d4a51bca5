/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Garbage collection of volumes: expired ones (ttl), ones whose creator's
 * container is gone, ones their engine forgot (gcengine.c), and ones
 * carrying given labels; never one in use.
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

unsigned vm_gc_reasons(const struct vm_volume_info *info, int64_t now_ns, json_t *labels,
		       bool creator_gone)
{
	unsigned reasons = 0;
	json_t *lbl = info->labels;
	bool keep = json_is_string(json_object_get(lbl, "volmgr.keep")) &&
		    strcmp(json_string_value(json_object_get(lbl, "volmgr.keep")), "true") == 0;
	if (info->expires_ns > 0 && now_ns >= info->expires_ns)
		reasons |= VM_GC_EXPIRED;
	if (creator_gone && !keep)
		reasons |= VM_GC_CREATOR_GONE;
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
			reasons |= VM_GC_LABELS_MATCH;
	}
	return reasons;
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

int vm_gc(struct vm_manager *m, bool dry_run, json_t *labels, struct vm_gc_report *ret,
	  struct vm_error *err)
{
	_cleanup_json_ json_t *counts = NULL;
	_cleanup_(vm_volume_info_list_done) struct vm_volume_info_list all = {0};
	_cleanup_(vm_gc_report_done) struct vm_gc_report rep = {.dry_run = dry_run};
	size_t cap_removed = 0, cap_kept = 0, cap_dropped = 0;
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
	int64_t now = vm_now_ns();
	for (size_t i = 0; i < all.n; i++) {
		struct vm_volume_info *info = &all.items[i];
		const char *name = info->name;
		/* Recorded Mounts of a volume nothing mounts: gone if every
		 * engine confirms (never by age). */
		if (!dry_run && info->n_mounts > 0 && vm_mgr_prune_mounts(m, name, counts) == 1) {
			if (!vm_grow((void **)&rep.mounts_dropped, rep.n_mounts_dropped, &cap_dropped,
				     sizeof(*rep.mounts_dropped)))
				return vm_error_set(err, ENOMEM, "out of memory");
			snprintf(rep.mounts_dropped[rep.n_mounts_dropped++], VM_NAME_MAX + 1, "%s",
				 name);
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
		unsigned reasons = vm_gc_reasons(info, now, labels, gone);
		/* A volume its engine forgot: taken on the second collection
		 * that finds it so; kept with a note on the first, or when
		 * the engine cannot tell. */
		char note[sizeof(((struct vm_gc_entry *)0)->error)] = "";
		unsigned forgot = 0;
		if (!info->in_use)
			forgot = vm_mgr_engine_forgot(m, &rec, dry_run, now, note, sizeof(note));
		else if (!dry_run)
			vm_mgr_engine_forget(m, name); /* in use: seen again from the start */
		if (!note[0])
			reasons |= forgot;
		if (!reasons && !forgot)
			continue;
		struct vm_gc_entry entry = {.reasons = reasons ? reasons : forgot};
		snprintf(entry.name, sizeof(entry.name), "%s", name);
		bool kept = info->in_use || !reasons;
		/* Not while its engine still has a container that names it
		 * (the engine-forgot reason asked that already). */
		if (!kept && !(reasons & VM_GC_ENGINE_FORGOT) &&
		    vm_mgr_engine_keeps(m, &rec, note, sizeof(note)))
			kept = true;
		if (kept && note[0])
			snprintf(entry.error, sizeof(entry.error), "%s", note);
		if (!kept) {
			if (simple && info->has_usage) {
				entry.bytes = info->usage_exclusive;
			} else {
				_cleanup_close_ int fd = vm_openat_beneath(
					m->store.pool->volumes_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
				if (fd >= 0)
					entry.bytes = tree_blocks(fd, 0);
			}
			entry.has_bytes = true;
			struct vm_error e = {0};
			/* The removal checks "in use" again under the lock: a
			 * mount that came meanwhile wins.  One taken only
			 * because its engine forgot it: on a fresh scan of the
			 * machine's mounts (the pass's may be old after the
			 * engines' answers), and only if no engine asked about
			 * it meanwhile. */
			bool only_forgot = reasons == VM_GC_ENGINE_FORGOT;
			if (!dry_run && vm_mgr_remove_volume(m, name, NULL, only_forgot ? NULL : counts, true,
							     only_forgot ? &rec.remove_refused_ns : NULL,
							     &e) < 0) {
				snprintf(entry.error, sizeof(entry.error), "%s", e.msg);
				kept = true;
			}
		}
		if (!kept && !dry_run)
			vm_mgr_engine_forget(m, name);
		struct vm_gc_entry **list = kept ? &rep.kept : &rep.removed;
		size_t *n = kept ? &rep.n_kept : &rep.n_removed;
		if (!vm_grow((void **)list, *n, kept ? &cap_kept : &cap_removed, sizeof(**list)))
			return vm_error_set(err, ENOMEM, "out of memory");
		(*list)[(*n)++] = entry;
		if (!kept)
			rep.bytes_freed += entry.bytes;
	}
	/* First sightings of volumes that are gone are forgotten with them. */
	if (!dry_run)
		vm_mgr_engine_forget_missing(m, &all);
	/* Promoted caches past the pool's ceiling, least recently used
	 * first (and every cache's last use into its record). */
	if ((r = vm_mgr_cache_ceiling(m, dry_run, &rep, err)) < 0)
		return r;
	/* qgroups of subvolumes btrfs has dropped since (the kernel removes
	 * most level-0 ones itself; what it left is stale), and level-1
	 * qgroups of volumes gone whose members are all gone. */
	if (!dry_run && m->store.quotas) {
		unsigned skipped = 0;
		int n = vm_volquota_clear_stale(&m->store.vq, &skipped, NULL);
		if (n > 0)
			rep.stale_qgroups_cleared = n;
	}
	*ret = rep;
	rep = (struct vm_gc_report){0};
	return 0;
}
