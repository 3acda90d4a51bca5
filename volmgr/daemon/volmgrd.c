/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* volmgrd: owns the pool, answers the Docker/Podman volume plugin protocol
 * on the plugin socket and the CLI on the control socket.  Runs in the
 * foreground and logs to stderr. */
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "backend.h"
#include "caller.h"
#include "config.h"
#include "control.h"
#include "exitcode.h"
#include "gc.h"
#include "log.h"
#include "server.h"
#include "settings.h"

static int mkdir_parent(const char *path)
{
	char *dir = strdup(path);
	if (!dir)
		return -ENOMEM;
	for (char *s = dir + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			int e = errno;
			free(dir);
			return -e;
		}
		*s = '/';
	}
	free(dir);
	return 0;
}

int vm_listen_unix(const char *path, int type, mode_t mode, struct vm_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return vm_error_set(err, ENAMETOOLONG, "socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	int r = mkdir_parent(path);
	if (r < 0)
		return vm_error_errno(err, -r, "cannot create the directory of %s", path);
	_cleanup_close_ int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vm_error_errno(err, errno, "socket");
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return vm_error_set(err, EEXIST, "%s exists and is not a socket", path);
		/* Someone answering there means another daemon is running. */
		_cleanup_close_ int probe = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return vm_error_set(err, EADDRINUSE,
					    "%s is served by another process", path);
		unlink(path);
	}
	/* Bind with a tight umask so the socket never exists with a looser
	 * mode than asked for, then set the exact mode. */
	mode_t old = umask(0777 & ~mode);
	int b = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (b < 0)
		return vm_error_errno(err, errno, "cannot bind %s", path);
	if (chmod(path, mode) < 0)
		return vm_error_errno(err, errno, "cannot chmod %s", path);
	if (listen(fd, 128) < 0)
		return vm_error_errno(err, errno, "cannot listen on %s", path);
	return TAKE_FD(fd);
}

/* A socket file volmgrd bound itself: removed at a clean stop, but only
 * if the path still names that socket (a second daemon's, or one made
 * by hand meanwhile, stays). */
struct made_socket {
	const char *path;
	bool made;
	dev_t dev;
	ino_t ino;
};

static void remember_socket(struct made_socket *s)
{
	struct stat st;
	if (lstat(s->path, &st) == 0 && S_ISSOCK(st.st_mode))
		*s = (struct made_socket){s->path, true, st.st_dev, st.st_ino};
}

static void forget_socket(const struct made_socket *s)
{
	struct stat st;
	if (s->made && lstat(s->path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == s->dev &&
	    st.st_ino == s->ino && unlink(s->path) == 0)
		vm_log("removed %s", s->path);
}

/* The periodic gc: a thread that sleeps on a condition variable, so that
 * stopping the daemon does not wait out the interval. */
struct gc_thread {
	struct vm_manager *m;
	unsigned interval;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	pthread_t thread;
};

static void *gc_main(void *arg)
{
	struct gc_thread *g = arg;
	pthread_mutex_lock(&g->lock);
	while (!g->stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += g->interval;
		while (!g->stop && pthread_cond_timedwait(&g->cond, &g->lock, &until) == 0)
			;
		if (g->stop)
			break;
		pthread_mutex_unlock(&g->lock);
		struct vm_error err = {0};
		struct vm_gc_report report = {0};
		if (vm_gc(g->m, false, NULL, &report, &err) < 0)
			vm_log("gc: %s", err.msg);
		for (size_t i = 0; i < report.n_removed; i++) {
			const struct vm_gc_entry *e = &report.removed[i];
			char reasons[128] = "[";
			for (unsigned bit = 1; bit & VM_GC_REASONS_ALL; bit <<= 1)
				if (e->reasons & bit)
					snprintf(reasons + strlen(reasons), sizeof(reasons) - strlen(reasons),
						 "%s\"%s\"", reasons[1] ? "," : "",
						 vm_gc_reason_name((enum vm_gc_reason)bit));
			vm_log("gc: removed %s %s] (%llu bytes)", e->name, reasons,
			       (unsigned long long)e->bytes);
		}
		vm_gc_report_done(&report);
		pthread_mutex_lock(&g->lock);
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

/* Sockets passed by systemd (socket activation): by name when the units
 * name them ("plugin", "control", "job"), otherwise by type — the plugin
 * socket is SOCK_STREAM, the control socket SOCK_SEQPACKET (the job
 * socket only by name).  -1 where none was passed (the daemon then makes
 * that socket itself). */
static int inherited_sockets(int *ret_plugin, int *ret_control, int *ret_job)
{
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names);
	*ret_plugin = *ret_control = *ret_job = -1;
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		const char *name = names && names[i] ? names[i] : "";
		int *slot = NULL;
		if (strcmp(name, "plugin") == 0)
			slot = ret_plugin;
		else if (strcmp(name, "control") == 0)
			slot = ret_control;
		else if (strcmp(name, "job") == 0)
			slot = ret_job;
		else if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) > 0)
			slot = ret_plugin;
		else if (sd_is_socket_unix(fd, SOCK_SEQPACKET, 1, NULL, 0) > 0)
			slot = ret_control;
		if (slot && *slot < 0) {
			fcntl(fd, F_SETFD, FD_CLOEXEC);
			*slot = fd;
		} else {
			vm_log("ignoring inherited fd %d (%s)", fd, name);
			close(fd);
		}
	}
	if (names)
		for (int i = 0; names[i]; i++)
			free(names[i]);
	free(names);
	return n;
}

