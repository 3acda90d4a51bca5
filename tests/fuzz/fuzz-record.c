/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The on-disk records: vm_record_load, for volumes and caches.
 *
 * Input: one byte whose lowest bit picks the kind (0 volume, 1 cache),
 * then the record text (NUL bytes and all: vm_record_load takes a length).
 *
 * Checks:
 *  - a refusal is -EBADMSG or -EINVAL with the error convention, and
 *    leaves *ret untouched;
 *  - an accepted record holds only what the rules allow (name, source,
 *    labels, mount IDs, numbers, terminated strings);
 *  - it dumps to JSON that loads back (as the same kind only) and dumps
 *    to the same text again;
 *  - the dump says what the input said: the input, less the optional
 *    fields that hold their zero value, equals the dump as JSON. */
#include <errno.h>

#include "fuzz.h"

#include "record.h"

static void check_record(const struct vm_record *rec, enum vm_kind kind)
{
	FUZZ_CHECK(rec->kind == kind, "kind %d, asked for %d", rec->kind, kind);
	FUZZ_CHECK(rec->state == VM_STATE_READY || rec->state == VM_STATE_REMOVING,
		   "state %d", rec->state);
	FUZZ_CHECK(memchr(rec->name, '\0', sizeof(rec->name)) &&
		   vm_name_check("volume", rec->name, NULL) == 0,
		   "accepted name %s", fuzz_show(rec->name));
	FUZZ_CHECK(memchr(rec->source.name, '\0', sizeof(rec->source.name)) &&
		   memchr(rec->source.rev, '\0', sizeof(rec->source.rev)),
		   "source not terminated");
	char src[VM_SOURCE_STR_MAX];
	vm_source_format(&rec->source, src);
	struct vm_source again;
	FUZZ_CHECK(vm_source_parse_recorded(src, &again, NULL) == 0 &&
		   again.kind == rec->source.kind && strcmp(again.name, rec->source.name) == 0 &&
		   strcmp(again.rev, rec->source.rev) == 0,
		   "source %s does not round-trip", fuzz_show(src));
	FUZZ_CHECK(rec->labels && vm_labels_check(rec->labels, NULL) == 0, "bad labels");
	FUZZ_CHECK(json_is_object(rec->mounts) && json_object_size(rec->mounts) <= VM_MOUNTS_MAX,
		   "bad mounts");
	const char *id;
	json_t *m;
	json_object_foreach(rec->mounts, id, m)
		FUZZ_CHECK(vm_mount_id_check(id, NULL) == 0 &&
			   json_is_integer(json_object_get(m, "since")),
			   "bad mount %s", fuzz_show(id));
	FUZZ_CHECK(rec->created_ns >= 0 && rec->expires_ns >= 0 && rec->updated_ns >= 0 &&
		   rec->creator_pid >= 0 && rec->subvol_id <= INT64_MAX &&
		   rec->generation <= INT64_MAX && rec->quota_bytes <= INT64_MAX,
		   "number out of range");
	FUZZ_CHECK(memchr(rec->git_url, '\0', sizeof(rec->git_url)) &&
		   memchr(rec->git_branch, '\0', sizeof(rec->git_branch)) &&
		   memchr(rec->git_commit, '\0', sizeof(rec->git_commit)) &&
		   memchr(rec->creator_cgroup, '\0', sizeof(rec->creator_cgroup)),
		   "string not terminated");
}

static void del_if_zero(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	if (json_is_integer(v) && json_integer_value(v) == 0)
		json_object_del(obj, key);
}

static bool empty_string(json_t *v)
{
	return json_is_string(v) && json_string_length(v) == 0;
}

/* The input as the dump would say it: optional fields holding their zero
 * value are left out of a dump. */
static void normalise(json_t *j)
{
	del_if_zero(j, "generation");
	del_if_zero(j, "updated_ns");
	del_if_zero(j, "expires_ns");
	del_if_zero(j, "quota_bytes");
	del_if_zero(j, "last_used_ns");
	del_if_zero(j, "remove_refused_ns");
	json_t *git = json_object_get(j, "git");
	/* a git part with neither URL nor commit is dropped whole (the
	 * branch with it, if any) */
	if (git && empty_string(json_object_get(git, "url")) &&
	    empty_string(json_object_get(git, "commit")))
		json_object_del(j, "git");
	json_t *creator = json_object_get(j, "creator");
	if (empty_string(json_object_get(creator, "cgroup")))
		json_object_del(creator, "cgroup");
	if (empty_string(json_object_get(creator, "engine")))
		json_object_del(creator, "engine");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_init_once();
	if (size < 1 || size > VM_RECORD_MAX_BYTES)
		return 0;
	enum vm_kind kind = (data[0] & 1) ? VM_KIND_CACHE : VM_KIND_VOLUME;
	enum vm_kind other = kind == VM_KIND_CACHE ? VM_KIND_VOLUME : VM_KIND_CACHE;
	const char *text = (const char *)data + 1;
	size_t len = size - 1;

	struct vm_record rec, sentinel;
	memset(&rec, 0x5a, sizeof(rec));
	sentinel = rec;
	struct vm_error err = {0};
	int r = vm_record_load(text, len, kind, &rec, &err);
	if (r < 0) {
		FUZZ_CHECK(r == -EBADMSG || r == -EINVAL, "vm_record_load returned %d (%s)", r,
			   err.msg);
		FUZZ_CHECK(err.code == -r && err.msg[0] && memchr(err.msg, '\0', sizeof(err.msg)),
			   "refused with %d but err is %d: %s", r, err.code, err.msg);
		json_t *m = json_string(err.msg);
		FUZZ_CHECK(m, "error message is not UTF-8: %s", fuzz_show(err.msg));
		json_decref(m);
		FUZZ_CHECK(memcmp(&rec, &sentinel, sizeof(rec)) == 0, "*ret written on failure");
		return 0;
	}
	FUZZ_CHECK(r == 0 && err.code == 0 && !err.msg[0], "load returned %d (%s)", r, err.msg);
	check_record(&rec, kind);

	/* dump -> load -> dump gives the same text */
	char *dump = vm_record_dump(&rec);
	FUZZ_CHECK(dump, "an accepted record does not dump");
	struct vm_record back;
	struct vm_error err2 = {0};
	r = vm_record_load(dump, strlen(dump), kind, &back, &err2);
	FUZZ_CHECK(r == 0, "the dump does not load: %s\n%s", err2.msg, dump);
	check_record(&back, kind);
	char *dump2 = vm_record_dump(&back);
	FUZZ_CHECK(dump2 && strcmp(dump, dump2) == 0, "dump, load, dump differs:\n%s\n%s", dump,
		   dump2);
	struct vm_record wrong;
	FUZZ_CHECK(vm_record_load(dump, strlen(dump), other, &wrong, NULL) == -EBADMSG,
		   "a %s record loads as a %s", vm_kind_str(kind), vm_kind_str(other));

	/* the dump says what the input said */
	json_error_t jerr;
	_cleanup_json_ json_t *in = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	_cleanup_json_ json_t *out = json_loads(dump, JSON_REJECT_DUPLICATES, &jerr);
	FUZZ_CHECK(in && out, "cannot re-read the input or the dump");
	normalise(in);
	if (!json_equal(in, out)) {
		char *a = json_dumps(in, JSON_SORT_KEYS | JSON_COMPACT);
		FUZZ_CHECK(false, "the dump differs from the input:\ninput: %s\ndump:  %s", a, dump);
	}

	free(dump);
	free(dump2);
	vm_record_done(&back);
	vm_record_done(&rec);
	return 0;
}
