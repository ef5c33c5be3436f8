/*
 * Fuzz p2pseal's wire (lib/seal.c, lib/noise.c) at each place a peer's
 * bytes come in: the answering handshake (seal_answer: the first frame's
 * pattern byte, the frame lengths, the Noise messages; with and without
 * an authorized file), the dialling one (seal_dial, XX, and IK to the
 * right or to a wrong pinned key: the bytes are the listener's replies),
 * seal_peek's guess of plain or sealed, and the transport (seal_in) after
 * a real handshake. The peer sends the fuzzed bytes in fuzzed pieces
 * through a socket pair, a piece only once the last was read.
 *
 * Byte 0, low nibble mod 10, picks the place: 0-3 seal_answer with no
 * authorized file, one that lists the dialler, one that does not, one
 * that is missing; 4 seal_dial XX, 5 IK to the listener's key, 6 IK to
 * another key; 7 seal_peek; 8 seal_in on the bytes, 9 seal_in on frames
 * put together from a real sender's (see build()). A high nibble of 15
 * keeps the peer's side open after the bytes (no end of file; not for
 * seal_in, which has no deadline: it is p2pseal's pump). Byte 1 mod 17 is
 * the size of the pieces, 0 all at once.
 *
 * The keys are fixed, and so is the randomness (each end's ephemeral key,
 * see rng_buf), so the handshakes recorded at the start (record()), and
 * kept in the seed corpus, replay: the fuzzer starts from messages that
 * succeed. Everything is checked against a plain reading of the bytes:
 * the reason given, what is answered, that a handshake completes only
 * with exactly the messages of the real peer (holding the keys) and no
 * byte after them is consumed, and that seal_in writes the plain text of
 * exactly the leading frames that are the real sender's, in order.
 *
 * SEAL_SEEDS=DIR t/fuzz/out/seal FILE writes the seed corpus anew into
 * DIR and exits (FILE, any input, is not run: libFuzzer wants one);
 * SEAL_TRACE=1 says how each input ended.
 */
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>

#include <sodium.h>

#include "fuzz.h"

#define HS_MS 50		/* a handshake's deadline */
#define KEEP_MS 20		/* when the bytes end without end of file */
#define STREAM_MAX 32768	/* frames put together for seal_in */
#define EARLY_END (2 + NOISE_TAG)	/* IK: the empty early frame */
#define REC_MAX 512		/* a recorded handshake's bytes, one way */
#define FRAMES 8		/* the recorded transport's frames */

enum { M_ANSWER, M_ANSWER_YES, M_ANSWER_NO, M_ANSWER_MISSING, M_DIAL_XX,
    M_DIAL_IK, M_DIAL_WRONG, M_PEEK, M_IN_RAW, M_IN_OPS };
enum { FR_OK, FR_EOF, FR_CUT, FR_BIG, FR_WAIT };	/* see ref_frame */
enum { SEED_D = 0xd1a1, SEED_L = 0x115e };	/* each end's randomness */

static const char sess_id[] = "00112233445566778899aabbccddeeff";
static const char sess_tok[] = "0123456789abcdef0123456789abcdef";

/* The dialler's, the listener's, and a key nobody here holds. */
static unsigned char d_s[NOISE_KEY], l_s[NOISE_KEY], w_s[NOISE_KEY];
static unsigned char d_pub[NOISE_KEY], l_pub[NOISE_KEY], w_pub[NOISE_KEY];
static char auth_yes[64], auth_no[64];
static const char auth_missing[] = "/nonexistent/p2pseal-fuzz-authorized";

struct rec {
	uint8_t b[REC_MAX];
	size_t n;
};
/* A real handshake each way: what the dialler sent, what the listener did. */
static struct rec xx_d, xx_l, ik_d, ik_l;

/* The real transport: a stream of frames, their plain text, the receiver. */
static uint8_t stream[8192];
static size_t stream_n, nframes, fr_off[FRAMES], fr_len[FRAMES];
static uint8_t plain[8192];
static size_t plain_off[FRAMES + 1];
static struct noise_cs rx0;

/*
 * Deterministic randomness for libsodium: splitmix64, one stream per
 * thread, which each end seeds before it starts, so that an end draws the
 * same ephemeral key in the recording and in every run.
 */
static __thread uint64_t rng;

static void
rng_seed(uint64_t s)
{
	rng = s;
}

