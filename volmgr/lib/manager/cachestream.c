/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Caches as btrfs send streams, for machines that start empty (fleets
 * that autoscale): `volmgr cache export` writes one, `volmgr cache
 * import-stream` reads one into a new cache.  The stream is volmgr's
 * header line, then btrfs's own stream of one whole subvolume.
 *
 * Receiving is btrfs-progs' `btrfs receive`, which applies a stream by
 * path: confined to a directory of staging/ (--chroot), fed only the
 * commands sendstream.c lets through (no snapshot or clone of another
 * subvolume, one subvolume, nothing after its end), and its result is
 * treated as a tree someone else wrote: snapshotted out, every .git
 * defused, checked against the header. */
#include <errno.h>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "btrfs.h"
#include "fault.h"
#include "gitrepo.h"
#include "sendstream.h"

#include "manager-private.h"

#define HEADER_MAX 8192
/* A sender that stops sending for this long is given up on. */
#define IDLE_MS idle_ms()

static int idle_ms(void)
{
#ifdef VM_FAULT_INJECTION
	/* Tests wait seconds, not minutes, for a stuck receive. */
	const char *t = getenv("VOLMGR_STREAM_IDLE_MS");
	if (t && atoi(t) > 0)
		return atoi(t);
#endif
	return 300 * 1000;
}
#define BTRFS_COMMAND "/usr/bin/btrfs"

static int need_btrfs(struct vm_manager *m, const char *what, struct vm_error *err)
{
	if (vm_backend_is_instant(&m->store.backend))
		return 0;
	return vm_error_set(err, ENOTSUP,
			    "%s needs a btrfs pool (this pool's backend is %s): copy a cache between other pools as a directory with `volmgr cache import`",
			    what, vm_backend_name(m->store.backend.kind));
}

static bool commit_ok(const char *c)
{
	return !c[0] || (strlen(c) == 40 && strspn(c, "0123456789abcdef") == 40);
}

static json_t *header_of(const struct vm_record *rec)
{
	return json_pack("{s:s, s:i, s:s, s:I, s:s, s:s, s:I, s:s, s:s, s:s, s:I}", "magic",
			 VM_CACHE_STREAM_MAGIC, "format", 1, "cache", rec->name, "generation",
			 (json_int_t)rec->generation, "commit", rec->git_commit, "checkout",
			 rec->checkout, "commit_time_ns", (json_int_t)rec->commit_time_ns,
			 "git_url", rec->git_url, "git_branch", rec->git_branch, "promoted_from",
			 rec->promoted_from, "exported_ns", (json_int_t)vm_now_ns());
}

struct sender {
	int snap, pipe_w;
	int error; /* errno of the send ioctl, 0 if it succeeded */
};

static void *send_thread(void *p)
{
	struct sender *t = p;
	/* Version 1 (no flags): what every btrfs-progs receives. */
	struct btrfs_ioctl_send_args a = {.send_fd = t->pipe_w};
	t->error = ioctl(t->snap, BTRFS_IOC_SEND, &a) < 0 ? errno : 0;
	close(t->pipe_w);
	return NULL;
}

/* btrfs send writes from offset 0 of a regular file whatever its
 * position, over the header: it writes into a pipe instead, which this
 * thread moves on to out_fd after the header. */
static int send_after_header(int snap, int out_fd, const char *name, struct vm_error *err)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return vm_error_errno(err, errno, "pipe");
	struct sender t = {.snap = snap, .pipe_w = p[1]};
	pthread_t th;
	if ((errno = pthread_create(&th, NULL, send_thread, &t)) != 0) {
		int e = errno;
		close(p[0]), close(p[1]);
		return vm_error_errno(err, e, "cannot start btrfs send");
	}
	int r = 0;
	for (;;) {
		ssize_t n = splice(p[0], NULL, out_fd, NULL, 1 << 20, SPLICE_F_MOVE);
		if (n < 0 && errno == EINVAL) {
			/* out_fd takes no splice: copy */
			char buf[65536];
			n = read(p[0], buf, sizeof(buf));
			if (n > 0 && vm_write_all(out_fd, buf, (size_t)n) < 0)
				n = -1;
		}
		if (n == 0)
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = vm_error_errno(err, errno, "cannot write the stream");
			break;
		}
	}
	/* A failed write: the send ends on its closed pipe. */
	close(p[0]);
	pthread_join(th, NULL);
	if (r == 0 && t.error)
		r = vm_error_errno(err, t.error, "btrfs send of cache %s", name);
	return r;
}

