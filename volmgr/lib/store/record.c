/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "record.h"

#include <string.h>

const char *vm_kind_str(enum vm_kind k)
{
	return k == VM_KIND_CACHE ? "cache" : "volume";
}

const char *vm_state_str(enum vm_state s)
{
	return s == VM_STATE_REMOVING ? "removing" : "ready";
}

int vm_record_init(struct vm_record *rec, enum vm_kind kind, const char *name)
{
	*rec = (struct vm_record){.kind = kind, .state = VM_STATE_READY};
	size_t n = strlen(name);
	if (n > VM_NAME_MAX)
		return -ENAMETOOLONG;
	memcpy(rec->name, name, n + 1);
	rec->labels = json_object();
	rec->mounts = json_object();
	if (!rec->labels || !rec->mounts) {
		vm_record_done(rec);
		return -ENOMEM;
	}
	return 0;
}

void vm_record_done(struct vm_record *rec)
{
	json_decref(rec->labels);
	json_decref(rec->mounts);
	rec->labels = rec->mounts = NULL;
}

int vm_mount_id_check(const char *id, struct vm_error *err)
{
	size_t n = id ? strnlen(id, VM_MOUNT_ID_MAX + 1) : 0;
	if (n == 0 || n > VM_MOUNT_ID_MAX)
		return vm_error_set(err, EINVAL,
				    "mount ID must have 1 to %d characters",
				    VM_MOUNT_ID_MAX);
	for (size_t i = 0; i < n; i++)
		if (id[i] <= 0x20 || id[i] >= 0x7f)
			return vm_error_set(err, EINVAL,
					    "mount ID must be printable ASCII");
	return 0;
}

static json_t *record_to_json_base(const struct vm_record *rec)
{
	char src[VM_SOURCE_STR_MAX];
	vm_source_format(&rec->source, src);
	return json_pack("{s:i, s:s, s:s, s:s, s:s, s:I, s:I, s:{s:I, s:I}, s:O, s:O}",
			 "format", VM_RECORD_FORMAT,
			 "kind", vm_kind_str(rec->kind),
			 "name", rec->name,
			 "state", vm_state_str(rec->state),
			 "source", src,
			 "created_ns", (json_int_t)rec->created_ns,
			 "subvol_id", (json_int_t)rec->subvol_id,
			 "creator", "uid", (json_int_t)rec->creator_uid,
			 "pid", (json_int_t)rec->creator_pid,
			 "labels", rec->labels,
			 "mounts", rec->mounts);
}

json_t *vm_record_to_json(const struct vm_record *rec)
{
	json_t *j = record_to_json_base(rec);
	if (!j)
		return NULL;
	/* Optional parts, present only when used: older records load. */
	if (rec->git_url[0] || rec->git_commit[0])
		json_object_set_new(j, "git", json_pack("{s:s, s:s, s:s}", "url", rec->git_url,
							"branch", rec->git_branch,
							"commit", rec->git_commit));
	if (rec->generation)
		json_object_set_new(j, "generation", json_integer((json_int_t)rec->generation));
	if (rec->updated_ns)
		json_object_set_new(j, "updated_ns", json_integer(rec->updated_ns));
	if (rec->last_used_ns)
		json_object_set_new(j, "last_used_ns", json_integer(rec->last_used_ns));
	if (rec->size_generation)
		json_object_set_new(j, "size", json_pack("{s:I, s:I}", "bytes", (json_int_t)rec->size_bytes,
							 "generation", (json_int_t)rec->size_generation));
	if (rec->expires_ns)
		json_object_set_new(j, "expires_ns", json_integer(rec->expires_ns));
	if (rec->quota_bytes)
		json_object_set_new(j, "quota_bytes", json_integer((json_int_t)rec->quota_bytes));
	if (rec->creator_cgroup[0])
		json_object_set_new(json_object_get(j, "creator"), "cgroup",
				    json_string(rec->creator_cgroup));
	if (rec->creator_engine[0])
		json_object_set_new(json_object_get(j, "creator"), "engine",
				    json_string(rec->creator_engine));
	if (rec->remove_refused_ns)
		json_object_set_new(j, "remove_refused_ns", json_integer(rec->remove_refused_ns));
	if (rec->no_xattrs)
		json_object_set_new(j, "no_xattrs", json_true());
	if (rec->seed_cache[0])
		json_object_set_new(j, "seed", json_pack("{s:s, s:s}", "rule", rec->seed_rule,
							 "cache", rec->seed_cache));
	if (rec->promoted_from[0])
		json_object_set_new(j, "promoted",
				    json_pack("{s:s, s:s, s:I}", "volume", rec->promoted_from,
					      "checkout", rec->checkout, "commit_time_ns",
					      (json_int_t)rec->commit_time_ns));
	return j;
}

