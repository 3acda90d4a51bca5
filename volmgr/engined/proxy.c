/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One job's connection to the engine socket: requests read one at a
 * time, each classified (route.c), checked and rewritten (policy.c),
 * sent to the engine on a connection of its own in a form we wrote
 * (request line, a short list of headers, the body re-framed), and the
 * answer relayed -- verbatim, or filtered down to the job's own objects
 * for lists and events.  Memory per connection is fixed: two readers'
 * buffers and heads, plus a JSON body of at most BODY_MAX and a list
 * answer of at most LIST_MAX while it is filtered. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engined.h"
#include "http.h"
#include "json-util.h"
#include "route.h"

#define BODY_MAX (1024 * 1024)
#define LIST_MAX (32 * 1024 * 1024)
#define EVENT_MAX (256 * 1024)
/* A keep-alive connection may wait this long for its next request. */
#define IDLE_MS (10 * 60 * 1000)

struct conn {
	struct engined *e;
	int fd;
	struct job job;
	char tag[40];             /* pins made for the request in flight */
	struct http_reader in;
	struct http_head req;
	struct http_reader up;
	struct http_head resp;
};

struct dbuf {
	char *p;
	size_t len, cap, max;
	bool too_long;
};

static int dbuf_sink(void *ud, const char *d, size_t n)
{
	struct dbuf *b = ud;
	if (b->len + n > b->max) {
		b->too_long = true;
		return -EMSGSIZE;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *np = realloc(b->p, cap);
		if (!np)
			return -ENOMEM;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static int write_fd(void *ud, const char *d, size_t n)
{
	return http_write_all(*(int *)ud, d, n);
}

/* A body of the client's, re-framed towards the engine. */
struct reframe {
	int fd;
	bool chunked;
};

static int reframe_sink(void *ud, const char *d, size_t n)
{
	struct reframe *f = ud;
	if (!f->chunked)
		return http_write_all(f->fd, d, n);
	char h[24];
	int hn = snprintf(h, sizeof(h), "%zx\r\n", n);
	int r = http_write_all(f->fd, h, (size_t)hn);
	if (r == 0)
		r = http_write_all(f->fd, d, n);
	if (r == 0)
		r = http_write_all(f->fd, "\r\n", 2);
	return r;
}

/* An answer of our own, in the engines' shape ({"message": ...}); the
 * connection closes after it. */
static void reply_error(struct conn *c, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	_cleanup_json_ json_t *j = json_pack("{s:s}", "message", msg);
	_cleanup_free_ char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (!body)
		return;
	const char *reason = status == 403 ? "Forbidden" : status == 404 ? "Not Found" :
			     status == 400 ? "Bad Request" : status == 413 ? "Payload Too Large" :
			     status == 502 ? "Bad Gateway" : status == 414 ? "URI Too Long" :
			     status == 429 ? "Too Many Requests" :
			     status == 503 ? "Service Unavailable" : "Error";
	char head[256];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
			 "Connection: close\r\n\r\n",
			 status, reason, strlen(body) + 1);
	if (http_write_all(c->fd, head, (size_t)n) == 0 && http_write_all(c->fd, body, strlen(body)) == 0)
		http_write_all(c->fd, "\n", 1);
	if (status == 403)
		fprintf(stderr, "volmgr-engined: job %.12s (pid %d): %s %s refused: %s\n", c->job.id,
			(int)c->job.pid, c->req.method, c->req.url, msg);
}

/* An answer of our own with a JSON body (the connection stays). */
static int reply_json(struct conn *c, int status, json_t *j)
{
	_cleanup_free_ char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (!body)
		return -ENOMEM;
	char head[256];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
			 status, strlen(body));
	int r = http_write_all(c->fd, head, (size_t)n);
	return r < 0 ? r : http_write_all(c->fd, body, strlen(body));
}

static bool hop_by_hop(const char *name)
{
	static const char *const hop[] = {"Connection", "Keep-Alive", "Transfer-Encoding",
					  "Content-Length", "Upgrade", "Proxy-Connection", "TE",
					  "Trailer"};
	for (size_t i = 0; i < ELEMENTSOF(hop); i++)
		if (strcasecmp(name, hop[i]) == 0)
			return true;
	return false;
}

struct sbuf {
	char p[HTTP_HEAD_MAX + 1024];
	size_t len;
	bool overflow;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b->p + b->len, sizeof(b->p) - b->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(b->p) - b->len)
		b->overflow = true;
	else
		b->len += (size_t)n;
}

/* The answer's head towards the client: the engine's status and
 * headers, our framing (extra). */
static int send_response_head(struct conn *c, bool keep_framing, bool upgrade, const char *extra)
{
	_cleanup_free_ struct sbuf *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	sb_printf(b, "HTTP/1.1 %d %s\r\n", c->resp.status, c->resp.reason);
	for (size_t i = 0; i < c->resp.n; i++) {
		const struct http_header *h = &c->resp.h[i];
		bool framing = strcasecmp(h->name, "Content-Length") == 0 ||
			       strcasecmp(h->name, "Transfer-Encoding") == 0;
		if (hop_by_hop(h->name) && !(keep_framing && framing))
			continue;
		sb_printf(b, "%s: %s\r\n", h->name, h->value);
	}
	if (upgrade)
		sb_printf(b, "Connection: Upgrade\r\nUpgrade: %s\r\n",
			  http_head_get(&c->resp, "Upgrade") ?: "tcp");
	sb_printf(b, "%s\r\n", extra ? extra : "");
	if (b->overflow)
		return -EMSGSIZE;
	return http_write_all(c->fd, b->p, b->len);
}

