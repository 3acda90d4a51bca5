#!/usr/bin/env bash
# What gitlab-runner's docker executor does for a job, played with the
# recipe in helpers/gitlab-runner/ (config.toml, volmgr.conf, the hooks),
# as its sources do it (gitlab-runner v16.9 to v19.3; files cited below and
# in helpers/gitlab-runner/RESEARCH.md):
#   - the build volume is created through the plugin with a runner-style
#     temporary name (disable_cache = true; executors/docker/internal/
#     volumes/manager.go), then the helper's cache-init makes its top 0777
#     (executors/docker/internal/volumes/permission/linux_set.go);
#   - the helper container is created once and started again for each
#     stage (a Mount and an Unmount per stage), its get_sources stage the
#     script the runner writes (shells/abstract.go writeGetSourcesScript:
#     lock files and .git/config and hooks removed, git init --template,
#     remote add or set-url, fetch with refspecs --prune --quiet, checkout
#     -f -q SHA, clean -ffdx), then post_get_sources_script: the recipe's
#     hook promotes the volume into the project's cache;
#   - nothing is imported by hand: job 1 finds no cache and fetches all,
#     job 2 starts from the cache job 1 made and fetches only the delta,
#     a job of a protected ref never starts from (or feeds) that cache;
#   - the build container gets the recipe's volumes (the job socket, never
#     the control socket) and the variables the runner sets, and runs
#     pre_build_script and the job script in one shell; the hook works in a
#     container that does not run as root;
#   - the job's nested formatter container changes a file the job then sees,
#     through the engine socket (volmgr-engined) that the recipe mounts at
#     /var/run/docker.sock, and so does the seed's unchanged
#     `docker run -v "$(pwd):/workspace"`;
#   - the runner removes its containers, then the volume (forced);
#   - GIT_STRATEGY clone, none and empty on a seeded volume; the per-slot
#     names (before 18.4: seeded and reused; the sha256 ones from 18.4:
#     not seeded); volume_driver_ops passed to VolumeCreate; two jobs of
#     one project at once and one of another project; an image VOLUME of
#     the build image through the plugin.
# gitlab-runner itself cannot be installed here; everything else is real.
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/common.sh"
. "$here/../lib/engines.sh"
# shellcheck source=../lib/engined.sh
. "$here/../lib/engined.sh"
# shellcheck source=../lib/gitlab-runner.sh
. "$here/../lib/gitlab-runner.sh"

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
post_get_sources=$(jq -r .post_get_sources_script <<<"$runner")
mapfile -t env_vars < <(jq -r '.environment[]' <<<"$runner")
mapfile -t recipe_volumes < <(jq -r '.docker.volumes[]' <<<"$runner")
# volume_driver_ops: passed verbatim as DriverOpts (manager.go createCacheVolume)
mapfile -t driver_ops < <(jq -r '.docker.volume_driver_ops // {} | to_entries[] | "-o", "\(.key)=\(.value)"' <<<"$runner")
vt_assert_eq /builds "$builds_dir" "builds_dir"

pool=$(vt_make_pool btrfs)
vt_docker_ensure
# The recipe's volmgr.conf, with this test's engine socket for the host's.
sed "s|^docker = /var/run/docker.sock$|docker = $VT_DOCKER_SOCK|" "$recipe/volmgr.conf" >"$VT_TMP/volmgr.conf"
grep -qx "docker = $VT_DOCKER_SOCK" "$VT_TMP/volmgr.conf" || vt_fail "the recipe's volmgr.conf lists no docker engine"
VT_DAEMON_CONFIG=$VT_TMP/volmgr.conf vt_start_daemon "$pool"
vt_start_engined "$VT_DOCKER_SOCK"

