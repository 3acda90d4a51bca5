/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What git reads from a repository besides objects and refs, and what
 * volmgr does about each (git 2.39: setup.c, config.c, attr.c,
 * object-file.c, remote.c; Documentation/gitrepository-layout.txt):
 *
 *  .git a file ("gitdir: PATH") or a link  git works in PATH: refused
 *  config, and what it includes            replaced (include.path,
 *      (include.path, includeIf.*.path)     core.worktree, extensions.*,
 *                                           filters, hooksPath, fsmonitor,
 *                                           sshCommand, remote commands,
 *                                           credential helpers, aliases,
 *                                           url.*.insteadOf, submodule.*
 *                                           all go with it)
 *  config.worktree                          read with
 *                                           extensions.worktreeConfig:
 *                                           removed (and the new config
 *                                           has no extension)
 *  commondir                                config, objects and refs from
 *                                           another directory: removed
 *  objects/info/alternates, http-alternates objects from elsewhere:
 *                                           removed
 *  info/attributes                          attributes (filter= and the
 *                                           like name drivers, which only
 *                                           config defines): removed
 *  hooks/                                   never run: core.hooksPath is
 *                                           /dev/null (gitrun.c)
 *  remotes/, branches/                      read only for a remote the
 *                                           config does not define:
 *                                           origin always is
 *  modules/ (submodules' repositories)      never entered: no recursion
 *                                           (gitrun.c)
 *
 * The tree belongs to the git user, who may change it at any time; root
 * only opens directories beneath treefd without following links, removes
 * names (unlinkat never follows a link), and creates one new file with
 * O_EXCL | O_NOFOLLOW whose owner it sets through its own fd before it
 * renames it over "config": it never writes to, or changes the owner of,
 * anything the git user made. */
#include "gitrepo.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "names.h"
#include "record.h"
#include "tree.h"

/* The config volmgr gives every checkout: "origin" at url (checked when
 * the record was read, checked again here), with the standard refspec, and
 * the branch's upstream.  No other setting. */
static int config_text(const char *url, const char *branch, char **ret, struct vm_error *err)
{
	int r;
	if ((r = vm_git_url_check(url, err)) < 0 || (branch && branch[0] && (r = vm_rev_check(branch, err)) < 0))
		return r;
	/* A quoted value: only '"' and '\' need a backslash (the URL is
	 * printable ASCII without spaces). */
	char quoted[2 * VM_GIT_URL_MAX + 1];
	size_t q = 0;
	for (const char *p = url; *p; p++) {
		if (*p == '"' || *p == '\\')
			quoted[q++] = '\\';
		quoted[q++] = *p;
	}
	quoted[q] = '\0';
	char *text = NULL;
	int n;
	if (branch && branch[0])
		n = asprintf(&text,
			     "# Written by volmgr before each git run; any other setting is removed.\n"
			     "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n"
			     "\tbare = false\n\tlogallrefupdates = true\n"
			     "[remote \"origin\"]\n\turl = \"%s\"\n"
			     "\tfetch = +refs/heads/*:refs/remotes/origin/*\n"
			     "[branch \"%s\"]\n\tremote = origin\n\tmerge = refs/heads/%s\n",
			     quoted, branch, branch);
	else
		n = asprintf(&text,
			     "# Written by volmgr before each git run; any other setting is removed.\n"
			     "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n"
			     "\tbare = false\n\tlogallrefupdates = true\n"
			     "[remote \"origin\"]\n\turl = \"%s\"\n"
			     "\tfetch = +refs/heads/*:refs/remotes/origin/*\n",
			     quoted);
	if (n < 0)
		return vm_error_set(err, ENOMEM, "out of memory");
	*ret = text;
	return 0;
}

/* dirfd/name as a directory: *ret = -1 if it does not exist; refused if
 * it is anything but a directory on the same file system. */
static int open_dir(int dirfd, const char *name, const char *what, int *ret, struct vm_error *err)
{
	int fd = vm_openat_beneath(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd == -ENOENT) {
		*ret = -1;
		return 0;
	}
	if (fd == -ELOOP || fd == -ENOTDIR || fd == -EXDEV)
		return vm_error_set(err, EINVAL,
				    "the checkout's %s is not a directory (a symbolic link, a file or "
				    "a mount point): refused",
				    what);
	if (fd < 0)
		return vm_error_errno(err, -fd, "cannot open the checkout's %s", what);
	*ret = fd;
	return 0;
}

static int drop(int dirfd, const char *name, const char *what, struct vm_error *err)
{
	if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
		return vm_error_errno(err, errno, "cannot remove the checkout's %s", what);
	return 0;
}

/* In .git (objects: its objects directory, or -1), remove what sends git
 * to another repository or gives it settings besides the config:
 * commondir, config.worktree, info/attributes, objects/info/alternates
 * and http-alternates. */
static int drop_redirects(int git, int objects, struct vm_error *err)
{
	_cleanup_close_ int objinfo = -1, info = -1;
	int r;
	if ((objects >= 0 && (r = open_dir(objects, "info", ".git/objects/info", &objinfo, err)) < 0) ||
	    (r = open_dir(git, "info", ".git/info", &info, err)) < 0)
		return r;
	if ((r = drop(git, "commondir", ".git/commondir", err)) < 0 ||
	    (r = drop(git, "config.worktree", ".git/config.worktree", err)) < 0 ||
	    (info >= 0 && (r = drop(info, "attributes", ".git/info/attributes", err)) < 0) ||
	    (objinfo >= 0 &&
	     ((r = drop(objinfo, "alternates", ".git/objects/info/alternates", err)) < 0 ||
	      (r = drop(objinfo, "http-alternates", ".git/objects/info/http-alternates", err)) < 0)))
		return r;
	return 0;
}

/* dirfd/name gone, whatever it is (a tree, a file, a symbolic link);
 * nothing if it is not there. */
static int remove_any(int dirfd, const char *name, struct vm_error *err)
{
	struct stat ts;
	if (fstatat(dirfd, name, &ts, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return vm_error_errno(err, errno, "cannot look at the checkout's .git/%s", name);
	}
	return S_ISDIR(ts.st_mode) ? vm_tree_remove(dirfd, name, err) : drop(dirfd, name, name, err);
}

static int write_config(int git, const char *text, uid_t uid, gid_t gid, struct vm_error *err)
{
	char tmp[64], rnd[17];
	vm_random_hex(rnd, 16);
	snprintf(tmp, sizeof(tmp), ".volmgr-config-%s", rnd);
	_cleanup_close_ int fd = openat(git, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
					0644);
	if (fd < 0)
		return vm_error_errno(err, errno, "cannot write the checkout's .git/config");
	int r = vm_write_all(fd, text, strlen(text));
	if (r == 0 && (fchown(fd, uid, gid) < 0 || fchmod(fd, 0644) < 0))
		r = -errno;
	if (r == 0 && renameat(git, tmp, git, "config") < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(git, tmp, 0);
		return vm_error_errno(err, -r, "cannot replace the checkout's .git/config");
	}
	return 0;
}

int vm_git_repo_prepare(int treefd, const char *url, const char *branch, uid_t uid, gid_t gid,
			struct vm_error *err)
{
	_cleanup_free_ char *text = NULL;
	int r = config_text(url, branch, &text, err);
	if (r < 0)
		return r;
	/* git's own ownership check (safe.directory is not set) wants the
	 * checkout and its .git to be the git user's: say so plainly. */
	struct stat st;
	if (fstat(treefd, &st) < 0)
		return vm_error_errno(err, errno, "cannot stat the checkout");
	if (st.st_uid != uid)
		return vm_error_set(err, EPERM,
				    "the checkout belongs to uid %u, not to the git user (uid %u): refused",
				    (unsigned)st.st_uid, (unsigned)uid);
	_cleanup_close_ int git = -1, objects = -1;
	if ((r = open_dir(treefd, ".git", ".git", &git, err)) < 0)
		return r;
	if (git < 0)
		return vm_error_set(err, ENOENT, "the checkout has no .git: refused");
	if (fstat(git, &st) < 0)
		return vm_error_errno(err, errno, "cannot stat the checkout's .git");
	if (st.st_uid != uid)
		return vm_error_set(err, EPERM,
				    "the checkout's .git belongs to uid %u, not to the git user (uid %u): "
				    "refused",
				    (unsigned)st.st_uid, (unsigned)uid);
	if ((r = open_dir(git, "objects", ".git/objects", &objects, err)) < 0)
		return r;
	if (objects < 0)
		return vm_error_set(err, ENOENT, "the checkout has no .git/objects: refused");
	if ((r = drop_redirects(git, objects, err)) < 0)
		return r;
	return write_config(git, text, uid, gid, err);
}

#define DEFUSE_DEPTH_MAX 256
#define DEFUSE_ENTRIES_MAX (1u << 24)

/* The type of dirfd/de without a stat where readdir says it. */
static unsigned char entry_type(int dirfd, const struct dirent *de)
{
	if (de->d_type != DT_UNKNOWN)
		return de->d_type;
	struct stat st;
	if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return DT_UNKNOWN;
	return S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : S_ISLNK(st.st_mode) ? DT_LNK : DT_FIFO;
}

typedef int (*entry_fn)(int dirfd, const char *name, unsigned char type, unsigned depth,
			unsigned *budget, struct vm_error *err);

/* fn on each entry of the directory dirfd, depth directories down,
 * *budget entries left to read in the whole walk. */
static int walk_dir(int dirfd, unsigned depth, unsigned *budget, entry_fn fn, struct vm_error *err)
{
	if (depth > DEFUSE_DEPTH_MAX)
		return vm_error_set(err, E2BIG, "the tree is more than %d directories deep: not checked",
				    DEFUSE_DEPTH_MAX);
	DIR *d = vm_opendir_at(dirfd);
	if (!d)
		return vm_error_errno(err, errno, "cannot read a directory of the tree");
	int r = 0;
	struct dirent *de;
	while (r == 0 && (de = readdir(d))) {
		if (!vm_is_plain_component(de->d_name))
			continue;
		if ((*budget)-- == 0) {
			r = vm_error_set(err, E2BIG, "the tree has more than %u entries: not checked",
					 DEFUSE_ENTRIES_MAX);
			break;
		}
		r = fn(dirfd, de->d_name, entry_type(dirfd, de), depth, budget, err);
	}
	closedir(d);
	return r;
}

static int descend(int dirfd, const char *name, unsigned depth, unsigned *budget, entry_fn fn,
		   struct vm_error *err)
{
	_cleanup_close_ int sub = vm_openat_beneath(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	return sub < 0 ? 0 : walk_dir(sub, depth + 1, budget, fn, err);
}

/* In a .git: only directories and regular files stay.  A symbolic link
 * (FETCH_HEAD, a reflog, refs/remotes) would make the next job's git
 * write through it; a fifo or device node would make it block or act. */
static int strip_special(int dirfd, const char *name, unsigned char type, unsigned depth,
			 unsigned *budget, struct vm_error *err)
{
	if (type == DT_DIR)
		return descend(dirfd, name, depth, budget, strip_special, err);
	return type == DT_REG ? 0 : drop(dirfd, name, "special file in .git", err);
}

/* The settings a promoted checkout keeps: none of the job's (gitrepo.h). */
static const char defused_config[] = "[core]\n"
				     "\trepositoryformatversion = 0\n"
				     "\tfilemode = true\n"
				     "\tbare = false\n"
				     "\tlogallrefupdates = true\n";

static int repo_defuse(int treefd, unsigned *budget, struct vm_error *err);

int vm_git_repo_defuse(int treefd, struct vm_error *err)
{
	unsigned budget = DEFUSE_ENTRIES_MAX;
	return repo_defuse(treefd, &budget, err);
}

static int repo_defuse(int treefd, unsigned *budget, struct vm_error *err)
{
	_cleanup_close_ int git = -1, objects = -1;
	int r = open_dir(treefd, ".git", ".git", &git, err);
	if (r < 0 || git < 0)
		return r; /* no repository: nothing to defuse */
	struct stat st;
	if (fstat(git, &st) < 0)
		return vm_error_errno(err, errno, "cannot stat the checkout's .git");
	if ((r = open_dir(git, "objects", ".git/objects", &objects, err)) < 0 ||
	    (r = drop_redirects(git, objects, err)) < 0)
		return r;
	/* Replace refs and grafts silently swap an object or a commit's
	 * parents for every later checkout. */
	_cleanup_close_ int refs = -1, info = -1;
	if ((r = open_dir(git, "refs", ".git/refs", &refs, err)) < 0 ||
	    (refs >= 0 && (r = remove_any(refs, "replace", err)) < 0) ||
	    (r = open_dir(git, "info", ".git/info", &info, err)) < 0 ||
	    (info >= 0 && (r = drop(info, "grafts", ".git/info/grafts", err)) < 0))
		return r;
	/* Hooks run; submodules' and other worktrees' repositories have
	 * settings and hooks of their own: none of them is kept. */
	static const char *const trees[] = {"hooks", "modules", "worktrees"};
	for (size_t i = 0; i < ELEMENTSOF(trees); i++)
		if ((r = remove_any(git, trees[i], err)) < 0)
			return r;
	if ((r = walk_dir(git, 0, budget, strip_special, err)) < 0)
		return r;
	return write_config(git, defused_config, st.st_uid, st.st_gid, err);
}

/* An entry of a tree about to become a cache (a clone only volmgrd can
 * reach): a ".git" directory is defused (not entered), any other ".git"
 * (a "gitdir:" file, a symbolic link) goes, other directories are
 * walked. */
static int defuse_entry(int dirfd, const char *name, unsigned char type, unsigned depth,
			unsigned *budget, struct vm_error *err)
{
	if (strcmp(name, ".git") == 0)
		return type == DT_DIR ? repo_defuse(dirfd, budget, err)
				      : drop(dirfd, ".git", "nested .git", err);
	return type == DT_DIR ? descend(dirfd, name, depth, budget, defuse_entry, err) : 0;
}

int vm_git_tree_defuse(int treefd, struct vm_error *err)
{
	unsigned budget = DEFUSE_ENTRIES_MAX;
	return walk_dir(treefd, 0, &budget, defuse_entry, err);
}

/* Copy a 40-hex object name from the start of s into commit. */
static bool take_hex(const char *s, char commit[static 64])
{
	if (strspn(s, "0123456789abcdef") < 40 || (s[40] && s[40] != '\n' && s[40] != ' '))
		return false;
	memcpy(commit, s, 40);
	commit[40] = '\0';
	return true;
}

int vm_git_head_commit(int treefd, char commit[static 64])
{
	_cleanup_close_ int git = vm_openat_beneath(treefd, ".git", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (git < 0)
		return git;
	_cleanup_free_ char *head = NULL;
	int r = vm_read_file_at(git, "HEAD", 4096, &head, NULL);
	if (r < 0)
		return r;
	if (take_hex(head, commit))
		return 0; /* detached */
	if (strncmp(head, "ref: refs/heads/", 16) != 0)
		return -EBADMSG;
	char *ref = head + 5, *nl = strchr(ref, '\n');
	if (nl)
		*nl = '\0';
	if (vm_rev_check(ref + 11, NULL) < 0)
		return -EBADMSG;
	_cleanup_close_ int pfd = vm_open_path_beneath(git, ref, O_PATH | O_CLOEXEC);
	_cleanup_close_ int fd = pfd >= 0 ? vm_reopen_regular(pfd) : pfd;
	if (fd >= 0) {
		_cleanup_free_ char *text = NULL;
		if ((r = vm_read_fd(fd, 4096, &text, NULL)) < 0)
			return r;
		return take_hex(text, commit) ? 0 : -EBADMSG;
	}
	if (fd != -ENOENT)
		return fd;
	_cleanup_free_ char *packed = NULL;
	if ((r = vm_read_file_at(git, "packed-refs", 64u << 20, &packed, NULL)) < 0)
		return r;
	size_t rl = strlen(ref);
	char *save = NULL; /* requests run on many threads: never strtok */
	for (char *line = strtok_r(packed, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (strlen(line) == 41 + rl && line[40] == ' ' && strcmp(line + 41, ref) == 0 &&
		    take_hex(line, commit))
			return 0;
	return -ENOENT;
}
