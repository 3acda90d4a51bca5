/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The control protocol's wire format, shared by volmgrd and the CLI (the
 * only header of the library's protocol side the CLI includes).
 *
 * Between `volmgr` and volmgrd: one JSON object per SOCK_SEQPACKET
 * message each way (the kernel keeps message boundaries,
 * so there is no framing to parse), an optional file descriptor passed
 * with SCM_RIGHTS, and the caller identified by SO_PEERCRED.
 *
 *   request: {"op": "volume.create", "args": {...}, "progress": true}
 *   progress (only if asked, before the reply; dropped when the client
 *   does not keep up):
 *            {"progress": {"files", "bytes", "total_files", "total_bytes",
 *                          "elapsed_ns", "done"}}
 *   reply:   {"ok": true, "result": ...}
 *          | {"ok": false, "error": {"errno": 2, "name": "ENOENT",
 *                                    "message": "no such volume: x"}}
 *
 * A reply longer than VM_CONTROL_INLINE_MAX travels in a sealed memfd
 * (write, grow and shrink sealed) passed with the message
 * {"reply_fd": LENGTH}: a socket's send buffer is capped by
 * net.core.wmem_max unless the daemon holds CAP_NET_ADMIN, which it
 * does not need for anything else.
 */
#pragma once

#define VM_CONTROL_REQUEST_MAX (64 * 1024)
#define VM_CONTROL_REPLY_MAX (16 * 1024 * 1024)
#define VM_CONTROL_INLINE_MAX (32 * 1024)
