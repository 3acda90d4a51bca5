/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* volmgr-engined: a Docker Engine API endpoint for CI jobs, in front of
 * the host's Docker or Podman.  What the parts share: the daemon's
 * settings, the record of what each job made through it, and the jobs
 * themselves as the kernel names them. */
#pragma once

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "policy.h"
#include "util.h"

#define ENGINED_ID_MAX 64 /* a full container id: 64 hex digits */
#define ENGINED_JOBS_MAX 512      /* jobs with connections open at once */
#define ENGINED_JOB_CONNS_MAX 64  /* connections of one job at once */

struct engined {
	char upstream[108];      /* the engine's API socket */
	char sock_path[108];     /* our own socket, which a job may pass on */
	dev_t sock_dev;
	ino_t sock_ino;
	char control[108];       /* volmgrd's control socket */
	char state_dir[80];      /* records.json, pins/ (at most 64 bytes) */
	int pins_fd;             /* state_dir/pins, where pinned binds are mounted */
	struct policy_rules rules;
	unsigned max_conns;
	unsigned sweep_ms;       /* how often gone jobs are looked for */
	const char *proc;        /* "/proc" (tests: the same, always) */

	pthread_mutex_t lock;    /* below */
	unsigned n_conns;
	/* Connections per job, so that one job cannot take them all. */
	struct {
		char job[ENGINED_ID_MAX + 1];
		unsigned n;
	} job_conns[ENGINED_JOBS_MAX];
	struct record *records;  /* what jobs made: state.c */
	size_t n_records, cap_records;
	int upstream_kind;       /* UP_*: asked once, under lock */
};

enum { UP_UNKNOWN, UP_DOCKER, UP_PODMAN };

/* A job, as the kernel named the caller: the container it runs in and
 * the job container that container belongs to. */
struct job {
	char id[ENGINED_ID_MAX + 1];   /* the job's container (the runner's) */
	char self[ENGINED_ID_MAX + 1]; /* the caller's own container */
	int32_t pid;                   /* the caller, pinned by pidfd */
	int pidfd;
	json_t *volumes;               /* volumes the job's container mounts: name -> writable */
	json_t *networks;              /* names and ids of the networks it is on */
};

/* What a job made through the socket, so that it is its own to use and
 * is removed with the job.  Kept in state_dir/records.json across
 * restarts. */
enum record_kind {
	REC_CONTAINER,
	REC_NETWORK,
	REC_VOLUME,
	REC_PIN,        /* a bind pinned for a container: id = its name in pins/ */
};

struct record {
	enum record_kind kind;
	char id[256];                      /* container/network id, volume name, pin name */
	char job[ENGINED_ID_MAX + 1];
	char container[ENGINED_ID_MAX + 1];/* pins: the container it was made for ("" until created) */
	int64_t made_ns;                   /* CLOCK_REALTIME */
};

/* state.c */
int state_load(struct engined *e, struct vm_error *err);
int state_add(struct engined *e, enum record_kind kind, const char *id, const char *job,
	      const char *container);
/* The job that made it, or false. */
bool state_job_of(struct engined *e, enum record_kind kind, const char *id,
		  char job[static ENGINED_ID_MAX + 1]);
void state_remove(struct engined *e, enum record_kind kind, const char *id);
/* Give the pins made for "" (a create in flight, tag) to container. */
void state_pins_to(struct engined *e, const char *tag, const char *container);
/* A copy of the records (for the sweep), *n of them. */
struct record *state_copy(struct engined *e, size_t *n);

/* upstream.c: calls of our own to the engine (libcurl). */
int up_call(struct engined *e, const char *method, const char *path, json_t *body,
	    long *ret_status, json_t **ret, struct vm_error *err);
/* UP_DOCKER or UP_PODMAN (its /version names "Podman Engine"), asked
 * once; <0 if the engine cannot tell. */
int up_kind(struct engined *e, struct vm_error *err);
/* A connected socket to the engine, for relaying a request. */
int up_connect(struct engined *e, struct vm_error *err);

/* job.c */
int job_of_caller(struct engined *e, int fd, struct job *ret, struct vm_error *err);
void job_done(struct job *j);
/* ref (a name, id or prefix) is one of j's containers: 1 with its full
 * id, 0 if not (or no such container), <0 if the engine cannot tell. */
int job_own_container(struct engined *e, const struct job *j, const char *ref,
		      char id[static ENGINED_ID_MAX + 1], struct vm_error *err);
int job_own_network(struct engined *e, const struct job *j, const char *ref,
		    char id[static ENGINED_ID_MAX + 1], bool builtin_ok, struct vm_error *err);
/* 1: the job's, 2: the job's, read-only (the runner mounts it so), 0: not. */
int job_own_volume(struct engined *e, const struct job *j, const char *name,
		   struct vm_error *err);
bool job_valid_ref(const char *ref);

/* pins.c: binds of a directory inside a volume, pinned from an fd. */
int pin_bind_source(struct engined *e, const struct job *j, const char *path, bool create,
		    const char *tag, struct bind_target *ret, struct vm_error *err);
void pin_release(struct engined *e, const char *name);
/* Unmount pins nothing records (a crash between mount and record). */
void pin_sweep_unrecorded(struct engined *e);

/* sweep.c: what jobs made goes with the job. */
void *sweep_thread(void *arg);
void sweep_once(struct engined *e);

/* proxy.c: one client connection, start to end (closes fd). */
void proxy_connection(struct engined *e, int fd);

/* relay.c: bytes both ways until both ends are done, each end's close
 * passed on as a half close (docker run -i's stdin EOF). */
int relay_raw(int a, int b);
