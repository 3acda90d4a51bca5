/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Whether a volume may go: nothing mounts it (every mount namespace's
 * table), no process holds it open without a mount (holders.h), and
 * every Mount an engine recorded was unmounted -- or the engines
 * configured in [engines] confirm they no longer use it.  All of that is
 * looked at without the store's lock (a scan costs the request that
 * asks, a stalled engine socket too); the verdict is taken under it,
 * against the record as it is then. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "btrfs.h"
#include "engines.h"
#include "holders.h"
#include "inuse.h"
#include "manager-private.h"

/* Nested subvolumes whose files mark a volume as held (a nested podman
 * makes a few dozen; the delete walks as many); past this, or deeper
 * than the delete holds open, the ones beyond are not looked for: a job
 * that hides a holder there hides it from itself only. */
#define HOLDER_DEVS_MAX 65536

/* The device numbers that mark the volume's files: on btrfs its
 * subvolume's and those of the subvolumes nested in it (every subvolume
 * has its own); elsewhere the pool's, with the top's inode to walk up
 * to. */
static int holders_target(struct vm_manager *m, const char *name, dev_t *devs,
			  struct vm_holders_target *t)
{
	_cleanup_close_ int fd = vm_openat_beneath(m->store.pool->volumes_fd, name,
						   O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return fd < 0 ? fd : -errno;
	devs[0] = st.st_dev;
	/* A subvolume has a device number of its own; a plain directory (a
	 * pool that changed backends) shares the pool's. */
	bool subvol = vm_btrfs_is_subvolume(fd) > 0;
	size_t nested = 0;
	if (subvol)
		(void)vm_btrfs_nested_devs(fd, devs + 1, HOLDER_DEVS_MAX - 1, &nested);
	*t = (struct vm_holders_target){.devs = devs, .n_devs = 1 + nested, .by_dev = subvol,
					.top_ino = st.st_ino, .pool_fd = m->store.pool->volumes_fd};
	return 0;
}

int vm_mgr_usage_check(struct vm_manager *m, const char *name, json_t *counts, json_t *mounts,
		       struct vm_mgr_usage *u, struct vm_error *err)
{
	*u = (struct vm_mgr_usage){.engines = -ENOENT};
	if (counts) {
		u->counts = json_incref(counts);
	} else {
		int r = vm_mgr_inuse_counts(m, &u->counts, err);
		if (r < 0)
			return r;
	}
	if (json_integer_value(json_object_get(u->counts, name)) > 0 ||
	    json_integer_value(json_object_get(u->counts, "")) > 0)
		return 0; /* mounted, or cannot tell: nothing else changes that */
	_cleanup_free_ dev_t *devs = calloc(HOLDER_DEVS_MAX, sizeof(*devs));
	struct vm_holders_target t;
	if (devs && holders_target(m, name, devs, &t) == 0)
		u->holder = vm_holders_find(m->proc, &t, getpid(), &u->who, &u->hidden,
					    &u->holder_err);
	if (u->holder != 0 || json_object_size(mounts) == 0)
		return 0;
	/* Mounts an engine recorded, and no kernel mount: ask the engines. */
	u->mounts_asked = json_deep_copy(mounts);
	u->engines = vm_engines_use_volume(m->config.engines, m->config.n_engines, name,
					   m->config.engine_timeout_ms, &u->engines_err);
	return 0;
}

void vm_mgr_usage_done(struct vm_mgr_usage *u)
{
	json_decref(u->counts);
	json_decref(u->mounts_asked);
	*u = (struct vm_mgr_usage){0};
}

int vm_mgr_usage_verdict(struct vm_manager *m, struct vm_record *rec, const struct vm_mgr_usage *u,
			 struct vm_error *err)
{
	const char *name = rec->name;
	json_int_t unread = json_integer_value(json_object_get(u->counts, ""));
	json_int_t kernel = json_integer_value(json_object_get(u->counts, name));
	if (unread > 0)
		return vm_error_set(err, EBUSY,
				    "cannot tell whether volume %s is in use: %lld processes' mounts are unreadable (volmgrd needs CAP_SYS_PTRACE)",
				    name, (long long)unread);
	if (kernel > 0)
		return vm_error_set(err, EBUSY, "volume %s is in use (%lld mount(s) by containers)",
				    name, (long long)kernel);
	if (u->holder > 0)
		return vm_error_set(err, EBUSY,
				    "volume %s is in use: process %d (%s) holds it open without a mount (%s)",
				    name, (int)u->who.pid, u->who.comm, u->who.what);
	if (u->holder < 0)
		return vm_error_set(err, EBUSY, "cannot tell whether volume %s is in use: %s", name,
				    u->holder_err.msg);
	size_t n = json_object_size(rec->mounts);
	if (n == 0)
		return 0;
	/* The engines' word counts only for the Mounts they were asked
	 * about: one that came meanwhile is theirs and live. */
	if (u->engines == 0 && json_equal(rec->mounts, u->mounts_asked)) {
		vm_store_log(&m->store, "volume %s: dropped %zu engine mount(s) without Unmount: no engine uses it",
			   name, n);
		json_object_clear(rec->mounts);
		return 1;
	}
	char why[sizeof(u->engines_err.msg)];
	if (!u->mounts_asked)
		snprintf(why, sizeof(why),
			 "if they are stale, volmgr rm and gc drop them once the engines in [engines] confirm");
	else if (u->engines > 0)
		snprintf(why, sizeof(why), "an engine still uses it");
	else if (u->engines < 0)
		snprintf(why, sizeof(why), "%s", u->engines_err.msg);
	else
		snprintf(why, sizeof(why), "a Mount came meanwhile");
	return vm_error_set(err, EBUSY,
			    "volume %s is in use (%zu engine mount(s) without Unmount; %s)", name, n,
			    why);
}

int vm_mgr_prune_mounts(struct vm_manager *m, const char *name, json_t *counts)
{
	_cleanup_json_ json_t *mounts = NULL;
	{
		VM_STORE_LOCK(&m->store);
		_cleanup_record_ struct vm_record rec = {0};
		if (vm_store_load_record(&m->store, VM_KIND_VOLUME, name, &rec, NULL) < 0 ||
		    rec.state != VM_STATE_READY || json_object_size(rec.mounts) == 0)
			return 0;
		mounts = json_incref(rec.mounts);
	}
	struct vm_mgr_usage u;
	if (vm_mgr_usage_check(m, name, counts, mounts, &u, NULL) < 0)
		return 0;
	VM_STORE_LOCK(&m->store);
	_cleanup_record_ struct vm_record rec = {0};
	int r = vm_store_load_record(&m->store, VM_KIND_VOLUME, name, &rec, NULL);
	if (r == 0 && rec.state == VM_STATE_READY)
		r = vm_mgr_usage_verdict(m, &rec, &u, NULL);
	vm_mgr_usage_done(&u);
	if (r != 1)
		return 0;
	return vm_store_store_record(&m->store, &rec, NULL) == 0;
}

/* The machine's mounts of volumes, read without the store's lock (a
 * namespace with 100,000 mounts must cost only the request that asks).
 * When some processes' mounts cannot be read, the scan is incomplete:
 * every volume then counts as in use (fail closed), marked by the key ""
 * holding the number unread. */
int vm_mgr_inuse_counts(struct vm_manager *m, json_t **ret, struct vm_error *err)
{
	unsigned unreadable = 0;
	/* Only volumes are counted: no mount table can make the scan hold
	 * more names than there are volumes. */
	_cleanup_json_ json_t *names = vm_store_names(&m->store, VM_KIND_VOLUME);
	if (!names)
		return vm_error_set(err, ENOMEM, "cannot list the volumes");
	const struct vm_inuse_where where = {m->store.pool->sb_dev, m->vol_prefix, m->vol_path, names};
	int r = vm_inuse_scan(m->proc, &where, ret, &unreadable, err);
	if (r == 0 && unreadable)
		json_object_set_new(*ret, "", json_integer(unreadable));
	return r;
}
