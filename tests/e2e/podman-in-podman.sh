#!/usr/bin/env bash
# The pipglr-style runner of helpers/podman-runner/: gitlab-runner and its
# own podman in one --privileged container of the host's podman, volmgrd on
# the host.  The runner container is started by the recipe's run-runner.sh
# with its containers.conf, storage.conf and entrypoint.sh; job containers
# get the binds and environment of its config.toml; volmgrd runs with the
# seed rules of helpers/gitlab-runner/volmgr.conf.  gitlab-runner itself
# cannot be installed here: its part is played by `podman --remote` and by
# a docker client (the Docker API the runner speaks) on the inner podman's
# API socket.  Shown end to end:
#   - a cache imported on the host; inside the runner, the inner podman
#     creates ci-1 from it through the plugin (-o source=cache:proj);
#   - a job container of the inner podman has ci-1 at /builds/g/p and, on
#     the engine socket the recipe gives it (volmgr-engined in front of the
#     inner podman, started by entrypoint.sh), runs the seed's unchanged
#     `docker run -v "$(pwd):/workspace" -w /workspace` and a subdirectory
#     bind; the job reads the nested write; the host pool has it in
#     volumes/ci-1, not in the cache; the job sees only its own
#     containers, its bind of / and --privileged are refused, and a
#     container it left running is removed with it;
#   - a runner-named build volume made through the compat API is seeded from
#     its project's cache; a job with config.toml's pre_build_script starts
#     `docker run -v "$VOLMGR_VOLUME:$VOLMGR_VOLUME_PATH"` on it;
#   - the post_get_sources hook in a container of the inner podman
#     promotes the job's checkout through the job socket;
#   - two jobs of project 77 as gitlab-runner's docker executor runs them
#     through the inner podman's Docker API (lib/gitlab-runner.sh: the
#     get_sources script the runner writes, the helper started per
#     stage, cache-init, the forced remove): job 1 warms the cache, job 2
#     fetches only the delta;
#   - removal through the inner engine deletes the subvolumes.
here=$(dirname "$(readlink -f "$0")")
# shellcheck source=../lib/common.sh
. "$here/../lib/common.sh"
# shellcheck source=../lib/engines.sh
. "$here/../lib/engines.sh"
# shellcheck source=../lib/gitlab-runner.sh
. "$here/../lib/gitlab-runner.sh"

vt_init podman-in-podman
vt_require_root
vt_require_cmd btrfs jq python3 tar sha256sum flock dpkg
recipe=$(realpath "$here/../../helpers/podman-runner")
gitlab_recipe=$(realpath "$here/../../helpers/gitlab-runner")
for f in "$recipe"/{run-runner.sh,entrypoint.sh,containers.conf,storage.conf,config.toml} \
	"$gitlab_recipe"/{volmgr.conf,gitlab-runner-pre-build.sh} "$here/../../helpers/volmgr-run"; do
	[[ -f $f ]] || vt_fail "no $f"
done

