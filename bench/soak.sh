#!/usr/bin/env bash
# bench/soak.sh — do volmgrd's file descriptors and memory stay flat under
# a long mixed load?
#
# It runs tests/lib/soak.py against its own volmgrd on its own loop-backed
# btrfs pool for 10 minutes: 4 workers, each looping over volumes through
# both sockets (create empty and from a cache, inspect, list,
# Mount/Path/Unmount/Get/List, remove), a copy of a passed directory,
# refused requests (exists, not found, bad name, malformed JSON, unknown
# endpoint, a 70 kB body), and now and then a cache import, a cache
# removal and the metrics; a new connection per request.  Every reply is
# checked.  It samples volmgrd's open fds (/proc/PID/fd), RSS (VmRSS) and
# threads every second and reports them at the start, after a warm-up,
# at their maximum and at the end (after the load, once every connection
# has closed), with a per-minute table.
#
# Usage: sudo bench/soak.sh [--seconds N] [--quick] [--out FILE]
#   --seconds N  length of the load (default 600)
#   --quick      60 s
#   --out FILE   where to write the report (default bench/soak.results.md
#                next to this script; "-" for none)
#
# The volmgr binaries default to build/volmgr/{daemon/volmgrd,cli/volmgr}; set
# VOLMGRD / VOLMGR to use others.  Everything it makes (a scratch
# directory, a sparse image, one loop device, one mount, one volmgrd) is
# removed at exit by its exact path, device or pid.

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECONDS_LOAD=600
OUT=$BENCH_DIR/soak.results.md
while (($#)); do
	case $1 in
	--seconds)
		[[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--seconds needs a positive number"
		SECONDS_LOAD=$2
		shift 2
		;;
	--quick) SECONDS_LOAD=60; shift ;;
	--out)
		[[ -n ${2:-} ]] || die "--out needs a file name"
		[[ $2 == - ]] && OUT= || OUT=$(realpath -m "$2")
		shift 2
		;;
	-h | --help) sed -n '/^# Usage:/,/^#                next/s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
done

bench_start python3 btrfs-progs jq
make_btrfs 4G
: >"$SCRATCH/empty.conf" # the defaults, whatever /etc/volmgr holds
start_daemon --config "$SCRATCH/empty.conf"
SRC=$WORK/src
mkdir -p "$SRC/dir"
for i in $(seq 1 20); do head -c $((i * 1000)) /dev/urandom >"$SRC/dir/f$i"; done
ln -s dir/f1 "$SRC/link"
echo hello >"$SRC/README"
"$VOLMGR" --socket "$CTL" cache import soak "$SRC" >/dev/null

log "soak: $SECONDS_LOAD s of mixed load on volmgrd (pid $DAEMON_PID)"
python3 "$BENCH_DIR/../tests/lib/soak.py" --pid "$DAEMON_PID" --plugin "$SCRATCH/plugin.sock" \
	--control "$CTL" --src "$SRC" --seconds "$SECONDS_LOAD" --workers 4 \
	--warmup 30 >"$SCRATCH/soak.json" ||
	die "the load failed: $(jq -r '.failure[]' "$SCRATCH/soak.json" 2>/dev/null)"
left=$("$VOLMGR" --socket "$CTL" ls -q | grep -c '^soak-' || true)
[[ $left == 0 ]] || die "$left soak volumes left behind"
J=$SCRATCH/soak.json
j() { jq -r "$1" "$J"; }

report() {
	echo "## volmgrd under a $(j .seconds) s soak: file descriptors and memory"
	echo
	machine_info "python $(python3 -c 'import platform; print(platform.python_version())')"
	echo "- Load: tests/lib/soak.py, $(j .workers) workers, a new connection per request;" \
		"$(j .requests) requests in $(j .rounds) rounds ($(j .errors_expected) of them refused" \
		"as they should be: exists, not found, bad name, malformed JSON, unknown endpoint," \
		"70 kB body), every reply checked; about" \
		"$(jq -r '(.requests / .seconds) | floor' "$J") requests/s"
	echo "- Sampled every second: /proc/PID/fd entries, VmRSS, threads of volmgrd." \
		"\"end\" is after the load, once every connection has closed."
	echo
	echo "| | fds | RSS (KiB) | threads |"
	echo "|---|---:|---:|---:|"
	echo "| start | $(j .start.fds) | $(j .start.rss_kib) | $(j .start.threads) |"
	echo "| after the warm-up ($(j .after_warmup.t) s) | $(j .after_warmup.fds) | $(j .after_warmup.rss_kib) | $(j .after_warmup.threads) |"
	echo "| max during the load | $(j .max.fds) | $(j .max.rss_kib) | $(j .max.threads) |"
	echo "| end | $(j .end.fds) | $(j .end.rss_kib) | $(j .end.threads) |"
	echo
	echo "Per minute (the last sample of each minute):"
	echo
	echo "| minute | requests so far | fds | RSS (KiB) | threads |"
	echo "|---:|---:|---:|---:|---:|"
	jq -r '.samples | group_by((.t / 60) | floor)[] | last |
		"| \((.t / 60) | floor + 1) | \(.requests) | \(.fds) | \(.rss_kib) | \(.threads) |"' "$J"
	echo
	echo "RSS from the warm-up to the end: $(( $(j .end.rss_kib) - $(j .after_warmup.rss_kib) )) KiB;" \
		"fds at the end minus at the start: $(( $(j .end.fds) - $(j .start.fds) ))."
}
emit_report report
