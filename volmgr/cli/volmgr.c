/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* volmgr: the command-line client of volmgrd.  A thin front end: every
 * decision is the daemon's; this file parses arguments, sends one request
 * per command and prints the reply. */
#include <fcntl.h>
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

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: volmgr [--socket PATH] COMMAND [ARGS]\n"
		"\n"
		"Commands:\n"
		"  snapshot SOURCE VOLUME [--label KEY=VALUE]... [--json]\n"
		"                          create VOLUME as a snapshot of SOURCE\n"
		"                          (cache:NAME, cache:NAME@REV, volume:NAME, or a PATH as this\n"
		"                          process sees it: the top of a volume is\n"
		"                          snapshotted, anything else copied); a copy\n"
		"                          shows its progress on a terminal, and --json\n"
		"                          prints progress events, then the result\n"
		"  create VOLUME [--label KEY=VALUE]...\n"
		"                          create an empty VOLUME\n"
		"                          (snapshot and create also take --ttl DURATION:\n"
		"                          gc removes the volume after that, e.g. 2h, 7d;\n"
		"                          and --quota SIZE: what the volume may add, e.g. 10G)\n"
		"  ls [--json] [--quiet|-q]\n"
		"                          list volumes (--quiet: names only)\n"
		"  inspect VOLUME...       show volumes as JSON\n"
		"  rm VOLUME...            remove volumes (refused while in use)\n"
		"  cache import NAME DIR [--json]\n"
		"                          copy the tree DIR into a new cache NAME\n"
		"  cache create NAME --git URL [--branch BRANCH]\n"
		"                          clone URL into a new cache NAME\n"
		"  cache update NAME       fetch into a new generation, published atomically\n"
		"  cache ls [--json]       list caches\n"
		"  cache inspect NAME...   show caches as JSON\n"
		"  cache rm NAME...        remove caches\n"
		"  which PATH [--json|--mount]\n"
		"                          name the volume that PATH is on; --mount:\n"
		"                          also where this process has its top mounted\n"
		"  gc [--dry-run] [--label KEY=VALUE]... [--json]\n"
		"                          remove expired volumes, volumes whose creator's\n"
		"                          container is gone, volumes with the labels;\n"
		"                          never one in use\n"
		"  pool init [--pool DIR] [--size SIZE] [--image FILE]\n"
		"            [--at-boot [--unit-dir DIR]]\n"
		"                          make DIR a btrfs pool on a loop-backed image\n"
		"  pool status [--pool DIR] [--json]\n"
		"                          device, file system, backend, space, quota\n"
		"  metrics                 Prometheus text: volumes, bytes, latencies,\n"
		"                          requests and errors\n"
		"  status [--json]         the daemon's version, pool, backend (and how it\n"
		"                          was chosen) and copy io\n"
		"\n"
		"Options:\n"
		"  --socket PATH           control socket (default $VOLMGR_SOCKET or\n"
		"                          " DEFAULT_SOCKET ")\n"
		"  -h, --help              show this help\n"
		"  --version               show the version\n"
		"\n"
		"Exit status: 0 success, 1 failure, 2 usage, 3 daemon unreachable,\n"
		"4 not found, 5 already exists, 6 in use, 7 invalid name or option,\n"
		"8 no space or over a limit, 9 unsupported, 10 permission denied,\n"
		"11 backend unavailable (volmgrd).\n");
}

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

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	if (s) {
		puts(s);
		free(s);
	}
}

/* How a copy's progress is shown: a line on a terminal (stderr), NDJSON
 * events on stdout with --json, or not at all. */
static bool opt_json;

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

