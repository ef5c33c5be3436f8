/*
 * rvd: the rendezvous daemon. Peers log on by name; rvd routes invitations
 * and the follow-up messages of a session between two peers, and tells
 * each peer the address it sees it at. No application byte passes here.
 */
#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

#define NBUCKET 65536		/* names and sessions hash into this many */
#define OUT_MAX 65536		/* a client that lets more pile up is dropped */
#define SESS_PER_CONN 32	/* open sessions one client may start */
#define SESS_TTL 120000		/* ms a session's messages are routed */
#define LOGON_MS 10000		/* time to log on after connecting */
#define LINE_MS 10000		/* time to finish a started line */
#define NEW_MAX 4096		/* connections not logged on, in all */
#define EVICT_MS 1000		/* one may be evicted after this long */
#define ACCEPT_BURST 64		/* accepts per wakeup, so a flood cannot hog */
#define PAUSE_MS 250		/* how long to stop accepting when out of fds */
#define FAIL_FREE 5		/* wrong secrets a name may have at once... */
#define FAIL_WINDOW 60000	/* ...forgotten after this many quiet ms */
#define HOLD_MAX 2000		/* longest a log-on's answer is held back */
#define RATE_BURST 32		/* INVITEs and RELAYs an inviter may send at once */
#define RATE_PER_S 8		/* ...and then this many a second */
#define SLOTS 16		/* dials in flight to one listener */
#define SLOTS_EACH 4		/* ...of which one inviter may hold */
#define SLOT_MS 3000		/* a dial budget (P2P_TIMEOUT's default) */
#define ACK_MS 1000		/* a listener answers an INVITE within this */
#define CLAIM_MS 2000		/* -o -r: a LISTEN waits this long for Redis */
#define SWEEP_MS 1000		/* every table is swept whole this often */
#define RENEW_PASS_MS 250	/* -r: the renewals walk every conn this often */
#define RENEW_TICK_MS 20	/* -r: ...a slice at least this often */

enum { ST_NEW, ST_HOLD, ST_ON, ST_LISTEN, ST_CLOSING, ST_DEAD };

struct sess;
TAILQ_HEAD(sessq, sess);
struct conn;
TAILQ_HEAD(connq, conn);

struct conn {
	int fd;
	int state;
	unsigned long serial;	/* tells a reused fd from the one a session knew */
	char name[NAME_MAX_ + 1];
	char observed[ADDR_STR];
	struct source *src;
	struct linebuf *lb;	/* only while a line is partly read */
	char *out;		/* lines not yet written, oldest first */
	size_t outlen, outcap;
	int outq;		/* on outq: written before the next wait */
	int outwait;		/* the socket was full: EPOLLOUT asked */
	TAILQ_ENTRY(conn) outqe;
	long born, last_in, line_since;
	int pinged, nsess;
	char *addrs;		/* a listener's standing candidates, or NULL */
	struct conn *next_name;
	int isnew;		/* on the queues of clients not logged on */
	TAILQ_ENTRY(conn) newq, srcq;	/* all such; those of our source */
	long hold_until;	/* ST_HOLD: when the log-on is answered */
	int hold_ok, hold_listen;
	int claiming;		/* ST_HOLD: for Redis's verdict on the name */
	long claimed_at;	/* -r: when its name was last claimed */
	TAILQ_ENTRY(conn) holdq;
	struct sessq slots;	/* a listener's dials in flight, oldest first */
	int nslots;
	char punching[ID_HEX + 1];	/* the session its PUNCH waits in */
	struct conn *next_grave;
};

struct sess {
	char id[ID_HEX + 1];
	int fd[2];		/* inviter, invitee */
	unsigned long serial[2];
	long expires;
	long t0, ack_by;	/* INVITE passed on; the listener must answer by */
	int acking, slotted;	/* on the ack queue; holds a listener's slot */
	char who[NAME_MAX_ + 1];	/* the inviter */
	char to[NAME_MAX_ + 1];		/* the invitee */
	int pfd[2];		/* each party's PUNCH connection, until both are in */
	unsigned long pserial[2];
	char plocal[2][ADDR_STR];	/* ...and the local end it named */
	int nopunch;		/* the invitee's ladder has ended (FAIL) */
	int pnow;		/* a party fires at once: so must the other */
	int pleft;		/* bit per side: its PUNCH connection closed unpaired */
	int rside;		/* -r: the side at another front end, or -1 */
	char rfe[CL_FE_HEX + 1];	/* ...that front end, once known */
	int routed;		/* ...it has the invitation (SENT) */
	int rpunch;		/* ...its party's PUNCH is in: */
	char robs[ADDR_STR], rlocal[ADDR_STR];
	int rrtt;
	TAILQ_ENTRY(sess) ackq, slotq, lslot;
	struct sess *next;
};

struct user {
	char *name, *secret;
};

/* What rvd remembers of one source (an IPv4 address, or an IPv6 /64). */
struct source {
	char ip[ADDR_STR];
	int conns;		/* open connections from it */
	int closing;		/* ...of which refused, lingering */
	struct connq fresh;	/* those not logged on, oldest first */
	struct source *next;
};

/* What rvd remembers of one name: wrong secrets, and its invitations. */
struct who {
	char name[NAME_MAX_ + 1];
	int fails;		/* wrong secrets lately */
	long fail_at;		/* the last one */
	long until;		/* log-ons for it are answered no sooner */
	long tat;		/* INVITE/RELAY: when its allowance is full again */
	struct who *next;
};

/* Events logged at most once a second each, with a count of the rest. */
enum { LG_ACCEPT, LG_EVICT, LG_PERSRC, LG_WRONG, LG_INUSE, LG_RATE,
    LG_BUSY, LG_NOTON, LG_BAD, LG_N };
static const char *lgname[LG_N] = { "accept", "evicted", "per-source",
    "refused", "name in use", "rate", "busy", "not logged on", "bad input" };
static struct { long at; int quiet; } lg[LG_N];

static struct source *sources[NBUCKET];
static struct who *whos[NBUCKET];
static int per_source = 100, new_max = NEW_MAX, nnew;
static struct conn **conns;	/* by fd */
static int nconns, maxfd;
static struct conn *names[NBUCKET];
static struct sess *sessions[NBUCKET];
static int nsessions;
static unsigned long serials;
static struct user *users;
static int nusers, usersfd = -1, open_names;
static const char *usersfile;
static const char *relay = "-";	/* WELCOME's word: the -R list, or "-" */
static const char *redis_url;	/* -r: front ends share names through it */
static char relays[RV_RELAYS * (HOSTPORT_MAX + 1)];
static int ep, lfd = -1, keepalive_ms = 30000;
static long accept_resume;
static struct connq newq = TAILQ_HEAD_INITIALIZER(newq);
static struct connq holdq = TAILQ_HEAD_INITIALIZER(holdq);
static struct sessq ackq = TAILQ_HEAD_INITIALIZER(ackq);
static struct sessq slotq = TAILQ_HEAD_INITIALIZER(slotq);
static struct connq outq = TAILQ_HEAD_INITIALIZER(outq);	/* to write */
static struct conn *grave;	/* closed this turn, freed at its end */
static volatile sig_atomic_t stopping, reload;

static void conn_close(struct conn *c, const char *why);
static void conn_read(struct conn *c);
static void listener_claim(struct conn *c);
static int claim_hold(struct conn *c);
static void invite_remote(struct conn *c, struct rvcmd *m);
static void relay_remote(struct conn *c, struct rvcmd *m);
static void punch_remote(struct sess *s, struct conn *c, int side);
static void punch_left(struct conn *c);
static struct sess *sess_new(const char *id, const char *who, const char *to);
static void sess_add(struct sess *s);
static void ack_await(struct sess *s, struct conn *p);

/* FNV-1a: short keys, spread well enough for a table this size. */
static unsigned
hash(const char *s)
{
	unsigned h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h % NBUCKET;
}

/*
 * Log a line of a kind that an attacker can repeat at will: the first in a
 * second is written, the rest counted and the count written with the next.
 */
static void
lograte(int kind, const char *fmt, ...)
{
	char buf[LINE_MAX_];
	long now = now_ms();
	va_list ap;

	if (now - lg[kind].at < 1000 && lg[kind].at != 0) {
		lg[kind].quiet++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (lg[kind].quiet > 0)
		logline("%s (and %d more %s lines)", buf, lg[kind].quiet,
		    lgname[kind]);
	else
		logline("%s", buf);
	lg[kind].at = now;
	lg[kind].quiet = 0;
}

/* Say how many lines of each kind went unwritten, once their second is up. */
static void
lograte_flush(void)
{
	long now = now_ms();
	int k;

	for (k = 0; k < LG_N; k++)
		if (lg[k].quiet > 0 && now - lg[k].at >= 1000) {
			logline("%d more %s lines", lg[k].quiet, lgname[k]);
			lg[k].quiet = 0;
			lg[k].at = now;
		}
}

/* The epoll events c waits for: none while its log-on is held. */
static void
conn_events(struct conn *c)
{
	uint32_t ev = c->state == ST_HOLD ? 0 : EPOLLIN;

	if (c->outwait)
		ev |= EPOLLOUT;
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &(struct epoll_event){
	    .events = ev, .data.ptr = c });
}

/*
 * Write what is queued for c now, as far as its socket takes it; the rest
 * waits for EPOLLOUT. An error closes c.
 */
static void
conn_out(struct conn *c)
{
	ssize_t w;

	if (c->outq) {
		TAILQ_REMOVE(&outq, c, outqe);
		c->outq = 0;
	}
	if (c->outlen == 0 || c->state == ST_DEAD)
		return;
	if ((w = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL)) == -1) {
		if (errno != EAGAIN && errno != EINTR) {
			conn_close(c, strerror(errno));
			return;
		}
		w = 0;
	}
	memmove(c->out, c->out + w, c->outlen - w);
	c->outlen -= w;
	if (c->outlen == 0) {
		free(c->out);
		c->out = NULL;
		c->outcap = 0;
	}
	if (c->outwait != (c->outlen > 0)) {
		c->outwait = c->outlen > 0;
		conn_events(c);
	}
}

