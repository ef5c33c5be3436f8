/*
 * Keys on disk: our key pair, the peers we pinned (known_peers, one
 * "name@rvd key" line each, as ssh's known_hosts) and the keys a listener
 * lets in (one key a line, as ssh's authorized_keys).
 */
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "p2p.h"

#define KEYLINE 512	/* longest line we take from a key file */

/* A file under ~/.config/p2pdial, or the one env names. */
static const char *
conf_path(const char *env, const char *base, char *buf, size_t n)
{
	const char *s = getenv(env), *home = getenv("HOME");

	if (s != NULL && *s != '\0')
		return s;
	if (home == NULL || *home == '\0')
		home = "/";
	snprintf(buf, n, "%s/.config/p2pdial/%s", home, base);
	return buf;
}

/* Our key file: flag (-k), else $P2P_KEY, else ~/.config/p2pdial/key. */
const char *
key_path(const char *flag, char *buf, size_t n)
{
	if (flag != NULL)
		return flag;
	return conf_path("P2P_KEY", "key", buf, n);
}

/* The pinned peers: $P2P_KNOWN, else ~/.config/p2pdial/known_peers. */
const char *
known_path(char *buf, size_t n)
{
	return conf_path("P2P_KNOWN", "known_peers", buf, n);
}

/* Make the directory path is in, and its parents (0700, as ~/.ssh is). */
static void
mkparent(const char *path)
{
	char d[1024], *p;

	if (strlcpy(d, path, sizeof(d)) >= sizeof(d))
		return;
	for (p = d + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		mkdir(d, 0700);
		*p = '/';
	}
}

/* A key as one base64 word. */
void
key_b64(const unsigned char k[NOISE_KEY], char out[KEY_B64])
{
	sodium_bin2base64(out, KEY_B64, k, NOISE_KEY,
	    sodium_base64_VARIANT_ORIGINAL);
}

/* Parse a base64 key word (ended by NUL or blank): 0, or -1. */
int
key_parse(const char *s, unsigned char k[NOISE_KEY])
{
	size_t n = strcspn(s, " \t\r\n"), got;
	const char *end;

	if (n != KEY_B64 - 1)
		return -1;
	if (sodium_base642bin(k, NOISE_KEY, s, n, NULL, &got, &end,
	    sodium_base64_VARIANT_ORIGINAL) != 0 || got != NOISE_KEY ||
	    end != s + n)
		return -1;
	return 0;
}

/* The public half of a private key. */
void
key_public(const unsigned char priv[NOISE_KEY], unsigned char pub[NOISE_KEY])
{
	crypto_scalarmult_base(pub, priv);
}

/* A short fingerprint to read aloud: 64 bits of BLAKE2b of the key, in hex. */
void
key_fp(const unsigned char pub[NOISE_KEY], char out[KEY_FP])
{
	unsigned char h[8];

	crypto_generichash_blake2b(h, sizeof(h), pub, NOISE_KEY, NULL, 0);
	snprintf(out, KEY_FP, "%02x%02x:%02x%02x:%02x%02x:%02x%02x",
	    h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]);
}

/*
 * A new key pair in path: written whole to a temporary file (0600) and
 * renamed, so that a crash never leaves half a key. Unless replace is set,
 * it is linked instead, so that of two peers making the first key at once
 * one wins and the other fails with EEXIST. 0, or -1 with errno.
 */
int
key_make(const char *path, unsigned char priv[NOISE_KEY], int replace)
{
	char tmp[1100], b64[KEY_B64];
	int fd, e;

	if (noise_start() == -1)
		return errno = EIO, -1;
	randombytes_buf(priv, NOISE_KEY);
	key_b64(priv, b64);
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path,
	    (long)getpid()) >= sizeof(tmp))
		return errno = ENAMETOOLONG, -1;
	mkparent(path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) == -1)
		return -1;
	e = 0;
	if (dprintf(fd, "%s\n", b64) < 0 || fsync(fd) == -1)
		e = errno;
	if (close(fd) == -1 && e == 0)
		e = errno;
	if (e == 0 && (replace ? rename(tmp, path) : link(tmp, path)) == -1)
		e = errno;
	if (e != 0 || !replace)
		unlink(tmp);
	sodium_memzero(b64, sizeof(b64));
	return e == 0 ? 0 : (errno = e, -1);
}

