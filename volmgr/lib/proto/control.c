/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The control protocol: one table lists every operation once -- its
 * name, who may call it, the arguments it takes and its handler -- and
 * vm_control_handle() checks a request against it before any handler
 * runs.  The manager's answers are spelled as JSON here and nowhere
 * else. */
#include "control.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "caller.h"
#include "copy.h"
#include "exitcode.h"
#include "json-util.h"
#include "metrics.h"
#include "names.h"

static json_t *reply_ok(json_t *result)
{
	return json_pack("{s:b, s:o}", "ok", 1, "result", result ? result : json_null());
}

static json_t *reply_err(const struct vm_error *err)
{
	int code = err->code ? err->code : EIO;
	char msg[sizeof(err->msg)];
	snprintf(msg, sizeof(msg), "%s", err->msg[0] ? err->msg : strerror(code));
	vm_utf8_sanitize(msg);
	return json_pack("{s:b, s:{s:i, s:s, s:s}}", "ok", 0, "error", "errno", code,
			 "name", vm_errno_name(code), "message", msg);
}

/* ---- the manager's answers on the wire ---- */

static json_t *volume_json(const struct vm_volume_info *v)
{
	json_t *mounts = json_array();
	for (size_t i = 0; mounts && i < v->n_mounts; i++) {
		char t[40];
		vm_format_time(v->mounts[i].since_ns, t);
		json_array_append_new(mounts, json_pack("{s:s, s:s, s:I}", "id", v->mounts[i].id,
							"since", t, "count",
							(json_int_t)v->mounts[i].count));
	}
	char created[40], src[VM_SOURCE_STR_MAX];
	vm_format_time(v->created_ns, created);
	vm_source_format(&v->source, src);
	json_t *info = json_pack("{s:s, s:s, s:s, s:I, s:O, s:s, s:o, s:{s:I, s:I}, s:I}",
				 "name", v->name, "source", src, "created", created,
				 "created_ns", (json_int_t)v->created_ns, "labels", v->labels,
				 "mountpoint", v->mountpoint, "mounts", mounts,
				 "creator", "uid", (json_int_t)v->creator_uid,
				 "pid", (json_int_t)v->creator_pid,
				 "subvol_id", (json_int_t)v->subvol_id);
	if (!info)
		return NULL;
	/* The pool's backend made it (a subvolume or a directory). */
	json_object_set_new(info, "backend", json_string(vm_backend_name(v->backend)));
	if (v->commit[0])
		json_object_set_new(info, "commit", json_string(v->commit));
	if (v->seed_cache[0])
		json_object_set_new(info, "seed", json_pack("{s:s, s:s}", "rule", v->seed_rule,
							    "cache", v->seed_cache));
	if (v->quota_bytes)
		json_object_set_new(info, "quota", json_integer((json_int_t)v->quota_bytes));
	if (v->expires_ns) {
		char t[40];
		vm_format_time(v->expires_ns, t);
		json_object_set_new(info, "expires", json_string(t));
	}
	if (v->has_usage)
		json_object_set_new(info, "usage",
				    json_pack("{s:I, s:I, s:I}",
					      "referenced", (json_int_t)v->usage_referenced,
					      "exclusive", (json_int_t)v->usage_exclusive,
					      "limit", (json_int_t)v->usage_limit));
	if (v->creator_cgroup[0])
		json_object_set_new(json_object_get(info, "creator"), "cgroup",
				    json_string(v->creator_cgroup));
	if (v->creator_engine[0])
		json_object_set_new(json_object_get(info, "creator"), "engine",
				    json_string(v->creator_engine));
	if (v->remove_refused_ns) {
		char t[40];
		vm_format_time(v->remove_refused_ns, t);
		json_object_set_new(info, "remove_refused", json_string(t));
	}
	json_object_set_new(info, "in_use", json_boolean(v->in_use));
	if (v->scanned)
		json_object_set_new(info, "kernel_mounts", json_integer(v->kernel_mounts));
	if (v->in_use_unknown)
		json_object_set_new(info, "in_use_unknown", json_true());
	return info;
}

