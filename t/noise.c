/*
 * t/noise: runs lib/noise.c against the published Noise test vectors, for
 * t/seal.bats. Both ends are played from the vector's keys; every message
 * must come out byte for byte, and every one must read back.
 *
 *   noise FILE        run every vector in FILE; one line each; exit 0 when all pass
 *   noise -f FILE     the same, but flip one bit of each message before it is
 *                     read: every read must then fail (exit 0 when each does)
 *
 * Exit 1 when a vector fails, 2 when the file is malformed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "p2p.h"

#define FIELD 1024	/* longest hex field we take, in bytes */

struct vec {
	char proto[128];
	unsigned char prologue[FIELD], is[32], ie[32], irs[32], rs[32], re[32];
	unsigned char hash[64];
	size_t pn;
	int has_irs, has_hash, line;
	struct { unsigned char p[FIELD], c[FIELD]; size_t pn, cn; } m[16];
	int nm;
};

/* Hex (or "-", empty) into out: its length, or -1. */
static long
unhex(const char *s, unsigned char *out, size_t max)
{
	size_t n = 0;
	unsigned int b;

	if (strcmp(s, "-") == 0)
		return 0;
	for (; s[0] != '\0'; s += 2) {
		if (s[1] == '\0' || n == max || sscanf(s, "%2x", &b) != 1)
			return -1;
		out[n++] = (unsigned char)b;
	}
	return (long)n;
}

/* Read one vector; 1, 0 at end of file. Exits 2 on a malformed file. */
static int
vec_read(FILE *f, struct vec *v, int *lineno)
{
	char line[4 * FIELD + 64], *k, *a, *b;
	long n;

	memset(v, 0, sizeof(*v));
	while (fgets(line, sizeof(line), f) != NULL) {
		++*lineno;
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		k = strtok(line, " ");
		a = strtok(NULL, " ");
		b = strtok(NULL, " ");
		if (strcmp(k, "end") == 0)
			return 1;
		n = 0;
		if (a == NULL)
			n = -1;
		else if (strcmp(k, "protocol") == 0) {
			v->line = *lineno;
			snprintf(v->proto, sizeof(v->proto), "%s", a);
		} else if (strcmp(k, "prologue") == 0)
			v->pn = n = unhex(a, v->prologue, FIELD);
		else if (strcmp(k, "init_static") == 0)
			n = unhex(a, v->is, 32) == 32 ? 0 : -1;
		else if (strcmp(k, "init_ephemeral") == 0)
			n = unhex(a, v->ie, 32) == 32 ? 0 : -1;
		else if (strcmp(k, "init_remote_static") == 0)
			n = unhex(a, v->irs, 32) == 32 ? 0 : -1, v->has_irs = 1;
		else if (strcmp(k, "resp_static") == 0)
			n = unhex(a, v->rs, 32) == 32 ? 0 : -1;
		else if (strcmp(k, "resp_ephemeral") == 0)
			n = unhex(a, v->re, 32) == 32 ? 0 : -1;
		else if (strcmp(k, "handshake_hash") == 0)
			n = unhex(a, v->hash, 64) == 64 ? 0 : -1, v->has_hash = 1;
		else if (strcmp(k, "msg") == 0 && b != NULL && v->nm < 16) {
			n = unhex(a, v->m[v->nm].p, FIELD);
			v->m[v->nm].pn = n;
			if (n >= 0)
				n = unhex(b, v->m[v->nm].c, FIELD);
			v->m[v->nm++].cn = n;
		} else
			n = -1;
		if (n < 0) {
			fprintf(stderr, "noise: line %d: malformed\n", *lineno);
			exit(2);
		}
	}
	return 0;
}

/*
 * Play one vector; NULL when it passes, else what failed. With flip >= 0,
 * one bit of message flip is changed on the way: some read from there on
 * must fail (the first message of XX is not sealed: the next one then fails).
 */
