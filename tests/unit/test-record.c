/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The on-disk record: dump -> load round trips, and the committed files
 * in FIXTURES/records: valid-*.json must load (and serialise back to the
 * same JSON), invalid-*.json must be refused with -EBADMSG or -EINVAL and
 * leave the output untouched.  valid-cache-* files are loaded as caches,
 * every other file as a volume.
 *
 * Usage: test-record FIXTURES-DIR */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "unit-util.h"

#include "record.h"

#define RUNNER_NAME                                                            \
	"runner-abc123xy-project-42-concurrent-0-cache-3c3f060a0374fc8bc39395164f415a70"

static void assert_records_equal(const struct vm_record *a, const struct vm_record *b)
{
	assert_int_equal(a->kind, b->kind);
	assert_int_equal(a->state, b->state);
	assert_string_equal(a->name, b->name);
	assert_int_equal(a->source.kind, b->source.kind);
	assert_string_equal(a->source.name, b->source.name);
	assert_true(a->created_ns == b->created_ns);
	assert_true(a->subvol_id == b->subvol_id);
	assert_true(a->creator_uid == b->creator_uid);
	assert_true(a->creator_pid == b->creator_pid);
	assert_non_null(a->labels);
	assert_non_null(b->labels);
	assert_non_null(a->mounts);
	assert_non_null(b->mounts);
	assert_true(json_equal(a->labels, b->labels));
	assert_true(json_equal(a->mounts, b->mounts));
	assert_int_equal(a->no_xattrs, b->no_xattrs);
}

/* dump, load back (as the same kind), compare; returns the dump. */
static char *roundtrip(const struct vm_record *rec)
{
	char *text = vm_record_dump(rec);
	assert_non_null(text);
	struct vm_record back;
	struct vm_error err = {0};
	int r = vm_record_load(text, strlen(text), rec->kind, &back, &err);
	if (r < 0)
		fail_msg("loading the dump failed: %s\n%s", err.msg, text);
	assert_records_equal(rec, &back);
	/* and the dump of what was loaded is the same text */
	char *again = vm_record_dump(&back);
	assert_non_null(again);
	assert_string_equal(text, again);
	free(again);
	vm_record_done(&back);
	return text;
}

static void test_init(void **state)
{
	struct vm_record rec;
	assert_int_equal(vm_record_init(&rec, VM_KIND_VOLUME, "ci-1"), 0);
	assert_int_equal(rec.kind, VM_KIND_VOLUME);
	assert_int_equal(rec.state, VM_STATE_READY);
	assert_string_equal(rec.name, "ci-1");
	assert_int_equal(rec.source.kind, VM_SOURCE_NONE);
	assert_true(json_is_object(rec.labels) && json_object_size(rec.labels) == 0);
	assert_true(json_is_object(rec.mounts) && json_object_size(rec.mounts) == 0);
	vm_record_done(&rec);
	assert_null(rec.labels);
	assert_null(rec.mounts);
	vm_record_done(&rec); /* twice is fine */

	char *n = ut_repeat('n', VM_NAME_MAX);
	assert_int_equal(vm_record_init(&rec, VM_KIND_CACHE, n), 0);
	assert_string_equal(rec.name, n);
	vm_record_done(&rec);
	free(n);
	n = ut_repeat('n', VM_NAME_MAX + 1);
	assert_int_equal(vm_record_init(&rec, VM_KIND_CACHE, n), -ENAMETOOLONG);
	free(n);

	assert_string_equal(vm_kind_str(VM_KIND_VOLUME), "volume");
	assert_string_equal(vm_kind_str(VM_KIND_CACHE), "cache");
	assert_string_equal(vm_state_str(VM_STATE_READY), "ready");
	assert_string_equal(vm_state_str(VM_STATE_REMOVING), "removing");
}

static void test_roundtrip_minimal(void **state)
{
	struct vm_record rec;
	assert_int_equal(vm_record_init(&rec, VM_KIND_VOLUME, "ab"), 0);
	free(roundtrip(&rec));
	vm_record_done(&rec);

	assert_int_equal(vm_record_init(&rec, VM_KIND_CACHE, "proj"), 0);
	rec.created_ns = 1767225600123456789LL;
	rec.subvol_id = 300;
	free(roundtrip(&rec));
	vm_record_done(&rec);
}

