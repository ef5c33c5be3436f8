/*
 * rvlisten: the answering side. Stays logged on to rvd as NAME; for each
 * invitation it sends its candidates, runs the dialling ladder toward the
 * inviter, and, failing that, says so and takes the inviter's dial. Every
 * connection, however made, is served by a fresh PROG on fds 0 and 1.
 */
#include <sys/socket.h>
#include <sys/wait.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

#define MAXPORTS 8
#define MAXSESS 64		/* invitations being worked on at once */
#define MAXHS 64		/* inbound dialers in their handshake */
#define SESS_MS 60000		/* how long an invitation stays answerable */
#define HS_MS 3000
#define RETRY_MAX_MS 1200	/* longest wait between log-on attempts */
/* Polled at most: rvd, the listeners, two per dialer (a held one: its
   socket and its session's commitment), two per ladder (a session may
   have a late one too), the mapper. */
#define NWATCH (1 + MAXPORTS + 1 + 2 * MAXHS + 4 * MAXSESS + 1)

/*
 * The answering ladder: each rung reads the ticket the one before failed
 * on. $P2P_ANSWER_LADDER replaces it.
 */
static const char *ladder_cmd =
    "dialpunch -e $P2P_V | dialdirect $P2P_V | dialport $P2P_V | dialproxy $P2P_V";
/*
 * Logged on through a proxy, the direct rungs have little hope and the
 * proxy's is the one to run first: before the inviter turns to the relay.
 */
static const char *ladder_proxied =
    "dialproxy $P2P_V | dialdirect $P2P_V | dialport $P2P_V";
static int ladder_own;		/* $P2P_ANSWER_LADDER gave it */

struct sess {
	int used;
	char id[ID_HEX + 1], token[ID_HEX + 1];
	char peer[NAME_MAX_ + 1];
	long expires;
	int done;		/* connected: no second connection is taken */
	int commit;		/* who may take a connection (commit.c), or -1 */
	struct ladder l;
	int running;
	/* The inviter's late candidates (its mapping), dialled beside l. */
	struct ladder ll;
	int lrunning;
	int lated;		/* an inviter gets one late dial */
	int plain;		/* the inviter will not seal (MSG id PLAIN) */
};

struct hs {
	int fd;
	const char *via;
	struct handshake sh;	/* lib/handshake.c's, on fd */
	long deadline;
	char wait[ID_HEX + 1];	/* the session its line named: it waits */
	long hold;		/* until when an unknown session may still come */
};

static struct rv rv;
static int rvup;
static const char *rvaddr, *name, *secret;
static int lfd[MAXPORTS + 1], lport[MAXPORTS + 1], nlisten;
static struct sess sess[MAXSESS];
static struct hs hs[MAXHS];
static char **prog;
static int keepalive_ms = 25000;
static long rv_last, rv_pinged, rv_retry, backoff = 250;
static int rv_rtt;		/* ms, the last we knew; 0 before a log-on */
static long wake_at;		/* when the poll must wake, at the latest */
static int hold_ms = 500;	/* how long a dial may precede its invitation */
static volatile sig_atomic_t stopping;
static int nomap;		/* -M: ask the gateway for no mapping */
static int mapfd = -1;		/* the mapper's news: polled, read in tick() */

static void
usage(void)
{
	usage_exit("usage: rvlisten [-hlMVv] [-k SECONDS] [-r RVD] [-p PORT]... "
	    "NAME PROG [ARG...]\n");
}

/*
 * Serve fd, a connection of session s, with a fresh PROG, inetd style; the
 * child owns fd from here.
 */
static void
serve(int fd, const char *via, const struct sess *s)
{
	char remote[ADDR_STR];
	pid_t pid;

	logline("connected %s via %s %s", s->peer, via,
	    fd_peername(fd, remote, sizeof(remote)));
	if ((pid = fork()) == -1) {
		warn("fork");
	} else if (pid == 0) {
		unsetenv("P2PFD");
		unsetenv("P2P_V");
		signal(SIGPIPE, SIG_DFL);
		/* p2pseal -s, told, need not wait to see who speaks first. */
		if (s->plain)
			setenv("P2PPLAIN", "1", 1);
		else
			unsetenv("P2PPLAIN");
		_exit(deliver(fd, &(struct conninfo){ via, s->peer, 0, s->id,
		    s->token }, prog, SIDE_ANSWER));
	}
	close(fd);
}

