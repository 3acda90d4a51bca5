/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* volmgr-engined's parts that take a job's bytes: the HTTP framing
 * (http.c over llhttp), the route table (route.c) and the create-body
 * rules (policy.c), with fakes for what needs the engine or the caller's
 * file system.
 *
 * Input: the first byte picks the part, the rest is its input.
 *   'H'  bytes a client sends: read as requests, one after another, head
 *        then body, as proxy.c does (through a pipe).  Checks: every head
 *        fits its store and has a method and a URL; a body never yields
 *        more bytes than came in; the reader ends (no loop).
 *   'R'  "METHOD URL": route_classify.  Checks: a refusal says why; an
 *        object id is a plain name (no "/", no "..", not empty); a URL
 *        with ".." or "//" in its path is refused.
 *   other  a container create body (JSON), checked by
 *        policy_container_create with fakes: containers, networks and
 *        volumes whose name starts with "own" are the job's; a bind source
 *        under /builds/ pins to /pins/x, anything else is refused.
 *        Checks on an accepted body: nothing privileged, no capability
 *        added, no device, no host namespace, no security option but
 *        no-new-privileges, every bind source a pin or the job's volume,
 *        every container or network reference the job's, the job's label
 *        set. */
#include <errno.h>
#include <fcntl.h>
#include <strings.h>
#include <unistd.h>

#include "fuzz.h"

#include "http.h"
#include "policy.h"
#include "route.h"

#define JOB "jobjobjobjobjobjobjobjobjobjobjobjobjobjobjobjobjobjobjobjobjob1"
#define OWN_ID "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static int count_sink(void *ud, const char *d, size_t n)
{
	*(size_t *)ud += n;
	return 0;
}

static void fuzz_http(const uint8_t *data, size_t size)
{
	int p[2];
	if (size > 60000 || pipe2(p, O_CLOEXEC) < 0)
		return;
	if (size && write(p[1], data, size) != (ssize_t)size)
		abort();
	close(p[1]);
	struct http_reader *r = fuzz_xmalloc(sizeof(*r));
	struct http_head *h = fuzz_xmalloc(sizeof(*h));
	http_reader_init(r, p[0], HTTP_REQUEST);
	size_t body = 0;
	for (int i = 0; i < 1000; i++) {
		if (http_read_head(r, h) < 0)
			break;
		FUZZ_CHECK(h->used <= sizeof(h->store), "head store overrun");
		FUZZ_CHECK(h->method[0] && h->url, "a head without method or URL");
		FUZZ_CHECK(h->n <= HTTP_HEADERS_MAX, "too many headers");
		for (size_t k = 0; k < h->n; k++)
			FUZZ_CHECK(h->h[k].name && h->h[k].value, "a header without name or value");
		struct route rt;
		route_classify(h->method, h->url, &rt);
		if (http_read_body(r, false, count_sink, &body) < 0 || h->upgrade)
			break;
		FUZZ_CHECK(body <= size, "more body than input: %zu > %zu", body, size);
	}
	close(p[0]);
	free(r);
	free(h);
}

static void fuzz_route(const uint8_t *data, size_t size)
{
	char *s = fuzz_strndup(data, size);
	char *sp = strchr(s, ' ');
	if (sp) {
		*sp = '\0';
		struct route rt;
		const char *url = sp + 1;
		route_classify(s, url, &rt);
		if (rt.kind == R_REFUSE)
			FUZZ_CHECK(rt.why && *rt.why, "a refusal without a reason");
		size_t n = strcspn(url, "?");
		char *path = fuzz_strndup(url, n);
		if (rt.kind != R_REFUSE) {
			FUZZ_CHECK(!strstr(path, "/../") && !strstr(path, "//") &&
					   !strstr(path, "/./"),
				   "a path with dot segments taken: %s", fuzz_show(path));
			if (rt.id[0])
				FUZZ_CHECK(!strchr(rt.id, '/') && strcmp(rt.id, "..") && strcmp(rt.id, "."),
					   "object id %s", fuzz_show(rt.id));
		}
		free(path);
	}
	free(s);
}

