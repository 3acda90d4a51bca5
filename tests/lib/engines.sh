# shellcheck shell=bash
# Container engines for volmgr's end-to-end tests: a private dockerd (or
# the running engine, with VT_DOCKER=running), a private rootful podman API
# service, and tiny busybox images built locally (no registry is
# reachable).  Source common.sh first.
#
# Helpers that take an ENGINE argument accept `docker` or `vt_podman`, so a
# cleanup registered with vt_on_exit names its engine explicitly.
#
# Each private engine runs in a network namespace of its own (vt__exec_netns):
# whatever it does to links, addresses, routes, firewall rules or network
# sysctls happens there, never on the host.  (A dockerd started with
# --bridge=none deletes the link named docker0 in its namespace, moby
# daemon/daemon_unix.go removeDefaultBridgeInterface: on the host, that is
# the running Docker's bridge.)  Containers run with --network none
# as before; the engines' sockets are files, reachable from any namespace.

# Image config for imported root file systems (`docker import` sets none).
VT_IMPORT_CHANGES=(-c 'ENV PATH=/usr/bin:/bin' -c 'CMD ["/bin/sh"]')

# ------------------------------------------------------------ root fs/images

vt__static_busybox() {
	local bb
	bb=$(command -v busybox) || vt_skip "needs busybox-static"
	# ldd fails on a static binary: that is what we want here.
	if ldd "$bb" >/dev/null 2>&1; then
		vt_skip "$bb is dynamically linked: needs busybox-static"
	fi
	printf '%s\n' "$bb"
}

# Shared libraries of BINARY (with the dynamic loader), one path a line.
vt__libs() {
	{ ldd "$1" 2>/dev/null || true; } | { grep -o '/[^ ]*' || true; }
}

# Copy BINARY into ROOT/usr/bin along with the libraries it loads, at the
# same paths as on the host (the loader searches them by default).
vt__copy_binary() {
	local bin=$1 root=$2 lib
	[[ -x $bin ]] || vt_fail "vt_rootfs: no executable $bin"
	install -D -m 0755 "$bin" "$root/usr/bin/${bin##*/}"
	for lib in $(vt__libs "$bin"); do
		# install follows symlinks, so libfoo.so.1 -> libfoo.so.1.2 is copied as a file.
		[[ -e $root$lib ]] || install -D -m 0755 "$lib" "$root$lib"
	done
}

# vt_rootfs DIR [BINARY...] — a minimal root file system: static busybox
# with its applets in /bin, the users and directories that clients like
# `podman --remote` look up, and each BINARY in /usr/bin with its libraries.
vt_rootfs() {
	local root=$1 bb applet bin
	shift
	bb=$(vt__static_busybox)
	mkdir -p "$root"/{bin,usr/bin,etc,root,tmp,run,var/run,dev,proc,sys}
	chmod 1777 "$root/tmp"
	chmod 0700 "$root/root"
	install -m 0755 "$bb" "$root/bin/busybox"
	for applet in $("$bb" --list); do
		[[ -e $root/bin/$applet ]] || ln -s busybox "$root/bin/$applet"
	done
	printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
		'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$root/etc/passwd"
	printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$root/etc/group"
	for bin; do
		vt__copy_binary "$bin" "$root"
	done
}

# A fresh directory for a root fs and a unique, lowercase image name for it.
vt__new_rootfs() {
	mktemp -d "$VT_TMP/rootfs.XXXXXX"
}
vt__image_name() {
	local name="vt-$VT_ID-${1##*.}"
	printf '%s\n' "${name,,}"
}

# The docker client to put into job images: VT_DOCKER_CLIENT, else the
# static one if present, else Debian's (copied with its libraries).
vt_docker_client() {
	if [[ -n ${VT_DOCKER_CLIENT:-} ]]; then
		printf '%s\n' "$VT_DOCKER_CLIENT"
	elif [[ -x /usr/local/bin/docker ]]; then
		printf '%s\n' /usr/local/bin/docker
	elif [[ -x /usr/bin/docker ]]; then
		printf '%s\n' /usr/bin/docker
	else
		vt_skip "needs a docker client"
	fi
}

vt_podman_client() {
	command -v podman || vt_skip "needs podman"
}

# ---------------------------------------------- engine-neutral object removal
# Each removes one object by its exact name or id, and is quiet when the
# object is already gone (the test may have removed it on purpose).

