#!/usr/bin/env bash
# The podman variant of docker-nested.sh: rootful podman (runc, volmgr
# listed in containers.conf) serves a job container, and the job's own
# `podman --remote run -v VOL:/builds/g/p` goes through podman's API socket
# mounted into it, onto the same volmgr volume at the same path.
here=$(dirname "$(readlink -f "$0")")
# shellcheck source=../lib/common.sh
. "$here/../lib/common.sh"
# shellcheck source=../lib/engines.sh
. "$here/../lib/engines.sh"

vt_init podman-nested
vt_require_root
vt_require_cmd btrfs jq

pool=$(vt_make_pool btrfs)
vt_start_daemon "$pool"
vt_podman_ensure "$VT_DRIVER" "$VT_PLUGIN_SOCK"

vt_step "cache import: a cached checkout 'proj' in the pool"
src=$VT_TMP/src
mkdir -p "$src/sub"
echo "hello from the cache" >"$src/README"
echo "int main(void) { return 0; }" >"$src/sub/main.c"
"$VOLMGR" cache import proj "$src"
vt_assert_status 0 diff -r "$src" "$pool/caches/proj"

# The job image carries a real podman client (in --remote mode).
img=$(vt_podman_image "$(vt_podman_client)")
vol=ci-$VT_ID
path=/builds/g/p

vt_step "podman volume create --driver $VT_DRIVER -o source=cache:proj $vol"
vt_podman volume create --driver "$VT_DRIVER" -o source=cache:proj "$vol" >/dev/null
vt_track_volume vt_podman "$vol"
vt_assert_listed "$vol"
vt_assert_eq "$pool/volumes/$vol" "$(vt_volmgr_field "$vol" .mountpoint)" "mountpoint"

vt_step "job container runs a nested podman --remote run on the same volume at the same path"
nested="podman --remote run --rm --name vt-$VT_ID-nested --network none \
	-v $vol:$path -w $path $img sh -c 'echo x > out'"
vt_on_exit vt_rm_container vt_podman "vt-$VT_ID-nested"
vt_on_exit vt_rm_container vt_podman "vt-$VT_ID-job"
out=$(vt_podman run --rm --name "vt-$VT_ID-job" --network none \
	-v "$vol:$path" -v "$VT_PODMAN_SOCK:/run/podman/podman.sock" \
	-e CONTAINER_HOST=unix:///run/podman/podman.sock -w "$path" \
	"$img" sh -c "cat README && $nested && cat $path/out")
vt_assert_eq "hello from the cache
x" "$out" "job sees the cache and the nested container's write"

vt_step "the cache is unchanged (no 'out' in $pool/caches/proj)"
[[ ! -e $pool/caches/proj/out ]] || vt_fail "the nested write reached the cache"
vt_assert_status 0 diff -r "$src" "$pool/caches/proj"
vt_assert_eq x "$(cat "$pool/volumes/$vol/out")" "the write is in the volume"

# podman's --mount has no volume-driver option: implicit creation through
# the plugin is a docker-only feature (see docker-nested.sh).

vt_step "an unknown option fails with a message naming it"
err=$(vt_podman volume create --driver "$VT_DRIVER" -o bogus=1 "bad-$VT_ID" 2>&1) &&
	vt_fail "-o bogus=1 was accepted"
vt_assert_contains "$err" bogus "podman's error"
vt_log "the message: $err"
vt_assert_status 4 "$VOLMGR" inspect "bad-$VT_ID"

vt_step "a volume without a source is empty and writable"
empty=empty-$VT_ID
vt_podman volume create --driver "$VT_DRIVER" "$empty" >/dev/null
vt_track_volume vt_podman "$empty"
out=$(vt_podman run --rm --network none -v "$empty:/w" "$img" \
	sh -c 'ls -A /w; echo w > /w/f && cat /w/f')
vt_assert_eq w "$out" "empty volume listing, then a write"

vt_step "the CLI and the engine see the same volumes"
for v in "$vol" "$empty"; do vt_assert_listed "$v"; done
# podman keeps its own volume list: `volume reload` imports the plugin's.
# It is refused over the API, so run it locally on the service's storage
# (CONTAINERS_CONF and CONTAINERS_STORAGE_CONF are exported).
cli=cli-$VT_ID
"$VOLMGR" create "$cli"
vt_track_volume vt_podman "$cli"
podman volume reload >/dev/null
vt_assert_eq "$VT_DRIVER" "$(vt_podman volume inspect --format '{{.Driver}}' "$cli")" \
	"driver of the CLI-made $cli in podman"
out=$(vt_podman run --rm --network none -v "$cli:/w" "$img" sh -c 'ls -A /w')
vt_assert_eq "" "$out" "a CLI-made volume mounted by podman"

vt_step "podman volume rm deletes the subvolumes"
for v in "$vol" "$empty" "$cli"; do
	vt_rm_volume vt_podman "$v"
	vt_assert_volume_gone "$v"
done
