/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The name rule, the source and option parsers, labels and the CLI's
 * errno -> exit status mapping.  Every rejection is checked for the
 * errno it returns, the code recorded in the error and a non-empty
 * message. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "unit-util.h"

#include "exitcode.h"
#include "names.h"

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

static void expect_ok(int r, const struct vm_error *err, const char *what)
{
	if (r != 0)
		fail_msg("%s: expected success, got %d (%s)", what, r, err->msg);
	if (err->code != 0 || err->msg[0] != '\0')
		fail_msg("%s: success but the error was set: %s", what, err->msg);
}

static void expect_error(int r, const struct vm_error *err, int code,
			 const char *what)
{
	if (r != -code)
		fail_msg("%s: returned %d (%s), expected %d", what, r,
			 r < 0 ? strerror(-r) : "success", -code);
	if (err->code != code)
		fail_msg("%s: err->code is %d, expected %d", what, err->code, code);
	if (err->msg[0] == '\0')
		fail_msg("%s: empty error message", what);
	if (strnlen(err->msg, sizeof(err->msg)) == sizeof(err->msg))
		fail_msg("%s: error message not terminated", what);
}

/* ---- vm_name_check ---- */

#define RUNNER_NAME                                                            \
	"runner-abc123xy-project-42-concurrent-0-cache-3c3f060a0374fc8bc39395164f415a70"

static void test_name_valid(void **state)
{
	static const char *const good[] = {
		"ab", "a1", "A_", "0.", "z-", "Zz", "99",
		"my-volume", "my_volume.v2", "UPPER", "9lives", "a..b", "a--",
		"ab.", "a.-_", "x.json", RUNNER_NAME,
		"runner-abc123xy-project-42-concurrent-0-cache-c33bcaa1fd2c77edfc3893b41966cea8",
		"build_cache", "node_modules", "CI-1",
	};
	for (size_t i = 0; i < ELEMENTSOF(good); i++) {
		struct vm_error err = {0};
		expect_ok(vm_name_check("volume", good[i], &err), &err, show(good[i]));
		if (vm_name_check("cache", good[i], NULL) != 0)
			fail_msg("%s refused as a cache name", show(good[i]));
	}
}

static void test_name_length_bounds(void **state)
{
	struct vm_error err = {0};
	/* exactly VM_NAME_MAX: accepted; a mix of every allowed character */
	char name[VM_NAME_MAX + 2];
	static const char alphabet[] =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-";
	for (size_t i = 0; i < VM_NAME_MAX; i++)
		name[i] = alphabet[i % (sizeof(alphabet) - 1)];
	name[VM_NAME_MAX] = '\0';
	expect_ok(vm_name_check("volume", name, &err), &err, "200 characters");

	/* 201: refused */
	name[VM_NAME_MAX] = 'x';
	name[VM_NAME_MAX + 1] = '\0';
	err = (struct vm_error){0};
	expect_error(vm_name_check("volume", name, &err), &err, EINVAL,
		     "201 characters");

	static const size_t long_lens[] = {201, 202, 255, 256, 4095, 4096, 65536};
	for (size_t i = 0; i < ELEMENTSOF(long_lens); i++) {
		char *s = ut_repeat('a', long_lens[i]);
		err = (struct vm_error){0};
		char what[64];
		snprintf(what, sizeof(what), "%zu characters", long_lens[i]);
		expect_error(vm_name_check("volume", s, &err), &err, EINVAL, what);
		/* the message must not carry the whole name */
		assert_true(strlen(err.msg) < 200);
		free(s);
	}

	/* the minimum is 2 */
	err = (struct vm_error){0};
	expect_error(vm_name_check("volume", "a", &err), &err, EINVAL, "1 character");
	err = (struct vm_error){0};
	expect_ok(vm_name_check("volume", "a1", &err), &err, "2 characters");
}