static json_t *cache_json(const struct vm_cache_info *c)
{
	char created[40];
	vm_format_time(c->created_ns, created);
	json_t *info = json_pack("{s:s, s:s, s:I, s:O, s:I}", "name", c->name, "created", created,
				 "created_ns", (json_int_t)c->created_ns, "labels", c->labels,
				 "subvol_id", (json_int_t)c->subvol_id);
	if (!info)
		return NULL;
	json_object_set_new(info, "backend", json_string(vm_backend_name(c->backend)));
	json_object_set_new(info, "no_xattrs", json_boolean(c->no_xattrs));
	if (c->git_url[0]) {
		char updated[40];
		vm_format_time(c->updated_ns, updated);
		json_object_set_new(info, "git",
				    json_pack("{s:s, s:s, s:s}", "url", c->git_url, "branch",
					      c->git_branch, "commit", c->git_commit));
		json_object_set_new(info, "generation", json_integer((json_int_t)c->generation));
		json_object_set_new(info, "updated", json_string(updated));
	}
	if (c->last_used_ns) {
		char t[40];
		vm_format_time(c->last_used_ns, t);
		json_object_set_new(info, "last_used", json_string(t));
	}
	if (c->has_size)
		json_object_set_new(info, "size", json_integer((json_int_t)c->size_bytes));
	if (c->promoted_from[0]) {
		char updated[40];
		vm_format_time(c->updated_ns, updated);
		json_t *p = json_pack("{s:s, s:s}", "volume", c->promoted_from, "checkout", c->checkout);
		if (p && c->git_commit[0])
			json_object_set_new(p, "commit", json_string(c->git_commit));
		if (p && c->commit_time_ns) {
			char t[40];
			vm_format_time(c->commit_time_ns, t);
			json_object_set_new(p, "commit_time", json_string(t));
		}
		json_object_set_new(info, "promoted", p);
		json_object_set_new(info, "generation", json_integer((json_int_t)c->generation));
		json_object_set_new(info, "updated", json_string(updated));
	}
	return info;
}

static json_t *status_json(const struct vm_manager_status *s)
{
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s, s:b, s:I}",
			      "version", VOLMGR_VERSION, "pool", s->pool, "fstype", s->fstype,
			      "mount", s->mount, "backend", vm_backend_name(s->backend),
			      "backend_chosen", s->backend_forced ? "forced" : "probed",
			      "instant", s->instant, "backend_reason", s->backend_reason,
			      "copy_io", vm_copy_io_name(s->copy_io),
			      "copy_io_reason", s->copy_io_reason, "quotas", s->quotas,
			      "copies_reading", (json_int_t)s->copies_reading);
	if (!j)
		return NULL;
	if (!s->quotas)
		json_object_set_new(j, "quotas_reason", json_string(s->quotas_reason));
	json_object_set_new(j, "copies",
			    json_pack("{s:I, s:I, s:I}", "running", (json_int_t)s->copies_running,
				      "waiting", (json_int_t)s->copies_waiting,
				      "max", (json_int_t)s->copies_max));
	json_object_set_new(j, "quota_accounting",
			    json_string(vm_quota_mode_name(s->quota_accounting)));
	return j;
}

static json_t *stats_json(const struct vm_copy_stats *s)
{
	json_t *j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}",
			      "files", (json_int_t)s->files, "dirs", (json_int_t)s->dirs,
			      "symlinks", (json_int_t)s->symlinks,
			      "hardlinks", (json_int_t)s->hardlinks,
			      "others", (json_int_t)s->others, "bytes", (json_int_t)s->bytes);
	if (j) {
		json_object_set_new(j, "skipped", json_integer((json_int_t)s->skipped));
		json_object_set_new(j, "xattrs", json_integer((json_int_t)s->xattrs));
	}
	return j;
}

static json_t *how_json(const struct vm_create_how *h)
{
	if (h->method == VM_CREATE_COPY)
		return json_pack("{s:s, s:o}", "method", "copy", "stats", stats_json(&h->stats));
	return json_pack("{s:s, s:s}", "method",
			 h->method == VM_CREATE_SNAPSHOT ? "snapshot" : "clone", "of", h->of);
}

static json_t *git_json(const struct vm_git_result *g, bool update)
{
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:I}", "name", g->name, "url", g->url,
			      "branch", g->branch, "commit", g->commit,
			      "generation", (json_int_t)g->generation);
	if (j && update)
		json_object_set_new(j, "previous_commit", json_string(g->previous_commit));
	return j;
}

static json_t *gc_entries_json(const struct vm_gc_entry *e, size_t n)
{
	json_t *list = json_array();
	for (size_t i = 0; list && i < n; i++) {
		json_t *reasons = json_array();
		for (unsigned bit = 1; reasons && bit & VM_GC_REASONS_ALL; bit <<= 1)
			if (e[i].reasons & bit)
				json_array_append_new(reasons,
						      json_string(vm_gc_reason_name((enum vm_gc_reason)bit)));
		json_t *j = json_pack("{s:s, s:o}", "name", e[i].name, "reasons", reasons);
		if (j && e[i].has_bytes)
			json_object_set_new(j, "bytes", json_integer((json_int_t)e[i].bytes));
		if (j && e[i].error[0])
			json_object_set_new(j, "error", json_string(e[i].error));
		if (json_array_append_new(list, j) < 0) {
			json_decref(list);
			return NULL;
		}
	}
	return list;
}

