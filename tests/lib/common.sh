# shellcheck shell=bash
# Shared helpers for volmgr's shell tests.  Source this file, then call
# `vt_init NAME` before anything else.
#
# Conventions (liburing/automake style): exit 0 = pass, 77 = skipped,
# anything else = failure.  With CI=true nothing may skip: vt_skip fails.
#
# Every resource a test creates (loop device, mount, daemon, container,
# image, volume) is registered with vt_on_exit right after it is created and
# removed by its exact id at exit, in reverse order.  Nothing here ever acts
# on a process, mount or device it did not create itself.
#
# Cleanups are kept in a file rather than a shell array so that helpers run
# inside a command substitution, e.g. pool=$(vt_make_pool btrfs), can
# register theirs too.

VOLMGRD=${VOLMGRD:-./build/volmgr/daemon/volmgrd}
VOLMGR=${VOLMGR:-./build/volmgr/cli/volmgr}

# ---------------------------------------------------------------- reporting

vt_log() { printf '# %s\n' "$*"; }

# A step of the test: say what is about to be checked (and when, in seconds
# since the start, to see where a slow test spends its time).
vt_step() { printf '\n== [%ss] %s\n' "$SECONDS" "$*"; }

vt_fail() {
	printf 'FAIL: %s: %s\n' "${VT_NAME:-test}" "$*" >&2
	exit 1
}

vt_skip() {
	if [[ ${CI:-} == true ]]; then
		printf 'FAIL: %s: would skip, but nothing may skip on CI: %s\n' \
			"${VT_NAME:-test}" "$*" >&2
		exit 1
	fi
	printf 'SKIP: %s: %s\n' "${VT_NAME:-test}" "$*" >&2
	# A file, not a variable: vt_skip may run in a $(...) subshell.
	[[ -z ${VT_TMP:-} ]] || : >"$VT_TMP/.skipped"
	exit 77
}

vt_assert_eq() {
	local expected=$1 actual=$2 what=${3:-value}
	[[ $expected == "$actual" ]] ||
		vt_fail "$what: expected '$expected', got '$actual'"
	vt_log "ok: $what = '$actual'"
}

# vt_assert_status EXPECTED CMD... — run CMD and check its exit status.
vt_assert_status() {
	local expected=$1 status=0
	shift
	"$@" || status=$?
	[[ $status == "$expected" ]] ||
		vt_fail "'$*' exited $status, expected $expected"
	vt_log "ok: '$*' exited $status"
}

# vt_assert_contains HAYSTACK NEEDLE [WHAT]
vt_assert_contains() {
	local haystack=$1 needle=$2 what=${3:-output}
	[[ $haystack == *"$needle"* ]] ||
		vt_fail "$what does not contain '$needle': $haystack"
	vt_log "ok: $what contains '$needle'"
}

# ------------------------------------------------------------------ waiting
#
# A test that waits on the kernel (btrfs's cleaner, writeback), on
# volmgrd's own threads (the quota sweep, gc, the log) or on another
# process waits for the event itself, never for a time: it polls the
# condition and fails, naming what did not happen, only after a bound
# generous for a loaded 2-core machine.  The happy path waits only as long
# as the event takes: the first polls come every 50 ms.

# The bound, in seconds (VT_WAIT_TIMEOUT in the environment changes it).
VT_WAIT_TIMEOUT=${VT_WAIT_TIMEOUT:-120}

# vt_wait_until [-t SECONDS] [-p PID] WHAT CMD... — run CMD until it
# succeeds.  Fail saying WHAT did not happen after SECONDS (default
# $VT_WAIT_TIMEOUT), or as soon as PID, the process that was to make it
# happen, has exited without it.
vt_wait_until() {
	local timeout=$VT_WAIT_TIMEOUT pid='' what n=0 deadline
	while [[ ${1:-} == -[tp] ]]; do
		[[ $1 == -t ]] && timeout=$2 || pid=$2
		shift 2
	done
	what=${1:?vt_wait_until WHAT CMD...}
	shift
	deadline=$((SECONDS + timeout))
	until "$@"; do
		if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
			"$@" && return 0 # it happened just before the process ended
			vt_fail "$what: not so, and the process that was to make it so (pid $pid) has exited"
		fi
		((SECONDS < deadline)) || vt_fail "$what: not so after $timeout s"
		n=$((n + 1))
		if ((n < 20)); then sleep 0.05; else sleep 0.1; fi
	done
}

