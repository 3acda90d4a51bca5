/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A small driver of vm_copy_tree for the tests (built, not installed):
 *
 *   vm-copy [--data copy|reflink] [--io auto|uring|syscalls]
 *           [--no-openat2] [--reader UID:GID] [--progress] [--read-first]
 *           [--no-new-devices] [--no-xattrs] SRC DST
 *
 * copies the tree SRC into the empty directory DST and prints the report
 * as one JSON object on stdout.  Exit 0 on success, 1 if the copy failed
 * (the JSON then has "error" and "errno"), 2 on bad usage.
 * --no-openat2 forces the O_NOFOLLOW fallback of every fd-relative open;
 * --progress counts the progress calls and checks the last one is done;
 * --read-first reads SRC's directory fd to its end before the copy (the
 * engine must read its own open file description, not the caller's);
 * --no-new-devices: no device node can appear in SRC (src_no_new_devices);
 * --no-xattrs: SRC has no extended attributes (src_no_xattrs). */
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "copy.h"

struct progress_seen {
	unsigned calls, done_calls;
	struct vm_copy_progress last;
};

static void on_progress(const struct vm_copy_progress *p, void *userdata)
{
	struct progress_seen *s = userdata;
	s->calls++;
	s->done_calls += p->done;
	s->last = *p;
}

static int usage(void)
{
	fprintf(stderr, "usage: vm-copy [--data copy|reflink] [--io auto|uring|syscalls] "
			"[--no-openat2] [--reader UID:GID] [--progress] [--read-first] [--no-new-devices] "
			"[--no-xattrs] SRC DST\n");
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"data", required_argument, NULL, 'd'},
		{"io", required_argument, NULL, 'i'},
		{"no-openat2", no_argument, NULL, 'n'},
		{"reader", required_argument, NULL, 'r'},
		{"progress", no_argument, NULL, 'p'},
		{"read-first", no_argument, NULL, 'f'},
		{"no-new-devices", no_argument, NULL, 'z'},
		{"no-xattrs", no_argument, NULL, 'x'},
		{0},
	};
	struct vm_copy_opts opts = {0};
	struct vm_reader reader = {0};
	struct progress_seen seen = {0};
	bool read_first = false;
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (strcmp(optarg, "copy") == 0)
				opts.data = VM_COPY_DATA_COPY;
			else if (strcmp(optarg, "reflink") == 0)
				opts.data = VM_COPY_DATA_REFLINK;
			else
				return usage();
			break;
		case 'i':
			if (strcmp(optarg, "auto") == 0)
				opts.io = VM_COPY_IO_AUTO;
			else if (strcmp(optarg, "uring") == 0)
				opts.io = VM_COPY_IO_URING;
			else if (strcmp(optarg, "syscalls") == 0)
				opts.io = VM_COPY_IO_SYSCALLS;
			else
				return usage();
			break;
		case 'n':
			vm_openat_force_fallback(true);
			break;
		case 'r':
			if (sscanf(optarg, "%u:%u", &reader.uid, &reader.gid) != 2)
				return usage();
			opts.reader = &reader;
			break;
		case 'p':
			opts.progress = on_progress;
			opts.progress_userdata = &seen;
			opts.progress_interval_ns = 1000000; /* 1 ms: see several */
			break;
		case 'f':
			read_first = true;
			break;
		case 'z':
			opts.src_no_new_devices = true;
			break;
		case 'x':
			opts.src_no_xattrs = true;
			break;
		default:
			return usage();
		}
	}
	if (argc - optind != 2)
		return usage();
	int src = open(argv[optind], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int dst = open(argv[optind + 1], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (src < 0 || dst < 0) {
		perror("vm-copy: open");
		return 2;
	}
	if (read_first) {
		char buf[4096];
		long n;
		while ((n = syscall(SYS_getdents64, src, buf, sizeof(buf))) > 0)
			;
		if (n < 0) {
			perror("vm-copy: getdents64");
			return 2;
		}
	}
	struct vm_copy_report rep;
	struct vm_error err = {0};
	int r = vm_copy_tree(src, dst, &opts, &rep, &err);
	json_t *o = json_pack(
		"{s:b, s:s, s:s, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
		"ok", r == 0, "io_used", vm_copy_io_name(rep.io_used),
		"io_reason", rep.io_reason, "elapsed_ns", (json_int_t)rep.elapsed_ns,
		"stats", "files", (json_int_t)rep.stats.files, "dirs",
		(json_int_t)rep.stats.dirs, "symlinks", (json_int_t)rep.stats.symlinks,
		"others", (json_int_t)rep.stats.others, "hardlinks",
		(json_int_t)rep.stats.hardlinks, "bytes", (json_int_t)rep.stats.bytes,
		"skipped", (json_int_t)rep.stats.skipped, "xattrs", (json_int_t)rep.stats.xattrs);
	if (r < 0) {
		json_object_set_new(o, "error", json_string(err.msg));
		json_object_set_new(o, "errno", json_integer(-r));
	}
	if (opts.progress)
		json_object_set_new(o, "progress",
				    json_pack("{s:I, s:I, s:I, s:I, s:b}", "calls",
					      (json_int_t)seen.calls, "done_calls",
					      (json_int_t)seen.done_calls, "files",
					      (json_int_t)seen.last.files, "bytes",
					      (json_int_t)seen.last.bytes, "last_done",
					      seen.last.done));
	char *s = json_dumps(o, JSON_COMPACT);
	puts(s);
	free(s);
	json_decref(o);
	return r == 0 ? 0 : 1;
}
