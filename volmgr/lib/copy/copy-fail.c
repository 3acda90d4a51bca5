/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The bottom of the copy engine: how a copy fails.  The first error
 * wins (its errno and message go to the caller's vm_error), and every
 * thread stops at its next check of vm_copy_failed.  The walker, the
 * queue, the data paths, attrs and dirs all record their errors here;
 * nothing here calls anything else of the engine. */
#include "copy-private.h"

#include <stdarg.h>
#include <stdio.h>

void vm_copy_fail_init(struct vm_copy_ctx *c, struct vm_error *err)
{
	struct vm_copy_failure *f = &c->fail;
	atomic_init(&f->failed, false);
	pthread_mutex_init(&f->lock, NULL);
	f->code = 0;
	f->err = err;
}

void vm_copy_fail_fini(struct vm_copy_ctx *c)
{
	pthread_mutex_destroy(&c->fail.lock);
}

int vm_copy_fail(struct vm_copy_ctx *c, int code, bool with_errno, const char *fmt, ...)
{
	struct vm_copy_failure *f = &c->fail;
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&f->lock);
	int r = with_errno ? vm_error_errno(f->err, code, "%s", msg)
			   : vm_error_set(f->err, code, "%s", msg);
	if (!f->code)
		f->code = code < 0 ? -code : code;
	atomic_store(&f->failed, true);
	pthread_mutex_unlock(&f->lock);
	return r;
}

int vm_copy_fail_code(struct vm_copy_ctx *c)
{
	struct vm_copy_failure *f = &c->fail;
	if (!vm_copy_failed(c))
		return 0;
	pthread_mutex_lock(&f->lock);
	int code = f->code ? f->code : EIO;
	pthread_mutex_unlock(&f->lock);
	return -code;
}
