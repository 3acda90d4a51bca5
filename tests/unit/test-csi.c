/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* volmgr-csi's pure parts: the volume context and target path checks
 * (context.c), and the unary gRPC layer (grpc-unary.c) driven over a
 * socketpair by an in-process nghttp2 client, which frames requests the
 * way a gRPC client may: a message split over several DATA frames, two
 * messages in one call, a compressed flag, a wrong content type, an
 * unknown path, an oversized message. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "unit-util.h"

#include "csi-node.pb-c.h"
#include "csi.h"
#include "util.h"

/* ---- context.c ---- */

#define EPH "csi.storage.k8s.io/ephemeral"

static int check(struct csi_options *o, struct csi_status *st, size_t n, ...)
{
	const char *k[32], *v[32];
	va_list ap;
	va_start(ap, n);
	for (size_t i = 0; i < n; i++) {
		k[i] = va_arg(ap, const char *);
		v[i] = va_arg(ap, const char *);
	}
	va_end(ap);
	memset(st, 0, sizeof(*st));
	return csi_context_check(n, k, v, o, st);
}

static void test_context_ok(void **state)
{
	struct csi_options o;
	struct csi_status st;
	assert_int_equal(check(&o, &st, 7, "source", "cache:repo@main", "quota", "10G", "ttl", "12h",
			       EPH, "true", "csi.storage.k8s.io/pod.name", "runner-x-project-42",
			       "csi.storage.k8s.io/pod.namespace", "ci",
			       "csi.storage.k8s.io/pod.uid", "u-1"),
			 0);
	assert_string_equal(o.source, "cache:repo@main");
	assert_string_equal(o.quota, "10G");
	assert_string_equal(o.ttl, "12h");
	assert_string_equal(o.pod_name, "runner-x-project-42");
	assert_string_equal(o.pod_uid, "u-1");
	/* An empty source is an empty volume. */
	assert_int_equal(check(&o, &st, 2, "source", "", EPH, "true"), 0);
	assert_null(o.source);
	assert_int_equal(check(&o, &st, 2, EPH, "true", "csi.storage.k8s.io/serviceAccount.name",
			       "default"),
			 0);
}

static void test_context_refused(void **state)
{
	static const struct {
		const char *k1, *v1, *k2, *v2, *why;
	} bad[] = {
		{"source", "cache:repo", "x", "y", "unknown volume attribute"},
		{"source", "cache:repo", EPH, "false", "ephemeral inline volumes only"},
		{"source", "cache:repo", EPH, "TRUE", "ephemeral inline volumes only"},
		{"source", "cache:repo", "Source", "cache:other", "unknown volume attribute"},
		{"source", "volume:other-job", EPH, "true", "only cache:NAME"},
		{"source", "path:/etc", EPH, "true", "source:"},
		{"source", "cache:../x", EPH, "true", "source:"},
		{"source", "cache:a\nb", EPH, "true", "printable"},
		{"quota", "lots", EPH, "true", "quota:"},
		{"ttl", "-1s", EPH, "true", "ttl:"},
		{"source", "cache:repo", "source", "cache:repo", "given twice"},
		{"source", "cache:r\xc3\xa9po", EPH, "true", "printable"},
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		struct csi_options o;
		struct csi_status st;
		int r = check(&o, &st, 2, bad[i].k1, bad[i].v1, bad[i].k2, bad[i].v2);
		if (r != VM_GRPC_INVALID_ARGUMENT || !strstr(st.message, bad[i].why))
			fail_msg("case %zu: got %d \"%s\", expected INVALID_ARGUMENT with \"%s\"", i, r,
				 st.message, bad[i].why);
	}
	/* No ephemeral key at all. */
	struct csi_options o;
	struct csi_status st;
	assert_int_equal(check(&o, &st, 1, "source", "cache:repo"), VM_GRPC_INVALID_ARGUMENT);
	/* Too large, too many. */
	static char big[5000];
	memset(big, 'a', sizeof(big) - 1);
	assert_int_equal(check(&o, &st, 2, EPH, "true", "csi.storage.k8s.io/pod.name", big),
			 VM_GRPC_INVALID_ARGUMENT);
	const char *k[20], *v[20];
	char names[20][8];
	for (int i = 0; i < 20; i++) {
		snprintf(names[i], sizeof(names[i]), "k%d", i);
		k[i] = names[i];
		v[i] = "v";
	}
	assert_int_equal(csi_context_check(20, k, v, &o, &st), VM_GRPC_INVALID_ARGUMENT);
	assert_non_null(strstr(st.message, "keys"));
}

