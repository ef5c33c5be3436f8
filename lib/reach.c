/*
 * Reaching the servers the ladder stands on, rvd and relayd: every
 * host:port of a list directly, in order, and then each through the proxy
 * the environment names, raced in the manner of RFC 8305. An open network
 * pays nothing for the proxy (the direct dial wins before the proxy's turn);
 * a network whose only way out is the proxy waits one stagger per direct
 * address, not a timeout; a network that refuses outright moves on at once.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

#define REACH_WORDS 8		/* host:port words in a list */
#define REACH_TRIES 32		/* direct addresses and proxy tunnels in all */
#define REACH_STAGGER 100	/* ms between the start of two tries */

struct try {
	struct addr a;
	const char *dest;	/* the host:port word it serves */
	int proxy;		/* a tunnel through the proxy, not a dial */
	int fd;
	int sent;		/* buf is on its way (Fast Open, or written) */
	int done;		/* failed, or never started */
	int err;		/* why it failed, when it did */
};

/* The proxy the environment names, parsed: 1, 0 for none, -1 with why for a bad URL. */
int
reach_proxy(struct proxy *px, char *why, size_t n)
{
	const char *name, *url = proxy_env(&name);
	char e[256];

	if (url == NULL)
		return 0;
	if (proxy_parse(url, px, e, sizeof(e)) == -1) {
		snprintf(why, n, "bad proxy URL in %s: %s", name, e);
		return -1;
	}
	return 1;
}

/*
 * What no retry can fix, checked before anything is dialled: the rvd
 * address list (when given) and the environment's proxy URL. 0, or -1
 * with why.
 */
int
reach_config(const char *hostports, char *why, size_t n)
{
	struct proxy px;

	if (hostports != NULL && *hostports != '\0' &&
	    relays_parse(hostports, NULL, 0) <= 0) {
		snprintf(why, n, "bad rendezvous address (HOST:PORT ...): %s",
		    hostports);
		return -1;
	}
	return reach_proxy(&px, why, n) == -1 ? -1 : 0;
}

/*
 * Split a comma- or space-separated list of host:port words, keeping the
 * first max in out: how many words there are, or -1 for a bad one.
 */
int
relays_parse(const char *list, char out[][HOSTPORT_MAX], int max)
{
	char buf[RV_RELAYS * HOSTPORT_MAX * 2], *p, *w;
	int n = 0;

	if (strlcpy(buf, list, sizeof(buf)) >= sizeof(buf))
		return -1;
	for (p = buf; (w = strsep(&p, ", \t")) != NULL;) {
		if (*w == '\0' || strcmp(w, "-") == 0)
			continue;
		if (!addr_is_hostport(w) || strlen(w) >= HOSTPORT_MAX)
			return -1;
		if (n < max)
			strlcpy(out[n], w, HOSTPORT_MAX);
		n++;
	}
	return n;
}

/* Start a nonblocking connect for t, sending buf in the SYN where Fast Open can. */
static void
try_start(struct try *t, const char *buf, size_t n)
{
	ssize_t w;

	t->fd = socket(t->a.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (t->fd == -1) {
		t->err = errno;
		t->done = 1;
		return;
	}
	if (!t->proxy && n > 0) {
		fd_fastopen(t->fd);
		setsockopt(t->fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 },
		    sizeof(int));
	}
	if (connect(t->fd, (struct sockaddr *)&t->a.ss, t->a.len) == -1 &&
	    errno != EINPROGRESS)
		goto fail;
	if (!t->proxy && n > 0) {
		/* With a cookie the line rides in the SYN; without, it waits. */
		w = send(t->fd, buf, n, MSG_NOSIGNAL);
		if (w == (ssize_t)n)
			t->sent = 1;
		else if (w != -1 || (errno != EINPROGRESS && errno != EAGAIN))
			goto fail;
	}
	return;
fail:
	t->err = errno;
	close(t->fd);
	t->fd = -1;
	t->done = 1;
}

/* Close t's socket and mark it failed, noting why under -v. */
static void
try_fail(struct try *t, const char *what, int e)
{
	char as[ADDR_STR];

	if (t->fd != -1)
		close(t->fd);
	t->fd = -1;
	t->done = 1;
	if (!t->proxy)
		vlog("%s (%s): %s", t->dest, addr_fmt((struct sockaddr *)&t->a.ss,
		    as, sizeof(as)), what ? what : strerror(e));
}

/*
 * A connected try: through the proxy, open the tunnel; then send buf if
 * it has not gone yet. The socket, blocking, or -1 with why filled.
 */
