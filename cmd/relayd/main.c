/*
 * relayd: hand out relay session ids, pair two connections by id and splice
 * them together. One process, one epoll loop, no thread per session: the data
 * path is splice(2) socket -> pipe -> socket, so no byte is copied to user space.
 * A direction holds a pipe only while its bytes are in flight, taken from a
 * small pool: an idle session costs its two sockets and nothing more.
 */
#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

#define FIRSTLINE_MS	5000	/* a client must send its line within this */
#define ACCEPT_BURST	64	/* accepts per wakeup, so a flood cannot hog the loop */
#define READ_BUDGET	8	/* pipe loads per direction per wakeup, for fairness */
#define SPLICE_MAX	(1 << 20)	/* per splice call; the pipe's room limits it */
#define FDS_PER_SESS	2	/* two sockets; pipes are reserved apart */
#define FDS_SPARE	16	/* stdio, listener, epoll, signalfd, slack */
#define PAUSE_MS	250	/* how long to stop accepting when out of fds */
#define PIPES_MAX	256	/* pipes open at once, in use or spare */
#define POOL_MAX	64	/* spare pipes kept for the next direction */
#define POOL_TRIM_MS	500	/* spares unused this long are closed */
#define PIPE_SIZE	(256 << 10)	/* ~20% faster than the default 64 KiB */
#define SRC_SHARE	16	/* one address holds this fraction of the table, unjoined */
#define SRC_MIN		8	/* ...or this many, for small tables (a fifth at most) */
#define SESS_ID_BYTES	(ID_HEX / 2)

/* What an epoll event points at; the first byte of every such object. */
enum kind { K_LISTEN, K_SIGNAL, K_PEND, K_END, K_DEAD };

/* A connection that has not sent its first line yet. */
struct pend {
	uint8_t kind;
	int fd;
	long t0;
	TAILQ_ENTRY(pend) link;	/* pending list, in accept order */
};

/* One side of a session: its socket and what epoll has told us of it. */
struct end {
	uint8_t kind;
	uint8_t side;		/* index into sess.end, to find the session */
	bool rd;		/* may be readable (edge seen, no EAGAIN since) */
	bool wr;		/* may be writable */
	bool eof;		/* read side has ended */
	bool done;		/* eof passed on: the other side was shut for writing */
	bool pwait;		/* on pwaitq: has bytes to move but no pipe */
	int fd;
	TAILQ_ENTRY(end) plink;	/* pwaitq */
};

/* The unjoined sessions of one source address (of an IPv6 one, its /64). */
struct src {
	uint8_t key[16];
	int n;
	bool told;		/* its cap was logged: once while it lasts */
	struct src *next;	/* hash chain */
};

/* A session: unjoined (waiting for JOIN) or paired (splicing). */
struct sess {
	struct end end[2];	/* 0: the NEW side, 1: the JOIN side */
	int pipe[2][2];		/* pipe[d] carries end[d]'s bytes to end[!d], or -1 */
	uint32_t inpipe[2];	/* bytes sitting in pipe[d] */
	uint64_t bytes[2];	/* bytes delivered from end[d] to end[!d] */
	long t0;		/* creation, then pairing time (ms) */
	bool paired;
	struct src *src;	/* while unjoined: its NEW side's address */
	struct sess *hnext;	/* hash chain */
	TAILQ_ENTRY(sess) link;	/* waiting list (unjoined) or graveyard */
	char id[ID_HEX + 1];
};

TAILQ_HEAD(pendq, pend);
TAILQ_HEAD(sessq, sess);
TAILQ_HEAD(endq, end);

static struct pendq pending = TAILQ_HEAD_INITIALIZER(pending);
static struct pendq pendgrave = TAILQ_HEAD_INITIALIZER(pendgrave);
static struct sessq waiting = TAILQ_HEAD_INITIALIZER(waiting);
static struct sessq sessgrave = TAILQ_HEAD_INITIALIZER(sessgrave);
static struct endq pwaitq = TAILQ_HEAD_INITIALIZER(pwaitq);	/* by age */

static struct sess **htab;	/* sessions by id, unjoined and paired */
static size_t hmask;
static struct src **stab;	/* sources of unjoined sessions, by address */
static size_t smask;
static uint32_t ssalt;		/* so that no one can aim at a hash chain */

