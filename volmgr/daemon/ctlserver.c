/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The control socket: SOCK_SEQPACKET, one thread per client (at most 64
 * at a time: past that the longest idle one is closed to make room, so
 * clients that connect and say nothing cannot lock the others out),
 * each message one request; the caller's credentials come from the kernel
 * (SO_PEERCRED), never from the request. */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>

#include "caller.h"
#include "fault.h"
#include "control.h"
#include "log.h"
#include "manager-ops.h"
#include "server.h"

#define MAX_CLIENTS 64
/* The most one user other than root may hold of them. */
#define MAX_PER_UID 16
#define IDLE_TIMEOUT_S 300
/* A client that does not read its replies is dropped after this. */
#define SEND_TIMEOUT_S 60
/* Clients being evicted still hold a thread for a moment: the hard cap. */
#define MAX_THREADS (2 * MAX_CLIENTS)
/* At stop, how long to wait for requests in progress to finish. */
#define STOP_WAIT_S 30

struct client;

struct vm_ctlserver {
	struct vm_manager *m;
	int listen_fd;
	enum vm_control_socket where; /* the control socket or the job socket */
	int stop_pipe[2];
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t idle; /* signalled when a client thread ends */
	unsigned clients; /* client threads, evicted ones included */
	unsigned evicted; /* of which told to go, not gone yet */
	struct client *list; /* the live clients, so stop can wake them */
};

struct client {
	struct vm_ctlserver *s;
	int fd;
	struct vm_caller caller;
	struct client *prev, *next;
	/* Under s->lock: handling a request, or since when idle. */
	bool busy, evicted;
	int64_t idle_since_ns;
};

static void set_busy(struct client *cl, bool busy)
{
	pthread_mutex_lock(&cl->s->lock);
	cl->busy = busy;
	cl->idle_since_ns = vm_mono_ns();
	pthread_mutex_unlock(&cl->s->lock);
}

/* Under s->lock, with every slot taken (of uid's, or of all with
 * ANY_UID): wake the client that has been idle longest (its recv returns
 * 0 and its thread ends), so that clients which connect and say nothing
 * cannot lock everyone else out for the idle timeout.  False if every
 * such client is in the middle of a request. */
#define ANY_UID UINT32_MAX

/* Under s->lock: the live (not evicted) clients of uid. */
static unsigned clients_of(struct vm_ctlserver *s, uint32_t uid)
{
	unsigned n = 0;
	for (struct client *cl = s->list; cl; cl = cl->next)
		n += cl->caller.uid == uid && !cl->evicted;
	return n;
}

static bool evict_idlest(struct vm_ctlserver *s, uint32_t uid)
{
	struct client *victim = NULL;
	for (struct client *cl = s->list; cl; cl = cl->next)
		if (!cl->busy && !cl->evicted && (uid == ANY_UID || cl->caller.uid == uid) &&
		    (!victim || cl->idle_since_ns < victim->idle_since_ns))
			victim = cl;
	if (!victim)
		return false;
	victim->evicted = true;
	s->evicted++;
	/* SHUT_RD only: a request it sent just before (received, not yet
	 * marked busy) still gets its reply; its next recv returns 0. */
	shutdown(victim->fd, SHUT_RD);
	vm_log("control: too many clients, closing the longest idle (pid=%d uid=%u)",
	       victim->caller.pid, victim->caller.uid);
	return true;
}

/* Both under s->lock. */
static void client_link(struct vm_ctlserver *s, struct client *cl)
{
	cl->prev = NULL;
	cl->next = s->list;
	if (s->list)
		s->list->prev = cl;
	s->list = cl;
}

static void client_unlink(struct vm_ctlserver *s, struct client *cl)
{
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		s->list = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
}

/* Receive one message and at most one passed fd.  A message that does
 * not fit is refused whole (MSG_TRUNC), and so is more than one fd. */
static ssize_t recv_request(int fd, char *buf, size_t cap, int *ret_fd)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int) * 4)];
	} ctl;
	struct iovec iov = {buf, cap};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b)};
	*ret_fd = -1;
	ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -errno;
	int nfds = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int fds[4];
		memcpy(fds, CMSG_DATA(c), k * sizeof(int));
		for (size_t i = 0; i < k; i++) {
			if (nfds++ == 0)
				*ret_fd = fds[i];
			else
				close(fds[i]);
		}
	}
	if (nfds > 1 || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		closep(ret_fd);
		*ret_fd = -1;
		return -EMSGSIZE;
	}
	return n;
}

