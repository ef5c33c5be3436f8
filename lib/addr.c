/* Addresses: "host:port" and "[v6]:port", IPv4 and IPv6 alike. */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "p2p.h"

/* Split "host:port", "[v6]:port" or ":port" (host "") into its parts. */
int
addr_split(const char *s, char *host, size_t hn, char *port, size_t pn)
{
	const char *c, *h = s;
	size_t hl;

	if (*s == '[') {
		if ((c = strchr(s, ']')) == NULL || c[1] != ':')
			return -1;
		h = s + 1;
		hl = c - h;
		c++;
	} else {
		if ((c = strrchr(s, ':')) == NULL || memchr(s, ':', c - s) != NULL)
			return -1;
		hl = c - s;
	}
	if (hl >= hn || strlen(c + 1) >= pn || c[1] == '\0')
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	strlcpy(port, c + 1, pn);
	return 0;
}

/* Parse a numeric "ip:port" with no name lookup. */
int
addr_numeric(const char *s, struct addr *a)
{
	char host[ADDR_STR], port[8], *e;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&a->ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->ss;
	long p;

	if (addr_split(s, host, sizeof(host), port, sizeof(port)) == -1)
		return -1;
	/* Digits only, no sign, space or leading zero: one spelling per port. */
	if (port[0] < '1' || port[0] > '9' || strspn(port, "0123456789") !=
	    strlen(port))
		return -1;
	p = strtol(port, &e, 10);
	if (*e != '\0' || p < 1 || p > 65535)
		return -1;
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(p);
		a->len = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(p);
		a->len = sizeof(*s6);
		return 0;
	}
	return -1;
}

/* Why the last failed lookup failed, for addr_strerror; empty after a success. */
static char lookup_why[256];
static int lookup_errno;

/*
 * Note why s could not be looked up (gai the resolver's error, 0 for a
 * word that is no host:port) and set errno to the nearest errno, which is
 * all that callers printing strerror(errno) can show: -1.
 */
static int
lookup_failed(const char *s, int gai)
{
	int e = errno;

	if (gai == 0) {
		snprintf(lookup_why, sizeof(lookup_why), "%.200s: not host:port", s);
		e = EINVAL;
	} else if (gai == EAI_SYSTEM) {
		snprintf(lookup_why, sizeof(lookup_why), "%s", strerror(e));
	} else {
		snprintf(lookup_why, sizeof(lookup_why), "%s", gai_strerror(gai));
		e = gai == EAI_AGAIN ? EAGAIN : gai == EAI_MEMORY ? ENOMEM : ENXIO;
	}
	errno = lookup_errno = e;
	return -1;
}

/*
 * strerror(e), except right after a failed name lookup left e in errno:
 * then the resolver's own words ("Name or service not known"), which no
 * errno can say.
 */
const char *
addr_strerror(int e)
{
	if (lookup_why[0] != '\0' && e == lookup_errno)
		return lookup_why;
	return strerror(e);
}

/* Resolve "host:port" (host empty means defhost) into at most max addresses. */
int
addr_resolve(const char *s, const char *defhost, struct addr *out, int max)
{
	char host[256], port[32];
	struct addrinfo hints, *res, *ai;
	int n = 0, e;

	if (addr_split(s, host, sizeof(host), port, sizeof(port)) == -1) {
		/* A bare port is allowed, as in "rvd 7070". */
		if (strspn(s, "0123456789") != strlen(s) || *s == '\0')
			return lookup_failed(s, 0);
		host[0] = '\0';
		strlcpy(port, s, sizeof(port));
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (host[0] == '\0' && defhost == NULL)
		hints.ai_flags |= AI_PASSIVE;
	if ((e = getaddrinfo(host[0] ? host : defhost, port, &hints, &res)) != 0)
		return lookup_failed(s, e);
	lookup_why[0] = '\0';
	for (ai = res; ai != NULL && n < max; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof(out[n].ss))
			continue;
		memcpy(&out[n].ss, ai->ai_addr, ai->ai_addrlen);
		out[n].len = ai->ai_addrlen;
		n++;
	}
	freeaddrinfo(res);
	return n;
}

/* The IP of sa as text, with v4-mapped v6 shown as plain v4. */
char *
addr_ip(const struct sockaddr *sa, char *buf, size_t n)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		    buf, n);
	else if (sa->sa_family == AF_INET6 &&
	    IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
		inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], buf, n);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &s6->sin6_addr, buf, n);
	else
		strlcpy(buf, "?", n);
	return buf;
}

/* The port of sa, in host order. */
int
addr_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return 0;
}