vt_rm_container() {
	local engine=$1 id=$2
	"$engine" container inspect "$id" >/dev/null 2>&1 || return 0
	"$engine" rm -f "$id" >/dev/null
}

vt_rm_image() {
	local engine=$1 id=$2
	"$engine" image inspect "$id" >/dev/null 2>&1 || return 0
	"$engine" image rm -f "$id" >/dev/null
}

# Volumes are tracked rather than probed: docker answers `volume ls`, and
# any lookup of a name it does not hold, by asking every volume plugin it
# has ever seen, and a plugin whose socket is gone (another test's, a
# crashed daemon's) costs 15-60 s of retries.  So a test says which volumes
# it created and which it removed, and the cleanup only touches the rest.

vt__volume_mark() { printf '%s/.vol-%s-%s' "$VT_TMP" "$1" "$2"; }

# vt_track_volume ENGINE NAME — NAME was created through ENGINE: remove it
# at exit unless the test did (vt_rm_volume, vt_untrack_volume).
vt_track_volume() {
	vt_on_exit vt__volume_cleanup "$1" "$2"
}

vt_untrack_volume() {
	: >"$(vt__volume_mark "$1" "$2")"
}

# vt_rm_volume ENGINE NAME — remove a tracked volume through ENGINE.
vt_rm_volume() {
	"$1" volume rm "$2" >/dev/null
	vt_untrack_volume "$1" "$2"
}

vt__volume_cleanup() {
	local engine=$1 name=$2
	[[ -e $(vt__volume_mark "$engine" "$name") ]] && return 0
	"$engine" volume rm -f "$name" >/dev/null
}

# --------------------------------------------------------------------- docker

