/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* "In use" from the kernel's mount table: vm_inuse_scan_mountinfo()
 * against committed mountinfo files in FIXTURES/mountinfo.
 *
 * The pool in the fixtures is a btrfs file system with device number 0:45
 * (/dev/loop3), mounted at /var/lib/volmgr with root "/", so the volumes
 * directory is "/volumes" inside it.  subvol-pool.mountinfo has the pool
 * on the subvolume /@volmgr instead.
 *
 * Usage: test-inuse FIXTURES-DIR */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit-util.h"

#include "inuse.h"

/* The pool as the manager describes it; no overlay layers unless a test
 * asks for them. */
#define WHERE(dev, prefix) (&(const struct vm_inuse_where){(dev), (prefix), NULL})

#define RUNNER_NAME                                                            \
	"runner-abc123xy-project-42-concurrent-0-cache-3c3f060a0374fc8bc39395164f415a70"

static const char *dir;

static json_t *parse(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, 0, &jerr);
	if (!j)
		fail_msg("bad test JSON %s: %s", text, jerr.text);
	return j;
}

/* Scan the files (in order, into one counts object) and compare. */
static void check_scan(const char *const *files, dev_t dev, const char *prefix,
		       const char *want_json)
{
	json_t *counts = json_object();
	assert_non_null(counts);
	for (const char *const *f = files; *f; f++) {
		char *p = ut_path(dir, *f);
		int r = vm_inuse_scan_mountinfo(p, WHERE(dev, prefix), counts);
		if (r < 0)
			fail_msg("%s: %s", p, strerror(-r));
		free(p);
	}
	json_t *want = parse(want_json);
	if (!json_equal(counts, want)) {
		char *got = json_dumps(counts, JSON_SORT_KEYS);
		fail_msg("%s (dev %u:%u, prefix %s): counts %s, expected %s", files[0],
			 major(dev), minor(dev), prefix, got, want_json);
	}
	json_decref(want);
	json_decref(counts);
}

#define FILES(...) ((const char *const[]){__VA_ARGS__, NULL})
#define POOL_DEV makedev(0, 45)

/* The host namespace: the pool itself is mounted with root "/", which is
 * not a volume; nothing else is on the pool. */
static void test_host(void **state)
{
	check_scan(FILES("host.mountinfo"), POOL_DEV, "/volumes", "{}");
}

/* A container with ci-1 bind-mounted twice (the volume and a directory in
 * it), ci-2 once, and mounts that must not count: the same path on another
 * btrfs (0:46), on a device with the same minor (8:45), /volumesX/...,
 * /caches/..., the volumes directory itself, staging, and "/vol". */
static void test_container(void **state)
{
	check_scan(FILES("container-a.mountinfo"), POOL_DEV, "/volumes",
		   "{\"ci-1\": 2, \"ci-2\": 1}");
}

/* ci-10 is not ci-1; a deleted root (//deleted) still holds its volume;
 * the longest runner-style name; "/volumes//x" names nothing. */
static void test_container_names(void **state)
{
	check_scan(FILES("container-b.mountinfo"), POOL_DEV, "/volumes",
		   "{\"ci-1\": 1, \"ci-3\": 1, \"ci-10\": 1, \"" RUNNER_NAME "\": 1}");
}

/* Several namespaces add up in one counts object. */
static void test_accumulate(void **state)
{
	check_scan(FILES("host.mountinfo", "container-a.mountinfo", "container-b.mountinfo"),
		   POOL_DEV, "/volumes",
		   "{\"ci-1\": 3, \"ci-2\": 1, \"ci-3\": 1, \"ci-10\": 1, \"" RUNNER_NAME "\": 1}");
	/* and an existing count is added to, not replaced */
	json_t *counts = parse("{\"ci-1\": 5, \"other\": 1}");
	char *p = ut_path(dir, "container-a.mountinfo");
	assert_int_equal(vm_inuse_scan_mountinfo(p, WHERE(POOL_DEV, "/volumes"), counts), 0);
	json_t *want = parse("{\"ci-1\": 7, \"ci-2\": 1, \"other\": 1}");
	assert_true(json_equal(counts, want));
	json_decref(want);
	json_decref(counts);
	free(p);
}

/* Only the pool's device counts. */
static void test_other_device(void **state)
{
	check_scan(FILES("container-a.mountinfo"), makedev(0, 46), "/volumes",
		   "{\"ci-1\": 1}");
	check_scan(FILES("container-a.mountinfo", "container-b.mountinfo"),
		   makedev(0, 99), "/volumes", "{}");
	check_scan(FILES("container-a.mountinfo"), makedev(8, 45), "/volumes",
		   "{\"ci-2\": 1}");
}

