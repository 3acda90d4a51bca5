#!/usr/bin/env bash
# run-runner.sh [PODMAN-RUN-OPTION...] [-- COMMAND...]
#
# Start the runner container: gitlab-runner and its own (inner, rootful)
# podman in one --privileged container of the host's podman, wired to the
# host's volmgrd.  Options before `--` are added to `podman run` (say
# --network, --restart, more -v); COMMAND replaces `gitlab-runner run`.
# Prints the container's id.  Every knob is an environment variable,
# defaults in brackets; see README.md for what each mount is for.
#
#   RUNNER_IMAGE        image with podman, runc, conmon, gitlab-runner
#                       [localhost/podman-runner:latest]
#   RUNNER_NAME         container name [podman-runner]
#   RUNNER_STORAGE      outer volume (or host dir) for the inner podman's
#                       images and containers [podman-runner-storage]
#   RUNNER_CONFIG_DIR   host dir holding config.toml [/srv/podman-runner/config]
#   RUNNER_CACHE        outer volume (or host dir) for the jobs' `cache:`
#                       keyword [podman-runner-cache]
#   VOLMGR_POOL         volmgrd's --pool [/var/lib/volmgr]
#   VOLMGR_PLUGIN_DIR   host dir of volmgrd's --plugin-socket, which must be
#                       named volmgr.sock [/run/docker/plugins]
#   VOLMGR_CONTROL_DIR  host dir of volmgrd's sockets: the job socket
#                       job.sock, which config.toml binds into jobs
#                       (volmgrd-job.socket or --job-socket) [/run/volmgr]
#   VOLMGR_CONTAINER_DIR  host dir with bin/volmgr (static), bin/volmgr-run
#                       and gitlab-runner-pre-build.sh [/usr/lib/volmgr/container]
#   VOLMGR_ENGINED      the host's volmgr-engined, run inside in front of the
#                       inner podman (the image needs its libraries: the
#                       image and the host on the same Debian release)
#                       [/usr/sbin/volmgr-engined]
#   VOLMGR_ENGINE_CONF  a volmgr.conf whose [engine] section loosens the
#                       jobs' engine socket [none: the default rules]
#   PODMAN              the host's podman command [podman]
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
read -ra podman <<<"${PODMAN:-podman}"
image=${RUNNER_IMAGE:-localhost/podman-runner:latest}
name=${RUNNER_NAME:-podman-runner}
storage=${RUNNER_STORAGE:-podman-runner-storage}
config_dir=${RUNNER_CONFIG_DIR:-/srv/podman-runner/config}
pool=${VOLMGR_POOL:-/var/lib/volmgr}
plugin_dir=${VOLMGR_PLUGIN_DIR:-/run/docker/plugins}
control_dir=${VOLMGR_CONTROL_DIR:-/run/volmgr}
container_dir=${VOLMGR_CONTAINER_DIR:-/usr/lib/volmgr/container}
engined=${VOLMGR_ENGINED:-/usr/sbin/volmgr-engined}
engine_conf=${VOLMGR_ENGINE_CONF:-}
cache=${RUNNER_CACHE:-podman-runner-cache}

opts=()
while (($# > 0)) && [[ $1 != -- ]]; do
	opts+=("$1")
	shift
done
(($# == 0)) || shift # the --

# The pool must be seen at the same path inside: volmgr's Mount returns a
# host path (POOL/volumes/NAME), which the inner podman bind-mounts.
[[ $pool == /* ]] || { echo "run-runner.sh: VOLMGR_POOL must be absolute" >&2; exit 2; }
[[ -x $engined ]] || { echo "run-runner.sh: no volmgr-engined at $engined (VOLMGR_ENGINED)" >&2; exit 2; }
if [[ -n $engine_conf ]]; then
	[[ -f $engine_conf ]] || { echo "run-runner.sh: no file $engine_conf (VOLMGR_ENGINE_CONF)" >&2; exit 2; }
	opts+=(-v "$engine_conf:/etc/volmgr/volmgr.conf:ro")
fi

exec "${podman[@]}" run -d --name "$name" \
	--privileged \
	--tmpfs /run:rw,mode=0755 \
	-v "$storage:/var/lib/containers" \
	-v "$pool:$pool:rslave" \
	-v "$plugin_dir:/run/docker/plugins:ro" \
	-v "$control_dir:/run/volmgr:ro" \
	-v "$container_dir:/usr/lib/volmgr/container:ro" \
	-v "$engined:/usr/local/sbin/volmgr-engined:ro" \
	-v "$here/containers.conf:/etc/containers/containers.conf:ro" \
	-v "$here/storage.conf:/etc/containers/storage.conf:ro" \
	-v "$here/entrypoint.sh:/usr/local/bin/podman-runner-entrypoint:ro" \
	-v "$config_dir:/etc/gitlab-runner" \
	-v "$cache:/srv/gitlab-runner/cache" \
	--entrypoint /usr/local/bin/podman-runner-entrypoint \
	"${opts[@]}" "$image" "$@"
