/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gc's question to the engines: has the engine that created a volume
 * forgotten it?  A volume an engine made for a job must not outlive the
 * job because the engine lost track of it:
 *
 *   - Podman keeps its own database; a volume volmgrd made but Podman
 *     never recorded (Podman killed, or its 5 s plugin timeout, between
 *     our Create and its record) is one Podman's `exists` denies.
 *   - Docker cannot be asked: its volume inspect calls our Get and adopts
 *     whatever we answer.  What it forgets is a volume whose forced Remove
 *     we refused (in use): it drops its record anyway (PurgeOnError).  So
 *     for Docker the question is asked only of volumes with such a
 *     refused Remove, and no Mount since (volumes.c).
 *
 * Either way the engine must also list no container, of any state, that
 * names the volume; it must answer (an engine that does not is never
 * taken as forgetting anything); the state must have lasted [gc]
 * engine_grace; and two collections in a row must find it so.  Only
 * volumes whose creator vm_caller_engine named are asked about, and only
 * the engines of that kind listed in [engines].  Never called from a
 * plugin handler (the engine may be waiting on that handler). */
#include <stdio.h>
#include <string.h>

#include "gc.h"
#include "manager-private.h"

/* Two collections must be at least this far apart (or engine_grace, if
 * shorter) to count as two. */
#define PASSES_APART_NS (60LL * 1000000000LL)

/* An engine that let a question time out is not asked again for this
 * long: a hung engine costs a collection one timeout, not one per
 * volume. */
#define QUIET_NS (60LL * 1000000000LL)

/* Ask engine i whether it knows (knows) or uses the volume, unless it
 * timed out lately. */
static int ask(struct vm_manager *m, size_t i, bool knows, const char *name, struct vm_error *err)
{
	const struct vm_engine *e = &m->config.engines[i];
	int64_t now = vm_mono_ns();
	{
		VM_STORE_LOCK(&m->store);
		if (m->engine_quiet_until[i] > now)
			return vm_error_set(err, ETIMEDOUT,
					    "%s at %s let a question time out in the last minute: not asked again yet",
					    vm_engine_kind_name(e->kind), e->socket);
	}
	int r = knows ? vm_engine_knows_volume(e, name, m->config.engine_timeout_ms, err)
		      : vm_engine_uses_volume(e, name, m->config.engine_timeout_ms, err);
	if (r == -ETIMEDOUT) {
		VM_STORE_LOCK(&m->store);
		m->engine_quiet_until[i] = vm_mono_ns() + QUIET_NS;
	}
	return r;
}

/* 1: every engine of the creator's kind forgot the volume and names it
 * in no container; 0: it did not, or is not to be asked; negative errno
 * (err set) when an engine cannot tell. */
static int engine_forgot(struct vm_manager *m, const struct vm_record *rec, int64_t now,
			 struct vm_error *err)
{
	if (!rec->creator_engine[0])
		return 0;
	bool podman = strcmp(rec->creator_engine, "podman") == 0;
	if (!podman && !rec->remove_refused_ns)
		return 0;
	int64_t since = rec->remove_refused_ns > rec->created_ns ? rec->remove_refused_ns
								 : rec->created_ns;
	if (now - since < m->config.engine_grace_ns)
		return 0;
	size_t asked = 0;
	for (size_t i = 0; i < m->config.n_engines; i++) {
		const struct vm_engine *e = &m->config.engines[i];
		if (strcmp(vm_engine_kind_name(e->kind), rec->creator_engine) != 0)
			continue;
		asked++;
		int r = podman ? ask(m, i, true, rec->name, err) : 0;
		if (r == 0)
			r = ask(m, i, false, rec->name, err);
		if (r != 0)
			return r < 0 ? r : 0;
	}
	return asked > 0;
}

unsigned vm_mgr_engine_forgot(struct vm_manager *m, const struct vm_record *rec, bool dry_run,
			      int64_t now, char *note, size_t note_size)
{
	struct vm_error e = {0};
	int r = engine_forgot(m, rec, now, &e);
	VM_STORE_LOCK(&m->store);
	json_t *first = json_object_get(m->store.engine_forgot, rec->name);
	if (r != 1) {
		if (!dry_run)
			json_object_del(m->store.engine_forgot, rec->name);
		if (r < 0)
			snprintf(note, note_size, "cannot tell whether %s forgot it: %s",
				 rec->creator_engine, e.msg);
		return r < 0 ? VM_GC_ENGINE_FORGOT : 0;
	}
	int64_t apart = m->config.engine_grace_ns < PASSES_APART_NS ? m->config.engine_grace_ns
								  : PASSES_APART_NS;
	if (first && now - json_integer_value(first) >= apart)
		return VM_GC_ENGINE_FORGOT;
	if (!first && !dry_run)
		json_object_set_new(m->store.engine_forgot, rec->name, json_integer(now));
	snprintf(note, note_size,
		 "%s has forgotten it and no container names it: removed by a later collection if still so",
		 rec->creator_engine);
	return VM_GC_ENGINE_FORGOT;
}

bool vm_mgr_engine_keeps(struct vm_manager *m, const struct vm_record *rec, char *note,
			 size_t note_size)
{
	if (!rec->creator_engine[0])
		return false;
	for (size_t i = 0; i < m->config.n_engines; i++) {
		const struct vm_engine *e = &m->config.engines[i];
		if (strcmp(vm_engine_kind_name(e->kind), rec->creator_engine) != 0)
			continue;
		struct vm_error err = {0};
		int r = ask(m, i, false, rec->name, &err);
		if (r > 0)
			snprintf(note, note_size,
				 "a container of %s names it (a job between two stages): kept",
				 rec->creator_engine);
		else if (r < 0)
			snprintf(note, note_size, "cannot ask %s whether a container names it: %s",
				 rec->creator_engine, err.msg);
		if (r != 0)
			return true;
	}
	return false;
}

void vm_mgr_engine_forget(struct vm_manager *m, const char *name)
{
	VM_STORE_LOCK(&m->store);
	json_object_del(m->store.engine_forgot, name);
}

void vm_mgr_engine_forget_missing(struct vm_manager *m, const struct vm_volume_info_list *all)
{
	VM_STORE_LOCK(&m->store);
	const char *name;
	json_t *v;
	void *tmp;
	json_object_foreach_safe(m->store.engine_forgot, tmp, name, v) {
		bool listed = false;
		for (size_t i = 0; i < all->n && !listed; i++)
			listed = strcmp(all->items[i].name, name) == 0;
		if (!listed)
			json_object_del(m->store.engine_forgot, name);
	}
}
