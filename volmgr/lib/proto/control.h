/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The control protocol as a pure function: a request and the caller in, a
 * reply out (control-wire.h has the wire format).  The volume manager is
 * plugged in from outside through vm_control_ops (volmgrd's bridge to the
 * manager is daemon/manager-ops.c), so the same handler runs in volmgrd
 * and against fixture files in the unit tests. */
#pragma once

#include <jansson.h>

#include "control-wire.h"
#include "manager.h"

/* Where progress messages go: send must not block (drop instead), and
 * takes no reference to msg. */
struct vm_control_sink {
	void (*send)(void *userdata, json_t *msg);
	void *userdata;
};

/* The pool the manager serves (strings owned by it, valid as long as it
 * is). */
struct vm_control_pool {
	const char *path;
	const char *fstype;
	enum vm_backend_kind backend;
	/* The volumes directory as mountinfo's root field shows it
	 * (vm_manager_volumes_fs_path). */
	const char *volumes_fs_path;
};

/* The manager as the control protocol uses it: each op is the manager
 * function of the same name (manager.h, gc.h), called with ctx.  Names
 * reach them checked only as far as the manager checks them itself; the
 * caller is the one the kernel named (SO_PEERCRED). */
struct vm_control_ops {
	void (*pool)(void *ctx, struct vm_control_pool *ret);
	void (*status)(void *ctx, struct vm_manager_status *ret);
	int (*volume_create)(void *ctx, const char *name, const struct vm_create_opts *o,
			     const struct vm_caller *caller, struct vm_error *err);
	int (*volume_create_from_fd)(void *ctx, const char *name, int fd, const char *path,
				     const struct vm_create_opts *o,
				     const struct vm_caller *caller, struct vm_create_how *ret_how,
				     struct vm_error *err);
	int (*volume_which)(void *ctx, int fd, struct vm_volume_place *ret, struct vm_error *err);
	/* Where the caller has the directory open at fd mounted
	 * (vm_caller_mount_of_fd's {"target", "root", "fstype"}). */
	int (*mount_of_fd)(void *ctx, const struct vm_caller *caller, int fd, json_t **ret,
			   struct vm_error *err);
	/* with usage: the machine's mounts scanned */
	int (*volume_get)(void *ctx, const char *name, struct vm_volume_info *ret,
			  struct vm_error *err);
	int (*volume_list)(void *ctx, struct vm_volume_info_list *ret, struct vm_error *err);
	/* vm_volume_remove_as: a caller that is not root removes only its own */
	int (*volume_remove)(void *ctx, const char *name, const struct vm_caller *caller,
			     struct vm_error *err);
	int (*cache_import)(void *ctx, const char *name, int fd, const struct vm_create_opts *o,
			    const struct vm_caller *caller, struct vm_copy_stats *ret_stats,
			    struct vm_error *err);
	int (*cache_create_git)(void *ctx, const char *name, const char *url,
				const char *branch, const struct vm_caller *caller,
				struct vm_git_result *ret, struct vm_error *err);
	int (*cache_update)(void *ctx, const char *name, struct vm_git_result *ret,
			    struct vm_error *err);
	int (*cache_promote)(void *ctx, int fd, const char *name,
			     const struct vm_promote_opts *o, const struct vm_caller *caller,
			     struct vm_promote_result *ret, struct vm_error *err);
	int (*cache_export)(void *ctx, const char *name, int out_fd, struct vm_stream_result *ret,
			    struct vm_error *err);
	int (*cache_import_stream)(void *ctx, const char *name, const char *git_url, int in_fd,
				   const struct vm_caller *caller, struct vm_stream_result *ret,
				   struct vm_error *err);
	int (*cache_get)(void *ctx, const char *name, struct vm_cache_info *ret,
			 struct vm_error *err);
	int (*cache_list)(void *ctx, struct vm_cache_info_list *ret, struct vm_error *err);
	int (*cache_remove)(void *ctx, const char *name, struct vm_error *err);
	/* labels: an object of string -> string, or NULL */
	int (*gc)(void *ctx, bool dry_run, json_t *labels, struct vm_gc_report *ret,
		  struct vm_error *err);
};

/* Which socket a request came in on.  The job socket is for job
 * containers, of any uid: it offers only what a job needs about the
 * volume whose directory it passes -- ping, volume.which, and
 * cache.promote of that volume into the cache its seed rule named --
 * and nothing that names a volume or cache by name. */
enum vm_control_socket {
	VM_CONTROL_SOCKET_ADMIN, /* the control socket: root, or --control-group */
	VM_CONTROL_SOCKET_JOB,
};

/* Handle one request.  fd is a descriptor the caller passed along (or -1);
 * the handler never keeps it.  sink may be NULL (no progress messages).
 * Always returns a reply object (NULL only when out of memory). */
json_t *vm_control_handle(const struct vm_control_ops *ops, void *ctx,
			  const struct vm_caller *caller, enum vm_control_socket where,
			  const char *body, size_t len, int fd,
			  const struct vm_control_sink *sink);
