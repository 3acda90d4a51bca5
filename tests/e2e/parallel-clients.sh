#!/usr/bin/env bash
# N clients in parallel (VOLMGR_CLIENTS, default 32), each for R rounds
# (VOLMGR_ROUNDS, default 100): create its own volume (through the CLI or
# `docker volume create -d`, empty or a snapshot of a cache), mount it in
# a container that writes a token unique to the client and round and
# reads it back, check from the container and from the host that the
# volume holds that token and nothing of any other client (no
# cross-talk), and remove the volume (through docker or the CLI).  Any
# error fails the test.  A round is kept cheap: a busybox image built
# here, --network none, --log-driver none.
#
# meson runs it as `parallel-clients` (32 x 4, suite e2e) and as
# `parallel-clients-full` (32 x 100, suite stress, not in the default run).
here=$(dirname "$(readlink -f "$0")")
. "$here/../lib/common.sh"
. "$here/../lib/engines.sh"

vt_init parallel-clients
vt_require_root
vt_require_cmd jq btrfs timeout

clients=${VOLMGR_CLIENTS:-32}
rounds=${VOLMGR_ROUNDS:-100}
[[ $clients =~ ^[1-9][0-9]*$ && $rounds =~ ^[1-9][0-9]*$ ]] ||
	vt_fail "VOLMGR_CLIENTS and VOLMGR_ROUNDS must be positive integers"

pool=$(vt_make_pool btrfs 4G)
vt_start_daemon "$pool"
vt_docker_ensure
img=$(vt_docker_image)
src=$VT_TMP/src
mkdir -p "$src"
echo "from the cache" >"$src/README"
"$VOLMGR" cache import proj "$src" >/dev/null

# Whatever a failed client left: only this test's volumes, by exact name
# (the daemon, the pool and the private dockerd are this test's too).
cleanup_volumes() {
	local v
	for v in $("$VOLMGR" ls -q 2>/dev/null); do
		[[ $v == pc-$VT_ID-* ]] && "$VOLMGR" rm "$v" >/dev/null 2>&1
	done
	return 0
}
vt_on_exit cleanup_volumes

# Every engine or CLI call is bounded (a hang is a failure, not a stuck
# test); Docker's own plugin timeouts are 1-2 min.
t() { timeout 300 "$@"; }

# One round of client C: its own volume, a container, the checks, the
# removal.  Prints a reason and returns 1 on the first problem.
round() {
	local c=$1 r=$2 vol=pc-$VT_ID-$1-$2 token=$VT_ID.$1.$2.$RANDOM$RANDOM
	local how=$(((c + r) % 4)) expect out mp
	# how: 0 CLI empty, 1 CLI from the cache, 2 docker empty, 3 docker
	# from the cache; volumes made by docker are removed by the CLI and
	# the other way round, so both removal paths see both kinds.
	case $how in
	0) out=$(t "$VOLMGR" create "$vol" 2>&1) ;;
	1) out=$(t "$VOLMGR" snapshot cache:proj "$vol" 2>&1) ;;
	2) out=$(t docker volume create -d "$VT_DRIVER" "$vol" 2>&1) ;;
	3) out=$(t docker volume create -d "$VT_DRIVER" -o source=cache:proj "$vol" 2>&1) ;;
	esac || { echo "create $vol (way $how): $out"; return 1; }
	expect="token-$c"
	((how % 2 == 1)) && expect="README token-$c"
	# The container writes the token, reads it back and lists the volume.
	# shellcheck disable=SC2016 # expanded by the container's shell
	out=$(t docker run --rm --network none --log-driver none \
		--mount "type=volume,src=$vol,dst=/w,volume-driver=$VT_DRIVER" "$img" \
		sh -c 'echo "$1" >"/w/token-$2" && cat "/w/token-$2" && ls -A /w | tr "\n" " "' \
		sh "$token" "$c" 2>&1) || { echo "docker run on $vol: $out"; return 1; }
	[[ $out == "$token"$'\n'"$expect " ]] ||
		{ echo "$vol: the container saw '$out', expected '$token' and '$expect '"; return 1; }
	# The host's view of the same volume: the token and nothing else.
	mp=$(t "$VOLMGR" inspect "$vol" | jq -r .mountpoint) || { echo "inspect $vol failed"; return 1; }
	[[ $(cat "$mp/token-$c" 2>&1) == "$token" ]] || { echo "$vol: $mp/token-$c is not the token"; return 1; }
	out=$(ls -A "$mp" | tr '\n' ' ')
	[[ $out == "$expect " ]] || { echo "$vol: the host sees '$out' in it"; return 1; }
	case $how in
	0 | 1) out=$(t docker volume rm "$vol" 2>&1) ;;
	2 | 3) out=$(t "$VOLMGR" rm "$vol" 2>&1) ;;
	esac || { echo "remove $vol (way $how): $out"; return 1; }
	[[ ! -e $mp ]] || { echo "$vol: $mp still exists after the removal"; return 1; }
}

client() {
	local c=$1 r
	for ((r = 0; r < rounds; r++)); do
		round "$c" "$r" >"$VT_TMP/client-$c.err" 2>&1 || return 1
	done
	: >"$VT_TMP/client-$c.ok"
}

vt_step "$clients clients x $rounds rounds: create, mount in a container, write, check, remove"
pids=()
for ((c = 0; c < clients; c++)); do
	client "$c" &
	pids+=($!)
done
failed=0
for ((c = 0; c < clients; c++)); do
	wait "${pids[c]}" || true
	if [[ ! -e $VT_TMP/client-$c.ok ]]; then
		printf 'client %d failed: %s\n' "$c" "$(cat "$VT_TMP/client-$c.err")" >&2
		failed=$((failed + 1))
	fi
done
((failed == 0)) || vt_fail "$failed of $clients clients failed"
vt_log "ok: $((clients * rounds)) rounds in ${SECONDS}s, no error, no cross-talk"

vt_step "nothing left behind: no volume, a consistent pool, no mount of the pool"
left=$("$VOLMGR" ls -q | grep -c "^pc-$VT_ID-" || true)
vt_assert_eq 0 "$left" "volumes left"
vt_check_pool_consistent
[[ -z $(ls -A "$pool/volumes") ]] || vt_fail "data left in volumes/: $(ls -A "$pool/volumes" | head)"
if grep -F " $pool/volumes/" /proc/self/mountinfo >/dev/null; then
	vt_fail "mounts of volumes left: $(grep -F " $pool/volumes/" /proc/self/mountinfo | head -3)"
fi
kill -0 "$VT_DAEMON_PID" || vt_fail "volmgrd is gone"
