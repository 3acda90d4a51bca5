#!/usr/bin/env bash
# `volmgr which PATH` and `volmgr snapshot PATH VOLUME`: the CLI passes the
# directory it opened; the daemon snapshots when it is the top of a volume
# (through any bind mount) and copies what the caller sees otherwise.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init snapshot-path
vt_require_root
vt_require_cmd jq btrfs unshare

pool=$(vt_make_pool btrfs)/pool
vt_start_daemon "$pool"
src=$VT_TMP/src
mkdir -p "$src/sub/deeper" && echo top >"$src/f" && echo sub >"$src/sub/g"
"$VOLMGR" cache import proj "$src"
"$VOLMGR" snapshot cache:proj v1 >/dev/null
v1=$pool/volumes/v1

vt_step "which: the volume a path is on, at its top or below"
vt_assert_eq v1 "$("$VOLMGR" which "$v1")" "which the volume's top"
vt_assert_eq v1 "$("$VOLMGR" which "$v1/sub/deeper")" "which a subdirectory"
vt_assert_eq true "$("$VOLMGR" which --json "$v1" | jq -r .root)" "root at the top"
vt_assert_eq false "$("$VOLMGR" which --json "$v1/sub" | jq -r .root)" "not root below"
msg=$("$VOLMGR" which "$VT_TMP" 2>&1) && vt_fail "which of a non-volume path succeeded"
vt_assert_contains "$msg" "is not on a volmgr volume" "message"
vt_assert_status 4 "$VOLMGR" which "$VT_TMP"
vt_assert_status 4 "$VOLMGR" which "$pool/caches/proj"
vt_assert_status 4 "$VOLMGR" which "$VT_TMP/missing"

vt_step "which through a bind mount in another mount namespace, with the caller's mount"
mkdir "$VT_TMP/bind"
out=$(unshare -m --propagation private sh -c \
	"mount --bind '$v1/sub' '$VT_TMP/bind' && '$VOLMGR' which --json '$VT_TMP/bind'")
vt_assert_eq v1 "$(jq -r .volume <<<"$out")" "volume through a bind mount"
vt_assert_eq "$VT_TMP/bind" "$(jq -r .mount.target <<<"$out")" "the caller's mount point"
vt_assert_eq /pool/volumes/v1/sub "$(jq -r .mount.root <<<"$out")" "the mounted directory"

vt_step "snapshot PATH at the top of a volume is a snapshot of that volume"
echo changed >"$v1/f"
out=$("$VOLMGR" snapshot "$v1" v2 2>&1)
vt_assert_contains "$out" "is the volume v1: snapshot" "CLI message"
vt_assert_eq volume:v1 "$(vt_volmgr_field v2 .source)" "source"
vt_assert_eq changed "$(cat "$pool/volumes/v2/f")" "content of the snapshot"
btrfs subvolume show "$pool/volumes/v2" | grep "Parent UUID:.*-" >/dev/null || vt_fail "v2 is not a snapshot"

vt_step "...also through a bind mount in another namespace"
out=$(unshare -m --propagation private sh -c \
	"mount --bind '$v1' '$VT_TMP/bind' && cd '$VT_TMP/bind' && '$VOLMGR' snapshot . v3 2>&1")
vt_assert_contains "$out" "snapshot" "CLI message"
vt_assert_eq volume:v1 "$(vt_volmgr_field v3 .source)" "source through a bind mount"

vt_step "snapshot PATH below the top, or elsewhere, copies what the caller sees"
out=$("$VOLMGR" snapshot "$v1/sub" v4 2>&1)
vt_assert_contains "$out" "copied" "CLI message"
vt_assert_eq "path:$v1/sub" "$(vt_volmgr_field v4 .source)" "source"
vt_assert_eq sub "$(cat "$pool/volumes/v4/g")" "copied content"
[[ -d $pool/volumes/v4/deeper && ! -e $pool/volumes/v4/f ]] || vt_fail "copied the wrong tree"
mkdir -p "$VT_TMP/outside/x" && echo o >"$VT_TMP/outside/x/y"
"$VOLMGR" snapshot "$VT_TMP/outside" v5 >/dev/null 2>&1
vt_assert_eq o "$(cat "$pool/volumes/v5/x/y")" "copy from another file system"
echo new >"$pool/volumes/v5/x/y"
vt_assert_eq o "$(cat "$VT_TMP/outside/x/y")" "the source is untouched by writes to the copy"

vt_step "what only the caller sees: a path inside a private mount namespace"
out=$(unshare -m --propagation private sh -c \
	"mount -t tmpfs none '$VT_TMP/bind' && echo secret-view >'$VT_TMP/bind/only-here' &&
	 '$VOLMGR' snapshot '$VT_TMP/bind' v6 >/dev/null 2>&1 && echo done")
vt_assert_eq done "$out" "snapshot inside the namespace"
vt_assert_eq secret-view "$(cat "$pool/volumes/v6/only-here")" "the caller's view was copied"
[[ ! -e $VT_TMP/bind/only-here ]] || vt_fail "the tmpfs leaked into the host namespace"

vt_step "errors"
vt_assert_status 5 "$VOLMGR" snapshot "$v1" v2
vt_assert_status 4 "$VOLMGR" snapshot "$VT_TMP/missing" v7
vt_assert_status 7 "$VOLMGR" snapshot "$VT_TMP/outside/x/y" v7
vt_assert_status 7 "$VOLMGR" snapshot "$v1" ../v7
vt_assert_eq 0 "$(find "$pool/staging" -mindepth 1 | wc -l)" "staging is empty"
"$VOLMGR" rm v1 v2 v3 v4 v5 v6 >/dev/null
