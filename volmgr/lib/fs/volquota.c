/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "volquota.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "btrfs.h"
#include "quota.h"

#define FIRST_SUBVOL 256 /* BTRFS_FIRST_FREE_OBJECTID */
/* The memo grows up to this many entries, then starts over empty. */
#define MEMO_MAX (1u << 17)
/* A walk up from a subvolume to its volume is at most this deep: one
 * step per subvolume, and every one was made by someone. */
#define CHAIN_MAX (1u << 20)
/* Qgroup ids read per call. */
#define BATCH 256
/* The sweep lets go of vq->lock after this many qgroup operations, so
 * that volmgrd's other users of it (a new volume's apply, under the
 * store's lock) wait at most that long, whatever a job made: a job can
 * give each of a thousand subvolumes hundreds of memberships to drop. */
#define SWEEP_YIELD_OPS 64
#define SWEEP_PAUSE_NS (5 * 1000 * 1000)

const char *vm_quota_accounting_name(enum vm_quota_accounting a)
{
	switch (a) {
	case VM_QUOTA_ACCOUNTING_NO:
		return "no";
	case VM_QUOTA_ACCOUNTING_AUTO:
		return "auto";
	case VM_QUOTA_ACCOUNTING_SIMPLE:
		return "simple";
	case VM_QUOTA_ACCOUNTING_FULL:
		return "full";
	}
	return "?";
}

const char *vm_quota_mode_name(enum vm_quota_mode m)
{
	switch (m) {
	case VM_QUOTA_MODE_OFF:
		return "off";
	case VM_QUOTA_MODE_FULL:
		return "full";
	case VM_QUOTA_MODE_SIMPLE:
		return "simple";
	}
	return "?";
}

static uint64_t group_of(uint64_t subvol_id)
{
	return VM_QGROUP(1, subvol_id);
}

/* ------------------------------------------------------------------ memo */

/* Which volume a subvolume is in, for those found in one (a subvolume
 * in no volume is looked up again each time: a volume in staging/ has
 * no 1/ qgroup yet, and that answer must not stick). */

static size_t memo_hash(uint64_t id, size_t cap)
{
	return (size_t)((id * UINT64_C(0x9e3779b97f4a7c15)) >> 20) & (cap - 1);
}

static void memo_clear(struct vm_volquota *vq)
{
	if (vq->memo)
		memset(vq->memo, 0, vq->memo_cap * sizeof(*vq->memo));
	vq->memo_n = 0;
}

static bool memo_get(const struct vm_volquota *vq, uint64_t id, uint64_t *ret_owner)
{
	if (!vq->memo)
		return false;
	for (size_t i = memo_hash(id, vq->memo_cap);; i = (i + 1) & (vq->memo_cap - 1)) {
		if (vq->memo[i].id == 0)
			return false;
		if (vq->memo[i].id == id) {
			*ret_owner = vq->memo[i].owner;
			return true;
		}
	}
}

static void memo_insert(struct vm_volquota_memo *tab, size_t cap, uint64_t id, uint64_t owner,
			size_t *n)
{
	for (size_t i = memo_hash(id, cap);; i = (i + 1) & (cap - 1)) {
		if (tab[i].id == id) {
			tab[i].owner = owner;
			return;
		}
		if (tab[i].id == 0) {
			tab[i] = (struct vm_volquota_memo){ id, owner };
			(*n)++;
			return;
		}
	}
}

/* Forget the subvolumes found in volume owner (it is being removed):
 * the others stay (a table rebuilt without them, or cleared if there is
 * no memory for one). */
static void memo_forget_owner(struct vm_volquota *vq, uint64_t owner)
{
	if (!vq->memo || vq->memo_n == 0)
		return;
	struct vm_volquota_memo *tab = calloc(vq->memo_cap, sizeof(*tab));
	if (!tab) {
		memo_clear(vq);
		return;
	}
	size_t n = 0;
	for (size_t i = 0; i < vq->memo_cap; i++)
		if (vq->memo[i].id && vq->memo[i].owner != owner)
			memo_insert(tab, vq->memo_cap, vq->memo[i].id, vq->memo[i].owner, &n);
	free(vq->memo);
	vq->memo = tab;
	vq->memo_n = n;
}

