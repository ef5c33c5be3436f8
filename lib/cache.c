/*
 * The peers' last candidates, one small ticket per peer and rvd in
 * $P2P_CACHE (else $XDG_CACHE_HOME/p2pdial, else ~/.cache/p2pdial), so
 * that the next dial can race them while the invitation is on its way.
 * Whoever else can write to that directory could plant a symlink there
 * (and make us overwrite what it points at) or a ticket (and steer our
 * next dial): a directory that is not ours alone is not used at all, and
 * everything in it is reached through the descriptor that was checked.
 */
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

#define CACHE_TMP_TRIES 8	/* fresh names to try for the new file */

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

/* The cache file's name for peer at rv, into key; -1 for a bad peer name. */
static int
cache_key(const char *peer, const char *rv, char *key, size_t n)
{
	char *p;

	if (!name_valid(peer))
		return -1;
	/* rv is anything the user typed: keep it to harmless bytes. */
	snprintf(key, n, "%s@%s", peer, rv);
	for (p = key; *p != '\0'; p++)
		if (strchr("/\\ \t", *p) != NULL || *p < ' ' || *p > '~')
			*p = '_';
	return 0;
}

/* Take the cached candidates (and rtt) of t's peer at t's rvd into t: how many. */
int
cache_load(struct ticket *t)
{
	struct ticket c;
	struct stat st;
	char key[NAME_MAX_ + sizeof(t->rv) + 2], err[128];
	FILE *f;
	int dfd, fd, i, r;

	if (cache_key(t->peer, t->rv, key, sizeof(key)) == -1 ||
	    (dfd = cache_dir(0)) == -1)
		return 0;
	/* Only a file of ours, and no link to one somewhere else. */
	fd = openat(dfd, key, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	close(dfd);
	if (fd == -1)
		return 0;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_uid != geteuid() || (f = fdopen(fd, "r")) == NULL) {
		close(fd);
		return 0;
	}
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

/* Remember c's candidates, ports and rtt for its peer at rv; quietly, at best. */
void
cache_save(const struct ticket *c, const char *rv)
{
	char key[NAME_MAX_ + sizeof(c->rv) + 2], tmp[32];
	FILE *f;
	int dfd, fd, r;

	if (c->naddr == 0 || cache_key(c->peer, rv, key, sizeof(key)) == -1 ||
	    (dfd = cache_dir(1)) == -1)
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
	/*
	 * Written whole, then renamed: a concurrent reader sees old or new,
	 * and a link where the file goes is replaced, never followed.
	 */
	r = ticket_write(f, c);
	if (fclose(f) == EOF || r == -1 || renameat(dfd, tmp, dfd, key) == -1)
		unlinkat(dfd, tmp, 0);
	close(dfd);
}
