#!/usr/bin/env bash
# bench/csi-publish.sh — how long does a Kubernetes pod wait for its
# checkout of a big repository (the Linux 6.1 tree) when volmgr-csi serves
# it as an ephemeral inline CSI volume, against `volmgr snapshot` of the
# same cache, and against what gitlab-runner's Kubernetes executor does
# today: `git clone` into the pod's emptyDir?
#
# Set-up, untimed, all on one loop-backed btrfs file system:
#   upstream   a bare repository, used through a file:// URL, with one
#              commit A = the tree, packed (git repack -a -d);
#   cache      `volmgr cache create NAME --git file://upstream` (at A);
#   volmgr-csi on a unix socket, --target-root <scratch>/kubelet/pods,
#              talking to the benchmark's volmgrd.
#
# Timed, for "a workspace at A" (wall clock):
#   csi-rpc      the NodePublishVolume RPC alone, on a fresh connection, as
#                tests/csi/kubelet.py sends it (the kubelet's request: a
#                csi-<sha256> volume id, target .../volumes/kubernetes.io~csi/
#                ws/mount, mount capability, SINGLE_NODE_WRITER, the pod info
#                keys and source=cache:NAME): a btrfs snapshot of the cache
#                (volmgrd) and a bind mount onto the target (volmgr-csi)
#   csi-kubelet  the kubelet's whole SetUpAt sequence around it: MkdirAll,
#                NodeGetCapabilities, vol_data.json, NodeGetCapabilities,
#                NodePublishVolume, each RPC on a connection of its own
#                (measured inside the python process: its start-up, about
#                0.2 s of importing grpc, is not something a kubelet pays)
#   snapshot     `volmgr snapshot cache:NAME VOL` (the CLI, a process)
#   clone        `git clone -q file://upstream DIR` into a fresh directory
#                (the emptyDir of gitlab-runner's Kubernetes executor; one
#                commit, so --depth would fetch the same objects)
# Untimed after each run: removing the result (NodeUnpublishVolume +
# removeMountDir; volmgr rm; rm -rf), `btrfs filesystem sync` and
# `btrfs subvolume sync` (the cleaner drops the deleted subvolume now, not
# in the next timed run), then syncfs.
#
# Usage: sudo bench/csi-publish.sh [--runs N] [--quick] [--out FILE]
#   --runs N    timed runs per method (default 7)
#   --quick     smoke test on a small tree (Documentation/admin-guide and
#               Documentation/process of the kernel tree), under a minute
#   --out FILE  also write the report to FILE
#
# The binaries default to build/volmgr/{daemon/volmgrd,cli/volmgr,csi/volmgr-csi}
# next to this script's directory; set VOLMGRD / VOLMGR / VOLMGR_CSI to use
# others.  Needs /usr/bin/python3 with python3-grpcio and python3-protobuf,
# and protoc (protobuf-compiler), installed with apt-get when missing.
#
# Everything it makes (a scratch directory, a sparse image, one loop device,
# one mount, the targets' bind mounts, one volmgrd, one volmgr-csi) is
# removed at exit by its exact path, device or pid.  Packages it installs
# with apt-get stay installed.

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=bench/gitrepo.sh
source "$(dirname "${BASH_SOURCE[0]}")/gitrepo.sh"

VOLMGR_CSI=${VOLMGR_CSI:-$BENCH_DIR/../build/volmgr/csi/volmgr-csi}
KUBELET_PY=$BENCH_DIR/../tests/csi/kubelet.py
PROTO_DIR=$BENCH_DIR/../volmgr/csi
PYTHON=/usr/bin/python3

QUICK_DIRS=(Documentation/admin-guide Documentation/process) # 417 files
GIT_USER=nobody
CACHE=kernel

