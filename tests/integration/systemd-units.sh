#!/usr/bin/env bash
# systemd integration: the units pass `systemd-analyze verify`; socket
# activation (the first request starts volmgrd, which answers on the
# inherited socket) for each socket with systemd-socket-activate, and for
# both at once with sd_notify readiness (READY=1, STATUS=, STOPPING=1).
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init systemd-units
vt_require_root
vt_require_cmd systemd-analyze systemd-socket-activate curl python3 btrfs

units=$VT_SRCDIR/../systemd
pool=$(vt_make_pool btrfs)/pool
: >"$VT_TMP/empty.conf"

vt_step "systemd-analyze verify (units with ExecStart pointing at this build)"
mkdir "$VT_TMP/units"
all_units=(volmgrd.service volmgrd.socket volmgrd-control.socket volmgrd-job.socket volmgr-gc.service
	volmgr-gc.timer var-lib-volmgr.mount volmgr-engined.service volmgr-engined.socket)
for u in "${all_units[@]}"; do
	sed -e "s|/usr/sbin/volmgr-engined|$VOLMGR_ENGINED|; s|/usr/sbin/volmgrd|$VOLMGRD|; s|/usr/bin/volmgr|$VOLMGR|" \
		"$units/$u" >"$VT_TMP/units/$u"
done
out=$(cd "$VT_TMP/units" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no \
	"${all_units[@]}" 2>&1) ||
	vt_fail "systemd-analyze verify: $out"
# Warnings about the host (no systemd as PID 1, missing docker.service)
# are not the units' fault; anything naming our units is.
if grep -E "volmgr" <<<"$out" | grep -vE "docker.service|podman.service|not found|Failed to" >/dev/null; then
	vt_fail "systemd-analyze verify complained: $out"
fi
vt_log "ok: systemd-analyze verify passes${out:+ (host notes: $(wc -l <<<"$out") lines)}"
grep -q '^Type=notify' "$units/volmgrd.service" || vt_fail "volmgrd.service is not Type=notify"
grep -q '^Before=docker.service' "$units/volmgrd.service" || vt_fail "volmgrd.service is not Before=docker.service"
# One socket per unit, so a SocketGroup= drop-in opens the control socket
# alone (SECURITY.md); the service takes both.
grep -q '^ListenSequentialPacket=/run/volmgr/control.sock' "$units/volmgrd-control.socket" ||
	vt_fail "volmgrd-control.socket does not listen on the control socket"
! grep -q '^ListenSequentialPacket' "$units/volmgrd.socket" || vt_fail "volmgrd.socket still holds the control socket"
grep -q '^ListenSequentialPacket=/run/volmgr/job.sock' "$units/volmgrd-job.socket" &&
	grep -q '^SocketMode=0666' "$units/volmgrd-job.socket" &&
	grep -q '^FileDescriptorName=job' "$units/volmgrd-job.socket" ||
	vt_fail "volmgrd-job.socket is not the job socket"
grep -q '^Sockets=volmgrd.socket volmgrd-control.socket volmgrd-job.socket' "$units/volmgrd.service" ||
	vt_fail "volmgrd.service does not take both sockets"
grep -q '^ListenStream=/run/volmgr/engine.sock' "$units/volmgr-engined.socket" &&
	grep -q '^SocketMode=0666' "$units/volmgr-engined.socket" ||
	vt_fail "volmgr-engined.socket is not the engine socket"
# Pins must reach the engine: no mount namespace for volmgr-engined.
! grep -qE '^(ProtectSystem|PrivateTmp|PrivateMounts|ProtectHome|PrivateDevices)=' \
	"$units/volmgr-engined.service" || vt_fail "volmgr-engined.service has a mount namespace"

start_activated() { # start_activated LOG ARGS... : systemd-socket-activate in the background
	local log=$1
	shift
	systemd-socket-activate "$@" >"$log" 2>&1 &
	activator=$!
	vt_on_exit sh -c "kill $activator 2>/dev/null; wait $activator 2>/dev/null; true"
	vt_log_file "$log"
	vt_wait_until -p "$activator" "systemd-socket-activate listens" grep -q "Listening on" "$log"
}
stop_activated() { kill "$activator" 2>/dev/null; wait "$activator" 2>/dev/null || true; }

vt_step "the plugin socket: the first request starts volmgrd"
start_activated "$VT_TMP/act1.log" -l "$VT_TMP/plugin.sock" --fdname=plugin \
	"$VOLMGRD" --pool "$pool" --plugin-socket "$VT_TMP/unused.sock" \
	--control-socket "$VT_TMP/control.sock" --config "$VT_TMP/empty.conf"
