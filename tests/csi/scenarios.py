# SPDX-License-Identifier: LGPL-2.1-or-later
"""volmgr-csi played by a kubelet (kubelet.py): the scenarios of
tests/e2e/csi-node.sh, one phase per run:

    /usr/bin/python3 tests/csi/scenarios.py PHASE [ARG]

Phases: basic, errors, catalog, transport, concurrent, cancel,
restart-pre NAME, restart-post NAME, term-during, term-after,
daemon-down NAME, daemon-up NAME, crash-pre
POINT, crash-post POINT, crash-publish POINT, crash-unpublish POINT, seed,
sweep, deadline.

The environment says where things are: CSI_SOCK (the plugin's socket),
KUBELET_ROOT (the kubelet's root dir; the plugin's --target-root is
KUBELET_ROOT/pods), CSI_CACHE (a cache made from a git repository),
CSI_CACHE_COMMIT (its HEAD), CSI_CACHE_TAG_COMMIT (what tag v1 names),
CSI_CACHE_README (the content of its README), CSI_DRIVER, CSI_NODE,
VOLMGR (the CLI), VOLMGR_SOCKET (volmgrd's control socket), CSI_OUTSIDE (a
directory outside the target root).

A phase checks everything it can and prints "# ok: ..." for each check and
"# FAILED: ..." with the request, the expectation and the reply for each
failure; it exits 1 if any check failed.
"""

import errno
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubelet as kl  # noqa: E402
from kubelet import (OK, INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS,  # noqa: E402
                     FAILED_PRECONDITION, ABORTED, UNIMPLEMENTED, INTERNAL,
                     UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, code_name)

ENV = os.environ
SOCK = ENV["CSI_SOCK"]
ROOT = ENV["KUBELET_ROOT"]
TARGET_ROOT = os.path.join(ROOT, "pods")
CACHE = ENV.get("CSI_CACHE", "proj")
COMMIT = ENV.get("CSI_CACHE_COMMIT", "")
TAG_COMMIT = ENV.get("CSI_CACHE_TAG_COMMIT", "")
README = ENV.get("CSI_CACHE_README", "")
DRIVER = ENV.get("CSI_DRIVER", "volmgr.csi.volmgr.io")
NODE = ENV.get("CSI_NODE", "node-a")
VOLMGR = ENV["VOLMGR"]
OUTSIDE = ENV.get("CSI_OUTSIDE", "")

K = kl.Kubelet(ROOT, SOCK, DRIVER, NODE, ENV.get("CSI_PROTO_DIR"))
PB = K.pb
MODE = PB.VolumeCapability.AccessMode
FAILURES = []


# ------------------------------------------------------------- reporting

def ok(what):
    print("# ok: " + what, flush=True)


def fail(what, request, expected, got):
    FAILURES.append((what, request, expected, got))
    print("# FAILED: %s\n#   request:  %s\n#   expected: %s\n#   got:      %s"
          % (what, request, expected, got), flush=True)


def step(what):
    print("\n== %s" % what, flush=True)


def codes_str(codes):
    return " or ".join("%s(%d)" % (code_name(c), c) for c in codes)


def expect_code(what, reply, codes, request):
    """reply: a Reply or Publish; codes: one code or a set."""
    if isinstance(codes, int):
        codes = {codes}
    if reply.code not in codes:
        fail(what, request, codes_str(sorted(codes)), repr(reply))
        return False
    if reply.code != OK and not reply.message:
        fail(what + ": error without a message", request,
             "a human-readable message (CSI spec: Error Scheme)", repr(reply))
        return False
    ok("%s -> %r" % (what, reply))
    return True


def check(what, cond, request="", expected="", got=""):
    if cond:
        ok(what)
    else:
        fail(what, request, expected or "true", got or "false")
    return cond


# ------------------------------------------------------------ the state

def volmgr(*args, check_rc=True):
    p = subprocess.run([VOLMGR] + list(args), capture_output=True, text=True)
    if check_rc and p.returncode != 0:
        raise RuntimeError("volmgr %s: exit %d: %s" % (" ".join(args), p.returncode, p.stderr))
    return p


def volumes():
    j = json.loads(volmgr("ls", "--json").stdout)
    lst = j if isinstance(j, list) else j.get("volumes", [])
    return {v["name"]: v for v in lst}


def inspect(name):
    p = volmgr("inspect", name, check_rc=False)
    if p.returncode != 0:
        return None
    j = json.loads(p.stdout)
    return j[0] if isinstance(j, list) else j


def labels_of(name):
    info = inspect(name) or {}
    lab = info.get("labels") or {}
    if isinstance(lab, list):  # ["k=v", ...]
        lab = dict(x.split("=", 1) for x in lab)
    return lab


