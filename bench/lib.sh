# bench/lib.sh — shared by the benchmark scripts in bench/: sourced, not run.
# shellcheck shell=bash disable=SC2034 # variables set here are used by the scripts
#
# The script that sources it sets RUNS (its default) before parse_args and
# has a "# Usage:" comment block ending with the "#   --out" line (usage()
# prints it).  What the cleanup removes is recorded in SCRATCH, IMG,
# LOOP_DEV, MNT and DAEMON_PID as it is made; the cleanup acts on exactly
# those, never on a name pattern.

set -Eeuo pipefail
shopt -s inherit_errexit
export LC_ALL=C # a '.' in $EPOCHREALTIME and in printf's numbers

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VOLMGRD=${VOLMGRD:-$BENCH_DIR/../build/volmgr/daemon/volmgrd}
VOLMGR=${VOLMGR:-$BENCH_DIR/../build/volmgr/cli/volmgr}
# (Overridable only to try a script's full mode on a small stand-in.)
TARBALL=${BENCH_TARBALL:-/usr/src/linux-source-6.1.tar.xz}
TOP=linux-source-6.1 # the tarball's top-level directory

QUICK=false
OUT=
# State the cleanup needs; empty until the thing exists.
SCRATCH='' LOOP_DEV='' IMG='' MNT='' DAEMON_PID=''

# ------------------------------------------------------------------ basics