static json_t *gc_json(const struct vm_gc_report *r)
{
	json_t *dropped = json_array();
	for (size_t i = 0; dropped && i < r->n_mounts_dropped; i++)
		json_array_append_new(dropped, json_string(r->mounts_dropped[i]));
	json_t *j = json_pack("{s:b, s:o, s:o, s:o, s:I}", "dry_run", r->dry_run, "removed",
			      gc_entries_json(r->removed, r->n_removed), "kept_in_use",
			      gc_entries_json(r->kept, r->n_kept), "mounts_dropped", dropped,
			      "bytes_freed", (json_int_t)r->bytes_freed);
	if (j && r->stale_qgroups_cleared > 0)
		json_object_set_new(j, "stale_qgroups_cleared",
				    json_integer(r->stale_qgroups_cleared));
	if (j && r->has_ceiling)
		json_object_set_new(j, "caches",
				    json_pack("{s:I, s:I, s:o, s:o}", "pool_used", (json_int_t)r->pool_used,
					      "pool_limit", (json_int_t)r->pool_limit, "removed",
					      gc_entries_json(r->caches_removed, r->n_caches_removed),
					      "kept_in_use",
					      gc_entries_json(r->caches_kept, r->n_caches_kept)));
	return j;
}

/* A reply object built from a result, or ENOMEM. */
static int reply_of(json_t *j, json_t **ret, struct vm_error *err)
{
	if (!j)
		return vm_error_set(err, ENOMEM, "out of memory");
	*ret = j;
	return 0;
}

static int volume_reply(const struct vm_volume_info *v, json_t **ret, struct vm_error *err)
{
	return reply_of(volume_json(v), ret, err);
}

/* ---- the arguments ---- */

/* Every argument any operation takes, once parsed. */
struct args {
	const char *name, *source, *path, *ttl, *quota, *git, *branch;
	const char *commit, *commit_time, *seed_name;
	json_t *labels; /* an object of labels (vm_labels_check), or NULL */
	bool dry_run;
};

enum arg_type {
	ARG_STRING, /* a string without a NUL in it */
	ARG_BOOL,   /* true or false */
	ARG_LABELS, /* an object of string -> string (vm_labels_check) */
	ARG_JSON,   /* any value: the handler checks it */
};

struct arg {
	const char *key; /* NULL ends a list */
	enum arg_type type;
	size_t offset;   /* of the field in struct args */
	bool required;
};

/* The offset of a field of struct args, which must be of the type the
 * argument's type is parsed into (else the table does not compile). */
#define FIELD(field, type)                                                     \
	(offsetof(struct args, field) +                                        \
	 0 * sizeof(char[__builtin_types_compatible_p(                         \
				 __typeof__(((struct args *)0)->field), type) ? 1 : -1]))
#define A_STRING(key, field) {key, ARG_STRING, FIELD(field, const char *), false}
#define A_STRING_REQUIRED(key, field) {key, ARG_STRING, FIELD(field, const char *), true}
#define A_BOOL(key, field) {key, ARG_BOOL, FIELD(field, bool), false}
#define A_NAME A_STRING_REQUIRED("name", name)
#define A_LABELS {"labels", ARG_LABELS, FIELD(labels, json_t *), false}
/* volume.create checks its labels after the source, ttl and quota, and
 * from a path takes only an object (as it always has). */
#define A_LABELS_RAW {"labels", ARG_JSON, FIELD(labels, json_t *), false}
#define ARGS(...) ((const struct arg[]){__VA_ARGS__, {NULL}})
#define NOARGS ((const struct arg[]){{NULL}})

/* Check args against an operation's list: no key it does not list, each
 * of the right type, the required ones there; null counts as absent,
 * but for a true/false argument (gc's dry_run: null must not read as
 * false and remove volumes). */
