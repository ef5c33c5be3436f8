/*
 * Proxies: HTTP CONNECT (RFC 9110) and SOCKS5 (RFC 1928, RFC 1929) clients,
 * with the proxy URL and no_proxy read as curl reads them. The parsers are
 * pure functions, bytes in and a result out, so that they can be fuzzed
 * apart from any socket. No byte after a proxy's reply is ever read: the
 * tunnel that follows belongs to the peer's handshake and the application.
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "p2p.h"

/* ---- pure helpers: URL pieces, base64, no_proxy ---- */

/* The value of one hex digit, or -1. */
static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * Percent-decode s[0..len) into out (NUL-terminated): 0, or -1 for a bad
 * escape, an encoded NUL (a C string cannot hold it) or no room.
 */
int
pct_decode(const char *s, size_t len, char *out, size_t on)
{
	size_t i, o = 0;
	int hi, lo, c;

	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c == '%') {
			if (i + 2 >= len)
				return -1;
			if ((hi = hexval(s[i + 1])) == -1 ||
			    (lo = hexval(s[i + 2])) == -1)
				return -1;
			c = hi * 16 + lo;
			i += 2;
		}
		if (c == '\0' || o + 1 >= on)
			return -1;
		out[o++] = (char)c;
	}
	if (on == 0)
		return -1;
	out[o] = '\0';
	return 0;
}

