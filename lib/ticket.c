/* Tickets: "key value" lines ended by a blank line, passed through pipes. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

/* Fill err with one reason and return -1, for ticket_read. */
static int
bad(char *err, size_t errn, const char *why, const char *key)
{
	snprintf(err, errn, "malformed ticket: %s%s%s", why, key ? ": " : "",
	    key ? key : "");
	return -1;
}

/* Add a candidate address unless it is already there; -1 if it is no address. */
int
ticket_addaddr(struct ticket *t, const char *a)
{
	struct addr x;
	int i;

	if (strlen(a) >= ADDR_STR || addr_numeric(a, &x) == -1)
		return -1;
	for (i = 0; i < t->naddr; i++)
		if (strcmp(t->addr[i], a) == 0)
			return 0;
	if (t->naddr < TICKET_ADDRS)
		strlcpy(t->addr[t->naddr++], a, ADDR_STR);
	return 0;
}

/* Take one "key value" line into t. */
static int
ticket_line(struct ticket *t, char *line, char *err, size_t errn)
{
	char *v = strchr(line, ' '), *e;
	long p;

	if (v == NULL)
		return bad(err, errn, "no value", line);
	*v++ = '\0';
	if (strcmp(line, "peer") == 0) {
		if (!name_valid(v))
			return bad(err, errn, "bad peer name", v);
		strlcpy(t->peer, v, sizeof(t->peer));
	} else if (strcmp(line, "rv") == 0) {
		/* One or more host:port words, as $P2P_RVD has them. */
		if (strlen(v) >= sizeof(t->rv) ||
		    relays_parse(v, (char (*)[HOSTPORT_MAX])NULL, 0) <= 0)
			return bad(err, errn, "bad address", v);
		strlcpy(t->rv, v, sizeof(t->rv));
	} else if (strcmp(line, "relay") == 0) {
		if (!addr_is_hostport(v) || strlen(v) >= sizeof(t->relay[0]))
			return bad(err, errn, "bad address", v);
		if (t->nrelay < RV_RELAYS)
			strlcpy(t->relay[t->nrelay++], v, sizeof(t->relay[0]));
	} else if (strcmp(line, "id") == 0 || strcmp(line, "token") == 0) {
		if (!hex_valid(v, ID_HEX))
			return bad(err, errn, "bad hex", line);
		strlcpy(line[0] == 'i' ? t->id : t->token, v, ID_HEX + 1);
	} else if (strcmp(line, "addr") == 0) {
		if (ticket_addaddr(t, v) == -1)
			return bad(err, errn, "bad address", v);
	} else if (strcmp(line, "port") == 0) {
		p = strtol(v, &e, 10);
		if (*e != '\0' || p < 1 || p > 65535)
			return bad(err, errn, "bad port", v);
		if (t->nport < TICKET_PORTS)
			t->port[t->nport++] = (int)p;
	} else if (strcmp(line, "rtt") == 0) {
		p = strtol(v, &e, 10);
		if (*e != '\0' || p < 0 || p > 600000)
			return bad(err, errn, "bad rtt", v);
		t->rtt = (int)p;
	} else if (strcmp(line, "tried") == 0) {
		if (t->ntried < TICKET_TRIED)
			strlcpy(t->tried[t->ntried++], v, sizeof(t->tried[0]));
	} else
		return bad(err, errn, "unknown key", line);
	return 0;
}

/*
 * Read one ticket from f: 1 when read, 0 at end of file with no ticket
 * (an earlier stage connected), -1 when malformed, with err set.
 */
int
ticket_read(FILE *f, struct ticket *t, char *err, size_t errn)
{
	char line[LINE_MAX_ + 2];
	int got = 0;
	size_t l;

	memset(t, 0, sizeof(*t));
	/* What follows the ticket stays unread, for ticket_await and dial_race. */
	setvbuf(f, NULL, _IONBF, 0);
	while (fgets(line, sizeof(line), f) != NULL) {
		l = strlen(line);
		if (l == 0 || line[l - 1] != '\n') {
			if (l > LINE_MAX_)
				return bad(err, errn, "line too long", NULL);
			return bad(err, errn, "no blank line at its end", NULL);
		}
		line[--l] = '\0';
		if (l == 0) {
			if (got)
				break;
			continue;
		}
		if (!line_printable(line))
			return bad(err, errn, "bad byte", NULL);
		if (ticket_line(t, line, err, errn) == -1)
			return -1;
		got = 1;
	}
	if (ferror(f)) {
		snprintf(err, errn, "read ticket: %s", strerror(errno));
		return -1;
	}
	if (!got)
		return 0;
	t->from = f;
	if (t->peer[0] == '\0' && t->naddr == 0)
		return bad(err, errn, "neither peer nor addr", NULL);
	if ((t->id[0] == '\0') != (t->token[0] == '\0'))
		return bad(err, errn, "id without token", NULL);
	return 1;
}

/* Write t to f with its blank line, and flush: the next stage is waiting. */
int
ticket_write(FILE *f, const struct ticket *t)
{
	int i;

	if (t->peer[0])
		fprintf(f, "peer %s\n", t->peer);
	if (t->rv[0])
		fprintf(f, "rv %s\n", t->rv);
	for (i = 0; i < t->nrelay; i++)
		fprintf(f, "relay %s\n", t->relay[i]);
	if (t->id[0])
		fprintf(f, "id %s\ntoken %s\n", t->id, t->token);
	for (i = 0; i < t->naddr; i++)
		fprintf(f, "addr %s\n", t->addr[i]);
	for (i = 0; i < t->nport; i++)
		fprintf(f, "port %d\n", t->port[i]);
	if (t->rtt > 0)
		fprintf(f, "rtt %d\n", t->rtt);
	for (i = 0; i < t->ntried; i++)
		fprintf(f, "tried %s\n", t->tried[i]);
	fputc('\n', f);
	return fflush(f) == EOF ? -1 : 0;
}

