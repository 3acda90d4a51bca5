#!/usr/bin/env bash
# The private engines of the tests (tests/lib/engines.sh) leave the network
# of the machine they run on alone (issue 13).  The test plays that machine
# in a network namespace of its own, the stand-in, set up like a host with
# a running Docker: an uplink with an address and a default route, a
# docker0 bridge with Docker's default address, Docker's DOCKER-USER
# firewall chain.  From the stand-in it starts volmgrd, the private dockerd
# and the private podman service the way every e2e test does, runs a
# container through each on a volmgr volume, and checks that
#   - each engine runs in a network namespace of its own holding only lo;
#   - the stand-in's docker0 survives the private dockerd (a dockerd with
#     --bridge=none deletes the docker0 of its namespace: moby
#     daemon/daemon_unix.go, removeDefaultBridgeInterface);
#   - the stand-in's links, addresses, routes, rules, firewall and sysctls
#     (helpers/host-net-check --state) are the same while the engines run
#     and after they stopped.
# The stand-in is unnamed: it goes away with the test's last process, and
# the machine's own network is never touched, even by a broken engine.
here=$(dirname "$(readlink -f "$0")")
# shellcheck source=../lib/common.sh
. "$here/../lib/common.sh"
# shellcheck source=../lib/engines.sh
. "$here/../lib/engines.sh"

# Run again in a new network namespace: the stand-in.  (Without root,
# unshare fails: stay here and let vt_require_root skip.)
if [[ ${VT_NETNS_STANDIN:-} != "$$" && $(id -u) == 0 ]]; then
	export VT_NETNS_STANDIN=$$ # exec keeps the pid
	exec unshare --net -- "$0" "$@"
fi

vt_init engine-netns
vt_require_root
vt_require_cmd unshare nsenter ip iptables jq btrfs
[[ $(readlink /proc/self/ns/net) != "$(readlink "/proc/$PPID/ns/net")" ]] ||
	vt_fail "not in a network namespace of its own (the stand-in)"
netcheck=$(realpath "${VT_SRCDIR:-$here/..}/../helpers/host-net-check")
[[ -x $netcheck ]] || vt_fail "no $netcheck"

vt_step "the stand-in host: uplink, default route, docker0, DOCKER-USER"
ip link set lo up
ip link add eth0 type veth peer name eth0-peer
ip link set eth0-peer up
ip link set eth0 up
ip addr add 192.0.2.2/24 dev eth0
ip route add default via 192.0.2.1 dev eth0
ip link add docker0 type bridge
ip addr add 172.17.0.1/16 dev docker0
ip link set docker0 up
iptables -w -N DOCKER-USER
iptables -w -A FORWARD -j DOCKER-USER
docker0=$(ip -j link show docker0 | jq -r '.[0].ifindex')
# (--state first waits for the new links' IPv6 link-local addresses to
# finish duplicate address detection.)
"$netcheck" --state >"$VT_TMP/net-before"
vt_log "$(wc -l <"$VT_TMP/net-before") items, docker0 is link $docker0"
grep -q '^iptables -A FORWARD -j DOCKER-USER$' "$VT_TMP/net-before" ||
	vt_fail "host-net-check --state does not show the firewall: $(cat "$VT_TMP/net-before")"

# net_unchanged WHEN — the stand-in's state is the one before the engines.
net_unchanged() {
	local now
	now=$("$netcheck" --state)
	if [[ $now != "$(<"$VT_TMP/net-before")" ]]; then
		printf 'the stand-in host network changed (%s):\n' "$1" >&2
		diff -u --label before --label "$1" "$VT_TMP/net-before" - <<<"$now" >&2
		return 1
	fi
	vt_log "ok: the stand-in host network is unchanged ($1)"
}
# The last cleanup: after the engines and volmgrd are stopped.
vt_on_exit net_unchanged "after the engines stopped"

assert_net_unchanged() {
	local index
	index=$(ip -j link show docker0 2>/dev/null | jq -r '.[0].ifindex') || index=
	[[ -n $index ]] || vt_fail "docker0 is gone ($1)"
	vt_assert_eq "$docker0" "$index" "link index of docker0 ($1)"
	net_unchanged "$1" || vt_fail "the stand-in host network changed ($1)"
}

# assert_own_netns PID WHAT — PID runs in another network namespace than
# the stand-in, which holds nothing but lo.
assert_own_netns() {
	local ns links
	ns=$(readlink "/proc/$1/ns/net")
	[[ $ns != "$(readlink /proc/self/ns/net)" ]] ||
		vt_fail "$2 (pid $1) runs in the stand-in's network namespace"
	links=$(nsenter --net="/proc/$1/ns/net" ip -j link show | jq -r '[.[].ifname] | join(" ")')
	vt_assert_eq lo "$links" "links in the network namespace of $2"
}

pool=$(vt_make_pool btrfs)
vt_start_daemon "$pool"
src=$VT_TMP/src
mkdir -p "$src"
echo "hello from the cache" >"$src/README"
"$VOLMGR" cache import proj "$src"

vt_step "docker: a private dockerd, a container on a volmgr volume"
VT_DOCKER=private vt_docker_ensure # never the running engine here
assert_own_netns "$VT_DOCKERD_PID" "the private dockerd"
img=$(vt_docker_image)
vol=dk-$VT_ID
docker volume create -d "$VT_DRIVER" -o source=cache:proj "$vol" >/dev/null
vt_track_volume docker "$vol"
vt_on_exit vt_rm_container docker "vt-$VT_ID-dk"
out=$(docker run --rm --name "vt-$VT_ID-dk" --network none -v "$vol:/w" "$img" \
	sh -c 'cat /w/README; echo docker > /w/out')
vt_assert_eq "hello from the cache" "$out" "the container reads the volume"
vt_assert_eq docker "$(cat "$pool/volumes/$vol/out")" "the container's write"
assert_net_unchanged "the private dockerd runs"

vt_step "podman: a private API service, a container on a volmgr volume"
vt_podman_ensure "$VT_DRIVER" "$VT_PLUGIN_SOCK"
assert_own_netns "$VT_PODMAN_PID" "the podman service"
pimg=$(vt_podman_image)
pvol=pm-$VT_ID
vt_podman volume create --driver "$VT_DRIVER" -o source=cache:proj "$pvol" >/dev/null
vt_track_volume vt_podman "$pvol"
vt_on_exit vt_rm_container vt_podman "vt-$VT_ID-pm"
out=$(vt_podman run --rm --name "vt-$VT_ID-pm" --network none -v "$pvol:/w" "$pimg" \
	sh -c 'cat /w/README; echo podman > /w/out')
vt_assert_eq "hello from the cache" "$out" "the container reads the volume"
vt_assert_eq podman "$(cat "$pool/volumes/$pvol/out")" "the container's write"
assert_net_unchanged "both engines run"
