/*
 * The Noise state machine (noiseprotocol.org, revision 34) for two patterns,
 * Noise_XX_25519_ChaChaPoly_BLAKE2b and Noise_IK_25519_ChaChaPoly_BLAKE2b.
 * Every primitive is libsodium's: this file only strings them together as
 * the specification says, and t/noise checks it against the published vectors.
 */
#include <string.h>

#include <sodium.h>

#include "p2p.h"

#define HASHLEN 64
#define BLOCKLEN 128

/* A pattern's messages as tokens, initiator first; 0 ends a message. */
enum { T_END, T_E, T_S, T_EE, T_ES, T_SE, T_SS };
static const unsigned char pat_xx[][6] = {
	{ T_E },
	{ T_E, T_EE, T_S, T_ES },
	{ T_S, T_SE },
};
static const unsigned char pat_ik[][6] = {
	{ T_E, T_ES, T_S, T_SS },
	{ T_E, T_EE, T_SE },
};

/* Start the library once; every entry point that draws randomness needs it. */
int
noise_start(void)
{
	return sodium_init() < 0 ? -1 : 0;
}

/* HMAC-BLAKE2b (RFC 2104 over BLOCKLEN bytes), which Noise's HKDF is built of. */
static void
hmac(const unsigned char *key, size_t kn, const unsigned char *a, size_t an,
    const unsigned char *b, size_t bn, unsigned char out[HASHLEN])
{
	crypto_generichash_blake2b_state st;
	unsigned char pad[BLOCKLEN], inner[HASHLEN];
	size_t i;

	memset(pad, 0, sizeof(pad));
	memcpy(pad, key, kn);	/* kn <= HASHLEN always here */
	for (i = 0; i < BLOCKLEN; i++)
		pad[i] ^= 0x36;
	crypto_generichash_blake2b_init(&st, NULL, 0, HASHLEN);
	crypto_generichash_blake2b_update(&st, pad, BLOCKLEN);
	crypto_generichash_blake2b_update(&st, a, an);
	crypto_generichash_blake2b_update(&st, b, bn);
	crypto_generichash_blake2b_final(&st, inner, HASHLEN);
	for (i = 0; i < BLOCKLEN; i++)
		pad[i] ^= 0x36 ^ 0x5c;
	crypto_generichash_blake2b_init(&st, NULL, 0, HASHLEN);
	crypto_generichash_blake2b_update(&st, pad, BLOCKLEN);
	crypto_generichash_blake2b_update(&st, inner, HASHLEN);
	crypto_generichash_blake2b_final(&st, out, HASHLEN);
	sodium_memzero(pad, sizeof(pad));
	sodium_memzero(inner, sizeof(inner));
}

/* HKDF(ck, ikm) with two outputs, as the specification's section 4.3. */
static void
hkdf2(const unsigned char ck[HASHLEN], const unsigned char *ikm, size_t n,
    unsigned char o1[HASHLEN], unsigned char o2[HASHLEN])
{
	unsigned char temp[HASHLEN], one = 1, two = 2;

	hmac(ck, HASHLEN, ikm, n, NULL, 0, temp);
	hmac(temp, HASHLEN, &one, 1, NULL, 0, o1);
	hmac(temp, HASHLEN, o1, HASHLEN, &two, 1, o2);
	sodium_memzero(temp, sizeof(temp));
}

/* MixHash: h = HASH(h || data). */
static void
mix_hash(struct noise *ns, const unsigned char *p, size_t n)
{
	crypto_generichash_blake2b_state st;

	crypto_generichash_blake2b_init(&st, NULL, 0, HASHLEN);
	crypto_generichash_blake2b_update(&st, ns->h, HASHLEN);
	crypto_generichash_blake2b_update(&st, p, n);
	crypto_generichash_blake2b_final(&st, ns->h, HASHLEN);
}

/* MixKey: a new chaining key and cipher key from DH output. */
static void
mix_key(struct noise *ns, const unsigned char *ikm, size_t n)
{
	unsigned char k[HASHLEN];

	hkdf2(ns->ck, ikm, n, ns->ck, k);
	memcpy(ns->cs.k, k, NOISE_KEY);
	ns->cs.n = 0;
	ns->cs.has = 1;
	sodium_memzero(k, sizeof(k));
}

/* The ChaChaPoly nonce: 32 zero bits, then n little-endian. */
static void
nonce(uint64_t n, unsigned char out[12])
{
	int i;

	memset(out, 0, 4);
	for (i = 0; i < 8; i++)
		out[4 + i] = (unsigned char)(n >> (8 * i));
}