def expected_name(volume_id):
    """The interface: the id itself when it is "csi-..." and a valid volmgr
    name, else "csi-" + sha256hex(id)."""
    import re
    if (volume_id.startswith("csi-") and len(volume_id) <= 200
            and re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", volume_id)):
        return volume_id
    return "csi-" + hashlib.sha256(volume_id.encode("utf-8", "surrogateescape")).hexdigest()


class State:
    """What exists now: volmgr's volumes and the mounts under the target
    root (and, to compare, the mounts under CSI_OUTSIDE)."""

    def __init__(self):
        self.volumes = set(volumes())
        self.mounts = {r[1] for r in kl.mounts_under(TARGET_ROOT)}
        self.outside = {r[1] for r in kl.mounts_under(OUTSIDE)} if OUTSIDE else set()


def check_nothing_left(what, before, request, targets=(), settle=0.0):
    """No volume, no mount (under the target root or CSI_OUTSIDE) more than
    in `before`, and none of `targets` exists."""
    if settle:
        time.sleep(settle)
    now = State()
    bad = []
    if now.volumes - before.volumes:
        bad.append("volumes left: %s" % sorted(now.volumes - before.volumes))
    if before.volumes - now.volumes:
        bad.append("volumes gone that were there before: %s" % sorted(before.volumes - now.volumes))
    if now.mounts - before.mounts:
        bad.append("mounts left: %s" % sorted(now.mounts - before.mounts))
    if before.mounts - now.mounts:
        bad.append("mounts gone that were there before: %s" % sorted(before.mounts - now.mounts))
    if now.outside - before.outside:
        bad.append("mounts outside the target root: %s" % sorted(now.outside - before.outside))
    for t in targets:
        if os.path.lexists(t):
            bad.append("%s exists" % t)
    if bad:
        fail(what + ": nothing left behind", request, "no volume, no mount, no target dir",
             "; ".join(bad))
        return False
    ok(what + ": nothing left behind")
    return True


def new_pod(prefix="pod"):
    return "%s-%s" % (prefix, uuid.uuid4())


def make_parent(pod_uid, vol):
    os.makedirs(K.vol_dir(pod_uid, vol), mode=0o750, exist_ok=True)
    return K.target(pod_uid, vol)


def rm_parent(pod_uid, vol):
    """The kubelet's removeMountDir, then the pod's own dirs (as the
    kubelet's pod cleanup, cleanupOrphanedPodDirs, would)."""
    K.remove_mount_dir(K.target(pod_uid, vol))
    d = os.path.join(TARGET_ROOT, pod_uid)
    for sub in ("volumes/" + kl.CSI_PLUGIN_DIR, "volumes", ""):
        try:
            os.rmdir(os.path.join(d, sub))
        except OSError:
            pass


def pod_ctx(pod_uid, name="p", ns="ns", extra=None, ephemeral="true"):
    c = {kl.POD_NAME: name, kl.POD_NAMESPACE: ns, kl.POD_UID: pod_uid,
         kl.POD_SA: "default"}
    if ephemeral is not None:
        c[kl.EPHEMERAL] = ephemeral
    c.update(extra or {})
    return c


def src():
    return {"source": "cache:" + CACHE}


def git_head(path):
    p = subprocess.run(["git", "-c", "safe.directory=*", "-C", path, "rev-parse", "HEAD"],
                       capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else "(git: %s)" % p.stderr.strip()


def mount_row(path):
    rows = kl.mounts_at(path)
    return rows[-1] if rows else None


def try_write(path):
    """None when the write worked, else the errno."""
    try:
        with open(path, "w") as f:
            f.write("x\n")
        return None
    except OSError as e:
        return e.errno


def publish_desc(r):
    if r.request is None:
        return "kubelet pod_start (no NodePublishVolume sent)"
    q = r.request
    return ("NodePublishVolume{volume_id=%s, target=%s, readonly=%s, mode=%d, context=%s}"
            % (q.volume_id, q.target_path, q.readonly, q.volume_capability.access_mode.mode,
               dict(q.volume_context)))


def check_published(what, r, readonly=False, content=True):
    """r: a successful pod_start.  Target is a mount point of the volume
    named after the id, its files are the cache's, writable unless
    readonly."""
    t = r.target
    req = publish_desc(r)
    good = check(what + ": target is a directory", os.path.isdir(t), req, "a directory", "missing")
    row = mount_row(t)
    good &= check(what + ": target is in /proc/self/mountinfo", row is not None, req,
                  "a mount at " + t, "no mount")
    try:
        mp = not kl.is_likely_not_mount_point(t)
    except OSError as e:
        mp = "stat: %s" % e
    good &= check(what + ": target's st_dev differs from its parent's (IsLikelyNotMountPoint)",
                  mp is True, req, "a mount point", str(mp))
    if row:
        opts = row[2].split(",")
        good &= check(what + ": mounted nosuid,nodev (%s)" % row[2],
                      "nosuid" in opts and "nodev" in opts, req, "nosuid,nodev", row[2])
        good &= check(what + ": mounted %s" % ("ro" if readonly else "rw"),
                      ("ro" if readonly else "rw") in opts, req, "ro" if readonly else "rw", row[2])
    if content and README:
        try:
            got = open(os.path.join(t, "README")).read()
        except OSError as e:
            got = "(%s)" % e
        good &= check(what + ": the cache's README is there", got == README, req, README, got)
        if COMMIT:
            h = git_head(t)
            good &= check(what + ": git HEAD is the cache's commit", h == COMMIT, req, COMMIT, h)
    name = expected_name(r.volume_id)
    vols = volumes()
    good &= check(what + ": volume %s listed by volmgr ls" % name, name in vols, req,
                  name + " in volmgr ls", sorted(vols))
    probe = os.path.join(t, ".csi-write-probe")
    e = try_write(probe)
    if readonly:
        good &= check(what + ": writing is refused with EROFS", e == errno.EROFS, req,
                      "EROFS", "wrote it" if e is None else errno.errorcode.get(e, e))
        try:
            os.mkdir(os.path.join(t, "newdir"))
            e2 = None
        except OSError as x:
            e2 = x.errno
        good &= check(what + ": mkdir is refused with EROFS", e2 == errno.EROFS, req, "EROFS",
                      "made it" if e2 is None else errno.errorcode.get(e2, e2))
    else:
        good &= check(what + ": writable", e is None, req, "a write works",
                      "" if e is None else errno.errorcode.get(e, e))
        if e is None:
            os.unlink(probe)
    return good


def stop_and_check(what, pod_uid, vol, before=None):
    """Unpublish as the kubelet does and check the plugin removed the target,
    the mount and the volume."""
    target = K.target(pod_uid, vol)
    vid = kl.volume_handle(pod_uid, vol)
    name = expected_name(vid)
    req = "NodeUnpublishVolume{volume_id=%s, target=%s}" % (vid, target)
    rep = K.raw_unpublish(vid, target)
    good = expect_code(what + ": NodeUnpublishVolume", rep, OK, req)
    # Before the kubelet's removeMountDir: the plugin's own work.
    good &= check(what + ": target removed by the plugin", not os.path.lexists(target), req,
                  "no " + target, "it exists" + (" (mounted)" if kl.mounts_at(target) else ""))
    good &= check(what + ": nothing mounted at the target", not kl.mounts_at(target), req,
                  "no mount", str(kl.mounts_at(target)))
    vols = volumes()
    good &= check(what + ": volume %s gone from volmgr ls" % name, name not in vols, req,
                  "not listed", "listed")
    err = K.remove_mount_dir(target)
    good &= check(what + ": kubelet's removeMountDir worked", err is None, req, "no error", str(err))
    rm_parent(pod_uid, vol)
    if before is not None:
        good &= check_nothing_left(what, before, req)
    return good


# ================================================================ phases

def phase_basic():
    step("registration (node-driver-registrar, then kubelet RegisterPlugin)")
    info, ninfo = K.register()
    if expect_code("GetPluginInfo (1 s deadline)", info, OK, "GetPluginInfo{}"):
        r = info.response
        check("GetPluginInfo.name = %r" % r.name, r.name == DRIVER, "GetPluginInfo{}", DRIVER, r.name)
        check("GetPluginInfo.vendor_version = %r" % r.vendor_version, bool(r.vendor_version),
              "GetPluginInfo{}", "non-empty", repr(r.vendor_version))
        check("GetPluginInfo.manifest has url (%s)" % dict(r.manifest), "url" in r.manifest,
              "GetPluginInfo{}", "manifest{url}", dict(r.manifest))
    if expect_code("NodeGetInfo", ninfo, OK, "NodeGetInfo{}"):
        r = ninfo.response
        check("NodeGetInfo.node_id = %r" % r.node_id, r.node_id == NODE, "NodeGetInfo{}", NODE, r.node_id)
        check("NodeGetInfo.max_volumes_per_node = 0", r.max_volumes_per_node == 0, "NodeGetInfo{}",
              "0", str(r.max_volumes_per_node))
        seg = dict(r.accessible_topology.segments)
        check("NodeGetInfo topology = %s" % seg, seg == {DRIVER + "/node": NODE}, "NodeGetInfo{}",
              {DRIVER + "/node": NODE}, seg)
    rep = K.identity_rpc("GetPluginCapabilities", PB.GetPluginCapabilitiesRequest())
    if expect_code("GetPluginCapabilities", rep, OK, "GetPluginCapabilities{}"):
        check("GetPluginCapabilities is empty (node only)", len(rep.response.capabilities) == 0,
              "GetPluginCapabilities{}", "[]", str(rep.response.capabilities))
    rep = K.probe()
    if expect_code("Probe", rep, OK, "Probe{}"):
        check("Probe.ready = true", rep.response.HasField("ready") and rep.response.ready.value,
              "Probe{}", "ready{value: true}", str(rep.response))
    rep = K.node_rpc("NodeGetCapabilities", PB.NodeGetCapabilitiesRequest())
    if expect_code("NodeGetCapabilities", rep, OK, "NodeGetCapabilities{}"):
        types = [c.rpc.type for c in rep.response.capabilities]
        check("NodeGetCapabilities = [GET_VOLUME_STATS]",
              types == [PB.NodeServiceCapability.RPC.GET_VOLUME_STATS], "NodeGetCapabilities{}",
              "[GET_VOLUME_STATS(2)]", str(types))

    base = State()

    step("pod A: publish the cache, as the kubelet does")
    uid_a = new_pod("a")
    ra = K.pod_start(uid_a, "ws", src(), pod_name="runner-a", namespace="ci")
    if expect_code("pod A publish", ra, OK, publish_desc(ra)):
        check_published("pod A", ra)
        lab = labels_of(expected_name(ra.volume_id))
        want = {"volmgr.csi/volume-id": ra.volume_id, "volmgr.csi/target": ra.target,
                "volmgr.csi/readonly": "false", "volmgr.csi/node": NODE,
                "volmgr.csi/pod.namespace": "ci", "volmgr.csi/pod.name": "runner-a",
                "volmgr.csi/pod.uid": uid_a}
        for k, v in want.items():
            check("label %s = %r" % (k, v), lab.get(k) == v, "volmgr inspect " + ra.volume_id,
                  v, repr(lab.get(k)))
        # The publish's arguments, kept to tell a repeat from a conflict.
        check("label volmgr.csi/source = 'cache:%s'" % CACHE, lab.get("volmgr.csi/source") == "cache:" + CACHE,
              "volmgr inspect", "cache:" + CACHE, repr(lab.get("volmgr.csi/source")))
        with open(os.path.join(ra.target, "from-pod-a"), "w") as f:
            f.write("pod a was here\n")
        ok("pod A wrote a file")

    step("pod B at the same cache does not see pod A's file")
    uid_b = new_pod("b")
    rb = K.pod_start(uid_b, "ws", src())
    if expect_code("pod B publish", rb, OK, publish_desc(rb)):
        check_published("pod B", rb)
        check("pod B does not see pod A's file",
              not os.path.exists(os.path.join(rb.target, "from-pod-a")), publish_desc(rb),
              "no from-pod-a", "it is there")
        check("pods A and B have distinct volumes",
              expected_name(ra.volume_id) != expected_name(rb.volume_id), "", "", "")
        row_a, row_b = mount_row(ra.target), mount_row(rb.target)
        if row_a and row_b:
            check("pods A and B mount distinct subvolumes (%s, %s)" % (row_a[5], row_b[5]),
                  row_a[5] != row_b[5] or row_a[3] != row_b[3], "", "distinct roots",
                  "%s == %s" % (row_a[5], row_b[5]))

    step("pod C: readonly")
    uid_c = new_pod("c")
    rc = K.pod_start(uid_c, "ws", src(), readonly=True)
    if expect_code("pod C (readonly) publish", rc, OK, publish_desc(rc)):
        check_published("pod C (readonly)", rc, readonly=True)
        lab = labels_of(expected_name(rc.volume_id))
        check("label volmgr.csi/readonly = true", lab.get("volmgr.csi/readonly") == "true",
              "volmgr inspect", "true", repr(lab.get("volmgr.csi/readonly")))

    step("access modes SINGLE_NODE_READER_ONLY (read-only mount), SINGLE_NODE_SINGLE_WRITER, "
         "SINGLE_NODE_MULTI_WRITER")
    for mode, ro in ((MODE.SINGLE_NODE_READER_ONLY, True), (MODE.SINGLE_NODE_SINGLE_WRITER, False),
                     (MODE.SINGLE_NODE_MULTI_WRITER, False)):
        uid = new_pod("mode%d" % mode)
        t = make_parent(uid, "ws")
        vid = kl.volume_handle(uid, "ws")
        req = "NodePublishVolume{mode=%d, readonly=false, source cache}" % mode
        rep = K.raw_publish(vid, t, pod_ctx(uid, extra=src()), mode=mode)
        if expect_code("publish with access mode %d" % mode, rep, OK, req):
            fake = kl.Publish()
            fake.code, fake.target, fake.volume_id = OK, t, vid
            check_published("access mode %d" % mode, fake, readonly=ro)
            stop_and_check("access mode %d" % mode, uid, "ws")
        else:
            rm_parent(uid, "ws")

    step("stats")
    if ra.code == OK:
        rep = K.stats(uid_a, "ws")
        if expect_code("stats of pod A", rep, OK, "NodeGetVolumeStats{%s, %s}" % (ra.volume_id, ra.target)):
            units = {u.unit: u for u in rep.response.usage}
            b = units.get(PB.VolumeUsage.BYTES)
            check("stats report BYTES", b is not None, "NodeGetVolumeStats", "a BYTES usage",
                  str(rep.response))
            if b is not None:
                check("BYTES total %d > 0, used %d >= 0, available %d >= 0"
                      % (b.total, b.used, b.available),
                      b.total > 0 and b.used >= 0 and b.available >= 0, "NodeGetVolumeStats",
                      "positive figures", str(b))
            i = units.get(PB.VolumeUsage.INODES)
            if i is not None:
                check("INODES total %d > 0" % i.total, i.total > 0, "NodeGetVolumeStats",
                      "total > 0", str(i))
            else:
                ok("no INODES usage (btrfs does not count inodes): allowed")
        if rb.code == OK:
            rep = K.raw_stats(ra.volume_id, rb.target)
            expect_code("stats of A's volume at B's path", rep, NOT_FOUND,
                        "NodeGetVolumeStats{A's id, B's target}")
        rep = K.raw_stats(ra.volume_id, os.path.join(TARGET_ROOT, "nonexistent", "mount"))
        expect_code("stats at a path that does not exist", rep, NOT_FOUND,
                    "NodeGetVolumeStats{A's id, <root>/nonexistent/mount}")
        rep = K.raw_stats(ra.volume_id, os.path.dirname(ra.target))
        expect_code("stats at the target's parent", rep, NOT_FOUND,
                    "NodeGetVolumeStats{A's id, A's vol dir}")
        rep = K.raw_stats("csi-" + "0" * 64, ra.target)
        expect_code("stats of an unknown volume", rep, NOT_FOUND,
                    "NodeGetVolumeStats{csi-000..., A's target}")
        rep = K.raw_stats("", ra.target)
        expect_code("stats without volume_id", rep, INVALID_ARGUMENT, "NodeGetVolumeStats{'', A's target}")
        rep = K.raw_stats(ra.volume_id, "")
        expect_code("stats without volume_path", rep, INVALID_ARGUMENT, "NodeGetVolumeStats{A's id, ''}")

    step("quota, ttl, an empty volume, a revision")
    uid_q = new_pod("quota")
    rq = K.pod_start(uid_q, "ws", dict(src(), quota="10M"))
    if expect_code("publish with quota=10M", rq, OK, publish_desc(rq)):
        check_published("quota pod", rq)
        rep = K.stats(uid_q, "ws")
        if expect_code("stats with a quota", rep, OK, "NodeGetVolumeStats"):
            b = {u.unit: u for u in rep.response.usage}.get(PB.VolumeUsage.BYTES)
            check("with quota=10M, BYTES total is the quota (%s)" % (b.total if b else None),
                  b is not None and b.total in (10 * 1024 * 1024, 10 * 1000 * 1000),
                  "NodeGetVolumeStats (quota=10M)", "10485760 (or 10000000)", str(b))
            check("with a quota, used > 0 (the volume's referenced bytes)", b is not None and b.used > 0,
                  "NodeGetVolumeStats (quota=10M)", "> 0", str(b))
        stop_and_check("quota pod", uid_q, "ws")
    uid_t = new_pod("ttl")
    rt = K.pod_start(uid_t, "ws", dict(src(), ttl="12h"))
    if expect_code("publish with ttl=12h", rt, OK, publish_desc(rt)):
        stop_and_check("ttl pod", uid_t, "ws")
    uid_e = new_pod("empty")
    re_ = K.pod_start(uid_e, "ws", {})
    if expect_code("publish without source (an empty volume)", re_, OK, publish_desc(re_)):
        check_published("empty volume", re_, content=False)
        check("the empty volume is empty", os.listdir(re_.target) == [], publish_desc(re_), "[]",
              str(os.listdir(re_.target)))
        stop_and_check("empty volume", uid_e, "ws")
    uid_e2 = new_pod("empty2")
    re2 = K.pod_start(uid_e2, "ws", {"source": ""})
    if expect_code("publish with source='' (an empty volume)", re2, OK, publish_desc(re2)):
        stop_and_check("source='' volume", uid_e2, "ws")
    if TAG_COMMIT:
        uid_r = new_pod("rev")
        rr = K.pod_start(uid_r, "ws", {"source": "cache:%s@v1" % CACHE})
        if expect_code("publish cache:%s@v1" % CACHE, rr, OK, publish_desc(rr)):
            h = git_head(rr.target)
            check("cache@v1: HEAD is the tag's commit", h == TAG_COMMIT, publish_desc(rr), TAG_COMMIT, h)
            stop_and_check("rev pod", uid_r, "ws")

    step("a target dir left by an earlier attempt (mount/ exists, empty)")
    uid_x = new_pod("premade")
    os.makedirs(K.target(uid_x, "ws"), mode=0o750)
    rx = K.pod_start(uid_x, "ws", src())
    if expect_code("publish onto an existing empty target dir", rx, OK, publish_desc(rx)):
        check_published("pre-made target", rx)
        stop_and_check("pre-made target", uid_x, "ws")
    else:
        rm_parent(uid_x, "ws")

    step("idempotency: the same publish again (kubelet retry / reconstruction)")
    if ra.code == OK:
        before_row, before_vols = mount_row(ra.target), State().volumes
        for i in range(3):
            r2 = K.pod_start(uid_a, "ws", src(), pod_name="runner-a", namespace="ci")
            expect_code("identical publish #%d" % (i + 2), r2, OK, publish_desc(r2))
        rows = kl.mounts_at(ra.target)
        check("still exactly one mount at the target, the same one (id %s)" % (before_row and before_row[0]),
              len(rows) == 1 and rows[0][0] == before_row[0], publish_desc(ra),
              "one mount, id %s" % (before_row and before_row[0]), str([r[0] for r in rows]))
        check("no volume added or removed", State().volumes == before_vols, publish_desc(ra),
              sorted(before_vols), sorted(State().volumes))
        check("pod A's file is still there", os.path.exists(os.path.join(ra.target, "from-pod-a")),
              publish_desc(ra), "from-pod-a", "gone")

        step("same id and target, other arguments -> ALREADY_EXISTS; other target -> FAILED_PRECONDITION")
        r3 = K.pod_start(uid_a, "ws", src(), readonly=True, pod_name="runner-a", namespace="ci",
                         kubelet_cleanup=False)
        expect_code("same id+target, readonly flipped", r3, ALREADY_EXISTS, publish_desc(r3))
        r4 = K.pod_start(uid_a, "ws", dict(src(), quota="1G"), pod_name="runner-a", namespace="ci",
                         kubelet_cleanup=False)
        expect_code("same id+target, context changed (quota added)", r4, ALREADY_EXISTS, publish_desc(r4))
        r5 = K.pod_start(uid_a, "ws", {"source": "cache:%s@v1" % CACHE}, pod_name="runner-a",
                         namespace="ci", kubelet_cleanup=False)
        expect_code("same id+target, source changed", r5, ALREADY_EXISTS, publish_desc(r5))
        rows = kl.mounts_at(ra.target)
        check("after the refusals: pod A's mount unchanged (rw, same id)",
              len(rows) == 1 and rows[0][0] == before_row[0] and "rw" in rows[0][2].split(","),
              "", "mount %s rw" % before_row[0], str(rows))
        other_uid = new_pod("other")
        other_t = make_parent(other_uid, "ws")
        st = State()
        rep = K.raw_publish(ra.volume_id, other_t, pod_ctx(uid_a, "runner-a", "ci", src()))
        req = "NodePublishVolume{A's id, another pod's target, A's context}"
        expect_code("same id, other target", rep, FAILED_PRECONDITION, req)
        check_nothing_left("same id, other target", st, req, targets=[other_t])
        rows = kl.mounts_at(ra.target)
        check("pod A's mount still there", len(rows) == 1 and rows[0][0] == before_row[0], req,
              "unchanged", str(rows))
        rm_parent(other_uid, "ws")

    step("a volume of that name that volmgr-csi did not make -> ALREADY_EXISTS, left alone")
    uid_n = new_pod("notours")
    vid_n = kl.volume_handle(uid_n, "ws")
    volmgr("create", vid_n)
    st = State()
    rn = K.pod_start(uid_n, "ws", src(), kubelet_cleanup=False)
    expect_code("publish over a volume made by hand", rn, ALREADY_EXISTS, publish_desc(rn))
    check("the hand-made volume is still there", vid_n in volumes(), publish_desc(rn),
          "still listed", "removed!")
    check("nothing mounted at the target", not rn.target_mounted, publish_desc(rn), "no mount", "mounted")
    check("no target dir made", not rn.target_existed, publish_desc(rn), "no " + rn.target, "exists")
    check_nothing_left("volume made by hand", st, publish_desc(rn))
    rep = K.raw_unpublish(vid_n, rn.target)
    expect_code("unpublish of the hand-made volume's id", rep, OK, "NodeUnpublishVolume{that id}")
    check("unpublish left the hand-made volume alone", vid_n in volumes(),
          "NodeUnpublishVolume{hand-made volume's id, target}", "still listed", "removed!")
    volmgr("rm", vid_n)
    rm_parent(uid_n, "ws")

    step("publish onto a target where something else is mounted -> FAILED_PRECONDITION, left alone")
    uid_m = new_pod("mounted")
    t_m = make_parent(uid_m, "ws")
    os.mkdir(t_m)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "csi-test-foreign", t_m], check=True)
    try:
        st = State()
        rep = K.raw_publish(kl.volume_handle(uid_m, "ws"), t_m, pod_ctx(uid_m, extra=src()))
        req = "NodePublishVolume{target with a tmpfs on it}"
        expect_code("publish onto a foreign mount", rep, FAILED_PRECONDITION, req)
        rows = kl.mounts_at(t_m)
        check("the foreign mount is left alone, nothing stacked on it",
              len(rows) == 1 and rows[0][3] == "tmpfs", req, "one tmpfs", str(rows))
        check_nothing_left("publish onto a foreign mount", st, req)
    finally:
        subprocess.run(["umount", t_m], check=False)
        os.rmdir(t_m)
        rm_parent(uid_m, "ws")

    step("unpublish of pod B's target with another volume's id must not touch B")
    if rb.code == OK and rc.code == OK:
        row_b = mount_row(rb.target)
        rep = K.raw_unpublish(rc.volume_id, rb.target)
        req = "NodeUnpublishVolume{C's id, B's target}"
        expect_code("unpublish of B's target with C's id", rep, FAILED_PRECONDITION, req)
        rows = kl.mounts_at(rb.target)
        check("pod B's mount is still there", len(rows) == 1 and rows[0][0] == row_b[0], req,
              "B mounted", str(rows))
        check("pod B's volume still listed", expected_name(rb.volume_id) in volumes(), req,
              "listed", "gone")
        check("pod C still mounted", bool(kl.mounts_at(rc.target)), req, "C mounted", "not mounted")

    step("unpublish")
    if ra.code == OK:
        stop_and_check("pod A", uid_a, "ws")
        rep = K.raw_unpublish(ra.volume_id, ra.target)
        expect_code("second NodeUnpublishVolume of pod A", rep, OK, "NodeUnpublishVolume{A, A's target}")
        check("no target dir re-made", not os.path.lexists(ra.target), "", "", "")
    rep = K.raw_unpublish("csi-" + "f" * 64, os.path.join(TARGET_ROOT, new_pod(), "volumes",
                                                             kl.CSI_PLUGIN_DIR, "ws", "mount"))
    expect_code("NodeUnpublishVolume of an unknown volume", rep, OK, "NodeUnpublishVolume{csi-fff..., <new pod>/mount}")
    rep = K.raw_unpublish("some-volume-id", os.path.join(TARGET_ROOT, "x", "mount"))
    expect_code("NodeUnpublishVolume of an unknown non-csi id", rep, OK, "NodeUnpublishVolume{some-volume-id}")
    code, msg, err = K.pod_stop(uid_a, "ws")
    check("kubelet TearDownAt after the pod is gone -> OK (%s)" % code_name(code), code == OK,
          "NodeUnpublishVolume{A} (third time)", "OK", "%s: %s" % (code_name(code), msg))
    for uid, r in ((uid_b, rb), (uid_c, rc)):
        if r.code == OK:
            stop_and_check("pod " + uid[:1].upper(), uid, "ws")
    check_nothing_left("phase basic", base, "all pods stopped")


