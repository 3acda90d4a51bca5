#!/usr/bin/env bash
# bench/git-workspace.sh — how long does it take to give one CI job a
# workspace at a given commit of a git repository that holds the Linux 6.1
# tree, when that commit is newer than anything kept locally (so its delta
# has to be fetched)?
#
# Set-up, untimed, all on one loop-backed btrfs file system:
#   upstream   a bare repository, used through a file:// URL, with commit A
#              = the tree, packed as a server keeps it (git repack -a -d);
#   cache      `volmgr cache create NAME --git file://upstream` (at A);
#   build dir  `git clone file://upstream` (at A): the directory that
#              gitlab-runner's GIT_STRATEGY=fetch keeps between jobs;
#   mirror     `git clone --mirror file://upstream` (at A): a reference
#              repository on the runner's host;
# then upstream gets commit B = A with three files edited and one added, and
# C = B with one more file edited; main points at C, so the job's commit B
# is one behind the branch tip, as a pipeline's commit often is.
#
# Timed, for the job "a workspace at B" (the whole command, wall clock):
#   volmgr       `volmgr snapshot cache:NAME@<sha of B> VOL`: a btrfs
#                snapshot of the cache, then (volmgrd, as the git user)
#                `git fetch origin <sha>` and `git checkout -f --detach`
#   ref-clone    `git clone -q --reference MIRROR file://upstream DIR &&
#                git -C DIR checkout -q B`
#   fetch        GIT_STRATEGY=fetch, in the build dir: `git fetch -q origin
#                && git checkout -q -f B && git clean -q -ffdx`; before each
#                run (untimed) the build dir is put back to A and B's and
#                C's objects and refs are removed, so every run fetches them
#   fetch-local  the same with B and C already local (a fetch that
#                transfers nothing): what `fetch` would time from its second
#                run on without that reset
#   clone        `git clone -q file://upstream DIR && git -C DIR checkout -q B`
# Untimed after each run: removing the result (volmgr rm + btrfs filesystem
# sync + btrfs subvolume sync; rm -rf; the build dir's reset), then syncfs.
#
# Usage: sudo bench/git-workspace.sh [--runs N] [--quick] [--out FILE]
#   --runs N    timed runs per method (default 5)
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

# The --quick tree (near the start of the tarball, so tar stops early).
QUICK_DIRS=(Documentation/admin-guide Documentation/process) # 417 files
GIT_USER=nobody # volmgr.conf [git] user (volmgr's default, written out)
CACHE=kernel    # the volmgr cache's name

RUNS=5
METHODS=(volmgr ref-clone fetch fetch-local clone)
# shellcheck disable=SC2016 # backquotes are Markdown, not expansions
declare -A LABEL=(
	[volmgr]='`volmgr snapshot cache:NAME@B VOL` (CLI)'
	[ref-clone]='`git clone --reference MIRROR file://… DIR && git -C DIR checkout B`'
	[fetch]='GIT_STRATEGY=fetch: `git fetch origin && git checkout -f B && git clean -ffdx` (B not local)'
	[fetch-local]='the same, B already local (fetch transfers nothing; not this job)'
	[clone]='`git clone file://… DIR && git -C DIR checkout B` (full clone)'
)

# ------------------------------------------------------------------- git

# Index entries of the checkout in DIR whose file was modified in the same
# second as the index was written, or later: "racily clean" entries, whose
# content git must read again to know that they are unchanged (git, as
# Debian builds it, compares these times in whole seconds).  Prints
# "RACY of ENTRIES".
racy_entries() { # DIR
	local sec
	sec=$(stat -c %Y "$1/.git/index")
	gck -C "$1" ls-files --debug |
		awk -v s="$sec" '/^  mtime: / { split($2, t, ":"); n++; if (t[1] >= s) r++ }
			END { printf "%d of %d\n", r, n }'
}

# ---------------------------------------------------------------- set-up

