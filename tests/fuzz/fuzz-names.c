/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The name rule and the parsers of what callers may say (names.h, and the
 * two checks of record.h that callers reach: git URLs and mount IDs).
 *
 * Input: one selector byte, then the text for the chosen parser.  Each
 * parser's answer is compared with a model written from its header's
 * description, both ways (what the model accepts must be accepted and
 * vice versa), and what is accepted must survive its own round trip:
 * a source formats back to the text it came from and re-parses the same,
 * labels put together with vm_label_parse_into pass vm_labels_check.
 * Every refusal must follow the error convention: -errno, err->code set
 * to it, a non-empty message that is valid UTF-8 without control
 * characters; a success leaves the error record untouched. */
#include <errno.h>

#include "fuzz.h"

#include "names.h"
#include "record.h"

enum {
	SEL_NAME,
	SEL_SOURCE,
	SEL_SOURCE_RECORDED,
	SEL_REV,
	SEL_DURATION,
	SEL_SIZE,
	SEL_OPTS,
	SEL_LABELS,
	SEL_LABEL_KV,
	SEL_GIT_URL,
	SEL_MOUNT_ID,
	SEL_PATH,
	SEL_MAX,
};

/* ---- the error convention ---- */

static void check_error(int r, const struct vm_error *err, const char *what,
			const char *input)
{
	if (r == 0) {
		FUZZ_CHECK(err->code == 0 && err->msg[0] == '\0',
			   "%s(%s): success, but the error record was set: %s", what,
			   fuzz_show(input), err->msg);
		return;
	}
	FUZZ_CHECK(r < 0, "%s(%s): returned %d", what, fuzz_show(input), r);
	FUZZ_CHECK(err->code == -r, "%s(%s): returned %d but err->code is %d", what,
		   fuzz_show(input), r, err->code);
	FUZZ_CHECK(memchr(err->msg, '\0', sizeof(err->msg)) != NULL,
		   "%s: error message not terminated", what);
	FUZZ_CHECK(err->msg[0] != '\0', "%s(%s): empty error message", what,
		   fuzz_show(input));
	json_t *s = json_string(err->msg); /* NULL unless valid UTF-8 */
	FUZZ_CHECK(s != NULL, "%s(%s): error message is not UTF-8: %s", what,
		   fuzz_show(input), fuzz_show(err->msg));
	json_decref(s);
	for (const unsigned char *p = (const unsigned char *)err->msg; *p; p++)
		FUZZ_CHECK(*p >= 0x20 && *p != 0x7f && !(p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f),
			   "%s(%s): control character in the error message", what,
			   fuzz_show(input));
}

