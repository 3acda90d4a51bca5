#!/usr/bin/env bash
# The bash completion (completion/volmgr.bash): sourced in a fresh bash
# (no bash-completion package needed), the functions that `complete`
# registered for volmgr and volmgrd are called as bash would call them,
# with COMP_WORDS / COMP_CWORD (split at ':' and '=' as bash does), and
# COMPREPLY is checked.  Also: every command and option that --help lists
# is offered; names come from `volmgr ls -q` / `volmgr cache ls --json` (a
# stub volmgr here) only when the socket exists, quietly, within a time
# limit; a completion never writes to stderr.
#
# Environment: VT_SRCDIR (tests/), VOLMGR and VOLMGRD (the built programs,
# for their --help and for one call of the real CLI).
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
source "${VT_SRCDIR:-$(dirname "$0")/..}/docs/lib.sh"
vt_init completion
vt_require_cmd python3 timeout

srcdir=$(realpath "${VT_SRCDIR:-$(dirname "$0")/..}/..")
COMPLETION=$srcdir/completion/volmgr.bash
[[ -r $COMPLETION ]] || vt_fail "no $COMPLETION"
for f in "$VOLMGR" "$VOLMGRD"; do
	[[ -x $f ]] || vt_fail "$f not built (set VOLMGR/VOLMGRD or build first)"
done
export COMPLETION