static const char *
vec_run(struct vec *v, int flip)
{
	static char why[128];
	struct noise ini, res, *tx, *rx;
	unsigned char out[NOISE_MSG_MAX], p[NOISE_MSG_MAX];
	int pat, i;
	ssize_t r;

	if (strcmp(v->proto, "Noise_XX_25519_ChaChaPoly_BLAKE2b") == 0)
		pat = NOISE_XX;
	else if (strcmp(v->proto, "Noise_IK_25519_ChaChaPoly_BLAKE2b") == 0)
		pat = NOISE_IK;
	else
		return "not a pattern we run";
	if (noise_init(&ini, pat, 1, v->is, v->has_irs ? v->irs : NULL,
	    v->prologue, v->pn) == -1 ||
	    noise_init(&res, pat, 0, v->rs, NULL, v->prologue, v->pn) == -1)
		return "noise_init failed";
	noise_fixed_e(&ini, v->ie);
	noise_fixed_e(&res, v->re);
	for (i = 0; i < v->nm; i++) {
		tx = i % 2 == 0 ? &ini : &res;
		rx = i % 2 == 0 ? &res : &ini;
		if (!tx->done) {
			r = noise_write(tx, v->m[i].p, v->m[i].pn, out);
		} else {
			r = v->m[i].pn + NOISE_TAG;
			if (noise_seal(&tx->tx, NULL, 0, v->m[i].p, v->m[i].pn,
			    out) == -1)
				r = -1;
		}
		if (r == -1 && flip >= 0 && i > flip)
			return NULL;	/* the flipped e made a bad DH */
		if (r <= 0 || ((flip < 0 || i < flip) &&
		    (r != (ssize_t)v->m[i].cn || memcmp(out, v->m[i].c, r) != 0))) {
			snprintf(why, sizeof(why), "message %d differs", i);
			return why;
		}
		if (i == flip)
			out[(i * 7) % r] ^= 0x04;
		if (!rx->done) {
			r = noise_read(rx, out, r, p);
		} else {
			r = noise_open(&rx->rx, NULL, 0, out, r, p) == -1 ? -1 :
			    (ssize_t)v->m[i].pn;
		}
		if (flip >= 0 && i >= flip) {
			if (r == -1)
				return NULL;
			continue;
		}
		if (r != (ssize_t)v->m[i].pn || memcmp(p, v->m[i].p, r) != 0) {
			snprintf(why, sizeof(why), "message %d reads back "
			    "wrong", i);
			return why;
		}
		if (ini.done && res.done && v->has_hash &&
		    (memcmp(ini.h, v->hash, 64) != 0 ||
		    memcmp(res.h, v->hash, 64) != 0))
			return "handshake hash differs";
	}
	if (flip >= 0) {
		snprintf(why, sizeof(why), "message %d read although a bit "
		    "was flipped", flip);
		return why;
	}
	if (!ini.done || !res.done)
		return "handshake did not finish";
	return NULL;
}

int
main(int argc, char *argv[])
{
	struct vec *v;
	const char *why;
	FILE *f;
	int flip = 0, lineno = 0, bad = 0, n = 0, i;

	if (argc > 1 && strcmp(argv[1], "-f") == 0)
		flip = 1, argc--, argv++;
	if (argc != 2) {
		fprintf(stderr, "usage: noise [-f] FILE\n");
		return 2;
	}
	if (noise_start() == -1 || (v = malloc(sizeof(*v))) == NULL)
		return 2;
	if ((f = fopen(argv[1], "r")) == NULL) {
		fprintf(stderr, "noise: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	while (vec_read(f, v, &lineno)) {
		n++;
		why = vec_run(v, -1);
		for (i = 0; flip && why == NULL && i < v->nm; i++)
			why = vec_run(v, i);
		printf("%s %s (line %d, %d messages)%s%s\n", why ? "FAIL" : "ok",
		    v->proto, v->line, v->nm, why ? ": " : "", why ? why : "");
		bad += why != NULL;
	}
	fclose(f);
	free(v);
	printf("%d vectors, %d failed\n", n, bad);
	return bad || n == 0 ? 1 : 0;
}
