/* Dropping root once a daemon has bound its port. */
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include "p2p.h"

/* Become user (and only its primary group) for good, or exit. */
void
priv_drop(const char *user)
{
	struct passwd *pw;

	if ((pw = getpwnam(user)) == NULL)
		errx(EX_USAGE_, "unknown user: %s", user);
	if (setgroups(1, &pw->pw_gid) == -1 || setgid(pw->pw_gid) == -1 ||
	    setuid(pw->pw_uid) == -1)
		err(EX_SYSTEM, "unable to become %s", user);
	/* Where a kernel or a security module would let it back, stop. */
	if (pw->pw_uid != 0 && (setuid(0) != -1 || seteuid(0) != -1 ||
	    (pw->pw_gid != 0 && setgid(0) != -1)))
		errx(EX_SYSTEM, "could regain root after becoming %s", user);
}