/* A full SHA-1 object name: 40 lowercase hex digits (what rev-parse
 * prints in a SHA-1 repository, the only kind the record holds). */
static bool commit_hex_ok(const char *c)
{
	size_t n = strlen(c);
	if (n != 40)
		return false;
	return strspn(c, "0123456789abcdef") == n;
}

/* "CONTROLLERS:/path" as vm_cgroup_of_pid writes it: controller names,
 * then an absolute path without ".." components or control characters. */
static bool cgroup_spec_ok(const char *spec)
{
	const char *colon = strchr(spec, ':');
	if (!colon || colon - spec > 63)
		return false;
	if (strspn(spec, "abcdefghijklmnopqrstuvwxyz0123456789_,=") != (size_t)(colon - spec))
		return false;
	const char *path = colon + 1;
	size_t n = strlen(path);
	if (path[0] != '/' || vm_utf8_has_control(path, n))
		return false;
	for (const char *p = path; (p = strstr(p, "/..")) != NULL; p += 3)
		if (p[3] == '/' || p[3] == '\0')
			return false;
	return true;
}

int vm_git_url_check(const char *url, struct vm_error *err)
{
	size_t n = url ? strnlen(url, VM_GIT_URL_MAX + 1) : 0;
	if (n == 0 || n > VM_GIT_URL_MAX)
		return vm_error_set(err, EINVAL, "git URL must have 1 to %d characters",
				    VM_GIT_URL_MAX);
	for (size_t i = 0; i < n; i++)
		if (url[i] <= 0x20 || url[i] >= 0x7f)
			return vm_error_set(err, EINVAL,
					    "git URL must be printable ASCII without spaces");
	/* No option lookalikes and no transport helpers ("ext::cmd"). */
	if (url[0] == '-' || strstr(url, "::"))
		return vm_error_set(err, EINVAL, "git URL must not start with '-' or name a transport helper");
	static const char *const schemes[] = {"https://", "http://", "ssh://", "git://", "file:///"};
	for (size_t i = 0; i < ELEMENTSOF(schemes); i++)
		if (strncmp(url, schemes[i], strlen(schemes[i])) == 0)
			return 0;
	/* scp-like user@host:path */
	/* host:path, and not SCHEME://, which git would hand to a remote
	 * helper (git-remote-SCHEME). */
	const char *colon = strchr(url, ':');
	if (colon && colon > url && !memchr(url, '/', (size_t)(colon - url)) &&
	    strncmp(colon, "://", 3) != 0)
		return 0;
	return vm_error_set(err, EINVAL,
			    "git URL must be https://, http://, ssh://, git://, file:/// or host:path");
}

/* The worst case of a record as vm_record_dump writes it (JSON_INDENT(2)):
 * every string at its longest with every character escaped.  No string
 * a record holds may contain a control character (names, labels, paths,
 * URLs and IDs are checked), and jansson writes other characters as they
 * are, so an escape ('"', '\\') doubles a byte at most.  Plus the keys
 * and punctuation of each entry.  Loading must accept what storing can
 * produce. */
