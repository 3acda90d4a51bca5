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
if VOLMGR_VOLUME=$(volmgr which --mount "${CI_BUILDS_DIR:-/builds}"); then
	VOLMGR_VOLUME_PATH=${VOLMGR_VOLUME#* }
	VOLMGR_VOLUME=${VOLMGR_VOLUME%% *}
	export VOLMGR_VOLUME VOLMGR_VOLUME_PATH
	echo "volmgr: this job's workspace is the volume $VOLMGR_VOLUME, mounted at $VOLMGR_VOLUME_PATH"
else
	echo "volmgr: ${CI_BUILDS_DIR:-/builds} is not a volmgr volume (is volume_driver = \"volmgr\" set, and the control socket mounted?)" >&2
	false
fi
