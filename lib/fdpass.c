/* Passing a connection between processes: one fd and one line, SCM_RIGHTS. */
#include <sys/socket.h>
#include <sys/uio.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

/* Send fd over the UNIX socket sock with line (no newline needed). */
int
fd_send(int sock, int fd, const char *line)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	char text[LINE_MAX_ + 2];
	struct iovec iov;
	struct msghdr m;
	struct cmsghdr *c;
	size_t n;
	ssize_t w;

	n = strlcpy(text, line, sizeof(text) - 1);
	if (n >= sizeof(text) - 1) {
		errno = EMSGSIZE;
		return -1;
	}
	text[n++] = '\n';
	memset(&m, 0, sizeof(m));
	memset(&cm, 0, sizeof(cm));
	iov.iov_base = text;
	iov.iov_len = n;
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = cm.buf;
	m.msg_controllen = sizeof(cm.buf);
	c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	while ((w = sendmsg(sock, &m, MSG_NOSIGNAL)) == -1 && errno == EINTR)
		;
	if (w == -1)
		return -1;
	if ((size_t)w != n) {
		errno = EMSGSIZE;
		return -1;
	}
	return 0;
}

/* Close every fd in a control message that we are not going to keep. */
static void
close_fds(struct cmsghdr *c, int keep)
{
	int *fds = (int *)CMSG_DATA(c), i, n;

	if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
		return;
	n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
	for (i = keep; i < n; i++) {
		int fd;

		memcpy(&fd, &fds[i], sizeof(fd));
		close(fd);
	}
}

/*
 * Receive one fd and its line from sock: the fd, or -1 with errno set
 * (0 for end of file, EPROTO for a message that is not exactly one fd).
 * Any extra fd that arrives is closed; the caller owns the one returned.
 */
int
fd_recv(int sock, char *line, size_t n)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * 8)];
	} cm;
	struct iovec iov;
	struct msghdr m;
	struct cmsghdr *c;
	ssize_t r;
	int fd = -1, bad = 0;
	char *nl;

	memset(&m, 0, sizeof(m));
	iov.iov_base = line;
	iov.iov_len = n - 1;
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = cm.buf;
	m.msg_controllen = sizeof(cm.buf);
	while ((r = recvmsg(sock, &m, MSG_CMSG_CLOEXEC)) == -1 && errno == EINTR)
		;
	if (r == -1)
		return -1;
	for (c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
		if (fd == -1 && c->cmsg_level == SOL_SOCKET &&
		    c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int))) {
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
			continue;
		}
		close_fds(c, 0);
		bad = 1;
	}
	line[r] = '\0';
	if ((nl = memchr(line, '\n', r)) != NULL)
		*nl = '\0';
	if (bad || fd == -1 || (m.msg_flags & (MSG_CTRUNC | MSG_TRUNC))) {
		if (fd != -1)
			close(fd);
		errno = r == 0 && fd == -1 && !bad ? 0 : EPROTO;
		return -1;
	}
	return fd;
}
