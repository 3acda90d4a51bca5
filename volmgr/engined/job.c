/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Who is calling, from the kernel only: the peer's pid (pinned by a
 * pidfd) -> its cgroup -> the engine's container id in that cgroup's
 * path -> the job.  A container the socket made belongs to the job that
 * made it (the records say so, not its labels: an image's labels become
 * its containers' labels, and a job builds its own images); any other
 * container of the engine is a job container of its own. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "caller.h"
#include "engined.h"
#include "json-util.h"

bool job_valid_ref(const char *ref)
{
	size_t n = strlen(ref);
	if (n == 0 || n > 255)
		return false;
	/* Container, network and volume names and ids: [a-zA-Z0-9][a-zA-Z0-9_.-]* */
	if (!((ref[0] >= 'a' && ref[0] <= 'z') || (ref[0] >= 'A' && ref[0] <= 'Z') ||
	      (ref[0] >= '0' && ref[0] <= '9')))
		return false;
	return strspn(ref, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

static bool is_hex64(const char *s, size_t n)
{
	return n >= 64 && strspn(s, "0123456789abcdef") >= 64;
}

/* The 64-hex ids in a cgroup path, outermost first: docker-ID.scope
 * (systemd driver), /docker/ID (cgroupfs), libpod-ID.scope (Podman;
 * never libpod-conmon-ID, which is conmon's, not the container's). */
static size_t ids_of_cgroup(const char *path, char ids[][ENGINED_ID_MAX + 1], size_t max)
{
	static const char *const prefixes[] = {"docker-", "libpod-", ""};
	size_t n = 0;
	for (const char *c = path; *c && n < max;) {
		c += strspn(c, "/");
		size_t len = strcspn(c, "/");
		for (size_t i = 0; i < ELEMENTSOF(prefixes); i++) {
			size_t pl = strlen(prefixes[i]);
			if (len < pl + 64 || strncmp(c, prefixes[i], pl) != 0 || !is_hex64(c + pl, len - pl))
				continue;
			size_t rest = len - pl - 64;
			if (rest != 0 && !(rest == 6 && strncmp(c + pl + 64, ".scope", 6) == 0))
				continue;
			memcpy(ids[n], c + pl, 64);
			ids[n][64] = '\0';
			n++;
			break;
		}
		c += len;
	}
	return n;
}

static int inspect_container(struct engined *e, const char *ref, json_t **ret, struct vm_error *err)
{
	char path[512];
	snprintf(path, sizeof(path), "/containers/%s/json", ref);
	long status = 0;
	int r = up_call(e, "GET", path, NULL, &status, ret, err);
	if (r < 0)
		return r;
	if (status == 404) {
		json_decref(*ret);
		*ret = NULL;
		return 0;
	}
	if (status != 200 || !json_is_object(*ret)) {
		json_decref(*ret);
		*ret = NULL;
		return vm_error_set(err, EIO, "the engine answered %ld to an inspect of %s", status, ref);
	}
	return 1;
}

static bool pidfd_alive(int pidfd)
{
	/* A pidfd polls readable once its process has exited. */
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	return pidfd >= 0 && poll(&p, 1, 0) == 0;
}

/* Who a container is, as the engine confirmed it a moment ago: every
 * connection of a job would otherwise cost two inspects.  Keyed by the
 * container id the kernel named (its cgroup); an entry is dropped after
 * CACHE_NS, so a container removed since is asked about again. */
#define CACHE_SIZE 64
#define CACHE_NS (5LL * 1000000000)
struct cached {
	char cgroup[VM_CGROUP_MAX + 1];  /* the key: the caller's cgroup */
	char self[ENGINED_ID_MAX + 1];
	char job[ENGINED_ID_MAX + 1];
	json_t *volumes;
	json_t *networks;
	int64_t at;
};
static struct cached cache[CACHE_SIZE];
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static bool cache_get(const char *cgroup, struct job *ret)
{
	bool hit = false;
	int64_t now = vm_mono_ns();
	pthread_mutex_lock(&cache_lock);
	for (size_t i = 0; i < CACHE_SIZE && !hit; i++)
		if (cache[i].volumes && now - cache[i].at < CACHE_NS && strcmp(cache[i].cgroup, cgroup) == 0) {
			snprintf(ret->self, sizeof(ret->self), "%.64s", cache[i].self);
			snprintf(ret->id, sizeof(ret->id), "%.64s", cache[i].job);
			ret->volumes = json_deep_copy(cache[i].volumes);
			ret->networks = json_deep_copy(cache[i].networks);
			hit = ret->volumes && ret->networks;
		}
	pthread_mutex_unlock(&cache_lock);
	return hit;
}

static void cache_put(const char *cgroup, const struct job *j)
{
	pthread_mutex_lock(&cache_lock);
	struct cached *slot = &cache[0];
	for (size_t i = 0; i < CACHE_SIZE; i++)
		if (strcmp(cache[i].cgroup, cgroup) == 0 || cache[i].at < slot->at) {
			slot = &cache[i];
			if (strcmp(cache[i].cgroup, cgroup) == 0)
				break;
		}
	snprintf(slot->cgroup, sizeof(slot->cgroup), "%s", cgroup);
	json_decref(slot->volumes);
	json_decref(slot->networks);
	snprintf(slot->self, sizeof(slot->self), "%s", j->self);
	snprintf(slot->job, sizeof(slot->job), "%s", j->id);
	slot->volumes = json_deep_copy(j->volumes);
	slot->networks = json_deep_copy(j->networks);
	slot->at = vm_mono_ns();
	pthread_mutex_unlock(&cache_lock);
}

int job_of_caller(struct engined *e, int fd, struct job *ret, struct vm_error *err)
{
	struct vm_caller c;
	*ret = (struct job){.pidfd = -1};
	int r = vm_caller_from_socket(fd, e->proc, &c);
	if (r < 0)
		return vm_error_errno(err, -r, "cannot tell who is calling");
	ret->pid = c.pid;
	ret->pidfd = c.pidfd;
	if (c.pid <= 0 || c.pidfd < 0)
		return vm_error_set(err, EPERM, "the caller is gone");
	const char *cg = strchr(c.cgroup, ':');
	char ids[8][ENGINED_ID_MAX + 1];
	size_t n = cg ? ids_of_cgroup(cg + 1, ids, ELEMENTSOF(ids)) : 0;
	if (n == 0)
		return vm_error_set(err, EPERM,
				    "the engine socket serves containers of the engine only; pid %d is not in one",
				    (int)c.pid);
	/* The outermost id the engine knows: a process nested deeper (an
	 * engine inside the job container) stays inside its cgroup. */
	if (cache_get(c.cgroup, ret))
		return pidfd_alive(c.pidfd) ? 0 : vm_error_set(err, EPERM, "the caller is gone");
	_cleanup_json_ json_t *self = NULL;
	for (size_t i = 0; i < n && !self; i++) {
		r = inspect_container(e, ids[i], &self, err);
		if (r < 0)
			return r;
		if (r > 0)
			snprintf(ret->self, sizeof(ret->self), "%.64s", ids[i]);
	}
	if (!self)
		return vm_error_set(err, EPERM,
				    "the engine socket serves containers of its engine only; pid %d is in a container the engine does not know",
				    (int)c.pid);
	/* The id in a cgroup's name proves nothing by itself (a user can
	 * name a cgroup of its own slice docker-ID.scope): the caller must
	 * be in the cgroup of that container's own first process, or below
	 * it. */
	json_int_t init = json_integer_value(json_object_get(json_object_get(self, "State"), "Pid"));
	char init_cg[VM_CGROUP_MAX + 1];
	size_t il;
	if (init <= 0 || init > INT32_MAX || vm_cgroup_of_pid(e->proc, (pid_t)init, init_cg) < 0 ||
	    (il = strlen(init_cg)) == 0 || strncmp(c.cgroup, init_cg, il) != 0 ||
	    (c.cgroup[il] != '\0' && c.cgroup[il] != '/') ||
	    /* and in every other hierarchy: one the caller could write
	     * (Podman's systemd mode mounts name=systemd writable on v1
	     * hosts) must not make it another container's */
	    vm_cgroup_pid_within(e->proc, c.pid, (pid_t)init) != 1)
		return vm_error_set(err, EPERM,
				    "pid %d is not in the cgroup of container %.12s's processes", (int)c.pid,
				    ret->self);
	/* Read first, then make sure the pid still was the caller. */
	if (!pidfd_alive(c.pidfd))
		return vm_error_set(err, EPERM, "the caller is gone");
	if (!state_job_of(e, REC_CONTAINER, ret->self, ret->id))
		snprintf(ret->id, sizeof(ret->id), "%s", ret->self);
	/* The job container's volumes: its workspace, which the job may
	 * share with the containers it starts. */
	_cleanup_json_ json_t *root = NULL;
	if (strcmp(ret->id, ret->self) == 0)
		root = json_incref(self);
	else if ((r = inspect_container(e, ret->id, &root, err)) <= 0)
		return r < 0 ? r : vm_error_set(err, EPERM, "the job's container %.12s is gone", ret->id);
	/* And its networks (the runner's per-build network, network_mode):
	 * the job may put its containers on them, as it can with bridge. */
	ret->networks = json_array();
	const char *nname;
	json_t *net;
	json_object_foreach(json_object_get(json_object_get(root, "NetworkSettings"), "Networks"), nname, net) {
		json_array_append_new(ret->networks, json_string(nname));
		const char *nid = json_string_value(json_object_get(net, "NetworkID"));
		if (nid && *nid)
			json_array_append_new(ret->networks, json_string(nid));
	}
	ret->volumes = json_object();
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(root, "Mounts"), i, m) {
		const char *type = json_string_value(json_object_get(m, "Type"));
		const char *name = json_string_value(json_object_get(m, "Name"));
		/* name -> whether the job has it writable (a volume the runner
		 * gave it read-only stays so in the containers it starts) */
		if (type && strcmp(type, "volume") == 0 && name && !json_is_true(json_object_get(ret->volumes, name)))
			json_object_set_new(ret->volumes, name, json_boolean(json_is_true(json_object_get(m, "RW"))));
	}
	cache_put(c.cgroup, ret);
	return 0;
}

void job_done(struct job *j)
{
	if (j->pidfd >= 0)
		close(j->pidfd);
	j->pidfd = -1;
	json_decref(j->volumes);
	json_decref(j->networks);
	j->volumes = j->networks = NULL;
}

int job_own_container(struct engined *e, const struct job *j, const char *ref,
		      char id[static ENGINED_ID_MAX + 1], struct vm_error *err)
{
	if (!job_valid_ref(ref))
		return 0;
	_cleanup_json_ json_t *c = NULL;
	int r = inspect_container(e, ref, &c, err);
	if (r <= 0)
		return r;
	const char *full = json_string_value(json_object_get(c, "Id"));
	char job[ENGINED_ID_MAX + 1];
	if (!full || strlen(full) != 64)
		return 0;
	snprintf(id, ENGINED_ID_MAX + 1, "%s", full);
	if (strcmp(full, j->id) == 0)
		return 1;
	return state_job_of(e, REC_CONTAINER, full, job) && strcmp(job, j->id) == 0;
}

int job_own_network(struct engined *e, const struct job *j, const char *ref,
		    char id[static ENGINED_ID_MAX + 1], bool builtin_ok, struct vm_error *err)
{
	if (!job_valid_ref(ref))
		return 0;
	/* The engines' own networks every container may join. */
	static const char *const builtin[] = {"bridge", "none", "default", "podman"};
	for (size_t i = 0; i < ELEMENTSOF(builtin); i++)
		if (strcmp(ref, builtin[i]) == 0) {
			snprintf(id, ENGINED_ID_MAX + 1, "%s", ref);
			return builtin_ok;
		}
	size_t i;
	json_t *v;
	json_array_foreach(j->networks, i, v)
		if (strcmp(json_string_value(v), ref) == 0) {
			snprintf(id, ENGINED_ID_MAX + 1, "%s", ref);
			return builtin_ok;
		}
	char path[512];
	snprintf(path, sizeof(path), "/networks/%s", ref);
	long status = 0;
	_cleanup_json_ json_t *n = NULL;
	int r = up_call(e, "GET", path, NULL, &status, &n, err);
	if (r < 0)
		return r;
	if (status == 404)
		return 0;
	const char *full = json_string_value(json_object_get(n, "Id"));
	if (status != 200 || !full)
		return vm_error_set(err, EIO, "the engine answered %ld to an inspect of network %s", status, ref);
	snprintf(id, ENGINED_ID_MAX + 1, "%s", full);
	char job[ENGINED_ID_MAX + 1];
	return state_job_of(e, REC_NETWORK, full, job) && strcmp(job, j->id) == 0;
}

int job_own_volume(struct engined *e, const struct job *j, const char *name, struct vm_error *err)
{
	if (!job_valid_ref(name))
		return 0;
	char job[ENGINED_ID_MAX + 1];
	if (state_job_of(e, REC_VOLUME, name, job))
		return strcmp(job, j->id) == 0;
	json_t *rw = json_object_get(j->volumes, name);
	return !rw ? 0 : json_is_true(rw) ? 1 : 2;
}
