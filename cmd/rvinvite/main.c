/*
 * rvinvite: the inviter. Logs on to rvd, listens, and invites PEER with our
 * candidates. If PEER dials in with the token (rung "in"), the connection
 * is delivered; if PEER reports failure, or the timer runs out, a ticket
 * with PEER's candidates goes to stdout for the next rung. With -e (under
 * a ladder that catches on $P2PFD) the ticket goes as soon as PEER's
 * candidates arrive, so that our dial races PEER's.
 */
#include <sys/socket.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

/* Longest a mapping may hold the invitation: a LAN gateway answers in a
   few ms, and a later mapping follows the invitation (late_map), so a
   gateway that drops PCP and NAT-PMP unanswered costs no more than this. */
#define MAPWAIT_MS 20
/* Racing: how long the relay waits for a gateway to answer at all, well
   within the budget of the out rungs that it waits for anyway. */
#define MAPHOLD_MS 200

static void
usage(void)
{
	usage_exit("usage: rvinvite [-ehuVv] [-t SECONDS] [-r RVD] [-n NAME] "
	    "PEER [PROG...]\n");
}

/* Take the candidates of a "MSG id CAND addr... :port..." into t. */
static void
take_cands(struct ticket *t, char **w, int n)
{
	const char *e;
	int i, p;

	for (i = 0; i < n; i++) {
		if (w[i][0] == ':') {
			p = strtonum(w[i] + 1, 1, 65535, &e);
			if (e == NULL && t->nport < TICKET_PORTS)
				t->port[t->nport++] = p;
		} else if (ticket_addaddr(t, w[i]) == -1)
			vlog("ignoring bad candidate %s", w[i]);
	}
}

/*
 * Accept one dialer and check its token: the connection, or -1. The peer
 * decides which connection of a session is the one (its dial may cross
 * ours): our "OK" only offers this one, and its "GO" takes it.
 */
static int
take_dialer(int lfd, const struct ticket *t, int ms)
{
	char id[ID_HEX + 1], token[ID_HEX + 1], from[ADDR_STR], go[8];
	int fd;

	if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) == -1)
		return -1;
	fd_peername(fd, from, sizeof(from));
	if (hs_read(fd, id, token, ms) == -1 ||
	    hs_answer(fd, token, strcmp(id, t->id) == 0 ? t->token : NULL) == -1) {
		/* A close or reset is no attack: a racing dial that lost. */
		if (errno == ECONNRESET || errno == EPIPE)
			vlog("a dialer from %s went away in the handshake", from);
		else
			warnx("refused a dialer from %s: %s", from, errno == EACCES ?
			    "wrong session or token" : strerror(errno));
		close(fd);
		return -1;
	}
	if (line_read(fd, go, sizeof(go), ms) <= 0 || strcmp(go, "GO") != 0) {
		vlog("%s took another connection", t->peer);
		close(fd);
		return -1;
	}
	vlog("connected: %s dialled in from %s", t->peer, from);
	return fd;
}

/* Listen on a fresh port; its number goes to *port. */
static int
listen_fresh(int *port)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd;

	if ((fd = listen_tcp("0", 16)) == -1)
		err(EX_SYSTEM, "unable to listen");
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	*port = addr_port((struct sockaddr *)&ss);
	return fd;
}

static int closed;		/* our stdout: nothing more for the next rung */

static int mapfd = -1;		/* the mapper's news (portmap_start) */
static long map_start;		/* when we asked */
static int map_invited;		/* the invitation carried the mapping */
static int map_late;		/* the peer was told of it later (late_map) */
static int holding;		/* our late block waits for the peer's dial to it */

/*
 * Racing, whether the relay should wait for our mapping: one may still
 * come (a gateway answered, or it is early yet), or it came after the
 * invitation and the peer's listener is dialling it (p2p(7) "Port mapping").
 */
static int
map_hold(void)
{
	return mapfd != -1 && !map_invited && (map_late || portmap_pending() ||
	    now_ms() < map_start + MAPHOLD_MS);
}

/*
 * Pass the ticket on (only our tried line when it went on early), and
 * let the next rung know that no more is coming.
 */
static void
pass_on(struct ticket *t, const char *why)
{
	if (closed)
		return;
	ticket_pass(t, "rvinvite", why);
	fclose(stdout);
	closed = 1;
}

/*
 * Whether rvd vouches for the names (it has a users file, no "open" in
 * WELCOME): only then are a peer's candidates cached, or whoever took its
 * name after a restart would get its next dial too.
 */
static int vouched;

/*
 * The peer's candidates, from rvd's SENT or the peer's CAND: remember them
 * for the next dial (when rvd vouches for its name), and when racing pass
 * them on -- after the ticket with the cached ones, when that went first,
 * as lines of their own.
 */