static void test_name_hostile(void **state)
{
	static const char *const bad[] = {
		"", "a", "0", "_", ".", "-", "/", "..", "...", "a/b", "/ab", "ab/",
		"../x", "../../etc/passwd", "./ab", "ab/..", ".ab", ".hidden",
		"-ab", "-rf", "_ab", "__", "a b", " ab", "ab ", "a\tb", "a\nb",
		"ab\r", "ab\x01", "\x1b[31mab", "ab\x7f", "a:b", "cache:ab", "a@b",
		"a\\b", "a*b", "*", "$(id)", "a;b", "a|b", "a'b", "a\"b", "a=b",
		"a,b", "a+b", "a~b", "~ab",
		/* UTF-8 and invalid UTF-8 */
		"vol-\xc3\xa9", "\xc3\xa9t\xc3\xa9", "ab\xff", "\xff\xfe", "a\x80",
		"a\xc0\xaf" /* overlong '/' */, "a\xe2\x80\x8b" /* zero-width space */,
		"\xef\xbc\x8f" "ab" /* fullwidth solidus */,
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		struct vm_error err = {0};
		expect_error(vm_name_check("volume", bad[i], &err), &err, EINVAL,
			     show(bad[i]));
	}
	/* no name at all */
	struct vm_error err = {0};
	expect_error(vm_name_check("volume", NULL, &err), &err, EINVAL, "NULL");
}

static void test_name_nul_truncated(void **state)
{
	struct vm_error err = {0};
	/* The rule sees a C string: "a\0bc" is the 1-character name "a". */
	static const char one[] = "a\0bc";
	expect_error(vm_name_check("volume", one, &err), &err, EINVAL, "a\\0bc");
	static const char empty[] = "\0ab";
	err = (struct vm_error){0};
	expect_error(vm_name_check("volume", empty, &err), &err, EINVAL, "\\0ab");
	/* and "ab\0/../x" is "ab": whoever gets a name with a length (JSON)
	 * must refuse embedded NULs itself, as the plugin does. */
	static const char trunc[] = "ab\0/../x";
	err = (struct vm_error){0};
	expect_ok(vm_name_check("volume", trunc, &err), &err, "ab\\0/../x");
}

static void test_name_error_details(void **state)
{
	struct vm_error err = {0};
	expect_error(vm_name_check("cache", "", &err), &err, EINVAL, "empty cache");
	assert_non_null(strstr(err.msg, "cache"));
	err = (struct vm_error){0};
	expect_error(vm_name_check("volume", "a/b", &err), &err, EINVAL, "a/b");
	assert_non_null(strstr(err.msg, "volume"));

	/* the first error wins: a set error is not overwritten */
	assert_int_equal(vm_name_check("volume", "", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "bad character"));

	/* a NULL error record is allowed */
	assert_int_equal(vm_name_check("volume", "..", NULL), -EINVAL);
	assert_int_equal(vm_name_check("volume", "ok", NULL), 0);
}

/* ---- vm_source_parse / vm_source_format ---- */

static void test_source_ok(void **state)
{
	static const struct {
		const char *spec;
		enum vm_source_kind kind;
		const char *name;
	} cases[] = {
		{"cache:proj", VM_SOURCE_CACHE, "proj"},
		{"cache:" RUNNER_NAME, VM_SOURCE_CACHE, RUNNER_NAME},
		{"volume:ci-1", VM_SOURCE_VOLUME, "ci-1"},
		{"volume:a.b_c-d", VM_SOURCE_VOLUME, "a.b_c-d"},
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct vm_error err = {0};
		struct vm_source s;
		memset(&s, 0x5a, sizeof(s));
		expect_ok(vm_source_parse(cases[i].spec, &s, &err), &err, cases[i].spec);
		assert_int_equal(s.kind, cases[i].kind);
		assert_string_equal(s.name, cases[i].name);
		char buf[VM_SOURCE_STR_MAX];
		vm_source_format(&s, buf);
		assert_string_equal(buf, cases[i].spec);
	}

	/* empty and NULL: no source */
	struct vm_source s;
	struct vm_error err = {0};
	memset(&s, 0x5a, sizeof(s));
	expect_ok(vm_source_parse("", &s, &err), &err, "empty");
	assert_int_equal(s.kind, VM_SOURCE_NONE);
	assert_string_equal(s.name, "");
	char buf[VM_SOURCE_STR_MAX];
	memset(buf, 'x', sizeof(buf));
	vm_source_format(&s, buf);
	assert_string_equal(buf, "");
	memset(&s, 0x5a, sizeof(s));
	expect_ok(vm_source_parse(NULL, &s, &err), &err, "NULL");
	assert_int_equal(s.kind, VM_SOURCE_NONE);

	/* the longest name fits, formatted back in full */
	char *n = ut_repeat('c', VM_NAME_MAX);
	char spec[VM_NAME_MAX + 16];
	snprintf(spec, sizeof(spec), "volume:%s", n);
	expect_ok(vm_source_parse(spec, &s, &err), &err, "volume:200 chars");
	assert_string_equal(s.name, n);
	vm_source_format(&s, buf);
	assert_string_equal(buf, spec);
	free(n);
}

