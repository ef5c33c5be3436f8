/*
 * p2pseal: seals a connection end to end, in the manner of Plan 9's
 * tlsclient and tlssrv. It runs a Noise handshake on the connection (fds
 * 6/7 with -c, 0/1 with -s), then PROG on plain text by the same UCSPI
 * rules, and seals and opens what passes between them.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

static void
usage(void)
{
	usage_exit("usage: p2pseal -c [-hSVv] [-k KEYFILE] [-n NAME] "
	    "[-t SECONDS] PEER@RVD [PROG...]\n"
	    "       p2pseal -s [-hSVv] [-a AUTHORIZED] [-k KEYFILE] [-n NAME] "
	    "[-t SECONDS] PROG...\n");
}

/* Are fds a and b both open? The connection must be there to seal. */
static int
have_fds(int a, int b)
{
	return fcntl(a, F_GETFD) != -1 && fcntl(b, F_GETFD) != -1;
}

/* Run prog on the far end of a socket pair, UCSPI style; ours in *local. */
static pid_t
run_prog(char **prog, int side, int *local)
{
	int sp[2], a = side == SIDE_DIAL ? 6 : 0, b = side == SIDE_DIAL ? 7 : 1;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == -1)
		err(EX_SYSTEM, "socketpair");
	if ((pid = fork()) == -1)
		err(EX_SYSTEM, "fork");
	if (pid == 0) {
		/* The raw connection sits on a and b: the plain one replaces it. */
		if (dup2(sp[1], a) == -1 || dup2(sp[1], b) == -1)
			err(EX_SYSTEM, "dup2");
		signal(SIGPIPE, SIG_DFL);
		execvp(prog[0], prog);
		err(errno == ENOENT ? 127 : 126, "unable to run %s", prog[0]);
	}
	close(sp[1]);
	*local = sp[0];
	return pid;
}

/*
 * The dialler's side: IK to a pinned key, else XX and pin what answered
 * (trust on first use), unless strict. With the key pinned, PROG starts
 * (into *prog, its end in *lin) while message 2 is on its way, and what it
 * says first goes sealed at once. Exits on failure with one line.
 */
static void
dial(struct noise *ns, const unsigned char s[NOISE_KEY], const char *peer,
    int strict, int ms, char **argv, pid_t *prog, int *lin)
{
	char kbuf[1024], why[512], fp[KEY_FP];
	unsigned char pinned[NOISE_KEY];
	const char *known = known_path(kbuf, sizeof(kbuf));
	int line = 0, r, got;

	if ((r = known_find(known, peer, pinned, &line)) == -1)
		err(EX_SYSTEM, "unable to read %s", known);
	if (r == 0 && strict)
		errx(EX_NOTCONN, "%s: not in %s, and -S refuses unknown peers",
		    peer, known);
	got = seal_dial(ns, 6, 7, s, r ? pinned : NULL, ms, why, sizeof(why));
	if (got == 0 && !ns->done) {
		key_fp(pinned, fp);
		setenv("P2PKEY_FP", fp, 1);
		if (*argv != NULL)
			*prog = run_prog(argv, SIDE_DIAL, lin);
		if ((got = seal_early(ns, *lin, 6, 7, ms, why,
		    sizeof(why))) == -1 && *prog > 0)
			kill(*prog, SIGTERM);
	}
	if (got == -1) {
		if (r)
			errx(EX_NOTCONN, "%s: %s: the peer did not prove the "
			    "key pinned at %s:%d (a changed key?)", peer, why,
			    known, line);
		errx(EX_NOTCONN, "%s: %s", peer, why);
	}
	if (r == 0) {
		if (known_add(known, peer, ns->rs) == -1)
			err(EX_SYSTEM, "unable to pin %s in %s", peer, known);
		key_fp(ns->rs, fp);
		fprintf(stderr, "%s: pinned %s, fingerprint %s, in %s\n",
		    getprogname(), peer, fp, known);
	}
}

/* Wait for pid: its exit status, as the shell would give it. */
static int
reap(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) == -1)
		if (errno != EINTR)
			return EX_SYSTEM;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/*
 * Copy both ways: a child seals what we send, we open what comes in. A bad
 * frame ends it all (the child and PROG too) with one line.
 */
