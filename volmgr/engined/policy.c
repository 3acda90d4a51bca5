/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Field names and meanings: moby api/types/container/{config,
 * host_config}.go and api/types/mount/mount.go (API 1.41 to 1.47), and
 * Podman's compat handlers, which take the same bodies. */
#include "policy.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "json-util.h"

static bool is(const char *a, const char *b) { return a && strcmp(a, b) == 0; }

/* A value a client sends for "not set": the engines read these as
 * absent. */
static bool is_default(json_t *v)
{
	if (!v || json_is_null(v) || json_is_false(v))
		return true;
	if (json_is_integer(v))
		return json_integer_value(v) == 0;
	if (json_is_real(v))
		return json_real_value(v) == 0;
	if (json_is_string(v))
		return json_string_length(v) == 0;
	if (json_is_array(v))
		return json_array_size(v) == 0;
	if (json_is_object(v))
		return json_object_size(v) == 0;
	return false;
}

static int deny_unknown(struct vm_error *err, const char *what)
{
	return vm_error_set(err, EPERM, "%s: a field the engine socket does not know is refused", what);
}

enum rule {
	FREE,        /* anything */
	UNSET,       /* only its default */
	PRIVILEGED,  /* only its default unless [engine] loosens it */
	CAP_ADD,
	DEVICES,
	HOST_NS,
	UNCONFINED,
	SYSCTLS,
	SPECIAL,     /* checked below */
};

struct field {
	const char *name;
	enum rule rule;
};

/* Docker decodes bodies with Go's encoding/json and Podman with
 * json-iterator: both match a key to a field ignoring case (and folding
 * U+017F to "s", U+212A to "k").  So every object read here is first
 * rewritten with each key spelled as the API spells it: a key that
 * matches a field under ASCII case folding takes the field's name; a
 * non-ASCII key, or two keys for one field, is refused; a key that
 * matches no field is dropped if its value is empty (the engines ignore
 * unknown keys) and refused otherwise.  The checks below then see every
 * field the engine will, under one name. */
static int canon(json_t *obj, const char *const *names, size_t n, const char *where,
		 struct vm_error *err)
{
	if (!obj || json_is_null(obj))
		return 0;
	if (!json_is_object(obj))
		return vm_error_set(err, EINVAL, "%s: not an object", where);
	_cleanup_json_ json_t *out = json_object();
	if (!out)
		return vm_error_set(err, ENOMEM, "out of memory");
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v) {
		for (const unsigned char *k = (const unsigned char *)key; *k; k++)
			if (*k >= 0x80 || *k < 0x20)
				return vm_error_set(err, EPERM, "%s: a key that is not plain ASCII is refused", where);
		const char *name = NULL;
		for (size_t i = 0; i < n && !name; i++)
			if (strcasecmp(names[i], key) == 0)
				name = names[i];
		if (!name) {
			if (is_default(v))
				continue;
			return vm_error_set(err, EPERM, "%s.%.64s: a field the engine socket does not know is refused",
					    where, key);
		}
		if (json_object_get(out, name))
			return vm_error_set(err, EPERM, "%s.%s: given twice (in two spellings)", where, name);
		json_object_set(out, name, v);
	}
	json_object_clear(obj);
	return json_object_update(obj, out) < 0 ? vm_error_set(err, ENOMEM, "out of memory") : 0;
}

/* canon over a table of fields. */
static int canon_fields(json_t *obj, const struct field *t, size_t n, const char *where,
			struct vm_error *err)
{
	const char *names[128];
	if (n > ELEMENTSOF(names))
		return vm_error_set(err, EINVAL, "internal: field table too long");
	for (size_t i = 0; i < n; i++)
		names[i] = t[i].name;
	return canon(obj, names, n, where, err);
}

#define CANON(obj, where, err, ...)                                                  \
	({                                                                           \
		static const char *const names_[] = {__VA_ARGS__};                   \
		canon((obj), names_, ELEMENTSOF(names_), (where), (err));            \
	})


/* HostConfig, every field of API 1.47.  Resources that only limit the
 * container are free; those that name host devices or lift limits of
 * the kernel's are not. */
