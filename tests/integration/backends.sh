#!/usr/bin/env bash
# One behaviour suite, run against every backend on a file system this
# test makes: btrfs (snapshots), XFS with reflink (reflink clones), ext4
# and tmpfs (bulk copies).  For each: the daemon picks the expected
# backend; a cache import and a volume made from it equal their source in
# content and metadata (tests/tools/treecmp.py); writes to the volume never
# change the cache; a snapshot of a volume equals it; removal frees the
# space; docker mounts a volume (when dockerd is installed); --json
# progress events; an implicit create that would need a long copy is
# refused at once (never on btrfs); a delete waits for a copy reading the
# tree.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/engines.sh"
vt_init backends
vt_require_root
vt_require_cmd jq python3 curl mkfs.btrfs mkfs.xfs mkfs.ext4 btrfs git script unshare setpriv
chmod 0711 "$VT_TMP" # git runs as nobody, in the pool's staging/
treecmp=${VT_SRCDIR:-$(dirname "$0")/..}/tools/treecmp.py
[[ -x $treecmp ]] || vt_fail "no $treecmp"

# cmp_trees A B WHAT — equal in content and metadata, or fail with the
# differences.
cmp_trees() {
	local out
	out=$(python3 "$treecmp" "$1" "$2") || vt_fail "$3: the trees differ: $out"
	vt_log "ok: $3: $1 and $2 are equal"
}

# setx PATH NAME VALUE — an extended attribute (python3: no attr package
# needed).
setx() {
	python3 -c 'import os, sys; os.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode(), follow_symlinks=False)' "$@"
}

# A source with every kind of entry and metadata the copy must keep.
src=$VT_TMP/src
mkdir -p "$src/d/e" "$src/empty"
echo small >"$src/small"
head -c 3000000 /dev/urandom >"$src/big"
truncate -s 10M "$src/sparse" && printf 'tail' | dd of="$src/sparse" bs=1 seek=9000000 conv=notrunc status=none
echo deep >"$src/d/e/f"
echo linked >"$src/h1" && ln "$src/h1" "$src/d/h2"
ln -s /etc/shadow "$src/to-shadow"
ln -s ../small "$src/d/rel"
ln -s nowhere "$src/dangling"
mkfifo "$src/fifo"
mknod "$src/null" c 1 3
chown 1234:5678 "$src/d" "$src/small" && chown -h 4321:8765 "$src/d/rel"
chmod 0750 "$src/d" && chmod 0604 "$src/small" && chmod 4755 "$src/big"
setx "$src/small" user.volmgr "an attribute"
setx "$src/d" user.dir yes
find "$src" -mindepth 1 -depth -exec touch -h -d '2001-02-03 04:05:06.123456789' {} +
touch -d '2002-03-04 05:06:07.987654321' "$src"
# Caches for the implicit create: many files (over the limit below), few.
many=$VT_TMP/many
mkdir -p "$many"
for i in $(seq 300); do echo "$i" >"$many/f$i"; done
bigsrc=$VT_TMP/bigsrc
mkdir -p "$bigsrc" && head -c 48000000 /dev/urandom >"$bigsrc/blob"

# An upstream repository for caches from git: generation 1, then 2.
up=$VT_TMP/up.git work=$VT_TMP/work
git init -q --bare -b main "$up" && git clone -q "$up" "$work" 2>/dev/null && git -C "$work" checkout -q -b main
gen() {
	echo "$1" >"$work/gen"
	git -C "$work" add -A
	git -C "$work" -c user.name=t -c user.email=t@x commit -qm "$1"
	git -C "$work" push -q origin main
}
gen 1
rev1=$(git -C "$work" rev-parse HEAD)

conf=$VT_TMP/volmgr.conf
cat >"$conf" <<'EOF'
[seed]
seed-big-* = cache:many
seed-small-* = cache:proj
[copy]
implicit_max_files = 100
EOF
export VT_DAEMON_CONFIG=$conf