static int args_parse(json_t *args, const struct arg *list, struct args *ret,
		      struct vm_error *err)
{
	const char *k;
	json_t *v;
	json_object_foreach(args, k, v) {
		const struct arg *a = list;
		while (a->key && strcmp(a->key, k) != 0)
			a++;
		if (!a->key)
			return vm_error_set(err, EINVAL, "unknown argument \"%.64s\"", k);
	}
	for (const struct arg *a = list; a->key; a++) {
		void *field = (char *)ret + a->offset;
		v = json_object_get(args, a->key);
		if (!v || (json_is_null(v) && a->type != ARG_BOOL)) {
			if (a->required)
				return vm_error_set(err, EINVAL, "missing argument \"%s\"", a->key);
			continue;
		}
		switch (a->type) {
		case ARG_STRING:
			if (!json_is_string(v) ||
			    strlen(json_string_value(v)) != json_string_length(v))
				return vm_error_set(err, EINVAL, "argument \"%s\" must be a string",
						    a->key);
			*(const char **)field = json_string_value(v);
			break;
		case ARG_BOOL:
			if (!json_is_boolean(v))
				return vm_error_set(err, EINVAL, "%s must be true or false", a->key);
			*(bool *)field = json_is_true(v);
			break;
		case ARG_LABELS: {
			int r = vm_labels_check(v, err);
			if (r < 0)
				return r;
			*(json_t **)field = v;
			break;
		}
		case ARG_JSON:
			*(json_t **)field = v;
			break;
		}
	}
	return 0;
}

/* ---- the operations ---- */

/* One request, as its handler sees it. */
struct call {
	const struct vm_control_ops *ops;
	void *ctx;
	const struct vm_caller *caller;
	enum vm_control_socket where;
	int fd; /* passed along; -1 if none, never -1 where the table needs one */
	const struct vm_control_sink *sink; /* NULL: no progress asked for */
	struct args a;
};

/* A copy's progress, as one message to the client. */
static void send_progress(const struct vm_copy_progress *p, void *userdata)
{
	const struct vm_control_sink *sink = userdata;
	json_t *msg = json_pack("{s:{s:I, s:I, s:I, s:I, s:I, s:b}}", "progress",
				"files", (json_int_t)p->files, "bytes", (json_int_t)p->bytes,
				"total_files", (json_int_t)p->total_files,
				"total_bytes", (json_int_t)p->total_bytes,
				"elapsed_ns", (json_int_t)p->elapsed_ns, "done", p->done);
	if (msg)
		sink->send(sink->userdata, msg);
	json_decref(msg);
}

static void want_progress(const struct vm_control_sink *sink, struct vm_create_opts *o)
{
	if (!sink || !sink->send)
		return;
	o->progress = send_progress;
	o->progress_userdata = (void *)sink;
}

static int op_ping(const struct call *c, json_t **ret, struct vm_error *err)
{
	struct vm_control_pool p = {0};
	c->ops->pool(c->ctx, &p);
	json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "version", VOLMGR_VERSION, "pool", p.path,
			      "fstype", p.fstype, "backend", vm_backend_name(p.backend));
	if (!j)
		return vm_error_set(err, ENOMEM, "out of memory");
	*ret = j;
	return 0;
}

static int op_status(const struct call *c, json_t **ret, struct vm_error *err)
{
	struct vm_manager_status s;
	c->ops->status(c->ctx, &s);
	return reply_of(status_json(&s), ret, err);
}

/* From a source by name, or with a passed fd from what the caller sees at
 * "path"; the answer is the new volume's info (and for a path, how it was
 * made). */
static int op_volume_create(const struct call *c, json_t **ret, struct vm_error *err)
{
	const struct args *a = &c->a;
	int r;
	if ((c->fd >= 0) != (a->path != NULL) || (a->path && a->source))
		return vm_error_set(err, EINVAL,
				    "give either a source by name, or a path with its directory passed as a file descriptor");
	struct vm_create_opts o = {0};
	want_progress(c->sink, &o);
	if (!a->path && (r = vm_source_parse(a->source, &o.source, err)) < 0)
		return r;
	if (a->ttl && (r = vm_parse_duration(a->ttl, &o.ttl_ns, err)) < 0)
		return r;
	if (a->quota && (r = vm_parse_size(a->quota, &o.quota_bytes, err)) < 0)
		return r;
	o.quota_set = a->quota != NULL;
	/* By name the labels are checked here; from a path only an object is
	 * taken, and the manager checks what it holds. */
	if (!a->path && (r = vm_labels_check(a->labels, err)) < 0)
		return r;
	o.labels = json_is_object(a->labels) ? a->labels : NULL;
	/* seed_name: the [seed] rules pick the source by this name rather
	 * than the volume's (volmgr-csi passes the pod's name: a Kubernetes
	 * job's pod is named as the docker executor names its volumes).
	 * Root's, as the names the rules claim are. */
	if (a->seed_name) {
		if (a->path || a->source)
			return vm_error_set(err, EINVAL, "seed_name is for a volume without a source");
		if (c->caller && c->caller->uid != 0)
			return vm_error_set(err, EPERM, "seed_name is for root only");
		if ((r = vm_name_check("seed name", a->seed_name, err)) < 0)
			return r;
		o.seed_by_rules = true;
		o.seed_name = a->seed_name;
	}
	struct vm_create_how how = {0};
	if (a->path)
		r = c->ops->volume_create_from_fd(c->ctx, a->name, c->fd, a->path, &o, c->caller,
						  &how, err);
	else
		r = c->ops->volume_create(c->ctx, a->name, &o, c->caller, err);
	if (r < 0)
		return r;
	_cleanup_(vm_volume_info_done) struct vm_volume_info info = {0};
	if ((r = c->ops->volume_get(c->ctx, a->name, &info, err)) < 0 ||
	    (r = volume_reply(&info, ret, err)) < 0)
		return r;
	if (a->path)
		json_object_set_new(*ret, "created_by", how_json(&how));
	return 0;
}

