/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Docker volume plugin protocol, vm_plugin_handle(), checked against
 * paired fixture files in FIXTURES/plugin, with a fake in-memory volume
 * manager behind the ops.
 *
 *   NNN-description.request  first line "METHOD /Path", the rest the body
 *                            (possibly empty), sent byte for byte
 *   NNN-description.reply    first line the HTTP status, the rest the
 *                            expected JSON body; "Err": "*" stands for any
 *                            non-empty message
 *
 * The pairs run in sorted order against one fake, so that together they
 * tell a story (create, mount, refuse to remove, unmount, remove...).
 * The cases that need generated input (a body over 64 KiB, NUL bytes) are
 * written here, against fakes of their own.
 *
 * Usage: test-plugin FIXTURES-DIR */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "unit-util.h"

#include "plugin.h"
#include "record.h"

/* ---- the fake volume manager ---- */

#define FAKE_CREATED "2026-01-01T00:00:00.000000000Z"
#define FAKE_POOL "/pool/volumes/"

static const char *const fake_caches[] = {"proj"};

struct fake {
	json_t *vols; /* name -> {"source": "cache:x" | "", "ids": {id: true}} */
	unsigned calls;
	struct vm_caller last_caller;
};

static void fake_init(struct fake *f)
{
	*f = (struct fake){.vols = json_object()};
	assert_non_null(f->vols);
}

static void fake_done(struct fake *f)
{
	json_decref(f->vols);
	f->vols = NULL;
}

/* The handler must check names before it calls the manager. */
static void fake_enter(struct fake *f, const char *name)
{
	f->calls++;
	if (vm_name_check("volume", name, NULL) != 0)
		fail_msg("the handler passed an unchecked name to the manager: %.80s", name);
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
	if (caller)
		f->last_caller = *caller;
	if (json_object_get(f->vols, name))
		return vm_error_set(err, EEXIST, "volume %s already exists", name);
	assert_non_null(o);
	if (o->source.kind == VM_SOURCE_CACHE) {
		bool found = false;
		for (size_t i = 0; i < ELEMENTSOF(fake_caches); i++)
			found |= strcmp(o->source.name, fake_caches[i]) == 0;
		if (!found)
			return vm_error_set(err, ENOENT, "no such cache: %s", o->source.name);
	} else if (o->source.kind == VM_SOURCE_VOLUME) {
		if (!fake_find(f, o->source.name, err))
			return -ENOENT;
	}
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
	json_t *v = fake_find(f, name, err);
	if (!v)
		return -ENOENT;
	size_t held = json_object_size(json_object_get(v, "ids"));
	if (held > 0)
		return vm_error_set(err, EBUSY,
				    "volume %s is in use (%zu recorded engine mount(s))",
				    name, held);
	json_object_del(f->vols, name);
	return 0;
}

static char *fake_path(const char *name)
{
	char *p = NULL;
	if (asprintf(&p, FAKE_POOL "%s", name) < 0)
		return NULL;
	return p;
}

static int fake_mount(void *ctx, const char *name, const char *id, char **ret_path,
		      struct vm_error *err)
{
	struct fake *f = ctx;
	fake_enter(f, name);
	int r = vm_mount_id_check(id, err);
	if (r < 0)
		return r;
	json_t *v = fake_find(f, name, err);
	if (!v)
		return -ENOENT;
	char *p = fake_path(name);
	if (!p)
		return vm_error_set(err, ENOMEM, "out of memory");
	json_object_set_new(json_object_get(v, "ids"), id, json_true());
	*ret_path = p;
	return 0;
}

static int fake_unmount(void *ctx, const char *name, const char *id,
			struct vm_error *err)
{
	struct fake *f = ctx;
	fake_enter(f, name);
	int r = vm_mount_id_check(id, err);
	if (r < 0)
		return r;
	json_t *v = fake_find(f, name, err);
	if (!v)
		return -ENOENT;
	json_object_del(json_object_get(v, "ids"), id); /* unknown ID: fine */
	return 0;
}

/* An info like vm_volume_get()'s, with fields the plugin must not pass
 * on to Docker (mounts, creator, labels, in_use...). */
