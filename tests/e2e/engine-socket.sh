#!/usr/bin/env bash
# The engine socket (volmgr-engined) in front of a private dockerd (or,
# run as engine-socket-podman.sh, a private Podman API service), played
# as a job does: job containers whose /var/run/docker.sock is the engine
# socket (as the runner recipe mounts it) run the seed's script unchanged
# with the docker CLI, share subdirectories of their workspace, are
# refused what would reach the host or another job, cannot see each
# other, and leave nothing behind.
here=$(dirname "$(readlink -f "$0")")
# shellcheck source=../lib/common.sh
. "$here/../lib/common.sh"
# shellcheck source=../lib/engines.sh
. "$here/../lib/engines.sh"
# shellcheck source=../lib/engined.sh
. "$here/../lib/engined.sh"

kind=${VT_ENGINE_UNDER_TEST:-docker}
vt_init "engine-socket-$kind"
vt_require_root
vt_require_cmd btrfs jq curl script

pool=$(vt_make_pool btrfs)
vt_start_daemon "$pool"
# E: the engine as the host (the runner) uses it.
if [[ $kind == podman ]]; then
	vt_podman_ensure "$VT_DRIVER" "$VT_PLUGIN_SOCK"
	E=vt_podman upstream=$VT_PODMAN_SOCK
else
	vt_docker_ensure
	E=docker upstream=$VT_DOCKER_SOCK
fi
vt_start_engined "$upstream"

# Its records and pins are trusted on reading: a state directory others
# can write, or a symbolic link, stops it at start.
bad_state=$(mktemp -d "/run/vt-$VT_ID-state.XXXXXX")
vt_on_exit rm -rf "$bad_state"
chmod 0777 "$bad_state"
: >"$VT_TMP/empty.conf"
out=$(timeout 10 "$VOLMGR_ENGINED" --socket "$VT_TMP/bad.sock" --upstream "$upstream" \
	--control-socket "$VT_CONTROL_SOCK" --state-dir "$bad_state" --config "$VT_TMP/empty.conf" 2>&1) &&
	vt_fail "volmgr-engined started on a state directory anyone can write"
vt_assert_contains "$out" "no one else can write" "a writable state directory refused"
chmod 0700 "$bad_state"
ln -s "$bad_state" "$bad_state.link"
vt_on_exit rm -f "$bad_state.link"
out=$(timeout 10 "$VOLMGR_ENGINED" --socket "$VT_TMP/bad.sock" --upstream "$upstream" \
	--control-socket "$VT_CONTROL_SOCK" --state-dir "$bad_state.link" --config "$VT_TMP/empty.conf" 2>&1) &&
	vt_fail "volmgr-engined started on a state directory behind a symbolic link"
vt_assert_contains "$out" "no one else can write" "a state directory behind a link refused"

vt_step "a cached checkout with the seed's lint script"
src=$VT_TMP/src
mkdir -p "$src/sub"
printf '#!/bin/sh\necho "lint ok in $(pwd)"; ls\n' >"$src/lint.sh"
chmod +x "$src/lint.sh"
echo inner >"$src/sub/file"
"$VOLMGR" cache import proj "$src"

# One image for everything: busybox, the docker CLI, curl (raw requests).
img=vt-$VT_ID-img
if [[ $kind == podman ]]; then
	id=$(vt_podman_image "$(vt_docker_client)" "$(command -v curl)")
else
	id=$(vt_docker_image "$(vt_docker_client)" "$(command -v curl)")
fi
$E tag "$id" "$img"
vt_on_exit vt_rm_image "$E" "$img"

# vt job N: a job container as the runner makes one: the workspace
# volume at /builds/g/p, the engine socket at /var/run/docker.sock.
start_job() {
	local n=$1
	$E volume create --driver "$VT_DRIVER" -o source=cache:proj "ws$n-$VT_ID" >/dev/null
	vt_track_volume "$E" "ws$n-$VT_ID"
	# and a volume the runner gives it read-only
	$E volume create "ro$n-$VT_ID" >/dev/null
	vt_track_volume "$E" "ro$n-$VT_ID"
	vt_on_exit vt_rm_container "$E" "vt-$VT_ID-job$n"
	$E run -d --name "vt-$VT_ID-job$n" --network none -v "ws$n-$VT_ID:/builds/g/p" \
		-v "ro$n-$VT_ID:/ro:ro" \
		-v "$VT_ENGINE_SOCK:/var/run/docker.sock" -w /builds/g/p "$img" sleep 3600 >/dev/null
}
start_job 1
start_job 2
job1=vt-$VT_ID-job1 job2=vt-$VT_ID-job2
# Without -i unless input is piped (in1i): podman 4.3's remote exec
# sometimes resets its attach when stdin ends at once ("read unixpacket
# ... connection reset by peer", seen under CI's load).
# Each bounded (busybox's timeout in the job): a step that hangs fails
# as itself, not as the whole test's timeout.
in1() { $E exec -w /builds/g/p "$job1" timeout 300 sh -c "$1"; }
in2() { $E exec -w /builds/g/p "$job2" timeout 300 sh -c "$1"; }
in1i() { $E exec -i -w /builds/g/p "$job1" timeout 300 sh -c "$1"; }
# Everything nested is named n-$VT_ID-*, so that a failed run can still
# be removed from the host.
rm_nested() {
	local c
	for c in $($E ps -aq --filter "name=n-$VT_ID"); do $E rm -f "$c" >/dev/null || true; done
}
vt_on_exit rm_nested
gone() { ! $E "$1" inspect "$2" >/dev/null 2>&1; } # gone KIND NAME

