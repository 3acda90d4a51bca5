#!/usr/bin/env bash
# The tree copy engine (volmgr/copy*.c) through tests/tools/vm-copy: a
# source tree with everything a checkout or a root file system can hold
# (sparse files, hard links, symlinks pointing out of the tree, fifos,
# device nodes, set-id files, file capabilities, ACLs, xattrs, odd names,
# deep nesting, a mount point) on btrfs, XFS, ext4 and tmpfs, copied with
# every data x io combination that applies and compared with treecmp.py.
# Then io_uring is taken away with a seccomp filter (as podman's default
# profile does) and the engine must say so and fall back.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init copy-engine
vt_require_root
vt_require_cmd python3 jq setfacl setcap setfattr getfattr mkfifo mknod findmnt filefrag fallocate
VM_COPY=${VM_COPY:-./build/tests/vm-copy}
[[ -x $VM_COPY ]] || vt_fail "vm-copy not found at $VM_COPY (build first, or set VM_COPY)"
TREECMP=$VT_SRCDIR/tools/treecmp.py
SECCOMP_DENY=$VT_SRCDIR/tools/seccomp-deny.py

# make_tree DIR — the rich source tree.
make_tree() {
	local s=$1 i d
	mkdir -p "$s"
	cd "$s"
	# Sparse: data at the start, in the middle and at the end of 64 MiB,
	# and a file that is one hole.
	truncate -s 64M sparse
	printf 'start' | dd of=sparse conv=notrunc status=none
	printf 'middle' | dd of=sparse bs=1M seek=32 conv=notrunc status=none
	printf 'end' | dd of=sparse bs=1 seek=$((64 * 1024 * 1024 - 3)) conv=notrunc status=none
	truncate -s 10M all-hole
	# Data across several of the engine's 128 KiB chunks, and an odd size.
	head -c $((5 * 1024 * 1024 + 12345)) /dev/urandom >big
	: >empty
	for i in $(seq 1 200); do printf 'small %s\n' "$i" >"small-$i"; done
	# Hard links across directories, of a file, a symlink and a fifo.
	mkdir -p links/a links/b
	printf 'linked\n' >links/a/one
	ln links/a/one links/b/two
	ln links/a/one links/three
	ln -s target links/sym
	ln -P links/sym links/b/sym-hardlink
	mkfifo links/fifo
	ln links/fifo links/a/fifo-hardlink
	# Symlinks are copied as links, never followed.
	ln -s ../big rel-link
	ln -s does/not/exist dangling
	ln -s / to-root
	ln -s /etc/shadow to-shadow
	ln -s "$(printf 'x%.0s' $(seq 1 1000))" long-target
	# Special files.
	mkfifo fifo
	mknod chardev c 1 3
	mknod blockdev b 7 250
	python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' sock
	# Owners and set-id bits: chown before chmod, or the bits are lost.
	printf '#!/bin/sh\n' >setuid
	chown 1000:1000 setuid
	chmod 4755 setuid
	printf 'x' >setgid
	chown 0:1000 setgid
	chmod 2711 setgid
	printf 'caps' >capped
	setcap cap_net_bind_service,cap_net_raw=+ep capped
	printf 'caps+suid' >capped-setuid
	chown 1000:1000 capped-setuid
	setcap cap_net_raw=+ep capped-setuid
	chmod 4755 capped-setuid
	printf 'no access' >mode-0000
	chmod 0000 mode-0000
	mkdir sticky && chmod 1777 sticky
	printf 'nobody' >sticky/nobody-file
	chown 65534:65534 sticky/nobody-file
	# A set-gid directory: what is made in it takes its group.
	mkdir sgid-dir && chown 0:1000 sgid-dir && chmod 2775 sgid-dir
	printf 'a' >sgid-dir/inherits
	printf 'b' >sgid-dir/root-group && chown 0:0 sgid-dir/root-group
	mkdir sgid-dir/sub
	# ACLs (access and default) and extended attributes.
	mkdir acl-dir
	setfacl -m u:1000:rwx,g:100:rx acl-dir
	setfacl -d -m u:1000:rw,g:100:r acl-dir
	printf 'acl' >acl-dir/file
	printf 'acl' >acl-file && setfacl -m u:65534:rw,m::rw acl-file
	printf 'x' >xattrs
	setfattr -n user.plain -v value xattrs
	setfattr -n user.binary -v 0x00ff10 xattrs
	setfattr -n user.big -v "$(head -c 2000 /dev/zero | tr '\0' z)" xattrs
	setfattr -n trusted.volmgr-test -v root-only xattrs
	setfattr -n user.on-dir -v yes acl-dir
	# Odd names.
	mkdir odd
	: >"odd/with space"
	: >"odd/$(printf 'new\nline')"
	: >"odd/-leading-dash"
	: >"odd/ütf-8 ✓"
	: >"odd/$(printf 'bad-\xff-utf8')"
	: >"odd/$(printf 'n%.0s' $(seq 1 255))"
	: >"odd/.hidden"
	# Deep nesting.
	d=deep
	for i in $(seq 1 60); do d=$d/d$i; done
	mkdir -p "$d"
	printf 'deep\n' >"$d/leaf"
	# World-readable part for the reader's copy.
	mkdir -p pub/sub
	printf 'public\n' >pub/file
	ln -s file pub/link
	chmod -R a+rX pub
	printf 'secret\n' >pub/private && chmod 0600 pub/private
	# Nanosecond times, on files, links and directories (last: every
	# change above moved the directories' times).
	touch -h -d '2001-02-03 04:05:06.123456789' big to-root links/sym
	touch -d '1999-12-31 23:59:59.999999999' deep acl-dir
	cd - >/dev/null
}

