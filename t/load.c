/*
 * load: a load test for rvd, on loopback only, bounded in count and time.
 *
 *   load [-n CONNS] [-m PAIRS] [-t SECS] [-T SECS] [-s SOURCES] [-r CHURN]
 *        HOST:PORT
 *
 * Opens CONNS connections to rvd (default 5000) and holds them. Half of them
 * misbehave, a quarter each: garbage lines, an over-long line, slowloris (a
 * part of a line, then silence) and silence from the start; the garbage
 * and over-long ones, refused, connect again while the invitations run
 * (CHURN times in all, default CONNS). The other half are good idle listeners
 * (LISTEN idleN). Once all are open, PAIRS pairs of good peers (default 200)
 * log on (LISTEN bN, LOGON aN), and each aN invites bN (INVITE bN id token
 * 127.0.0.1:1); bN checks the invitation (rvd adds aN's observed address
 * with port 1) and answers "MSG id CAND 127.0.0.1:2 :443"; aN must receive
 * the SENT and the MSG. Every invitation must complete within -t SECS
 * (default 10) of its INVITE, and everything within -T SECS (default 40).
 * Clients bind to SOURCES loopback addresses 127.0.0.2... (default 199)
 * before connecting, which spreads them over rvd's per-source limit and
 * over that many ephemeral port ranges.
 *
 * One process, non-blocking sockets, one epoll loop. Prints what it saw;
 * exits 0 when every good client was served in time, 1 if not, 111 on a
 * system error.
 *
 * cc -std=c17 -D_GNU_SOURCE -Ilib t/load.c lib/libp2p.a -lbsd
 */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

enum role { R_GARBAGE, R_LONG, R_SLOW, R_SILENT, R_IDLE, R_INVITEE, R_INVITER,
    NROLES };
static const char *rolename[] = { "garbage", "long", "slowloris", "silent",
    "idle", "invitee", "inviter" };

enum { S_FREE, S_CONNECTING, S_OPEN, S_CLOSED };

struct cl {
	int fd;
	int role;
	int state;
	int idx;		/* slot number, or the pair's number */
	int gen;		/* how many times this slot has connected */
	char in[LINE_MAX_ + 2];
	size_t inlen;
	char *out;		/* what is still to be sent */
	size_t outlen;
	int welcomed, errs, lines;
	char ip[ADDR_STR];	/* our source address */
};

struct pair {
	struct cl *a, *b;	/* inviter, invitee */
	char id[ID_HEX + 1], token[ID_HEX + 1];
	long t0, t1;		/* INVITE sent; completed */
	int sent, msg, invited, done, failed;
	char why[128];
};

static int ep;
static struct addr rvd;
static int nsrc = 199;
static unsigned srcnext;
static long start;
static int phase;		/* 0: opening the crowd, 1: invitations, 2: done */

/* Counters, by role. */
static int opened[NROLES], refused[NROLES], connfail[NROLES];
static int noerr[NROLES];	/* closed by rvd with no ERR line first */
static int openbad, openidle, maxopen, nopen, churn_left, churned;
static int protoerr;		/* a good client got what it should not */

static void
die(const char *what)
{
	err(EX_SYSTEM, "%s", what);
}

/* Print one complaint about a good client, the first few times. */
static void
complain(const struct cl *c, const char *fmt, const char *arg)
{
	protoerr++;
	if (protoerr <= 10) {
		fprintf(stderr, "load: %s %d: ", rolename[c->role], c->idx);
		fprintf(stderr, fmt, arg);
		fputc('\n', stderr);
	}
}

/* Queue bytes for c and try to send them. */
static void
cl_write(struct cl *c, const char *buf, size_t n)
{
	ssize_t w = 0;

	if (c->state != S_OPEN)
		return;
	if (c->outlen == 0) {
		w = send(c->fd, buf, n, MSG_NOSIGNAL);
		if (w == -1 && errno != EAGAIN && errno != EINTR)
			return;	/* the read side will see the close */
		if (w == -1)
			w = 0;
		if ((size_t)w == n)
			return;
	}
	if ((c->out = realloc(c->out, c->outlen + n - w)) == NULL)
		die("realloc");
	memcpy(c->out + c->outlen, buf + w, n - w);
	c->outlen += n - w;
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &(struct epoll_event){
	    .events = EPOLLIN | EPOLLOUT, .data.ptr = c });
}