/* The request towards the engine, in a form of our own. */
static int send_request_head(struct conn *c, int ufd, const char *url, const char *framing,
			     bool upgrade)
{
	static const char *const pass[] = {"Content-Type", "X-Registry-Auth", "X-Registry-Config",
					   "User-Agent", "Accept"};
	_cleanup_free_ struct sbuf *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	sb_printf(b, "%s %s HTTP/1.1\r\nHost: docker\r\n", c->req.method, url);
	for (size_t i = 0; i < c->req.n; i++)
		for (size_t k = 0; k < ELEMENTSOF(pass); k++)
			if (strcasecmp(c->req.h[i].name, pass[k]) == 0)
				sb_printf(b, "%s: %s\r\n", pass[k], c->req.h[i].value);
	if (framing)
		sb_printf(b, "%s\r\n", framing);
	sb_printf(b, upgrade ? "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n" : "Connection: close\r\n\r\n");
	if (b->overflow)
		return -EMSGSIZE;
	return http_write_all(ufd, b->p, b->len);
}

/* ---- what a job may see ---- */

static bool own(struct conn *c, enum record_kind kind, const char *id)
{
	char job[ENGINED_ID_MAX + 1];
	if (!id)
		return false;
	if (kind == REC_CONTAINER && strcmp(id, c->job.id) == 0)
		return true;
	if (state_job_of(c->e, kind, id, job))
		return strcmp(job, c->job.id) == 0;
	return kind == REC_VOLUME && json_object_get(c->job.volumes, id);
}

/* Keep the job's own; the job's container itself is not listed (it is
 * the runner's, see root_op_ok).  limit > 0: the first limit of them
 * (the engine's order, newest first). */
static void filter_array(struct conn *c, json_t *a, enum record_kind kind, const char *key,
			 long limit)
{
	for (size_t i = json_array_size(a); i-- > 0;) {
		const char *id = json_string_value(json_object_get(json_array_get(a, i), key));
		if (!own(c, kind, id) || (kind == REC_CONTAINER && strcmp(id, c->job.id) == 0))
			json_array_remove(a, i);
	}
	while (limit > 0 && json_array_size(a) > (size_t)limit)
		json_array_remove(a, json_array_size(a) - 1);
}

static bool event_visible(struct conn *c, json_t *ev)
{
	const char *type = json_string_value(json_object_get(ev, "Type"));
	json_t *actor = json_object_get(ev, "Actor");
	const char *id = json_string_value(json_object_get(actor, "ID"));
	json_t *attrs = json_object_get(actor, "Attributes");
	if (!type)
		return false;
	if (strcmp(type, "image") == 0)
		return true;
	if (strcmp(type, "container") == 0) {
		const char *label = json_string_value(json_object_get(attrs, POLICY_LABEL_JOB));
		return own(c, REC_CONTAINER, id) || (label && strcmp(label, c->job.id) == 0);
	}
	const char *ctr = json_string_value(json_object_get(attrs, "container"));
	if (strcmp(type, "network") == 0)
		return own(c, REC_NETWORK, id) || (ctr && own(c, REC_CONTAINER, ctr));
	if (strcmp(type, "volume") == 0)
		return own(c, REC_VOLUME, id) || (ctr && own(c, REC_CONTAINER, ctr));
	return false;
}

struct events {
	struct conn *c;
	struct dbuf line;
};

/* Events come as JSON objects one per line: each line the job may see
 * goes on as a chunk of its own. */
static int events_sink(void *ud, const char *d, size_t n)
{
	struct events *ev = ud;
	for (size_t i = 0; i < n; i++) {
		int r = dbuf_sink(&ev->line, d + i, 1);
		if (r < 0)
			return r;
		if (d[i] != '\n')
			continue;
		_cleanup_json_ json_t *o = json_loadb(ev->line.p, ev->line.len, 0, NULL);
		if (o && event_visible(ev->c, o)) {
			struct reframe f = {ev->c->fd, true};
			if ((r = reframe_sink(&f, ev->line.p, ev->line.len)) < 0)
				return r;
		}
		ev->line.len = 0;
	}
	return 0;
}

/* ---- one request ---- */

enum mode { M_RELAY, M_LIST, M_CAPTURE, M_EVENTS };

struct plan {
	char url[ROUTE_PATH_MAX + 8192];
	long limit;                 /* M_LIST of containers: ?limit=, applied after filtering */
	enum mode mode;
	enum record_kind kind;      /* M_LIST: what is listed; M_CAPTURE: what is made */
	bool buffer_body;
	json_t *body;
	enum { A_NONE, A_MADE, A_DELETED } after;
	char obj[256];              /* A_DELETED: what */
};

struct policy_ud {
	struct conn *c;
};

static int p_own_container(void *ud, const char *ref, char id[static 65], struct vm_error *err)
{
	struct conn *c = ud;
	return job_own_container(c->e, &c->job, ref, id, err);
}

static int p_own_network(void *ud, const char *ref, char id[static 65], struct vm_error *err)
{
	struct conn *c = ud;
	return job_own_network(c->e, &c->job, ref, id, true, err);
}

/* A named volume in a create: the job's own, or a new one made now with
 * the job's label (the engine would make it without). */