/* The session with id, or NULL. */
static struct sess *
sess_find(const char *id)
{
	int i;

	for (i = 0; i < MAXSESS; i++)
		if (sess[i].used && strcmp(sess[i].id, id) == 0)
			return &sess[i];
	return NULL;
}

/* Stop ladder l, if it still runs; the reaper collects it. */
static void
ladder_kill(struct ladder *l, int *running)
{
	if (!*running)
		return;
	kill(-l->pid, SIGTERM);
	close(l->sock);
	if (l->out != -1)
		close(l->out);
	*running = 0;
}

/* Stop a session's ladders. */
static void
ladder_end(struct sess *s)
{
	ladder_kill(&s->l, &s->running);
	ladder_kill(&s->ll, &s->lrunning);
}

/* Forget a session: its ladder, its commitment, its slot. */
static void
sess_free(struct sess *s)
{
	ladder_end(s);
	if (s->commit != -1)
		close(s->commit);
	s->commit = -1;
	s->used = 0;
}

/* A free session slot, or NULL. */
static struct sess *
sess_new(void)
{
	int i;

	for (i = 0; i < MAXSESS; i++)
		if (!sess[i].used) {
			memset(&sess[i], 0, sizeof(sess[i]));
			sess[i].used = 1;
			sess[i].commit = -1;
			return &sess[i];
		}
	return NULL;
}

/* Our candidates and extra ports, as words for CAND. */
static void
cand_words(char *buf, size_t n)
{
	char cand[TICKET_ADDRS][ADDR_STR], port[8];
	/* Through a proxy, rvd sees the proxy: no address of ours. */
	const char *seen = strncmp(rv.via, "proxy", 5) == 0 ? NULL : rv.observed;
	int i, k;

	buf[0] = '\0';
	k = addr_candidates(lport[0], seen, cand, TICKET_ADDRS);
	for (i = 0; i < k; i++) {
		strlcat(buf, " ", n);
		strlcat(buf, cand[i], n);
	}
	for (i = 1; i < nlisten; i++) {
		snprintf(port, sizeof(port), " :%d", lport[i]);
		strlcat(buf, port, n);
	}
	portmap_cands(seen, buf, n);
}

/* The most candidates of one invitation we dial (each on up to three ports). */
#define INVITE_DIALS 8

/* -l: also dial loopback, unspecified and link-local candidates. */
static int dial_local;

/*
 * Take the candidates w[0..n) of an invitation from peer into t, as far
 * as an inviter may make us dial them: numeric, not this host's or its
 * link's unless -l says so, and at most INVITE_DIALS, the last word
 * (where rvd puts the address it sees the inviter at) among them.
 */
static void
invite_cands(struct ticket *t, const char *peer, char **w, int n)
{
	const char *why, *first = NULL, *firstwhy = NULL;
	int i, scope, skipped = 0;

	for (i = 0; i < n; i++) {
		scope = addr_scope(w[i], &why);
		if (scope == SCOPE_BAD || (scope == SCOPE_LOCAL && !dial_local))
			;	/* why says why */
		else if (t->naddr >= INVITE_DIALS - (i < n - 1))
			why = "too many candidates";
		else {
			ticket_addaddr(t, w[i]);
			continue;
		}
		if (skipped++ == 0) {
			first = w[i];
			firstwhy = why;
		}
	}
	if (skipped > 0)
		logline("invited by %s: not dialling %d of its candidates "
		    "(%s: %s)", peer, skipped, first, firstwhy);
}

/*
 * Run the ladder argv for session s on a ticket to the inviter's
 * candidates w[0..n): its ladder, or with late its late one.
 */
static void
sess_dial(struct sess *s, char *const argv[], char **w, int n, int late)
{
	struct ticket t;
	char *ticket = NULL;
	size_t tl = 0;
	FILE *f;

	memset(&t, 0, sizeof(t));
	strlcpy(t.peer, s->peer, sizeof(t.peer));
	strlcpy(t.rv, rvaddr, sizeof(t.rv));
	for (t.nrelay = 0; t.nrelay < rv.nrelay; t.nrelay++)
		strlcpy(t.relay[t.nrelay], rv.relay[t.nrelay], sizeof(t.relay[0]));
	strlcpy(t.id, s->id, sizeof(t.id));
	strlcpy(t.token, s->token, sizeof(t.token));
	t.rtt = fd_rtt_ms(rv.fd);
	invite_cands(&t, s->peer, w, n);
	if ((f = open_memstream(&ticket, &tl)) == NULL ||
	    ticket_write(f, &t) == -1 || fclose(f) == EOF)
		err(EX_SYSTEM, "ticket");
	if (ladder_start(late ? &s->ll : &s->l, argv, ticket, s->peer,
	    s->commit) == -1)
		warn("unable to start the ladder");
	else if (late)
		s->lrunning = 1;
	else
		s->running = 1;
	free(ticket);
}

