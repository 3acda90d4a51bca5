/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What a job made goes with the job: once its container is gone (the
 * runner removes it at the job's end), every container, network, volume
 * and pin the job made through the socket is removed, so that nested
 * containers left running cannot hold a workspace volume past the job.
 * Containers that went on their own (--rm) leave the records too, and
 * their pins are unmounted. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engined.h"
#include "json-util.h"

/* A pin not yet given to a container after this long belongs to a
 * create that never finished. */
#define PIN_ORPHAN_NS (120LL * 1000000000)

/* 1 if the engine has the object, 0 if not, -1 if it cannot tell. */
static int exists(struct engined *e, const char *what, const char *id)
{
	char path[512];
	snprintf(path, sizeof(path), "/%s/%s%s", what, id, strcmp(what, "containers") == 0 ? "/json" : "");
	long status = 0;
	struct vm_error err = {0};
	if (up_call(e, "GET", path, NULL, &status, NULL, &err) < 0)
		return -1;
	return status == 200 ? 1 : status == 404 ? 0 : -1;
}

static void remove_obj(struct engined *e, const struct record *r)
{
	char path[512];
	long status = 0;
	struct vm_error err = {0};
	switch (r->kind) {
	case REC_CONTAINER:
		snprintf(path, sizeof(path), "/containers/%s?force=1&v=1", r->id);
		break;
	case REC_NETWORK:
		snprintf(path, sizeof(path), "/networks/%s", r->id);
		break;
	case REC_VOLUME:
		snprintf(path, sizeof(path), "/volumes/%s?force=1", r->id);
		break;
	case REC_PIN:
		pin_release(e, r->id);
		return;
	}
	if (up_call(e, "DELETE", path, NULL, &status, NULL, &err) < 0) {
		fprintf(stderr, "volmgr-engined: removing %s of job %.12s: %s\n", r->id, r->job, err.msg);
		return;
	}
	if (status < 300 || status == 404)
		state_remove(e, r->kind, r->id);
	else
		fprintf(stderr, "volmgr-engined: removing %s of job %.12s: the engine answered %ld\n",
			r->id, r->job, status);
}

void sweep_once(struct engined *e)
{
	size_t n;
	_cleanup_free_ struct record *recs = state_copy(e, &n);
	if (!recs)
		return;
	int64_t now = vm_now_ns();
	/* Jobs whose container is gone, asked once each. */
	char (*gone)[ENGINED_ID_MAX + 1] = calloc(n + 1, sizeof(*gone));
	size_t n_gone = 0;
	for (size_t i = 0; gone && i < n; i++) {
		bool seen = false;
		for (size_t k = 0; k < i && !seen; k++)
			seen = strcmp(recs[k].job, recs[i].job) == 0;
		if (!seen && exists(e, "containers", recs[i].job) == 0)
			snprintf(gone[n_gone++], ENGINED_ID_MAX + 1, "%s", recs[i].job);
	}
	/* Containers first (they hold networks, volumes and pins). */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n; i++) {
			const struct record *r = &recs[i];
			bool job_gone = false;
			for (size_t k = 0; k < n_gone && !job_gone; k++)
				job_gone = strcmp(gone[k], r->job) == 0;
			if ((pass == 0) != (r->kind == REC_CONTAINER))
				continue;
			if (job_gone) {
				fprintf(stderr, "volmgr-engined: job %.12s is gone: removing its %s %.12s\n",
					r->job, r->kind == REC_PIN ? "pin" : r->kind == REC_CONTAINER ? "container" :
					r->kind == REC_NETWORK ? "network" : "volume", r->id);
				remove_obj(e, r);
			} else if (r->kind == REC_CONTAINER && exists(e, "containers", r->id) == 0) {
				state_remove(e, REC_CONTAINER, r->id);
			}
		}
	/* Pins whose container is gone, or that no create ever took. */
	free(recs);
	recs = state_copy(e, &n);
	for (size_t i = 0; recs && i < n; i++) {
		const struct record *r = &recs[i];
		if (r->kind != REC_PIN)
			continue;
		char job[ENGINED_ID_MAX + 1];
		bool has_ctr = strlen(r->container) == 64;
		if ((has_ctr && !state_job_of(e, REC_CONTAINER, r->container, job) &&
		     exists(e, "containers", r->container) == 0) ||
		    (!has_ctr && now - r->made_ns > PIN_ORPHAN_NS))
			pin_release(e, r->id);
	}
	free(gone);
}

void *sweep_thread(void *arg)
{
	struct engined *e = arg;
	for (;;) {
		struct timespec ts = {.tv_sec = e->sweep_ms / 1000,
				      .tv_nsec = (long)(e->sweep_ms % 1000) * 1000000};
		nanosleep(&ts, NULL);
		sweep_once(e);
	}
	return NULL;
}
