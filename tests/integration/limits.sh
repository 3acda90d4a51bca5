#!/usr/bin/env bash
# What one caller can take of volmgrd (issue 13, "from the last round"):
#  - at most four copies run at once, the others wait for a slot
#    (copies held in their slots by a fault point);
#  - a user other than root may have at most two copies running or
#    waiting, and at most 16 of the control socket's 64 connections (its
#    own longest idle one makes room);
#  - the plugin socket closes its longest idle connections when nearly
#    full, so engines that hold connections and say nothing cannot lock
#    the others out.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init limits
vt_require_root
vt_require_cmd python3 setpriv jq curl
getent group nogroup >/dev/null && getent passwd nobody >/dev/null || vt_skip "needs the user nobody and the group nogroup"

chmod 0711 "$VT_TMP"
pool=$(vt_make_pool btrfs)/pool
VOLMGR_FAULT_PAUSE="*copy.slot:$VT_TMP" VT_DAEMON_EXTRA="--control-group nogroup" vt_start_daemon "$pool"
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }
copies() { "$VOLMGR" status --json | jq -r '"\(.copies.running) \(.copies.waiting)"'; }
copies_are() { [[ $(copies) == "$1" ]]; }
src=$VT_TMP/src
mkdir -p "$src/d"
echo x >"$src/d/f"
chmod -R a+rX "$src"

vt_step "six copies: four run, two wait"
touch "$VT_TMP/copy.slot.hold"
pids=()
for i in 1 2 3 4 5 6; do
	"$VOLMGR" snapshot "$src" "root-$i" >/dev/null &
	pids+=($!)
done
vt_on_exit sh -c "rm -f '$VT_TMP/copy.slot.hold'; kill ${pids[*]} 2>/dev/null; true"
vt_wait_until "four copies running, two waiting" copies_are "4 2"
vt_assert_eq "4 2" "$(copies)" "running, waiting"
sleep 1 # (nothing to wait for: that nothing changes is the point)
vt_assert_eq "4 2" "$(copies)" "still: a held copy keeps its slot"

vt_step "a user other than root: two copies running or waiting, no more"
as_nobody "$VOLMGR" snapshot "$src" nobody-1 >/dev/null &
n1=$!
as_nobody "$VOLMGR" snapshot "$src" nobody-2 >/dev/null &
n2=$!
vt_wait_until "nobody's two copies waiting too" copies_are "4 4"
vt_assert_eq "4 4" "$(copies)" "nobody's two copies wait"
status=0
err=$(as_nobody "$VOLMGR" snapshot "$src" nobody-3 2>&1) || status=$?
vt_assert_eq 6 "$status" "a third copy is refused at once (busy)"
vt_assert_contains "$err" "uid 65534 has 2 copies running or waiting" "message"
vt_assert_status 4 "$VOLMGR" inspect nobody-3
vt_assert_eq "4 4" "$(copies)" "root's copies are not limited"

rm "$VT_TMP/copy.slot.hold"
for p in "${pids[@]}" "$n1" "$n2"; do wait "$p" || vt_fail "a held copy failed"; done
vt_assert_eq "0 0" "$(copies)" "all done"
vt_assert_eq 8 "$("$VOLMGR" ls -q | wc -l)" "eight copies made"

vt_step "a user other than root holds at most 16 control connections"
mkdir "$VT_TMP/nobody"
chown nobody "$VT_TMP/nobody"
as_nobody /usr/bin/python3 "$VT_SRCDIR/tools/idle-clients.py" "$VT_CONTROL_SOCK" control 20 "$VT_TMP/nobody/state" &
idle=$!
vt_on_exit sh -c "kill $idle 2>/dev/null; wait $idle 2>/dev/null; true"
# closed_at_least FILE N: idle-clients.py saw at least N of its
# connections closed by volmgrd (it looks every 0.2 s).
closed_at_least() {
	local open closed which
	read -r open closed which <"$1" 2>/dev/null || return 1
	((closed >= $2))
}
vt_wait_until -p "$idle" "4 of nobody's connections closed" closed_at_least "$VT_TMP/nobody/state" 4
read -r open closed which <"$VT_TMP/nobody/state"
vt_assert_eq "20 4" "$open $closed" "of nobody's 20 idle connections, 4 were closed"
vt_assert_eq "0,1,2,3" "$which" "the longest idle ones"
vt_assert_status 0 as_nobody "$VOLMGR" ls
vt_assert_status 0 "$VOLMGR" ls
kill "$idle"
wait "$idle" 2>/dev/null || true

vt_step "the plugin socket: 256 idle connections, and an engine still gets in"
python3 "$VT_SRCDIR/tools/idle-clients.py" "$VT_PLUGIN_SOCK" plugin 256 "$VT_TMP/plugin.state" &
idle=$!
vt_on_exit sh -c "kill $idle 2>/dev/null; wait $idle 2>/dev/null; true"
vt_wait_until -p "$idle" "256 idle plugin connections made" test -s "$VT_TMP/plugin.state"
out=$(curl -sS -m 60 --unix-socket "$VT_PLUGIN_SOCK" -X POST -w ' %{http_code}' \
	http://plugin/VolumeDriver.Get -d '{"Name":"root-1"}') || vt_fail "the plugin socket took no new connection"
vt_assert_contains "$out" " 200" "Get through a full plugin socket"
vt_wait_until -p "$idle" "16 idle plugin connections closed" closed_at_least "$VT_TMP/plugin.state" 16
read -r open closed which <"$VT_TMP/plugin.state"
[[ $which == 0,1,2,* ]] || vt_fail "not the longest idle ones were closed: $which"
vt_log "ok: $closed of 256 idle plugin connections were closed, the oldest first"
kill "$idle"
wait "$idle" 2>/dev/null || true