static void test_source_bad(void **state)
{
	static const char *const bad[] = {
		"proj", "cache", "cache:", "volume:", "cache:a", "cache:../x",
		"cache:a/b", "cache:/etc", "cache:.git", "volume:-x", "Cache:proj",
		"CACHE:proj", "Volume:ci-1", "cache proj", " cache:proj",
		"cache :proj", "cache::proj", "cache:proj:x", "cache:proj ",
		"cache:proj\n", "snapshot:x", "image:alpine", "http://host/x",
		"file:///etc", "/var/lib/x", ":proj", "cache\0:proj",
		"cache:\xc3\xa9t\xc3\xa9",
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		struct vm_error err = {0};
		struct vm_source s, before;
		memset(&s, 0x5a, sizeof(s));
		memcpy(&before, &s, sizeof(before));
		expect_error(vm_source_parse(bad[i], &s, &err), &err, EINVAL, show(bad[i]));
		/* ret untouched on failure */
		assert_memory_equal(&s, &before, sizeof(s));
	}

	char *n = ut_repeat('c', VM_NAME_MAX + 1);
	char spec[VM_NAME_MAX + 16];
	snprintf(spec, sizeof(spec), "cache:%s", n);
	struct vm_error err = {0};
	struct vm_source s;
	expect_error(vm_source_parse(spec, &s, &err), &err, EINVAL, "cache:201 chars");
	free(n);

	n = ut_repeat('v', 4096);
	char *big = malloc(4096 + 16);
	assert_non_null(big);
	snprintf(big, 4096 + 16, "volume:%s", n);
	err = (struct vm_error){0};
	expect_error(vm_source_parse(big, &s, &err), &err, EINVAL, "volume:4096 chars");
	free(big);
	free(n);
}

/* ---- vm_create_opts_from_plugin ---- */

static json_t *parse(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
	if (!j)
		fail_msg("bad test JSON %s: %s", text, jerr.text);
	return j;
}

static void test_opts_ok(void **state)
{
	struct vm_create_opts o;
	struct vm_error err = {0};

	memset(&o, 0x5a, sizeof(o));
	expect_ok(vm_create_opts_from_plugin(NULL, &o, &err), &err, "NULL");
	assert_int_equal(o.source.kind, VM_SOURCE_NONE);
	assert_null(o.labels);
	vm_create_opts_done(&o);

	static const char *const none[] = {"null", "{}", "{\"source\": \"\"}"};
	for (size_t i = 0; i < ELEMENTSOF(none); i++) {
		json_t *j = parse(none[i]);
		memset(&o, 0x5a, sizeof(o));
		expect_ok(vm_create_opts_from_plugin(j, &o, &err), &err, none[i]);
		assert_int_equal(o.source.kind, VM_SOURCE_NONE);
		assert_null(o.labels);
		vm_create_opts_done(&o);
		json_decref(j);
	}

	json_t *j = parse("{\"source\": \"cache:proj\"}");
	expect_ok(vm_create_opts_from_plugin(j, &o, &err), &err, "cache:proj");
	assert_int_equal(o.source.kind, VM_SOURCE_CACHE);
	assert_string_equal(o.source.name, "proj");
	vm_create_opts_done(&o);
	vm_create_opts_done(&o); /* idempotent */
	json_decref(j);

	j = parse("{\"source\": \"volume:ci-1\"}");
	expect_ok(vm_create_opts_from_plugin(j, &o, &err), &err, "volume:ci-1");
	assert_int_equal(o.source.kind, VM_SOURCE_VOLUME);
	assert_string_equal(o.source.name, "ci-1");
	vm_create_opts_done(&o);
	json_decref(j);
}

