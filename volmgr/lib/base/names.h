/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The one name rule for volumes and caches, and the parsers for the
 * options a caller may give.  Every entry point (plugin, control socket,
 * CLI) goes through these before anything touches the pool. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "util.h"

/* Docker accepts volume names matching [a-zA-Z0-9][a-zA-Z0-9_.-]+ ; we
 * accept exactly that, bounded so that a name plus our suffixes stays a
 * valid file name.  No '/', no leading '.', so no name can leave the pool. */
#define VM_NAME_MAX 200
#define VM_LABEL_KEY_MAX 128
#define VM_LABEL_VALUE_MAX 1024
#define VM_LABELS_MAX 64
/* The largest size vm_parse_size accepts and a quota may be: 2^62 bytes. */
#define VM_SIZE_MAX (UINT64_C(1) << 62)

/* what: "volume" or "cache", used in the message. */
int vm_name_check(const char *what, const char *name, struct vm_error *err);

enum vm_source_kind {
	VM_SOURCE_NONE = 0,  /* an empty volume */
	VM_SOURCE_CACHE,     /* cache:NAME */
	VM_SOURCE_VOLUME,    /* volume:NAME */
	VM_SOURCE_PATH,      /* path:PATH, a copy of what a caller saw at PATH */
};

/* A path as the caller named it, kept for information only: the daemon
 * never resolves it (it copied through a file descriptor). */
#define VM_SOURCE_PATH_MAX 1024

/* A git revision a caller may name: a branch, tag or commit. */
#define VM_REV_MAX 255

struct vm_source {
	enum vm_source_kind kind;
	char name[VM_SOURCE_PATH_MAX + 1]; /* NAME, or PATH for VM_SOURCE_PATH */
	char rev[VM_REV_MAX + 1];          /* cache:NAME@REV; "" for none */
};

/* A revision: 1..255 of [A-Za-z0-9._/-], not starting with '-' or '/',
 * no "..", no "//", not ending with '/' or ".lock": what git accepts as a
 * ref name or an object name, and nothing that could be read as an
 * option or a revision range. */
int vm_rev_check(const char *rev, struct vm_error *err);

#define VM_SOURCE_STR_MAX (VM_SOURCE_PATH_MAX + 16)

/* Parse "cache:NAME[@REV]" or "volume:NAME" (the name checked by the name
 * rule): what a caller may ask for by name. */
int vm_source_parse(const char *spec, struct vm_source *ret, struct vm_error *err);
/* The same, and also "path:PATH" (printable UTF-8, absolute): what a
 * record may say. */
int vm_source_parse_recorded(const char *spec, struct vm_source *ret,
			     struct vm_error *err);
/* Check a caller's path string for recording as path:PATH. */
int vm_source_path_check(const char *path, struct vm_error *err);
/* Format back to "cache:NAME"; "" for VM_SOURCE_NONE. */
void vm_source_format(const struct vm_source *src, char buf[static VM_SOURCE_STR_MAX]);

/* Options of a new volume, as given through the plugin (Opts) or the CLI. */
/* "90", "90s", "15m", "2h", "7d", "1w", or a sequence like "1h30m": a
 * duration of 1 s to 10 years, in nanoseconds. */
int vm_parse_duration(const char *s, int64_t *ret_ns, struct vm_error *err);
/* A point in time: RFC 3339 ("2026-12-06T17:05:09Z", "...+01:00", an
 * optional fraction of a second, as GitLab's CI_COMMIT_TIMESTAMP is) or
 * "@SECONDS" since the epoch; 1970 to 9999, in nanoseconds. */
int vm_parse_time(const char *s, int64_t *ret_ns, struct vm_error *err);

/* Parse a size: decimal digits with an optional fraction, then an
 * optional unit K, M, G or T (either case), optionally followed by "i",
 * "iB" or "B" -- all meaning powers of 1024 -- or just "B" (bytes).
 * "4096", "100k", "512M", "1.5G", "10GiB", "1GB".  A fraction needs a unit
 * and at most 18 decimals; fractional bytes are rounded down ("1.1K" is
 * 1126).  No sign, no exponent, no white space anywhere.  0 is accepted
 * (whether it makes sense is the caller's business).
 *   -EINVAL  NULL, empty, longer than 64 bytes, or not of that form
 *   -ERANGE  larger than VM_SIZE_MAX (2^62)
 * *ret is only written on success. */
int vm_parse_size(const char *s, uint64_t *ret, struct vm_error *err);

struct vm_copy_progress;

struct vm_create_opts {
	struct vm_source source;
	json_t *labels; /* object of string -> string, owned; may be NULL */
	int64_t ttl_ns;  /* 0: no expiry (gc removes it after ttl) */
	bool quota_set;        /* a quota was given (0: none, despite a default) */
	uint64_t quota_bytes;  /* exclusive bytes the volume may hold */
	/* No source given: let the daemon's seed rules pick one by name
	 * (set for engine requests, which cannot name a source per job). */
	bool seed_by_rules;
	/* The name the seed rules are matched against, if not the volume's
	 * (control volume.create's seed_name).  Not owned; may be NULL. */
	const char *seed_name;
	/* Progress of a copy (copy and reflink backends, imports): called
	 * from the copying thread; may be NULL.  Not owned. */
	void (*progress)(const struct vm_copy_progress *p, void *userdata);
	void *progress_userdata;
	/* Set by the manager, never taken from a request: the seed rule
	 * whose name pattern matched and the cache it named (recorded with
	 * the volume, for `cache promote`).  NULL: none. */
	const char *seed_rule, *seed_cache;
	/* Set by the daemon for plugin requests, never taken from one: the
	 * engine whose Create this is ("docker", "podman"; NULL: another
	 * caller), as vm_caller_engine tells it from the kernel. */
	const char *engine;
};

void vm_create_opts_done(struct vm_create_opts *o);

/* Parse the plugin's "Opts" object (NULL or JSON null: no options).  Every
 * value must be a string; an unknown key is an error. */
int vm_create_opts_from_plugin(json_t *opts, struct vm_create_opts *ret,
			       struct vm_error *err);

/* Check a labels object: at most VM_LABELS_MAX string values, keys and
 * values bounded, keys non-empty and printable, values without control
 * characters. */
int vm_labels_check(json_t *labels, struct vm_error *err);
/* Split "KEY=VALUE" into labels (CLI --label). */
int vm_label_parse_into(json_t *labels, const char *kv, struct vm_error *err);
