/*
 * relaybench: the client ends of bench/relay. One byte stream, timed from
 * its first byte to the receiver's end-of-file, with a sending thread and a
 * receiving thread, the same for every path, so that only the middle differs.
 *
 *   relaybench port                       a free loopback port (for configs)
 *   relaybench pipes N                    hold N empty pipes    } until stdin ends,
 *   relaybench conns N                    hold N idle loopback  } for the kernel's
 *                                         connections            } memory per object
 *   relaybench direct BYTES               a plain loopback connection: the ceiling
 *   relaybench relay BYTES HOST:PORT      through relayd: NEW, JOIN, OK, then the stream
 *   relaybench sink BYTES SINKPORT HOST:PORT
 *                                         through a forwarder at HOST:PORT that
 *                                         connects on to 127.0.0.1:SINKPORT
 *
 * Prints one line, "bytes=N secs=S mbps=M" (MB = 10^6 bytes); exits 0 when
 * the receiver got exactly BYTES, 1 when not, 100 on usage, 111 on a system
 * error. Every blocking call gives up after 60 s.
 *
 * cc -O2 -std=c17 -D_GNU_SOURCE -pthread -Ilib bench/relaybench.c \
 *     lib/libp2p.a -lbsd
 */
#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "p2p.h"

#define BUF	(1 << 20)
#define IO_MS	60000

static uint64_t nbytes;
static int sendfd = -1;
static int send_err;

static void
usage(void)
{
	fprintf(stderr, "usage: relaybench port | pipes N | conns N | "
	    "direct BYTES | "
	    "relay BYTES HOST:PORT | sink BYTES SINKPORT HOST:PORT\n");
	exit(EX_USAGE_);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Blocking, with a timeout on both directions. */
static void
sock_prep(int fd)
{
	struct timeval tv = { IO_MS / 1000, 0 };

	if (fd_nonblock(fd, 0) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1)
		err(EX_SYSTEM, "socket options");
}

static int
dial(const char *hostport)
{
	int fd = dial_host(hostport, 5000);

	if (fd == -1)
		err(EX_SYSTEM, "unable to connect to %s", hostport);
	sock_prep(fd);
	return fd;
}

static int
accept_one(int lfd)
{
	struct timeval tv = { IO_MS / 1000, 0 };
	int fd;

	setsockopt(lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) == -1)
		err(EX_SYSTEM, "accept");
	sock_prep(fd);
	return fd;
}

/* The sending thread: BYTES from one buffer, then a half-close. */
static void *
sender(void *arg)
{
	unsigned char *buf = arg;
	uint64_t left = nbytes;
	ssize_t n;

	while (left > 0) {
		n = send(sendfd, buf, left < BUF ? left : BUF, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			send_err = errno;
			return NULL;
		}
		left -= n;
	}
	if (shutdown(sendfd, SHUT_WR) == -1)
		send_err = errno;
	return NULL;
}

/* Time the stream from sfd (sending, already connected) to the receiver:
 * rfd, or the one connection accepted on lfd. */
static int
stream(int sfd, int rfd, int lfd)
{
	unsigned char *sbuf, *rbuf;
	pthread_t t;
	uint64_t got = 0;
	double t0, secs;
	ssize_t n;
	size_t i;
	int e;

	if ((sbuf = malloc(BUF)) == NULL || (rbuf = malloc(BUF)) == NULL)
		err(EX_SYSTEM, "malloc");
	for (i = 0; i < BUF; i++)	/* not all zeros, not compressible */
		sbuf[i] = (unsigned char)(i * 2654435761u >> 13);
	memset(rbuf, 0, BUF);
	sendfd = sfd;
	t0 = now_s();
	if ((e = pthread_create(&t, NULL, sender, sbuf)) != 0)
		errno = e, err(EX_SYSTEM, "pthread_create");
	if (rfd == -1)
		rfd = accept_one(lfd);
	for (;;) {
		n = recv(rfd, rbuf, BUF, 0);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			err(EX_SYSTEM, "recv after %llu bytes",
			    (unsigned long long)got);
		}
		if (n == 0)
			break;
		got += n;
	}
	secs = now_s() - t0;
	pthread_join(t, NULL);
	if (send_err != 0)
		errno = send_err, err(EX_SYSTEM, "send");
	printf("bytes=%llu secs=%.4f mbps=%.1f\n", (unsigned long long)got,
	    secs, got / 1e6 / secs);
	if (got != nbytes) {
		warnx("got %llu bytes, not %llu", (unsigned long long)got,
		    (unsigned long long)nbytes);
		return 1;
	}
	return 0;
}

