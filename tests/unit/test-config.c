/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* volmgr.conf: the seed-rule pattern matcher and the config parser. */
#include <string.h>

#include "unit-util.h"
#include "config.h"

static const char *runner =
	"runner-abcd1234-project-42-concurrent-0-0123456789abcdef-cache-c33bcaa1fd2c77edfc3893b41966cea8";

static void test_match_literal_and_star(void **state)
{
	(void)state;
	assert_true(vm_pattern_match("abc", "abc", NULL, 0, NULL));
	assert_false(vm_pattern_match("abc", "abcd", NULL, 0, NULL));
	assert_false(vm_pattern_match("abc", "ab", NULL, 0, NULL));
	assert_true(vm_pattern_match("a*", "a", NULL, 0, NULL));
	assert_true(vm_pattern_match("a*c", "abbbc", NULL, 0, NULL));
	assert_true(vm_pattern_match("*", "anything.at-all", NULL, 0, NULL));
	assert_false(vm_pattern_match("a*c", "abbbd", NULL, 0, NULL));
	assert_true(vm_pattern_match("runner-*-cache-*", runner, NULL, 0, NULL));
}

static void test_match_captures(void **state)
{
	(void)state;
	struct vm_capture caps[4];
	size_t n = 0;
	assert_true(vm_pattern_match("runner-*-project-{id}-concurrent-*-cache-*", runner, caps, 4, &n));
	assert_int_equal(n, 1);
	assert_string_equal(caps[0].name, "id");
	assert_string_equal(caps[0].value, "42");
	/* shortest capture that still lets the rest match */
	assert_true(vm_pattern_match("{a}-{b}", "x-y-z", caps, 4, &n));
	assert_int_equal(n, 2);
	assert_string_equal(caps[0].value, "x");
	assert_string_equal(caps[1].value, "y-z");
	/* a capture needs at least one character */
	assert_false(vm_pattern_match("a{x}b", "ab", caps, 4, &n));
	/* the protected suffix must not be swallowed by the plain rule's star */
	assert_true(vm_pattern_match("*-cache-*-protected", "runner-x-cache-abc-protected", NULL, 0, NULL));
	assert_false(vm_pattern_match("*-cache-*-protected", "runner-x-cache-abc", NULL, 0, NULL));
}

static void test_match_is_bounded(void **state)
{
	(void)state;
	/* Many stars against a long non-matching name: memoised, so fast. */
	char pat[VM_SEED_PATTERN_MAX + 1];
	for (int i = 0; i < 120; i++) {
		pat[2 * i] = '*';
		pat[2 * i + 1] = 'a';
	}
	pat[240] = 'b';
	pat[241] = '\0';
	char *name = ut_repeat('a', VM_NAME_MAX);
	assert_false(vm_pattern_match(pat, name, NULL, 0, NULL));
	free(name);
	char *toolong = ut_repeat('a', VM_NAME_MAX + 1);
	assert_false(vm_pattern_match("*", toolong, NULL, 0, NULL));
	free(toolong);
}

