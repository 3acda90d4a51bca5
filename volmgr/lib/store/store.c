/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The store's life, its records, the names in flight, opening a source
 * and a new volume's limit (store.h). */
#include "store.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "json-util.h"

int vm_store_init(struct vm_store *s, struct vm_pool *pool,
		  vm_log_fn log, void *log_userdata,
		  struct vm_error *err)
{
	*s = (struct vm_store){.pool = pool, .log = log, .log_userdata = log_userdata};
	pthread_mutex_init(&s->lock, NULL);
	sem_init(&s->copy_slots, 0, VM_STORE_COPIES_MAX);
	s->reserved = json_object();
	s->cache_uses = json_object();
	s->engine_forgot = json_object();
	if (!s->reserved || !s->cache_uses || !s->engine_forgot)
		return vm_error_set(err, ENOMEM, "out of memory");
	return 0;
}

void vm_store_done(struct vm_store *s)
{
	vm_volquota_done(&s->vq); /* its thread uses the pool */
	vm_pool_free(s->pool);
	s->pool = NULL;
	pthread_mutex_destroy(&s->lock);
	sem_destroy(&s->copy_slots);
	json_decref(s->reserved);
	s->reserved = NULL;
	json_decref(s->cache_uses);
	s->cache_uses = NULL;
	json_decref(s->engine_forgot);
	s->engine_forgot = NULL;
	vm_readers_done(&s->readers);
}

void vm_store_unlockp(struct vm_store_locked *l)
{
	if (l->m)
		pthread_mutex_unlock(l->m);
}

/* ---- records ---- */

int vm_store_data_fd(const struct vm_store *s, enum vm_kind k)
{
	return k == VM_KIND_CACHE ? s->pool->caches_fd : s->pool->volumes_fd;
}

int vm_store_meta_fd(const struct vm_store *s, enum vm_kind k)
{
	return k == VM_KIND_CACHE ? s->pool->cache_meta_fd : s->pool->vol_meta_fd;
}

char *vm_store_volume_path(const struct vm_store *s, const char *name)
{
	char *p;
	if (asprintf(&p, "%s/volumes/%s", s->pool->path, name) < 0)
		return NULL;
	return p;
}

static void record_file(const char *name, char buf[static VM_NAME_MAX + 8])
{
	snprintf(buf, VM_NAME_MAX + 8, "%s.json", name);
}

bool vm_store_record_name(const char *file, char buf[static VM_NAME_MAX + 1])
{
	size_t l = strlen(file);
	if (file[0] == '.' || l < 6 || l - 5 > VM_NAME_MAX || strcmp(file + l - 5, ".json") != 0)
		return false;
	memcpy(buf, file, l - 5);
	buf[l - 5] = '\0';
	return true;
}

int vm_store_load_record(struct vm_store *s, enum vm_kind k, const char *name,
			 struct vm_record *ret, struct vm_error *err)
{
	char file[VM_NAME_MAX + 8];
	record_file(name, file);
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r = vm_read_file_at(vm_store_meta_fd(s, k), file, VM_RECORD_MAX_BYTES, &text, &len);
	if (r == -ENOENT)
		return vm_error_set(err, ENOENT, "no such %s: %s", vm_kind_str(k), name);
	if (r < 0)
		return vm_error_errno(err, -r, "cannot read the record of %s %s",
				      vm_kind_str(k), name);
	r = vm_record_load(text, len, k, ret, err);
	/* The parser names the field, not the record. */
	return r < 0 ? vm_error_wrap(err, r, "the record of %s %s", vm_kind_str(k), name) : 0;
}

int vm_store_load_ready(struct vm_store *s, enum vm_kind k, const char *name,
			struct vm_record *ret, struct vm_error *err)
{
	int r = vm_name_check(vm_kind_str(k), name, err);
	if (r < 0)
		return r;
	r = vm_store_load_record(s, k, name, ret, err);
	if (r < 0)
		return r;
	if (ret->state != VM_STATE_READY)
		return vm_error_set(err, ENOENT, "no such %s: %s", vm_kind_str(k), name);
	return 0;
}

int vm_store_store_record(struct vm_store *s, const struct vm_record *rec,
			  struct vm_error *err)
{
	char file[VM_NAME_MAX + 8];
	record_file(rec->name, file);
	_cleanup_free_ char *text = vm_record_dump(rec);
	if (!text)
		return vm_error_set(err, ENOMEM, "out of memory");
	int r = vm_write_file_atomic_at(vm_store_meta_fd(s, rec->kind), file, text,
					strlen(text), 0600);
	if (r < 0)
		return vm_error_errno(err, -r, "cannot write the record of %s %s",
				      vm_kind_str(rec->kind), rec->name);
	return 0;
}

