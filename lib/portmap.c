/*
 * portmap.c: ask the gateway to map our listening TCP port, so that a
 * listener behind a NAT that picks random ports is reached directly (p2p(7)).
 * PCP (RFC 6887, written here: no packaged library speaks it), NAT-PMP
 * (RFC 6886, libnatpmp) and UPnP IGD (an SSDP search written here, which
 * takes the first answer, then libminiupnpc) are raced in a child
 * process, so that no blocking call of theirs delays the tool; the child
 * reports each change of the mapping as a line on a pipe, renews the
 * mapping, and deletes it when the tool exits (the pipe's end-of-file) or
 * on SIGTERM. Only ever our own address and our own port are asked for.
 */
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <natpmp.h>
#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/upnpcommands.h>

#include "p2p.h"

#define PM_PORT 5351		/* PCP and NAT-PMP servers listen here */
#define PM_LEASE 3600		/* seconds of lease we ask for */
#define PM_TRIES 3		/* PCP/NAT-PMP: sent at 0, 250, 750 ms ... */
#define PM_FIRST_MS 250		/* ... doubling, as RFC 6886 says */
#define PM_BUDGET_MS 2000	/* then give up: nobody here maps */
#define UPNP_DELAY_MS 1000	/* SSDP: answers come within MX, a whole second */
#define PM_CHECK_S 60		/* ask again this often: has the router forgotten? */
static int check_s = PM_CHECK_S;	/* P2P_MAPCHECK: sooner, for tests */

enum { P_PCP, P_NATPMP, P_UPNP, P_N };
static const char *pname[P_N] = { "PCP", "NAT-PMP", "UPnP" };

/* The parent's view: the pipe from the mapper and what it last said. */
static int pm_fd = -1;
static pid_t pm_pid;
static char pm_ext[ADDR_STR];	/* "ip:port" the router gave, or "" */
static int pm_eport;
static int pm_nopmp;		/* PCP and NAT-PMP gave up */
static int pm_loud;		/* a daemon logs each change; a tool under -v */
static int pm_gone;		/* the mapper has exited: nothing more comes */
static int pm_gw;		/* a gateway answered our discovery ... */
static int pm_nomap;		/* ... or none will map */

/* One protocol's mapping, in the mapper. */
struct pmap {
	int state;		/* 0 asking, 1 mapped, -1 gave up */
	int eport;		/* external port granted */
	char eip[INET_ADDRSTRLEN];
	long renew;		/* when to ask again (now_ms time) */
	long sent;		/* when the last request went */
	int tries;
	uint32_t epoch;		/* PCP/NAT-PMP: the server's epoch at `sent' */
	long epoch_at;
};

static struct pmap pm[P_N];
static int winner = -1;
static int lport;		/* our listening port */
static int out_fd;		/* to the parent */
static volatile sig_atomic_t pm_term;
static volatile sig_atomic_t pm_won;	/* a mapping came: UPnP asks for none */
static long pm_start;		/* when the mapper started (now_ms) */

/* PCP */
static int pcp_fd = -1;
static unsigned char nonce[12];
static char myip[INET_ADDRSTRLEN];

/* NAT-PMP */
static natpmp_t np;
static int np_ok;

/* UPnP: the discovery runs in a thread; its end is one byte on up_pipe. */
static int up_pipe[2] = { -1, -1 };
static struct UPNPUrls urls;
static struct IGDdatas igd;
static char up_lan[64];
static int up_found;

/* Tell the parent a line. */
static void
tell(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || n > (int)sizeof(buf) - 2)
		return;
	buf[n++] = '\n';
	(void)write(out_fd, buf, n);
}

/* Fill a PCP MAP request (RFC 6887 11.1) for lifetime seconds. */
static size_t
pcp_request(unsigned char *b, uint32_t lifetime)
{
	struct in_addr in;
	uint32_t l = htonl(lifetime);
	uint16_t p = htons(lport);

	memset(b, 0, 60);
	b[0] = 2;		/* version */
	b[1] = 1;		/* MAP, request */
	memcpy(b + 4, &l, 4);
	/* Our address, IPv4-mapped: the one our packets come from. */
	b[18] = b[19] = 0xff;
	inet_pton(AF_INET, myip, &in);
	memcpy(b + 20, &in, 4);
	memcpy(b + 24, nonce, 12);
	b[36] = 6;		/* TCP */
	memcpy(b + 40, &p, 2);	/* internal port */
	memcpy(b + 42, &p, 2);	/* suggested external port: the same */
	b[54] = b[55] = 0xff;	/* suggested external address: any (::ffff:0.0.0.0) */
	return 60;
}