vt_require_root() {
	[[ $(id -u) == 0 ]] || vt_skip "needs root"
}

vt_require_cmd() {
	local cmd
	for cmd; do
		command -v "$cmd" >/dev/null 2>&1 || vt_skip "needs the command '$cmd'"
	done
}

# --------------------------------------------------------- init and cleanup

vt_init() {
	VT_NAME=${1:?vt_init NAME}
	set -Eeuo pipefail # -E: the ERR trap below also fires in functions
	shopt -s inherit_errexit # let set -e reach into $(...)
	VT_MAIN_PID=$BASHPID
	SECONDS=0
	VT_ID=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
	VT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/vt-$VT_NAME.XXXXXX")
	: >"$VT_TMP/.cleanups"
	: >"$VT_TMP/.logs"
	VOLMGRD=$(realpath -m "$VOLMGRD")
	VOLMGR=$(realpath -m "$VOLMGR")
	export VT_ID VT_TMP VOLMGRD VOLMGR
	trap vt__on_exit EXIT
	# Turn signals into an exit so that the cleanups still run.
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'vt__on_err $LINENO "$BASH_COMMAND" $?' ERR
	vt_log "$VT_NAME: id $VT_ID, scratch $VT_TMP"
}

# shellcheck disable=SC2016 # the backquotes are meant literally
vt__on_err() {
	[[ $3 == 77 && -e $VT_TMP/.skipped ]] && return # vt_skip said why
	printf '# error: line %s: `%s` exited %s\n' "$1" "$2" "$3" >&2
}

# vt_on_exit CMD... — run CMD at exit (last registered runs first).
vt_on_exit() {
	printf '%q ' "$@" >>"$VT_TMP/.cleanups"
	printf '\n' >>"$VT_TMP/.cleanups"
}

# vt_log_file PATH — print PATH's tail if the test fails.
vt_log_file() { printf '%s\n' "$1" >>"$VT_TMP/.logs"; }

vt__dump_logs() {
	local log
	while IFS= read -r log; do
		[[ -s $log ]] || continue
		printf '\n----- last 200 lines of %s -----\n' "$log" >&2
		tail -n 200 "$log" >&2
	done <"$VT_TMP/.logs"
}