static int
pump(struct noise *ns, int netr, int netw, int lin, int lout, pid_t prog)
{
	char why[256];
	pid_t out;
	int r;

	if ((out = fork()) == -1)
		err(EX_SYSTEM, "fork");
	if (out == 0) {
		/* Each end held once, so that a half-close over pipes is seen. */
		close(netr);
		if (lout != lin)
			close(lout);
		/* The peer gone is the other direction's news, not ours. */
		_exit(seal_out(&ns->tx, lin, netw) == -1 ? EX_NOTCONN : 0);
	}
	close(netw);
	if (lin != lout)
		close(lin);
	if (seal_in(&ns->early, &ns->rx, netr, lout, why, sizeof(why)) == -1) {
		kill(out, SIGTERM);
		if (prog > 0)
			kill(prog, SIGTERM);
		shutdown(netr, SHUT_RDWR);
		warnx("%s", why);
		reap(out);
		if (prog > 0)
			reap(prog);
		return EX_NOTCONN;
	}
	/* PROG writing on after our sealer died must see EPIPE, not wait. */
	close(lout);
	r = reap(out);
	if (prog > 0)
		r = reap(prog);
	return r;
}

int
main(int argc, char *argv[])
{
	struct noise ns;
	unsigned char s[NOISE_KEY];
	char kbuf[1024], why[512], fp[KEY_FP];
	const char *keyflag = NULL, *authorized = NULL, *peer = NULL;
	int ch, side = -1, strict = 0, tsec = 0, ms, netr, netw, lin, lout;
	pid_t prog = 0;

	opt_version(argc, argv);
	while ((ch = getopt(argc, argv, "+a:chk:n:SsVvt:")) != -1) {
		switch (ch) {
		case 'a':
			authorized = optarg;
			break;
		case 'c':
			side = SIDE_DIAL;
			break;
		case 'k':
			keyflag = optarg;
			break;
		case 'n':
			setprogname(optarg);
			break;
		case 'S':
			strict = 1;
			break;
		case 's':
			side = SIDE_ANSWER;
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
	if (side == -1 || (side == SIDE_DIAL && (argc < 1 || authorized)) ||
	    (side == SIDE_ANSWER && argc < 1))
		usage();
	if (side == SIDE_DIAL) {
		peer = *argv++;
		if (strchr(peer, '@') == NULL || strcspn(peer, " \t\n") !=
		    strlen(peer))
			errx(EX_USAGE_, "bad peer (want NAME@RVD): %s", peer);
	}
	netr = side == SIDE_DIAL ? 6 : 0;
	netw = side == SIDE_DIAL ? 7 : 1;
	if (!have_fds(netr, netw))
		errx(EX_USAGE_, "no connection on fds %d and %d", netr, netw);
	/*
	 * Every write is a whole frame: Nagle would only hold the first data
	 * behind the handshake's last message, a round trip (bench/seal).
	 */
	setsockopt(netw, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	ms = env_timeout_ms(tsec, 10);
	unsetenv("P2PKEY_FP");
	/*
	 * A dialler that does not seal (ssh's ProxyUseFdpass, p2pdial -u) gets
	 * PROG on the connection itself, unless we let in only sealed ones: at
	 * once when it said so (P2PPLAIN, from rvlisten), else once its first
	 * bytes show it.
	 */
	if (side == SIDE_ANSWER && (env_or("P2PPLAIN", "")[0] == '1' ||
	    seal_peek(netr, ms) == 0)) {
		if (strict || authorized)
			errx(EX_NOTCONN, "refused an unsealed dialler (-%s)",
			    authorized ? "a" : "S");
		vlog("an unsealed dialler: serving it plain");
		execvp(argv[0], argv);
		err(errno == ENOENT ? 127 : 126, "unable to run %s", argv[0]);
	}
	signal(SIGPIPE, SIG_IGN);
	key_load(key_path(keyflag, kbuf, sizeof(kbuf)), s, 1, getprogname());
	lin = 0;
	if (side == SIDE_DIAL)
		dial(&ns, s, peer, strict, ms, argv, &prog, &lin);
	else if (seal_answer(&ns, netr, netw, s, authorized, ms, why,
	    sizeof(why)) == -1)
		errx(EX_NOTCONN, "%s", why);
	memset(s, 0, sizeof(s));
	key_fp(ns.rs, fp);
	setenv("P2PKEY_FP", fp, 1);
	vlog("sealed with %s, peer's fingerprint %s",
	    ns.pattern == NOISE_IK ? "IK" : "XX", fp);
	/* PROG runs now unless IK's dial started it already. */
	if (*argv != NULL && prog == 0)
		prog = run_prog(argv, side, &lin);
	lout = lin == 0 ? 1 : lin;
	return pump(&ns, netr, netw, lin, lout, prog);
}
