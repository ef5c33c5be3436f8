/*
 * rvinvite: the inviter. Logs on to rvd, listens, and invites PEER with our
 * candidates. If PEER dials in with the token (rung "in"), the connection
 * is delivered; if PEER reports failure, or the timer runs out, a ticket
 * with PEER's candidates goes to stdout for the next rung.
 */
#include <sys/socket.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

static void
usage(void)
{
	fprintf(stderr, "usage: rvinvite [-v] [-t SECONDS] [-r RVD] [-n NAME] "
	    "PEER [PROG...]\n");
	exit(EX_USAGE_);
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

/* Accept one dialer and check its token: the connection, or -1. */
static int
take_dialer(int lfd, const struct ticket *t)
{
	char id[ID_HEX + 1], token[ID_HEX + 1], from[ADDR_STR];
	int fd;

	if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) == -1)
		return -1;
	fd_peername(fd, from, sizeof(from));
	if (hs_read(fd, id, token, 2000) == -1 ||
	    hs_answer(fd, token, strcmp(id, t->id) == 0 ? t->token : NULL) == -1) {
		warnx("refused a dialer from %s: %s", from,
		    errno == EACCES ? "wrong session or token" : strerror(errno));
		close(fd);
		return -1;
	}
	vlog("connected: %s dialled in from %s", t->peer, from);
	return fd;
}

int
main(int argc, char *argv[])
{
	struct ticket t;
	struct rv rv;
	struct pollfd p[2];
	char cand[TICKET_ADDRS][ADDR_STR], line[LINE_MAX_ + 1], *w[40];
	char invite[LINE_MAX_ + 1], msg[LINE_MAX_ + 1];
	const char *rvaddr, *name, *secret, *e, *why = "timeout";
	long deadline;
	int ch, tsec = 0, lfd, ncand, i, n, fd = -1, dialms;

	rvaddr = getenv("P2P_RVD");
	name = env_or("P2P_NAME", env_or("USER", "anonymous"));
	secret = getenv("P2P_SECRET");
	while ((ch = getopt(argc, argv, "+n:r:t:v")) != -1) {
		switch (ch) {
		case 'n':
			name = optarg;
			break;
		case 'r':
			rvaddr = optarg;
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
	if (argc < 1)
		usage();
	if (!name_valid(argv[0]))
		errx(EX_USAGE_, "bad peer name: %s", argv[0]);
	if (!name_valid(name))
		errx(EX_USAGE_, "bad name: %s", name);
	if (rvaddr == NULL)
		errx(EX_USAGE_, "no rendezvous address: set P2P_RVD or use -r");
	/* The peer gets the dial timeout to try us; we wait that and a margin. */
	dialms = env_timeout_ms(0, 3);
	deadline = now_ms() + (tsec ? tsec * 1000 : 2 * dialms + 1000);

	memset(&t, 0, sizeof(t));
	strlcpy(t.peer, argv[0], sizeof(t.peer));
	strlcpy(t.rv, rvaddr, sizeof(t.rv));
	hex_random(t.id, 16);
	hex_random(t.token, 16);
	if (rv_logon(&rv, rvaddr, "LOGON", name, secret, dialms) == -1) {
		if (errno == EACCES)
			errx(EX_NOTCONN, "%s refused us as %s: %s", rvaddr, name,
			    rv.why);
		err(EX_NOTCONN, "unable to reach rvd at %s", rvaddr);
	}
	strlcpy(t.relay, rv.relay, sizeof(t.relay));
	if ((lfd = listen_tcp("0", 16)) == -1)
		err(EX_SYSTEM, "unable to listen");
	{
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		getsockname(lfd, (struct sockaddr *)&ss, &sl);
		ncand = addr_candidates(addr_port((struct sockaddr *)&ss),
		    rv.observed, cand, TICKET_ADDRS);
	}
	snprintf(invite, sizeof(invite), "INVITE %s %s %s", t.peer, t.id, t.token);
	for (i = 0; i < ncand; i++) {
		strlcat(invite, " ", sizeof(invite));
		strlcat(invite, cand[i], sizeof(invite));
	}
	vlog("inviting %s at %s with %d candidates", t.peer, rvaddr, ncand);
	if (rv_send(&rv, "%s", invite) == -1)
		err(EX_NOTCONN, "lost rvd at %s", rvaddr);

	while (fd == -1) {
		long left = deadline - now_ms();

		if (left <= 0)
			break;
		p[0].fd = rv.fd;
		p[0].events = POLLIN;
		p[1].fd = lfd;
		p[1].events = POLLIN;
		if (rv.lb.len == 0 && poll(p, 2, (int)left) <= 0)
			continue;
		if (p[1].revents & POLLIN) {
			fd = take_dialer(lfd, &t);
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
			/* An absent peer: say so plainly; the ticket still goes on. */
			warnx("%s", n > 2 ? msg + strlen("ERR ") + ID_HEX + 1 : msg);
			why = "peer not logged on";
			break;
		}
		if (strcmp(w[0], "MSG") == 0 && n >= 3 && strcmp(w[2], "CAND") == 0)
			take_cands(&t, w + 3, n - 3);
		else if (strcmp(w[0], "MSG") == 0 && n >= 3 &&
		    strcmp(w[2], "FAIL") == 0) {
			why = "peer could not dial us";
			break;
		}
	}
	if (fd != -1) {
		rv_send(&rv, "MSG %s DONE", t.id);
		close(rv.fd);
		close(lfd);
		return deliver(fd, &(struct conninfo){ "in", t.peer }, argv + 1,
		    SIDE_DIAL);
	}
	close(lfd);
	vlog("no dial in from %s: %s", t.peer, why);
	ticket_tried(&t, "rvinvite %s", why);
	if (ticket_write(stdout, &t) == -1)
		err(EX_SYSTEM, "write ticket");
	return EX_NOTCONN;
}
