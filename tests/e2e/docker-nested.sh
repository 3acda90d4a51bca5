#!/usr/bin/env bash
# A docker job container and the `docker run -v VOL:/builds/g/p` it starts
# (through the mounted engine socket) share one volmgr volume at the same
# path; the cache it was snapshotted from stays untouched.  Also: implicit
# creation via --mount, option errors, empty volumes, and that the CLI and
# the engine see the same volumes.
here=$(dirname "$(readlink -f "$0")")
# shellcheck source=../lib/common.sh
. "$here/../lib/common.sh"
# shellcheck source=../lib/engines.sh
. "$here/../lib/engines.sh"

vt_init docker-nested
vt_require_root
vt_require_cmd btrfs jq

pool=$(vt_make_pool btrfs)
vt_start_daemon "$pool"
vt_docker_ensure

vt_step "cache import: a cached checkout 'proj' in the pool"
src=$VT_TMP/src
mkdir -p "$src/sub"
echo "hello from the cache" >"$src/README"
echo "int main(void) { return 0; }" >"$src/sub/main.c"
"$VOLMGR" cache import proj "$src"
vt_assert_status 0 diff -r "$src" "$pool/caches/proj"

img=$(vt_docker_image "$(vt_docker_client)")
vol=ci-$VT_ID
path=/builds/g/p

vt_step "docker volume create -d $VT_DRIVER -o source=cache:proj $vol"
docker volume create -d "$VT_DRIVER" -o source=cache:proj "$vol" >/dev/null
vt_track_volume docker "$vol"
vt_assert_listed "$vol"
vt_assert_eq "$pool/volumes/$vol" "$(vt_volmgr_field "$vol" .mountpoint)" "mountpoint"
vt_assert_eq "hello from the cache" "$(cat "$pool/volumes/$vol/README")" "snapshot content"

vt_step "job container runs a nested docker run on the same volume at the same path"
# The nested container is named so that a failed run can still be removed.
nested="docker run --rm --name vt-$VT_ID-nested --network none \
	-v $vol:$path -w $path $img sh -c 'echo x > out'"
vt_on_exit vt_rm_container docker "vt-$VT_ID-nested"
vt_on_exit vt_rm_container docker "vt-$VT_ID-job"
out=$(docker run --rm --name "vt-$VT_ID-job" --network none \
	-v "$vol:$path" -v "$VT_DOCKER_SOCK:/var/run/docker.sock" -w "$path" \
	"$img" sh -c "cat README && $nested && cat $path/out")
vt_assert_eq "hello from the cache
x" "$out" "job sees the cache and the nested container's write"

vt_step "the cache is unchanged (no 'out' in $pool/caches/proj)"
[[ ! -e $pool/caches/proj/out ]] || vt_fail "the nested write reached the cache"
vt_assert_status 0 diff -r "$src" "$pool/caches/proj"
vt_assert_eq x "$(cat "$pool/volumes/$vol/out")" "the write is in the volume"

vt_step "--mount with volume-driver and volume-opt creates a snapshot implicitly"
vol2=vt2-$VT_ID
vt_track_volume docker "$vol2"
out=$(docker run --rm --network none \
	--mount "type=volume,src=$vol2,dst=/w,volume-driver=$VT_DRIVER,volume-opt=source=cache:proj" \
	"$img" cat /w/README)
vt_assert_eq "hello from the cache" "$out" "implicitly created volume content"
vt_assert_listed "$vol2"

vt_step "an unknown option fails with a message naming it"
err=$(docker volume create -d "$VT_DRIVER" -o bogus=1 "bad-$VT_ID" 2>&1) &&
	vt_fail "-o bogus=1 was accepted"
vt_assert_contains "$err" bogus "docker's error"
vt_log "the message: $err"
vt_assert_status 4 "$VOLMGR" inspect "bad-$VT_ID"

vt_step "a volume without a source is empty and writable"
empty=empty-$VT_ID
docker volume create -d "$VT_DRIVER" "$empty" >/dev/null
vt_track_volume docker "$empty"
out=$(docker run --rm --network none -v "$empty:/w" "$img" \
	sh -c 'ls -A /w; echo w > /w/f && cat /w/f')
vt_assert_eq w "$out" "empty volume listing, then a write"

vt_step "the CLI and the engine see the same volumes"
for v in "$vol" "$vol2" "$empty"; do vt_assert_listed "$v"; done
# A volume made with the CLI, used by docker.  Named with its driver:
# without one docker would look for it in every volume plugin it knows
# (`docker volume ls` does too), which is slow once one of them is gone.
cli=cli-$VT_ID
"$VOLMGR" create "$cli" >/dev/null
vt_track_volume docker "$cli"
echo "made by the CLI" >"$pool/volumes/$cli/f"
out=$(docker run --rm --network none \
	--mount "type=volume,src=$cli,dst=/w,volume-driver=$VT_DRIVER" "$img" cat /w/f)
vt_assert_eq "made by the CLI" "$out" "a CLI-made volume mounted by docker"
for v in "$vol" "$vol2" "$empty" "$cli"; do
	vt_assert_eq "$VT_DRIVER" "$(docker volume inspect -f '{{.Driver}}' "$v")" "docker's driver of $v"
done

vt_step "docker volume rm deletes the subvolumes"
for v in "$vol" "$vol2" "$empty" "$cli"; do
	vt_rm_volume docker "$v"
	vt_assert_volume_gone "$v"
done
