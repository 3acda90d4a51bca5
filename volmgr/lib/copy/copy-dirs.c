/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Directories waiting to be walked, for a walk that several threads share
 * (a reflink copy as root: each thread walks directories whole and clones
 * their files itself).  A walker that makes a directory leaves it here if
 * there is room, else walks it itself; idle walkers take the most recent
 * one.  The walk is over when nothing waits and nobody walks. */
#include "copy-private.h"

#include <stdlib.h>

int vm_copy_dirs_init(struct vm_copy_ctx *c, size_t cap)
{
	c->dirs = calloc(cap, sizeof(*c->dirs));
	if (!c->dirs)
		return -ENOMEM;
	c->dirs_cap = cap;
	c->dirs_len = 0;
	/* The first walker is busy from the start: it walks the top. */
	c->walkers_busy = 1;
	pthread_cond_init(&c->dirs_ready, NULL);
	return 0;
}

void vm_copy_dirs_free(struct vm_copy_ctx *c, struct vm_copy_scratch *s)
{
	if (!c->dirs)
		return;
	/* Left over only after a failure: unref'ing a directory then only
	 * closes it. */
	for (size_t i = 0; i < c->dirs_len; i++)
		vm_copy_dir_unref(c, c->dirs[i], s);
	free(c->dirs);
	c->dirs = NULL;
	pthread_cond_destroy(&c->dirs_ready);
}

bool vm_copy_dirs_push(struct vm_copy_ctx *c, struct vm_copy_dir *d)
{
	pthread_mutex_lock(&c->lock);
	bool room = c->dirs_len < c->dirs_cap;
	if (room) {
		c->dirs[c->dirs_len++] = d;
		if (c->walkers_waiting > 0)
			pthread_cond_signal(&c->dirs_ready);
	}
	pthread_mutex_unlock(&c->lock);
	return room;
}

/* The newest directory in groups no other walker is in, within
 * VM_COPY_PICK_SCAN of the top; else the top. */
static size_t pick_dir(const struct vm_copy_ctx *c, unsigned id)
{
	size_t scan = c->dirs_len < VM_COPY_PICK_SCAN ? c->dirs_len : VM_COPY_PICK_SCAN;
	for (size_t i = 0; i < scan; i++) {
		size_t at = c->dirs_len - 1 - i;
		if (!vm_copy_groups_taken(c, id, c->dirs[at]))
			return at;
	}
	return c->dirs_len - 1;
}

struct vm_copy_dir *vm_copy_dirs_pop(struct vm_copy_ctx *c, unsigned id)
{
	struct vm_copy_dir *d = NULL;
	pthread_mutex_lock(&c->lock);
	while (c->dirs_len == 0 && c->walkers_busy > 0 && !vm_copy_failed(c)) {
		c->walkers_waiting++;
		pthread_cond_wait(&c->dirs_ready, &c->lock);
		c->walkers_waiting--;
	}
	if (c->dirs_len > 0 && !vm_copy_failed(c)) {
		size_t at = pick_dir(c, id);
		d = c->dirs[at];
		c->dirs[at] = c->dirs[--c->dirs_len];
		vm_copy_groups_take(c, id, d);
		c->walkers_busy++;
	}
	pthread_mutex_unlock(&c->lock);
	return d;
}

void vm_copy_dirs_done(struct vm_copy_ctx *c, unsigned id)
{
	pthread_mutex_lock(&c->lock);
	c->walkers_busy--;
	vm_copy_groups_take(c, id, NULL);
	/* The last walker out ends the walk; after a failure everyone
	 * stops waiting. */
	if ((c->walkers_busy == 0 || vm_copy_failed(c)) && c->walkers_waiting > 0)
		pthread_cond_broadcast(&c->dirs_ready);
	pthread_mutex_unlock(&c->lock);
}
