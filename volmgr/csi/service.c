/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The CSI methods: each gRPC path to its request decoder, handler and
 * response encoder.  Field checks follow the spec's error tables
 * (spec.md, v1.12.0: "NodePublishVolume Errors" and the general error
 * scheme): a missing required field is INVALID_ARGUMENT, a method this
 * plugin does not offer is UNIMPLEMENTED. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csi-node.pb-c.h"
#include "csi.h"

#define MANIFEST_URL "https://github.com/volmgr/volmgr"

/* Pack msg into the reply's body. */
static void reply_with(struct vm_grpc_reply *ret, const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	ret->body = malloc(len ? len : 1);
	if (!ret->body) {
		ret->status = VM_GRPC_RESOURCE_EXHAUSTED;
		snprintf(ret->message, sizeof(ret->message), "out of memory");
		return;
	}
	ret->len = protobuf_c_message_pack(msg, ret->body);
}

static void reply_status(struct vm_grpc_reply *ret, const struct csi_status *st)
{
	ret->status = st->code;
	snprintf(ret->message, sizeof(ret->message), "%s", st->message);
}

static void reply_fail(struct vm_grpc_reply *ret, int code, const char *message)
{
	ret->status = code;
	snprintf(ret->message, sizeof(ret->message), "%s", message);
}

/* A string with a NUL byte is refused before protobuf-c would cut it
 * there (and hand the rest of the checks a shorter, valid-looking one). */
#define DECODE(type, fn, var)                                                                    \
	int nul_##var = csi_proto_has_nul(&fn##__descriptor, req, len);                          \
	type *var = nul_##var == 0 ? fn##__unpack(NULL, len, req) : NULL;                        \
	if (!var) {                                                                              \
		reply_fail(ret, VM_GRPC_INVALID_ARGUMENT,                                        \
			   nul_##var > 0 ? "a string field holds a NUL byte"                     \
					 : "cannot decode the request message");                 \
		return;                                                                          \
	}

/* ---- Identity ---- */

static void get_plugin_info(struct csi_plugin *p, const uint8_t *req, size_t len,
			    struct vm_grpc_reply *ret)
{
	Csi__V1__GetPluginInfoResponse__ManifestEntry url =
		CSI__V1__GET_PLUGIN_INFO_RESPONSE__MANIFEST_ENTRY__INIT;
	Csi__V1__GetPluginInfoResponse__ManifestEntry *m[] = {&url};
	url.key = "url";
	url.value = MANIFEST_URL;
	Csi__V1__GetPluginInfoResponse r = CSI__V1__GET_PLUGIN_INFO_RESPONSE__INIT;
	r.name = (char *)p->driver;
	r.vendor_version = VOLMGR_VERSION;
	r.n_manifest = 1;
	r.manifest = m;
	reply_with(ret, &r.base);
}

static void get_plugin_capabilities(struct csi_plugin *p, const uint8_t *req, size_t len,
				    struct vm_grpc_reply *ret)
{
	/* Node only: no controller, no accessibility constraints. */
	Csi__V1__GetPluginCapabilitiesResponse r = CSI__V1__GET_PLUGIN_CAPABILITIES_RESPONSE__INIT;
	reply_with(ret, &r.base);
}

static void probe(struct csi_plugin *p, const uint8_t *req, size_t len, struct vm_grpc_reply *ret)
{
	struct csi_status st = {0};
	if (csi_node_probe(p, &st) != 0) {
		reply_status(ret, &st);
		return;
	}
	Csi__V1__BoolValue ready = CSI__V1__BOOL_VALUE__INIT;
	ready.value = 1;
	Csi__V1__ProbeResponse r = CSI__V1__PROBE_RESPONSE__INIT;
	r.ready = &ready;
	reply_with(ret, &r.base);
}

/* ---- Node ---- */

static bool label_value_ok(const char *v)
{
	size_t n = strlen(v);
	return n >= 1 && n <= 63 && isalnum((unsigned char)v[0]) && isalnum((unsigned char)v[n - 1]) &&
	       strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == n;
}

static void node_get_info(struct csi_plugin *p, const uint8_t *req, size_t len,
			  struct vm_grpc_reply *ret)
{
	char key[300];
	snprintf(key, sizeof(key), "%s/node", p->driver);
	Csi__V1__Topology__SegmentsEntry seg = CSI__V1__TOPOLOGY__SEGMENTS_ENTRY__INIT;
	Csi__V1__Topology__SegmentsEntry *segs[] = {&seg};
	seg.key = key;
	seg.value = (char *)p->node_id;
	Csi__V1__Topology topo = CSI__V1__TOPOLOGY__INIT;
	topo.n_segments = 1;
	topo.segments = segs;
	Csi__V1__NodeGetInfoResponse r = CSI__V1__NODE_GET_INFO_RESPONSE__INIT;
	r.node_id = (char *)p->node_id;
	/* The kubelet makes each segment a label of the Node: only a node
	 * id that is a valid label value (63 characters) can be one. */
	if (label_value_ok(p->node_id))
		r.accessible_topology = &topo;
	reply_with(ret, &r.base);
}

