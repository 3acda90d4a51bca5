/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "caller.h"

#include <sys/stat.h>

#include "cgroup.h"

#include <libmount/libmount.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <fcntl.h>

int vm_pidfd_open(int32_t pid)
{
#ifdef SYS_pidfd_open
	long fd = syscall(SYS_pidfd_open, (pid_t)pid, 0);
	return fd < 0 ? -1 : (int)fd;
#else
	return -1;
#endif
}

static int pidfd_alive(int pidfd)
{
#ifdef SYS_pidfd_send_signal
	if (pidfd < 0)
		return 1; /* no pidfd: nothing to check against */
	return syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0;
#else
	return 1;
#endif
}

/* The pid a pidfd refers to, in our pid namespace, from its fdinfo:
 * -1 once the process has been reaped. */
static int pidfd_pid(int pidfd)
{
	char p[64], line[128];
	snprintf(p, sizeof(p), "/proc/self/fdinfo/%d", pidfd);
	FILE *f = fopen(p, "re");
	if (!f)
		return -1;
	int pid = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Pid: %d", &pid) == 1)
			break;
	fclose(f);
	return pid;
}

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5 */
#endif

int vm_caller_from_socket(int fd, const char *proc, struct vm_caller *ret)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	*ret = (struct vm_caller){.pidfd = -1};
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -errno;
	ret->uid = cred.uid;
	ret->gid = cred.gid;
	ret->pid = cred.pid;
	/* The process that connected, pinned by the kernel at connect: its
	 * pid may have been reused by the time we accept, its pidfd never. */
	int pidfd = -1;
	len = sizeof(pidfd);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0) {
		fcntl(pidfd, F_SETFD, FD_CLOEXEC);
		if (pidfd_pid(pidfd) == cred.pid) {
			ret->pidfd = pidfd;
		} else {
			close(pidfd); /* gone (and reaped) before we looked */
			ret->pid = 0;
		}
	} else if (errno == ESRCH) {
		ret->pid = 0; /* gone before we looked */
	} else {
		/* Kernels before 6.5: pin it now, and make sure the pid still
		 * is the one that connected (not a sure thing: between its
		 * exit and our pidfd_open the pid may have been reused). */
		ret->pidfd = vm_pidfd_open(cred.pid);
		if (ret->pidfd < 0 && errno == ESRCH)
			ret->pid = 0;
	}
	/* Supplementary groups as of connect (SO_PEERGROUPS, 4.13+), else
	 * from /proc while the pidfd says it is the caller. */
	if (ret->uid != 0) {
		gid_t groups[ELEMENTSOF(ret->groups)];
		len = sizeof(groups);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0) {
			ret->ngroups = (int)(len / sizeof(gid_t));
			for (int i = 0; i < ret->ngroups; i++)
				ret->groups[i] = groups[i];
		} else if (errno != ERANGE) {
			vm_caller_find_groups(ret, proc);
		}
		/* ERANGE: more groups than we keep; none are used (a copy as
		 * the caller then reads with fewer rights, never more). */
	}
	vm_caller_find_container(ret, proc);
	return 0;
}

static int fd_mount_id(int fd, int *ret)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(p, "re");
	if (!f)
		return -errno;
	char line[256];
	int r = -ENOENT;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "mnt_id: %d", ret) == 1) {
			r = 0;
			break;
		}
	fclose(f);
	return r;
}

/* The uid that owns the user namespace owning pid's mount namespace: 0
 * for the host's and for those root made (an engine's containers), the
 * user's for one an unprivileged user made (`unshare -Urm`), where that
 * user may bind-mount whatever it can reach. */
static int mntns_owner(const char *proc, int32_t pid, uid_t *ret)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%d/ns/mnt", proc, (int)pid);
	_cleanup_close_ int mnt = open(p, O_RDONLY | O_CLOEXEC);
	if (mnt < 0)
		return -errno;
	_cleanup_close_ int user = ioctl(mnt, NS_GET_USERNS);
	if (user < 0 || ioctl(user, NS_GET_OWNER_UID, ret) < 0)
		return -errno;
	return 0;
}

