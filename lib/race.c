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
	int go;			/* holds the session's commitment: GO was sent */
	const char *addr;
	char in[64];		/* the listener's answer, a byte at a time */
	size_t inlen;
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

/*
 * Fail c with why. A commitment it held goes back only when the inviter
 * cannot have taken our GO: it said ERR, or something else, or closed or
 * reset without a word (it answers OK before it delivers, and the OK would
 * come first). After a timeout it may have, so the commitment stays
 * spent: no second connection, though maybe none at all.
 */
static void
cand_fail(struct cand *c, struct race_hs *hs, const char *why, int giveback)
{
	if (c->go && giveback) {
		commit_give(hs->commit);
		hs->holding = 0;
	} else if (c->go)
		vlog("%s: our GO may have been taken: the session stays taken",
		    c->addr);
	c->go = 0;
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
	ssize_t r;
	char ch;

	if (c->state == C_CONNECTING) {
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
		if (e != 0) {
			cand_fail(c, hs, strerror(e), 1);
			return 0;
		}
		if (hs == NULL)
			return 1;
		/*
		 * With the session's commitment (see commit.c) the first to
		 * connect takes the connection at once: GO rides with the
		 * handshake instead of a round trip after it.
		 */
		if (hs->commit != -1 && !hs->holding && commit_take(hs->commit)) {
			c->go = hs->holding = 1;
			vlog("connected to %s: GO with the handshake", c->addr);
		}
		/* The lines are far below a fresh socket's buffer: they go at once. */
		if (line_write(c->fd, 0, "P2P %s %s%s", hs->id, hs->token,
		    c->go ? "\nGO" : "") == -1) {
			cand_fail(c, hs, strerror(errno), 1);
			return 0;
		}
		c->state = C_HANDSHAKE;
		return 0;
	}
	while ((r = read(c->fd, &ch, 1)) == 1) {
		if (ch == '\n') {
			if (c->inlen > 0 && c->in[c->inlen - 1] == '\r')
				c->inlen--;
			if (c->inlen == 2 && memcmp(c->in, "OK", 2) == 0)
				return 1;
			c->in[c->inlen] = '\0';
			cand_fail(c, hs, strcmp(c->in, "ERR session taken") == 0 ?
			    "took another connection" : strncmp(c->in, "ERR", 3) == 0 ?
			    "refused our token" : "not a p2pdial peer", 1);
			return 0;
		}
		if (c->inlen >= sizeof(c->in) - 1) {
			cand_fail(c, hs, "not a p2pdial peer", 1);
			return 0;
		}
		c->in[c->inlen++] = ch;
	}
	/* A close or a reset with no OK before it: nothing was taken. */
	if (r == 0)
		cand_fail(c, hs, "closed in the handshake", 1);
	else if (errno != EAGAIN && errno != EINTR)
		cand_fail(c, hs, strerror(errno), errno == ECONNRESET);
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

/* Is a candidate that said GO still waiting for its answer? */
static int
go_pending(const struct cand *c, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (c[i].go && c[i].state == C_HANDSHAKE)
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
			if (extended || !go_pending(c, started))
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
		 * next rung is one more candidate (RFC 8305).
		 */
		handoff = started == n && latefd == -1 && hs != NULL &&
		    hs->handoff != NULL;
		if (handoff && now >= next) {
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
			if (hs != NULL && hs->holding && !c[i].go) {
				c[i].state = C_OFFERED;
				continue;
			}
			fd = i;
		}
		/* Our GO came to nothing and went back: take an offered one. */
		for (i = 0; i < started && fd == -1 && hs != NULL && !hs->holding; i++)
			if (c[i].state == C_OFFERED)
				fd = i;
		if (fd != -1) {
			i = fd;
			fd = c[i].fd;
			c[i].fd = -1;
			if (hs != NULL)
				hs->go = c[i].go;
			strlcpy(won, addrs[i], wonn);
		}
	}
	for (i = 0; i < started; i++)
		if (c[i].fd != -1)
			cand_fail(&c[i], hs, NULL, 0);	/* "timeout" */
	if (fd == -1) {
		race_why(addrs, c, n, why, whyn);
		errno = ETIMEDOUT;
		return -1;
	}
	fd_nonblock(fd, 0);
	return fd;
}
