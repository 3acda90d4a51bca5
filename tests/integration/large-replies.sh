#!/usr/bin/env bash
# Replies longer than 32 KiB travel in a sealed memfd, so a long
# `volmgr ls --json` works without CAP_NET_ADMIN or a raised
# net.core.wmem_max; short replies stay inline.  Checked on the wire by a
# raw client: the fd's seals, its size against the header, the JSON.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init large-replies
vt_require_root
vt_require_cmd jq python3

pool=$(vt_make_pool btrfs)/pool
vt_start_daemon "$pool"
mkdir -p "$VT_TMP/src" && echo x >"$VT_TMP/src/f"
"$VOLMGR" cache import proj "$VT_TMP/src" >/dev/null

vt_step "50 volumes with 48 labels of 1 KiB each: a reply of about 2.5 MB"
value=$(head -c 1024 /dev/zero | tr '\0' v)
labels=()
for i in $(seq 48); do labels+=(--label "k$i=$value"); done
for i in $(seq 50); do
	"$VOLMGR" snapshot cache:proj "big-$i" "${labels[@]}" >/dev/null || vt_fail "snapshot big-$i"
done

out=$("$VOLMGR" ls --json) || vt_fail "volmgr ls --json failed"
bytes=${#out}
((bytes > 2000000)) || vt_fail "the reply is only $bytes bytes: not a large reply"
vt_assert_eq 50 "$(jq 'length' <<<"$out")" "volumes in a $bytes-byte reply"
[[ $(jq -r '.[0].labels.k48' <<<"$out") == "$value" ]] || vt_fail "a 1 KiB label did not survive the trip"

vt_step "on the wire: a sealed memfd for the long reply, inline for a short one"
python3 - "$VT_CONTROL_SOCK" <<'PY' || vt_fail "wire check"
import fcntl, json, os, socket, stat, sys
F_GET_SEALS = 1034
SEAL_SHRINK, SEAL_GROW, SEAL_WRITE = 0x2, 0x4, 0x8

def call(op):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(sys.argv[1])
    s.send(json.dumps({"op": op, "args": {}}).encode())
    msg, fds, flags, _ = socket.recv_fds(s, 65536, 4)
    s.close()
    return msg, fds

msg, fds = call("volume.list")
head = json.loads(msg)
assert len(fds) == 1, f"expected one fd with the long reply, got {fds}"
assert set(head) == {"reply_fd"}, head
fd = fds[0]
seals = fcntl.fcntl(fd, F_GET_SEALS)
want = SEAL_SHRINK | SEAL_GROW | SEAL_WRITE
assert seals & want == want, f"seals {seals:#x} lack {want:#x}"
st = os.fstat(fd)
assert stat.S_ISREG(st.st_mode) and st.st_size == head["reply_fd"], (st.st_size, head)
try:
    os.pwrite(fd, b"x", 0)
    raise AssertionError("the reply memfd is writable")
except PermissionError:
    pass
reply = json.loads(os.pread(fd, st.st_size, 0))
assert reply["ok"] and len(reply["result"]) == 50, "bad reply in the memfd"
os.close(fd)
print(f"# ok: {st.st_size} bytes in a memfd sealed {seals:#x}")

msg, fds = call("volume.inspect_nope")
assert not fds and json.loads(msg)["ok"] is False, "a short reply must be inline"
print("# ok: a short reply is inline, without an fd")
PY
vt_log "ok: long replies through a sealed memfd"