/*
 * Write what one event (or the timers of a turn) queued, one send(2) per
 * client: a send per line was most of rvd's work under a flood of lines.
 * Not once a turn: answers then waited behind up to 256 events' work (the
 * invitation p99 under bench/rvd --hostile).
 */
static void
out_flush(void)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&outq)) != NULL)
		conn_out(c);
}

/*
 * Queue a line for c, written once the event at hand is dealt with (in
 * order, after those queued before). A client that stops reading is
 * dropped, once what its socket would not take passes OUT_MAX (closed,
 * but not freed before the end of this turn of the loop: callers may
 * still look at c, and see ST_DEAD).
 */
static void
conn_send(struct conn *c, const char *fmt, ...)
{
	char buf[LINE_MAX_ + 2];
	va_list ap;
	size_t cap;
	int n;

	if (c->state == ST_DEAD)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, LINE_MAX_ + 1, fmt, ap);
	va_end(ap);
	if (n < 0 || n > LINE_MAX_)
		n = LINE_MAX_;
	buf[n++] = '\n';
	/* Only what the kernel would not take counts against the cap. */
	if (c->outlen + n > OUT_MAX && c->outq)
		conn_out(c);
	if (c->state == ST_DEAD)
		return;
	if (c->outlen + n > OUT_MAX) {
		conn_close(c, "not reading");
		return;
	}
	if (c->outcap < c->outlen + n) {
		for (cap = c->outcap ? c->outcap : 512; cap < c->outlen + n;)
			cap *= 2;
		if ((c->out = realloc(c->out, cap)) == NULL)
			err(EX_SYSTEM, "realloc");
		c->outcap = cap;
	}
	memcpy(c->out + c->outlen, buf, n);
	c->outlen += n;
	if (!c->outq && !c->outwait) {
		TAILQ_INSERT_TAIL(&outq, c, outqe);
		c->outq = 1;
	}
}

/* c's "fd.serial": what names it to other front ends (-r). */
static char *
conn_id(struct conn *c, char *buf, size_t n)
{
	snprintf(buf, n, "%d.%lu", c->fd, c->serial);
	return buf;
}

/* The listener that holds name, if any. */
static struct conn *
name_find(const char *name)
{
	struct conn *c;

	for (c = names[hash(name)]; c != NULL; c = c->next_name)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

/* Let go of c's claim on its name, here and (-r) in Redis. */
static void
name_drop(struct conn *c)
{
	struct conn **p;
	char id[32];

	if (c->claimed_at != 0 && cluster_up())
		cluster_release(c->name, conn_id(c, id, sizeof(id)));
	for (p = &names[hash(c->name)]; *p != NULL; p = &(*p)->next_name)
		if (*p == c) {
			*p = c->next_name;
			return;
		}
}

/* The entry for name, made when new and make is set; or NULL. */
static struct who *
who_get(const char *name, int make)
{
	unsigned h = hash(name);
	struct who *w;

	for (w = whos[h]; w != NULL; w = w->next)
		if (strcmp(w->name, name) == 0)
			return w;
	if (!make)
		return NULL;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		err(EX_SYSTEM, "calloc");
	strlcpy(w->name, name, sizeof(w->name));
	w->next = whos[h];
	whos[h] = w;
	return w;
}

/*
 * Whether the inviter name may send one more INVITE or RELAY now: a
 * bucket of RATE_BURST refilled at RATE_PER_S (kept as the time it is full).
 */
static int
who_rate(const char *name)
{
	struct who *w = who_get(name, 1);
	long now = now_ms(), cost = 1000 / RATE_PER_S;

	if (w->tat < now)
		w->tat = now;
	if (w->tat - now > (RATE_BURST - 1) * cost)
		return 0;
	w->tat += cost;
	return 1;
}

/*
 * Count a wrong secret for name. After FAIL_FREE of them, each answer for
 * the name waits a little longer, doubling up to HOLD_MAX: guessing slows
 * down, and the owner, who is only delayed, still gets in.
 */
static void
who_fail(const char *name)
{
	struct who *w = who_get(name, 1);
	long now = now_ms(), d;

	if (now - w->fail_at > FAIL_WINDOW)
		w->fails = 0;
	w->fails++;
	w->fail_at = now;
	if (w->fails > FAIL_FREE) {
		d = 250L << (w->fails - FAIL_FREE - 1 > 4 ? 4 :
		    w->fails - FAIL_FREE - 1);
		w->until = now + (d > HOLD_MAX ? HOLD_MAX : d);
	}
}

/* Forget the names of bucket i with no recent failure and a full allowance. */
static void
who_sweep(long i, long now)
{
	struct who **p, *w;

	for (p = &whos[i]; (w = *p) != NULL;)
		if (w->tat <= now && (w->fails == 0 ||
		    now - w->fail_at > FAIL_WINDOW)) {
			*p = w->next;
			free(w);
		} else
			p = &w->next;
}

/* The session with this id, or NULL. */
static struct sess *
sess_find(const char *id)
{
	struct sess *s;

	for (s = sessions[hash(id)]; s != NULL; s = s->next)
		if (strcmp(s->id, id) == 0)
			return s;
	return NULL;
}

/* The live client on fd that had serial, or NULL when it has gone. */
static struct conn *
conn_at(int fd, unsigned long serial)
{
	struct conn *c;

	if (fd < 0 || fd >= maxfd || (c = conns[fd]) == NULL)
		return NULL;
	return c->serial == serial ? c : NULL;
}

/* The live client on side i of s, or NULL when it has gone. */
static struct conn *
sess_party(struct sess *s, int i)
{
	return conn_at(s->fd[i], s->serial[i]);
}

/* Give back the listener's slot that s holds, if it holds one. */
static void
slot_put(struct sess *s)
{
	struct conn *p = sess_party(s, 1);

	if (!s->slotted)
		return;
	TAILQ_REMOVE(&slotq, s, slotq);
	if (p != NULL) {
		TAILQ_REMOVE(&p->slots, s, lslot);
		p->nslots--;
	}
	s->slotted = 0;
}

/* How many of listener p's slots the inviter who holds. */
static int
slot_count(struct conn *p, const char *who)
{
	struct sess *x;
	int n = 0;

	TAILQ_FOREACH(x, &p->slots, lslot)
		n += strcmp(x->who, who) == 0;
	return n;
}

/*
 * Take a slot of listener p for s: -1 when its inviter has its share.
 * When all are taken, the oldest of whoever holds the most gives way: a
 * new inviter always gets one, so no inviter can keep a listener from
 * others for longer than a slot lasts.
 */
static int
slot_take(struct conn *p, struct sess *s)
{
	struct sess *x, *victim = NULL;
	int mine = slot_count(p, s->who), most = 0, n;

	if (mine >= SLOTS_EACH)
		return -1;
	if (p->nslots >= SLOTS) {
		TAILQ_FOREACH(x, &p->slots, lslot)
			if ((n = slot_count(p, x->who)) > most) {
				most = n;
				victim = x;
			}
		if (most <= mine)
			return -1;
		vlog("slot of %s for %s given to %s", p->name, victim->who,
		    s->who);
		slot_put(victim);
	}
	TAILQ_INSERT_TAIL(&p->slots, s, lslot);
	TAILQ_INSERT_TAIL(&slotq, s, slotq);
	p->nslots++;
	s->slotted = 1;
	return 0;
}

/* Forget s, and let its inviter start another. */
static void
sess_free(struct sess **p)
{
	struct sess *s = *p;
	struct conn *a = sess_party(s, 0);

	if (a != NULL)
		a->nsess--;
	slot_put(s);
	if (s->acking)
		TAILQ_REMOVE(&ackq, s, ackq);
	*p = s->next;
	free(s);
	nsessions--;
}

/*
 * The source that the address sa counts against: the address itself, or
 * for IPv6 its /64, which one host or home network usually holds whole.
 */
static struct source *
source_get(const struct sockaddr *sa)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
	struct sockaddr_in6 net;
	struct source *src;
	char ip[ADDR_STR];
	unsigned h;

	addr_ip(sa, ip, sizeof(ip));
	if (sa->sa_family == AF_INET6 && strchr(ip, ':') != NULL) {
		net = *s6;
		memset(&net.sin6_addr.s6_addr[8], 0, 8);
		addr_ip((struct sockaddr *)&net, ip, sizeof(ip));
		strlcat(ip, "/64", sizeof(ip));
	}
	h = hash(ip);
	for (src = sources[h]; src != NULL; src = src->next)
		if (strcmp(src->ip, ip) == 0)
			return src;
	if ((src = calloc(1, sizeof(*src))) == NULL)
		err(EX_SYSTEM, "calloc");
	strlcpy(src->ip, ip, sizeof(src->ip));
	TAILQ_INIT(&src->fresh);
	src->next = sources[h];
	sources[h] = src;
	return src;
}

/* Forget the sources of bucket i with no connection. */
static void
source_sweep(long i, long now)
{
	struct source **p, *src;

	for (p = &sources[i]; (src = *p) != NULL;)
		if (src->conns == 0) {
			*p = src->next;
			free(src);
		} else
			p = &src->next;
}

/* Take c off the queues of clients not logged on. */
static void
new_leave(struct conn *c)
{
	if (!c->isnew)
		return;
	TAILQ_REMOVE(&newq, c, newq);
	TAILQ_REMOVE(&c->src->fresh, c, srcq);
	c->isnew = 0;
	nnew--;
}

