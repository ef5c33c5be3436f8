/* p2pdial: what the tools share. One header; one .c file per concern. */
#ifndef P2P_H
#define P2P_H

#include <sys/types.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>
#include <err.h>

/* Exit status, the same for every tool. */
enum {
	EX_CONNECTED = 0,	/* connected, or nothing to do */
	EX_NOTCONN = 1,		/* not connected; the ticket was passed on */
	EX_USAGE_ = 100,	/* usage error or input no retry can fix */
	EX_SYSTEM = 111		/* a system error stopped the tool */
};

#define LINE_MAX_ 1024		/* longest protocol line, without its newline */
#define ID_HEX 32		/* ids and tokens: 128 bits in hex */
#define NAME_MAX_ 64		/* longest peer name */
#define ADDR_STR 64		/* room for "[v6]:port" */
#define TICKET_ADDRS 16		/* most candidates a ticket holds */
#define TICKET_PORTS 8
#define TICKET_TRIED 32
#define RV_RELAYS 4		/* most relays rvd names, and a ticket holds */
#define HOSTPORT_MAX (ADDR_STR + 192)	/* "host.name:port" */

/* addr.c */
struct addr {
	struct sockaddr_storage ss;
	socklen_t len;
};
int addr_split(const char *s, char *host, size_t hn, char *port, size_t pn);
int addr_numeric(const char *s, struct addr *a);
int addr_resolve(const char *s, const char *defhost, struct addr *out, int max);
char *addr_fmt(const struct sockaddr *sa, char *buf, size_t n);
char *addr_ip(const struct sockaddr *sa, char *buf, size_t n);
int addr_port(const struct sockaddr *sa);
void addr_setport(struct sockaddr *sa, int port);
char *fd_peername(int fd, char *buf, size_t n);
char *fd_sockname(int fd, char *buf, size_t n);
int addr_locals(int port, char out[][ADDR_STR], int max);
int addr_is_hostport(const char *s);
const char *addr_strerror(int e);
int addr_nc_words(const char *host, const char *port, char *out, size_t n);
void arg_nc_habit(int argc, char *argv[]);
int addr_candidates(int port, const char *observed, char out[][ADDR_STR],
    int max);

/* scope.c: which candidates a peer may make us dial. */
enum { SCOPE_BAD, SCOPE_LOCAL, SCOPE_PEER };
int addr_scope(const char *s, const char **why);

/* dial.c */
int dial_timeout(const struct addr *a, int ms);
int dial_host(const char *hostport, int ms);
int dial_send(const char *hostport, const char *buf, size_t n, int ms);
int fd_fastopen(int fd);
int listen_tcp(const char *addrport, int backlog);
int fd_nonblock(int fd, int on);
int fd_cloexec(int fd);
int fd_rtt_ms(int fd);
void fd_keepalive(int fd);

/* privs.c */
void priv_drop(const char *user);

/* race.c: RFC 8305 style; handshake is NULL for a plain TCP race. */
struct race_hs {
	const char *id;		/* session id sent in the P2P line */
	const char *token;
	int commit;		/* the session's commitment ($P2PCOMMIT), or -1 */
	int go;			/* out: the winner was taken with GO already */
	const char *stage;	/* who we are, for the handoff's mark */
	struct ticket *handoff;	/* pass it on once all candidates have started
				   and a stagger has passed, then race on */
	int eager;		/* ...without that stagger: the next rung keeps it */
	int now;		/* ...at once: it won last time (cache_lastwon) */
	struct ticket *late;	/* the ticket whose addr we race: take more
				   candidates for it from stdin as they come */
};
struct ticket;
struct race_hs *race_hs_init(struct race_hs *hs, struct ticket *t,
    const char *racing);
int dial_race(char addrs[][ADDR_STR], int n, struct race_hs *hs,
    int ms, int stagger_ms, char *why, size_t whyn, char *won, size_t wonn);

