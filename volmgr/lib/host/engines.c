/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "engines.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "names.h"

/* Engine answers are small (a list of containers that use one volume);
 * anything longer is not an answer to trust. */
#define REPLY_MAX (1024 * 1024)

const char *vm_engine_kind_name(enum vm_engine_kind k)
{
	return k == VM_ENGINE_PODMAN ? "podman" : "docker";
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void)
{
	curl_global_init(CURL_GLOBAL_NOTHING);
}

struct buf {
	char *p;
	size_t len;
	bool too_long;
};

static size_t on_data(char *data, size_t size, size_t n, void *userdata)
{
	struct buf *b = userdata;
	size_t add = size * n;
	if (b->len + add > REPLY_MAX) {
		b->too_long = true;
		return 0; /* curl stops with CURLE_WRITE_ERROR */
	}
	char *np = realloc(b->p, b->len + add + 1);
	if (!np)
		return 0;
	memcpy(np + b->len, data, add);
	b->p = np;
	b->len += add;
	b->p[b->len] = '\0';
	return add;
}

/* GET path on the engine's socket: the HTTP status, the body in *ret. */
static int get(const struct vm_engine *e, const char *path, unsigned timeout_ms, long *ret_status,
	       json_t **ret, struct vm_error *err)
{
	pthread_once(&curl_once, curl_init);
	CURL *c = curl_easy_init();
	if (!c)
		return vm_error_set(err, ENOMEM, "out of memory");
	char url[512];
	snprintf(url, sizeof(url), "http://engine%s", path);
	struct buf b = {0};
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, e->socket);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(c, CURLOPT_PROXY, ""); /* never an http_proxy from the environment */
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for timeouts */
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	CURLcode cr = curl_easy_perform(c);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	int r = 0;
	if (b.too_long)
		r = vm_error_set(err, EMSGSIZE, "%s at %s: answer longer than %d bytes",
				 vm_engine_kind_name(e->kind), e->socket, REPLY_MAX);
	else if (cr != CURLE_OK)
		r = vm_error_set(err, cr == CURLE_OPERATION_TIMEDOUT ? ETIMEDOUT : ECONNREFUSED,
				 "%s at %s: %s", vm_engine_kind_name(e->kind), e->socket,
				 curl_easy_strerror(cr));
	if (r == 0) {
		json_error_t jerr;
		*ret = b.p ? json_loadb(b.p, b.len, JSON_DECODE_ANY, &jerr) : NULL;
		*ret_status = status;
		if (!*ret && status == 200)
			r = vm_error_set(err, EBADMSG, "%s at %s: unreadable answer to %s",
					 vm_engine_kind_name(e->kind), e->socket, path);
	}
	free(b.p);
	return r;
}

/* Containers of any state that reference the volume (both engines
 * answer Docker's API; podman's service keeps it under the same path). */
static int containers_using(const struct vm_engine *e, const char *name, unsigned timeout_ms,
			    struct vm_error *err)
{
	/* {"volume":["NAME"]}, URL-encoded; the name rule allows no
	 * character that needs more. */
	char path[VM_NAME_MAX + 128];
	snprintf(path, sizeof(path),
		 "/containers/json?all=1&filters=%%7B%%22volume%%22%%3A%%5B%%22%s%%22%%5D%%7D", name);
	long status = 0;
	json_t *j = NULL;
	int r = get(e, path, timeout_ms, &status, &j, err);
	if (r < 0)
		return r;
	if (status != 200 || !json_is_array(j)) {
		json_decref(j);
		return vm_error_set(err, EBADMSG, "%s at %s: the container list answered %ld",
				    vm_engine_kind_name(e->kind), e->socket, status);
	}
	r = json_array_size(j) > 0;
	json_decref(j);
	return r;
}

/* Podman's own mount count of the volume (`podman volume mount`, and one
 * per running container); 0 when podman does not know the volume. */
static int podman_mount_count(const struct vm_engine *e, const char *name, unsigned timeout_ms,
			      struct vm_error *err)
{
	char path[VM_NAME_MAX + 64];
	snprintf(path, sizeof(path), "/v4.0.0/libpod/volumes/%s/json", name);
	long status = 0;
	json_t *j = NULL;
	int r = get(e, path, timeout_ms, &status, &j, err);
	if (r < 0)
		return r;
	json_t *count = json_object_get(j, "MountCount");
	if (status == 404) {
		r = 0;
	} else if (status != 200 || !json_is_integer(count) || json_integer_value(count) < 0) {
		r = vm_error_set(err, EBADMSG, "%s at %s: volume inspect answered %ld",
				 vm_engine_kind_name(e->kind), e->socket, status);
	} else {
		r = json_integer_value(count) > 0;
	}
	json_decref(j);
	return r;
}

int vm_engine_uses_volume(const struct vm_engine *e, const char *name, unsigned timeout_ms,
			  struct vm_error *err)
{
	int r = vm_name_check("volume", name, err);
	if (r < 0)
		return r;
	/* The container list first: it takes no lock of the volume's, while
	 * Podman's volume inspect waits for the volume's lock. */
	r = containers_using(e, name, timeout_ms, err);
	if (r != 0 || e->kind != VM_ENGINE_PODMAN)
		return r;
	return podman_mount_count(e, name, timeout_ms, err);
}

int vm_engines_use_volume(const struct vm_engine *engines, size_t n, const char *name,
			  unsigned timeout_ms, struct vm_error *err)
{
	if (n == 0)
		return vm_error_set(err, ENOENT, "no engine API socket is configured ([engines] in volmgr.conf)");
	int unknown = 0;
	for (size_t i = 0; i < n; i++) {
		struct vm_error e = {0};
		int r = vm_engine_uses_volume(&engines[i], name, timeout_ms, &e);
		if (r > 0)
			return 1;
		if (r < 0 && unknown == 0) {
			unknown = r;
			vm_error_copy(err, &e);
		}
	}
	return unknown;
}

int vm_engine_knows_volume(const struct vm_engine *e, const char *name, unsigned timeout_ms,
			   struct vm_error *err)
{
	int r = vm_name_check("volume", name, err);
	if (r < 0)
		return r;
	if (e->kind != VM_ENGINE_PODMAN)
		return vm_error_set(err, ENOTSUP,
				    "docker cannot say whether it knows a plugin volume (its volume inspect asks the plugin)");
	/* Podman's database only: no plugin call, no volume lock. */
	char path[VM_NAME_MAX + 64];
	snprintf(path, sizeof(path), "/v4.0.0/libpod/volumes/%s/exists", name);
	long status = 0;
	json_t *j = NULL;
	r = get(e, path, timeout_ms, &status, &j, err);
	if (r < 0)
		return r;
	/* Only Podman's own "no such volume" is an answer (libpod's
	 * define.ErrNoSuchVolume, as its API error's cause), not any 404:
	 * a socket that is not Podman's says "page not found". */
	const char *cause = json_string_value(json_object_get(j, "cause"));
	bool no_such = status == 404 && cause && strcmp(cause, "no such volume") == 0;
	json_decref(j);
	if (status == 204)
		return 1;
	if (no_such)
		return 0;
	return vm_error_set(err, EBADMSG, "%s at %s: volume exists answered %ld%s%s",
			    vm_engine_kind_name(e->kind), e->socket, status, cause ? ": " : "",
			    cause ? cause : "");
}