static void
got_cands(struct ticket *t, char **w, int n, int early)
{
	struct ticket fresh;
	int i, n0 = t->naddr, p0 = t->nport;

	memset(&fresh, 0, sizeof(fresh));
	strlcpy(fresh.peer, t->peer, sizeof(fresh.peer));
	fresh.rtt = t->rtt;
	take_cands(&fresh, w, n);
	if (vouched)
		cache_save(&fresh, t->rv);
	take_cands(t, w, n);
	if (!early || closed || t->naddr == 0)
		return;
	if (!t->handed) {
		vlog("racing %s: passing its candidates on", t->peer);
		if (map_hold()) {
			/* The mark: our block ends when the mapping cannot help. */
			ticket_handoff(t, "rvinvite");
			fflush(stdout);
			holding = 1;
			return;
		}
		pass_on(t, "racing the peer's dial");
		return;
	}
	vlog("%d of %s's candidates were not in the cache", t->naddr - n0, t->peer);
	for (i = n0; i < t->naddr; i++)
		printf("addr %s\n", t->addr[i]);
	for (i = p0; i < t->nport; i++)
		printf("port %d\n", t->port[i]);
	if (map_hold()) {
		fflush(stdout);
		holding = 1;
		return;
	}
	printf("tried rvinvite racing the peer's dial\n\n");
	fclose(stdout);
	closed = 1;
}

/*
 * The gateway mapped our port after the invitation went (UPnP's discovery
 * is slow): name the mapping to the peer, whose listener dials it too.
 */
static void
late_map(struct rv *rv, const struct ticket *t)
{
	char words[LINE_MAX_] = "";

	/* Through a proxy, rvd sees the proxy: no address of ours. */
	portmap_cands(strncmp(rv->via, "proxy", 5) == 0 ? NULL : rv->observed,
	    words, sizeof(words));
	if (words[0] == '\0')
		return;
	vlog("our port was mapped late: naming%s to %s", words, t->peer);
	if (rv_send(rv, "MSG %s CAND%s", t->id, words) == 0)
		map_late = 1;
}

