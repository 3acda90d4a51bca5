/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "readers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct vm_readers_entry {
	dev_t dev;
	ino_t ino;
	unsigned count;
	char **deferred; /* NULL-terminated, may be NULL */
	size_t n_deferred;
};

static struct vm_readers_entry *find(const struct vm_readers *rs, dev_t dev, ino_t ino)
{
	for (size_t i = 0; i < rs->n; i++)
		if (rs->v[i].dev == dev && rs->v[i].ino == ino)
			return &rs->v[i];
	return NULL;
}

int vm_readers_hold(struct vm_readers *rs, dev_t dev, ino_t ino)
{
	struct vm_readers_entry *e = find(rs, dev, ino);
	if (e) {
		e->count++;
		return 0;
	}
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 8;
		struct vm_readers_entry *v = realloc(rs->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		rs->v = v;
		rs->cap = cap;
	}
	rs->v[rs->n++] = (struct vm_readers_entry){.dev = dev, .ino = ino, .count = 1};
	return 0;
}

void vm_readers_release(struct vm_readers *rs, dev_t dev, ino_t ino, char ***ret_deferred)
{
	*ret_deferred = NULL;
	struct vm_readers_entry *e = find(rs, dev, ino);
	if (!e || --e->count > 0)
		return;
	*ret_deferred = e->deferred;
	*e = rs->v[--rs->n];
}

bool vm_readers_busy(const struct vm_readers *rs, dev_t dev, ino_t ino)
{
	return find(rs, dev, ino) != NULL;
}

int vm_readers_defer(struct vm_readers *rs, dev_t dev, ino_t ino, const char *name)
{
	struct vm_readers_entry *e = find(rs, dev, ino);
	if (!e)
		return -ENOENT;
	char **v = realloc(e->deferred, (e->n_deferred + 2) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	e->deferred = v;
	if (!(v[e->n_deferred] = strdup(name)))
		return -ENOMEM;
	v[++e->n_deferred] = NULL;
	return 0;
}

size_t vm_readers_count(const struct vm_readers *rs)
{
	return rs->n;
}

void vm_readers_done(struct vm_readers *rs)
{
	for (size_t i = 0; i < rs->n; i++) {
		for (size_t k = 0; k < rs->v[i].n_deferred; k++)
			free(rs->v[i].deferred[k]);
		free(rs->v[i].deferred);
	}
	free(rs->v);
	*rs = (struct vm_readers){0};
}