/* The caller's mount that the passed fd was opened through, from the
 * caller's own mountinfo, with "volume_top": whether what is mounted
 * there is VOLUME's top -- as an engine mounts a volume into a
 * container.  A directory reached through the pool's path is on the
 * pool's mount instead, and one passed from another mount namespace is
 * on no mount of the caller's: both fail or say false. */
static int mount_of_volume_fd(const struct call *c, const char *volume, json_t **ret,
			      struct vm_error *err)
{
	json_t *mount = NULL;
	int r = c->ops->mount_of_fd(c->ctx, c->caller, c->fd, &mount, err);
	if (r < 0)
		return r;
	struct vm_control_pool p = {0};
	c->ops->pool(c->ctx, &p);
	char top[PATH_MAX];
	snprintf(top, sizeof(top), "%s/%s", p.volumes_fs_path, volume);
	const char *root = json_string_value(json_object_get(mount, "root"));
	json_object_set_new(mount, "volume_top", json_boolean(root && strcmp(root, top) == 0));
	*ret = mount;
	return 0;
}

/* The volume holding the passed directory, and where the caller has that
 * directory mounted (informative, best effort). */
static int op_volume_which(const struct call *c, json_t **ret, struct vm_error *err)
{
	json_t *mount = NULL;
	struct vm_volume_place place;
	int r = c->ops->volume_which(c->ctx, c->fd, &place, err);
	if (r < 0)
		return r;
	_cleanup_json_ json_t *result = json_pack("{s:s, s:b}", "volume", place.volume, "root",
						  place.root);
	if (!result)
		return vm_error_set(err, ENOMEM, "out of memory");
	struct vm_error merr = {0};
	/* With volume_top, an engine can mount the volume by name at the
	 * same place (volmgr-run does). */
	if (mount_of_volume_fd(c, place.volume, &mount, &merr) == 0) {
		json_object_del(mount, "mntns_owner"); /* the job socket's check only */
		json_object_set_new(result, "mount", mount);
	}
	*ret = TAKE_PTR(result);
	return 0;
}

/* On the job socket (0666), a directory counts only on the caller's own
 * mount of the volume's top, as a job container has it: any local user
 * can open a 0777 build volume through the pool's path, but only the
 * job's processes (and root) have it mounted. */
static int job_holds_volume(const struct call *c, struct vm_error *err)
{
	struct vm_volume_place place;
	int r = c->ops->volume_which(c->ctx, c->fd, &place, err);
	if (r < 0)
		return r;
	_cleanup_json_ json_t *mount = NULL;
	struct vm_error merr = {0};
	if (mount_of_volume_fd(c, place.volume, &mount, &merr) < 0 ||
	    !json_is_true(json_object_get(mount, "volume_top")))
		return vm_error_set(err, EPERM,
				    "on the job socket, only a directory on the caller's own mount of "
				    "volume %s's top counts (as a job container has it); one reached "
				    "through the pool's path or from another mount namespace does not",
				    place.volume);
	/* A mount namespace an unprivileged user made (unshare -Urm) can
	 * bind-mount anything that user reaches: only those root made
	 * (the host's, an engine's containers) count. */
	if (json_integer_value(json_object_get(mount, "mntns_owner")) != 0)
		return vm_error_set(err, EPERM,
				    "on the job socket, a mount counts only in a mount namespace root made "
				    "(a job container's); this caller's belongs to a user namespace of uid %lld",
				    (long long)json_integer_value(json_object_get(mount, "mntns_owner")));
	return 0;
}

static int op_volume_list(const struct call *c, json_t **ret, struct vm_error *err)
{
	_cleanup_(vm_volume_info_list_done) struct vm_volume_info_list all = {0};
	int r = c->ops->volume_list(c->ctx, &all, err);
	if (r < 0)
		return r;
	_cleanup_json_ json_t *list = json_array();
	for (size_t i = 0; list && i < all.n; i++)
		if (json_array_append_new(list, volume_json(&all.items[i])) < 0)
			return vm_error_set(err, ENOMEM, "out of memory");
	if (!list)
		return vm_error_set(err, ENOMEM, "out of memory");
	*ret = TAKE_PTR(list);
	return 0;
}