static int p_use_volume(void *ud, const char *name, struct vm_error *err)
{
	struct conn *c = ud;
	int r = job_own_volume(c->e, &c->job, name, err);
	if (r != 0)
		return r;
	if (!job_valid_ref(name))
		return 0;
	char path[512];
	snprintf(path, sizeof(path), "/volumes/%s", name);
	long status = 0;
	if ((r = up_call(c->e, "GET", path, NULL, &status, NULL, err)) < 0)
		return r;
	if (status != 404)
		return 0; /* another job's, or the host's */
	_cleanup_json_ json_t *body = json_pack("{s:s, s:{s:s}}", "Name", name, "Labels",
						POLICY_LABEL_JOB, c->job.id);
	_cleanup_json_ json_t *made = NULL;
	if ((r = up_call(c->e, "POST", "/volumes/create", body, &status, &made, err)) < 0)
		return r;
	if (status != 201 && status != 200)
		return vm_error_set(err, EIO, "the engine answered %ld to creating volume %s", status, name);
	/* Made meanwhile by someone else: the engine answers with theirs. */
	const char *label = json_string_value(
		json_object_get(json_object_get(made, "Labels"), POLICY_LABEL_JOB));
	if (!label || strcmp(label, c->job.id) != 0)
		return 0;
	state_add(c->e, REC_VOLUME, name, c->job.id, "");
	return 1;
}

static int p_bind(void *ud, const char *path, bool create, struct bind_target *ret,
		  struct vm_error *err)
{
	struct conn *c = ud;
	return pin_bind_source(c->e, &c->job, path, create, c->tag, ret, err);
}

/* Checks of the build's query: the classic builder runs each step in a
 * container made from these. */
static const char *build_refused(const char *url)
{
	char v[256];
	unsigned n;
	const char *s = route_query_get(url, "networkmode", v, sizeof(v), &n);
	if (n > 1 || (s && *s && strcmp(s, "default") && strcmp(s, "bridge") && strcmp(s, "none")))
		return "docker build --network other than default, bridge or none is refused on the engine socket";
	/* (CLIs before v28 always send it, empty) */
	s = route_query_get(url, "cgroupparent", v, sizeof(v), &n);
	if (n > 1 || (s && *s))
		return "docker build --cgroup-parent is refused on the engine socket";
	s = route_query_get(url, "isolation", v, sizeof(v), &n);
	if (n > 1 || (s && *s && strcmp(s, "default")))
		return "docker build --isolation is refused on the engine socket";
	/* A context the engine fetches itself (a git or http URL) is fetched
	 * from the engine's network: its host's neighbours, its metadata
	 * address.  Contexts come from the job. */
	s = route_query_get(url, "remote", v, sizeof(v), &n);
	if (n > 1 || (s && *s))
		return "docker build from a URL (the engine would fetch it) is refused on the engine socket: clone it in the job and build the directory";
	/* A path in the context, as every CLI sends it: Podman's compat
	 * build also takes an absolute path of its host, a URL or a list. */
	s = route_query_get(url, "dockerfile", v, sizeof(v), &n);
	if (n > 1 || (s && (s[0] == '/' || s[0] == '[' || strstr(s, "://") || strcmp(s, "..") == 0 ||
			    strncmp(s, "../", 3) == 0 || strstr(s, "/../") ||
			    (strlen(s) >= 3 && strcmp(s + strlen(s) - 3, "/..") == 0))))
		return "docker build -f: a Dockerfile outside the build context is refused on the engine socket";
	s = route_query_get(url, "version", v, sizeof(v), &n);
	if (n > 1 || (s && strcmp(s, "1")) || route_query_get(url, "session", v, sizeof(v), &n) || n)
		return "BuildKit builds are not offered on the engine socket: build with DOCKER_BUILDKIT=0";
	return NULL;
}

/* What a job may do to its own container, the one the runner made: look
 * (inspect, logs, top, stats, changes, export, cp), exec, wait -- not
 * stop, kill, remove, rename, pause, attach or restart it, which would
 * end or hijack the job itself (`docker rm -f $(docker ps -aq)`). */
static bool root_op_ok(const char *method, const struct route *rt)
{
	static const char *const ok[] = {"json", "top", "logs", "changes", "export", "stats",
					 "archive", "exec", "wait", NULL};
	if (strcmp(method, "DELETE") == 0)
		return false;
	for (const char *const *o = ok; *o; o++)
		if (strcmp(rt->op, *o) == 0)
			return true;
	return false;
}

/* Decide what to do with the request; <0 when it was answered (refused)
 * and the connection is to close. */