static void test_roundtrip_full(void **state)
{
	struct vm_record rec;
	assert_int_equal(vm_record_init(&rec, VM_KIND_VOLUME, RUNNER_NAME), 0);
	rec.state = VM_STATE_REMOVING;
	rec.source.kind = VM_SOURCE_CACHE;
	strcpy(rec.source.name, "proj");
	rec.created_ns = INT64_MAX;
	rec.subvol_id = (uint64_t)INT64_MAX;
	rec.creator_uid = UINT32_MAX;
	rec.creator_pid = INT32_MAX;
	/* the most labels, including the longest key and value, non-ASCII */
	char *k = ut_repeat('k', VM_LABEL_KEY_MAX);
	char *v = ut_repeat('v', VM_LABEL_VALUE_MAX);
	json_object_set_new(rec.labels, k, json_string(v));
	json_object_set_new(rec.labels, "com.example/team", json_string("caf\xc3\xa9 \xe2\x98\x83 = ok"));
	json_object_set_new(rec.labels, "empty", json_string(""));
	for (int i = 3; i < VM_LABELS_MAX; i++) {
		char key[16], val[16];
		snprintf(key, sizeof(key), "l%02d", i);
		snprintf(val, sizeof(val), "value %d", i);
		json_object_set_new(rec.labels, key, json_string(val));
	}
	free(k);
	free(v);
	/* Docker-style fresh IDs, a Podman-style constant one, the longest */
	static const char *const ids[] = {
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210",
		"podman-ctr-1", "~!@#$%^&*()_+{}|:<>?",
	};
	for (size_t i = 0; i < ELEMENTSOF(ids); i++)
		json_object_set_new(rec.mounts, ids[i],
				    json_pack("{s:I}", "since", (json_int_t)(1767225600000000000LL + (json_int_t)i)));
	char *longid = ut_repeat('i', VM_MOUNT_ID_MAX);
	json_object_set_new(rec.mounts, longid, json_pack("{s:I}", "since", (json_int_t)0));
	free(longid);

	char *text = roundtrip(&rec);
	/* it is what the format says: sorted, indented, a JSON object */
	json_error_t jerr;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "format")), VM_RECORD_FORMAT);
	assert_string_equal(json_string_value(json_object_get(j, "kind")), "volume");
	assert_string_equal(json_string_value(json_object_get(j, "state")), "removing");
	assert_string_equal(json_string_value(json_object_get(j, "source")), "cache:proj");
	json_decref(j);
	assert_true(strlen(text) < VM_RECORD_MAX_BYTES);
	free(text);

	/* the same record as a volume source, and with no source */
	rec.source.kind = VM_SOURCE_VOLUME;
	strcpy(rec.source.name, "ci-1");
	rec.state = VM_STATE_READY;
	free(roundtrip(&rec));
	rec.source.kind = VM_SOURCE_NONE;
	rec.source.name[0] = '\0';
	free(roundtrip(&rec));
	vm_record_done(&rec);
}

/* The largest record volmgrd can write -- every bounded part at its
 * bound, mount IDs full of characters that JSON escapes -- is read back:
 * a record that outgrew the reader made its volume vanish from `ls`
 * with its space never freed (issue 13, item 6). */
