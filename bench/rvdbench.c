/*
 * rvdbench: the load client of bench/rvd. One thread, one epoll loop.
 *
 *   rvdbench port
 *	print a free TCP port on 127.0.0.1
 *   rvdbench hold [-e] [-T SECS] -s ADDR:PORT -n CONNS -p PID
 *	open CONNS connections, log each on (LISTEN peerN, wait for WELCOME),
 *	then print the server's memory before and after and the CPU time it
 *	spent, from /proc/PID
 *   rvdbench rtt [-e] [-T SECS] [-p PID] [-m PORT] [-S ADDR:PORT] [-k SECRET]
 *	[-P PERSRC] [-l RATE] -s ADDR:PORT -n LISTENERS -r RATE -t SECS
 *	log on LISTENERS listeners and enough inviters (LOGON), then send
 *	INVITEs at RATE a second, paced (open loop), to random listeners;
 *	each listener answers its INVITE with MSG id CAND 127.0.0.1:1, and
 *	the round trip ends when the inviter receives that MSG; with -p, the
 *	server's CPU time over the invitations is printed too; with -S, the
 *	inviters log on to that server instead (another rvd front end: the
 *	round trip crosses Redis); with -m PORT, the used_memory of the Redis
 *	on 127.0.0.1:PORT is printed before and after the log-ons (bytes)
 *   rvdbench hostile -s ADDR:PORT -H CONNS -n LISTENERS -k SECRET
 *	[-a ACCOUNTS] [-C RATE] [-F RATE] [-P PERSRC] [-d FD] [-T SECS]
 *	the attacker of bench/rvd --hostile: keeps CONNS connections to rvd,
 *	each of one kind (shares in kshare below), and opens a connection
 *	again whenever rvd closes it, as an attacker would:
 *	  idle     connects and never sends a byte (slowloris)
 *	  partial  sends the start of a log-on line and stalls
 *	  long     sends a line longer than rvd takes
 *	  garbage  sends lines that are not the protocol
 *	  wrong    LISTEN peerK, K < 10 (real listeners), with a wrong secret
 *	  flood    logs on as hK, K < ACCOUNTS (-a, default 10: the accounts
 *	           the attacker holds; the users file must give them SECRET),
 *	           and sends INVITE and RELAY to real listeners (peer0 to
 *	           peerLISTENERS-1), INVITE to names nobody holds, and MSG for
 *	           sessions that do not exist
 *	  churn    logs on as hK likewise, and at WELCOME says QUIT
 *	Opening (new and again) is paced at RATE a second (-C, default 2000),
 *	H_INFLIGHT connects at most in flight; flood lines at RATE a second in
 *	all (-F, default 10000), spread over the flood connections. They come
 *	from 127.1.0.1, 127.1.0.2, ..., PERSRC each (-P, default H_PER_SRC),
 *	so that rvd's per-source cap (100) lets them in and what is measured
 *	is rvd holding them. With -d, a newline is written to FD once every
 *	connection has been opened once (or after 30 s). Runs until SIGTERM or
 *	SIGINT, or -T SECS (default 600), then prints counts and the
 *	connections held open (as this end sees them) averaged over the run.
 *
 * For bench/rvd --hostile, rtt also takes: -k SECRET, the secret every
 * log-on gives (rvd -u: its users file holds peerN, benchN and probeN);
 * -P PERSRC, connections per source address instead of PER_SRC (rvd's -c
 * must allow them); -l RATE, log-on probes: RATE fresh connections a second
 * during the invitations, from 127.0.0.253, each LOGON probeN, timed from
 * connect to WELCOME and closed (logon_p50=...). An INVITE or RELAY that is
 * no invitation of ours (an attacker's, sent to our listeners) is answered
 * MSG id FAIL, as rvlisten answers one it will not dial, and counted
 * (foreign=N), so that rvd does not drop the listener as not answering;
 * and with -k a connection rvd closes is counted (dropped=N), not fatal:
 * what is sent on it after is lost. With -p, rvd's open descriptors are
 * counted at the start and the end of the invitations (fds0=, fds1=), and
 * the seconds it spent over them runnable but waiting for a CPU are printed
 * (runqueue=, from schedstat: the share of a round trip that is the
 * machine's other work).
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
#include <dirent.h>
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
#define PROBE_BIT 0x80000000u	/* in epoll data: a log-on probe's index */
#define H_INFLIGHT 512		/* hostile: connects in flight at once */
#define H_PER_SRC 50		/* hostile: connections per source address */
#define WRONG_NAMES 10		/* hostile: wrong secrets for peer0..peer9 */
#define FLOOD_BATCH 16		/* hostile: flood lines in one send */

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
static struct sockaddr_in dst, dst2;	/* listeners' server, inviters' */
static struct inv *inv;
static long ninv_total;
static char prefix[17], token[ID_HEX + 1];
static long answered, dups, errs, unexpected;
static uint64_t rng = 88172645463325252ull;
static int per_src = PER_SRC;
static const char *secret;		/* -k: every log-on gives it */
static long foreign;			/* attackers' INVITEs and RELAYs */
static long dropped;			/* -k: connections rvd closed */