static uint64_t
rng_next(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void
rng_buf(void *buf, size_t n)
{
	unsigned char *p = buf;
	uint64_t v;
	size_t k;

	while (n > 0) {
		v = rng_next();
		k = n < sizeof(v) ? n : sizeof(v);
		memcpy(p, &v, k);
		p += k;
		n -= k;
	}
}

static uint32_t
rng_random(void)
{
	return (uint32_t)rng_next();
}

static const char *
rng_name(void)
{
	return "fuzz";
}

static void
rng_stir(void)
{
}

static struct randombytes_implementation rng_impl = {
	.implementation_name = rng_name,
	.random = rng_random,
	.stir = rng_stir,
	.buf = rng_buf,
};

/* Write all n bytes of p to fd. */
static void
put(int fd, const void *p, size_t n)
{
	const char *c = p;
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, c, n)) == -1 && errno == EINTR)
			continue;
		if (w <= 0) {
			perror("fuzz: write");
			abort();
		}
		c += w;
		n -= w;
	}
}

/* How many bytes wait unread on fd. */
static size_t
unread(int fd)
{
	int n = 0;

	return ioctl(fd, FIONREAD, &n) == -1 ? 0 : (size_t)n;
}

/*
 * The peer: data[0..size) goes into peer, in pieces of `piece` bytes,
 * each once the code under test (on fd) has read the last (up to a few
 * ms: it may be busy writing its answer), so that each read sees one
 * piece. seal_peek reads nothing: its first three bytes come a little
 * apart, the rest at once.
 */
struct feed {
	int fd, peer;		/* the code's end, and ours */
	const uint8_t *data;
	size_t size, piece, off;
	int keep, peek, shut, threaded;
	atomic_int stop;
	pthread_t t;
};

/* Shut the peer's side once everything is sent, unless it keeps it open. */
static void
feed_shut(struct feed *f)
{
	if (f->off == f->size && !f->keep && !f->shut) {
		shutdown(f->peer, SHUT_WR);
		f->shut = 1;
	}
}

static void *
feeder(void *arg)
{
	struct feed *f = arg;
	size_t n;
	long until;

	while (f->off < f->size && !atomic_load(&f->stop)) {
		n = f->size - f->off;
		if (n > f->piece && !(f->peek && f->off >= 3))
			n = f->piece;
		put(f->peer, f->data + f->off, n);
		f->off += n;
		if (f->peek) {
			usleep(300);
			continue;
		}
		until = now_ms() + 5;
		while (unread(f->fd) > 0 && !atomic_load(&f->stop) &&
		    now_ms() < until)
			sched_yield();
	}
	feed_shut(f);
	return NULL;
}

static void
feed_start(struct feed *f, const uint8_t *data, size_t size, size_t piece,
    int keep, int peek)
{
	int sv[2];

	memset(f, 0, sizeof(*f));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
		perror("fuzz: socketpair");
		abort();
	}
	f->fd = sv[0];
	f->peer = sv[1];
	f->data = data;
	f->size = size;
	f->piece = piece;
	f->keep = keep;
	f->peek = peek;
	if (piece == 0 || size == 0) {
		put(f->peer, data, size);
		f->off = size;
		feed_shut(f);
		return;
	}
	if (pthread_create(&f->t, NULL, feeder, f) != 0)
		abort();
	f->threaded = 1;
}

/* Stop the peer, then send what it had left, so that all of it is there. */
static void
feed_stop(struct feed *f)
{
	atomic_store(&f->stop, 1);
	if (f->threaded)
		pthread_join(f->t, NULL);
	f->threaded = 0;
	put(f->peer, f->data + f->off, f->size - f->off);
	f->off = f->size;
	feed_shut(f);
}

static void
feed_close(struct feed *f)
{
	close(f->fd);
	close(f->peer);
}

/* After a handshake: no byte from data + from on was consumed. */
static void
check_rest(struct feed *f, size_t from)
{
	static char rest[STREAM_MAX + 1];
	size_t got = fuzz_drain(f->fd, rest, sizeof(rest));

	if (got != f->size - from || memcmp(rest, f->data + from, got) != 0)
		fprintf(fuzz_err, "consumed %zu bytes past the handshake\n",
		    f->size - from - got);
	CHECK(got == f->size - from && memcmp(rest, f->data + from, got) == 0);
}

/*
 * frame_read, read plainly: what it makes of d[off..size) (then end of
 * file, unless keep) with at most max bytes a frame: FR_OK and the
 * frame's length in *len, FR_EOF, FR_CUT (EPROTO), FR_BIG (EMSGSIZE),
 * FR_WAIT (a timeout).
 */
static int
ref_frame(const uint8_t *d, size_t size, size_t off, int keep, size_t max,
    size_t *len)
{
	size_t left = size - off;

	*len = 0;
	if (left == 0)
		return keep ? FR_WAIT : FR_EOF;
	if (left < 2)
		return keep ? FR_WAIT : FR_CUT;
	*len = (size_t)d[off] << 8 | d[off + 1];
	if (*len == 0)
		return FR_CUT;
	if (*len > max)
		return FR_BIG;
	if (left - 2 < *len)
		return keep ? FR_WAIT : FR_CUT;
	return FR_OK;
}

