/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the manager needs around the copies it runs (clones on the copy
 * and reflink backends, imports, path copies): holds on the pool trees
 * being read and the deletes that wait for them, the copy options, and
 * the one log line per copy. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "copy.h"
#include "treecount.h"

#include "manager-private.h"

void vm_mgr_log(struct vm_manager *m, const char *fmt, ...)
{
	if (!m->log)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	m->log(m->log_userdata, line);
}

void vm_mgr_log_copy(struct vm_manager *m, const char *what, const char *name,
		     const struct vm_copy_report *rep)
{
	const struct vm_copy_stats *st = &rep->stats;
	double s = (double)rep->elapsed_ns / 1e9;
	double rate = s > 0 ? (double)st->bytes / s / 1e6 : 0;
	char xattrs[64];
	if (rep->xattrs_unlisted)
		snprintf(xattrs, sizeof(xattrs), "none in the source, not listed");
	else
		snprintf(xattrs, sizeof(xattrs), "%llu", (unsigned long long)st->xattrs);
	vm_mgr_log(m, "copy: %s %s: %llu files, %llu dirs, %llu bytes in %.3f s (%.1f MB/s), backend %s, io %s (%s), xattrs %s, durable in %.3f s",
		   what, name, (unsigned long long)(st->files + st->symlinks + st->others),
		   (unsigned long long)st->dirs, (unsigned long long)st->bytes, s, rate,
		   vm_backend_name(m->backend.kind), vm_copy_io_name(rep->io_used), rep->io_reason,
		   xattrs, (double)rep->durable_ns / 1e9);
}

int vm_mgr_hold(struct vm_manager *m, int fd, struct vm_mgr_hold *ret, struct vm_error *err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return vm_error_errno(err, errno, "cannot stat the tree to copy");
	if (vm_readers_hold(&m->readers, st.st_dev, st.st_ino) < 0)
		return vm_error_set(err, ENOMEM, "out of memory");
	*ret = (struct vm_mgr_hold){true, st.st_dev, st.st_ino};
	return 0;
}

void vm_mgr_release(struct vm_manager *m, struct vm_mgr_hold *h)
{
	if (!h->held)
		return;
	char **deferred = NULL;
	{
		LOCK_GUARD(m);
		vm_readers_release(&m->readers, h->dev, h->ino, &deferred);
	}
	h->held = false;
	for (size_t i = 0; deferred && deferred[i]; i++) {
		struct vm_error e = {0};
		if (vm_mgr_delete_staged(m, deferred[i], &e) < 0)
			vm_mgr_log(m, "deferred delete of staging/%s failed (retried at the next start): %s",
				   deferred[i], e.msg);
		else
			vm_mgr_log(m, "deleted staging/%s: the last copy reading it ended", deferred[i]);
		free(deferred[i]);
	}
	free(deferred);
}

int vm_mgr_delete_trash(struct vm_manager *m, const char *name, struct vm_error *err)
{
	{
		LOCK_GUARD(m);
		struct stat st;
		if (fstatat(m->pool->staging_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return errno == ENOENT ? 0 : vm_error_errno(err, errno, "cannot stat staging/%s", name);
		/* Out of sight already: only copies that opened it before can
		 * still read it, and they registered under this lock. */
		if (vm_readers_busy(&m->readers, st.st_dev, st.st_ino)) {
			if (vm_readers_defer(&m->readers, st.st_dev, st.st_ino, name) < 0)
				return vm_error_set(err, ENOMEM, "out of memory");
			vm_mgr_log(m, "staging/%s is being read by a copy: deleted when it ends", name);
			return 0;
		}
	}
	return vm_mgr_delete_staged(m, name, err);
}

void vm_mgr_copy_opts(struct vm_manager *m, int src_fd, const struct vm_create_opts *opts,
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

int vm_mgr_copy_enter(struct vm_manager *m, const struct vm_caller *caller, struct vm_error *err)
{
	uint32_t uid = caller ? caller->uid : 0;
	LOCK_GUARD(m);
	struct vm_copy_uid *slot = NULL, *free_slot = NULL;
	for (size_t i = 0; i < ELEMENTSOF(m->copy_uids); i++) {
		if (m->copy_uids[i].n && m->copy_uids[i].uid == uid)
			slot = &m->copy_uids[i];
		else if (!m->copy_uids[i].n && !free_slot)
			free_slot = &m->copy_uids[i];
	}
	/* Root is the administrator and the engines: only the global slots
	 * bound it.  Anyone else may have a few copies running or queued. */
	if (uid != 0 && slot && slot->n >= VM_MGR_COPIES_PER_UID)
		return vm_error_set(err, EBUSY,
				    "uid %u has %d copies running or waiting already: wait for one to end",
				    uid, VM_MGR_COPIES_PER_UID);
	if (!slot && !(slot = free_slot))
		return vm_error_set(err, EBUSY, "too many users' copies running or waiting");
	slot->uid = uid;
	slot->n++;
	m->copies_waiting++;
	return 0;
}

void vm_mgr_copy_start(struct vm_manager *m)
{
	while (sem_wait(&m->copy_slots) < 0 && errno == EINTR)
		;
	LOCK_GUARD(m);
	m->copies_waiting--;
	m->copies_running++;
}

void vm_mgr_copy_leave(struct vm_manager *m, const struct vm_caller *caller)
{
	uint32_t uid = caller ? caller->uid : 0;
	sem_post(&m->copy_slots);
	LOCK_GUARD(m);
	m->copies_running--;
	for (size_t i = 0; i < ELEMENTSOF(m->copy_uids); i++)
		if (m->copy_uids[i].n && m->copy_uids[i].uid == uid) {
			m->copy_uids[i].n--;
			break;
		}
}

int vm_mgr_make_durable(int fd, uint64_t *ret_ns, struct vm_error *err)
{
	int64_t t0 = vm_mono_ns();
	if (syncfs(fd) < 0)
		return vm_error_errno(err, errno, "cannot write the new tree to disk");
	if (ret_ns)
		*ret_ns = (uint64_t)(vm_mono_ns() - t0);
	return 0;
}
