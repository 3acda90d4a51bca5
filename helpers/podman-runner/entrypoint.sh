#!/bin/bash
# Entrypoint of the runner container (run-runner.sh mounts it at
# /usr/local/bin/podman-runner-entrypoint): start the inner podman's API
# service, wait until it answers, start volmgr-engined in front of it (the
# jobs' engine socket), then run COMMAND (default: gitlab-runner run).  If
# any of the three exits, stop the others and exit with its status, so
# that a restart policy (or the systemd unit running the container) starts
# them again.
#
# gitlab-runner talks to the inner podman's own socket (config.toml's
# `host`); jobs get only volmgr-engined's socket (config.toml's volumes),
# on which each job sees and touches only what it made.
#
# An image that has systemd as its init (like pipglr's) can use
# podman.socket, volmgr-engined's units and a gitlab-runner unit instead;
# what matters is that the sockets are at the paths config.toml names.
set -euo pipefail

sock=${PODMAN_SOCKET:-/run/podman/podman.sock}
mkdir -p "${sock%/*}"
rm -f "$sock"
podman --log-level="${PODMAN_LOG_LEVEL:-warn}" system service --time=0 "unix://$sock" &
service=$!

for ((i = 0; ; i++)); do
	if ! kill -0 "$service" 2>/dev/null; then
		echo "podman-runner: podman system service exited during start-up" >&2
		exit 1
	fi
	[[ -S $sock ]] && podman --remote --url "unix://$sock" version >/dev/null 2>&1 && break
	if ((i == 300)); then
		echo "podman-runner: $sock does not answer after 30 s" >&2
		exit 1
	fi
	sleep 0.1
done
echo "podman-runner: inner podman API at unix://$sock" >&2

# The jobs' engine socket.  Its records (what each job made) are kept on
# the inner podman's storage, so that containers a job left behind are
# still removed with the job after the runner container restarts.
engine_sock=${ENGINE_SOCKET:-/run/volmgr-engine/engine.sock}
engined_state=${ENGINED_STATE:-/var/lib/containers/volmgr-engined}
mkdir -p "${engine_sock%/*}"
rm -f "$engine_sock"
volmgr-engined --socket "$engine_sock" --upstream "$sock" \
	--control-socket "${VOLMGR_CONTROL_SOCKET:-/run/volmgr/control.sock}" \
	--state-dir "$engined_state" &
engined=$!
for ((i = 0; ; i++)); do
	if ! kill -0 "$engined" 2>/dev/null; then
		echo "podman-runner: volmgr-engined exited during start-up" >&2
		kill -TERM "$service" 2>/dev/null
		exit 1
	fi
	[[ -S $engine_sock ]] && break
	if ((i == 300)); then
		echo "podman-runner: $engine_sock is not there after 30 s" >&2
		kill -TERM "$service" "$engined" 2>/dev/null
		exit 1
	fi
	sleep 0.1
done
echo "podman-runner: the jobs' engine socket at unix://$engine_sock" >&2

(($# > 0)) || set -- gitlab-runner run --config /etc/gitlab-runner/config.toml
"$@" &
main=$!

# As PID 1 this shell gets no default signal handling: forward stop signals.
trap 'kill -TERM "$main" "$engined" "$service" 2>/dev/null' TERM INT
status=0
wait -n "$service" "$engined" "$main" || status=$?
kill -TERM "$main" "$engined" "$service" 2>/dev/null || true
wait || true
echo "podman-runner: a child exited (status $status), stopping" >&2
exit "$status"