bool vm_store_has_record(struct vm_store *s, enum vm_kind k, const char *name)
{
	char file[VM_NAME_MAX + 8];
	struct stat st;
	record_file(name, file);
	return fstatat(vm_store_meta_fd(s, k), file, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

int vm_store_unlink_record(struct vm_store *s, enum vm_kind k, const char *name,
			   struct vm_error *err)
{
	char file[VM_NAME_MAX + 8];
	record_file(name, file);
	int fd = vm_store_meta_fd(s, k);
	if (unlinkat(fd, file, 0) < 0 && errno != ENOENT)
		return vm_error_errno(err, errno, "cannot remove the record of %s", name);
	if (fsync(fd) < 0)
		return vm_error_errno(err, errno, "cannot sync the records");
	return 0;
}

json_t *vm_store_names(struct vm_store *s, enum vm_kind k)
{
	/* A directory fd of its own: a dup would share the offset of a
	 * listing running meanwhile. */
	int fd = openat(vm_store_meta_fd(s, k), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	json_t *names = json_object();
	if (!d || !names) {
		if (d)
			closedir(d);
		else
			closep(&fd);
		json_decref(names);
		return NULL;
	}
	struct dirent *de;
	char name[VM_NAME_MAX + 1];
	while ((de = readdir(d)))
		if (vm_store_record_name(de->d_name, name))
			json_object_set_new(names, name, json_true());
	closedir(d);
	return names;
}

void vm_store_record_birth(struct vm_record *rec, const struct vm_caller *caller,
			   const struct vm_create_opts *opts)
{
	rec->created_ns = vm_now_ns();
	if (opts && opts->ttl_ns > 0)
		rec->expires_ns = rec->created_ns + opts->ttl_ns;
	if (caller) {
		rec->creator_uid = caller->uid;
		rec->creator_pid = caller->pid;
		snprintf(rec->creator_cgroup, sizeof(rec->creator_cgroup), "%s", caller->cgroup);
	}
	if (opts && opts->labels) {
		json_decref(rec->labels);
		rec->labels = json_deep_copy(opts->labels);
	}
	if (opts && opts->engine)
		snprintf(rec->creator_engine, sizeof(rec->creator_engine), "%s", opts->engine);
	if (opts && opts->seed_cache) {
		snprintf(rec->seed_rule, sizeof(rec->seed_rule), "%s", opts->seed_rule);
		snprintf(rec->seed_cache, sizeof(rec->seed_cache), "%s", opts->seed_cache);
	}
}

bool vm_store_data_exists(struct vm_store *s, enum vm_kind k, const char *name)
{
	struct stat st;
	return fstatat(vm_store_data_fd(s, k), name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* ---- names in flight ---- */

bool vm_store_name_taken(struct vm_store *s, enum vm_kind k, const char *name)
{
	char file[VM_NAME_MAX + 8], key[VM_NAME_MAX + 16];
	record_file(name, file);
	snprintf(key, sizeof(key), "%s:%s", vm_kind_str(k), name);
	struct stat st;
	return json_object_get(s->reserved, key) ||
	       fstatat(vm_store_meta_fd(s, k), file, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
	       vm_store_data_exists(s, k, name);
}

void vm_store_reserve(struct vm_store *s, enum vm_kind k, const char *name, bool on)
{
	char key[VM_NAME_MAX + 16];
	snprintf(key, sizeof(key), "%s:%s", vm_kind_str(k), name);
	vm_store_busy(s, key, on);
}

bool vm_store_busy(struct vm_store *s, const char *key, int on)
{
	bool was = json_object_get(s->reserved, key) != NULL;
	if (on > 0)
		json_object_set_new(s->reserved, key, json_true());
	else if (on == 0)
		json_object_del(s->reserved, key);
	return was;
}

/* ---- sources and limits ---- */

int vm_store_open_source(struct vm_store *s, const struct vm_source *src, int *ret_fd,
			 struct vm_source_traits *ret_traits, struct vm_error *err)
{
	enum vm_kind k = src->kind == VM_SOURCE_CACHE ? VM_KIND_CACHE : VM_KIND_VOLUME;
	_cleanup_record_ struct vm_record rec = {0};
	int r = vm_store_load_record(s, k, src->name, &rec, err);
	if (r < 0)
		return r;
	if (rec.state != VM_STATE_READY)
		return vm_error_set(err, ENOENT, "no such %s: %s", vm_kind_str(k), src->name);
	int fd = vm_openat_beneath(vm_store_data_fd(s, k), src->name,
				   O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0)
		return vm_error_errno(err, -fd, "cannot open %s %s", vm_kind_str(k), src->name);
	*ret_fd = fd;
	if (ret_traits)
		*ret_traits = (struct vm_source_traits){
			.no_xattrs = rec.no_xattrs,
			.no_devices = k == VM_KIND_CACHE && !rec.promoted_from[0],
		};
	/* A use, for the caches' ceiling (least recently used go first);
	 * bounded by the number of caches (gc forgets the removed ones). */
	if (k == VM_KIND_CACHE)
		json_object_set_new(s->cache_uses, src->name, json_integer(vm_now_ns()));
	return 0;
}

int64_t vm_store_cache_last_used(const struct vm_store *s, const struct vm_record *rec)
{
	int64_t mem = json_integer_value(json_object_get(s->cache_uses, rec->name));
	return mem > rec->last_used_ns ? mem : rec->last_used_ns;
}

int vm_store_apply_quota(struct vm_store *s, uint64_t subvol_id,
			 const struct vm_create_opts *opts, uint64_t *ret_bytes,
			 struct vm_error *err)
{
	uint64_t bytes = opts && opts->quota_set ? opts->quota_bytes : s->quota_default;
	*ret_bytes = 0;
	if (bytes && !s->quotas)
		return vm_error_set(err, EOPNOTSUPP, "cannot set a quota: %s", s->quota_error.msg);
	if (!s->quotas || !subvol_id)
		return 0;
	int r = vm_volquota_apply(&s->vq, subvol_id, bytes, err);
	if (r == 0)
		*ret_bytes = bytes;
	return r;
}
