/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fault.h"

#ifdef VM_FAULT_INJECTION
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void vm_fault_point(const char *name)
{
	const char *want = getenv("VOLMGR_FAULT");
	if (!want || strcmp(want, name) != 0)
		return;
	/* Say where, so the test knows the point was reached, then die the
	 * way a kill -9 would leave things. */
	fprintf(stderr, "volmgrd: fault injected at %s\n", name);
	fflush(stderr);
	_exit(99);
}
#endif