# vm_copy ARGS... SRC DST — run the driver; its JSON on stdout.
vm_copy() { "$VM_COPY" "$@"; }

# refused_copy WHAT ERRNO MESSAGE ARGS... — vm-copy with ARGS must fail
# (exit 1) with ERRNO and an error containing MESSAGE.
refused_copy() {
	local what=$1 errno=$2 msg=$3 status=0 out
	shift 3
	out=$(vm_copy "$@") || status=$?
	vt_log "$out"
	vt_assert_eq 1 "$status" "$what: exit status"
	vt_assert_eq "$errno" "$(jq -r .errno <<<"$out")" "$what: errno"
	vt_assert_contains "$(jq -r .error <<<"$out")" "$msg" "$what: error"
}

# check_copy FS WHAT EXPECTED_IO ARGS... — copy $src into a fresh
# directory with ARGS, expect success on EXPECTED_IO, compare.
check_copy() {
	local fs=$1 what=$2 io=$3 dst out
	shift 3
	dst=$base/dst-$((++ncopy))
	mkdir "$dst"
	vt_log "$fs: $what: vm-copy $*"
	out=$(vm_copy "$@" "$src" "$dst") || vt_fail "$fs: $what: copy failed: $out"
	vt_log "$out"
	vt_assert_eq true "$(jq -r .ok <<<"$out")" "$fs: $what: ok"
	vt_assert_eq "$io" "$(jq -r .io_used <<<"$out")" "$fs: $what: io_used"
	# Sockets are skipped; the rest of the tree is counted.
	[[ $(jq -r .stats.hardlinks <<<"$out") == 4 ]] ||
		vt_fail "$fs: $what: expected 4 hard links made, got $(jq -c .stats <<<"$out")"
	python3 "$TREECMP" --atime "$src" "$dst" || vt_fail "$fs: $what: the copy differs"
	[[ ! -e $dst/mnt/inside-the-mount ]] || vt_fail "$fs: $what: crossed into a mount point"
	[[ -d $dst/mnt ]] || vt_fail "$fs: $what: the mount point is not an empty directory"
	[[ -d $dst/bindmnt && ! -e $dst/bindmnt/bound-file ]] ||
		vt_fail "$fs: $what: crossed into a bind mount"
	rm -rf "$dst"
	LAST_OUT=$out
}

# check_progress WHAT — the last copy (LAST_OUT, made with --progress)
# reported progress that ends with its totals.
check_progress() {
	local what=$1 want
	vt_assert_eq 1 "$(jq -r .progress.done_calls <<<"$LAST_OUT")" "$what: progress calls with done set"
	vt_assert_eq true "$(jq -r .progress.last_done <<<"$LAST_OUT")" "$what: the last progress call is done"
	vt_assert_eq "$(jq -r .stats.bytes <<<"$LAST_OUT")" "$(jq -r .progress.bytes <<<"$LAST_OUT")" \
		"$what: bytes in the last progress call"
	want=$(jq -r '.stats | .files + .symlinks + .others + .hardlinks' <<<"$LAST_OUT")
	vt_assert_eq "$want" "$(jq -r .progress.files <<<"$LAST_OUT")" "$what: files in the last progress call"
}

