#!/usr/bin/env bash
# volmgrd in a mount namespace of its own, as systemd/volmgrd.service gives
# it (ProtectSystem=, PrivateTmp=, ProtectHome=, PrivateDevices=, ... each
# make one: a slave of the host's), with /proc mounted as ProtectProc=
# invisible and ProcSubset=pid mount it, and the unit's capabilities and
# filters (sandbox-run.py).  Checks what that namespace could break:
#   - the in-use scan still sees mounts in the host's namespace and in
#     private ones, including one whose only process is another user's,
#     and a volume unmounted on the host is no longer in use (the slave
#     copy goes with it);
#   - a caller in the host's mount namespace is not taken for a container:
#     no creator cgroup is recorded, so gc does not remove its volume when
#     the caller's cgroup (a login session, a cron job) goes away.
# The last two fail while volmgr/lib/host/caller.c compares the caller's mount
# namespace with volmgrd's own (/proc/self/ns/mnt) instead of the host's
# (PID 1's, or where PID 1's cannot be read, that of the process that
# started volmgrd): see SECURITY.md, "What the unit needs from volmgrd".
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init mount-namespace
vt_require_root
vt_require_cmd python3 systemd-analyze jq btrfs unshare setpriv
python3 -c 'import ctypes; ctypes.CDLL("libseccomp.so.2")' 2>/dev/null ||
	vt_skip "needs libseccomp.so.2 (Debian package libseccomp2)"
# The test plays the host: it must be in PID 1's mount namespace (where
# PID 1's can be read at all: not for this test's root on every VM).
pid1_ns=$(readlink /proc/1/ns/mnt 2>/dev/null) || pid1_ns=
[[ -z $pid1_ns || $pid1_ns == "$(readlink /proc/self/ns/mnt)" ]] ||
	vt_skip "this test must run in PID 1's mount namespace (the host's)"

launcher=$VT_SRCDIR/security/sandbox-run.py
real_volmgrd=$VOLMGRD
unit=$VT_TMP/volmgrd.service
sed -e "s|/usr/sbin/volmgrd|$real_volmgrd|" "$VT_SRCDIR/../systemd/volmgrd.service" >"$unit"
cat >"$VT_TMP/volmgrd-ns" <<EOF
#!/bin/sh
# The unit's namespace: a slave of the host's, /proc as ProtectProc= and
# ProcSubset= mount it; then its capabilities and filters.
exec unshare --mount --propagation slave sh -c '
	mount -t proc -o hidepid=invisible,subset=pid proc /proc &&
	exec python3 "\$0" "\$@"' '$launcher' '$unit' -- '$real_volmgrd' "\$@"
EOF
chmod 0755 "$VT_TMP/volmgrd-ns"
VOLMGRD=$VT_TMP/volmgrd-ns

pool=$(vt_make_pool btrfs)/pool
vt_start_daemon "$pool"
[[ $(readlink "/proc/$VT_DAEMON_PID/ns/mnt") != "$(readlink /proc/self/ns/mnt)" ]] ||
	vt_fail "volmgrd is not in a mount namespace of its own"
vt_log "ok: volmgrd runs in its own mount namespace"
"$VOLMGR" create v1 >/dev/null

vt_step "in use: a bind mount on the host, and its removal"
mkdir "$VT_TMP/host-mnt"
mount --bind "$pool/volumes/v1" "$VT_TMP/host-mnt"
vt_on_exit vt__umount "$VT_TMP/host-mnt"
vt_assert_in_use v1 true
vt__umount "$VT_TMP/host-mnt"
# Any process on the machine that made a mount namespace while the bind
# mount was there (an unshare -m of another test, a container being set
# up) has a private copy of it, which holds the volume -- rightly in use
# -- until that process ends (1 of 30 runs next to other tests).  Wait
# for such copies to go; volmgrd's own copy, a slave, must have gone with
# the umount, and is what the check after this is about.
daemon_ns=$(readlink "/proc/$VT_DAEMON_PID/ns/mnt") copy_holder=
no_foreign_copy() {
	local f ns
	for f in $(grep -lF " $VT_TMP/host-mnt " /proc/[0-9]*/mountinfo 2>/dev/null); do
		ns=$(readlink "${f%/mountinfo}/ns/mnt" 2>/dev/null) || continue
		[[ $ns == "$daemon_ns" ]] && continue
		if [[ $copy_holder != "$f" ]]; then
			copy_holder=$f
			vt_log "a copy in another process's mount namespace: ${f%/mountinfo} ($(cat "${f%/mountinfo}/comm" 2>/dev/null))"
		fi
		return 1
	done
}
vt_wait_until "no other mount namespace holds a copy of the bind mount" no_foreign_copy
vt_assert_in_use v1 false

vt_step "in use: a private namespace whose only process is another user's"
mkdir "$VT_TMP/held"
unshare -m --propagation private sh -c \
	"mount --bind '$pool/volumes/v1' '$VT_TMP/held' && touch '$VT_TMP/held.ready' &&
	 exec setpriv --reuid=nobody --regid=\$(id -g nobody) --clear-groups sleep 300" &
holder=$!
vt_on_exit sh -c "kill $holder 2>/dev/null; wait $holder 2>/dev/null; true"
# Ready once its mount is made and it runs as nobody (setpriv's exec).
holder_is_nobody() { [[ -e $VT_TMP/held.ready && $(stat -c %u "/proc/$holder") == 65534 ]]; }
vt_wait_until -p "$holder" "the holder's bind mount, held by nobody" holder_is_nobody
vt_assert_in_use v1 true
kill "$holder"
wait "$holder" 2>/dev/null || true
vt_assert_in_use v1 false

vt_step "a caller in the host's mount namespace is not a container"
# A short-lived cgroup of the host (a login session's scope, a cron job):
# the caller runs in it, then it goes away.
cg=/sys/fs/cgroup/pids/vt-$VT_ID
[[ -d /sys/fs/cgroup/pids ]] || cg=/sys/fs/cgroup/vt-$VT_ID
mkdir "$cg"
vt_on_exit sh -c "rmdir '$cg' 2>/dev/null; true"
sh -c "echo \$\$ > '$cg/cgroup.procs' && exec '$VOLMGR' create from-host" >/dev/null
vt_assert_eq null "$(vt_volmgr_field from-host .creator.cgroup)" "creator cgroup of a host caller"
rmdir "$cg"
vt_assert_eq "" "$("$VOLMGR" gc --dry-run --json | jq -r '.removed[].name')" \
	"gc would remove nothing (the host caller's cgroup went, not a container)"