static void test_opts_bad(void **state)
{
	static const struct {
		const char *json;
		const char *in_msg; /* a part the message must contain, or NULL */
	} bad[] = {
		/* unknown keys, including case variants */
		{"{\"size\": \"10G\"}", "size"},
		{"{\"Source\": \"cache:proj\"}", "Source"},
		{"{\"source\": \"cache:proj\", \"o\": \"bind\"}", "\"o\""},
		{"{\"\": \"x\"}", NULL},
		/* non-string values */
		{"{\"source\": 1}", "source"},
		{"{\"source\": null}", "source"},
		{"{\"source\": true}", "source"},
		{"{\"source\": {}}", "source"},
		{"{\"source\": [\"cache:proj\"]}", "source"},
		{"{\"size\": 10}", "size"},
		/* a bad source */
		{"{\"source\": \"proj\"}", NULL},
		{"{\"source\": \"cache:../x\"}", NULL},
		{"{\"source\": \"cache:a\"}", NULL},
		{"{\"source\": \"git:https://example.com/x\"}", NULL},
		/* not an object */
		{"\"cache:proj\"", NULL},
		{"[]", NULL},
		{"[\"source\", \"cache:proj\"]", NULL},
		{"1", NULL},
		{"true", NULL},
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		json_t *j = parse(bad[i].json);
		struct vm_create_opts o, before;
		memset(&o, 0x5a, sizeof(o));
		memcpy(&before, &o, sizeof(before));
		struct vm_error err = {0};
		expect_error(vm_create_opts_from_plugin(j, &o, &err), &err, EINVAL,
			     bad[i].json);
		if (bad[i].in_msg && !strstr(err.msg, bad[i].in_msg))
			fail_msg("%s: message \"%s\" lacks \"%s\"", bad[i].json,
				 err.msg, bad[i].in_msg);
		assert_memory_equal(&o, &before, sizeof(o));
		json_decref(j);
	}

	/* a long hostile key is cut short in the message */
	char *key = ut_repeat('k', 4096);
	json_t *j = json_pack("{s:s}", key, "v");
	struct vm_create_opts o;
	struct vm_error err = {0};
	expect_error(vm_create_opts_from_plugin(j, &o, &err), &err, EINVAL, "4096-char key");
	assert_null(strstr(err.msg, key + 4096 - 100));
	json_decref(j);
	free(key);
}

/* The messages end up in JSON replies (plugin Err, control "message"), so
 * they must stay valid UTF-8 even when a caller's key is cut short. */
static void test_opts_message_utf8(void **state)
{
	char key[80];
	memset(key, 'k', 63);
	strcpy(key + 63, "\xc3\xa9"); /* 'é' straddles the %.64s cut */
	static const char *const values[] = {"v", NULL};
	for (size_t i = 0; i < ELEMENTSOF(values); i++) {
		json_t *j = json_pack("{s:o}", key,
				      values[i] ? json_string(values[i]) : json_integer(1));
		assert_non_null(j);
		struct vm_create_opts o;
		struct vm_error err = {0};
		expect_error(vm_create_opts_from_plugin(j, &o, &err), &err, EINVAL,
			     "63 ASCII + 2-byte key");
		json_decref(j);
		json_t *s = json_string(err.msg);
		UT_FAIL_IF(!s,
			     "names.c vm_create_opts_from_plugin: \"%%.64s\" cuts a UTF-8 "
			     "key inside a character; the message is not valid UTF-8 "
			     "(%s value)", values[i] ? "string" : "integer");
		json_decref(s);
	}
}

/* ---- revisions (git refs, tags, commits) ---- */

static void test_rev_check(void **state)
{
	static const char *const ok[] = {
		"main", "v1.0", "feature/x-y_z", "a.lockb", "0123456789abcdef",
		"release/2026.11", "a.b.c",
	};
	for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
		struct vm_error err = {0};
		expect_ok(vm_rev_check(ok[i], &err), &err, ok[i]);
	}
	/* git refuses every component ending in ".lock", not just the last */
	static const char *const bad[] = {
		"", "-x", "/x", "x/", "x.", ".x", "a..b", "a//b", "a/.b",
		"a.lock", "a.lock/b", "x/a.lock/b", "a b", "a~1", "a^", "a:b",
		"@{0}", "a\\b", "a*", "a?", "a[", "caf\xc3\xa9", "a\x01",
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		struct vm_error err = {0};
		expect_error(vm_rev_check(bad[i], &err), &err, EINVAL, bad[i]);
	}
	char *longest = ut_repeat('r', VM_REV_MAX), *over = ut_repeat('r', VM_REV_MAX + 1);
	struct vm_error err = {0};
	expect_ok(vm_rev_check(longest, &err), &err, "longest");
	expect_error(vm_rev_check(over, &err), &err, EINVAL, "one too long");
	free(longest);
	free(over);
}