# The volmgr cache, the build dir and the mirror, all at A.
make_local_copies() {
	local t0 out
	t0=$EPOCHREALTIME
	out=$("$VOLMGR" --socket "$CTL" cache create "$CACHE" --git "$URL" --branch main)
	SETUP[cache]=$(elapsed_ms "$t0" "$EPOCHREALTIME")
	log "volmgr: $out ($(ms_to_s "${SETUP[cache]}") s)"
	CACHE_DIR=$POOL/caches/$CACHE
	[[ $(gck -C "$CACHE_DIR" rev-parse HEAD) == "$A" ]] || die "the cache is not at A"
	CACHE_OBJECTS=$(count_objects "$CACHE_DIR")
	CACHE_RACY=$(racy_entries "$CACHE_DIR")
	log "cache index: $CACHE_RACY entries racily clean"

	BUILD=$WORK/build
	t0=$EPOCHREALTIME
	git clone -q "$URL" "$BUILD"
	SETUP[build]=$(elapsed_ms "$t0" "$EPOCHREALTIME")
	git -C "$BUILD" config gc.auto 0
	log "build dir cloned ($(ms_to_s "${SETUP[build]}") s)"

	MIRROR=$WORK/mirror.git
	t0=$EPOCHREALTIME
	git clone -q --mirror "$URL" "$MIRROR"
	SETUP[mirror]=$(elapsed_ms "$t0" "$EPOCHREALTIME")
	git -C "$MIRROR" config gc.auto 0
	log "mirror cloned ($(ms_to_s "${SETUP[mirror]}") s)"
}

