/*
 * relayd: hand out relay session ids, pair two connections by id and splice
 * them together. One process, one epoll loop, no thread per session: the data
 * path is splice(2) socket -> pipe -> socket, so no byte is copied to user space.
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
#include <grp.h>
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
#define FDS_PER_SESS	6	/* two sockets and two pipes */
#define FDS_SPARE	16	/* stdio, listener, epoll, signalfd, slack */
#define PAUSE_MS	250	/* how long to stop accepting when out of fds */
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
	int fd;
};

/* A session: unjoined (waiting for JOIN) or paired (splicing). */
struct sess {
	struct end end[2];	/* 0: the NEW side, 1: the JOIN side */
	int pipe[2][2];		/* pipe[d] carries end[d]'s bytes to end[!d] */
	uint32_t inpipe[2];	/* bytes sitting in pipe[d] */
	uint64_t bytes[2];	/* bytes delivered from end[d] to end[!d] */
	long t0;		/* creation, then pairing time (ms) */
	bool paired;
	struct sess *hnext;	/* hash chain */
	TAILQ_ENTRY(sess) link;	/* waiting list (unjoined) or graveyard */
	char id[ID_HEX + 1];
};

TAILQ_HEAD(pendq, pend);
TAILQ_HEAD(sessq, sess);

static struct pendq pending = TAILQ_HEAD_INITIALIZER(pending);
static struct pendq pendgrave = TAILQ_HEAD_INITIALIZER(pendgrave);
static struct sessq waiting = TAILQ_HEAD_INITIALIZER(waiting);
static struct sessq sessgrave = TAILQ_HEAD_INITIALIZER(sessgrave);

static struct sess **htab;	/* sessions by id, unjoined and paired */
static size_t hmask;

static int ep = -1, lfd = -1, sfd = -1;
static uint8_t klisten = K_LISTEN, ksignal = K_SIGNAL;
static int npend, nsess, npaired;
static int maxsess = 10000;
static int pend_max = 1024;	/* connections that have not sent their line yet */
static long expire_ms = 30000;
static long accept_resume;	/* when accepting was paused, when to resume */
static bool accept_paused_told;
static bool stopping;

