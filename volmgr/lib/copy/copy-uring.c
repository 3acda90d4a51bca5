/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The io_uring data path: one thread keeps up to VM_COPY_URING_SLOTS
 * files in flight, each slot with its own buffer, one read or write per
 * slot at a time (a read's length decides the write), and all of them
 * submitted together, so a tree of small files costs one io_uring_enter
 * per round instead of a read, a write and two closes per file. */
#include "copy-private.h"

#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <string.h>

enum slot_phase { SLOT_IDLE, SLOT_READ, SLOT_WRITE };

struct slot {
	struct vm_copy_job *job;
	char *buf;
	off_t off, ext_end; /* next byte to read; end of the current extent */
	size_t have, written; /* bytes in buf; of those, written so far */
	enum slot_phase phase;
};

struct uring_copy {
	struct vm_copy_ctx *c;
	struct io_uring ring;
	struct slot slots[VM_COPY_URING_SLOTS];
	unsigned idle[VM_COPY_URING_SLOTS], n_idle;
	unsigned inflight; /* requests prepared and not yet reaped */
	struct vm_copy_scratch *scratch;
	unsigned id; /* the consumer's, for vm_copy_queue_pop */
};

#define CLOSE_TAG 0 /* user_data of closes; slots are index + 1 */
#define CANCEL_TAG UINT64_MAX
#define SUBMIT_TRIES 1000

/* A free submission entry; when the ring is full, hand the batch over
 * first.  NULL, with the copy failed, if the kernel will not take it:
 * retrying without end would spin this thread forever. */
static struct io_uring_sqe *get_sqe(struct uring_copy *u)
{
	for (int i = 0; i < SUBMIT_TRIES; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
		if (sqe) {
			u->inflight++;
			return sqe;
		}
		int r = io_uring_submit(&u->ring);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
			vm_copy_fail(u->c, -r, true, "io_uring_submit");
			return NULL;
		}
	}
	vm_copy_fail(u->c, EBUSY, false, "io_uring takes no more requests");
	return NULL;
}

static void slot_release(struct uring_copy *u, unsigned i, bool ok)
{
	struct slot *s = &u->slots[i];
	struct vm_copy_job *j = s->job;
	if (ok && !vm_copy_failed(u->c))
		vm_copy_job_finish(u->c, j, u->scratch); /* a failure is in c */
	/* Closing costs a system call each: queue them with the next batch. */
	int fds[2] = {j->src, j->dst};
	for (int k = 0; k < 2; k++) {
		if (fds[k] < 0)
			continue;
		struct io_uring_sqe *sqe = get_sqe(u);
		if (!sqe) {
			close(fds[k]);
			continue;
		}
		io_uring_prep_close(sqe, fds[k]);
		io_uring_sqe_set_data64(sqe, CLOSE_TAG);
	}
	j->src = j->dst = -1;
	vm_copy_job_free(u->c, j, u->scratch);
	s->job = NULL;
	s->phase = SLOT_IDLE;
	u->idle[u->n_idle++] = i;
}

static void submit_read(struct uring_copy *u, unsigned i)
{
	struct slot *s = &u->slots[i];
	size_t want = (size_t)(s->ext_end - s->off);
	if (want > VM_COPY_CHUNK)
		want = VM_COPY_CHUNK;
	struct io_uring_sqe *sqe = get_sqe(u);
	if (!sqe)
		return slot_release(u, i, false);
	io_uring_prep_read(sqe, s->job->src, s->buf, (unsigned)want, (uint64_t)s->off);
	io_uring_sqe_set_data64(sqe, i + 1);
	s->phase = SLOT_READ;
}

static void submit_write(struct uring_copy *u, unsigned i)
{
	struct slot *s = &u->slots[i];
	struct io_uring_sqe *sqe = get_sqe(u);
	if (!sqe)
		return slot_release(u, i, false);
	io_uring_prep_write(sqe, s->job->dst, s->buf + s->written,
			    (unsigned)(s->have - s->written),
			    (uint64_t)(s->off + (off_t)s->written));
	io_uring_sqe_set_data64(sqe, i + 1);
	s->phase = SLOT_WRITE;
}

/* Read the next chunk of the file, moving to its next data extent when
 * the current one is done; the file is finished at its end. */
