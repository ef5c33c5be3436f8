/* Parsing what a client says to rvd: one line into one checked command. */
#include <string.h>

#include "p2p.h"

/* Fail the parse of c with why. */
static int
bad(struct rvcmd *c, const char *why)
{
	c->verb = RV_BAD;
	c->why = why;
	return -1;
}

/*
 * Whether each of w[0..n) is a numeric candidate address, or (ports) a
 * :PORT written plainly (no sign, no leading zero): rvd's lines and the
 * front ends' messages alike.
 */
int
cand_words_ok(char **w, int n, int ports)
{
	struct addr a;
	const char *e;
	int i;

	for (i = 0; i < n; i++)
		if (ports && w[i][0] == ':') {
			strtonum(w[i] + 1, 1, 65535, &e);
			if (e != NULL || w[i][1] == '0' || w[i][1] == '+')
				return 0;
		} else if (strlen(w[i]) >= ADDR_STR ||
		    addr_numeric(w[i], &a) == -1)
			return 0;
	return 1;
}

/* Parse LOGON/LISTEN name [secret]. */
static int
parse_logon(struct rvcmd *c, char **w, int n)
{
	if (n < 2 || n > 3 || !name_valid(w[1]))
		return bad(c, "bad name");
	c->name = w[1];
	c->secret = n == 3 ? w[2] : NULL;
	return 0;
}

/* Parse INVITE peer id token addr... */
static int
parse_invite(struct rvcmd *c, char **w, int n)
{
	if (n < 4 || n - 4 > TICKET_ADDRS || !name_valid(w[1]) ||
	    !hex_valid(w[2], ID_HEX) || !hex_valid(w[3], ID_HEX) ||
	    !cand_words_ok(w + 4, n - 4, 0))
		return bad(c, "bad INVITE");
	c->name = w[1];
	c->id = w[2];
	c->token = w[3];
	c->addrs = w + 4;
	c->naddr = n - 4;
	return 0;
}

/* Parse ADDR word...: a listener's standing candidates and :PORTs. */
static int
parse_addr(struct rvcmd *c, char **w, int n)
{
	if (n - 1 > TICKET_ADDRS + TICKET_PORTS || !cand_words_ok(w + 1, n - 1, 1))
		return bad(c, "bad ADDR");
	c->addrs = w + 1;
	c->naddr = n - 1;
	return 0;
}

/* Parse MSG id word... */
static int
parse_msg(struct rvcmd *c, char **w, int n)
{
	if (n < 3 || !hex_valid(w[1], ID_HEX))
		return bad(c, "bad MSG");
	c->id = w[1];
	c->words = w + 2;
	c->nwords = n - 2;
	return 0;
}

/* Parse RELAY peer sid relayaddr [plain]. */
static int
parse_relay(struct rvcmd *c, char **w, int n)
{
	if ((c->plain = words_flag(w, n, 4, "plain")) == -1 ||
	    !name_valid(w[1]) || !hex_valid(w[2], ID_HEX) ||
	    strlen(w[3]) >= ADDR_STR + 192)
		return bad(c, "bad RELAY");
	c->name = w[1];
	c->id = w[2];
	c->relay = w[3];
	return 0;
}

/*
 * Parse PUNCH id localaddr [now]: the sender's end of the connection it
 * sends on, and whether it fires at once (it punched last time).
 */
static int
parse_punch(struct rvcmd *c, char **w, int n)
{
	if ((c->now = words_flag(w, n, 3, "now")) == -1 ||
	    !hex_valid(w[1], ID_HEX) || !cand_words_ok(w + 2, 1, 0))
		return bad(c, "bad PUNCH");
	c->id = w[1];
	c->addrs = w + 2;
	c->naddr = 1;
	return 0;
}

/*
 * Parse one line from a client, in place: 0 with c filled in, or -1 with
 * c->verb RV_BAD and c->why saying what is wrong. c points into line.
 */
int
rvcmd_parse(char *line, struct rvcmd *c)
{
	static const struct {
		const char *name;
		int verb;
	} verbs[] = {
		{ "LOGON", RV_LOGON }, { "LISTEN", RV_LISTEN },
		{ "INVITE", RV_INVITE }, { "MSG", RV_MSG }, { "RELAY", RV_RELAY },
		{ "ADDR", RV_ADDR }, { "PUNCH", RV_PUNCH },
		{ "PING", RV_PING }, { "PONG", RV_PONG }, { "QUIT", RV_QUIT },
	};
	size_t i;
	int n;

	memset(c, 0, sizeof(*c));
	if ((n = line_words(line, c->w, RV_WORDS)) <= 0)
		return bad(c, n == 0 ? "empty line" : "too many words");
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strcmp(c->w[0], verbs[i].name) == 0)
			c->verb = verbs[i].verb;
	switch (c->verb) {
	case RV_LOGON:
	case RV_LISTEN:
		return parse_logon(c, c->w, n);
	case RV_INVITE:
		return parse_invite(c, c->w, n);
	case RV_MSG:
		return parse_msg(c, c->w, n);
	case RV_RELAY:
		return parse_relay(c, c->w, n);
	case RV_ADDR:
		return parse_addr(c, c->w, n);
	case RV_PUNCH:
		return parse_punch(c, c->w, n);
	case RV_PING:
	case RV_PONG:
	case RV_QUIT:
		return n == 1 ? 0 : bad(c, "unexpected words");
	}
	return bad(c, "unknown command");
}

/* Join n words with single spaces into buf. */
char *
words_join(char **w, int n, char *buf, size_t size)
{
	int i;

	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		if (i > 0)
			strlcat(buf, " ", size);
		strlcat(buf, w[i], size);
	}
	return buf;
}