# The host side of the recipe's volumes, made for this test: the directory
# with the static CLI, volmgr-run and the hook; the cache directory.
container_dir=$VT_TMP/volmgr-container
install -D -m 0755 "$VOLMGR" "$container_dir/bin/volmgr"
install -D -m 0755 "$VT_SRCDIR/../helpers/volmgr-run" "$container_dir/bin/volmgr-run"
install -D -m 0644 "$recipe/gitlab-runner-pre-build.sh" "$container_dir/gitlab-runner-pre-build.sh"
install -D -m 0644 "$recipe/gitlab-runner-post-get-sources.sh" "$container_dir/gitlab-runner-post-get-sources.sh"
mkdir -p "$VT_TMP/runner-cache"
binds=()
for v in "${recipe_volumes[@]}"; do
	host=${v%%:*} rest=${v#*:}
	case $host in
	/run/volmgr/job.sock) host=$VT_JOB_SOCK ;;
	/usr/lib/volmgr/container) host=$container_dir ;;
	/run/volmgr/engine.sock) host=$VT_ENGINE_SOCK ;;
	/srv/gitlab-runner/cache) host=$VT_TMP/runner-cache ;;
	*) vt_fail "the recipe mounts $host: teach this test what it is" ;;
	esac
	binds+=(-v "$host:$rest")
done

vt_step "upstream repository, two commits; no cache is made by hand"
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
total=$(git -C "$upstream" rev-list --objects --all | wc -l)

job_img=$(vt_docker_image "$(vt_docker_client)" "$(command -v git)" /usr/bin/git-upload-pack)
fmt_img=$(vt_docker_image)

# The get_sources stage as the runner writes it for GIT_STRATEGY=fetch,
# then post_get_sources_script (lib/gitlab-runner.sh).
get_sources="$(vt_runner_get_sources)
$post_get_sources"

