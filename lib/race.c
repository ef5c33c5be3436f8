/*
 * Racing candidate addresses in the manner of RFC 8305: start one, start
 * the next after a short stagger or as soon as one fails, and take the
 * first that connects (and, with a handshake, is answered "OK").
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

/* C_OFFERED: answered OK, but waiting while our GO on another is out. */
enum { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_OFFERED, C_DONE };

struct cand {
	int fd, state;
	const char *addr;
	struct handshake hs;	/* with a session: see handshake.c */
	const char *why;
};

/*
 * Start connecting c to a; a failure is recorded in c, not returned. With
 * a handshake we speak first, so the P2P line may go in the SYN.
 */
static void
cand_start(struct cand *c, const char *a, int fastopen)
{
	struct addr x;

	c->state = C_DONE;
	c->addr = a;
	if (addr_numeric(a, &x) == -1) {
		c->why = "bad address";
		return;
	}
	c->fd = socket(x.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (c->fd == -1) {
		c->why = strerror(errno);
		return;
	}
	if (fastopen)
		fd_fastopen(c->fd);
	if (connect(c->fd, (struct sockaddr *)&x.ss, x.len) == -1 &&
	    errno != EINPROGRESS) {
		c->why = strerror(errno);
		close(c->fd);
		c->fd = -1;
		return;
	}
	c->state = C_CONNECTING;
}

/* Fail c with why (NULL: timeout); its handshake has seen to the commitment. */
static void
cand_fail(struct cand *c, const char *why)
{
	c->why = why;
	c->state = C_DONE;
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
}

/*
 * Move c along after poll said it is ready: 1 when it has won, 0 when it
 * needs more time, and failures are recorded in c.
 */
static int
cand_step(struct cand *c, struct race_hs *hs)
{
	int e = 0;
	socklen_t el = sizeof(e);

	if (c->state == C_CONNECTING) {
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
		if (e != 0) {
			cand_fail(c, strerror(e));
			return 0;
		}
		if (hs == NULL)
			return 1;
		/* The lines are far below a fresh socket's buffer: no wait. */
		if (hs_dial(&c->hs, c->fd, hs->id, hs->token, hs->commit,
		    now_ms()) == HS_FAIL) {
			cand_fail(c, c->hs.why);
			return 0;
		}
		c->hs.who = c->addr;
		if (c->hs.go)
			vlog("connected to %s: GO with the handshake", c->addr);
		c->state = C_HANDSHAKE;
		return 0;
	}
	switch (hs_step(&c->hs, c->fd)) {
	case HS_DONE:
		return 1;
	case HS_FAIL:
		cand_fail(c, c->hs.why);
		break;
	}
	return 0;
}

/*
 * The handshake for t's session (NULL for a bare address), with $P2PCOMMIT
 * and t's late candidates; racing names us when t goes on early (-e).
 */
struct race_hs *
race_hs_init(struct race_hs *hs, struct ticket *t, const char *racing)
{
	if (t->id[0] == '\0')
		return NULL;
	*hs = (struct race_hs){ .id = t->id, .token = t->token,
	    .commit = commit_env(), .late = t, .stage = racing,
	    .handoff = racing != NULL ? t : NULL };
	return hs;
}

/*
 * Read what the rung before us wrote after the ticket (see ticket_late)
 * into t: 0 once its output has ended, or is no ticket lines.
 */
static int
race_late(struct ticket *t, struct linebuf *lb, int fd)
{
	char line[LINE_MAX_ + 1];
	int r = linebuf_fill(lb, fd), l;

	while ((l = linebuf_next(lb, line, sizeof(line))) >= 0)
		if (ticket_late(t, line))
			vlog("late candidate %s", line + 5);
	if (l == -2 || r == 0)
		return 0;
	return r > 0 || errno == EAGAIN || errno == EINTR;
}

/* Say what became of every candidate, for the ticket's "tried" line. */
static void
race_why(char addrs[][ADDR_STR], struct cand *c, int n, char *why, size_t whyn)
{
	int i;

	why[0] = '\0';
	for (i = 0; i < n; i++) {
		if (i > 0)
			strlcat(why, ", ", whyn);
		strlcat(why, addrs[i], whyn);
		strlcat(why, " ", whyn);
		strlcat(why, c[i].why ? c[i].why : "timeout", whyn);
	}
	if (n == 0)
		strlcpy(why, "no candidates", whyn);
}

/*
 * Does a candidate of ours hold the session's commitment (its GO went
 * with its line, and has not come back)? pending: and still waits for
 * the answer.
 */
static int
holding(const struct cand *c, int n, int pending)
{
	int i;

	for (i = 0; i < n; i++)
		if (c[i].hs.go && (!pending || c[i].state == C_HANDSHAKE))
			return 1;
	return 0;
}

/*
 * Race the n addresses for at most ms: the winning socket (blocking), or
 * -1 with why saying what happened to each. won gets the winner's address.
 */
int
dial_race(char addrs[][ADDR_STR], int n, struct race_hs *hs,
    int ms, int stagger_ms, char *why, size_t whyn, char *won, size_t wonn)
{
	struct cand c[TICKET_ADDRS];
	struct pollfd p[TICKET_ADDRS + 1];
	struct linebuf lb = { .len = 0 };
	struct stat st;
	long deadline = now_ms() + ms, next = 0, now, wake;
	int started = 0, i, live, fd = -1, np, extended = 0, handoff;
	/* More candidates may follow the ticket down a pipe (ticket_late). */
	int latefd = hs != NULL && hs->late != NULL && hs->late->addr == addrs &&
	    fstat(0, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) ?
	    0 : -1;

	if (n > TICKET_ADDRS)
		n = TICKET_ADDRS;
	memset(c, 0, sizeof(c));
	for (i = 0; i < TICKET_ADDRS; i++)
		c[i].fd = -1;
	while (fd == -1) {
		if ((now = now_ms()) >= deadline) {
			/* Our GO is out: its answer decides the session. */
			if (extended || !holding(c, started, 1))
				break;
			vlog("waiting once more for the answer to our GO");
			deadline = now + ms;
			extended = 1;
		}
		for (live = 0, i = 0; i < started; i++)
			live += c[i].state != C_DONE;
		if (started < n && (now >= next || live == 0)) {
			cand_start(&c[started], addrs[started],
			    hs != NULL && hs->commit == -1);
			vlog("trying %s", addrs[started]);
			started++;
			next = now + stagger_ms;
			continue;
		}
		if (live == 0 && latefd == -1)
			break;
		/*
		 * With all started, and all the rung before us had to say, the
		 * next rung is one more candidate (RFC 8305), a stagger later;
		 * eager, at once, for a next rung that keeps the stagger itself.
		 */
		handoff = hs != NULL && hs->handoff != NULL &&
		    ((started == n && latefd == -1) || hs->now);
		/*
		 * The next rung won last time: it starts at once, beside our
		 * first candidate (candidates learnt later stay with us).
		 */
		if (handoff && (now >= next || hs->eager || hs->now)) {
			ticket_handoff(hs->handoff, hs->stage);
			hs->handoff = NULL;
			handoff = 0;
		}
		for (i = 0; i < started; i++) {
			p[i].fd = c[i].state == C_DONE || c[i].state == C_OFFERED ?
			    -1 : c[i].fd;
			p[i].events = c[i].state == C_CONNECTING ? POLLOUT : POLLIN;
			p[i].revents = 0;
		}
		np = started;
		if (latefd != -1)
			p[np++] = (struct pollfd){ .fd = latefd, .events = POLLIN };
		wake = started < n || handoff ? next : deadline;
		if (wake > deadline)
			wake = deadline;
		if (poll(p, np, (int)(wake > now ? wake - now : 0)) == -1 &&
		    errno != EINTR)
			break;
		if (latefd != -1 && p[started].revents) {
			if (!race_late(hs->late, &lb, latefd))
				latefd = -1;
			n = hs->late->naddr < TICKET_ADDRS ? hs->late->naddr :
			    TICKET_ADDRS;
		}
		for (i = 0; i < started && fd == -1; i++) {
			if (p[i].fd == -1 || !p[i].revents || !cand_step(&c[i], hs))
				continue;
			/*
			 * Only offered, while our GO on another may yet be
			 * taken: that one's answer comes first.
			 */
			if (holding(c, started, 0) && !c[i].hs.go) {
				c[i].state = C_OFFERED;
				continue;
			}
			fd = i;
		}
		/* Our GO came to nothing and went back: take an offered one. */
		for (i = 0; i < started && fd == -1 && !holding(c, started, 0); i++)
			if (c[i].state == C_OFFERED)
				fd = i;
		if (fd != -1) {
			i = fd;
			fd = c[i].fd;
			c[i].fd = -1;
			if (hs != NULL)
				hs->go = c[i].hs.go;
			strlcpy(won, addrs[i], wonn);
		}
	}
	for (i = 0; i < started; i++)
		if (c[i].fd != -1) {
			hs_abandon(&c[i].hs);
			cand_fail(&c[i], NULL);	/* "timeout" */
		}
	if (fd == -1) {
		race_why(addrs, c, n, why, whyn);
		errno = ETIMEDOUT;
		return -1;
	}
	fd_nonblock(fd, 0);
	return fd;
}
