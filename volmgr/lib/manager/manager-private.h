/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared by the files that implement the manager: its state, and the
 * few functions one part of it offers another.  Each file uses the store
 * (store.h) beneath and calls only the files listed after its arrow;
 * no circle (tests/unit/layering.py checks it).  Not for front ends.
 *
 *   manager.c   opening the manager, status, get and list -> repair.c, usage.c
 *   repair.c    start-up repair -> gitcache.c (a checkout's catch-up)
 *   volumes.c   create, remove, Mount/Unmount -> copyin.c, gitcache.c, usage.c
 *   volfd.c     a caller's directory: which volume, a volume from it
 *               -> volumes.c, copyin.c
 *   copyin.c    a copy into a new volume or cache
 *   gitcache.c  caches from git, volumes at a commit
 *   promote.c   a volume becomes a cache's new generation -> volfd.c
 *   usage.c     what uses a volume: mounts, holders, engines
 *   gc.c        what may go -> volumes.c, usage.c, manager.c, cachegc.c
 *   cachegc.c   the caches' ceiling: least recently used promoted caches
 *               go while the pool is past [cache] max_usage -> volumes.c */
#pragma once

#include "config.h"
#include "gitrepo.h"
#include "gitrun.h"
#include "holders.h"
#include "json-util.h"
#include "manager.h"
#include "store.h"

struct vm_manager {
	struct vm_store store; /* the pool, its records, its lock */
	char *proc;
	char *vol_prefix;  /* volumes/ as seen in mountinfo's root field */
	char *vol_path;    /* volumes/ as a path (overlay layers name it so) */
	struct vm_config config;
	struct vm_git git; /* uid 0 when the git user is unusable */
	struct vm_error git_error;
	char driver[64]; /* the engines' name for the plugin, for messages */
	vm_log_fn repair; /* vm_manager_config */
	/* Under the store's lock: until when (monotonic ns) gc asks an
	 * engine of [engines] nothing more, after it let a question time
	 * out (gcengine.c). */
	int64_t engine_quiet_until[VM_ENGINES_MAX];
};

/* repair.c: what a crash left behind, one line per repair to m->repair. */
int vm_mgr_repair(struct vm_manager *m, struct vm_error *err);

/* volumes.c: a volume name that caller (not root) may not take: a seed
 * rule or a reserved prefix claims it (EPERM). */
int vm_mgr_reserved_check(struct vm_manager *m, const char *name, const struct vm_caller *caller,
			  struct vm_error *err);

/* copyin.c: copy the tree open at src_fd into a new volume or cache
 * k/name: reserve the name, copy into staging/ without the lock, then
 * publish and commit the record under it.  clone: src_fd is a tree of
 * the pool, cloned the backend's way; else a caller's tree, read as the
 * caller.  ret_stats (may be NULL): the copy's counts. */
int vm_mgr_copy_in(struct vm_manager *m, enum vm_kind k, const char *name, int src_fd,
		   const struct vm_source *source, bool clone,
		   const struct vm_source_traits *traits,
		   const struct vm_create_opts *opts, const struct vm_caller *caller,
		   struct vm_copy_stats *ret_stats, struct vm_error *err);

/* gitcache.c: at start-up, if a git or promoted cache's checkout is at
 * another commit than its record says (a crash between an update's or a
 * promote's swap and its record), bring the record up to date.  1 if it did, 0 if nothing to do, -errno. */
int vm_mgr_git_catch_up(struct vm_manager *m, int cache_fd, struct vm_record *rec,
			struct vm_error *err);

/* volfd.c: the caller's directory fd, reopened through the pool's own
 * mount (so that ".." walks the pool, not the caller's bind mount);
 * -errno if the file system or the capability is missing. */
int vm_mgr_reopen_in_pool(struct vm_manager *m, int fd);

/* cachegc.c: record the caches' last uses; past [cache] max_usage, drop
 * (dry_run: list) the least recently used promoted caches into rep. */
int vm_mgr_cache_ceiling(struct vm_manager *m, bool dry_run, struct vm_gc_report *rep,
			 struct vm_error *err);

/* usage.c: the machine's mounts of volumes (inuse.h), scanned without the lock:
 * NAME -> count, and "" -> processes whose mounts could not be read. */
int vm_mgr_inuse_counts(struct vm_manager *m, json_t **ret, struct vm_error *err);

/* What may still use a volume, looked at without the lock (usage.c). */
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
/* volumes.c: remove a volume for caller (NULL: the daemon itself) if nothing uses
 * it; counts: a scan the caller made already (gc), or NULL.  ask_engines:
 * recorded Mounts without kernel mounts are put to the engines of
 * [engines] (rm and gc; an engine's own Remove does not wait on them). */
/* forgot (gc, NULL otherwise): remove only if, under the lock of the
 * verdict, its engine still counts as having forgotten it (gcengine.c:
 * the refused Remove *forgot, and the first sighting, still there). */
int vm_mgr_remove_volume(struct vm_manager *m, const char *name, const struct vm_caller *caller,
			 json_t *counts, bool ask_engines, const int64_t *forgot,
			 struct vm_error *err);
/* usage.c: drop the recorded Mounts of a volume that nothing mounts or holds,
 * once every engine in [engines] confirms it does not use it.  1 if
 * dropped, 0 if not (in use, no engine configured, or they cannot tell). */
int vm_mgr_prune_mounts(struct vm_manager *m, const char *name, json_t *counts);

/* gcengine.c: for gc, a volume rec that nothing uses: VM_GC_ENGINE_FORGOT
 * with note empty if the engine that created it forgot it on this and an
 * earlier collection (remove it); VM_GC_ENGINE_FORGOT with a note if
 * only on this one, or if the engine cannot tell (keep it, say why); 0
 * otherwise.  dry_run: remembers nothing. */
unsigned vm_mgr_engine_forgot(struct vm_manager *m, const struct vm_record *rec, bool dry_run,
			      int64_t now, char *note, size_t note_size);
/* For gc, before it removes a volume an engine created (expired, say):
 * true, with a note, if a container of that engine ([engines]) names it
 * -- a job's containers between two stages, when nothing mounts it --
 * or the engine cannot tell. */
bool vm_mgr_engine_keeps(struct vm_manager *m, const struct vm_record *rec, char *note,
			 size_t note_size);
/* gcengine.c: drop the first sighting of name (in use again, or removed),
 * and those of volumes no longer in all. */
void vm_mgr_engine_forget(struct vm_manager *m, const char *name);
void vm_mgr_engine_forget_missing(struct vm_manager *m, const struct vm_volume_info_list *all);