#define ESC(n) (2 * (size_t)(n))
#define RECORD_WORST                                                                   \
	(4096 /* fixed fields and keys */ +                                             \
	 (size_t)VM_MOUNTS_LOAD_MAX * (2 * VM_MOUNT_ID_MAX + 96) +                        \
	 (size_t)VM_LABELS_MAX * (ESC(VM_LABEL_KEY_MAX) + ESC(VM_LABEL_VALUE_MAX) + 16) + \
	 ESC(VM_SOURCE_STR_MAX) + ESC(VM_NAME_MAX) + 2 * VM_GIT_URL_MAX + 2 * VM_REV_MAX +  \
	 ESC(VM_CGROUP_MAX) + ESC(VM_SEED_PATTERN_MAX) + 3 * ESC(VM_NAME_MAX) +             \
	 ESC(VM_CHECKOUT_MAX) + 256 /* seed and promoted keys */)
_Static_assert(RECORD_WORST < VM_RECORD_MAX_BYTES, "a record can outgrow what is read back");

bool vm_checkout_path_ok(const char *p)
{
	size_t n = strnlen(p, VM_CHECKOUT_MAX + 1);
	if (n == 0)
		return true;
	if (n > VM_CHECKOUT_MAX || p[0] == '/' || vm_utf8_has_control(p, n))
		return false;
	for (const char *c = p;;) {
		const char *slash = strchr(c, '/');
		size_t len = slash ? (size_t)(slash - c) : strlen(c);
		char comp[VM_CHECKOUT_MAX + 1];
		memcpy(comp, c, len);
		comp[len] = '\0';
		if (!vm_is_plain_component(comp))
			return false;
		if (!slash)
			return true;
		c = slash + 1;
	}
}

/* The optional "seed" (volumes) and "promoted" (caches) parts. */
static int parse_lineage(json_t *seed, json_t *promoted, struct vm_record *rec,
			 struct vm_error *err)
{
	json_error_t jerr;
	const char *rule = "", *cache = "", *from = "", *checkout = "";
	json_int_t when = 0;
	if (seed && json_unpack_ex(seed, &jerr, JSON_STRICT, "{s:s, s:s}", "rule", &rule, "cache",
				   &cache) < 0)
		return vm_error_set(err, EBADMSG, "record: seed: %s", jerr.text);
	if (promoted && json_unpack_ex(promoted, &jerr, JSON_STRICT, "{s:s, s:s, s:I}", "volume",
				       &from, "checkout", &checkout, "commit_time_ns", &when) < 0)
		return vm_error_set(err, EBADMSG, "record: promoted: %s", jerr.text);
	if (seed && (vm_name_check("cache", cache, NULL) < 0 || !rule[0] ||
		     strlen(rule) > VM_SEED_PATTERN_MAX || vm_utf8_has_control(rule, strlen(rule))))
		return vm_error_set(err, EBADMSG, "record: bad seed");
	if (promoted && (vm_name_check("volume", from, NULL) < 0 || !vm_checkout_path_ok(checkout) ||
			 when < 0))
		return vm_error_set(err, EBADMSG, "record: bad promoted");
	snprintf(rec->seed_rule, sizeof(rec->seed_rule), "%s", rule);
	snprintf(rec->seed_cache, sizeof(rec->seed_cache), "%s", cache);
	snprintf(rec->promoted_from, sizeof(rec->promoted_from), "%s", from);
	snprintf(rec->checkout, sizeof(rec->checkout), "%s", checkout);
	rec->commit_time_ns = when;
	return 0;
}

static int parse_mounts(json_t *mounts, struct vm_error *err)
{
	if (!json_is_object(mounts))
		return vm_error_set(err, EBADMSG, "record: mounts is not an object");
	if (json_object_size(mounts) > VM_MOUNTS_LOAD_MAX)
		return vm_error_set(err, EBADMSG, "record: too many mounts");
	const char *id;
	json_t *m;
	json_object_foreach(mounts, id, m) {
		int r = vm_mount_id_check(id, err);
		if (r < 0)
			return r;
		json_t *since = json_object_get(m, "since"), *count = json_object_get(m, "count");
		if (!json_is_object(m) || !json_is_integer(since) ||
		    json_object_size(m) != (count ? 2u : 1u) ||
		    (count && (!json_is_integer(count) || json_integer_value(count) < 1 ||
			       json_integer_value(count) > VM_MOUNT_COUNT_MAX)))
			return vm_error_set(err, EBADMSG,
					    "record: mount entry is malformed");
	}
	return 0;
}