vt__on_exit() {
	local status=$? i line failed=0
	# Subshells do not run EXIT traps in bash, but be sure anyway.
	[[ $BASHPID == "$VT_MAIN_PID" ]] || return "$status"
	# A signal now (say a timeout's SIGTERM to the whole process group)
	# must not cut the cleanups short.
	trap '' INT TERM
	trap - ERR
	# Every cleanup must get its turn: no errexit, no nounset (which would
	# end this handler).  Cleanups must not call vt_fail (it exits).
	set +eu
	# Only vt_skip may skip: a command that happens to exit 77 is a failure.
	if [[ $status == 77 && ! -e $VT_TMP/.skipped ]]; then
		status=1
	fi
	if [[ $status != 0 && $status != 77 ]]; then
		vt__dump_logs
	fi
	local -a cleanups=()
	mapfile -t cleanups <"$VT_TMP/.cleanups"
	for ((i = ${#cleanups[@]} - 1; i >= 0; i--)); do
		line=${cleanups[i]}
		[[ -n $line ]] || continue
		if ! eval "$line" </dev/null; then
			printf 'WARN: cleanup failed: %s\n' "$line" >&2
			failed=1
		fi
	done
	if [[ -n $(vt__mounted_under "$VT_TMP") ]]; then
		printf 'WARN: still mounted, keeping %s:\n' "$VT_TMP" >&2
		vt__mounted_under "$VT_TMP" >&2
		failed=1
	else
		rm -rf "$VT_TMP"
	fi
	# A test that leaks resources is broken even if its checks passed.
	if [[ $status == 0 && $failed == 1 ]]; then
		printf 'FAIL: %s: cleanup failed\n' "$VT_NAME" >&2
		status=1
	fi
	[[ $status == 0 ]] && printf '\nPASS: %s\n' "$VT_NAME"
	exit "$status"
}

# ------------------------------------------------------------ mount helpers

# Mount points at or below DIR, deepest (most recently mounted) first.
vt__mounted_under() {
	local dir=${1%/} mp
	awk '{ print $5 }' /proc/self/mountinfo | tac | while IFS= read -r mp; do
		mp=$(printf '%b' "${mp//\\/\\0}") # undo \040-style escapes
		[[ $mp == "$dir" || $mp == "$dir"/* ]] && printf '%s\n' "$mp"
	done
	return 0
}

# Whether DIR is a mount point, from the mount table (mountpoint(1)
# stats DIR, which fails on a file system that was shut down).
vt__is_mounted() {
	local mp
	while IFS= read -r mp; do
		[[ $mp == "${1%/}" ]] && return 0
	done < <(vt__mounted_under "$1")
	return 1
}

# Unmount exactly DIR (if mounted), retrying for up to 30 s while it is
# busy (a process that held it may still be exiting).
vt__umount() {
	local dir=$1 i
	for ((i = 0; i < 100; i++)); do
		vt__is_mounted "$dir" || return 0
		umount "$dir" 2>/dev/null && return 0
		sleep 0.3
	done
	# Still busy: detach it (only this mount) rather than leak it.
	printf 'WARN: %s busy, lazy unmount\n' "$dir" >&2
	umount -l "$dir"
}

# Unmount everything at or below DIR (an engine's private state directory).
vt__umount_under() {
	local mp
	vt__mounted_under "$1" | while IFS= read -r mp; do
		vt__umount "$mp" || return 1
	done
}

# ------------------------------------------------------------------- pools

# Detach DEV, but only if it is still the loop device backed by IMG.
vt__detach_loop() {
	local dev=$1 img=$2 back
	back=$(losetup --noheadings --output BACK-FILE "$dev" 2>/dev/null) || return 0
	back=${back%% (deleted)}
	if [[ $(realpath -m "$back") != "$(realpath -m "$img")" ]]; then
		printf 'WARN: %s now backs %s, not %s: left alone\n' "$dev" "$back" "$img" >&2
		return 0
	fi
	losetup --detach "$dev"
}

# vt_make_pool FSTYPE [SIZE [MKFS-OPTION...]] — a loop-backed file system
# of type btrfs, xfs (with reflink) or ext4, or a tmpfs of that size,
# mounted at $VT_TMP/pool-FSTYPE; echoes that path.  (E.g.
# `vt_make_pool btrfs 200M --mixed`: data and metadata share their space,
# so a full pool refuses new subvolumes too.)
vt_make_pool() {
	local fstype=$1 size=${2:-1G}
	local -a mkfs_opts=("${@:3}")
	local img=$VT_TMP/pool-$fstype.img dir=$VT_TMP/pool-$fstype dev
	[[ $fstype == @(btrfs|xfs|ext4|tmpfs) ]] || vt_fail "vt_make_pool: unknown file system '$fstype'"
	vt_require_root
	if [[ $fstype == tmpfs ]]; then
		mkdir "$dir"
		mount -t tmpfs -o "size=$size,mode=0755" "vt-$VT_ID" "$dir"
		vt_on_exit vt__umount "$dir"
		vt_log "pool: tmpfs of $size mounted at $dir" >&2
		printf '%s\n' "$dir"
		return 0
	fi
	vt_require_cmd losetup mountpoint "mkfs.$fstype"
	[[ -e /dev/loop-control ]] || vt_skip "no loop devices (/dev/loop-control)"
	truncate -s "$size" "$img"
	dev=$(losetup --find --show "$img") || vt_skip "losetup failed: no free loop device?"
	vt_on_exit vt__detach_loop "$dev" "$img"
	case $fstype in
	btrfs) mkfs.btrfs -q -f "${mkfs_opts[@]}" "$dev" >/dev/null ;;
	xfs) mkfs.xfs -q -f -m reflink=1 "${mkfs_opts[@]}" "$dev" ;;
	ext4) mkfs.ext4 -q -F "${mkfs_opts[@]}" "$dev" ;;
	esac
	mkdir "$dir"
	mount "$dev" "$dir"
	vt_on_exit vt__umount "$dir"
	vt_log "pool: $fstype on $dev mounted at $dir" >&2
	printf '%s\n' "$dir"
}

# ------------------------------------------------------------------ daemon

# vt_start_daemon POOLDIR — start volmgrd on POOLDIR with a plugin socket
# named after this test (so the docker driver name is $VT_DRIVER) and wait
# until its control socket answers.
vt_start_daemon() {
	VT_POOL=${1:?vt_start_daemon POOLDIR}
	VT_DRIVER=volmgr-$VT_ID
	VT_PLUGIN_SOCK=/run/docker/plugins/$VT_DRIVER.sock
	VT_CONTROL_SOCK=$VT_TMP/control.sock
	VT_JOB_SOCK=$VT_TMP/job.sock
	VOLMGR_SOCKET=$VT_CONTROL_SOCK
	export VT_POOL VT_DRIVER VT_PLUGIN_SOCK VT_CONTROL_SOCK VT_JOB_SOCK VOLMGR_SOCKET
	[[ -x $VOLMGRD ]] || vt_fail "volmgrd not found at $VOLMGRD (build first, or set VOLMGRD)"
	[[ -x $VOLMGR ]] || vt_fail "volmgr not found at $VOLMGR (build first, or set VOLMGR)"
	mkdir -p /run/docker/plugins
	vt_log_file "$VT_TMP/volmgrd.log"
	vt_on_exit vt__stop_daemon_at_exit
	vt__spawn_daemon
	vt__wait_daemon
}

vt__spawn_daemon() {
	printf -- '--- volmgrd started %(%T)T\n' -1 >>"$VT_TMP/volmgrd.log"
	# VT_DAEMON_CONFIG: a volmgr.conf for this test (an empty one by
	# default, so the host's /etc/volmgr/volmgr.conf never leaks in).
	# Kept for vt_restart_daemon, even when given as a command prefix.
	if [[ -z ${VT_CONFIG_FILE:-} ]]; then
		VT_CONFIG_FILE=${VT_DAEMON_CONFIG:-$VT_TMP/empty.conf}
		[[ -e $VT_CONFIG_FILE ]] || : >"$VT_CONFIG_FILE"
	fi
	# VT_DAEMON_PIDNS=1: volmgrd in a pid namespace of its own (and its
	# own /proc), where the test's processes are hidden from it, as a
	# process it may not look into is.  VT_DAEMON_PID is then unshare,
	# which waits for volmgrd and exits with its status, and
	# VT_DAEMON_SIGNAL_PID volmgrd itself (unshare ignores SIGTERM).
	local -a wrap=()
	[[ ${VT_DAEMON_PIDNS:-} != 1 ]] ||
		wrap=(unshare --pid --fork --mount-proc --propagation slave --)
	"${wrap[@]}" "$VOLMGRD" --pool "$VT_POOL" --plugin-socket "$VT_PLUGIN_SOCK" \
		--control-socket "$VT_CONTROL_SOCK" --job-socket "$VT_JOB_SOCK" \
		--config "$VT_CONFIG_FILE" ${VT_DAEMON_EXTRA:-} >>"$VT_TMP/volmgrd.log" 2>&1 &
	VT_DAEMON_PID=$!
	VT_DAEMON_SIGNAL_PID=$VT_DAEMON_PID
	if ((${#wrap[@]})); then
		vt_wait_until -p "$VT_DAEMON_PID" "volmgrd started in its pid namespace" vt__find_daemon_child
	fi
	export VT_DAEMON_PID VT_DAEMON_SIGNAL_PID
}

vt__find_daemon_child() {
	VT_DAEMON_SIGNAL_PID=$(pgrep -P "$VT_DAEMON_PID" -x volmgrd || true)
	[[ -n $VT_DAEMON_SIGNAL_PID ]]
}

vt__daemon_answers() {
	[[ -S $VT_PLUGIN_SOCK ]] && "$VOLMGR" --socket "$VT_CONTROL_SOCK" ls >/dev/null 2>&1
}

# Until volmgrd answers: start-up repairs first, which on a loaded machine
# (a btrfs commit behind other tests' I/O) can take seconds.
vt__wait_daemon() {
	vt_wait_until -p "$VT_DAEMON_PID" "volmgrd (pid $VT_DAEMON_PID) answers" vt__daemon_answers
	vt_log "volmgrd ready (pid $VT_DAEMON_PID, driver $VT_DRIVER)"
}

vt__daemon_alive() {
	[[ -n ${VT_DAEMON_PID:-} ]] && kill -0 "$VT_DAEMON_PID" 2>/dev/null
}

# SIGTERM, then SIGKILL after 60 s (120 s under a sanitizer); always reap.
# (volmgrd stops at once when idle; the bound is for a loaded machine,
# where finishing a request in flight may wait on a btrfs commit.)
# The pid is our own child, so it cannot have been reused before we wait
# for it.  volmgrd exits 0 on SIGTERM: anything else (a LeakSanitizer
# report at exit in the ASan build, a crash while stopping) is returned,
# which fails the test (a failed cleanup fails a passing test).
vt__stop_daemon() {
	local i status=0 wait_ds=600 f
	vt__daemon_alive || return 0
	[[ -n ${ASAN_OPTIONS:-}${UBSAN_OPTIONS:-} ]] && wait_ds=1200
	# A request held at a fault pause (VOLMGR_FAULT_PAUSE=NAME:$VT_TMP)
	# that a failed test never released would hold up the stop: release it.
	for f in "$VT_TMP"/*.paused; do
		[[ -e $f ]] && : >"${f%.paused}.resume"
	done
	kill -TERM "${VT_DAEMON_SIGNAL_PID:-$VT_DAEMON_PID}"
	for ((i = 0; i < wait_ds; i++)); do
		vt__daemon_alive || break
		if ((i < 20)); then sleep 0.05; else sleep 0.1; fi
	done
	if vt__daemon_alive; then
		printf 'WARN: volmgrd ignored SIGTERM for %s s, killing it\n' $((wait_ds / 10)) >&2
		kill -KILL "${VT_DAEMON_SIGNAL_PID:-$VT_DAEMON_PID}" "$VT_DAEMON_PID"
	fi
	wait "$VT_DAEMON_PID" 2>/dev/null || status=$?
	if [[ $status != 0 ]]; then
		printf 'volmgrd (pid %s) exited %s when stopped (see its log)\n' "$VT_DAEMON_PID" "$status" >&2
		tail -n 40 "$VT_TMP/volmgrd.log" >&2
		return 1
	fi
}

vt__stop_daemon_at_exit() {
	local r=0
	vt__stop_daemon || r=$?
	# Only the socket files named after this test.
	rm -f "$VT_PLUGIN_SOCK" "$VT_CONTROL_SOCK"
	return "$r"
}

# Stop the daemon (to start another on a new pool with vt_start_daemon).
vt_stop_daemon() {
	vt__stop_daemon_at_exit
}

# Crash the daemon: SIGKILL, reaped, sockets left behind as after a crash.
vt_kill_daemon() {
	vt__daemon_alive || vt_fail "vt_kill_daemon: volmgrd is not running"
	kill -KILL "${VT_DAEMON_SIGNAL_PID:-$VT_DAEMON_PID}"
	wait "$VT_DAEMON_PID" 2>/dev/null || true
	vt_log "volmgrd (pid $VT_DAEMON_PID) killed with SIGKILL"
}

# Start volmgrd again on the same pool and sockets (stopping it first if it
# still runs).  Stale socket files are left for the daemon to deal with.
vt_restart_daemon() {
	vt__stop_daemon
	vt__spawn_daemon
	vt__wait_daemon
}

# ----------------------------------------------------------- volmgr queries
# (No `grep -q` behind a pipe here: it exits at the first match, the
# writer gets SIGPIPE, and with pipefail the match reads as a failure.)

# Names of the volumes volmgr lists (accepts a JSON array or {"volumes":[]}).
vt_volmgr_names() {
	"$VOLMGR" ls --json | jq -r 'if type == "array" then .[] else .volumes[] end | .name'
}

# vt_volmgr_field VOLUME JQ_FILTER — one field of `volmgr inspect VOLUME`.
vt_volmgr_field() {
	"$VOLMGR" inspect "$1" | jq -r "$2"
}

vt_assert_listed() {
	grep -qxF "$1" <<<"$(vt_volmgr_names)" || vt_fail "volmgr ls does not list $1"
	vt_log "ok: volmgr ls lists $1"
}

vt_assert_in_use() {
	vt_assert_eq "$2" "$(vt_volmgr_field "$1" .in_use)" "in_use of $1"
}

# The volume's directory (on btrfs: its subvolume) is gone from the pool,
# and volmgr forgot it.
vt_assert_volume_gone() {
	local name=$1
	[[ ! -e $VT_POOL/volumes/$name ]] || vt_fail "$VT_POOL/volumes/$name still exists"
	if [[ $(stat -f -c %T "$VT_POOL") == btrfs ]] &&
		grep -qE "path (.*/)?volumes/$name(/|\$)" <<<"$(btrfs subvolume list "$VT_POOL")"; then
		vt_fail "btrfs subvolume list still shows volumes/$name"
	fi
	vt_assert_status 4 "$VOLMGR" inspect "$name"
	vt_log "ok: $name is gone from the pool and from volmgr"
}

# ------------------------------------------------------ crash consistency

# vt_check_pool_consistent — after volmgrd's start-up repair: nothing in
# staging/, no half-written record, every record with its data and every
# subvolume with its record, every listed volume inspectable, every cache
# read-only.
vt_check_pool_consistent() {
	local p=$VT_POOL kind f name backend
	# Off btrfs caches are plain directories that only volmgrd writes to.
	backend=$("$VOLMGR" status --json | jq -r .backend)
	[[ -z $(ls -A "$p/staging") ]] || vt_fail "staging not empty: $(ls -A "$p/staging")"
	for kind in volumes caches; do
		for f in "$p/.volmgr/$kind"/* "$p/.volmgr/$kind"/.[!.]*; do
			[[ -e $f ]] || continue
			name=${f##*/}
			[[ $name == *.json && $name != .* ]] || vt_fail "stray file in the records: $f"
			name=${name%.json}
			[[ -d $p/$kind/$name ]] || vt_fail "record without data: $kind/$name"
		done
		for f in "$p/$kind"/*; do
			[[ -e $f ]] || continue
			name=${f##*/}
			[[ -f $p/.volmgr/$kind/$name.json ]] || vt_fail "data without record: $kind/$name"
			if [[ $kind == caches && $backend == btrfs ]]; then
				[[ $(btrfs property get -ts "$f" ro) == ro=true ]] || vt_fail "cache $name is writable"
			fi
		done
	done
	for name in $("$VOLMGR" ls -q); do
		"$VOLMGR" inspect "$name" >/dev/null || vt_fail "listed volume $name cannot be inspected"
	done
}

# ------------------------------------------------------ debootstrap cache

# vt_rm_rootfs DIR — unmount whatever is still mounted below DIR (a
# failed debootstrap may leave /proc or /sys there), then delete it.
vt_rm_rootfs() {
	local mp
	while IFS= read -r mp; do
		vt__umount "$mp" || return 1
	done < <(vt__mounted_under "$1")
	rm -rf "$1"
}

# vt_debootstrap_tarball TARBALL SUITE PACKAGES MIRROR — make TARBALL, a
# minbase SUITE root file system with PACKAGES, unless it exists already.
# Kept between runs (callers put it in /var/cache/volmgr-tests, keyed by
# the package list): debootstrap takes minutes and needs the mirror.  One
# debootstrap at a time; the .debs and package lists are left out.
vt_debootstrap_tarball() {
	local tarball=$1 suite=$2 pkgs=$3 mirror=$4 root=$VT_TMP/debootstrap tmp lock
	mkdir -p "$(dirname "$tarball")"
	exec {lock}>"$tarball.lock"
	flock -w 600 "$lock" || vt_fail "$tarball.lock still locked after 10 min"
	if [[ -s $tarball ]]; then
		vt_log "root fs: cached $tarball"
	else
		vt_require_cmd debootstrap
		vt_log "root fs: debootstrap --variant=minbase --include=$pkgs $suite from $mirror"
		vt_on_exit vt_rm_rootfs "$root"
		vt_log_file "$VT_TMP/debootstrap.log"
		debootstrap --variant=minbase --include="$pkgs" \
			"$suite" "$root" "$mirror" >"$VT_TMP/debootstrap.log" 2>&1 ||
			vt_skip "debootstrap failed (is $mirror reachable?): $(tail -n 3 "$VT_TMP/debootstrap.log")"
		tmp=$(mktemp "$tarball.XXXXXX")
		tar --numeric-owner -C "$root" -cf "$tmp" \
			--exclude='./var/cache/apt/archives/*.deb' --exclude='./var/lib/apt/lists/*' .
		chmod 0644 "$tmp"
		mv -f "$tmp" "$tarball"
		vt_rm_rootfs "$root"
		vt_log "root fs: cached as $tarball ($(du -h "$tarball" | cut -f1))"
	fi
	flock -u "$lock"
	exec {lock}>&-
}