# run_job N SHA [-protected]: one job, as the docker executor runs it;
# echoes the get_sources stage's output.
run_job() {
	local n=$1 sha=$2 protected=${3:-} rnd vol helper
	rnd=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
	vol=runner-abcd1234-project-42-concurrent-0-$rnd-cache-$(printf %s "$builds_dir" | md5sum | cut -c1-32)$protected
	vt_track_volume docker "$vol"
	local ci=(-e CI=true -e "CI_JOB_ID=100$n" -e CI_PROJECT_ID=42 -e CI_CONCURRENT_ID=0
		-e "CI_BUILDS_DIR=$builds_dir" -e "CI_PROJECT_DIR=$builds_dir/group/project"
		-e "CI_COMMIT_SHA=$sha" -e "CI_REPOSITORY_URL=file://$upstream"
		-e "CI_COMMIT_TIMESTAMP=$(git -C "$upstream" log -1 --format=%cI "$sha")")
	for e in "${env_vars[@]}"; do ci+=(-e "$e"); done

	vt_step "job $n: the runner creates its build volume $vol through the plugin"
	docker volume create -d "$VT_DRIVER" "${driver_ops[@]}" "$vol" >/dev/null
	[[ -n $("$VOLMGR" inspect "$vol" | jq -r '.expires // empty') ]] ||
		vt_fail "volume_driver_ops' ttl did not reach the volume"
	vt_step "job $n: cache-init makes the volume's top writable by any user"
	docker run --rm --network none -v "$vol:/gitlab-runner-cache-init" "$job_img" \
		chmod 0777 /gitlab-runner-cache-init
	vt_assert_eq 777 "$(stat -c %a "$("$VOLMGR" inspect "$vol" | jq -r .mountpoint)")" "cache-init"

	vt_step "job $n: get_sources in the helper container, then post_get_sources_script"
	helper=vt-$VT_ID-helper-$n
	vt_on_exit vt_rm_container docker "$helper"
	docker create -i --name "$helper" --network none "${ci[@]}" -v "$vol:$builds_dir" \
		-v "$upstream:$upstream:ro" "${binds[@]}" "$job_img" sh >/dev/null
	# prepare: the runner's first start of the predefined container
	docker start -ai "$helper" <<<'true'
	last_out=$(docker start -ai "$helper" <<<"$get_sources" 2>&1) ||
		vt_fail "get_sources failed: $last_out"
	vt_log "$last_out"

	vt_step "job $n: the build container runs pre_build_script and the script in one shell"
	vt_on_exit vt_rm_container docker "vt-$VT_ID-build-$n"
	script="$pre_build
set -e
test \"\$(git -c safe.directory='*' rev-parse HEAD)\" = \"\$CI_COMMIT_SHA\"
docker run --rm --network none -v \"\$VOLMGR_VOLUME:\$VOLMGR_VOLUME_PATH\" -w \"\$CI_PROJECT_DIR\" $fmt_img sed -i 's/ *\$//' style.txt
docker run --rm --network none -v \"\$(pwd):/workspace\" -w /workspace $fmt_img sh -c 'echo seed-$n > seed-out'
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
	vt_assert_eq "seed-$n" "$(cat "$pool/volumes/$vol/group/project/seed-out")" \
		"the seed's unchanged docker run -v \"\$(pwd):/workspace\" wrote into the job's checkout"
	[[ $out != *out-100$((n - 1))* ]] || vt_fail "job $n sees the previous job's file"

	vt_step "job $n: after_script, a shell of its own, gets the variables through \$GITLAB_ENV"
	out=$(docker run --rm --network none "${ci[@]}" -v "$vol:$builds_dir" "${binds[@]}" \
		-w "$builds_dir/group/project" "$job_img" sh -c '
		set -e
		export GITLAB_ENV="$CI_PROJECT_DIR.tmp/gitlab_runner_env"
		mkdir -p "${GITLAB_ENV%/*}" && touch "$GITLAB_ENV"
		( '"$pre_build"' ) >/dev/null
		# the runner, before after_script (shells/abstract.go, writeExports)
		unset VOLMGR_VOLUME
		while read -r line; do export "$line"; done <"$GITLAB_ENV"
		echo "after_script sees $VOLMGR_VOLUME at $VOLMGR_VOLUME_PATH"' 2>&1)
	vt_assert_contains "$out" "after_script sees $vol at $builds_dir" "after_script's variables"

	vt_step "job $n: a job image that does not run as root gets its workspace too (the job socket)"
	out=$(docker run --rm --user 65534:65534 --network none "${ci[@]}" -v "$vol:$builds_dir" \
		"${binds[@]}" -w "$builds_dir/group/project" "$job_img" sh -c "$pre_build
echo \"volume=\$VOLMGR_VOLUME\"" 2>&1)
	vt_assert_contains "$out" "volume=$vol" "the hook as uid 65534"

	vt_step "job $n ends: the runner removes its containers, then the volume (forced)"
	docker rm -f "$helper" >/dev/null
	docker volume rm -f "$vol" >/dev/null
	vt_untrack_volume docker "$vol"
	vt_assert_volume_gone "$vol"
}
objects() { sed -n "s/^objects $1: //p" <<<"$last_out"; }

run_job 1 "$first"
vt_assert_eq 0 "$(objects before)" "job 1 found no cache"
vt_assert_eq "$total" "$(objects after)" "job 1 fetched every object"
vt_assert_contains "$last_out" "cache project-42: generation 1 is volume" "job 1 warmed the project's cache"
vt_assert_eq "$first" "$("$VOLMGR" cache inspect project-42 | jq -r .promoted.commit)" "the cache's commit"

echo changed >"$work/file-7.txt"
echo new >"$work/new.txt"
git -C "$work" add -A
git -C "$work" -c user.name=t -c user.email=t@example.org commit -qm second
git -C "$work" push -q origin HEAD:main
sha=$(git -C "$work" rev-parse HEAD)
delta=$(git -C "$upstream" rev-list --objects "$first..$sha" | wc -l)
vt_log "the second commit adds $delta objects"

run_job 2 "$sha"
vt_assert_eq "$total" "$(objects before)" "job 2 started from the cache"
vt_assert_eq "$((total + delta))" "$(objects after)" "job 2 fetched the delta only"
vt_assert_contains "$last_out" "cache project-42: generation 2 is volume" "job 2 refreshed the cache"

run_job 3 "$sha" -protected
vt_assert_eq 0 "$(objects before)" "a protected job does not start from the unprotected cache"
vt_assert_contains "$last_out" "cache project-42-protected: generation 1 is volume" "it warms its own"
vt_assert_eq 2 "$("$VOLMGR" cache inspect project-42 | jq -r .generation)" "the unprotected cache is untouched"
vt_assert_eq "needs   " "$(head -n1 "$pool/caches/project-42/group/project/style.txt")" "the cache holds the checkout, not the job's changes"
# play_job N SHA STRATEGY [PROJECT [SLOT [FORM [UPSTREAM]]]]: a job with
# GIT_STRATEGY fetch, clone, none or empty, as the runner writes each
# one's get_sources (shells/abstract.go handleGetSourcesStrategy,
# writeCloneCmdIfPossible: clone removes the project directory, then
# fetches as for fetch; none only makes the directory; empty, from 17.3,
# works in <P>-empty, removed and made again; the post_get_sources hook
# runs for fetch and clone only (none and, since 18.2, empty skip the
# hooks: guardGetSourcesScriptHooks)).  FORM is the build volume's name
# (executors/docker/internal/volumes/manager.go, common/build.go): "temp"
# (default: disable_cache, removed after the job), "slot" (the per-slot
# name before 18.4, kept) or "sha256" (the per-slot name from 18.4, kept:
# runner-<sha256 of token, system id, project, slot>-cache-<md5>).
# Echoes get_sources' output, then the build container's.
play_job() {
	local n=$1 sha=$2 strategy=$3 project=${4:-42} slot=${5:-0} form=${6:-temp}
	local up=${7:-$upstream} rnd vol helper pdir=$builds_dir/group/project$project gs md5
	[[ $project != 42 ]] || pdir=$builds_dir/group/project
	[[ $strategy != empty ]] || pdir=$pdir-empty
	md5=$(printf %s "$builds_dir" | md5sum | cut -c1-32)
	rnd=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
	case $form in
	temp) vol=runner-abcd1234-project-$project-concurrent-$slot-$rnd-cache-$md5 ;;
	slot) vol=runner-abcd1234-project-$project-concurrent-$slot-cache-$md5 ;;
	sha256) vol=runner-$(printf 'glrt-TOKEN-s_SYSTEM-%s-%s' "$project" "$slot" | sha256sum | cut -c1-32)-cache-$md5 ;;
	esac
	vt_track_volume docker "$vol"
	local ci=(-e CI=true -e "CI_JOB_ID=200$n" -e "CI_PROJECT_ID=$project" -e "CI_CONCURRENT_ID=$slot"
		-e "CI_BUILDS_DIR=$builds_dir" -e "CI_PROJECT_DIR=$pdir"
		-e "CI_COMMIT_SHA=$sha" -e "CI_REPOSITORY_URL=file://$up"
		-e "CI_COMMIT_TIMESTAMP=$(git -C "$up" log -1 --format=%cI "$sha")")
	for e in "${env_vars[@]}"; do ci+=(-e "$e"); done
	ci+=(-e "GIT_STRATEGY=$strategy")
	case $strategy in
	fetch) gs=$get_sources ;;
	clone) gs='P=$CI_PROJECT_DIR; if [ -d "$P" ]; then chmod -R u+rwX "$P"; fi; rm -r -f "$P"
