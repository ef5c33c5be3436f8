/*
 * t/unit: drives lib/ on loopback for t/unit.bats. Each subcommand does one
 * thing and prints what happened, so that the tests can assert on it:
 *
 *   unit ticket < FILE             parse a ticket; print it back, or the error (exit 100)
 *   unit addr STR...               addr_split, addr_numeric and addr_fmt of each STR
 *   unit line [-c N] [-n SIZE] [-t MS] [-k]
 *                                  stdin goes into a socketpair; line_read N times;
 *                                  then print what is left unread ("rest")
 *   unit linebuf [-s CHUNK]        stdin fed CHUNK bytes at a time to linebuf_fill/next
 *   unit words STR [MAX]           line_words
 *   unit fdpass CASE               fd_send/fd_recv over a socketpair
 *   unit hex valid STR [LEN] | hex name STR | hex secret A B | hex random
 *   unit race [-t MS] [-s MS] [-w] [-p] [-c [-H]] CAND...
 *                                  dial_race against in-process listeners; CAND is
 *                                  ok, plain, refused, silent, garbage, close,
 *                                  close-late (after 300 ms), junk
 *                                  or a literal address; -c races with a session
 *                                  commitment (-H: somebody else holds it already)
 *                                  and says whether GO went and who holds it after
 *   unit hs dial|invitee|inviter [-cHkTw] [-t MS]
 *                                  the handshake's state machine on a socketpair
 *                                  whose far end sends stdin (then end of file,
 *                                  unless -k): we dial, or answer as the invitee
 *                                  or the inviter; -c with a session commitment
 *                                  (-H: held by somebody else), -T the session is
 *                                  taken, -w the dialer's token is wrong. Prints
 *                                  what happened, what we sent, the commitment
 *                                  and what is left unread
 *   unit hs go [-H]                hs_go: the invitee's GO after an OK
 *   unit copy                      copy_loop between stdio and an echoing peer
 *   unit timeout [FLAG DEF]        env_timeout_ms
 *
 * Exit 0 when the call did what it was asked, 1 when it failed (printed), 100 on
 * a bad ticket, 2 when the test program itself is misused or broken.
 */
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

#define TOKEN "0123456789abcdef0123456789abcdef"
#define WRONG "fedcba9876543210fedcba9876543210"
#define SESSID "00112233445566778899aabbccddeeff"

static void
die(const char *what)
{
	fprintf(stderr, "unit: %s: %s\n", what, strerror(errno));
	exit(2);
}

static const char *
errname(int e)
{
	switch (e) {
	case 0: return "0";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EMSGSIZE: return "EMSGSIZE";
	case EPROTO: return "EPROTO";
	case ECONNRESET: return "ECONNRESET";
	case EACCES: return "EACCES";
	case EAGAIN: return "EAGAIN";
	case EBADF: return "EBADF";
	default: return strerror(e);
	}
}

/* ---- ticket ---- */

static int
cmd_ticket(void)
{
	struct ticket t;
	char emsg[256];
	int r;

	r = ticket_read(stdin, &t, emsg, sizeof(emsg));
	if (r == -1) {
		printf("error: %s\n", emsg);
		ticket_free(&t);
		return EX_USAGE_;
	}
	if (r == 0) {
		printf("none\n");
		return 0;
	}
	if (ticket_write(stdout, &t) == -1)
		die("ticket_write");
	ticket_free(&t);
	return 0;
}

/* ---- addresses ---- */

static int
cmd_addr(int argc, char **argv)
{
	char host[ADDR_STR], port[16], buf[ADDR_STR];
	struct addr a;
	int i, rc = 0;

	for (i = 0; i < argc; i++) {
		if (addr_split(argv[i], host, sizeof(host), port, sizeof(port)) == 0)
			printf("split [%s] [%s]\n", host, port);
		else
			printf("split error\n");
		if (addr_numeric(argv[i], &a) == 0) {
			addr_fmt((struct sockaddr *)&a.ss, buf, sizeof(buf));
			printf("numeric %s %s port %d\n", buf,
			    a.ss.ss_family == AF_INET ? "inet" : "inet6",
			    addr_port((struct sockaddr *)&a.ss));
		} else {
			printf("numeric error\n");
			rc = 1;
		}
	}
	return rc;
}