int vm_cache_export(struct vm_manager *m, const char *name, int out_fd,
		    struct vm_stream_result *ret, struct vm_error *err)
{
	*ret = (struct vm_stream_result){0};
	int r = need_btrfs(m, "cache export", err);
	if (r < 0)
		return r;
	int fl = fcntl(out_fd, F_GETFL);
	struct stat st;
	if (fl < 0 || fstat(out_fd, &st) < 0 || (fl & O_ACCMODE) == O_RDONLY ||
	    !(S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
		return vm_error_set(err, EBADF,
				    "cache export writes to a pipe, socket or regular file open for writing");
	char tmp[VM_NAME_MAX + 64];
	vm_store_staging_name("export", name, tmp);
	_cleanup_json_ json_t *header = NULL;
	{
		VM_STORE_LOCK(&m->store);
		_cleanup_record_ struct vm_record rec = {0};
		if ((r = vm_store_load_ready(&m->store, VM_KIND_CACHE, name, &rec, err)) < 0)
			return r;
		_cleanup_close_ int cur = vm_openat_beneath(m->store.pool->caches_fd, name,
							    O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		if (cur < 0)
			return vm_error_errno(err, -cur, "cannot open cache %s", name);
		/* A snapshot of its own: the cache may get a new generation,
		 * or be removed, while the stream is written. */
		if ((r = vm_btrfs_snapshot(cur, m->store.pool->staging_fd, tmp, NULL, err)) < 0)
			return r;
		if (!(header = header_of(&rec)))
			r = vm_error_set(err, ENOMEM, "out of memory");
		snprintf(ret->cache, sizeof(ret->cache), "%s", rec.name);
		snprintf(ret->commit, sizeof(ret->commit), "%s", rec.git_commit);
		ret->generation = rec.generation;
	}
	_cleanup_close_ int snap = -1;
	if (r == 0) {
		snap = vm_openat_beneath(m->store.pool->staging_fd, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		r = snap < 0 ? vm_error_errno(err, -snap, "cannot open staging/%s", tmp)
			     : vm_btrfs_set_read_only(snap, true, err);
	}
	_cleanup_free_ char *line = r == 0 ? json_dumps(header, JSON_COMPACT) : NULL;
	if (r == 0 && !line)
		r = vm_error_set(err, ENOMEM, "out of memory");
	if (r == 0 && (vm_write_all(out_fd, line, strlen(line)) < 0 || vm_write_all(out_fd, "\n", 1) < 0))
		r = vm_error_errno(err, errno, "cannot write the stream");
	if (r == 0)
		r = send_after_header(snap, out_fd, name, err);
	closep(&snap);
	vm_store_delete_staged(&m->store, tmp, NULL);
	return r;
}

/* ---- import ---- */

/* Wait until fd can be read, for IDLE_MS at most. */
static int wait_readable(int fd, struct vm_error *err)
{
	struct pollfd p = {fd, POLLIN, 0};
	for (;;) {
		int n = poll(&p, 1, IDLE_MS);
		if (n > 0)
			return 0;
		if (n == 0)
			return vm_error_set(err, ETIMEDOUT, "the stream stalled for %d ms", IDLE_MS);
		if (errno != EINTR)
			return vm_error_errno(err, errno, "poll");
	}
}

/* Read exactly len bytes; *ret_eof set (and 0) if the stream ended
 * before the first. */
static int read_exact(int fd, void *buf, size_t len, bool *ret_eof, struct vm_error *err)
{
	size_t got = 0;
	if (ret_eof)
		*ret_eof = false;
	while (got < len) {
		int r = wait_readable(fd, err);
		if (r < 0)
			return r;
		ssize_t n = read(fd, (char *)buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return vm_error_errno(err, errno, "cannot read the stream");
		if (n == 0) {
			if (got == 0 && ret_eof) {
				*ret_eof = true;
				return 0;
			}
			return vm_error_set(err, EINVAL, "the stream ends in the middle of a command");
		}
		got += (size_t)n;
	}
	return 0;
}

struct header {
	char cache[VM_NAME_MAX + 1];
	char commit[64], checkout[VM_CHECKOUT_MAX + 1];
	char git_url[VM_GIT_URL_MAX + 1], git_branch[VM_REV_MAX + 1];
	char promoted_from[VM_NAME_MAX + 1];
	int64_t commit_time_ns;
};

/* volmgr's header line, read a byte at a time (the btrfs stream that
 * follows goes to another reader), checked as a record's fields are. */
static int read_header(int fd, struct header *h, struct vm_error *err)
{
	char buf[HEADER_MAX + 1];
	size_t n = 0;
	for (;;) {
		bool eof;
		int r = read_exact(fd, buf + n, 1, &eof, err);
		if (r < 0)
			return r;
		if (eof || n == HEADER_MAX)
			return vm_error_set(err, EINVAL, "not a volmgr cache stream (no header line)");
		if (buf[n] == '\n')
			break;
		n++;
	}
	json_error_t jerr;
	_cleanup_json_ json_t *j = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &jerr);
	const char *magic = "", *cache = "", *commit = "", *checkout = "", *url = "", *branch = "",
		   *from = "";
	int format = 0;
	json_int_t gen = 0, when = 0, exported = 0;
	if (!j || json_unpack_ex(j, &jerr, JSON_STRICT,
				 "{s:s, s:i, s:s, s:I, s:s, s:s, s:I, s:s, s:s, s:s, s:I}", "magic",
				 &magic, "format", &format, "cache", &cache, "generation", &gen,
				 "commit", &commit, "checkout", &checkout, "commit_time_ns", &when,
				 "git_url", &url, "git_branch", &branch, "promoted_from", &from,
				 "exported_ns", &exported) < 0 ||
	    strcmp(magic, VM_CACHE_STREAM_MAGIC) != 0)
		return vm_error_set(err, EINVAL, "not a volmgr cache stream (its header: %s)",
				    j ? jerr.text : "not JSON");
	if (format != 1)
		return vm_error_set(err, EINVAL, "a cache stream of format %d: this volmgr reads 1",
				    format);
	if (vm_name_check("cache", cache, err) < 0)
		return -EINVAL;
	if (!commit_ok(commit) || !vm_checkout_path_ok(checkout) || when < 0 ||
	    when > vm_now_ns() + 86400LL * 1000000000LL ||
	    (url[0] && (vm_git_url_check(url, NULL) < 0 || vm_rev_check(branch, NULL) < 0)) ||
	    (!url[0] && branch[0]) || (from[0] && (url[0] || vm_name_check("volume", from, NULL) < 0)))
		return vm_error_set(err, EINVAL, "the stream's header names a bad commit, checkout, time, git remote or volume");
	snprintf(h->cache, sizeof(h->cache), "%s", cache);
	snprintf(h->commit, sizeof(h->commit), "%s", commit);
	snprintf(h->checkout, sizeof(h->checkout), "%s", checkout);
	snprintf(h->git_url, sizeof(h->git_url), "%s", url);
	snprintf(h->git_branch, sizeof(h->git_branch), "%s", branch);
	snprintf(h->promoted_from, sizeof(h->promoted_from), "%s", from);
	h->commit_time_ns = when;
	return 0;
}

/* `btrfs receive` into the directory open at dirfd, confined to it,
 * stdin from in, messages into errfd.  Only async-signal-safe calls in
 * the child: the daemon is multi-threaded. */
static pid_t spawn_receive(int dirfd, int in, int errfd)
{
	static const char *const argv[] = {"btrfs", "receive", "-q", "-e", "-C", "-E", "1", ".", NULL};
	static const char *const envp[] = {"PATH=/usr/bin:/bin", "LC_ALL=C", NULL};
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	if (fchdir(dirfd) < 0 || dup2(in, 0) < 0 || dup2(errfd, 1) < 0 || dup2(errfd, 2) < 0)
		_exit(127);
	close_range(3, ~0U, 0);
	execve(BTRFS_COMMAND, (char *const *)argv, (char *const *)envp);
	_exit(127);
}

/* Write all of buf into btrfs receive's stdin (non-blocking): a receive
 * that stops reading (stuck on a fifo the stream made, say) is given up
 * on after IDLE_MS. */
static int to_receive(int out, const void *buf, size_t len, struct vm_error *err)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(out, p, len);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return vm_error_errno(err, errno, "btrfs receive stopped reading");
		struct pollfd w = {out, POLLOUT, 0};
		int k = poll(&w, 1, IDLE_MS);
		if (k == 0)
			return vm_error_set(err, ETIMEDOUT, "btrfs receive took nothing for %d ms",
					    IDLE_MS);
		if (k < 0 && errno != EINTR)
			return vm_error_errno(err, errno, "poll");
	}
	return 0;
}

/* Pass the btrfs stream from in to out, command by command, checked. */
static int filter(int in, int out, struct vm_sendstream *s, uint64_t *bytes, struct vm_error *err)
{
	uint8_t hdr[VM_SENDSTREAM_HEADER];
	int r = read_exact(in, hdr, sizeof(hdr), NULL, err);
	if (r < 0 || (r = vm_sendstream_header(s, hdr, err)) < 0)
		return r;
	if ((r = to_receive(out, hdr, sizeof(hdr), err)) < 0)
		return r;
	*bytes = sizeof(hdr);
	_cleanup_free_ uint8_t *body = NULL;
	size_t cap = 0;
	while (!s->ended) {
		uint8_t ch[VM_SENDSTREAM_CMD_HEADER];
		uint32_t len;
		bool eof;
		if ((r = read_exact(in, ch, sizeof(ch), &eof, err)) < 0)
			return r;
		if (eof)
			return vm_error_set(err, EINVAL, "the stream ends before its end command");
		if ((r = vm_sendstream_cmd_header(s, ch, &len, err)) < 0)
			return r;
		if (len > cap) {
			uint8_t *b = realloc(body, len);
			if (!b)
				return vm_error_set(err, ENOMEM, "out of memory");
			body = b;
			cap = len;
		}
		if ((r = read_exact(in, body, len, NULL, err)) < 0 ||
		    (r = vm_sendstream_cmd(s, ch, body, len, err)) < 0)
			return r;
		if (r == 1)
			continue;
		/* Refused before receive makes it. */
		if (s->devices)
			return vm_error_set(err, EINVAL,
					    "the stream makes a device node: a cache never needs one, refused");
		if ((r = to_receive(out, ch, sizeof(ch), err)) < 0 ||
		    (r = to_receive(out, body, len, err)) < 0)
			return r;
		*bytes += sizeof(ch) + len;
	}
	return 0;
}

/* The first line btrfs receive wrote, for the error message. */
static void receive_says(int errfd, char *buf, size_t size)
{
	ssize_t n = pread(errfd, buf, size - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

/* Receive the stream from in into staging/recv (made here), then
 * snapshot the subvolume it made, writable, to staging/tmp. */
static int receive_into(struct vm_manager *m, int in, const char *recv, const char *tmp,
			uint64_t *ret_id, struct vm_stream_result *ret, struct vm_error *err)
{
	int staging = m->store.pool->staging_fd;
	if (mkdirat(staging, recv, 0700) < 0)
		return vm_error_errno(err, errno, "cannot make staging/%s", recv);
	_cleanup_close_ int dir = vm_openat_beneath(staging, recv, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	_cleanup_close_ int errfd = memfd_create("btrfs-receive", MFD_CLOEXEC);
	int p[2];
	if (dir < 0 || errfd < 0 || pipe2(p, O_CLOEXEC) < 0)
		return vm_error_errno(err, dir < 0 ? -dir : errno, "cannot set up btrfs receive");
	pid_t pid = spawn_receive(dir, p[0], errfd);
	close(p[0]);
	_cleanup_close_ int pidfd = pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
	if (pid < 0 || pidfd < 0) {
		int e = errno;
		close(p[1]);
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
		return vm_error_errno(err, e, "cannot start btrfs receive");
	}
	struct vm_sendstream s = {0};
	int r = fcntl(p[1], F_SETFL, O_NONBLOCK) < 0 ? vm_error_errno(err, errno, "fcntl")
						     : filter(in, p[1], &s, &ret->bytes, err);
	close(p[1]);
	/* After the stream's end, receive has IDLE_MS to finish (a clone
	 * from a fifo the stream made would block it for good). */
	struct pollfd done = {pidfd, POLLIN, 0};
	if (r == 0 && poll(&done, 1, IDLE_MS) == 0)
		r = vm_error_set(err, ETIMEDOUT, "btrfs receive did not finish within %d ms of the stream's end",
				 IDLE_MS);
	if (r < 0)
		kill(pid, SIGKILL);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	ret->commands = s.commands;
	ret->dropped = s.dropped;
	if (r == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
		char says[512];
		receive_says(errfd, says, sizeof(says));
		r = vm_error_set(err, EIO, "btrfs receive failed (%s)",
				 says[0] ? says : WIFEXITED(status) && WEXITSTATUS(status) == 127
							  ? "cannot run " BTRFS_COMMAND
							  : "no message");
	}
	if (r == 0 && s.devices)
		r = vm_error_set(err, EINVAL,
				 "the stream holds %llu device node(s): a cache never needs one, refused",
				 (unsigned long long)s.devices);
	if (r < 0)
		return r;
	/* Exactly the one subvolume the stream named, and nothing else. */
	_cleanup_close_ int sub = vm_openat_beneath(dir, s.subvol, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	DIR *d = vm_opendir_at(dir);
	unsigned entries = 0;
	for (struct dirent *de; d && (de = readdir(d));)
		entries += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	if (d)
		closedir(d);
	if (sub < 0 || entries != 1 || vm_btrfs_is_subvolume(sub) != 1)
		return vm_error_set(err, EINVAL, "btrfs receive did not make exactly the stream's subvolume");
	return vm_btrfs_snapshot(sub, staging, tmp, ret_id, err);
}

int vm_cache_import_stream(struct vm_manager *m, const char *name, const char *git_url,
			   int in_fd, const struct vm_caller *caller, struct vm_stream_result *ret,
			   struct vm_error *err)
{
	*ret = (struct vm_stream_result){0};
	struct header h = {0};
	int r = need_btrfs(m, "cache import-stream", err);
	if (r < 0 || (r = read_header(in_fd, &h, err)) < 0)
		return r;
	/* The remote every later `cache update` fetches from (a local one
	 * even without git's safe.directory check: gitrun.c) is root's
	 * choice, not the stream's: kept only when the importer names it. */
	if (git_url && strcmp(git_url, h.git_url) != 0)
		return vm_error_set(err, EINVAL, "the stream's git remote is \"%s\", not %s", h.git_url,
				    git_url);
	snprintf(ret->git_url, sizeof(ret->git_url), "%s", h.git_url);
	ret->git_url_kept = git_url != NULL;
	if (!git_url)
		h.git_url[0] = h.git_branch[0] = '\0';
	if (!name || !name[0])
		name = h.cache;
	if ((r = vm_name_check("cache", name, err)) < 0)
		return r;
	snprintf(ret->cache, sizeof(ret->cache), "%s", name);
	snprintf(ret->commit, sizeof(ret->commit), "%s", h.commit);
	char recv[VM_NAME_MAX + 64], tmp[VM_NAME_MAX + 64];
	vm_store_staging_name("receive", name, recv);
	vm_store_staging_name("import", name, tmp);
	{
		VM_STORE_LOCK(&m->store);
		if (vm_store_name_taken(&m->store, VM_KIND_CACHE, name))
			return vm_error_set(err, EEXIST, "cache %s already exists", name);
		vm_store_reserve(&m->store, VM_KIND_CACHE, name, true);
	}
	uint64_t id = 0;
	r = receive_into(m, in_fd, recv, tmp, &id, ret, err);
	vm_store_delete_staged(&m->store, recv, NULL);
	if (r == 0) {
		_cleanup_close_ int staged = vm_openat_beneath(m->store.pool->staging_fd, tmp,
							       O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		_cleanup_close_ int co = -1;
		char head[64] = "";
		if (staged < 0)
			r = vm_error_errno(err, -staged, "cannot open staging/%s", tmp);
		else if ((r = vm_git_tree_defuse(staged, err)) < 0)
			;
		else if ((co = vm_open_path_beneath(staged, h.checkout, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			r = vm_error_errno(err, -co, "the stream's checkout (\"%s\") is not a directory in it",
					   h.checkout);
		else if (h.commit[0] && (vm_git_head_commit(co, head) < 0 || strcmp(head, h.commit) != 0))
			r = vm_error_set(err, EINVAL, "the stream's checkout is at %s, its header says %s",
					 head[0] ? head : "no commit", h.commit);
		if (r == 0)
			r = vm_store_make_durable(staged, NULL, err);
	}
	VM_FAULT("stream.staged");
	VM_STORE_LOCK(&m->store);
	vm_store_reserve(&m->store, VM_KIND_CACHE, name, false);
	int caches = m->store.pool->caches_fd;
	if (r == 0)
		r = vm_store_publish(&m->store, tmp, caches, name, err);
	if (r < 0) {
		vm_store_delete_staged(&m->store, tmp, NULL);
		return r;
	}
	_cleanup_record_ struct vm_record rec = {0};
	_cleanup_close_ int now = vm_openat_beneath(caches, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	r = now < 0 ? vm_error_errno(err, -now, "cannot open cache %s", name)
		    : vm_backend_set_read_only(&m->store.backend, now, true, err);
	if (r == 0 && vm_record_init(&rec, VM_KIND_CACHE, name) < 0)
		r = vm_error_set(err, ENOMEM, "out of memory");
	if (r == 0) {
		vm_store_record_birth(&rec, caller, NULL);
		rec.subvol_id = id;
		rec.generation = ret->generation = 1;
		rec.updated_ns = vm_now_ns();
		snprintf(rec.git_url, sizeof(rec.git_url), "%s", h.git_url);
		snprintf(rec.git_branch, sizeof(rec.git_branch), "%s", h.git_branch);
		snprintf(rec.git_commit, sizeof(rec.git_commit), "%s", h.commit);
		snprintf(rec.promoted_from, sizeof(rec.promoted_from), "%s", h.promoted_from);
		snprintf(rec.checkout, sizeof(rec.checkout), "%s", h.checkout);
		rec.commit_time_ns = h.commit_time_ns;
		r = vm_store_store_record(&m->store, &rec, err);
	}
	if (r < 0)
		vm_store_discard_data(&m->store, caches, name, NULL);
	return r;
}
