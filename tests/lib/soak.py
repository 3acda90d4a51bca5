#!/usr/bin/env python3
# Mixed load on a running volmgrd for a while, watching its file
# descriptors and memory.  Used by tests/integration/soak-short.sh (about
# a minute, with assertions) and bench/soak.sh (10 minutes, a report).
#
#   soak.py --pid PID --plugin SOCK --control SOCK --src DIR --seconds N
#           [--workers W] [--warmup SECONDS] [--min-rounds R]
#
# Each worker loops over one round: volumes through both sockets (create
# empty and from a cache, inspect, list, Mount/Path/Unmount/Get/List,
# remove), a copy of a passed directory, errors (exists, not found, a bad
# name, malformed JSON, an unknown endpoint, an oversize body), now and
# then a cache import and removal and the metrics.  New connections
# every time, so every request also costs a thread and an fd in volmgrd.
# Every reply is checked; a wrong one stops the run with exit status 1.
#
# --min-rounds: go on past N seconds until R rounds are done, so that a
# loaded machine makes the run longer, not smaller.
#
# Prints one JSON object: requests, errors_expected, rounds, fds and RSS
# (KiB) of volmgrd at start, after the warm-up, max, and at the end
# (after the load, once every connection has been closed), and samples.
import argparse, json, os, sys, threading, time

from vtsock import control_connect, control_exchange, plugin_connect, plugin_exchange

ap = argparse.ArgumentParser()
ap.add_argument("--pid", type=int, required=True)
ap.add_argument("--plugin", required=True)
ap.add_argument("--control", required=True)
ap.add_argument("--src", required=True)
ap.add_argument("--seconds", type=float, required=True)
ap.add_argument("--workers", type=int, default=4)
ap.add_argument("--warmup", type=float, default=None)
ap.add_argument("--prefix", default="soak")
ap.add_argument("--min-rounds", type=int, default=0)
a = ap.parse_args()
warmup = a.warmup if a.warmup is not None else min(15.0, a.seconds / 4)

def fds():
    return len(os.listdir(f"/proc/{a.pid}/fd"))

def rss_kib():
    with open(f"/proc/{a.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")

def threads():
    return len(os.listdir(f"/proc/{a.pid}/task"))

class Bad(Exception):
    pass

def http(path, body, raw=None):
    b = raw if raw is not None else json.dumps(body).encode()
    try:
        return plugin_exchange(plugin_connect(a.plugin), path, b)
    except ValueError as e:
        raise Bad(str(e))

def ok_http(path, body):
    status, payload = http(path, body)
    reply = json.loads(payload)
    if status != 200 or reply.get("Err"):
        raise Bad(f"{path} {body}: {status} {payload[:200]!r}")
    return reply

def err_http(path, body=None, raw=None):
    status, payload = http(path, body, raw)
    if status == 200:
        raise Bad(f"{path} {body if raw is None else raw[:60]}: accepted")

def ctl(req, fd=None):
    return control_exchange(control_connect(a.control), req, fd)

def ok_ctl(req, fd=None):
    r = ctl(req, fd)
    if not r.get("ok"):
        raise Bad(f"{req}: {r}")
    return r

def err_ctl(req, name=None):
    r = ctl(req)
    if r.get("ok") or (name and r.get("error", {}).get("name") != name):
        raise Bad(f"{req}: expected an error {name or ''}, got {r}")

counts = {"requests": 0, "errors_expected": 0, "rounds": 0}
lock = threading.Lock()
stop = threading.Event()
failure = []