static void
cl_printf(struct cl *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
cl_printf(struct cl *c, const char *fmt, ...)
{
	char buf[LINE_MAX_ + 2];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	buf[n++] = '\n';
	cl_write(c, buf, n);
}

/* Send what is queued, now that there is room. */
static void
cl_flush(struct cl *c)
{
	ssize_t w = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL);

	if (w == -1)
		return;
	memmove(c->out, c->out + w, c->outlen - w);
	c->outlen -= w;
	if (c->outlen == 0)
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &(struct epoll_event){
		    .events = EPOLLIN, .data.ptr = c });
}

static int
isbad(int role)
{
	return role <= R_SILENT;
}

/* Start a connection for c from the next source address. */
static void
cl_connect(struct cl *c)
{
	struct sockaddr_in src = { .sin_family = AF_INET };
	int one = 1;

	c->fd = socket(rvd.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (c->fd == -1)
		die("socket");
	if (rvd.ss.ss_family == AF_INET && nsrc > 0) {
		/* 127.0.0.2 onwards; the port is chosen at connect time. */
		src.sin_addr.s_addr = htonl(0x7f000002 + srcnext++ % nsrc);
		setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
		    sizeof(one));
		if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) == -1)
			die("bind to a loopback source address");
	}
	c->state = S_CONNECTING;
	c->inlen = 0;
	c->outlen = 0;
	c->gen++;
	if (connect(c->fd, (struct sockaddr *)&rvd.ss, rvd.len) == -1 &&
	    errno != EINPROGRESS)
		die("connect");
	if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &(struct epoll_event){
	    .events = EPOLLOUT, .data.ptr = c }) == -1)
		die("epoll_ctl");
}

/* What each kind of client says once connected. */
static void
cl_greet(struct cl *c)
{
	static char longline[3 * LINE_MAX_];

	switch (c->role) {
	case R_GARBAGE:
		cl_printf(c, "%s", c->gen % 2 ? "HELO rvd.example" :
		    "INVITE x y z not-an-address");
		break;
	case R_LONG:
		if (longline[0] == '\0')
			memset(longline, 'L', sizeof(longline) - 1);
		cl_printf(c, "LOGON %s", longline + 2 * LINE_MAX_);
		break;
	case R_SLOW:
		cl_write(c, "LISTEN slowl", 12);
		break;
	case R_SILENT:
		break;
	case R_IDLE:
		cl_printf(c, "LISTEN idle%d", c->idx);
		break;
	case R_INVITEE:
		cl_printf(c, "LISTEN b%d", c->idx);
		break;
	case R_INVITER:
		cl_printf(c, "LOGON a%d", c->idx);
		break;
	}
}

static void cl_close(struct cl *c, int byrvd);

/* The connection of c is made (or failed). */
static void
cl_connected(struct cl *c)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int e = 0;

	getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &(socklen_t){ sizeof(e) });
	if (e != 0) {
		connfail[c->role]++;
		if (!isbad(c->role)) {
			errno = e;
			complain(c, "connect: %s", strerror(e));
		}
		close(c->fd);
		c->state = S_CLOSED;
		return;
	}
	c->state = S_OPEN;
	opened[c->role]++;
	if (isbad(c->role))
		openbad++;
	else if (c->role == R_IDLE)
		openidle++;
	if (++nopen > maxopen)
		maxopen = nopen;
	if (getsockname(c->fd, (struct sockaddr *)&ss, &len) == 0)
		addr_ip((struct sockaddr *)&ss, c->ip, sizeof(c->ip));
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &(struct epoll_event){
	    .events = EPOLLIN, .data.ptr = c });
	cl_greet(c);
}

static void
cl_close(struct cl *c, int byrvd)
{
	if (c->state != S_OPEN && c->state != S_CONNECTING)
		return;
	if (c->state == S_OPEN) {
		nopen--;
		if (isbad(c->role))
			openbad--;
		else if (c->role == R_IDLE)
			openidle--;
		if (byrvd && c->errs == 0)
			noerr[c->role]++;
	}
	close(c->fd);
	c->fd = -1;
	c->state = S_CLOSED;
	free(c->out);
	c->out = NULL;
	c->outlen = 0;
}

/* The pair that c belongs to, for the pairs' roles. */
static struct pair *pairs;
static int npairs;

/* aN may invite once bN listens and aN is logged on. */
static void
pair_invite(struct pair *p)
{
	if (!p->a->welcomed || !p->b->welcomed || p->t0 != 0)
		return;
	p->t0 = now_ms();
	cl_printf(p->a, "INVITE b%d %s %s 127.0.0.1:1", p->b->idx, p->id,
	    p->token);
}

