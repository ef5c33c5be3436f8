/*
 * relaypairs: a load and correctness client for relayd, bounded in count
 * and time.
 *
 *   relaypairs [-q] [-u] [-w] [-n PAIRS] [-b BYTES] [-c CONCURRENT] [-I IDLE]
 *              [-S SRC,...] [-s SEED] [-t SECONDS] HOST:PORT
 *
 * Opens PAIRS relay sessions (default 200) and holds them all at once: for
 * each pair one connection sends NEW and reads "SESSION <sid>", another sends
 * "JOIN <sid>", and both must read "OK". At most CONCURRENT pairs (default
 * 128) are being set up at a time, so a big run does not overflow relayd's
 * listen backlog; the sessions already paired stay open meanwhile.
 *
 * Once paired, each side of each pair sends its own BYTES (default 1 MiB; a
 * K, M or G suffix multiplies by 1024s) of a stream derived from (SEED, pair,
 * side), shuts its write side (half-close), and reads the other side's bytes
 * to end-of-file, checking them byte for byte against what the peer must have
 * sent: a byte from another session, a lost, repeated or extra byte, or an
 * early end all fail the pair.
 *
 * -w: once every pair is paired (or has failed), print "paired N" and wait
 * for a line or end-of-file on stdin before any data is sent, so a test can
 * act on relayd while all sessions are open and idle.
 * -I IDLE: first open IDLE more connections that never send anything, and
 * hold them to the end; the pairs must be served regardless.
 * -q: print no per-pair failures, only the counts.
 * -S SRC,...: bind the connections of pair i to source address
 * SRC[i % count] (numeric IPs), so that one run can play many clients.
 * -u: unjoined: only the NEW sides, each held once it has its SESSION
 * line; once every NEW is answered, print "unjoined N refused M" (M got
 * an ERR line) and wait for stdin as -w does; then close them all. Exits
 * 0 when every NEW was answered one way or the other.
 *
 * One process, non-blocking sockets, one epoll loop. Everything must be done
 * within -t SECONDS (default 30). Prints the counts on stdout; exits 0 only if
 * every pair was checked whole, 1 if not, 100 on a usage error, 111 on a
 * system error.
 *
 * cc -O2 -std=c17 -D_GNU_SOURCE -Ilib t/relaypairs.c lib/libp2p.a -lbsd
 */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

#define CHUNK	(256 * 1024)	/* most bytes per send or recv */
#define SHOWMAX	20		/* failures printed one by one */

enum cstate {
	C_NONE,		/* not opened yet */
	C_CONNECTING,	/* connect in progress */
	C_LINE,		/* waiting for relayd's SESSION or OK line */
	C_DATA,		/* paired: sending and checking */
	C_DONE,		/* sent all, read all to EOF: closed */
	C_FAILED
};

enum pstate { P_WAIT, P_SETUP, P_PAIRED, P_CHECKED, P_FAILED };

struct conn {
	uint8_t kind;		/* K_CONN; first, like struct idle */
	uint8_t side;		/* 0: the NEW side, 1: the JOIN side */
	uint8_t state;
	bool ok;		/* got "OK" */
	bool shut;		/* write side shut down */
	bool eof;
	bool reg;		/* registered with epoll */
	uint32_t evs;		/* what epoll watches now */
	int fd;
	int pair;
	char out[64];		/* the command line still to send */
	size_t outlen;
	char in[LINE_MAX_ + 2];	/* a reply line being read */
	size_t inlen;
	uint64_t sent, rcvd;
};

struct pair {
	struct conn c[2];
	uint8_t state;
	char sid[ID_HEX + 1];
};

enum { K_CONN, K_IDLE, K_STDIN };

struct idle {
	uint8_t kind;
	int fd;
};

