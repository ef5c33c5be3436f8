/*
 * A session's one commitment, shared by rvlisten and the dialers of its
 * ladder: an eventfd(2) holding 1. Whoever reads the 1 may take a
 * connection ("OK" to the inviter's dial, "GO" on one of ours); a dialer
 * whose taken connection then fails writes the 1 back. The read is atomic,
 * so two processes can never both commit to a session.
 */
#include <sys/eventfd.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "p2p.h"

/* A fresh commitment, not yet taken: an eventfd, or -1. */
int
commit_new(void)
{
	return eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
}

/* Take the commitment: 1 when it was ours to take, 0 when someone has it. */
int
commit_take(int cfd)
{
	uint64_t v;

	if (cfd == -1)
		return 1;
	return read(cfd, &v, sizeof(v)) == sizeof(v);
}

/* Give back a commitment taken for a connection that did not make it. */
void
commit_give(int cfd)
{
	uint64_t v = 1;

	if (cfd != -1 && write(cfd, &v, sizeof(v)) == -1)
		warn("unable to give back the session's commitment");
}

/* The commitment inherited as $P2PCOMMIT, or -1 when there is none. */
int
commit_env(void)
{
	const char *s = getenv("P2PCOMMIT"), *e;
	char path[64], link[64];
	ssize_t n;
	int fd;

	if (s == NULL || *s == '\0')
		return -1;
	fd = strtonum(s, 0, 1 << 20, &e);
	if (e != NULL)
		errx(EX_USAGE_, "bad P2PCOMMIT: %s", s);
	/* Reading 8 bytes from some other inherited fd would be no commitment. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if ((n = readlink(path, link, sizeof(link) - 1)) == -1 ||
	    (link[n] = '\0', strcmp(link, "anon_inode:[eventfd]") != 0)) {
		warnx("P2PCOMMIT %d is no eventfd: ignored", fd);
		return -1;
	}
	return fd;
}
