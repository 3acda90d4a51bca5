#!/usr/bin/env bash
# Deleting a volume with nested subvolumes never deletes anything else,
# even while a job that still holds directory fds inside it (its cwd, an
# open directory) keeps exchanging directories with symlinks to other
# volumes of the pool, to their parents, to volumes/ and caches/ (absolute
# and relative; renameat2 RENAME_EXCHANGE, tests/tools/delete-race.py).
# Issue 13, item 1: libbtrfsutil's recursive delete opened each nested
# subvolume's parent through such a symlink and deleted another volume.
# After every one of the rounds, every other subvolume of the pool (a
# mounted volume, a volume's nested subvolume, a cache, a snapshot of it)
# is still there with its content, and the tree is gone or, if the delete
# gave up, left in staging with a message (deleted at the next start).
# The same with vm_btrfs_delete driven directly, destroying by name (the
# path for kernels before 5.7) and with the O_NOFOLLOW fallback of
# openat2.  And subvolumes nested deeper than the walk holds open are
# deleted too.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init delete-race
vt_require_root
vt_require_cmd jq btrfs python3 mountpoint
RACE=$VT_SRCDIR/tools/delete-race.py
VM_SUBVOL_DELETE=${VM_SUBVOL_DELETE:-./build/tests/vm-subvol-delete}
ROUNDS=${VT_DELETE_RACE_ROUNDS:-500}
TOOL_ROUNDS=${VT_DELETE_RACE_TOOL_ROUNDS:-100}
# The job's uid: owns the trees it races in, and nothing else.
JOB_UID=4242

pool=$(vt_make_pool btrfs 2G)/pool
# volmgrd refuses to remove a volume whose files a process holds open
# (holders.h): the job's fds would stop every rm below.  Here volmgrd
# runs in a pid namespace of its own, where the job is hidden from it as
# a process it may not look into would be, and the delete itself must
# hold.  (The refusal is checked at the end, with volmgrd seeing all.)
VT_DAEMON_PIDNS=1 vt_start_daemon "$pool"

vt_step "victims: volumes (one mounted, one with a nested subvolume), a cache, a snapshot of it"
"$VOLMGR" create victim-a >/dev/null
echo a >"$pool/volumes/victim-a/file-a"
mkdir "$VT_TMP/mnt-a"
mount --bind "$pool/volumes/victim-a" "$VT_TMP/mnt-a"
vt_on_exit vt__umount "$VT_TMP/mnt-a"
"$VOLMGR" create victim-b >/dev/null
btrfs -q subvolume create "$pool/volumes/victim-b/inner" >/dev/null
echo inner >"$pool/volumes/victim-b/inner/file-inner"
mkdir "$VT_TMP/src" && echo c >"$VT_TMP/src/file-c"
"$VOLMGR" cache import victim-c "$VT_TMP/src" >/dev/null
"$VOLMGR" snapshot cache:victim-c victim-d >/dev/null
victims=(--victim "$pool/volumes/victim-a" --victim "$VT_TMP/mnt-a"
	--victim "$pool/volumes/victim-b" --victim "$pool/volumes/victim-b/inner"
	--victim "$pool/caches/victim-c" --victim "$pool/volumes/victim-d")
btrfs subvolume list "$pool" | sed 's/^/# /'

# race MAX_LEFT ARGS... — run the rounds; print the summary.
race() {
	local max_left=$1 out
	shift
	out=$(python3 "$RACE" --pool "$pool" --uid "$JOB_UID" --max-left "$max_left" \
		"${victims[@]}" "$@") || vt_fail "delete race: see above"
	vt_log "summary: $out"
	[[ $(jq .rounds_raced <<<"$out") -gt 0 ]] || vt_fail "no exchange ran during any delete"
}

