/*
 * dialdirect: reads a ticket, races the peer's candidate addresses, does the
 * token handshake and delivers the connection; on failure passes the ticket
 * on with a "tried" line. Alone, "dialdirect HOST:PORT" dials like nc.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

static void
usage(void)
{
	usage_exit("usage: dialdirect [-ehVv] [-t SECONDS] [PROG...]\n"
	    "       dialdirect [-v] [-t SECONDS] HOST:PORT [PROG...]\n");
}

int
main(int argc, char *argv[])
{
	struct ticket t;
	struct race_hs hs, *hp;
	char why[LINE_MAX_ / 2], won[ADDR_STR], emsg[256];
	int ch, tsec = 0, early = 0, ms, fd, r;

	opt_version(argc, argv);
	while ((ch = getopt(argc, argv, "+ehVt:v")) != -1) {
		switch (ch) {
		case 'e':
			early = 1;
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
	arg_nc_habit(argc, argv);
	ms = env_timeout_ms(tsec, 3);

	if (argc > 0 && addr_is_hostport(argv[0])) {
		if ((fd = dial_host(argv[0], ms)) == -1)
			errx(EX_NOTCONN, "unable to connect to %s: %s", argv[0],
			    addr_strerror(errno));
		vlog("connected to %s", argv[0]);
		return deliver(fd, &(struct conninfo){ .via = "direct" }, argv + 1,
		    SIDE_DIAL);
	}
	if ((r = ticket_read(stdin, &t, emsg, sizeof(emsg))) == 0)
		return EX_CONNECTED;
	if (r == -1)
		errx(EX_USAGE_, "%s", emsg);
	ms = dial_budget_ms(tsec, t.rtt);
	vlog("dialling %d candidates within %d ms", t.naddr, ms);
	/* Racing the next rung needs a catcher on $P2PFD, as in rvinvite. */
	hp = race_hs_init(&hs, &t, early && getenv("P2PFD") ? "dialdirect" : NULL);
	/* The next rung, dialpunch, signals first and fires a stagger later. */
	if (hp != NULL)
		hp->eager = 1;
	/* It punched last time, so no dial of ours did: punch at once. */
	if (hp != NULL && hp->handoff != NULL &&
	    cache_lastwon(t.peer, t.rv, "punch")) {
		vlog("%s went by punch last time: passing the ticket on at once",
		    t.peer);
		hp->now = 1;
	}
	fd = dial_race(t.addr, t.naddr, hp, ms, dial_stagger_ms(t.rtt), why,
	    sizeof(why), won, sizeof(won));
	if (fd != -1) {
		vlog("connected to %s at %s", t.peer[0] ? t.peer : "peer", won);
		r = deliver(fd, &(struct conninfo){ "out", t.peer,
		    hp != NULL && hp->go, t.id, t.token }, argv, SIDE_DIAL);
		ticket_connected(&t, "dialdirect");
		return r;
	}
	return ticket_pass(&t, "dialdirect", why);
}