static const struct field host_fields[] = {
	{"Binds", SPECIAL},          {"ContainerIDFile", UNSET},  {"LogConfig", SPECIAL},
	{"NetworkMode", SPECIAL},    {"PortBindings", FREE},      {"RestartPolicy", FREE},
	{"AutoRemove", FREE},        {"VolumeDriver", SPECIAL},   {"VolumesFrom", SPECIAL},
	{"ConsoleSize", FREE},       {"Annotations", UNSET},      {"CapAdd", CAP_ADD},
	{"CapDrop", FREE},           {"CgroupnsMode", SPECIAL},   {"Dns", FREE},
	{"DnsOptions", FREE},        {"DnsSearch", FREE},         {"ExtraHosts", FREE},
	{"GroupAdd", FREE},          {"IpcMode", SPECIAL},        {"Cgroup", SPECIAL},
	{"Links", SPECIAL},          {"OomScoreAdj", SPECIAL},    {"PidMode", SPECIAL},
	{"Privileged", PRIVILEGED},  {"PublishAllPorts", FREE},   {"ReadonlyRootfs", FREE},
	{"SecurityOpt", SPECIAL},    {"StorageOpt", UNSET},       {"Tmpfs", FREE},
	{"UTSMode", SPECIAL},        {"UsernsMode", SPECIAL},     {"ShmSize", FREE},
	{"Sysctls", SYSCTLS},        {"Runtime", SPECIAL},        {"Isolation", SPECIAL},
	{"CpuShares", FREE},         {"Memory", FREE},            {"NanoCpus", FREE},
	{"CgroupParent", UNSET},     {"BlkioWeight", FREE},       {"BlkioWeightDevice", DEVICES},
	{"BlkioDeviceReadBps", DEVICES}, {"BlkioDeviceWriteBps", DEVICES},
	{"BlkioDeviceReadIOps", DEVICES}, {"BlkioDeviceWriteIOps", DEVICES},
	{"CpuPeriod", FREE},         {"CpuQuota", FREE},          {"CpuRealtimePeriod", UNSET},
	{"CpuRealtimeRuntime", UNSET}, {"CpusetCpus", FREE},      {"CpusetMems", FREE},
	{"Devices", DEVICES},        {"DeviceCgroupRules", DEVICES}, {"DeviceRequests", DEVICES},
	{"KernelMemory", FREE},      {"KernelMemoryTCP", FREE},   {"MemoryReservation", FREE},
	{"MemorySwap", FREE},        {"MemorySwappiness", FREE},  {"OomKillDisable", UNSET},
	{"PidsLimit", FREE},         {"Ulimits", FREE},           {"CpuCount", FREE},
	{"CpuPercent", FREE},        {"IOMaximumIOps", FREE},     {"IOMaximumBandwidth", FREE},
	{"Mounts", SPECIAL},         {"MaskedPaths", UNCONFINED}, {"ReadonlyPaths", UNCONFINED},
	{"Init", FREE},
};

/* The container's Config (the body's top level). */
static const struct field config_fields[] = {
	{"Hostname", FREE},     {"Domainname", FREE},    {"User", FREE},
	{"AttachStdin", FREE},  {"AttachStdout", FREE},  {"AttachStderr", FREE},
	{"ExposedPorts", FREE}, {"Tty", FREE},           {"OpenStdin", FREE},
	{"StdinOnce", FREE},    {"Env", FREE},           {"Cmd", FREE},
	{"Healthcheck", FREE},  {"ArgsEscaped", FREE},   {"Image", FREE},
	{"Volumes", FREE},      {"WorkingDir", FREE},    {"Entrypoint", FREE},
	{"NetworkDisabled", FREE}, {"MacAddress", FREE}, {"OnBuild", FREE},
	{"Labels", SPECIAL},    {"StopSignal", FREE},    {"StopTimeout", FREE},
	{"Shell", FREE},        {"HostConfig", SPECIAL}, {"NetworkingConfig", SPECIAL},
	{"Platform", FREE},
};

static const char *rule_msg(enum rule r)
{
	switch (r) {
	case PRIVILEGED:
		return "privileged containers are refused on the engine socket ([engine] allow_privileged)";
	case CAP_ADD:
		return "added capabilities are refused on the engine socket ([engine] allow_cap_add)";
	case DEVICES:
		return "host devices are refused on the engine socket ([engine] allow_devices)";
	case HOST_NS:
		return "the host's namespaces are refused on the engine socket ([engine] allow_host_namespaces)";
	case UNCONFINED:
		return "unconfined containers are refused on the engine socket ([engine] allow_unconfined)";
	case SYSCTLS:
		return "sysctls are refused on the engine socket ([engine] allow_sysctls)";
	default:
		return "not taken on the engine socket";
	}
}

static bool loosened(const struct policy_rules *rules, enum rule r)
{
	switch (r) {
	case PRIVILEGED: return rules->allow_privileged;
	case CAP_ADD: return rules->allow_cap_add;
	case DEVICES: return rules->allow_devices;
	case HOST_NS: return rules->allow_host_namespaces;
	case UNCONFINED: return rules->allow_unconfined;
	case SYSCTLS: return rules->allow_sysctls;
	default: return false;
	}
}

/* Check obj's fields against table: unknown fields with a value are
 * refused (a field a newer API adds is not taken on trust). */
static int check_fields(const struct policy *p, json_t *obj, const struct field *table, size_t n,
			const char *where, struct vm_error *err)
{
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v) {
		const struct field *f = NULL;
		for (size_t i = 0; i < n && !f; i++)
			if (is(table[i].name, key))
				f = &table[i];
		if (!f) {
			if (is_default(v))
				continue;
			char what[160];
			snprintf(what, sizeof(what), "%s.%s", where, key);
			return deny_unknown(err, what);
		}
		/* An empty list of masked or read-only paths is not "unset":
		 * the engine takes any list there, an empty one unmasks all
		 * (--security-opt systempaths=unconfined). */
		bool unset = f->rule == UNCONFINED ? json_is_null(v) : is_default(v);
		if (f->rule == FREE || f->rule == SPECIAL || unset || loosened(p->rules, f->rule))
			continue;
		char what[160];
		snprintf(what, sizeof(what), "%s.%s", where, key);
		return vm_error_set(err, EPERM, "%s: %s", what, rule_msg(f->rule));
	}
	return 0;
}

