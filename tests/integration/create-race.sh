#!/usr/bin/env bash
# Many creators of one name at once, through every way of creating a
# volume (control socket: empty, from a cache, a copy of a passed
# directory; plugin socket: empty, from a cache) and, for caches, two
# imports: exactly one wins, every other gets a clear "already exists",
# and the pool is consistent after each race.  Then the same with CLI
# processes (exit status 5 for the losers).
#
# VOLMGR_RACES (default 150) races through the sockets, VOLMGR_CLI_RACES
# (default 30) with the CLI.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init create-race
vt_require_root
vt_require_cmd python3 jq btrfs

races=${VOLMGR_RACES:-150}
cli_races=${VOLMGR_CLI_RACES:-30}

pool=$(vt_make_pool btrfs 2G)/pool
vt_start_daemon "$pool"
src=$VT_TMP/src
mkdir -p "$src/d"
echo hello >"$src/README"
head -c 200000 /dev/urandom >"$src/d/blob" # a copy takes a moment: a wider window
"$VOLMGR" cache import proj "$src" >/dev/null

vt_step "$races races of 5 volume creators (control and plugin sockets) and 2 cache imports"
# Each creator connects first; all wait at a barrier, then send at once.
VT_LIBDIR=${VT_SRCDIR:-$(dirname "$0")/..}/lib \
	python3 - "$VT_PLUGIN_SOCK" "$VT_CONTROL_SOCK" "$src" "$races" <<'PY' || vt_fail "volume races"
import json, os, sys, threading
sys.path.insert(0, os.environ["VT_LIBDIR"])
from vtsock import control_connect, control_exchange, plugin_connect, plugin_exchange
plugin, control, src, races = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

ctl_conn = lambda: control_connect(control)
plugin_conn = lambda: plugin_connect(plugin)

def ctl_send(s, req, fd=None):
    r = control_exchange(s, req, fd)
    if r.get("ok"):
        return True, ""
    e = r.get("error", {})
    return False, f'{e.get("name")}: {e.get("message")}'

def plugin_send(s, body):
    status, payload = plugin_exchange(s, "/VolumeDriver.Create", json.dumps(body).encode())
    err = json.loads(payload).get("Err", "")
    if status == 200 and not err:
        return True, ""
    return False, f"HTTP {status}: {err}"

def race(kinds, what):
    """Run the creators of `kinds` at once; return [(kind, ok, message)]."""
    barrier = threading.Barrier(len(kinds))
    results = [None] * len(kinds)
    def run(i, kind, conn, send):
        try:
            barrier.wait(60)
            ok, msg = send(conn)
        except Exception as e:  # a dropped connection is a failure too
            ok, msg = None, f"exception {e!r}"
        results[i] = (kind, ok, msg)
    threads = []
    for i, (kind, connect, send) in enumerate(kinds):
        t = threading.Thread(target=run, args=(i, kind, connect(), send))
        threads.append(t)
    for t in threads: t.start()
    for t in threads: t.join(180)
    return results

failures = []
def judge(what, results):
    wins = [r for r in results if r and r[1] is True]
    if len(wins) != 1:
        failures.append(f"{what}: {len(wins)} winners: {results}")
        return None
    for r in results:
        if r is None or r[1] is True:
            continue
        if r[1] is None or "already exists" not in r[2] or \
           (not r[2].startswith("HTTP 500") and not r[2].startswith("EEXIST")):
            failures.append(f"{what}: a loser without a clear 'exists' error: {r}")
    return wins[0][0]

dirfd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
winners = {}
for i in range(races):
    name = f"race-{i}"
    kinds = [
        ("ctl-empty", ctl_conn, lambda s: ctl_send(s, {"op": "volume.create", "args": {"name": name}})),
        ("ctl-cache", ctl_conn, lambda s: ctl_send(s, {"op": "volume.create", "args": {"name": name, "source": "cache:proj"}})),
        ("ctl-copy", ctl_conn, lambda s: ctl_send(s, {"op": "volume.create", "args": {"name": name, "path": src}}, dirfd)),
        ("plugin-empty", plugin_conn, lambda s: plugin_send(s, {"Name": name})),
        ("plugin-cache", plugin_conn, lambda s: plugin_send(s, {"Name": name, "Opts": {"source": "cache:proj"}})),
    ]
    # Rotate the start order so that no kind always connects first.
    k = i % len(kinds)
    w = judge(name, race(kinds[k:] + kinds[:k], name))
    if w: winners[w] = winners.get(w, 0) + 1
