/* Dialling with a deadline, and listening. */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

/* Set or clear O_NONBLOCK. */
int
fd_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl == -1)
		return -1;
	return fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

/* Set FD_CLOEXEC, so that programs we exec do not inherit fd. */
int
fd_cloexec(int fd)
{
	return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/*
 * Ask for TCP Fast Open before connect(2): with a cookie from an earlier
 * connection to the host, the first write rides in the SYN. Only for
 * sockets on which we speak first, for no SYN leaves before that write.
 */
int
fd_fastopen(int fd)
{
	return setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &(int){ 1 },
	    sizeof(int));
}

/* Connect to a and send the n bytes of buf (if any) within ms: a blocking socket. */
static int
dial_one(const struct addr *a, const char *buf, size_t n, int ms)
{
	struct pollfd p;
	long deadline = now_ms() + ms;
	int fd, e = 0, r;
	socklen_t el = sizeof(e);

	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (n > 0) {
		fd_fastopen(fd);
		/* A request and its answer: no waiting for ACKs to batch them. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	}
	if (connect(fd, (const struct sockaddr *)&a->ss, a->len) == -1 &&
	    errno != EINPROGRESS)
		goto fail;
	if (n > 0 && write_all(fd, buf, n, ms) == -1)
		goto fail;
	p.fd = fd;
	p.events = POLLOUT;
	while ((r = poll(&p, 1, (int)(deadline > now_ms() ? deadline - now_ms() :
	    0))) == -1 && errno == EINTR)
		;
	if (r == 0) {
		errno = ETIMEDOUT;
		goto fail;
	}
	if (r == -1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) == -1)
		goto fail;
	if (e != 0) {
		errno = e;
		goto fail;
	}
	fd_nonblock(fd, 0);
	return fd;
fail:
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

/* Connect to a, giving up after ms; returns a blocking socket or -1. */
int
dial_timeout(const struct addr *a, int ms)
{
	return dial_one(a, NULL, 0, ms);
}

/* The kernel's smoothed round trip on a TCP socket, in ms (at least 1), or 0. */
int
fd_rtt_ms(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == -1 ||
	    ti.tcpi_rtt == 0)
		return 0;
	return ti.tcpi_rtt < 1000 ? 1 : (int)(ti.tcpi_rtt / 1000);
}

/*
 * Turn on TCP keepalives that notice a dead path in about two minutes, and
 * keep NAT mappings fresh on a connection that is idle for long.
 */
void
fd_keepalive(int fd)
{
	int on = 1, idle = 60, intvl = 10, cnt = 6;

	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

/* Resolve hostport, dial its addresses in turn within ms in all, send buf. */
static int
dial_addrs(const char *hostport, const char *buf, size_t n, int ms)
{
	struct addr a[8];
	long deadline = now_ms() + ms, left;
	int k, i, fd;

	if ((k = addr_resolve(hostport, NULL, a, 8)) <= 0) {
		if (k == 0)
			errno = EHOSTUNREACH;
		return -1;
	}
	for (i = 0; i < k; i++) {
		if ((left = deadline - now_ms()) <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if ((fd = dial_one(&a[i], buf, n, (int)left)) != -1)
			return fd;
	}
	return -1;
}

/* Resolve hostport and dial its addresses in turn within ms in all. */
int
dial_host(const char *hostport, int ms)
{
	return dial_addrs(hostport, NULL, 0, ms);
}

/*
 * Dial hostport and send the n bytes of buf, in the SYN itself where TCP
 * Fast Open has a cookie for the host: one round trip saved on a repeat.
 */
int
dial_send(const char *hostport, const char *buf, size_t n, int ms)
{
	return dial_addrs(hostport, buf, n, ms);
}

/*
 * A listening TCP socket on "[addr:]port": a bare port means every
 * address, v4 and v6 on one socket (v4 alone where the host has no v6).
 */
int
listen_tcp(const char *addrport, int backlog)
{
	char any[32];
	struct addr a;
	int fd = -1, one = 1, zero = 0, e;

	if (*addrport != '\0' && strspn(addrport, "0123456789") ==
	    strlen(addrport) && strlen(addrport) < 8) {
		snprintf(any, sizeof(any), "[::]:%s", addrport);
		if (addr_resolve(any, NULL, &a, 1) == 1)
			fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	}
	if (fd == -1) {
		/* errno as the lookup left it: addr_strerror tells why. */
		if (addr_resolve(addrport, NULL, &a, 1) != 1)
			return -1;
		fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	}
	if (fd == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (a.ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	/* Dialers with a cookie may send their first line in the SYN. */
	setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &backlog, sizeof(backlog));
	if (bind(fd, (struct sockaddr *)&a.ss, a.len) == -1 ||
	    listen(fd, backlog) == -1) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}