# make_wide DIR — many directories side by side, and inodes with names
# in ten of them each: walkers that share a reflink copy meet the names
# of one inode at the same time, and the directories outnumber what the
# walkers' stack holds under a low fd limit.
make_wide() {
	local w=$1 i k
	mkdir -p "$w"
	for i in $(seq -w 0 299); do
		mkdir "$w/d$i"
		printf 'a%s\n' "$i" >"$w/d$i/a"
		printf 'b%s\n' "$i" >"$w/d$i/b"
		ln -s a "$w/d$i/link"
		mkdir "$w/d$i/sub"
		printf 'c%s\n' "$i" >"$w/d$i/sub/c"
	done
	for i in $(seq 1 40); do
		printf 'shared %s\n' "$i" >"$w/d$(printf %03d $((i * 7 % 300)))/shared-$i"
		for k in $(seq 1 9); do
			ln "$w/d$(printf %03d $((i * 7 % 300)))/shared-$i" \
				"$w/d$(printf %03d $(((i * 7 + k * 31) % 300)))/also-$i-$k"
		done
	done
	chmod 2775 "$w/d007" && chown 0:1000 "$w/d007" # its files' group: 1000
	printf 'sgid\n' >"$w/d007/sgid-file"
	touch -d '2001-02-03 04:05:06.5' "$w"/d*
}

# make_fs FS — a file system of type FS mounted noatime (so that reading
# the source leaves its atimes alone and treecmp can compare them).
make_fs() {
	local fs=$1 dir
	if [[ $fs == tmpfs ]]; then
		dir=$VT_TMP/pool-tmpfs
		mkdir "$dir"
		mount -t tmpfs -o size=1G,noatime tmpfs "$dir"
		vt_on_exit vt__umount "$dir"
	else
		dir=$(vt_make_pool "$fs" 1G)
		mount -o remount,noatime "$dir"
	fi
	printf '%s\n' "$dir"
}

