/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* volmgr: the command-line client of volmgrd.  A thin front end: every
 * decision is the daemon's; this file parses arguments (getopt_long, on
 * the options of each command in the table commands[]), sends one request
 * per command and prints the reply. */
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "exitcode.h"
#include "names.h"

#define DEFAULT_SOCKET "/run/volmgr/control.sock"

static const char *socket_path;

/* What a command was given on the command line. */
struct args {
	const struct command *cmd;
	const char *socket;        /* --socket */
	bool json, quiet, mount, dry_run;
	json_t *labels;            /* --label KEY=VALUE..., checked */
	const char *ttl, *quota;   /* --ttl DURATION, --quota SIZE: see check_value */
	const char *git, *branch;  /* cache create */
	const char *commit, *commit_time; /* cache promote */
	char **pos;                /* the positional arguments */
	int npos;
};

/* One command: `volmgr NAME ...`.  A name of two words is a subcommand of
 * a group ("cache ls"). */
struct command {
	const char *name;
	const char *alias; /* accepted too, not shown: "list", "cache list" */
	/* NULL: shown in --help only, run by another row (pool's). */
	int (*run)(struct args *a);
	/* The options it takes; NULL: its words go to run as they are, in
	 * a->pos. */
	const struct option *opts;
	int min_args, max_args; /* positional arguments; max -1: any number */
	/* --help's entry: the synopsis (also printed after "usage: volmgr"
	 * when arguments are missing) and what the command does, lines
	 * separated by \n.  No synopsis: not shown. */
	const char *synopsis, *help;
};

/* ------------------------------------------------------------ output */

/* One entry of --help: the synopsis (lines separated by \n) from column
 * 2, the description (likewise) from column 26, beside the synopsis's
 * last line where that leaves two spaces, else below it. */
#define HELP_COLUMN 26

static void print_entry(FILE *f, const char *synopsis, const char *help)
{
	const char *line = synopsis;
	for (const char *nl; (nl = strchr(line, '\n')); line = nl + 1)
		fprintf(f, "  %.*s\n", (int)(nl - line), line);
	fprintf(f, "  %s", line);
	int col = 2 + (int)strlen(line);
	if (col + 2 > HELP_COLUMN) {
		fputc('\n', f);
		col = 0;
	}
	line = help;
	for (const char *nl; (nl = strchr(line, '\n')); line = nl + 1) {
		fprintf(f, "%*s%.*s\n", HELP_COLUMN - col, "", (int)(nl - line), line);
		col = 0;
	}
	fprintf(f, "%*s%s\n", HELP_COLUMN - col, "", line);
}

static void usage(FILE *f);

static int fail_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "volmgr: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nTry 'volmgr --help'.\n");
	va_end(ap);
	return VM_EXIT_USAGE;
}

static int fail_synopsis(const struct command *c)
{
	return fail_usage("usage: volmgr %s", c->synopsis);
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	if (s) {
		puts(s);
		free(s);
	}
}

static void fmt_bytes(double b, char *buf, size_t len)
{
	const char *unit[] = {"B", "kB", "MB", "GB", "TB"};
	size_t u = 0;
	while (b >= 1000 && u + 1 < ELEMENTSOF(unit)) {
		b /= 1000;
		u++;
	}
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", b, unit[u]);
}

static bool progress_shown;

/* A copy's progress: NDJSON events on stdout with --json, else a line on
 * the terminal (stderr).  userdata: the command's struct args. */
static void show_progress(json_t *p, void *userdata)
{
	const struct args *a = userdata;
	uint64_t files = (uint64_t)json_integer_value(json_object_get(p, "files"));
	uint64_t bytes = (uint64_t)json_integer_value(json_object_get(p, "bytes"));
	uint64_t tf = (uint64_t)json_integer_value(json_object_get(p, "total_files"));
	uint64_t tb = (uint64_t)json_integer_value(json_object_get(p, "total_bytes"));
	double secs = (double)json_integer_value(json_object_get(p, "elapsed_ns")) / 1e9;
	if (a->json) {
		json_t *ev = json_deep_copy(p);
		json_object_set_new(ev, "event", json_string("progress"));
		char *s = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
		if (s)
			printf("%s\n", s);
		free(s);
		json_decref(ev);
		fflush(stdout);
		return;
	}
	char b[32], t[32], rate[32], left[48] = "";
	double r = secs > 0 ? (double)bytes / secs : 0;
	fmt_bytes((double)bytes, b, sizeof(b));
	fmt_bytes((double)tb, t, sizeof(t));
	fmt_bytes(r, rate, sizeof(rate));
	if (tb && r > 0 && bytes <= tb)
		snprintf(left, sizeof(left), ", %.0f s left", (double)(tb - bytes) / r);
	if (tf)
		fprintf(stderr, "\r\033[Kcopying: %llu/%llu files, %s/%s, %s/s%s",
			(unsigned long long)files, (unsigned long long)tf, b, t, rate, left);
	else
		fprintf(stderr, "\r\033[Kcopying: %llu files, %s, %s/s", (unsigned long long)files,
			b, rate);
	progress_shown = true;
}

/* The last line of --json output: what was made. */
static void print_created_event(const char *kind, const char *name, json_t *res)
{
	json_t *ev = json_pack("{s:s, s:s, s:s, s:O}", "event", "created", "kind", kind, "name",
			       name, "result", res ? res : json_null());
	char *s = ev ? json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	if (s)
		printf("%s\n", s);
	free(s);
	json_decref(ev);
}

/* ------------------------------------------------------------ requests */

