#!/usr/bin/env bash
# Exhaustion: stalled clients on both sockets never block the others; a
# chunked body (no length given up front) is bounded too; an exceeded
# quota and a full pool (ENOSPC, in the middle of a copy and before a
# create, snapshot or import) give clear errors and leave no partial
# volume or record; once space is freed, volmgrd works again.
# (Oversize bodies with a length and oversize headers: hostile-catalog.)
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init exhaustion
vt_require_root
vt_require_cmd python3 jq btrfs curl

# --mixed: data and metadata share the space, so a full pool also refuses
# new subvolumes (with separate metadata, snapshots would still fit).
pool=$(vt_make_pool btrfs 160M --mixed)/pool
vt_start_daemon "$pool"
mkdir -p "$VT_TMP/src"
echo hello >"$VT_TMP/src/README"
"$VOLMGR" cache import proj "$VT_TMP/src" >/dev/null
vt_check_pool_consistent

# The state a refused request must leave as it was: names, records, data.
state() { (cd "$pool" && find . -path ./.volmgr/lock -prune -o -path './volumes/filler/*' -prune -o -printf '%p %y\n' | sort); }

# assert_refused EXIT-STATUS MESSAGE CMD... — CMD fails with that exit
# status and MESSAGE in what it prints, and the pool is unchanged.
assert_refused() {
	local want=$1 msg=$2 status=0 out before
	shift 2
	before=$(state)
	out=$("$@" 2>&1) || status=$?
	[[ $status == "$want" ]] || vt_fail "'$*' exited $status, expected $want: $out"
	[[ $out == *"$msg"* ]] || vt_fail "'$*' did not say '$msg': $out"
	[[ $(state) == "$before" ]] || vt_fail "'$*' changed the pool: $(diff <(echo "$before") <(state))"
	vt_log "ok: '$*' -> $status: $out"
}

plugin_create() { # NAME [OPTS-JSON] — prints "STATUS BODY"
	curl -sS --max-time 120 --unix-socket "$VT_PLUGIN_SOCK" -X POST -w ' %{http_code}' \
		http://plugin/VolumeDriver.Create -d "{\"Name\":\"$1\",\"Opts\":${2:-{\}}}"
}

vt_step "stalled clients on both sockets: everyone else is answered meanwhile"
python3 - "$VT_PLUGIN_SOCK" "$VT_CONTROL_SOCK" <<'PY' || vt_fail "stalled clients blocked others"
import json, socket, sys, time
plugin, control = sys.argv[1], sys.argv[2]

def stall_plugin(raw):
    s = socket.socket(socket.AF_UNIX); s.settimeout(30); s.connect(plugin)
    if raw: s.sendall(raw)
    return s

stallers = []
# Half a body; half the headers; nothing at all; a request line only.
for i in range(10):
    stallers.append(stall_plugin(b"POST /VolumeDriver.Create HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"Name\":"))
    stallers.append(stall_plugin(b"POST /VolumeDriver.List HTTP/1.1\r\nHost: x\r\nContent-Len"))
    stallers.append(stall_plugin(b""))
    stallers.append(stall_plugin(b"POST /VolumeDriver.Get HTTP/1.1\r\n"))

def ctl_connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.settimeout(60); s.connect(control)
    return s
# More idle control clients than volmgrd serves at once (64), and some
# that send requests and never read the replies.
ctl_idle = [ctl_connect() for _ in range(80)]
ctl_deaf = []
for i in range(5):
    s = ctl_connect()
    for _ in range(3):
        s.send(json.dumps({"op": "volume.list"}).encode())
    ctl_deaf.append(s)

def http(path, body):
    s = socket.socket(socket.AF_UNIX); s.settimeout(60); s.connect(plugin)
    b = json.dumps(body).encode()
    s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (path.encode(), len(b)) + b)
    data = b""
    while True:
        c = s.recv(65536)
        if not c: break
        data += c
    s.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(payload)

def ctl(req):
    s = ctl_connect()
    s.send(json.dumps(req).encode())
    r = json.loads(s.recv(1 << 20)); s.close()
    return r

t0 = time.monotonic()
for i in range(20):
    name = f"busy-{i}"
    for path, body in (("/VolumeDriver.Create", {"Name": name}), ("/VolumeDriver.Get", {"Name": name}),
                       ("/VolumeDriver.Remove", {"Name": name})):
        status, reply = http(path, body)
        if status != 200 or reply.get("Err"):
            sys.exit(f"{path} {name} while others stall: {status} {reply}")
    for req in ({"op": "volume.create", "args": {"name": "c" + name}},
                {"op": "volume.inspect", "args": {"name": "c" + name}},
                {"op": "volume.remove", "args": {"name": "c" + name}}):
        r = ctl(req)
        if not r.get("ok"):
            sys.exit(f"control {req} while others stall: {r}")
print(f"# ok: 60 plugin and 60 control requests answered in {time.monotonic() - t0:.1f} s")

# They were answered *while* the stallers stalled: every plugin staller
# is still connected (no EOF, nothing sent to it), as are the most recent
# 64 control clients; only the longest idle ones made room.
def still_open(s):
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
open_plugin = sum(still_open(s) for s in stallers)
if open_plugin != len(stallers):
    sys.exit(f"only {open_plugin} of {len(stallers)} stalled plugin clients still connected")
open_ctl = sum(still_open(s) for s in ctl_idle)
if open_ctl < 40:
    sys.exit(f"only {open_ctl} of 80 idle control clients still connected")
