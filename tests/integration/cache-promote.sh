#!/usr/bin/env bash
# `volmgr cache promote`: a job's volume becomes its project's cache, so
# the next job seeded from it fetches only what is new.  Played as the
# recipe does it (helpers/gitlab-runner/): volumes created through the
# plugin under runner-style names, the first job's volume empty (no cache
# yet), the checkout made by git, then promoted from the checkout's top.
# Checks: the seed rule and cache are recorded with each volume; the cache
# is made, then replaced by newer commits only; the job's .git is
# defused (no hooks, no settings, no alternates, no submodule repos);
# unprotected volumes never feed the protected cache nor the reverse;
# a volume no seed rule made feeds only caches no rule fills.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init cache-promote
vt_require_root
vt_require_cmd jq curl git btrfs

pool=$(vt_make_pool btrfs)/pool
cat >"$VT_TMP/volmgr.conf" <<'CONF'
[seed]
runner-*-project-{id}-concurrent-*-cache-*-protected = cache:project-{id}-protected
runner-*-project-{id}-concurrent-*-cache-* = cache:project-{id}
CONF
VT_DAEMON_CONFIG=$VT_TMP/volmgr.conf vt_start_daemon "$pool"
md5=c33bcaa1fd2c77edfc3893b41966cea8 # md5("/builds"), as the runner names it
job() { printf 'runner-abcd1234-project-42-concurrent-0-%016x-cache-%s%s' "$1" "$md5" "${2:-}"; }
create() {
	local out
	out=$(curl -sS --unix-socket "$VT_PLUGIN_SOCK" -X POST http://plugin/VolumeDriver.Create \
		-d "{\"Name\":\"$1\"}")
	vt_assert_eq '{"Err":""}' "$out" "Create $1"
}
g() { git -c safe.directory='*' -c user.name=t -c user.email=t@example.org "$@"; }
cache_field() { "$VOLMGR" cache inspect "$1" | jq -r "(if type == \"array\" then .[0] else . end)$2"; }

up=$VT_TMP/upstream.git work=$VT_TMP/work
git init -q --bare -b main "$up"
git clone -q "file://$up" "$work" 2>/dev/null
commit() { # commit N: a new commit upstream at a fixed time N hours after 2026-01-01
	echo "$1" >"$work/gen"
	g -C "$work" add -A
	GIT_COMMITTER_DATE="2026-01-01T0$1:00:00Z" g -C "$work" commit -qm "gen $1"
	g -C "$work" push -q origin HEAD:main
	g -C "$work" rev-parse HEAD
}
c1=$(commit 1)

vt_step "job 1: no cache yet, the volume starts empty; its seed rule and cache are recorded"
j1=$(job 1)
create "$j1"
vt_assert_eq "" "$(vt_volmgr_field "$j1" .source)" "no source yet"
vt_assert_eq project-42 "$(vt_volmgr_field "$j1" .seed.cache)" "the cache its rule named"
vt_assert_eq 'runner-*-project-{id}-concurrent-*-cache-*' "$(vt_volmgr_field "$j1" .seed.rule)" "the rule"
co1=$pool/volumes/$j1/group/project
g clone -q "file://$up" "$co1" 2>/dev/null
# What a job could leave in its .git for the next jobs' git to run or read.
printf '#!/bin/sh\ntouch /tmp/pwned\n' >"$co1/.git/hooks/post-checkout"
chmod +x "$co1/.git/hooks/post-checkout"
g -C "$co1" config core.fsmonitor "touch $VT_TMP/pwned"
mkdir -p "$co1/.git/modules/sub" && echo '[core]' >"$co1/.git/modules/sub/config"
echo /etc >"$co1/.git/objects/info/alternates"
mkdir -p "$co1/.git/refs/replace" && g -C "$co1" rev-parse HEAD >"$co1/.git/refs/replace/$(g -C "$co1" rev-parse HEAD)"
# a submodule's work tree with a repository of its own, and a gitdir file
mkdir -p "$co1/vendor/lib/.git/hooks" "$co1/sub2"
printf '[core]\n\tfsmonitor = touch %s/pwned\n' "$VT_TMP" >"$co1/vendor/lib/.git/config"
echo 'gitdir: /etc' >"$co1/sub2/.git"
ln -s "$VT_TMP/outside" "$co1/.git/FETCH_HEAD" # the next git would write through it
mkfifo "$co1/.git/refs/heads/fifo"

