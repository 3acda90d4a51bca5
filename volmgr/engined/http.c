/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "http.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

const char *http_head_get(const struct http_head *h, const char *name)
{
	for (size_t i = 0; i < h->n; i++)
		if (strcasecmp(h->h[i].name, name) == 0)
			return h->h[i].value;
	return NULL;
}

/* Strings of a head are built in its store as llhttp hands them over,
 * possibly in pieces: a piece always extends the string begun last. */
static char *store_begin(struct http_reader *r)
{
	struct http_head *h = r->head;
	if (h->used >= sizeof(h->store)) {
		r->head_too_big = true;
		return NULL;
	}
	char *s = h->store + h->used;
	*s = '\0';
	h->used++;
	return s;
}

static int store_append(struct http_reader *r, const char *at, size_t n)
{
	struct http_head *h = r->head;
	if (h->used + n > sizeof(h->store)) {
		r->head_too_big = true;
		return -1;
	}
	/* The terminating NUL of the current string is at used - 1. */
	memcpy(h->store + h->used - 1, at, n);
	h->used += n;
	h->store[h->used - 1] = '\0';
	return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
	struct http_reader *r = p->data;
	if (!r->head->url && !(r->head->url = store_begin(r)))
		return -1;
	return store_append(r, at, n);
}

static int on_status(llhttp_t *p, const char *at, size_t n)
{
	struct http_reader *r = p->data;
	if (!r->head->reason && !(r->head->reason = store_begin(r)))
		return -1;
	return store_append(r, at, n);
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
	struct http_reader *r = p->data;
	struct http_head *h = r->head;
	if (h->n == 0 || r->in_value) {
		if (h->n == HTTP_HEADERS_MAX) {
			r->head_too_big = true;
			return -1;
		}
		if (!(h->h[h->n].name = store_begin(r)))
			return -1;
		h->h[h->n].value = NULL;
		h->n++;
		r->in_value = false;
	}
	return store_append(r, at, n);
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
	struct http_reader *r = p->data;
	struct http_head *h = r->head;
	if (h->n == 0)
		return -1;
	if (!r->in_value) {
		if (!(h->h[h->n - 1].value = store_begin(r)))
			return -1;
		r->in_value = true;
	}
	return store_append(r, at, n);
}

static int on_headers_complete(llhttp_t *p)
{
	struct http_reader *r = p->data;
	struct http_head *h = r->head;
	/* A header with no value at all ("X:") */
	for (size_t i = 0; i < h->n; i++)
		if (!h->h[i].value)
			h->h[i].value = "";
	if (p->type == HTTP_REQUEST)
		snprintf(h->method, sizeof(h->method), "%s", llhttp_method_name(p->method));
	else
		h->status = p->status_code;
	if (!h->url)
		h->url = "";
	if (!h->reason)
		h->reason = "";
	h->upgrade = p->upgrade;
	h->chunked = (p->flags & F_CHUNKED) != 0;
	h->has_length = (p->flags & F_CONTENT_LENGTH) != 0;
	h->length = p->content_length;
	h->keep_alive = llhttp_should_keep_alive(p);
	h->needs_eof = p->type == HTTP_RESPONSE && llhttp_message_needs_eof(p);
	r->head_done = true;
	/* A response to HEAD has no body whatever its headers say (1);
	 * otherwise stop here so that the caller decides what the body is
	 * for before a byte of it is read. */
	if (r->no_body) {
		h->needs_eof = false;
		return 1;
	}
	return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
	struct http_reader *r = p->data;
	if (r->raw || !r->sink)
		return 0;
	int e = r->sink(r->userdata, at, n);
	if (e < 0) {
		r->sink_error = e;
		return -1;
	}
	return 0;
}

static int on_message_complete(llhttp_t *p)
{
	struct http_reader *r = p->data;
	r->msg_done = true;
	return HPE_PAUSED;
}

void http_reader_init(struct http_reader *r, int fd, llhttp_type_t type)
{
	r->fd = fd;
	r->off = r->len = 0;
	r->timeout_ms = -1;
	r->head = NULL;
	r->in_value = r->head_too_big = r->head_done = r->msg_done = false;
	r->no_body = r->raw = r->dead = false;
	r->sink = NULL;
	r->userdata = NULL;
	r->sink_error = 0;
	llhttp_settings_init(&r->s);
	r->s.on_url = on_url;
	r->s.on_status = on_status;
	r->s.on_header_field = on_header_field;
	r->s.on_header_value = on_header_value;
	r->s.on_headers_complete = on_headers_complete;
	r->s.on_body = on_body;
	r->s.on_message_complete = on_message_complete;
	llhttp_init(&r->p, type, &r->s);
	r->p.data = r;
}

