#!/usr/bin/env bash
# A pool on a file system that is not btrfs gets a clear error naming that
# file system, exit status 9, and no socket is left listening.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init non-btrfs-pool
vt_require_root

for fs in ext4 xfs; do
	vt_step "pool on $fs"
	dir=$(vt_make_pool "$fs" 512M)
	status=0
	out=$("$VOLMGRD" --pool "$dir/pool" --plugin-socket "$VT_TMP/p-$fs.sock" \
		--control-socket "$VT_TMP/c-$fs.sock" 2>&1) || status=$?
	vt_assert_eq 9 "$status" "volmgrd exit status on $fs"
	vt_assert_contains "$out" "on a $fs file system" "message"
	vt_assert_contains "$out" "not btrfs" "message"
	[[ ! -e $VT_TMP/p-$fs.sock && ! -e $VT_TMP/c-$fs.sock ]] || vt_fail "a socket was created"
done