vt_step "docker version, docker ps through the socket"
in1 'docker version --format "{{.Server.APIVersion}}"'
out=$(in1 'docker ps -a --format "{{.Names}}"')
vt_assert_eq "" "$out" "job 1's docker ps -a: nothing yet (its own container is the runner's)"

vt_step "the seed's script, unchanged: docker run -v \"\$(pwd):/workspace\" -w /workspace IMAGE ./lint.sh"
out=$(in1 "docker run --rm -v \"\$(pwd):/workspace\" -w /workspace $img ./lint.sh")
vt_assert_eq "lint ok in /workspace
lint.sh
sub" "$out" "the lint container saw the job's checkout"

vt_step "a subdirectory and a file of the workspace, pinned"
out=$(in1 "docker run --rm --name n-$VT_ID-sub -v \"\$(pwd)/sub:/s\" -v \"\$(pwd)/lint.sh:/l.sh:ro\" $img \
	sh -c 'cat /s/file; echo nested > /s/new; head -c 9 /l.sh; echo; touch /l.sh 2>&1 || echo ro'")
vt_assert_contains "$out" inner "the subdirectory's file"
vt_assert_contains "$out" '#!/bin/sh' "the file bind"
vt_assert_contains "$out" ro "the file bind is read-only"
vt_assert_eq nested "$(cat "$pool/volumes/ws1-$VT_ID/sub/new")" "the nested write is in the workspace"
vt_wait_until -t 20 "the pins of the removed container are released" \
	sh -c "[ -z \"\$(ls -A $VT_ENGINED_STATE/pins)\" ]"

vt_step "a -v source that does not exist yet is made in the workspace, as the engines do"
in1 "docker run --rm -v \"\$(pwd)/made/here:/m\" $img sh -c 'echo made > /m/f'"
vt_assert_eq made "$(cat "$pool/volumes/ws1-$VT_ID/made/here/f")" "the missing directory made in the volume"

vt_step "a volume the job has read-only stays read-only in the containers it starts"
out=$(in1 "docker run --rm -v ro1-$VT_ID:/x $img sh -c 'touch /x/f 2>&1 || echo refused-write'")
vt_assert_contains "$out" refused-write "the read-only volume, mounted by name"
out=$(in1 "docker run --rm -v /ro:/x $img sh -c 'touch /x/f 2>&1 || echo refused-write'" 2>&1 || true)
vt_log "the read-only volume by path: $out"

vt_step "relative binds from a compose-style project directory, and symlinks inside the volume"
in1 'mkdir -p deep/er && echo deep > deep/er/x && ln -sfn deep/er link-in && ln -sfn /builds/g/p/deep abs-in'
out=$(in1 "docker run --rm -v \"\$(pwd)/link-in:/a\" -v /builds/g/p/abs-in/er:/b $img cat /a/x /b/x")
vt_assert_eq "deep
deep" "$out" "symlinks resolved in the job's view, staying in the volume"

vt_step "the job's own engine socket passed on: docker in the job in the job, confined the same"
out=$(in1 "docker run --rm --name n-$VT_ID-pass -v /var/run/docker.sock:/var/run/docker.sock $img \
	docker ps -a --format '{{.Names}}'")
vt_assert_contains "$out" "n-$VT_ID-pass" "the nested docker sees job 1's containers"
[[ $out != *"$job2"* ]] || vt_fail "the nested docker sees job 2"
# A container made two levels down is job 1's too.
in1 "docker run --rm -v /var/run/docker.sock:/var/run/docker.sock $img \
	docker run -d --name n-$VT_ID-deep --network none $img sleep 3600" >/dev/null
vt_assert_contains "$(in1 'docker ps --format "{{.Names}}"')" "n-$VT_ID-deep" "job 1 sees what its nested container made"
[[ $(in2 'docker ps -a --format "{{.Names}}"') != *deep* ]] || vt_fail "job 2 sees job 1's grandchild"

