/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The store: the pool's persistent state and the steps every operation
 * on volumes and caches commits through, beneath both (the manager's
 * volumes, its caches from git, its copies) and calling nothing above.
 *
 * An operation does its work in staging/ (invisible), moves the result
 * into place with renameat2(RENAME_NOREPLACE) (publish), and writes the
 * record last: the record is the commit point.  A removal marks the
 * record "removing", moves the data into staging/ as trash, drops the
 * record, then deletes the trash (retire).  Names being made are
 * reserved in memory so two requests never build the same one.
 *
 * One lock (VM_STORE_LOCK) guards the records, the reservations, the
 * copies' holds and their counts.  The fields below are read by the
 * manager's files; the manager sets the backend and the quota state up
 * when it opens the pool (vm_manager_new), and from then on they change
 * only through these functions. */
#pragma once

#include <jansson.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>

#include "backend.h"
#include "caller.h"
#include "copy.h"
#include "names.h"
#include "pool.h"
#include "readers.h"
#include "record.h"
#include "volquota.h"

/* Copies run outside the lock; each costs threads, buffers and fds, so
 * only this many run at once and the others wait their turn. */
#define VM_STORE_COPIES_MAX 4
/* Copies one user other than root may have running or waiting. */
#define VM_STORE_COPIES_PER_UID 2

struct vm_store {
	struct vm_pool *pool;
	pthread_mutex_t lock;
	struct vm_backend backend;
	bool quotas;           /* btrfs quota accounting is on */
	struct vm_error quota_error; /* why not, when not */
	struct vm_volquota vq; /* its mode, and the volumes' qgroups */
	uint64_t quota_default; /* [quota] default: a new volume's limit */
	json_t *reserved;      /* "kind:name" of work in flight */
	/* Cache name -> when a volume was last made from it (ns), newer than
	 * its record's last_used_ns; gc writes them into the records. */
	json_t *cache_uses;
	/* Volume name -> when gc first found its engine had forgotten it
	 * (ns): gc removes it on a later pass that finds the same (gc.c). */
	json_t *engine_forgot;
	struct vm_readers readers; /* pool trees being read by copies */
	sem_t copy_slots;      /* copies running at once */
	/* Under the lock: copies in their slots, copies waiting for one, and
	 * per uid both together (at most VM_STORE_COPIES_PER_UID but root's). */
	unsigned copies_running, copies_waiting;
	struct vm_store_copy_uid {
		uint32_t uid;
		unsigned n;
	} copy_uids[64];
	vm_log_fn log;
	void *log_userdata;
};

/* ---- life (store.c) ---- */

/* Take over pool; nothing is read or repaired yet (the manager's
 * repair.c does that with the functions below). */
int vm_store_init(struct vm_store *s, struct vm_pool *pool,
		  vm_log_fn log, void *log_userdata,
		  struct vm_error *err);
void vm_store_done(struct vm_store *s);

struct vm_store_locked {
	pthread_mutex_t *m;
};
void vm_store_unlockp(struct vm_store_locked *l);
/* Hold the store's lock until the end of the enclosing block. */
#define VM_STORE_LOCK(s)                                                       \
	_cleanup_(vm_store_unlockp) struct vm_store_locked _store_guard = {&(s)->lock}; \
	pthread_mutex_lock(&(s)->lock)

/* One line to the front end's log (a copy's summary, deferred deletes). */
#define vm_store_log(s, ...) vm_log_to((s)->log, (s)->log_userdata, __VA_ARGS__)

/* ---- records (store.c) ---- */

int vm_store_data_fd(const struct vm_store *s, enum vm_kind k);
int vm_store_meta_fd(const struct vm_store *s, enum vm_kind k);
/* The path of volumes/NAME, for the engines (malloc'ed; NULL: no memory). */
char *vm_store_volume_path(const struct vm_store *s, const char *name);
int vm_store_load_record(struct vm_store *s, enum vm_kind k, const char *name,
			 struct vm_record *ret, struct vm_error *err);
/* The record of a volume or cache that is ready (not being removed). */
int vm_store_load_ready(struct vm_store *s, enum vm_kind k, const char *name,
			struct vm_record *ret, struct vm_error *err);
int vm_store_store_record(struct vm_store *s, const struct vm_record *rec,
			  struct vm_error *err);
bool vm_store_has_record(struct vm_store *s, enum vm_kind k, const char *name);
/* Does kind k have data under name? */
bool vm_store_data_exists(struct vm_store *s, enum vm_kind k, const char *name);
int vm_store_unlink_record(struct vm_store *s, enum vm_kind k, const char *name,
			   struct vm_error *err);
/* "NAME.json" -> NAME in buf; false for any other file name. */
bool vm_store_record_name(const char *file, char buf[static VM_NAME_MAX + 1]);
/* The names with a record of kind k, as an object NAME -> true, read
 * without the lock through a directory fd of its own.  NULL: no memory
 * or the directory cannot be read. */
json_t *vm_store_names(struct vm_store *s, enum vm_kind k);
/* Creation time, creator (uid, pid, container cgroup), and from opts (may
 * be NULL) labels, expiry and the seed rule that named the source. */
void vm_store_record_birth(struct vm_record *rec, const struct vm_caller *caller,
			   const struct vm_create_opts *opts);

/* ---- names in flight (store.c) ---- */

/* Under the lock: the name is taken, by a record, by data, or by work in
 * flight. */