'"$get_sources" ;;
	none) gs='echo "Skipping Git repository setup"; mkdir -p "$CI_PROJECT_DIR"' ;;
	empty) gs='echo "Skipping Git repository setup and creating an empty build directory"
P=$CI_PROJECT_DIR; if [ -d "$P" ]; then chmod -R u+rwX "$P"; fi; rm -r -f "$P"; mkdir -p "$P"' ;;
	esac
	# VolumeCreate with the driver and volume_driver_ops (manager.go
	# createCacheVolume), then cache-init; a per-slot volume that exists
	# is only inspected (its Get) and reused.
	docker volume create -d "$VT_DRIVER" "${driver_ops[@]}" "$vol" >/dev/null
	docker run --rm --network none -v "$vol:/gitlab-runner-cache-init" "$job_img" \
		chmod 0777 /gitlab-runner-cache-init
	helper=vt-$VT_ID-helper-x$n
	vt_on_exit vt_rm_container docker "$helper"
	docker create -i --name "$helper" --network none "${ci[@]}" -v "$vol:$builds_dir" \
		-v "$up:$up:ro" "${binds[@]}" "$job_img" sh >/dev/null
	docker start -ai "$helper" <<<'true'
	docker start -ai "$helper" <<<"$gs" 2>&1 || vt_fail "get_sources ($strategy) of job $n failed"
	docker run --rm --network none "${ci[@]}" -v "$vol:$builds_dir" "${binds[@]}" \
		-w "$pdir" "$job_img" sh -c "$pre_build
