/*
 * rvd front ends that share presence and route messages through Redis
 * (rvd -r). Three connections, driven by rvd's own epoll loop: two hiredis
 * async ones, for commands and subscribed to this front end's channel, and
 * one that only publishes, without replies (CLIENT REPLY OFF): a message to
 * another front end costs Redis no reply, and rvd no wakeup to read one.
 * Nothing here blocks on Redis: while it is away rvd runs alone, and says
 * so once. With a password, AUTH goes first on each connection; a host
 * name is resolved once, at start (cluster_config), as hiredis would
 * resolve it again, blocking, at every connect.
 *
 * In Redis (rvd(8) says the same for operators):
 *   p2p:name:NAME   "FEID CONN", the listener's front end and connection,
 *                   PX CL_TTL_MS, refreshed while it is logged on
 *   p2p:fe:FEID     the channel a front end reads its messages on
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "p2p.h"

#define CL_STALL_MS 3000	/* a command unanswered this long: Redis is lost */
#define CL_BACKOFF_MIN 250	/* first wait before connecting again... */
#define CL_BACKOFF_MAX 4000	/* ...doubling up to this */
#define CL_MSG_MAX (2 * LINE_MAX_)	/* longest message between front ends */
#define CL_ADDRS 4		/* addresses of Redis's host name kept, tried in turn */

enum { CL_DOWN, CL_CONNECTING, CL_UP };

/* One hiredis connection's fd as the epoll loop sees it. */
struct watch {
	redisAsyncContext *ac;
	int fd;
	uint32_t ev, set;	/* what hiredis wants; what epoll has */
	int dirty;		/* commands queued since the last flush */
	int ready;		/* connected (cmd), or subscribed (sub) */
	const char *what;
};

static struct watch wcmd = { .fd = -1, .what = "commands" };
static struct watch wsub = { .fd = -1, .what = "channel" };

/* The publishing connection: hiredis's plain context, used non-blocking. */
static struct pubconn {
	redisContext *c;
	uint32_t set;		/* what epoll waits for */
	int dirty;		/* messages queued since the last flush */
	int ready;		/* connected */
} wpub;
static struct cluster_hooks hooks;
static char host[256], url[300], feid[CL_FE_HEX + 1], chan[64], why_lost[128];
static char user[128], pass[256];	/* AUTH [user] pass, if pass is set */
static char refused[128];	/* why Redis refused our AUTH (or wants one) */
static char addrs[CL_ADDRS][64];	/* host resolved at start, numeric */
static int naddrs, cur;		/* how many; the one connected to */
static int port, ep = -1, state = CL_DOWN, ever_up, said_unreachable;
static int said_refused;
static long retry_at, backoff = CL_BACKOFF_MIN, since, down_at;
static long pending, progress_at;
static int flushing;		/* inside cluster_flush's write */

/*
 * Claim a name, or refresh the claim: set it unless a live front end
 * other than ours holds it; with "take", a holder elsewhere is told to let
 * go (KICK) and the name is ours all the same. A holder whose front end
 * has no subscriber is dead (its key waits out its TTL): the name is free.
 * Returns 1 when the name is ours, 0 when another front end keeps it.
 */
