/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* volmgr.conf: the daemon's configuration, an INI file read with libinih.
 *
 *   [seed]
 *   # A volume that an engine creates without a source option, and whose
 *   # name matches the pattern, starts as a snapshot of the named cache.
 *   # "*" matches any run of characters; "{id}" captures a run of name
 *   # characters and may be used in the source.  First match wins.
 *   runner-*-project-{id}-concurrent-*-cache-*-protected = cache:project-{id}-protected
 *   runner-*-project-{id}-concurrent-*-cache-* = cache:project-{id}
 *
 *   [git]
 *   # git runs as this user, never as root; seconds per git command
 *   user = nobody
 *   timeout = 600
 *   command = /usr/bin/git
 *
 *   [gc]
 *   # run gc this often; 0: never (volmgr gc still works)
 *   interval = 15m
 *   # a volume that the engine which created it has forgotten ([engines]
 *   # below), that nothing mounts and no container names, is removed
 *   # once it has been so for this long, on two collections in a row
 *   engine_grace = 10m
 *
 *   [quota]
 *   # btrfs qgroups on the pool (usage in inspect, limits): auto (= yes:
 *   # simple quotas where the kernel has them, else full accounting; a
 *   # pool's mode, once on, is kept), simple, full or no; and each
 *   # volume's limit unless it asks otherwise
 *   accounting = auto
 *   default = 20G
 *
 *   [pool]
 *   # how volumes are made: auto (probe: btrfs snapshots, else reflink
 *   # clones, else a bulk copy), btrfs, reflink or copy
 *   backend = auto
 *
 *   [copy]
 *   # the copy engine's io: auto (io_uring if usable), io_uring, syscalls
 *   io = auto
 *   # an engine's Create that a seed rule would fill with a copy larger
 *   # than this is refused at once (podman waits 5 s for a plugin)
 *   implicit_max_files = 20000
 *   implicit_max_bytes = 1G
 *
 *   [engines]
 *   # the engines' API sockets: asked (never a timer) whether a Mount
 *   # they recorded without its Unmount still holds; each may repeat
 *   docker = /var/run/docker.sock
 *   podman = /run/podman/podman.sock
 *   # how long one engine may take to answer
 *   timeout = 5s
 *
 *   [cache]
 *   # when the pool's file system is used past this (a percentage of its
 *   # size, or bytes), gc drops the least recently used promoted caches
 *   # (never one a copy is reading) until it is not; default: no ceiling
 *   max_usage = 80%
 *
 *   [names]
 *   # volume names that only root (control socket) or the engines (plugin
 *   # socket) may create, besides those a [seed] rule matches; may repeat
 *   reserved_prefix = ci-
 *
 * (A "#" after a value is part of the value: comments go on their own
 * lines.)
 */
#pragma once

#include <stddef.h>

#include "backend.h"
#include "engines.h"

/* Longer than any engine's plugin timeout (Docker's Create: 2 min). */
#define VM_ENGINE_GRACE_DEFAULT_NS (600LL * 1000000000LL)
#include "names.h"
#include "volquota.h"

#define VM_SEED_RULES_MAX 64
#define VM_SEED_PATTERN_MAX 256

struct vm_seed_rule {
	char pattern[VM_SEED_PATTERN_MAX + 1];
	char source[VM_SEED_PATTERN_MAX + 1]; /* a template: "cache:project-{id}" */
};

#define VM_GIT_TIMEOUT_DEFAULT 600
#define VM_RESERVED_PREFIXES_MAX 16
#define VM_ENGINE_TIMEOUT_MS_DEFAULT 5000

