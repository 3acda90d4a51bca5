#!/usr/bin/env bash
# The udev rule: a block device whose btrfs file system is labelled
# volmgr-pool gets /dev/disk/by-volmgr/pool and the systemd tag; another
# label gets neither.  Run with `udevadm test` on loop devices the test
# makes (no udevd runs here); `udevadm test` really creates the links, so
# the test removes exactly the ones that point at its own devices.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init udev-rule
vt_require_root
vt_require_cmd udevadm losetup mkfs.btrfs
[[ -e /dev/loop-control ]] || vt_skip "no loop devices"

rule=/run/udev/rules.d/60-volmgr-pool-$VT_ID.rules
mkdir -p /run/udev/rules.d
install -m 0644 "$VT_SRCDIR/../udev/60-volmgr-pool.rules" "$rule"
vt_on_exit rm -f "$rule"
# A fresh machine without udevd has no /dev/disk at all: an empty list
# then (find fails, and pipefail would make that the test's failure).
disk_entries() { if [[ -d /dev/disk ]]; then find /dev/disk -mindepth 1; fi; }
had_dev_disk=$([[ -d /dev/disk ]] && echo yes || echo no)
disk_entries | sort >"$VT_TMP/dev-before"

# The udev database entry of a block device (`udevadm test` writes it).
udev_db() { printf '/run/udev/data/b%s' "$(cat "/sys/class/block/${1#/dev/}/dev")"; }
# Remove what `udevadm test` made for our loop devices: links to them
# (also one that was there before and that udevadm re-pointed at ours),
# their database entries, and directories left empty.
cleanup_links() {
	local p d
	disk_entries | sort | comm -13 "$VT_TMP/dev-before" - >"$VT_TMP/dev-new"
	while IFS= read -r p; do
		[[ -L $p ]] || continue
		case " ${ours[*]} " in *" $(readlink -f "$p") "*) rm -f "$p" ;; esac
	done < <(disk_entries)
	for d in "${ours[@]}"; do rm -f "$(udev_db "$d")"; done
	tac "$VT_TMP/dev-new" | while IFS= read -r p; do [[ -d $p ]] && rmdir "$p" 2>/dev/null; done
	# /dev/disk itself, if this test's udevadm runs made it.
	if [[ $had_dev_disk == no && -d /dev/disk ]]; then rmdir /dev/disk 2>/dev/null; fi
	true
}
ours=()
loopdev() { # loopdev LABEL -> device
	local img=$VT_TMP/$1.img dev
	truncate -s 300M "$img"
	dev=$(losetup --find --show "$img")
	vt_on_exit vt__detach_loop "$dev" "$img"
	mkfs.btrfs -q -f -L "$1" "$dev" >/dev/null
	# A database entry left by an earlier device of this number (another
	# run's) would make udevadm talk of that device's links: it is stale,
	# the number is ours now.
	rm -f "$(udev_db "$dev")"
	printf '%s\n' "$dev"
}
vt_on_exit cleanup_links

vt_step "a device labelled volmgr-pool"
dev=$(loopdev volmgr-pool)
ours+=("$dev")
out=$(udevadm test --action=add "/sys/class/block/${dev#/dev/}" 2>&1)
vt_assert_contains "$out" "$(basename "$rule"):" "our rule was read"
vt_assert_contains "$out" "LINK 'disk/by-volmgr/pool'" "the link"
grep -qE '^TAGS=.*:systemd:' <<<"$out" || vt_fail "no systemd tag: $(grep TAGS <<<"$out")"
grep -qE '^SYSTEMD_WANTS=.*var-lib-volmgr.mount' <<<"$out" || vt_fail "no SYSTEMD_WANTS: $out"
vt_log "ok: tagged systemd, wants var-lib-volmgr.mount"

vt_step "a device with another label"
other=$(loopdev not-a-pool)
ours+=("$other")
out=$(udevadm test --action=add "/sys/class/block/${other#/dev/}" 2>&1)
[[ $out != *"LINK 'disk/by-volmgr/pool'"* ]] || vt_fail "a device labelled not-a-pool got the pool link"
! grep -qE '^SYSTEMD_WANTS=.*var-lib-volmgr.mount' <<<"$out" ||
	vt_fail "a device labelled not-a-pool wants the pool's mount"
vt_log "ok: no pool link for another label"
