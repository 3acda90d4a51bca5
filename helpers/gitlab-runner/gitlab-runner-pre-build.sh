# volmgr's pre_build_script hook for gitlab-runner's docker executor.
# Sourced (". /opt/volmgr/gitlab-runner-pre-build.sh") into the job's shell
# before its script, so what it exports is the script's.  POSIX sh: it runs
# in any job image.
#
#   VOLMGR_VOLUME       this job's volume (the runner's build volume)
#   VOLMGR_VOLUME_PATH  where its top is mounted: $CI_BUILDS_DIR
#
# Job scripts then start containers on the same workspace, at the same
# path:  docker run -v "$VOLMGR_VOLUME:$VOLMGR_VOLUME_PATH" -w "$CI_PROJECT_DIR" IMAGE ...
# or simply:  volmgr-run IMAGE ...
PATH="/opt/volmgr/bin:$PATH"
export PATH
volmgr_sock=${VOLMGR_SOCKET:-/run/volmgr/job.sock}
if [ ! -S "$volmgr_sock" ]; then
	echo "volmgr: no volmgr socket at $volmgr_sock in this container: add \"/run/volmgr/job.sock:/run/volmgr/job.sock\" to [runners.docker] volumes in the runner's config.toml" >&2
	false
elif VOLMGR_VOLUME=$(volmgr which --mount "${CI_BUILDS_DIR:-/builds}" 2>&1); then
	VOLMGR_VOLUME_PATH=${VOLMGR_VOLUME#* }
	VOLMGR_VOLUME=${VOLMGR_VOLUME%% *}
	export VOLMGR_VOLUME VOLMGR_VOLUME_PATH
	# after_script is a shell of its own: the runner loads $GITLAB_ENV
	# into it (and into later stages), so the variables reach it too.
	if [ -n "${GITLAB_ENV:-}" ]; then
		printf 'VOLMGR_VOLUME=%s\nVOLMGR_VOLUME_PATH=%s\n' "$VOLMGR_VOLUME" "$VOLMGR_VOLUME_PATH" >>"$GITLAB_ENV"
	fi
	echo "volmgr: this job's workspace is the volume $VOLMGR_VOLUME, mounted at $VOLMGR_VOLUME_PATH"
	# GIT_STRATEGY=none leaves the seeded tree as it is: the project's
	# cached checkout, of whatever commit the cache last got.
	if [ "${GIT_STRATEGY:-}" = none ] && [ -n "${CI_COMMIT_SHA:-}" ] && [ -d "${CI_PROJECT_DIR:-}/.git" ]; then
		volmgr_head=$(git -c safe.directory='*' -C "$CI_PROJECT_DIR" rev-parse -q --verify HEAD 2>/dev/null || true)
		if [ -n "$volmgr_head" ] && [ "$volmgr_head" != "$CI_COMMIT_SHA" ]; then
			echo "volmgr: note: GIT_STRATEGY=none: $CI_PROJECT_DIR is the project's cached checkout at commit $volmgr_head, not this job's commit $CI_COMMIT_SHA" >&2
		fi
		unset volmgr_head
	fi
	# A docker-in-docker service runs an engine of its own, without the
	# volmgr plugin: a volume named there is an empty one of that engine.
	case ${DOCKER_HOST:-} in
	tcp://*)
		echo "volmgr: warning: DOCKER_HOST is $DOCKER_HOST, a docker-in-docker service: its engine has no volmgr plugin, so \"docker run -v \$VOLMGR_VOLUME:...\" there mounts an empty volume of its own, not this workspace; use the runner host's engine (/var/run/docker.sock) for containers that need the workspace" >&2 ;;
	esac
else
	why=$VOLMGR_VOLUME
	unset VOLMGR_VOLUME
	case $why in
	*"not on a volmgr volume"*)
		echo "volmgr: ${CI_BUILDS_DIR:-/builds} is not a volmgr volume: set volume_driver = \"volmgr\" in [runners.docker] of the runner's config.toml (gitlab-runner 16.9 or later)" >&2 ;;
	*)
		echo "volmgr: cannot tell which volume ${CI_BUILDS_DIR:-/builds} is: $why" >&2 ;;
	esac
	false
fi