/* Add a "tried" line saying what a stage did and why it failed. */
void
ticket_tried(struct ticket *t, const char *fmt, ...)
{
	char buf[LINE_MAX_ - 8], *p;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	for (p = buf; *p != '\0'; p++)
		if (*p < ' ' || *p > '~')
			*p = '?';
	if (t->ntried < TICKET_TRIED)
		strlcpy(t->tried[t->ntried++], buf, sizeof(t->tried[0]));
}

/* Forget t's "tried" lines; a ticket owns no other memory. */
void
ticket_free(struct ticket *t)
{
	t->ntried = 0;
}

/*
 * Pass the ticket on while we go on trying, so that the next rung starts
 * beside us; our late failure follows it as "tried" lines (ticket_pass).
 */
void
ticket_handoff(struct ticket *t, const char *stage)
{
	if (t->handed)
		return;
	vlog("passing the ticket on: the next rung starts beside us");
	/* The mark that a block of late lines will follow, unless we connect. */
	ticket_tried(t, "%s racing on", stage);
	if (ticket_write(stdout, t) == -1)
		warn("write ticket");
	t->handed = t->ntried + 1;
}


/*
 * Say, after a ticket we passed on early, that we connected after all:
 * the rungs after us then have nothing to do. (A rung that just dies
 * says nothing, and they go on.)
 */
void
ticket_connected(struct ticket *t, const char *stage)
{
	if (!t->handed)
		return;
	printf("connected %s\n\n", stage);
	fflush(stdout);
}

/*
 * Wait for the rungs before us to end (a rung that handed us the ticket
 * early ends its output when it is done), for at most twice P2P_TIMEOUT,
 * and add the lines they wrote after the ticket. 0 when one of them said
 * it connected after all.
 */
int
ticket_await(FILE *f, struct ticket *t)
{
	struct pollfd p = { .fd = fileno(f), .events = POLLIN };
	char line[LINE_MAX_ + 2];
	long deadline = now_ms() + 2L * env_timeout_ms(0, 3), left;

	/* Someone at a terminal typed the ticket: no rung before us. */
	if (isatty(p.fd))
		return 1;
	for (;;) {
		if ((left = deadline - now_ms()) <= 0 || poll(&p, 1, (int)left) <= 0) {
			vlog("the rung before us is still at it: going on");
			return 1;
		}
		if (fgets(line, sizeof(line), f) == NULL)
			return !t->upconnected;
		line[strcspn(line, "\n")] = '\0';
		if (line_printable(line))
			ticket_late(t, line);
	}
}

/*
 * A rung's late "tried" line takes the place of its "racing on" mark --
 * unless we passed the mark on already: then it goes on after our ticket,
 * for the next rung to put in the mark's place.
 */
static void
ticket_tried_late(struct ticket *t, const char *v)
{
	char mark[LINE_MAX_];
	int i;

	snprintf(mark, sizeof(mark), "%.*s racing on", (int)strcspn(v, " "), v);
	for (i = t->handed ? t->handed - 1 : 0; i < t->ntried; i++)
		if (strcmp(t->tried[i], mark) == 0) {
			strlcpy(t->tried[i], v, sizeof(t->tried[0]));
			return;
		}
	if (t->ntried < TICKET_TRIED)
		strlcpy(t->tried[t->ntried++], v, sizeof(t->tried[0]));
}

/*
 * Take one line that a rung before us wrote after the ticket: a candidate
 * or an extra port it learnt late ("addr", "port"), or why it failed
 * ("tried"); 1 for a new address.
 */
int
ticket_late(struct ticket *t, const char *line)
{
	const char *e;
	int n = t->naddr, p;

	if (strncmp(line, "connected ", 10) == 0) {
		t->upconnected = 1;
		return 0;
	}
	if (strncmp(line, "addr ", 5) == 0)
		return ticket_addaddr(t, line + 5) == 0 && t->naddr > n;
	if (strncmp(line, "port ", 5) == 0) {
		p = strtonum(line + 5, 1, 65535, &e);
		if (e == NULL && !ticket_hasport(t, p) && t->nport < TICKET_PORTS)
			t->port[t->nport++] = p;
		return 0;
	}
	if (strncmp(line, "tried ", 6) == 0)
		ticket_tried_late(t, line + 6);
	return 0;
}

/*
 * Record why stage failed and pass the ticket on to the next rung, once
 * the rungs before us have ended; when it went on early, only the tried
 * lines since then follow it. Returns the exit status for "not connected".
 */
int
ticket_pass(struct ticket *t, const char *stage, const char *why)
{
	int i;

	if (t->from != NULL && !ticket_await(t->from, t)) {
		vlog("a rung before us connected: nothing to pass on");
		return EX_CONNECTED;
	}
	vlog("unable to connect to %s: %s", t->peer[0] ? t->peer : "peer", why);
	ticket_tried(t, "%s %s", stage, why);
	if (!t->handed) {
		if (ticket_write(stdout, t) == -1)
			err(EX_SYSTEM, "write ticket");
		return EX_NOTCONN;
	}
	for (i = t->handed - 1; i < t->ntried; i++)
		printf("tried %s\n", t->tried[i]);
	if (printf("\n") < 0 || fflush(stdout) == EOF)
		err(EX_SYSTEM, "write ticket");
	return EX_NOTCONN;
}
