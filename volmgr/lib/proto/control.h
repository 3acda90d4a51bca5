/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The control protocol as a function: a request and the caller in, a
 * reply out (control-wire.h has the wire format). */
#pragma once

#include <jansson.h>

#include "control-wire.h"
#include "manager.h"

/* Where progress messages go: send must not block (drop instead), and
 * takes no reference to msg. */
struct vm_control_sink {
	void (*send)(void *userdata, json_t *msg);
	void *userdata;
};

/* Handle one request.  fd is a descriptor the caller passed along (or -1);
 * the handler never keeps it.  sink may be NULL (no progress messages).
 * Always returns a reply object. */
json_t *vm_control_handle(struct vm_manager *m, const struct vm_caller *caller,
			  const char *body, size_t len, int fd,
			  const struct vm_control_sink *sink);

#include "exitcode.h"
