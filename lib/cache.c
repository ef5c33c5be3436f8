/*
 * The peers' last candidates, one small ticket per peer and rvd in
 * $P2P_CACHE (else $XDG_CACHE_HOME/p2pdial, else ~/.cache/p2pdial), so
 * that the next dial can race them while the invitation is on its way.
 */
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

/* The cache file for peer at rv in buf; -1 when there is no cache. */
static int
cache_path(const char *peer, const char *rv, char *buf, size_t n, int mkdirs)
{
	const char *dir = getenv("P2P_CACHE"), *base;
	char d[512], key[NAME_MAX_ + ADDR_STR + 200], *p;

	if (dir == NULL) {
		if ((base = getenv("XDG_CACHE_HOME")) != NULL && *base == '/')
			snprintf(d, sizeof(d), "%s/p2pdial", base);
		else if ((base = getenv("HOME")) != NULL && *base == '/')
			snprintf(d, sizeof(d), "%s/.cache/p2pdial", base);
		else
			return -1;
		dir = d;
	}
	if (*dir == '\0' || !name_valid(peer))
		return -1;
	/* rv is anything the user typed: keep it to harmless bytes. */
	snprintf(key, sizeof(key), "%s@%s", peer, rv);
	for (p = key; *p != '\0'; p++)
		if (strchr("/\\ \t", *p) != NULL || *p < ' ' || *p > '~')
			*p = '_';
	if (mkdirs && dir == d) {
		p = strrchr(d, '/');
		*p = '\0';
		mkdir(d, 0700);
		*p = '/';
	}
	if (mkdirs)
		mkdir(dir, 0700);
	return snprintf(buf, n, "%s/%s", dir, key) < (int)n ? 0 : -1;
}

/* Take the cached candidates (and rtt) of t's peer at t's rvd into t: how many. */
int
cache_load(struct ticket *t)
{
	struct ticket c;
	char path[1024], err[128];
	FILE *f;
	int i, r;

	if (cache_path(t->peer, t->rv, path, sizeof(path), 0) == -1 ||
	    (f = fopen(path, "re")) == NULL)
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

/* Remember c's candidates, ports and rtt for its peer at rv; quietly, at best. */
void
cache_save(const struct ticket *c, const char *rv)
{
	char path[1024], tmp[1100];
	FILE *f;
	int fd, r;

	if (c->naddr == 0 || cache_path(c->peer, rv, path, sizeof(path), 1) == -1)
		return;
	snprintf(tmp, sizeof(tmp), "%s.%ld", path, (long)getpid());
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) == -1)
		return;
	if ((f = fdopen(fd, "w")) == NULL) {
		close(fd);
		unlink(tmp);
		return;
	}
	/* Written whole, then renamed: a concurrent reader sees old or new. */
	r = ticket_write(f, c);
	if (fclose(f) == EOF || r == -1 || rename(tmp, path) == -1)
		unlink(tmp);
}