# ------------------------------------------------- the runner's root fs
# A Debian bookworm root file system with podman, made by debootstrap.
# debootstrap needs Debian's mirror and took about 100 s on the development
# machine, so its result is kept as a tarball (190 MB) in $VT_CACHE_DIR
# (default /var/cache/volmgr-tests), keyed by suite, variant, package list
# and architecture; that tarball (and an empty lock file beside it) is the
# only thing this test leaves behind.  Delete it to rebuild.
runner_suite=bookworm
# netavark: podman's package needs a network stack (the containers here
# all run with --network none).
# The rest: volmgr-engined's libraries (run-runner.sh mounts the binary).
runner_pkgs=podman,runc,conmon,netavark,libcurl4,libjansson4,libinih1,liburing2,libbtrfsutil1
cache_dir=${VT_CACHE_DIR:-/var/cache/volmgr-tests}
mirror=${VT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
key=$(printf '%s\n' "$runner_suite" minbase "$runner_pkgs" "$(dpkg --print-architecture)" |
	sha256sum | cut -c1-16)
tarball=$cache_dir/podman-runner-$runner_suite-$key.tar


# The recipe's files, read as TOML.
toml_json() { python3 -c 'import json, sys, tomllib; json.dump(tomllib.load(sys.stdin.buffer), sys.stdout)' <"$1"; }
runner_conf=$(toml_json "$recipe/config.toml" | jq -c '.runners[0]')
engine_conf=$(toml_json "$recipe/containers.conf")
driver=$(jq -r '.docker.volume_driver' <<<"$runner_conf")
inner_url=$(jq -r '.docker.host' <<<"$runner_conf")
builds_dir=$(jq -r '.builds_dir' <<<"$runner_conf")
pre_build=$(jq -r '.pre_build_script' <<<"$runner_conf")
post_get_sources=$(jq -r '.post_get_sources_script' <<<"$runner_conf")
get_sources="$(vt_runner_get_sources)
$post_get_sources"
vt_assert_eq /run/docker/plugins/volmgr.sock \
	"$(jq -r --arg d "$driver" '.engine.volume_plugins[$d]' <<<"$engine_conf")" \
	"containers.conf's socket for config.toml's volume_driver '$driver'"
vt_assert_eq true "$(jq -r '.docker.disable_cache' <<<"$runner_conf")" "disable_cache"
# A job container's binds and environment, as the runner gives them.
job_args=()
while IFS= read -r v; do job_args+=(-v "$v"); done < <(jq -r '.docker.volumes[]' <<<"$runner_conf")
while IFS= read -r e; do job_args+=(-e "$e"); done < <(jq -r '.environment[]' <<<"$runner_conf")

pool=$(vt_make_pool btrfs)
# Kept in a variable (not a one-command prefix) so that a restart keeps it.
# shellcheck disable=SC2034 # read by vt__spawn_daemon
VT_DAEMON_CONFIG=$gitlab_recipe/volmgr.conf
vt_start_daemon "$pool"
vt_podman_ensure "$VT_DRIVER" "$VT_PLUGIN_SOCK"

vt_step "the runner image: debootstrap'ed $runner_suite with podman, imported"
vt_debootstrap_tarball "$tarball" "$runner_suite" "$runner_pkgs" "$mirror"
runner_img=$(vt_podman import -q -c 'CMD ["/bin/bash"]' \
	-c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	"$tarball" "vt-$VT_ID-runner")
vt_on_exit vt_rm_image vt_podman "$runner_img"

# The job image (busybox, a podman remote client and a docker client with
# their libraries) as a tarball for the inner podman: no registry is
# reachable.  The docker client also goes into the runner, to play
# gitlab-runner's Docker API calls.
docker_client=$(vt_docker_client)
job_root=$(mktemp -d "$VT_TMP/rootfs.XXXXXX")
vt_rootfs "$job_root" "$(vt_podman_client)" "$docker_client" "$(command -v git)" /usr/bin/git-upload-pack
mkdir "$VT_TMP/images"
tar -C "$job_root" -cf "$VT_TMP/images/job.tar" .
rm -rf "$job_root"

# Project 77's upstream repository (one commit now, one later), bound
# into the runner container: the jobs' CI_REPOSITORY_URL.
mkdir "$VT_TMP/upstream"
git init -q --bare "$VT_TMP/upstream/p77.git"
git clone -q "file://$VT_TMP/upstream/p77.git" "$VT_TMP/work77" 2>/dev/null
push77() { # FILE: one more commit on main
	echo "$1" >"$VT_TMP/work77/$1"
	git -C "$VT_TMP/work77" add -A
	git -C "$VT_TMP/work77" -c user.name=t -c user.email=t@example.org commit -qm "$1"
	git -C "$VT_TMP/work77" push -q origin HEAD:main
	git -C "$VT_TMP/work77" rev-parse HEAD
}
for i in $(seq 1 20); do echo "$i" >"$VT_TMP/work77/f$i"; done
first77=$(push77 first)

# The host side of run-runner.sh's mounts, made for this test.
# volmgrd's sockets, each in a directory of its own under the name the
# recipe expects (run-runner.sh mounts the directories, so that a restarted
# volmgrd's new socket is seen): bind mounts of this test's sockets.
rundir=$VT_TMP/run
mkdir -p "$rundir/plugins" "$rundir/volmgr"
bind_file() {
	: >"$2"
	mount --bind "$1" "$2"
	vt_on_exit vt__umount "$2"
}
bind_file "$VT_PLUGIN_SOCK" "$rundir/plugins/volmgr.sock"
bind_file "$VT_CONTROL_SOCK" "$rundir/volmgr/control.sock"
bind_file "$VT_JOB_SOCK" "$rundir/volmgr/job.sock"
# The static CLI, volmgr-run and the hook (helpers/gitlab-runner/README.md).
container_dir=$VT_TMP/volmgr-container
install -D -m 0755 "$VOLMGR" "$container_dir/bin/volmgr"
install -D -m 0755 "$here/../../helpers/volmgr-run" "$container_dir/bin/volmgr-run"
install -D -m 0644 "$gitlab_recipe/gitlab-runner-pre-build.sh" "$container_dir/gitlab-runner-pre-build.sh"
install -D -m 0644 "$gitlab_recipe/gitlab-runner-post-get-sources.sh" "$container_dir/gitlab-runner-post-get-sources.sh"
install -D -m 0644 "$recipe/config.toml" "$VT_TMP/runner-config/config.toml"

vt_step "run-runner.sh: the runner container (--privileged, the pool at $pool)"
runner=vt-$VT_ID-runner
storage=vt-$VT_ID-runner-storage
cache=vt-$VT_ID-runner-cache
vt_track_volume vt_podman "$storage"
vt_track_volume vt_podman "$cache"
vt_on_exit vt_rm_container vt_podman "$runner"
dump_runner_log() { # on failure only: the runner container's log
	[[ -n ${passed:-} ]] && return 0
	printf '\n----- last 100 lines of podman logs %s -----\n' "$runner" >&2
	vt_podman logs "$runner" 2>&1 | tail -n 100 >&2 || true
}
vt_on_exit dump_runner_log
PODMAN="podman --remote --url unix://$VT_PODMAN_SOCK" \
	RUNNER_IMAGE=$runner_img RUNNER_NAME=$runner RUNNER_STORAGE=$storage RUNNER_CACHE=$cache \
	RUNNER_CONFIG_DIR=$VT_TMP/runner-config VOLMGR_POOL=$pool \
	VOLMGR_PLUGIN_DIR=$rundir/plugins VOLMGR_CONTROL_DIR=$rundir/volmgr \
	VOLMGR_CONTAINER_DIR=$container_dir VOLMGR_ENGINED=$VOLMGR_ENGINED \
	"$recipe/run-runner.sh" --network none -v "$VT_TMP/images:/vt-images:ro" \
	-v "$VT_TMP/upstream:/vt-upstream:ro" \
	-v "$docker_client:/usr/local/bin/docker:ro" -- sleep infinity >/dev/null

# podman and docker in the runner container, on the inner API socket that
# config.toml's `host` names (gitlab-runner's view of its engine).
inner() { vt_podman exec "$runner" podman --remote --url "$inner_url" "$@"; }
dk() { vt_podman exec "$runner" docker -H "$inner_url" "$@"; }
dki() { vt_podman exec -i "$runner" docker -H "$inner_url" "$@"; }
inner_answers() {
	[[ $(vt_podman inspect -f '{{.State.Running}}' "$runner") == true ]] ||
		vt_fail "the runner container exited"
	inner version >/dev/null 2>&1
}
vt_wait_until "the inner podman API at $inner_url answers" inner_answers
vt_log "the inner podman answers at $inner_url"
vt_assert_eq "runc overlay netavark" \
	"$(inner info --format '{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}} {{.Host.NetworkBackend}}')" \
	"inner podman's runtime, storage driver and network backend"

vt_step "inner podman: load the job image from a tarball"
job_img=$(inner import -q -c 'ENV PATH=/usr/bin:/bin' -c 'CMD ["/bin/sh"]' \
	/vt-images/job.tar "vt-job")
vt_log "job image in the runner: $job_img"

vt_step "host: volmgr cache import proj"
src=$VT_TMP/src
mkdir -p "$src/sub"
echo "hello from the cache" >"$src/README"
echo "int main(void) { return 0; }" >"$src/sub/main.c"
"$VOLMGR" cache import proj "$src"
vt_assert_status 0 diff -r "$src" "$pool/caches/proj"

vt_step "inner podman: volume create --driver $driver -o source=cache:proj ci-1"
vol=ci-1
path=/builds/g/p
inner volume create --driver "$driver" -o source=cache:proj "$vol" >/dev/null
vt_assert_listed "$vol"
vt_assert_eq cache:proj "$(vt_volmgr_field "$vol" .source)" "source of $vol"
vt_assert_eq "$pool/volumes/$vol" "$(vt_volmgr_field "$vol" .mountpoint)" "mountpoint (a host path)"
vt_assert_eq "$driver" "$(inner volume inspect --format '{{.Driver}}' "$vol")" "driver in the inner podman"

vt_step "a job container (config.toml's binds and environment) runs the seed's docker run -v \"\$(pwd):/workspace\" through volmgr-engined"
# The job's script: the seed's line unchanged, a subdirectory bind, what
# it may see, two refusals, and a container it leaves running.
job1_script='docker run --rm --network none -v "$(pwd):/workspace" -w /workspace '"$job_img"' sh -c "cat README > seen; echo x > out"
docker run --rm --network none -v "$(pwd)/sub:/src:ro" '"$job_img"' cat /src/main.c
docker run -d --network none --name left-behind -v "$(pwd):/workspace" '"$job_img"' sleep 600 >/dev/null
echo "ps: $(docker ps -a --format "{{.Names}}" | sort | tr "\n" " ")"
docker run --rm --network none -v /:/host '"$job_img"' true 2>&1 && echo "ROOT BIND ALLOWED"
docker run --rm --network none --privileged '"$job_img"' true 2>&1 && echo "PRIVILEGED ALLOWED"
cat seen out
/opt/volmgr/bin/volmgr which --mount '"$path"' && echo --- && (/opt/volmgr/bin/volmgr inspect '"$vol"' 2>&1 || true)'
inner run -d --name job-1 --network none -v "$vol:$path" -w "$path" "${job_args[@]}" \
	"$job_img" sleep 600 >/dev/null
out=$(vt_podman exec "$runner" podman --remote --url "$inner_url" exec job-1 sh -c "$job1_script")
printf '%s\n' "$out" | sed 's/^/# job-1: /'
vt_assert_contains "$out" "int main(void) { return 0; }" "the subdirectory bind, through a pinned mount"
vt_assert_eq "ps: left-behind " "$(grep '^ps: ' <<<"$out")" "the job sees its own container only, not itself nor others"
[[ $out != *"ROOT BIND ALLOWED"* ]] || vt_fail "the job bound / into a container"
vt_assert_contains "$out" "bind source / is not on a volmgr volume" "the refusal of / names the path"
[[ $out != *"PRIVILEGED ALLOWED"* ]] || vt_fail "the job ran a --privileged container"
vt_assert_contains "$out" "privileged" "the refusal of --privileged says why"
vt_assert_contains "$out" "hello from the cache
x
$vol $path" "the job sees the cache, the nested write, and volmgr which --mount"
vt_assert_contains "${out#*$'\n'---$'\n'}" "is not offered on the job socket" "the job has the job socket, not the control socket"
vt_assert_eq "hello from the cache" "$(cat "$pool/volumes/$vol/seen")" "what the nested container read, on the host"
left=$(inner ps -a --filter name=left-behind --format '{{.ID}}')
[[ -n $left ]] || vt_fail "the job's detached container is not there"
inner rm -f -t 0 job-1 >/dev/null
left_gone() { [[ -z $(inner ps -a -q --filter "id=$left") ]]; }
vt_wait_until "volmgr-engined removed the container job-1 left running" left_gone
inner run -d --name holder-1 --network none -v "$vol:$path" "$job_img" sleep 120 >/dev/null
vt_assert_eq true "$(vt_volmgr_field "$vol" .in_use)" "in_use while a container of the inner podman holds it"
inner rm -f -t 0 holder-1 >/dev/null

vt_step "host: the write is in volumes/$vol, not in caches/proj; volmgr ls lists $vol"
vt_assert_eq x "$(cat "$pool/volumes/$vol/out")" "$pool/volumes/$vol/out"
[[ ! -e $pool/caches/proj/out ]] || vt_fail "the nested write reached the cache"
vt_assert_status 0 diff -r "$src" "$pool/caches/proj"
vt_assert_listed "$vol"
# The inner podman unmounts when the job is gone (its cleanup runs from conmon).
in_use_is() { [[ $(vt_volmgr_field "$1" .in_use) == "$2" ]]; }
vt_wait_until "the inner podman released $vol" in_use_is "$vol" false
vt_assert_in_use "$vol" false

vt_step "inner podman: volume rm $vol deletes the subvolume"
inner volume rm "$vol" >/dev/null
vt_assert_volume_gone "$vol"

vt_step "a runner-style job through the Docker API: build volume seeded by volmgr.conf, pre_build_script, nested docker run"
seed=$VT_TMP/seed
mkdir -p "$seed/g/p"
echo "project 42 at its cached commit" >"$seed/g/p/README"
"$VOLMGR" cache import project-42 "$seed"
# gitlab-runner with disable_cache = true: VolumeCreate with Driver =
# volume_driver and no DriverOpts, a temporary name (RESEARCH.md).
rvol="runner-abcd1234-project-42-concurrent-0-0123456789abcdef-cache-c33bcaa1fd2c77edfc3893b41966cea8"
dk volume create --driver "$driver" "$rvol" >/dev/null
vt_assert_eq cache:project-42 "$(vt_volmgr_field "$rvol" .source)" "seed of $rvol (volmgr.conf)"
out=$(dk run --rm --name job-2 --network none -v "$rvol:$builds_dir" "${job_args[@]}" \
	-e "CI_BUILDS_DIR=$builds_dir" -e "CI_PROJECT_DIR=$builds_dir/g/p" -w "$builds_dir/g/p" \
	"$job_img" sh -c "$pre_build
		docker run --rm --network none -v \"\$VOLMGR_VOLUME:\$VOLMGR_VOLUME_PATH\" \\
			-w \"\$CI_PROJECT_DIR\" $job_img sh -c 'cat README > seen; echo y > y'
		cat seen y")
printf '%s\n' "$out" | sed 's/^/# job-2: /'
vt_assert_contains "$out" "this job's workspace is the volume $rvol, mounted at $builds_dir" "the hook's message"
vt_assert_contains "$out" "project 42 at its cached commit
y" "the job sees what the nested container read and wrote"
vt_assert_eq y "$(cat "$pool/volumes/$rvol/g/p/y")" "the nested write on the host"
[[ ! -e $pool/caches/project-42/g/p/y ]] || vt_fail "the nested write reached the cache"

vt_step "post_get_sources_script in a container of the inner podman: the job's checkout becomes project 42's cache"
# The checkout the runner's fetch would leave (made here on the host).
git -c init.defaultBranch=main init -q "$pool/volumes/$rvol/g/p"
git -C "$pool/volumes/$rvol/g/p" -c user.name=t -c user.email=t@example.org commit -q --allow-empty -m job-2
sha=$(git -C "$pool/volumes/$rvol/g/p" rev-parse HEAD)
out=$(dk run --rm --network none -v "$rvol:$builds_dir" "${job_args[@]}" \
	-e "CI_PROJECT_DIR=$builds_dir/g/p" -e "CI_COMMIT_SHA=$sha" -w "$builds_dir/g/p" \
	"$job_img" sh -c "$post_get_sources" 2>&1)
printf '%s\n' "$out" | sed 's/^/# helper: /'
vt_assert_contains "$out" "cache project-42: generation" "the promote through the job socket, from the inner podman's container"
vt_assert_eq "$sha" "$("$VOLMGR" cache inspect project-42 | jq -r .promoted.commit)" "project 42's cache is the job's commit"
# The runner's Cleanup(): VolumeRemove with force.
dk volume rm -f "$rvol" >/dev/null
vt_assert_volume_gone "$rvol"
[[ -d $pool/caches/proj && -d $pool/caches/project-42 ]] || vt_fail "a cache went with a volume"

# runner_job N SHA: one job of project 77, as gitlab-runner's docker
# executor runs it through the inner podman's Docker API (the same calls
# as e2e/gitlab-runner-docker.sh: VolumeCreate with the driver, cache-init,
# the helper created once and started per stage -- prepare, then
# get_sources and post_get_sources_script --, the build container with
# pre_build_script, then containers removed and the volume removed with
# force); echoes get_sources' output.
runner_job() {
	local n=$1 sha=$2 vol helper
	vol=$(vt_runner_volume_name 77 0)
	local ci=(-e CI=true -e "CI_JOB_ID=300$n" -e CI_PROJECT_ID=77 -e CI_CONCURRENT_ID=0
		-e "CI_BUILDS_DIR=$builds_dir" -e "CI_PROJECT_DIR=$builds_dir/g/p77"
		-e "CI_COMMIT_SHA=$sha" -e "CI_REPOSITORY_URL=file:///vt-upstream/p77.git"
		-e "CI_COMMIT_TIMESTAMP=$(git -C "$VT_TMP/upstream/p77.git" log -1 --format=%cI "$sha")")
	dk volume create --driver "$driver" "$vol" >/dev/null
	dk run --rm --network none -v "$vol:/gitlab-runner-cache-init" "$job_img" \
		chmod 0777 /gitlab-runner-cache-init
	helper=vt-$VT_ID-p77-helper-$n
	dk create -i --name "$helper" --network none "${ci[@]}" -v "$vol:$builds_dir" \
		-v /vt-upstream:/vt-upstream:ro "${job_args[@]}" "$job_img" sh >/dev/null
	dki start -ai "$helper" <<<'true'
	dki start -ai "$helper" <<<"$get_sources" 2>&1 || vt_fail "get_sources of job $n failed"
	dk run --rm --network none "${ci[@]}" -v "$vol:$builds_dir" "${job_args[@]}" \
		-w "$builds_dir/g/p77" "$job_img" sh -c "$pre_build
test \"\$(git -c safe.directory='*' rev-parse HEAD)\" = \"\$CI_COMMIT_SHA\" && echo build-sees-the-commit" 2>&1 ||
		vt_fail "the build container of job $n failed"
	dk rm -f "$helper" >/dev/null
	dk volume rm -f "$vol" >/dev/null
	vt_assert_volume_gone "$vol" >&2
}

vt_step "two jobs of project 77 as the runner runs them through the inner podman: job 1 warms the cache, job 2 fetches the delta"
total77=$(git -C "$VT_TMP/upstream/p77.git" rev-list --objects --all | wc -l)
out=$(runner_job 1 "$first77")
printf '%s\n' "$out" | sed 's/^/# p77 job 1: /'
vt_assert_contains "$out" "objects before: 0" "job 1 found no cache"
vt_assert_contains "$out" "objects after: $total77" "job 1 fetched every object"
vt_assert_contains "$out" "cache project-77: generation 1 is volume" "job 1's promote (job socket, inner podman's helper)"
vt_assert_contains "$out" "build-sees-the-commit" "job 1's build container"
second77=$(push77 second)
delta77=$(git -C "$VT_TMP/upstream/p77.git" rev-list --objects "$first77..$second77" | wc -l)
out=$(runner_job 2 "$second77")
printf '%s\n' "$out" | sed 's/^/# p77 job 2: /'
vt_assert_contains "$out" "objects before: $total77" "job 2 started from project 77's cache"
vt_assert_contains "$out" "objects after: $((total77 + delta77))" "job 2 fetched the delta only"
vt_assert_contains "$out" "cache project-77: generation 2 is volume" "job 2 refreshed the cache"
"$VOLMGR" cache rm project-77 >/dev/null
passed=1