static int op_volume_inspect(const struct call *c, json_t **ret, struct vm_error *err)
{
	_cleanup_(vm_volume_info_done) struct vm_volume_info info = {0};
	int r = c->ops->volume_get(c->ctx, c->a.name, &info, err);
	return r < 0 ? r : volume_reply(&info, ret, err);
}

static int op_volume_remove(const struct call *c, json_t **ret, struct vm_error *err)
{
	return c->ops->volume_remove(c->ctx, c->a.name, c->caller, err);
}

static int op_cache_import(const struct call *c, json_t **ret, struct vm_error *err)
{
	struct vm_create_opts o = {0};
	want_progress(c->sink, &o);
	struct vm_copy_stats stats;
	int r = c->ops->cache_import(c->ctx, c->a.name, c->fd, &o, c->caller, &stats, err);
	return r < 0 ? r : reply_of(stats_json(&stats), ret, err);
}

static int op_cache_create(const struct call *c, json_t **ret, struct vm_error *err)
{
	struct vm_git_result g;
	int r = c->ops->cache_create_git(c->ctx, c->a.name, c->a.git, c->a.branch, c->caller, &g,
					 err);
	return r < 0 ? r : reply_of(git_json(&g, false), ret, err);
}

static int op_cache_update(const struct call *c, json_t **ret, struct vm_error *err)
{
	struct vm_git_result g;
	int r = c->ops->cache_update(c->ctx, c->a.name, &g, err);
	return r < 0 ? r : reply_of(git_json(&g, true), ret, err);
}

/* The volume holding the passed directory (the top of a checkout, or
 * of the volume) becomes the cache's next generation. */
static int op_cache_promote(const struct call *c, json_t **ret, struct vm_error *err)
{
	const struct args *a = &c->a;
	/* On the job socket: the volume into its own seed cache only. */
	struct vm_promote_opts o = {.commit = a->commit,
				    .lineage_only = c->where == VM_CONTROL_SOCKET_JOB};
	int r;
	if (c->where == VM_CONTROL_SOCKET_JOB && (r = job_holds_volume(c, err)) < 0)
		return r;
	if (a->commit_time && (r = vm_parse_time(a->commit_time, &o.commit_time_ns, err)) < 0)
		return r;
	struct vm_promote_result p;
	r = c->ops->cache_promote(c->ctx, c->fd, a->name, &o, c->caller, &p, err);
	if (r < 0)
		return r;
	json_t *j = json_pack("{s:s, s:s, s:b, s:I, s:s}", "cache", p.cache, "volume", p.volume,
			      "promoted", p.promoted, "generation", (json_int_t)p.generation,
			      "method", p.method == VM_CREATE_SNAPSHOT ? "snapshot" : "clone");
	if (j && p.commit[0])
		json_object_set_new(j, "commit", json_string(p.commit));
	if (j && !p.promoted)
		json_object_set_new(j, "kept_because", json_string(p.reason));
	return reply_of(j, ret, err);
}

static json_t *stream_json(const struct vm_stream_result *s, bool received)
{
	json_t *j = json_pack("{s:s, s:s, s:I}", "cache", s->cache, "commit", s->commit,
			      "generation", (json_int_t)s->generation);
	if (j && received) {
		json_object_set_new(j, "bytes", json_integer((json_int_t)s->bytes));
		json_object_set_new(j, "commands", json_integer((json_int_t)s->commands));
		json_object_set_new(j, "dropped_attributes", json_integer((json_int_t)s->dropped));
		if (s->git_url[0])
			json_object_set_new(j, "git", json_pack("{s:s, s:b}", "url", s->git_url, "kept",
							       s->git_url_kept));
	}
	return j;
}

static int op_cache_export(const struct call *c, json_t **ret, struct vm_error *err)
{
	struct vm_stream_result s;
	int r = c->ops->cache_export(c->ctx, c->a.name, c->fd, &s, err);
	return r < 0 ? r : reply_of(stream_json(&s, false), ret, err);
}

static int op_cache_import_stream(const struct call *c, json_t **ret, struct vm_error *err)
{
	struct vm_stream_result s;
	int r = c->ops->cache_import_stream(c->ctx, c->a.name, c->a.git, c->fd, c->caller, &s, err);
	return r < 0 ? r : reply_of(stream_json(&s, true), ret, err);
}

