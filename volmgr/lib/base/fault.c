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

/* $VOLMGR_FAULT_PAUSE is "name:DIR", "+name:DIR" or "*name:DIR" (fault.h). */
void vm_fault_pause(const char *name)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static bool done;
	const char *want = getenv("VOLMGR_FAULT_PAUSE");
	if (!want)
		return;
	char mode = want[0] == '+' || want[0] == '*' ? want[0] : '\0';
	want += mode != '\0';
	size_t n = strlen(name);
	if (strncmp(want, name, n) != 0 || want[n] != ':')
		return;
	const char *dir = want + n + 1;
	char paused[4096], resume[4096], flag[4096];
	snprintf(paused, sizeof(paused), "%s/%s.paused", dir, name);
	snprintf(resume, sizeof(resume), "%s/%s.resume", dir, name);
	snprintf(flag, sizeof(flag), "%s/%s.%s", dir, name, mode == '*' ? "hold" : "arm");
	if (mode == '*') {
		/* Every pass waits while the hold file is there. */
		if (access(flag, F_OK) != 0)
			return;
		fprintf(stderr, "volmgrd: fault hold at %s\n", name);
		for (int i = 0; i < 6000 && access(flag, F_OK) == 0; i++)
			nanosleep(&(struct timespec){0, 50000000L}, NULL);
		return;
	}
	if (mode == '+' && access(flag, F_OK) != 0)
		return; /* not armed yet */
	pthread_mutex_lock(&lock);
	bool first = !done;
	done = true;
	pthread_mutex_unlock(&lock);
	if (!first)
		return;
	int fd = open(paused, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	fprintf(stderr, "volmgrd: fault pause at %s\n", name);
	for (int i = 0; i < 3000 && access(resume, F_OK) != 0; i++)
		nanosleep(&(struct timespec){0, 100000000L}, NULL);
}
#endif