/* Read the first line of path into buf: 0, or -1 with errno. */
static int
first_line(const char *path, char *buf, size_t n)
{
	ssize_t r;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	r = read(fd, buf, n - 1);
	close(fd);
	if (r < 0)
		return -1;
	buf[r] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/*
 * Load our private key from path; when there is none and make is set, make
 * one and say so (once: the next run finds it). Exits on failure, with who
 * (the tool) saying why in one line.
 */
int
key_load(const char *path, unsigned char priv[NOISE_KEY], int make,
    const char *who)
{
	char line[KEYLINE], fp[KEY_FP];
	unsigned char pub[NOISE_KEY];

	if (noise_start() == -1)
		errx(EX_SYSTEM, "unable to start libsodium");
	if (first_line(path, line, sizeof(line)) == -1) {
		if (errno != ENOENT || !make)
			err(EX_SYSTEM, "unable to read key %s", path);
		if (key_make(path, priv, 0) == -1) {
			if (errno == EEXIST)	/* another peer made it first */
				return key_load(path, priv, 0, who);
			err(EX_SYSTEM, "unable to make key %s", path);
		}
		key_public(priv, pub);
		key_fp(pub, fp);
		fprintf(stderr, "%s: made a new key %s, fingerprint %s\n", who,
		    path, fp);
		return 1;
	}
	if (key_parse(line, priv) == -1)
		errx(EX_USAGE_, "bad key file %s (want one base64 key)", path);
	sodium_memzero(line, sizeof(line));
	return 0;
}

/* Does the word list a (comma-separated) share a word with list b? */
static int
lists_meet(const char *a, size_t an, const char *b)
{
	size_t i = 0, j, wl, bl;

	while (i < an) {
		wl = strcspn(a + i, ",");
		if (wl > an - i)
			wl = an - i;
		for (j = 0; b[j] != '\0'; j += bl + (b[j + bl] != '\0')) {
			bl = strcspn(b + j, ", ");
			if (wl > 0 && bl == wl && memcmp(a + i, b + j, wl) == 0)
				return 1;
		}
		i += wl + 1;
	}
	return 0;
}

/*
 * Does a known_peers entry ("name@rvd1,rvd2" of length n) name peer
 * ("name@rvd")? The names must match and the rvd lists share one address:
 * so front ends of one service count as one peer when their line lists them.
 */
static int
entry_names(const char *e, size_t n, const char *peer)
{
	const char *ea = memchr(e, '@', n), *pa = strchr(peer, '@');

	if (ea == NULL || pa == NULL || ea - e != pa - peer ||
	    memcmp(e, peer, ea - e) != 0)
		return 0;
	return lists_meet(ea + 1, n - (ea + 1 - e), pa + 1);
}

/*
 * Find peer ("name@rvd") in file: 1 with its key and line number, 0 when
 * the file has no line for it (or there is no file), -1 with errno.
 * A line that does not parse is skipped, as ssh skips one.
 */
int
known_find(const char *file, const char *peer, unsigned char pub[NOISE_KEY],
    int *line)
{
	FILE *f;
	char buf[KEYLINE], *k;
	size_t n;
	int no = 0;

	if ((f = fopen(file, "re")) == NULL)
		return errno == ENOENT ? 0 : -1;
	while (fgets(buf, sizeof(buf), f) != NULL) {
		no++;
		n = strcspn(buf, " \t");
		if (buf[0] == '#' || buf[n] == '\0')
			continue;
		k = buf + n + strspn(buf + n, " \t");
		if (entry_names(buf, n, peer) && key_parse(k, pub) == 0) {
			*line = no;
			fclose(f);
			return 1;
		}
	}
	fclose(f);
	return 0;
}

/* Pin peer's key: one line appended to file (made 0600 if new). 0, or -1. */
int
known_add(const char *file, const char *peer, const unsigned char pub[NOISE_KEY])
{
	char b64[KEY_B64], name[KEYLINE], *p;
	int fd, r;

	if (strlcpy(name, peer, sizeof(name)) >= sizeof(name))
		return errno = ENAMETOOLONG, -1;
	for (p = name; *p != '\0'; p++)
		if (*p == ' ' || *p == '\t')
			*p = ',';	/* "a:1 b:2" as P2P_RVD may say it */
	key_b64(pub, b64);
	mkparent(file);
	if ((fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0600)) == -1)
		return -1;
	r = dprintf(fd, "%s %s\n", name, b64);
	if (close(fd) == -1 || r < 0)
		return -1;
	return 0;
}

/* Is pub one of the keys in file (first word of each line)? 1, 0, or -1. */
int
authorized_has(const char *file, const unsigned char pub[NOISE_KEY])
{
	FILE *f;
	char buf[KEYLINE], *w;
	unsigned char k[NOISE_KEY];
	int yes = 0;

	if ((f = fopen(file, "re")) == NULL)
		return -1;
	while (!yes && fgets(buf, sizeof(buf), f) != NULL) {
		w = buf + strspn(buf, " \t");
		if (*w != '#' && key_parse(w, k) == 0 &&
		    sodium_memcmp(k, pub, NOISE_KEY) == 0)
			yes = 1;
	}
	fclose(f);
	return yes;
}
