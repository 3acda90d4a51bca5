#!/usr/bin/env bash
# Crash consistency: volmgrd is built with a fault-injection point at each
# step of every multi-step operation (VOLMGR_FAULT=<point> makes it _exit
# there, as a crash would).  For each point in turn: crash there, restart,
# and check that the repair leaves a consistent pool, that the operation
# either happened whole or not at all, and that it can be done again.
#
# VT_FSTYPE (default btrfs) picks the pool's file system, and so its
# backend: crash-points-ext4 runs the same steps where volumes are copies.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
fstype=${VT_FSTYPE:-btrfs}
vt_init "crash-points${VT_FSTYPE:+-$VT_FSTYPE}"
vt_require_root
vt_require_cmd jq git
[[ $fstype != btrfs ]] || vt_require_cmd btrfs

chmod 0711 "$VT_TMP" # git runs as nobody
pool=$(vt_make_pool "$fstype")/pool
vt_start_daemon "$pool"
mkdir -p "$VT_TMP/src/d" && echo data >"$VT_TMP/src/d/f"
"$VOLMGR" cache import proj "$VT_TMP/src" >/dev/null
up=$VT_TMP/up.git work=$VT_TMP/work
git init -q --bare -b main "$up" && git clone -q "$up" "$work" 2>/dev/null && git -C "$work" checkout -q -b main
gen() { echo "$1" >"$work/gen"; git -C "$work" add -A; git -C "$work" -c user.name=t -c user.email=t@x commit -qm "$1"; git -C "$work" push -q origin main; }
gen 1
"$VOLMGR" cache create gitc --git "file://$up" --branch main >/dev/null
if ! "$VOLMGR" snapshot cache:proj probe >/dev/null 2>&1 ||
	! VOLMGR_FAULT=none "$VOLMGR" rm probe >/dev/null; then
	vt_fail "setup"
fi
grep -q VM_FAULT_INJECTION "$VT_SRCDIR/../meson.build" || vt_fail "no fault injection in the build"

# crash POINT CMD...: run CMD against a daemon that dies at POINT.
crash() {
	local point=$1 status=0
	shift
	VOLMGR_FAULT=$point vt_restart_daemon
	"$@" >/dev/null 2>&1 || status=$?
	vt_wait_until "$point: volmgrd crashed ($*)" daemon_gone
	grep -q "fault injected at $point" "$VT_TMP/volmgrd.log" || vt_fail "$point was not reached"
	[[ $status != 0 ]] || vt_fail "$point: the caller was told it worked"
	vt_restart_daemon
	vt_check_pool_consistent
}
exists() { "$VOLMGR" inspect "$1" >/dev/null 2>&1; }
daemon_gone() { ! vt__daemon_alive; }

for point in create.staged create.published record.written; do
	vt_step "crash at $point during a snapshot"
	crash "$point" "$VOLMGR" snapshot cache:proj "v-$point"
	exists "v-$point" && vt_fail "$point: a volume whose record was never committed is visible"
	"$VOLMGR" snapshot cache:proj "v-$point" >/dev/null || vt_fail "$point: cannot do it again"
	vt_assert_eq data "$(cat "$pool/volumes/v-$point/d/f")" "done again after $point"
done

for point in remove.marked remove.moved remove.unlinked; do
	vt_step "crash at $point during a removal"
	"$VOLMGR" snapshot cache:proj "r-$point" >/dev/null
	crash "$point" "$VOLMGR" rm "r-$point"
	exists "r-$point" && vt_fail "$point: the removal was not finished at start-up"
	[[ ! -e $pool/volumes/r-$point ]] || vt_fail "$point: data left"
	"$VOLMGR" snapshot cache:proj "r-$point" >/dev/null || vt_fail "$point: the name is not free"
done

for point in copy.copied copy.published copy.readonly; do
	vt_step "crash at $point during a cache import"
	crash "$point" "$VOLMGR" cache import "c-$point" "$VT_TMP/src"
	"$VOLMGR" cache inspect "c-$point" >/dev/null 2>&1 && vt_fail "$point: a half-made cache is visible"
	"$VOLMGR" cache import "c-$point" "$VT_TMP/src" >/dev/null || vt_fail "$point: cannot do it again"
done

n=1
for point in update.fetched update.writable update.swapped update.readonly; do
	vt_step "crash at $point during a cache update"
	n=$((n + 1))
	gen "$n"
	crash "$point" "$VOLMGR" cache update gitc
	g=$(cat "$pool/caches/gitc/gen")
	[[ $g == "$((n - 1))" || $g == "$n" ]] || vt_fail "$point: the cache holds generation '$g'"
	vt_log "ok: after $point the cache is a whole generation ($g)"
	# The record names the commit the data holds, even when the crash came
	# between the swap of the generations and the record (start-up repair).
	head=$(git -c safe.directory='*' -C "$pool/caches/gitc" rev-parse HEAD)
	recorded=$("$VOLMGR" cache inspect gitc | jq -r '(if type == "array" then .[0] else . end).git.commit')
	vt_assert_eq "$head" "$recorded" "$point: the record's commit is the checkout's"
	"$VOLMGR" snapshot cache:gitc "u-$point" >/dev/null || vt_fail "$point: cannot snapshot the cache"
	"$VOLMGR" cache update gitc >/dev/null || vt_fail "$point: cannot update again"
	vt_assert_eq "$n" "$(cat "$pool/caches/gitc/gen")" "updated after $point"
done
# A promote: the volume's top becomes cache "pc"'s next generation (a
# snapshot on btrfs, a clone elsewhere), swapped in like an update.
"$VOLMGR" snapshot cache:gitc pv-0 >/dev/null
"$VOLMGR" cache promote "$pool/volumes/pv-0" pc >/dev/null || vt_fail "promote: setup"
for point in promote.staged promote.swapped; do
	vt_step "crash at $point during a cache promote"
	"$VOLMGR" snapshot cache:gitc "pv-$point" >/dev/null
	git -c safe.directory='*' -c user.name=t -c user.email=t@x -C "$pool/volumes/pv-$point" \
		commit -q --allow-empty -m "$point"
	crash "$point" "$VOLMGR" cache promote "$pool/volumes/pv-$point" pc
	head=$(git -c safe.directory='*' -C "$pool/caches/pc" rev-parse HEAD)
	recorded=$("$VOLMGR" cache inspect pc | jq -r '(if type == "array" then .[0] else . end).promoted.commit')
	vt_assert_eq "$head" "$recorded" "$point: the record's commit is the checkout's"
	"$VOLMGR" snapshot cache:pc "pu-$point" >/dev/null || vt_fail "$point: cannot snapshot the cache"
	"$VOLMGR" cache promote "$pool/volumes/pv-$point" pc >/dev/null || vt_fail "$point: cannot promote again"
	vt_assert_eq "$(git -c safe.directory='*' -C "$pool/volumes/pv-$point" rev-parse HEAD)" \
		"$(git -c safe.directory='*' -C "$pool/caches/pc" rev-parse HEAD)" "promoted after $point"
done
vt_check_pool_consistent
