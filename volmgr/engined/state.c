/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The records of what jobs made, in memory under e->lock and on disk
 * as one JSON file rewritten whole (a few hundred entries at most: the
 * containers, networks, volumes and pins of the jobs running now). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engined.h"
#include "json-util.h"

#define RECORDS_FILE "records.json"
#define RECORDS_MAX 100000

static const char *const kind_names[] = {"container", "network", "volume", "pin"};

/* Under e->lock. */
static void save(struct engined *e)
{
	_cleanup_json_ json_t *a = json_array();
	for (size_t i = 0; a && i < e->n_records; i++) {
		const struct record *r = &e->records[i];
		json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s, s:I}", "kind",
						   kind_names[r->kind], "id", r->id, "job", r->job,
						   "container", r->container, "made", (json_int_t)r->made_ns));
	}
	_cleanup_free_ char *s = a ? json_dumps(a, JSON_COMPACT) : NULL;
	_cleanup_close_ int dir = open(e->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!s || dir < 0 || vm_write_file_atomic_at(dir, RECORDS_FILE, s, strlen(s), 0600) < 0)
		fprintf(stderr, "volmgr-engined: cannot save %s/%s: %m\n", e->state_dir, RECORDS_FILE);
}

int state_load(struct engined *e, struct vm_error *err)
{
	_cleanup_close_ int dir = open(e->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return vm_error_errno(err, errno, "cannot open %s", e->state_dir);
	_cleanup_free_ char *s = NULL;
	int r = vm_read_file_at(dir, RECORDS_FILE, 64 * 1024 * 1024, &s, NULL);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return vm_error_errno(err, -r, "cannot read %s/%s", e->state_dir, RECORDS_FILE);
	_cleanup_json_ json_t *a = json_loads(s, 0, NULL);
	if (!json_is_array(a))
		return vm_error_set(err, EINVAL, "%s/%s: not a list of records", e->state_dir, RECORDS_FILE);
	size_t i;
	json_t *o;
	json_array_foreach(a, i, o) {
		const char *kind = json_string_value(json_object_get(o, "kind"));
		const char *id = json_string_value(json_object_get(o, "id"));
		const char *job = json_string_value(json_object_get(o, "job"));
		const char *ctr = json_string_value(json_object_get(o, "container"));
		for (size_t k = 0; kind && id && job && k < ELEMENTSOF(kind_names); k++)
			if (strcmp(kind, kind_names[k]) == 0)
				state_add(e, (enum record_kind)k, id, job, ctr ? ctr : "");
	}
	return 0;
}

int state_add(struct engined *e, enum record_kind kind, const char *id, const char *job,
	      const char *container)
{
	pthread_mutex_lock(&e->lock);
	int r = 0;
	struct record *n = e->n_records < RECORDS_MAX
				   ? vm_grow((void **)&e->records, e->n_records, &e->cap_records,
					     sizeof(*e->records))
				   : NULL;
	if (!n) {
		r = -ENOMEM;
	} else {
		*n = (struct record){.kind = kind, .made_ns = vm_now_ns()};
		snprintf(n->id, sizeof(n->id), "%s", id);
		snprintf(n->job, sizeof(n->job), "%s", job);
		snprintf(n->container, sizeof(n->container), "%s", container ? container : "");
		e->n_records++;
		save(e);
	}
	pthread_mutex_unlock(&e->lock);
	return r;
}

bool state_job_of(struct engined *e, enum record_kind kind, const char *id,
		  char job[static ENGINED_ID_MAX + 1])
{
	bool found = false;
	pthread_mutex_lock(&e->lock);
	for (size_t i = 0; i < e->n_records && !found; i++)
		if (e->records[i].kind == kind && strcmp(e->records[i].id, id) == 0) {
			snprintf(job, ENGINED_ID_MAX + 1, "%s", e->records[i].job);
			found = true;
		}
	pthread_mutex_unlock(&e->lock);
	return found;
}

void state_remove(struct engined *e, enum record_kind kind, const char *id)
{
	pthread_mutex_lock(&e->lock);
	size_t o = 0;
	for (size_t i = 0; i < e->n_records; i++)
		if (!(e->records[i].kind == kind && strcmp(e->records[i].id, id) == 0))
			e->records[o++] = e->records[i];
	bool changed = o != e->n_records;
	e->n_records = o;
	if (changed)
		save(e);
	pthread_mutex_unlock(&e->lock);
}

void state_pins_to(struct engined *e, const char *tag, const char *container)
{
	pthread_mutex_lock(&e->lock);
	for (size_t i = 0; i < e->n_records; i++)
		if (e->records[i].kind == REC_PIN && strcmp(e->records[i].container, tag) == 0)
			snprintf(e->records[i].container, sizeof(e->records[i].container), "%s",
				 container);
	save(e);
	pthread_mutex_unlock(&e->lock);
}

struct record *state_copy(struct engined *e, size_t *n)
{
	pthread_mutex_lock(&e->lock);
	struct record *c = malloc(sizeof(*c) * (e->n_records ? e->n_records : 1));
	*n = c ? e->n_records : 0;
	if (c && e->n_records)
		memcpy(c, e->records, sizeof(*c) * e->n_records);
	pthread_mutex_unlock(&e->lock);
	return c;
}