/* commit.c: one commitment per session, across processes. */
int commit_new(void);
int commit_take(int cfd);
void commit_give(int cfd);
int commit_env(void);

/* handshake.c: the direct handshake (p2p(7)), either end, without waiting. */
enum { HS_DIAL, HS_INVITEE, HS_INVITER };	/* our end */
enum { HS_AGAIN, HS_LINE, HS_DONE, HS_FAIL };	/* what a step says */
struct handshake {
	int part, state;
	int commit;		/* the session's commitment, or -1 */
	int go;			/* we took it for this connection, and hold it */
	int erred;		/* we answered ERR */
	int err;		/* errno when it failed: EACCES bad token,
				   EBUSY session taken, EPROTO bad line, ... */
	const char *why;	/* what failed */
	const char *who;	/* the peer, for the log, or NULL */
	char line[LINE_MAX_ + 1];
	size_t len;
	char id[ID_HEX + 1], token[ID_HEX + 1];	/* the dialer's line */
};
int hs_dial(struct handshake *h, int fd, const char *id, const char *token,
    int commit, long deadline);
void hs_listen(struct handshake *h, int part);
int hs_step(struct handshake *h, int fd);
int hs_wait(struct handshake *h, int fd, long deadline);
int hs_reply(struct handshake *h, int fd, const char *want, int taken,
    int commit);
void hs_abandon(struct handshake *h);
int hs_go(int fd, int commit);
int hs_hungup(int fd);
int hs_read(int fd, char id[ID_HEX + 1], char token[ID_HEX + 1], int ms);
int hs_answer(int fd, const char *token, const char *want);

/* io.c: timed I/O, by a deadline in now_ms() time. */
int io_wait(int fd, short ev, long deadline);
int io_write(int fd, const void *buf, size_t n, long deadline);
ssize_t io_read(int fd, void *buf, size_t n, long deadline);