/* Best effort: without memory the walks are only slower. */
static void memo_put(struct vm_volquota *vq, uint64_t id, uint64_t owner)
{
	if (vq->memo_n + 1 > vq->memo_cap / 4 * 3) {
		size_t cap = vq->memo_cap ? vq->memo_cap * 2 : 1024;
		if (cap > MEMO_MAX) {
			memo_clear(vq);
		} else {
			struct vm_volquota_memo *tab = calloc(cap, sizeof(*tab));
			if (!tab)
				return;
			size_t n = 0;
			for (size_t i = 0; i < vq->memo_cap; i++)
				if (vq->memo[i].id)
					memo_insert(tab, cap, vq->memo[i].id, vq->memo[i].owner, &n);
			free(vq->memo);
			vq->memo = tab;
			vq->memo_cap = cap;
			vq->memo_n = n;
		}
	}
	if (vq->memo)
		memo_insert(vq->memo, vq->memo_cap, id, owner, &vq->memo_n);
}

/* ----------------------------------------------------------------- setup */

int vm_volquota_init(struct vm_volquota *vq, int fs_fd, int volumes_fd,
		     enum vm_quota_accounting want, struct vm_error *why, char *note,
		     size_t notesz)
{
	*vq = (struct vm_volquota){ .fs_fd = fs_fd, .low = FIRST_SUBVOL };
	if (pthread_mutex_init(&vq->lock, NULL) != 0 || pthread_mutex_init(&vq->wlock, NULL) != 0 ||
	    pthread_cond_init(&vq->wcond, NULL) != 0)
		return -ENOMEM;
	if (note && notesz)
		note[0] = '\0';
	if (want == VM_QUOTA_ACCOUNTING_NO) {
		vm_error_set(why, EOPNOTSUPP, "quota accounting is off ([quota] accounting = no)");
		return 0;
	}
	uint64_t flags;
	struct vm_error e = {0};
	struct stat st;
	if (fstat(volumes_fd, &st) < 0 || vm_btrfs_subvolume_id(volumes_fd, &vq->volumes_subvol) < 0) {
		vm_error_errno(why, errno ? errno : EIO, "cannot tell where the volumes are");
		return 0;
	}
	vq->volumes_dirid = st.st_ino;
	if (vm_quota_status_flags(fs_fd, &flags, &e) < 0) {
		vm_error_copy(why, &e);
		return 0;
	}
	bool was_on = flags & VM_QUOTA_FLAG_ON;
	bool was_simple = flags & VM_QUOTA_FLAG_SIMPLE_MODE;
	if (was_on && !was_simple && want == VM_QUOTA_ACCOUNTING_SIMPLE) {
		vm_error_set(why, EOPNOTSUPP,
			     "[quota] accounting = simple, but the pool has full qgroup accounting (to convert: remove the volumes, stop volmgrd, btrfs quota disable, start volmgrd)");
		return 0;
	}
	if (was_on && was_simple && want == VM_QUOTA_ACCOUNTING_FULL) {
		vm_error_set(why, EOPNOTSUPP,
			     "[quota] accounting = full, but the pool has simple quotas");
		return 0;
	}
	bool simple = was_on ? was_simple : want != VM_QUOTA_ACCOUNTING_FULL;
	if (simple) {
		int r = vm_quota_enable_simple(fs_fd, &e);
		if (r == -EOPNOTSUPP && want == VM_QUOTA_ACCOUNTING_AUTO) {
			simple = false;
			if (note)
				snprintf(note, notesz,
					 "quota: full qgroup accounting (%s); subvolumes made inside a volume are not counted",
					 e.msg);
			e = (struct vm_error){0};
		} else if (r < 0) {
			vm_error_copy(why, &e);
			return 0;
		} else if (note) {
			snprintf(note, notesz,
				 "quota: simple quotas%s; a volume's limit covers the subvolumes made inside it",
				 was_on ? " (on already)" : "");
		}
	}
	if (!simple) {
		/* Also waits for a rescan that enabling started or that runs. */
		if (vm_quota_enable(fs_fd, &e) < 0) {
			vm_error_copy(why, &e);
			return 0;
		}
		if (note && (!note[0] || was_on))
			snprintf(note, notesz,
				 "quota: full qgroup accounting%s; subvolumes made inside a volume are not counted%s",
				 was_on ? " (on already: kept)" : "",
				 was_on && want == VM_QUOTA_ACCOUNTING_AUTO
					 ? " (simple quotas count them: remove the volumes, stop volmgrd, btrfs quota disable, start volmgrd)"
					 : "");
	}
	vq->mode = simple ? VM_QUOTA_MODE_SIMPLE : VM_QUOTA_MODE_FULL;
	return 0;
}

