#!/usr/bin/env bash
# bench/backends.sh — each volmgr backend against the usual copy tools, on
# the file system where that backend applies:
#   btrfs   backend btrfs (snapshot)       XFS    backend reflink
#   ext4    backend copy                   tmpfs  backend copy
# For the Linux 6.1 source tree (linux-source-6.1, ~79k files, 1.5 GB) it
# times, with a warm page cache and a cold one (sync; drop_caches before
# each run):
#   volmgr       `volmgr snapshot cache:src VOL` (the whole CLI call)
#   cp-a         `cp -a SRC DST` (coreutils 9: --reflink=auto)
#   cp-reflink   `cp -a --reflink=always SRC DST` (btrfs and XFS only)
#   tar          `tar -C SRC -cf - . | tar -C DST -xf -`
#   rsync        `rsync -a SRC/ DST/`
# all reading and writing the same file system; medians over the runs, and
# each median's ratio to cp -a's.  The physical bound for the file system
# comes from fio (sequential read and write of one big file, cold):
# bound = tree bytes / read rate + tree bytes / write rate.  The goals of
# issue 7 are checked and printed as PASS or MISS.
#
# Usage: sudo bench/backends.sh [--runs N] [--quick] [--fs LIST] [--out FILE]
#   --runs N    timed runs per method, warm and cold each (default 5)
#   --quick     smoke test: one run, a small part of the kernel tree
#               (Documentation/admin-guide), a small fio file
#   --fs LIST   file systems, comma-separated, of btrfs, xfs, ext4, tmpfs
#               (default: all four)
#   --out FILE  also write the report (markdown) to FILE
#
# The volmgr binaries default to build/volmgr/{daemon/volmgrd,cli/volmgr} next to this
# script's directory; set VOLMGRD / VOLMGR to use others.  Each file system
# is a sparse image on a loop device (tmpfs: a mount) in a scratch
# directory, torn down before the next; everything is removed at exit by
# its exact path, device or pid.  Packages it installs stay installed.

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=5
FS_LIST=(btrfs xfs ext4 tmpfs)
QUICK_DIR=Documentation/admin-guide
declare -A BACKEND=([btrfs]=btrfs [xfs]=reflink [ext4]=copy [tmpfs]=copy)
METHODS=(volmgr cp-a cp-a-sync cp-reflink tar rsync)
# shellcheck disable=SC2016 # backquotes are Markdown
declare -A LABEL=(
	[volmgr]='`volmgr snapshot cache:src VOL`'
	[cp-a]='`cp -a`'
	[cp-a-sync]='`cp -a`, then `sync -f` (on disk, as volmgr leaves it)'
	[cp-reflink]='`cp -a --reflink=always`'
	[tar]='`tar -cf - \| tar -xf -`' # \| : a | inside a table cell
	[rsync]='`rsync -a`'
)
declare -A MED        # fs/method/warm|cold -> median seconds
declare -A DURABLE    # fs -> median seconds volmgrd spent making a clone durable
declare -A FIO_READ FIO_WRITE BOUND
declare -A FS_DESC

args=()
while (($#)); do
	case $1 in
	--fs)
		[[ -n ${2:-} ]] || die "--fs needs a list"
		IFS=, read -r -a FS_LIST <<<"$2"
		for f in "${FS_LIST[@]}"; do
			[[ -n ${BACKEND[$f]:-} ]] || die "--fs: unknown file system $f"
		done
		shift 2
		;;
	*) args+=("$1"); shift ;;
	esac
done
parse_args "${args[@]}"
$QUICK && RUNS=1

bench_start linux-source-6.1 fio rsync jq xfsprogs btrfs-progs
[[ -r $TARBALL ]] || die "$TARBALL is missing (apt-get install linux-source-6.1)"

# ------------------------------------------------------------- the tree

extract_tree() { # DIR
	if $QUICK; then
		tar -xJf "$TARBALL" -C "$SCRATCH" --occurrence=1 "$TOP/$QUICK_DIR"
		mv "$SCRATCH/$TOP/$QUICK_DIR" "$1"
		rm -rf "${SCRATCH:?}/$TOP"
	else
		tar -xJf "$TARBALL" -C "$SCRATCH"
		mv "$SCRATCH/$TOP" "$1"
	fi
}

count_entries() { find "$1" -mindepth 1 ! -type d | wc -l; }

# ------------------------------------------------------ file systems

