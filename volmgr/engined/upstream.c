/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The engine as volmgr-engined itself asks it: inspects, lists and
 * removals of its own, with libcurl over the engine's socket.  Requests
 * of jobs are not made here: proxy.c relays those. */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "engined.h"
#include "json-util.h"

/* An answer to one of our own calls: an inspect, a list of one job's
 * objects.  Larger is not an answer we asked for. */
#define ANSWER_MAX (16 * 1024 * 1024)
#define CALL_TIMEOUT_MS 30000

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void) { curl_global_init(CURL_GLOBAL_NOTHING); }

struct buf {
	char *p;
	size_t len;
	bool too_long;
};

static size_t on_data(char *data, size_t size, size_t n, void *userdata)
{
	struct buf *b = userdata;
	size_t add = size * n;
	if (b->len + add > ANSWER_MAX) {
		b->too_long = true;
		return 0;
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

int up_call(struct engined *e, const char *method, const char *path, json_t *body,
	    long *ret_status, json_t **ret, struct vm_error *err)
{
	pthread_once(&curl_once, curl_init);
	CURL *c = curl_easy_init();
	if (!c)
		return vm_error_set(err, ENOMEM, "out of memory");
	char url[1024];
	snprintf(url, sizeof(url), "http://engine%s", path);
	struct buf b = {0};
	_cleanup_free_ char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, e->upstream);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)CALL_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	if (payload) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
	} else if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	CURLcode cr = curl_easy_perform(c);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	int r = 0;
	if (b.too_long)
		r = vm_error_set(err, EMSGSIZE, "the engine's answer to %s %s is longer than %d bytes",
				 method, path, ANSWER_MAX);
	else if (cr != CURLE_OK)
		r = vm_error_set(err, cr == CURLE_OPERATION_TIMEDOUT ? ETIMEDOUT : ECONNREFUSED,
				 "the engine at %s: %s", e->upstream, curl_easy_strerror(cr));
	if (r == 0) {
		*ret_status = status;
		if (ret)
			*ret = b.p && b.len ? json_loads(b.p, 0, NULL) : NULL;
	}
	free(b.p);
	return r;
}

int up_kind(struct engined *e, struct vm_error *err)
{
	pthread_mutex_lock(&e->lock);
	int k = e->upstream_kind;
	pthread_mutex_unlock(&e->lock);
	if (k != UP_UNKNOWN)
		return k;
	long status = 0;
	_cleanup_json_ json_t *v = NULL;
	int r = up_call(e, "GET", "/version", NULL, &status, &v, err);
	if (r < 0)
		return r;
	if (status != 200 || !json_is_object(v))
		return vm_error_set(err, EIO, "the engine answered %ld to GET /version", status);
	k = UP_DOCKER;
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(v, "Components"), i, c) {
		const char *name = json_string_value(json_object_get(c, "Name"));
		if (name && strstr(name, "Podman"))
			k = UP_PODMAN;
	}
	pthread_mutex_lock(&e->lock);
	e->upstream_kind = k;
	pthread_mutex_unlock(&e->lock);
	return k;
}

int up_connect(struct engined *e, struct vm_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", e->upstream);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vm_error_errno(err, errno, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e2 = errno;
		close(fd);
		return vm_error_errno(err, e2, "cannot reach the engine at %s", e->upstream);
	}
	return fd;
}