vt_step "the commands a job runs: run -i, exec -i, run -it, exec -it, logs -f, wait, cp, stop, kill, build, pull, push"
out=$(echo piped | in1i "docker run -i --rm $img cat")
vt_assert_eq piped "$out" "stdin through run -i, then its end (half close)"
in1 "docker run -d --name n-$VT_ID-bg $img sleep 3600" >/dev/null
in1 "docker run -d --name n-$VT_ID-log $img sh -c 'echo first; sleep 1; echo second'" >/dev/null
out=$(echo into-exec | in1i "docker exec -i n-$VT_ID-bg cat")
vt_assert_eq into-exec "$out" "exec -i"
# -it, a terminal on both sides: script(1) gives the host's exec into
# job 1 a terminal, so the job's docker CLI has one; "hello" is typed
# two seconds in.
if [[ $kind == podman ]]; then ecmd=(podman --remote --url "unix://$VT_PODMAN_SOCK"); else ecmd=(docker); fi
tty_in1() {
	{ sleep 2; echo hello; sleep 3; } |
		script -qfec "$(printf '%q ' "${ecmd[@]}" exec -it -w /builds/g/p "$job1" timeout 60 sh -c "$1")" /dev/null |
		tr -d '\r'
}
out=$(tty_in1 "docker run -it --rm --network none $img sh -c 'tty >/dev/null && echo on-a-tty; read x; echo got-\$x'")
vt_assert_contains "$out" "on-a-tty" "run -it: the container has a terminal"
vt_assert_contains "$out" "got-hello" "run -it: what is typed reaches it"
out=$(tty_in1 "docker exec -it n-$VT_ID-bg sh -c 'tty >/dev/null && echo exec-on-a-tty; read x; echo got-\$x'")
vt_assert_contains "$out" "exec-on-a-tty" "exec -it: a terminal"
vt_assert_contains "$out" "got-hello" "exec -it: what is typed reaches it"
out=$(in1 "docker exec n-$VT_ID-bg sh -c 'echo out; echo err >&2; exit 3'" 2>&1) && vt_fail "exec's exit code was lost"
vt_assert_contains "$out" err "exec's stderr"
out=$(in1 "docker logs -f n-$VT_ID-log" 2>&1)
vt_assert_contains "$out" "first" "logs -f"
vt_assert_contains "$out" "second" "logs -f follows"
out=$(in1 "docker run -d --name n-$VT_ID-exit $img sh -c 'exit 7' >/dev/null; docker wait n-$VT_ID-exit")
vt_assert_eq 7 "$out" "docker wait"
in1 "echo to-ctr > cpfile && docker cp cpfile n-$VT_ID-bg:/tmp/cpfile && docker cp n-$VT_ID-bg:/tmp/cpfile back && cat back" |
	grep -qx to-ctr || vt_fail "docker cp both ways"
in1 "docker stop -t 1 n-$VT_ID-bg >/dev/null && docker start n-$VT_ID-bg >/dev/null && docker kill n-$VT_ID-bg >/dev/null"
vt_assert_eq exited "$($E inspect -f '{{.State.Status}}' "n-$VT_ID-bg")" "stop, start and kill reached it"
in1 "mkdir -p ctx && echo built > ctx/f && printf 'FROM $img\nCOPY f /f\nRUN cat /f\n' > ctx/Dockerfile &&
	DOCKER_BUILDKIT=0 docker build -q -t vt-$VT_ID-built ctx" >/dev/null
vt_on_exit vt_rm_image "$E" "vt-$VT_ID-built"
out=$(in1 "docker run --rm vt-$VT_ID-built cat /f")
vt_assert_eq built "$out" "an image built through the socket"
# The classic builder's step containers are the engine's: --rm=false, or
# a failed step, must not leave any behind (nothing would sweep them).
before=$($E ps -aq --no-trunc | sort)
in1 "printf 'FROM $img\nRUN false\n' > ctx/Dockerfile.fail &&
	DOCKER_BUILDKIT=0 docker build --rm=false -f ctx/Dockerfile.fail ctx" >/dev/null 2>&1 &&
	vt_fail "a build whose step fails succeeded"
in1 "DOCKER_BUILDKIT=0 docker build --rm=false --no-cache -q -t vt-$VT_ID-built2 ctx" >/dev/null
vt_on_exit vt_rm_image "$E" "vt-$VT_ID-built2"
vt_assert_eq "$before" "$($E ps -aq --no-trunc | sort)" "containers after builds with --rm=false and a failed step"
# A build's RUN steps never run in the engine's own network namespace
# (Podman's compat build does unless told: volmgr-engined tells it), with
# --network none and with the default network.
if [[ $kind == podman ]]; then engine_pid=$VT_PODMAN_PID; else engine_pid=$VT_DOCKERD_PID; fi
engine_netns=$(readlink "/proc/$engine_pid/ns/net")
for net in none default; do
	in1 "mkdir -p nctx && printf 'FROM $img\nRUN readlink /proc/self/ns/net > /netns\n' > nctx/Dockerfile &&
		DOCKER_BUILDKIT=0 docker build --network $net --no-cache -q -t vt-$VT_ID-netns-$net nctx" >/dev/null
	vt_on_exit vt_rm_image "$E" "vt-$VT_ID-netns-$net"
	out=$(in1 "docker run --rm --network none vt-$VT_ID-netns-$net cat /netns")
	[[ $out == net:* ]] || vt_fail "build --network $net: no namespace recorded ($out)"
	[[ $out != "$engine_netns" ]] || vt_fail "build --network $net: RUN ran in the engine's own network namespace ($out)"
	vt_log "build --network $net: RUN in $out, the engine in $engine_netns"
done
# (the docker CLI sends no body when nothing changes, which Podman's
# compat commit cannot decode: the API call with "{}" on both engines)
vt_on_exit vt_rm_image "$E" "vt-$VT_ID-committed"
out=$(in1 "curl -s -o /dev/null -w '%{http_code}' --unix-socket /var/run/docker.sock -X POST \
	-H 'Content-Type: application/json' --data-binary '{}' \
	'http://d/v1.41/commit?container=n-$VT_ID-bg&repo=vt-$VT_ID-committed'")