static const char claim_lua[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v and v ~= ARGV[1] then\n"
    "  local fe, cid = string.match(v, '^(%x+) (%S+)$')\n"
    "  if fe and fe ~= ARGV[4] and\n"
    "      redis.call('PUBSUB', 'NUMSUB', 'p2p:fe:' .. fe)[2] > 0 then\n"
    "    if ARGV[3] ~= 'take' then return 0 end\n"
    "    redis.call('PUBLISH', 'p2p:fe:' .. fe,\n"
    "      'KICK ' .. ARGV[4] .. ' ' .. ARGV[5] .. ' ' .. cid)\n"
    "  end\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "return 1\n";

/* Pass a message to the front end that holds a name: its id, or nil. */
static const char route_lua[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v then return false end\n"
    "local fe = string.match(v, '^(%x+) ')\n"
    "if not fe or fe == ARGV[1] then return false end\n"
    "if redis.call('PUBLISH', 'p2p:fe:' .. fe, ARGV[2]) == 0 then\n"
    "  return false\n"
    "end\n"
    "return fe\n";

/* Let go of a name, unless somebody newer holds it already. */
static const char release_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "end\n"
    "return 1\n";

/*
 * Have epoll wait for ev on fd (ptr its cookie) if *set, what it waits
 * for now, differs: hiredis asks for reads again after every read and
 * write, and each epoll_ctl is a system call.
 */
static void
ep_want(int fd, void *ptr, uint32_t *set, uint32_t ev)
{
	if (fd != -1 && ev != *set && epoll_ctl(ep, EPOLL_CTL_MOD, fd,
	    &(struct epoll_event){ .events = ev, .data.ptr = ptr }) == 0)
		*set = ev;
}

/* Tell epoll what w waits for now. */
static void
watch_set(struct watch *w)
{
	ep_want(w->fd, w, &w->set, w->ev);
}

/* hiredis wants to read. */
static void
ev_add_read(void *p)
{
	struct watch *w = p;

	w->ev |= EPOLLIN;
	watch_set(w);
}

/* hiredis no longer wants to read. */
static void
ev_del_read(void *p)
{
	struct watch *w = p;

	w->ev &= ~EPOLLIN;
	watch_set(w);
}

/*
 * hiredis has something to write (or a connect to finish). Once connected,
 * commands wait for cluster_flush at the end of the loop's turn, written
 * together at once: EPOLLOUT only when the socket is full.
 */
static void
ev_add_write(void *p)
{
	struct watch *w = p;

	if (!flushing && w->ac != NULL && (w->ac->c.flags & REDIS_CONNECTED)) {
		w->dirty = 1;
		return;
	}
	w->ev |= EPOLLOUT;
	watch_set(w);
}

/* hiredis has written everything. */
static void
ev_del_write(void *p)
{
	struct watch *w = p;

	w->ev &= ~EPOLLOUT;
	watch_set(w);
}

/*
 * hiredis is freeing the context (lost, or freed by us): forget its fd.
 * cluster_tick notices and tears down the other one: not here, inside
 * hiredis.
 */
static void
ev_cleanup(void *p)
{
	struct watch *w = p;

	if (w->fd != -1)
		epoll_ctl(ep, EPOLL_CTL_DEL, w->fd, NULL);
	if (w->ac != NULL && w->ac->errstr[0] != '\0' && why_lost[0] == '\0')
		snprintf(why_lost, sizeof(why_lost), "%s", w->ac->errstr);
	w->ac = NULL;
	w->fd = -1;
	w->ev = w->set = 0;
	w->dirty = w->ready = 0;
}

/* Start a non-blocking connection to Redis for w, hooked into epoll. */
static int
watch_open(struct watch *w)
{
	redisAsyncContext *ac;

	/* An address, numeric: hiredis would resolve a name here, blocking. */
	if ((ac = redisAsyncConnect(addrs[cur], port)) == NULL)
		return -1;
	if (ac->err) {
		snprintf(why_lost, sizeof(why_lost), "%s", ac->errstr);
		redisAsyncFree(ac);
		return -1;
	}
	fd_cloexec(ac->c.fd);
	w->ac = ac;
	w->fd = ac->c.fd;
	w->ev = w->set = 0;
	w->dirty = w->ready = 0;
	ac->ev.data = w;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, w->fd, &(struct epoll_event){
	    .events = 0, .data.ptr = w }) == -1) {
		redisAsyncFree(ac);
		return -1;
	}
	return 0;
}

/* Both connections are in: the cluster is up, and the names claimed again. */
static void
maybe_up(void)
{
	if (state != CL_CONNECTING || !wcmd.ready || !wsub.ready || !wpub.ready)
		return;
	state = CL_UP;
	backoff = CL_BACKOFF_MIN;
	progress_at = now_ms();
	if (ever_up)
		logline("redis: back at %s after %ld ms; claiming our names again",
		    cluster_where(), now_ms() - down_at);
	else
		logline("redis: connected to %s as front end %s", cluster_where(),
		    feid);
	ever_up = 1;
	said_refused = 0;
	why_lost[0] = '\0';
	if (hooks.up != NULL)
		hooks.up();
}

/* Keep the first refusal of this attempt to connect: cluster_tick gives up. */
static void
refuse(const char *why)
{
	size_t n;

	if (refused[0] != '\0')
		return;
	snprintf(refused, sizeof(refused), "%s", why);
	if ((n = strlen(refused)) > 0 && refused[n - 1] == '.')
		refused[n - 1] = '\0';	/* our log line goes on */
}