/* -l: log-on probes, each a fresh connection timed to its WELCOME. */
struct probe {
	int fd;
	uint64_t t0, rtt;	/* ns; rtt 0 until welcomed */
};
static struct probe *probes;
static long nprobe, probes_open, probe_errs;

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

/* Under attack (bench/rvd --hostile, -k), rvd closed connection i. */
static void
drop(int i)
{
	if (dropped++ < 5)
		warnx("connection %d closed by rvd", i);
	close(cl[i].fd);
	cl[i].fd = -1;
}

/* Write one line to connection i; a socket too full for it is an error. */
static void
say(int i, const char *fmt, ...)
{
	char buf[LINE_MAX_ + 2];
	va_list ap;
	int n;

	if (cl[i].fd == -1)
		return;		/* dropped by rvd (-k) */
	va_start(ap, fmt);
	n = vsnprintf(buf, LINE_MAX_ + 1, fmt, ap);
	va_end(ap);
	buf[n++] = '\n';
	if (send(cl[i].fd, buf, n, MSG_NOSIGNAL) == n)
		return;
	if (secret == NULL || errno == EAGAIN)
		err(EX_SYSTEM, "send on connection %d", i);
	drop(i);
}

static void
hello(int i)
{
	const char *sp = secret ? " " : "", *sv = secret ? secret : "";

	if (cl[i].inviter)
		say(i, "LOGON bench%d%s%s", i - nlisten, sp, sv);
	else
		say(i, "LISTEN peer%d%s%s", i, sp, sv);
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
		if (word(line, 2, id, sizeof(id)) == -1)
			return complain(&unexpected, "unexpected", i, line);
		if ((k = id_index(id)) == -1 && !echo_mode) {
			/* Not ours: refuse it as a listener would. */
			foreign++;
			say(i, "MSG %s FAIL", id);
			return;
		}
		if (k == -1)
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
	else if (strncmp(line, "RELAY ", 6) == 0 && !echo_mode)
		foreign++;
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
		if (secret != NULL && (r == 0 || (r == -1 &&
		    errno != EAGAIN && errno != EINTR))) {
			drop(i);
			return;
		}
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

/*
 * A non-blocking connection from source address src (host order) to to,
 * in the epoll set with data; its fd, or -1 if the connect failed at once.
 * IP_BIND_ADDRESS_NO_PORT, so that ephemeral ports last.
 */
static int
tcp_open(uint32_t src, const struct sockaddr_in *to, uint32_t data)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int fd, one = 1;

	sa.sin_addr.s_addr = htonl(src);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		err(EX_SYSTEM, "socket");
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1)
		err(EX_SYSTEM, "bind %s", inet_ntoa(sa.sin_addr));
	if (connect(fd, (const struct sockaddr *)to, sizeof(*to)) == -1 &&
	    errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &(struct epoll_event){
	    .events = EPOLLOUT, .data.u32 = data }) == -1)
		err(EX_SYSTEM, "epoll_ctl");
	return fd;
}

/* The end of log-on probe k: welcomed (ok), or refused or failed. */
static void
probe_done(long k, int ok)
{
	struct probe *p = &probes[k];

	if (ok) {
		p->rtt = now_ns() - p->t0;
		if (p->rtt == 0)
			p->rtt = 1;
	} else
		probe_errs++;
	close(p->fd);
	p->fd = -1;
	probes_open--;
}

