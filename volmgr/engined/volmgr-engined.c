/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* volmgr-engined: the engine socket for CI jobs.  A Docker Engine API
 * endpoint in front of the host's Docker or Podman that knows, from the
 * kernel, which job calls; lets the job see and touch only what it made;
 * and turns `docker run -v "$(pwd):/w"` into a mount of the job's own
 * workspace.  A process of its own, apart from volmgrd, which it asks
 * over the control socket (fds, never paths). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "config.h"
#include "engined.h"

struct conn_arg {
	struct engined *e;
	int fd;
};

static void *conn_thread(void *arg)
{
	struct conn_arg a = *(struct conn_arg *)arg;
	free(arg);
	proxy_connection(a.e, a.fd);
	pthread_mutex_lock(&a.e->lock);
	a.e->n_conns--;
	pthread_mutex_unlock(&a.e->lock);
	return NULL;
}

static int listen_on(const char *path)
{
	int n = sd_listen_fds(1);
	if (n == 1)
		return SD_LISTEN_FDS_START;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "volmgr-engined: socket path too long: %s\n", path);
		return -1;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	unlink(path);
	/* Any process may connect: who it is comes from the kernel, and
	 * only containers of the engine are served. */
	mode_t old = umask(0);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || listen(fd, 128) < 0) {
		fprintf(stderr, "volmgr-engined: cannot listen on %s: %m\n", path);
		close(fd);
		return -1;
	}
	return fd;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: volmgr-engined [OPTIONS]\n"
		"\n"
		"A Docker Engine API socket for CI jobs, in front of Docker or Podman: each\n"
		"job sees and touches only what it made, and binds of its workspace work.\n"
		"\n"
		"Options:\n"
		"  --socket PATH          where jobs connect (default /run/volmgr/engine.sock;\n"
		"                         a socket passed by systemd is used instead)\n"
		"  --upstream PATH        the engine's API socket (default /var/run/docker.sock)\n"
		"  --control-socket PATH  volmgrd's control socket (default /run/volmgr/control.sock)\n"
		"  --state-dir DIR        records and pinned binds (default /run/volmgr/engined)\n"
		"  --config FILE          volmgr.conf, for its [engine] section\n"
		"                         (default /etc/volmgr/volmgr.conf, if it exists)\n"
		"  --max-connections N    at most N connections at once (default 512)\n"
		"  --sweep-interval MS    how often the engine is asked for jobs that ended\n"
		"                         (default 5000)\n"
		"  -h, --help             this text\n"
		"  --version              the version\n");
}

