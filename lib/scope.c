/*
 * Which candidates a peer may make us dial. A candidate comes from the
 * network, and the dial sends our session's line to it: given loopback,
 * an unspecified or a link-local address, an inviter could aim our dials
 * at our own host's services or our link's, or use us to scan them.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "p2p.h"

/* The IPv4 address of a, or of an IPv4-mapped IPv6 a, in host order; -1 if none. */
static int
addr_v4(const struct addr *a, uint32_t *ip)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->ss;

	if (a->ss.ss_family == AF_INET) {
		*ip = ntohl(((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr);
		return 0;
	}
	if (!IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
		return -1;
	memcpy(ip, s6->sin6_addr.s6_addr + 12, 4);
	*ip = ntohl(*ip);
	return 0;
}

/*
 * What kind of candidate s is: SCOPE_BAD (no numeric address, or none a
 * TCP dial could reach: multicast, broadcast, IPv4-compatible),
 * SCOPE_LOCAL (loopback, unspecified or link-local: this host or its
 * link), else SCOPE_PEER. why, when not NULL, names the kind.
 */
int
addr_scope(const char *s, const char **why)
{
	const char *dummy;
	struct addr a;
	const struct in6_addr *in6;
	uint32_t ip;

	if (why == NULL)
		why = &dummy;
	*why = "not a numeric address";
	if (addr_numeric(s, &a) == -1)
		return SCOPE_BAD;
	if (addr_v4(&a, &ip) == 0) {
		*why = "loopback";
		if (ip >> 24 == 127)
			return SCOPE_LOCAL;
		*why = "unspecified";
		if (ip >> 24 == 0)
			return SCOPE_LOCAL;
		*why = "link-local";
		if (ip >> 16 == (169 << 8 | 254))
			return SCOPE_LOCAL;
		*why = "multicast or reserved";
		if (ip >> 28 >= 14)
			return SCOPE_BAD;
		*why = "";
		return SCOPE_PEER;
	}
	in6 = &((const struct sockaddr_in6 *)&a.ss)->sin6_addr;
	*why = "loopback";
	if (IN6_IS_ADDR_LOOPBACK(in6))
		return SCOPE_LOCAL;
	*why = "unspecified";
	if (IN6_IS_ADDR_UNSPECIFIED(in6))
		return SCOPE_LOCAL;
	*why = "link-local";
	if (IN6_IS_ADDR_LINKLOCAL(in6))
		return SCOPE_LOCAL;
	*why = "multicast";
	if (IN6_IS_ADDR_MULTICAST(in6))
		return SCOPE_BAD;
	*why = "IPv4-compatible";
	if (IN6_IS_ADDR_V4COMPAT(in6))
		return SCOPE_BAD;
	*why = "";
	return SCOPE_PEER;
}
