#!/usr/bin/env bash
# bench/gitlab-pipeline.sh — how long does each job of a GitLab pipeline
# take to get its workspace, with volmgr's recipe and with the stock docker
# executor, on a repository that holds the Linux 6.1 tree?
#
# Each job's workspace is made as gitlab-runner's docker executor makes it
# (as tests/e2e/gitlab-runner-docker.sh plays it, from the runner's
# sources): the build volume is created, cache-init makes its top 0777,
# the get_sources script the runner writes runs in the project directory
# (lock files, .git/config and hooks removed, `git init --template`,
# `remote add`/`set-url`, fetch with the runner's refspecs `--prune`,
# `checkout -f -q SHA`, `clean -ffdx`), then the recipe's
# post_get_sources hook (volmgr only).  Timed: all of that, wall clock.
# The containers the runner starts for it (cache-init, the helper's
# stages) cost every method the same and are left out: the steps run on
# the host, in the volume's directory, as root.
#
#   volmgr  the recipe (helpers/gitlab-runner/): a temporary volume per job
#           through volmgr's plugin socket (Get, Create, Mount, as Docker
#           sends them), seeded by the recipe's seed rule from cache
#           project-1, which the hook (`volmgr cache promote`) keeps at the
#           newest commit; the volume is removed after the job (untimed)
#   fetch   stock, GIT_STRATEGY=fetch: a per-slot volume of Docker's local
#           driver (a directory, kept between jobs; here on the same btrfs)
#   clone   stock, GIT_STRATEGY=clone: a temporary volume (a directory,
#           removed after the job, untimed); the project directory is
#           removed first, then as fetch
#
# Two pipelines of JOBS jobs (default 10) of one project, one job after the
# other, job i on concurrency slot i-1 (a runner with `concurrent` >= JOBS
# spreads a stage's parallel jobs over its slots; run one at a time here,
# so that each is timed alone):
#   pipeline 1  at commit B, on a host where nothing of the project is
#               warm yet (an autoscaled machine that just came up, or the
#               project's first pipeline there): no cache, no slot volumes;
#   pipeline 2  at commit C (B with one file changed), on the same host:
#               the cache and every slot volume are at B.
#
# Usage: sudo bench/gitlab-pipeline.sh [--runs N] [--quick] [--out FILE]
#   --runs N    jobs per pipeline (default 10)
#   --quick     smoke test on a small tree (Documentation/admin-guide and
#               Documentation/process of the kernel tree), under a minute
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
# shellcheck source=bench/gitrepo.sh
source "$(dirname "${BASH_SOURCE[0]}")/gitrepo.sh"

QUICK_DIRS=(Documentation/admin-guide Documentation/process) # 417 files
RUNS=10 # jobs per pipeline
METHODS=(volmgr fetch clone)
# shellcheck disable=SC2016 # backquotes are Markdown, not expansions
declare -A LABEL=(
	[volmgr]='volmgr recipe: temporary volume seeded from the self-warming cache, GIT_STRATEGY=fetch, promote'
	[fetch]='stock: per-slot volume (local driver), GIT_STRATEGY=fetch'
	[clone]='stock: temporary volume, GIT_STRATEGY=clone'
)
BUILDS_MD5=c33bcaa1fd2c77edfc3893b41966cea8 # md5 of "/builds": the runner's volume names

# The runner's get_sources for GIT_STRATEGY=fetch (shells/abstract.go;
# the same text as tests/e2e/gitlab-runner-docker.sh): $1 is the project
# directory, $2 the commit, with the runner's variables in the environment.
GET_SOURCES='set -e
P=$1 T=$1.tmp
rm -f "$P/.git/index.lock" "$P/.git/shallow.lock" "$P/.git/HEAD.lock" "$P/.git/hooks/post-checkout" "$P/.git/config.lock"
rm -f "$T/git-template/config"; rm -r -f "$T/git-template/hooks"; rm -f "$P/.git/config"; rm -r -f "$P/.git/hooks"
mkdir -p "$T/git-template"
git config -f "$T/git-template/config" init.defaultBranch none
git config -f "$T/git-template/config" fetch.recurseSubmodules false
git init "$P" --template "$T/git-template" >/dev/null
cd "$P"
git remote add origin "$CI_REPOSITORY_URL" >/dev/null 2>&1 || git remote set-url origin "$CI_REPOSITORY_URL"
git fetch origin --no-recurse-submodules "+refs/heads/*:refs/remotes/origin/*" "+refs/tags/*:refs/tags/*" --prune --quiet
git -c submodule.recurse=false checkout -f -q "$2"
git clean -ffdx -q'

