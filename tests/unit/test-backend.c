/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The pure parts behind the backends: names, the registry of trees being
 * read by copies (deferred deletes), and the bounded tree count. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "unit-util.h"
#include "backend.h"
#include "readers.h"
#include "treecount.h"

static void test_names(void **state)
{
	(void)state;
	enum vm_backend_kind k;
	const char *names[] = {"auto", "btrfs", "reflink", "copy"};
	for (size_t i = 0; i < ELEMENTSOF(names); i++) {
		assert_int_equal(vm_backend_parse(names[i], &k), 0);
		assert_string_equal(vm_backend_name(k), names[i]);
	}
	assert_int_equal(vm_backend_parse("BTRFS", &k), -EINVAL);
	assert_int_equal(vm_backend_parse("", &k), -EINVAL);
	assert_int_equal(vm_backend_parse(NULL, &k), -EINVAL);
	enum vm_copy_io io;
	assert_int_equal(vm_copy_io_parse("io_uring", &io), 0);
	assert_int_equal(io, VM_COPY_IO_URING);
	assert_int_equal(vm_copy_io_parse("syscalls", &io), 0);
	assert_int_equal(io, VM_COPY_IO_SYSCALLS);
	assert_int_equal(vm_copy_io_parse("uring", &io), -EINVAL);
}

static void test_readers(void **state)
{
	(void)state;
	struct vm_readers rs = {0};
	char **d = NULL;
	assert_false(vm_readers_busy(&rs, 1, 2));
	assert_int_equal(vm_readers_defer(&rs, 1, 2, "x"), -ENOENT); /* nobody reads it */
	assert_int_equal(vm_readers_hold(&rs, 1, 2), 0);
	assert_int_equal(vm_readers_hold(&rs, 1, 2), 0);
	assert_int_equal(vm_readers_hold(&rs, 1, 3), 0);
	assert_int_equal(vm_readers_count(&rs), 2);
	assert_true(vm_readers_busy(&rs, 1, 2));
	assert_int_equal(vm_readers_defer(&rs, 1, 2, "trash-a"), 0);
	assert_int_equal(vm_readers_defer(&rs, 1, 2, "trash-b"), 0);
	/* Not the last reader: nothing to delete yet. */
	vm_readers_release(&rs, 1, 2, &d);
	assert_null(d);
	assert_true(vm_readers_busy(&rs, 1, 2));
	vm_readers_release(&rs, 1, 2, &d);
	assert_non_null(d);
	assert_string_equal(d[0], "trash-a");
	assert_string_equal(d[1], "trash-b");
	assert_null(d[2]);
	for (size_t i = 0; d[i]; i++)
		free(d[i]);
	free(d);
	assert_false(vm_readers_busy(&rs, 1, 2));
	assert_true(vm_readers_busy(&rs, 1, 3));
	/* Releasing what is not held does nothing. */
	vm_readers_release(&rs, 9, 9, &d);
	assert_null(d);
	vm_readers_release(&rs, 1, 3, &d);
	assert_null(d);
	assert_int_equal(vm_readers_count(&rs), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(vm_readers_hold(&rs, 7, (ino_t)i), 0);
	assert_int_equal(vm_readers_defer(&rs, 7, 50, "t"), 0);
	vm_readers_done(&rs); /* frees deferred names too */
}

static void write_file(int dirfd, const char *name, size_t size)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

static void test_treecount(void **state)
{
	(void)state;
	char dir[] = "/tmp/test-treecount.XXXXXX";
	assert_non_null(mkdtemp(dir));
	int root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(root >= 0);
	assert_int_equal(mkdirat(root, "a", 0755), 0);
	int a = openat(root, "a", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (int i = 0; i < 10; i++) {
		char n[16];
		snprintf(n, sizeof(n), "f%d", i);
		write_file(a, n, 1000);
	}
	assert_int_equal(symlinkat("/", root, "up"), 0); /* counted, never followed */
	assert_int_equal(mkdirat(a, "b", 0755), 0);
	struct vm_treecount t;
	struct vm_error err = {0};
	assert_int_equal(vm_treecount(root, 0, 0, &t, &err), 0);
	assert_int_equal(t.files, 11);
	assert_int_equal(t.dirs, 2);
	assert_int_equal(t.bytes, 10000);
	assert_false(t.over);
	/* Early stop: past the limit of files, or of bytes. */
	assert_int_equal(vm_treecount(root, 5, 0, &t, &err), 0);
	assert_true(t.over);
	assert_true(t.files <= 7);
	assert_int_equal(vm_treecount(root, 0, 2500, &t, &err), 0);
	assert_true(t.over);
	assert_int_equal(vm_treecount(root, 11, 10000, &t, &err), 0);
	assert_false(t.over);
	/* The caller's fd offset is not moved. */
	assert_int_equal(vm_treecount(a, 0, 0, &t, &err), 0);
	assert_int_equal(vm_treecount(a, 0, 0, &t, &err), 0);
	assert_int_equal(t.files, 10);
	/* Not a directory. */
	int f = openat(a, "f1", O_RDONLY | O_CLOEXEC);
	assert_int_equal(vm_treecount(f, 0, 0, &t, &err), -ENOTDIR);
	close(f);
	close(a);
	close(root);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_readers),
		cmocka_unit_test(test_treecount),
	};
	return cmocka_run_group_tests_name("backend", tests, NULL, NULL);
}
