/*
 * Fuzz lib/proxy.c: what a proxy answers (the HTTP reply head and status
 * line, the SOCKS5 method, authentication and CONNECT replies), both through
 * the pure parsers and through proxy_tunnel on a socket that holds the
 * proxy's bytes; and what the user gives (the proxy URL, no_proxy).
 * The first byte picks the target.
 */
#include "fuzz.h"

/* HTTP: the head as http_read_head grows it, then its status line. */
static void
http(const uint8_t *data, size_t size)
{
	char reason[128], *s;
	size_t n, rn;
	int e = 0, code, r;

	for (n = 0; n <= size && (e = http_head_end((const char *)data, n)) == 0;)
		n++;
	if (n > size)
		n = size;
	if (e == 1) {
		CHECK(n >= 2 && data[n - 1] == '\n');
		r = http_reply_parse((const char *)data, n, &code, reason,
		    sizeof(reason));
		CHECK(r == -1 || (code >= 100 && code <= 999 &&
		    line_printable(reason)));
	}
	/* The status line alone, with every size of reason buffer up to 8. */
	s = fuzz_strndup(data, size);
	for (rn = 0; rn <= 8; rn++) {
		char *rb = malloc(rn + 1);

		rb[rn] = 'Z';
		r = http_status_parse(s, &code, rb, rn);
		CHECK(rb[rn] == 'Z');
		CHECK(r == -1 || (code >= 100 && code <= 999 &&
		    (rn == 0 || strlen(rb) < rn)));
		free(rb);
	}
	free(s);
}

/* SOCKS5: the replies, each as socks5_connect grows it. */
static void
socks5(const uint8_t *data, size_t size)
{
	size_t got = 0, need = 2;
	int rep = -1, r;

	if (size >= 2) {
		r = socks5_method_parse(data, 2);
		CHECK(r == -1 || (r >= 0 && r <= 255));
		r = socks5_auth_parse(data, 2);
		CHECK(r == -1 || (r >= 0 && r <= 255));
	}
	while ((r = socks5_reply_parse(data, got, &rep, &need)) == 0) {
		CHECK(need > got && need <= 4 + 1 + 255 + 2);
		if (need > size)
			return;
		got = need;
	}
	CHECK(r == 1 || r == -1);
	if (r == 1) {
		CHECK(rep == data[1]);
		CHECK(socks5_strerror(rep) != NULL);
	}
}

/* The URL of a proxy, as P2P_PROXY or https_proxy give it. */
static void
url(const uint8_t *data, size_t size)
{
	struct proxy px;
	char why[256], *s = fuzz_strndup(data, size);
	unsigned char req[4 + 1 + 255 + 2];

	if (proxy_parse(s, &px, why, sizeof(why)) == 0) {
		CHECK(px.scheme >= PROXY_HTTP && px.scheme <= PROXY_SOCKS5H);
		CHECK(px.port >= 1 && px.port <= 65535);
		CHECK(px.host[0] != '\0' && strlen(px.hostport) < sizeof(px.hostport));
		CHECK(strlen(px.user) <= PROXY_CRED_MAX && strlen(px.pass) <= PROXY_CRED_MAX);
		CHECK(!px.auth || px.user[0] != '\0');

		(void)socks5_request(req, sizeof(req), px.host, px.port, 1);
	} else
		CHECK(why[0] != '\0');
	free(s);
}

/* no_proxy: the host is the first line, the list the rest. */
static void
noproxy(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	char *host, *list;

	if (nl == NULL)
		return;
	host = fuzz_strndup(data, nl - data);
	list = fuzz_strndup(nl + 1, size - (nl + 1 - data));
	(void)no_proxy_match(host, list);
	free(host);
	free(list);
}

/* Percent-decoding and base64, with every small output size. */
static void
codecs(const uint8_t *data, size_t size)
{
	size_t on, b;

	for (on = 0; on <= 4; on++) {
		char *out = malloc(on + 1);

		out[on] = 'Z';
		if (pct_decode((const char *)data, size, out, on) == 0)
			CHECK(on > 0 && strlen(out) < on);
		CHECK(out[on] == 'Z');
		free(out);
	}
	for (on = 0; on <= 12; on++) {
		char *out = malloc(on + 1);

		out[on] = 'Z';
		b = base64_encode(data, size < 8 ? size : 8, out, on);
		CHECK(out[on] == 'Z' && (b == 0 || b == strlen(out)));
		free(out);
	}
}

/*
 * proxy_tunnel talking to a "proxy" whose answer is data: it must end in
 * time, say why it failed in printable words, and on success have read
 * exactly the proxy's reply and not one byte of the tunnel.
 */
static void
tunnel(int scheme, int auth, const uint8_t *data, size_t size)
{
	struct proxy px;
	char why[512], rest[4096];
	const char *dest = scheme == PROXY_SOCKS5H ? "peer.example:443" :
	    "198.51.100.20:40210";
	size_t left, used, len;
	int fd, other, r;

	memset(&px, 0, sizeof(px));
	px.scheme = scheme;
	strlcpy(px.host, "198.51.100.3", sizeof(px.host));
	px.port = 3128;
	strlcpy(px.hostport, "198.51.100.3:3128", sizeof(px.hostport));
	if (auth) {
		px.auth = 1;
		strlcpy(px.user, "user", sizeof(px.user));
		strlcpy(px.pass, "p@ss:word", sizeof(px.pass));
	}
	fd = fuzz_feed(data, size, &other);
	why[0] = '\0';
	r = proxy_tunnel(fd, &px, dest, 500, why, sizeof(why));
	CHECK(r == 0 || r == PX_DEST || r == PX_PROXY);
	left = fuzz_drain(fd, rest, sizeof(rest));
	CHECK(left <= size);
	used = size - left;
	CHECK(memcmp(rest, data + used, left) == 0);
	if (r != 0) {
		if (!line_printable(why))
			fprintf(fuzz_err, "unprintable why: %s\n", why);
		CHECK(why[0] != '\0' && line_printable(why));
	} else if (scheme == PROXY_HTTP) {
		CHECK(used >= 2 && data[used - 1] == '\n');
	} else {
		/* greeting (2), authentication (2), reply (by its address type) */
		size_t at = auth && data[1] == 2 ? 4 : 2;

		CHECK(used > at + 4 && data[at] == 5 && data[at + 1] == 0);
		len = data[at + 3] == 1 ? 10 : data[at + 3] == 4 ? 22 :
		    (size_t)(7 + data[at + 4]);
		CHECK(used == at + len);
	}
	close(fd);
	close(other);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_quiet();
	if (size == 0)
		return 0;
	switch (data[0] % 9) {
	case 0: http(data + 1, size - 1); break;
	case 1: socks5(data + 1, size - 1); break;
	case 2: url(data + 1, size - 1); break;
	case 3: noproxy(data + 1, size - 1); break;
	case 4: codecs(data + 1, size - 1); break;
	case 5: tunnel(PROXY_HTTP, 0, data + 1, size - 1); break;
	case 6: tunnel(PROXY_HTTP, 1, data + 1, size - 1); break;
	case 7: tunnel(PROXY_SOCKS5, 0, data + 1, size - 1); break;
	case 8: tunnel(PROXY_SOCKS5H, 1, data + 1, size - 1); break;
	}
	return 0;
}