/*
 * Parse a PCP MAP response: 0 mapped (eport, eip, lifetime, epoch set),
 * 1 a NAT-PMP server answered (version 0), -1 refused or not ours.
 */
static int
pcp_parse(const unsigned char *b, size_t n, int *eport, char *eip,
    uint32_t *life, uint32_t *epoch)
{
	uint16_t p;

	if (n >= 2 && b[0] == 0)
		return 1;
	if (n < 60 || b[0] != 2 || b[1] != (0x80 | 1) ||
	    memcmp(b + 24, nonce, 12) != 0 || b[36] != 6)
		return -1;
	memcpy(life, b + 4, 4);
	*life = ntohl(*life);
	memcpy(epoch, b + 8, 4);
	*epoch = ntohl(*epoch);
	if (b[3] != 0)
		return -1;
	memcpy(&p, b + 42, 2);
	*eport = ntohs(p);
	inet_ntop(AF_INET, b + 56, eip, INET_ADDRSTRLEN);
	return 0;
}

/* Did the server's epoch run backwards since the last answer: a restart. */
static int
epoch_reset(struct pmap *m, uint32_t epoch)
{
	long el = (now_ms() - m->epoch_at) / 1000;
	int reset = m->epoch_at != 0 &&
	    (long)epoch + 2 < (long)m->epoch + el * 7 / 8;

	m->epoch = epoch;
	m->epoch_at = now_ms();
	return reset;
}

/* A protocol got (or kept) a mapping: the first one wins, changes are told. */
static void
mapped(int p, const char *eip, int eport, uint32_t life, int reset)
{
	struct pmap *m = &pm[p];
	int changed = m->state != 1 || m->eport != eport ||
	    strcmp(m->eip, eip) != 0;
	long half = (long)life / 2 < check_s ? (long)life / 2 : check_s;

	m->state = 1;
	m->eport = eport;
	strlcpy(m->eip, eip, sizeof(m->eip));
	m->renew = now_ms() + (half < 1 ? 1 : half) * 1000L;
	m->tries = 0;
	if (winner == -1)
		winner = p;
	pm_won = 1;
	if (winner == p && (changed || reset))
		tell("MAP %s %s:%d %ld%s", pname[p], eip, eport,
		    now_ms() - pm_start, reset ? " again" : "");
}

/* Send PCP's request (or its delete, lifetime 0). */
static void
pcp_send(uint32_t lifetime)
{
	unsigned char b[60];

	if (pcp_fd != -1)
		(void)send(pcp_fd, b, pcp_request(b, lifetime), 0);
}

/* Read PCP's answer. */
static void
pcp_input(void)
{
	unsigned char b[1100];
	char eip[INET_ADDRSTRLEN];
	uint32_t life, epoch;
	ssize_t n;
	int eport, r;

	if ((n = recv(pcp_fd, b, sizeof(b), 0)) == -1) {
		/* ICMP unreachable: no server on this gateway, no need to wait. */
		if (errno == ECONNREFUSED && pm[P_PCP].state == 0)
			pm[P_PCP].state = -1;
		return;
	}
	r = pcp_parse(b, n, &eport, eip, &life, &epoch);
	if (r == 1 || (r == -1 && n >= 4 && b[0] == 2 && b[3] != 0 &&
	    pm[P_PCP].state == 0)) {
		/* NAT-PMP only (its mapping is on its way), or PCP refuses */
		if (r == 1 && pm[P_PCP].state == 0 && pm[P_NATPMP].state == 0)
			tell("GW NAT-PMP");
		pm[P_PCP].state = -1;
		return;
	}
	if (r == 0 && life > 0)
		mapped(P_PCP, eip, eport, life, epoch_reset(&pm[P_PCP], epoch));
}