ncopy=0
for fs in btrfs xfs ext4 tmpfs; do
	vt_step "$fs: build the source tree"
	base=$(make_fs "$fs")
	src=$base/src
	make_tree "$src"
	mkdir "$src/mnt" "$src/bindmnt" # mount points, below
	if [[ $fs != tmpfs ]]; then
		vt_step "$fs: io_uring on a cold page cache (the file system mounted afresh)"
		# Reads that must wait for the disk: io_uring must not hand
		# -EAGAIN back and spin (--no-new-devices opens files
		# O_NONBLOCK, which must be cleared for io_uring).
		dev=$(findmnt -no SOURCE "$base")
		for args in "" --no-new-devices; do
			umount "$base"
			mount -o noatime "$dev" "$base"
			# A mount namespace that another process on the machine
			# copied meanwhile keeps the file system alive, and the
			# mount above then gets it back with its page cache: drop
			# the source's pages anyway (its files are clean).
			python3 - "$src" <<-'PY'
			import os, sys
			for d, _, files in os.walk(sys.argv[1]):
			    for f in files:
			        p = os.path.join(d, f)
			        if os.path.isfile(p) and not os.path.islink(p):
			            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW)
			            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
			            os.close(fd)
			PY
			# shellcheck disable=SC2086 # none or one word
			check_copy "$fs" "copy/uring${args:+ $args}, cold cache" io_uring --data copy \
				--io uring $args
		done
	fi
	# A mount point inside the source: the copy stays on one file system.
	mount -t tmpfs -o size=1M tmpfs "$src/mnt"
	vt_on_exit vt__umount "$src/mnt"
	printf 'must not be copied\n' >"$src/mnt/inside-the-mount"
	# A bind mount of the same file system: st_dev cannot tell it, the
	# mount ID (openat2's RESOLVE_NO_XDEV, statx in the fallback) can.
	mkdir "$base/bind-src"
	printf 'must not be copied either\n' >"$base/bind-src/bound-file"
	mount --bind "$base/bind-src" "$src/bindmnt"
	vt_on_exit vt__umount "$src/bindmnt"

	vt_step "$fs: data copy with io auto, io_uring, syscalls"
	if [[ $fs == @(btrfs|xfs) ]]; then
		# Source and destination on one file system that clones: AUTO
		# lets copy_file_range share the extents rather than store the
		# data twice.
		check_copy "$fs" "copy/auto" syscalls --data copy --io auto
		vt_assert_contains "$(jq -r .io_reason <<<"$LAST_OUT")" "shares extents" "io_reason"
		for io in auto uring; do
			dst=$base/dst-extents-$io
			mkdir "$dst"
			vm_copy --io "$io" "$src" "$dst" >/dev/null
			shared=no
			filefrag -v "$dst/big" | grep -q shared && shared=yes
			vt_assert_eq "$([[ $io == auto ]] && echo yes || echo no)" "$shared" \
				"$fs: io $io: the copy of big shares its extents"
			rm -rf "$dst"
		done
	else
		check_copy "$fs" "copy/auto" io_uring --data copy --io auto
	fi
	check_copy "$fs" "copy/uring" io_uring --data copy --io uring
	check_copy "$fs" "copy/syscalls" syscalls --data copy --io syscalls
	vt_assert_eq "syscalls requested" "$(jq -r .io_reason <<<"$LAST_OUT")" "io_reason"
	# The caller's fd read to its end first: the engine reads its own.
	check_copy "$fs" "copy/syscalls, source fd already read" syscalls --data copy \
		--io syscalls --read-first

	vt_step "$fs: a source where no device node can appear (a cache): files opened at once"
	check_copy "$fs" "copy/uring, no new devices" io_uring --data copy --io uring --no-new-devices
	check_copy "$fs" "copy/syscalls, no new devices" syscalls --data copy --io syscalls \
		--no-new-devices

	vt_step "$fs: attributes counted; a source said to have none is not asked"
	jq -e '.stats.xattrs >= 5' <<<"$LAST_OUT" >/dev/null ||
		vt_fail "$fs: attributes set by the last copy: $(jq -c .stats <<<"$LAST_OUT")"
	for args in "--io syscalls" "--io uring" "--data reflink"; do
		[[ $args != "--data reflink" || $fs == @(btrfs|xfs) ]] || continue
		dst=$base/dst-noxattrs
		mkdir "$dst"
		# shellcheck disable=SC2086 # words on purpose
		out=$(vm_copy $args --no-xattrs "$src" "$dst") || vt_fail "$fs: ($args) --no-xattrs: $out"
		vt_assert_eq 0 "$(jq -r .stats.xattrs <<<"$out")" "$fs: ($args) attributes set with --no-xattrs"
		[[ -z $(getfattr --absolute-names -d -m - "$dst/xattrs" "$dst/capped" "$dst/acl-file") ]] ||
			vt_fail "$fs: ($args) --no-xattrs: attributes were copied"
		[[ $(cat "$dst/big") == "$(cat "$src/big")" ]] || vt_fail "$fs: ($args) --no-xattrs: content"
		rm -rf "$dst"
	done

	vt_step "$fs: the openat2 fallback, forced"
	check_copy "$fs" "copy/uring, no openat2" io_uring --data copy --io uring --no-openat2
	check_copy "$fs" "copy/syscalls, no openat2" syscalls --data copy --io syscalls --no-openat2

	vt_step "$fs: progress"
	check_copy "$fs" "copy/uring with progress" io_uring --data copy --io uring --progress
	check_progress "$fs: copy/uring"

	vt_step "$fs: a copy leaves the source's atimes alone (relatime, O_NOATIME)"
	# relatime updates an atime older than a day on the first read.
	mount -o remount,relatime "$base"
	for args in "--io uring" "--io syscalls" "--io uring --no-new-devices"; do
		touch -a -d 2020-01-01 "$src/small-1" "$src/big"
		dst=$base/dst-atime
		mkdir "$dst"
		# shellcheck disable=SC2086 # words on purpose
		vm_copy $args "$src" "$dst" >/dev/null || vt_fail "$fs: copy ($args) failed"
		for f in small-1 big; do
			vt_assert_eq 2020-01-01 "$(stat -c %x "$src/$f" | cut -d' ' -f1)" \
				"$fs: ($args) atime of the source's $f after the copy"
		done
		rm -rf "$dst"
	done
	mount -o remount,noatime "$base"

	vt_step "$fs: data reflink"
	if [[ $fs == @(btrfs|xfs) ]]; then
		check_copy "$fs" "reflink/auto" syscalls --data reflink --io auto
		check_copy "$fs" "reflink/syscalls" syscalls --data reflink --io syscalls
		check_copy "$fs" "reflink, no openat2" syscalls --data reflink --no-openat2
		check_copy "$fs" "reflink, no new devices" syscalls --data reflink --no-new-devices
		# Root's reflink copy: several threads, each walking whole
		# directories (the walkers share the tree).
		reason=$(jq -r .io_reason <<<"$LAST_OUT")
		[[ $reason =~ "FICLONE in "[2-8]" threads, each walking whole directories" ]] ||
			vt_fail "$fs: reflink: io_reason: $reason"
		if [[ $fs == xfs ]]; then
			vt_assert_contains "$reason" "kept to different XFS allocation groups" "io_reason on XFS"
		fi
		check_copy "$fs" "reflink with progress" syscalls --data reflink --progress
		check_progress "$fs: reflink"

		vt_step "$fs: reflink walkers: hard links met by two walkers, a full directory stack"
		make_wide "$base/wide"
		# 64 fds: the stack of directories waiting for a walker holds
		# 16 (the least); the rest a walker walks itself.
		for limit in "" 64; do
			dst=$base/dst-wide
			mkdir "$dst"
			out=$(${limit:+prlimit --nofile=$limit:$limit} "$VM_COPY" --data reflink \
				--no-new-devices "$base/wide" "$dst") ||
				vt_fail "$fs: wide tree (fd limit ${limit:-default}): copy failed: $out"
			vt_log "$out"
			vt_assert_eq 360 "$(jq -r .stats.hardlinks <<<"$out")" \
				"$fs: hard links made (fd limit ${limit:-default})"
			vt_assert_eq 600 "$(jq -r .stats.dirs <<<"$out")" \
				"$fs: directories made (fd limit ${limit:-default})"
			python3 "$TREECMP" --atime "$base/wide" "$dst" ||
				vt_fail "$fs: wide tree (fd limit ${limit:-default}): the copy differs"
			rm -rf "$dst"
		done
		if [[ $fs == xfs ]]; then
			# One walker's failure stops them all, with its error and
			# no hang: the file system filled, no room for new inodes.
			dst=$base/dst-full
			mkdir "$dst"
			fallocate -l $(($(df --output=avail -B1 "$base" | tail -n 1) - 65536)) "$base/filler"
			status=0
			out=$(timeout 300 "$VM_COPY" --data reflink "$base/wide" "$dst") || status=$?
			vt_log "$out"
			vt_assert_eq 1 "$status" "$fs: exit status of a reflink copy into a full file system"
			vt_assert_eq 28 "$(jq -r .errno <<<"$out")" "$fs: errno (ENOSPC) of the walkers' copy"
			rm -rf "$dst" "$base/filler"
		fi
		rm -rf "$base/wide"
	else
		dst=$base/dst-reflink
		mkdir "$dst"
		refused_copy "$fs: reflink copy (EOPNOTSUPP)" 95 "cannot share extents" --data reflink "$src" "$dst"
		rm -rf "$dst"
	fi

	vt_step "$fs: a copy read with a user's credentials"
	dst=$base/dst-reader
	mkdir "$dst"
	refused_copy "$fs: a reader's copy of a file it cannot read (EACCES; the error names the file)" \
		13 "cannot open private" --reader 65534:65534 "$src/pub" "$dst"
	rm -rf "$dst" "$src/pub/private"
	mkdir "$dst"
	out=$(vm_copy --reader 65534:65534 "$src/pub" "$dst") || vt_fail "reader's copy failed: $out"
	vt_log "$out"
	vt_assert_eq syscalls "$(jq -r .io_used <<<"$out")" "io_used of a reader's copy"
	vt_assert_contains "$(jq -r .io_reason <<<"$out")" "uid 65534" "io_reason"
	python3 "$TREECMP" --atime "$src/pub" "$dst" || vt_fail "$fs: the reader's copy differs"
	rm -rf "$dst"
	# Device nodes: a caller who is not root could not make them, so
	# its copy leaves them out (counted as skipped); a fifo stays.
	mkdir -p "$base/devsrc" "$dst"
	printf 'kept\n' >"$base/devsrc/file"
	mknod "$base/devsrc/chardev" c 1 3
	mknod "$base/devsrc/blockdev" b 7 250
	mkfifo "$base/devsrc/fifo"
	chmod -R a+rX "$base/devsrc"
	out=$(vm_copy --reader 65534:65534 "$base/devsrc" "$dst") ||
		vt_fail "reader's copy of device nodes failed: $out"
	vt_log "$out"
	vt_assert_eq 2 "$(jq -r .stats.skipped <<<"$out")" "device nodes skipped in a reader's copy"
	[[ -f $dst/file && -p $dst/fifo && ! -e $dst/chardev && ! -e $dst/blockdev ]] ||
		vt_fail "$fs: a reader's copy made device nodes (or lost the rest)"
	rm -rf "$dst" "$base/devsrc"
	printf 'secret\n' >"$src/pub/private" && chmod 0600 "$src/pub/private"
	touch -d '2001-02-03 04:05:06' "$src/pub"
