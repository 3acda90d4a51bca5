/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* volmgr-csi: a CSI node plugin (Identity and Node services) that serves
 * volmgr volumes -- snapshots of a node's cached checkouts -- to
 * Kubernetes pods as ephemeral inline volumes.  It listens on a unix
 * socket for the kubelet and node-driver-registrar, and asks volmgrd for
 * everything about volumes over the control protocol. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "csi.h"
#include "util.h"

#define DEFAULT_DRIVER "volmgr.csi.volmgr.io"
#define DEFAULT_CONTROL "/run/volmgr/control.sock"
#define DEFAULT_TARGET_ROOT "/var/lib/kubelet/pods"
#define IDLE_MS (5 * 60 * 1000)

static atomic_int active;

static void usage(FILE *f)
{
	fputs("Usage: volmgr-csi --endpoint unix:///PATH --node-id NODE [OPTIONS]\n"
	      "\n"
	      "A CSI node plugin: serves volmgr volumes to Kubernetes pods as ephemeral\n"
	      "inline volumes, through volmgrd.\n"
	      "\n"
	      "Options:\n"
	      "  --endpoint unix:///PATH   the socket to listen on (default: $CSI_ENDPOINT)\n"
	      "  --node-id NODE            this node's name, as NodeGetInfo reports it\n"
	      "  --control-socket PATH     volmgrd's control socket\n"
	      "                            (default " DEFAULT_CONTROL ")\n"
	      "  --driver-name NAME        the CSI driver's name (default " DEFAULT_DRIVER ")\n"
	      "  --target-root DIR         every target path lies beneath DIR\n"
	      "                            (default " DEFAULT_TARGET_ROOT ")\n"
	      "  --max-connections N       connections served at once (default 64)\n"
	      "  --sweep-interval MS       how often volumes whose target is gone are\n"
	      "                            removed (default 60000)\n"
	      "  --volmgrd-timeout MS      a call to volmgrd gives up after MS\n"
	      "                            (default 100000)\n"
	      "  -h, --help                show this help\n"
	      "  --version                 show the version\n",
	      f);
}

struct conn_arg {
	struct csi_plugin *p;
	int fd;
};

static void *serve_conn(void *arg)
{
	struct conn_arg a = *(struct conn_arg *)arg;
	free(arg);
	vm_grpc_serve(a.fd, csi_serve_call, a.p, IDLE_MS);
	atomic_fetch_sub(&active, 1);
	return NULL;
}

/* "unix:///path", "unix:/path" or "/path": the path. */
static const char *endpoint_path(const char *e)
{
	if (strncmp(e, "unix://", 7) == 0)
		e += 7;
	else if (strncmp(e, "unix:", 5) == 0)
		e += 5;
	return e[0] == '/' ? e : NULL;
}

static int listen_on(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	/* A socket left by an earlier run goes; anything else stays. */
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		if (unlink(path) < 0)
			return -errno;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	mode_t old = umask(0177);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || listen(fd, 128) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

/* Only root talks to a node plugin (the kubelet, the registrar); the
 * socket's directory is root's too, this is the second lock. */
static bool peer_is_root(int fd)
{
	struct ucred cr;
	socklen_t l = sizeof(cr);
	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) == 0 && cr.uid == 0;
}