/* Close c; it is freed at the end of this turn of the loop. */
static void
conn_close(struct conn *c, const char *why)
{
	struct sess *s, *n;

	if (c->state == ST_DEAD)
		return;
	if (why != NULL && (verbose || (c->state != ST_NEW &&
	    c->state != ST_HOLD)))
		logline("close %s %s: %s", c->name[0] ? c->name : "-",
		    c->observed, why);
	if (c->state == ST_LISTEN)
		name_drop(c);
	if (c->punching[0] != '\0')
		punch_left(c);
	while ((s = TAILQ_FIRST(&c->slots)) != NULL)
		slot_put(s);
	/* An inviter gone has ended its dials: their slots go back at once. */
	if (c->nsess > 0)
		for (s = TAILQ_FIRST(&slotq); s != NULL; s = n) {
			n = TAILQ_NEXT(s, slotq);
			if (sess_party(s, 0) == c)
				slot_put(s);
		}
	if (c->state == ST_HOLD)
		TAILQ_REMOVE(&holdq, c, holdq);
	if (c->state == ST_CLOSING)
		c->src->closing--;
	new_leave(c);
	/* Its last lines (ERR ...) go before the close, as far as they fit. */
	if (c->outq)
		TAILQ_REMOVE(&outq, c, outqe);
	c->outq = 0;
	if (c->outlen > 0)
		(void)!send(c->fd, c->out, c->outlen, MSG_NOSIGNAL);
	c->src->conns--;
	conns[c->fd] = NULL;
	close(c->fd);
	nconns--;
	c->outlen = 0;
	c->state = ST_DEAD;
	c->next_grave = grave;
	grave = c;
}

/* Free what was closed during this turn of the loop. */
static void
grave_empty(void)
{
	struct conn *c;

	while ((c = grave) != NULL) {
		grave = c->next_grave;
		free(c->out);
		free(c->lb);
		free(c->addrs);
		free(c);
	}
}

/*
 * Refuse one bad line with an error, then close, as the wire format says.
 * The close lingers: closing with unread input would send a reset, and a
 * reset can destroy the error line before the client reads it.
 */
static void
conn_refuse(struct conn *c, const char *why)
{
	if (c->state == ST_CLOSING)
		return;
	conn_send(c, "ERR - %s", why);
	conn_out(c);
	if (c->state == ST_DEAD)
		return;
	if (c->outlen > 0) {
		conn_close(c, why);
		return;
	}
	if (why != NULL && (verbose || (c->state != ST_NEW &&
	    c->state != ST_HOLD)))
		logline("close %s %s: %s", c->name[0] ? c->name : "-",
		    c->observed, why);
	if (c->state == ST_LISTEN)
		name_drop(c);
	if (c->state == ST_HOLD)
		TAILQ_REMOVE(&holdq, c, holdq);
	new_leave(c);
	c->src->closing++;
	c->state = ST_CLOSING;
	c->born = now_ms();
	conn_events(c);
	shutdown(c->fd, SHUT_WR);
}

/*
 * Close the oldest client of q (newq or a source's) that has not logged
 * on, with an error line it may or may not read: a client with the right
 * secret needs the room more than an idle one. Only one that has had
 * EVICT_MS to log on: a burst of new clients is accepted before any is
 * read. 0 if there was none.
 */
static int
new_evict(struct connq *q, const char *why)
{
	struct conn *c = TAILQ_FIRST(q);

	if (c == NULL || now_ms() - c->born < EVICT_MS)
		return 0;
	lograte(LG_EVICT, "evicted %s: %s", c->observed, why);
	conn_send(c, "ERR - %s", why);
	conn_close(c, NULL);
	return 1;
}

/* Discard what a refused client still sends, until it closes. */
static void
conn_drain(struct conn *c)
{
	char buf[4096];
	ssize_t r;

	while ((r = read(c->fd, buf, sizeof(buf))) > 0)
		;
	if (r == 0 || (errno != EAGAIN && errno != EINTR))
		conn_close(c, NULL);
}

/*
 * Open the users file to read it: by its name, or, when that is refused
 * (rvd has become -U's user since), through the descriptor kept from the
 * start, unless the name now leads to another file (replaced, not edited
 * in place), which *why then says.
 */
static FILE *
users_open(const char **why)
{
	struct stat a, b;
	FILE *f;
	int fd;

	*why = NULL;
	if ((fd = open(usersfile, O_RDONLY | O_CLOEXEC)) != -1) {
		if (usersfd != -1)
			close(usersfd);
		usersfd = fd;
	} else if (errno != EACCES && errno != EPERM)
		return NULL;
	else if (usersfd == -1)
		return NULL;
	else if (stat(usersfile, &b) == 0 && fstat(usersfd, &a) == 0 &&
	    (a.st_dev != b.st_dev || a.st_ino != b.st_ino)) {
		*why = "replaced by a file rvd may not read; edit it in place";
		return NULL;
	}
	if ((fd = dup(usersfd)) == -1)
		return NULL;
	lseek(fd, 0, SEEK_SET);
	if ((f = fdopen(fd, "r")) == NULL)
		close(fd);
	return f;
}

/* Order users by name, for user_ok's binary search. */
static int
user_cmp(const void *a, const void *b)
{
	return strcmp(((const struct user *)a)->name,
	    ((const struct user *)b)->name);
}

/* Load the users file: "name secret" lines; # comments. */
static void
users_load(void)
{
	FILE *f;
	char line[LINE_MAX_ + 2], *w[3];
	const char *why;
	int i, n = 0;

	if (usersfile == NULL)
		return;
	if ((f = users_open(&why)) == NULL) {
		if (users == NULL)
			err(EX_SYSTEM, "%s", usersfile);
		if (why != NULL)
			warnx("keeping old users: %s: %s", usersfile, why);
		else
			warn("keeping old users: %s", usersfile);
		return;
	}
	for (i = 0; i < nusers; i++) {
		explicit_bzero(users[i].secret, strlen(users[i].secret));
		free(users[i].name);
		free(users[i].secret);
	}
	nusers = 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if (line_words(line, w, 3) != 2 || !name_valid(w[0])) {
			warnx("%s: ignoring a bad line", usersfile);
			continue;
		}
		if ((users = reallocarray(users, nusers + 1, sizeof(*users))) == NULL)
			err(EX_SYSTEM, "reallocarray");
		users[nusers].name = strdup(w[0]);
		users[nusers++].secret = strdup(w[1]);
		n++;
	}
	explicit_bzero(line, sizeof(line));
	fclose(f);
	if (users == NULL && (users = calloc(1, sizeof(*users))) == NULL)
		err(EX_SYSTEM, "calloc");
	/* A log-on costs a lookup, not a scan of every user (bench/rvd). */
	qsort(users, nusers, sizeof(*users), user_cmp);
	logline("users: %d from %s", n, usersfile);
}

