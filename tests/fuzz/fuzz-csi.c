/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* volmgr-csi's parts that take a caller's bytes: the gRPC layer over
 * HTTP/2 (grpc-unary.c on nghttp2) and the checks of a NodePublishVolume
 * request's volume id, target path and volume context (context.c).
 *
 * Input: the first byte picks the part, the rest is its input.
 *   'G'  bytes a client sends on a connection (preface included), fed
 *        through a socketpair to vm_grpc_serve with a handler that echoes.
 *        Checks: the handler sees a path starting with '/', shorter than
 *        256 bytes, and a message within the bound; the server ends.
 *   other  a NodePublishVolumeRequest (protobuf), decoded as service.c
 *        decodes it.  Checks on what is accepted: the context says
 *        ephemeral "true", a source is "cache:"; the target part below
 *        the root has no empty, "." or ".." component; a volume id taken
 *        starts with "csi-" and has no '/'. */
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"

#include "csi-node.pb-c.h"
#include "csi.h"

#define ROOT "/var/lib/kubelet/pods"

static void echo(void *ud, const char *path, const uint8_t *req, size_t len,
		 struct vm_grpc_reply *ret)
{
	FUZZ_CHECK(path[0] == '/' && strlen(path) < 256, "path %s", path);
	FUZZ_CHECK(len <= VM_GRPC_MESSAGE_MAX, "message of %zu bytes", len);
	ret->body = fuzz_xmalloc(len);
	memcpy(ret->body, req, len);
	ret->len = len;
}

static void fuzz_grpc(const uint8_t *data, size_t size)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	/* Inputs are small (libFuzzer's default bound is 4 KiB): they fit the
	 * socket's buffer, so the whole input is there before the server
	 * reads, then the end of it. */
	if (size > 16384)
		size = 16384;
	size_t off = 0;
	while (off < size) {
		ssize_t n = write(sv[0], data + off, size - off);
		if (n <= 0)
			abort();
		off += (size_t)n;
	}
	shutdown(sv[0], SHUT_WR);
	/* Nobody reads the answers: at most a few times the input, they fit
	 * the other direction's buffer. */
	vm_grpc_serve(sv[1], echo, NULL, 100);
	close(sv[0]);
}

static void fuzz_publish(const uint8_t *data, size_t size)
{
	/* As service.c: a string with a NUL is refused before decoding. */
	int nul = csi_proto_has_nul(&csi__v1__node_publish_volume_request__descriptor, data, size);
	FUZZ_CHECK(nul >= -1 && nul <= 1, "has_nul %d", nul);
	if (nul != 0)
		return;
	Csi__V1__NodePublishVolumeRequest *r =
		csi__v1__node_publish_volume_request__unpack(NULL, size, data);
	if (!r)
		return;
	const char **k = fuzz_xmalloc((r->n_volume_context + 1) * sizeof(*k));
	const char **v = fuzz_xmalloc((r->n_volume_context + 1) * sizeof(*v));
	for (size_t i = 0; i < r->n_volume_context; i++) {
		k[i] = r->volume_context[i]->key;
		v[i] = r->volume_context[i]->value;
	}
	struct csi_options o;
	struct csi_status st = {0};
	int code = csi_context_check(r->n_volume_context, k, v, &o, &st);
	if (code == 0) {
		bool eph = false;
		for (size_t i = 0; i < r->n_volume_context; i++)
			if (strcmp(k[i], "csi.storage.k8s.io/ephemeral") == 0)
				eph = strcmp(v[i], "true") == 0;
		FUZZ_CHECK(eph, "accepted without ephemeral=true");
		FUZZ_CHECK(!o.source || strncmp(o.source, "cache:", 6) == 0, "source %s", o.source);
	} else {
		FUZZ_CHECK(code == VM_GRPC_INVALID_ARGUMENT && st.message[0], "code %d", code);
	}
	const char *below = csi_target_below(ROOT, r->target_path);
	if (below) {
		FUZZ_CHECK(below[0] && below[0] != '/', "below %s", below);
		FUZZ_CHECK(!strstr(below, "//") && below[strlen(below) - 1] != '/', "below %s", below);
		char copy[4096];
		snprintf(copy, sizeof(copy), "/%s/", below);
		FUZZ_CHECK(!strstr(copy, "/../") && !strstr(copy, "/./"), "below %s", below);
	}
	if (csi_volume_name_ok(r->volume_id))
		FUZZ_CHECK(strncmp(r->volume_id, "csi-", 4) == 0 && !strchr(r->volume_id, '/'),
			   "id %s", r->volume_id);
	free(k);
	free(v);
	csi__v1__node_publish_volume_request__free_unpacked(r, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] == 'G')
		fuzz_grpc(data + 1, size - 1);
	else
		fuzz_publish(data + 1, size - 1);
	return 0;
}