/* One request (req's reference and fd are taken); on success *ret_result
 * holds the result (may be NULL).  With progress (the arguments of a
 * command that copies): the copy's progress, shown with --json or on a
 * terminal. */
static int call_progress(const char *op, json_t *req, int fd, struct args *progress,
			 json_t **ret_result)
{
	vm_client_progress_fn fn = NULL;
	if (progress && (progress->json || isatty(STDERR_FILENO)))
		fn = show_progress;
	struct vm_error err = {0};
	int sock = vm_client_connect(socket_path, &err);
	if (sock < 0) {
		if (fd >= 0)
			close(fd);
		json_decref(req);
		fprintf(stderr, "volmgr: %s\n", err.msg);
		return VM_EXIT_UNREACHABLE;
	}
	json_t *reply = NULL;
	int r = vm_client_call_progress(sock, op, req, fd, fn, progress, &reply, &err);
	close(sock);
	if (progress_shown) {
		fprintf(stderr, "\r\033[K");
		progress_shown = false;
	}
	if (r < 0) {
		fprintf(stderr, "volmgr: %s\n", err.msg);
		return VM_EXIT_UNREACHABLE;
	}
	if (!json_is_true(json_object_get(reply, "ok"))) {
		json_t *e = json_object_get(reply, "error");
		fprintf(stderr, "volmgr: error: %s\n",
			json_string_value(json_object_get(e, "message")) ?: "unknown error");
		int code = (int)json_integer_value(json_object_get(e, "errno"));
		json_decref(reply);
		return vm_exit_from_errno(code) ?: VM_EXIT_FAILURE;
	}
	if (ret_result)
		*ret_result = json_incref(json_object_get(reply, "result"));
	json_decref(reply);
	return 0;
}

static int call(const char *op, json_t *req, int fd, json_t **ret_result)
{
	return call_progress(op, req, fd, NULL, ret_result);
}

/* ------------------------------------------------------------ commands */

/* The options that take a size or a duration (--quota, --ttl): the text
 * is checked here by the parser the daemon applies to it (names.h; the
 * same parsers read volmgr.conf's sizes and durations and `pool init
 * --size`), so that a mistake is reported, as the daemon would, before
 * anything is sent; the daemon gets the text as written.  Returns 0, or
 * the exit status of the error it printed. */
enum value_kind { VALUE_SIZE, VALUE_DURATION };

static int check_value(enum value_kind kind, const char *text)
{
	struct vm_error err = {0};
	uint64_t bytes;
	int64_t ns;
	int r = kind == VALUE_SIZE ? vm_parse_size(text, &bytes, &err)
				   : vm_parse_duration(text, &ns, &err);
	if (r < 0) {
		fprintf(stderr, "volmgr: error: %s\n", err.msg);
		return vm_exit_from_errno(-r);
	}
	return 0;
}

/* A snapshot SOURCE that names a directory rather than cache:/volume:
 * (a directory called "cache:x" is written ./cache:x). */
static bool is_path(const char *s)
{
	if (strncmp(s, "cache:", 6) == 0 || strncmp(s, "volume:", 7) == 0)
		return false;
	return s[0] == '/' || s[0] == '.' || strchr(s, '/') != NULL;
}

/* snapshot SOURCE VOLUME, create VOLUME. */
static int create_volume(struct args *a, bool snapshot)
{
	const char *source = snapshot ? a->pos[0] : NULL;
	const char *name = a->pos[snapshot ? 1 : 0];
	struct vm_error err = {0};
	_cleanup_close_ int fd = -1;
	if (snapshot && is_path(source)) {
		/* What this process sees at PATH, in its own mount namespace:
		 * the daemon gets the open directory, never the path to
		 * resolve. The path string is only recorded. */
		fd = open(source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "volmgr: cannot open %s: %m\n", source);
			return errno == ENOENT ? VM_EXIT_NOT_FOUND : VM_EXIT_INVALID;
		}
	} else if (snapshot) {
		/* Check the source here too, for a message before any I/O. */
		struct vm_source src;
		if (vm_source_parse(source, &src, &err) < 0) {
			fprintf(stderr, "volmgr: %s\n", err.msg);
			return VM_EXIT_INVALID;
		}
	}
	int r;
	if ((a->ttl && (r = check_value(VALUE_DURATION, a->ttl)) != 0) ||
	    (a->quota && (r = check_value(VALUE_SIZE, a->quota)) != 0))
		return r;
	json_t *req = json_pack("{s:s, s:O}", "name", name, "labels", a->labels);
	if (a->ttl)
		json_object_set_new(req, "ttl", json_string(a->ttl));
	if (a->quota)
		json_object_set_new(req, "quota", json_string(a->quota));
	json_t *res = NULL;
	if (fd >= 0) {
		char *abs = realpath(source, NULL);
		json_object_set_new(req, "path", json_string(abs ? abs : source));
		free(abs);
		r = call_progress("volume.create", req, TAKE_FD(fd), a, &res);
		if (r == 0 && !a->json) {
			json_t *how = json_object_get(res, "created_by");
			const char *method = json_string_value(json_object_get(how, "method"));
			if (method && (strcmp(method, "snapshot") == 0 || strcmp(method, "clone") == 0))
				fprintf(stderr, "volmgr: %s is the volume %s: %s\n", source,
					json_string_value(json_object_get(how, "of")), method);
			else
				fprintf(stderr, "volmgr: %s is not the top of a volume: copied %lld files\n",
					source,
					(long long)json_integer_value(json_object_get(
						json_object_get(how, "stats"), "files")));
		}
	} else {
		if (snapshot)
			json_object_set_new(req, "source", json_string(source));
		r = call_progress("volume.create", req, -1, snapshot ? a : NULL, &res);
	}
	if (r == 0 && a->json)
		print_created_event("volume", name, res);
	else if (r == 0)
		printf("%s\n", name);
	json_decref(res);
	return r;
}

