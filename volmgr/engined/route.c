/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "route.h"

#include <stdio.h>
#include <strings.h>
#include <string.h>

/* Path bytes taken at all.  The engines' routers clean or unescape
 * paths in ways of their own (gorilla/mux); a path that could route
 * differently there than here ("..", "//", "%2F") is refused instead. */
static bool path_ok(const char *p, size_t n)
{
	if (n == 0 || p[0] != '/')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '/' || c == '.' || c == '_' || c == '-' || c == ':' || c == '@' || c == '+';
		if (!ok)
			return false;
		if (c == '/' && i + 1 < n && p[i + 1] == '/')
			return false;
		/* A "." or ".." segment */
		if (c == '/' && i + 1 < n && p[i + 1] == '.' &&
		    (i + 2 == n || p[i + 2] == '/' || (p[i + 2] == '.' && (i + 3 == n || p[i + 3] == '/'))))
			return false;
	}
	return true;
}

static void refuse(struct route *r, const char *why)
{
	r->kind = R_REFUSE;
	r->why = why;
}

/* Split "/{id}/{op}" (rest after a collection) into id and op; false if
 * there are more segments or either is too long. */
static bool id_op(const char *rest, struct route *r)
{
	if (*rest != '/' || !rest[1])
		return false;
	rest++;
	const char *slash = strchr(rest, '/');
	size_t idn = slash ? (size_t)(slash - rest) : strlen(rest);
	if (idn == 0 || idn > ROUTE_ID_MAX)
		return false;
	memcpy(r->id, rest, idn);
	r->id[idn] = '\0';
	if (!slash)
		return true;
	const char *op = slash + 1;
	if (!*op || strchr(op, '/') || strlen(op) >= sizeof(r->op))
		return false;
	snprintf(r->op, sizeof(r->op), "%s", op);
	return true;
}

static bool is(const char *a, const char *b) { return strcmp(a, b) == 0; }

static bool any_of(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (is(s, *list))
			return true;
	return false;
}

static void containers(const char *m, const char *rest, struct route *r)
{
	if (is(rest, "/json") && is(m, "GET")) {
		r->kind = R_CONTAINER_LIST;
		return;
	}
	if (is(rest, "/create") && is(m, "POST")) {
		r->kind = R_CONTAINER_CREATE;
		return;
	}
	if (is(rest, "/prune") && is(m, "POST")) {
		r->kind = R_PRUNE;
		snprintf(r->op, sizeof(r->op), "containers");
		return;
	}
	if (!id_op(rest, r))
		return refuse(r, "unknown endpoint");
	static const char *const get_ops[] = {"json", "top", "logs", "changes", "export", "stats", NULL};
	static const char *const post_ops[] = {"start", "stop", "restart", "kill", "rename", "pause",
					       "unpause", "wait", "resize", NULL};
	r->kind = R_CONTAINER;
	if (is(r->op, "") && is(m, "DELETE"))
		return;
	if ((is(m, "GET") && any_of(r->op, get_ops)) || (is(m, "POST") && any_of(r->op, post_ops)))
		return;
	if (is(r->op, "archive") && (is(m, "GET") || is(m, "HEAD") || is(m, "PUT"))) {
		r->streams_body = is(m, "PUT");
		return;
	}
	if (is(r->op, "attach") && is(m, "POST")) {
		r->hijack = true;
		return;
	}
	if (is(r->op, "exec") && is(m, "POST")) {
		r->kind = R_EXEC_CREATE;
		return;
	}
	if (is(r->op, "update"))
		return refuse(r, "docker update is not offered on the engine socket (it could lift the limits the create was checked against)");
	if (is(r->op, "checkpoints") || is(r->op, "attach/ws"))
		return refuse(r, "unknown endpoint");
	refuse(r, "unknown endpoint");
}

static void objects(const char *m, const char *rest, struct route *r, enum route_kind list,
		    enum route_kind create, enum route_kind obj)
{
	if ((is(rest, "") || is(rest, "/")) && is(m, "GET")) {
		r->kind = list;
		return;
	}
	if (is(rest, "/create") && is(m, "POST")) {
		r->kind = create;
		return;
	}
	if (is(rest, "/prune") && is(m, "POST")) {
		r->kind = R_PRUNE;
		snprintf(r->op, sizeof(r->op), "%s", list == R_NETWORK_LIST ? "networks" : "volumes");
		return;
	}
	if (!id_op(rest, r))
		return refuse(r, "unknown endpoint");
	r->kind = obj;
	if (is(r->op, "") && (is(m, "GET") || is(m, "DELETE")))
		return;
	if (obj == R_NETWORK && is(m, "POST") && (is(r->op, "connect") || is(r->op, "disconnect"))) {
		r->kind = R_NETWORK_CONNECT;
		return;
	}
	refuse(r, "unknown endpoint");
}

