/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What a request to the engine socket asks for: each Docker Engine API
 * endpoint a CI job uses, by method and path, and which rule it falls
 * under.  Anything not listed is refused, never passed through.  Pure:
 * no I/O, so the fuzzer and the unit test drive it directly. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum route_kind {
	R_REFUSE,            /* why says why */
	R_SHARED,            /* the same for every job: ping, version, images */
	R_BUILD,             /* shared, but its query is checked */
	R_COMMIT,            /* an image from ?container=, which must be the job's */
	R_CONTAINER_LIST,
	R_CONTAINER_CREATE,
	R_CONTAINER,         /* /containers/{id}[/op]: the job's own only */
	R_EXEC_CREATE,       /* /containers/{id}/exec: the body is checked too */
	R_EXEC,              /* /exec/{id}/op: the exec's container must be the job's */
	R_NETWORK_LIST,
	R_NETWORK_CREATE,
	R_NETWORK,           /* /networks/{id} */
	R_NETWORK_CONNECT,   /* /networks/{id}/connect|disconnect: + the container */
	R_VOLUME_LIST,
	R_VOLUME_CREATE,
	R_VOLUME,            /* /volumes/{name} */
	R_EVENTS,
	R_PRUNE,             /* a prune: of the job's own only; op says what */
};

#define ROUTE_ID_MAX 255

#define ROUTE_PATH_MAX 1024

struct route {
	enum route_kind kind;
	char path[ROUTE_PATH_MAX + 1]; /* the path, percent-decoded and checked */
	const char *why;           /* R_REFUSE */
	char version[16];          /* "1.41" from /v1.41/..., "" for none */
	char id[ROUTE_ID_MAX + 1]; /* the object named in the path */
	char op[32];               /* what follows it: "start", "" for none */
	bool hijack;               /* attach, exec start: may become a raw stream */
	bool streams_body;         /* the request body is forwarded as it comes */
};

/* The oldest API version taken: before 1.24, POST /containers/{id}/start
 * still applied a HostConfig in its body (moby's postContainersStart),
 * which would bypass every check of the create. */
#define ROUTE_MIN_API_MAJOR 1
#define ROUTE_MIN_API_MINOR 24

/* Classify method + url (path and query, as the request line had it). */
void route_classify(const char *method, const char *url, struct route *ret);

/* Keys are matched ignoring case below, as Podman matches them (a
 * query spelling one key two ways is refused by route_classify). */

/* url's query ("" or "?..."), without the pairs whose key is drop
 * (NULL: none dropped), into buf; false if it does not fit. */
bool route_query_copy(const char *url, const char *drop, char *buf, size_t size);

/* The query string's value of key (the first), percent-decoded into
 * buf; NULL if absent or not decodable.  *n_seen counts every value of
 * key, so callers can refuse a key given twice. */
const char *route_query_get(const char *url, const char *key, char *buf, size_t size,
			    unsigned *n_seen);
