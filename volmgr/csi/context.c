/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What NodePublishVolume's caller controls, checked before anything is
 * touched: the volume context (the pod spec's volumeAttributes, written
 * by whoever may create pods, plus the kubelet's pod information), the
 * volume id and the target path.  Pure functions: the unit test and the
 * fuzzer call them directly. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "csi.h"
#include "names.h"

/* The spec bounds a map to 4 KiB; the kubelet's service account tokens
 * (only with a CSIDriver's tokenRequests, which ours has not) are
 * ignored and not counted, but bounded. */
#define CONTEXT_BYTES_MAX 4096
#define CONTEXT_KEYS_MAX 16
#define TOKENS_MAX 65536

int csi_fail(struct csi_status *st, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(st->message, sizeof(st->message), fmt, ap);
	va_end(ap);
	st->code = code;
	return code;
}

int csi_code_of_errno(int e)
{
	switch (e) {
	case EINVAL:
	case ENAMETOOLONG:
	case ERANGE:
		return VM_GRPC_INVALID_ARGUMENT;
	case ENOENT:
		return VM_GRPC_NOT_FOUND;
	case EEXIST:
		return VM_GRPC_ALREADY_EXISTS;
	case ENOSPC:
	case EDQUOT:
	case ENOMEM:
	case EMFILE:
	case ENFILE:
		return VM_GRPC_RESOURCE_EXHAUSTED;
	case EPERM:
	case EACCES:
		return VM_GRPC_PERMISSION_DENIED;
	case ECONNREFUSED:
	case ENOTCONN:
	case ECONNRESET:
	case EPIPE:
	case EAGAIN:
		return VM_GRPC_UNAVAILABLE;
	case EBUSY:
		return VM_GRPC_ABORTED;
	case ETIMEDOUT:
		return VM_GRPC_DEADLINE_EXCEEDED;
	default:
		return VM_GRPC_INTERNAL;
	}
}

static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

#define POD "csi.storage.k8s.io/"

int csi_context_check(size_t n, const char *const *keys, const char *const *values,
		      struct csi_options *ret, struct csi_status *st)
{
	*ret = (struct csi_options){0};
	if (n > CONTEXT_KEYS_MAX)
		return csi_fail(st, VM_GRPC_INVALID_ARGUMENT,
				"volume context has %zu keys; at most %d are known", n,
				CONTEXT_KEYS_MAX);
	size_t bytes = 0;
	const char *ephemeral = NULL;
	for (size_t i = 0; i < n; i++) {
		const char *k = keys[i], *v = values[i];
		for (size_t j = 0; j < i; j++)
			if (strcmp(keys[j], k) == 0)
				return csi_fail(st, VM_GRPC_INVALID_ARGUMENT,
						"volume context key \"%.64s\" given twice", k);
		if (!printable(k))
			return csi_fail(st, VM_GRPC_INVALID_ARGUMENT,
					"volume context key with a character outside printable ASCII");
		if (strcmp(k, POD "serviceAccount.tokens") == 0) {
			if (strlen(v) > TOKENS_MAX)
				return csi_fail(st, VM_GRPC_INVALID_ARGUMENT,
						"service account tokens longer than %d bytes",
						TOKENS_MAX);
			continue;
		}
		bytes += strlen(k) + strlen(v);
		if (bytes > CONTEXT_BYTES_MAX)
			return csi_fail(st, VM_GRPC_INVALID_ARGUMENT,
					"volume context larger than %d bytes", CONTEXT_BYTES_MAX);
		if (!printable(v))
			return csi_fail(st, VM_GRPC_INVALID_ARGUMENT,
					"volume context \"%.64s\": a character outside printable ASCII",
					k);
		const char **slot = strcmp(k, "source") == 0		  ? &ret->source
				    : strcmp(k, "quota") == 0		  ? &ret->quota
				    : strcmp(k, "ttl") == 0		  ? &ret->ttl
				    : strcmp(k, POD "pod.name") == 0	  ? &ret->pod_name
				    : strcmp(k, POD "pod.namespace") == 0 ? &ret->pod_namespace
				    : strcmp(k, POD "pod.uid") == 0	  ? &ret->pod_uid
				    : strcmp(k, POD "ephemeral") == 0	  ? &ephemeral
									  : NULL;
		if (!slot && strcmp(k, POD "serviceAccount.name") == 0)
			continue;
		if (!slot)
			return csi_fail(st, VM_GRPC_INVALID_ARGUMENT,
					"unknown volume attribute \"%.64s\": volmgr-csi takes source, "
					"quota and ttl",
					k);
		*slot = v;
	}
	if (!ephemeral || strcmp(ephemeral, "true") != 0)
		return csi_fail(st, VM_GRPC_INVALID_ARGUMENT,
				"volmgr-csi serves ephemeral inline volumes only (the CSIDriver "
				"needs podInfoOnMount: true and volumeLifecycleModes: [Ephemeral])");
	struct vm_error err = {0};
	if (ret->source && ret->source[0]) {
		struct vm_source src;
		if (vm_source_parse(ret->source, &src, &err) < 0)
			return csi_fail(st, VM_GRPC_INVALID_ARGUMENT, "source: %s", err.msg);
		if (src.kind != VM_SOURCE_CACHE)
			return csi_fail(st, VM_GRPC_INVALID_ARGUMENT,
					"source: only cache:NAME[@REV] (a pod cannot name another "
					"volume)");
	} else {
		ret->source = NULL;
	}
	uint64_t size;
	int64_t ns;
	if (ret->quota && vm_parse_size(ret->quota, &size, &err) < 0)
		return csi_fail(st, VM_GRPC_INVALID_ARGUMENT, "quota: %s", err.msg);
	if (ret->ttl && vm_parse_duration(ret->ttl, &ns, &err) < 0)
		return csi_fail(st, VM_GRPC_INVALID_ARGUMENT, "ttl: %s", err.msg);
	return 0;
}

bool csi_volume_name_ok(const char *volume_id)
{
	struct vm_error err = {0};
	return strncmp(volume_id, "csi-", 4) == 0 && vm_name_check("volume", volume_id, &err) == 0;
}

const char *csi_target_below(const char *root, const char *target)
{
	size_t rl = strlen(root), tl = strlen(target);
	if (tl >= PATH_MAX || !printable(target) || strncmp(target, root, rl) != 0 ||
	    target[rl] != '/')
		return NULL;
	const char *below = target + rl + 1;
	/* Each component plain: not empty, not "." or "..". */
	for (const char *c = below;;) {
		const char *end = strchr(c, '/');
		size_t len = end ? (size_t)(end - c) : strlen(c);
		if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
			return NULL;
		if (!end)
			return below;
		c = end + 1;
	}
}

/* A varint at *p (at most 10 bytes, within end). */
static bool varint(const uint8_t **p, const uint8_t *end, uint64_t *ret)
{
	uint64_t v = 0;
	for (int shift = 0; shift < 70 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*ret = v;
			return true;
		}
	}
	return false;
}

static int has_nul(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n, int depth)
{
	if (depth > 8)
		return -1;
	const uint8_t *end = p + n;
	while (p < end) {
		uint64_t tag, v;
		if (!varint(&p, end, &tag) || tag >> 3 == 0 || tag >> 3 > UINT32_MAX)
			return -1;
		switch (tag & 7) {
		case 0:
			if (!varint(&p, end, &v))
				return -1;
			break;
		case 1:
		case 5: {
			size_t k = (tag & 7) == 1 ? 8 : 4;
			if ((size_t)(end - p) < k)
				return -1;
			p += k;
			break;
		}
		case 2: {
			if (!varint(&p, end, &v) || v > (uint64_t)(end - p))
				return -1;
			const ProtobufCFieldDescriptor *f =
				protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3));
			if (f && f->type == PROTOBUF_C_TYPE_STRING && memchr(p, 0, (size_t)v))
				return 1;
			if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
				int r = has_nul(f->descriptor, p, (size_t)v, depth + 1);
				if (r != 0)
					return r;
			}
			p += v;
			break;
		}
		default: /* groups: not proto3 */
			return -1;
		}
	}
	return 0;
}

int csi_proto_has_nul(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n)
{
	return has_nul(d, p, n, 0);
}
