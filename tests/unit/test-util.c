/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The cleanup helpers of util.h.
 *
 * Usage: test-util FIXTURES-DIR (unused) */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "unit-util.h"

#include "util.h"

/* closep forgets the fd: closing a _cleanup_close_ variable early and
 * then leaving its scope must not close it a second time, which would
 * close whatever has been opened under the same number meanwhile (under
 * load, another thread's fd: volmgrd aborted). */
static void test_closep_resets(void **state)
{
	int other;
	{
		_cleanup_close_ int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		int number = fd;
		closep(&fd);
		assert_int_equal(fd, -1);
		/* The lowest free number: the one just closed. */
		other = open("/dev/null", O_RDONLY | O_CLOEXEC);
		assert_int_equal(other, number);
	} /* the cleanup of fd runs here */
	UT_FAIL_IF(fcntl(other, F_GETFD) < 0,
		   "the cleanup closed fd %d a second time (it belonged to someone else by then)",
		   other);
	close(other);
}

static void test_closep_negative(void **state)
{
	int fd = -1;
	closep(&fd);
	assert_int_equal(fd, -1);
	fd = -EBADF;
	closep(&fd);
	assert_int_equal(fd, -EBADF);
}

/* TAKE_FD hands the fd over: the cleanup does nothing. */
static void test_take_fd(void **state)
{
	int kept;
	{
		_cleanup_close_ int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		kept = TAKE_FD(fd);
		assert_int_equal(fd, -1);
	}
	assert_true(fcntl(kept, F_GETFD) >= 0);
	close(kept);
}

/* Every class of byte a caller can put into a log line (issue 13, item
 * 7): C0 controls, DEL, C1 controls (U+0080..U+009F, as UTF-8), raw
 * bytes that are no UTF-8 (a lone continuation byte, a cut sequence, an
 * overlong form, a surrogate, 0xff), and a backslash. */
static void check_escape(const char *in, const char *want)
{
	char out[256];
	size_t n = vm_log_escape(in, out, sizeof(out));
	if (strcmp(out, want) != 0)
		fail_msg("escape of %zu bytes: got \"%s\", want \"%s\"", strlen(in), out, want);
	assert_int_equal(n, strlen(want));
}

static void test_log_escape(void **state)
{
	check_escape("plain ascii", "plain ascii");
	check_escape("tab\there\nnew\rline\x1b[31m", "tab\\x09here\\x0anew\\x0dline\\x1b[31m");
	check_escape("del\x7f", "del\\x7f");
	check_escape("c1 \xc2\x85 nel \xc2\x9b csi \xc2\x80", "c1 \\xc2\\x85 nel \\xc2\\x9b csi \\xc2\\x80");
	check_escape("lone \x80 cut \xe2\x82 overlong \xc0\xaf ff \xff",
		     "lone \\x80 cut \\xe2\\x82 overlong \\xc0\\xaf ff \\xff");
	check_escape("surrogate \xed\xa0\x80", "surrogate \\xed\\xa0\\x80");
	check_escape("back\\slash", "back\\\\slash");
	/* valid UTF-8 outside the controls stays as it is */
	check_escape("caf\xc3\xa9 \xc2\xa0 \xe2\x82\xac \xf0\x9f\x90\xb3", "caf\xc3\xa9 \xc2\xa0 \xe2\x82\xac \xf0\x9f\x90\xb3");
	/* bounded, cut at a whole escape */
	char small[8];
	assert_int_equal(vm_log_escape("\x01\x02", small, sizeof(small)), 4);
	assert_string_equal(small, "\\x01");
	assert_int_equal(vm_log_escape("abc", small, 1), 0);
	assert_string_equal(small, "");
}

/* Context added on the way up keeps the inner words and code; an error
 * not set yet is made from r; NULL is allowed. */
static void test_error_wrap(void **state)
{
	(void)state;
	struct vm_error e = {0};
	vm_error_set(&e, ENOENT, "no such cache: c1");
	assert_int_equal(vm_error_wrap(&e, -ENOENT, "volume %s", "v1"), -ENOENT);
	assert_int_equal(e.code, ENOENT);
	assert_string_equal(e.msg, "volume v1: no such cache: c1");

	struct vm_error unset = {0};
	assert_int_equal(vm_error_wrap(&unset, -EACCES, "open %s", "x"), -EACCES);
	assert_int_equal(unset.code, EACCES);
	assert_string_equal(unset.msg, "open x: Permission denied");

	assert_int_equal(vm_error_wrap(NULL, -EINVAL, "nothing"), -EINVAL);
	/* A success handed in by mistake never reads as one. */
	struct vm_error z = {0};
	assert_int_equal(vm_error_wrap(&z, 0, "odd"), -EIO);

	/* Cut to fit, and still valid UTF-8 where the cut split "é". */
	struct vm_error big = {0};
	char inner[600];
	memset(inner, 'a', sizeof(inner));
	inner[sizeof(inner) - 1] = '\0';
	vm_error_set(&big, EIO, "%s", inner);
	char ctx[sizeof(big.msg)];
	memset(ctx, 'b', sizeof(ctx) - 3);
	memcpy(ctx + sizeof(ctx) - 3, "\xc3\xa9", 3);
	vm_error_wrap(&big, -EIO, "%s", ctx);
	assert_int_equal(strlen(big.msg), sizeof(big.msg) - 1);
	assert_false(vm_utf8_has_control(big.msg, strlen(big.msg)));
}

static void test_error_copy(void **state)
{
	(void)state;
	struct vm_error src = {0}, dst = {0};
	vm_error_set(&src, EBUSY, "volume v1 is in use");
	assert_int_equal(vm_error_copy(&dst, &src), -EBUSY);
	assert_int_equal(dst.code, EBUSY);
	assert_string_equal(dst.msg, "volume v1 is in use");
	/* The first error wins: a set dst keeps its own. */
	struct vm_error other = {0};
	vm_error_set(&other, ENOENT, "gone");
	vm_error_copy(&dst, &other);
	assert_string_equal(dst.msg, "volume v1 is in use");
	assert_int_equal(vm_error_copy(NULL, &other), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_closep_resets),
		cmocka_unit_test(test_closep_negative),
		cmocka_unit_test(test_take_fd),
		cmocka_unit_test(test_log_escape),
		cmocka_unit_test(test_error_wrap),
		cmocka_unit_test(test_error_copy),
	};
	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
