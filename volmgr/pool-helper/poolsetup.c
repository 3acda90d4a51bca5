/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "poolsetup.h"

#include <dirent.h>
#include <fcntl.h>
#include <libmount/libmount.h>
#include <libudev.h>
#include <linux/loop.h>
#include <linux/magic.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>

#include "pool.h"
#include "quota.h"

#define DEFAULT_SIZE (UINT64_C(20) << 30)
#define UDEV_WAIT_MS 10000

/* Attach image to a free loop device, read-write, detached again when
 * its last user goes (autoclear): the caller keeps the returned fd open
 * until the mount holds the device.  ret: "/dev/loopN". */
static int loop_attach(const char *image, char ret[static 64], int *ret_fd,
		       struct vm_error *err)
{
	_cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return vm_error_errno(err, errno, "cannot open /dev/loop-control");
	_cleanup_close_ int img = open(image, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (img < 0)
		return vm_error_errno(err, errno, "cannot open %s", image);
	for (int attempt = 0; attempt < 16; attempt++) {
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0)
			return vm_error_errno(err, errno, "no free loop device");
		snprintf(ret, 64, "/dev/loop%d", n);
		_cleanup_close_ int dev = open(ret, O_RDWR | O_CLOEXEC);
		if (dev < 0)
			return vm_error_errno(err, errno, "cannot open %s", ret);
		struct loop_config cfg = {.fd = (uint32_t)img,
					  .info = {.lo_flags = LO_FLAGS_AUTOCLEAR}};
		snprintf((char *)cfg.info.lo_file_name, LO_NAME_SIZE, "%s", image);
		if (ioctl(dev, LOOP_CONFIGURE, &cfg) == 0) {
			*ret_fd = TAKE_FD(dev);
			return 0;
		}
		if (errno == EBUSY)
			continue; /* someone took it between GET_FREE and us */
		if (errno != EINVAL && errno != ENOTTY)
			return vm_error_errno(err, errno, "cannot attach %s to %s", image, ret);
		/* No LOOP_CONFIGURE (before 5.8): the two-step way. */
		if (ioctl(dev, LOOP_SET_FD, img) < 0) {
			if (errno == EBUSY)
				continue;
			return vm_error_errno(err, errno, "cannot attach %s to %s", image, ret);
		}
		if (ioctl(dev, LOOP_SET_STATUS64, &cfg.info) < 0) {
			int e = errno;
			ioctl(dev, LOOP_CLR_FD, 0);
			return vm_error_errno(err, e, "cannot configure %s", ret);
		}
		*ret_fd = TAKE_FD(dev);
		return 0;
	}
	return vm_error_set(err, EBUSY, "no loop device could be had");
}

/* Wait until udev has processed the new device (its symlinks and rules
 * ran), so that mkfs and mount do not race with udev's own probing.
 * Without a running udevd there is nothing to wait for. */
static int udev_settle_device(const char *devnode, json_t *notes)
{
	if (access("/run/udev/control", F_OK) < 0) {
		json_array_append_new(notes, json_string("udev is not running: not waiting for it"));
		return 0;
	}
	struct udev *u = udev_new();
	if (!u)
		return -ENOMEM;
	struct stat st;
	int r = -ETIMEDOUT;
	if (stat(devnode, &st) == 0) {
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (;;) {
			struct udev_device *d = udev_device_new_from_devnum(u, 'b', st.st_rdev);
			bool done = d && udev_device_get_is_initialized(d) > 0;
			udev_device_unref(d);
			if (done) {
				r = 0;
				break;
			}
			clock_gettime(CLOCK_MONOTONIC, &t1);
			if ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 > UDEV_WAIT_MS)
				break;
			poll(NULL, 0, 50);
		}
	}
	udev_unref(u);
	json_array_append_new(notes, json_string(r == 0 ? "udev has processed the device"
							: "udev did not process the device in 10 s"));
	return r;
}

static int run_mkfs(const char *mkfs, const char *dev, struct vm_error *err)
{
	pid_t pid = fork();
	if (pid < 0)
		return vm_error_errno(err, errno, "fork");
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, 1);
		execl(mkfs, mkfs, "-q", "-L", VM_POOL_LABEL, dev, (char *)NULL);
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return vm_error_set(err, EIO, "%s %s failed (status %d)", mkfs, dev,
				    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}