/* ---- the line protocol ---- */

/* All of stdin, into a malloc'd buffer. */
static char *
slurp(size_t *len)
{
	size_t cap = 4096, n = 0;
	char *b = malloc(cap);
	ssize_t r;

	if (b == NULL)
		die("malloc");
	while ((r = read(0, b + n, cap - n)) > 0) {
		n += r;
		if (n == cap && (b = realloc(b, cap *= 2)) == NULL)
			die("realloc");
	}
	if (r == -1)
		die("read stdin");
	*len = n;
	return b;
}

/* Print s with bytes outside printable ASCII as \xHH. */
static void
show(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = s[i];

		if (c < ' ' || c > '~' || c == '\\')
			printf("\\x%02x", c);
		else
			putchar(c);
	}
}

static int
cmd_line(int argc, char **argv)
{
	int sp[2], ch, count = 1, keep = 0, ms = 1000, i, r, rc = 0;
	size_t size = LINE_MAX_ + 1, len;
	char *in, *buf, rest[8192];
	long t0;
	ssize_t k;

	while ((ch = getopt(argc, argv, "c:kn:t:")) != -1) {
		switch (ch) {
		case 'c': count = atoi(optarg); break;
		case 'k': keep = 1; break;
		case 'n': size = strtoul(optarg, NULL, 10); break;
		case 't': ms = atoi(optarg); break;
		default: return 2;
		}
	}
	in = slurp(&len);
	if (len > 65536)
		errx(2, "input too big for one socket buffer");
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1)
		die("socketpair");
	if (len > 0 && write(sp[1], in, len) != (ssize_t)len)
		die("write");
	if (!keep)
		shutdown(sp[1], SHUT_WR);
	if ((buf = malloc(size)) == NULL)
		die("malloc");
	for (i = 0; i < count; i++) {
		t0 = now_ms();
		errno = 0;
		r = line_read(sp[0], buf, size, ms);
		if (r > 0) {
			printf("line %d ", r);
			show(buf, strlen(buf));
			printf("\n");
		} else if (r == 0) {
			/* An empty line, or end of file before any byte. */
			printf("zero\n");
		} else {
			printf("error %s after %ld ms\n", errname(errno),
			    (now_ms() - t0) / 100 * 100);
			rc = 1;
			break;
		}
	}
	fd_nonblock(sp[0], 1);
	k = read(sp[0], rest, sizeof(rest));
	printf("rest ");
	if (k > 0)
		show(rest, k);
	printf("\n");
	free(in);
	free(buf);
	return rc;
}

static int
cmd_linebuf(int argc, char **argv)
{
	struct linebuf lb = { .len = 0 };
	char line[LINE_MAX_ + 1], *in;
	size_t len, off = 0, chunk = 65536;
	int sp[2], ch, r, n;

	while ((ch = getopt(argc, argv, "s:")) != -1) {
		switch (ch) {
		case 's': chunk = strtoul(optarg, NULL, 10); break;
		default: return 2;
		}
	}
	in = slurp(&len);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp) == -1)
		die("socketpair");
	for (;;) {
		size_t c = len - off < chunk ? len - off : chunk;

		if (c > 0) {
			if (write(sp[1], in + off, c) != (ssize_t)c)
				die("write");
			off += c;
		}
		if (off == len)
			shutdown(sp[1], SHUT_WR);
		r = linebuf_fill(&lb, sp[0]);
		if (r == -1 && errno != EAGAIN) {
			printf("fill error %s\n", errname(errno));
			free(in);
			return 1;
		}
		while ((n = linebuf_next(&lb, line, sizeof(line))) >= 0) {
			printf("line %d ", n);
			show(line, n);
			printf("\n");
		}
		if (n == -2) {
			printf("bad (held %zu)\n", lb.len);
			free(in);
			return 1;
		}
		if (r == 0) {
			printf("eof (held %zu)\n", lb.len);
			free(in);
			return 0;
		}
	}
}

static int
cmd_words(int argc, char **argv)
{
	char *w[64], buf[LINE_MAX_ + 1];
	int n, i, max = argc > 1 ? atoi(argv[1]) : 64;

	if (argc < 1 || max > 64)
		return 2;
	strlcpy(buf, argv[0], sizeof(buf));
	n = line_words(buf, w, max);
	printf("%d", n);
	for (i = 0; i < n; i++)
		printf(" [%s]", w[i]);
	printf("\n");
	return n < 0;
}