static int pool[POOL_MAX][2];	/* spare pipes, empty */
static int npool, pool_low;	/* spares now; fewest since the last trim */
static long pool_trim_at;
static int npipes;		/* pipes open, in use or spare */
static int pipes_max = PIPES_MAX;
static int npwait;
static bool pipe_failed_told;

static int ep = -1, lfd = -1, sfd = -1;
static uint8_t klisten = K_LISTEN, ksignal = K_SIGNAL;
static int npend, nsess, npaired;
static int maxsess = 10000;
static int pend_max = 1024;	/* connections that have not sent their line yet */
static int src_max = SRC_MIN;	/* unjoined sessions per source address (/64) */
static long expire_ms = 30000;
static long accept_resume;	/* when accepting was paused, when to resume */
static bool accept_paused_told;
static bool stopping;

/* Print the usage line and exit 100 (0 for -h), as every tool does. */
static void
usage(void)
{
	usage_exit("usage: relayd [-hVv] [-d FD] [-n MAXSESSIONS] "
	    "[-e SECONDS] [-U USER] [ADDR:]PORT\n");
}

/* Register obj for fd with epoll; op is ADD or MOD. */
static int
ep_set(int op, int fd, uint32_t events, void *obj)
{
	struct epoll_event ev = { .events = events, .data.ptr = obj };

	return epoll_ctl(ep, op, fd, &ev);
}

/* Write a short reply; a fresh or idle socket always has room for it. */
static void
reply(int fd, const char *line)
{
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "%s\n", line);

	(void)send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Send "ERR why" and close; unread input is discarded first, else close()
 * would send RST and the client might never see the error line. */
static void
refuse(int fd, const char *why)
{
	char line[64];

	(void)recv(fd, NULL, 1 << 16, MSG_TRUNC | MSG_DONTWAIT);
	snprintf(line, sizeof(line), "ERR %s", why);
	reply(fd, line);
	close(fd);
}

/* Hash an id by its first hex digits: ids are random, so that suffices. */
static size_t
hash(const char *id)
{
	size_t h = 0;
	int i;

	for (i = 0; i < 12; i++)
		h = h << 4 | (size_t)(id[i] <= '9' ? id[i] - '0' : id[i] - 'a' + 10);
	return h & hmask;
}

/* Find a session, unjoined or paired, by its id. */
static struct sess *
sess_find(const char *id)
{
	struct sess *s;

	for (s = htab[hash(id)]; s != NULL; s = s->hnext)
		if (memcmp(s->id, id, ID_HEX) == 0)
			return s;
	return NULL;
}

/* Take a session out of the id table, so later JOINs find nothing. */
static void
sess_unhash(struct sess *s)
{
	struct sess **p;

	for (p = &htab[hash(s->id)]; *p != NULL; p = &(*p)->hnext)
		if (*p == s) {
			*p = s->hnext;
			return;
		}
}

/* The session that an end belongs to. */
static struct sess *
sess_of(struct end *e)
{
	return (struct sess *)((char *)(e - e->side) - offsetof(struct sess, end));
}

/* The key of fd's peer address: an IPv4 one as IPv4-mapped IPv6, so that
 * both listeners agree, and an IPv6 one cut to its /64, since a host is
 * given a whole /64 and would otherwise count as 2^64 sources. */
static void
src_key(int fd, uint8_t key[16])
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

	memset(key, 0, 16);
	if (getpeername(fd, (struct sockaddr *)&ss, &len) == -1)
		return;
	if (ss.ss_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
	} else if (ss.ss_family == AF_INET6)
		memcpy(key, &s6->sin6_addr,
		    IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) ? 16 : 8);
}

/* Count one more unjoined session from fd's address; NULL if out of memory. */
static struct src *
src_get(int fd)
{
	uint8_t key[16];
	uint32_t h = ssalt;
	struct src *sr;
	int i;

	src_key(fd, key);
	for (i = 0; i < 16; i++)	/* FNV-1a */
		h = (h ^ key[i]) * 16777619u;
	for (sr = stab[h & smask]; sr != NULL; sr = sr->next)
		if (memcmp(sr->key, key, 16) == 0)
			break;
	if (sr == NULL) {
		if ((sr = calloc(1, sizeof(*sr))) == NULL)
			return NULL;
		memcpy(sr->key, key, 16);
		sr->next = stab[h & smask];
		stab[h & smask] = sr;
	}
	sr->n++;
	return sr;
}