/* The reason a handshake gives for ref_frame's k, where (seal.c's cut_why). */
static const char *
frame_why(int k, const char *where)
{
	static char buf[256];

	if (k == FR_BIG)
		snprintf(buf, sizeof(buf), "plain bytes %s (an unsealed peer? "
		    "see p2pdial -u, p2plisten -u)", where);
	else
		snprintf(buf, sizeof(buf), "%s %s", k == FR_EOF ?
		    "connection closed" : k == FR_CUT ? "bad frame" :
		    "timed out", where);
	return buf;
}

/* Whether d[0..size) starts with the recorded r. */
static int
starts(const uint8_t *d, size_t size, const struct rec *r)
{
	return size >= r->n && memcmp(d, r->b, r->n) == 0;
}

/* Whether e, as a peer's ephemeral key, is refused (a point of small order). */
static int
small_order(const uint8_t *e)
{
	unsigned char out[NOISE_KEY];

	return crypto_scalarmult(out, l_s, e) != 0;
}

/* The outcome of one run, for the checks and for a report when one fails. */
static int res_r;
static char res_why[512];
static uint8_t ans[4096];	/* what the code under test answered */
static size_t ans_n;

#define CHECK_RUN(cond) do { if (!(cond)) fprintf(fuzz_err, \
	"returned %d, why \"%s\", answered %zu bytes\n", res_r, res_why, \
	ans_n); CHECK(cond); } while (0)

/* Whether the run ended in a timeout that the feed, not the code, explains. */
static int
feed_timeout(const struct feed *f, long took, int ms)
{
	if (res_r != -1 || strncmp(res_why, "timed out", 9) != 0)
		return 0;
	/* Never early; late only when the pieces came slowly (a loaded box). */
	CHECK_RUN(took >= ms);
	return f->piece != 0;
}

/* Whether the authorized file keeps the real dialler out. */
static int
refused(const char *file)
{
	return file != NULL && file != auth_yes;
}

/*
 * The real dialler's messages (n bytes) came to seal_answer: it is let
 * in, its key known and no byte after them consumed, unless the file
 * keeps it out, which it says.
 */
static void
answered(struct feed *f, const char *file, const struct noise *ns, size_t n)
{
	char want[256];

	if (refused(file)) {
		snprintf(want, sizeof(want), "%s %s", file == auth_no ?
		    "key not in" : "unable to read", file);
		CHECK_RUN(res_r == -1 && strcmp(res_why, want) == 0);
		return;
	}
	CHECK_RUN(res_r == 0);
	CHECK(ns->done && ns->has_rs && memcmp(ns->rs, d_pub, NOISE_KEY) == 0);
	check_rest(f, n);
}

/*
 * seal_answer: the bytes are the dialler's. It completes only on the real
 * dialler's recorded messages (its keys and ephemeral keys), and answers
 * either nothing or its one message.
 */
static void
answer(struct feed *f, int mode, int ms)
{
	const uint8_t *d = f->data;
	const char *file = mode == M_ANSWER_YES ? auth_yes : mode == M_ANSWER_NO ?
	    auth_no : mode == M_ANSWER_MISSING ? auth_missing : NULL;
	struct noise ns;
	size_t l1, l3;
	long t0;
	int k;

	rng_seed(SEED_L);
	t0 = now_ms();
	res_r = seal_answer(&ns, f->fd, f->fd, l_s, file, ms, res_why,
	    sizeof(res_why));
	t0 = now_ms() - t0;
	feed_stop(f);
	ans_n = fuzz_drain(f->peer, (char *)ans, sizeof(ans));
	CHECK_RUN(res_r == 0 || (res_r == -1 && res_why[0] != '\0'));
	if (feed_timeout(f, t0, ms))
		return;
	if ((k = ref_frame(d, f->size, 0, f->keep, HS_FRAME_MAX, &l1)) != FR_OK) {
		CHECK_RUN(res_r == -1 && ans_n == 0 &&
		    strcmp(res_why, frame_why(k, "before the handshake")) == 0);
		return;
	}
	if (d[2] == 'I') {
		if (!starts(d, f->size, &ik_d)) {
			CHECK_RUN(res_r == -1 && ans_n == 0 && strcmp(res_why,
			    "handshake failed: message not authentic (another "
			    "session, or the dialler pinned another key for "
			    "us)") == 0);
			return;
		}
		/* The real dialler; if refused, before anything is sent back. */
		CHECK_RUN(ans_n == (refused(file) ? 0 : ik_l.n) &&
		    memcmp(ans, ik_l.b, ans_n) == 0);
		answered(f, file, &ns, ik_d.n);
		return;
	}
	if (d[2] != 'X') {
		CHECK_RUN(res_r == -1 && ans_n == 0 &&
		    strcmp(res_why, "not a p2pseal handshake") == 0);
		return;
	}
	if (l1 - 1 < NOISE_KEY) {
		CHECK_RUN(res_r == -1 && ans_n == 0 && strcmp(res_why,
		    "handshake failed: message not authentic (another session, "
		    "or garbled)") == 0);
		return;
	}
	if (small_order(d + 3)) {
		CHECK_RUN(res_r == -1 && ans_n == 0 &&
		    strcmp(res_why, "handshake failed") == 0);
		return;
	}
	/* XX's second message: e, s and an empty payload, sealed. */
	CHECK_RUN(ans_n == 2 + 96 && ans[0] == 0 && ans[1] == 96);
	/* To the real first message, the recorded answer. */
	if (l1 == 1 + NOISE_KEY && memcmp(d, xx_d.b, l1 + 2) == 0)
		CHECK_RUN(memcmp(ans, xx_l.b, xx_l.n) == 0);
	if ((k = ref_frame(d, f->size, l1 + 2, f->keep, HS_FRAME_MAX,
	    &l3)) != FR_OK) {
		CHECK_RUN(res_r == -1 &&
		    strcmp(res_why, frame_why(k, "in the handshake")) == 0);
		return;
	}
	if (!starts(d, f->size, &xx_d)) {
		CHECK_RUN(res_r == -1 && strcmp(res_why, "handshake failed: "
		    "message not authentic (another session, or another key)") == 0);
		return;
	}
	answered(f, file, &ns, xx_d.n);
}

