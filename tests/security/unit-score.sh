#!/usr/bin/env bash
# The hardened systemd/volmgrd.service: `systemd-analyze security
# --offline=yes` rates its exposure 2.5 or better ("OK"), `systemd-analyze
# verify` passes, and the settings that volmgrd's own defences depend on
# stay as SECURITY.md explains (no RestrictSUIDSGID=yes: it would refuse
# openat2 for the whole unit; no ProtectProc/ProcSubset that would hide
# processes from the in-use scan; CAP_SYS_PTRACE kept for it).  No root
# needed; the unit is checked in a copy with ExecStart pointing at this
# build, as tests/integration/systemd-units.sh does.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init unit-score
vt_require_cmd systemd-analyze
[[ -x $VOLMGRD ]] || vt_fail "volmgrd not found at $VOLMGRD (build first, or set VOLMGRD)"

max=2.5
units=$VT_SRCDIR/../systemd
mkdir "$VT_TMP/units"
sed -e "s|/usr/sbin/volmgrd|$VOLMGRD|" "$units/volmgrd.service" >"$VT_TMP/units/volmgrd.service"
cp "$units/volmgrd.socket" "$units/volmgrd-control.socket" "$VT_TMP/units/"

# score DIR: the overall exposure of DIR/volmgrd.service; the table goes
# to $VT_TMP/security.txt.
score() {
	(cd "$1" && SYSTEMD_LOG_LEVEL=warning systemd-analyze security --offline=yes \
		--no-pager volmgrd.service) >"$VT_TMP/security.txt" 2>&1 || true
	sed -n 's/.*Overall exposure level for volmgrd\.service: \([0-9.]*\).*/\1/p' "$VT_TMP/security.txt"
}

vt_step "systemd-analyze security --offline=yes volmgrd.service"
s=$(score "$VT_TMP/units")
[[ $s =~ ^[0-9]+\.[0-9]+$ ]] || vt_fail "no overall exposure in: $(cat "$VT_TMP/security.txt")"
# What still counts against the unit, for the log.
grep '^✗' "$VT_TMP/security.txt" | sed 's/^/#   /' || true
printf '# volmgrd.service exposure: %s (at most %s)\n' "$s" "$max"
awk -v s="$s" -v m="$max" 'BEGIN { exit !(s <= m) }' ||
	vt_fail "volmgrd.service rates $s, worse than $max"
vt_log "ok: $s <= $max"

vt_step "with the network drop-in of SECURITY.md (git over https/ssh), for the record"
mkdir "$VT_TMP/net"
cp "$VT_TMP/units/volmgrd.socket" "$VT_TMP/units/volmgrd-control.socket" "$VT_TMP/net/"
sed -e 's/^PrivateNetwork=yes$/PrivateNetwork=no/' -e 's/^IPAddressDeny=any$/IPAddressDeny=/' \
	-e 's/^RestrictAddressFamilies=AF_UNIX$/RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6/' \
	"$VT_TMP/units/volmgrd.service" >"$VT_TMP/net/volmgrd.service"
vt_log "volmgrd.service with network for git: $(score "$VT_TMP/net")"

vt_step "settings volmgrd's defences depend on"
svc=$VT_TMP/units/volmgrd.service
last() { sed -n "s/^$1=//p" "$svc" | tail -n 1; }
[[ $(last RestrictSUIDSGID) != yes ]] ||
	vt_fail "RestrictSUIDSGID=yes makes openat2() fail with ENOSYS for the whole unit (RESOLVE_BENEATH lost)"
[[ $(last ProtectProc) == @(|invisible|default) ]] ||
	vt_fail "ProtectProc=$(last ProtectProc) may hide the processes the in-use scan reads"
for cap in CAP_SYS_PTRACE CAP_SYS_ADMIN CAP_KILL; do
	grep -qE "^CapabilityBoundingSet=.*\\b$cap\\b" "$svc" ||
		vt_fail "$cap is not in CapabilityBoundingSet= (SECURITY.md says why it must be)"
done
grep -q '^NoNewPrivileges=yes' "$svc" || vt_fail "NoNewPrivileges=yes is gone"
grep -q '^SystemCallFilter=@system-service' "$svc" || vt_fail "the system call allow list is gone"
vt_log "ok: openat2 allowed, /proc not hidden, CAP_SYS_PTRACE, CAP_SYS_ADMIN and CAP_KILL kept"

vt_step "systemd-analyze verify"
out=$(cd "$VT_TMP/units" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no \
	volmgrd.service volmgrd.socket volmgrd-control.socket 2>&1) || vt_fail "systemd-analyze verify: $out"
# Warnings about the host (no systemd as PID 1, no docker.service) are
# not the unit's fault; anything else naming it is.
if grep -E "volmgr" <<<"$out" | grep -vE "docker.service|podman.service|not found|Failed to" >/dev/null; then
	vt_fail "systemd-analyze verify complained: $out"
fi
vt_log "ok: systemd-analyze verify passes${out:+ (host notes: $(wc -l <<<"$out") lines)}"
