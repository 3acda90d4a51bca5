/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "util.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void vm_log(const char *fmt, ...)
{
	char raw[2048], line[4 * sizeof(raw)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	/* Callers' strings end up in here, some before they are validated:
	 * every control character (C0, DEL, C1) and invalid byte escaped,
	 * so one request is one log line that shows what came. */
	vm_log_escape(raw, line, sizeof(line));
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "%02d:%02d:%02d.%03ld volmgrd: %s\n", tm.tm_hour, tm.tm_min,
		tm.tm_sec, ts.tv_nsec / 1000000, line);
	pthread_mutex_unlock(&log_lock);
}

void vm_log_line(void *userdata, const char *line)
{
	(void)userdata;
	vm_log("%s", line);
}
