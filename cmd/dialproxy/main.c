/*
 * dialproxy: reads a ticket and dials the peer through an HTTP CONNECT or
 * SOCKS5 proxy, with the token handshake; delivers the connection (via
 * "proxy"), or passes the ticket on with a "tried" line. Alone,
 * "dialproxy -x URL HOST:PORT" dials like nc through the proxy.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

/* The most destinations we try: every address on its own port and on each extra one. */
#define MAXCAND (TICKET_ADDRS * (TICKET_PORTS + 1))
#define MIN_TRY_MS 1000	/* the least one destination gets, if time is left */

static void
usage(void)
{
	usage_exit("usage: dialproxy [-hVv] [-t SECONDS] [-x URL] [PROG...]\n"
	    "       dialproxy [-v] [-t SECONDS] [-x URL] HOST:PORT [PROG...]\n");
}

/*
 * The destinations to try, in order: the peer's extra ports first, 443
 * then 80 then the rest, since proxies often allow CONNECT only to 443;
 * then each address on its own port.
 */
static int
destinations(const struct ticket *t, char out[][ADDR_STR], int max)
{
	char a[MAXCAND][ADDR_STR];
	int order[TICKET_PORTS + 2], no = 0, i, k, m, n = 0;

	if (ticket_hasport(t, 443))
		order[no++] = 443;
	if (ticket_hasport(t, 80))
		order[no++] = 80;
	for (i = 0; i < t->nport; i++)
		if (t->port[i] != 443 && t->port[i] != 80)
			order[no++] = t->port[i];
	for (i = 0; i < no; i++) {
		m = addrs_onport(t, order[i], a, TICKET_ADDRS);
		for (k = 0; k < m; k++)
			n = addrs_add(out, n, max, a[k]);
	}
	for (i = 0; i < t->naddr; i++)
		n = addrs_add(out, n, max, t->addr[i]);
	return n;
}

/* The ms left until deadline, at least 1. */
static int
left_ms(long deadline)
{
	long left = deadline - now_ms();

	return left < 1 ? 1 : (int)left;
}

/* The token handshake through the tunnel, by the deadline: 0, or -1 with why. */
static int
handshake(int fd, const struct ticket *t, long deadline, char *why, size_t n)
{
	struct handshake h;

	if (t->id[0] == '\0')
		return 0;
	if (hs_dial(&h, fd, t->id, t->token, -1, deadline) == HS_AGAIN &&
	    hs_wait(&h, fd, deadline) == HS_DONE)
		return 0;
	strlcpy(why, h.why, n);
	return -1;
}

/* Append one failure to the list for the ticket's "tried" line. */
static void
note(char *all, size_t n, const char *text)
{
	if (all[0] != '\0')
		strlcat(all, "; ", n);
	strlcat(all, text, n);
}

/*
 * Try dest within its fair share of the time left (rest destinations, this
 * one included, share it), so that one that hangs cannot starve the rest;
 * connecting to the proxy itself may take all the time left. The
 * handshaken socket, or PX_DEST or PX_PROXY with why.
 */
static int
try_dest(const struct ticket *t, const struct proxy *px, const char *dest,
    long deadline, int rest, char *why, size_t n)
{
	char one[LINE_MAX_ / 2];
	long left = deadline - now_ms(), share, end;
	int fd, r;

	if ((fd = proxy_open(px, (int)left, why, n)) == -1)
		return PX_PROXY;
	left = deadline - now_ms();
	share = left / rest < MIN_TRY_MS ? MIN_TRY_MS : left / rest;
	end = now_ms() + (share < left ? share : left);
	if ((r = proxy_tunnel(fd, px, dest, left_ms(end), why, n)) == 0) {
		if (handshake(fd, t, end, one, sizeof(one)) == 0)
			return fd;
		snprintf(why, n, "%s via proxy %s: %s", dest, px->hostport, one);
		r = PX_DEST;
	}
	close(fd);
	return r;
}

/*
 * Try each destination through the proxy in turn, within ms in all: the
 * handshaken socket, or -1 with why listing what became of each.
 */
