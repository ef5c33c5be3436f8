/* Copying a connection to and from stdio, both ways, with half-close. */
#include <sys/socket.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include "p2p.h"

#define CHUNK 65536

/* One direction of the copy: from -> pipe (or buffer) -> to. */
struct dir {
	int from, to;
	int p[2];		/* the splice pipe, or -1 for read/write */
	char *buf;
	size_t held, off;	/* bytes in the pipe or buffer */
	int eof, done;
	int rerr, werr;		/* errno of a failed read or write, else 0 */
};

/* Fill d from its source: spliced into the pipe when the kernel allows. */
static void
dir_fill(struct dir *d)
{
	ssize_t r = -1;

	if (d->p[0] != -1) {
		r = splice(d->from, NULL, d->p[1], NULL, CHUNK,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (r == -1 && errno == EINVAL) {
			/* A tty or such: fall back to read and write. */
			close(d->p[0]);
			close(d->p[1]);
			d->p[0] = d->p[1] = -1;
		}
	}
	if (d->p[0] == -1) {
		if (d->buf == NULL && (d->buf = malloc(CHUNK)) == NULL)
			err(EX_SYSTEM, "malloc");
		r = read(d->from, d->buf, CHUNK);
		d->off = 0;
	}
	if (r > 0)
		d->held = r;
	else if (r == 0)
		d->eof = 1;
	else if (errno != EAGAIN && errno != EINTR)
		d->eof = 1, d->rerr = errno;
}

/* Drain d into its sink. */
static void
dir_drain(struct dir *d)
{
	ssize_t w;

	if (d->p[0] != -1) {
		w = splice(d->p[0], NULL, d->to, NULL, d->held,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (w == -1 && errno == EINVAL) {
			/* A sink splice cannot write (a file in append mode):
			 * move what the pipe holds into a buffer, then write. */
			if ((d->buf = malloc(CHUNK)) == NULL)
				err(EX_SYSTEM, "malloc");
			w = read(d->p[0], d->buf, d->held);
			close(d->p[0]);
			close(d->p[1]);
			d->p[0] = d->p[1] = -1;
			d->off = 0;
			d->held = w > 0 ? (size_t)w : 0;
			return;
		}
	} else {
		w = send(d->to, d->buf + d->off, d->held, MSG_NOSIGNAL);
		if (w == -1 && errno == ENOTSOCK)
			w = write(d->to, d->buf + d->off, d->held);
		if (w > 0)
			d->off += w;
	}
	if (w > 0)
		d->held -= w;
	else if (w == -1 && errno != EAGAIN && errno != EINTR)
		d->eof = 1, d->held = 0, d->werr = errno;
}

/* Pass on the end of one direction: shut the socket's write side, or close. */
static void
dir_finish(struct dir *d, int net)
{
	d->done = 1;
	if (d->to == net)
		shutdown(net, SHUT_WR);
	else
		close(d->to);
	if (d->p[0] != -1) {
		close(d->p[0]);
		close(d->p[1]);
	}
	free(d->buf);
}

/*
 * Copy net <-> (in, out) until both directions end: 0, or -1 with errno
 * when the connection failed (a reset rather than a close).
 */
int
copy_loop(int net, int in, int out)
{
	struct dir d[2] = {
		{ .from = in, .to = net, .p = { -1, -1 } },
		{ .from = net, .to = out, .p = { -1, -1 } },
	};
	struct pollfd pf[2];
	int i;

	fd_nonblock(net, 1);
	for (i = 0; i < 2; i++)
		if (pipe2(d[i].p, O_CLOEXEC | O_NONBLOCK) == -1)
			d[i].p[0] = d[i].p[1] = -1;
	while (!d[0].done || !d[1].done) {
		for (i = 0; i < 2; i++) {
			pf[i].fd = -1;
			pf[i].events = 0;
			if (d[i].done)
				continue;
			if (d[i].held > 0) {
				pf[i].fd = d[i].to;
				pf[i].events = POLLOUT;
			} else if (!d[i].eof) {
				pf[i].fd = d[i].from;
				pf[i].events = POLLIN;
			}
		}
		for (i = 0; i < 2; i++)
			if (!d[i].done && d[i].held == 0 && d[i].eof)
				dir_finish(&d[i], net);
		if (d[0].done && d[1].done)
			break;
		if (poll(pf, 2, -1) == -1 && errno != EINTR)
			err(EX_SYSTEM, "poll");
		for (i = 0; i < 2; i++) {
			if (pf[i].fd == -1 || pf[i].revents == 0)
				continue;
			if (d[i].held > 0)
				dir_drain(&d[i]);
			else
				dir_fill(&d[i]);
		}
	}
	/* Only the network's failures count: sending to it, receiving from it. */
	errno = d[0].werr ? d[0].werr : d[1].rerr;
	return errno != 0 ? -1 : 0;
}
