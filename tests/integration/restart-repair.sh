#!/usr/bin/env bash
# State lives on disk: after kill -9 and a restart every volume is listed,
# mountable and removable, in-use state is right, and what a crash left
# half-done is repaired (and logged) at start-up.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init restart-repair
vt_require_root
vt_require_cmd jq btrfs curl unshare

pool=$(vt_make_pool btrfs)/pool
vt_start_daemon "$pool"
plugin() { # plugin ENDPOINT JSON -> prints "BODY STATUS"
	curl -sS --max-time 60 --unix-socket "$VT_PLUGIN_SOCK" -X POST \
		-w ' %{http_code}' "http://plugin/VolumeDriver.$1" -d "$2"
}

mkdir -p "$VT_TMP/src" && echo one >"$VT_TMP/src/f"
"$VOLMGR" cache import proj "$VT_TMP/src"
"$VOLMGR" snapshot cache:proj keep-1 --label a=b
"$VOLMGR" create keep-2
vt_assert_contains "$(plugin Mount '{"Name":"keep-1","ID":"m1"}')" "/volumes/keep-1\"} 200" "Mount"

vt_step "a mount held by another mount namespace survives kill -9"
mkdir "$VT_TMP/held"
unshare -m --propagation private sh -c \
	"mount --bind '$pool/volumes/keep-2' '$VT_TMP/held' && echo ready >'$VT_TMP/held.ready' && exec sleep 600" &
holder=$!
vt_on_exit sh -c "kill $holder 2>/dev/null; wait $holder 2>/dev/null; true"
vt_wait_until -p "$holder" "the holder's bind mount of keep-2" test -e "$VT_TMP/held.ready"
vt_assert_in_use keep-2 true

vt_kill_daemon
vt_restart_daemon
vt_step "after kill -9 and restart"
vt_assert_eq "keep-1 keep-2" "$("$VOLMGR" ls -q | xargs)" "volumes listed"
vt_assert_eq b "$(vt_volmgr_field keep-1 .labels.a)" "labels kept"
vt_assert_eq m1 "$(vt_volmgr_field keep-1 '.mounts[0].id')" "engine mount ID kept"
vt_assert_in_use keep-1 true
vt_assert_in_use keep-2 true
vt_assert_status 6 "$VOLMGR" rm keep-2
vt_assert_status 6 "$VOLMGR" rm keep-1
vt_assert_contains "$(plugin Mount '{"Name":"keep-1","ID":"m2"}')" " 200" "Mount after restart"
vt_assert_contains "$(plugin Unmount '{"Name":"keep-1","ID":"m1"}')" " 200" "Unmount m1"
vt_assert_contains "$(plugin Unmount '{"Name":"keep-1","ID":"m2"}')" " 200" "Unmount m2"
vt_assert_in_use keep-1 false
kill "$holder"; wait "$holder" 2>/dev/null || true
vt_assert_in_use keep-2 false
"$VOLMGR" rm keep-2
vt_assert_volume_gone keep-2

vt_step "leftovers of crashed operations are repaired at start-up"
vt_kill_daemon
meta=$pool/.volmgr/volumes
btrfs -q subvolume create "$pool/staging/new-half-made-0123456789abcdef" >/dev/null
btrfs -q subvolume create "$pool/volumes/orphan" >/dev/null
mkdir "$pool/staging/trash-plain-dir" && touch "$pool/staging/trash-plain-dir/x"
sed 's/"keep-1"/"ghost"/' "$meta/keep-1.json" >"$meta/ghost.json"
echo '{"trunc' >"$meta/.keep-1.json.tmp-0123456789abcdef"
btrfs -q subvolume create "$pool/volumes/going" >/dev/null
sed 's/"keep-1"/"going"/; s/"ready"/"removing"/' "$meta/keep-1.json" >"$meta/going.json"
btrfs -q subvolume create "$pool/volumes/broken" >/dev/null
echo 'not json' >"$meta/broken.json"
vt_restart_daemon
log=$(cat "$VT_TMP/volmgrd.log")
vt_assert_contains "$log" "repair: deleted unfinished work staging/new-half-made" "log"
vt_assert_contains "$log" "repair: deleted unfinished work staging/trash-plain-dir" "log"
vt_assert_contains "$log" "repair: volume orphan: deleted data without a record" "log"
vt_assert_contains "$log" "repair: volume ghost: dropped a record without data" "log"
vt_assert_contains "$log" "repair: removed half-written record .keep-1.json.tmp" "log"
vt_assert_contains "$log" "repair: volume going: finished an interrupted removal" "log"
vt_assert_contains "$log" "repair: volume broken: unreadable record left alone" "log"
vt_assert_eq 0 "$(find "$pool/staging" -mindepth 1 | wc -l)" "staging empty"
for gone in orphan going; do [[ ! -e $pool/volumes/$gone ]] || vt_fail "$gone still there"; done
for gone in ghost.json going.json .keep-1.json.tmp-0123456789abcdef; do
	[[ ! -e $meta/$gone ]] || vt_fail "$gone still there"
done
[[ -d $pool/volumes/broken && -e $meta/broken.json ]] || vt_fail "data of an unreadable record was touched"
vt_assert_eq "keep-1" "$("$VOLMGR" ls -q | xargs)" "only the good volume is listed"
vt_assert_eq one "$(cat "$pool/volumes/keep-1/f")" "good volume intact"

vt_step "a second daemon on the same pool is refused"
vt_assert_status 6 "$VOLMGRD" --pool "$pool" --plugin-socket "$VT_TMP/p2.sock" --control-socket "$VT_TMP/c2.sock"
"$VOLMGR" rm keep-1
rm -f "$meta/broken.json" && btrfs -q subvolume delete "$pool/volumes/broken" >/dev/null