static int f_own_container(void *ud, const char *ref, char id[static 65], struct vm_error *err)
{
	if (strncmp(ref, "own", 3) != 0)
		return 0;
	memcpy(id, OWN_ID, 65);
	return 1;
}

static int f_own_network(void *ud, const char *ref, char id[static 65], struct vm_error *err)
{
	snprintf(id, 65, "%s", OWN_ID);
	return strncmp(ref, "own", 3) == 0 || strcmp(ref, "bridge") == 0;
}

static int f_use_volume(void *ud, const char *name, struct vm_error *err)
{
	return strncmp(name, "own", 3) == 0;
}

static int f_bind(void *ud, const char *path, bool create, struct bind_target *ret,
		  struct vm_error *err)
{
	if (strncmp(path, "/builds/", 8) != 0)
		return vm_error_set(err, EPERM, "not on a volume");
	*ret = (struct bind_target){0};
	if (strcmp(path, "/builds/top") == 0) {
		ret->volume = true;
		snprintf(ret->source, sizeof(ret->source), "ownvol");
	} else {
		snprintf(ret->source, sizeof(ret->source), "/pins/x");
	}
	return 0;
}

static bool empty(json_t *v)
{
	return !v || json_is_null(v) || json_is_false(v) ||
	       (json_is_array(v) && json_array_size(v) == 0) ||
	       (json_is_object(v) && json_object_size(v) == 0) ||
	       (json_is_string(v) && json_string_length(v) == 0) ||
	       (json_is_integer(v) && json_integer_value(v) == 0);
}

static void check_ref(json_t *hc, const char *key)
{
	const char *s = json_string_value(json_object_get(hc, key));
	if (!s || !*s)
		return;
	FUZZ_CHECK(strcmp(s, "host") != 0, "%s=host taken", key);
	if (strncmp(s, "container:", 10) == 0)
		FUZZ_CHECK(strcmp(s + 10, OWN_ID) == 0, "%s=%s taken", key, fuzz_show(s));
}

