/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Where a file system takes a new file's inode from.  XFS makes a file's
 * inode in its directory's allocation group, under that group's AGI
 * lock, and keeps a clone's reference counts under the AGF lock of the
 * group holding the data: two threads in one group wait for each other.
 * An XFS inode number is the group number shifted left by the bits of a
 * group-relative inode number (agblklog + inopblog in the superblock),
 * which the geometry ioctl lets us work out.  Its own file: xfs.h brings
 * a lot of definitions nothing else needs. */
#include "copy-private.h"

#include <sys/ioctl.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <xfs/xfs.h>

/* ceil(log2(v)) for v >= 1, as XFS computes sb_agblklog. */
static unsigned log2_up(uint64_t v)
{
	unsigned n = 0;
	while ((1ULL << n) < v && n < 63)
		n++;
	return n;
}

unsigned vm_copy_group_shift(int fd)
{
	struct statfs sf;
	if (fstatfs(fd, &sf) < 0 || sf.f_type != XFS_SUPER_MAGIC)
		return 0;
	struct xfs_fsop_geom g = {0};
	if (ioctl(fd, XFS_IOC_FSGEOMETRY, &g) < 0 || g.agblocks == 0 || g.inodesize == 0 ||
	    g.blocksize < g.inodesize || g.blocksize % g.inodesize)
		return 0;
	unsigned shift = log2_up(g.agblocks) + log2_up(g.blocksize / g.inodesize);
	/* A group number must be left: nonsense otherwise. */
	return shift > 0 && shift < 64 ? shift : 0;
}
