#!/usr/bin/env bash
# The plugin socket over real HTTP/1.1: every endpoint, the Docker content
# type, socket modes, keep-alive, chunked bodies, bounded bodies and
# headers, and a stalled client that does not block anyone else.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init plugin-http
vt_require_root
vt_require_cmd jq curl python3

pool=$(vt_make_pool btrfs)/pool
vt_start_daemon "$pool"
mkdir -p "$VT_TMP/src" && echo x >"$VT_TMP/src/f"
"$VOLMGR" cache import proj "$VT_TMP/src"
req() { # req PATH JSON -> "BODY STATUS"
	curl -sS --max-time 60 --unix-socket "$VT_PLUGIN_SOCK" -X POST \
		-w ' %{http_code}' "http://plugin$1" -d "$2"
}

vt_step "socket modes: neither socket is world-accessible"
vt_assert_eq 600 "$(stat -c %a "$VT_PLUGIN_SOCK")" "plugin socket mode"
vt_assert_eq 600 "$(stat -c %a "$VT_CONTROL_SOCK")" "control socket mode"

vt_step "every endpoint"
vt_assert_eq '{"Implements":["VolumeDriver"]} 200' "$(req /Plugin.Activate '')" Activate
vt_assert_eq '{"Capabilities":{"Scope":"local"}} 200' "$(req /VolumeDriver.Capabilities '{}')" Capabilities
vt_assert_eq '{"Err":""} 200' "$(req /VolumeDriver.Create '{"Name":"h1","Opts":{"source":"cache:proj"}}')" Create
vt_assert_eq '{"Err":""} 200' "$(req /VolumeDriver.Create '{"Name":"h2","Opts":null}')" "Create empty"
get=$(req /VolumeDriver.Get '{"Name":"h1"}')
vt_assert_eq "$pool/volumes/h1" "$(jq -r .Volume.Mountpoint <<<"${get% *}")" "Get Mountpoint"
vt_assert_eq cache:proj "$(jq -r .Volume.Status.source <<<"${get% *}")" "Get Status.source"
vt_assert_eq "h1 h2" "$(req /VolumeDriver.List '{}' | sed 's/ 200$//' | jq -r '[.Volumes[].Name] | join(" ")')" List
vt_assert_eq "{\"Err\":\"\",\"Mountpoint\":\"$pool/volumes/h1\"} 200" "$(req /VolumeDriver.Path '{"Name":"h1"}')" Path
vt_assert_eq "{\"Err\":\"\",\"Mountpoint\":\"$pool/volumes/h1\"} 200" "$(req /VolumeDriver.Mount '{"Name":"h1","ID":"a"}')" Mount
vt_assert_contains "$(req /VolumeDriver.Remove '{"Name":"h1"}')" "in use" "Remove while mounted"
vt_assert_eq '{"Err":""} 200' "$(req /VolumeDriver.Unmount '{"Name":"h1","ID":"a"}')" Unmount
vt_assert_eq '{"Err":""} 200' "$(req /VolumeDriver.Remove '{"Name":"h1"}')" Remove
vt_assert_contains "$(req /VolumeDriver.Get '{"Name":"h1"}')" "no such volume: h1\"} 500" "Get after Remove"
vt_assert_contains "$(req /VolumeDriver.Create '{"Name":"h3","Opts":{"size":"1G"}}')" 'unknown option \"size\"' "unknown option"
vt_assert_contains "$(req /VolumeDriver.Nope '{}')" " 404" "unknown endpoint"
vt_assert_contains "$(curl -sS --unix-socket "$VT_PLUGIN_SOCK" -w ' %{http_code}' http://plugin/VolumeDriver.List)" " 405" "GET"