static void node_get_capabilities(struct csi_plugin *p, const uint8_t *req, size_t len,
				  struct vm_grpc_reply *ret)
{
	Csi__V1__NodeServiceCapability__RPC rpc = CSI__V1__NODE_SERVICE_CAPABILITY__RPC__INIT;
	rpc.type = CSI__V1__NODE_SERVICE_CAPABILITY__RPC__TYPE__GET_VOLUME_STATS;
	Csi__V1__NodeServiceCapability cap = CSI__V1__NODE_SERVICE_CAPABILITY__INIT;
	cap.type_case = CSI__V1__NODE_SERVICE_CAPABILITY__TYPE_RPC;
	cap.rpc = &rpc;
	Csi__V1__NodeServiceCapability *caps[] = {&cap};
	Csi__V1__NodeGetCapabilitiesResponse r = CSI__V1__NODE_GET_CAPABILITIES_RESPONSE__INIT;
	r.n_capabilities = 1;
	r.capabilities = caps;
	reply_with(ret, &r.base);
}

/* The capability a publish asks for: a mount (no file system type, no
 * flags: the volume is a directory already) on one node. */
static int check_capability(const Csi__V1__VolumeCapability *c, bool *ret_ro,
			    struct csi_status *st)
{
	if (!c)
		return csi_fail(st, VM_GRPC_INVALID_ARGUMENT, "volume capability missing");
	if (c->access_type_case != CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_MOUNT)
		return csi_fail(st, VM_GRPC_INVALID_ARGUMENT,
				"only mount access: a volmgr volume is a directory, not a block "
				"device");
	if (c->mount->fs_type[0])
		return csi_fail(st, VM_GRPC_INVALID_ARGUMENT,
				"fs_type \"%.32s\" given: a volmgr volume has its pool's file system; "
				"leave fsType unset",
				c->mount->fs_type);
	if (c->mount->n_mount_flags)
		return csi_fail(st, VM_GRPC_INVALID_ARGUMENT,
				"mount flags are not taken (the mount is always nosuid,nodev)");
	if (!c->access_mode)
		return csi_fail(st, VM_GRPC_INVALID_ARGUMENT, "access mode missing");
	switch (c->access_mode->mode) {
	case CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_READER_ONLY:
		*ret_ro = true;
		return 0;
	case CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_WRITER:
	case CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_SINGLE_WRITER:
	case CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_MULTI_WRITER:
		return 0;
	default:
		return csi_fail(st, VM_GRPC_INVALID_ARGUMENT,
				"access mode %d: a volume lives on one node", c->access_mode->mode);
	}
}

static void node_publish(struct csi_plugin *p, const uint8_t *req, size_t len,
			 struct vm_grpc_reply *ret)
{
	DECODE(Csi__V1__NodePublishVolumeRequest, csi__v1__node_publish_volume_request, r);
	struct csi_status st = {0};
	struct csi_publish q = {.volume_id = r->volume_id, .target = r->target_path,
				.readonly = r->readonly};
	const char **keys = calloc(r->n_volume_context + 1, sizeof(*keys));
	const char **values = calloc(r->n_volume_context + 1, sizeof(*values));
	for (size_t i = 0; keys && values && i < r->n_volume_context; i++) {
		keys[i] = r->volume_context[i]->key;
		values[i] = r->volume_context[i]->value;
	}
	if (!keys || !values)
		csi_fail(&st, VM_GRPC_RESOURCE_EXHAUSTED, "out of memory");
	else if (!r->volume_id[0])
		csi_fail(&st, VM_GRPC_INVALID_ARGUMENT, "volume id missing");
	else if (!r->target_path[0])
		csi_fail(&st, VM_GRPC_INVALID_ARGUMENT, "target path missing");
	else if (check_capability(r->volume_capability, &q.readonly, &st) != 0)
		;
	else if (r->staging_target_path[0])
		csi_fail(&st, VM_GRPC_INVALID_ARGUMENT,
			 "staging target path given: volmgr-csi has no NodeStageVolume");
	else if (csi_context_check(r->n_volume_context, keys, values, &q.o, &st) != 0)
		;
	else
		csi_node_publish(p, &q, &st);
	free(keys);
	free(values);
	if (st.code)
		reply_status(ret, &st);
	else {
		Csi__V1__NodePublishVolumeResponse out = CSI__V1__NODE_PUBLISH_VOLUME_RESPONSE__INIT;
		reply_with(ret, &out.base);
	}
	csi__v1__node_publish_volume_request__free_unpacked(r, NULL);
}