static int cmd_snapshot(struct args *a)
{
	return create_volume(a, true);
}

static int cmd_create(struct args *a)
{
	return create_volume(a, false);
}

static int cmd_ls(struct args *a)
{
	json_t *res = NULL;
	int r = call("volume.list", NULL, -1, &res);
	if (r != 0)
		return r;
	if (a->json) {
		print_json(res);
	} else {
		size_t i;
		json_t *v;
		if (!a->quiet)
			printf("%-40s %-30s %-20s %s\n", "NAME", "SOURCE", "CREATED", "IN USE");
		json_array_foreach(res, i, v) {
			const char *name = json_string_value(json_object_get(v, "name"));
			if (a->quiet) {
				printf("%s\n", name);
				continue;
			}
			const char *src = json_string_value(json_object_get(v, "source"));
			char created[20];
			snprintf(created, sizeof(created), "%.19s",
				 json_string_value(json_object_get(v, "created")) ?: "");
			printf("%-40s %-30s %-20s %s\n", name, src && *src ? src : "-", created,
			       json_is_true(json_object_get(v, "in_use")) ? "yes" : "no");
		}
	}
	json_decref(res);
	return 0;
}

/* One request per name; the status is that of the first failure. */
static int for_each_name(const char *op, struct args *a, bool print_result)
{
	int worst = 0;
	json_t *all = print_result ? json_array() : NULL;
	for (int i = 0; i < a->npos; i++) {
		json_t *res = NULL;
		int r = call(op, json_pack("{s:s}", "name", a->pos[i]), -1, &res);
		if (r) {
			worst = worst ? worst : r;
			continue;
		}
		if (print_result)
			json_array_append(all, res);
		else
			printf("%s\n", a->pos[i]);
		json_decref(res);
	}
	if (print_result) {
		/* One object for one name (the common case), else an array. */
		if (a->npos == 1 && json_array_size(all) == 1)
			print_json(json_array_get(all, 0));
		else if (json_array_size(all) > 0)
			print_json(all);
		json_decref(all);
	}
	return worst;
}

static int cmd_inspect(struct args *a)
{
	return for_each_name("volume.inspect", a, true);
}

static int cmd_rm(struct args *a)
{
	return for_each_name("volume.remove", a, false);
}

static int cmd_cache_import(struct args *a)
{
	const char *name = a->pos[0], *dir = a->pos[1];
	/* The daemon reads the tree through this fd: it sees exactly what
	 * this process sees at DIR, in this process's mount namespace. */
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "volmgr: cannot open %s: %m\n", dir);
		return errno == ENOENT ? VM_EXIT_NOT_FOUND : VM_EXIT_INVALID;
	}
	json_t *res = NULL;
	int r = call_progress("cache.import", json_pack("{s:s}", "name", name), fd, a,
			      &res); /* takes fd */
	if (r == 0 && a->json)
		print_created_event("cache", name, res);
	else if (r == 0)
		printf("%s: %lld files, %lld directories, %lld bytes\n", name,
		       (long long)json_integer_value(json_object_get(res, "files")),
		       (long long)json_integer_value(json_object_get(res, "dirs")),
		       (long long)json_integer_value(json_object_get(res, "bytes")));
	json_decref(res);
	return r;
}

static int cmd_cache_ls(struct args *a)
{
	json_t *res = NULL;
	int r = call("cache.list", NULL, -1, &res);
	if (r != 0)
		return r;
	if (a->json) {
		print_json(res);
	} else {
		size_t i;
		json_t *v;
		printf("%-40s %-19s  %-19s  %10s\n", "NAME", "CREATED", "LAST USED", "SIZE");
		json_array_foreach(res, i, v) {
			json_t *size = json_object_get(v, "size");
			char sz[32] = "-";
			if (json_is_integer(size))
				snprintf(sz, sizeof(sz), "%.1f MiB",
					 (double)json_integer_value(size) / (1024.0 * 1024.0));
			printf("%-40s %-19.19s  %-19.19s  %10s\n",
			       json_string_value(json_object_get(v, "name")),
			       json_string_value(json_object_get(v, "created")) ?: "",
			       json_string_value(json_object_get(v, "last_used")) ?: "-", sz);
		}
	}
	json_decref(res);
	return 0;
}

static int cmd_cache_create(struct args *a)
{
	const char *name = a->pos[0];
	if (!a->git)
		return fail_synopsis(a->cmd);
	json_t *req = json_pack("{s:s, s:s}", "name", name, "git", a->git);
	if (a->branch)
		json_object_set_new(req, "branch", json_string(a->branch));
	json_t *res = NULL;
	int r = call("cache.create", req, -1, &res);
	if (r == 0)
		printf("%s: %s at %s (%.12s)\n", name, a->git,
		       json_string_value(json_object_get(res, "branch")),
		       json_string_value(json_object_get(res, "commit")));
	json_decref(res);
	return r;
}

static int cmd_cache_update(struct args *a)
{
	json_t *res = NULL;
	int r = call("cache.update", json_pack("{s:s}", "name", a->pos[0]), -1, &res);
	if (r == 0)
		printf("%s: generation %lld, %.12s -> %.12s\n", a->pos[0],
		       (long long)json_integer_value(json_object_get(res, "generation")),
		       json_string_value(json_object_get(res, "previous_commit")),
		       json_string_value(json_object_get(res, "commit")));
	json_decref(res);
	return r;
}

