# SPDX-License-Identifier: LGPL-2.1-or-later
"""A stand-in for the kubelet (and node-driver-registrar) talking to a CSI
node plugin, for volmgr-csi's tests and benchmark.

It does what the kubelet's sources do, step by step, for an ephemeral
inline CSI volume, with an independent gRPC implementation (Debian's
python3-grpcio, the gRPC C core) over the plugin's unix socket.  The
references are kubernetes/kubernetes pkg/volume/csi/ (csi_client.go,
csi_mounter.go, csi_plugin.go, csi_metrics.go, csi_attacher.go) and
kubernetes-csi/node-driver-registrar; README.md ("The Kubernetes executor:
volmgr-csi") and the comments at each step below have the details.

The message classes are generated at run time from volmgr/csi/csi-node.proto
with protoc (load_pb()): the tests share the wire format with the plugin,
not its code.

Run by /usr/bin/python3 (Debian bookworm: grpcio 1.51, protobuf 4.21).
Also usable from the command line (the benchmark does): see main().
"""

import errno
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import grpc

# csi_client.go / csi_plugin.go: csiTimeout = 2 * time.Minute, the deadline of
# every kubelet RPC (createCSIOperationContext; grpc-go sends it as
# grpc-timeout).
CSI_TIMEOUT = 120.0
# node-driver-registrar cmd/csi-node-driver-registrar/main.go: --timeout
# defaults to 1 s (the GetPluginInfo call at start-up).
REGISTRAR_TIMEOUT = 1.0
# pkg/util/goroutinemap/exponentialbackoff/exponential_backoff.go:
# initialDurationBeforeRetry 500 ms, doubling, maxDurationBeforeRetry 2m2s.
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 122.0

# csi_plugin.go: CSIPluginName "kubernetes.io/csi", escaped by
# utilstrings.EscapeQualifiedName for the pod volume directory.
CSI_PLUGIN_DIR = "kubernetes.io~csi"
# csi_plugin.go: volDataFileName.
VOL_DATA_FILE = "vol_data.json"

# gRPC status codes (numbers as in the CSI spec's error tables).
OK, CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, \
    ALREADY_EXISTS, PERMISSION_DENIED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, \
    ABORTED, OUT_OF_RANGE, UNIMPLEMENTED, INTERNAL, UNAVAILABLE = range(15)
CODE_NAMES = {c.value[0]: c.name for c in grpc.StatusCode}

# csi_client.go isFinalError: these codes mean "the operation may still be
# in progress" (the volume becomes uncertain, dirs are kept, and NodeUnpublish
# is sent when the pod goes); every other code is final.
NON_FINAL = {CANCELLED, DEADLINE_EXCEEDED, UNAVAILABLE, RESOURCE_EXHAUSTED, ABORTED}

# csi_mounter.go podAttributes (podInfoOnMount: true).
POD_NAME = "csi.storage.k8s.io/pod.name"
POD_NAMESPACE = "csi.storage.k8s.io/pod.namespace"
POD_UID = "csi.storage.k8s.io/pod.uid"
POD_SA = "csi.storage.k8s.io/serviceAccount.name"
EPHEMERAL = "csi.storage.k8s.io/ephemeral"

_pb = None
_pb_lock = threading.Lock()


def code_name(code):
    return CODE_NAMES.get(code, str(code))


def load_pb(proto_dir=None):
    """Generate csi_node_pb2 from csi-node.proto into a temporary directory
    and import it (once per process)."""
    global _pb
    with _pb_lock:
        if _pb is not None:
            return _pb
        if proto_dir is None:
            here = os.path.dirname(os.path.abspath(__file__))
            proto_dir = os.path.join(here, "..", "..", "volmgr", "csi")
        proto_dir = os.path.abspath(proto_dir)
        out = tempfile.mkdtemp(prefix="csi-pb.")
        try:
            subprocess.run(["protoc", "--python_out=" + out, "-I", proto_dir,
                            "csi-node.proto"], check=True)
            sys.path.insert(0, out)
            try:
                _pb = importlib.import_module("csi_node_pb2")
            finally:
                sys.path.remove(out)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        return _pb


