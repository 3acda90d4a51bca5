#!/usr/bin/env bash
# helpers/volmgr-run and the user's lint pattern (assert no diffs; run a
# formatter container over the checkout; assert no diffs) run unchanged on
# a "laptop" (a bind mount of the git top level) and in a CI job container
# whose checkout is a volmgr volume; the formatter's change is visible to
# the caller in both.
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/common.sh"
. "$here/../lib/engines.sh"

vt_init volmgr-run-lint
vt_require_root
vt_require_cmd btrfs jq git

pool=$(vt_make_pool btrfs)
vt_start_daemon "$pool"
vt_docker_ensure
run=$(realpath "$VT_SRCDIR/../helpers/volmgr-run")
[[ -x $run ]] || vt_fail "no helpers/volmgr-run"
fmt_img=$(vt_docker_image)
job_img=$(vt_docker_image "$(vt_docker_client)" "$VOLMGR" "$(command -v git)" "$run")

# The repository: a lint script exactly as a developer would write it.
repo=$VT_TMP/laptop/repo
mkdir -p "$repo/src/sub"
cat >"$repo/lint.sh" <<LINT
#!/bin/sh
# assert no diffs; format the checkout in a container; assert no diffs
assert_no_diffs() {
	git diff --exit-code >/dev/null || { echo "lint: the formatter changed files:"; git diff --stat; exit 1; }
}
assert_no_diffs
volmgr-run --network none -- $fmt_img sh -c 'for f in \$(find . -name "*.txt"); do sed -i "s/[[:space:]]*\\\$//" "\$f"; done; echo "formatted in \$(pwd)"'
assert_no_diffs
echo "lint ok"
LINT
chmod +x "$repo/lint.sh"
printf 'clean\n' >"$repo/src/a.txt"
printf 'also clean\n' >"$repo/src/sub/b.txt"
git -C "$repo" init -q
git -C "$repo" add -A
git -C "$repo" -c user.name=t -c user.email=t@example.org commit -qm clean
commit_dirty() {
	printf 'trailing   \n' >"$1/src/sub/b.txt"
	git -C "$1" -c user.name=t -c user.email=t@example.org commit -qam dirty
}

vt_step "laptop: lint passes on a clean checkout, from a subdirectory"
out=$(cd "$repo/src/sub" && PATH=$(dirname "$run"):$PATH VOLMGR_ENGINE=docker ../../lint.sh)
vt_assert_contains "$out" "formatted in $repo/src/sub" "the container starts in the caller's directory"
vt_assert_contains "$out" "lint ok" "lint on a clean checkout"

vt_step "laptop: the formatter's change is seen and fails the lint"
commit_dirty "$repo"
status=0
out=$(cd "$repo" && PATH=$(dirname "$run"):$PATH VOLMGR_ENGINE=docker ./lint.sh) || status=$?
vt_assert_eq 1 "$status" "lint exit status"
vt_assert_contains "$out" "src/sub/b.txt" "the diff names the file"
vt_assert_eq trailing "$(cat "$repo/src/sub/b.txt")" "the fix is in the working tree"
git -C "$repo" checkout -q -- .

vt_step "CI: the checkout is a volmgr volume; the same lint.sh runs in a job container"
"$VOLMGR" cache import repo "$repo"
vol=ci-$VT_ID
docker volume create -d "$VT_DRIVER" -o source=cache:repo "$vol" >/dev/null
vt_on_exit vt_rm_volume docker "$vol"
vt_on_exit vt_rm_container docker "vt-$VT_ID-job"
status=0
out=$(docker run --rm --name "vt-$VT_ID-job" --network none -e VOLMGR_ENGINE=docker \
	-v "$vol:/builds/g/repo" -w /builds/g/repo/src \
	-v "$VT_DOCKER_SOCK:/var/run/docker.sock" -v "$VT_CONTROL_SOCK:/run/volmgr/control.sock" \
	"$job_img" sh -c 'git config --global --add safe.directory "*";
		volmgr which --mount .; ../lint.sh; s=$?; git diff --stat; exit $s' 2>&1) || status=$?
vt_log "$out"
vt_assert_contains "$out" "$vol /builds/g/repo" "which --mount in the job container"
vt_assert_contains "$out" "formatted in /builds/g/repo/src" "the nested container's working directory"
vt_assert_eq 1 "$status" "lint exit status in CI"
vt_assert_contains "$out" "src/sub/b.txt" "the job container sees the formatter's change"
vt_assert_eq trailing "$(cat "$pool/volumes/$vol/src/sub/b.txt")" "the change is in the job's volume"
vt_assert_eq "trailing   " "$(cat "$pool/caches/repo/src/sub/b.txt")" "the cache is untouched"
