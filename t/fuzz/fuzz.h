/*
 * What the libFuzzer harnesses share. Each harness is one .c file that
 * includes this, built by t/fuzz/run with the lib/ sources and
 * -fsanitize=fuzzer,address,undefined.
 */
#ifndef FUZZ_H
#define FUZZ_H

#include <sys/socket.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

/* Stop on a broken invariant: abort(), which libFuzzer reports as a crash. */
#define CHECK(cond) do { if (!(cond)) { \
	fprintf(fuzz_err, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
	    #cond); abort(); } } while (0)

/* The real stderr, for our own reports (see LLVMFuzzerInitialize). */
static FILE *fuzz_err;

/*
 * Daemons log one line per event on stderr; millions of runs would drown
 * the fuzzer's own output, so t/fuzz/run passes -close_fd_mask=2 (unless
 * FUZZ_VERBOSE is set): libFuzzer then sends stderr to /dev/null and its
 * own and the sanitizers' reports to a copy of it. This runs before that,
 * so that our CHECK messages keep a copy of the real stderr too.
 */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_err = fdopen(dup(2), "w");
	if (fuzz_err == NULL)
		fuzz_err = stderr;
	setvbuf(fuzz_err, NULL, _IONBF, 0);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

/* Nothing left to do at each run; kept so that harnesses say they start. */
static void
fuzz_quiet(void)
{
}

/*
 * A connected AF_UNIX stream pair with data[0..n) already sent into it and
 * the sending side shut for writing, so a reader sees the bytes and then
 * end of file. Returns the reading end; *other gets the sending end (still
 * readable: what the code under test answers arrives there).
 */
static int
fuzz_feed(const uint8_t *data, size_t n, int *other)
{
	int sv[2];
	size_t off = 0;
	ssize_t w;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
		perror("socketpair");
		abort();
	}
	while (off < n) {
		if ((w = write(sv[1], data + off, n - off)) <= 0) {
			perror("write into socketpair");
			abort();
		}
		off += w;
	}
	shutdown(sv[1], SHUT_WR);
	*other = sv[1];
	return sv[0];
}

/* Read what is left on fd (non-blocking) into buf; its length. */
static size_t
fuzz_drain(int fd, char *buf, size_t n)
{
	size_t got = 0;
	ssize_t r;

	while (got < n && (r = recv(fd, buf + got, n - got, MSG_DONTWAIT)) > 0)
		got += r;
	return got;
}

/* A copy of data[0..n) as a C string, in a block of exactly n + 1 bytes,
 * so that ASan sees a read past its end. */
static char *
fuzz_strndup(const uint8_t *data, size_t n)
{
	char *s = malloc(n + 1);

	if (s == NULL)
		abort();
	memcpy(s, data, n);
	s[n] = '\0';
	return s;
}

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

/*
 * The line protocol, read plainly: the length of data's first line (its
 * CR before the newline dropped), or -1 when the protocol takes no line
 * there (no newline, over LINE_MAX_ bytes, a byte not printable ASCII, or
 * a CR elsewhere than before the newline).
 */
static long
ref_line(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t l, i;

	if (nl == NULL || (l = nl - data) > LINE_MAX_)
		return -1;
	if (l > 0 && data[l - 1] == '\r')
		l--;
	for (i = 0; i < l; i++)
		if (data[i] < ' ' || data[i] > '~')
			return -1;
	return (long)l;
}

/* Whether data's first line is a good "P2P id token", and its words. */
static int
good_line(const uint8_t *data, size_t size, const uint8_t *w[3], size_t wl[3])
{
	const uint8_t *p, *end;
	long l = ref_line(data, size);
	int n = 0;

	if (l < 0)
		return 0;
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

#endif
