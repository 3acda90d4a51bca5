#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Check deploy/kubernetes/ against itself, without a cluster.

Loads every YAML file under deploy/kubernetes/ and the runner's TOML, and
checks what must agree for kubelet to reach volmgr-csi and for volmgr-csi
to reach volmgrd: the CSIDriver's fields, the DaemonSet's volumes and
mounts (same paths on the node and in the containers, Bidirectional where
mounts must reach the node, privileged where Bidirectional is used), the
sockets' paths as each side names them, the driver name everywhere, the
example pod's inline volume and the runner's [[runners.kubernetes.volumes.csi]].

With VOLMGR_CSI and/or VOLMGRD naming the binaries, every flag the
DaemonSet passes them must appear in their --help.

Usage: check-deploy.py [DEPLOY_DIR]     (default: deploy/kubernetes of this tree)
Prints each check; exits 1 at the first failure, saying what and where.
"""

import os
import posixpath
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

DRIVER = "volmgr.csi.volmgr.io"
KUBELET_ROOT = "/var/lib/kubelet"
VOLUME_OPTIONS = {"source", "quota", "ttl"}  # volmgr-csi(8): the volume context's options


class Failure(Exception):
    pass


def ok(what):
    print(f"ok    {what}")


def check(cond, what, why=""):
    if not cond:
        raise Failure(f"{what}" + (f": {why}" if why else ""))
    ok(what)


def flag(args, name):
    """The value of --name in an argument list ("--name V" or "--name=V"), or None."""
    for i, a in enumerate(args):
        if a == name:
            if i + 1 >= len(args):
                raise Failure(f"{name} is the last argument and has no value")
            return args[i + 1]
        if a.startswith(name + "="):
            return a[len(name) + 1 :]
    return None


def flags_used(args):
    return sorted({a.split("=", 1)[0] for a in args if a.startswith("--")})


def under(path, directory):
    """path lies in directory (both absolute, normalised)."""
    p, d = posixpath.normpath(path), posixpath.normpath(directory)
    return p == d or p.startswith(d.rstrip("/") + "/")


def load_yaml(deploy):
    docs = []
    files = sorted(list(deploy.rglob("*.yaml")) + list(deploy.rglob("*.yml")))
    if not files:
        raise Failure(f"no YAML files under {deploy}")
    for f in files:
        try:
            with open(f) as fh:
                for d in yaml.safe_load_all(fh):
                    if d is None:
                        continue
                    if not isinstance(d, dict) or "kind" not in d:
                        raise Failure(f"{f}: a document without a kind")
                    docs.append((f.name, d))
        except yaml.YAMLError as e:
            raise Failure(f"{f}: not valid YAML: {e}")
        ok(f"{f.relative_to(deploy.parent.parent)} parses")
    return docs


def one(docs, kind):
    found = [(f, d) for f, d in docs if d["kind"] == kind]
    check(len(found) == 1, f"exactly one {kind}", f"found {len(found)}")
    return found[0]


def check_csidriver(docs):
    f, d = one(docs, "CSIDriver")
    spec = d.get("spec", {})
    check(d["metadata"]["name"] == DRIVER, f"{f}: CSIDriver is named {DRIVER}", d["metadata"]["name"])
    check(spec.get("volumeLifecycleModes") == ["Ephemeral"], f"{f}: volumeLifecycleModes is [Ephemeral]",
          repr(spec.get("volumeLifecycleModes")))
    check(spec.get("podInfoOnMount") is True, f"{f}: podInfoOnMount is true "
          "(kubelet sends csi.storage.k8s.io/ephemeral only then)")
    check(spec.get("attachRequired") is False, f"{f}: attachRequired is false")
    check(spec.get("fsGroupPolicy") == "None", f"{f}: fsGroupPolicy is None (no recursive chown)",
          repr(spec.get("fsGroupPolicy")))
    check(spec.get("storageCapacity") is False, f"{f}: storageCapacity is false")
    check(spec.get("requiresRepublish") is False, f"{f}: requiresRepublish is false")
    return d["metadata"]["name"]


def container_by(containers, pred, what):
    found = [c for c in containers if pred(c)]
    check(len(found) == 1, f"DaemonSet: one {what} container", f"found {len(found)}")
    return found[0]


def cmdline(c):
    return list(c.get("command", [])) + list(c.get("args", []))


def mount_of(c, volume_name):
    ms = [m for m in c.get("volumeMounts", []) if m["name"] == volume_name]
    return ms[0] if ms else None


def check_daemonset(docs, driver):
    f, ds = one(docs, "DaemonSet")
    ns = [d for _, d in docs if d["kind"] == "Namespace"]
    check(any(n["metadata"]["name"] == ds["metadata"].get("namespace") for n in ns),
          f"{f}: the DaemonSet's namespace {ds['metadata'].get('namespace')} is defined")
    sas = [d for _, d in docs if d["kind"] == "ServiceAccount"]
    pod = ds["spec"]["template"]["spec"]
    sa = pod.get("serviceAccountName")
    check(sa is None or any(s["metadata"]["name"] == sa and
                            s["metadata"].get("namespace") == ds["metadata"].get("namespace") for s in sas),
          f"{f}: serviceAccountName {sa} is defined in that namespace")
    sel = ds["spec"]["selector"]["matchLabels"]
    labels = ds["spec"]["template"]["metadata"].get("labels", {})
    check(all(labels.get(k) == v for k, v in sel.items()), f"{f}: the selector matches the pod template's labels")
    check(pod.get("hostPID") is True, f"{f}: hostPID is true (volmgrd's in-use scan reads every "
          "process's mount namespace)")

    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    containers = pod["containers"]
    for c in containers:
        for m in c.get("volumeMounts", []):
            check(m["name"] in volumes, f"{f}: {c['name']} mounts volume {m['name']!r}, which is defined")
            if m.get("mountPropagation") == "Bidirectional":
                check(c.get("securityContext", {}).get("privileged") is True,
                      f"{f}: {c['name']} is privileged, as Bidirectional propagation of "
                      f"{m['mountPath']} requires")

    def host_path(name):
        hp = volumes[name].get("hostPath")
        return hp["path"].rstrip("/") if hp else None

    def volume_with_host_path(path):
        names = [n for n in volumes if host_path(n) == path]
        check(len(names) == 1, f"{f}: one hostPath volume of {path}", f"found {names}")
        return names[0]

    volmgrd = container_by(containers, lambda c: any(posixpath.basename(a) == "volmgrd"
                                                    for a in c.get("command", [])[:1]), "volmgrd")
    csi = container_by(containers, lambda c: any(posixpath.basename(a) == "volmgr-csi"
                                                for a in c.get("command", [])[:1]), "volmgr-csi")
    reg = container_by(containers, lambda c: "csi-node-driver-registrar" in c.get("image", ""),
                       "node-driver-registrar")
    csi_args, volmgrd_args, reg_args = cmdline(csi)[1:], cmdline(volmgrd)[1:], cmdline(reg)

    # kubelet's pod directories: same path, Bidirectional.
    pods_dir = f"{KUBELET_ROOT}/pods"
    pods_vol = volume_with_host_path(pods_dir)
    m = mount_of(csi, pods_vol)
    check(m is not None, f"{f}: volmgr-csi mounts {pods_dir}")
    check(m["mountPath"].rstrip("/") == pods_dir, f"{f}: volmgr-csi has {pods_dir} at the same path",
          m["mountPath"])
    check(m.get("mountPropagation") == "Bidirectional",
          f"{f}: volmgr-csi's {pods_dir} is Bidirectional (its bind mounts must reach the node)",
          repr(m.get("mountPropagation")))
    target_root = flag(csi_args, "--target-root") or "/var/lib/kubelet/pods"
    check(under(target_root, m["mountPath"]), f"{f}: volmgr-csi --target-root {target_root} lies in that mount")

    # The plugin's socket directory and the registration directory.
    plugin_dir = f"{KUBELET_ROOT}/plugins/{driver}"
    plugin_vol = volume_with_host_path(plugin_dir)
    reg_dir = f"{KUBELET_ROOT}/plugins_registry"
    reg_vol = volume_with_host_path(reg_dir)
    check(volumes[pods_vol]["hostPath"].get("type") in (None, "Directory"),
          f"{f}: {pods_dir} is not created by the DaemonSet (kubelet's)")

    rm = mount_of(reg, reg_vol)
    check(rm is not None and rm["mountPath"].rstrip("/") == "/registration",
          f"{f}: the registrar has {reg_dir} at /registration (where it serves {driver}-reg.sock)")

    # The registrar: the node's socket path, and its own view of the socket.
    kreg = flag(reg_args, "--kubelet-registration-path")
    check(kreg == plugin_dir + "/csi.sock",
          f"{f}: --kubelet-registration-path is the plugin dir's hostPath + /csi.sock", repr(kreg))
    caddr = flag(reg_args, "--csi-address")
    check(caddr is not None, f"{f}: the registrar has --csi-address")
    caddr_path = caddr[len("unix://"):] if caddr.startswith("unix://") else caddr
    rpm = mount_of(reg, plugin_vol)
    check(rpm is not None, f"{f}: the registrar mounts the plugin dir")
    check(posixpath.dirname(caddr_path) == rpm["mountPath"].rstrip("/") and
          posixpath.basename(caddr_path) == posixpath.basename(kreg),
          f"{f}: the registrar's --csi-address {caddr} is the same socket as {kreg}")

    # volmgr-csi: its endpoint in its mount of the plugin dir.
    endpoint = flag(csi_args, "--endpoint")
    if endpoint is None:
        env = {e["name"]: e.get("value") for e in csi.get("env", [])}
        endpoint = env.get("CSI_ENDPOINT")
    check(endpoint is not None and endpoint.startswith("unix:///"),
          f"{f}: volmgr-csi --endpoint is a unix:/// address", repr(endpoint))
    ep_path = endpoint[len("unix://"):]
    cpm = mount_of(csi, plugin_vol)
    check(cpm is not None, f"{f}: volmgr-csi mounts the plugin dir")
    check(posixpath.dirname(ep_path) == cpm["mountPath"].rstrip("/") and
          posixpath.basename(ep_path) == posixpath.basename(kreg),
          f"{f}: volmgr-csi's endpoint {ep_path} is {kreg} on the node "
          f"(plugin dir mounted at {cpm['mountPath']})")

    dn = flag(csi_args, "--driver-name") or DRIVER
    check(dn == driver, f"{f}: volmgr-csi --driver-name is {driver}", dn)

    node_id = flag(csi_args, "--node-id")
    check(node_id is not None, f"{f}: volmgr-csi has --node-id")
    for var in re.findall(r"\$\((\w+)\)", node_id):
        env = [e for e in csi.get("env", []) if e["name"] == var]
        check(len(env) == 1 and env[0].get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName",
              f"{f}: --node-id's $({var}) is the downward API's spec.nodeName")

    # The pool: same path on the node, in volmgrd and in volmgr-csi.
    pool = flag(volmgrd_args, "--pool") or "/var/lib/volmgr"
    pool_vol = volume_with_host_path(pool)
    for c in (volmgrd, csi):
        pm = mount_of(c, pool_vol)
        check(pm is not None and pm["mountPath"].rstrip("/") == pool,
              f"{f}: {c['name']} has the pool {pool} at the node's path")
        check(pm.get("mountPropagation") in ("Bidirectional", "HostToContainer"),
              f"{f}: {c['name']}'s pool mount sees mounts made on the node later",
              repr(pm.get("mountPropagation")))

    # The control socket: one path, in a volume both containers share.
    ctl_d = flag(volmgrd_args, "--control-socket") or "/run/volmgr/control.sock"
    ctl_c = flag(csi_args, "--control-socket") or "/run/volmgr/control.sock"
    check(ctl_d == ctl_c, f"{f}: volmgrd and volmgr-csi name the same control socket {ctl_d}", ctl_c)
    shared = [n for n in volumes
              if (a := mount_of(volmgrd, n)) and (b := mount_of(csi, n)) and
              a["mountPath"] == b["mountPath"] and under(ctl_d, a["mountPath"]) and n != pool_vol]
    check(len(shared) == 1, f"{f}: the control socket lies in a volume both mount at the same path",
          f"found {shared}")
    check(mount_of(reg, shared[0]) is None, f"{f}: the registrar does not mount the control socket's volume")

    return {"nodeSelector": pod.get("nodeSelector", {}), "volmgrd_args": volmgrd_args,
            "csi_args": csi_args}


def check_pods(docs, driver, node_selector):
    pods = [(f, d) for f, d in docs if d["kind"] == "Pod"]
    check(len(pods) >= 1, "an example Pod")
    for f, p in pods:
        spec = p["spec"]
        csi_vols = [v for v in spec.get("volumes", []) if "csi" in v]
        check(len(csi_vols) >= 1, f"{f}: the pod has an inline csi volume")
        for v in csi_vols:
            c = v["csi"]
            check(c.get("driver") == driver, f"{f}: volume {v['name']} uses driver {driver}", c.get("driver"))
            check(c.get("fsType", "") == "", f"{f}: volume {v['name']} has no fsType")
            attrs = c.get("volumeAttributes", {})
            check(set(attrs) <= VOLUME_OPTIONS, f"{f}: volumeAttributes are volmgr options only",
                  str(sorted(set(attrs) - VOLUME_OPTIONS)))
            check(all(isinstance(x, str) for x in attrs.values()), f"{f}: volumeAttributes are strings")
            check(attrs.get("source", "cache:").startswith("cache:"), f"{f}: source is cache:NAME",
                  attrs.get("source"))
            mounted = [c2["name"] for c2 in spec["containers"] if mount_of(c2, v["name"])]
            check(mounted, f"{f}: a container mounts volume {v['name']}")
        check(all(spec.get("nodeSelector", {}).get(k) == val for k, val in node_selector.items()),
              f"{f}: the pod goes to the DaemonSet's nodes (nodeSelector {node_selector})")


def check_runner(deploy, driver, node_selector):
    files = sorted(deploy.rglob("*.toml"))
    check(len(files) == 1, "one runner TOML", str(files))
    f = files[0]
    with open(f, "rb") as fh:
        try:
            cfg = tomllib.load(fh)
        except tomllib.TOMLDecodeError as e:
            raise Failure(f"{f}: not valid TOML: {e}")
    ok(f"{f.name} parses")
    runners = cfg.get("runners", [])
    check(len(runners) >= 1, f"{f.name}: at least one [[runners]]")
    for r in runners:
        n = r.get("name", "?")
        check(r.get("executor") == "kubernetes", f"{f.name}: runner {n} uses the kubernetes executor")
        builds_dir = r.get("builds_dir", "/builds").rstrip("/")
        env = r.get("environment", [])
        check("GIT_STRATEGY=fetch" in env, f"{f.name}: runner {n} sets GIT_STRATEGY=fetch "
              "(clone and empty rm -rf the project dir, a mount point)")
        check(not any(e.startswith("FF_DISABLE_UMASK_FOR_KUBERNETES_EXECUTOR=") and
                      e.split("=", 1)[1].lower() in ("1", "true") for e in env),
              f"{f.name}: runner {n} leaves FF_DISABLE_UMASK_FOR_KUBERNETES_EXECUTOR off (chown -R of builds_dir)")
        k = r.get("kubernetes", {})
        csis = k.get("volumes", {}).get("csi", [])
        check(len(csis) == 1, f"{f.name}: runner {n} has one [[runners.kubernetes.volumes.csi]]")
        v = csis[0]
        check(v.get("driver") == driver, f"{f.name}: runner {n}'s csi driver is {driver}", v.get("driver"))
        check(v.get("name"), f"{f.name}: runner {n}'s csi volume has a name")
        mp = v.get("mount_path", "")
        check(mp.startswith(builds_dir + "/"),
              f"{f.name}: runner {n}'s mount_path {mp} lies below builds_dir {builds_dir} "
              "(not equal to it: the runner would switch to the shared layout)")
        check(v.get("fs_type", "") == "", f"{f.name}: runner {n}'s csi volume has no fs_type")
        attrs = v.get("volume_attributes", {})
        check(set(attrs) <= VOLUME_OPTIONS, f"{f.name}: runner {n}'s volume_attributes are volmgr options only",
              str(sorted(set(attrs) - VOLUME_OPTIONS)))
        # No source: volmgr.conf's [seed] rules pick one by the pod's name.
        src = attrs.get("source")
        check(src is None or (src.startswith("cache:") and len(src) > len("cache:")),
              f"{f.name}: runner {n}'s volume_attributes.source is absent (seed rules) or cache:NAME",
              repr(src))
        check("$" not in "".join(attrs.values()),
              f"{f.name}: runner {n}'s volume_attributes have no $VARIABLES (the runner does not expand them)")
        ns = k.get("node_selector", {})
        check(all(ns.get(key) == val for key, val in node_selector.items()),
              f"{f.name}: runner {n}'s job pods go to the DaemonSet's nodes (node_selector {node_selector})")


def check_help(var, name, args):
    binary = os.environ.get(var)
    if not binary:
        print(f"note  {var} is not set: {name}'s flags not checked against its --help")
        return
    try:
        p = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
    except OSError as e:
        raise Failure(f"{var}={binary}: cannot run: {e}")
    text = p.stdout + p.stderr
    check(p.returncode == 0, f"{binary} --help exits 0", f"exit status {p.returncode}")
    for fl in flags_used(args):
        check(re.search(r"(^|[\s,\[])" + re.escape(fl) + r"([\s=,\]]|$)", text, re.M),
              f"{name}: {fl} is in {binary} --help")


def main():
    here = Path(__file__).resolve()
    deploy = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else here.parents[2] / "deploy" / "kubernetes"
    print(f"checking {deploy}")
    try:
        docs = load_yaml(deploy)
        driver = check_csidriver(docs)
        ds = check_daemonset(docs, driver)
        check_pods(docs, driver, ds["nodeSelector"])
        check_runner(deploy, driver, ds["nodeSelector"])
        check_help("VOLMGRD", "volmgrd", ds["volmgrd_args"])
        check_help("VOLMGR_CSI", "volmgr-csi", ds["csi_args"])
    except Failure as e:
        print(f"FAIL  {e}", file=sys.stderr)
        return 1
    except (KeyError, TypeError, IndexError) as e:
        print(f"FAIL  a field the checks need is missing or of the wrong type: {e!r}", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