/* Send NAT-PMP's request; its public address comes first (it names ours). */
static void
natpmp_send(uint32_t lifetime)
{
	/* A delete suggests no external port (RFC 6886 3.4). */
	if (np_ok)
		sendnewportmappingrequest(&np, NATPMP_PROTOCOL_TCP, lport,
		    lifetime ? lport : 0, lifetime);
}

/* Read NAT-PMP's answer; ask for the public address once mapped. */
static void
natpmp_input(void)
{
	static int eport;
	static uint32_t life;
	natpmpresp_t r;
	int e;

	e = readnatpmpresponseorretry(&np, &r);
	if (e == NATPMP_TRYAGAIN)
		return;
	if (e < 0) {
		if (pm[P_NATPMP].state == 0 && e != NATPMP_ERR_NOPENDINGREQ)
			pm[P_NATPMP].state = -1;
		return;
	}
	if (r.type == NATPMP_RESPTYPE_TCPPORTMAPPING) {
		if (r.pnu.newportmapping.privateport != lport ||
		    r.pnu.newportmapping.lifetime == 0)
			return;
		eport = r.pnu.newportmapping.mappedpublicport;
		life = r.pnu.newportmapping.lifetime;
		sendpublicaddressrequest(&np);
	} else if (r.type == NATPMP_RESPTYPE_PUBLICADDRESS && eport != 0) {
		char eip[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &r.pnu.publicaddress.addr, eip, sizeof(eip));
		mapped(P_NATPMP, eip, eport, life,
		    epoch_reset(&pm[P_NATPMP], r.epoch));
	}
}

/* UPnP: AddPortMapping for our port and our LAN address; 0 or an error. */
static int
upnp_add(void)
{
	char port[8], lease[16], eip[40];
	int e;

	snprintf(port, sizeof(port), "%d", lport);
	snprintf(lease, sizeof(lease), "%d", PM_LEASE);
	e = UPNP_AddPortMapping(urls.controlURL, igd.first.servicetype, port,
	    port, up_lan, "p2pdial", "TCP", NULL, lease);
	if (e == 725)	/* OnlyPermanentLeasesSupported: renewals keep it */
		e = UPNP_AddPortMapping(urls.controlURL, igd.first.servicetype,
		    port, port, up_lan, "p2pdial", "TCP", NULL, "0");
	if (e != 0)
		return e;
	if (UPNP_GetExternalIPAddress(urls.controlURL, igd.first.servicetype,
	    eip) != 0 || eip[0] == '\0')
		return -1;
	strlcpy(pm[P_UPNP].eip, eip, sizeof(pm[P_UPNP].eip));
	return 0;
}

/*
 * SSDP (UPnP Device Architecture 1.1, 1.3): ask the LAN for an IGD and
 * take the first answer's LOCATION into url. libminiupnpc's own discovery
 * waits for a whole MX of silence after the last answer, a second more
 * than the first answer needs: a router that answers at once is mapped at
 * once. 0 found, -1 none within UPNP_DELAY_MS.
 */
static int
ssdp_search(char *url, size_t n)
{
	static const char msearch[] = "M-SEARCH * HTTP/1.1\r\n"
	    "HOST: 239.255.255.250:1900\r\n"
	    "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
	    "MAN: \"ssdp:discover\"\r\nMX: 1\r\n\r\n";
	struct sockaddr_in to = { .sin_family = AF_INET,
	    .sin_port = htons(1900), .sin_addr.s_addr = htonl(0xeffffffa) };
	long start = now_ms(), left;
	unsigned char ttl = 2;
	char b[1500], *l, *e;
	int fd, sends = 0, r = -1;
	ssize_t got;

	if ((fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl));
	/* UDP: a lost search is sent again after 250 ms, as PCP's. */
	while (r == -1 && !pm_term &&
	    (left = start + UPNP_DELAY_MS - now_ms()) > 0) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (sends < 2 && now_ms() >= start + sends * PM_FIRST_MS) {
			(void)sendto(fd, msearch, sizeof(msearch) - 1, 0,
			    (struct sockaddr *)&to, sizeof(to));
			sends++;
		}
		if (sends < 2 && left > start + PM_FIRST_MS - now_ms())
			left = start + PM_FIRST_MS - now_ms();
		if (poll(&p, 1, left < 1 ? 1 : (int)left) != 1 ||
		    (got = recv(fd, b, sizeof(b) - 1, 0)) <= 0)
			continue;
		b[got] = '\0';
		/* The header, any case, up to its line's end. */
		for (l = b; (l = strchr(l, '\n')) != NULL; )
			if (strncasecmp(++l, "location:", 9) == 0) {
				l += 9 + strspn(l + 9, " \t");
				if ((e = strpbrk(l, "\r\n")) != NULL)
					*e = '\0';
				if (strncmp(l, "http://", 7) == 0 &&
				    strlcpy(url, l, n) < n)
					r = 0;
				break;
			}
	}
	close(fd);
	return r;
}

