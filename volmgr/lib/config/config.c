/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <ini.h>
#include <stdio.h>
#include <string.h>

/* ---- pattern matching: "*" and "{var}" over a bounded name ----
 *
 * A memoised search over (pattern position, name position, inside a
 * capture): at most (256 + 1) * (200 + 1) * 2 states, so a hostile
 * pattern cannot make it slow.  Then one walk forward takes the shortest
 * choice that still matches, which fills the captures. */

static bool cap_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

struct matcher {
	const char *pat, *name;
	size_t pl, nl;
	signed char *memo; /* -1 unknown, 0 no, 1 yes */
};

static size_t cap_end(const char *pat, size_t p)
{
	const char *e = strchr(pat + p, '}');
	return e ? (size_t)(e - pat) + 1 : 0;
}

static bool m_at(struct matcher *m, size_t p, size_t s, int inside)
{
	size_t idx = ((p * (m->nl + 1)) + s) * 2 + (size_t)inside;
	if (m->memo[idx] >= 0)
		return m->memo[idx];
	bool r;
	if (inside) {
		/* Within {var}, one character already taken: end here, or
		 * take one more. */
		size_t pe = cap_end(m->pat, p);
		r = m_at(m, pe, s, 0) || (s < m->nl && cap_char(m->name[s]) && m_at(m, p, s + 1, 1));
	} else if (p == m->pl) {
		r = s == m->nl;
	} else if (m->pat[p] == '*') {
		r = m_at(m, p + 1, s, 0) || (s < m->nl && m_at(m, p, s + 1, 0));
	} else if (m->pat[p] == '{') {
		r = s < m->nl && cap_char(m->name[s]) && m_at(m, p, s + 1, 1);
	} else {
		r = s < m->nl && m->pat[p] == m->name[s] && m_at(m, p + 1, s + 1, 0);
	}
	m->memo[idx] = r;
	return r;
}

bool vm_pattern_match(const char *pattern, const char *name,
		      struct vm_capture *caps, size_t ncaps, size_t *ret_n)
{
	struct matcher m = {pattern, name, strlen(pattern), strlen(name), NULL};
	if (ret_n)
		*ret_n = 0;
	if (m.pl > VM_SEED_PATTERN_MAX || m.nl > VM_NAME_MAX)
		return false;
	/* Every "{" must be closed: the search relies on it to move on. */
	for (const char *p = pattern; (p = strchr(p, '{')); p++)
		if (!strchr(p, '}'))
			return false;
	size_t states = (m.pl + 1) * (m.nl + 1) * 2;
	m.memo = malloc(states);
	if (!m.memo)
		return false;
	memset(m.memo, -1, states);
	bool ok = m_at(&m, 0, 0, 0);
	size_t n = 0;
	if (ok) {
		/* Walk the shortest successful path, recording captures. */
		size_t p = 0, s = 0;
		while (p < m.pl) {
			if (m.pat[p] == '*') {
				if (m_at(&m, p + 1, s, 0))
					p++;
				else
					s++;
			} else if (m.pat[p] == '{') {
				size_t pe = cap_end(m.pat, p), start = s;
				s++;
				while (!m_at(&m, pe, s, 0))
					s++;
				if (n < ncaps) {
					size_t vl = pe - p - 2;
					snprintf(caps[n].name, sizeof(caps[n].name), "%.*s",
						 (int)vl, m.pat + p + 1);
					snprintf(caps[n].value, sizeof(caps[n].value), "%.*s",
						 (int)(s - start), m.name + start);
					n++;
				}
				p = pe;
			} else {
				p++, s++;
			}
		}
	}
	free(m.memo);
	if (ret_n)
		*ret_n = n;
	return ok;
}

/* A pattern: printable, "{" always closed by "}" around 1-31 name
 * characters, no nested braces. */
