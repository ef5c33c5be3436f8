/* The line protocol: at most LINE_MAX_ bytes of printable ASCII, then "\n". */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

/*
 * Take byte c into the line being read into buf (*len bytes so far, room
 * for n with the NUL): 1 when c was its newline (buf then holds the line,
 * a CR before the newline dropped), 0 when more is wanted, -1 with errno
 * EMSGSIZE (longer than LINE_MAX_ or n) or EPROTO (a byte that is not
 * printable ASCII, or a CR elsewhere than just before the newline).
 */
int
line_byte(char *buf, size_t *len, size_t n, char c)
{
	if (c == '\n') {
		if (*len > 0 && buf[*len - 1] == '\r')
			(*len)--;
		buf[*len] = '\0';
		return 1;
	}
	if (*len + 1 >= n || *len >= LINE_MAX_) {
		errno = EMSGSIZE;
		return -1;
	}
	if ((*len > 0 && buf[*len - 1] == '\r') ||
	    ((c < ' ' || c > '~') && c != '\r')) {
		errno = EPROTO;
		return -1;
	}
	buf[(*len)++] = c;
	return 0;
}

/*
 * Read one line a byte at a time, so that no byte after the newline is
 * consumed: the socket may be handed on right after the handshake.
 * Returns the length, 0 at EOF before any byte, -1 with errno set
 * (ETIMEDOUT, EMSGSIZE for an over-long line, EPROTO for a bad byte).
 */
int
line_read(int fd, char *buf, size_t n, int ms)
{
	long deadline = now_ms() + ms;
	size_t len = 0;
	ssize_t r;
	char c;

	for (;;) {
		if ((r = io_read(fd, &c, 1, deadline)) == -1)
			return -1;
		if (r == 0) {
			if (len == 0)
				return 0;
			errno = ECONNRESET;
			return -1;
		}
		if ((r = line_byte(buf, &len, n, c)) != 0)
			return r == 1 ? (int)len : -1;
	}
}

/* Write all n bytes of buf within ms. */
int
write_all(int fd, const char *buf, size_t n, int ms)
{
	return io_write(fd, buf, n, now_ms() + ms);
}

/* Write one formatted line, giving up after ms. */
int
line_write(int fd, int ms, const char *fmt, ...)
{
	char buf[LINE_MAX_ + 2];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, LINE_MAX_ + 1, fmt, ap);
	va_end(ap);
	if (n < 0 || n > LINE_MAX_) {
		errno = EMSGSIZE;
		return -1;
	}
	buf[n++] = '\n';
	return write_all(fd, buf, n, ms);
}

/*
 * A line of base words that may end in one more, flag: 1 when it does,
 * 0 when there are just the base words, -1 for any other count or word.
 */
int
words_flag(char **w, int n, int base, const char *flag)
{
	if (n == base)
		return 0;
	return n == base + 1 && strcmp(w[base], flag) == 0 ? 1 : -1;
}

/* Split line in place at single spaces into at most max words. */
int
line_words(char *line, char **w, int max)
{
	int n = 0;
	char *p = line;

	while (*p != '\0' && n < max) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		w[n++] = p;
		while (*p != '\0' && *p != ' ')
			p++;
		if (*p == ' ')
			*p++ = '\0';
	}
	return *p == '\0' ? n : -1;
}

/* Whether s is all printable ASCII. */
int
line_printable(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s < ' ' || *s > '~')
			return 0;
	return 1;
}

/* Read what fd has into lb; 0 at EOF, -1 on error (EAGAIN when empty). */
int
linebuf_fill(struct linebuf *lb, int fd)
{
	ssize_t r;

	if (lb->len >= LINE_MAX_ + 1) {
		errno = EMSGSIZE;
		return -1;
	}
	r = read(fd, lb->buf + lb->len, sizeof(lb->buf) - lb->len);
	if (r > 0)
		lb->len += r;
	return (int)r;
}

/*
 * Take the next complete line out of lb: its length, -1 when there is
 * none yet, -2 when the buffer is full with no newline or holds a bad byte.
 */
int
linebuf_next(struct linebuf *lb, char *line, size_t n)
{
	char *nl = memchr(lb->buf, '\n', lb->len);
	size_t l, i;

	if (nl == NULL)
		return lb->len > LINE_MAX_ ? -2 : -1;
	l = nl - lb->buf;
	if (l > 0 && lb->buf[l - 1] == '\r')
		l--;
	if (l >= n)
		return -2;
	for (i = 0; i < l; i++)
		if (lb->buf[i] < ' ' || lb->buf[i] > '~')
			return -2;
	memcpy(line, lb->buf, l);
	line[l] = '\0';
	lb->len -= (nl - lb->buf) + 1;
	memmove(lb->buf, nl + 1, lb->len);
	return (int)l;
}
