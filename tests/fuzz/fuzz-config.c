/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* volmgr.conf: vm_config_parse_string, then, for a configuration it
 * accepts, the seed rules (vm_config_seed_for, vm_pattern_match).
 *
 * Input: the configuration text.  Comment lines (inih skips them) add
 * work: "#name:NAME" adds NAME to the volume names the seed rules are
 * tried on; "#match:PATTERN NAME" runs vm_pattern_match on PATTERN as is,
 * checked or not (the matcher is exported), on a thread with a small
 * stack: matching must need little stack whatever the pattern.
 *
 * Checks:
 *  - a refusal follows the error convention and leaves *ret untouched;
 *  - what is accepted is within the documented bounds, and each seed rule
 *    passes its own checks again: "[seed]\nPATTERN=SOURCE\n" alone parses
 *    to the same rule;
 *  - vm_pattern_match agrees with a plain backtracking matcher (shortest
 *    choice first, as documented) on the result and the captures;
 *  - vm_config_seed_for agrees with the rules applied by hand (first match,
 *    captures substituted, the result parsed by vm_source_parse), and what
 *    it returns is a valid source that round-trips through
 *    vm_source_format. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>

#include "fuzz.h"

#include "config.h"

#define NAMES_MAX 16
#define RULES_DERIVED 8

static bool cap_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

/* config.h: name characters, "*", and "{name}" around 1..31 of
 * [A-Za-z0-9_]; 1..VM_SEED_PATTERN_MAX characters. */
static bool model_pattern(const char *p)
{
	size_t n = strlen(p);
	if (n == 0 || n > VM_SEED_PATTERN_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '{') {
			const char *e = strchr(p + i, '}');
			size_t vl = e ? (size_t)(e - (p + i)) - 1 : 0;
			if (!e || vl == 0 || vl > 31)
				return false;
			for (size_t k = i + 1; k < i + 1 + vl; k++)
				if (!cap_char(p[k]) || p[k] == '.' || p[k] == '-')
					return false;
			i += vl + 1;
		} else if (p[i] != '*' && !cap_char(p[i])) {
			return false;
		}
	}
	return true;
}

/* ---- a plain matcher to compare vm_pattern_match with ---- */

#define REF_CAPS 64

struct ref {
	long budget;
	bool out_of_budget;
	struct vm_capture caps[REF_CAPS];
	size_t n;
};

static bool ref_at(struct ref *r, const char *p, const char *s, size_t n)
{
	if (--r->budget < 0) {
		r->out_of_budget = true;
		return false;
	}
	if (!*p) {
		if (*s)
			return false;
		r->n = n;
		return true;
	}
	if (*p == '*') {
		for (size_t k = 0;; k++) {
			if (ref_at(r, p + 1, s + k, n))
				return true;
			if (r->out_of_budget || !s[k])
				return false;
		}
	}
	if (*p == '{') {
		const char *e = strchr(p, '}');
		for (size_t k = 1; s[k - 1] && cap_char(s[k - 1]); k++) {
			if (n < REF_CAPS) {
				snprintf(r->caps[n].name, sizeof(r->caps[n].name), "%.*s",
					 (int)(e - p - 1), p + 1);
				snprintf(r->caps[n].value, sizeof(r->caps[n].value), "%.*s",
					 (int)k, s);
			}
			if (ref_at(r, e + 1, s + k, n + 1))
				return true;
			if (r->out_of_budget)
				return false;
		}
		return false;
	}
	return *p == *s && ref_at(r, p + 1, s + 1, n);
}

/* 1: match, 0: none, -1: undecided (too much work for the plain matcher). */
static int ref_match(const char *pattern, const char *name, struct ref *r)
{
	memset(r, 0, sizeof(*r));
	r->budget = 20000;
	if (strlen(pattern) > VM_SEED_PATTERN_MAX || strlen(name) > VM_NAME_MAX)
		return 0;
	bool ok = ref_at(r, pattern, name, 0);
	return r->out_of_budget ? -1 : ok;
}

