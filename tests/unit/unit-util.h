/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Small helpers shared by the cmocka unit tests: reading fixture files,
 * listing a fixture directory in a stable order, and running a test group
 * whose cases are only known at run time (one case per fixture file). */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>

/* Read a whole file; NUL-terminated, *ret_len without the NUL.  NULL
 * (errno set) on failure. */
char *ut_read_file(const char *path, size_t *ret_len);

/* "dir/name", malloc'ed (aborts on out of memory). */
char *ut_path(const char *dir, const char *name);

/* The names in dir ending with suffix, sorted with strcmp; NULL-terminated
 * array of malloc'ed strings (free with ut_strv_free).  NULL if the
 * directory cannot be read. */
char **ut_list_dir(const char *dir, const char *suffix, size_t *ret_n);
void ut_strv_free(char **v);

/* A string of n copies of c (malloc'ed). */
char *ut_repeat(char c, size_t n);

/* True if s starts with prefix / ends with suffix. */
int ut_startswith(const char *s, const char *prefix);
int ut_endswith(const char *s, const char *suffix);

/* argv[1]/sub, which must be a directory; exits 1 with a message if not. */
const char *ut_fixtures_dir(int argc, char **argv, const char *sub);

/* Fail the current test when cond holds, saying what went wrong (the
 * regression checks of bugs found earlier use it). */
#define UT_FAIL_IF(cond, ...)                                                  \
	do {                                                                   \
		if (cond) {                                                    \
			print_message("REGRESSION: " __VA_ARGS__);             \
			print_message("\n");                                   \
			fail();                                                \
		}                                                              \
	} while (0)

/* A fixture pair: NAME.request and NAME.reply in one directory. */
struct ut_pair {
	char *name;    /* NAME */
	char *request; /* the two files' paths */
	char *reply;
	void *state;   /* the test program's, the same for every pair */
};

/* Run every pair in dir (sorted by name) with test_func, whose *state is
 * the struct ut_pair, then the fixed tests, as one cmocka group; the
 * number of failed tests.  Exits 1 saying why when the directory cannot
 * be read, a .request has no .reply or the other way round, or there are
 * fewer than min pairs. */
int ut_run_pairs(const char *group, const char *dir, size_t min,
		 void (*test_func)(void **state), void *state, const struct CMUnitTest *fixed,
		 size_t nfixed);

/* json_equal, except that a string ending in '*' in want matches any
 * string in got that starts with what precedes the '*' ("*" alone: any
 * string).  On a mismatch, where says where. */
bool ut_json_matches(json_t *want, json_t *got, char *where, size_t wsz);
