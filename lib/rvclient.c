/* A client's connection to rvd: log on, send lines, read lines. */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

/* Take WELCOME's words into rv: the observed address, the relays, "open". */
static int
rv_welcome(struct rv *rv, char *line)
{
	char *w[5];
	int n = line_words(line, w, 5);

	if (n < 3 || n > 4 || strcmp(w[0], "WELCOME") != 0 ||
	    (n == 4 && strcmp(w[3], "open") != 0) ||
	    strlcpy(rv->observed, w[1], sizeof(rv->observed)) >=
	    sizeof(rv->observed) ||
	    (rv->nrelay = relays_parse(w[2], rv->relay, RV_RELAYS)) == -1) {
		rv->nrelay = 0;
		errno = EPROTO;
		return -1;
	}
	if (rv->nrelay > RV_RELAYS)
		rv->nrelay = RV_RELAYS;
	rv->open = n == 4;
	return 0;
}

/*
 * Reach rvd at one of the host:port words of rvaddr (directly or through
 * the proxy, reach.c) and log on with verb (LOGON or LISTEN), sending the
 * line then (if not NULL) right behind the log-on; fills in what rvd
 * observed of us and the relays it names. -1 on failure with rv->why
 * saying why, and errno EACCES when rvd refused us, EINVAL for a bad
 * address list or proxy URL (no retry can fix those).
 */
int
rv_logon(struct rv *rv, const char *rvaddr, const char *verb,
    const char *name, const char *secret, const char *then, int ms)
{
	char line[LINE_MAX_ + 1], buf[2 * LINE_MAX_ + 2];
	struct reached rc;
	int n;

	memset(rv, 0, sizeof(*rv));
	memset(&rc, 0, sizeof(rc));
	rv->fd = -1;
	/* The log-on and a first request go together, in the SYN where they can. */
	n = snprintf(buf, sizeof(buf), "%s %s%s%s\n%s%s", verb, name,
	    secret ? " " : "", secret ? secret : "", then ? then : "",
	    then ? "\n" : "");
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		snprintf(rv->why, sizeof(rv->why), "log-on line too long");
		errno = EMSGSIZE;
		return -1;
	}
	if ((rv->fd = reach(rvaddr, buf, n, ms, &rc)) == -1) {
		n = errno;
		strlcpy(rv->why, rc.why, sizeof(rv->why));
		errno = n;
		return -1;
	}
	strlcpy(rv->addr, rc.dest, sizeof(rv->addr));
	strlcpy(rv->via, rc.via, sizeof(rv->via));
	if ((n = rv_readline(rv, line, sizeof(line), ms)) <= 0) {
		if (n == 0)
			errno = ECONNRESET;
		snprintf(rv->why, sizeof(rv->why), "rvd %s (%s): %s", rv->addr,
		    rv->via, n == 0 ? "closed the connection" : strerror(errno));
		goto fail;
	}
	if (strncmp(line, "ERR ", 4) == 0) {
		strlcpy(rv->why, line + (strncmp(line, "ERR - ", 6) ? 4 : 6),
		    sizeof(rv->why));
		close(rv->fd);
		rv->fd = -1;
		errno = EACCES;
		return -1;
	}
	if (rv_welcome(rv, line) == -1) {
		snprintf(rv->why, sizeof(rv->why), "rvd %s: bad welcome: %.100s",
		    rv->addr, line);
		goto fail;
	}
	return 0;
fail:
	n = errno;
	close(rv->fd);
	rv->fd = -1;
	errno = n;
	return -1;
}

/*
 * Next line from rvd within ms, answering its keepalives and skipping
 * empty lines on the way: the length, 0 only when rvd closed, -1 with
 * errno (ETIMEDOUT) otherwise.
 */
int
rv_readline(struct rv *rv, char *line, size_t n, int ms)
{
	long deadline = now_ms() + ms, left;
	struct pollfd p = { .fd = rv->fd, .events = POLLIN };
	int r;

	for (;;) {
		r = linebuf_next(&rv->lb, line, n);
		if (r == -2) {
			errno = EMSGSIZE;
			return -1;
		}
		if (r >= 0) {
			if (r == 0)
				continue;
			if (strcmp(line, "PING") == 0) {
				rv_send(rv, "PONG");
				continue;
			}
			return r;
		}
		/* Even with no time left, what is already there is read. */
		if ((left = deadline - now_ms()) < 0)
			left = 0;
		if ((r = poll(&p, 1, (int)left)) == -1 && errno != EINTR)
			return -1;
		if (r == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (r < 0)
			continue;
		if ((r = linebuf_fill(&rv->lb, rv->fd)) == 0)
			return 0;
		if (r == -1 && errno != EAGAIN && errno != EINTR)
			return -1;
	}
}

/* Send one line to rvd. */
int
rv_send(struct rv *rv, const char *fmt, ...)
{
	char buf[LINE_MAX_ + 1];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || n > LINE_MAX_) {
		errno = EMSGSIZE;
		return -1;
	}
	return line_write(rv->fd, 5000, "%s", buf);
}
