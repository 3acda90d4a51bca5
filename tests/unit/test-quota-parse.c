/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vm_parse_size: sizes in powers of 1024 with K/M/G/T units.  Every
 * rejection is checked for the errno it returns, the code recorded in the
 * error, a non-empty message, and an untouched output. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "quota.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define TiB (UINT64_C(1) << 40)

/* A printable, bounded rendering of a test input for failure messages. */
static const char *show(const char *s)
{
	static char buf[128];
	size_t o = 0;
	if (!s)
		return "(null)";
	for (; *s && o + 8 < sizeof(buf); s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	if (*s)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "...");
	buf[o] = '\0';
	return buf;
}

static void expect_size(const char *s, uint64_t want)
{
	struct vm_error err = {0};
	uint64_t v = 0xdeadbeef;
	int r = vm_parse_size(s, &v, &err);
	if (r != 0)
		fail_msg("'%s': expected %llu, got error %d (%s)", show(s),
			 (unsigned long long)want, r, err.msg);
	if (v != want)
		fail_msg("'%s': expected %llu, got %llu", show(s),
			 (unsigned long long)want, (unsigned long long)v);
	if (err.code != 0 || err.msg[0] != '\0')
		fail_msg("'%s': success but the error was set: %s", show(s), err.msg);
	/* And without an error record. */
	v = 0xdeadbeef;
	if (vm_parse_size(s, &v, NULL) != 0 || v != want)
		fail_msg("'%s': differs without an error record", show(s));
}

static void expect_reject(const char *s, int code)
{
	struct vm_error err = {0};
	uint64_t v = 0xdeadbeef;
	int r = vm_parse_size(s, &v, &err);
	if (r != -code)
		fail_msg("'%s': returned %d (%s), expected %d", show(s), r,
			 r < 0 ? strerror(-r) : "success", -code);
	if (err.code != code)
		fail_msg("'%s': err.code is %d, expected %d", show(s), err.code, code);
	if (err.msg[0] == '\0')
		fail_msg("'%s': empty error message", show(s));
	if (strnlen(err.msg, sizeof(err.msg)) == sizeof(err.msg))
		fail_msg("'%s': error message not terminated", show(s));
	if (v != 0xdeadbeef)
		fail_msg("'%s': output written on failure", show(s));
	if (vm_parse_size(s, &v, NULL) != -code)
		fail_msg("'%s': differs without an error record", show(s));
}

static void test_plain_bytes(void **state)
{
	expect_size("0", 0);
	expect_size("1", 1);
	expect_size("4096", 4096);
	expect_size("007", 7);
	expect_size("0B", 0);
	expect_size("4096B", 4096);
	expect_size("18446744", 18446744);
	expect_size("4611686018427387904", VM_SIZE_MAX);
	expect_size("0000000000000000000000000000000000000000000000000000000001", 1);
}

static void test_units(void **state)
{
	expect_size("100k", 100 * KiB);
	expect_size("100K", 100 * KiB);
	expect_size("512M", 512 * MiB);
	expect_size("512m", 512 * MiB);
	expect_size("10G", 10 * GiB);
	expect_size("10g", 10 * GiB);
	expect_size("1T", TiB);
	expect_size("1t", TiB);
	expect_size("0G", 0);
	/* i, iB and B all mean the same powers of 1024. */
	expect_size("1GB", GiB);
	expect_size("1GiB", GiB);
	expect_size("1Gi", GiB);
	expect_size("1gB", GiB);
	expect_size("2KiB", 2 * KiB);
	expect_size("2Mi", 2 * MiB);
	expect_size("3TB", 3 * TiB);
	expect_size("4194304T", VM_SIZE_MAX);
	expect_size("4194304TiB", VM_SIZE_MAX);
	expect_size("4294967296G", VM_SIZE_MAX);
}

static void test_fractions(void **state)
{
	expect_size("1.5G", GiB + GiB / 2);
	expect_size("1.5K", 1536);
	expect_size("0.5K", 512);
	expect_size("0.25M", 256 * KiB);
	expect_size("2.0G", 2 * GiB);
	/* Fractional bytes are rounded down. */
	expect_size("1.1K", 1126);   /* 1126.4 */
	expect_size("0.0001K", 0);   /* 0.1024 */
	expect_size("0.001K", 1);    /* 1.024 */
	expect_size("1.000000000000000001K", KiB);
	/* 18 decimals, exactly: one below the maximum. */
	expect_size("4194303.999999999999999999T", VM_SIZE_MAX - 1);
	expect_size("4194303.5T", VM_SIZE_MAX - TiB / 2);
	expect_size("1.999999999999999999G", 2 * GiB - 1);
}

static void test_garbage(void **state)
{
	static const char *const bad[] = {
		"", "-1", "-0", "+1", "1e3", "1E3", "1.5", "1.5B", "1.0", " 1G",
		"1G ", "1 G", "\t1G", "1G\n", "1.", ".5G", "1.G", "1..5G", "1.5.G",
		"G", "B", "iB", "K1", "1X", "1P", "1E", "1KK", "1GG", "1GiBx",
		"1GBi", "1Gb", "1gib", "1GIB", "1iB", "1i", "1b", "0x10", "010x",
		"1,5G", "1_000", "1'000", "1KiKiB", "\xef\xbc\x91", "1G\xc3\xa9",
		"nan", "inf", "1.0000000000000000001K",
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		expect_reject(bad[i], EINVAL);
}

static void test_too_large(void **state)
{
	static const char *const big[] = {
		"18446744073709551616", "18446744073709551615",
		"4611686018427387905", "99999999999999999999999999999",
		"4194305T", "4194304.5T", "4294967297G", "17179869184G",
		"18014398509481984T", "99999999999999999999999999G",
		"4194304.000000000001T",
	};
	for (size_t i = 0; i < ELEMENTSOF(big); i++)
		expect_reject(big[i], ERANGE);
}

static void test_limits_and_null(void **state)
{
	char s[80];
	struct vm_error err = {0};
	uint64_t v = 7;

	/* 64 bytes is the longest accepted input... */
	memset(s, '0', 63);
	s[63] = '1';
	s[64] = '\0';
	expect_size(s, 1);
	/* ...65 is refused before looking at it. */
	memset(s, '0', 64);
	s[64] = '1';
	s[65] = '\0';
	expect_reject(s, EINVAL);

	assert_int_equal(vm_parse_size(NULL, &v, &err), -EINVAL);
	assert_int_equal(err.code, EINVAL);
	assert_int_equal(v, 7);
	memset(&err, 0, sizeof(err));
	assert_int_equal(vm_parse_size("1G", NULL, &err), -EINVAL);
	assert_int_equal(err.code, EINVAL);
	assert_int_equal(vm_parse_size(NULL, NULL, NULL), -EINVAL);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_bytes),
		cmocka_unit_test(test_units),
		cmocka_unit_test(test_fractions),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_limits_and_null),
	};
	return cmocka_run_group_tests_name("quota-parse", tests, NULL, NULL);
}
