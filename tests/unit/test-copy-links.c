/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The copy engine's hard-link table (copy-links.c): a caller builds the
 * tree, so what the table holds is bounded.
 *
 * Usage: test-copy-links FIXTURES-DIR (unused) */
#include <string.h>

#include "unit-util.h"

#include "copy-private.h"

/* Long paths reach the byte cap long before the entry cap: the add past
 * it fails with E2BIG, everything before it is still found. */
static void test_links_path_bytes_cap(void **state)
{
	struct vm_copy_links l = {0};
	char *dir = ut_repeat('d', 4000);
	char name[32];
	size_t n = 0;
	int r;
	for (;;) {
		snprintf(name, sizeof(name), "f%zu", n);
		r = vm_copy_links_add(&l, 1, (ino_t)n + 1, dir, name);
		if (r < 0)
			break;
		n++;
		UT_FAIL_IF(n > VM_COPY_LINKS_PATH_BYTES_MAX / 4000,
			   "%zu entries and no cap hit", n);
	}
	assert_int_equal(r, -E2BIG);
	assert_true(l.path_bytes <= VM_COPY_LINKS_PATH_BYTES_MAX);
	assert_true(n > VM_COPY_LINKS_PATH_BYTES_MAX / 4100);
	const char *first = vm_copy_links_find(&l, 1, 1);
	assert_non_null(first);
	assert_int_equal(strlen(first), 4000 + strlen("/f0"));
	assert_null(vm_copy_links_find(&l, 1, (ino_t)n + 1));
	vm_copy_links_free(&l);
	free(dir);
}

/* The path is dir/name, or name alone at the top. */
static void test_links_paths(void **state)
{
	struct vm_copy_links l = {0};
	assert_int_equal(vm_copy_links_add(&l, 7, 42, "", "top"), 0);
	assert_int_equal(vm_copy_links_add(&l, 7, 43, "a/b", "c"), 0);
	assert_string_equal(vm_copy_links_find(&l, 7, 42), "top");
	assert_string_equal(vm_copy_links_find(&l, 7, 43), "a/b/c");
	assert_null(vm_copy_links_find(&l, 8, 42));
	assert_int_equal(l.path_bytes, sizeof("top") + sizeof("a/b/c"));
	vm_copy_links_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_links_paths),
		cmocka_unit_test(test_links_path_bytes_cap),
	};
	return cmocka_run_group_tests_name("copy-links", tests, NULL, NULL);
}