static int
try_finish(struct try *t, const struct proxy *px, const char *buf, size_t n,
    long deadline, char *why, size_t whyn)
{
	char e[256];
	int fd = t->fd, left = (int)(deadline - now_ms());

	t->fd = -1;
	t->done = 1;
	fd_nonblock(fd, 0);
	if (t->proxy && proxy_tunnel(fd, px, t->dest, left > 0 ? left : 1, e,
	    sizeof(e)) != 0) {
		/* The proxy's own fault is worth a line even if another way works. */
		warnx("%s", e);
		snprintf(why, whyn, "%s", e);
		close(fd);
		return -1;
	}
	if (!t->sent && n > 0 && write_all(fd, buf, n, left > 0 ? left : 1) == -1) {
		snprintf(why, whyn, "%s: %s", t->dest, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Say why t failed, in last. */
static void
try_why(const struct try *t, const struct proxy *px, char *last, size_t n)
{
	if (t->proxy)
		snprintf(last, n, "unable to connect to proxy %s: %s",
		    px->hostport, strerror(t->err));
	else
		snprintf(last, n, "%s: %s", t->dest, strerror(t->err));
}

/* Fill tries[] for the words of list, directs first, then the proxy's: the count. */
static int
tries_plan(const char *list, const struct proxy *px, int haveproxy,
    char words[][HOSTPORT_MAX], struct try *tries, int *nproxy, char *why,
    size_t whyn)
{
	struct addr a[4], pa[4];
	int nw, i, j, k, np = 0, n = 0, nd;

	if ((nw = relays_parse(list, words, REACH_WORDS)) <= 0) {
		snprintf(why, whyn, "bad address list: %s", list);
		errno = EINVAL;
		return -1;
	}
	if (nw > REACH_WORDS)
		nw = REACH_WORDS;
	for (i = 0; i < nw; i++) {
		if ((k = addr_resolve(words[i], NULL, a, 4)) <= 0) {
			vlog("%s: unable to resolve: %s", words[i],
			    addr_strerror(errno));
			k = 0;
		}
		for (j = 0; j < k && n < REACH_TRIES; j++)
			tries[n++] = (struct try){ .a = a[j], .dest = words[i],
			    .fd = -1 };
	}
	if (haveproxy && (np = addr_resolve(px->hostport, NULL, pa, 4)) <= 0) {
		warnx("unable to resolve proxy %s: %s", px->hostport,
		    addr_strerror(errno));
		np = 0;
	}
	nd = n;
	for (i = 0; i < nw && np > 0; i++) {
		if (proxy_bypass(words[i]))
			continue;
		for (j = 0; j < np && n < REACH_TRIES; j++)
			tries[n++] = (struct try){ .a = pa[j], .dest = words[i],
			    .proxy = 1, .fd = -1 };
	}
	if (n == 0)
		snprintf(why, whyn, "unable to resolve %s: %s", list,
		    addr_strerror(errno));
	*nproxy = n - nd;
	return n;
}

/*
 * Dial the first of the host:port words in hostports that answers, directly
 * or through the environment's proxy, within ms, and send the n bytes of
 * buf. The socket (blocking), with rc saying which word answered and how;
 * or -1 with rc->why, and errno EINVAL for a bad list or proxy URL.
 */
int
reach(const char *hostports, const char *buf, size_t n, int ms,
    struct reached *rc)
{
	char *why = rc->why;
	size_t whyn = sizeof(rc->why);
	char words[REACH_WORDS][HOSTPORT_MAX], last[256] = "";
	struct try tries[REACH_TRIES];
	struct pollfd p[REACH_TRIES];
	int map[REACH_TRIES];
	struct proxy px;
	long deadline = now_ms() + ms, next = 0;
	int nt, started = 0, np, i, r, e, fd, haveproxy, nproxy = 0;
	socklen_t el;

	if ((haveproxy = reach_proxy(&px, why, whyn)) == -1) {
		errno = EINVAL;
		return -1;
	}
	if ((nt = tries_plan(hostports, &px, haveproxy, words, tries, &nproxy,
	    why, whyn)) <= 0) {
		if (nt == 0)
			errno = EHOSTUNREACH;
		return -1;
	}
	for (;;) {
		/* Start the next try on the stagger, or at once when none is live. */
		for (np = 0, i = 0; i < started; i++)
			if (!tries[i].done)
				np++;
		if (started < nt && (np == 0 || now_ms() >= next)) {
			try_start(&tries[started], buf, n);
			if (tries[started].done)
				try_why(&tries[started], &px, last, sizeof(last));
			started++;
			next = now_ms() + REACH_STAGGER;
			continue;
		}
		if (np == 0 && started == nt)
			break;
		if (now_ms() >= deadline)
			break;
		for (np = 0, i = 0; i < started; i++) {
			if (tries[i].done)
				continue;
			p[np] = (struct pollfd){ .fd = tries[i].fd, .events = POLLOUT };
			map[np++] = i;
		}
		r = (int)((started < nt ? next : deadline) - now_ms());
		if ((r = poll(p, np, r < 0 ? 0 : r)) == -1 && errno != EINTR)
			break;
		for (i = 0; r > 0 && i < np; i++) {
			struct try *t = &tries[map[i]];

			if (p[i].revents == 0)
				continue;
			e = 0;
			el = sizeof(e);
			if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &e, &el) == -1)
				e = errno;
			if (e != 0) {
				try_fail(t, NULL, e);
				t->err = e;
				try_why(t, &px, last, sizeof(last));
				continue;
			}
			if ((fd = try_finish(t, &px, buf, n, deadline, last,
			    sizeof(last))) == -1)
				continue;
			strlcpy(rc->dest, t->dest, sizeof(rc->dest));
			if (t->proxy && px.scheme == PROXY_HTTP)
				vlog("through HTTP proxy %s: a half-close ends its "
				    "tunnel (squid); SOCKS5 passes one", px.hostport);
			if (t->proxy)
				snprintf(rc->via, sizeof(rc->via), "proxy %s",
				    px.hostport);
			else
				snprintf(rc->via, sizeof(rc->via), "direct");
			for (i = 0; i < started; i++)
				if (tries[i].fd != -1)
					close(tries[i].fd);
			vlog("reached %s %s", t->dest, rc->via);
			return fd;
		}
	}
	for (i = 0; i < started; i++)
		if (tries[i].fd != -1)
			close(tries[i].fd);
	if (last[0] != '\0' && started == nt && now_ms() < deadline) {
		snprintf(why, whyn, "%s", last);
		errno = ECONNREFUSED;
	} else {
		snprintf(why, whyn, "%s%s%s: timeout", hostports,
		    nproxy ? " and via proxy " : "", nproxy ? px.hostport : "");
		errno = ETIMEDOUT;
	}
	return -1;
}