/*
 * The reply to AUTH, or to CLIENT SETNAME (last): an error is Redis
 * refusing us (a wrong password, or none where it wants one); SETNAME's
 * OK on the command connection means that one is ready.
 */
static void
on_hello(redisAsyncContext *ac, void *r, void *last)
{
	redisReply *rep = r;

	if (rep == NULL)
		return;
	if (rep->type == REDIS_REPLY_ERROR)
		refuse(rep->str);
	else if (last != NULL && ac == wcmd.ac) {
		wcmd.ready = 1;
		maybe_up();
	}
}

/* AUTH [user] pass, as argv for hiredis; 0 when we have no password. */
static int
auth_argv(const char **argv, size_t *len)
{
	int i, n = 0;

	if (pass[0] == '\0')
		return 0;
	argv[n++] = "AUTH";
	if (user[0] != '\0')
		argv[n++] = user;
	argv[n++] = pass;
	for (i = 0; i < n; i++)
		len[i] = strlen(argv[i]);
	return n;
}

/* Send AUTH first on w, if we have a password. */
static void
auth_async(struct watch *w)
{
	const char *argv[3];
	size_t len[3];
	int n;

	if ((n = auth_argv(argv, len)) > 0)
		redisAsyncCommandArgv(w->ac, on_hello, NULL, n, argv, len);
}

/* One message on our channel (or the SUBSCRIBE's confirmation). */
static void
on_sub(redisAsyncContext *ac, void *r, void *priv)
{
	static long bad_at;
	redisReply *rep = r;
	char msg[CL_MSG_MAX + 1];

	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
	    rep->element[0]->type != REDIS_REPLY_STRING)
		return;
	progress_at = now_ms();
	if (strcmp(rep->element[0]->str, "subscribe") == 0) {
		wsub.ready = 1;
		maybe_up();
		return;
	}
	if (strcmp(rep->element[0]->str, "message") != 0)
		return;
	if (rep->element[2]->type != REDIS_REPLY_STRING ||
	    rep->element[2]->len > CL_MSG_MAX ||
	    memchr(rep->element[2]->str, '\0', rep->element[2]->len) != NULL) {
		if (now_ms() - bad_at >= 1000)
			logline("redis: dropped a message on %s that does not parse",
			    chan);
		bad_at = now_ms();
		return;
	}
	memcpy(msg, rep->element[2]->str, rep->element[2]->len);
	msg[rep->element[2]->len] = '\0';
	if (hooks.message != NULL)
		hooks.message(msg);
}

/* Set what epoll waits for on the publishing connection: out, or only in. */
static void
pub_want(uint32_t ev)
{
	if (wpub.c != NULL)
		ep_want(wpub.c->fd, &wpub, &wpub.set, ev);
}

/* Close the publishing connection, keeping why for the log line. */
static void
pub_close(const char *why)
{
	if (wpub.c == NULL)
		return;
	if (why != NULL && why_lost[0] == '\0')
		snprintf(why_lost, sizeof(why_lost), "%s", why);
	epoll_ctl(ep, EPOLL_CTL_DEL, wpub.c->fd, NULL);
	redisFree(wpub.c);
	memset(&wpub, 0, sizeof(wpub));
}

/*
 * Start the publishing connection, non-blocking; its first command (after
 * AUTH, whose reply is the only one read) turns replies off, so that
 * nothing else is ever read on it but the close.
 */
static int
pub_open(void)
{
	static const char *off[] = { "CLIENT", "REPLY", "OFF" };
	const char *argv[3];
	size_t len[3];
	int n;

	if ((wpub.c = redisConnectNonBlock(addrs[cur], port)) == NULL)
		return -1;
	if (wpub.c->err) {
		pub_close(wpub.c->errstr);
		return -1;
	}
	fd_cloexec(wpub.c->fd);
	if (epoll_ctl(ep, EPOLL_CTL_ADD, wpub.c->fd, &(struct epoll_event){
	    .events = EPOLLIN | EPOLLOUT, .data.ptr = &wpub }) == -1) {
		pub_close(NULL);
		return -1;
	}
	wpub.set = EPOLLIN | EPOLLOUT;	/* EPOLLOUT: the connect is done */
	if ((n = auth_argv(argv, len)) > 0)
		redisAppendCommandArgv(wpub.c, n, argv, len);
	redisAppendCommandArgv(wpub.c, 3, off, NULL);
	return 0;
}

