/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The caches' ceiling ([cache] max_usage): promoted caches warm
 * themselves, one per project and protection level, so a fleet's pool
 * fills with caches of projects nobody builds any more.  Each gc run
 * writes every cache's last use into its record, measures each cache
 * generation once (the bytes of its files: an upper bound of what
 * dropping it frees, since btrfs shares extents with the volumes made
 * from it), and while the pool's file system is used past the ceiling
 * drops promoted caches, least recently used first, until what they
 * hold covers the excess.  Never one a copy is reading, never an
 * imported or git cache (an administrator made those). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "gc.h"
#include "manager-private.h"
#include "treecount.h"

struct candidate {
	char name[VM_NAME_MAX + 1];
	int64_t last_used;
	uint64_t generation;
	uint64_t bytes;
	bool sized;    /* bytes are of this generation */
	bool promoted; /* made by cache promote: the ceiling may drop it */
};

static int by_last_use(const void *a, const void *b)
{
	const struct candidate *x = a, *y = b;
	if (x->last_used != y->last_used)
		return x->last_used < y->last_used ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Under the lock: every cache, each record brought up to date with its
 * last use (written only when it changed). */
static int candidates(struct vm_manager *m, struct candidate **ret, size_t *ret_n,
		      struct vm_error *err)
{
	VM_STORE_LOCK(&m->store);
	_cleanup_json_ json_t *names = vm_store_names(&m->store, VM_KIND_CACHE);
	if (!names)
		return vm_error_set(err, ENOMEM, "cannot list the caches");
	struct candidate *v = NULL;
	size_t n = 0, cap = 0;
	const char *name;
	json_t *unused;
	json_object_foreach(names, name, unused) {
		_cleanup_record_ struct vm_record rec = {0};
		if (vm_store_load_ready(&m->store, VM_KIND_CACHE, name, &rec, NULL) < 0)
			continue;
		int64_t last = vm_store_cache_last_used(&m->store, &rec);
		if (last > rec.last_used_ns) {
			rec.last_used_ns = last;
			/* Kept in memory until a record has it. */
			if (vm_store_store_record(&m->store, &rec, NULL) == 0)
				json_object_del(m->store.cache_uses, name);
		} else {
			json_object_del(m->store.cache_uses, name);
		}
		struct candidate *c = vm_grow((void **)&v, n, &cap, sizeof(*v));
		if (!c) {
			free(v);
			return vm_error_set(err, ENOMEM, "out of memory");
		}
		*c = (struct candidate){.generation = rec.generation,
					.last_used = last > rec.updated_ns ? last : rec.updated_ns,
					.bytes = rec.size_bytes,
					.sized = rec.size_generation == rec.generation,
					.promoted = rec.promoted_from[0] != '\0'};
		snprintf(c->name, sizeof(c->name), "%s", name);
		n++;
	}
	/* Uses of caches that are gone are forgotten with them. */
	void *tmp;
	json_object_foreach_safe(m->store.cache_uses, tmp, name, unused)
		if (!json_object_get(names, name))
			json_object_del(m->store.cache_uses, name);
	*ret = v;
	*ret_n = n;
	return 0;
}

/* Without the lock: the bytes of cache c's files, recorded with the
 * generation they are of (skipped if a promote replaced it meanwhile). */
static void measure(struct vm_manager *m, struct candidate *c)
{
	_cleanup_close_ int fd = vm_openat_beneath(m->store.pool->caches_fd, c->name,
						   O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	struct vm_treecount t;
	if (fd < 0 || vm_treecount(fd, 0, 0, &t, NULL) < 0)
		return;
	c->bytes = t.bytes;
	c->sized = true;
	VM_STORE_LOCK(&m->store);
	_cleanup_record_ struct vm_record rec = {0};
	if (vm_store_load_ready(&m->store, VM_KIND_CACHE, c->name, &rec, NULL) < 0 ||
	    rec.generation != c->generation)
		return;
	rec.size_bytes = t.bytes;
	rec.size_generation = rec.generation;
	vm_store_store_record(&m->store, &rec, NULL);
}

/* Under the lock: whether a copy reads cache name now. */
static bool being_read(struct vm_manager *m, const char *name)
{
	VM_STORE_LOCK(&m->store);
	struct stat st;
	return fstatat(m->store.pool->caches_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       vm_readers_busy(&m->store.readers, st.st_dev, st.st_ino);
}

static int add_entry(struct vm_gc_entry **list, size_t *n, size_t *cap, const struct candidate *c,
		     const char *error)
{
	struct vm_gc_entry *e = vm_grow((void **)list, *n, cap, sizeof(**list));
	if (!e)
		return -ENOMEM;
	*e = (struct vm_gc_entry){.reasons = VM_GC_POOL_USAGE, .has_bytes = true, .bytes = c->bytes};
	snprintf(e->name, sizeof(e->name), "%s", c->name);
	snprintf(e->error, sizeof(e->error), "%s", error ? error : "");
	(*n)++;
	return 0;
}

int vm_mgr_cache_ceiling(struct vm_manager *m, bool dry_run, struct vm_gc_report *rep,
			 struct vm_error *err)
{
	_cleanup_free_ struct candidate *v = NULL;
	size_t n = 0;
	int r = candidates(m, &v, &n, err);
	if (r < 0)
		return r;
	/* Each generation measured once (cache ls shows it). */
	for (size_t i = 0; i < n; i++)
		if (!v[i].sized)
			measure(m, &v[i]);
	unsigned pct = m->config.cache_max_usage_pct;
	uint64_t bytes_max = m->config.cache_max_usage_bytes;
	if (!pct && !bytes_max)
		return 0;
	struct statvfs sv;
	if (fstatvfs(m->store.pool->fd, &sv) < 0)
		return vm_error_errno(err, errno, "cannot read the pool's file system's usage");
	uint64_t total = (uint64_t)sv.f_blocks * sv.f_frsize;
	uint64_t used = (uint64_t)(sv.f_blocks - sv.f_bfree) * sv.f_frsize;
	uint64_t limit = pct ? total / 100 * pct : bytes_max;
	rep->has_ceiling = true;
	rep->pool_used = used;
	rep->pool_limit = limit;
	qsort(v, n, sizeof(*v), by_last_use);
	size_t cap_removed = 0, cap_kept = 0;
	uint64_t freed = 0;
	for (size_t i = 0; i < n && used > limit + freed; i++) {
		if (!v[i].promoted)
			continue; /* an administrator's: imported or from git */
		struct vm_error e = {0};
		if (being_read(m, v[i].name))
			vm_error_set(&e, EBUSY, "a copy is reading it");
		else if (!dry_run)
			vm_cache_remove(m, v[i].name, &e);
		bool kept = e.msg[0] != '\0';
		r = kept ? add_entry(&rep->caches_kept, &rep->n_caches_kept, &cap_kept, &v[i], e.msg)
			 : add_entry(&rep->caches_removed, &rep->n_caches_removed, &cap_removed, &v[i], NULL);
		if (r < 0)
			return vm_error_set(err, ENOMEM, "out of memory");
		if (!kept) {
			freed += v[i].bytes;
			rep->bytes_freed += v[i].bytes;
		}
	}
	return 0;
}