/* ---- models, from the headers ---- */

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* names.h: [a-zA-Z0-9][a-zA-Z0-9_.-]+, at most VM_NAME_MAX. */
static bool model_name(const char *s)
{
	size_t n = strlen(s);
	if (n < 2 || n > VM_NAME_MAX || !is_alnum(s[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
			return false;
	return true;
}

/* names.h: 1..255 of [A-Za-z0-9._/-], not starting with '-' or '/', no
 * "..", no "//", no component ending with ".lock" (git's rule); and, as implemented,
 * not starting or ending with '.' and no "/." (a hidden component). */
static bool model_rev(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > VM_REV_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(s[i]) && !strchr("._/-", s[i]))
			return false;
	if (s[0] == '-' || s[0] == '/' || s[0] == '.' || s[n - 1] == '/' || s[n - 1] == '.')
		return false;
	if (strstr(s, "..") || strstr(s, "//") || strstr(s, "/."))
		return false;
	if (n >= 5 && strcmp(s + n - 5, ".lock") == 0)
		return false;
	if (strstr(s, ".lock/"))
		return false;
	return true;
}

static bool utf8_printable(const char *s, size_t n)
{
	json_t *j = json_stringn(s, n); /* jansson checks UTF-8 strictly */
	if (!j)
		return false;
	json_decref(j);
	for (size_t i = 0; i < n; i++) {
		const unsigned char *u = (const unsigned char *)s + i;
		if (*u < 0x20 || *u == 0x7f)
			return false;
		/* C1 controls U+0080..U+009F */
		if (i + 1 < n && u[0] == 0xc2 && u[1] <= 0x9f)
			return false;
	}
	return true;
}

/* names.h: absolute, 1..VM_SOURCE_PATH_MAX bytes, UTF-8 without
 * control characters. */
static bool model_path(const char *s)
{
	size_t n = strlen(s);
	return n >= 1 && n <= VM_SOURCE_PATH_MAX && s[0] == '/' && utf8_printable(s, n);
}

static bool model_source(const char *s, bool recorded)
{
	if (!s[0])
		return true;
	if (recorded && strncmp(s, "path:", 5) == 0)
		return model_path(s + 5);
	if (strncmp(s, "volume:", 7) == 0)
		return model_name(s + 7);
	if (strncmp(s, "cache:", 6) != 0)
		return false;
	const char *at = strchr(s + 6, '@');
	if (!at)
		return model_name(s + 6);
	char name[VM_SOURCE_PATH_MAX + 1];
	size_t nl = (size_t)(at - (s + 6));
	if (nl > VM_NAME_MAX)
		return false;
	memcpy(name, s + 6, nl);
	name[nl] = '\0';
	return model_name(name) && model_rev(at + 1);
}

/* The duration grammar of names.h: (DIGITS [smhdw])+ where only the last
 * number may lack a unit; 1 s to 10 years (of 366 days); at most 32
 * characters.  Returns -1 if refused, else seconds. */
static int64_t model_duration(const char *s)
{
	const __int128 max_s = (__int128)10 * 366 * 24 * 3600;
	if (strlen(s) < 1 || strlen(s) > 32)
		return -1;
	__int128 total = 0;
	const char *p = s;
	while (*p) {
		if (*p < '0' || *p > '9')
			return -1;
		__int128 n = 0;
		while (*p >= '0' && *p <= '9') {
			n = n * 10 + (*p++ - '0');
			if (n > max_s) /* every prefix of a too long number is refused */
				return -1;
		}
		int64_t unit;
		switch (*p) {
		case '\0': unit = 1; break;
		case 's': unit = 1; p++; break;
		case 'm': unit = 60; p++; break;
		case 'h': unit = 3600; p++; break;
		case 'd': unit = 86400; p++; break;
		case 'w': unit = 7 * 86400; p++; break;
		default: return -1;
		}
		total += n * unit;
		if (total > max_s)
			return -1;
	}
	return total >= 1 ? (int64_t)total : -1;
}

/* The size grammar of names.h.  Returns 0 and *ret, -EINVAL or -ERANGE. */
static int model_size(const char *s, uint64_t *ret)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return -EINVAL;
	const char *p = s;
	if (*p < '0' || *p > '9')
		return -EINVAL;
	unsigned __int128 whole = 0;
	bool big = false;
	for (; *p >= '0' && *p <= '9'; p++) {
		whole = whole * 10 + (unsigned)(*p - '0');
		if (whole > ((unsigned __int128)1 << 64))
			big = true, whole = (unsigned __int128)1 << 64;
	}
	unsigned __int128 frac = 0, scale = 1;
	unsigned decimals = 0;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		for (; *p >= '0' && *p <= '9'; p++) {
			frac = frac * 10 + (unsigned)(*p - '0');
			scale *= 10;
			if (++decimals > 18)
				return -EINVAL;
		}
	}
	unsigned shift = 0;
	if (*p && strchr("kK", *p))
		shift = 10;
	else if (*p && strchr("mM", *p))
		shift = 20;
	else if (*p && strchr("gG", *p))
		shift = 30;
	else if (*p && strchr("tT", *p))
		shift = 40;
	if (shift) {
		p++;
		if (*p == 'i')
			p++;
	}
	if (*p == 'B')
		p++;
	if (*p)
		return -EINVAL;
	if (decimals && !shift)
		return -EINVAL;
	if (big)
		return -ERANGE;
	unsigned __int128 v = (whole << shift) + ((frac << shift) / scale);
	if (v > VM_SIZE_MAX)
		return -ERANGE;
	*ret = (uint64_t)v;
	return 0;
}

