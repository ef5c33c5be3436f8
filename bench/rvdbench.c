/*
 * rvdbench: the load client of bench/rvd. One thread, one epoll loop.
 *
 *   rvdbench port
 *	print a free TCP port on 127.0.0.1
 *   rvdbench hold [-e] [-T SECS] -s ADDR:PORT -n CONNS -p PID
 *	open CONNS connections, log each on (LISTEN peerN, wait for WELCOME),
 *	then print the server's memory before and after and the CPU time it
 *	spent, from /proc/PID
 *   rvdbench rtt [-e] [-T SECS] [-p PID] -s ADDR:PORT -n LISTENERS -r RATE -t SECS
 *	log on LISTENERS listeners and enough inviters (LOGON), then send
 *	INVITEs at RATE a second, paced (open loop), to random listeners;
 *	each listener answers its INVITE with MSG id CAND 127.0.0.1:1, and
 *	the round trip ends when the inviter receives that MSG; with -p, the
 *	server's CPU time over the invitations is printed too
 *
 * -e speaks to an echo server instead: a log-on is done when its line comes
 * back; an INVITE line that comes back to its inviter makes the client send
 * the MSG line on the chosen listener's connection, and the round trip ends
 * when that comes back. So both measure the same path: two passes through
 * the server and two wake-ups of the client.
 *
 * Clients bind 127.0.0.2, 127.0.0.3, ... (PER_SRC connections each) with
 * IP_BIND_ADDRESS_NO_PORT before connecting, so ephemeral ports last.
 * Results are key=value words on one line of stdout; times in microseconds,
 * memory in KiB. Any error exits 111 with a line on stderr.
 */
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "p2p.h"

#define PER_SRC 2000		/* connections per source address */
#define INFLIGHT 512		/* connections being set up at once */
#define BUFSZ 244		/* longest line we expect from the server */
#define SESS_USE 30		/* invitations per inviter: rvd allows 32 open */

enum { C_CONNECTING, C_HELLO, C_READY };

struct cl {
	int fd;
	uint8_t state;
	uint8_t inviter;
	uint16_t len;
	char buf[BUFSZ];
};

struct inv {
	uint64_t sent;		/* ns; 0 until sent */
	uint64_t rtt;		/* ns; 0 until answered */
	uint32_t listener;
};

static struct cl *cl;
static int ncl, nlisten, ep, echo_mode;
static int opened, ready;
static struct sockaddr_in dst;
static struct inv *inv;
static long ninv_total;
static char prefix[17], token[ID_HEX + 1];
static long answered, dups, errs, unexpected;
static uint64_t rng = 88172645463325252ull;

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static uint64_t
xorshift(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void
complain(long *count, const char *what, int i, const char *line)
{
	if ((*count)++ < 5)
		warnx("%s on connection %d: %s", what, i, line);
}

/* Write one line to connection i; a socket too full for it is an error. */
static void
say(int i, const char *fmt, ...)
{
	char buf[LINE_MAX_ + 2];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, LINE_MAX_ + 1, fmt, ap);
	va_end(ap);
	buf[n++] = '\n';
	if (send(cl[i].fd, buf, n, MSG_NOSIGNAL) != n)
		err(EX_SYSTEM, "send on connection %d", i);
}

static void
hello(int i)
{
	if (cl[i].inviter)
		say(i, "LOGON bench%d", i - nlisten);
	else
		say(i, "LISTEN peer%d", i);
}

/* The invitation a session id stands for, or -1. */
static long
id_index(const char *id)
{
	char *e;
	unsigned long long k;

	if (strlen(id) != ID_HEX || strncmp(id, prefix, 16) != 0)
		return -1;
	k = strtoull(id + 16, &e, 16);
	return *e == '\0' && k < (unsigned long long)ninv_total ? (long)k : -1;
}

