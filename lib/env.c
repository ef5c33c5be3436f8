/* Configuration from the environment, and the one logging idiom. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "p2p.h"

int verbose;

/*
 * Rungs of a ladder share one stderr: line-buffer it, so that each
 * err(3)-style message goes out in one write and lines do not mix.
 */
__attribute__((constructor)) static void
stderr_lines(void)
{
	static char buf[LINE_MAX_ * 2];

	setvbuf(stderr, buf, _IOLBF, sizeof(buf));
}

/*
 * The timeout in ms: the flag if given, else $P2P_TIMEOUT (seconds, a
 * fraction allowed), else the default. A bad P2P_TIMEOUT is a usage error,
 * as a bad -t is: a dial with a timeout nobody asked for is no answer.
 */
int
env_timeout_ms(int flag_s, int def_s)
{
	const char *s, *e;
	double d;

	if (flag_s > 0)
		return flag_s * 1000;
	if ((s = getenv("P2P_TIMEOUT")) != NULL && *s != '\0') {
		errno = 0;
		d = strtod(s, (char **)&e);
		if (strspn(s, "0123456789.") == strlen(s) && errno == 0 &&
		    *e == '\0' && d > 0 && d < 86400)
			return (int)(d * 1000);
		errx(EX_USAGE_, "bad P2P_TIMEOUT: %s (want seconds, e.g. 3)", s);
	}
	return def_s * 1000;
}

/*
 * How long to give a direct dial: the flag if given; else, when the round
 * trip to rvd is known, enough for a SYN and the handshake over a path
 * twice as long as ours, but never more than $P2P_TIMEOUT or the default. A SYN that a NAT
 * drops is never answered, so waiting longer than the path needs buys
 * nothing but delay before the next rung.
 */
int
dial_budget_ms(int flag_s, int rtt_ms)
{
	int cap = env_timeout_ms(flag_s, 3), b;

	if (flag_s > 0 || rtt_ms <= 0)
		return cap;
	/* At least 400 ms: on a short path a busy host, not the path, is slow. */
	b = 4 * rtt_ms + 200;
	if (b < 400)
		b = 400;
	return b < cap ? b : cap;
}

/* The stagger between candidates (RFC 8305 says 250 ms; less on short paths). */
int
dial_stagger_ms(int rtt_ms)
{
	int s = rtt_ms > 0 ? 2 * rtt_ms + 20 : 250;

	return s < 50 ? 50 : s > 250 ? 250 : s;
}

/* The seconds of a flag like -t (1 to max), or a usage error. */
int
arg_seconds(const char *s, int flag, int max)
{
	const char *e;
	int n = strtonum(s, 1, max, &e);

	if (e != NULL)
		errx(EX_USAGE_, "bad -%c: %s", flag, s);
	return n;
}

/* The value of an environment variable, or def when unset or empty. */
const char *
env_or(const char *name, const char *def)
{
	const char *s = getenv(name);

	return (s != NULL && *s != '\0') ? s : def;
}

/* A line on stderr only under -v, in the err(3) style. */
void
vlog(const char *fmt, ...)
{
	va_list ap;

	if (!verbose)
		return;
	va_start(ap, fmt);
	vwarnx(fmt, ap);
	va_end(ap);
}

/*
 * A daemon's one line per event; the supervisor's logger adds the time.
 * One write, so that lines stay whole on a pipe that others share too.
 */
void
logline(const char *fmt, ...)
{
	char buf[LINE_MAX_ * 2];
	va_list ap;
	int n;

	n = snprintf(buf, sizeof(buf), "%s: ", getprogname());
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	va_end(ap);
	n = strlen(buf);
	buf[n++] = '\n';
	(void)!write(2, buf, n);
}

/* Monotonic milliseconds, for deadlines that the wall clock cannot move. */
long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}