static void slot_advance(struct uring_copy *u, unsigned i)
{
	struct slot *s = &u->slots[i];
	struct vm_copy_job *j = s->job;
	off_t size = j->st.st_size;
	if (vm_copy_failed(u->c))
		return slot_release(u, i, false);
	if (s->off >= s->ext_end) {
		if (!j->sparse || s->off >= size)
			return slot_release(u, i, true);
		off_t start, end;
		int r = vm_copy_next_extent(j->src, s->off, size, &start, &end);
		if (r < 0) {
			vm_copy_fail(u->c, -r, true, "cannot map the data of %s", j->name);
			return slot_release(u, i, false);
		}
		if (r == 0)
			return slot_release(u, i, true);
		s->off = start;
		s->ext_end = end;
	}
	submit_read(u, i);
}

static void slot_start(struct uring_copy *u, struct vm_copy_job *j)
{
	unsigned i = u->idle[--u->n_idle];
	struct slot *s = &u->slots[i];
	s->job = j;
	s->off = 0;
	s->ext_end = j->sparse ? 0 : j->st.st_size;
	if (vm_copy_job_open(u->c, j) < 0)
		return slot_release(u, i, false);
	if (j->sparse && ftruncate(j->dst, j->st.st_size) < 0) {
		vm_copy_fail(u->c, errno, true, "cannot size %s", j->name);
		return slot_release(u, i, false);
	}
	slot_advance(u, i);
}

static void on_cqe(struct uring_copy *u, uint64_t tag, int res)
{
	if (tag == CLOSE_TAG)
		return;
	unsigned i = (unsigned)(tag - 1);
	struct slot *s = &u->slots[i];
	if (res == -EINTR || res == -EAGAIN) {
		/* Try the same operation again. */
		return s->phase == SLOT_READ ? submit_read(u, i) : submit_write(u, i);
	}
	if (res < 0) {
		vm_copy_fail(u->c, -res, true, "cannot %s %s",
			     s->phase == SLOT_READ ? "read" : "write", s->job->name);
		return slot_release(u, i, false);
	}
	if (s->phase == SLOT_READ) {
		if (res == 0)
			/* The file shrank while we copied: keep what we read. */
			return slot_release(u, i, true);
		s->have = (size_t)res;
		s->written = 0;
		return submit_write(u, i);
	}
	s->written += (size_t)res;
	if (res == 0) {
		vm_copy_fail(u->c, EIO, false, "cannot write %s: no progress", s->job->name);
		return slot_release(u, i, false);
	}
	if (s->written < s->have)
		return submit_write(u, i);
	s->off += (off_t)s->have;
	atomic_fetch_add_explicit(&u->c->bytes_done, s->have, memory_order_relaxed);
	slot_advance(u, i);
}

static int ring_init(struct io_uring *ring)
{
	/* One thread submits and reaps: say so, the kernel then does less
	 * locking and defers task work to our next io_uring_enter.  Older
	 * kernels refuse the flags with EINVAL. */
	struct io_uring_params p = {
		.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
	};
	unsigned entries = 2 * VM_COPY_URING_SLOTS + 8;
	int r = io_uring_queue_init_params(entries, ring, &p);
	if (r == -EINVAL) {
		memset(&p, 0, sizeof(p));
		r = io_uring_queue_init_params(entries, ring, &p);
	}
	return r;
}

static void run(struct uring_copy *u)
{
	struct vm_copy_ctx *c = u->c;
	bool ended = false;
	for (;;) {
		/* Fill the idle slots; block for a job only when nothing is
		 * in flight. */
		while (!ended && u->n_idle > 0) {
			bool busy = u->n_idle < VM_COPY_URING_SLOTS;
			struct vm_copy_job *j = vm_copy_queue_pop(c, u->id, !busy, &ended);
			if (!j)
				break;
			if (vm_copy_failed(c) || !u->scratch) {
				vm_copy_job_free(c, j, u->scratch);
				continue;
			}
			slot_start(u, j);
		}
		bool busy = u->n_idle < VM_COPY_URING_SLOTS;
		if (!busy && ended)
			break;
		if (!busy) {
			io_uring_submit(&u->ring); /* closes of finished files */
			continue;
		}
		int r = io_uring_submit_and_wait(&u->ring, 1);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
			vm_copy_fail(c, -r, true, "io_uring_enter");
			break; /* nothing else can finish: leave the rest to cleanup */
		}
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		/* Collect first: handling a completion may queue new requests. */
		struct { uint64_t tag; int res; } done[4 * VM_COPY_URING_SLOTS];
		io_uring_for_each_cqe(&u->ring, head, cqe) {
			if (n == ELEMENTSOF(done))
				break;
			done[n].tag = io_uring_cqe_get_data64(cqe);
			done[n].res = cqe->res;
			n++;
		}
		io_uring_cq_advance(&u->ring, n);
		u->inflight -= n;
		for (unsigned k = 0; k < n; k++)
			on_cqe(u, done[k].tag, done[k].res);
	}
}

