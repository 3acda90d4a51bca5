#!/usr/bin/env bash
# volmgr-csi, the CSI node plugin, played by a kubelet: the real plugin in
# front of the real volmgrd on a loop-backed btrfs pool, called over its
# unix socket by tests/csi/kubelet.py (python3-grpcio, an independent gRPC
# implementation) exactly as the kubelet's pkg/volume/csi does for an
# ephemeral inline volume: registration, pod start (NodeGetCapabilities
# twice, vol_data.json, NodePublishVolume), stats, pod deletion
# (NodeUnpublishVolume, then removeMountDir), retries, concurrency, client
# cancellation, every refusal of the interface, a catalog of hostile
# volume contexts, transport abuse, and restarts of the plugin and of
# volmgrd between a publish and its unpublish.  The scenarios are in
# tests/csi/scenarios.py; this script sets up and restarts things.
here=$(dirname "$(readlink -f "$0")")
# shellcheck source=../lib/common.sh
. "$here/../lib/common.sh"

VOLMGR_CSI=${VOLMGR_CSI:-./build/volmgr/csi/volmgr-csi}
PYTHON=${VT_PYTHON:-/usr/bin/python3}

vt_init csi-node
vt_require_root
vt_require_cmd btrfs jq git protoc "$PYTHON"
VOLMGR_CSI=$(realpath -m "$VOLMGR_CSI")
[[ -x $VOLMGR_CSI ]] || vt_fail "volmgr-csi not found at $VOLMGR_CSI (build first, or set VOLMGR_CSI)"
"$PYTHON" -c 'import grpc, google.protobuf' 2>/dev/null ||
	vt_skip "needs python3-grpcio and python3-protobuf"
srcdir=${VT_SRCDIR:-$here/..}
csi_dir=$srcdir/csi
proto_dir=$srcdir/../volmgr/csi
[[ -f $proto_dir/csi-node.proto ]] || vt_fail "no $proto_dir/csi-node.proto"

# git runs as "nobody" in volmgrd: it must reach the test's repository.
chmod 0711 "$VT_TMP"
pool=$(vt_make_pool btrfs 2G)/pool
# The [seed] rule of deploy/kubernetes/daemonset.yaml: a pod without a
# source starts from cache project-ID when its name is gitlab-runner's.
# A volume:{x} rule too: a pod's name must never pick a volume with it.
printf '[git]\nuser = nobody\ntimeout = 60\n[seed]\nrunner-*-project-{id}-concurrent-* = cache:project-{id}\ncsivictim-{x} = volume:{x}\n' \
	>"$VT_TMP/volmgr.conf"
VT_DAEMON_CONFIG=$VT_TMP/volmgr.conf vt_start_daemon "$pool"

# ------------------------------------------------------------ the cache

vt_step "a cache from a small git repository"
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
up=$VT_TMP/upstream.git work=$VT_TMP/work
git init -q --bare -b main "$up"
git init -q -b main "$work"
readme="volmgr csi test: a checkout served to a pod"
printf '%s\n' "$readme" >"$work/README"
mkdir -p "$work/src/deep/er"
for i in $(seq 1 50); do echo "file $i" >"$work/src/f$i.txt"; done
echo deep >"$work/src/deep/er/file"
printf '#!/bin/sh\necho built\n' >"$work/build.sh"
chmod +x "$work/build.sh"
ln -s README "$work/link-to-readme"
gitc() { git -C "$work" -c user.name=t -c user.email=t@example.org "$@"; }
gitc add -A
gitc commit -qm v1
gitc tag v1
tag_commit=$(git -C "$work" rev-parse HEAD)
echo two >"$work/second"
gitc add -A
gitc commit -qm two
gitc push -q "$up" main v1
commit=$(git -C "$work" rev-parse HEAD)
"$VOLMGR" cache create proj --git "file://$up" --branch main >/dev/null
"$VOLMGR" cache create project-42 --git "file://$up" --branch main >/dev/null
vt_assert_eq "$commit" "$("$VOLMGR" cache inspect proj | jq -r .git.commit)" "cache commit"