/* Count one fewer; forget an address with no unjoined session left. */
static void
src_put(struct src *sr)
{
	struct src **p;
	uint32_t h = ssalt;
	int i;

	if (--sr->n > 0)
		return;
	for (i = 0; i < 16; i++)
		h = (h ^ sr->key[i]) * 16777619u;
	for (p = &stab[h & smask]; *p != sr; p = &(*p)->next)
		;
	*p = sr->next;
	free(sr);
}

/* Give direction d of s a pipe: a spare one, or a new one, made big if the
 * kernel lets us (past fs.pipe-user-pages-soft it does not; the default
 * size works too). -1 when PIPES_MAX are open or none can be made. */
static int
pipe_get(struct sess *s, int d)
{
	int *p = s->pipe[d];

	if (npool > 0) {
		npool--;
		p[0] = pool[npool][0];
		p[1] = pool[npool][1];
		pool_low = npool < pool_low ? npool : pool_low;
		return 0;
	}
	if (npipes >= pipes_max)
		return -1;
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) == -1) {
		if (!pipe_failed_told)
			logline("pipe: %s; directions wait", strerror(errno));
		pipe_failed_told = true;
		p[0] = p[1] = -1;
		return -1;
	}
	pipe_failed_told = false;
	(void)fcntl(p[1], F_SETPIPE_SZ, PIPE_SIZE);
	npipes++;
	return 0;
}

/* Take direction d's pipe back: to the pool if it is empty and there is
 * room, else closed (one that still holds bytes is of no use to anyone). */
static void
pipe_put(struct sess *s, int d)
{
	int *p = s->pipe[d];

	if (p[0] == -1)
		return;
	if (s->inpipe[d] == 0 && npool < POOL_MAX) {
		pool[npool][0] = p[0];
		pool[npool][1] = p[1];
		npool++;
	} else {
		close(p[0]);
		close(p[1]);
		npipes--;
	}
	p[0] = p[1] = -1;
	s->inpipe[d] = 0;
}

/* Close the spares that nobody took since the last trim, so that a relay
 * gone quiet gives its pipes back. */
static void
pool_trim(long now)
{
	if (now < pool_trim_at)
		return;
	while (pool_low > 0 && npool > 0) {
		npool--;
		pool_low--;
		close(pool[npool][0]);
		close(pool[npool][1]);
		npipes--;
	}
	pool_low = npool;
	pool_trim_at = now + POOL_TRIM_MS;
}

/* Queue e's direction until a pipe is free: its socket stays readable, and
 * epoll, edge-triggered, will not say so again. */
static void
pipe_wait(struct end *e)
{
	if (e->pwait)
		return;
	e->pwait = true;
	TAILQ_INSERT_TAIL(&pwaitq, e, plink);
	npwait++;
}

/* Take e off the queue of directions waiting for a pipe, if it is on it. */
static void
pipe_unwait(struct end *e)
{
	if (!e->pwait)
		return;
	e->pwait = false;
	TAILQ_REMOVE(&pwaitq, e, plink);
	npwait--;
}

/* Close a session's fds and bury it; freed after this batch of events,
 * since a later event in the same batch may still point at it. */
static void
sess_bury(struct sess *s)
{
	int d;

	for (d = 0; d < 2; d++) {
		if (s->end[d].fd != -1)
			close(s->end[d].fd);
		pipe_put(s, d);
		pipe_unwait(&s->end[d]);
		s->end[d].kind = K_DEAD;
	}
	sess_unhash(s);
	if (s->paired)
		npaired--;
	else {
		TAILQ_REMOVE(&waiting, s, link);
		src_put(s->src);
	}
	nsess--;
	TAILQ_INSERT_TAIL(&sessgrave, s, link);
}

/* End an unjoined session, telling the NEW side why. */
static void
sess_drop(struct sess *s, const char *why)
{
	logline("session %s dropped: %s", s->id, why);
	if (s->end[0].fd != -1) {
		refuse(s->end[0].fd, why);
		s->end[0].fd = -1;
	}
	sess_bury(s);
}

/* End a paired session and log what it carried; err is 0 for a clean end. */
static void
sess_close(struct sess *s, int err)
{
	logline("session %s closed: %llu bytes new->join, %llu bytes join->new, "
	    "%.1f s%s%s", s->id, (unsigned long long)s->bytes[0],
	    (unsigned long long)s->bytes[1], (now_ms() - s->t0) / 1000.0,
	    err ? ", " : "", err ? strerror(err) : "");
	sess_bury(s);
}

