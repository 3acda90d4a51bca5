#!/usr/bin/env bash
# volmgr pool init / status: a sparse image on a loop device, formatted
# (label volmgr-pool) and mounted at the pool directory through libmount;
# a systemd mount unit on request; idempotent; refuses to hide files.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init pool-init
vt_require_root
vt_require_cmd jq blkid systemd-analyze
[[ -e /dev/loop-control ]] || vt_skip "no loop devices"

pool=$VT_TMP/pool
vt_step "init: image, loop device, mkfs.btrfs, mount"
# Registered first so that it runs last: the mount holds the loop device,
# which detaches itself (autoclear) once unmounted.
vt_on_exit vt__umount "$pool"
out=$("$VOLMGR" pool init --pool "$pool" --size 1G --at-boot --unit-dir "$VT_TMP")
vt_log "$out"
vt_assert_contains "$out" "pool $pool: btrfs on /dev/loop" "output"
mountpoint -q "$pool" || vt_fail "$pool is not mounted"
vt_assert_eq btrfs "$(findmnt -no FSTYPE "$pool")" "file system"
dev=$(findmnt -no SOURCE "$pool")
vt_assert_eq volmgr-pool "$(blkid -o value -s LABEL "$dev")" "label"
vt_assert_eq 1073741824 "$(stat -c %s "$pool.img")" "image size"
(( $(stat -c %b "$pool.img") * 512 < 200 * 1024 * 1024 )) || vt_fail "the image is not sparse"
vt_assert_eq 600 "$(stat -c %a "$pool.img")" "image mode"

vt_step "status"
st=$("$VOLMGR" pool status --pool "$pool" --json)
vt_assert_eq btrfs "$(jq -r .backend <<<"$st")" "backend"
vt_assert_eq "$pool.img" "$(jq -r .image <<<"$st")" "image"
vt_assert_eq "$dev" "$(jq -r .device <<<"$st")" "device"
vt_assert_eq off "$(jq -r .quota <<<"$st")" "quota before the daemon"
vt_assert_contains "$("$VOLMGR" pool status --pool "$pool")" "backend:     btrfs" "human output"
vt_assert_eq ext4 "$("$VOLMGR" pool status --pool "$VT_TMP" --json | jq -r .fstype)" "status of a non-pool"

vt_step "the mount unit for boot"
unit=$VT_TMP/$(systemd-escape --path "$pool").mount
[[ -f $unit ]] || vt_fail "no unit $unit"
grep -qx "What=$pool.img" "$unit" && grep -qx "Where=$pool" "$unit" && grep -qx "Type=btrfs" "$unit" ||
	vt_fail "unit content: $(cat "$unit")"
out=$(cd "$VT_TMP" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$unit" 2>&1) ||
	vt_fail "systemd-analyze verify: $out"
vt_log "ok: systemd-analyze verify $unit"

vt_step "volmgrd runs on the new pool (and turns quotas on)"
vt_start_daemon "$pool/data"
"$VOLMGR" create on-new-pool >/dev/null
vt_assert_eq on "$("$VOLMGR" pool status --pool "$pool" --json | jq -r .quota)" "quota"
"$VOLMGR" rm on-new-pool >/dev/null
vt__stop_daemon

vt_step "again: nothing to do; refusals"
vt_assert_contains "$("$VOLMGR" pool init --pool "$pool")" "already on btrfs" "second init"
mkdir -p "$VT_TMP/full" && touch "$VT_TMP/full/precious"
status=0; msg=$("$VOLMGR" pool init --pool "$VT_TMP/full" --size 1G 2>&1) || status=$?
[[ $status != 0 ]] || vt_fail "init over a non-empty directory succeeded"
vt_assert_contains "$msg" "is not empty" "message"
: >"$VT_TMP/taken.img"
status=0; msg=$("$VOLMGR" pool init --pool "$VT_TMP/p2" --image "$VT_TMP/taken.img" --size 1G 2>&1) || status=$?
vt_assert_eq 5 "$status" "an existing image is not overwritten"
vt_assert_status 7 "$VOLMGR" pool init --pool "$VT_TMP/p3" --size 10M
vt_assert_status 7 "$VOLMGR" pool init --pool relative/dir