/* Write what is queued on the publishing connection; EPOLLOUT if it is full. */
static void
pub_write(void)
{
	int done = 0;

	wpub.dirty = 0;
	if (redisBufferWrite(wpub.c, &done) == REDIS_ERR) {
		pub_close(wpub.c->errstr);
		return;
	}
	pub_want(done ? EPOLLIN : EPOLLIN | EPOLLOUT);
}

/* An event on the publishing connection: connected, writable, or closed. */
static void
pub_event(uint32_t events)
{
	redisReply *r;
	int e = 0;

	if (wpub.c == NULL)
		return;
	if (!wpub.ready && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
		if (getsockopt(wpub.c->fd, SOL_SOCKET, SO_ERROR, &e,
		    &(socklen_t){ sizeof(e) }) == -1 || e != 0 ||
		    (events & (EPOLLERR | EPOLLHUP))) {
			pub_close(strerror(e ? e : ECONNREFUSED));
			return;
		}
		wpub.ready = 1;
		maybe_up();
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
		/* AUTH's reply, else Redis closing, or refusing us (NOAUTH). */
		if (redisBufferRead(wpub.c) == REDIS_ERR) {
			pub_close(wpub.c->errstr[0] ? wpub.c->errstr : "closed");
			return;
		}
		while (redisGetReplyFromReader(wpub.c, (void **)&r) ==
		    REDIS_OK && r != NULL) {
			if (r->type == REDIS_REPLY_ERROR)
				refuse(r->str);
			freeReplyObject(r);
		}
	}
	if (events & EPOLLOUT)
		pub_write();
}

/* Connect all three connections; the loop finishes the handshakes. */
static void
cluster_connect(void)
{
	state = CL_CONNECTING;
	since = now_ms();
	pending = 0;
	why_lost[0] = refused[0] = '\0';
	if (watch_open(&wcmd) == -1 || watch_open(&wsub) == -1 ||
	    pub_open() == -1)
		return;		/* cluster_tick sees a watch gone, and waits */
	/* hiredis writes once connect() is done; this gives it the first
	 * write (and so the connect's completion) to wait for. AUTH goes
	 * first; SETNAME's answer says the command connection is ready. */
	auth_async(&wsub);
	redisAsyncCommand(wsub.ac, on_sub, NULL, "SUBSCRIBE %s", chan);
	auth_async(&wcmd);
	redisAsyncCommand(wcmd.ac, on_hello, &wcmd, "CLIENT SETNAME rvd-%s", feid);
}

/*
 * Parse the credentials of redis://[USER][:PASSWORD]@..., len bytes of s,
 * into user and pass (%XX escapes decoded); -1 if they do not parse.
 */
static int
userinfo_parse(const char *s, size_t len)
{
	const char *colon = memchr(s, ':', len);
	size_t ul = colon ? (size_t)(colon - s) : len;

	if (pct_decode(s, ul, user, sizeof(user)) == -1 || (colon != NULL &&
	    (pct_decode(colon + 1, len - ul - 1, pass, sizeof(pass)) == -1 ||
	    pass[0] == '\0')) || (colon == NULL && user[0] == '\0'))
		return -1;
	return 0;
}

/* Parse redis://[[USER][:PASSWORD]@]HOST[:PORT] into its parts; -1 if bad. */
static int
url_parse(const char *u)
{
	char p[16], hp[sizeof(host) + 16];
	const char *at, *e;

	if (strncmp(u, "redis://", 8) != 0)
		return -1;
	u += 8;
	if ((at = strrchr(u, '@')) != NULL) {
		if (userinfo_parse(u, at - u) == -1)
			return -1;
		u = at + 1;
	}
	if (strlen(u) >= sizeof(hp) || strpbrk(u, "/?") != NULL ||
	    !line_printable(u) || strchr(u, ' ') != NULL)
		return -1;
	strlcpy(hp, u, sizeof(hp));
	if (addr_split(hp, host, sizeof(host), p, sizeof(p)) == -1) {
		if (strchr(hp, ':') != NULL || hp[0] == '\0')
			return -1;
		strlcpy(host, hp, sizeof(host));
		strlcpy(p, "6379", sizeof(p));
	}
	port = strtonum(p, 1, 65535, &e);
	return e != NULL || host[0] == '\0' ? -1 : 0;
}

