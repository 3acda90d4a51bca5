/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "inuse.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "names.h"

/* ---- one mountinfo line ----
 *
 *   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
 *   id parent major:minor root mountpoint options [optional...] - fstype source superopts
 *
 * The kernel escapes space, tab, newline and backslash in paths as \ooo
 * (fs/proc_namespace.c, seq_path_root and mangle); overlay's layer
 * options escape more (',', '=' and ':' among them). */

/* Undo \ooo escapes (and a backslash before any other character) in place. */
static void unescape(char *s)
{
	char *w = s;
	for (const char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') << 6 | (r[2] - '0') << 3 | (r[3] - '0'));
			r += 3;
		} else if (r[0] == '\\' && r[1]) {
			*w++ = *++r;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

/* One namespace's table as it is read: the counts, the overlay layers
 * that name a volume's path, and the mounts that may decide what such a
 * path is in that namespace. */
struct ns_ctx {
	const struct vm_inuse_where *w;
	json_t *found;
	struct layer {
		char *path;
	} layers[VM_INUSE_LAYERS_MAX];
	size_t n_layers;
	struct mnt {
		char *mountpoint, *root;
		dev_t dev;
	} *mnts;
	size_t n_mnts, cap_mnts;
	bool mnts_full; /* more mounts on the way to volumes/ than kept */
};

static void ns_ctx_done(struct ns_ctx *c)
{
	for (size_t i = 0; i < c->n_layers; i++)
		free(c->layers[i].path);
	for (size_t i = 0; i < c->n_mnts; i++) {
		free(c->mnts[i].mountpoint);
		free(c->mnts[i].root);
	}
	free(c->mnts);
}

/* NAME, n bytes: counted if it can be a volume's name (and is one, when
 * the caller says which are): what a namespace's table can make us
 * count is bounded by the volumes, not by its mounts. */
static bool countable(const struct vm_inuse_where *w, const char *name, size_t n,
		      char key[static VM_NAME_MAX + 1])
{
	if (n == 0 || n > VM_NAME_MAX)
		return false;
	memcpy(key, name, n);
	key[n] = '\0';
	if (vm_name_check("volume", key, NULL) < 0)
		return false; /* no volume can have that name */
	return !w->names || json_object_get(w->names, key);
}

static void add_count(const struct vm_inuse_where *w, json_t *counts, const char *name,
		      size_t n)
{
	char key[VM_NAME_MAX + 1];
	if (!countable(w, name, n, key))
		return;
	json_t *c = json_object_get(counts, key);
	json_object_set_new(counts, key, json_integer(c ? json_integer_value(c) + 1 : 1));
}

/* path is prefix/NAME or beneath it: its NAME (length), else NULL. */
static const char *name_beneath(const char *path, const char *prefix, size_t *ret_len)
{
	size_t pl = strlen(prefix);
	if (strncmp(path, prefix, pl) != 0 || path[pl] != '/')
		return NULL;
	const char *name = path + pl + 1;
	*ret_len = strcspn(name, "/");
	return name;
}

/* Split s at the first unescaped separator: returns the rest, or NULL. */
static char *split_unescaped(char *s, char sep)
{
	for (char *p = s; *p; p++) {
		if (*p == '\\' && p[1]) {
			p++;
			continue;
		}
		if (*p == sep) {
			*p = '\0';
			return p + 1;
		}
	}
	return NULL;
}

/* Is mount point m a path prefix of p ("/a" of "/a" and "/a/b", not of
 * "/ab")?  Then the length of the rest of p. */
static bool path_prefix(const char *m, const char *p, size_t *ret_rest)
{
	size_t ml = strcmp(m, "/") == 0 ? 0 : strlen(m);
	if (strncmp(p, m, ml) != 0 || (p[ml] != '/' && p[ml] != '\0'))
		return false;
	*ret_rest = ml;
	return true;
}

/* An overlay layer whose path is in the volumes directory: kept until the
 * namespace's whole table is read, then counted only if that namespace's
 * own mounts put the path on the pool, inside a volume (which one is what
 * the mounts say, not the path) --
 * a path string alone proves nothing (anyone may mount a tmpfs there in
 * a user namespace of their own). */
static void note_layer(struct ns_ctx *c, const char *path)
{
	size_t n;
	if (!name_beneath(path, c->w->layer_path, &n) || n == 0 ||
	    c->n_layers >= VM_INUSE_LAYERS_MAX)
		return;
	char *copy = strdup(path);
	if (copy)
		c->layers[c->n_layers++].path = copy;
}

/* A mount that may cover a layer path: on the way to the volumes
 * directory, or beneath it. */
static void note_mount(struct ns_ctx *c, const char *mountpoint, const char *root, dev_t dev)
{
	size_t rest;
	const char *lp = c->w->layer_path;
	bool on_the_way = path_prefix(mountpoint, lp, &rest);
	bool beneath = path_prefix(lp, mountpoint, &rest);
	if (!on_the_way && !beneath)
		return;
	if (c->n_mnts == c->cap_mnts) {
		if (c->cap_mnts >= VM_INUSE_COVER_MAX) {
			c->mnts_full = true;
			return;
		}
		size_t cap = c->cap_mnts ? c->cap_mnts * 2 : 16;
		struct mnt *n = realloc(c->mnts, cap * sizeof(*n));
		if (!n) {
			c->mnts_full = true;
			return;
		}
		c->mnts = n;
		c->cap_mnts = cap;
	}
	struct mnt *m = &c->mnts[c->n_mnts];
	m->mountpoint = strdup(mountpoint);
	m->root = strdup(root);
	m->dev = dev;
	if (!m->mountpoint || !m->root) {
		free(m->mountpoint);
		free(m->root);
		c->mnts_full = true;
		return;
	}
	c->n_mnts++;
}

/* After the table: each layer resolved through the mount that covers
 * its path there (the longest mount point on its way; of mounts stacked
 * on one point, the last). */
static void resolve_layers(struct ns_ctx *c)
{
	if (c->mnts_full)
		return; /* cannot tell what covers them: the engines' Mount does */
	for (size_t i = 0; i < c->n_layers; i++) {
		const char *p = c->layers[i].path;
		const struct mnt *best = NULL;
		size_t best_len = 0, rest;
		for (size_t k = 0; k < c->n_mnts; k++)
			if (path_prefix(c->mnts[k].mountpoint, p, &rest) &&
			    (!best || rest >= best_len)) {
				best = &c->mnts[k];
				best_len = rest;
			}
		if (!best || best->dev != c->w->sb_dev)
			continue;
		char fs_path[PATH_MAX * 2];
		const char *root = strcmp(best->root, "/") == 0 ? "" : best->root;
		if (snprintf(fs_path, sizeof(fs_path), "%s%s", root, p + best_len) >=
		    (int)sizeof(fs_path))
			continue;
		size_t n;
		const char *name = name_beneath(fs_path, c->w->prefix, &n);
		if (name)
			add_count(c->w, c->found, name, n);
	}
}

/* Overlay layers (lowerdir, lowerdir+, datadir+, upperdir, workdir). */
static void scan_overlay_options(struct ns_ctx *c, char *opts)
{
	static const char *const keys[] = {"lowerdir=", "lowerdir+=", "datadir+=", "upperdir=",
					   "workdir="};
	for (char *opt = opts, *next; opt; opt = next) {
		next = split_unescaped(opt, ',');
		for (size_t k = 0; k < ELEMENTSOF(keys); k++) {
			size_t kl = strlen(keys[k]);
			if (strncmp(opt, keys[k], kl) != 0)
				continue;
			for (char *layer = opt + kl, *more; layer; layer = more) {
				more = split_unescaped(layer, ':');
				unescape(layer);
				note_layer(c, layer);
			}
		}
	}
}

static void scan_line(struct ns_ctx *c, char *line)
{
	const struct vm_inuse_where *w = c->w;
	char *f[6];
	char *p = line;
	for (size_t i = 0; i < ELEMENTSOF(f); i++) {
		f[i] = p;
		p = strchr(p, ' ');
		if (!p)
			return; /* not a mount line: skip it, never the lines after */
		*p++ = '\0';
	}
	/* f[2] major:minor, f[3] root, f[4] mount point; then optional
	 * fields up to "-". */
	char *colon = strchr(f[2], ':'), *end;
	if (!colon)
		return;
	errno = 0;
	unsigned long maj = strtoul(f[2], &end, 10), min;
	if (end != colon || errno)
		return;
	min = strtoul(colon + 1, &end, 10);
	if (*end || errno)
		return;
	dev_t dev = makedev(maj, min);
	unescape(f[3]);
	if (dev == w->sb_dev) {
		size_t n;
		const char *name = name_beneath(f[3], w->prefix, &n);
		if (name)
			add_count(w, c->found, name, n);
	}
	if (!w->layer_path)
		return;
	unescape(f[4]);
	note_mount(c, f[4], f[3], dev);
	/* The optional fields end with a lone "-": fstype, source, options. */
	char *sep = strstr(p, "- ");
	while (sep && sep != p && sep[-1] != ' ')
		sep = strstr(sep + 1, "- ");
	if (!sep)
		return;
	char *fstype = sep + 2, *source = strchr(fstype, ' ');
	if (!source)
		return;
	*source++ = '\0';
	char *opts = strchr(source, ' ');
	if (opts && strcmp(fstype, "overlay") == 0)
		scan_overlay_options(c, opts + 1);
}

void vm_inuse_scan_line(char *line, const struct vm_inuse_where *w, json_t *counts)
{
	struct ns_ctx c = {.w = w, .found = counts};
	scan_line(&c, line);
	resolve_layers(&c);
	ns_ctx_done(&c);
}

int vm_inuse_scan_mountinfo(const char *path, const struct vm_inuse_where *w, json_t *counts)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* Lines are parsed where they were read; only a line cut by the
	 * end of a read is gathered in `line` first. */
	enum { CHUNK = 256 * 1024 };
	_cleanup_free_ char *buf = malloc(CHUNK + 1);
	_cleanup_free_ char *line = NULL;
	size_t llen = 0, lcap = 0;
	/* Counts go to a scratch object first: a read that fails half way
	 * adds nothing (the caller then treats the process as unreadable). */
	struct ns_ctx c = {.w = w, .found = json_object()};
	if (!buf || !c.found) {
		json_decref(c.found);
		return -ENOMEM;
	}
	int r = 0;
	for (;;) {
		ssize_t n = read(fd, buf, CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		buf[n] = '\0';
		char *s = buf, *e = buf + n;
		while (s < e) {
			char *nl = memchr(s, '\n', (size_t)(e - s));
			size_t part = (size_t)((nl ? nl : e) - s);
			if (llen > 0 || !nl) {
				/* A line spread over reads: gather it, bounded. */
				if (llen + part > VM_INUSE_LINE_MAX) {
					r = -E2BIG;
					goto out;
				}
				if (llen + part + 1 > lcap) {
					size_t cap = (llen + part + 1) * 2;
					char *np = realloc(line, cap);
					if (!np) {
						r = -ENOMEM;
						goto out;
					}
					line = np;
					lcap = cap;
				}
				memcpy(line + llen, s, part);
				llen += part;
				line[llen] = '\0';
				if (nl) {
					scan_line(&c, line);
					llen = 0;
				}
			} else {
				*nl = '\0';
				scan_line(&c, s);
			}
			s += part + (nl ? 1 : 0);
		}
	}
	if (r == 0 && llen > 0)
		scan_line(&c, line);
out:
	if (r == 0) {
		resolve_layers(&c);
		const char *k;
		json_t *v;
		json_object_foreach(c.found, k, v) {
			json_t *have = json_object_get(counts, k);
			json_object_set_new(counts, k,
					    json_integer(json_integer_value(v) +
							 (have ? json_integer_value(have) : 0)));
		}
	}
	json_decref(c.found);
	ns_ctx_done(&c);
	return r;
}

/* Mount namespaces already read in this scan, by inode of ns/mnt. */
struct vm_inuse_seen {
	ino_t *v;
	size_t n, cap;
};

static bool ns_seen_has(const struct vm_inuse_seen *s, ino_t ino)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == ino)
			return true;
	return false;
}