static int op_cache_list(const struct call *c, json_t **ret, struct vm_error *err)
{
	_cleanup_(vm_cache_info_list_done) struct vm_cache_info_list all = {0};
	int r = c->ops->cache_list(c->ctx, &all, err);
	if (r < 0)
		return r;
	_cleanup_json_ json_t *list = json_array();
	for (size_t i = 0; list && i < all.n; i++)
		if (json_array_append_new(list, cache_json(&all.items[i])) < 0)
			return vm_error_set(err, ENOMEM, "out of memory");
	if (!list)
		return vm_error_set(err, ENOMEM, "out of memory");
	*ret = TAKE_PTR(list);
	return 0;
}

static int op_cache_inspect(const struct call *c, json_t **ret, struct vm_error *err)
{
	_cleanup_(vm_cache_info_done) struct vm_cache_info info = {0};
	int r = c->ops->cache_get(c->ctx, c->a.name, &info, err);
	if (r < 0)
		return r;
	json_t *j = cache_json(&info);
	if (!j)
		return vm_error_set(err, ENOMEM, "out of memory");
	*ret = j;
	return 0;
}

static int op_cache_remove(const struct call *c, json_t **ret, struct vm_error *err)
{
	return c->ops->cache_remove(c->ctx, c->a.name, err);
}

static int op_gc(const struct call *c, json_t **ret, struct vm_error *err)
{
	_cleanup_(vm_gc_report_done) struct vm_gc_report rep = {0};
	int r = c->ops->gc(c->ctx, c->a.dry_run, c->a.labels, &rep, err);
	return r < 0 ? r : reply_of(gc_json(&rep), ret, err);
}

/* Prometheus text: the request counters and the pool's gauges. */
static int op_metrics(const struct call *c, json_t **ret, struct vm_error *err)
{
	_cleanup_(vm_volume_info_list_done) struct vm_volume_info_list vols = {0};
	_cleanup_(vm_cache_info_list_done) struct vm_cache_info_list caches = {0};
	int r = c->ops->volume_list(c->ctx, &vols, err);
	if (r < 0 || (r = c->ops->cache_list(c->ctx, &caches, err)) < 0)
		return r;
	uint64_t in_use = 0, excl = 0, ref = 0;
	for (size_t i = 0; i < vols.n; i++) {
		const struct vm_volume_info *v = &vols.items[i];
		in_use += v->in_use;
		if (v->has_usage) {
			excl += v->usage_exclusive;
			ref += v->usage_referenced;
		}
	}
	_cleanup_free_ char *text = vm_metrics_render(vols.n, caches.n, in_use, excl, ref);
	json_t *j = text ? json_string(text) : NULL;
	if (!j)
		return vm_error_set(err, ENOMEM, "out of memory");
	*ret = j;
	return 0;
}

/* Who may call an operation.  The socket's group (--control-group) may
 * use volumes; caches and gc are the administrator's.  JOB_TOO: offered
 * on the job socket as well, to any uid there (the handler knows which
 * socket: a promote there feeds only the volume's own seed cache). */
enum who { ANYONE, ROOT_ONLY };
enum { ADMIN_SOCKET, JOB_TOO };

static const struct op {
	const char *name;
	enum who who;
	int sockets; /* ADMIN_SOCKET or JOB_TOO */
	const struct arg *args;
	/* What the op needs passed as a file descriptor (for the message
	 * when it is not), or NULL: then any passed one is the handler's
	 * to use or ignore. */
	const char *fd_needed;
	int (*handle)(const struct call *c, json_t **ret, struct vm_error *err);
} operations[] = {
	{"ping", ANYONE, JOB_TOO, NOARGS, NULL, op_ping},
	{"status", ANYONE, ADMIN_SOCKET, NOARGS, NULL, op_status},
	{"volume.create", ANYONE, ADMIN_SOCKET,
	 /* in the order they have always been checked in */
	 ARGS(A_STRING("quota", quota), A_NAME, A_STRING("source", source),
	      A_STRING("path", path), A_STRING("ttl", ttl), A_LABELS_RAW,
	      A_STRING("seed_name", seed_name)),
	 NULL, op_volume_create},
	{"volume.which", ANYONE, JOB_TOO, NOARGS, "the directory", op_volume_which},
	{"volume.list", ANYONE, ADMIN_SOCKET, NOARGS, NULL, op_volume_list},
	{"volume.inspect", ANYONE, ADMIN_SOCKET, ARGS(A_NAME), NULL, op_volume_inspect},
	{"volume.remove", ANYONE, ADMIN_SOCKET, ARGS(A_NAME), NULL, op_volume_remove},
	{"cache.import", ROOT_ONLY, ADMIN_SOCKET, ARGS(A_NAME), "the source directory",
	 op_cache_import},
	{"cache.create", ROOT_ONLY, ADMIN_SOCKET,
	 ARGS(A_NAME, A_STRING_REQUIRED("git", git), A_STRING("branch", branch)),
	 NULL, op_cache_create},
	{"cache.update", ROOT_ONLY, ADMIN_SOCKET, ARGS(A_NAME), NULL, op_cache_update},
	/* Root only on the control socket: a promoted tree is what later
	 * jobs start from; anyone on the job socket, but only the volume
	 * passed into its own seed cache (SECURITY.md, "Who feeds a
	 * cache"). */
	{"cache.promote", ROOT_ONLY, JOB_TOO,
	 ARGS(A_STRING("name", name), A_STRING("commit", commit),
	      A_STRING("commit_time", commit_time)),
	 "the checkout's directory", op_cache_promote},
	/* Streams of whole caches, for machines that start empty. */
	{"cache.export", ROOT_ONLY, ADMIN_SOCKET, ARGS(A_NAME),
	 "the file or pipe to write the stream to", op_cache_export},
	{"cache.import_stream", ROOT_ONLY, ADMIN_SOCKET,
	 ARGS(A_STRING("name", name), A_STRING("git", git)),
	 "the stream to read", op_cache_import_stream},
	{"cache.list", ANYONE, ADMIN_SOCKET, NOARGS, NULL, op_cache_list},
	{"cache.inspect", ANYONE, ADMIN_SOCKET, ARGS(A_NAME), NULL, op_cache_inspect},
	{"cache.remove", ROOT_ONLY, ADMIN_SOCKET, ARGS(A_NAME), NULL, op_cache_remove},
	{"gc", ROOT_ONLY, ADMIN_SOCKET, ARGS(A_BOOL("dry_run", dry_run), A_LABELS), NULL, op_gc},
	{"metrics", ANYONE, ADMIN_SOCKET, NOARGS, NULL, op_metrics},
};