/* Free what was buried during the last batch of events. */
static void
grave_empty(void)
{
	struct pend *p;
	struct sess *s;

	while ((p = TAILQ_FIRST(&pendgrave)) != NULL) {
		TAILQ_REMOVE(&pendgrave, p, link);
		free(p);
	}
	while ((s = TAILQ_FIRST(&sessgrave)) != NULL) {
		TAILQ_REMOVE(&sessgrave, s, link);
		free(s);
	}
}

/* Forget a pending connection; fd is closed unless it was handed on (-1). */
static void
pend_bury(struct pend *p)
{
	if (p->fd != -1)
		close(p->fd);
	p->kind = K_DEAD;
	TAILQ_REMOVE(&pending, p, link);
	npend--;
	TAILQ_INSERT_TAIL(&pendgrave, p, link);
}

/* Refuse a pending connection with an error line, and log it. */
static void
pend_refuse(struct pend *p, const char *why)
{
	char a[ADDR_STR];

	logline("%s: ERR %s", fd_peername(p->fd, a, sizeof(a)), why);
	refuse(p->fd, why);
	p->fd = -1;
	pend_bury(p);
}

/* Socket options for a long-lived relayed stream. */
static void
sock_tune(int fd)
{
	int one = 1, idle = 120, intvl = 30, cnt = 4;

	/* The endpoints did their own batching; Nagle here would only add delay. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* Keepalives find peers that vanished and keep their NAT mappings open. */
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

/* Ask epoll for another event on e if it is still ready: a direction that
 * used its budget gets to go on after everyone else has had a turn. */
static void
end_rearm(struct end *e)
{
	ep_set(EPOLL_CTL_MOD, e->fd,
	    EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, e);
}

/* Move what direction d can move now: drain the pipe into the far socket,
 * refill it from the near one only once it is empty (so EAGAIN on the read
 * means "no input", never "pipe full"), and pass EOF on as a half-close.
 * The pipe is held only while bytes are in it or more are coming at once.
 * Returns -1 with errno on a socket error. */
static int
pump_dir(struct sess *s, int d)
{
	struct end *src = &s->end[d], *dst = &s->end[!d];
	int budget = READ_BUDGET;
	ssize_t n;

	for (;;) {
		if (s->inpipe[d] > 0) {
			if (!dst->wr)
				return 0;
			n = splice(s->pipe[d][0], NULL, dst->fd, NULL,
			    s->inpipe[d], SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n == -1) {
				if (errno != EAGAIN)
					return -1;
				dst->wr = false;
				return 0;
			}
			s->inpipe[d] -= n;
			s->bytes[d] += n;
			continue;
		}
		if (src->eof || !src->rd || budget-- == 0)
			break;
		if (s->pipe[d][0] == -1 && pipe_get(s, d) == -1) {
			pipe_wait(src);
			return 0;
		}
		pipe_unwait(src);
		n = splice(src->fd, NULL, s->pipe[d][1], NULL, SPLICE_MAX,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n == -1) {
			if (errno != EAGAIN)
				return -1;
			src->rd = false;
		} else if (n == 0)
			src->eof = true;
		else
			s->inpipe[d] += n;
	}
	/* Drained: another direction may have the pipe. */
	pipe_put(s, d);
	if (src->eof && !src->done) {
		(void)shutdown(dst->fd, SHUT_WR);
		src->done = true;
	} else if (!src->eof && src->rd)
		end_rearm(src);		/* the budget is spent */
	return 0;
}

/* Run both directions of a paired session; close it when both have ended. */
static void
pump(struct sess *s)
{
	if (pump_dir(s, 0) == -1 || pump_dir(s, 1) == -1)
		sess_close(s, errno);
	else if (s->end[0].done && s->end[1].done)
		sess_close(s, 0);
}

/* Let directions that waited for a pipe go on, oldest first, while there
 * are pipes to give; each is tried once per round at most, so a pipe(2)
 * that keeps failing cannot spin (a pump may also take others off). */
static void
pipe_wake(void)
{
	struct end *e;
	int n;

	for (n = npwait; n > 0 && (npool > 0 || npipes < pipes_max) &&
	    (e = TAILQ_FIRST(&pwaitq)) != NULL; n--) {
		pipe_unwait(e);
		pump(sess_of(e));
	}
}

/* Start splicing a session whose JOIN side has just arrived on fd; the
 * pipes come later, with the first bytes. */
static void
sess_pair(struct sess *s, int fd)
{
	char a[ADDR_STR];
	int d;

	s->end[1].fd = fd;
	logline("session %s joined from %s", s->id, fd_peername(fd, a, sizeof(a)));
	TAILQ_REMOVE(&waiting, s, link);
	src_put(s->src);
	s->src = NULL;
	s->paired = true;
	s->t0 = now_ms();
	npaired++;
	for (d = 0; d < 2; d++) {
		sock_tune(s->end[d].fd);
		reply(s->end[d].fd, "OK");
		s->end[d].rd = s->end[d].wr = true;
		/* Both fds are registered already, as NEW side and as pending. */
		if (ep_set(EPOLL_CTL_MOD, s->end[d].fd,
		    EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, &s->end[d]) == -1) {
			sess_close(s, errno);
			return;
		}
	}
	pump(s);
}

/* NEW: open a session, hand out its id and park the connection. One
 * address (an IPv6 /64) may hold only src_max unjoined sessions, so that a
 * flood from it leaves room for everyone else. */
static void
cmd_new(struct pend *p)
{
	char a[ADDR_STR], line[ID_HEX + 16];
	struct src *sr;
	struct sess *s;
	size_t h;

	if (nsess >= maxsess) {
		pend_refuse(p, "too many sessions");
		return;
	}
	if ((sr = src_get(p->fd)) == NULL) {
		pend_refuse(p, "relay out of resources");
		return;
	}
	if (sr->n > src_max) {
		if (!sr->told)
			logline("%s: %d unjoined sessions from this address "
			    "already", fd_peername(p->fd, a, sizeof(a)), src_max);
		sr->told = true;
		src_put(sr);
		pend_refuse(p, "too many sessions");
		return;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		src_put(sr);
		pend_refuse(p, "relay out of resources");
		return;
	}
	s->src = sr;
	do
		hex_random(s->id, SESS_ID_BYTES);
	while (sess_find(s->id) != NULL);
	s->end[0] = (struct end){ .kind = K_END, .side = 0, .fd = p->fd };
	s->end[1] = (struct end){ .kind = K_END, .side = 1, .fd = -1 };
	s->pipe[0][0] = s->pipe[0][1] = s->pipe[1][0] = s->pipe[1][1] = -1;
	s->t0 = now_ms();
	h = hash(s->id);
	s->hnext = htab[h];
	htab[h] = s;
	TAILQ_INSERT_TAIL(&waiting, s, link);
	nsess++;
	p->fd = -1;
	pend_bury(p);
	logline("session %s new from %s", s->id,
	    fd_peername(s->end[0].fd, a, sizeof(a)));
	snprintf(line, sizeof(line), "SESSION %s", s->id);
	reply(s->end[0].fd, line);
	/* Only a hang-up matters now; any early data stays queued in the
	 * socket until it can be spliced to the peer (EPOLLRDHUP: see
	 * sess_hup). */
	if (ep_set(EPOLL_CTL_MOD, s->end[0].fd, EPOLLRDHUP | EPOLLET,
	    &s->end[0]) == -1)
		sess_drop(s, "relay out of resources");
}

/* JOIN <sid>: pair this connection with the session's NEW side. */
static void
cmd_join(struct pend *p, const char *id)
{
	struct sess *s;
	int fd;

	if (strlen(id) != ID_HEX || !hex_valid(id, ID_HEX)) {
		pend_refuse(p, "bad session id");
		return;
	}
	if ((s = sess_find(id)) == NULL) {
		pend_refuse(p, "unknown session");
		return;
	}
	if (s->paired) {
		pend_refuse(p, "session already joined");
		return;
	}
	fd = p->fd;
	p->fd = -1;
	pend_bury(p);
	sess_pair(s, fd);
}

/* Act on a client's first line, n bytes without its newline: a NUL or
 * any other byte that is not printable makes it a bad command, so that
 * "NEW\0junk" is no NEW. */
static void
command(struct pend *p, char *line, size_t n)
{
	if (n > 0 && line[n - 1] == '\r')	/* be kind to nc -C */
		line[--n] = '\0';
	if (strlen(line) != n || !line_printable(line))
		pend_refuse(p, "bad command");
	else if (strcmp(line, "NEW") == 0)
		cmd_new(p);
	else if (strncmp(line, "JOIN ", 5) == 0)
		cmd_join(p, line + 5);
	else
		pend_refuse(p, "bad command");
}

/* Read a pending client's first line: peek, and consume only up to the
 * newline, so bytes sent after it stay queued for the peer. */
static void
pend_read(struct pend *p, uint32_t events)
{
	char buf[LINE_MAX_ + 1], *nl;
	ssize_t n;

	n = recv(p->fd, buf, sizeof(buf), MSG_PEEK);
	if (n == -1 && errno == EAGAIN && !(events & (EPOLLERR | EPOLLHUP)))
		return;
	if (n <= 0) {
		vlog("%s: closed before its first line",
		    fd_peername(p->fd, buf, sizeof(buf)));
		pend_bury(p);
		return;
	}
	if ((nl = memchr(buf, '\n', n)) == NULL) {
		if (n == (ssize_t)sizeof(buf))
			pend_refuse(p, "line too long");
		else if (events & (EPOLLRDHUP | EPOLLHUP))
			pend_refuse(p, "bad command");
		return;
	}
	if (recv(p->fd, buf, nl - buf + 1, 0) != nl - buf + 1) {
		pend_bury(p);
		return;
	}
	*nl = '\0';
	command(p, buf, nl - buf);
}

/* Take a new connection; when too many have yet to speak, drop the oldest,
 * so an idle flood costs newcomers at most a retry, never the live sessions. */
static void
pend_add(int fd)
{
	struct pend *p;

	if (npend >= pend_max)
		pend_refuse(TAILQ_FIRST(&pending), "too many connections");
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		close(fd);
		return;
	}
	p->kind = K_PEND;
	p->fd = fd;
	p->t0 = now_ms();
	TAILQ_INSERT_TAIL(&pending, p, link);
	npend++;
	if (ep_set(EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLRDHUP | EPOLLET, p) == -1)
		pend_bury(p);
}