static int cmd_cache_promote(struct args *a)
{
	const char *path = a->pos[0], *name = a->npos > 1 ? a->pos[1] : NULL;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "volmgr: cannot open %s: %m\n", path);
		return errno == ENOENT ? VM_EXIT_NOT_FOUND : VM_EXIT_INVALID;
	}
	json_t *res = NULL, *req = json_object();
	if (name)
		json_object_set_new(req, "name", json_string(name));
	if (a->commit)
		json_object_set_new(req, "commit", json_string(a->commit));
	if (a->commit_time)
		json_object_set_new(req, "commit_time", json_string(a->commit_time));
	int r = call("cache.promote", req, fd, &res); /* takes fd */
	if (r != 0)
		return r;
	const char *cache = json_string_value(json_object_get(res, "cache"));
	long long gen = json_integer_value(json_object_get(res, "generation"));
	if (a->json)
		print_json(res);
	else if (json_is_true(json_object_get(res, "promoted")))
		printf("cache %s: generation %lld is volume %s (%s, commit %.12s)\n", cache, gen,
		       json_string_value(json_object_get(res, "volume")),
		       json_string_value(json_object_get(res, "method")),
		       json_string_value(json_object_get(res, "commit")) ?: "none");
	else
		printf("cache %s: kept at generation %lld: %s\n", cache, gen,
		       json_string_value(json_object_get(res, "kept_because")));
	json_decref(res);
	return 0;
}

/* The stream is written by volmgrd (btrfs send) straight into this fd:
 * FILE.part (made 0600), renamed to FILE once whole, or stdout. */
static int cmd_cache_export(struct args *a)
{
	const char *name = a->pos[0], *file = a->pos[1];
	bool to_stdout = strcmp(file, "-") == 0;
	if (to_stdout && isatty(STDOUT_FILENO)) {
		fprintf(stderr, "volmgr: not writing a btrfs stream to a terminal: give a FILE or redirect\n");
		return VM_EXIT_INVALID;
	}
	char part[PATH_MAX];
	if (!to_stdout && snprintf(part, sizeof(part), "%s.part", file) >= (int)sizeof(part)) {
		fprintf(stderr, "volmgr: %s: name too long\n", file);
		return VM_EXIT_INVALID;
	}
	int fd = to_stdout ? fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3)
			   : open(part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "volmgr: cannot open %s: %m\n", to_stdout ? "stdout" : part);
		return errno == EEXIST ? VM_EXIT_EXISTS : VM_EXIT_INVALID;
	}
	json_t *res = NULL;
	int r = call("cache.export", json_pack("{s:s}", "name", name), fd, &res); /* takes fd */
	if (!to_stdout && r == 0 && rename(part, file) < 0) {
		fprintf(stderr, "volmgr: cannot rename %s to %s: %m\n", part, file);
		r = VM_EXIT_FAILURE;
	}
	if (r != 0) {
		if (!to_stdout)
			unlink(part);
		json_decref(res);
		return r;
	}
	const char *commit = json_string_value(json_object_get(res, "commit"));
	fprintf(stderr, "cache %s: generation %lld (commit %.12s) exported to %s\n", name,
		(long long)json_integer_value(json_object_get(res, "generation")),
		commit && commit[0] ? commit : "none", to_stdout ? "stdout" : file);
	json_decref(res);
	return 0;
}

static int cmd_cache_import_stream(struct args *a)
{
	const char *file = a->pos[0], *name = a->npos > 1 ? a->pos[1] : NULL;
	int fd = strcmp(file, "-") == 0 ? fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3)
					: open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "volmgr: cannot open %s: %m\n", file);
		return errno == ENOENT ? VM_EXIT_NOT_FOUND : VM_EXIT_INVALID;
	}
	json_t *res = NULL, *req = json_object();
	if (name)
		json_object_set_new(req, "name", json_string(name));
	if (a->git)
		json_object_set_new(req, "git", json_string(a->git));
	int r = call("cache.import_stream", req, fd, &res); /* takes fd */
	if (r != 0)
		return r;
	const char *commit = json_string_value(json_object_get(res, "commit"));
	json_t *git = json_object_get(res, "git");
	if (a->json) {
		print_json(res);
	} else {
		printf("cache %s: %lld bytes received (commit %.12s)\n",
		       json_string_value(json_object_get(res, "cache")),
		       (long long)json_integer_value(json_object_get(res, "bytes")),
		       commit && commit[0] ? commit : "none");
		if (git && !json_is_true(json_object_get(git, "kept")))
			printf("the stream's git remote %s was not kept: a plain cache (--git-url %s keeps it)\n",
			       json_string_value(json_object_get(git, "url")),
			       json_string_value(json_object_get(git, "url")));
	}
	json_decref(res);
	return 0;
}

static int cmd_cache_inspect(struct args *a)
{
	return for_each_name("cache.inspect", a, true);
}

static int cmd_cache_rm(struct args *a)
{
	return for_each_name("cache.remove", a, false);
}

