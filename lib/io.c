/*
 * Timed I/O: wait, read exactly, write all, each by a deadline (a time
 * of now_ms()), so that the protocols above it (line.c, handshake.c,
 * proxy.c) never block past theirs and a signal never cuts a wait short.
 */
#include <sys/socket.h>
#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include "p2p.h"

/*
 * Wait until fd is ready for ev or the deadline passes: 1, or 0 with
 * errno (ETIMEDOUT). A deadline already past still looks once, so that a
 * ready fd is never timed out: race.c writes to a fresh socket so.
 */
int
io_wait(int fd, short ev, long deadline)
{
	struct pollfd p = { .fd = fd, .events = ev };
	long left;
	int r;

	do {
		left = deadline - now_ms();
		r = poll(&p, 1, left > 0 ? (int)left : 0);
	} while (r == -1 && errno == EINTR);
	if (r == 0)
		errno = ETIMEDOUT;
	return r > 0;
}

/* Write all n bytes of buf by the deadline: 0, or -1 with errno. */
int
io_write(int fd, const void *buf, size_t n, long deadline)
{
	const char *p = buf;
	ssize_t w;

	while (n > 0) {
		if (!io_wait(fd, POLLOUT, deadline))
			return -1;
		/* A peer that is gone is an error here, not a SIGPIPE. */
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w == -1 && errno == ENOTSOCK)
			w = write(fd, p, n);
		if (w == -1) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		p += w;
		n -= w;
	}
	return 0;
}

/*
 * Read exactly n bytes by the deadline (0: none, blocking as long as it
 * takes), and never more: n, fewer at end of file, or -1 with errno.
 */
ssize_t
io_read(int fd, void *buf, size_t n, long deadline)
{
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		if (deadline != 0 && !io_wait(fd, POLLIN, deadline))
			return -1;
		if ((r = read(fd, (char *)buf + got, n - got)) == -1) {
			/* Without a deadline there is no wait to go back to. */
			if (errno == EINTR || (errno == EAGAIN && deadline != 0))
				continue;
			return -1;
		}
		if (r == 0)
			break;
		got += r;
	}
	return (ssize_t)got;
}
