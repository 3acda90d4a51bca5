/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "names.h"

#include <stdio.h>
#include <string.h>

static bool name_char(char c, bool first)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return !first && (c == '_' || c == '.' || c == '-');
}

int vm_name_check(const char *what, const char *name, struct vm_error *err)
{
	if (!name || !name[0])
		return vm_error_set(err, EINVAL, "%s name is empty", what);
	size_t len = strnlen(name, VM_NAME_MAX + 1);
	if (len > VM_NAME_MAX)
		return vm_error_set(err, EINVAL,
				    "%s name is longer than %d characters", what,
				    VM_NAME_MAX);
	if (len < 2)
		return vm_error_set(
			err, EINVAL,
			"invalid %s name \"%s\": at least 2 characters are required",
			what, name);
	for (size_t i = 0; i < len; i++) {
		if (!name_char(name[i], i == 0))
			return vm_error_set(
				err, EINVAL,
				"invalid %s name: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed (bad character at position %zu)",
				what, i + 1);
	}
	return 0;
}

int vm_source_parse(const char *spec, struct vm_source *ret, struct vm_error *err)
{
	struct vm_source s = {0};
	const char *name;
	if (!spec || !spec[0]) {
		*ret = s;
		return 0;
	}
	if (strncmp(spec, "cache:", 6) == 0) {
		s.kind = VM_SOURCE_CACHE;
		name = spec + 6;
	} else if (strncmp(spec, "volume:", 7) == 0) {
		s.kind = VM_SOURCE_VOLUME;
		name = spec + 7;
	} else {
		return vm_error_set(
			err, EINVAL,
			"invalid source: expected cache:NAME, cache:NAME@REV or volume:NAME");
	}
	const char *at = s.kind == VM_SOURCE_CACHE ? strchr(name, '@') : NULL;
	char plain[VM_NAME_MAX + 1];
	if (at) {
		int r = vm_rev_check(at + 1, err);
		if (r < 0)
			return r;
		if ((size_t)(at - name) > VM_NAME_MAX)
			return vm_error_set(err, EINVAL, "cache name is longer than %d characters",
					    VM_NAME_MAX);
		memcpy(plain, name, (size_t)(at - name));
		plain[at - name] = '\0';
		memcpy(s.rev, at + 1, strlen(at + 1) + 1);
		name = plain;
	}
	int r = vm_name_check(s.kind == VM_SOURCE_CACHE ? "cache" : "volume",
			      name, err);
	if (r < 0)
		return r;
	memcpy(s.name, name, strlen(name) + 1);
	*ret = s;
	return 0;
}

int vm_rev_check(const char *rev, struct vm_error *err)
{
	size_t n = rev ? strnlen(rev, VM_REV_MAX + 1) : 0;
	if (n == 0 || n > VM_REV_MAX)
		return vm_error_set(err, EINVAL, "revision must have 1 to %d characters",
				    VM_REV_MAX);
	for (size_t i = 0; i < n; i++) {
		char c = rev[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '/' || c == '-'))
			return vm_error_set(err, EINVAL,
					    "invalid revision: only [A-Za-z0-9._/-] are allowed");
	}
	if (rev[0] == '-' || rev[0] == '/' || rev[0] == '.' || rev[n - 1] == '/' ||
	    rev[n - 1] == '.' || strstr(rev, "..") || strstr(rev, "//") || strstr(rev, "/.") ||
	    (n >= 5 && strcmp(rev + n - 5, ".lock") == 0) || strstr(rev, ".lock/"))
		return vm_error_set(err, EINVAL, "invalid revision \"%s\"", rev);
	return 0;
}

int vm_source_path_check(const char *path, struct vm_error *err)
{
	size_t n = path ? strnlen(path, VM_SOURCE_PATH_MAX + 1) : 0;
	if (n == 0 || n > VM_SOURCE_PATH_MAX || path[0] != '/')
		return vm_error_set(err, EINVAL,
				    "source path must be absolute and at most %d bytes",
				    VM_SOURCE_PATH_MAX);
	_cleanup_free_ char *copy = strdup(path);
	if (!copy)
		return vm_error_set(err, ENOMEM, "out of memory");
	vm_utf8_sanitize(copy);
	if (strcmp(copy, path) != 0)
		return vm_error_set(err, EINVAL,
				    "source path must be UTF-8 without control characters");
	return 0;
}