static int plan_request(struct conn *c, const struct route *rt, struct plan *pl)
{
	const char *q = strchr(c->req.url, '?');
	char v[24] = "";
	if (rt->version[0])
		snprintf(v, sizeof(v), "/v%s", rt->version);
	q = q ? q : "";
	char id[ENGINED_ID_MAX + 1];
	struct vm_error err = {0};
	int r;
	if (strlen(q) > 8000) {
		reply_error(c, 414, "volmgr-engined: a query over 8000 bytes");
		return -E2BIG;
	}
	/* The decoded path (what the engine's router matches), the query
	 * as the client sent it. */
	snprintf(pl->url, sizeof(pl->url), "%s%s", rt->path, q);
	switch (rt->kind) {
	case R_REFUSE:
		reply_error(c, 403, "volmgr-engined: %s %s: %s", c->req.method, c->req.url, rt->why);
		return -EPERM;
	case R_SHARED: {
		/* docker import URL: the same, for images. */
		char src[64];
		unsigned n;
		const char *f = route_query_get(c->req.url, "fromSrc", src, sizeof(src), &n);
		if (strstr(rt->path, "/images/create") && (n > 1 || (f && strcmp(f, "-") != 0))) {
			reply_error(c, 403, "volmgr-engined: docker import from a URL (the engine would fetch it) is refused on the engine socket: download it in the job and import the file");
			return -EPERM;
		}
		/* Podman's forced image remove also removes every container
		 * made from it, other jobs' too (Docker's never does). */
		char force[16];
		f = route_query_get(c->req.url, "force", force, sizeof(force), &n);
		if (strcmp(c->req.method, "DELETE") == 0 &&
		    (n > 1 || (f && *f && strcmp(f, "0") && strcasecmp(f, "false") && strcasecmp(f, "f")))) {
			int k = up_kind(c->e, &err);
			if (k < 0) {
				reply_error(c, 502, "volmgr-engined: %s", err.msg);
				return k;
			}
			if (k == UP_PODMAN) {
				reply_error(c, 403, "volmgr-engined: docker rmi -f is refused on an engine socket in front of Podman, whose force also removes the containers of the image, other jobs' too");
				return -EPERM;
			}
		}
		return 0;
	}
	case R_BUILD: {
		const char *why = build_refused(c->req.url);
		if (why) {
			reply_error(c, 403, "volmgr-engined: %s", why);
			return -EPERM;
		}
		/* The classic builder's step containers are the engine's, not
		 * the job's: none may outlive the build (--rm=false or a failed
		 * step would leave them, never swept, with the job's files). */
		char kept[8002], rest[8002]; /* the query is at most 8000 (above) */
		if (!route_query_copy(c->req.url, "rm", kept, sizeof(kept)) ||
		    !route_query_copy(kept, "forcerm", rest, sizeof(rest))) {
			reply_error(c, 414, "volmgr-engined: a query over 8000 bytes");
			return -E2BIG;
		}
		/* Podman's compat build runs RUN steps in its own service's
		 * network namespace unless given nsoptions (compat
		 * images_build.go): a private one instead, with no network
		 * but loopback for --network none (which it would ignore). */
		const char *ns = "";
		int k = up_kind(c->e, &err);
		if (k < 0) {
			reply_error(c, 502, "volmgr-engined: %s", err.msg);
			return k;
		}
		if (k == UP_PODMAN) {
			char nm[32];
			unsigned n;
			const char *mode = route_query_get(c->req.url, "networkmode", nm, sizeof(nm), &n);
			bool none = mode && strcmp(mode, "none") == 0;
			if (!route_query_copy(rest, "networkmode", kept, sizeof(kept))) {
				reply_error(c, 414, "volmgr-engined: a query over 8000 bytes");
				return -E2BIG;
			}
			snprintf(rest, sizeof(rest), "%s", kept);
			ns = none ? "&nsoptions=%5B%7B%22Name%22%3A%22network%22%2C%22Host%22%3Afalse%7D%5D"
				    "&networkmode=NetworkDisabled"
				  : "&nsoptions=%5B%7B%22Name%22%3A%22network%22%2C%22Host%22%3Afalse%7D%5D";
		}
		snprintf(pl->url, sizeof(pl->url), "%s%s%crm=1&forcerm=1%s", rt->path, rest,
			 rest[0] ? '&' : '?', ns);
		return 0;
	}
	case R_COMMIT: {
		char ref[256];
		unsigned n;
		const char *s = route_query_get(c->req.url, "container", ref, sizeof(ref), &n);
		if (!s || n != 1 || (r = job_own_container(c->e, &c->job, s, id, &err)) <= 0) {
			reply_error(c, 404, "No such container: %s", s ? s : "");
			return -ENOENT;
		}
		/* Passed on by the id checked, not the name: a name may be
		 * taken by another job's container in between. */
		char rest[8100]; /* the query is at most 8000 (above) */
		if (!route_query_copy(c->req.url, "container", rest, sizeof(rest))) {
			reply_error(c, 414, "volmgr-engined: a query over 8000 bytes");
			return -E2BIG;
		}
		snprintf(pl->url, sizeof(pl->url), "%s%s%ccontainer=%s", rt->path, rest,
			 rest[0] ? '&' : '?', id);
		return 0;
	}
	case R_CONTAINER_LIST: {
		pl->mode = M_LIST;
		pl->kind = REC_CONTAINER;
		/* docker ps -n N / -l: the engine's limit would count other
		 * jobs' containers; it is applied after the filter instead. */
		char lim[32], rest[8192];
		unsigned n;
		const char *l = route_query_get(c->req.url, "limit", lim, sizeof(lim), &n);
		if (l && route_query_copy(c->req.url, "limit", rest, sizeof(rest))) {
			pl->limit = strtol(l, NULL, 10);
			snprintf(pl->url, sizeof(pl->url), "%s%s", rt->path, rest);
		}
		return 0;
	}
	case R_CONTAINER_CREATE:
		pl->buffer_body = true;
		pl->mode = M_CAPTURE;
		pl->kind = REC_CONTAINER;
		pl->after = A_MADE;
		return 0;
	case R_CONTAINER:
	case R_EXEC_CREATE:
		r = job_own_container(c->e, &c->job, rt->id, id, &err);
		if (r < 0) {
			reply_error(c, 502, "volmgr-engined: %s", err.msg);
			return r;
		}
		if (r == 0) {
			reply_error(c, 404, "No such container: %s", rt->id);
			return -ENOENT;
		}
		if (strcmp(id, c->job.id) == 0 && !root_op_ok(c->req.method, rt)) {
			reply_error(c, 403, "volmgr-engined: %.12s is this job's own container (the runner's): "
				    "the engine socket lets a job look into it and exec in it, not stop, "
				    "remove or attach to it", id);
			return -EPERM;
		}
		if (strcmp(rt->op, "start") == 0 && (c->req.chunked || c->req.length > 0)) {
			reply_error(c, 403, "volmgr-engined: a container start takes no body on the engine socket");
			return -EPERM;
		}
		snprintf(pl->url, sizeof(pl->url), "%s/containers/%s%s%s%s", v, id, rt->op[0] ? "/" : "",
			 rt->op, q);
		if (rt->kind == R_EXEC_CREATE)
			pl->buffer_body = true;
		if (strcmp(c->req.method, "DELETE") == 0) {
			pl->after = A_DELETED;
			pl->kind = REC_CONTAINER;
			snprintf(pl->obj, sizeof(pl->obj), "%s", id);
		}
		return 0;
	case R_EXEC: {
		char path[512];
		long status = 0;
		_cleanup_json_ json_t *ex = NULL;
		if (!job_valid_ref(rt->id))
			r = 0;
		else {
			snprintf(path, sizeof(path), "/exec/%s/json", rt->id);
			r = up_call(c->e, "GET", path, NULL, &status, &ex, &err);
		}
		const char *ctr = json_string_value(json_object_get(ex, "ContainerID"));
		if (r < 0) {
			reply_error(c, 502, "volmgr-engined: %s", err.msg);
			return r;
		}
		if (status != 200 || !ctr || job_own_container(c->e, &c->job, ctr, id, &err) != 1) {
			reply_error(c, 404, "No such exec instance: %s", rt->id);
			return -ENOENT;
		}
		return 0;
	}
	case R_NETWORK_LIST:
		pl->mode = M_LIST;
		pl->kind = REC_NETWORK;
		return 0;
	case R_NETWORK_CREATE:
		pl->buffer_body = true;
		pl->mode = M_CAPTURE;
		pl->kind = REC_NETWORK;
		pl->after = A_MADE;
		return 0;
	case R_NETWORK:
	case R_NETWORK_CONNECT: {
		bool reading = strcmp(c->req.method, "GET") == 0 || rt->kind == R_NETWORK_CONNECT;
		r = job_own_network(c->e, &c->job, rt->id, id, reading, &err);
		if (r < 0) {
			reply_error(c, 502, "volmgr-engined: %s", err.msg);
			return r;
		}
		if (r == 0) {
			reply_error(c, 404, "network %s not found", rt->id);
			return -ENOENT;
		}
		snprintf(pl->url, sizeof(pl->url), "%s/networks/%s%s%s%s", v, id, rt->op[0] ? "/" : "",
			 rt->op, q);
		pl->buffer_body = rt->kind == R_NETWORK_CONNECT;
		if (strcmp(c->req.method, "DELETE") == 0) {
			pl->after = A_DELETED;
			pl->kind = REC_NETWORK;
			snprintf(pl->obj, sizeof(pl->obj), "%s", id);
		}
		return 0;
	}
	case R_VOLUME_LIST:
		pl->mode = M_LIST;
		pl->kind = REC_VOLUME;
		return 0;
	case R_VOLUME_CREATE:
		pl->buffer_body = true;
		pl->mode = M_CAPTURE;
		pl->kind = REC_VOLUME;
		pl->after = A_MADE;
		return 0;
	case R_VOLUME: {
		char job[ENGINED_ID_MAX + 1];
		bool made = state_job_of(c->e, REC_VOLUME, rt->id, job) && strcmp(job, c->job.id) == 0;
		bool del = strcmp(c->req.method, "DELETE") == 0;
		if (!job_valid_ref(rt->id) || !(made || (!del && own(c, REC_VOLUME, rt->id)))) {
			reply_error(c, 404, "get %s: no such volume", rt->id);
			return -ENOENT;
		}
		if (del) {
			pl->after = A_DELETED;
			pl->kind = REC_VOLUME;
			snprintf(pl->obj, sizeof(pl->obj), "%s", rt->id);
		}
		return 0;
	}
	case R_EVENTS:
		pl->mode = M_EVENTS;
		return 0;
	case R_PRUNE:
		return 0; /* answered by prune() */
	}
	return 0;
}