static int cmd_which(struct args *a)
{
	const char *path = a->pos[0];
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "volmgr: cannot open %s: %m\n", path);
		return errno == ENOENT ? VM_EXIT_NOT_FOUND : VM_EXIT_INVALID;
	}
	json_t *res = NULL;
	int r = call("volume.which", NULL, fd, &res); /* takes fd */
	json_t *mt = json_object_get(res, "mount");
	if (r == 0 && a->mount && !json_is_true(json_object_get(mt, "volume_top"))) {
		fprintf(stderr, "volmgr: %s is on the volume %s, but what is mounted there is %s, not the volume's top\n",
			path, json_string_value(json_object_get(res, "volume")),
			mt ? json_string_value(json_object_get(mt, "root")) : "unknown");
		r = VM_EXIT_UNSUPPORTED;
	}
	if (r == 0) {
		if (a->json)
			print_json(res);
		else if (a->mount)
			printf("%s %s\n", json_string_value(json_object_get(res, "volume")),
			       json_string_value(json_object_get(mt, "target")));
		else
			printf("%s\n", json_string_value(json_object_get(res, "volume")));
	}
	json_decref(res);
	return r;
}

static int cmd_gc(struct args *a)
{
	bool dry = a->dry_run;
	json_t *res = NULL;
	int r = call("gc", json_pack("{s:b, s:O}", "dry_run", dry, "labels", a->labels), -1, &res);
	if (r != 0)
		return r;
	if (a->json) {
		print_json(res);
	} else {
		size_t i;
		json_t *e;
		json_array_foreach(json_object_get(res, "removed"), i, e) {
			char *reasons = json_dumps(json_object_get(e, "reasons"), JSON_COMPACT);
			printf("%s %s %s (%lld bytes)\n", dry ? "would remove" : "removed",
			       json_string_value(json_object_get(e, "name")), reasons ? reasons : "",
			       (long long)json_integer_value(json_object_get(e, "bytes")));
			free(reasons);
		}
		json_array_foreach(json_object_get(res, "kept_in_use"), i, e)
			printf("kept %s: in use\n", json_string_value(json_object_get(e, "name")));
		json_t *caches = json_object_get(res, "caches");
		json_array_foreach(json_object_get(caches, "removed"), i, e)
			printf("%s cache %s: least recently used past the pool's ceiling (%lld bytes)\n",
			       dry ? "would remove" : "removed", json_string_value(json_object_get(e, "name")),
			       (long long)json_integer_value(json_object_get(e, "bytes")));
		json_array_foreach(json_object_get(caches, "kept_in_use"), i, e)
			printf("kept cache %s: %s\n", json_string_value(json_object_get(e, "name")),
			       json_string_value(json_object_get(e, "error")));
		printf("%s %zu volume(s), %lld bytes\n", dry ? "would free" : "freed",
		       json_array_size(json_object_get(res, "removed")),
		       (long long)json_integer_value(json_object_get(res, "bytes_freed")));
	}
	json_decref(res);
	return 0;
}

/* `volmgr pool ...` runs the helper volmgr-pool with the words that
 * follow (it parses them): $VOLMGR_POOL_HELPER, or the one next to this
 * binary, or the installed one -- never a path outside the binary's own
 * folder (the build tree's tests set $VOLMGR_POOL_HELPER). */
static int cmd_pool(struct args *a)
{
	static const char *const near[] = {"volmgr-pool"};
	char self[PATH_MAX], next[PATH_MAX + 32];
	const char *helper = getenv("VOLMGR_POOL_HELPER");
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash = NULL;
	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
	}
	if (slash)
		*slash = '\0';
	for (size_t i = 0; !helper && slash && i < ELEMENTSOF(near); i++) {
		snprintf(next, sizeof(next), "%s/%s", self, near[i]);
		if (access(next, X_OK) == 0)
			helper = next;
	}
	if (!helper)
		helper = VOLMGR_POOL_HELPER;
	char *args[64];
	if (a->npos + 2 > (int)ELEMENTSOF(args))
		return fail_usage("%s", "too many arguments");
	args[0] = (char *)"volmgr-pool";
	for (int i = 0; i < a->npos; i++)
		args[i + 1] = a->pos[i];
	args[a->npos + 1] = NULL;
	execv(helper, args);
	fprintf(stderr, "volmgr: cannot run %s: %m\n", helper);
	return VM_EXIT_FAILURE;
}

static int cmd_metrics(struct args *a)
{
	(void)a;
	json_t *res = NULL;
	int r = call("metrics", NULL, -1, &res);
	if (r == 0)
		fputs(json_string_value(res) ?: "", stdout);
	json_decref(res);
	return r;
}

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key)) ?: "";
}

static int cmd_status(struct args *a)
{
	json_t *res = NULL;
	int r = call("status", NULL, -1, &res);
	if (r == 0 && a->json) {
		print_json(res);
	} else if (r == 0) {
		printf("volmgrd:  %s\n", str(res, "version"));
		printf("pool:     %s (%s, mounted at %s)\n", str(res, "pool"), str(res, "fstype"),
		       str(res, "mount"));
		printf("backend:  %s, %s (%s)\n", str(res, "backend"), str(res, "backend_chosen"),
		       str(res, "backend_reason"));
		printf("volumes:  %s\n", json_is_true(json_object_get(res, "instant"))
						 ? "snapshots, in O(1)"
						 : "copies of their source (time grows with its size)");
		printf("copy io:  %s (%s)\n", str(res, "copy_io"), str(res, "copy_io_reason"));
		const char *acct = str(res, "quota_accounting");
		if (json_is_true(json_object_get(res, "quotas")) && !strcmp(acct, "simple"))
			printf("quotas:   yes (simple quotas: a volume's limit covers the subvolumes made inside it)\n");
		else if (json_is_true(json_object_get(res, "quotas")) && !strcmp(acct, "full"))
			printf("quotas:   yes (full accounting: subvolumes made inside a volume are not counted)\n");
		else if (json_is_true(json_object_get(res, "quotas")))
			printf("quotas:   yes\n");
		else
			printf("quotas:   no (%s)\n", str(res, "quotas_reason"));
	}
	json_decref(res);
	return r;
}

