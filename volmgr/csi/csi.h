/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* volmgr-csi: the CSI node plugin.  service.c decodes the gRPC calls,
 * node.c does what the Node service asks through volmgrd (control
 * protocol) and target.c, which touches the kubelet's directories. */
#pragma once

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "grpc-unary.h"

/* The plugin's settings (volmgr-csi.c fills them from the command line). */
struct csi_plugin {
	const char *driver;      /* GetPluginInfo's name */
	const char *node_id;     /* NodeGetInfo's node_id */
	const char *control;     /* volmgrd's control socket */
	const char *target_root; /* every target path lies beneath it */
	int target_root_fd;      /* O_PATH of target_root */
	int volmgrd_ms;          /* a call to volmgrd gives up after this long */
	/* Volumes with a call under way (names), so two calls on one volume
	 * do not interleave: the second gets ABORTED, as the spec says. */
	pthread_mutex_t busy_lock;
	char **busy;
	size_t n_busy, cap_busy;
};

/* A status for a gRPC answer: code VM_GRPC_* and a message. */
struct csi_status {
	int code;
	char message[1024];
};

int csi_fail(struct csi_status *st, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The gRPC code for an errno from volmgrd or the kernel. */
int csi_code_of_errno(int e);

/* ---- context.c: the volume context of NodePublishVolume ---- */

/* The options, pointing into the request's strings. */
struct csi_options {
	const char *source; /* "cache:NAME[@REV]" or NULL */
	const char *quota, *ttl;
	const char *pod_name, *pod_namespace, *pod_uid;
};

/* Check the context's keys and values (n entries): only the options the
 * Docker plugin takes and the kubelet's pod information, each once,
 * printable, bounded; ephemeral must be "true".  0 or a code with st. */
int csi_context_check(size_t n, const char *const *keys, const char *const *values,
		      struct csi_options *ret, struct csi_status *st);

/* Whether an encoded message of type d has, at any depth, a string field
 * holding a NUL byte (protobuf-c hands strings over NUL-terminated, so
 * "cache:a\0x" would read as "cache:a"): 1 yes, 0 no, -1 not a message
 * this plugin reads (bad framing, groups, nested deeper than 8). */
int csi_proto_has_nul(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n);

/* volmgr's volume name for a CSI volume id: the id itself when it starts
 * with "csi-" and passes volmgr's name rule (the kubelet's ids are "csi-"
 * and 64 hex digits).  false if it does not. */
bool csi_volume_name_ok(const char *volume_id);

/* A target path as volmgr-csi takes it: absolute, no ".", "..", "//" or
 * trailing "/", printable, at most PATH_MAX - 1 bytes, beneath root (a
 * canonical absolute path).  Returns the part after root and its '/'
 * (never empty), or NULL. */
const char *csi_target_below(const char *root, const char *target);

/* ---- target.c: the kubelet's directories ---- */

/* The target's parent opened beneath the target root without following
 * a symbolic link (O_PATH), and the target's last component.  -ENOENT:
 * the parent does not exist; -ELOOP: a symbolic link on the way. */
int csi_target_parent(const struct csi_plugin *p, const char *below, int *ret_fd,
		      const char **ret_last);
/* Whether name in dirfd is a mount point (another mount than dirfd's).
 * 0 no, 1 yes, -errno (-ENOENT: nothing there). */
int csi_is_mount_point(int dirfd, const char *name);
/* Whether what is at name in dirfd shows the directory open at vol_fd
 * (same device and inode): 1 yes, 0 no, -errno. */
int csi_shows(int dirfd, const char *name, int vol_fd);
/* Bind the directory open at vol_fd onto name in dirfd (made if missing,
 * mode 0750): nosuid, nodev, read-only if asked.  On failure nothing of
 * it is left but a directory this call did not make. */
int csi_bind(int dirfd, const char *name, int vol_fd, bool readonly, bool *ret_made_dir);
/* Unmount the topmost mount at name in dirfd. */
int csi_unmount(int dirfd, const char *name);

/* ---- node.c: the Node service's calls ---- */

struct csi_publish {
	const char *volume_id, *target;
	bool readonly;
	struct csi_options o;
};

int csi_node_publish(struct csi_plugin *p, const struct csi_publish *req, struct csi_status *st);
int csi_node_unpublish(struct csi_plugin *p, const char *volume_id, const char *target,
		       struct csi_status *st);

struct csi_usage {
	long long bytes_total, bytes_used, bytes_available;
	bool inodes; /* the file system counts them */
	long long inodes_total, inodes_used, inodes_free;
};
int csi_node_stats(struct csi_plugin *p, const char *volume_id, const char *path,
		   struct csi_usage *ret, struct csi_status *st);
/* Whether volmgrd answers: 0, or UNAVAILABLE with st. */
int csi_node_probe(struct csi_plugin *p, struct csi_status *st);
/* The volumes this plugin published on this node, checked: at start
 * logged (remove_orphans false), then every minute those whose target is
 * gone and that nothing uses are removed (a publish the kubelet gave up
 * on after a final error, an unpublish that found the volume held). */
void csi_node_account(struct csi_plugin *p, bool remove_orphans);

/* ---- service.c: gRPC methods to the above ---- */

void csi_serve_call(void *plugin, const char *path, const uint8_t *req, size_t len,
		    struct vm_grpc_reply *ret);