/* The buffered body, checked and rewritten; <0 when answered. */
static int rewrite_body(struct conn *c, const struct route *rt, struct plan *pl)
{
	struct dbuf b = {.max = BODY_MAX};
	int r = http_read_body(&c->in, false, dbuf_sink, &b);
	if (r < 0) {
		free(b.p);
		if (b.too_long)
			reply_error(c, 413, "volmgr-engined: a request body over %d bytes", BODY_MAX);
		return r;
	}
	json_error_t jerr;
	pl->body = b.len ? json_loadb(b.p, b.len, JSON_REJECT_DUPLICATES, &jerr) : json_object();
	free(b.p);
	if (!pl->body) {
		reply_error(c, 400, "volmgr-engined: the body is not JSON: %s", jerr.text);
		return -EINVAL;
	}
	static const struct policy_ops ops = {
		.own_container = p_own_container,
		.own_network = p_own_network,
		.use_volume = p_use_volume,
		.bind = p_bind,
	};
	struct policy_ops o = ops;
	o.ud = c;
	struct vm_error err = {0};
	int kind = up_kind(c->e, &err);
	if (kind < 0) {
		reply_error(c, 502, "volmgr-engined: %s", err.msg);
		return kind;
	}
	struct policy p = {.rules = &c->e->rules, .ops = &o, .job = c->job.id, .podman = kind == UP_PODMAN};
	switch (rt->kind) {
	case R_CONTAINER_CREATE:
		r = policy_container_create(&p, pl->body, &err);
		break;
	case R_EXEC_CREATE:
		r = policy_exec_create(&p, pl->body, &err);
		break;
	case R_NETWORK_CREATE:
		r = policy_network_create(&p, pl->body, &err);
		break;
	case R_VOLUME_CREATE:
		r = policy_volume_create(&p, pl->body, &err);
		break;
	case R_NETWORK_CONNECT:
		r = policy_network_connect(&p, pl->body, &err);
		break;
	default:
		r = 0;
	}
	if (r < 0) {
		/* Never 404: the CLI takes a 404 to a create for "no such
		 * image" and pulls. */
		reply_error(c, err.code == EPERM ? 403 : 400, "volmgr-engined: %s", err.msg);
		return r;
	}
	return 0;
}