/* ---- labels ---- */

static void test_labels_check_ok(void **state)
{
	static const char *const ok[] = {
		"{}", "null", "{\"a\": \"b\"}", "{\"team\": \"\"}",
		"{\"com.example/team\": \"ci\", \"org.opencontainers.image.source\": \"https://x\"}",
		"{\"A-b_c.d/e\": \"v\"}", "{\"k\": \"caf\\u00e9 \\u2603 ok\"}",
		"{\"k\": \"spaces and = and / are fine\"}",
	};
	for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
		json_t *j = parse(ok[i]);
		struct vm_error err = {0};
		expect_ok(vm_labels_check(j, &err), &err, ok[i]);
		json_decref(j);
	}
	struct vm_error err = {0};
	expect_ok(vm_labels_check(NULL, &err), &err, "NULL");

	/* the bounds themselves */
	json_t *j = json_object();
	char *k = ut_repeat('k', VM_LABEL_KEY_MAX);
	char *v = ut_repeat('v', VM_LABEL_VALUE_MAX);
	json_object_set_new(j, k, json_string(v));
	for (int i = 1; i < VM_LABELS_MAX; i++) {
		char key[16];
		snprintf(key, sizeof(key), "l%d", i);
		json_object_set_new(j, key, json_string("x"));
	}
	assert_int_equal(json_object_size(j), VM_LABELS_MAX);
	expect_ok(vm_labels_check(j, &err), &err, "64 labels, longest key and value");
	json_decref(j);
	free(k);
	free(v);
}

static void test_labels_check_bad(void **state)
{
	static const char *const bad[] = {
		"[]", "\"a=b\"", "1", "true",
		"{\"\": \"v\"}",
		"{\"a b\": \"v\"}", "{\"a=b\": \"v\"}", "{\"a:b\": \"v\"}",
		"{\"caf\\u00e9\": \"v\"}", "{\"a\\u0001\": \"v\"}", "{\"a\\n\": \"v\"}",
		"{\"k\": 1}", "{\"k\": null}", "{\"k\": true}", "{\"k\": {}}",
		"{\"k\": [\"v\"]}",
		"{\"k\": \"a\\u0001b\"}", "{\"k\": \"line\\nbreak\"}",
		"{\"k\": \"tab\\there\"}", "{\"k\": \"\\r\"}", "{\"k\": \"del\\u007f\"}",
		"{\"k\": \"\\u001b[31mred\"}",
		/* C1 controls: U+009B is a one-character CSI on many terminals */
		"{\"k\": \"\\u009b31mred\"}", "{\"k\": \"nel\\u0085\"}",
		"{\"k\": \"\\u0080\"}", "{\"k\": \"\\u009f\"}",
		"{\"ok\": \"v\", \"bad key\": \"v\"}",
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		json_t *j = parse(bad[i]);
		struct vm_error err = {0};
		expect_error(vm_labels_check(j, &err), &err, EINVAL, bad[i]);
		json_decref(j);
	}

	/* an embedded NUL in a value (jansson allows it through the API) */
	json_t *j = json_object();
	json_object_set_new(j, "k", json_stringn("a\0b", 3));
	struct vm_error err = {0};
	expect_error(vm_labels_check(j, &err), &err, EINVAL, "NUL in value");
	json_decref(j);

	/* too long key, too long value, too many labels */
	char *k = ut_repeat('k', VM_LABEL_KEY_MAX + 1);
	j = json_pack("{s:s}", k, "v");
	err = (struct vm_error){0};
	expect_error(vm_labels_check(j, &err), &err, EINVAL, "129-char key");
	json_decref(j);
	free(k);

	char *v = ut_repeat('v', VM_LABEL_VALUE_MAX + 1);
	j = json_pack("{s:s}", "k", v);
	err = (struct vm_error){0};
	expect_error(vm_labels_check(j, &err), &err, EINVAL, "1025-byte value");
	json_decref(j);
	free(v);

	/* multi-byte characters count as bytes */
	v = malloc(VM_LABEL_VALUE_MAX + 3);
	assert_non_null(v);
	for (size_t i = 0; i + 1 < VM_LABEL_VALUE_MAX + 2; i += 2)
		memcpy(v + i, "\xc3\xa9", 2);
	v[VM_LABEL_VALUE_MAX + 2] = '\0';
	j = json_pack("{s:s}", "k", v);
	assert_non_null(j);
	err = (struct vm_error){0};
	expect_error(vm_labels_check(j, &err), &err, EINVAL, "513 x 'é'");
	json_decref(j);
	free(v);

	j = json_object();
	for (int i = 0; i <= VM_LABELS_MAX; i++) {
		char key[16];
		snprintf(key, sizeof(key), "l%d", i);
		json_object_set_new(j, key, json_string("x"));
	}
	err = (struct vm_error){0};
	expect_error(vm_labels_check(j, &err), &err, EINVAL, "65 labels");
	json_decref(j);
}

