/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The process between volmgrd and git.  volmgrd forks it for each git
 * run; it makes itself a child subreaper, starts git as the git user and,
 * once git has exited (or volmgrd says stop), kills and reaps every
 * process git left behind, whatever session or process group it moved
 * to: a daemonised child is reparented to the supervisor when its parent
 * exits (PR_SET_CHILD_SUBREAPER), so it cannot outlive the run.  No
 * process below the supervisor can leave its subtree: a new process is
 * the child of its creator or, with clone(CLONE_PARENT), of its creator's
 * parent, which is the supervisor at most; a process whose parent exits
 * goes to the nearest subreaper above it, the supervisor at most.
 *
 * Everything here runs in the child of a fork of the multi-threaded
 * daemon: only async-signal-safe calls, and everything it needs is made
 * before the fork (struct vm_git_child). */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "util.h"

/* Exit statuses of the supervisor besides git's own. */
#define VM_GIT_EXIT_SUPERVISOR 125 /* it could not start git */
#define VM_GIT_EXIT_SETUP 126      /* git's process could not become the git user */
#define VM_GIT_EXIT_EXEC 127       /* execve of the git command failed */

struct vm_git_child {
	const char *command;     /* absolute path */
	char *const *argv;
	char *const *envp;
	uid_t uid;
	gid_t gid;
	pid_t daemon;            /* getpid() of volmgrd, before the fork */
	int dirfd;               /* becomes the working directory */
	int stdin_fd, stdout_fd, stderr_fd;
	int config_fd;           /* becomes fd 3 */
	int max_fd;              /* highest fd to close if close_range is missing */
};

/* Is the kernel able to list a process's children
 * (/proc/thread-self/children, CONFIG_PROC_CHILDREN)?  0 or a negative
 * errno with err saying what is missing. */
int vm_git_supervisor_probe(struct vm_error *err);

/* Run in the child of fork(): never returns.  SIGTERM to it (volmgrd's
 * time limit, or the death of the volmgrd thread that forked it) stops
 * git early.  Exits with git's exit status, 128 + the signal that killed
 * git, or one of the VM_GIT_EXIT_* above. */
_Noreturn void vm_git_supervise(const struct vm_git_child *c);