/* Whether name may log on with secret; *known: whether name has an entry. */
static int
user_ok(const char *name, const char *secret, int *known)
{
	int lo = 0, hi = nusers, mid, ok = 0;

	*known = 0;
	if (usersfile == NULL)
		return 1;
	/* The first line for name; a name may have several (any secret). */
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (strcmp(users[mid].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < nusers && strcmp(users[lo].name, name) == 0; lo++) {
		*known = 1;
		ok |= secret_equal(users[lo].secret, secret ? secret : "");
	}
	return ok;
}

/* Answer a log-on whose verdict is in: welcome c, or refuse it. */
static void
logon_answer(struct conn *c, int ok, int listen)
{
	struct conn *old;

	if (!ok) {
		lograte(LG_WRONG, "refused %s %s: wrong secret", c->name,
		    c->observed);
		c->name[0] = '\0';
		conn_refuse(c, "wrong name or secret");
		return;
	}
	if (listen && (old = name_find(c->name)) != NULL) {
		if (usersfile == NULL) {
			lograte(LG_INUSE, "refused %s %s: name in use", c->name,
			    c->observed);
			c->name[0] = '\0';
			conn_refuse(c, "name in use");
			return;
		}
		/* Authenticated: the newer log-on wins, as after a NAT rebinding. */
		conn_send(old, "ERR - replaced by a newer log-on");
		conn_close(old, "replaced");
	}
	new_leave(c);
	c->state = listen ? ST_LISTEN : ST_ON;
	if (listen) {
		unsigned h = hash(c->name);

		c->next_name = names[h];
		names[h] = c;
	}
	logline("%s %s %s", listen ? "listen" : "logon", c->name, c->observed);
	conn_send(c, "WELCOME %s %s%s", c->observed, relay,
	    open_names ? " open" : "");
	/* -r: the name is ours here; a users file's takes it everywhere. */
	if (listen && c->claimed_at == 0 && c->state == ST_LISTEN)
		listener_claim(c);
}

/*
 * LOGON or LISTEN name [secret]. The secret is checked at once; while the
 * name is being guessed at, the answer, right or wrong, waits (ST_HOLD,
 * not reading further lines) until the name's backoff is over.
 */
static void
do_logon(struct conn *c, struct rvcmd *m)
{
	int listen = m->verb == RV_LISTEN, ok, known;
	struct who *w;

	if (c->state != ST_NEW) {
		conn_refuse(c, "already logged on");
		return;
	}
	ok = user_ok(m->name, m->secret, &known);
	strlcpy(c->name, m->name, sizeof(c->name));
	w = known ? who_get(m->name, 0) : NULL;
	if (!ok && known)
		who_fail(m->name);
	if (w != NULL && w->until > now_ms()) {
		new_leave(c);
		c->state = ST_HOLD;
		c->hold_until = w->until;
		c->hold_ok = ok;
		c->hold_listen = listen;
		TAILQ_INSERT_TAIL(&holdq, c, holdq);
		conn_events(c);
		vlog("holding %s %s until the name's backoff is over", c->name,
		    c->observed);
		return;
	}
	/* -o -r: the first holder anywhere keeps the name; Redis knows. */
	if (ok && listen && open_names && name_find(c->name) == NULL &&
	    claim_hold(c) == 0)
		return;
	logon_answer(c, ok, listen);
}

/* Answer the held log-ons whose time has come, and read on. */
static void
hold_expire(void)
{
	struct conn *c;
	long now = now_ms();

	/* Answering one may close others: start over after each. */
	for (c = TAILQ_FIRST(&holdq); c != NULL;) {
		if (c->hold_until > now) {
			c = TAILQ_NEXT(c, holdq);
			continue;
		}
		TAILQ_REMOVE(&holdq, c, holdq);
		c->state = ST_NEW;
		/* -r: Redis too slow for a verdict; answer alone. */
		c->claiming = 0;
		conn_events(c);
		logon_answer(c, c->hold_ok, c->hold_listen);
		if (c->state == ST_ON || c->state == ST_LISTEN)
			conn_read(c);
		c = TAILQ_FIRST(&holdq);
	}
}

/*
 * Candidates w joined into buf, plus the address we see c at with the port
 * of the first one, unless it is there already: right when c's NAT keeps
 * ports or forwards one, and it spares c a round trip to learn it.
 */
static void
with_observed(struct conn *c, char **w, int n, char *buf, size_t size)
{
	struct addr first;
	char pub[ADDR_STR];
	int i;

	words_join(w, n, buf, size);
	if (n == 0 || n >= TICKET_ADDRS || addr_numeric(w[0], &first) == -1 ||
	    addr_withport(c->observed, addr_port((struct sockaddr *)&first.ss),
	    pub, sizeof(pub)) == -1)
		return;
	for (i = 0; i < n; i++)
		if (strcmp(w[i], pub) == 0)
			return;
	strlcat(buf, " ", size);
	strlcat(buf, pub, size);
}

/* The listener p for an INVITE or RELAY from c, or NULL, answered. */
static struct conn *
invitee(struct conn *c, struct rvcmd *m)
{
	struct conn *p;

	if ((p = name_find(m->name)) == NULL) {
		lograte(LG_NOTON, "invite %s -> %s: not logged on", c->name,
		    m->name);
		conn_send(c, "ERR %s not logged on: %s", m->id, m->name);
		return NULL;
	}
	if (p == c) {
		conn_send(c, "ERR %s cannot invite yourself", m->id);
		return NULL;
	}
	if (!who_rate(c->name)) {
		lograte(LG_RATE, "refused %s %s -> %s: too many requests",
		    m->verb == RV_INVITE ? "invite" : "relay", c->name, p->name);
		conn_send(c, "ERR %s too many requests; try later", m->id);
		return NULL;
	}
	return p;
}

/* INVITE peer id token addr...: record the session, pass it on. */
static void
do_invite(struct conn *c, struct rvcmd *m)
{
	char addrs[LINE_MAX_ + 1];
	struct conn *p;
	struct sess *s;

	if (sess_find(m->id) != NULL) {
		conn_send(c, "ERR %s session exists", m->id);
		return;
	}
	if (c->nsess >= SESS_PER_CONN) {
		conn_send(c, "ERR %s too many sessions", m->id);
		return;
	}
	if (name_find(m->name) == NULL && cluster_up()) {
		invite_remote(c, m);
		return;
	}
	if ((p = invitee(c, m)) == NULL)
		return;
	s = sess_new(m->id, c->name, p->name);
	s->fd[0] = c->fd;
	s->serial[0] = c->serial;
	s->fd[1] = p->fd;
	s->serial[1] = p->serial;
	if (slot_take(p, s) == -1) {
		lograte(LG_BUSY, "refused invite %s -> %s: %d dials in flight",
		    c->name, p->name, slot_count(p, c->name));
		conn_send(c, "ERR %s too many invitations to %s; try later",
		    m->id, p->name);
		free(s);
		return;
	}
	ack_await(s, p);
	sess_add(s);
	c->nsess++;
	logline("invite %s -> %s %s", c->name, p->name, s->id);
	with_observed(c, m->addrs, m->naddr, addrs, sizeof(addrs));
	conn_send(p, "INVITE %s %s %s%s%s", c->name, s->id, m->token,
	    addrs[0] ? " " : "", addrs);
	/* The listener's standing candidates save the inviter a round trip. */
	if (p->state != ST_DEAD && p->addrs != NULL)
		conn_send(c, "SENT %s %s", s->id, p->addrs);
	else
		conn_send(c, "SENT %s", s->id);
}

/*
 * MSG id word...: pass it to the other party of the session. The
 * listener's first one (CAND, or FAIL) acknowledges the INVITE; its FAIL
 * ends its side of the dial, and so the dial's hold on its slot.
 */
static void
do_msg(struct conn *c, struct rvcmd *m)
{
	char words[LINE_MAX_ + 1];
	struct sess *s;
	struct conn *o;
	int side;

	if ((s = sess_find(m->id)) == NULL) {
		conn_send(c, "ERR %s no such session", m->id);
		return;
	}
	if (sess_party(s, 0) == c)
		side = 0;
	else if (sess_party(s, 1) == c)
		side = 1;
	else {
		conn_send(c, "ERR %s no such session", m->id);
		return;
	}
	if (side == 1 && s->acking) {
		TAILQ_REMOVE(&ackq, s, ackq);
		s->acking = 0;
	}
	if (side == 1 && strcmp(m->words[0], "FAIL") == 0) {
		slot_put(s);
		/* Its ladder is over: an inviter's punch waits for nothing. */
		s->nopunch = 1;
		if ((o = conn_at(s->pfd[0], s->pserial[0])) != NULL)
			conn_send(o, "ERR %s peer will not punch", s->id);
		s->pfd[0] = -1;
	}
	if (s->rside == !side) {
		words_join(m->words, m->nwords, words, sizeof(words));
		vlog("msg %s %s -> %s at %s: %s", s->id, c->name,
		    side ? s->who : s->to, s->rfe, m->words[0]);
		if (s->rfe[0] == '\0' && s->rside == 1 && !s->routed) {
			/* Right behind its INVITE (MSG PLAIN), before Redis has
			 * said where: the same way, so it arrives after it. */
			char msg[2 * LINE_MAX_];

			snprintf(msg, sizeof(msg), "MSG %s %s %s", cluster_id(),
			    s->id, words);
			if (cluster_route(s->to, msg, NULL) == -1)
				conn_send(c, "ERR %s peer gone", m->id);
		} else if (s->rfe[0] == '\0' || cluster_publish(s->rfe,
		    "MSG %s %s %s", cluster_id(), s->id, words) == -1)
			conn_send(c, "ERR %s peer gone", m->id);
		return;
	}
	if ((o = sess_party(s, !side)) == NULL) {
		conn_send(c, "ERR %s peer gone", m->id);
		return;
	}
	vlog("msg %s %s -> %s: %s", s->id, c->name, o->name, m->words[0]);
	conn_send(o, "MSG %s %s", s->id, words_join(m->words, m->nwords, words,
	    sizeof(words)));
}

/*
 * RELAY peer sid relayaddr: ask the peer's listener to join a relay
 * session. Rationed with INVITE, but it takes no slot: it is what an
 * inviter does once the dials are over.
 */
static void
do_relay(struct conn *c, struct rvcmd *m)
{
	struct conn *p;

	if (name_find(m->name) == NULL && cluster_up()) {
		relay_remote(c, m);
		return;
	}
	if ((p = invitee(c, m)) == NULL)
		return;
	logline("relay %s -> %s via %s", c->name, p->name, m->relay);
	conn_send(p, "RELAY %s %s %s%s", c->name, m->id, m->relay,
	    m->plain ? " plain" : "");
	conn_send(c, "SENT %s", m->id);
}

/*
 * The side of session s that c's PUNCH is for: a party is known by its
 * name, as the punch comes on a connection of its own; -1 for neither.
 */
static int
punch_side(struct sess *s, struct conn *c)
{
	if (strcmp(c->name, s->who) == 0 && (strcmp(c->name, s->to) != 0 ||
	    conn_at(s->pfd[0], s->pserial[0]) == NULL))
		return 0;
	return strcmp(c->name, s->to) == 0 ? 1 : -1;
}

/*
 * The round trip to c, the PUNCH connection of side of s, in ms. A PUNCH
 * that came in a Fast Open SYN is answered before the handshake's ACK
 * gives the kernel its first sample: then that of the party's session
 * connection, on the same path (0, "no wait", would hold the other side
 * back by half our round trip for nothing).
 */
static int
punch_rtt(struct sess *s, int side, struct conn *c)
{
	struct conn *o;
	int r = fd_rtt_ms(c->fd);

	if (r == 0 && (o = sess_party(s, side)) != NULL)
		r = fd_rtt_ms(o->fd);
	return r;
}

/*
 * PUNCH id localaddr, from a connection logged on from the port its party
 * will punch from (p2p(7), "Hole punching"). Once both parties' are in,
 * each is told the other's mapping (where we see it) and local end, its
 * part in the handshake, and how long to wait so that both SYNs leave at
 * once: half the difference of the two round trips.
 */
static void
do_punch(struct conn *c, struct rvcmd *m)
{
	struct conn *p[2];
	struct sess *s;
	int side, r[2], i;

	if ((s = sess_find(m->id)) == NULL || (side = punch_side(s, c)) == -1) {
		lograte(LG_BAD, "refused punch %s %s: not its session", c->name,
		    c->observed);
		conn_send(c, "ERR %s no such session", m->id);
		return;
	}
	if (side == 0 && s->nopunch) {
		conn_send(c, "ERR %s peer will not punch", m->id);
		return;
	}
	if (s->pleft & 1 << !side) {
		conn_send(c, "ERR %s peer left the punch", m->id);
		return;
	}
	if (!who_rate(c->name)) {
		lograte(LG_RATE, "refused punch %s: too many requests", c->name);
		conn_send(c, "ERR %s too many requests; try later", m->id);
		return;
	}
	s->pfd[side] = c->fd;
	s->pserial[side] = c->serial;
	strlcpy(c->punching, s->id, sizeof(c->punching));
	strlcpy(s->plocal[side], m->addrs[0], sizeof(s->plocal[side]));
	s->pnow |= m->now;
	if (s->rside == !side) {
		punch_remote(s, c, side);
		return;
	}
	p[0] = conn_at(s->pfd[0], s->pserial[0]);
	p[1] = conn_at(s->pfd[1], s->pserial[1]);
	if (p[0] == NULL || p[1] == NULL) {
		vlog("punch %s %s: waiting for its peer", s->id, c->name);
		return;
	}
	for (i = 0; i < 2; i++)
		r[i] = punch_rtt(s, i, p[i]);
	for (i = 0; i < 2; i++)
		conn_send(p[i], "PUNCH %s %s %s %d %s%s", s->id,
		    p[!i]->observed, s->plocal[!i], r[!i] > r[i] ?
		    (r[!i] - r[i]) / 2 : 0, i == 1 ? "dial" : "answer",
		    s->pnow ? " now" : "");
	logline("punch %s %s <-> %s %s", s->who, p[0]->observed, s->to,
	    p[1]->observed);
	s->pfd[0] = s->pfd[1] = -1;
}

/*
 * c, whose PUNCH was in, is closing: if its partner's has not come yet,
 * that one is answered at once (do_punch), not left to wait out its
 * timeout; a partner at another front end is told there (rx_punch).
 */
static void
punch_left(struct conn *c)
{
	struct sess *s = sess_find(c->punching);
	struct conn *o;
	int side;

	for (side = 0; s != NULL && side < 2; side++) {
		if (s->pfd[side] != c->fd || s->pserial[side] != c->serial)
			continue;
		vlog("punch %s %s: left before its peer came", s->id, c->name);
		s->pfd[side] = -1;
		s->pleft |= 1 << side;
		if (s->rside == !side && s->rfe[0] != '\0')
			cluster_publish(s->rfe, "PUNCH %s %s gone", cluster_id(),
			    s->id);
		else if ((o = conn_at(s->pfd[!side], s->pserial[!side])) != NULL)
			conn_send(o, "ERR %s peer left the punch", s->id);
	}
}

/*
 * ADDR word...: a listener's standing candidates, kept to answer INVITE
 * with.
 */
static void
do_addr(struct conn *c, struct rvcmd *m)
{
	char buf[LINE_MAX_ + 1];

	if (c->state != ST_LISTEN) {
		conn_refuse(c, "ADDR is for listeners");
		return;
	}
	with_observed(c, m->addrs, m->naddr, buf, sizeof(buf));
	free(c->addrs);
	c->addrs = buf[0] != '\0' ? strdup(buf) : NULL;
	vlog("addr %s: %s", c->name, buf);
}

/*
 * -r: what Redis says of the name c claimed (its request q): 1 ours, 0
 * kept at another front end, -1 Redis away. A held LISTEN (-o) is answered
 * now; a listener that has lost its name since is closed.
 */
static void
claim_done(struct cl_req *q, int res, const char *fe)
{
	struct conn *c = conn_at(q->fd, q->serial);

	if (c == NULL || strcmp(c->name, q->name) != 0)
		return;
	if (c->state == ST_HOLD && c->claiming && res == -1) {
		/* Redis went: answer alone, from the loop (not inside a read). */
		c->hold_until = 0;
		return;
	}
	if (c->state == ST_HOLD && c->claiming) {
		TAILQ_REMOVE(&holdq, c, holdq);
		c->claiming = 0;
		c->state = ST_NEW;
		conn_events(c);
		if (res == 0) {
			lograte(LG_INUSE, "refused %s %s: name in use at another "
			    "front end", c->name, c->observed);
			c->name[0] = '\0';
			conn_refuse(c, "name in use");
			return;
		}
		logon_answer(c, 1, 1);
		if (c->state == ST_LISTEN)
			conn_read(c);
		return;
	}
	if (res != 0 || c->state != ST_LISTEN)
		return;
	/* Taken elsewhere, newer (users file) or first (-o, after a split). */
	conn_send(c, usersfile ? "ERR - replaced by a newer log-on" :
	    "ERR - name in use");
	conn_close(c, usersfile ? "replaced" : "name in use at another front end");
}

/*
 * When listener c's name is next refreshed: within the second half of
 * CL_REFRESH_MS, at random, so that listeners who logged on together do
 * not all refresh in one burst that holds up the invitations behind it.
 */
static void
claim_stamp(struct conn *c)
{
	c->claimed_at = now_ms() - arc4random_uniform(CL_REFRESH_MS / 2);
}

/* -r: claim listener c's name in Redis. */
static void
listener_claim(struct conn *c)
{
	char id[32];

	if (!cluster_up())
		return;
	claim_stamp(c);
	cluster_claim(c->name, conn_id(c, id, sizeof(id)),
	    usersfile != NULL && !c->claiming,
	    cl_req_new(claim_done, c->fd, c->serial, NULL, c->name));
}

/* -r: the refresh of c's name found its key gone: claim it anew. */
static void
refresh_done(struct cl_req *q, int res, const char *fe)
{
	struct conn *c = conn_at(q->fd, q->serial);

	if (res == 0 && c != NULL && c->state == ST_LISTEN &&
	    strcmp(c->name, q->name) == 0)
		listener_claim(c);
}

/* -r: keep listener c's name alive in Redis. */
static void
listener_refresh(struct conn *c)
{
	if (!cluster_up())
		return;
	claim_stamp(c);
	cluster_refresh(c->name, cl_req_new(refresh_done, c->fd, c->serial,
	    NULL, c->name));
}

/*
 * -o -r: hold c's LISTEN until Redis says whether another front end has
 * the name (or for CLAIM_MS at most); -1 when Redis is away.
 */
static int
claim_hold(struct conn *c)
{
	if (!cluster_up())
		return -1;
	new_leave(c);
	c->state = ST_HOLD;
	c->hold_until = now_ms() + CLAIM_MS;
	c->hold_ok = c->hold_listen = 1;
	c->claiming = 1;
	TAILQ_INSERT_TAIL(&holdq, c, holdq);
	conn_events(c);
	listener_claim(c);
	return 0;
}

/* Redis is (back) up: claim every name held here, as the first time. */
static void
cluster_on_up(void)
{
	int i, n = 0;

	for (i = 0; i < maxfd; i++)
		if (conns[i] != NULL && conns[i]->state == ST_LISTEN) {
			listener_claim(conns[i]);
			n++;
		}
	if (n > 0)
		logline("redis: claimed %d names again", n);
}

/* Put s in the session table. */
static void
sess_add(struct sess *s)
{
	unsigned h = hash(s->id);

	s->next = sessions[h];
	sessions[h] = s;
	nsessions++;
}

/* Take s out of the session table and free it. */
static void
sess_unlink(struct sess *s)
{
	struct sess **p;

	for (p = &sessions[hash(s->id)]; *p != NULL; p = &(*p)->next)
		if (*p == s) {
			sess_free(p);
			return;
		}
}

/*
 * A new session of inviter `who` with id, for peer `to`: both sides here
 * (-r: the caller says which one is at another front end), neither known.
 */
static struct sess *
sess_new(const char *id, const char *who, const char *to)
{
	struct sess *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		err(EX_SYSTEM, "calloc");
	strlcpy(s->id, id, sizeof(s->id));
	strlcpy(s->who, who, sizeof(s->who));
	strlcpy(s->to, to, sizeof(s->to));
	s->rside = -1;
	s->pfd[0] = s->pfd[1] = s->fd[0] = s->fd[1] = -1;
	s->t0 = now_ms();
	s->expires = s->t0 + SESS_TTL;
	return s;
}

/*
 * s's INVITE went to listener p: it must answer within a second, or twice
 * its round trip if longer (ack_expire).
 */
static void
ack_await(struct sess *s, struct conn *p)
{
	int rtt = fd_rtt_ms(p->fd);

	s->ack_by = s->t0 + (2 * rtt > ACK_MS ? 2 * rtt : ACK_MS);
	TAILQ_INSERT_TAIL(&ackq, s, ackq);
	s->acking = 1;
}

/* -r: the session id of q's INVITE: it reached a front end, or nobody. */
static void
route_done(struct cl_req *q, int res, const char *fe)
{
	struct conn *c = conn_at(q->fd, q->serial);
	struct sess *s = sess_find(q->id);

	if (s == NULL || s->rside != 1 || sess_party(s, 0) != c)
		return;
	if (res == 1 && fe != NULL && hex_valid(fe, CL_FE_HEX)) {
		if (s->rfe[0] == '\0')
			strlcpy(s->rfe, fe, sizeof(s->rfe));
		return;
	}
	if (s->routed)
		return;
	lograte(LG_NOTON, "invite %s -> %s: not logged on", q->name[0] ?
	    s->who : "-", q->name);
	if (c != NULL)
		conn_send(c, "ERR %s not logged on: %s", q->id, q->name);
	sess_unlink(s);
}

/*
 * -r: INVITE for a peer not logged on here: pass it through Redis to the
 * front end where it is; that one answers SENT, or ERR.
 */
static void
invite_remote(struct conn *c, struct rvcmd *m)
{
	char addrs[LINE_MAX_ + 1], msg[2 * LINE_MAX_];
	struct sess *s;

	if (!who_rate(c->name)) {
		lograte(LG_RATE, "refused invite %s -> %s: too many requests",
		    c->name, m->name);
		conn_send(c, "ERR %s too many requests; try later", m->id);
		return;
	}
	s = sess_new(m->id, c->name, m->name);
	s->rside = 1;
	s->fd[0] = c->fd;
	s->serial[0] = c->serial;
	sess_add(s);
	c->nsess++;
	logline("invite %s -> %s %s via redis", c->name, m->name, s->id);
	with_observed(c, m->addrs, m->naddr, addrs, sizeof(addrs));
	snprintf(msg, sizeof(msg), "INVITE %s %s %s %s %s%s%s", cluster_id(),
	    c->name, m->name, s->id, m->token, addrs[0] ? " " : "", addrs);
	cluster_route(m->name, msg, cl_req_new(route_done, c->fd, c->serial,
	    s->id, m->name));
}

/* -r: a RELAY that found no front end with its peer (q->id the sid). */
static void
relay_done(struct cl_req *q, int res, const char *fe)
{
	struct conn *c = conn_at(q->fd, q->serial);

	if (res == 1 || c == NULL)
		return;
	lograte(LG_NOTON, "relay %s -> %s: not logged on", c->name, q->name);
	conn_send(c, "ERR %s not logged on: %s", q->id, q->name);
}

/* -r: RELAY for a peer not logged on here; its front end answers (TELL). */
static void
relay_remote(struct conn *c, struct rvcmd *m)
{
	char msg[2 * LINE_MAX_], id[32];

	if (!who_rate(c->name)) {
		lograte(LG_RATE, "refused relay %s -> %s: too many requests",
		    c->name, m->name);
		conn_send(c, "ERR %s too many requests; try later", m->id);
		return;
	}
	logline("relay %s -> %s via %s via redis", c->name, m->name, m->relay);
	snprintf(msg, sizeof(msg), "RELAY %s %s %s %s %s %s%s", cluster_id(),
	    conn_id(c, id, sizeof(id)), c->name, m->name, m->id, m->relay,
	    m->plain ? " plain" : "");
	cluster_route(m->name, msg, cl_req_new(relay_done, c->fd, c->serial,
	    m->id, m->name));
}

/* -r: both PUNCHes of s are in, ours from c on side: answer ours. */
static void
punch_pair(struct sess *s, struct conn *c, int side)
{
	int r = punch_rtt(s, side, c);

	conn_send(c, "PUNCH %s %s %s %d %s%s", s->id, s->robs, s->rlocal,
	    s->rrtt > r ? (s->rrtt - r) / 2 : 0, side == 1 ? "dial" : "answer",
	    s->pnow ? " now" : "");
	logline("punch %s %s <-> %s %s via redis", s->who, side == 0 ?
	    c->observed : s->robs, s->to, side == 1 ? c->observed : s->robs);
	s->pfd[side] = -1;
	s->rpunch = 0;
}

/*
 * -r: a PUNCH from c, whose party is at another front end: tell that one
 * where we see c, and answer c once its party's is in.
 */
static void
punch_remote(struct sess *s, struct conn *c, int side)
{
	if (s->rfe[0] == '\0' || cluster_publish(s->rfe, "PUNCH %s %s %s %s %d%s",
	    cluster_id(), s->id, c->observed, s->plocal[side],
	    punch_rtt(s, side, c), s->pnow ? " now" : "") == -1) {
		conn_send(c, "ERR %s peer gone", s->id);
		s->pfd[side] = -1;
		return;
	}
	if (s->rpunch)
		punch_pair(s, c, side);
	else
		vlog("punch %s %s: waiting for its peer", s->id, c->name);
}

/* -r: the session m names, mirrored here for its party at m's front end. */
static struct sess *
rx_sess(struct clmsg *m)
{
	struct sess *s = sess_find(m->id);

	if (s == NULL || s->rside == -1)
		return NULL;
	if (s->rfe[0] == '\0' && s->rside == 1)
		strlcpy(s->rfe, m->fe, sizeof(s->rfe));
	return strcmp(s->rfe, m->fe) == 0 ? s : NULL;
}

/* -r: an invitation from another front end, for our listener m->to. */
static void
rx_invite(struct clmsg *m)
{
	char addrs[LINE_MAX_ + 1];
	struct conn *p = name_find(m->to);
	struct sess *s;

	if (p == NULL) {
		cluster_publish(m->fe, "ERR %s %s not logged on: %s",
		    cluster_id(), m->id, m->to);
		return;
	}
	if (sess_find(m->id) != NULL) {
		cluster_publish(m->fe, "ERR %s %s session exists", cluster_id(),
		    m->id);
		return;
	}
	s = sess_new(m->id, m->from, p->name);
	s->rside = 0;
	strlcpy(s->rfe, m->fe, sizeof(s->rfe));
	s->fd[1] = p->fd;
	s->serial[1] = p->serial;
	if (slot_take(p, s) == -1) {
		lograte(LG_BUSY, "refused invite %s -> %s: %d dials in flight",
		    s->who, p->name, slot_count(p, s->who));
		cluster_publish(m->fe, "ERR %s %s too many invitations to %s; "
		    "try later", cluster_id(), m->id, p->name);
		free(s);
		return;
	}
	ack_await(s, p);
	sess_add(s);
	logline("invite %s -> %s %s from %s", s->who, p->name, s->id, m->fe);
	cluster_publish(m->fe, "SENT %s %s%s%s", cluster_id(), s->id,
	    p->addrs ? " " : "", p->addrs ? p->addrs : "");
	words_join(m->words, m->nwords, addrs, sizeof(addrs));
	conn_send(p, "INVITE %s %s %s%s%s", s->who, s->id, m->token,
	    addrs[0] ? " " : "", addrs);
}

/* -r: our inviter's INVITE reached its listener: SENT, and its candidates. */
static void
rx_sent(struct clmsg *m)
{
	char words[LINE_MAX_ + 1];
	struct sess *s = rx_sess(m);
	struct conn *a;

	if (s == NULL || s->rside != 1 || s->routed)
		return;
	s->routed = 1;
	if ((a = sess_party(s, 0)) == NULL)
		return;
	words_join(m->words, m->nwords, words, sizeof(words));
	conn_send(a, "SENT %s%s%s", s->id, words[0] ? " " : "", words);
}

/* -r: an error for our party of a session; an INVITE refused ends it. */
static void
rx_err(struct clmsg *m)
{
	char words[LINE_MAX_ + 1];
	struct sess *s = rx_sess(m);
	struct conn *o;

	if (s == NULL)
		return;
	if ((o = sess_party(s, !s->rside)) != NULL) {
		words_join(m->words, m->nwords, words, sizeof(words));
		conn_send(o, "ERR %s %s", s->id, words);
	}
	if (s->rside == 1 && !s->routed)
		sess_unlink(s);
}

/* -r: a session's message from the party at another front end. */
static void
rx_msg(struct clmsg *m)
{
	char words[LINE_MAX_ + 1];
	struct sess *s = rx_sess(m);
	struct conn *o;

	if (s == NULL)
		return;
	if (s->rside == 1 && strcmp(m->words[0], "FAIL") == 0) {
		/* The invitee's ladder is over: our inviter's punch waits for
		 * nothing. */
		s->nopunch = 1;
		if ((o = conn_at(s->pfd[0], s->pserial[0])) != NULL)
			conn_send(o, "ERR %s peer will not punch", s->id);
		s->pfd[0] = -1;
	}
	if ((o = sess_party(s, !s->rside)) == NULL) {
		cluster_publish(m->fe, "ERR %s %s peer gone", cluster_id(), s->id);
		return;
	}
	words_join(m->words, m->nwords, words, sizeof(words));
	vlog("msg %s from %s -> %s: %s", s->id, m->fe, o->name, m->words[0]);
	conn_send(o, "MSG %s %s", s->id, words);
}

/* -r: a relay request from another front end, for our listener m->to. */
static void
rx_relay(struct clmsg *m)
{
	struct conn *p = name_find(m->to);

	if (p == NULL) {
		cluster_publish(m->fe, "TELL %s %s ERR %s not logged on: %s",
		    cluster_id(), m->conn, m->id, m->to);
		return;
	}
	logline("relay %s -> %s via %s from %s", m->from, p->name, m->relay,
	    m->fe);
	conn_send(p, "RELAY %s %s %s%s", m->from, m->id, m->relay,
	    m->plain ? " plain" : "");
	cluster_publish(m->fe, "TELL %s %s SENT %s", cluster_id(), m->conn,
	    m->id);
}

/* -r: a line another front end has for our connection m->conn. */
static void
rx_tell(struct clmsg *m)
{
	char words[LINE_MAX_ + 1];
	unsigned long serial;
	struct conn *c;
	int fd;

	if (sscanf(m->conn, "%d.%lu", &fd, &serial) != 2 ||
	    (c = conn_at(fd, serial)) == NULL ||
	    (c->state != ST_ON && c->state != ST_LISTEN))
		return;
	conn_send(c, "%s", words_join(m->words, m->nwords, words,
	    sizeof(words)));
}

/* -r: our listener m->to has logged on again elsewhere (users file). */
static void
rx_kick(struct clmsg *m)
{
	struct conn *c = name_find(m->to);
	char id[32];

	if (c == NULL || strcmp(conn_id(c, id, sizeof(id)), m->conn) != 0)
		return;
	conn_send(c, "ERR - replaced by a newer log-on");
	conn_close(c, "replaced");
}

/* -r: the PUNCH of a session's party at another front end. */
static void
rx_punch(struct clmsg *m)
{
	struct sess *s = rx_sess(m);
	struct conn *p;
	int side;

	if (s == NULL)
		return;
	side = !s->rside;
	if (m->gone) {
		/* Its PUNCH connection closed unpaired: ours need not wait. */
		s->rpunch = 0;
		s->pleft |= 1 << s->rside;
		if ((p = conn_at(s->pfd[side], s->pserial[side])) != NULL)
			conn_send(p, "ERR %s peer left the punch", s->id);
		s->pfd[side] = -1;
		return;
	}
	strlcpy(s->robs, m->observed, sizeof(s->robs));
	strlcpy(s->rlocal, m->local, sizeof(s->rlocal));
	s->rrtt = m->rtt;
	s->rpunch = 1;
	s->pnow |= m->now;
	if ((p = conn_at(s->pfd[side], s->pserial[side])) != NULL)
		punch_pair(s, p, side);
}

/* -r: one message from another front end; what does not parse is dropped. */
static void
cluster_message(char *msg)
{
	struct clmsg m;

	if (cluster_parse(msg, &m) == -1) {
		lograte(LG_BAD, "redis: dropped a message that does not parse");
		return;
	}
	switch (m.kind) {
	case CL_INVITE:
		rx_invite(&m);
		break;
	case CL_SENT:
		rx_sent(&m);
		break;
	case CL_ERR:
		rx_err(&m);
		break;
	case CL_MSG:
		rx_msg(&m);
		break;
	case CL_RELAY:
		rx_relay(&m);
		break;
	case CL_TELL:
		rx_tell(&m);
		break;
	case CL_KICK:
		rx_kick(&m);
		break;
	case CL_PUNCH:
		rx_punch(&m);
		break;
	}
}

/* Act on one complete line from c. */
static void
conn_line(struct conn *c, char *line)
{
	struct rvcmd m;

	if (rvcmd_parse(line, &m) == -1) {
		conn_refuse(c, m.why);
		return;
	}
	switch (m.verb) {
	case RV_LOGON:
	case RV_LISTEN:
		do_logon(c, &m);
		return;
	case RV_PING:
		conn_send(c, "PONG");
		return;
	case RV_PONG:
		return;
	case RV_QUIT:
		conn_close(c, "quit");
		return;
	}
	if (c->state == ST_NEW)
		conn_refuse(c, "log on first");
	else if (m.verb == RV_INVITE)
		do_invite(c, &m);
	else if (m.verb == RV_MSG)
		do_msg(c, &m);
	else if (m.verb == RV_ADDR)
		do_addr(c, &m);
	else if (m.verb == RV_PUNCH)
		do_punch(c, &m);
	else
		do_relay(c, &m);
}

/* Keep what is left of a partial line in c's own buffer, or free it. */
static void
conn_keep(struct conn *c, struct linebuf *lb)
{
	if (lb->len == 0) {
		free(c->lb);
		c->lb = NULL;
		c->line_since = 0;
		return;
	}
	if (c->lb == NULL) {
		if ((c->lb = malloc(sizeof(*c->lb))) == NULL)
			err(EX_SYSTEM, "malloc");
		memcpy(c->lb, lb, sizeof(*lb));
	}
	if (c->line_since == 0)
		c->line_since = now_ms();
}

/*
 * Read what c sent and act on each complete line. Most clients send whole
 * lines, so they are read into one shared buffer: an idle peer costs no
 * line buffer of its own. A held log-on stops the reading; the lines
 * after it wait in c's buffer, and are read once it is answered.
 */
static void
conn_read(struct conn *c)
{
	static struct linebuf scratch;
	char line[LINE_MAX_ + 1];
	struct linebuf *lb;
	size_t room;
	int r, n;

	if (c->state == ST_CLOSING) {
		conn_drain(c);
		return;
	}
	if ((lb = c->lb) == NULL) {
		lb = &scratch;
		scratch.len = 0;
	}
	for (;;) {
		room = sizeof(lb->buf) - lb->len;
		r = linebuf_fill(lb, c->fd);
		if (r == 0) {
			conn_close(c, "closed");
			return;
		}
		if (r == -1 && errno != EAGAIN && errno != EINTR &&
		    errno != EMSGSIZE) {
			conn_close(c, strerror(errno));
			return;
		}
		if (r > 0) {
			c->last_in = now_ms();
			c->pinged = 0;
		}
		while ((n = linebuf_next(lb, line, sizeof(line))) >= 0) {
			conn_line(c, line);
			/* Nothing after a refused line is acted on. */
			if (c->state == ST_DEAD || c->state == ST_CLOSING)
				return;
			if (c->state == ST_HOLD) {
				conn_keep(c, lb);
				return;
			}
		}
		if (n == -2) {
			conn_refuse(c, lb->len > LINE_MAX_ ?
			    "line too long" : "bad byte");
			return;
		}
		/* A short read emptied the socket: no need to hear EAGAIN. */
		if (r == -1 || (size_t)r < room)
			break;
	}
	conn_keep(c, lb);
}

/* Stop accepting for a moment: out of fds, retrying at once would spin. */
static void
accept_pause(void)
{
	lograte(LG_ACCEPT, "accept: %s; pausing", strerror(errno));
	epoll_ctl(ep, EPOLL_CTL_DEL, lfd, NULL);
	accept_resume = now_ms() + PAUSE_MS;
}

/* Take the client on fd, from ss; it may cost an idle one its place. */
static void
conn_new(int fd, struct sockaddr_storage *ss)
{
	struct conn *c;

	/* Two lines to one client close together (SENT, then MSG) must not
	 * wait on Nagle for the first one's ACK. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	if (fd >= maxfd) {
		int m = fd * 2 + 64;

		if ((conns = reallocarray(conns, m, sizeof(*conns))) == NULL)
			err(EX_SYSTEM, "reallocarray");
		memset(conns + maxfd, 0, (m - maxfd) * sizeof(*conns));
		maxfd = m;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		err(EX_SYSTEM, "calloc");
	c->src = source_get((struct sockaddr *)ss);
	c->fd = fd;
	c->serial = ++serials;
	c->born = c->last_in = now_ms();
	TAILQ_INIT(&c->slots);
	addr_fmt((struct sockaddr *)ss, c->observed, sizeof(c->observed));
	/* Over the cap with none old enough to go, the fd limit still holds. */
	if (nnew >= new_max)
		new_evict(&newq, "too many clients not logged on");
	/* Refused clients on their way out do not count, up to a point. */
	if (c->src->conns - c->src->closing >= per_source &&
	    !new_evict(&c->src->fresh, "too many connections from your address")) {
		/* Every other one from there has logged on: refuse this one. */
		c->src->conns++;
		conns[fd] = c;
		nconns++;
		c->state = ST_NEW;
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &(struct epoll_event){
		    .events = EPOLLIN, .data.ptr = c });
		lograte(LG_PERSRC, "refused %s: more than %d connections",
		    c->src->ip, per_source);
		if (c->src->conns > 2 * per_source)
			conn_close(c, NULL);	/* no lingering for a flood */
		else
			conn_refuse(c, "too many connections from your address");
		return;
	}
	c->src->conns++;
	conns[fd] = c;
	nconns++;
	c->isnew = 1;
	nnew++;
	TAILQ_INSERT_TAIL(&newq, c, newq);
	TAILQ_INSERT_TAIL(&c->src->fresh, c, srcq);
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &(struct epoll_event){
	    .events = EPOLLIN, .data.ptr = c });
	vlog("connect %s", c->observed);
}

