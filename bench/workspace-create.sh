#!/usr/bin/env bash
# bench/workspace-create.sh — how long does it take to give one CI job its
# own writable copy of a source tree?
#
# It compares, on one loop-backed btrfs file system:
#   snapshot   `volmgr snapshot cache:NAME VOL` through the CLI (the whole
#              CLI process: connect, request, btrfs snapshot, record, reply)
#   cp-auto    `cp -a SRC DST`; coreutils >= 9.0 defaults to --reflink=auto,
#              so on btrfs this clones extents instead of copying data
#   cp-never   `cp -a --reflink=never SRC DST`: a real data copy
#   worktree   `git worktree add --detach DIR HEAD` from a repository that
#              holds the tree as one commit
# for the Linux 6.1 source tree (linux-source-6.1, ~79k files) and for a
# subset of it with a tenth of the files.  Only the creation is timed;
# removing the result (volmgr rm, rm -rf, git worktree remove) is not.
#
# With --scale it measures something else: whether `volmgr snapshot` stays
# O(1) with quotas on as the pool fills up.  For each quota mode (btrfs
# simple quotas, and full qgroup accounting for comparison) it starts on an
# empty pool with one small cache, then fills the pool with volumes
# (snapshots of that cache, as CI jobs would make them) and, with 0, 500,
# 1,000 and 2,000 volumes in it, times RUNS snapshots (through the CLI,
# and volmgrd's own time from its log) and as many raw `btrfs subvolume
# snapshot`s of the cache, each removed again untimed.  It needs no kernel
# tarball.  SCALE_POINTS="0 50 100" (the volume counts) makes a quick run.
#
# Usage: sudo bench/workspace-create.sh [--runs N] [--quick] [--scale] [--out FILE]
#   --runs N    timed runs per tree and method (default 7)
#   --quick     smoke test: two small trees (Documentation/admin-guide and
#               Documentation/process of the kernel tree), a few seconds
#   --scale     snapshot time against the number of volumes, per quota mode
#   --out FILE  also write the report to FILE
#
# The volmgr binaries default to build/volmgr/{daemon/volmgrd,cli/volmgr} next to this
# script's directory; set VOLMGRD / VOLMGR to use others.
#
# Everything it makes (a scratch directory, a sparse image, one loop device,
# one mount, one volmgrd) is removed at exit by its exact path, device or
# pid.  Packages it installs with apt-get stay installed.

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The "tenth" tree: these top-level directories of the kernel tree hold
# 7,880 of its 78,635 non-directory entries (10.0 %) and 142 of its 1,299 MB
# (10.9 %), so it is ten times smaller in files and in bytes alike.
TENTH_DIRS=(fs kernel lib mm net sound)
# The --quick trees (near the start of the tarball, so tar stops early).
QUICK_BIG=Documentation/admin-guide # 376 files
QUICK_SMALL=Documentation/process    # 41 files

RUNS=7
METHODS=(snapshot cp-auto cp-never worktree)
# shellcheck disable=SC2016 # backquotes are Markdown, not expansions
declare -A LABEL=(
	[snapshot]='`volmgr snapshot cache:NAME VOL` (CLI)'
	[cp-auto]='`cp -a` (default --reflink=auto: clones extents)'
	[cp-never]='`cp -a --reflink=never` (copies the data)'
	[worktree]='`git worktree add --detach DIR HEAD`'
)

# ---------------------------------------------------------------- the trees