# B and C in upstream (main -> C), after the local copies were made at A.
# The edited files: regular files at a quarter, half and three quarters of
# A's sorted path list (three directories apart in the kernel tree), one
# added next to the first; C edits the file at a third.
make_new_commits() {
	local -a regular
	mapfile -t regular < <(git -C "$UP" ls-tree -r "$A" | awk '$1 == "100644" { sub(/^[^\t]*\t/, ""); if (/^[A-Za-z0-9._\/-]+$/) print }')
	local n=${#regular[@]}
	B_EDITS=("${regular[n / 4]}" "${regular[n / 2]}" "${regular[3 * n / 4]}")
	B_ADDS=("$(dirname "${regular[n / 4]}")/bench-added-in-B.txt")
	C_EDITS=("${regular[n / 3]}")
	B=$(make_commit "$A" "B" "${B_EDITS[*]}" "${B_ADDS[*]}")
	C=$(make_commit "$B" "C" "${C_EDITS[*]}" "")
	git -C "$UP" update-ref refs/heads/main "$C" "$A"
	B_FILES=$(git -C "$UP" ls-tree -r "$B" | wc -l)
	B_NEW=$(git -C "$UP" rev-list --objects "$A..$B" | wc -l)
	C_NEW=$(git -C "$UP" rev-list --objects "$B..$C" | wc -l)
	log "B=$B ($B_NEW new objects), C=$C ($C_NEW more); upstream main -> C"
	# None of the local copies has them.
	local d
	for d in "$CACHE_DIR" "$BUILD" "$MIRROR"; do
		! gck -C "$d" cat-file -e "$B^{commit}" 2>/dev/null || die "$d already has B"
	done
}

# The build dir back at A without B's and C's objects, refs or reflog
# entries, as it was before its first fetch of them.  gitlab-runner's
# fetch keeps nothing else (gc.auto is 0 in the build dir).
reset_build() {
	git -C "$BUILD" checkout -q -f "$A"
	git -C "$BUILD" update-ref refs/remotes/origin/main "$A"
	rm -f "$BUILD/.git/FETCH_HEAD" "$BUILD/.git/ORIG_HEAD"
	git -C "$BUILD" reflog expire --expire=now --expire-unreachable=now --all
	# A small fetch arrives as loose objects (fewer than fetch.unpackLimit,
	# 100): prune drops them.  Should they have come as a pack, a repack
	# without -k drops the unreachable ones from it.
	git -C "$BUILD" prune --expire=now
	if git -C "$BUILD" cat-file -e "$B^{commit}" 2>/dev/null ||
		git -C "$BUILD" cat-file -e "$C^{commit}" 2>/dev/null; then
		REPACKS=$((REPACKS + 1))
		git -C "$BUILD" repack -q -a -d
		git -C "$BUILD" prune --expire=now
	fi
	! git -C "$BUILD" cat-file -e "$B^{commit}" 2>/dev/null || die "B still in the build dir"
	! git -C "$BUILD" cat-file -e "$C^{commit}" 2>/dev/null || die "C still in the build dir"
	[[ $(git -C "$BUILD" rev-parse HEAD) == "$A" ]] || die "build dir not at A"
}

# ---------------------------------------------------------------- methods

# prepare_METHOD DEST (untimed) then create_METHOD DEST (timed), then
# path_METHOD DEST (where the work tree is) and base_METHOD (objects the
# workspace's repository had before the fetch), then destroy_METHOD DEST
# (untimed).  DEST is a volume name for volmgr, a directory for the others.
prepare_volmgr() { :; }
create_volmgr() { "$VOLMGR" --socket "$CTL" snapshot "cache:$CACHE@$B" "$1"; }
path_volmgr() { "$VOLMGR" --socket "$CTL" inspect "$1" | jq -r '(if type == "array" then .[0] else . end).mountpoint'; }
base_volmgr() { echo "$CACHE_OBJECTS"; }
destroy_volmgr() {
	"$VOLMGR" --socket "$CTL" rm "$1"
	# Have btrfs's cleaner drop the deleted subvolume now, and wait for it,
	# so that it does not work in the background of the next timed run.
	btrfs filesystem sync "$POOL" >/dev/null
	btrfs subvolume sync "$POOL" >/dev/null
}

prepare_ref-clone() { :; }
create_ref-clone() { git clone -q --reference "$MIRROR" "$URL" "$1" && git -C "$1" checkout -q "$B"; }
path_ref-clone() { echo "$1"; }
base_ref-clone() { echo 0; }
destroy_ref-clone() { rm -rf --one-file-system "$1"; }

prepare_fetch() { BUILD_BEFORE=$(count_objects "$BUILD"); }
create_fetch() {
	git -C "$BUILD" fetch -q origin && git -C "$BUILD" checkout -q -f "$B" &&
		git -C "$BUILD" clean -q -ffdx
}
path_fetch() { echo "$BUILD"; }
base_fetch() { echo "$BUILD_BEFORE"; }
destroy_fetch() { reset_build; }

prepare_fetch-local() {
	git -C "$BUILD" fetch -q origin
	gck -C "$BUILD" cat-file -e "$B^{commit}" || die "fetch-local: B not fetched"
	BUILD_BEFORE=$(count_objects "$BUILD")
}
create_fetch-local() { create_fetch "$@"; }
path_fetch-local() { echo "$BUILD"; }
base_fetch-local() { echo "$BUILD_BEFORE"; }
destroy_fetch-local() { reset_build; }

prepare_clone() { :; }
create_clone() { git clone -q "$URL" "$1" && git -C "$1" checkout -q "$B"; }
path_clone() { echo "$1"; }
base_clone() { echo 0; }
destroy_clone() { rm -rf --one-file-system "$1"; }

dest_for() { # METHOD RUN
	if [[ $1 == volmgr ]]; then
		echo "ws-$2"
	else
		echo "$WORK/out/$1-$2"
	fi
}

# The workspace at PATH is B, whole and clean.
check_workspace() { # METHOD PATH
	local m=$1 path=$2 p n
	[[ $(gck -C "$path" rev-parse HEAD) == "$B" ]] || die "$m: HEAD in $path is not B"
	n=$(count_files "$path")
	[[ $n == "$B_FILES" ]] || die "$m: $n files in $path, B has $B_FILES"
	for p in "${B_EDITS[@]}" "${B_ADDS[@]}" "${C_EDITS[@]}"; do
		cmp -s <(git -C "$UP" cat-file blob "$B:$p") "$path/$p" || die "$m: $path/$p differs from B's"
	done
	[[ -z $(gck -C "$path" status --porcelain --untracked-files=all | head -5) ]] ||
		die "$m: $path is not clean: $(gck -C "$path" status --porcelain | head -5)"
}

# One run of METHOD: prepare (untimed), create (timed), count objects and
# check (untimed), remove (untimed), syncfs.  Sets LAST_MS and LAST_OBJ.
one_run() { # METHOD DEST CHECK
	local m=$1 dest=$2 t0 t1 path
	"prepare_$m" "$dest" >>"$SCRATCH/runs.log" 2>&1 || {
		tail -n 20 "$SCRATCH/runs.log" >&2
		die "preparing $m failed"
	}
	t0=$EPOCHREALTIME
	"create_$m" "$dest" >>"$SCRATCH/runs.log" 2>&1 || {
		tail -n 20 "$SCRATCH/runs.log" >&2
		die "$m failed"
	}
	t1=$EPOCHREALTIME
	LAST_MS=$(elapsed_ms "$t0" "$t1")
	path=$("path_$m" "$dest")
	LAST_OBJ=$(($(count_objects "$path") - $("base_$m")))
	if $3; then
		check_workspace "$m" "$path"
	fi
	"destroy_$m" "$dest" >>"$SCRATCH/runs.log" 2>&1 || {
		tail -n 20 "$SCRATCH/runs.log" >&2
		die "removing $dest failed"
	}
	sync -f "$WORK"
}

# An untimed warm-up run of each method, which also checks its result;
# then round-robin: every round runs each method once, so that load from
# other work on the machine spreads over all methods instead of hitting one.
measure() {
	local m i
	for m in "${METHODS[@]}"; do
		one_run "$m" "$(dest_for "$m" warmup)" true
		WARM_MS[$m]=$LAST_MS
		OBJS[$m]+="$LAST_OBJ "
	done
	log "warm-up done, workspaces checked: $(for m in "${METHODS[@]}"; do printf '%s %s ms  ' "$m" "${WARM_MS[$m]}"; done)"
	for ((i = 1; i <= RUNS; i++)); do
		for m in "${METHODS[@]}"; do
			one_run "$m" "$(dest_for "$m" "$i")" false
			TIMES[$m]+="$LAST_MS "
			OBJS[$m]+="$LAST_OBJ "
		done
		log "run $i/$RUNS: $(for m in "${METHODS[@]}"; do
			printf '%s %s ms  ' "$m" "$(awk '{print $NF}' <<<"${TIMES[$m]}")"
		done)"
	done
	# The cache itself never changed.
	local info
	info=$("$VOLMGR" --socket "$CTL" cache inspect "$CACHE")
	[[ $(jq -r .git.commit <<<"$info") == "$A" && $(jq -r .generation <<<"$info") == 1 ]] ||
		die "the cache changed: $info"
	! gck -C "$CACHE_DIR" cat-file -e "$B^{commit}" 2>/dev/null || die "the cache has B"
}