static int check_match(const char *pattern, const char *name)
{
	struct ref r;
	int want = ref_match(pattern, name, &r);
	struct vm_capture caps[8];
	size_t n = 99;
	bool got = vm_pattern_match(pattern, name, caps, 8, &n);
	if (want < 0)
		return -1;
	FUZZ_CHECK(got == (want == 1), "vm_pattern_match(%s, %s) = %d, expected %d",
		   pattern, name, got, want);
	if (!got)
		return 0; /* (*ret_n is not always written then) */
	size_t wn = r.n < 8 ? r.n : 8;
	FUZZ_CHECK(n == wn, "vm_pattern_match(%s, %s): %zu captures, expected %zu",
		   pattern, name, n, wn);
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(strcmp(caps[i].name, r.caps[i].name) == 0 &&
			   strcmp(caps[i].value, r.caps[i].value) == 0,
			   "vm_pattern_match(%s, %s): capture %zu is %s=%s, expected %s=%s",
			   pattern, name, i, caps[i].name, caps[i].value, r.caps[i].name,
			   r.caps[i].value);
		FUZZ_CHECK(caps[i].value[0], "empty capture");
		for (const char *c = caps[i].value; *c; c++)
			FUZZ_CHECK(cap_char(*c), "capture %s holds a non-name character",
				   caps[i].value);
	}
	return 1;
}

/* ---- vm_pattern_match on any pattern, with a bounded stack ---- */

#define MATCH_STACK (256 * 1024)

struct direct {
	char pattern[VM_SEED_PATTERN_MAX + 2];
	char name[VM_NAME_MAX + 2];
};

static void *direct_match(void *arg)
{
	const struct direct *d = arg;
	/* Where nothing (ASan) gave this thread a signal stack, one for
	 * the replay driver's crash report. */
	stack_t old, ss = {.ss_size = 64 * 1024};
	if (sigaltstack(NULL, &old) == 0 && (old.ss_flags & SS_DISABLE)) {
		ss.ss_sp = fuzz_xmalloc(ss.ss_size);
		sigaltstack(&ss, NULL);
	}
	if (model_pattern(d->pattern) && strlen(d->name) <= VM_NAME_MAX) {
		check_match(d->pattern, d->name);
	} else {
		struct vm_capture caps[8];
		size_t n = 0;
		if (vm_pattern_match(d->pattern, d->name, caps, 8, &n))
			FUZZ_CHECK(n <= 8, "%zu captures", n);
	}
	if (ss.ss_sp) {
		ss.ss_flags = SS_DISABLE;
		sigaltstack(&ss, NULL);
		free(ss.ss_sp);
	}
	return NULL;
}

static void run_direct(const char *line, size_t len)
{
	const char *sp = memchr(line, ' ', len);
	if (!sp)
		return;
	struct direct d;
	snprintf(d.pattern, sizeof(d.pattern), "%.*s", (int)(sp - line), line);
	snprintf(d.name, sizeof(d.name), "%.*s", (int)(len - (size_t)(sp + 1 - line)), sp + 1);
	pthread_attr_t attr;
	pthread_t th;
	FUZZ_CHECK(pthread_attr_init(&attr) == 0 &&
		   pthread_attr_setstacksize(&attr, MATCH_STACK) == 0 &&
		   pthread_create(&th, &attr, direct_match, &d) == 0,
		   "cannot start a thread");
	pthread_join(th, NULL);
	pthread_attr_destroy(&attr);
}

/* The source a rule gives for a match, by hand: 1 and *ret, or -errno. */
static int ref_expand(const char *tmpl, const struct ref *r, struct vm_source *ret)
{
	char out[VM_SEED_PATTERN_MAX + VM_NAME_MAX + 1];
	size_t o = 0, ncaps = r->n < 8 ? r->n : 8;
	for (const char *t = tmpl; *t; t++) {
		const char *piece = NULL;
		char one[2] = {*t, '\0'};
		if (*t == '{') {
			const char *e = strchr(t, '}');
			if (!e)
				return -EINVAL;
			for (size_t k = 0; k < ncaps && !piece; k++)
				if (strlen(r->caps[k].name) == (size_t)(e - t - 1) &&
				    strncmp(r->caps[k].name, t + 1, (size_t)(e - t - 1)) == 0)
					piece = r->caps[k].value;
			if (!piece)
				return -EINVAL;
			t = e;
		} else {
			piece = one;
		}
		size_t pl = strlen(piece);
		if (o + pl >= sizeof(out))
			return -ENAMETOOLONG;
		memcpy(out + o, piece, pl);
		o += pl;
	}
	out[o] = '\0';
	int rr = vm_source_parse(out, ret, NULL);
	return rr < 0 ? rr : 1;
}