def volume_handle(pod_uid, vol_name):
    # csi_mounter.go makeVolumeHandle: "csi-" + sha256 of podUID+specName,
    # no separator.
    return "csi-" + hashlib.sha256((pod_uid + vol_name).encode()).hexdigest()


def attachment_id(handle, driver, node):
    # csi_attacher.go getAttachmentName: "csi-" + sha256(volName+csiDriverName+nodeName).
    return "csi-" + hashlib.sha256((handle + driver + node).encode()).hexdigest()


# ------------------------------------------------------------ gRPC calls

class Reply:
    """The result of one RPC: code (0 = OK), message, response (or None),
    and the wall time of the call in seconds."""

    def __init__(self, code, message, response, seconds):
        self.code = code
        self.message = message
        self.response = response
        self.seconds = seconds

    def __repr__(self):
        return "%s(%d)%s" % (code_name(self.code), self.code,
                             (": " + self.message) if self.message else "")


def _serialize(m):
    return m if isinstance(m, (bytes, bytearray)) else m.SerializeToString()


def call(sock, method, request, response_class=None, timeout=CSI_TIMEOUT,
         compression=None, metadata=None, authority="localhost"):
    """One unary RPC on a connection of its own, as the kubelet makes them:
    csi_client.go newGrpcConn dials a new grpc.ClientConn (insecure, unix
    dialer, grpc.WithAuthority("localhost")) for each method and closer.Close()
    closes it when the method returns.  grpc.use_local_subchannel_pool makes
    the C core really open a new connection instead of sharing one between
    channels.  request: a message or raw bytes."""
    opts = [("grpc.use_local_subchannel_pool", 1), ("grpc.enable_retries", 0)]
    if authority is not None:
        opts.append(("grpc.default_authority", authority))
    channel = grpc.insecure_channel("unix://" + sock, options=opts)
    t0 = time.monotonic()
    try:
        mc = channel.unary_unary(
            method, request_serializer=_serialize,
            response_deserializer=response_class.FromString if response_class else None)
        try:
            resp = mc(request, timeout=timeout, compression=compression, metadata=metadata)
            return Reply(OK, "", resp, time.monotonic() - t0)
        except grpc.RpcError as e:
            return Reply(e.code().value[0], e.details() or "", None, time.monotonic() - t0)
    finally:
        channel.close()


# ----------------------------------------------------- file system state

def _unescape_mountinfo(s):
    # /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def mountinfo():
    """[(mount_id, mountpoint, mount_options, fstype, super_options, root)]"""
    rows = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            a, _, b = line.rstrip("\n").partition(" - ")
            fa, fb = a.split(" "), b.split(" ")
            rows.append((int(fa[0]), _unescape_mountinfo(fa[4]), fa[5], fb[0],
                         fb[2] if len(fb) > 2 else "", _unescape_mountinfo(fa[3])))
    return rows


def mounts_at(path):
    return [r for r in mountinfo() if r[1] == path]


def mounts_under(root):
    root = root.rstrip("/")
    return [r for r in mountinfo() if r[1] == root or r[1].startswith(root + "/")]


def is_likely_not_mount_point(path):
    """mount-utils mount_linux.go IsLikelyNotMountPoint: a mount point when
    its st_dev differs from its parent's.  Raises FileNotFoundError."""
    st = os.stat(path)
    rootst = os.stat(os.path.join(path, ".."))
    return st.st_dev == rootst.st_dev


# ---------------------------------------------------------------- kubelet