vt_step "promote job 1's checkout: the project's cache is made from it"
status=0
out=$("$VOLMGR" cache promote "$co1" --commit "$c1" --commit-time 2026-01-01T01:00:00Z) || status=$?
vt_assert_eq 0 "$status" "promote: $out"
vt_assert_contains "$out" "cache project-42: generation 1 is volume $j1 (snapshot, commit ${c1:0:12})" "output"
vt_assert_eq "$j1" "$(cache_field project-42 .promoted.volume)" "promoted from"
vt_assert_eq group/project "$(cache_field project-42 .promoted.checkout)" "the checkout inside"
vt_assert_eq "$c1" "$(cache_field project-42 .promoted.commit)" "commit"
vt_assert_eq 2026-01-01T01:00:00.000000000Z "$(cache_field project-42 .promoted.commit_time)" "commit time"
cc=$pool/caches/project-42/group/project
vt_assert_eq 1 "$(cat "$cc/gen")" "the work tree"
[[ ! -e $cc/.git/hooks ]] || vt_fail "the job's hooks reached the cache"
[[ ! -e $cc/.git/modules ]] || vt_fail "submodule repositories reached the cache"
[[ ! -e $cc/.git/objects/info/alternates ]] || vt_fail "alternates reached the cache"
[[ ! -e $cc/.git/refs/replace ]] || vt_fail "replace refs reached the cache"
[[ ! -L $cc/.git/FETCH_HEAD && ! -e $cc/.git/refs/heads/fifo ]] || vt_fail "a symbolic link or a fifo in .git reached the cache"
[[ ! -e $cc/vendor/lib/.git/hooks && ! -e $cc/sub2/.git ]] || vt_fail "a nested repository's hooks or a gitdir file reached the cache"
if grep -q fsmonitor "$cc/vendor/lib/.git/config"; then vt_fail "a nested repository's settings reached the cache"; fi
if grep -q fsmonitor "$cc/.git/config"; then vt_fail "the job's settings reached the cache"; fi
[[ -e $co1/.git/hooks/post-checkout ]] || vt_fail "the job's own volume was changed"
vt_assert_eq "$c1" "$(g -C "$cc" rev-parse HEAD)" "the cache's repository works"
[[ ! -e $VT_TMP/pwned ]] || vt_fail "something ran the job's fsmonitor"

vt_step "job 2 starts from the cache and fetches only the new commit; promoting it replaces the cache"
c2=$(commit 2)
j2=$(job 2)
create "$j2"
vt_assert_eq cache:project-42 "$(vt_volmgr_field "$j2" .source)" "seeded"
co2=$pool/volumes/$j2/group/project
# The runner's get_sources: its own remote and fetch, then checkout.
g -C "$co2" remote add origin "file://$up"
g -C "$co2" fetch -q origin --prune '+refs/heads/*:refs/remotes/origin/*'
vt_assert_eq 3 "$(g -C "$co2" count-objects -v | sed -n 's/^count: //p')" "loose objects fetched (the new commit, its tree, one blob)"
g -C "$co2" checkout -q -f "$c2"
out=$("$VOLMGR" cache promote "$co2" --commit "$c2" --commit-time 2026-01-01T02:00:00Z)
vt_assert_contains "$out" "generation 2 is volume $j2" "promoted"
vt_assert_eq 2 "$(cat "$cc/gen")" "the cache's new generation"
vt_assert_eq 1 "$(cat "$co1/gen")" "job 1's volume is its own"

vt_step "an older commit, or the same one, keeps the cache"
j3=$(job 3)
create "$j3"
co3=$pool/volumes/$j3/group/project
g -C "$co3" checkout -q -f "$c1"
out=$("$VOLMGR" cache promote "$co3" --commit "$c1" --commit-time 2026-01-01T01:00:00Z)
vt_assert_contains "$out" "cache project-42: kept at generation 2: the cache holds a newer commit" "older"
g -C "$co3" checkout -q -f "$c2"
out=$("$VOLMGR" cache promote "$co3" --commit "$c2" --commit-time 2026-01-01T02:00:00Z)
vt_assert_contains "$out" "kept at generation 2: the cache holds commit ${c2:0:12} already" "same"
vt_assert_eq 2 "$(cache_field project-42 .generation)" "generation"
vt_assert_status 7 \
	"$VOLMGR" cache promote "$co3" --commit "$c1"
vt_assert_status 7 \
	"$VOLMGR" cache promote "$co3" --commit-time yesterday
vt_assert_status 7 \
	"$VOLMGR" cache promote "$co3" --commit-time "$(date -u -d '+3 days' +%Y-%m-%dT%H:%M:%SZ)"

vt_step "protected and unprotected jobs never feed each other's cache"
jp=$(job 4 -protected)
create "$jp"
vt_assert_eq project-42-protected "$(vt_volmgr_field "$jp" .seed.cache)" "the protected rule"
vt_assert_eq "" "$(vt_volmgr_field "$jp" .source)" "not seeded from the unprotected cache"
out=$("$VOLMGR" cache promote "$co2" project-42-protected 2>&1) && vt_fail "an unprotected volume fed the protected cache"
vt_assert_contains "$out" "was seeded for cache project-42 (rule" "message"
cop=$pool/volumes/$jp/group/project
g clone -q "file://$up" "$cop" 2>/dev/null
out=$("$VOLMGR" cache promote "$cop")
vt_assert_contains "$out" "cache project-42-protected: generation 1 is volume $jp" "the protected cache"
vt_assert_status 10 \
	"$VOLMGR" cache promote "$cop" project-42