/* line.c */
int line_byte(char *buf, size_t *len, size_t n, char c);
int line_read(int fd, char *buf, size_t n, int ms);
int line_write(int fd, int ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int write_all(int fd, const char *buf, size_t n, int ms);
int line_words(char *line, char **w, int max);
int words_flag(char **w, int n, int base, const char *flag);
int line_printable(const char *s);

struct linebuf {
	char buf[LINE_MAX_ + 1];
	size_t len;
};
int linebuf_fill(struct linebuf *lb, int fd);
int linebuf_next(struct linebuf *lb, char *line, size_t n);

/* hex.c */
void hex_random(char *out, size_t nbytes);
int hex_valid(const char *s, size_t len);
int secret_equal(const char *a, const char *b);
int name_valid(const char *s);

/* ticket.c */
struct ticket {
	char peer[NAME_MAX_ + 1];
	char rv[HOSTPORT_MAX * 2];	/* one or more host:port words */
	char relay[RV_RELAYS][HOSTPORT_MAX];
	int nrelay;
	char id[ID_HEX + 1];
	char token[ID_HEX + 1];
	char addr[TICKET_ADDRS][ADDR_STR];
	int naddr;
	int port[TICKET_PORTS];
	int nport;
	char tried[TICKET_TRIED][LINE_MAX_ - 5];	/* in the ticket: no heap */
	int ntried;
	int rtt;		/* ms to rvd as the ticket's writer measured it */
	FILE *from;		/* read from here: the rungs before us write to it */
	int handed;		/* passed on early: 1 + the tried lines it had then */
	int upconnected;	/* a rung before us said it connected after all */
};
void ticket_handoff(struct ticket *t, const char *stage);
void ticket_connected(struct ticket *t, const char *stage);

/* cache.c: the peers' last candidates, raced while the invitation travels. */
int cache_load(struct ticket *t);
void cache_save(const struct ticket *c, const char *rv);
void cache_won(const char *peer, const char *rv, const char *via);
int cache_lastwon(const char *peer, const char *rv, const char *via);
int ticket_await(FILE *f, struct ticket *t);
int ticket_late(struct ticket *t, const char *line);
int ticket_read(FILE *f, struct ticket *t, char *err, size_t errn);
int ticket_write(FILE *f, const struct ticket *t);
void ticket_tried(struct ticket *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ticket_free(struct ticket *t);
int ticket_pass(struct ticket *t, const char *stage, const char *why);
int ticket_addaddr(struct ticket *t, const char *a);

/* fdpass.c */
int fd_send(int sock, int fd, const char *line);
int fd_recv(int sock, char *line, size_t n);

/* copy.c */
int copy_loop(int net, int in, int out);

/* deliver.c */
struct conninfo {
	const char *via;	/* in out port proxy relay direct */
	const char *peer;	/* the peer's name, or NULL */
	int go;			/* GO went with the handshake: it is taken */
	const char *id;		/* the session (P2PID), or NULL */
	const char *token;	/* its token (P2PTOKEN), or NULL */
};
enum { SIDE_DIAL, SIDE_ANSWER };
int deliver(int fd, const struct conninfo *ci, char **prog, int side);
void conn_setenv(int fd, const struct conninfo *ci);
int conninfo_parse(char *line, struct conninfo *ci, const char **remote);

/* env.c */
int env_timeout_ms(int flag_s, int def_s);
int dial_budget_ms(int flag_s, int rtt_ms);
int dial_stagger_ms(int rtt_ms);
const char *env_or(const char *name, const char *def);
int arg_seconds(const char *s, int flag, int max);
extern int verbose;
void vlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void logline(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
long now_ms(void);

/* version.c: -h (usage on stdout, exit 0) and -V/--version, for every tool. */
void print_version(void) __attribute__((noreturn));
void opt_version(int argc, char **argv);
void usage_exit(const char *text) __attribute__((noreturn));
void opt_help(void (*usage)(void)) __attribute__((noreturn));

/* rvproto.c: rvd's side of its protocol, as pure parsing. */
#define RV_WORDS 40
enum { RV_BAD, RV_LOGON, RV_LISTEN, RV_INVITE, RV_MSG, RV_RELAY, RV_ADDR,
    RV_PING, RV_PONG, RV_QUIT, RV_PUNCH };
struct rvcmd {
	int verb;
	const char *why;	/* for RV_BAD */
	char *name;		/* LOGON, LISTEN: ours; INVITE, RELAY: the peer's */
	char *secret;		/* or NULL */
	char *id;		/* INVITE, MSG, PUNCH: the session; RELAY: relay session */
	char *token;
	char **addrs;		/* INVITE, ADDR: candidates (ADDR: and :PORTs);
				   PUNCH: the sender's local address */
	int naddr;
	char **words;		/* MSG: what follows the id */
	int nwords;
	char *relay;		/* RELAY: the relay's address */
	int now;		/* PUNCH: fire at once, without the hold */
	int plain;		/* RELAY: the dialler will not seal */
	char *w[RV_WORDS];
};
int rvcmd_parse(char *line, struct rvcmd *c);
int cand_words_ok(char **w, int n, int ports);
char *words_join(char **w, int n, char *buf, size_t size);

/* rvclient.c: a client's connection to rvd. */
struct rv {
	int fd;
	struct linebuf lb;
	char observed[ADDR_STR];
	char relay[RV_RELAYS][HOSTPORT_MAX];	/* every relay WELCOME named */
	int nrelay;
	int open;		/* rvd vouches for no name (rvd -o) */
	char addr[HOSTPORT_MAX];	/* the rvd we reached */
	char via[HOSTPORT_MAX + 16];	/* "direct" or "proxy host:port" */
	char why[256];		/* rvd's reason when it refused us */
};
int rv_logon(struct rv *rv, const char *rvaddr, const char *verb,
    const char *name, const char *secret, const char *then, int ms);
int rv_readline(struct rv *rv, char *line, size_t n, int ms);
int rv_send(struct rv *rv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* catch.c: run a ladder with $P2PFD and wait for its connection. */
struct ladder {
	pid_t pid;
	int sock;		/* our end of the P2PFD socket pair */
	int out;		/* the ladder's stdout: a failed ticket */
	char tail[4096];	/* what it wrote, for -v and error messages */
	size_t taillen;
};
int ladder_start(struct ladder *l, char *const argv[], const char *input,
    const char *peer, int commit);
int ladder_catch(struct ladder *l, char *line, size_t n, int ms);
int ladder_stop(struct ladder *l);
void ladder_readout(struct ladder *l);

/* punch.c: TCP simultaneous open from one port, timed through rvd. */
struct punch {
	int rvfd;		/* to rvd, from the port we punch from */
	int rtt;		/* ms to rvd */
	char local[ADDR_STR];	/* our end of it */
	char mapped[ADDR_STR];	/* where rvd saw it: our NAT's mapping */
	char peer[ADDR_STR];	/* the peer's mapping, and its own end */
	char peerlocal[ADDR_STR];
	int wait;		/* ms to wait before firing */
	int dial;		/* we send the P2P line (the invitee); else answer */
	int tries;		/* connect()s that fire made */
	struct ticket *handoff;	/* to pass on (-e) at handoff_at, meanwhile */
	long handoff_at;
	int fast;		/* fire at rvd's moment, without the hold */
	char why[256];
};
int punch_meet(struct punch *p, struct ticket *t, const char *name,
    const char *secret, int ms, int handoff_ms, int fast);
const char *punch_hopeless(const struct punch *p);
int punch_fire(struct punch *p, int ms);
int punch_answer(int fd, const struct ticket *t, int ms, char *why, size_t n);

/* ports.c: a peer's extra ports (443, 80), for dialport and dialproxy. */
int ports_parse(const char *s, int *out, int max);
int ticket_hasport(const struct ticket *t, int port);
int addr_withport(const char *a, int port, char *out, size_t n);
int addrs_add(char list[][ADDR_STR], int n, int max, const char *a);
int addrs_onport(const struct ticket *t, int port, char out[][ADDR_STR],
    int max);

/* proxy.c: HTTP CONNECT and SOCKS5 clients; the parsers are pure, to fuzz. */
enum { PROXY_HTTP = 1, PROXY_SOCKS5, PROXY_SOCKS5H };
#define PROXY_HEAD_MAX 8192	/* longest HTTP reply head we read */
#define PROXY_CRED_MAX 255	/* longest user or password (RFC 1929) */
struct proxy {
	int scheme;
	char host[256];
	int port;
	char hostport[256 + 8];		/* "host:port" or "[v6]:port" */
	int auth;			/* the URL gave user[:password] */
	char user[PROXY_CRED_MAX + 1];
	char pass[PROXY_CRED_MAX + 1];
};
enum { PX_DEST = -1, PX_PROXY = -2 };	/* proxy_dial: which failed */
const char *proxy_env(const char **name);
int proxy_parse(const char *url, struct proxy *px, char *why, size_t n);
int no_proxy_match(const char *host, const char *list);
int proxy_bypass(const char *hostport);
int proxy_open(const struct proxy *px, int ms, char *why, size_t n);
int proxy_tunnel(int fd, const struct proxy *px, const char *dest, int ms,
    char *why, size_t n);
int proxy_dial(const struct proxy *px, const char *dest, int ms, char *why,
    size_t n);
int pct_decode(const char *s, size_t len, char *out, size_t on);
size_t base64_encode(const unsigned char *in, size_t n, char *out, size_t on);
int http_head_end(const char *buf, size_t n);
int http_status_parse(const char *line, int *code, char *reason, size_t n);
int http_reply_parse(const char *buf, size_t n, int *code, char *reason,
    size_t rn);
int socks5_method_parse(const unsigned char *buf, size_t n);
int socks5_auth_parse(const unsigned char *buf, size_t n);
int socks5_reply_parse(const unsigned char *buf, size_t n, int *rep,
    size_t *need);
const char *socks5_strerror(int rep);
int socks5_request(unsigned char *buf, size_t n, const char *host, int port,
    int byname);

/* reach.c: dial rvd or relayd directly and through the proxy, raced. */
struct reached {
	char dest[HOSTPORT_MAX];	/* the word of the list that answered */
	char via[HOSTPORT_MAX + 16];	/* "direct" or "proxy HOST:PORT" */
	char why[512];			/* what failed, when all did */
};
int reach(const char *hostports, const char *buf, size_t n, int ms,
    struct reached *r);
int reach_proxy(struct proxy *px, char *why, size_t n);
int reach_config(const char *hostports, char *why, size_t n);
int relays_parse(const char *list, char out[][HOSTPORT_MAX], int max);


/* noise.c: the Noise state machine, XX and IK, 25519/ChaChaPoly/BLAKE2b. */
#include <stdint.h>
#define NOISE_KEY 32		/* X25519 keys, ChaChaPoly keys */
#define NOISE_TAG 16		/* Poly1305 */
#define NOISE_MSG_MAX 65535	/* a Noise message, and so a p2pseal frame */
#define NOISE_PAYLOAD_MAX (NOISE_MSG_MAX - 2 * NOISE_KEY - 3 * NOISE_TAG)
#define HS_FRAME_MAX 256	/* a handshake frame: 97 bytes at most, with room */
enum { NOISE_XX, NOISE_IK };
struct noise_cs {
	unsigned char k[NOISE_KEY];
	uint64_t n;
	int has;
};
struct noise {
	int pattern, initiator, msg, done, fixed_e, has_rs;
	unsigned char ck[64], h[64];	/* h stays: the handshake hash */
	struct noise_cs cs;		/* during the handshake */
	struct noise_cs tx, rx;		/* after it */
	struct noise_cs early;		/* IK: the dialler's data before message 2 */
	unsigned char s[NOISE_KEY], spub[NOISE_KEY];
	unsigned char e[NOISE_KEY], epub[NOISE_KEY];
	unsigned char rs[NOISE_KEY], re[NOISE_KEY];
};
int noise_start(void);
int noise_init(struct noise *ns, int pattern, int initiator,
    const unsigned char s[NOISE_KEY], const unsigned char *rs,
    const void *prologue, size_t pn);
void noise_fixed_e(struct noise *ns, const unsigned char e[NOISE_KEY]);
int noise_mine(const struct noise *ns);
ssize_t noise_write(struct noise *ns, const void *p, size_t pn,
    unsigned char *out);
ssize_t noise_read(struct noise *ns, const unsigned char *m, size_t n,
    unsigned char *p);
int noise_seal(struct noise_cs *cs, const unsigned char *ad, size_t adn,
    const unsigned char *in, size_t n, unsigned char *out);
int noise_open(struct noise_cs *cs, const unsigned char *ad, size_t adn,
    const unsigned char *in, size_t n, unsigned char *out);

/* key.c: key files, known_peers and authorized keys. */
#define KEY_B64 45		/* a key in base64, with its NUL */
#define KEY_FP 20		/* "xxxx:xxxx:xxxx:xxxx" and NUL */
const char *key_path(const char *flag, char *buf, size_t n);
const char *known_path(char *buf, size_t n);
int key_make(const char *path, unsigned char priv[NOISE_KEY], int replace);
int key_load(const char *path, unsigned char priv[NOISE_KEY], int make,
    const char *who);
void key_public(const unsigned char priv[NOISE_KEY],
    unsigned char pub[NOISE_KEY]);
void key_b64(const unsigned char k[NOISE_KEY], char out[KEY_B64]);
int key_parse(const char *s, unsigned char k[NOISE_KEY]);
void key_fp(const unsigned char pub[NOISE_KEY], char out[KEY_FP]);
int known_find(const char *file, const char *peer, unsigned char pub[NOISE_KEY],
    int *line);
int known_add(const char *file, const char *peer,
    const unsigned char pub[NOISE_KEY]);
int authorized_has(const char *file, const unsigned char pub[NOISE_KEY]);

/* seal.c: p2pseal's frames, handshake and pumps. */
int frame_read(int fd, unsigned char *buf, size_t max, size_t *n,
    long deadline);
int frame_write(int fd, const unsigned char *buf, size_t n);
size_t seal_prologue(unsigned char *buf, size_t n, int pattern);
int seal_peek(int fd, int ms);
int seal_dial(struct noise *ns, int rfd, int wfd,
    const unsigned char s[NOISE_KEY], const unsigned char *rs, int ms,
    char *why, size_t whyn);
int seal_answer(struct noise *ns, int rfd, int wfd,
    const unsigned char s[NOISE_KEY], const char *authorized, int ms,
    char *why, size_t whyn);
int seal_out(struct noise_cs *tx, int from, int net);
int seal_early(struct noise *ns, int lin, int rfd, int wfd, int ms,
    char *why, size_t whyn);
int seal_in(struct noise_cs *early, struct noise_cs *rx, int net, int to,
    char *why, size_t whyn);

/* portmap.c: the gateway maps our listening port (PCP, NAT-PMP, UPnP IGD). */
int portmap_start(int port, int loud);
int portmap_poll(void);
int portmap_wait(int ms);
int portmap_pending(void);
void portmap_cands(const char *observed, char *buf, size_t n);

/* cluster.c: rvd front ends sharing names and routing through Redis. */
#define CL_FE_HEX 16		/* a front end's id: 64 random bits in hex */
#define CL_TTL_MS 10000		/* a name's key lives this long... */
#define CL_REFRESH_MS 3000	/* ...and is refreshed this often */
#define CL_ARGS 10		/* most words of one Redis command we send */
#define CL_WORDS (RV_WORDS + 8)	/* most words of a message between them */
struct cluster_hooks {
	void (*message)(char *msg);	/* a message from another front end */
	void (*up)(void);		/* Redis answers (again) */
};
struct cl_req;
typedef void cl_fn(struct cl_req *q, int res, const char *fe);
struct cl_req {			/* what a Redis reply is for */
	cl_fn *fn;
	int fd;
	unsigned long serial;
	char id[ID_HEX + 1];
	char name[NAME_MAX_ + 1];
};
enum { CL_INVITE, CL_SENT, CL_ERR, CL_MSG, CL_RELAY, CL_TELL, CL_KICK,
    CL_PUNCH };
struct clmsg {
	int kind;		/* CL_*, or -1 */
	char *fe;		/* the sender */
	char *from, *to;	/* names: the inviter, the listener */
	char *id, *token;
	char *conn;		/* a connection's "fd.serial" at the recipient */
	char **words;		/* addresses, a reason, a MSG's words, a line */
	int nwords;
	char *relay;
	char *observed, *local;	/* PUNCH */
	int rtt;
	int now;		/* PUNCH: its party fires at once */
	int gone;		/* PUNCH: its party's connection closed unpaired */
	int plain;		/* RELAY: the dialler will not seal */
	char *w[CL_WORDS];
};
int cluster_config(const char *url, const char *password, char *why,
    size_t n);
void cluster_start(int epfd, const struct cluster_hooks *h);
const char *cluster_where(void);
const char *cluster_id(void);
int cluster_up(void);
int cluster_event(void *ptr, uint32_t events);
void cluster_tick(void);
void cluster_flush(void);
int cluster_timeout(long now);
void cluster_stop(void);
struct cl_req *cl_req_new(cl_fn *fn, int fd, unsigned long serial,
    const char *id, const char *name);
int cluster_claim(const char *name, const char *conn, int take,
    struct cl_req *q);
void cluster_release(const char *name, const char *conn);
int cluster_refresh(const char *name, struct cl_req *q);
int cluster_route(const char *name, const char *msg, struct cl_req *q);
int cluster_publish(const char *fe, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int cluster_parse(char *msg, struct clmsg *m);

#endif