/* The n-th word of line (0 first), copied into w. */
static int
word(const char *line, int n, char *w, size_t wn)
{
	size_t len;

	while (n-- > 0) {
		if ((line = strchr(line, ' ')) == NULL)
			return -1;
		line++;
	}
	len = strcspn(line, " ");
	if (len == 0 || len >= wn)
		return -1;
	memcpy(w, line, len);
	w[len] = '\0';
	return 0;
}

static void
on_line(int i, char *line)
{
	char id[ID_HEX + 8];
	long k;

	if (cl[i].state == C_HELLO) {
		const char *want = !echo_mode ? "WELCOME " :
		    cl[i].inviter ? "LOGON " : "LISTEN ";

		if (strncmp(line, want, strlen(want)) != 0)
			errx(EX_SYSTEM, "log-on of connection %d: %s", i, line);
		cl[i].state = C_READY;
		ready++;
		return;
	}
	if (strncmp(line, "INVITE ", 7) == 0) {
		/* rvd: "INVITE from id token addr..." at the listener;
		 * echo: our own "INVITE peer id token addr" at the inviter. */
		if (word(line, 2, id, sizeof(id)) == -1 ||
		    (k = id_index(id)) == -1)
			return complain(&unexpected, "unexpected", i, line);
		say(echo_mode ? (int)inv[k].listener : i,
		    "MSG %s CAND 127.0.0.1:1", id);
	} else if (strncmp(line, "MSG ", 4) == 0) {
		uint64_t t = now_ns();

		if (word(line, 1, id, sizeof(id)) == -1 ||
		    (k = id_index(id)) == -1 || inv[k].sent == 0)
			return complain(&unexpected, "unexpected", i, line);
		if (inv[k].rtt != 0)
			return complain(&dups, "duplicate", i, line);
		inv[k].rtt = t - inv[k].sent;
		if (inv[k].rtt == 0)
			inv[k].rtt = 1;
		answered++;
	} else if (strcmp(line, "PING") == 0)
		say(i, "PONG");
	else if (strncmp(line, "SENT ", 5) == 0 || strcmp(line, "PONG") == 0)
		;
	else if (strncmp(line, "ERR ", 4) == 0)
		complain(&errs, "error", i, line);
	else
		complain(&unexpected, "unexpected", i, line);
}

static void
on_read(int i)
{
	struct cl *c = &cl[i];
	char *nl, *p;
	ssize_t r;

	for (;;) {
		r = read(c->fd, c->buf + c->len, BUFSZ - c->len);
		if (r == 0)
			errx(EX_SYSTEM, "connection %d: closed by the server", i);
		if (r == -1) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			err(EX_SYSTEM, "connection %d", i);
		}
		c->len += r;
		p = c->buf;
		while ((nl = memchr(p, '\n', c->len - (p - c->buf))) != NULL) {
			*nl = '\0';
			on_line(i, p);
			p = nl + 1;
		}
		c->len -= p - c->buf;
		memmove(c->buf, p, c->len);
		if (c->len == BUFSZ)
			errx(EX_SYSTEM, "connection %d: line too long", i);
		if (r < BUFSZ)
			return;
	}
}

static void
on_event(struct epoll_event *e)
{
	int i = e->data.u32, soerr;
	socklen_t len = sizeof(soerr);

	if (cl[i].state != C_CONNECTING) {
		on_read(i);
		return;
	}
	if (getsockopt(cl[i].fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
		err(EX_SYSTEM, "getsockopt");
	if (soerr != 0) {
		errno = soerr;
		err(EX_SYSTEM, "connect %d", i);
	}
	cl[i].state = C_HELLO;
	epoll_ctl(ep, EPOLL_CTL_MOD, cl[i].fd, &(struct epoll_event){
	    .events = EPOLLIN, .data.u32 = i });
	hello(i);
}

static void
conn_open(int i)
{
	struct sockaddr_in src = { .sin_family = AF_INET };
	int fd, one = 1;

	src.sin_addr.s_addr = htonl(0x7f000002u + i / PER_SRC);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		err(EX_SYSTEM, "socket (connection %d)", i);
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&src, sizeof(src)) == -1)
		err(EX_SYSTEM, "bind %s", inet_ntoa(src.sin_addr));
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) == -1 &&
	    errno != EINPROGRESS)
		err(EX_SYSTEM, "connect %d", i);
	cl[i].fd = fd;
	cl[i].state = C_CONNECTING;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &(struct epoll_event){
	    .events = EPOLLOUT, .data.u32 = i }) == -1)
		err(EX_SYSTEM, "epoll_ctl");
}

