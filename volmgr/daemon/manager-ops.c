/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "manager-ops.h"

#include "caller.h"
#include "gc.h"

/* ---- the plugin (Docker and Podman) ---- */

static int p_create(void *ctx, const char *name, const struct vm_create_opts *o,
		    const struct vm_caller *caller, struct vm_error *err)
{
	/* Engines cannot name a source per job (gitlab-runner passes the
	 * same driver options to every volume): let the seed rules pick. */
	struct vm_create_opts seeded = *o;
	seeded.seed_by_rules = true;
	/* Which engine asks, from the kernel: gc asks that one later
	 * whether it forgot the volume. */
	char engine[VM_ENGINE_NAME_MAX + 1];
	vm_caller_engine(caller, vm_manager_proc(ctx), engine);
	seeded.engine = engine[0] ? engine : NULL;
	int r = vm_volume_create(ctx, name, &seeded, caller, err);
	if (r == -EEXIST)
		vm_volume_engine_asked(ctx, name);
	return r;
}

static int p_remove(void *ctx, const char *name, const struct vm_caller *caller,
		    struct vm_error *err)
{
	char engine[VM_ENGINE_NAME_MAX + 1];
	vm_caller_engine(caller, vm_manager_proc(ctx), engine);
	return vm_volume_remove(ctx, name, engine, err);
}

static int p_mount(void *ctx, const char *name, const char *id, char **ret_path,
		   struct vm_error *err)
{
	return vm_volume_mount(ctx, name, id, ret_path, err);
}

static int p_unmount(void *ctx, const char *name, const char *id, struct vm_error *err)
{
	return vm_volume_unmount(ctx, name, id, err);
}

/* The engines' Get and List never wait on a scan of the machine's
 * mounts (Podman gives up after 5 s). */
static int p_get(void *ctx, const char *name, struct vm_volume_info *ret,
		 struct vm_error *err)
{
	int r = vm_volume_get(ctx, name, false, ret, err);
	/* The engine knows the volume again: a Remove it forgot no longer
	 * counts (a record write, only for such a volume). */
	if (r == 0 && ret->remove_refused_ns)
		vm_volume_engine_asked(ctx, name);
	return r;
}

static int p_list(void *ctx, struct vm_volume_info_list *ret, struct vm_error *err)
{
	return vm_volume_list(ctx, false, ret, err);
}

const struct vm_plugin_ops vm_plugin_manager_ops = {
	.create = p_create,
	.remove = p_remove,
	.mount = p_mount,
	.unmount = p_unmount,
	.get = p_get,
	.list = p_list,
};

/* ---- the control socket (the volmgr CLI) ---- */

static void c_pool(void *ctx, struct vm_control_pool *ret)
{
	const struct vm_pool *p = vm_manager_pool(ctx);
	*ret = (struct vm_control_pool){
		.path = p->path,
		.fstype = p->fstype,
		.backend = vm_manager_backend(ctx)->kind,
		.volumes_fs_path = vm_manager_volumes_fs_path(ctx),
	};
}

static void c_status(void *ctx, struct vm_manager_status *ret)
{
	vm_manager_status(ctx, ret);
}

static int c_volume_create(void *ctx, const char *name, const struct vm_create_opts *o,
			   const struct vm_caller *caller, struct vm_error *err)
{
	return vm_volume_create(ctx, name, o, caller, err);
}

static int c_volume_create_from_fd(void *ctx, const char *name, int fd, const char *path,
				   const struct vm_create_opts *o,
				   const struct vm_caller *caller, struct vm_create_how *ret_how,
				   struct vm_error *err)
{
	return vm_volume_create_from_fd(ctx, name, fd, path, o, caller, ret_how, err);
}

static int c_volume_which(void *ctx, int fd, struct vm_volume_place *ret, struct vm_error *err)
{
	return vm_volume_which(ctx, fd, ret, err);
}

