/*
 * The direct connection's handshake (p2p(7)), for either end, as one state
 * machine that never waits: race.c and rvlisten poll for it, hs_wait
 * blocks with a deadline (dialproxy, hs_read). Here too are the rules of
 * the session's commitment (commit.c): who may say OK or GO, and when a GO
 * that came to nothing goes back.
 *
 *	dialer				listener
 *	P2P <id> <token>	---->	(HS_LINE: the caller finds the session)
 *	GO, when the invitee dialled holding the commitment
 *				<----	OK, or ERR bad token, ERR bad handshake,
 *					ERR session taken
 *	GO, the invitee		---->	(the inviter delivers only now)
 *
 * The invitee decides: its OK takes the inviter's dial, its GO takes its
 * own dial to the inviter. Lines are read a byte at a time, so no byte of
 * the application's is consumed.
 */
#include <sys/socket.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

#define ANSWER_MAX 64		/* longer than any answer of ours: no peer's */

/* S_LINE, S_ANSWER and S_GO read a line; S_CHECK waits for hs_reply. */
enum { S_IDLE, S_LINE, S_ANSWER, S_CHECK, S_GO, S_DONE, S_FAIL };

/*
 * Fail h with why. A commitment it took goes back only when giveback says
 * the inviter cannot have taken our GO: it answered ERR or something else,
 * or closed or reset with no OK before it (it says OK before it delivers).
 * After a timeout it may have: the commitment stays spent, and the session
 * gets no second connection, though maybe none at all.
 */
static int
hs_fail(struct handshake *h, const char *why, int giveback)
{
	h->err = errno;
	if (h->go && giveback) {
		commit_give(h->commit);
		h->go = 0;
	} else if (h->go)
		vlog("%s%sour GO may have been taken: the session stays taken",
		    h->who ? h->who : "", h->who ? ": " : "");
	h->why = why;
	h->state = S_FAIL;
	return HS_FAIL;
}

/* Refuse the dialer with the line err: HS_FAIL. */
static int
hs_refuse(struct handshake *h, int fd, const char *err, const char *why, int e)
{
	line_write(fd, 100, "%s", err);
	h->erred = 1;
	errno = e;
	return hs_fail(h, why, 1);
}

/* The line h has read, in its state: what the handshake does next. */
static int
hs_line(struct handshake *h, int fd)
{
	char *w[4];

	switch (h->state) {
	case S_ANSWER:
		if (strcmp(h->line, "OK") == 0)
			break;
		errno = EPROTO;
		return hs_fail(h, strcmp(h->line, "ERR session taken") == 0 ?
		    "took another connection" : strncmp(h->line, "ERR", 3) == 0 ?
		    "refused our token" : "not a p2pdial peer", 1);
	case S_GO:
		if (strcmp(h->line, "GO") == 0)
			break;
		errno = EPROTO;
		return hs_fail(h, "took another connection", 1);
	default:
		if (line_words(h->line, w, 4) != 3 || strcmp(w[0], "P2P") != 0 ||
		    !hex_valid(w[1], ID_HEX) || !hex_valid(w[2], ID_HEX))
			return hs_refuse(h, fd, "ERR bad handshake", "bad handshake",
			    EPROTO);
		strlcpy(h->id, w[1], sizeof(h->id));
		strlcpy(h->token, w[2], sizeof(h->token));
		h->state = S_CHECK;
		return HS_LINE;
	}
	h->state = S_DONE;
	return HS_DONE;
}

/*
 * Start the dialer's end on the connected socket fd: the P2P line, and
 * GO with it when the session's commitment (commit, or -1) was ours to
 * take -- the first dial to connect takes the connection at once, a round
 * trip sooner. HS_AGAIN (the answer is next), or HS_FAIL.
 */
int
hs_dial(struct handshake *h, int fd, const char *id, const char *token,
    int commit, long deadline)
{
	char buf[LINE_MAX_ + 1];
	int n;

	*h = (struct handshake){ .part = HS_DIAL, .state = S_ANSWER,
	    .commit = commit };
	h->go = commit != -1 && commit_take(commit);
	n = snprintf(buf, sizeof(buf), "P2P %s %s\n%s", id, token,
	    h->go ? "GO\n" : "");
	if (n < 0 || n >= (int)sizeof(buf))
		errno = EMSGSIZE;
	/* Nothing went: nothing can have been taken. */
	if (n < 0 || n >= (int)sizeof(buf) || io_write(fd, buf, n, deadline) == -1)
		return hs_fail(h, strerror(errno), 1);
	return HS_AGAIN;
}

/* Start a listener's end (HS_INVITEE or HS_INVITER): the P2P line is next. */
void
hs_listen(struct handshake *h, int part)
{
	*h = (struct handshake){ .part = part, .state = S_LINE, .commit = -1 };
}

/*
 * Read what the peer sent on the socket fd, a byte at a time and never
 * past the end of the line that is wanted, without waiting: HS_AGAIN when
 * that line is not whole yet, HS_LINE when a listener has the dialer's
 * (h->id, h->token: answer with hs_reply), HS_DONE when the connection is
 * ours, HS_FAIL (h->why; a bad line was answered ERR).
 */