/*
 * Take new clients, a burst at a time. Out of descriptors, the oldest
 * client that has not logged on makes room; with none, accepting pauses.
 */
static void
conn_accept(void)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int i, fd;

	for (i = 0; i < ACCEPT_BURST; i++) {
		len = sizeof(ss);
		fd = accept4(lfd, (struct sockaddr *)&ss, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd != -1) {
			conn_new(fd, &ss);
			continue;
		}
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			if (new_evict(&newq, "rvd is out of descriptors"))
				continue;
			accept_pause();
			return;
		}
		if (errno != ECONNABORTED && errno != EPERM && errno != EINTR)
			return;
	}
}

/*
 * A listener that has not acknowledged an INVITE in time is not there any
 * more (its NAT forgot it, say): tell the inviter at once, and drop the
 * listener, which notices at its next keepalive and logs on again.
 */
static void
ack_expire(void)
{
	struct conn *a, *p;
	struct sess *s;
	long now = now_ms();

	while ((s = TAILQ_FIRST(&ackq)) != NULL && s->ack_by <= now) {
		TAILQ_REMOVE(&ackq, s, ackq);
		s->acking = 0;
		slot_put(s);
		a = sess_party(s, 0);
		p = sess_party(s, 1);
		if (p == NULL)
			continue;
		logline("invite %s -> %s %s: not answering", s->who, p->name,
		    s->id);
		if (a != NULL)
			conn_send(a, "ERR %s peer not answering", s->id);
		else if (s->rside == 0)
			cluster_publish(s->rfe, "ERR %s %s peer not answering",
			    cluster_id(), s->id);
		conn_close(p, "not answering");
	}
	while ((s = TAILQ_FIRST(&slotq)) != NULL && now - s->t0 >= SLOT_MS)
		slot_put(s);
}