vt_assert_eq 201 "$out" "commit of the job's own container"
$E image inspect "vt-$VT_ID-committed" >/dev/null || vt_fail "the committed image is not there"
out=$(in1 "timeout 60 docker pull registry.invalid/none:1" 2>&1) && vt_fail "a pull offline succeeded"
vt_log "pull offline: $out"
[[ $out != *volmgr-engined* ]] || vt_fail "the pull was refused rather than tried"
in1 "docker tag $img 127.0.0.1:1/vt-$VT_ID-push:1"
vt_on_exit vt_rm_image "$E" "127.0.0.1:1/vt-$VT_ID-push:1"
out=$(in1 "timeout 60 docker push 127.0.0.1:1/vt-$VT_ID-push:1" 2>&1) && vt_fail "a push to a closed port succeeded"
vt_log "push offline: $out"
[[ $out != *volmgr-engined* ]] || vt_fail "the push was refused rather than tried"

vt_step "networks and volumes of the job"
in1 "docker network create n-$VT_ID-net >/dev/null && docker volume create n-$VT_ID-vol >/dev/null"
in1 "docker network create -o com.docker.network.driver.mtu=1400 n-$VT_ID-mtu >/dev/null"
# svc holds a pin of the workspace: it must not outlive the job.
in1 "docker run -d --name n-$VT_ID-svc --network n-$VT_ID-net -v n-$VT_ID-vol:/data \
	-v \"\$(pwd)/sub:/s\" $img sleep 3600" >/dev/null
in1 "docker network connect n-$VT_ID-net n-$VT_ID-bg"
out=$(in1 'docker network ls --format "{{.Name}}"' | sort)
vt_assert_eq "n-$VT_ID-mtu
n-$VT_ID-net" "$out" "job 1's networks: its own"
vt_assert_eq 1 "$(in1 'docker ps -a -q -n 1' | wc -l)" "docker ps -n 1: one of the job's own"
out=$(in1 'docker volume ls --format "{{.Name}}" | sort')
vt_assert_eq "$(printf '%s\n' "n-$VT_ID-vol" "ws1-$VT_ID" "ro1-$VT_ID" | sort)" "$out" \
	"job 1's volumes: its own and its job container's"

vt_step "two jobs cannot see each other"
out=$(in2 'docker ps -a --format "{{.Names}}"')
vt_assert_eq "" "$out" "job 2 sees none of job 1's containers"
vt_assert_eq "" "$(in2 'docker network ls -q')" "job 2 sees no network of job 1's"
vt_assert_eq "$(printf '%s\n' "ro2-$VT_ID" "ws2-$VT_ID" | sort)" "$(in2 'docker volume ls -q' | sort)" \
	"job 2 sees its job container's volumes only"

vt_step "prunes: a job's own stopped containers and unused networks, nobody else's"
in2 "docker system prune -f" >/dev/null
vt_assert_eq exited "$($E inspect -f '{{.State.Status}}' "n-$VT_ID-exit")" "job 2's system prune left job 1's stopped container"
exit_id=$($E inspect -f '{{.Id}}' "n-$VT_ID-exit")
out=$(in1 "docker container prune -f")
vt_assert_contains "$out" "$exit_id" "job 1's container prune names its stopped container"
vt_wait_until -t 10 "job 1's stopped container pruned" gone container "n-$VT_ID-exit"
vt_assert_eq running "$($E inspect -f '{{.State.Status}}' "n-$VT_ID-svc")" "its running container stays"