/* ---- fd passing ---- */

/* Whether the read end rd sees end of file within ms (every writer gone). */
static int
sees_eof(int rd, int ms)
{
	struct pollfd p = { .fd = rd, .events = POLLIN };
	char c;

	if (poll(&p, 1, ms) != 1)
		return 0;
	return read(rd, &c, 1) == 0;
}

/* Send n fds in one SCM_RIGHTS message with data, or none when n is 0. */
static void
raw_send(int sock, const int *fds, int n, const char *data)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} cm;
	struct iovec iov = { .iov_base = (void *)data, .iov_len = strlen(data) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;

	memset(&cm, 0, sizeof(cm));
	if (n > 0) {
		m.msg_control = cm.buf;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * n);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	}
	if (sendmsg(sock, &m, 0) == -1)
		die("sendmsg");
}

static int
cmd_fdpass(const char *what)
{
	char line[LINE_MAX_ + 1], big[LINE_MAX_ + 8], buf[16];
	int sp[2], p[2], q[2], fd, fl, fds[2], e;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == -1 ||
	    pipe(p) == -1)
		die("setup");
	if (strcmp(what, "works") == 0) {
		/* The fd that arrives is the same pipe, and close-on-exec. */
		if (fd_send(sp[0], p[1], "relay 198.51.100.2:7071 bob") == -1)
			die("fd_send");
		close(p[1]);
		fd = fd_recv(sp[1], line, sizeof(line));
		if (fd == -1) {
			printf("fd_recv failed: %s\n", errname(errno));
			return 1;
		}
		fl = fcntl(fd, F_GETFD);
		if (write(fd, "ping", 4) != 4)
			die("write to passed fd");
		close(fd);
		memset(buf, 0, sizeof(buf));
		if (read(p[0], buf, sizeof(buf) - 1) < 0)
			die("read");
		printf("line [%s]\ndata [%s]\ncloexec %d\neof %d\n", line, buf,
		    (fl & FD_CLOEXEC) != 0, sees_eof(p[0], 1000));
		return 0;
	}
	if (strcmp(what, "two") == 0) {
		/* Two fds in one message: refused, and both closed on arrival. */
		if (pipe(q) == -1)
			die("pipe");
		fds[0] = p[1];
		fds[1] = q[1];
		raw_send(sp[0], fds, 2, "out 1.2.3.4:5 -\n");
		close(p[1]);
		close(q[1]);
		errno = 0;
		fd = fd_recv(sp[1], line, sizeof(line));
		e = errno;
		printf("fd %d errno %s\n", fd, errname(e));
		printf("closed %d %d\n", sees_eof(p[0], 1000), sees_eof(q[0], 1000));
		return fd == -1 ? 0 : 1;
	}
	if (strcmp(what, "nofd") == 0) {
		raw_send(sp[0], NULL, 0, "out 1.2.3.4:5 -\n");
		errno = 0;
		fd = fd_recv(sp[1], line, sizeof(line));
		printf("fd %d errno %s\n", fd, errname(errno));
		return fd == -1 ? 0 : 1;
	}
	if (strcmp(what, "eof") == 0) {
		close(sp[0]);
		errno = EBADF;
		fd = fd_recv(sp[1], line, sizeof(line));
		printf("fd %d errno %s\n", fd, errname(errno));
		return fd == -1 ? 0 : 1;
	}
	if (strcmp(what, "long") == 0) {
		/* A line that cannot go in one message is refused by the sender. */
		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		errno = 0;
		fd = fd_send(sp[0], p[1], big);
		printf("send %d errno %s\n", fd, errname(errno));
		return 0;
	}
	if (strcmp(what, "max") == 0) {
		/* The longest line fd_send takes arrives whole. */
		size_t n;

		memset(big, 'y', sizeof(big));
		for (n = LINE_MAX_; n > 0; n--) {
			big[n] = '\0';
			if (fd_send(sp[0], p[1], big) == 0)
				break;
		}
		fd = fd_recv(sp[1], line, sizeof(line));
		printf("sent %zu got %zu fd %s\n", n, fd == -1 ? 0 : strlen(line),
		    fd == -1 ? "no" : "yes");
		return 0;
	}
	if (strcmp(what, "notsock") == 0) {
		errno = 0;
		fd = fd_send(p[1], p[0], "x");
		printf("send %d errno %s\n", fd, errname(errno));
		return 0;
	}
	errx(2, "fdpass: unknown case %s", what);
}

