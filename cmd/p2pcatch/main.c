/*
 * p2pcatch: runs a ladder of dialers (a shell pipeline) with $P2PFD set,
 * takes the first connection that arrives on it, and serves it: to PROG
 * UCSPI style, to its own stdout as a passed fd (-F), or copied to stdio.
 * This is how the p2pdial script turns a pipeline into one connection.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

static void
usage(void)
{
	usage_exit("usage: p2pcatch [-FhlVv] [-n NAME] [-P PEER] [-t SECONDS] "
	    "LADDER [PROG...]\n");
}

/* The last "tried" lines the ladder wrote, joined for one error line. */
static void
tried_summary(const char *out, char *buf, size_t n)
{
	const char *p = out, *nl;

	buf[0] = '\0';
	while ((p = strstr(p, "tried ")) != NULL) {
		nl = strchrnul(p, '\n');
		if (buf[0] != '\0')
			strlcat(buf, "; ", n);
		strncat(buf, p + 6, (size_t)(nl - p - 6) < n - strlen(buf) - 1 ?
		    (size_t)(nl - p - 6) : n - strlen(buf) - 1);
		p = nl;
	}
}

int
main(int argc, char *argv[])
{
	struct ladder l;
	char line[LINE_MAX_ + 1], copy[LINE_MAX_ + 1], sum[LINE_MAX_];
	struct conninfo ci;
	char *sh[] = { "/bin/sh", "-c", NULL, NULL };
	const char *peer = NULL, *remote, *e;
	int ch, passfd = 0, side = SIDE_DIAL, ms = 300000, fd, st;

	opt_version(argc, argv);
	while ((ch = getopt(argc, argv, "+FhlVn:P:t:v")) != -1) {
		switch (ch) {
		case 'F':
			passfd = 1;
			break;
		case 'l':
			side = SIDE_ANSWER;
			break;
		case 'n':
			setprogname(optarg);
			break;
		case 'P':
			peer = optarg;
			break;
		case 't':
			ms = strtonum(optarg, 1, 86400, &e) * 1000;
			if (e != NULL)
				errx(EX_USAGE_, "bad -t: %s", optarg);
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
	/* A bad P2P_TIMEOUT stops every rung: say so once, here. */
	env_timeout_ms(0, 3);
	sh[2] = argv[0];
	if (ladder_start(&l, sh, NULL, peer, -1) == -1)
		err(EX_SYSTEM, "unable to start the ladder");
	fd = ladder_catch(&l, line, sizeof(line), ms);
	if (fd == -1) {
		if (errno == ETIMEDOUT)
			warnx("gave up after %d s", ms / 1000);
		st = ladder_stop(&l);
		tried_summary(l.tail, sum, sizeof(sum));
		warnx("unable to connect%s%s%s%s", peer ? " to " : "",
		    peer ? peer : "", sum[0] ? ": " : "", sum);
		return st == EX_CONNECTED || st == EX_NOTCONN ? EX_NOTCONN : st;
	}
	ladder_stop(&l);
	strlcpy(copy, line, sizeof(copy));
	if (conninfo_parse(copy, &ci, &remote) == -1)
		errx(EX_SYSTEM, "the ladder passed a connection without its line");
	vlog("connected via %s to %s%s%s", ci.via, remote, ci.peer ? " as " : "",
	    ci.peer ? ci.peer : "");
	/* The rung that won, for the next dial's rungs (cache_lastwon). */
	if (side == SIDE_DIAL && ci.peer != NULL)
		cache_won(ci.peer, getenv("P2P_RVD"), ci.via);
	if (passfd) {
		fd_keepalive(fd);
		if (fd_send(1, fd, line) == -1)
			err(EX_SYSTEM, "unable to pass the connection on stdout");
		return EX_CONNECTED;
	}
	return deliver(fd, &ci, argv + 1, side);
}
