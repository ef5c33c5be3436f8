/*
 * The peers' last candidates, one small ticket per peer and rvd in
 * $P2P_CACHE (else $XDG_CACHE_HOME/p2pdial, else ~/.cache/p2pdial), so
 * that the next dial can race them while the invitation is on its way.
 * Whoever else can write to that directory could plant a symlink there
 * (and make us overwrite what it points at) or a ticket (and steer our
 * next dial): a directory that is not ours alone is not used at all, and
 * everything in it is reached through the descriptor that was checked.
 * Beside each ticket, "won+PEER@RV" says which rung won last time, and
 * when: the next dial starts that rung at once (cache_won).
 */
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "p2p.h"

#define CACHE_TMP_TRIES 8	/* fresh names to try for the new file */
#define CACHE_KEY (NAME_MAX_ + HOSTPORT_MAX * 2 + 8)	/* a file's name */
#define CACHE_WON "won+"	/* the won record's prefix (cache_key) */
#define CACHE_WON_SECS 600	/* a won record older than this says nothing */

/* The cache directory, opened: -1 when there is none, or it is not ours
 * alone (another owner, or writable by group or others). */
static int
cache_dir(int mkdirs)
{
	const char *dir = getenv("P2P_CACHE"), *base;
	char d[512], *p;
	struct stat st;
	int fd;

	if (dir == NULL) {
		if ((base = getenv("XDG_CACHE_HOME")) != NULL && *base == '/')
			snprintf(d, sizeof(d), "%s/p2pdial", base);
		else if ((base = getenv("HOME")) != NULL && *base == '/')
			snprintf(d, sizeof(d), "%s/.cache/p2pdial", base);
		else
			return -1;
		if (mkdirs && (p = strrchr(d, '/')) != NULL) {
			*p = '\0';
			mkdir(d, 0700);
			*p = '/';
		}
		dir = d;
	}
	if (*dir == '\0')
		return -1;
	if (mkdirs)
		mkdir(dir, 0700);
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(fd, &st) == -1 || st.st_uid != geteuid() ||
	    (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		vlog("not using the candidate cache %s: not ours alone", dir);
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * The cache file's name for peer at rv, after prefix (a kind of record
 * other than the candidates: it ends in '+', which no peer name has, so
 * that no rv makes two names alike), into key; -1 for a bad peer name.
 */
static int
cache_key(const char *peer, const char *rv, const char *prefix, char *key,
    size_t n)
{
	char *p;

	if (!name_valid(peer) || rv == NULL)
		return -1;
	/* rv is anything the user typed: keep it to harmless bytes. */
	snprintf(key, n, "%s%s@%s", prefix, peer, rv);
	for (p = key + strlen(prefix); *p != '\0'; p++)
		if (strchr("/\\ \t", *p) != NULL || *p < ' ' || *p > '~')
			*p = '_';
	return 0;
}

/* The cache file key, opened to read: NULL when there is none of ours. */
static FILE *
cache_open(const char *key)
{
	struct stat st;
	FILE *f;
	int dfd, fd;

	if ((dfd = cache_dir(0)) == -1)
		return NULL;
	/* Only a file of ours, and no link to one somewhere else. */
	fd = openat(dfd, key, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	close(dfd);
	if (fd == -1)
		return NULL;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_uid != geteuid() || (f = fdopen(fd, "r")) == NULL) {
		close(fd);
		return NULL;
	}
	return f;
}

/* Take the cached candidates (and rtt) of t's peer at t's rvd into t: how many. */
int
cache_load(struct ticket *t)
{
	struct ticket c;
	char key[CACHE_KEY], err[128];
	FILE *f;
	int i, r;

	if (cache_key(t->peer, t->rv, "", key, sizeof(key)) == -1 ||
	    (f = cache_open(key)) == NULL)
		return 0;
	r = ticket_read(f, &c, err, sizeof(err));
	fclose(f);
	if (r != 1 || strcmp(c.peer, t->peer) != 0)
		return 0;
	for (i = 0; i < c.naddr; i++)
		ticket_addaddr(t, c.addr[i]);
	for (i = 0; i < c.nport && t->nport < TICKET_PORTS; i++)
		if (!ticket_hasport(t, c.port[i]))
			t->port[t->nport++] = c.port[i];
	if (t->rtt == 0)
		t->rtt = c.rtt;
	return c.naddr;
}

/* A new file in directory dfd under a fresh random name (into tmp), made
 * as mkstemp(3) does, but relative to the checked directory: -1 if none. */
static int
cache_tmp(int dfd, char *tmp, size_t n)
{
	char r[17];
	int fd, i;

	for (i = 0; i < CACHE_TMP_TRIES; i++) {
		hex_random(r, 8);
		snprintf(tmp, n, ".new.%s", r);
		fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
		if (fd != -1 || errno != EEXIST)
			return fd;
	}
	return -1;
}

/*
 * Write the cache file key whole with put(f, arg), then rename it into
 * place: a concurrent reader sees old or new, and a link where the file
 * goes is replaced, never followed. Quietly, at best.
 */
static void
cache_put(const char *key, int (*put)(FILE *, const void *), const void *arg)
{
	char tmp[32];
	FILE *f;
	int dfd, fd, r;

	if ((dfd = cache_dir(1)) == -1)
		return;
	if ((fd = cache_tmp(dfd, tmp, sizeof(tmp))) == -1) {
		close(dfd);
		return;
	}
	if ((f = fdopen(fd, "w")) == NULL) {
		close(fd);
		unlinkat(dfd, tmp, 0);
		close(dfd);
		return;
	}
	r = put(f, arg);
	if (fclose(f) == EOF || r == -1 || renameat(dfd, tmp, dfd, key) == -1)
		unlinkat(dfd, tmp, 0);
	close(dfd);
}

/* cache_put's writer for a ticket. */
static int
put_ticket(FILE *f, const void *c)
{
	return ticket_write(f, c);
}

/* Remember c's candidates, ports and rtt for its peer at rv; quietly, at best. */
void
cache_save(const struct ticket *c, const char *rv)
{
	char key[CACHE_KEY];

	if (c->naddr == 0 || cache_key(c->peer, rv, "", key, sizeof(key)) == -1)
		return;
	cache_put(key, put_ticket, c);
}

/* cache_put's writer for the won record: the rung, and when. */
static int
put_won(FILE *f, const void *via)
{
	return fprintf(f, "%s %lld\n", (const char *)via,
	    (long long)time(NULL)) < 0 ? -1 : 0;
}

/*
 * Remember that the connection to peer at rv went by the rung via
 * (P2PVIA), so that the next dial can start that rung at once; quietly.
 */
void
cache_won(const char *peer, const char *rv, const char *via)
{
	char key[CACHE_KEY];
	const char *p;

	for (p = via; *p >= 'a' && *p <= 'z'; p++)
		;
	if (p == via || *p != '\0' || p - via > 16 ||
	    cache_key(peer, rv, CACHE_WON, key, sizeof(key)) == -1)
		return;
	cache_put(key, put_won, via);
}

/*
 * Did the last connection to peer at rv, less than CACHE_WON_SECS ago,
 * go by the rung via? A record from the future is none.
 */
int
cache_lastwon(const char *peer, const char *rv, const char *via)
{
	char key[CACHE_KEY], line[64], *w[3];
	long long at;
	time_t now = time(NULL);
	const char *e;
	FILE *f;
	int r;

	if (cache_key(peer, rv, CACHE_WON, key, sizeof(key)) == -1 ||
	    (f = cache_open(key)) == NULL)
		return 0;
	r = fgets(line, sizeof(line), f) != NULL;
	fclose(f);
	line[strcspn(line, "\n")] = '\0';
	if (!r || line_words(line, w, 3) != 2 || strcmp(w[0], via) != 0)
		return 0;
	at = strtonum(w[1], 0, LLONG_MAX, &e);
	return e == NULL && at <= now && now - at < CACHE_WON_SECS;
}
