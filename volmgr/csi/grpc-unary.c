/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unary gRPC over HTTP/2 with prior knowledge (no TLS, no Upgrade), on
 * nghttp2: nghttp2 does the framing, HPACK, flow control, PING and
 * SETTINGS; this file collects each request stream's DATA into one
 * length-prefixed message, calls the handler, and answers with HEADERS,
 * one DATA and trailers -- or, for an error, with Trailers-Only (one
 * HEADERS frame carrying grpc-status), as grpc/grpc's
 * doc/PROTOCOL-HTTP2.md describes.  The handler runs inside
 * nghttp2_session_mem_recv, so the requests of one connection are served
 * in order; the kubelet opens a connection per call anyway
 * (pkg/volume/csi/csi_client.go, newGrpcConn). */
#include "grpc-unary.h"

#include <errno.h>
#include <fcntl.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How many request streams one connection may have open, and how many
 * header fields one request may carry: a client needs one stream and a
 * dozen fields. */
#define MAX_STREAMS 8
#define MAX_HEADERS 64
#define PATH_MAX_LEN 256
/* A peer that stops reading our answer is dropped after this long. */
#define WRITE_TIMEOUT_MS 30000
#define ELEMENTSOF_NV(x) (sizeof(x) / sizeof((x)[0]))

struct stream {
	struct stream *next, *prev; /* the connection's open streams */
	char path[PATH_MAX_LEN];
	bool bad_path, post, grpc_type, encoded, too_big;
	int headers;
	uint8_t *in;
	size_t in_len;
	uint8_t *out; /* prefix + message */
	size_t out_len, out_off;
};

struct conn {
	vm_grpc_handler fn;
	void *userdata;
	struct stream *streams;
};

static void stream_free(struct conn *c, struct stream *st)
{
	if (st->prev)
		st->prev->next = st->next;
	else
		c->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	free(st->in);
	free(st->out);
	free(st);
}

void vm_grpc_percent_encode(const char *text, char *out, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)text; *p && o + 4 < size; p++) {
		if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	if (size)
		out[o < size ? o : size - 1] = '\0';
}

#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE}

static int answer_http(nghttp2_session *s, int32_t id, const char *status)
{
	nghttp2_nv h[] = {NV(":status", status)};
	return nghttp2_submit_response(s, id, h, ELEMENTSOF_NV(h), NULL);
}

static int answer_status(nghttp2_session *s, int32_t id, int code, const char *message)
{
	char c[12], m[3 * 1024 + 1];
	snprintf(c, sizeof(c), "%d", code);
	vm_grpc_percent_encode(message, m, sizeof(m));
	/* Trailers-Only: one HEADERS frame, END_STREAM. */
	nghttp2_nv h[] = {NV(":status", "200"), NV("content-type", "application/grpc"),
			  NV("grpc-status", c), NV("grpc-message", m)};
	return nghttp2_submit_response(s, id, h, ELEMENTSOF_NV(h), NULL);
}

