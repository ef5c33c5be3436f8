/*
 * p2pseal's wire: every message, handshake or transport, is one frame of a
 * two-byte big-endian length (1 to 65535) and that many bytes. The dialler's
 * first frame starts with one byte naming the pattern ('X' or 'I'). A frame
 * whose plaintext is empty ends the stream, so that a cut is told from an end.
 * In IK the dialler does not wait for message 2 to speak: its frames sealed
 * under the early key (noise.c) follow message 1, and an empty one under
 * that key, sent once message 2 has come, hands over to the transport keys.
 */
#include <sys/socket.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

#define SEAL_PLAIN (NOISE_MSG_MAX - NOISE_TAG)	/* most bytes a frame carries */

/* Write all n bytes; a peer that is gone is an error, not a SIGPIPE. */
static int
writen(int fd, const unsigned char *buf, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = send(fd, buf, n, MSG_NOSIGNAL);
		if (w == -1 && errno == ENOTSOCK)
			w = write(fd, buf, n);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += w;
		n -= w;
	}
	return 0;
}

/* End our direction of fd: shutdown for a socket, close for a pipe. */
static void
half_close(int fd)
{
	if (shutdown(fd, SHUT_WR) == -1)
		close(fd);
}

/*
 * Read one frame of at most max bytes into buf, by the deadline (0: none):
 * 1, 0 at end of file between frames, or -1 with errno (EPROTO: cut inside a frame, or empty;
 * EMSGSIZE: longer than max, its body left unread).
 */
int
frame_read(int fd, unsigned char *buf, size_t max, size_t *n, long deadline)
{
	unsigned char h[2];
	ssize_t r;

	if ((r = io_read(fd, h, 2, deadline)) == -1)
		return -1;
	if (r == 0)
		return 0;
	*n = (size_t)h[0] << 8 | h[1];
	if (r < 2 || *n == 0)
		return errno = EPROTO, -1;
	if (*n > max)
		return errno = EMSGSIZE, -1;
	if ((r = io_read(fd, buf, *n, deadline)) == -1)
		return -1;
	if ((size_t)r < *n)
		return errno = EPROTO, -1;
	return 1;
}

/* Write buf (1 to NOISE_MSG_MAX bytes) as one frame: 0, or -1 with errno. */
int
frame_write(int fd, const unsigned char *buf, size_t n)
{
	unsigned char f[2 + NOISE_MSG_MAX];

	if (n == 0 || n > NOISE_MSG_MAX)
		return errno = EMSGSIZE, -1;
	f[0] = (unsigned char)(n >> 8);
	f[1] = (unsigned char)n;
	memcpy(f + 2, buf, n);
	return writen(fd, f, n + 2);
}

/*
 * The prologue both ends hash before the first message: the protocol, the
 * pattern, and the session's id and token ($P2PID, $P2PTOKEN), so that a
 * handshake recorded in one session fails in any other.
 */
size_t
seal_prologue(unsigned char *buf, size_t n, int pattern)
{
	const char *id = env_or("P2PID", ""), *tok = env_or("P2PTOKEN", "");
	int r;

	r = snprintf((char *)buf, n, "p2pseal 1 %s%c%s%c%s",
	    pattern == NOISE_IK ? "IK" : "XX", 0, id, 0, tok);
	return r < 0 ? 0 : (size_t)r >= n ? n - 1 : (size_t)r;
}

/*
 * Does the dialler on socket fd speak p2pseal? Its first frame is short and
 * names a pattern. It only peeks, so that a plain connection can go to a
 * program whole: 1 yes, 0 no (plain bytes), -1 when it cannot tell (not a
 * socket, closed, nothing within ms).
 */
int
seal_peek(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	long deadline = now_ms() + ms, left;
	unsigned char b[3];
	size_t len;
	ssize_t r;

	while ((left = deadline - now_ms()) > 0) {
		if (poll(&p, 1, (int)left) == -1 && errno != EINTR)
			return -1;
		if ((r = recv(fd, b, sizeof(b), MSG_PEEK | MSG_DONTWAIT)) == -1) {
			if (errno != EAGAIN && errno != EINTR)
				return -1;
			continue;
		}
		if (r == 0)
			return -1;
		if (b[0] > HS_FRAME_MAX >> 8)
			return 0;
		if (r >= 2 && ((len = (size_t)b[0] << 8 | b[1]) < 2 ||
		    len > HS_FRAME_MAX))
			return 0;
		if (r == 3)
			return b[2] == 'X' || b[2] == 'I';
		/* The header came alone: wait a little for the rest. */
		poll(NULL, 0, 10);
	}
	return -1;
}