static int pattern_check(const char *pat, struct vm_error *err)
{
	size_t n = strlen(pat);
	if (n == 0 || n > VM_SEED_PATTERN_MAX)
		return vm_error_set(err, EINVAL, "seed pattern \"%.64s\": pattern must have 1 to %d characters",
				    pat, VM_SEED_PATTERN_MAX);
	for (size_t i = 0; i < n; i++) {
		if (pat[i] == '{') {
			size_t e = cap_end(pat, i);
			if (!e || e - i - 2 == 0 || e - i - 2 > 31)
				return vm_error_set(err, EINVAL,
						    "seed pattern \"%.64s\": \"{\" must enclose a name of 1 to 31 characters and be closed",
						    pat);
			for (size_t k = i + 1; k < e - 1; k++)
				if (!cap_char(pat[k]) || pat[k] == '.' || pat[k] == '-')
					return vm_error_set(err, EINVAL,
							    "seed pattern \"%.64s\": bad capture name", pat);
			i = e - 1;
		} else if (pat[i] != '*' && !cap_char(pat[i])) {
			return vm_error_set(err, EINVAL,
					    "seed pattern \"%.64s\": a pattern holds name characters, \"*\" and \"{name}\" only",
					    pat);
		}
	}
	return 0;
}

/* Substitute {var} in tmpl from caps. */
static int expand(const char *tmpl, const struct vm_capture *caps, size_t n,
		  char *out, size_t outsz, struct vm_error *err)
{
	size_t o = 0;
	for (size_t i = 0; tmpl[i]; i++) {
		const char *piece = NULL;
		char one[2] = {tmpl[i], 0};
		if (tmpl[i] == '{') {
			size_t e = cap_end(tmpl, i);
			if (!e)
				return vm_error_set(err, EINVAL, "unclosed \"{\" in a seed source");
			for (size_t k = 0; k < n && !piece; k++)
				if (strlen(caps[k].name) == e - i - 2 &&
				    strncmp(caps[k].name, tmpl + i + 1, e - i - 2) == 0)
					piece = caps[k].value;
			if (!piece)
				return vm_error_set(err, EINVAL,
						    "seed source uses a capture its pattern does not have");
			i = e - 1;
		} else {
			piece = one;
		}
		size_t pl = strlen(piece);
		if (o + pl >= outsz)
			return vm_error_set(err, ENAMETOOLONG, "seed source too long");
		memcpy(out + o, piece, pl);
		o += pl;
	}
	out[o] = '\0';
	return 0;
}

int vm_config_seed_for(const struct vm_config *cfg, const char *name,
		       struct vm_source *ret, struct vm_error *err)
{
	return vm_config_seed_rule_for(cfg, name, ret, NULL, err);
}

int vm_config_seed_rule_for(const struct vm_config *cfg, const char *name,
			    struct vm_source *ret, const struct vm_seed_rule **ret_rule,
			    struct vm_error *err)
{
	for (size_t i = 0; cfg && i < cfg->n_seed; i++) {
		struct vm_capture caps[8];
		size_t n = 0;
		if (!vm_pattern_match(cfg->seed[i].pattern, name, caps, ELEMENTSOF(caps), &n))
			continue;
		char spec[VM_SEED_PATTERN_MAX + VM_NAME_MAX + 1];
		int r = expand(cfg->seed[i].source, caps, n, spec, sizeof(spec), err);
		if (r < 0)
			return r;
		r = vm_source_parse(spec, ret, err);
		if (r < 0)
			return r;
		if (ret_rule)
			*ret_rule = &cfg->seed[i];
		return 1;
	}
	return 0;
}

const struct vm_seed_rule *vm_config_cache_seeded(const struct vm_config *cfg, const char *name)
{
	/* The template's "{x}" is the pattern syntax's capture: it matches
	 * any name the rule can expand to. */
	for (size_t i = 0; cfg && i < cfg->n_seed; i++)
		if (strncmp(cfg->seed[i].source, "cache:", 6) == 0 &&
		    vm_pattern_match(cfg->seed[i].source + 6, name, NULL, 0, NULL))
			return &cfg->seed[i];
	return NULL;
}

struct parse_ctx {
	struct vm_config *cfg;
	struct vm_error *err;
	int r;
};

