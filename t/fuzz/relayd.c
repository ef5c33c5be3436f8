/*
 * Fuzz relayd as it runs: its own code (cmd/relayd/main.c, included here
 * with its main renamed) with its real epoll loop, fed by clients made of
 * socket pairs. The input is one or more clients' bytes separated by
 * "\n--\n"; "$SID" in a client's bytes stands for the id of the session
 * the last NEW got, so that JOIN can find it. A client whose bytes start
 * with "!" (dropped) shuts its side for writing after them; the others stay
 * connected and silent, as a slow client does. After the clients have been
 * served, every deadline is made to pass and every session is closed: the
 * leak checker then sees anything relayd forgot.
 */
#include "fuzz.h"

#define main relayd_main
/* -DRELAYD_MAIN='"FILE"' fuzzes another copy, e.g. one with a fix to try. */
#ifndef RELAYD_MAIN
#define RELAYD_MAIN "../../cmd/relayd/main.c"
#endif
#include RELAYD_MAIN
#undef main

#define CLIENTS 16

struct client {
	int fd;			/* our end */
	char got[8192];		/* what relayd sent us */
	size_t ngot;
};

/* Run relayd's loop until nothing happens. */
static void
spin(void)
{
	struct epoll_event ev[64];
	int i, n, rounds;

	for (rounds = 0; rounds < 200; rounds++) {
		if ((n = epoll_wait(ep, ev, 64, 0)) <= 0)
			break;
		for (i = 0; i < n; i++)
			on_event(&ev[i]);
		grave_empty();
	}
}

/* Read what relayd has sent c so far. */
static void
collect(struct client *c)
{
	c->ngot += fuzz_drain(c->fd, c->got + c->ngot, sizeof(c->got) - 1 - c->ngot);
	c->got[c->ngot] = '\0';
}

/* The bytes of one client with "$SID" replaced by sid. */
static size_t
expand(const uint8_t *p, size_t n, const char *sid, char *out, size_t on)
{
	size_t i, o = 0;

	for (i = 0; i < n && o + ID_HEX < on; i++) {
		if (n - i >= 4 && memcmp(p + i, "$SID", 4) == 0) {
			memcpy(out + o, sid, ID_HEX);
			o += ID_HEX;
			i += 3;
		} else
			out[o++] = p[i];
	}
	return o;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct client cl[CLIENTS];
	static int ready;
	char sid[ID_HEX + 1], buf[8192 + 64];
	const uint8_t *p = data, *end = data + size, *sep;
	size_t n, i;
	int nc = 0, sv[2], drop;

	fuzz_quiet();
	if (!ready) {
		htab_init();
		if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
			abort();
		ready = 1;
	}
	memset(sid, '0', ID_HEX);
	sid[ID_HEX] = '\0';
	while (p <= end && nc < CLIENTS) {
		sep = memmem(p, end - p, "\n--\n", 4);
		n = (sep ? sep + 1 : end) - p;	/* the separator's newline ends the line */
		drop = n > 0 && *p == '!';
		n = expand(p + drop, n - drop, sid, buf, sizeof(buf));
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0, sv) == -1)
			abort();
		cl[nc].fd = sv[1];
		cl[nc].ngot = 0;
		if (n > 0 && write(sv[1], buf, n) != (ssize_t)n)
			abort();
		if (drop)
			shutdown(sv[1], SHUT_WR);
		pend_add(sv[0]);
		spin();
		collect(&cl[nc]);
		if (strncmp(cl[nc].got, "SESSION ", 8) == 0 &&
		    cl[nc].ngot >= 8 + ID_HEX + 1 && cl[nc].got[8 + ID_HEX] == '\n')
			memcpy(sid, cl[nc].got + 8, ID_HEX);
		nc++;
		if (sep == NULL)
			break;
		p = sep + 4;
	}
	/* Let every deadline pass; then end what is left, as SIGTERM would
	 * not (it lets spliced sessions run), so that nothing is left over. */
	expire(now_ms() + 86400000L);
	spin();
	for (i = 0; i <= hmask; i++)
		while (htab[i] != NULL)
			sess_close(htab[i], 0);
	grave_empty();
	CHECK(npend == 0 && nsess == 0 && npaired == 0);
	CHECK(TAILQ_EMPTY(&pending) && TAILQ_EMPTY(&waiting));
	for (i = 0; i < (size_t)nc; i++) {
		collect(&cl[i]);
		/* relayd says one of these first, whatever it was sent. */
		CHECK(cl[i].ngot == 0 || strncmp(cl[i].got, "SESSION ", 8) == 0 ||
		    strncmp(cl[i].got, "OK\n", 3) == 0 ||
		    strncmp(cl[i].got, "ERR ", 4) == 0);
		close(cl[i].fd);
	}
	return 0;
}
