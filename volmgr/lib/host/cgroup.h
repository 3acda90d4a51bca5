/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A caller's cgroup, to tell later whether its container is gone: a job
 * container's cgroup disappears when the container ends. */
#pragma once

#include <sys/types.h>

#include "util.h"

/* A cgroup as "controller:path", at most this long. */
#define VM_CGROUP_MAX 512

/* The most specific cgroup of pid as "controller:path" (the unified
 * hierarchy as ":path"): of the hierarchies engines use, the one whose
 * path names the most containers (64-hex components), then the deepest,
 * the unified one first among equals; "" when it is the root everywhere.
 * Reads PROC/PID/cgroup. */
int vm_cgroup_of_pid(const char *proc, pid_t pid, char ret[static VM_CGROUP_MAX + 1]);

/* 1 if pid is in top's cgroup, or below it, in every hierarchy both
 * list (a process that could move itself in one hierarchy -- Podman's
 * systemd mode mounts name=systemd writable -- is still caught by the
 * others), 0 if not, <0 errno if either cannot be read. */
int vm_cgroup_pid_within(const char *proc, pid_t pid, pid_t top);

/* 1 if the cgroup still exists, 0 if it is gone, negative errno if that
 * cannot be told (no such hierarchy mounted here): callers keep the
 * volume then. */
int vm_cgroup_exists(const char *spec);