static struct pair *pairs;
static struct idle *idles;
static int npairs = 200, nconc = 128, nidle, quiet, hold, unjoined;
static struct addr srcs[64];	/* -S: source addresses, taken in turn */
static int nsrcs, nheld, nrefused;
static uint64_t nbytes = 1 << 20;
static uint64_t seed = 1;
static struct addr target;
static int ep;
static int nsetup, npaired, nchecked, nfailed, nshown, idle_open, idle_lost;
static int next_pair;
static bool released = true;
static uint8_t kstdin = K_STDIN;
static unsigned char *genbuf, *rbuf;

static void
usage(void)
{
	fprintf(stderr, "usage: relaypairs [-quw] [-n PAIRS] [-b BYTES] "
	    "[-c CONCURRENT] [-I IDLE] [-S SRC,...] [-s SEED] [-t SECONDS] "
	    "HOST:PORT\n");
	exit(EX_USAGE_);
}

/* ---- the data: a stream of 64-bit words, each a function of its index ---- */

static uint64_t
mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The stream's key for one side of one pair. */
static uint64_t
stream_key(int pair, int side)
{
	return mix64((seed * 0x9e3779b97f4a7c15ULL) ^
	    (((uint64_t)pair << 1 | (uint64_t)side) + 0x632be59bd9b4e019ULL));
}

/* Bytes [off, off + len) of the stream with this key, into genbuf; returns
 * where they start there. */
static const unsigned char *
stream_gen(uint64_t key, uint64_t off, size_t len)
{
	uint64_t w = off / 8, end = (off + len + 7) / 8, v;
	unsigned char *p = genbuf;
	int i;

	for (; w < end; w++) {
		v = mix64(key + w * 0x9e3779b97f4a7c15ULL);
		for (i = 0; i < 8; i++)
			*p++ = (unsigned char)(v >> (8 * i));
	}
	return genbuf + off % 8;
}

/* ---- bookkeeping ---- */

static void
conn_close(struct conn *c)
{
	if (c->fd != -1) {
		close(c->fd);
		c->fd = -1;
	}
}

