/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The CLI's side of the control protocol (see control-wire.h). */
#pragma once

#include <jansson.h>

#include "util.h"

int vm_client_connect(const char *path, struct vm_error *err);
/* Send {"op": op, "args": args} (args may be NULL; its reference is
 * taken), passing fd along if >= 0, and wait for the reply object.  fd
 * is taken too: closed once sent (or on failure). */
int vm_client_call(int sock, const char *op, json_t *args, int fd,
		   json_t **ret_reply, struct vm_error *err);

/* One op on a connection of its own to the socket at socket_path: the
 * reply's result (a new reference), or an error carrying volmgrd's errno
 * and message.  args and fd are taken, as by vm_client_call. */
int vm_client_request(const char *socket_path, const char *op, json_t *args, int fd,
		      json_t **ret, struct vm_error *err);
/* The same, giving up (ETIMEDOUT) when volmgrd takes longer than
 * timeout_ms to take the request or to answer it (0: no bound). */
int vm_client_request_timeout(const char *socket_path, const char *op, json_t *args, int fd,
			      int timeout_ms, json_t **ret, struct vm_error *err);

/* The same, asking for progress messages: each one's "progress" object
 * goes to fn (from this thread) until the reply comes. */
typedef void (*vm_client_progress_fn)(json_t *progress, void *userdata);
int vm_client_call_progress(int sock, const char *op, json_t *args, int fd,
			    vm_client_progress_fn fn, void *userdata, json_t **ret_reply,
			    struct vm_error *err);