static void check_seed_for(const struct vm_config *cfg, const char *name)
{
	if (vm_name_check("volume", name, NULL) < 0)
		return; /* volumes are created with valid names only */

	/* first, by hand */
	int want = 0;
	struct vm_source wsrc = {0};
	for (size_t i = 0; i < cfg->n_seed; i++) {
		struct ref r;
		int m = ref_match(cfg->seed[i].pattern, name, &r);
		if (m < 0) {
			want = -1000; /* undecided */
			break;
		}
		if (m == 1) {
			want = ref_expand(cfg->seed[i].source, &r, &wsrc);
			break;
		}
	}

	struct vm_error err = {0};
	struct vm_source src;
	memset(&src, 0x5a, sizeof(src));
	int r = vm_config_seed_for(cfg, name, &src, &err);
	FUZZ_CHECK(r == 0 || r == 1 || r < 0, "vm_config_seed_for returned %d", r);
	if (r < 0) {
		FUZZ_CHECK(err.code == -r && err.msg[0], "vm_config_seed_for(%s) = %d: %s", name,
			   r, err.msg);
	} else {
		FUZZ_CHECK(err.code == 0 && !err.msg[0], "success with an error message");
	}
	if (want != -1000)
		FUZZ_CHECK(r == want, "vm_config_seed_for(%s) = %d, the rules by hand say %d",
			   name, r, want);
	if (r != 1)
		return;
	if (want == 1)
		FUZZ_CHECK(src.kind == wsrc.kind && strcmp(src.name, wsrc.name) == 0,
			   "vm_config_seed_for(%s) gives %d:%s, the rules by hand %d:%s", name,
			   src.kind, src.name, wsrc.kind, wsrc.name);
	FUZZ_CHECK(src.kind == VM_SOURCE_CACHE || src.kind == VM_SOURCE_VOLUME,
		   "seed source of kind %d", (int)src.kind);
	FUZZ_CHECK(vm_name_check("cache", src.name, NULL) == 0, "seed source name %s",
		   fuzz_show(src.name));
	FUZZ_CHECK(src.rev[0] == '\0', "a seed source with a revision");
	char buf[VM_SOURCE_STR_MAX];
	vm_source_format(&src, buf);
	struct vm_source again;
	FUZZ_CHECK(vm_source_parse(buf, &again, NULL) == 0 && again.kind == src.kind &&
		   strcmp(again.name, src.name) == 0,
		   "seed source %s does not round-trip", buf);
}

/* A name the rule's pattern should match: '*' -> "x", "{v}" -> "x0". */
static void derive_name(const char *pattern, char *out, size_t outsz)
{
	size_t o = 0;
	for (const char *p = pattern; *p && o + 3 < outsz; p++) {
		if (*p == '*') {
			out[o++] = 'x';
		} else if (*p == '{') {
			out[o++] = 'x';
			out[o++] = '0';
			p = strchr(p, '}');
		} else {
			out[o++] = *p;
		}
	}
	out[o] = '\0';
}