/* Set the port of sa. */
void
addr_setport(struct sockaddr *sa, int port)
{
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)sa)->sin_port = htons(port);
	else if (sa->sa_family == AF_INET6)
		((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
}

/* sa as "ip:port" or "[ip6]:port". */
char *
addr_fmt(const struct sockaddr *sa, char *buf, size_t n)
{
	char ip[INET6_ADDRSTRLEN];
	int v6;

	addr_ip(sa, ip, sizeof(ip));
	v6 = strchr(ip, ':') != NULL;
	snprintf(buf, n, "%s%s%s:%d", v6 ? "[" : "", ip, v6 ? "]" : "",
	    addr_port(sa));
	return buf;
}

/* The address at the other end of fd, as text ("?" if unknown). */
char *
fd_peername(int fd, char *buf, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *)&ss, &len) == -1) {
		strlcpy(buf, "?", n);
		return buf;
	}
	return addr_fmt((struct sockaddr *)&ss, buf, n);
}

/* The address of our end of fd, as text. */
char *
fd_sockname(int fd, char *buf, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1) {
		strlcpy(buf, "?", n);
		return buf;
	}
	return addr_fmt((struct sockaddr *)&ss, buf, n);
}

/* This host's own addresses with port, best first: IPv4, then global IPv6. */
int
addr_locals(int port, char out[][ADDR_STR], int max)
{
	struct ifaddrs *ifa, *i;
	struct sockaddr_storage ss;
	int n = 0, pass;

	if (getifaddrs(&ifa) == -1)
		return 0;
	for (pass = 0; pass < 2; pass++)
		for (i = ifa; i != NULL && n < max; i = i->ifa_next) {
			if (i->ifa_addr == NULL || (i->ifa_flags & IFF_LOOPBACK) ||
			    !(i->ifa_flags & IFF_UP))
				continue;
			if (i->ifa_addr->sa_family != (pass ? AF_INET6 : AF_INET))
				continue;
			if (pass && IN6_IS_ADDR_LINKLOCAL(
			    &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr))
				continue;
			memcpy(&ss, i->ifa_addr, pass ?
			    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
			addr_setport((struct sockaddr *)&ss, port);
			addr_fmt((struct sockaddr *)&ss, out[n++], ADDR_STR);
		}
	freeifaddrs(ifa);
	return n;
}

/*
 * Our candidates for a listener on port: this host's addresses, then the
 * address rvd observed us at with the same port (right when a NAT keeps
 * ports, or a router forwards it). Duplicates are dropped.
 */
int
addr_candidates(int port, const char *observed, char out[][ADDR_STR], int max)
{
	char pub[ADDR_STR];
	int n;

	n = addr_locals(port, out, max);
	if (observed != NULL && addr_withport(observed, port, pub,
	    sizeof(pub)) == 0)
		n = addrs_add(out, n, max, pub);
	return n;
}

/* Whether s names a host and a numeric port, so that it is no program. */
int
addr_is_hostport(const char *s)
{
	char host[256], port[16];

	return addr_split(s, host, sizeof(host), port, sizeof(port)) == 0 &&
	    strspn(port, "0123456789") == strlen(port);
}

#define LETTERS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

/*
 * Whether "host port", two words, is nc's way of writing host:port: the
 * port a number, the host an IP address, "localhost" or a dotted name that
 * ends in letters (a program's name rarely does). out gets the one word.
 */
int
addr_nc_words(const char *host, const char *port, char *out, size_t n)
{
	unsigned char buf[sizeof(struct in6_addr)];
	const char *e, *tld = strrchr(host, '.');

	strtonum(port, 1, 65535, &e);
	if (e != NULL)
		return 0;
	if (inet_pton(AF_INET6, host, buf) == 1)
		snprintf(out, n, "[%s]:%s", host, port);
	else if (inet_pton(AF_INET, host, buf) == 1 ||
	    strcmp(host, "localhost") == 0 || (tld != NULL && tld[1] != '\0' &&
	    strspn(tld + 1, LETTERS) == strlen(tld + 1) &&
	    strspn(host, LETTERS "0123456789.-") == strlen(host)))
		snprintf(out, n, "%s:%s", host, port);
	else
		return 0;
	return 1;
}

/* A usage error for "HOST PORT" where a tool takes HOST:PORT or a program. */
void
arg_nc_habit(int argc, char *argv[])
{
	char one[HOSTPORT_MAX];

	if (argc > 1 && !addr_is_hostport(argv[0]) &&
	    addr_nc_words(argv[0], argv[1], one, sizeof(one)))
		errx(EX_USAGE_, "%s %s: HOST:PORT is one word: %s", argv[0],
		    argv[1], one);
}
