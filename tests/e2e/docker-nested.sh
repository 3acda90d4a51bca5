#!/usr/bin/env bash
# A docker job container and the `docker run -v VOL:/builds/g/p` it starts
# (through the mounted engine socket) share one volmgr volume at the same
# path; the cache it was snapshotted from stays untouched.  Also: implicit
# creation via --mount, option errors, empty volumes, and that the CLI and
# the engine see the same volumes.
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/common.sh"
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
vt_on_exit vt_rm_volume docker "$vol"
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
vt_on_exit vt_rm_volume docker "$vol2"
out=$(docker run --rm --network none \
	--mount "type=volume,src=$vol2,dst=/w,volume-driver=$VT_DRIVER,volume-opt=source=cache:proj" \
	"$img" cat /w/README)
vt_assert_eq "hello from the cache" "$out" "implicitly created volume content"
vt_assert_listed "$vol2"

vt_step "an unknown option fails with a message naming it"
err=$(docker volume create -d "$VT_DRIVER" -o bogus=1 "bad-$VT_ID" 2>&1) &&
	vt_fail "-o bogus=1 was accepted"
vt_assert_contains "$err" bogus "docker's error"
vt_assert_status 4 "$VOLMGR" inspect "bad-$VT_ID"

vt_step "a volume without a source is empty and writable"
empty=empty-$VT_ID
docker volume create -d "$VT_DRIVER" "$empty" >/dev/null
vt_on_exit vt_rm_volume docker "$empty"
out=$(docker run --rm --network none -v "$empty:/w" "$img" \
	sh -c 'ls -A /w; echo w > /w/f && cat /w/f')
vt_assert_eq w "$out" "empty volume listing, then a write"

vt_step "the CLI and the engine see the same volumes"
cli=cli-$VT_ID
"$VOLMGR" create "$cli"
vt_on_exit vt_rm_volume docker "$cli"
for v in "$vol" "$vol2" "$empty"; do vt_assert_listed "$v"; done
docker_vols=$(docker volume ls -q --filter "driver=$VT_DRIVER")
for v in "$vol" "$vol2" "$empty" "$cli"; do
	grep -qxF "$v" <<<"$docker_vols" || vt_fail "docker volume ls lacks $v"
done
vt_log "ok: docker volume ls lists all four, including the CLI-made $cli"
out=$(docker run --rm --network none -v "$cli:/w" "$img" sh -c 'ls -A /w')
vt_assert_eq "" "$out" "a CLI-made volume mounted by docker"

vt_step "docker volume rm deletes the subvolumes"
for v in "$vol" "$vol2" "$empty" "$cli"; do
	docker volume rm "$v" >/dev/null
	vt_assert_volume_gone "$v"
done
