#!/usr/bin/env bash
# How volmgrd picks a backend: by probing the pool (auto: btrfs, then
# reflink, then copy) or as forced by --backend / [pool] backend.  A
# forced backend the pool cannot do, or a configuration the backend cannot
# honour ([quota] default off btrfs, [copy] io = io_uring where io_uring
# is unusable), stops volmgrd at start-up with exit status 11, a message
# naming the pool's file system and why, and no socket left behind.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init backend-choice
vt_require_root
vt_require_cmd jq btrfs mkfs.xfs mkfs.ext4

declare -A dirs
for fs in btrfs xfs ext4 tmpfs; do
	dirs[$fs]=$(vt_make_pool "$fs" 512M)
done
: >"$VT_TMP/empty.conf"

# refused FS EXPECTED_STATUS MESSAGE... [-- VOLMGRD ARGS] — volmgrd on a
# pool on FS exits with EXPECTED_STATUS and says each MESSAGE.
n=0
refused() {
	local fs=$1 want=$2 out status=0 msg
	shift 2
	local -a msgs=()
	while (($# > 0)) && [[ $1 != -- ]]; do
		msgs+=("$1")
		shift
	done
	shift
	n=$((n + 1))
	out=$("$VOLMGRD" --pool "${dirs[$fs]}/pool" --plugin-socket "$VT_TMP/p$n.sock" \
		--control-socket "$VT_TMP/c$n.sock" "$@" 2>&1) || status=$?
	vt_assert_eq "$want" "$status" "[$fs $*] exit status"
	for msg in "${msgs[@]}"; do
		vt_assert_contains "$out" "$msg" "[$fs $*] message"
	done
	[[ ! -e $VT_TMP/p$n.sock && ! -e $VT_TMP/c$n.sock ]] || vt_fail "[$fs $*] a socket was created"
}

# served FS BACKEND CHOSEN [VOLMGRD ARGS] — volmgrd on a pool on FS uses
# BACKEND, chosen so (probed/forced), and makes a working volume.
served() {
	local fs=$1 want=$2 chosen=$3 st
	shift 3
	VT_DAEMON_EXTRA="$*" vt_start_daemon "${dirs[$fs]}/pool"
	st=$("$VOLMGR" status --json)
	vt_assert_eq "$want/$chosen" "$(jq -r '.backend + "/" + .backend_chosen' <<<"$st")" "[$fs $*] backend"
	vt_assert_eq "$fs" "$(jq -r .fstype <<<"$st")" "[$fs $*] fstype"
	mkdir -p "$VT_TMP/src-$fs" && echo "on $fs" >"$VT_TMP/src-$fs/f"
	"$VOLMGR" cache import cc "$VT_TMP/src-$fs" >/dev/null
	"$VOLMGR" snapshot cache:cc vv >/dev/null
	vt_assert_eq "on $fs" "$(cat "${dirs[$fs]}/pool/volumes/vv/f")" "[$fs $*] a volume works"
	vt_assert_eq "$want" "$(vt_volmgr_field vv .backend)" "[$fs $*] inspect: backend"
}

cleanup_pool() {
	"$VOLMGR" rm vv >/dev/null
	"$VOLMGR" cache rm cc >/dev/null
	vt_stop_daemon
}

vt_step "auto on each file system picks the best backend that works"
served btrfs btrfs probed
btrfs subvolume show "${dirs[btrfs]}/pool/volumes/vv" >/dev/null 2>&1 || vt_fail "a btrfs volume is no subvolume"
cleanup_pool
served xfs reflink probed
cleanup_pool
served ext4 copy probed
cleanup_pool
served tmpfs copy probed --backend auto
cleanup_pool

vt_step "forced: btrfs on ext4, reflink on ext4 and tmpfs are refused"
refused ext4 11 "on ${dirs[ext4]} (ext4)" "backend btrfs is impossible here" \
	"no btrfs subvolume can be made" -- --backend btrfs --config "$VT_TMP/empty.conf"
refused ext4 11 "backend reflink is impossible here" "FICLONE does not work" \
	-- --backend reflink --config "$VT_TMP/empty.conf"
refused tmpfs 11 "(tmpfs)" "backend reflink is impossible here" \
	-- --backend reflink --config "$VT_TMP/empty.conf"
refused xfs 11 "(xfs)" "backend btrfs is impossible here" \
	-- --backend btrfs --config "$VT_TMP/empty.conf"
printf '[pool]\nbackend = btrfs\n' >"$VT_TMP/btrfs.conf"
refused ext4 11 "backend btrfs is impossible here" -- --config "$VT_TMP/btrfs.conf"
refused ext4 2 "--backend must be auto, btrfs, reflink or copy" -- --backend zfs
printf '[pool]\nbackend = zfs\n' >"$VT_TMP/bad.conf"
refused ext4 7 "[pool] backend must be auto, btrfs, reflink or copy" -- --config "$VT_TMP/bad.conf"

vt_step "quotas are btrfs qgroups: a default quota off btrfs stops volmgrd"
printf '[quota]\ndefault = 1G\n' >"$VT_TMP/quota.conf"
refused ext4 11 "[quota] default needs the btrfs backend" "uses copy" -- --config "$VT_TMP/quota.conf"
refused btrfs 11 "[quota] default needs the btrfs backend" -- --config "$VT_TMP/quota.conf" --backend copy

vt_step "forced copy on btrfs and on XFS works: plain directories, no quota"
served btrfs copy forced --backend copy
btrfs subvolume show "${dirs[btrfs]}/pool/volumes/vv" >/dev/null 2>&1 && vt_fail "a copy-backend volume is a subvolume"
msg=$("$VOLMGR" snapshot cache:cc vq --quota 10M 2>&1) && vt_fail "a quota on the copy backend was accepted"
vt_assert_contains "$msg" "quotas are btrfs qgroups, and this pool's backend is copy" "quota error"
vt_assert_status 9 "$VOLMGR" create vq2 --quota 10M
vt_assert_contains "$("$VOLMGR" status)" "quotas:   no" "status"
cleanup_pool
# The pool that held btrfs volumes earlier: a subvolume left from then is
# still removed properly.
served xfs copy forced --backend copy
cleanup_pool
printf '[pool]\nbackend = copy\n' >"$VT_TMP/copy.conf"
VT_CONFIG_FILE=$VT_TMP/copy.conf served btrfs copy forced
cleanup_pool
unset VT_CONFIG_FILE

vt_step "copy io: forced syscalls; io_uring where it works, else a clear refusal"
printf '[copy]\nio = syscalls\n' >"$VT_TMP/sys.conf"
VT_CONFIG_FILE=$VT_TMP/sys.conf served ext4 copy probed
vt_assert_eq syscalls "$("$VOLMGR" status --json | jq -r .copy_io)" "copy io"
vt_assert_contains "$("$VOLMGR" status --json | jq -r .copy_io_reason)" "forced" "copy io reason"
cleanup_pool
unset VT_CONFIG_FILE
printf '[copy]\nio = io_uring\n' >"$VT_TMP/uring.conf"
"$VOLMGRD" --pool "${dirs[ext4]}/pool" --plugin-socket "$VT_TMP/pu.sock" \
	--control-socket "$VT_TMP/cu.sock" --config "$VT_TMP/uring.conf" >"$VT_TMP/uring.log" 2>&1 &
upid=$!
stop_uring() { kill -TERM "$upid" 2>/dev/null; wait "$upid" 2>/dev/null; rm -f "$VT_TMP/pu.sock" "$VT_TMP/cu.sock"; return 0; }
vt_on_exit stop_uring
# Until it answers, or has exited (where io_uring does not work).
uring_decided() {
	"$VOLMGR" --socket "$VT_TMP/cu.sock" status >/dev/null 2>&1 || ! kill -0 "$upid" 2>/dev/null
}
vt_wait_until "volmgrd with io = io_uring answers or exits" uring_decided
if kill -0 "$upid" 2>/dev/null; then
	vt_assert_eq io_uring "$("$VOLMGR" --socket "$VT_TMP/cu.sock" status --json | jq -r .copy_io)" \
		"forced io_uring, where it works"
	stop_uring
else
	status=0
	wait "$upid" || status=$?
	vt_assert_eq 11 "$status" "forced io_uring where it does not work"
	vt_assert_contains "$(cat "$VT_TMP/uring.log")" "[copy] io = io_uring, but io_uring cannot be used here" "message"
fi

vt_step "removal off btrfs: a tree far deeper than removal recurses (3,000 levels) goes away whole"
served ext4 copy probed
pool=${dirs[ext4]}/pool
# One process makes the chain (a fork per level is slow on a loaded
# machine); each level is made relative to the last, so no path is long.
python3 -c 'import os, sys
os.chdir(sys.argv[1])
for _ in range(3000):
    os.mkdir("d"); os.chdir("d")
open("f", "w").write("bottom\n")' "$pool/volumes/vv"
"$VOLMGR" rm vv >/dev/null || vt_fail "cannot remove a 3,000-level volume"
[[ ! -e $pool/volumes/vv ]] || vt_fail "the deep volume is still there"
vt_assert_eq 0 "$(find "$pool/staging" -mindepth 1 -maxdepth 1 | wc -l)" "nothing left in staging"
"$VOLMGR" cache rm cc >/dev/null
vt_stop_daemon