/* Fail a pair with a reason; both its connections are closed. */
static void
pair_fail(struct pair *p, int side, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
pair_fail(struct pair *p, int side, const char *fmt, ...)
{
	va_list ap;
	int i = (int)(p - pairs);

	if (p->state == P_FAILED || p->state == P_CHECKED)
		return;
	if (p->state == P_SETUP)
		nsetup--;
	if (!quiet && nshown++ < SHOWMAX) {
		fprintf(stderr, "relaypairs: pair %d %s: ", i,
		    side ? "join" : "new");
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	p->state = P_FAILED;
	nfailed++;
	conn_close(&p->c[0]);
	conn_close(&p->c[1]);
	p->c[0].state = p->c[1].state = C_FAILED;
}

/* Watch c for events (level-triggered); 0 stops watching. */
static void
conn_watch(struct conn *c, uint32_t evs)
{
	struct epoll_event ev = { .events = evs, .data.ptr = c };

	if (c->reg && evs == c->evs)
		return;
	if (epoll_ctl(ep, c->reg ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd,
	    &ev) == -1)
		err(EX_SYSTEM, "epoll_ctl");
	c->reg = true;
	c->evs = evs;
}

/* Start a non-blocking connect to relayd, from source address src (of
 * -S) unless it is NULL. */
static int
sock_open(const struct addr *src)
{
	int fd = socket(target.ss.ss_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd == -1)
		err(EX_SYSTEM, "socket");
	if (src != NULL && bind(fd, (const struct sockaddr *)&src->ss,
	    src->len) == -1)
		err(EX_SYSTEM, "bind");
	if (connect(fd, (struct sockaddr *)&target.ss, target.len) == -1 &&
	    errno != EINPROGRESS) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Open one side of pair p, to send line once connected. */
static void
conn_open(struct pair *p, int side, const char *line)
{
	struct conn *c = &p->c[side];

	c->fd = sock_open(nsrcs ? &srcs[(p - pairs) % nsrcs] : NULL);
	if (c->fd == -1) {
		pair_fail(p, side, "connect: %s", strerror(errno));
		return;
	}
	c->state = C_CONNECTING;
	c->outlen = strlcpy(c->out, line, sizeof(c->out));
	conn_watch(c, EPOLLOUT);
}

/* Start setting up pairs while there is room. */
static void
pairs_start(void)
{
	struct pair *p;

	while (nsetup < nconc && next_pair < npairs) {
		p = &pairs[next_pair++];
		p->state = P_SETUP;
		nsetup++;
		conn_open(p, 0, "NEW\n");
	}
}

/* What c wants to be told of while in C_DATA. */
static void
data_watch(struct conn *c)
{
	uint32_t evs = 0;

	if (!c->eof)
		evs |= EPOLLIN | EPOLLRDHUP;
	if (released && !c->shut)
		evs |= EPOLLOUT;
	conn_watch(c, evs);
}

/* One side is done with both directions: close it; and the pair, if both. */
static void
conn_finish(struct pair *p, struct conn *c)
{
	conn_close(c);
	c->state = C_DONE;
	if (p->c[0].state == C_DONE && p->c[1].state == C_DONE) {
		p->state = P_CHECKED;
		nchecked++;
	}
}

/* Check bytes received on c against the peer's stream. */
static int
data_check(struct pair *p, struct conn *c, const unsigned char *b, size_t n)
{
	const unsigned char *want;
	size_t i;

	if (c->rcvd + n > nbytes) {
		pair_fail(p, c->side, "%llu bytes more than the peer sent",
		    (unsigned long long)(c->rcvd + n - nbytes));
		return -1;
	}
	want = stream_gen(stream_key((int)(p - pairs), !c->side), c->rcvd, n);
	if (memcmp(b, want, n) != 0) {
		for (i = 0; b[i] == want[i]; i++)
			;
		pair_fail(p, c->side, "wrong byte at offset %llu",
		    (unsigned long long)(c->rcvd + i));
		return -1;
	}
	c->rcvd += n;
	return 0;
}

/* c has read its OK: start the data phase; the pair is paired once both have. */
static void
conn_paired(struct pair *p, struct conn *c)
{
	c->ok = true;
	c->state = C_DATA;
	if (p->c[0].ok && p->c[1].ok) {
		p->state = P_PAIRED;
		nsetup--;
		npaired++;
	}
}

/* A line from relayd on c; rest is what followed it in the same read. */
static int
conn_line(struct pair *p, struct conn *c, char *line)
{
	char buf[LINE_MAX_ + 16];

	if (strncmp(line, "ERR", 3) == 0 && unjoined) {
		/* Refused, as a test may want: not a failure of the run. */
		conn_close(c);
		c->state = C_FAILED;
		p->state = P_FAILED;
		nsetup--;
		nrefused++;
		return -1;
	}
	if (strncmp(line, "ERR", 3) == 0) {
		pair_fail(p, c->side, "relayd said: %s", line);
		return -1;
	}
	if (c->side == 0 && p->sid[0] == '\0') {
		if (strncmp(line, "SESSION ", 8) != 0 ||
		    strlen(line + 8) != ID_HEX || !hex_valid(line + 8, ID_HEX)) {
			pair_fail(p, 0, "not a SESSION line: %s", line);
			return -1;
		}
		strlcpy(p->sid, line + 8, sizeof(p->sid));
		if (unjoined) {
			/* Held as it is, and heard no more: its expiry is relayd's. */
			epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
			c->state = C_DONE;
			p->state = P_CHECKED;
			nsetup--;
			nheld++;
			return -1;
		}
		snprintf(buf, sizeof(buf), "JOIN %s\n", p->sid);
		conn_open(p, 1, buf);
		return p->state == P_FAILED ? -1 : 0;
	}
	if (strcmp(line, "OK") != 0) {
		pair_fail(p, c->side, "not OK: %s", line);
		return -1;
	}
	conn_paired(p, c);
	return 0;
}

/* Read what relayd sent on c: reply lines, then the peer's bytes. */
static void
conn_read(struct pair *p, struct conn *c)
{
	ssize_t n;
	char *nl;
	size_t len, skip;

	for (;;) {
		if (c->state == C_LINE) {
			n = recv(c->fd, c->in + c->inlen,
			    sizeof(c->in) - 1 - c->inlen, 0);
		} else
			n = recv(c->fd, rbuf, CHUNK, 0);
		if (n == -1) {
			if (errno == EAGAIN)
				break;
			pair_fail(p, c->side, "recv after %llu bytes: %s",
			    (unsigned long long)c->rcvd, strerror(errno));
			return;
		}
		if (n == 0) {
			if (c->state == C_LINE) {
				pair_fail(p, c->side, "EOF before %s",
				    c->side == 0 && p->sid[0] == '\0' ?
				    "SESSION" : "OK");
				return;
			}
			if (c->rcvd != nbytes) {
				pair_fail(p, c->side, "EOF after %llu of %llu "
				    "bytes", (unsigned long long)c->rcvd,
				    (unsigned long long)nbytes);
				return;
			}
			c->eof = true;
			break;
		}
		if (c->state == C_DATA) {
			if (data_check(p, c, rbuf, n) == -1)
				return;
			continue;
		}
		c->inlen += n;
		/* Lines, and after OK, data from the same read. */
		while (c->state == C_LINE &&
		    (nl = memchr(c->in, '\n', c->inlen)) != NULL) {
			*nl = '\0';
			len = nl - c->in;
			if (len > 0 && c->in[len - 1] == '\r')
				c->in[len - 1] = '\0';
			if (conn_line(p, c, c->in) == -1)
				return;
			skip = len + 1;
			memmove(c->in, c->in + skip, c->inlen - skip);
			c->inlen -= skip;
		}
		if (c->state == C_LINE && c->inlen >= sizeof(c->in) - 1) {
			pair_fail(p, c->side, "reply line too long");
			return;
		}
		if (c->state == C_DATA && c->inlen > 0) {
			len = c->inlen;
			c->inlen = 0;
			if (data_check(p, c, (unsigned char *)c->in, len) == -1)
				return;
		}
	}
}

/* Send c's command line, or its stream while the pair is paired. */
static void
conn_write(struct pair *p, struct conn *c)
{
	const unsigned char *b;
	size_t len;
	ssize_t n;

	if (c->state == C_CONNECTING) {
		int e = 0;
		socklen_t el = sizeof(e);

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
		if (e != 0) {
			pair_fail(p, c->side, "connect: %s", strerror(e));
			return;
		}
		n = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL);
		if (n != (ssize_t)c->outlen) {
			pair_fail(p, c->side, "send: %s",
			    n == -1 ? strerror(errno) : "short");
			return;
		}
		c->state = C_LINE;
		conn_watch(c, EPOLLIN | EPOLLRDHUP);
		return;
	}
	while (c->sent < nbytes) {
		len = nbytes - c->sent < CHUNK ? nbytes - c->sent : CHUNK;
		b = stream_gen(stream_key((int)(p - pairs), c->side), c->sent,
		    len);
		n = send(c->fd, b, len, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EAGAIN)
				return;
			pair_fail(p, c->side, "send after %llu bytes: %s",
			    (unsigned long long)c->sent, strerror(errno));
			return;
		}
		c->sent += n;
	}
	if (shutdown(c->fd, SHUT_WR) == -1) {
		pair_fail(p, c->side, "shutdown: %s", strerror(errno));
		return;
	}
	c->shut = true;
}

static void
conn_event(struct conn *c, uint32_t evs)
{
	struct pair *p = (struct pair *)((char *)(c - c->side) -
	    offsetof(struct pair, c));

	if (c->state == C_FAILED || c->state == C_DONE)
		return;
	if ((evs & EPOLLOUT) && c->state == C_CONNECTING)
		conn_write(p, c);
	if (c->state == C_FAILED)
		return;
	if ((evs & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) &&
	    c->state != C_CONNECTING)
		conn_read(p, c);
	else if ((evs & (EPOLLHUP | EPOLLERR)) && c->state == C_CONNECTING)
		conn_write(p, c);	/* reports the connect error */
	if (c->state == C_FAILED)
		return;
	if (c->state == C_DATA) {
		if (released && !c->shut)
			conn_write(p, c);
		if (c->state == C_FAILED)
			return;
		if (c->shut && c->eof)
			conn_finish(p, c);
		else
			data_watch(c);
	}
}

/* Open the silent connections of -I. */
static void
idle_open_all(void)
{
	struct epoll_event ev;
	int i;

	if (nidle == 0)
		return;
	if ((idles = calloc(nidle, sizeof(*idles))) == NULL)
		err(EX_SYSTEM, "calloc");
	for (i = 0; i < nidle; i++) {
		idles[i].kind = K_IDLE;
		if ((idles[i].fd = sock_open(NULL)) == -1)
			err(EX_SYSTEM, "connect");
		ev = (struct epoll_event){ .events = EPOLLRDHUP,
		    .data.ptr = &idles[i] };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, idles[i].fd, &ev) == -1)
			err(EX_SYSTEM, "epoll_ctl");
		idle_open++;
	}
}

