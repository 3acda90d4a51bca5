#!/usr/bin/env bash
# The copy engine never leaves the source tree nor writes outside the
# destination, even while the source changes under it: symlinks to / and
# /etc/shadow are copied as links, and a process that keeps exchanging
# directories and files with symlinks out of the tree (renameat2
# RENAME_EXCHANGE, the CVE-2018-15664 pattern) cannot steer a copy to a
# canary outside the source, with openat2 and with the forced O_NOFOLLOW
# fallback, with io_uring, with syscalls and with reflinks (where several
# threads walk the source at once).  Copies may fail on a race; none may
# escape.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init copy-escape
vt_require_root
vt_require_cmd python3 jq mkfs.xfs
VM_COPY=${VM_COPY:-./build/tests/vm-copy}
[[ -x $VM_COPY ]] || vt_fail "vm-copy not found at $VM_COPY (build first, or set VM_COPY)"
TREECMP=$VT_SRCDIR/tools/treecmp.py
SWAP_LOOP=$VT_SRCDIR/tools/swap-loop.py
ROUNDS=${VT_COPY_ESCAPE_ROUNDS:-25}

# One file system for source, destinations and canaries: the engine's
# one-file-system rule must not be what stops an escape.  XFS: reflink
# copies need one that clones.
fs=$(vt_make_pool xfs 1G)

# Canaries: a file outside the source whose content must never appear in
# a copy, and a directory outside every destination that must not change.
canary="canary-$VT_ID-$RANDOM$RANDOM"
mkdir "$fs/outside"
printf '%s\n' "$canary" >"$fs/outside/secret"
mkdir "$fs/outside/dir"
printf '%s\n' "$canary" >"$fs/outside/dir/secret-in-dir"
mkdir "$fs/untouched"
printf 'keep\n' >"$fs/untouched/file"
mkdir "$fs/untouched/sub"
snapshot_untouched() {
	(cd "$fs" && find untouched outside -printf '%p %y %s %m %U:%G %T@\n' | sort &&
		find untouched outside -type f -exec sha256sum {} + | sort)
}
before=$(snapshot_untouched)

# check_no_escape DST — nothing of the canaries or of /etc/shadow in DST,
# and only names the source can have.
shadow_sum=$(sha256sum /etc/shadow | cut -d' ' -f1)
check_no_escape() {
	local dst=$1 bad
	if grep -rqF -- "$canary" "$dst"; then
		vt_fail "the canary from outside the source is in the copy $dst: $(grep -rlF -- "$canary" "$dst")"
	fi
	# grep -r follows no symlink; a copied file with /etc/shadow's content:
	bad=$(find "$dst" -type f -size "$(stat -c %s /etc/shadow)c" -exec sha256sum {} + |
		awk -v s="$shadow_sum" '$1 == s { print $2 }')
	[[ -z $bad ]] || vt_fail "/etc/shadow was copied into $bad"
	bad=$(cd "$dst" && find . -mindepth 1 -printf '%f\n' |
		grep -vxE 'static|to-root|to-shadow|to-outside|race|[dlfsgp][0-9]+|inner|file|sub' || true)
	[[ -z $bad ]] || vt_fail "names the source does not have in $dst: $bad"
	[[ $(snapshot_untouched) == "$before" ]] ||
		vt_fail "something outside the destination changed: $(diff <(printf '%s\n' "$before") <(snapshot_untouched))"
}

vt_step "symlinks out of the tree are copied as links"
src=$fs/src
mkdir -p "$src/static"
ln -s / "$src/static/to-root"
ln -s /etc/shadow "$src/static/to-shadow"
ln -s "$fs/outside" "$src/static/to-outside"
for args in "--io uring" "--io syscalls" "--io uring --no-openat2" "--io syscalls --no-openat2" \
	"--data reflink" "--data reflink --no-openat2"; do
	dst=$fs/dst-static
	mkdir "$dst"
	# shellcheck disable=SC2086 # words on purpose
	out=$("$VM_COPY" $args "$src" "$dst") || vt_fail "copy ($args) failed: $out"
	for l in to-root:/ to-shadow:/etc/shadow "to-outside:$fs/outside"; do
		[[ -L $dst/static/${l%%:*} ]] || vt_fail "($args) ${l%%:*} is not a symlink in the copy"
		vt_assert_eq "${l#*:}" "$(readlink "$dst/static/${l%%:*}")" "($args) target of ${l%%:*}"
	done
	python3 "$TREECMP" "$src" "$dst" >/dev/null || vt_fail "($args) the copy differs"
	check_no_escape "$dst"
	rm -rf "$dst"