static int cmd_help(struct args *a)
{
	(void)a;
	usage(stdout);
	return 0;
}

/* ------------------------------------------------------------ the tables */

/* Options with no short form; the others have their letter as value. */
enum {
	OPT_LONG_ONLY = 0x100,
	OPT_SOCKET = OPT_LONG_ONLY,
	OPT_VERSION,
	OPT_JSON,
	OPT_LABEL, /* gc's --label, which has no -l */
	OPT_TTL,
	OPT_QUOTA,
	OPT_GIT,
	OPT_BRANCH,
	OPT_MOUNT,
	OPT_COMMIT,
	OPT_COMMIT_TIME,
};

static const struct option global_opts[] = {
	{"socket", required_argument, NULL, OPT_SOCKET},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, OPT_VERSION},
	{0},
};
static const struct option create_opts[] = {
	{"label", required_argument, NULL, 'l'},
	{"ttl", required_argument, NULL, OPT_TTL},
	{"quota", required_argument, NULL, OPT_QUOTA},
	{"json", no_argument, NULL, OPT_JSON},
	{0},
};
static const struct option ls_opts[] = {
	{"json", no_argument, NULL, OPT_JSON},
	{"quiet", no_argument, NULL, 'q'},
	{0},
};
static const struct option json_opts[] = {
	{"json", no_argument, NULL, OPT_JSON},
	{0},
};
static const struct option cache_create_opts[] = {
	{"git", required_argument, NULL, OPT_GIT},
	{"branch", required_argument, NULL, OPT_BRANCH},
	{0},
};
static const struct option import_stream_opts[] = {
	{"git-url", required_argument, NULL, OPT_GIT},
	{"json", no_argument, NULL, OPT_JSON},
	{0},
};
static const struct option which_opts[] = {
	{"json", no_argument, NULL, OPT_JSON},
	{"mount", no_argument, NULL, OPT_MOUNT},
	{0},
};
static const struct option promote_opts[] = {
	{"commit", required_argument, NULL, OPT_COMMIT},
	{"commit-time", required_argument, NULL, OPT_COMMIT_TIME},
	{"json", no_argument, NULL, OPT_JSON},
	{0},
};
static const struct option gc_opts[] = {
	{"dry-run", no_argument, NULL, 'n'},
	{"label", required_argument, NULL, OPT_LABEL},
	{"json", no_argument, NULL, OPT_JSON},
	{0},
};
static const struct option no_opts[] = {{0}};

/* In --help's order. */
static const struct command commands[] = {
	{"snapshot", NULL, cmd_snapshot, create_opts, 2, 2,
	 "snapshot SOURCE VOLUME [--label KEY=VALUE]... [--json]",
	 "create VOLUME as a snapshot of SOURCE\n"
	 "(cache:NAME, cache:NAME@REV, volume:NAME, or a PATH as this\n"
	 "process sees it: the top of a volume is\n"
	 "snapshotted, anything else copied); a copy\n"
	 "shows its progress on a terminal, and --json\n"
	 "prints progress events, then the result"},
	{"create", NULL, cmd_create, create_opts, 1, 1,
	 "create VOLUME [--label KEY=VALUE]...",
	 "create an empty VOLUME\n"
	 "(snapshot and create also take --ttl DURATION:\n"
	 "gc removes the volume after that, e.g. 2h, 7d;\n"
	 "and --quota SIZE: what the volume may add, e.g. 10G)"},
	{"ls", "list", cmd_ls, ls_opts, 0, 0,
	 "ls [--json] [--quiet|-q]",
	 "list volumes (--quiet: names only)"},
	{"inspect", NULL, cmd_inspect, no_opts, 1, -1,
	 "inspect VOLUME...",
	 "show volumes as JSON"},
	{"rm", "remove", cmd_rm, no_opts, 1, -1,
	 "rm VOLUME...",
	 "remove volumes (refused while in use)"},
	{"cache import", NULL, cmd_cache_import, json_opts, 2, 2,
	 "cache import NAME DIR [--json]",
	 "copy the tree DIR into a new cache NAME"},
	{"cache create", NULL, cmd_cache_create, cache_create_opts, 1, 1,
	 "cache create NAME --git URL [--branch BRANCH]",
	 "clone URL into a new cache NAME"},
	{"cache update", NULL, cmd_cache_update, no_opts, 1, 1,
	 "cache update NAME",
	 "fetch into a new generation, published atomically"},
	{"cache promote", NULL, cmd_cache_promote, promote_opts, 1, 2,
	 "cache promote PATH [NAME] [--commit SHA]\n"
	 "          [--commit-time TIME] [--json]",
	 "the volume holding PATH (a checkout's top)\n"
	 "becomes the next generation of cache NAME\n"
	 "(default: the one its seed rule named); an\n"
	 "older commit keeps the cache (root only)"},
	{"cache export", NULL, cmd_cache_export, no_opts, 2, 2,
	 "cache export NAME FILE|-",
	 "write cache NAME as a btrfs send stream to\n"
	 "FILE (or stdout), for import-stream on another\n"
	 "machine (btrfs pools, root only)"},
	{"cache import-stream", NULL, cmd_cache_import_stream, import_stream_opts, 1, 2,
	 "cache import-stream FILE|- [NAME] [--git-url URL]\n"
	 "          [--json]",
	 "a new cache from such a stream (NAME: the one\n"
	 "it was exported as), checked before btrfs\n"
	 "receive applies it; --git-url: the stream's git\n"
	 "remote, repeated, keeps it a cache from git"},
	{"cache ls", "cache list", cmd_cache_ls, json_opts, 0, 0,
	 "cache ls [--json]",
	 "list caches"},
	{"cache inspect", NULL, cmd_cache_inspect, no_opts, 1, -1,
	 "cache inspect NAME...",
	 "show caches as JSON"},
	{"cache rm", "cache remove", cmd_cache_rm, no_opts, 1, -1,
	 "cache rm NAME...",
	 "remove caches"},
	{"which", NULL, cmd_which, which_opts, 1, 1,
	 "which PATH [--json|--mount]",
	 "name the volume that PATH is on; --mount:\n"
	 "also where this process has its top mounted"},
	{"gc", NULL, cmd_gc, gc_opts, 0, 0,
	 "gc [--dry-run] [--label KEY=VALUE]... [--json]",
	 "remove expired volumes, volumes whose creator's\n"
	 "container is gone, volumes with the labels;\n"
	 "never one in use"},
	/* volmgr-pool parses the words after "pool" itself. */
	{"pool", NULL, cmd_pool, NULL, 0, -1, NULL, NULL},
	{"pool init", NULL, NULL, NULL, 0, 0,
	 "pool init [--pool DIR] [--size SIZE] [--image FILE]\n"
	 "          [--at-boot [--unit-dir DIR]]",
	 "make DIR a btrfs pool on a loop-backed image"},
	{"pool status", NULL, NULL, NULL, 0, 0,
	 "pool status [--pool DIR] [--json]",
	 "device, file system, backend, space, quota"},
	{"metrics", NULL, cmd_metrics, no_opts, 0, 0,
	 "metrics",
	 "Prometheus text: volumes, bytes, latencies,\n"
	 "requests and errors"},
	{"status", NULL, cmd_status, json_opts, 0, 0,
	 "status [--json]",
	 "the daemon's version, pool, backend (and how it\n"
	 "was chosen) and copy io"},
	{"help", NULL, cmd_help, NULL, 0, -1, NULL, NULL},
};

