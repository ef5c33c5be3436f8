/* Handing a finished connection on: the one place these rules are coded. */
#include <sys/socket.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

/* Set name to val, or unset it when val is NULL, empty or "-". */
static void
setenv_or_unset(const char *name, const char *val)
{
	if (val != NULL && *val != '\0' && strcmp(val, "-") != 0)
		setenv(name, val, 1);
	else
		unsetenv(name);
}

/* Set P2P* and the UCSPI TCP* variables that describe fd. */
void
conn_setenv(int fd, const struct conninfo *ci)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char buf[ADDR_STR], port[8];

	setenv("P2PVIA", ci->via, 1);
	setenv_or_unset("P2PPEER", ci->peer);
	/* p2pseal binds the session into its handshake: both ends see these. */
	setenv_or_unset("P2PID", ci->id);
	setenv_or_unset("P2PTOKEN", ci->token);
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
		snprintf(line, sizeof(line), "%s %s %s%s%s%s%s%s", ci->via,
		    fd_peername(fd, remote, sizeof(remote)),
		    ci->peer && *ci->peer ? ci->peer : "-", ci->go ? " GO" : "",
		    ci->id && *ci->id ? " id=" : "", ci->id ? ci->id : "",
		    ci->token && *ci->token ? " token=" : "",
		    ci->token ? ci->token : "");
		if (fd_send((int)to, fd, line) == -1)
			err(EX_SYSTEM, "unable to pass the connection on P2PFD %ld",
			    to);
		close(fd);
		return EX_CONNECTED;
	}
	fd_keepalive(fd);
	conn_setenv(fd, ci);
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

/*
 * Parse the line that came with a passed fd, "VIA REMOTE PEER" and then
 * any of "GO", "id=ID" and "token=TOKEN" (p2p(7)); the words point into
 * line. -1 when it is not such a line.
 */
int
conninfo_parse(char *line, struct conninfo *ci, const char **remote)
{
	char *w[7];
	int n, i;

	memset(ci, 0, sizeof(*ci));
	if ((n = line_words(line, w, 7)) < 3 || n > 6)
		return -1;
	ci->via = w[0];
	*remote = w[1];
	ci->peer = strcmp(w[2], "-") == 0 ? NULL : w[2];
	for (i = 3; i < n; i++) {
		if (strcmp(w[i], "GO") == 0 && !ci->go)
			ci->go = 1;
		else if (strncmp(w[i], "id=", 3) == 0 && ci->id == NULL &&
		    hex_valid(w[i] + 3, ID_HEX))
			ci->id = w[i] + 3;
		else if (strncmp(w[i], "token=", 6) == 0 && ci->token == NULL &&
		    hex_valid(w[i] + 6, ID_HEX))
			ci->token = w[i] + 6;
		else
			return -1;
	}
	return 0;
}
