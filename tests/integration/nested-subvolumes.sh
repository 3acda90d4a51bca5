#!/usr/bin/env bash
# A nested podman on btrfs creates subvolumes inside a workspace (some
# read-only, some nested in others): rm deletes them all with the volume,
# a subvolume volume or (backend copy) a plain directory.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init nested-subvolumes
vt_require_root
vt_require_cmd jq btrfs

pool=$(vt_make_pool btrfs)/pool
vt_start_daemon "$pool"
"$VOLMGR" create ws
v=$pool/volumes/ws
btrfs -q subvolume create "$v/a" >/dev/null
btrfs -q subvolume create "$v/a/b" >/dev/null
mkdir -p "$v/dir/deep"
btrfs -q subvolume create "$v/dir/deep/c" >/dev/null
echo data >"$v/dir/deep/c/file"
btrfs -q subvolume snapshot -r "$v/dir/deep/c" "$v/ro-leaf" >/dev/null
btrfs -q subvolume create "$v/ro-parent" >/dev/null
btrfs -q subvolume create "$v/ro-parent/child" >/dev/null
btrfs property set -ts "$v/ro-parent" ro true
vt_assert_eq 6 "$(btrfs subvolume list "$pool" | grep -c 'volumes/ws/')" "nested subvolumes made"

vt_step "rm deletes the volume and every subvolume beneath it"
"$VOLMGR" rm ws
vt_assert_volume_gone ws
vt_assert_eq 0 "$(btrfs subvolume list "$pool" | grep -c 'volumes/' || true)" "no subvolume left under volumes/"
vt_assert_eq 0 "$(find "$pool/staging" -mindepth 1 | wc -l)" "staging empty"

vt_step "a subvolume deeper than a path can name is deleted too"
# 20 directories of 250 characters: the kernel hands out no path to the
# subvolume at the bottom (BTRFS_IOC_INO_LOOKUP stops at 4,080 bytes).
"$VOLMGR" create deep
long=$(printf 'd%.0s' $(seq 250))
(cd "$pool/volumes/deep" && for _ in $(seq 20); do mkdir "$long" && cd "$long"; done &&
	btrfs -q subvolume create inner >/dev/null && btrfs -q subvolume create inner/more >/dev/null &&
	echo data >inner/more/file)
"$VOLMGR" rm deep
vt_assert_volume_gone deep
vt_assert_eq 0 "$(btrfs subvolume list "$pool" | grep -c 'volumes/' || true)" "no subvolume left under volumes/"
vt_assert_eq 0 "$(find "$pool/staging" -mindepth 1 | wc -l)" "staging empty"

vt_step "the same in a plain-directory volume (backend copy on btrfs)"
VT_DAEMON_EXTRA="--backend copy" vt_restart_daemon
"$VOLMGR" create plain
v=$pool/volumes/plain
[[ $(stat -c %i "$v") != 256 ]] || vt_fail "volume plain is a subvolume: not the copy backend"
mkdir -p "$v/dir"
btrfs -q subvolume create "$v/dir/sub" >/dev/null
btrfs -q subvolume create "$v/dir/sub/child" >/dev/null
echo data >"$v/dir/sub/child/file"
btrfs property set -ts "$v/dir/sub" ro true
"$VOLMGR" rm plain
vt_assert_volume_gone plain
vt_assert_eq 0 "$(btrfs subvolume list "$pool" | grep -c 'volumes/' || true)" "no subvolume left under volumes/"
vt_assert_eq 0 "$(find "$pool/staging" -mindepth 1 | wc -l)" "staging empty"