# bench_stop_child PID TENTHS: SIGTERM to a child of this shell, SIGKILL
# after TENTHS tenths of a second, and reap it (our own child: its pid is
# not reused before the wait).
bench_stop_child() {
	local pid=$1 tenths=$2 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid"
	for ((i = 0; i < tenths; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
	wait "$pid" 2>/dev/null
	return 0
}


log() { printf '[%4ss] %s\n' "$SECONDS" "$*" >&2; }

die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

usage() {
	sed -n '/^# Usage:/,/^#   --out/s/^# \{0,1\}//p' "$0"
}

parse_args() {
	while (($#)); do
		case $1 in
		--runs)
			[[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--runs needs a positive number"
			RUNS=$2
			shift 2
			;;
		--quick) QUICK=true; shift ;;
		--out)
			[[ -n ${2:-} ]] || die "--out needs a file name"
			OUT=$(realpath -m "$2")
			shift 2
			;;
		-h | --help) usage; exit 0 ;;
		*) usage >&2; exit 2 ;;
		esac
	done
}

# Install only what is missing: apt-get update is slow and needs the mirror.
install_packages() { # PACKAGE...
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	((${#missing[@]})) || return 0
	log "installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null
}

# Root, the volmgr binaries, the packages, the load average at start, the
# traps and the scratch directory: what every benchmark starts with.
bench_start() { # PACKAGE...
	[[ $(id -u) == 0 ]] || die "run as root (loop devices, mount, btrfs)"
	[[ -x $VOLMGRD && -x $VOLMGR ]] ||
		die "volmgr binaries not found at $VOLMGRD and $VOLMGR (build first: ninja -C build)"
	VOLMGRD=$(realpath "$VOLMGRD")
	VOLMGR=$(realpath "$VOLMGR")
	install_packages "$@"
	LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	SCRATCH=$(mktemp -d "${TMPDIR:-/var/tmp}/volmgr-bench.XXXXXX")
	log "scratch directory $SCRATCH"
}

# ----------------------------------------------------------------- cleanup

# Everything here acts on what the script recorded, never on a name pattern.
cleanup() {
	local status=$? i
	trap - ERR
	set +e
	if [[ $status != 0 && -n $SCRATCH && -s $SCRATCH/volmgrd.log ]]; then
		printf '\n--- last 50 lines of the volmgrd log ---\n' >&2
		tail -n 50 "$SCRATCH/volmgrd.log" >&2
	fi
	[[ -z $DAEMON_PID ]] || bench_stop_child "$DAEMON_PID" 50
	if [[ -n $MNT ]] && mountpoint -q "$MNT"; then
		for ((i = 0; i < 10; i++)); do
			umount "$MNT" 2>/dev/null && break
			sleep 0.5
		done
		mountpoint -q "$MNT" && printf 'WARN: could not unmount %s\n' "$MNT" >&2
	fi
	if [[ -n $LOOP_DEV ]]; then
		# Detach it only if it is still the device backed by our image.
		local back
		back=$(losetup --noheadings --output BACK-FILE "$LOOP_DEV" 2>/dev/null)
		back=${back%% (deleted)}
		if [[ -n $back && $(realpath -m "$back") == "$(realpath -m "$IMG")" ]]; then
			losetup --detach "$LOOP_DEV"
		fi
	fi
	if [[ -n $SCRATCH && -d $SCRATCH ]]; then
		if [[ -n $MNT ]] && mountpoint -q "$MNT"; then
			printf 'WARN: %s still mounted, keeping %s\n' "$MNT" "$SCRATCH" >&2
		else
			rm -rf --one-file-system "$SCRATCH"
		fi
	fi
	exit "$status"
}

# --------------------------------------------------------------- the pool

# A sparse image of SIZE on the root fs, a loop device, btrfs on it, mounted
# in the scratch directory.  $POOL ($MNT/pool) is volmgr's pool; $WORK
# ($MNT/work) holds everything else the benchmark makes, so that every
# method reads and writes the same file system.
make_btrfs() { # SIZE
	local size=$1
	IMG=$SCRATCH/pool.img
	MNT=$SCRATCH/mnt
	truncate -s "$size" "$IMG"
	LOOP_DEV=$(losetup --find --show "$IMG")
	mkfs.btrfs -q -f "$LOOP_DEV" >/dev/null
	mkdir "$MNT"
	mount "$LOOP_DEV" "$MNT"
	mkdir "$MNT/pool" "$MNT/work" "$MNT/work/out"
	POOL=$MNT/pool
	WORK=$MNT/work
	log "btrfs ($size) on $LOOP_DEV, mounted at $MNT"
}

start_daemon() { # [VOLMGRD-ARGUMENT...]
	CTL=$SCRATCH/control.sock
	# A private plugin socket: no engine is involved, and nothing in
	# /run/docker/plugins is touched.
	"$VOLMGRD" --pool "$POOL" --plugin-socket "$SCRATCH/plugin.sock" \
		--control-socket "$CTL" "$@" >"$SCRATCH/volmgrd.log" 2>&1 &
	DAEMON_PID=$!
	local i
	for ((i = 0; i < 100; i++)); do
		kill -0 "$DAEMON_PID" 2>/dev/null || die "volmgrd exited during start-up"
		"$VOLMGR" --socket "$CTL" ls >/dev/null 2>&1 && {
			log "volmgrd ready (pid $DAEMON_PID)"
			return 0
		}
		sleep 0.1
	done
	die "volmgrd not ready after 10 s"
}

# ---------------------------------------------------------- times, report

# Milliseconds between two $EPOCHREALTIME values ("s.us"), 3 decimals.
elapsed_ms() {
	local us=$((${2/./} - ${1/./}))
	printf '%d.%03d\n' $((us / 1000)) $((us % 1000))
}

ms_to_s() { awk -v v="$1" 'BEGIN { printf "%.1f", v / 1000 }'; }

stats() { # "VALUE VALUE..." -> "median min max"
	tr -s ' ' '\n' <<<"${1% }" | sort -g | awk '{ v[NR] = $1 }
		END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		      printf "%.3f %.3f %.3f\n", m, v[1], v[NR] }'
}

# volmgrd logs how long it spent on each control request; pick those that
# created volumes whose names match the extended regular expression RE.
daemon_times() { # RE -> "MS MS..."
	grep -E '"op":"volume\.create".*"name":"'"$1"'"' "$SCRATCH/volmgrd.log" |
		sed -nE 's/.*-> ok \(([0-9.]+) ms\)$/\1/p' | tr '\n' ' '
}

machine_info() { # TOOLS (besides volmgr and btrfs-progs)
	local model mem fs
	model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
	fs=$(findmnt -n -o FSTYPE,SOURCE -T "$IMG" | awk '{ print $1 " (" $2 ")" }')
	echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "- Machine: $(nproc) CPUs ($model), $mem RAM, kernel $(uname -r);" \
		"load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- Pool: btrfs ($(findmnt -n -o OPTIONS "$MNT")) on $LOOP_DEV" \
		"(direct I/O $(losetup -n -O DIO "$LOOP_DEV" | tr -d ' ')), backed by a sparse" \
		"$(du -h --apparent-size "$IMG" | cut -f1) loop file on $fs"
	echo "- Tools: $("$VOLMGR" --version), $1, $(btrfs --version)"
}

# Print the report (REPORT-FUNCTION), and also write it to $OUT if given.
emit_report() { # REPORT-FUNCTION
	if [[ -n $OUT ]]; then
		"$1" | tee "$OUT"
	else
		"$1"
	fi
}