vt_step "the hostile catalog: each refused, nothing made"
# (Volumes of this test's drivers only: the engine also lists those of
# any other volmgrd's plugin socket in /run/docker/plugins.)
counts() {
	printf '%s %s %s\n' "$($E ps -aq | wc -l)" "$($E network ls -q | wc -l)" \
		"$($E volume ls --format '{{.Driver}}' | grep -cxE "local|$VT_DRIVER" || true)"
}
before=$(counts)
n_refused=0
# refuse WHAT JOB COMMAND: the docker CLI in the job fails, nothing new.
refuse() {
	local what=$1 in=$2 cmd=$3 out
	if out=$($in "$cmd" 2>&1); then
		vt_fail "$what: accepted ($out)"
	fi
	[[ $out == *volmgr-engined* || $out == *"No such"* || $out == *"not found"* ||
		$out == *"no such"* ]] || vt_fail "$what: not refused by the socket: $out"
	vt_assert_eq "$before" "$(counts)" "$what: nothing made"
	n_refused=$((n_refused + 1))
}
r="docker run --rm --name n-$VT_ID-x"
refuse privileged in2 "$r --privileged $img true"
refuse cap-add in2 "$r --cap-add SYS_ADMIN $img true"
refuse cap-add-all in2 "$r --cap-add ALL $img true"
refuse pid-host in2 "$r --pid host $img true"
refuse ipc-host in2 "$r --ipc host $img true"
refuse uts-host in2 "$r --uts host $img true"
refuse userns-host in2 "$r --userns host $img true"
refuse cgroupns-host in2 "$r --cgroupns host $img true"
refuse network-host in2 "$r --network host $img true"
refuse seccomp in2 "$r --security-opt seccomp=unconfined $img true"
refuse apparmor in2 "$r --security-opt apparmor=unconfined $img true"
refuse label-disable in2 "$r --security-opt label=disable $img true"
refuse systempaths in2 "$r --security-opt systempaths=unconfined $img true"
refuse sysctl in2 "$r --sysctl net.ipv4.ip_forward=1 $img true"
refuse cgroup-parent in2 "$r --cgroup-parent /evil $img true"
refuse runtime in2 "$r --runtime io.containerd.runc.v2 $img true"
refuse oom-score in2 "$r --oom-score-adj -1000 $img true"
refuse oom-kill in2 "$r --oom-kill-disable $img true"
refuse log-driver in2 "$r --log-driver syslog $img true"
refuse volumes-from in2 "$r --volumes-from n-$VT_ID-svc $img true"
refuse network-container in2 "$r --network container:n-$VT_ID-svc $img true"
refuse pid-container in2 "$r --pid container:n-$VT_ID-svc $img true"
refuse ipc-container in2 "$r --ipc container:n-$VT_ID-svc $img true"
refuse link in2 "$r --link n-$VT_ID-svc:svc $img true"
refuse other-network in2 "$r --network n-$VT_ID-net $img true"
refuse other-volume in2 "$r -v n-$VT_ID-vol:/v $img true"
refuse other-workspace in2 "$r -v ws1-$VT_ID:/v $img true"
refuse bind-root in2 "$r -v /:/host $img true"
refuse bind-etc in2 "$r -v /etc:/x $img true"
refuse bind-above-volume in2 "$r -v /builds:/x $img true"
refuse bind-missing-outside in2 "$r -v /nonexistent-$VT_ID/x:/x $img true"
refuse mount-missing in2 "$r --mount type=bind,src=/builds/g/p/nonexistent,dst=/x $img true"
refuse bind-engine-socket in2 "$r -v $upstream:/var/run/docker.sock $img true"
in2 'ln -sfn / escape && ln -sfn ../../../.. escape-rel'
refuse symlink-to-root in2 "$r -v /builds/g/p/escape:/x $img true"
refuse symlink-up in2 "$r -v /builds/g/p/escape-rel:/x $img true"
refuse mount-bind-root in2 "$r --mount type=bind,src=/,dst=/x $img true"
refuse mount-propagation in2 "$r --mount type=bind,src=/builds/g/p/sub,dst=/x,bind-propagation=rshared $img true"
refuse mount-local-device in2 "$r --mount type=volume,src=n-$VT_ID-dev,dst=/x,volume-opt=type=none,volume-opt=o=bind,volume-opt=device=/ $img true"
refuse volume-local-device in2 "docker volume create -o type=none -o o=bind -o device=/ n-$VT_ID-dev2"
refuse volume-driver in2 "docker volume create -d $VT_DRIVER n-$VT_ID-dev3"
refuse network-driver in2 "docker network create -d macvlan n-$VT_ID-mac"
refuse network-options in2 "docker network create -o com.docker.network.bridge.name=eth0 n-$VT_ID-br"
refuse network-mode-name in2 "docker network create slirp4netns"
refuse label-spoof in2 "$r --label io.volmgr.engine.job=$job1 $img true"
refuse inspect-other in2 "docker inspect n-$VT_ID-svc"
refuse logs-other in2 "docker logs n-$VT_ID-svc"
refuse exec-other in2 "docker exec n-$VT_ID-svc true"
refuse stop-other in2 "docker stop n-$VT_ID-svc"
refuse kill-other in2 "docker kill n-$VT_ID-svc"
# (not -f: the CLI reports "No such container" but exits 0 with it)
refuse rm-other in2 "docker rm n-$VT_ID-svc"
refuse cp-other in2 "docker cp n-$VT_ID-svc:/etc/passwd /tmp/p"
refuse commit-other in2 "docker commit n-$VT_ID-svc vt-$VT_ID-stolen"
$E image inspect "vt-$VT_ID-stolen" >/dev/null 2>&1 && vt_fail "another job's container was committed"
refuse attach-other in2 "timeout 10 docker attach n-$VT_ID-svc"
refuse rm-other-job in2 "docker rm $job1"
refuse rm-own-job in2 "docker rm -f $job2"
refuse stop-own-job in2 "docker stop $job2"
# A create of a volume name another job has: the engine answers with
# that volume, which must not become this job's.
in2 "docker volume create n-$VT_ID-vol" >/dev/null
refuse other-volume-recreated in2 "$r -v n-$VT_ID-vol:/v $img true"
refuse network-rm-other in2 "docker network rm n-$VT_ID-net"
refuse network-connect-other in2 "docker network connect n-$VT_ID-net $job2"
refuse volume-rm-other in2 "docker volume rm n-$VT_ID-vol"
refuse exec-privileged in1 "docker exec --privileged n-$VT_ID-svc true"
refuse build-network-host in2 "mkdir -p c2 && echo 'FROM $img' > c2/Dockerfile && DOCKER_BUILDKIT=0 docker build --network host c2"
# Raw requests, as no CLI sends them.
raw() { # METHOD PATH [BODY]: prints the status (the body passed base64'd)
	local b64
	b64=$(printf '%s' "${3:-}" | base64 -w0)
	in2 "printf '%s' '$b64' | base64 -d | curl -s -o /dev/null -w '%{http_code}' \
		--unix-socket /var/run/docker.sock -X $1 -H 'Content-Type: application/json' \
		${3:+--data-binary @-} 'http://d$2'"
}
refuse_raw() { # WHAT STATUS METHOD PATH [BODY]
	local got
	got=$(raw "$3" "$4" "${5:-}")
	vt_assert_eq "$2" "$got" "$1: status"
	vt_assert_eq "$before" "$(counts)" "$1: nothing made"
	n_refused=$((n_refused + 1))
}
refuse_raw old-api-start 403 POST "/v1.23/containers/$job2/start" '{"HostConfig":{"Privileged":true}}'
refuse_raw start-body 403 POST "/v1.41/containers/$job2/start" '{"HostConfig":{"Privileged":true}}'
refuse_raw libpod 403 GET /v1.41/libpod/containers/json
refuse_raw session 403 POST /session
refuse_raw system-df 403 GET /system/df
refuse_raw dotdot 403 POST /v1.41/images/../containers/create '{"Image":"x","HostConfig":{"Privileged":true}}'
refuse_raw unknown-field 403 POST /v1.41/containers/create "{\"Image\":\"$img\",\"HostConfig\":{\"FutureEscape\":true}}"
# (as raw requests: the docker CLI checks --device against the server's
# OSType, which Podman 4.3's ping does not send)
refuse_raw device 403 POST /v1.41/containers/create "{\"Image\":\"$img\",\"HostConfig\":{\"Devices\":[{\"PathOnHost\":\"/dev/sda\",\"PathInContainer\":\"/dev/x\",\"CgroupPermissions\":\"rwm\"}]}}"
refuse_raw device-cgroup-rule 403 POST /v1.41/containers/create "{\"Image\":\"$img\",\"HostConfig\":{\"DeviceCgroupRules\":[\"b 7:* rmw\"]}}"
refuse_raw gpus 403 POST /v1.41/containers/create "{\"Image\":\"$img\",\"HostConfig\":{\"DeviceRequests\":[{\"Count\":-1}]}}"
refuse_raw masked-paths 403 POST /v1.41/containers/create "{\"Image\":\"$img\",\"HostConfig\":{\"MaskedPaths\":[]}}"
refuse_raw dup-key 400 POST /v1.41/containers/create "{\"Image\":\"$img\",\"HostConfig\":{\"Privileged\":false,\"Privileged\":true}}"
refuse_raw not-json 400 POST /v1.41/containers/create '{"Image":'
refuse_raw swarm 403 GET /v1.41/swarm
refuse_raw plugins 403 GET /v1.41/plugins
# Keys in another case: the engines match them to fields ignoring case.
refuse_raw case-masked 403 POST /v1.41/containers/create "{\"Image\":\"$img\",\"HostConfig\":{\"maskedPaths\":[],\"readonlyPaths\":[]}}"
refuse_raw case-driverconfig 403 POST /v1.41/containers/create "{\"Image\":\"$img\",\"HostConfig\":{\"Mounts\":[{\"Type\":\"volume\",\"Target\":\"/h\",\"VolumeOptions\":{\"driverConfig\":{\"Name\":\"local\",\"Options\":{\"type\":\"none\",\"o\":\"bind\",\"device\":\"/\"}}}}]}}"
refuse_raw case-log 403 POST /v1.41/containers/create "{\"Image\":\"$img\",\"HostConfig\":{\"LogConfig\":{\"type\":\"syslog\"}}}"
refuse_raw case-propagation 403 POST /v1.41/containers/create "{\"Image\":\"$img\",\"HostConfig\":{\"Mounts\":[{\"Type\":\"bind\",\"Source\":\"/builds/g/p/sub\",\"Target\":\"/s\",\"BindOptions\":{\"propagation\":\"rshared\"}}]}}"
refuse_raw case-twice 403 POST /v1.41/containers/create "{\"Image\":\"$img\",\"HostConfig\":{\"Privileged\":false,\"privileged\":true}}"
refuse_raw non-ascii-key 403 POST /v1.41/containers/create "{\"Image\":\"$img\",\"HostConfig\":{\"Sy\u017fctls\":{\"net.ipv4.ip_forward\":\"1\"}}}"
refuse_raw ipam 403 POST /v1.41/networks/create "{\"Name\":\"n-$VT_ID-ipam\",\"IPAM\":{\"Config\":[{\"Subnet\":\"169.254.169.0/24\"}]}}"
refuse_raw build-remote 403 POST "/v1.41/build?remote=http://169.254.169.254/"
refuse_raw import-url 403 POST "/v1.41/images/create?fromSrc=http://169.254.169.254/x&repo=n-$VT_ID-imp"
out=$(in2 "curl -s -o /dev/null -o /dev/null -w '%{http_code} ' -H 'Connection: Upgrade' -H 'Upgrade: x' \
	--unix-socket /var/run/docker.sock http://d/_ping http://d/_ping")
