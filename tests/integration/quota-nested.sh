#!/usr/bin/env bash
# A volume's quota covers every subvolume made inside it (simple quotas):
# a job that writes past its limit through a subvolume it made in the
# volume, one made inside that, a snapshot it took of its own subvolume,
# or a subvolume made with a qgroup of its own choosing (an empty list, or
# another volume's qgroup: the kernel then skips the automatic membership,
# volmgrd's sweep puts it back) gets EDQUOT; other volumes keep their
# room; inspect counts the nested bytes; removal and gc remove the
# volume's level-1 qgroup and never another volume's.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init quota-nested
vt_require_root
vt_require_cmd jq btrfs dd python3
# A feature probe, not a version check: the kernel lists what it has.
[[ -e /sys/fs/btrfs/features/simple_quota ]] ||
	vt_skip "this kernel has no btrfs simple quotas (Linux 6.7 or later)"

MiB=$((1024 * 1024))
pool=$(vt_make_pool btrfs 3G)/pool
vt_start_daemon "$pool"

# fill PATH: write up to 64 MiB of zeros (fsync'd) into PATH, which must
# fail with EDQUOT (the limits here are 20 MiB), leaving at most the
# limit in the file.
fill_past_limit() {
	local path=$1 out status=0 size
	out=$(dd if=/dev/zero of="$path" bs=1M count=64 conv=fsync 2>&1) || status=$?
	size=$(stat -c %s "$path" 2>/dev/null || echo 0)
	[[ $status != 0 ]] || vt_fail "writing 64M into $path under a 20M limit succeeded"
	vt_assert_contains "$out" "Disk quota exceeded" "the error writing $path"
	((size <= 20 * MiB)) || vt_fail "$path holds $size bytes, past the 20M limit"
	vt_log "ok: $path stopped at $((size / MiB)) MiB with EDQUOT"
}

# qgroup_parents QGROUP: the parents of a qgroup, as btrfs-progs (the
# independent witness) lists them ("-" for none).
qgroup_parents() {
	btrfs qgroup show -p --raw "$pool" | awk -v q="$1" '$1 == q { print $4 }'
}

# The ioctl that `btrfs subvolume create -i` makes, with any list of
# qgroups, the empty one included (btrfs-progs cannot send that one), and
# with LIMIT=BYTES in the environment also an exclusive limit of the
# creator's choosing on the new subvolume's qgroup
# (BTRFS_QGROUP_INHERIT_SET_LIMITS).  Any user may make it: the kernel
# asks no privilege for a qgroup_inherit.
subvol_create_inherit() { # DIR NAME [QGROUPID...]
	python3 - "$@" <<-'EOF'
	import ctypes, fcntl, os, struct, sys
	parent, name, groups = sys.argv[1], sys.argv[2], sys.argv[3:]
	ids = [int(l) << 48 | int(i) for l, i in (g.split("/") for g in groups)]
	limit = int(os.environ.get("LIMIT", "0"))
	# struct btrfs_qgroup_inherit: flags, num_qgroups, num_ref_copies,
	# num_excl_copies, struct btrfs_qgroup_limit (flags, max_rfer,
	# max_excl, rsv_rfer, rsv_excl), qgroups[]
	raw = struct.pack("<4Q5Q", 1 if limit else 0, len(ids), 0, 0,
	                  1 << 1 if limit else 0, 0, limit, 0, 0)
	raw += b"".join(struct.pack("<Q", i) for i in ids)
	inherit = ctypes.create_string_buffer(raw, len(raw))
	# struct btrfs_ioctl_vol_args_v2: fd, transid, flags,
	# {size, qgroup_inherit} in 32 bytes, name[4040]
	args = struct.pack("<qQQQQ16x", 0, 0, 1 << 2, len(raw), ctypes.addressof(inherit))
	args = bytearray(args + name.encode().ljust(4040, b"\0"))
	BTRFS_IOC_SUBVOL_CREATE_V2 = 1 << 30 | 4096 << 16 | 0x94 << 8 | 24
	fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
	fcntl.ioctl(fd, BTRFS_IOC_SUBVOL_CREATE_V2, args)
	EOF
}

subvol_id() { btrfs inspect-internal rootid "$1"; }

vt_step "volumes with a 20M quota, one without"
for v in qa qb qc qd qe qf; do
	"$VOLMGR" create "$v" --quota 20M >/dev/null
done
"$VOLMGR" create qfree >/dev/null
declare -A id
for v in qa qb qc qd qe qf qfree; do
	id[$v]=$(vt_volmgr_field "$v" .subvol_id)
	# The jobs here run as root, as in most CI containers; the kernel
	# enforces qgroup limits on root as on anyone.
done

vt_step "a subvolume made inside the volume: EDQUOT past the volume's limit"
v=$pool/volumes/qa
btrfs -q subvolume create "$v/n1"
fill_past_limit "$v/n1/big"

