/*
 * Fuzz the direct handshake's state machine (lib/handshake.c) at each of
 * its ends: the dialer (race.c, dialproxy), the invitee's listener
 * (rvlisten's, open to anyone who can reach it) and the inviter's. The
 * peer sends the fuzzed bytes in fuzzed pieces, through a socket pair.
 * Byte 0 picks the end and the session: bits 0-1 the end, 2 a commitment,
 * 3 held by someone else, 4 the session taken, 5 a wrong token, 6 no end
 * of file after the bytes; byte 1 the size of the pieces (0: all at once).
 * Checked against a plain reading of the same bytes: which lines are
 * taken, that no byte after them is consumed, what is answered, and that
 * the commitment is taken, kept or given back as p2p(7) says.
 */
#include "fuzz.h"

static const char id[] = "00112233445566778899aabbccddeeff";
static const char tok[] = "0123456789abcdef0123456789abcdef";
static const char other_tok[] = "fedcba9876543210fedcba9876543210";

struct feed {
	int fd, peer;		/* ours, and the peer's end */
	const uint8_t *data;
	size_t size, off, piece;
	int keep, shut;
	int bulk;		/* the rest in one piece */
};

/* Whether the commitment cfd is free; it is left as it was. */
static int
commit_free(int cfd)
{
	if (!commit_take(cfd))
		return 0;
	commit_give(cfd);
	return 1;
}

/*
 * The peer sends its next piece (all the rest, when the handshake is
 * over: a stream socket holds only so many small writes), or shuts its
 * side: 0 when it has no more.
 */
static int
feed_more(struct feed *f)
{
	size_t n = f->size - f->off;
	ssize_t w;

	if (n == 0) {
		if (f->keep || f->shut)
			return 0;
		shutdown(f->peer, SHUT_WR);
		f->shut = 1;
		return 1;
	}
	if (f->piece != 0 && n > f->piece && !f->bulk)
		n = f->piece;
	if ((w = write(f->peer, f->data + f->off, n)) != (ssize_t)n)
		abort();
	f->off += n;
	return 1;
}

/* Step h as the peer sends, until it has something to say or no more comes. */
static int
run(struct handshake *h, struct feed *f)
{
	int r;

	while ((r = hs_step(h, f->fd)) == HS_AGAIN && feed_more(f))
		;
	return r;
}

/* What we answered the peer, as a string. */
static const char *
answered(struct feed *f)
{
	static char buf[256];

	buf[fuzz_drain(f->peer, buf, sizeof(buf) - 1)] = '\0';
	return buf;
}

/* The bytes after the first newline at or after p, or NULL. */
static const uint8_t *
after_line(const uint8_t *p, const uint8_t *end)
{
	const uint8_t *nl = p < end ? memchr(p, '\n', end - p) : NULL;

	return nl ? nl + 1 : NULL;
}

/* Whether the line at p is word (a CR before its newline or not). */
static int
is_line(const uint8_t *p, const uint8_t *end, const char *word)
{
	size_t n = strlen(word);

	return (size_t)(end - p) > n && memcmp(p, word, n) == 0 &&
	    (p[n] == '\n' || (p[n] == '\r' && (size_t)(end - p) > n + 1 &&
	    p[n + 1] == '\n'));
}

/* No byte from `from` on was consumed: send the rest; it is all there. */
static void
check_rest(struct feed *f, const uint8_t *from)
{
	static char rest[4096 + 1];
	const uint8_t *end = f->data + f->size;
	size_t got;

	f->bulk = 1;
	feed_more(f);
	got = fuzz_drain(f->fd, rest, sizeof(rest));
	CHECK(got == (size_t)(end - from) && memcmp(rest, from, got) == 0);
}

/* The dialer: our line (and GO), then the bytes are the listener's answer. */
static void
dialer(struct feed *f, int cfd, int held)
{
	const uint8_t *end = f->data + f->size;
	struct handshake h;
	char want[128];
	int r, went;

	CHECK(hs_dial(&h, f->fd, id, tok, cfd, now_ms() + 1000) == HS_AGAIN);
	went = h.go;
	CHECK(went == (cfd != -1 && !held));
	snprintf(want, sizeof(want), "P2P %s %s\n%s", id, tok, went ? "GO\n" : "");
	CHECK(strcmp(answered(f), want) == 0);
	r = run(&h, f);
	if (is_line(f->data, end, "OK")) {
		CHECK(r == HS_DONE && h.go == went);
		check_rest(f, after_line(f->data, end));
	} else if (r == HS_AGAIN) {
		/* No whole answer, and no end: a timeout. Our GO stays out. */
		CHECK(f->keep);
		hs_abandon(&h);
		CHECK(h.go == went);
	} else {
		/* An answer, or a close, and no OK: nothing can have been taken. */
		CHECK(r == HS_FAIL && h.go == 0 && h.why != NULL);
		if (is_line(f->data, end, "ERR session taken"))
			CHECK(strcmp(h.why, "took another connection") == 0);
	}
	if (cfd != -1)
		CHECK(commit_free(cfd) == (!held && !h.go));
	CHECK(strcmp(answered(f), "") == 0);
}