# Plugin requests as Docker sends them (moby volume/drivers/proxy.go).
plugin() { # ENDPOINT JSON
	curl -sS --max-time 120 --unix-socket "$SCRATCH/plugin.sock" -X POST \
		-H 'Accept: application/vnd.docker.plugins.v1.2+json' "http://plugin/VolumeDriver.$1" -d "$2"
}

# One job's workspace by METHOD for job N of the pipeline at commit SHA;
# prints the project directory.
job_volmgr() { # N SHA
	local vol=runner-bench123-project-1-concurrent-$(($1 - 1))-$(printf '%016x' "$RANDOM$1")-cache-$BUILDS_MD5 mp
	plugin Get "{\"Name\":\"$vol\"}" >/dev/null
	[[ $(plugin Create "{\"Name\":\"$vol\",\"Opts\":{\"ttl\":\"24h\"}}") == '{"Err":""}' ]] || return 1
	mp=$(plugin Mount "{\"Name\":\"$vol\",\"ID\":\"job-$1\"}" | jq -r .Mountpoint)
	chmod 0777 "$mp"
	bash -c "$GET_SOURCES" get_sources "$mp/group/project" "$2"
	"$VOLMGR" --socket "$CTL" cache promote "$mp/group/project" --commit "$2" \
		--commit-time "$(git -C "$UP" log -1 --format=%cI "$2")" >>"$SCRATCH/promote.log"
	LAST_VOL=$vol LAST_DIR=$mp/group/project
}
job_fetch() { # N SHA
	local d=$WORK/slots/concurrent-$(($1 - 1))
	[[ -d $d ]] || mkdir -p "$d"
	chmod 0777 "$d"
	bash -c "$GET_SOURCES" get_sources "$d/group/project" "$2"
	LAST_DIR=$d/group/project
}
job_clone() { # N SHA
	local d=$WORK/tmp-$1
	mkdir "$d"
	chmod 0777 "$d"
	rm -r -f "$d/group/project"
	bash -c "$GET_SOURCES" get_sources "$d/group/project" "$2"
	LAST_DIR=$d/group/project
}

# After a job (untimed): its workspace is SHA, whole and clean; the runner
# removes a temporary volume.
after_job() { # METHOD SHA
	[[ $(gck -C "$LAST_DIR" rev-parse HEAD) == "$2" ]] || die "$1: HEAD is not $2 in $LAST_DIR"
	[[ -z $(gck -C "$LAST_DIR" status --porcelain --untracked-files=all | head -3) ]] ||
		die "$1: $LAST_DIR is not clean"
	case $1 in
	volmgr)
		plugin Unmount "{\"Name\":\"$LAST_VOL\",\"ID\":\"job-$N\"}" >/dev/null
		[[ $(plugin Remove "{\"Name\":\"$LAST_VOL\"}") == '{"Err":""}' ]] || die "removing $LAST_VOL"
		btrfs filesystem sync "$POOL" >/dev/null
		btrfs subvolume sync "$POOL" >/dev/null
		;;
	clone) rm -rf --one-file-system "${LAST_DIR%/group/project}" ;;
	esac
	sync -f "$WORK"
}

# Pipeline P at commit SHA: every job of every method, methods in turn per
# job (so that load from elsewhere spreads over all of them).
pipeline() { # P SHA
	local p=$1 sha=$2 m t0
	export CI_REPOSITORY_URL=$URL HOME=$SCRATCH/home
	for ((N = 1; N <= RUNS; N++)); do
		for m in "${METHODS[@]}"; do
			t0=$EPOCHREALTIME
			"job_$m" "$N" "$sha" >>"$SCRATCH/jobs.log" 2>&1 || {
				tail -n 20 "$SCRATCH/jobs.log" >&2
				die "pipeline $p, job $N, $m failed"
			}
			TIMES[$p.$m]+="$(elapsed_ms "$t0" "$EPOCHREALTIME") "
			after_job "$m" "$sha"
		done
		log "pipeline $p job $N: $(for m in "${METHODS[@]}"; do printf '%s %s ms  ' "$m" "$(awk '{print $NF}' <<<"${TIMES[$p.$m]}")"; done)"
	done
}

# ---------------------------------------------------------------- report