/* Stop accepting for a moment: out of fds, retrying at once would spin.
 * Logged once per spell, not every PAUSE_MS. */
static void
accept_pause(void)
{
	if (!accept_paused_told)
		logline("accept: %s; pausing", strerror(errno));
	accept_paused_told = true;
	epoll_ctl(ep, EPOLL_CTL_DEL, lfd, NULL);
	accept_resume = now_ms() + PAUSE_MS;
}

/* Accept a burst of connections. */
static void
on_accept(void)
{
	char a[ADDR_STR];
	int i, fd;

	for (i = 0; i < ACCEPT_BURST; i++) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				accept_pause();
			else if (errno != EAGAIN)
				continue;	/* the connection's own error */
			return;
		}
		accept_paused_told = false;
		vlog("connection from %s", fd_peername(fd, a, sizeof(a)));
		pend_add(fd);
	}
}

/*
 * SIGTERM: stop accepting, drop everyone not yet spliced, let the rest run.
 * A second one ends them too, for a supervisor that cannot wait.
 */
static void
on_signal(void)
{
	struct signalfd_siginfo si;
	struct pend *p;
	struct sess *s;

	if (read(sfd, &si, sizeof(si)) != sizeof(si))
		return;
	if (stopping) {
		logline("second SIGTERM: closing %d spliced sessions", npaired);
		exit(0);
	}
	stopping = true;
	logline("SIGTERM: stopping; %d sessions still spliced", npaired);
	if (accept_resume == 0)
		epoll_ctl(ep, EPOLL_CTL_DEL, lfd, NULL);
	close(lfd);
	while ((p = TAILQ_FIRST(&pending)) != NULL)
		pend_refuse(p, "shutting down");
	while ((s = TAILQ_FIRST(&waiting)) != NULL)
		sess_drop(s, "shutting down");
}

