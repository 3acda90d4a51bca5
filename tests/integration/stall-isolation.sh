#!/usr/bin/env bash
# One slow request never holds up the others (issue 13, items 12 and 13):
#  - a caller passes a directory on a FUSE file system that never answers:
#    the requests that look at it (which, snapshot PATH) wait for as long
#    as the file system does, and everything else -- ls, create, inspect,
#    rm, the plugin's Get and Mount -- goes on;
#  - an inspect held inside its scan of the machine's mounts (a fault
#    pause): the plugin's Mount, Unmount, Get, Create and other control
#    requests go on;
#  - a user namespace with ~100,000 mounts (an unprivileged user's, made
#    with `unshare -Urm`): `ls` still tells mounted from unmounted, and the
#    engines' Mounts answer well within podman's 5 s while clients scan
#    the machine in a loop.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init stall-isolation
vt_require_root
vt_require_cmd python3 timeout unshare setpriv curl jq

pool=$(vt_make_pool btrfs)/pool
vt_start_daemon "$pool"
tools=$VT_SRCDIR/tools
plugin() { # ENDPOINT BODY: the reply and its status, within 60 s
	curl -sS -m 60 --unix-socket "$VT_PLUGIN_SOCK" -X POST -w ' %{http_code}' \
		"http://plugin/VolumeDriver.$1" -d "$2"
}
# within SECONDS CMD...: CMD must finish in time (it would wait forever
# behind a held lock; the bound is for a loaded machine, not a measure).
within() {
	local s=$1
	shift
	timeout -k 5 "$s" "$@" || vt_fail "'$*' did not finish within $s s (exit $?)"
}
"$VOLMGR" create base >/dev/null

vt_step "a FUSE file system that never answers"
fuse=$VT_TMP/fuse
mkdir "$fuse"
python3 "$tools/fuse-stall.py" "$fuse" "$VT_TMP/fuse.ready" &
fuse_pid=$!
# Killing the server aborts the connection (waiting requests fail with
# ENOTCONN); then the mount point can go.
vt_on_exit sh -c "kill -KILL $fuse_pid 2>/dev/null; wait $fuse_pid 2>/dev/null; umount '$fuse' 2>/dev/null || umount -l '$fuse' 2>/dev/null; true"
vt_wait_until -p "$fuse_pid" "the FUSE server is ready" test -s "$VT_TMP/fuse.ready"
# (Read from the mount table: a stat of the mount point would wait forever.)
[[ -n $(awk -v p="$fuse" '$5 == p' /proc/self/mountinfo) ]] || vt_fail "$fuse is not mounted"

# Two callers pass the FUSE directory (opened O_PATH: no request to the
# file system yet) and ask which volume it is on and for a copy of it.
cat >"$VT_TMP/stalled.py" <<EOF
import os, sys
sys.path.insert(0, "$VT_SRCDIR/lib")
import vtsock
fd = os.open("$fuse", os.O_PATH | os.O_DIRECTORY)
s = vtsock.control_connect("$VT_CONTROL_SOCK", timeout=600)
req = {"op": "volume.which"} if sys.argv[1] == "which" else \
      {"op": "volume.create", "args": {"name": "from-fuse", "path": "$fuse"}}
print(vtsock.control_exchange(s, req, fd))
EOF
python3 "$VT_TMP/stalled.py" which >"$VT_TMP/which.out" 2>&1 &
which_pid=$!
python3 "$VT_TMP/stalled.py" snapshot >"$VT_TMP/snapshot.out" 2>&1 &
snap_pid=$!
vt_on_exit sh -c "kill $which_pid $snap_pid 2>/dev/null; true"
# Wait until volmgrd's threads really wait on the file system: both
# requests (the two clients start in any order, as fast as python does
# on a loaded machine), so that everything below happens while both wait.
stuck() { grep -lE "fuse|request_wait_answer" /proc/"$VT_DAEMON_PID"/task/*/stack /proc/"$VT_DAEMON_PID"/task/*/wchan 2>/dev/null | sed "s,/[a-z]*$,," | sort -u | wc -l; }
both_stuck() { (($(stuck) >= 2)); }
vt_wait_until "both requests of volmgrd wait on the FUSE file system" both_stuck
vt_log "ok: $(stuck) volmgrd threads wait on the FUSE file system"

within 60 "$VOLMGR" ls >/dev/null
within 60 "$VOLMGR" create during-fuse >/dev/null
within 60 "$VOLMGR" inspect during-fuse >/dev/null
vt_assert_eq '{"Err":""} 200' "$(plugin Create '{"Name":"plug-during-fuse"}')" "plugin Create"
vt_assert_contains "$(plugin Get '{"Name":"during-fuse"}')" " 200" "plugin Get"
vt_assert_contains "$(plugin Mount '{"Name":"during-fuse","ID":"m1"}')" " 200" "plugin Mount"
vt_assert_contains "$(plugin Unmount '{"Name":"during-fuse","ID":"m1"}')" " 200" "plugin Unmount"
# rm also looks at every process's open files -- the stalled callers
# hold one on the FUSE mount -- and must not ask the file system.
within 60 "$VOLMGR" rm during-fuse plug-during-fuse >/dev/null
vt_log "ok: everything else went on while two requests waited on FUSE"
(($(stuck) >= 2)) || vt_fail "the second request waits on something else than the file system"
kill -0 "$which_pid" 2>/dev/null || vt_fail "the which request finished: $(cat "$VT_TMP/which.out")"