# -------------------------------------------------------------- the plugin

kroot=$VT_TMP/kubelet # the kubelet's --root-dir
mkdir -p "$VT_TMP/csi" "$kroot/pods" "$VT_TMP/outside"
CSI_SOCK=$VT_TMP/csi/csi.sock
CSI_PID=
vt_log_file "$VT_TMP/volmgr-csi.log"

csi_alive() { [[ -n $CSI_PID ]] && kill -0 "$CSI_PID" 2>/dev/null; }
csi_probe() {
	[[ -S $CSI_SOCK ]] && "$PYTHON" "$csi_dir/kubelet.py" probe --sock "$CSI_SOCK" \
		--root "$kroot" --proto-dir "$proto_dir" >/dev/null 2>&1
}

# start_csi [env]: start volmgr-csi (with --endpoint, or CSI_ENDPOINT when
# asked) and wait until it answers Probe.
start_csi() {
	local -a endpoint=(--endpoint "unix://$CSI_SOCK") env=()
	if [[ ${1:-} == env ]]; then
		endpoint=()
		env=(env "CSI_ENDPOINT=unix://$CSI_SOCK")
	fi
	printf -- '--- volmgr-csi started %(%T)T\n' -1 >>"$VT_TMP/volmgr-csi.log"
	[[ -z ${CSI_FAULT:-} ]] || env=(env "VOLMGR_FAULT=$CSI_FAULT" "${env[@]}")
	[[ -z ${CSI_SWEEP:-} ]] || endpoint+=(--sweep-interval "$CSI_SWEEP")
	[[ -z ${CSI_VTIMEOUT:-} ]] || endpoint+=(--volmgrd-timeout "$CSI_VTIMEOUT")
	"${env[@]}" "$VOLMGR_CSI" "${endpoint[@]}" --node-id node-a \
		--control-socket "$VT_CONTROL_SOCK" --target-root "$kroot/pods" \
		>>"$VT_TMP/volmgr-csi.log" 2>&1 &
	CSI_PID=$!
	vt_wait_until -t 30 -p "$CSI_PID" "volmgr-csi (pid $CSI_PID) answers Probe" csi_probe
	vt_log "volmgr-csi ready (pid $CSI_PID)"
}

# stop_csi: SIGTERM to our own volmgr-csi; it must exit 0 and remove its socket.
stop_csi() {
	local status=0 i
	csi_alive || return 0
	kill -TERM "$CSI_PID"
	for ((i = 0; i < 300; i++)); do
		csi_alive || break
		sleep 0.1
	done
	if csi_alive; then
		printf 'WARN: volmgr-csi ignored SIGTERM for 30 s, killing it\n' >&2
		kill -KILL "$CSI_PID"
	fi
	wait "$CSI_PID" 2>/dev/null || status=$?
	CSI_PID=
	if [[ $status != 0 ]]; then
		printf 'volmgr-csi exited %s on SIGTERM\n' "$status" >&2
		return 1
	fi
	if [[ -e $CSI_SOCK ]]; then
		printf 'volmgr-csi left its socket %s behind\n' "$CSI_SOCK" >&2
		return 1
	fi
}

# Mounts the plugin made for the test's pods and did not remove (a failed
# run): unmount them, deepest first, before volmgrd and the pool go.
umount_pods() { vt__umount_under "$kroot"; }
umount_outside() { vt__umount_under "$VT_TMP/outside"; }
vt_on_exit umount_outside
vt_on_exit umount_pods
vt_on_exit stop_csi