int vm_source_parse_recorded(const char *spec, struct vm_source *ret,
			     struct vm_error *err)
{
	if (spec && strncmp(spec, "path:", 5) == 0) {
		int r = vm_source_path_check(spec + 5, err);
		if (r < 0)
			return r;
		struct vm_source s = {.kind = VM_SOURCE_PATH};
		memcpy(s.name, spec + 5, strlen(spec + 5) + 1);
		*ret = s;
		return 0;
	}
	return vm_source_parse(spec, ret, err);
}

void vm_source_format(const struct vm_source *src, char buf[static VM_SOURCE_STR_MAX])
{
	switch (src->kind) {
	case VM_SOURCE_CACHE:
		snprintf(buf, VM_SOURCE_STR_MAX, "cache:%.200s%s%.255s", src->name,
			 src->rev[0] ? "@" : "", src->rev);
		break;
	case VM_SOURCE_VOLUME:
		snprintf(buf, VM_SOURCE_STR_MAX, "volume:%s", src->name);
		break;
	case VM_SOURCE_PATH:
		snprintf(buf, VM_SOURCE_STR_MAX, "path:%s", src->name);
		break;
	default:
		buf[0] = '\0';
	}
}

void vm_create_opts_done(struct vm_create_opts *o)
{
	json_decref(o->labels);
	o->labels = NULL;
}

int vm_create_opts_from_plugin(json_t *opts, struct vm_create_opts *ret,
			       struct vm_error *err)
{
	struct vm_create_opts o = {0};
	if (opts && !json_is_null(opts)) {
		if (!json_is_object(opts))
			return vm_error_set(err, EINVAL,
					    "Opts must be an object of strings");
		const char *key;
		json_t *val;
		json_object_foreach(opts, key, val) {
			if (!json_is_string(val))
				return vm_error_set(
					err, EINVAL,
					"option \"%.64s\" must be a string", key);
			int r = 0;
			if (strcmp(key, "source") == 0)
				r = vm_source_parse(json_string_value(val), &o.source, err);
			else if (strcmp(key, "ttl") == 0)
				r = vm_parse_duration(json_string_value(val), &o.ttl_ns, err);
			else if (strcmp(key, "quota") == 0) {
				r = vm_parse_size(json_string_value(val), &o.quota_bytes, err);
				o.quota_set = true;
			} else
				r = vm_error_set(err, EINVAL,
						 "unknown option \"%.64s\" (known: source, ttl, quota)",
						 key);
			if (r < 0)
				return r;
		}
	}
	*ret = o;
	return 0;
}

static bool label_key_char(char c)
{
	return name_char(c, true) || c == '.' || c == '-' || c == '_' ||
	       c == '/';
}

static int label_check_one(const char *key, json_t *val, struct vm_error *err)
{
	size_t kl = strlen(key);
	if (kl == 0 || kl > VM_LABEL_KEY_MAX)
		return vm_error_set(err, EINVAL, "label key must have 1 to %d characters",
				    VM_LABEL_KEY_MAX);
	for (size_t i = 0; i < kl; i++)
		if (!label_key_char(key[i]))
			return vm_error_set(
				err, EINVAL,
				"invalid label key: only [a-zA-Z0-9._/-] are allowed");
	if (!json_is_string(val))
		return vm_error_set(err, EINVAL, "label \"%.64s\" must be a string", key);
	size_t vl = json_string_length(val);
	const char *v = json_string_value(val);
	if (vl > VM_LABEL_VALUE_MAX)
		return vm_error_set(err, EINVAL, "label \"%.64s\" is longer than %d bytes",
				    key, VM_LABEL_VALUE_MAX);
	if (vm_utf8_has_control(v, vl))
		return vm_error_set(err, EINVAL,
				    "label \"%.64s\" contains a control character", key);
	return 0;
}