static void usage(FILE *f)
{
	fputs("Usage: volmgr [--socket PATH] COMMAND [ARGS]\n"
	      "\n"
	      "Commands:\n",
	      f);
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		if (commands[i].synopsis)
			print_entry(f, commands[i].synopsis, commands[i].help);
	fputs("\nOptions:\n", f);
	print_entry(f, "--socket PATH", "control socket (default $VOLMGR_SOCKET or\n" DEFAULT_SOCKET ")");
	print_entry(f, "-h, --help", "show this help");
	print_entry(f, "--version", "show the version");
	fputs("\n"
	      "Exit status: 0 success, 1 failure, 2 usage, 3 daemon unreachable,\n"
	      "4 not found, 5 already exists, 6 in use, 7 invalid name or option,\n"
	      "8 no space or over a limit, 9 unsupported, 10 permission denied,\n"
	      "11 backend unavailable (volmgrd).\n",
	      f);
}

/* ------------------------------------------------------------ parsing */

/* parse_args and set_option: go on (anything else is an exit status). */
#define CONTINUE (-1)

static const struct option *option_of(const struct option *opts, int val)
{
	while (opts->name && opts->val != val)
		opts++;
	return opts;
}

/* Whether word is the option o, whole: "--name", "--name=VALUE" or "-c".
 * getopt_long would also take an abbreviation ("--lab"), short options
 * run together ("-qn") or with their value attached ("-lk=v"); volmgr
 * takes only what --help shows. */
static bool whole_word(const char *word, const struct option *o)
{
	if (!o->name)
		return false;
	if (strncmp(word, "--", 2) == 0) {
		size_t n = strlen(o->name);
		return strncmp(word + 2, o->name, n) == 0 &&
		       (word[2 + n] == '\0' || word[2 + n] == '=');
	}
	return word[0] == '-' && word[1] == o->val && word[2] == '\0';
}

/* What an option's value is, for the message when it is missing. */
static const char *value_name(int val)
{
	switch (val) {
	case OPT_SOCKET: return "a path";
	case 'l':
	case OPT_LABEL: return "KEY=VALUE";
	case OPT_TTL: return "a duration";
	case OPT_QUOTA: return "a size";
	case OPT_GIT: return "a URL";
	case OPT_BRANCH: return "a branch";
	case OPT_COMMIT: return "a commit";
	case OPT_COMMIT_TIME: return "a time";
	default: return "a value";
	}
}

static int set_option(struct args *a, int val, char *value)
{
	struct vm_error err = {0};
	switch (val) {
	case 'h':
		usage(stdout);
		return 0;
	case OPT_VERSION:
		printf("volmgr %s\n", VOLMGR_VERSION);
		return 0;
	case OPT_SOCKET: a->socket = value; break;
	case OPT_JSON: a->json = true; break;
	case 'q': a->quiet = true; break;
	case 'n': a->dry_run = true; break;
	case OPT_MOUNT: a->mount = true; break;
	case OPT_TTL: a->ttl = value; break;
	case OPT_QUOTA: a->quota = value; break;
	case OPT_GIT: a->git = value; break;
	case OPT_BRANCH: a->branch = value; break;
	case OPT_COMMIT: a->commit = value; break;
	case OPT_COMMIT_TIME: a->commit_time = value; break;
	case 'l':
	case OPT_LABEL:
		if (vm_label_parse_into(a->labels, value, &err) < 0) {
			fprintf(stderr, "volmgr: %s\n", err.msg);
			return VM_EXIT_INVALID;
		}
		break;
	}
	return CONTINUE;
}

