/*
 * rvd: the rendezvous daemon. Peers log on by name; rvd routes invitations
 * and the follow-up messages of a session between two peers, and tells
 * each peer the address it sees it at. No application byte passes here.
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
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
#define FAIL_MAX 10		/* refused log-ons a source may have... */
#define FAIL_WINDOW 60000	/* ...in this many ms */

enum { ST_NEW, ST_ON, ST_LISTEN, ST_CLOSING };

struct conn {
	int fd;
	int state;
	unsigned long serial;	/* tells a reused fd from the one a session knew */
	char name[NAME_MAX_ + 1];
	char observed[ADDR_STR];
	struct source *src;
	struct linebuf *lb;	/* only while a line is partly read */
	char *out;
	size_t outlen;
	long born, last_in, line_since;
	int pinged, nsess;
	char *addrs;		/* a listener's standing candidates, or NULL */
	struct conn *next_name;
};

struct sess {
	char id[ID_HEX + 1];
	int fd[2];		/* inviter, invitee */
	unsigned long serial[2];
	long expires;
	struct sess *next;
};

struct user {
	char *name, *secret;
};

/* What rvd remembers of one source address, to ration it. */
struct source {
	char ip[ADDR_STR];
	int conns;		/* open connections from it */
	int fails;		/* refused log-ons in this window */
	long window;		/* when the window of fails began */
	struct source *next;
};

static struct source *sources[NBUCKET];
static int per_source = 100;
static struct conn **conns;	/* by fd */
static int nconns, maxfd;
static struct conn *names[NBUCKET];
static struct sess *sessions[NBUCKET];
static int nsessions;
static unsigned long serials;
static struct user *users;
static int nusers;
static const char *usersfile, *relay = "-";
static int ep, lfd = -1, keepalive_ms = 30000;
static volatile sig_atomic_t stopping, reload;

static void conn_close(struct conn *c, const char *why);

/* FNV-1a: short keys, spread well enough for a table this size. */
static unsigned
hash(const char *s)
{
	unsigned h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h % NBUCKET;
}

/* Queue a line for c; a client that stops reading is dropped. */
static void
conn_send(struct conn *c, const char *fmt, ...)
{
	char buf[LINE_MAX_ + 2];
	va_list ap;
	ssize_t w = 0;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, LINE_MAX_ + 1, fmt, ap);
	va_end(ap);
	if (n < 0 || n > LINE_MAX_)
		n = LINE_MAX_;
	buf[n++] = '\n';
	if (c->outlen == 0 && (w = send(c->fd, buf, n, MSG_NOSIGNAL)) == n)
		return;
	if (w < 0)
		w = 0;
	if (c->outlen + n - w > OUT_MAX) {
		c->outlen = 0;
		conn_close(c, "not reading");
		return;
	}
	if ((c->out = realloc(c->out, c->outlen + n - w)) == NULL)
		err(EX_SYSTEM, "realloc");
	memcpy(c->out + c->outlen, buf + w, n - w);
	c->outlen += n - w;
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &(struct epoll_event){
	    .events = EPOLLIN | EPOLLOUT, .data.fd = c->fd });
}

/* Write what is queued for c, now that its socket has room. */
static void
conn_flush(struct conn *c)
{
	ssize_t w = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL);

	if (w == -1) {
		if (errno != EAGAIN && errno != EINTR)
			conn_close(c, strerror(errno));
		return;
	}
	memmove(c->out, c->out + w, c->outlen - w);
	c->outlen -= w;
	if (c->outlen == 0) {
		free(c->out);
		c->out = NULL;
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &(struct epoll_event){
		    .events = EPOLLIN, .data.fd = c->fd });
	}
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