/* Wait up to ns for events and handle them. */
static void
poll_once(int64_t ns)
{
	struct epoll_event ev[512];
	struct timespec ts;
	int i, n;

	if (ns < 0)
		ns = 0;
	ts.tv_sec = ns / 1000000000;
	ts.tv_nsec = ns % 1000000000;
	if ((n = epoll_pwait2(ep, ev, 512, &ts, NULL)) == -1) {
		if (errno == EINTR)
			return;
		err(EX_SYSTEM, "epoll_pwait2");
	}
	for (i = 0; i < n; i++)
		on_event(&ev[i]);
}

/* Open all ncl connections, INFLIGHT at a time, and log each on. */
static double
setup(int timeout_s)
{
	uint64_t t0 = now_ns(), end = t0 + timeout_s * 1000000000ull;

	while (ready < ncl) {
		while (opened < ncl && opened - ready < INFLIGHT)
			conn_open(opened++);
		if (now_ns() > end)
			errx(EX_SYSTEM, "only %d of %d connections logged on "
			    "after %d s", ready, ncl, timeout_s);
		poll_once(100000000);
	}
	return (now_ns() - t0) / 1e9;
}

static void
dst_parse(const char *s)
{
	struct addr a;

	if (addr_numeric(s, &a) == -1 || a.ss.ss_family != AF_INET)
		errx(EX_USAGE_, "bad server address: %s", s);
	memcpy(&dst, &a.ss, sizeof(dst));
	if ((ntohl(dst.sin_addr.s_addr) >> 24) != 127)
		errx(EX_USAGE_, "loopback only: %s", s);
}

static void
fd_limit(long need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		err(EX_SYSTEM, "getrlimit");
	if (rl.rlim_max < (rlim_t)need)
		rl.rlim_max = need;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		err(EX_SYSTEM, "unable to raise the fd limit to %ld", need);
}