vt_assert_eq "403 403 " "$out" "an Upgrade on a plain endpoint, twice on one connection"
n_refused=$((n_refused + 1))
refuse_raw semicolon 403 POST "/v1.41/build?networkmode=bridge;networkmode=host"
# What Podman's compat API reads differently from Docker's (the review of
# helpers/podman-runner): structures it turns into its own "-v",
# "--tmpfs" and "--mount" strings, query keys it matches ignoring case,
# build parameters of its own, and its libpod test on the whole URL.
refuse_raw volumes-key-bind 403 POST /v1.41/containers/create "{\"Image\":\"$img\",\"Volumes\":{\"/:/r\":{}}}"
refuse_raw tmpfs-key 403 POST /v1.41/containers/create "{\"Image\":\"$img\",\"HostConfig\":{\"Tmpfs\":{\"/t:U\":\"\"}}}"
refuse_raw mount-target-comma 403 POST /v1.41/containers/create "{\"Image\":\"$img\",\"HostConfig\":{\"Mounts\":[{\"Type\":\"bind\",\"Source\":\"/builds/g/p/sub\",\"Target\":\"/x,source=/\"}]}}"
refuse_raw mount-consistency-comma 403 POST /v1.41/containers/create "{\"Image\":\"$img\",\"HostConfig\":{\"Mounts\":[{\"Type\":\"bind\",\"Source\":\"/builds/g/p/sub\",\"Target\":\"/x\",\"Consistency\":\"cached,rshared\"}]}}"
refuse_raw bind-target-comma 403 POST /v1.41/containers/create "{\"Image\":\"$img\",\"HostConfig\":{\"Binds\":[\"/builds/g/p/sub:/x,y\"]}}"
refuse_raw build-podman-param 403 POST "/v1.41/build?additionalbuildcontexts=%7B%22x%22%3A%22%2F%22%7D"
refuse_raw build-devices 403 POST "/v1.41/build?devices=%5B%22%2Fdev%2Fsda%22%5D"
refuse_raw build-key-case 403 POST "/v1.41/build?rm=1&RM=0"
refuse_raw build-key-upper 403 POST "/v1.41/build?NETWORKMODE=host"
refuse_raw commit-key-case 403 POST "/v1.41/commit?container=n-$VT_ID-x&CONTAINER=n-$VT_ID-svc"
refuse_raw libpod-in-query 403 POST "/build?x=/libpod/"
# The second review: a log file of the engine's choosing, a container id
# file, a push to any transport, a Dockerfile outside the context,
# parameters of the image endpoints Docker does not define.
refuse_raw log-path 403 POST /v1.41/containers/create "{\"Image\":\"$img\",\"HostConfig\":{\"LogConfig\":{\"Type\":\"k8s-file\",\"Config\":{\"path\":\"/etc/ld.so.preload\"}}}}"
refuse_raw cidfile 403 POST /v1.41/containers/create "{\"Image\":\"$img\",\"HostConfig\":{\"ContainerIDFile\":\"/run/volmgr/engine.sock\"}}"
refuse_raw push-destination 403 POST "/v1.41/images/$img/push?destination=docker-archive:/dev/sda"
refuse_raw pull-extra 403 POST "/v1.41/images/create?fromImage=$img&tlsVerify=false"
refuse_raw image-post-other 403 POST "/v1.41/images/$img/untag"
refuse_raw dockerfile-abs 403 POST "/v1.41/build?dockerfile=/etc/shadow"
refuse_raw dockerfile-up 403 POST "/v1.41/build?dockerfile=..%2F..%2Fetc%2Fshadow"
if [[ $kind == podman ]]; then
	refuse_raw env-star 403 POST /v1.41/containers/create "{\"Image\":\"$img\",\"Env\":[\"*\"]}"
	refuse_raw rmi-force 403 DELETE "/v1.41/images/$img?force=1"
