/*
 * relaycat: the last rung. Opens a session on relayd, invites the peer
 * through rvd to join it, and delivers the spliced connection. With -j it
 * is the other half: it joins a session it was invited to.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

static int plain;	/* -u: the listener is told we will not seal */

static void
usage(void)
{
	usage_exit("usage: relaycat [-huVv] [-t SECONDS] [-R RELAY] [PEER | -] "
	    "[PROG...]\n"
	    "       relaycat [-v] [-t SECONDS] -j SID HOST:PORT [PROG...]\n");
}

/* Wait for relayd's "OK", which says both sides are in: 0, or -1 with why. */
static int
await_pair(int fd, int ms, char *why, size_t n)
{
	char line[LINE_MAX_ + 1];
	int r;

	if ((r = line_read(fd, line, sizeof(line), ms)) > 0 &&
	    strcmp(line, "OK") == 0)
		return 0;
	if (r > 0)
		snprintf(why, n, "relay said: %s", line);
	else if (r == 0)
		snprintf(why, n, "relay closed the connection");
	else
		snprintf(why, n, "%s", errno == ETIMEDOUT ?
		    "the peer did not join in time" : strerror(errno));
	return -1;
}

/*
 * Join session sid on the relay at hostport, directly or through the
 * proxy (the JOIN line rides in the SYN where it can): the connection,
 * or -1 with why.
 */
