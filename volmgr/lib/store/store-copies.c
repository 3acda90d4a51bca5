/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the store keeps around the copies the manager runs (clones on the
 * copy and reflink backends, imports, path copies, git's generations
 * off btrfs): holds on the pool trees being read and the deletes that
 * wait for them, how many copies run and whose, the copy options,
 * durability before the record, and the one log line per copy
 * (store.h). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "store.h"
#include "treecount.h"

void vm_store_log_copy(struct vm_store *s, const char *what, const char *name,
		     const struct vm_copy_report *rep)
{
	const struct vm_copy_stats *st = &rep->stats;
	double secs = (double)rep->elapsed_ns / 1e9;
	double rate = secs > 0 ? (double)st->bytes / secs / 1e6 : 0;
	char xattrs[64];
	if (rep->xattrs_unlisted)
		snprintf(xattrs, sizeof(xattrs), "none in the source, not listed");
	else
		snprintf(xattrs, sizeof(xattrs), "%llu", (unsigned long long)st->xattrs);
	vm_store_log(s, "copy: %s %s: %llu files, %llu dirs, %llu bytes in %.3f s (%.1f MB/s), backend %s, io %s (%s), xattrs %s, durable in %.3f s",
		   what, name, (unsigned long long)(st->files + st->symlinks + st->others),
		   (unsigned long long)st->dirs, (unsigned long long)st->bytes, secs, rate,
		   vm_backend_name(s->backend.kind), vm_copy_io_name(rep->io_used), rep->io_reason,
		   xattrs, (double)rep->durable_ns / 1e9);
}

int vm_store_hold(struct vm_store *s, int fd, struct vm_store_hold *ret, struct vm_error *err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return vm_error_errno(err, errno, "cannot stat the tree to copy");
	if (vm_readers_hold(&s->readers, st.st_dev, st.st_ino) < 0)
		return vm_error_set(err, ENOMEM, "out of memory");
	*ret = (struct vm_store_hold){true, st.st_dev, st.st_ino};
	return 0;
}

void vm_store_release(struct vm_store *s, struct vm_store_hold *h)
{
	if (!h->held)
		return;
	char **deferred = NULL;
	{
		VM_STORE_LOCK(s);
		vm_readers_release(&s->readers, h->dev, h->ino, &deferred);
	}
	h->held = false;
	for (size_t i = 0; deferred && deferred[i]; i++) {
		struct vm_error e = {0};
		if (vm_store_delete_staged(s, deferred[i], &e) < 0)
			vm_store_log(s, "deferred delete of staging/%s failed (retried at the next start): %s",
				   deferred[i], e.msg);
		else
			vm_store_log(s, "deleted staging/%s: the last copy reading it ended", deferred[i]);
		free(deferred[i]);
	}
	free(deferred);
}

void vm_store_copy_opts(struct vm_store *s, int src_fd, const struct vm_create_opts *opts,
		      const struct vm_caller *caller, struct vm_reader *reader,
		      struct vm_copy_opts *ret)
{
	/* Data and io are the backend's to set (vm_backend_*_into). */
	*ret = (struct vm_copy_opts){0};
	if (caller && caller->uid != 0) {
		*reader = (struct vm_reader){.uid = caller->uid, .gid = caller->gid,
					     .ngroups = caller->ngroups};
		memcpy(reader->groups, caller->groups, sizeof(uint32_t) * (size_t)caller->ngroups);
		ret->reader = reader;
	}
	if (opts && opts->progress) {
		ret->progress = opts->progress;
		ret->progress_userdata = opts->progress_userdata;
		/* Totals for "time left": counted first, bounded; a failed
		 * count only leaves them unknown.  Not for a caller that is
		 * not root: the count runs as root and would tell it the size
		 * of directories it cannot read. */
		struct vm_treecount t;
		if (!ret->reader && vm_treecount(src_fd, 0, 0, &t, NULL) == 0 && !t.over) {
			ret->total_files = t.files;
			ret->total_bytes = t.bytes;
		}
	}
}

/* ---- how many copies run and wait, and whose ---- */

int vm_store_copy_enter(struct vm_store *s, const struct vm_caller *caller, struct vm_error *err)
{
	uint32_t uid = caller ? caller->uid : 0;
	VM_STORE_LOCK(s);
	struct vm_store_copy_uid *slot = NULL, *free_slot = NULL;
	for (size_t i = 0; i < ELEMENTSOF(s->copy_uids); i++) {
		if (s->copy_uids[i].n && s->copy_uids[i].uid == uid)
			slot = &s->copy_uids[i];
		else if (!s->copy_uids[i].n && !free_slot)
			free_slot = &s->copy_uids[i];
	}
	/* Root is the administrator and the engines: only the global slots
	 * bound it.  Anyone else may have a few copies running or queued. */
	if (uid != 0 && slot && slot->n >= VM_STORE_COPIES_PER_UID)
		return vm_error_set(err, EBUSY,
				    "uid %u has %d copies running or waiting already: wait for one to end",
				    uid, VM_STORE_COPIES_PER_UID);
	if (!slot && !(slot = free_slot))
		return vm_error_set(err, EBUSY, "too many users' copies running or waiting");
	slot->uid = uid;
	slot->n++;
	s->copies_waiting++;
	return 0;
}

void vm_store_copy_start(struct vm_store *s)
{
	while (sem_wait(&s->copy_slots) < 0 && errno == EINTR)
		;
	VM_STORE_LOCK(s);
	s->copies_waiting--;
	s->copies_running++;
}

void vm_store_copy_leave(struct vm_store *s, const struct vm_caller *caller)
{
	uint32_t uid = caller ? caller->uid : 0;
	sem_post(&s->copy_slots);
	VM_STORE_LOCK(s);
	s->copies_running--;
	for (size_t i = 0; i < ELEMENTSOF(s->copy_uids); i++)
		if (s->copy_uids[i].n && s->copy_uids[i].uid == uid) {
			s->copy_uids[i].n--;
			break;
		}
}

int vm_store_make_durable(int fd, uint64_t *ret_ns, struct vm_error *err)
{
	int64_t t0 = vm_mono_ns();
	if (syncfs(fd) < 0)
		return vm_error_errno(err, errno, "cannot write the new tree to disk");
	if (ret_ns)
		*ret_ns = (uint64_t)(vm_mono_ns() - t0);
	return 0;
}

int vm_store_clone_staged(struct vm_store *s, int src, bool src_is_cache, const char *tmp,
			  const char *what, const char *name, struct vm_error *err)
{
	int r = vm_backend_make_empty(&s->backend, s->pool->staging_fd, tmp, NULL, err);
	if (r < 0)
		return r;
	_cleanup_close_ int dst = vm_openat_beneath(s->pool->staging_fd, tmp,
						    O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (dst < 0)
		return vm_error_errno(err, -dst, "cannot open staging/%s", tmp);
	struct vm_reader reader;
	struct vm_copy_opts co;
	struct vm_copy_report rep;
	vm_store_copy_opts(s, src, NULL, NULL, &reader, &co);
	/* Into a cache only volmgrd and git's uid write; into a volume a
	 * container's root may put device nodes. */
	co.src_no_new_devices = src_is_cache;
	r = vm_backend_clone_into(&s->backend, src, dst, &co, &rep, err);
	if (r == 0)
		vm_store_log_copy(s, what, name, &rep);
	return r;
}