# --------------------------------------------------------------- errors

def expect_publish_fail(what, codes, make_parent_dir=True, vol="ws", volume_id=None,
                        target=None, context=None, uid=None, check_name=None, **kw):
    uid = uid or new_pod("err")
    if make_parent_dir:
        make_parent(uid, vol)
    t = K.target(uid, vol) if target is None else target
    vid = kl.volume_handle(uid, vol) if volume_id is None else volume_id
    ctx = pod_ctx(uid, extra=src()) if context is None else context
    before = State()
    existed = bool(t) and os.path.lexists(t)
    req = "NodePublishVolume{volume_id=%r, target=%r, context=%s, %s}" % (
        vid[:80], t[:120], {k: (v[:60] if isinstance(v, (str, bytes)) else v) for k, v in
                            (ctx.items() if isinstance(ctx, dict) else [])}, kw)
    rep = K.raw_publish(vid, t, ctx, **kw)
    expect_code(what, rep, codes, req)
    if check_name and rep.code != OK:
        check(what + ": the message names %r" % check_name, check_name in rep.message, req,
              "message naming " + check_name, rep.message)
    if rep.code == OK:
        # Clean up what a wrong success made, as the kubelet would.
        K.raw_unpublish(vid, t)
    targets = ([t] if t and t.startswith("/") and not existed and os.path.isdir(os.path.dirname(t))
               else [])
    check_nothing_left(what, before, req, targets=targets)
    rm_parent(uid, vol)
    return rep


