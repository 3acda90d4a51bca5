/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* volmgrd's two listeners: the Docker plugin socket (HTTP, served by
 * libmicrohttpd) and the control socket (SOCK_SEQPACKET, see control-wire.h). */
#pragma once

#include "control.h"
#include "manager.h"

/* Create a listening unix socket at path (mode, SOCK_STREAM or
 * SOCK_SEQPACKET).  A stale socket file is replaced; a live one (another
 * daemon answering) is an error. */
int vm_listen_unix(const char *path, int type, mode_t mode, struct vm_error *err);

struct vm_httpd;
int vm_httpd_start(struct vm_manager *m, int listen_fd, struct vm_httpd **ret,
		   struct vm_error *err);
void vm_httpd_stop(struct vm_httpd *h);

struct vm_ctlserver;
/* Serve the control protocol on listen_fd: the control socket, or the
 * job socket (where: what it offers, control.h). */
int vm_ctlserver_start(struct vm_manager *m, int listen_fd, enum vm_control_socket where,
		       struct vm_ctlserver **ret, struct vm_error *err);
/* Stop accepting, wake the clients and wait (bounded) for their requests
 * to end, then free s.  -EBUSY if a request still runs: the manager must
 * then stay allocated (the process is about to exit anyway). */
int vm_ctlserver_stop(struct vm_ctlserver *s);
