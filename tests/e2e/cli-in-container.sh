#!/usr/bin/env bash
# The static volmgr CLI works from inside a container that has only the
# control socket mounted, and `cache import DIR` copies what the *caller*
# sees at DIR (the container's own files), not what the host has there.
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/common.sh"
. "$here/../lib/engines.sh"

vt_init cli-in-container
vt_require_root
vt_require_cmd btrfs jq

pool=$(vt_make_pool btrfs)
vt_start_daemon "$pool"
vt_docker_ensure
img=$(vt_docker_image "$VOLMGR")
in_container() {
	docker run --rm --network none -v "$VT_CONTROL_SOCK:/run/volmgr/control.sock" "$img" "$@"
}

vt_step "volmgr status and ls from a container (static binary, socket mounted)"
vt_assert_eq btrfs "$(in_container volmgr status --json | jq -r .fstype)" "status from the container"

vt_step "cache import of the container's own /etc reads the container's view"
in_container sh -c 'mkdir -p /tmp/co/src && echo "from inside the container" > /tmp/co/src/marker &&
	cp /etc/passwd /tmp/co/passwd && volmgr cache import inner /tmp/co'
vt_assert_eq "from inside the container" "$(cat "$pool/caches/inner/src/marker")" "file only the container has"
vt_assert_eq 2 "$(wc -l <"$pool/caches/inner/passwd")" "the image's passwd (2 lines), not the host's"
[[ ! -e /tmp/co/src/marker ]] || vt_fail "the host has /tmp/co too: the check above proves nothing"

vt_step "snapshot, inspect and rm from a container"
in_container volmgr snapshot cache:inner job-in >/dev/null
vt_assert_eq cache:inner "$(in_container volmgr inspect job-in | jq -r .source)" "inspect from the container"
status=0; in_container volmgr snapshot cache:inner job-in 2>/dev/null || status=$?
vt_assert_eq 5 "$status" "exit status of a duplicate snapshot inside the container"
in_container volmgr rm job-in >/dev/null
vt_assert_status 4 "$VOLMGR" inspect job-in

vt_step "inside a job container: which and snapshot of the job's own workspace path"
docker volume create -d "$VT_DRIVER" -o source=cache:inner "ws-$VT_ID" >/dev/null
vt_on_exit vt_rm_volume docker "ws-$VT_ID"
out=$(docker run --rm --network none -v "$VT_CONTROL_SOCK:/run/volmgr/control.sock" \
	-v "ws-$VT_ID:/builds/g/p" -w /builds/g/p "$img" sh -c \
	'volmgr which . && volmgr which /builds/g/p/src && echo mine > mine &&
	 volmgr snapshot /builds/g/p "snap-$0" && volmgr snapshot /builds/g/p/src "copy-$0"' "$VT_ID")
vt_assert_contains "$out" "ws-$VT_ID
ws-$VT_ID" "which inside the container"
vt_assert_eq "volume:ws-$VT_ID" "$("$VOLMGR" inspect "snap-$VT_ID" | jq -r .source)" "snapshot of the job's workspace"
vt_assert_eq mine "$(cat "$pool/volumes/snap-$VT_ID/mine")" "the job's write is in the snapshot"
vt_assert_eq "path:/builds/g/p/src" "$("$VOLMGR" inspect "copy-$VT_ID" | jq -r .source)" "copy below the top, path as the job sees it"
"$VOLMGR" rm "snap-$VT_ID" "copy-$VT_ID" >/dev/null
"$VOLMGR" cache rm inner
