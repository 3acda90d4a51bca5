#!/usr/bin/env bash
# Caches from git: clone as an unprivileged user, snapshots at a revision
# (fetched when missing), atomic updates while snapshots are being taken,
# failed updates that leave the current generation, a time limit, and
# hostile URLs and revisions refused.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init git-caches
vt_require_root
vt_require_cmd jq curl git btrfs

# git runs as "nobody": it must be able to reach the test's repositories.
chmod 0711 "$VT_TMP"
git_user=nobody
pool=$(vt_make_pool btrfs 2G)/pool
cat >"$VT_TMP/volmgr.conf" <<CONF
[git]
user = $git_user
timeout = 60
CONF
VT_DAEMON_CONFIG=$VT_TMP/volmgr.conf vt_start_daemon "$pool"

up=$VT_TMP/upstream.git
work=$VT_TMP/work
git init -q --bare -b main "$up"
git clone -q "$up" "$work" 2>/dev/null
git -C "$work" checkout -q -b main
commit_gen() { # every file says which commit it belongs to
	local g=$1 i
	for i in $(seq 1 200); do echo "$g" >"$work/f$i"; done
	echo "$g" >"$work/gen"
	git -C "$work" add -A
	git -C "$work" -c user.name=t -c user.email=t@example.org commit -qm "gen $g"
	git -C "$work" push -q origin main
}
commit_gen 1
git -C "$work" tag v1 && git -C "$work" push -q origin v1
c1=$(git -C "$work" rev-parse HEAD)
git -C "$work" checkout -q -b feature && echo feat >"$work/feature-file"
git -C "$work" add -A && git -C "$work" -c user.name=t -c user.email=t@example.org commit -qm feat
git -C "$work" push -q origin feature
git -C "$work" checkout -q main

vt_step "cache create clones as the git user"
out=$("$VOLMGR" cache create proj --git "file://$up" --branch main)
vt_assert_contains "$out" "proj: file://$up at main (${c1:0:12})" "CLI output"
cache=$pool/caches/proj
vt_assert_eq "$git_user" "$(stat -c %U "$cache/gen")" "files belong to the git user"
vt_assert_eq 1 "$(cat "$cache/gen")" "content"
info=$("$VOLMGR" cache inspect proj)
vt_assert_eq "$c1" "$(jq -r .git.commit <<<"$info")" "cache commit"
vt_assert_eq 1 "$(jq -r .generation <<<"$info")" "generation"
vt_assert_eq true "$(btrfs property get -ts "$cache" ro | sed 's/ro=//')" "read-only"
# No file may be "racily clean" (written in the index's second): git would
# re-read it on every checkout in every snapshot of the cache.
racy_free() {
	local idx newest
	idx=$(stat -c %Y "$1/.git/index")
	newest=$(find "$1" -path "$1/.git" -prune -o -type f -printf '%T@\n' | sort -n | tail -n1 | cut -d. -f1)
	(( newest < idx )) || vt_fail "$1: files as new as the index ($newest >= $idx): racily clean"
	vt_log "ok: the index of $1 is newer than every file"
}
racy_free "$cache"

vt_step "snapshots at a tag, a commit, a remote branch, and a commit fetched on demand"
"$VOLMGR" snapshot cache:proj@v1 at-tag >/dev/null
vt_assert_eq "$c1" "$(vt_volmgr_field at-tag .commit)" "commit of @v1"
vt_assert_eq cache:proj@v1 "$(vt_volmgr_field at-tag .source)" "source"
"$VOLMGR" snapshot "cache:proj@${c1:0:12}" at-sha >/dev/null
vt_assert_eq 1 "$(cat "$pool/volumes/at-sha/gen")" "content at a short sha"
"$VOLMGR" snapshot cache:proj@feature at-branch >/dev/null
vt_assert_eq feat "$(cat "$pool/volumes/at-branch/feature-file")" "a branch that is not checked out"
commit_gen 2
c2=$(git -C "$work" rev-parse HEAD)
"$VOLMGR" snapshot "cache:proj@main" at-main-before-update >/dev/null
vt_assert_eq 1 "$(cat "$pool/volumes/at-main-before-update/gen")" "main as the cache knows it"
git -C "$work" tag v2 && git -C "$work" push -q origin v2
"$VOLMGR" snapshot cache:proj@v2 at-v2 >/dev/null
vt_assert_eq 2 "$(cat "$pool/volumes/at-v2/gen")" "a tag fetched on demand"
vt_assert_eq "$c2" "$(vt_volmgr_field at-v2 .commit)" "its commit"
vt_assert_eq 1 "$(cat "$cache/gen")" "the cache itself is unchanged"
status=0; msg=$("$VOLMGR" snapshot cache:proj@no-such-rev bad 2>&1) || status=$?
vt_assert_eq 4 "$status" "unknown revision"
vt_assert_contains "$msg" 'unknown revision "no-such-rev"' "message"
vt_assert_status 4 "$VOLMGR" inspect bad
vt_assert_eq 0 "$(find "$pool/staging" -mindepth 1 | wc -l)" "staging empty"

