/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "gitsuper.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#define CHILDREN_FILE "/proc/thread-self/children"

int vm_git_supervisor_probe(struct vm_error *err)
{
	int fd = open(CHILDREN_FILE, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vm_error_errno(err, errno,
				      "cannot list a process's children (" CHILDREN_FILE
				      ", CONFIG_PROC_CHILDREN): git's children could escape");
	close(fd);
	return 0;
}

/* SIGKILL every child of this (single-threaded) process that the kernel
 * lists.  Only this process reaps its children, and only after this
 * returns, so no listed pid can have been reused by then. */
static void kill_children(void)
{
	int fd = open(CHILDREN_FILE, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	char buf[4096];
	long pid = 0;
	bool digits = false;
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] >= '0' && buf[i] <= '9' && pid < (1L << 30)) {
				pid = pid * 10 + (buf[i] - '0');
				digits = true;
				continue;
			}
			if (digits && pid > 0)
				kill((pid_t)pid, SIGKILL);
			pid = 0;
			digits = false;
		}
	}
	if (digits && pid > 0)
		kill((pid_t)pid, SIGKILL);
	close(fd);
}

/* Wait for a signal of set (blocked) for at most ms milliseconds, or
 * without a limit if ms < 0: the system call itself, which is
 * async-signal-safe (glibc's sigwaitinfo wrapper is not listed as such). */
static int wait_signal(const sigset_t *set, long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	return (int)syscall(SYS_rt_sigtimedwait, set, NULL, ms < 0 ? NULL : &ts, _NSIG / 8);
}

/* Reap what has exited; note git's status.  True once no child is left. */
static bool reap(pid_t git, int *status, bool *git_done)
{
	for (;;) {
		int st;
		pid_t w = waitpid(-1, &st, WNOHANG);
		if (w > 0) {
			if (w == git) {
				*status = st;
				*git_done = true;
			}
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		return w < 0 && errno == ECHILD;
	}
}

static _Noreturn void run_git(const struct vm_git_child *c, pid_t supervisor)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigaction(SIGPIPE, &dfl, NULL); /* volmgrd ignores it; git must not */
	/* Drop to the git user: groups first, then gid, then uid.  The
	 * parent-death signal is set after that (a change of credentials
	 * clears it) and then checked against a supervisor already gone. */
	if (setgroups(0, NULL) < 0 || setresgid(c->gid, c->gid, c->gid) < 0 ||
	    setresuid(c->uid, c->uid, c->uid) < 0)
		_exit(VM_GIT_EXIT_SETUP);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != supervisor)
		_exit(VM_GIT_EXIT_SETUP);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(c->command, c->argv, c->envp);
	_exit(VM_GIT_EXIT_EXEC);
}

_Noreturn void vm_git_supervise(const struct vm_git_child *c)
{
	/* Every signal blocked: SIGCHLD and SIGTERM are taken with
	 * wait_signal, any other would only end the supervisor early and set
	 * git's descendants free.  (volmgrd's threads block SIGTERM already,
	 * so one sent before this line waits too.) */
	sigset_t all, wake, chld;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigaction(SIGCHLD, &dfl, NULL); /* not SIG_IGN: its children are reaped here */
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	wake = chld;
	sigaddset(&wake, SIGTERM);
	/* Its own process group: a terminal's ^C to volmgrd is not for git. */
	setpgid(0, 0);
	/* If the volmgrd thread that waits for it is gone (volmgrd died),
	 * stop at once: SIGTERM, handled like the time limit. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0 || getppid() != c->daemon ||
	    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		_exit(VM_GIT_EXIT_SUPERVISOR);
	if (fchdir(c->dirfd) < 0 || dup2(c->stdin_fd, 0) < 0 || dup2(c->stdout_fd, 1) < 0 ||
	    dup2(c->stderr_fd, 2) < 0 ||
	    (c->config_fd == 3 ? fcntl(3, F_SETFD, 0) : dup2(c->config_fd, 3)) < 0)
		_exit(VM_GIT_EXIT_SUPERVISOR);
	/* Nothing else of volmgrd's: not its sockets, not the pool, and not
	 * the write ends of another git run's pipes (whose reader waits for
	 * their end of file). */
	if (syscall(SYS_close_range, 4U, ~0U, 0) < 0)
		for (int fd = 4; fd <= c->max_fd; fd++)
			close(fd);
	pid_t self = getpid();
	pid_t git = _Fork();
	if (git < 0)
		_exit(VM_GIT_EXIT_SUPERVISOR);
	if (git == 0)
		run_git(c, self);

	int status = 0;
	bool git_done = false;
	while (!git_done) {
		int sig = wait_signal(&wake, -1);
		if (sig == SIGTERM || (sig < 0 && errno != EINTR))
			break;
		reap(git, &status, &git_done);
	}
	/* git has exited, or must stop: kill git and every process left
	 * below this one.  Killing a process makes its children this
	 * process's children (the subreaper), so repeat until none is left;
	 * the children list may miss a process that is being forked, hence
	 * the short wait for SIGCHLD and another look. */
	if (!git_done)
		kill(git, SIGKILL);
	for (;;) {
		kill_children();
		if (reap(git, &status, &git_done))
			break;
		wait_signal(&chld, 20);
	}
	if (WIFEXITED(status))
		_exit(WEXITSTATUS(status));
	_exit(WIFSIGNALED(status) ? 128 + (WTERMSIG(status) & 0x7f) : VM_GIT_EXIT_SUPERVISOR);
}