/* A "Key:   N kB" figure from a /proc file, or -1. */
static long
proc_kb(const char *path, const char *key)
{
	char line[256];
	size_t kl = strlen(key);
	long v = -1;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		err(EX_SYSTEM, "%s", path);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			v = strtol(line + kl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* The user and system CPU seconds pid has used. */
static double
proc_cpu(long pid)
{
	char p[64], buf[1024], *s;
	unsigned long ut, st;
	size_t n;
	FILE *f;

	snprintf(p, sizeof(p), "/proc/%ld/stat", pid);
	if ((f = fopen(p, "r")) == NULL)
		err(EX_SYSTEM, "%s", p);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if ((s = strrchr(buf, ')')) == NULL || sscanf(s + 2,
	    "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	    &ut, &st) != 2)
		errx(EX_SYSTEM, "%s: cannot parse", p);
	return (double)(ut + st) / sysconf(_SC_CLK_TCK);
}

struct mem {
	long rss, anon, slab;
	double cpu;
};

static void
mem_read(long pid, struct mem *m)
{
	char p[64];

	snprintf(p, sizeof(p), "/proc/%ld/status", pid);
	m->rss = proc_kb(p, "VmRSS");
	snprintf(p, sizeof(p), "/proc/%ld/smaps_rollup", pid);
	m->anon = proc_kb(p, "Anonymous");
	m->slab = proc_kb("/proc/meminfo", "Slab");
	m->cpu = proc_cpu(pid);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double
pct(uint64_t *v, long n, double p)
{
	long i = (long)(p * (n - 1) + 0.5);

	return n == 0 ? 0 : v[i] / 1e3;
}

static void
usage(void)
{
	fprintf(stderr, "usage: rvdbench port\n"
	    "       rvdbench hold [-e] [-T SECS] -s ADDR:PORT -n CONNS -p PID\n"
	    "       rvdbench rtt [-e] [-T SECS] [-p PID] -s ADDR:PORT "
	    "-n LISTENERS -r RATE -t SECS\n");
	exit(EX_USAGE_);
}

static int
cmd_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) == -1 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) == -1)
		err(EX_SYSTEM, "free port");
	printf("%d\n", ntohs(a.sin_port));
	close(fd);
	return 0;
}

static int
cmd_hold(long pid, int timeout_s)
{
	struct mem m0, m1;
	double secs;

	ncl = nlisten;
	mem_read(pid, &m0);
	secs = setup(timeout_s);
	mem_read(pid, &m1);
	printf("conns=%d secs=%.2f rss0=%ld rss1=%ld anon0=%ld anon1=%ld "
	    "slab0=%ld slab1=%ld cpu=%.2f errors=%ld unexpected=%ld\n", ncl,
	    secs, m0.rss, m1.rss, m0.anon, m1.anon, m0.slab, m1.slab,
	    m1.cpu - m0.cpu, errs, unexpected);
	return errs || unexpected ? 1 : 0;
}

static int
cmd_rtt(long pid, double rate, double secs, int timeout_s)
{
	double cpu0 = 0, cpu1 = 0;
	uint64_t t0, t, period, end, *lat, *lag, maxlag = 0;
	long k = 0, n = 0, ninviters, i;
	double setup_s;

	ninv_total = (long)(rate * secs + 0.5);
	if (ninv_total < 1)
		errx(EX_USAGE_, "no invitations at that rate and time");
	ninviters = (ninv_total + SESS_USE - 1) / SESS_USE;
	ncl = nlisten + ninviters;
	if (ncl / PER_SRC > 250)
		errx(EX_USAGE_, "too many connections for 127.0.0.2-252");
	if ((cl = reallocarray(cl, ncl, sizeof(*cl))) == NULL ||
	    (inv = calloc(ninv_total, sizeof(*inv))) == NULL ||
	    (lag = calloc(ninv_total, sizeof(*lag))) == NULL)
		err(EX_SYSTEM, "calloc");
	memset(cl, 0, ncl * sizeof(*cl));
	for (i = nlisten; i < ncl; i++)
		cl[i].inviter = 1;
	setup_s = setup(timeout_s);

	if (pid != 0)
		cpu0 = proc_cpu(pid);
	period = (uint64_t)(1e9 / rate);
	t0 = now_ns() + 10000000;
	while (k < ninv_total) {
		t = now_ns();
		while (k < ninv_total && t0 + k * period <= t) {
			uint32_t l = xorshift() % nlisten;
			char id[ID_HEX + 1];

			snprintf(id, sizeof(id), "%s%016lx", prefix, k);
			inv[k].listener = l;
			t = now_ns();
			lag[k] = t - (t0 + k * period);
			if (lag[k] > maxlag)
				maxlag = lag[k];
			inv[k].sent = t;
			say(nlisten + k % ninviters,
			    "INVITE peer%u %s %s 127.0.0.1:1", l, id, token);
			k++;
		}
		if (k < ninv_total)
			poll_once((int64_t)(t0 + k * period) - (int64_t)now_ns());
	}
	end = now_ns() + 2000000000ull;
	while (answered < ninv_total && now_ns() < end)
		poll_once(end - now_ns());

	if (pid != 0)
		cpu1 = proc_cpu(pid);
	if ((lat = calloc(ninv_total, sizeof(*lat))) == NULL)
		err(EX_SYSTEM, "calloc");
	for (i = 0; i < ninv_total; i++)
		if (inv[i].rtt != 0)
			lat[n++] = inv[i].rtt;
	qsort(lat, n, sizeof(*lat), cmp_u64);
	qsort(lag, ninv_total, sizeof(*lag), cmp_u64);
	printf("listeners=%d inviters=%ld setup=%.2f sent=%ld answered=%ld "
	    "lost=%ld errors=%ld unexpected=%ld dups=%ld rate=%.0f "
	    "p50=%.1f p90=%.1f p99=%.1f p999=%.1f max=%.1f "
	    "lag_p99=%.1f lag_max=%.1f cpu=%.2f\n", nlisten, ninviters, setup_s,
	    ninv_total, answered, ninv_total - answered, errs, unexpected, dups,
	    ninv_total < 2 ? rate : (ninv_total - 1) /
	    ((inv[ninv_total - 1].sent - inv[0].sent) / 1e9), pct(lat, n, .5), pct(lat, n, .9), pct(lat, n, .99),
	    pct(lat, n, .999), n ? lat[n - 1] / 1e3 : 0, pct(lag, ninv_total,
	    .99), maxlag / 1e3, cpu1 - cpu0);
	free(lat);
	free(lag);
	return answered == ninv_total && !errs && !unexpected && !dups ? 0 : 1;
}

int
main(int argc, char *argv[])
{
	const char *mode, *e;
	long pid = 0;
	double rate = 0, secs = 0;
	int ch, timeout_s = 120;

	if (argc < 2)
		usage();
	mode = argv[1];
	if (strcmp(mode, "port") == 0)
		return cmd_port();
	if (strcmp(mode, "hold") != 0 && strcmp(mode, "rtt") != 0)
		usage();
	optind = 2;
	dst.sin_family = 0;
	while ((ch = getopt(argc, argv, "en:p:r:s:T:t:")) != -1) {
		switch (ch) {
		case 'e':
			echo_mode = 1;
			break;
		case 'n':
			nlisten = strtonum(optarg, 1, 4000000, &e);
			if (e != NULL)
				errx(EX_USAGE_, "bad -n: %s", optarg);
			break;
		case 'p':
			pid = strtonum(optarg, 1, 1L << 30, &e);
			if (e != NULL)
				errx(EX_USAGE_, "bad -p: %s", optarg);
			break;
		case 'r':
			rate = atof(optarg);
			break;
		case 's':
			dst_parse(optarg);
			break;
		case 'T':
			timeout_s = strtonum(optarg, 1, 3600, &e);
			if (e != NULL)
				errx(EX_USAGE_, "bad -T: %s", optarg);
			break;
		case 't':
			secs = atof(optarg);
			break;
		default:
			usage();
		}
	}
	if (optind != argc || nlisten == 0 || dst.sin_family == 0)
		usage();
	if (nlisten / PER_SRC > 250)
		errx(EX_USAGE_, "too many connections for 127.0.0.2-252");
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_TIMERSLACK, 1UL);
	hex_random(prefix, 8);
	hex_random(token, 16);
	rng ^= ((uint64_t)arc4random() << 32) | arc4random();
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		err(EX_SYSTEM, "epoll_create1");
	if (strcmp(mode, "hold") == 0) {
		if (pid == 0)
			usage();
		fd_limit(nlisten + 64L);
		if ((cl = calloc(nlisten, sizeof(*cl))) == NULL)
			err(EX_SYSTEM, "calloc");
		return cmd_hold(pid, timeout_s);
	}
	if (rate <= 0 || secs <= 0)
		usage();
	fd_limit(nlisten + (long)(rate * secs) / SESS_USE + 64L);
	return cmd_rtt(pid, rate, secs, timeout_s);
}
