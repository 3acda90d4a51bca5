/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Node service's work.  volmgr-csi keeps no state of its own: a
 * published volume is a volmgr volume whose labels say which CSI volume
 * it is and where it is published (volmgrd keeps them across restarts,
 * and `volmgr volume ls` shows them), and the kernel's mount table says
 * whether it is mounted there.  So a restart of either daemon loses
 * nothing, and every call can be repeated (the kubelet repeats them:
 * pkg/volume/csi/csi_mounter.go SetUpAt/TearDownAt are retried with
 * backoff until they succeed). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "client.h"
#include "csi.h"
#include "fault.h"
#include "json-util.h"
#include "names.h"
#include "util.h"

#define L_ID "volmgr.csi/volume-id"
#define L_TARGET "volmgr.csi/target"
#define L_READONLY "volmgr.csi/readonly"
#define L_SOURCE "volmgr.csi/source"
#define L_QUOTA "volmgr.csi/quota"
#define L_TTL "volmgr.csi/ttl"
#define L_NODE "volmgr.csi/node"

/* ---- one call per volume at a time ---- */

static bool busy_take(struct csi_plugin *p, const char *name)
{
	bool ok = true;
	pthread_mutex_lock(&p->busy_lock);
	for (size_t i = 0; i < p->n_busy; i++)
		if (strcmp(p->busy[i], name) == 0)
			ok = false;
	char *copy = ok ? strdup(name) : NULL;
	if (ok && (!copy || !vm_grow((void **)&p->busy, p->n_busy + 1, &p->cap_busy,
				     sizeof(*p->busy)))) {
		free(copy);
		ok = false;
	}
	if (ok)
		p->busy[p->n_busy++] = copy;
	pthread_mutex_unlock(&p->busy_lock);
	return ok;
}

static void busy_give(struct csi_plugin *p, const char *name)
{
	pthread_mutex_lock(&p->busy_lock);
	for (size_t i = 0; i < p->n_busy; i++)
		if (strcmp(p->busy[i], name) == 0) {
			free(p->busy[i]);
			p->busy[i] = p->busy[--p->n_busy];
			break;
		}
	pthread_mutex_unlock(&p->busy_lock);
}

/* ---- volmgrd ---- */

static int volmgrd(struct csi_plugin *p, const char *op, json_t *args, json_t **ret,
		   struct vm_error *err)
{
	/* Bounded below the kubelet's 2 minutes (csiTimeout), so a call
	 * volmgrd is slow with ends as DEADLINE_EXCEEDED -- not final: the
	 * kubelet retries, and the volume made meanwhile is taken then --
	 * rather than holding its connection and thread for good. */
	return vm_client_request_timeout(p->control, op, args, -1, p->volmgrd_ms, ret, err);
}

/* volume.inspect: 1 and the volume, 0 if there is none, or -errno. */
static int inspect(struct csi_plugin *p, const char *name, json_t **ret, struct vm_error *err)
{
	int r = volmgrd(p, "volume.inspect", json_pack("{s:s}", "name", name), ret, err);
	if (r == -ENOENT)
		return 0;
	return r < 0 ? r : 1;
}

static const char *label(json_t *vol, const char *key)
{
	return json_string_value(json_object_get(json_object_get(vol, "labels"), key));
}