# -------------------------------------------------------- volmgr's steps

# git as volmgrd runs it: as the git user, with the same -c options,
# environment and global configuration (volmgrd passes that as a sealed
# memfd; here it is a file with the same text).
as_git_user() { # DIR GIT-ARGUMENT...
	local dir=$1
	shift
	setpriv --reuid="$GIT_USER" --regid="$(id -g "$GIT_USER")" --clear-groups \
		env -i PATH=/usr/bin:/bin HOME=/nonexistent LC_ALL=C GIT_CONFIG_NOSYSTEM=1 \
		GIT_CONFIG_GLOBAL="$SCRATCH/git-user.gitconfig" GIT_TERMINAL_PROMPT=0 \
		GIT_ASKPASS=/bin/false SSH_ASKPASS=/bin/false \
		git -C "$dir" -c core.hooksPath=/dev/null -c protocol.ext.allow=never \
		-c core.fsmonitor=false -c 'safe.directory=*' "$@"
}

# Times one step of the replay into STEP_MS[NAME] (it may fail: the
# rev-parses of a missing revision do).
step() { # NAME COMMAND...
	local name=$1 t0
	shift
	t0=$EPOCHREALTIME
	"$@" >>"$SCRATCH/replay.log" 2>&1 || true
	STEP_MS[$name]=$(elapsed_ms "$t0" "$EPOCHREALTIME" | awk '{ printf "%.1f", $1 }')
}