static bool percent_decode(const char *s, size_t n, bool plus, char *out, size_t size);

/* The path as the engines' routers see it: Go's net/http decodes it
 * before gorilla/mux matches (docker-py sends "@" of a digest as %40).
 * Checked after decoding, so "%2e%2e" or "%2F" cannot hide a segment. */
static bool decode_path(const char *p, size_t n, char *out, size_t size)
{
	return percent_decode(p, n, false, out, size);
}

static bool decode(const char *s, size_t n, char *buf, size_t size);

/* The keys of a build's query: those Docker's API defines (moby's
 * client/image_build.go and its build router), spelled as it spells
 * them.  Podman's compat build takes more (additionalbuildcontexts,
 * devices, addcaps, nsoptions, securityopt, volume, ...), each a way out
 * of the job: none is passed on. */
static const char *const build_keys[] = {
	"buildargs", "buildid", "cachefrom", "cgroupparent", "cpuperiod", "cpuquota", "cpusetcpus",
	"cpusetmems", "cpushares", "dockerfile", "extrahosts", "forcerm", "isolation", "labels",
	"memory", "memswap", "networkmode", "nocache", "outputs", "platform", "pull", "q", "remote",
	"rm", "session", "shmsize", "squash", "t", "target", "ulimits", "version", NULL};

#define QUERY_KEYS_MAX 256

/* What no query may hold, whatever the endpoint:
 *  - two spellings of one key ("rm" and "RM"): Docker reads keys as
 *    spelled, Podman (gorilla/schema) ignoring case and taking either,
 *    so the value checked here might not be the one the engine uses;
 *  - "/libpod" as is: Podman tells its own API from the compat one by
 *    the whole URL's "/"-separated parts, query included
 *    (utils.IsLibpodRequest), so a compat endpoint would turn libpod;
 *  - a key that does not decode, or more than QUERY_KEYS_MAX of them;
 *  - with allow, a key not in it. */
static const char *query_refused(const char *q, const char *const *allow)
{
	static __thread char why[256];
	char keys[QUERY_KEYS_MAX][64];
	size_t nk = 0;
	if (strcasestr(q, "/libpod"))
		return "a query naming /libpod the engine socket does not take";
	while (*q) {
		q++;
		size_t n = strcspn(q, "&"), kn = strcspn(q, "=&");
		if (kn > n)
			kn = n;
		if (n == 0)
			continue;
		if (nk == QUERY_KEYS_MAX)
			return "a query with over 256 parameters the engine socket does not take";
		if (!decode(q, kn, keys[nk], sizeof(keys[nk])))
			return "a query parameter that does not decode, or is over 63 bytes";
		if (allow && !any_of(keys[nk], allow)) {
			snprintf(why, sizeof(why), "the query parameter \"%.64s\" is not taken on the engine socket",
				 keys[nk]);
			return why;
		}
		for (size_t i = 0; i < nk; i++)
			if (strcasecmp(keys[i], keys[nk]) == 0 && strcmp(keys[i], keys[nk]) != 0) {
				snprintf(why, sizeof(why), "a query spelling one parameter two ways (\"%.64s\", \"%.64s\") the engine socket does not take",
					 keys[i], keys[nk]);
				return why;
			}
		nk++;
		q += n;
	}
	return NULL;
}