make_fs() { # FS SIZE
	local fs=$1 size=$2
	MNT=$SCRATCH/mnt-$fs
	mkdir "$MNT"
	if [[ $fs == tmpfs ]]; then
		mount -t tmpfs -o "size=$size" "volmgr-bench" "$MNT"
		IMG='' LOOP_DEV=''
	else
		IMG=$SCRATCH/$fs.img
		truncate -s "$size" "$IMG"
		LOOP_DEV=$(losetup --find --show "$IMG")
		case $fs in
		btrfs) mkfs.btrfs -q -f "$LOOP_DEV" >/dev/null ;;
		xfs) mkfs.xfs -q -f -m reflink=1 "$LOOP_DEV" ;;
		ext4) mkfs.ext4 -q -F "$LOOP_DEV" ;;
		esac
		mount "$LOOP_DEV" "$MNT"
	fi
	mkdir "$MNT/pool" "$MNT/out"
	POOL=$MNT/pool
	log "$fs ($size) mounted at $MNT"
}

stop_daemon() {
	[[ -n $DAEMON_PID ]] || return 0
	kill -TERM "$DAEMON_PID" 2>/dev/null
	wait "$DAEMON_PID" 2>/dev/null || true
	DAEMON_PID=''
}

teardown_fs() {
	stop_daemon
	umount "$MNT"
	if [[ -n $LOOP_DEV ]]; then
		losetup --detach "$LOOP_DEV"
		rm -f "$IMG"
	fi
	rmdir "$MNT"
	MNT='' LOOP_DEV='' IMG=''
}

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# ---------------------------------------------------------------- methods

create_volmgr() { "$VOLMGR" --socket "$CTL" snapshot cache:src "$1" >/dev/null; }
destroy_volmgr() { "$VOLMGR" --socket "$CTL" rm "$1" >/dev/null; }
path_volmgr() { echo "$POOL/volumes/$1"; }
create_cp-a() { cp -a "$SRC" "$1"; }
# volmgr makes a copy durable before its record commits (syncfs): the
# same for cp, for a like-for-like time.
create_cp-a-sync() { cp -a "$SRC" "$1" && sync -f "$1"; }
create_cp-reflink() { cp -a --reflink=always "$SRC" "$1"; }
create_tar() { mkdir "$1" && tar -C "$SRC" -cf - . | tar -C "$1" -xf -; }
create_rsync() { rsync -a "$SRC/" "$1/"; }
destroy_plain() { rm -rf --one-file-system "$1"; }

dest_for() { # METHOD RUN
	if [[ $1 == volmgr ]]; then echo "vol-$2"; else echo "$MNT/out/$1-$2"; fi
}

applies() { # FS METHOD
	[[ $2 != cp-reflink || $1 == btrfs || $1 == xfs ]]
}

# One timed creation, then the untimed removal (and, on btrfs, the
# cleaner's work done now rather than during the next run).
one_run() { # FS METHOD DEST COLD -> LAST_S
	local fs=$1 m=$2 dest=$3 t0 t1
	[[ $4 == cold ]] && drop_caches
	t0=$EPOCHREALTIME
	"create_$m" "$dest" >>"$SCRATCH/runs.log" 2>&1 || {
		tail -n 20 "$SCRATCH/runs.log" >&2
		die "$m on $fs failed"
	}
	t1=$EPOCHREALTIME
	LAST_S=$(elapsed_ms "$t0" "$t1" | awk '{printf "%.3f", $1 / 1000}')
	if [[ $m == volmgr ]]; then destroy_volmgr "$dest"; else destroy_plain "$dest"; fi
	if [[ $fs == btrfs ]]; then
		btrfs filesystem sync "$MNT" >/dev/null
		btrfs subvolume sync "$MNT" >/dev/null
	fi
	sync -f "$MNT"
}

# The untimed first run checks the result: as many entries as the source.
check_once() { # FS METHOD
	local fs=$1 m=$2 dest path n
	dest=$(dest_for "$m" check)
	"create_$m" "$dest" >>"$SCRATCH/runs.log" 2>&1 || die "$m on $fs failed: $(tail -n 5 "$SCRATCH/runs.log")"
	path=$dest
	[[ $m != volmgr ]] || path=$(path_volmgr "$dest")
	n=$(count_entries "$path")
	[[ $n == "$NFILES" ]] || die "$m on $fs: $n entries, the source has $NFILES"
	if [[ $m == volmgr ]]; then destroy_volmgr "$dest"; else destroy_plain "$dest"; fi
	sync -f "$MNT"
}