void vm_config_init(struct vm_config *cfg)
{
	*cfg = (struct vm_config){.git_timeout = VM_GIT_TIMEOUT_DEFAULT, .gc_interval = 900,
				  .engine_grace_ns = VM_ENGINE_GRACE_DEFAULT_NS,
				  .quota_accounting = VM_QUOTA_ACCOUNTING_AUTO,
				  .implicit_max_files = VM_IMPLICIT_MAX_FILES_DEFAULT,
				  .implicit_max_bytes = VM_IMPLICIT_MAX_BYTES_DEFAULT,
				  .engine_timeout_ms = VM_ENGINE_TIMEOUT_MS_DEFAULT};
	snprintf(cfg->git_user, sizeof(cfg->git_user), "nobody");
	snprintf(cfg->git_command, sizeof(cfg->git_command), "/usr/bin/git");
}

/* [cache] max_usage: "N%" of the pool's file system, or a size. */
static int on_cache(struct parse_ctx *c, const char *key, const char *value)
{
	if (strcmp(key, "max_usage") != 0)
		return vm_error_set(c->err, EINVAL, "unknown key %.64s in [cache]", key);
	size_t n = strlen(value);
	if (n > 0 && value[n - 1] == '%') {
		char *end;
		errno = 0;
		unsigned long pct = strtoul(value, &end, 10);
		if (errno || end != value + n - 1 || value[0] < '0' || value[0] > '9' || pct < 1 ||
		    pct > 100)
			return vm_error_set(c->err, EINVAL,
					    "[cache] max_usage must be a percentage of the pool (1%% to 100%%) or a size");
		c->cfg->cache_max_usage_pct = (unsigned)pct;
		c->cfg->cache_max_usage_bytes = 0;
		return 0;
	}
	c->cfg->cache_max_usage_pct = 0;
	return vm_parse_size(value, &c->cfg->cache_max_usage_bytes, c->err);
}

static int on_git(struct parse_ctx *c, const char *key, const char *value)
{
	if (strcmp(key, "user") == 0) {
		size_t n = strlen(value);
		if (n == 0 || n >= sizeof(c->cfg->git_user) || strcmp(value, "root") == 0)
			return vm_error_set(c->err, EINVAL,
					    "[git] user must be a user name other than root");
		snprintf(c->cfg->git_user, sizeof(c->cfg->git_user), "%s", value);
	} else if (strcmp(key, "timeout") == 0) {
		char *end;
		errno = 0;
		unsigned long t = strtoul(value, &end, 10);
		if (errno || *end || end == value || t == 0 || t > 86400 || value[0] == '-')
			return vm_error_set(c->err, EINVAL,
					    "[git] timeout must be 1 to 86400 seconds");
		c->cfg->git_timeout = (unsigned)t;
	} else if (strcmp(key, "command") == 0) {
		if (value[0] != '/' || strlen(value) >= sizeof(c->cfg->git_command))
			return vm_error_set(c->err, EINVAL, "[git] command must be an absolute path");
		snprintf(c->cfg->git_command, sizeof(c->cfg->git_command), "%s", value);
	} else {
		return vm_error_set(c->err, EINVAL, "unknown key %.64s in [git]", key);
	}
	return 0;
}

static int on_engines(struct parse_ctx *c, const char *key, const char *value)
{
	struct vm_config *cfg = c->cfg;
	if (strcmp(key, "timeout") == 0) {
		int64_t ns = 0;
		int r = vm_parse_duration(value, &ns, c->err);
		if (r < 0)
			return r;
		if (ns > 600LL * 1000000000LL)
			return vm_error_set(c->err, EINVAL, "[engines] timeout must be at most 10m");
		cfg->engine_timeout_ms = (unsigned)(ns / 1000000);
		return 0;
	}
	enum vm_engine_kind kind;
	if (strcmp(key, "docker") == 0)
		kind = VM_ENGINE_DOCKER;
	else if (strcmp(key, "podman") == 0)
		kind = VM_ENGINE_PODMAN;
	else
		return vm_error_set(c->err, EINVAL, "unknown key %.64s in [engines]", key);
	if (value[0] != '/' || strlen(value) > VM_ENGINE_SOCKET_MAX)
		return vm_error_set(c->err, EINVAL,
				    "[engines] %s must be the absolute path of a socket (at most %d bytes)",
				    key, VM_ENGINE_SOCKET_MAX);
	if (cfg->n_engines >= VM_ENGINES_MAX)
		return vm_error_set(c->err, EINVAL, "more than %d engines in [engines]",
				    VM_ENGINES_MAX);
	struct vm_engine *e = &cfg->engines[cfg->n_engines++];
	e->kind = kind;
	snprintf(e->socket, sizeof(e->socket), "%s", value);
	return 0;
}