echo \"head=\$(git -c safe.directory='*' rev-parse -q --verify HEAD 2>/dev/null || echo none)\"
echo \"entries=\$(ls -A | wc -l)\"
echo job > marker-\$CI_JOB_ID
echo \"markers=\$(ls marker-* | tr '\\n' ' ')\"" 2>&1 || vt_fail "the build container of job $n failed"
	docker rm -f "$helper" >/dev/null
	if [[ $form == temp ]]; then
		docker volume rm -f "$vol" >/dev/null
		vt_untrack_volume docker "$vol"
	fi
	echo "volume=$vol"
}

vt_step "GIT_STRATEGY=clone: the seeded checkout is removed and everything fetched again"
out=$(play_job 4 "$sha" clone)
vt_log "$out"
vt_assert_contains "$out" "objects before: 0" "clone starts from nothing"
vt_assert_contains "$out" "objects after: $((total + delta))" "clone fetches every object"
vt_assert_contains "$out" "head=$sha" "clone checks the job's commit out"
vt_assert_contains "$out" "cache project-42: kept at generation 2" "the same commit keeps the cache"

echo third >"$work/third.txt"
git -C "$work" add -A
git -C "$work" -c user.name=t -c user.email=t@example.org commit -qm third
git -C "$work" push -q origin HEAD:main
third=$(git -C "$work" rev-parse HEAD)

vt_step "GIT_STRATEGY=none: the cached checkout as it is, at the cache's commit, and the hook says so"
out=$(play_job 5 "$third" none)
vt_log "$out"
vt_assert_contains "$out" "head=$sha" "none leaves the cache's commit"
vt_assert_contains "$out" "GIT_STRATEGY=none: $builds_dir/group/project is the project's cached checkout at commit $sha, not this job's commit $third" "the hook's note"
vt_assert_eq 2 "$("$VOLMGR" cache inspect project-42 | jq -r .generation)" "none promotes nothing"

vt_step "GIT_STRATEGY=empty: an empty directory beside the seeded checkout"
out=$(play_job 6 "$third" empty)
vt_log "$out"
vt_assert_contains "$out" "volmgr: this job's workspace is the volume" "the hook"
vt_assert_contains "$out" "head=none" "empty has no checkout"
vt_assert_contains "$out" "entries=0" "empty is empty"
vt_assert_eq 2 "$("$VOLMGR" cache inspect project-42 | jq -r .generation)" "empty promotes nothing"

vt_step "per-slot names before 18.4: seeded, kept and reused by the next job of the slot"
out=$(play_job 7 "$third" fetch 42 1 slot)
vt_log "$out"
slotvol=$(sed -n 's/^volume=//p' <<<"$out")
vt_assert_eq "$((total + delta))" "$(sed -n 's/^objects before: //p' <<<"$out")" "the per-slot volume starts from the cache"
vt_assert_contains "$out" "cache project-42: generation 3 is volume $slotvol" "it feeds the cache"
out=$(play_job 8 "$third" fetch 42 1 slot)
vt_log "$out"
before=$(sed -n 's/^objects before: //p' <<<"$out") after=$(sed -n 's/^objects after: //p' <<<"$out")
((before > 0)) || vt_fail "the slot's second job did not reuse its volume"
vt_assert_eq "$before" "$after" "the slot's second job had nothing to fetch"
vt_assert_contains "$out" "markers=marker-2008 " "git clean -ffdx removed the first job's untracked file"