static void show_progress(json_t *p, void *userdata)
{
	(void)userdata;
	uint64_t files = (uint64_t)json_integer_value(json_object_get(p, "files"));
	uint64_t bytes = (uint64_t)json_integer_value(json_object_get(p, "bytes"));
	uint64_t tf = (uint64_t)json_integer_value(json_object_get(p, "total_files"));
	uint64_t tb = (uint64_t)json_integer_value(json_object_get(p, "total_bytes"));
	double secs = (double)json_integer_value(json_object_get(p, "elapsed_ns")) / 1e9;
	if (opt_json) {
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

/* The progress callback for this run, or NULL when none is shown. */
static vm_client_progress_fn progress_fn(void)
{
	if (opt_json || isatty(STDERR_FILENO))
		return show_progress;
	return NULL;
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

static int call_progress(const char *op, json_t *args, int fd, vm_client_progress_fn fn,
			 json_t **ret_result);

/* One request; on success *ret_result holds the result (may be NULL). */
static int call(const char *op, json_t *args, int fd, json_t **ret_result)
{
	return call_progress(op, args, fd, NULL, ret_result);
}

static int call_progress(const char *op, json_t *args, int fd, vm_client_progress_fn fn,
			 json_t **ret_result)
{
	struct vm_error err = {0};
	int sock = vm_client_connect(socket_path, &err);
	if (sock < 0) {
		if (fd >= 0)
			close(fd);
		json_decref(args);
		fprintf(stderr, "volmgr: %s\n", err.msg);
		return VM_EXIT_UNREACHABLE;
	}
	json_t *reply = NULL;
	int r = vm_client_call_progress(sock, op, args, fd, fn, NULL, &reply, &err);
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

/* Collect --label KEY=VALUE / --label=KEY=VALUE; other "-" args are bad. */
static const char *opt_ttl, *opt_quota;

static int parse_labels(int argc, char **argv, json_t *labels, char **pos, int *npos)
{
	*npos = 0;
	bool options = true;
	for (int i = 0; i < argc; i++) {
		const char *kv = NULL;
		if (options && strcmp(argv[i], "--") == 0) {
			options = false;
			continue;
		}
		if (!options) {
			if (*npos >= 2)
				return fail_usage("unexpected argument %s", argv[i]);
			pos[(*npos)++] = argv[i];
			continue;
		}
		if (strcmp(argv[i], "--json") == 0) {
			opt_json = true;
			continue;
		}
		if (strcmp(argv[i], "--ttl") == 0) {
			if (++i >= argc)
				return fail_usage("%s needs a duration", "--ttl");
			opt_ttl = argv[i];
			continue;
		}
		if (strncmp(argv[i], "--ttl=", 6) == 0) {
			opt_ttl = argv[i] + 6;
			continue;
		}
		if (strcmp(argv[i], "--quota") == 0) {
			if (++i >= argc)
				return fail_usage("%s needs a size", "--quota");
			opt_quota = argv[i];
			continue;
		}
		if (strncmp(argv[i], "--quota=", 8) == 0) {
			opt_quota = argv[i] + 8;
			continue;
		}
		if (strcmp(argv[i], "--label") == 0 || strcmp(argv[i], "-l") == 0) {
			if (++i >= argc)
				return fail_usage("%s needs KEY=VALUE", "--label");
			kv = argv[i];
		} else if (strncmp(argv[i], "--label=", 8) == 0) {
			kv = argv[i] + 8;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return fail_usage("unknown option %s", argv[i]);
		} else {
			if (*npos >= 2)
				return fail_usage("unexpected argument %s", argv[i]);
			pos[(*npos)++] = argv[i];
			continue;
		}
		struct vm_error err = {0};
		if (vm_label_parse_into(labels, kv, &err) < 0) {
			fprintf(stderr, "volmgr: %s\n", err.msg);
			return VM_EXIT_INVALID;
		}
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

static int cmd_create(int argc, char **argv, bool snapshot)
{
	json_t *labels = json_object();
	char *pos[2];
	int npos, r = parse_labels(argc, argv, labels, pos, &npos);
	if (r) {
		json_decref(labels);
		return r;
	}
	if (npos != (snapshot ? 2 : 1)) {
		json_decref(labels);
		return fail_usage("%s", snapshot ? "usage: volmgr snapshot SOURCE VOLUME [--label KEY=VALUE]..."
						 : "usage: volmgr create VOLUME [--label KEY=VALUE]...");
	}
	const char *name = pos[snapshot ? 1 : 0];
	json_t *args = json_pack("{s:s, s:o}", "name", name, "labels", labels);
	if (opt_ttl)
		json_object_set_new(args, "ttl", json_string(opt_ttl));
	if (opt_quota)
		json_object_set_new(args, "quota", json_string(opt_quota));
	if (snapshot && is_path(pos[0])) {
		/* What this process sees at PATH, in its own mount namespace:
		 * the daemon gets the open directory, never the path to
		 * resolve. The path string is only recorded. */
		int fd = open(pos[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			json_decref(args);
			fprintf(stderr, "volmgr: cannot open %s: %m\n", pos[0]);
			return errno == ENOENT ? VM_EXIT_NOT_FOUND : VM_EXIT_INVALID;
		}
		char *abs = realpath(pos[0], NULL);
		json_object_set_new(args, "path", json_string(abs ? abs : pos[0]));
		free(abs);
		json_t *res = NULL;
		r = call_progress("volume.create", args, fd, progress_fn(), &res); /* takes fd */
		if (r == 0 && opt_json) {
			print_created_event("volume", name, res);
		} else if (r == 0) {
			json_t *how = json_object_get(res, "created_by");
			const char *method = json_string_value(json_object_get(how, "method"));
			if (method && (strcmp(method, "snapshot") == 0 || strcmp(method, "clone") == 0))
				fprintf(stderr, "volmgr: %s is the volume %s: %s\n", pos[0],
					json_string_value(json_object_get(how, "of")), method);
			else
				fprintf(stderr, "volmgr: %s is not the top of a volume: copied %lld files\n",
					pos[0],
					(long long)json_integer_value(json_object_get(
						json_object_get(how, "stats"), "files")));
			printf("%s\n", name);
		}
		json_decref(res);
		return r;
	}
	if (snapshot) {
		/* Check the source here too, for a message before any I/O. */
		struct vm_source src;
		struct vm_error err = {0};
		if (vm_source_parse(pos[0], &src, &err) < 0) {
			json_decref(args);
			fprintf(stderr, "volmgr: %s\n", err.msg);
			return VM_EXIT_INVALID;
		}
		json_object_set_new(args, "source", json_string(pos[0]));
	}
	json_t *res = NULL;
	r = call_progress("volume.create", args, -1, snapshot ? progress_fn() : NULL, &res);
	if (r == 0 && opt_json)
		print_created_event("volume", name, res);
	else if (r == 0)
		printf("%s\n", name);
	json_decref(res);
	return r;
}

static int parse_list_flags(int argc, char **argv, bool *json, bool *quiet)
{
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			*json = true;
		else if (quiet && (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0))
			*quiet = true;
		else
			return fail_usage("unexpected argument %s", argv[i]);
	}
	return 0;
}

static int cmd_ls(int argc, char **argv)
{
	bool json = false, quiet = false;
	int r = parse_list_flags(argc, argv, &json, &quiet);
	if (r)
		return r;
	json_t *res = NULL;
	if ((r = call("volume.list", NULL, -1, &res)) != 0)
		return r;
	if (json) {
		print_json(res);
	} else {
		size_t i;
		json_t *v;
		if (!quiet)
			printf("%-40s %-30s %-20s %s\n", "NAME", "SOURCE", "CREATED", "IN USE");
		json_array_foreach(res, i, v) {
			const char *name = json_string_value(json_object_get(v, "name"));
			if (quiet) {
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

static int for_each_name(const char *op, int argc, char **argv, bool print_result)
{
	if (argc > 0 && strcmp(argv[0], "--") == 0)
		argc--, argv++;
	if (argc < 1)
		return fail_usage("%s needs at least one name", op);
	int worst = 0;
	json_t *all = print_result ? json_array() : NULL;
	for (int i = 0; i < argc; i++) {
		json_t *res = NULL;
		int r = call(op, json_pack("{s:s}", "name", argv[i]), -1, &res);
		if (r) {
			worst = worst ? worst : r;
			continue;
		}
		if (print_result)
			json_array_append(all, res);
		else
			printf("%s\n", argv[i]);
		json_decref(res);
	}
	if (print_result) {
		/* One object for one name (the common case), else an array. */
		if (argc == 1 && json_array_size(all) == 1)
			print_json(json_array_get(all, 0));
		else if (json_array_size(all) > 0)
			print_json(all);
		json_decref(all);
	}
	return worst;
}

static int cmd_cache_import(int argc, char **argv)
{
	char *pos[2];
	int npos = 0;
	bool options = true;
	for (int i = 0; i < argc; i++) {
		if (options && strcmp(argv[i], "--") == 0)
			options = false;
		else if (options && strcmp(argv[i], "--json") == 0)
			opt_json = true;
		else if (options && argv[i][0] == '-' && argv[i][1])
			return fail_usage("unknown option %s", argv[i]);
		else if (npos < 2)
			pos[npos++] = argv[i];
		else
			return fail_usage("unexpected argument %s", argv[i]);
	}
	if (npos != 2)
		return fail_usage("%s", "usage: volmgr cache import NAME DIR [--json]");
	argv = pos;
	/* The daemon reads the tree through this fd: it sees exactly what
	 * this process sees at DIR, in this process's mount namespace. */
	int fd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "volmgr: cannot open %s: %m\n", argv[1]);
		return errno == ENOENT ? VM_EXIT_NOT_FOUND : VM_EXIT_INVALID;
	}
	json_t *res = NULL;
	int r = call_progress("cache.import", json_pack("{s:s}", "name", argv[0]), fd,
			      progress_fn(), &res); /* takes fd */
	if (r == 0 && opt_json)
		print_created_event("cache", argv[0], res);
	else if (r == 0)
		printf("%s: %lld files, %lld directories, %lld bytes\n", argv[0],
		       (long long)json_integer_value(json_object_get(res, "files")),
		       (long long)json_integer_value(json_object_get(res, "dirs")),
		       (long long)json_integer_value(json_object_get(res, "bytes")));
	json_decref(res);
	return r;
}

static int cmd_cache_ls(int argc, char **argv)
{
	bool json = false;
	int r = parse_list_flags(argc, argv, &json, NULL);
	if (r)
		return r;
	json_t *res = NULL;
	if ((r = call("cache.list", NULL, -1, &res)) != 0)
		return r;
	if (json) {
		print_json(res);
	} else {
		size_t i;
		json_t *v;
		printf("%-40s %s\n", "NAME", "CREATED");
		json_array_foreach(res, i, v)
			printf("%-40s %.19s\n", json_string_value(json_object_get(v, "name")),
			       json_string_value(json_object_get(v, "created")) ?: "");
	}
	json_decref(res);
	return 0;
}

static int cmd_cache_create(int argc, char **argv)
{
	const char *name = NULL, *url = NULL, *branch = NULL;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--git") == 0 && i + 1 < argc)
			url = argv[++i];
		else if (strncmp(argv[i], "--git=", 6) == 0)
			url = argv[i] + 6;
		else if (strcmp(argv[i], "--branch") == 0 && i + 1 < argc)
			branch = argv[++i];
		else if (strncmp(argv[i], "--branch=", 9) == 0)
			branch = argv[i] + 9;
		else if (argv[i][0] == '-' && argv[i][1])
			return fail_usage("unknown option %s", argv[i]);
		else if (!name)
			name = argv[i];
		else
			return fail_usage("unexpected argument %s", argv[i]);
	}
	if (!name || !url)
		return fail_usage("%s", "usage: volmgr cache create NAME --git URL [--branch BRANCH]");
	json_t *args = json_pack("{s:s, s:s}", "name", name, "git", url);
	if (branch)
		json_object_set_new(args, "branch", json_string(branch));
	json_t *res = NULL;
	int r = call("cache.create", args, -1, &res);
	if (r == 0)
		printf("%s: %s at %s (%.12s)\n", name, url,
		       json_string_value(json_object_get(res, "branch")),
		       json_string_value(json_object_get(res, "commit")));
	json_decref(res);
	return r;
}

static int cmd_cache_update(int argc, char **argv)
{
	if (argc != 1)
		return fail_usage("%s", "usage: volmgr cache update NAME");
	json_t *res = NULL;
	int r = call("cache.update", json_pack("{s:s}", "name", argv[0]), -1, &res);
	if (r == 0)
		printf("%s: generation %lld, %.12s -> %.12s\n", argv[0],
		       (long long)json_integer_value(json_object_get(res, "generation")),
		       json_string_value(json_object_get(res, "previous_commit")),
		       json_string_value(json_object_get(res, "commit")));
	json_decref(res);
	return r;
}

static int cmd_cache(int argc, char **argv)
{
	if (argc < 1)
		return fail_usage("%s", "cache needs a subcommand: import, create, update, ls, inspect, rm");
	const char *sub = argv[0];
	if (strcmp(sub, "import") == 0)
		return cmd_cache_import(argc - 1, argv + 1);
	if (strcmp(sub, "create") == 0)
		return cmd_cache_create(argc - 1, argv + 1);
	if (strcmp(sub, "update") == 0)
		return cmd_cache_update(argc - 1, argv + 1);
	if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0)
		return cmd_cache_ls(argc - 1, argv + 1);
	if (strcmp(sub, "inspect") == 0)
		return for_each_name("cache.inspect", argc - 1, argv + 1, true);
	if (strcmp(sub, "rm") == 0 || strcmp(sub, "remove") == 0)
		return for_each_name("cache.remove", argc - 1, argv + 1, false);
	return fail_usage("unknown cache command %s", sub);
}

static int cmd_which(int argc, char **argv)
{
	bool json = false, mount = false;
	const char *path = NULL;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (strcmp(argv[i], "--mount") == 0)
			mount = true;
		else if (!path)
			path = argv[i];
		else
			return fail_usage("unexpected argument %s", argv[i]);
	}
	if (!path)
		return fail_usage("%s", "usage: volmgr which PATH [--json|--mount]");
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "volmgr: cannot open %s: %m\n", path);
		return errno == ENOENT ? VM_EXIT_NOT_FOUND : VM_EXIT_INVALID;
	}
	json_t *res = NULL;
	int r = call("volume.which", NULL, fd, &res); /* takes fd */
	json_t *mt = json_object_get(res, "mount");
	if (r == 0 && mount && !json_is_true(json_object_get(mt, "volume_top"))) {
		fprintf(stderr, "volmgr: %s is on the volume %s, but what is mounted there is %s, not the volume's top\n",
			path, json_string_value(json_object_get(res, "volume")),
			mt ? json_string_value(json_object_get(mt, "root")) : "unknown");
		r = VM_EXIT_UNSUPPORTED;
	}
	if (r == 0) {
		if (json)
			print_json(res);
		else if (mount)
			printf("%s %s\n", json_string_value(json_object_get(res, "volume")),
			       json_string_value(json_object_get(mt, "target")));
		else
			printf("%s\n", json_string_value(json_object_get(res, "volume")));
	}
	json_decref(res);
	return r;
}

static int cmd_gc(int argc, char **argv)
{
	bool dry = false, json = false;
	json_t *labels = json_object();
	for (int i = 0; i < argc; i++) {
		struct vm_error err = {0};
		const char *kv = NULL;
		if (strcmp(argv[i], "--dry-run") == 0 || strcmp(argv[i], "-n") == 0)
			dry = true;
		else if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (strcmp(argv[i], "--label") == 0 && i + 1 < argc)
			kv = argv[++i];
		else if (strncmp(argv[i], "--label=", 8) == 0)
			kv = argv[i] + 8;
		else {
			json_decref(labels);
			return fail_usage("unexpected argument %s", argv[i]);
		}
		if (kv && vm_label_parse_into(labels, kv, &err) < 0) {
			json_decref(labels);
			fprintf(stderr, "volmgr: %s\n", err.msg);
			return VM_EXIT_INVALID;
		}
	}
	json_t *res = NULL;
	int r = call("gc", json_pack("{s:b, s:o}", "dry_run", dry, "labels", labels), -1, &res);
	if (r != 0)
		return r;
	if (json) {
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
		printf("%s %zu volume(s), %lld bytes\n", dry ? "would free" : "freed",
		       json_array_size(json_object_get(res, "removed")),
		       (long long)json_integer_value(json_object_get(res, "bytes_freed")));
	}
	json_decref(res);
	return 0;
}

/* `volmgr pool ...` runs the helper volmgr-pool: $VOLMGR_POOL_HELPER, or
 * the one next to this binary (a build tree), or the installed one. */
static int cmd_pool(int argc, char **argv)
{
	char self[PATH_MAX], next[PATH_MAX + 16];
	const char *helper = getenv("VOLMGR_POOL_HELPER");
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (!helper && n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(next, sizeof(next), "%s/volmgr-pool", self);
			if (access(next, X_OK) == 0)
				helper = next;
		}
	}
	if (!helper)
		helper = VOLMGR_POOL_HELPER;
	char *args[64];
	if (argc + 2 > (int)ELEMENTSOF(args))
		return fail_usage("%s", "too many arguments");
	args[0] = (char *)"volmgr-pool";
	for (int i = 0; i < argc; i++)
		args[i + 1] = argv[i];
	args[argc + 1] = NULL;
	execv(helper, args);
	fprintf(stderr, "volmgr: cannot run %s: %m\n", helper);
	return VM_EXIT_FAILURE;
}

static int cmd_metrics(int argc, char **argv)
{
	(void)argv;
	if (argc != 0)
		return fail_usage("%s", "metrics takes no arguments");
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

static int cmd_status(int argc, char **argv)
{
	bool json = false;
	int r = parse_list_flags(argc, argv, &json, NULL);
	if (r)
		return r;
	json_t *res = NULL;
	r = call("status", NULL, -1, &res);
	if (r == 0 && json) {
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

int main(int argc, char **argv)
{
	socket_path = getenv("VOLMGR_SOCKET");
	if (!socket_path || !*socket_path)
		socket_path = DEFAULT_SOCKET;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--socket") == 0) {
			if (++i >= argc)
				return fail_usage("%s needs a path", "--socket");
			socket_path = argv[i];
		} else if (strncmp(argv[i], "--socket=", 9) == 0) {
			socket_path = argv[i] + 9;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("volmgr %s\n", VOLMGR_VERSION);
			return 0;
		} else {
			return fail_usage("unknown option %s", argv[i]);
		}
	}
	if (i >= argc) {
		usage(stderr);
		return VM_EXIT_USAGE;
	}
	const char *cmd = argv[i];
	int n = argc - i - 1;
	char **rest = argv + i + 1;
	if (strcmp(cmd, "snapshot") == 0)
		return cmd_create(n, rest, true);
	if (strcmp(cmd, "create") == 0)
		return cmd_create(n, rest, false);
	if (strcmp(cmd, "ls") == 0 || strcmp(cmd, "list") == 0)
		return cmd_ls(n, rest);
	if (strcmp(cmd, "inspect") == 0)
		return for_each_name("volume.inspect", n, rest, true);
	if (strcmp(cmd, "rm") == 0 || strcmp(cmd, "remove") == 0)
		return for_each_name("volume.remove", n, rest, false);
	if (strcmp(cmd, "cache") == 0)
		return cmd_cache(n, rest);
	if (strcmp(cmd, "status") == 0)
		return cmd_status(n, rest);
	if (strcmp(cmd, "which") == 0)
		return cmd_which(n, rest);
	if (strcmp(cmd, "gc") == 0)
		return cmd_gc(n, rest);
	if (strcmp(cmd, "pool") == 0)
		return cmd_pool(n, rest);
	if (strcmp(cmd, "metrics") == 0)
		return cmd_metrics(n, rest);
	if (strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	return fail_usage("unknown command %s", cmd);
}