static int fake_info(const char *name, json_t *v, struct vm_volume_info *ret)
{
	*ret = (struct vm_volume_info){
		.created_ns = 1767225600000000000LL, /* FAKE_CREATED */
		.labels = json_pack("{s:s}", "job", "1"),
		.mountpoint = fake_path(name),
		.creator_uid = 0,
		.creator_pid = 1,
		.subvol_id = 256,
		.backend = VM_BACKEND_BTRFS,
	};
	snprintf(ret->name, sizeof(ret->name), "%s", name);
	assert_int_equal(vm_source_parse_recorded(json_string_value(json_object_get(v, "source")),
						  &ret->source, NULL), 0);
	json_t *ids = json_object_get(v, "ids");
	ret->mounts = calloc(json_object_size(ids) + 1, sizeof(*ret->mounts));
	assert_non_null(ret->mounts);
	const char *id;
	json_t *x;
	json_object_foreach(ids, id, x) {
		struct vm_mount_info *m = &ret->mounts[ret->n_mounts++];
		snprintf(m->id, sizeof(m->id), "%s", id);
		m->since_ns = ret->created_ns;
		m->count = 1;
	}
	ret->in_use = ret->n_mounts > 0;
	if (!ret->labels || !ret->mountpoint)
		return -ENOMEM;
	return 0;
}