/* ------------------------------------------------------------ the sweep */

/* Linked in volumes/ and with its 1/ qgroup.  Nothing a job does makes
 * one: a job's subvolume is linked inside a volume, and only volmgrd
 * makes qgroups (CAP_SYS_ADMIN). */
static int is_volume(struct vm_volquota *vq, uint64_t id, uint64_t parent, uint64_t dirid,
		     bool *ret, struct vm_error *err)
{
	*ret = false;
	if (parent != vq->volumes_subvol || dirid != vq->volumes_dirid)
		return 0;
	int r = vm_quota_group_exists(vq->fs_fd, group_of(id), err);
	if (r < 0)
		return r;
	*ret = r > 0;
	return 0;
}

/* The volume subvolume id is in (itself if it is one), 0 if none.
 * parent, dirid: its link if known (parent 0: look it up). */
static int owner_of(struct vm_volquota *vq, uint64_t id, uint64_t parent, uint64_t dirid,
		    uint64_t *ret_owner, struct vm_error *err)
{
	uint64_t owner = 0, cur = id;
	_cleanup_free_ struct vm_subvol_link *chain = NULL;
	size_t n = 0, cap = 0;
	int r;
	for (;;) {
		if (memo_get(vq, cur, &owner))
			break;
		if (n == cap) {
			if (cap >= CHAIN_MAX)
				return vm_error_set(err, ELOOP,
						    "subvolume %llu: more than %u subvolumes deep",
						    (unsigned long long)id, CHAIN_MAX);
			size_t ncap = cap ? cap * 2 : 16;
			struct vm_subvol_link *nc = realloc(chain, ncap * sizeof(*chain));
			if (!nc)
				return vm_error_set(err, ENOMEM, "out of memory");
			chain = nc;
			cap = ncap;
		}
		struct vm_subvol_link l = { .id = cur };
		if (cur == id && parent) {
			l.parent = parent;
			l.dirid = dirid;
		} else {
			r = vm_quota_subvol_parent(vq->fs_fd, cur, &l.parent, &l.dirid, err);
			if (r < 0)
				return r;
		}
		chain[n++] = l;
		/* Not linked (deleted), or in the top level: no volume holds
		 * it. */
		if (l.parent < FIRST_SUBVOL) {
			owner = 0;
			break;
		}
		cur = l.parent;
	}
	/* From the outermost down: inside a volume, or one itself. */
	while (n > 0) {
		const struct vm_subvol_link *c = &chain[--n];
		if (owner == 0) {
			bool vol;
			if ((r = is_volume(vq, c->id, c->parent, c->dirid, &vol, err)) < 0)
				return r;
			owner = vol ? c->id : 0;
		}
		if (owner)
			memo_put(vq, c->id, owner);
	}
	*ret_owner = owner;
	return 0;
}

/* Subvolume id, inside the volume owner: a member of 1/owner and of no
 * other qgroup. */
static int fix_membership(struct vm_volquota *vq, uint64_t id, uint64_t owner,
			  unsigned *joined, unsigned *moved, struct vm_error *err)
{
	uint64_t member = VM_QGROUP(0, id), want = group_of(owner);
	uint64_t parents[BATCH];
	size_t n;
	bool has = false;
	uint64_t from = 0;
	int more;
	do {
		more = vm_quota_group_relations(vq->fs_fd, member, true, from, parents,
						ELEMENTSOF(parents), &n, err);
		if (more < 0)
			return more;
		for (size_t i = 0; i < n; i++) {
			if (parents[i] == want) {
				has = true;
				continue;
			}
			int r = vm_quota_group_assign(vq->fs_fd, member, parents[i], false, err);
			if (r < 0)
				return r;
			(*moved)++;
		}
		if (n > 0)
			from = parents[n - 1] + 1;
	} while (more > 0);
	if (!has) {
		int r = vm_quota_group_assign(vq->fs_fd, member, want, true, err);
		if (r == -EEXIST) {
			if (err)
				*err = (struct vm_error){0};
		} else if (r < 0) {
			return r;
		} else {
			(*joined)++;
		}
	}
	return 0;
}