# The driver: a fresh bash sources the completion, finds the function
# registered for NAME and calls it with the words; prints COMPREPLY.
driver=$VT_TMP/driver.sh
cat >"$driver" <<'EOF'
source "$COMPLETION" || exit 90
spec=$(complete -p "$1") || exit 91
[[ $spec == *" -F "* ]] || exit 92
fn=${spec#* -F }
fn=${fn%% *}
shift
COMP_WORDS=("$@")
COMP_CWORD=$(($# - 1))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
COMP_TYPE=9
COMPREPLY=()
"$fn" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]:-}"
printf '%s\n' "${COMPREPLY[@]}"
EOF

# comp NAME WORD... — the completions, one per line, in $out; fails if the
# completion wrote anything to stderr or bash failed.
comp() {
	local name=$1 status=0
	shift
	out=$(bash --norc --noprofile "$driver" "$name" "$@" 2>"$VT_TMP/stderr") || status=$?
	out=$(grep -v '^$' <<<"$out" || true)
	[[ $status == 0 ]] || vt_fail "completing '$*' failed (status $status): $(cat "$VT_TMP/stderr")"
	[[ ! -s $VT_TMP/stderr ]] || vt_fail "completing '$*' wrote to stderr: $(cat "$VT_TMP/stderr")"
}

# expect_has WHAT ITEM... — each ITEM is one of the completions.
expect_has() {
	local what=$1 x
	shift
	for x; do
		grep -qxF -- "$x" <<<"$out" || vt_fail "$what: '$x' not offered; got: ${out//$'\n'/ }"
	done
	vt_log "ok: $what: offers $*"
}

# expect_exactly WHAT ITEM... — the completions are exactly the ITEMs.
expect_exactly() {
	local what=$1 want got
	shift
	want=$(printf '%s\n' "$@" | grep -v '^$' | sort || true)
	got=$(sort <<<"$out")
	[[ $got == "$want" ]] || vt_fail "$what: expected '${want//$'\n'/ }', got '${got//$'\n'/ }'"
	vt_log "ok: $what: '${got//$'\n'/ }'"
}

vt_step "volmgr <TAB>, volmgr cache <TAB>, volmgr gc --<TAB> (bash splits nothing here)"
comp volmgr volmgr ''
expect_has "volmgr <TAB>" snapshot cache
comp volmgr volmgr cache ''
expect_has "volmgr cache <TAB>" import create update
comp volmgr volmgr gc --
expect_has "volmgr gc --<TAB>" --dry-run
comp volmgr volmgr sn
expect_exactly "volmgr sn<TAB>" snapshot

vt_step "every command and option of volmgr --help is offered"
hent=$(help_entries <<<"$("$VOLMGR" --help)")
cmds=$(awk -F'\t' '$1 == "Commands" && !seen[$2]++ { print $2 }' <<<"$hent")
comp volmgr volmgr ''
# shellcheck disable=SC2046 # one word per command
expect_has "volmgr <TAB>" $(awk '{ print $1 }' <<<"$cmds" | sort -u)
for group in cache pool; do
	comp volmgr volmgr "$group" ''
	# shellcheck disable=SC2046
	expect_has "volmgr $group <TAB>" $(awk -v g="$group" '$1 == g { print $2 }' <<<"$cmds")
done
while IFS= read -r cmd; do
	opts=$(entry_fields Commands "$cmd" <<<"$hent" | sort -u)
	[[ -n $opts ]] || continue
	read -r -a words <<<"$cmd"
	comp volmgr volmgr "${words[@]}" -
	# shellcheck disable=SC2086
	expect_has "volmgr $cmd -<TAB>" $opts
done <<<"$cmds"
comp volmgr volmgr -
# shellcheck disable=SC2046
expect_has "volmgr -<TAB>" $(entry_fields Options - <<<"$hent")

vt_step "options already given are not offered again, but --label is"
comp volmgr volmgr gc --dry-run --label a = b --
expect_exactly "volmgr gc --dry-run --label a=b --<TAB>" --label --json
comp volmgr volmgr cache create proj --git https : //x ''
expect_exactly "volmgr cache create proj --git https://x <TAB>" --branch
comp volmgr volmgr ls --quiet --json ''
expect_exactly "volmgr ls --quiet --json <TAB> (-q is --quiet)" ''
comp volmgr volmgr ls -q -
expect_exactly "volmgr ls -q -<TAB>" --json

vt_step "snapshot SOURCE: cache:, volume: and directories; which and cache import: directories"
mkdir "$VT_TMP/cwd" "$VT_TMP/cwd/alpha-dir" "$VT_TMP/cwd/beta"
touch "$VT_TMP/cwd/gamma.txt"
cd "$VT_TMP/cwd" || vt_fail "cd"
comp volmgr volmgr snapshot ''
expect_exactly "volmgr snapshot <TAB>" cache: volume: alpha-dir beta
comp volmgr volmgr snapshot ca
expect_exactly "volmgr snapshot ca<TAB>" cache:
comp volmgr volmgr snapshot al
expect_exactly "volmgr snapshot al<TAB>" alpha-dir
comp volmgr volmgr which ''
expect_exactly "volmgr which <TAB>" alpha-dir beta
comp volmgr volmgr cache import proj b
expect_exactly "volmgr cache import proj b<TAB>" beta
comp volmgr volmgr snapshot cache:x ci-1 ''
expect_exactly "volmgr snapshot SOURCE VOLUME <TAB> (a new name)" ''
cd "$VT_TMP" || vt_fail "cd"

vt_step "names from the daemon, through a stub volmgr, only when the socket exists"
mkdir "$VT_TMP/bin"
stub=$VT_TMP/bin/volmgr
cat >"$stub" <<'EOF'
#!/bin/sh
printf '%s\n' "$*" >>"$STUB_LOG"
case ${STUB_MODE:-} in
fail) echo junk; echo "volmgr: cannot reach volmgrd" >&2; exit 3 ;;
hang) sleep 30 ;;
esac
[ "$1" = --socket ] && [ "$2" = "$STUB_SOCKET" ] || exit 3
shift 2
case "$*" in
"ls -q") printf '%s\n' vol-1 vol-2 other ;;
"cache ls --json") cat <<'J' ;;
[
  {
    "created": "2026-01-01T00:00:00Z",
    "labels": {
      "name": "not-a-cache"
    },
    "name": "proj-a",
    "subvol_id": 256
  },
  {
    "name": "proj-b"
  }
]
J
*) exit 2 ;;
esac
EOF
chmod +x "$stub"
sock=$VT_TMP/control.sock
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET).bind(sys.argv[1])' "$sock"
[[ -S $sock ]] || vt_fail "could not make a socket file"
export STUB_LOG=$VT_TMP/stub.log STUB_SOCKET=$sock
unset VOLMGR_SOCKET