docker_ok=false
if command -v dockerd >/dev/null && command -v docker >/dev/null && command -v busybox >/dev/null; then
	vt_docker_ensure
	img=$(vt_docker_image)
	docker_ok=true
else
	vt_log "no dockerd, docker or busybox here: the docker part is left out"
fi

used_kb() { df --output=used -k "$1" | tail -n 1 | tr -d ' '; }

# wait_freed DIR LIMIT_KB — poll until DIR's file system uses at most
# LIMIT_KB (btrfs and XFS free blocks in the background).
wait_freed() {
	local dir=$1 limit=$2 now i
	for ((i = 0; i < 240; i++)); do
		sync
		# btrfs: kick the cleaner that drops deleted subvolumes.
		[[ $(stat -f -c %T "$dir") != btrfs ]] || btrfs filesystem sync "$dir" >/dev/null 2>&1 || true
		now=$(used_kb "$dir")
		((now <= limit)) && return 0
		sleep 0.5
	done
	vt_fail "space not freed in 2 min: $now kB used, expected at most $limit kB"
}

# wait_file PATH PID — until PATH exists (while PID, the copy, runs).
wait_file() {
	vt_wait_until -p "$2" "the copy reached its pause point ($1)" test -e "$1"
}

# wait_staging_empty POOL — deferred deletes done.
staging_empty() { [[ -z $(ls -A "$1/staging") ]]; }
wait_staging_empty() {
	vt_wait_until "the deferred deletes in $1/staging done" staging_empty "$1"
}

plugin_create() {
	curl -s --unix-socket "$VT_PLUGIN_SOCK" -o "$VT_TMP/create.body" -w '%{http_code}' \
		-X POST -d "{\"Name\":\"$1\"}" http://volmgr/VolumeDriver.Create
}

