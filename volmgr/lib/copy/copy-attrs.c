/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A copy's metadata: owner, extended attributes (ACLs and capabilities
 * among them), mode and times, in the one order that keeps set-id bits
 * and capabilities; and the finishing of a directory once the last file
 * made in it is done. */
#include "copy-private.h"

#include <string.h>
#include <sys/xattr.h>

/* XFS shows its ACLs a second time under these raw names: copying them
 * would duplicate (or, on another file system, garble) the ACL that
 * system.posix_acl_* already carries. */
static bool xattr_skipped(const struct vm_copy_ctx *c, const char *key)
{
	if (strncmp(key, "trusted.SGI_ACL_", 16) == 0)
		return true;
	/* trusted.* is root's to read: not for a copy a user asked for. */
	return c->reader && strncmp(key, "trusted.", 8) == 0;
}

/* Returns the number of attributes set, or -errno (error recorded). */
static int copy_xattrs(struct vm_copy_ctx *c, int src, int dst, const char *name,
		       struct vm_copy_scratch *s)
{
	ssize_t n = flistxattr(src, s->list, VM_COPY_XATTR_LIST_MAX);
	if (n < 0) {
		if (errno == ENOTSUP || errno == ENODATA)
			return 0;
		return vm_copy_fail(c, errno, true, "cannot list xattrs of %s", name);
	}
	s->list[n] = '\0';
	int set = 0;
	for (ssize_t off = 0; off < n; off += (ssize_t)strlen(s->list + off) + 1) {
		const char *key = s->list + off;
		if (!key[0] || xattr_skipped(c, key))
			continue;
		ssize_t vl = fgetxattr(src, key, s->value, sizeof(s->value));
		if (vl < 0) {
			if (errno == ENODATA)
				continue; /* removed since the list */
			return vm_copy_fail(c, errno, true, "cannot read xattr %s of %s",
					    key, name);
		}
		if (fsetxattr(dst, key, s->value, (size_t)vl, 0) < 0) {
			if (errno == ENOTSUP)
				continue;
			return vm_copy_fail(c, errno, true, "cannot set xattr %s on %s", key, name);
		}
		set++;
	}
	return set;
}

/* Owner first (chown clears set-id bits and security.capability; owned:
 * creation gave the right one already), then the extended attributes,
 * then mode (unless creation already made it and no ACL changed it),
 * then times (which every other change touches).  Each skipped call is
 * one system call less per file, which on a tree of small files is what
 * a copy costs. */
int vm_copy_attrs(struct vm_copy_ctx *c, int src, int dst, const struct stat *st,
		      const char *name, struct vm_copy_scratch *s, mode_t created, bool owned)
{
	if (!owned && fchown(dst, st->st_uid, st->st_gid) < 0)
		return vm_copy_fail(c, errno, true, "cannot chown %s", name);
	int set = 0;
	if (src >= 0 && !c->opts->src_no_xattrs && (set = copy_xattrs(c, src, dst, name, s)) < 0)
		return set;
	if (set > 0)
		atomic_fetch_add_explicit(&c->xattrs_done, (uint64_t)set, memory_order_relaxed);
	mode_t mode = st->st_mode & 07777;
	if ((set > 0 || !c->umask_known || (mode & 07000) ||
	     mode != (created & ~c->umask)) &&
	    fchmod(dst, mode) < 0)
		return vm_copy_fail(c, errno, true, "cannot chmod %s", name);
	struct timespec ts[2] = {st->st_atim, st->st_mtim};
	if (futimens(dst, ts) < 0)
		return vm_copy_fail(c, errno, true, "cannot set times of %s", name);
	return 0;
}

void vm_copy_dir_unref(struct vm_copy_ctx *c, struct vm_copy_dir *d,
		       struct vm_copy_scratch *s)
{
	if (atomic_fetch_sub(&d->refs, 1) != 1)
		return;
	if (d->is_root)
		return;
	if (!vm_copy_failed(c)) {
		struct vm_copy_scratch *own = s ? NULL : malloc(sizeof(*own));
		if (!s && !own)
			vm_copy_fail(c, ENOMEM, false, "out of memory");
		else
			vm_copy_attrs(c, d->src, d->dst, &d->st, d->name, s ? s : own,
				   d->created, d->owned);
		free(own);
	}
	if (d->src >= 0)
		close(d->src);
	close(d->dst);
	free(d->path);
	free(d);
}
