/*
 * Fuzz rvd's line parsers: the bytes a client sends, cut into lines by
 * struct linebuf as rvd cuts them (fed in chunks, as linebuf_fill would),
 * and each line parsed by rvcmd_parse. linebuf's lines are checked against
 * a plain split of the same bytes; a parsed command against its line.
 */
#include "fuzz.h"

/* Whether p points into line[0..n]. */
static int
inside(const char *p, const char *line, size_t n)
{
	return p >= line && p <= line + n;
}

/* Parse one line as rvd does, and check what comes out. */
static void
parse(const char *src, size_t len)
{
	char *line, *copy, joined[LINE_MAX_ + 1];
	struct rvcmd c;
	int i, r;

	if (len > LINE_MAX_)
		len = LINE_MAX_;
	line = fuzz_strndup((const uint8_t *)src, len);
	copy = fuzz_strndup((const uint8_t *)src, len);
	r = rvcmd_parse(line, &c);
	CHECK(r == 0 || r == -1);
	if (r == -1) {
		CHECK(c.verb == RV_BAD && c.why != NULL);
		goto out;
	}
	CHECK(c.verb > RV_BAD && c.verb <= RV_PUNCH);
	switch (c.verb) {
	case RV_LOGON:
	case RV_LISTEN:
		CHECK(name_valid(c.name) && strlen(c.name) <= NAME_MAX_);
		CHECK(inside(c.name, line, len));
		CHECK(c.secret == NULL || inside(c.secret, line, len));
		break;
	case RV_INVITE:
		CHECK(name_valid(c.name));
		CHECK(hex_valid(c.id, ID_HEX) && hex_valid(c.token, ID_HEX));
		CHECK(c.naddr >= 0 && c.naddr <= TICKET_ADDRS);
		for (i = 0; i < c.naddr; i++) {
			struct addr a;

			CHECK(strlen(c.addrs[i]) < ADDR_STR);
			CHECK(addr_numeric(c.addrs[i], &a) == 0);
		}
		words_join(c.addrs, c.naddr, joined, sizeof(joined));
		CHECK(strlen(joined) <= len);
		break;
	case RV_MSG:
		CHECK(hex_valid(c.id, ID_HEX));
		CHECK(c.nwords >= 1 && c.nwords <= RV_WORDS - 2);
		for (i = 0; i < c.nwords; i++)
			CHECK(inside(c.words[i], line, len) && c.words[i][0] != '\0');
		words_join(c.words, c.nwords, joined, sizeof(joined));
		/* rvd forwards "MSG <id> <words>": the words as sent, less spaces. */
		CHECK(strlen(joined) <= len);
		break;
	case RV_RELAY:
		CHECK(name_valid(c.name) && hex_valid(c.id, ID_HEX));
		CHECK(c.relay != NULL && strlen(c.relay) < ADDR_STR + 192);
		break;
	case RV_PUNCH: {
		struct addr a;

		CHECK(hex_valid(c.id, ID_HEX) && c.naddr == 1);
		CHECK(strlen(c.addrs[0]) < ADDR_STR);
		CHECK(addr_numeric(c.addrs[0], &a) == 0);
		break;
	}
	}
out:
	free(line);
	free(copy);
}

/* The plain split: the next raw segment of data (up to a newline). */
struct split {
	const uint8_t *p, *end;
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct linebuf lb;
	struct split sp;
	char line[LINE_MAX_ + 1];
	size_t off = 0, chunk, room, seglen, l, i;
	const uint8_t *seg, *nl;
	int n, bad;

	fuzz_quiet();
	/* The first byte picks how many bytes each read returns. */
	if (size == 0)
		return 0;
	chunk = data[0] % 64 == 0 ? sizeof(lb.buf) : data[0] % 64;
	data++;
	size--;

	/* 1. rvcmd_parse on each newline-ended segment, whatever its bytes. */
	for (seg = data; seg < data + size; seg = nl + 1) {
		nl = memchr(seg, '\n', data + size - seg);
		if (nl == NULL)
			break;
		l = nl - seg;
		if (l > 0 && seg[l - 1] == '\r')
			l--;
		parse((const char *)seg, l);
	}

	/* 2. linebuf, filled in chunks, must give the lines the plain split gives. */
	memset(&lb, 0, sizeof(lb));
	sp.p = data;
	sp.end = data + size;
	for (;;) {
		n = linebuf_next(&lb, line, sizeof(line));
		if (n == -1) {
			/* Nothing complete: fill, as linebuf_fill would read. */
			if (lb.len >= LINE_MAX_ + 1)
				break;	/* EMSGSIZE; linebuf_next said -2 already */
			if (off == size)
				break;
			room = sizeof(lb.buf) - lb.len;
			if (room > chunk)
				room = chunk;
			if (room > size - off)
				room = size - off;
			memcpy(lb.buf + lb.len, data + off, room);
			lb.len += room;
			off += room;
			continue;
		}
		/* The segment the plain split expects next. */
		nl = memchr(sp.p, '\n', sp.end - sp.p);
		seglen = nl != NULL ? (size_t)(nl - sp.p) : (size_t)(sp.end - sp.p);
		if (n == -2) {
			/* Refused: the segment is over-long or has a bad byte. */
			l = seglen;
			if (nl != NULL && l > 0 && sp.p[l - 1] == '\r')
				l--;
			bad = seglen > LINE_MAX_;
			for (i = 0; i < l && !bad; i++)
				bad = sp.p[i] < ' ' || sp.p[i] > '~';
			if (!bad)
				fprintf(fuzz_err, "linebuf refused a good line of %zu bytes\n",
				    seglen);
			CHECK(bad);
			break;
		}
		CHECK(nl != NULL);
		CHECK(n >= 0 && n <= LINE_MAX_ && (size_t)n == strlen(line));
		l = seglen;
		if (l > 0 && sp.p[l - 1] == '\r')
			l--;
		CHECK((size_t)n == l && memcmp(line, sp.p, l) == 0);
		for (i = 0; i < l; i++)
			CHECK(line[i] >= ' ' && line[i] <= '~');
		sp.p = nl + 1;
		CHECK(lb.len <= sizeof(lb.buf));
		parse(line, n);
	}
	/* Whatever linebuf still holds was not yet a line: no newline in it. */
	if (n == -1)
		CHECK(memchr(lb.buf, '\n', lb.len) == NULL && lb.len <= LINE_MAX_);
	return 0;
}