static void
probe_event(long k, uint32_t events)
{
	struct probe *p = &probes[k];
	char buf[BUFSZ], line[64];
	socklen_t len = sizeof(int);
	int soerr, n;
	ssize_t r;

	if (p->fd == -1)
		return;
	if (events & EPOLLOUT) {
		if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1 ||
		    soerr != 0)
			return probe_done(k, 0);
		n = snprintf(line, sizeof(line), "LOGON probe%ld%s%s\n", k,
		    secret ? " " : "", secret ? secret : "");
		if (send(p->fd, line, n, MSG_NOSIGNAL) != n)
			return probe_done(k, 0);
		epoll_ctl(ep, EPOLL_CTL_MOD, p->fd, &(struct epoll_event){
		    .events = EPOLLIN, .data.u32 = PROBE_BIT | k });
		return;
	}
	/* rvd's first line is one short write: WELCOME, or ERR. */
	if ((r = read(p->fd, buf, sizeof(buf) - 1)) == -1 &&
	    (errno == EAGAIN || errno == EINTR))
		return;
	probe_done(k, r > 8 && strncmp(buf, "WELCOME ", 8) == 0);
}

static void
probe_open(long k)
{
	struct probe *p = &probes[k];

	p->t0 = now_ns();
	probes_open++;
	if ((p->fd = tcp_open(0x7f0000fdu, dst2.sin_family ? &dst2 : &dst,
	    PROBE_BIT | k)) == -1) {
		probe_errs++;
		probes_open--;
	}
}