/* Print the usage line and exit 100, as every tool does. */
static void
usage(void)
{
	fprintf(stderr, "usage: relayd [-v] [-d FD] [-n MAXSESSIONS] "
	    "[-e SECONDS] [-U USER] [ADDR:]PORT\n");
	exit(EX_USAGE_);
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

/* Close a session's fds and bury it; freed after this batch of events,
 * since a later event in the same batch may still point at it. */
static void
sess_bury(struct sess *s)
{
	int d;

	for (d = 0; d < 2; d++) {
		if (s->end[d].fd != -1)
			close(s->end[d].fd);
		if (s->pipe[d][0] != -1) {
			close(s->pipe[d][0]);
			close(s->pipe[d][1]);
		}
		s->end[d].kind = K_DEAD;
	}
	sess_unhash(s);
	if (s->paired)
		npaired--;
	else
		TAILQ_REMOVE(&waiting, s, link);
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

/* Make the two pipes of a newly paired session. They keep the default size
 * (64 KiB): 256 KiB gained ~15% on loopback but costs every idle session
 * ~4 KiB more of kernel memory and uses up fs.pipe-user-pages-soft 4x sooner. */
static int
pipe_open(struct sess *s)
{
	int d;

	for (d = 0; d < 2; d++)
		if (pipe2(s->pipe[d], O_NONBLOCK | O_CLOEXEC) == -1)
			return -1;
	vlog("session %s: pipes of %d bytes", s->id,
	    fcntl(s->pipe[0][1], F_GETPIPE_SZ));
	return 0;
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
		if (src->eof) {
			if (!src->done) {
				(void)shutdown(dst->fd, SHUT_WR);
				src->done = true;
			}
			return 0;
		}
		if (!src->rd)
			return 0;
		if (budget-- == 0) {
			end_rearm(src);
			return 0;
		}
		n = splice(src->fd, NULL, s->pipe[d][1], NULL, SPLICE_MAX,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n == -1) {
			if (errno != EAGAIN)
				return -1;
			src->rd = false;
			return 0;
		}
		if (n == 0)
			src->eof = true;
		s->inpipe[d] += n;
	}
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

/* Start splicing a session whose JOIN side has just arrived on fd. */
static void
sess_pair(struct sess *s, int fd)
{
	char a[ADDR_STR];
	int d;

	s->end[1].fd = fd;
	logline("session %s joined from %s", s->id, fd_peername(fd, a, sizeof(a)));
	if (pipe_open(s) == -1) {
		logline("session %s: pipe: %s", s->id, strerror(errno));
		refuse(fd, "relay out of resources");
		s->end[1].fd = -1;
		sess_drop(s, "relay out of resources");
		return;
	}
	TAILQ_REMOVE(&waiting, s, link);
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

/* NEW: open a session, hand out its id and park the connection. */
static void
cmd_new(struct pend *p)
{
	char a[ADDR_STR], line[ID_HEX + 16];
	struct sess *s;
	size_t h;

	if (nsess >= maxsess) {
		pend_refuse(p, "too many sessions");
		return;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		pend_refuse(p, "relay out of resources");
		return;
	}
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
	 * socket until it can be spliced to the peer. */
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

/* Act on a client's first line. */
static void
command(struct pend *p, char *line)
{
	size_t n = strlen(line);

	if (n > 0 && line[n - 1] == '\r')	/* be kind to nc -C */
		line[n - 1] = '\0';
	if (strcmp(line, "NEW") == 0)
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
	command(p, buf);
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
		if (!s->paired) {	/* the NEW side hung up while waiting */
			sess_drop(s, "client hung up");
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

/* Drop clients past their deadline; both lists are in deadline order. */
static void
expire(long now)
{
	struct pend *p;
	struct sess *s;

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
		expire(now_ms());
		grave_empty();
	}
}

/* Raise the fd limit to what maxsess needs, or lower maxsess (and the cap on
 * pending connections) to fit it, so that pairing never fails for want of fds. */
static void
fit_fd_limit(void)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)maxsess * FDS_PER_SESS + pend_max + FDS_SPARE;

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
	if (maxsess > (int)((rl.rlim_cur - pend_max - FDS_SPARE) / FDS_PER_SESS))
		maxsess = (int)((rl.rlim_cur - pend_max - FDS_SPARE) /
		    FDS_PER_SESS);
	logline("fd limit %llu allows only %d sessions, %d pending connections",
	    (unsigned long long)rl.rlim_cur, maxsess, pend_max);
}

/* Size the id table to the session limit. */
static void
htab_init(void)
{
	size_t n = 64;

	while (n < (size_t)maxsess)
		n <<= 1;
	if ((htab = calloc(n, sizeof(*htab))) == NULL)
		err(EX_SYSTEM, "calloc");
	hmask = n - 1;
}

/* Become pw's user, once the port is bound. */
static void
drop_privs(const struct passwd *pw)
{
	if (setgroups(1, &pw->pw_gid) == -1 || setgid(pw->pw_gid) == -1 ||
	    setuid(pw->pw_uid) == -1)
		err(EX_SYSTEM, "unable to become %s", pw->pw_name);
}

/* Open the listener, epoll and the SIGTERM fd. */
static void
setup(const char *addr)
{
	char a[ADDR_STR];
	sigset_t ss;

	if ((lfd = listen_tcp(addr, 1024)) == -1)
		err(EX_SYSTEM, "unable to listen on %s", addr);
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
	logline("listening on %s, at most %d sessions, expiry %ld s",
	    fd_sockname(lfd, a, sizeof(a)), maxsess, expire_ms / 1000);
}

/* Parse a decimal option argument within [lo, hi], else usage. */
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

int
main(int argc, char *argv[])
{
	struct passwd *pw = NULL;
	char host[256], port[32];
	int c, readyfd = -1;

	while ((c = getopt(argc, argv, "vd:n:e:U:")) != -1) {
		switch (c) {
		case 'v': verbose++; break;
		case 'd': readyfd = (int)num(optarg, 0, 1 << 20); break;
		case 'n': maxsess = (int)num(optarg, 1, 1000000); break;
		case 'e': expire_ms = num(optarg, 1, 86400) * 1000; break;
		case 'U':
			if ((pw = getpwnam(optarg)) == NULL)
				errx(EX_USAGE_, "unknown user: %s", optarg);
			break;
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
	if (pw != NULL)
		drop_privs(pw);
	if (readyfd != -1) {
		if (write(readyfd, "\n", 1) != 1)
			err(EX_SYSTEM, "readiness fd %d", readyfd);
		close(readyfd);
	}
	loop();
	logline("exiting");
	return EX_CONNECTED;
}