RUNS=7
METHODS=(csi snapshot clone)
CSI_PID=''
# shellcheck disable=SC2016 # backquotes are Markdown, not expansions
declare -A LABEL=(
	[csi-rpc]='CSI NodePublishVolume RPC (volmgr-csi: snapshot + bind mount)'
	[csi-kubelet]='kubelet SetUpAt: 2× NodeGetCapabilities + vol_data.json + NodePublishVolume'
	[csi-process]='the same, timed around the python process (+ its start-up)'
	[snapshot]='`volmgr snapshot cache:NAME VOL` (CLI)'
	[clone]='`git clone file://… DIR` (emptyDir, as the Kubernetes executor does)'
)
ROWS=(csi-rpc csi-kubelet csi-process snapshot clone)

# ---------------------------------------------------------------- cleanup

# volmgr-csi and the bind mounts on the targets go before lib.sh's cleanup
# (volmgrd, the pool's mount, the loop device).
csi_cleanup() {
	local status=$? i mp
	set +e
	[[ -z $CSI_PID ]] || bench_stop_child "$CSI_PID" 100
	if [[ -n $SCRATCH && -d $SCRATCH/kubelet ]]; then
		# Deepest first; only what lies under our own kubelet root.
		awk '{ print $5 }' /proc/self/mountinfo | tac | while IFS= read -r mp; do
			[[ $mp == "$SCRATCH/kubelet/"* ]] && umount "$mp"
		done
	fi
	(exit "$status")
	cleanup
}

# ----------------------------------------------------------------- set-up

start_csi() {
	CSI_SOCK=$SCRATCH/csi/csi.sock
	KROOT=$SCRATCH/kubelet
	mkdir -p "$SCRATCH/csi" "$KROOT/pods"
	"$VOLMGR_CSI" --endpoint "unix://$CSI_SOCK" --node-id bench-node \
		--control-socket "$CTL" --target-root "$KROOT/pods" >"$SCRATCH/volmgr-csi.log" 2>&1 &
	CSI_PID=$!
	local i
	for ((i = 0; i < 100; i++)); do
		kill -0 "$CSI_PID" 2>/dev/null || die "volmgr-csi exited during start-up: $(tail -n 5 "$SCRATCH/volmgr-csi.log")"
		kubelet probe >/dev/null 2>&1 && {
			log "volmgr-csi ready (pid $CSI_PID)"
			return 0
		}
		sleep 0.1
	done
	die "volmgr-csi not ready after 10 s"
}

kubelet() { # ACTION [ARG...]
	"$PYTHON" "$KUBELET_PY" "$1" --sock "$CSI_SOCK" --root "$KROOT" --node bench-node \
		--proto-dir "$PROTO_DIR" "${@:2}"
}

make_cache() {
	local t0 out
	t0=$EPOCHREALTIME
	out=$("$VOLMGR" --socket "$CTL" cache create "$CACHE" --git "$URL" --branch main)
	SETUP[cache]=$(elapsed_ms "$t0" "$EPOCHREALTIME")
	log "volmgr: $out ($(ms_to_s "${SETUP[cache]}") s)"
	CACHE_DIR=$POOL/caches/$CACHE
	[[ $(gck -C "$CACHE_DIR" rev-parse HEAD) == "$A" ]] || die "the cache is not at A"
	A_FILES=$(git -C "$UP" ls-tree -r "$A" | wc -l)
}

# ---------------------------------------------------------------- methods

# The workspace at PATH is A, whole (the count of its files) and clean.
check_workspace() { # METHOD PATH
	local m=$1 path=$2 n
	[[ $(gck -C "$path" rev-parse HEAD) == "$A" ]] || die "$m: HEAD in $path is not A"
	n=$(count_files "$path")
	[[ $n == "$A_FILES" ]] || die "$m: $n files in $path, A has $A_FILES"
	[[ -z $(gck -C "$path" status --porcelain --untracked-files=no | head -5) ]] ||
		die "$m: $path is not clean"
}