print("# volume races won by:", json.dumps(winners, sort_keys=True))

# Caches: two imports of one name (the name is reserved while copying).
cache_races = max(1, races // 5)
for i in range(cache_races):
    name = f"cache-race-{i}"
    imp = lambda s: ctl_send(s, {"op": "cache.import", "args": {"name": name}}, dirfd)
    judge(name, race([("import-a", ctl_conn, imp), ("import-b", ctl_conn, imp)], name))
print(f"# {cache_races} cache import races")

if failures:
    print("\n".join("FAIL: " + f for f in failures[:20]))
    print(f"FAIL: {len(failures)} bad races")
    sys.exit(1)
print(f"# ok: {races} volume races and {cache_races} cache races, one winner each")
PY

vt_step "every raced name is one whole volume (or cache), the pool is consistent"
vt_check_pool_consistent
mapfile -t vols < <("$VOLMGR" ls -q | grep '^race-' | sort -V)
vt_assert_eq "$races" "${#vols[@]}" "volumes named race-*"
for ((i = 0; i < races; i++)); do
	[[ -f $pool/.volmgr/volumes/race-$i.json && -d $pool/volumes/race-$i ]] ||
		vt_fail "race-$i has no record or no data"
done
n_caches=$("$VOLMGR" cache ls --json | jq '[.. | objects | select(has("name")) | .name | select(startswith("cache-race-"))] | length')
vt_assert_eq "$((races > 5 ? races / 5 : 1))" "$n_caches" "caches named cache-race-*"
# A winner that copied has the tree; one that snapshotted the cache too.
for v in "${vols[@]}"; do
	f=$pool/volumes/$v/README
	[[ ! -e $f || $(cat "$f") == hello ]] || vt_fail "$v has a damaged README"
done
vt_log "ok: every raced volume is whole"

vt_step "$cli_races races of three CLI processes (create, snapshot, snapshot PATH)"
for ((i = 0; i < cli_races; i++)); do
	name=cli-race-$i
	pids=()
	"$VOLMGR" create "$name" >"$VT_TMP/o1" 2>&1 & pids[1]=$!
	"$VOLMGR" snapshot cache:proj "$name" >"$VT_TMP/o2" 2>&1 & pids[2]=$!
	"$VOLMGR" snapshot "$src" "$name" >"$VT_TMP/o3" 2>&1 & pids[3]=$!
	wins=0
	for j in 1 2 3; do
		status=0
		wait "${pids[j]}" || status=$?
		case $status in
		0) wins=$((wins + 1)) ;;
		5) grep -q "already exists" "$VT_TMP/o$j" ||
			vt_fail "$name: exit 5 without 'already exists': $(cat "$VT_TMP/o$j")" ;;
		*) vt_fail "$name: creator $j exited $status: $(cat "$VT_TMP/o$j")" ;;
		esac
	done
	[[ $wins == 1 ]] || vt_fail "$name: $wins winners"
done
vt_log "ok: $cli_races CLI races, one winner each, the losers exit 5 with 'already exists'"
vt_check_pool_consistent

vt_step "after a restart, the same state (nothing half-made to repair)"
before=$("$VOLMGR" ls -q | sort)
vt_restart_daemon
vt_assert_eq "$before" "$("$VOLMGR" ls -q | sort)" "volumes after the restart"
if grep -q "repair:" "$VT_TMP/volmgrd.log"; then
	vt_fail "volmgrd repaired something after the races: $(grep "repair:" "$VT_TMP/volmgrd.log")"
fi
vt_log "ok: nothing to repair"
vt_check_pool_consistent