fi
vt_log "$n_refused hostile requests refused, none made anything"
vt_assert_eq running "$($E inspect -f '{{.State.Status}}' "n-$VT_ID-svc")" "job 1's container untouched"
((n_refused >= 40)) || vt_fail "only $n_refused hostile requests"

vt_step "a client that goes away midway leaves nothing half-made"
# A create whose body never ends (the client gives up after a second),
# with a bind that would be pinned, and a list answer the client stops
# reading: no container, no pin, and the socket still serves.
pins_before=$(ls -A "$VT_ENGINED_STATE/pins")
in2 "(printf '{\"Image\":\"$img\",\"HostConfig\":{\"Binds\":[\"/builds/g/p/sub:/s\"'; sleep 3) |
	curl -s --max-time 1 -T - -H 'Content-Type: application/json' --unix-socket /var/run/docker.sock \
	'http://d/v1.41/containers/create?name=n-$VT_ID-half'" || true
in2 "curl -s --max-time 1 --limit-rate 1 -o /dev/null --unix-socket /var/run/docker.sock \
	'http://d/v1.41/images/json'" || true
vt_assert_eq "$before" "$(counts)" "nothing made by the half request"
vt_assert_eq "$pins_before" "$(ls -A "$VT_ENGINED_STATE/pins")" "no pin left by the half request"
vt_assert_status 0 in2 'docker version >/dev/null'

vt_step "a swap loop against 500 nested runs binding a subdirectory"
# From the host, on the volume itself (what the job sees): swap/d, a
# directory with one file, trades places with a symlink to / and one up
# out of the volume, with renameat2(RENAME_EXCHANGE), while job 2 runs
# nested containers binding /builds/g/p/swap/d.  Each either sees the
# directory's one file, or is refused; none ever sees anything else.
runs=${VT_SWAP_RUNS:-500}
[[ $kind == docker ]] || runs=${VT_SWAP_RUNS:-100}
ws2=$pool/volumes/ws2-$VT_ID
mkdir "$ws2/swap" "$ws2/swap/d"
echo inside >"$ws2/swap/d/only-file"
ln -s / "$ws2/swap/to-root"
ln -s ../../../../../.. "$ws2/swap/d2"
mkdir "$ws2/swap/to-up"
ln -sfn ../../../../../.. "$ws2/swap/to-up-link"
python3 "$VT_SRCDIR/tools/swap-loop.py" "$VT_TMP/swaps" 600 \
	"$ws2/swap/d" "$ws2/swap/to-root" &
