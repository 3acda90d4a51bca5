/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Who called: the identity of the process at the other end of a socket
 * (uid, gid, groups, pid pinned by a pidfd, its container's cgroup), and
 * what that caller sees: its mount of a directory it opened and passed
 * to us, looked up in its own mount namespace. */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "cgroup.h"
#include "engines.h"
#include "util.h"

/* Who is at the other end of a socket, as the kernel told it. */
struct vm_caller {
	uint32_t uid;
	uint32_t gid;
	int32_t pid;   /* in volmgrd's pid namespace */
	int pidfd;     /* pins that process (pidfd_open), -1 if unavailable */
	/* For a caller in a container (another mount namespace): its
	 * cgroup, "controller:path"; "" for callers on the host. */
	char cgroup[VM_CGROUP_MAX + 1];
	/* Supplementary groups (control socket callers): a copy made for a
	 * caller that is not root reads with its uid, gid and groups. */
	uint32_t groups[64];
	int ngroups;
};

/* Find the mount that holds fd (an fd the caller passed) in the caller's
 * /proc/PID/mountinfo, read with libmount.  The mount ID comes from our
 * own fdinfo of that fd (mount IDs are unique across namespaces), so no
 * path is resolved.  The pidfd proves that PID was still the caller when
 * its mountinfo was read.  Returns {"target": mount point as the caller
 * sees it, "root": the mounted directory inside its file system,
 * "fstype": ...}. */
int vm_caller_mount_of_fd(const struct vm_caller *caller, const char *proc,
			  int fd, json_t **ret, struct vm_error *err);

/* Remember the host's pid namespace (PID 1's, else starter_pid's):
 * called once at start-up, before any sandbox hides PID 1. */
void vm_caller_set_host_ns(const char *proc, int32_t starter_pid);

/* Fill caller->cgroup when the caller is in a container -- a pid
 * namespace other than the host's, and a cgroup an engine made for a
 * container (vm_cgroup_names_container): gc may then remove what it made
 * once that cgroup is gone.  Host callers, sandboxed services and
 * `unshare -m` shells, whose cgroups come and go, are never treated so. */
void vm_caller_find_container(struct vm_caller *caller, const char *proc);
/* Whether a cgroup path has a component naming a container by its
 * 64-hex id, as Docker, Podman, CRI-O and containerd name them. */
bool vm_cgroup_names_container(const char *path);

/* Read the caller's supplementary groups from /proc/PID/status. */
void vm_caller_find_groups(struct vm_caller *caller, const char *proc);

/* The caller at the other end of a connected unix socket, from the
 * kernel: uid, gid and pid (SO_PEERCRED); the process pinned as of its
 * connect (SO_PEERPIDFD, Linux 6.5+; before that pidfd_open at accept,
 * which a pid reused in between would fool); supplementary groups as of
 * its connect (SO_PEERGROUPS; else /proc); its container (cgroup).  A
 * caller whose process is gone already keeps its uid and gid, and its
 * pid reads 0: nothing is looked up by it, nothing attributed to it. */
int vm_caller_from_socket(int fd, const char *proc, struct vm_caller *ret);

/* Open a pidfd for pid, or -1 where the kernel has none. */
int vm_pidfd_open(int32_t pid);

/* The engine behind a plugin request, from the kernel: "docker" if the
 * peer is dockerd, "podman" if it is podman (its API service, its CLI,
 * or conmon's `podman container cleanup`), each only as root and with
 * the host's root directory; "" for anything else -- a podman in a
 * container or a rootless one keeps a database of its own, which the
 * engine API sockets of volmgr.conf do not answer for. */
void vm_caller_engine(const struct vm_caller *caller, const char *proc,
		      char ret[static VM_ENGINE_NAME_MAX + 1]);