/* Seal n bytes of in into out (n + NOISE_TAG bytes) under cs, ad. */
int
noise_seal(struct noise_cs *cs, const unsigned char *ad, size_t adn,
    const unsigned char *in, size_t n, unsigned char *out)
{
	unsigned char iv[12];
	unsigned long long clen;

	if (cs->n == UINT64_MAX)
		return -1;	/* the specification reserves it: rekey instead */
	nonce(cs->n, iv);
	crypto_aead_chacha20poly1305_ietf_encrypt(out, &clen, in, n, ad, adn,
	    NULL, iv, cs->k);
	cs->n++;
	return 0;
}

/* Open n bytes of in (tag included) into out; -1 when it is not authentic. */
int
noise_open(struct noise_cs *cs, const unsigned char *ad, size_t adn,
    const unsigned char *in, size_t n, unsigned char *out)
{
	unsigned char iv[12];
	unsigned long long plen;

	if (n < NOISE_TAG || cs->n == UINT64_MAX)
		return -1;
	nonce(cs->n, iv);
	if (crypto_aead_chacha20poly1305_ietf_decrypt(out, &plen, NULL, in, n,
	    ad, adn, iv, cs->k) != 0)
		return -1;
	cs->n++;
	return 0;
}

/* EncryptAndHash: out gets p, sealed once there is a key; returns its length. */
static size_t
encrypt_hash(struct noise *ns, const unsigned char *p, size_t n,
    unsigned char *out)
{
	size_t len = n;

	if (ns->cs.has) {
		noise_seal(&ns->cs, ns->h, HASHLEN, p, n, out);
		len += NOISE_TAG;
	} else if (n > 0)
		memmove(out, p, n);
	mix_hash(ns, out, len);
	return len;
}

/* DecryptAndHash: the inverse; -1 when the bytes are not authentic. */
static int
decrypt_hash(struct noise *ns, const unsigned char *c, size_t n,
    unsigned char *out)
{
	unsigned char h[HASHLEN];

	memcpy(h, ns->h, HASHLEN);
	mix_hash(ns, c, n);
	if (!ns->cs.has) {
		if (n > 0)
			memmove(out, c, n);
		return 0;
	}
	return noise_open(&ns->cs, h, HASHLEN, c, n, out);
}

/* DH into MixKey; -1 for a point of small order, which libsodium refuses. */
static int
mix_dh(struct noise *ns, const unsigned char *priv, const unsigned char *pub)
{
	unsigned char out[32];
	int r;

	r = crypto_scalarmult(out, priv, pub);
	if (r == 0)
		mix_key(ns, out, sizeof(out));
	sodium_memzero(out, sizeof(out));
	return r == 0 ? 0 : -1;
}

/*
 * Begin a handshake: pattern NOISE_XX or NOISE_IK, our static private key s,
 * the responder's public key rs (IK's initiator only) and the prologue.
 */
int
noise_init(struct noise *ns, int pattern, int initiator,
    const unsigned char s[NOISE_KEY], const unsigned char *rs,
    const void *prologue, size_t pn)
{
	const char *name = pattern == NOISE_IK ?
	    "Noise_IK_25519_ChaChaPoly_BLAKE2b" :
	    "Noise_XX_25519_ChaChaPoly_BLAKE2b";

	memset(ns, 0, sizeof(*ns));
	ns->pattern = pattern;
	ns->initiator = initiator;
	memcpy(ns->h, name, strlen(name));	/* shorter than HASHLEN: padded */
	memcpy(ns->ck, ns->h, HASHLEN);
	mix_hash(ns, prologue, pn);
	memcpy(ns->s, s, NOISE_KEY);
	crypto_scalarmult_base(ns->spub, ns->s);
	if (pattern == NOISE_IK) {
		/* The pre-message "<- s": the responder's key is known. */
		if (initiator) {
			if (rs == NULL)
				return -1;
			memcpy(ns->rs, rs, NOISE_KEY);
			ns->has_rs = 1;
			mix_hash(ns, ns->rs, NOISE_KEY);
		} else
			mix_hash(ns, ns->spub, NOISE_KEY);
	}
	return 0;
}

/* Use e as the next ephemeral private key (the test vectors fix it). */
void
noise_fixed_e(struct noise *ns, const unsigned char e[NOISE_KEY])
{
	memcpy(ns->e, e, NOISE_KEY);
	ns->fixed_e = 1;
}

/* The current message's tokens, or NULL when the handshake is over. */
static const unsigned char *
tokens(const struct noise *ns)
{
	if (ns->pattern == NOISE_IK)
		return ns->msg < 2 ? pat_ik[ns->msg] : NULL;
	return ns->msg < 3 ? pat_xx[ns->msg] : NULL;
}

/* Run one DH token from our side (we are the initiator or not). */
static int
dh_token(struct noise *ns, int t)
{
	int i = ns->initiator;

	switch (t) {
	case T_EE:
		return mix_dh(ns, ns->e, ns->re);
	case T_ES:
		return i ? mix_dh(ns, ns->e, ns->rs) : mix_dh(ns, ns->s, ns->re);
	case T_SE:
		return i ? mix_dh(ns, ns->s, ns->re) : mix_dh(ns, ns->e, ns->rs);
	default:
		return mix_dh(ns, ns->s, ns->rs);
	}
}

