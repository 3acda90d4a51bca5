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
#include <stdio.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "unit-util.h"

#include "inuse.h"

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
		int r = vm_inuse_scan_mountinfo(p, dev, prefix, counts);
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
	assert_int_equal(vm_inuse_scan_mountinfo(p, POOL_DEV, "/volumes", counts), 0);
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
	assert_int_equal(vm_inuse_scan_mountinfo(p, POOL_DEV, "/volumes", counts), -ENOENT);
	json_t *want = parse("{\"ci-1\": 1}");
	assert_true(json_equal(counts, want));
	json_decref(want);
	json_decref(counts);
	free(p);
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
	};
	int failed = cmocka_run_group_tests_name("inuse", tests, NULL, NULL);
	free((char *)dir);
	return failed;
}