/*
 * seal_dial: the bytes are the listener's. Its first message is the
 * recorded one (the same keys and randomness); it completes only on the
 * real listener's recorded answer, and never with a wrong pinned key.
 */
static void
dial(struct feed *f, int mode, int ms)
{
	const uint8_t *d = f->data;
	const struct rec *mine = mode == M_DIAL_XX ? &xx_d : &ik_d;
	const struct rec *real = mode == M_DIAL_XX ? &xx_l : &ik_l;
	size_t l2, first = mode == M_DIAL_XX ? 2 + 1 + NOISE_KEY : ik_d.n;
	struct noise ns;
	long t0;
	int k;

	rng_seed(SEED_D);
	t0 = now_ms();
	res_r = seal_dial(&ns, f->fd, f->fd, d_s, mode == M_DIAL_XX ? NULL :
	    mode == M_DIAL_IK ? l_pub : w_pub, ms, res_why, sizeof(res_why));
	if (res_r == 0 && !ns.done)
		res_r = seal_early(&ns, -1, f->fd, f->fd, ms, res_why,
		    sizeof(res_why));
	t0 = now_ms() - t0;
	feed_stop(f);
	ans_n = fuzz_drain(f->peer, (char *)ans, sizeof(ans));
	CHECK_RUN(res_r == 0 || (res_r == -1 && res_why[0] != '\0'));
	/* Our first message, whatever comes back. */
	CHECK_RUN(ans_n >= first);
	if (mode == M_DIAL_WRONG)
		CHECK_RUN(ans[0] == 0 && ans[1] == first - 2 && ans[2] == 'I' &&
		    memcmp(ans, ik_d.b, first) != 0);
	else
		CHECK_RUN(memcmp(ans, mine->b, first) == 0);
	if (feed_timeout(f, t0, ms))
		return;
	if ((k = ref_frame(d, f->size, 0, f->keep, HS_FRAME_MAX, &l2)) != FR_OK) {
		CHECK_RUN(res_r == -1 && ans_n == first &&
		    strcmp(res_why, frame_why(k, "in the handshake")) == 0);
		return;
	}
	if (mode == M_DIAL_WRONG || !starts(d, f->size, real)) {
		CHECK_RUN(res_r == -1 && ans_n == first && strcmp(res_why,
		    "handshake failed: message not authentic (another session, "
		    "or another key)") == 0);
		return;
	}
	/* XX sends its third message; IK the end of its early data. */
	CHECK_RUN(res_r == 0 && ans_n == mine->n + (mode == M_DIAL_XX ? 0 :
	    EARLY_END) && memcmp(ans, mine->b, mine->n) == 0);
	CHECK(ns.done && ns.has_rs && memcmp(ns.rs, l_pub, NOISE_KEY) == 0);
	check_rest(f, real->n);
}

/*
 * seal_peek, read plainly: 1 for a plausible first frame (a length of 2
 * to HS_FRAME_MAX, then X or I), 0 for bytes that cannot start one, -1
 * when the bytes there do not tell.
 */