/* Resolve host once, keeping up to CL_ADDRS numeric addresses; -1 with why. */
static int
host_resolve(char *why, size_t n)
{
	struct addr a[CL_ADDRS];
	char hp[sizeof(host) + 16];
	int i;

	snprintf(hp, sizeof(hp), strchr(host, ':') ? "[%s]:%d" : "%s:%d",
	    host, port);
	if ((naddrs = addr_resolve(hp, NULL, a, CL_ADDRS)) <= 0) {
		snprintf(why, n, "-r: cannot resolve %s: %s", host,
		    naddrs == 0 ? "no address" : addr_strerror(errno));
		return -1;
	}
	for (i = 0; i < naddrs; i++)
		addr_ip((struct sockaddr *)&a[i].ss, addrs[i], sizeof(addrs[i]));
	return 0;
}

/*
 * Take the Redis URL u, with password (if any) for AUTH when u has none,
 * and resolve its host, before rvd starts: 0, else an exit status with
 * why (EX_USAGE_: u does not parse; EX_SYSTEM: its host does not resolve).
 */
int
cluster_config(const char *u, const char *password, char *why, size_t n)
{
	const char *at = strrchr(u, '@');

	user[0] = pass[0] = '\0';
	if (url_parse(u) == -1) {
		/* Not the credentials: error lines end up in logs. */
		snprintf(why, n, "bad -r: %s%s: redis://[[USER]:PASSWORD@]HOST"
		    "[:PORT] expected", at ? "redis://...@" : u, at ? at + 1 : "");
		return EX_USAGE_;
	}
	if (pass[0] == '\0' && password != NULL && password[0] != '\0' &&
	    strlcpy(pass, password, sizeof(pass)) >= sizeof(pass)) {
		snprintf(why, n, "P2P_REDIS_PASSWORD: longer than %zu bytes",
		    sizeof(pass) - 1);
		return EX_USAGE_;
	}
	if (user[0] != '\0' && pass[0] == '\0') {
		snprintf(why, n, "-r: user %s but no password: give it in the "
		    "URL or in P2P_REDIS_PASSWORD", user);
		return EX_USAGE_;
	}
	snprintf(url, sizeof(url), strchr(host, ':') ? "redis://[%s]:%d" :
	    "redis://%s:%d", host, port);
	return host_resolve(why, n) == -1 ? EX_SYSTEM : 0;
}

/*
 * Become a front end of the cluster that Redis (cluster_config) serves,
 * with a new random id, driven by epoll set epfd. An unreachable Redis is
 * no error: rvd runs alone until it answers.
 */
void
cluster_start(int epfd, const struct cluster_hooks *h)
{
	ep = epfd;
	hooks = *h;
	hex_random(feid, CL_FE_HEX / 2);
	snprintf(chan, sizeof(chan), "p2p:fe:%s", feid);
	down_at = now_ms();
	cluster_connect();
}

/* Redis as the log shows it: its URL without credentials, and the address. */
const char *
cluster_where(void)
{
	static char b[sizeof(url) + 80];

	if (strcmp(host, addrs[cur]) == 0)
		return url;
	snprintf(b, sizeof(b), "%s (%s)", url, addrs[cur]);
	return b;
}

/* This front end's id: CL_FE_HEX hex digits, new at every start. */
const char *
cluster_id(void)
{
	return feid;
}

/* Whether Redis answers: names are shared and messages routed. */
int
cluster_up(void)
{
	return state == CL_UP && wcmd.ac != NULL && wsub.ac != NULL &&
	    wpub.c != NULL;
}

