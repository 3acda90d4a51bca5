/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Small helpers shared by every part of volmgr: cleanup attributes,
 * ownership transfer, and an error record that carries a message from
 * deep inside the library up to the front end that logs it. */
#pragma once

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

/* Hand ownership of a pointer or fd to someone else: the cleanup handler
 * of the local variable then sees NULL / -1 and does nothing. */
#define TAKE_PTR(p)                                                            \
	({                                                                     \
		__typeof__(p) _p = (p);                                        \
		(p) = NULL;                                                    \
		_p;                                                            \
	})
#define TAKE_FD(fd)                                                            \
	({                                                                     \
		int _fd = (fd);                                                \
		(fd) = -1;                                                     \
		_fd;                                                           \
	})

static inline void freep(void *p) { free(*(void **)p); }
#define _cleanup_free_ _cleanup_(freep)

/* Close and forget: *fd becomes -1, so a later closep (the cleanup of a
 * _cleanup_close_ variable closed early) does nothing.  Without the reset
 * the second close hit whatever fd another thread had opened under the
 * same number meanwhile (seen under load: volmgrd aborted). */
static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
		*fd = -1;
	}
}
#define _cleanup_close_ _cleanup_(closep)

/* An error travels as a negative errno return value plus this record,
 * which says what failed and on what.  Library code fills it; only the
 * front ends print it. */
struct vm_error {
	int code; /* positive errno */
	char msg[512];
};

/* Set err (if not NULL, and not already set) and return -code. */
int vm_error_set(struct vm_error *err, int code, const char *fmt, ...)
	_printf_(3, 4);
/* Same, with ": strerror(code)" appended. */
int vm_error_errno(struct vm_error *err, int code, const char *fmt, ...)
	_printf_(3, 4);

/* Pass an error up unchanged: dst (if not NULL, and not already set)
 * gets src's code and message.  Returns -src's code (-EIO if unset). */
int vm_error_copy(struct vm_error *dst, const struct vm_error *src);
/* Add context on the way up: err's message becomes "CONTEXT: message"
 * (cut to fit, code kept); an err not set yet gets code -r and
 * "CONTEXT: strerror(-r)".  Returns r, a negative errno. */
int vm_error_wrap(struct vm_error *err, int r, const char *fmt, ...) _printf_(3, 4);

/* Where the library's few log lines go: the front end's logger, called
 * with its userdata and one line. */
typedef void (*vm_log_fn)(void *userdata, const char *line);
/* Format one line (cut at 1 KiB) and hand it to fn; nothing if fn is
 * NULL. */
void vm_log_to(vm_log_fn fn, void *userdata, const char *fmt, ...) _printf_(3, 4);

/* Clock helpers: nanoseconds since the epoch, and RFC 3339 formatting. */
/* CLOCK_MONOTONIC in nanoseconds: for durations and timeouts. */
int64_t vm_mono_ns(void);
int64_t vm_now_ns(void);
void vm_format_time(int64_t ns, char buf[static 40]);

/* Send one message on a socket with at most one fd (SCM_RIGHTS; -1 for
 * none), retrying on EINTR, without SIGPIPE.  0 or -errno. */
int vm_send_with_fd(int sock, const void *buf, size_t len, int fd);
/* Write a whole buffer, retrying on EINTR and short writes. */
int vm_write_all(int fd, const void *buf, size_t len);
/* Read a whole (small) file relative to dirfd into a NUL-terminated buffer,
 * refusing files larger than max. */
int vm_read_file_at(int dirfd, const char *name, size_t max, char **ret,
		    size_t *ret_len);
/* The same from an open regular file. */
int vm_read_fd(int fd, size_t max, char **ret, size_t *ret_len);
/* Create (or replace) dirfd/name with the given content, atomically:
 * write a temporary file, fsync it, rename it over, fsync the directory. */
int vm_write_file_atomic_at(int dirfd, const char *name, const void *data,
			    size_t len, mode_t mode);

/* Open a single path component beneath dirfd without following symlinks
 * or crossing into magic links.  Uses openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS) when the kernel has it and falls back to openat
 * with O_NOFOLLOW, which is equivalent for a single component. */
int vm_openat_beneath(int dirfd, const char *name, int flags, mode_t mode);
/* Open a relative path beneath dirfd one component at a time with
 * vm_openat_beneath (no symlink, no "..", no magic link anywhere on the
 * way).  Intermediate components are opened as directories.  "" is
 * dirfd itself: a new descriptor of it, flags ignored. */
int vm_open_path_beneath(int dirfd, const char *relpath, int flags);
/* The regular file open as O_PATH at pathfd, opened for reading (the same
 * inode, through /proc/self/fd); -EBADMSG if it is anything else, which
 * is never opened. */
int vm_reopen_regular(int pathfd);
/* openat2(2) with these flags and resolve bits: an fd or -errno (no
 * fallback: for callers that need the resolve rules, on kernels >= 5.6). */
int vm_openat2(int dirfd, const char *path, uint64_t flags, uint64_t resolve);
/* Test hook: force the openat fallback. */
void vm_openat_force_fallback(bool on);

/* A directory stream over a dup of fd, rewound to the start.  The dup
 * shares fd's offset: callers serialize the listings of one fd. */
DIR *vm_opendir_at(int fd);

/* True if name is a plain directory entry name (not "", ".", "..", no '/'). */
bool vm_is_plain_component(const char *name);

/* Replace every byte that is not part of valid UTF-8 (or is a control
 * character) with '?', in place: messages quote callers' strings, cut at
 * a byte count, and must still be valid JSON strings and one log line. */
void vm_utf8_sanitize(char *s);
/* A log line from any text: C0 and C1 controls, DEL and every byte that
 * is not part of valid UTF-8 become \xNN, a backslash "\\", so a
 * caller's string cannot end a line, forge another, drive a terminal
 * (ESC, CSI) or hide what it was.  Writes at most cap bytes with the NUL,
 * cutting at a whole character; returns the length. */
size_t vm_log_escape(const char *s, char *out, size_t cap);
/* Does s[0..len) hold a C0/C1 control character, DEL or invalid UTF-8? */
bool vm_utf8_has_control(const char *s, size_t len);

/* Room for item n of an array of items of size bytes that holds *cap
 * (grown by half, reallocarray: no overflow); the address of item n, or
 * NULL without memory (the array is left as it was). */
void *vm_grow(void **items, size_t n, size_t *cap, size_t size);

/* Random hex suffix for temporary names. */
void vm_random_hex(char *buf, size_t nbytes_hex);