static void
pair_check(struct pair *p)
{
	if (!p->done && p->sent && p->msg) {
		p->done = 1;
		p->t1 = now_ms();
	}
}

/* One line from rvd to c. */
static void
cl_line(struct cl *c, char *line)
{
	char *w[RV_WORDS + 4], want[ADDR_STR + 8];
	struct pair *p = c->role >= R_INVITEE ? &pairs[c->idx] : NULL;
	int n;

	c->lines++;
	if (strncmp(line, "ERR ", 4) == 0) {
		c->errs++;
		if (isbad(c->role))
			refused[c->role]++;
		else
			complain(c, "rvd said: %s", line);
		return;
	}
	if (isbad(c->role)) {
		/* A misbehaving client gets nothing but an error. */
		if (strcmp(line, "PING") != 0)
			complain(c, "a bad client got: %s", line);
		return;
	}
	n = line_words(line, w, RV_WORDS + 4);
	if (n <= 0) {
		complain(c, "bad line from rvd: %s", line);
		return;
	}
	if (strcmp(w[0], "PING") == 0) {
		cl_printf(c, "PONG");
		return;
	}
	if (strcmp(w[0], "WELCOME") == 0) {
		/* WELCOME observed relays [open]: rvd runs with -o here. */
		if (n < 3 || n > 4 || c->welcomed) {
			complain(c, "bad WELCOME: %s", w[1]);
			return;
		}
		c->welcomed = 1;
		if (p != NULL) {
			if (c->role == R_INVITEE && p->a->state == S_FREE)
				cl_connect(p->a);	/* now aN may log on */
			pair_invite(p);
		}
		return;
	}
	if (p == NULL) {
		complain(c, "unexpected: %s", w[0]);
		return;
	}
	if (c->role == R_INVITEE && strcmp(w[0], "INVITE") == 0) {
		/* INVITE aN id token 127.0.0.1:1 [observed:1] */
		snprintf(want, sizeof(want), "a%d", c->idx);
		if (n < 5 || n > 6 || strcmp(w[1], want) != 0 ||
		    strcmp(w[2], p->id) != 0 || strcmp(w[3], p->token) != 0 ||
		    strcmp(w[4], "127.0.0.1:1") != 0) {
			complain(c, "bad INVITE from %s", w[1]);
			return;
		}
		snprintf(want, sizeof(want), "%s:1", p->a->ip);
		if (n == 6 ? strcmp(w[5], want) != 0 : strcmp(want,
		    "127.0.0.1:1") != 0) {
			complain(c, "INVITE without the inviter's observed "
			    "address %s", want);
			return;
		}
		p->invited = 1;
		cl_printf(c, "MSG %s CAND 127.0.0.1:2 :443", p->id);
		return;
	}
	if (c->role == R_INVITER && strcmp(w[0], "SENT") == 0) {
		if (n != 2 || strcmp(w[1], p->id) != 0 || p->sent) {
			complain(c, "bad SENT %s", w[1]);
			return;
		}
		p->sent = 1;
		pair_check(p);
		return;
	}
	if (c->role == R_INVITER && strcmp(w[0], "MSG") == 0) {
		if (n != 5 || strcmp(w[1], p->id) != 0 ||
		    strcmp(w[2], "CAND") != 0 || strcmp(w[3], "127.0.0.1:2") != 0 ||
		    strcmp(w[4], ":443") != 0 || p->msg) {
			complain(c, "bad MSG %s", w[1]);
			return;
		}
		p->msg = 1;
		pair_check(p);
		return;
	}
	complain(c, "unexpected: %s", w[0]);
}

/* A bad client that rvd threw out comes back, while the test runs. */
static void
cl_churn(struct cl *c)
{
	if ((c->role == R_GARBAGE || c->role == R_LONG) && phase == 1 &&
	    churn_left > 0) {
		churn_left--;
		churned++;
		cl_connect(c);
	}
}

/* Read what rvd sent c. */
static void
cl_read(struct cl *c)
{
	char *nl, *s;
	ssize_t r;

	for (;;) {
		if (c->inlen >= sizeof(c->in) - 1) {
			if (!isbad(c->role))
				complain(c, "%s", "over-long line from rvd");
			c->inlen = 0;
		}
		r = recv(c->fd, c->in + c->inlen, sizeof(c->in) - 1 - c->inlen, 0);
		if (r == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r <= 0) {
			if (!isbad(c->role))
				complain(c, "rvd closed the connection: %s",
				    r == 0 ? "end of file" : strerror(errno));
			cl_close(c, 1);
			cl_churn(c);
			return;
		}
		c->inlen += r;
		s = c->in;
		while ((nl = memchr(s, '\n', c->in + c->inlen - s)) != NULL) {
			*nl = '\0';
			cl_line(c, s);
			if (c->state != S_OPEN)
				return;
			s = nl + 1;
		}
		c->inlen -= s - c->in;
		memmove(c->in, s, c->inlen);
	}
}

