/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The volume manager: every operation on volumes and caches, ordered so
 * that a crash at any point leaves a state that vm_manager_new() repairs.
 *
 * Each operation does its work in staging/ (invisible), moves the result
 * into place with renameat2(RENAME_NOREPLACE), and writes the record last:
 * the record is the commit point.  Removal marks the record "removing",
 * moves the subvolume into staging/, drops the record, then deletes. */
#pragma once

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "caller.h"
#include "names.h"
#include "pool.h"
#include "util.h"
#include "results.h"
#include "volinfo.h"

struct vm_manager;


struct vm_config;

struct vm_backend;

struct vm_manager_config {
	const char *proc; /* "/proc"; tests may point elsewhere */
	const struct vm_config *config; /* seed rules; copied; may be NULL */
	/* The pool's backend (vm_backend_choose); copied.  NULL: probe
	 * with [pool] backend and [copy] io from config. */
	const struct vm_backend *backend;
	/* Where the manager's few log lines go (a copy's summary, deferred
	 * deletes): the front end's logger.  May be NULL. */
	vm_log_fn log;
	/* Each repair vm_manager_new does at start-up, one line (the daemon
	 * logs them); called with log_userdata.  May be NULL. */
	vm_log_fn repair;
	void *log_userdata;
	/* The engines' name for the plugin (its socket's name), for
	 * messages that tell how to create a volume; NULL: "volmgr". */
	const char *driver;
};

/* Open the manager on an open pool (which it takes over) and repair what
 * a crash left behind (each repair to cfg->repair). */
int vm_manager_new(struct vm_pool *pool, const struct vm_manager_config *cfg,
		   struct vm_manager **ret, struct vm_error *err);
void vm_manager_free(struct vm_manager *m);

const struct vm_pool *vm_manager_pool(const struct vm_manager *m);
const struct vm_backend *vm_manager_backend(const struct vm_manager *m);
/* The pool, its backend and how it was chosen, the copy io and why,
 * quotas, the copies (results.h). */
void vm_manager_status(struct vm_manager *m, struct vm_manager_status *ret);
const char *vm_manager_proc(const struct vm_manager *m);
/* The volumes directory as mountinfo's root field shows it ("/volumes"
 * for a pool at the top of its file system). */
const char *vm_manager_volumes_fs_path(const struct vm_manager *m);

int vm_volume_create(struct vm_manager *m, const char *name,
		     const struct vm_create_opts *opts,
		     const struct vm_caller *caller, struct vm_error *err);
/* An engine asked about volume name (its Get, or a Create of a name that
 * exists): it knows the volume again, so a Remove of it volmgrd refused
 * no longer counts as one the engine forgot (gcengine.c). */
void vm_volume_engine_asked(struct vm_manager *m, const char *name);
/* An engine's Remove (the plugin); engine: which one asks ("" for a peer
 * vm_caller_engine does not name).  Refused because something uses the
 * volume, a Remove from the engine that made it is recorded: gc takes
 * the volume once nothing uses it (gcengine.c). */
int vm_volume_remove(struct vm_manager *m, const char *name, const char *engine,
		     struct vm_error *err);
/* The same for a caller: one that is not root may remove only the
 * volumes it created (EPERM). */
int vm_volume_remove_as(struct vm_manager *m, const char *name, const struct vm_caller *caller,
			struct vm_error *err);
/* An engine's Mount and Unmount: counted per ID (Docker mounts one ID
 * twice for `docker cp` into a running container and unmounts it once),
 * and kept until the matching Unmount, or until the engines configured
 * in [engines] confirm that none of them uses the volume (gc, rm) --
 * never dropped by a timer.  At most VM_MOUNTS_MAX IDs per volume: past
 * that Mount fails (EMFILE) and the volume stays readable. */
int vm_volume_mount(struct vm_manager *m, const char *name, const char *id,
		    char **ret_path, struct vm_error *err);
int vm_volume_unmount(struct vm_manager *m, const char *name, const char *id,
		      struct vm_error *err);
/* What the manager knows of a volume (volinfo.h); release it with
 * vm_volume_info_done / vm_volume_info_list_done.
 * with_usage: also scan the machine's mounts for in_use/kernel_mounts
 * (costs a walk over /proc, done before the store's lock is taken; the
 * plugin's Get and List do not need it).  Without it, in_use says only
 * whether engines recorded Mounts without their Unmount.  ret is not
 * touched on failure. */
int vm_volume_get(struct vm_manager *m, const char *name, bool with_usage,
		  struct vm_volume_info *ret, struct vm_error *err);
int vm_volume_list(struct vm_manager *m, bool with_usage,
		   struct vm_volume_info_list *ret, struct vm_error *err);

