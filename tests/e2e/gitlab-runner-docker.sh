#!/usr/bin/env bash
# What gitlab-runner's docker executor does for a job, played with the
# recipe in helpers/gitlab-runner/ (config.toml, volmgr.conf, the hook),
# following its documentation and sources (helpers/gitlab-runner/RESEARCH.md):
#   - the build volume is created through the plugin with a runner-style
#     temporary name (disable_cache = true) and the recipe's driver;
#   - volmgr's seed rule makes it a snapshot of the project's cache, so the
#     helper container's `git fetch` (GIT_STRATEGY=fetch) gets the delta only;
#   - the build container gets the recipe's volumes and the variables the
#     runner sets, and runs pre_build_script and the job script in one shell;
#   - the job's nested formatter container changes a file the job then sees;
#   - the runner removes the volume after the job; a second job starts clean.
# gitlab-runner itself cannot be installed here; everything else is real.
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/common.sh"
. "$here/../lib/engines.sh"

vt_init gitlab-runner-docker
vt_require_root
vt_require_cmd btrfs jq git python3
recipe=$(realpath "$VT_SRCDIR/../helpers/gitlab-runner")

vt_step "read the recipe's config.toml"
toml() { python3 -c 'import sys, tomllib, json; c = tomllib.load(open(sys.argv[1], "rb")); r = c["runners"][0]; print(json.dumps(r))' "$recipe/config.toml"; }
runner=$(toml)
vt_assert_eq volmgr "$(jq -r '.docker.volume_driver' <<<"$runner")" "volume_driver"
vt_assert_eq true "$(jq -r '.docker.disable_cache' <<<"$runner")" "disable_cache"
builds_dir=$(jq -r .builds_dir <<<"$runner")
pre_build=$(jq -r .pre_build_script <<<"$runner")
mapfile -t env_vars < <(jq -r '.environment[]' <<<"$runner")
mapfile -t recipe_volumes < <(jq -r '.docker.volumes[]' <<<"$runner")
vt_assert_eq /builds "$builds_dir" "builds_dir"

pool=$(vt_make_pool btrfs)
VT_DAEMON_CONFIG=$recipe/volmgr.conf vt_start_daemon "$pool"
vt_docker_ensure

# The host side of the recipe's volumes, made for this test: the directory
# with the static CLI, volmgr-run and the hook; the cache directory.
container_dir=$VT_TMP/volmgr-container
install -D -m 0755 "$VOLMGR" "$container_dir/bin/volmgr"
install -D -m 0755 "$VT_SRCDIR/../helpers/volmgr-run" "$container_dir/bin/volmgr-run"
install -D -m 0644 "$recipe/gitlab-runner-pre-build.sh" "$container_dir/gitlab-runner-pre-build.sh"
mkdir -p "$VT_TMP/runner-cache"
binds=()
for v in "${recipe_volumes[@]}"; do
	host=${v%%:*} rest=${v#*:}
	case $host in
	/run/volmgr/control.sock) host=$VT_CONTROL_SOCK ;;
	/usr/lib/volmgr/container) host=$container_dir ;;
	/var/run/docker.sock) host=$VT_DOCKER_SOCK ;;
	/srv/gitlab-runner/cache) host=$VT_TMP/runner-cache ;;
	*) vt_fail "the recipe mounts $host: teach this test what it is" ;;
	esac
	binds+=(-v "$host:$rest")
done

vt_step "upstream repository and the project's cache (a checkout at the first commit)"
upstream=$VT_TMP/upstream.git
git init -q --bare "$upstream"
work=$VT_TMP/work
git clone -q "file://$upstream" "$work" 2>/dev/null
for i in $(seq 1 40); do printf 'line %d\n' "$i" >"$work/file-$i.txt"; done
printf 'needs   \nformatting   \n' >"$work/style.txt"
git -C "$work" add -A
git -C "$work" -c user.name=t -c user.email=t@example.org commit -qm first
git -C "$work" push -q origin HEAD:main
first=$(git -C "$work" rev-parse HEAD)
seed=$VT_TMP/seed
mkdir -p "$seed/group"
git clone -q -b main "file://$upstream" "$seed/group/project"
"$VOLMGR" cache import project-42 "$seed"
echo changed >"$work/file-7.txt"
echo new >"$work/new.txt"
git -C "$work" add -A
git -C "$work" -c user.name=t -c user.email=t@example.org commit -qm second
git -C "$work" push -q origin HEAD:main
sha=$(git -C "$work" rev-parse HEAD)
delta=$(git -C "$upstream" rev-list --objects "$first..$sha" | wc -l)
vt_log "the second commit adds $delta objects"