if still_open(ctl_idle[0]):
    sys.exit("the longest idle control client was not closed to make room")
print(f"# ok: all {len(stallers)} stalled plugin clients still connected, {open_ctl} of 80 idle control clients")
for s in stallers + ctl_idle + ctl_deaf: s.close()
PY
vt_assert_status 0 "$VOLMGR" ls

vt_step "a chunked body without a length is bounded too"
head -c 200000 /dev/zero | tr '\0' ' ' >"$VT_TMP/big-chunked"
out=$(curl -sS --max-time 60 --unix-socket "$VT_PLUGIN_SOCK" -X POST -H 'Transfer-Encoding: chunked' \
	-w ' %{http_code}' http://plugin/VolumeDriver.List --data-binary @"$VT_TMP/big-chunked" || true)
[[ $out == *" 4"[0-9][0-9] || $out == *" 500" ]] || vt_fail "a 200 kB chunked body: $out"
[[ $out != *" 200" ]] || vt_fail "a 200 kB chunked body was accepted"
vt_log "ok: a 200 kB chunked body refused: ${out: -3}"
vt_assert_status 0 "$VOLMGR" ls

vt_step "an exceeded quota: a copy larger than the volume's quota"
mkdir -p "$VT_TMP/q"
head -c $((8 << 20)) /dev/urandom >"$VT_TMP/q/data"
assert_refused 8 "Disk quota exceeded" "$VOLMGR" snapshot "$VT_TMP/q" qvol --quota 1M
vt_assert_status 4 "$VOLMGR" inspect qvol
vt_check_pool_consistent
"$VOLMGR" snapshot "$VT_TMP/q" qvol2 --quota 32M >/dev/null
vt_log "ok: the same copy with room in its quota works"
"$VOLMGR" rm qvol2 >/dev/null

vt_step "ENOSPC in the middle of a copy: a tree larger than the pool"
mkdir -p "$VT_TMP/huge"
for i in 1 2; do head -c $((100 << 20)) /dev/zero >"$VT_TMP/huge/part-$i"; done
# btrfs gives the space of a deleted subvolume back once its cleaner has
# run: wait for it (subvolume sync) after each refused copy.
assert_refused 8 "No space left on device" "$VOLMGR" cache import huge "$VT_TMP/huge"
btrfs subvolume sync "$pool" >/dev/null
assert_refused 8 "No space left on device" "$VOLMGR" snapshot "$VT_TMP/huge" hugevol
btrfs subvolume sync "$pool" >/dev/null
vt_check_pool_consistent
rm -rf "$VT_TMP/huge"

vt_step "a full pool: a volume's writes fill it"
"$VOLMGR" create filler >/dev/null
dd if=/dev/zero of="$pool/volumes/filler/big" bs=1M 2>/dev/null && vt_fail "a 160M pool took more than 160M"
# What is left in metadata: small files (inline), until that is full too.
python3 - "$pool/volumes/filler" <<'PY'
import errno, sys
i = 0
try:
    while True:
        with open(f"{sys.argv[1]}/small-{i}", "w") as f: f.write("x" * 1500)
        i += 1
except OSError as e:
    if e.errno != errno.ENOSPC: raise
print(f"# the pool is full after {i} small files")
PY
sync

vt_step "on the full pool: create, snapshot, import and copy are refused clearly, nothing half-made"
# The messages name what was asked for (not volmgrd's staging names).
assert_refused 8 "cannot create volume full-1: No space left on device" "$VOLMGR" create full-1
assert_refused 8 "cannot snapshot cache:proj into volume full-2: No space left on device" \
	"$VOLMGR" snapshot cache:proj full-2
assert_refused 8 "cannot snapshot volume:filler into volume full-3: No space left on device" \
	"$VOLMGR" snapshot volume:filler full-3
assert_refused 8 "cannot create cache full-4: No space left on device" \
	"$VOLMGR" cache import full-4 "$VT_TMP/src"
assert_refused 8 "cannot create volume full-5: No space left on device" \
	"$VOLMGR" snapshot "$VT_TMP/src" full-5
before=$(state)
out=$(plugin_create full-6 '{"source":"cache:proj"}')
[[ $out == *" 500" && $out == *"into volume full-6: No space left on device"* ]] ||
	vt_fail "plugin Create on a full pool: $out"
[[ $(state) == "$before" ]] || vt_fail "plugin Create on a full pool changed it"
vt_log "ok: plugin Create -> $out"
for n in full-1 full-2 full-3 full-4 full-5 full-6; do
	[[ ! -e $pool/volumes/$n && ! -e $pool/caches/$n &&
		! -e $pool/.volmgr/volumes/$n.json && ! -e $pool/.volmgr/caches/$n.json ]] ||
		vt_fail "$n left something in the pool"
done
vt_check_pool_consistent
vt_assert_status 0 "$VOLMGR" inspect filler

vt_step "space freed: volmgrd works again"
vt_assert_status 0 "$VOLMGR" rm filler
# The space comes back once btrfs's cleaner has dropped the subvolume.
btrfs subvolume sync "$pool" >/dev/null
vt_assert_status 0 "$VOLMGR" create full-1
vt_assert_status 0 "$VOLMGR" snapshot cache:proj full-2
vt_assert_status 0 "$VOLMGR" cache import full-4 "$VT_TMP/src"
vt_assert_eq hello "$(cat "$pool/volumes/full-2/README")" "README in a snapshot made after the pool was full"
vt_check_pool_consistent
kill -0 "$VT_DAEMON_PID" || vt_fail "volmgrd is gone"