/* record.h: 1..VM_MOUNT_ID_MAX printable ASCII characters (no space). */
static bool model_mount_id(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > VM_MOUNT_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

/* A URL in git's sense (is_url() in git's url.c): a scheme of
 * [A-Za-z0-9+.-] then "://".  git runs the remote helper git-remote-SCHEME
 * for any scheme it does not know itself. */
static bool git_is_url(const char *s)
{
	const char *sep = strstr(s, "://");
	if (!sep || sep == s)
		return false;
	for (const char *p = s; p < sep; p++)
		if (!is_alnum(*p) && *p != '+' && *p != '.' && *p != '-')
			return false;
	return true;
}

/* record.h: https/http/ssh/git/file:/// or host:path, printable, no
 * leading '-', no transport helpers.  1: valid, 0: invalid, -1: either
 * (host:path holding "://" further on, which git reads as host:path but a
 * check may refuse). */
static int model_git_url(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > VM_GIT_URL_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	if (s[0] == '-' || strstr(s, "::"))
		return 0;
	static const char *const schemes[] = {"https://", "http://", "ssh://", "git://", "file:///"};
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strncmp(s, schemes[i], strlen(schemes[i])) == 0)
			return 1;
	const char *colon = strchr(s, ':');
	if (!colon || colon == s || memchr(s, '/', (size_t)(colon - s)))
		return 0;
	/* host:path -- unless git reads it as SCHEME://, which would name a
	 * transport helper ("ext://", "fd://", "testsvn://", ...). */
	if (git_is_url(s))
		return 0;
	return strstr(s, "://") ? -1 : 1;
}

/* ---- the parsers ---- */

static void fuzz_name(const char *s)
{
	struct vm_error err = {0};
	int r = vm_name_check("volume", s, &err);
	check_error(r, &err, "vm_name_check", s);
	FUZZ_CHECK((r == 0) == model_name(s), "vm_name_check(%s) = %d, the model says %s",
		   fuzz_show(s), r, model_name(s) ? "valid" : "invalid");
	if (r == 0) {
		size_t n = strlen(s);
		FUZZ_CHECK(n >= 2 && n <= VM_NAME_MAX, "accepted name of length %zu", n);
		FUZZ_CHECK(!strchr(s, '/'), "accepted name with '/': %s", fuzz_show(s));
		FUZZ_CHECK(s[0] != '.' && s[0] != '-', "accepted name %s", fuzz_show(s));
	} else {
		FUZZ_CHECK(r == -EINVAL, "vm_name_check(%s) = %d", fuzz_show(s), r);
	}
	/* the word in the message does not change the verdict */
	FUZZ_CHECK(vm_name_check("cache", s, NULL) == r, "cache and volume rules differ");
}

static void check_source_fields(const struct vm_source *src, const char *s)
{
	FUZZ_CHECK(memchr(src->name, '\0', sizeof(src->name)) &&
		   memchr(src->rev, '\0', sizeof(src->rev)),
		   "source fields not terminated for %s", fuzz_show(s));
	switch (src->kind) {
	case VM_SOURCE_NONE:
		FUZZ_CHECK(!src->name[0] && !src->rev[0], "empty source with a name");
		break;
	case VM_SOURCE_CACHE:
		FUZZ_CHECK(model_name(src->name), "cache source with a bad name %s",
			   fuzz_show(src->name));
		FUZZ_CHECK(!src->rev[0] || model_rev(src->rev), "bad revision %s",
			   fuzz_show(src->rev));
		break;
	case VM_SOURCE_VOLUME:
		FUZZ_CHECK(model_name(src->name) && !src->rev[0],
			   "volume source with a bad name %s", fuzz_show(src->name));
		break;
	case VM_SOURCE_PATH:
		FUZZ_CHECK(model_path(src->name) && !src->rev[0], "bad path %s",
			   fuzz_show(src->name));
		break;
	default:
		FUZZ_CHECK(false, "unknown source kind %d", (int)src->kind);
	}
}

static bool source_equal(const struct vm_source *a, const struct vm_source *b)
{
	return a->kind == b->kind && strcmp(a->name, b->name) == 0 &&
	       strcmp(a->rev, b->rev) == 0;
}

