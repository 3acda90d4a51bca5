# bench/gitrepo.sh — the git repository the git benchmarks work on
# (git-workspace.sh, gitlab-pipeline.sh): sourced after lib.sh, not run.
# shellcheck shell=bash disable=SC2034 # variables set here are used by the scripts
#
# The script sets QUICK_DIRS (the --quick tree) and declares SETUP (an
# associative array of set-up times) before it calls these.

# ------------------------------------------------------------------- git

# Git without the system/global configuration, so that nothing on this
# machine changes what it does; fixed identities and dates, so that the
# commits are the same on every run of the benchmark.
setup_git_env() {
	export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
	export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@localhost
	export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@localhost
	export GIT_AUTHOR_DATE='2026-01-01T00:00:00Z' GIT_COMMITTER_DATE='2026-01-01T00:00:00Z'
}

# git for checks only: the cache and the volumes belong to the git user;
# no index refresh is written by a check.
gck() { GIT_OPTIONAL_LOCKS=0 git -c safe.directory='*' "$@"; }

# Objects in a repository's own object store (loose + packed, not those of
# its alternates).
count_objects() { # DIR
	gck -C "$1" count-objects -v | awk '/^count:/ { c = $2 } /^in-pack:/ { p = $2 } END { print c + p }'
}

# Files, symlinks and other non-directories of the work tree, not .git.
count_files() { # DIR
	find "$1" -mindepth 1 -path "$1/.git" -prune -o ! -type d -print | wc -l
}

# ---------------------------------------------------------------- set-up

# $WORK/src: the tree.
extract_tree() {
	if $QUICK; then
		log "extracting ${QUICK_DIRS[*]}"
		# --occurrence: stop reading the tarball once both are extracted.
		tar -xJf "$TARBALL" -C "$WORK" --occurrence=1 "${QUICK_DIRS[@]/#/$TOP/}"
		mv "$WORK/$TOP" "$WORK/src"
		TREE_NAME=docs
		TREE_DESC="$TOP/{$(IFS=,; echo "${QUICK_DIRS[*]}")}"
	else
		log "extracting $TARBALL"
		tar -xJf "$TARBALL" -C "$WORK"
		mv "$WORK/$TOP" "$WORK/src"
		TREE_NAME=kernel
		TREE_DESC="all of $TOP"
	fi
	TREE_DESC+=": $(count_files "$WORK/src") files and symlinks in $(find "$WORK/src" -type d | wc -l) directories, $(du -sb "$WORK/src" | awk '{printf "%.0f", $1 / 1e6}') MB"
	log "tree: $TREE_DESC"
}

# Upstream with commit A (the tree), packed; the tree itself is removed.
make_upstream() {
	local t0
	UP=$WORK/upstream.git
	URL=file://$UP
	git init -q --bare -b main "$UP"
	git -C "$UP" config gc.auto 0 # no background gc during the runs
	t0=$EPOCHREALTIME
	# -f: the tree's own .gitignore files must not leave files out.
	git --git-dir="$UP" --work-tree="$WORK/src" add -A -f
	git --git-dir="$UP" --work-tree="$WORK/src" commit -q -m "A: $TREE_NAME"
	rm -f "$UP/index"
	SETUP[commit]=$(elapsed_ms "$t0" "$EPOCHREALTIME")
	t0=$EPOCHREALTIME
	git -C "$UP" repack -q -a -d
	git -C "$UP" prune-packed
	SETUP[repack]=$(elapsed_ms "$t0" "$EPOCHREALTIME")
	A=$(git -C "$UP" rev-parse main)
	rm -rf --one-file-system "$WORK/src"
	UP_DESC="$(count_objects "$UP") objects in one pack of $(du -cb "$UP"/objects/pack/*.pack | awk 'END {printf "%.0f", $1 / 1e6}') MB"
	log "upstream at A=$A: $UP_DESC (add+commit $(ms_to_s "${SETUP[commit]}") s, repack $(ms_to_s "${SETUP[repack]}") s)"
}

# A commit on top of PARENT in upstream, made without a work tree: each
# EDIT path gets a line appended, each ADD path is a new file.  Prints the
# commit id.
make_commit() { # PARENT MESSAGE "EDIT..." "ADD..."
	local parent=$1 msg=$2 p blob tree
	local -a edits adds
	read -r -a edits <<<"$3"
	read -r -a adds <<<"$4"
	export GIT_INDEX_FILE=$SCRATCH/commit.index
	git -C "$UP" read-tree "$parent"
	for p in "${edits[@]}"; do
		blob=$({ git -C "$UP" cat-file blob "$parent:$p"; echo "bench: edited in $msg"; } |
			git -C "$UP" hash-object -w --stdin)
		git -C "$UP" update-index --cacheinfo "100644,$blob,$p"
	done
	for p in "${adds[@]}"; do
		blob=$(printf 'bench: added in %s\n' "$msg" | git -C "$UP" hash-object -w --stdin)
		git -C "$UP" update-index --add --cacheinfo "100644,$blob,$p"
	done
	tree=$(git -C "$UP" write-tree)
	rm -f "$GIT_INDEX_FILE"
	unset GIT_INDEX_FILE
	git -C "$UP" commit-tree "$tree" -p "$parent" -m "$msg"
}