comp volmgr "$stub" --socket "$sock" rm ''
expect_exactly "volmgr --socket S rm <TAB>" vol-1 vol-2 other
comp volmgr "$stub" --socket = "$sock" inspect vol
expect_exactly "volmgr --socket=S inspect vol<TAB>" vol-1 vol-2
out=$(VOLMGR_SOCKET=$sock bash --norc --noprofile "$driver" volmgr "$stub" rm o 2>&1)
expect_exactly "VOLMGR_SOCKET=S volmgr rm o<TAB>" other
comp volmgr "$stub" --socket "$sock" cache update ''
expect_exactly "volmgr cache update <TAB> (only top-level \"name\" keys)" proj-a proj-b
comp volmgr "$stub" --socket "$sock" cache rm proj-a ''
expect_exactly "volmgr cache rm proj-a <TAB>" proj-a proj-b
# "cache:" is split by bash into "cache" ":"; readline then replaces only
# what follows the ':', so the completions are the bare names.
comp volmgr "$stub" --socket "$sock" snapshot cache :
expect_exactly "volmgr snapshot cache:<TAB>" proj-a proj-b
comp volmgr "$stub" --socket "$sock" snapshot cache : proj-b
expect_exactly "volmgr snapshot cache:proj-b<TAB>" proj-b
comp volmgr "$stub" --socket "$sock" snapshot volume : vol
expect_exactly "volmgr snapshot volume:vol<TAB>" vol-1 vol-2

: >"$STUB_LOG"
comp volmgr "$stub" --socket "$VT_TMP/no-such.sock" rm ''
expect_exactly "volmgr --socket MISSING rm <TAB>" ''
[[ ! -s $STUB_LOG ]] || vt_fail "volmgr was run although the socket does not exist: $(cat "$STUB_LOG")"
vt_log "ok: volmgr not run when the socket does not exist"

STUB_MODE=fail
export STUB_MODE
comp volmgr "$stub" --socket "$sock" rm ''
expect_exactly "volmgr rm <TAB> when volmgr fails (its output ignored)" ''

STUB_MODE=hang
start=$SECONDS
comp volmgr "$stub" --socket "$sock" rm ''
expect_exactly "volmgr rm <TAB> when volmgr hangs" ''
((SECONDS - start <= 6)) || vt_fail "a hanging volmgr held the completion for $((SECONDS - start)) s"
vt_log "ok: a hanging volmgr is given up after $((SECONDS - start)) s"
unset STUB_MODE

vt_step "the real volmgr, on a socket nobody listens on: nothing, quietly"
comp volmgr "$VOLMGR" --socket "$sock" rm ''
expect_exactly "real volmgr rm <TAB>, socket not listening" ''

vt_step "volmgrd"
dopts=$(help_entries <<<"$("$VOLMGRD" --help)" | entry_fields Options -)
comp volmgrd volmgrd -
# shellcheck disable=SC2086
expect_has "volmgrd -<TAB>" $dopts
comp volmgrd volmgrd --pool /x --
expect_has "volmgrd --pool /x --<TAB>" --config --control-socket
grep -qx -- --pool <<<"$out" && vt_fail "volmgrd: --pool offered again"
mkdir "$VT_TMP/pools"
comp volmgrd volmgrd --pool "$VT_TMP/po"
expect_exactly "volmgrd --pool DIR<TAB>" "$VT_TMP/pools"
comp volmgrd volmgrd --config = "$VT_TMP/driv"
expect_exactly "volmgrd --config=FILE<TAB>" "$VT_TMP/driver.sh"