static void settle(struct vm_volquota *vq, uint64_t next)
{
	int64_t now = vm_mono_ns();
	if (vq->hist_n == VM_VOLQUOTA_HISTORY) {
		/* Full: forget the oldest without settling it (low stays
		 * lower: more is swept again, nothing is missed). */
		vq->hist_first = (vq->hist_first + 1) % VM_VOLQUOTA_HISTORY;
		vq->hist_n--;
	}
	unsigned last = (vq->hist_first + vq->hist_n) % VM_VOLQUOTA_HISTORY;
	vq->hist[last].t = now;
	vq->hist[last].next = next;
	vq->hist_n++;
	while (vq->hist_n > 0 && vq->hist[vq->hist_first].t <= now - VM_VOLQUOTA_SETTLE_NS) {
		if (vq->hist[vq->hist_first].next > vq->low)
			vq->low = vq->hist[vq->hist_first].next;
		vq->hist_first = (vq->hist_first + 1) % VM_VOLQUOTA_HISTORY;
		vq->hist_n--;
	}
}

/* Called with vq->lock held; lets go of it now and then (above).  budget:
 * the most qgroup changes this call makes (0: no bound); past it the rest
 * waits for the next sweep. */
static int sweep_locked(struct vm_volquota *vq, bool full, unsigned budget, unsigned *joined,
			unsigned *moved, struct vm_error *err)
{
	struct vm_subvol_link links[BATCH];
	size_t n;
	uint64_t from = full ? FIRST_SUBVOL : vq->low, next = vq->low;
	int more, first_r = 0;
	unsigned ops_since_yield = 0;
	bool stopped = false;
	/* Every step's error is kept (the first one is returned) but does not
	 * stop the others from being put right. */
	struct vm_error e = {0};
	do {
		more = vm_quota_subvol_links(vq->fs_fd, from, links, ELEMENTSOF(links), &n, err);
		if (more < 0)
			return more;
		for (size_t i = 0; i < n; i++) {
			unsigned before = *joined + *moved;
			if (budget && before >= budget) {
				stopped = true; /* the rest from links[i] on: next time */
				break;
			}
			uint64_t owner = 0;
			int r = owner_of(vq, links[i].id, links[i].parent, links[i].dirid, &owner,
					 &e);
			if (r == 0 && owner != 0 && owner != links[i].id)
				r = fix_membership(vq, links[i].id, owner, joined, moved, &e);
			if (r < 0 && first_r == 0) {
				first_r = r;
				if (err)
					*err = e;
			}
			e = (struct vm_error){0};
			if (links[i].id + 1 > next)
				next = links[i].id + 1;
			ops_since_yield += 1 + (*joined + *moved - before);
			if (ops_since_yield >= SWEEP_YIELD_OPS) {
				/* A pause, not only a yield: each qgroup change is a
				 * transaction of the pool's, and a stream of them
				 * holds back the commits a new volume waits for. */
				pthread_mutex_unlock(&vq->lock);
				nanosleep(&(struct timespec){0, SWEEP_PAUSE_NS}, NULL);
				pthread_mutex_lock(&vq->lock);
				ops_since_yield = 0;
			}
		}
		if (n > 0 && !stopped)
			from = links[n - 1].id + 1;
	} while (more > 0 && !stopped);
	if (!stopped)
		settle(vq, next);
	vq->sweeps++;
	return first_r;
}

int vm_volquota_sweep(struct vm_volquota *vq, bool full, unsigned *ret_joined,
		      unsigned *ret_moved, struct vm_error *err)
{
	return vm_volquota_sweep_bounded(vq, full, 0, ret_joined, ret_moved, err);
}

