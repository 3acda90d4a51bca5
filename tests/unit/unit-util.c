/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "unit-util.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		abort();
	return p;
}

char *ut_read_file(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	size_t cap = 4096, len = 0;
	char *buf = xmalloc(cap);
	for (;;) {
		if (len + 1 >= cap) {
			cap *= 2;
			char *n = realloc(buf, cap);
			if (!n)
				abort();
			buf = n;
		}
		size_t got = fread(buf + len, 1, cap - len - 1, f);
		len += got;
		if (got == 0)
			break;
	}
	int failed = ferror(f);
	fclose(f);
	if (failed) {
		free(buf);
		errno = EIO;
		return NULL;
	}
	buf[len] = '\0';
	if (ret_len)
		*ret_len = len;
	return buf;
}

char *ut_path(const char *dir, const char *name)
{
	size_t dl = strlen(dir), nl = strlen(name);
	char *p = xmalloc(dl + nl + 2);
	memcpy(p, dir, dl);
	p[dl] = '/';
	memcpy(p + dl + 1, name, nl + 1);
	return p;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char **ut_list_dir(const char *dir, const char *suffix, size_t *ret_n)
{
	DIR *d = opendir(dir);
	if (!d)
		return NULL;
	size_t n = 0, cap = 16;
	char **v = xmalloc(cap * sizeof(*v));
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || !ut_endswith(de->d_name, suffix))
			continue;
		if (n + 1 >= cap) {
			cap *= 2;
			char **nv = realloc(v, cap * sizeof(*v));
			if (!nv)
				abort();
			v = nv;
		}
		v[n] = strdup(de->d_name);
		if (!v[n])
			abort();
		n++;
	}
	closedir(d);
	qsort(v, n, sizeof(*v), cmp_str);
	v[n] = NULL;
	if (ret_n)
		*ret_n = n;
	return v;
}

void ut_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

char *ut_repeat(char c, size_t n)
{
	char *s = xmalloc(n + 1);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

int ut_startswith(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

int ut_endswith(const char *s, const char *suffix)
{
	size_t sl = strlen(s), xl = strlen(suffix);
	return sl >= xl && strcmp(s + sl - xl, suffix) == 0;
}

const char *ut_fixtures_dir(int argc, char **argv, const char *sub)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s FIXTURES-DIR\n", argv[0]);
		exit(1);
	}
	char *p = ut_path(argv[1], sub);
	struct stat st;
	if (stat(p, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "%s: fixture directory %s missing: %s\n", argv[0], p,
			strerror(errno ? errno : ENOTDIR));
		exit(1);
	}
	return p;
}

int ut_run_pairs(const char *group, const char *dir, size_t min,
		 void (*test_func)(void **state), void *state, const struct CMUnitTest *fixed,
		 size_t nfixed)
{
	size_t nreq, nrep;
	char **reqs = ut_list_dir(dir, ".request", &nreq);
	char **reps = ut_list_dir(dir, ".reply", &nrep);
	if (!reqs || !reps) {
		fprintf(stderr, "cannot list %s\n", dir);
		exit(1);
	}
	/* every request has its reply and the other way round */
	bool paired = nreq == nrep;
	for (size_t i = 0; paired && i < nreq; i++) {
		size_t a = strlen(reqs[i]) - strlen(".request");
		size_t b = strlen(reps[i]) - strlen(".reply");
		paired = a == b && strncmp(reqs[i], reps[i], a) == 0;
	}
	if (!paired) {
		fprintf(stderr, "%s: .request and .reply files do not pair up\n", dir);
		exit(1);
	}
	if (nreq < min) {
		fprintf(stderr, "%s: only %zu pairs\n", dir, nreq);
		exit(1);
	}
	size_t nt = nreq + nfixed;
	struct CMUnitTest *tests = xmalloc(nt * sizeof(*tests));
	struct ut_pair *pairs = xmalloc(nreq * sizeof(*pairs));
	for (size_t i = 0; i < nreq; i++) {
		struct ut_pair *p = &pairs[i];
		p->name = strndup(reqs[i], strlen(reqs[i]) - strlen(".request"));
		if (!p->name)
			abort();
		p->request = ut_path(dir, reqs[i]);
		p->reply = ut_path(dir, reps[i]);
		p->state = state;
		tests[i] = (struct CMUnitTest){
			.name = p->name,
			.test_func = test_func,
			.initial_state = p,
		};
	}
	memcpy(tests + nreq, fixed, nfixed * sizeof(*fixed));
	int failed = _cmocka_run_group_tests(group, tests, nt, NULL, NULL);
	for (size_t i = 0; i < nreq; i++) {
		free(pairs[i].name);
		free(pairs[i].request);
		free(pairs[i].reply);
	}
	free(pairs);
	free(tests);
	ut_strv_free(reqs);
	ut_strv_free(reps);
	return failed;
}

/* json_equal, except that a string ending in '*' in want matches any
 * string starting with what precedes the '*'.  On a mismatch, *where
 * says where. */
static bool matches(json_t *want, json_t *got, const char *key, char *where, size_t wsz)
{
	if (json_is_string(want) && json_string_length(want) > 0 &&
	    json_string_value(want)[json_string_length(want) - 1] == '*') {
		size_t n = json_string_length(want) - 1;
		if (json_is_string(got) && json_string_length(got) >= n &&
		    memcmp(json_string_value(got), json_string_value(want), n) == 0)
			return true;
		snprintf(where, wsz, "\"%s\" does not start with \"%.*s\"", key ? key : "(element)",
			 (int)n, json_string_value(want));
		return false;
	}
	if (json_is_object(want) && json_is_object(got)) {
		const char *k;
		json_t *w;
		json_object_foreach(want, k, w) {
			json_t *g = json_object_get(got, k);
			if (!g) {
				snprintf(where, wsz, "key \"%s\" missing", k);
				return false;
			}
			if (!matches(w, g, k, where, wsz))
				return false;
		}
		json_object_foreach(got, k, w)
			if (!json_object_get(want, k)) {
				snprintf(where, wsz, "unexpected key \"%s\"", k);
				return false;
			}
		return true;
	}
	if (json_is_array(want) && json_is_array(got)) {
		if (json_array_size(want) != json_array_size(got)) {
			snprintf(where, wsz, "array of %zu elements, expected %zu",
				 json_array_size(got), json_array_size(want));
			return false;
		}
		for (size_t i = 0; i < json_array_size(want); i++)
			if (!matches(json_array_get(want, i), json_array_get(got, i), key, where, wsz))
				return false;
		return true;
	}
	if (!json_equal(want, got)) {
		snprintf(where, wsz, "value of \"%s\" differs", key ? key : "(element)");
		return false;
	}
	return true;
}

bool ut_json_matches(json_t *want, json_t *got, char *where, size_t wsz)
{
	return matches(want, got, NULL, where, wsz);
}
