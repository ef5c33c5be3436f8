/* Ids, tokens, names and secrets. */
#include <ctype.h>
#include <string.h>

#include "p2p.h"

/* nbytes of arc4random as lowercase hex; out holds 2*nbytes+1. */
void
hex_random(char *out, size_t nbytes)
{
	static const char hx[] = "0123456789abcdef";
	unsigned char b[64];
	size_t i;

	if (nbytes > sizeof(b))
		nbytes = sizeof(b);
	arc4random_buf(b, nbytes);
	for (i = 0; i < nbytes; i++) {
		out[2 * i] = hx[b[i] >> 4];
		out[2 * i + 1] = hx[b[i] & 15];
	}
	out[2 * nbytes] = '\0';
	explicit_bzero(b, sizeof(b));
}

/* Whether s is exactly len lowercase hex digits. */
int
hex_valid(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[len] == '\0';
}

/* Compare n bytes without an early exit, so that timing reveals nothing. */
static int
ct_differ(const unsigned char *a, const unsigned char *b, size_t n)
{
	unsigned char d = 0;
	size_t i;

	for (i = 0; i < n; i++)
		d |= a[i] ^ b[i];
	return d != 0;
}

/* Compare two secrets in time that depends only on their lengths. */
int
secret_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char pa[LINE_MAX_ + 1] = {0}, pb[LINE_MAX_ + 1] = {0};
	int eq;

	if (la > LINE_MAX_ || lb > LINE_MAX_)
		return 0;
	memcpy(pa, a, la);
	memcpy(pb, b, lb);
	eq = !ct_differ(pa, pb, sizeof(pa)) & (la == lb);
	explicit_bzero(pa, sizeof(pa));
	explicit_bzero(pb, sizeof(pb));
	return eq;
}

/* Whether s is a peer name: 1 to 64 of [A-Za-z0-9._-]. */
int
name_valid(const char *s)
{
	size_t n;

	for (n = 0; s[n] != '\0'; n++)
		if (!isalnum((unsigned char)s[n]) && strchr("._-", s[n]) == NULL)
			return 0;
	return n >= 1 && n <= NAME_MAX_;
}
