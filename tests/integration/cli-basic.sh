#!/usr/bin/env bash
# The CLI end to end on a loop-mounted btrfs pool: caches, snapshots, empty
# volumes, listing, inspection, removal, and a distinct exit status for
# every kind of error.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init cli-basic
vt_require_root
vt_require_cmd jq btrfs

pool=$(vt_make_pool btrfs)/pool
vt_start_daemon "$pool"

vt_step "cache import copies a tree (files, dirs, symlinks, hard links, modes, owners)"
src=$VT_TMP/src
mkdir -p "$src/dir/deeper"
echo hello >"$src/a.txt"
printf 'x%.0s' {1..5000} >"$src/dir/big"
ln "$src/a.txt" "$src/hard.txt"
ln "$src/dir/big" "$src/dir/deeper/big-link"
ln -s /etc/shadow "$src/dangling-to-host"
mkfifo "$src/fifo"
chmod 0640 "$src/dir/big"
chown 1234:4321 "$src/dir/deeper"
touch -d '2001-02-03 04:05:06.123456789' "$src/a.txt"
"$VOLMGR" cache import proj "$src"
cache=$pool/caches/proj
vt_assert_eq hello "$(cat "$cache/a.txt")" "cache content"
vt_assert_eq "$(stat -c %i "$cache/a.txt")" "$(stat -c %i "$cache/hard.txt")" "hard link kept"
vt_assert_eq "$(stat -c %i "$cache/dir/big")" "$(stat -c %i "$cache/dir/deeper/big-link")" "hard link in a subdirectory kept"
vt_assert_eq /etc/shadow "$(readlink "$cache/dangling-to-host")" "symlink copied as a link"
vt_assert_eq 640 "$(stat -c %a "$cache/dir/big")" "mode"
vt_assert_eq 1234:4321 "$(stat -c %u:%g "$cache/dir/deeper")" "owner"
vt_assert_eq "$(stat -c %y "$src/a.txt")" "$(stat -c %y "$cache/a.txt")" "mtime (ns)"
[[ -p $cache/fifo ]] || vt_fail "fifo not copied"
vt_assert_eq true "$(btrfs property get -ts "$cache" ro | sed 's/ro=//')" "cache is read-only"
vt_assert_contains "$("$VOLMGR" cache ls)" proj "cache ls"
vt_assert_eq proj "$("$VOLMGR" cache ls --json | jq -r '.[0].name')" "cache ls --json"
vt_assert_status 5 "$VOLMGR" cache import proj "$src"
vt_assert_status 4 "$VOLMGR" cache import other "$VT_TMP/does-not-exist"
vt_assert_status 7 "$VOLMGR" cache import "bad/name" "$src"

vt_step "snapshot: a writable btrfs snapshot, with labels"
"$VOLMGR" snapshot cache:proj job-1 --label ci.job=1 --label=team=infra
info=$("$VOLMGR" inspect job-1)
vt_assert_eq cache:proj "$(jq -r .source <<<"$info")" "source"
vt_assert_eq 1 "$(jq -r '.labels["ci.job"]' <<<"$info")" "label ci.job"
vt_assert_eq infra "$(jq -r .labels.team <<<"$info")" "label team"
vt_assert_eq false "$(jq -r .in_use <<<"$info")" "in_use"
vt_assert_eq "$pool/volumes/job-1" "$(jq -r .mountpoint <<<"$info")" "mountpoint"
[[ $(jq -r .created <<<"$info") =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T ]] || vt_fail "created is not RFC 3339"
btrfs subvolume show "$pool/volumes/job-1" >/dev/null || vt_fail "job-1 is not a subvolume"
echo changed >"$pool/volumes/job-1/a.txt"
echo new >"$pool/volumes/job-1/new.txt"
vt_assert_eq hello "$(cat "$cache/a.txt")" "cache unchanged by a write to the volume"
[[ ! -e $cache/new.txt ]] || vt_fail "new file leaked into the cache"

vt_step "snapshot of a volume, and empty volumes"
"$VOLMGR" snapshot volume:job-1 job-1-copy
vt_assert_eq changed "$(cat "$pool/volumes/job-1-copy/a.txt")" "volume snapshot content"
"$VOLMGR" create empty-1
vt_assert_eq 0 "$(find "$pool/volumes/empty-1" -mindepth 1 | wc -l)" "empty volume has no entries"

vt_step "ls and ls --json"
out=$("$VOLMGR" ls)
for v in job-1 job-1-copy empty-1; do vt_assert_contains "$out" "$v" "volmgr ls"; done
vt_assert_eq "empty-1 job-1 job-1-copy" "$("$VOLMGR" ls --json | jq -r '[.[].name] | join(" ")')" "ls --json sorted"
vt_assert_eq "empty-1 job-1 job-1-copy" "$("$VOLMGR" ls -q | xargs)" "ls -q"

vt_step "errors: each kind has its own exit status and changes nothing"
vt_assert_status 5 "$VOLMGR" snapshot cache:proj job-1
vt_assert_status 5 "$VOLMGR" create job-1
vt_assert_status 4 "$VOLMGR" snapshot cache:nope job-2
vt_assert_status 4 "$VOLMGR" snapshot volume:nope job-2
vt_assert_status 4 "$VOLMGR" inspect job-2
vt_assert_status 4 "$VOLMGR" rm job-2
vt_assert_status 4 "$VOLMGR" cache rm nope
vt_assert_status 7 "$VOLMGR" snapshot proj job-2
vt_assert_status 7 "$VOLMGR" snapshot cache:proj ../job-2
vt_assert_status 7 "$VOLMGR" create "a b"
vt_assert_status 7 "$VOLMGR" create --label 'bad key=1' job-3
vt_assert_status 2 "$VOLMGR" frobnicate
vt_assert_status 2 "$VOLMGR" snapshot cache:proj
vt_assert_status 2 "$VOLMGR" ls --bogus
vt_assert_status 3 "$VOLMGR" --socket "$VT_TMP/nothing.sock" ls
msg=$("$VOLMGR" snapshot cache:nope job-2 2>&1 || true)
vt_assert_contains "$msg" "no such cache: nope" "error message"
[[ ! -e $pool/volumes/job-2 && ! -e $pool/volumes/job-3 ]] || vt_fail "a failed create left data"
vt_assert_eq "empty-1 job-1 job-1-copy" "$("$VOLMGR" ls -q | xargs)" "nothing changed"
vt_assert_eq 0 "$(find "$pool/staging" -mindepth 1 | wc -l)" "staging is empty"

vt_step "rm removes the subvolume; cache rm leaves snapshots intact"
"$VOLMGR" rm job-1-copy empty-1
vt_assert_volume_gone job-1-copy
vt_assert_volume_gone empty-1
"$VOLMGR" cache rm proj
[[ ! -e $cache ]] || vt_fail "cache data still there"
vt_assert_status 4 "$VOLMGR" cache inspect proj
vt_assert_eq changed "$(cat "$pool/volumes/job-1/a.txt")" "volume survives its cache"
"$VOLMGR" rm job-1
vt_assert_volume_gone job-1
vt_assert_eq "" "$(btrfs subvolume list -o "$pool" | grep -E 'volumes/|caches/' || true)" "no subvolume left"

vt_step "status"
vt_assert_eq btrfs "$("$VOLMGR" status --json | jq -r .fstype)" "status fstype"
