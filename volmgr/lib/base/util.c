/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "util.h"

#include "fault.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

__attribute__((format(printf, 4, 0)))
static int error_vset(struct vm_error *err, int code, bool with_errno,
		      const char *fmt, va_list ap)
{
	if (code < 0)
		code = -code;
	if (code == 0)
		code = EIO;
	if (err && err->code == 0) {
		err->code = code;
		int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		if (with_errno && n >= 0 && (size_t)n < sizeof(err->msg))
			snprintf(err->msg + n, sizeof(err->msg) - n, ": %s",
				 strerror(code));
		vm_utf8_sanitize(err->msg);
	}
	return -code;
}

int vm_error_set(struct vm_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = error_vset(err, code, false, fmt, ap);
	va_end(ap);
	return r;
}

int vm_error_errno(struct vm_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = error_vset(err, code, true, fmt, ap);
	va_end(ap);
	return r;
}

int vm_error_copy(struct vm_error *dst, const struct vm_error *src)
{
	return vm_error_set(dst, src->code, "%s", src->msg);
}

int vm_error_wrap(struct vm_error *err, int r, const char *fmt, ...)
{
	if (r >= 0)
		r = -EIO;
	char ctx[sizeof(err->msg)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	if (!err)
		return r;
	if (err->code == 0)
		return vm_error_errno(err, -r, "%s", ctx);
	char inner[sizeof(err->msg)];
	memcpy(inner, err->msg, sizeof(inner));
	size_t cap = sizeof(err->msg) - 1, n = strnlen(ctx, cap);
	memcpy(err->msg, ctx, n);
	for (const char *p = ": "; *p && n < cap; p++)
		err->msg[n++] = *p;
	size_t m = strnlen(inner, cap - n);
	memcpy(err->msg + n, inner, m);
	err->msg[n + m] = '\0';
	vm_utf8_sanitize(err->msg); /* a cut may split a character */
	return r;
}

int64_t vm_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t vm_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void vm_format_time(int64_t ns, char buf[static 40])
{
	time_t sec = (time_t)(ns / 1000000000LL);
	struct tm tm;
	gmtime_r(&sec, &tm);
	size_t n = strftime(buf, 40, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, 40 - n, ".%09lldZ", (long long)(ns % 1000000000LL));
}

int vm_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int vm_read_file_at(int dirfd, const char *name, size_t max, char **ret,
		    size_t *ret_len)
{
	/* First as O_PATH: a fifo or device node planted under the name is
	 * never opened (opening some devices acts: a watchdog arms). */
	_cleanup_close_ int pfd = vm_openat_beneath(dirfd, name, O_PATH | O_CLOEXEC, 0);
	if (pfd < 0)
		return pfd;
	_cleanup_close_ int fd = vm_reopen_regular(pfd);
	if (fd < 0)
		return fd;
	return vm_read_fd(fd, max, ret, ret_len);
}

int vm_reopen_regular(int pathfd)
{
	struct stat st;
	if (fstat(pathfd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADMSG;
	/* The same inode, whatever the name points to now. */
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", pathfd);
	int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int vm_read_fd(int fd, size_t max, char **ret, size_t *ret_len)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADMSG;
	if ((size_t)st.st_size > max)
		return -EFBIG;
	size_t cap = (size_t)st.st_size + 1, len = 0;
	_cleanup_free_ char *buf = malloc(cap + 1);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == cap) /* grew underneath us: refuse */
			return -EFBIG;
	}
	buf[len] = '\0';
	if (ret_len)
		*ret_len = len;
	*ret = TAKE_PTR(buf);
	return 0;
}

void vm_random_hex(char *buf, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[32];
	size_t want = (n + 1) / 2;
	if (want > sizeof(raw))
		want = sizeof(raw);
	if (getrandom(raw, want, 0) != (ssize_t)want) {
		/* getrandom on a booted system does not fail; mix the clock in
		 * as a last resort so names still differ. */
		int64_t t = vm_now_ns() ^ (int64_t)getpid();
		for (size_t i = 0; i < want; i++)
			raw[i] = (unsigned char)(t >> ((i % 8) * 8));
	}
	size_t i;
	for (i = 0; i < n && i / 2 < want; i++)
		buf[i] = hex[(raw[i / 2] >> ((i % 2) ? 0 : 4)) & 0xf];
	buf[i] = '\0';
}

int vm_write_file_atomic_at(int dirfd, const char *name, const void *data,
			    size_t len, mode_t mode)
{
	char tmp[300];
	char rnd[17];
	vm_random_hex(rnd, 16);
	int n = snprintf(tmp, sizeof(tmp), ".%s.tmp-%s", name, rnd);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -ENAMETOOLONG;
	_cleanup_close_ int fd = openat(
		dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		mode);
	if (fd < 0)
		return -errno;
	int r = vm_write_all(fd, data, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	VM_FAULT("record.written");
	if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(dirfd, tmp, 0);
		return r;
	}
	if (fsync(dirfd) < 0)
		return -errno;
	return 0;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates, beyond U+10FFFF. */
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* C0 controls, DEL, and the C1 controls U+0080..U+009F (encoded C2 80..
 * C2 9F): a terminal acts on both kinds, so neither may reach a log line
 * or a stored string. */
static bool utf8_is_control(const unsigned char *p, size_t n)
{
	return (n == 1 && (*p < 0x20 || *p == 0x7f)) ||
	       (n == 2 && p[0] == 0xc2 && p[1] <= 0x9f);
}

void vm_utf8_sanitize(char *s)
{
	unsigned char *p = (unsigned char *)s;
	while (*p) {
		size_t n = utf8_seq(p);
		if (n == 0 || utf8_is_control(p, n)) {
			/* One '?' per byte keeps the string's length. */
			size_t k = n ? n : 1;
			memset(p, '?', k);
			p += k;
			continue;
		}
		p += n;
	}
}

size_t vm_log_escape(const char *s, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0;
	if (cap == 0)
		return 0;
	while (*p) {
		size_t n = utf8_seq(p);
		bool escape = n == 0 || utf8_is_control(p, n);
		size_t k = n ? n : 1;
		size_t need = escape ? 4 * k : (*p == '\\' ? 2 : k);
		if (o + need >= cap)
			break;
		if (escape) {
			for (size_t i = 0; i < k; i++) {
				out[o++] = '\\';
				out[o++] = 'x';
				out[o++] = hex[p[i] >> 4];
				out[o++] = hex[p[i] & 15];
			}
		} else if (*p == '\\') {
			out[o++] = '\\';
			out[o++] = '\\';
		} else {
			memcpy(out + o, p, k);
			o += k;
		}
		p += k;
	}
	out[o] = '\0';
	return o;
}

bool vm_utf8_has_control(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	while (p < end) {
		size_t n = utf8_seq(p);
		if (n == 0 || (size_t)(end - p) < n)
			return true; /* invalid counts as unsafe too */
		if (utf8_is_control(p, n))
			return true;
		p += n;
	}
	return false;
}

static bool force_fallback;

void vm_openat_force_fallback(bool on) { force_fallback = on; }

bool vm_is_plain_component(const char *name)
{
	return name && name[0] && strcmp(name, ".") != 0 &&
	       strcmp(name, "..") != 0 && !strchr(name, '/');
}

int vm_openat2(int dirfd, const char *path, uint64_t flags, uint64_t resolve)
{
	struct open_how how = {.flags = flags, .resolve = resolve};
	long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	return fd < 0 ? -errno : (int)fd;
}

int vm_openat_beneath(int dirfd, const char *name, int flags, mode_t mode)
{
	if (!vm_is_plain_component(name))
		return -EINVAL;
#ifdef SYS_openat2
	if (!force_fallback) {
		struct open_how how = {
			.flags = (uint64_t)(flags | O_NOFOLLOW),
			.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
			.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
				   RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
		};
		long fd = syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
		if (fd >= 0)
			return (int)fd;
		/* ENOSYS: old kernel; EPERM: a seccomp filter that refuses
		 * the unknown syscall.  Anything else is the real answer. */
		if (errno != ENOSYS && errno != EPERM)
			return -errno;
	}
#endif
	int fd = openat(dirfd, name, flags | O_NOFOLLOW, mode);
	return fd < 0 ? -errno : fd;
}

int vm_open_path_beneath(int dirfd, const char *relpath, int flags)
{
	if (!relpath[0]) {
		int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
		return fd < 0 ? -errno : fd;
	}
	_cleanup_free_ char *p = strdup(relpath);
	if (!p)
		return -ENOMEM;
	_cleanup_close_ int dir = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	if (dir < 0)
		return -errno;
	char *comp = p, *slash;
	while ((slash = strchr(comp, '/'))) {
		*slash = '\0';
		int next = vm_openat_beneath(dir, comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		if (next < 0)
			return next;
		close(dir);
		dir = next;
		comp = slash + 1;
	}
	return vm_openat_beneath(dir, comp, flags, 0);
}

int vm_send_with_fd(int sock, const void *buf, size_t len, int fd)
{
	struct iovec iov = {(void *)buf, len};
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	if (fd >= 0) {
		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.b;
		msg.msg_controllen = sizeof(ctl.b);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	ssize_t n;
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : 0;
}

DIR *vm_opendir_at(int fd)
{
	int d = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (d < 0)
		return NULL;
	DIR *dir = fdopendir(d);
	if (!dir)
		close(d);
	else
		rewinddir(dir);
	return dir;
}

void *vm_grow(void **items, size_t n, size_t *cap, size_t size)
{
	if (n >= *cap) {
		size_t c = *cap ? *cap + *cap / 2 : 16;
		if (c <= n)
			c = n + 1;
		void *p = reallocarray(*items, c, size);
		if (!p)
			return NULL;
		*items = p;
		*cap = c;
	}
	return (char *)*items + n * size;
}

void vm_log_to(vm_log_fn fn, void *userdata, const char *fmt, ...)
{
	if (!fn)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fn(userdata, line);
}