static int
dial_ticket(const struct ticket *t, const struct proxy *px, int ms, char *why,
    size_t whyn)
{
	char dest[MAXCAND][ADDR_STR], one[LINE_MAX_ / 2];
	long deadline = now_ms() + ms;
	int nd = destinations(t, dest, MAXCAND), i, fd, tried = 0;

	why[0] = '\0';
	for (i = 0; i < nd; i++) {
		if (proxy_bypass(dest[i])) {
			vlog("not proxying %s: it is in no_proxy", dest[i]);
			continue;
		}
		tried++;
		if (deadline - now_ms() <= 0) {
			snprintf(one, sizeof(one), "%s and %d more not tried: "
			    "timeout", dest[i], nd - i - 1);
			note(why, whyn, one);
			break;
		}
		fd = try_dest(t, px, dest[i], deadline, nd - i, one, sizeof(one));
		if (fd >= 0)
			return fd;
		note(why, whyn, one);
		if (fd == PX_PROXY) {
			/* The proxy is down or refuses us: it would refuse every other. */
			warnx("%s", one);
			break;
		}
		vlog("%s", one);
	}
	if (!tried)
		snprintf(why, whyn, nd ? "every candidate is in no_proxy" :
		    "no candidates");
	return -1;
}

/* Dial dest through the proxy, or directly if no_proxy says so, and deliver. */
static int
standalone(const struct proxy *px, const char *dest, int ms, char **prog)
{
	char why[LINE_MAX_];
	int fd;

	if (proxy_bypass(dest)) {
		vlog("not proxying %s: it is in no_proxy", dest);
		if ((fd = dial_host(dest, ms)) == -1)
			errx(EX_NOTCONN, "unable to connect to %s: %s", dest,
			    addr_strerror(errno));
		return deliver(fd, &(struct conninfo){ .via = "direct" }, prog,
		    SIDE_DIAL);
	}
	if ((fd = proxy_dial(px, dest, ms, why, sizeof(why))) < 0)
		errx(EX_NOTCONN, "%s", why);
	vlog("connected to %s via proxy %s", dest, px->hostport);
	return deliver(fd, &(struct conninfo){ .via = "proxy" }, prog, SIDE_DIAL);
}

int
main(int argc, char *argv[])
{
	struct ticket t;
	struct proxy px;
	char why[LINE_MAX_], emsg[256];
	const char *url = NULL, *from = "-x";
	int ch, tsec = 0, ms, fd, r, bad;

	opt_version(argc, argv);
	while ((ch = getopt(argc, argv, "+hVt:vx:")) != -1) {
		switch (ch) {
		case 't':
			tsec = arg_seconds(optarg, 't', 3600);
			break;
		case 'v':
			verbose = 1;
			break;
		case 'x':
			url = optarg;
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
	if (url == NULL)
		url = proxy_env(&from);
	bad = url != NULL && proxy_parse(url, &px, emsg, sizeof(emsg)) == -1;
	/* A bad -x is a usage error; a bad variable must not stop the ladder. */
	if (bad && strcmp(from, "-x") == 0)
		errx(EX_USAGE_, "%s", emsg);

	if (argc > 0 && addr_is_hostport(argv[0])) {
		if (url == NULL)
			errx(EX_USAGE_, "no proxy: give -x URL or set P2P_PROXY");
		if (bad)
			errx(EX_USAGE_, "%s: %s", from, emsg);
		return standalone(&px, argv[0], ms, argv + 1);
	}
	if ((r = ticket_read(stdin, &t, why, sizeof(why))) == 0)
		return EX_CONNECTED;
	if (r == -1)
		errx(EX_USAGE_, "%s", why);
	if (url == NULL)
		return ticket_pass(&t, "dialproxy", "no proxy configured");
	if (bad) {
		warnx("%s: %s", from, emsg);
		snprintf(why, sizeof(why), "%s: %s", from, emsg);
		return ticket_pass(&t, "dialproxy", why);
	}
	/*
	 * A peer behind a NAT that drops is never reached, and the relay waits
	 * for us: give the proxy's two legs what the round trip says a direct
	 * dial gets, twice over, not the whole P2P_TIMEOUT.
	 */
	if (tsec == 0 && t.rtt > 0 && 2 * dial_budget_ms(0, t.rtt) < ms)
		ms = 2 * dial_budget_ms(0, t.rtt);
	vlog("proxy %s from %s, %d ms in all", px.hostport, from, ms);
	if ((fd = dial_ticket(&t, &px, ms, why, sizeof(why))) != -1) {
		vlog("connected to %s via proxy %s", t.peer[0] ? t.peer : "peer",
		    px.hostport);
		return deliver(fd, &(struct conninfo){ "proxy", t.peer, 0, t.id,
		    t.token }, argv,
		    SIDE_DIAL);
	}
	return ticket_pass(&t, "dialproxy", why);
}
