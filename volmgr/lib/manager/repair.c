/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Start-up repair: whatever a crash left in staging/ is deleted, an
 * interrupted removal is finished, a record without data is dropped and
 * data without a record deleted, a cache is made read-only again and its
 * record caught up with its checkout.  Each step is one that the commit
 * protocol of store.h allows to be cut short. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "manager-private.h"

/* One repair done, to the front end (vm_manager_config.repair). */
#define report_add(m, ...) vm_log_to((m)->repair, (m)->store.log_userdata, __VA_ARGS__)

static int repair_staging(struct vm_manager *m,
			  struct vm_error *err)
{
	DIR *d = vm_opendir_at(m->store.pool->staging_fd);
	if (!d)
		return vm_error_errno(err, errno, "cannot read staging");
	struct dirent *de;
	int r = 0;
	while ((de = readdir(d))) {
		if (!vm_is_plain_component(de->d_name))
			continue;
		struct vm_error e = {0};
		if (vm_store_delete_staged(&m->store, de->d_name, &e) < 0) {
			report_add(m, "could not delete staging/%s: %s",
				   de->d_name, e.msg);
			continue;
		}
		report_add(m, "deleted unfinished work staging/%s", de->d_name);
	}
	closedir(d);
	return r;
}

static bool is_temp_record(const char *n)
{
	return n[0] == '.' && strstr(n, ".tmp-");
}

static int repair_kind(struct vm_manager *m, enum vm_kind k,
		       struct vm_error *err)
{
	const char *what = vm_kind_str(k);
	_cleanup_json_ json_t *known = json_object();
	DIR *d = vm_opendir_at(vm_store_meta_fd(&m->store, k));
	if (!d || !known) {
		if (d)
			closedir(d);
		return vm_error_errno(err, errno ? errno : ENOMEM,
				      "cannot read the %s records", what);
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		if (!vm_is_plain_component(n))
			continue;
		if (is_temp_record(n)) {
			unlinkat(vm_store_meta_fd(&m->store, k), n, 0);
			report_add(m, "removed half-written record %s", n);
			continue;
		}
		size_t l = strlen(n);
		if (l < 6 || strcmp(n + l - 5, ".json") != 0)
			continue;
		char name[VM_NAME_MAX + 1];
		if (l - 5 > VM_NAME_MAX)
			continue;
		memcpy(name, n, l - 5);
		name[l - 5] = '\0';
		json_object_set_new(known, name, json_true());

		struct vm_error e = {0};
		_cleanup_record_ struct vm_record rec = {0};
		if (vm_store_load_record(&m->store, k, name, &rec, &e) < 0) {
			/* Never delete data we cannot account for. */
			report_add(m, "%s %s: unreadable record left alone: %s",
				   what, name, e.msg);
			continue;
		}
		if (rec.state == VM_STATE_REMOVING) {
			if (vm_store_discard_data(&m->store, vm_store_data_fd(&m->store, k), name, &e) < 0 ||
			    vm_store_unlink_record(&m->store, k, name, &e) < 0) {
				report_add(m, "%s %s: could not finish removal: %s",
					   what, name, e.msg);
				continue;
			}
			report_add(m, "%s %s: finished an interrupted removal",
				   what, name);
			continue;
		}
		if (!vm_store_data_exists(&m->store, k, name)) {
			if (vm_store_unlink_record(&m->store, k, name, &e) == 0)
				report_add(m, "%s %s: dropped a record without data",
					   what, name);
		} else if (k == VM_KIND_CACHE) {
			/* An update swaps generations with both writable: a
			 * crash in between leaves the cache writable. */
			_cleanup_close_ int fd = vm_openat_beneath(
				vm_store_data_fd(&m->store, k), name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
			if (fd >= 0)
				vm_backend_set_read_only(&m->store.backend, fd, true, NULL);
			bool has_head = rec.git_url[0] || (rec.promoted_from[0] && rec.git_commit[0]);
			int c = fd >= 0 && has_head ? vm_mgr_git_catch_up(m, fd, &rec, &e) : 0;
			if (c > 0)
				report_add(m, "cache %s: record caught up with its checkout (commit %s)",
					   name, rec.git_commit);
			else if (c < 0)
				report_add(m, "cache %s: cannot check the record against the checkout: %s",
					   name, e.msg);
		}
	}
	closedir(d);

	d = vm_opendir_at(vm_store_data_fd(&m->store, k));
	if (!d)
		return vm_error_errno(err, errno, "cannot read the %s directory", what);
	while ((de = readdir(d))) {
		if (!vm_is_plain_component(de->d_name) ||
		    json_object_get(known, de->d_name))
			continue;
		struct vm_error e = {0};
		if (vm_store_discard_data(&m->store, vm_store_data_fd(&m->store, k), de->d_name, &e) < 0)
			report_add(m, "%s %s: could not delete data without a record: %s",
				   what, de->d_name, e.msg);
		else
			report_add(m, "%s %s: deleted data without a record",
				   what, de->d_name);
	}
	closedir(d);
	return 0;
}

int vm_mgr_repair(struct vm_manager *m, struct vm_error *err)
{
	int r = repair_staging(m, err);
	if (r == 0)
		r = repair_kind(m, VM_KIND_VOLUME, err);
	if (r == 0)
		r = repair_kind(m, VM_KIND_CACHE, err);
	return r;
}
