#!/usr/bin/env bash
# The job socket (--job-socket, volmgrd-job.socket): what job containers
# get instead of the control socket.  Any uid may connect (mode 0666); it
# answers ping, `which` and `cache promote` for the volume whose directory
# the caller passes -- a promote only into the cache the volume's seed
# rule named -- and refuses everything that names a volume or a cache.
# Played as a job that does not run as root: uid 65534 in a mount
# namespace of its own where the volume's top is bind-mounted, as an
# engine mounts it into a container.
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init job-socket
vt_require_root
vt_require_cmd jq curl git btrfs setpriv unshare

chmod 0711 "$VT_TMP"
pool=$(vt_make_pool btrfs)/pool
# The GitLab recipe's volmgr.conf: its seed rules name the caches.
VT_DAEMON_CONFIG=$VT_SRCDIR/../helpers/gitlab-runner/volmgr.conf vt_start_daemon "$pool"
vt_assert_eq 666 "$(stat -c %a "$VT_JOB_SOCK")" "the job socket's mode"
vt_assert_eq 600 "$(stat -c %a "$VT_CONTROL_SOCK")" "the control socket's mode"

job=runner-abcd1234-project-7-concurrent-0-0123456789abcdef-cache-c33bcaa1fd2c77edfc3893b41966cea8
out=$(curl -sS --unix-socket "$VT_PLUGIN_SOCK" -X POST http://plugin/VolumeDriver.Create -d "{\"Name\":\"$job\"}")
vt_assert_eq '{"Err":""}' "$out" "Create"
top=$pool/volumes/$job
git -c init.defaultBranch=main init -q "$top/group/project"
git -C "$top/group/project" -c user.name=t -c user.email=t@example.org commit -q --allow-empty -m one
chown -R 65534:65534 "$top"
mkdir -m 0755 "$VT_TMP/builds"

# as_job_on TOP CMD...: CMD as uid 65534, with the volume's top TOP at
# $VT_TMP/builds (a bind mount in a mount namespace of its own) and
# VOLMGR_SOCKET the job socket; prints what CMD prints, returns its status.
as_job_on() {
	unshare -m --propagation private sh -c 'mount --bind "$1" "$2" && shift 2 && exec "$@"' sh \
		"$1" "$VT_TMP/builds" \
		env VOLMGR_SOCKET="$VT_JOB_SOCK" setpriv --reuid=65534 --regid=65534 --clear-groups -- "${@:2}"
}
as_job() { as_job_on "$top" "$@"; }
# as_local_user CMD...: CMD as uid 65534 on the host's own mounts.
as_local_user() {
	env VOLMGR_SOCKET="$VT_JOB_SOCK" setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"
}

vt_step "a job of any uid: which, with where its container has the volume's top"
out=$(as_job "$VOLMGR" which --mount "$VT_TMP/builds/group/project")
vt_assert_eq "$job $VT_TMP/builds" "$out" "which --mount on the job socket as uid 65534"
out=$(as_job "$VOLMGR" --socket "$VT_CONTROL_SOCK" which "$VT_TMP/builds" 2>&1) &&
	vt_fail "uid 65534 reached the control socket"
vt_assert_contains "$out" "$VT_CONTROL_SOCK" "the control socket stays root's"

vt_step "nothing that names a volume or a cache"
for cmd in "ls" "inspect $job" "rm $job" "create evil" "cache ls" "cache rm project-7" "gc" "status" "metrics"; do
	# shellcheck disable=SC2086 # the words of the command
	out=$(as_job "$VOLMGR" $cmd 2>&1) && vt_fail "'$cmd' answered on the job socket"
	vt_assert_contains "$out" "is not offered on the job socket" "'volmgr $cmd'"
done
# root in a container is no different there
out=$(VOLMGR_SOCKET=$VT_JOB_SOCK "$VOLMGR" cache import evil "$VT_TMP/builds" 2>&1) &&
	vt_fail "cache import answered on the job socket"
vt_assert_contains "$out" "is not offered on the job socket" "root's cache import"
vt_assert_status 0 env VOLMGR_SOCKET="$VT_JOB_SOCK" "$VOLMGR" --socket "$VT_JOB_SOCK" which "$top"

vt_step "promote, by a job of any uid: only into the cache the volume's seed rule named"
out=$(as_job "$VOLMGR" cache promote "$VT_TMP/builds/group/project" project-8 2>&1) &&
	vt_fail "a job promoted into another project's cache"
vt_assert_contains "$out" "only into the cache its seed rule named" "another cache"
# A local user of the host cannot pass volumes/ (0700); where someone
# loosened it (or hands such an fd over), the user reaches the 0777 build
# volume through the pool's path: that fd is on the pool's mount, not on
# a mount of the volume's top, and counts for nothing (SECURITY.md, "The
# job socket").
vt_assert_status 1 as_local_user test -x "$pool/volumes"
chmod 0711 "$pool/volumes"
vt_assert_status 0 as_local_user test -w "$top/group/project"
out=$(as_local_user "$VOLMGR" cache promote "$top/group/project" 2>&1) &&
	vt_fail "a local user promoted a job's volume through the pool's path"
vt_assert_contains "$out" "only a directory on the caller's own mount of volume $job's top" \
	"a local user through the pool's path"
out=$(VOLMGR_SOCKET=$VT_JOB_SOCK "$VOLMGR" cache promote "$top/group/project" 2>&1) &&
	vt_fail "root promoted through the pool's path on the job socket"
vt_assert_contains "$out" "one reached through the pool's path" "root through the pool's path"
# ...nor through a bind mount of the volume's top in a mount namespace of
# the user's own (an unprivileged user namespace: the outside review's
# finding 5).
mkdir -m 0777 "$VT_TMP/mine"
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups -- unshare -Urm sh -c \
	'mount --bind "$1" "$2" && VOLMGR_SOCKET="$3" exec "$4" cache promote "$2/group/project"' sh \
	"$top" "$VT_TMP/mine" "$VT_JOB_SOCK" "$VOLMGR" 2>&1) &&
	vt_fail "a local user's own mount namespace counted as a job container's"
vt_assert_contains "$out" "belongs to a user namespace of uid 65534" "a user namespace's bind mount of the volume's top"
chmod 0700 "$pool/volumes"
# ...and a subdirectory of the volume mounted alone is not its top.
out=$(as_job_on "$top/group" "$VOLMGR" cache promote "$VT_TMP/builds/project" 2>&1) &&
	vt_fail "a mount of a subdirectory of the volume counted as its top"
vt_assert_contains "$out" "own mount of volume $job's top" "a subdirectory's mount"
vt_assert_status 4 "$VOLMGR" cache inspect project-7
out=$(as_job "$VOLMGR" cache promote "$VT_TMP/builds/group/project")
vt_assert_contains "$out" "cache project-7: generation 1 is volume $job" "its own cache"
"$VOLMGR" create plain >/dev/null
out=$(as_job_on "$pool/volumes/plain" "$VOLMGR" cache promote "$VT_TMP/builds" scratch 2>&1) &&
	vt_fail "a volume no seed rule made was promoted on the job socket"
vt_assert_contains "$out" "made by no seed rule" "a volume without a seed rule"
vt_assert_status 4 "$VOLMGR" cache inspect scratch

"$VOLMGR" rm "$job" plain >/dev/null
"$VOLMGR" cache rm project-7 >/dev/null
vt_check_pool_consistent