# One run of METHOD (timed), its check when asked, its removal (untimed).
# Sets LAST (METHOD=MS pairs).
one_run() { # METHOD RUN CHECK
	local m=$1 run=$2 t0 t1 out path code
	case $m in
	csi)
		local uid=bench-$run-$RANDOM$RANDOM
		t0=$EPOCHREALTIME
		out=$(kubelet publish --uid "$uid" --vol ws --attr "source=cache:$CACHE") || true
		t1=$EPOCHREALTIME
		code=$(jq -r .code <<<"$out")
		[[ $code == 0 ]] || die "csi: publish failed: $out"
		path=$(jq -r .target <<<"$out")
		LAST="csi-rpc=$(jq -r '.seconds * 1000000 | floor / 1000' <<<"$out")"
		LAST+=" csi-kubelet=$(jq -r '.total * 1000000 | floor / 1000' <<<"$out")"
		LAST+=" csi-process=$(elapsed_ms "$t0" "$t1")"
		[[ -n $(awk -v p="$path" '$5 == p' /proc/self/mountinfo) ]] || die "csi: $path is not a mount point"
		if $3; then check_workspace csi "$path"; fi
		out=$(kubelet unpublish --uid "$uid" --vol ws) || die "csi: unpublish failed: $out"
		[[ ! -e $path ]] || die "csi: $path still there after NodeUnpublishVolume"
		rmdir "$KROOT/pods/$uid/volumes/kubernetes.io~csi" "$KROOT/pods/$uid/volumes" "$KROOT/pods/$uid"
		;;
	snapshot)
		t0=$EPOCHREALTIME
		"$VOLMGR" --socket "$CTL" snapshot "cache:$CACHE" "snap-$run" >>"$SCRATCH/runs.log" 2>&1 ||
			die "volmgr snapshot failed: $(tail -n 5 "$SCRATCH/runs.log")"
		t1=$EPOCHREALTIME
		LAST="snapshot=$(elapsed_ms "$t0" "$t1")"
		if $3; then check_workspace snapshot "$POOL/volumes/snap-$run"; fi
		"$VOLMGR" --socket "$CTL" rm "snap-$run" >>"$SCRATCH/runs.log"
		;;
	clone)
		path=$WORK/out/clone-$run
		t0=$EPOCHREALTIME
		git clone -q "$URL" "$path" >>"$SCRATCH/runs.log" 2>&1 || die "git clone failed"
		t1=$EPOCHREALTIME
		LAST="clone=$(elapsed_ms "$t0" "$t1")"
		if $3; then check_workspace clone "$path"; fi
		rm -rf --one-file-system "$path"
		;;
	esac
	btrfs filesystem sync "$POOL" >/dev/null
	btrfs subvolume sync "$POOL" >/dev/null
	sync -f "$WORK"
}

record() { # "ROW=MS ..." -> TIMES
	local kv
	for kv in $1; do
		TIMES[${kv%%=*}]+="${kv#*=} "
	done
}

measure() {
	local m i
	for m in "${METHODS[@]}"; do
		one_run "$m" warmup true
		WARM+="$LAST "
	done
	log "warm-up done, workspaces checked: $WARM"
	for ((i = 1; i <= RUNS; i++)); do
		local line=''
		for m in "${METHODS[@]}"; do
			one_run "$m" "$i" false
			record "$LAST"
			line+="$LAST "
		done
		log "run $i/$RUNS: $line"
	done
	[[ -z $("$VOLMGR" --socket "$CTL" ls -q) ]] || die "volumes left: $("$VOLMGR" --socket "$CTL" ls -q)"
}

# ----------------------------------------------------------------- report