static void fuzz_source(const char *s, bool recorded)
{
	struct vm_error err = {0};
	struct vm_source src, sentinel;
	memset(&src, 0x5a, sizeof(src));
	sentinel = src;
	int r = recorded ? vm_source_parse_recorded(s, &src, &err)
			 : vm_source_parse(s, &src, &err);
	const char *what = recorded ? "vm_source_parse_recorded" : "vm_source_parse";
	check_error(r, &err, what, s);
	bool want = model_source(s, recorded);
	FUZZ_CHECK((r == 0) == want, "%s(%s) = %d, the model says %s", what, fuzz_show(s),
		   r, want ? "valid" : "invalid");
	if (r < 0) {
		FUZZ_CHECK(memcmp(&src, &sentinel, sizeof(src)) == 0,
			   "%s wrote its result on failure", what);
		return;
	}
	check_source_fields(&src, s);
	FUZZ_CHECK(recorded || src.kind != VM_SOURCE_PATH, "path: accepted from a caller");
	/* It formats back to the very text it came from... */
	char buf[VM_SOURCE_STR_MAX];
	vm_source_format(&src, buf);
	FUZZ_CHECK(strcmp(buf, s) == 0, "%s(%s) formats back as %s", what, fuzz_show(s),
		   fuzz_show(buf));
	/* ...which parses to the same source. */
	struct vm_source again;
	struct vm_error err2 = {0};
	r = vm_source_parse_recorded(buf, &again, &err2);
	FUZZ_CHECK(r == 0 && source_equal(&src, &again), "%s does not re-parse: %s",
		   fuzz_show(buf), err2.msg);
}

static void fuzz_rev(const char *s)
{
	struct vm_error err = {0};
	int r = vm_rev_check(s, &err);
	check_error(r, &err, "vm_rev_check", s);
	FUZZ_CHECK((r == 0) == model_rev(s), "vm_rev_check(%s) = %d, the model says %s",
		   fuzz_show(s), r, model_rev(s) ? "valid" : "invalid");
	if (r == 0) {
		/* nothing git could read as an option or a range */
		FUZZ_CHECK(s[0] != '-' && !strstr(s, "..") && !strchr(s, '@') &&
			   !strchr(s, '^') && !strchr(s, '~') && !strchr(s, ':'),
			   "accepted revision %s", fuzz_show(s));
		/* and cache:NAME@REV takes it */
		char spec[VM_SOURCE_STR_MAX];
		snprintf(spec, sizeof(spec), "cache:ab@%s", s);
		struct vm_source src;
		FUZZ_CHECK(vm_source_parse(spec, &src, NULL) == 0 && strcmp(src.rev, s) == 0,
			   "cache:ab@%s refused", fuzz_show(s));
	}
}

static void fuzz_duration(const char *s)
{
	struct vm_error err = {0};
	int64_t ns = -42;
	int r = vm_parse_duration(s, &ns, &err);
	check_error(r, &err, "vm_parse_duration", s);
	int64_t want = model_duration(s);
	FUZZ_CHECK((r == 0) == (want > 0), "vm_parse_duration(%s) = %d, the model says %lld",
		   fuzz_show(s), r, (long long)want);
	if (r < 0) {
		FUZZ_CHECK(ns == -42, "vm_parse_duration wrote its result on failure");
		FUZZ_CHECK(r == -EINVAL, "vm_parse_duration(%s) = %d", fuzz_show(s), r);
		return;
	}
	FUZZ_CHECK(ns == want * 1000000000LL, "vm_parse_duration(%s) = %lld ns, expected %lld s",
		   fuzz_show(s), (long long)ns, (long long)want);
	FUZZ_CHECK(ns >= 1000000000LL && ns <= 10LL * 366 * 24 * 3600 * 1000000000LL,
		   "duration %lld ns out of bounds", (long long)ns);
}

static void fuzz_size(const char *s)
{
	struct vm_error err = {0};
	uint64_t v = 42, want = 0;
	int r = vm_parse_size(s, &v, &err);
	check_error(r, &err, "vm_parse_size", s);
	int wr = model_size(s, &want);
	FUZZ_CHECK(r == wr, "vm_parse_size(%s) = %d, the model says %d", fuzz_show(s), r, wr);
	if (r < 0) {
		FUZZ_CHECK(v == 42, "vm_parse_size wrote its result on failure");
		return;
	}
	FUZZ_CHECK(v == want, "vm_parse_size(%s) = %llu, expected %llu", fuzz_show(s),
		   (unsigned long long)v, (unsigned long long)want);
	FUZZ_CHECK(v <= VM_SIZE_MAX, "size %llu out of bounds", (unsigned long long)v);
}

