#!/usr/bin/env bash
# One name rule at every entry point: the CLI, the control socket and the
# plugin all accept what Docker accepts and refuse the rest with a clear
# error, and a refused request changes nothing in the pool.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init names-everywhere
vt_require_root
vt_require_cmd jq curl

pool=$(vt_make_pool btrfs)/pool
vt_start_daemon "$pool"
mkdir -p "$VT_TMP/src" && echo x >"$VT_TMP/src/f"
"$VOLMGR" cache import proj "$VT_TMP/src"
snapshot_of_pool() { (cd "$pool" && find . -path ./.volmgr/lock -prune -o -print | sort); }
before=$(snapshot_of_pool)

long200=$(printf 'a%.0s' {1..200})
long201=$(printf 'a%.0s' {1..201})
long4096=$(printf 'b%.0s' {1..4096})
bad=("" "a" "/" "." ".." "../x" "a/b" "/etc" ".hidden" "-dash" "_under" "a b" "a:b"
	"a\\b" $'a\nb' $'a\tb' $'a\x7fb' "é-utf8" $'\xff\xfe' "$long201" "$long4096" 'a*' 'a?')
good=("ab" "A_b.c-d" "0day" "runner-abc123xy-project-42-concurrent-0-cache-3c3f060a0374fc8bc39395164f415a70" "$long200")

vt_step "bad names are refused by the CLI (exit 7) and change nothing"
for n in "${bad[@]}"; do
	for cmd in "create" "snapshot cache:proj" "cache import"; do
		status=0
		if [[ $cmd == "cache import" ]]; then
			"$VOLMGR" cache import -- "$n" "$VT_TMP/src" 2>/dev/null || status=$?
		else
			# shellcheck disable=SC2086
			"$VOLMGR" $cmd -- "$n" 2>/dev/null || status=$?
		fi
		[[ $status == 7 ]] || vt_fail "volmgr $cmd $(printf %q "$n"): exit $status, expected 7"
	done
	status=0; "$VOLMGR" snapshot -- "cache:$n" ok-name 2>/dev/null || status=$?
	[[ $status == 7 ]] || vt_fail "snapshot cache:$(printf %q "$n"): exit $status, expected 7"
done
vt_log "ok: ${#bad[@]} bad names refused by create, snapshot and cache import"

vt_step "bad names are refused by the plugin (500 + Err) and change nothing"
for n in "${bad[@]}"; do
	body=$(jq -cn --arg n "$n" '{Name: $n, Opts: {source: "cache:proj"}}' 2>/dev/null) ||
		body='{"Name":"\u00ff\u00fe"}'
	for ep in Create Mount Remove Get Path; do
		out=$(curl -sS --unix-socket "$VT_PLUGIN_SOCK" -X POST -w ' %{http_code}' \
			"http://plugin/VolumeDriver.$ep" -d "$(jq -c '. + {ID: "x"}' <<<"$body")")
		[[ $out == *'"Err":"'?*'"} 500' ]] || vt_fail "plugin $ep $(printf %q "$n"): $out"
	done
done
vt_log "ok: ${#bad[@]} bad names refused by Create, Mount, Remove, Get, Path"
out=$(curl -sS --unix-socket "$VT_PLUGIN_SOCK" -X POST -w ' %{http_code}' \
	http://plugin/VolumeDriver.Create -d '{"Name":"nul\u0000byte"}')
vt_assert_contains "$out" " 500" "a name with an escaped NUL"
vt_assert_eq "$before" "$(snapshot_of_pool)" "pool unchanged after every refusal"

vt_step "Docker-style names are accepted everywhere"
for n in "${good[@]}"; do
	"$VOLMGR" create "$n" >/dev/null
	"$VOLMGR" rm "$n" >/dev/null
	out=$(curl -sS --unix-socket "$VT_PLUGIN_SOCK" -X POST -w ' %{http_code}' \
		http://plugin/VolumeDriver.Create -d "{\"Name\":\"$n\"}")
	vt_assert_eq '{"Err":""} 200' "$out" "plugin Create ${n:0:40}"
	"$VOLMGR" rm "$n" >/dev/null
done
vt_assert_eq "$before" "$(snapshot_of_pool)" "pool back to where it was"
