/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* btrfs quota support (volmgr/lib/fs/quota.c) against a real btrfs: a loop-backed
 * image that this program makes and removes itself.
 *
 * Exit status: 0 pass, 77 skipped (not root, no loop devices, no
 * btrfs-progs; with CI=true nothing may skip: that is a failure), 1 fail.
 *
 * It creates exactly one temporary directory (mkdtemp), one image file in
 * it, one loop device (LOOP_CTL_GET_FREE + LOOP_CONFIGURE, autoclear) and
 * one mount, and at exit removes exactly those: the mount by its path, the
 * loop device only while it is still backed by this image (dev/ino
 * compared).  btrfs-progs only serves as the independent witness
 * (`btrfs qgroup show`), for `btrfs subvolume sync` and to make a stale
 * qgroup; subvolumes are made with volmgr's own btrfs backend. */
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "btrfs.h"
#include "quota.h"
#include "util.h"

#define MiB (UINT64_C(1) << 20)
#define LIMIT (64 * MiB)

/* ------------------------------------------------------------ resources */

static struct {
	char dir[256];
	char img[300];
	char mnt[300];
	dev_t img_dev;
	ino_t img_ino;
	int loop_fd;
	int pool_fd;
	bool have_dir, have_img, have_mnt, mounted;
	volatile sig_atomic_t cleaned;
} T = { .loop_fd = -1, .pool_fd = -1 };

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void close_fds_except(int keep)
{
	if (keep < 0) {
		if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0)
			return;
	} else if ((keep == 3 || syscall(SYS_close_range, 3U, (unsigned)keep - 1, 0U) == 0) &&
		   syscall(SYS_close_range, (unsigned)keep + 1, ~0U, 0U) == 0) {
		return;
	}
	for (int fd = 3; fd < 1024; fd++) /* before Linux 5.9 */
		if (fd != keep)
			close(fd);
}