/* sweep_ms: how often volumes whose target is gone are looked for. */
static int serve(struct csi_plugin *p, int lfd, int sfd, int max, long sweep_ms)
{
	int64_t next_sweep = vm_mono_ns() + sweep_ms * INT64_C(1000000);
	for (;;) {
		int64_t left = next_sweep - vm_mono_ns();
		if (left <= 0) {
			csi_node_account(p, true);
			next_sweep = vm_mono_ns() + sweep_ms * INT64_C(1000000);
			continue;
		}
		struct pollfd pf[2] = {{.fd = lfd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
		int n = poll(pf, 2, (int)(left / 1000000) + 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			continue;
		if (pf[1].revents)
			return 0;
		int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
				usleep(100 * 1000); /* not a busy loop while out of fds */
			continue;
		}
		if (!peer_is_root(c) || atomic_load(&active) >= max) {
			fprintf(stderr, "volmgr-csi: connection refused (%s)\n",
				atomic_load(&active) >= max ? "too many connections" : "caller not root");
			close(c);
			continue;
		}
		struct conn_arg *a = malloc(sizeof(*a));
		pthread_attr_t attr;
		pthread_t t;
		if (!a || pthread_attr_init(&attr) != 0) {
			free(a);
			close(c);
			continue;
		}
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		*a = (struct conn_arg){.p = p, .fd = c};
		atomic_fetch_add(&active, 1);
		if (pthread_create(&t, &attr, serve_conn, a) != 0) {
			atomic_fetch_sub(&active, 1);
			free(a);
			close(c);
		}
		pthread_attr_destroy(&attr);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"endpoint", required_argument, NULL, 'e'},
		{"node-id", required_argument, NULL, 'n'},
		{"control-socket", required_argument, NULL, 'c'},
		{"driver-name", required_argument, NULL, 'd'},
		{"target-root", required_argument, NULL, 't'},
		{"max-connections", required_argument, NULL, 'm'},
		{"sweep-interval", required_argument, NULL, 's'},
		{"volmgrd-timeout", required_argument, NULL, 'T'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	struct csi_plugin p = {.driver = DEFAULT_DRIVER, .control = DEFAULT_CONTROL,
			       .target_root = DEFAULT_TARGET_ROOT, .volmgrd_ms = 100000};
	const char *endpoint = getenv("CSI_ENDPOINT");
	long max = 64, sweep_ms = 60000;
	int o;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		char *end;
		switch (o) {
		case 'e': endpoint = optarg; break;
		case 'n': p.node_id = optarg; break;
		case 'c': p.control = optarg; break;
		case 'd': p.driver = optarg; break;
		case 't': p.target_root = optarg; break;
		case 'm':
			max = strtol(optarg, &end, 10);
			if (*end || max < 1 || max > 4096) {
				fprintf(stderr, "volmgr-csi: --max-connections takes 1 to 4096\n");
				return 2;
			}
			break;
		case 's':
			sweep_ms = strtol(optarg, &end, 10);
			if (*end || sweep_ms < 100 || sweep_ms > 86400000) {
				fprintf(stderr, "volmgr-csi: --sweep-interval takes 100 to 86400000 ms\n");
				return 2;
			}
			break;
		case 'T':
			p.volmgrd_ms = (int)strtol(optarg, &end, 10);
			if (*end || p.volmgrd_ms < 100 || p.volmgrd_ms > 3600000) {
				fprintf(stderr, "volmgr-csi: --volmgrd-timeout takes 100 to 3600000 ms\n");
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("volmgr-csi %s\n", VOLMGR_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	const char *path = endpoint ? endpoint_path(endpoint) : NULL;
	if (optind < argc || !path || !p.node_id || !p.node_id[0] || strlen(p.node_id) > 128) {
		fprintf(stderr, "volmgr-csi: give --endpoint unix:///PATH and --node-id NODE (at "
				"most 128 bytes)\n");
		return 2;
	}
	/* The driver name: the spec's rule (at most 63, DNS-like). */
	size_t dl = strlen(p.driver);
	bool dns = dl >= 2 && dl <= 63 && strspn(p.driver, "abcdefghijklmnopqrstuvwxyz"
							   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == dl &&
		   p.driver[0] != '-' && p.driver[0] != '.' && p.driver[dl - 1] != '-' &&
		   p.driver[dl - 1] != '.';
	if (!dns || p.target_root[0] != '/' || strlen(p.target_root) < 2 ||
	    p.target_root[strlen(p.target_root) - 1] == '/') {
		fprintf(stderr, "volmgr-csi: bad --driver-name or --target-root\n");
		return 2;
	}
	p.target_root_fd = open(p.target_root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct stat st;
	if (p.target_root_fd < 0 || fstat(p.target_root_fd, &st) < 0) {
		fprintf(stderr, "volmgr-csi: cannot open %s: %m\n", p.target_root);
		return 1;
	}
	if (st.st_uid != 0 || (st.st_mode & S_IWOTH)) {
		fprintf(stderr, "volmgr-csi: %s is not root's, or others can write it\n",
			p.target_root);
		return 1;
	}
	pthread_mutex_init(&p.busy_lock, NULL);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	pthread_sigmask(SIG_BLOCK, &mask, NULL); /* threads made later inherit it */
	signal(SIGPIPE, SIG_IGN);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	int lfd = listen_on(path);
	if (sfd < 0 || lfd < 0) {
		fprintf(stderr, "volmgr-csi: cannot listen on %s: %s\n", path,
			strerror(lfd < 0 ? -lfd : errno));
		return 1;
	}
	fprintf(stderr, "volmgr-csi %s: driver %s, node %s, listening on %s, volmgrd at %s\n",
		VOLMGR_VERSION, p.driver, p.node_id, path, p.control);
	csi_node_account(&p, false);
	int r = serve(&p, lfd, sfd, (int)max, sweep_ms);
	close(lfd);
	unlink(path);
	/* Let the calls under way finish (a publish rolls back or completes). */
	for (int i = 0; i < 600 && atomic_load(&active) > 0; i++)
		usleep(50 * 1000);
	if (atomic_load(&active) == 0) { /* else the calls left still use it */
		for (size_t i = 0; i < p.n_busy; i++)
			free(p.busy[i]);
		free(p.busy);
		close(p.target_root_fd);
	}
	fprintf(stderr, "volmgr-csi: stopped\n");
	return r < 0 ? 1 : 0;
}