/* Why frame_read's got (0 or -1 with errno) ended a handshake, and where. */
static void
cut_why(int got, const char *where, char *why, size_t whyn)
{
	/* Handshake messages are short: this is someone speaking plain text. */
	if (got == -1 && errno == EMSGSIZE)
		snprintf(why, whyn, "plain bytes %s (an unsealed peer? see "
		    "p2pdial -u, p2plisten -u)", where);
	else
		snprintf(why, whyn, "%s %s", got == 0 ? "connection closed" :
		    errno == EPROTO ? "bad frame" : errno == ETIMEDOUT ?
		    "timed out" : "connection lost", where);
}

/*
 * Once the peer's static key is known, refuse it unless the authorized
 * file (*authorized, if set) lists it; then the check is done (NULL).
 * 0, or -1 with why.
 */
static int
authorized_check(const struct noise *ns, const char **authorized, char *why,
    size_t whyn)
{
	int got;

	if (*authorized == NULL || !ns->has_rs)
		return 0;
	if ((got = authorized_has(*authorized, ns->rs)) != 1) {
		snprintf(why, whyn, got == 0 ? "key not in %s" :
		    "unable to read %s", *authorized);
		return -1;
	}
	*authorized = NULL;
	return 0;
}

/*
 * Write our next handshake message as one frame, after the byte that names
 * the pattern when tag is not 0 (the dialler's first). 0, or -1 with why.
 */