/* INVITE from id token addr...: answer with our candidates, dial back. */
static void
on_invite(char **w, int n)
{
	struct sess *s = NULL;
	char words[LINE_MAX_], *argv[] = { "/bin/sh", "-c",
	    (char *)(!ladder_own && strncmp(rv.via, "proxy", 5) == 0 ?
	    ladder_proxied : ladder_cmd), NULL };

	if (n < 4 || !hex_valid(w[2], ID_HEX) || sess_find(w[2]) != NULL)
		return;
	/* rvd waits for an answer to every invitation (p2p(7)): never silence. */
	if (!name_valid(w[1]) || !hex_valid(w[3], ID_HEX)) {
		rv_send(&rv, "MSG %s FAIL bad invitation", w[2]);
		return;
	}
	if ((s = sess_new()) == NULL) {
		rv_send(&rv, "MSG %s FAIL busy", w[2]);
		logline("refused %s: too many invitations", w[1]);
		return;
	}
	/* Without one, our dialers only offer and we decide alone: still safe. */
	if ((s->commit = commit_new()) == -1)
		warn("eventfd");
	strlcpy(s->peer, w[1], sizeof(s->peer));
	strlcpy(s->id, w[2], sizeof(s->id));
	strlcpy(s->token, w[3], sizeof(s->token));
	s->expires = now_ms() + SESS_MS;
	cand_words(words, sizeof(words));
	rv_send(&rv, "MSG %s CAND%s", s->id, words);
	vlog("invited by %s (%s)", s->peer, s->id);
	sess_dial(s, argv, w + 4, n - 4, 0);
}

/*
 * MSG id CAND addr...: the inviter's gateway mapped its port after the
 * invitation (p2p(7) "Port mapping"): dial it at once, beside the ladder
 * (whose failure the inviter hears only when both have failed), once.
 */
static void
on_late(char **w, int n)
{
	char *argv[] = { "/bin/sh", "-c", "dialdirect $P2P_V", NULL };
	struct sess *s;

	if (n < 4 || strcmp(w[2], "CAND") != 0 || (s = sess_find(w[1])) == NULL ||
	    s->done || s->token[0] == '\0' || !s->running || s->lated)
		return;
	vlog("%s's port was mapped late: dialling it", s->peer);
	s->lated = 1;
	sess_dial(s, argv, w + 3, n - 3, 1);
}

/*
 * MSG id PLAIN: the inviter will not seal (p2pdial -u, -F), so PROG learns
 * it (P2PPLAIN) and p2pseal -s need not wait to see who speaks first.
 */
static void
on_plain(const char *id)
{
	struct sess *s;

	if ((s = sess_find(id)) != NULL)
		s->plain = 1;
}

/*
 * RELAY from sid relayaddr [plain]: join the relay session the peer
 * opened, on a relay rvd named to us in WELCOME and no other: an inviter
 * must not make us connect anywhere it likes. "plain": it will not seal.
 */
static void
on_relay(char **w, int n)
{
	struct sess *s;
	char *argv[] = { "relaycat", "-j", NULL, "--", NULL, NULL };
	int i, plain;

	if ((plain = words_flag(w, n, 4, "plain")) == -1 ||
	    !name_valid(w[1]) || !hex_valid(w[2], ID_HEX))
		return;
	for (i = 0; i < rv.nrelay && strcmp(rv.relay[i], w[3]) != 0; i++)
		;
	if (i == rv.nrelay) {
		logline("refused relay from %s: %.*s is no relay of rvd's", w[1],
		    HOSTPORT_MAX, w[3]);
		return;
	}
	if ((s = sess_new()) == NULL) {
		logline("refused relay from %s: too many invitations", w[1]);
		return;
	}
	strlcpy(s->peer, w[1], sizeof(s->peer));
	strlcpy(s->id, w[2], sizeof(s->id));
	s->expires = now_ms() + SESS_MS;
	s->plain = plain;
	/* "--": the words came from the network; none may pass for a flag. */
	argv[2] = w[2];
	argv[4] = rv.relay[i];
	vlog("relay from %s via %s", s->peer, w[3]);
	if (ladder_start(&s->l, argv, NULL, s->peer, -1) == -1)
		warn("unable to start relaycat");
	else
		s->running = 1;
}

