/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "exitcode.h"

#include <errno.h>

enum vm_exit vm_exit_from_errno(int e)
{
	switch (e) {
	case 0:
		return VM_EXIT_OK;
	case ENOENT:
		return VM_EXIT_NOT_FOUND;
	case EEXIST:
		return VM_EXIT_EXISTS;
	case EBUSY:
		return VM_EXIT_IN_USE;
	case EINVAL:
	case ERANGE:
	case ENAMETOOLONG:
	case ENOTDIR:
		return VM_EXIT_INVALID;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return VM_EXIT_NO_SPACE;
	case EOPNOTSUPP:
		return VM_EXIT_UNSUPPORTED;
	case EPERM:
	case EACCES:
		return VM_EXIT_PERMISSION;
	default:
		return VM_EXIT_FAILURE;
	}
}

const char *vm_errno_name(int e)
{
	switch (e) {
	case ENOENT: return "ENOENT";
	case EEXIST: return "EEXIST";
	case EBUSY: return "EBUSY";
	case EINVAL: return "EINVAL";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case ENOTDIR: return "ENOTDIR";
	case ENOSPC: return "ENOSPC";
	case EDQUOT: return "EDQUOT";
	case EFBIG: return "EFBIG";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case ENOMEM: return "ENOMEM";
	default: return "EIO";
	}
}