/* The UPnP thread: find the IGD and map; say so with one byte. */
static void *
upnp_thread(void *arg)
{
	char url[512], c = '-';

	if (ssdp_search(url, sizeof(url)) == 0 &&
	    UPNP_GetIGDFromUrl(url, &urls, &igd, up_lan, sizeof(up_lan)) == 1) {
		up_found = 1;
		tell("GW UPnP");	/* one write: whole beside the main thread's */
		/* Once the tool has gone, or PCP or NAT-PMP has mapped, ask
		   for nothing more. */
		if (!pm_term && !pm_won && upnp_add() == 0)
			c = '+';
	}
	(void)write(up_pipe[1], &c, 1);
	return NULL;
}

/* Renew (or check) the mappings whose time has come. */
static void
renew(void)
{
	long now = now_ms();
	int p;

	for (p = 0; p < P_N; p++) {
		struct pmap *m = &pm[p];

		if (m->state != 1 || now < m->renew)
			continue;
		if (p == P_PCP)
			pcp_send(PM_LEASE);
		else if (p == P_NATPMP)
			natpmp_send(PM_LEASE);
		else {
			/* A router that forgot us no longer knows the entry. */
			char port[8], client[64], iport[8], desc[80], en[4], lease[16];
			int lost;

			snprintf(port, sizeof(port), "%d", m->eport);
			lost = UPNP_GetSpecificPortMappingEntry(urls.controlURL,
			    igd.first.servicetype, port, "TCP", NULL, client, iport,
			    desc, en, lease) != 0;
			if (upnp_add() == 0)
				mapped(P_UPNP, m->eip, lport, PM_LEASE, lost);
			else
				m->renew = now + check_s * 1000L;
		}
		if (p != P_UPNP)
			m->renew = now + PM_FIRST_MS * 4;	/* if no answer */
	}
}

/*
 * Whether PCP or NAT-PMP may hold a mapping of ours: it granted one, or it
 * was asked and has not refused (its answer may be on its way, or lost). A
 * router that took both requests keeps one entry, in the name of the one
 * that came last: only that one may delete it.
 */
static int
asked(int p)
{
	return pm[p].state == 1 || (pm[p].state == 0 && pm[p].tries > 0);
}

/* Delete every mapping we made, waiting briefly for PCP/NAT-PMP's answers. */
static void
unmap(void)
{
	struct pollfd p[2];
	long end = now_ms() + 500;
	char port[8];
	int pcp = asked(P_PCP), natpmp = asked(P_NATPMP);

	if (pm[P_UPNP].state == 1) {
		snprintf(port, sizeof(port), "%d", pm[P_UPNP].eport);
		UPNP_DeletePortMapping(urls.controlURL, igd.first.servicetype,
		    port, "TCP", NULL);
	}
	if (pcp)
		pcp_send(0);
	if (natpmp)
		natpmp_send(0);
	p[0] = (struct pollfd){ .fd = pcp ? pcp_fd : -1, .events = POLLIN };
	p[1] = (struct pollfd){ .fd = natpmp ? np.s : -1, .events = POLLIN };
	while ((p[0].fd != -1 || p[1].fd != -1) && now_ms() < end &&
	    poll(p, 2, (int)(end - now_ms())) > 0) {
		unsigned char b[1100];
		natpmpresp_t r;

		if (p[0].revents) {
			(void)recv(pcp_fd, b, sizeof(b), 0);
			p[0].fd = -1;
		}
		if (p[1].revents) {
			readnatpmpresponseorretry(&np, &r);
			p[1].fd = -1;
		}
	}
}

