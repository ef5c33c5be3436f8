/*
 * echo: a minimal epoll line echo server, the floor bench/rvd measures rvd
 * against. Every byte read is written straight back, so each line is
 * answered with itself. An idle connection costs nothing in user space but
 * a pointer; output the socket cannot take at once waits in a buffer made
 * only then.
 *
 * usage: echo [-d FD] [ADDR:]PORT
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

#define PEND_MAX (1 << 20)	/* a client that lets more pile up is dropped */

struct pend {
	size_t len;
	char data[];
};

static struct pend **pend;	/* by fd; NULL when nothing waits */
static int maxfd, ep;

static void
drop(int fd)
{
	if (fd < maxfd) {
		free(pend[fd]);
		pend[fd] = NULL;
	}
	close(fd);
}

/* Keep what the socket did not take; watch for room. */
static void
stash(int fd, const char *buf, size_t n)
{
	struct pend *p = pend[fd];
	size_t old = p ? p->len : 0;

	if (old + n > PEND_MAX)
		return drop(fd);
	if ((p = realloc(p, sizeof(*p) + old + n)) == NULL)
		err(EX_SYSTEM, "realloc");
	memcpy(p->data + old, buf, n);
	p->len = old + n;
	if (old == 0)
		epoll_ctl(ep, EPOLL_CTL_MOD, fd, &(struct epoll_event){
		    .events = EPOLLIN | EPOLLOUT, .data.fd = fd });
	pend[fd] = p;
}

static void
flush(int fd)
{
	struct pend *p = pend[fd];
	ssize_t w;

	if (p == NULL)
		return;
	if ((w = send(fd, p->data, p->len, MSG_NOSIGNAL)) == -1) {
		if (errno != EAGAIN && errno != EINTR)
			drop(fd);
		return;
	}
	memmove(p->data, p->data + w, p->len - w);
	if ((p->len -= w) == 0) {
		free(p);
		pend[fd] = NULL;
		epoll_ctl(ep, EPOLL_CTL_MOD, fd, &(struct epoll_event){
		    .events = EPOLLIN, .data.fd = fd });
	}
}

static void
echo(int fd)
{
	static char buf[65536];
	ssize_t r, w;

	for (;;) {
		if ((r = read(fd, buf, sizeof(buf))) == 0)
			return drop(fd);
		if (r == -1) {
			if (errno != EAGAIN && errno != EINTR)
				drop(fd);
			return;
		}
		if (pend[fd] != NULL)
			w = 0;
		else if ((w = send(fd, buf, r, MSG_NOSIGNAL)) == -1) {
			if (errno != EAGAIN && errno != EINTR)
				return drop(fd);
			w = 0;
		}
		if (w < r)
			stash(fd, buf + w, r - w);
		if (r < (ssize_t)sizeof(buf))
			return;
	}
}

static void
take(int lfd)
{
	int fd, i;

	for (i = 0; i < 64; i++) {
		if ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK |
		    SOCK_CLOEXEC)) == -1)
			return;
		if (fd >= maxfd) {
			int m = fd * 2 + 64;

			if ((pend = reallocarray(pend, m, sizeof(*pend))) == NULL)
				err(EX_SYSTEM, "reallocarray");
			memset(pend + maxfd, 0, (m - maxfd) * sizeof(*pend));
			maxfd = m;
		}
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &(struct epoll_event){
		    .events = EPOLLIN, .data.fd = fd });
	}
}

int
main(int argc, char *argv[])
{
	struct epoll_event ev[256];
	int ch, i, n, lfd, notify = -1;
	const char *e;

	while ((ch = getopt(argc, argv, "d:")) != -1) {
		switch (ch) {
		case 'd':
			notify = strtonum(optarg, 0, 1 << 20, &e);
			if (e != NULL)
				errx(EX_USAGE_, "bad -d: %s", optarg);
			break;
		default:
			goto usage;
		}
	}
	if (argc - optind != 1) {
usage:
		fprintf(stderr, "usage: echo [-d FD] [ADDR:]PORT\n");
		return EX_USAGE_;
	}
	signal(SIGPIPE, SIG_IGN);
	if ((lfd = listen_tcp(argv[optind], 4096)) == -1)
		err(EX_SYSTEM, "unable to listen on %s", argv[optind]);
	fd_nonblock(lfd, 1);
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		err(EX_SYSTEM, "epoll_create1");
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &(struct epoll_event){
	    .events = EPOLLIN, .data.fd = lfd });
	if (notify >= 0) {
		if (write(notify, "\n", 1) != 1)
			warn("readiness fd %d", notify);
		close(notify);
	}
	for (;;) {
		if ((n = epoll_wait(ep, ev, 256, -1)) == -1 && errno != EINTR)
			err(EX_SYSTEM, "epoll_wait");
		for (i = 0; i < n; i++) {
			int fd = ev[i].data.fd;

			if (fd == lfd)
				take(lfd);
			else if (ev[i].events & EPOLLOUT)
				flush(fd);
			else
				echo(fd);
		}
	}
}
