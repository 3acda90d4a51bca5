/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Docker volume plugin protocol: vm_plugin_handle with a fake
 * in-memory volume manager behind the ops (the real one needs a btrfs
 * pool).  The HTTP framing is libmicrohttpd's; what volmgrd's httpd.c
 * passes on for a body over the limit (an empty buffer with a length past
 * VM_PLUGIN_BODY_MAX) is emulated here.
 *
 * Input: requests separated by the byte 0x1e (ASCII RS, which no JSON
 * text holds outside a string, and not inside one either), run in order
 * against one fake, so that a volume can be created, mounted, listed and
 * removed within one input.  Each request is "METHOD /Path\nBODY", like the
 * fixtures in tests/fixtures/plugin; the body is passed byte for byte.  A
 * method prefixed with '+' sends, as httpd.c does for an oversized body,
 * "" with a length of VM_PLUGIN_BODY_MAX + 1 + the body's length; one
 * prefixed with '=' pads the body with spaces to exactly
 * VM_PLUGIN_BODY_MAX bytes.
 *
 * Checks:
 *  - the ops are only called with names that pass vm_name_check, and
 *    with the caller given;
 *  - a body over VM_PLUGIN_BODY_MAX gets 413 without calling the ops
 *    (and without reading the body);
 *  - an unknown path gets 404, another method than POST 405;
 *  - every reply is a JSON object; any status other than 200 carries
 *    exactly {"Err": non-empty string}; 200 carries "Err": "" (except
 *    Activate and Capabilities) and the endpoint's fields;
 *  - a 200 to a request naming a volume called the ops with that name. */
#include <errno.h>
#include <strings.h>

#include "fuzz.h"

#include "plugin.h"
#include "record.h"

#define FAKE_POOL "/pool/volumes/"
#define FAKE_CREATED "2026-01-01T00:00:00.000000000Z"
#define FAKE_VOLUMES_MAX 64
#define REQUESTS_MAX 64

struct fake {
	json_t *vols; /* name -> {"source": "cache:x" | "", "ids": {id: true}} */
	unsigned calls;
	char last_name[VM_NAME_MAX + 1];
	const struct vm_caller *caller;
};

static void fake_enter(struct fake *f, const char *name)
{
	f->calls++;
	FUZZ_CHECK(name && vm_name_check("volume", name, NULL) == 0,
		   "the handler passed an unchecked name to the manager: %s", fuzz_show(name));
	snprintf(f->last_name, sizeof(f->last_name), "%s", name);
}

/* Errors a manager may give, with and without a message of its own. */
static int fake_fail(const char *name, struct vm_error *err)
{
	if (strncmp(name, "eio", 3) == 0)
		return vm_error_set(err, EIO, "%s", "");
	if (strncmp(name, "eperm", 5) == 0)
		return vm_error_set(err, EPERM, "not allowed: %s \xff\x01\"\\ %s", name, name);
	return 0;
}

static json_t *fake_find(struct fake *f, const char *name, struct vm_error *err)
{
	json_t *v = json_object_get(f->vols, name);
	if (!v)
		vm_error_set(err, ENOENT, "no such volume: %s", name);
	return v;
}

static int fake_create(void *ctx, const char *name, const struct vm_create_opts *o,
		       const struct vm_caller *caller, struct vm_error *err)
{
	struct fake *f = ctx;
	fake_enter(f, name);
	FUZZ_CHECK(caller == f->caller, "create: not the caller given");
	FUZZ_CHECK(o && !o->labels, "create: options");
	FUZZ_CHECK(o->source.kind == VM_SOURCE_NONE || o->source.kind == VM_SOURCE_CACHE ||
			   o->source.kind == VM_SOURCE_VOLUME,
		   "create: source kind %d from a plugin request", (int)o->source.kind);
	if (o->source.kind != VM_SOURCE_NONE)
		FUZZ_CHECK(vm_name_check("volume", o->source.name, NULL) == 0,
			   "create: unchecked source name %s", fuzz_show(o->source.name));
	FUZZ_CHECK(o->ttl_ns == 0 || o->ttl_ns >= 1000000000LL, "create: ttl %lld",
		   (long long)o->ttl_ns);
	FUZZ_CHECK(o->quota_bytes <= VM_SIZE_MAX, "create: quota");
	int r = fake_fail(name, err);
	if (r < 0)
		return r;
	if (json_object_get(f->vols, name))
		return vm_error_set(err, EEXIST, "volume %s already exists", name);
	if (json_object_size(f->vols) >= FAKE_VOLUMES_MAX)
		return vm_error_set(err, ENOSPC, "too many volumes");
	if (o->source.kind == VM_SOURCE_CACHE && strcmp(o->source.name, "proj") != 0)
		return vm_error_set(err, ENOENT, "no such cache: %s", o->source.name);
	if (o->source.kind == VM_SOURCE_VOLUME && !fake_find(f, o->source.name, err))
		return -ENOENT;
	char src[VM_SOURCE_STR_MAX];
	vm_source_format(&o->source, src);
	json_object_set_new(f->vols, name, json_pack("{s:s, s:{}}", "source", src, "ids"));
	return 0;
}

