/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Replay a fuzz corpus through one harness without libFuzzer, so that the
 * committed corpora run as ordinary tests with any compiler (meson test
 * --suite fuzz).  Linked with one fuzz-*.c file.
 *
 *   replay-TARGET CORPUS-DIR|FILE...
 *
 * Runs LLVMFuzzerTestOneInput over every regular file of each directory
 * (sorted by name, not recursive) and each file given.  A harness that
 * finds a broken invariant aborts; the signal handler first says which
 * input it was.  Exits 0 after at least one input, 1 if there was none or
 * a file could not be read. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

/* The input being run, for the crash message. */
static const char *current;

static const int crash_signals[] = {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL};
static struct sigaction previous[sizeof(crash_signals) / sizeof(crash_signals[0])];

/* Say which input it was, then hand the signal to whoever had it before
 * (a sanitizer's report, or the default action). */
static void on_crash(int sig)
{
	static const char msg[] = "replay: crashed on input ";
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0 ||
	    (current && write(STDERR_FILENO, current, strlen(current)) < 0) ||
	    write(STDERR_FILENO, "\n", 1) < 0) {
		/* nothing more to do */
	}
	for (size_t i = 0; i < sizeof(crash_signals) / sizeof(crash_signals[0]); i++)
		sigaction(crash_signals[i], &previous[i], NULL);
	/* A fault happens again on return, raised signals are raised again. */
	if (sig == SIGABRT)
		raise(sig);
}

static void catch_crashes(void)
{
	/* On an alternate stack, so that a stack overflow is reported too
	 * (unless a sanitizer has given the thread one already). */
	static char altstack[64 * 1024];
	stack_t old, ss = {.ss_sp = altstack, .ss_size = sizeof(altstack)};
	if (sigaltstack(NULL, &old) == 0 && (old.ss_flags & SS_DISABLE))
		sigaltstack(&ss, NULL);
	struct sigaction sa = {.sa_handler = on_crash, .sa_flags = SA_ONSTACK};
	for (size_t i = 0; i < sizeof(crash_signals) / sizeof(crash_signals[0]); i++)
		sigaction(crash_signals[i], &sa, &previous[i]);
}

static int read_all(const char *path, uint8_t **ret, size_t *ret_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t cap = 4096, len = 0;
	uint8_t *buf = fuzz_xmalloc(cap);
	for (;;) {
		if (len == cap) {
			cap *= 2;
			uint8_t *n = realloc(buf, cap);
			if (!n)
				abort();
			buf = n;
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			free(buf);
			close(fd);
			return -e;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	/* a copy of exactly len bytes, so that ASan catches a read past it */
	uint8_t *exact = fuzz_xmalloc(len);
	if (len)
		memcpy(exact, buf, len);
	free(buf);
	*ret = exact;
	*ret_len = len;
	return 0;
}

static int run_file(const char *path)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int r = read_all(path, &data, &len);
	if (r < 0) {
		fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(-r));
		return r;
	}
	current = path;
	LLVMFuzzerTestOneInput(data, len);
	current = NULL;
	free(data);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Run every regular file in dir; the number run, or -errno. */
static long run_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 256;
			char **nn = realloc(names, cap * sizeof(*names));
			if (!nn)
				abort();
			names = nn;
		}
		size_t l = strlen(dir) + strlen(de->d_name) + 2;
		names[n] = fuzz_xmalloc(l);
		snprintf(names[n], l, "%s/%s", dir, de->d_name);
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_str);
	long ran = 0;
	int r = 0;
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (r == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
			r = run_file(names[i]);
			ran++;
		}
		free(names[i]);
	}
	free(names);
	return r < 0 ? r : ran;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS-DIR|FILE...\n", argv[0]);
		return 2;
	}
	catch_crashes();

	long total = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		long r;
		if (S_ISDIR(st.st_mode)) {
			r = run_dir(argv[i]);
		} else {
			r = run_file(argv[i]);
			if (r == 0)
				r = 1;
		}
		if (r < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror((int)-r));
			return 1;
		}
		total += r;
	}
	if (total == 0) {
		fprintf(stderr, "replay: no inputs\n");
		return 1;
	}
	printf("replayed %ld input(s)\n", total);
	return 0;
}