def phase_errors():
    base = State()
    step("NodePublishVolume: required fields (csi-test sanity node.go)")
    expect_publish_fail("no volume_id", INVALID_ARGUMENT, volume_id="")
    uid = new_pod("err")
    expect_publish_fail("no target_path", INVALID_ARGUMENT, uid=uid, target="")
    expect_publish_fail("no volume_capability", INVALID_ARGUMENT, capability="none")
    expect_publish_fail("volume_capability without access type", INVALID_ARGUMENT, capability="empty")
    expect_publish_fail("volume_capability without access_mode", INVALID_ARGUMENT, capability="nomode")

    step("NodePublishVolume: unsupported capabilities")
    expect_publish_fail("block access", INVALID_ARGUMENT, capability="block")
    for m in (MODE.UNKNOWN, MODE.MULTI_NODE_READER_ONLY, MODE.MULTI_NODE_SINGLE_WRITER,
              MODE.MULTI_NODE_MULTI_WRITER, 99):
        expect_publish_fail("access mode %d" % m, INVALID_ARGUMENT, mode=m)
    expect_publish_fail("staging_target_path set", INVALID_ARGUMENT,
                        staging=os.path.join(ROOT, "plugins", "staging"))
    expect_publish_fail("mount_flags [ro]", INVALID_ARGUMENT, mount_flags=["ro"])
    expect_publish_fail("mount_flags [bind,suid]", INVALID_ARGUMENT, mount_flags=["bind", "suid"])
    expect_publish_fail("fs_type ext4", INVALID_ARGUMENT, fs_type="ext4")
    expect_publish_fail("fs_type btrfs", INVALID_ARGUMENT, fs_type="btrfs")
    expect_publish_fail("fs_type block (on a mount capability)", INVALID_ARGUMENT, fs_type="block")

    step("NodePublishVolume: volume_context")
    u = new_pod("err")
    expect_publish_fail("ephemeral=false (a persistent volume)", INVALID_ARGUMENT, uid=u,
                        context=pod_ctx(u, extra=src(), ephemeral="false"))
    u = new_pod("err")
    expect_publish_fail("no ephemeral key (podInfoOnMount off or a PV)", INVALID_ARGUMENT, uid=u,
                        context=pod_ctx(u, extra=src(), ephemeral=None))
    u = new_pod("err")
    expect_publish_fail("no context at all", INVALID_ARGUMENT, uid=u, context={})
    u = new_pod("err")
    expect_publish_fail("unknown key 'branch'", INVALID_ARGUMENT, uid=u,
                        context=pod_ctx(u, extra=dict(src(), branch="main")), check_name="branch")
    u = new_pod("err")
    expect_publish_fail("bad quota 'lots'", INVALID_ARGUMENT, uid=u,
                        context=pod_ctx(u, extra=dict(src(), quota="lots")))
    u = new_pod("err")
    expect_publish_fail("bad ttl 'forever'", INVALID_ARGUMENT, uid=u,
                        context=pod_ctx(u, extra=dict(src(), ttl="forever")))
    u = new_pod("err")
    expect_publish_fail("bad source 'git:proj'", INVALID_ARGUMENT, uid=u,
                        context=pod_ctx(u, extra={"source": "git:proj"}))
    u = new_pod("err")
    expect_publish_fail("bad source 'cache:'", INVALID_ARGUMENT, uid=u,
                        context=pod_ctx(u, extra={"source": "cache:"}))
    u = new_pod("err")
    expect_publish_fail("missing cache 'cache:no-such-cache'", NOT_FOUND, uid=u,
                        context=pod_ctx(u, extra={"source": "cache:no-such-cache"}))
    u = new_pod("err")
    expect_publish_fail("missing revision 'cache:%s@no-such-branch'" % CACHE, {NOT_FOUND, INVALID_ARGUMENT}, uid=u,
                        context=pod_ctx(u, extra={"source": "cache:%s@no-such-branch" % CACHE}))

    step("NodePublishVolume: target paths")
    if OUTSIDE:
        os.makedirs(os.path.join(OUTSIDE, "vol"), exist_ok=True)
        expect_publish_fail("target outside the target root", INVALID_ARGUMENT,
                            target=os.path.join(OUTSIDE, "vol", "mount"))
        check("nothing made outside", not os.path.lexists(os.path.join(OUTSIDE, "vol", "mount")))
    u = new_pod("err")
    expect_publish_fail("relative target", INVALID_ARGUMENT, uid=u,
                        target=os.path.relpath(K.target(u, "ws"), "/"))
    u = new_pod("err")
    t = K.target(u, "ws")
    vd = os.path.dirname(t)
    for bad in (vd + "/./mount", vd + "/../ws/mount", vd + "//mount", t + "/",
                os.path.join(TARGET_ROOT, u, "volumes", "..", "volumes", kl.CSI_PLUGIN_DIR, "ws", "mount")):
        expect_publish_fail("non-canonical target %r" % bad[len(TARGET_ROOT):], INVALID_ARGUMENT,
                            uid=u, target=bad)
    expect_publish_fail("target = the target root itself", INVALID_ARGUMENT, make_parent_dir=False,
                        target=TARGET_ROOT)
    expect_publish_fail("target = a prefix sibling of the root (<root>x/...)",
                        {INVALID_ARGUMENT, NOT_FOUND}, make_parent_dir=False,
                        target=TARGET_ROOT + "x/vol/mount")
    u = new_pod("err")
    long_t = os.path.join(TARGET_ROOT, u, "d" * 200)
    while len(long_t) <= 4100:
        long_t += "/" + "d" * 200
    expect_publish_fail("target longer than 4095 bytes", INVALID_ARGUMENT, uid=u,
                        make_parent_dir=False, target=long_t)
    expect_publish_fail("target's parent missing", NOT_FOUND, make_parent_dir=False)

    step("NodePublishVolume: a symlink on the way to the target")
    if OUTSIDE:
        for level in ("vol", "pod", "csidir"):
            u = new_pod("sym")
            elsewhere = os.path.join(OUTSIDE, "elsewhere-" + u)
            os.makedirs(elsewhere)
            if level == "vol":
                # <root>/pods/<uid>/volumes/kubernetes.io~csi/ws -> elsewhere
                d = os.path.dirname(K.vol_dir(u, "ws"))
                os.makedirs(d, mode=0o750)
                os.symlink(elsewhere, K.vol_dir(u, "ws"))
            elif level == "pod":
                os.symlink(elsewhere, os.path.join(TARGET_ROOT, u))
                os.makedirs(os.path.join(elsewhere, "volumes", kl.CSI_PLUGIN_DIR, "ws"))
            else:
                os.makedirs(os.path.join(TARGET_ROOT, u, "volumes"))
                os.symlink(elsewhere, os.path.join(TARGET_ROOT, u, "volumes", kl.CSI_PLUGIN_DIR))
                os.makedirs(os.path.join(elsewhere, "ws"))
            before = set(os.listdir(elsewhere))
            expect_publish_fail("symlink at the %s dir" % level, INVALID_ARGUMENT, uid=u,
                                make_parent_dir=False)
            found = []
            for dp, dns, fns in os.walk(elsewhere):
                for n in dns + fns:
                    found.append(os.path.join(dp, n))
            check("symlink at the %s dir: nothing made or mounted at the link's destination" % level,
                  not kl.mounts_under(elsewhere) and not any(f.endswith("/mount") for f in found),
                  "NodePublishVolume through a symlink", "nothing under " + elsewhere,
                  "%s; mounts %s" % (found, kl.mounts_under(elsewhere)))
            # clean the test's own things
            if level == "pod":
                os.unlink(os.path.join(TARGET_ROOT, u))
            elif level == "vol":
                os.unlink(K.vol_dir(u, "ws"))
                rm_parent(u, "ws")
            else:
                os.unlink(os.path.join(TARGET_ROOT, u, "volumes", kl.CSI_PLUGIN_DIR))
                rm_parent(u, "ws")
            subprocess.run(["rm", "-rf", "--one-file-system", elsewhere])
        # A symlink as the target itself (mount/ -> elsewhere).
        u = new_pod("sym")
        elsewhere = os.path.join(OUTSIDE, "elsewhere-" + u)
        os.makedirs(elsewhere)
        make_parent(u, "ws")
        os.symlink(elsewhere, K.target(u, "ws"))
        before_st = State()
        rep = K.raw_publish(kl.volume_handle(u, "ws"), K.target(u, "ws"), pod_ctx(u, extra=src()))
        req = "NodePublishVolume{target=<vol dir>/mount, a symlink to %s}" % elsewhere
        expect_code("target itself a symlink", rep, {INVALID_ARGUMENT}, req)
        check("target symlink: nothing mounted at its destination", not kl.mounts_under(elsewhere),
              req, "no mount", str(kl.mounts_under(elsewhere)))
        if rep.code == OK:
            K.raw_unpublish(kl.volume_handle(u, "ws"), K.target(u, "ws"))
        check_nothing_left("target itself a symlink", before_st, req)
        if os.path.islink(K.target(u, "ws")):
            os.unlink(K.target(u, "ws"))
        rm_parent(u, "ws")
        subprocess.run(["rm", "-rf", "--one-file-system", elsewhere])

    step("NodePublishVolume: volume ids")
    u = new_pod("id")
    make_parent(u, "ws")
    # The kubelet's handles are "csi-" + 64 hex (csi_mounter.go
    # makeVolumeHandle); volmgr-csi takes "csi-" and volmgr's name rule,
    # and refuses anything else, making nothing.
    for vid in ("my-volume", "a/b/../c", "csi-" + "A" * 300, "csi-../x", "csi-x/y"):
        before = State()
        rep = K.raw_publish(vid, K.target(u, "ws"), pod_ctx(u, extra=src()))
        req = "NodePublishVolume{volume_id=%r}" % vid[:60]
        expect_code("volume id %r (not a kubelet handle)" % vid[:40], rep, INVALID_ARGUMENT, req)
        check_nothing_left("volume id %r" % vid[:40], before, req, targets=[K.target(u, "ws")])
        rep = K.raw_unpublish(vid, K.target(u, "ws"))
        expect_code("unpublish of volume id %r (never published)" % vid[:40], rep, OK, req)
    before = State()
    vid = "csi-x"
    rep = K.raw_publish(vid, K.target(u, "ws"), pod_ctx(u, extra=src()))
    if expect_code("volume id 'csi-x' (csi- and the name rule)", rep, OK, "NodePublishVolume{csi-x}"):
        check("volume id 'csi-x' -> volume csi-x", "csi-x" in volumes(), "NodePublishVolume{csi-x}",
              "csi-x", sorted(set(volumes()) - before.volumes))
        expect_code("unpublish of csi-x", K.raw_unpublish(vid, K.target(u, "ws")), OK, "")
        check_nothing_left("volume id csi-x", before, "csi-x", targets=[K.target(u, "ws")])
    rm_parent(u, "ws")

    step("NodeUnpublishVolume: required fields and the target root")
    u = new_pod("err")
    expect_code("unpublish without volume_id", K.raw_unpublish("", K.target(u, "ws")), INVALID_ARGUMENT,
                "NodeUnpublishVolume{'', target}")
    expect_code("unpublish without target_path", K.raw_unpublish(kl.volume_handle(u, "ws"), ""),
                INVALID_ARGUMENT, "NodeUnpublishVolume{id, ''}")
    expect_code("unpublish of a target outside the root",
                K.raw_unpublish(kl.volume_handle(u, "ws"), "/tmp/x/mount"), INVALID_ARGUMENT,
                "NodeUnpublishVolume{id, /tmp/x/mount}")
    expect_code("unpublish of a target escaping the root with ..",
                K.raw_unpublish(kl.volume_handle(u, "ws"), TARGET_ROOT + "/../x/mount"),
                INVALID_ARGUMENT, "NodeUnpublishVolume{id, <root>/../x/mount}")

    step("unimplemented methods")
    for name in ("NodeStageVolume", "NodeUnstageVolume", "NodeExpandVolume"):
        rep = K.raw("/csi.v1.Node/" + name, b"")
        expect_code(name, rep, UNIMPLEMENTED, "/csi.v1.Node/%s{}" % name)
    # A real NodeStageVolume as a CO would send it (volume_id, staging path, capability).
    stage = (kl.length_delimited(1, b"csi-x") + kl.length_delimited(3, TARGET_ROOT.encode())
             + kl.length_delimited(4, kl.length_delimited(2, b"") + kl.length_delimited(3, b"\x08\x01")))
    expect_code("NodeStageVolume with fields", K.raw("/csi.v1.Node/NodeStageVolume", stage),
                UNIMPLEMENTED, "/csi.v1.Node/NodeStageVolume{volume_id, staging, capability}")
    for path in ("/csi.v1.Node/Bogus", "/csi.v1.Controller/CreateVolume",
                 "/csi.v1.Controller/ControllerPublishVolume", "/csi.v1.Identity/Bogus",
                 "/csi.v1.GroupController/GroupControllerGetCapabilities",
                 "/grpc.health.v1.Health/Check", "/csi.v1.Node/NodePublishVolume/x",
                 "/csi.v1.node/NodePublishVolume", "/csi.v0.Node/NodePublishVolume", "/x", "/"):
        rep = K.raw(path, b"")
        expect_code("unknown method %s" % path, rep, UNIMPLEMENTED, path)
    check_nothing_left("phase errors", base, "all error cases")