# shellcheck disable=SC2016 # backquotes are Markdown, not expansions
report() {
	local r med min max base ratio
	echo "## A pod's checkout: volmgr-csi NodePublishVolume vs volmgr snapshot vs git clone$($QUICK && echo ' (--quick smoke test, small tree only)')"
	echo
	machine_info "$(git --version), $("$VOLMGR_CSI" --version 2>&1 | head -n1), python3-grpcio $("$PYTHON" -c 'import grpc; print(grpc.__version__)')"
	echo "- Tree: **$TREE_NAME**, $TREE_DESC."
	echo "- Upstream: a bare repository on the benchmark's btrfs, used as \`file://\`:" \
		"one commit A = the tree ($UP_DESC after \`git repack -a -d\`; add+commit took" \
		"$(ms_to_s "${SETUP[commit]}") s, the repack $(ms_to_s "${SETUP[repack]}") s)."
	echo "- The volmgr cache: \`volmgr cache create $CACHE --git file://… --branch main\`" \
		"($(ms_to_s "${SETUP[cache]}") s; \`[git] user = $GIT_USER\`). volmgr-csi on a unix socket," \
		"\`--target-root\` on the root file system (the targets are bind mounts of the" \
		"volumes in the pool); the client is tests/csi/kubelet.py (python3-grpcio: the" \
		"kubelet's requests, a new connection per RPC)."
	echo "- Method: $RUNS timed runs per method after one untimed warm-up run (which also" \
		"checks the result: HEAD = A, all $A_FILES files, \`git status\` clean; for CSI the" \
		"target is a mount point and is gone after NodeUnpublishVolume), methods in" \
		"round-robin order. Untimed after each run: removal, \`btrfs filesystem sync\`," \
		"\`btrfs subvolume sync\`, \`sync -f\`. Warm page cache, nothing dropped."
	echo
	echo "| Tree | Method | Median (ms) | Min (ms) | Max (ms) | Median / CSI RPC median |"
	echo "|---|---|---:|---:|---:|---:|"
	read -r base _ _ < <(stats "${TIMES[csi-rpc]}")
	for r in "${ROWS[@]}"; do
		read -r med min max < <(stats "${TIMES[$r]}")
		ratio=$(awk -v a="$med" -v b="$base" 'BEGIN { printf "%.1f", a / b }')
		printf '| %s (%s files) | %s | %.1f | %.1f | %.1f | %s× |\n' \
			"$TREE_NAME" "$A_FILES" "${LABEL[$r]}" "$med" "$min" "$max" "$ratio"
	done
	echo
	read -r med _ _ < <(stats "${TIMES[clone]}")
	local snap
	read -r snap _ _ < <(stats "${TIMES[snapshot]}")
	echo "Ratios of medians: git clone / CSI RPC $(awk -v a="$med" -v b="$base" 'BEGIN { printf "%.1f", a / b }')×;" \
		"git clone / volmgr snapshot $(awk -v a="$med" -v b="$snap" 'BEGIN { printf "%.1f", a / b }')×;" \
		"CSI RPC / volmgr snapshot $(awk -v a="$base" -v b="$snap" 'BEGIN { printf "%.2f", a / b }')×."
	echo
	echo "volmgrd's own time for the volume.create requests (its log; the snapshot of the cache and the record):"
	read -r med min max < <(stats "$(daemon_times 'csi-[0-9a-f]+')")
	printf -- '- from volmgr-csi: median %.1f ms (min %.1f, max %.1f)\n' "$med" "$min" "$max"
	read -r med min max < <(stats "$(daemon_times 'snap-[0-9]+')")
	printf -- '- from the CLI: median %.1f ms (min %.1f, max %.1f)\n' "$med" "$min" "$max"
	echo
	echo "Raw times (ms, in run order; warm-up in parentheses: $WARM):"
	echo
	for r in "${ROWS[@]}"; do
		echo "- $r: ${TIMES[$r]% }"
	done
}

# ------------------------------------------------------------------- main

main() {
	parse_args "$@"
	[[ -x $VOLMGR_CSI ]] || die "volmgr-csi not found at $VOLMGR_CSI (build first, or set VOLMGR_CSI)"
	VOLMGR_CSI=$(realpath "$VOLMGR_CSI")
	bench_start linux-source-6.1 git btrfs-progs xz-utils jq util-linux coreutils \
		python3-grpcio python3-protobuf protobuf-compiler
	trap csi_cleanup EXIT
	umask 022
	setup_git_env

	declare -gA SETUP=() TIMES=()
	WARM=''
	if $QUICK; then make_btrfs 2G; else make_btrfs 16G; fi
	chmod 0711 "$SCRATCH"
	printf '[git]\nuser = %s\n' "$GIT_USER" >"$SCRATCH/volmgr.conf"
	start_daemon --config "$SCRATCH/volmgr.conf"
	extract_tree
	make_upstream
	make_cache
	start_csi
	measure
	log "done"

	emit_report report
}

main "$@"
