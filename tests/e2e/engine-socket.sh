#!/usr/bin/env bash
# The engine socket (volmgr-engined) in front of a private dockerd: the
# seed's job script runs unchanged in a job container whose
# /var/run/docker.sock is the engine socket.
here=$(dirname "$(readlink -f "$0")")
# shellcheck source=../lib/common.sh
. "$here/../lib/common.sh"
# shellcheck source=../lib/engines.sh
. "$here/../lib/engines.sh"
# shellcheck source=../lib/engined.sh
. "$here/../lib/engined.sh"

vt_init engine-socket
vt_require_root
vt_require_cmd btrfs jq

pool=$(vt_make_pool btrfs)
vt_start_daemon "$pool"
vt_docker_ensure
vt_start_engined "$VT_DOCKER_SOCK"

src=$VT_TMP/src
mkdir -p "$src/sub"
printf '#!/bin/sh\necho "lint ok in $(pwd)"; ls\n' >"$src/lint.sh"
chmod +x "$src/lint.sh"
echo inner >"$src/sub/file"
"$VOLMGR" cache import proj "$src"

img=$(vt_docker_image "$(vt_docker_client)")
docker tag "$img" "vt-$VT_ID-job"
vt_on_exit vt_rm_image docker "vt-$VT_ID-job"
vol=ws-$VT_ID
docker volume create -d "$VT_DRIVER" -o source=cache:proj "$vol" >/dev/null
vt_track_volume docker "$vol"
job=vt-$VT_ID-job1
vt_on_exit vt_rm_container docker "$job"
docker run -d --name "$job" --network none -v "$vol:/builds/g/p" \
	-v "$VT_ENGINE_SOCK:/var/run/docker.sock" -w /builds/g/p "vt-$VT_ID-job" sleep 600 >/dev/null

vt_step "docker version and ps through the socket"
docker exec "$job" docker version
docker exec "$job" docker ps -a

vt_step "the seed's script: docker run -v \"\$(pwd):/workspace\" -w /workspace IMAGE ./lint.sh"
docker exec "$job" sh -c 'docker run --rm --network none -v "$(pwd):/workspace" -w /workspace vt-'"$VT_ID"'-job ./lint.sh'