job_img=$(vt_docker_image "$(vt_docker_client)" "$(command -v git)" /usr/bin/git-upload-pack)
fmt_img=$(vt_docker_image)

# run_job N: one job, as the docker executor runs it.
run_job() {
	local n=$1 rnd vol
	rnd=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
	vol=runner-abcd1234-project-42-concurrent-0-$rnd-cache-$(printf %s "$builds_dir" | md5sum | cut -c1-32)
	vt_track_volume docker "$vol"
	local ci=(-e CI=true -e "CI_JOB_ID=100$n" -e CI_PROJECT_ID=42 -e CI_CONCURRENT_ID=0
		-e "CI_BUILDS_DIR=$builds_dir" -e "CI_PROJECT_DIR=$builds_dir/group/project"
		-e "CI_COMMIT_SHA=$sha" -e "CI_REPOSITORY_URL=file://$upstream")
	for e in "${env_vars[@]}"; do ci+=(-e "$e"); done

	vt_step "job $n: the runner creates its build volume $vol through the plugin"
	docker volume create -d "$VT_DRIVER" "$vol" >/dev/null
	vt_assert_eq cache:project-42 "$("$VOLMGR" inspect "$vol" | jq -r .source)" "seeded from the project's cache"

	vt_step "job $n: get_sources in the helper container: git fetch (GIT_STRATEGY=fetch)"
	out=$(docker run --rm --name "vt-$VT_ID-helper-$n" --network none "${ci[@]}" \
		-v "$vol:$builds_dir" -v "$upstream:$upstream:ro" "${binds[@]}" "$job_img" sh -c '
		set -e
		cd "$CI_PROJECT_DIR"
		git config --global --add safe.directory "*"
		[ "$GIT_STRATEGY" = fetch ]
		git fetch -q origin
		git checkout -q -f "$CI_COMMIT_SHA"
		git count-objects -v | sed -n "s/^count: //p"')
	vt_assert_eq "$delta" "$out" "loose objects fetched (the delta only)"

	vt_step "job $n: the build container runs pre_build_script and the script in one shell"
	vt_on_exit vt_rm_container docker "vt-$VT_ID-build-$n"
	script="$pre_build
set -e
test \"\$(cat file-7.txt)\" = changed
docker run --rm --network none -v \"\$VOLMGR_VOLUME:\$VOLMGR_VOLUME_PATH\" -w \"\$CI_PROJECT_DIR\" $fmt_img sed -i 's/ *\$//' style.txt
volmgr-run --network none -- $fmt_img sh -c \"echo job-$n > out-\$CI_JOB_ID; pwd\"
git config --global --add safe.directory '*'
git diff --stat
ls"
	out=$(docker run --rm --name "vt-$VT_ID-build-$n" --network none "${ci[@]}" \
		-v "$vol:$builds_dir" "${binds[@]}" -w "$builds_dir/group/project" \
		"$job_img" sh -c "$script" 2>&1)
	vt_log "$out"
	vt_assert_contains "$out" "volmgr: this job's workspace is the volume $vol, mounted at $builds_dir" "the hook"
	vt_assert_contains "$out" "style.txt | 4" "the job sees the nested formatter's change"
	vt_assert_contains "$out" "out-100$n" "volmgr-run's container wrote into the job's workspace"
	[[ $out != *out-100$((n - 1))* ]] || vt_fail "job $n sees the previous job's file"

	vt_step "job $n ends: the runner removes its build volume"
	docker volume rm "$vol" >/dev/null
	vt_untrack_volume docker "$vol"
	vt_assert_volume_gone "$vol"
}

run_job 1
run_job 2
vt_assert_eq "needs   " "$(head -n1 "$pool/caches/project-42/group/project/style.txt")" "the cache is untouched"