class Publish:
    """What pod_start returns: iterates as (code, message, target); also the
    volume id, the replies, and the state of the target right after the
    NodePublishVolume reply, before the kubelet's own clean-up."""

    def __init__(self):
        self.code = None
        self.message = ""
        self.target = None
        self.volume_id = None
        self.vol_dir = None
        self.attempts = 0
        self.replies = []
        self.target_existed = None  # right after the failed NodePublishVolume
        self.target_mounted = None
        self.request = None
        self.seconds = 0.0  # the NodePublishVolume RPC of the last attempt

    def __iter__(self):
        return iter((self.code, self.message, self.target))

    def __repr__(self):
        return "%s(%d)%s" % (code_name(self.code), self.code,
                             (": " + self.message) if self.message else "")


class Kubelet:
    """The kubelet's side of a CSI node plugin for inline ephemeral volumes.

    root: the kubelet's --root-dir (pods live in <root>/pods); sock: the
    plugin's socket path; driver: the CSIDriver name; node: the node name."""

    def __init__(self, root, sock, driver="volmgr.csi.volmgr.io", node="node-a",
                 proto_dir=None):
        self.root = root
        self.sock = sock
        self.driver = driver
        self.node = node
        self.pb = load_pb(proto_dir)

    # --- plumbing

    def rpc(self, method, request, response_class=None, **kw):
        return call(self.sock, method, request, response_class, **kw)

    def node_rpc(self, name, request, timeout=CSI_TIMEOUT, **kw):
        resp = getattr(self.pb, name + "Response", None)
        return call(self.sock, "/csi.v1.Node/" + name, request, resp, timeout=timeout, **kw)

    def identity_rpc(self, name, request, timeout=CSI_TIMEOUT, **kw):
        resp = getattr(self.pb, name + "Response", None)
        return call(self.sock, "/csi.v1.Identity/" + name, request, resp, timeout=timeout, **kw)

    def vol_dir(self, pod_uid, vol_name):
        # volume/plugins.go GetPodVolumeDir + csi_mounter.go getTargetPath:
        # <root>/pods/<uid>/volumes/kubernetes.io~csi/<escaped vol name>
        return os.path.join(self.root, "pods", pod_uid, "volumes", CSI_PLUGIN_DIR, vol_name)

    def target(self, pod_uid, vol_name):
        # csi_mounter.go GetPath -> GetCSIMounterPath: <vol dir>/mount
        return os.path.join(self.vol_dir(pod_uid, vol_name), "mount")

    # --- registration

    def register(self):
        """node-driver-registrar then the kubelet's plugin registration.
        Returns (plugin_info_reply, node_info_reply)."""
        # node-driver-registrar main.go: csirpc.GetDriverName(ctx, conn) =
        # Identity/GetPluginInfo with the --timeout (1 s) deadline; an empty
        # name is fatal.
        info = self.identity_rpc("GetPluginInfo", self.pb.GetPluginInfoRequest(),
                                 timeout=REGISTRAR_TIMEOUT)
        # csi_plugin.go RegistrationHandler.RegisterPlugin: csi.NodeGetInfo
        # with a csiTimeout (2 min) context; on error the driver is
        # unregistered.
        ninfo = self.node_rpc("NodeGetInfo", self.pb.NodeGetInfoRequest())
        return info, ninfo

    # --- requests as csi_client.go builds them

    def publish_request(self, volume_id, target, attributes, readonly=False,
                        fs_type="", mode=None):
        pb = self.pb
        # csi_client.go NodePublishVolume: VolumeId, TargetPath, Readonly,
        # PublishContext (empty for inline volumes: no attach),
        # VolumeContext, Secrets; StagingTargetPath only when non-empty;
        # AccessMode from asCSIAccessModeV1(ReadWriteOnce) = SINGLE_NODE_WRITER
        # (csi_mounter.go SetUpAt: accessMode := api.ReadWriteOnce for inline
        # volumes); Mount{FsType, MountFlags} unless fsType == "block".
        req = pb.NodePublishVolumeRequest(
            volume_id=volume_id, target_path=target, readonly=readonly)
        req.volume_capability.access_mode.mode = (
            pb.VolumeCapability.AccessMode.SINGLE_NODE_WRITER if mode is None else mode)
        req.volume_capability.mount.fs_type = fs_type
        req.volume_capability.mount.mount_flags.extend([])  # inline: no mountOptions
        for k, v in attributes.items():
            req.volume_context[k] = v
        # secrets: csi_mounter.go nodePublishSecrets = map[string]string{}
        # (no nodePublishSecretRef): an empty map, nothing on the wire.
        return req

    def pod_attributes(self, pod_uid, pod_name, namespace, service_account):
        # csi_mounter.go podAttributes (CSIDriver podInfoOnMount: true);
        # "ephemeral" = strconv.FormatBool(mode == Ephemeral) = "true".
        return {POD_NAME: pod_name, POD_NAMESPACE: namespace, POD_UID: pod_uid,
                POD_SA: service_account, EPHEMERAL: "true"}

    def write_vol_data(self, pod_uid, vol_name, handle):
        # csi_mounter.go saveVolumeData(parentDir, volDataFileName, data):
        # json of the volDataKey map, os.Create (0666 & umask).
        data = {
            "specVolID": vol_name,
            "volumeHandle": handle,
            "driverName": self.driver,
            "nodeName": self.node,
            "attachmentID": attachment_id(handle, self.driver, self.node),
            "volumeLifecycleMode": "Ephemeral",
        }
        with open(os.path.join(self.vol_dir(pod_uid, vol_name), VOL_DATA_FILE), "w") as f:
            json.dump(data, f)

    def read_vol_data(self, pod_uid, vol_name):
        # csi_plugin.go NewUnmounter / loadVolumeData.
        with open(os.path.join(self.vol_dir(pod_uid, vol_name), VOL_DATA_FILE)) as f:
            return json.load(f)

    def remove_mount_dir(self, mount_path):
        """csi_mounter.go removeMountDir: only when mount/ is not a mount point
        (isDirMounted -> IsLikelyNotMountPoint): os.Remove(mount/),
        os.Remove(vol_data.json), os.Remove(<vol dir>), each ignoring
        ENOENT.  Returns an error string or None (kubelet logs it)."""
        try:
            mounted = not is_likely_not_mount_point(mount_path)
        except FileNotFoundError:
            mounted = False
        except OSError as e:
            return "isDirMounted: %s" % e
        if mounted:
            return None
        vol_path = os.path.dirname(mount_path)
        for p, rm in ((mount_path, os.rmdir), (os.path.join(vol_path, VOL_DATA_FILE), os.unlink),
                      (vol_path, os.rmdir)):
            try:
                rm(p)
            except FileNotFoundError:
                pass
            except OSError as e:
                return "failed to remove %s: %s" % (p, e)
        return None

    # --- pod start

    def pod_start(self, pod_uid, vol_name, attributes, readonly=False,
                  pod_name=None, namespace="default", service_account="default",
                  retry=False, max_attempts=8, fs_type="", pod_info=True,
                  timeout=CSI_TIMEOUT, kubelet_cleanup=True):
        """Mount an inline CSI volume for a pod the way the kubelet does
        (csi_mounter.go SetUpAt).  retry: on failure, try again with the
        volume manager's backoff (500 ms doubling) up to max_attempts.
        kubelet_cleanup=False skips the removeMountDir after a final error
        (to look at what the plugin left)."""
        pb = self.pb
        res = Publish()
        # csi_mounter.go makeVolumeHandle (csi_plugin.go NewMounter).
        handle = volume_handle(pod_uid, vol_name)
        vol_dir = self.vol_dir(pod_uid, vol_name)
        target = self.target(pod_uid, vol_name)
        res.volume_id, res.vol_dir, res.target = handle, vol_dir, target
        delay = BACKOFF_INITIAL
        while True:
            res.attempts += 1
            # SetUpAt: ctx with csiTimeout for the whole set-up.
            deadline = time.monotonic() + timeout
            # SetUpAt: os.MkdirAll(parentDir, 0750); mount/ itself is the
            # plugin's to make.
            os.makedirs(vol_dir, mode=0o750, exist_ok=True)
            # SetUpAt: csi.NodeSupportsVolumeMountGroup(ctx) ->
            # NodeGetCapabilities (an error is a transient failure).
            caps = self.node_rpc("NodeGetCapabilities", pb.NodeGetCapabilitiesRequest(),
                                 timeout=max(0.001, deadline - time.monotonic()))
            res.replies.append(("NodeGetCapabilities", caps))
            # Whether the kubelet counts a failure as "operation finished"
            # (volumetypes.IsOperationFinishedError) and cleans up.
            finished = True
            if caps.code != OK:
                # SetUpAt: NewTransientOperationFailure: not finished, no
                # removeMountDir.
                res.code, res.message = caps.code, "NodeGetCapabilities: " + caps.message
                finished = False
            else:
                # SetUpAt: saveVolumeData(parentDir, volDataFileName, ...)
                # before NodePublish (NewMounter in older kubelets).
                self.write_vol_data(pod_uid, vol_name, handle)
                # SetUpAt: volume_context = volumeAttributes merged with
                # podAttributes(), mergeMap(): pod info wins.
                ctx = dict(attributes)
                if pod_info:
                    ctx.update(self.pod_attributes(pod_uid, pod_name or ("pod-" + pod_uid[:8]),
                                                   namespace, service_account))
                # csi_client.go NodePublishVolume: getNodeV1AccessModeMapper ->
                # NodeSupportsSingleNodeMultiWriterAccessMode ->
                # NodeGetCapabilities on a connection of its own.
                caps2 = self.node_rpc("NodeGetCapabilities", pb.NodeGetCapabilitiesRequest(),
                                      timeout=max(0.001, deadline - time.monotonic()))
                res.replies.append(("NodeGetCapabilities", caps2))
                mode = pb.VolumeCapability.AccessMode.SINGLE_NODE_WRITER
                if caps2.code == OK and any(
                        c.rpc.type == pb.NodeServiceCapability.RPC.SINGLE_NODE_MULTI_WRITER
                        for c in caps2.response.capabilities):
                    # asSingleNodeMultiWriterCapableCSIAccessModeV1(ReadWriteOnce)
                    mode = pb.VolumeCapability.AccessMode.SINGLE_NODE_MULTI_WRITER
                if caps2.code != OK:
                    res.code, res.message = caps2.code, "NodeGetCapabilities: " + caps2.message
                else:
                    req = self.publish_request(handle, target, ctx, readonly, fs_type, mode)
                    res.request = req
                    # csi_client.go NodePublishVolume: nodeClient.NodePublishVolume(ctx, req)
                    rep = self.node_rpc("NodePublishVolume", req,
                                        timeout=max(0.001, deadline - time.monotonic()))
                    res.replies.append(("NodePublishVolume", rep))
                    res.code, res.message, res.seconds = rep.code, rep.message, rep.seconds
                    # csi_client.go NodePublishVolume: a non-final code
                    # (isFinalError false) becomes an UncertainProgressError.
                    finished = rep.code not in NON_FINAL
            if res.code == OK:
                res.target_existed = os.path.isdir(target)
                res.target_mounted = bool(mounts_at(target))
                return res
            res.target_existed = os.path.lexists(target)
            res.target_mounted = bool(mounts_at(target))
            # SetUpAt: on an operation-finished (final) error,
            # removeMountDir(c.plugin, dir); a non-final one
            # (isFinalError false -> UncertainProgressError) keeps the dirs:
            # the volume is "uncertain" and will be unpublished when the pod
            # goes (operation_generator.go markVolumeErrorState).
            # (The second NodeGetCapabilities' error is a plain error from
            # getNodeV1AccessModeMapper: "finished".)
            if kubelet_cleanup and finished:
                self.remove_mount_dir(target)
            if not retry or res.attempts >= max_attempts:
                return res
            # nestedpendingoperations / exponentialbackoff: the reconciler
            # retries no sooner than the backoff.
            time.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    # --- pod stop

    def pod_stop(self, pod_uid, vol_name, volume_id=None, retry=False, max_attempts=8,
                 timeout=CSI_TIMEOUT):
        """csi_mounter.go TearDownAt: NodeUnpublishVolume{volume_id, target}
        (no capability call first), then removeMountDir.  The volume id
        comes from vol_data.json (csi_plugin.go NewUnmounter) unless given.
        Returns (code, message, remove_mount_dir_error)."""
        target = self.target(pod_uid, vol_name)
        if volume_id is None:
            try:
                volume_id = self.read_vol_data(pod_uid, vol_name)["volumeHandle"]
            except FileNotFoundError:
                # NewUnmounter: no vol_data.json, no teardown possible; the
                # kubelet would compute nothing: use the handle.
                volume_id = volume_handle(pod_uid, vol_name)
        delay, attempts = BACKOFF_INITIAL, 0
        while True:
            attempts += 1
            rep = self.node_rpc("NodeUnpublishVolume",
                                self.pb.NodeUnpublishVolumeRequest(volume_id=volume_id,
                                                                   target_path=target),
                                timeout=timeout)
            if rep.code == OK:
                # TearDownAt: removeMountDir(c.plugin, dir).
                return rep.code, rep.message, self.remove_mount_dir(target)
            # TearDownAt returns any error; the reconciler retries with backoff.
            if not retry or attempts >= max_attempts:
                return rep.code, rep.message, None
            time.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    # --- stats

    def stats(self, pod_uid=None, vol_name=None, volume_id=None, volume_path=None):
        """csi_metrics.go metricsCsi.GetMetrics: NodeSupportsStageUnstage /
        NodeGetCapabilities (GET_VOLUME_STATS?) on one connection, then
        NodeGetVolumeStats{volume_id, volume_path = .../mount} (staging
        empty) on another, 2 min deadline each.  Returns the stats Reply
        (or the capability Reply if that failed or lacks GET_VOLUME_STATS)."""
        pb = self.pb
        if volume_id is None:
            volume_id = volume_handle(pod_uid, vol_name)
        if volume_path is None:
            volume_path = self.target(pod_uid, vol_name)
        caps = self.node_rpc("NodeGetCapabilities", pb.NodeGetCapabilitiesRequest())
        if caps.code != OK:
            return caps
        if not any(c.rpc.type == pb.NodeServiceCapability.RPC.GET_VOLUME_STATS
                   for c in caps.response.capabilities):
            return Reply(UNIMPLEMENTED, "driver does not advertise GET_VOLUME_STATS", None, 0)
        return self.node_rpc("NodeGetVolumeStats", pb.NodeGetVolumeStatsRequest(
            volume_id=volume_id, volume_path=volume_path))

    # --- raw helpers for hostile requests

    def raw_publish(self, volume_id="", target="", context=None, readonly=False,
                    capability="mount", mode=1, fs_type="", mount_flags=(),
                    staging="", secrets=None, publish_context=None, extra=b"",
                    timeout=CSI_TIMEOUT):
        """A NodePublishVolumeRequest built field by field.  capability:
        "mount", "block", "none" (field absent), "empty" (no access type),
        or "nomode" (mount, no access_mode).  context may map str to str or
        bytes (bytes values, and bytes keys, are encoded by hand so that
        invalid UTF-8 reaches the wire).  extra: raw bytes appended to the
        encoded message (e.g. duplicate map entries)."""
        pb = self.pb
        req = pb.NodePublishVolumeRequest(volume_id=volume_id, target_path=target,
                                          staging_target_path=staging, readonly=readonly)
        if capability != "none":
            cap = req.volume_capability
            if capability == "mount":
                cap.mount.fs_type = fs_type
                cap.mount.mount_flags.extend(mount_flags)
            elif capability == "block":
                cap.block.SetInParent()
            if capability != "nomode":
                cap.access_mode.mode = mode
            else:
                cap.mount.SetInParent()
            cap.SetInParent()
        for k, v in (secrets or {}).items():
            req.secrets[k] = v
        for k, v in (publish_context or {}).items():
            req.publish_context[k] = v
        raw = b""
        for k, v in (context or {}).items():
            if isinstance(k, bytes) or isinstance(v, bytes):
                raw += map_entry(8, k, v)
            else:
                req.volume_context[k] = v
        data = req.SerializeToString() + raw + extra
        return self.rpc("/csi.v1.Node/NodePublishVolume", data,
                        pb.NodePublishVolumeResponse, timeout=timeout)

    def raw_unpublish(self, volume_id, target, timeout=CSI_TIMEOUT):
        return self.node_rpc("NodeUnpublishVolume", self.pb.NodeUnpublishVolumeRequest(
            volume_id=volume_id, target_path=target), timeout=timeout)

    def raw_stats(self, volume_id, volume_path, staging=""):
        return self.node_rpc("NodeGetVolumeStats", self.pb.NodeGetVolumeStatsRequest(
            volume_id=volume_id, volume_path=volume_path, staging_target_path=staging))

    def raw(self, path, data=b"", timeout=CSI_TIMEOUT, **kw):
        """Any method path, raw request bytes, raw response bytes."""
        return self.rpc(path, data, None, timeout=timeout, **kw)

    def probe(self, timeout=CSI_TIMEOUT):
        return self.identity_rpc("Probe", self.pb.ProbeRequest(), timeout=timeout)