static int mount_btrfs(const char *dev, const char *target, struct vm_error *err)
{
	struct libmnt_context *cxt = mnt_new_context();
	if (!cxt)
		return vm_error_set(err, ENOMEM, "out of memory");
	int r = mnt_context_set_source(cxt, dev);
	if (r == 0)
		r = mnt_context_set_target(cxt, target);
	if (r == 0)
		r = mnt_context_set_fstype(cxt, "btrfs");
	if (r == 0)
		r = mnt_context_set_options(cxt, "noatime");
	if (r == 0)
		r = mnt_context_mount(cxt);
	int syserr = mnt_context_get_syscall_errno(cxt);
	mnt_free_context(cxt);
	if (r != 0)
		return vm_error_errno(err, syserr ? syserr : EIO, "cannot mount %s at %s", dev, target);
	return 0;
}

int vm_mount_unit_name(const char *path, char **ret)
{
	/* systemd-escape --path --suffix=mount: strip slashes, "/" -> "-",
	 * anything but [A-Za-z0-9:_.] (and a leading ".") as \xNN. */
	while (*path == '/')
		path++;
	size_t n = strlen(path);
	while (n > 0 && path[n - 1] == '/')
		n--;
	char *out = malloc(n * 4 + 8);
	if (!out)
		return -ENOMEM;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)path[i];
		if (c == '/')
			out[o++] = '-';
		else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			 c == ':' || c == '_' || (c == '.' && i > 0))
			out[o++] = (char)c;
		else
			o += (size_t)sprintf(out + o, "\\x%02x", c);
	}
	strcpy(out + o, ".mount");
	*ret = out;
	return 0;
}

static int write_mount_unit(const char *dir, const char *image, const char *pool,
			    char **ret_path, struct vm_error *err)
{
	_cleanup_free_ char *name = NULL;
	if (vm_mount_unit_name(pool, &name) < 0)
		return vm_error_set(err, ENOMEM, "out of memory");
	char *path;
	if (asprintf(&path, "%s/%s", dir, name) < 0)
		return vm_error_set(err, ENOMEM, "out of memory");
	_cleanup_free_ char *text = NULL;
	if (asprintf(&text,
		     "# Made by `volmgr pool init`: the volmgr pool, a btrfs image on a loop device.\n"
		     "[Unit]\n"
		     "Description=volmgr pool at %s\n"
		     "Documentation=man:volmgr(8)\n"
		     "Before=volmgrd.service\n"
		     "\n[Mount]\n"
		     "What=%s\nWhere=%s\nType=btrfs\nOptions=loop,noatime\n"
		     "\n[Install]\nWantedBy=local-fs.target\nRequiredBy=volmgrd.service\n",
		     pool, image, pool) < 0) {
		free(path);
		return vm_error_set(err, ENOMEM, "out of memory");
	}
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = dfd < 0 ? -errno : vm_write_file_atomic_at(dfd, name, text, strlen(text), 0644);
	if (r < 0) {
		free(path);
		return vm_error_errno(err, -r, "cannot write %s/%s", dir, name);
	}
	*ret_path = path;
	return 0;
}

static bool dir_empty(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return errno == ENOENT;
	struct dirent *de;
	bool empty = true;
	while ((de = readdir(d)))
		if (vm_is_plain_component(de->d_name))
			empty = false;
	closedir(d);
	return empty;
}

