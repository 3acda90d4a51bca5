#!/usr/bin/env bash
# bench/engine-socket.sh — what the engine socket (volmgr-engined) costs a
# job: the time it adds to each API call, to a whole `docker run`, and its
# memory under 50 concurrent clients.
#
# A private dockerd (its own data root and network namespace, --bridge=none)
# and volmgr-engined in front of it; a job container from a busybox image
# with the docker CLI and curl has both sockets: the engine socket at
# /var/run/docker.sock, dockerd's own at /direct.sock.  Timed inside it:
#   api      N calls of GET /v1.41/version and of GET /v1.41/containers/json
#            with curl, one connection each, through each socket: the
#            per-call median of 7 batches (batch wall time / N)
#   cli      `docker version` and `docker ps` (the CLI's own start-up
#            included), 30 each, through each socket: medians
#   run      `docker run --rm --network none IMAGE true`, 20 through each
#            socket, alternating: medians and their ratio
#   soak     50 clients (curl loops: version, ps, inspect of the job's own
#            container) for SOAK seconds (default 300): requests served,
#            volmgr-engined's resident memory, threads and fds sampled every
#            10 s
#
# Usage: sudo bench/engine-socket.sh [--runs N] [--quick] [--out FILE]
#   --runs N    API calls per batch (default 200)
#   --quick     smoke test: 20 calls per batch, 5 CLI calls, 3 runs, 20 s soak
#   --out FILE  also write the report to FILE
#
# VOLMGR_ENGINED defaults to build/volmgr/engined/volmgr-engined next to
# this script's directory.  Everything it makes (a scratch directory, the
# dockerd and its containerd namespace, one image, the containers, one
# volmgr-engined) is removed at exit by exact path or pid.

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=200
SOAK=${SOAK:-300}
VOLMGR_ENGINED=${VOLMGR_ENGINED:-$BENCH_DIR/../build/volmgr/engined/volmgr-engined}
parse_args "$@"
CLI_N=30 RUN_N=20
if $QUICK; then
	RUNS=20 CLI_N=5 RUN_N=3 SOAK=20
fi
bench_start docker.io busybox-static curl
[[ -x $VOLMGR_ENGINED ]] || die "volmgr-engined not found at $VOLMGR_ENGINED (build first)"

DOCKERD_PID='' ENGINED_PID='' ID=b$$
stop_pid() {
	local pid=$1 i
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid"
	for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
	wait "$pid" 2>/dev/null || true
}
engine_cleanup() {
	local c
	if [[ -n $DOCKERD_PID ]]; then
		for c in $(D ps -aq 2>/dev/null); do D rm -f "$c" >/dev/null 2>&1; done
	fi
	stop_pid "$ENGINED_PID"
	stop_pid "$DOCKERD_PID"
	rm -rf "/run/volmgr-bench-$ID"
	cleanup
}
trap engine_cleanup EXIT
D() { docker -H "unix://$SCRATCH/docker.sock" "$@"; }

log "private dockerd (own network namespace, no bridge)"
echo '{}' >"$SCRATCH/daemon.json"
unshare --net -- sh -c 'ip link set lo up && exec "$@"' netns \
	dockerd --config-file "$SCRATCH/daemon.json" --data-root "$SCRATCH/docker-root" \
	--exec-root "$SCRATCH/docker-run" --pidfile "$SCRATCH/dockerd.pid" \
	-H "unix://$SCRATCH/docker.sock" --bridge=none --iptables=false --ip-forward=false \
	--ip-masq=false --containerd-namespace "volmgr-bench-$ID" \
	--containerd-plugins-namespace "volmgr-bench-$ID-plugins" >"$SCRATCH/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for ((i = 0; i < 200; i++)); do D version >/dev/null 2>&1 && break; sleep 0.2; done
D version >/dev/null || die "the private dockerd did not start"