static void test_roundtrip_many_mounts(void **state)
{
	struct vm_record rec;
	assert_int_equal(vm_record_init(&rec, VM_KIND_VOLUME, "busy"), 0);
	char id[VM_MOUNT_ID_MAX + 1];
	memset(id, '"', VM_MOUNT_ID_MAX);
	id[VM_MOUNT_ID_MAX] = '\0';
	for (int i = 0; i < VM_MOUNTS_LOAD_MAX; i++) {
		snprintf(id, 8, "%07d", i);
		id[7] = '\\';
		json_object_set_new(rec.mounts, id,
				    json_pack("{s:I, s:I}", "since", (json_int_t)INT64_MAX,
					      "count", (json_int_t)VM_MOUNT_COUNT_MAX));
	}
	char key[VM_LABEL_KEY_MAX + 1], value[VM_LABEL_VALUE_MAX + 1];
	memset(key, 'k', VM_LABEL_KEY_MAX);
	key[VM_LABEL_KEY_MAX] = '\0';
	memset(value, '"', VM_LABEL_VALUE_MAX);
	value[VM_LABEL_VALUE_MAX] = '\0';
	for (int i = 0; i < VM_LABELS_MAX; i++) {
		snprintf(key, 8, "%07d", i);
		key[7] = 'k';
		json_object_set_new(rec.labels, key, json_string(value));
	}
	/* the seed and promote lineage at their longest, full of '"' */
	memset(rec.seed_rule, '"', VM_SEED_PATTERN_MAX);
	rec.seed_rule[VM_SEED_PATTERN_MAX] = '\0';
	memset(rec.seed_cache, 'c', VM_NAME_MAX);
	rec.seed_cache[VM_NAME_MAX] = '\0';
	memset(rec.promoted_from, 'v', VM_NAME_MAX);
	rec.promoted_from[VM_NAME_MAX] = '\0';
	memset(rec.checkout, '"', VM_CHECKOUT_MAX);
	for (int i = 200; i < VM_CHECKOUT_MAX; i += 201)
		rec.checkout[i] = '/';
	rec.checkout[VM_CHECKOUT_MAX] = '\0';
	rec.commit_time_ns = INT64_MAX;
	char *text = roundtrip(&rec);
	assert_true(strlen(text) < VM_RECORD_MAX_BYTES);
	free(text);

	/* one more than a record may hold is refused on load */
	json_object_set_new(rec.mounts, "one-more", json_pack("{s:I}", "since", (json_int_t)1));
	text = vm_record_dump(&rec);
	assert_non_null(text);
	struct vm_record back;
	struct vm_error err = {0};
	assert_int_equal(vm_record_load(text, strlen(text), VM_KIND_VOLUME, &back, &err),
			 -EBADMSG);
	assert_true(err.msg[0] != '\0');
	free(text);
	vm_record_done(&rec);
}

/* The lineage of a volume (its seed rule and cache) and of a promoted
 * cache (volume, checkout, commit time) round-trip, and a checkout that
 * leaves the cache, or a bad cache name, is refused on load. */
static void test_lineage(void **state)
{
	struct vm_record rec;
	assert_int_equal(vm_record_init(&rec, VM_KIND_CACHE, "project-42"), 0);
	snprintf(rec.seed_rule, sizeof(rec.seed_rule), "runner-*-project-{id}-concurrent-*");
	snprintf(rec.seed_cache, sizeof(rec.seed_cache), "project-42");
	snprintf(rec.promoted_from, sizeof(rec.promoted_from), "runner-1");
	snprintf(rec.checkout, sizeof(rec.checkout), "group/project");
	snprintf(rec.git_commit, sizeof(rec.git_commit), "0123456789abcdef0123456789abcdef01234567");
	rec.commit_time_ns = 1767225600000000000LL;
	free(roundtrip(&rec));
	assert_true(vm_checkout_path_ok(""));
	assert_true(vm_checkout_path_ok("a/b.c/d"));
	static const char *const bad_paths[] = {"/abs", "../up", "a/../b", "a//b", "a/", "./a", "a/.", "a\nb"};
	for (size_t i = 0; i < ELEMENTSOF(bad_paths); i++) {
		if (vm_checkout_path_ok(bad_paths[i]))
			fail_msg("checkout %s accepted", bad_paths[i]);
		snprintf(rec.checkout, sizeof(rec.checkout), "%s", bad_paths[i]);
		char *text = vm_record_dump(&rec);
		struct vm_record back;
		struct vm_error err = {0};
		assert_int_equal(vm_record_load(text, strlen(text), VM_KIND_CACHE, &back, &err), -EBADMSG);
		free(text);
	}
	snprintf(rec.checkout, sizeof(rec.checkout), "ok");
	snprintf(rec.seed_cache, sizeof(rec.seed_cache), "../x");
	char *text = vm_record_dump(&rec);
	struct vm_record back;
	struct vm_error err = {0};
	assert_int_equal(vm_record_load(text, strlen(text), VM_KIND_CACHE, &back, &err), -EBADMSG);
	free(text);
	vm_record_done(&rec);
}