/* Async-signal-safe: also runs from the signal handler. */
static void cleanup(void)
{
	if (T.cleaned)
		return;
	T.cleaned = 1;
	/* Every fd this process holds in the pool keeps it busy, and exit()
	 * does not run the _cleanup_ of main's locals: close everything but
	 * stdio and the loop device. */
	close_fds_except(T.loop_fd);
	T.pool_fd = -1;
	if (T.mounted) {
		bool done = false;
		for (int i = 0; i < 20 && !done; i++) {
			if (umount2(T.mnt, UMOUNT_NOFOLLOW) == 0 || errno == EINVAL)
				done = true;
			else if (errno == EBUSY)
				sleep_ms(200);
			else
				break;
		}
		/* Busy (an fd we leaked): detach this one mount rather than
		 * leave it; autoclear frees the loop device when it goes. */
		if (!done && umount2(T.mnt, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
			(void)!write(2, "WARN: cannot unmount the test pool\n", 35);
	}
	if (T.loop_fd >= 0) {
		struct loop_info64 info;
		if (ioctl(T.loop_fd, LOOP_GET_STATUS64, &info) == 0 &&
		    info.lo_device == T.img_dev && info.lo_inode == T.img_ino)
			ioctl(T.loop_fd, LOOP_CLR_FD, 0);
		close(T.loop_fd);
		T.loop_fd = -1;
	}
	if (T.have_img)
		unlink(T.img);
	if (T.have_mnt)
		rmdir(T.mnt);
	if (T.have_dir)
		rmdir(T.dir);
}

static void on_signal(int sig)
{
	cleanup();
	_exit(128 + sig);
}

/* ------------------------------------------------------------ reporting */

static void step(const char *fmt, ...) _printf_(1, 2);
static void step(const char *fmt, ...)
{
	static time_t start;
	if (!start)
		start = time(NULL);
	va_list ap;
	va_start(ap, fmt);
	printf("\n== [%lds] ", (long)(time(NULL) - start));
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
}

static void note(const char *fmt, ...) _printf_(1, 2);
static void note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("# ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
}

static _Noreturn void fail(const char *fmt, ...) _printf_(1, 2);
static _Noreturn void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fflush(stdout);
	fprintf(stderr, "FAIL: quota-btrfs: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static _Noreturn void skip(const char *why)
{
	const char *ci = getenv("CI");
	if (ci && strcmp(ci, "true") == 0)
		fail("would skip, but nothing may skip on CI: %s", why);
	fprintf(stderr, "SKIP: quota-btrfs: %s\n", why);
	exit(77);
}

/* r must be 0; err must be clean. */
#define CHECK_OK(call)                                                         \
	do {                                                                   \
		struct vm_error err_ = {0};                                    \
		struct vm_error *err = &err_;                                  \
		int r_ = (call);                                               \
		if (r_ < 0)                                                    \
			fail("%s: %d: %s", #call, r_, err_.msg);               \
		note("ok: %s", #call);                                         \
	} while (0)

/* r must be -want, err->code must be want, with a message. */
#define CHECK_ERR(want, call)                                                  \
	do {                                                                   \
		struct vm_error err_ = {0};                                    \
		struct vm_error *err = &err_;                                  \
		int r_ = (call);                                               \
		if (r_ != -(want))                                             \
			fail("%s: returned %d (%s), expected -%s", #call, r_,  \
			     err_.msg, #want);                                 \
		if (err_.code != (want) || err_.msg[0] == '\0')                \
			fail("%s: error record %d '%s', expected %s", #call,   \
			     err_.code, err_.msg, #want);                      \
		note("ok: %s -> -%s (%s)", #call, #want, err_.msg);            \
	} while (0)

/* Linux 6.10 and later remove a dropped subvolume's level-0 qgroup
 * themselves (btrfs_drop_snapshot -> btrfs_qgroup_cleanup_dropped_subvolume). */
static bool kernel_removes_dropped_qgroups(void)
{
	struct utsname u;
	unsigned major = 0, minor = 0;
	if (uname(&u) < 0 || sscanf(u.release, "%u.%u", &major, &minor) != 2)
		return false;
	return major > 6 || (major == 6 && minor >= 10);
}

static bool qgroup_gone(int pool, uint64_t id)
{
	return vm_quota_usage(pool, id, NULL, NULL, NULL, NULL) == -ENOENT;
}

/* ------------------------------------------------------------ processes */

/* Run argv (PATH lookup); stdout into out (NUL-terminated) if out.  The
 * exit status, or -1 if it did not exit normally. */
static int run(const char *const argv[], char *out, size_t outsz)
{
	int pipefd[2] = { -1, -1 };
	if (out && pipe2(pipefd, O_CLOEXEC) < 0)
		fail("pipe: %m");
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		fail("fork: %m");
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		if (out)
			dup2(pipefd[1], 1);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	size_t len = 0;
	if (out) {
		close(pipefd[1]);
		for (;;) {
			ssize_t n = read(pipefd[0], out + len, outsz - 1 - len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			len += (size_t)n;
			if (len == outsz - 1) {
				/* keep draining so the child does not block */
				char sink[4096];
				while (read(pipefd[0], sink, sizeof(sink)) > 0)
					;
				break;
			}
		}
		out[len] = '\0';
		close(pipefd[0]);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			fail("waitpid: %m");
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static bool have_cmd(const char *name)
{
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/sbin:/usr/bin:/sbin:/bin";
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *save = NULL, *d = strtok_r(buf, ":", &save); d;
	     d = strtok_r(NULL, ":", &save)) {
		char p[4200];
		snprintf(p, sizeof(p), "%s/%s", d, name);
		if (access(p, X_OK) == 0)
			return true;
	}
	return false;
}

/* ----------------------------------------------------------------- pool */

static void make_loop_device(int img_fd, char *dev, size_t devsz)
{
	_cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		skip("no loop devices (/dev/loop-control)");
	for (int attempt = 0; attempt < 20; attempt++) {
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0)
			skip("no free loop device");
		snprintf(dev, devsz, "/dev/loop%d", n);
		_cleanup_close_ int fd = open(dev, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			sleep_ms(50); /* raced with its creation or removal */
			continue;
		}
		struct loop_config cfg = { .fd = (uint32_t)img_fd };
		cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
		/* Informational only (losetup shows it); cut to fit. */
		size_t n_name = strnlen(T.img, LO_NAME_SIZE - 1);
		memcpy(cfg.info.lo_file_name, T.img, n_name);
		if (ioctl(fd, LOOP_CONFIGURE, &cfg) == 0) {
			T.loop_fd = TAKE_FD(fd);
			return;
		}
		if (errno == EBUSY) /* someone else took it first */
			continue;
		if (errno != EINVAL && errno != ENOTTY)
			fail("LOOP_CONFIGURE %s: %m", dev);
		/* Before Linux 5.8: two steps. */
		if (ioctl(fd, LOOP_SET_FD, img_fd) < 0) {
			if (errno == EBUSY)
				continue;
			fail("LOOP_SET_FD %s: %m", dev);
		}
		T.loop_fd = TAKE_FD(fd);
		if (ioctl(T.loop_fd, LOOP_SET_STATUS64, &cfg.info) < 0)
			fail("LOOP_SET_STATUS64 %s: %m", dev);
		return;
	}
	skip("could not get a loop device after 20 attempts");
}

static void make_pool(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(T.dir, sizeof(T.dir), "%s/vt-quota-btrfs.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(T.dir))
		fail("mkdtemp %s: %m", T.dir);
	T.have_dir = true;
	snprintf(T.img, sizeof(T.img), "%s/pool.img", T.dir);
	snprintf(T.mnt, sizeof(T.mnt), "%s/pool", T.dir);

	_cleanup_close_ int img_fd =
		open(T.img, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (img_fd < 0)
		fail("create %s: %m", T.img);
	T.have_img = true;
	struct stat st;
	if (ftruncate(img_fd, 1024 * (off_t)MiB) < 0 || fstat(img_fd, &st) < 0)
		fail("size %s: %m", T.img);
	T.img_dev = st.st_dev;
	T.img_ino = st.st_ino;

	char dev[64];
	make_loop_device(img_fd, dev, sizeof(dev));
	const char *mkfs[] = { "mkfs.btrfs", "-q", "-f", dev, NULL };
	if (run(mkfs, NULL, 0) != 0)
		fail("mkfs.btrfs %s failed", dev);
	if (mkdir(T.mnt, 0700) < 0)
		fail("mkdir %s: %m", T.mnt);
	T.have_mnt = true;
	if (mount(dev, T.mnt, "btrfs", 0, NULL) < 0)
		fail("mount %s on %s: %m", dev, T.mnt);
	T.mounted = true;
	T.pool_fd = open(T.mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (T.pool_fd < 0)
		fail("open %s: %m", T.mnt);
	note("pool: btrfs on %s (%s) mounted at %s", dev, T.img, T.mnt);
}

/* --------------------------------------------------------------- checks */

/* Write bytes of zeros to dirfd/name in 1 MiB writes, then fsync.  0, or
 * the negative errno of the first write or fsync that failed;
 * *ret_written counts the bytes write() accepted. */
static int write_zeros(int dirfd, const char *name, uint64_t bytes,
		       uint64_t *ret_written)
{
	static char buf[MiB];
	*ret_written = 0;
	_cleanup_close_ int fd = openat(dirfd, name,
		O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		fail("create %s: %m", name);
	while (*ret_written < bytes) {
		ssize_t n = write(fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		*ret_written += (uint64_t)n;
	}
	if (fsync(fd) < 0)
		return -errno;
	return 0;
}

/* `btrfs qgroup show --raw -e POOL`: the line of 0/id, or NULL. */
static bool progs_qgroup(uint64_t id, uint64_t *ret_excl, char *max_excl,
			 size_t max_excl_sz)
{
	static char out[64 * 1024];
	const char *argv[] = { "btrfs", "qgroup", "show", "--raw", "-e", T.mnt, NULL };
	if (run(argv, out, sizeof(out)) != 0)
		fail("btrfs qgroup show failed");
	char want[32];
	snprintf(want, sizeof(want), "0/%llu", (unsigned long long)id);
	for (char *save = NULL, *line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char qg[32], mx[32];
		unsigned long long rfer, excl;
		if (sscanf(line, "%31s %llu %llu %31s", qg, &rfer, &excl, mx) != 4)
			continue;
		if (strcmp(qg, want) != 0)
			continue;
		if (ret_excl)
			*ret_excl = excl;
		if (max_excl)
			snprintf(max_excl, max_excl_sz, "%s", mx);
		return true;
	}
	return false;
}

static void progs(const char *const argv[])
{
	if (run(argv, NULL, 0) != 0)
		fail("%s %s %s failed", argv[0], argv[1], argv[2]);
}

static int open_dir(const char *name)
{
	int fd = openat(T.pool_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		fail("open %s: %m", name);
	return fd;
}

static void expect_usage(uint64_t id, uint64_t *rfer, uint64_t *excl,
			 uint64_t *limit)
{
	struct vm_error err = {0};
	int r = vm_quota_usage(T.pool_fd, id, rfer, excl, limit, &err);
	if (r < 0)
		fail("vm_quota_usage(0/%llu): %s", (unsigned long long)id, err.msg);
	note("usage 0/%llu: referenced %llu, exclusive %llu, exclusive limit %llu",
	     (unsigned long long)id, (unsigned long long)*rfer,
	     (unsigned long long)*excl, (unsigned long long)*limit);
}

static void expect_ids(const char *what, const uint64_t *got, size_t n, const uint64_t *want,
		       size_t nwant)
{
	bool same = n == nwant;
	for (size_t i = 0; same && i < n; i++)
		same = got[i] == want[i];
	if (!same) {
		fprintf(stderr, "got:");
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, " %llu/%llu", (unsigned long long)VM_QGROUP_LEVEL(got[i]),
				(unsigned long long)VM_QGROUP_ID(got[i]));
		fprintf(stderr, "\n");
		fail("%s: not the %zu expected", what, nwant);
	}
	note("ok: %s (%zu)", what, n);
}

/* Level-1 qgroups, relations and subvolume links on simple quotas
 * (Linux 6.7+): what volquota.c builds a volume's limit from. */
static void simple_quotas(int pool)
{
	uint64_t flags, rfer, excl, limit, written, ids[16];
	size_t n;
	int r;

	step("simple quotas: enable (quota disabled first)");
	const char *disable_argv[] = { "btrfs", "quota", "disable", T.mnt, NULL };
	progs(disable_argv);
	{
		struct vm_error e = {0};
		r = vm_quota_enable_simple(pool, &e);
		/* A feature probe decides whether this may be missing. */
		if (r == -EOPNOTSUPP && access("/sys/fs/btrfs/features/simple_quota", F_OK) < 0) {
			note("this kernel has no simple quotas: their part is not run (%s)", e.msg);
			CHECK_OK(vm_quota_enable(pool, err));
			return;
		}
		if (r < 0)
			fail("vm_quota_enable_simple: %s", e.msg);
	}
	CHECK_OK(vm_quota_enable_simple(pool, err)); /* on already: fine */
	CHECK_OK(vm_quota_enable(pool, err));        /* simple counts as enabled */
	CHECK_OK(vm_quota_status_flags(pool, &flags, err));
	if ((flags & (VM_QUOTA_FLAG_ON | VM_QUOTA_FLAG_SIMPLE_MODE)) !=
	    (VM_QUOTA_FLAG_ON | VM_QUOTA_FLAG_SIMPLE_MODE))
		fail("status flags %#llx: not on in simple mode", (unsigned long long)flags);

	step("level-1 qgroups: argument checks, create, exists");
	uint64_t v_id, n1_id, n2_id;
	CHECK_OK(vm_btrfs_create(pool, "vol", &v_id, err));
	uint64_t g = VM_QGROUP(1, v_id), v0 = VM_QGROUP(0, v_id);
	CHECK_ERR(EINVAL, vm_quota_group_create(pool, v0, err));
	CHECK_ERR(EINVAL, vm_quota_group_remove(pool, v0, err));
	CHECK_ERR(EINVAL, vm_quota_group_assign(pool, g, v0, true, err));
	CHECK_ERR(EINVAL, vm_quota_group_assign(pool, VM_QGROUP(0, 1), g, true, err));
	CHECK_OK(vm_quota_group_create(pool, g, err));
	CHECK_ERR(EEXIST, vm_quota_group_create(pool, g, err));
	CHECK_OK(r = vm_quota_group_exists(pool, g, err));
	if (r != 1 || vm_quota_group_exists(pool, VM_QGROUP(1, 4242), NULL) != 0)
		fail("vm_quota_group_exists: 1/%llu -> %d, 1/4242 not 0", (unsigned long long)v_id, r);

	step("assign, then subvolumes made inside join by themselves (qgroup_auto_inherit)");
	CHECK_OK(r = vm_quota_group_assign(pool, v0, g, true, err));
	if (r != 0)
		fail("assign on simple quotas returned %d (simple quotas never need a rescan)", r);
	CHECK_ERR(EEXIST, vm_quota_group_assign(pool, v0, g, true, err));
	CHECK_OK(vm_quota_group_limit(pool, g, 16 * MiB, err));
	_cleanup_close_ int v_fd = open_dir("vol");
	CHECK_OK(vm_btrfs_create(v_fd, "n1", &n1_id, err));
	_cleanup_close_ int n1_fd = openat(v_fd, "n1", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (n1_fd < 0)
		fail("open vol/n1: %m");
	CHECK_OK(vm_btrfs_create(n1_fd, "n2", &n2_id, err));
	CHECK_OK(vm_quota_group_relations(pool, VM_QGROUP(0, n2_id), true, 0, ids, 16, &n, err));
	expect_ids("parents of 0/n2", ids, n, &g, 1);
	CHECK_OK(vm_quota_group_relations(pool, g, false, 0, ids, 16, &n, err));
	uint64_t members[] = { v0, VM_QGROUP(0, n1_id), VM_QGROUP(0, n2_id) };
	expect_ids("members of 1/vol", ids, n, members, 3);
	/* Paged: two at a time, then from one past the last. */
	CHECK_OK(r = vm_quota_group_relations(pool, g, false, 0, ids, 2, &n, err));
	if (r != 1 || n != 2)
		fail("a page of 2 members: returned %d with %zu", r, n);
	CHECK_OK(r = vm_quota_group_relations(pool, g, false, ids[1] + 1, ids, 2, &n, err));
	if (r != 0 || n != 1 || ids[0] != members[2])
		fail("the second page: returned %d with %zu", r, n);
	CHECK_OK(vm_quota_groups(pool, 1, 0, ids, 16, &n, err));
	expect_ids("level-1 qgroups", ids, n, &g, 1);

	step("subvolume links: parent, directory, children, listing");
	uint64_t parent, dirid;
	CHECK_OK(r = vm_quota_subvol_parent(pool, n2_id, &parent, &dirid, err));
	if (r != 1 || parent != n1_id || dirid != 256) /* the top directory of n1 */
		fail("parent of n2: %d, %llu dir %llu", r, (unsigned long long)parent,
		     (unsigned long long)dirid);
	CHECK_OK(r = vm_quota_subvol_parent(pool, 5, &parent, &dirid, err));
	if (r != 0)
		fail("the top level has a parent?");
	CHECK_OK(vm_quota_subvol_children(pool, v_id, 0, ids, 16, &n, err));
	expect_ids("subvolumes in vol", ids, n, &n1_id, 1);
	struct vm_subvol_link links[64];
	CHECK_OK(vm_quota_subvol_links(pool, v_id, links, ELEMENTSOF(links), &n, err));
	if (n != 3 || links[0].id != v_id || links[0].parent != 5 || links[1].id != n1_id ||
	    links[1].parent != v_id || links[2].id != n2_id || links[2].parent != n1_id)
		fail("vm_quota_subvol_links from vol: %zu links", n);
	note("ok: links vol <- 5, n1 <- vol, n2 <- n1");
	bool live;
	CHECK_OK(vm_quota_subvol_live(pool, n2_id, &live, err));
	if (!live || vm_quota_subvol_live(pool, 4242, &live, NULL) < 0 || live)
		fail("vm_quota_subvol_live");

	step("the level-1 limit stops writes two subvolumes deep");
	_cleanup_close_ int n2_fd = openat(n1_fd, "n2", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (n2_fd < 0)
		fail("open vol/n1/n2: %m");
	r = write_zeros(n2_fd, "big", 40 * MiB, &written);
	note("write: %s after %llu MiB", r < 0 ? strerror(-r) : "no error",
	     (unsigned long long)(written / MiB));
	if (r != -EDQUOT || written > 16 * MiB)
		fail("expected EDQUOT within 16 MiB, got %d after %llu bytes", r,
		     (unsigned long long)written);
	CHECK_OK(vm_quota_sync(pool, err));
	CHECK_OK(vm_quota_group_usage(pool, g, &rfer, &excl, &limit, err));
	note("1/vol: referenced %llu, exclusive %llu, limit %llu", (unsigned long long)rfer,
	     (unsigned long long)excl, (unsigned long long)limit);
	if (limit != 16 * MiB || excl > 16 * MiB || excl < 8 * MiB || rfer != excl)
		fail("1/vol's numbers (simple quotas: referenced = exclusive = what was written)");

	step("unlimit: writing works again; remove: busy with members, then gone");
	CHECK_OK(vm_quota_group_unlimit(pool, g, err));
	CHECK_OK(vm_quota_group_usage(pool, g, NULL, NULL, &limit, err));
	if (limit != 0)
		fail("limit %llu after unlimit", (unsigned long long)limit);
	if ((r = write_zeros(n2_fd, "more", 4 * MiB, &written)) < 0)
		fail("write after unlimit: %s", strerror(-r));
	CHECK_ERR(EBUSY, vm_quota_group_remove(pool, g, err));
	for (size_t i = 0; i < ELEMENTSOF(members); i++)
		CHECK_OK(vm_quota_group_assign(pool, members[i], g, false, err));
	CHECK_OK(vm_quota_group_relations(pool, g, false, 0, ids, 16, &n, err));
	expect_ids("members of 1/vol after unassigning", ids, n, NULL, 0);
	CHECK_OK(r = vm_quota_group_remove(pool, g, err));
	if (r != 1 || vm_quota_group_remove(pool, g, NULL) != 0)
		fail("remove 1/vol: %d, then not 0", r);
	CHECK_OK(vm_quota_groups(pool, 1, 0, ids, 16, &n, err));
	expect_ids("level-1 qgroups after removal", ids, n, NULL, 0);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid() != 0)
		skip("needs root");
	if (!have_cmd("mkfs.btrfs") || !have_cmd("btrfs"))
		skip("needs btrfs-progs (mkfs.btrfs, btrfs)");
	if (access("/dev/loop-control", F_OK) < 0)
		skip("no loop devices (/dev/loop-control)");

	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	atexit(cleanup);

	step("make a loop-backed btrfs pool");
	make_pool();
	int pool = T.pool_fd;
	uint64_t rfer, excl, limit, flags, written;
	bool on;
	unsigned skipped;

	step("argument checks");
	{
		_cleanup_close_ int proc = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		_cleanup_close_ int file = openat(pool, "plain-file",
			O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (proc < 0 || file < 0)
			fail("open /proc or plain-file: %m");
		CHECK_ERR(EBADF, vm_quota_status(-1, &on, err));
		CHECK_ERR(EBADF, vm_quota_enable(-1, err));
		CHECK_ERR(ENOTDIR, vm_quota_status(file, &on, err));
		CHECK_ERR(ENOTDIR, vm_quota_usage(file, 5, &rfer, &excl, &limit, err));
		CHECK_ERR(ENOTTY, vm_quota_status(proc, &on, err));
		CHECK_ERR(ENOTTY, vm_quota_limit_exclusive(proc, 256, MiB, err));
		CHECK_ERR(EINVAL, vm_quota_status(pool, NULL, err));
		CHECK_ERR(EINVAL, vm_quota_status_flags(pool, NULL, err));
		static const uint64_t bad_ids[] = { 0, 1, 4, 6, 255, UINT64_C(1) << 48,
						    UINT64_MAX };
		for (size_t i = 0; i < ELEMENTSOF(bad_ids); i++) {
			CHECK_ERR(EINVAL, vm_quota_limit_exclusive(pool, bad_ids[i], MiB, err));
			CHECK_ERR(EINVAL, vm_quota_usage(pool, bad_ids[i], &rfer, &excl,
							 &limit, err));
			CHECK_ERR(EINVAL, vm_quota_destroy(pool, bad_ids[i], err));
		}
		if (unlinkat(pool, "plain-file", 0) < 0)
			fail("unlink plain-file: %m");
	}

	step("quota is off on a new file system");
	CHECK_OK(vm_quota_status(pool, &on, err));
	if (on)
		fail("quota reported enabled on a fresh file system");
	CHECK_OK(vm_quota_status_flags(pool, &flags, err));
	if (flags != 0)
		fail("status flags %#llx with quota off", (unsigned long long)flags);
	CHECK_ERR(ENOTCONN, vm_quota_usage(pool, 5, &rfer, &excl, &limit, err));
	CHECK_ERR(ENOTCONN, vm_quota_limit_exclusive(pool, 5, LIMIT, err));
	CHECK_ERR(ENOTCONN, vm_quota_destroy(pool, 300, err));
	CHECK_ERR(ENOTCONN, vm_quota_clear_stale(pool, &skipped, err));

	step("enable quota (twice: idempotent)");
	uint64_t a_id, b_id, snap_id;
	CHECK_OK(vm_btrfs_create(pool, "a", &a_id, err)); /* before: rescan finds it */
	CHECK_OK(vm_quota_enable(pool, err));
	CHECK_OK(vm_quota_enable(pool, err));
	CHECK_OK(vm_quota_status(pool, &on, err));
	CHECK_OK(vm_quota_status_flags(pool, &flags, err));
	note("status flags %#llx", (unsigned long long)flags);
	if (!on || !(flags & VM_QUOTA_FLAG_ON))
		fail("quota not reported enabled");
	if (flags & (VM_QUOTA_FLAG_RESCAN | VM_QUOTA_FLAG_INCONSISTENT))
		fail("rescan still running or numbers inconsistent after enable");
	expect_usage(a_id, &rfer, &excl, &limit);
	expect_usage(5, &rfer, &excl, &limit);

	step("two subvolumes and a snapshot with shared data");
	CHECK_OK(vm_btrfs_create(pool, "b", &b_id, err));
	_cleanup_close_ int a_fd = open_dir("a");
	if (write_zeros(a_fd, "shared", 8 * MiB, &written) < 0)
		fail("write a/shared: %m");
	CHECK_OK(vm_btrfs_snapshot(a_fd, pool, "snap", &snap_id, err));
	note("ids: a %llu, b %llu, snap %llu", (unsigned long long)a_id,
	     (unsigned long long)b_id, (unsigned long long)snap_id);
	CHECK_OK(vm_quota_sync(pool, err));
	expect_usage(snap_id, &rfer, &excl, &limit);
	if (rfer < 8 * MiB || excl > MiB || limit != 0)
		fail("snapshot should reference the 8 MiB it shares, own < 1 MiB, have no limit");
	uint64_t progs_excl;
	if (!progs_qgroup(snap_id, &progs_excl, NULL, 0) || progs_excl != excl)
		fail("btrfs qgroup show disagrees on exclusive of the snapshot");

	step("missing qgroups and out-of-range limits");
	CHECK_ERR(ENOENT, vm_quota_limit_exclusive(pool, 4242, LIMIT, err));
	CHECK_ERR(ENOENT, vm_quota_usage(pool, 4242, &rfer, &excl, &limit, err));
	CHECK_ERR(ERANGE, vm_quota_limit_exclusive(pool, snap_id, VM_SIZE_MAX + 1, err));
	CHECK_ERR(EBUSY, vm_quota_destroy(pool, a_id, err));
	CHECK_ERR(EBUSY, vm_quota_destroy(pool, 5, err));
	{
		struct vm_error err = {0};
		int r = vm_quota_destroy(pool, 4242, &err);
		if (r != 0 || err.code != 0)
			fail("destroying a qgroup that does not exist: %d %s", r, err.msg);
		note("ok: vm_quota_destroy(0/4242) -> 0 (no such qgroup)");
	}

	step("exclusive limit of 64 MiB on the snapshot");
	CHECK_OK(vm_quota_limit_exclusive(pool, snap_id, LIMIT, err));
	expect_usage(snap_id, &rfer, &excl, &limit);
	if (limit != LIMIT)
		fail("limit reads back as %llu", (unsigned long long)limit);
	char mx[32];
	if (!progs_qgroup(snap_id, NULL, mx, sizeof(mx)) || strcmp(mx, "67108864") != 0)
		fail("btrfs qgroup show: max exclusive of the snapshot is not 67108864");
	note("ok: btrfs qgroup show agrees: max exclusive 67108864");

	step("writing 100 MiB into the snapshot fails with EDQUOT");
	_cleanup_close_ int snap_fd = open_dir("snap");
	int r = write_zeros(snap_fd, "big", 100 * MiB, &written);
	note("write: %s after %llu MiB", r < 0 ? strerror(-r) : "no error",
	     (unsigned long long)(written / MiB));
	if (r != -EDQUOT)
		fail("expected EDQUOT (122), got %d", r);
	if (written > LIMIT || written < LIMIT / 2)
		fail("accepted %llu bytes under a %llu byte limit",
		     (unsigned long long)written, (unsigned long long)LIMIT);

	step("the other subvolume still takes 100 MiB");
	_cleanup_close_ int b_fd = open_dir("b");
	if ((r = write_zeros(b_fd, "big", 100 * MiB, &written)) < 0)
		fail("write b/big: %s", strerror(-r));

	step("after a sync the snapshot's exclusive usage is near the limit");
	CHECK_OK(vm_quota_sync(pool, err));
	expect_usage(snap_id, &rfer, &excl, &limit);
	if (excl > LIMIT || excl < LIMIT - 8 * MiB)
		fail("exclusive %llu is not within 8 MiB below the limit",
		     (unsigned long long)excl);
	if (!progs_qgroup(snap_id, &progs_excl, NULL, 0) || progs_excl != excl)
		fail("btrfs qgroup show disagrees on exclusive of the snapshot");
	expect_usage(b_id, &rfer, &excl, &limit);
	if (excl < 100 * MiB)
		fail("b should own its 100 MiB");

	step("clear the limit: writing works again");
	CHECK_OK(vm_quota_limit_exclusive(pool, snap_id, 0, err));
	CHECK_OK(vm_quota_limit_exclusive(pool, snap_id, 0, err)); /* twice: fine */
	expect_usage(snap_id, &rfer, &excl, &limit);
	if (limit != 0)
		fail("limit still %llu after clearing", (unsigned long long)limit);
	if (!progs_qgroup(snap_id, NULL, mx, sizeof(mx)) || strcmp(mx, "none") != 0)
		fail("btrfs qgroup show: max exclusive is '%s', not none", mx);
	if ((r = write_zeros(snap_fd, "big", 100 * MiB, &written)) < 0)
		fail("write snap/big without a limit: %s", strerror(-r));
	CHECK_OK(vm_quota_sync(pool, err));
	expect_usage(snap_id, &rfer, &excl, &limit);
	if (excl < 100 * MiB)
		fail("snapshot should now own more than 100 MiB");

	step("a deleted subvolume's qgroup: busy until the cleaner dropped it");
	b_fd = (close(b_fd), -1);
	CHECK_OK(vm_btrfs_delete(pool, "b", err));
	{
		struct vm_error err = {0};
		r = vm_quota_destroy(pool, b_id, &err);
		if (r == -EBUSY)
			note("ok: vm_quota_destroy right after delete -> EBUSY (%s)", err.msg);
		else if (r >= 0)
			note("the cleaner was faster: vm_quota_destroy -> %d", r);
		else
			fail("vm_quota_destroy after delete: %d %s", r, err.msg);
		memset(&err, 0, sizeof(err));
		skipped = 0;
		r = vm_quota_clear_stale(pool, &skipped, &err);
		if (r < 0)
			fail("vm_quota_clear_stale: %s", err.msg);
		note("clear_stale before the cleaner: removed %d, skipped %u", r, skipped);
	}
	/* The cleaner only drops a subvolume once its deletion has been
	 * committed: without a commit, `btrfs subvolume sync` waits for the
	 * next periodic one (30 s). */
	CHECK_OK(vm_quota_sync(pool, err));
	const char *sync_argv[] = { "btrfs", "subvolume", "sync", T.mnt, NULL };
	progs(sync_argv);
	/* Since Linux 6.10 the kernel removes a dropped subvolume's qgroup
	 * itself (btrfs_drop_snapshot -> btrfs_qgroup_cleanup_dropped_subvolume),
	 * but only after committing the transaction that deleted the root
	 * item, whose deletion is what `btrfs subvolume sync` waits for: the
	 * qgroup can still be there when it returns and go a moment later
	 * (counting on it made this test fail about one run in three).  On
	 * such a kernel wait for that event itself: it must come (the bound
	 * is for a loaded machine); whether it came must not be decided by a
	 * timeout, or a removal just after it would change what clear_stale
	 * finds below.
	 * An older kernel leaves the qgroup for clear_stale -- unless the
	 * clear_stale above already removed it (the cleaner was that fast). */
	bool gone = qgroup_gone(pool, b_id);
	if (kernel_removes_dropped_qgroups()) {
		for (int i = 0; i < 120 * 20 && !gone; i++) {
			sleep_ms(50);
			gone = qgroup_gone(pool, b_id);
		}
		if (!gone)
			fail("qgroup 0/%llu is still there 120 s after btrfs subvolume sync "
			     "(Linux 6.10 and later remove a dropped subvolume's qgroup)",
			     (unsigned long long)b_id);
	}
	if (gone == progs_qgroup(b_id, NULL, NULL, 0))
		fail("btrfs qgroup show disagrees on whether 0/%llu is there",
		     (unsigned long long)b_id);
	note("after btrfs subvolume sync, qgroup 0/%llu %s", (unsigned long long)b_id,
	     gone ? "went (by the kernel since Linux 6.10, or by the first clear_stale)"
		  : "is still there: this kernel leaves it for clear_stale");

	step("clear_stale removes level-0 qgroups without a subvolume");
	const char *create_argv[] = { "btrfs", "qgroup", "create", "0/100", T.mnt, NULL };
	progs(create_argv);
	if (!progs_qgroup(100, NULL, NULL, 0))
		fail("btrfs qgroup create 0/100 did not make it");
	skipped = 99;
	{
		struct vm_error err = {0};
		r = vm_quota_clear_stale(pool, &skipped, &err);
		if (r < 0)
			fail("vm_quota_clear_stale: %s", err.msg);
		note("clear_stale: removed %d, skipped %u", r, skipped);
		int want = 1 + (gone ? 0 : 1);
		if (r != want || skipped != 0)
			fail("expected %d removed and 0 skipped", want);
	}
	if (progs_qgroup(100, NULL, NULL, 0) || progs_qgroup(b_id, NULL, NULL, 0))
		fail("btrfs qgroup show still lists 0/100 or 0/%llu",
		     (unsigned long long)b_id);
	if (!progs_qgroup(5, NULL, NULL, 0) || !progs_qgroup(a_id, NULL, NULL, 0) ||
	    !progs_qgroup(snap_id, NULL, NULL, 0))
		fail("clear_stale removed a live subvolume's qgroup");
	note("ok: btrfs qgroup show lists 0/5, 0/%llu, 0/%llu and no stale qgroup",
	     (unsigned long long)a_id, (unsigned long long)snap_id);
	CHECK_ERR(ENOENT, vm_quota_usage(pool, b_id, &rfer, &excl, &limit, err));
	CHECK_OK(vm_quota_destroy(pool, b_id, err)); /* gone: 0 */
	{
		struct vm_error err = {0};
		r = vm_quota_clear_stale(pool, NULL, &err);
		if (r != 0)
			fail("second clear_stale removed %d (%s)", r, err.msg);
		note("ok: a second clear_stale removes nothing");
	}

	step("quota disabled behind our back, enabled again: the rescan recounts");
	uint64_t excl_before;
	expect_usage(snap_id, &rfer, &excl_before, &limit);
	CHECK_OK(vm_quota_limit_exclusive(pool, snap_id, 4 * LIMIT, err));
	const char *disable_argv[] = { "btrfs", "quota", "disable", T.mnt, NULL };
	progs(disable_argv);
	CHECK_OK(vm_quota_status_flags(pool, &flags, err));
	if (flags != 0)
		fail("status flags %#llx after disable", (unsigned long long)flags);
	CHECK_ERR(ENOTCONN, vm_quota_usage(pool, snap_id, &rfer, &excl, &limit, err));
	CHECK_OK(vm_quota_enable(pool, err));
	CHECK_OK(vm_quota_status_flags(pool, &flags, err));
	if (flags != VM_QUOTA_FLAG_ON)
		fail("status flags %#llx after enable, expected only ON",
		     (unsigned long long)flags);
	expect_usage(snap_id, &rfer, &excl, &limit);
	if (excl != excl_before || limit != 0)
		fail("after the rescan: exclusive %llu (was %llu), limit %llu (limits "
		     "go with the quota tree)", (unsigned long long)excl,
		     (unsigned long long)excl_before, (unsigned long long)limit);

	simple_quotas(pool);

	step("read-only pool: enable is still fine (probed), changes are EROFS");
	snap_fd = (close(snap_fd), -1);
	a_fd = (close(a_fd), -1);
	if (mount(NULL, T.mnt, NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
		fail("remount read-only: %m");
	CHECK_OK(vm_quota_enable(pool, err));
	CHECK_OK(vm_quota_status(pool, &on, err));
	if (!on)
		fail("quota not reported enabled on the read-only pool");
	expect_usage(snap_id, &rfer, &excl, &limit);
	CHECK_ERR(EROFS, vm_quota_limit_exclusive(pool, snap_id, LIMIT, err));

	step("clean up");
	cleanup();
	if (access(T.dir, F_OK) == 0)
		fail("%s left behind", T.dir);
	printf("\nPASS: quota-btrfs\n");
	return 0;
}
