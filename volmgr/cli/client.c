/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "client.h"

#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

#include "control-wire.h"
#include "json-util.h"

int vm_client_connect(const char *path, struct vm_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return vm_error_set(err, ENAMETOOLONG, "socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vm_error_errno(err, errno, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		return vm_error_errno(err, e, "cannot reach volmgrd at %s", path);
	}
	return fd;
}

static int send_request(int sock, const char *text, int fd)
{
	return vm_send_with_fd(sock, text, strlen(text), fd);
}

/* The text of a reply that came in a memfd: sealed against writes and
 * size changes (so it cannot change under us), and of the size the
 * message announced. */
static int read_reply_fd(int fd, json_t *head, char **ret, size_t *ret_len)
{
	json_t *lj = json_object_get(head, "reply_fd");
	if (json_object_size(head) != 1 || !json_is_integer(lj))
		return -EPROTO;
	json_int_t len = json_integer_value(lj);
	int seals = fcntl(fd, F_GET_SEALS);
	const int want = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
	struct stat st;
	if (seals < 0 || (seals & want) != want || fstat(fd, &st) < 0 ||
	    !S_ISREG(st.st_mode) || len <= 0 || len > VM_CONTROL_REPLY_MAX || st.st_size != len)
		return -EPROTO;
	char *buf = malloc((size_t)len + 1);
	if (!buf)
		return -ENOMEM;
	size_t got = 0;
	while (got < (size_t)len) {
		ssize_t n = pread(fd, buf + got, (size_t)len - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EPROTO;
			free(buf);
			return -e;
		}
		got += (size_t)n;
	}
	buf[len] = '\0';
	*ret = buf;
	*ret_len = (size_t)len;
	return 0;
}

/* One reply: an inline message, or a short header with a memfd. */
static int recv_reply(int sock, char **ret, size_t *ret_len)
{
	char *buf = malloc(VM_CONTROL_INLINE_MAX + 1);
	if (!buf)
		return -ENOMEM;
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	struct iovec iov = {buf, VM_CONTROL_INLINE_MAX};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b)};
	ssize_t n;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	int e = n < 0 ? errno : 0;
	/* Take every passed fd, so that none leaks whatever happens next. */
	int fds[4], nfds = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); n >= 0 && c; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			for (size_t k = 0; k < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int) && nfds < 4; k++)
				memcpy(&fds[nfds++], CMSG_DATA(c) + k * sizeof(int), sizeof(int));
	int r = 0;
	size_t len = n > 0 ? (size_t)n : 0;
	if (n < 0)
		r = -e;
	else if (n == 0)
		r = -ECONNRESET;
	else if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC) || nfds > 1)
		r = -EMSGSIZE;
	if (r == 0 && nfds == 1) {
		buf[len] = '\0';
		json_t *head = json_loadb(buf, len, 0, NULL);
		r = read_reply_fd(fds[0], head, ret, ret_len);
		json_decref(head);
		free(buf);
		buf = NULL;
	} else if (r == 0) {
		buf[len] = '\0';
		*ret = buf;
		*ret_len = len;
		buf = NULL;
	}
	for (int k = 0; k < nfds; k++)
		close(fds[k]);
	free(buf);
	return r;
}


int vm_client_call_progress(int sock, const char *op, json_t *args, int fd,
			    vm_client_progress_fn fn, void *userdata, json_t **ret_reply,
			    struct vm_error *err)
{
	/* The fd goes with the request and is closed here once sent: the
	 * daemon has its own copy, and this process keeps nothing open in
	 * the tree while the daemon works (a removal would count it as a
	 * process holding the volume). */
	_cleanup_close_ int passed = fd;
	json_t *req = json_pack("{s:s, s:o}", "op", op, "args", args ? args : json_object());
	if (req && fn)
		json_object_set_new(req, "progress", json_true());
	char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!text)
		return vm_error_set(err, ENOMEM, "out of memory");
	int r = send_request(sock, text, passed);
	free(text);
	closep(&passed);
	if (r < 0)
		return vm_error_errno(err, -r, "cannot send the request to volmgrd");
	/* Progress messages (if asked for) come first, then the reply. */
	for (;;) {
		_cleanup_free_ char *buf = NULL;
		size_t len = 0;
		r = recv_reply(sock, &buf, &len);
		if (r < 0)
			return vm_error_errno(err, -r, "no reply from volmgrd");
		json_error_t jerr;
		json_t *reply = json_loadb(buf, len, 0, &jerr);
		if (!json_is_object(reply)) {
			json_decref(reply);
			return vm_error_set(err, EPROTO, "malformed reply from volmgrd");
		}
		json_t *p = json_object_get(reply, "progress");
		if (p && !json_object_get(reply, "ok")) {
			if (fn)
				fn(p, userdata);
			json_decref(reply);
			continue;
		}
		*ret_reply = reply;
		return 0;
	}
}

int vm_client_call(int sock, const char *op, json_t *args, int fd,
		   json_t **ret_reply, struct vm_error *err)
{
	return vm_client_call_progress(sock, op, args, fd, NULL, NULL, ret_reply, err);
}

int vm_client_request(const char *socket_path, const char *op, json_t *args, int fd,
		      json_t **ret, struct vm_error *err)
{
	return vm_client_request_timeout(socket_path, op, args, fd, 0, ret, err);
}

int vm_client_request_timeout(const char *socket_path, const char *op, json_t *args, int fd,
			      int timeout_ms, json_t **ret, struct vm_error *err)
{
	int sock = vm_client_connect(socket_path, err);
	if (sock < 0) {
		if (fd >= 0)
			close(fd);
		json_decref(args);
		/* Whatever connect said (ENOENT when the socket is gone), to
		 * the caller it is volmgrd not answering, not a missing object. */
		err->code = ECONNREFUSED;
		return -ECONNREFUSED;
	}
	if (timeout_ms > 0) {
		struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = timeout_ms % 1000 * 1000};
		(void)setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		(void)setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	_cleanup_json_ json_t *reply = NULL;
	int r = vm_client_call(sock, op, args, fd, &reply, err);
	close(sock);
	if (r == -EAGAIN && timeout_ms > 0) {
		*err = (struct vm_error){0}; /* "no reply from volmgrd: EAGAIN" */
		return vm_error_set(err, ETIMEDOUT, "volmgrd did not answer %s within %d ms", op,
				    timeout_ms);
	}
	if (r < 0)
		return r;
	if (!json_is_true(json_object_get(reply, "ok"))) {
		json_t *er = json_object_get(reply, "error");
		int code = (int)json_integer_value(json_object_get(er, "errno"));
		return vm_error_set(err, code > 0 ? code : EIO, "%s",
				    json_string_value(json_object_get(er, "message")) ?: "volmgrd failed");
	}
	*ret = json_incref(json_object_get(reply, "result"));
	return 0;
}
