#!/usr/bin/env bash
# The volmgr demo: a CI job container and the container it starts itself
# mount the same per-job workspace at the same path, /builds/group/project.
#
# It makes a loop-backed btrfs pool in a file (no spare disk needed),
# starts volmgrd as the "volmgr" volume plugin and volmgr-engined in front
# of docker (the job's engine socket), and walks through the nested
# same-path scenario -- the unchanged `docker run -v "$(pwd):/workspace"`
# of a laptop included -- timing every step.  Everything it makes is
# removed at the end (pass --keep to leave the daemons and pool running).
# Needs: a built tree (./build), a running docker engine, root.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

keep=false
[[ ${1:-} == --keep ]] && keep=true
VOLMGRD=${VOLMGRD:-$PWD/build/volmgr/daemon/volmgrd}
VOLMGR=${VOLMGR:-$PWD/build/volmgr/cli/volmgr}
VOLMGR_ENGINED=${VOLMGR_ENGINED:-$PWD/build/volmgr/engined/volmgr-engined}
demo=${VOLMGR_DEMO_DIR:-/var/lib/volmgr-demo}
pool_mnt=$demo/mnt
pool=$pool_mnt/pool
plugin_sock=/run/docker/plugins/volmgr.sock
control_sock=/run/volmgr/control.sock
engine_sock=/run/volmgr/engine.sock
engined_state=/run/volmgr/engined-demo
export VOLMGR_SOCKET=$control_sock

n=0
bold() { printf '\033[1m%s\033[0m' "$*"; }
now_ns() { date +%s%N; }
# step "TEXT" CMD... : print the step and its command, run it, show its time.
step() {
	local text=$1 t0 t1
	shift
	n=$((n + 1))
	printf '\n%s %s\n' "$(bold "[$n]")" "$text"
	printf '    $ %s\n' "$*"
	t0=$(now_ns)
	# Run in this shell (not in a pipeline) so that a step can set the
	# variables the cleanup needs; show its output afterwards.
	local status=0
	"$@" >"$demo/step.out" 2>&1 || status=$?
	t1=$(now_ns)
	sed 's/^/      /' "$demo/step.out"
	if ((status != 0)); then
		printf '    step failed with exit status %d\n' "$status"
		exit "$status"
	fi
	printf '    %s\n' "$(bold "($(( (t1 - t0) / 1000000 )) ms)")"
}

loopdev= daemon_pid= engined_pid= job= images=()
cleanup() {
	set +e
	$keep && { echo; echo "Left running (--keep): volmgrd pid $daemon_pid, volmgr-engined pid $engined_pid, pool $pool"; return; }
	echo
	bold "cleaning up"; echo
	[[ -n $job ]] && docker rm -f "$job" >/dev/null 2>&1
	if [[ -n $engined_pid ]]; then
		kill -TERM "$engined_pid"
		wait "$engined_pid" 2>/dev/null
		rm -f "$engine_sock"
		# what a job made and the demo did not see removed (an error midway)
		local m
		for m in "$engined_state"/pins/*; do
			[[ -e $m ]] && umount -l "$m"
		done
		rm -rf "$engined_state"
	fi
	docker volume rm -f ci-1 >/dev/null 2>&1
	((${#images[@]})) && docker image rm -f "${images[@]}" >/dev/null 2>&1
	if [[ -n $daemon_pid ]]; then
		kill -TERM "$daemon_pid"
		wait "$daemon_pid" 2>/dev/null
		rm -f "$plugin_sock" "$control_sock"
	fi
	mountpoint -q "$pool_mnt" && umount "$pool_mnt"
	[[ -n $loopdev ]] && losetup -d "$loopdev"
	# Never delete through a pool that is still mounted.
	if mountpoint -q "$pool_mnt"; then
		echo "demo: $pool_mnt is still mounted; left $demo in place" >&2
	else
		rm -rf "$demo"
	fi
}
trap cleanup EXIT

[[ $(id -u) == 0 ]] || { echo "demo: run as root" >&2; exit 1; }
[[ -x $VOLMGRD && -x $VOLMGR && -x $VOLMGR_ENGINED ]] || { echo "demo: build first (ninja -C build)" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "demo: no docker engine answers" >&2; exit 1; }
[[ ! -e $demo ]] || { echo "demo: $demo exists (an earlier demo with --keep?)" >&2; trap - EXIT; exit 1; }
mkdir -p "$demo"

make_pool() {
	mkdir -p "$pool_mnt"
	truncate -s 4G "$demo/pool.img"
	loopdev=$(losetup --find --show "$demo/pool.img")
	mkfs.btrfs -q "$loopdev" >/dev/null
	mount "$loopdev" "$pool_mnt"
	echo "btrfs on $loopdev ($demo/pool.img, 4 GiB sparse) at $pool_mnt"
}

start_daemon() {
	"$VOLMGRD" --pool "$pool" --plugin-socket "$plugin_sock" \
		--control-socket "$control_sock" >"$demo/volmgrd.log" 2>&1 &
	daemon_pid=$!
	for _ in $(seq 100); do
		"$VOLMGR" status >/dev/null 2>&1 && { tail -n 2 "$demo/volmgrd.log"; return; }
		kill -0 "$daemon_pid" 2>/dev/null || { cat "$demo/volmgrd.log"; exit 1; }
		sleep 0.05
	done
	echo "volmgrd did not become ready" >&2
	exit 1
}

start_engined() {
	"$VOLMGR_ENGINED" --socket "$engine_sock" --upstream /var/run/docker.sock \
		--control-socket "$control_sock" --state-dir "$engined_state" \
		--sweep-interval 1000 >"$demo/engined.log" 2>&1 &
	engined_pid=$!
	for _ in $(seq 100); do
		[[ -S $engine_sock ]] && { tail -n 1 "$demo/engined.log"; return; }
		kill -0 "$engined_pid" 2>/dev/null || { cat "$demo/engined.log"; exit 1; }
		sleep 0.05
	done
	echo "volmgr-engined did not become ready" >&2
	exit 1
}

# Images are built locally from busybox-static: no registry needed.  The
# job image also carries a docker client, as a CI job image would.
make_rootfs() {
	local root=$1 bin lib
	shift
	mkdir -p "$root"/{bin,usr/bin,etc,root,tmp}
	install -m 0755 /bin/busybox "$root/bin/busybox"
	for a in $(/bin/busybox --list); do [[ -e $root/bin/$a ]] || ln -s busybox "$root/bin/$a"; done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
	echo 'root:x:0:' >"$root/etc/group"
	for bin; do
		install -D -m 0755 "$bin" "$root/usr/bin/${bin##*/}"
		for lib in $(ldd "$bin" 2>/dev/null | grep -o '/[^ ]*' || true); do
			[[ -e $root$lib ]] || install -D -m 0755 "$lib" "$root$lib"
		done
	done
}
build_images() {
	local client=/usr/bin/docker
	[[ -x /usr/local/bin/docker ]] && client=/usr/local/bin/docker
	make_rootfs "$demo/rootfs-tool"
	make_rootfs "$demo/rootfs-job" "$client"
	images+=("$(tar -C "$demo/rootfs-tool" -c . | docker import -c 'CMD ["/bin/sh"]' - volmgr-demo-tool:latest)")
	images+=("$(tar -C "$demo/rootfs-job" -c . | docker import -c 'ENV PATH=/usr/bin:/bin' -c 'CMD ["/bin/sh"]' - volmgr-demo-job:latest)")
	docker image ls --format '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}' | grep volmgr-demo
}

