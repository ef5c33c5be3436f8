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

static void
usage(void)
{
	fprintf(stderr, "usage: relaycat [-v] [-t SECONDS] [-R RELAY] [PEER | -] "
	    "[PROG...]\n"
	    "       relaycat [-v] [-t SECONDS] -j SID HOST:PORT [PROG...]\n");
	exit(EX_USAGE_);
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

/* Join session sid on the relay at hostport: the connection, or -1 with why. */
static int
relay_join(const char *sid, const char *hostport, int ms, char *why, size_t n)
{
	int fd;

	if ((fd = dial_host(hostport, ms)) == -1) {
		snprintf(why, n, "unable to connect to relay %s: %s", hostport,
		    strerror(errno));
		return -1;
	}
	if (line_write(fd, ms, "JOIN %s", sid) == -1 ||
	    await_pair(fd, ms, why, n) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Open a session on the relay, invite the peer in t to it through rvd, and
 * wait for it: the connection, or -1 with why.
 */
static int
relay_open(struct ticket *t, const char *relay, int ms, char *why, size_t n)
{
	char line[LINE_MAX_ + 1], *w[RV_WORDS], sid[ID_HEX + 1];
	const char *name, *secret = getenv("P2P_SECRET");
	struct rv rv;
	int fd, r;

	name = env_or("P2P_NAME", env_or("USER", "anonymous"));
	if (rv_logon(&rv, t->rv, "LOGON", name, secret, NULL, ms) == -1) {
		snprintf(why, n, "unable to log on to rvd %s: %s", t->rv,
		    errno == EACCES ? rv.why : strerror(errno));
		return -1;
	}
	if (relay == NULL || *relay == '\0')
		relay = rv.relay;
	if (*relay == '\0') {
		snprintf(why, n, "no relay: rvd %s names none", t->rv);
		goto fail;
	}
	if ((fd = dial_host(relay, ms)) == -1) {
		snprintf(why, n, "unable to connect to relay %s: %s", relay,
		    strerror(errno));
		goto fail;
	}
	if (line_write(fd, ms, "NEW") == -1 ||
	    (r = line_read(fd, line, sizeof(line), ms)) <= 0 ||
	    line_words(line, w, RV_WORDS) != 2 || strcmp(w[0], "SESSION") != 0 ||
	    !hex_valid(w[1], ID_HEX)) {
		snprintf(why, n, "relay %s did not open a session", relay);
		goto failfd;
	}
	strlcpy(sid, w[1], sizeof(sid));
	vlog("relay session %s on %s; inviting %s", sid, relay, t->peer);
	if (rv_send(&rv, "RELAY %s %s %s", t->peer, sid, relay) == -1)
		goto lost;
	while ((r = rv_readline(&rv, line, sizeof(line), ms)) > 0) {
		if (line_words(line, w, RV_WORDS) < 2 || strcmp(w[1], sid) != 0)
			continue;
		if (strcmp(w[0], "SENT") == 0)
			break;
		if (strcmp(w[0], "ERR") == 0) {
			snprintf(why, n, "%s is not logged on at %s", t->peer,
			    t->rv);
			goto failfd;
		}
	}
	if (r <= 0)
		goto lost;
	close(rv.fd);
	/* The peer dials the relay and joins: a few round trips. */
	if (await_pair(fd, 2 * ms, why, n) == -1) {
		close(fd);
		return -1;
	}
	return fd;
lost:
	snprintf(why, n, "lost rvd %s", t->rv);
failfd:
	close(fd);
fail:
	close(rv.fd);
	return -1;
}

int
main(int argc, char *argv[])
{
	struct ticket t;
	char why[LINE_MAX_ / 2], emsg[256];
	const char *relay = NULL, *join = NULL, *e;
	int ch, tsec = 0, ms, fd, r, fromticket;

	while ((ch = getopt(argc, argv, "+j:R:t:v")) != -1) {
		switch (ch) {
		case 'j':
			join = optarg;
			break;
		case 'R':
			relay = optarg;
			break;
		case 't':
			tsec = strtonum(optarg, 1, 3600, &e);
			if (e != NULL)
				errx(EX_USAGE_, "bad -t: %s", optarg);
			break;
		case 'v':
			verbose = 1;
			break;
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
		return deliver(fd, &(struct conninfo){ "relay",
		    getenv("P2PPEER") }, argv + 1, SIDE_ANSWER);
	}
	fromticket = argc == 0 || strcmp(argv[0], "-") == 0;
	memset(&t, 0, sizeof(t));
	if (fromticket) {
		if ((r = ticket_read(stdin, &t, emsg, sizeof(emsg))) == 0)
			return EX_CONNECTED;
		if (r == -1)
			errx(EX_USAGE_, "%s", emsg);
		if (t.peer[0] == '\0')
			errx(EX_USAGE_, "malformed ticket: no peer");
	} else {
		if (!name_valid(argv[0]))
			errx(EX_USAGE_, "bad peer name: %s", argv[0]);
		strlcpy(t.peer, argv[0], sizeof(t.peer));
	}
	if (t.rv[0] == '\0')
		strlcpy(t.rv, env_or("P2P_RVD", ""), sizeof(t.rv));
	if (t.rv[0] == '\0')
		errx(EX_USAGE_, "no rendezvous address: set P2P_RVD");
	if (relay == NULL && t.relay[0] != '\0')
		relay = t.relay;
	if ((fd = relay_open(&t, relay, ms, why, sizeof(why))) != -1) {
		vlog("connected to %s through the relay", t.peer);
		return deliver(fd, &(struct conninfo){ "relay", t.peer },
		    argv + (argc > 0), SIDE_DIAL);
	}
	warnx("%s", why);
	if (fromticket) {
		ticket_tried(&t, "relaycat %s", why);
		if (ticket_write(stdout, &t) == -1)
			err(EX_SYSTEM, "write ticket");
	}
	return EX_NOTCONN;
}