/* A table walked a slice at a time (sweep, renew_sweep). */
struct slice {
	long last;		/* when the last slice was walked */
	long at;		/* where the next one starts */
};

/*
 * Walk the next slice of a table of total entries, fn(entry, now) for
 * each, so that the whole is walked every period ms: the share of the
 * table that the time since the last slice is of period (all of it
 * after a longer pause).
 */
static void
slice_walk(struct slice *sl, long total, long period, long now,
    void (*fn)(long, long))
{
	long n;

	if (sl->last == 0 || now - sl->last > period)
		sl->last = now - period;
	n = (total * (now - sl->last) + period - 1) / period;
	if (n == 0)
		return;
	sl->last = now;
	for (; n > 0; n--, sl->at++) {
		if (sl->at >= total)
			sl->at = 0;
		fn(sl->at, now);
	}
}

/* Log-on and line deadlines and keepalives of the client on fd i. */
static void
conn_sweep(long i, long now)
{
	struct conn *c = conns[i];

	if (c == NULL || c->state == ST_HOLD)
		return;
	if (c->state == ST_CLOSING) {
		if (now - c->born > 2000)
			conn_close(c, NULL);
		return;
	}
	if (c->state == ST_NEW && now - c->born > LOGON_MS)
		conn_refuse(c, "log on timeout");
	else if (c->line_since && now - c->line_since > LINE_MS)
		conn_refuse(c, "line timeout");
	else if (now - c->last_in > 2 * keepalive_ms)
		conn_close(c, "keepalive timeout");
	else if (now - c->last_in > keepalive_ms && !c->pinged) {
		c->pinged = 1;
		conn_send(c, "PING");
	}
}