int main(int argc, char **argv)
{
	static struct engined e = {
		.upstream = "/var/run/docker.sock",
		.control = "/run/volmgr/control.sock",
		.state_dir = "/run/volmgr/engined",
		.max_conns = 512,
		.sweep_ms = 5000,
		.proc = "/proc",
		.lock = PTHREAD_MUTEX_INITIALIZER,
	};
	const char *sock = "/run/volmgr/engine.sock", *config = "/etc/volmgr/volmgr.conf";
	bool config_given = false;
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},
		{"upstream", required_argument, NULL, 'u'},
		{"control-socket", required_argument, NULL, 'c'},
		{"state-dir", required_argument, NULL, 'd'},
		{"config", required_argument, NULL, 'f'},
		{"max-connections", required_argument, NULL, 'm'},
		{"sweep-interval", required_argument, NULL, 'w'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	int o;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 's': sock = optarg; break;
		case 'u': snprintf(e.upstream, sizeof(e.upstream), "%s", optarg); break;
		case 'c': snprintf(e.control, sizeof(e.control), "%s", optarg); break;
		case 'd': snprintf(e.state_dir, sizeof(e.state_dir), "%s", optarg); break;
		case 'f': config = optarg; config_given = true; break;
		case 'm': e.max_conns = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'w': e.sweep_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("volmgr-engined %s\n", VOLMGR_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || e.max_conns == 0 || e.sweep_ms == 0 || e.state_dir[0] != '/' ||
	    strlen(e.state_dir) > 64) {
		usage(stderr);
		return 2;
	}
	struct vm_config cfg;
	struct vm_error err = {0};
	if (vm_config_load(config, !config_given, &cfg, &err) < 0) {
		fprintf(stderr, "volmgr-engined: %s\n", err.msg);
		return 1;
	}
	e.rules = (struct policy_rules){
		.allow_privileged = cfg.engine.allow_privileged,
		.allow_cap_add = cfg.engine.allow_cap_add,
		.allow_devices = cfg.engine.allow_devices,
		.allow_host_namespaces = cfg.engine.allow_host_namespaces,
		.allow_unconfined = cfg.engine.allow_unconfined,
		.allow_sysctls = cfg.engine.allow_sysctls,
		.allow_host_binds = cfg.engine.allow_host_binds,
	};
	signal(SIGPIPE, SIG_IGN);
	umask(0077);
	if (mkdir(e.state_dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "volmgr-engined: cannot make %s: %m\n", e.state_dir);
		return 1;
	}
	/* Records and pins are trusted on reading: the directory must be
	 * root's and no one else's to write (the podman runner keeps it on
	 * a volume; a symbolic link there is not followed). */
	struct stat sst;
	int sfd = open(e.state_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0 || fstat(sfd, &sst) < 0 || sst.st_uid != 0 || (sst.st_mode & 0022)) {
		fprintf(stderr, "volmgr-engined: %s must be a directory of root's that no one else can write\n",
			e.state_dir);
		return 1;
	}
	close(sfd);
	char pins[PATH_MAX + 8];
	snprintf(pins, sizeof(pins), "%s/pins", e.state_dir);
	if (mkdir(pins, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "volmgr-engined: cannot make %s: %m\n", pins);
		return 1;
	}
	e.pins_fd = open(pins, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (e.pins_fd < 0 || fstat(e.pins_fd, &st) < 0 || st.st_uid != 0 || (st.st_mode & 0077)) {
		fprintf(stderr, "volmgr-engined: %s must be a directory of root's, mode 0700\n", pins);
		return 1;
	}
	if (state_load(&e, &err) < 0) {
		fprintf(stderr, "volmgr-engined: %s\n", err.msg);
		return 1;
	}
	pin_sweep_unrecorded(&e);
	int lfd = listen_on(sock);
	if (lfd < 0)
		return 1;
	/* Its file, as a job's bind of it will show it. */
	snprintf(e.sock_path, sizeof(e.sock_path), "%s", sock);
	if (stat(sock, &st) == 0 && S_ISSOCK(st.st_mode)) {
		e.sock_dev = st.st_dev;
		e.sock_ino = st.st_ino;
	}
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	pthread_t t;
	if (pthread_create(&t, &attr, sweep_thread, &e) != 0) {
		fprintf(stderr, "volmgr-engined: cannot start the sweep\n");
		return 1;
	}
	fprintf(stderr, "volmgr-engined: serving %s for the engine at %s\n", sock, e.upstream);
	sd_notify(0, "READY=1");
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EINTR && errno != ECONNABORTED)
				sleep(1); /* EMFILE and the like: let connections end */
			continue;
		}
		pthread_mutex_lock(&e.lock);
		bool full = e.n_conns >= e.max_conns;
		if (!full)
			e.n_conns++;
		pthread_mutex_unlock(&e.lock);
		struct conn_arg *a = full ? NULL : malloc(sizeof(*a));
		if (!a) {
			if (!full) {
				pthread_mutex_lock(&e.lock);
				e.n_conns--;
				pthread_mutex_unlock(&e.lock);
			}
			close(fd);
			continue;
		}
		*a = (struct conn_arg){&e, fd};
		if (pthread_create(&t, &attr, conn_thread, a) != 0) {
			free(a);
			close(fd);
			pthread_mutex_lock(&e.lock);
			e.n_conns--;
			pthread_mutex_unlock(&e.lock);
		}
	}
}
