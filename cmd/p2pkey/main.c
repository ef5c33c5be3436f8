/*
 * p2pkey: makes a peer's long-term key pair (X25519) and prints its public
 * key and fingerprint; with a key already there, prints them only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p2p.h"

static void
usage(void)
{
	usage_exit("usage: p2pkey [-fhV] [-k KEYFILE]\n");
}

int
main(int argc, char *argv[])
{
	unsigned char priv[NOISE_KEY], pub[NOISE_KEY];
	char buf[1024], b64[KEY_B64], fp[KEY_FP];
	const char *flag = NULL, *path;
	int ch, force = 0;

	opt_version(argc, argv);
	while ((ch = getopt(argc, argv, "fhk:V")) != -1) {
		switch (ch) {
		case 'f':
			force = 1;
			break;
		case 'k':
			flag = optarg;
			break;
		case 'h':
			opt_help(usage);
		case 'V':
			print_version();
		default:
			usage();
		}
	}
	if (argc != optind)
		usage();
	path = key_path(flag, buf, sizeof(buf));
	if (*path == '\0')
		errx(EX_USAGE_, "empty key file name");
	if (noise_start() == -1)
		errx(EX_SYSTEM, "unable to start libsodium");
	if (force) {
		/* A new key replaces the old one whole, by rename. */
		if (key_make(path, priv, 1) == -1)
			err(EX_SYSTEM, "unable to make key %s", path);
		fprintf(stderr, "p2pkey: made a new key %s\n", path);
	} else
		key_load(path, priv, 1, "p2pkey");
	key_public(priv, pub);
	key_b64(pub, b64);
	key_fp(pub, fp);
	printf("%s %s\n", b64, fp);
	return fflush(stdout) == 0 ? EX_CONNECTED : EX_SYSTEM;
}