static void ns_seen_add(struct vm_inuse_seen *s, ino_t ino)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		ino_t *n = realloc(s->v, cap * sizeof(*n));
		if (!n)
			return; /* read it again rather than miss it */
		s->v = n;
		s->cap = cap;
	}
	s->v[s->n++] = ino;
}

/* Errors that mean the process has no mounts left to read: it exited
 * (ENOENT, ESRCH) or is exiting or a zombie, whose mount namespace is
 * already gone (EINVAL from /proc/PID/mountinfo).  Processes come and go
 * during every scan; treating these as "unreadable" made the scan fail
 * closed and refused about one rm in 1,700 under load. */
static bool process_gone(int e)
{
	return e == ENOENT || e == ESRCH || e == EINVAL;
}

/* A thread group whose leader has exited while other threads run (a
 * zombie leader): the leader's ns link and mountinfo look gone, but the
 * mounts live on in its threads' view.  Read the first live thread's.
 * 1 if one was read, 0 if none is left, -errno if one cannot be read. */
static int scan_threads(const char *proc, const char *pid, const struct vm_inuse_where *w,
			json_t *counts)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s/task", proc, pid);
	DIR *d = opendir(p);
	if (!d)
		return 0;
	int r = 0;
	struct dirent *de;
	while (r == 0 && (de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9' || strcmp(de->d_name, pid) == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s/task/%s/mountinfo", proc, pid, de->d_name);
		int e = vm_inuse_scan_mountinfo(p, w, counts);
		if (e == 0)
			r = 1;
		else if (!process_gone(-e) && access(p, R_OK) == 0)
			r = -EIO; /* still there, and not parsed: do not guess */
	}
	closedir(d);
	return r;
}