vt_step "through the plugin: -o source=cache:proj@v1"
out=$(curl -sS --unix-socket "$VT_PLUGIN_SOCK" -X POST -w ' %{http_code}' \
	http://plugin/VolumeDriver.Create -d '{"Name":"plug-v1","Opts":{"source":"cache:proj@v1"}}')
vt_assert_eq '{"Err":""} 200' "$out" "Create at a revision"
vt_assert_eq 1 "$(cat "$pool/volumes/plug-v1/gen")" "content"

vt_step "update: a new generation, published atomically while snapshots are taken"
"$VOLMGR" cache update proj &
upd=$!
for i in $(seq 1 25); do "$VOLMGR" snapshot cache:proj "during-$i" >/dev/null; done
wait "$upd" || vt_fail "cache update failed"
for i in $(seq 1 25); do
	v=$pool/volumes/during-$i
	g=$(cat "$v/gen")
	[[ $g == 1 || $g == 2 ]] || vt_fail "during-$i: generation '$g'"
	[[ $(sort -u "$v"/f* | xargs) == "$g" ]] || vt_fail "during-$i is a mix of generations"
done
vt_log "ok: 25 snapshots taken during the update are each one whole generation" \
	"($(cat "$pool"/volumes/during-*/gen | grep -c 1) of the old, $(cat "$pool"/volumes/during-*/gen | grep -c 2) of the new)"
vt_assert_eq 2 "$(cat "$cache/gen")" "the cache is at the new commit"
racy_free "$cache"
vt_assert_eq 2 "$("$VOLMGR" cache inspect proj | jq -r .generation)" "generation"
vt_assert_eq "$c2" "$("$VOLMGR" cache inspect proj | jq -r .git.commit)" "commit"
vt_assert_eq 1 "$(cat "$pool/volumes/at-tag/gen")" "earlier volumes keep their content"
vt_assert_eq 0 "$(find "$pool/staging" -mindepth 1 | wc -l)" "the old generation is gone"

vt_step "a failed update leaves the current generation and says why"
mv "$up" "$up.away"
status=0; msg=$("$VOLMGR" cache update proj 2>&1) || status=$?
mv "$up.away" "$up"
[[ $status != 0 ]] || vt_fail "update of an unreachable repository succeeded"
vt_assert_contains "$msg" "git fetch failed" "message"
vt_assert_eq 2 "$(cat "$cache/gen")" "content unchanged"
vt_assert_eq 2 "$("$VOLMGR" cache inspect proj | jq -r .generation)" "generation unchanged"
vt_assert_eq 0 "$(find "$pool/staging" -mindepth 1 | wc -l)" "staging empty"

vt_step "refused: hostile URLs, revisions and an imported cache's update"
for url in "--upload-pack=touch /tmp/pwned" "ext::sh -c id" "relative/path" "file://$up with space" "fd::3"; do
	vt_assert_status 7 "$VOLMGR" cache create evil --git "$url"
done
for rev in "-x" "a..b" "HEAD@{1}" "a b" "/abs" "x.lock" "--upload-pack=id"; do
	vt_assert_status 7 "$VOLMGR" snapshot "cache:proj@$rev" evil
done
mkdir -p "$VT_TMP/plain" && echo x >"$VT_TMP/plain/f"
"$VOLMGR" cache import plain "$VT_TMP/plain" >/dev/null
vt_assert_status 7 "$VOLMGR" cache update plain
vt_assert_status 4 "$VOLMGR" cache update nope

vt_step "git's time limit"
# A git that hangs for 10 minutes: stopped by the 1 s limit, the update
# returns in seconds; not stopped, it would take the 10 minutes (the
# bound below tells the two apart with room for a loaded machine).
cat >"$VT_TMP/slow-git" <<'SH'
#!/bin/sh
sleep 600
SH
chmod 0755 "$VT_TMP/slow-git"
printf '[git]\nuser = %s\ntimeout = 1\ncommand = %s\n' "$git_user" "$VT_TMP/slow-git" >"$VT_TMP/volmgr.conf"
vt_restart_daemon
start=$SECONDS
status=0; msg=$("$VOLMGR" cache update proj 2>&1) || status=$?
[[ $status != 0 ]] || vt_fail "a hung git was not stopped"
vt_assert_contains "$msg" "took longer than 1 s" "message"
(( SECONDS - start < 120 )) || vt_fail "the time limit did not stop git"
pgrep -u "$git_user" -f "$VT_TMP/slow-git" >/dev/null && vt_fail "the slow git is still running"
vt_assert_eq 2 "$(cat "$cache/gen")" "content unchanged"