static void
idle_event(struct idle *d)
{
	/* relayd dropped it (timeout, or the pending cap): just count it. */
	epoll_ctl(ep, EPOLL_CTL_DEL, d->fd, NULL);
	close(d->fd);
	d->fd = -1;
	idle_open--;
	idle_lost++;
}

static void release(void);

/* -w: all pairs are set up; wait for stdin before sending. */
static void
hold_start(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &kstdin };

	if (unjoined)
		printf("unjoined %d refused %d\n", nheld, nrefused);
	else
		printf("paired %d\n", npaired);
	fflush(stdout);
	if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) == -1) {
		if (errno != EPERM)	/* a regular file or /dev/null: go */
			err(EX_SYSTEM, "epoll_ctl stdin");
		release();
	}
}

static void
release(void)
{
	int i, s;

	if (released)
		return;
	epoll_ctl(ep, EPOLL_CTL_DEL, 0, NULL);
	released = true;
	for (i = 0; i < npairs; i++)
		for (s = 0; s < 2; s++)
			if (pairs[i].c[s].state == C_DATA)
				data_watch(&pairs[i].c[s]);
}

/* -S: a comma-separated list of numeric IPs, into srcs. */
static void
srcs_arg(const char *list)
{
	char buf[1024], *p, *w;
	struct sockaddr_in *s4;
	struct sockaddr_in6 *s6;

	if (strlcpy(buf, list, sizeof(buf)) >= sizeof(buf))
		usage();
	for (p = buf; (w = strsep(&p, ",")) != NULL;) {
		if (nsrcs == (int)(sizeof(srcs) / sizeof(srcs[0])))
			usage();
		s4 = (struct sockaddr_in *)&srcs[nsrcs].ss;
		s6 = (struct sockaddr_in6 *)&srcs[nsrcs].ss;
		if (inet_pton(AF_INET, w, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
			srcs[nsrcs++].len = sizeof(*s4);
		} else if (inet_pton(AF_INET6, w, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
			srcs[nsrcs++].len = sizeof(*s6);
		} else {
			warnx("bad source address: %s", w);
			usage();
		}
	}
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

static long long
num(const char *s, long long lo, long long hi)
{
	const char *e;
	long long v = strtonum(s, lo, hi, &e);

	if (e != NULL) {
		warnx("%s: %s", s, e);
		usage();
	}
	return v;
}

/* Room for every connection we hold, plus slack. */
static void
fd_room(void)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)npairs * 2 + nidle + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		err(EX_SYSTEM, "getrlimit");
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
			struct rlimit up = { need, need };

			if (setrlimit(RLIMIT_NOFILE, &up) == 0)
				return;
			errx(EX_SYSTEM, "need %llu fds; the limit is %llu",
			    (unsigned long long)need,
			    (unsigned long long)rl.rlim_max);
		}
		rl.rlim_cur = need;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			err(EX_SYSTEM, "setrlimit");
	}
}

