/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared by the files that implement the manager (manager.c for volumes
 * and imported caches, gitcache.c for caches from git): the manager's
 * state, its lock, and the staged-work primitives.  Not for front ends. */
#pragma once

#include <pthread.h>
#include <semaphore.h>

#include "backend.h"
#include "config.h"
#include "gitrun.h"
#include "holders.h"
#include "json-util.h"
#include "manager.h"
#include "readers.h"
#include "record.h"
#include "volquota.h"

struct vm_manager {
	struct vm_pool *pool;
	pthread_mutex_t lock;
	char *proc;
	char *vol_prefix;  /* volumes/ as seen in mountinfo's root field */
	char *vol_path;    /* volumes/ as a path (overlay layers name it so) */
	json_t *importing; /* "kind:name" of work in flight */
	struct vm_config config;
	struct vm_git git; /* uid 0 when the git user is unusable */
	struct vm_error git_error;
	bool quotas;       /* btrfs quota accounting is on */
	struct vm_error quota_error;
	struct vm_volquota vq; /* its mode, and the volumes' qgroups */
	struct vm_backend backend;
	struct vm_readers readers; /* pool trees being read by copies */
	sem_t copy_slots;          /* copies running at once (VM_MGR_COPIES_MAX) */
	/* Under the lock: copies in their slots, copies waiting for one, and
	 * per uid both together (at most VM_MGR_COPIES_PER_UID but root's). */
	unsigned copies_running, copies_waiting;
	struct vm_copy_uid {
		uint32_t uid;
		unsigned n;
	} copy_uids[64];
	void (*log)(void *userdata, const char *line);
	void *log_userdata;
	char driver[64]; /* the engines' name for the plugin, for messages */
};

/* Copies run outside the lock; each costs threads, buffers and fds, so
 * only this many run at once and the others wait their turn. */
#define VM_MGR_COPIES_MAX 4
/* Copies one user other than root may have running or waiting. */
#define VM_MGR_COPIES_PER_UID 2

/* A copy for caller: counted (EBUSY past the caller's share), then
 * waits for a slot (start), then gives it back (leave). */
int vm_mgr_copy_enter(struct vm_manager *m, const struct vm_caller *caller, struct vm_error *err);
void vm_mgr_copy_start(struct vm_manager *m);
void vm_mgr_copy_leave(struct vm_manager *m, const struct vm_caller *caller);

struct vm_locked {
	pthread_mutex_t *m;
};
void vm_unlockp(struct vm_locked *l);
/* Hold the manager's lock until the end of the enclosing block. */
#define LOCK_GUARD(mgr)                                                        \
	_cleanup_(vm_unlockp) struct vm_locked _guard = {&(mgr)->lock};         \
	pthread_mutex_lock(&(mgr)->lock)

static inline void vm_recordp(struct vm_record *r) { vm_record_done(r); }
#define recordp vm_recordp

int vm_mgr_data_fd(struct vm_manager *m, enum vm_kind k);
int vm_mgr_meta_fd(struct vm_manager *m, enum vm_kind k);
int vm_mgr_load_record(struct vm_manager *m, enum vm_kind k, const char *name,
		       struct vm_record *ret, struct vm_error *err);
int vm_mgr_store_record(struct vm_manager *m, const struct vm_record *rec,
			struct vm_error *err);
/* At start-up: if a git cache's checkout is at another commit than its
 * record says (a crash between an update's swap and its record), bring
 * the record up to date.  1 if it did, 0 if nothing to do, -errno. */
int vm_mgr_git_catch_up(struct vm_manager *m, int cache_fd, struct vm_record *rec,
			struct vm_error *err);
/* "what-NAME-<random>": a name in staging/. */
void vm_mgr_staging_name(const char *what, const char *name,
			 char buf[static VM_NAME_MAX + 64]);
int vm_mgr_delete_staged(struct vm_manager *m, const char *name, struct vm_error *err);
/* Move dir/name into staging/ and delete it. */
int vm_mgr_discard_data(struct vm_manager *m, int dirfd, const char *name,
			struct vm_error *err);
/* Move staging/tmp to dir/name, unless name exists. */
int vm_mgr_publish(struct vm_manager *m, const char *tmp, int dirfd,
		   const char *name, struct vm_error *err);
/* Open a ready cache or volume.  ret_no_xattrs (may be NULL): its record
 * says it has no extended attributes (vm_record.no_xattrs). */
int vm_mgr_open_source(struct vm_manager *m, const struct vm_source *src,
		       int *ret_fd, bool *ret_no_xattrs, struct vm_error *err);