first() { awk '{print $1}' <<<"$1"; }
rest() { cut -d' ' -f2- <<<"$1"; }

report() {
	local p m med min max r1 rr f1 fr
	echo "## A GitLab pipeline's jobs: volmgr's recipe against the stock docker executor"
	echo
	machine_info "$(git --version)"
	echo "- Tree: **$TREE_NAME**, $TREE_DESC."
	echo "- Upstream: a bare repository on the benchmark's btrfs, used as \`file://\`: commit A = the tree ($UP_DESC; add+commit $(ms_to_s "${SETUP[commit]}") s, repack $(ms_to_s "${SETUP[repack]}") s), B = A with three files edited and one added (pipeline 1's commit), C = B with one more edited (pipeline 2's)."
	echo "- $RUNS jobs per pipeline, one after the other, job i on slot i-1; the methods take turns job by job. Timed per job, wall clock: the build volume's create, cache-init's chmod, the runner's get_sources script (GIT_STRATEGY fetch or clone) and, for volmgr, the post_get_sources promote; the runner's containers are left out (the same for every method). Untimed after each job: a check (HEAD is the pipeline's commit, \`git status\` clean), the runner's removal of a temporary volume, \`btrfs subvolume sync\`, syncfs."
	echo "- Pipeline 1: nothing of the project on the host (no cache, no slot volumes). Pipeline 2: the cache and the slot volumes at B."
	echo
	echo "| Pipeline | Method | Job 1 (ms) | Jobs 2-$RUNS median (ms) | min | max | Job 1 / stock fetch | Jobs 2-$RUNS / stock fetch |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|"
	for p in 1 2; do
		f1=$(first "${TIMES[$p.fetch]}")
		fr=$(stats "$(rest "${TIMES[$p.fetch]}")" | cut -d' ' -f1)
		for m in "${METHODS[@]}"; do
			read -r med min max <<<"$(stats "$(rest "${TIMES[$p.$m]}")")"
			r1=$(awk -v a="$(first "${TIMES[$p.$m]}")" -v b="$f1" 'BEGIN { printf "%.2f", a / b }')
			rr=$(awk -v a="$med" -v b="$fr" 'BEGIN { printf "%.2f", a / b }')
			printf '| %s | %s | %.0f | %.0f | %.0f | %.0f | %s× | %s× |\n' "$p" "${LABEL[$m]}" \
				"$(first "${TIMES[$p.$m]}")" "$med" "$min" "$max" "$r1" "$rr"
		done
	done
	echo
	echo "Promotes (the recipe's hook, one line per volmgr job):"
	echo
	sed 's/^/- /' "$SCRATCH/promote.log"
	echo
	echo "Raw times (ms, job 1 first):"
	echo
	for p in 1 2; do
		for m in "${METHODS[@]}"; do
			echo "- pipeline $p, $m: ${TIMES[$p.$m]% }"
		done
	done
}

# ------------------------------------------------------------------- main

main() {
	parse_args "$@"
	((RUNS >= 2)) || die "--runs: at least 2 jobs (job 1, and the median of the others)"
	bench_start linux-source-6.1 git btrfs-progs xz-utils jq curl util-linux coreutils
	umask 022
	setup_git_env
	declare -gA SETUP=() TIMES=()
	if $QUICK; then make_btrfs 2G; else make_btrfs 24G; fi
	chmod 0711 "$SCRATCH"
	mkdir -p "$SCRATCH/home" "$WORK/slots"
	printf '[seed]\nrunner-*-project-{id}-concurrent-*-cache-* = cache:project-{id}\n' >"$SCRATCH/volmgr.conf"
	start_daemon --config "$SCRATCH/volmgr.conf"
	extract_tree
	make_upstream
	local B C
	B=$(make_commit "$A" B "$(git -C "$UP" ls-tree -r --name-only "$A" | awk 'NR % 20000 == 7' | head -3 | tr '\n' ' ')" "bench-added-in-B.txt")
	C=$(make_commit "$B" C "$(git -C "$UP" ls-tree -r --name-only "$A" | awk 'NR % 20000 == 11' | head -1)" "")
	git -C "$UP" update-ref refs/heads/main "$B" "$A"
	log "pipeline 1 at B=$B"
	pipeline 1 "$B"
	git -C "$UP" update-ref refs/heads/main "$C" "$B"
	log "pipeline 2 at C=$C"
	pipeline 2 "$C"
	log "done"
	emit_report report
}

main "$@"