vt_step "$ROUNDS x volmgr rm of a volume with nested subvolumes, raced"
race $((ROUNDS / 20)) --rounds "$ROUNDS" --volmgr "$VOLMGR"
vt_step "what a delete left in staging goes at the next start"
vt_restart_daemon
vt_assert_eq "" "$(ls -A "$pool/staging")" "staging after the restart"
vt_assert_eq "victim-a victim-b victim-d" "$("$VOLMGR" ls -q | xargs)" "volumes left"

[[ -x $VM_SUBVOL_DELETE ]] || vt_fail "vm-subvol-delete not found at $VM_SUBVOL_DELETE (build first, or set VM_SUBVOL_DELETE)"
mkdir "$pool/scratch"
for mode in "" "--by-name" "--by-name --no-openat2" "--no-openat2"; do
	vt_step "$TOOL_ROUNDS x vm_btrfs_delete $mode, raced"
	args=()
	for a in $mode; do args+=(--tool-arg="$a"); done
	race $((TOOL_ROUNDS / 20)) --rounds "$TOOL_ROUNDS" --tool "$VM_SUBVOL_DELETE" "${args[@]}" \
		--scratch "$pool/scratch"
	for t in "$pool/scratch"/*; do
		[[ -e $t ]] || continue
		"$VM_SUBVOL_DELETE" "$pool/scratch" "${t##*/}" || vt_fail "${t##*/} left by a race cannot be deleted"
	done
done

vt_step "subvolumes nested deeper than the walk holds open are deleted"
"$VOLMGR" create deep >/dev/null
p=$pool/volumes/deep
for i in $(seq 40); do
	mkdir "$p/d$i"
	btrfs -q subvolume create "$p/d$i/s$i" >/dev/null
	p=$p/d$i/s$i
done
btrfs property set -ts "$pool/volumes/deep/d1/s1/d2/s2" ro true
"$VOLMGR" rm deep
vt_assert_volume_gone deep

vt_step "nothing but the victims is left, all as they were"
vt_assert_eq "" "$(ls -A "$pool/staging")" "staging"
vt_assert_eq "" "$(ls -A "$pool/scratch")" "scratch"
vt_assert_eq "caches/victim-c volumes/victim-a volumes/victim-b volumes/victim-b/inner volumes/victim-d" \
	"$(btrfs subvolume list "$pool" | sed 's/.* path pool\///' | sort | xargs)" "subvolumes of the pool"
vt_assert_eq a "$(cat "$VT_TMP/mnt-a/file-a")" "the mounted victim, through its mount"
vt_assert_eq inner "$(cat "$pool/volumes/victim-b/inner/file-inner")" "the nested subvolume of victim-b"
vt_assert_eq c "$(cat "$pool/volumes/victim-d/file-c")" "the snapshot of the cache"

vt_step "volmgrd that sees the job refuses to remove what it holds open"
# (volmgrd runs in the test's pid namespace again since the restart.)
"$VOLMGR" create held >/dev/null
btrfs -q subvolume create "$pool/volumes/held/n" >/dev/null
chown "$JOB_UID" "$pool/volumes/held/n"
python3 -c "
import os, signal
fd = os.open('$pool/volumes/held/n', os.O_RDONLY | os.O_DIRECTORY)
os.setgroups([]); os.setgid($JOB_UID); os.setuid($JOB_UID)  # the job, with an fd it had
open('$VT_TMP/held.ready', 'w').close()
signal.pause()" &
job=$!
vt_on_exit sh -c "kill $job 2>/dev/null; wait $job 2>/dev/null; true"
chmod 0733 "$VT_TMP" # the job writes its ready file
vt_wait_until -p "$job" "the job holds its fd" test -e "$VT_TMP/held.ready"
err=$("$VOLMGR" rm held 2>&1) && vt_fail "rm removed a volume a job holds open"
vt_assert_contains "$err" "process $job (python3) holds it open" "rm refused, naming the job"
kill "$job"
wait "$job" 2>/dev/null || true
"$VOLMGR" rm held >/dev/null
vt_assert_volume_gone held
