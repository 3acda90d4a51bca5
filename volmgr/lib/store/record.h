/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The on-disk record of a volume or cache: what it is, where it came from,
 * who made it and which engine mounts hold it.  Records are JSON files
 * written atomically; the record is the commit point of every operation. */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "cgroup.h"
#include "config.h"
#include "engines.h"
#include "names.h"
#include "util.h"

#define VM_RECORD_FORMAT 1
#define VM_MOUNT_ID_MAX 256
/* Engine mount IDs a Mount may add to a record; records written by
 * older versions may hold up to VM_MOUNTS_LOAD_MAX and still load. */
#define VM_MOUNTS_MAX 512
#define VM_MOUNTS_LOAD_MAX 1024
/* Mounts of one ID without Unmount (podman counts its own and sends one
 * Mount; Docker sends a second one for `docker cp`). */
#define VM_MOUNT_COUNT_MAX 65536
#define VM_GIT_URL_MAX 1024
/* A promoted cache's checkout: a relative path inside it. */
#define VM_CHECKOUT_MAX 1024
/* The largest record volmgrd reads.  Everything a record holds is
 * bounded, and the bound covers the worst case (checked by a static
 * assertion in record.c), so a record volmgrd wrote can always be read
 * back: an unreadable record would drop its volume out of `ls` and keep
 * its space forever. */
#define VM_RECORD_MAX_BYTES (1024 * 1024)

enum vm_kind { VM_KIND_VOLUME, VM_KIND_CACHE };

enum vm_state {
	VM_STATE_READY,
	VM_STATE_REMOVING, /* removal began: finish it at startup */
};

struct vm_record {
	enum vm_kind kind;
	enum vm_state state;
	char name[VM_NAME_MAX + 1];
	struct vm_source source;
	int64_t created_ns;
	uint64_t subvol_id;
	uint32_t creator_uid;
	int32_t creator_pid;
	json_t *labels; /* object string->string, never NULL after init */
	json_t *mounts; /* object mount-id -> {"since": ns, "count": n}, never NULL */
	/* Caches from git (git_url[0] != 0), and volumes made at a commit. */
	char git_url[VM_GIT_URL_MAX + 1];
	char git_branch[VM_REV_MAX + 1];
	char git_commit[64];    /* the commit checked out, hex */
	uint64_t generation;    /* caches: bumped by each update */
	int64_t updated_ns;     /* caches: when the current generation was published */
	/* Caches: when a volume was last made from it, as of the last gc
	 * (the store keeps the newer uses in memory: store.h). */
	int64_t last_used_ns;
	/* Caches: the bytes of its files, as gc last measured them, and the
	 * generation they were measured for (0: never). */
	uint64_t size_bytes, size_generation;
	/* Lifetime and limits (volumes). */
	int64_t expires_ns;     /* 0: no ttl */
	uint64_t quota_bytes;   /* exclusive limit, 0: none */
	/* The creator's cgroup ("controller:path" from /proc/PID/cgroup):
	 * a job container's, gone when the container is; "" if unknown. */
	char creator_cgroup[VM_CGROUP_MAX + 1];
	/* Volumes: the engine whose plugin Create made it ("docker",
	 * "podman"; "" for any other creator: vm_caller_engine), and when
	 * volmgrd last refused that engine's Remove of it (0: never).  gc
	 * asks that engine whether it forgot the volume (gc.c). */
	char creator_engine[VM_ENGINE_NAME_MAX + 1];
	int64_t remove_refused_ns;
	/* Caches from an import: no file or directory in it has an extended
	 * attribute (the import set none, and the top it was copied into had
	 * none to pass on), so its clones need not list them. */
	bool no_xattrs;
	/* Volumes an engine created whose name a seed rule matched: that
	 * rule's pattern and the cache it named, recorded even when that
	 * cache did not exist yet (the volume then started empty).  Only
	 * such a volume may be promoted into a cache the rules fill. */
	char seed_rule[VM_SEED_PATTERN_MAX + 1];
	char seed_cache[VM_NAME_MAX + 1];
	/* Caches made by `cache promote`: the volume of the current
	 * generation, its checkout (relative, "" for the top) and the
	 * commit's time (0: not told); the commit is git_commit. */
	char promoted_from[VM_NAME_MAX + 1];
	char checkout[VM_CHECKOUT_MAX + 1];
	int64_t commit_time_ns;
};

/* A checkout path as a record holds it: "" or relative, plain components
 * (no ".", "..", empty or control characters), at most VM_CHECKOUT_MAX. */
bool vm_checkout_path_ok(const char *p);

int vm_record_init(struct vm_record *rec, enum vm_kind kind, const char *name);
void vm_record_done(struct vm_record *rec);
/* The count of one entry of a record's mounts (1 in records written
 * before counts were kept). */
json_int_t vm_record_mount_count(json_t *entry);
/* Free a record at the end of the enclosing block. */
#define _cleanup_record_ _cleanup_(vm_record_done)

/* Serialise to a JSON object (new reference) / parse with full validation. */
json_t *vm_record_to_json(const struct vm_record *rec);
int vm_record_from_json(json_t *j, enum vm_kind kind, struct vm_record *ret,
			struct vm_error *err);

/* Same, through a string (the on-disk form). */
char *vm_record_dump(const struct vm_record *rec);
int vm_record_load(const char *text, size_t len, enum vm_kind kind,
		   struct vm_record *ret, struct vm_error *err);

/* A git URL a caller may give: https/http/ssh/git/file:/// or host:path,
 * printable, no leading '-', no transport helpers. */
int vm_git_url_check(const char *url, struct vm_error *err);

/* A Docker/Podman mount id: 1..VM_MOUNT_ID_MAX printable ASCII characters. */
int vm_mount_id_check(const char *id, struct vm_error *err);

const char *vm_kind_str(enum vm_kind k);
const char *vm_state_str(enum vm_state s);