/* A listener, the invitee's or the inviter's: the bytes are the dialer's. */
static void
listener(struct feed *f, int part, int cfd, int held, int taken, int wrong)
{
	const uint8_t *end = f->data + f->size, *w[3], *next;
	size_t wl[3];
	struct handshake h;
	int r, good, free0 = cfd != -1 && commit_free(cfd);

	hs_listen(&h, part);
	r = run(&h, f);
	good = good_line(f->data, f->size, w, wl);
	if (r != HS_LINE) {
		CHECK(!good);
		/* ERR only to a whole line of good bytes in bad words. */
		CHECK(h.erred == (ref_line(f->data, f->size) >= 0));
		CHECK(strcmp(answered(f), h.erred ? "ERR bad handshake\n" : "") == 0);
		CHECK(r == HS_FAIL || (r == HS_AGAIN && f->keep));
		return;
	}
	CHECK(good);
	CHECK(memcmp(h.id, w[1], ID_HEX) == 0 && h.id[ID_HEX] == '\0');
	CHECK(memcmp(h.token, w[2], ID_HEX) == 0 && h.token[ID_HEX] == '\0');
	next = after_line(f->data, end);
	/* Without -k the dialer has sent all and shut its side meanwhile. */
	if (!f->keep) {
		f->bulk = 1;
		while (feed_more(f))
			;
	}
	r = hs_reply(&h, f->fd, wrong ? other_tok : tok, taken, cfd);
	if (strcmp(h.token, wrong ? other_tok : tok) != 0) {
		CHECK(r == HS_FAIL && strcmp(answered(f), "ERR bad token\n") == 0);
	} else if (taken) {
		CHECK(r == HS_FAIL && strcmp(answered(f), "ERR session taken\n") == 0);
	} else if (part == HS_INVITEE && f->shut) {
		/* It hung up: no OK, and the commitment is not spent on it. */
		CHECK(r == HS_FAIL && !h.erred && strcmp(answered(f), "") == 0);
	} else if (part == HS_INVITEE) {
		if (cfd != -1 && held) {
			/* A dialer of ours holds it: this one waits, unanswered. */
			CHECK(r == HS_AGAIN && strcmp(answered(f), "") == 0);
			commit_give(cfd);
			r = hs_reply(&h, f->fd, tok, 0, cfd);
		}
		CHECK(r == HS_DONE && h.go && strcmp(answered(f), "OK\n") == 0);
		if (cfd != -1)
			CHECK(!commit_free(cfd));
		check_rest(f, next);
		return;
	} else {
		/* The inviter offers; the invitee's GO takes it. */
		CHECK(r == HS_AGAIN && strcmp(answered(f), "OK\n") == 0);
		r = run(&h, f);
		if (next != NULL && is_line(next, end, "GO")) {
			CHECK(r == HS_DONE);
			check_rest(f, after_line(next, end));
		} else
			CHECK(r == HS_FAIL || (r == HS_AGAIN && f->keep));
	}
	/* Refusing never touches the commitment. */
	if (cfd != -1 && !(part == HS_INVITEE && r == HS_DONE))
		CHECK(commit_free(cfd) == free0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct feed f = { .fd = -1 };
	int sv[2], part, cfd = -1, held;

	fuzz_quiet();
	if (size < 2)
		return 0;
	part = (data[0] & 3) % 3;	/* HS_DIAL, HS_INVITEE, HS_INVITER */
	held = (data[0] & 8) != 0;
	f.keep = (data[0] & 64) != 0;
	f.piece = data[1] % 17;
	f.data = data + 2;
	f.size = size - 2;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
		abort();
	f.fd = sv[0];
	f.peer = sv[1];
	if (data[0] & 4) {
		if ((cfd = commit_new()) == -1)
			abort();
		if (held)
			commit_take(cfd);
	}
	if (part == HS_DIAL)
		dialer(&f, cfd, held);
	else
		listener(&f, part, cfd, held, data[0] & 16, data[0] & 32);
	close(sv[0]);
	close(sv[1]);
	if (cfd != -1)
		close(cfd);
	return 0;
}