int vm_pool_init(const struct vm_pool_init *o, json_t **ret, struct vm_error *err)
{
	if (!o->pool || o->pool[0] != '/')
		return vm_error_set(err, EINVAL, "the pool directory must be an absolute path");
	struct statfs sfs;
	if (statfs(o->pool, &sfs) == 0 && sfs.f_type == BTRFS_SUPER_MAGIC) {
		*ret = json_pack("{s:s, s:b, s:s}", "pool", o->pool, "created", 0, "note",
				 "already on btrfs: nothing to do");
		return 0;
	}
	if (!dir_empty(o->pool))
		return vm_error_set(err, ENOTEMPTY,
				    "%s is not empty: a pool mounted over it would hide its files", o->pool);
	_cleanup_free_ char *image = NULL;
	if (o->image)
		image = strdup(o->image);
	else if (asprintf(&image, "%s.img", o->pool) < 0)
		image = NULL;
	if (!image || image[0] != '/')
		return vm_error_set(err, EINVAL, "the image must be an absolute path");
	uint64_t size = o->size ? o->size : DEFAULT_SIZE;
	if (size < (UINT64_C(256) << 20))
		return vm_error_set(err, EINVAL, "a pool needs at least 256M");

	/* The image: new, sparse, root's only. */
	_cleanup_close_ int img = open(image, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (img < 0)
		return vm_error_errno(err, errno, "cannot create %s", image);
	if (ftruncate(img, (off_t)size) < 0) {
		int e = errno;
		unlink(image);
		return vm_error_errno(err, e, "cannot size %s", image);
	}
	closep(&img);
	json_t *notes = json_array();
	char dev[64];
	_cleanup_close_ int devfd = -1;
	int r = loop_attach(image, dev, &devfd, err);
	if (r == 0)
		udev_settle_device(dev, notes);
	if (r == 0)
		r = run_mkfs(o->mkfs ? o->mkfs : "/sbin/mkfs.btrfs", dev, err);
	if (r == 0 && mkdir(o->pool, 0711) < 0 && errno != EEXIST)
		r = vm_error_errno(err, errno, "cannot create %s", o->pool);
	if (r == 0)
		r = mount_btrfs(dev, o->pool, err);
	if (r < 0) {
		/* Autoclear detaches the loop device once nothing holds it. */
		unlink(image);
		json_decref(notes);
		return r;
	}
	_cleanup_free_ char *unit = NULL;
	if (o->unit_dir && (r = write_mount_unit(o->unit_dir, image, o->pool, &unit, err)) < 0) {
		json_decref(notes);
		return r;
	}
	*ret = json_pack("{s:s, s:s, s:s, s:b, s:I, s:s?, s:o}", "pool", o->pool, "image", image,
			 "device", dev, "created", 1, "size", (json_int_t)size, "unit", unit,
			 "notes", notes);
	return *ret ? 0 : vm_error_set(err, ENOMEM, "out of memory");
}

static void loop_backing(const char *devname, char *buf, size_t n)
{
	char p[128];
	buf[0] = '\0';
	if (strncmp(devname, "/dev/loop", 9) != 0)
		return;
	snprintf(p, sizeof(p), "/sys/block/%s/loop/backing_file", devname + 5);
	_cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
	ssize_t k = fd >= 0 ? read(fd, buf, n - 1) : -1;
	if (k > 0) {
		buf[k] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
	} else {
		buf[0] = '\0';
	}
}

int vm_pool_status(const char *pool, json_t **ret, struct vm_error *err)
{
	_cleanup_close_ int fd = open(pool, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return vm_error_errno(err, errno, "cannot open %s", pool);
	char fstype[64];
	_cleanup_free_ char *target = NULL, *root = NULL;
	dev_t dev;
	int r = vm_fs_probe(fd, pool, fstype, &target, &root, &dev, err);
	if (r < 0)
		return r;
	struct statfs sfs;
	if (fstatfs(fd, &sfs) < 0)
		return vm_error_errno(err, errno, "statfs %s", pool);
	bool btrfs = sfs.f_type == BTRFS_SUPER_MAGIC;
	/* The device: from mountinfo's source for this mount point. */
	const char *source = "";
	struct libmnt_table *tb = mnt_new_table_from_file("/proc/self/mountinfo");
	struct libmnt_fs *fs = tb ? mnt_table_find_target(tb, target, MNT_ITER_BACKWARD) : NULL;
	if (fs && mnt_fs_get_source(fs))
		source = mnt_fs_get_source(fs);
	char backing[4096];
	loop_backing(source, backing, sizeof(backing));
	const char *quota = "n/a";
	bool on = false;
	if (btrfs && vm_quota_status(fd, &on, NULL) == 0)
		quota = on ? "on" : "off";
	*ret = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?, s:I, s:I, s:s}", "pool", pool, "fstype",
			 fstype, "backend", btrfs ? "btrfs" : "reflink or copy (volmgrd probes which: volmgr status)", "mount_point", target,
			 "device", source, "image", backing[0] ? backing : NULL, "size",
			 (json_int_t)((uint64_t)sfs.f_blocks * (uint64_t)sfs.f_bsize), "free",
			 (json_int_t)((uint64_t)sfs.f_bavail * (uint64_t)sfs.f_bsize), "quota", quota);
	mnt_unref_table(tb);
	return *ret ? 0 : vm_error_set(err, ENOMEM, "out of memory");
}
