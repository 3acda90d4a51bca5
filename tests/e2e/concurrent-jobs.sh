#!/usr/bin/env bash
# Two jobs snapshotted from the same cache run at the same time, each in its
# own volume: each writes its own file and its own content to a shared file
# name, and neither ever sees the other's writes.  The cache stays as it was.
here=$(dirname "$(readlink -f "$0")")
# shellcheck source=../lib/common.sh
. "$here/../lib/common.sh"
# shellcheck source=../lib/engines.sh
. "$here/../lib/engines.sh"

vt_init concurrent-jobs
vt_require_root
vt_require_cmd btrfs jq

pool=$(vt_make_pool btrfs)
vt_start_daemon "$pool"
vt_docker_ensure

vt_step "cache import: 'proj' with a shared.txt that both jobs overwrite"
src=$VT_TMP/src
mkdir -p "$src"
echo "from the cache" >"$src/shared.txt"
echo "hello" >"$src/README"
"$VOLMGR" cache import proj "$src"
img=$(vt_docker_image)

# The job: wait until the host says go (so both run at once), write, wait
# until the host has seen the other job write too (it says check), then
# check that only our writes show.
# shellcheck disable=SC2016 # expanded by the container's shell
job_script='
me=$1 other=$2
until [ -e .go ]; do sleep 0.1; done
echo "$me" > shared.txt
echo "$me" > "only-$me"
until [ -e .check ]; do sleep 0.1; done
[ "$(cat shared.txt)" = "$me" ] || { echo "shared.txt: $(cat shared.txt)"; exit 11; }
[ ! -e "only-$other" ] || { echo "sees only-$other"; exit 12; }
[ "$(cat README)" = hello ] || exit 13
echo "done $me"'

start_job() { # start_job ME OTHER
	local vol=job-$1-$VT_ID name=vt-$VT_ID-$1
	docker volume create -d "$VT_DRIVER" -o source=cache:proj "$vol" >/dev/null
	vt_track_volume docker "$vol"
	vt_on_exit vt_rm_container docker "$name"
	docker run -d --name "$name" --network none -v "$vol:/builds/g/p" \
		-w /builds/g/p "$img" sh -c "$job_script" job "$1" "$2" >/dev/null
}

vt_step "two job containers start on two snapshots of the same cache"
start_job a b
start_job b a
for j in a b; do
	vt_assert_eq true "$(docker inspect -f '{{.State.Running}}' "vt-$VT_ID-$j")" "job $j running"
	vt_assert_in_use "job-$j-$VT_ID" true
done

vt_step "both jobs write at the same time; each sees only its own writes"
# Written from the host into each volume: it also shows that the host path
# volmgr reports is the one the containers see.
for j in a b; do touch "$(vt_volmgr_field "job-$j-$VT_ID" .mountpoint)/.go"; done
wrote() { [[ -e $pool/volumes/job-$1-$VT_ID/only-$1 ]]; }
for j in a b; do vt_wait_until "job $j wrote" wrote "$j"; done
for j in a b; do touch "$pool/volumes/job-$j-$VT_ID/.check"; done
for j in a b; do
	status=$(docker wait "vt-$VT_ID-$j")
	logs=$(docker logs "vt-$VT_ID-$j" 2>&1)
	vt_assert_eq 0 "$status" "exit status of job $j ($logs)"
	vt_assert_eq "done $j" "$logs" "output of job $j"
done

vt_step "on the host: each volume holds its own job's writes only"
for j in a b; do
	other=$([[ $j == a ]] && echo b || echo a)
	dir=$pool/volumes/job-$j-$VT_ID
	vt_assert_eq "$j" "$(cat "$dir/shared.txt")" "shared.txt in job-$j"
	[[ -e $dir/only-$j && ! -e $dir/only-$other ]] ||
		vt_fail "job-$j has the wrong private files: $(ls "$dir")"
done

vt_step "the cache is unchanged"
vt_assert_status 0 diff -r "$src" "$pool/caches/proj"

vt_step "after the jobs, the volumes are free and can be removed"
for j in a b; do
	docker rm "vt-$VT_ID-$j" >/dev/null
	vt_assert_in_use "job-$j-$VT_ID" false
	vt_rm_volume docker "job-$j-$VT_ID"
	vt_assert_volume_gone "job-$j-$VT_ID"
done