/* Before any thread starts: the process-wide settings, and the stop
 * signals blocked (threads inherit the mask) for run() to sigwait(). */
static void setup_process(sigset_t *ret_stopset)
{
	umask(022);
	/* Before anything else: which mount namespace is the host's. */
	vm_caller_set_host_ns("/proc", (int32_t)getppid());
	sigemptyset(ret_stopset);
	sigaddset(ret_stopset, SIGTERM);
	sigaddset(ret_stopset, SIGINT);
	pthread_sigmask(SIG_BLOCK, ret_stopset, NULL);
	/* Each connection costs a thread and an fd: use the whole soft
	 * limit we are allowed (the hard limit cannot be raised here). */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
}

/* What the manager repaired at start-up. */
static void log_repair(void *userdata, const char *line)
{
	vm_log("repair: %s", line);
}

/* Open the pool, choose its backend and start the manager on it (which
 * repairs what a crash left).  Returns 0, or the exit status of an error
 * it logged. */
static int start_manager(struct vm_settings *s, struct vm_manager **ret)
{
	struct vm_error err = {0};
	struct vm_config *config = &s->config;
	struct vm_pool *pool = NULL;
	int r = vm_pool_open(s->pool_path, &pool, &err);
	if (r < 0) {
		vm_log("error: %s", err.msg);
		return vm_exit_from_errno(-r);
	}
	struct vm_backend backend;
	r = vm_backend_choose(pool->staging_fd, config->pool_backend, config->copy_io, &backend, &err);
	if (r < 0) {
		vm_log("error: pool %s on %s (%s): %s", pool->path, pool->mount_target, pool->fstype,
		       err.msg);
		vm_pool_free(pool);
		return VM_EXIT_BACKEND;
	}
	if (backend.kind != VM_BACKEND_BTRFS && config->quota_default) {
		vm_log("error: [quota] default needs the btrfs backend, and pool %s uses %s (%s): quotas are btrfs qgroups",
		       pool->path, vm_backend_name(backend.kind), backend.why);
		vm_pool_free(pool);
		return VM_EXIT_BACKEND;
	}
	vm_log("pool %s on %s (%s), backend %s, %s (%s)", pool->path, pool->mount_target,
	       pool->fstype, vm_backend_name(backend.kind), backend.forced ? "forced" : "probed",
	       backend.why);
	vm_log("copy io %s (%s)", vm_copy_io_name(backend.io), backend.io_why);
	if (!vm_backend_is_instant(&backend))
		vm_log("backend %s: volumes are copies, not O(1); no quotas; caches are read-only by volmgrd only",
		       vm_backend_name(backend.kind));
	/* The engines name the plugin after its socket. */
	char driver[64];
	const char *base = strrchr(s->plugin_path, '/');
	snprintf(driver, sizeof(driver), "%s", base ? base + 1 : s->plugin_path);
	char *dot = strstr(driver, ".sock");
	if (dot)
		*dot = '\0';
	struct vm_manager_config mcfg = {.config = config, .backend = &backend,
					 .log = vm_log_line, .repair = log_repair, .driver = driver};
	r = vm_manager_new(pool, &mcfg, ret, &err);
	if (r < 0) {
		vm_log("error: %s", err.msg);
		return vm_exit_from_errno(-r);
	}
	return 0;
}

/* The listening sockets: those systemd passed, else made here (and
 * recorded in made[], to be removed at stop); the job socket only if
 * passed or asked for (-1 else).  Returns 0, or the exit status of an
 * error it logged. */
