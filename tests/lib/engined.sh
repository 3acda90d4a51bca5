# shellcheck shell=bash
# volmgr-engined for the end-to-end tests: started on this test's engine
# and volmgrd, its socket in VT_TMP (mounted into job containers at
# /var/run/docker.sock), its state under /run (a short path: pins are
# mount points there), stopped by pid at exit.  Source common.sh and
# engines.sh first.

# vt_start_engined UPSTREAM_SOCKET — sets VT_ENGINE_SOCK, VT_ENGINED_PID,
# VT_ENGINED_STATE.
vt_start_engined() {
	local upstream=${1:?vt_start_engined UPSTREAM}
	VOLMGR_ENGINED=$(realpath -m "${VOLMGR_ENGINED:?the volmgr-engined binary}")
	[[ -x $VOLMGR_ENGINED ]] || vt_fail "volmgr-engined not found at $VOLMGR_ENGINED"
	VT_ENGINE_SOCK=$VT_TMP/engine.sock
	VT_ENGINED_STATE=/run/vt-engined-$VT_ID
	vt_log_file "$VT_TMP/engined.log"
	: >"$VT_TMP/engined.conf"
	"$VOLMGR_ENGINED" --socket "$VT_ENGINE_SOCK" --upstream "$upstream" \
		--control-socket "$VT_CONTROL_SOCK" --state-dir "$VT_ENGINED_STATE" \
		--config "${VT_ENGINED_CONFIG:-$VT_TMP/engined.conf}" --sweep-interval 500 \
		>>"$VT_TMP/engined.log" 2>&1 &
	VT_ENGINED_PID=$!
	export VT_ENGINE_SOCK VT_ENGINED_PID VT_ENGINED_STATE
	vt_on_exit vt__stop_engined "$VT_ENGINED_PID" "$VT_ENGINED_STATE"
	vt_wait_until -p "$VT_ENGINED_PID" "volmgr-engined listens" test -S "$VT_ENGINE_SOCK"
}

vt__stop_engined() {
	local pid=$1 state=$2 m
	vt__stop_pid "$pid" 5
	# Pins it left mounted (a test that failed midway), then its state.
	if [[ -d $state/pins ]]; then
		for m in "$state"/pins/*; do
			[[ -e $m ]] || continue
			while findmnt -rn --mountpoint "$m" >/dev/null; do umount -l "$m" || break; done
		done
	fi
	rm -rf "$state"
}