int vm_volquota_sweep_bounded(struct vm_volquota *vq, bool full, unsigned budget,
			      unsigned *ret_joined, unsigned *ret_moved, struct vm_error *err)
{
	unsigned joined = 0, moved = 0;
	if (vq->mode != VM_QUOTA_MODE_SIMPLE)
		return 0;
	pthread_mutex_lock(&vq->lock);
	/* The first one goes over everything made while volmgrd was away. */
	int r = sweep_locked(vq, full || vq->sweeps == 0, budget, &joined, &moved, err);
	vq->joined += joined;
	vq->moved += moved;
	pthread_mutex_unlock(&vq->lock);
	if (ret_joined)
		*ret_joined = joined;
	if (ret_moved)
		*ret_moved = moved;
	return r;
}

/* --------------------------------------------------------------- volumes */

/* Every member of group leaves it. */
static int empty_group(struct vm_volquota *vq, uint64_t group, struct vm_error *err)
{
	uint64_t members[BATCH];
	size_t n;
	int more;
	do {
		/* Always from the start: the ones done are gone. */
		more = vm_quota_group_relations(vq->fs_fd, group, false, 0, members,
						ELEMENTSOF(members), &n, err);
		if (more < 0)
			return more;
		for (size_t i = 0; i < n; i++) {
			int r = vm_quota_group_assign(vq->fs_fd, members[i], group, false, err);
			if (r < 0)
				return r;
		}
	} while (more > 0);
	return 0;
}

int vm_volquota_apply(struct vm_volquota *vq, uint64_t subvol_id, uint64_t bytes,
		      struct vm_error *err)
{
	if (vq->mode == VM_QUOTA_MODE_FULL)
		return bytes ? vm_quota_limit_exclusive(vq->fs_fd, subvol_id, bytes, err) : 0;
	if (vq->mode != VM_QUOTA_MODE_SIMPLE)
		return bytes ? vm_error_set(err, EOPNOTSUPP, "quota accounting is off") : 0;
	if (subvol_id < FIRST_SUBVOL)
		return vm_error_set(err, EINVAL, "invalid subvolume id %llu",
				    (unsigned long long)subvol_id);
	uint64_t group = group_of(subvol_id);
	/* No vq->lock for the qgroups: this runs under the store's lock,
	 * and must not wait for a sweep.  A sweep meanwhile finds the new
	 * subvolume in staging/, in no volume, and leaves it alone. */
	bool reused = false;
	int r = vm_quota_group_create(vq->fs_fd, group, err);
	if (r == -EEXIST) {
		/* Left by a volume whose subvolume had this id (ids start
		 * over above the highest one left when the pool is mounted
		 * again): nothing of it is live, this id is ours now. */
		if (err)
			*err = (struct vm_error){0};
		reused = true;
		r = empty_group(vq, group, err);
	}
	if (r == 0) {
		r = vm_quota_group_assign(vq->fs_fd, VM_QGROUP(0, subvol_id), group, true, err);
		if (r > 0)
			r = 0;
	}
	if (r == 0 && (bytes || reused))
		r = vm_quota_group_limit(vq->fs_fd, group, bytes, err);
	if (r == 0) {
		/* The memo only saves the sweep a lookup: never wait for it
		 * here (the store's lock is held, and a sweep holds vq->lock
		 * in long runs, handing it back only to waiters that win). */
		if (pthread_mutex_trylock(&vq->lock) == 0) {
			memo_put(vq, subvol_id, subvol_id);
			pthread_mutex_unlock(&vq->lock);
		}
	} else {
		/* The caller deletes the subvolume: leave nothing behind. */
		empty_group(vq, group, NULL);
		vm_quota_group_remove(vq->fs_fd, group, NULL);
	}
	return r;
}

