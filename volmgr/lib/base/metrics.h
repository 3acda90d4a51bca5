/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Counters and latency histograms, kept in memory (reset at restart, as
 * Prometheus counters may be), rendered as Prometheus text. */
#pragma once

#include <stdint.h>

#include "util.h"

enum vm_histogram { VM_HIST_SNAPSHOT, VM_HIST_COPY, VM_HIST_MAX };

/* Count one request: where ("plugin" or "control"), what (endpoint or
 * operation; bounded to a known set by the callers), and how it ended
 * (errno, 0 for success). */
void vm_metrics_request(const char *where, const char *what, int err);
void vm_metrics_observe(enum vm_histogram h, int64_t ns);

/* Prometheus text exposition (version 0.0.4), plus the gauges given. */
char *vm_metrics_render(uint64_t volumes, uint64_t caches, uint64_t in_use,
			uint64_t bytes_exclusive, uint64_t bytes_referenced);