static int
ref_peek(const uint8_t *d, size_t n)
{
	size_t len;

	if (n >= 1 && d[0] > HS_FRAME_MAX >> 8)
		return 0;
	if (n >= 2 && ((len = (size_t)d[0] << 8 | d[1]) < 2 ||
	    len > HS_FRAME_MAX))
		return 0;
	if (n >= 3)
		return d[2] == 'X' || d[2] == 'I';
	return -1;
}

/* seal_peek: the answer, within the deadline, and not a byte consumed. */
static void
peek(struct feed *f)
{
	static char all[4096 + 1];
	int want = ref_peek(f->data, f->size);
	/* Only an undecided input waits out the deadline: keep that short. */
	int ms = want == -1 ? 15 : HS_MS;
	long t0 = now_ms();
	size_t got;

	res_r = seal_peek(f->fd, ms);
	t0 = now_ms() - t0;
	feed_stop(f);
	CHECK_RUN(res_r == want ||
	    (f->piece != 0 && res_r == -1 && t0 >= ms));
	got = fuzz_drain(f->fd, all, sizeof(all));
	CHECK(got == f->size && memcmp(all, f->data, got) == 0);
}

/*
 * The frames seal_in gets, put together from the real sender's: each byte
 * of d an operation on frame (b & 63) mod nframes, by b >> 6: 0 the frame,
 * 1 the frame cut to the next byte's length, 2 the frame with the byte at
 * the next byte's offset xored with the one after (not 0), 3 the next
 * byte's count of raw bytes, which follow.
 */
static size_t
build(const uint8_t *d, size_t n, uint8_t *s, size_t cap)
{
	size_t i = 0, len = 0, k, fl, c, pos;
	uint8_t b, x;

	while (i < n) {
		b = d[i++];
		k = (b & 63) % nframes;
		fl = fr_len[k];
		if (b >> 6 == 3) {
			c = i < n ? d[i++] : 0;
			if (c > n - i)
				c = n - i;
			if (len + c > cap)
				break;
			memcpy(s + len, d + i, c);
			len += c;
			i += c;
			continue;
		}
		if (len + fl > cap)
			break;
		memcpy(s + len, stream + fr_off[k], fl);
		if (b >> 6 == 1) {
			fl = (i < n ? d[i++] : 0) % fl;
		} else if (b >> 6 == 2) {
			pos = (i < n ? d[i++] : 0) % fl;
			x = i < n ? d[i++] : 1;
			s[len + pos] ^= x ? x : 1;
		}
		len += fl;
	}
	return len;
}

/*
 * seal_in after a real handshake: it writes the plain text of exactly the
 * leading frames that are the real sender's own, in order (nothing else
 * opens: another frame, a changed, replayed, reordered or cut one), ends
 * well only on the real end frame, and reads nothing past it.
 */
static void
transport(const uint8_t *d, size_t n, int ops, size_t piece)
{
	static uint8_t s[STREAM_MAX];
	static char out[sizeof(plain) + 1];
	struct noise_cs rx = rx0;
	struct feed f;
	size_t len, off = 0, j = 0, got, fl;
	int o[2], k;

	len = ops ? build(d, n, s, sizeof(s)) : n;
	/* A frame may be 64 KiB: at most some 256 pieces, each a thread switch. */
	if (piece != 0 && piece < len / 256)
		piece = len / 256;
	feed_start(&f, ops ? s : d, len, piece, 0, 0);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, o) == -1)
		abort();
	res_r = seal_in(NULL, &rx, f.fd, o[0], res_why, sizeof(res_why));
	feed_stop(&f);
	/* The real frames it was given, from the start. */
	while (j < nframes && len - off >= fr_len[j] &&
	    memcmp(f.data + off, stream + fr_off[j], fr_len[j]) == 0)
		off += fr_len[j++];
	got = fuzz_drain(o[1], out, sizeof(out));
	ans_n = got;
	CHECK_RUN(got == plain_off[j] && memcmp(out, plain, got) == 0);
	if (j == nframes) {
		/* The end frame: a half-close, and the rest left unread. */
		CHECK_RUN(res_r == 0 && recv(o[1], out, 1, MSG_DONTWAIT) == 0);
		check_rest(&f, off);
	} else {
		k = ref_frame(f.data, len, off, 0, NOISE_MSG_MAX, &fl);
		CHECK_RUN(res_r == -1 && strcmp(res_why, k == FR_EOF ?
		    "connection cut before the peer's end of stream" :
		    k == FR_CUT ? "bad frame: cut short" :
		    "bad frame: not authentic") == 0);
		CHECK_RUN(recv(o[1], out, 1, MSG_DONTWAIT) == -1 &&
		    errno == EAGAIN);
	}
	close(o[0]);
	close(o[1]);
	feed_close(&f);
}