done

vt_step "a reader's copy of proc or sysfs is refused"
# setfsuid drops only the fs capabilities: reading a kernel file system
# for a caller would still use root's others.
for pseudo in /proc/sys /sys/kernel; do
	dst=$VT_TMP/dst-pseudo
	mkdir "$dst"
	refused_copy "a reader's copy of $pseudo (EXDEV)" 18 "kernel file system" \
		--reader 65534:65534 "$pseudo" "$dst"
	[[ -z $(ls -A "$dst") ]] || vt_fail "the refused copy of $pseudo left files behind"
	rm -rf "$dst"
done

vt_step "io_uring denied by seccomp (as in a podman container)"
mkdir "$base/dst-seccomp"
out=$(python3 "$SECCOMP_DENY" "$VM_COPY" --io auto "$src" "$base/dst-seccomp") ||
	vt_fail "copy under the seccomp filter failed: $out"
vt_log "$out"
vt_assert_eq syscalls "$(jq -r .io_used <<<"$out")" "io_used under seccomp"
vt_assert_contains "$(jq -r .io_reason <<<"$out")" "io_uring_setup fails: Function not implemented" \
	"io_reason under seccomp"
python3 "$TREECMP" --atime "$src" "$base/dst-seccomp" || vt_fail "the fallback copy differs"
rm -rf "$base/dst-seccomp"
mkdir "$base/dst-seccomp"
status=0
out=$(python3 "$SECCOMP_DENY" "$VM_COPY" --io uring "$src" "$base/dst-seccomp") || status=$?
vt_log "$out"
vt_assert_eq 1 "$status" "exit status with io_uring required but denied"
vt_assert_contains "$(jq -r .error <<<"$out")" "io_uring requested, but io_uring_setup fails" "error"
[[ -z $(ls -A "$base/dst-seccomp") ]] || vt_fail "a refused copy wrote into the destination"

