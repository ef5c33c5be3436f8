/* Handing a finished connection on: the one place these rules are coded. */
#include <sys/socket.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

/* Set P2P* and the UCSPI TCP* variables that describe fd. */
void
conn_setenv(int fd, const char *via, const char *peer)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char buf[ADDR_STR], port[8];

	setenv("P2PVIA", via, 1);
	if (peer != NULL && *peer != '\0' && strcmp(peer, "-") != 0)
		setenv("P2PPEER", peer, 1);
	else
		unsetenv("P2PPEER");
	setenv("P2PREMOTE", fd_peername(fd, buf, sizeof(buf)), 1);
	setenv("PROTO", "TCP", 1);
	if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
		setenv("TCPREMOTEIP", addr_ip((struct sockaddr *)&ss, buf,
		    sizeof(buf)), 1);
		snprintf(port, sizeof(port), "%d", addr_port((struct sockaddr *)&ss));
		setenv("TCPREMOTEPORT", port, 1);
	}
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
		setenv("TCPLOCALIP", addr_ip((struct sockaddr *)&ss, buf,
		    sizeof(buf)), 1);
		snprintf(port, sizeof(port), "%d", addr_port((struct sockaddr *)&ss));
		setenv("TCPLOCALPORT", port, 1);
	}
}

/* Put fd on a and b (6/7 or 0/1) and exec prog; only returns on failure. */
static void
exec_prog(int fd, char **prog, int a, int b)
{
	if (fd != a && dup2(fd, a) == -1)
		err(EX_SYSTEM, "dup2");
	if (fd != b && dup2(fd, b) == -1)
		err(EX_SYSTEM, "dup2");
	if (fd != a && fd != b)
		close(fd);
	/* dup2 clears close-on-exec, but fd may already have been a or b. */
	fcntl(a, F_SETFD, 0);
	fcntl(b, F_SETFD, 0);
	signal(SIGPIPE, SIG_DFL);
	execvp(prog[0], prog);
	err(errno == ENOENT ? 127 : 126, "unable to run %s", prog[0]);
}

/*
 * Deliver fd: to $P2PFD when set, else to prog UCSPI style (fds 6/7 when
 * dialling, 0/1 when answering), else copied to stdin/stdout. Returns the
 * tool's exit status when it does not exec.
 */
int
deliver(int fd, const struct conninfo *ci, char **prog, int side)
{
	const char *s = getenv("P2PFD"), *e;
	char line[LINE_MAX_], remote[ADDR_STR];
	long to;

	if (s != NULL && *s != '\0') {
		to = strtol(s, (char **)&e, 10);
		if (*e != '\0' || to < 0 || to > 1 << 20)
			errx(EX_USAGE_, "bad P2PFD: %s", s);
		snprintf(line, sizeof(line), "%s %s %s%s", ci->via,
		    fd_peername(fd, remote, sizeof(remote)),
		    ci->peer && *ci->peer ? ci->peer : "-", ci->go ? " GO" : "");
		if (fd_send((int)to, fd, line) == -1)
			err(EX_SYSTEM, "unable to pass the connection on P2PFD %ld",
			    to);
		close(fd);
		return EX_CONNECTED;
	}
	fd_keepalive(fd);
	conn_setenv(fd, ci->via, ci->peer);
	if (prog != NULL && prog[0] != NULL) {
		if (side == SIDE_DIAL)
			exec_prog(fd, prog, 6, 7);
		else
			exec_prog(fd, prog, 0, 1);
	}
	signal(SIGPIPE, SIG_IGN);
	if (copy_loop(fd, 0, 1) == -1) {
		warn("connection lost");
		close(fd);
		return EX_NOTCONN;
	}
	close(fd);
	return EX_CONNECTED;
}