int vm_record_from_json(json_t *j, enum vm_kind kind, struct vm_record *ret,
			struct vm_error *err)
{
	json_int_t format, created, subvol, uid, pid;
	const char *k, *name, *state, *source;
	json_t *labels, *mounts;
	json_error_t jerr;
	json_t *git = NULL, *gen = NULL, *upd = NULL, *exp = NULL, *quota = NULL;
	json_t *seed = NULL, *promoted = NULL, *used = NULL, *size = NULL;
	json_t *refused = NULL;
	const char *cgroup = "", *engine = "";
	int no_xattrs = 0;
	if (json_unpack_ex(j, &jerr, JSON_STRICT,
			   "{s:I, s:s, s:s, s:s, s:s, s:I, s:I, s:{s:I, s:I, s?s, s?s}, s:o, s:o, s?o, s?o, s?o, s?o, s?o, s?b, s?o, s?o, s?o, s?o, s?o}",
			   "format", &format, "kind", &k, "name", &name,
			   "state", &state, "source", &source,
			   "created_ns", &created, "subvol_id", &subvol,
			   "creator", "uid", &uid, "pid", &pid, "cgroup", &cgroup, "engine", &engine,
			   "labels", &labels, "mounts", &mounts,
			   "git", &git, "generation", &gen, "updated_ns", &upd,
			   "expires_ns", &exp, "quota_bytes", &quota, "no_xattrs", &no_xattrs,
			   "seed", &seed, "promoted", &promoted, "last_used_ns", &used, "size", &size,
			   "remove_refused_ns", &refused) < 0)
		return vm_error_set(err, EBADMSG, "record: %s", jerr.text);
	if (format != VM_RECORD_FORMAT)
		return vm_error_set(err, EBADMSG, "record: unknown format %lld",
				    (long long)format);
	if (strcmp(k, vm_kind_str(kind)) != 0)
		return vm_error_set(err, EBADMSG, "record: kind is %s, expected %s",
				    k, vm_kind_str(kind));
	int r = vm_name_check(vm_kind_str(kind), name, err);
	if (r < 0)
		return r;
	enum vm_state st;
	if (strcmp(state, "ready") == 0)
		st = VM_STATE_READY;
	else if (strcmp(state, "removing") == 0)
		st = VM_STATE_REMOVING;
	else
		return vm_error_set(err, EBADMSG, "record: unknown state");
	if (created < 0 || subvol < 0 || uid < 0 || uid > UINT32_MAX ||
	    pid < 0 || pid > INT32_MAX)
		return vm_error_set(err, EBADMSG, "record: number out of range");
	struct vm_source src;
	r = vm_source_parse_recorded(source, &src, err);
	if (r < 0)
		return r;
	r = vm_labels_check(labels, err);
	if (r < 0)
		return r;
	r = parse_mounts(mounts, err);
	if (r < 0)
		return r;