/* ---- hex, names, secrets ---- */

static int
cmd_hex(int argc, char **argv)
{
	char a[ID_HEX + 1], b[ID_HEX + 1];

	if (argc >= 2 && strcmp(argv[0], "valid") == 0) {
		printf("%d\n", hex_valid(argv[1], argc > 2 ?
		    strtoul(argv[2], NULL, 10) : ID_HEX));
		return 0;
	}
	if (argc == 2 && strcmp(argv[0], "name") == 0) {
		printf("%d\n", name_valid(argv[1]));
		return 0;
	}
	if (argc == 3 && strcmp(argv[0], "secret") == 0) {
		printf("%d\n", secret_equal(argv[1], argv[2]));
		return 0;
	}
	if (argc == 1 && strcmp(argv[0], "random") == 0) {
		hex_random(a, ID_HEX / 2);
		hex_random(b, ID_HEX / 2);
		printf("%s\n%s\n%d %d %d\n", a, b, hex_valid(a, ID_HEX),
		    hex_valid(b, ID_HEX), strcmp(a, b) != 0);
		return 0;
	}
	errx(2, "hex: bad arguments");
}

/* ---- racing, with listeners in child processes ---- */

static pid_t kids[TICKET_ADDRS];
static int nkids;

/* A loopback listener on a fresh port; its "127.0.0.1:port" into out. */
static int
listener(char *out, size_t n)
{
	int fd = listen_tcp("127.0.0.1:0", 16);

	if (fd == -1)
		die("listen_tcp");
	fd_sockname(fd, out, n);
	return fd;
}

/* Serve one kind of listener until killed. */
static void
serve(int lfd, const char *kind)
{
	char id[ID_HEX + 1], token[ID_HEX + 1], line[LINE_MAX_ + 1];
	int fd;

	for (;;) {
		if ((fd = accept(lfd, NULL, NULL)) == -1)
			_exit(2);
		if (strcmp(kind, "ok") == 0) {
			/* The real answering side: check session and token. */
			if (hs_read(fd, id, token, 3000) == 0 &&
			    hs_answer(fd, token, strcmp(id, SESSID) == 0 ? TOKEN :
			    NULL) == 0)
				line_write(fd, 1000, "hello from the listener");
		} else if (strcmp(kind, "plain") == 0) {
			line_write(fd, 1000, "hello from the listener");
		} else if (strcmp(kind, "garbage") == 0) {
			if (write(fd, "SSH-2.0-OpenSSH_9.2\r\n", 21) < 0)
				_exit(2);
		} else if (strcmp(kind, "close") == 0 ||
		    strcmp(kind, "close-late") == 0) {
			/* Read the dialer's line, then hang up without a word. */
			line_read(fd, line, sizeof(line), 3000);
			if (kind[5] == '-')
				usleep(300000);
			close(fd);
			continue;
		} else if (strcmp(kind, "silent") == 0) {
			pause();
		}
		sleep(5);
		close(fd);
	}
}