/* Whose turn it is: 1 when the next handshake message is ours to write. */
int
noise_mine(const struct noise *ns)
{
	return (ns->msg % 2 == 0) == (ns->initiator != 0);
}

/* Split into the two transport ciphers once the last message has passed. */
static void
split(struct noise *ns)
{
	unsigned char k1[HASHLEN], k2[HASHLEN];

	hkdf2(ns->ck, NULL, 0, k1, k2);
	memcpy(ns->tx.k, ns->initiator ? k1 : k2, NOISE_KEY);
	memcpy(ns->rx.k, ns->initiator ? k2 : k1, NOISE_KEY);
	ns->tx.has = ns->rx.has = 1;
	ns->done = 1;
	sodium_memzero(k1, sizeof(k1));
	sodium_memzero(k2, sizeof(k2));
	sodium_memzero(ns->ck, sizeof(ns->ck));
	sodium_memzero(&ns->cs, sizeof(ns->cs));
	sodium_memzero(ns->e, sizeof(ns->e));
}

/*
 * After IK's first message both ends can key the dialler's early data:
 * HKDF(ck, h), so that it is bound to the whole first message and the
 * prologue (the session), and never the key of a handshake or transport
 * message. Message 2's DH outputs change ck before the split, so the
 * transport keys are not derived from the same input.
 */
static void
early_key(struct noise *ns)
{
	unsigned char k1[HASHLEN], k2[HASHLEN];

	if (ns->pattern != NOISE_IK || ns->msg != 1)
		return;
	hkdf2(ns->ck, ns->h, HASHLEN, k1, k2);
	memcpy(ns->early.k, k1, NOISE_KEY);
	ns->early.n = 0;
	ns->early.has = 1;
	sodium_memzero(k1, sizeof(k1));
	sodium_memzero(k2, sizeof(k2));
}

/*
 * Write our next handshake message with payload p into out (room for
 * NOISE_MSG_MAX); returns its length, or -1.
 */
ssize_t
noise_write(struct noise *ns, const void *p, size_t pn, unsigned char *out)
{
	const unsigned char *t = tokens(ns);
	size_t len = 0;

	if (t == NULL || !noise_mine(ns) || pn > NOISE_PAYLOAD_MAX)
		return -1;
	for (; *t != T_END; t++) {
		if (*t == T_E) {
			if (!ns->fixed_e)
				randombytes_buf(ns->e, NOISE_KEY);
			ns->fixed_e = 0;
			crypto_scalarmult_base(ns->epub, ns->e);
			memcpy(out + len, ns->epub, NOISE_KEY);
			mix_hash(ns, ns->epub, NOISE_KEY);
			len += NOISE_KEY;
		} else if (*t == T_S)
			len += encrypt_hash(ns, ns->spub, NOISE_KEY, out + len);
		else if (dh_token(ns, *t) == -1)
			return -1;
	}
	len += encrypt_hash(ns, p, pn, out + len);
	ns->msg++;
	early_key(ns);
	if (tokens(ns) == NULL)
		split(ns);
	return (ssize_t)len;
}

/*
 * Read the peer's next handshake message m; its payload goes to p (room for
 * NOISE_PAYLOAD_MAX). Returns the payload's length, or -1 when the message
 * is malformed or not authentic: the handshake is then dead.
 */
ssize_t
noise_read(struct noise *ns, const unsigned char *m, size_t n, unsigned char *p)
{
	const unsigned char *t = tokens(ns);
	size_t off = 0, sl;
	int keyed;

	if (t == NULL || noise_mine(ns) || n > NOISE_MSG_MAX)
		return -1;
	for (; *t != T_END; t++) {
		if (*t == T_E) {
			if (n - off < NOISE_KEY)
				return -1;
			memcpy(ns->re, m + off, NOISE_KEY);
			mix_hash(ns, ns->re, NOISE_KEY);
			off += NOISE_KEY;
		} else if (*t == T_S) {
			sl = NOISE_KEY + (ns->cs.has ? NOISE_TAG : 0);
			if (n - off < sl ||
			    decrypt_hash(ns, m + off, sl, ns->rs) == -1)
				return -1;
			ns->has_rs = 1;
			off += sl;
		} else if (dh_token(ns, *t) == -1)
			return -1;
	}
	sl = n - off;
	keyed = ns->cs.has;
	if (keyed && sl < NOISE_TAG)
		return -1;
	if (decrypt_hash(ns, m + off, sl, p) == -1)
		return -1;
	ns->msg++;
	early_key(ns);
	if (tokens(ns) == NULL)
		split(ns);
	return (ssize_t)(sl - (keyed ? NOISE_TAG : 0));
}
