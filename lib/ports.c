/*
 * Extra ports: a peer that listens on ports firewalls leave open (443, 80)
 * says so with "port" lines; dialport and dialproxy move its addresses there.
 */
#include <stdlib.h>
#include <string.h>

#include "p2p.h"

/* Parse a comma-separated list of ports ("443,80"): how many, or -1. */
int
ports_parse(const char *s, int *out, int max)
{
	char buf[256], *p, *tok;
	const char *e;
	int n = 0;

	if (strlcpy(buf, s, sizeof(buf)) >= sizeof(buf))
		return -1;
	for (p = buf; (tok = strsep(&p, ",")) != NULL;) {
		if (n >= max)
			return -1;
		out[n++] = strtonum(tok, 1, 65535, &e);
		if (e != NULL)
			return -1;
	}
	return n;
}

/* Whether the ticket says the peer listens on port. */
int
ticket_hasport(const struct ticket *t, int port)
{
	int i;

	for (i = 0; i < t->nport; i++)
		if (t->port[i] == port)
			return 1;
	return 0;
}

/* The numeric address a with its port replaced: 0, or -1 if a is no address. */
int
addr_withport(const char *a, int port, char *out, size_t n)
{
	struct addr x;

	if (addr_numeric(a, &x) == -1)
		return -1;
	addr_setport((struct sockaddr *)&x.ss, port);
	addr_fmt((struct sockaddr *)&x.ss, out, n);
	return 0;
}

/* Append a to list[n] unless it is there already or the list is full: the new n. */
int
addrs_add(char list[][ADDR_STR], int n, int max, const char *a)
{
	int i;

	for (i = 0; i < n; i++)
		if (strcmp(list[i], a) == 0)
			return n;
	if (n < max)
		strlcpy(list[n++], a, ADDR_STR);
	return n;
}

/* Every ticket address moved to port, without duplicates: how many. */
int
addrs_onport(const struct ticket *t, int port, char out[][ADDR_STR], int max)
{
	char a[ADDR_STR];
	int i, n = 0;

	for (i = 0; i < t->naddr; i++)
		if (addr_withport(t->addr[i], port, a, sizeof(a)) == 0)
			n = addrs_add(out, n, max, a);
	return n;
}
