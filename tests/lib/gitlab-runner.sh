# tests/lib/gitlab-runner.sh — gitlab-runner's side of a job, as its
# sources write it, for the tests that play the runner
# (e2e/gitlab-runner-docker.sh, e2e/podman-in-podman.sh): sourced.
# shellcheck shell=bash

# vt_runner_get_sources: the get_sources stage the runner writes for
# GIT_STRATEGY=fetch (shells/abstract.go writeGetSourcesScript; <P> is
# $CI_PROJECT_DIR, <T> $CI_PROJECT_DIR.tmp), with the counts of objects
# before and after the fetch added for the tests ("objects before: N").
# The runner appends post_get_sources_script to it.
vt_runner_get_sources() {
	cat <<'SCRIPT'
set -e
P=$CI_PROJECT_DIR T=$CI_PROJECT_DIR.tmp
count() { set -- $(git count-objects -v | sed -n "s/^count: //p;s/^in-pack: //p"); echo $(($1 + $2)); }
rm -f "$P/.git/index.lock" "$P/.git/shallow.lock" "$P/.git/HEAD.lock" "$P/.git/hooks/post-checkout" "$P/.git/config.lock"
rm -f "$T/git-template/config"; rm -r -f "$T/git-template/hooks"; rm -f "$P/.git/config"; rm -r -f "$P/.git/hooks"
mkdir -p "$T/git-template"
git config --global --add safe.directory "$P"
git config -f "$T/git-template/config" init.defaultBranch none
git config -f "$T/git-template/config" fetch.recurseSubmodules false
git init "$P" --template "$T/git-template" >/dev/null
cd "$P"
if git remote add origin "$CI_REPOSITORY_URL" >/dev/null 2>&1; then echo "Created fresh repository."; else git remote set-url origin "$CI_REPOSITORY_URL"; fi
echo "objects before: $(count)"
git fetch origin --no-recurse-submodules "+refs/heads/*:refs/remotes/origin/*" "+refs/tags/*:refs/tags/*" --prune --quiet
echo "objects after: $(count)"
git -c submodule.recurse=false checkout -f -q "$CI_COMMIT_SHA"
git clean -ffdx
SCRIPT
}

# vt_runner_volume_name PROJECT SLOT: the temporary build volume's name
# with disable_cache (executors/docker/internal/volumes/manager.go:
# runner-<short token>-project-<id>-concurrent-<slot>-<16 hex>-cache-<md5
# of builds_dir /builds>).
vt_runner_volume_name() {
	printf 'runner-abcd1234-project-%s-concurrent-%s-%s-cache-c33bcaa1fd2c77edfc3893b41966cea8\n' \
		"$1" "$2" "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
}