fio_bound() { # FS
	local fs=$1 size direct=1 r w
	size=$($QUICK && echo 256M || echo 2G)
	[[ $fs != tmpfs ]] || direct=0 # tmpfs has no O_DIRECT: it is memory
	fio --name=w --filename="$MNT/fio.dat" --rw=write --bs=1M --size="$size" \
		--direct=$direct --end_fsync=1 --output-format=json >"$SCRATCH/fio-w-$fs.json"
	drop_caches
	fio --name=r --filename="$MNT/fio.dat" --rw=read --bs=1M --size="$size" \
		--direct=$direct --output-format=json >"$SCRATCH/fio-r-$fs.json"
	rm -f "$MNT/fio.dat"
	w=$(jq '.jobs[0].write.bw_bytes' "$SCRATCH/fio-w-$fs.json")
	r=$(jq '.jobs[0].read.bw_bytes' "$SCRATCH/fio-r-$fs.json")
	FIO_WRITE[$fs]=$w
	FIO_READ[$fs]=$r
	BOUND[$fs]=$(awk -v b="$BYTES" -v r="$r" -v w="$w" 'BEGIN { printf "%.3f", b / r + b / w }')
	log "$fs: fio read $((r / 1000000)) MB/s, write $((w / 1000000)) MB/s, bound ${BOUND[$fs]} s"
}

bench_fs() { # FS
	local fs=$1 size m cond i times dest
	size=$($QUICK && echo 1G || echo 8G)
	make_fs "$fs" "$size"
	FS_DESC[$fs]="$fs ($(findmnt -n -o OPTIONS "$MNT"))${LOOP_DEV:+ on $LOOP_DEV, a sparse $size image}"
	SRC=$MNT/src
	log "$fs: copying the tree in"
	cp -a --reflink=never "$TREE" "$SRC"
	CTL=$SCRATCH/control-$fs.sock
: >"$SCRATCH/empty.conf" # no host configuration leaks in
	start_daemon --config "$SCRATCH/empty.conf"
	local st
	st=$("$VOLMGR" --socket "$CTL" status --json)
	[[ $(jq -r .backend <<<"$st") == "${BACKEND[$fs]}" ]] ||
		die "$fs: volmgrd chose $(jq -r .backend <<<"$st"), expected ${BACKEND[$fs]}"
	FS_DESC[$fs]+="; volmgr backend $(jq -r .backend <<<"$st"), copy io $(jq -r .copy_io <<<"$st") ($(jq -r .copy_io_reason <<<"$st"))"
	"$VOLMGR" --socket "$CTL" cache import src "$SRC" >/dev/null
	local log_from
	log_from=$(($(wc -l <"$SCRATCH/volmgrd.log") + 1))
	for m in "${METHODS[@]}"; do
		applies "$fs" "$m" || continue
		check_once "$fs" "$m"
		for cond in warm cold; do
			times=''
			for ((i = 1; i <= RUNS; i++)); do
				dest=$(dest_for "$m" "$cond-$i")
				one_run "$fs" "$m" "$dest" "$cond"
				times+="$LAST_S "
			done
			MED[$fs/$m/$cond]=$(stats "$times" | cut -d' ' -f1)
			log "$fs $m $cond: median ${MED[$fs/$m/$cond]} s (runs: $times)"
		done
	done
	fio_bound "$fs"
	grep -h "copy: " "$SCRATCH/volmgrd.log" | tail -n 1 >>"$SCRATCH/copy-lines.log" || true
	# The syncfs before each clone's record (part of the volmgr times
	# above), from volmgrd's copy lines of this file system's runs.
	DURABLE[$fs]=$(tail -n "+$log_from" "$SCRATCH/volmgrd.log" |
		sed -n 's/.*copy: clone into volume vol-.*durable in \([0-9.]*\) s.*/\1/p' |
		sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }')
	teardown_fs
}

# --------------------------------------------------------------- report

ratio() { # A B -> A/B, or "-"
	[[ -n $1 && -n $2 ]] || { echo -; return; }
	awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'
}

goal() { # TEXT CONDITION(awk expr over a, b) A B
	local text=$1 verdict
	if [[ -z $3 || -z $4 ]]; then
		verdict="n/a (not measured)"
	else
		verdict=$(awk -v a="$3" -v b="$4" "BEGIN { print ($2) ? \"PASS\" : \"MISS\" }")
	fi
	echo "- $verdict: $text ($3 s vs $4 s)"
}