int
main(int argc, char *argv[])
{
	struct epoll_event ev[256];
	long t0, deadline, now;
	double secs;
	int c, i, n, secs_max = 30;
	bool held = false;

	while ((c = getopt(argc, argv, "quwn:b:c:I:S:s:t:")) != -1) {
		switch (c) {
		case 'q': quiet = 1; break;
		case 'u': unjoined = hold = 1; break;
		case 'w': hold = 1; break;
		case 'S': srcs_arg(optarg); break;
		case 'n': npairs = (int)num(optarg, 0, 1000000); break;
		case 'b': nbytes = size_arg(optarg); break;
		case 'c': nconc = (int)num(optarg, 1, 1000000); break;
		case 'I': nidle = (int)num(optarg, 0, 1000000); break;
		case 's': seed = (uint64_t)num(optarg, 0, LLONG_MAX); break;
		case 't': secs_max = (int)num(optarg, 1, 86400); break;
		default: usage();
		}
	}
	if (argc - optind != 1)
		usage();
	if (addr_resolve(argv[optind], "127.0.0.1", &target, 1) < 1)
		errx(EX_USAGE_, "cannot resolve %s", argv[optind]);
	signal(SIGPIPE, SIG_IGN);
	fd_room();
	if ((pairs = calloc(npairs ? npairs : 1, sizeof(*pairs))) == NULL ||
	    (genbuf = malloc(CHUNK + 16)) == NULL ||
	    (rbuf = malloc(CHUNK)) == NULL)
		err(EX_SYSTEM, "malloc");
	for (i = 0; i < npairs; i++)
		for (c = 0; c < 2; c++)
			pairs[i].c[c] = (struct conn){ .kind = K_CONN,
			    .side = (uint8_t)c, .fd = -1, .pair = i };
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		err(EX_SYSTEM, "epoll_create1");
	released = !hold;
	t0 = now_ms();
	deadline = t0 + secs_max * 1000L;
	idle_open_all();
	pairs_start();
	for (;;) {
		if (hold && !held && next_pair == npairs && nsetup == 0) {
			held = true;
			hold_start();
		}
		if ((unjoined ? nheld + nrefused : nchecked) + nfailed ==
		    npairs && (!unjoined || released))
			break;
		now = now_ms();
		if (now >= deadline)
			break;
		n = epoll_wait(ep, ev, 256, (int)(deadline - now));
		if (n == -1) {
			if (errno == EINTR)
				continue;
			err(EX_SYSTEM, "epoll_wait");
		}
		for (i = 0; i < n; i++) {
			uint8_t kind = *(uint8_t *)ev[i].data.ptr;

			if (kind == K_STDIN)
				release();
			else if (kind == K_IDLE)
				idle_event(ev[i].data.ptr);
			else
				conn_event(ev[i].data.ptr, ev[i].events);
		}
		pairs_start();
	}
	if (unjoined)
		return nheld + nrefused == npairs && nfailed == 0 ? 0 : 1;
	secs = (now_ms() - t0) / 1000.0;
	if (nchecked + nfailed < npairs) {
		int st[P_FAILED + 1] = { 0 };

		for (i = 0; i < npairs; i++)
			if (pairs[i].state != P_CHECKED &&
			    pairs[i].state != P_FAILED)
				st[pairs[i].state]++;
		fprintf(stderr, "relaypairs: timeout after %d s: %d pairs not "
		    "started, %d being set up, %d paired but not checked\n",
		    secs_max, st[P_WAIT], st[P_SETUP], st[P_PAIRED]);
	}
	if (!quiet && nshown > SHOWMAX)
		fprintf(stderr, "relaypairs: ... and %d more failures\n",
		    nshown - SHOWMAX);
	printf("pairs %d paired %d checked %d failed %d bytes %llu each way "
	    "idle %d dropped %d time %.2f s\n", npairs, npaired, nchecked,
	    nfailed, (unsigned long long)nbytes, nidle, idle_lost, secs);
	return nchecked == npairs ? 0 : 1;
}