/* One end of a recorded handshake, run in a thread. */
struct end {
	int fd, r;
	const unsigned char *pin;	/* the dialler's, or NULL: XX */
	int dialler;
	struct noise ns;
	char why[256];
	atomic_int done;
	pthread_t t;
};

static void *
end_run(void *arg)
{
	struct end *e = arg;

	if (e->dialler) {
		rng_seed(SEED_D);
		e->r = seal_dial(&e->ns, e->fd, e->fd, d_s, e->pin, 5000,
		    e->why, sizeof(e->why));
		if (e->r == 0 && !e->ns.done)
			e->r = seal_early(&e->ns, -1, e->fd, e->fd, 5000,
			    e->why, sizeof(e->why));
	} else {
		rng_seed(SEED_L);
		e->r = seal_answer(&e->ns, e->fd, e->fd, l_s, NULL, 5000,
		    e->why, sizeof(e->why));
	}
	atomic_store(&e->done, 1);
	return NULL;
}

/* Copy what is waiting on from to to, and append it to r. */
static void
relay(int from, int to, struct rec *r)
{
	ssize_t n;

	while ((n = recv(from, r->b + r->n, sizeof(r->b) - r->n,
	    MSG_DONTWAIT)) > 0) {
		put(to, r->b + r->n, n);
		r->n += n;
	}
}

/*
 * A real handshake, XX (pin NULL) or IK, between the two ends that
 * p2pseal runs, each in a thread, with us in between recording what each
 * sent: dr the dialler's frames, lr the listener's.
 */
static void
record(const unsigned char *pin, struct rec *dr, struct rec *lr,
    struct noise *dns, struct noise *lns)
{
	struct end d = { .pin = pin, .dialler = 1 }, l = { .pin = NULL };
	struct pollfd p[2];
	int a[2], b[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a) == -1 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b) == -1)
		abort();
	d.fd = a[0];
	l.fd = b[0];
	if (pthread_create(&d.t, NULL, end_run, &d) != 0 ||
	    pthread_create(&l.t, NULL, end_run, &l) != 0)
		abort();
	/* The last message sent is the one that ends the other's handshake. */
	while (!atomic_load(&d.done) || !atomic_load(&l.done)) {
		p[0] = (struct pollfd){ .fd = a[1], .events = POLLIN };
		p[1] = (struct pollfd){ .fd = b[1], .events = POLLIN };
		poll(p, 2, 10);
		relay(a[1], b[1], dr);
		relay(b[1], a[1], lr);
	}
	pthread_join(d.t, NULL);
	pthread_join(l.t, NULL);
	if (d.r != 0 || l.r != 0)
		fprintf(fuzz_err, "recording a handshake: %s / %s\n", d.why,
		    l.why);
	CHECK(d.r == 0 && l.r == 0 && dr->n > 0 && lr->n > 0);
	/* IK's dialler: message 1 alone; its empty early data ended after. */
	if (pin != NULL) {
		CHECK(dr->n > EARLY_END);
		dr->n -= EARLY_END;
	}
	*dns = d.ns;
	*lns = l.ns;
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
}

struct sender {
	struct noise_cs tx;
	int from, net, r;
	pthread_t t;
};

static void *
sender_run(void *arg)
{
	struct sender *s = arg;

	s->r = seal_out(&s->tx, s->from, s->net);
	return NULL;
}

/*
 * The real transport: seal_out seals chunks of plain text, one read
 * each (we write the next once it took the last), then the end frame.
 */
static void
record_stream(const struct noise_cs *tx)
{
	static const size_t chunk[] = { 13, 1, 200, 1500, 60, 700 };
	struct sender s = { .tx = *tx };
	int pp[2], net[2];
	size_t i, off = 0, k;
	long until;

	if (pipe2(pp, O_CLOEXEC) == -1 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, net) == -1)
		abort();
	s.from = pp[0];
	s.net = net[0];
	for (i = 0; i < sizeof(plain); i++)
		plain[i] = "Sealed plain text, chunk by chunk.\n"[i % 35];
	if (pthread_create(&s.t, NULL, sender_run, &s) != 0)
		abort();
	for (i = 0; i < sizeof(chunk) / sizeof(chunk[0]); i++) {
		plain_off[i] = off;
		put(pp[1], plain + off, chunk[i]);
		off += chunk[i];
		until = now_ms() + 5000;
		while (unread(pp[0]) > 0 && now_ms() < until)
			usleep(100);
	}
	plain_off[i] = plain_off[i + 1] = off;
	close(pp[1]);
	pthread_join(s.t, NULL);
	CHECK(s.r == 0);
	stream_n = fuzz_drain(net[1], (char *)stream, sizeof(stream));
	close(pp[0]);
	close(net[0]);
	close(net[1]);
	/* Its frames: one a chunk, then the end frame. */
	for (nframes = 0, k = 0; k < stream_n; nframes++) {
		CHECK(nframes < FRAMES);
		fr_off[nframes] = k;
		fr_len[nframes] = 2 + ((size_t)stream[k] << 8 | stream[k + 1]);
		k += fr_len[nframes];
	}
	CHECK(k == stream_n && nframes == i + 1);
	for (k = 0; k < i; k++)
		CHECK(fr_len[k] == 2 + chunk[k] + NOISE_TAG);
}

