/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "cgroup.h"

#include <fcntl.h>
#include <libmount/libmount.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* Preference among equally deep lines of /proc/PID/cgroup: the unified
 * hierarchy, then the hierarchies every container engine uses. */
static int rank(const char *controllers)
{
	static const char *const order[] = {"", "name=systemd", "pids", "memory", "cpu,cpuacct"};
	for (size_t i = 0; i < ELEMENTSOF(order); i++)
		if (strcmp(controllers, order[i]) == 0)
			return (int)i;
	return -1;
}

/* How specific a line's path is: the components naming a container
 * (64 hex digits, as every engine names one), then all components. */
struct depth {
	size_t ids, parts;
};

static struct depth depth(const char *path)
{
	struct depth d = {0, 0};
	for (const char *c = path; *c;) {
		c += strspn(c, "/");
		size_t len = strcspn(c, "/"), run = 0;
		bool id = false;
		for (size_t i = 0; i < len && !id; i++) {
			run = strchr("0123456789abcdef", c[i]) ? run + 1 : 0;
			id = run == 64;
		}
		d.ids += id;
		d.parts += len > 0;
		c += len;
	}
	return d;
}

static int depth_cmp(struct depth a, struct depth b)
{
	if (a.ids != b.ids)
		return a.ids < b.ids ? -1 : 1;
	return a.parts < b.parts ? -1 : a.parts > b.parts;
}

/* PROC/PID/cgroup into buf (bounded), NUL-terminated. */
static int read_cgroup_file(const char *proc, pid_t pid, char *buf, size_t size)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%d/cgroup", proc, (int)pid);
	_cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, buf + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0 || (len += (size_t)n) == size - 1)
			break;
	}
	buf[len] = '\0';
	return 0;
}

/* One line of /proc/PID/cgroup, "ID:CONTROLLERS:PATH": its controllers
 * field and path, not terminated. */
struct cg_line {
	const char *ctrl, *path;
	size_t cl, pl;
};

/* The next line from *pos on (which it advances), skipping any without
 * two colons; false at the end of text. */
static bool next_line(const char **pos, struct cg_line *ret)
{
	while (**pos) {
		const char *l = *pos;
		size_t ll = strcspn(l, "\n");
		*pos = l + ll + (l[ll] == '\n');
		const char *c1 = memchr(l, ':', ll);
		const char *c2 = c1 ? memchr(c1 + 1, ':', ll - (size_t)(c1 + 1 - l)) : NULL;
		if (!c2)
			continue;
		*ret = (struct cg_line){.ctrl = c1 + 1, .cl = (size_t)(c2 - c1 - 1),
					.path = c2 + 1, .pl = ll - (size_t)(c2 + 1 - l)};
		return true;
	}
	return false;
}

int vm_cgroup_of_pid(const char *proc, pid_t pid, char ret[static VM_CGROUP_MAX + 1])
{
	/* /proc files have no size: read up to a bound. */
	enum { CAP = 16384 };
	_cleanup_free_ char *text = malloc(CAP + 1);
	if (!text)
		return -ENOMEM;
	int r = read_cgroup_file(proc, pid, text, CAP + 1);
	if (r < 0)
		return r;
	/* The line naming the most containers wins, then the deepest: the
	 * kernel lists the unified hierarchy even where no cgroup2 is
	 * mounted (a cgroup v1 host), and there, or on a hybrid host, an
	 * engine with the cgroupfs driver places its containers in the v1
	 * hierarchies only -- the unified line then names the engine's own
	 * container (podman in a runner container), or none. */
	int best = -1;
	struct depth best_depth = {0, 0};
	ret[0] = '\0';
	const char *pos = text;
	struct cg_line l;
	while (next_line(&pos, &l)) {
		if (l.cl + 1 + l.pl > VM_CGROUP_MAX)
			continue;
		/* "CONTROLLERS\0PATH", then ':' for the answer */
		char line[VM_CGROUP_MAX + 1];
		memcpy(line, l.ctrl, l.cl);
		line[l.cl] = '\0';
		memcpy(line + l.cl + 1, l.path, l.pl);
		line[l.cl + 1 + l.pl] = '\0';
		int rk = rank(line);
		struct depth d = depth(line + l.cl + 1);
		int cmp = depth_cmp(d, best_depth);
		if (rk < 0 || d.parts == 0 || (best >= 0 && (cmp < 0 || (cmp == 0 && rk >= best))))
			continue;
		line[l.cl] = ':';
		memcpy(ret, line, l.cl + 1 + l.pl + 1);
		best = rk;
		best_depth = d;
	}
	return 0;
}

