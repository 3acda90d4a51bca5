/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "plugin.h"

#include "json-util.h"
#include "metrics.h"

#include <strings.h>
#include <string.h>

enum endpoint {
	EP_ACTIVATE,
	EP_CAPABILITIES,
	EP_CREATE,
	EP_REMOVE,
	EP_MOUNT,
	EP_UNMOUNT,
	EP_PATH,
	EP_GET,
	EP_LIST,
};

static const struct {
	const char *path;
	enum endpoint ep;
	const char *const *fields; /* the request's known keys */
} endpoints[] = {
	{"/Plugin.Activate", EP_ACTIVATE, (const char *const[]){NULL}},
	{"/VolumeDriver.Capabilities", EP_CAPABILITIES, (const char *const[]){NULL}},
	{"/VolumeDriver.Create", EP_CREATE, (const char *const[]){"Name", "Opts", NULL}},
	{"/VolumeDriver.Remove", EP_REMOVE, (const char *const[]){"Name", NULL}},
	{"/VolumeDriver.Mount", EP_MOUNT, (const char *const[]){"Name", "ID", NULL}},
	{"/VolumeDriver.Unmount", EP_UNMOUNT, (const char *const[]){"Name", "ID", NULL}},
	{"/VolumeDriver.Path", EP_PATH, (const char *const[]){"Name", NULL}},
	{"/VolumeDriver.Get", EP_GET, (const char *const[]){"Name", NULL}},
	{"/VolumeDriver.List", EP_LIST, (const char *const[]){NULL}},
};

static char *dump(json_t *j)
{
	return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
}

static int reply_error(char **ret, int status, const char *msg)
{
	char clean[512];
	snprintf(clean, sizeof(clean), "%s", msg);
	vm_utf8_sanitize(clean);
	_cleanup_json_ json_t *j = json_pack("{s:s}", "Err", clean);
	*ret = j ? dump(j) : NULL;
	return status;
}

/* Parse the body: an object, or nothing/null where no field is needed.
 * Keys are matched exactly, as Docker sends them; a key that differs from
 * a known one only in case is refused rather than silently ignored, and
 * unknown keys are ignored for forward compatibility. */
static int parse_body(const char *body, size_t len, const char *const *fields,
		      json_t **ret, char *msg, size_t msgsz)
{
	size_t i = 0;
	while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' ||
			   body[i] == '\n'))
		i++;
	if (i == len) {
		*ret = json_object();
		return 0;
	}
	json_error_t jerr;
	json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!j) {
		snprintf(msg, msgsz, "invalid JSON request: %s", jerr.text);
		return -EINVAL;
	}
	if (json_is_null(j)) {
		json_decref(j);
		*ret = json_object();
		return 0;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		snprintf(msg, msgsz, "request body must be a JSON object");
		return -EINVAL;
	}
	const char *key;
	json_t *v;
	json_object_foreach(j, key, v) {
		for (const char *const *f = fields; *f; f++)
			if (strcasecmp(key, *f) == 0 && strcmp(key, *f) != 0) {
				snprintf(msg, msgsz, "unexpected key \"%.32s\" (did you mean \"%s\"?)",
					 key, *f);
				json_decref(j);
				return -EINVAL;
			}
	}
	*ret = j;
	return 0;
}

static const char *get_string(json_t *req, const char *key, char *msg, size_t msgsz)
{
	json_t *v = json_object_get(req, key);
	if (!v) {
		snprintf(msg, msgsz, "missing \"%s\"", key);
		return NULL;
	}
	if (!json_is_string(v)) {
		snprintf(msg, msgsz, "\"%s\" must be a string", key);
		return NULL;
	}
	/* jansson allows NUL inside strings; a name must not have one. */
	if (strlen(json_string_value(v)) != json_string_length(v)) {
		snprintf(msg, msgsz, "\"%s\" contains a NUL character", key);
		return NULL;
	}
	return json_string_value(v);
}

/* A volume as Docker's Get and List show it: the source, if any, as its
 * Status. */
static json_t *docker_volume(const struct vm_volume_info *info)
{
	char created[40], src[VM_SOURCE_STR_MAX];
	vm_format_time(info->created_ns, created);
	vm_source_format(&info->source, src);
	json_t *v = json_pack("{s:s, s:s, s:s}", "Name", info->name, "Mountpoint",
			      info->mountpoint, "CreatedAt", created);
	if (v && src[0])
		json_object_set_new(v, "Status", json_pack("{s:s}", "source", src));
	return v;
}