static int on_names(struct parse_ctx *c, const char *key, const char *value)
{
	struct vm_config *cfg = c->cfg;
	if (strcmp(key, "reserved_prefix") != 0)
		return vm_error_set(c->err, EINVAL, "unknown key %.64s in [names]", key);
	size_t n = strlen(value);
	/* A prefix of a valid name: the name rule's characters, not empty. */
	if (n == 0 || n > VM_NAME_MAX || strspn(value, "abcdefghijklmnopqrstuvwxyz"
					       "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != n ||
	    value[0] == '.' || value[0] == '_' || value[0] == '-')
		return vm_error_set(c->err, EINVAL,
				    "[names] reserved_prefix \"%.64s\" is not the start of a volume name",
				    value);
	if (cfg->n_reserved >= VM_RESERVED_PREFIXES_MAX)
		return vm_error_set(c->err, EINVAL, "more than %d reserved prefixes",
				    VM_RESERVED_PREFIXES_MAX);
	snprintf(cfg->reserved_prefix[cfg->n_reserved++], VM_NAME_MAX + 1, "%s", value);
	return 0;
}

/* [engine]: each key loosens one rule of volmgr-engined's. */
static int on_engine(struct parse_ctx *c, const char *key, const char *value)
{
	bool *b = NULL;
	if (strcmp(key, "allow_privileged") == 0)
		b = &c->cfg->engine.allow_privileged;
	else if (strcmp(key, "allow_cap_add") == 0)
		b = &c->cfg->engine.allow_cap_add;
	else if (strcmp(key, "allow_devices") == 0)
		b = &c->cfg->engine.allow_devices;
	else if (strcmp(key, "allow_host_namespaces") == 0)
		b = &c->cfg->engine.allow_host_namespaces;
	else if (strcmp(key, "allow_unconfined") == 0)
		b = &c->cfg->engine.allow_unconfined;
	else if (strcmp(key, "allow_sysctls") == 0)
		b = &c->cfg->engine.allow_sysctls;
	else if (strcmp(key, "allow_host_binds") == 0)
		b = &c->cfg->engine.allow_host_binds;
	else
		return vm_error_set(c->err, EINVAL, "unknown key %.64s in [engine]", key);
	if (!strcmp(value, "yes") || !strcmp(value, "true"))
		*b = true;
	else if (!strcmp(value, "no") || !strcmp(value, "false"))
		*b = false;
	else
		return vm_error_set(c->err, EINVAL, "[engine] %s must be yes or no", key);
	return 0;
}

bool vm_config_name_reserved(const struct vm_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_reserved; i++)
		if (strncmp(name, cfg->reserved_prefix[i], strlen(cfg->reserved_prefix[i])) == 0)
			return true;
	for (size_t i = 0; i < cfg->n_seed; i++) {
		if (vm_pattern_match(cfg->seed[i].pattern, name, NULL, 0, NULL))
			return true;
		/* A rule's volume:SOURCE too: whoever made it first would give
		 * every job the rule seeds its tree.  The template's "{x}" is
		 * the pattern syntax's capture: any name it can expand to. */
		if (strncmp(cfg->seed[i].source, "volume:", 7) == 0 &&
		    vm_pattern_match(cfg->seed[i].source + 7, name, NULL, 0, NULL))
			return true;
	}
	return false;
}

