#!/bin/bash
# Entrypoint of the runner container (run-runner.sh mounts it at
# /usr/local/bin/podman-runner-entrypoint): start the inner podman's API
# service, wait until it answers, then run COMMAND (default: gitlab-runner
# run).  If either of the two exits, stop the other and exit with its
# status, so that a restart policy (or the systemd unit running the
# container) starts the pair again.
#
# An image that has systemd as its init (like pipglr's) can use
# podman.socket and a gitlab-runner unit instead; what matters is that the
# API socket is at the path config.toml's `host` names.
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

(($# > 0)) || set -- gitlab-runner run --config /etc/gitlab-runner/config.toml
"$@" &
main=$!

# As PID 1 this shell gets no default signal handling: forward stop signals.
trap 'kill -TERM "$main" "$service" 2>/dev/null' TERM INT
status=0
wait -n "$service" "$main" || status=$?
kill -TERM "$main" "$service" 2>/dev/null || true
wait || true
echo "podman-runner: a child exited (status $status), stopping" >&2
exit "$status"
