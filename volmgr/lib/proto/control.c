/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "control.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "caller.h"
#include "copy.h"
#include "gc.h"
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

static int arg_string(json_t *args, const char *key, bool required,
		      const char **ret, struct vm_error *err)
{
	json_t *v = json_object_get(args, key);
	if (!v || json_is_null(v)) {
		*ret = NULL;
		return required ? vm_error_set(err, EINVAL, "missing argument \"%s\"", key) : 0;
	}
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
		return vm_error_set(err, EINVAL, "argument \"%s\" must be a string", key);
	*ret = json_string_value(v);
	return 0;
}

/* Only the listed keys may appear in args. */
static int args_only(json_t *args, const char *const *keys, struct vm_error *err)
{
	const char *k;
	json_t *v;
	json_object_foreach(args, k, v) {
		bool ok = false;
		for (const char *const *p = keys; *p && !ok; p++)
			ok = strcmp(k, *p) == 0;
		if (!ok)
			return vm_error_set(err, EINVAL, "unknown argument \"%.64s\"", k);
	}
	return 0;
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NOARGS ((const char *const[]){NULL})

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

/* With a passed fd: a volume from what the caller sees at "path". */
static int op_volume_create(struct vm_manager *m, const struct vm_caller *c,
			    json_t *args, int fd, const struct vm_control_sink *sink,
			    json_t **ret, struct vm_error *err)
{
	const char *name, *source, *path, *ttl, *quota;
	int r;
	if ((r = args_only(args, ARGS("name", "source", "path", "labels", "ttl", "quota"), err)) < 0 ||
	    (r = arg_string(args, "quota", false, &quota, err)) < 0 ||
	    (r = arg_string(args, "name", true, &name, err)) < 0 ||
	    (r = arg_string(args, "source", false, &source, err)) < 0 ||
	    (r = arg_string(args, "path", false, &path, err)) < 0 ||
	    (r = arg_string(args, "ttl", false, &ttl, err)) < 0)
		return r;
	if ((fd >= 0) != (path != NULL) || (path && source))
		return vm_error_set(err, EINVAL,
				    "give either a source by name, or a path with its directory passed as a file descriptor");
	if (path) {
		json_t *labels = json_object_get(args, "labels");
		json_t *how = NULL;
		struct vm_create_opts po = {.labels = json_is_object(labels) ? labels : NULL};
		want_progress(sink, &po);
		if (ttl && (r = vm_parse_duration(ttl, &po.ttl_ns, err)) < 0)
			return r;
		if (quota && (r = vm_parse_size(quota, &po.quota_bytes, err)) < 0)
			return r;
		po.quota_set = quota != NULL;
		r = vm_volume_create_from_fd(m, name, fd, path, &po, c, &how, err);
		if (r < 0)
			return r;
		r = vm_volume_get(m, name, true, ret, err);
		if (r == 0)
			json_object_set_new(*ret, "created_by", how);
		else
			json_decref(how);
		return r;
	}
	struct vm_create_opts o = {0};
	want_progress(sink, &o);
	if ((r = vm_source_parse(source, &o.source, err)) < 0)
		return r;
	if (ttl && (r = vm_parse_duration(ttl, &o.ttl_ns, err)) < 0)
		return r;
	if (quota && (r = vm_parse_size(quota, &o.quota_bytes, err)) < 0)
		return r;
	o.quota_set = quota != NULL;
	json_t *labels = json_object_get(args, "labels");
	if ((r = vm_labels_check(labels, err)) < 0)
		return r;
	o.labels = json_is_object(labels) ? labels : NULL;
	if ((r = vm_volume_create(m, name, &o, c, err)) < 0)
		return r;
	return vm_volume_get(m, name, true, ret, err);
}

static int op_name(json_t *args, const char **name, struct vm_error *err)
{
	int r = args_only(args, ARGS("name"), err);
	return r < 0 ? r : arg_string(args, "name", true, name, err);
}

json_t *vm_control_handle(struct vm_manager *m, const struct vm_caller *caller,
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
	const char *op;
	json_t *args = NULL;
	int progress = 0;
	if (json_unpack_ex(req, &jerr, JSON_STRICT, "{s:s, s?o, s?b}", "op", &op, "args",
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

	json_t *result = NULL;
	const char *name = NULL;
	int r;
	if (!progress)
		sink = NULL;
	/* Callers that are not root (the socket's group, --control-group)
	 * may use volumes; caches and gc are the administrator's. */
	static const char *const root_only[] = {"cache.import", "cache.create", "cache.update",
						"cache.remove", "gc"};
	for (size_t k = 0; caller && caller->uid != 0 && k < ELEMENTSOF(root_only); k++)
		if (strcmp(op, root_only[k]) == 0) {
			vm_error_set(&err, EPERM, "%s is for root only", op);
			vm_metrics_request("control", root_only[k], EPERM);
			return reply_err(&err);
		}
	if (strcmp(op, "ping") == 0) {
		r = args_only(args, NOARGS, &err);
		if (r == 0) {
			const struct vm_pool *p = vm_manager_pool(m);
			result = json_pack("{s:s, s:s, s:s, s:s}", "version", VOLMGR_VERSION,
					   "pool", p->path, "fstype", p->fstype,
					   "backend", vm_backend_name(vm_manager_backend(m)->kind));
		}
	} else if (strcmp(op, "status") == 0) {
		r = args_only(args, NOARGS, &err);
		if (r == 0)
			r = vm_manager_status(m, &result, &err);
	} else if (strcmp(op, "volume.create") == 0) {
		r = op_volume_create(m, caller, args, fd, sink, &result, &err);
	} else if (strcmp(op, "volume.which") == 0) {
		r = args_only(args, NOARGS, &err);
		if (r == 0 && fd < 0)
			r = vm_error_set(&err, EINVAL, "volume.which needs the directory passed as a file descriptor");
		if (r == 0)
			r = vm_volume_which(m, fd, &result, &err);
		json_t *mount = NULL;
		struct vm_error merr = {0};
		/* Where the caller has it mounted: informative, best effort. */
		if (r == 0 && vm_caller_mount_of_fd(caller, vm_manager_proc(m), fd, &mount, &merr) == 0) {
			/* Is the volume's top what is mounted there?  Then an
			 * engine can mount the volume by name at the same
			 * place (volmgr-run does). */
			char top[PATH_MAX];
			snprintf(top, sizeof(top), "%s/%s", vm_manager_volumes_fs_path(m),
				 json_string_value(json_object_get(result, "volume")));
			json_object_set_new(mount, "volume_top",
					    json_boolean(strcmp(json_string_value(json_object_get(mount, "root")),
								top) == 0));
			json_object_set_new(result, "mount", mount);
		}
	} else if (strcmp(op, "volume.list") == 0) {
		r = args_only(args, NOARGS, &err);
		if (r == 0)
			r = vm_volume_list(m, true, &result, &err);
	} else if (strcmp(op, "volume.inspect") == 0) {
		if ((r = op_name(args, &name, &err)) == 0)
			r = vm_volume_get(m, name, true, &result, &err);
	} else if (strcmp(op, "volume.remove") == 0) {
		if ((r = op_name(args, &name, &err)) == 0)
			r = vm_volume_remove_as(m, name, caller, &err);
	} else if (strcmp(op, "cache.import") == 0) {
		if ((r = op_name(args, &name, &err)) == 0) {
			if (fd < 0)
				r = vm_error_set(&err, EINVAL,
						 "cache.import needs the source directory passed as a file descriptor");
			else {
				struct vm_create_opts o = {0};
				want_progress(sink, &o);
				r = vm_cache_import(m, name, fd, &o, caller, &result, &err);
			}
		}
	} else if (strcmp(op, "cache.create") == 0) {
		const char *url = NULL, *branch = NULL;
		if ((r = args_only(args, ARGS("name", "git", "branch"), &err)) == 0 &&
		    (r = arg_string(args, "name", true, &name, &err)) == 0 &&
		    (r = arg_string(args, "git", true, &url, &err)) == 0 &&
		    (r = arg_string(args, "branch", false, &branch, &err)) == 0)
			r = vm_cache_create_git(m, name, url, branch, caller, &result, &err);
	} else if (strcmp(op, "cache.update") == 0) {
		if ((r = op_name(args, &name, &err)) == 0)
			r = vm_cache_update(m, name, &result, &err);
	} else if (strcmp(op, "gc") == 0) {
		json_t *dry = json_object_get(args, "dry_run");
		json_t *labels = json_object_get(args, "labels");
		if ((r = args_only(args, ARGS("dry_run", "labels"), &err)) == 0 &&
		    dry && !json_is_boolean(dry))
			r = vm_error_set(&err, EINVAL, "dry_run must be true or false");
		if (r == 0)
			r = vm_labels_check(labels, &err);
		if (r == 0)
			r = vm_gc(m, json_is_true(dry), json_is_object(labels) ? labels : NULL,
				  &result, &err);
	} else if (strcmp(op, "metrics") == 0) {
		r = args_only(args, NOARGS, &err);
		_cleanup_json_ json_t *vols = NULL, *caches = NULL;
		if (r == 0)
			r = vm_volume_list(m, true, &vols, &err);
		if (r == 0)
			r = vm_cache_list(m, &caches, &err);
		if (r == 0) {
			uint64_t in_use = 0, excl = 0, ref = 0;
			size_t k;
			json_t *v;
			json_array_foreach(vols, k, v) {
				in_use += json_is_true(json_object_get(v, "in_use"));
				json_t *u = json_object_get(v, "usage");
				excl += (uint64_t)json_integer_value(json_object_get(u, "exclusive"));
				ref += (uint64_t)json_integer_value(json_object_get(u, "referenced"));
			}
			char *text = vm_metrics_render(json_array_size(vols), json_array_size(caches),
						       in_use, excl, ref);
			result = text ? json_string(text) : NULL;
			free(text);
			if (!result)
				r = vm_error_set(&err, ENOMEM, "out of memory");
		}
	} else if (strcmp(op, "cache.list") == 0) {
		r = args_only(args, NOARGS, &err);
		if (r == 0)
			r = vm_cache_list(m, &result, &err);
	} else if (strcmp(op, "cache.inspect") == 0) {
		if ((r = op_name(args, &name, &err)) == 0)
			r = vm_cache_get(m, name, &result, &err);
	} else if (strcmp(op, "cache.remove") == 0) {
		if ((r = op_name(args, &name, &err)) == 0)
			r = vm_cache_remove(m, name, &err);
	} else {
		r = vm_error_set(&err, EINVAL, "unknown operation \"%.64s\"", op);
	}
	/* Count by operation, from the closed set handled above. */
	static const char *const known[] = {"ping", "status", "volume.create", "volume.which", "volume.list",
					    "volume.inspect", "volume.remove", "cache.import",
					    "cache.create", "cache.update", "cache.list",
					    "cache.inspect", "cache.remove", "gc", "metrics"};
	const char *what = "unknown";
	for (size_t k = 0; k < ELEMENTSOF(known); k++)
		if (strcmp(op, known[k]) == 0)
			what = known[k];
	vm_metrics_request("control", what, r < 0 ? err.code : 0);
	if (r < 0) {
		json_decref(result);
		return reply_err(&err);
	}
	return reply_ok(result);
}