vt_step "two levels deep; inspect counts the nested bytes"
v=$pool/volumes/qb
btrfs -q subvolume create "$v/n1"
btrfs -q subvolume create "$v/n1/n2"
dd if=/dev/zero of="$v/n1/n2/eight" bs=1M count=8 conv=fsync status=none
btrfs filesystem sync "$pool" >/dev/null
excl=$(vt_volmgr_field qb .usage.exclusive)
((excl >= 8 * MiB)) || vt_fail "inspect qb: exclusive $excl does not count the 8M in n1/n2"
vt_log "ok: inspect qb counts the nested subvolume's 8M (exclusive $excl)"
fill_past_limit "$v/n1/n2/big"
vt_assert_eq "1/${id[qb]}" "$(qgroup_parents "0/$(subvol_id "$v/n1/n2")")" "n1/n2's qgroup parent"

vt_step "a snapshot the job takes of its own nested subvolume"
v=$pool/volumes/qc
btrfs -q subvolume create "$v/n1"
dd if=/dev/zero of="$v/n1/four" bs=1M count=4 conv=fsync status=none
btrfs -q subvolume snapshot "$v/n1" "$v/snap"
fill_past_limit "$v/snap/big"

vt_step "a subvolume made with another volume's qgroup: the watcher moves it back"
v=$pool/volumes/qd
btrfs -q subvolume create -i "1/${id[qf]}" "$v/esc"
esc=$(subvol_id "$v/esc")
# The kernel made it a member of qf's qgroup only: until volmgrd's watcher
# sweeps (every 250 ms), writes there are charged to qf.  Wait for the
# event itself, not for a time: its qgroup's parent becomes qd's -- and
# for the watcher's log line, which it writes once its whole sweep is
# done, a moment after the move.
parent_is() { [[ $(qgroup_parents "$1") == "$2" ]]; }
vt_wait_until "the watcher moved 0/$esc into 1/${id[qd]}" parent_is "0/$esc" "1/${id[qd]}"
vt_assert_eq "1/${id[qd]}" "$(qgroup_parents "0/$esc")" "the watcher's fix of 0/$esc"
vt_wait_until "the watcher's log line" grep -q "joined their volume's qgroup" "$VT_TMP/volmgrd.log"
fill_past_limit "$v/esc/big"

vt_step "a subvolume made with an empty qgroup list: inspect sweeps first"
v=$pool/volumes/qe
subvol_create_inherit "$v" esc
esc=$(subvol_id "$v/esc")
dd if=/dev/zero of="$v/esc/eight" bs=1M count=8 conv=fsync status=none
btrfs filesystem sync "$pool" >/dev/null
excl=$(vt_volmgr_field qe .usage.exclusive)
vt_assert_eq "1/${id[qe]}" "$(qgroup_parents "0/$esc")" "0/$esc after inspect"
((excl >= 8 * MiB)) || vt_fail "inspect qe: exclusive $excl does not count the 8M in esc"
fill_past_limit "$v/esc/big"

vt_step "other volumes are unaffected"
# qf was named by qd's subvolume while the watcher had not moved it yet:
# nothing of it is left on qf once it moved.
btrfs filesystem sync "$pool" >/dev/null
excl=$(vt_volmgr_field qf .usage.exclusive)
((excl < MiB)) || vt_fail "qf is charged $excl bytes for another volume's subvolume"
dd if=/dev/zero of="$pool/volumes/qf/sixteen" bs=1M count=16 conv=fsync status=none ||
	vt_fail "qf refused 16M"
dd if=/dev/zero of="$pool/volumes/qfree/big" bs=1M count=64 conv=fsync status=none ||
	vt_fail "qfree (no quota) refused 64M"
vt_log "ok: qf took 16M, qfree 64M"

vt_step "a volume is removed even at its limit, and with a subvolume the job limited itself"
"$VOLMGR" create qh --quota 20M >/dev/null
v=$pool/volumes/qh
# Deleting a subvolume reserves metadata in the qgroups of the one that
# holds it: inside a volume at its limit, or inside a subvolume whose
# creator gave it a small limit of its own, that fails with EDQUOT unless
# volmgrd clears those limits first.
LIMIT=$((2 * MiB)) subvol_create_inherit "$v" own
btrfs -q subvolume create "$v/own/inner"
dd if=/dev/zero of="$v/own/fill" bs=1M count=8 conv=fsync status=none 2>/dev/null || true
btrfs -q subvolume create "$v/n1"
btrfs -q subvolume create "$v/n1/n2"
fill_past_limit "$v/n1/big"
"$VOLMGR" rm qh >/dev/null
vt_assert_volume_gone qh

vt_step "status and qgroups: simple quotas, a level-1 qgroup per volume"
vt_assert_eq simple "$("$VOLMGR" status --json | jq -r .quota_accounting)" "quota_accounting"
vt_assert_contains "$("$VOLMGR" status)" "quotas:   yes (simple quotas" "volmgr status"
vt_assert_eq "1/${id[qa]}" "$(qgroup_parents "0/${id[qa]}")" "qa's qgroup is in its level-1 qgroup"
vt_assert_eq $((20 * MiB)) "$(vt_volmgr_field qa .usage.limit)" "qa's limit (on 1/${id[qa]})"
vt_assert_eq 0 "$(vt_volmgr_field qfree .usage.limit)" "qfree has no limit"