# What volmgrd does for `snapshot cache:NAME@B`, step by step, by hand, once
# (after the timed runs; not in the table): where its time goes.  Then the
# same fetch and checkout in a snapshot of a copy of the cache whose index
# was refreshed a second after its checkout (no racily clean entries).
replay_volmgr() {
	local snap=$WORK/replay base=$WORK/replay-base snap2=$WORK/replay-refreshed
	printf '[core]\n\thooksPath = /dev/null\n\tfsmonitor = false\n[protocol "ext"]\n\tallow = never\n[safe]\n\tdirectory = *\n' \
		>"$SCRATCH/git-user.gitconfig"
	chmod 0644 "$SCRATCH/git-user.gitconfig"
	declare -gA STEP_MS=()
	step snapshot btrfs subvolume snapshot "$CACHE_DIR" "$snap"
	step rev-parse-sha as_git_user "$snap" rev-parse --verify --quiet --end-of-options "$B^{commit}"
	step rev-parse-origin as_git_user "$snap" rev-parse --verify --quiet --end-of-options "origin/$B^{commit}"
	step fetch as_git_user "$snap" fetch --quiet origin --end-of-options "$B"
	step rev-parse-fetch-head as_git_user "$snap" rev-parse --verify --quiet --end-of-options "FETCH_HEAD^{commit}"
	step checkout as_git_user "$snap" checkout --quiet -f --detach "$B" --
	[[ $(gck -C "$snap" rev-parse HEAD) == "$B" ]] || die "replay: HEAD is not B"
	step exec-baseline as_git_user "$snap" --version

	btrfs subvolume snapshot "$CACHE_DIR" "$base" >/dev/null
	sleep 1.1 # past the second of the cache's files and index
	as_git_user "$base" update-index -q --refresh
	REFRESHED_RACY=$(racy_entries "$base")
	btrfs subvolume snapshot "$base" "$snap2" >/dev/null
	as_git_user "$snap2" fetch --quiet origin --end-of-options "$B"
	step checkout-refreshed as_git_user "$snap2" checkout --quiet -f --detach "$B" --
	[[ $(gck -C "$snap2" rev-parse HEAD) == "$B" ]] || die "replay: HEAD is not B"

	btrfs subvolume delete "$snap" "$snap2" "$base" >/dev/null
	btrfs filesystem sync "$WORK" >/dev/null
	btrfs subvolume sync "$WORK" >/dev/null
	log "volmgr's steps by hand: $(for k in snapshot rev-parse-sha rev-parse-origin fetch rev-parse-fetch-head checkout checkout-refreshed exec-baseline; do printf '%s %s ms  ' "$k" "${STEP_MS[$k]}"; done)"
}

# ----------------------------------------------------------------- report

