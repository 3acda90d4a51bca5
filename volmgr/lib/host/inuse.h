/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* "In use" is derived from the kernel, not from counters we keep: a volume
 * is in use while any mount namespace on the machine has a mount of its
 * subvolume, or an overlay mount with one of its directories as a layer
 * (podman's `-v VOL:/dst:O`).  Containers keep their mounts when volmgrd
 * is killed, and lose them when the engine dies, so the answer is right
 * after any crash (the failure that left docker-lvm-plugin's volumes
 * stuck).
 *
 * The scan reads every namespace's /proc/PID/mountinfo once.  It takes
 * no lock of volmgrd's (the caller runs it before taking the manager's):
 * a namespace with 100,000 mounts costs the request that scans, never
 * the others.  Lines are parsed in place, two fields and, for overlays,
 * the layer options; nothing else is copied. */
#pragma once

#include <jansson.h>
#include <sys/types.h>

#include "util.h"

/* Where volumes live, as mount tables show them. */
struct vm_inuse_where {
	dev_t sb_dev;           /* the pool's file system (mountinfo's major:minor) */
	const char *prefix;     /* volumes/ inside that file system, e.g. "/volumes" */
	const char *layer_path; /* volumes/ as a path, for overlay layers; NULL: not looked at */
	/* The volumes there are (an object whose keys are their names): only
	 * those are counted, so what a table can make a scan hold is bounded
	 * by the volumes.  NULL: any name a volume could have. */
	const json_t *names;
};

/* Overlay layers naming a volume's path kept per namespace (beyond, the
 * engines' recorded Mount is what marks such a use), and mounts kept to
 * tell what such a path is in that namespace (beyond, its layers are not
 * counted: a table that mounts this much on the pool's path is no
 * engine's). */
#define VM_INUSE_LAYERS_MAX 64
#define VM_INUSE_COVER_MAX 4096

/* A mountinfo line longer than this (an overlay with hundreds of layers
 * of long paths) makes its namespace unreadable: fail closed. */
#define VM_INUSE_LINE_MAX (16u << 20)

/* Count, over every mount namespace visible in /proc, the mounts whose
 * file system is w->sb_dev and whose root lies at or beneath
 * w->prefix/NAME, and the overlays with a layer at or beneath
 * w->layer_path/NAME.  Returns an object NAME -> count (names with no
 * mount absent).  ret_unreadable counts the processes whose mounts could
 * not be read (not those that exited meanwhile): with any, the answer is
 * incomplete and callers must not conclude "not in use". */
int vm_inuse_scan(const char *proc, const struct vm_inuse_where *w, json_t **ret,
		  unsigned *ret_unreadable, struct vm_error *err);

/* One process PROC/PID: add its mounts to counts.  Returns 1 when read,
 * 0 when there was nothing to read (the process exited or is exiting, or
 * its namespace is in seen already; seen may be NULL), -errno when its
 * mounts exist but cannot be read.  seen is the scan's private set of
 * namespaces (NULL in tests). */
struct vm_inuse_seen;
int vm_inuse_scan_pid(const char *proc, const char *pid, const struct vm_inuse_where *w,
		      json_t *counts, struct vm_inuse_seen *seen);

/* The pure part, for tests: add the matches of one mountinfo file.
 * -ENOENT (and nothing added) if it cannot be opened, another -errno if
 * it cannot be read to the end. */
int vm_inuse_scan_mountinfo(const char *mountinfo_path, const struct vm_inuse_where *w,
			    json_t *counts);
/* The same for mountinfo text in memory: one call per complete line. */
void vm_inuse_scan_line(char *line, const struct vm_inuse_where *w, json_t *counts);
