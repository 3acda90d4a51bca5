/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The plugin socket: libmicrohttpd does the HTTP/1.1 framing (keep-alive,
 * chunked bodies, header limits, timeouts); each connection gets its own
 * thread so a slow or stalled engine connection never holds up another. */
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"
#include "manager-ops.h"
#include "plugin.h"
#include "server.h"

/* At most this many connections (libmicrohttpd refuses more); from
 * EVICT_AT on, each new one closes the longest idle keep-alive
 * connection, so engines that hold connections open and say nothing
 * cannot lock the others out for the idle timeout. */
#define CONN_LIMIT 256
#define EVICT_AT 240

struct conn {
	int fd;
	bool busy;         /* between a request's first byte and its reply */
	int64_t idle_since;
	struct conn *prev, *next;
};

struct vm_httpd {
	struct MHD_Daemon *d;
	struct vm_manager *m;
	pthread_mutex_t lock; /* the list of connections */
	struct conn *conns;
	unsigned n_conns;
};

/* Under h->lock.  libmicrohttpd reports a connection CLOSED before it
 * closes its socket (daemon.c), and the entry leaves the list then:
 * an fd on the list is never one closed and reused meanwhile. */
static void evict_idlest(struct vm_httpd *h)
{
	struct conn *victim = NULL;
	for (struct conn *c = h->conns; c; c = c->next)
		if (!c->busy && c->fd >= 0 && (!victim || c->idle_since < victim->idle_since))
			victim = c;
	if (!victim)
		return;
	/* Its thread's next read sees the end, and libmicrohttpd closes it;
	 * a request half received gets no reply, as after a timeout. */
	shutdown(victim->fd, SHUT_RDWR);
	victim->fd = -1;
	vm_log("plugin: %u connections, closed the longest idle", h->n_conns);
}

static void notify_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
			      enum MHD_ConnectionNotificationCode toe)
{
	struct vm_httpd *h = cls;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
		struct conn *c = calloc(1, sizeof(*c));
		if (!c || !ci) {
			free(c);
			return;
		}
		c->fd = ci->connect_fd;
		c->idle_since = vm_mono_ns();
		pthread_mutex_lock(&h->lock);
		if (h->n_conns >= EVICT_AT)
			evict_idlest(h);
		c->next = h->conns;
		if (h->conns)
			h->conns->prev = c;
		h->conns = c;
		h->n_conns++;
		pthread_mutex_unlock(&h->lock);
		*socket_context = c;
	} else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
		struct conn *c = *socket_context;
		pthread_mutex_lock(&h->lock);
		if (c->prev)
			c->prev->next = c->next;
		else
			h->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		h->n_conns--;
		pthread_mutex_unlock(&h->lock);
		free(c);
		*socket_context = NULL;
	}
}

static void set_busy(struct vm_httpd *h, struct MHD_Connection *mc, bool busy)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn *c = ci ? ci->socket_context : NULL;
	if (!c)
		return;
	pthread_mutex_lock(&h->lock);
	c->busy = busy;
	c->idle_since = vm_mono_ns();
	pthread_mutex_unlock(&h->lock);
}

struct request {
	char *buf;
	size_t len;
	bool too_big;
};

static void request_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			      enum MHD_RequestTerminationCode toe)
{
	(void)toe;
	set_busy(cls, c, false);
	struct request *r = *con_cls;
	if (r) {
		free(r->buf);
		free(r);
		*con_cls = NULL;
	}
}

static struct vm_caller peer_of(struct MHD_Connection *c)
{
	struct vm_caller caller = {.uid = (uint32_t)-1, .gid = (uint32_t)-1, .pidfd = -1};
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (ci && getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
		caller.uid = cred.uid;
		caller.gid = cred.gid;
		caller.pid = cred.pid;
	}
	return caller;
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 +
	       (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static enum MHD_Result respond(struct MHD_Connection *c, int status, char *body)
{
	const char *text = body ? body : "{\"Err\":\"out of memory\"}";
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
	free(body);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				VM_PLUGIN_CONTENT_TYPE);
	enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *c,
				      const char *url, const char *method,
				      const char *version, const char *upload,
				      size_t *upload_size, void **con_cls)
{
	(void)version;
	struct vm_httpd *h = cls;
	struct request *r = *con_cls;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		*con_cls = r;
		set_busy(h, c, true);
		return MHD_YES;
	}
	if (*upload_size > 0) {
		/* Bound the body: past the limit keep reading (so the reply
		 * can be sent) but drop the bytes. */
		if (!r->too_big && r->len + *upload_size <= VM_PLUGIN_BODY_MAX) {
			char *n = realloc(r->buf, r->len + *upload_size + 1);
			if (!n)
				return MHD_NO;
			r->buf = n;
			memcpy(r->buf + r->len, upload, *upload_size);
			r->len += *upload_size;
			r->buf[r->len] = '\0'; /* logged with %s below */
		} else {
			r->too_big = true;
		}
		*upload_size = 0;
		return MHD_YES;
	}

	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct vm_caller caller = peer_of(c);
	char *body = NULL;
	int status;
	if (r->too_big)
		status = vm_plugin_handle(&vm_plugin_manager_ops, h->m, &caller, method,
					  url, "", VM_PLUGIN_BODY_MAX + 1, &body);
	else
		status = vm_plugin_handle(&vm_plugin_manager_ops, h->m, &caller, method,
					  url, r->buf ? r->buf : "", r->len, &body);
	/* Log what was asked and by whom; the request body is short and
	 * already validated JSON or rejected, so it is printed as %.200s. */
	vm_log("plugin %s %.64s pid=%d uid=%u body=%.200s -> %d %.300s (%.1f ms)",
	       method, url, caller.pid, caller.uid,
	       r->too_big ? "(too large)" : (r->buf ? r->buf : ""), status,
	       status == 200 ? "" : (body ? body : ""), ms_since(&t0));
	return respond(c, status, body);
}

__attribute__((format(printf, 2, 0)))
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char buf[512];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	vm_log("http: %s", buf);
}

int vm_httpd_start(struct vm_manager *m, int listen_fd, struct vm_httpd **ret,
		   struct vm_error *err)
{
	struct vm_httpd *h = calloc(1, sizeof(*h));
	if (!h)
		return vm_error_set(err, ENOMEM, "out of memory");
	h->m = m;
	pthread_mutex_init(&h->lock, NULL);
	h->d = MHD_start_daemon(
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			MHD_USE_POLL | MHD_USE_ERROR_LOG,
		0, NULL, NULL, access_handler, h,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
		MHD_OPTION_LISTEN_SOCKET, listen_fd,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONN_LIMIT,
		MHD_OPTION_NOTIFY_CONNECTION, notify_connection, h,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
		MHD_OPTION_NOTIFY_COMPLETED, request_completed, h,
		MHD_OPTION_END);
	if (!h->d) {
		pthread_mutex_destroy(&h->lock);
		free(h);
		return vm_error_set(err, EIO, "cannot start the HTTP server on the plugin socket");
	}
	*ret = h;
	return 0;
}

void vm_httpd_stop(struct vm_httpd *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->d);
	pthread_mutex_destroy(&h->lock);
	free(h);
}