static void test_load_uses_length(void **state)
{
	struct vm_record rec;
	assert_int_equal(vm_record_init(&rec, VM_KIND_VOLUME, "ci-1"), 0);
	char *text = vm_record_dump(&rec);
	assert_non_null(text);
	size_t n = strlen(text);

	/* bytes past len are not read */
	char *buf = malloc(n + 32);
	assert_non_null(buf);
	memcpy(buf, text, n);
	memcpy(buf + n, "garbage, not JSON, no NUL!!!", 28);
	struct vm_record back;
	struct vm_error err = {0};
	assert_int_equal(vm_record_load(buf, n, VM_KIND_VOLUME, &back, &err), 0);
	assert_records_equal(&rec, &back);
	vm_record_done(&back);

	/* a NUL inside len is an error, not the end */
	memcpy(buf, text, n);
	buf[n] = '\0';
	memcpy(buf + n + 1, "{}", 3);
	err = (struct vm_error){0};
	assert_int_equal(vm_record_load(buf, n + 3, VM_KIND_VOLUME, &back, &err), -EBADMSG);
	assert_true(err.msg[0] != '\0');

	/* loading it as the other kind is refused */
	err = (struct vm_error){0};
	assert_int_equal(vm_record_load(text, n, VM_KIND_CACHE, &back, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "kind"));

	/* nothing at all */
	err = (struct vm_error){0};
	assert_int_equal(vm_record_load("", 0, VM_KIND_VOLUME, &back, &err), -EBADMSG);
	assert_true(err.msg[0] != '\0');
	free(buf);
	free(text);
	vm_record_done(&rec);
}

static void test_mount_id_check(void **state)
{
	static const char *const good[] = {
		"a", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"podman-ctr_1.x:y/z", "~!@#$%^&*()_+{}|:<>?\"'\\",
	};
	for (size_t i = 0; i < ELEMENTSOF(good); i++) {
		struct vm_error err = {0};
		assert_int_equal(vm_mount_id_check(good[i], &err), 0);
		assert_int_equal(err.code, 0);
	}
	char *s = ut_repeat('i', VM_MOUNT_ID_MAX);
	assert_int_equal(vm_mount_id_check(s, NULL), 0);
	free(s);

	static const char *const bad[] = {
		NULL, "", " ", "a b", "\t", "a\n", "a\x7f", "\x1b", "caf\xc3\xa9", "\xff",
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		struct vm_error err = {0};
		assert_int_equal(vm_mount_id_check(bad[i], &err), -EINVAL);
		assert_int_equal(err.code, EINVAL);
		assert_true(err.msg[0] != '\0');
	}
	static const size_t lens[] = {VM_MOUNT_ID_MAX + 1, 4096};
	for (size_t i = 0; i < ELEMENTSOF(lens); i++) {
		s = ut_repeat('i', lens[i]);
		struct vm_error err = {0};
		assert_int_equal(vm_mount_id_check(s, &err), -EINVAL);
		assert_true(err.msg[0] != '\0');
		free(s);
	}
}

/* ---- the fixture files ---- */

struct fixture {
	char *path;
	const char *file;
	enum vm_kind kind;
	bool valid;
};

static void test_fixture_valid(void **state)
{
	const struct fixture *f = *state;
	size_t len;
	char *text = ut_read_file(f->path, &len);
	if (!text)
		fail_msg("cannot read %s: %s", f->path, strerror(errno));

	struct vm_record rec;
	struct vm_error err = {0};
	int r = vm_record_load(text, len, f->kind, &rec, &err);
	if (r < 0)
		fail_msg("%s: refused (%d): %s", f->file, r, err.msg);
	assert_int_equal(err.code, 0);
	assert_int_equal(rec.kind, f->kind);

	/* serialised back, it is the same JSON as the file */
	json_error_t jerr;
	json_t *want = json_loadb(text, len, 0, &jerr);
	assert_non_null(want);
	json_t *got = vm_record_to_json(&rec);
	assert_non_null(got);
	if (!json_equal(want, got)) {
		char *g = json_dumps(got, JSON_SORT_KEYS);
		fail_msg("%s: serialises back differently:\n%s", f->file, g);
	}
	json_decref(got);
	json_decref(want);

	/* and survives a dump -> load round trip */
	free(roundtrip(&rec));

	/* the other kind is refused */
	struct vm_record other;
	err = (struct vm_error){0};
	r = vm_record_load(text, len, f->kind == VM_KIND_CACHE ? VM_KIND_VOLUME : VM_KIND_CACHE,
			   &other, &err);
	assert_int_equal(r, -EBADMSG);
	vm_record_done(&rec);
	free(text);
}