# Host path of the unix socket DOCKER_HOST (or the default) points at.
vt__docker_socket_path() {
	local host=${DOCKER_HOST:-unix:///var/run/docker.sock}
	[[ $host == unix://* ]] && printf '%s\n' "${host#unix://}"
}

# vt_docker_ensure — make `docker` reach an engine and set VT_DOCKER_SOCK
# (host path of its socket, to mount into job containers).
#
# By default every test starts its own private dockerd in VT_TMP, stopped
# (by pid) at exit.  VT_DOCKER=running uses the engine that DOCKER_HOST (or
# the default socket) reaches instead, falling back to a private one.  Not
# the default because docker never forgets a volume plugin it has used:
# once a test's plugin socket is gone, every later `docker volume ls` on
# that engine retries it for 15 s and every lookup of an unknown volume
# name for 60 s, until that dockerd restarts (measured with 20.10).
vt_docker_ensure() {
	local sock
	vt_require_cmd docker
	if [[ ${VT_DOCKER:-private} == running ]]; then
		sock=$(vt__docker_socket_path) || sock=
		if [[ -n $sock && -S $sock ]] &&
			timeout 20 docker -H "unix://$sock" version >/dev/null 2>&1; then
			VT_DOCKER_SOCK=$sock
			export VT_DOCKER_SOCK DOCKER_HOST=unix://$sock
			vt_log "docker: using the running engine at $sock"
			return 0
		fi
		vt_log "docker: no running engine reachable, starting a private one"
	fi
	vt__docker_start_private
}

vt__docker_start_private() {
	local d=$VT_TMP/docker
	vt_require_root
	vt_require_cmd dockerd containerd runc unshare ip
	mkdir -p "$d"
	# Our own (empty) daemon.json, so that the host's cannot add listeners.
	echo '{}' >"$d/daemon.json"
	VT_DOCKER_SOCK=$VT_TMP/docker.sock
	vt_log_file "$d/dockerd.log"
	# Its own network namespace (see the top of this file), and in it no
	# bridge, no iptables, no sysctls: containers run with --network none.
	# Own containerd namespaces in case dockerd attaches to a shared
	# containerd (it uses /run/containerd/containerd.sock whenever that
	# file exists: moby cmd/dockerd/daemon.go, systemContainerdRunning);
	# that containerd's shims stay in the host's network namespace, but a
	# container's network namespace is a new one that dockerd makes.
	vt__exec_netns dockerd --config-file "$d/daemon.json" --data-root "$d/root" \
		--exec-root "$d/run" --pidfile "$d/dockerd.pid" \
		-H "unix://$VT_DOCKER_SOCK" --bridge=none --iptables=false \
		--ip-forward=false --ip-masq=false \
		--containerd-namespace "vt-$VT_ID" \
		--containerd-plugins-namespace "vt-$VT_ID-plugins" \
		>"$d/dockerd.log" 2>&1 &
	VT_DOCKERD_PID=$!
	vt_on_exit vt__docker_stop_private "$VT_DOCKERD_PID" "$d"
	export DOCKER_HOST=unix://$VT_DOCKER_SOCK VT_DOCKER_SOCK VT_DOCKERD_PID
	vt_wait_until -p "$VT_DOCKERD_PID" "the private dockerd answers" vt__docker_answers
	vt_log "docker: private dockerd (pid $VT_DOCKERD_PID) at $VT_DOCKER_SOCK"
	vt__assert_own_netns "$VT_DOCKERD_PID" "private dockerd"
}

vt__docker_answers() { docker version >/dev/null 2>&1; }

# vt__exec_netns CMD... — exec CMD in a new network namespace with only
# the loopback link, up.  Run it in the background (`vt__exec_netns CMD &`):
# unshare(1) and sh exec, so $! is CMD's pid.  The namespace has no name
# and no mount: the kernel frees it when the last process in it exits (CMD
# and what CMD starts: containerd and its shims, conmon), so stopping the
# engine by its pid is all the cleanup it needs.
# Anything that needs host networking (a published port, --network host)
# does not work in it: the tests run containers with --network none.
vt__exec_netns() {
	exec unshare --net -- sh -c 'ip link set lo up && exec "$@"' vt-netns "$@"
}

# vt__assert_own_netns PID WHAT — PID (an engine) runs in a network
# namespace other than this test's.
vt__assert_own_netns() {
	local ns mine
	ns=$(readlink "/proc/$1/ns/net") || vt_fail "$2 (pid $1) is gone"
	mine=$(readlink /proc/self/ns/net)
	[[ $ns != "$mine" ]] ||
		vt_fail "$2 (pid $1) runs in this test's network namespace ($mine)"
	vt_log "$2 (pid $1): network namespace $ns (the test's: $mine)"
}

# vt__stop_pid PID SECONDS — SIGTERM our child PID, SIGKILL it after SECONDS.
vt__stop_pid() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
	kill -TERM "$pid"
	for ((i = 0; i < $2 * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
	wait "$pid" 2>/dev/null || true
}

vt__docker_stop_private() {
	local pid=$1 d=$2 cpid
	local -a ids
	if kill -0 "$pid" 2>/dev/null; then
		# A private engine holds only this test's containers.
		mapfile -t ids < <(docker ps -aq)
		((${#ids[@]} == 0)) || docker rm -f "${ids[@]}" >/dev/null
		vt__stop_pid "$pid" 30
	fi
	# dockerd stops the containerd it started, unless it was killed.
	cpid=$(cat "$d/run/containerd/containerd.pid" 2>/dev/null) || cpid=
	if [[ -n $cpid ]] && kill -0 "$cpid" 2>/dev/null &&
		grep -qF "$d/run" "/proc/$cpid/cmdline" 2>/dev/null; then
		kill -TERM "$cpid"
	fi
	vt__umount_under "$d"
	rm -rf "$d" "$VT_DOCKER_SOCK"
}

# vt_docker_image [BINARY...] — import vt_rootfs as a uniquely named image,
# removed at exit; echoes its id.
vt_docker_image() {
	local root name id
	root=$(vt__new_rootfs)
	vt_rootfs "$root" "$@"
	name=$(vt__image_name "$root")
	id=$(tar -C "$root" -c . | docker import "${VT_IMPORT_CHANGES[@]}" - "$name")
	vt_on_exit vt_rm_image docker "$id"
	vt_log "docker image $name ($id)" >&2
	printf '%s\n' "$id"
}

# --------------------------------------------------------------------- podman

# `podman` talking to this test's private API service.
vt_podman() {
	podman --remote --url "unix://$VT_PODMAN_SOCK" "$@"
}

vt__podman_conf() {
	local p=$1 driver=$2 plugin_sock=$3
	# runc: crun fails on this kind of host (hybrid cgroups).  File locks
	# and a private tmp_dir: the default SHM locks (/dev/shm/libpod_lock)
	# are shared by every podman on the host, and a podman with a fresh
	# tmp_dir "refreshes" them, which would free another instance's locks.
	# exit_command_delay: the conmon of an exec session otherwise stays for
	# 300 s after the session, outliving the test.
	cat >"$p/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$p/events.log"
lock_type = "file"
exit_command_delay = 2
tmp_dir = "$p/tmp"
static_dir = "$p/root/libpod"
volume_path = "$p/root/volumes"

[network]
network_config_dir = "$p/net"

[engine.volume_plugins]
$driver = "$plugin_sock"
EOF
	cat >"$p/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$p/root"
runroot = "$p/run"
EOF
}

# vt_podman_ensure DRIVER PLUGIN_SOCKET — a private rootful podman API
# service at $VT_PODMAN_SOCK with its own storage and config, which knows
# the volume plugin DRIVER.  Use it through vt_podman.
vt_podman_ensure() {
	local driver=${1:?vt_podman_ensure DRIVER SOCKET} plugin_sock=${2:?} p=$VT_TMP/podman
	vt_require_root
	vt_require_cmd podman runc conmon unshare ip
	mkdir -p "$p/tmp" "$p/net"
	vt__podman_conf "$p" "$driver" "$plugin_sock"
	# Exported: `podman container cleanup`, which conmon runs when a
	# container exits, inherits CONTAINERS_CONF and so finds the plugin
	# (storage paths reach it as arguments).
	export CONTAINERS_CONF=$p/containers.conf
	export CONTAINERS_STORAGE_CONF=$p/storage.conf
	VT_PODMAN_SOCK=$VT_TMP/podman.sock
	vt_log_file "$p/podman.log"
	# In a network namespace of its own like dockerd: conmon and `podman
	# container cleanup` are its children and stay in it.  (Containers
	# on a bridge network would have netavark make podman0 and firewall
	# rules there.)
	vt__exec_netns podman --log-level=info system service --time=0 "unix://$VT_PODMAN_SOCK" \
		>"$p/podman.log" 2>&1 &
	VT_PODMAN_PID=$!
	export VT_PODMAN_SOCK VT_PODMAN_PID
	vt_on_exit vt__podman_stop "$VT_PODMAN_PID" "$p"
	vt_wait_until -p "$VT_PODMAN_PID" "the private podman service answers" vt__podman_answers
	vt_log "podman: private service (pid $VT_PODMAN_PID) at $VT_PODMAN_SOCK"
	vt__assert_own_netns "$VT_PODMAN_PID" "podman service"
}

vt__podman_answers() { [[ -S $VT_PODMAN_SOCK ]] && vt_podman version >/dev/null 2>&1; }

# The pids of processes whose command line holds PATH (a test's own unique
# directory), this shell excepted; read with builtins only, so no helper
# process of ours is counted.
vt__pids_mentioning() {
	local f pid
	local -a args
	for f in /proc/[0-9]*/cmdline; do
		pid=${f#/proc/}
		pid=${pid%/cmdline}
		[[ $pid != "$BASHPID" ]] || continue
		mapfile -d '' args 2>/dev/null <"$f" || continue
		[[ ${args[*]} != *"$1"* ]] || printf '%s\n' "$pid"
	done
	return 0
}

vt__podman_stop() {
	local pid=$1 p=$2 i
	if kill -0 "$pid" 2>/dev/null; then
		# The private service holds only this test's containers.
		vt_podman rm -af -t 0 >/dev/null || true
		vt__stop_pid "$pid" 15
	fi
	# conmon and the `podman container cleanup` it starts outlive the
	# service for a moment and may mount the storage again after we
	# unmounted it (seen once on CI: rm then met a busy overlay).  Wait
	# for every process started with this root (60 s at most: a cleanup,
	# which must not fail the test, so no vt_wait_until), and unmount
	# again if rm still meets a mount.
	for ((i = 0; i < 300; i++)); do
		[[ -n $(vt__pids_mentioning "$p") ]] || break
		sleep 0.2
	done
	for ((i = 1; i < 3; i++)); do
		vt__umount_under "$p"
		rm -rf "$p" 2>/dev/null && break
		sleep 1
	done
	vt__umount_under "$p" # the last try says why it fails
	rm -rf "$p" "$VT_PODMAN_SOCK"
}

# vt_podman_image [BINARY...] — like vt_docker_image, in the private podman.
vt_podman_image() {
	local root name id
	root=$(vt__new_rootfs)
	vt_rootfs "$root" "$@"
	name=$(vt__image_name "$root")
	tar -C "$root" -cf "$root.tar" .
	id=$(vt_podman import -q "${VT_IMPORT_CHANGES[@]}" "$root.tar" "$name")
	vt_on_exit vt_rm_image vt_podman "$id"
	vt_log "podman image $name ($id)" >&2
	printf '%s\n' "$id"
}