/* Log on to rvd (again), backing off while it is away. */
static void
rv_connect(void)
{
	char words[LINE_MAX_];
	long start = now_ms();
	int ms;

	if (start < rv_retry)
		return;
	/*
	 * A dial that a blocker drops is never answered: give up on it soon
	 * enough that the next try, which may find the proxy back, comes in time.
	 */
	ms = rv_rtt > 0 ? 4 * rv_rtt + 500 : 3000;
	ms = ms < 1000 ? 1000 : ms > 5000 ? 5000 : ms;
	if (rv_logon(&rv, rvaddr, "LISTEN", name, secret, NULL, ms) == -1) {
		/* A wrong secret stays wrong: retrying would only hammer rvd. */
		if (errno == EACCES && strstr(rv.why, "secret") != NULL)
			errx(EX_NOTCONN, "rvd at %s refused %s: %s", rv.addr, name,
			    rv.why);
		if (errno == EINVAL)
			errx(EX_USAGE_, "%s", rv.why);
		if (errno == EACCES)
			logline("rvd at %s refused %s: %s", rv.addr, name, rv.why);
		else
			logline("unable to reach rvd: %s", rv.why);
		/*
		 * Soon, but not in step with every other listener: a listener
		 * must be back within 2 s of its path (rvd, the proxy) coming back.
		 */
		rv_retry = start + backoff + arc4random_uniform(backoff / 4 + 1);
		backoff = backoff * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : backoff * 2;
		return;
	}
	rvup = 1;
	backoff = 250;
	/* An invitation lags a racing dial by about half a round trip. */
	rv_rtt = fd_rtt_ms(rv.fd);
	hold_ms = 2 * rv_rtt + 200;
	if (hold_ms > 1000)
		hold_ms = 1000;
	rv_last = now_ms();
	logline("logged on to %s (%s) as %s, seen at %s", rv.addr, rv.via, name,
	    rv.observed);
	/* rvd hands these to an inviter at once, before we hear of it. */
	cand_words(words, sizeof(words));
	rv_send(&rv, "ADDR%s", words);
}

/* Drop the rvd connection; the main loop logs on again. */
static void
rv_lost(const char *why)
{
	logline("lost rvd at %s: %s", rv.addr, why);
	close(rv.fd);
	rvup = 0;
	rv_retry = now_ms() + 200;
}

/* Read and act on what rvd sent. */
static void
rv_input(void)
{
	char line[LINE_MAX_ + 1], copy[LINE_MAX_ + 1], *w[40];
	int n;

	for (;;) {
		/* 0 is rvd closing (rv_readline skips empty lines); on -1 (a
		 * partial line, say) line holds nothing to look at. */
		n = rv_readline(&rv, line, sizeof(line), 0);
		if (n == 0) {
			rv_lost("closed");
			return;
		}
		if (n < 0) {
			if (errno != ETIMEDOUT)
				rv_lost(strerror(errno));
			return;
		}
		strlcpy(copy, line, sizeof(copy));
		rv_last = now_ms();
		if ((n = line_words(line, w, 40)) < 1)
			continue;
		if (strcmp(w[0], "INVITE") == 0)
			on_invite(w, n);
		else if (strcmp(w[0], "MSG") == 0 && n == 3 &&
		    strcmp(w[2], "PLAIN") == 0)
			on_plain(w[1]);
		else if (strcmp(w[0], "MSG") == 0)
			on_late(w, n);
		else if (strcmp(w[0], "RELAY") == 0)
			on_relay(w, n);
		else if (strcmp(w[0], "ERR") == 0 && n > 2 && strcmp(w[1], "-") == 0) {
			/* Another rvlisten took our name: fighting it back helps no one. */
			if (strcmp(w[2], "replaced") == 0)
				errx(EX_NOTCONN, "rvd: %s", copy + 6);
			logline("rvd: %s", copy + 6);
		}
	}
}

/*
 * A ladder of s (its late one, with late) handed us a connection, or
 * ended without one.
 */