int vm_inuse_scan_pid(const char *proc, const char *pid, const struct vm_inuse_where *w,
		      json_t *counts, struct vm_inuse_seen *seen)
{
	char p[PATH_MAX];
	struct stat st;
	bool have_ns = false;
	snprintf(p, sizeof(p), "%s/%s/ns/mnt", proc, pid);
	if (stat(p, &st) == 0) {
		if (seen && ns_seen_has(seen, st.st_ino))
			return 0; /* this namespace was read already */
		have_ns = true;
	} else if (process_gone(errno)) {
		/* exited, a kernel thread, or a leader whose threads live on */
		return scan_threads(proc, pid, w, counts);
	}
	/* Not allowed to follow the namespace link (PID 1 on some hosts):
	 * read its mountinfo all the same, without dedup. */
	snprintf(p, sizeof(p), "%s/%s/mountinfo", proc, pid);
	int r = vm_inuse_scan_mountinfo(p, w, counts);
	if (r < 0) {
		if (process_gone(-r))
			return scan_threads(proc, pid, w, counts);
		/* Gone between the open and the read: nothing left to count.
		 * Still there (out of memory, a line over the bound, a read
		 * error): unreadable, so the scan fails closed rather than
		 * call a volume in use free. */
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return process_gone(errno) ? scan_threads(proc, pid, w, counts) : -errno;
		close(fd);
		return r == -ENOMEM || r == -E2BIG ? r : -EIO;
	}
	/* Only a namespace actually read counts as seen: if the process we
	 * looked at first exits before its mountinfo is read, another
	 * process of the same namespace must still be read, or the
	 * namespace's mounts would be missed (a volume in use would look
	 * free). */
	if (seen && have_ns)
		ns_seen_add(seen, st.st_ino);
	return 1;
}

int vm_inuse_scan(const char *proc, const struct vm_inuse_where *w, json_t **ret,
		  unsigned *ret_unreadable, struct vm_error *err)
{
	unsigned unreadable = 0;
	json_t *counts = json_object();
	if (!counts)
		return vm_error_set(err, ENOMEM, "out of memory");
	DIR *d = opendir(proc);
	if (!d) {
		json_decref(counts);
		return vm_error_errno(err, errno, "cannot read %s", proc);
	}
	struct vm_inuse_seen seen = {0};
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		if (vm_inuse_scan_pid(proc, de->d_name, w, counts, &seen) < 0)
			unreadable++;
	}
	closedir(d);
	free(seen.v);
	*ret = counts;
	if (ret_unreadable)
		*ret_unreadable = unreadable;
	return 0;
}