static int fake_get(void *ctx, const char *name, struct vm_volume_info *ret,
		    struct vm_error *err)
{
	struct fake *f = ctx;
	fake_enter(f, name);
	json_t *v = fake_find(f, name, err);
	if (!v)
		return -ENOENT;
	if (fake_info(name, v, ret) < 0) {
		vm_volume_info_done(ret);
		return vm_error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

static int cmp_key(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int fake_list(void *ctx, struct vm_volume_info_list *ret, struct vm_error *err)
{
	struct fake *f = ctx;
	f->calls++;
	size_t n = json_object_size(f->vols), i = 0;
	const char **names = calloc(n ? n : 1, sizeof(*names));
	assert_non_null(names);
	const char *name;
	json_t *v;
	json_object_foreach(f->vols, name, v)
		names[i++] = name;
	qsort(names, n, sizeof(*names), cmp_key); /* sorted, as the manager does */
	struct vm_volume_info_list all = {.items = calloc(n ? n : 1, sizeof(*all.items))};
	assert_non_null(all.items);
	for (i = 0; i < n; i++, all.n++)
		assert_int_equal(fake_info(names[i], json_object_get(f->vols, names[i]),
					   &all.items[i]), 0);
	free(names);
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

static const struct vm_caller test_caller = {.uid = 1000, .pid = 4242};

/* ---- comparing replies ---- */

/* What every reply must be, whatever the request: a JSON object; on an
 * error exactly {"Err": non-empty}. */
static json_t *check_reply_shape(int status, const char *body, const char *what)
{
	if (!body)
		fail_msg("%s: no reply body (status %d)", what, status);
	json_error_t jerr;
	json_t *j = json_loads(body, JSON_REJECT_DUPLICATES, &jerr);
	if (!j)
		fail_msg("%s: reply is not JSON (%s): %s", what, jerr.text, body);
	if (!json_is_object(j))
		fail_msg("%s: reply is not an object: %s", what, body);
	if (status != 200 && status != 404 && status != 405 && status != 413 &&
	    status != 500)
		fail_msg("%s: unexpected status %d", what, status);
	if (status != 200) {
		json_t *e = json_object_get(j, "Err");
		if (json_object_size(j) != 1 || !json_is_string(e) ||
		    json_string_length(e) == 0)
			fail_msg("%s: error reply is not {\"Err\": message}: %s", what, body);
	}
	return j;
}

/* ---- the fixture pairs ---- */

static void test_pair(void **state)
{
	const struct ut_pair *p = *state;
	size_t rlen;
	char *req = ut_read_file(p->request, &rlen);
	if (!req)
		fail_msg("cannot read %s: %s", p->request, strerror(errno));
	char *nl = memchr(req, '\n', rlen);
	char *body = nl ? nl + 1 : req + rlen;
	size_t blen = rlen - (size_t)(body - req);
	if (nl)
		*nl = '\0';
	char *sp = strchr(req, ' ');
	if (!sp || sp == req || sp[1] != '/')
		fail_msg("%s: the first line must be \"METHOD /Path\"", p->request);
	*sp = '\0';
	const char *method = req, *path = sp + 1;

	size_t wlen;
	char *want_text = ut_read_file(p->reply, &wlen);
	if (!want_text)
		fail_msg("cannot read %s: %s", p->reply, strerror(errno));
	char *end;
	errno = 0;
	long want_status = strtol(want_text, &end, 10);
	if (errno || end == want_text || *end != '\n')
		fail_msg("%s: the first line must be the HTTP status", p->reply);
	json_error_t jerr;
	json_t *want = json_loads(end + 1, JSON_REJECT_DUPLICATES, &jerr);
	if (!want)
		fail_msg("%s: bad JSON: %s (line %d)", p->reply, jerr.text, jerr.line + 1);

	char *out = NULL;
	int status = vm_plugin_handle(&fake_ops, p->state, &test_caller, method, path,
				      body, blen, &out);
	json_t *got = check_reply_shape(status, out, p->name);
	char where[256] = "";
	if (status != want_status || !ut_json_matches(want, got, where, sizeof(where)))
		fail_msg("%s: %s %s\n  got:      %d %s\n  expected: %ld %s\n  %s",
			 p->name, method, path, status, out, want_status,
			 json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS), where);
	json_decref(got);
	json_decref(want);
	free(out);
	free(want_text);
	free(req);
}

/* ---- generated cases ---- */

struct call {
	int status;
	json_t *reply;
};

static struct call call(struct fake *f, const char *method, const char *path,
			const char *body, size_t len)
{
	char *out = NULL;
	struct call c;
	c.status = vm_plugin_handle(&fake_ops, f, &test_caller, method, path, body, len, &out);
	c.reply = check_reply_shape(c.status, out, path);
	free(out);
	return c;
}

static const char *err_of(const struct call *c)
{
	return json_string_value(json_object_get(c->reply, "Err"));
}

/* A body of VM_PLUGIN_BODY_MAX + 1 bytes is refused before it is parsed
 * (and before the manager is asked); one of exactly the limit is read. */
static void test_body_limit(void **state)
{
	struct fake f;
	fake_init(&f);
	size_t big = VM_PLUGIN_BODY_MAX + 1;
	char *body = ut_repeat(' ', big);
	static const char req[] = "{\"Name\": \"big-1\"}";
	memcpy(body, req, sizeof(req) - 1);

	struct call c = call(&f, "POST", "/VolumeDriver.Create", body, big);
	assert_int_equal(c.status, 413);
	assert_true(err_of(&c)[0] != '\0');
	assert_int_equal(f.calls, 0);
	json_decref(c.reply);

	/* 16 MiB: the same */
	char *huge = ut_repeat(' ', 16 << 20);
	memcpy(huge, req, sizeof(req) - 1);
	c = call(&f, "POST", "/VolumeDriver.Create", huge, 16 << 20);
	assert_int_equal(c.status, 413);
	json_decref(c.reply);
	free(huge);

	/* the endpoint and the method are checked first */
	c = call(&f, "POST", "/VolumeDriver.Nope", body, big);
	assert_int_equal(c.status, 404);
	json_decref(c.reply);
	c = call(&f, "GET", "/VolumeDriver.Create", body, big);
	assert_int_equal(c.status, 405);
	json_decref(c.reply);

	/* exactly the limit: read, and the volume is made */
	c = call(&f, "POST", "/VolumeDriver.Create", body, big - 1);
	assert_int_equal(c.status, 200);
	assert_string_equal(err_of(&c), "");
	json_decref(c.reply);
	assert_non_null(json_object_get(f.vols, "big-1"));

	/* a large but valid body: a 60000-character option value */
	free(body);
	char *val = ut_repeat('x', 60000);
	json_t *j = json_pack("{s:s, s:{s:s}}", "Name", "big-2", "Opts", "source", val);
	body = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	free(val);
	c = call(&f, "POST", "/VolumeDriver.Create", body, strlen(body));
	assert_int_equal(c.status, 500);
	json_decref(c.reply);
	assert_null(json_object_get(f.vols, "big-2"));
	free(body);
	fake_done(&f);
}

/* NUL bytes: raw inside the JSON, escaped in a string, or after the JSON
 * within the given length. */
static void test_body_nul(void **state)
{
	struct fake f;
	fake_init(&f);
	static const char raw[] = "{\"Name\": \"ci-1\0/../x\"}";
	struct call c = call(&f, "POST", "/VolumeDriver.Create", raw, sizeof(raw) - 1);
	assert_int_equal(c.status, 500);
	json_decref(c.reply);

	static const char esc[] = "{\"Name\": \"ci-1\\u0000/../x\"}";
	c = call(&f, "POST", "/VolumeDriver.Create", esc, sizeof(esc) - 1);
	assert_int_equal(c.status, 500);
	json_decref(c.reply);

	static const char after[] = "{\"Name\": \"ci-1\"}\0{\"Name\": \"ci-2\"}";
	c = call(&f, "POST", "/VolumeDriver.Create", after, sizeof(after) - 1);
	assert_int_equal(c.status, 500);
	json_decref(c.reply);

	static const char key[] = "{\"Name\": \"ci-1\", \"Opts\": {\"so\\u0000urce\": \"x\"}}";
	c = call(&f, "POST", "/VolumeDriver.Create", key, sizeof(key) - 1);
	assert_int_equal(c.status, 500);
	json_decref(c.reply);

	assert_int_equal(f.calls, 0);
	assert_int_equal(json_object_size(f.vols), 0);

	/* the length is what counts, not a terminating NUL: bytes past it
	 * are not read */
	static const char past[] = "{\"Name\": \"ci-1\"}garbage";
	c = call(&f, "POST", "/VolumeDriver.Create", past, sizeof(past) - 1 - 7);
	assert_int_equal(c.status, 200);
	json_decref(c.reply);
	assert_non_null(json_object_get(f.vols, "ci-1"));
	fake_done(&f);
}

/* Hostile bodies against every endpoint: always a JSON reply of the right
 * shape, and no unchecked name reaches the manager (fake_enter). */
static void test_hostile_bodies(void **state)
{
	static const char *const paths[] = {
		"/Plugin.Activate", "/VolumeDriver.Capabilities", "/VolumeDriver.Create",
		"/VolumeDriver.Remove", "/VolumeDriver.Mount", "/VolumeDriver.Unmount",
		"/VolumeDriver.Path", "/VolumeDriver.Get", "/VolumeDriver.List",
	};
	static const char *const bodies[] = {
		"", "null", "{}", "[]", "1", "\"x\"", "true", "{", "}", "{\"Name\"",
		"{\"Name\": null}", "{\"Name\": \"ab\"}", "{\"Name\": \"ab\", \"ID\": \"\"}",
		"{\"Name\": \"ab\", \"ID\": \"a b\"}", "{\"Name\": \"ab\", \"ID\": 1}",
		"{\"Name\": \"ab\", \"Opts\": []}", "{\"Name\": \"ab\", \"Opts\": {\"source\": \"cache:\"}}",
		"{\"NAME\": \"ab\"}", "{\"Name\": \"ab\", \"Id\": \"x\"}", "{\"Name\": \"..\"}",
		"{\"Name\": \"\\ud800\"}", "\xef\xbb\xbf{\"Name\": \"ab\"}", "{\"Name\": \"a\xff\"}",
		"{\"Name\": \"ab\", \"ID\": \"caf\\u00e9\"}", "{\"Name\": 1e999}",
		"{\"Name\": \"ab\", \"Name\": \"ab\"}", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
	};
	struct fake f;
	fake_init(&f);
	for (size_t i = 0; i < ELEMENTSOF(paths); i++)
		for (size_t b = 0; b < ELEMENTSOF(bodies); b++) {
			struct call c = call(&f, "POST", paths[i], bodies[b], strlen(bodies[b]));
			json_decref(c.reply);
		}

	/* deep nesting is refused, not recursed into without bound */
	size_t depth = 30000; /* 60000 bytes: under the body limit */
	char *deep = malloc(2 * depth + 1);
	assert_non_null(deep);
	memset(deep, '[', depth);
	memset(deep + depth, ']', depth);
	deep[2 * depth] = '\0';
	struct call c = call(&f, "POST", "/VolumeDriver.List", deep, 2 * depth);
	assert_int_equal(c.status, 500);
	json_decref(c.reply);
	free(deep);
	fake_done(&f);
}

/* A body of "null" counts as no fields (parse_body's json_is_null
 * branch): List answers, Create says what is missing. */
static void test_body_null(void **state)
{
	struct fake f;
	fake_init(&f);
	struct call c = call(&f, "POST", "/VolumeDriver.List", "null", 4);
	int status = c.status;
	char msg[256];
	snprintf(msg, sizeof(msg), "%s", err_of(&c) ? err_of(&c) : "");
	json_decref(c.reply);
	fake_done(&f);
	UT_FAIL_IF(status == 500 && strstr(msg, "invalid JSON"),
		     "plugin.c parse_body: a body of \"null\" is meant to count as "
		     "empty, but json_loadb() without JSON_DECODE_ANY refuses it, so "
		     "the json_is_null() branch is dead: List(\"null\") -> %d %s",
		     status, msg);
	assert_int_equal(status, 200);

	fake_init(&f);
	c = call(&f, "POST", "/VolumeDriver.Create", "null\n", 5);
	assert_int_equal(c.status, 500);
	assert_string_equal(err_of(&c), "missing \"Name\"");
	json_decref(c.reply);
	fake_done(&f);
}

/* The caller is passed through to the manager on Create. */
static void test_caller_passed(void **state)
{
	struct fake f;
	fake_init(&f);
	static const char body[] = "{\"Name\": \"ci-1\"}";
	struct call c = call(&f, "POST", "/VolumeDriver.Create", body, sizeof(body) - 1);
	assert_int_equal(c.status, 200);
	json_decref(c.reply);
	assert_int_equal(f.last_caller.uid, test_caller.uid);
	assert_int_equal(f.last_caller.pid, test_caller.pid);
	fake_done(&f);
}

/* An Opts key cut short in the error message must not make the reply
 * body disappear (it is answered as "out of memory" by the daemon). */
static void test_opts_key_utf8(void **state)
{
	struct fake f;
	fake_init(&f);
	char key[80];
	memset(key, 'k', 63);
	strcpy(key + 63, "\xc3\xa9");
	json_t *j = json_pack("{s:s, s:{s:s}}", "Name", "ci-1", "Opts", key, "v");
	char *body = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	char *out = NULL;
	int status = vm_plugin_handle(&fake_ops, &f, &test_caller, "POST",
				      "/VolumeDriver.Create", body, strlen(body), &out);
	free(body);
	fake_done(&f);
	UT_FAIL_IF(!out,
		     "plugin.c vm_plugin_handle: Create with an Opts key of 63 ASCII "
		     "characters and an 'e-acute' gets status %d and a NULL body: the "
		     "\"%%.64s\" in names.c cuts the character, the message is not UTF-8 "
		     "and reply_error's json_pack fails", status);
	json_t *got = check_reply_shape(status, out, "Opts key at the cut");
	assert_int_equal(status, 500);
	json_decref(got);
	free(out);
}

int main(int argc, char **argv)
{
	const char *dir = ut_fixtures_dir(argc, argv, "plugin");
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_body_limit),
		cmocka_unit_test(test_body_nul),
		cmocka_unit_test(test_hostile_bodies),
		cmocka_unit_test(test_body_null),
		cmocka_unit_test(test_caller_passed),
		cmocka_unit_test(test_opts_key_utf8),
	};
	struct fake story;
	fake_init(&story);
	int failed = ut_run_pairs("plugin", dir, 40, test_pair, &story, fixed, ELEMENTSOF(fixed));
	fake_done(&story);
	free((char *)dir);
	return failed;
}