	const char *gurl = "", *gbranch = "", *gcommit = "";
	if (git && json_unpack_ex(git, &jerr, JSON_STRICT, "{s:s, s:s, s:s}", "url", &gurl,
				  "branch", &gbranch, "commit", &gcommit) < 0)
		return vm_error_set(err, EBADMSG, "record: git: %s", jerr.text);
	if ((gen && (!json_is_integer(gen) || json_integer_value(gen) < 0)) ||
	    (upd && (!json_is_integer(upd) || json_integer_value(upd) < 0)) ||
	    (exp && (!json_is_integer(exp) || json_integer_value(exp) < 0)) ||
	    (quota && (!json_is_integer(quota) || json_integer_value(quota) < 0)) ||
	    (used && (!json_is_integer(used) || json_integer_value(used) < 0)) ||
	    (refused && (!json_is_integer(refused) || json_integer_value(refused) < 0)))
		return vm_error_set(err, EBADMSG, "record: bad number");
	if (engine[0] && strcmp(engine, "docker") != 0 && strcmp(engine, "podman") != 0)
		return vm_error_set(err, EBADMSG, "record: unknown creator engine");
	json_int_t size_bytes = 0, size_gen = 0;
	if (size && (json_unpack_ex(size, &jerr, JSON_STRICT, "{s:I, s:I}", "bytes", &size_bytes,
				    "generation", &size_gen) < 0 ||
		     size_bytes < 0 || size_gen < 1))
		return vm_error_set(err, EBADMSG, "record: bad size");
	if (strlen(cgroup) > VM_CGROUP_MAX)
		return vm_error_set(err, EBADMSG, "record: cgroup too long");
	if (strlen(gurl) > VM_GIT_URL_MAX || strlen(gbranch) > VM_REV_MAX ||
	    strlen(gcommit) > 63)
		return vm_error_set(err, EBADMSG, "record: git field too long");
	/* A record is the daemon's own file, but it is read back as input:
	 * the git fields reach git's command line and the cgroup a path. */
	if (git) {
		struct vm_error sub = {0};
		if ((gurl[0] && vm_git_url_check(gurl, &sub) < 0) ||
		    (gbranch[0] && vm_rev_check(gbranch, &sub) < 0))
			return vm_error_set(err, EBADMSG, "record: git: %s", sub.msg);
		if (gcommit[0] && !commit_hex_ok(gcommit))
			return vm_error_set(err, EBADMSG, "record: git commit is not a hex object name");
	}
	if (cgroup[0] && !cgroup_spec_ok(cgroup))
		return vm_error_set(err, EBADMSG, "record: bad creator cgroup");

	struct vm_record rec = {
		.expires_ns = exp ? json_integer_value(exp) : 0,
		.quota_bytes = quota ? (uint64_t)json_integer_value(quota) : 0,
		.generation = gen ? (uint64_t)json_integer_value(gen) : 0,
		.updated_ns = upd ? json_integer_value(upd) : 0,
		.last_used_ns = used ? json_integer_value(used) : 0,
		.size_bytes = (uint64_t)size_bytes,
		.size_generation = (uint64_t)size_gen,
		.kind = kind,
		.state = st,
		.source = src,
		.created_ns = created,
		.subvol_id = (uint64_t)subvol,
		.creator_uid = (uint32_t)uid,
		.creator_pid = (int32_t)pid,
		.labels = json_deep_copy(labels),
		.mounts = json_deep_copy(mounts),
		.no_xattrs = no_xattrs,
		.remove_refused_ns = refused ? json_integer_value(refused) : 0,
	};
	memcpy(rec.name, name, strlen(name) + 1);
	snprintf(rec.git_url, sizeof(rec.git_url), "%s", gurl);
	snprintf(rec.git_branch, sizeof(rec.git_branch), "%s", gbranch);
	snprintf(rec.git_commit, sizeof(rec.git_commit), "%s", gcommit);
	snprintf(rec.creator_cgroup, sizeof(rec.creator_cgroup), "%s", cgroup);
	snprintf(rec.creator_engine, sizeof(rec.creator_engine), "%s", engine);
	if ((r = parse_lineage(seed, promoted, &rec, err)) < 0) {
		vm_record_done(&rec);
		return r;
	}
	if (!rec.labels || !rec.mounts) {
		vm_record_done(&rec);
		return vm_error_set(err, ENOMEM, "out of memory");
	}
	*ret = rec;
	return 0;
}

char *vm_record_dump(const struct vm_record *rec)
{
	json_t *j = vm_record_to_json(rec);
	if (!j)
		return NULL;
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(j);
	return s;
}

int vm_record_load(const char *text, size_t len, enum vm_kind kind,
		   struct vm_record *ret, struct vm_error *err)
{
	json_error_t jerr;
	json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j)
		return vm_error_set(err, EBADMSG, "record: %s (line %d)",
				    jerr.text, jerr.line);
	int r = vm_record_from_json(j, kind, ret, err);
	json_decref(j);
	return r;
}

json_int_t vm_record_mount_count(json_t *entry)
{
	json_t *c = json_object_get(entry, "count");
	return c ? json_integer_value(c) : 1;
}