/* SIGTERM: unmap and go, as when the tool exits. */
static void
on_term(int sig)
{
	pm_term = 1;
}

/* Open the PCP socket toward the gateway; our address is its source. */
static void
pcp_open(in_addr_t gw)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
	    .sin_port = htons(PM_PORT), .sin_addr.s_addr = gw };
	struct sockaddr_in me;
	socklen_t ml = sizeof(me);

	if ((pcp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(pcp_fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    getsockname(pcp_fd, (struct sockaddr *)&me, &ml) == -1) {
		if (pcp_fd != -1)
			close(pcp_fd);
		pcp_fd = -1;
		pm[P_PCP].state = -1;
		return;
	}
	inet_ntop(AF_INET, &me.sin_addr, myip, sizeof(myip));
	arc4random_buf(nonce, sizeof(nonce));
}

/* The mapper: race the three, keep the winner, unmap at the end. */
static void __attribute__((noreturn))
mapper(int in)
{
	pthread_t th;
	long start = pm_start = now_ms(), now;
	const char *e;
	int told = 0, toldpmp = 0, p, left, i;

	/* Libraries print their failures: the tool's stderr is not theirs. */
	if ((i = open("/dev/null", O_RDWR)) != -1) {
		dup2(i, 0);
		dup2(i, 1);
		dup2(i, 2);
		if (i > 2)
			close(i);
	}
	if ((e = getenv("P2P_MAPCHECK")) != NULL &&
	    (i = strtonum(e, 1, PM_CHECK_S, NULL)) > 0)
		check_s = i;
	signal(SIGTERM, on_term);
	signal(SIGINT, SIG_IGN);	/* ^C: the tool's exit unmaps */
	signal(SIGPIPE, SIG_IGN);
	if (initnatpmp(&np, 0, 0) == 0) {
		np_ok = 1;
		fcntl(np.s, F_SETFD, FD_CLOEXEC);
		pcp_open(np.gateway);
	} else
		pm[P_PCP].state = pm[P_NATPMP].state = -1;
	if (pipe2(up_pipe, O_CLOEXEC) == -1 ||
	    pthread_create(&th, NULL, upnp_thread, NULL) != 0)
		pm[P_UPNP].state = -1;
	while (!pm_term) {
		struct pollfd f[4] = {
			{ .fd = in, .events = POLLIN },
			{ .fd = pcp_fd, .events = POLLIN },
			{ .fd = np_ok ? np.s : -1, .events = POLLIN },
			{ .fd = up_pipe[0], .events = POLLIN },
		};

		now = now_ms();
		/* Discovery: (re)send PCP and NAT-PMP on RFC 6886's schedule. */
		for (p = P_PCP; p <= P_NATPMP; p++) {
			struct pmap *m = &pm[p];

			if (m->state != 0 || now < m->sent +
			    (m->tries ? PM_FIRST_MS << (m->tries - 1) : 0))
				continue;
			if (m->tries == PM_TRIES) {
				m->state = -1;
				continue;
			}
			m->tries++;
			m->sent = now;
			if (p == P_PCP)
				pcp_send(PM_LEASE);
			else
				natpmp_send(PM_LEASE);
		}
		if (winner == -1 && !told && (now - start > PM_BUDGET_MS ||
		    (pm[0].state == -1 && pm[1].state == -1 && pm[2].state == -1))) {
			told = 1;
			tell("NOMAP %s (PCP, NAT-PMP, UPnP IGD) in %ld ms",
			    pm[P_UPNP].state == 0 ? "no answer" : up_found ?
			    "the gateway refused" : "no gateway answered",
			    now - start);
		}
		/* Nobody maps, nor will: nothing to keep, renew or delete. */
		if (pm[0].state == -1 && pm[1].state == -1 && pm[2].state == -1)
			_exit(0);
		/* A tool that waits for a mapping need not wait for UPnP's. */
		if (winner == -1 && !toldpmp && pm[P_PCP].state == -1 &&
		    pm[P_NATPMP].state == -1) {
			toldpmp = 1;
			tell("NOPMP");
		}
		renew();
		left = 1000;
		for (p = 0; p < P_N; p++)
			if (pm[p].state == 1 && pm[p].renew - now < left)
				left = pm[p].renew - now;
		if (!told || pm[P_PCP].state == 0 || pm[P_NATPMP].state == 0)
			left = left > 50 ? 50 : left;
		if (poll(f, 4, left < 0 ? 0 : left) == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (f[0].revents)
			break;	/* the tool has gone: unmap */
		if (f[1].revents)
			pcp_input();
		if (f[2].revents)
			natpmp_input();
		if (f[3].revents) {
			char c = '-';

			(void)read(up_pipe[0], &c, 1);
			close(up_pipe[0]);
			up_pipe[0] = -1;
			pthread_join(th, NULL);
			if (c == '+')
				mapped(P_UPNP, pm[P_UPNP].eip, lport, PM_LEASE, 0);
			else
				pm[P_UPNP].state = -1;
		}
	}
	/*
	 * A thread still discovering holds no mapping yet, and asks for none
	 * now (pm_term): wait for it only while it may be asking, briefly, so
	 * that the tool's exit leaves nothing of ours running for long.
	 */
	pm_term = 1;
	if (up_pipe[0] != -1) {
		struct pollfd f = { .fd = up_pipe[0], .events = POLLIN };
		char c = '-';

		if (poll(&f, 1, up_found ? 2000 : 200) == 1 &&
		    read(up_pipe[0], &c, 1) == 1 && c == '+') {
			pm[P_UPNP].state = 1;
			pm[P_UPNP].eport = lport;
		}
	}
	unmap();
	_exit(0);
}

/*
 * Start mapping port in a child process, unless P2P_NOMAP says not to;
 * its news come by portmap_poll. The descriptor to poll for them (it stays
 * open, and quiet once the mapper has gone), or -1 when nothing was started.
 */
int
portmap_start(int port, int loud)
{
	int to[2], from[2];
	const char *e = getenv("P2P_NOMAP");

	if (e != NULL && *e != '\0' && strcmp(e, "0") != 0)
		return -1;
	if (pipe2(to, O_CLOEXEC) == -1)
		return -1;
	if (pipe2(from, O_CLOEXEC) == -1) {
		close(to[0]);
		close(to[1]);
		return -1;
	}
	if ((pm_pid = fork()) == -1) {
		close(to[0]);
		close(to[1]);
		close(from[0]);
		close(from[1]);
		return -1;
	}
	if (pm_pid == 0) {
		/* Above stdio (a tool may run with stdin closed), and hold
		   nothing of the tool's: its listener, its rvd connection. */
		int in = fcntl(to[0], F_DUPFD_CLOEXEC, 3), lo, hi;

		out_fd = fcntl(from[1], F_DUPFD_CLOEXEC, 3);
		if (in == -1 || out_fd == -1)
			_exit(111);
		lo = in < out_fd ? in : out_fd;
		hi = in < out_fd ? out_fd : in;
		/* Every fd but those two, however high: three ranges, three calls. */
		if (lo > 3)
			close_range(3, lo - 1, 0);
		if (hi > lo + 1)
			close_range(lo + 1, hi - 1, 0);
		close_range(hi + 1, ~0U, 0);
		lport = port;
		mapper(in);
	}
	close(to[0]);
	close(from[1]);
	/* to[1] stays open, unread: its end-of-file tells the mapper we went. */
	pm_fd = from[0];
	pm_loud = loud;
	fd_nonblock(pm_fd, 1);
	return pm_fd;
}

/* Take one line of news from the mapper; 1 when the mapping changed. */
static int
portmap_line(char *line)
{
	char copy[512], *w[5];
	int n;

	strlcpy(copy, line, sizeof(copy));
	n = line_words(line, w, 5);

	/* MAP proto addr ms-since-start [again] */
	if (n >= 4 && strcmp(w[0], "MAP") == 0) {
		char *c = strrchr(w[2], ':');

		strlcpy(pm_ext, w[2], sizeof(pm_ext));
		pm_eport = c != NULL ? atoi(c + 1) : 0;
		if (n == 5)
			logline("port mapped by the gateway (%s): reached at %s "
			    "(the router had forgotten us)", w[1], pm_ext);
		else
			(pm_loud ? logline : vlog)("port mapped by the gateway "
			    "(%s): reached at %s, %s ms after asking", w[1],
			    pm_ext, w[3]);
		return 1;
	}
	if (strcmp(copy, "NOPMP") == 0)
		pm_nopmp = 1;
	if (strncmp(copy, "GW ", 3) == 0)
		pm_gw = 1;
	if (strncmp(copy, "NOMAP ", 6) == 0) {
		pm_nomap = 1;
		vlog("no port mapping: %s", copy + strlen("NOMAP "));
	}
	return 0;
}

static int pm_news;		/* changed since portmap_poll last said so */

/* Read what the mapper said, without waiting. */
static void
portmap_read(void)
{
	static char buf[512];
	static size_t len;
	ssize_t n;
	char *nl;
	int changed = 0, q;

	if (pm_fd == -1 || pm_gone)
		return;
	while ((n = read(pm_fd, buf + len, sizeof(buf) - 1 - len)) > 0) {
		len += n;
		buf[len] = '\0';
		while ((nl = strchr(buf, '\n')) != NULL) {
			*nl = '\0';
			changed |= portmap_line(buf);
			len -= nl + 1 - buf;
			memmove(buf, nl + 1, len + 1);
		}
		if (len == sizeof(buf) - 1)
			len = 0;
	}
	if (n == 0) {		/* the mapper died: nothing is mapped now */
		/* The caller may poll the number: it gets one never ready. */
		if ((q = eventfd(0, EFD_CLOEXEC)) != -1) {
			dup2(q, pm_fd);
			close(q);
		}
		pm_gone = 1;
		changed = pm_ext[0] != '\0';
		pm_ext[0] = '\0';
	}
	pm_news |= changed;
}

/* Read what the mapper said, without waiting; 1 when the mapping changed. */
int
portmap_poll(void)
{
	int news;

	portmap_read();
	news = pm_news;
	pm_news = 0;
	return news;
}

/*
 * Wait at most ms for a mapping, or until PCP and NAT-PMP gave up (UPnP's
 * discovery takes longer than a tool can wait); 1 when mapped.
 */
int
portmap_wait(int ms)
{
	long end = now_ms() + ms;
	struct pollfd p;

	while (pm_fd != -1 && !pm_gone && pm_ext[0] == '\0' && now_ms() < end) {
		p = (struct pollfd){ .fd = pm_fd, .events = POLLIN };
		if (poll(&p, 1, (int)(end - now_ms())) <= 0)
			break;
		portmap_read();
		if (pm_nopmp)
			break;
	}
	return pm_ext[0] != '\0';
}

/*
 * Whether a mapping is on its way: a gateway answered our discovery (an
 * IGD was found, or a NAT-PMP server answered) and has neither mapped nor
 * refused yet.
 */
int
portmap_pending(void)
{
	portmap_read();
	return pm_fd != -1 && !pm_gone && pm_gw && !pm_nomap &&
	    pm_ext[0] == '\0';
}

/* Whether the words of buf include w. */
static int
has_word(const char *buf, const char *w)
{
	size_t n = strlen(w);
	const char *s;

	for (s = buf; (s = strstr(s, w)) != NULL; s++)
		if ((s == buf || s[-1] == ' ') && (s[n] == '\0' || s[n] == ' '))
			return 1;
	return 0;
}

/*
 * Append the mapping's candidates to buf as " word"s: the external address
 * the router gave, and the address rvd observed with the mapped port (a
 * second NAT, or a router that names an address nobody reaches).
 */
void
portmap_cands(const char *observed, char *buf, size_t n)
{
	char obs[ADDR_STR];

	portmap_read();		/* news that came during the log-on, say */
	if (pm_ext[0] == '\0')
		return;
	if (!has_word(buf, pm_ext)) {
		strlcat(buf, " ", n);
		strlcat(buf, pm_ext, n);
	}
	if (observed != NULL && observed[0] != '\0' &&
	    addr_withport(observed, pm_eport, obs, sizeof(obs)) == 0 &&
	    strcmp(obs, pm_ext) != 0 && !has_word(buf, obs)) {
		strlcat(buf, " ", n);
		strlcat(buf, obs, n);
	}
}