/* Create volume name from the directory a caller opened (src_fd): when it
 * is the root of a volume, a snapshot of that volume; otherwise a copy of
 * the tree (data shared with clones where the file system can).  path is
 * the caller's name for it, recorded as source "path:PATH".  ret_how (may
 * be NULL) says which (results.h): a snapshot of a volume (a clone off
 * btrfs), or a copy with its counts. */
int vm_volume_create_from_fd(struct vm_manager *m, const char *name, int src_fd,
			     const char *path, const struct vm_create_opts *opts,
			     const struct vm_caller *caller, struct vm_create_how *ret_how,
			     struct vm_error *err);
/* The volume holding the directory a caller opened, and whether fd is its
 * top.  ENOENT if none. */
int vm_volume_which(struct vm_manager *m, int fd, struct vm_volume_place *ret,
		    struct vm_error *err);

/* A cache from git: clone URL (branch, or the default branch) as the git
 * user; ret gets its git state. */
int vm_cache_create_git(struct vm_manager *m, const char *name, const char *url,
			const char *branch, const struct vm_caller *caller,
			struct vm_git_result *ret, struct vm_error *err);
/* Fetch and check out the branch into a new generation and publish it
 * atomically; on failure the current generation stays.  EBUSY while
 * another update of the cache runs.  ret: the new state and the commit
 * before. */
int vm_cache_update(struct vm_manager *m, const char *name, struct vm_git_result *ret,
		    struct vm_error *err);
/* A volume from cache:NAME@REV: a snapshot of the current generation,
 * then REV checked out in it (fetched first if missing).  An unknown REV
 * is ENOENT and leaves no volume. */
int vm_volume_create_at_rev(struct vm_manager *m, const char *name,
			    const struct vm_create_opts *opts, const struct vm_caller *caller,
			    struct vm_error *err);

/* The volume holding the directory a caller opened (fd, the top of a git
 * checkout or not) becomes the next generation of cache name (NULL: the
 * cache the seed rule that made the volume named), created if absent: a
 * snapshot of the volume's top (O(1) on btrfs, a clone elsewhere), with
 * the checkout's .git defused (vm_git_repo_defuse); where fd is inside
 * the volume is found by walking up from it, and checked.  A
 * cache that seed rules fill takes only a volume its rule made for it
 * (EPERM); a git cache is refused (EINVAL); an older commit than the
 * cache's (opts) keeps the cache (ret->promoted false, with the
 * reason). */
int vm_cache_promote(struct vm_manager *m, int fd, const char *name,
		     const struct vm_promote_opts *o, const struct vm_caller *caller,
		     struct vm_promote_result *ret, struct vm_error *err);

/* Copy the tree open at src_fd into a new read-only cache.  opts: only
 * its progress callback is used; may be NULL. */
int vm_cache_import(struct vm_manager *m, const char *name, int src_fd,
		    const struct vm_create_opts *opts, const struct vm_caller *caller,
		    struct vm_copy_stats *ret_stats, struct vm_error *err);
/* A btrfs pool only.  Export: write cache name's current generation to
 * out_fd (a pipe, socket or regular file open for writing): one line of
 * JSON (VM_CACHE_STREAM_MAGIC, the cache's name, generation, commit,
 * checkout, commit time, git remote, the volume it was promoted from),
 * then a whole-subvolume btrfs send stream of a read-only snapshot of it.
 * Import: read such a stream from in_fd into a new cache (name NULL: the
 * one the stream names): the header's fields checked as a record's, the
 * btrfs stream checked command by command (sendstream.h) on its way into
 * `btrfs receive` confined to a directory of staging/, every .git in the
 * result defused, its HEAD checked against the header's commit. */
#define VM_CACHE_STREAM_MAGIC "volmgr-cache-stream"
int vm_cache_export(struct vm_manager *m, const char *name, int out_fd,
		    struct vm_stream_result *ret, struct vm_error *err);
int vm_cache_import_stream(struct vm_manager *m, const char *name, const char *git_url,
			   int in_fd, const struct vm_caller *caller, struct vm_stream_result *ret,
			   struct vm_error *err);

/* What the manager knows of a cache (volinfo.h); release it with
 * vm_cache_info_done / vm_cache_info_list_done.  ret is not touched on
 * failure. */
int vm_cache_list(struct vm_manager *m, struct vm_cache_info_list *ret,
		  struct vm_error *err);
int vm_cache_get(struct vm_manager *m, const char *name, struct vm_cache_info *ret,
		 struct vm_error *err);
int vm_cache_remove(struct vm_manager *m, const char *name,
		    struct vm_error *err);
