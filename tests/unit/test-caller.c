/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What makes a caller a container (issue 13, item 5): a cgroup an engine
 * made for one, named by the container's 64-hex id, checked by
 * vm_cgroup_names_container() against the layouts of Docker (cgroupfs
 * and systemd drivers), Podman, CRI-O, containerd/Kubernetes, and against
 * what host services, sessions and snaps look like.
 *
 * Usage: test-caller FIXTURES-DIR (unused) */
#include <string.h>

#include "unit-util.h"

#include "caller.h"

#define ID "4a7f9c0e1b2d3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e"

static void test_containers(void **state)
{
	static const char *const yes[] = {
		"/docker/" ID,                                   /* Docker, cgroupfs */
		"/system.slice/docker-" ID ".scope",             /* Docker, systemd */
		"/machine.slice/libpod-" ID ".scope",            /* Podman, systemd */
		"/libpod_parent/libpod-" ID,                     /* Podman, cgroupfs */
		"/libpod_parent/libpod-" ID "/container",        /* Podman, split */
		"/system.slice/crio-" ID ".scope",               /* CRI-O */
		"/system.slice/cri-containerd-" ID ".scope",     /* containerd */
		"/kubepods/burstable/pod1f2e3d4c-aaaa-bbbb-cccc-000011112222/" ID,
		"/docker/" ID "/docker/" ID,                     /* docker in docker */
	};
	for (size_t i = 0; i < ELEMENTSOF(yes); i++)
		if (!vm_cgroup_names_container(yes[i]))
			fail_msg("not taken for a container: %s", yes[i]);
}

static void test_not_containers(void **state)
{
	static const char *const no[] = {
		"/",
		"",
		"/user.slice/user-1000.slice/session-3.scope",   /* a login */
		"/system.slice/cron.service",                    /* a service, PrivateTmp= or not */
		"/system.slice/snap.lxd.daemon.service",
		"/user.slice/user-1000.slice/user@1000.service/app.slice/snap.firefox.firefox-1234.scope",
		"/vt-1234/sandbox",                              /* `unshare -m` in a cgroup of its own */
		"/docker/" ID "x",                               /* 65 characters */
		"/docker/4a7f9c0e1b2d3f40",                      /* a short id */
		"/system.slice/docker-" ID ".service",
		"/system.slice/docker.service",                  /* the engine itself */
		"/podman-" ID ".scope",                          /* not an engine's prefix */
		"/docker/4A7F9C0E1B2D3F405162738495A6B7C8D9E0F1A2B3C4D5E6F708192A3B4C5D6E",
	};
	for (size_t i = 0; i < ELEMENTSOF(no); i++)
		if (vm_cgroup_names_container(no[i]))
			fail_msg("taken for a container: %s", no[i]);
}

int main(int argc, char **argv)
{
	(void)argc, (void)argv;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_containers),
		cmocka_unit_test(test_not_containers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
