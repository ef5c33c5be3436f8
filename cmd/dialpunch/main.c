/*
 * dialpunch: reads a ticket and punches through both NATs to the peer by
 * TCP simultaneous open, timed through rvd (p2p(7), "Hole punching");
 * the direct handshake decides, as for every rung, and the connection
 * goes on with P2PVIA=punch. On failure it passes the ticket on.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

static void
usage(void)
{
	usage_exit("usage: dialpunch [-ehVv] [-t SECONDS] [-n NAME] [PROG...]\n");
}

/*
 * Does dialdirect race beside us? It hands us the ticket as its last
 * candidate starts, and we keep the stagger it would have waited.
 */
static int
after_direct(const struct ticket *t)
{
	int i;

	for (i = 0; i < t->ntried; i++)
		if (strcmp(t->tried[i], "dialdirect racing on") == 0)
			return 1;
	return 0;
}

/*
 * The handshake on the punched fd, in the part rvd gave us: the invitee
 * dials (its GO goes with the line when the session's commitment is
 * ours), the inviter answers. 0, or -1 with why; *go says a GO went.
 */
static int
handshake(int fd, const struct punch *p, const struct ticket *t, int ms,
    int *go, char *why, size_t n)
{
	struct handshake h;
	long deadline = now_ms() + ms;

	*go = 0;
	if (!p->dial)
		return punch_answer(fd, t, ms, why, n);
	if (hs_dial(&h, fd, t->id, t->token, commit_env(), deadline) == HS_FAIL ||
	    hs_wait(&h, fd, deadline) != HS_DONE) {
		snprintf(why, n, "handshake: %s", h.why ? h.why : "failed");
		return -1;
	}
	*go = h.go;
	return 0;
}

int
main(int argc, char *argv[])
{
	struct ticket t;
	struct punch p;
	char why[LINE_MAX_ / 2], emsg[256];
	const char *name, *hopeless;
	int ch, tsec = 0, early = 0, ms, fd, r, go, handoff, fast;
	long t0;

	name = env_or("P2P_NAME", env_or("USER", "anonymous"));
	opt_version(argc, argv);
	while ((ch = getopt(argc, argv, "+ehVn:t:v")) != -1) {
		switch (ch) {
		case 'e':
			early = 1;
			break;
		case 'n':
			name = optarg;
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
	if (!name_valid(name))
		errx(EX_USAGE_, "bad name: %s", name);
	ms = env_timeout_ms(tsec, 3);
	if ((r = ticket_read(stdin, &t, emsg, sizeof(emsg))) == 0)
		return EX_CONNECTED;
	if (r == -1)
		errx(EX_USAGE_, "%s", emsg);
	if (t.id[0] == '\0' || t.rv[0] == '\0')
		return ticket_pass(&t, "dialpunch", "no session to punch for");
	/*
	 * Racing the next rung needs a catcher on $P2PFD, as in dialdirect.
	 * Behind dialdirect -e, which hands us the ticket as its last
	 * candidate starts, the next rung starts the stagger later that it
	 * would have waited (our own SYN leaves no sooner either).
	 */
	handoff = !early || getenv("P2PFD") == NULL ? -1 :
	    after_direct(&t) ? dial_stagger_ms(t.rtt) : 0;
	/*
	 * The hold lets a direct dial that works win; where the punch won
	 * last time (p2pcatch's record), none did: fire without it.
	 */
	if ((fast = early && cache_lastwon(t.peer, t.rv, "punch")))
		vlog("%s went by punch last time: punching at once", t.peer);
	t0 = now_ms();
	/* The peer's rung may start a little after ours: wait for it. */
	if (punch_meet(&p, &t, name, getenv("P2P_SECRET"), ms, handoff,
	    fast) == -1) {
		warnx("%s", p.why);
		return ticket_pass(&t, "dialpunch", p.why);
	}
	vlog("we are %s (mapped %s), %s is %s (mapped %s), rtt %d ms; "
	    "firing in %d ms%s", p.local, p.mapped, t.peer, p.peerlocal, p.peer,
	    p.rtt, p.wait, p.fast ? ", without the hold" : "");
	if ((hopeless = punch_hopeless(&p)) != NULL) {
		close(p.rvfd);
		vlog("%s: not punching", hopeless);
		return ticket_pass(&t, "dialpunch", hopeless);
	}
	/*
	 * Crossing SYNs need a round trip between the NATs, and a few tries;
	 * one that has not met by then will not, and the relay is waiting.
	 */
	fd = punch_fire(&p, 4 * p.rtt + 500 < ms ? 4 * p.rtt + 500 : ms);
	close(p.rvfd);
	if (fd == -1)
		return ticket_pass(&t, "dialpunch", p.why);
	vlog("punched through to %s in %ld ms (%d tries); %s the handshake",
	    p.peer, now_ms() - t0, p.tries, p.dial ? "dialling" : "answering");
	if (handshake(fd, &p, &t, ms, &go, why, sizeof(why)) == -1) {
		close(fd);
		return ticket_pass(&t, "dialpunch", why);
	}
	vlog("connected to %s at %s", t.peer[0] ? t.peer : "peer", p.peer);
	r = deliver(fd, &(struct conninfo){ "punch", t.peer, go, t.id,
	    t.token }, argv,
	    SIDE_DIAL);
	ticket_connected(&t, "dialpunch");
	return r;
}
