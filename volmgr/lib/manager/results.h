/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the manager's operations answer, besides volume and cache infos
 * (volinfo.h): plain structs.  The protocols (lib/proto) turn them into
 * their replies; the manager spells no reply key itself.  Strings held by
 * pointer belong to the manager and live as long as it does. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "backend.h"
#include "copy.h"
#include "names.h"
#include "record.h"
#include "volquota.h"

/* vm_manager_status: the pool, its backend and how it was chosen, the
 * copy io and why, quotas, and the copies. */
struct vm_manager_status {
	const char *pool, *fstype, *mount;
	enum vm_backend_kind backend;
	bool backend_forced; /* [pool] backend named it; else probed */
	bool instant;        /* volumes are O(1) snapshots */
	const char *backend_reason;
	enum vm_copy_io copy_io;
	const char *copy_io_reason;
	bool quotas;
	const char *quotas_reason; /* why not, when !quotas */
	enum vm_quota_mode quota_accounting;
	size_t copies_reading;     /* pool trees being read by copies */
	unsigned copies_running, copies_waiting, copies_max;
};

/* vm_volume_which: the volume holding a directory. */
struct vm_volume_place {
	char volume[VM_NAME_MAX + 1];
	bool root; /* the directory is the volume's top */
};

/* vm_volume_create_from_fd: how the volume was made. */
enum vm_create_method {
	VM_CREATE_SNAPSHOT, /* of volume `of`, O(1) (btrfs) */
	VM_CREATE_CLONE,    /* of volume `of`, by the copy or reflink backend */
	VM_CREATE_COPY,     /* of the caller's tree: stats */
};
struct vm_create_how {
	enum vm_create_method method;
	char of[VM_NAME_MAX + 1];
	struct vm_copy_stats stats;
};

/* vm_cache_promote: what the caller says of its checkout.  commit (NULL:
 * not checked) must be the checkout's HEAD; commit_time_ns (0: not
 * known) orders promotes: an older one keeps the cache. */
struct vm_promote_opts {
	const char *commit;
	int64_t commit_time_ns;
	/* The job socket: only a volume a seed rule made, only into the
	 * cache that rule named. */
	bool lineage_only;
};
/* vm_cache_promote: what became of the cache. */
struct vm_promote_result {
	char cache[VM_NAME_MAX + 1];
	char volume[VM_NAME_MAX + 1];
	char commit[64];            /* the checkout's HEAD; "": not a git checkout */
	bool promoted;              /* false: the cache was kept, for reason */
	char reason[160];
	uint64_t generation;        /* the cache's generation now */
	enum vm_create_method method; /* VM_CREATE_SNAPSHOT or VM_CREATE_CLONE */
};

/* vm_cache_create_git, vm_cache_update: the cache's git state after. */
struct vm_git_result {
	char name[VM_NAME_MAX + 1];
	char url[VM_GIT_URL_MAX + 1];
	char branch[VM_REV_MAX + 1];
	char commit[64];
	uint64_t generation;
	char previous_commit[64]; /* an update's commit before; "" for a create */
};

/* vm_gc: why a volume goes (a set of these), and what a run did. */
enum vm_gc_reason {
	VM_GC_EXPIRED = 1 << 0,      /* its ttl is up */
	VM_GC_CREATOR_GONE = 1 << 1, /* its creator's container is gone */
	VM_GC_LABELS_MATCH = 1 << 2, /* it has every label asked for */
	VM_GC_POOL_USAGE = 1 << 3,   /* a cache: the pool is past [cache] max_usage */
	VM_GC_ENGINE_FORGOT = 1 << 4, /* the engine that created it forgot it */
};
#define VM_GC_REASONS_ALL                                                          \
	(VM_GC_EXPIRED | VM_GC_CREATOR_GONE | VM_GC_LABELS_MATCH | VM_GC_POOL_USAGE | \
	 VM_GC_ENGINE_FORGOT)
/* "expired", "creator gone", "labels match" (inline: the protocols and
 * the daemon's log name them without calling into the manager). */
static inline const char *vm_gc_reason_name(enum vm_gc_reason r)
{
	switch (r) {
	case VM_GC_EXPIRED:
		return "expired";
	case VM_GC_CREATOR_GONE:
		return "creator gone";
	case VM_GC_LABELS_MATCH:
		return "labels match";
	case VM_GC_POOL_USAGE:
		return "pool usage";
	case VM_GC_ENGINE_FORGOT:
		return "engine forgot";
	}
	return "?";
}

struct vm_gc_entry {
	char name[VM_NAME_MAX + 1];
	unsigned reasons;  /* enum vm_gc_reason bits */
	bool has_bytes;    /* weighed: it was not in use */
	uint64_t bytes;    /* what removing it frees (an estimate off simple quotas) */
	char error[512];   /* why a removal failed; "" if it did not */
};
struct vm_gc_report {
	bool dry_run;
	struct vm_gc_entry *removed; /* or, with dry_run, would be */
	size_t n_removed;
	struct vm_gc_entry *kept;    /* in use, or their removal failed */
	size_t n_kept;
	char (*mounts_dropped)[VM_NAME_MAX + 1]; /* volumes whose stale Mounts went */
	size_t n_mounts_dropped;
	uint64_t bytes_freed;
	int stale_qgroups_cleared;
	/* [cache] max_usage set: the pool's file system's use and the
	 * ceiling, and the least recently used promoted caches dropped (or,
	 * with dry_run, that would be) or kept (a copy reads them). */
	bool has_ceiling;
	uint64_t pool_used, pool_limit;
	struct vm_gc_entry *caches_removed, *caches_kept;
	size_t n_caches_removed, n_caches_kept;
};

static inline void vm_gc_report_done(struct vm_gc_report *r)
{
	free(r->removed);
	free(r->kept);
	free(r->caches_removed);
	free(r->caches_kept);
	free(r->mounts_dropped);
	*r = (struct vm_gc_report){0};
}

/* vm_cache_export / vm_cache_import_stream: what was sent or received. */
struct vm_stream_result {
	char cache[VM_NAME_MAX + 1];
	char commit[64];
	uint64_t generation; /* exported: the cache's; imported: 1 */
	uint64_t bytes;      /* of the btrfs stream (import: read from the caller) */
	uint64_t commands;   /* import: the stream's commands */
	uint64_t dropped;    /* import: file capabilities and trusted.* attributes left out */
	char git_url[VM_GIT_URL_MAX + 1]; /* import: the header's git remote ("": none) */
	bool git_url_kept;   /* import: the importer named it: a cache from git */
};