static int
cmd_race(int argc, char **argv)
{
	char addrs[TICKET_ADDRS][ADDR_STR], why[LINE_MAX_], won[ADDR_STR];
	char line[LINE_MAX_ + 1];
	struct race_hs hs = { .id = SESSID, .token = TOKEN, .commit = -1 };
	int ch, ms = 2000, stagger = 250, plain = 0, held = 0, i, n, fd, lfd;
	long t0, took;
	pid_t pid;

	while ((ch = getopt(argc, argv, "cHps:t:w")) != -1) {
		switch (ch) {
		case 'c':
			if ((hs.commit = commit_new()) == -1)
				die("eventfd");
			break;
		case 'H': held = 1; break;
		case 'p': plain = 1; break;
		case 's': stagger = atoi(optarg); break;
		case 't': ms = atoi(optarg); break;
		case 'w': hs.token = WRONG; break;
		default: return 2;
		}
	}
	argc -= optind;
	argv += optind;
	n = argc < TICKET_ADDRS ? argc : TICKET_ADDRS;
	for (i = 0; i < n; i++) {
		if (strcmp(argv[i], "refused") == 0) {
			/* A port that was free a moment ago: connect is refused. */
			lfd = listener(addrs[i], ADDR_STR);
			close(lfd);
			continue;
		}
		if (strchr(argv[i], ':') != NULL || strcmp(argv[i], "junk") == 0) {
			strlcpy(addrs[i], argv[i], ADDR_STR);
			continue;
		}
		lfd = listener(addrs[i], ADDR_STR);
		if ((pid = fork()) == -1)
			die("fork");
		if (pid == 0) {
			signal(SIGTERM, SIG_DFL);
			serve(lfd, argv[i]);
		}
		kids[nkids++] = pid;
		close(lfd);
	}
	if (held && !commit_take(hs.commit))
		die("commitment");
	t0 = now_ms();
	fd = dial_race(addrs, n, plain ? NULL : &hs, ms, stagger, why,
	    sizeof(why), won, sizeof(won));
	took = now_ms() - t0;
	if (fd == -1) {
		/* Name the candidates by their position, not their random port. */
		for (i = 0; i < n; i++) {
			char *p;

			while ((p = strstr(why, addrs[i])) != NULL) {
				char tmp[LINE_MAX_];

				snprintf(tmp, sizeof(tmp), "%.*s#%d%s", (int)(p - why),
				    why, i, p + strlen(addrs[i]));
				strlcpy(why, tmp, sizeof(why));
			}
		}
		printf("failed: %s\n", why);
	} else {
		for (i = 0; i < n && strcmp(won, addrs[i]) != 0; i++)
			;
		printf("won #%d\n", i);
		if (line_read(fd, line, sizeof(line), 2000) > 0)
			printf("data %s\n", line);
		else
			printf("data none: %s\n", errname(errno));
		printf("blocking %d\n", !(fcntl(fd, F_GETFL) & O_NONBLOCK));
		close(fd);
	}
	printf("took %ld\n", took);
	if (hs.commit != -1) {
		printf("go %d\n", fd != -1 && hs.go);
		printf("commitment %s\n", commit_take(hs.commit) ? "free" : "held");
	}
	for (i = 0; i < nkids; i++) {
		kill(kids[i], SIGTERM);
		waitpid(kids[i], NULL, 0);
	}
	return fd == -1;
}

/* ---- the handshake's state machine ---- */

/* What a step said, as text. */
static const char *
hs_said(int r, const struct handshake *h)
{
	static char buf[300];

	switch (r) {
	case HS_AGAIN: return "again";
	case HS_LINE: return "line";
	case HS_DONE: return "done";
	}
	snprintf(buf, sizeof(buf), "fail %s%s", h->why ? h->why : "timeout",
	    h->erred ? " (answered ERR)" : "");
	return buf;
}

