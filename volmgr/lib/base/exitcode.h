/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The CLI's exit statuses and the errno names carried in control replies. */
#pragma once

/* Exit statuses of the CLI, one per kind of failure, documented in
 * volmgr(8).  The daemon's errno maps onto them. */
enum vm_exit {
	VM_EXIT_OK = 0,
	VM_EXIT_FAILURE = 1,
	VM_EXIT_USAGE = 2,
	VM_EXIT_UNREACHABLE = 3,
	VM_EXIT_NOT_FOUND = 4,
	VM_EXIT_EXISTS = 5,
	VM_EXIT_IN_USE = 6,
	VM_EXIT_INVALID = 7,
	VM_EXIT_NO_SPACE = 8,
	VM_EXIT_UNSUPPORTED = 9,
	VM_EXIT_PERMISSION = 10,
	/* volmgrd only: the pool cannot use the backend asked for
	 * (--backend, [pool] backend, [copy] io) or the configuration needs
	 * what the backend lacks ([quota] default off btrfs). */
	VM_EXIT_BACKEND = 11,
};

enum vm_exit vm_exit_from_errno(int e);
const char *vm_errno_name(int e);
