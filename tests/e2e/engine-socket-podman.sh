#!/usr/bin/env bash
# engine-socket.sh with a private Podman API service as the upstream: the
# same job, the same docker CLI, Podman's Docker-compatible API behind.
VT_ENGINE_UNDER_TEST=podman exec "$(dirname "$(readlink -f "$0")")/engine-socket.sh"