static void check_config(const struct vm_config *cfg)
{
	FUZZ_CHECK(cfg->n_seed <= VM_SEED_RULES_MAX, "%zu seed rules", cfg->n_seed);
	FUZZ_CHECK(cfg->git_user[0] && memchr(cfg->git_user, '\0', sizeof(cfg->git_user)) &&
		   strcmp(cfg->git_user, "root") != 0,
		   "git user %s", fuzz_show(cfg->git_user));
	FUZZ_CHECK(cfg->git_timeout >= 1 && cfg->git_timeout <= 86400, "git timeout %u",
		   cfg->git_timeout);
	FUZZ_CHECK(cfg->git_command[0] == '/' &&
		   memchr(cfg->git_command, '\0', sizeof(cfg->git_command)),
		   "git command %s", fuzz_show(cfg->git_command));
	FUZZ_CHECK(cfg->gc_interval <= 10u * 366 * 24 * 3600, "gc interval %u", cfg->gc_interval);
	FUZZ_CHECK(cfg->quota_default <= VM_SIZE_MAX, "quota default %llu",
		   (unsigned long long)cfg->quota_default);
	FUZZ_CHECK(!cfg->quota_default || cfg->quota_accounting,
		   "a default quota without accounting");

	for (size_t i = 0; i < cfg->n_seed; i++) {
		const struct vm_seed_rule *rule = &cfg->seed[i];
		FUZZ_CHECK(memchr(rule->pattern, '\0', sizeof(rule->pattern)) &&
			   memchr(rule->source, '\0', sizeof(rule->source)),
			   "rule %zu not terminated", i);
		FUZZ_CHECK(model_pattern(rule->pattern), "accepted pattern %s",
			   fuzz_show(rule->pattern));
		FUZZ_CHECK((strncmp(rule->source, "cache:", 6) == 0 ||
			    strncmp(rule->source, "volume:", 7) == 0) &&
				   !strchr(rule->source, '@'),
			   "accepted seed source %s", fuzz_show(rule->source));

		/* The rule alone passes its own checks again (a line inih
		 * can read: it cuts lines at 200 bytes). */
		char text[32 + 2 * VM_SEED_PATTERN_MAX];
		int n = snprintf(text, sizeof(text), "[seed]\n%s=%s\n", rule->pattern, rule->source);
		if (n - 7 < 199) {
			struct vm_config *one = fuzz_xmalloc(sizeof(*one));
			struct vm_error err = {0};
			int r = vm_config_parse_string(text, one, &err);
			FUZZ_CHECK(r == 0, "rule %s = %s alone is refused: %s",
				   fuzz_show(rule->pattern), fuzz_show(rule->source), err.msg);
			FUZZ_CHECK(one->n_seed == 1 && strcmp(one->seed[0].pattern, rule->pattern) == 0 &&
				   strcmp(one->seed[0].source, rule->source) == 0,
				   "rule %s = %s alone parses differently", fuzz_show(rule->pattern),
				   fuzz_show(rule->source));
			free(one);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_init_once();
	if (size > 16384)
		return 0; /* volmgr.conf is a few lines; longer is only slower */
	char *text = fuzz_strndup(data, size);

	for (const char *p = text; (p = strstr(p, "#match:")); p++)
		if (p == text || p[-1] == '\n')
			run_direct(p + 7, strcspn(p + 7, "\r\n"));

	struct vm_config *cfg = fuzz_xmalloc(sizeof(*cfg)), *sentinel = fuzz_xmalloc(sizeof(*cfg));
	memset(cfg, 0x5a, sizeof(*cfg));
	memcpy(sentinel, cfg, sizeof(*cfg));
	struct vm_error err = {0};
	int r = vm_config_parse_string(text, cfg, &err);
	if (r < 0) {
		FUZZ_CHECK(err.code == -r && err.msg[0] && memchr(err.msg, '\0', sizeof(err.msg)),
			   "refused with %d but err is %d: %s", r, err.code, err.msg);
		json_t *m = json_string(err.msg);
		FUZZ_CHECK(m, "error message is not UTF-8: %s", fuzz_show(err.msg));
		json_decref(m);
		FUZZ_CHECK(memcmp(cfg, sentinel, sizeof(*cfg)) == 0, "*ret written on failure");
		goto out;
	}
	FUZZ_CHECK(r == 0 && err.code == 0 && !err.msg[0], "parse returned %d (%s)", r, err.msg);
	check_config(cfg);

	/* the names to try */
	char names[NAMES_MAX][VM_NAME_MAX + 8];
	size_t nn = 0;
	static const char *const fixed[] = {
		"runner-abc123xy-project-42-concurrent-0-cache-3c3f060a0374fc8bc39395164f415a70",
		"ci-1", "x0",
	};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		snprintf(names[nn++], sizeof(names[0]), "%s", fixed[i]);
	for (const char *p = text; (p = strstr(p, "#name:")) && nn < NAMES_MAX; p++) {
		if (p != text && p[-1] != '\n')
			continue;
		size_t l = strcspn(p + 6, "\r\n");
		snprintf(names[nn++], sizeof(names[0]), "%.*s", (int)(l < VM_NAME_MAX + 4 ? l : VM_NAME_MAX + 4), p + 6);
	}
	for (size_t i = 0; i < cfg->n_seed && i < RULES_DERIVED && nn < NAMES_MAX; i++) {
		derive_name(cfg->seed[i].pattern, names[nn], sizeof(names[0]));
		if (strlen(names[nn]) <= VM_NAME_MAX)
			FUZZ_CHECK(check_match(cfg->seed[i].pattern, names[nn]) != 0,
				   "pattern %s does not match %s", cfg->seed[i].pattern, names[nn]);
		nn++;
	}

	for (size_t k = 0; k < nn; k++) {
		for (size_t i = 0; i < cfg->n_seed; i++)
			check_match(cfg->seed[i].pattern, names[k]);
		check_seed_for(cfg, names[k]);
	}
out:
	free(sentinel);
	free(cfg);
	free(text);
	return 0;
}