static int on_entry(void *user, const char *section, const char *key,
		    const char *value)
{
	/* Debian's libinih reports no line numbers to handlers: messages
	 * name the entry instead. */
	struct parse_ctx *c = user;
	if (c->r < 0)
		return 0;
	if (!key)
		return 1; /* a section header alone */
	if (strcmp(section, "git") == 0) {
		c->r = on_git(c, key, value);
		return c->r == 0;
	}
	if (strcmp(section, "engines") == 0) {
		c->r = on_engines(c, key, value);
		return c->r == 0;
	}
	if (strcmp(section, "names") == 0) {
		c->r = on_names(c, key, value);
		return c->r == 0;
	}
	if (strcmp(section, "engine") == 0) {
		c->r = on_engine(c, key, value);
		return c->r == 0;
	}
	if (strcmp(section, "quota") == 0) {
		if (strcmp(key, "accounting") == 0) {
			if (!strcmp(value, "yes") || !strcmp(value, "true") || !strcmp(value, "on") ||
			    !strcmp(value, "auto"))
				c->cfg->quota_accounting = VM_QUOTA_ACCOUNTING_AUTO;
			else if (!strcmp(value, "simple"))
				c->cfg->quota_accounting = VM_QUOTA_ACCOUNTING_SIMPLE;
			else if (!strcmp(value, "full"))
				c->cfg->quota_accounting = VM_QUOTA_ACCOUNTING_FULL;
			else if (!strcmp(value, "no") || !strcmp(value, "false") || !strcmp(value, "off"))
				c->cfg->quota_accounting = VM_QUOTA_ACCOUNTING_NO;
			else
				c->r = vm_error_set(c->err, EINVAL,
						    "[quota] accounting must be auto (or yes), simple, full or no");
		} else if (strcmp(key, "default") == 0) {
			c->r = vm_parse_size(value, &c->cfg->quota_default, c->err);
		} else {
			c->r = vm_error_set(c->err, EINVAL, "unknown key %.64s in [quota]", key);
		}
		if (c->r == 0 && c->cfg->quota_default && !c->cfg->quota_accounting)
			c->r = vm_error_set(c->err, EINVAL, "[quota] default needs accounting on (auto, simple or full)");
		return c->r == 0;
	}
	if (strcmp(section, "pool") == 0) {
		if (strcmp(key, "backend") != 0)
			c->r = vm_error_set(c->err, EINVAL, "unknown key %.64s in [pool]", key);
		else if (vm_backend_parse(value, &c->cfg->pool_backend) < 0)
			c->r = vm_error_set(c->err, EINVAL,
					    "[pool] backend must be auto, btrfs, reflink or copy");
		return c->r == 0;
	}
	if (strcmp(section, "copy") == 0) {
		if (strcmp(key, "io") == 0) {
			if (vm_copy_io_parse(value, &c->cfg->copy_io) < 0)
				c->r = vm_error_set(c->err, EINVAL,
						    "[copy] io must be auto, io_uring or syscalls");
		} else if (strcmp(key, "implicit_max_files") == 0) {
			char *end;
			errno = 0;
			unsigned long long n = strtoull(value, &end, 10);
			if (errno || *end || end == value || value[0] == '-' || n > (1ULL << 40))
				c->r = vm_error_set(c->err, EINVAL,
						    "[copy] implicit_max_files must be a number of files");
			else
				c->cfg->implicit_max_files = n;
		} else if (strcmp(key, "implicit_max_bytes") == 0) {
			c->r = vm_parse_size(value, &c->cfg->implicit_max_bytes, c->err);
		} else {
			c->r = vm_error_set(c->err, EINVAL, "unknown key %.64s in [copy]", key);
		}
		return c->r == 0;
	}
	if (strcmp(section, "cache") == 0) {
		c->r = on_cache(c, key, value);
		return c->r == 0;
	}
	if (strcmp(section, "gc") == 0) {
		int64_t ns = 0;
		bool grace = strcmp(key, "engine_grace") == 0;
		if (strcmp(key, "interval") != 0 && !grace)
			c->r = vm_error_set(c->err, EINVAL, "unknown key %.64s in [gc]", key);
		else if (strcmp(value, "0") != 0 && vm_parse_duration(value, &ns, c->err) < 0)
			c->r = -EINVAL;
		else if (grace)
			c->cfg->engine_grace_ns = ns;
		else
			c->cfg->gc_interval = (unsigned)(ns / 1000000000LL);
		return c->r == 0;
	}
	if (strcmp(section, "seed") != 0) {
		c->r = vm_error_set(c->err, EINVAL, "unknown section [%.64s]", section);
		return 0;
	}
	if (c->cfg->n_seed >= VM_SEED_RULES_MAX) {
		c->r = vm_error_set(c->err, EINVAL, "more than %d seed rules", VM_SEED_RULES_MAX);
		return 0;
	}
	int r = pattern_check(key, c->err);
	if (r == 0 && strlen(value) > VM_SEED_PATTERN_MAX)
		r = vm_error_set(c->err, EINVAL, "seed rule \"%.64s\": source too long", key);
	if (r == 0 && strchr(value, '@'))
		r = vm_error_set(c->err, EINVAL,
				 "seed rule \"%.64s\": a seed source names no revision", key);
	if (r == 0 && strncmp(value, "cache:", 6) != 0 && strncmp(value, "volume:", 7) != 0)
		r = vm_error_set(c->err, EINVAL,
				 "seed rule \"%.64s\": source must be cache:NAME or volume:NAME", key);
	if (r < 0) {
		c->r = r;
		return 0;
	}
	struct vm_seed_rule *rule = &c->cfg->seed[c->cfg->n_seed];
	snprintf(rule->pattern, sizeof(rule->pattern), "%s", key);
	snprintf(rule->source, sizeof(rule->source), "%s", value);
	/* Check the template against its own pattern's captures now, with
	 * a stand-in value, so that a typo fails at start-up. */
	struct vm_capture caps[8];
	size_t n = 0;
	for (const char *p = key; (p = strchr(p, '{')) && n < ELEMENTSOF(caps); p++) {
		size_t e = cap_end(key, (size_t)(p - key));
		snprintf(caps[n].name, sizeof(caps[n].name), "%.*s",
			 (int)(e - (size_t)(p - key) - 2), p + 1);
		snprintf(caps[n].value, sizeof(caps[n].value), "x0");
		n++;
	}
	char spec[VM_SEED_PATTERN_MAX + VM_NAME_MAX + 1];
	struct vm_source s;
	if ((r = expand(value, caps, n, spec, sizeof(spec), c->err)) < 0 ||
	    (r = vm_source_parse(spec, &s, c->err)) < 0) {
		c->r = vm_error_set(c->err, EINVAL, "seed rule \"%.64s\": bad source \"%.64s\"",
				    key, value);
		return 0;
	}
	c->cfg->n_seed++;
	return 1;
}