static void fuzz_policy(const uint8_t *data, size_t size)
{
	json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (!body)
		return;
	static const struct policy_rules rules = {0};
	static const struct policy_ops ops = {NULL, f_own_container, f_own_network, f_use_volume,
					      f_bind};
	/* Podman's compat API or Docker's: by the input's length */
	struct policy p = {.rules = &rules, .ops = &ops, .job = JOB, .podman = size & 1};
	struct vm_error err = {0};
	int r = policy_container_create(&p, body, &err);
	if (r < 0) {
		FUZZ_CHECK(err.msg[0], "a refusal without a message");
		json_decref(body);
		return;
	}
	json_t *hc = json_object_get(body, "HostConfig");
	FUZZ_CHECK(json_is_object(hc), "no HostConfig after the rewrite");
	/* What Podman would make specs of: plain paths only */
	const char *pk;
	json_t *pv;
	json_object_foreach(json_object_get(body, "Volumes"), pk, pv)
		FUZZ_CHECK(pk[0] == '/' && !strpbrk(pk, ":,"), "Volumes key %s taken", fuzz_show(pk));
	json_object_foreach(json_object_get(hc, "Tmpfs"), pk, pv)
		FUZZ_CHECK(pk[0] == '/' && !strpbrk(pk, ":,"), "Tmpfs key %s taken", fuzz_show(pk));
	json_object_foreach(json_object_get(json_object_get(hc, "LogConfig"), "Config"), pk, pv)
		FUZZ_CHECK(strcmp(pk, "path") != 0 && strcmp(pk, "Path") != 0, "log option %s taken",
			   fuzz_show(pk));
	FUZZ_CHECK(empty(json_object_get(hc, "ContainerIDFile")), "ContainerIDFile taken");
	if (p.podman) {
		size_t ei;
		json_t *ev;
		json_array_foreach(json_object_get(body, "Env"), ei, ev)
			FUZZ_CHECK(strchr(json_string_value(ev), '='), "Env %s without a value taken (Podman)",
				   fuzz_show(json_string_value(ev)));
	}
	/* The engines read keys ignoring case: every key left must be
	 * spelled as the API spells it, or unknown altogether. */
	static const char *const checked[] = {"Privileged", "CapAdd", "Devices", "MaskedPaths",
					      "ReadonlyPaths", "SecurityOpt", "Binds", "Mounts",
					      "LogConfig", "PidMode", "NetworkMode", "Sysctls",
					      "VolumesFrom", "CgroupParent", "UsernsMode"};
	const char *key;
	json_t *kv;
	json_object_foreach(hc, key, kv)
		for (size_t c = 0; c < sizeof(checked) / sizeof(checked[0]); c++)
			FUZZ_CHECK(strcasecmp(key, checked[c]) != 0 || strcmp(key, checked[c]) == 0,
				   "HostConfig key %s left in a second spelling", fuzz_show(key));
	static const char *const never[] = {"Privileged", "CapAdd", "Devices", "DeviceRequests",
					    "DeviceCgroupRules", "Sysctls", "CgroupParent",
					    "OomKillDisable", "StorageOpt", "BlkioWeightDevice"};
	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
		FUZZ_CHECK(empty(json_object_get(hc, never[i])), "%s taken", never[i]);
	FUZZ_CHECK(json_is_null(json_object_get(hc, "MaskedPaths")) || !json_object_get(hc, "MaskedPaths"),
		   "MaskedPaths taken");
	static const char *const ns[] = {"PidMode", "IpcMode", "UTSMode", "UsernsMode",
					 "CgroupnsMode", "NetworkMode", "Cgroup"};
	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++)
		check_ref(hc, ns[i]);
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(hc, "SecurityOpt"), i, v)
		FUZZ_CHECK(strncmp(json_string_value(v), "no-new-privileges", 17) == 0,
			   "security option %s taken", fuzz_show(json_string_value(v)));
	json_array_foreach(json_object_get(hc, "Binds"), i, v) {
		const char *s = json_string_value(v);
		FUZZ_CHECK(strncmp(s, "/pins/x:", 8) == 0 || strncmp(s, "own", 3) == 0,
			   "bind %s taken", fuzz_show(s));
	}
	json_array_foreach(json_object_get(hc, "Mounts"), i, v) {
		const char *type = json_string_value(json_object_get(v, "Type"));
		const char *src = json_string_value(json_object_get(v, "Source"));
		if (type && strcmp(type, "bind") == 0)
			FUZZ_CHECK(src && strcmp(src, "/pins/x") == 0, "bind mount of %s taken", fuzz_show(src));
		if (type && strcmp(type, "volume") == 0 && src && *src)
			FUZZ_CHECK(strncmp(src, "own", 3) == 0, "volume %s taken", fuzz_show(src));
		json_t *dc = json_object_get(json_object_get(v, "VolumeOptions"), "DriverConfig");
		FUZZ_CHECK(empty(json_object_get(dc, "Options")), "volume driver options taken");
		const char *prop = json_string_value(json_object_get(json_object_get(v, "BindOptions"), "Propagation"));
		FUZZ_CHECK(!prop || !*prop || strstr(prop, "private"), "propagation %s taken", fuzz_show(prop));
	}
	json_array_foreach(json_object_get(hc, "VolumesFrom"), i, v)
		FUZZ_CHECK(strncmp(json_string_value(v), OWN_ID, 64) == 0, "volumes-from %s taken",
			   fuzz_show(json_string_value(v)));
	const char *label = json_string_value(json_object_get(json_object_get(body, "Labels"),
							       POLICY_LABEL_JOB));
	FUZZ_CHECK(label && strcmp(label, JOB) == 0, "the job's label is not set");
	json_decref(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_init_once();
	if (size == 0)
		return 0;
	if (data[0] == 'H')
		fuzz_http(data + 1, size - 1);
	else if (data[0] == 'R')
		fuzz_route(data + 1, size - 1);
	else
		fuzz_policy(data + 1, size - 1);
	return 0;
}