/* An event on an unjoined session's NEW side: drop it if the client is gone.
 * A FIN alone does not say so, since a client may half-close early, and a
 * close(2) sends the same FIN. So: an error or a reset (EPOLLERR, EPOLLHUP)
 * is gone; a FIN after bytes is a half-close, kept for the peer with its
 * bytes; a FIN with nothing before it is taken as gone, and the error line
 * reaches a client that did only half-close, which then knows. */
static void
sess_hup(struct sess *s, uint32_t events)
{
	ssize_t n;
	char c;

	if (!(events & (EPOLLERR | EPOLLHUP))) {
		n = recv(s->end[0].fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n > 0 || (n == -1 && errno == EAGAIN))
			return;
	}
	sess_drop(s, "client hung up");
}

/* Dispatch one epoll event by the kind of object it points at. */
static void
on_event(struct epoll_event *ev)
{
	uint8_t kind = *(uint8_t *)ev->data.ptr;
	struct end *e = ev->data.ptr;
	struct sess *s;

	switch (kind) {
	case K_LISTEN:
		on_accept();
		break;
	case K_SIGNAL:
		on_signal();
		break;
	case K_PEND:
		pend_read(ev->data.ptr, ev->events);
		break;
	case K_END:
		s = sess_of(e);
		if (!s->paired) {
			sess_hup(s, ev->events);
			break;
		}
		if (ev->events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			e->rd = true;
		if (ev->events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
			e->wr = true;
		pump(s);
		break;
	}
}

/* Drop clients past their deadline (both lists are in deadline order), and
 * trim the pool of spare pipes. */
static void
expire(long now)
{
	struct pend *p;
	struct sess *s;

	pool_trim(now);
	while ((p = TAILQ_FIRST(&pending)) != NULL &&
	    now - p->t0 >= FIRSTLINE_MS)
		pend_refuse(p, "timeout");
	while ((s = TAILQ_FIRST(&waiting)) != NULL &&
	    now - s->t0 >= expire_ms)
		sess_drop(s, "session expired");
	if (accept_resume != 0 && now >= accept_resume) {
		accept_resume = 0;
		if (!stopping)
			ep_set(EPOLL_CTL_ADD, lfd, EPOLLIN, &klisten);
	}
}

/* Milliseconds until the next deadline, or -1 for none. */
static int
next_timeout(long now)
{
	long t = -1, d;

	if (!TAILQ_EMPTY(&pending))
		t = TAILQ_FIRST(&pending)->t0 + FIRSTLINE_MS;
	if (!TAILQ_EMPTY(&waiting)) {
		d = TAILQ_FIRST(&waiting)->t0 + expire_ms;
		t = (t == -1 || d < t) ? d : t;
	}
	if (accept_resume != 0)
		t = (t == -1 || accept_resume < t) ? accept_resume : t;
	if (npool > 0)
		t = (t == -1 || pool_trim_at < t) ? pool_trim_at : t;
	/* Retry a pipe(2) that failed with none in use, which nothing else
	 * would wake. */
	if (npwait > 0 && (t == -1 || now + PAUSE_MS < t))
		t = now + PAUSE_MS;
	if (t == -1)
		return -1;
	return t <= now ? 0 : (int)(t - now);
}

/* The event loop; returns once stopping and no session is left. */
static void
loop(void)
{
	struct epoll_event ev[64];
	int i, n;

	while (!stopping || nsess > 0) {
		n = epoll_wait(ep, ev, 64, next_timeout(now_ms()));
		if (n == -1 && errno != EINTR)
			err(EX_SYSTEM, "epoll_wait");
		for (i = 0; i < n; i++)
			on_event(&ev[i]);
		pipe_wake();
		expire(now_ms());
		grave_empty();
	}
}

/* Raise the fd limit to what maxsess needs, or lower maxsess (and the caps
 * on pending connections and pipes) to fit it, so that neither pairing nor
 * a pipe ever fails for want of fds. */
static void
fit_fd_limit(void)
{
	struct rlimit rl;
	rlim_t need, left;

	if (pipes_max > 2 * maxsess)	/* more could never be in use */
		pipes_max = 2 * maxsess;
	need = (rlim_t)maxsess * FDS_PER_SESS + 2 * pipes_max + pend_max +
	    FDS_SPARE;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		err(EX_SYSTEM, "getrlimit");
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		struct rlimit up = { need, need };	/* works for root */

		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			return;
	}
	rl.rlim_cur = (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need) ?
	    need : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		err(EX_SYSTEM, "setrlimit");
	if (rl.rlim_cur >= need)
		return;
	if (rl.rlim_cur < 4 * (FDS_SPARE + FDS_PER_SESS))
		errx(EX_SYSTEM, "fd limit %llu is too low",
		    (unsigned long long)rl.rlim_cur);
	if (pend_max > (int)(rl.rlim_cur / 4))
		pend_max = (int)(rl.rlim_cur / 4);
	if (pipes_max > (int)(rl.rlim_cur / 8))
		pipes_max = (int)(rl.rlim_cur / 8);
	left = rl.rlim_cur - pend_max - 2 * pipes_max - FDS_SPARE;
	if (maxsess > (int)(left / FDS_PER_SESS))
		maxsess = (int)(left / FDS_PER_SESS);
	logline("fd limit %llu allows only %d sessions, %d pending connections, "
	    "%d pipes", (unsigned long long)rl.rlim_cur, maxsess, pend_max,
	    pipes_max);
}

/* Size the id and address tables to the session limit, and cap the
 * unjoined sessions of one address (an IPv6 one: its /64) at a sixteenth
 * of it, so that a few addresses cannot fill the table: SRC_MIN at least,
 * for the clients behind one NAT, but never more than a fifth. */
static void
htab_init(void)
{
	size_t n = 64;

	while (n < (size_t)maxsess)
		n <<= 1;
	if ((htab = calloc(n, sizeof(*htab))) == NULL ||
	    (stab = calloc(n, sizeof(*stab))) == NULL)
		err(EX_SYSTEM, "calloc");
	hmask = smask = n - 1;
	ssalt = arc4random();
	src_max = maxsess / SRC_SHARE;
	if (src_max < SRC_MIN)
		src_max = maxsess / 5 < SRC_MIN ? maxsess / 5 : SRC_MIN;
	if (src_max < 1)
		src_max = 1;
}

/* Open the listener, epoll and the SIGTERM fd. */
static void
setup(const char *addr)
{
	char a[ADDR_STR];
	sigset_t ss;

	if ((lfd = listen_tcp(addr, 1024)) == -1)
		errx(errno == EINVAL ? EX_USAGE_ : EX_SYSTEM,
		    "unable to listen on %s: %s", addr, addr_strerror(errno));
	if (fd_nonblock(lfd, 1) == -1)
		err(EX_SYSTEM, "fcntl");
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &ss, NULL) == -1 ||
	    (sfd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		err(EX_SYSTEM, "signalfd");
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
	    ep_set(EPOLL_CTL_ADD, lfd, EPOLLIN, &klisten) == -1 ||
	    ep_set(EPOLL_CTL_ADD, sfd, EPOLLIN, &ksignal) == -1)
		err(EX_SYSTEM, "epoll");
	logline("listening on %s, at most %d sessions (%d unjoined per address), "
	    "expiry %ld s", fd_sockname(lfd, a, sizeof(a)), maxsess, src_max,
	    expire_ms / 1000);
}