static int
hs_send(struct noise *ns, int wfd, unsigned char tag, char *why, size_t whyn)
{
	unsigned char m[NOISE_MSG_MAX];
	size_t n = tag != 0;
	ssize_t r;

	m[0] = tag;
	if ((r = noise_write(ns, NULL, 0, m + n)) == -1) {
		snprintf(why, whyn, "handshake failed");
		return -1;
	}
	if (frame_write(wfd, m, n + r) == -1) {
		snprintf(why, whyn, "connection lost in the handshake: %s",
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* Write our handshake messages and read the peer's until it is done. */
static int
handshake(struct noise *ns, int rfd, int wfd, unsigned char tag,
    long deadline, const char *authorized, char *why, size_t whyn)
{
	unsigned char m[NOISE_MSG_MAX], p[NOISE_MSG_MAX];
	size_t n;
	int got;

	while (!ns->done) {
		if (noise_mine(ns)) {
			if (hs_send(ns, wfd, tag, why, whyn) == -1)
				return -1;
			tag = 0;
			continue;
		}
		if ((got = frame_read(rfd, m, HS_FRAME_MAX, &n,
		    deadline)) != 1) {
			cut_why(got, "in the handshake", why, whyn);
			return -1;
		}
		if (noise_read(ns, m, n, p) == -1) {
			snprintf(why, whyn, "handshake failed: message not "
			    "authentic (another session, or another key)");
			return -1;
		}
		if (authorized_check(ns, &authorized, why, whyn) == -1)
			return -1;
	}
	return 0;
}

/*
 * The dialler's handshake on rfd/wfd with our private key s: IK when the
 * peer's key rs is pinned, else XX. XX runs to its end; IK stops after
 * message 1 (ns->done is 0), for seal_early to finish. 0, or -1 with why.
 */
int
seal_dial(struct noise *ns, int rfd, int wfd, const unsigned char s[NOISE_KEY],
    const unsigned char *rs, int ms, char *why, size_t whyn)
{
	unsigned char pro[256];
	int pat = rs != NULL ? NOISE_IK : NOISE_XX;
	size_t pn = seal_prologue(pro, sizeof(pro), pat);

	if (noise_init(ns, pat, 1, s, rs, pro, pn) == -1) {
		snprintf(why, whyn, "handshake failed");
		return -1;
	}
	if (pat == NOISE_XX)
		return handshake(ns, rfd, wfd, 'X', now_ms() + ms, NULL, why,
		    whyn);
	return hs_send(ns, wfd, 'I', why, whyn);
}

/* Seal n bytes of plain text (0: the end mark) under cs as one frame. */
static int
frame_seal(struct noise_cs *cs, int fd, const unsigned char *plain, size_t n)
{
	unsigned char f[2 + NOISE_MSG_MAX];
	size_t len = n + NOISE_TAG;

	f[0] = (unsigned char)(len >> 8);
	f[1] = (unsigned char)len;
	if (noise_seal(cs, NULL, 0, plain, n, f + 2) == -1)
		return errno = EOVERFLOW, -1;
	return writen(fd, f, len + 2);
}

/*
 * IK's dialler after message 1: what comes from lin (-1: nothing) goes out
 * at once under the early key, so the dialler's first bytes do not wait a
 * round trip; message 2 ends that, and an empty early frame says so.
 * 0, or -1 with why.
 */
int
seal_early(struct noise *ns, int lin, int rfd, int wfd, int ms, char *why,
    size_t whyn)
{
	static unsigned char plain[SEAL_PLAIN];
	struct pollfd p[2] = { { .fd = rfd, .events = POLLIN },
	    { .fd = lin, .events = POLLIN } };
	long deadline = now_ms() + ms, left;
	ssize_t r;

	while (p[1].fd != -1 && (left = deadline - now_ms()) > 0) {
		if (poll(p, 2, (int)left) == -1) {
			if (errno == EINTR)
				continue;
			snprintf(why, whyn, "poll: %s", strerror(errno));
			return -1;
		}
		if (p[0].revents != 0)
			break;
		if (p[1].revents == 0)
			continue;
		/* At its end (or an error) PROG's side is the pump's news. */
		if ((r = read(lin, plain, sizeof(plain))) <= 0) {
			if (r == -1 && errno == EINTR)
				continue;
			p[1].fd = -1;
			continue;
		}
		if (frame_seal(&ns->early, wfd, plain, r) == -1) {
			snprintf(why, whyn, "connection lost in the "
			    "handshake: %s", strerror(errno));
			return -1;
		}
	}
	if (handshake(ns, rfd, wfd, 0, deadline, NULL, why, whyn) == -1)
		return -1;
	if (frame_seal(&ns->early, wfd, NULL, 0) == -1) {
		snprintf(why, whyn, "connection lost: %s", strerror(errno));
		return -1;
	}
	/* Ours is spent: seal_in must not take it for the answerer's. */
	explicit_bzero(&ns->early, sizeof(ns->early));
	return 0;
}

/*
 * The answering handshake: the dialler's first frame names the pattern.
 * With authorized set, a dialler whose key is not in it is refused.
 */
int
seal_answer(struct noise *ns, int rfd, int wfd, const unsigned char s[NOISE_KEY],
    const char *authorized, int ms, char *why, size_t whyn)
{
	unsigned char m[NOISE_MSG_MAX], p[NOISE_MSG_MAX], pro[256];
	long deadline = now_ms() + ms;
	size_t n, pn;
	int got, pat;

	if ((got = frame_read(rfd, m, HS_FRAME_MAX, &n, deadline)) != 1) {
		cut_why(got, "before the handshake", why, whyn);
		return -1;
	}
	if (m[0] != 'X' && m[0] != 'I') {
		snprintf(why, whyn, "not a p2pseal handshake");
		return -1;
	}
	pat = m[0] == 'I' ? NOISE_IK : NOISE_XX;
	pn = seal_prologue(pro, sizeof(pro), pat);
	noise_init(ns, pat, 0, s, NULL, pro, pn);
	if (noise_read(ns, m + 1, n - 1, p) == -1) {
		snprintf(why, whyn, "handshake failed: message not authentic "
		    "(another session, or %s)", pat == NOISE_IK ?
		    "the dialler pinned another key for us" : "garbled");
		return -1;
	}
	if (authorized_check(ns, &authorized, why, whyn) == -1)
		return -1;
	return handshake(ns, rfd, wfd, 0, deadline, authorized, why, whyn);
}

/*
 * Seal what comes from fd from into frames on net, then the end frame. 0,
 * or -1 with errno when either side failed. The end frame says it all: no
 * half-close, which a proxy such as squid takes for the end of the tunnel.
 */
int
seal_out(struct noise_cs *tx, int from, int net)
{
	static unsigned char plain[SEAL_PLAIN];
	ssize_t r;

	for (;;) {
		if ((r = read(from, plain, sizeof(plain))) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (frame_seal(tx, net, plain, r) == -1)
			return -1;
		if (r == 0)
			return 0;
	}
}

/*
 * Open the frames from net onto fd to until the end frame, then half-close
 * to; first, with early set (IK's answerer), the early ones up to their
 * empty one. 0, or -1 with why: a cut, a frame that is not authentic, a
 * lost sink.
 */
int
seal_in(struct noise_cs *early, struct noise_cs *rx, int net, int to,
    char *why, size_t whyn)
{
	static unsigned char f[NOISE_MSG_MAX], plain[NOISE_MSG_MAX];
	struct noise_cs *cs = early != NULL && early->has ? early : rx;
	size_t n;
	int r;

	for (;;) {
		if ((r = frame_read(net, f, NOISE_MSG_MAX, &n, 0)) != 1) {
			if (r == 0 || errno == EPROTO)
				snprintf(why, whyn, "%s", r == 0 ?
				    "connection cut before the peer's end of "
				    "stream" : "bad frame: cut short");
			else
				snprintf(why, whyn, "connection lost: %s",
				    strerror(errno));
			return -1;
		}
		if (noise_open(cs, NULL, 0, f, n, plain) == -1) {
			snprintf(why, whyn, "bad frame: not authentic");
			return -1;
		}
		n -= NOISE_TAG;
		if (n == 0 && cs != rx) {
			cs = rx;
			continue;
		}
		if (n == 0) {
			half_close(to);
			return 0;
		}
		if (writen(to, plain, n) == -1) {
			snprintf(why, whyn, "unable to write: %s",
			    strerror(errno));
			return -1;
		}
	}
}