static void test_label_parse_ok(void **state)
{
	json_t *l = json_object();
	struct vm_error err = {0};
	expect_ok(vm_label_parse_into(l, "team=ci", &err), &err, "team=ci");
	expect_ok(vm_label_parse_into(l, "empty=", &err), &err, "empty=");
	expect_ok(vm_label_parse_into(l, "eq=a=b=c", &err), &err, "eq=a=b=c");
	expect_ok(vm_label_parse_into(l, "com.example/x-y_z=v w", &err), &err,
		  "com.example/x-y_z=v w");
	expect_ok(vm_label_parse_into(l, "u=caf\xc3\xa9", &err), &err, "u=café");
	expect_ok(vm_label_parse_into(l, "team=cd", &err), &err, "team=cd (again)");
	json_t *want = parse("{\"team\": \"cd\", \"empty\": \"\", \"eq\": \"a=b=c\","
			     " \"com.example/x-y_z\": \"v w\", \"u\": \"caf\\u00e9\"}");
	assert_true(json_equal(l, want));
	json_decref(want);
	json_decref(l);

	/* bounds */
	l = json_object();
	char *kv = malloc(VM_LABEL_KEY_MAX + VM_LABEL_VALUE_MAX + 2);
	assert_non_null(kv);
	memset(kv, 'k', VM_LABEL_KEY_MAX);
	kv[VM_LABEL_KEY_MAX] = '=';
	memset(kv + VM_LABEL_KEY_MAX + 1, 'v', VM_LABEL_VALUE_MAX);
	kv[VM_LABEL_KEY_MAX + 1 + VM_LABEL_VALUE_MAX] = '\0';
	expect_ok(vm_label_parse_into(l, kv, &err), &err, "longest key and value");
	free(kv);
	for (int i = 1; i < VM_LABELS_MAX; i++) {
		char s[32];
		snprintf(s, sizeof(s), "l%d=x", i);
		expect_ok(vm_label_parse_into(l, s, &err), &err, s);
	}
	assert_int_equal(json_object_size(l), VM_LABELS_MAX);
	json_decref(l);
}

static void test_label_parse_bad(void **state)
{
	static const char *const bad[] = {
		"", "noequals", "=", "=value", "a b=c", "a:b=c", "caf\xc3\xa9=v",
		"k\x01=v", "k=\x01", "k=a\nb", "k=\x1b[2J", "k=\x7f", "k=\xff",
		"k=\xc3", "k=a\xc0\xaf" "b",
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		json_t *l = json_object();
		struct vm_error err = {0};
		expect_error(vm_label_parse_into(l, bad[i], &err), &err, EINVAL,
			     show(bad[i]));
		json_decref(l);
	}

	struct vm_error err = {0};
	json_t *l = json_object();
	char *kv = ut_repeat('k', VM_LABEL_KEY_MAX + 1 + 2);
	kv[VM_LABEL_KEY_MAX + 1] = '=';
	expect_error(vm_label_parse_into(l, kv, &err), &err, EINVAL, "129-char key");
	free(kv);
	kv = ut_repeat('k', 5000);
	kv[4000] = '=';
	err = (struct vm_error){0};
	expect_error(vm_label_parse_into(l, kv, &err), &err, EINVAL, "4000-char key");
	free(kv);
	kv = ut_repeat('v', VM_LABEL_VALUE_MAX + 1 + 2);
	kv[0] = 'k';
	kv[1] = '=';
	err = (struct vm_error){0};
	expect_error(vm_label_parse_into(l, kv, &err), &err, EINVAL, "1025-byte value");
	free(kv);
	json_decref(l);

	/* one label too many */
	l = json_object();
	for (int i = 0; i < VM_LABELS_MAX; i++) {
		char s[32];
		snprintf(s, sizeof(s), "l%d=x", i);
		err = (struct vm_error){0};
		expect_ok(vm_label_parse_into(l, s, &err), &err, s);
	}
	/* replacing an existing one is not a new label */
	err = (struct vm_error){0};
	expect_ok(vm_label_parse_into(l, "l0=y", &err), &err, "replace at 64");
	err = (struct vm_error){0};
	expect_error(vm_label_parse_into(l, "one-more=x", &err), &err, EINVAL,
		     "65th label");
	json_decref(l);
}