/* The name is taken: by a record, by data, or by work in flight. */
bool vm_mgr_name_taken(struct vm_manager *m, enum vm_kind k, const char *name);
void vm_mgr_reserve(struct vm_manager *m, enum vm_kind k, const char *name, bool on);
/* Set the limit of a new volume's subvolume (still in staging) from the
 * options or the pool default (vm_volquota_apply: with simple quotas its
 * level-1 qgroup, made even without a limit); ret_bytes gets the limit
 * (0: none). */
int vm_mgr_apply_quota(struct vm_manager *m, uint64_t subvol_id,
		       const struct vm_create_opts *opts, uint64_t *ret_bytes,
		       struct vm_error *err);
/* A pool tree held open by a copy: deletes of it wait (readers.h). */
struct vm_mgr_hold {
	bool held;
	dev_t dev;
	ino_t ino;
};
/* Under the lock: register the tree open at fd as being read. */
int vm_mgr_hold(struct vm_manager *m, int fd, struct vm_mgr_hold *ret, struct vm_error *err);
/* Without the lock: the copy ended; run the deletes that waited. */
void vm_mgr_release(struct vm_manager *m, struct vm_mgr_hold *h);
/* Without the lock: delete staging/name now, or when the copies reading
 * it end. */
int vm_mgr_delete_trash(struct vm_manager *m, const char *name, struct vm_error *err);
/* Copy options for a copy the manager runs: io from the backend,
 * progress from opts, totals counted first when progress is wanted. */
void vm_mgr_copy_opts(struct vm_manager *m, int src_fd, const struct vm_create_opts *opts,
		      const struct vm_caller *caller, struct vm_reader *reader,
		      struct vm_copy_opts *ret);
/* Make a tree written into the pool (by a copy, by git) durable before
 * the record that commits it is written: after a power loss the record
 * must never name files that were only in the page cache.  syncfs of
 * the pool (one transaction commit on btrfs, a journal commit on ext4
 * and XFS) -- cheaper than an fsync per file.  ret_ns: how long. */
int vm_mgr_make_durable(int fd, uint64_t *ret_ns, struct vm_error *err);
/* The summary line of one copy, to the front end's log. */
void vm_mgr_log_copy(struct vm_manager *m, const char *what, const char *name,
		     const struct vm_copy_report *rep);
void vm_mgr_log(struct vm_manager *m, const char *fmt, ...) _printf_(2, 3);
/* The machine's mounts of volumes (inuse.h), scanned without the lock:
 * NAME -> count, and "" -> processes whose mounts could not be read. */
int vm_mgr_inuse_counts(struct vm_manager *m, json_t **ret, struct vm_error *err);

/* What may still use a volume, looked at without the lock (mgrusage.c). */
struct vm_mgr_usage {
	json_t *counts;         /* vm_mgr_inuse_counts' answer */
	int holder;             /* 1: a process holds it open, 0: none, <0: cannot tell */
	struct vm_holder who;
	unsigned hidden;        /* processes the holder scan may not look into */
	struct vm_error holder_err;
	json_t *mounts_asked;   /* the recorded Mounts the engines were asked about */
	int engines;            /* vm_engines_use_volume's answer; -ENOENT: not asked */
	struct vm_error engines_err;
};
/* Fill u for volume name: counts (a scan shared by several checks; NULL:
 * scan now), then holders, then -- for recorded mounts (the record's
 * mounts object, copied) and nothing else -- the engines. */
int vm_mgr_usage_check(struct vm_manager *m, const char *name, json_t *counts, json_t *mounts,
		       struct vm_mgr_usage *u, struct vm_error *err);
/* Under the lock: 0 if rec may go, 1 if it may go once the engines'
 * confirmed stale Mounts, now dropped from rec->mounts, are stored,
 * -EBUSY with the reason otherwise. */
int vm_mgr_usage_verdict(struct vm_manager *m, struct vm_record *rec, const struct vm_mgr_usage *u,
			 struct vm_error *err);
void vm_mgr_usage_done(struct vm_mgr_usage *u);
/* Remove a volume for caller (NULL: the daemon itself) if nothing uses
 * it; counts: a scan the caller made already (gc), or NULL.  ask_engines:
 * recorded Mounts without kernel mounts are put to the engines of
 * [engines] (rm and gc; an engine's own Remove does not wait on them). */
int vm_mgr_remove_volume(struct vm_manager *m, const char *name, const struct vm_caller *caller,
			 json_t *counts, bool ask_engines, struct vm_error *err);
/* Drop the recorded Mounts of a volume that nothing mounts or holds,
 * once every engine in [engines] confirms it does not use it.  1 if
 * dropped, 0 if not (in use, no engine configured, or they cannot tell). */
int vm_mgr_prune_mounts(struct vm_manager *m, const char *name, json_t *counts);

/* Creation time, creator (uid, pid, container cgroup), labels, expiry. */
void vm_mgr_record_birth(struct vm_record *rec, const struct vm_caller *caller,
			 json_t *labels, int64_t ttl_ns);