done

vt_step "a racing exchange of directories and files with symlinks out of the tree"
# Pairs in race/: dN (a directory with files) <-> lN (a symlink to / or
# to the canary directory), fN (a file) <-> sN (a symlink to /etc/shadow
# or to the canary file).  Nested too: race/dN/sub <-> race/dN/lN.
mkdir "$src/race"
pairs=()
for i in $(seq 1 12); do
	mkdir -p "$src/race/d$i/sub"
	printf 'inside %s\n' "$i" >"$src/race/d$i/inner"
	printf 'inside sub %s\n' "$i" >"$src/race/d$i/sub/file"
	if ((i % 2)); then
		ln -s / "$src/race/l$i"
		ln -s /etc/shadow "$src/race/s$i"
	else
		ln -s "$fs/outside/dir" "$src/race/l$i"
		ln -s "$fs/outside/secret" "$src/race/s$i"
	fi
	printf 'file %s\n' "$i" >"$src/race/f$i"
	ln -s "$fs/outside/dir" "$src/race/d$i/l$i"
	# A file and a fifo trading places: an open for reading of what was
	# listed as a file must never hang on a fifo.
	printf 'file %s\n' "$i" >"$src/race/g$i"
	mkfifo "$src/race/p$i"
	pairs+=("$src/race/d$i" "$src/race/l$i" "$src/race/f$i" "$src/race/s$i"
		"$src/race/d$i/sub" "$src/race/d$i/l$i" "$src/race/g$i" "$src/race/p$i")
done

swap_pid=
stop_swapper() {
	[[ -n $swap_pid ]] || return 0
	kill -TERM "$swap_pid" 2>/dev/null || true
	wait "$swap_pid" 2>/dev/null || true
	swap_pid=
}
vt_on_exit stop_swapper
# Bounded: the swapper stops by itself after 10 minutes whatever happens.
python3 "$SWAP_LOOP" "$VT_TMP/swaps" 600 "${pairs[@]}" &
swap_pid=$!

declare -A ok=() failed=()
# --no-new-devices: files are opened for reading at once (what volmgrd
# does for a cache), not as O_PATH first.  --data reflink: root's reflink
# copy, walked by several threads.
for mode in "--io uring" "--io syscalls" "--io uring --no-openat2" \
	"--io syscalls --no-openat2" "--io uring --no-new-devices" \
	"--io syscalls --no-new-devices --no-openat2" "--data reflink" \
	"--data reflink --no-openat2" "--data reflink --no-new-devices"; do
	ok[$mode]=0 failed[$mode]=0
	for ((round = 0; round < ROUNDS; round++)); do
		dst=$fs/dst-race
		mkdir "$dst"
		status=0
		# shellcheck disable=SC2086 # words on purpose
		out=$(timeout 120 "$VM_COPY" $mode "$src" "$dst") || status=$?
		case $status in
		124) vt_fail "($mode) the copy hung (on a fifo?)" ;;
		0) ok[$mode]=$((ok[$mode] + 1)) ;;
		1) failed[$mode]=$((failed[$mode] + 1))
			# A race may fail a copy, with a message, never a crash.
			msg=$(jq -r '.error // empty' <<<"$out")
			[[ -n $msg ]] || vt_fail "($mode) failed without a message: $out"
			printf '%s\n' "$msg" >>"$VT_TMP/race-errors" ;;
		*) vt_fail "($mode) vm-copy exited $status: $out" ;;
		esac
		check_no_escape "$dst"
		rm -rf "$dst"
	done
	vt_log "($mode): $ROUNDS copies under the race: ${ok[$mode]} complete, ${failed[$mode]} failed on the race, none escaped"
done
kill -0 "$swap_pid" 2>/dev/null || vt_fail "the swapper ended early"
if [[ -s $VT_TMP/race-errors ]]; then
	vt_log "why copies failed on the race:"
	sed -E 's/[0-9]+/N/g' "$VT_TMP/race-errors" | sort | uniq -c | sed 's/^/#   /'
fi
stop_swapper
read -r swaps swap_errors <"$VT_TMP/swaps"
vt_log "the swapper made $swaps exchanges ($swap_errors failed)"
((swaps > 1000)) || vt_fail "too few exchanges ($swaps) for the race to mean anything"
[[ $(snapshot_untouched) == "$before" ]] || vt_fail "the canaries changed"
