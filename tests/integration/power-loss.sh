#!/usr/bin/env bash
# A volume or cache whose record is written is on disk, whole, even if the
# machine loses power right after (issue 13, "from the last round"): a
# copy's files are made durable (syncfs) before the record commits.  The
# power loss is the file system's own shutdown without flushing anything
# (FS_IOC_SHUTDOWN with NOLOGFLUSH, `xfs_io -x -c shutdown`, what
# xfstests' crash tests use): every write not yet on disk is lost, as
# after pulling the plug.  Then the pool is mounted again and volmgrd
# started: every cache and volume it lists must equal its source.
# On ext4 (backend copy) and XFS (backend reflink), where volumes are
# copies; a btrfs snapshot is committed by the kernel before it returns.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init power-loss
vt_require_root
vt_require_cmd xfs_io diff

src=$VT_TMP/src
mkdir -p "$src/d"
for i in $(seq 1 300); do head -c $((i * 37)) /dev/urandom >"$src/d/f$i"; done
echo readme >"$src/README"

for fs in ext4 xfs; do
	vt_step "$fs: power lost right after an import and a snapshot returned"
	dir=$(vt_make_pool "$fs" 1G)
	pool=$dir/pool
	dev=$(awk -v p="$dir" '$5 == p { print $10 }' /proc/self/mountinfo | head -n1)
	[[ -b $dev ]] || dev=$(findmnt -n -o SOURCE "$dir")
	img=$(losetup --noheadings --output BACK-FILE "$dev")
	vt_start_daemon "$pool"
	"$VOLMGR" cache import proj "$src" >/dev/null
	"$VOLMGR" snapshot cache:proj job-1 >/dev/null
	"$VOLMGR" snapshot "$src" job-2 >/dev/null
	# The plug: nothing that is not on disk yet gets there.
	xfs_io -x -c shutdown "$dir"
	vt_log "$fs at $dir shut down without flushing"
	vt_stop_daemon || true # it may meet the shut-down file system
	umount "$dir"
	# The disk read afresh through a new loop device: a mount namespace
	# that any process on the machine copied while the pool was mounted
	# (unshare -m, a container being set up) keeps the shut-down file
	# system alive after this umount, and a mount of the same device
	# would get that one back (EIO on every access; 8 of 50 runs next to
	# other tests).  It writes nothing more, so two of them on one image
	# are safe; XFS is told not to mind the same UUID twice.
	dev=$(losetup --find --show "$img")
	vt_on_exit vt__detach_loop "$dev" "$img"
	opts=()
	[[ $fs != xfs ]] || opts=(-o nouuid)
	mount "${opts[@]}" "$dev" "$dir"
	vt_start_daemon "$pool"
	vt_assert_eq "job-1 job-2" "$("$VOLMGR" ls -q | xargs)" "the volumes that were made"
	vt_assert_eq proj "$("$VOLMGR" cache ls --json | jq -r '.[].name')" "the cache that was made"
	for t in caches/proj volumes/job-1 volumes/job-2; do
		diff -r "$src" "$pool/$t" >/dev/null || vt_fail "$fs: $t differs from its source after the power loss"
		vt_log "ok: $fs: $t is whole"
	done
	vt_stop_daemon
done