/*
 * Has s lost both parties? A listener at another front end (-r) is never
 * a connection here: it keeps its sessions until they expire, as one here
 * would while logged on, so that a rung whose PUNCH or MSG comes after
 * the inviter's own connection has closed still finds its session.
 */
static int
sess_orphan(struct sess *s)
{
	return s->rside != 1 && sess_party(s, 0) == NULL &&
	    sess_party(s, 1) == NULL;
}

/* Forget the sessions of bucket i that have expired, or lost both parties. */
static void
sess_sweep(long i, long now)
{
	struct sess **p;

	for (p = &sessions[i]; *p != NULL;)
		if ((*p)->expires < now || sess_orphan(*p))
			sess_free(p);
		else
			p = &(*p)->next;
}

/*
 * Every turn of the loop, the slice of each table that is due: each is
 * walked whole once a second, as when it was one walk a second, but a
 * little at a time: the whole walk (45 000 sessions at 5 000 invitations
 * a second) held up the loop for 1.3-2 ms.
 */
static void
sweep(void)
{
	static struct slice conn_sl, src_sl, who_sl, sess_sl;
	long now = now_ms();

	slice_walk(&conn_sl, maxfd, SWEEP_MS, now, conn_sweep);
	slice_walk(&src_sl, NBUCKET, SWEEP_MS, now, source_sweep);
	slice_walk(&who_sl, NBUCKET, SWEEP_MS, now, who_sweep);
	slice_walk(&sess_sl, NBUCKET, SWEEP_MS, now, sess_sweep);
}