/* A key that is not valid UTF-8 is an invalid label, not "out of memory". */
static void test_label_parse_bad_utf8_key(void **state)
{
	json_t *l = json_object();
	struct vm_error err = {0};
	int r = vm_label_parse_into(l, "k\xff=v", &err);
	json_decref(l);
	UT_FAIL_IF(r == -ENOMEM,
		     "names.c vm_label_parse_into(\"k\\xff=v\"): json_object_set_new "
		     "refuses the invalid UTF-8 key and it is reported as ENOMEM "
		     "\"%s\" instead of EINVAL", err.msg);
	expect_error(r, &err, EINVAL, "k\\xff=v");
}

/* A refused label leaves the labels as they were. */
static void test_label_parse_no_side_effect(void **state)
{
	static const char *const bad[] = {"a b=c", "k=\x01", "one-more=x"};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		json_t *l = json_object();
		struct vm_error err = {0};
		if (i == 2)
			for (int n = 0; n < VM_LABELS_MAX; n++) {
				char s[32];
				snprintf(s, sizeof(s), "l%d=x", n);
				expect_ok(vm_label_parse_into(l, s, &err), &err, s);
			}
		json_t *before = json_deep_copy(l);
		expect_error(vm_label_parse_into(l, bad[i], &err), &err, EINVAL,
			     show(bad[i]));
		bool same = json_equal(l, before);
		json_decref(before);
		json_decref(l);
		UT_FAIL_IF(!same,
			     "names.c vm_label_parse_into(\"%s\"): the refused label is "
			     "left in the labels object (inserted before the check)",
			     show(bad[i]));
	}
}

/* ---- exit statuses ---- */

/* Commit times: RFC 3339 as GitLab writes CI_COMMIT_TIMESTAMP, offsets
 * and fractions, @SECONDS; the rest refused. */
static void test_parse_time(void **state)
{
	static const struct {
		const char *s;
		int64_t secs;
	} good[] = {
		{"1970-01-01T00:00:00Z", 0},
		{"2026-12-06T17:05:09Z", 1796576709},
		{"2026-12-06T18:05:09+01:00", 1796576709},
		{"2026-12-06T12:05:09.123-05:00", 1796576709},
		{"2024-02-29T00:00:00z", 1709164800},
		{"2000-03-01 00:00:00Z", 951868800},
		{"@1796576709", 1796576709},
		{"@0", 0},
	};
	for (size_t i = 0; i < ELEMENTSOF(good); i++) {
		int64_t ns = -1;
		struct vm_error err = {0};
		if (vm_parse_time(good[i].s, &ns, &err) != 0 || ns != good[i].secs * 1000000000LL)
			fail_msg("%s: got %lld (%s), want %lld s", good[i].s, (long long)ns, err.msg,
				 (long long)good[i].secs);
	}
	static const char *const bad[] = {
		"", "yesterday", "2026-12-06", "2026-12-06T17:05:09", "2026-13-06T17:05:09Z",
		"2026-12-06T24:00:00Z", "1969-12-31T23:59:59Z", "1970-01-01T00:00:00+01:00",
		"2026-12-06T17:05:09Zjunk", "2026-12-06T17:05:09+1:00", "@", "@-1", "@12x",
		"@99999999999999999999", "2026-12-06T17:05:09.123456789012345678901234567890Z",
		/* no such day; past what nanoseconds in an int64_t hold */
		"2026-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2100-02-29T00:00:00Z",
		"2262-04-12T00:00:00Z", "@2534023007999", "9999-12-31T23:59:59Z",
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		int64_t ns = 7;
		struct vm_error err = {0};
		if (vm_parse_time(bad[i], &ns, &err) != -EINVAL || ns != 7 || !err.msg[0])
			fail_msg("%s accepted", bad[i]);
	}
}

