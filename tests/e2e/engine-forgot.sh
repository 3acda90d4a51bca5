#!/usr/bin/env bash
# No leaked volumes (issue 15, item 2): gc asks the engine that created a
# volume whether it forgot it, against a private dockerd and a private
# podman service listed in [engines], played as the engines' sources do:
#  - who created a volume is read from the kernel (the plugin peer's
#    executable and root), never from the request;
#  - Docker's forced remove of a volume volmgrd refuses (something still
#    mounts it) drops Docker's record all the same (moby volume/service/
#    store.go Remove: purge on error with PurgeOnError); once nothing
#    mounts it and no container names it, the second collection takes
#    it; a container that names it, or a Get of it, keeps it;
#  - a volume Podman never recorded (its 5 s plugin timeout ran out while
#    volmgrd's Create was held: libpod/plugin/volume_api.go) is one
#    Podman's `exists` denies (pkg/api/handlers/libpod/volumes.go): taken
#    on the second collection; Podman's own volumes are never taken;
#  - an expired volume (volume_driver_ops ttl) a stopped container still
#    names -- a job between two stages -- is kept;
#  - an engine that does not answer forgets nothing, and one that lets a
#    question time out is not asked again within the same minute.
here=$(dirname "$(readlink -f "$0")")
# shellcheck source=../lib/common.sh
. "$here/../lib/common.sh"
# shellcheck source=../lib/engines.sh
. "$here/../lib/engines.sh"

vt_init engine-forgot
vt_require_root
vt_require_cmd btrfs jq curl podman

pool=$(vt_make_pool btrfs 2G)
vt_start_daemon "$pool"
vt_docker_ensure
vt_podman_ensure "$VT_DRIVER" "$VT_PLUGIN_SOCK"
pause=$VT_TMP/pause
mkdir "$pause"
conf() { # DOCKER-SOCKET [TIMEOUT]
	printf '[engines]\ndocker = %s\npodman = %s\ntimeout = %s\n[gc]\ninterval = 0\nengine_grace = 0\n' \
		"$1" "$VT_PODMAN_SOCK" "${2:-10s}" >"$VT_TMP/volmgr.conf"
}
conf "$VT_DOCKER_SOCK"
VT_CONFIG_FILE=$VT_TMP/volmgr.conf
VOLMGR_FAULT_PAUSE="+volume.create:$pause" vt_restart_daemon

# gc_says NAME: how one collection treats NAME: "removed (REASONS)",
# "kept (REASONS): NOTE" or "untouched".
gc_says() {
	"$VOLMGR" gc --json | jq -r --arg n "$1" '
		([.removed[] | select(.name == $n) | "removed (\(.reasons | join(",")))"] +
		 [.kept_in_use[] | select(.name == $n) | "kept (\(.reasons | join(","))): \(.error // "")"] +
		 ["untouched"])[0]'
}
engine_of() { vt_volmgr_field "$1" '.creator.engine // "none"'; }
has_volume() {
	local names
	names=$(vt_volmgr_names)
	grep -qxF "$1" <<<"$names"
}
img=$(vt_docker_image)
mkdir "$VT_TMP/held"
vt_on_exit sh -c "umount '$VT_TMP/held' 2>/dev/null; true"
# refused_remove NAME: a docker volume NAME whose forced remove volmgrd
# refuses (a bind mount holds it meanwhile); Docker forgets it.
refused_remove() {
	docker volume create -d "$VT_DRIVER" "$1" >/dev/null
	vt_track_volume docker "$1"
	mount --bind "$pool/volumes/$1" "$VT_TMP/held"
	docker volume rm -f "$1" >/dev/null 2>&1 && vt_fail "docker removed a volume something mounts"
	umount "$VT_TMP/held"
}

