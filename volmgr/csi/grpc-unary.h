/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unary gRPC calls over HTTP/2 on one connection, server side: what a CSI
 * plugin needs (grpc/grpc doc/PROTOCOL-HTTP2.md), on nghttp2.  No TLS, no
 * compression, no streaming calls: each request is one message, each
 * answer one message or a status. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* gRPC status codes (grpc/grpc doc/statuscodes.md). */
enum vm_grpc_code {
	VM_GRPC_OK = 0,
	VM_GRPC_CANCELLED = 1,
	VM_GRPC_UNKNOWN = 2,
	VM_GRPC_INVALID_ARGUMENT = 3,
	VM_GRPC_DEADLINE_EXCEEDED = 4,
	VM_GRPC_NOT_FOUND = 5,
	VM_GRPC_ALREADY_EXISTS = 6,
	VM_GRPC_PERMISSION_DENIED = 7,
	VM_GRPC_RESOURCE_EXHAUSTED = 8,
	VM_GRPC_FAILED_PRECONDITION = 9,
	VM_GRPC_ABORTED = 10,
	VM_GRPC_OUT_OF_RANGE = 11,
	VM_GRPC_UNIMPLEMENTED = 12,
	VM_GRPC_INTERNAL = 13,
	VM_GRPC_UNAVAILABLE = 14,
};

/* The largest request message taken: CSI's node requests are a few KiB
 * (spec: strings 128 bytes, maps 4 KiB, unless a field says otherwise). */
#define VM_GRPC_MESSAGE_MAX (256 * 1024)

/* A handler's answer: status VM_GRPC_OK and body (malloc'd, taken; NULL
 * with len 0 is an empty message), or another status and its message. */
struct vm_grpc_reply {
	int status;
	char message[1024];
	uint8_t *body;
	size_t len;
};

/* Called once per request, on the connection's thread; path is the
 * request's :path ("/csi.v1.Node/NodePublishVolume"). */
typedef void (*vm_grpc_handler)(void *userdata, const char *path, const uint8_t *req, size_t len,
				struct vm_grpc_reply *ret);

/* Serve the connection at fd (taken: closed on return) until the peer
 * closes it, breaks the protocol, or sends nothing for idle_ms. */
void vm_grpc_serve(int fd, vm_grpc_handler fn, void *userdata, int idle_ms);

/* grpc-message's encoding of text (percent-encoding of every byte outside
 * printable ASCII, and of '%'), into out (always terminated). */
void vm_grpc_percent_encode(const char *text, char *out, size_t size);