log "volmgr-engined"
: >"$SCRATCH/empty.conf"
"$VOLMGR_ENGINED" --socket "$SCRATCH/engine.sock" --upstream "$SCRATCH/docker.sock" \
	--control-socket "$SCRATCH/none.sock" --state-dir "/run/volmgr-bench-$ID" \
	--config "$SCRATCH/empty.conf" >"$SCRATCH/engined.log" 2>&1 &
ENGINED_PID=$!
for ((i = 0; i < 100; i++)); do [[ -S $SCRATCH/engine.sock ]] && break; sleep 0.1; done
[[ -S $SCRATCH/engine.sock ]] || die "volmgr-engined did not start: $(cat "$SCRATCH/engined.log")"

log "image: busybox, the docker CLI, curl"
root=$SCRATCH/rootfs
mkdir -p "$root"/{bin,usr/bin,etc,tmp,var/run,dev,proc,sys}
install -m 0755 "$(command -v busybox)" "$root/bin/busybox"
for a in $("$root/bin/busybox" --list); do [[ -e $root/bin/$a ]] || ln -s busybox "$root/bin/$a"; done
for b in "$(command -v docker)" "$(command -v curl)"; do
	install -D -m 0755 "$b" "$root/usr/bin/${b##*/}"
	for l in $({ ldd "$b" 2>/dev/null || true; } | grep -o '/[^ ]*'); do
		[[ -e $root$l ]] || install -D -m 0755 "$l" "$root$l"
	done
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
IMAGE=volmgr-bench-$ID
tar -C "$root" -c . | D import -c 'ENV PATH=/usr/bin:/bin' - "$IMAGE" >/dev/null
D run -d --name "job-$ID" --network none -v "$SCRATCH/engine.sock:/var/run/docker.sock" \
	-v "$SCRATCH/docker.sock:/direct.sock" "$IMAGE" sleep infinity >/dev/null
J() { D exec -i "job-$ID" sh -c "$1"; }

# Per call, milliseconds: batch wall time / N, median of 7 batches.
per_call() { # SOCKET PATH
	local t0 t1 v=() k
	for ((k = 0; k < 7; k++)); do
		t0=$EPOCHREALTIME
		J "i=0; while [ \$i -lt $RUNS ]; do curl -s -o /dev/null --unix-socket $1 http://d$2; i=\$((i+1)); done"
		t1=$EPOCHREALTIME
		v+=("$(awk -v a="$(elapsed_ms "$t0" "$t1")" -v n="$RUNS" 'BEGIN { printf "%.3f", a / n }')")
	done
	stats "${v[*]}" | cut -d' ' -f1
}

each_ms() { # N COMMAND: median wall ms of N runs of COMMAND in the job
	local t0 t1 v=() k
	for ((k = 0; k < $1; k++)); do
		t0=$EPOCHREALTIME
		J "$2" >/dev/null
		t1=$EPOCHREALTIME
		v+=("$(elapsed_ms "$t0" "$t1")")
	done
	stats "${v[*]}" | cut -d' ' -f1
}

declare -A R
log "api: $RUNS calls per batch, 7 batches, each socket"
for ep in version containers/json; do
	R[api_proxy_$ep]=$(per_call /var/run/docker.sock "/v1.41/$ep")
	R[api_direct_$ep]=$(per_call /direct.sock "/v1.41/$ep")
done
log "cli: $CLI_N each"
for c in version ps; do
	R[cli_proxy_$c]=$(each_ms "$CLI_N" "docker $c")
	R[cli_direct_$c]=$(each_ms "$CLI_N" "DOCKER_HOST=unix:///direct.sock docker $c")
done
log "run: $RUN_N each, alternating"
pv=() dv=()
for ((k = 0; k < RUN_N; k++)); do
	t0=$EPOCHREALTIME; J "docker run --rm --network none $IMAGE true"; t1=$EPOCHREALTIME
	pv+=("$(elapsed_ms "$t0" "$t1")")
	t0=$EPOCHREALTIME; J "DOCKER_HOST=unix:///direct.sock docker run --rm --network none $IMAGE true"; t1=$EPOCHREALTIME
	dv+=("$(elapsed_ms "$t0" "$t1")")
