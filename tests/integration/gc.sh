#!/usr/bin/env bash
# volmgr gc: expired volumes (--ttl, -o ttl), volumes whose creator's
# container is gone, volumes with given labels; never one in use; a dry
# run changes nothing; bytes freed are reported; the daemon runs it
# periodically when configured to.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init gc
vt_require_root
vt_require_cmd jq curl unshare

pool=$(vt_make_pool btrfs)/pool
printf '[gc]\ninterval = 0\n' >"$VT_TMP/volmgr.conf"
VT_DAEMON_CONFIG=$VT_TMP/volmgr.conf vt_start_daemon "$pool"
names() { "$VOLMGR" ls -q | xargs; }

vt_step "volumes with a ttl, labels, one held by a mount"
"$VOLMGR" create short --ttl 1s >/dev/null
"$VOLMGR" create held --ttl 1s >/dev/null
"$VOLMGR" create long --ttl 1h >/dev/null
"$VOLMGR" create forever >/dev/null
"$VOLMGR" create p7a --label ci.pipeline=7 >/dev/null
"$VOLMGR" create p7b --label ci.pipeline=7 --label x=y >/dev/null
"$VOLMGR" create p8 --label ci.pipeline=8 >/dev/null
out=$(curl -sS --unix-socket "$VT_PLUGIN_SOCK" -X POST -w ' %{http_code}' \
	http://plugin/VolumeDriver.Create -d '{"Name":"plug-short","Opts":{"ttl":"1s"}}')
vt_assert_eq '{"Err":""} 200' "$out" "-o ttl=1s"
vt_assert_status 7 "$VOLMGR" create bad --ttl 0
vt_assert_status 7 "$VOLMGR" create bad --ttl -5s
vt_assert_status 7 "$VOLMGR" create bad --ttl 99999999999d
[[ $(vt_volmgr_field short .expires) =~ ^[0-9]{4}- ]] || vt_fail "inspect shows no expiry"
head -c 1048576 /dev/urandom >"$pool/volumes/short/data"
mkdir "$VT_TMP/held-mnt"
unshare -m --propagation private sh -c \
	"mount --bind '$pool/volumes/held' '$VT_TMP/held-mnt' && touch '$VT_TMP/held.ready' && exec sleep 300" &
holder=$!
vt_on_exit sh -c "kill $holder 2>/dev/null; wait $holder 2>/dev/null; true"
vt_wait_until -p "$holder" "the holder's bind mount of held" test -e "$VT_TMP/held.ready"
# The ttl of 1 s is past for every volume that has one (plug-short, made
# last, included): a lower bound on a time, not a wait for an event.
sleep 1.5

vt_step "a dry run lists what would go and changes nothing"
before=$(names)
rep=$("$VOLMGR" gc --dry-run --json)
vt_assert_eq "plug-short short" "$(jq -r '[.removed[].name] | sort | join(" ")' <<<"$rep")" "would remove"
vt_assert_eq held "$(jq -r '[.kept_in_use[].name] | join(" ")' <<<"$rep")" "kept in use"
vt_assert_eq "$before" "$(names)" "nothing removed"

vt_step "gc removes the expired volumes, never the mounted one, and reports bytes"
rep=$("$VOLMGR" gc --json)
vt_assert_eq "plug-short short" "$(jq -r '[.removed[].name] | sort | join(" ")' <<<"$rep")" "removed"
vt_assert_eq '["expired"]' "$(jq -c '.removed[] | select(.name=="short") | .reasons' <<<"$rep")" "reason"
bytes=$(jq -r '.removed[] | select(.name=="short") | .bytes' <<<"$rep")
(( bytes >= 1048576 )) || vt_fail "bytes freed for short: $bytes"
vt_log "ok: $bytes bytes freed for short"
vt_assert_eq "forever held long p7a p7b p8" "$(names)" "what is left"
kill "$holder"; wait "$holder" 2>/dev/null || true
vt_assert_contains "$("$VOLMGR" gc)" "removed held" "the held volume goes once unmounted"

vt_step "gc --label removes the volumes carrying all the given labels"
vt_assert_contains "$("$VOLMGR" gc --label ci.pipeline=7 --label x=y)" "removed p7b" "both labels"
vt_assert_eq "forever long p7a p8" "$(names)" "p7a lacks x=y"
"$VOLMGR" gc --label ci.pipeline=7 >/dev/null
vt_assert_eq "forever long p8" "$(names)" "labelled volumes gone"

vt_step "a volume whose creator's container is gone"
# A "container" as the engines make one: a pid namespace of its own, in a
# cgroup named by a 64-hex container id (Docker's cgroupfs layout), made
# here.  And a sandboxed host process -- its own mount namespace (what
# `unshare -m`, PrivateTmp= or a snap give) in a transient cgroup of its
# own: that is no container, and its volume must survive its cgroup.
root=/sys/fs/cgroup/pids
[[ -d $root ]] || root=/sys/fs/cgroup
id=$(printf '%s' "$VT_ID" | sha256sum | cut -c1-64)
cg=$root/vt-$VT_ID/docker/$id svc=$root/vt-$VT_ID-svc.scope
mkdir -p "$cg" "$svc"
vt_on_exit sh -c "rmdir '$cg' '$root/vt-$VT_ID/docker' '$root/vt-$VT_ID' '$svc' 2>/dev/null; true"
in_container() { sh -c "echo \$\$ > '$cg/cgroup.procs' && exec unshare -m -p --fork --propagation private $*"; }
in_container "'$VOLMGR' create from-job" >/dev/null
in_container "'$VOLMGR' create kept-job --label volmgr.keep=true" >/dev/null
sh -c "echo \$\$ > '$svc/cgroup.procs' && exec unshare -m --propagation private '$VOLMGR' create from-service" >/dev/null
[[ $(vt_volmgr_field from-job .creator.cgroup) == *"vt-$VT_ID/docker/$id" ]] || vt_fail "creator cgroup not recorded"
vt_assert_eq null "$(vt_volmgr_field forever .creator.cgroup)" "no cgroup recorded for a host caller"
vt_assert_eq null "$(vt_volmgr_field from-service .creator.cgroup)" "no cgroup recorded for a sandboxed host process"
vt_assert_eq "" "$("$VOLMGR" gc --dry-run --json | jq -r '.removed[].name')" "container still there"
rmdir "$cg" "$svc"
rep=$("$VOLMGR" gc --json)
vt_assert_eq from-job "$(jq -r '[.removed[].name] | join(" ")' <<<"$rep")" "removed once its cgroup is gone"
vt_assert_eq '["creator gone"]' "$(jq -c '.removed[0].reasons' <<<"$rep")" "reason"
vt_assert_eq "forever from-service kept-job long p8" "$(names)" "volmgr.keep=true and the service's volume are kept"
"$VOLMGR" rm from-service >/dev/null

vt_step "the daemon collects periodically when configured"
printf '[gc]\ninterval = 1s\n' >"$VT_TMP/volmgr.conf"
vt_restart_daemon
"$VOLMGR" create auto --ttl 1s >/dev/null
gone() { ! "$VOLMGR" inspect "$1" >/dev/null 2>&1; }
vt_wait_until "the periodic gc removed auto" gone auto
vt_assert_status 4 "$VOLMGR" inspect auto
# The gc thread logs what it removed once its whole run is done, a moment
# after the removal shows.
vt_wait_until "the periodic gc's log line" grep -qF 'gc: removed auto ["expired"]' "$VT_TMP/volmgrd.log"
"$VOLMGR" rm forever kept-job long p8 >/dev/null