/* The prefix decides what is a volume: caches are not counted as volumes,
 * but the same scan with "/caches" finds them. */
static void test_prefix(void **state)
{
	check_scan(FILES("container-a.mountinfo"), POOL_DEV, "/caches", "{\"proj\": 1}");
	check_scan(FILES("container-a.mountinfo"), POOL_DEV, "/volumesX", "{\"ci-1\": 1}");
	check_scan(FILES("container-a.mountinfo"), POOL_DEV, "/volume", "{}");
}

/* A pool on a subvolume: roots carry the subvolume's path. */
static void test_subvol_pool(void **state)
{
	check_scan(FILES("subvol-pool.mountinfo"), POOL_DEV, "/@volmgr/volumes",
		   "{\"ci-1\": 2}");
	check_scan(FILES("subvol-pool.mountinfo"), POOL_DEV, "/volumes", "{\"ci-2\": 1}");
}

/* A line libmount cannot parse does not hide the mounts after it: a
 * volume must never look unused because of one odd line. */
static void test_broken_line(void **state)
{
	check_scan(FILES("broken-line.mountinfo"), POOL_DEV, "/volumes",
		   "{\"ci-1\": 1, \"ci-2\": 1}");
}

static void test_empty_and_missing(void **state)
{
	check_scan(FILES("empty.mountinfo"), POOL_DEV, "/volumes", "{}");

	/* a process that is gone: its mountinfo cannot be read */
	json_t *counts = parse("{\"ci-1\": 1}");
	char *p = ut_path(dir, "no-such-process.mountinfo");
	assert_int_equal(vm_inuse_scan_mountinfo(p, WHERE(POOL_DEV, "/volumes"), counts), -ENOENT);
	json_t *want = parse("{\"ci-1\": 1}");
	assert_true(json_equal(counts, want));
	json_decref(want);
	json_decref(counts);
	free(p);
}

/* ---- overlay layers (podman's -v VOL:/dst:O) ---- */

static json_t *scan_where(const char *file, const struct vm_inuse_where *w)
{
	json_t *counts = json_object();
	char *p = ut_path(dir, file);
	int r = vm_inuse_scan_mountinfo(p, w, counts);
	if (r < 0)
		fail_msg("%s: %s", p, strerror(-r));
	free(p);
	return counts;
}

static void expect_counts(json_t *counts, const char *want_json, const char *what)
{
	json_t *want = parse(want_json);
	if (!json_equal(counts, want))
		fail_msg("%s: counts %s, expected %s", what, json_dumps(counts, JSON_SORT_KEYS),
			 want_json);
	json_decref(want);
	json_decref(counts);
}

#define LAYERS "/var/lib/volmgr/volumes"

/* Layers in volumes, on the pool's own mount: counted; escaped ':' and
 * ',' in layer paths; a cache's directory is no volume. */
static void test_overlay_layers(void **state)
{
	const struct vm_inuse_where w = {POOL_DEV, "/volumes", LAYERS, NULL};
	expect_counts(scan_where("overlay-podman.mountinfo", &w),
		      "{\"ci-1\": 1, \"ci-2\": 1}", "podman's overlays");
	/* without layer_path, overlays are not looked at */
	expect_counts(scan_where("overlay-podman.mountinfo", WHERE(POOL_DEV, "/volumes")), "{}",
		      "layers not asked for");
}

/* A namespace that mounted a tmpfs over the pool's path (anyone can, in
 * a user namespace of their own) and made overlays of fake "volumes"
 * there: the path string names a volume, the mount under it is not the
 * pool -- nothing counts (issue 13 review: a volume pinned in use). */
static void test_overlay_on_fake_pool(void **state)
{
	const struct vm_inuse_where w = {POOL_DEV, "/volumes", LAYERS, NULL};
	expect_counts(scan_where("overlay-fake.mountinfo", &w), "{}", "layers on a tmpfs");
}

/* The path of a layer is what the namespace's mounts make of it: here
 * volumes/ci-1 is a bind mount of ci-3. */
static void test_overlay_through_bind(void **state)
{
	const struct vm_inuse_where w = {POOL_DEV, "/volumes", LAYERS, NULL};
	expect_counts(scan_where("overlay-bind.mountinfo", &w), "{\"ci-3\": 2}",
		      "a layer through a bind mount");
}

/* Only known volumes are counted when the caller says which there are:
 * a table cannot make the scan hold more names than there are volumes. */
