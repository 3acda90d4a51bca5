#!/usr/bin/env bash
# A caller is who connected, not whoever holds its pid when volmgrd gets
# round to it (issue 13, item 11).  A client connects and sends a create,
# volmgrd is held between accept and identifying the caller (a fault
# point), the client dies, and its pid is given to an impostor in a
# container (its own pid and mount namespaces, a cgroup named like a
# Docker container's) -- made deterministic by running everything in a
# pid namespace of this test's own and setting its ns_last_pid.  Taken
# by pid, the volume would be the impostor's, and gc would remove it once
# the impostor's cgroup is gone.  The kernel's pidfd of the peer
# (SO_PEERPIDFD) says the caller is gone: nothing is attributed to it.
if [[ -z ${VT_IN_PIDNS:-} ]]; then
	# Our own pid namespace, with its own /proc: pids are handed out in
	# order there, and only this test's processes take them.
	command -v unshare >/dev/null || { echo "SKIP: needs unshare" >&2; exit 77; }
	[[ $(id -u) == 0 ]] || { echo "SKIP: needs root" >&2; exit 77; }
	exec unshare --pid --fork --mount-proc --propagation private env VT_IN_PIDNS=1 "$0" "$@"
fi
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init caller-identity
vt_require_root
vt_require_cmd jq sha256sum ss

pool=$(vt_make_pool btrfs)/pool
VOLMGR_FAULT_PAUSE="+control.accepted:$VT_TMP" vt_start_daemon "$pool"

root=/sys/fs/cgroup/pids
[[ -d $root ]] || root=/sys/fs/cgroup
id=$(printf '%s' "$VT_ID" | sha256sum | cut -c1-64)
cg=$root/vt-$VT_ID/docker/$id
mkdir -p "$cg"
# (Retried: the impostor's launcher leaves it a moment after the impostor
# is killed, and a cgroup left behind would outlive the test.)
vt_on_exit sh -c "for i in \$(seq 300); do rmdir '$cg' 2>/dev/null || ! test -e '$cg' && break; sleep 0.1; done
	rmdir '$root/vt-$VT_ID/docker' '$root/vt-$VT_ID' 2>/dev/null; true"

vt_step "a client connects, asks, and dies before volmgrd identifies it"
touch "$VT_TMP/control.accepted.arm"
"$VOLMGR" create victim-vol >/dev/null 2>&1 &
client=$!
vt_wait_until -p "$client" "volmgrd stopped after accept" test -e "$VT_TMP/control.accepted.paused"
# The CLI sends its request right after connecting: wait until it is in
# volmgrd's end of the connection (its receive queue, as ss shows it).
request_queued() {
	local q
	for q in $(ss -xHn state established src "$VT_CONTROL_SOCK" | awk '{ print $2 }'); do
		((q > 0)) && return 0
	done
	return 1
}
vt_wait_until -p "$client" "the request waits in volmgrd's socket" request_queued
kill -KILL "$client"
wait "$client" 2>/dev/null || true
vt_log "the client had pid $client"

vt_step "its pid goes to an impostor in a container"
# The impostor: a process in the container's cgroup that forks the
# impostor into new pid and mount namespaces.  How many pids that takes
# before the impostor's is measured once (util-linux's unshare may fork
# more than once), then the impostor is made to get the client's pid.
# Nothing else may take a pid meanwhile: between setting ns_last_pid and
# the impostor's fork, this shell only uses builtins (a pgrep or a sleep
# polling for the impostor would race its fork for the next pid).
mkfifo "$VT_TMP/never"
exec {never}<>"$VT_TMP/never" # read -t on it: a sleep without a fork
impostor() { # FIRST_PID: start one after setting ns_last_pid; echo its pid
	local i pid='' comm=''
	echo $(($1 - 1)) >/proc/sys/kernel/ns_last_pid
	# (Not on the pipe that the caller reads this function's answer from.)
	sh -c "echo \$\$ > '$cg/cgroup.procs' && exec unshare -m -p --fork --propagation private sleep 600" >/dev/null &
	launcher=$!
	for ((i = 0; i < 2400; i++)); do # 120 s
		if [[ -z $pid ]]; then
			read -r pid _ <"/proc/$launcher/task/$launcher/children" 2>/dev/null || true
		fi
		if [[ -n $pid ]]; then
			read -r comm <"/proc/$pid/comm" 2>/dev/null || true
		fi
		[[ $comm == sleep ]] && break
		read -r -t 0.05 -u "$never" _ || true
	done
	echo "$launcher $pid"
}
read -r launcher pid < <(impostor $((client - 20)))
kill -KILL "$pid" && wait "$launcher" 2>/dev/null || true
offset=$((pid - (client - 20)))
vt_log "the impostor comes $offset pids after its launcher's first"
read -r launcher pid < <(impostor $((client - offset)))
vt_on_exit sh -c "kill -KILL $pid 2>/dev/null; wait $launcher 2>/dev/null; true"
vt_assert_eq "$client" "$pid" "the impostor has the client's pid"
vt_assert_eq sleep "$(cat "/proc/$client/comm" 2>/dev/null)" "pid $client is the impostor"
[[ $(readlink "/proc/$client/ns/pid") != "$(readlink /proc/1/ns/pid)" ]] ||
	vt_fail "the impostor is not in a pid namespace of its own"
grep -q "$id" "/proc/$client/cgroup" || vt_fail "the impostor is not in the container's cgroup"

vt_step "volmgrd goes on: the volume is nobody's"
touch "$VT_TMP/control.accepted.resume"
inspectable() { "$VOLMGR" inspect "$1" >/dev/null 2>&1; }
vt_wait_until "volmgrd made victim-vol" inspectable victim-vol
vt_assert_status 0 "$VOLMGR" inspect victim-vol
vt_assert_eq null "$(vt_volmgr_field victim-vol .creator.cgroup)" "no container attributed"
vt_assert_eq 0 "$(vt_volmgr_field victim-vol .creator.pid)" "no pid attributed"

vt_step "gc keeps it when the impostor's container goes"
kill -KILL "$client"
# (The launcher, unshare, is not this shell's child: it leaves the cgroup
# when it has seen the impostor die.)
rm_cgroup() { rmdir "$1" 2>/dev/null; }
vt_wait_until "the impostor's container cgroup is empty and gone" rm_cgroup "$cg"
vt_assert_eq "" "$("$VOLMGR" gc --json | jq -r '.removed[].name')" "nothing removed"
vt_assert_status 0 "$VOLMGR" inspect victim-vol
"$VOLMGR" rm victim-vol >/dev/null