swap_pid=$!
vt_on_exit vt__stop_pid "$swap_pid" 5
# One write per run (the runs are parallel): its output on one line.
in2 "seq $runs | xargs -P 8 -I{} sh -c 'o=\$(docker run --rm --network none \\
	-v /builds/g/p/swap/d:/x $img ls -A /x 2>&1 | tr \"\\n\" \" \"); echo \"\$o\"' >> /tmp/swap-results"
kill -TERM "$swap_pid"
wait "$swap_pid" || true
results=$(in2 'cat /tmp/swap-results')
seen=$(grep -c '^only-file $' <<<"$results" || true)
refused=$(grep -c 'volmgr-engined' <<<"$results" || true)
other=$(grep -v '^only-file $' <<<"$results" | grep -v 'volmgr-engined' | sort | uniq -c || true)
vt_log "$runs runs, swaps: $(cat "$VT_TMP/swaps"); $seen saw the directory, $refused refused"
[[ -z $other ]] || vt_fail "nested runs saw something else: $other"
vt_assert_eq "$runs" "$((seen + refused))" "every run accounted for"
((seen > 0)) || vt_fail "no run saw the directory"
vt_assert_eq "$before" "$(counts)" "no nested container left over"

vt_step "docker-compose (Debian's, 1.29) in a job: up -d, ps, logs, down, two services on a network"
if command -v docker-compose >/dev/null; then
	# The job container gets the host's /usr read-only: python3 and
	# docker-compose with their modules, as in a job image that has them.
	$E volume create --driver "$VT_DRIVER" -o source=cache:proj "ws3-$VT_ID" >/dev/null
	vt_track_volume "$E" "ws3-$VT_ID"
	vt_on_exit vt_rm_container "$E" "vt-$VT_ID-job3"
	$E run -d --name "vt-$VT_ID-job3" --network none -v "ws3-$VT_ID:/builds/g/p" \
		-v /usr:/usr:ro -v /usr/lib:/lib:ro -v /usr/lib64:/lib64:ro \
		-v "$VT_ENGINE_SOCK:/var/run/docker.sock" -w /builds/g/p "$img" sleep 3600 >/dev/null
	in3() { $E exec -w /builds/g/p/app "vt-$VT_ID-job3" timeout 300 sh -c "$1"; }
	$E exec "vt-$VT_ID-job3" sh -c 'mkdir -p /builds/g/p/app/data && echo hello-compose > /builds/g/p/app/data/hello'
	cat <<-YML | $E exec -i "vt-$VT_ID-job3" sh -c 'cat > /builds/g/p/app/docker-compose.yml'
	version: "2.4"
	services:
	  web:
	    image: $img
	    command: sh -c 'cat /data/hello; sleep 3600'
	    volumes:
	      - ./data:/data
	  db:
	    image: $img
	    command: sleep 3600
	YML
	p=c$VT_ID
	in3 "docker-compose -p $p up -d" 2>&1
	out=$(in3 "docker-compose -p $p ps --services" | sort)
	vt_assert_eq "db
web" "$out" "compose ps"
	for svc in web db; do
		nets=$(in3 "docker inspect -f '{{range \$k, \$v := .NetworkSettings.Networks}}{{\$k}} {{end}}' ${p}_${svc}_1")
		vt_assert_contains "$nets" "${p}_default" "$svc on the project's network"
	done
	web_logs() { in3 "docker-compose -p $p logs web" | grep -q hello-compose; }
	vt_wait_until -t 30 "compose logs show the bind's file" web_logs
	in3 "docker-compose -p $p down" 2>&1
	vt_assert_eq "" "$(in3 "docker ps -aq --filter label=com.docker.compose.project=$p")" "compose down left nothing"
else
	vt_fail "docker-compose is not installed (helpers/quickstart installs it)"
fi

vt_step "a caller that is not a container of the engine is refused"
out=$(curl -s --unix-socket "$VT_ENGINE_SOCK" http://d/v1.41/containers/json)
vt_assert_contains "$out" "containers of the engine only" "a host process"

vt_step "job 1 ends: what it made goes with it"
$E rm -f "$job1" >/dev/null
for o in "n-$VT_ID-svc" "n-$VT_ID-bg" "n-$VT_ID-log" "n-$VT_ID-deep"; do
	vt_wait_until -t 30 "container $o removed with its job" \
		gone container "$o"
done
vt_wait_until -t 30 "job 1's network removed" gone network "n-$VT_ID-net"
vt_wait_until -t 30 "job 1's second network removed" gone network "n-$VT_ID-mtu"
vt_wait_until -t 30 "job 1's volume removed" gone volume "n-$VT_ID-vol"
vt_wait_until -t 30 "no pin left" sh -c "[ -z \"\$(ls -A $VT_ENGINED_STATE/pins)\" ]"
vt_rm_volume "$E" "ws1-$VT_ID"
vt_assert_volume_gone "ws1-$VT_ID"
vt_assert_eq running "$($E inspect -f '{{.State.Status}}' "$job2")" "job 2 untouched"