int vm_caller_mount_of_fd(const struct vm_caller *caller, const char *proc,
			  int fd, json_t **ret, struct vm_error *err)
{
	int id;
	int r = fd_mount_id(fd, &id);
	if (r < 0)
		return vm_error_errno(err, -r, "cannot read the mount ID of the caller's fd");
	if (caller->pid <= 0)
		return vm_error_set(err, ESRCH, "the caller's pid is unknown");
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%d/mountinfo", proc, (int)caller->pid);
	uid_t owner = (uid_t)-1;
	if ((r = mntns_owner(proc, caller->pid, &owner)) < 0)
		return vm_error_errno(err, -r, "cannot read the owner of the caller's mount namespace");
	struct libmnt_table *tb = mnt_new_table_from_file(p);
	if (!tb)
		return vm_error_set(err, ESRCH, "cannot read the caller's mountinfo");
	/* Read first, then check that the pid still is the caller: if the
	 * caller had died, the pid might have been reused. */
	if (!pidfd_alive(caller->pidfd)) {
		mnt_unref_table(tb);
		return vm_error_set(err, ESRCH, "the caller went away");
	}
	struct libmnt_iter *it = mnt_new_iter(MNT_ITER_FORWARD);
	struct libmnt_fs *fs;
	json_t *found = NULL;
	while (it && mnt_table_next_fs(tb, it, &fs) == 0) {
		if (mnt_fs_get_id(fs) != id)
			continue;
		found = json_pack("{s:s, s:s, s:s, s:I}", "target", mnt_fs_get_target(fs) ?: "",
				  "root", mnt_fs_get_root(fs) ?: "",
				  "fstype", mnt_fs_get_fstype(fs) ?: "", "mntns_owner",
				  (json_int_t)owner);
		break;
	}
	mnt_free_iter(it);
	mnt_unref_table(tb);
	if (!found)
		return vm_error_set(err, ENOENT,
				    "the caller's mount of the directory was not found");
	*ret = found;
	return 0;
}

/* The host's pid namespace: PID 1's, or where that cannot be read, the
 * one volmgrd was started from -- never volmgrd's own, which a sandboxed
 * unit may make private. */
static struct stat host_ns;
static bool host_ns_known;
static pthread_once_t host_ns_once = PTHREAD_ONCE_INIT;

void vm_caller_set_host_ns(const char *proc, int32_t starter_pid)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/1/ns/pid", proc);
	if (stat(p, &host_ns) == 0) {
		host_ns_known = true;
		return;
	}
	snprintf(p, sizeof(p), "%s/%d/ns/pid", proc, (int)starter_pid);
	if (starter_pid > 0 && stat(p, &host_ns) == 0) {
		host_ns_known = true;
		return;
	}
	host_ns_known = stat("/proc/self/ns/pid", &host_ns) == 0;
}

static void host_ns_default(void)
{
	if (!host_ns_known)
		vm_caller_set_host_ns("/proc", 0);
}

/* A component of a cgroup path that names a container: the engines put
 * each container in a cgroup named by its 64-hex id -- Docker
 * ".../docker/ID" (cgroupfs) or "docker-ID.scope" (systemd), Podman
 * "libpod-ID[.scope]", CRI-O "crio-ID.scope", containerd
 * "cri-containerd-ID.scope" or ".../kubepods/.../podUID/ID". */
bool vm_cgroup_names_container(const char *path)
{
	static const char *const prefixes[] = {"", "docker-", "libpod-", "crio-", "cri-containerd-"};
	for (const char *c = path; c && *c;) {
		c += strspn(c, "/");
		size_t n = strcspn(c, "/");
		for (size_t i = 0; i < ELEMENTSOF(prefixes); i++) {
			size_t pl = strlen(prefixes[i]);
			if (n < pl + 64 || strncmp(c, prefixes[i], pl) != 0)
				continue;
			const char *id = c + pl;
			size_t rest = n - pl - 64;
			if (strspn(id, "0123456789abcdef") >= 64 &&
			    (rest == 0 || (rest == 6 && strncmp(id + 64, ".scope", 6) == 0)))
				return true;
		}
		c += n;
	}
	return false;
}

