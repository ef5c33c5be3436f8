/* Running a ladder of dialers with $P2PFD and catching the fd it delivers. */
#include <sys/socket.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

/* Move fd above the low numbers, so that placing one cannot clobber another. */
static int
child_high(int fd)
{
	int h = fcntl(fd, F_DUPFD_CLOEXEC, 10);

	if (h == -1)
		_exit(EX_SYSTEM);
	return h;
}

/* Give fd to the child on number to; dup2 clears close-on-exec. */
static void
child_fd(int fd, int to)
{
	if (dup2(fd, to) == -1)
		_exit(EX_SYSTEM);
}

/*
 * Start argv in a process group of its own, with input (a ticket, or NULL
 * for none) on its stdin, its stdout captured, $P2PFD set to a socket on
 * which it passes back the connection it makes, and $P2PCOMMIT to the
 * session's commitment when commit is not -1.
 */
int
ladder_start(struct ladder *l, char *const argv[], const char *input,
    const char *peer, int commit)
{
	int sp[2] = { -1, -1 }, in[2] = { -1, -1 }, out[2] = { -1, -1 }, i, e;
	size_t n = input ? strlen(input) : 0;

	memset(l, 0, sizeof(*l));
	/* A ticket is far smaller than a pipe's buffer: the write cannot block. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == -1 ||
	    pipe2(in, O_CLOEXEC) == -1 || pipe2(out, O_CLOEXEC) == -1 ||
	    (n > 0 && write(in[1], input, n) != (ssize_t)n) ||
	    (l->pid = fork()) == -1) {
		e = errno;
		for (i = 0; i < 2; i++) {
			if (sp[i] != -1)
				close(sp[i]);
			if (in[i] != -1)
				close(in[i]);
			if (out[i] != -1)
				close(out[i]);
		}
		errno = e;
		return -1;
	}
	if (l->pid == 0) {
		setpgid(0, 0);
		signal(SIGPIPE, SIG_DFL);
		in[0] = child_high(in[0]);
		out[1] = child_high(out[1]);
		sp[1] = child_high(sp[1]);
		if (commit != -1)
			commit = child_high(commit);
		child_fd(in[0], 0);
		child_fd(out[1], 1);
		child_fd(sp[1], 3);
		setenv("P2PFD", "3", 1);
		if (commit != -1) {
			child_fd(commit, 4);
			setenv("P2PCOMMIT", "4", 1);
		} else
			unsetenv("P2PCOMMIT");
		if (peer != NULL)
			setenv("P2PPEER", peer, 1);
		execvp(argv[0], argv);
		warn("unable to run %s", argv[0]);
		_exit(EX_SYSTEM);
	}
	setpgid(l->pid, l->pid);
	close(in[1]);
	close(in[0]);
	close(out[1]);
	close(sp[1]);
	l->sock = sp[0];
	l->out = out[0];
	fd_nonblock(l->out, 1);
	return 0;
}

/* Keep what the ladder writes on stdout (the last 4 KiB of it). */
void
ladder_readout(struct ladder *l)
{
	char buf[1024];
	ssize_t r;

	while ((r = read(l->out, buf, sizeof(buf))) > 0) {
		if (l->taillen + r > sizeof(l->tail) - 1)
			l->taillen = 0;
		memcpy(l->tail + l->taillen, buf, r);
		l->taillen += r;
		l->tail[l->taillen] = '\0';
	}
	if (r == 0) {
		close(l->out);
		l->out = -1;
	}
}

/*
 * Wait up to ms for the ladder's connection: the fd, with its line in
 * line; or -1 with errno ETIMEDOUT, or with errno 0 when the ladder ended
 * without one.
 */
int
ladder_catch(struct ladder *l, char *line, size_t n, int ms)
{
	long deadline = now_ms() + ms, left;
	struct pollfd p[2];
	int r;

	for (;;) {
		if ((left = deadline - now_ms()) <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		p[0].fd = l->sock;
		p[0].events = POLLIN;
		p[1].fd = l->out;
		p[1].events = POLLIN;
		if ((r = poll(p, 2, (int)left)) == -1 && errno != EINTR)
			return -1;
		if (r <= 0)
			continue;
		if (p[1].revents)
			ladder_readout(l);
		if (p[0].revents)
			return fd_recv(l->sock, line, n);
	}
}

/* End the ladder's process group and reap it: its exit status. */
int
ladder_stop(struct ladder *l)
{
	int st = 0;

	kill(-l->pid, SIGTERM);
	while (waitpid(l->pid, &st, 0) == -1 && errno == EINTR)
		;
	if (l->out != -1) {
		ladder_readout(l);
		if (l->out != -1)
			close(l->out);
	}
	close(l->sock);
	/* Our own SIGTERM ended it: the ladder did not connect, nothing broke. */
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM)
		return EX_NOTCONN;
	return WIFEXITED(st) ? WEXITSTATUS(st) : EX_SYSTEM;
}
