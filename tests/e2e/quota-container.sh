#!/usr/bin/env bash
# Quotas: a job writing past its volume's quota from inside a container
# gets EDQUOT, other volumes are untouched; the pool default applies;
# inspect shows the bytes used; with accounting off a quota is refused.
# (Subvolumes a job makes inside its volume: tests/integration/quota-nested.)
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/common.sh"
. "$here/../lib/engines.sh"

vt_init quota-container
vt_require_root
vt_require_cmd jq btrfs

pool=$(vt_make_pool btrfs 2G)
printf '[quota]\naccounting = yes\ndefault = 200M\n' >"$VT_TMP/volmgr.conf"
VT_DAEMON_CONFIG=$VT_TMP/volmgr.conf vt_start_daemon "$pool"
vt_docker_ensure
img=$(vt_docker_image)
mkdir -p "$VT_TMP/src" && head -c 8388608 /dev/urandom >"$VT_TMP/src/shared-8M"
"$VOLMGR" cache import proj "$VT_TMP/src" >/dev/null

vt_step "volumes with a 32M quota and with the pool default (200M)"
docker volume create -d "$VT_DRIVER" -o source=cache:proj -o quota=32M q1 >/dev/null
vt_track_volume docker q1
docker volume create -d "$VT_DRIVER" -o source=cache:proj q2 >/dev/null
vt_track_volume docker q2
vt_assert_eq $((32 * 1024 * 1024)) "$(vt_volmgr_field q1 .quota)" "q1 quota"
vt_assert_eq $((200 * 1024 * 1024)) "$(vt_volmgr_field q2 .quota)" "q2 quota (the pool default)"
err=$(docker volume create -d "$VT_DRIVER" -o quota=lots q3 2>&1) && vt_fail "-o quota=lots accepted"
vt_assert_contains "$err" "size" "a bad size is refused"

vt_step "a job writes 64M into q1 from a container: EDQUOT"
status=0
out=$(docker run --rm --network none -v q1:/w "$img" \
	dd if=/dev/zero of=/w/big bs=1M count=64 conv=fsync 2>&1) || status=$?
vt_log "$out"
[[ $status != 0 ]] || vt_fail "writing 64M into a 32M volume succeeded"
vt_assert_contains "$out" "Disk quota exceeded" "the error the job sees"

vt_step "other volumes are untouched: q2 takes the same 64M"
docker run --rm --network none -v q2:/w "$img" dd if=/dev/zero of=/w/big bs=1M count=64 conv=fsync 2>/dev/null ||
	vt_fail "q2 refused 64M"
btrfs filesystem sync "$pool" >/dev/null
ex1=$(vt_volmgr_field q1 .usage.exclusive)
ex2=$(vt_volmgr_field q2 .usage.exclusive)
(( ex1 <= 32 * 1024 * 1024 && ex1 > 16 * 1024 * 1024 )) || vt_fail "q1 exclusive bytes: $ex1"
(( ex2 >= 64 * 1024 * 1024 )) || vt_fail "q2 exclusive bytes: $ex2"
ref2=$(vt_volmgr_field q2 .usage.referenced)
if [[ $("$VOLMGR" status --json | jq -r .quota_accounting) == simple ]]; then
	# Simple quotas count what a volume wrote: the 8M it shares with the
	# cache are the cache's.
	vt_assert_eq "$ex2" "$ref2" "q2 referenced bytes (simple quotas: what it wrote)"
else
	(( ref2 >= ex2 + 8 * 1024 * 1024 - 65536 )) || vt_fail "q2 referenced bytes: $ref2 (shares 8M with the cache)"
fi
vt_log "ok: inspect shows q1 exclusive $ex1, q2 exclusive $ex2, referenced $ref2"

vt_step "the CLI's --quota, and --quota 0 overriding the default"
"$VOLMGR" create qcli --quota 1G >/dev/null
vt_assert_eq $((1024 * 1024 * 1024)) "$(vt_volmgr_field qcli .quota)" "--quota 1G"
"$VOLMGR" create qnone --quota 0 >/dev/null
vt_assert_eq null "$(vt_volmgr_field qnone .quota)" "--quota 0: no limit"
vt_assert_status 7 "$VOLMGR" create qbad --quota -1G
"$VOLMGR" rm qcli qnone >/dev/null

vt_step "removal: no qgroup is left behind"
id1=$(vt_volmgr_field q1 .subvol_id)
docker volume rm q1 q2 >/dev/null
vt_untrack_volume docker q1
vt_untrack_volume docker q2
btrfs filesystem sync "$pool" >/dev/null
btrfs subvolume sync "$pool" >/dev/null
# 0/$id1 goes when btrfs's cleaner has dropped the subvolume: the kernel
# removes it itself (Linux 6.10 and later), a moment after the drop that
# `subvolume sync` waits for, or gc clears it -- which it cannot while the
# kernel is still at it (EBUSY until its commit).  Wait for the event
# itself, with gc run again on each look.
qgroups_gone() {
	"$VOLMGR" gc >/dev/null
	! grep -qE "^[01]/$1[[:space:]]" <<<"$(btrfs qgroup show "$pool")"
}
vt_wait_until "qgroups 0/$id1 and 1/$id1 of the removed q1 gone" qgroups_gone "$id1"
vt_log "ok: qgroups 0/$id1 and 1/$id1 are gone"

vt_step "with accounting off, a quota is refused clearly"
printf '[quota]\naccounting = no\n' >"$VT_TMP/volmgr.conf"
vt_restart_daemon
status=0; msg=$("$VOLMGR" create qoff --quota 1G 2>&1) || status=$?
vt_assert_eq 9 "$status" "exit status"
vt_assert_contains "$msg" "quota accounting is off" "message"
vt_assert_status 4 "$VOLMGR" inspect qoff