static int handle(const struct vm_plugin_ops *ops, void *ctx,
		  const struct vm_caller *caller, enum endpoint ep, json_t *req,
		  json_t **ret, struct vm_error *err)
{
	char msg[256] = "";
	const char *name = NULL, *id = NULL;
	int r;

	if (ep >= EP_CREATE && ep <= EP_GET) {
		name = get_string(req, "Name", msg, sizeof(msg));
		if (!name)
			return vm_error_set(err, EINVAL, "%s", msg);
		r = vm_name_check("volume", name, err);
		if (r < 0)
			return r;
	}
	if (ep == EP_MOUNT || ep == EP_UNMOUNT) {
		id = get_string(req, "ID", msg, sizeof(msg));
		if (!id)
			return vm_error_set(err, EINVAL, "%s", msg);
	}

	switch (ep) {
	case EP_ACTIVATE:
		*ret = json_pack("{s:[s]}", "Implements", "VolumeDriver");
		return 0;
	case EP_CAPABILITIES:
		*ret = json_pack("{s:{s:s}}", "Capabilities", "Scope", "local");
		return 0;
	case EP_CREATE: {
		struct vm_create_opts o = {0};
		r = vm_create_opts_from_plugin(json_object_get(req, "Opts"), &o, err);
		if (r == 0)
			r = ops->create(ctx, name, &o, caller, err);
		vm_create_opts_done(&o);
		if (r < 0)
			return r;
		*ret = json_object();
		return 0;
	}
	case EP_REMOVE:
		if ((r = ops->remove(ctx, name, caller, err)) < 0)
			return r;
		*ret = json_object();
		return 0;
	case EP_MOUNT:
	case EP_PATH: {
		_cleanup_free_ char *path = NULL;
		if (ep == EP_MOUNT) {
			r = ops->mount(ctx, name, id, &path, err);
		} else {
			_cleanup_(vm_volume_info_done) struct vm_volume_info info = {0};
			r = ops->get(ctx, name, &info, err);
			if (r == 0 && !(path = strdup(info.mountpoint)))
				r = vm_error_set(err, ENOMEM, "out of memory");
		}
		if (r < 0)
			return r;
		*ret = json_pack("{s:s}", "Mountpoint", path ? path : "");
		return 0;
	}
	case EP_UNMOUNT:
		/* A volume that is gone has nothing left to unmount: say so
		 * with success, or podman keeps its own record of the volume
		 * and `podman volume rm -f` fails until `volume reload`. */
		r = ops->unmount(ctx, name, id, err);
		if (r == -ENOENT && err) {
			*err = (struct vm_error){0};
			r = 0;
		}
		if (r < 0)
			return r;
		*ret = json_object();
		return 0;
	case EP_GET: {
		_cleanup_(vm_volume_info_done) struct vm_volume_info info = {0};
		if ((r = ops->get(ctx, name, &info, err)) < 0)
			return r;
		*ret = json_pack("{s:o}", "Volume", docker_volume(&info));
		return 0;
	}
	case EP_LIST: {
		_cleanup_(vm_volume_info_list_done) struct vm_volume_info_list all = {0};
		if ((r = ops->list(ctx, &all, err)) < 0)
			return r;
		json_t *vols = json_array();
		for (size_t i = 0; i < all.n; i++)
			json_array_append_new(vols, docker_volume(&all.items[i]));
		*ret = json_pack("{s:o}", "Volumes", vols);
		return 0;
	}
	}
	return vm_error_set(err, ENOSYS, "unknown endpoint");
}

int vm_plugin_handle(const struct vm_plugin_ops *ops, void *ctx,
		     const struct vm_caller *caller, const char *method,
		     const char *path, const char *body, size_t len,
		     char **ret_body)
{
	size_t i;
	for (i = 0; i < ELEMENTSOF(endpoints); i++)
		if (strcmp(path, endpoints[i].path) == 0)
			break;
	if (i == ELEMENTSOF(endpoints)) {
		vm_metrics_request("plugin", "unknown", EINVAL);
		return reply_error(ret_body, 404, "unknown endpoint");
	}
	const char *ep_name = endpoints[i].path + 1;
	if (strcmp(method, "POST") != 0) {
		vm_metrics_request("plugin", ep_name, EINVAL);
		return reply_error(ret_body, 405, "method not allowed: use POST");
	}
	if (len > VM_PLUGIN_BODY_MAX) {
		vm_metrics_request("plugin", ep_name, EINVAL);
		return reply_error(ret_body, 413, "request body too large");
	}

	char msg[256];
	_cleanup_json_ json_t *req = NULL;
	if (parse_body(body, len, endpoints[i].fields, &req, msg, sizeof(msg)) < 0) {
		vm_metrics_request("plugin", ep_name, EINVAL);
		return reply_error(ret_body, 500, msg);
	}

	struct vm_error err = {0};
	_cleanup_json_ json_t *reply = NULL;
	int r = handle(ops, ctx, caller, endpoints[i].ep, req, &reply, &err);
	vm_metrics_request("plugin", ep_name, r < 0 ? err.code : 0);
	if (r < 0)
		return reply_error(ret_body, 500, err.msg[0] ? err.msg : strerror(err.code));
	if (!reply)
		return reply_error(ret_body, 500, "out of memory");
	/* Docker's examples carry "Err": "" on success; Activate and
	 * Capabilities have no Err field. */
	if (endpoints[i].ep != EP_ACTIVATE && endpoints[i].ep != EP_CAPABILITIES)
		json_object_set_new(reply, "Err", json_string(""));
	*ret_body = dump(reply);
	return 200;
}