kill -KILL "$fuse_pid"
wait "$which_pid" "$snap_pid" 2>/dev/null || true
vt_assert_contains "$(cat "$VT_TMP/which.out")" "'ok': False" "which fails once the file system is gone"
umount "$fuse" 2>/dev/null || umount -l "$fuse"
within 60 "$VOLMGR" ls >/dev/null
vt_assert_status 4 "$VOLMGR" inspect from-fuse

vt_step "an inspect held in its scan of the mounts holds up nobody"
VOLMGR_FAULT_PAUSE=inspect.scan:$VT_TMP vt_restart_daemon
"$VOLMGR" inspect base >"$VT_TMP/inspect.out" &
inspect_pid=$!
vt_wait_until -p "$inspect_pid" "the inspect reached its scan" test -e "$VT_TMP/inspect.scan.paused"
vt_assert_eq '{"Err":""} 200' "$(plugin Create '{"Name":"during-scan"}')" "plugin Create"
vt_assert_contains "$(plugin Mount '{"Name":"during-scan","ID":"m1"}')" " 200" "plugin Mount"
vt_assert_contains "$(plugin Get '{"Name":"during-scan"}')" " 200" "plugin Get"
vt_assert_contains "$(plugin Unmount '{"Name":"during-scan","ID":"m1"}')" " 200" "plugin Unmount"
within 60 "$VOLMGR" create during-scan-2 >/dev/null
within 60 "$VOLMGR" ls >/dev/null
kill -0 "$inspect_pid" 2>/dev/null || vt_fail "the held inspect finished early"
touch "$VT_TMP/inspect.scan.resume"
wait "$inspect_pid" || vt_fail "the held inspect failed"
vt_assert_eq base "$(jq -r .name "$VT_TMP/inspect.out")" "the held inspect's answer"
"$VOLMGR" rm during-scan during-scan-2 >/dev/null

vt_step "a user namespace with ~100,000 mounts"
vt_restart_daemon
"$VOLMGR" create held >/dev/null
mkdir "$VT_TMP/held-mnt"
unshare -m --propagation private sh -c \
	"mount --bind '$pool/volumes/held' '$VT_TMP/held-mnt' && touch '$VT_TMP/held.ready' && exec sleep 600" &
holder=$!
vt_on_exit sh -c "kill $holder 2>/dev/null; wait $holder 2>/dev/null; true"
chmod 0711 "$VT_TMP"
mkdir "$VT_TMP/flood"
chown 65534:65534 "$VT_TMP/flood"
setpriv --reuid=65534 --regid=65534 --clear-groups unshare -Urm --propagation private \
	python3 "$tools/mount-flood.py" "$VT_TMP/flood/m" 99000 "$VT_TMP/flood/ready" &
flood=$!
vt_on_exit sh -c "kill $flood 2>/dev/null; wait $flood 2>/dev/null; true"
vt_wait_until -p "$holder" "the holder's bind mount" test -e "$VT_TMP/held.ready"
vt_wait_until -t 600 -p "$flood" "the mount flood" test -s "$VT_TMP/flood/ready"
n=$(cat "$VT_TMP/flood/ready")
((n >= 90000)) || vt_fail "only $n mounts in the flood's namespace"
vt_log "ok: $n mounts in an unprivileged user's namespace"
vt_assert_in_use held true
vt_assert_in_use base false

# Clients scan the machine in a loop (ls reads every namespace's mounts)
# while an engine mounts and unmounts: each Mount must answer well within
# podman's 5 s, whatever the scans cost.
for i in 1 2 3 4; do
	(while [[ ! -e $VT_TMP/stop-scans ]]; do "$VOLMGR" ls >/dev/null; : >"$VT_TMP/scanned-$i"; done) &
	vt_on_exit sh -c "touch '$VT_TMP/stop-scans'; kill $! 2>/dev/null; wait $! 2>/dev/null; true"
done
# The Mounts below come while the scans run: each loop has done one.
for i in 1 2 3 4; do vt_wait_until "scan loop $i under way" test -e "$VT_TMP/scanned-$i"; done
out=$(python3 - "$VT_PLUGIN_SOCK" <<'EOF'
import json, socket, sys, time
worst = 0.0
for i in range(20):
    for op in ("Mount", "Unmount"):
        body = json.dumps({"Name": "base", "ID": f"lat-{i}"}).encode()
        s = socket.socket(socket.AF_UNIX); s.settimeout(60); s.connect(sys.argv[1])
        t0 = time.monotonic()
        s.sendall(b"POST /VolumeDriver.%s HTTP/1.1\r\nHost: p\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                  % (op.encode(), len(body)) + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        worst = max(worst, time.monotonic() - t0)
        assert b" 200 " in data.split(b"\r\n", 1)[0], data[:200]
    time.sleep(0.2)
print(f"{worst:.3f}")
EOF
)
touch "$VT_TMP/stop-scans"
vt_log "slowest Mount/Unmount during the scans: $out s"
awk -v w="$out" 'BEGIN { exit !(w < 5) }' || vt_fail "a Mount took $out s while others scanned (podman gives up after 5 s)"
vt_assert_in_use base false
kill "$holder" "$flood"
wait "$holder" "$flood" 2>/dev/null || true
"$VOLMGR" rm held base >/dev/null
