/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The bounded queue from the walker to the data path, and the life of
 * a job on it.  The walker makes a job for every regular file (both
 * ends open, or the destination left for the data path to make) and
 * pushes it, waiting while the queue is full; the consumer threads the
 * walker started pop jobs, create the destination, map a sparse file's
 * data extents, copy the bytes (copy-syscalls.c, copy-uring.c), finish
 * the file and free the job.  Once the walk is over the walker ends the
 * queue and waits for the consumers to drain it. */
#include "copy-private.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>

/* ------------------------------------------------------------ the queue */

int vm_copy_queue_init(struct vm_copy_ctx *c)
{
	/* The queue holds two fds a job: a quarter of the fd limit for it,
	 * the rest for the walk, the files in flight and the process. */
	struct rlimit nofile;
	rlim_t q = getrlimit(RLIMIT_NOFILE, &nofile) == 0 ? nofile.rlim_cur / 8 : 0;
	size_t cap = q < VM_COPY_QUEUE_MIN ? VM_COPY_QUEUE_MIN
		   : q > VM_COPY_QUEUE_MAX ? VM_COPY_QUEUE_MAX : (size_t)q;
	c->queue = calloc(cap, sizeof(*c->queue));
	if (!c->queue)
		return -ENOMEM;
	c->q_cap = cap;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->not_empty, NULL);
	pthread_cond_init(&c->not_full, NULL);
	pthread_cond_init(&c->drained, NULL);
	return 0;
}

void vm_copy_queue_free(struct vm_copy_ctx *c)
{
	if (!c->queue)
		return;
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->not_empty);
	pthread_cond_destroy(&c->not_full);
	pthread_cond_destroy(&c->drained);
	free(c->queue);
	c->queue = NULL;
}

void vm_copy_queue_push(struct vm_copy_ctx *c, struct vm_copy_job *j)
{
	pthread_mutex_lock(&c->lock);
	while (c->q_len == c->q_cap) {
		c->producer_waiting = true;
		pthread_cond_wait(&c->not_full, &c->lock);
	}
	c->queue[(c->q_head + c->q_len) % c->q_cap] = j;
	c->q_len++;
	if (c->consumers_waiting > 0)
		pthread_cond_signal(&c->not_empty);
	pthread_mutex_unlock(&c->lock);
}

int vm_copy_queue_start_consumers(struct vm_copy_ctx *c, void *(*fn)(void *), int want,
				  pthread_t *threads)
{
	int n = 0;
	for (; n < want; n++) {
		pthread_mutex_lock(&c->lock);
		c->live_consumers++;
		pthread_mutex_unlock(&c->lock);
		if (pthread_create(&threads[n], NULL, fn, c) != 0) {
			pthread_mutex_lock(&c->lock);
			c->live_consumers--;
			pthread_mutex_unlock(&c->lock);
			break;
		}
	}
	return n;
}

unsigned vm_copy_consumer_id(struct vm_copy_ctx *c)
{
	pthread_mutex_lock(&c->lock);
	unsigned id = c->n_consumer_ids++;
	pthread_mutex_unlock(&c->lock);
	return id;
}

/* The queue slot to take: the first file of the group this consumer
 * fills or of one nobody fills, within VM_COPY_PICK_SCAN of the head;
 * else the head. */
static size_t pick_job(const struct vm_copy_ctx *c, unsigned id)
{
	size_t scan = c->q_len < VM_COPY_PICK_SCAN ? c->q_len : VM_COPY_PICK_SCAN;
	for (size_t i = 0; i < scan; i++) {
		size_t at = (c->q_head + i) % c->q_cap;
		const struct vm_copy_dir *d = c->queue[at]->dir;
		if (!d || c->filling[id] == d->group || !vm_copy_groups_taken(c, id, d))
			return at;
	}
	return c->q_head;
}

struct vm_copy_job *vm_copy_queue_pop(struct vm_copy_ctx *c, unsigned id, bool wait,
				      bool *ret_ended)
{
	struct vm_copy_job *j = NULL;
	pthread_mutex_lock(&c->lock);
	while (wait && c->q_len == 0 && !c->producing_done) {
		c->consumers_waiting++;
		pthread_cond_wait(&c->not_empty, &c->lock);
		c->consumers_waiting--;
	}
	if (c->q_len > 0) {
		size_t pick = pick_job(c, id);
		j = c->queue[pick];
		c->queue[pick] = c->queue[c->q_head];
		c->q_head = (c->q_head + 1) % c->q_cap;
		vm_copy_groups_take(c, id, j->dir);
		c->q_len--;
		/* The walker refills from half empty: it and the data path
		 * then run side by side instead of taking turns per job. */
		if (c->producer_waiting && c->q_len <= c->q_cap / 2) {
			c->producer_waiting = false;
			pthread_cond_signal(&c->not_full);
		}
	} else if (c->producing_done) {
		*ret_ended = true;
	}
	pthread_mutex_unlock(&c->lock);
	return j;
}