static void
ladder_input(struct sess *s, int late)
{
	char line[LINE_MAX_ + 1];
	struct conninfo ci;
	const char *remote;
	int fd;

	fd = fd_recv(late ? s->ll.sock : s->l.sock, line, sizeof(line));
	if (fd == -1) {
		if (late)
			ladder_kill(&s->ll, &s->lrunning);
		else
			ladder_kill(&s->l, &s->running);
		/* The other still dials: the inviter waits for it. */
		if (s->running || s->lrunning)
			return;
		if (!s->done && s->token[0] != '\0') {
			vlog("could not dial %s; waiting for its dial", s->peer);
			if (rvup)
				rv_send(&rv, "MSG %s FAIL could not dial", s->id);
		} else if (!s->done) {
			logline("relay session with %s failed", s->peer);
			sess_free(s);
		}
		return;
	}
	if (s->done || conninfo_parse(line, &ci, &remote) == -1) {
		ladder_end(s);
		close(fd);
		return;
	}
	/*
	 * We decide which connection of a session is the one: the inviter's
	 * dial to us is taken by our "OK", ours to it by our "GO" -- sent by
	 * the dialer with its handshake when it held the commitment, else here.
	 */
	if (s->token[0] != '\0' && !ci.go && hs_go(fd, s->commit) == -1) {
		/*
		 * Another rung of the racing ladder holds the commitment (its GO
		 * is out): its connection is the one, and it is still to come.
		 */
		close(fd);
		return;
	}
	ladder_end(s);
	s->done = 1;
	serve(fd, ci.via, s);
}

/*
 * Is the dialer h still there? A held one may have given up: drop it then.
 * (A dialer waits for our answer: it never shuts its side before it.)
 */
static int
hs_alive(struct hs *h)
{
	if (hs_hungup(h->fd)) {
		vlog("a held dialer went away");
		close(h->fd);
		h->fd = -1;
		return 0;
	}
	return 1;
}

/*
 * Answer the dialer h, whose line named session h->wait: refused, taken
 * when the commitment is ours, or left waiting while a dialer of ours
 * holds it. A session we have not heard of yet gets until h->hold: an
 * inviter racing the candidates it cached may dial before its invitation
 * reaches us.
 */
static void
hs_check(struct hs *h)
{
	struct sess *s = sess_find(h->wait);

	if (s == NULL && now_ms() < h->hold)
		return;
	switch (hs_reply(&h->sh, h->fd, s != NULL && s->token[0] != '\0' ?
	    s->token : NULL, s != NULL && s->done, s != NULL ? s->commit : -1)) {
	case HS_AGAIN:
		return;
	case HS_DONE:
		s->done = 1;
		ladder_end(s);
		fd_nonblock(h->fd, 0);
		serve(h->fd, h->via, s);
		h->fd = -1;
		return;
	}
	if (!h->sh.erred)
		vlog("a held dialer went away");
	else if (h->sh.err == EBUSY)
		logline("refused a dialer: %s is already connected", s->peer);
	else
		logline("refused a dialer: %s", h->sh.why);
	close(h->fd);
	h->fd = -1;
}

/* Read a dialer's handshake line; once it is whole, check and serve. */
static void
hs_input(struct hs *h)
{
	switch (hs_step(&h->sh, h->fd)) {
	case HS_AGAIN:
		return;
	case HS_LINE:
		strlcpy(h->wait, h->sh.id, sizeof(h->wait));
		h->hold = now_ms() + hold_ms;
		/* One OK per session: the first connection taken is the one. */
		hs_check(h);
		if (h->fd != -1 && sess_find(h->wait) == NULL)
			vlog("a dialer came before its invitation: holding it");
		return;
	}
	if (h->sh.erred)
		logline("refused a dialer: %s", h->sh.why);
	close(h->fd);
	h->fd = -1;
}