int
main(int argc, char *argv[])
{
	struct ticket t;
	struct rv rv;
	struct pollfd p[3];
	char cand[TICKET_ADDRS][ADDR_STR], line[LINE_MAX_ + 1], *w[40];
	char invite[LINE_MAX_ + 1], msg[LINE_MAX_ + 64];	/* + "MSG id PLAIN" */
	const char *rvaddr, *name, *secret, *why = "timeout";
	long deadline;
	int ch, tsec = 0, early = 0, plain = 0, lfd, port, ncand, i, n;
	int fd = -1, ms;

	rvaddr = getenv("P2P_RVD");
	name = env_or("P2P_NAME", env_or("USER", "anonymous"));
	secret = getenv("P2P_SECRET");
	opt_version(argc, argv);
	while ((ch = getopt(argc, argv, "+ehuVn:r:t:v")) != -1) {
		switch (ch) {
		case 'e':
			early = 1;
			break;
		case 'u':
			plain = 1;
			break;
		case 'n':
			name = optarg;
			break;
		case 'r':
			rvaddr = optarg;
			break;
		case 't':
			tsec = arg_seconds(optarg, 't', 3600);
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
	if (argc < 1)
		usage();
	if (!name_valid(argv[0]))
		errx(EX_USAGE_, "bad peer name: %s", argv[0]);
	if (!name_valid(name))
		errx(EX_USAGE_, "bad name: %s", name);
	if (rvaddr == NULL)
		errx(EX_USAGE_, "no rendezvous address: set P2P_RVD or use -r");
	if (reach_config(rvaddr, msg, sizeof(msg)) == -1)
		errx(EX_USAGE_, "%s", msg);
	/* Racing needs a catcher on $P2PFD: on stdio two winners would mix. */
	if (getenv("P2PFD") == NULL)
		early = 0;

	memset(&t, 0, sizeof(t));
	strlcpy(t.peer, argv[0], sizeof(t.peer));
	strlcpy(t.rv, rvaddr, sizeof(t.rv));
	hex_random(t.id, 16);
	hex_random(t.token, 16);
	/*
	 * The peer's candidates of last time race the invitation itself, and
	 * need nothing of what follows: the next rung dials them before our
	 * listener, our addresses and the gateway's answer (a child process
	 * that must run first) are ready.
	 */
	if (early && (n = cache_load(&t)) > 0) {
		vlog("racing %s: passing its %d cached candidates on", t.peer, n);
		ticket_handoff(&t, "rvinvite");
	}
	lfd = listen_fresh(&port);
	/* The mapper starts first: it runs while we list our addresses. */
	map_start = now_ms();
	mapfd = portmap_start(port, 0);
	/* Our own addresses; rvd adds the one it sees us at. */
	ncand = addr_locals(port, cand, TICKET_ADDRS - 1);
	snprintf(invite, sizeof(invite), "INVITE %s %s %s", t.peer, t.id, t.token);
	for (i = 0; i < ncand; i++) {
		strlcat(invite, " ", sizeof(invite));
		strlcat(invite, cand[i], sizeof(invite));
	}
	/*
	 * The gateway's mapping of our port, if it answers at once; one that
	 * comes later follows the invitation (late_map).
	 */
	if (mapfd != -1 && portmap_wait(MAPWAIT_MS)) {
		portmap_cands(NULL, invite, sizeof(invite));
		map_invited = 1;
	} else if (mapfd != -1)
		vlog("no port mapping within %d ms: inviting without one",
		    MAPWAIT_MS);
	(void)portmap_poll();	/* what it said so far is in the invitation */
	ms = env_timeout_ms(0, 3);
	/* Right behind it, so that the listener knows before any dial lands. */
	if (plain)
		snprintf(msg, sizeof(msg), "%s\nMSG %s PLAIN", invite, t.id);
	else
		strlcpy(msg, invite, sizeof(msg));
	if (rv_logon(&rv, rvaddr, "LOGON", name, secret, msg, ms) == -1) {
		/* The ticket still goes on: a later rung may fare better. */
		int refused = errno == EACCES;

		if (errno == EINVAL)
			errx(EX_USAGE_, "%s", rv.why);
		if (refused)
			warnx("%s refused us as %s: %s", rv.addr[0] ? rv.addr :
			    rvaddr, name, rv.why);
		else
			warnx("unable to reach rvd: %s", rv.why);
		pass_on(&t, refused ? "refused by rvd" : "rvd unreachable");
		return EX_NOTCONN;
	}
	vlog("logged on to rvd %s (%s)", rv.addr, rv.via);
	vouched = !rv.open;
	for (t.nrelay = 0; t.nrelay < rv.nrelay; t.nrelay++)
		strlcpy(t.relay[t.nrelay], rv.relay[t.nrelay], sizeof(t.relay[0]));
	t.rtt = fd_rtt_ms(rv.fd);
	/* The peer dials us for its budget; its answers take a round trip. */
	ms = dial_budget_ms(0, t.rtt);
	deadline = now_ms() + (tsec ? tsec * 1000 : ms + 4 * t.rtt + 1000);
	vlog("invited %s at %s with %d candidates (rtt %d ms); waiting at most %ld ms",
	    t.peer, rvaddr, ncand + 1, t.rtt, deadline - now_ms());

	while (fd == -1) {
		long left = deadline - now_ms();

		if (left <= 0)
			break;
		p[0].fd = rv.fd;
		p[0].events = POLLIN;
		p[1].fd = lfd;
		p[1].events = POLLIN;
		p[2].fd = mapfd;
		p[2].events = POLLIN;
		/* The relay has waited for our mapping long enough: let it go. */
		if (holding && !closed && !map_hold())
			pass_on(&t, "racing the peer's dial");
		if (holding && !closed && left > 50)
			left = 50;
		if (rv.lb.len == 0 && poll(p, 3, (int)left) <= 0)
			continue;
		if (portmap_poll())
			late_map(&rv, &t);
		if (rv.lb.len == 0 && (p[1].revents & POLLIN)) {
			fd = take_dialer(lfd, &t, ms);
			continue;
		}
		if ((n = rv_readline(&rv, line, sizeof(line), 0)) == 0) {
			why = "rvd closed";
			break;
		}
		if (n < 0) {
			if (errno == ETIMEDOUT)
				continue;
			why = "rvd failed";
			break;
		}
		strlcpy(msg, line, sizeof(msg));
		if ((n = line_words(line, w, 40)) < 2 || strcmp(w[1], t.id) != 0)
			continue;
		if (strcmp(w[0], "ERR") == 0) {
			/* An absent peer, say: rvd's words, and the ticket still goes on. */
			why = n > 2 ? msg + strlen("ERR ") + ID_HEX + 1 : "refused by rvd";
			warnx("%s", why);
			break;
		}
		if (strcmp(w[0], "SENT") == 0 && n > 2) {
			/* The peer's standing candidates, from rvd: race at once. */
			got_cands(&t, w + 2, n - 2, early);
			continue;
		}
		if (strcmp(w[0], "MSG") != 0 || n < 3)
			continue;
		if (strcmp(w[2], "CAND") == 0) {
			got_cands(&t, w + 3, n - 3, early);
		} else if (strcmp(w[2], "FAIL") == 0) {
			why = "peer could not dial us";
			break;
		}
	}
	close(lfd);
	if (fd != -1) {
		close(rv.fd);
		n = deliver(fd, &(struct conninfo){ "in", t.peer, 0, t.id,
		    t.token }, argv + 1,
		    SIDE_DIAL);
		if (!closed)
			ticket_connected(&t, "rvinvite");
		return n;
	}
	vlog("no dial in from %s: %s", t.peer, why);
	pass_on(&t, why);
	return EX_NOTCONN;
}
