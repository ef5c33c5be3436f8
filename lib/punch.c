/*
 * Hole punching (p2p(7), "Hole punching"): TCP simultaneous open. Each
 * peer logs on to rvd from a fresh port, so that rvd sees the mapping its
 * NAT made for that port, and says PUNCH; rvd answers both at once with
 * the other's mapping. Both then connect() from that port to the other's
 * mapping: each SYN opens its own NAT for the other's, and crossing SYNs
 * make one connection (the kernel's simultaneous open, and conntrack's).
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

#define PUNCH_AGAIN 3		/* PUNCHes to say again for an unknown session */
#define PUNCH_AGAIN_MS 10	/* ...this long after rvd said so */
#define PUNCH_HOLD_MS 100	/* the least fire is held beyond rvd's moment */

/*
 * Pass p's ticket on to the next rung (-e) once its moment has come; the
 * ms until that moment, or until deadline if sooner.
 */
static int
punch_handoff(struct punch *p, long deadline)
{
	long now = now_ms();

	if (p->handoff != NULL && now >= p->handoff_at) {
		ticket_handoff(p->handoff, "dialpunch");
		p->handoff = NULL;
	}
	if (p->handoff != NULL && p->handoff_at < deadline)
		deadline = p->handoff_at;
	return deadline > now ? (int)(deadline - now) : 0;
}

/*
 * A socket of family bound to port (0: a fresh one) on every address,
 * with SO_REUSEADDR and SO_REUSEPORT: the log-on to rvd and the punches
 * all go out from the one port. -1 on failure.
 */