static void
on_event(struct epoll_event *e)
{
	int i = e->data.u32, soerr;
	socklen_t len = sizeof(soerr);

	if (e->data.u32 & PROBE_BIT) {
		probe_event(e->data.u32 & ~PROBE_BIT, e->events);
		return;
	}
	if (cl[i].fd == -1)
		return;		/* dropped earlier in this batch */
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
	cl[i].fd = tcp_open(0x7f000002u + i / per_src, cl[i].inviter &&
	    dst2.sin_family ? &dst2 : &dst, i);
	if (cl[i].fd == -1)
		err(EX_SYSTEM, "connect %d", i);
	cl[i].state = C_CONNECTING;
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
dst_parse(const char *s, struct sockaddr_in *d)
{
	struct addr a;

	if (addr_numeric(s, &a) == -1 || a.ss.ss_family != AF_INET)
		errx(EX_USAGE_, "bad server address: %s", s);
	memcpy(d, &a.ss, sizeof(*d));
	if ((ntohl(d->sin_addr.s_addr) >> 24) != 127)
		errx(EX_USAGE_, "loopback only: %s", s);
}

/* Redis's used_memory (bytes), asked on 127.0.0.1:port with INFO; -1. */
static long
redis_memory(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	char buf[16384], *p;
	size_t n = 0;
	ssize_t r;
	int fd;

	if (port == 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons(port);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&a, sizeof(a)) == -1 ||
	    write(fd, "INFO memory\r\n", 13) != 13)
		err(EX_SYSTEM, "redis on port %d", port);
	/* The reply is one bulk string; used_memory comes early in it. */
	while (n < sizeof(buf) - 1 && (r = read(fd, buf + n,
	    sizeof(buf) - 1 - n)) > 0) {
		n += r;
		buf[n] = '\0';
		if ((p = strstr(buf, "used_memory:")) != NULL &&
		    strchr(p, '\n') != NULL)
			break;
	}
	close(fd);
	buf[n] = '\0';
	if ((p = strstr(buf, "used_memory:")) == NULL)
		errx(EX_SYSTEM, "redis on port %d: no used_memory", port);
	return strtol(p + 12, NULL, 10);
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

/* Seconds pid has waited for a CPU while runnable (schedstat), or 0. */
static double
proc_wait(long pid)
{
	unsigned long long run, wait;
	char p[64];
	FILE *f;
	int n;

	snprintf(p, sizeof(p), "/proc/%ld/schedstat", pid);
	if ((f = fopen(p, "r")) == NULL)
		return 0;
	n = fscanf(f, "%llu %llu", &run, &wait);
	fclose(f);
	return n == 2 ? wait / 1e9 : 0;
}

/* How many descriptors pid has open. */
static long
proc_fds(long pid)
{
	char p[64];
	struct dirent *d;
	long n = 0;
	DIR *dir;

	snprintf(p, sizeof(p), "/proc/%ld/fd", pid);
	if ((dir = opendir(p)) == NULL)
		err(EX_SYSTEM, "%s", p);
	while ((d = readdir(dir)) != NULL)
		n += d->d_name[0] != '.';
	closedir(dir);
	return n;
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

enum { K_IDLE, K_PARTIAL, K_LONG, K_GARBAGE, K_WRONG, K_FLOOD, K_CHURN, K_N };
static const char *kname[K_N] = {
	"idle", "partial", "long", "garbage", "wrong", "flood", "churn"
};
static const int kshare[K_N] = { 30, 15, 5, 5, 10, 15, 20 };	/* % */

enum { S_QUEUED, S_CONNECTING, S_HELLO, S_ON };

struct h {
	int fd;
	uint8_t kind, state;
};

static struct h *hs;
static int nh, accounts = 10;
static int *queue, qhead, qlen;		/* slots waiting to be opened */
static int inflight, held;
static volatile sig_atomic_t stop;
static long h_count[K_N], h_opened[K_N], h_closed[K_N], h_errs[K_N];
static long h_logons, connfail, flood_lines, rx_lines, rx_bytes, stalls;

/* The kind of slot i: the shares of kshare, interleaved by i % 100. */
static int
kind_of(int i)
{
	int k, p = i % 100;

	for (k = 0; k < K_N - 1; k++)
		if ((p -= kshare[k]) < 0)
			break;
	return k;
}

static void
enqueue(int i)
{
	hs[i].state = S_QUEUED;
	queue[(qhead + qlen++) % nh] = i;
}

/* Write what an attacker of slot i's kind sends; 0, or -1 if it stalled. */
static int
send_all(int i, const char *buf, size_t n)
{
	ssize_t w = send(hs[i].fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);

	return w == (ssize_t)n ? 0 : -1;
}

static void
h_close(int i)
{
	struct h *h = &hs[i];

	if (h->state == S_CONNECTING)
		inflight--;
	else
		held--;
	if (h->fd != -1)
		close(h->fd);
	h->fd = -1;
	h_closed[h->kind]++;
	enqueue(i);
}

/* Connected: say what this kind says first. */
static void
h_hello(int i)
{
	static const char *garbage[] = {
		"GET / HTTP/1.1\r\nHost: rvd\r\n\r\n",
		"HELO rvd.example.net\n",
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n",
		"INVITE peer1 00 00 127.0.0.1:1\n",
		"LISTEN\n",
		"SSH-2.0-OpenSSH_9.6\r\n",
	};
	char buf[LINE_MAX_ + 512];
	struct h *h = &hs[i];
	int n = 0;

	switch (h->kind) {
	case K_IDLE:
		return;
	case K_PARTIAL:
		n = snprintf(buf, sizeof(buf), "LISTEN h%d ", i);
		break;
	case K_LONG:
		n = LINE_MAX_ + 200;
		memset(buf, 'A', n);
		break;
	case K_GARBAGE:
		n = snprintf(buf, sizeof(buf), "%s",
		    garbage[xorshift() % (sizeof(garbage) / sizeof(*garbage))]);
		break;
	case K_WRONG:
		n = snprintf(buf, sizeof(buf), "LISTEN peer%d wrong%08x\n",
		    (int)(xorshift() % WRONG_NAMES), (unsigned)xorshift());
		break;
	case K_FLOOD:
	case K_CHURN:
		n = snprintf(buf, sizeof(buf), "LOGON h%d %s\n", i % accounts,
		    secret);
		break;
	}
	if (send_all(i, buf, n) == -1)
		h_close(i);
}

static void
h_open(int i)
{
	struct h *h = &hs[i];

	h->state = S_CONNECTING;
	inflight++;
	h_opened[h->kind]++;
	if ((h->fd = tcp_open(0x7f010001u + i / per_src, &dst, i)) == -1) {
		connfail++;
		h_close(i);
	}
}

/* Lines from rvd: only what moves a slot on matters; the rest is counted. */
static void
h_lines(int i, const char *buf, size_t n)
{
	struct h *h = &hs[i];
	const char *p = buf, *e = buf + n, *nl;

	for (; p < e; p = nl + 1) {
		if ((nl = memchr(p, '\n', e - p)) == NULL)
			nl = e;
		rx_lines++;
		if (e - p >= 4 && memcmp(p, "ERR ", 4) == 0)
			h_errs[h->kind]++;
		if (h->state == S_HELLO && e - p >= 8 &&
		    memcmp(p, "WELCOME ", 8) == 0) {
			h->state = S_ON;
			h_logons++;
			if (h->kind == K_CHURN && send_all(i, "QUIT\n", 5) == -1) {
				h_close(i);
				return;
			}
		} else if (e - p >= 4 && memcmp(p, "PING", 4) == 0 &&
		    send_all(i, "PONG\n", 5) == -1) {
			h_close(i);
			return;
		}
	}
}

static void
h_read(int i)
{
	char buf[16384];
	ssize_t r;

	for (;;) {
		r = read(hs[i].fd, buf, sizeof(buf));
		if (r == 0 || (r == -1 && errno != EAGAIN && errno != EINTR)) {
			h_close(i);
			return;
		}
		if (r == -1)
			return;
		rx_bytes += r;
		h_lines(i, buf, r);
		if (hs[i].fd == -1 || (size_t)r < sizeof(buf))
			return;
	}
}

static void
h_event(struct epoll_event *e)
{
	int i = e->data.u32, soerr;
	socklen_t len = sizeof(soerr);
	struct h *h = &hs[i];

	if (h->fd == -1)
		return;
	if (h->state != S_CONNECTING) {
		h_read(i);
		return;
	}
	if (getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1 ||
	    soerr != 0) {
		connfail++;
		h_close(i);
		return;
	}
	inflight--;
	held++;
	h->state = h->kind == K_FLOOD || h->kind == K_CHURN ? S_HELLO : S_ON;
	epoll_ctl(ep, EPOLL_CTL_MOD, h->fd, &(struct epoll_event){
	    .events = EPOLLIN | EPOLLRDHUP, .data.u32 = i });
	h_hello(i);
}

/* One batch of flood lines on slot i, a logged-on flood connection. */
static void
flood(int i, int n)
{
	char buf[FLOOD_BATCH * 160], id[ID_HEX + 1], tok[ID_HEX + 1];
	size_t len = 0;
	unsigned r;

	while (n-- > 0) {
		snprintf(id, sizeof(id), "%016llx%016llx",
		    (unsigned long long)xorshift(), (unsigned long long)xorshift());
		snprintf(tok, sizeof(tok), "%016llx%016llx",
		    (unsigned long long)xorshift(), (unsigned long long)xorshift());
		r = xorshift() % 10;
		if (r < 4)
			len += snprintf(buf + len, sizeof(buf) - len,
			    "INVITE peer%d %s %s 127.0.0.1:1\n",
			    (int)(xorshift() % nlisten), id, tok);
		else if (r < 6)
			len += snprintf(buf + len, sizeof(buf) - len,
			    "INVITE nobody%u %s %s 127.0.0.1:1\n",
			    (unsigned)(xorshift() % 100000), id, tok);
		else if (r < 7)
			len += snprintf(buf + len, sizeof(buf) - len,
			    "RELAY peer%d %s 127.0.0.1:9\n",
			    (int)(xorshift() % nlisten), id);
		else
			len += snprintf(buf + len, sizeof(buf) - len,
			    "MSG %s CAND 127.0.0.1:1\n", id);
		flood_lines++;
	}
	/* A socket too full for a batch: rvd has stopped reading this one. */
	if (send_all(i, buf, len) == -1) {
		stalls++;
		h_close(i);
	}
}

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/*
 * hostile: keep nh attacking connections to rvd, of the kinds above, each
 * opened again when rvd closes it, until SIGTERM or SIGINT or secs; then
 * print what was done. notify, if not -1, is told once all are open.
 */
static int
cmd_hostile(double crate, double frate, int notify, long secs)
{
	struct epoll_event ev[512];
	struct rusage ru;
	double ctok = 0, ftok = 0, held_sum = 0;
	uint64_t t0, t, last, until, nsamples = 0, next_sample;
	int i, n, k, fi = 0, nflood = 0, *floods;

	sigaction(SIGTERM, &(struct sigaction){ .sa_handler = on_signal }, NULL);
	sigaction(SIGINT, &(struct sigaction){ .sa_handler = on_signal }, NULL);
	if ((hs = calloc(nh, sizeof(*hs))) == NULL ||
	    (queue = calloc(nh, sizeof(*queue))) == NULL ||
	    (floods = calloc(nh, sizeof(*floods))) == NULL)
		err(EX_SYSTEM, "calloc");
	for (i = 0; i < nh; i++) {
		hs[i].fd = -1;
		hs[i].kind = kind_of(i);
		h_count[hs[i].kind]++;
		if (hs[i].kind == K_FLOOD)
			floods[nflood++] = i;
		enqueue(i);
	}

	t0 = last = next_sample = now_ns();
	until = t0 + secs * 1000000000ull;
	while (!stop && (t = now_ns()) < until) {
		/* Pace opening and flooding by tokens, a tenth of a second's
		 * worth at most, so that a slow turn does not make a burst. */
		ctok += (t - last) / 1e9 * crate;
		ftok += (t - last) / 1e9 * frate;
		if (ctok > crate / 10 + 1)
			ctok = crate / 10 + 1;
		if (ftok > frate / 10 + FLOOD_BATCH)
			ftok = frate / 10 + FLOOD_BATCH;
		last = t;
		while (ctok >= 1 && qlen > 0 && inflight < H_INFLIGHT) {
			i = queue[qhead];
			qhead = (qhead + 1) % nh;
			qlen--;
			ctok--;
			h_open(i);
		}
		/* Every connection opened once: the load is on. */
		if (notify >= 0 && (h_opened[0] + h_opened[1] + h_opened[2] +
		    h_opened[3] + h_opened[4] + h_opened[5] + h_opened[6] >= nh ||
		    t - t0 > 30000000000ull)) {
			(void)!write(notify, "\n", 1);
			close(notify);
			notify = -1;
		}
		for (k = 0; ftok >= FLOOD_BATCH && k < nflood; k++) {
			i = floods[fi];
			fi = (fi + 1) % nflood;
			if (hs[i].fd != -1 && hs[i].state == S_ON) {
				flood(i, FLOOD_BATCH);
				ftok -= FLOOD_BATCH;
			}
		}
		if (t >= next_sample) {
			held_sum += held;
			nsamples++;
			next_sample = t + 100000000;
		}
		if ((n = epoll_wait(ep, ev, 512, 1)) == -1) {
			if (errno == EINTR)
				continue;
			err(EX_SYSTEM, "epoll_wait");
		}
		for (i = 0; i < n; i++)
			h_event(&ev[i]);
	}
	t = now_ns();
	getrusage(RUSAGE_SELF, &ru);
	printf("conns=%d secs=%.2f held_avg=%.0f held_end=%d connfail=%ld "
	    "logons=%ld flood_lines=%ld stalls=%ld rx_lines=%ld rx_bytes=%ld "
	    "cpu=%.2f", nh, (t - t0) / 1e9, nsamples ? held_sum / nsamples : 0,
	    held, connfail, h_logons, flood_lines, stalls, rx_lines, rx_bytes,
	    ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	    (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	for (k = 0; k < K_N; k++)
		printf(" %s=%ld %s_opened=%ld %s_closed=%ld %s_errs=%ld",
		    kname[k], h_count[k], kname[k], h_opened[k],
		    kname[k], h_closed[k], kname[k], h_errs[k]);
	printf("\n");
	return 0;
}

/* The number s, for option -opt, in [lo, hi]; else a usage error. */
static long long
num(const char *s, long long lo, long long hi, int opt)
{
	const char *e;
	long long v = strtonum(s, lo, hi, &e);

	if (e != NULL)
		errx(EX_USAGE_, "bad -%c: %s", opt, s);
	return v;
}

static void
usage(void)
{
	fprintf(stderr, "usage: rvdbench port\n"
	    "       rvdbench hold [-e] [-T SECS] -s ADDR:PORT -n CONNS -p PID\n"
	    "       rvdbench rtt [-e] [-T SECS] [-p PID] [-m REDISPORT] "
	    "[-S ADDR:PORT] [-k SECRET] [-P PERSRC] [-l RATE]\n"
	    "           -s ADDR:PORT -n LISTENERS -r RATE -t SECS\n"
	    "       rvdbench hostile -s ADDR:PORT -H CONNS -n LISTENERS "
	    "-k SECRET [-a ACCOUNTS]\n"
	    "           [-C RATE] [-F RATE] [-P PERSRC] [-d FD] [-T SECS]\n");
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
cmd_rtt(long pid, double rate, double secs, int timeout_s, int redis_port,
    double lrate)
{
	long rmem0, rmem1, fds0 = 0, fds1 = 0, np = 0;
	double cpu0 = 0, cpu1 = 0, wait0 = 0, wait1 = 0;
	uint64_t t0, t, period, pperiod = 0, next, end, *lat, *lag, maxlag = 0;
	long k = 0, n = 0, ninviters, i;
	double setup_s;

	ninv_total = (long)(rate * secs + 0.5);
	if (ninv_total < 1)
		errx(EX_USAGE_, "no invitations at that rate and time");
	ninviters = (ninv_total + SESS_USE - 1) / SESS_USE;
	ncl = nlisten + ninviters;
	if (ncl / per_src > 250)
		errx(EX_USAGE_, "too many connections for 127.0.0.2-252");
	if ((cl = reallocarray(cl, ncl, sizeof(*cl))) == NULL ||
	    (inv = calloc(ninv_total, sizeof(*inv))) == NULL ||
	    (lag = calloc(ninv_total, sizeof(*lag))) == NULL)
		err(EX_SYSTEM, "calloc");
	memset(cl, 0, ncl * sizeof(*cl));
	for (i = nlisten; i < ncl; i++)
		cl[i].inviter = 1;
	rmem0 = redis_memory(redis_port);
	setup_s = setup(timeout_s);
	rmem1 = redis_memory(redis_port);

	if (lrate > 0) {
		nprobe = (long)(lrate * secs + 0.5);
		pperiod = (uint64_t)(1e9 / lrate);
		if ((probes = calloc(nprobe, sizeof(*probes))) == NULL)
			err(EX_SYSTEM, "calloc");
	}
	if (pid != 0) {
		fds0 = proc_fds(pid);
		cpu0 = proc_cpu(pid);
		wait0 = proc_wait(pid);
	}
	period = (uint64_t)(1e9 / rate);
	t0 = now_ns() + 10000000;
	while (k < ninv_total) {
		t = now_ns();
		while (np < nprobe && t0 + np * pperiod <= t)
			probe_open(np++);
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
		next = t0 + k * period;
		if (np < nprobe && t0 + np * pperiod < next)
			next = t0 + np * pperiod;
		if (k < ninv_total)
			poll_once((int64_t)next - (int64_t)now_ns());
	}
	end = now_ns() + 2000000000ull;
	while ((answered < ninv_total || probes_open > 0) && now_ns() < end)
		poll_once(end - now_ns());

	if (pid != 0) {
		cpu1 = proc_cpu(pid);
		wait1 = proc_wait(pid);
		fds1 = proc_fds(pid);
	}
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
	    "lag_p99=%.1f lag_max=%.1f cpu=%.2f redis0=%ld redis1=%ld",
	    nlisten, ninviters, setup_s,
	    ninv_total, answered, ninv_total - answered, errs, unexpected, dups,
	    ninv_total < 2 ? rate : (ninv_total - 1) /
	    ((inv[ninv_total - 1].sent - inv[0].sent) / 1e9), pct(lat, n, .5), pct(lat, n, .9), pct(lat, n, .99),
	    pct(lat, n, .999), n ? lat[n - 1] / 1e3 : 0, pct(lag, ninv_total,
	    .99), maxlag / 1e3, cpu1 - cpu0, rmem0, rmem1);
	free(lat);
	free(lag);
	printf(" foreign=%ld dropped=%ld fds0=%ld fds1=%ld runqueue=%.2f", foreign,
	    dropped, fds0, fds1, wait1 - wait0);
	if (nprobe > 0) {
		if ((lat = calloc(nprobe, sizeof(*lat))) == NULL)
			err(EX_SYSTEM, "calloc");
		for (i = n = 0; i < nprobe; i++)
			if (probes[i].rtt != 0)
				lat[n++] = probes[i].rtt;
		qsort(lat, n, sizeof(*lat), cmp_u64);
		printf(" probes=%ld probes_ok=%ld probe_errs=%ld logon_p50=%.1f "
		    "logon_p99=%.1f logon_max=%.1f", nprobe, n, probe_errs,
		    pct(lat, n, .5), pct(lat, n, .99), n ? lat[n - 1] / 1e3 : 0);
		free(lat);
	}
	printf("\n");
	return answered == ninv_total && !errs && !unexpected && !dups ? 0 : 1;
}

int
main(int argc, char *argv[])
{
	const char *mode;
	long pid = 0;
	double rate = 0, secs = 0, lrate = 0, crate = 2000, frate = 10000;
	int ch, timeout_s = 0, redis_port = 0, notify = -1;

	if (argc < 2)
		usage();
	mode = argv[1];
	if (strcmp(mode, "port") == 0)
		return cmd_port();
	if (strcmp(mode, "hold") != 0 && strcmp(mode, "rtt") != 0 &&
	    strcmp(mode, "hostile") != 0)
		usage();
	optind = 2;
	dst.sin_family = 0;
	while ((ch = getopt(argc, argv,
	    "a:C:d:eF:H:k:l:m:n:P:p:r:S:s:T:t:")) != -1) {
		switch (ch) {
		case 'a':
			accounts = num(optarg, 1, 1 << 20, 'a');
			break;
		case 'C':
			crate = atof(optarg);
			break;
		case 'd':
			notify = num(optarg, 0, 1 << 20, 'd');
			break;
		case 'F':
			frate = atof(optarg);
			break;
		case 'H':
			nh = num(optarg, 1, 1 << 20, 'H');
			break;
		case 'k':
			secret = optarg;
			break;
		case 'l':
			lrate = atof(optarg);
			break;
		case 'P':
			per_src = num(optarg, 1, 65536, 'P');
			break;
		case 'e':
			echo_mode = 1;
			break;
		case 'n':
			nlisten = num(optarg, 1, 4000000, 'n');
			break;
		case 'p':
			pid = num(optarg, 1, 1L << 30, 'p');
			break;
		case 'r':
			rate = atof(optarg);
			break;
		case 'm':
			redis_port = num(optarg, 1, 65535, 'm');
			break;
		case 's':
			dst_parse(optarg, &dst);
			break;
		case 'S':
			dst_parse(optarg, &dst2);
			break;
		case 'T':
			timeout_s = num(optarg, 1, 3600, 'T');
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
	if (strcmp(mode, "hostile") == 0) {
		if (nh == 0 || secret == NULL || crate <= 0 || frate < 0)
			usage();
		if (per_src == PER_SRC)
			per_src = H_PER_SRC;
		if (nh / per_src > 65000)
			errx(EX_USAGE_, "too many connections for 127.1.0.0/16");
	}
	if (nlisten / per_src > 250)
		errx(EX_USAGE_, "too many connections for 127.0.0.2-252");
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_TIMERSLACK, 1UL);
	hex_random(prefix, 8);
	hex_random(token, 16);
	rng ^= ((uint64_t)arc4random() << 32) | arc4random();
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		err(EX_SYSTEM, "epoll_create1");
	if (strcmp(mode, "hostile") == 0) {
		fd_limit(nh + 64L);
		return cmd_hostile(crate, frate, notify,
		    timeout_s ? timeout_s : 600);
	}
	if (timeout_s == 0)
		timeout_s = 120;
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
	return cmd_rtt(pid, rate, secs, timeout_s, redis_port, lrate);
}
