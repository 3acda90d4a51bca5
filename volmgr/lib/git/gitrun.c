/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "gitrun.h"

#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "gitrepo.h"
#include "gitsuper.h"

#define OUT_MAX (64 * 1024)
#define ERR_MAX (16 * 1024)
#define ARGS_MAX 32
/* After the time limit, how long the supervisor may take to stop git. */
#define STOP_GRACE_MS 10000

/* The "global" configuration of every git process volmgr starts, the
 * processes of a local transport too (git clears "-c" settings for those,
 * git 2.39 transport.c/connect.c: local_repo_env), passed as a sealed
 * memfd on fd 3.  A checkout's own config holds only what
 * vm_git_repo_prepare wrote; this turns off the rest of what could run a
 * program or reach elsewhere: hooks, fsmonitor, attributes outside the
 * tree, submodule recursion, transports other than those volmgr accepts
 * (vm_git_url_check: no ext::, no remote helpers; file:// only as the
 * remote volmgr names, not for submodules), credential helpers, pagers,
 * automatic gc and maintenance (which may detach a background process).
 * No safe.directory: git's ownership check stays on for the checkouts,
 * which belong to the git user. */
static const char global_config[] =
	"[core]\n\thooksPath = /dev/null\n\tfsmonitor = false\n\tattributesFile = /dev/null\n"
	"\tpager = cat\n\tuntrackedCache = false\n"
	"[protocol]\n\tallow = never\n"
	"[protocol \"https\"]\n\tallow = always\n[protocol \"http\"]\n\tallow = always\n"
	"[protocol \"ssh\"]\n\tallow = always\n[protocol \"git\"]\n\tallow = always\n"
	"[protocol \"file\"]\n\tallow = user\n[protocol \"ext\"]\n\tallow = never\n"
	"[submodule]\n\trecurse = false\n[fetch]\n\trecurseSubmodules = false\n"
	"[credential]\n\thelper =\n"
	"[gc]\n\tauto = 0\n\tautoDetach = false\n[maintenance]\n\tauto = false\n"
	"[advice]\n\tdetachedHead = false\n";

/* The upload-pack command for a file:/// remote, run by git through the
 * shell: git itself, with the ownership check off for the one repository
 * upload-pack serves.  Since 2.39.4 git refuses by default to serve a
 * local repository of another user (CVE-2024-32004: such a repository's
 * configuration could run commands during a local clone), and the
 * upstream of a file:/// URL is usually root's or a hosting account's.
 * That repository is the remote named by the cache's creator, who is
 * root (only uid 0 may make caches from git, control.c): it is trusted
 * like the URL.  The checkouts keep git's check.  upload-pack does not
 * fetch missing objects from the served repository's remotes
 * (GIT_NO_LAZY_FETCH, set below for every git process). */
static int make_upload_pack(const char *command, char *buf, size_t size)
{
	size_t n = 0;
	buf[n++] = '\'';
	for (const char *p = command; *p; p++) {
		if (n + 8 >= size)
			return -ENAMETOOLONG;
		if (*p == '\'') {
			memcpy(buf + n, "'\\''", 4);
			n += 4;
		} else {
			buf[n++] = *p;
		}
	}
	static const char rest[] = "' -c 'safe.directory=*' upload-pack";
	if (n + sizeof(rest) > size)
		return -ENAMETOOLONG;
	memcpy(buf + n, rest, sizeof(rest));
	return 0;
}

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
	if ((r = vm_git_supervisor_probe(err)) < 0)
		return r;
	*g = (struct vm_git){command, pw.pw_uid, pw.pw_gid, timeout_s, -1, ""};
	if (make_upload_pack(command, g->upload_pack, sizeof(g->upload_pack)) < 0) {
		*g = (struct vm_git){0};
		return vm_error_set(err, ENAMETOOLONG, "git command path too long");
	}
	int fd = memfd_create("volmgr-gitconfig", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		*g = (struct vm_git){0};
		return vm_error_errno(err, errno, "memfd_create");
	}
	if (vm_write_all(fd, global_config, sizeof(global_config) - 1) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
		int e = errno;
		close(fd);
		*g = (struct vm_git){0};
		return vm_error_errno(err, e, "cannot write git's configuration");
	}
	g->config_fd = fd;
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

static bool is_file_url(const char *url)
{
	return url && strncmp(url, "file://", 7) == 0;
}

