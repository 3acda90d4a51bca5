/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Trees of the pool being read by a copy (a clone on the copy and reflink
 * backends, a cache update's new generation), by dev:ino, with the
 * deletes that wait for them: a cache or volume removed meanwhile, or a
 * git update's old generation, is moved out of sight at once but deleted
 * only when the last copy reading it ends.  Used under the store's
 * lock; not thread-safe by itself. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

struct vm_readers_entry;
struct vm_readers {
	struct vm_readers_entry *v;
	size_t n, cap;
};

/* One more copy reads the tree dev:ino.  -ENOMEM. */
int vm_readers_hold(struct vm_readers *rs, dev_t dev, ino_t ino);
/* A copy of dev:ino ended.  When it was the last, *ret_deferred gets the
 * NULL-terminated list of staging/ names to delete now (free each and
 * the list), else NULL. */
void vm_readers_release(struct vm_readers *rs, dev_t dev, ino_t ino, char ***ret_deferred);
bool vm_readers_busy(const struct vm_readers *rs, dev_t dev, ino_t ino);
/* Delete staging/name when the copies of dev:ino end.  -ENOMEM. */
int vm_readers_defer(struct vm_readers *rs, dev_t dev, ino_t ino, const char *name);
/* Number of trees being read (for status). */
size_t vm_readers_count(const struct vm_readers *rs);
void vm_readers_done(struct vm_readers *rs);
