#!/usr/bin/env bash
# Uses of a volume that no mount table shows (issue 13, item 14): removal
# is refused, naming the process, while
#  - a process's working directory is in the volume after the mount that
#    led there was lazily unmounted (`umount -l`), also in a subvolume
#    nested in the volume;
#  - a process holds a detached mount of it (open_tree(OPEN_TREE_CLONE),
#    never attached anywhere);
#  - a process holds a file of it open (no mount at all);
#  - an overlay uses a directory of it as a layer (podman's `-v VOL:/d:O`
#    mounts one with the volume as its lower directory);
# and allowed once each is gone.  The same for a working directory on a
# pool that is not btrfs (plain-directory volumes, one device number).
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init holders
vt_require_root
vt_require_cmd python3 unshare btrfs jq

# refused NAME WHAT: rm is refused and says why, then the holder goes
# (its pid in $holder), then rm removes the volume.
refused() {
	local name=$1 what=$2 err
	err=$("$VOLMGR" rm "$name" 2>&1) && vt_fail "rm $name succeeded while $what"
	vt_assert_contains "$err" "in use" "rm $name refused while $what"
	vt_log "$err"
	kill "$holder"
	wait "$holder" 2>/dev/null || true
	"$VOLMGR" rm "$name" >/dev/null
	vt_assert_volume_gone "$name"
}
# hold NAME CMD...: run CMD in a private mount namespace in the
# background, wait until it wrote $VT_TMP/NAME.ready.
hold() {
	local name=$1
	shift
	unshare -m --propagation private "$@" &
	holder=$!
	vt_on_exit sh -c "kill $holder 2>/dev/null; wait $holder 2>/dev/null; true"
	vt_wait_until -p "$holder" "the holder of $name is ready" test -e "$VT_TMP/$name.ready"
}

pool=$(vt_make_pool btrfs)/pool
vt_start_daemon "$pool"

vt_step "a working directory in a lazily unmounted volume"
"$VOLMGR" create lazy >/dev/null
mkdir "$VT_TMP/lazy-mnt"
hold lazy sh -c "mount --bind '$pool/volumes/lazy' '$VT_TMP/lazy-mnt' && cd '$VT_TMP/lazy-mnt' &&
	umount -l '$VT_TMP/lazy-mnt' && touch '$VT_TMP/lazy.ready' && exec sleep 600"
vt_assert_eq 0 "$(vt_volmgr_field lazy .kernel_mounts)" "no mount left"
refused lazy "a process's cwd is in it"

vt_step "a working directory in a subvolume nested in a lazily unmounted volume"
"$VOLMGR" create nested >/dev/null
btrfs -q subvolume create "$pool/volumes/nested/inner" >/dev/null
btrfs -q subvolume create "$pool/volumes/nested/inner/deeper" >/dev/null
mkdir -p "$VT_TMP/nested-mnt"
hold nested sh -c "mount --bind '$pool/volumes/nested' '$VT_TMP/nested-mnt' &&
	cd '$VT_TMP/nested-mnt/inner/deeper' && umount -l '$VT_TMP/nested-mnt' &&
	touch '$VT_TMP/nested.ready' && exec sleep 600"
refused nested "a process's cwd is two subvolumes deep in it"

vt_step "a detached mount of the volume (open_tree, never attached)"
"$VOLMGR" create detached >/dev/null
hold detached python3 -c "
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
SYS_open_tree, OPEN_TREE_CLONE, AT_FDCWD = 428, 1, -100
fd = libc.syscall(SYS_open_tree, AT_FDCWD, b'$pool/volumes/detached', OPEN_TREE_CLONE)
assert fd >= 0, os.strerror(ctypes.get_errno())
open('$VT_TMP/detached.ready', 'w').close()
signal.pause()"
vt_assert_eq 0 "$(vt_volmgr_field detached .kernel_mounts)" "no mount table shows it"
refused detached "a process holds a detached mount of it"

vt_step "an open file of the volume, no mount at all"
"$VOLMGR" create openfile >/dev/null
echo data >"$pool/volumes/openfile/f"
hold openfile sh -c "exec 7<'$pool/volumes/openfile/f'; touch '$VT_TMP/openfile.ready'; exec sleep 600"
refused openfile "a process holds one of its files open"

vt_step "an overlay with a directory of the volume as its lower layer"
"$VOLMGR" create lower >/dev/null
mkdir -p "$pool/volumes/lower/data" "$VT_TMP/ovl/upper" "$VT_TMP/ovl/work" "$VT_TMP/ovl/merged"
hold lower sh -c "mount -t overlay overlay -o 'lowerdir=$pool/volumes/lower/data,upperdir=$VT_TMP/ovl/upper,workdir=$VT_TMP/ovl/work' '$VT_TMP/ovl/merged' &&
	touch '$VT_TMP/lower.ready' && exec sleep 600"
vt_assert_eq 1 "$(vt_volmgr_field lower .kernel_mounts)" "the overlay counts as a mount"
refused lower "an overlay uses it as a layer"

vt_step "an overlay of a fake volume on a tmpfs over the pool's path holds nothing"
# Anyone with a user namespace can mount a tmpfs over the pool's path in
# it and make an overlay whose layer path names a volume: the path string
# proves nothing, the mount under it is not the pool.
"$VOLMGR" create victim >/dev/null
pooldir=${pool%/pool}
chmod 0711 "$VT_TMP"
mkdir "$VT_TMP/nb"
chown 65534:65534 "$VT_TMP/nb"
hold nb/victim setpriv --reuid=65534 --regid=65534 --clear-groups unshare -Urm --propagation private sh -c "
	mount -t tmpfs vt '$pooldir' && mkdir -p '$pool/volumes/victim' '$pooldir/u' '$pooldir/w' '$pooldir/m' &&
	mount -t overlay overlay -o 'lowerdir=$pool/volumes/victim,upperdir=$pooldir/u,workdir=$pooldir/w' '$pooldir/m' &&
	touch '$VT_TMP/nb/victim.ready' && exec sleep 600"
vt_assert_eq 0 "$(vt_volmgr_field victim .kernel_mounts)" "the fake overlay is not a mount of victim"
"$VOLMGR" rm victim >/dev/null
vt_assert_volume_gone victim
kill "$holder"
wait "$holder" 2>/dev/null || true

vt_step "a pool that is not btrfs: a working directory deep in a lazily unmounted volume"
vt_stop_daemon
pool=$(vt_make_pool ext4)/pool
vt_start_daemon "$pool"
"$VOLMGR" create plain >/dev/null
mkdir -p "$pool/volumes/plain/a/b/c" "$VT_TMP/plain-mnt"
hold plain sh -c "mount --bind '$pool/volumes/plain/a' '$VT_TMP/plain-mnt' && cd '$VT_TMP/plain-mnt/b/c' &&
	umount -l '$VT_TMP/plain-mnt' && touch '$VT_TMP/plain.ready' && exec sleep 600"
refused plain "a process's cwd is in it"
