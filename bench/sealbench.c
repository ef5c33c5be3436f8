/*
 * sealbench: the ends of bench/seal, the same for every path (raw TCP,
 * p2pseal, ssh), so that only the middle differs. Needs libc alone.
 *
 *   sealbench src BYTES FD     write BYTES (1 MiB writes, not all zeros) to FD,
 *                              then end it (shutdown, or close for a pipe)
 *   sealbench sink FILE        read stdin to its end (1 MiB reads); append
 *                              "bytes=N secs=S" to FILE, timed from the
 *                              first byte, so that no handshake counts
 *   sealbench serve            write one byte, then echo stdin to stdout
 *   sealbench ttfb IP:PORT [FILTER...]
 *                              connect (TCP_NODELAY, as lib/dial.c does),
 *                              run FILTER on the socket UCSPI style (fds
 *                              6/7; ours on its 0/1), send one byte, and
 *                              print "connect=US greet=US echo=US": when the
 *                              connect returned, when the listener's first
 *                              byte came and when our byte's echo came,
 *                              microseconds from before the connect
 *
 * Exits 0, 1 when a stream came out short or a peer hung up early, 100 on
 * usage, 111 on a system error. ttfb gives up after 10 s.
 */
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <err.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BUF	(1 << 20)

static void
usage(void)
{
	fprintf(stderr, "usage: sealbench src BYTES FD | sink FILE | serve | "
	    "ttfb IP:PORT [FILTER...]\n");
	exit(100);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Write all n bytes; 0, or -1 with errno. */
static int
writen(int fd, const unsigned char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, p, n)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= w;
	}
	return 0;
}

static int
src(uint64_t left, int fd)
{
	unsigned char *buf;
	size_t i, n;

	if ((buf = malloc(BUF)) == NULL)
		err(111, "malloc");
	for (i = 0; i < BUF; i++)	/* not all zeros, not compressible */
		buf[i] = (unsigned char)(i * 2654435761u >> 13);
	for (; left > 0; left -= n) {
		n = left < BUF ? left : BUF;
		if (writen(fd, buf, n) == -1)
			err(1, "write");
	}
	/* A socket ends here even if a copy of it stays open elsewhere. */
	if (shutdown(fd, SHUT_WR) == -1 && close(fd) == -1)
		err(111, "close");
	return 0;
}

static int
sink(const char *file)
{
	unsigned char *buf;
	uint64_t got = 0;
	double t0 = 0;
	ssize_t r;
	FILE *f;

	if ((buf = malloc(BUF)) == NULL)
		err(111, "malloc");
	for (;;) {
		if ((r = read(0, buf, BUF)) == -1) {
			if (errno == EINTR)
				continue;
			err(1, "read after %" PRIu64 " bytes", got);
		}
		if (r == 0)
			break;
		if (got == 0)
			t0 = now_s();
		got += r;
	}
	if ((f = fopen(file, "a")) == NULL)
		err(111, "%s", file);
	fprintf(f, "bytes=%" PRIu64 " secs=%.4f\n", got,
	    got > 0 ? now_s() - t0 : 0);
	if (fclose(f) == EOF)
		err(111, "%s", file);
	return 0;
}

static int
serve(void)
{
	unsigned char buf[65536];
	ssize_t r;

	if (writen(1, (const unsigned char *)"g", 1) == -1)
		err(1, "write");
	while ((r = read(0, buf, sizeof(buf))) > 0)
		if (writen(1, buf, r) == -1)
			err(1, "write");
	return r == -1 ? 1 : 0;
}

static long
us(double t0)
{
	return (long)((now_s() - t0) * 1e6);
}

static int
ttfb(const char *where, char **filter)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	char host[64], *colon;
	unsigned char c[2];
	long tc, tg = -1, te = -1;
	int fd, sp[2], io, st, got = 0;
	double t0;
	pid_t pid = -1;
	ssize_t r;

	if (strlen(where) >= sizeof(host) || (colon = strrchr(where, ':')) ==
	    NULL)
		usage();
	memcpy(host, where, colon - where);
	host[colon - where] = '\0';
	sin.sin_port = htons(atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
		usage();
	alarm(10);
	t0 = now_s();
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		err(111, "socket");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		err(111, "unable to connect to %s", where);
	tc = us(t0);
	io = fd;
	if (*filter != NULL) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == -1)
			err(111, "socketpair");
		if ((pid = fork()) == -1)
			err(111, "fork");
		if (pid == 0) {
			if (dup2(fd, 6) == -1 || dup2(fd, 7) == -1 ||
			    dup2(sp[1], 0) == -1 || dup2(sp[1], 1) == -1)
				err(111, "dup2");
			execvp(filter[0], filter);
			err(111, "unable to run %s", filter[0]);
		}
		close(fd);
		close(sp[1]);
		io = sp[0];
	}
	if (writen(io, (const unsigned char *)"x", 1) == -1)
		err(1, "write");
	while (got < 2) {
		if ((r = read(io, c, 2 - got)) == -1) {
			if (errno == EINTR)
				continue;
			err(1, "read");
		}
		if (r == 0)
			errx(1, "%s: the connection ended after %d bytes",
			    where, got);
		if (got == 0)
			tg = us(t0);
		if ((got += r) == 2)
			te = us(t0);
	}
	printf("connect=%ld greet=%ld echo=%ld\n", tc, tg, te);
	shutdown(io, SHUT_WR);
	while (read(io, c, 1) > 0)
		;
	if (pid > 0) {
		while (waitpid(pid, &st, 0) == -1)
			if (errno != EINTR)
				err(111, "waitpid");
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			errx(1, "%s exited %d", filter[0], WIFEXITED(st) ?
			    WEXITSTATUS(st) : 128 + WTERMSIG(st));
	}
	return 0;
}

int
main(int argc, char *argv[])
{
	char *e;
	uint64_t n;
	int fd;

	if (argc < 2)
		usage();
	if (strcmp(argv[1], "src") == 0 && argc == 4) {
		errno = 0;
		n = strtoull(argv[2], &e, 10);
		fd = atoi(argv[3]);
		if (errno != 0 || *e != '\0' || e == argv[2] || fd < 0)
			usage();
		return src(n, fd);
	}
	if (strcmp(argv[1], "sink") == 0 && argc == 3)
		return sink(argv[2]);
	if (strcmp(argv[1], "serve") == 0 && argc == 2)
		return serve();
	if (strcmp(argv[1], "ttfb") == 0 && argc >= 3)
		return ttfb(argv[2], argv + 3);
	usage();
}
