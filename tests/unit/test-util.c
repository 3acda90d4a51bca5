/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The cleanup helpers of util.h.
 *
 * Usage: test-util FIXTURES-DIR (unused) */
#include <fcntl.h>
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_closep_resets),
		cmocka_unit_test(test_closep_negative),
		cmocka_unit_test(test_take_fd),
	};
	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
