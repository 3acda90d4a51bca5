/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "exitcode.h"

/* Requests are counted per (where, what, result) in a small fixed table:
 * what and result come from closed sets, so it cannot grow with input. */
#define SLOTS 256

struct slot {
	char where[16], what[40], result[16];
	uint64_t count;
};

static const double buckets_ms[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000};
#define NB (sizeof(buckets_ms) / sizeof(buckets_ms[0]))

struct hist {
	uint64_t bucket[NB];
	uint64_t count;
	double sum_s;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot slots[SLOTS];
static size_t nslots;
static uint64_t dropped;
static struct hist hists[VM_HIST_MAX];

void vm_metrics_request(const char *where, const char *what, int err)
{
	const char *result = err ? vm_errno_name(err < 0 ? -err : err) : "ok";
	pthread_mutex_lock(&lock);
	size_t i;
	for (i = 0; i < nslots; i++)
		if (!strcmp(slots[i].where, where) && !strcmp(slots[i].what, what) &&
		    !strcmp(slots[i].result, result))
			break;
	if (i == nslots) {
		if (nslots == SLOTS) {
			dropped++;
			pthread_mutex_unlock(&lock);
			return;
		}
		snprintf(slots[i].where, sizeof(slots[i].where), "%s", where);
		snprintf(slots[i].what, sizeof(slots[i].what), "%s", what);
		snprintf(slots[i].result, sizeof(slots[i].result), "%s", result);
		nslots++;
	}
	slots[i].count++;
	pthread_mutex_unlock(&lock);
}

void vm_metrics_observe(enum vm_histogram h, int64_t ns)
{
	if (h < 0 || h >= VM_HIST_MAX || ns < 0)
		return;
	double ms = (double)ns / 1e6;
	pthread_mutex_lock(&lock);
	for (size_t b = 0; b < NB; b++)
		if (ms <= buckets_ms[b])
			hists[h].bucket[b]++;
	hists[h].count++;
	hists[h].sum_s += ms / 1000.0;
	pthread_mutex_unlock(&lock);
}

static void render_hist(FILE *f, const char *name, const char *help, const struct hist *h)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (size_t b = 0; b < NB; b++)
		fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, buckets_ms[b] / 1000.0,
			(unsigned long long)h->bucket[b]);
	fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
		(unsigned long long)h->count, name, h->sum_s, name, (unsigned long long)h->count);
}

char *vm_metrics_render(uint64_t volumes, uint64_t caches, uint64_t in_use,
			uint64_t bytes_exclusive, uint64_t bytes_referenced)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	fprintf(f, "# HELP volmgr_volumes Volumes in the pool.\n# TYPE volmgr_volumes gauge\n"
		   "volmgr_volumes %llu\n", (unsigned long long)volumes);
	fprintf(f, "# HELP volmgr_volumes_in_use Volumes mounted by containers.\n"
		   "# TYPE volmgr_volumes_in_use gauge\nvolmgr_volumes_in_use %llu\n",
		(unsigned long long)in_use);
	fprintf(f, "# HELP volmgr_caches Caches in the pool.\n# TYPE volmgr_caches gauge\n"
		   "volmgr_caches %llu\n", (unsigned long long)caches);
	fprintf(f, "# HELP volmgr_volume_bytes Bytes of all volumes (btrfs quota accounting).\n"
		   "# TYPE volmgr_volume_bytes gauge\n"
		   "volmgr_volume_bytes{kind=\"exclusive\"} %llu\n"
		   "volmgr_volume_bytes{kind=\"referenced\"} %llu\n",
		(unsigned long long)bytes_exclusive, (unsigned long long)bytes_referenced);
	pthread_mutex_lock(&lock);
	fprintf(f, "# HELP volmgr_requests_total Requests by socket, endpoint or operation, and result.\n"
		   "# TYPE volmgr_requests_total counter\n");
	for (size_t i = 0; i < nslots; i++)
		fprintf(f, "volmgr_requests_total{socket=\"%s\",request=\"%s\",result=\"%s\"} %llu\n",
			slots[i].where, slots[i].what, slots[i].result,
			(unsigned long long)slots[i].count);
	fprintf(f, "# HELP volmgr_errors_total Failed requests by kind.\n"
		   "# TYPE volmgr_errors_total counter\n");
	/* Sum by result over the table. */
	for (size_t i = 0; i < nslots; i++) {
		if (!strcmp(slots[i].result, "ok"))
			continue;
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = !strcmp(slots[j].result, slots[i].result);
		if (seen)
			continue;
		uint64_t sum = 0;
		for (size_t j = i; j < nslots; j++)
			if (!strcmp(slots[j].result, slots[i].result))
				sum += slots[j].count;
		fprintf(f, "volmgr_errors_total{kind=\"%s\"} %llu\n", slots[i].result,
			(unsigned long long)sum);
	}
	render_hist(f, "volmgr_snapshot_seconds", "Time to make a volume as a snapshot.",
		    &hists[VM_HIST_SNAPSHOT]);
	render_hist(f, "volmgr_copy_seconds", "Time to make a volume or cache by copying a tree.",
		    &hists[VM_HIST_COPY]);
	pthread_mutex_unlock(&lock);
	fclose(f);
	return buf;
}