[[ ! -e $VT_TMP/control.sock ]] || vt_fail "volmgrd ran before any request"
out=$(curl -sS --max-time 60 --unix-socket "$VT_TMP/plugin.sock" -X POST http://p/Plugin.Activate -d '')
vt_assert_eq '{"Implements":["VolumeDriver"]}' "$out" "answer on the inherited socket"
vt_assert_contains "$(cat "$VT_TMP/act1.log")" "socket activation: plugin socket inherited, control socket made here" "log"
[[ ! -e $VT_TMP/unused.sock ]] || vt_fail "volmgrd made a plugin socket of its own"
vt_assert_status 0 "$VOLMGR" --socket "$VT_TMP/control.sock" status
stop_activated
# A clean stop removes the socket volmgrd made, not the one it was given.
[[ -S $VT_TMP/plugin.sock ]] || vt_fail "the inherited plugin socket went with volmgrd"
[[ ! -e $VT_TMP/control.sock ]] || vt_fail "the control socket volmgrd made outlived it"
vt_log "ok: the socket it made is gone, the inherited one stays"

vt_step "the control socket (SOCK_SEQPACKET): the first CLI call starts volmgrd"
start_activated "$VT_TMP/act2.log" --seqpacket -l "$VT_TMP/control2.sock" --fdname=control \
	"$VOLMGRD" --pool "$pool" --plugin-socket "$VT_TMP/plugin2.sock" \
	--control-socket "$VT_TMP/unused2.sock" --config "$VT_TMP/empty.conf"
vt_assert_eq btrfs "$("$VOLMGR" --socket "$VT_TMP/control2.sock" status --json | jq -r .fstype)" "status through the inherited socket"
vt_assert_contains "$(cat "$VT_TMP/act2.log")" "control socket inherited" "log"
stop_activated

vt_step "the job socket, passed by name: the first job's call starts volmgrd, which serves it as the job socket"
start_activated "$VT_TMP/act4.log" --seqpacket -l "$VT_TMP/job4.sock" --fdname=job \
	"$VOLMGRD" --pool "$pool" --plugin-socket "$VT_TMP/plugin4.sock" \
	--control-socket "$VT_TMP/control4.sock" --config "$VT_TMP/empty.conf"
out=$("$VOLMGR" --socket "$VT_TMP/job4.sock" ls 2>&1) && vt_fail "ls answered on the job socket"
vt_assert_contains "$out" "is not offered on the job socket" "the job socket's refusal"
vt_assert_contains "$(cat "$VT_TMP/act4.log")" "job socket (from systemd)" "log"
stop_activated

vt_step "both sockets inherited at once, by type, with sd_notify readiness"
python3 - "$VOLMGRD" "$pool" "$VT_TMP" <<'PY' || vt_fail "activation with both sockets"
import os, socket, sys, time, subprocess, json
volmgrd, pool, tmp = sys.argv[1:4]
plug = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); plug.bind(tmp + "/p3.sock"); plug.listen(16)
ctl = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); ctl.bind(tmp + "/c3.sock"); ctl.listen(16)
notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); notify.bind(tmp + "/notify.sock")
notify.settimeout(120)  # a bound for a loaded machine: volmgrd says READY=1 at once
pid = os.fork()
if pid == 0:
    # Through high numbers first: a socket may already sit at 3 or 4.
    hp, hc = os.dup(plug.fileno()), os.dup(ctl.fileno())
    os.dup2(hp, 3); os.dup2(hc, 4)
    os.set_inheritable(3, True); os.set_inheritable(4, True)
    env = dict(os.environ, LISTEN_FDS="2", LISTEN_PID=str(os.getpid()),
               LISTEN_FDNAMES="volmgrd:volmgrd", NOTIFY_SOCKET=tmp + "/notify.sock")
    os.execve(volmgrd, [volmgrd, "--pool", pool, "--plugin-socket", tmp + "/x.sock",
                        "--control-socket", tmp + "/y.sock", "--config", tmp + "/empty.conf"], env)
import atexit
def reap():
    # Whatever fails below, never leave the daemon holding the test's pool.
    try:
        os.kill(pid, 9); os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
atexit.register(reap)
msgs = notify.recv(4096).decode()
print("# notify:", msgs.replace("\n", " | "))
assert "READY=1" in msgs and "STATUS=serving" in msgs, msgs
plug.close(); ctl.close()
out = subprocess.run(["curl", "-sS", "--unix-socket", tmp + "/p3.sock", "-X", "POST",
                      "http://p/VolumeDriver.Capabilities", "-d", "{}"], capture_output=True, text=True)
assert json.loads(out.stdout)["Capabilities"]["Scope"] == "local", out
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.connect(tmp + "/c3.sock")
s.send(b'{"op":"ping","args":{}}'); reply = json.loads(s.recv(65536)); s.close()
assert reply["ok"] and reply["result"]["fstype"] == "btrfs", reply
assert not os.path.exists(tmp + "/x.sock") and not os.path.exists(tmp + "/y.sock")
os.kill(pid, 15)
msgs = notify.recv(4096).decode()
print("# notify:", msgs.replace("\n", " | "))
assert "STOPPING=1" in msgs, msgs
_, status = os.waitpid(pid, 0)
assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
print("# ok: READY=1, both inherited sockets answer, STOPPING=1, exit 0")
PY
