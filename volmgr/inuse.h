/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* "In use" is derived from the kernel, not from counters we keep: a volume
 * is in use while any mount namespace on the machine has a mount of its
 * subvolume.  Containers keep their mounts when volmgrd is killed, and
 * lose them when the engine dies, so the answer is right after any crash
 * (the failure that left docker-lvm-plugin's volumes stuck). */
#pragma once

#include <jansson.h>
#include <sys/types.h>

#include "util.h"

/* Count, over every mount namespace visible in /proc, the mounts whose
 * file system is sb_dev and whose root lies at or beneath
 * prefix/NAME (prefix: the volumes directory's path inside the file
 * system).  Returns an object NAME -> count (names with no mount absent). */
/* ret_unreadable counts the processes whose mounts could not be read
 * (not those that exited meanwhile): with any, the answer is incomplete
 * and callers must not conclude "not in use". */
int vm_inuse_scan(const char *proc, dev_t sb_dev, const char *prefix,
		  json_t **ret, unsigned *ret_unreadable, struct vm_error *err);

/* One process PROC/PID: add its mounts to counts.  Returns 1 when read,
 * 0 when there was nothing to read (the process exited or is exiting, or
 * its namespace is in seen already; seen may be NULL), -errno when its
 * mounts exist but cannot be read.  seen is the scan's private set of
 * namespaces (NULL in tests). */
struct vm_inuse_seen;
int vm_inuse_scan_pid(const char *proc, const char *pid, dev_t sb_dev,
		      const char *prefix, json_t *counts, struct vm_inuse_seen *seen);

/* The pure part, for tests: add the matches of one mountinfo file. */
int vm_inuse_scan_mountinfo(const char *mountinfo_path, dev_t sb_dev,
			    const char *prefix, json_t *counts);