void vm_volquota_release_at(struct vm_volquota *vq, int dirfd, const char *name)
{
	if (vq->mode == VM_QUOTA_MODE_OFF)
		return;
	_cleanup_close_ int fd = vm_openat_beneath(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	uint64_t id;
	if (fd < 0 || vm_btrfs_is_subvolume(fd) != 1 || vm_btrfs_subvolume_id(fd, &id) < 0)
		return;
	/* Limits only: no memo, so no vq->lock (this may run under the
	 * store's lock, and a job decides how many subvolumes it holds). */
	if (vq->mode == VM_QUOTA_MODE_SIMPLE)
		vm_quota_group_unlimit(vq->fs_fd, group_of(id), NULL);
	/* Depth first over the subvolumes inside, with an explicit stack
	 * (as deep as the job made them). */
	_cleanup_free_ uint64_t *stack = NULL;
	size_t n = 0, cap = 0;
	uint64_t cur = id;
	for (;;) {
		vm_quota_group_unlimit(vq->fs_fd, VM_QGROUP(0, cur), NULL);
		uint64_t kids[BATCH], from = 0;
		size_t k;
		int more;
		do {
			more = vm_quota_subvol_children(vq->fs_fd, cur, from, kids, ELEMENTSOF(kids),
							&k, NULL);
			if (more < 0)
				break;
			for (size_t i = 0; i < k; i++) {
				if (n == cap) {
					size_t ncap = cap ? cap * 2 : 64;
					uint64_t *ns = ncap <= CHAIN_MAX ? realloc(stack, ncap * sizeof(*stack))
									  : NULL;
					if (!ns)
						goto out;
					stack = ns;
					cap = ncap;
				}
				stack[n++] = kids[i];
			}
			if (k > 0)
				from = kids[k - 1] + 1;
		} while (more > 0);
		if (n == 0)
			break;
		cur = stack[--n];
	}
out:;
}

int vm_volquota_usage(struct vm_volquota *vq, uint64_t subvol_id, uint64_t *ret_referenced,
		      uint64_t *ret_exclusive, uint64_t *ret_limit, struct vm_error *err)
{
	if (vq->mode == VM_QUOTA_MODE_OFF)
		return vm_error_set(err, ENOTCONN, "quota accounting is off");
	if (vq->mode == VM_QUOTA_MODE_SIMPLE) {
		struct vm_error e = {0};
		int r = vm_quota_group_usage(vq->fs_fd, group_of(subvol_id), ret_referenced,
					     ret_exclusive, ret_limit, &e);
		if (r != -ENOENT) {
			if (r < 0 && err)
				*err = e;
			return r;
		}
	}
	return vm_quota_usage(vq->fs_fd, subvol_id, ret_referenced, ret_exclusive, ret_limit,
			      err);
}

int vm_volquota_destroy(struct vm_volquota *vq, uint64_t subvol_id, struct vm_error *err)
{
	int r = 0;
	if (vq->mode == VM_QUOTA_MODE_OFF)
		return 0;
	if (vq->mode == VM_QUOTA_MODE_SIMPLE && subvol_id >= FIRST_SUBVOL) {
		uint64_t group = group_of(subvol_id);
		pthread_mutex_lock(&vq->lock);
		memo_forget_owner(vq, subvol_id);
		pthread_mutex_unlock(&vq->lock);
		/* Its subvolumes are deleted; a live member would be one made
		 * elsewhere that named this qgroup (the sweep moves those to
		 * their own volume's): it leaves this qgroup, nothing else. */
		r = empty_group(vq, group, err);
		if (r == -ENOTCONN)
			r = 0;
		if (r == 0) {
			r = vm_quota_group_remove(vq->fs_fd, group, err);
			if (r > 0)
				r = 0;
		}
	}
	/* 0/subvol_id goes once btrfs's cleaner has dropped the subvolume
	 * (the kernel removes it itself since 6.10; gc clears what is
	 * left). */
	vm_quota_destroy(vq->fs_fd, subvol_id, NULL);
	return r;
}

int vm_volquota_clear_stale(struct vm_volquota *vq, unsigned *ret_skipped,
			    struct vm_error *err)
{
	unsigned skipped = 0;
	if (vq->mode == VM_QUOTA_MODE_OFF)
		return vm_error_set(err, ENOTCONN, "quota accounting is off");
	int removed = vm_quota_clear_stale(vq->fs_fd, &skipped, err);
	if (removed < 0)
		return removed;
	/* Level-1 qgroups are volmgrd's only in simple mode. */
	if (vq->mode == VM_QUOTA_MODE_SIMPLE) {
		pthread_mutex_lock(&vq->lock);
		memo_clear(vq);
		pthread_mutex_unlock(&vq->lock);
		/* The rest without vq->lock: qgroup operations only. */
		uint64_t groups[BATCH], from = 0;
		size_t n;
		int more;
		do {
			more = vm_quota_groups(vq->fs_fd, 1, from, groups, ELEMENTSOF(groups), &n,
					       err);
			if (more < 0)
				return more;
			for (size_t i = 0; i < n; i++) {
				uint64_t x = VM_QGROUP_ID(groups[i]);
				bool live = false;
				if (x >= FIRST_SUBVOL &&
				    vm_quota_subvol_live(vq->fs_fd, x, &live, NULL) == 0 && live)
					continue; /* a volume, or being made */
				if (x < FIRST_SUBVOL)
					continue; /* not one of ours */
				/* Only if every member is gone too. */
				uint64_t members[BATCH];
				size_t m;
				bool any_live = false;
				int r = vm_quota_group_relations(vq->fs_fd, groups[i], false, 0,
								 members, ELEMENTSOF(members), &m,
								 NULL);
				for (size_t j = 0; r >= 0 && j < m && !any_live; j++) {
					bool l = false;
					if (VM_QGROUP_LEVEL(members[j]) != 0 ||
					    vm_quota_subvol_live(vq->fs_fd, VM_QGROUP_ID(members[j]),
								 &l, NULL) < 0 || l)
						any_live = true;
				}
				if (r < 0 || r > 0 || any_live) {
					skipped++;
					continue;
				}
				if (empty_group(vq, groups[i], NULL) < 0 ||
				    vm_quota_group_remove(vq->fs_fd, groups[i], NULL) != 1) {
					skipped++;
					continue;
				}
				removed++;
			}
			if (n > 0)
				from = groups[n - 1] + 1;
		} while (more > 0);
	}
	if (ret_skipped)
		*ret_skipped = skipped;
	return removed;
}

/* --------------------------------------------------------------- watcher */

static void *watch_main(void *arg)
{
	struct vm_volquota *vq = arg;
	char last_error[sizeof(((struct vm_error *)0)->msg)] = "";
	pthread_mutex_lock(&vq->wlock);
	while (!vq->stop) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += (long)(vq->interval_ms % 1000) * 1000000L;
		until.tv_sec += vq->interval_ms / 1000 + until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		while (!vq->stop && pthread_cond_timedwait(&vq->wcond, &vq->wlock, &until) == 0)
			;
		if (vq->stop)
			break;
		pthread_mutex_unlock(&vq->wlock);
		unsigned joined = 0, moved = 0;
		struct vm_error err = {0};
		bool full = vq->sweeps % VM_VOLQUOTA_FULL_EVERY == 0;
		int r = vm_volquota_sweep(vq, full, &joined, &moved, &err);
		if (joined || moved)
			vm_log_to(vq->log, vq->log_userdata,
			       "quota: %u subvolume(s) made inside volumes joined their volume's qgroup, %u membership(s) in other qgroups dropped",
			       joined, moved);
		if (r < 0 && strcmp(err.msg, last_error) != 0)
			vm_log_to(vq->log, vq->log_userdata, "quota: sweep: %s", err.msg);
		snprintf(last_error, sizeof(last_error), "%s", r < 0 ? err.msg : "");
		pthread_mutex_lock(&vq->wlock);
	}
	pthread_mutex_unlock(&vq->wlock);
	return NULL;
}