vt_assert_eq 2 "$(cache_field project-42 .generation)" "the unprotected cache is untouched"

vt_step "a volume no seed rule made feeds only a cache no rule fills"
"$VOLMGR" create plain >/dev/null
vt_assert_status 7 "$VOLMGR" cache promote "$pool/volumes/plain"
vt_assert_status 10 "$VOLMGR" cache promote "$pool/volumes/plain" project-7
echo tree >"$pool/volumes/plain/f"
out=$("$VOLMGR" cache promote "$pool/volumes/plain" scratch)
vt_assert_contains "$out" "cache scratch: generation 1 is volume plain (snapshot, commit none)" "not a checkout"
vt_assert_eq tree "$(cat "$pool/caches/scratch/f")" "content"
vt_assert_status 4 "$VOLMGR" cache promote "$VT_TMP" scratch

vt_step "what a volume holds in .git that is not a directory, or a HEAD that is not a file, is refused"
"$VOLMGR" create gitfile >/dev/null
echo "gitdir: /etc" >"$pool/volumes/gitfile/.git"
vt_assert_status 7 "$VOLMGR" cache promote "$pool/volumes/gitfile" scratch
"$VOLMGR" create fifohead >/dev/null
mkdir -p "$pool/volumes/fifohead/.git" && mkfifo "$pool/volumes/fifohead/.git/HEAD"
out=$(timeout 20 "$VOLMGR" cache promote "$pool/volumes/fifohead" scratch 2>&1) && vt_fail "a fifo HEAD was read"
vt_assert_contains "$out" "cannot read the checkout's HEAD" "a fifo as HEAD"
vt_assert_eq 1 "$(cache_field scratch .generation)" "the cache is kept"

"$VOLMGR" rm "$j1" "$j2" "$j3" "$jp" plain gitfile fifohead >/dev/null
"$VOLMGR" cache rm project-42 project-42-protected scratch >/dev/null

vt_step "the caches' ceiling: past [cache] max_usage, gc drops the least recently used promoted caches"
for c in a b c; do
	"$VOLMGR" create "lru-$c" >/dev/null
	head -c $((16 << 20)) /dev/urandom >"$pool/volumes/lru-$c/data"
	"$VOLMGR" cache promote "$pool/volumes/lru-$c" "cache-$c" >/dev/null
done
"$VOLMGR" cache import imported "$pool/volumes/lru-a" >/dev/null # an administrator's: never dropped
"$VOLMGR" snapshot cache:cache-a use-a >/dev/null
"$VOLMGR" snapshot cache:cache-c use-c >/dev/null
# gc writes the last uses into the records: they outlive a restart
"$VOLMGR" gc >/dev/null
last_a=$(cache_field cache-a .last_used) last_c=$(cache_field cache-c .last_used)
[[ $last_a != null && $last_c > $last_a && ! $last_c > $(vt_volmgr_field use-c .created) ]] ||
	vt_fail "last uses: cache-a $last_a, cache-c $last_c"
vt_assert_eq null "$(cache_field cache-b .last_used)" "cache-b was never used"
vt_assert_eq $((16 << 20)) "$(cache_field cache-b .size)" "cache-b's size, measured by gc"
out=$("$VOLMGR" cache ls)
vt_assert_contains "$out" "LAST USED" "cache ls"
vt_assert_contains "$out" "16.0 MiB" "cache ls shows sizes"
btrfs filesystem sync "$pool"
used=$(df -B1 --output=used "$pool" | tail -n1)
# 8 MiB past the ceiling: dropping the least recently used cache covers it
printf '[cache]\nmax_usage = %s\n' $((used - (8 << 20))) >>"$VT_TMP/volmgr.conf"
vt_restart_daemon
out=$("$VOLMGR" gc --dry-run --json)
vt_assert_eq cache-b "$(jq -r '[.caches.removed[].name] | join(" ")' <<<"$out")" "dry run: the least recently used"
vt_assert_eq '["pool usage"]' "$(jq -c '.caches.removed[0].reasons' <<<"$out")" "the reason"
"$VOLMGR" cache inspect cache-b >/dev/null || vt_fail "a dry run removed a cache"
out=$("$VOLMGR" gc)
vt_assert_contains "$out" "removed cache cache-b: least recently used past the pool's ceiling" "gc"
vt_assert_status 4 "$VOLMGR" cache inspect cache-b
for c in cache-a cache-c imported; do
	"$VOLMGR" cache inspect "$c" >/dev/null || vt_fail "$c was dropped"
done
"$VOLMGR" rm lru-a lru-b lru-c use-a use-c >/dev/null
"$VOLMGR" cache rm cache-a cache-c imported >/dev/null
vt_check_pool_consistent
