/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Hard links: the first copy of every multiply-linked inode, by its path
 * below the destination root (the engine's own fresh tree; the path is
 * walked again one component at a time without following symlinks), in
 * a hash table with open addressing on (dev, ino). */
#include "copy-private.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>

static size_t link_hash(dev_t dev, ino_t ino, size_t cap)
{
	uint64_t h = ((uint64_t)ino * 0x9e3779b97f4a7c15ull) ^ (uint64_t)dev;
	return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

const char *vm_copy_links_find(const struct vm_copy_links *l, dev_t dev, ino_t ino)
{
	if (!l->cap)
		return NULL;
	for (size_t i = link_hash(dev, ino, l->cap);; i = (i + 1) & (l->cap - 1)) {
		const struct vm_copy_link *e = &l->slots[i];
		if (!e->relpath)
			return NULL;
		if (e->dev == dev && e->ino == ino)
			return e->relpath;
	}
}

int vm_copy_links_add(struct vm_copy_links *l, dev_t dev, ino_t ino, const char *dir,
		      const char *name)
{
	size_t len = strlen(dir) + (dir[0] ? 1 : 0) + strlen(name) + 1;
	if (l->n >= VM_COPY_LINKS_MAX ||
	    len > VM_COPY_LINKS_PATH_BYTES_MAX - l->path_bytes)
		return -E2BIG;
	if (2 * (l->n + 1) > l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		struct vm_copy_link *n = calloc(cap, sizeof(*n));
		if (!n)
			return -ENOMEM;
		for (size_t i = 0; i < l->cap; i++) {
			struct vm_copy_link *e = &l->slots[i];
			if (!e->relpath)
				continue;
			size_t k = link_hash(e->dev, e->ino, cap);
			while (n[k].relpath)
				k = (k + 1) & (cap - 1);
			n[k] = *e;
		}
		free(l->slots);
		l->slots = n;
		l->cap = cap;
	}
	char *p = malloc(len);
	if (!p)
		return -ENOMEM;
	snprintf(p, len, "%s%s%s", dir, dir[0] ? "/" : "", name);
	l->path_bytes += len;
	size_t k = link_hash(dev, ino, l->cap);
	while (l->slots[k].relpath)
		k = (k + 1) & (l->cap - 1);
	l->slots[k] = (struct vm_copy_link){dev, ino, p};
	l->n++;
	return 0;
}

void vm_copy_links_free(struct vm_copy_links *l)
{
	for (size_t i = 0; i < l->cap; i++)
		free(l->slots[i].relpath);
	free(l->slots);
}

/* Link the first copy at relpath (below the destination root) as
 * dst_dir/name. */
int vm_copy_link_first(int dst_root, const char *relpath, int dst_dir, const char *name)
{
	const char *slash = strrchr(relpath, '/');
	_cleanup_free_ char *parent = slash ? strndup(relpath, (size_t)(slash - relpath)) : NULL;
	if (slash && !parent)
		return -ENOMEM;
	int dir = dst_root;
	_cleanup_close_ int parent_fd = -1;
	if (parent) {
		parent_fd = vm_open_path_beneath(dst_root, parent,
						 O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (parent_fd < 0)
			return parent_fd;
		dir = parent_fd;
	}
	return linkat(dir, slash ? slash + 1 : relpath, dst_dir, name, 0) < 0 ? -errno : 0;
}