done
R[run_proxy]=$(stats "${pv[*]}" | cut -d' ' -f1)
R[run_direct]=$(stats "${dv[*]}" | cut -d' ' -f1)

log "soak: 50 clients for $SOAK s"
sample() { # -> "rss_kib threads fds"
	printf '%s %s %s\n' "$(awk '/^VmRSS:/ { print $2 }' "/proc/$ENGINED_PID/status")" \
		"$(awk '/^Threads:/ { print $2 }' "/proc/$ENGINED_PID/status")" \
		"$(ls "/proc/$ENGINED_PID/fd" | wc -l)"
}
SAMPLES=("0 $(sample)")
J "rm -f /tmp/count-*; for c in \$(seq 50); do (n=0; end=\$((\$(date +%s) + $SOAK)); \
	while [ \$(date +%s) -lt \$end ]; do \
	curl -s -o /dev/null --unix-socket /var/run/docker.sock http://d/v1.41/version; \
	curl -s -o /dev/null --unix-socket /var/run/docker.sock http://d/v1.41/containers/json; \
	curl -s -o /dev/null --unix-socket /var/run/docker.sock http://d/v1.41/containers/\$HOSTNAME/json; \
	n=\$((n+3)); done; echo \$n > /tmp/count-\$c) & done; wait" &
soak_pid=$!
t=0
while kill -0 "$soak_pid" 2>/dev/null; do
	sleep 10
	t=$((t + 10))
	SAMPLES+=("$t $(sample)")
done
wait "$soak_pid"
R[soak_requests]=$(J 'cat /tmp/count-*' | awk '{ s += $1 } END { print s }')
SAMPLES+=("end $(sample)")

report() {
	local ep c
	echo "# Engine socket (volmgr-engined) against dockerd directly"
	echo
	local model mem
	model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
	echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "- Machine: $(nproc) CPUs ($model), $mem RAM, kernel $(uname -r);" \
		"load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- Engine: docker $(D version -f '{{.Server.Version}}') (private, cgroupfs," \
		"--bridge=none); client: $(D version -f '{{.Client.Version}}'); $(curl --version | head -1 | cut -d' ' -f1-2)"
	echo
	echo "| what (median) | through volmgr-engined | dockerd directly | added |"
	echo "|---|---:|---:|---:|"
	for ep in version containers/json; do
		printf '| GET /v1.41/%s, curl (ms per call, %d per batch) | %s | %s | %s |\n' "$ep" "$RUNS" \
			"${R[api_proxy_$ep]}" "${R[api_direct_$ep]}" \
			"$(awk -v a="${R[api_proxy_$ep]}" -v b="${R[api_direct_$ep]}" 'BEGIN { printf "%.3f", a - b }')"
	done
	for c in version ps; do
		printf '| `docker %s` (ms, %d runs) | %s | %s | %s |\n' "$c" "$CLI_N" \
			"${R[cli_proxy_$c]}" "${R[cli_direct_$c]}" \
			"$(awk -v a="${R[cli_proxy_$c]}" -v b="${R[cli_direct_$c]}" 'BEGIN { printf "%.1f", a - b }')"
	done
	printf '| `docker run --rm IMAGE true` (ms, %d runs) | %s | %s | ratio %s |\n' "$RUN_N" \
		"${R[run_proxy]}" "${R[run_direct]}" \
		"$(awk -v a="${R[run_proxy]}" -v b="${R[run_direct]}" 'BEGIN { printf "%.3f", a / b }')"
	echo
	echo "Soak: 50 clients, $SOAK s, ${R[soak_requests]} requests served; volmgr-engined sampled:"
	echo
	echo "| t (s) | RSS (KiB) | threads | fds |"
	echo "|---:|---:|---:|---:|"
	local s
	for s in "${SAMPLES[@]}"; do
		read -r a b c2 d <<<"$s"
		echo "| $a | $b | $c2 | $d |"
	done
}
emit_report report
