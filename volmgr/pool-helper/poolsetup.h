/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Setting up a pool where there is no btrfs: a sparse image file on a
 * loop device, formatted and mounted at the pool directory; and a status
 * report of any pool.  Used by volmgr-pool, the helper behind
 * `volmgr pool init|status` (the static CLI cannot carry libmount and
 * libudev). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util.h"

#define VM_POOL_LABEL "volmgr-pool"

struct vm_pool_init {
	const char *pool;      /* the pool directory (absolute) */
	const char *image;     /* the image file; default: POOL.img */
	uint64_t size;         /* bytes; default 20 GiB (sparse) */
	const char *unit_dir;  /* write a systemd mount unit there, if set */
	const char *mkfs;      /* mkfs.btrfs to run */
};

/* ret: {"pool", "image", "device", "created": bool, "unit": path or null}.
 * A pool directory already on btrfs is left as it is (created: false). */
int vm_pool_init(const struct vm_pool_init *o, json_t **ret, struct vm_error *err);

/* {"pool", "fstype", "backend", "mount_point", "device", "image" (loop
 * backing file), "size", "free", "quota": "on"|"off"|"n/a"}. */
int vm_pool_status(const char *pool, json_t **ret, struct vm_error *err);

/* The systemd unit name for a mount point: systemd-escape --path. */
int vm_mount_unit_name(const char *path, char **ret);