machine() {
	local model mem disk
	model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
	disk=$(findmnt -n -o SOURCE,FSTYPE -T "$SCRATCH" | awk '{ print $1 " (" $2 ")" }')
	local dev pk
	dev=$(findmnt -n -o SOURCE -T "$SCRATCH")
	# The whole disk under a partition, or the device itself.
	pk=$(lsblk -n -d -o PKNAME "$dev" 2>/dev/null | head -n 1)
	[[ -n $pk ]] || pk=$(lsblk -n -d -o NAME "$dev" 2>/dev/null | head -n 1)
	echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "- CPU: $model, $(nproc) cores; RAM $mem; kernel $(uname -r)"
	echo "- Disk: images on $disk${pk:+, /dev/$pk: $(lsblk -n -d -o SIZE,ROTA,MODEL "/dev/$pk" 2>/dev/null | awk '{ printf "%s, %s", $1, $2 == 1 ? "rotational" : "not rotational"; $1 = $2 = ""; if ($0 ~ /[^ ]/) printf ",%s", $0 }')}"
	echo "- Load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- Tools: $("$VOLMGR" --version), $(cp --version | head -n 1), $(tar --version | head -n 1), $(rsync --version | awk 'NR == 1 { print $1, $3 }'), $(fio --version)"
}

report() {
	local fs m cond
	echo "# volmgr backends against cp, tar and rsync"
	echo
	echo "Tree: $TREE_DESC. Runs per method and cache state: $RUNS (median)."
	$QUICK && echo "**--quick: a smoke test on a small tree; these numbers mean nothing.**"
	echo
	machine
	for fs in "${FS_LIST[@]}"; do
		echo
		echo "## $fs"
		echo
		echo "${FS_DESC[$fs]}"
		echo
		echo "| method | warm (s) | warm / cp -a | cold (s) | cold / cp -a |"
		echo "|---|---:|---:|---:|---:|"
		for m in "${METHODS[@]}"; do
			applies "$fs" "$m" || continue
			echo "| ${LABEL[$m]} | ${MED[$fs/$m/warm]} | $(ratio "${MED[$fs/$m/warm]}" "${MED[$fs/cp-a/warm]}") |" \
				"${MED[$fs/$m/cold]} | $(ratio "${MED[$fs/$m/cold]}" "${MED[$fs/cp-a/cold]}") |"
		done
		echo
		echo "fio, one $($QUICK && echo 256 MiB || echo 2 GiB) file, 1 MiB blocks$([[ $fs == tmpfs ]] || echo ', direct I/O'):" \
			"read $((FIO_READ[$fs] / 1000000)) MB/s, write $((FIO_WRITE[$fs] / 1000000)) MB/s;" \
			"bound for the tree's $((BYTES / 1000000)) MB: ${BOUND[$fs]} s" \
			"(volmgr cold / bound: $(ratio "${MED[$fs/volmgr/cold]}" "${BOUND[$fs]}"))"
		if [[ -n ${DURABLE[$fs]:-} ]]; then
			echo
			echo "Making a clone durable before its record (syncfs, included in the volmgr times):" \
				"median ${DURABLE[$fs]} s, $(ratio "${DURABLE[$fs]}" "${MED[$fs/volmgr/warm]}") of the warm median."
		fi
	done
	echo
	echo "## Goals (issue 7)"
	echo
	goal "reflink backend (XFS) at least 2x faster than cp -a --reflink=always, warm" \
		"a * 2 <= b" "${MED[xfs/volmgr/warm]:-}" "${MED[xfs/cp-reflink/warm]:-}"
	goal "copy backend at least 2x faster than cp -a on ext4, warm" \
		"a * 2 <= b" "${MED[ext4/volmgr/warm]:-}" "${MED[ext4/cp-a/warm]:-}"
	goal "copy backend at least 2x faster than cp -a on tmpfs, warm" \
		"a * 2 <= b" "${MED[tmpfs/volmgr/warm]:-}" "${MED[tmpfs/cp-a/warm]:-}"
	goal "copy backend within 2x of the fio bound on ext4, cold" \
		"a <= 2 * b" "${MED[ext4/volmgr/cold]:-}" "${BOUND[ext4]:-}"
	goal "copy backend within 2x of the fio bound on tmpfs, cold" \
		"a <= 2 * b" "${MED[tmpfs/volmgr/cold]:-}" "${BOUND[tmpfs]:-}"
	if [[ -s $SCRATCH/copy-lines.log ]]; then
		echo
		echo "volmgrd's summary of its last copy per file system:"
		echo
		sed 's/^/    /' "$SCRATCH/copy-lines.log"
	fi
}

# ------------------------------------------------------------------ main

TREE=$SCRATCH/tree
log "extracting $($QUICK && echo "$TOP/$QUICK_DIR" || echo "$TOP") from $TARBALL"
extract_tree "$TREE"
NFILES=$(count_entries "$TREE")
BYTES=$(du -sb "$TREE" | cut -f1)
TREE_DESC="$($QUICK && echo "$TOP/$QUICK_DIR" || echo "all of $TOP"): $NFILES files and symlinks, $((BYTES / 1000000)) MB"
log "tree: $TREE_DESC"
for fs in "${FS_LIST[@]}"; do
	bench_fs "$fs"
done
emit_report report