/* More bytes into buf (moved to its start): >0 read, 0 at the peer's
 * end, negative errno. */
static ssize_t fill(struct http_reader *r)
{
	if (r->off > 0) {
		memmove(r->buf, r->buf + r->off, r->len - r->off);
		r->len -= r->off;
		r->off = 0;
	}
	if (r->len == sizeof(r->buf))
		return -ENOBUFS;
	if (r->timeout_ms >= 0) {
		struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
		int n;
		do
			n = poll(&pfd, 1, r->timeout_ms);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ETIMEDOUT;
	}
	ssize_t n;
	do
		n = read(r->fd, r->buf + r->len, sizeof(r->buf) - r->len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	r->len += (size_t)n;
	return n;
}

/* Parse buf[off, len).  1 when the parser stopped (head or message
 * done, an upgrade), 0 when it wants more, negative on errors.  With
 * raw, the bytes consumed go to the sink as they are. */
static int parse(struct http_reader *r)
{
	const char *start = r->buf + r->off;
	size_t n = r->len - r->off;
	llhttp_errno_t e = llhttp_execute(&r->p, start, n);
	size_t used = n;
	if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE)
		used = (size_t)(llhttp_get_error_pos(&r->p) - start);
	if (r->raw && r->sink && used > 0 && r->head_done) {
		int s = r->sink(r->userdata, start, used);
		if (s < 0)
			return s;
	}
	r->off += used;
	switch (e) {
	case HPE_OK:
		return 0;
	case HPE_PAUSED:
		llhttp_resume(&r->p);
		return 1;
	case HPE_PAUSED_UPGRADE:
		/* The message is over; what follows is the upgraded stream,
		 * which the caller relays without us.  llhttp stays in this
		 * state and consumes nothing more: no message can follow. */
		r->msg_done = true;
		r->dead = true;
		return 1;
	default:
		r->dead = true;
		if (r->sink_error)
			return r->sink_error;
		return -EBADMSG;
	}
}

int http_read_head(struct http_reader *r, struct http_head *head)
{
	memset(head, 0, offsetof(struct http_head, store));
	head->used = 0;
	r->head = head;
	r->in_value = r->head_too_big = r->head_done = r->msg_done = false;
	r->raw = false;
	r->sink = NULL;
	r->sink_error = 0;
	if (r->dead)
		return -EBADMSG;
	bool any = r->len > r->off;
	for (;;) {
		if (r->len > r->off) {
			int e = parse(r);
			if (e < 0)
				return r->head_too_big ? -EBADMSG : e;
			if (r->head_done)
				return 0;
			if (r->dead)
				return -EBADMSG;
			if (e > 0)
				continue;
		}
		ssize_t n = fill(r);
		if (n == 0)
			return any ? -EBADMSG : -ECONNRESET;
		if (n < 0)
			return n == -ENOBUFS ? -EBADMSG : (int)n;
		any = true;
	}
}

int http_read_body(struct http_reader *r, bool raw, http_sink_fn sink, void *userdata)
{
	r->raw = raw;
	r->sink = sink;
	r->userdata = userdata;
	while (!r->msg_done) {
		/* After a head the parser has not seen the end of an empty
		 * body yet: run it once even on no new bytes. */
		int e = parse(r);
		if (e < 0)
			return e;
		if (r->msg_done)
			break;
		if (e > 0)
			continue;
		ssize_t n = fill(r);
		if (n == 0) {
			/* The peer's close ends a body that runs until then;
			 * anything else is cut short. */
			if (llhttp_finish(&r->p) == HPE_OK && r->head->needs_eof)
				break;
			return -EPIPE;
		}
		if (n < 0)
			return (int)n;
	}
	r->raw = false;
	r->sink = NULL;
	return 0;
}

size_t http_reader_take(struct http_reader *r, const char **ret)
{
	*ret = r->buf + r->off;
	size_t n = r->len - r->off;
	r->off = r->len = 0;
	return n;
}

int http_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}