vt_step "removal: the volume's level-1 qgroup goes, nobody else's"
"$VOLMGR" rm qa >/dev/null
groups=$(btrfs qgroup show --raw "$pool" | awk '$1 ~ /^1\// { print $1 }' | sort | tr '\n' ' ')
want=$(for v in qb qc qd qe qf qfree; do echo "1/${id[$v]}"; done | sort | tr '\n' ' ')
vt_assert_eq "$want" "$groups" "level-1 qgroups after rm qa"

vt_step "gc: stale level-1 qgroups go (members all gone), the others stay"
# One of a volume gone whose member is gone too (made the way a crash
# between the staging and the record leaves one), and one with a live
# member that is no volume of volmgr's.
btrfs qgroup create 1/99999 "$pool"
btrfs -q subvolume create "$pool/../loose"
loose=$(subvol_id "$pool/../loose")
btrfs qgroup create 1/88888 "$pool"
btrfs qgroup assign --no-rescan "0/$loose" 1/88888 "$pool"
btrfs filesystem sync "$pool" >/dev/null
btrfs subvolume sync "$pool" >/dev/null
report=$("$VOLMGR" gc --json)
vt_log "gc: $report"
groups=$(btrfs qgroup show --raw "$pool" | awk '$1 ~ /^1\// { print $1 }' | sort | tr '\n' ' ')
want=$(for v in qb qc qd qe qf qfree; do echo "1/${id[$v]}"; done; echo 1/88888)
want=$(sort <<<"$want" | tr '\n' ' ')
vt_assert_eq "$want" "$groups" "level-1 qgroups after gc"
for v in qb qc qd qe qf qfree; do
	vt_assert_eq "1/${id[$v]}" "$(qgroup_parents "0/${id[$v]}")" "$v still in its qgroup"
done

vt_step "gc's bytes freed count the nested subvolumes"
"$VOLMGR" create qg --label job=done >/dev/null
btrfs -q subvolume create "$pool/volumes/qg/n1"
dd if=/dev/zero of="$pool/volumes/qg/n1/twelve" bs=1M count=12 conv=fsync status=none
report=$("$VOLMGR" gc --label job=done --json)
bytes=$(jq -r '.removed[] | select(.name == "qg") | .bytes' <<<"$report")
((bytes >= 12 * MiB)) || vt_fail "gc: bytes freed for qg: $bytes (12M were written in its nested subvolume)"
vt_log "ok: gc counted $bytes bytes for qg"
vt_assert_volume_gone qg

vt_step "a pool with full accounting on already (an older volmgr's): kept, and said"
vt_stop_daemon
# (Disabling drops every qgroup and limit: the volumes that exist keep
# running without one.)
btrfs quota disable "$pool"
btrfs quota enable "$pool"
btrfs quota rescan -w "$pool" >/dev/null
vt_start_daemon "$pool"
vt_assert_eq full "$("$VOLMGR" status --json | jq -r .quota_accounting)" "quota_accounting"
vt_assert_contains "$("$VOLMGR" status)" "subvolumes made inside a volume are not counted" "volmgr status"
grep -q "quota: full qgroup accounting (on already: kept)" "$VT_TMP/volmgrd.log" ||
	vt_fail "the log does not say the pool's full accounting was kept"
"$VOLMGR" create fa --quota 20M >/dev/null
fa=$(vt_volmgr_field fa .subvol_id)
vt_assert_eq $((20 * MiB)) "$(btrfs qgroup show -e --raw "$pool" | awk -v q="0/$fa" '$1 == q { print $4 }')" \
	"the limit is on 0/$fa"
# No level-1 qgroup on a pool with full accounting: a job naming one in a
# snapshot's qgroup_inherit would stop all accounting on the pool.
vt_assert_eq "" "$(btrfs qgroup show --raw "$pool" | awk '$1 ~ /^1\// { print $1 }')" "level-1 qgroups"
fill_past_limit "$pool/volumes/fa/big"
"$VOLMGR" rm fa >/dev/null

vt_step "accounting = simple on that pool: quotas off, with the reason"
printf '[quota]\naccounting = simple\n' >"$VT_TMP/simple.conf"
# vt_restart_daemon starts volmgrd again with this configuration.
# shellcheck disable=SC2034
VT_CONFIG_FILE=$VT_TMP/simple.conf
vt_restart_daemon
vt_assert_eq false "$("$VOLMGR" status --json | jq -r .quotas)" "quotas"
vt_assert_contains "$("$VOLMGR" status --json | jq -r .quotas_reason)" "full qgroup accounting" "the reason"
status=0
msg=$("$VOLMGR" create fb --quota 1G 2>&1) || status=$?
vt_assert_eq 9 "$status" "exit status of a create with a quota"
vt_assert_contains "$msg" "full qgroup accounting" "its message"