vt_step "per-slot names from 18.4 (sha256, no project in them): not seeded, not promoted, the job runs"
out=$(play_job 9 "$third" fetch 42 0 sha256)
vt_log "$out"
shavol=${out##*volume=}
vt_assert_eq 0 "$(sed -n 's/^objects before: //p' <<<"$out")" "no seed rule matches the sha256 name"
vt_assert_contains "$out" "made by no seed rule" "the promote hook says why it did nothing"
vt_assert_contains "$out" "head=$third" "the job has its checkout all the same"
docker volume rm -f "$slotvol" "$shavol" >/dev/null
vt_untrack_volume docker "$slotvol"
vt_untrack_volume docker "$shavol"

vt_step "two jobs of project 42 at once, and one of project 43, on one runner"
up43=$VT_TMP/upstream43.git
git init -q --bare "$up43"
git clone -q "file://$up43" "$VT_TMP/work43" 2>/dev/null
echo other >"$VT_TMP/work43/other.txt"
git -C "$VT_TMP/work43" add -A
git -C "$VT_TMP/work43" -c user.name=t -c user.email=t@example.org commit -qm other
git -C "$VT_TMP/work43" push -q origin HEAD:main
sha43=$(git -C "$VT_TMP/work43" rev-parse HEAD)
echo fourth >"$work/fourth.txt"
git -C "$work" add -A
git -C "$work" -c user.name=t -c user.email=t@example.org commit -qm fourth
git -C "$work" push -q origin HEAD:main
fourth=$(git -C "$work" rev-parse HEAD)
play_job 10 "$fourth" fetch 42 0 >"$VT_TMP/job10.out" 2>&1 &
j10=$!
play_job 11 "$fourth" fetch 42 1 >"$VT_TMP/job11.out" 2>&1 &
j11=$!
play_job 12 "$sha43" fetch 43 2 "" "$up43" >"$VT_TMP/job12.out" 2>&1 &
j12=$!
wait "$j10" || vt_fail "job 10 failed: $(cat "$VT_TMP/job10.out")"
wait "$j11" || vt_fail "job 11 failed: $(cat "$VT_TMP/job11.out")"
wait "$j12" || vt_fail "job 12 failed: $(cat "$VT_TMP/job12.out")"
for n in 10 11; do
	out=$(cat "$VT_TMP/job$n.out")
	vt_log "$out"
	[[ $out != *"objects before: 0"* ]] || vt_fail "job $n did not start from project 42's cache"
	vt_assert_contains "$out" "head=$fourth" "job $n's checkout"
	vt_assert_contains "$out" "markers=marker-200$n " "job $n sees only its own files"
done
promoted=$(cat "$VT_TMP/job10.out" "$VT_TMP/job11.out" | grep -c "cache project-42: generation 4 is volume" || true)
vt_assert_eq 1 "$promoted" "one of the two promoted the fourth commit, the other kept it"
vt_assert_eq 4 "$("$VOLMGR" cache inspect project-42 | jq -r .generation)" "project 42's cache"
out=$(cat "$VT_TMP/job12.out")
vt_log "$out"
vt_assert_contains "$out" "objects before: 0" "project 43 does not start from project 42's cache"
vt_assert_contains "$out" "cache project-43: generation 1 is volume" "it warms its own"
vt_assert_contains "$out" "markers=marker-20012 " "job 12 sees only its own files"

vt_step "an image VOLUME of the build image: an anonymous volume through the plugin, removed with the container"
# The runner sets HostConfig.VolumeDriver = volume_driver on the helper
# and build containers (docker.go createHostConfig); Docker makes each
# image VOLUME an anonymous volume with that driver (moby
# daemon/create_unix.go) and removes it with the container
# (ContainerRemove RemoveVolumes, the runner's cleanup).
saved=("${VT_IMPORT_CHANGES[@]}")
VT_IMPORT_CHANGES+=(-c 'VOLUME /data')
vol_img=$(vt_docker_image)
VT_IMPORT_CHANGES=("${saved[@]}")
cid=$(docker create --volume-driver "$VT_DRIVER" --network none "$vol_img" sh -c 'echo x > /data/x')
vt_on_exit vt_rm_container docker "$cid"
docker start -a "$cid" >/dev/null
anon=$(docker inspect "$cid" | jq -r '.[0].Mounts[] | select(.Destination == "/data") | "\(.Driver) \(.Name)"')
[[ $anon == "$VT_DRIVER "* ]] || vt_fail "the image VOLUME did not go to the plugin: $anon"
anon=${anon#* }
[[ $anon =~ ^[0-9a-f]{64}$ ]] || vt_fail "not an anonymous volume name: $anon"
vt_assert_eq x "$(cat "$pool/volumes/$anon/x")" "the container wrote into volmgr's volume"
vt_assert_eq "docker none" "$(vt_volmgr_field "$anon" '"\(.creator.engine) \(.seed.cache // "none")"')" "made by docker, seeded by no rule"
docker rm -f -v "$cid" >/dev/null
vt_assert_volume_gone "$anon"

"$VOLMGR" cache rm project-42 project-42-protected project-43 >/dev/null