void route_classify(const char *method, const char *url, struct route *r)
{
	*r = (struct route){.kind = R_REFUSE, .why = "unknown endpoint"};
	size_t n = strcspn(url, "?");
	/* Go's url.ParseQuery drops a pair with a ";" (since Go 1.17), we
	 * would split it: refuse rather than guess. */
	if (strchr(url + n, ';') || strchr(url + n, '#'))
		return refuse(r, "a query with \";\" or \"#\" the engine socket does not take");
	const char *why = query_refused(url + n, NULL);
	if (why)
		return refuse(r, why);
	char path[ROUTE_PATH_MAX + 1];
	if (n > ROUTE_PATH_MAX || !decode_path(url, n, path, sizeof(path)) || !path_ok(path, strlen(path)))
		return refuse(r, "a path with characters, \".\" or \"..\" segments or \"//\" the engine socket does not take");
	snprintf(r->path, sizeof(r->path), "%s", path);
	const char *p = path;
	/* /v1.NN/...: the API version the client negotiated. */
	if (p[1] == 'v' && p[2] >= '0' && p[2] <= '9') {
		const char *slash = strchr(p + 1, '/');
		size_t vn = slash ? (size_t)(slash - p - 2) : strlen(p + 2);
		unsigned major, minor;
		char tail;
		if (vn >= sizeof(r->version))
			return refuse(r, "not an API version");
		memcpy(r->version, p + 2, vn);
		r->version[vn] = '\0';
		if (sscanf(r->version, "%u.%u%c", &major, &minor, &tail) != 2)
			return refuse(r, "not an API version");
		if (major < ROUTE_MIN_API_MAJOR ||
		    (major == ROUTE_MIN_API_MAJOR && minor < ROUTE_MIN_API_MINOR))
			return refuse(r, "API versions before 1.24 are not offered on the engine socket");
		if (!slash)
			return refuse(r, "unknown endpoint");
		p = slash;
	}
	const char *m = method;
	bool read = is(m, "GET") || is(m, "HEAD");
	if (is(p, "/_ping") && read) {
		r->kind = R_SHARED;
	} else if ((is(p, "/version") || is(p, "/info")) && is(m, "GET")) {
		r->kind = R_SHARED;
	} else if (is(p, "/auth") && is(m, "POST")) {
		r->kind = R_SHARED;
	} else if (strncmp(p, "/images/", 8) == 0 || is(p, "/images")) {
		if (is(p, "/images/prune") && is(m, "POST")) {
			r->kind = R_PRUNE;
			snprintf(r->op, sizeof(r->op), "images");
			return;
		}
		if (!(read || is(m, "POST") || is(m, "DELETE")))
			return refuse(r, "unknown endpoint");
		/* Writes take Docker's parameters only: Podman's compat
		 * push takes a "destination" in any transport (a file, a
		 * directory, a device of the engine's host). */
		static const char *const create_keys[] = {"fromImage", "fromSrc", "repo", "tag", "message",
							  "platform", "changes", NULL};
		static const char *const push_keys[] = {"tag", "platform", NULL};
		static const char *const tag_keys[] = {"repo", "tag", NULL};
		static const char *const load_keys[] = {"quiet", "platform", NULL};
		static const char *const delete_keys[] = {"force", "noprune", "platforms", NULL};
		size_t pl = strlen(p);
		const char *const *keys = NULL;
		if (is(m, "DELETE"))
			keys = delete_keys;
		else if (is(m, "POST") && is(p, "/images/create"))
			keys = create_keys;
		else if (is(m, "POST") && is(p, "/images/load"))
			keys = load_keys;
		else if (is(m, "POST") && pl > 13 && is(p + pl - 5, "/push"))
			keys = push_keys;
		else if (is(m, "POST") && pl > 12 && is(p + pl - 4, "/tag"))
			keys = tag_keys;
		else if (is(m, "POST"))
			return refuse(r, "unknown endpoint");
		if (keys && (why = query_refused(url + n, keys)))
			return refuse(r, why);
		r->kind = R_SHARED;
		/* load and build contexts stream in */
		r->streams_body = is(m, "POST");
	} else if (strncmp(p, "/distribution/", 14) == 0 && is(m, "GET")) {
		r->kind = R_SHARED;
	} else if (is(p, "/build") && is(m, "POST")) {
		if ((why = query_refused(url + n, build_keys)))
			return refuse(r, why);
		r->kind = R_BUILD;
		r->streams_body = true;
	} else if (is(p, "/build/prune") && is(m, "POST")) {
		r->kind = R_PRUNE;
		snprintf(r->op, sizeof(r->op), "build");
	} else if (is(p, "/build/cancel") && is(m, "POST")) {
		r->kind = R_SHARED;
	} else if (is(p, "/commit") && is(m, "POST")) {
		r->kind = R_COMMIT;
	} else if (strncmp(p, "/containers/", 12) == 0) {
		containers(m, p + 11, r);
	} else if (strncmp(p, "/exec/", 6) == 0) {
		if (!id_op(p + 5, r) || !((is(m, "POST") && (is(r->op, "start") || is(r->op, "resize"))) ||
					  (is(m, "GET") && is(r->op, "json"))))
			return refuse(r, "unknown endpoint");
		r->kind = R_EXEC;
		r->hijack = is(r->op, "start");
	} else if (strncmp(p, "/networks", 9) == 0 && (p[9] == '\0' || p[9] == '/')) {
		objects(m, p + 9, r, R_NETWORK_LIST, R_NETWORK_CREATE, R_NETWORK);
	} else if (strncmp(p, "/volumes", 8) == 0 && (p[8] == '\0' || p[8] == '/')) {
		objects(m, p + 8, r, R_VOLUME_LIST, R_VOLUME_CREATE, R_VOLUME);
	} else if (is(p, "/events") && is(m, "GET")) {
		r->kind = R_EVENTS;
	} else if (strncmp(p, "/libpod/", 8) == 0) {
		refuse(r, "Podman's own API (/libpod) is not offered on the engine socket: use its Docker API");
	} else if (strncmp(p, "/session", 8) == 0 || strncmp(p, "/grpc", 5) == 0) {
		refuse(r, "BuildKit sessions are not offered on the engine socket (what is built over them cannot be checked): build with DOCKER_BUILDKIT=0");
	} else if (strncmp(p, "/swarm", 6) == 0 || strncmp(p, "/services", 9) == 0 ||
		   strncmp(p, "/tasks", 6) == 0 || strncmp(p, "/secrets", 8) == 0 ||
		   strncmp(p, "/configs", 8) == 0 || strncmp(p, "/nodes", 6) == 0 ||
		   strncmp(p, "/plugins", 8) == 0) {
		refuse(r, "swarm and plugin endpoints are not offered on the engine socket");
	} else if (strncmp(p, "/system/", 8) == 0) {
		refuse(r, "system endpoints (df, prune) are not offered on the engine socket: they would show or remove every job's objects");
	}
	/* else: unknown endpoint, as initialised */
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode s[0, n) into out; with plus, "+" is a space (Go's
 * url.ParseQuery; paths keep it).  A NUL, decoded or not, is refused. */
static bool percent_decode(const char *s, size_t n, bool plus, char *out, size_t size)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			if (i + 2 >= n)
				return false;
			int a = hexval(s[i + 1]), b = hexval(s[i + 2]);
			if (a < 0 || b < 0)
				return false;
			c = (char)(a * 16 + b);
			i += 2;
		} else if (plus && c == '+') {
			c = ' ';
		}
		if (c == '\0' || o + 1 >= size)
			return false;
		out[o++] = c;
	}
	out[o] = '\0';
	return true;
}