struct vm_config {
	struct vm_seed_rule seed[VM_SEED_RULES_MAX];
	size_t n_seed;
	/* [git]: how caches from git are fetched. */
	char git_user[64];     /* runs git; default "nobody" */
	unsigned git_timeout;  /* seconds per git command; default 600 */
	char git_command[256]; /* default "/usr/bin/git" */
	/* [gc] interval: seconds between collections, 0 = never. */
	unsigned gc_interval;
	/* [gc] engine_grace: how long a volume its engine forgot must stay
	 * so (and nothing touch it) before gc takes it; see gc.c. */
	int64_t engine_grace_ns;
	/* [quota]: btrfs quota accounting on the pool, and a default limit. */
	enum vm_quota_accounting quota_accounting; /* default auto */
	uint64_t quota_default;       /* exclusive bytes per volume, 0: none */
	/* [pool] backend and [copy]. */
	enum vm_backend_kind pool_backend; /* default auto */
	enum vm_copy_io copy_io;           /* default auto */
	uint64_t implicit_max_files;       /* default 20000 */
	uint64_t implicit_max_bytes;       /* default 1G */
	/* [engines]: API sockets asked about stale mounts; none by default. */
	struct vm_engine engines[VM_ENGINES_MAX];
	size_t n_engines;
	unsigned engine_timeout_ms; /* default 5000 */
	/* [cache] max_usage: a percentage of the pool's file system, or
	 * bytes; both 0: no ceiling. */
	unsigned cache_max_usage_pct;
	uint64_t cache_max_usage_bytes;
	/* [names] reserved_prefix: names only root and the plugin may make. */
	char reserved_prefix[VM_RESERVED_PREFIXES_MAX][VM_NAME_MAX + 1];
	size_t n_reserved;
	/* [engine]: the engine socket's rules a runner loosens (volmgr-
	 * engined); all false by default. */
	struct {
		bool allow_privileged;
		bool allow_cap_add;
		bool allow_devices;
		bool allow_host_namespaces;
		bool allow_unconfined;
		bool allow_sysctls;
		bool allow_host_binds;
	} engine;
};

#define VM_IMPLICIT_MAX_FILES_DEFAULT 20000
#define VM_IMPLICIT_MAX_BYTES_DEFAULT (1ULL << 30)

/* The defaults of every key. */
void vm_config_init(struct vm_config *cfg);

/* Parse the configuration text; an unknown section, a bad pattern or
 * source, or too many rules is an error naming the entry. */
int vm_config_parse_string(const char *text, struct vm_config *ret,
			   struct vm_error *err);
/* Read path; a missing file is an empty configuration if optional. */
int vm_config_load(const char *path, bool optional, struct vm_config *ret,
		   struct vm_error *err);

/* Find the first seed rule matching a volume name and fill *ret with its
 * source (captures substituted, checked by the name rule).  Returns 1 on a
 * match, 0 when none matches, negative errno when the rule's result is not
 * a valid source. */
int vm_config_seed_for(const struct vm_config *cfg, const char *name,
		       struct vm_source *ret, struct vm_error *err);
/* The same, and the rule that matched (ret_rule may be NULL). */
int vm_config_seed_rule_for(const struct vm_config *cfg, const char *name,
			    struct vm_source *ret, const struct vm_seed_rule **ret_rule,
			    struct vm_error *err);
/* The first seed rule whose source could name cache NAME ("cache:
 * project-{id}" names "project-42", and "project-42-protected" too), or
 * NULL: a cache the seed rules fill, which only a volume that rule made
 * for exactly that cache may be promoted into. */
const struct vm_seed_rule *vm_config_cache_seeded(const struct vm_config *cfg, const char *name);

/* Whether a volume of this name is reserved for root and the engines:
 * a seed rule matches it or names it as its volume: source, or it starts
 * with a reserved prefix.  A
 * non-root caller that made such a name first could fill it with its own
 * tree, and both engines call Get before Create and adopt what exists:
 * the next job would start from that tree. */
bool vm_config_name_reserved(const struct vm_config *cfg, const char *name);

/* The pattern matcher, exposed for tests: captures (name, value) pairs go
 * to caps (up to ncaps).  Returns true on a match. */
struct vm_capture {
	char name[32];
	char value[VM_NAME_MAX + 1];
};
bool vm_pattern_match(const char *pattern, const char *name,
		      struct vm_capture *caps, size_t ncaps, size_t *ret_n);