static uint64_t
size_arg(const char *s)
{
	char *e;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &e, 10);
	if (errno != 0 || e == s)
		usage();
	switch (*e) {
	case 'K': case 'k': v <<= 10; e++; break;
	case 'M': case 'm': v <<= 20; e++; break;
	case 'G': case 'g': v <<= 30; e++; break;
	}
	if (*e != '\0')
		usage();
	return v;
}

/* A listener on 127.0.0.1:port (0: any free one); its port in *got. */
static int
listen_on(int port, int *got)
{
	char a[ADDR_STR];
	int fd;

	snprintf(a, sizeof(a), "127.0.0.1:%d", port);
	if ((fd = listen_tcp(a, 16)) == -1)
		err(EX_SYSTEM, "unable to listen on %s", a);
	if (fd_nonblock(fd, 0) == -1)
		err(EX_SYSTEM, "fcntl");
	if (got != NULL) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		if (getsockname(fd, (struct sockaddr *)&ss, &sl) == -1)
			err(EX_SYSTEM, "getsockname");
		*got = addr_port((struct sockaddr *)&ss);
	}
	return fd;
}

/* Read one of relayd's reply lines; anything but want ends the bench. */
static void
expect(int fd, const char *want, char *line, size_t n)
{
	int r;

	line[0] = '\0';
	if ((r = line_read(fd, line, n, 5000)) == -1)
		err(EX_SYSTEM, "relayd");
	if (strncmp(line, want, strlen(want)) != 0)
		errx(EX_SYSTEM, "relayd said: %s", r == 0 ? "(end of file)" : line);
}

/* Say "ready" and wait until stdin ends. */
static int
hold(int n)
{
	char c;

	printf("ready %d\n", n);
	fflush(stdout);
	while (read(0, &c, 1) > 0)
		;
	return 0;
}

static int
hold_pipes(int n)
{
	int i, p[2];

	for (i = 0; i < n; i++)
		if (pipe2(p, O_CLOEXEC) == -1)
			err(EX_SYSTEM, "pipe");
	return hold(n);
}

static int
hold_conns(int n)
{
	char a[ADDR_STR];
	int i, lfd, port;

	lfd = listen_on(0, &port);
	snprintf(a, sizeof(a), "127.0.0.1:%d", port);
	for (i = 0; i < n; i++) {
		if (dial_host(a, 5000) == -1)
			err(EX_SYSTEM, "connect");
		if (accept4(lfd, NULL, NULL, SOCK_CLOEXEC) == -1)
			err(EX_SYSTEM, "accept");
	}
	return hold(n);
}

int
main(int argc, char *argv[])
{
	char line[LINE_MAX_ + 1];
	int a, b, lfd, port;

	if (argc < 2)
		usage();
	if (strcmp(argv[1], "port") == 0 && argc == 2) {
		lfd = listen_on(0, &port);
		printf("%d\n", port);
		return 0;
	}
	if (argc < 3)
		usage();
	if (strcmp(argv[1], "pipes") == 0 && argc == 3)
		return hold_pipes(atoi(argv[2]));
	if (strcmp(argv[1], "conns") == 0 && argc == 3)
		return hold_conns(atoi(argv[2]));
	nbytes = size_arg(argv[2]);
	if (strcmp(argv[1], "direct") == 0 && argc == 3) {
		lfd = listen_on(0, &port);
		snprintf(line, sizeof(line), "127.0.0.1:%d", port);
		a = dial(line);
		return stream(a, -1, lfd);
	}
	if (strcmp(argv[1], "relay") == 0 && argc == 4) {
		a = dial(argv[3]);
		if (write(a, "NEW\n", 4) != 4)
			err(EX_SYSTEM, "send");
		expect(a, "SESSION ", line, sizeof(line));
		b = dial(argv[3]);
		if (line_write(b, 5000, "JOIN %s", line + 8) == -1)
			err(EX_SYSTEM, "send");
		expect(a, "OK", line, sizeof(line));
		expect(b, "OK", line, sizeof(line));
		return stream(a, b, -1);
	}
	if (strcmp(argv[1], "sink") == 0 && argc == 5) {
		lfd = listen_on(atoi(argv[3]), NULL);
		a = dial(argv[4]);
		return stream(a, -1, lfd);
	}
	usage();
}