static bool decode(const char *s, size_t n, char *buf, size_t size)
{
	return percent_decode(s, n, true, buf, size);
}

bool route_query_copy(const char *url, const char *drop, char *buf, size_t size)
{
	const char *q = strchr(url, '?');
	size_t o = 0;
	char k[64];
	if (size == 0)
		return false;
	buf[0] = '\0';
	while (q && *q) {
		q++;
		size_t n = strcspn(q, "&");
		size_t kn = strcspn(q, "=&");
		if (kn > n)
			kn = n;
		bool dropped = drop && decode(q, kn, k, sizeof(k)) && strcasecmp(k, drop) == 0;
		if (!dropped && n > 0) {
			if (o + 1 + n + 1 > size)
				return false;
			buf[o] = o == 0 ? '?' : '&';
			o++;
			memcpy(buf + o, q, n);
			o += n;
			buf[o] = '\0';
		}
		q += n;
	}
	return true;
}

const char *route_query_get(const char *url, const char *key, char *buf, size_t size,
			    unsigned *n_seen)
{
	const char *q = strchr(url, '?');
	const char *found = NULL;
	unsigned seen = 0;
	char k[64];
	while (q && *q) {
		q++;
		size_t n = strcspn(q, "&");
		size_t kn = strcspn(q, "=&");
		if (kn > n)
			kn = n;
		if (decode(q, kn, k, sizeof(k)) && strcasecmp(k, key) == 0) {
			seen++;
			if (!found) {
				const char *v = q + kn + (kn < n ? 1 : 0);
				size_t vn = n - kn - (kn < n ? 1 : 0);
				if (decode(v, vn, buf, size))
					found = buf;
				else
					seen += 100; /* undecodable: never taken */
			}
		}
		q += n;
	}
	if (n_seen)
		*n_seen = seen;
	return found;
}