int
main(int argc, char *argv[])
{
	const char *runas = NULL;
	char host[256], port[32];
	int c, readyfd = -1;

	opt_version(argc, argv);
	while ((c = getopt(argc, argv, "hVvd:n:e:U:")) != -1) {
		switch (c) {
		case 'v': verbose++; break;
		case 'd': readyfd = arg_seconds(optarg, 'd', 1 << 20); break;
		case 'n': maxsess = arg_seconds(optarg, 'n', 1000000); break;
		case 'e': expire_ms = arg_seconds(optarg, 'e', 86400) * 1000L; break;
		case 'U':
			/* Checked now, not only once bound, so that a typo fails fast. */
			if (getpwnam(optarg) == NULL)
				errx(EX_USAGE_, "unknown user: %s", optarg);
			runas = optarg;
			break;
		case 'h': opt_help(usage);
		case 'V': print_version();
		default: usage();
		}
	}
	if (argc - optind != 1)
		usage();
	if (addr_split(argv[optind], host, sizeof(host), port, sizeof(port)) == -1
	    && (strspn(argv[optind], "0123456789") != strlen(argv[optind]) ||
	    *argv[optind] == '\0'))
		usage();
	if (readyfd != -1 && fcntl(readyfd, F_GETFD) == -1)
		err(EX_USAGE_, "-d %d", readyfd);
	fit_fd_limit();
	htab_init();
	setup(argv[optind]);
	if (runas != NULL)
		priv_drop(runas);
	if (readyfd != -1) {
		if (write(readyfd, "\n", 1) != 1)
			err(EX_SYSTEM, "readiness fd %d", readyfd);
		close(readyfd);
	}
	loop();
	logline("exiting");
	return EX_CONNECTED;
}