/* Progress messages: never block the copy for a slow client; a message
 * that does not fit in the socket buffer now is dropped. */
static void send_nonblocking(void *userdata, json_t *msg)
{
	struct client *cl = userdata;
	char *text = json_dumps(msg, JSON_COMPACT);
	if (text)
		(void)!send(cl->fd, text, strlen(text), MSG_NOSIGNAL | MSG_DONTWAIT);
	free(text);
}

/* One reply: inline when short, else in a sealed memfd (control-wire.h). */
static int send_reply(int sock, const char *text)
{
	size_t len = strlen(text);
	if (len <= VM_CONTROL_INLINE_MAX)
		return vm_send_with_fd(sock, text, len, -1);
	if (len > VM_CONTROL_REPLY_MAX)
		return -EMSGSIZE;
	_cleanup_close_ int mfd = memfd_create("volmgr-reply", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (mfd < 0)
		return -errno;
	int r = vm_write_all(mfd, text, len);
	if (r < 0)
		return r;
	if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
		return -errno;
	char head[64];
	int hl = snprintf(head, sizeof(head), "{\"reply_fd\":%zu}", len);
	return vm_send_with_fd(sock, head, (size_t)hl, mfd);
}

static void *client_main(void *arg)
{
	struct client *cl = arg;
	struct vm_ctlserver *s = cl->s;
	char *buf = malloc(VM_CONTROL_REQUEST_MAX);
	struct timeval tv = {.tv_sec = IDLE_TIMEOUT_S};
	setsockopt(cl->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct timeval stv = {.tv_sec = SEND_TIMEOUT_S};
	setsockopt(cl->fd, SOL_SOCKET, SO_SNDTIMEO, &stv, sizeof(stv));
	while (buf) {
		int passed = -1;
		ssize_t n = recv_request(cl->fd, buf, VM_CONTROL_REQUEST_MAX, &passed);
		if (n == 0 || n == -EAGAIN || n == -ECONNRESET)
			break;
		set_busy(cl, true);
		json_t *reply;
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (n < 0) {
			reply = json_pack("{s:b, s:{s:i, s:s, s:s}}", "ok", 0, "error",
					  "errno", EMSGSIZE, "name", "EINVAL", "message",
					  n == -EMSGSIZE ? "request too large or more than one fd"
							 : "cannot read the request");
		} else {
			struct vm_control_sink sink = {send_nonblocking, cl};
			reply = vm_control_handle(&vm_control_manager_ops, s->m, &cl->caller, s->where,
						  buf, (size_t)n, passed, &sink);
		}
		closep(&passed);
		char *text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		json_t *e = json_object_get(reply, "error");
		vm_log("%s pid=%d uid=%u request=%.*s -> %s%.300s (%.1f ms)",
		       s->where == VM_CONTROL_SOCKET_JOB ? "job" : "control", cl->caller.pid, cl->caller.uid, n > 0 ? (int)(n < 200 ? n : 200) : 0, buf, e ? "error: " : "ok",
		       e ? json_string_value(json_object_get(e, "message")) : "",
		       (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
			       (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
		json_decref(reply);
		if (!text)
			break;
		int w = send_reply(cl->fd, text);
		if (w == -EMSGSIZE || w == -ENOMEM || w == -ENOSPC) {
			const char *big = "{\"ok\":false,\"error\":{\"errno\":90,\"name\":\"EIO\",\"message\":\"reply too large\"}}";
			w = send_reply(cl->fd, big);
		}
		free(text);
		if (w < 0)
			break;
		set_busy(cl, false);
	}
	free(buf);
	/* Unlinked before the fd is closed: stop shuts down the fds of the
	 * listed clients, and must never reach a number reused meanwhile. */
	pthread_mutex_lock(&s->lock);
	client_unlink(s, cl);
	if (cl->evicted)
		s->evicted--;
	pthread_mutex_unlock(&s->lock);
	close(cl->fd);
	closep(&cl->caller.pidfd);
	free(cl);
	pthread_mutex_lock(&s->lock);
	s->clients--;
	pthread_cond_broadcast(&s->idle);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct vm_ctlserver *s = arg;
	for (;;) {
		struct pollfd p[2] = {{s->listen_fd, POLLIN, 0}, {s->stop_pipe[0], POLLIN, 0}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		/* Tests hold an accepted connection here to reuse its
		 * caller's pid before the caller is identified. */
		VM_FAULT_PAUSE("control.accepted");
		struct vm_caller caller;
		if (vm_caller_from_socket(fd, vm_manager_proc(s->m), &caller) < 0) {
			close(fd);
			continue;
		}
		pthread_mutex_lock(&s->lock);
		/* One user (not root, which is the administrator and the
		 * engines) gets at most MAX_PER_UID of the slots: past that
		 * its own longest idle connection makes room, or it waits. */
		bool full = caller.uid != 0 && clients_of(s, caller.uid) >= MAX_PER_UID &&
			    !evict_idlest(s, caller.uid);
		full = full || s->clients >= MAX_THREADS ||
		       (s->clients - s->evicted >= MAX_CLIENTS && !evict_idlest(s, ANY_UID));
		if (!full)
			s->clients++;
		pthread_mutex_unlock(&s->lock);
		if (full) {
			const char *busy = "{\"ok\":false,\"error\":{\"errno\":16,\"name\":\"EBUSY\",\"message\":\"too many clients\"}}";
			send(fd, busy, strlen(busy), MSG_NOSIGNAL | MSG_DONTWAIT);
			closep(&caller.pidfd);
			close(fd);
			continue;
		}
		struct client *cl = malloc(sizeof(*cl));
		pthread_t t;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (cl) {
			*cl = (struct client){s, fd, caller};
			cl->idle_since_ns = vm_mono_ns();
			pthread_mutex_lock(&s->lock);
			client_link(s, cl);
			pthread_mutex_unlock(&s->lock);
			if (pthread_create(&t, &attr, client_main, cl) == 0) {
				pthread_attr_destroy(&attr);
				continue;
			}
			pthread_mutex_lock(&s->lock);
			client_unlink(s, cl);
			pthread_mutex_unlock(&s->lock);
			free(cl);
		}
		closep(&caller.pidfd);
		pthread_attr_destroy(&attr);
		close(fd);
		pthread_mutex_lock(&s->lock);
		s->clients--;
		pthread_mutex_unlock(&s->lock);
	}
	return NULL;
}

int vm_ctlserver_start(struct vm_manager *m, int listen_fd, enum vm_control_socket where,
		       struct vm_ctlserver **ret, struct vm_error *err)
{
	struct vm_ctlserver *s = calloc(1, sizeof(*s));
	if (!s)
		return vm_error_set(err, ENOMEM, "out of memory");
	s->m = m;
	s->listen_fd = listen_fd;
	s->where = where;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->idle, NULL);
	if (pipe2(s->stop_pipe, O_CLOEXEC) < 0) {
		pthread_cond_destroy(&s->idle);
		pthread_mutex_destroy(&s->lock);
		free(s);
		return vm_error_errno(err, errno, "pipe");
	}
	int r = pthread_create(&s->thread, NULL, accept_main, s);
	if (r != 0) {
		close(s->stop_pipe[0]);
		close(s->stop_pipe[1]);
		pthread_cond_destroy(&s->idle);
		pthread_mutex_destroy(&s->lock);
		free(s);
		return vm_error_errno(err, r, "cannot start the control thread");
	}
	*ret = s;
	return 0;
}

int vm_ctlserver_stop(struct vm_ctlserver *s)
{
	if (!s)
		return 0;
	(void)!write(s->stop_pipe[1], "x", 1);
	pthread_join(s->thread, NULL);
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
	close(s->listen_fd);
	/* Wake every client thread (its recv returns 0, so it ends after
	 * the request it may be handling) and wait for them: they use the
	 * manager, which the caller frees next.  A request that outlasts
	 * the wait (a long git clone) keeps its thread, and then s too. */
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += STOP_WAIT_S;
	pthread_mutex_lock(&s->lock);
	for (struct client *cl = s->list; cl; cl = cl->next)
		shutdown(cl->fd, SHUT_RDWR);
	while (s->clients > 0 && pthread_cond_timedwait(&s->idle, &s->lock, &until) == 0)
		;
	unsigned left = s->clients;
	pthread_mutex_unlock(&s->lock);
	if (left > 0) {
		vm_log("control: %u request(s) still running at stop", left);
		return -EBUSY;
	}
	pthread_cond_destroy(&s->idle);
	pthread_mutex_destroy(&s->lock);
	free(s);
	return 0;
}