/* Act on one event: the listening socket's (data.ptr NULL), or a client's. */
static void
on_event(struct epoll_event *e)
{
	struct conn *c = e->data.ptr;

	if (c == NULL) {
		if (lfd != -1)
			conn_accept();
		return;
	}
	if (redis_url != NULL && cluster_event(e->data.ptr, e->events))
		return;
	if (c->state == ST_DEAD)
		return;
	/* A held log-on still takes its output, or EPOLLOUT would spin. */
	if (e->events & EPOLLOUT)
		conn_out(c);
	if (c->state == ST_HOLD) {
		if (e->events & (EPOLLERR | EPOLLHUP))
			conn_close(c, "hung up");
		return;
	}
	if (c->state != ST_DEAD && (e->events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		conn_read(c);
}

/* -r: renew the name of the listener on fd i, if it is due. */
static void
renew_one(long i, long now)
{
	struct conn *c = conns[i];

	if (c == NULL || c->state != ST_LISTEN ||
	    now - c->claimed_at < CL_REFRESH_MS)
		return;
	if (c->claimed_at == 0)
		listener_claim(c);
	else
		listener_refresh(c);
}

/*
 * -r: renew the names that are due, walking the connections a slice at a
 * time, all of them every RENEW_PASS_MS. A walk of every connection at
 * once, with its renewals, held up the invitations behind it for a
 * millisecond or more (the cross-front-end p99 at 5 000/s).
 */
static void
renew_sweep(void)
{
	static struct slice sl;

	slice_walk(&sl, maxfd, RENEW_PASS_MS, now_ms(), renew_one);
}

/* Milliseconds until the next timer: sweep, a held log-on, an ack, a slot. */
static int
next_timeout(long now, long lastsweep)
{
	long t = lastsweep + SWEEP_MS;
	struct conn *c;
	int r;

	if (accept_resume != 0 && accept_resume < t)
		t = accept_resume;
	TAILQ_FOREACH(c, &holdq, holdq)
		if (c->hold_until < t)
			t = c->hold_until;
	if (!TAILQ_EMPTY(&ackq) && TAILQ_FIRST(&ackq)->ack_by < t)
		t = TAILQ_FIRST(&ackq)->ack_by;
	if (!TAILQ_EMPTY(&slotq) && TAILQ_FIRST(&slotq)->t0 + SLOT_MS < t)
		t = TAILQ_FIRST(&slotq)->t0 + SLOT_MS;
	if (redis_url != NULL && (r = cluster_timeout(now)) >= 0 && now + r < t)
		t = now + r;
	if (redis_url != NULL && now + RENEW_TICK_MS < t)
		t = now + RENEW_TICK_MS;
	return t <= now ? 0 : (int)(t - now);
}

static void
on_signal(int sig)
{
	if (sig == SIGHUP)
		reload = 1;
	else
		stopping = 1;
}

static void
usage(int help)
{
	fprintf(help ? stdout : stderr, "usage: rvd [-hVv] [-c PERSOURCE] [-d FD] "
	    "[-k SECONDS] [-R RELAY]... "
	    "[-r redis://[[USER]:PASSWORD@]HOST[:PORT]] [-U USER] "
	    "-u USERS | -o [ADDR:]PORT\n");
	exit(help ? 0 : EX_USAGE_);
}

/* Add one -R relay to the list WELCOME names. */
static void
relay_add(const char *r)
{
	static int n;

	if (n == RV_RELAYS)
		errx(EX_USAGE_, "more than %d relays (-R)", RV_RELAYS);
	if (!addr_is_hostport(r) || strlen(r) >= HOSTPORT_MAX ||
	    strchr(r, ',') != NULL || !line_printable(r) || strchr(r, ' '))
		errx(EX_USAGE_, "bad -R: %s: HOST:PORT expected", r);
	if (n++ > 0)
		strlcat(relays, ",", sizeof(relays));
	strlcat(relays, r, sizeof(relays));
	relay = relays;
}

/* Size the cap on clients not logged on to the fd limit, leaving room
 * for those who have. */
static void
fit_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY)
		return;
	if ((rlim_t)new_max > rl.rlim_cur / 2)
		new_max = rl.rlim_cur / 2 > 8 ? rl.rlim_cur / 2 : 8;
}

int
main(int argc, char *argv[])
{
	struct epoll_event ev[256];
	long lastsweep = 0, stop_at = 0;
	int ch, i, n, notify = -1;
	const char *e, *runas = NULL;

	for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--help") == 0)
			usage(1);
	opt_version(argc, argv);
	while ((ch = getopt(argc, argv, "c:d:hk:oR:r:U:u:Vv")) != -1) {
		switch (ch) {
		case 'c':
			per_source = strtonum(optarg, 1, 1 << 20, &e);
			if (e != NULL)
				errx(EX_USAGE_, "bad -c: %s", optarg);
			break;
		case 'U':
			runas = optarg;
			break;
		case 'd':
			notify = strtonum(optarg, 0, 1 << 20, &e);
			if (e != NULL)
				errx(EX_USAGE_, "bad -d: %s", optarg);
			break;
		case 'h':
			usage(1);
			break;
		case 'k':
			keepalive_ms = strtonum(optarg, 1, 86400, &e) * 1000;
			if (e != NULL)
				errx(EX_USAGE_, "bad -k: %s", optarg);
			break;
		case 'o':
			open_names = 1;
			break;
		case 'R':
			relay_add(optarg);
			break;
		case 'r':
			redis_url = optarg;
			break;
		case 'u':
			usersfile = optarg;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'V':
			print_version();
		default:
			usage(0);
		}
	}
	if (argc - optind != 1)
		usage(0);
	if (usersfile == NULL && !open_names)
		errx(EX_USAGE_, "no users file: give -u USERS, or -o to let "
		    "anyone take any free name");
	if (usersfile != NULL && open_names)
		errx(EX_USAGE_, "-o and -u exclude each other");
	if (redis_url != NULL) {
		char why[LINE_MAX_];

		/* Before anything starts: a bad URL is a usage error, a name
		 * that does not resolve a system error; resolved once. */
		if ((i = cluster_config(redis_url, getenv("P2P_REDIS_PASSWORD"),
		    why, sizeof(why))) != 0)
			errx(i, "%s", why);
	}
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGTERM, &(struct sigaction){ .sa_handler = on_signal }, NULL);
	sigaction(SIGINT, &(struct sigaction){ .sa_handler = on_signal }, NULL);
	sigaction(SIGHUP, &(struct sigaction){ .sa_handler = on_signal }, NULL);
	users_load();
	fit_fd_limit();
	if ((lfd = listen_tcp(argv[optind], 4096)) == -1)
		errx(errno == EINVAL ? EX_USAGE_ : EX_SYSTEM,
		    "unable to listen on %s: %s", argv[optind], addr_strerror(errno));
	fd_nonblock(lfd, 1);
	if (runas != NULL)
		priv_drop(runas);
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		err(EX_SYSTEM, "epoll_create1");
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &(struct epoll_event){
	    .events = EPOLLIN, .data.ptr = NULL });
	logline("listening on %s, relay %s%s", argv[optind], relay,
	    usersfile ? "" : "; no users file: any free name may be taken");
	if (redis_url != NULL) {
		cluster_start(ep, &(struct cluster_hooks){
		    .message = cluster_message, .up = cluster_on_up });
		logline("redis: front end %s, sharing names through %s",
		    cluster_id(), cluster_where());
	}
	if (notify >= 0) {
		if (write(notify, "\n", 1) != 1)
			warn("readiness fd %d", notify);
		close(notify);
	}
	for (;;) {
		if (reload) {
			reload = 0;
			users_load();
		}
		if (stopping && lfd != -1) {
			logline("stopping: no new clients");
			if (accept_resume == 0)
				epoll_ctl(ep, EPOLL_CTL_DEL, lfd, NULL);
			close(lfd);
			lfd = -1;
			stop_at = now_ms() + 5000;
		}
		if (stop_at && (nsessions == 0 || now_ms() > stop_at))
			break;
		if (redis_url != NULL)
			cluster_flush();
		n = epoll_wait(ep, ev, 256, next_timeout(now_ms(), lastsweep));
		if (n == -1 && errno != EINTR)
			err(EX_SYSTEM, "epoll_wait");
		for (i = 0; i < n; i++) {
			on_event(&ev[i]);
			out_flush();
		}
		if (accept_resume != 0 && now_ms() >= accept_resume) {
			accept_resume = 0;
			if (lfd != -1)
				epoll_ctl(ep, EPOLL_CTL_ADD, lfd,
				    &(struct epoll_event){ .events = EPOLLIN,
				    .data.ptr = NULL });
		}
		hold_expire();
		ack_expire();
		if (redis_url != NULL) {
			cluster_tick();
			renew_sweep();
		}
		sweep();
		if (now_ms() - lastsweep >= SWEEP_MS) {
			lastsweep = now_ms();
			lograte_flush();
		}
		out_flush();
		grave_empty();
	}
	cluster_stop();
	logline("stopped");
	return 0;
}