static void test_volume_name(void **state)
{
	assert_true(csi_volume_name_ok(
		"csi-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
	assert_false(csi_volume_name_ok("vol-1"));
	assert_false(csi_volume_name_ok("csi-../x"));
	assert_false(csi_volume_name_ok("csi-a/b"));
	assert_false(csi_volume_name_ok(""));
}

static void test_target_below(void **state)
{
	const char *root = "/var/lib/kubelet/pods";
	const char *t = "/var/lib/kubelet/pods/u1/volumes/kubernetes.io~csi/ws/mount";
	assert_string_equal(csi_target_below(root, t), "u1/volumes/kubernetes.io~csi/ws/mount");
	static const char *bad[] = {
		"/var/lib/kubelet/pods",
		"/var/lib/kubelet/pods/",
		"/var/lib/kubelet/podsx/u1/mount",
		"/var/lib/kubelet/pods/u1/../../../etc",
		"/var/lib/kubelet/pods/u1/./mount",
		"/var/lib/kubelet/pods/u1//mount",
		"/var/lib/kubelet/pods/u1/mount/",
		"/var/lib/kubelet/pods/u1/mo\nunt",
		"relative/var/lib/kubelet/pods/u1",
		"/etc/passwd",
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		if (csi_target_below(root, bad[i]))
			fail_msg("accepted %s", bad[i]);
}

static void test_proto_nul(void **state)
{
	const ProtobufCMessageDescriptor *d = &csi__v1__node_publish_volume_request__descriptor;
	/* volume_context (8) {key (1) "source", value (2) "cache:a\0x"} */
	static const uint8_t nul_value[] = {0x42, 0x13, 0x0a, 0x06, 's', 'o', 'u', 'r', 'c', 'e', 0x12,
					    0x09, 'c', 'a', 'c', 'h', 'e', ':', 'a', 0, 'x'};
	assert_int_equal(csi_proto_has_nul(d, nul_value, sizeof(nul_value)), 1);
	/* The same without the NUL. */
	static const uint8_t plain[] = {0x42, 0x12, 0x0a, 0x06, 's', 'o', 'u', 'r', 'c', 'e', 0x12,
					0x08, 'c', 'a', 'c', 'h', 'e', ':', 'a', 'x'};
	assert_int_equal(csi_proto_has_nul(d, plain, sizeof(plain)), 0);
	/* target_path (4) "/a\0b"; an unknown field (99) may hold NULs. */
	static const uint8_t target[] = {0x22, 0x04, '/', 'a', 0, 'b'};
	assert_int_equal(csi_proto_has_nul(d, target, sizeof(target)), 1);
	static const uint8_t unknown[] = {0x9a, 0x06, 0x02, 0, 0};
	assert_int_equal(csi_proto_has_nul(d, unknown, sizeof(unknown)), 0);
	/* A length past the end, a group, a varint that does not end. */
	static const uint8_t past[] = {0x22, 0x09, '/', 'a'};
	assert_int_equal(csi_proto_has_nul(d, past, sizeof(past)), -1);
	static const uint8_t group[] = {0x23, 0x24};
	assert_int_equal(csi_proto_has_nul(d, group, sizeof(group)), -1);
	static const uint8_t endless[] = {0x30, 0xff, 0xff};
	assert_int_equal(csi_proto_has_nul(d, endless, sizeof(endless)), -1);
}

static void test_percent_encode(void **state)
{
	char out[64];
	vm_grpc_percent_encode("a 100% b\n\xc3\xa9", out, sizeof(out));
	assert_string_equal(out, "a 100%25 b%0A%C3%A9");
	vm_grpc_percent_encode("abcdefgh", out, 6);
	assert_true(strlen(out) < 6);
}

/* ---- grpc-unary.c, from a client's side ---- */

static void echo(void *ud, const char *path, const uint8_t *req, size_t len,
		 struct vm_grpc_reply *ret)
{
	if (strcmp(path, "/t.T/Echo") != 0) {
		ret->status = VM_GRPC_UNIMPLEMENTED;
		snprintf(ret->message, sizeof(ret->message), "no %s", path);
		return;
	}
	ret->body = malloc(len + 1);
	memcpy(ret->body, req, len);
	ret->len = len;
}

struct client {
	char status[16], message[256], http[8];
	uint8_t body[512 * 1024];
	size_t body_len;
	const uint8_t *send;
	size_t send_len, send_off, chunk;
	bool closed;
};

static ssize_t client_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length,
			   uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	struct client *c = ud;
	size_t n = c->send_len - c->send_off;
	if (n > c->chunk)
		n = c->chunk; /* one DATA frame each time: a message split over frames */
	if (n > length)
		n = length;
	memcpy(buf, c->send + c->send_off, n);
	c->send_off += n;
	if (c->send_off == c->send_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static int client_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
			 size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	struct client *c = ud;
	char *dst = nl == 11 && !memcmp(name, "grpc-status", 11)   ? c->status
		    : nl == 12 && !memcmp(name, "grpc-message", 12) ? c->message
		    : nl == 7 && !memcmp(name, ":status", 7)	   ? c->http
								   : NULL;
	size_t cap = dst == c->message ? sizeof(c->message) : 8;
	if (dst && vl < cap) {
		memcpy(dst, value, vl);
		dst[vl] = '\0';
	}
	return 0;
}

static int client_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *d, size_t n,
		       void *ud)
{
	struct client *c = ud;
	if (c->body_len + n <= sizeof(c->body)) {
		memcpy(c->body + c->body_len, d, n);
		c->body_len += n;
	}
	return 0;
}

static int client_close(nghttp2_session *s, int32_t id, uint32_t e, void *ud)
{
	((struct client *)ud)->closed = true;
	return 0;
}

static void *server_thread(void *arg)
{
	vm_grpc_serve((int)(intptr_t)arg, echo, NULL, 5000);
	return NULL;
}

/* One call: headers, then body (already length-prefixed by the test),
 * sent in chunks of chunk bytes. */
static void call(struct client *c, const char *path, const char *ctype, const uint8_t *body,
		 size_t len, size_t chunk)
{
	memset(c, 0, sizeof(*c));
	c->send = body;
	c->send_len = len;
	c->chunk = chunk;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, server_thread, (void *)(intptr_t)sv[1]), 0);
	nghttp2_session_callbacks *cb;
	nghttp2_session_callbacks_new(&cb);
	nghttp2_session_callbacks_set_on_header_callback(cb, client_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, client_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, client_close);
	nghttp2_session *s;
	assert_int_equal(nghttp2_session_client_new(&s, cb, c), 0);
	nghttp2_session_callbacks_del(cb);
	nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, NULL, 0);
	nghttp2_nv h[] = {
		{(uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0},
		{(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
		{(uint8_t *)":authority", (uint8_t *)"localhost", 10, 9, 0},
		{(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0},
		{(uint8_t *)"content-type", (uint8_t *)ctype, 12, strlen(ctype), 0},
		{(uint8_t *)"te", (uint8_t *)"trailers", 2, 8, 0},
	};
	nghttp2_data_provider p = {.read_callback = client_read};
	assert_true(nghttp2_submit_request(s, NULL, h, 6, &p, NULL) > 0);
	while (!c->closed) {
		const uint8_t *out;
		ssize_t n;
		while ((n = nghttp2_session_mem_send(s, &out)) > 0)
			assert_int_equal(write(sv[0], out, (size_t)n), n);
		uint8_t buf[16384];
		n = read(sv[0], buf, sizeof(buf));
		if (n <= 0)
			break;
		assert_true(nghttp2_session_mem_recv(s, buf, (size_t)n) >= 0);
	}
	nghttp2_session_del(s);
	close(sv[0]);
	pthread_join(t, NULL);
}

static size_t frame(uint8_t *out, uint8_t flag, const char *msg, size_t len)
{
	out[0] = flag;
	out[1] = (uint8_t)(len >> 24);
	out[2] = (uint8_t)(len >> 16);
	out[3] = (uint8_t)(len >> 8);
	out[4] = (uint8_t)len;
	memcpy(out + 5, msg, len);
	return len + 5;
}

static void test_grpc_framing(void **state)
{
	static struct client c;
	uint8_t b[64];
	size_t n = frame(b, 0, "hello, world", 12);
	/* Split over DATA frames of 3 bytes. */
	call(&c, "/t.T/Echo", "application/grpc", b, n, 3);
	assert_string_equal(c.http, "200");
	assert_string_equal(c.status, "0");
	assert_int_equal(c.body_len, n);
	assert_memory_equal(c.body, b, n);
	/* application/grpc+proto is gRPC too. */
	call(&c, "/t.T/Echo", "application/grpc+proto", b, n, 100);
	assert_string_equal(c.status, "0");
	/* Unknown path: the handler's status and message. */
	call(&c, "/t.T/Other", "application/grpc", b, n, 100);
	assert_string_equal(c.status, "12");
	assert_string_equal(c.message, "no /t.T/Other");
	/* Not gRPC: HTTP 415, no handler. */
	call(&c, "/t.T/Echo", "application/json", b, n, 100);
	assert_string_equal(c.http, "415");
	assert_string_equal(c.status, "");
	/* A compressed flag without grpc-encoding. */
	n = frame(b, 1, "x", 1);
	call(&c, "/t.T/Echo", "application/grpc", b, n, 100);
	assert_string_equal(c.status, "13");
	/* Two messages in a unary call. */
	n = frame(b, 0, "a", 1);
	n += frame(b + n, 0, "b", 1);
	call(&c, "/t.T/Echo", "application/grpc", b, n, 100);
	assert_string_equal(c.status, "13");
	/* A prefix announcing more than came. */
	n = frame(b, 0, "abc", 3);
	call(&c, "/t.T/Echo", "application/grpc", b, n - 1, 100);
	assert_string_equal(c.status, "13");
	/* No message at all. */
	call(&c, "/t.T/Echo", "application/grpc", b, 0, 100);
	assert_string_equal(c.status, "13");
	/* Larger than the bound: refused, and the connection's memory does
	 * not grow with it. */
	static uint8_t big[VM_GRPC_MESSAGE_MAX + 64];
	static char zeros[VM_GRPC_MESSAGE_MAX + 1];
	n = frame(big, 0, zeros, sizeof(zeros));
	call(&c, "/t.T/Echo", "application/grpc", big, n, 16384);
	assert_string_equal(c.status, "8");
	/* The largest taken is echoed whole, through flow control. */
	n = frame(big, 0, zeros, VM_GRPC_MESSAGE_MAX);
	call(&c, "/t.T/Echo", "application/grpc", big, n, 16384);
	assert_string_equal(c.status, "0");
	assert_int_equal(c.body_len, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_context_ok),
		cmocka_unit_test(test_context_refused),
		cmocka_unit_test(test_volume_name),
		cmocka_unit_test(test_target_below),
		cmocka_unit_test(test_proto_nul),
		cmocka_unit_test(test_percent_encode),
		cmocka_unit_test(test_grpc_framing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