/* After the engine answered: what was made is the job's, what was
 * removed leaves the records. */
/* The volumes a new container got that nobody named: anonymous ones
 * the engine made for the image's VOLUMEs (64 hex digits); they are the
 * job's (compose hands them to the container that replaces it). */
static void record_anonymous_volumes(struct conn *c, const char *id)
{
	char path[256];
	snprintf(path, sizeof(path), "/containers/%s/json", id);
	long status = 0;
	struct vm_error err = {0};
	_cleanup_json_ json_t *ctr = NULL;
	if (up_call(c->e, "GET", path, NULL, &status, &ctr, &err) < 0 || status != 200)
		return;
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(ctr, "Mounts"), i, m) {
		const char *type = json_string_value(json_object_get(m, "Type"));
		const char *name = json_string_value(json_object_get(m, "Name"));
		if (type && strcmp(type, "volume") == 0 && name && strlen(name) == 64 &&
		    strspn(name, "0123456789abcdef") == 64 && !own(c, REC_VOLUME, name))
			state_add(c->e, REC_VOLUME, name, c->job.id, "");
	}
}

/* <0 if something made could not be recorded: it is removed again,
 * since what is not recorded would outlive its job. */
static int after(struct conn *c, struct plan *pl, json_t *answer)
{
	int s = c->resp.status;
	if (pl->after == A_MADE && (s == 200 || s == 201)) {
		const char *id = json_string_value(json_object_get(answer, pl->kind == REC_VOLUME ? "Name" : "Id"));
		/* A create of a name that exists answers with that volume
		 * (Docker's local driver): it is the job's only if it carries
		 * the label this create set. */
		const char *label = json_string_value(
			json_object_get(json_object_get(answer, "Labels"), POLICY_LABEL_JOB));
		if (pl->kind == REC_VOLUME && !(label && strcmp(label, c->job.id) == 0))
			id = NULL;
		if (id && state_add(c->e, pl->kind, id, c->job.id, "") < 0) {
			char path[512];
			long status = 0;
			struct vm_error err = {0};
			snprintf(path, sizeof(path), "/%s/%s%s",
				 pl->kind == REC_CONTAINER ? "containers" : pl->kind == REC_NETWORK ? "networks" : "volumes",
				 id, pl->kind == REC_CONTAINER ? "?force=1&v=1" : "");
			up_call(c->e, "DELETE", path, NULL, &status, NULL, &err);
			return -ENOSPC;
		}
		if (id) {
			if (pl->kind == REC_CONTAINER) {
				state_pins_to(c->e, c->tag, id);
				record_anonymous_volumes(c, id);
			}
		}
	}
	if (pl->after == A_DELETED && s >= 200 && s < 300)
		state_remove(c->e, pl->kind, pl->obj);
	return 0;
}

/* A refused request's body, read and dropped (up to DRAIN_MAX): a
 * client still writing it would otherwise see its write fail before it
 * reads why (Go's transport reports "broken pipe" then). */
#define DRAIN_MAX (256LL * 1024 * 1024)
static int drain_sink(void *ud, const char *d, size_t n)
{
	long long *left = ud;
	*left -= (long long)n;
	return *left < 0 ? -EMSGSIZE : 0;
}

static void drain_body(struct conn *c)
{
	if (!c->in.msg_done && (c->req.chunked || c->req.length > 0)) {
		long long left = DRAIN_MAX;
		int idle = c->in.timeout_ms;
		c->in.timeout_ms = 30000;
		http_read_body(&c->in, false, drain_sink, &left);
		c->in.timeout_ms = idle;
	}
}

static void release_pins_of_tag(struct conn *c)
{
	size_t n;
	_cleanup_free_ struct record *recs = state_copy(c->e, &n);
	for (size_t i = 0; recs && i < n; i++)
		if (recs[i].kind == REC_PIN && strcmp(recs[i].container, c->tag) == 0)
			pin_release(c->e, recs[i].id);
}

/* The client is still there: a stream that may stay quiet for long
 * (events, logs -f, wait) would otherwise keep a thread for a client
 * that left until the engine's next byte. */