static const struct op *op_find(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(operations); i++)
		if (strcmp(name, operations[i].name) == 0)
			return &operations[i];
	return NULL;
}

/* Check the request against op's entry, then run its handler. */
static int dispatch(const struct op *op, struct call *c, json_t *args, json_t **ret,
		    struct vm_error *err)
{
	if (c->where == VM_CONTROL_SOCKET_JOB && op->sockets != JOB_TOO)
		return vm_error_set(err, EPERM,
				    "%s is not offered on the job socket (only ping, volume.which and cache.promote of the volume passed are): use the control socket",
				    op->name);
	/* A caller of NULL is volmgrd itself. */
	if (op->who == ROOT_ONLY && c->where == VM_CONTROL_SOCKET_ADMIN && c->caller &&
	    c->caller->uid != 0)
		return vm_error_set(err, EPERM, "%s is for root only", op->name);
	int r = args_parse(args, op->args, &c->a, err);
	if (r < 0)
		return r;
	if (op->fd_needed && c->fd < 0)
		return vm_error_set(err, EINVAL, "%s needs %s passed as a file descriptor", op->name,
				    op->fd_needed);
	return op->handle(c, ret, err);
}

json_t *vm_control_handle(const struct vm_control_ops *ops, void *ctx,
			  const struct vm_caller *caller, enum vm_control_socket where,
			  const char *body, size_t len, int fd,
			  const struct vm_control_sink *sink)
{
	struct vm_error err = {0};
	json_error_t jerr;
	_cleanup_json_ json_t *req = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!req) {
		vm_error_set(&err, EINVAL, "invalid JSON request: %s", jerr.text);
		return reply_err(&err);
	}
	const char *name;
	json_t *args = NULL;
	int progress = 0;
	if (json_unpack_ex(req, &jerr, JSON_STRICT, "{s:s, s?o, s?b}", "op", &name, "args",
			   &args, "progress", &progress) < 0) {
		vm_error_set(&err, EINVAL, "malformed request: %s", jerr.text);
		return reply_err(&err);
	}
	_cleanup_json_ json_t *empty = json_object();
	if (!args || json_is_null(args))
		args = empty;
	if (!json_is_object(args)) {
		vm_error_set(&err, EINVAL, "args must be an object");
		return reply_err(&err);
	}

	const struct op *op = op_find(name);
	struct call c = {
		.ops = ops,
		.ctx = ctx,
		.caller = caller,
		.where = where,
		.fd = fd,
		.sink = progress ? sink : NULL,
	};
	_cleanup_json_ json_t *result = NULL;
	int r = op ? dispatch(op, &c, args, &result, &err)
		   : vm_error_set(&err, EINVAL, "unknown operation \"%.64s\"", name);
	/* Counted by operation: the table's names, a closed set. */
	vm_metrics_request("control", op ? op->name : "unknown", r < 0 ? err.code : 0);
	if (r < 0)
		return reply_err(&err);
	return reply_ok(TAKE_PTR(result));
}
