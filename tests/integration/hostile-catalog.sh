#!/usr/bin/env bash
# A catalog of hostile inputs to both sockets: each gets a clear error,
# changes nothing in the pool, and leaves volmgrd answering.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init hostile-catalog
vt_require_root
vt_require_cmd python3

pool=$(vt_make_pool btrfs)/pool
vt_start_daemon "$pool"
mkdir -p "$VT_TMP/src" && echo x >"$VT_TMP/src/f"
"$VOLMGR" cache import proj "$VT_TMP/src" >/dev/null
"$VOLMGR" snapshot cache:proj keep >/dev/null
state() { (cd "$pool" && find . -path ./.volmgr/lock -prune -o -printf '%p %s %m\n' | sort); }
state >"$VT_TMP/before"

python3 - "$VT_PLUGIN_SOCK" "$VT_CONTROL_SOCK" <<'PY' || vt_fail "catalog"
import json, os, socket, sys, array
plugin, control = sys.argv[1], sys.argv[2]
failures, count = [], 0

# (The time-outs only bound a reply that never comes, for a loaded
# machine: every case is answered or dropped at once.)
def http(raw, read=True):
    s = socket.socket(socket.AF_UNIX); s.settimeout(60); s.connect(plugin)
    s.sendall(raw)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk: break
            data += chunk
            if b"\r\n\r\n" in data:
                head, _, body = data.partition(b"\r\n\r\n")
                cl = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if cl and len(body) >= int(cl[0].split(b":")[1]): break
    except socket.timeout:
        pass
    s.close()
    return data

def post(path, body, extra=b""):
    if isinstance(body, str): body = body.encode()
    return http(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % len(body) + extra + b"\r\n" + body)

def expect_http_error(what, resp):
    global count
    count += 1
    try:
        status = int(resp.split(b" ", 2)[1])
    except Exception:
        failures.append(f"{what}: no HTTP reply: {resp[:80]!r}"); return
    body = resp.partition(b"\r\n\r\n")[2]
    if status == 200:
        failures.append(f"{what}: accepted: {body[:120]!r}"); return
    if status == 500:
        try:
            err = json.loads(body)["Err"]
            assert isinstance(err, str) and err
        except Exception:
            failures.append(f"{what}: 500 without a clear Err: {body[:120]!r}"); return
    print(f"# ok: {what}: {status} {body[:100].decode(errors='replace')}")