make_checkout() {
	local src=$demo/checkout
	mkdir -p "$src/src"
	git -C "$src" init -q
	printf 'fn main() {\n    println!("hello");\n}\n' >"$src/src/main.rs"
	printf '#!/bin/sh\n# the lint step a developer also runs locally\ngrep -q hello src/main.rs\n' >"$src/lint.sh"
	chmod +x "$src/lint.sh"
	git -C "$src" add -A
	git -C "$src" -c user.name=demo -c user.email=demo@example.org commit -qm init
	echo "a git checkout with $(git -C "$src" ls-files | wc -l) files at $src"
}

echo "$(bold 'volmgr demo'): one workspace, the same path in a CI job container and in the container it starts"
step "Make a loop-backed btrfs pool in a file" make_pool
step "Start volmgrd (plugin socket $plugin_sock, control socket $control_sock)" start_daemon
step "Start volmgr-engined: the jobs' engine socket $engine_sock, in front of docker" start_engined
step "Build two local images from busybox-static: a job image with a docker client, a tool image" build_images
step "Prepare a project checkout" make_checkout
step "Keep it as the cache 'proj' in the pool (done once, reused by every job)" \
	"$VOLMGR" cache import proj "$demo/checkout"
step "The runner creates the job's workspace: a btrfs snapshot of the cache" \
	docker volume create -d volmgr -o source=cache:proj ci-1
start_job() {
	job=$(docker run -d --network none -v ci-1:/builds/group/project -w /builds/group/project \
		-v "$engine_sock:/var/run/docker.sock" volmgr-demo-job:latest sleep 600) || return
	echo "job container ${job:0:12}"
}
step "Start the job container: the workspace at /builds/group/project, volmgr's engine socket at /var/run/docker.sock" start_job
step "Inside the job, the laptop's command unchanged: docker run -v \"\$(pwd):/workspace\" -w /workspace" \
	docker exec "$job" sh -c 'docker run --rm --network none -v "$(pwd):/workspace" -w /workspace \
		volmgr-demo-tool:latest sh -c "./lint.sh && echo lint ok in \$(pwd) && echo x > out"'
step "Or by the volume's name, at the same path: docker run -v ci-1:\$PWD -w \$PWD" \
	docker exec "$job" docker run --rm --network none -v ci-1:/builds/group/project \
	-w /builds/group/project volmgr-demo-tool:latest sh -c 'echo "the same files in $(pwd):" && ls'
step "The job container sees what the nested container wrote" \
	docker exec "$job" sh -c 'ls -l /builds/group/project/out && cat /builds/group/project/out'
refuse_root() {
	local out
	if out=$(docker exec "$job" docker run --rm --network none -v /:/host volmgr-demo-tool:latest true 2>&1); then
		echo "the job's / was NOT refused"
		return 1
	fi
	printf '%s\n' "$out" | head -n 1
}
step "The job shares only its workspace: a bind of its own / is refused, with the reason" refuse_root
step "The cache is untouched (no 'out' in it)" \
	sh -c "ls '$pool/caches/proj'; test ! -e '$pool/caches/proj/out' && echo 'cache has no out'"
step "volmgr sees the volume the engine made, in use by the job" "$VOLMGR" ls
step "volmgr refuses to remove a volume in use" sh -c "'$VOLMGR' rm ci-1 || echo \"(exit status \$?)\""
step "The job ends" docker rm -f "$job"
job=
step "The runner removes the workspace: the subvolume is deleted" \
	sh -c "docker volume rm ci-1 && ! btrfs subvolume list '$pool_mnt' | grep volumes/ci-1 && echo 'no subvolume volumes/ci-1 left'"