void vm_copy_consumer_exit(struct vm_copy_ctx *c)
{
	pthread_mutex_lock(&c->lock);
	c->live_consumers--;
	c->producer_waiting = false;
	pthread_cond_broadcast(&c->drained);
	/* A walker blocked on a full queue must see the end too. */
	pthread_cond_broadcast(&c->not_full);
	pthread_mutex_unlock(&c->lock);
}

void vm_copy_queue_end(struct vm_copy_ctx *c)
{
	pthread_mutex_lock(&c->lock);
	c->producing_done = true;
	pthread_cond_broadcast(&c->not_empty);
	pthread_mutex_unlock(&c->lock);
}

bool vm_copy_queue_wait(struct vm_copy_ctx *c, uint64_t timeout_ns)
{
	pthread_mutex_lock(&c->lock);
	bool live = c->live_consumers > 0;
	if (live && timeout_ns) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t ns = (uint64_t)ts.tv_nsec + timeout_ns;
		ts.tv_sec += (time_t)(ns / 1000000000u);
		ts.tv_nsec = (long)(ns % 1000000000u);
		pthread_cond_timedwait(&c->drained, &c->lock, &ts);
	} else if (live) {
		pthread_cond_wait(&c->drained, &c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return live;
}

/* ------------------------------------------------------------- the jobs */

static struct vm_copy_dir *dir_ref(struct vm_copy_dir *d)
{
	atomic_fetch_add(&d->refs, 1);
	return d;
}

int vm_copy_job_new(struct vm_copy_ctx *c, int src, int dst, struct vm_copy_dir *dir,
		    const struct stat *st, const char *name, bool owned,
		    struct vm_copy_job **ret_job)
{
	struct vm_copy_job *j = malloc(sizeof(*j));
	if (!j) {
		close(src);
		if (dst >= 0)
			close(dst);
		return vm_copy_fail(c, ENOMEM, false, "out of memory");
	}
	j->src = src;
	j->dst = dst;
	j->dir = dst < 0 ? dir_ref(dir) : NULL;
	j->st = *st;
	j->sparse = st->st_size > 0 && (off_t)st->st_blocks * 512 < st->st_size;
	j->owned = owned;
	snprintf(j->name, sizeof(j->name), "%s", name);
	*ret_job = j;
	return 0;
}

int vm_copy_job_open(struct vm_copy_ctx *c, struct vm_copy_job *j)
{
	if (j->dst >= 0)
		return 0;
	/* O_EXCL|O_NOFOLLOW: never through anything already there. */
	j->dst = openat(j->dir->dst, j->name,
			O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			j->st.st_mode & 0777);
	if (j->dst < 0)
		return vm_copy_fail(c, errno, true, "cannot create %s", j->name);
	return 0;
}

int vm_copy_next_extent(int fd, off_t off, off_t size, off_t *ret_start, off_t *ret_end)
{
	off_t start = lseek(fd, off, SEEK_DATA);
	if (start < 0)
		return errno == ENXIO ? 0 : -errno; /* ENXIO: only a hole is left */
	if (start >= size)
		return 0;
	off_t end = lseek(fd, start, SEEK_HOLE);
	if (end < 0)
		return -errno;
	*ret_start = start;
	*ret_end = end > size ? size : end;
	return 1;
}

int vm_copy_job_finish(struct vm_copy_ctx *c, struct vm_copy_job *j,
		       struct vm_copy_scratch *s)
{
	int r = vm_copy_attrs(c, j->src, j->dst, &j->st, j->name, s, j->st.st_mode & 0777,
			      j->owned);
	if (r == 0)
		atomic_fetch_add_explicit(&c->files_done, 1, memory_order_relaxed);
	return r;
}

void vm_copy_job_free(struct vm_copy_ctx *c, struct vm_copy_job *j,
		      struct vm_copy_scratch *s)
{
	if (!j)
		return;
	/* Opened one after the other, the two fds are usually neighbours:
	 * one system call closes both. */
	if (j->src >= 0 && j->dst == j->src + 1 && close_range((unsigned)j->src, (unsigned)j->dst, 0) == 0)
		j->src = j->dst = -1;
	if (j->src >= 0)
		close(j->src);
	if (j->dst >= 0)
		close(j->dst);
	if (j->dir)
		vm_copy_dir_unref(c, j->dir, s);
	free(j);
}