# -------------------------------------------------------------- catalog

def hostile_catalog():
    """(name, context-overrides or callable(uid) -> context, expected codes).
    Overrides are applied to a kubelet-shaped context with the source set
    (None deletes a key)."""
    S = "cache:" + CACHE
    c = []

    def add(name, over, codes=(INVALID_ARGUMENT,)):
        c.append((name, over, set(codes)))

    # source: cache names
    for v in ("cache:../x", "cache:..", "cache:.", "cache:../../../etc", "cache:a/b", "cache:/etc",
              "cache:proj/../proj", "cache:-rf", "cache:.hidden", "cache:" + "a" * 300,
              "cache:%s\n" % CACHE, "cache:%s\x00x" % CACHE, "cache:pr\u00f6j", "cache:%s\u202e" % CACHE,
              " cache:%s" % CACHE, "cache: %s" % CACHE, "CACHE:%s" % CACHE, "cache:%s " % CACHE,
              "volume:other", "/etc", "file:///etc", "cache:%s@" % CACHE, "cache:%s@-x" % CACHE,
              "cache:%s@--upload-pack=touch /tmp/pwn" % CACHE, "cache:%s@$(reboot)" % CACHE,
              "cache:%s@v1 --foo" % CACHE, "cache:%s@v1@v1" % CACHE, "cache:%s@..\n" % CACHE,
              "cache:" + "x" * 5000):
        add("source=%r" % v[:50], {"source": v})
    add("source=cache:%s@%s (a well-formed missing sha)" % (CACHE, "0" * 40),
        {"source": "%s@%s" % (S, "0" * 40)}, (NOT_FOUND, INVALID_ARGUMENT))
    add("source=cache:no-such-cache", {"source": "cache:no-such-cache"}, (NOT_FOUND,))
    add("source=cache:nope@v1", {"source": "cache:nope@v1"}, (NOT_FOUND,))
    # invalid UTF-8 on the wire (bytes values are encoded by hand)
    add("source=b'cache:\\xff\\xfe'", {"source": b"cache:\xff\xfe"})
    add("key=b'sou\\xffrce'", {b"sou\xffrce": S.encode()})
    # keys
    for k in ("Source", "SOURCE", "source ", " source", "sourc", "source\x00", "",
              "csi.storage.k8s.io/Ephemeral", "csi.storage.k8s.io/ephemeral ",
              "csi.storage.k8s.io/pod.name/../ephemeral", "volmgr.csi/volume-id", "volmgr.csi/target",
              "source\u200b", "csi.storage.k8s.io/unknown", "label", "quota\n"):
        add("extra key %r" % k, {k: "x" if not k.lower().startswith("source") else S})
    # ephemeral flag
    for v in ("TRUE", "True", "false", "1", "yes", " true", "true\n", ""):
        add("ephemeral=%r" % v, {kl.EPHEMERAL: v})
    add("ephemeral missing", {kl.EPHEMERAL: None})
    # option values
    for k, v in (("quota", "-1G"), ("quota", "99999999999999999999999G"), ("quota", "10Q"),
                 ("quota", "1G; rm -rf /"), ("quota", "0x10"), ("quota", "1" * 5000),
                 ("ttl", "-1h"), ("ttl", "1h; reboot"), ("ttl", "99999999999999999999h"),
                 ("ttl", "1x"), ("ttl", "\x00"), ("ttl", "1" * 5000)):
        add("%s=%r" % (k, v[:30]), {k: v})
    # sizes
    # an embedded NUL must not shorten a key or value into a valid one
    add("key 'source\\x00' alone (no 'source')", {"source": None, "source\x00": S})
    add("key 'quota\\x00x' = 1G", {"quota\x00x": "1G"})
    add("quota='1G\\x00junk'", {"quota": "1G\x00junk"})
    add("key 'ttl\\x00' = 1h", {"ttl\x00": "1h"})
    add("100 keys", {"k%03d" % i: "v" for i in range(100)})
    add("65 keys (pod info + 60 unknown)", {"x%02d" % i: "" for i in range(60)})
    add("context > 4 KiB in allowed keys (pod.name 4200 bytes)", {kl.POD_NAME: "p" * 4200})
    add("a 5000-byte key", {"k" * 5000: "v"})
    add("pod.namespace 5000 bytes", {kl.POD_NAMESPACE: "n" * 5000})
    return c


def tolerated_catalog():
    """Odd but allowed-looking contexts: OK (then unpublished) or
    INVALID_ARGUMENT, and nothing left behind either way."""
    return [
        ("pod.name with a newline", {kl.POD_NAME: "a\nb"}),
        ("pod.namespace with a NUL", {kl.POD_NAMESPACE: "a\x00b"}),
        ("pod.name '=' and ','", {kl.POD_NAME: "a=b,c=d"}),
        ("pod.uid '../../x'", {kl.POD_UID: "../../x"}),
        ("serviceAccount.name UTF-8", {kl.POD_SA: "\u00e9\u00e8\U0001f600"}),
        ("serviceAccount.tokens JSON", {"csi.storage.k8s.io/serviceAccount.tokens": '{"a":{"token":"x"}}'}),
        ("quota=''", {"quota": ""}),
        ("ttl=''", {"ttl": ""}),
        ("ttl=0", {"ttl": "0"}),
    ]


def phase_catalog():
    base = State()
    step("hostile volume contexts: each refused, nothing made")
    cat = hostile_catalog()
    ok("%d hostile contexts" % len(cat))
    for name, over, codes in cat:
        u = new_pod("hostile")
        ctx = pod_ctx(u, extra=src())
        for k, v in over.items():
            if v is None:
                ctx.pop(k, None)
            else:
                ctx[k] = v
        expect_publish_fail("hostile context: " + name, codes, uid=u, context=ctx)

    step("duplicate map entries on the wire (protobuf: the last one wins)")
    for name, entries, allowed in (
            ("source cache:%s then cache:../x" % CACHE, [("source", "cache:" + CACHE), ("source", "cache:../x")],
             {INVALID_ARGUMENT}),
            ("source cache:../x then cache:%s" % CACHE, [("source", "cache:../x"), ("source", "cache:" + CACHE)],
             {OK, INVALID_ARGUMENT}),
            ("ephemeral true then false", [(kl.EPHEMERAL, "true"), (kl.EPHEMERAL, "false")],
             {INVALID_ARGUMENT}),
            ("source cache:%s then cache:no-such" % CACHE,
             [("source", "cache:" + CACHE), ("source", "cache:no-such-cache")], {NOT_FOUND, INVALID_ARGUMENT})):
        u = new_pod("dup")
        t = make_parent(u, "ws")
        vid = kl.volume_handle(u, "ws")
        ctx = pod_ctx(u)
        if any(k == kl.EPHEMERAL for k, _ in entries):
            ctx.pop(kl.EPHEMERAL)
            ctx.update(src())
        extra = b"".join(kl.map_entry(8, k, v) for k, v in entries)
        before = State()
        rep = K.raw_publish(vid, t, ctx, extra=extra)
        req = "NodePublishVolume with volume_context entries %s" % entries
        expect_code("duplicate entries: " + name, rep, allowed, req)
        if rep.code == OK:
            info = inspect(expected_name(vid)) or {}
            check("duplicate entries: the volume's source is the last entry's",
                  info.get("source") in (None, "cache:" + CACHE), req, "cache:" + CACHE, str(info.get("source")))
            K.raw_unpublish(vid, t)
        check_nothing_left("duplicate entries: " + name, before, req, targets=[t])
        rm_parent(u, "ws")

    step("odd but harmless contexts: OK or INVALID_ARGUMENT, nothing left either way")
    for name, over in tolerated_catalog():
        u = new_pod("odd")
        t = make_parent(u, "ws")
        vid = kl.volume_handle(u, "ws")
        ctx = pod_ctx(u, extra=src())
        ctx.update(over)
        before = State()
        rep = K.raw_publish(vid, t, ctx)
        req = "NodePublishVolume{context %s}" % {k: v[:40] for k, v in over.items()}
        expect_code("odd context: " + name, rep, {OK, INVALID_ARGUMENT}, req)
        if rep.code == OK:
            expect_code("odd context: %s: unpublish" % name, K.raw_unpublish(vid, t), OK, req)
        check_nothing_left("odd context: " + name, before, req, targets=[t])
        rm_parent(u, "ws")
    check_nothing_left("phase catalog", base, "all hostile contexts")


# ------------------------------------------------------------ transport

def probe_ok(what):
    rep = K.probe(timeout=30)
    return expect_code("%s: Probe still answers" % what, rep, OK, "Probe{}")