int vm_git_run(const struct vm_git *g, const struct vm_git_target *t, const char *const *args,
	       char **ret_stdout, struct vm_error *err)
{
	if (g->uid == 0)
		return vm_error_set(err, EPERM, "refusing to run git as root");
	int r;
	if (!t->clone && (r = vm_git_repo_prepare(t->dirfd, t->url, t->branch, g->uid, g->gid, err)) < 0)
		return r;
	/* Everything the child needs is made before fork: the daemon is
	 * multi-threaded, so the child may only make async-signal-safe
	 * calls. */
	char upload_pack_c[sizeof(g->upload_pack) + 32], upload_pack_opt[sizeof(g->upload_pack) + 16];
	snprintf(upload_pack_c, sizeof(upload_pack_c), "remote.origin.uploadpack=%s", g->upload_pack);
	snprintf(upload_pack_opt, sizeof(upload_pack_opt), "--upload-pack=%s", g->upload_pack);
	const char *argv[ARGS_MAX + 24];
	size_t n = 0;
	argv[n++] = "git";
	/* Over the checkout's (rewritten) config, for this process: no
	 * hooks, no fsmonitor, no ext:: transport, no submodules. */
	argv[n++] = "-c";
	argv[n++] = "core.hooksPath=/dev/null";
	argv[n++] = "-c";
	argv[n++] = "protocol.ext.allow=never";
	argv[n++] = "-c";
	argv[n++] = "core.fsmonitor=false";
	argv[n++] = "-c";
	argv[n++] = "submodule.recurse=false";
	argv[n++] = "-c";
	argv[n++] = "fetch.recurseSubmodules=false";
	bool file = is_file_url(t->url);
	if (file && !t->clone) {
		argv[n++] = "-c";
		argv[n++] = upload_pack_c;
	}
	for (size_t i = 0; args[i]; i++) {
		if (i >= ARGS_MAX)
			return vm_error_set(err, E2BIG, "too many git arguments");
		argv[n++] = args[i];
		/* clone takes the command as an option, not from -c. */
		if (i == 0 && file && t->clone)
			argv[n++] = upload_pack_opt;
	}
	argv[n] = NULL;
	static const char *const envp[] = {
		"PATH=/usr/bin:/bin",
		"HOME=/nonexistent",
		"LC_ALL=C",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/proc/self/fd/3",
		"GIT_ATTR_NOSYSTEM=1",
		"GIT_NO_REPLACE_OBJECTS=1",
		"GIT_NO_LAZY_FETCH=1",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=/bin/false",
		"SSH_ASKPASS=/bin/false",
		"GIT_SSH_COMMAND=ssh -o BatchMode=yes",
		"GIT_PAGER=cat",
		"GIT_EDITOR=:",
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
	_cleanup_free_ char *out = malloc(OUT_MAX + 1), *errbuf = malloc(ERR_MAX + 1);
	if (!out || !errbuf) {
		close(outp[0]), close(outp[1]), close(errp[0]), close(errp[1]);
		return vm_error_set(err, ENOMEM, "out of memory");
	}
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	long open_max = sysconf(_SC_OPEN_MAX);
	struct vm_git_child child = {
		.command = g->command,
		.argv = (char *const *)argv,
		.envp = (char *const *)envp,
		.uid = g->uid,
		.gid = g->gid,
		.daemon = getpid(),
		.dirfd = t->dirfd,
		.stdin_fd = devnull,
		.stdout_fd = outp[1],
		.stderr_fd = errp[1],
		.config_fd = g->config_fd,
		.max_fd = open_max > 0 && open_max < (1 << 24) ? (int)open_max : 65536,
	};
	pid_t pid = devnull < 0 ? -1 : fork();
	if (pid < 0) {
		int e = errno;
		close(outp[0]), close(outp[1]), close(errp[0]), close(errp[1]);
		closep(&devnull);
		return vm_error_errno(err, e, "cannot start git");
	}
	if (pid == 0)
		vm_git_supervise(&child);
	closep(&devnull);
	close(outp[1]);
	close(errp[1]);
	/* The supervisor holds the pipes' write ends until it exits, which it
	 * does only once git and everything git started are gone: end of
	 * file on both is the end of the run. */
	size_t olen = 0, elen = 0;
	bool oopen = true, eopen = true, timed_out = false, abandoned = false;
	int64_t deadline = (vm_mono_ns() / 1000000) + (int64_t)g->timeout_s * 1000;
	while (oopen || eopen) {
		int64_t left = deadline - (vm_mono_ns() / 1000000);
		if (left <= 0 && !timed_out) {
			/* The time limit: the supervisor kills git and its
			 * descendants, then exits. */
			timed_out = true;
			kill(pid, SIGTERM);
			deadline = (vm_mono_ns() / 1000000) + STOP_GRACE_MS;
			continue;
		}
		if (left <= 0) {
			/* It did not finish: take it down, whatever is left. */
			kill(pid, SIGKILL);
			abandoned = true;
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
	if (oopen || eopen)
		kill(pid, timed_out ? SIGKILL : SIGTERM); /* poll failed */
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	close(outp[0]);
	close(errp[0]);
	r = 0;
	if (abandoned) {
		r = vm_error_set(err, ETIMEDOUT,
				 "git %s took longer than %u s, and what it started was not all "
				 "stopped within %d s",
				 args[0], g->timeout_s, STOP_GRACE_MS / 1000);
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
		if (WIFEXITED(status) && WEXITSTATUS(status) == VM_GIT_EXIT_SUPERVISOR)
			r = vm_error_set(err, EIO, "cannot start git's supervisor");
		else if (WIFEXITED(status) && (WEXITSTATUS(status) == VM_GIT_EXIT_SETUP ||
					       WEXITSTATUS(status) == VM_GIT_EXIT_EXEC))
			r = vm_error_set(err, EIO, "cannot run %s as the git user (status %d)",
					 g->command, WEXITSTATUS(status));
		else
			r = vm_error_set(err, EIO, "git %s failed: %s", args[0],
					 line[0] ? line : "(no message)");
	} else if (ret_stdout) {
		while (olen > 0 && out[olen - 1] == '\n')
			olen--;
		out[olen] = '\0';
		*ret_stdout = TAKE_PTR(out);
	}
	return r;
}
