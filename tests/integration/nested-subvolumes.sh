#!/usr/bin/env bash
# A nested podman on btrfs creates subvolumes inside a workspace (some
# read-only, some nested in others): rm deletes them all with the volume.
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