# ------------------------------------------------- protobuf by hand

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def length_delimited(field, payload):
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def map_entry(field, key, value):
    """One entry of a map<string,string> field: {1: key, 2: value}, bytes
    as given (no UTF-8 check)."""
    k = key if isinstance(key, bytes) else key.encode()
    v = value if isinstance(value, bytes) else value.encode()
    return length_delimited(field, length_delimited(1, k) + length_delimited(2, v))


# --------------------------------------------------------- command line

def main(argv):
    """python3 kubelet.py ACTION --sock S --root R [--uid U --vol V]
    [--attr KEY=VALUE]... [--readonly]: publish (pod_start), unpublish
    (pod_stop), stats, register, probe.  Prints one JSON object: code,
    message, target, seconds (the NodePublishVolume RPC), total (the whole
    action)."""
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("action", choices=["publish", "unpublish", "stats", "register", "probe"])
    ap.add_argument("--sock", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--driver", default="volmgr.csi.volmgr.io")
    ap.add_argument("--node", default="node-a")
    ap.add_argument("--proto-dir")
    ap.add_argument("--uid", default="")
    ap.add_argument("--vol", default="")
    ap.add_argument("--attr", action="append", default=[])
    ap.add_argument("--readonly", action="store_true")
    a = ap.parse_args(argv)
    k = Kubelet(a.root, a.sock, a.driver, a.node, a.proto_dir)
    t0 = time.monotonic()
    out = {}
    if a.action == "publish":
        attrs = dict(x.split("=", 1) for x in a.attr)
        r = k.pod_start(a.uid, a.vol, attrs, readonly=a.readonly)
        out = {"code": r.code, "message": r.message, "target": r.target,
               "volume_id": r.volume_id, "seconds": r.seconds}
    elif a.action == "unpublish":
        code, msg, err = k.pod_stop(a.uid, a.vol)
        out = {"code": code, "message": msg, "remove_mount_dir": err}
    elif a.action == "stats":
        r = k.stats(a.uid, a.vol)
        out = {"code": r.code, "message": r.message, "usage": [
            {"unit": u.unit, "total": u.total, "used": u.used, "available": u.available}
            for u in (r.response.usage if r.response else [])]}
    elif a.action == "register":
        i, n = k.register()
        out = {"code": i.code or n.code, "name": i.response.name if i.response else None,
               "node_id": n.response.node_id if n.response else None}
    elif a.action == "probe":
        r = k.probe()
        out = {"code": r.code, "message": r.message,
               "ready": r.response.ready.value if r.response else None}
    out["total"] = time.monotonic() - t0
    print(json.dumps(out))
    return 0 if out["code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