/* Act on an epoll event if it is one of ours: 1 if it was. */
int
cluster_event(void *ptr, uint32_t events)
{
	struct watch *w = ptr;

	if (ptr == &wpub) {
		pub_event(events);
		return 1;
	}
	if (w != &wcmd && w != &wsub)
		return 0;
	if (w->ac == NULL)
		return 1;
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		redisAsyncHandleRead(w->ac);
	/* The read may have freed the context (Redis closed). */
	if (w->ac != NULL && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
		redisAsyncHandleWrite(w->ac);
	return 1;
}

/* Write what w's commands of this turn of the loop left queued. */
static void
watch_flush(struct watch *w)
{
	if (w->ac == NULL || !w->dirty)
		return;
	w->dirty = 0;
	flushing = 1;
	redisAsyncHandleWrite(w->ac);	/* may free it: Redis closed */
	flushing = 0;
}

/*
 * Before the loop waits: send the commands queued during this turn, one
 * write for all of them on each connection.
 */
void
cluster_flush(void)
{
	if (ep == -1)
		return;
	watch_flush(&wcmd);
	watch_flush(&wsub);
	if (wpub.c != NULL && wpub.ready && wpub.dirty)
		pub_write();
}

/* Free what is left of both connections. */
static void
cluster_drop(void)
{
	if (wcmd.ac != NULL)
		redisAsyncFree(wcmd.ac);
	if (wsub.ac != NULL)
		redisAsyncFree(wsub.ac);
	pub_close(NULL);
}

/*
 * Once a turn of the loop: notice Redis lost (a connection gone, a
 * command unanswered for CL_STALL_MS, or our AUTH refused), say so once,
 * and connect again after a backoff, to the host's next address if the
 * attempt failed.
 */
void
cluster_tick(void)
{
	long now = now_ms();
	int lost;

	if (ep == -1)
		return;
	if (state == CL_DOWN) {
		if (now >= retry_at)
			cluster_connect();
		return;
	}
	lost = wcmd.ac == NULL || wsub.ac == NULL || wpub.c == NULL ||
	    refused[0] != '\0';
	if (!lost && state == CL_CONNECTING && now - since > CL_STALL_MS) {
		snprintf(why_lost, sizeof(why_lost), "no answer in %d ms",
		    CL_STALL_MS);
		lost = 1;
	}
	if (!lost && state == CL_UP && pending > 0 &&
	    now - progress_at > CL_STALL_MS) {
		snprintf(why_lost, sizeof(why_lost), "no answer in %d ms",
		    CL_STALL_MS);
		lost = 1;
	}
	if (!lost)
		return;
	if (state == CL_UP) {
		logline("redis: lost %s: %s; this front end runs alone until "
		    "it is back", cluster_where(), why_lost[0] ? why_lost :
		    "closed");
		down_at = now;
	} else if (refused[0] != '\0') {
		if (!said_refused++)
			logline("redis: %s refuses us: %s; this front end runs "
			    "alone until it lets us in", cluster_where(),
			    refused);
	} else if (!ever_up && !said_unreachable++)
		logline("redis: cannot reach %s: %s; this front end runs alone "
		    "until it answers", cluster_where(), why_lost[0] ?
		    why_lost : "closed");
	if (state != CL_UP)
		cur = (cur + 1) % naddrs;
	state = CL_DOWN;
	cluster_drop();
	retry_at = now + backoff + arc4random_uniform(backoff / 4 + 1);
	backoff = backoff * 2 > CL_BACKOFF_MAX ? CL_BACKOFF_MAX : backoff * 2;
}

/* Milliseconds until cluster_tick has something to do, or -1. */
int
cluster_timeout(long now)
{
	long t;

	if (ep == -1)
		return -1;
	if (state == CL_DOWN)
		t = retry_at;
	else if (state == CL_CONNECTING)
		t = since + CL_STALL_MS + 1;
	else if (pending > 0)
		t = progress_at + CL_STALL_MS + 1;
	else
		return -1;
	return t <= now ? 0 : (int)(t - now);
}

/* Close both connections for good (rvd is stopping). */
void
cluster_stop(void)
{
	if (ep == -1)
		return;
	state = CL_DOWN;
	cluster_drop();
	ep = -1;
}

/* A reply to one of our commands: pass the verdict to its request. */
static void
on_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct cl_req *q = priv;
	redisReply *rep = r;
	int res = -1;
	const char *s = NULL;

	pending--;
	if (rep == NULL)
		state = state == CL_UP ? CL_CONNECTING : state;	/* going down */
	else {
		progress_at = now_ms();
		if (rep->type == REDIS_REPLY_INTEGER)
			res = rep->integer == 1;
		else if (rep->type == REDIS_REPLY_NIL)
			res = 0;
		else if (rep->type == REDIS_REPLY_STRING) {
			res = 1;
			s = rep->str;
		} else if (rep->type == REDIS_REPLY_ERROR)
			logline("redis: %s", rep->str);
	}
	if (q == NULL)
		return;
	if (q->fn != NULL)
		q->fn(q, res, s);
	free(q);
}

/*
 * Send one command (argv); q, if any, gets the reply, or -1 should Redis
 * be away or go. 0 if sent.
 */
