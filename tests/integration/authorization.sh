#!/usr/bin/env bash
# Who may do what on the control socket: --control-group opens it (0660)
# to a group; a caller that is not root may remove only its own volumes,
# may not touch caches or run gc, and a copy it asks for reads with its
# own permissions; every request is logged with its caller.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init authorization
vt_require_root
vt_require_cmd setpriv jq
getent group nogroup >/dev/null && getent passwd nobody >/dev/null || vt_skip "needs the user nobody and the group nogroup"

chmod 0711 "$VT_TMP"
pool=$(vt_make_pool btrfs)/pool
VT_DAEMON_EXTRA="--control-group nogroup" vt_start_daemon "$pool"
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$VOLMGR" "$@"; }

vt_step "the control socket: 0660, group nogroup"
vt_assert_eq "660 root nogroup" "$(stat -c '%a %U %G' "$VT_CONTROL_SOCK")" "mode and owner"
vt_assert_status 0 as_nobody ls

vt_step "a caller that is not root, and its own volumes"
as_nobody create by-nobody >/dev/null
vt_assert_eq 65534 "$(vt_volmgr_field by-nobody .creator.uid)" "creator uid recorded"
"$VOLMGR" create by-root >/dev/null
vt_assert_status 10 as_nobody rm by-root
vt_assert_contains "$(as_nobody rm by-root 2>&1 || true)" "belongs to uid 0" "message"
vt_assert_status 0 as_nobody rm by-nobody
vt_assert_status 0 "$VOLMGR" inspect by-root

vt_step "caches and gc are root's"
mkdir -p "$VT_TMP/src" && echo x >"$VT_TMP/src/f" && chmod -R a+rX "$VT_TMP/src"
"$VOLMGR" cache import proj "$VT_TMP/src" >/dev/null
vt_assert_status 10 as_nobody cache rm proj
vt_assert_status 10 as_nobody cache import mine "$VT_TMP/src"
vt_assert_status 10 as_nobody gc
vt_assert_status 0 as_nobody snapshot cache:proj snap-nobody
as_nobody rm snap-nobody >/dev/null

vt_step "a copy asked for by nobody reads with nobody's permissions"
mkdir -p "$VT_TMP/tree/open" "$VT_TMP/tree/closed"
echo readable >"$VT_TMP/tree/open/f"
echo secret >"$VT_TMP/tree/closed/shadow"
chmod 0755 "$VT_TMP/tree" "$VT_TMP/tree/open" && chmod 0644 "$VT_TMP/tree/open/f"
chmod 0700 "$VT_TMP/tree/closed" && chmod 0600 "$VT_TMP/tree/closed/shadow"
status=0; msg=$(as_nobody snapshot "$VT_TMP/tree" leak 2>&1) || status=$?
vt_assert_eq 10 "$status" "copying a tree with a directory nobody cannot read"
vt_assert_contains "$msg" "Permission denied" "message"
vt_assert_status 4 "$VOLMGR" inspect leak
vt_assert_eq 0 "$(find "$pool/staging" -mindepth 1 | wc -l)" "nothing left in staging"
vt_assert_status 0 as_nobody snapshot "$VT_TMP/tree/open" fine
vt_assert_eq readable "$(cat "$pool/volumes/fine/f")" "a readable tree is copied"
"$VOLMGR" snapshot "$VT_TMP/tree" as-root >/dev/null 2>&1
vt_assert_eq secret "$(cat "$pool/volumes/as-root/closed/shadow")" "root reads everything"

vt_step "every request is logged with its caller"
vt_assert_contains "$(cat "$VT_TMP/volmgrd.log")" "uid=65534 request={\"op\":\"volume.remove\"" "log"
"$VOLMGR" rm by-root fine as-root >/dev/null

vt_step "names a seed rule or a reserved prefix claims are root's and the engines'"
# Both engines call Get before Create and adopt a volume that exists: a
# name squatted by another user would give the next job that user's tree.
cat >"$VT_CONFIG_FILE" <<'CONF'
[seed]
runner-*-project-{id}-concurrent-*-cache-* = cache:project-{id}
[names]
reserved_prefix = ci-
CONF
VT_DAEMON_EXTRA="--control-group nogroup" vt_restart_daemon
"$VOLMGR" cache import project-42 "$VT_TMP/src" >/dev/null
for name in runner-abc-project-42-concurrent-0-cache-0123 ci-7; do
	status=0
	err=$(as_nobody create "$name" 2>&1) || status=$?
	vt_assert_eq 10 "$status" "nobody creating $name"
	vt_assert_contains "$err" "reserved for the engines" "message"
	status=0
	as_nobody snapshot "$VT_TMP/src" "$name" >/dev/null 2>&1 || status=$?
	vt_assert_eq 10 "$status" "nobody copying a tree into $name"
	vt_assert_status 4 "$VOLMGR" inspect "$name"
done
# volmgr-csi's names (the kubelet's volume ids): a squatted one, labelled
# as volmgr-csi labels its own, would be mounted into the pod it names.
csi=csi-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
for how in create snapshot; do
	status=0
	if [[ $how == create ]]; then
		err=$(as_nobody create "$csi" --label volmgr.csi/volume-id="$csi" 2>&1) || status=$?
	else
		err=$(as_nobody snapshot "$VT_TMP/src" "$csi" --label volmgr.csi/volume-id="$csi" 2>&1) || status=$?
	fi
	vt_assert_eq 10 "$status" "nobody making $csi ($how)"
	vt_assert_contains "$err" "csi- are volmgr-csi's" "message"
	vt_assert_status 4 "$VOLMGR" inspect "$csi"
done
vt_assert_eq "" "$(ls -A "$pool/staging")" "nothing made"
vt_assert_status 0 as_nobody create mine-1
"$VOLMGR" create ci-8 >/dev/null
out=$(curl -sS --unix-socket "$VT_PLUGIN_SOCK" -X POST -w ' %{http_code}' \
	http://plugin/VolumeDriver.Create -d '{"Name":"runner-abc-project-42-concurrent-1-cache-0123"}')
vt_assert_eq '{"Err":""} 200' "$out" "the engines may"
vt_assert_eq "cache:project-42" "$(vt_volmgr_field runner-abc-project-42-concurrent-1-cache-0123 .source)" "and the seed rule fills it"
"$VOLMGR" rm mine-1 ci-8 runner-abc-project-42-concurrent-1-cache-0123 >/dev/null
