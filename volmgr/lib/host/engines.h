/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Asking a container engine, over its API socket, whether it still uses
 * a volume: the only evidence volmgrd accepts that a Mount the engine
 * recorded without a matching Unmount is stale (a timer is not).  The
 * sockets are configured in volmgr.conf ([engines]); HTTP is libcurl's.
 *
 *   docker: a container (any state) that references the volume
 *           (GET /containers/json?all=1&filters={"volume":[NAME]}):
 *           Docker mounts plugin volumes only for containers;
 *   podman: the same, or the volume's own mount count (MountCount of
 *           GET /libpod/volumes/NAME/json), which `podman volume mount`
 *           raises without any container. */
#pragma once

#include <stdbool.h>

#include "util.h"

enum vm_engine_kind {
	VM_ENGINE_DOCKER,
	VM_ENGINE_PODMAN,
};

#define VM_ENGINES_MAX 8
/* "docker" or "podman" (vm_engine_kind_name), as records keep it. */
#define VM_ENGINE_NAME_MAX 15
#define VM_ENGINE_SOCKET_MAX 107 /* sun_path */

struct vm_engine {
	enum vm_engine_kind kind;
	char socket[VM_ENGINE_SOCKET_MAX + 1];
};

const char *vm_engine_kind_name(enum vm_engine_kind k);

/* 1 if the engine uses volume name (see above), 0 if it does not, or a
 * negative errno (with err) when that cannot be told: the socket does
 * not answer within timeout_ms, or the answer makes no sense.  Callers
 * keep the volume then. */
int vm_engine_uses_volume(const struct vm_engine *e, const char *name, unsigned timeout_ms,
			  struct vm_error *err);

/* The answer of all engines: 0 only if every engine answered "not
 * used"; 1 if any uses it; negative errno (with err naming the engine)
 * if any could not tell and none uses it.  With no engine, -ENOENT. */
int vm_engines_use_volume(const struct vm_engine *engines, size_t n, const char *name,
			  unsigned timeout_ms, struct vm_error *err);

/* Podman only: 1 if its database holds volume name, 0 if not (GET
 * /libpod/volumes/NAME/exists: no plugin call, no lock); negative errno
 * if that cannot be told.  Docker: -ENOTSUP (its volume inspect calls
 * the plugin's Get and adopts whatever the plugin answers). */
int vm_engine_knows_volume(const struct vm_engine *e, const char *name, unsigned timeout_ms,
			   struct vm_error *err);