static void test_parse_and_seed(void **state)
{
	(void)state;
	struct vm_config cfg;
	struct vm_error err = {0};
	const char *text =
		"# comment\n"
		"[seed]\n"
		"runner-*-project-{id}-concurrent-*-cache-*-protected = cache:project-{id}-protected\n"
		"runner-*-project-{id}-concurrent-*-cache-* = cache:project-{id}\n"
		"scratch-* = volume:template\n";
	assert_int_equal(vm_config_parse_string(text, &cfg, &err), 0);
	assert_int_equal(cfg.n_seed, 3);
	struct vm_source s;
	assert_int_equal(vm_config_seed_for(&cfg, runner, &s, &err), 1);
	assert_int_equal(s.kind, VM_SOURCE_CACHE);
	assert_string_equal(s.name, "project-42");
	char prot[256];
	snprintf(prot, sizeof(prot), "%s-protected", runner);
	assert_int_equal(vm_config_seed_for(&cfg, prot, &s, &err), 1);
	assert_string_equal(s.name, "project-42-protected");
	assert_int_equal(vm_config_seed_for(&cfg, "scratch-1", &s, &err), 1);
	assert_int_equal(s.kind, VM_SOURCE_VOLUME);
	assert_string_equal(s.name, "template");
	assert_int_equal(vm_config_seed_for(&cfg, "other", &s, &err), 0);
	assert_int_equal(vm_config_seed_for(NULL, "other", &s, &err), 0);
	/* the rule that matched, and the caches the rules fill */
	const struct vm_seed_rule *rule = NULL;
	assert_int_equal(vm_config_seed_rule_for(&cfg, prot, &s, &rule, &err), 1);
	assert_ptr_equal(rule, &cfg.seed[0]);
	assert_ptr_equal(vm_config_cache_seeded(&cfg, "project-42-protected"), &cfg.seed[0]);
	assert_ptr_equal(vm_config_cache_seeded(&cfg, "project-7"), &cfg.seed[1]);
	assert_null(vm_config_cache_seeded(&cfg, "template")); /* a volume: source */
	assert_null(vm_config_cache_seeded(&cfg, "scratch"));
	assert_null(vm_config_cache_seeded(NULL, "project-7"));

	assert_int_equal(vm_config_parse_string("", &cfg, &err), 0);
	assert_int_equal(cfg.n_seed, 0);
}

static void test_parse_errors(void **state)
{
	(void)state;
	static const char *bad[] = {
		"[nope]\na = cache:b\n",                  /* unknown section */
		"[seed]\na/b = cache:c\n",                /* bad pattern char */
		"[seed]\na{x = cache:c\n",                /* unclosed brace */
		"[seed]\na{} = cache:c\n",                /* empty capture name */
		"[seed]\na* = path:/etc\n",               /* not cache:/volume: */
		"[seed]\na* = cache:../x\n",              /* bad name */
		"[seed]\na-{x} = cache:p-{y}\n",          /* capture not in the pattern */
		"[seed]\na* = cache:{\n",                 /* unclosed in source */
		"[seed\n",                                /* syntax */
		"[seed]\nno equals sign\n",               /* syntax */
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		struct vm_config cfg;
		struct vm_error err = {0};
		int r = vm_config_parse_string(bad[i], &cfg, &err);
		if (r != -EINVAL)
			fail_msg("config %zu parsed (%d): %s", i, r, bad[i]);
		assert_true(err.msg[0] != '\0');
	}
	/* too many rules */
	char *text = malloc(100 * 32 + 16);
	strcpy(text, "[seed]\n");
	for (int i = 0; i < VM_SEED_RULES_MAX + 1; i++)
		sprintf(text + strlen(text), "r%d-* = cache:c%d\n", i, i);
	struct vm_config cfg;
	struct vm_error err = {0};
	assert_int_equal(vm_config_parse_string(text, &cfg, &err), -EINVAL);
	free(text);
}

