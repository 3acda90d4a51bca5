/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Docker volume plugin protocol as a pure function: method, path and
 * body in; HTTP status and JSON body out.  The HTTP server and the
 * volume manager are plugged in from outside (volmgrd's bridge to the
 * manager is daemon/manager-ops.c), so the same handler runs
 * in volmgrd and against fixture files in the unit tests.
 *
 * Errors are answered with 500 and {"Err": "..."}: Podman ignores Err on a
 * 200 reply, Docker reads Err on any status. */
#pragma once

#include <jansson.h>

#include "manager.h"

#define VM_PLUGIN_CONTENT_TYPE "application/vnd.docker.plugins.v1+json"
#define VM_PLUGIN_BODY_MAX (64 * 1024)

struct vm_plugin_ops {
	int (*create)(void *ctx, const char *name, const struct vm_create_opts *o,
		      const struct vm_caller *caller, struct vm_error *err);
	int (*remove)(void *ctx, const char *name, const struct vm_caller *caller,
		      struct vm_error *err);
	int (*mount)(void *ctx, const char *name, const char *id, char **ret_path,
		     struct vm_error *err);
	int (*unmount)(void *ctx, const char *name, const char *id,
		       struct vm_error *err);
	/* What vm_volume_get() and vm_volume_list() answer (volinfo.h);
	 * the handler releases it.  Not touched on failure. */
	int (*get)(void *ctx, const char *name, struct vm_volume_info *ret,
		   struct vm_error *err);
	int (*list)(void *ctx, struct vm_volume_info_list *ret, struct vm_error *err);
};

/* Handle one request.  Returns the HTTP status; *ret_body is a malloc'ed
 * JSON text (never NULL unless out of memory). */
int vm_plugin_handle(const struct vm_plugin_ops *ops, void *ctx,
		     const struct vm_caller *caller, const char *method,
		     const char *path, const char *body, size_t len,
		     char **ret_body);