int vm_volquota_watch(struct vm_volquota *vq, unsigned interval_ms,
		      vm_log_fn log, void *userdata)
{
	if (vq->mode != VM_QUOTA_MODE_SIMPLE || vq->running)
		return 0;
	vq->interval_ms = interval_ms ? interval_ms : VM_VOLQUOTA_INTERVAL_MS;
	vq->log = log;
	vq->log_userdata = userdata;
	vq->stop = false;
	/* The watcher's clock is CLOCK_MONOTONIC. */
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_destroy(&vq->wcond);
	int r = pthread_cond_init(&vq->wcond, &ca);
	pthread_condattr_destroy(&ca);
	if (r != 0)
		return -r;
	r = pthread_create(&vq->thread, NULL, watch_main, vq);
	if (r != 0)
		return -r;
	vq->running = true;
	return 0;
}

void vm_volquota_done(struct vm_volquota *vq)
{
	if (vq->running) {
		pthread_mutex_lock(&vq->wlock);
		vq->stop = true;
		pthread_cond_signal(&vq->wcond);
		pthread_mutex_unlock(&vq->wlock);
		pthread_join(vq->thread, NULL);
		vq->running = false;
	}
	free(vq->memo);
	vq->memo = NULL;
	vq->memo_cap = vq->memo_n = 0;
}