/* Let go of c's claim on its name. */
static void
name_drop(struct conn *c)
{
	struct conn **p;

	for (p = &names[hash(c->name)]; *p != NULL; p = &(*p)->next_name)
		if (*p == c) {
			*p = c->next_name;
			return;
		}
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

/* The live client on side i of s, or NULL when it has gone. */
static struct conn *
sess_party(struct sess *s, int i)
{
	struct conn *c;

	if (s->fd[i] < 0 || s->fd[i] >= maxfd || (c = conns[s->fd[i]]) == NULL)
		return NULL;
	return c->serial == s->serial[i] ? c : NULL;
}

/* Forget s, and let its inviter start another. */
static void
sess_free(struct sess **p)
{
	struct sess *s = *p;
	struct conn *a = sess_party(s, 0);

	if (a != NULL)
		a->nsess--;
	*p = s->next;
	free(s);
	nsessions--;
}

/* The entry for the source address of sa, made when new. */
static struct source *
source_get(const struct sockaddr *sa)
{
	struct source *src;
	char ip[ADDR_STR];
	unsigned h;

	addr_ip(sa, ip, sizeof(ip));
	h = hash(ip);
	for (src = sources[h]; src != NULL; src = src->next)
		if (strcmp(src->ip, ip) == 0)
			return src;
	if ((src = calloc(1, sizeof(*src))) == NULL)
		err(EX_SYSTEM, "calloc");
	strlcpy(src->ip, ip, sizeof(src->ip));
	src->next = sources[h];
	sources[h] = src;
	return src;
}

/* Whether src has used up its refused log-ons for now. */
static int
source_barred(struct source *src)
{
	if (now_ms() - src->window > FAIL_WINDOW)
		src->fails = 0;
	return src->fails >= FAIL_MAX;
}

/* Count one refused log-on against src. */
static void
source_fail(struct source *src)
{
	if (src->fails == 0)
		src->window = now_ms();
	src->fails++;
}

/* Forget sources with no connection and no recent refusals. */
static void
source_sweep(void)
{
	struct source **p, *src;
	int i;

	for (i = 0; i < NBUCKET; i++)
		for (p = &sources[i]; (src = *p) != NULL;)
			if (src->conns == 0 && (src->fails == 0 ||
			    now_ms() - src->window > FAIL_WINDOW)) {
				*p = src->next;
				free(src);
			} else
				p = &src->next;
}

/* Close c and forget it; sessions find out through the serial. */
static void
conn_close(struct conn *c, const char *why)
{
	if (why != NULL && (verbose || c->state != ST_NEW))
		logline("close %s %s: %s", c->name[0] ? c->name : "-",
		    c->observed, why);
	if (c->state == ST_LISTEN)
		name_drop(c);
	c->src->conns--;
	conns[c->fd] = NULL;
	close(c->fd);
	nconns--;
	free(c->out);
	free(c->lb);
	free(c->addrs);
	free(c);
}

/*
 * Refuse one bad line with an error, then close, as the wire format says.
 * The close lingers: closing with unread input would send a reset, and a
 * reset can destroy the error line before the client reads it.
 */
static void
conn_refuse(struct conn *c, const char *why)
{
	int fd = c->fd;

	/* conn_send frees a client that stopped reading: look c up again. */
	conn_send(c, "ERR - %s", why);
	if (conns[fd] != c)
		return;
	if (c->outlen > 0)
		return conn_close(c, why);
	if (why != NULL && (verbose || c->state != ST_NEW))
		logline("close %s %s: %s", c->name[0] ? c->name : "-",
		    c->observed, why);
	if (c->state == ST_LISTEN)
		name_drop(c);
	c->state = ST_CLOSING;
	c->born = now_ms();
	shutdown(c->fd, SHUT_WR);
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

/* Load the users file: "name secret" lines; # comments. */
static void
users_load(void)
{
	FILE *f;
	char line[LINE_MAX_ + 2], *w[3];
	int i, n = 0;

	if (usersfile == NULL)
		return;
	if ((f = fopen(usersfile, "r")) == NULL) {
		if (users == NULL)
			err(EX_SYSTEM, "%s", usersfile);
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
	logline("users: %d from %s", n, usersfile);
}

/* Whether name may log on with secret. */
static int
user_ok(const char *name, const char *secret)
{
	int i, ok = 0;

	if (usersfile == NULL)
		return 1;
	for (i = 0; i < nusers; i++)
		if (strcmp(users[i].name, name) == 0)
			ok |= secret_equal(users[i].secret, secret ? secret : "");
	return ok;
}

/* LOGON or LISTEN name [secret]. */
static void
do_logon(struct conn *c, struct rvcmd *m)
{
	struct conn *old;
	int listen = m->verb == RV_LISTEN;

	if (c->state != ST_NEW)
		return conn_refuse(c, "already logged on");
	if (source_barred(c->src)) {
		logline("refused %s %s: too many attempts", m->name, c->observed);
		return conn_refuse(c, "too many attempts; try later");
	}
	if (!user_ok(m->name, m->secret)) {
		logline("refused %s %s: wrong secret", m->name, c->observed);
		source_fail(c->src);
		return conn_refuse(c, "wrong name or secret");
	}
	strlcpy(c->name, m->name, sizeof(c->name));
	if (listen && (old = name_find(c->name)) != NULL) {
		if (usersfile == NULL) {
			logline("refused %s %s: name in use", c->name, c->observed);
			source_fail(c->src);
			c->name[0] = '\0';
			return conn_refuse(c, "name in use");
		}
		/* Authenticated: the newer log-on wins, as after a NAT rebinding. */
		int ofd = old->fd;

		conn_send(old, "ERR - replaced by a newer log-on");
		if (conns[ofd] == old)
			conn_close(old, "replaced");
	}
	c->state = listen ? ST_LISTEN : ST_ON;
	if (listen) {
		unsigned h = hash(c->name);

		c->next_name = names[h];
		names[h] = c;
	}
	logline("%s %s %s", listen ? "listen" : "logon", c->name, c->observed);
	conn_send(c, "WELCOME %s %s", c->observed, relay);
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

/* INVITE peer id token addr...: record the session, pass it on. */
static void
do_invite(struct conn *c, struct rvcmd *m)
{
	char addrs[LINE_MAX_ + 1];
	struct conn *p;
	struct sess *s;
	unsigned h;
	int pfd;

	if ((p = name_find(m->name)) == NULL) {
		logline("invite %s -> %s: not logged on", c->name, m->name);
		return conn_send(c, "ERR %s not logged on: %s", m->id, m->name);
	}
	if (p == c)
		return conn_send(c, "ERR %s cannot invite yourself", m->id);
	pfd = p->fd;
	if (sess_find(m->id) != NULL)
		return conn_send(c, "ERR %s session exists", m->id);
	if (c->nsess >= SESS_PER_CONN)
		return conn_send(c, "ERR %s too many sessions", m->id);
	if ((s = calloc(1, sizeof(*s))) == NULL)
		err(EX_SYSTEM, "calloc");
	strlcpy(s->id, m->id, sizeof(s->id));
	s->fd[0] = c->fd;
	s->serial[0] = c->serial;
	s->fd[1] = p->fd;
	s->serial[1] = p->serial;
	s->expires = now_ms() + SESS_TTL;
	h = hash(s->id);
	s->next = sessions[h];
	sessions[h] = s;
	nsessions++;
	c->nsess++;
	logline("invite %s -> %s %s", c->name, p->name, s->id);
	with_observed(c, m->addrs, m->naddr, addrs, sizeof(addrs));
	conn_send(p, "INVITE %s %s %s%s%s", c->name, s->id, m->token,
	    addrs[0] ? " " : "", addrs);
	/* The listener's standing candidates save the inviter a round trip. */
	if (conns[pfd] == p && p->addrs != NULL)
		conn_send(c, "SENT %s %s", s->id, p->addrs);
	else
		conn_send(c, "SENT %s", s->id);
}

/* MSG id word...: pass it to the other party of the session. */
static void
do_msg(struct conn *c, struct rvcmd *m)
{
	char words[LINE_MAX_ + 1];
	struct sess *s;
	struct conn *o;
	int side;

	if ((s = sess_find(m->id)) == NULL)
		return conn_send(c, "ERR %s no such session", m->id);
	if (sess_party(s, 0) == c)
		side = 0;
	else if (sess_party(s, 1) == c)
		side = 1;
	else
		return conn_send(c, "ERR %s no such session", m->id);
	if ((o = sess_party(s, !side)) == NULL)
		return conn_send(c, "ERR %s peer gone", m->id);
	vlog("msg %s %s -> %s: %s", s->id, c->name, o->name, m->words[0]);
	conn_send(o, "MSG %s %s", s->id, words_join(m->words, m->nwords, words,
	    sizeof(words)));
}

/* RELAY peer sid relayaddr: ask the peer's listener to join a relay session. */
static void
do_relay(struct conn *c, struct rvcmd *m)
{
	struct conn *p;

	if ((p = name_find(m->name)) == NULL)
		return conn_send(c, "ERR %s not logged on: %s", m->id, m->name);
	if (p == c)
		return conn_send(c, "ERR %s cannot invite yourself", m->id);
	logline("relay %s -> %s via %s", c->name, p->name, m->relay);
	conn_send(p, "RELAY %s %s %s", c->name, m->id, m->relay);
	conn_send(c, "SENT %s", m->id);
}

/*
 * ADDR word...: a listener's standing candidates, kept to answer INVITE
 * with.
 */
static void
do_addr(struct conn *c, struct rvcmd *m)
{
	char buf[LINE_MAX_ + 1];

	if (c->state != ST_LISTEN)
		return conn_refuse(c, "ADDR is for listeners");
	with_observed(c, m->addrs, m->naddr, buf, sizeof(buf));
	free(c->addrs);
	c->addrs = buf[0] != '\0' ? strdup(buf) : NULL;
	vlog("addr %s: %s", c->name, buf);
}

/* Act on one complete line from c. */
static void
conn_line(struct conn *c, char *line)
{
	struct rvcmd m;

	if (rvcmd_parse(line, &m) == -1)
		return conn_refuse(c, m.why);
	switch (m.verb) {
	case RV_LOGON:
	case RV_LISTEN:
		return do_logon(c, &m);
	case RV_PING:
		return conn_send(c, "PONG");
	case RV_PONG:
		return;
	case RV_QUIT:
		return conn_close(c, "quit");
	}
	if (c->state == ST_NEW)
		return conn_refuse(c, "log on first");
	if (m.verb == RV_INVITE)
		return do_invite(c, &m);
	if (m.verb == RV_MSG)
		return do_msg(c, &m);
	if (m.verb == RV_ADDR)
		return do_addr(c, &m);
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
 * line buffer of its own.
 */
static void
conn_read(struct conn *c)
{
	static struct linebuf scratch;
	char line[LINE_MAX_ + 1];
	struct linebuf *lb;
	size_t room;
	int fd = c->fd, r, n;

	if (c->state == ST_CLOSING)
		return conn_drain(c);
	if ((lb = c->lb) == NULL) {
		lb = &scratch;
		scratch.len = 0;
	}
	for (;;) {
		room = sizeof(lb->buf) - lb->len;
		r = linebuf_fill(lb, fd);
		if (r == 0)
			return conn_close(c, "closed");
		if (r == -1 && errno != EAGAIN && errno != EINTR && errno != EMSGSIZE)
			return conn_close(c, strerror(errno));
		if (r > 0) {
			c->last_in = now_ms();
			c->pinged = 0;
		}
		while ((n = linebuf_next(lb, line, sizeof(line))) >= 0) {
			conn_line(c, line);
			/* Nothing after a refused line is acted on. */
			if (conns[fd] != c || c->state == ST_CLOSING)
				return;
		}
		if (n == -2)
			return conn_refuse(c, lb->len > LINE_MAX_ ?
			    "line too long" : "bad byte");
		/* A short read emptied the socket: no need to hear EAGAIN. */
		if (r == -1 || (size_t)r < room)
			break;
	}
	conn_keep(c, lb);
}

/* Take a new client. */
static void
conn_accept(void)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct conn *c;
	int fd;

	fd = accept4(lfd, (struct sockaddr *)&ss, &len,
	    SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1) {
		if (errno == EMFILE || errno == ENFILE)
			logline("accept: %s", strerror(errno));
		return;
	}
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
	c->src = source_get((struct sockaddr *)&ss);
	c->src->conns++;
	c->fd = fd;
	c->serial = ++serials;
	c->born = c->last_in = now_ms();
	addr_fmt((struct sockaddr *)&ss, c->observed, sizeof(c->observed));
	conns[fd] = c;
	nconns++;
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &(struct epoll_event){
	    .events = EPOLLIN, .data.fd = fd });
	vlog("connect %s", c->observed);
	if (c->src->conns > per_source) {
		logline("refused %s: more than %d connections", c->src->ip,
		    per_source);
		conn_refuse(c, "too many connections from your address");
	}
}

/* Once a second: log-on and line deadlines, keepalives, expired sessions. */
static void
sweep(void)
{
	long now = now_ms();
	struct sess **p;
	struct conn *c;
	int i;

	for (i = 0; i < maxfd; i++) {
		if ((c = conns[i]) == NULL)
			continue;
		if (c->state == ST_CLOSING) {
			if (now - c->born > 2000)
				conn_close(c, NULL);
			continue;
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
	source_sweep();
	for (i = 0; i < NBUCKET; i++)
		for (p = &sessions[i]; *p != NULL;)
			if ((*p)->expires < now || (sess_party(*p, 0) == NULL &&
			    sess_party(*p, 1) == NULL))
				sess_free(p);
			else
				p = &(*p)->next;
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
usage(void)
{
	fprintf(stderr, "usage: rvd [-v] [-c PERSOURCE] [-d FD] [-k SECONDS] "
	    "[-R RELAY] [-U USER] [-u USERS] [ADDR:]PORT\n");
	exit(EX_USAGE_);
}

int
main(int argc, char *argv[])
{
	struct epoll_event ev[256];
	long lastsweep = 0, stop_at = 0;
	int ch, i, n, notify = -1;
	const char *e, *runas = NULL;

	while ((ch = getopt(argc, argv, "c:d:k:R:U:u:v")) != -1) {
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
		case 'k':
			keepalive_ms = strtonum(optarg, 1, 86400, &e) * 1000;
			if (e != NULL)
				errx(EX_USAGE_, "bad -k: %s", optarg);
			break;
		case 'R':
			relay = optarg;
			break;
		case 'u':
			usersfile = optarg;
			break;
		case 'v':
			verbose = 1;
			break;
		default:
			usage();
		}
	}
	if (argc - optind != 1)
		usage();
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGTERM, &(struct sigaction){ .sa_handler = on_signal }, NULL);
	sigaction(SIGINT, &(struct sigaction){ .sa_handler = on_signal }, NULL);
	sigaction(SIGHUP, &(struct sigaction){ .sa_handler = on_signal }, NULL);
	users_load();
	if ((lfd = listen_tcp(argv[optind], 4096)) == -1)
		err(EX_SYSTEM, "unable to listen on %s", argv[optind]);
	fd_nonblock(lfd, 1);
	if (runas != NULL)
		priv_drop(runas);
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		err(EX_SYSTEM, "epoll_create1");
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &(struct epoll_event){
	    .events = EPOLLIN, .data.fd = lfd });
	logline("listening on %s, relay %s%s", argv[optind], relay,
	    usersfile ? "" : "; no users file: any free name may be taken");
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
			close(lfd);
			lfd = -1;
			stop_at = now_ms() + 5000;
		}
		if (stop_at && (nsessions == 0 || now_ms() > stop_at))
			break;
		if ((n = epoll_wait(ep, ev, 256, 1000)) == -1 && errno != EINTR)
			err(EX_SYSTEM, "epoll_wait");
		for (i = 0; i < n; i++) {
			int fd = ev[i].data.fd;
			struct conn *c;

			if (fd == lfd) {
				conn_accept();
				continue;
			}
			if (fd >= maxfd || (c = conns[fd]) == NULL)
				continue;
			if (ev[i].events & EPOLLOUT)
				conn_flush(c);
			if (conns[fd] == c && (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
				conn_read(c);
		}
		if (now_ms() - lastsweep >= 1000) {
			lastsweep = now_ms();
			sweep();
		}
	}
	logline("stopped");
	return 0;
}
