/*
 * Fuzz the direct connection's handshake: hs_read on a socket that holds
 * the bytes a dialer sent, then end of file. hs_read must accept exactly
 * the well-formed "P2P id token" lines (checked against a plain reading of
 * the same bytes), and take exactly one line: the bytes after it belong to
 * the application.
 */
#include "fuzz.h"

static const char want[] = "0123456789abcdef0123456789abcdef";

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