/* An authorized file that lists key (in a memfd: nothing left behind). */
static void
auth_file(char *path, size_t n, const unsigned char key[NOISE_KEY])
{
	char b64[KEY_B64], text[256];
	int fd = memfd_create("authorized", MFD_CLOEXEC);

	if (fd == -1) {
		perror("fuzz: memfd_create");
		abort();
	}
	key_b64(key, b64);
	snprintf(text, sizeof(text), "# who may dial\n%s fuzz\n", b64);
	put(fd, text, strlen(text));
	snprintf(path, n, "/proc/self/fd/%d", fd);
}

/* Write one seed: mode byte, piece byte, then the parts (NULL ends). */
static void
seed(const char *dir, const char *name, int mode, int piece, ...)
{
	char path[1024];
	const void *p;
	va_list ap;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "w")) == NULL) {
		perror(path);
		abort();
	}
	fputc(mode, f);
	fputc(piece, f);
	va_start(ap, piece);
	while ((p = va_arg(ap, const void *)) != NULL)
		fwrite(p, 1, va_arg(ap, size_t), f);
	va_end(ap);
	fclose(f);
}

/* The seed corpus: the recorded handshakes and stream, and plain bytes. */
static void
seeds(const char *dir)
{
	static const uint8_t ssh[] = "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n";
	static const uint8_t http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	static const uint8_t after[] = "\x00\x20 the first transport frame..";
	uint8_t ops[64], longest[2 + HS_FRAME_MAX];
	size_t i;

	seed(dir, "answer-xx", M_ANSWER, 0, xx_d.b, xx_d.n, NULL);
	seed(dir, "answer-xx-pieces", M_ANSWER, 3, xx_d.b, xx_d.n, after,
	    sizeof(after) - 1, NULL);
	seed(dir, "answer-ik", M_ANSWER, 0, ik_d.b, ik_d.n, NULL);
	seed(dir, "answer-ik-keep", 0xf0 | M_ANSWER, 0, ik_d.b, ik_d.n, after,
	    sizeof(after) - 1, NULL);
	seed(dir, "answer-xx-authorized", M_ANSWER_YES, 0, xx_d.b, xx_d.n, NULL);
	seed(dir, "answer-ik-authorized", M_ANSWER_YES, 5, ik_d.b, ik_d.n, NULL);
	seed(dir, "answer-xx-unauthorized", M_ANSWER_NO, 0, xx_d.b, xx_d.n,
	    NULL);
	seed(dir, "answer-ik-unauthorized", M_ANSWER_NO, 0, ik_d.b, ik_d.n,
	    NULL);
	seed(dir, "answer-ik-missing", M_ANSWER_MISSING, 0, ik_d.b, ik_d.n,
	    NULL);
	seed(dir, "answer-ssh", M_ANSWER, 0, ssh, sizeof(ssh) - 1, NULL);
	memset(longest, 0, sizeof(longest));
	memcpy(longest, xx_d.b, 2 + 1 + NOISE_KEY);
	longest[0] = HS_FRAME_MAX >> 8;
	longest[1] = HS_FRAME_MAX & 255;
	seed(dir, "answer-xx-longest", M_ANSWER, 0, longest, sizeof(longest),
	    NULL);
	longest[1]++;
	seed(dir, "answer-too-long", M_ANSWER, 0, longest, sizeof(longest),
	    NULL);
	seed(dir, "answer-xx-first", 0xf0 | M_ANSWER, 1, xx_d.b,
	    (size_t)2 + xx_d.b[1], NULL);
	seed(dir, "dial-xx", M_DIAL_XX, 0, xx_l.b, xx_l.n, after,
	    sizeof(after) - 1, NULL);
	seed(dir, "dial-xx-pieces", M_DIAL_XX, 7, xx_l.b, xx_l.n, NULL);
	seed(dir, "dial-ik", M_DIAL_IK, 0, ik_l.b, ik_l.n, NULL);
	seed(dir, "dial-ik-wrong", M_DIAL_WRONG, 0, ik_l.b, ik_l.n, NULL);
	seed(dir, "dial-xx-half", 0xf0 | M_DIAL_XX, 2, xx_l.b, xx_l.n / 2,
	    NULL);
	seed(dir, "dial-http", M_DIAL_IK, 0, http, sizeof(http) - 1, NULL);
	seed(dir, "peek-xx", M_PEEK, 0, xx_d.b, xx_d.n, NULL);
	seed(dir, "peek-ik", M_PEEK, 1, ik_d.b, ik_d.n, NULL);
	seed(dir, "peek-ssh", M_PEEK, 0, ssh, sizeof(ssh) - 1, NULL);
	seed(dir, "peek-header", M_PEEK, 0, xx_d.b, (size_t)2, NULL);
	seed(dir, "peek-longest", M_PEEK, 0, "\1\0X", (size_t)3, NULL);
	seed(dir, "peek-too-long", M_PEEK, 0, "\1\1X", (size_t)3, NULL);
	seed(dir, "in-raw", M_IN_RAW, 0, stream, stream_n, NULL);
	seed(dir, "in-raw-pieces", M_IN_RAW, 16, stream, stream_n, NULL);
	for (i = 0; i < nframes; i++)
		ops[i] = (uint8_t)i;
	seed(dir, "in-ops", M_IN_OPS, 0, ops, nframes, NULL);
	/* A replay, a reordering, a changed byte, a cut, an injection. */
	seed(dir, "in-ops-replay", M_IN_OPS, 0, "\0\0\1", (size_t)3, NULL);
	seed(dir, "in-ops-swap", M_IN_OPS, 0, "\1\0", (size_t)2, NULL);
	seed(dir, "in-ops-flip", M_IN_OPS, 0, "\0\x82\x09\x40", (size_t)4,
	    NULL);
	seed(dir, "in-ops-cut", M_IN_OPS, 0, "\0\x43\x10\x03", (size_t)4, NULL);
	seed(dir, "in-ops-raw", M_IN_OPS, 0, "\0\xc0\x05\x00\x03" "abc",
	    (size_t)9, NULL);
}