static void test_pool_and_copy(void **state)
{
	(void)state;
	struct vm_config cfg;
	struct vm_error err = {0};
	assert_int_equal(vm_config_parse_string("", &cfg, &err), 0);
	assert_int_equal(cfg.pool_backend, VM_BACKEND_AUTO);
	assert_int_equal(cfg.copy_io, VM_COPY_IO_AUTO);
	assert_int_equal(cfg.implicit_max_files, 20000);
	assert_int_equal(cfg.implicit_max_bytes, 1ULL << 30);
	assert_int_equal(vm_config_parse_string("[pool]\nbackend = reflink\n[copy]\nio = syscalls\n"
						"implicit_max_files = 5\nimplicit_max_bytes = 2M\n",
						&cfg, &err),
			 0);
	assert_int_equal(cfg.pool_backend, VM_BACKEND_REFLINK);
	assert_int_equal(cfg.copy_io, VM_COPY_IO_SYSCALLS);
	assert_int_equal(cfg.implicit_max_files, 5);
	assert_int_equal(cfg.implicit_max_bytes, 2 << 20);
	/* [cache] max_usage: a percentage or a size, the last one wins */
	assert_int_equal(cfg.cache_max_usage_pct, 0);
	assert_int_equal(cfg.cache_max_usage_bytes, 0);
	assert_int_equal(vm_config_parse_string("[cache]\nmax_usage = 80%\n", &cfg, &err), 0);
	assert_int_equal(cfg.cache_max_usage_pct, 80);
	assert_int_equal(vm_config_parse_string("[cache]\nmax_usage = 80%\nmax_usage = 200G\n", &cfg,
						&err),
			 0);
	assert_int_equal(cfg.cache_max_usage_pct, 0);
	assert_int_equal(cfg.cache_max_usage_bytes, 200ULL << 30);
	static const char *bad[] = {
		"[cache]\nmax_usage = 0%\n", "[cache]\nmax_usage = 101%\n", "[cache]\nmax_usage = %\n",
		"[cache]\nmax_usage = -5%\n", "[cache]\nmax_usage = 5.5%\n", "[cache]\nmax_usage = lots\n",
		"[cache]\nmax = 80%\n",
		"[pool]\nbackend = zfs\n", "[pool]\nbackend = \n", "[pool]\nsize = 1G\n",
		"[copy]\nio = aio\n", "[copy]\nimplicit_max_files = -1\n",
		"[copy]\nimplicit_max_files = 1k\n", "[copy]\nimplicit_max_bytes = lots\n",
		"[copy]\nthreads = 4\n",
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		memset(&err, 0, sizeof(err));
		if (vm_config_parse_string(bad[i], &cfg, &err) != -EINVAL)
			fail_msg("config %zu parsed: %s", i, bad[i]);
		assert_true(err.msg[0] != '\0');
	}
}

static void test_quota_accounting(void **state)
{
	(void)state;
	struct vm_config cfg;
	struct vm_error err = {0};
	assert_int_equal(vm_config_parse_string("", &cfg, &err), 0);
	assert_int_equal(cfg.quota_accounting, VM_QUOTA_ACCOUNTING_AUTO);
	static const struct {
		const char *value;
		enum vm_quota_accounting want;
	} ok[] = {
		{ "yes", VM_QUOTA_ACCOUNTING_AUTO },     { "true", VM_QUOTA_ACCOUNTING_AUTO },
		{ "on", VM_QUOTA_ACCOUNTING_AUTO },      { "auto", VM_QUOTA_ACCOUNTING_AUTO },
		{ "simple", VM_QUOTA_ACCOUNTING_SIMPLE }, { "full", VM_QUOTA_ACCOUNTING_FULL },
		{ "no", VM_QUOTA_ACCOUNTING_NO },        { "off", VM_QUOTA_ACCOUNTING_NO },
		{ "false", VM_QUOTA_ACCOUNTING_NO },
	};
	for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
		char text[64];
		snprintf(text, sizeof(text), "[quota]\naccounting = %s\n", ok[i].value);
		assert_int_equal(vm_config_parse_string(text, &cfg, &err), 0);
		assert_int_equal(cfg.quota_accounting, ok[i].want);
		assert_string_equal(vm_quota_accounting_name(cfg.quota_accounting),
				    ok[i].want == VM_QUOTA_ACCOUNTING_AUTO	 ? "auto"
				    : ok[i].want == VM_QUOTA_ACCOUNTING_SIMPLE ? "simple"
				    : ok[i].want == VM_QUOTA_ACCOUNTING_FULL	 ? "full"
										 : "no");
	}
	/* A default limit needs accounting, whichever mode. */
	assert_int_equal(vm_config_parse_string("[quota]\naccounting = simple\ndefault = 1G\n",
						&cfg, &err),
			 0);
	assert_int_equal(cfg.quota_default, 1ULL << 30);
	static const char *bad[] = {
		"[quota]\naccounting = squota\n",
		"[quota]\naccounting = \n",
		"[quota]\naccounting = no\ndefault = 1G\n",
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		memset(&err, 0, sizeof(err));
		if (vm_config_parse_string(bad[i], &cfg, &err) != -EINVAL)
			fail_msg("config %zu parsed: %s", i, bad[i]);
		assert_true(err.msg[0] != '\0');
	}
}