bool vm_store_name_taken(struct vm_store *s, enum vm_kind k, const char *name);
void vm_store_reserve(struct vm_store *s, enum vm_kind k, const char *name, bool on);
/* Under the lock: a key of work that excludes itself ("update:NAME"):
 * on 1 sets it, 0 clears it, -1 only asks; returns whether it was set. */
bool vm_store_busy(struct vm_store *s, const char *key, int on);

/* ---- sources and limits (store.c) ---- */

/* Under the lock: when cache rec was last used to make a volume: the
 * newer of its record and the uses since (vm_store_open_source counts
 * each); 0: never. */
int64_t vm_store_cache_last_used(const struct vm_store *s, const struct vm_record *rec);

/* What a source's record promises about its tree, for a copy of it. */
struct vm_source_traits {
	bool no_xattrs;  /* nothing in it has an extended attribute (vm_record.no_xattrs) */
	/* No device node in it: a cache only volmgrd and the git user wrote
	 * (imported or from git), not one promoted from a job's volume. */
	bool no_devices;
};
/* Open a ready cache or volume; ret_traits (may be NULL) gets what its
 * record promises. */
int vm_store_open_source(struct vm_store *s, const struct vm_source *src, int *ret_fd,
			 struct vm_source_traits *ret_traits, struct vm_error *err);
/* Set the limit of a new volume's subvolume (still in staging) from the
 * options or the pool default (vm_volquota_apply: with simple quotas its
 * level-1 qgroup, made even without a limit); ret_bytes gets the limit
 * (0: none). */
int vm_store_apply_quota(struct vm_store *s, uint64_t subvol_id,
			 const struct vm_create_opts *opts, uint64_t *ret_bytes,
			 struct vm_error *err);

/* ---- staging, publishing, retiring (store-staging.c) ---- */

/* "what-NAME-<random>": a name in staging/. */
void vm_store_staging_name(const char *what, const char *name,
			   char buf[static VM_NAME_MAX + 64]);
/* Delete staging/name, a subvolume or (left by a crash) a plain tree. */
int vm_store_delete_staged(struct vm_store *s, const char *name, struct vm_error *err);
/* Move dir/name into staging/ and delete it (0 if it is not there). */
int vm_store_discard_data(struct vm_store *s, int dirfd, const char *name,
			  struct vm_error *err);
/* Move staging/tmp to dir/name, unless name exists. */
int vm_store_publish(struct vm_store *s, const char *tmp, int dirfd, const char *name,
		     struct vm_error *err);
/* Without the lock: delete staging/name now, or when the copies reading
 * it end. */
int vm_store_delete_trash(struct vm_store *s, const char *name, struct vm_error *err);
/* Under the lock: mark rec removing, move its data into staging/ as
 * trash (its name in trash, "" if it had to be deleted in place: a full
 * pool), drop the record.  The name is free from here on. */
int vm_store_retire(struct vm_store *s, struct vm_record *rec,
		    char trash[static VM_NAME_MAX + 64], struct vm_error *err);
/* Without the lock: delete the trash (or leave it to the last copy still
 * reading it), and the volume's qgroups. */
int vm_store_retire_finish(struct vm_store *s, const char *trash, uint64_t subvol_id,
			   struct vm_error *err);

/* ---- copies (store-copies.c) ---- */

/* A pool tree held open by a copy: deletes of it wait (readers.h). */
struct vm_store_hold {
	bool held;
	dev_t dev;
	ino_t ino;
};
/* Under the lock: register the tree open at fd as being read. */
int vm_store_hold(struct vm_store *s, int fd, struct vm_store_hold *ret, struct vm_error *err);
/* Without the lock: the copy ended; run the deletes that waited. */
void vm_store_release(struct vm_store *s, struct vm_store_hold *h);
/* A copy for caller: counted (EBUSY past the caller's share), then waits
 * for a slot (start), then gives it back (leave). */
int vm_store_copy_enter(struct vm_store *s, const struct vm_caller *caller,
			struct vm_error *err);
void vm_store_copy_start(struct vm_store *s);
void vm_store_copy_leave(struct vm_store *s, const struct vm_caller *caller);
/* Copy options for a copy of the tree at src_fd: read as caller (NULL or
 * root: as the daemon), progress from opts with totals counted first. */
void vm_store_copy_opts(struct vm_store *s, int src_fd, const struct vm_create_opts *opts,
			const struct vm_caller *caller, struct vm_reader *reader,
			struct vm_copy_opts *ret);
/* Make a tree written into the pool (by a copy, by git) durable before
 * the record that commits it is written: after a power loss the record
 * must never name files that were only in the page cache.  syncfs of
 * the pool (one transaction commit on btrfs, a journal commit on ext4
 * and XFS) -- cheaper than an fsync per file.  ret_ns: how long. */
int vm_store_make_durable(int fd, uint64_t *ret_ns, struct vm_error *err);
/* The summary line of one copy, to the log. */
/* Without the lock, a tree held (vm_store_hold): a writable clone of the
 * pool tree open at src (a cache, or a volume) as staging/tmp, by the
 * copy or reflink backend's copy (btrfs snapshots instead, under the
 * lock); what and name for the copy's log line. */
int vm_store_clone_staged(struct vm_store *s, int src, bool src_is_cache, const char *tmp,
			  const char *what, const char *name, struct vm_error *err);
void vm_store_log_copy(struct vm_store *s, const char *what, const char *name,
		       const struct vm_copy_report *rep);
