/*
 * Fuzz the direct connection's handshake: hs_read on a socket that holds
 * the bytes a dialer sent, then end of file. hs_read must accept exactly
 * the well-formed "P2P id token" lines (checked against a plain reading of
 * the same bytes), and take exactly one line: the bytes after it belong to
 * the application.
 */
#include "fuzz.h"

static const char want[] = "0123456789abcdef0123456789abcdef";

/* Whether s[0..n) is exactly ID_HEX lowercase hex digits. */
static int
ishex(const uint8_t *s, size_t n)
{
	size_t i;

	if (n != ID_HEX)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* The reference: whether data holds a good first line, and its words. */
static int
good_line(const uint8_t *data, size_t size, const uint8_t *w[3], size_t wl[3])
{
	const uint8_t *nl = memchr(data, '\n', size), *p, *end;
	size_t l, i;
	int n = 0;

	if (nl == NULL || (l = nl - data) > LINE_MAX_)
		return 0;
	for (i = 0; i < l; i++)
		if ((data[i] < ' ' || data[i] > '~') && data[i] != '\r')
			return 0;
	if (l > 0 && data[l - 1] == '\r')
		l--;
	for (p = data, end = data + l; p < end;) {
		while (p < end && *p == ' ')
			p++;
		if (p == end)
			break;
		if (n == 3)
			return 0;
		w[n] = p;
		while (p < end && *p != ' ')
			p++;
		wl[n] = p - w[n];
		n++;
	}
	return n == 3 && wl[0] == 3 && memcmp(w[0], "P2P", 3) == 0 &&
	    ishex(w[1], wl[1]) && ishex(w[2], wl[2]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char id[ID_HEX + 1], token[ID_HEX + 1], rest[4096 + 1], ans[256];
	const uint8_t *nl, *w[3];
	size_t left, got, wl[3];
	int fd, other, r, good;

	fuzz_quiet();
	fd = fuzz_feed(data, size, &other);
	r = hs_read(fd, id, token, 200);
	CHECK(r == 0 || r == -1);
	good = good_line(data, size, w, wl);
	if (good != (r == 0))
		fprintf(fuzz_err, "hs_read said %d, the reference %d\n", r, good);
	CHECK(good == (r == 0));
	if (r == 0) {
		CHECK(memcmp(id, w[1], ID_HEX) == 0 && id[ID_HEX] == '\0');
		CHECK(memcmp(token, w[2], ID_HEX) == 0 && token[ID_HEX] == '\0');
		/* Not one byte past the newline was consumed. */
		nl = memchr(data, '\n', size);
		left = size - (nl + 1 - data);
		got = fuzz_drain(fd, rest, sizeof(rest));
		CHECK(got == left && memcmp(rest, nl + 1, left) == 0);
		r = hs_answer(fd, token, want);
		got = fuzz_drain(other, ans, sizeof(ans) - 1);
		ans[got] = '\0';
		CHECK((r == 0) == (strcmp(token, want) == 0));
		CHECK(strcmp(ans, r == 0 ? "OK\n" : "ERR bad token\n") == 0);
	}
	close(fd);
	close(other);
	return 0;
}