def phase_transport():
    base = State()
    step("malformed messages")
    u = new_pod("wire")
    t = make_parent(u, "ws")
    vid = kl.volume_handle(u, "ws")
    good_req = K.publish_request(vid, t, pod_ctx(u, extra=src())).SerializeToString()
    for name, data, codes in (
            ("garbage bytes", b"\xff\xff\xff\xff\xff", {INVALID_ARGUMENT, INTERNAL}),
            ("truncated request", good_req[:len(good_req) // 2], {INVALID_ARGUMENT, INTERNAL}),
            ("field 1 as a varint", b"\x08\x01" + good_req[good_req.index(b"\x22"):],
             {INVALID_ARGUMENT, INTERNAL}),
            ("length beyond the message", b"\x0a\x7f" + b"csi-x", {INVALID_ARGUMENT, INTERNAL}),
            ("deeply nested unknown groups", b"\x5b" * 5000, {INVALID_ARGUMENT, INTERNAL}),
            ("unknown fields are skipped", good_req + kl.length_delimited(99, b"junk"), {OK}),
    ):
        before = State()
        rep = K.raw("/csi.v1.Node/NodePublishVolume", data)
        expect_code("NodePublishVolume, %s" % name, rep, codes, "/csi.v1.Node/NodePublishVolume <%s>" % name)
        if rep.code == OK:
            expect_code("unpublish after the unknown-fields publish", K.raw_unpublish(vid, t), OK, "")
        check_nothing_left("malformed: " + name, before, name, targets=[t])
        probe_ok(name)
    step("a request under 256 KiB (volmgr-csi's limit) is read")
    caps = PB.NodeGetCapabilitiesRequest().SerializeToString() + kl.length_delimited(99, b"u" * (200 << 10))
    rep = K.raw("/csi.v1.Node/NodeGetCapabilities", caps)
    expect_code("NodeGetCapabilities of %d bytes (an unknown field; <= 256 KiB)" % len(caps), rep, OK,
                "NodeGetCapabilities{field 99: 200 KiB}")
    probe_ok("200 KiB request")
    caps = PB.NodeGetCapabilitiesRequest().SerializeToString() + kl.length_delimited(99, b"u" * (300 << 10))
    rep = K.raw("/csi.v1.Node/NodeGetCapabilities", caps)
    expect_code("NodeGetCapabilities of %d bytes (> 256 KiB)" % len(caps), rep, RESOURCE_EXHAUSTED,
                "NodeGetCapabilities{field 99: 300 KiB}")
    probe_ok("300 KiB request")
    step("a request over 1 MiB")
    big = K.publish_request(vid, t, pod_ctx(u, extra=dict(src(), pad="x" * (1 << 20)))).SerializeToString()
    before = State()
    rep = K.raw("/csi.v1.Node/NodePublishVolume", big)
    expect_code("NodePublishVolume of %d bytes" % len(big), rep,
                {RESOURCE_EXHAUSTED, INVALID_ARGUMENT, INTERNAL}, "1 MiB+ request")
    check_nothing_left("request over 1 MiB", before, "1 MiB+ request", targets=[t])
    probe_ok("request over 1 MiB")
    step("compression (grpc-encoding: gzip)")
    import grpc
    for name, fn in (
            ("Probe", lambda: K.identity_rpc("Probe", PB.ProbeRequest(), compression=grpc.Compression.Gzip)),
            ("NodeGetCapabilities", lambda: K.node_rpc("NodeGetCapabilities", PB.NodeGetCapabilitiesRequest(),
                                                       compression=grpc.Compression.Gzip)),
            ("NodePublishVolume (2 KiB context)",
             lambda: K.rpc("/csi.v1.Node/NodePublishVolume",
                           K.publish_request(vid, t, pod_ctx(u, extra=dict(src(), quota="1" * 2000))),
                           PB.NodePublishVolumeResponse, compression=grpc.Compression.Gzip))):
        before = State()
        rep = fn()
        ok("gzip-compressed %s -> %r (grpcio sends small messages uncompressed)" % (name, rep))
        if name.startswith("NodePublish") and rep.code != OK:
            # gRPC's compression doc: an encoding the server does not
            # support is UNIMPLEMENTED.
            expect_code("a compressed NodePublishVolume", rep, UNIMPLEMENTED,
                        "NodePublishVolume, grpc-encoding gzip, compressed flag set")
        if rep.code == OK and name.startswith("NodePublish"):
            fail("gzip-compressed NodePublishVolume with a bad quota", "quota=111...", "not OK", repr(rep))
            K.raw_unpublish(vid, t)
        check_nothing_left("compressed " + name, before, name, targets=[t])
        probe_ok("compressed " + name)
    step("other :authority, metadata")
    rep = call_probe_authority("evil.example.org")
    expect_code("Probe with :authority evil.example.org", rep, {OK}, "Probe{} :authority other")
    rep = K.identity_rpc("Probe", PB.ProbeRequest(), metadata=(("x-junk", "a" * 7000),))
    ok("Probe with 7 KB of metadata -> %r" % rep)
    probe_ok("big metadata")
    step("raw socket abuse")
    for name, data in (("HTTP/1.1 request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
                       ("half a preface", b"PRI * HTTP/2.0\r\n"),
                       ("preface then garbage", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 100),
                       ("nothing", b""),
                       ("preface, then a HEADERS frame on stream 0",
                        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
                        + b"\x00\x00\x01\x01\x05\x00\x00\x00\x00\x82")):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(SOCK)
            s.sendall(data)
            try:
                s.recv(4096)
            except (socket.timeout, OSError):
                pass
        finally:
            s.close()
        probe_ok(name)
    step("more connections than --max-connections (64), then closed")
    socks = []
    for i in range(80):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(SOCK)
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            socks.append(s)
        except OSError as e:
            ok("connection %d refused (%s)" % (i, e))
            s.close()
            break
    ok("%d connections open" % len(socks))
    rep = K.probe(timeout=3)
    ok("Probe while %d idle connections are open -> %r (not checked)" % (len(socks), rep))
    for s in socks:
        s.close()
    deadline = time.monotonic() + 30
    while True:
        rep = K.probe(timeout=5)
        if rep.code == OK or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    expect_code("Probe once the idle connections are closed", rep, OK, "Probe{}")
    rm_parent(u, "ws")
    check_nothing_left("phase transport", base, "transport abuse")


def call_probe_authority(auth):
    return kl.call(SOCK, "/csi.v1.Identity/Probe", PB.ProbeRequest(), PB.ProbeResponse, authority=auth)


# ----------------------------------------------------------- concurrency

def phase_concurrent():
    base = State()
    n = int(ENV.get("CSI_PODS", "20"))
    step("%d pods published at once (one thread and connection each)" % n)
    uids = [new_pod("par%02d" % i) for i in range(n)]
    results = [None] * n

    def start(i):
        results[i] = K.pod_start(uids[i], "ws", src(), pod_name="par-%d" % i)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(n)]
    t0 = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    ok("%d publishes took %.2f s" % (n, time.monotonic() - t0))
    good = [r for r in results if r.code == OK]
    for i, r in enumerate(results):
        if r.code != OK:
            fail("concurrent publish #%d" % i, publish_desc(r), "OK", repr(r))
    check("all %d concurrent publishes OK" % n, len(good) == n, "", str(n), str(len(good)))
    names = {expected_name(r.volume_id) for r in good}
    vols = State().volumes
    check("%d distinct volumes, all listed" % n, len(names) == len(good) and names <= vols, "",
          "%d volumes" % n, "%d names, %d listed" % (len(names), len(names & vols)))
    mounted = [r for r in good if len(kl.mounts_at(r.target)) == 1]
    check("each of the %d targets has exactly one mount" % len(good), len(mounted) == len(good), "",
          str(len(good)), str(len(mounted)))
    for r in good:
        if open(os.path.join(r.target, "README")).read() != README:
            fail("concurrent pod content", r.target, README, "differs")
            break
    else:
        ok("all %d targets hold the cache" % len(good))

    step("%d pods stopped at once" % n)
    stops = [None] * n

    def stop(i):
        stops[i] = K.pod_stop(uids[i], "ws")

    threads = [threading.Thread(target=stop, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for i, s in enumerate(stops):
        if s[0] != OK:
            fail("concurrent unpublish #%d" % i, "NodeUnpublishVolume", "OK", "%s: %s" % (code_name(s[0]), s[1]))
    check("all %d unpublishes OK" % n, all(s[0] == OK for s in stops), "", "", "")
    for u in uids:
        rm_parent(u, "ws")
    check_nothing_left("%d concurrent pods" % n, base, "publish+unpublish x%d" % n,
                       targets=[K.vol_dir(u, "ws") for u in uids])

    step("the same volume published twice at once: OK or ABORTED, one volume, one mount")
    for rnd in range(3):
        u = new_pod("twin")
        rs = [None, None]

        def twin(i):
            rs[i] = K.pod_start(u, "ws", src(), kubelet_cleanup=False)

        ths = [threading.Thread(target=twin, args=(i,)) for i in range(2)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        codes = [r.code for r in rs]
        check("round %d: twin publishes -> %s" % (rnd, [code_name(c) for c in codes]),
              all(c in (OK, ABORTED) for c in codes) and OK in codes, "2 x NodePublishVolume, same request",
              "OK and OK/ABORTED", str([repr(r) for r in rs]))
        if ABORTED in codes:
            r = K.pod_start(u, "ws", src(), retry=True)
            expect_code("round %d: the kubelet's retry after ABORTED" % rnd, r, OK, publish_desc(r))
        t = K.target(u, "ws")
        check("round %d: exactly one mount at the target" % rnd, len(kl.mounts_at(t)) == 1, "", "1",
              str(len(kl.mounts_at(t))))
        check("round %d: exactly one volume more" % rnd, len(State().volumes - base.volumes) == 1, "",
              "1", str(sorted(State().volumes - base.volumes)))
        stop_and_check("twin round %d" % rnd, u, "ws", base)

    step("publish and unpublish of the same volume at once, then the kubelet's unpublish")
    for rnd in range(3):
        u = new_pod("race")
        make_parent(u, "ws")
        out = {}

        def pub():
            out["pub"] = K.pod_start(u, "ws", src(), kubelet_cleanup=False)

        def unpub():
            time.sleep(0.005 * rnd)
            out["unpub"] = K.raw_unpublish(kl.volume_handle(u, "ws"), K.target(u, "ws"))

        ths = [threading.Thread(target=pub), threading.Thread(target=unpub)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        ok("round %d: publish %r, unpublish %r" % (rnd, out["pub"], out["unpub"]))
        code, msg, _ = K.pod_stop(u, "ws", retry=True)
        check("round %d: the kubelet's teardown converges (%s)" % (rnd, code_name(code)), code == OK,
              "NodeUnpublishVolume with backoff", "OK", "%s: %s" % (code_name(code), msg))
        rm_parent(u, "ws")
        check_nothing_left("publish/unpublish race round %d" % rnd, base, "race", settle=0.5,
                           targets=[K.vol_dir(u, "ws")])


# ------------------------------------------------------- cancellation

def phase_cancel():
    base = State()
    step("client deadline expires during NodePublishVolume (kubelet: uncertain, then unpublish)")
    for tmo in (0.001, 0.01, 0.05, 0.15, 0.4):
        u = new_pod("cancel")
        r = K.pod_start(u, "ws", src(), timeout=tmo)
        ok("publish with a %.3f s deadline -> %r" % (tmo, r))
        if r.code == OK:
            pass
        elif r.code not in kl.NON_FINAL:
            fail("publish with a %.3f s deadline" % tmo, publish_desc(r), "OK or DEADLINE_EXCEEDED", repr(r))
        # The pod is deleted: TearDownAt with the reconciler's retries.
        code, msg, err = K.pod_stop(u, "ws", retry=True)
        check("%.3f s: teardown after the cancelled publish -> %s" % (tmo, code_name(code)), code == OK,
              "NodeUnpublishVolume (retried)", "OK", "%s: %s" % (code_name(code), msg))
        # A publish the plugin finishes after the client gave up must not
        # leave a volume or mount behind: wait, and look again.
        rm_parent(u, "ws")
        check_nothing_left("%.3f s deadline, then unpublish" % tmo, base, publish_desc(r), settle=2.0,
                           targets=[K.vol_dir(u, "ws")])
    step("client deadline expires, then the kubelet retries the publish")
    for tmo in (0.01, 0.1):
        u = new_pod("cancel-retry")
        r = K.pod_start(u, "ws", src(), timeout=tmo)
        ok("publish with a %.3f s deadline -> %r" % (tmo, r))
        time.sleep(kl.BACKOFF_INITIAL)
        r2 = K.pod_start(u, "ws", src(), retry=True)
        if expect_code("%.3f s: the retried publish" % tmo, r2, OK, publish_desc(r2)):
            check_published("retried after a deadline", r2)
        time.sleep(1.0)
        check("%.3f s: still one mount after the late work settles" % tmo,
              len(kl.mounts_at(r2.target)) == 1, "", "1", str(len(kl.mounts_at(r2.target))))
        check("%.3f s: one volume" % tmo, len(State().volumes - base.volumes) == 1, "", "1",
              str(sorted(State().volumes - base.volumes)))
        stop_and_check("retried publish %.3f" % tmo, u, "ws", base)


# ------------------------------------------------------------- restarts

def restart_uid(name):
    return "restart-%s-0000-0000-0000-000000000000" % name


def phase_restart_pre(name):
    step("publish before the %s restart" % name)
    u = restart_uid(name)
    r = K.pod_start(u, "ws", src(), pod_name="restart-" + name)
    if expect_code("publish before the restart", r, OK, publish_desc(r)):
        check_published("before the restart", r)
        with open(os.path.join(r.target, "before-restart"), "w") as f:
            f.write(name + "\n")
        rep = K.stats(u, "ws")
        expect_code("stats before the restart", rep, OK, "NodeGetVolumeStats")


def phase_restart_post(name):
    step("after the %s restart: stats, an identical publish, unpublish" % name)
    u = restart_uid(name)
    t = K.target(u, "ws")
    vid = kl.volume_handle(u, "ws")
    base_vols = State().volumes
    check("still mounted after the restart", len(kl.mounts_at(t)) == 1, t, "1 mount",
          str(kl.mounts_at(t)))
    rep = K.stats(u, "ws")
    if expect_code("stats after the restart", rep, OK, "NodeGetVolumeStats{%s, %s}" % (vid, t)):
        check("stats after the restart report BYTES",
              any(x.unit == PB.VolumeUsage.BYTES for x in rep.response.usage), "NodeGetVolumeStats",
              "BYTES", str(rep.response))
    rep = K.raw_stats(vid, os.path.join(TARGET_ROOT, "elsewhere", "mount"))
    expect_code("stats at a wrong path after the restart", rep, NOT_FOUND, "NodeGetVolumeStats{id, wrong path}")
    row = mount_row(t)
    r = K.pod_start(u, "ws", src(), pod_name="restart-" + name)
    expect_code("identical publish after the restart (kubelet reconstruction)", r, OK, publish_desc(r))
    rows = kl.mounts_at(t)
    check("still one and the same mount", len(rows) == 1 and row is not None and rows[0][0] == row[0],
          publish_desc(r), "mount %s" % (row and row[0]), str([x[0] for x in rows]))
    check("no volume added", State().volumes == base_vols, publish_desc(r), "", "")
    r2 = K.pod_start(u, "ws", src(), readonly=True, pod_name="restart-" + name, kubelet_cleanup=False)
    expect_code("readonly flipped after the restart", r2, ALREADY_EXISTS, publish_desc(r2))
    check("the file written before the restart is there",
          os.path.exists(os.path.join(t, "before-restart")), t, "before-restart", "missing")
    before = State()
    before.volumes.discard(expected_name(vid))
    before.mounts.discard(t)
    stop_and_check("after the %s restart" % name, u, "ws", before)


def phase_daemon_down(name="down"):
    step("volmgrd is not running (%s)" % name)
    rep = K.probe(timeout=30)
    expect_code("Probe while volmgrd is down", rep, UNAVAILABLE, "Probe{}")
    rep = K.node_rpc("NodeGetCapabilities", PB.NodeGetCapabilitiesRequest())
    expect_code("NodeGetCapabilities while volmgrd is down", rep, OK, "NodeGetCapabilities{}")
    rep = K.node_rpc("NodeGetInfo", PB.NodeGetInfoRequest())
    expect_code("NodeGetInfo while volmgrd is down", rep, OK, "NodeGetInfo{}")
    u = restart_uid(name)
    mounts_before = {r[1] for r in kl.mounts_under(TARGET_ROOT)}
    r = K.pod_start(u, "ws", src())
    expect_code("publish while volmgrd is down", r, UNAVAILABLE, publish_desc(r))
    check("no mount made", {x[1] for x in kl.mounts_under(TARGET_ROOT)} == mounts_before, publish_desc(r),
          "no new mount", str(kl.mounts_under(TARGET_ROOT)))
    check("target dir removed by the plugin", not r.target_existed, publish_desc(r), "no " + r.target,
          "exists")


def phase_daemon_up(name="down"):
    step("volmgrd is back (%s): the kubelet tears down the uncertain pod" % name)
    rep = K.probe(timeout=30)
    expect_code("Probe after volmgrd is back", rep, OK, "Probe{}")
    u = restart_uid(name)
    before = State()
    code, msg, err = K.pod_stop(u, "ws", retry=True)
    check("teardown of the pod whose publish got UNAVAILABLE -> %s" % code_name(code), code == OK,
          "NodeUnpublishVolume", "OK", "%s: %s" % (code_name(code), msg))
    rm_parent(u, "ws")
    check_nothing_left("uncertain pod torn down", before, "NodeUnpublishVolume",
                       targets=[K.vol_dir(u, "ws")])
    r = K.pod_start(u, "ws", src())
    if expect_code("publish once volmgrd is back", r, OK, publish_desc(r)):
        check_published("after volmgrd came back", r)
        stop_and_check("after volmgrd came back", u, "ws", before)


# ------------------------------------------- SIGTERM during publishes

TERM_PODS = 16


def term_uid(i):
    return "term-%02d-0000-0000-0000-000000000000" % i


def phase_term_during():
    """Publishes in flight, then SIGTERM to volmgr-csi (CSI_PID, the pid the
    test started): each reply is OK (then mounted) or a non-final code
    (the kubelet will retry); the plugin finishes and exits."""
    import signal
    pid = int(ENV["CSI_PID"])
    step("SIGTERM to volmgr-csi (pid %d) while %d publishes are in flight" % (pid, TERM_PODS))
    res = [None] * TERM_PODS

    def start(i):
        res[i] = K.pod_start(term_uid(i), "ws", src(), kubelet_cleanup=True)

    ths = [threading.Thread(target=start, args=(i,)) for i in range(TERM_PODS)]
    for th in ths:
        th.start()
    # SIGTERM once the first publish has been answered: the others are on
    # their way or in the plugin then.
    deadline = time.monotonic() + 10
    while not any(r is not None for r in res) and time.monotonic() < deadline:
        time.sleep(0.001)
    os.kill(pid, signal.SIGTERM)
    for th in ths:
        th.join()
    n_ok = sum(r.code == OK for r in res)
    check("%d of %d publishes answered OK around the SIGTERM, %d not" % (n_ok, TERM_PODS, TERM_PODS - n_ok),
          n_ok >= 1, "", ">= 1 OK", str(n_ok))
    for i, r in enumerate(res):
        good = r.code == OK or r.code in kl.NON_FINAL
        check("in-flight publish #%d -> %r" % (i, r), good, publish_desc(r),
              "OK or a non-final code (UNAVAILABLE, CANCELLED...)", repr(r))
        if r.code == OK:
            check("in-flight publish #%d answered OK is mounted" % i, bool(kl.mounts_at(r.target)),
                  publish_desc(r), "a mount", "no mount")
    deadline = time.monotonic() + 30
    while os.path.exists(SOCK) and time.monotonic() < deadline:
        time.sleep(0.05)
    check("volmgr-csi removed its socket after SIGTERM", not os.path.exists(SOCK), "SIGTERM",
          "no " + SOCK, "still there")


def phase_term_after():
    step("after the restart: the kubelet retries what failed, then stops every pod")
    base = State()
    for i in range(TERM_PODS):
        r = K.pod_start(term_uid(i), "ws", src(), retry=True)
        if expect_code("pod %d: publish (retry or idempotent replay)" % i, r, OK, publish_desc(r)):
            check("pod %d: one mount" % i, len(kl.mounts_at(r.target)) == 1, publish_desc(r), "1",
                  str(len(kl.mounts_at(r.target))))
    names = {expected_name(kl.volume_handle(term_uid(i), "ws")) for i in range(TERM_PODS)}
    now = State().volumes
    check("exactly the %d pods' volumes exist" % TERM_PODS,
          names <= now and not (now - base.volumes - names), "", sorted(names),
          sorted(now - base.volumes))
    for i in range(TERM_PODS):
        code, msg, _ = K.pod_stop(term_uid(i), "ws", retry=True)
        check("pod %d: teardown -> %s" % (i, code_name(code)), code == OK, "NodeUnpublishVolume",
              "OK", "%s: %s" % (code_name(code), msg))
        rm_parent(term_uid(i), "ws")
    base.volumes -= names
    base.mounts = {m for m in base.mounts if "/term-" not in m}
    check_nothing_left("SIGTERM during publishes", base, "retry + teardown of %d pods" % TERM_PODS)


# -------------------------------------------- a crash inside a call

def crash_uid(point):
    return "crash-%s-0000-0000-0000-000000000000" % point


def phase_crash_pre(point):
    """volmgr-csi runs with VOLMGR_FAULT=point: it dies at that step of
    the call (as a crash would, no cleanup).  The kubelet sees the
    connection go: UNAVAILABLE, not final (csi_client.go isFinalError),
    so the volume is uncertain and it retries (or unpublishes)."""
    step("a call that crashes volmgr-csi at %s" % point)
    u = crash_uid(point)
    if point.startswith("csi-unpublish"):
        # The publish itself runs on a volmgr-csi without the fault
        # (the script restarts it between the two halves of this phase).
        return
    r = K.pod_start(u, "ws", src(), pod_name="crash", kubelet_cleanup=False)
    expect_code("publish that crashes volmgr-csi at %s" % point, r, UNAVAILABLE, publish_desc(r))


def phase_crash_post(point):
    step("after the crash at %s, volmgr-csi restarted: the kubelet's retry converges" % point)
    u = crash_uid(point)
    t = K.target(u, "ws")
    vid = kl.volume_handle(u, "ws")
    name = expected_name(vid)
    if point.startswith("csi-unpublish"):
        # The unpublish crashed after the unmount: the kubelet retries it.
        check("the crashed unpublish left the target unmounted", not kl.mounts_at(t), t,
              "no mount", str(kl.mounts_at(t)))
        before = State()
        before.volumes.discard(name)
        stop_and_check("retried unpublish after the crash", u, "ws", before)
        return
    left = volumes()
    check("the crashed publish's volume is accounted for (labelled, listed)", name in left,
          "volmgr ls", name, sorted(left))
    r = K.pod_start(u, "ws", src(), pod_name="crash")
    if expect_code("the kubelet's retry of the publish", r, OK, publish_desc(r)):
        check_published("after the crash at " + point, r)
        check("one mount at the target", len(kl.mounts_at(t)) == 1, t, "1", str(kl.mounts_at(t)))
    before = State()
    before.volumes.discard(name)
    before.mounts.discard(t)
    stop_and_check("after the crash at " + point, u, "ws", before)


def phase_crash_publish(point):
    """For csi-unpublish-* points: publish now (volmgr-csi without the
    fault), so that the next volmgr-csi, with it, crashes in the
    unpublish."""
    u = crash_uid(point)
    r = K.pod_start(u, "ws", src(), pod_name="crash")
    if expect_code("publish before the crashing unpublish", r, OK, publish_desc(r)):
        check_published("before the crashing unpublish", r)


def phase_crash_unpublish(point):
    u = crash_uid(point)
    rep = K.raw_unpublish(kl.volume_handle(u, "ws"), K.target(u, "ws"))
    expect_code("unpublish that crashes volmgr-csi at %s" % point, rep, UNAVAILABLE,
                "NodeUnpublishVolume")


# --------------------------------------- seed rules by the pod's name

def phase_seed():
    """volmgrd's volmgr.conf has
        runner-*-project-{id}-concurrent-* = cache:project-{id}
    and the node has cache project-42: a pod with no source whose name is
    gitlab-runner's (common/build.go ProjectUniqueName) starts from it."""
    step("no source: the [seed] rules pick the cache by the pod's name")
    cases = (("runner-abcd1234-project-42-concurrent-0-x7k2q9", True),
             ("runner-abcd1234-project-7-concurrent-0-p0q1r2", False),  # no cache project-7
             ("some-other-pod", False))
    for pod_name, seeded in cases:
        u = new_pod("seed")
        before = State()
        r = K.pod_start(u, "ws", {"quota": "100M"}, pod_name=pod_name)
        if not expect_code("publish of pod %s without a source" % pod_name, r, OK, publish_desc(r)):
            continue
        t = r.target
        has = os.path.exists(os.path.join(t, "README"))
        check("pod %s: %s" % (pod_name, "the cache's checkout" if seeded else "an empty volume"),
              has == seeded and (seeded or os.listdir(t) == []), publish_desc(r),
              "README" if seeded else "empty", str(sorted(os.listdir(t))[:5]))
        info = inspect(expected_name(r.volume_id)) or {}
        seed = info.get("seed") or {}
        if seeded:
            check("pod %s: the volume's source is cache:project-42" % pod_name,
                  info.get("source", "").startswith("cache:project-42"), "volmgr inspect",
                  "cache:project-42", repr(info.get("source")))
            # No lineage (what a job-socket promote may feed): the pod's
            # name is its author's choice, in any namespace.
            check("pod %s: no seed lineage recorded for a pod's name" % pod_name, not seed,
                  "volmgr inspect", "no seed", repr(seed))
            if COMMIT:
                check("pod %s: at the cache's commit" % pod_name, git_head(t) == COMMIT, "",
                      COMMIT, git_head(t))
        stop_and_check("seeded pod %s" % pod_name, u, "ws", before)
    step("a pod's name never picks a volume (a volume:{x} rule): an empty volume")
    victim = "victimvol-%d" % os.getpid()
    volmgr("create", victim)
    try:
        mp = inspect(victim)["mountpoint"]
        with open(os.path.join(mp, "secret"), "w") as f:
            f.write("another job's file\n")
        u = new_pod("seed")
        before = State()
        r = K.pod_start(u, "ws", {}, pod_name="csivictim-" + victim)
        if expect_code("publish of pod csivictim-%s without a source" % victim, r, OK,
                       publish_desc(r)):
            check("pod csivictim-%s: an empty volume, not volume %s" % (victim, victim),
                  os.listdir(r.target) == [], publish_desc(r), "empty",
                  str(sorted(os.listdir(r.target))[:5]))
            stop_and_check("pod named after a volume", u, "ws", before)
    finally:
        volmgr("rm", victim, check_rc=False)
    step("a source given wins over the rules")
    u = new_pod("seed")
    before = State()
    r = K.pod_start(u, "ws", src(), pod_name="runner-abcd1234-project-42-concurrent-1-zz")
    if expect_code("publish with source and a rule-matching pod name", r, OK, publish_desc(r)):
        seed = (inspect(expected_name(r.volume_id)) or {}).get("seed") or {}
        check("no seed rule recorded when a source is given", not seed, "volmgr inspect", "no seed",
              repr(seed))
        stop_and_check("source over rules", u, "ws", before)


# ------------------------------------------------------------ the sweep

def wait_for(cond, seconds=20.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def phase_sweep():
    """volmgr-csi runs with --sweep-interval 500: a volume of this node
    whose target is gone is removed once nothing uses it; a mounted one
    never is."""
    step("a published volume stays through several sweeps")
    u_keep = new_pod("keep")
    rk = K.pod_start(u_keep, "ws", src(), pod_name="keep")
    expect_code("publish (kept)", rk, OK, publish_desc(rk))
    step("an unpublish while a process of the pod still sits in the volume: OK at once, "
         "the volume removed once the process is gone")
    u = new_pod("held")
    r = K.pod_start(u, "ws", src(), pod_name="held")
    if expect_code("publish", r, OK, publish_desc(r)):
        name = expected_name(r.volume_id)
        sleeper = subprocess.Popen(["sleep", "300"], cwd=r.target)
        try:
            time.sleep(0.2)
            rep = K.raw_unpublish(r.volume_id, r.target)
            expect_code("unpublish with a process inside the volume", rep, OK,
                        "NodeUnpublishVolume (cwd of pid %d inside)" % sleeper.pid)
            check("the target is gone", not os.path.lexists(r.target), r.target, "gone", "exists")
            ok("volume %s %s right after the unpublish" % (
                name, "still listed (held)" if name in volumes() else "already gone"))
        finally:
            sleeper.kill()
            sleeper.wait()
        check("the sweep removed volume %s once the process was gone" % name,
              wait_for(lambda: name not in volumes()), "volmgr ls", "gone", "still listed")
        rm_parent(u, "ws")
    step("a volume whose target went behind the plugin's back (a node reboot, the kubelet "
         "cleaning up without an unpublish): removed by the sweep")
    u = new_pod("gone")
    r = K.pod_start(u, "ws", src(), pod_name="gone")
    if expect_code("publish", r, OK, publish_desc(r)):
        name = expected_name(r.volume_id)
        subprocess.run(["umount", r.target], check=True)
        rm_parent(u, "ws")
        check("the sweep removed volume %s" % name, wait_for(lambda: name not in volumes()),
              "volmgr ls", "gone", "still listed")
    time.sleep(1.5)  # three more sweeps
    if rk.code == OK:
        check("the published volume was left alone by the sweeps",
              expected_name(rk.volume_id) in volumes() and len(kl.mounts_at(rk.target)) == 1,
              "volmgr ls; mountinfo", "listed and mounted", "")
        stop_and_check("kept pod", u_keep, "ws")


# ------------------------------------------- volmgrd slower than the bound

def phase_deadline():
    """volmgrd pauses in its next volume.create (VOLMGR_FAULT_PAUSE, armed
    here); volmgr-csi runs with --volmgrd-timeout 2000."""
    pause = ENV["CSI_PAUSE_DIR"]
    step("a publish whose create volmgrd holds: DEADLINE_EXCEEDED (not final: the kubelet retries)")
    u = new_pod("slow")
    open(os.path.join(pause, "volume.create.arm"), "w").close()
    t0 = time.monotonic()
    r = K.pod_start(u, "ws", src(), pod_name="slow", kubelet_cleanup=False)
    took = time.monotonic() - t0
    expect_code("publish while volmgrd holds the create", r, DEADLINE_EXCEEDED, publish_desc(r))
    check("its message says volmgrd did not answer", "did not answer" in r.message, "",
          "volmgrd did not answer ...", r.message)
    check("volmgr-csi gave up after about 2 s (%.1f s)" % took, 1.5 <= took < 20, "",
          "2 s", "%.1f s" % took)
    check("volmgrd is paused in the create",
          os.path.exists(os.path.join(pause, "volume.create.paused")), "", "paused", "not paused")
    # volmgrd pauses before it claims the name: the retry's own create
    # may make the volume (the held one then fails in volmgrd), or find
    # it being made.
    r2 = K.pod_start(u, "ws", src(), pod_name="slow", kubelet_cleanup=False)
    expect_code("the kubelet's retry while the first create is held", r2,
                {OK, ABORTED, DEADLINE_EXCEEDED}, publish_desc(r2))
    open(os.path.join(pause, "volume.create.resume"), "w").close()
    name = expected_name(kl.volume_handle(u, "ws"))

    def creates_logged():
        # volmgrd logs a request when it answers it: the held create's
        # line comes once it is done (after the retry's).
        with open(ENV["CSI_VOLMGRD_LOG"]) as f:
            return sum(1 for line in f if '"op":"volume.create"' in line and name in line)
    check("volmgrd finishes the held create once let go", wait_for(lambda: creates_logged() >= 2),
          "volmgrd.log", "2 creates of " + name, str(creates_logged()))
    check("one volume %s" % name, name in volumes(), "volmgr ls", name, "not listed")
    r3 = K.pod_start(u, "ws", src(), pod_name="slow")
    if expect_code("the next retry takes the volume volmgrd made", r3, OK, publish_desc(r3)):
        check_published("after the slow create", r3)
        before = State()
        before.volumes.discard(name)
        before.mounts.discard(r3.target)
        stop_and_check("after the slow create", u, "ws", before)


PHASES = {
    "term-during": phase_term_during, "term-after": phase_term_after,
    "basic": phase_basic, "errors": phase_errors, "catalog": phase_catalog,
    "transport": phase_transport, "concurrent": phase_concurrent, "cancel": phase_cancel,
    "restart-pre": phase_restart_pre, "restart-post": phase_restart_post,
    "daemon-down": phase_daemon_down, "daemon-up": phase_daemon_up,
    "crash-pre": phase_crash_pre, "crash-post": phase_crash_post,
    "crash-publish": phase_crash_publish, "crash-unpublish": phase_crash_unpublish,
    "seed": phase_seed, "sweep": phase_sweep, "deadline": phase_deadline,
}


def main(argv):
    phase = argv[0]
    try:
        PHASES[phase](*argv[1:])
    except Exception:
        import traceback
        traceback.print_exc()
        fail("phase %s raised" % phase, "", "no exception", "see the traceback above")
    if FAILURES:
        print("# phase %s: %d check(s) FAILED:" % (phase, len(FAILURES)), flush=True)
        for f in FAILURES:
            print("#   - %s" % f[0])
        return 1
    print("# phase %s: all checks passed" % phase, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