/* vm_create_opts_from_plugin: every key one of source/ttl/quota with a
 * string value that its own parser takes; the result is what those
 * parsers say. */
static void fuzz_opts(const char *text, size_t len)
{
	json_error_t jerr;
	_cleanup_json_ json_t *opts =
		json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	struct vm_error err = {0};
	struct vm_create_opts o;
	memset(&o, 0x5a, sizeof(o));
	int r = vm_create_opts_from_plugin(opts, &o, &err);
	check_error(r, &err, "vm_create_opts_from_plugin", text);

	bool want = true;
	struct vm_create_opts m = {0};
	if (opts && !json_is_null(opts)) {
		if (!json_is_object(opts)) {
			want = false;
		} else {
			const char *key;
			json_t *val;
			json_object_foreach(opts, key, val) {
				const char *v = json_string_value(val);
				if (!v)
					want = false;
				else if (strcmp(key, "source") == 0)
					want &= model_source(v, false) &&
						vm_source_parse(v, &m.source, NULL) == 0;
				else if (strcmp(key, "ttl") == 0)
					want &= vm_parse_duration(v, &m.ttl_ns, NULL) == 0;
				else if (strcmp(key, "quota") == 0)
					want &= vm_parse_size(v, &m.quota_bytes, NULL) == 0,
						m.quota_set = true;
				else
					want = false;
			}
		}
	}
	FUZZ_CHECK((r == 0) == want, "vm_create_opts_from_plugin(%s) = %d, expected %s",
		   fuzz_show(text), r, want ? "success" : "an error");
	if (r < 0)
		return;
	FUZZ_CHECK(source_equal(&o.source, &m.source) && o.ttl_ns == m.ttl_ns &&
		   o.quota_set == m.quota_set && o.quota_bytes == m.quota_bytes &&
		   o.labels == NULL && !o.seed_by_rules,
		   "options of %s differ from their parsers' results", fuzz_show(text));
	FUZZ_CHECK(o.ttl_ns == 0 || (o.ttl_ns >= 1000000000LL &&
				     o.ttl_ns <= 10LL * 366 * 24 * 3600 * 1000000000LL),
		   "ttl %lld out of bounds", (long long)o.ttl_ns);
	FUZZ_CHECK(o.quota_bytes <= VM_SIZE_MAX, "quota out of bounds");
	check_source_fields(&o.source, text);
	vm_create_opts_done(&o);
}

static bool model_label(const char *key, json_t *val)
{
	size_t kl = strlen(key);
	if (kl < 1 || kl > VM_LABEL_KEY_MAX)
		return false;
	for (size_t i = 0; i < kl; i++)
		if (!is_alnum(key[i]) && !strchr("._/-", key[i]))
			return false;
	if (!json_is_string(val) || json_string_length(val) > VM_LABEL_VALUE_MAX)
		return false;
	return utf8_printable(json_string_value(val), json_string_length(val));
}

static bool model_labels(json_t *labels)
{
	if (!labels || json_is_null(labels))
		return true;
	if (!json_is_object(labels) || json_object_size(labels) > VM_LABELS_MAX)
		return false;
	const char *key;
	json_t *val;
	json_object_foreach(labels, key, val)
		if (!model_label(key, val))
			return false;
	return true;
}