static bool same(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

/* A volume of volmgr-csi's for this id: made by root (volmgrd reserves
 * csi- names for root; labels alone anyone could set) and labelled with
 * the id. */
static bool made_for(json_t *vol, const char *id)
{
	json_t *uid = json_object_get(json_object_get(vol, "creator"), "uid");
	return json_is_integer(uid) && json_integer_value(uid) == 0 && same(label(vol, L_ID), id);
}

/* A directory of the pool by volmgrd's path, without following a link. */
static int open_dir(const char *path)
{
	return vm_openat2(AT_FDCWD, path, O_PATH | O_DIRECTORY | O_CLOEXEC,
			  RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
}

/* The volume's top directory, opened without following a link (the pool
 * is root's; the volume's content is the job's). */
static int open_volume(json_t *vol)
{
	const char *mp = json_string_value(json_object_get(vol, "mountpoint"));
	if (!mp || mp[0] != '/')
		return -EPROTO;
	return open_dir(mp);
}

static int volmgrd_fail(struct csi_status *st, const struct vm_error *err, int r, const char *what)
{
	return csi_fail(st, csi_code_of_errno(-r), "%s: %s", what, err->msg);
}

/* ---- publish ---- */

static json_t *publish_labels(const struct csi_plugin *p, const struct csi_publish *q)
{
	json_t *l = json_pack("{s:s, s:s, s:s, s:s}", L_ID, q->volume_id, L_TARGET, q->target,
			      L_READONLY, q->readonly ? "true" : "false", L_NODE, p->node_id);
	if (!l)
		return NULL;
	const struct {
		const char *key, *value;
	} opt[] = {
		{L_SOURCE, q->o.source},
		{L_QUOTA, q->o.quota},
		{L_TTL, q->o.ttl},
		{"volmgr.csi/pod.name", q->o.pod_name},
		{"volmgr.csi/pod.namespace", q->o.pod_namespace},
		{"volmgr.csi/pod.uid", q->o.pod_uid},
	};
	for (size_t i = 0; i < ELEMENTSOF(opt); i++)
		if (opt[i].value && opt[i].value[0])
			json_object_set_new(l, opt[i].key, json_string(opt[i].value));
	return l;
}

/* An existing volume of that name: is it this publish's? 0 if so (then
 * *ret_mounted says whether it is mounted at the target already). */
static int check_existing(const struct csi_publish *q, json_t *vol, int parent, const char *last,
			  bool *ret_mounted, struct csi_status *st)
{
	if (!made_for(vol, q->volume_id))
		return csi_fail(st, VM_GRPC_ALREADY_EXISTS,
				"volume %s exists and was not made by volmgr-csi for this volume id",
				q->volume_id);
	if (!same(label(vol, L_TARGET), q->target))
		return csi_fail(st, VM_GRPC_FAILED_PRECONDITION,
				"volume %s is published at another target, %.512s", q->volume_id,
				label(vol, L_TARGET));
	if (!same(label(vol, L_READONLY), q->readonly ? "true" : "false") ||
	    !same(label(vol, L_SOURCE), q->o.source) || !same(label(vol, L_QUOTA), q->o.quota) ||
	    !same(label(vol, L_TTL), q->o.ttl))
		return csi_fail(st, VM_GRPC_ALREADY_EXISTS,
				"volume %s is published at this target with other arguments "
				"(read-only, source, quota or ttl)",
				q->volume_id);
	_cleanup_close_ int vfd = open_volume(vol);
	if (vfd < 0)
		return csi_fail(st, VM_GRPC_INTERNAL, "cannot open volume %s: %s", q->volume_id,
				strerror(-vfd));
	int m = csi_is_mount_point(parent, last);
	*ret_mounted = m > 0 && csi_shows(parent, last, vfd) > 0;
	return 0;
}

/* Bind the volume onto the target, unless something is there already. */
static int mount_at_target(const struct csi_publish *q, json_t *vol, int parent, const char *last,
			   struct csi_status *st)
{
	int m = csi_is_mount_point(parent, last);
	if (m == -ELOOP)
		return csi_fail(st, VM_GRPC_INVALID_ARGUMENT, "the target is a symbolic link");
	/* Something else mounted at the target is not ours to cover. */
	if (m > 0)
		return csi_fail(st, VM_GRPC_FAILED_PRECONDITION,
				"something other than volume %s is mounted at the target",
				q->volume_id);
	_cleanup_close_ int vfd = open_volume(vol);
	bool made_dir;
	int r = vfd < 0 ? vfd : csi_bind(parent, last, vfd, q->readonly, &made_dir);
	if (r < 0)
		return csi_fail(st, VM_GRPC_INTERNAL, "cannot mount volume %s at the target: %s",
				q->volume_id, strerror(-r));
	VM_FAULT("csi-publish-mounted");
	return 0;
}

static int do_publish(struct csi_plugin *p, const struct csi_publish *q, int parent,
		      const char *last, struct csi_status *st)
{
	struct vm_error err = {0};
	_cleanup_json_ json_t *vol = NULL;
	int r = inspect(p, q->volume_id, &vol, &err);
	if (r < 0)
		return volmgrd_fail(st, &err, r, "volmgrd");
	bool created = false, mounted = false;
	if (r > 0) {
		if ((r = check_existing(q, vol, parent, last, &mounted, st)) != 0)
			return r;
		if (mounted)
			return 0; /* a repeated call: nothing to do */
	} else {
		json_t *args = json_pack("{s:s, s:o}", "name", q->volume_id, "labels",
					 publish_labels(p, q));
		struct vm_error ignored = {0};
		if (args && q->o.source)
			json_object_set_new(args, "source", json_string(q->o.source));
		/* No source: volmgr.conf's [seed] rules pick one by the pod's
		 * name, as the plugin's pick one by a volume's name
		 * (gitlab-runner names a job's pod runner-TOKEN-project-ID-
		 * concurrent-N-..., its docker volumes runner-TOKEN-project-ID-
		 * concurrent-N-cache-...). */
		else if (args && q->o.pod_name &&
			 vm_name_check("volume", q->o.pod_name, &ignored) == 0)
			json_object_set_new(args, "seed_name", json_string(q->o.pod_name));
		if (args && q->o.quota)
			json_object_set_new(args, "quota", json_string(q->o.quota));
		if (args && q->o.ttl)
			json_object_set_new(args, "ttl", json_string(q->o.ttl));
		err = (struct vm_error){0}; /* inspect's "no such volume" */
		if ((r = volmgrd(p, "volume.create", args, &vol, &err)) < 0) {
			/* Not there a moment ago: an earlier call's create is still
			 * under way in volmgrd (it gave up waiting for it). */
			if (r == -EEXIST)
				return csi_fail(st, VM_GRPC_ABORTED,
						"volume %s is still being made by an earlier call",
						q->volume_id);
			if (r == -ENOENT && q->o.source)
				return csi_fail(st, VM_GRPC_NOT_FOUND,
						"%s: no such cache (or revision) on node %s (volmgrd: %s)",
						q->o.source, p->node_id, err.msg);
			return volmgrd_fail(st, &err, r, "cannot make the volume");
		}
		created = true;
		VM_FAULT("csi-publish-created");
	}
	if ((r = mount_at_target(q, vol, parent, last, st)) == 0)
		return 0;
	/* A final error: the kubelet removes its directories and never
	 * unpublishes, so nothing may be left. */
	if (created) {
		_cleanup_json_ json_t *gone = NULL;
		struct vm_error e2 = {0};
		if (volmgrd(p, "volume.remove", json_pack("{s:s}", "name", q->volume_id), &gone,
			    &e2) < 0)
			fprintf(stderr, "volmgr-csi: cannot remove volume %s after a failed publish: %s\n",
				q->volume_id, e2.msg);
	}
	return r;
}

int csi_node_publish(struct csi_plugin *p, const struct csi_publish *q, struct csi_status *st)
{
	if (!csi_volume_name_ok(q->volume_id))
		return csi_fail(st, VM_GRPC_INVALID_ARGUMENT,
				"volume id \"%.80s\" is not one volmgr-csi takes: \"csi-\" and up to "
				"196 of [a-zA-Z0-9_.-], as the kubelet makes them",
				q->volume_id);
	const char *below = csi_target_below(p->target_root, q->target);
	if (!below)
		return csi_fail(st, VM_GRPC_INVALID_ARGUMENT,
				"target path must be a plain absolute path beneath %s",
				p->target_root);
	if (strlen(q->target) > VM_LABEL_VALUE_MAX)
		return csi_fail(st, VM_GRPC_INVALID_ARGUMENT,
				"target path longer than %d bytes (it is kept in a label)",
				VM_LABEL_VALUE_MAX);
	if (!busy_take(p, q->volume_id))
		return csi_fail(st, VM_GRPC_ABORTED, "another call on volume %s is under way",
				q->volume_id);
	int parent = -1;
	const char *last;
	int r = csi_target_parent(p, below, &parent, &last);
	if (r == -ENOENT)
		r = csi_fail(st, VM_GRPC_NOT_FOUND, "the target's parent directory does not exist");
	else if (r < 0)
		r = csi_fail(st, VM_GRPC_INVALID_ARGUMENT,
			     "cannot open the target's parent without following a link: %s",
			     strerror(-r));
	else
		r = do_publish(p, q, parent, last, st);
	if (parent >= 0)
		close(parent);
	busy_give(p, q->volume_id);
	fprintf(stderr, "volmgr-csi: publish %s at %s: %s%s\n", q->volume_id, q->target,
		r ? "" : "ok", r ? st->message : "");
	return r;
}

/* ---- unpublish ---- */

static int do_unpublish(struct csi_plugin *p, const char *id, const char *target, int parent,
			const char *last, struct csi_status *st)
{
	struct vm_error err = {0};
	_cleanup_json_ json_t *vol = NULL;
	int r = inspect(p, id, &vol, &err);
	if (r < 0)
		return volmgrd_fail(st, &err, r, "volmgrd");
	bool ours = r > 0 && made_for(vol, id) && same(label(vol, L_TARGET), target);
	_cleanup_close_ int vfd = ours ? open_volume(vol) : -1;
	if (parent >= 0) {
		/* Unmount what shows this volume there, as often as it is
		 * mounted (a publish may have raced a crash). */
		for (int i = 0; i < 16 && (r = csi_is_mount_point(parent, last)) > 0; i++) {
			if (vfd < 0 || csi_shows(parent, last, vfd) <= 0)
				return csi_fail(st, VM_GRPC_FAILED_PRECONDITION,
						"something other than volume %s is mounted at the "
						"target; not touching it",
						id);
			if ((r = csi_unmount(parent, last)) < 0)
				return csi_fail(st, VM_GRPC_INTERNAL, "cannot unmount the target: %s",
						strerror(-r));
		}
		if (r == -ELOOP)
			return csi_fail(st, VM_GRPC_INVALID_ARGUMENT,
					"the target is a symbolic link");
		VM_FAULT("csi-unpublish-unmounted");
		/* The spec: the plugin removes what it made at the target. */
		if (unlinkat(parent, last, AT_REMOVEDIR) < 0 && errno != ENOENT)
			return csi_fail(st, VM_GRPC_INTERNAL, "cannot remove the target: %s",
					strerror(errno));
	}
	if (!ours)
		return 0;
	/* volmgrd refuses to remove a volume someone holds open: us too. */
	if (vfd >= 0)
		close(TAKE_FD(vfd));
	_cleanup_json_ json_t *gone = NULL;
	r = volmgrd(p, "volume.remove", json_pack("{s:s}", "name", id), &gone, &err);
	/* Still held (a straggler of the pod with its cwd inside, the
	 * target detached): the pod must not wait for it -- the target is
	 * gone, and the sweep removes the volume once nothing holds it. */
	if (r == -EBUSY) {
		fprintf(stderr, "volmgr-csi: volume %s is still in use; removed later: %s\n", id,
			err.msg);
		return 0;
	}
	if (r < 0 && r != -ENOENT)
		return volmgrd_fail(st, &err, r, "cannot remove the volume");
	return 0;
}

int csi_node_unpublish(struct csi_plugin *p, const char *id, const char *target,
		       struct csi_status *st)
{
	const char *below = csi_target_below(p->target_root, target);
	if (!below)
		return csi_fail(st, VM_GRPC_INVALID_ARGUMENT,
				"target path must be a plain absolute path beneath %s",
				p->target_root);
	/* An id no publish takes was never published: nothing to undo. */
	if (!csi_volume_name_ok(id))
		return 0;
	if (!busy_take(p, id))
		return csi_fail(st, VM_GRPC_ABORTED, "another call on volume %s is under way", id);
	int parent = -1;
	const char *last;
	int r = csi_target_parent(p, below, &parent, &last);
	if (r < 0 && r != -ENOENT)
		r = csi_fail(st, VM_GRPC_INVALID_ARGUMENT,
			     "cannot open the target's parent without following a link: %s",
			     strerror(-r));
	else
		r = do_unpublish(p, id, target, r == -ENOENT ? -1 : parent, last, st);
	if (parent >= 0)
		close(parent);
	busy_give(p, id);
	fprintf(stderr, "volmgr-csi: unpublish %s at %s: %s%s\n", id, target, r ? "" : "ok",
		r ? st->message : "");
	return r;
}

/* ---- stats ---- */

int csi_node_stats(struct csi_plugin *p, const char *id, const char *path,
		   struct csi_usage *ret, struct csi_status *st)
{
	*ret = (struct csi_usage){0};
	const char *below = csi_target_below(p->target_root, path);
	if (!csi_volume_name_ok(id) || !below)
		return csi_fail(st, VM_GRPC_NOT_FOUND, "no volume %.80s published at %.512s", id,
				path);
	struct vm_error err = {0};
	_cleanup_json_ json_t *vol = NULL;
	int r = inspect(p, id, &vol, &err);
	if (r < 0)
		return volmgrd_fail(st, &err, r, "volmgrd");
	if (r == 0 || !made_for(vol, id) || !same(label(vol, L_TARGET), path))
		return csi_fail(st, VM_GRPC_NOT_FOUND, "no volume %s published at %.512s", id, path);
	_cleanup_close_ int parent = -1;
	const char *last;
	_cleanup_close_ int vfd = open_volume(vol);
	if (vfd < 0 || csi_target_parent(p, below, &parent, &last) < 0 ||
	    csi_is_mount_point(parent, last) <= 0 || csi_shows(parent, last, vfd) <= 0)
		return csi_fail(st, VM_GRPC_NOT_FOUND, "volume %s is not mounted at %.512s", id,
				path);
	struct statvfs sv;
	if (fstatvfs(vfd, &sv) < 0)
		return csi_fail(st, VM_GRPC_INTERNAL, "statvfs: %s", strerror(errno));
	long long bs = (long long)sv.f_frsize;
	ret->bytes_total = (long long)sv.f_blocks * bs;
	ret->bytes_available = (long long)sv.f_bavail * bs;
	ret->bytes_used = ret->bytes_total - (long long)sv.f_bfree * bs;
	/* With a quota the volume's own figures: its limit and what it
	 * references (volmgrd's accounting, as `volmgr volume inspect`). */
	json_t *u = json_object_get(vol, "usage");
	long long limit = (long long)json_integer_value(json_object_get(u, "limit"));
	if (limit <= 0)
		limit = (long long)json_integer_value(json_object_get(vol, "quota"));
	if (limit > 0 && json_is_integer(json_object_get(u, "referenced"))) {
		long long used = (long long)json_integer_value(json_object_get(u, "referenced"));
		ret->bytes_total = limit;
		ret->bytes_used = used;
		ret->bytes_available = limit > used ? limit - used : 0;
	}
	if (sv.f_files > 0) {
		ret->inodes = true;
		ret->inodes_total = (long long)sv.f_files;
		ret->inodes_free = (long long)sv.f_ffree;
		ret->inodes_used = (long long)(sv.f_files - sv.f_ffree);
	}
	return 0;
}

int csi_node_probe(struct csi_plugin *p, struct csi_status *st)
{
	struct vm_error err = {0};
	_cleanup_json_ json_t *s = NULL;
	int r = volmgrd(p, "status", NULL, &s, &err);
	if (r < 0)
		return csi_fail(st, VM_GRPC_UNAVAILABLE, "volmgrd does not answer: %s", err.msg);
	/* The pool as this process sees it: where it binds volumes from. */
	const char *pool = json_string_value(json_object_get(s, "pool"));
	_cleanup_close_ int fd = pool ? open_dir(pool) : -EPROTO;
	struct statvfs sv;
	if (fd < 0 || fstatvfs(fd, &sv) < 0)
		return csi_fail(st, VM_GRPC_FAILED_PRECONDITION,
				"volmgrd's pool %.512s is not reachable from volmgr-csi: %s",
				pool ? pool : "(none)", strerror(fd < 0 ? -fd : errno));
	return 0;
}

/* ---- at start, and every minute: the volumes of this node ---- */

/* What became of a published volume: mounted at its target; its target
 * gone (the pod's directory removed: the kubelet gave up on a publish,
 * or an unpublish left a volume still held), so it is an orphan; or
 * neither (a publish the kubelet will repeat, or an unpublish it will
 * send). */
enum fate { MOUNTED, ORPHAN, PENDING };

static enum fate fate_of(struct csi_plugin *p, json_t *v)
{
	const char *below = csi_target_below(p->target_root, label(v, L_TARGET) ?: ""), *last;
	_cleanup_close_ int parent = -1;
	_cleanup_close_ int vfd = open_volume(v);
	if (!below || vfd < 0)
		return PENDING;
	int r = csi_target_parent(p, below, &parent, &last);
	if (r == -ENOENT)
		return ORPHAN;
	if (r < 0)
		return PENDING;
	int m = csi_is_mount_point(parent, last);
	if (m == -ENOENT)
		return ORPHAN;
	return m > 0 && csi_shows(parent, last, vfd) > 0 ? MOUNTED : PENDING;
}

void csi_node_account(struct csi_plugin *p, bool remove_orphans)
{
	struct vm_error err = {0};
	_cleanup_json_ json_t *list = NULL;
	if (volmgrd(p, "volume.list", NULL, &list, &err) < 0) {
		if (!remove_orphans)
			fprintf(stderr, "volmgr-csi: volmgrd does not answer yet (%s); volumes are "
					"checked on each call\n",
				err.msg);
		return;
	}
	size_t i, n = 0, mounted = 0, removed = 0;
	json_t *v;
	json_array_foreach(list, i, v) {
		const char *name = json_string_value(json_object_get(v, "name"));
		if (!name || !made_for(v, name) || !same(label(v, L_NODE), p->node_id))
			continue;
		n++;
		/* Not while a call on it is under way (a publish makes the
		 * volume before the target). */
		if (!busy_take(p, name))
			continue;
		enum fate f = fate_of(p, v);
		mounted += f == MOUNTED;
		/* volmgrd refuses to remove one still in use: next time. */
		if (f == ORPHAN && remove_orphans) {
			_cleanup_json_ json_t *gone = NULL;
			struct vm_error e2 = {0};
			if (volmgrd(p, "volume.remove", json_pack("{s:s}", "name", name), &gone,
				    &e2) == 0) {
				removed++;
				fprintf(stderr, "volmgr-csi: removed volume %s: its target %s is "
						"gone\n",
					name, label(v, L_TARGET));
			}
		} else if (f != MOUNTED && !remove_orphans) {
			fprintf(stderr, "volmgr-csi: volume %s is not mounted at %s (%s)\n", name,
				label(v, L_TARGET),
				f == ORPHAN ? "its target is gone: removed by the sweep"
					    : "a publish the kubelet will repeat, or an unpublish it "
					      "will send");
		}
		busy_give(p, name);
	}
	if (!remove_orphans)
		fprintf(stderr, "volmgr-csi: %zu published volume(s) on node %s, %zu mounted\n", n,
			p->node_id, mounted);
	(void)removed;
}