static void node_unpublish(struct csi_plugin *p, const uint8_t *req, size_t len,
			   struct vm_grpc_reply *ret)
{
	DECODE(Csi__V1__NodeUnpublishVolumeRequest, csi__v1__node_unpublish_volume_request, r);
	struct csi_status st = {0};
	if (!r->volume_id[0])
		csi_fail(&st, VM_GRPC_INVALID_ARGUMENT, "volume id missing");
	else if (!r->target_path[0])
		csi_fail(&st, VM_GRPC_INVALID_ARGUMENT, "target path missing");
	else
		csi_node_unpublish(p, r->volume_id, r->target_path, &st);
	if (st.code)
		reply_status(ret, &st);
	else {
		Csi__V1__NodeUnpublishVolumeResponse out =
			CSI__V1__NODE_UNPUBLISH_VOLUME_RESPONSE__INIT;
		reply_with(ret, &out.base);
	}
	csi__v1__node_unpublish_volume_request__free_unpacked(r, NULL);
}

static void node_get_volume_stats(struct csi_plugin *p, const uint8_t *req, size_t len,
				  struct vm_grpc_reply *ret)
{
	DECODE(Csi__V1__NodeGetVolumeStatsRequest, csi__v1__node_get_volume_stats_request, r);
	struct csi_status st = {0};
	struct csi_usage u;
	if (!r->volume_id[0])
		csi_fail(&st, VM_GRPC_INVALID_ARGUMENT, "volume id missing");
	else if (!r->volume_path[0])
		csi_fail(&st, VM_GRPC_INVALID_ARGUMENT, "volume path missing");
	else
		csi_node_stats(p, r->volume_id, r->volume_path, &u, &st);
	csi__v1__node_get_volume_stats_request__free_unpacked(r, NULL);
	if (st.code) {
		reply_status(ret, &st);
		return;
	}
	Csi__V1__VolumeUsage bytes = CSI__V1__VOLUME_USAGE__INIT, inodes = CSI__V1__VOLUME_USAGE__INIT;
	bytes.unit = CSI__V1__VOLUME_USAGE__UNIT__BYTES;
	bytes.total = u.bytes_total;
	bytes.used = u.bytes_used;
	bytes.available = u.bytes_available;
	inodes.unit = CSI__V1__VOLUME_USAGE__UNIT__INODES;
	inodes.total = u.inodes_total;
	inodes.used = u.inodes_used;
	inodes.available = u.inodes_free;
	Csi__V1__VolumeUsage *usage[] = {&bytes, &inodes};
	Csi__V1__NodeGetVolumeStatsResponse out = CSI__V1__NODE_GET_VOLUME_STATS_RESPONSE__INIT;
	out.n_usage = u.inodes ? 2 : 1;
	out.usage = usage;
	reply_with(ret, &out.base);
}

static const struct method {
	const char *path;
	void (*fn)(struct csi_plugin *p, const uint8_t *req, size_t len, struct vm_grpc_reply *ret);
} methods[] = {
	{"/csi.v1.Identity/GetPluginInfo", get_plugin_info},
	{"/csi.v1.Identity/GetPluginCapabilities", get_plugin_capabilities},
	{"/csi.v1.Identity/Probe", probe},
	{"/csi.v1.Node/NodeGetInfo", node_get_info},
	{"/csi.v1.Node/NodeGetCapabilities", node_get_capabilities},
	{"/csi.v1.Node/NodePublishVolume", node_publish},
	{"/csi.v1.Node/NodeUnpublishVolume", node_unpublish},
	{"/csi.v1.Node/NodeGetVolumeStats", node_get_volume_stats},
};

void csi_serve_call(void *plugin, const char *path, const uint8_t *req, size_t len,
		    struct vm_grpc_reply *ret)
{
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strcmp(path, methods[i].path) == 0) {
			methods[i].fn(plugin, req, len, ret);
			return;
		}
	/* NodeStageVolume, NodeExpandVolume, the Controller service...:
	 * the spec says the caller must not retry UNIMPLEMENTED. */
	char m[400];
	snprintf(m, sizeof(m), "%.300s is not offered by volmgr-csi (a node plugin for ephemeral "
			       "inline volumes)",
		 path);
	reply_fail(ret, VM_GRPC_UNIMPLEMENTED, m);
}