vt_step "volmgr-csi's command line"
vt_assert_status 0 "$VOLMGR_CSI" --version
vt_assert_status 0 "$VOLMGR_CSI" --help
# refused WHAT ARG...: volmgr-csi must exit non-zero at once (not run).
refused() {
	local what=$1 out status=0
	shift
	out=$(timeout 10 "$VOLMGR_CSI" "$@" 2>&1 </dev/null) || status=$?
	[[ $status != 0 && $status != 124 ]] ||
		vt_fail "volmgr-csi $*: expected a refusal, got exit $status: $out"
	vt_log "ok: $what -> exit $status: ${out%%$'\n'*}"
}
refused "no endpoint" --node-id x
refused "a tcp endpoint" --endpoint tcp://127.0.0.1:1 --node-id x
refused "no --node-id" --endpoint "unix://$CSI_SOCK"
refused "an unknown option" --endpoint "unix://$CSI_SOCK" --node-id x --bogus
refused "--max-connections 0" --endpoint "unix://$CSI_SOCK" --node-id x --max-connections 0
[[ ! -e $CSI_SOCK ]] || vt_fail "a refused start left $CSI_SOCK"

start_csi

export CSI_SOCK KUBELET_ROOT=$kroot CSI_CACHE=proj CSI_CACHE_COMMIT=$commit
export CSI_CACHE_TAG_COMMIT=$tag_commit CSI_CACHE_README=$readme$'\n'
export CSI_DRIVER=volmgr.csi.volmgr.io CSI_NODE=node-a CSI_OUTSIDE=$VT_TMP/outside
export CSI_PROTO_DIR=$proto_dir

# Every phase runs, even after one failed (to see all failures); the test
# fails at the end if any did.
failed_phases=()
phase() {
	vt_step "scenario: $*"
	if ! "$PYTHON" "$csi_dir/scenarios.py" "$@"; then
		failed_phases+=("$*")
		vt_log "phase '$*' FAILED"
	fi
	[[ $1 == @(term-during|crash-pre|crash-unpublish) ]] || csi_alive || vt_fail "volmgr-csi (pid $CSI_PID) died during phase '$*'"
	[[ $1 == daemon-down ]] || vt__daemon_alive || vt_fail "volmgrd died during phase '$*'"
}

phase basic

vt_step "the kubelet's own transport: grpc-go, dialled as csi_client.go dials"
# tests/csi/kubelet-go: Debian's grpc-go (golang-google-grpc-dev), built
# here in GOPATH mode from /usr/share/gocode (no network).
# Without them only this step is skipped (on CI that is a failure).
if ! command -v go >/dev/null || [[ ! -d /usr/share/gocode/src/google.golang.org/grpc ]]; then
	[[ ${CI:-} != true ]] ||
		vt_fail "would skip kubelet-go, but nothing may skip on CI: needs golang-go, golang-google-grpc-dev, golang-google-protobuf-dev"
	vt_log "SKIPPED: kubelet-go needs golang-go, golang-google-grpc-dev and golang-google-protobuf-dev"
else
	(cd "$csi_dir/kubelet-go" && GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= \
		GOCACHE="$VT_TMP/gocache" go build -o "$VT_TMP/kubelet-go" main.go) ||
		vt_fail "tests/csi/kubelet-go does not build"
	if ! "$VT_TMP/kubelet-go" -sock "$CSI_SOCK" -root "$kroot" -source cache:proj \
		-readme "$readme"$'\n'; then
		failed_phases+=("kubelet-go")
		vt_log "phase 'kubelet-go' FAILED"
	fi
fi

phase errors
phase catalog
phase transport
phase concurrent
phase cancel

vt_step "restart volmgr-csi between a publish and its unpublish"
phase restart-pre csi
stop_csi
vt_log "ok: volmgr-csi exited 0 on SIGTERM and removed its socket"
start_csi env
vt_log "ok: volmgr-csi started again, from CSI_ENDPOINT"
phase restart-post csi

