/*
 * Fuzz conninfo_parse: the line that comes with a passed fd (p2p(7),
 * Connections), "VIA REMOTE PEER [GO] [id=ID] [token=TOKEN]". The input,
 * cut at LINE_MAX_ bytes, is copied as a C string (so it ends at its first
 * NUL) and checked against a plain reading of the same words: the line is
 * taken exactly when it has three words and then at most one each of GO,
 * id=<32 hex> and token=<32 hex>, in any order, words being split at runs
 * of spaces; and every word returned points at its own word in the line.
 */
#include "fuzz.h"

#define WORDS 8			/* one more than a good line has room for */

/* Whether s[0..n) is the word w. */
static int
word_is(const char *s, size_t n, const char *w)
{
	return n == strlen(w) && memcmp(s, w, n) == 0;
}

/*
 * Split s at runs of spaces into at most WORDS words: their offsets and
 * lengths, and how many there are (WORDS + 1 when there are more).
 */
static int
split(const char *s, size_t off[WORDS], size_t len[WORDS])
{
	size_t i = 0;
	int n = 0;

	for (;;) {
		while (s[i] == ' ')
			i++;
		if (s[i] == '\0')
			return n;
		if (n == WORDS)
			return WORDS + 1;
		off[n] = i;
		while (s[i] != '\0' && s[i] != ' ')
			i++;
		len[n] = i - off[n];
		n++;
	}
}

/* Whether the word s[0..n) is prefix and then 32 lowercase hex digits. */
static int
is_hexword(const char *s, size_t n, const char *prefix)
{
	size_t pl = strlen(prefix);

	return n > pl && memcmp(s, prefix, pl) == 0 &&
	    ishex((const uint8_t *)s + pl, n - pl);
}

/* Whether p points at the NUL-ended word orig[off..off+len) within line. */
static int
points_at(const char *p, const char *line, size_t linelen, size_t off,
    size_t len, const char *orig)
{
	return p == line + off && off + len <= linelen && p[len] == '\0' &&
	    memcmp(p, orig + off, len) == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conninfo ci;
	const char *remote = NULL;
	size_t off[WORDS], len[WORDS], n = size > LINE_MAX_ ? LINE_MAX_ : size;
	size_t linelen, go = 0, id = 0, tok = 0;
	char *line = fuzz_strndup(data, n), *orig = fuzz_strndup(data, n);
	int nw, i, good, r;

	fuzz_quiet();
	linelen = strlen(orig);
	nw = split(orig, off, len);
	good = nw >= 3 && nw <= 6;
	for (i = 3; good && i < nw; i++) {
		if (word_is(orig + off[i], len[i], "GO") && !go)
			go = i;
		else if (is_hexword(orig + off[i], len[i], "id=") && !id)
			id = i;
		else if (is_hexword(orig + off[i], len[i], "token=") && !tok)
			tok = i;
		else
			good = 0;
	}
	r = conninfo_parse(line, &ci, &remote);
	if (r != (good ? 0 : -1))
		fprintf(fuzz_err, "conninfo_parse gives %d, want %d: \"%s\"\n",
		    r, good ? 0 : -1, orig);
	CHECK(r == (good ? 0 : -1));
	if (good) {
		CHECK(points_at(ci.via, line, linelen, off[0], len[0], orig));
		CHECK(points_at(remote, line, linelen, off[1], len[1], orig));
		if (word_is(orig + off[2], len[2], "-"))
			CHECK(ci.peer == NULL);
		else
			CHECK(points_at(ci.peer, line, linelen, off[2], len[2],
			    orig));
		CHECK(ci.go == (go != 0));
		if (id)
			CHECK(points_at(ci.id, line, linelen, off[id] + 3,
			    ID_HEX, orig));
		else
			CHECK(ci.id == NULL);
		if (tok)
			CHECK(points_at(ci.token, line, linelen, off[tok] + 6,
			    ID_HEX, orig));
		else
			CHECK(ci.token == NULL);
	}
	free(line);
	free(orig);
	return 0;
}