suite() {
	local fs=$1 want=$2 dir pool st ev instant before during code
	vt_step "[$fs] the daemon picks the $want backend"
	dir=$(vt_make_pool "$fs" 1G)
	pool=$dir/pool
	vt_start_daemon "$pool"
	st=$("$VOLMGR" status --json)
	vt_assert_eq "$want" "$(jq -r .backend <<<"$st")" "[$fs] backend"
	vt_assert_eq probed "$(jq -r .backend_chosen <<<"$st")" "[$fs] how it was chosen"
	instant=false
	[[ $want == btrfs ]] && instant=true
	vt_assert_eq "$instant" "$(jq -r .instant <<<"$st")" "[$fs] instant"
	vt_assert_eq "$instant" "$(jq -r .quotas <<<"$st")" "[$fs] quotas"
	jq -e '.copy_io == "io_uring" or .copy_io == "syscalls"' <<<"$st" >/dev/null ||
		vt_fail "[$fs] copy_io: $st"
	vt_assert_contains "$("$VOLMGR" status)" "backend:  $want, probed" "[$fs] volmgr status"
	grep -q "backend $want, probed" "$VT_TMP/volmgrd.log" || vt_fail "[$fs] the log does not say the backend"

	vt_step "[$fs] cache import: content and metadata"
	"$VOLMGR" cache import proj "$src" >/dev/null
	cmp_trees "$src" "$pool/caches/proj" "[$fs] cache import"
	vt_assert_eq "$want" "$("$VOLMGR" cache inspect proj | jq -r .backend)" "[$fs] backend of the cache"

	vt_step "[$fs] a volume from the cache, with --json events"
	"$VOLMGR" snapshot cache:proj v1 --json >"$VT_TMP/ev-$fs"
	ev=$(tail -n 1 "$VT_TMP/ev-$fs")
	vt_assert_eq created/v1 "$(jq -r '.event + "/" + .name' <<<"$ev")" "[$fs] last event"
	vt_assert_eq "$want" "$(jq -r .result.backend <<<"$ev")" "[$fs] backend in the event"
	if [[ $instant == false ]]; then
		ev=$(grep '"event":"progress"' "$VT_TMP/ev-$fs" | tail -n 1) ||
			vt_fail "[$fs] no progress event: $(cat "$VT_TMP/ev-$fs")"
		vt_assert_eq true "$(jq -r .done <<<"$ev")" "[$fs] the last progress event is done"
		# Totals are counted first (hard links and holes aside, the
		# same numbers the copy reaches).
		jq -e '.total_files >= 10 and .files > 0 and .files <= .total_files and
			.total_bytes >= 13000000 and .bytes > 0 and .elapsed_ns > 0' <<<"$ev" >/dev/null ||
			vt_fail "[$fs] progress numbers: $ev"
		grep -q "copy: clone into volume v1: .* backend $want, io " "$VT_TMP/volmgrd.log" ||
			vt_fail "[$fs] no summary line for the copy in the log"
	fi
	if [[ $instant == false ]]; then
		# On a terminal: one line of progress, cleared before the result.
		script -qec "$VOLMGR snapshot cache:proj vtty" /dev/null >"$VT_TMP/tty-$fs" ||
			vt_fail "[$fs] snapshot on a terminal failed: $(cat "$VT_TMP/tty-$fs")"
		grep -qE 'copying: [0-9]+/[0-9]+ files, .*B/s' "$VT_TMP/tty-$fs" ||
			vt_fail "[$fs] no progress line on a terminal: $(cat -v "$VT_TMP/tty-$fs")"
		vt_log "ok: [$fs] a progress line on a terminal"
		"$VOLMGR" rm vtty >/dev/null
	fi
	vt_assert_eq "$want" "$(vt_volmgr_field v1 .backend)" "[$fs] inspect: backend"
	cmp_trees "$pool/caches/proj" "$pool/volumes/v1" "[$fs] volume from the cache"

	vt_step "[$fs] a cache imported without extended attributes: clones do not list any"
	vt_assert_eq false "$("$VOLMGR" cache inspect proj | jq -r .no_xattrs)" \
		"[$fs] no_xattrs of a cache with attributes"
	"$VOLMGR" cache import bare "$many" >/dev/null
	vt_assert_eq true "$("$VOLMGR" cache inspect bare | jq -r .no_xattrs)" \
		"[$fs] no_xattrs of a cache without attributes"
	if [[ $instant == false ]]; then
		vt_assert_contains "$(grep "copy: clone into volume v1:" "$VT_TMP/volmgrd.log" | tail -n 1)" \
			"xattrs 2" "[$fs] the attributes the clone of proj set (a file's and a directory's)"
		# Set behind the daemon's back (root of the host): a clone that
		# does not look for attributes does not copy it.
		setx "$pool/caches/bare/f1" user.late yes
		"$VOLMGR" snapshot cache:bare vbare >/dev/null
		vt_assert_contains "$(grep "copy: clone into volume vbare:" "$VT_TMP/volmgrd.log" | tail -n 1)" \
			"xattrs none in the source, not listed" "[$fs] the clone's summary line"
		vt_assert_eq "[]" "$(python3 -c 'import os, sys; print(os.listxattr(sys.argv[1]))' \
			"$pool/volumes/vbare/f1")" "[$fs] attributes of a file cloned without listing them"
		"$VOLMGR" rm vbare >/dev/null
	fi
	"$VOLMGR" cache rm bare >/dev/null

	vt_step "[$fs] writes to the volume never change the cache"
	local v1=$pool/volumes/v1
	echo more >>"$v1/big"
	printf 'X' | dd of="$v1/sparse" bs=1 seek=100 conv=notrunc status=none
	echo changed >"$v1/h1"
	echo new >"$v1/new"
	rm "$v1/d/e/f"
	chmod 0600 "$v1/small"
	setx "$v1/small" user.volmgr changed
	cmp_trees "$src" "$pool/caches/proj" "[$fs] the cache after writes to the volume"
	vt_assert_eq changed "$(cat "$pool/volumes/v1/d/h2")" "[$fs] hard link kept in the volume"

	vt_step "[$fs] a snapshot of a volume equals it"
	"$VOLMGR" snapshot volume:v1 v2 >/dev/null
	cmp_trees "$v1" "$pool/volumes/v2" "[$fs] snapshot of a volume"
	"$VOLMGR" snapshot "$v1" v3 >/dev/null 2>&1
	vt_assert_eq volume:v1 "$(vt_volmgr_field v3 .source)" "[$fs] snapshot PATH at a volume's top"
	vt_assert_eq v1 "$("$VOLMGR" which "$v1/d/e")" "[$fs] which inside a volume"
	vt_assert_eq false "$("$VOLMGR" which --json "$v1/d" | jq -r .root)" "[$fs] not the top"
	# Through bind mounts in another mount namespace: a subdirectory
	# (".." at the mount's root leaves the volume there), and the top.
	mkdir -p "$VT_TMP/bind-$fs"
	vt_assert_eq v1 "$(unshare -m --propagation private sh -c \
		"mount --bind '$v1/d' '$VT_TMP/bind-$fs' && '$VOLMGR' which '$VT_TMP/bind-$fs/e'")" \
		"[$fs] which through a bind mount of a subdirectory"
	unshare -m --propagation private sh -c \
		"mount --bind '$v1' '$VT_TMP/bind-$fs' && cd '$VT_TMP/bind-$fs' && '$VOLMGR' snapshot . v5" >/dev/null 2>&1 ||
		vt_fail "[$fs] snapshot . through a bind mount of a volume's top"
	vt_assert_eq volume:v1 "$(vt_volmgr_field v5 .source)" "[$fs] snapshot . through a bind mount"
	if [[ $instant == false ]]; then
		# Without CAP_DAC_READ_SEARCH (as under the systemd unit) volmgrd
		# cannot reopen the caller's directory by handle: the walk up
		# starts from the caller's own fd, which still finds the volume
		# below its top and a bind mount of the top.
		printf '#!/bin/sh\nexec setpriv --bounding-set=-dac_read_search -- %q "$@"\n' "$VOLMGRD" \
			>"$VT_TMP/volmgrd-nodrs"
		chmod +x "$VT_TMP/volmgrd-nodrs"
		VOLMGRD=$VT_TMP/volmgrd-nodrs vt_restart_daemon
		local capeff
		capeff=$(awk '/^CapEff:/ { print $2 }' "/proc/$VT_DAEMON_PID/status")
		(((16#$capeff >> 2) & 1)) && vt_fail "[$fs] volmgrd still has CAP_DAC_READ_SEARCH"
		vt_assert_eq v1 "$("$VOLMGR" which "$v1/d/e")" "[$fs] which inside a volume, without handles"
		vt_assert_eq v1 "$(unshare -m --propagation private sh -c \
			"mount --bind '$v1' '$VT_TMP/bind-$fs' && '$VOLMGR' which '$VT_TMP/bind-$fs/d'")" \
			"[$fs] which through a bind mount of the top, without handles"
		vt_restart_daemon
	fi
	"$VOLMGR" snapshot "$v1/d" v4 >/dev/null 2>&1
	vt_assert_eq "path:$v1/d" "$(vt_volmgr_field v4 .source)" "[$fs] snapshot PATH inside a volume"
	cmp_trees "$v1/d" "$pool/volumes/v4" "[$fs] copy of a directory of a volume"

	vt_step "[$fs] a volume promoted into a cache from a directory inside it, through a bind mount"
	unshare -m --propagation private sh -c \
		"mount --bind '$v1' '$VT_TMP/bind-$fs' && '$VOLMGR' cache promote '$VT_TMP/bind-$fs/d' promoted" >/dev/null ||
		vt_fail "[$fs] promote through a bind mount of a volume's top"
	vt_assert_eq d "$("$VOLMGR" cache inspect promoted | jq -r .promoted.checkout)" "[$fs] where the directory is in the volume"
	cmp_trees "$v1" "$pool/caches/promoted" "[$fs] the promoted cache"
	"$VOLMGR" cache rm promoted >/dev/null

	vt_step "[$fs] caches from git: create, update, a volume at a revision"
	git -C "$up" update-ref refs/heads/main "$rev1"
	"$VOLMGR" cache create gitc --git "file://$up" --branch main >/dev/null
	vt_assert_eq "$want" "$("$VOLMGR" cache inspect gitc | jq -r .backend)" "[$fs] backend of a git cache"
	"$VOLMGR" snapshot cache:gitc vg1 >/dev/null
	git -C "$work" reset -q --hard "$rev1" && gen 2
	"$VOLMGR" cache update gitc >/dev/null
	vt_assert_eq 2 "$(cat "$pool/caches/gitc/gen")" "[$fs] the cache after an update"
	vt_assert_eq 1 "$(cat "$pool/volumes/vg1/gen")" "[$fs] a volume made before the update"
	"$VOLMGR" snapshot "cache:gitc@$rev1" vg2 >/dev/null
	vt_assert_eq 1 "$(cat "$pool/volumes/vg2/gen")" "[$fs] a volume at a revision"
	vt_assert_eq "$rev1" "$(vt_volmgr_field vg2 .commit)" "[$fs] its commit"
	wait_staging_empty "$pool" # the old generation is gone
	"$VOLMGR" rm vg1 vg2 >/dev/null
	"$VOLMGR" cache rm gitc >/dev/null

	vt_step "[$fs] removal frees the space"
	"$VOLMGR" cache import blob "$bigsrc" >/dev/null
	wait_freed "$dir" 100000000
	before=$(used_kb "$dir")
	"$VOLMGR" snapshot cache:blob vb >/dev/null
	head -c 32000000 /dev/urandom >"$pool/volumes/vb/written"
	sync
	during=$(used_kb "$dir")
	((during - before >= 30000)) || vt_fail "[$fs] writing 32 MB used only $((during - before)) kB"
	"$VOLMGR" rm vb >/dev/null
	wait_freed "$dir" $((before + 4096))
	vt_log "ok: [$fs] used $before kB, $during kB with the volume, back after rm"
	"$VOLMGR" cache rm blob >/dev/null

	if [[ $docker_ok == true ]]; then
		vt_step "[$fs] docker mounts a volume of this backend"
		local dv=dv-$fs-$VT_ID
		docker volume create -d "$VT_DRIVER" -o source=cache:proj "$dv" >/dev/null
		vt_track_volume docker "$dv"
		vt_assert_eq small "$(docker run --rm --network none -v "$dv:/w" "$img" \
			sh -c 'cat /w/small && echo from-docker >/w/made')" "[$fs] read in the container"
		vt_assert_eq from-docker "$(cat "$pool/volumes/$dv/made")" "[$fs] written in the container"
		vt_rm_volume docker "$dv"
	fi

	vt_step "[$fs] an implicit create: quick refusal past the limit, except on btrfs"
	"$VOLMGR" cache import many "$many" >/dev/null
	code=$(plugin_create seed-big-1)
	if [[ $instant == true ]]; then
		vt_assert_eq 200 "$code" "[$fs] implicit create of a big tree on btrfs"
		vt_assert_eq cache:many "$(vt_volmgr_field seed-big-1 .source)" "[$fs] seeded"
		"$VOLMGR" rm seed-big-1 >/dev/null
	else
		vt_assert_eq 500 "$code" "[$fs] implicit create past the limit"
		vt_assert_contains "$(jq -r .Err "$VT_TMP/create.body")" \
			"create the volume first: volmgr snapshot cache:many seed-big-1, or docker volume create -d $VT_DRIVER -o source=cache:many seed-big-1" \
			"[$fs] the error"
		vt_assert_status 4 "$VOLMGR" inspect seed-big-1
	fi
	# A promote copies a job's tree off btrfs: no bigger than a seeded
	# create would copy back out of the cache.
	"$VOLMGR" snapshot cache:many big-vol >/dev/null
	if [[ $instant == true ]]; then
		"$VOLMGR" cache promote "$pool/volumes/big-vol" big-cache >/dev/null ||
			vt_fail "[$fs] promote of a big tree on btrfs"
		"$VOLMGR" cache rm big-cache >/dev/null
	else
		vt_assert_status 8 "$VOLMGR" cache promote "$pool/volumes/big-vol" big-cache
		vt_assert_status 4 "$VOLMGR" cache inspect big-cache
	fi
	"$VOLMGR" rm big-vol >/dev/null
	vt_assert_eq 200 "$(plugin_create seed-small-1)" "[$fs] implicit create under the limit"
	cmp_trees "$pool/caches/proj" "$pool/volumes/seed-small-1" "[$fs] implicit create"
	"$VOLMGR" rm seed-small-1 >/dev/null
	"$VOLMGR" cache rm many >/dev/null

	vt_step "[$fs] removing a volume while a copy reads inside it waits for the copy"
	local pause=$VT_TMP/pause-$fs-a cp
	mkdir "$pause"
	VOLMGR_FAULT_PAUSE=copy.start:$pause vt_restart_daemon
	"$VOLMGR" snapshot "$pool/volumes/v2/d" vd >/dev/null 2>"$VT_TMP/vd.err" &
	cp=$!
	wait_file "$pause/copy.start.paused" "$cp"
	"$VOLMGR" snapshot volume:v2 v2ref >/dev/null 2>&1 # a reference, while the copy waits
	"$VOLMGR" rm v2 >/dev/null
	[[ ! -e $pool/volumes/v2 ]] || vt_fail "[$fs] v2 is still in place"
	grep -q "is being read by a copy: deleted when it ends" "$VT_TMP/volmgrd.log" ||
		vt_fail "[$fs] the delete was not deferred"
	touch "$pause/copy.start.resume"
	wait "$cp" || vt_fail "[$fs] the copy failed: $(cat "$VT_TMP/vd.err")"
	cmp_trees "$pool/volumes/v2ref/d" "$pool/volumes/vd" "[$fs] the copy whose source was removed"
	wait_staging_empty "$pool"
	grep -q "the last copy reading it ended" "$VT_TMP/volmgrd.log" || vt_fail "[$fs] no deferred delete"

	if [[ $instant == false ]]; then
		vt_step "[$fs] removing a cache while a volume is cloned from it waits for the clone"
		pause=$VT_TMP/pause-$fs-b
		mkdir "$pause"
		VOLMGR_FAULT_PAUSE=copy.start:$pause vt_restart_daemon
		"$VOLMGR" snapshot cache:proj vc >/dev/null 2>"$VT_TMP/vc.err" &
		cp=$!
		wait_file "$pause/copy.start.paused" "$cp"
		"$VOLMGR" cache rm proj >/dev/null
		vt_assert_status 4 "$VOLMGR" cache inspect proj
		touch "$pause/copy.start.resume"
		wait "$cp" || vt_fail "[$fs] the clone failed: $(cat "$VT_TMP/vc.err")"
		cmp_trees "$src" "$pool/volumes/vc" "[$fs] the clone of a removed cache"
		wait_staging_empty "$pool"
	fi
	vt_restart_daemon
	vt_check_pool_consistent
	local -a left
	mapfile -t left < <("$VOLMGR" ls -q)
	((${#left[@]} == 0)) || "$VOLMGR" rm "${left[@]}" >/dev/null
	mapfile -t left < <("$VOLMGR" cache ls --json | jq -r '.[].name')
	((${#left[@]} == 0)) || "$VOLMGR" cache rm "${left[@]}" >/dev/null
	[[ -z $(ls -A "$pool/volumes") && -z $(ls -A "$pool/caches") && -z $(ls -A "$pool/staging") ]] ||
		vt_fail "[$fs] the pool is not empty after removing everything"
	vt_stop_daemon
}

for pair in ${VT_BACKENDS:-btrfs:btrfs xfs:reflink ext4:copy tmpfs:copy}; do
	suite "${pair%%:*}" "${pair##*:}"
done