# TREES: short names, in order big then small.  src-NAME is the plain
# directory (cp's source and the commit's content); the cache and the git
# repository are made from it.
prepare_trees() {
	if $QUICK; then
		TREES=(docs-admin docs-process)
		log "extracting $QUICK_BIG and $QUICK_SMALL"
		# --occurrence: stop reading the tarball once both are extracted.
		tar -xJf "$TARBALL" -C "$WORK" --occurrence=1 \
			"$TOP/$QUICK_BIG" "$TOP/$QUICK_SMALL"
		mv "$WORK/$TOP/$QUICK_BIG" "$WORK/src-docs-admin"
		mv "$WORK/$TOP/$QUICK_SMALL" "$WORK/src-docs-process"
		rm -rf "${WORK:?}/$TOP"
		DESC[docs-admin]="$TOP/$QUICK_BIG"
		DESC[docs-process]="$TOP/$QUICK_SMALL"
	else
		TREES=(kernel tenth)
		log "extracting $TARBALL"
		tar -xJf "$TARBALL" -C "$WORK"
		mv "$WORK/$TOP" "$WORK/src-kernel"
		log "making the tenth tree: ${TENTH_DIRS[*]}"
		mkdir "$WORK/src-tenth"
		# A real copy, so that the two trees share no extents.
		local d
		for d in "${TENTH_DIRS[@]}"; do
			cp -a --reflink=never "$WORK/src-kernel/$d" "$WORK/src-tenth/"
		done
		DESC[kernel]="all of $TOP"
		DESC[tenth]="$TOP/{$(IFS=,; echo "${TENTH_DIRS[*]}")} only"
	fi
	local t
	for t in "${TREES[@]}"; do
		FILES[$t]=$(count_entries "$WORK/src-$t")
		DESC[$t]+=": ${FILES[$t]} files and symlinks in $(find "$WORK/src-$t" -type d | wc -l) directories, $(du -sb "$WORK/src-$t" | awk '{printf "%.0f", $1 / 1e6}') MB"
		log "tree $t: ${DESC[$t]}"
	done
}

# Files, symlinks and other non-directories below DIR (but not a worktree's
# .git file), to check that each method produced the whole tree.
count_entries() {
	find "$1" -mindepth 1 ! -type d ! -path "$1/.git" | wc -l
}

import_caches() {
	local t t0
	for t in "${TREES[@]}"; do
		t0=$EPOCHREALTIME
		"$VOLMGR" --socket "$CTL" cache import "$t" "$WORK/src-$t" >"$SCRATCH/import-$t.out"
		IMPORT_S[$t]=$(elapsed_ms "$t0" "$EPOCHREALTIME" | awk '{printf "%.2f", $1 / 1000}')
		log "cache $t imported in ${IMPORT_S[$t]} s"
	done
}

# A bare repository per tree with the tree as its one commit (loose objects,
# no repack).  Git runs without the system/global configuration so that
# nothing on this machine changes what it does.
make_git_repos() {
	export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
	export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@localhost
	export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@localhost
	local t repo
	for t in "${TREES[@]}"; do
		repo=$WORK/repo-$t.git
		git init -q --bare "$repo"
		git -C "$repo" config gc.auto 0 # no background gc during the runs
		# -f: the tree's own .gitignore files must not leave files out.
		git --git-dir="$repo" --work-tree="$WORK/src-$t" add -A -f
		git --git-dir="$repo" --work-tree="$WORK/src-$t" commit -q -m "$t"
		log "git repository for $t: $(git -C "$repo" ls-tree -r HEAD | wc -l) paths in HEAD"
	done
}

# ---------------------------------------------------------------- methods

# create_METHOD TREE DEST makes the workspace (the timed part);
# destroy_METHOD TREE DEST removes it again (untimed).  DEST is a volume
# name for snapshot and a path under $WORK/out for the others.
create_snapshot() { "$VOLMGR" --socket "$CTL" snapshot "cache:$1" "$2"; }
destroy_snapshot() {
	"$VOLMGR" --socket "$CTL" rm "$2"
	# Have btrfs's cleaner drop the deleted subvolume now, and wait for it,
	# so that it does not work in the background of the next timed run.
	# The cleaner otherwise waits for the next periodic commit (30 s):
	# `btrfs filesystem sync` commits and wakes it.
	btrfs filesystem sync "$POOL" >/dev/null
	btrfs subvolume sync "$POOL" >/dev/null
}
path_snapshot() { "$VOLMGR" --socket "$CTL" inspect "$1" | jq -r '(if type == "array" then .[0] else . end).mountpoint'; }