static int c_mount_of_fd(void *ctx, const struct vm_caller *caller, int fd, json_t **ret,
			 struct vm_error *err)
{
	return vm_caller_mount_of_fd(caller, vm_manager_proc(ctx), fd, ret, err);
}

/* The CLI's inspect and ls: in use as the machine's mounts say. */
static int c_volume_get(void *ctx, const char *name, struct vm_volume_info *ret,
			struct vm_error *err)
{
	return vm_volume_get(ctx, name, true, ret, err);
}

static int c_volume_list(void *ctx, struct vm_volume_info_list *ret, struct vm_error *err)
{
	return vm_volume_list(ctx, true, ret, err);
}

static int c_volume_remove(void *ctx, const char *name, const struct vm_caller *caller,
			   struct vm_error *err)
{
	return vm_volume_remove_as(ctx, name, caller, err);
}

static int c_cache_export(void *ctx, const char *name, int out_fd, struct vm_stream_result *ret,
			  struct vm_error *err)
{
	return vm_cache_export(ctx, name, out_fd, ret, err);
}

static int c_cache_import_stream(void *ctx, const char *name, const char *git_url, int in_fd,
				 const struct vm_caller *caller, struct vm_stream_result *ret,
				 struct vm_error *err)
{
	return vm_cache_import_stream(ctx, name, git_url, in_fd, caller, ret, err);
}

static int c_cache_import(void *ctx, const char *name, int fd, const struct vm_create_opts *o,
			  const struct vm_caller *caller, struct vm_copy_stats *ret_stats,
			  struct vm_error *err)
{
	return vm_cache_import(ctx, name, fd, o, caller, ret_stats, err);
}

static int c_cache_create_git(void *ctx, const char *name, const char *url, const char *branch,
			      const struct vm_caller *caller, struct vm_git_result *ret,
			      struct vm_error *err)
{
	return vm_cache_create_git(ctx, name, url, branch, caller, ret, err);
}

static int c_cache_update(void *ctx, const char *name, struct vm_git_result *ret,
			  struct vm_error *err)
{
	return vm_cache_update(ctx, name, ret, err);
}

static int c_cache_get(void *ctx, const char *name, struct vm_cache_info *ret,
		       struct vm_error *err)
{
	return vm_cache_get(ctx, name, ret, err);
}

static int c_cache_list(void *ctx, struct vm_cache_info_list *ret, struct vm_error *err)
{
	return vm_cache_list(ctx, ret, err);
}

static int c_cache_promote(void *ctx, int fd, const char *name,
			   const struct vm_promote_opts *o, const struct vm_caller *caller,
			   struct vm_promote_result *ret, struct vm_error *err)
{
	return vm_cache_promote(ctx, fd, name, o, caller, ret, err);
}

static int c_cache_remove(void *ctx, const char *name, struct vm_error *err)
{
	return vm_cache_remove(ctx, name, err);
}

static int c_gc(void *ctx, bool dry_run, json_t *labels, struct vm_gc_report *ret,
		struct vm_error *err)
{
	return vm_gc(ctx, dry_run, labels, ret, err);
}

const struct vm_control_ops vm_control_manager_ops = {
	.pool = c_pool,
	.status = c_status,
	.volume_create = c_volume_create,
	.volume_create_from_fd = c_volume_create_from_fd,
	.volume_which = c_volume_which,
	.mount_of_fd = c_mount_of_fd,
	.volume_get = c_volume_get,
	.volume_list = c_volume_list,
	.volume_remove = c_volume_remove,
	.cache_import = c_cache_import,
	.cache_export = c_cache_export,
	.cache_import_stream = c_cache_import_stream,
	.cache_create_git = c_cache_create_git,
	.cache_update = c_cache_update,
	.cache_get = c_cache_get,
	.cache_list = c_cache_list,
	.cache_remove = c_cache_remove,
	.cache_promote = c_cache_promote,
	.gc = c_gc,
};