int vm_labels_check(json_t *labels, struct vm_error *err)
{
	if (!labels || json_is_null(labels))
		return 0;
	if (!json_is_object(labels))
		return vm_error_set(err, EINVAL, "labels must be an object of strings");
	if (json_object_size(labels) > VM_LABELS_MAX)
		return vm_error_set(err, EINVAL, "more than %d labels", VM_LABELS_MAX);
	const char *key;
	json_t *val;
	json_object_foreach(labels, key, val) {
		int r = label_check_one(key, val, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int vm_label_parse_into(json_t *labels, const char *kv, struct vm_error *err)
{
	const char *eq = strchr(kv, '=');
	if (!eq || eq == kv)
		return vm_error_set(err, EINVAL, "label must be KEY=VALUE");
	size_t kl = (size_t)(eq - kv);
	if (kl > VM_LABEL_KEY_MAX)
		return vm_error_set(err, EINVAL, "label key is longer than %d characters",
				    VM_LABEL_KEY_MAX);
	char key[VM_LABEL_KEY_MAX + 1];
	memcpy(key, kv, kl);
	key[kl] = '\0';
	json_t *v = json_string(eq + 1); /* NULL on invalid UTF-8 */
	if (!v)
		return vm_error_set(err, EINVAL, "label value is not valid UTF-8");
	/* Check before inserting: a refused label leaves labels unchanged. */
	int r = label_check_one(key, v, err);
	if (r == 0 && !json_object_get(labels, key) &&
	    json_object_size(labels) >= VM_LABELS_MAX)
		r = vm_error_set(err, EINVAL, "more than %d labels", VM_LABELS_MAX);
	if (r < 0) {
		json_decref(v);
		return r;
	}
	if (json_object_set_new(labels, key, v) < 0)
		return vm_error_set(err, ENOMEM, "out of memory");
	return 0;
}

int vm_parse_duration(const char *s, int64_t *ret_ns, struct vm_error *err)
{
	static const int64_t max_s = 10LL * 366 * 24 * 3600;
	if (!s || !*s || strlen(s) > 32)
		return vm_error_set(err, EINVAL, "invalid duration: expected e.g. 90s, 15m, 2h, 7d");
	int64_t total = 0;
	const char *p = s;
	while (*p) {
		if (*p < '0' || *p > '9')
			return vm_error_set(err, EINVAL, "invalid duration \"%.32s\"", s);
		int64_t n = 0;
		while (*p >= '0' && *p <= '9') {
			n = n * 10 + (*p++ - '0');
			if (n > max_s)
				return vm_error_set(err, EINVAL, "duration \"%.32s\" is too long", s);
		}
		int64_t unit;
		switch (*p) {
		case '\0': unit = 1; break; /* bare number: seconds */
		case 's': unit = 1; p++; break;
		case 'm': unit = 60; p++; break;
		case 'h': unit = 3600; p++; break;
		case 'd': unit = 86400; p++; break;
		case 'w': unit = 7 * 86400; p++; break;
		default:
			return vm_error_set(err, EINVAL, "invalid duration \"%.32s\": units are s, m, h, d, w", s);
		}
		total += n * unit;
		if (total > max_s)
			return vm_error_set(err, EINVAL, "duration \"%.32s\" is too long", s);
	}
	if (total <= 0)
		return vm_error_set(err, EINVAL, "duration must be at least 1 s");
	*ret_ns = total * 1000000000LL;
	return 0;
}

/* n digits at *p as a number, advancing *p; -1 if they are not there. */
static int take_digits(const char **p, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (**p < '0' || **p > '9')
			return -1;
		v = v * 10 + (**p - '0');
	}
	return v;
}

int vm_parse_time(const char *s, int64_t *ret_ns, struct vm_error *err)
{
	if (!s || strlen(s) > 40)
		return vm_error_set(err, EINVAL, "invalid time: expected RFC 3339 (2026-12-06T17:05:09Z) or @SECONDS");
	const char *p = s;
	int64_t secs;
	if (*p == '@') {
		p++;
		int64_t n = 0;
		if (!*p)
			return vm_error_set(err, EINVAL, "invalid time \"%.40s\"", s);
		for (; *p; p++) {
			if (*p < '0' || *p > '9' || n > 253402300799LL)
				return vm_error_set(err, EINVAL, "invalid time \"%.40s\"", s);
			n = n * 10 + (*p - '0');
		}
		if (n > 253402300799LL) /* 9999-12-31T23:59:59Z */
			return vm_error_set(err, EINVAL, "invalid time \"%.40s\": after 9999", s);
		secs = n;
	} else {
		int y = take_digits(&p, 4), mo = (*p == '-' ? p++, take_digits(&p, 2) : -1),
		    d = (*p == '-' ? p++, take_digits(&p, 2) : -1),
		    h = ((*p == 'T' || *p == 't' || *p == ' ') ? p++, take_digits(&p, 2) : -1),
		    mi = (*p == ':' ? p++, take_digits(&p, 2) : -1),
		    se = (*p == ':' ? p++, take_digits(&p, 2) : -1);
		static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
		bool leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
		if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
		    (mo == 2 && d == 29 && !leap) || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 ||
		    se > 60)
			return vm_error_set(err, EINVAL, "invalid time \"%.40s\": expected RFC 3339 (2026-12-06T17:05:09Z)", s);
		if (*p == '.')
			for (p++; *p >= '0' && *p <= '9'; p++)
				; /* a fraction of a second: not needed to order commits */
		int off = 0;
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			int sign = *p++ == '-' ? -1 : 1, oh = take_digits(&p, 2),
			    om = (*p == ':' ? p++, take_digits(&p, 2) : -1);
			if (oh < 0 || oh > 23 || om < 0 || om > 59)
				return vm_error_set(err, EINVAL, "invalid time \"%.40s\": bad offset", s);
			off = sign * (oh * 3600 + om * 60);
		} else {
			return vm_error_set(err, EINVAL, "invalid time \"%.40s\": no time zone (Z or +HH:MM)", s);
		}
		if (*p)
			return vm_error_set(err, EINVAL, "invalid time \"%.40s\"", s);
		/* Days since the epoch of a proleptic Gregorian date. */
		int yy = mo <= 2 ? y - 1 : y;
		int64_t era = yy / 400, yoe = yy - era * 400;
		int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
		int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
		int64_t days = era * 146097 + doe - 719468;
		secs = days * 86400 + h * 3600 + mi * 60 + se - off;
		if (secs < 0)
			return vm_error_set(err, EINVAL, "invalid time \"%.40s\": before 1970", s);
	}
	/* Nanoseconds in an int64_t end in 2262. */
	if (secs > INT64_MAX / 1000000000LL)
		return vm_error_set(err, EINVAL, "invalid time \"%.40s\": after 2262", s);
	*ret_ns = secs * 1000000000LL;
	return 0;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int vm_parse_size(const char *s, uint64_t *ret, struct vm_error *err)
{
	if (!s || !ret)
		return vm_error_set(err, EINVAL, "no size given");
	size_t len = strnlen(s, 65);
	if (len == 0)
		return vm_error_set(err, EINVAL, "empty size");
	if (len > 64)
		return vm_error_set(err, EINVAL, "size '%.32s...' too long", s);

	const char *p = s;
	if (!is_digit(*p))
		return vm_error_set(err, EINVAL,
				    "invalid size '%s': must start with a digit", s);

	uint64_t whole = 0;
	bool overflow = false;
	for (; is_digit(*p); p++) {
		if (__builtin_mul_overflow(whole, 10, &whole) ||
		    __builtin_add_overflow(whole, (uint64_t)(*p - '0'), &whole))
			overflow = true;
	}

	/* Fraction: frac / scale, at most 18 decimals so scale fits. */
	uint64_t frac = 0, scale = 1;
	unsigned decimals = 0;
	if (*p == '.') {
		p++;
		if (!is_digit(*p))
			return vm_error_set(err, EINVAL,
					    "invalid size '%s': digits must follow '.'", s);
		for (; is_digit(*p); p++) {
			if (decimals == 18)
				return vm_error_set(err, EINVAL,
						    "invalid size '%s': too many decimals", s);
			frac = frac * 10 + (uint64_t)(*p - '0');
			scale *= 10;
			decimals++;
		}
	}

	unsigned shift = 0;
	switch (*p) {
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	case 't': case 'T': shift = 40; break;
	}
	if (shift > 0) {
		p++;
		if (*p == 'i')
			p++;
	}
	if (*p == 'B')
		p++;
	if (*p != '\0')
		return vm_error_set(err, EINVAL,
				    "invalid size '%s': unknown unit (use K, M, G, T, "
				    "optionally with i, iB or B)", s);
	if (decimals > 0 && shift == 0)
		return vm_error_set(err, EINVAL,
				    "invalid size '%s': a fraction needs a unit", s);
	if (overflow)
		return vm_error_set(err, ERANGE, "size '%s' too large", s);

	uint64_t v;
	if (whole > (UINT64_MAX >> shift))
		return vm_error_set(err, ERANGE, "size '%s' too large", s);
	v = whole << shift;

	/* floor(frac * 2^shift / scale) by binary long division: frac < scale
	 * <= 10^18, so 2 * rem never overflows. */
	uint64_t q = 0, rem = frac;
	for (unsigned i = 0; i < shift; i++) {
		rem *= 2;
		q *= 2;
		if (rem >= scale) {
			rem -= scale;
			q++;
		}
	}
	if (__builtin_add_overflow(v, q, &v) || v > VM_SIZE_MAX)
		return vm_error_set(err, ERANGE, "size '%s' larger than %llu bytes", s,
				    (unsigned long long)VM_SIZE_MAX);
	*ret = v;
	return 0;
}