static int
punch_socket(int family, int port)
{
	struct sockaddr_storage ss;
	int fd;

	if ((fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &(int){ 1 }, sizeof(int));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = family;
	addr_setport((struct sockaddr *)&ss, port);
	if (bind(fd, (struct sockaddr *)&ss, family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Start connecting fd to a; 0, or -1 when it failed at once. */
static int
punch_connect(int fd, const struct addr *a)
{
	return connect(fd, (const struct sockaddr *)&a->ss, a->len) == -1 &&
	    errno != EINPROGRESS ? -1 : 0;
}

/* Wait up to deadline for fd's connect: 0 connected, -1 with errno. */
static int
punch_wait(int fd, long deadline)
{
	int e = 0;
	socklen_t el = sizeof(e);

	if (!io_wait(fd, POLLOUT, deadline))
		return -1;
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
	errno = e;
	return e == 0 ? 0 : -1;
}

/*
 * Send the log-on and our PUNCH on fd, whose connect has begun: the
 * PUNCH names fd's local end, which connect(2) has chosen, and "now" when
 * we fire at once. With a Fast
 * Open cookie for rvd both ride in the SYN; without one they wait for
 * the handshake. 0, or -1 with errno.
 */
static int
punch_hello(int fd, const char *logon, const char *id, int now, char *local,
    size_t localn, long deadline)
{
	char buf[LINE_MAX_ + 2];
	ssize_t w;
	int n, r, e;

	fd_sockname(fd, local, localn);
	n = snprintf(buf, sizeof(buf), "%s\nPUNCH %s %s%s\n", logon, id, local,
	    now ? " now" : "");
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		errno = EMSGSIZE;
		return -1;
	}
	if ((w = send(fd, buf, n, MSG_NOSIGNAL)) == -1 && errno != EINPROGRESS &&
	    errno != EAGAIN)
		r = -1;
	else if ((r = punch_wait(fd, deadline)) == 0 && w < n)
		r = io_write(fd, buf + (w > 0 ? w : 0), n - (w > 0 ? w : 0),
		    deadline);
	e = errno;
	explicit_bzero(buf, sizeof(buf));	/* it holds our secret */
	errno = e;
	return r;
}

/*
 * Dial the first host:port of rvs that answers, from a fresh port, and
 * say logon and PUNCH for id on it (punch_hello): the socket, with
 * local its local end, or -1 with why filled. No proxy: a mapping seen
 * through one is the proxy's, and says nothing of our NAT.
 */
static int
punch_rvd(const char *rvs, const char *logon, const char *id, int now,
    char *local, size_t localn, long deadline, char *why, size_t n)
{
	char words[4][HOSTPORT_MAX];
	struct addr a[4];
	int nw, i, j, k, fd;

	snprintf(why, n, "bad rendezvous address: %s", rvs);
	if ((nw = relays_parse(rvs, words, 4)) <= 0)
		return -1;
	for (i = 0; i < nw && i < 4; i++) {
		if ((k = addr_resolve(words[i], NULL, a, 4)) <= 0) {
			snprintf(why, n, "rvd %s: %s", words[i],
			    addr_strerror(errno));
			continue;
		}
		for (j = 0; j < k; j++) {
			if ((fd = punch_socket(a[j].ss.ss_family, 0)) != -1)
				fd_fastopen(fd);
			if (fd == -1 || punch_connect(fd, &a[j]) == -1 ||
			    punch_hello(fd, logon, id, now, local, localn,
			    deadline) == -1) {
				snprintf(why, n, "rvd %s: %s", words[i],
				    errno == ETIMEDOUT ? "timeout" :
				    strerror(errno));
				if (fd != -1)
					close(fd);
				continue;
			}
			return fd;
		}
	}
	return -1;
}

/* Take rvd's "PUNCH id peer peerlocal wait dial|answer [now]" into p. */
static int
punch_answer_line(struct punch *p, const char *id, char *line)
{
	char *w[8];
	const char *e;
	int n = line_words(line, w, 8), now;

	if ((now = words_flag(w, n, 6, "now")) == -1 ||
	    strcmp(w[0], "PUNCH") != 0 ||
	    strcmp(w[1], id) != 0 || (strcmp(w[5], "dial") != 0 &&
	    strcmp(w[5], "answer") != 0) ||
	    strlcpy(p->peer, w[2], sizeof(p->peer)) >= sizeof(p->peer) ||
	    strlcpy(p->peerlocal, w[3], sizeof(p->peerlocal)) >=
	    sizeof(p->peerlocal))
		return -1;
	p->wait = strtonum(w[4], 0, 10000, &e);
	if (e != NULL)
		return -1;
	p->dial = strcmp(w[5], "dial") == 0;
	/* The inviter fires at once (it punched last time): so do we. */
	if (now && !p->fast) {
		vlog("the peer fires at once: so do we");
		p->fast = 1;
	}
	return 0;
}

/*
 * Log on to rvd for t's session from a fresh port, say PUNCH, and wait
 * (at most ms) for the peer's PUNCH to meet ours: 0 with p filled and
 * p->rvfd open (it keeps our mapping), or -1 with p->why. fast: punch
 * without the hold (it punched last time); the PUNCH may then beat our
 * rvinvite's INVITE to rvd, and is said again.
 */
int
punch_meet(struct punch *p, struct ticket *t, const char *name,
    const char *secret, int ms, int handoff_ms, int fast)
{
	struct rv rv;
	char line[LINE_MAX_ + 1], logon[LINE_MAX_ + 1], *w[4];
	long deadline = now_ms() + ms;
	int n, again = 0;

	memset(p, 0, sizeof(*p));
	p->fast = fast;
	memset(&rv, 0, sizeof(rv));
	if (handoff_ms >= 0) {
		p->handoff = t;
		p->handoff_at = now_ms() + handoff_ms;
		punch_handoff(p, deadline);	/* at once, when it is 0 */
	}
	snprintf(logon, sizeof(logon), "LOGON %s%s%s", name, secret ? " " : "",
	    secret ? secret : "");
	/*
	 * The log-on and the PUNCH go together, in the SYN where Fast Open
	 * can: one round trip to rvd. A dial to rvd that a blocker drops
	 * must not eat the peer's wait.
	 */
	n = dial_budget_ms(0, t->rtt);
	rv.fd = p->rvfd = punch_rvd(t->rv, logon, t->id, fast, p->local,
	    sizeof(p->local), now_ms() + (n < ms ? n : ms), p->why,
	    sizeof(p->why));
	explicit_bzero(logon, sizeof(logon));
	if (rv.fd == -1)
		return -1;
	fd_nonblock(rv.fd, 0);
	for (;;) {
		n = rv_readline(&rv, line, sizeof(line),
		    punch_handoff(p, deadline));
		if (n == -1 && errno == ETIMEDOUT && now_ms() < deadline)
			continue;	/* the handoff's moment, not ours */
		if (n <= 0) {
			snprintf(p->why, sizeof(p->why), "rvd: %s", n == 0 ?
			    "closed the connection" : errno == ETIMEDOUT ?
			    "the peer did not punch in time" : strerror(errno));
			goto fail;
		}
		if (fast && again < PUNCH_AGAIN && strncmp(line, "ERR ", 4) == 0 &&
		    strncmp(line + 4, t->id, ID_HEX) == 0 &&
		    strcmp(line + 4 + ID_HEX, " no such session") == 0) {
			/* Our INVITE is on its way: say it again, a moment on. */
			vlog("rvd knows no session %s yet: punching again", t->id);
			poll(NULL, 0, PUNCH_AGAIN_MS);
			again++;
			n = snprintf(line, sizeof(line), "PUNCH %s %s now\n",
			    t->id, p->local);
					if (io_write(rv.fd, line, n, deadline) == 0)
				continue;
		}
		if (strncmp(line, "ERR ", 4) == 0) {
			/* "ERR - unknown command": an rvd that knows no PUNCH. */
			snprintf(p->why, sizeof(p->why), "rvd: %s", line +
			    (strncmp(line, "ERR - ", 6) == 0 ? 6 :
			    strncmp(line + 4, t->id, ID_HEX) == 0 ? 5 + ID_HEX : 4));
			goto fail;
		}
		if (strncmp(line, "WELCOME ", 8) == 0) {
			if (line_words(line, w, 4) >= 2)
				strlcpy(p->mapped, w[1], sizeof(p->mapped));
			p->rtt = fd_rtt_ms(rv.fd);
			continue;
		}
		if (strncmp(line, "PUNCH ", 6) == 0) {
			if (punch_answer_line(p, t->id, line) == -1) {
				snprintf(p->why, sizeof(p->why), "rvd: bad PUNCH");
				goto fail;
			}
			if (p->mapped[0] == '\0') {
				snprintf(p->why, sizeof(p->why), "rvd: no WELCOME");
				goto fail;
			}
			return 0;
		}
	}
fail:
	close(p->rvfd);
	p->rvfd = -1;
	return -1;
}

/*
 * Why punching p cannot work, or NULL: a NAT that gave the log-on another
 * port than the one we bound (fully random, or sequential) will give the
 * punch yet another, and the other side's SYN goes to a port nobody
 * opened. Both sides see the same four addresses: both give up at once.
 */
const char *
punch_hopeless(const struct punch *p)
{
	struct addr a[4];
	int i;

	if (addr_numeric(p->local, &a[0]) == -1 ||
	    addr_numeric(p->mapped, &a[1]) == -1 ||
	    addr_numeric(p->peer, &a[2]) == -1 ||
	    addr_numeric(p->peerlocal, &a[3]) == -1)
		return "bad address from rvd";
	for (i = 1; i < 4; i++)
		if (a[i].ss.ss_family != a[0].ss.ss_family)
			return "no address family in common";
	if (addr_port((struct sockaddr *)&a[0].ss) !=
	    addr_port((struct sockaddr *)&a[1].ss))
		return "our NAT does not keep ports";
	if (addr_port((struct sockaddr *)&a[2].ss) !=
	    addr_port((struct sockaddr *)&a[3].ss))
		return "the peer's NAT does not keep ports";
	return NULL;
}

/*
 * After p->wait, connect from our port to the peer's mapping until one
 * connects, for at most ms. A SYN the peer's NAT drops is answered by
 * the peer's own crossing SYN; one it rejects is sent again after a
 * random pause, and a try left unanswered for a round trip or two is
 * made again.
 * The connected socket (blocking), or -1 with p->why.
 */
int
punch_fire(struct punch *p, int ms)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct addr peer;
	long deadline, next, fire, hold;
	int fd, port, e, trywait = 2 * p->rtt + 100;

	deadline = now_ms() + ms;
	if (addr_numeric(p->peer, &peer) == -1 ||
	    getsockname(p->rvfd, (struct sockaddr *)&ss, &sl) == -1) {
		snprintf(p->why, sizeof(p->why), "bad address");
		return -1;
	}
	port = addr_port((struct sockaddr *)&ss);
	if (trywait < 250)
		trywait = 250;
	/*
	 * Both sides hold their fire the same time beyond rvd's moment, so
	 * that their SYNs still cross: the farther one's round trip to rvd
	 * (ours plus twice our wait), and 20 ms. A direct dial begun as the
	 * ticket came has had its answer by then, and with the PUNCH's own
	 * round trip the SYN leaves no sooner than a stagger (2 x rtt + 20
	 * ms) after the ticket: a direct dial that works gets there first.
	 * Never less than PUNCH_HOLD_MS: a direct dial needs processes to
	 * start as well as its round trips (the invitee's own dial to a
	 * public inviter, rung "in", must win on a path with no delay).
	 * Fast (the punch won last time, so no direct dial did), the inviter
	 * fires at rvd's moment itself; the invitee, which cannot know,
	 * holds as ever.
	 */
	hold = p->rtt + 2 * p->wait + 20;
	fire = now_ms() + p->wait + (p->fast ? 0 : hold > PUNCH_HOLD_MS ? hold :
	    PUNCH_HOLD_MS);
	while (now_ms() < fire)
		poll(NULL, 0, punch_handoff(p, fire));
	snprintf(p->why, sizeof(p->why), "%s: timeout", p->peer);
	while (now_ms() < deadline) {
		punch_handoff(p, deadline);
		p->tries++;
		if ((fd = punch_socket(peer.ss.ss_family, port)) == -1) {
			snprintf(p->why, sizeof(p->why), "port %d: %s", port,
			    strerror(errno));
			return -1;
		}
		next = now_ms() + trywait;
		if (next > deadline)
			next = deadline;
		if (punch_connect(fd, &peer) == 0 && punch_wait(fd, next) == 0) {
			fd_nonblock(fd, 0);
			return fd;
		}
		e = errno;
		close(fd);
		if (e == ETIMEDOUT)
			continue;
		snprintf(p->why, sizeof(p->why), "%s: %s after %d tries",
		    p->peer, strerror(e), p->tries);
		/*
		 * Refused: the peer's SYN has not opened its NAT yet. Ours must
		 * reach it while the peer's is on its way, a window as wide as
		 * the path between the NATs: a random pause, so that the two
		 * sides' tries do not stay in step, missing it every time.
		 */
		poll(NULL, 0, 1 + (int)arc4random_uniform(p->rtt / 2 + 10));
	}
	return -1;
}

/*
 * The inviter's end of the handshake on a punched connection: the
 * invitee's P2P line with our session's token, our OK, and the GO that
 * takes it (as for a dial in). 0, or -1 with why.
 */
int
punch_answer(int fd, const struct ticket *t, int ms, char *why, size_t n)
{
	char id[ID_HEX + 1], token[ID_HEX + 1], go[8];

	if (hs_read(fd, id, token, ms) == -1 || hs_answer(fd, token,
	    strcmp(id, t->id) == 0 ? t->token : NULL) == -1) {
		snprintf(why, n, "handshake: %s", errno == EACCES ?
		    "wrong session or token" : strerror(errno));
		return -1;
	}
	if (line_read(fd, go, sizeof(go), ms) <= 0 || strcmp(go, "GO") != 0) {
		snprintf(why, n, "the peer took another connection");
		return -1;
	}
	return 0;
}
