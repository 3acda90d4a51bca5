#!/usr/bin/env bash
# Seed rules in volmgr.conf: a volume an engine creates without a source,
# named like gitlab-runner's build volumes, starts as a snapshot of the
# cache its rule names; no cache yet, no rule, or the CLI: an empty volume.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init seed-rules
vt_require_root
vt_require_cmd jq curl btrfs

pool=$(vt_make_pool btrfs)/pool
cat >"$VT_TMP/volmgr.conf" <<'CONF'
# gitlab-runner's per-job build volumes: seeded from the project's cache
[seed]
runner-*-project-{id}-concurrent-*-cache-*-protected = cache:project-{id}-protected
runner-*-project-{id}-concurrent-*-cache-* = cache:project-{id}
CONF
VT_DAEMON_CONFIG=$VT_TMP/volmgr.conf vt_start_daemon "$pool"
vt_assert_contains "$(cat "$VT_TMP/volmgrd.log")" "seed rule: runner-*-project-{id}-concurrent-*-cache-* -> cache:project-{id}" "daemon log"
create() {
	curl -sS --unix-socket "$VT_PLUGIN_SOCK" -X POST -w ' %{http_code}' \
		http://plugin/VolumeDriver.Create -d "$1"
}
mkdir -p "$VT_TMP/src/group/project" && echo cached >"$VT_TMP/src/group/project/f"
"$VOLMGR" cache import project-42 "$VT_TMP/src"
mkdir -p "$VT_TMP/src-p/group/project" && echo protected >"$VT_TMP/src-p/group/project/f"
"$VOLMGR" cache import project-42-protected "$VT_TMP/src-p"
job=runner-abcd1234-project-42-concurrent-0-0123456789abcdef-cache-c33bcaa1fd2c77edfc3893b41966cea8

vt_step "a runner-style name is seeded from its project's cache"
vt_assert_eq '{"Err":""} 200' "$(create "{\"Name\":\"$job\"}")" "Create"
vt_assert_eq cache:project-42 "$(vt_volmgr_field "$job" .source)" "source"
vt_assert_eq cached "$(cat "$pool/volumes/$job/group/project/f")" "content"
vt_assert_eq '{"Err":""} 200' "$(create "{\"Name\":\"$job-protected\"}")" "Create protected"
vt_assert_eq cache:project-42-protected "$(vt_volmgr_field "$job-protected" .source)" "protected source"

vt_step "an explicit source wins over the rules"
vt_assert_eq '{"Err":""} 200' "$(create "{\"Name\":\"${job/0123/4567}\",\"Opts\":{\"source\":\"cache:project-42-protected\"}}")" "Create"
vt_assert_eq cache:project-42-protected "$(vt_volmgr_field "${job/0123/4567}" .source)" "explicit source"

vt_step "no cache for the project yet, no matching rule, or the CLI: an empty volume"
vt_assert_eq '{"Err":""} 200' "$(create "{\"Name\":\"${job/project-42/project-7}\"}")" "Create project 7"
vt_assert_eq "" "$(vt_volmgr_field "${job/project-42/project-7}" .source)" "no source"
vt_assert_eq 0 "$(find "$pool/volumes/${job/project-42/project-7}" -mindepth 1 | wc -l)" "empty"
vt_assert_eq '{"Err":""} 200' "$(create '{"Name":"plain-volume"}')" "Create plain"
vt_assert_eq "" "$(vt_volmgr_field plain-volume .source)" "no rule"
"$VOLMGR" create "${job/0123/89ab}" >/dev/null
vt_assert_eq "" "$(vt_volmgr_field "${job/0123/89ab}" .source)" "the CLI does not apply rules"

vt_step "a bad configuration stops the daemon with a message"
printf '[seed]\nbad/pattern = cache:x\n' >"$VT_TMP/bad.conf"
status=0
out=$("$VOLMGRD" --pool "$pool" --plugin-socket "$VT_TMP/p2.sock" --control-socket "$VT_TMP/c2.sock" \
	--config "$VT_TMP/bad.conf" 2>&1) || status=$?
vt_assert_eq 7 "$status" "exit status"
vt_assert_contains "$out" "bad.conf: seed pattern" "message"
status=0
"$VOLMGRD" --pool "$pool" --plugin-socket "$VT_TMP/p2.sock" --control-socket "$VT_TMP/c2.sock" \
	--config "$VT_TMP/missing.conf" >/dev/null 2>&1 || status=$?
vt_assert_eq 4 "$status" "an explicit --config that is missing"
"$VOLMGR" rm "$job" "$job-protected" "${job/0123/4567}" "${job/project-42/project-7}" plain-volume "${job/0123/89ab}" >/dev/null