/* Base64 of in[0..n) into out, NUL-terminated: its length, or 0 if no room. */
size_t
base64_encode(const unsigned char *in, size_t n, char *out, size_t on)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;
	unsigned v;

	if (on < (n + 2) / 3 * 4 + 1)
		return 0;
	for (i = 0; i < n; i += 3) {
		v = in[i] << 16 | (i + 1 < n ? in[i + 1] << 8 : 0) |
		    (i + 2 < n ? in[i + 2] : 0);
		out[o++] = b64[v >> 18 & 63];
		out[o++] = b64[v >> 12 & 63];
		out[o++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? b64[v & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

/* Whether the numeric host ip lies in the network "net/bits" or equals "net". */
static int
ip_match(const char *ip, const char *entry)
{
	unsigned char a[16], b[16];
	char net[INET6_ADDRSTRLEN];
	const char *slash = strchr(entry, '/'), *e;
	int fam = strchr(ip, ':') ? AF_INET6 : AF_INET, bits, i;
	size_t nl = slash ? (size_t)(slash - entry) : strlen(entry);

	if (nl >= sizeof(net))
		return 0;
	memcpy(net, entry, nl);
	net[nl] = '\0';
	if (inet_pton(fam, ip, a) != 1 || inet_pton(fam, net, b) != 1)
		return 0;
	bits = fam == AF_INET6 ? 128 : 32;
	if (slash != NULL) {
		bits = strtonum(slash + 1, 0, bits, &e);
		if (e != NULL)
			return 0;
	}
	for (i = 0; i < bits / 8; i++)
		if (a[i] != b[i])
			return 0;
	return bits % 8 == 0 ||
	    ((a[i] ^ b[i]) & (0xff00 >> (bits % 8)) & 0xff) == 0;
}

/* Whether host name matches one no_proxy entry: itself, or a domain above it. */
static int
name_match(const char *host, size_t hl, const char *entry)
{
	size_t el;

	while (*entry == '.')
		entry++;	/* ".example.com" means the same as "example.com" */
	el = strlen(entry);
	if (el > 0 && entry[el - 1] == '.')
		el--;
	if (el == 0 || el > hl)
		return 0;
	if (strncasecmp(host + hl - el, entry, el) != 0)
		return 0;
	return el == hl || host[hl - el - 1] == '.';
}

/*
 * Whether host (a name, an IPv4 or an IPv6 address, brackets or not) is
 * in list: comma- or space-separated names, domains, addresses or CIDR
 * networks, with "*" for every host, as curl reads no_proxy.
 */
int
no_proxy_match(const char *host, const char *list)
{
	char h[256], buf[1024], *p, *tok;
	unsigned char ip[16];
	size_t hl = strlen(host);
	int isip;

	if (list == NULL)
		return 0;
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		host++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(h))
		return 0;
	memcpy(h, host, hl);
	h[hl] = '\0';
	if (h[hl - 1] == '.')
		h[--hl] = '\0';
	isip = inet_pton(AF_INET, h, ip) == 1 || inet_pton(AF_INET6, h, ip) == 1;
	strlcpy(buf, list, sizeof(buf));
	for (p = buf; (tok = strsep(&p, ", \t")) != NULL;) {
		if (*tok == '\0')
			continue;
		if (strcmp(tok, "*") == 0)
			return 1;
		if (tok[0] == '[') {
			tok++;
			tok[strcspn(tok, "]")] = '\0';
		}
		if (isip ? ip_match(h, tok) : name_match(h, hl, tok))
			return 1;
	}
	return 0;
}

/* Whether the environment's no_proxy (or NO_PROXY) says not to proxy hostport. */
int
proxy_bypass(const char *hostport)
{
	char host[256], port[16];

	if (addr_split(hostport, host, sizeof(host), port, sizeof(port)) == -1)
		return 0;
	return no_proxy_match(host, env_or("no_proxy", env_or("NO_PROXY", NULL)));
}

/* The proxy URL from the environment as curl would pick it; name gets the variable. */
const char *
proxy_env(const char **name)
{
	static const char *vars[] = { "P2P_PROXY", "https_proxy", "HTTPS_PROXY",
	    "all_proxy", "ALL_PROXY" };
	const char *s;
	size_t i;

	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		if ((s = env_or(vars[i], NULL)) != NULL) {
			if (name != NULL)
				*name = vars[i];
			return s;
		}
	return NULL;
}

/* Fill why and return -1, for proxy_parse. */
static int
badurl(char *why, size_t n, const char *text)
{
	snprintf(why, n, "bad proxy URL: %s", text);
	return -1;
}

/* Take "user[:password]" (percent-encoded) into px. */
static int
parse_userinfo(const char *s, size_t len, struct proxy *px, char *why, size_t n)
{
	const char *colon = memchr(s, ':', len);
	size_t ul = colon ? (size_t)(colon - s) : len;

	if (pct_decode(s, ul, px->user, sizeof(px->user)) == -1 ||
	    (colon && pct_decode(colon + 1, len - ul - 1, px->pass,
	    sizeof(px->pass)) == -1))
		return badurl(why, n, "bad user or password (at most 255 bytes, "
		    "percent-encoded)");
	if (px->user[0] == '\0')
		return badurl(why, n, "empty user name");
	px->auth = 1;
	return 0;
}

/* Take "host[:port]" or "[v6][:port]" into px, with the scheme's default port. */
static int
parse_hostport(const char *s, size_t len, struct proxy *px, char *why, size_t n)
{
	const char *hs = s, *pe = NULL, *e;
	char port[8];
	size_t hl;

	if (len > 0 && s[0] == '[') {
		const char *rb = memchr(s, ']', len);

		if (rb == NULL)
			return badurl(why, n, "no ] after an IPv6 address");
		hs = s + 1;
		hl = rb - hs;
		if (rb + 1 < s + len) {
			if (rb[1] != ':')
				return badurl(why, n, "junk after ]");
			pe = rb + 2;
		}
	} else {
		const char *c = memchr(s, ':', len);

		hl = c ? (size_t)(c - s) : len;
		pe = c ? c + 1 : NULL;
	}
	if (hl == 0 || hl >= sizeof(px->host))
		return badurl(why, n, "no host, or too long a host");
	memcpy(px->host, hs, hl);
	px->host[hl] = '\0';
	px->port = px->scheme == PROXY_HTTP ? 3128 : 1080;
	if (pe != NULL) {
		if ((size_t)(s + len - pe) >= sizeof(port) || pe == s + len)
			return badurl(why, n, "bad port");
		memcpy(port, pe, s + len - pe);
		port[s + len - pe] = '\0';
		px->port = strtonum(port, 1, 65535, &e);
		if (e != NULL)
			return badurl(why, n, "bad port");
	}
	snprintf(px->hostport, sizeof(px->hostport), "%s%s%s:%d",
	    hs != s ? "[" : "", px->host, hs != s ? "]" : "", px->port);
	return 0;
}

/*
 * Parse a proxy URL: [SCHEME://][USER[:PASSWORD]@]HOST[:PORT][/], scheme
 * http (the default, as in curl), socks5 or socks5h. 0, or -1 with why.
 */
int
proxy_parse(const char *url, struct proxy *px, char *why, size_t n)
{
	const char *p = strstr(url, "://"), *auth, *end, *at;

	memset(px, 0, sizeof(*px));
	px->scheme = PROXY_HTTP;
	if (p != NULL) {
		if ((size_t)(p - url) == 4 && strncasecmp(url, "http", 4) == 0)
			px->scheme = PROXY_HTTP;
		else if ((size_t)(p - url) == 6 && strncasecmp(url, "socks5", 6) == 0)
			px->scheme = PROXY_SOCKS5;
		else if ((size_t)(p - url) == 7 && strncasecmp(url, "socks5h", 7) == 0)
			px->scheme = PROXY_SOCKS5H;
		else
			return badurl(why, n, "scheme not http, socks5 or socks5h");
		auth = p + 3;
	} else
		auth = url;
	end = auth + strcspn(auth, "/?#");
	if (*end != '\0' && strcmp(end, "/") != 0)
		return badurl(why, n, "a path, query or fragment");
	at = NULL;
	for (p = auth; p < end; p++)
		if (*p == '@')
			at = p;	/* the last '@': a password may hold one */
	if (at != NULL && parse_userinfo(auth, at - auth, px, why, n) == -1)
		return -1;
	return parse_hostport(at ? at + 1 : auth, end - (at ? at + 1 : auth),
	    px, why, n);
}

/* ---- pure parsers of what proxies answer ---- */

/*
 * Scan a growing HTTP reply head: 1 when buf[0..n) ends with the blank
 * line, 0 for more bytes, -1 when it is no HTTP reply or over-long. Cheap
 * enough to call after every byte read.
 */
int
http_head_end(const char *buf, size_t n)
{
	if (memcmp(buf, "HTTP/", n < 5 ? n : 5) != 0)
		return -1;
	if (n >= 2 && buf[n - 1] == '\n' && (buf[n - 2] == '\n' ||
	    (n >= 3 && buf[n - 2] == '\r' && buf[n - 3] == '\n')))
		return 1;
	return n >= PROXY_HEAD_MAX ? -1 : 0;
}

/*
 * Parse a status line "HTTP/1.1 200 Connection established" (NUL-ended,
 * with or without its CR): 0 with the code and the reason (made
 * printable), or -1 if it is no status line.
 */
int
http_status_parse(const char *line, int *code, char *reason, size_t n)
{
	const unsigned char *p = (const unsigned char *)line;
	size_t i;

	if (strncmp(line, "HTTP/", 5) != 0 || !isdigit(p[5]))
		return -1;
	p += 6;
	if (*p == '.') {
		if (!isdigit(p[1]))
			return -1;
		p += 2;
	}
	if (*p++ != ' ' || !isdigit(p[0]) || !isdigit(p[1]) || !isdigit(p[2]))
		return -1;
	*code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	p += 3;
	if ((*p != ' ' && *p != '\r' && *p != '\0') || *code < 100)
		return -1;
	while (*p == ' ')
		p++;
	for (i = 0; n > 0 && i < n - 1 && p[i] != '\0' && p[i] != '\r' &&
	    p[i] != '\n'; i++)
		reason[i] = p[i] >= ' ' && p[i] <= '~' ? p[i] : '?';
	if (n > 0)
		reason[i] = '\0';
	return 0;
}

/*
 * Parse a complete reply head buf[0..n) (as http_head_end found it): 0 with
 * its status code and reason, or -1 if it is malformed.
 */
int
http_reply_parse(const char *buf, size_t n, int *code, char *reason, size_t rn)
{
	char line[LINE_MAX_ + 1];
	const char *nl;
	size_t l;

	if (http_head_end(buf, n) != 1 || (nl = memchr(buf, '\n', n)) == NULL)
		return -1;
	l = nl - buf;
	if (l > LINE_MAX_ || memchr(buf, '\0', l) != NULL)
		return -1;
	memcpy(line, buf, l);
	line[l] = '\0';
	return http_status_parse(line, code, reason, rn);
}

/* The method a SOCKS5 server chose in its 2-byte answer, or -1 if it is not SOCKS5. */
int
socks5_method_parse(const unsigned char *buf, size_t n)
{
	if (n < 2 || buf[0] != 5)
		return -1;
	return buf[1];
}

/*
 * The status of an RFC 1929 user/password answer (0 is success), or -1 if
 * malformed; version 5 is taken too, as some servers send it.
 */
int
socks5_auth_parse(const unsigned char *buf, size_t n)
{
	if (n < 2 || (buf[0] != 1 && buf[0] != 5))
		return -1;
	return buf[1];
}

/*
 * Parse a growing SOCKS5 reply: 1 when complete (rep set; a failure is
 * complete after its first 2 bytes, as nothing follows it that we need),
 * 0 when *need bytes are wanted in all, -1 when it is malformed. Never
 * asks for a byte past the reply's end.
 */
int
socks5_reply_parse(const unsigned char *buf, size_t n, int *rep, size_t *need)
{
	size_t len;

	if (n >= 1 && buf[0] != 5)
		return -1;
	if (n < 2) {
		*need = 2;
		return 0;
	}
	*rep = buf[1];
	if (buf[1] != 0)
		return 1;
	if (n < 5) {
		*need = 5;	/* enough to learn any address's length */
		return 0;
	}
	switch (buf[3]) {
	case 1:
		len = 4 + 4 + 2;
		break;
	case 3:
		len = 4 + 1 + buf[4] + 2;
		break;
	case 4:
		len = 4 + 16 + 2;
		break;
	default:
		return -1;
	}
	if (n < len) {
		*need = len;
		return 0;
	}
	return 1;
}

/* RFC 1928's text for a reply code. */
const char *
socks5_strerror(int rep)
{
	static const char *text[] = {
		"succeeded",
		"general SOCKS server failure",
		"connection not allowed by ruleset",
		"network unreachable",
		"host unreachable",
		"connection refused",
		"TTL expired",
		"command not supported",
		"address type not supported",
	};

	if (rep >= 0 && rep < (int)(sizeof(text) / sizeof(text[0])))
		return text[rep];
	return "unassigned reply code";
}

/*
 * Build a SOCKS5 CONNECT request for host (an address, or a name when
 * byname) and port into buf: its length, or -1 (a name not allowed or
 * too long, or no room).
 */
int
socks5_request(unsigned char *buf, size_t n, const char *host, int port,
    int byname)
{
	size_t hl = strlen(host), len;

	if (n < 4 + 1 + 255 + 2)
		return -1;
	buf[0] = 5;
	buf[1] = 1;	/* CONNECT */
	buf[2] = 0;
	if (inet_pton(AF_INET, host, buf + 4) == 1) {
		buf[3] = 1;
		len = 4 + 4;
	} else if (inet_pton(AF_INET6, host, buf + 4) == 1) {
		buf[3] = 4;
		len = 4 + 16;
	} else if (byname && hl > 0 && hl <= 255) {
		buf[3] = 3;
		buf[4] = (unsigned char)hl;
		memcpy(buf + 5, host, hl);
		len = 5 + hl;
	} else
		return -1;
	buf[len++] = port >> 8 & 0xff;
	buf[len++] = port & 0xff;
	return (int)len;
}

/* ---- talking to the proxy ---- */

/* errno as text for our messages: lower case, and "timeout" as race.c says it. */
static const char *
errtext(int e, char *buf, size_t n)
{
	if (e == ETIMEDOUT)
		return "timeout";
	strlcpy(buf, strerror(e), n);
	buf[0] = tolower((unsigned char)buf[0]);
	return buf;
}

/*
 * Say in why that talking to the proxy failed (r is -1 with errno, or a
 * short count at end of file), where says when ("on CONNECT ..."); returns rc.
 */
static int
io_failed(const struct proxy *px, const char *where, ssize_t r, int rc,
    char *why, size_t n)
{
	char eb[128];

	if (r >= 0)
		snprintf(why, n, "proxy %s closed the connection%s%s", px->hostport,
		    *where ? " " : "", where);
	else
		snprintf(why, n, "proxy %s: %s%s%s", px->hostport,
		    errtext(errno, eb, sizeof(eb)), *where ? " " : "", where);
	return rc;
}

/* Read an HTTP reply head a byte at a time, so that no tunnel byte is taken. */
static ssize_t
http_read_head(int fd, char *buf, long deadline, int *bad)
{
	size_t len = 0;
	ssize_t r;
	int e;

	*bad = 0;
	while ((e = http_head_end(buf, len)) == 0) {
		if ((r = io_read(fd, buf + len, 1, deadline)) != 1)
			return r;
		len++;
	}
	*bad = e == -1;
	return (ssize_t)len;
}

/* Send "CONNECT dest" with the URL's credentials, if any. */
static int
http_send_connect(int fd, const struct proxy *px, const char *dest,
    long deadline)
{
	char req[2048], cred[2 * PROXY_CRED_MAX + 2], b64[700];
	int len;

	if (px->auth) {
		snprintf(cred, sizeof(cred), "%s:%s", px->user, px->pass);
		base64_encode((unsigned char *)cred, strlen(cred), b64, sizeof(b64));
	}
	len = snprintf(req, sizeof(req), "CONNECT %s HTTP/1.1\r\nHost: %s\r\n"
	    "%s%s%s\r\n", dest, dest, px->auth ? "Proxy-Authorization: Basic " :
	    "", px->auth ? b64 : "", px->auth ? "\r\n" : "");
	explicit_bzero(cred, sizeof(cred));
	if (len < 0 || (size_t)len >= sizeof(req)) {
		errno = EMSGSIZE;
		return -1;
	}
	len = io_write(fd, req, len, deadline);
	explicit_bzero(req, sizeof(req));
	return len;
}

/* Open a tunnel to dest through an HTTP proxy on fd: 0, or PX_DEST/PX_PROXY with why. */
static int
http_connect(int fd, const struct proxy *px, const char *dest, long deadline,
    char *why, size_t n)
{
	char head[PROXY_HEAD_MAX], reason[128], eb[128], where[ADDR_STR + 256];
	ssize_t r;
	int code = 0, bad, interim;

	if (http_send_connect(fd, px, dest, deadline) == -1) {
		snprintf(why, n, "proxy %s: %s", px->hostport,
		    errtext(errno, eb, sizeof(eb)));
		return PX_PROXY;
	}
	/* A 1xx answer is interim; a few are allowed, the final one follows. */
	for (interim = 0; interim < 4; interim++) {
		if ((r = http_read_head(fd, head, deadline, &bad)) <= 0 && !bad) {
			snprintf(where, sizeof(where), "on CONNECT %s", dest);
			return io_failed(px, where, r, PX_DEST, why, n);
		}
		if (bad || http_reply_parse(head, r, &code, reason,
		    sizeof(reason)) == -1) {
			snprintf(why, n, "proxy %s: bad reply: %s", px->hostport,
			    r >= PROXY_HEAD_MAX ? "head over 8 KiB" : bad ?
			    "not HTTP" : "bad status line");
			return PX_PROXY;
		}
		if (code >= 200)
			break;
	}
	if (code >= 200 && code < 300) {
		vlog("proxy %s: CONNECT %s: %d %s", px->hostport, dest, code, reason);
		return 0;
	}
	if (code == 407) {
		snprintf(why, n, "proxy %s: proxy authentication %s: %d %s",
		    px->hostport, px->auth ? "failed" : "required, and the URL "
		    "has no user:password", code, reason);
		return PX_PROXY;
	}
	snprintf(why, n, "proxy %s refused %s: %d%s%s", px->hostport, dest, code,
	    reason[0] ? " " : "", reason);
	return code < 200 ? PX_PROXY : PX_DEST;
}

/* Greet a SOCKS5 server and log on if it asks: 0, or PX_PROXY with why. */
static int
socks5_hello(int fd, const struct proxy *px, long deadline, char *why, size_t n)
{
	unsigned char msg[3 + 2 * 256], ans[2];
	size_t ul = strlen(px->user), pl = strlen(px->pass);
	ssize_t r;
	int m;

	msg[0] = 5;
	msg[1] = px->auth ? 2 : 1;
	msg[2] = 0;		/* no authentication */
	msg[3] = 2;		/* user/password, RFC 1929 */
	if (io_write(fd, msg, px->auth ? 4 : 3, deadline) == -1)
		return io_failed(px, "", -1, PX_PROXY, why, n);
	if ((r = io_read(fd, ans, 2, deadline)) != 2)
		return io_failed(px, "in the SOCKS5 greeting", r, PX_PROXY, why, n);
	if ((m = socks5_method_parse(ans, 2)) == 0)
		return 0;
	if (m == 0xff || (m == 2 && !px->auth)) {
		snprintf(why, n, "proxy %s: no acceptable authentication method%s",
		    px->hostport, px->auth ? "" : " (the URL has no user:password)");
		return PX_PROXY;
	}
	if (m != 2) {
		snprintf(why, n, "proxy %s: bad reply: not a SOCKS5 server",
		    px->hostport);
		return PX_PROXY;
	}
	msg[0] = 1;
	msg[1] = (unsigned char)ul;
	memcpy(msg + 2, px->user, ul);
	msg[2 + ul] = (unsigned char)pl;
	memcpy(msg + 3 + ul, px->pass, pl);
	r = io_write(fd, msg, 3 + ul + pl, deadline);
	explicit_bzero(msg, sizeof(msg));
	if (r == -1)
		return io_failed(px, "", -1, PX_PROXY, why, n);
	if ((r = io_read(fd, ans, 2, deadline)) != 2)
		return io_failed(px, "in the authentication", r, PX_PROXY, why, n);
	if ((m = socks5_auth_parse(ans, 2)) != 0) {
		snprintf(why, n, "proxy %s: %s", px->hostport, m == -1 ? "bad "
		    "reply to the authentication" : "socks authentication failed");
		return PX_PROXY;
	}
	return 0;
}

/*
 * The host to put in the request: dest's own, or for socks5:// a name
 * resolved here (socks5h:// leaves names to the proxy).
 */
static int
socks5_host(const struct proxy *px, const char *dest, char *host, size_t hn,
    int *port)
{
	char ps[16];
	struct addr a;
	const char *e;

	if (addr_split(dest, host, hn, ps, sizeof(ps)) == -1)
		return -1;
	*port = strtonum(ps, 1, 65535, &e);
	if (e != NULL)
		return -1;
	if (px->scheme == PROXY_SOCKS5H || addr_numeric(dest, &a) == 0)
		return 0;
	if (addr_resolve(dest, NULL, &a, 1) != 1)
		return -1;
	addr_ip((struct sockaddr *)&a.ss, host, hn);
	return 0;
}

/* Open a tunnel to dest through a SOCKS5 server on fd: 0, or PX_DEST/PX_PROXY with why. */
static int
socks5_connect(int fd, const struct proxy *px, const char *dest, long deadline,
    char *why, size_t n)
{
	unsigned char req[4 + 1 + 255 + 2], ans[4 + 1 + 255 + 2];
	char host[256], where[ADDR_STR + 256];
	size_t got = 0, need = 2;
	ssize_t r;
	int len, port, rep = 0, p;

	if ((p = socks5_hello(fd, px, deadline, why, n)) != 0)
		return p;
	if (socks5_host(px, dest, host, sizeof(host), &port) == -1 ||
	    (len = socks5_request(req, sizeof(req), host, port,
	    px->scheme == PROXY_SOCKS5H)) == -1) {
		snprintf(why, n, "unable to resolve %s", dest);
		return PX_DEST;
	}
	if (io_write(fd, req, len, deadline) == -1)
		return io_failed(px, "", -1, PX_PROXY, why, n);
	while ((p = socks5_reply_parse(ans, got, &rep, &need)) == 0) {
		if ((r = io_read(fd, ans + got, need - got, deadline)) !=
		    (ssize_t)(need - got)) {
			snprintf(where, sizeof(where), "on CONNECT %s", dest);
			return io_failed(px, where, r, PX_DEST, why, n);
		}
		got = need;
	}
	if (p == -1) {
		snprintf(why, n, "proxy %s: bad reply: not SOCKS5", px->hostport);
		return PX_PROXY;
	}
	if (rep != 0) {
		snprintf(why, n, "proxy %s refused %s: %s", px->hostport, dest,
		    socks5_strerror(rep));
		return PX_DEST;
	}
	vlog("proxy %s: CONNECT %s: succeeded", px->hostport, dest);
	return 0;
}

/* Connect to the proxy itself within ms: the socket, or -1 with why. */
int
proxy_open(const struct proxy *px, int ms, char *why, size_t n)
{
	struct addr a[8];
	long deadline = now_ms() + ms, left;
	char eb[128];
	int na, i, fd = -1;

	if ((na = addr_resolve(px->hostport, NULL, a, 8)) <= 0) {
		snprintf(why, n, "unable to resolve proxy %s: %s", px->hostport,
		    na == 0 ? "no address" : addr_strerror(errno));
		return -1;
	}
	errno = ETIMEDOUT;
	for (i = 0; i < na && fd == -1; i++)
		if ((left = deadline - now_ms()) > 0)
			fd = dial_timeout(&a[i], (int)left);
	if (fd == -1)
		snprintf(why, n, "unable to connect to proxy %s: %s", px->hostport,
		    errtext(errno, eb, sizeof(eb)));
	return fd;
}

/*
 * Ask the proxy on fd for a tunnel to dest ("host:port") within ms: 0, or
 * PX_DEST when this destination failed (another may pass) or PX_PROXY when
 * the proxy itself failed, with why naming both. The caller closes fd.
 */
int
proxy_tunnel(int fd, const struct proxy *px, const char *dest, int ms,
    char *why, size_t n)
{
	long deadline = now_ms() + ms;

	if (!line_printable(dest) || strchr(dest, ' ') != NULL) {
		snprintf(why, n, "bad destination");
		return PX_DEST;
	}
	vlog("trying %s via proxy %s", dest, px->hostport);
	if (px->scheme == PROXY_HTTP)
		return http_connect(fd, px, dest, deadline, why, n);
	return socks5_connect(fd, px, dest, deadline, why, n);
}

/* Open a tunnel to dest through the proxy within ms: the socket, or PX_DEST/PX_PROXY with why. */
int
proxy_dial(const struct proxy *px, const char *dest, int ms, char *why,
    size_t n)
{
	long deadline = now_ms() + ms;
	int fd, r;

	if ((fd = proxy_open(px, ms, why, n)) == -1)
		return PX_PROXY;
	if ((r = proxy_tunnel(fd, px, dest, (int)(deadline - now_ms()), why,
	    n)) != 0) {
		close(fd);
		return r;
	}
	return fd;
}