md_list() { # ITEM... -> "`a`, `b` and `c`"
	local out='' i
	for ((i = 1; i <= $#; i++)); do
		((i == 1)) || { ((i == $#)) && out+=' and ' || out+=', '; }
		out+="\`${!i}\`"
	done
	echo "$out"
}


# shellcheck disable=SC2016 # backquotes are Markdown, not expansions
report() {
	local m med min max vm r
	echo "## Per-job workspace at a new commit: volmgr snapshot@rev vs git clone/fetch$($QUICK && echo ' (--quick smoke test, small tree only)')"
	echo
	machine_info "$(git --version)"
	echo "- Tree: **$TREE_NAME**, $TREE_DESC."
	echo "- Upstream: a bare repository on the benchmark's btrfs, used as \`file://\`:" \
		"commit A = the tree ($UP_DESC after \`git repack -a -d\`; add+commit took" \
		"$(ms_to_s "${SETUP[commit]}") s, the repack $(ms_to_s "${SETUP[repack]}") s)," \
		"then B = A with $(md_list "${B_EDITS[@]}") edited (a line appended)" \
		"and \`${B_ADDS[0]}\` added ($B_NEW new objects: commit, blobs, trees)," \
		"and C = B with \`${C_EDITS[0]}\` edited ($C_NEW more); main points at C," \
		"the job wants B (${B:0:12}, $B_FILES files)."
	echo "- Made at A, before B and C existed (untimed): the volmgr cache" \
		"(\`volmgr cache create $CACHE --git file://… --branch main\`, $(ms_to_s "${SETUP[cache]}") s;" \
		"volmgr.conf \`[git] user = $GIT_USER\`), the persistent build directory" \
		"(\`git clone file://…\`, $(ms_to_s "${SETUP[build]}") s) and the mirror used as" \
		"the reference (\`git clone --mirror file://…\`, $(ms_to_s "${SETUP[mirror]}") s)." \
		"\`gc.auto = 0\` in upstream, build directory and mirror (no background gc in a run)."
	echo "- Method: $RUNS timed runs per method after one untimed warm-up run (which also" \
		"checks the result: HEAD = B, every file of B there, the edited and added" \
		"files equal to B's, \`git status\` clean), methods in round-robin order." \
		"Timed: the whole command, wall clock (bash \$EPOCHREALTIME). Untimed, after" \
		"each run: removing the result (\`volmgr rm\` + \`btrfs filesystem sync\` +" \
		"\`btrfs subvolume sync\`; \`rm -rf\`; the build directory's reset, below), then" \
		"\`sync -f\` (syncfs of the benchmark's btrfs). Warm page cache, nothing dropped."
	echo
	echo "| Tree | Method | Median (ms) | Min (ms) | Max (ms) | Median / volmgr median |"
	echo "|---|---|---:|---:|---:|---:|"
	read -r vm _ _ < <(stats "${TIMES[volmgr]}")
	for m in "${METHODS[@]}"; do
		read -r med min max < <(stats "${TIMES[$m]}")
		r=$(awk -v a="$med" -v b="$vm" 'BEGIN { printf "%.1f", a / b }')
		printf '| %s (%s files) | %s | %.1f | %.1f | %.1f | %s× |\n' \
			"$TREE_NAME" "$B_FILES" "${LABEL[$m]}" "$med" "$min" "$max" "$r"
	done
	echo
	echo "Objects each method added to the workspace's own object store (for volmgr: beyond the cache's; warm-up run first, then the timed runs):"
	echo
	for m in "${METHODS[@]}"; do
		echo "- $m: ${OBJS[$m]% }"
	done
	echo
	echo "Notes:"
	echo
	read -r med min max < <(stats "$(daemon_times 'ws-[0-9]+')")
	printf -- '- volmgr: of the CLI'"'"'s median %.1f ms, volmgrd spent a median %.1f ms (min %.1f, max %.1f; its own log) handling the request: the btrfs snapshot of the cache (its generation at A), then, as `%s`, `git rev-parse` of the sha and of `origin/<sha>` (both fail: the cache does not have B), `git fetch origin <sha of B>` (B alone, by id: protocol v2 serves any object id; not C), `git rev-parse FETCH_HEAD` and `git checkout -f --detach`, then the record. The cache is unchanged afterwards (still at A, generation 1, without B: checked).\n' \
		"$vm" "$med" "$min" "$max" "$GIT_USER"
	echo "- Where volmgr's time goes: its steps replayed by hand once after the timed runs" \
		"(as \`$GIT_USER\`, with volmgrd's git options and environment; each git step" \
		"includes starting git through setpriv + env, which alone takes ${STEP_MS[exec-baseline]} ms" \
		"for \`git --version\`): btrfs snapshot ${STEP_MS[snapshot]} ms (the \`btrfs\` command)," \
		"rev-parse of the sha ${STEP_MS[rev-parse-sha]} ms, of origin/sha ${STEP_MS[rev-parse-origin]} ms," \
		"\`git fetch origin <sha>\` ${STEP_MS[fetch]} ms, rev-parse FETCH_HEAD" \
		"${STEP_MS[rev-parse-fetch-head]} ms, \`git checkout -f --detach\` ${STEP_MS[checkout]} ms."
	echo "- The cache's index has $CACHE_RACY entries racily clean: their files were" \
		"written in the second the index was written (or later), so git cannot trust" \
		"their stat data and reads them again on every checkout in a snapshot of the" \
		"cache (git as Debian builds it compares whole seconds; a snapshot keeps the" \
		"cache's index as it is). With that index refreshed a second later" \
		"(\`git update-index --refresh\` in a snapshot, then a snapshot of that: $REFRESHED_RACY racily" \
		"clean), the same checkout of B (after the same fetch) took ${STEP_MS[checkout-refreshed]} ms," \
		"against ${STEP_MS[checkout]} ms above (one run each, on a machine shared with other work)."
	echo "- ref-clone: the reference is the mirror (\`git clone --mirror\` at A, a" \
		"repository on the runner's host), not the cache's repository inside volmgr's" \
		"pool, which a job cannot reach. Only B's and C's objects are fetched; the" \
		"clone then checks out main (C), i.e. writes the whole tree, and \`checkout B\`" \
		"changes one file back."
	echo "- fetch (GIT_STRATEGY=fetch): made honest by a reset of the build directory" \
		"before every run (untimed): \`git checkout -f A\`, refs/remotes/origin/main back" \
		"to A, FETCH_HEAD removed, \`git reflog expire --expire=now --all\`," \
		"\`git prune --expire=now\` ($(if ((REPACKS)); then
			echo "the fetched objects came as a pack $REPACKS times: then also \`git repack -a -d\` and prune again"
		else
			echo "the fetched objects always arrived loose: fewer than transfer.unpackLimit, 100"
		fi)), checked with \`git cat-file -e\` that B and C are gone." \
		"Without the reset, every run after the first would fetch nothing: that is the" \
		"fetch-local row (its objects column shows 0 objects transferred). I chose the" \
		"reset over a fresh B_i per run so that every method and run makes the very same" \
		"workspace. gitlab-runner's real fetch names refspecs" \
		"(\`+refs/heads/*:refs/remotes/origin/* +refs/tags/*:refs/tags/*\`, \`--prune\`);" \
		"with one branch and no tags that is what \`git fetch origin\` does here."
	echo "- clone: a full clone over \`file://\` runs upload-pack/pack-objects and" \
		"index-pack like a network clone, but with no network in between: over a real" \
		"network (a ${UP_DESC##* in one pack of } pack from a git server) it takes" \
		"much longer. The same holds, on a far smaller scale, for the delta every" \
		"method fetches."
	echo "- All repositories, workspaces and volumes are on the same btrfs file system."
	echo
	echo "Raw times (ms, in run order; warm-up in parentheses):"
	echo
	for m in "${METHODS[@]}"; do
		echo "- $m: (${WARM_MS[$m]}) ${TIMES[$m]% }"
	done
}

# ------------------------------------------------------------------- main

main() {
	parse_args "$@"
	bench_start linux-source-6.1 git btrfs-progs xz-utils jq util-linux coreutils diffutils
	umask 022
	setup_git_env

	declare -gA SETUP=() TIMES=() OBJS=() WARM_MS=()
	REPACKS=0
	if $QUICK; then make_btrfs 2G; else make_btrfs 16G; fi
	# The git user works in volmgr's pool and reads upstream by path.
	chmod 0711 "$SCRATCH"
	printf '[git]\nuser = %s\n' "$GIT_USER" >"$SCRATCH/volmgr.conf"
	start_daemon --config "$SCRATCH/volmgr.conf"
	extract_tree
	make_upstream
	make_local_copies
	make_new_commits
	measure
	replay_volmgr
	log "done"

	emit_report report
}

main "$@"
