/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The rules for what a job may make through the engine socket: the
 * bodies of container create, exec create, network create and volume
 * create, checked field by field and rewritten -- the job's label set,
 * bind sources replaced by what the job may share, references to other
 * objects made exact.  Pure: whatever needs the engine, the caller's
 * file system or volmgrd comes in through callbacks, so the fuzzer and
 * the unit test drive the rules with fakes. */
#pragma once

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>

#include "util.h"

/* The label every object made through the socket carries: the id of
 * the job's container (the one the runner made). */
#define POLICY_LABEL_JOB "io.volmgr.engine.job"
/* Labels under this prefix are the socket's own: a job cannot set them. */
#define POLICY_LABEL_PREFIX "io.volmgr.engine."

/* [engine] in volmgr.conf: each rule a runner may loosen. */
struct policy_rules {
	bool allow_privileged;
	bool allow_cap_add;
	bool allow_devices;
	bool allow_host_namespaces;
	bool allow_unconfined;     /* seccomp/apparmor/label=unconfined, masked paths */
	bool allow_sysctls;
	bool allow_host_binds;     /* bind sources outside the job's volumes */
};

/* What a bind source turned out to be. */
struct bind_target {
	char source[PATH_MAX]; /* what the engine gets: a volume name or a pinned path */
	bool volume;           /* source is a volume name (the volume's top) */
	bool read_only;        /* the caller had it read-only */
};

struct policy_ops {
	void *ud;
	/* The full id of ref (name, id or id prefix) if it is one of the
	 * job's containers: 1, 0 if not (or no such container), <0 error. */
	int (*own_container)(void *ud, const char *ref, char id[static 65], struct vm_error *err);
	/* The same for networks; the engine's built-in ones ("bridge",
	 * "none", "default", podman's "podman") count as the job's. */
	int (*own_network)(void *ud, const char *ref, char id[static 65], struct vm_error *err);
	/* A named volume the job may mount: its own, its workspace, or a
	 * new name (made now, labelled): 1 yes, 2 read-only only, 0 no,
	 * <0 error. */
	int (*use_volume)(void *ud, const char *name, struct vm_error *err);
	/* Resolve a bind source path in the caller's view: 0 with *ret,
	 * or <0 with err saying why the path cannot be shared.  create: a
	 * missing directory is made, as the engines do for -v (not for
	 * --mount, which fails). */
	int (*bind)(void *ud, const char *path, bool create, struct bind_target *ret,
		    struct vm_error *err);
};

struct policy {
	const struct policy_rules *rules;
	const struct policy_ops *ops;
	const char *job;   /* the job label's value */
	bool podman;       /* the engine is Podman's compat API */
};

/* POST /containers/create: check body and rewrite it in place.  0, or
 * <0 with err (EPERM: refused by a rule, EINVAL: not a create body). */
int policy_container_create(const struct policy *p, json_t *body, struct vm_error *err);

/* POST /containers/{id}/exec */
int policy_exec_create(const struct policy *p, json_t *body, struct vm_error *err);

/* POST /networks/create */
int policy_network_create(const struct policy *p, json_t *body, struct vm_error *err);

/* POST /volumes/create */
int policy_volume_create(const struct policy *p, json_t *body, struct vm_error *err);

/* POST /networks/{id}/connect|disconnect: the container named must be
 * the job's (rewritten to its id). */
int policy_network_connect(const struct policy *p, json_t *body, struct vm_error *err);

/* Labels: refuse the socket's own prefix, set the job's label. */
int policy_label(const struct policy *p, json_t *obj, const char *field, struct vm_error *err);