static int fake_remove(void *ctx, const char *name, const struct vm_caller *caller,
		       struct vm_error *err)
{
	struct fake *f = ctx;
	fake_enter(f, name);
	int r = fake_fail(name, err);
	if (r < 0)
		return r;
	json_t *v = fake_find(f, name, err);
	if (!v)
		return -ENOENT;
	if (json_object_size(json_object_get(v, "ids")) > 0)
		return vm_error_set(err, EBUSY, "volume %s is in use", name);
	json_object_del(f->vols, name);
	return 0;
}

static char *fake_path(const char *name)
{
	size_t n = strlen(FAKE_POOL) + strlen(name) + 1;
	char *p = fuzz_xmalloc(n);
	snprintf(p, n, FAKE_POOL "%s", name);
	return p;
}

static int fake_mount(void *ctx, const char *name, const char *id, char **ret_path,
		      struct vm_error *err)
{
	struct fake *f = ctx;
	fake_enter(f, name);
	FUZZ_CHECK(id, "mount without an ID");
	int r = vm_mount_id_check(id, err);
	if (r < 0 || (r = fake_fail(name, err)) < 0)
		return r;
	json_t *v = fake_find(f, name, err);
	if (!v)
		return -ENOENT;
	json_t *ids = json_object_get(v, "ids");
	if (json_object_size(ids) >= VM_MOUNTS_MAX && !json_object_get(ids, id))
		return vm_error_set(err, EMFILE, "too many mounts");
	json_object_set_new(ids, id, json_true());
	*ret_path = fake_path(name);
	return 0;
}

static int fake_unmount(void *ctx, const char *name, const char *id, struct vm_error *err)
{
	struct fake *f = ctx;
	fake_enter(f, name);
	FUZZ_CHECK(id, "unmount without an ID");
	int r = vm_mount_id_check(id, err);
	if (r < 0 || (r = fake_fail(name, err)) < 0)
		return r;
	json_t *v = fake_find(f, name, err);
	if (!v)
		return -ENOENT;
	json_object_del(json_object_get(v, "ids"), id);
	return 0;
}

/* An info like vm_volume_get()'s, with fields the plugin must not pass
 * on to Docker (mounts, creator, labels, in_use...). */
static void fake_info(const char *name, json_t *v, struct vm_volume_info *ret)
{
	*ret = (struct vm_volume_info){
		.created_ns = 1767225600000000000LL, /* FAKE_CREATED */
		.labels = json_object(),
		.mountpoint = fake_path(name),
		.creator_pid = 1,
		.subvol_id = 256,
	};
	FUZZ_CHECK(ret->labels, "fake info");
	snprintf(ret->name, sizeof(ret->name), "%s", name);
	FUZZ_CHECK(vm_source_parse_recorded(json_string_value(json_object_get(v, "source")),
					    &ret->source, NULL) == 0,
		   "fake info: source");
	json_t *ids = json_object_get(v, "ids");
	ret->mounts = fuzz_xmalloc((json_object_size(ids) + 1) * sizeof(*ret->mounts));
	const char *id;
	json_t *x;
	json_object_foreach(ids, id, x) {
		struct vm_mount_info *m = &ret->mounts[ret->n_mounts++];
		snprintf(m->id, sizeof(m->id), "%s", id);
		m->since_ns = ret->created_ns;
		m->count = 1;
	}
	ret->in_use = ret->n_mounts > 0;
}

static int fake_get(void *ctx, const char *name, struct vm_volume_info *ret,
		    struct vm_error *err)
{
	struct fake *f = ctx;
	fake_enter(f, name);
	int r = fake_fail(name, err);
	if (r < 0)
		return r;
	json_t *v = fake_find(f, name, err);
	if (!v)
		return -ENOENT;
	fake_info(name, v, ret);
	return 0;
}