create_cp-auto() { cp -a "$WORK/src-$1" "$2"; }
destroy_cp-auto() { rm -rf --one-file-system "$2"; }
path_cp-auto() { echo "$1"; }

create_cp-never() { cp -a --reflink=never "$WORK/src-$1" "$2"; }
destroy_cp-never() { rm -rf --one-file-system "$2"; }
path_cp-never() { echo "$1"; }

create_worktree() { git -C "$WORK/repo-$1.git" worktree add --detach "$2" HEAD; }
destroy_worktree() {
	git -C "$WORK/repo-$1.git" worktree remove --force "$2"
	git -C "$WORK/repo-$1.git" worktree prune
}
path_worktree() { echo "$1"; }

dest_for() { # METHOD TREE RUN
	if [[ $1 == snapshot ]]; then
		echo "ws-$2-$3"
	else
		echo "$WORK/out/$1-$2-$3"
	fi
}

# One run: create (timed), remove (untimed), then syncfs of the btrfs so
# that the next run does not pay for this one's writeback.  Sets LAST_MS.
one_run() { # METHOD TREE DEST
	local t0 t1
	t0=$EPOCHREALTIME
	"create_$1" "$2" "$3" >>"$SCRATCH/runs.log" 2>&1 || {
		tail -n 20 "$SCRATCH/runs.log" >&2
		die "$1 on $2 failed"
	}
	t1=$EPOCHREALTIME
	LAST_MS=$(elapsed_ms "$t0" "$t1")
	"destroy_$1" "$2" "$3" >>"$SCRATCH/runs.log" 2>&1 || {
		tail -n 20 "$SCRATCH/runs.log" >&2
		die "removing $3 failed"
	}
	sync -f "$WORK"
}

# The untimed warm-up run of each method also checks its result: the
# workspace holds as many files as the source, and what cp-auto shares
# with other extents (what makes it a reflink copy) versus cp-never.
warm_up() { # METHOD TREE
	local m=$1 t=$2 dest path n shared
	dest=$(dest_for "$m" "$t" warmup)
	"create_$m" "$t" "$dest" >>"$SCRATCH/runs.log" 2>&1 || {
		tail -n 20 "$SCRATCH/runs.log" >&2
		die "$m on $t failed"
	}
	path=$("path_$m" "$dest")
	n=$(count_entries "$path")
	[[ $n == "${FILES[$t]}" ]] ||
		die "$m on $t: $n files in $path, the source has ${FILES[$t]}"
	if [[ $m == cp-* ]]; then
		# btrfs fi du: total, exclusive, set shared (bytes).
		shared=$(btrfs filesystem du -s --raw "$path" | awk 'NR == 2 {printf "%.0f %% of %.0f MB", ($1 ? 100 * ($1 - $2) / $1 : 0), $1 / 1e6}')
		SHARED[$m,$t]=$shared
	fi
	"destroy_$m" "$t" "$dest" >>"$SCRATCH/runs.log" 2>&1 || die "removing $dest failed"
	sync -f "$WORK"
}

# Round-robin: every run does each method once, so that load from other
# work on the machine spreads over all methods instead of hitting one.
measure() {
	local t m i
	for t in "${TREES[@]}"; do
		for m in "${METHODS[@]}"; do
			warm_up "$m" "$t"
		done
		log "tree $t: warm-up done, files checked"
		for ((i = 1; i <= RUNS; i++)); do
			for m in "${METHODS[@]}"; do
				one_run "$m" "$t" "$(dest_for "$m" "$t" "$i")"
				TIMES[$t,$m]+="$LAST_MS "
			done
			baseline
			log "tree $t run $i/$RUNS: $(for m in "${METHODS[@]}"; do
				printf '%s %s ms  ' "$m" "$(awk '{print $NF}' <<<"${TIMES[$t,$m]}")"
			done)"
		done
	done
}