static void test_names_filter(void **state)
{
	json_t *names = parse("{\"ci-2\": true, \"ci-10\": true}");
	const struct vm_inuse_where w = {POOL_DEV, "/volumes", LAYERS, names};
	expect_counts(scan_where("container-b.mountinfo", &w), "{\"ci-10\": 1}",
		      "container-b, two known volumes");
	expect_counts(scan_where("overlay-podman.mountinfo", &w), "{\"ci-2\": 1}",
		      "overlays, two known volumes");
	json_decref(names);
}

/* ---- the whole scan over a fake /proc (a directory of pid entries) ---- */

static char *make_tmpdir(void)
{
	const char *t = getenv("TMPDIR");
	char *d = ut_path(t && *t ? t : "/tmp", "test-inuse.XXXXXX");
	assert_non_null(mkdtemp(d));
	return d;
}

static void rm_tree(const char *d)
{
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", d);
	assert_int_equal(system(cmd), 0);
}

/* A fake /proc in a scratch directory: tmp/proc for the pid entries and
 * tmp/ns-inode, a file whose hard links stand for one mount namespace. */
struct fake_proc {
	char *tmp, *proc, *ns;
};

static void fake_proc_make(struct fake_proc *f)
{
	f->tmp = make_tmpdir();
	f->proc = ut_path(f->tmp, "proc");
	f->ns = ut_path(f->tmp, "ns-inode");
	int fd = open(f->ns, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(mkdir(f->proc, 0755), 0);
}

static void fake_proc_done(struct fake_proc *f)
{
	rm_tree(f->tmp);
	free(f->ns);
	free(f->proc);
	free(f->tmp);
}

/* A pid entry PROC/PID with ns/mnt a hard link to NS (so every pid given
 * the same NS is in one namespace) and, unless mountinfo is NULL, a
 * mountinfo that is a symbolic link to that fixture. */
static void fake_pid(const char *proc, const char *pid, const char *ns,
		     const char *mountinfo)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s/%s", proc, pid);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/%s/ns", proc, pid);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/%s/ns/mnt", proc, pid);
	assert_int_equal(link(ns, p), 0);
	if (mountinfo) {
		char *fixture = ut_path(dir, mountinfo);
		snprintf(p, sizeof(p), "%s/%s/mountinfo", proc, pid);
		assert_int_equal(symlink(fixture, p), 0);
		free(fixture);
	}
}

static void scan_expect(const char *proc, const char *want_json, unsigned want_unreadable)
{
	json_t *counts = NULL;
	unsigned unreadable = 99;
	struct vm_error err = {0};
	assert_int_equal(vm_inuse_scan(proc, WHERE(POOL_DEV, "/volumes"), &counts, &unreadable, &err), 0);
	json_t *want = parse(want_json);
	if (!json_equal(counts, want)) {
		char *got = json_dumps(counts, JSON_SORT_KEYS);
		fail_msg("%s: counts %s, expected %s", proc, got, want_json);
	}
	assert_int_equal(unreadable, want_unreadable);
	json_decref(want);
	json_decref(counts);
}

/* The first process of a namespace exits between the look at its
 * namespace and the read of its mountinfo: another process of the same
 * namespace must still be read.  (Marking the namespace as read before
 * reading it hid its mounts: a volume in use looked free.)  Both names
 * and both creation orders, so that whatever order readdir returns, one
 * of the cases has the vanished process first. */
static void test_vanished_first_of_namespace(void **state)
{
	static const char *const names[][2] = {{"10", "11"}, {"11", "10"}};
	for (int order = 0; order < 2; order++) {
		for (int n = 0; n < 2; n++) {
			struct fake_proc f;
			fake_proc_make(&f);
			const char *gone = names[n][0], *live = names[n][1];
			if (order == 0) {
				fake_pid(f.proc, gone, f.ns, NULL);
				fake_pid(f.proc, live, f.ns, "container-a.mountinfo");
			} else {
				fake_pid(f.proc, live, f.ns, "container-a.mountinfo");
				fake_pid(f.proc, gone, f.ns, NULL);
			}
			scan_expect(f.proc, "{\"ci-1\": 2, \"ci-2\": 1}", 0);
			fake_proc_done(&f);
		}
	}
}

/* A process that is exiting (here: a zombie, exited and not reaped) has
 * no mount namespace any more: /proc/PID/mountinfo gives EINVAL and
 * ns/mnt ENOENT.  That is "gone", not "unreadable": counting it made the
 * scan fail closed, and rm refused a free volume (about 1 in 1,700 under
 * load).  The fake /proc links one entry to the real zombie. */