int vm_config_parse_string(const char *text, struct vm_config *ret,
			   struct vm_error *err)
{
	struct vm_config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return vm_error_set(err, ENOMEM, "out of memory");
	vm_config_init(cfg);
	struct parse_ctx c = {cfg, err, 0};
	int line = ini_parse_string(text, on_entry, &c);
	if (c.r == 0 && line != 0)
		c.r = vm_error_set(err, EINVAL, "line %d: syntax error", line);
	if (c.r == 0)
		*ret = *cfg;
	free(cfg);
	return c.r;
}

int vm_config_load(const char *path, bool optional, struct vm_config *ret,
		   struct vm_error *err)
{
	_cleanup_free_ char *text = NULL;
	/* The administrator's path: opened as given. */
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	int r = fd < 0 ? -errno : vm_read_fd(fd, 1024 * 1024, &text, NULL);
	if (r == -ENOENT && optional) {
		vm_config_init(ret);
		return 0;
	}
	if (r < 0)
		return vm_error_errno(err, -r, "cannot read %s", path);
	r = vm_config_parse_string(text, ret, err);
	if (r < 0 && err) {
		char msg[sizeof(err->msg)];
		memcpy(msg, err->msg, sizeof(msg));
		snprintf(err->msg, sizeof(err->msg), "%.120s: %.380s", path, msg);
	}
	return r;
}
