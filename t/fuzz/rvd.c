/*
 * Fuzz rvd as it runs: its own code (cmd/rvd/main.c, included here with
 * its main renamed) and its real epoll loop, with clients that connect to
 * it over a UNIX socket (no TCP state is left behind by millions of runs).
 * The input is one or more clients' bytes separated by "\n--\n"; within a
 * client, "\n++\n" splits what it sends at once from what it sends after
 * every client has sent its first part, so that one client can answer an
 * invitation another made. Each client appears to come from 127.0.0.N,
 * N its number, so that rvd's observed-address candidate is exercised.
 * A client whose bytes start with "~" reads nothing rvd sends it (until
 * the end); the others read everything after each step. An input that
 * starts with "U\n" runs rvd with a users file (bob s3cret, alice pw,
 * carol c), so that names are owned and a newer log-on replaces an older.
 * A line "*COUNT LINE" is COUNT copies of LINE (see say()).
 * Afterwards every client hangs up and rvd must have forgotten them all.
 */
#include <sys/un.h>

#include "fuzz.h"

/*
 * rvd takes each line out of a client's buffer with linebuf_next: catch
 * every such call, to check that rvd acts on no line of a client that it
 * has refused (and is only draining before the close).
 */
static int checked_linebuf_next(struct linebuf *, char *, size_t);
#define linebuf_next checked_linebuf_next

#define main rvd_main
/* -DRVD_MAIN='"FILE"' fuzzes another copy, e.g. one with a fix to try. */
#ifndef RVD_MAIN
#define RVD_MAIN "../../cmd/rvd/main.c"
#endif
#include RVD_MAIN
#undef main
#undef linebuf_next

/* The client whose input rvd is reading (set around each conn_read). */
static struct conn *reading;

static int
checked_linebuf_next(struct linebuf *lb, char *line, size_t n)
{
	int r = linebuf_next(lb, line, n);

	if (r >= 0 && reading != NULL && reading->state == ST_CLOSING)
		fprintf(fuzz_err, "rvd acts on a line from a client it refused: %s\n",
		    line);
	CHECK(r < 0 || reading == NULL || reading->state != ST_CLOSING);
	return r;
}

#define CLIENTS 16

struct client {
	int fd;			/* our end */
	int deaf;		/* reads nothing until the end */
	const uint8_t *later;	/* what it sends in the second round */
	size_t nlater;
};

static struct sockaddr_un sun;
static socklen_t sunlen;

/* Run rvd's loop until nothing happens. */
static void
spin(void)
{
	struct epoll_event ev[256];
	int i, n, rounds;

	for (rounds = 0; rounds < 200; rounds++) {
		if ((n = epoll_wait(ep, ev, 256, 0)) <= 0)
			break;
		for (i = 0; i < n; i++) {
			/* The listening socket: client_new accepts, not us. */
			if (ev[i].data.ptr == NULL)
				continue;
			reading = ev[i].data.ptr;
			on_event(&ev[i]);
			reading = NULL;
		}
		grave_empty();
	}
}

/*
 * Send p[0..n) from a client; what does not fit now is dropped. A line
 * "*COUNT LINE" stands for COUNT (at most 20000) copies of LINE: that is
 * how an input of a few KiB can be a client that rvd must throw out for
 * not reading (rvd queues at most 64 KiB for it).
 */
static void
say(int fd, const uint8_t *p, size_t n)
{
	static char big[20000 * (LINE_MAX_ + 1) + 4096];
	const uint8_t *end, *nl, *q;
	size_t o = 0, l, ll;
	long count;

	if (n == 0)
		return;
	end = p + n;
	while (p < end) {
		nl = memchr(p, '\n', end - p);
		l = (nl ? nl + 1 : end) - p;
		/* "*COUNT LINE": the count's digits, bounded by the line. */
		count = 0;
		for (q = p + 1; *p == '*' && q < p + l && *q >= '0' && *q <= '9' &&
		    count <= 20000; q++)
			count = count * 10 + (*q - '0');
		if (*p == '*' && q > p + 1 && q < p + l && *q == ' ' &&
		    count <= 20000) {
			ll = p + l - (q + 1);
			while (count-- > 0 && o + ll <= sizeof(big)) {
				memcpy(big + o, q + 1, ll);
				o += ll;
			}
		} else if (o + l <= sizeof(big)) {
			memcpy(big + o, p, l);
			o += l;
		}
		p += l;
	}
	for (l = 0; l < o;) {
		ssize_t w = send(fd, big + l, o - l, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w <= 0)
			break;
		l += w;
	}
}

