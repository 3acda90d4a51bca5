#!/usr/bin/env bash
# volmgr metrics: Prometheus text with volumes, bytes, snapshot and copy
# latency histograms, requests by endpoint and errors by kind.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init metrics
vt_require_root
vt_require_cmd curl python3

pool=$(vt_make_pool btrfs)/pool
vt_start_daemon "$pool"
mkdir -p "$VT_TMP/src" && head -c 100000 /dev/urandom >"$VT_TMP/src/f"
"$VOLMGR" cache import proj "$VT_TMP/src" >/dev/null
"$VOLMGR" snapshot cache:proj m1 >/dev/null
"$VOLMGR" snapshot cache:proj m2 >/dev/null
"$VOLMGR" snapshot cache:nope m3 2>/dev/null || true
"$VOLMGR" inspect nope 2>/dev/null || true
curl -sS --unix-socket "$VT_PLUGIN_SOCK" -X POST http://p/VolumeDriver.Create -d '{"Name":"m4","Opts":{"source":"cache:proj"}}' >/dev/null
curl -sS --unix-socket "$VT_PLUGIN_SOCK" -X POST http://p/VolumeDriver.Get -d '{"Name":"gone"}' >/dev/null
curl -sS --unix-socket "$VT_PLUGIN_SOCK" -X POST http://p/VolumeDriver.Nope -d '{}' >/dev/null

out=$("$VOLMGR" metrics)
printf '%s\n' "$out" >"$VT_TMP/metrics.txt"
vt_step "the exposition format parses, and the numbers are right"
python3 - "$VT_TMP/metrics.txt" <<'PY' || vt_fail "metrics"
import re, sys
text = open(sys.argv[1]).read()
samples, types = {}, {}
for line in text.splitlines():
    if line.startswith("# TYPE"):
        _, _, name, t = line.split(); types[name] = t; continue
    if line.startswith("#") or not line: continue
    m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.e+]+|\+Inf)', line)
    assert m, f"bad line: {line!r}"
    samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
def want(key, cond, what):
    v = samples.get(key)
    assert v is not None and cond(v), f"{what}: {key} = {v}"
    print(f"# ok: {what}: {key} = {v}")
want("volmgr_volumes", lambda v: v == 3, "volumes")
want("volmgr_caches", lambda v: v == 1, "caches")
want("volmgr_snapshot_seconds_count", lambda v: v == 3, "snapshots timed")
want("volmgr_copy_seconds_count", lambda v: v == 1, "copies timed")
want('volmgr_snapshot_seconds_bucket{le="+Inf"}', lambda v: v == 3, "histogram total")
want('volmgr_requests_total{socket="plugin",request="VolumeDriver.Create",result="ok"}', lambda v: v == 1, "plugin Create")
want('volmgr_requests_total{socket="plugin",request="VolumeDriver.Get",result="ENOENT"}', lambda v: v == 1, "plugin Get failed")
want('volmgr_requests_total{socket="plugin",request="unknown",result="EINVAL"}', lambda v: v == 1, "unknown endpoint")
want('volmgr_requests_total{socket="control",request="volume.create",result="ok"}', lambda v: v == 2, "CLI snapshots")
want('volmgr_errors_total{kind="ENOENT"}', lambda v: v >= 3, "errors by kind")
want('volmgr_volume_bytes{kind="exclusive"}', lambda v: v >= 0, "bytes")
# buckets never decrease
for h in ("volmgr_snapshot_seconds", "volmgr_copy_seconds"):
    assert types[h] == "histogram"
    vals = [v for k, v in samples.items() if k.startswith(h + "_bucket")]
    assert vals == sorted(vals), f"{h} buckets decrease: {vals}"
print("# ok: histogram buckets are cumulative")
PY
"$VOLMGR" rm m1 m2 m4 >/dev/null
