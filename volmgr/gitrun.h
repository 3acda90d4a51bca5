/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Running git for caches: never as root, never with hooks, always with a
 * time limit, in a directory given as an fd, with a clean environment. */
#pragma once

#include <sys/types.h>

#include "util.h"

struct vm_git {
	const char *command; /* absolute path of git */
	uid_t uid;           /* never 0 */
	gid_t gid;
	unsigned timeout_s;
	int config_fd; /* a sealed memfd: the "global" config every git process reads */
};

/* Resolve user to uid/gid (the daemon does this once at start-up). */
int vm_git_init(struct vm_git *g, const char *command, const char *user,
		unsigned timeout_s, struct vm_error *err);

/* Release what vm_git_init made (its config memfd); safe on a g that
 * vm_git_init never filled (all zero). */
void vm_git_done(struct vm_git *g);

/* Run `git ARGS...` (args NULL-terminated, without "git") in the
 * directory open at dirfd, as g->uid.  Fails with ETIMEDOUT when it runs
 * past the time limit (the whole process group is killed), and with EIO
 * when git exits non-zero; then the message ends with the last line git
 * wrote to stderr.  ret_stdout (if not NULL) gets what git printed, at
 * most 64 KiB, with the trailing newline removed. */
int vm_git_run(const struct vm_git *g, int dirfd, const char *const *args,
	       char **ret_stdout, struct vm_error *err);