static int fake_list(void *ctx, struct vm_volume_info_list *ret, struct vm_error *err)
{
	struct fake *f = ctx;
	f->calls++;
	size_t n = json_object_size(f->vols);
	struct vm_volume_info_list all = {.items = fuzz_xmalloc((n + 1) * sizeof(*all.items))};
	const char *name;
	json_t *v;
	json_object_foreach(f->vols, name, v)
		fake_info(name, v, &all.items[all.n++]);
	*ret = all;
	return 0;
}

static const struct vm_plugin_ops fake_ops = {
	.create = fake_create,
	.remove = fake_remove,
	.mount = fake_mount,
	.unmount = fake_unmount,
	.get = fake_get,
	.list = fake_list,
};

/* ---- one request ---- */

static const char *const endpoints[] = {
	"/Plugin.Activate",     "/VolumeDriver.Capabilities", "/VolumeDriver.Create",
	"/VolumeDriver.Remove", "/VolumeDriver.Mount",        "/VolumeDriver.Unmount",
	"/VolumeDriver.Path",   "/VolumeDriver.Get",          "/VolumeDriver.List",
};
enum { E_ACTIVATE, E_CAPABILITIES, E_CREATE, E_REMOVE, E_MOUNT, E_UNMOUNT, E_PATH, E_GET, E_LIST };

static bool only_keys(json_t *obj, const char *a, const char *b)
{
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v)
		if (strcmp(key, a) != 0 && (!b || strcmp(key, b) != 0))
			return false;
	return true;
}

