/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "client.h"

#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "control.h"

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
	struct iovec iov = {(void *)text, strlen(text)};
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

static int recv_reply(int sock, char **ret, size_t *ret_len)
{
	/* Peek at the size of the next message, then take it whole. */
	ssize_t n;
	do
		n = recv(sock, NULL, 0, MSG_PEEK | MSG_TRUNC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ECONNRESET;
	if ((size_t)n > VM_CONTROL_REPLY_MAX)
		return -EMSGSIZE;
	char *buf = malloc((size_t)n + 1);
	if (!buf)
		return -ENOMEM;
	ssize_t m;
	do
		m = recv(sock, buf, (size_t)n, 0);
	while (m < 0 && errno == EINTR);
	if (m < 0) {
		int e = errno;
		free(buf);
		return -e;
	}
	buf[m] = '\0';
	*ret = buf;
	*ret_len = (size_t)m;
	return 0;
}

int vm_client_call_progress(int sock, const char *op, json_t *args, int fd,
			    vm_client_progress_fn fn, void *userdata, json_t **ret_reply,
			    struct vm_error *err)
{
	json_t *req = json_pack("{s:s, s:o}", "op", op, "args", args ? args : json_object());
	if (req && fn)
		json_object_set_new(req, "progress", json_true());
	char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!text)
		return vm_error_set(err, ENOMEM, "out of memory");
	int r = send_request(sock, text, fd);
	free(text);
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
