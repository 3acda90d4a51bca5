/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* HTTP/1.1 framing for the engine socket, both ways, with llhttp (the
 * parser Node.js uses; Debian 12 ships its C sources in node-llhttp).
 * A reader owns one socket and a fixed buffer: it parses one message
 * head, stops, lets the caller decide, then hands the body to a sink --
 * decoded (to rewrite or re-frame it) or as the raw bytes that framed
 * it (to relay a response verbatim).  What is left in the buffer after
 * a message (a pipelined request, the first bytes of an upgraded
 * stream) stays there for the next step.  Nothing here allocates. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "llhttp.h"

#define HTTP_HEADERS_MAX 64
/* A head's request line or status line plus its headers, at most this
 * many bytes: Docker's CLI sends about 300, a registry token header a
 * few KiB.  Go's net/http allows 1 MiB; no client here needs that. */
#define HTTP_HEAD_MAX (64 * 1024)
#define HTTP_BUF_SIZE (64 * 1024)

struct http_header {
	const char *name;
	const char *value;
};

struct http_head {
	char method[16];      /* requests */
	const char *url;      /* requests */
	int status;           /* responses */
	const char *reason;   /* responses */
	struct http_header h[HTTP_HEADERS_MAX];
	size_t n;
	bool upgrade;         /* Connection: upgrade + Upgrade:, or a 101 */
	bool chunked;
	bool has_length;
	uint64_t length;
	bool keep_alive;
	bool needs_eof;       /* responses: the body runs until the peer closes */
	/* Strings above point here. */
	size_t used;
	char store[HTTP_HEAD_MAX];
};

const char *http_head_get(const struct http_head *h, const char *name);

/* Where a body goes: data, n bytes; a negative return stops the read
 * with that error. */
typedef int (*http_sink_fn)(void *userdata, const char *data, size_t n);

struct http_reader {
	int fd;
	llhttp_t p;
	llhttp_settings_t s;
	struct http_head *head;
	bool in_value;        /* the last header callback was a value */
	bool head_too_big;
	bool head_done, msg_done;
	bool no_body;         /* a response to HEAD: headers only */
	bool dead;            /* upgraded or broken: no further message */
	bool raw;             /* sink gets the framing bytes, not the body */
	http_sink_fn sink;
	void *userdata;
	int sink_error;
	int timeout_ms;       /* per read; -1 waits forever */
	size_t off, len;      /* unparsed bytes: buf[off, len) */
	char buf[HTTP_BUF_SIZE];
};

/* type: HTTP_REQUEST or HTTP_RESPONSE. */
void http_reader_init(struct http_reader *r, int fd, llhttp_type_t type);

/* Read and parse up to the end of the next message's head into *head.
 * 0 when it is there; -ECONNRESET for a peer that closed before a byte
 * of it (a keep-alive connection ending), -EBADMSG (not HTTP, or a head
 * too big), -ETIMEDOUT, or another negative errno.  For a response,
 * set r->no_body first if the request was a HEAD. */
int http_read_head(struct http_reader *r, struct http_head *head);

/* Read the rest of the message begun by http_read_head, giving the
 * body to sink (decoded; with raw, the bytes as they came, framing and
 * all).  A body that runs until the peer closes ends at its close. */
int http_read_body(struct http_reader *r, bool raw, http_sink_fn sink, void *userdata);

/* Bytes read past the message (buf[off, len)), and drop them. */
size_t http_reader_take(struct http_reader *r, const char **ret);

/* Write all of buf to fd (a socket: no SIGPIPE). */
int http_write_all(int fd, const void *buf, size_t n);