int vm_cgroup_pid_within(const char *proc, pid_t pid, pid_t top)
{
	enum { MAX = 16384 };
	_cleanup_free_ char *a = malloc(MAX), *b = malloc(MAX);
	if (!a || !b)
		return -ENOMEM;
	int r = read_cgroup_file(proc, pid, a, MAX);
	if (r < 0 || (r = read_cgroup_file(proc, top, b, MAX)) < 0)
		return r;
	const char *tpos = b;
	struct cg_line t;
	while (next_line(&tpos, &t)) {
		/* The caller's path in the same hierarchy, if it has one. */
		const char *ppos = a;
		struct cg_line p;
		bool found = false;
		while (!found && next_line(&ppos, &p))
			found = p.cl == t.cl && strncmp(p.ctrl, t.ctrl, t.cl) == 0;
		/* "/" covers everything; otherwise the path or below it */
		bool root = t.pl == 1 && t.path[0] == '/';
		if (found && !root &&
		    !(p.pl >= t.pl && strncmp(p.path, t.path, t.pl) == 0 &&
		      (p.pl == t.pl || p.path[t.pl] == '/')))
			return 0;
	}
	return 1;
}

int vm_cgroup_exists(const char *spec)
{
	const char *colon = strchr(spec, ':');
	if (!spec[0] || !colon)
		return 1; /* the root, or unknown: always there */
	char ctrl[64];
	snprintf(ctrl, sizeof(ctrl), "%.*s", (int)(colon - spec), spec);
	const char *path = colon + 1;
	if (path[0] != '/' || strstr(path, "/.."))
		return -EINVAL;
	struct libmnt_table *tb = mnt_new_table_from_file("/proc/self/mountinfo");
	if (!tb)
		return -EIO;
	struct libmnt_iter *it = mnt_new_iter(MNT_ITER_FORWARD);
	struct libmnt_fs *fs;
	int r = -ENOENT;
	while (it && mnt_table_next_fs(tb, it, &fs) == 0) {
		const char *type = mnt_fs_get_fstype(fs);
		bool match;
		if (!ctrl[0])
			match = type && strcmp(type, "cgroup2") == 0;
		else if (strncmp(ctrl, "name=", 5) == 0) {
			/* a named hierarchy: the option is name=VALUE */
			char *v = NULL;
			size_t vl = 0;
			match = type && strcmp(type, "cgroup") == 0 &&
				mnt_fs_get_option(fs, "name", &v, &vl) == 0 && v &&
				vl == strlen(ctrl + 5) && strncmp(v, ctrl + 5, vl) == 0;
		} else
			match = type && strcmp(type, "cgroup") == 0 &&
				mnt_fs_get_option(fs, ctrl, NULL, NULL) == 0;
		/* a v1 hierarchy with several controllers: "cpu,cpuacct" */
		if (!match && ctrl[0] && type && strcmp(type, "cgroup") == 0 && strchr(ctrl, ',')) {
			char first[64];
			snprintf(first, sizeof(first), "%.*s", (int)strcspn(ctrl, ","), ctrl);
			match = mnt_fs_get_option(fs, first, NULL, NULL) == 0;
		}
		if (!match || strcmp(mnt_fs_get_root(fs) ?: "", "/") != 0)
			continue;
		char full[PATH_MAX];
		snprintf(full, sizeof(full), "%s%s", mnt_fs_get_target(fs), path);
		struct stat st;
		r = stat(full, &st) == 0 ? 1 : (errno == ENOENT ? 0 : -errno);
		break;
	}
	mnt_free_iter(it);
	mnt_unref_table(tb);
	return r;
}