static const char *str(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* "container:REF" names one of the job's containers: rewritten to its
 * full id so that a name another job takes later cannot be meant. */
static int container_ref(const struct policy *p, json_t *obj, const char *key, const char *ref,
			 struct vm_error *err)
{
	char id[65];
	int r = p->ops->own_container(p->ops->ud, ref, id, err);
	if (r < 0)
		return r;
	if (r == 0)
		return vm_error_set(err, EPERM, "HostConfig.%s: container %s is not one of this job's", key,
				    ref);
	char v[80];
	snprintf(v, sizeof(v), "container:%s", id);
	return json_object_set_new(obj, key, json_string(v)) < 0 ? -ENOMEM : 0;
}

/* PidMode, IpcMode, UTSMode, UsernsMode, CgroupnsMode, Cgroup. */
static int ns_mode(const struct policy *p, json_t *hc, const char *key, struct vm_error *err)
{
	json_t *v = json_object_get(hc, key);
	if (is_default(v))
		return 0;
	const char *s = json_string_value(v);
	if (!s)
		return vm_error_set(err, EINVAL, "HostConfig.%s: not a string", key);
	if (strncmp(s, "container:", 10) == 0 &&
	    (is(key, "PidMode") || is(key, "IpcMode") || is(key, "Cgroup")))
		return container_ref(p, hc, key, s + 10, err);
	static const char *const own_modes[] = {"private", "shareable", "none", NULL};
	for (const char *const *m = own_modes; *m; m++)
		if (is(s, *m) && !is(key, "UsernsMode"))
			return 0;
	if (p->rules->allow_host_namespaces && is(s, "host"))
		return 0;
	char what[64];
	snprintf(what, sizeof(what), "HostConfig.%s", key);
	if (is(s, "host"))
		return vm_error_set(err, EPERM, "%s: %s", what, rule_msg(HOST_NS));
	return vm_error_set(err, EPERM, "HostConfig.%s=%s is not taken on the engine socket", key, s);
}

static int network_mode(const struct policy *p, json_t *hc, struct vm_error *err)
{
	json_t *v = json_object_get(hc, "NetworkMode");
	if (is_default(v))
		return 0;
	const char *s = json_string_value(v);
	if (!s)
		return vm_error_set(err, EINVAL, "HostConfig.NetworkMode: not a string");
	if (strncmp(s, "container:", 10) == 0)
		return container_ref(p, hc, "NetworkMode", s + 10, err);
	if (is(s, "host")) {
		if (p->rules->allow_host_namespaces)
			return 0;
		return vm_error_set(err, EPERM, "HostConfig.NetworkMode=host: %s", rule_msg(HOST_NS));
	}
	if (strchr(s, ':') || strchr(s, '/'))
		return vm_error_set(err, EPERM, "HostConfig.NetworkMode=%s is not taken on the engine socket", s);
	char id[65];
	int r = p->ops->own_network(p->ops->ud, s, id, err);
	if (r < 0)
		return r;
	if (r == 0)
		return vm_error_set(err, EPERM, "HostConfig.NetworkMode: network %s is not one of this job's", s);
	return 0;
}

/* A network endpoint's settings (EndpointSettings): its driver options
 * are the network driver's, which no job sets. */
static int endpoint_settings(json_t *ep, struct vm_error *err)
{
	int r = CANON(ep, "EndpointSettings", err, "IPAMConfig", "Links", "Aliases", "MacAddress", "DriverOpts", "NetworkID", "EndpointID", "Gateway", "IPAddress", "IPPrefixLen", "IPv6Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen", "DNSNames", "GwPriority");
	if (r < 0)
		return r;
	if (!is_default(json_object_get(ep, "DriverOpts")))
		return vm_error_set(err, EPERM, "EndpointSettings.DriverOpts is not taken on the engine socket");
	return 0;
}

/* An endpoint's links ("name:alias"): each must name one of the job's
 * containers. */
static int endpoint_links(const struct policy *p, json_t *ep, const char *where,
			  struct vm_error *err)
{
	size_t i;
	json_t *l;
	json_array_foreach(json_object_get(ep, "Links"), i, l) {
		const char *s = json_string_value(l);
		char ref[256], id[65];
		if (!s || snprintf(ref, sizeof(ref), "%.*s", (int)strcspn(s, ":"), s) >= (int)sizeof(ref))
			return vm_error_set(err, EINVAL, "%s: a link is not a string", where);
		int r = p->ops->own_container(p->ops->ud, ref, id, err);
		if (r < 0)
			return r;
		if (r == 0)
			return vm_error_set(err, EPERM, "%s: link to %s, not one of this job's containers",
					    where, ref);
	}
	return 0;
}

static int endpoints(const struct policy *p, json_t *body, struct vm_error *err)
{
	json_t *nc = json_object_get(body, "NetworkingConfig");
	if (is_default(nc))
		return 0;
	int r = CANON(nc, "NetworkingConfig", err, "EndpointsConfig");
	if (r < 0)
		return r;
	json_t *eps = json_object_get(nc, "EndpointsConfig");
	if (!json_is_object(nc) || (eps && !json_is_object(eps) && !json_is_null(eps)))
		return vm_error_set(err, EINVAL, "NetworkingConfig: not an object");
	const char *key;
	json_t *v;
	json_object_foreach(nc, key, v)
		if (!is(key, "EndpointsConfig") && !is_default(v))
			return vm_error_set(err, EPERM, "NetworkingConfig.%s: a field the engine socket does not know is refused", key);
	json_object_foreach(eps, key, v) {
		char id[65];
		if ((r = endpoint_settings(v, err)) < 0)
			return r;
		r = p->ops->own_network(p->ops->ud, key, id, err);
		if (r < 0)
			return r;
		if (r == 0)
			return vm_error_set(err, EPERM, "NetworkingConfig: network %s is not one of this job's", key);
		/* Links inside an endpoint name containers too. */
		if ((r = endpoint_links(p, v, "NetworkingConfig", err)) < 0)
			return r;
	}
	return 0;
}

/* "name:alias" links and "ref[:ro|rw]" volumes-from: the part before
 * the first ":" is a container. */
static int container_list(const struct policy *p, json_t *hc, const char *key, struct vm_error *err)
{
	json_t *list = json_object_get(hc, key);
	if (is_default(list))
		return 0;
	if (!json_is_array(list))
		return vm_error_set(err, EINVAL, "HostConfig.%s: not a list", key);
	size_t i;
	json_t *e;
	json_array_foreach(list, i, e) {
		const char *s = json_string_value(e);
		if (!s)
			return vm_error_set(err, EINVAL, "HostConfig.%s: not a list of strings", key);
		size_t n = strcspn(s, ":");
		char ref[256], id[65];
		if (n == 0 || n >= sizeof(ref))
			return vm_error_set(err, EINVAL, "HostConfig.%s: %s is not a container", key, s);
		memcpy(ref, s, n);
		ref[n] = '\0';
		if (ref[0] == '/')
			memmove(ref, ref + 1, n); /* links may say "/name" */
		int r = p->ops->own_container(p->ops->ud, ref, id, err);
		if (r < 0)
			return r;
		if (r == 0)
			return vm_error_set(err, EPERM, "HostConfig.%s: container %s is not one of this job's", key, ref);
		char nv[512];
		if (snprintf(nv, sizeof(nv), "%s%s", id, s + n) >= (int)sizeof(nv) ||
		    json_array_set_new(list, i, json_string(nv)) < 0)
			return vm_error_set(err, EINVAL, "HostConfig.%s: %s is too long", key, s);
	}
	return 0;
}

static int security_opts(const struct policy *p, json_t *hc, struct vm_error *err)
{
	json_t *list = json_object_get(hc, "SecurityOpt");
	if (is_default(list))
		return 0;
	if (!json_is_array(list))
		return vm_error_set(err, EINVAL, "HostConfig.SecurityOpt: not a list");
	size_t i;
	json_t *e;
	json_array_foreach(list, i, e) {
		const char *s = json_string_value(e);
		if (!s)
			return vm_error_set(err, EINVAL, "HostConfig.SecurityOpt: not a list of strings");
		if (is(s, "no-new-privileges") || is(s, "no-new-privileges:true") ||
		    is(s, "no-new-privileges=true"))
			continue;
		if (p->rules->allow_unconfined)
			continue;
		return vm_error_set(err, EPERM,
				    "HostConfig.SecurityOpt %.*s: only no-new-privileges is taken on the engine socket ([engine] allow_unconfined)",
				    (int)strcspn(s, "=:"), s);
	}
	return 0;
}

/* Bind options after the target: ro/rw, z/Z, nocopy, and propagation,
 * which may only stay private (a shared or slave bind would let mounts
 * flow between the job and the host). */
static int bind_options(const char *opts, bool *ro, struct vm_error *err)
{
	char buf[128];
	if (snprintf(buf, sizeof(buf), "%s", opts) >= (int)sizeof(buf))
		return vm_error_set(err, EINVAL, "bind options %s: too long", opts);
	char *save = NULL;
	for (char *o = strtok_r(buf, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		if (is(o, "ro"))
			*ro = true;
		else if (is(o, "rw") || is(o, "z") || is(o, "Z") || is(o, "nocopy") ||
			 is(o, "private") || is(o, "rprivate") || is(o, "consistent") ||
			 is(o, "cached") || is(o, "delegated"))
			continue;
		else
			return vm_error_set(err, EPERM, "bind option %s is not taken on the engine socket (propagation stays private)", o);
	}
	return 0;
}

static int named_volume(const struct policy *p, const char *name, struct vm_error *err)
{
	int r = p->ops->use_volume(p->ops->ud, name, err);
	if (r < 0)
		return r;
	if (r == 0)
		return vm_error_set(err, EPERM, "volume %s is not one of this job's", name);
	return r; /* 1, or 2: read-only */
}

/* HostConfig.Binds: "src:dst[:opts]".  A src that is a path is resolved
 * in the caller's view; a name is a volume. */
static int binds(const struct policy *p, json_t *hc, struct vm_error *err)
{
	json_t *list = json_object_get(hc, "Binds");
	if (is_default(list))
		return 0;
	if (!json_is_array(list))
		return vm_error_set(err, EINVAL, "HostConfig.Binds: not a list");
	size_t i;
	json_t *e;
	json_array_foreach(list, i, e) {
		const char *s = json_string_value(e);
		if (!s || strlen(s) >= PATH_MAX)
			return vm_error_set(err, EINVAL, "HostConfig.Binds: not a list of strings");
		char src[PATH_MAX], rest[PATH_MAX];
		const char *colon = strchr(s, ':');
		if (!colon || colon == s)
			return vm_error_set(err, EINVAL, "HostConfig.Binds: %s is not SOURCE:TARGET[:OPTIONS]", s);
		snprintf(src, sizeof(src), "%.*s", (int)(colon - s), s);
		snprintf(rest, sizeof(rest), "%s", colon + 1);
		const char *opts = strchr(rest, ':');
		if (rest[0] != '/' || strcspn(rest, ",") < (opts ? (size_t)(opts - rest) : strlen(rest)))
			return vm_error_set(err, EPERM, "HostConfig.Binds: %s: the target must be a path in the container, without \",\"", s);
		bool ro = false;
		int r = bind_options(opts ? opts + 1 : "", &ro, err);
		if (r < 0)
			return r;
		if (src[0] != '/') {
			if ((r = named_volume(p, src, err)) < 0)
				return r;
			if (r == 2 && !ro) {
				char nv[PATH_MAX * 2 + 8];
				snprintf(nv, sizeof(nv), "%s%s", s, opts ? ",ro" : ":ro");
				json_array_set_new(list, i, json_string(nv));
			}
			continue;
		}
		struct bind_target t = {0};
		if ((r = p->ops->bind(p->ops->ud, src, true, &t, err)) < 0)
			return r;
		char nv[PATH_MAX * 2 + 8];
		int n;
		if (t.read_only && !ro)
			n = snprintf(nv, sizeof(nv), "%s:%s%s", t.source, rest, opts ? ",ro" : ":ro");
		else
			n = snprintf(nv, sizeof(nv), "%s:%s", t.source, rest);
		if (n >= (int)sizeof(nv) || json_array_set_new(list, i, json_string(nv)) < 0)
			return vm_error_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

/* Podman's compat create turns the Docker structures into its own
 * command-line strings: a key of Config.Volumes or HostConfig.Tmpfs
 * becomes a "-v"/"--tmpfs" spec split at ":" (so {"Volumes":{"/:/r":{}}}
 * would bind the engine's /), a mount's fields are joined with ","
 * (a Target "/x,source=/" would replace the source).  Docker takes
 * them as the paths they claim to be; both get only those. */
static int container_paths(json_t *obj, const char *field, const char *where, struct vm_error *err)
{
	json_t *m = json_object_get(obj, field);
	if (is_default(m))
		return 0;
	if (!json_is_object(m))
		return vm_error_set(err, EINVAL, "%s: not an object", where);
	const char *k;
	json_t *v;
	json_object_foreach(m, k, v)
		if (k[0] != '/' || strpbrk(k, ":,"))
			return vm_error_set(err, EPERM, "%s: \"%s\" is not a path in the container (no \":\" or \",\" is taken on the engine socket)",
					    where, k);
	return 0;
}

static int no_comma(json_t *v, const char *where, struct vm_error *err)
{
	const char *k;
	json_t *e;
	size_t i;
	if (json_is_string(v) && strchr(json_string_value(v), ','))
		return vm_error_set(err, EPERM, "%s: \"%s\": a \",\" in a mount is not taken on the engine socket",
				    where, json_string_value(v));
	if (json_is_object(v))
		json_object_foreach(v, k, e) {
			int r;
			if (strchr(k, ','))
				return vm_error_set(err, EPERM, "%s: \"%s\": a \",\" in a mount is not taken on the engine socket",
						    where, k);
			if ((r = no_comma(e, where, err)) < 0)
				return r;
		}
	if (json_is_array(v))
		json_array_foreach(v, i, e) {
			int r = no_comma(e, where, err);
			if (r < 0)
				return r;
		}
	return 0;
}

/* Env: "NAME=VALUE", or "NAME": Docker unsets it, Podman copies its
 * service's own value (and "NAME*" every one that matches, "*" all of
 * them: the runner's environment), so Podman gets values only. */
static int env_list(const struct policy *p, json_t *obj, const char *where, struct vm_error *err)
{
	json_t *env = json_object_get(obj, "Env");
	size_t i;
	json_t *e;
	if (is_default(env))
		return 0;
	if (!json_is_array(env))
		return vm_error_set(err, EINVAL, "%s.Env: not a list", where);
	json_array_foreach(env, i, e) {
		const char *v = json_string_value(e);
		if (!v)
			return vm_error_set(err, EINVAL, "%s.Env: not a list of strings", where);
		if (p->podman && !strchr(v, '='))
			return vm_error_set(err, EPERM, "%s.Env: \"%s\" without a value is not taken on the engine socket (the engine would give its own)",
					    where, v);
	}
	return 0;
}

/* LogConfig.Config: the json-file and local drivers' size options
 * only.  Podman takes "path" as the file conmon writes as root (any
 * file of the engine's host), Docker refuses what it does not know. */
static int log_options(json_t *lc, struct vm_error *err)
{
	static const char *const ok[] = {"max-size", "max-file", "compress", "mode",
					 "max-buffer-size", "tag", NULL};
	json_t *cfg = json_object_get(lc, "Config");
	const char *k;
	json_t *v;
	if (is_default(cfg))
		return 0;
	if (!json_is_object(cfg))
		return vm_error_set(err, EINVAL, "HostConfig.LogConfig.Config: not an object");
	json_object_foreach(cfg, k, v) {
		bool found = false;
		for (const char *const *o = ok; *o && !found; o++)
			found = strcmp(k, *o) == 0;
		if (!found)
			return vm_error_set(err, EPERM, "HostConfig.LogConfig.Config: the log option %s is not taken on the engine socket", k);
	}
	return 0;
}

static int mounts(const struct policy *p, json_t *hc, struct vm_error *err)
{
	json_t *list = json_object_get(hc, "Mounts");
	if (is_default(list))
		return 0;
	if (!json_is_array(list))
		return vm_error_set(err, EINVAL, "HostConfig.Mounts: not a list");
	size_t i;
	json_t *m;
	json_array_foreach(list, i, m) {
		if (!json_is_object(m))
			return vm_error_set(err, EINVAL, "HostConfig.Mounts: not a list of objects");
		int r;
		json_t *vo, *dc;
		if ((r = CANON(m, "HostConfig.Mounts[]", err, "Type", "Source", "Target", "ReadOnly",
			       "Consistency", "BindOptions", "VolumeOptions", "TmpfsOptions")) < 0 ||
		    (r = CANON(json_object_get(m, "BindOptions"), "Mounts[].BindOptions", err,
			       "Propagation", "NonRecursive", "CreateMountpoint", "ReadOnlyNonRecursive",
			       "ReadOnlyForceRecursive")) < 0 ||
		    (r = CANON(vo = json_object_get(m, "VolumeOptions"), "Mounts[].VolumeOptions", err,
			       "NoCopy", "Labels", "DriverConfig", "Subpath")) < 0 ||
		    (r = CANON(dc = json_object_get(vo, "DriverConfig"), "Mounts[].VolumeOptions.DriverConfig",
			       err, "Name", "Options")) < 0 ||
		    (r = CANON(json_object_get(m, "TmpfsOptions"), "Mounts[].TmpfsOptions", err,
			       "SizeBytes", "Mode", "Options")) < 0)
			return r;
		if ((r = no_comma(m, "HostConfig.Mounts", err)) < 0)
			return r;
		const char *target = str(m, "Target");
		if (!target || target[0] != '/')
			return vm_error_set(err, EINVAL, "HostConfig.Mounts: a mount needs an absolute Target");
		const char *type = str(m, "Type"), *src = str(m, "Source");
		if (is(type, "tmpfs")) {
			if (src && *src)
				return vm_error_set(err, EINVAL, "HostConfig.Mounts: a tmpfs mount has no source");
			continue;
		}
		if (is(type, "volume")) {
			/* The local driver's options (type=none,o=bind,device=
			 * PATH) are a host bind in disguise. */
			if (!is_default(json_object_get(dc, "Options")) && !p->rules->allow_host_binds)
				return vm_error_set(err, EPERM, "HostConfig.Mounts: volume driver options are not taken on the engine socket (create the volume first)");
			if (!is_default(json_object_get(dc, "Name")) && !is(str(dc, "Name"), "local"))
				return vm_error_set(err, EPERM, "HostConfig.Mounts: volume drivers other than local are not taken here (create the volume first)");
			if (src && *src && (r = named_volume(p, src, err)) < 0)
				return r;
			if (src && *src && r == 2)
				json_object_set_new(m, "ReadOnly", json_true());
			continue;
		}
		if (!is(type, "bind"))
			return vm_error_set(err, EPERM, "HostConfig.Mounts: mounts of type %s are not taken on the engine socket",
					    type ? type : "(none)");
		json_t *bo = json_object_get(m, "BindOptions");
		const char *prop = str(bo, "Propagation");
		if (prop && *prop && !is(prop, "private") && !is(prop, "rprivate"))
			return vm_error_set(err, EPERM, "HostConfig.Mounts: bind propagation %s is not taken on the engine socket", prop);
		if (json_is_true(json_object_get(bo, "CreateMountpoint")))
			return vm_error_set(err, EPERM, "HostConfig.Mounts: CreateMountpoint is not taken on the engine socket");
		if (!src || src[0] != '/')
			return vm_error_set(err, EINVAL, "HostConfig.Mounts: a bind needs an absolute Source");
		struct bind_target t = {0};
		if ((r = p->ops->bind(p->ops->ud, src, false, &t, err)) < 0)
			return r;
		if (t.volume) {
			/* The volume's top: mounted as the volume itself. */
			json_object_set_new(m, "Type", json_string("volume"));
			json_object_del(m, "BindOptions");
		}
		json_object_set_new(m, "Source", json_string(t.source));
		if (t.read_only)
			json_object_set_new(m, "ReadOnly", json_true());
	}
	return 0;
}

int policy_label(const struct policy *p, json_t *obj, const char *field, struct vm_error *err)
{
	json_t *labels = json_object_get(obj, field);
	if (labels && !json_is_object(labels) && !json_is_null(labels))
		return vm_error_set(err, EINVAL, "%s: not an object", field);
	if (!json_is_object(labels)) {
		labels = json_object();
		if (!labels || json_object_set_new(obj, field, labels) < 0)
			return vm_error_set(err, ENOMEM, "out of memory");
	}
	const char *key;
	json_t *v;
	json_object_foreach(labels, key, v)
		if (strncmp(key, POLICY_LABEL_PREFIX, strlen(POLICY_LABEL_PREFIX)) == 0)
			return vm_error_set(err, EPERM, "label %s: labels under %s are the engine socket's own",
					    key, POLICY_LABEL_PREFIX);
	if (json_object_set_new(labels, POLICY_LABEL_JOB, json_string(p->job)) < 0)
		return vm_error_set(err, ENOMEM, "out of memory");
	return 0;
}

int policy_container_create(const struct policy *p, json_t *body, struct vm_error *err)
{
	if (!json_is_object(body))
		return vm_error_set(err, EINVAL, "the body is not a JSON object");
	int r = canon_fields(body, config_fields, ELEMENTSOF(config_fields), "Config", err);
	if (r < 0 || (r = check_fields(p, body, config_fields, ELEMENTSOF(config_fields), "Config", err)) < 0)
		return r;
	json_t *hc = json_object_get(body, "HostConfig");
	if (hc && !json_is_object(hc) && !json_is_null(hc))
		return vm_error_set(err, EINVAL, "HostConfig: not an object");
	if (!json_is_object(hc)) {
		hc = json_object();
		if (!hc || json_object_set_new(body, "HostConfig", hc) < 0)
			return vm_error_set(err, ENOMEM, "out of memory");
	}
	if ((r = canon_fields(hc, host_fields, ELEMENTSOF(host_fields), "HostConfig", err)) < 0 ||
	    (r = check_fields(p, hc, host_fields, ELEMENTSOF(host_fields), "HostConfig", err)) < 0 ||
	    (r = CANON(json_object_get(hc, "LogConfig"), "HostConfig.LogConfig", err, "Type", "Config")) < 0 ||
	    (r = CANON(json_object_get(hc, "RestartPolicy"), "HostConfig.RestartPolicy", err, "Name",
		       "MaximumRetryCount")) < 0)
		return r;
	static const char *const ns_keys[] = {"PidMode", "IpcMode", "UTSMode", "UsernsMode",
					      "CgroupnsMode", "Cgroup"};
	for (size_t i = 0; i < ELEMENTSOF(ns_keys); i++)
		if ((r = ns_mode(p, hc, ns_keys[i], err)) < 0)
			return r;
	if ((r = network_mode(p, hc, err)) < 0 || (r = endpoints(p, body, err)) < 0 ||
	    (r = container_list(p, hc, "VolumesFrom", err)) < 0 ||
	    (r = container_list(p, hc, "Links", err)) < 0 || (r = security_opts(p, hc, err)) < 0)
		return r;
	json_t *v = json_object_get(hc, "OomScoreAdj");
	if (!is_default(v) && (!json_is_integer(v) || json_integer_value(v) < 0))
		return vm_error_set(err, EPERM, "HostConfig.OomScoreAdj below 0 is refused on the engine socket");
	const char *rt = str(hc, "Runtime");
	if (rt && *rt && !is(rt, "runc") && !is(rt, "crun"))
		return vm_error_set(err, EPERM, "HostConfig.Runtime %s is not taken on the engine socket", rt);
	const char *iso = str(hc, "Isolation");
	if (iso && *iso && !is(iso, "default"))
		return vm_error_set(err, EPERM, "HostConfig.Isolation %s is not taken on the engine socket", iso);
	const char *vd = str(hc, "VolumeDriver");
	if (vd && *vd && !is(vd, "local"))
		return vm_error_set(err, EPERM, "HostConfig.VolumeDriver %s is not taken on the engine socket: create the volume first", vd);
	json_t *lc = json_object_get(hc, "LogConfig");
	const char *lt = str(lc, "Type");
	if (lt && *lt && !is(lt, "json-file") && !is(lt, "local") && !is(lt, "none") &&
	    !is(lt, "journald") && !is(lt, "k8s-file"))
		return vm_error_set(err, EPERM, "HostConfig.LogConfig: log driver %s is not taken on the engine socket", lt);
	if ((r = log_options(lc, err)) < 0 || (r = env_list(p, body, "Config", err)) < 0)
		return r;
	if ((r = container_paths(body, "Volumes", "Config.Volumes", err)) < 0 ||
	    (r = container_paths(hc, "Tmpfs", "HostConfig.Tmpfs", err)) < 0)
		return r;
	if (p->rules->allow_host_binds) {
		/* Binds pass as they are; volumes are still the job's. */
	} else if ((r = binds(p, hc, err)) < 0 || (r = mounts(p, hc, err)) < 0) {
		return r;
	}
	return policy_label(p, body, "Labels", err);
}

int policy_exec_create(const struct policy *p, json_t *body, struct vm_error *err)
{
	if (!json_is_object(body))
		return vm_error_set(err, EINVAL, "the body is not a JSON object");
	static const struct field exec_fields[] = {
		{"User", FREE},        {"Privileged", PRIVILEGED}, {"Tty", FREE},
		{"ConsoleSize", FREE}, {"AttachStdin", FREE},      {"AttachStderr", FREE},
		{"AttachStdout", FREE}, {"Detach", FREE},          {"DetachKeys", FREE},
		{"Env", FREE},         {"WorkingDir", FREE},       {"Cmd", FREE},
		{"Container", FREE}, /* docker-py sends it; the path decides */
	};
	int r = canon_fields(body, exec_fields, ELEMENTSOF(exec_fields), "exec", err);
	if (r < 0 || (r = check_fields(p, body, exec_fields, ELEMENTSOF(exec_fields), "exec", err)) < 0)
		return r;
	return env_list(p, body, "exec", err);
}

int policy_network_create(const struct policy *p, json_t *body, struct vm_error *err)
{
	if (!json_is_object(body))
		return vm_error_set(err, EINVAL, "the body is not a JSON object");
	static const struct field net_fields[] = {
		{"Name", FREE},       {"CheckDuplicate", FREE}, {"Driver", SPECIAL},
		{"Scope", FREE},      {"EnableIPv6", FREE},     {"IPAM", FREE},
		{"Internal", FREE},   {"Attachable", FREE},     {"Ingress", UNSET},
		{"ConfigOnly", UNSET}, {"ConfigFrom", UNSET},   {"Options", SPECIAL},
		{"Labels", SPECIAL},  {"EnableIPv4", FREE},
	};
	int r = canon_fields(body, net_fields, ELEMENTSOF(net_fields), "network", err);
	if (r < 0 || (r = check_fields(p, body, net_fields, ELEMENTSOF(net_fields), "network", err)) < 0)
		return r;
	/* Subnets and gateways of a job's choosing would become addresses
	 * of the engine's host (169.254.169.254, the host's own ranges):
	 * the engine picks them. */
	json_t *ipam = json_object_get(body, "IPAM");
	if ((r = CANON(ipam, "network.IPAM", err, "Driver", "Config", "Options")) < 0)
		return r;
	const char *ipd = str(ipam, "Driver");
	if ((ipd && *ipd && !is(ipd, "default")) || !is_default(json_object_get(ipam, "Config")) ||
	    !is_default(json_object_get(ipam, "Options")))
		return vm_error_set(err, EPERM, "network IPAM settings (subnets, gateways, drivers) are not taken on the engine socket: the engine picks them");
	const char *d = str(body, "Driver");
	if (d && *d && !is(d, "bridge"))
		return vm_error_set(err, EPERM, "network driver %s is not taken on the engine socket (bridge only)", d);
	/* Names an engine reads as a network mode, not a network (Podman:
	 * --network slirp4netns, pasta, private, ns:PATH, container:ID). */
	static const char *const modes[] = {"host", "none", "bridge", "default", "private",
					    "slirp4netns", "pasta", NULL};
	const char *name = str(body, "Name");
	for (const char *const *m = modes; name && *m; m++)
		if (strcasecmp(name, *m) == 0)
			return vm_error_set(err, EPERM, "a network named %s is not taken on the engine socket (engines read it as a network mode)", name);
	if (name && (strchr(name, ':') || strchr(name, '/')))
		return vm_error_set(err, EPERM, "a network name with \":\" or \"/\" is not taken on the engine socket (engines read it as a network mode)");
	/* Bridge options name host interfaces (com.docker.network.bridge.
	 * name) or turn off isolation: only the MTU is taken (clouds and
	 * nested runners need a smaller one). */
	json_t *opts = json_object_get(body, "Options");
	if (opts && !json_is_object(opts) && !json_is_null(opts))
		return vm_error_set(err, EINVAL, "network Options: not an object");
	const char *key;
	json_t *v;
	json_object_foreach(opts, key, v)
		if (strcmp(key, "com.docker.network.driver.mtu") != 0)
			return vm_error_set(err, EPERM, "network option %s is not taken on the engine socket (only com.docker.network.driver.mtu is)", key);
	return policy_label(p, body, "Labels", err);
}

int policy_volume_create(const struct policy *p, json_t *body, struct vm_error *err)
{
	if (!json_is_object(body))
		return vm_error_set(err, EINVAL, "the body is not a JSON object");
	static const struct field vol_fields[] = {
		{"Name", FREE}, {"Driver", SPECIAL}, {"DriverOpts", SPECIAL}, {"Labels", SPECIAL},
	};
	int r = canon_fields(body, vol_fields, ELEMENTSOF(vol_fields), "volume", err);
	if (r == 0)
		r = check_fields(p, body, vol_fields, ELEMENTSOF(vol_fields), "volume", err);
	if (r < 0)
		return r;
	const char *d = str(body, "Driver");
	if (d && *d && !is(d, "local"))
		return vm_error_set(err, EPERM, "volume driver %s is not taken on the engine socket", d);
	if (!is_default(json_object_get(body, "DriverOpts")) && !p->rules->allow_host_binds)
		return vm_error_set(err, EPERM, "local volume options (a host mount in disguise) are not taken on the engine socket");
	return policy_label(p, body, "Labels", err);
}

int policy_network_connect(const struct policy *p, json_t *body, struct vm_error *err)
{
	if (!json_is_object(body))
		return vm_error_set(err, EINVAL, "the body is not a JSON object");
	int r = CANON(body, "network connect", err, "Container", "EndpointConfig", "Force");
	if (r < 0 || (r = endpoint_settings(json_object_get(body, "EndpointConfig"), err)) < 0)
		return r;
	const char *c = str(body, "Container");
	if (!c)
		return vm_error_set(err, EINVAL, "no Container");
	char id[65];
	r = p->ops->own_container(p->ops->ud, c, id, err);
	if (r < 0)
		return r;
	if (r == 0)
		return vm_error_set(err, EPERM, "container %s is not one of this job's", c);
	json_object_set_new(body, "Container", json_string(id));
	return endpoint_links(p, json_object_get(body, "EndpointConfig"), "EndpointConfig", err);
}