vt_step "SIGTERM to volmgr-csi while publishes are in flight"
# The scenario sends the SIGTERM itself, to the pid given.
export CSI_PID
phase term-during
term_status=0
wait "$CSI_PID" || term_status=$?
CSI_PID=
[[ $term_status == 0 ]] || vt_fail "volmgr-csi exited $term_status on SIGTERM with calls in flight"
vt_log "ok: volmgr-csi exited 0 on SIGTERM with calls in flight"
[[ ! -e $CSI_SOCK ]] || vt_fail "volmgr-csi left its socket behind"
start_csi
phase term-after

vt_step "pods without a source: volmgrd's [seed] rules by the pod's name"
phase seed

# crashed POINT: wait for our volmgr-csi, killed by its fault point.
crashed() {
	local status=0
	wait "$CSI_PID" || status=$?
	CSI_PID=
	[[ $status != 0 ]] || vt_fail "volmgr-csi did not stop at fault point $1"
	vt_log "ok: volmgr-csi died at $1 (exit $status)"
	rm -f "$CSI_SOCK" # a crash leaves it; the next start replaces it anyway
}
for point in csi-publish-created csi-publish-mounted; do
	vt_step "volmgr-csi dies at $point; restarted, the kubelet's retry converges"
	stop_csi
	CSI_FAULT=$point start_csi
	phase crash-pre "$point"
	crashed "$point"
	start_csi
	phase crash-post "$point"
done
vt_step "volmgr-csi dies at csi-unpublish-unmounted; restarted, the retry converges"
phase crash-publish csi-unpublish-unmounted
stop_csi
CSI_FAULT=csi-unpublish-unmounted start_csi
phase crash-unpublish csi-unpublish-unmounted
crashed csi-unpublish-unmounted
start_csi
phase crash-post csi-unpublish-unmounted

vt_step "the sweep (every 500 ms here): volumes whose target is gone"
stop_csi
CSI_SWEEP=500 start_csi
phase sweep
stop_csi
start_csi

vt_step "restart volmgrd between a publish and its unpublish"
phase restart-pre volmgrd
vt_restart_daemon
phase restart-post volmgrd

vt_step "volmgrd stopped: Probe and publish say UNAVAILABLE; torn down once it is back"
vt__stop_daemon
phase daemon-down stopped
vt__spawn_daemon
vt__wait_daemon
phase daemon-up stopped

vt_step "volmgrd killed (its socket left behind): the same"
vt_kill_daemon
phase daemon-down killed
vt__spawn_daemon
vt__wait_daemon
phase daemon-up killed

vt_step "volmgrd slower than --volmgrd-timeout: DEADLINE_EXCEEDED, the retry takes the volume"
# volmgrd holds its next volume.create (once the test arms the point)
# until the test lets it go; volmgr-csi gives up on volmgrd after 2 s.
mkdir "$VT_TMP/pause"
export CSI_PAUSE_DIR=$VT_TMP/pause CSI_VOLMGRD_LOG=$VT_TMP/volmgrd.log
VOLMGR_FAULT_PAUSE="+volume.create:$VT_TMP/pause" vt_restart_daemon
stop_csi
CSI_VTIMEOUT=2000 start_csi
phase deadline
stop_csi
vt_restart_daemon
start_csi

vt_step "the end: nothing left"
left=$("$VOLMGR" ls -q)
[[ -z $left ]] || vt_fail "volumes left: $left"
vt_log "ok: no volume left"
[[ -z $(vt__mounted_under "$kroot") ]] || vt_fail "mounts left: $(vt__mounted_under "$kroot")"
vt_log "ok: no mount left under the kubelet's root"
left=$(find "$kroot/pods" -mindepth 1 -maxdepth 1)
[[ -z $left ]] || vt_log "note: pod directories left (the kubelet's to remove): $left"
stop_csi
vt_log "ok: volmgr-csi exited 0 on SIGTERM and removed its socket"

((${#failed_phases[@]} == 0)) || vt_fail "phases with failed checks: ${failed_phases[*]}"
