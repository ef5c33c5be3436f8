/*
 * dialport: reads a ticket and dials the peer again on the ports that
 * firewalls leave open (443, then 80) and that the peer listens on, with
 * the token handshake; delivers the connection (via "port"), or passes the
 * ticket on with a "tried" line.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

#define MAXPORTS 16

static void
usage(void)
{
	usage_exit("usage: dialport [-ehVv] [-t SECONDS] [-p PORTS] [PROG...]\n");
}

/*
 * Race the peer's addresses moved to port, for ms: the handshaken socket,
 * or -1 with why appended to all.
 */
static int
dial_port(struct ticket *t, int port, int ms, int early, char *all,
    size_t alln, int *go)
{
	struct race_hs hs, *hp = race_hs_init(&hs, t, early ? "dialport" : NULL);
	char addrs[TICKET_ADDRS][ADDR_STR], why[LINE_MAX_ / 2], won[ADDR_STR];
	int n, fd;

	n = addrs_onport(t, port, addrs, TICKET_ADDRS);
	vlog("trying port %d, %d address%s, for %d ms", port, n,
	    n == 1 ? "" : "es", ms);
	fd = dial_race(addrs, n, hp, ms, dial_stagger_ms(t->rtt), why,
	    sizeof(why), won, sizeof(won));
	if (fd != -1) {
		*go = hp != NULL && hp->go;
		vlog("connected to %s at %s", t->peer[0] ? t->peer : "peer", won);
		return fd;
	}
	if (all[0] != '\0')
		strlcat(all, ", ", alln);
	strlcat(all, why, alln);
	return -1;
}

int
main(int argc, char *argv[])
{
	struct ticket t;
	char why[LINE_MAX_], emsg[256];
	const char *plist = "443,80";
	int ports[MAXPORTS], np, ch, tsec = 0, ms, fd, r, i, ntry, go;
	int early = 0;

	opt_version(argc, argv);
	while ((ch = getopt(argc, argv, "+ehVp:t:v")) != -1) {
		switch (ch) {
		case 'e':
			early = 1;
			break;
		case 'p':
			plist = optarg;
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
	argv += optind;
	if ((np = ports_parse(plist, ports, MAXPORTS)) <= 0)
		errx(EX_USAGE_, "bad -p: %s (want ports like 443,80)", plist);
	if ((r = ticket_read(stdin, &t, emsg, sizeof(emsg))) == 0)
		return EX_CONNECTED;
	if (r == -1)
		errx(EX_USAGE_, "%s", emsg);
	ms = dial_budget_ms(tsec, t.rtt);
	if (getenv("P2PFD") == NULL)
		early = 0;
	for (ntry = 0, i = 0; i < np; i++)
		ntry += ticket_hasport(&t, ports[i]);
	/* Nothing for us to try: racing, the next rung need not wait for us. */
	if (early && ntry == 0)
		ticket_handoff(&t, "dialport");
	if (t.nport == 0)
		return ticket_pass(&t, "dialport", "peer listens on no extra ports");
	why[0] = '\0';
	for (i = 0; i < np; i++) {
		if (!ticket_hasport(&t, ports[i])) {
			vlog("peer does not listen on port %d", ports[i]);
			continue;
		}
		if ((fd = dial_port(&t, ports[i], ms, early, why, sizeof(why),
		    &go)) == -1)
			continue;
		r = deliver(fd, &(struct conninfo){ "port", t.peer, go, t.id,
		    t.token }, argv,
		    SIDE_DIAL);
		ticket_connected(&t, "dialport");
		return r;
	}
	if (ntry == 0)
		snprintf(why, sizeof(why), "peer listens on none of ports %s", plist);
	return ticket_pass(&t, "dialport", why);
}