#define QUIET_CHECK_MS 30000
static bool client_alive(struct conn *c)
{
	struct pollfd p = {.fd = c->fd, .events = POLLRDHUP};
	return poll(&p, 1, 0) == 0 || !(p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* http_read_body on the engine's answer, waking up now and then to see
 * whether the client went away meanwhile. */
static int read_answer(struct conn *c, bool raw, http_sink_fn sink, void *ud)
{
	c->up.timeout_ms = QUIET_CHECK_MS;
	for (;;) {
		int r = http_read_body(&c->up, raw, sink, ud);
		if (r != -ETIMEDOUT)
			return r;
		if (!client_alive(c))
			return -ECONNRESET;
	}
}

/* docker container/network/volume/image/builder prune, and so system
 * prune: what is the job's own and unused goes; the image cache and the
 * build cache are every job's, and are left alone (an empty answer, as
 * from an engine with nothing to prune).  The engine's filters (until,
 * label) are not applied. */
static bool prune(struct conn *c, const struct route *rt)
{
	static const struct {
		const char *op, *list;
		enum record_kind kind;
	} kinds[] = {
		{"containers", "ContainersDeleted", REC_CONTAINER},
		{"networks", "NetworksDeleted", REC_NETWORK},
		{"volumes", "VolumesDeleted", REC_VOLUME},
	};
	_cleanup_json_ json_t *answer = json_object();
	if (strcmp(rt->op, "images") == 0)
		json_object_set_new(answer, "ImagesDeleted", json_null());
	if (strcmp(rt->op, "build") == 0)
		json_object_set_new(answer, "CachesDeleted", json_null());
	for (size_t k = 0; k < ELEMENTSOF(kinds); k++) {
		if (strcmp(rt->op, kinds[k].op) != 0)
			continue;
		json_t *gone = json_array();
		json_object_set_new(answer, kinds[k].list, gone);
		size_t n;
		_cleanup_free_ struct record *recs = state_copy(c->e, &n);
		for (size_t i = 0; recs && i < n; i++) {
			if (recs[i].kind != kinds[k].kind || strcmp(recs[i].job, c->job.id) != 0)
				continue;
			char path[512];
			long status = 0;
			struct vm_error err = {0};
			_cleanup_json_ json_t *obj = NULL;
			snprintf(path, sizeof(path), "/%s/%s", kinds[k].op, recs[i].id);
			if (kinds[k].kind == REC_CONTAINER) {
				/* Only what does not run. */
				strcat(path, "/json");
				if (up_call(c->e, "GET", path, NULL, &status, &obj, &err) < 0 || status != 200)
					continue;
				const char *st = json_string_value(json_object_get(json_object_get(obj, "State"), "Status"));
				if (!st || !(strcmp(st, "exited") == 0 || strcmp(st, "created") == 0 || strcmp(st, "dead") == 0))
					continue;
				snprintf(path, sizeof(path), "/%s/%s", kinds[k].op, recs[i].id);
			} else if (kinds[k].kind == REC_NETWORK) {
				if (up_call(c->e, "GET", path, NULL, &status, &obj, &err) < 0 || status != 200 ||
				    json_object_size(json_object_get(obj, "Containers")) > 0)
					continue;
			}
			/* The engine refuses a volume still in use. */
			if (up_call(c->e, "DELETE", path, NULL, &status, NULL, &err) < 0 || status >= 300)
				continue;
			state_remove(c->e, kinds[k].kind, recs[i].id);
			json_array_append_new(gone, json_string(recs[i].id));
		}
	}
	json_object_set_new(answer, "SpaceReclaimed", json_integer(0));
	return reply_json(c, 200, answer) == 0 && c->req.keep_alive;
}

/* Returns true to keep the connection for another request. */
static bool handle(struct conn *c)
{
	struct route rt;
	route_classify(c->req.method, c->req.url, &rt);
	struct plan pl = {0};
	snprintf(c->tag, sizeof(c->tag), "req-");
	vm_random_hex(c->tag + 4, 24);
	c->tag[28] = '\0';
	bool keep = false;
	int ufd = -1;
	json_t *answer = NULL;
	_cleanup_free_ char *payload = NULL;
	if (rt.kind == R_PRUNE) {
		/* (its body, if any, is not read: drained below) */
		drain_body(c);
		keep = prune(c, &rt);
		goto out;
	}
	if (plan_request(c, &rt, &pl) < 0) {
		drain_body(c);
		goto out;
	}
	if (pl.buffer_body && rewrite_body(c, &rt, &pl) < 0)
		goto out;
	struct vm_error err = {0};
	if ((ufd = up_connect(c->e, &err)) < 0) {
		reply_error(c, 502, "volmgr-engined: %s", err.msg);
		goto out;
	}
	bool has_body = c->req.chunked || (c->req.has_length && c->req.length > 0);
	bool upgrade = rt.hijack && c->req.upgrade;
	if (c->req.upgrade && !rt.hijack) {
		reply_error(c, 403, "volmgr-engined: an Upgrade is taken on attach and exec start only");
		goto out;
	}
	if (upgrade) {
		const char *proto = http_head_get(&c->req, "Upgrade");
		if (!proto || strcasecmp(proto, "tcp") != 0) {
			reply_error(c, 403, "volmgr-engined: only Upgrade: tcp is taken");
			goto out;
		}
	}
	payload = pl.body ? json_dumps(pl.body, JSON_COMPACT) : NULL;
	char framing[64] = "";
	if (payload)
		snprintf(framing, sizeof(framing), "Content-Length: %zu", strlen(payload));
	else if (c->req.chunked)
		snprintf(framing, sizeof(framing), "Transfer-Encoding: chunked");
	else if (has_body)
		snprintf(framing, sizeof(framing), "Content-Length: %llu", (unsigned long long)c->req.length);
	if (send_request_head(c, ufd, pl.url, framing[0] ? framing : NULL, upgrade) < 0)
		goto out;
	if (payload) {
		if (http_write_all(ufd, payload, strlen(payload)) < 0)
			goto out;
	} else if (!pl.buffer_body) {
		struct reframe f = {ufd, c->req.chunked};
		if (http_read_body(&c->in, false, has_body ? reframe_sink : NULL, &f) < 0)
			goto out;
		if (c->req.chunked && http_write_all(ufd, "0\r\n\r\n", 5) < 0)
			goto out;
	}
	http_reader_init(&c->up, ufd, HTTP_RESPONSE);
	c->up.no_body = strcmp(c->req.method, "HEAD") == 0;
	if (http_read_head(&c->up, &c->resp) < 0) {
		reply_error(c, 502, "volmgr-engined: no answer from the engine");
		goto out;
	}
	bool raw_stream = rt.hijack && (c->resp.status == 101 || (c->resp.status == 200 && c->resp.needs_eof));
	if (raw_stream) {
		/* From here on bytes, both ways, until both ends are done. */
		if (send_response_head(c, false, c->resp.status == 101, NULL) < 0)
			goto out;
		const char *rest;
		size_t n = http_reader_take(&c->up, &rest);
		if (n && http_write_all(c->fd, rest, n) < 0)
			goto out;
		n = http_reader_take(&c->in, &rest);
		if (n && http_write_all(ufd, rest, n) < 0)
			goto out;
		relay_raw(c->fd, ufd);
		goto out;
	}
	bool ok = c->resp.status >= 200 && c->resp.status < 300;
	if (pl.mode == M_EVENTS && ok) {
		if (send_response_head(c, false, false, "Transfer-Encoding: chunked\r\n") < 0)
			goto out;
		struct events ev = {.c = c, .line = {.max = EVENT_MAX}};
		int r = read_answer(c, false, events_sink, &ev);
		free(ev.line.p);
		if (r == 0 && http_write_all(c->fd, "0\r\n\r\n", 5) == 0)
			keep = c->req.keep_alive;
		goto out;
	}
	if ((pl.mode == M_LIST || pl.mode == M_CAPTURE) && !c->up.no_body) {
		struct dbuf b = {.max = LIST_MAX};
		int r = http_read_body(&c->up, false, dbuf_sink, &b);
		if (r < 0) {
			free(b.p);
			goto out;
		}
		answer = b.len ? json_loadb(b.p, b.len, 0, NULL) : NULL;
		_cleanup_free_ char *out = NULL;
		if (ok && pl.mode == M_LIST && answer) {
			json_t *a = pl.kind == REC_VOLUME ? json_object_get(answer, "Volumes") : answer;
			filter_array(c, a, pl.kind, pl.kind == REC_VOLUME ? "Name" : "Id", pl.limit);
			out = json_dumps(answer, JSON_COMPACT);
		}
		const char *body = out ? out : b.p ? b.p : "";
		size_t len = out ? strlen(out) : b.len;
		/* Recorded before the client hears of it: its next request
		 * (the attach of docker run) names what it just made. */
		if (after(c, &pl, answer) < 0) {
			reply_error(c, 503, "volmgr-engined: too many objects recorded; what was made is removed again");
			free(b.p);
			goto out;
		}
		char extra[64];
		snprintf(extra, sizeof(extra), "Content-Length: %zu\r\n", len);
		r = send_response_head(c, false, false, extra);
		if (r == 0 && len)
			r = http_write_all(c->fd, body, len);
		free(b.p);
		keep = r == 0 && c->req.keep_alive;
		goto out;
	}
	/* Verbatim, framing and all; a body that runs until the engine
	 * closes ends our connection too. */
	bool eof = c->resp.needs_eof;
	if (send_response_head(c, true, false, eof ? "Connection: close\r\n" : NULL) < 0)
		goto out;
	int fd = c->fd;
	if (read_answer(c, true, write_fd, &fd) < 0)
		goto out;
	(void)after(c, &pl, NULL); /* deletions: nothing to record */
	keep = !eof && c->req.keep_alive;
out:
	if (pl.after == A_MADE && pl.kind == REC_CONTAINER) {
		/* Pins that no container took: the create failed. */
		release_pins_of_tag(c);
	}
	json_decref(answer);
	json_decref(pl.body);
	if (ufd >= 0)
		close(ufd);
	return keep;
}

/* One more connection of job: false if it has its share already. */
static bool job_conn_take(struct engined *e, const char *job)
{
	bool ok = false;
	pthread_mutex_lock(&e->lock);
	int free_slot = -1;
	for (int i = 0; i < ENGINED_JOBS_MAX; i++) {
		if (e->job_conns[i].n && strcmp(e->job_conns[i].job, job) == 0) {
			ok = e->job_conns[i].n < ENGINED_JOB_CONNS_MAX;
			e->job_conns[i].n += ok;
			free_slot = -2;
			break;
		}
		if (!e->job_conns[i].n && free_slot == -1)
			free_slot = i;
	}
	if (free_slot >= 0) {
		snprintf(e->job_conns[free_slot].job, sizeof(e->job_conns[free_slot].job), "%s", job);
		e->job_conns[free_slot].n = 1;
		ok = true;
	}
	pthread_mutex_unlock(&e->lock);
	return ok;
}

static void job_conn_give(struct engined *e, const char *job)
{
	pthread_mutex_lock(&e->lock);
	for (int i = 0; i < ENGINED_JOBS_MAX; i++)
		if (e->job_conns[i].n && strcmp(e->job_conns[i].job, job) == 0) {
			e->job_conns[i].n--;
			break;
		}
	pthread_mutex_unlock(&e->lock);
}

void proxy_connection(struct engined *e, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->e = e;
	c->fd = fd;
	c->job.pidfd = -1;
	http_reader_init(&c->in, fd, HTTP_REQUEST);
	c->in.timeout_ms = IDLE_MS;
	struct vm_error err = {0};
	if (job_of_caller(e, fd, &c->job, &err) < 0) {
		/* Read the request first, so that the client sees the answer
		 * rather than a reset. */
		if (http_read_head(&c->in, &c->req) == 0)
			reply_error(c, 403, "volmgr-engined: %s", err.msg);
		fprintf(stderr, "volmgr-engined: refused a caller: %s\n", err.msg);
	} else if (job_conn_take(e, c->job.id)) {
		while (http_read_head(&c->in, &c->req) == 0 && handle(c))
			;
		job_conn_give(e, c->job.id);
	} else if (http_read_head(&c->in, &c->req) == 0) {
		reply_error(c, 429, "volmgr-engined: this job has %d connections open already",
			    ENGINED_JOB_CONNS_MAX);
	}
	job_done(&c->job);
	close(fd);
	free(c);
}