/* Read and throw away what rvd has sent, so that it never stalls on us. */
static void
discard(int fd)
{
	char buf[4096];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

/* Connect a client and have rvd accept it, as from 127.0.0.n:4000+n. */
static int
client_new(int n, struct source **src)
{
	int fd, before = nconns;
	struct conn *c;
	int i;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sunlen) == -1)
		abort();
	conn_accept();
	CHECK(nconns == before + 1);
	for (i = maxfd - 1; i >= 0; i--)
		if ((c = conns[i]) != NULL && c->serial == serials)
			break;
	CHECK(i >= 0);
	*src = c->src;
	/* The smallest send buffer: rvd must queue what its client does not
	 * read at once, and throw out a client that lets too much pile up. */
	setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &(int){ 1 }, sizeof(int));
	/* The address a TCP client would have had. */
	snprintf(c->observed, sizeof(c->observed), "127.0.0.%d:%d", n + 1,
	    4000 + n);
	fd_nonblock(fd, 1);
	return fd;
}

/*
 * Free every session rvd still holds, and the sources of our clients
 * (the only ones there are). Left out of coverage and ASan: a walk over
 * all of a table's buckets teaches the fuzzer nothing and would cost most
 * of each run; it stops once the last session is found.
 */
__attribute__((noinline, no_sanitize("coverage", "address", "undefined")))
static void
forget_all(struct source **srcs, int n)
{
	int i, j;

	for (i = 0; i < NBUCKET && nsessions > 0; i++)
		while (sessions[i] != NULL)
			sess_free(&sessions[i]);
	for (i = 0; i < n; i++) {
		struct source **p;

		if (srcs[i] == NULL)
			continue;
		CHECK(srcs[i]->conns == 0);
		for (j = i + 1; j < n; j++)
			if (srcs[j] == srcs[i])
				srcs[j] = NULL;
		for (p = &sources[hash(srcs[i]->ip)]; *p != srcs[i]; p = &(*p)->next)
			CHECK(*p != NULL);
		*p = srcs[i]->next;
		free(srcs[i]);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct client cl[CLIENTS];
	struct source *srcs[CLIENTS];
	const uint8_t *p = data, *end = data + size, *sep, *later;
	static char users_path[64];
	size_t n;
	int nc = 0, i;
	FILE *f;

	fuzz_quiet();
	if (ep == 0) {
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1,
		    "p2p-fuzz-rvd-%d", (int)getpid());
		sunlen = offsetof(struct sockaddr_un, sun_path) + 1 +
		    strlen(sun.sun_path + 1);
		if ((lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0)) == -1 ||
		    bind(lfd, (struct sockaddr *)&sun, sunlen) == -1 ||
		    listen(lfd, 64) == -1 ||
		    (ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
			abort();
		relay = "198.51.100.2:7071";
		/* The users file, loaded once; used when an input asks. */
		snprintf(users_path, sizeof(users_path), "/tmp/p2p-fuzz-rvd-users.%d",
		    (int)getpid());
		if ((f = fopen(users_path, "w")) == NULL)
			abort();
		fputs("# fuzz\nbob s3cret\nalice pw\ncarol c\n", f);
		fclose(f);
		usersfile = users_path;
		users_load();
		unlink(users_path);
	}
	usersfile = NULL;
	if (size >= 2 && memcmp(data, "U\n", 2) == 0) {
		usersfile = users_path;
		p += 2;
	}
	/* Round one: each client connects and sends its first part. */
	while (nc < CLIENTS) {
		sep = memmem(p, end - p, "\n--\n", 4);
		n = (sep ? sep + 1 : end) - p;
		later = memmem(p, n, "\n++\n", 4);
		cl[nc].fd = client_new(nc, &srcs[nc]);
		cl[nc].deaf = n > 0 && *p == '~';
		cl[nc].later = later ? later + 4 : NULL;
		cl[nc].nlater = later ? n - (later + 4 - p) : 0;
		say(cl[nc].fd, p + cl[nc].deaf,
		    (later ? (size_t)(later + 1 - p) : n) - cl[nc].deaf);
		spin();
		for (i = 0; i <= nc; i++)
			if (!cl[i].deaf)
				discard(cl[i].fd);
		nc++;
		if (sep == NULL)
			break;
		p = sep + 4;
	}
	/* Round two: the rest, in the same order. */
	for (i = 0; i < nc; i++) {
		say(cl[i].fd, cl[i].later, cl[i].nlater);
		spin();
		for (n = 0; n < (size_t)nc; n++)
			if (!cl[n].deaf)
				discard(cl[n].fd);
	}
	/* The deaf read at last: rvd sends what it queued for them. */
	for (i = 0; i < nc; i++)
		discard(cl[i].fd);
	spin();
	/* Everyone hangs up: rvd must notice each one and forget it. */
	for (i = 0; i < nc; i++)
		close(cl[i].fd);
	spin();
	for (i = 0; i < maxfd; i++)
		if (conns[i] != NULL)
			conn_close(conns[i], NULL);	/* closing, lingering */
	grave_empty();
	CHECK(nconns == 0);
	forget_all(srcs, nc);
	CHECK(nsessions == 0);
	return 0;
}
