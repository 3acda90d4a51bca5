/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An upgraded stream (attach, exec start) relayed byte for byte.  Each
 * direction ends on its own: the end of the client's stdin becomes a
 * shutdown(SHUT_WR) towards the engine, which then still sends the
 * output that follows (docker's hijack.go and Podman do the same); the
 * relay is over when both directions are. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engined.h"
#include "http.h"

#define RELAY_BUF (64 * 1024)

struct dir {
	int from, to;
	bool open;
	char *buf;
};

/* One read and its write: 0 to go on, 1 at the end of this direction,
 * <0 on errors. */
static int step(struct dir *d)
{
	ssize_t n;
	do
		n = read(d->from, d->buf, RELAY_BUF);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == ECONNRESET ? 1 : -errno;
	if (n == 0)
		return 1;
	return http_write_all(d->to, d->buf, (size_t)n);
}

int relay_raw(int a, int b)
{
	char *bufs = malloc(2 * RELAY_BUF);
	if (!bufs)
		return -ENOMEM;
	struct dir d[2] = {{a, b, true, bufs}, {b, a, true, bufs + RELAY_BUF}};
	int r = 0;
	while (d[0].open || d[1].open) {
		struct pollfd p[2];
		int np = 0, idx[2];
		for (int i = 0; i < 2; i++)
			if (d[i].open) {
				p[np] = (struct pollfd){.fd = d[i].from, .events = POLLIN};
				idx[np++] = i;
			}
		if (poll(p, np, -1) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		for (int k = 0; k < np; k++) {
			if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			struct dir *x = &d[idx[k]];
			int s = step(x);
			if (s == 1) {
				x->open = false;
				shutdown(x->to, SHUT_WR);
			} else if (s < 0) {
				/* EPIPE: the other end is gone altogether. */
				r = s == -EPIPE ? 0 : s;
				d[0].open = d[1].open = false;
			}
		}
	}
	free(bufs);
	return r;
}
