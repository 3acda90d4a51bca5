/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What makes a caller a container (issue 13, item 5): a cgroup an engine
 * made for one, named by the container's 64-hex id, checked by
 * vm_cgroup_names_container() against the layouts of Docker (cgroupfs
 * and systemd drivers), Podman, CRI-O, containerd/Kubernetes, and against
 * what host services, sessions and snaps look like; and which line of
 * /proc/PID/cgroup vm_cgroup_of_pid() takes, on cgroup v2, hybrid and v1
 * hosts (a fake /proc in a temporary directory).
 *
 * Usage: test-caller FIXTURES-DIR (unused) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit-util.h"

#include "caller.h"
#include "cgroup.h"

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

#define ID2 "fa43e941542770efde9fefecfb823f18d001e1fad663f81ad6d9e317cb868000"

/* vm_cgroup_of_pid on /proc/1/cgroup holding TEXT. */
static void cgroup_of(const char *text, char ret[static VM_CGROUP_MAX + 1])
{
	char proc[] = "/tmp/test-caller-proc.XXXXXX";
	assert_non_null(mkdtemp(proc));
	char dir[64], file[80];
	snprintf(dir, sizeof(dir), "%s/1", proc);
	snprintf(file, sizeof(file), "%s/cgroup", dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(vm_cgroup_of_pid(proc, 1, ret), 0);
	unlink(file);
	rmdir(dir);
	rmdir(proc);
}

static void test_line_taken(void **state)
{
	char cg[VM_CGROUP_MAX + 1];
	/* cgroup v2: the one line */
	cgroup_of("0::/system.slice/docker-" ID ".scope\n", cg);
	assert_string_equal(cg, ":/system.slice/docker-" ID ".scope");
	/* hybrid with the systemd driver: unified and name=systemd alike,
	 * the unified one taken */
	cgroup_of("9:name=systemd:/system.slice/docker-" ID ".scope\n8:pids:/system.slice/docker-" ID
		  ".scope\n0::/system.slice/docker-" ID ".scope\n",
		  cg);
	assert_string_equal(cg, ":/system.slice/docker-" ID ".scope");
	/* cgroup v1, podman (cgroupfs) inside a podman container: the
	 * unified line names only the outer container, the v1 lines the
	 * inner one too (what a job of helpers/podman-runner shows) */
	cgroup_of("9:name=systemd:/libpod_parent/libpod-" ID "/libpod_parent/libpod-" ID2
		  "\n8:pids:/libpod_parent/libpod-" ID "/libpod_parent/libpod-" ID2
		  "\n4:memory:/libpod_parent/libpod-" ID "/libpod_parent/libpod-" ID2
		  "\n0::/libpod_parent/libpod-" ID "\n",
		  cg);
	assert_string_equal(cg, "name=systemd:/libpod_parent/libpod-" ID "/libpod_parent/libpod-" ID2);
	/* a hybrid host's cgroupfs engine: unified shows the engine's
	 * service, v1 the container */
	cgroup_of("8:pids:/docker/" ID "\n0::/system.slice/containerd.service\n", cg);
	assert_string_equal(cg, "pids:/docker/" ID);
	/* equally specific: the unified line */
	cgroup_of("8:pids:/docker/" ID "\n0::/docker/" ID "\n", cg);
	assert_string_equal(cg, ":/docker/" ID);
	/* the root everywhere, and controllers engines do not use */
	cgroup_of("9:name=systemd:/\n3:cpuset:/docker/" ID "\n0::/\n", cg);
	assert_string_equal(cg, "");
}

/* vm_cgroup_pid_within on /proc/1/cgroup = A and /proc/2/cgroup = TOP */
static int within(const char *a, const char *top)
{
	char proc[] = "/tmp/test-caller-proc.XXXXXX";
	assert_non_null(mkdtemp(proc));
	const char *texts[] = {a, top};
	char dir[64], file[80];
	for (int i = 0; i < 2; i++) {
		snprintf(dir, sizeof(dir), "%s/%d", proc, i + 1);
		snprintf(file, sizeof(file), "%s/cgroup", dir);
		assert_int_equal(mkdir(dir, 0700), 0);
		FILE *f = fopen(file, "w");
		assert_non_null(f);
		fputs(texts[i], f);
		assert_int_equal(fclose(f), 0);
	}
	int r = vm_cgroup_pid_within(proc, 1, 2);
	for (int i = 0; i < 2; i++) {
		snprintf(dir, sizeof(dir), "%s/%d", proc, i + 1);
		snprintf(file, sizeof(file), "%s/cgroup", dir);
		unlink(file);
		rmdir(dir);
	}
	rmdir(proc);
	return r;
}

static void test_within(void **state)
{
	const char *init = "9:name=systemd:/docker/" ID "\n8:pids:/docker/" ID "\n0::/\n";
	/* the container's own process, and one in a sub-cgroup */
	assert_int_equal(within(init, init), 1);
	assert_int_equal(within("9:name=systemd:/docker/" ID "/x\n8:pids:/docker/" ID "/x\n0::/\n", init), 1);
	/* moved into another container's cgroup in the one hierarchy it
	 * could write (Podman's systemd mode): still caught by pids */
	assert_int_equal(within("9:name=systemd:/docker/" ID2 "\n8:pids:/docker/" ID2 "x\n0::/\n",
				"9:name=systemd:/docker/" ID2 "\n8:pids:/docker/" ID2 "\n0::/\n"),
			 0);
	assert_int_equal(within("9:name=systemd:/docker/" ID2 "\n8:pids:/docker/" ID "\n0::/\n",
				"9:name=systemd:/docker/" ID2 "\n8:pids:/docker/" ID2 "\n0::/\n"),
			 0);
	/* a prefix that is not a parent */
	assert_int_equal(within("8:pids:/docker/" ID "0\n", "8:pids:/docker/" ID "\n"), 0);
	/* hierarchies only one side lists, and the root, say nothing */
	assert_int_equal(within("8:pids:/docker/" ID "\n4:memory:/else\n", "8:pids:/docker/" ID "\n3:cpuset:/\n"), 1);
}

int main(int argc, char **argv)
{
	(void)argc, (void)argv;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_containers),
		cmocka_unit_test(test_not_containers),
		cmocka_unit_test(test_line_taken),
		cmocka_unit_test(test_within),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