C = "/VolumeDriver.Create"
cases = [
    ("name with /", lambda: post(C, '{"Name":"a/b"}')),
    ("name ..", lambda: post(C, '{"Name":".."}')),
    ("name with NUL", lambda: post(C, '{"Name":"ab\\u0000cd"}')),
    ("name with a control character", lambda: post(C, '{"Name":"ab\\u0001cd"}')),
    ("name of 4096 characters", lambda: post(C, json.dumps({"Name": "a" * 4096}))),
    ("invalid UTF-8", lambda: post(C, b'{"Name":"ab\xff\xfe"}')),
    ("unknown endpoint", lambda: post("/VolumeDriver.Explode", "{}")),
    ("GET method", lambda: http(b"GET /VolumeDriver.List HTTP/1.1\r\nHost: x\r\n\r\n")),
    ("duplicate keys", lambda: post(C, '{"Name":"dup1","Name":"dup2"}')),
    ("case-variant key", lambda: post(C, '{"name":"casey"}')),
    ("wrong type", lambda: post(C, '{"Name":5}')),
    ("huge number", lambda: post(C, '{"Name":"huge","Opts":{"quota":"99999999999999999999999"}}')),
    ("negative size", lambda: post(C, '{"Name":"neg","Opts":{"quota":"-1G"}}')),
    ("negative ttl", lambda: post(C, '{"Name":"negttl","Opts":{"ttl":"-5s"}}')),
    ("missing field", lambda: post("/VolumeDriver.Mount", '{"Name":"keep"}')),
    ("Opts not an object", lambda: post(C, '{"Name":"optarr","Opts":["source"]}')),
    ("option value not a string", lambda: post(C, '{"Name":"optint","Opts":{"source":1}}')),
    ("source escaping the pool", lambda: post(C, '{"Name":"esc","Opts":{"source":"cache:../../etc"}}')),
    ("a path source through the plugin", lambda: post(C, '{"Name":"viapath","Opts":{"source":"path:/etc"}}')),
    ("oversize body", lambda: post(C, '{"Name":"big","x":"' + "a" * 70000 + '"}')),
    ("oversize header", lambda: post(C, '{"Name":"hdr"}', b"X-Big: " + b"a" * 40000 + b"\r\n")),
    ("bad chunked body", lambda: http(b"POST " + C.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")),
]
for what, fn in cases:
    try:
        expect_http_error(what, fn())
    except Exception as e:
        failures.append(f"{what}: {e}")

# Truncated: the body ends early and the client closes its side: there is
# nobody left to answer, so the server must just drop it (quickly).
count += 1
import time
t0 = time.time()
# (Below libmicrohttpd's 60 s idle time-out: dropped at the client's EOF.)
s = socket.socket(socket.AF_UNIX); s.settimeout(30); s.connect(plugin)
s.sendall(b"POST " + C.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"Name\":\"trunc\"")
s.shutdown(socket.SHUT_WR)
try:
    rest = s.recv(65536)
except socket.timeout:
    rest = None
s.close()
if rest is None or b"HTTP/1.1 200" in rest:
    failures.append(f"truncated body: {rest!r}")
else:
    print(f"# ok: truncated body: dropped after {time.time() - t0:.1f} s ({rest[:40]!r})")

# Pipelined: two requests in one write, both answered in order.
count += 1
resp = http(b"POST /VolumeDriver.Get HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n\r\n{\"Name\":\"a/b\"}"
            b"POST /VolumeDriver.Get HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\n{\"Name\":\"keep\"}")
if resp.count(b"HTTP/1.1 ") >= 1 and b"500" in resp.split(b"\r\n", 1)[0]:
    print("# ok: pipelined requests: the bad one refused", resp.count(b"HTTP/1.1 "), "replies")
else:
    failures.append(f"pipelined: {resp[:200]!r}")

def ctl(payload, fds=()):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.settimeout(60); s.connect(control)
    if fds:
        s.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        s.send(payload)
    r = s.recv(1 << 20); s.close()
    return json.loads(r)

def expect_ctl_error(what, payload, fds=()):
    global count
    count += 1
    try:
        r = ctl(payload, fds)
    except Exception as e:
        failures.append(f"control {what}: {e}"); return
    if r.get("ok") is not False or not r.get("error", {}).get("message"):
        failures.append(f"control {what}: {r}"); return
    print(f"# ok: control {what}: {r['error']['name']} {r['error']['message'][:90]}")

expect_ctl_error("not JSON", b"hello")
expect_ctl_error("a JSON array", b"[1,2]")
expect_ctl_error("unknown op", b'{"op":"volume.explode","args":{}}')
expect_ctl_error("args of a wrong type", b'{"op":"volume.create","args":[]}')
expect_ctl_error("duplicate keys", b'{"op":"volume.create","op":"volume.remove","args":{"name":"keep"}}')
expect_ctl_error("unknown argument", b'{"op":"volume.remove","args":{"name":"keep","force":true}}')
expect_ctl_error("name of a wrong type", b'{"op":"volume.remove","args":{"name":["keep"]}}')
expect_ctl_error("message over 64 KiB", json.dumps({"op": "ping", "args": {"x": "a" * 70000}}).encode())
r1, w1 = os.pipe(); r2, w2 = os.pipe()
expect_ctl_error("two fds", b'{"op":"cache.import","args":{"name":"twofd"}}', (r1, r2))
expect_ctl_error("a path without its directory fd", b'{"op":"volume.create","args":{"name":"nofd","path":"/etc"}}')
expect_ctl_error("an fd that is no directory", b'{"op":"cache.import","args":{"name":"pipefd"}}', (r1,))
expect_ctl_error("a relative path", b'{"op":"volume.create","args":{"name":"rel","path":"etc"}}', (r1,))
expect_ctl_error("an empty volume: source", b'{"op":"volume.create","args":{"name":"emp","source":"volume:"}}')

print(f"# {count} hostile inputs")
if failures:
    print("\n".join("FAIL: " + f for f in failures)); sys.exit(1)
if count < 25:
    print("FAIL: fewer than 25 cases"); sys.exit(1)
PY
state >"$VT_TMP/after"
diff "$VT_TMP/before" "$VT_TMP/after" || vt_fail "the pool changed"
vt_log "ok: the pool is unchanged"
vt_assert_status 0 "$VOLMGR" inspect keep