# What starting any process costs here (fork + exec + exit, timed like the
# methods, in the same rounds): every method pays it once.
baseline() {
	local t0
	t0=$EPOCHREALTIME
	/bin/true
	BASELINE+="$(elapsed_ms "$t0" "$EPOCHREALTIME") "
}

# ----------------------------------------------------------------- report

report() {
	local t m med min max snap r s
	local -A median
	echo "## Per-job workspace creation: volmgr snapshot vs cp vs git worktree$($QUICK && echo ' (--quick smoke test, small trees only)')"
	echo
	machine_info "$(cp --version | head -1), $(git --version)"
	echo "- Trees (each also held as a volmgr cache and as a one-commit git repository):"
	for t in "${TREES[@]}"; do
		echo "  - **$t**: ${DESC[$t]}; cache import took ${IMPORT_S[$t]} s"
	done
	echo "- Method: $RUNS timed runs per tree and method after one untimed warm-up run" \
		"(which also checks the file count of the result), methods in round-robin order." \
		"Timed: the creating command's whole process, wall clock (bash \$EPOCHREALTIME)." \
		"Untimed, after each run: removing the result (\`volmgr rm\` + \`btrfs filesystem sync\` + \`btrfs subvolume sync\`," \
		"\`rm -rf\`, \`git worktree remove --force\` + \`prune\`), then \`sync -f\` (syncfs of" \
		"the benchmark's btrfs only). No cache is dropped: the page cache is warm" \
		"(the trees were just written and read). cp and git return before their data is" \
		"written back (that writeback is in the untimed syncfs); the btrfs snapshot" \
		"ioctl commits its transaction before volmgr replies."
	for t in "${TREES[@]}"; do
		for m in cp-auto cp-never; do
			[[ -n ${SHARED[$m,$t]:-} ]] &&
				echo "- \`$m\` copy of $t (warm-up run): ${SHARED[$m,$t]} shared with other extents (btrfs fi du; files up to 2 KiB are inline in the metadata and never shared)"
		done
	done
	echo
	echo "| Tree | Method | Median (ms) | Min (ms) | Max (ms) | Median / snapshot median |"
	echo "|---|---|---:|---:|---:|---:|"
	for t in "${TREES[@]}"; do
		read -r snap _ _ < <(stats "${TIMES[$t,snapshot]}")
		median[$t]=$snap
		for m in "${METHODS[@]}"; do
			read -r med min max < <(stats "${TIMES[$t,$m]}")
			r=$(awk -v a="$med" -v b="$snap" 'BEGIN { printf "%.1f", a / b }')
			printf '| %s (%s files) | %s | %.1f | %.1f | %.1f | %s× |\n' \
				"$t" "${FILES[$t]}" "${LABEL[$m]}" "$med" "$min" "$max" "$r"
		done
	done
	echo
	local big=${TREES[0]} small=${TREES[1]}
	r=$(awk -v a="${median[$big]}" -v b="${median[$small]}" 'BEGIN { printf "%.2f", a / b }')
	s=$(awk -v a="${FILES[$big]}" -v b="${FILES[$small]}" 'BEGIN { printf "%.1f", a / b }')
	echo "volmgr snapshot median, $big / $small: **$r** (for $s× the files)."
	echo
	for t in "${TREES[@]}"; do
		awk -v t="$t" -v m="${median[$t]}" 'BEGIN {
			printf "- volmgr snapshot median for %s: %.1f ms, %s 30 ms\n", t, m,
				(m < 30 ? "under" : "NOT under") }'
	done
	for t in "${TREES[@]}"; do
		read -r med min max < <(stats "$(daemon_times "ws-$t-[0-9]+")")
		printf -- '- of which volmgrd handling the request (its own log), %s: median %.1f ms (min %.1f, max %.1f); the rest is the CLI process (exec, connect, reply, exit)\n' \
			"$t" "$med" "$min" "$max"
	done
	read -r med min max < <(stats "$BASELINE")
	# shellcheck disable=SC2016 # Markdown backquotes
	printf -- '- process start baseline, `/bin/true` (dynamically linked like cp and git; the volmgr CLI is static) timed the same way, once per round (%d runs): median %.1f ms (min %.1f, max %.1f)\n' \
		$((${#TREES[@]} * RUNS)) "$med" "$min" "$max"
	echo
	echo "Raw times (ms, in run order):"
	echo
	for t in "${TREES[@]}"; do
		for m in "${METHODS[@]}"; do
			echo "- $t $m: ${TIMES[$t,$m]% }"
		done
	done
}

# ------------------------------------------------------------------ scale

SCALE=false
SCALE_POINTS=${SCALE_POINTS:-0 500 1000 2000}
SCALE_MODES=(simple full)

# Stop the daemon and take the pool down, so that the next mode starts on
# a fresh file system (quota modes are per file system).
teardown_pool() {
	local i
	if [[ -n $DAEMON_PID ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
		kill -TERM "$DAEMON_PID"
		for ((i = 0; i < 50; i++)); do
			kill -0 "$DAEMON_PID" 2>/dev/null || break
			sleep 0.1
		done
		wait "$DAEMON_PID" 2>/dev/null || true
	fi
	DAEMON_PID=''
	umount "$MNT"
	losetup --detach "$LOOP_DEV"
	LOOP_DEV=''
	rm -f "$IMG"
	rmdir "$MNT"
	MNT=''
}

# The volumes the pool holds so far, up to N (untimed).
fill_to() { # N
	local n=$1
	while ((FILLED < n)); do
		"$VOLMGR" --socket "$CTL" snapshot cache:scale "fill-$FILLED" >/dev/null
		FILLED=$((FILLED + 1))
	done
}

scale_one_mode() { # MODE
	local mode=$1 point i t0 dest
	make_btrfs 8G
	printf '[quota]\naccounting = %s\n' "$mode" >"$SCRATCH/scale-$mode.conf"
	start_daemon --config "$SCRATCH/scale-$mode.conf"
	local got
	got=$("$VOLMGR" --socket "$CTL" status --json | jq -r .quota_accounting)
	[[ $got == "$mode" ]] || die "volmgrd runs with quota accounting '$got', not $mode"
	mkdir "$WORK/src-scale"
	for ((i = 0; i < 200; i++)); do
		head -c $((i * 97 + 1)) /dev/urandom >"$WORK/src-scale/f$i"
	done
	"$VOLMGR" --socket "$CTL" cache import scale "$WORK/src-scale" >/dev/null
	local cache=$POOL/caches/scale
	mkdir "$WORK/raw"
	FILLED=0
	for point in $SCALE_POINTS; do
		fill_to "$point"
		btrfs filesystem sync "$POOL" >/dev/null
		log "$mode: $FILLED volumes; timing $RUNS snapshots"
		for ((i = 1; i <= RUNS; i++)); do
			dest=probe-$mode-$point-$i
			t0=$EPOCHREALTIME
			"$VOLMGR" --socket "$CTL" snapshot cache:scale "$dest" >/dev/null
			SCALE_CLI[$mode,$point]+="$(elapsed_ms "$t0" "$EPOCHREALTIME") "
			destroy_snapshot scale "$dest" >>"$SCRATCH/runs.log" 2>&1
			t0=$EPOCHREALTIME
			btrfs subvolume snapshot "$cache" "$WORK/raw/$dest" >/dev/null
			SCALE_RAW[$mode,$point]+="$(elapsed_ms "$t0" "$EPOCHREALTIME") "
			btrfs subvolume delete "$WORK/raw/$dest" >/dev/null
			btrfs filesystem sync "$POOL" >/dev/null
			btrfs subvolume sync "$POOL" >/dev/null
		done
		SCALE_DAEMON[$mode,$point]=$(daemon_times "probe-$mode-$point-[0-9]+")
		log "$mode, $point volumes: CLI $(stats "${SCALE_CLI[$mode,$point]}" | cut -d' ' -f1) ms, raw $(stats "${SCALE_RAW[$mode,$point]}" | cut -d' ' -f1) ms (medians)"
	done
	SCALE_INFO[$mode]=$(machine_info "$(jq --version)")
	teardown_pool
}

scale_report() {
	local mode point v med min max
	echo "## volmgr snapshot time against the number of volumes in the pool, per quota mode"
	echo
	printf '%s\n' "${SCALE_INFO[${SCALE_MODES[0]}]}"
	echo "- Method: per mode a fresh loop-backed btrfs (8G) and volmgrd with" \
		"\`[quota] accounting\` set to the mode; one cache of 200 small files;" \
		"the pool filled with volumes (snapshots of the cache, made through the CLI, untimed)" \
		"up to each count, then $RUNS timed \`volmgr snapshot cache:scale VOL\` (the whole CLI" \
		"process; volmgrd's own time from its log) and $RUNS raw \`btrfs subvolume snapshot\`" \
		"of the cache (the btrfs-progs process), each followed untimed by its removal," \
		"\`btrfs filesystem sync\` and \`btrfs subvolume sync\`. Times are medians (min-max) in ms."
	echo "- simple: btrfs simple quotas (each volume's limit on its level-1 qgroup 1/ID, made, assigned and limited in staging/);" \
		"full: full qgroup accounting (the limit on 0/ID)."
	echo
	echo "| Volumes in the pool | simple: volmgr snapshot (CLI) | simple: volmgrd | simple: raw btrfs snapshot | full: volmgr snapshot (CLI) | full: volmgrd | full: raw btrfs snapshot |"
	echo "|---:|---:|---:|---:|---:|---:|---:|"
	for point in $SCALE_POINTS; do
		printf '| %s ' "$point"
		for mode in "${SCALE_MODES[@]}"; do
			for v in "${SCALE_CLI[$mode,$point]}" "${SCALE_DAEMON[$mode,$point]}" "${SCALE_RAW[$mode,$point]}"; do
				read -r med min max < <(stats "$v")
				printf '| %.1f (%.1f-%.1f) ' "$med" "$min" "$max"
			done
		done
		echo "|"
	done
	echo
	echo "Raw times (ms, in run order):"
	echo
	for mode in "${SCALE_MODES[@]}"; do
		for point in $SCALE_POINTS; do
			echo "- $mode, $point volumes: CLI ${SCALE_CLI[$mode,$point]% }; volmgrd ${SCALE_DAEMON[$mode,$point]% }; raw ${SCALE_RAW[$mode,$point]% }"
		done
	done
}

scale_main() {
	bench_start btrfs-progs jq util-linux coreutils
	declare -gA SCALE_CLI=() SCALE_RAW=() SCALE_DAEMON=() SCALE_INFO=()
	local mode
	for mode in "${SCALE_MODES[@]}"; do
		scale_one_mode "$mode"
	done
	log "done"
	emit_report scale_report
}

# ------------------------------------------------------------------- main

main() {
	local -a args=()
	local a
	for a in "$@"; do
		if [[ $a == --scale ]]; then
			SCALE=true
		else
			args+=("$a")
		fi
	done
	parse_args "${args[@]}"
	if $SCALE; then
		scale_main
		return
	fi
	bench_start linux-source-6.1 git btrfs-progs xz-utils jq util-linux coreutils

	declare -gA DESC=() FILES=() IMPORT_S=() TIMES=() SHARED=()
	BASELINE=
	if $QUICK; then make_btrfs 2G; else make_btrfs 16G; fi
	# shellcheck disable=SC2119 # no extra volmgrd arguments
	start_daemon
	prepare_trees
	import_caches
	make_git_repos
	measure
	log "done"

	emit_report report
}

main "$@"