def round_(w, i, srcfd):
    p = f"{a.prefix}-{w}-{i}"
    n = 0
    ok_ctl({"op": "volume.create", "args": {"name": p + "-a", "source": "cache:soak", "labels": {"soak": "yes"}}})
    ok_http("/VolumeDriver.Create", {"Name": p + "-b", "Opts": {"source": "cache:soak"}})
    ok_ctl({"op": "volume.inspect", "args": {"name": p + "-a"}})
    ok_ctl({"op": "volume.list"})
    mid = f"{w:08x}{i:056x}"
    path = ok_http("/VolumeDriver.Mount", {"Name": p + "-b", "ID": mid})["Mountpoint"]
    if ok_http("/VolumeDriver.Path", {"Name": p + "-b"})["Mountpoint"] != path:
        raise Bad("Path differs from Mount")
    ok_http("/VolumeDriver.Get", {"Name": p + "-b"})
    ok_http("/VolumeDriver.List", {})
    ok_http("/VolumeDriver.Unmount", {"Name": p + "-b", "ID": mid})
    n += 9
    # errors, each a clear refusal
    err_ctl({"op": "volume.create", "args": {"name": p + "-a"}}, "EEXIST")
    err_ctl({"op": "volume.inspect", "args": {"name": p + "-none"}}, "ENOENT")
    err_http("/VolumeDriver.Create", {"Name": "../" + p})
    err_http("/VolumeDriver.Explode", {})
    err_http("/VolumeDriver.Create", raw=b'{"Name": ')
    err_http("/VolumeDriver.Create", raw=b'{"Name":"x","pad":"' + b"a" * 70000 + b'"}')
    err_ctl(b"not json")
    n += 7
    with lock:
        counts["errors_expected"] += 7
    if i % 5 == 0:  # a copy of a passed directory
        ok_ctl({"op": "volume.create", "args": {"name": p + "-c", "path": a.src}}, srcfd)
        ok_ctl({"op": "volume.remove", "args": {"name": p + "-c"}})
        n += 2
    if i % 20 == 0:
        ok_ctl({"op": "cache.import", "args": {"name": p + "-cache"}}, srcfd)
        ok_ctl({"op": "cache.remove", "args": {"name": p + "-cache"}})
        ok_ctl({"op": "metrics"})
        n += 3
    ok_ctl({"op": "volume.remove", "args": {"name": p + "-a"}})
    ok_http("/VolumeDriver.Remove", {"Name": p + "-b"})
    n += 2
    with lock:
        counts["requests"] += n
        counts["rounds"] += 1

def worker(w):
    srcfd = os.open(a.src, os.O_RDONLY | os.O_DIRECTORY)
    i = 0
    try:
        while not stop.is_set():
            round_(w, i, srcfd)
            i += 1
    except Exception as e:
        failure.append(f"worker {w} round {i}: {e!r}")
        stop.set()
    finally:
        os.close(srcfd)

start = {"fds": fds(), "rss_kib": rss_kib(), "threads": threads()}
t0 = time.monotonic()
ws = [threading.Thread(target=worker, args=(w,)) for w in range(a.workers)]
for t in ws:
    t.start()
samples, warm = [], None
while not stop.is_set():
    el = time.monotonic() - t0
    if el >= a.seconds and counts["rounds"] >= a.min_rounds:
        break
    s = {"t": round(el, 1), "fds": fds(), "rss_kib": rss_kib(), "threads": threads(),
         "requests": counts["requests"]}
    samples.append(s)
    if warm is None and el >= warmup:
        warm = dict(s)
    stop.wait(1.0)
stop.set()
for t in ws:
    t.join(300)

# The load is over and every connection closed: wait (bounded, for a
# loaded machine) for volmgrd's connection threads to finish, then take
# the end figures.
deadline = time.monotonic() + 120
while time.monotonic() < deadline and threads() > start["threads"]:
    time.sleep(0.2)
end = {"fds": fds(), "rss_kib": rss_kib(), "threads": threads()}
out = dict(counts)
out.update({
    "seconds": round(time.monotonic() - t0, 1), "workers": a.workers,
    "start": start, "after_warmup": warm or start, "end": end,
    "max": {"fds": max([s["fds"] for s in samples] + [end["fds"]]),
            "rss_kib": max([s["rss_kib"] for s in samples] + [end["rss_kib"]]),
            "threads": max([s["threads"] for s in samples] + [end["threads"]])},
    "samples": samples,
    "failure": failure,
})
print(json.dumps(out))
sys.exit(1 if failure else 0)