static void test_zombie_is_gone(void **state)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	/* Wait until it has exited, without reaping it. */
	siginfo_t si;
	assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);

	struct fake_proc f;
	fake_proc_make(&f);
	const char *proc = f.proc;
	char target[64], name[32], link_path[4200];
	snprintf(target, sizeof(target), "/proc/%d", (int)pid);
	snprintf(name, sizeof(name), "%d", (int)pid);
	snprintf(link_path, sizeof(link_path), "%s/%s", proc, name);
	assert_int_equal(symlink(target, link_path), 0);

	json_t *counts = json_object();
	assert_int_equal(vm_inuse_scan_pid(proc, name, WHERE(POOL_DEV, "/volumes"), counts, NULL), 0);
	json_decref(counts);
	scan_expect(proc, "{}", 0);
	/* The race itself: its namespace was still there when looked at
	 * (ns/mnt here a plain file), then it exited before its mountinfo
	 * was opened (a link to the zombie's: EINVAL). */
	fake_pid(proc, "2", f.ns, NULL);
	char zmi[64], *mi = ut_path(proc, "2/mountinfo");
	snprintf(zmi, sizeof(zmi), "/proc/%d/mountinfo", (int)pid);
	assert_int_equal(symlink(zmi, mi), 0);
	counts = json_object();
	assert_int_equal(vm_inuse_scan_pid(proc, "2", WHERE(POOL_DEV, "/volumes"), counts, NULL), 0);
	json_decref(counts);
	scan_expect(proc, "{}", 0);
	free(mi);
	/* A pid that never existed is gone too. */
	char *never = ut_path(proc, "99999999");
	assert_int_equal(symlink("/proc/no-such-pid", never), 0);
	free(never);
	scan_expect(proc, "{}", 0);

	assert_int_equal(waitpid(pid, NULL, 0), pid);
	fake_proc_done(&f);
}

/* A thread group whose leader exited while a thread runs on: the
 * leader's ns link and mountinfo are gone, its thread's mountinfo is not.
 * The mounts must be read from the thread (skipping the group hid them). */
static void test_zombie_leader_live_thread(void **state)
{
	struct fake_proc f;
	fake_proc_make(&f);
	char p[4096];
	const char *const dirs[] = {"20", "20/task", "20/task/20", "20/task/21"};
	for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
		snprintf(p, sizeof(p), "%s/%s", f.proc, dirs[i]);
		assert_int_equal(mkdir(p, 0755), 0);
	}
	char *fixture = ut_path(dir, "container-a.mountinfo");
	snprintf(p, sizeof(p), "%s/20/task/21/mountinfo", f.proc);
	assert_int_equal(symlink(fixture, p), 0);
	scan_expect(f.proc, "{\"ci-1\": 2, \"ci-2\": 1}", 0);
	free(fixture);
	fake_proc_done(&f);
}

/* A mountinfo that opens but cannot be parsed, from a process that is
 * still there: unreadable (the scan fails closed), never "gone". */
static void test_unparsable_is_unreadable(void **state)
{
	struct fake_proc f;
	fake_proc_make(&f);
	fake_pid(f.proc, "30", f.ns, NULL);
	char p[4096];
	snprintf(p, sizeof(p), "%s/30/mountinfo", f.proc);
	assert_int_equal(mkdir(p, 0755), 0); /* opens, does not read */
	scan_expect(f.proc, "{}", 1);
	fake_proc_done(&f);
}

/* And a live process is read: this one. */
static void test_self_is_read(void **state)
{
	char name[32];
	snprintf(name, sizeof(name), "%d", (int)getpid());
	json_t *counts = json_object();
	assert_int_equal(vm_inuse_scan_pid("/proc", name, WHERE(POOL_DEV, "/volumes"), counts, NULL), 1);
	json_decref(counts);
}

int main(int argc, char **argv)
{
	dir = ut_fixtures_dir(argc, argv, "mountinfo");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_host),
		cmocka_unit_test(test_container),
		cmocka_unit_test(test_container_names),
		cmocka_unit_test(test_accumulate),
		cmocka_unit_test(test_other_device),
		cmocka_unit_test(test_prefix),
		cmocka_unit_test(test_subvol_pool),
		cmocka_unit_test(test_broken_line),
		cmocka_unit_test(test_empty_and_missing),
		cmocka_unit_test(test_overlay_layers),
		cmocka_unit_test(test_overlay_on_fake_pool),
		cmocka_unit_test(test_overlay_through_bind),
		cmocka_unit_test(test_names_filter),
		cmocka_unit_test(test_vanished_first_of_namespace),
		cmocka_unit_test(test_zombie_is_gone),
		cmocka_unit_test(test_zombie_leader_live_thread),
		cmocka_unit_test(test_unparsable_is_unreadable),
		cmocka_unit_test(test_self_is_read),
	};
	int failed = cmocka_run_group_tests_name("inuse", tests, NULL, NULL);
	free((char *)dir);
	return failed;
}
