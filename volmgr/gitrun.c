/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "gitrun.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#define OUT_MAX (64 * 1024)
#define ERR_MAX (16 * 1024)
#define ARGS_MAX 32

int vm_git_init(struct vm_git *g, const char *command, const char *user,
		unsigned timeout_s, struct vm_error *err)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int r = getpwnam_r(user, &pw, buf, sizeof(buf), &res);
	if (r != 0 || !res)
		return vm_error_set(err, ENOENT, "unknown git user \"%.64s\"", user);
	if (pw.pw_uid == 0)
		return vm_error_set(err, EINVAL, "git must not run as root (user %.64s)", user);
	/* git clears "-c" settings for the processes of a local transport
	 * (upload-pack of a file:// URL), but every git process reads the
	 * global config: give them all one, sealed, passed as fd 3. */
	static const char text[] =
		"[core]\n\thooksPath = /dev/null\n\tfsmonitor = false\n"
		"[protocol \"ext\"]\n\tallow = never\n"
		"[safe]\n\tdirectory = *\n";
	int fd = memfd_create("volmgr-gitconfig", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return vm_error_errno(err, errno, "memfd_create");
	if (vm_write_all(fd, text, sizeof(text) - 1) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
		int e = errno;
		close(fd);
		return vm_error_errno(err, e, "cannot write git's configuration");
	}
	*g = (struct vm_git){command, pw.pw_uid, pw.pw_gid, timeout_s, fd};
	return 0;
}

void vm_git_done(struct vm_git *g)
{
	/* uid 0 means never initialised: config_fd is then 0, not ours. */
	if (g->uid != 0 && g->config_fd > 2)
		close(g->config_fd);
	*g = (struct vm_git){0};
}

/* Read what is ready on fd into buf (bounded); false at EOF. */
static bool drain(int fd, char *buf, size_t cap, size_t *len)
{
	char tmp[4096];
	ssize_t n = read(fd, tmp, sizeof(tmp));
	if (n <= 0)
		return n < 0 && (errno == EINTR || errno == EAGAIN);
	size_t take = (size_t)n;
	if (*len + take > cap)
		take = cap - *len;
	memcpy(buf + *len, tmp, take);
	*len += take;
	return true;
}

int vm_git_run(const struct vm_git *g, int dirfd, const char *const *args,
	       char **ret_stdout, struct vm_error *err)
{
	if (g->uid == 0)
		return vm_error_set(err, EPERM, "refusing to run git as root");
	/* Everything the child needs is made before fork: the daemon is
	 * multi-threaded, so the child may only make async-signal-safe
	 * calls. */
	const char *argv[ARGS_MAX + 16];
	size_t n = 0;
	argv[n++] = "git";
	/* No hooks, no local or global configuration, no prompts, no
	 * transports that run commands. */
	argv[n++] = "-c";
	argv[n++] = "core.hooksPath=/dev/null";
	argv[n++] = "-c";
	argv[n++] = "protocol.ext.allow=never";
	argv[n++] = "-c";
	argv[n++] = "core.fsmonitor=false";
	argv[n++] = "-c";
	argv[n++] = "safe.directory=*";
	for (size_t i = 0; args[i]; i++) {
		if (i >= ARGS_MAX)
			return vm_error_set(err, E2BIG, "too many git arguments");
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	static const char *const envp[] = {
		"PATH=/usr/bin:/bin",
		"HOME=/nonexistent",
		"LC_ALL=C",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/proc/self/fd/3",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=/bin/false",
		"SSH_ASKPASS=/bin/false",
		"GIT_SSH_COMMAND=ssh -o BatchMode=yes",
		NULL,
	};
	int outp[2], errp[2];
	if (pipe2(outp, O_CLOEXEC) < 0)
		return vm_error_errno(err, errno, "pipe");
	if (pipe2(errp, O_CLOEXEC) < 0) {
		int e = errno;
		close(outp[0]), close(outp[1]);
		return vm_error_errno(err, e, "pipe");
	}
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(outp[0]), close(outp[1]), close(errp[0]), close(errp[1]);
		closep(&devnull);
		return vm_error_errno(err, e, "fork");
	}
	if (pid == 0) {
		/* Own process group, so a timeout kills git's children too. */
		setpgid(0, 0);
		if (fchdir(dirfd) < 0 || dup2(devnull, 0) < 0 || dup2(outp[1], 1) < 0 ||
		    dup2(errp[1], 2) < 0 || dup2(g->config_fd, 3) < 0)
			_exit(126);
		/* Drop to the git user: groups first, then gid, then uid. */
		if (setgroups(0, NULL) < 0 || setresgid(g->gid, g->gid, g->gid) < 0 ||
		    setresuid(g->uid, g->uid, g->uid) < 0)
			_exit(126);
		prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		syscall(SYS_close_range, 4, ~0U, 0);
		execve(g->command, (char *const *)argv, (char *const *)envp);
		_exit(127);
	}
	closep(&devnull);
	close(outp[1]);
	close(errp[1]);
	char *out = malloc(OUT_MAX + 1), *errbuf = malloc(ERR_MAX + 1);
	size_t olen = 0, elen = 0;
	bool oopen = true, eopen = true, timed_out = false;
	int64_t deadline = (vm_mono_ns() / 1000000) + (int64_t)g->timeout_s * 1000;
	while ((oopen || eopen) && out && errbuf) {
		int64_t left = deadline - (vm_mono_ns() / 1000000);
		if (left <= 0) {
			timed_out = true;
			break;
		}
		struct pollfd p[2] = {{oopen ? outp[0] : -1, POLLIN, 0},
				      {eopen ? errp[0] : -1, POLLIN, 0}};
		int pr = poll(p, 2, (int)(left > 1000 ? 1000 : left));
		if (pr < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			oopen = drain(outp[0], out, OUT_MAX, &olen);
		if (p[1].revents)
			eopen = drain(errp[0], errbuf, ERR_MAX, &elen);
	}
	if (timed_out || !out || !errbuf)
		kill(-pid, SIGKILL);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	close(outp[0]);
	close(errp[0]);
	int r = 0;
	if (!out || !errbuf) {
		r = vm_error_set(err, ENOMEM, "out of memory");
	} else if (timed_out) {
		r = vm_error_set(err, ETIMEDOUT, "git %s took longer than %u s and was stopped",
				 args[0], g->timeout_s);
	} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		errbuf[elen] = '\0';
		while (elen > 0 && (errbuf[elen - 1] == '\n' || errbuf[elen - 1] == '\r'))
			errbuf[--elen] = '\0';
		/* The first "fatal:" or "error:" line says what went wrong;
		 * otherwise the last line. */
		const char *last = strstr(errbuf, "fatal: ");
		if (!last)
			last = strstr(errbuf, "error: ");
		if (!last) {
			last = strrchr(errbuf, '\n');
			last = last ? last + 1 : errbuf;
		}
		char line[320];
		snprintf(line, sizeof(line), "%.*s", (int)strcspn(last, "\n"), last);
		if (WIFEXITED(status) && (WEXITSTATUS(status) == 126 || WEXITSTATUS(status) == 127))
			r = vm_error_set(err, EIO, "cannot run %s as the git user (status %d)",
					 g->command, WEXITSTATUS(status));
		else
			r = vm_error_set(err, EIO, "git %s failed: %s", args[0],
					 line[0] ? line : "(no message)");
	} else if (ret_stdout) {
		while (olen > 0 && out[olen - 1] == '\n')
			olen--;
		out[olen] = '\0';
		*ret_stdout = out;
		out = NULL;
	}
	free(out);
	free(errbuf);
	return r;
}