int
hs_step(struct handshake *h, int fd)
{
	size_t max = h->part == HS_DIAL ? ANSWER_MAX : sizeof(h->line);
	ssize_t r;
	char c;

	if (h->state == S_CHECK || h->state == S_DONE || h->state == S_FAIL)
		return h->state == S_CHECK ? HS_LINE : h->state == S_DONE ?
		    HS_DONE : HS_FAIL;
	while ((r = recv(fd, &c, 1, MSG_DONTWAIT)) == 1) {
		if ((r = line_byte(h->line, &h->len, max, c)) == -1)
			return hs_fail(h, h->state == S_ANSWER ?
			    "not a p2pdial peer" : h->state == S_GO ?
			    "took another connection" : "bad handshake", 1);
		if (r == 1) {
			h->len = 0;
			return hs_line(h, fd);
		}
	}
	if (r == 0) {
		/* A close with no OK before it: nothing was taken. */
		errno = ECONNRESET;
		return hs_fail(h, h->state == S_GO ? "took another connection" :
		    "closed in the handshake", 1);
	}
	if (errno == EAGAIN || errno == EINTR)
		return HS_AGAIN;
	/* A reset is a close; after anything else, who knows. */
	return hs_fail(h, strerror(errno), errno == ECONNRESET);
}

/* Step h until it has something to say, or the deadline passes. */
int
hs_wait(struct handshake *h, int fd, long deadline)
{
	int r;

	while ((r = hs_step(h, fd)) == HS_AGAIN)
		if (!io_wait(fd, POLLIN, deadline))
			return hs_fail(h, errno == ETIMEDOUT ?
			    "timeout in the handshake" : strerror(errno), 0);
	return r;
}

/* Give up on h, for a timeout: a GO that went stays taken (see hs_fail). */
void
hs_abandon(struct handshake *h)
{
	if (h->state != S_IDLE && h->state != S_DONE && h->state != S_FAIL)
		hs_fail(h, NULL, 0);
}

/* Whether the peer on fd has hung up (a dialer never shuts its side first). */
int
hs_hungup(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };

	return poll(&p, 1, 0) != 0;
}

/*
 * The listener's answer to the dialer's line: want is the session's token
 * (NULL: no such session), taken says the session has its connection,
 * commit is its commitment (or -1). A wrong token or a taken session is
 * refused. The invitee says OK only with the commitment in hand, and its
 * OK takes the connection (HS_DONE); while one of its own dialers holds
 * the commitment the dialer waits (HS_AGAIN: reply again later). The
 * inviter's OK only offers: the invitee's GO is next (HS_AGAIN: step on).
 */
int
hs_reply(struct handshake *h, int fd, const char *want, int taken, int commit)
{
	if (h->state != S_CHECK)
		return hs_step(h, fd);
	if (want == NULL || !secret_equal(h->token, want))
		return hs_refuse(h, fd, "ERR bad token", "wrong session or token",
		    EACCES);
	if (taken)
		return hs_refuse(h, fd, "ERR session taken", "session taken", EBUSY);
	if (h->part == HS_INVITEE) {
		/* A held dialer may have hung up: it is not worth the session. */
		if (hs_hungup(fd)) {
			errno = ECONNRESET;
			return hs_fail(h, "went away", 1);
		}
		if (!commit_take(commit))
			return HS_AGAIN;
		h->go = 1;
		h->commit = commit;
	}
	/* Gone already: the commitment is free again. */
	if (line_write(fd, 2000, "OK") == -1)
		return hs_fail(h, strerror(errno), 1);
	h->state = h->part == HS_INVITEE ? S_DONE : S_GO;
	return h->state == S_DONE ? HS_DONE : HS_AGAIN;
}

/*
 * The invitee takes a connection its dialer was only offered (OK came, no
 * GO went with the line): GO, when the commitment is ours. 0, or -1 when
 * someone holds it or the GO could not go (nothing was taken: it goes back).
 */
int
hs_go(int fd, int commit)
{
	if (!commit_take(commit))
		return -1;
	if (line_write(fd, 1000, "GO") == -1) {
		commit_give(commit);
		return -1;
	}
	return 0;
}

/* Read the dialer's "P2P id token" line within ms into id and token. */
int
hs_read(int fd, char id[ID_HEX + 1], char token[ID_HEX + 1], int ms)
{
	struct handshake h;

	hs_listen(&h, HS_INVITER);
	if (hs_wait(&h, fd, now_ms() + ms) != HS_LINE) {
		errno = h.err;
		return -1;
	}
	strlcpy(id, h.id, ID_HEX + 1);
	strlcpy(token, h.token, ID_HEX + 1);
	return 0;
}

/* Answer the dialer, as the inviter: "OK" when its token is the one we want. */
int
hs_answer(int fd, const char *token, const char *want)
{
	struct handshake h;

	hs_listen(&h, HS_INVITER);
	h.state = S_CHECK;
	strlcpy(h.token, token, sizeof(h.token));
	if (hs_reply(&h, fd, want, 0, -1) == HS_FAIL) {
		errno = h.err;
		return -1;
	}
	return 0;
}