static ssize_t read_answer(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length,
			   uint32_t *flags, nghttp2_data_source *source, void *userdata)
{
	struct stream *st = source->ptr;
	size_t n = st->out_len - st->out_off;
	if (n > length)
		n = length;
	memcpy(buf, st->out + st->out_off, n);
	st->out_off += n;
	if (st->out_off == st->out_len) {
		*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
		nghttp2_nv t[] = {NV("grpc-status", "0")};
		if (nghttp2_submit_trailer(s, id, t, ELEMENTSOF_NV(t)) != 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	return (ssize_t)n;
}

static int answer_message(nghttp2_session *s, int32_t id, struct stream *st, uint8_t *body,
			  size_t len)
{
	st->out = malloc(len + 5);
	if (!st->out) {
		free(body);
		return answer_status(s, id, VM_GRPC_RESOURCE_EXHAUSTED, "out of memory");
	}
	st->out[0] = 0;
	st->out[1] = (uint8_t)(len >> 24);
	st->out[2] = (uint8_t)(len >> 16);
	st->out[3] = (uint8_t)(len >> 8);
	st->out[4] = (uint8_t)len;
	if (len)
		memcpy(st->out + 5, body, len);
	free(body);
	st->out_len = len + 5;
	nghttp2_nv h[] = {NV(":status", "200"), NV("content-type", "application/grpc")};
	nghttp2_data_provider p = {.source.ptr = st, .read_callback = read_answer};
	return nghttp2_submit_response(s, id, h, ELEMENTSOF_NV(h), &p);
}

/* The request is complete: check its framing, call the handler, answer. */
static int serve_request(nghttp2_session *s, int32_t id, struct stream *st, struct conn *c)
{
	if (!st->post)
		return answer_http(s, id, "405");
	if (!st->grpc_type)
		return answer_http(s, id, "415");
	if (st->bad_path)
		return answer_status(s, id, VM_GRPC_UNIMPLEMENTED, "unknown method");
	if (st->too_big)
		return answer_status(s, id, VM_GRPC_RESOURCE_EXHAUSTED,
				     "request message larger than 256 KiB");
	if (st->in_len < 5)
		return answer_status(s, id, VM_GRPC_INTERNAL, "no request message");
	size_t len = (size_t)st->in[1] << 24 | (size_t)st->in[2] << 16 | (size_t)st->in[3] << 8 |
		     st->in[4];
	if (st->in[0] != 0)
		return answer_status(s, id, st->encoded ? VM_GRPC_UNIMPLEMENTED : VM_GRPC_INTERNAL,
				     st->encoded ? "compressed messages are not supported"
						 : "compressed flag set without grpc-encoding");
	if (len != st->in_len - 5)
		return answer_status(s, id, VM_GRPC_INTERNAL,
				     "a unary request carries exactly one message");
	struct vm_grpc_reply r = {.status = VM_GRPC_OK};
	c->fn(c->userdata, st->path, st->in + 5, len, &r);
	if (r.status != VM_GRPC_OK) {
		free(r.body);
		return answer_status(s, id, r.status, r.message[0] ? r.message : "failed");
	}
	return answer_message(s, id, st, r.body, r.len);
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *userdata)
{
	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct conn *c = userdata;
	struct stream *st = calloc(1, sizeof(*st));
	if (!st)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	st->next = c->streams;
	if (c->streams)
		c->streams->prev = st;
	c->streams = st;
	nghttp2_session_set_stream_user_data(s, f->hd.stream_id, st);
	return 0;
}

static bool is_grpc_type(const uint8_t *v, size_t n)
{
	static const char t[] = "application/grpc";
	size_t k = sizeof(t) - 1;
	return n >= k && memcmp(v, t, k) == 0 && (n == k || v[k] == '+' || v[k] == ';');
}

static bool eq(const uint8_t *a, size_t n, const char *b)
{
	return n == strlen(b) && memcmp(a, b, n) == 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *userdata)
{
	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0; /* a client's trailers: nothing in them matters */
	struct stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	if (!st)
		return 0;
	if (++st->headers > MAX_HEADERS)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
	if (eq(name, namelen, ":path")) {
		if (valuelen >= sizeof(st->path) || memchr(value, 0, valuelen)) {
			st->bad_path = true;
		} else {
			memcpy(st->path, value, valuelen);
			st->path[valuelen] = '\0';
		}
	} else if (eq(name, namelen, ":method")) {
		st->post = eq(value, valuelen, "POST");
	} else if (eq(name, namelen, "content-type")) {
		st->grpc_type = is_grpc_type(value, valuelen);
	} else if (eq(name, namelen, "grpc-encoding")) {
		st->encoded = !eq(value, valuelen, "identity");
	}
	return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
		   void *userdata)
{
	struct stream *st = nghttp2_session_get_stream_user_data(s, id);
	if (!st || st->too_big)
		return 0;
	if (len > VM_GRPC_MESSAGE_MAX + 5 - st->in_len) {
		st->too_big = true; /* answered when the stream ends */
		free(st->in);
		st->in = NULL;
		st->in_len = 0;
		return 0;
	}
	uint8_t *n = realloc(st->in, st->in_len + len);
	if (!n)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	memcpy(n + st->in_len, data, len);
	st->in = n;
	st->in_len += len;
	return 0;
}

static int on_frame(nghttp2_session *s, const nghttp2_frame *f, void *userdata)
{
	if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
	    !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	struct stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	if (!st)
		return 0;
	if (serve_request(s, f->hd.stream_id, st, userdata) != 0)
		nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id,
					  NGHTTP2_INTERNAL_ERROR);
	return 0;
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t error, void *userdata)
{
	struct stream *st = nghttp2_session_get_stream_user_data(s, id);
	if (st) {
		nghttp2_session_set_stream_user_data(s, id, NULL);
		stream_free(userdata, st);
	}
	return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd pf = {.fd = fd, .events = POLLOUT};
			if (poll(&pf, 1, WRITE_TIMEOUT_MS) <= 0)
				return -ETIMEDOUT;
			continue;
		}
		if (w <= 0)
			return w < 0 ? -errno : -EPIPE;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int flush(nghttp2_session *s, int fd)
{
	for (;;) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(s, &data);
		if (n < 0)
			return -EPROTO;
		if (n == 0)
			return 0;
		int r = write_all(fd, data, (size_t)n);
		if (r < 0)
			return r;
	}
}

static nghttp2_session *session_new(struct conn *c)
{
	nghttp2_session_callbacks *cb;
	if (nghttp2_session_callbacks_new(&cb) != 0)
		return NULL;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
	nghttp2_session *s = NULL;
	int r = nghttp2_session_server_new(&s, cb, c);
	nghttp2_session_callbacks_del(cb);
	if (r != 0)
		return NULL;
	nghttp2_settings_entry set[] = {
		{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS},
		{NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 16384},
	};
	if (nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, set, ELEMENTSOF_NV(set)) != 0) {
		nghttp2_session_del(s);
		return NULL;
	}
	return s;
}

void vm_grpc_serve(int fd, vm_grpc_handler fn, void *userdata, int idle_ms)
{
	struct conn c = {.fn = fn, .userdata = userdata};
	nghttp2_session *s = session_new(&c);
	int fl = fcntl(fd, F_GETFL);
	if (!s || fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		goto out;
	uint8_t buf[16384];
	for (;;) {
		if (flush(s, fd) < 0)
			break;
		if (!nghttp2_session_want_read(s) && !nghttp2_session_want_write(s))
			break;
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		int p = poll(&pf, 1, idle_ms);
		if (p < 0 && errno == EINTR)
			continue;
		if (p <= 0) {
			/* Idle: say so, then close. */
			nghttp2_submit_goaway(s, NGHTTP2_FLAG_NONE,
					      nghttp2_session_get_last_proc_stream_id(s),
					      NGHTTP2_NO_ERROR, NULL, 0);
			(void)flush(s, fd);
			break;
		}
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		if (nghttp2_session_mem_recv(s, buf, (size_t)n) < 0) {
			(void)flush(s, fd); /* nghttp2 queued a GOAWAY */
			break;
		}
	}
out:
	if (s)
		nghttp2_session_del(s);
	while (c.streams) /* those nghttp2 did not close */
		stream_free(&c, c.streams);
	close(fd);
}
