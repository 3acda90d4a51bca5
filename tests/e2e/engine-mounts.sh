#!/usr/bin/env bash
# The engines' Mounts and Unmounts, as the engines send them (issue 13,
# items 6, 8, 9, 10), against a private dockerd and a private podman
# service that volmgrd is told about in [engines]:
#  - podman volume mount (a Mount and no container, the path handed to a
#    user): recorded until podman's Unmount, however long -- past the two
#    minutes after which volmgrd used to forget it and let rm delete it;
#  - docker cp into a running container: Mount X, Mount X, Unmount X
#    (moby daemon/archive.go mounts the container's volumes again with
#    their IDs); the container's own Mount is still recorded afterwards;
#  - 5,000 Mounts of distinct IDs without Unmount (an engine that lost
#    track): Mounts past the bound are refused, the volume stays listable,
#    inspectable and removable once the engines confirm they do not use it;
#  - Unmount of a volume volmgrd no longer has succeeds, so podman can drop
#    its own record (`podman volume rm -f`).
here=$(dirname "$(readlink -f "$0")")
# shellcheck source=../lib/common.sh
. "$here/../lib/common.sh"
# shellcheck source=../lib/engines.sh
. "$here/../lib/engines.sh"

vt_init engine-mounts
vt_require_root
vt_require_cmd btrfs jq python3 podman

pool=$(vt_make_pool btrfs 2G)
vt_start_daemon "$pool"
vt_docker_ensure
vt_podman_ensure "$VT_DRIVER" "$VT_PLUGIN_SOCK"
# Now that the engines' sockets are known: tell volmgrd.
printf '[engines]\ndocker = %s\npodman = %s\ntimeout = 10s\n[gc]\ninterval = 0\n' \
	"$VT_DOCKER_SOCK" "$VT_PODMAN_SOCK" >"$VT_TMP/volmgr.conf"
VT_CONFIG_FILE=$VT_TMP/volmgr.conf
vt_restart_daemon
mounts() { vt_volmgr_field "$1" '[.mounts[] | "\(.id)=\(.count // 1)"] | join(" ")'; }

vt_step "podman volume mount: recorded until podman unmounts it"
pv=pm-$VT_ID
vt_podman volume create --driver "$VT_DRIVER" "$pv" >/dev/null
vt_track_volume vt_podman "$pv"
# (podman 4.3 prints the config's mount point, empty for a plugin's
# volume: libpod/volume.go Mount; the plugin's Mount happened all the same.)
podman volume mount "$pv" >/dev/null
mounted_at=$SECONDS
vt_assert_eq 1 "$(vt_volmgr_field "$pv" '.mounts | length')" "podman's Mount recorded"
vt_assert_eq 0 "$(vt_volmgr_field "$pv" .kernel_mounts)" "no kernel mount: only podman knows"
vt_assert_in_use "$pv" true

vt_step "docker cp into a running container: Mount X, Mount X, Unmount X"
img=$(vt_docker_image)
dv=cp-$VT_ID
docker volume create -d "$VT_DRIVER" "$dv" >/dev/null
vt_track_volume docker "$dv"
cid=$(docker run -d --network none -v "$dv:/w" "$img" sleep 600)
vt_on_exit vt_rm_container docker "$cid"
before=$(mounts "$dv")
[[ $before == *=1 && $before != *" "* ]] || vt_fail "one Mount for the container, got '$before'"
echo payload >"$VT_TMP/file"
docker cp "$VT_TMP/file" "$cid:/w/file"
vt_assert_eq payload "$(cat "$pool/volumes/$dv/file")" "docker cp wrote into the volume"
vt_assert_eq "$before" "$(mounts "$dv")" "the container's Mount survives cp's Unmount (count 1)"
docker rm -f "$cid" >/dev/null
vt_assert_eq "" "$(mounts "$dv")" "the container's Unmount releases it"
vt_rm_volume docker "$dv"

vt_step "5,000 Mounts without Unmount: bounded, listable, removable"
bv=busy-$VT_ID
"$VOLMGR" create "$bv" >/dev/null
out=$(python3 "$VT_SRCDIR/tools/plugin-mounts.py" "$VT_PLUGIN_SOCK" "$bv" 5000 "$(printf "%0240d" 0)")  # IDs of 250 characters
vt_log "$out"
vt_assert_eq 512 "$(jq -r .ok <<<"$out")" "Mounts recorded"
vt_assert_eq 4488 "$(jq -r .refused <<<"$out")" "Mounts refused past the bound"
vt_assert_contains "$(jq -r .first_refusal <<<"$out")" "512 engine mounts without Unmount" "the refusal says why"
vt_assert_listed "$bv"
vt_assert_eq 512 "$(vt_volmgr_field "$bv" '.mounts | length')" "inspect"
vt_assert_status 0 "$VOLMGR" ls
# Neither engine has a container on it, and podman's mount count is 0:
# the recorded Mounts are stale, and removal drops them.
"$VOLMGR" rm "$bv"
vt_assert_volume_gone "$bv"
vt_assert_contains "$(cat "$VT_TMP/volmgrd.log")" "volume $bv: dropped 512 engine mount(s) without Unmount: no engine uses it" "log"

vt_step "Unmount of a volume volmgrd no longer has succeeds"
gv=gone-$VT_ID
vt_podman volume create --driver "$VT_DRIVER" "$gv" >/dev/null
vt_track_volume vt_podman "$gv"
podman volume mount "$gv" >/dev/null
# As after a pool restored from a backup: the volume is gone from volmgrd
# behind podman's back.
btrfs -q subvolume delete "$pool/volumes/$gv" >/dev/null
rm "$pool/.volmgr/volumes/$gv.json"
vt_assert_status 4 "$VOLMGR" inspect "$gv"
vt_assert_eq '{"Err":""} 200' "$(curl -sS --unix-socket "$VT_PLUGIN_SOCK" -X POST -w ' %{http_code}' \
	http://plugin/VolumeDriver.Unmount -d "{\"Name\":\"$gv\",\"ID\":\"x\"}")" "Unmount of an unknown volume"
podman volume rm -f "$gv" >/dev/null 2>&1 || true
vt_untrack_volume vt_podman "$gv"
[[ -z $(vt_podman volume ls -q --filter "name=^$gv\$") ]] || vt_fail "podman still lists $gv"
vt_log "ok: podman dropped its record of $gv"

vt_step "the podman mount is still recorded after more than two minutes"
# The old rule forgot a Mount without a kernel mount after 120 s.
left=$((mounted_at + 125 - SECONDS))
((left <= 0)) || { vt_log "waiting $left s"; sleep "$left"; }
vt_assert_in_use "$pv" true
vt_assert_eq 1 "$(vt_volmgr_field "$pv" '.mounts | length')" "recorded Mount"
err=$(docker volume rm "$pv" 2>&1) && vt_fail "docker volume rm removed a volume podman has mounted"
vt_assert_contains "$err" "in use" "docker volume rm refused"
err=$("$VOLMGR" rm "$pv" 2>&1) && vt_fail "volmgr rm removed a volume podman has mounted"
vt_assert_contains "$err" "an engine still uses it" "volmgr rm refused, and says why"
vt_assert_eq 0 "$("$VOLMGR" gc --json | jq '.mounts_dropped | length')" "gc keeps it"

vt_step "podman volume unmount releases it"
podman volume unmount "$pv" >/dev/null
vt_assert_in_use "$pv" false
vt_rm_volume vt_podman "$pv"
vt_assert_volume_gone "$pv"
