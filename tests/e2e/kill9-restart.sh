#!/usr/bin/env bash
# volmgrd is killed with SIGKILL while a container holds a volume, then
# restarted on the same pool: the volume is still there and still in use
# (so `volmgr rm` is refused), the running container keeps writing to it, a
# second container can mount it, and once the containers are gone it is
# free and can be removed.  Run once with docker, once with podman.
here=$(dirname "$(readlink -f "$0")")
# shellcheck source=../lib/common.sh
. "$here/../lib/common.sh"
# shellcheck source=../lib/engines.sh
. "$here/../lib/engines.sh"

vt_init kill9-restart
vt_require_root
vt_require_cmd btrfs jq

pool=$(vt_make_pool btrfs)
vt_start_daemon "$pool"

src=$VT_TMP/src
mkdir -p "$src"
echo "hello" >"$src/README"
"$VOLMGR" cache import proj "$src"

# Engines may release a volume a moment after `rm -f` returns (podman's
# cleanup runs from conmon): wait for it.
in_use_is() { [[ $(vt_volmgr_field "$1" .in_use) == "$2" ]]; }
wait_in_use() { # wait_in_use VOLUME true|false
	vt_wait_until "in_use of $1 is $2" in_use_is "$1" "$2"
	vt_assert_in_use "$1" "$2"
}

# scenario ENGINE IMAGE — ENGINE is `docker` or `vt_podman`.
scenario() {
	local eng=$1 img=$2 tag=${1#vt_}
	local vol=hold-$tag-$VT_ID holder=vt-$VT_ID-$tag-holder out

	vt_step "$tag: a container holds $vol"
	"$eng" volume create --driver "$VT_DRIVER" -o source=cache:proj "$vol" >/dev/null
	vt_track_volume "$eng" "$vol"
	vt_on_exit vt_rm_container "$eng" "$holder"
	# The holder sleeps, but exits at once on SIGTERM (as PID 1, a plain
	# sleep would ignore it and make every stop wait for the timeout).
	"$eng" run -d --name "$holder" --network none -v "$vol:/w" "$img" \
		sh -c 'trap "exit 0" TERM; sleep 600 & wait' >/dev/null
	vt_assert_in_use "$vol" true

	vt_step "$tag: kill -9 volmgrd, start it again"
	vt_kill_daemon
	vt_restart_daemon

	vt_step "$tag: after the restart $vol is listed, in use, and rm is refused"
	vt_assert_listed "$vol"
	vt_assert_in_use "$vol" true
	vt_assert_status 6 "$VOLMGR" rm "$vol"
	[[ -d $pool/volumes/$vol ]] || vt_fail "the refused rm deleted $vol anyway"

	vt_step "$tag: the running container still writes to the volume"
	"$eng" exec "$holder" sh -c 'echo after > /w/after-restart'
	vt_assert_eq after "$(cat "$pool/volumes/$vol/after-restart")" "file written after the restart"

	vt_step "$tag: a second container mounts the volume"
	out=$("$eng" run --rm --network none -v "$vol:/w" "$img" cat /w/after-restart)
	vt_assert_eq after "$out" "second container reads the file"

	vt_step "$tag: once the containers are gone the volume is free and rm works"
	"$eng" rm -f "$holder" >/dev/null
	wait_in_use "$vol" false
	vt_assert_status 0 "$VOLMGR" rm "$vol"
	vt_assert_volume_gone "$vol"
	# The engine still has a record of the volume volmgr removed behind its
	# back; a forced rm drops it (the plugin says "no such volume").
	"$eng" volume rm -f "$vol" >/dev/null
	vt_untrack_volume "$eng" "$vol"
}

vt_docker_ensure
scenario docker "$(vt_docker_image)"

vt_podman_ensure "$VT_DRIVER" "$VT_PLUGIN_SOCK"
scenario vt_podman "$(vt_podman_image)"
