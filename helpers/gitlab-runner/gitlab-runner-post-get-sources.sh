# volmgr's post_get_sources_script hook for gitlab-runner's docker executor.
# The runner runs it in the helper container, in the project directory,
# right after its own fetch and checkout, before the job's script
# ("sh /opt/volmgr/gitlab-runner-post-get-sources.sh"): the job's volume
# becomes the project's cache, so that the next job of the project, seeded
# from it, fetches only what is new.  A volume of a protected ref feeds
# only the protected cache, and an older commit than the cache holds
# changes nothing (volmgr decides both).  A failure here never fails the
# job: the cache just stays as it was.  POSIX sh: any helper image.
#
# Set VOLMGR_PROMOTE=false in a job's variables to skip it.
PATH="/opt/volmgr/bin:$PATH"
if [ "${VOLMGR_PROMOTE:-true}" = true ]; then
	if [ -n "${CI_COMMIT_TIMESTAMP:-}" ]; then
		set -- --commit-time "$CI_COMMIT_TIMESTAMP"
	else
		set --
	fi
	volmgr cache promote "${CI_PROJECT_DIR:-.}" --commit "$CI_COMMIT_SHA" "$@" ||
		echo "volmgr: the project's cache was not refreshed from this job (see the message above); the job goes on" >&2
fi
