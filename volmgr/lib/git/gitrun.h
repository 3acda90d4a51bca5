/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Running git for caches: never as root, never with hooks or any setting
 * volmgr did not write, always with a time limit, in a directory given as
 * an fd, with a clean environment, and with nothing it started left
 * running afterwards. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "util.h"

struct vm_git {
	const char *command; /* absolute path of git */
	uid_t uid;           /* never 0 */
	gid_t gid;
	unsigned timeout_s;
	int config_fd; /* a sealed memfd: the "global" config every git process reads */
	/* For file:/// remotes: the upload-pack command (see gitrun.c). */
	char upload_pack[1152];
};

/* What a git run works on. */
struct vm_git_target {
	int dirfd;          /* the checkout; for a clone, the empty directory it fills */
	const char *url;    /* the remote "origin", as the record has it */
	const char *branch; /* the cache's branch; NULL or "" while not known yet */
	bool clone;         /* `git clone` into dirfd: no repository to prepare yet */
};

/* Resolve user to uid/gid (the daemon does this once at start-up), and
 * check that the kernel lets the run be contained (gitsuper.h). */
int vm_git_init(struct vm_git *g, const char *command, const char *user,
		unsigned timeout_s, struct vm_error *err);

/* Release what vm_git_init made (its config memfd); safe on a g that
 * vm_git_init never filled (all zero). */
void vm_git_done(struct vm_git *g);

/* Run `git ARGS...` (args NULL-terminated, without "git") in the
 * directory t->dirfd, as g->uid.  Unless t->clone, the repository there
 * is first made one volmgr controls (vm_git_repo_prepare, gitrepo.h).
 * git runs below a supervisor (gitsuper.h) that kills whatever git
 * started once git exits.  Fails with ETIMEDOUT when it runs past the
 * time limit (git and all it started are killed), and with EIO when git
 * exits non-zero; then the message ends with the last line git wrote to
 * stderr.  ret_stdout (if not NULL) gets what git printed, at most 64
 * KiB, with the trailing newline removed. */
int vm_git_run(const struct vm_git *g, const struct vm_git_target *t, const char *const *args,
	       char **ret_stdout, struct vm_error *err);