/* Take a new dialer into its handshake. */
static void
hs_accept(int i)
{
	int fd, k;

	if ((fd = accept4(lfd[i], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) == -1)
		return;
	for (k = 0; k < MAXHS; k++)
		if (hs[k].fd == -1) {
			hs[k].fd = fd;
			hs[k].via = i == 0 ? "in" : "port";
			hs_listen(&hs[k].sh, HS_INVITEE);
			hs[k].wait[0] = '\0';
			hs[k].deadline = now_ms() + HS_MS;
			return;
		}
	close(fd);
}

/* Timers: expire sessions and handshakes, keep the rvd log-on alive. */
static void
tick(void)
{
	long now = now_ms();
	int i;

	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	for (i = 0; i < MAXSESS; i++)
		if (sess[i].used && sess[i].expires < now)
			sess_free(&sess[i]);
	for (i = 0; i < MAXHS; i++)
		if (hs[i].fd != -1 && hs[i].deadline < now) {
			close(hs[i].fd);
			hs[i].fd = -1;
		}
	/* The gateway mapped our port, or forgot it: rvd gets the news. */
	if (portmap_poll() && rvup) {
		char words[LINE_MAX_];

		cand_words(words, sizeof(words));
		rv_send(&rv, "ADDR%s", words);
	}
	if (!rvup)
		rv_connect();
	else if (now - rv_last > 3 * keepalive_ms)
		rv_lost("keepalive timeout");
	else if (now - rv_last > keepalive_ms && now - rv_pinged > keepalive_ms) {
		/* One PING a period of silence: any answer resets rv_last. */
		rv_pinged = now;
		if (rv_send(&rv, "PING") == -1)
			rv_lost(strerror(errno));
	}
}

/* What a polled descriptor belongs to. */
enum { W_RVD, W_LISTENER, W_HANDSHAKE, W_HELD, W_LADDER, W_LADDER_OUT, W_MAP,
    W_LATE, W_LATE_OUT };

/* Add fd to the poll set as what (kind) of whose. */
static void
watch(struct pollfd *p, void **who, int *kind, int *n, int fd, int k, void *w)
{
	if (*n >= NWATCH)
		errx(EX_SYSTEM, "internal error: more than %d descriptors to poll",
		    NWATCH);
	p[*n] = (struct pollfd){ .fd = fd, .events = POLLIN };
	who[*n] = w;
	kind[(*n)++] = k;
}

/* The poll set: rvd, our listeners, dialers in handshake, running ladders. */
static int
watch_all(struct pollfd *p, void **who, int *kind)
{
	int i, n = 0;

	wake_at = now_ms() + 1000;
	if (rvup)
		watch(p, who, kind, &n, rv.fd, W_RVD, NULL);
	/* The next log-on comes when its backoff says, not at the next second. */
	else if (rv_retry < wake_at)
		wake_at = rv_retry;
	for (i = 0; i < nlisten; i++)
		watch(p, who, kind, &n, lfd[i], W_LISTENER, (void *)(long)i);
	/* A mapping goes to rvd when it comes, not at the next timer. */
	if (mapfd != -1)
		watch(p, who, kind, &n, mapfd, W_MAP, NULL);
	for (i = 0; i < MAXHS; i++) {
		struct sess *s;

		if (hs[i].fd == -1)
			continue;
		if (hs[i].wait[0] == '\0') {
			watch(p, who, kind, &n, hs[i].fd, W_HANDSHAKE, &hs[i]);
			continue;
		}
		/* Waiting: for its invitation, or for the commitment. */
		hs_check(&hs[i]);
		if (hs[i].fd == -1)
			continue;
		if ((s = sess_find(hs[i].wait)) != NULL)
			watch(p, who, kind, &n, s->commit, W_HELD, &hs[i]);
		else if (hs[i].hold < wake_at)
			wake_at = hs[i].hold;
		/* A held dialer that gives up is let go at once. */
		watch(p, who, kind, &n, hs[i].fd, W_HELD, &hs[i]);
		p[n - 1].events = POLLRDHUP;
	}
	for (i = 0; i < MAXSESS; i++) {
		if (sess[i].used && sess[i].lrunning) {
			watch(p, who, kind, &n, sess[i].ll.sock, W_LATE, &sess[i]);
			if (sess[i].ll.out != -1)
				watch(p, who, kind, &n, sess[i].ll.out, W_LATE_OUT,
				    &sess[i]);
		}
		if (!sess[i].used || !sess[i].running)
			continue;
		watch(p, who, kind, &n, sess[i].l.sock, W_LADDER, &sess[i]);
		if (sess[i].l.out != -1)
			watch(p, who, kind, &n, sess[i].l.out, W_LADDER_OUT, &sess[i]);
	}
	return n;
}

/* Act on one ready descriptor; an earlier one may have ended its owner. */
static void
dispatch(int kind, void *who)
{
	struct sess *s = who;
	struct hs *h = who;

	switch (kind) {
	case W_RVD:
		if (rvup)
			rv_input();
		break;
	case W_LISTENER:
		hs_accept((int)(long)who);
		break;
	case W_HANDSHAKE:
		if (h->fd != -1)
			hs_input(h);
		break;
	case W_HELD:
		if (h->fd != -1 && h->wait[0] != '\0' && hs_alive(h))
			hs_check(h);
		break;
	case W_LADDER:
		if (s->running)
			ladder_input(s, 0);
		break;
	case W_LATE:
		if (s->lrunning)
			ladder_input(s, 1);
		break;
	case W_LATE_OUT:
		if (s->lrunning)
			ladder_readout(&s->ll);
		break;
	case W_LADDER_OUT:
		if (s->running)
			ladder_readout(&s->l);
		break;
	}
}

static void
on_term(int sig)
{
	stopping = 1;
}

int
main(int argc, char *argv[])
{
	struct pollfd p[NWATCH];
	void *who[sizeof(p) / sizeof(p[0])];
	int kind[sizeof(p) / sizeof(p[0])];
	char port[16], why[256];
	const char *e;
	int ch, i, n;

	rvaddr = getenv("P2P_RVD");
	secret = getenv("P2P_SECRET");
	nlisten = 1;
	opt_version(argc, argv);
	while ((ch = getopt(argc, argv, "+hMVk:lp:r:v")) != -1) {
		switch (ch) {
		case 'l':
			dial_local = 1;
			break;
		case 'M':
			nomap = 1;
			break;
		case 'k':
			keepalive_ms = arg_seconds(optarg, 'k', 3600) * 1000;
			break;
		case 'p':
			if (nlisten > MAXPORTS)
				errx(EX_USAGE_, "at most %d ports", MAXPORTS);
			lport[nlisten++] = strtonum(optarg, 1, 65535, &e);
			if (e != NULL)
				errx(EX_USAGE_, "bad port: %s", optarg);
			break;
		case 'r':
			rvaddr = optarg;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			opt_help(usage);
		case 'V':
			print_version();
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 2)
		usage();
	name = argv[0];
	prog = argv + 1;
	if (!name_valid(name))
		errx(EX_USAGE_, "bad name: %s", name);
	if (rvaddr == NULL)
		errx(EX_USAGE_, "no rendezvous address: set P2P_RVD or use -r");
	/* What no retry can fix is said once, before anything is dialled. */
	if (reach_config(rvaddr, why, sizeof(why)) == -1)
		errx(EX_USAGE_, "%s", why);
	env_timeout_ms(0, 3);	/* a bad P2P_TIMEOUT would stop every ladder */
	setenv("P2P_V", verbose ? "-v" : "", 1);
	/* The rungs that log on themselves (dialpunch) do so as us. */
	setenv("P2P_NAME", name, 1);
	ladder_own = getenv("P2P_ANSWER_LADDER") != NULL;
	ladder_cmd = env_or("P2P_ANSWER_LADDER", ladder_cmd);
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGTERM, &(struct sigaction){ .sa_handler = on_term }, NULL);
	sigaction(SIGINT, &(struct sigaction){ .sa_handler = on_term }, NULL);
	for (i = 0; i < nlisten; i++) {
		snprintf(port, sizeof(port), "%d", lport[i]);
		if ((lfd[i] = listen_tcp(port, 64)) == -1)
			err(EX_SYSTEM, "unable to listen on port %s", port);
		fd_nonblock(lfd[i], 1);
		if (i == 0) {
			struct sockaddr_storage ss;
			socklen_t sl = sizeof(ss);

			getsockname(lfd[0], (struct sockaddr *)&ss, &sl);
			lport[0] = addr_port((struct sockaddr *)&ss);
		}
	}
	for (i = 0; i < MAXHS; i++)
		hs[i].fd = -1;
	/* Beside the log-on: the mapping joins our candidates when it comes. */
	if (!nomap)
		mapfd = portmap_start(lport[0], 1);
	rv_connect();
	while (!stopping) {
		n = watch_all(p, who, kind);
		if (rvup && rv.lb.len > 0)
			rv_input();
		if (poll(p, n, (int)(wake_at > now_ms() ? wake_at - now_ms() : 0)) ==
		    -1 && errno != EINTR)
			err(EX_SYSTEM, "poll");
		for (i = 0; i < n; i++)
			if (p[i].revents != 0)
				dispatch(kind[i], who[i]);
		tick();
	}
	logline("stopping");
	return 0;
}