vt_step "a full destination: a clean error, no hang"
full=$VT_TMP/full
mkdir "$full"
mount -t tmpfs -o size=2M tmpfs "$full"
vt_on_exit vt__umount "$full"
for io in uring syscalls; do
	mkdir "$full/dst"
	status=0
	out=$(timeout 300 "$VM_COPY" --io "$io" "$src" "$full/dst") || status=$?
	vt_log "$out"
	vt_assert_eq 1 "$status" "exit status of a copy ($io) into a full file system"
	vt_assert_eq 28 "$(jq -r .errno <<<"$out")" "errno (ENOSPC)"
	rm -rf "$full/dst"
done

vt_step "treecmp notices differences (it could fail)"
mkdir "$base/dst-broken"
"$VM_COPY" "$src" "$base/dst-broken" >/dev/null
setfattr -x security.capability "$base/dst-broken/capped"
printf 'X' | dd of="$base/dst-broken/big" bs=1 seek=100 conv=notrunc status=none
touch -h -d '2001-02-03 04:05:06.123456788' "$base/dst-broken/to-root"
chmod 0755 "$base/dst-broken/setuid"
rm "$base/dst-broken/links/b/two" && printf 'linked\n' >"$base/dst-broken/links/b/two"
status=0
diffs=$(python3 "$TREECMP" "$src" "$base/dst-broken" 2>&1) || status=$?
vt_log "$diffs"
vt_assert_eq 1 "$status" "treecmp's exit status on a broken copy"
for what in "xattr security.capability missing" "big: content differs" "to-root: mtime" \
	"setuid: mode 4755 became 755" "hard links"; do
	vt_assert_contains "$diffs" "$what" "treecmp's report"
done
