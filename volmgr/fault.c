/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fault.h"

#ifdef VM_FAULT_INJECTION
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

void vm_fault_pause(const char *name)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static bool done;
	const char *want = getenv("VOLMGR_FAULT_PAUSE");
	size_t n = strlen(name);
	if (!want || strncmp(want, name, n) != 0 || want[n] != ':')
		return;
	pthread_mutex_lock(&lock);
	bool first = !done;
	done = true;
	pthread_mutex_unlock(&lock);
	if (!first)
		return;
	char paused[4096], resume[4096];
	snprintf(paused, sizeof(paused), "%s/%s.paused", want + n + 1, name);
	snprintf(resume, sizeof(resume), "%s/%s.resume", want + n + 1, name);
	int fd = open(paused, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	fprintf(stderr, "volmgrd: fault pause at %s\n", name);
	for (int i = 0; i < 3000 && access(resume, F_OK) != 0; i++)
		nanosleep(&(struct timespec){0, 100000000L}, NULL);
}
#endif