static int open_sockets(const struct vm_settings *s, int *ret_plugin, int *ret_control,
			int *ret_job, struct made_socket made[static 3])
{
	const char *plugin_path = s->plugin_path, *control_path = s->control_path;
	const char *control_group = s->control_group;
	struct vm_error err = {0};
	mode_t cmode = 0600;
	gid_t gid = 0;
	if (control_group) {
		struct group *g = getgrnam(control_group);
		if (!g) {
			vm_log("error: unknown group %s", control_group);
			return VM_EXIT_INVALID;
		}
		gid = g->gr_gid;
		cmode = 0660;
	}
	int plugin_fd, control_fd, job_fd;
	made[0] = (struct made_socket){plugin_path};
	made[1] = (struct made_socket){control_path};
	made[2] = (struct made_socket){s->job_path};
	if (inherited_sockets(&plugin_fd, &control_fd, &job_fd) > 0)
		vm_log("socket activation: plugin socket %s, control socket %s",
		       plugin_fd >= 0 ? "inherited" : "made here",
		       control_fd >= 0 ? "inherited" : "made here");
	if (plugin_fd < 0) {
		plugin_fd = vm_listen_unix(plugin_path, SOCK_STREAM, 0600, &err);
		if (plugin_fd < 0) {
			vm_log("error: %s", err.msg);
			return vm_exit_from_errno(-plugin_fd);
		}
		remember_socket(&made[0]);
	}
	if (control_fd < 0) {
		control_fd = vm_listen_unix(control_path, SOCK_SEQPACKET, cmode, &err);
		if (control_fd < 0) {
			vm_log("error: %s", err.msg);
			return vm_exit_from_errno(-control_fd);
		}
		remember_socket(&made[1]);
		if (control_group && chown(control_path, 0, gid) < 0) {
			vm_log("error: cannot chown %s: %m", control_path);
			return VM_EXIT_FAILURE;
		}
	}
	if (job_fd < 0 && s->job_path) {
		/* Any uid: it answers only for the volume whose directory the
		 * caller passes (control.h, VM_CONTROL_SOCKET_JOB). */
		job_fd = vm_listen_unix(s->job_path, SOCK_SEQPACKET, 0666, &err);
		if (job_fd < 0) {
			vm_log("error: %s", err.msg);
			return vm_exit_from_errno(-job_fd);
		}
		remember_socket(&made[2]);
	}
	*ret_plugin = plugin_fd;
	*ret_control = control_fd;
	*ret_job = job_fd;
	return 0;
}

/* Set up, serve until SIGTERM or SIGINT, stop cleanly.  Returns the exit
 * status. */
static int run(struct vm_settings *s, const sigset_t *stopset)
{
	const char *plugin_path = s->plugin_path, *control_path = s->control_path;
	struct vm_manager *m = NULL;
	int r = start_manager(s, &m);
	if (r != 0)
		return r;
	int plugin_fd = -1, control_fd = -1, job_fd = -1;
	struct made_socket made[3];
	r = open_sockets(s, &plugin_fd, &control_fd, &job_fd, made);
	if (r != 0)
		return r;
	struct vm_error err = {0};

	struct vm_httpd *httpd = NULL;
	struct vm_ctlserver *ctl = NULL, *jobs = NULL;
	if (vm_httpd_start(m, plugin_fd, &httpd, &err) < 0 ||
	    vm_ctlserver_start(m, control_fd, VM_CONTROL_SOCKET_ADMIN, &ctl, &err) < 0 ||
	    (job_fd >= 0 && vm_ctlserver_start(m, job_fd, VM_CONTROL_SOCKET_JOB, &jobs, &err) < 0)) {
		vm_log("error: %s", err.msg);
		return VM_EXIT_FAILURE;
	}
	vm_log("ready: plugin socket %s, control socket %s, job socket %s", plugin_path, control_path,
	       job_fd < 0 ? "none" : s->job_path ? s->job_path : "(from systemd)");
	struct vm_volume_info_list vols = {0};
	size_t nvol = vm_volume_list(m, false, &vols, NULL) == 0 ? vols.n : 0;
	vm_volume_info_list_done(&vols);
	/* Type=notify: the engines' requests may come now. */
	sd_notifyf(0, "READY=1\nSTATUS=serving %zu volume(s) from %s\nMAINPID=%d", nvol,
		   vm_manager_pool(m)->path, (int)getpid());

	static struct gc_thread gct = {.lock = PTHREAD_MUTEX_INITIALIZER,
				       .cond = PTHREAD_COND_INITIALIZER};
	gct.m = m;
	gct.interval = s->config.gc_interval;
	bool gc_running = gct.interval > 0 && pthread_create(&gct.thread, NULL, gc_main, &gct) == 0;
	if (gc_running)
		vm_log("gc every %u s", gct.interval);

	int sig = 0;
	sigwait(stopset, &sig);
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
	if (gc_running) {
		pthread_mutex_lock(&gct.lock);
		gct.stop = true;
		pthread_cond_signal(&gct.cond);
		pthread_mutex_unlock(&gct.lock);
		pthread_join(gct.thread, NULL);
	}
	vm_log("stopping on signal %d", sig);
	bool busy = vm_ctlserver_stop(ctl) < 0;
	if (jobs && vm_ctlserver_stop(jobs) < 0)
		busy = true;
	vm_httpd_stop(httpd);
	/* The sockets volmgrd made go with it (an engine then sees no
	 * plugin rather than a dead one; socket activation keeps its own).
	 * Everything else is freed, so that LeakSanitizer and valgrind see a
	 * clean exit; not the manager while a control request still uses
	 * it. */
	forget_socket(&made[0]);
	forget_socket(&made[1]);
	forget_socket(&made[2]);
	if (!busy)
		vm_manager_free(m);
	return 0;
}

int main(int argc, char **argv)
{
	static struct vm_settings settings;
	/* First: the host's namespace, the umask and the stop signals hold
	 * before the configuration is read (a SIGTERM then stops cleanly). */
	sigset_t stopset;
	setup_process(&stopset);
	int status = vm_settings_parse(argc, argv, &settings);
	if (status != VM_SETTINGS_RUN)
		return status;
	return run(&settings, &stopset);
}