static int
command(struct cl_req *q, int argc, const char **argv)
{
	size_t len[CL_ARGS];
	int i;

	for (i = 0; i < argc && i < CL_ARGS; i++)
		len[i] = strlen(argv[i]);
	if (argc > CL_ARGS || !cluster_up() || redisAsyncCommandArgv(wcmd.ac,
	    on_reply, q, argc, argv, len) != REDIS_OK) {
		if (q != NULL && q->fn != NULL)
			q->fn(q, -1, NULL);
		free(q);
		return -1;
	}
	if (pending++ == 0)
		progress_at = now_ms();
	return 0;
}

/* A request whose verdict goes to fn, about connection fd/serial. */
struct cl_req *
cl_req_new(cl_fn *fn, int fd, unsigned long serial, const char *id,
    const char *name)
{
	struct cl_req *q;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		err(EX_SYSTEM, "calloc");
	q->fn = fn;
	q->fd = fd;
	q->serial = serial;
	strlcpy(q->id, id ? id : "", sizeof(q->id));
	strlcpy(q->name, name ? name : "", sizeof(q->name));
	return q;
}

/* The key and value that say conn (its "fd.serial") holds name here. */
static void
presence(const char *name, const char *conn, char *key, size_t kn, char *val,
    size_t vn)
{
	snprintf(key, kn, "p2p:name:%s", name);
	snprintf(val, vn, "%s %s", feid, conn);
}

/*
 * Claim name (or refresh the claim) for the listener conn; take: a holder
 * at another live front end is replaced (users file), else it keeps the
 * name (-o). q gets 1 (ours), 0 (kept elsewhere) or -1 (Redis away).
 */
int
cluster_claim(const char *name, const char *conn, int take, struct cl_req *q)
{
	char key[NAME_MAX_ + 16], val[CL_FE_HEX + 32], ttl[16];
	const char *argv[] = { "EVAL", claim_lua, "1", key, val, ttl,
	    take ? "take" : "keep", feid, name };

	presence(name, conn, key, sizeof(key), val, sizeof(val));
	snprintf(ttl, sizeof(ttl), "%d", CL_TTL_MS);
	return command(q, sizeof(argv) / sizeof(argv[0]), argv);
}

/*
 * Keep name's key alive for another CL_TTL_MS: a PEXPIRE, not the claim's
 * script, as every listener does it every few seconds. q gets 1, or 0 when
 * the key is gone (Redis restarted empty, say): then claim it again.
 */
int
cluster_refresh(const char *name, struct cl_req *q)
{
	char key[NAME_MAX_ + 16], ttl[16];
	const char *argv[] = { "PEXPIRE", key, ttl };

	snprintf(key, sizeof(key), "p2p:name:%s", name);
	snprintf(ttl, sizeof(ttl), "%d", CL_TTL_MS);
	return command(q, sizeof(argv) / sizeof(argv[0]), argv);
}

/* Let go of name, held by the listener conn that is closing. */
void
cluster_release(const char *name, const char *conn)
{
	char key[NAME_MAX_ + 16], val[CL_FE_HEX + 32];
	const char *argv[] = { "EVAL", release_lua, "1", key, val };

	presence(name, conn, key, sizeof(key), val, sizeof(val));
	command(NULL, sizeof(argv) / sizeof(argv[0]), argv);
}

/*
 * Pass msg to the front end where name listens, if another live one: q
 * gets 1 and that front end's id, 0 (nobody holds it), or -1.
 */
int
cluster_route(const char *name, const char *msg, struct cl_req *q)
{
	char key[NAME_MAX_ + 16];
	const char *argv[] = { "EVAL", route_lua, "1", key, feid, msg };

	snprintf(key, sizeof(key), "p2p:name:%s", name);
	return command(q, sizeof(argv) / sizeof(argv[0]), argv);
}

/*
 * Send one message to front end fe's channel, on the connection without
 * replies: nobody hears of its fate. 0 if queued, -1 if Redis is away.
 */
int
cluster_publish(const char *fe, const char *fmt, ...)
{
	char msg[CL_MSG_MAX + 1], ch[sizeof(chan)];
	const char *argv[] = { "PUBLISH", ch, msg };
	va_list ap;

	if (!cluster_up())
		return -1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(ch, sizeof(ch), "p2p:fe:%s", fe);
	if (redisAppendCommandArgv(wpub.c, 3, argv, NULL) != REDIS_OK)
		return -1;
	wpub.dirty = 1;
	return 0;
}

