/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The repository of a cache's checkout as git gets to see it: before
 * every git run in it, volmgrd (root) makes .git hold only settings that
 * volmgrd wrote, from the cache's record.  The checkout belongs to the
 * git user, so anything in it may have been planted (by a compromised
 * git user, or by whatever wrote the tree): git must not run a command,
 * read another directory's settings or objects, or write elsewhere
 * because of it. */
#pragma once

#include <sys/types.h>

#include "util.h"

/* In the checkout open at treefd, owned by uid:
 *  - refuse a .git that is not a real directory of uid's on the same
 *    file system (a symbolic link, a "gitdir:" file), and .git/objects,
 *    .git/objects/info or .git/info that are not directories;
 *  - remove what would send git elsewhere or give it settings:
 *    .git/commondir, .git/config.worktree, .git/info/attributes,
 *    .git/objects/info/alternates and http-alternates;
 *  - replace .git/config (whatever it is: a file, a symbolic link, a hard
 *    link) with one that names only the remote "origin" at url and the
 *    branch (NULL or "" if not known yet), owned by uid:gid.
 * Every open is fd-relative and follows no symbolic link; the new config
 * is written to a new file and renamed over the old name. */
int vm_git_repo_prepare(int treefd, const char *url, const char *branch, uid_t uid, gid_t gid,
			struct vm_error *err);


/* The checkout open at treefd is about to become a cache that jobs'
 * own git will run in (`cache promote`): keep its objects, refs, index
 * and work tree, and nothing that makes git run a command or read
 * another place: remove .git/hooks, .git/modules and .git/worktrees
 * (whole), refs/replace and info/grafts (they swap objects and parents
 * for every later checkout), and what vm_git_repo_prepare removes,
 * remove anything in .git that is neither a directory nor a regular file
 * (a symbolic link the next git would write through, a fifo, a device
 * node), and replace .git/config with a plain one (no remote: the runner
 * sets its own each job).  A
 * .git that is not a real directory is refused; no .git: nothing to do.
 * Every open is fd-relative and follows no symbolic link. */
int vm_git_repo_defuse(int treefd, struct vm_error *err);

/* The same for a whole tree about to become a cache: every ".git"
 * directory in it (its own, submodules' work trees, vendored
 * repositories) defused, every ".git" that is not a directory (a
 * submodule's "gitdir:" file, a symbolic link) removed.  Bounded: 256
 * directories deep, 2^24 entries (E2BIG past either). */
int vm_git_tree_defuse(int treefd, struct vm_error *err);

/* The commit the checkout open at treefd has at HEAD (detached, or a
 * branch under refs/heads, loose or packed), as 40 hex digits: read from
 * .git's files, never by running git (this runs as root over trees that
 * others wrote), fd-relative and never through a symbolic link.
 * -ENOENT: no .git or no such ref; -EBADMSG: a HEAD it does not read. */
int vm_git_head_commit(int treefd, char commit[static 64]);