static void fuzz_labels(const char *text, size_t len)
{
	json_error_t jerr;
	/* JSON_ALLOW_NUL: labels reach vm_labels_check from records and
	 * requests; let NUL bytes in values through to it here. */
	_cleanup_json_ json_t *labels = json_loadb(
		text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	struct vm_error err = {0};
	int r = vm_labels_check(labels, &err);
	check_error(r, &err, "vm_labels_check", text);
	FUZZ_CHECK((r == 0) == model_labels(labels), "vm_labels_check(%s) = %d, the model says %s",
		   fuzz_show(text), r, model_labels(labels) ? "valid" : "invalid");
}

/* Lines of KEY=VALUE into one object, as repeated --label options do. */
static void fuzz_label_kv(const char *text)
{
	_cleanup_json_ json_t *labels = json_object();
	char *copy = fuzz_strndup(text, strlen(text));
	for (char *line = copy, *next; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		_cleanup_json_ json_t *before = json_deep_copy(labels);
		struct vm_error err = {0};
		int r = vm_label_parse_into(labels, line, &err);
		check_error(r, &err, "vm_label_parse_into", line);

		const char *eq = strchr(line, '=');
		bool want = eq && eq != line && (size_t)(eq - line) <= VM_LABEL_KEY_MAX;
		char key[VM_LABEL_KEY_MAX + 1] = "";
		if (want) {
			memcpy(key, line, (size_t)(eq - line));
			key[eq - line] = '\0';
			json_t *v = json_string(eq + 1);
			want = v && model_label(key, v) &&
			       (json_object_get(before, key) ||
				json_object_size(before) < VM_LABELS_MAX);
			json_decref(v);
		}
		FUZZ_CHECK((r == 0) == want, "vm_label_parse_into(%s) = %d, the model says %s",
			   fuzz_show(line), r, want ? "valid" : "invalid");
		if (r < 0) {
			FUZZ_CHECK(json_equal(labels, before),
				   "a refused label changed the labels: %s", fuzz_show(line));
		} else {
			const char *got = json_string_value(json_object_get(labels, key));
			FUZZ_CHECK(got && strcmp(got, eq + 1) == 0, "label %s not set",
				   fuzz_show(line));
			FUZZ_CHECK(json_object_size(labels) <= json_object_size(before) + 1,
				   "more than one label added");
		}
	}
	free(copy);
	struct vm_error err = {0};
	FUZZ_CHECK(vm_labels_check(labels, &err) == 0,
		   "labels made by vm_label_parse_into fail vm_labels_check: %s", err.msg);
}

static void fuzz_git_url(const char *s)
{
	struct vm_error err = {0};
	int r = vm_git_url_check(s, &err);
	check_error(r, &err, "vm_git_url_check", s);
	/* what git would take for a transport helper is never accepted */
	FUZZ_CHECK(r < 0 || !git_is_url(s) || strncmp(s, "https://", 8) == 0 ||
			   strncmp(s, "http://", 7) == 0 || strncmp(s, "ssh://", 6) == 0 ||
			   strncmp(s, "git://", 6) == 0 || strncmp(s, "file:///", 8) == 0,
		   "vm_git_url_check accepts %s: git would run git-remote-SCHEME for it",
		   fuzz_show(s));
	int want = model_git_url(s);
	FUZZ_CHECK(want < 0 || (r == 0) == want, "vm_git_url_check(%s) = %d, the model says %s",
		   fuzz_show(s), r, want ? "valid" : "invalid");
}

static void fuzz_mount_id(const char *s)
{
	struct vm_error err = {0};
	int r = vm_mount_id_check(s, &err);
	check_error(r, &err, "vm_mount_id_check", s);
	FUZZ_CHECK((r == 0) == model_mount_id(s), "vm_mount_id_check(%s) = %d, the model says %s",
		   fuzz_show(s), r, model_mount_id(s) ? "valid" : "invalid");
}

static void fuzz_path(const char *s)
{
	struct vm_error err = {0};
	int r = vm_source_path_check(s, &err);
	check_error(r, &err, "vm_source_path_check", s);
	FUZZ_CHECK((r == 0) == model_path(s), "vm_source_path_check(%s) = %d, the model says %s",
		   fuzz_show(s), r, model_path(s) ? "valid" : "invalid");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_init_once();
	if (size < 1)
		return 0;
	unsigned sel = data[0] % SEL_MAX;
	size_t len = size - 1;
	char *s = fuzz_strndup(data + 1, len);

	switch (sel) {
	case SEL_NAME: fuzz_name(s); break;
	case SEL_SOURCE: fuzz_source(s, false); break;
	case SEL_SOURCE_RECORDED: fuzz_source(s, true); break;
	case SEL_REV: fuzz_rev(s); break;
	case SEL_DURATION: fuzz_duration(s); break;
	case SEL_SIZE: fuzz_size(s); break;
	case SEL_OPTS: fuzz_opts(s, len); break;
	case SEL_LABELS: fuzz_labels(s, len); break;
	case SEL_LABEL_KV: fuzz_label_kv(s); break;
	case SEL_GIT_URL: fuzz_git_url(s); break;
	case SEL_MOUNT_ID: fuzz_mount_id(s); break;
	case SEL_PATH: fuzz_path(s); break;
	}
	free(s);
	return 0;
}