static void test_exit_from_errno(void **state)
{
	static const struct {
		int e;
		enum vm_exit x;
		const char *name;
	} map[] = {
		{0, VM_EXIT_OK, NULL},
		{ENOENT, VM_EXIT_NOT_FOUND, "ENOENT"},
		{EEXIST, VM_EXIT_EXISTS, "EEXIST"},
		{EBUSY, VM_EXIT_IN_USE, "EBUSY"},
		{EINVAL, VM_EXIT_INVALID, "EINVAL"},
		{ENAMETOOLONG, VM_EXIT_INVALID, "ENAMETOOLONG"},
		{ENOTDIR, VM_EXIT_INVALID, "ENOTDIR"},
		{ENOSPC, VM_EXIT_NO_SPACE, "ENOSPC"},
		{EDQUOT, VM_EXIT_NO_SPACE, "EDQUOT"},
		{EOPNOTSUPP, VM_EXIT_UNSUPPORTED, "EOPNOTSUPP"},
		{ENOTSUP, VM_EXIT_UNSUPPORTED, "EOPNOTSUPP"},
		{EPERM, VM_EXIT_PERMISSION, "EPERM"},
		{EACCES, VM_EXIT_PERMISSION, "EACCES"},
		{ENOMEM, VM_EXIT_FAILURE, "ENOMEM"},
		{EIO, VM_EXIT_FAILURE, "EIO"},
		{EMFILE, VM_EXIT_FAILURE, "EIO"},
		{EBADMSG, VM_EXIT_FAILURE, "EIO"},
		{ECONNREFUSED, VM_EXIT_FAILURE, "EIO"},
		{EXDEV, VM_EXIT_FAILURE, "EIO"},
		{ENOSYS, VM_EXIT_FAILURE, "EIO"},
		{-ENOENT, VM_EXIT_FAILURE, "EIO"}, /* takes a positive errno */
		{9999, VM_EXIT_FAILURE, "EIO"},
	};
	for (size_t i = 0; i < ELEMENTSOF(map); i++) {
		if (vm_exit_from_errno(map[i].e) != map[i].x)
			fail_msg("errno %d (%s): exit %d, expected %d", map[i].e,
				 strerror(map[i].e < 0 ? -map[i].e : map[i].e),
				 vm_exit_from_errno(map[i].e), map[i].x);
		if (map[i].name)
			assert_string_equal(vm_errno_name(map[i].e), map[i].name);
	}

	/* the documented statuses are distinct and fit a shell's exit status */
	static const enum vm_exit all[] = {
		VM_EXIT_OK, VM_EXIT_FAILURE, VM_EXIT_USAGE, VM_EXIT_UNREACHABLE,
		VM_EXIT_NOT_FOUND, VM_EXIT_EXISTS, VM_EXIT_IN_USE, VM_EXIT_INVALID,
		VM_EXIT_NO_SPACE, VM_EXIT_UNSUPPORTED, VM_EXIT_PERMISSION,
	};
	for (size_t i = 0; i < ELEMENTSOF(all); i++) {
		assert_in_range(all[i], 0, 125);
		for (size_t j = i + 1; j < ELEMENTSOF(all); j++)
			assert_int_not_equal(all[i], all[j]);
	}
	/* 77 is the "skipped" status of the test suite; never an exit status */
	for (size_t i = 0; i < ELEMENTSOF(all); i++)
		assert_int_not_equal(all[i], 77);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test(test_name_length_bounds),
		cmocka_unit_test(test_name_hostile),
		cmocka_unit_test(test_name_nul_truncated),
		cmocka_unit_test(test_name_error_details),
		cmocka_unit_test(test_source_ok),
		cmocka_unit_test(test_source_bad),
		cmocka_unit_test(test_opts_ok),
		cmocka_unit_test(test_opts_bad),
		cmocka_unit_test(test_opts_message_utf8),
		cmocka_unit_test(test_labels_check_ok),
		cmocka_unit_test(test_labels_check_bad),
		cmocka_unit_test(test_rev_check),
		cmocka_unit_test(test_label_parse_ok),
		cmocka_unit_test(test_label_parse_bad),
		cmocka_unit_test(test_label_parse_bad_utf8_key),
		cmocka_unit_test(test_label_parse_no_side_effect),
		cmocka_unit_test(test_parse_time),
		cmocka_unit_test(test_exit_from_errno),
	};
	return cmocka_run_group_tests_name("names", tests, NULL, NULL);
}