static void
usage(void)
{
	fprintf(stderr, "usage: load [-n CONNS] [-m PAIRS] [-t SECS] [-T SECS] "
	    "[-s SOURCES] [-r CHURN] HOST:PORT\n");
	exit(EX_USAGE_);
}

static int
cmplong(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char *argv[])
{
	struct epoll_event ev[512];
	struct cl *crowd;
	struct rlimit rl;
	long deadline_ms = 10000, limit_ms = 40000, now, *lat;
	long t_open = 0, t_inv = 0;
	int nconns = 5000, ch, i, n, ok = 1, done = 0, failed = 0, nlat = 0;
	int openbad_at = 0, openidle_at = 0, welcomed = 0, nbad;
	int slots[NROLES], stillopen[NROLES];
	const char *e;

	npairs = 200;
	churn_left = -1;
	while ((ch = getopt(argc, argv, "m:n:r:s:T:t:")) != -1) {
		switch (ch) {
		case 'm': npairs = strtonum(optarg, 0, 100000, &e); break;
		case 'n': nconns = strtonum(optarg, 0, 1000000, &e); break;
		case 'r': churn_left = strtonum(optarg, 0, 10000000, &e); break;
		case 's': nsrc = strtonum(optarg, 0, 254, &e); break;
		case 'T': limit_ms = strtonum(optarg, 1, 3600, &e) * 1000; break;
		case 't': deadline_ms = strtonum(optarg, 1, 3600, &e) * 1000; break;
		default: usage();
		}
		if (e != NULL)
			errx(EX_USAGE_, "-%c %s: %s", ch, optarg, e);
	}
	if (argc - optind != 1)
		usage();
	if (addr_numeric(argv[optind], &rvd) == -1)
		errx(EX_USAGE_, "not a numeric HOST:PORT: %s", argv[optind]);
	if (churn_left < 0)
		churn_left = nconns;
	signal(SIGPIPE, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur < (rlim_t)nconns + 2 * npairs + 64) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < (rlim_t)nconns + 2 * npairs + 64)
			errx(EX_SYSTEM, "the fd limit %llu is too low for %d "
			    "connections (ulimit -n)", (unsigned long long)rl.rlim_cur,
			    nconns + 2 * npairs);
	}
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1");
	if ((crowd = calloc(nconns + 1, sizeof(*crowd))) == NULL ||
	    (pairs = calloc(npairs + 1, sizeof(*pairs))) == NULL ||
	    (lat = calloc(npairs + 1, sizeof(*lat))) == NULL)
		die("calloc");
	start = now_ms();

	/* The crowd: half misbehave (a quarter of them each way), half idle. */
	nbad = nconns / 2;
	for (i = 0; i < nconns; i++) {
		crowd[i].idx = i;
		crowd[i].role = i < nbad ? i % 4 : R_IDLE;
		cl_connect(&crowd[i]);
	}
	for (i = 0; i < npairs; i++) {
		struct pair *p = &pairs[i];

		if ((p->a = calloc(1, sizeof(*p->a))) == NULL ||
		    (p->b = calloc(1, sizeof(*p->b))) == NULL)
			die("calloc");
		p->a->role = R_INVITER;
		p->b->role = R_INVITEE;
		p->a->idx = p->b->idx = i;
		hex_random(p->id, ID_HEX / 2);
		hex_random(p->token, ID_HEX / 2);
	}

	while (phase < 2) {
		now = now_ms();
		if (now - start > limit_ms) {
			warnx("time limit of %ld s reached", limit_ms / 1000);
			ok = 0;
			break;
		}
		if (phase == 0) {
			/* The crowd is in once every one has connected (or been
			 * refused already), and every idle one is logged on. */
			for (i = 0, n = 0, welcomed = 0; i < nconns; i++) {
				n += crowd[i].state != S_CONNECTING;
				welcomed += crowd[i].welcomed;
			}
			if (n == nconns && welcomed == nconns - nbad) {
				phase = 1;
				t_open = now - start;
				openbad_at = openbad;
				openidle_at = openidle;
				t_inv = now;
				for (i = 0; i < npairs; i++)
					cl_connect(pairs[i].b);
				/* The refused come back, during the invitations. */
				for (i = 0; i < nconns; i++)
					if (crowd[i].state == S_CLOSED)
						cl_churn(&crowd[i]);
			}
		}
		if (phase == 1) {
			for (i = 0, done = 0, failed = 0; i < npairs; i++) {
				struct pair *p = &pairs[i];

				if (!p->done && !p->failed && p->t0 != 0 &&
				    now - p->t0 > deadline_ms) {
					p->failed = 1;
					snprintf(p->why, sizeof(p->why), "sent %d "
					    "invited %d msg %d", p->sent, p->invited,
					    p->msg);
				}
				done += p->done;
				failed += p->failed;
			}
			if (done + failed == npairs)
				phase = 2;
		}
		if ((n = epoll_wait(ep, ev, 512, 100)) == -1 && errno != EINTR)
			die("epoll_wait");
		for (i = 0; i < n; i++) {
			struct cl *c = ev[i].data.ptr;

			if (c->state == S_CONNECTING) {
				cl_connected(c);
				continue;
			}
			if (c->state != S_OPEN)
				continue;
			if (ev[i].events & EPOLLOUT)
				cl_flush(c);
			if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				cl_read(c);
		}
	}

	/* What we saw. */
	for (i = 0; i < npairs; i++)
		if (pairs[i].done)
			lat[nlat++] = pairs[i].t1 - pairs[i].t0;
		else {
			ok = 0;
			if (i < 10 || pairs[i].failed)
				warnx("invitation %d did not complete: %s", i,
				    pairs[i].failed ? pairs[i].why : "time limit");
		}
	qsort(lat, nlat, sizeof(*lat), cmplong);
	for (i = 0; i < NROLES; i++)
		slots[i] = stillopen[i] = 0;
	for (i = 0; i < nconns; i++) {
		slots[crowd[i].role]++;
		stillopen[crowd[i].role] += crowd[i].state == S_OPEN;
	}
	printf("load: crowd of %d: %d misbehaving (garbage %d, over-long %d, "
	    "slowloris %d, silent %d), %d idle listeners; from %d source "
	    "addresses\n", nconns, nbad, slots[R_GARBAGE], slots[R_LONG],
	    slots[R_SLOW], slots[R_SILENT], slots[R_IDLE], nsrc);
	printf("load: crowd in after %ld ms; open then: %d misbehaving, "
	    "%d idle; most open at once: %d\n", t_open, openbad_at, openidle_at,
	    maxopen);
	printf("load: refused with ERR: garbage %d of %d connections, over-long "
	    "%d of %d (%d were reconnections); still open at the end: "
	    "slowloris %d, silent %d\n", refused[R_GARBAGE], opened[R_GARBAGE],
	    refused[R_LONG], opened[R_LONG], churned, stillopen[R_SLOW],
	    stillopen[R_SILENT]);
	for (i = 0, n = 0; i < NROLES; i++)
		n += connfail[i];
	if (n > 0)
		printf("load: %d connections failed (%d of them good)\n", n,
		    connfail[R_IDLE] + connfail[R_INVITEE] + connfail[R_INVITER]);
	if (noerr[R_GARBAGE] + noerr[R_LONG] > 0) {
		printf("load: closed by rvd with no ERR line: garbage %d, "
		    "over-long %d\n", noerr[R_GARBAGE], noerr[R_LONG]);
		ok = 0;
	}
	for (i = 0, n = 0; i < nconns; i++)
		n += crowd[i].role == R_IDLE && crowd[i].welcomed &&
		    crowd[i].state == S_OPEN;
	printf("load: idle listeners logged on and still connected: %d of %d\n",
	    n, nconns - nbad);
	if (n != nconns - nbad)
		ok = 0;
	printf("load: invitations completed: %d of %d in %ld ms", nlat, npairs,
	    t_inv ? now_ms() - t_inv : 0);
	if (nlat > 0)
		printf("; latency median %ld ms, 99th %ld ms, max %ld ms",
		    lat[nlat / 2], lat[(nlat * 99) / 100 < nlat ?
		    (nlat * 99) / 100 : nlat - 1], lat[nlat - 1]);
	printf("\n");
	if (protoerr > 0) {
		printf("load: %d protocol errors seen by good clients\n", protoerr);
		ok = 0;
	}
	printf("load: %s\n", ok ? "ok" : "FAILED");
	return ok ? 0 : 1;
}