/* The body as the handler should see it: an object, or nothing, or null. */
static json_t *body_object(const char *body, size_t len)
{
	json_error_t jerr;
	json_t *j = json_loadb(body, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if (j && json_is_object(j))
		return j;
	json_decref(j);
	return NULL;
}

static void one_request(struct fake *f, const char *method, const char *path,
			const char *body, size_t len, const char *shown)
{
	static const struct vm_caller caller = {.uid = 1000, .gid = 1000, .pid = 4242, .pidfd = -1};
	f->caller = &caller;
	f->last_name[0] = '\0';
	unsigned calls = f->calls;
	size_t nvols = json_object_size(f->vols);

	char *out = NULL;
	int status = vm_plugin_handle(&fake_ops, f, &caller, method, path, body, len, &out);

	FUZZ_CHECK(out, "%s: no reply body (status %d)", shown, status);
	json_error_t jerr;
	_cleanup_json_ json_t *reply = json_loads(out, JSON_REJECT_DUPLICATES, &jerr);
	FUZZ_CHECK(reply && json_is_object(reply), "%s: the reply is not a JSON object (%s): %s",
		   shown, jerr.text, out);

	int ep = -1;
	for (size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++)
		if (strcmp(path, endpoints[i]) == 0)
			ep = (int)i;
	int want = ep < 0 ? 404 : strcmp(method, "POST") != 0 ? 405 : len > VM_PLUGIN_BODY_MAX ? 413 : 0;
	if (want)
		FUZZ_CHECK(status == want, "%s: status %d, expected %d", shown, status, want);
	else
		FUZZ_CHECK(status == 200 || status == 500, "%s: status %d", shown, status);
	if (want || (ep == E_ACTIVATE || ep == E_CAPABILITIES))
		FUZZ_CHECK(f->calls == calls, "%s: the manager was asked", shown);

	json_t *e = json_object_get(reply, "Err");
	if (status != 200) {
		FUZZ_CHECK(json_object_size(reply) == 1 && json_is_string(e) &&
				   json_string_length(e) > 0,
			   "%s: error reply is not {\"Err\": message}: %s", shown, out);
		FUZZ_CHECK(json_object_size(f->vols) == nvols || f->calls > calls,
			   "%s: state changed", shown);
		free(out);
		return;
	}

	/* 200: the endpoint's own fields */
	if (ep == E_ACTIVATE) {
		json_t *impl = json_object_get(reply, "Implements");
		FUZZ_CHECK(json_object_size(reply) == 1 && json_array_size(impl) == 1 &&
				   strcmp(json_string_value(json_array_get(impl, 0)) ?: "", "VolumeDriver") == 0,
			   "%s: %s", shown, out);
	} else if (ep == E_CAPABILITIES) {
		json_t *cap = json_object_get(reply, "Capabilities");
		FUZZ_CHECK(json_object_size(reply) == 1 &&
				   strcmp(json_string_value(json_object_get(cap, "Scope")) ?: "", "local") == 0,
			   "%s: %s", shown, out);
	} else {
		FUZZ_CHECK(json_is_string(e) && json_string_length(e) == 0,
			   "%s: 200 without \"Err\": \"\": %s", shown, out);
	}
	switch (ep) {
	case E_CREATE:
	case E_REMOVE:
	case E_UNMOUNT:
		FUZZ_CHECK(json_object_size(reply) == 1, "%s: %s", shown, out);
		break;
	case E_MOUNT:
	case E_PATH: {
		const char *mp = json_string_value(json_object_get(reply, "Mountpoint"));
		FUZZ_CHECK(only_keys(reply, "Mountpoint", "Err") && mp &&
				   strncmp(mp, FAKE_POOL, strlen(FAKE_POOL)) == 0 &&
				   strcmp(mp + strlen(FAKE_POOL), f->last_name) == 0,
			   "%s: %s", shown, out);
		break;
	}
	case E_GET: {
		json_t *v = json_object_get(reply, "Volume");
		FUZZ_CHECK(only_keys(reply, "Volume", "Err") &&
				   strcmp(json_string_value(json_object_get(v, "Name")) ?: "", f->last_name) == 0 &&
				   json_is_string(json_object_get(v, "Mountpoint")) &&
				   json_is_string(json_object_get(v, "CreatedAt")),
			   "%s: %s", shown, out);
		const char *k;
		json_t *x;
		json_object_foreach(v, k, x)
			FUZZ_CHECK(!strcmp(k, "Name") || !strcmp(k, "Mountpoint") ||
					   !strcmp(k, "CreatedAt") || !strcmp(k, "Status"),
				   "%s: Volume has %s: %s", shown, k, out);
		break;
	}
	case E_LIST: {
		json_t *vols = json_object_get(reply, "Volumes");
		FUZZ_CHECK(only_keys(reply, "Volumes", "Err") && json_is_array(vols) &&
				   json_array_size(vols) == json_object_size(f->vols),
			   "%s: %s", shown, out);
		break;
	}
	}

	/* A 200 to a request naming a volume asked the manager about that
	 * name, the one in the body, which has no key that differs from a
	 * known one only in case. */
	if (ep >= E_CREATE && ep <= E_GET) {
		FUZZ_CHECK(f->calls == calls + 1, "%s: 200 after %u calls", shown, f->calls - calls);
		_cleanup_json_ json_t *req = body_object(body, len);
		const char *name = json_string_value(json_object_get(req, "Name"));
		FUZZ_CHECK(name && strcmp(name, f->last_name) == 0, "%s: the manager was asked about %s",
			   shown, fuzz_show(f->last_name));
		const char *key;
		json_t *v;
		json_object_foreach(req, key, v)
			FUZZ_CHECK(strcmp(key, "Name") == 0 || strcasecmp(key, "Name") != 0,
				   "%s: key %s accepted", shown, fuzz_show(key));
	}
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_init_once();
	struct fake f = {.vols = json_object()};
	FUZZ_CHECK(f.vols, "out of memory");

	const char *p = (const char *)data, *end = p + size;
	for (unsigned n = 0; p <= end && n < REQUESTS_MAX; n++) {
		const char *rs = memchr(p, 0x1e, (size_t)(end - p));
		const char *req_end = rs ? rs : end;
		const char *nl = memchr(p, '\n', (size_t)(req_end - p));
		const char *line_end = nl ? nl : req_end;
		const char *body = nl ? nl + 1 : req_end;
		size_t blen = (size_t)(req_end - body);

		/* "METHOD /Path": the method up to the first space */
		char *line = fuzz_strndup(p, (size_t)(line_end - p));
		char *sp = strchr(line, ' ');
		char *path = sp ? sp + 1 : line + strlen(line);
		if (sp)
			*sp = '\0';
		char *method = line;
		char mode = method[0] == '+' || method[0] == '=' ? *method++ : 0;

		if (mode == '+') {
			/* httpd.c past the limit: "" and a length over it */
			char *empty = fuzz_strndup("", 0);
			one_request(&f, method, path, empty, VM_PLUGIN_BODY_MAX + 1 + blen, line);
			free(empty);
		} else if (mode == '=' && blen <= VM_PLUGIN_BODY_MAX) {
			char *padded = fuzz_xmalloc(VM_PLUGIN_BODY_MAX);
			memcpy(padded, body, blen);
			memset(padded + blen, ' ', VM_PLUGIN_BODY_MAX - blen);
			one_request(&f, method, path, padded, VM_PLUGIN_BODY_MAX, line);
			free(padded);
		} else {
			/* exactly the body's bytes, in a buffer of their own */
			char *copy = fuzz_xmalloc(blen);
			memcpy(copy, body, blen);
			one_request(&f, method, path, copy, blen, line);
			free(copy);
		}
		free(line);
		if (!rs)
			break;
		p = rs + 1;
	}
	json_decref(f.vols);
	return 0;
}
