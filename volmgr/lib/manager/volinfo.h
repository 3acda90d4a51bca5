/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the manager answers about a volume or a cache (vm_volume_get,
 * vm_volume_list, vm_cache_get, vm_cache_list): plain structs, so that
 * the protocols (lib/proto/) alone decide how the answer is spelled on
 * their wire.  The release functions are inline: the protocols free what
 * their ops return without calling into the manager. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "backend.h"
#include "cgroup.h"
#include "names.h"
#include "record.h"

/* An engine's Mount of a volume, kept until its Unmount. */
struct vm_mount_info {
	char id[VM_MOUNT_ID_MAX + 1];
	int64_t since_ns;
	int64_t count; /* Mounts of this ID without an Unmount */
};

struct vm_volume_info {
	char name[VM_NAME_MAX + 1];
	struct vm_source source; /* VM_SOURCE_NONE: an empty volume */
	int64_t created_ns;
	json_t *labels;          /* object string -> string, a reference; never NULL */
	char *mountpoint;        /* the volume's path on the host; never NULL */
	struct vm_mount_info *mounts; /* in the record's order */
	size_t n_mounts;
	uint32_t creator_uid;
	int32_t creator_pid;
	char creator_cgroup[VM_CGROUP_MAX + 1]; /* "": not made from a container */
	char creator_engine[VM_ENGINE_NAME_MAX + 1]; /* "docker", "podman" or "" */
	int64_t remove_refused_ns; /* when volmgrd last refused its engine's Remove; 0 */
	uint64_t subvol_id;
	enum vm_backend_kind backend; /* the pool's backend made it */
	char commit[64];         /* checked out at a commit (cache:NAME@REV); "" */
	/* The seed rule whose pattern matched its name, and the cache that
	 * rule named ("" for both: none). */
	char seed_rule[VM_SEED_PATTERN_MAX + 1];
	char seed_cache[VM_NAME_MAX + 1];
	uint64_t quota_bytes;    /* 0: no limit */
	int64_t expires_ns;      /* 0: no ttl */
	bool has_usage;          /* quota accounting answered for it */
	uint64_t usage_referenced, usage_exclusive, usage_limit;
	/* Mounted by the kernel anywhere, or by an engine that did not
	 * Unmount, or unknown (in_use_unknown): gc and rm keep it. */
	bool in_use;
	/* Asked with_usage: the machine's mounts were scanned, so
	 * kernel_mounts is known; in_use_unknown: some processes' mounts
	 * could not be read, so in_use is true whatever they hold. */
	bool scanned;
	int64_t kernel_mounts;
	bool in_use_unknown;
};

struct vm_volume_info_list {
	struct vm_volume_info *items; /* sorted by name */
	size_t n;
};

struct vm_cache_info {
	char name[VM_NAME_MAX + 1];
	int64_t created_ns;
	json_t *labels; /* object string -> string, a reference; never NULL */
	uint64_t subvol_id;
	enum vm_backend_kind backend;
	bool no_xattrs;
	/* From git (git_url[0] != 0): where from, and its current generation. */
	char git_url[VM_GIT_URL_MAX + 1];
	char git_branch[VM_REV_MAX + 1];
	char git_commit[64];
	uint64_t generation;
	int64_t updated_ns;
	/* Promoted (promoted_from[0] != 0): from which volume, the checkout
	 * inside, its commit (git_commit) and the commit's time (0: not
	 * told), generation and updated_ns as for git. */
	char promoted_from[VM_NAME_MAX + 1];
	char checkout[VM_CHECKOUT_MAX + 1];
	int64_t commit_time_ns;
	/* When a volume was last made from it (0: never), and the bytes of
	 * its files as gc last measured this generation (has_size). */
	int64_t last_used_ns;
	bool has_size;
	uint64_t size_bytes;
};

struct vm_cache_info_list {
	struct vm_cache_info *items; /* sorted by name */
	size_t n;
};

/* Release what an info holds (not the struct itself); NULL and a zeroed
 * or released info are fine. */
static inline void vm_volume_info_done(struct vm_volume_info *v)
{
	if (!v)
		return;
	json_decref(v->labels);
	v->labels = NULL;
	free(v->mountpoint);
	v->mountpoint = NULL;
	free(v->mounts);
	v->mounts = NULL;
	v->n_mounts = 0;
}

static inline void vm_volume_info_list_done(struct vm_volume_info_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		vm_volume_info_done(&l->items[i]);
	free(l->items);
	*l = (struct vm_volume_info_list){0};
}

static inline void vm_cache_info_done(struct vm_cache_info *c)
{
	if (!c)
		return;
	json_decref(c->labels);
	c->labels = NULL;
}

static inline void vm_cache_info_list_done(struct vm_cache_info_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		vm_cache_info_done(&l->items[i]);
	free(l->items);
	*l = (struct vm_cache_info_list){0};
}