/*
 * Once: libsodium on our randomness, the keys and the session, the
 * authorized files, and the real handshakes and transport to replay.
 */
static void
setup(void)
{
	struct noise dns, lns;
	const char *dir;
	size_t i;

	if (randombytes_set_implementation(&rng_impl) != 0 ||
	    noise_start() == -1)
		abort();
	for (i = 0; i < NOISE_KEY; i++) {
		d_s[i] = (unsigned char)(0x10 + i);
		l_s[i] = (unsigned char)(0x60 + i);
		w_s[i] = (unsigned char)(0xb0 + i);
	}
	key_public(d_s, d_pub);
	key_public(l_s, l_pub);
	key_public(w_s, w_pub);
	setenv("P2PID", sess_id, 1);
	setenv("P2PTOKEN", sess_tok, 1);
	auth_file(auth_yes, sizeof(auth_yes), d_pub);
	auth_file(auth_no, sizeof(auth_no), w_pub);
	record(l_pub, &ik_d, &ik_l, &dns, &lns);
	record(NULL, &xx_d, &xx_l, &dns, &lns);
	CHECK(memcmp(dns.tx.k, lns.rx.k, NOISE_KEY) == 0);
	rx0 = lns.rx;
	record_stream(&dns.tx);
	if ((dir = getenv("SEAL_SEEDS")) != NULL) {
		seeds(dir);
		fprintf(fuzz_err, "fuzz: seal: seeds written in %s\n", dir);
		_exit(0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready, trace;
	struct feed f;
	int mode, keep;
	size_t piece;

	fuzz_quiet();
	if (!ready) {
		setup();
		ready = 1;
		trace = getenv("SEAL_TRACE") != NULL;
	}
	if (size < 2)
		return 0;
	mode = (data[0] & 15) % 10;
	keep = (data[0] & 0xf0) == 0xf0;
	piece = data[1] % 17;
	res_r = 0;
	res_why[0] = '\0';
	ans_n = 0;
	if (mode == M_IN_RAW || mode == M_IN_OPS) {
		transport(data + 2, size - 2, mode == M_IN_OPS, piece);
		if (trace)
			fprintf(fuzz_err, "seal: mode %d: %d %s (%zu plain "
			    "bytes)\n", mode, res_r, res_why, ans_n);
		return 0;
	}
	feed_start(&f, data + 2, size - 2, piece, keep, mode == M_PEEK);
	if (mode == M_PEEK)
		peek(&f);
	else if (mode >= M_DIAL_XX)
		dial(&f, mode, keep ? KEEP_MS : HS_MS);
	else
		answer(&f, mode, keep ? KEEP_MS : HS_MS);
	feed_close(&f);
	if (trace)
		fprintf(fuzz_err, "seal: mode %d: %d %s\n", mode, res_r, res_why);
	return 0;
}