static int
relay_join(const char *sid, const char *hostport, int ms, char *why, size_t n)
{
	struct reached rc;
	char line[LINE_MAX_ + 1];
	int fd, len;

	len = snprintf(line, sizeof(line), "JOIN %s\n", sid);
	if ((fd = reach(hostport, line, len, ms, &rc)) == -1) {
		snprintf(why, n, "unable to connect to relay %s", rc.why);
		return -1;
	}
	vlog("relay %s reached %s", rc.dest, rc.via);
	if (await_pair(fd, ms, why, n) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A relay session of ours, and the rvd log-on that invites the peer to it. */
struct rsess {
	struct rv rv;
	int fd;
	char sid[ID_HEX + 1];
	char relay[HOSTPORT_MAX];	/* the relay the session is on */
	char rvaddr[HOSTPORT_MAX * 2];
};

/* Let go of what rsess_open holds. */
static void
rsess_close(struct rsess *rs)
{
	if (rs->fd != -1)
		close(rs->fd);
	if (rs->rv.fd != -1)
		close(rs->rv.fd);
	rs->fd = rs->rv.fd = -1;
}

/* Open a session on the relay at hostport (direct or proxied): 0, or -1 with why. */
static int
rsess_new(struct rsess *rs, const char *hostport, int ms, char *why, size_t n)
{
	char line[LINE_MAX_ + 1], *w[RV_WORDS];
	struct reached rc;

	if ((rs->fd = reach(hostport, "NEW\n", 4, ms, &rc)) == -1) {
		snprintf(why, n, "unable to connect to relay %s", rc.why);
		return -1;
	}
	if (line_read(rs->fd, line, sizeof(line), ms) <= 0 ||
	    line_words(line, w, RV_WORDS) != 2 || strcmp(w[0], "SESSION") != 0 ||
	    !hex_valid(w[1], ID_HEX)) {
		snprintf(why, n, "relay %s did not open a session", hostport);
		close(rs->fd);
		rs->fd = -1;
		return -1;
	}
	strlcpy(rs->relay, rc.dest, sizeof(rs->relay));
	strlcpy(rs->sid, w[1], sizeof(rs->sid));
	vlog("relay session %s on %s, %s (each step within %d ms)", rs->sid,
	    rs->relay, rc.via, ms);
	return 0;
}

/*
 * Log on to rvd at rvaddr and open a session on the first relay of relays
 * (a list; NULL for those rvd names) that opens one: 0, or -1 with why.
 * Needs nothing from the ticket, so a ladder can do it while the direct
 * rungs are still trying.
 */
static int
rsess_open(struct rsess *rs, const char *rvaddr, const char *relays, int ms,
    char *why, size_t n)
{
	char list[RV_RELAYS][HOSTPORT_MAX];
	const char *name = env_or("P2P_NAME", env_or("USER", "anonymous"));
	int nr, i;

	memset(rs, 0, sizeof(*rs));
	rs->fd = -1;
	strlcpy(rs->rvaddr, rvaddr, sizeof(rs->rvaddr));
	if (rv_logon(&rs->rv, rvaddr, "LOGON", name, getenv("P2P_SECRET"), NULL,
	    ms) == -1) {
		snprintf(why, n, "unable to log on to rvd: %s", rs->rv.why);
		return -1;
	}
	if (relays != NULL) {
		if ((nr = relays_parse(relays, list, RV_RELAYS)) > RV_RELAYS)
			nr = RV_RELAYS;
	} else {
		memcpy(list, rs->rv.relay, sizeof(list));
		nr = rs->rv.nrelay;
	}
	if (nr <= 0)
		snprintf(why, n, "no relay: rvd %s names none", rs->rv.addr);
	/* In order: the first is the one rvd (or the user) prefers. */
	for (i = 0; i < nr; i++)
		if (rsess_new(rs, list[i], ms, why, n) == 0)
			return 0;
	rsess_close(rs);
	return -1;
}

/* Whether relay is one of the words of list (NULL: any will do). */
static int
relay_listed(const char *relay, const char *list)
{
	char l[RV_RELAYS][HOSTPORT_MAX];
	int n, i;

	if (list == NULL)
		return 1;
	if ((n = relays_parse(list, l, RV_RELAYS)) > RV_RELAYS)
		n = RV_RELAYS;
	for (i = 0; i < n; i++)
		if (strcmp(l[i], relay) == 0)
			return 1;
	return 0;
}

/* Invite peer to the session through rvd and wait for it: the connection, or -1. */
static int
rsess_invite(struct rsess *rs, const char *peer, int ms, char *why, size_t n)
{
	char line[LINE_MAX_ + 1], *w[RV_WORDS];
	int fd, r;

	vlog("inviting %s to relay session %s; waiting at most %d ms for it to join",
	    peer, rs->sid, 3 * ms);
	if (rv_send(&rs->rv, "RELAY %s %s %s%s", peer, rs->sid, rs->relay,
	    plain ? " plain" : "") == -1)
		goto lost;
	while ((r = rv_readline(&rs->rv, line, sizeof(line), ms)) > 0) {
		if (line_words(line, w, RV_WORDS) < 2 || strcmp(w[1], rs->sid) != 0)
			continue;
		if (strcmp(w[0], "SENT") == 0)
			break;
		if (strcmp(w[0], "ERR") == 0) {
			snprintf(why, n, "%s is not logged on at %s", peer,
			    rs->rvaddr);
			goto fail;
		}
	}
	if (r <= 0)
		goto lost;
	/* The peer dials the relay and joins: a few round trips. */
	if (await_pair(rs->fd, 2 * ms, why, n) == -1)
		goto fail;
	fd = rs->fd;
	rs->fd = -1;
	rsess_close(rs);
	return fd;
lost:
	snprintf(why, n, "lost rvd %s", rs->rvaddr);
fail:
	rsess_close(rs);
	return -1;
}

int
main(int argc, char *argv[])
{
	struct ticket t;
	struct rsess rs;
	char why[LINE_MAX_ / 2], emsg[256];
	const char *relay = NULL, *join = NULL, *rvenv;
	char tlist[RV_RELAYS * HOSTPORT_MAX];
	int ch, tsec = 0, ms, fd, r, fromticket, prepared = 0;

	opt_version(argc, argv);
	while ((ch = getopt(argc, argv, "+hVj:R:t:uv")) != -1) {
		switch (ch) {
		case 'j':
			join = optarg;
			break;
		case 'u':
			plain = 1;
			break;
		case 'R':
			if (relays_parse(optarg, NULL, 0) <= 0)
				errx(EX_USAGE_, "bad relay list: %s", optarg);
			relay = optarg;
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
	ms = env_timeout_ms(tsec, 3);

	if (join != NULL) {
		if (argc < 1 || !hex_valid(join, ID_HEX))
			usage();
		if ((fd = relay_join(join, argv[0], ms, why, sizeof(why))) == -1)
			errx(EX_NOTCONN, "%s", why);
		vlog("joined relay session %s on %s", join, argv[0]);
		return deliver(fd, &(struct conninfo){ .via = "relay",
		    .peer = getenv("P2PPEER"), .id = join }, argv + 1, SIDE_ANSWER);
	}
	fromticket = argc == 0 || strcmp(argv[0], "-") == 0;
	memset(&t, 0, sizeof(t));
	rvenv = env_or("P2P_RVD", "");
	if (reach_config(rvenv, emsg, sizeof(emsg)) == -1)
		errx(EX_USAGE_, "%s", emsg);
	/*
	 * In a ladder the ticket comes only when the direct rungs have failed:
	 * open the relay session meanwhile, so that failure costs no more
	 * round trips than the invitation itself.
	 */
	if (fromticket && *rvenv != '\0')
		prepared = rsess_open(&rs, rvenv, relay, ms, why, sizeof(why)) == 0;
	if (fromticket) {
		if ((r = ticket_read(stdin, &t, emsg, sizeof(emsg))) == 0)
			return EX_CONNECTED;
		if (r == -1)
			errx(EX_USAGE_, "%s", emsg);
		if (t.peer[0] == '\0')
			errx(EX_USAGE_, "malformed ticket: no peer");
		/* The last resort: not while a rung before us still races. */
		if (!ticket_await(stdin, &t)) {
			vlog("a rung before us connected: no relay");
			return EX_CONNECTED;
		}
	} else {
		if (!name_valid(argv[0]))
			errx(EX_USAGE_, "bad peer name: %s", argv[0]);
		strlcpy(t.peer, argv[0], sizeof(t.peer));
	}
	if (t.rv[0] == '\0')
		strlcpy(t.rv, rvenv, sizeof(t.rv));
	if (t.rv[0] == '\0')
		errx(EX_USAGE_, "no rendezvous address: set P2P_RVD");
	if (relay == NULL && t.nrelay > 0) {
		tlist[0] = '\0';
		for (r = 0; r < t.nrelay; r++) {
			strlcat(tlist, r ? "," : "", sizeof(tlist));
			strlcat(tlist, t.relay[r], sizeof(tlist));
		}
		relay = tlist;
	}
	if (prepared && (strcmp(rs.rvaddr, t.rv) != 0 ||
	    !relay_listed(rs.relay, relay))) {
		rsess_close(&rs);
		prepared = 0;
	}
	if ((prepared || rsess_open(&rs, t.rv, relay, ms, why, sizeof(why)) == 0) &&
	    (fd = rsess_invite(&rs, t.peer, ms, why, sizeof(why))) != -1) {
		vlog("connected to %s through the relay", t.peer);
		return deliver(fd, &(struct conninfo){ .via = "relay",
		    .peer = t.peer, .id = rs.sid },
		    argv + (argc > 0), SIDE_DIAL);
	}
	warnx("%s", why);
	if (fromticket) {
		return ticket_pass(&t, "relaycat", why);
	}
	return EX_NOTCONN;
}