static int
cmd_hs(int argc, char **argv)
{
	struct handshake h;
	const char *part = argc > 1 ? argv[1] : "";
	char *in, buf[8192];
	int sp[2], ch, r, commit = -1, held = 0, keep = 0, taken = 0, wrong = 0;
	int ms = 1000;
	long deadline;
	size_t len;
	ssize_t k;

	optind = 2;
	while ((ch = getopt(argc, argv, "cHkTt:w")) != -1) {
		switch (ch) {
		case 'c':
			if ((commit = commit_new()) == -1)
				die("eventfd");
			break;
		case 'H': held = 1; break;
		case 'k': keep = 1; break;
		case 'T': taken = 1; break;
		case 't': ms = atoi(optarg); break;
		case 'w': wrong = 1; break;
		default: return 2;
		}
	}
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1)
		die("socketpair");
	if (held && !commit_take(commit))
		die("commitment");
	deadline = now_ms() + ms;
	if (strcmp(part, "go") == 0) {
		commit = commit_new();
		if (held && !commit_take(commit))
			die("commitment");
		r = hs_go(sp[0], commit);
		printf("go %d\n", r);
	} else {
		in = slurp(&len);
		if (len > 65536)
			errx(2, "input too big for one socket buffer");
		if (len > 0 && write(sp[1], in, len) != (ssize_t)len)
			die("write");
		free(in);
		if (!keep)
			shutdown(sp[1], SHUT_WR);
		if (strcmp(part, "dial") == 0) {
			r = hs_dial(&h, sp[0], SESSID, TOKEN, commit, deadline);
		} else if (strcmp(part, "invitee") == 0 ||
		    strcmp(part, "inviter") == 0) {
			hs_listen(&h, strcmp(part, "invitee") == 0 ? HS_INVITEE :
			    HS_INVITER);
			r = hs_wait(&h, sp[0], deadline);
			printf("%s", hs_said(r, &h));
			if (r == HS_LINE)
				printf(" %s %s", h.id, h.token);
			printf("\n");
			if (r == HS_LINE)
				r = hs_reply(&h, sp[0], wrong ? WRONG : TOKEN, taken,
				    commit);
			/* The invitee waits while the commitment is held. */
			if (r == HS_AGAIN && h.part == HS_INVITEE)
				printf("waits\n");
		} else
			errx(2, "hs: dial, invitee, inviter or go");
		if (r == HS_AGAIN && !(h.part == HS_INVITEE))
			r = hs_wait(&h, sp[0], deadline);
		printf("%s\n", hs_said(r, &h));
		printf("go %d\n", h.go);
	}
	fd_nonblock(sp[1], 1);
	k = read(sp[1], buf, sizeof(buf));
	printf("sent ");
	if (k > 0)
		show(buf, k);
	printf("\n");
	if (commit != -1)
		printf("commitment %s\n", commit_take(commit) ? "free" : "held");
	fd_nonblock(sp[0], 1);
	k = read(sp[0], buf, sizeof(buf));
	printf("rest ");
	if (k > 0)
		show(buf, k);
	printf("\n");
	return 0;
}

/* ---- copy_loop ---- */

static int
cmd_copy(void)
{
	char buf[65536];
	int sp[2];
	ssize_t r;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1)
		die("socketpair");
	if ((pid = fork()) == -1)
		die("fork");
	if (pid == 0) {
		/* The far end: echo everything, then pass the end of input on. */
		close(sp[0]);
		while ((r = read(sp[1], buf, sizeof(buf))) > 0)
			if (write(sp[1], buf, r) != r)
				_exit(2);
		shutdown(sp[1], SHUT_WR);
		_exit(0);
	}
	close(sp[1]);
	signal(SIGPIPE, SIG_IGN);
	copy_loop(sp[0], 0, 1);
	waitpid(pid, NULL, 0);
	return 0;
}

static int
cmd_timeout(int argc, char **argv)
{
	printf("%d\n", env_timeout_ms(argc > 0 ? atoi(argv[0]) : 0,
	    argc > 1 ? atoi(argv[1]) : 3));
	return 0;
}

int
main(int argc, char *argv[])
{
	if (argc < 2)
		errx(2, "usage: unit ticket|addr|line|linebuf|words|fdpass|hex|race|"
		    "hs|copy|timeout ...");
	setvbuf(stdout, NULL, _IOLBF, 0);
	argc--;
	argv++;
	if (strcmp(argv[0], "ticket") == 0)
		return cmd_ticket();
	if (strcmp(argv[0], "addr") == 0)
		return cmd_addr(argc - 1, argv + 1);
	if (strcmp(argv[0], "line") == 0)
		return cmd_line(argc, argv);
	if (strcmp(argv[0], "linebuf") == 0)
		return cmd_linebuf(argc, argv);
	if (strcmp(argv[0], "words") == 0)
		return cmd_words(argc - 1, argv + 1);
	if (strcmp(argv[0], "fdpass") == 0 && argc == 2)
		return cmd_fdpass(argv[1]);
	if (strcmp(argv[0], "hex") == 0)
		return cmd_hex(argc - 1, argv + 1);
	if (strcmp(argv[0], "race") == 0)
		return cmd_race(argc, argv);
	if (strcmp(argv[0], "hs") == 0)
		return cmd_hs(argc, argv);
	if (strcmp(argv[0], "copy") == 0)
		return cmd_copy();
	if (strcmp(argv[0], "timeout") == 0)
		return cmd_timeout(argc - 1, argv + 1);
	errx(2, "unknown subcommand: %s", argv[0]);
}
