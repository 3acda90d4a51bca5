#!/usr/bin/env bash
# About a minute of mixed load on volmgrd (tests/lib/soak.py: volumes
# through both sockets, mounts, copies, cache imports, metrics, refused
# requests; a new connection per request): every reply right, and
# volmgrd's file descriptors and memory stay bounded.  The 10-minute
# version with a report is bench/soak.sh.
#
# The bounds, at the end, once every connection has closed: the fds of
# the start, give or take 2; RSS within 12 MiB of what it was after a
# warm-up (glibc's per-thread arenas and the first allocations have
# settled by then; measured here: 8.6 MiB then, 8.6 at the end, with
# 7,900 requests in the minute).  A leaked fd per request would add
# thousands; a leaked request buffer (every round sends a 70 kB body)
# tens of MiB, as would a leak of 2 KiB per request.  Smaller leaks are
# LeakSanitizer's job (the ASan build, see helpers/quickstart test).
# VOLMGR_SOAK_SECONDS (default 60) sets the length.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init soak-short
vt_require_root
vt_require_cmd python3 jq btrfs

seconds=${VOLMGR_SOAK_SECONDS:-60}
pool=$(vt_make_pool btrfs 2G)/pool
vt_start_daemon "$pool"
src=$VT_TMP/src
mkdir -p "$src/dir/sub"
for i in $(seq 1 20); do head -c $((i * 1000)) /dev/urandom >"$src/dir/f$i"; done
ln -s dir/f1 "$src/link"
echo hello >"$src/README"
"$VOLMGR" cache import soak "$src" >/dev/null

vt_step "$seconds s of mixed load, 4 workers"
python3 "$VT_SRCDIR/lib/soak.py" --pid "$VT_DAEMON_PID" --plugin "$VT_PLUGIN_SOCK" \
	--control "$VT_CONTROL_SOCK" --src "$src" --seconds "$seconds" --workers 4 --min-rounds 20 \
	>"$VT_TMP/soak.json" || vt_fail "the load failed: $(jq -r '.failure[]' "$VT_TMP/soak.json" 2>/dev/null)"
jq -c 'del(.samples)' "$VT_TMP/soak.json"
r() { jq -r "$1" "$VT_TMP/soak.json"; }

vt_step "the load ran, and volmgrd's fds and memory stayed bounded"
# (soak.py goes on until 20 rounds are done: a loaded machine takes longer.)
(($(r .rounds) >= 20)) || vt_fail "only $(r .rounds) rounds in $(r .seconds) s"
vt_log "ok: $(r .requests) requests in $(r .rounds) rounds ($(r .errors_expected) refused as they should be)"
fd_warm=$(r .after_warmup.fds) fd_end=$(r .end.fds) fd_max=$(r .max.fds)
fd_start=$(r .start.fds)
((fd_end <= fd_start + 2)) || vt_fail "fds: $fd_start at the start, $fd_end at the end (max $fd_max)"
vt_log "ok: fds $fd_start at the start, $fd_warm after the warm-up, $fd_end at the end, max $fd_max"
rss_warm=$(r .after_warmup.rss_kib) rss_end=$(r .end.rss_kib) rss_max=$(r .max.rss_kib)
if ldd "$VOLMGRD" 2>/dev/null | grep libasan >/dev/null; then
	# ASan holds freed memory in quarantine (256 MiB by default): RSS
	# says nothing there; LeakSanitizer checks volmgrd at its stop.
	vt_log "RSS not bounded for an ASan build ($rss_warm -> $rss_end KiB)"
else
	((rss_end <= rss_warm + 12 * 1024)) ||
		vt_fail "RSS: $rss_warm KiB after the warm-up, $rss_end KiB at the end (max $rss_max)"
fi
vt_log "ok: RSS $(r .start.rss_kib) KiB at the start, $rss_warm after the warm-up, $rss_end at the end, max $rss_max"
vt_assert_eq "$(r .start.threads)" "$(r .end.threads)" "volmgrd's threads after the load"

vt_step "nothing left behind"
vt_assert_eq 0 "$("$VOLMGR" ls -q | grep -c '^soak-' || true)" "soak volumes left"
vt_check_pool_consistent