/* Before the slots' buffers may be freed the kernel must hold no request
 * of ours: after a failure with reads or writes still in flight, cancel
 * them all, then reap until nothing is left (the queued closes too).
 * false if that cannot be done. */
static bool drain(struct uring_copy *u)
{
	if (u->n_idle < VM_COPY_URING_SLOTS) {
		struct io_uring_sqe *sqe = get_sqe(u);
		if (!sqe)
			return false;
		io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
		io_uring_sqe_set_data64(sqe, CANCEL_TAG);
	}
	for (int errors = 0; u->inflight > 0;) {
		int r = io_uring_submit_and_wait(&u->ring, 1);
		if (r < 0 && ++errors > SUBMIT_TRIES)
			return false;
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		io_uring_for_each_cqe(&u->ring, head, cqe)
			n++;
		io_uring_cq_advance(&u->ring, n);
		u->inflight -= n;
	}
	return true;
}

void *vm_copy_uring_thread(void *ctx)
{
	struct vm_copy_ctx *c = ctx;
	unsigned id = vm_copy_consumer_id(c);
	struct uring_copy *u = calloc(1, sizeof(*u));
	int r = u ? ring_init(&u->ring) : -ENOMEM;
	if (r < 0) {
		vm_copy_fail(c, -r, true, "cannot set up io_uring");
	} else {
		u->c = c;
		u->id = id;
		u->scratch = malloc(sizeof(*u->scratch));
		for (unsigned i = 0; i < VM_COPY_URING_SLOTS; i++) {
			u->slots[i].buf = malloc(VM_COPY_CHUNK);
			if (!u->slots[i].buf)
				u->scratch = (free(u->scratch), NULL);
			u->idle[u->n_idle++] = VM_COPY_URING_SLOTS - 1 - i;
		}
		if (!u->scratch)
			vm_copy_fail(c, ENOMEM, false, "out of memory");
		run(u);
		bool drained = drain(u);
		io_uring_queue_exit(&u->ring);
		for (unsigned i = 0; i < VM_COPY_URING_SLOTS; i++) {
			if (u->slots[i].job)
				vm_copy_job_free(c, u->slots[i].job, NULL);
			/* Not drained: the kernel cancels what is left in the
			 * background after the ring goes and may still write
			 * into a buffer.  Leaking 4 MiB once beats a heap
			 * overwritten in the root daemon. */
			if (drained)
				free(u->slots[i].buf);
		}
		free(u->scratch);
	}
	/* After a failure the walker stops; whatever it still queued is
	 * dropped here. */
	struct vm_copy_job *j;
	bool ended = false;
	while ((j = vm_copy_queue_pop(c, id, true, &ended)))
		vm_copy_job_free(c, j, NULL);
	free(u);
	vm_copy_consumer_exit(c);
	return NULL;
}

bool vm_copy_probe_uring(char *why, size_t why_len)
{
	struct io_uring ring;
	int r = io_uring_queue_init(4, &ring, 0);
	if (r < 0) {
		if (why && why_len)
			snprintf(why, why_len, "io_uring_setup fails: %s%s", strerror(-r),
				 r == -ENOSYS || r == -EPERM
					 ? " (a seccomp filter or kernel.io_uring_disabled)"
					 : "");
		return false;
	}
	struct io_uring_probe *p = io_uring_get_probe_ring(&ring);
	io_uring_queue_exit(&ring);
	if (!p) {
		if (why && why_len)
			snprintf(why, why_len, "io_uring cannot list its operations (kernel before 5.6)");
		return false;
	}
	static const struct { int op; const char *name; } need[] = {
		{IORING_OP_READ, "read"},
		{IORING_OP_WRITE, "write"},
		{IORING_OP_CLOSE, "close"},
	};
	bool ok = true;
	for (size_t i = 0; i < ELEMENTSOF(need) && ok; i++) {
		if (!io_uring_opcode_supported(p, need[i].op)) {
			if (why && why_len)
				snprintf(why, why_len, "io_uring lacks the %s operation",
					 need[i].name);
			ok = false;
		}
	}
	io_uring_free_probe(p);
	if (ok && why && why_len)
		snprintf(why, why_len, "io_uring probe passed (read, write, close)");
	return ok;
}