vt_step "content type"
ct=$(curl -sS --unix-socket "$VT_PLUGIN_SOCK" -X POST -o /dev/null -w '%{content_type}' http://plugin/VolumeDriver.List -d '{}')
vt_assert_eq application/vnd.docker.plugins.v1+json "$ct" "Content-Type"

vt_step "keep-alive: two requests on one connection"
out=$(curl -sS --unix-socket "$VT_PLUGIN_SOCK" -X POST -d '{}' -w '%{num_connects}\n' \
	http://plugin/VolumeDriver.List http://plugin/VolumeDriver.Capabilities)
vt_assert_eq "1 0" "$(grep -oE '^[0-9]+$|[}][0-9]+$' <<<"$out" | grep -oE '[0-9]+$' | xargs)" "connections opened"

vt_step "chunked request body"
vt_assert_eq '{"Err":""} 200' "$(curl -sS --unix-socket "$VT_PLUGIN_SOCK" -X POST -H 'Transfer-Encoding: chunked' \
	-w ' %{http_code}' http://plugin/VolumeDriver.Create -d '{"Name":"chunky"}')" "chunked Create"

vt_step "bounded body and headers"
head -c 70000 /dev/zero | tr '\0' ' ' >"$VT_TMP/big"
vt_assert_contains "$(curl -sS --unix-socket "$VT_PLUGIN_SOCK" -X POST -w ' %{http_code}' \
	http://plugin/VolumeDriver.List --data-binary @"$VT_TMP/big")" " 413" "70 kB body"
code=$(curl -sS --unix-socket "$VT_PLUGIN_SOCK" -X POST -o /dev/null -w '%{http_code}' \
	-H "X-Big: $(head -c 40000 /dev/zero | tr '\0' a)" http://plugin/VolumeDriver.List -d '{}' || true)
[[ $code == 4* ]] || vt_fail "40 kB header: expected a 4xx, got $code"
vt_log "ok: 40 kB header refused with $code"

vt_step "a stalled client does not block the others"
# (It stalls until killed: the requests below come while it stalls,
# however long they take on a loaded machine.)
python3 - "$VT_PLUGIN_SOCK" "$VT_TMP/staller.ready" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"POST /VolumeDriver.List HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
open(sys.argv[2], "w").close()
time.sleep(600)
PY
staller=$!
vt_on_exit sh -c "kill $staller 2>/dev/null; true"
vt_wait_until -p "$staller" "the stalled client sent half a request" test -e "$VT_TMP/staller.ready"
vt_assert_contains "$(req /VolumeDriver.Get '{"Name":"chunky"}')" " 200" "Get while another client stalls"
vt_assert_eq '{"Err":""} 200' "$(req /VolumeDriver.Remove '{"Name":"chunky"}')" "Remove while another client stalls"
kill "$staller"
wait "$staller" 2>/dev/null || true
"$VOLMGR" rm h2

vt_step "every control character and invalid byte is escaped in the log"
# Logged as it came, before the JSON is parsed or the name checked: C0
# (ESC, CR, LF), DEL, C1 (U+009B CSI, as UTF-8), raw bytes that are no
# UTF-8, and a backslash; on both sockets.
python3 - "$VT_PLUGIN_SOCK" "$VT_CONTROL_SOCK" <<'PY'
import socket, sys
body = b'{"Name":"evil\x1b[2J\rforged line\nDEL\x7f C1\xc2\x9b INV\xff\xfe back\\x"}'
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"POST /VolumeDriver.Get HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
          % len(body) + body)
while s.recv(65536):
    pass
c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); c.connect(sys.argv[2])
c.send(b'{"op":"volume.inspect","args":{"name":"ctl\x1b]0;x\x07\xc2\x85\xc0\xaf"}}')
c.recv(65536)
PY
log=$VT_TMP/volmgrd.log
for raw in $'\x1b' $'\x7f' $'\xc2\x9b' $'\xc2\x85' $'\xff' $'\x07' $'\r'; do
	! LC_ALL=C grep -qF "$raw" "$log" || vt_fail "a raw $(printf '%q' "$raw") reached the log"
done
[[ $(grep -c 'forged line' "$log") == 1 ]] || vt_fail "the LF in the body started a line of its own"
grep -q 'evil\\x1b\[2J\\x0dforged line\\x0aDEL\\x7f C1\\xc2\\x9b INV\\xff\\xfe back\\\\x' "$log" ||
	vt_fail "the plugin request is not logged escaped: $(grep -a 'evil' "$log")"
grep -q 'ctl\\x1b\]0;x\\x07\\xc2\\x85\\xc0\\xaf' "$log" ||
	vt_fail "the control request is not logged escaped: $(grep -a '"ctl' "$log")"
vt_log "ok: C0, DEL, C1, invalid bytes and backslashes are escaped on both sockets"

vt_step "a clean stop removes the sockets volmgrd made"
vt__stop_daemon # (vt_stop_daemon would remove the sockets itself)
[[ ! -e $VT_PLUGIN_SOCK ]] || vt_fail "the plugin socket outlived volmgrd"
[[ ! -e $VT_CONTROL_SOCK ]] || vt_fail "the control socket outlived volmgrd"
vt_log "ok: both sockets are gone"