/* [engines]: the engines' API sockets asked about stale Mounts; [names]:
 * the prefixes only root and the engines may create (issue 13). */
static void test_engines_and_names(void **state)
{
	(void)state;
	struct vm_config cfg;
	struct vm_error err = {0};
	assert_int_equal(vm_config_parse_string("[engines]\ndocker = /var/run/docker.sock\n"
						"podman = /run/podman/podman.sock\n"
						"docker = /run/other/docker.sock\ntimeout = 2s\n"
						"[names]\nreserved_prefix = ci-\nreserved_prefix = runner-\n"
						"[seed]\nproj-{id}-* = cache:p-{id}\n"
						"base-* = volume:golden\nx-{n}-* = volume:tpl-{n}\n",
						&cfg, &err),
			 0);
	assert_int_equal(cfg.n_engines, 3);
	assert_int_equal(cfg.engines[0].kind, VM_ENGINE_DOCKER);
	assert_string_equal(cfg.engines[1].socket, "/run/podman/podman.sock");
	assert_int_equal(cfg.engines[1].kind, VM_ENGINE_PODMAN);
	assert_int_equal(cfg.engine_timeout_ms, 2000);
	assert_int_equal(cfg.n_reserved, 2);
	/* reserved: by a prefix, or because a seed rule matches */
	assert_true(vm_config_name_reserved(&cfg, "ci-1234"));
	assert_true(vm_config_name_reserved(&cfg, "runner-x"));
	assert_true(vm_config_name_reserved(&cfg, "proj-42-main"));
	assert_false(vm_config_name_reserved(&cfg, "scratch-1"));
	assert_false(vm_config_name_reserved(&cfg, "c-1"));
	assert_false(vm_config_name_reserved(&cfg, "proj-42"));
	/* a rule's volume: source is reserved too, templates included */
	assert_true(vm_config_name_reserved(&cfg, "golden"));
	assert_true(vm_config_name_reserved(&cfg, "tpl-7"));
	assert_false(vm_config_name_reserved(&cfg, "golden-2"));

	vm_config_init(&cfg);
	assert_int_equal(cfg.n_engines, 0);
	assert_int_equal(cfg.engine_timeout_ms, VM_ENGINE_TIMEOUT_MS_DEFAULT);
	assert_false(vm_config_name_reserved(&cfg, "ci-1"));

	static const char *bad[] = {
		"[engines]\ndocker = relative.sock\n",
		"[engines]\ncontainerd = /run/containerd.sock\n",
		"[engines]\ntimeout = 11m\n",
		"[engines]\ntimeout = soon\n",
		"[names]\nreserved_prefix = \n",
		"[names]\nreserved_prefix = a/b\n",
		"[names]\nreserved_prefix = .hidden\n",
		"[names]\nprefix = ci-\n",
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		err = (struct vm_error){0};
		if (vm_config_parse_string(bad[i], &cfg, &err) != -EINVAL)
			fail_msg("config %zu parsed: %s", i, bad[i]);
		assert_true(err.msg[0] != '\0');
	}
	/* too many engines */
	char text[4096] = "[engines]\n";
	for (int i = 0; i <= VM_ENGINES_MAX; i++)
		sprintf(text + strlen(text), "docker = /run/d%d.sock\n", i);
	assert_int_equal(vm_config_parse_string(text, &cfg, &err), -EINVAL);
}

static void test_load(void **state)
{
	(void)state;
	struct vm_config cfg;
	struct vm_error err = {0};
	assert_int_equal(vm_config_load("/nonexistent/volmgr.conf", true, &cfg, &err), 0);
	assert_int_equal(cfg.n_seed, 0);
	assert_int_equal(vm_config_load("/nonexistent/volmgr.conf", false, &cfg, &err), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match_literal_and_star),
		cmocka_unit_test(test_match_captures),
		cmocka_unit_test(test_match_is_bounded),
		cmocka_unit_test(test_parse_and_seed),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_pool_and_copy),
		cmocka_unit_test(test_quota_accounting),
		cmocka_unit_test(test_engines_and_names),
		cmocka_unit_test(test_load),
	};
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