static int add_arg(struct args *a, char *word, int max_args)
{
	if (max_args >= 0 && a->npos >= max_args)
		return fail_usage("unexpected argument %s", word);
	a->pos[a->npos++] = word;
	return CONTINUE;
}

/* The one parser of every command line, with getopt_long: argv[0] is the
 * program or the command, opts what it takes (a letter as value is also
 * a short option).  order '-': options and arguments mixed, taken in
 * their order; '+': options up to the first argument (the command), the
 * rest arguments.  "--" ends the options.  The arguments go to a->pos
 * (room for argc), at most max_args (-1: any number).  Returns CONTINUE,
 * or the exit status to end with (0 after --help). */
static int parse_args(int argc, char **argv, char order, const struct option *opts,
		      int max_args, struct args *a)
{
	char shortopts[32] = {order, ':'};
	size_t n = 2;
	for (const struct option *o = opts; o->name && n + 3 <= sizeof(shortopts); o++) {
		if (o->val >= OPT_LONG_ONLY)
			continue;
		shortopts[n++] = (char)o->val;
		if (o->has_arg == required_argument)
			shortopts[n++] = ':';
	}
	opterr = 0;
	optind = 0; /* start again, on this argv and these options */
	int r = CONTINUE;
	while (r == CONTINUE) {
		int at = optind > 0 ? optind : 1;
		int c = getopt_long(argc, argv, shortopts, opts, NULL);
		if (c == -1)
			break;
		const char *word = argv[at];
		if (c == 1)
			r = add_arg(a, optarg, max_args);
		else if (c == ':' && whole_word(word, option_of(opts, optopt)))
			r = fail_usage("--%s needs %s", option_of(opts, optopt)->name,
				       value_name(optopt));
		else if (c == '?' || c == ':' || !whole_word(word, option_of(opts, c)))
			r = fail_usage("unknown option %s", word);
		else
			r = set_option(a, c, optarg);
	}
	for (int i = optind; i < argc && r == CONTINUE; i++)
		r = add_arg(a, argv[i], max_args);
	return r;
}

/* Is name a subcommand of group ("cache ls" of "cache")? */
static bool in_group(const char *name, const char *group)
{
	size_t n = strlen(group);
	return strncmp(name, group, n) == 0 && name[n] == ' ';
}

/* Does name ("ls", "cache ls"; may be NULL) name the command that argv
 * starts with?  Returns the number of its words, or 0. */
static int names(const char *name, int argc, char **argv)
{
	if (!name)
		return 0;
	const char *sub = strchr(name, ' ');
	if (!sub)
		return strcmp(argv[0], name) == 0;
	return argc >= 2 && in_group(name, argv[0]) && strcmp(argv[1], sub + 1) == 0 ? 2 : 0;
}

static int fail_command(int argc, char **argv)
{
	bool group = false;
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		group = group || in_group(commands[i].name, argv[0]);
	if (!group)
		return fail_usage("unknown command %s", argv[0]);
	if (argc >= 2)
		return fail_usage("unknown %s command %s", argv[0], argv[1]);
	fprintf(stderr, "volmgr: %s needs a subcommand:", argv[0]);
	const char *sep = " ";
	for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
		if (commands[i].run && in_group(commands[i].name, argv[0])) {
			fprintf(stderr, "%s%s", sep, strchr(commands[i].name, ' ') + 1);
			sep = ", ";
		}
	}
	fprintf(stderr, "\nTry 'volmgr --help'.\n");
	return VM_EXIT_USAGE;
}

/* Run the command that argv (the words after the global options) names. */
static int run_command(int argc, char **argv)
{
	const struct command *c = NULL;
	int words = 0;
	for (size_t i = 0; i < ELEMENTSOF(commands) && !words; i++) {
		c = &commands[i];
		if (c->run)
			words = names(c->name, argc, argv) ?: names(c->alias, argc, argv);
	}
	if (!words)
		return fail_command(argc, argv);
	/* From here argv[0] is the command's last word. */
	argc -= words - 1;
	argv += words - 1;
	struct args a = {.cmd = c};
	if (!c->opts) {
		a.pos = argv + 1;
		a.npos = argc - 1;
		return c->run(&a);
	}
	_cleanup_free_ char **pos = calloc((size_t)argc, sizeof(*pos));
	a.labels = json_object();
	a.pos = pos;
	int r;
	if (!pos || !a.labels) {
		fprintf(stderr, "volmgr: out of memory\n");
		r = VM_EXIT_FAILURE;
	} else {
		r = parse_args(argc, argv, '-', c->opts, c->max_args, &a);
	}
	if (r == CONTINUE)
		r = a.npos < c->min_args ? fail_synopsis(c) : c->run(&a);
	json_decref(a.labels);
	return r;
}

int main(int argc, char **argv)
{
	_cleanup_free_ char **words = calloc((size_t)argc + 1, sizeof(*words));
	if (!words) {
		fprintf(stderr, "volmgr: out of memory\n");
		return VM_EXIT_FAILURE;
	}
	struct args global = {.pos = words};
	int r = parse_args(argc, argv, '+', global_opts, -1, &global);
	if (r != CONTINUE)
		return r;
	socket_path = getenv("VOLMGR_SOCKET");
	if (!socket_path || !*socket_path)
		socket_path = DEFAULT_SOCKET;
	if (global.socket)
		socket_path = global.socket;
	if (global.npos == 0) {
		usage(stderr);
		return VM_EXIT_USAGE;
	}
	return run_command(global.npos, global.pos);
}
