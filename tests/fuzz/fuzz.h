/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared by the fuzz harnesses (fuzz-*.c) and the corpus replay driver
 * (replay.c).  A harness is one LLVMFuzzerTestOneInput() that feeds its
 * input to a library entry point and checks what must hold whatever the
 * input: a failed check prints what went wrong and aborts, which libFuzzer
 * reports as a crash and the replay test as a failure. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Abort with a message when cond does not hold. */
#define FUZZ_CHECK(cond, ...)                                                  \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: invariant failed: %s: ",       \
				__FILE__, __LINE__, #cond);                    \
			fprintf(stderr, __VA_ARGS__);                          \
			fputc('\n', stderr);                                   \
			abort();                                               \
		}                                                              \
	} while (0)

/* Out of memory in the harness itself is not a finding. */
static inline void *fuzz_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		abort();
	return p;
}

/* A NUL-terminated copy of data[0..n) (a C string stops at the first NUL
 * the input may contain, as it would for a caller). */
static inline char *fuzz_strndup(const void *data, size_t n)
{
	char *s = fuzz_xmalloc(n + 1);
	if (n)
		memcpy(s, data, n);
	s[n] = '\0';
	return s;
}

/* Deterministic hashing in jansson, so that a run is reproducible. */
static inline void fuzz_init_once(void)
{
	static bool done;
	if (!done) {
		json_object_seed(0x766d6766);
		done = true;
	}
}

/* A printable rendering of a string for messages (static buffer). */
static inline const char *fuzz_show(const char *s)
{
	static char buf[256];
	size_t o = 0;
	if (!s)
		return "(null)";
	for (; *s && o + 8 < sizeof(buf); s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	if (*s && o + 4 < sizeof(buf))
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "...");
	buf[o] = '\0';
	return buf;
}