static void test_fixture_invalid(void **state)
{
	const struct fixture *f = *state;
	size_t len;
	char *text = ut_read_file(f->path, &len);
	if (!text)
		fail_msg("cannot read %s: %s", f->path, strerror(errno));

	struct vm_record rec, before;
	memset(&rec, 0x5a, sizeof(rec));
	memcpy(&before, &rec, sizeof(before));
	struct vm_error err = {0};
	int r = vm_record_load(text, len, f->kind, &rec, &err);
	if (r == 0) {
		vm_record_done(&rec);
		fail_msg("%s: loaded, but must be refused", f->file);
	}
	if (r != -EBADMSG && r != -EINVAL)
		fail_msg("%s: refused with %d (%s), expected -EBADMSG or -EINVAL",
			 f->file, r, strerror(-r));
	assert_int_equal(err.code, -r);
	if (err.msg[0] == '\0')
		fail_msg("%s: empty error message", f->file);
	/* ret untouched on failure */
	assert_memory_equal(&rec, &before, sizeof(rec));
	print_message("%s: %s\n", f->file, err.msg);
	free(text);
}

int main(int argc, char **argv)
{
	const char *dir = ut_fixtures_dir(argc, argv, "records");
	size_t n;
	char **files = ut_list_dir(dir, ".json", &n);
	if (!files) {
		fprintf(stderr, "cannot list %s\n", dir);
		return 1;
	}

	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_init),
		cmocka_unit_test(test_roundtrip_minimal),
		cmocka_unit_test(test_roundtrip_full),
		cmocka_unit_test(test_roundtrip_many_mounts),
		cmocka_unit_test(test_lineage),
		cmocka_unit_test(test_load_uses_length),
		cmocka_unit_test(test_mount_id_check),
	};
	size_t nt = ELEMENTSOF(fixed) + n;
	struct CMUnitTest *tests = calloc(nt, sizeof(*tests));
	struct fixture *fx = calloc(n ? n : 1, sizeof(*fx));
	if (!tests || !fx)
		return 1;
	memcpy(tests, fixed, sizeof(fixed));
	size_t valid = 0, invalid = 0;
	for (size_t i = 0; i < n; i++) {
		struct fixture *f = &fx[i];
		f->file = files[i];
		f->path = ut_path(dir, files[i]);
		f->kind = ut_startswith(files[i], "valid-cache-") ||
					  ut_startswith(files[i], "invalid-cache-")
				  ? VM_KIND_CACHE
				  : VM_KIND_VOLUME;
		if (ut_startswith(files[i], "valid-")) {
			f->valid = true;
			valid++;
		} else if (ut_startswith(files[i], "invalid-")) {
			invalid++;
		} else {
			fprintf(stderr, "%s/%s: fixture names start with valid- or invalid-\n",
				dir, files[i]);
			return 1;
		}
		tests[ELEMENTSOF(fixed) + i] = (struct CMUnitTest){
			.name = files[i],
			.test_func = f->valid ? test_fixture_valid : test_fixture_invalid,
			.initial_state = f,
		};
	}
	if (valid < 1 || invalid < 12) {
		fprintf(stderr, "%s: expected at least 1 valid and 12 invalid records, found %zu and %zu\n",
			dir, valid, invalid);
		return 1;
	}
	int failed = _cmocka_run_group_tests("record", tests, nt, NULL, NULL);
	for (size_t i = 0; i < n; i++)
		free(fx[i].path);
	free(fx);
	free(tests);
	ut_strv_free(files);
	free((char *)dir);
	return failed;
}
