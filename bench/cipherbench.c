/*
 * cipherbench: what bench/seal's stream can at best be, the cipher alone.
 * It seals 64 KiB frames (p2pseal's largest) for about a second on one core
 * and prints "chachapoly=MIBS aesgcm=MIBS" (aesgcm=0 where the CPU lacks
 * AES-NI). Opening costs what sealing does, so a sealed stream whose two
 * ends share C cores moves at most C x chachapoly / 2. Exits 0, 111 when
 * libsodium will not start.
 */
#include <sodium.h>
#include <stdio.h>
#include <time.h>

#define FRAME 65519	/* p2pseal's largest plain text in a frame */

static unsigned char m[FRAME], c[FRAME + 16], k[32], n[12];

/* Seconds, monotonic. */
static double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* MiB/s of enc over frames, run for about a second. */
static double
rate(int (*enc)(unsigned char *, unsigned long long *, const unsigned char *,
    unsigned long long, const unsigned char *, unsigned long long,
    const unsigned char *, const unsigned char *, const unsigned char *))
{
	unsigned long long cl, frames = 0;
	double t0 = now(), t;

	do {
		for (int i = 0; i < 256; i++, frames++) {
			n[0] = (unsigned char)frames;
			enc(c, &cl, m, FRAME, NULL, 0, NULL, n, k);
		}
	} while ((t = now() - t0) < 1.0);
	return frames * (double)FRAME / 1048576 / t;
}

int
main(void)
{
	if (sodium_init() < 0)
		return 111;
	randombytes_buf(m, sizeof(m));
	printf("chachapoly=%.0f aesgcm=%.0f\n",
	    rate(crypto_aead_chacha20poly1305_ietf_encrypt),
	    crypto_aead_aes256gcm_is_available() ?
	    rate(crypto_aead_aes256gcm_encrypt) : 0.0);
	return 0;
}