void vm_caller_find_container(struct vm_caller *caller, const char *proc)
{
	char p[PATH_MAX];
	struct stat theirs;
	caller->cgroup[0] = '\0';
	pthread_once(&host_ns_once, host_ns_default);
	/* What makes a container: a pid namespace of its own (a service
	 * with PrivateTmp=, a snap, `unshare -m` share the host's) and an
	 * engine's cgroup for it.  Anything less is a host process, whose
	 * session or service cgroup comes and goes: gc must not take its
	 * volumes as "creator gone". */
	snprintf(p, sizeof(p), "%s/%d/ns/pid", proc, (int)caller->pid);
	if (caller->pid <= 0 || !host_ns_known || stat(p, &theirs) < 0 ||
	    (host_ns.st_ino == theirs.st_ino && host_ns.st_dev == theirs.st_dev))
		return;
	char cg[VM_CGROUP_MAX + 1];
	if (vm_cgroup_of_pid(proc, caller->pid, cg) == 0 && pidfd_alive(caller->pidfd) &&
	    vm_cgroup_names_container(strchr(cg, ':') ? strchr(cg, ':') + 1 : cg))
		snprintf(caller->cgroup, sizeof(caller->cgroup), "%s", cg);
}

void vm_caller_find_groups(struct vm_caller *caller, const char *proc)
{
	char p[PATH_MAX];
	caller->ngroups = 0;
	snprintf(p, sizeof(p), "%s/%d/status", proc, (int)caller->pid);
	FILE *f = caller->pid > 0 ? fopen(p, "re") : NULL;
	if (!f)
		return;
	char line[4096];
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "Groups:", 7) != 0)
			continue;
		char *s = line + 7, *end;
		for (;;) {
			unsigned long g = strtoul(s, &end, 10);
			if (end == s || caller->ngroups == (int)ELEMENTSOF(caller->groups))
				break;
			caller->groups[caller->ngroups++] = (uint32_t)g;
			s = end;
		}
		break;
	}
	fclose(f);
	/* Read first, then make sure the pid still was the caller. */
	if (!pidfd_alive(caller->pidfd))
		caller->ngroups = 0;
}

/* pid's root directory is the host's: PID 1's, or where PID 1 cannot be
 * looked into (a sandbox's init), volmgrd's own (a unit's mount namespace
 * keeps the root directory). */
static bool same_root(const char *proc, int32_t pid)
{
	char p[PATH_MAX];
	struct stat a, b;
	snprintf(p, sizeof(p), "%s/%d/root", proc, (int)pid);
	if (stat(p, &a) < 0)
		return false;
	snprintf(p, sizeof(p), "%s/1/root", proc);
	if (stat(p, &b) < 0) {
		snprintf(p, sizeof(p), "%s/self/root", proc);
		if (stat(p, &b) < 0)
			return false;
	}
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

void vm_caller_engine(const struct vm_caller *caller, const char *proc,
		      char ret[static VM_ENGINE_NAME_MAX + 1])
{
	ret[0] = '\0';
	if (caller->pid <= 0 || caller->uid != 0)
		return;
	char p[PATH_MAX], exe[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%d/exe", proc, (int)caller->pid);
	ssize_t n = readlink(p, exe, sizeof(exe) - 1);
	if (n <= 0)
		return;
	exe[n] = '\0';
	/* A binary replaced by an upgrade while it runs. */
	if (n > 10 && strcmp(exe + n - 10, " (deleted)") == 0)
		exe[n - 10] = '\0';
	const char *base = strrchr(exe, '/');
	base = base ? base + 1 : exe;
	const char *kind = strcmp(base, "dockerd") == 0  ? "docker"
			   : strcmp(base, "podman") == 0 ? "podman"
							 : NULL;
	/* The peer waits for our answer, so its pid is still its own; its
	 * root is the host's unless it runs in a container. */
	if (kind && same_root(proc, caller->pid))
		snprintf(ret, VM_ENGINE_NAME_MAX + 1, "%s", kind);
}