/* Whether s is a connection's "fd.serial". */
static int
conn_valid(const char *s)
{
	size_t a = strspn(s, "0123456789");

	return a > 0 && a < 12 && s[a] == '.' && strlen(s + a + 1) < 21 &&
	    s[a + 1] != '\0' && strspn(s + a + 1, "0123456789") ==
	    strlen(s + a + 1);
}

/*
 * Parse one message from another front end, in place: 0 with m filled in
 * (m points into msg), -1 for anything that does not parse.
 *
 *   INVITE fe from to id token addr...    an invitation for our listener
 *   SENT fe id [cand...]                  it was passed on
 *   ERR fe id reason...                   a session's error, for our party
 *   MSG fe id word...                     a session's message
 *   RELAY fe conn from to sid relayaddr [plain]  a relay request for our listener
 *   TELL fe conn SENT|ERR word...         a line for connection conn
 *   KICK fe name conn                     name is held at fe now
 *   PUNCH fe id observed local rtt [now]  the other party's punch
 *   PUNCH fe id gone                      ...closed before ours came
 */
int
cluster_parse(char *msg, struct clmsg *m)
{
	static const char *kinds[] = { "INVITE", "SENT", "ERR", "MSG", "RELAY",
	    "TELL", "KICK", "PUNCH" };
	const char *e;
	char **w = m->w;
	size_t i;
	int n;

	memset(m, 0, sizeof(*m));
	m->kind = -1;
	if (!line_printable(msg) ||
	    (n = line_words(msg, w, CL_WORDS)) < 3 || !hex_valid(w[1], CL_FE_HEX))
		return -1;
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(w[0], kinds[i]) == 0)
			m->kind = i;
	m->fe = w[1];
	switch (m->kind) {
	case CL_INVITE:
		if (n < 6 || n - 6 > TICKET_ADDRS + 1 || !name_valid(w[2]) ||
		    !name_valid(w[3]) || !hex_valid(w[4], ID_HEX) ||
		    !hex_valid(w[5], ID_HEX) || !cand_words_ok(w + 6, n - 6, 0))
			return -1;
		m->from = w[2];
		m->to = w[3];
		m->id = w[4];
		m->token = w[5];
		m->words = w + 6;
		m->nwords = n - 6;
		return 0;
	case CL_SENT:
	case CL_ERR:
	case CL_MSG:
		if (!hex_valid(w[2], ID_HEX) || (m->kind != CL_SENT && n < 4) ||
		    (m->kind == CL_SENT && (n - 3 > TICKET_ADDRS +
		    TICKET_PORTS + 1 || !cand_words_ok(w + 3, n - 3, 1))))
			return -1;
		m->id = w[2];
		m->words = w + 3;
		m->nwords = n - 3;
		return 0;
	case CL_RELAY:
		if ((m->plain = words_flag(w, n, 7, "plain")) == -1 ||
		    !conn_valid(w[2]) || !name_valid(w[3]) ||
		    !name_valid(w[4]) || !hex_valid(w[5], ID_HEX) ||
		    strlen(w[6]) >= HOSTPORT_MAX)
			return -1;
		m->conn = w[2];
		m->from = w[3];
		m->to = w[4];
		m->id = w[5];
		m->relay = w[6];
		return 0;
	case CL_TELL:
		if (n < 5 || !conn_valid(w[2]) || (strcmp(w[3], "SENT") != 0 &&
		    strcmp(w[3], "ERR") != 0) || !hex_valid(w[4], ID_HEX))
			return -1;
		m->conn = w[2];
		m->words = w + 3;
		m->nwords = n - 3;
		return 0;
	case CL_KICK:
		if (n != 4 || !name_valid(w[2]) || !conn_valid(w[3]))
			return -1;
		m->to = w[2];
		m->conn = w[3];
		return 0;
	case CL_PUNCH:
		if (n == 4 && hex_valid(w[2], ID_HEX) && strcmp(w[3], "gone") == 0) {
			m->id = w[2];
			m->gone = 1;
			return 0;
		}
		if ((m->now = words_flag(w, n, 6, "now")) == -1 ||
		    !hex_valid(w[2], ID_HEX) || !cand_words_ok(w + 3, 2, 0))
			return -1;
		m->rtt = strtonum(w[5], 0, 600000, &e);
		if (e != NULL)
			return -1;
		m->id = w[2];
		m->observed = w[3];
		m->local = w[4];
		return 0;
	}
	return -1;
}