vt_step "who made each volume, from the kernel"
dk=dk-$VT_ID pd=pd-$VT_ID cli=cli-$VT_ID
docker volume create -d "$VT_DRIVER" "$dk" >/dev/null
vt_track_volume docker "$dk"
vt_podman volume create --driver "$VT_DRIVER" "$pd" >/dev/null
vt_track_volume vt_podman "$pd"
"$VOLMGR" create "$cli" >/dev/null
# The plugin socket, spoken to as an engine would, but by curl.
out=$(curl -sS --unix-socket "$VT_PLUGIN_SOCK" -X POST http://plugin/VolumeDriver.Create -d "{\"Name\":\"curl-$VT_ID\"}")
vt_assert_eq '{"Err":""}' "$out" "curl's Create"
vt_assert_eq docker "$(engine_of "$dk")" "docker volume create: dockerd asked"
vt_assert_eq podman "$(engine_of "$pd")" "podman volume create: podman's service asked"
vt_assert_eq none "$(engine_of "$cli")" "the CLI is no engine"
vt_assert_eq none "$(engine_of "curl-$VT_ID")" "a plugin peer that is neither dockerd nor podman"

vt_step "volumes their engines know are never taken, used or not"
for _ in 1 2; do
	for v in "$dk" "$pd" "$cli" "curl-$VT_ID"; do
		vt_assert_eq untouched "$(gc_says "$v")" "gc and $v"
	done
done

vt_step "docker's forced remove, refused while something mounts the volume: docker forgets it"
mount --bind "$pool/volumes/$dk" "$VT_TMP/held"
out=$(docker volume rm -f "$dk" 2>&1) && vt_fail "docker removed a volume something mounts"
vt_assert_contains "$out" "in use" "docker passes volmgrd's refusal on"
[[ -n $(vt_volmgr_field "$dk" '.remove_refused // empty') ]] || vt_fail "the refused Remove is not recorded"
vt_assert_eq untouched "$(gc_says "$dk")" "gc while the bind mount holds it: not asked"
umount "$VT_TMP/held"
vt_assert_contains "$(gc_says "$dk")" "docker has forgotten it and no container names it: removed by a later collection" "the first collection that finds it forgotten"
vt_assert_eq "removed (engine forgot)" "$(gc_says "$dk")" "the second collection"
vt_assert_volume_gone "$dk"
vt_untrack_volume docker "$dk"

vt_step "a refused remove, then docker takes the volume again: kept"
dk2=dk2-$VT_ID
refused_remove "$dk2"
# docker create takes the volume again (its store asks our Get, moby
# volume/service/store.go getVolume) and names it in the container.
cid=$(docker create --network none -v "$dk2:/w" "$img" true)
vt_on_exit vt_rm_container docker "$cid"
for _ in 1 2; do
	vt_assert_eq untouched "$(gc_says "$dk2")" "gc with a container naming $dk2"
done
docker rm "$cid" >/dev/null
for _ in 1 2; do
	vt_assert_eq untouched "$(gc_says "$dk2")" "gc after docker's Get of it: docker knows it again"
done
vt_assert_listed "$dk2"
docker volume rm "$dk2" >/dev/null
vt_untrack_volume docker "$dk2"

vt_step "a volume Podman never recorded: its plugin timeout ran out during our Create"
pv=orphan-$VT_ID
touch "$pause/volume.create.arm"
out=$(vt_podman volume create --driver "$VT_DRIVER" "$pv" 2>&1) && vt_fail "podman's create did not time out"
vt_log "podman: ${out##*$'\n'}"
[[ -e $pause/volume.create.paused ]] || vt_fail "volmgrd's Create was not held"
touch "$pause/volume.create.resume"
vt_wait_until "volmgrd finishes the held Create" has_volume "$pv"
vt_assert_eq podman "$(engine_of "$pv")" "made for podman"
vt_assert_status 1 vt_podman volume exists "$pv"
vt_assert_contains "$(gc_says "$pv")" "podman has forgotten it" "the first collection"
vt_assert_eq "removed (engine forgot)" "$(gc_says "$pv")" "the second collection"
vt_assert_volume_gone "$pv"
vt_assert_eq untouched "$(gc_says "$pd")" "podman's own volume"
vt_assert_listed "$pd"

vt_step "volume_driver_ops ttl, the backstop: never while a job's container names the volume"
# Between two stages of a job nothing mounts its volume, but the stopped
# helper and build containers still name it.
dt=ttl-$VT_ID
docker volume create -d "$VT_DRIVER" -o ttl=1s "$dt" >/dev/null
vt_track_volume docker "$dt"
cid=$(docker create --network none -v "$dt:/w" "$img" true)
vt_on_exit vt_rm_container docker "$cid"
sleep 1.2
vt_assert_eq "kept (expired): a container of docker names it (a job between two stages): kept" \
	"$(gc_says "$dt")" "an expired volume a stopped container names"
docker rm "$cid" >/dev/null
vt_assert_eq "removed (expired)" "$(gc_says "$dt")" "expired, and no container names it"
vt_untrack_volume docker "$dt"

vt_step "an engine that does not answer forgets nothing"
dk3=dk3-$VT_ID
refused_remove "$dk3"
conf "$VT_TMP/no-such-docker.sock"
vt_restart_daemon
for _ in 1 2; do
	vt_assert_contains "$(gc_says "$dk3")" "cannot tell whether docker forgot it" "gc with docker's socket gone"
done
vt_assert_listed "$dk3"

vt_step "an engine that accepts and never answers: one timeout per collection, not one per volume"
dk4=dk4-$VT_ID
conf "$VT_DOCKER_SOCK"
vt_restart_daemon
refused_remove "$dk4"
# A socket that accepts connections and reads, but never answers.
python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(16)
c = []
while True: c.append(s.accept()[0])' "$VT_TMP/silent.sock" &
silent=$!
vt_on_exit sh -c "kill $silent 2>/dev/null; true"
vt_wait_until "the silent socket listens" test -S "$VT_TMP/silent.sock"
conf "$VT_TMP/silent.sock" 1s
vt_restart_daemon
out=$("$VOLMGR" gc --json)
notes=$(jq -r --arg a "$dk3" --arg b "$dk4" '.kept_in_use[] | select(.name == $a or .name == $b) | .error' <<<"$out")
vt_assert_contains "$notes" "Timeout was reached" "the first question times out"
vt_assert_contains "$notes" "not asked again yet" "the next volume's question is not asked"
vt_assert_listed "$dk4"
kill "$silent"
"$VOLMGR" rm "$dk3" "$dk4" "$cli" "curl-$VT_ID" >/dev/null
vt_untrack_volume docker "$dk4"
vt_untrack_volume docker "$dk3"
vt_podman volume rm "$pd" >/dev/null
vt_untrack_volume vt_podman "$pd"
vt_check_pool_consistent
